"use client";
// Empty states that teach: how to start the relay, and how to connect a client (the demo, or your own SDK).

import { useId, useState, useSyncExternalStore } from "react";
import type { DevtoolsOptionsError } from "devrelay-client";
import { saveTokenAndReload } from "@/lib/relayAddress";

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

function ForeignOriginHint({ always = false }: { always?: boolean }) {
  // The page's host never changes while it is open; null while rendering on the server.
  const host = useSyncExternalStore(
    noSubscription,
    () => window.location.hostname,
    () => null,
  );
  if (host === null || (LOOPBACK.has(host) && !always)) return null;
  return (
    <p className="warn" data-testid="origin-hint">
      This page is served from <code>{host}</code>. The relay opens dashboards only for the page it serves itself
      and pages on localhost, 127.0.0.1 or [::1] (a defence against other websites reading your sessions); if this
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

/** The relay refused this dashboard: its token is missing or wrong (4501), or this page's Origin may not open a
 * dashboard (4502). Says what happened and what to do, and takes a token by hand. */
export function AccessRefused({
  code,
  reason,
  relayUrl,
  hadToken,
}: {
  code: 4501 | 4502;
  reason: string;
  relayUrl: string;
  hadToken: boolean;
}) {
  const inputId = useId();
  const [token, setToken] = useState("");
  const port = portOf(relayUrl);
  if (code === 4502) {
    return (
      <div className="teach gone" data-testid="access-refused" data-code={code} role="alert">
        <h2>This page may not open a dashboard on this relay</h2>
        <p>
          The relay said: <q>{reason}</q>
        </p>
        <ForeignOriginHint always />
      </div>
    );
  }
  return (
    <div className="teach gone" data-testid="access-refused" data-code={code} role="alert">
      <h2>{hadToken ? "The dashboard token is wrong" : "The dashboard token is missing"}</h2>
      <p>
        The relay at <code>{relayUrl}</code> only shows sessions to dashboards that present its token
        {hadToken ? ", and this one is not it (the relay may have restarted with a new one)" : ""}. It said:{" "}
        <q>{reason}</q>
      </p>
      <h3>What to do</h3>
      <ul>
        <li>
          Open the dashboard URL the relay printed when it started: the line{" "}
          <code>dashboard http://…/#token=…</code> (<code>scripts/dev.sh</code> prints it too).
        </li>
        <li>
          Or take the token from the relay&apos;s token file, <code>$XDG_RUNTIME_DIR/devrelay/token-{port}</code>{" "}
          (without a runtime directory: <code>~/.devrelay/token-{port}</code>), and paste it here:
        </li>
      </ul>
      <form
        className="token-form"
        onSubmit={(e) => {
          e.preventDefault();
          if (token.trim()) saveTokenAndReload(token.trim());
        }}
      >
        <label htmlFor={inputId}>Dashboard token</label>
        <input
          id={inputId}
          type="password"
          autoComplete="off"
          spellCheck={false}
          value={token}
          onChange={(e) => setToken(e.target.value)}
          data-testid="token-input"
        />
        <button type="submit" data-testid="token-submit">
          Connect
        </button>
      </form>
      <p className="muted">
        A relay you started with <code>--token</code> (or <code>DEVRELAY_TOKEN</code>) takes that one. The token
        stays in this tab only; closing the tab forgets it.
      </p>
    </div>
  );
}

function portOf(url: string): string {
  try {
    const u = new URL(url.replace(/^ws/, "http"));
    return u.port || (u.protocol === "https:" ? "443" : "80");
  } catch {
    return "PORT";
  }
}
