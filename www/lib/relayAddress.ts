// Which relay the dashboard talks to, and with which token. The relay serves this page itself (one binary, one
// port), so by default the page connects back to where it came from; `?relay=` points it anywhere else.

/** The relay's default address (seed 000's port), for a page not served by the relay. */
export const DEFAULT_RELAY_URL = "ws://127.0.0.1:8265";

/**
 * The relay address to use: `?relay=` if given; else `NEXT_PUBLIC_RELAY_URL` if set at build time; else, in the
 * exported build (which the relay embeds and serves), the page's own origin (`ws(s)://host:port`); else, under
 * `next dev` (served apart from any relay), the relay's default address.
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

/** Where the tab keeps the token: sessionStorage (this tab only, gone when it closes). */
export const TOKEN_KEY = "devrelay.token";

/**
 * The relay's dashboard token. The relay prints its dashboard URL with the token in the fragment
 * (`http://127.0.0.1:8265/#token=…`): a fragment never reaches a server (no request, no Referer, no log). On the
 * first load the token is moved from the fragment into this tab's sessionStorage and the fragment is removed
 * from the address bar (so it is not shared with a copied link or a screenshot); reloads take it from there.
 * `null` when there is none (then a relay with tokens refuses the dashboard, and the page says what to do).
 */
export function dashboardToken(): string | null {
  if (typeof window === "undefined") return null;
  const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
  const given = fragment.get("token");
  if (given !== null) {
    try {
      window.sessionStorage.setItem(TOKEN_KEY, given);
    } catch {
      // Storage disabled: the token still works for this page load.
    }
    fragment.delete("token");
    const rest = fragment.toString();
    const { pathname, search } = window.location;
    window.history.replaceState(window.history.state, "", `${pathname}${search}${rest ? `#${rest}` : ""}`);
    return given || null;
  }
  try {
    return window.sessionStorage.getItem(TOKEN_KEY) || null;
  } catch {
    return null;
  }
}

/** Keeps `token` for this tab (the "token missing or wrong" screen's form) and reloads with it. */
export function saveTokenAndReload(token: string): void {
  try {
    window.sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    // Storage disabled: the fragment carries it for this load.
  }
  window.location.hash = `token=${encodeURIComponent(token)}`;
  window.location.reload();
}

/** What a closed connection's error says about access: the relay refused the token (4501) or this page's Origin
 * or role (4502). The package reports the close as "... (code 4501: reason)". */
export function accessRefusal(status: string, error: string | null): { code: 4501 | 4502; reason: string } | null {
  if (status !== "closed" || !error) return null;
  const m = /\(code (450[12])(?:: ([^]*))?\)$/.exec(error);
  if (!m) return null;
  return { code: m[1] === "4501" ? 4501 : 4502, reason: m[2] ?? "" };
}
