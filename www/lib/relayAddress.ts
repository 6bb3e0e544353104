// Which relay the dashboard talks to. The relay serves this page itself (one binary, one port), so by default
// the page connects back to where it came from; `?relay=` points it anywhere else.

/** The relay's default address (seed 000's port), for a page not served by the relay. */
export const DEFAULT_RELAY_URL = "ws://127.0.0.1:8265";

/**
 * The relay address to use: `?relay=` if given; else `NEXT_PUBLIC_RELAY_URL` if set at build time; else, in the
 * exported build (which the relay embeds and serves), the page's own origin (`ws(s)://host:port`); else, under
 * `next dev` (served apart from any relay), the relay's default address.
 *
 * The dashboard's access token (security issue) will arrive in this page's URL fragment (`#token=…`, printed by
 * the relay); this is the one place that turns the page's location into a relay connection, so it belongs here.
 */
export function relayAddress(param: string | null, location: Pick<Location, "protocol" | "host"> | null): string {
  if (param) return param;
  const configured = process.env.NEXT_PUBLIC_RELAY_URL;
  if (configured) return configured;
  if (process.env.NODE_ENV === "production" && location?.host) {
    return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}`;
  }
  return DEFAULT_RELAY_URL;
}
