"use client";
// Empty states that teach: how to start the relay, and how to connect a client (the demo, or your own SDK).

import { useSyncExternalStore } from "react";
import type { DevtoolsOptionsError } from "devrelay-client";

export function RelayUnreachable({ relayUrl, attempt, error }: { relayUrl: string; attempt: number; error: string | null }) {
  return (
    <div className="teach" data-testid="empty-state" data-reason="relay">
      <h2>Waiting for the relay</h2>
      <p>
        The dashboard connects to <code>{relayUrl}</code>
        {attempt > 0 ? ` and keeps retrying (attempt ${attempt})` : ""}.{error ? ` Last error: ${error}.` : ""} Start
        it with:
      </p>
      <pre>npx devrelay</pre>
      <p className="muted">
        (or <code>cargo run --release -p devrelay</code> in a clone, or everything with the demo SDK:{" "}
        <code>scripts/dev.sh</code>). Another relay address: add <code>?relay=ws://host:port</code> to this
        page&apos;s URL.
      </p>
      <ForeignOriginHint />
    </div>
  );
}

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

/** Browsers report a refused upgrade only as "closed (1006)": when this page is not on a loopback origin, say
 * that the relay's Origin check is the likely reason. */
const noSubscription = () => () => {};

function ForeignOriginHint() {
  // The page's host never changes while it is open; null while rendering on the server.
  const host = useSyncExternalStore(
    noSubscription,
    () => window.location.hostname,
    () => null,
  );
  if (host === null || LOOPBACK.has(host)) return null;
  return (
    <p className="warn" data-testid="origin-hint">
      This page is served from <code>{host}</code>. The relay only accepts the dashboard it serves itself and
      pages on localhost, 127.0.0.1 or [::1] (a defence against other websites reading your sessions); if this
      origin is yours, start the relay with <code>--allow-origin {typeof window === "undefined" ? "" : window.location.origin}</code>.
    </p>
  );
}

export function NoClients({ relayUrl }: { relayUrl: string }) {
  return (
    <div className="teach" data-testid="empty-state" data-reason="no-clients">
      <h2>No SDK client connected</h2>
      <p>The relay is up. Connect something to watch it live.</p>
      <h3>Run the demo SDK</h3>
      <p className="muted">Simulated app sessions with threads, tool calls, components and a live event stream:</p>
      <pre>{`npx devrelay demo --url ${relayUrl} --sessions 2 --rate 8`}</pre>
      <p className="muted">
        (in a clone: <code>cargo run --release -p devrelay -- demo --url {relayUrl}</code>)
      </p>
      <h3>Or connect your own app</h3>
      <p className="muted">
        Any WebSocket client can be an SDK: say hello with a <code>handshake</code>, then send{" "}
        <code>state_snapshot</code> and <code>stream_event</code> messages (all types are in the <code>protocol/</code>{" "}
        crate).
      </p>
      <pre>{`const ws = new WebSocket("${relayUrl}");
ws.onopen = () => {
  ws.send(JSON.stringify({
    type: "handshake", protocolVersion: 1,
    sdkVersion: "my-app/1.0.0", projectId: "my-project",
    sessionId: crypto.randomUUID(),
  }));
};
ws.onmessage = (e) => {
  // The relay asks for a fresh snapshot when a dashboard wants one.
  if (JSON.parse(e.data).type === "request_snapshot") sendSnapshot();
};`}</pre>
    </div>
  );
}

/** The connection could not be created: an option (from the page URL, when `param` names it) is invalid. Shown
 * instead of "connecting" for ever: the package says which option, what it accepts and what it got. */
export function OptionsProblem({ error, param }: { error: DevtoolsOptionsError; param: string | null }) {
  return (
    <div className="teach gone" data-testid="options-error" data-field={error.field} role="alert">
      <h2>The dashboard cannot connect: invalid settings</h2>
      <p>
        {param !== null ? (
          <>
            The page parameter <code>?{param}=</code> sets the connection option <code>{error.field}</code>, which
            must be {error.expected}; it is <code>{error.received}</code>.
          </>
        ) : (
          <>
            The connection option <code>{error.field}</code> must be {error.expected}; it is{" "}
            <code>{error.received}</code>.
          </>
        )}
      </p>
      <pre>{error.message}</pre>
      <p className="muted">
        {param !== null ? (
          <>
            Fix <code>?{param}=</code> in the address bar (or remove it for the default) and load the page again.
          </>
        ) : (
          "Fix the option and load the page again."
        )}
      </p>
    </div>
  );
}
