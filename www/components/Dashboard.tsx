"use client";
// The dashboard: relay status, client cards, and the selected client's threads, registry and live events.
// All connection state comes from the `devrelay-client` package (its wasm `DevtoolsConnection`, through the
// package's React hook, which loads the wasm in the browser only); this component only lays it out.

import { useCallback, useEffect, useMemo, useState } from "react";
import { useRouter, useSearchParams } from "next/navigation";
import type { DevtoolsConnection, Snapshot, SessionEvents } from "devrelay-client";
import { useDevtoolsConnection } from "devrelay-client/react";
import { useKnownClients } from "@/lib/knownClients";
import { errorsOf, registryOf, threadsOf } from "@/lib/model";
import { relayAddress } from "@/lib/relayAddress";
import { ago, clock, useNow } from "@/lib/time";
import { StatusPill } from "./StatusPill";
import { ClientList } from "./ClientList";
import { ThreadsPanel } from "./ThreadsPanel";
import { RegistryPanel } from "./RegistryPanel";
import { Timeline } from "./Timeline";
import { NoClients, RelayUnreachable } from "./EmptyState";

const NO_EVENTS: SessionEvents = { events: [], droppedCount: 0 };

export function Dashboard() {
  const params = useSearchParams();
  const router = useRouter();
  // (Rendered in the browser only: the page's Suspense boundary keeps useSearchParams out of the static build.)
  const relayUrl = relayAddress(params.get("relay"), typeof window === "undefined" ? null : window.location);
  const wanted = params.get("clientId");
  // ?buffer=N: events kept per client (the package's ring buffer; default 5000).
  const buffer = Number(params.get("buffer")) || undefined;
  const dt = useDevtoolsConnection({ url: relayUrl, eventCapacity: buffer });
  const { known, forget } = useKnownClients(dt.clients, dt.status);
  const now = useNow();

  const setParam = useCallback(
    (key: string, value: string | null) => {
      const p = new URLSearchParams(params.toString());
      if (value === null) p.delete(key);
      else p.set(key, value);
      router.replace(`?${p.toString()}`, { scroll: false });
    },
    [params, router],
  );

  // No ?clientId= yet: select the first client that shows up, and put it in the URL so the choice sticks (and
  // the page can be shared or reloaded).
  const firstLive = dt.clients[0]?.sessionId ?? null;
  useEffect(() => {
    if (!wanted && firstLive) setParam("clientId", firstLive);
  }, [wanted, firstLive, setParam]);

  const selectedId = wanted ?? firstLive;
  const { connection } = dt;
  useEffect(() => {
    if (connection && connection.getSnapshot().selectedSessionId !== selectedId) connection.selectSession(selectedId);
  }, [connection, selectedId]);

  const selected = known.find((k) => k.info.sessionId === selectedId);
  const live = dt.clients.some((c) => c.sessionId === selectedId);

  let main: React.ReactNode;
  if (selectedId && live && connection) {
    main = (
      <ClientView
        key={selectedId}
        sessionId={selectedId}
        snapshot={dt.snapshots[selectedId]}
        events={dt.events[selectedId] ?? NO_EVENTS}
        connection={connection}
        now={now}
        offline={dt.isConnected ? null : { attempt: dt.reconnectAttempt, error: dt.error }}
      />
    );
  } else if (selectedId && (selected || !dt.isConnected)) {
    main = (
      <div className="teach gone" data-testid="client-gone" data-state={selected?.state ?? "unknown"}>
        <h2>
          <code>{selectedId}</code> is {dt.isConnected ? "disconnected" : "unreachable: the relay is offline"}
        </h2>
        <p>
          {selected?.since ? `Since ${clock(selected.since)} (${ago(selected.since, now)}). ` : ""}
          Its threads, registry and events are cleared. It will show up here again as soon as it reconnects
          {dt.isConnected ? "" : " (after the relay is back)"}.
        </p>
        {dt.clients.length > 0 && <p className="muted">Or pick another client on the left.</p>}
      </div>
    );
  } else if (selectedId && dt.isConnected) {
    main = (
      <div className="teach" data-testid="client-gone" data-state="unknown">
        <h2>
          Waiting for <code>{selectedId}</code>
        </h2>
        <p>No client with this session id is connected (from <code>?clientId=</code>). It will open here when it connects.</p>
        {dt.clients.length > 0 && <p className="muted">Or pick one of the connected clients on the left.</p>}
      </div>
    );
  } else if (!dt.isConnected) {
    main = <RelayUnreachable relayUrl={relayUrl} attempt={dt.reconnectAttempt} error={dt.error} />;
  } else {
    main = <NoClients relayUrl={relayUrl} />;
  }

  return (
    <div className="app">
      <header className="topbar">
        <div className="brand">
          <span className="logo">◆</span> devrelay
        </div>
        <code className="relay-url" title="Relay address (?relay= to change)">
          {relayUrl}
        </code>
        <StatusPill status={dt.status} attempt={dt.reconnectAttempt} error={dt.error} />
        <div className="spacer" />
        {dt.ignoredFrames > 0 && (
          <span className="muted small" title="Frames from the relay that were not usable">
            {dt.ignoredFrames} ignored frames
          </span>
        )}
      </header>
      <div className="layout">
        <aside className="sidebar">
          <ClientList
            known={known}
            selectedId={selectedId}
            onSelect={(id) => setParam("clientId", id)}
            onForget={(id) => {
              forget(id);
              if (id === selectedId) setParam("clientId", null);
            }}
            state={dt}
            now={now}
          />
        </aside>
        <main className="main">{main}</main>
      </div>
    </div>
  );
}

function ClientView({
  sessionId,
  snapshot,
  events,
  connection,
  now,
  offline,
}: {
  sessionId: string;
  snapshot: Snapshot | undefined;
  events: SessionEvents;
  connection: DevtoolsConnection;
  now: number;
  /** Set while the relay is unreachable: the view shows the last known state. */
  offline: { attempt: number; error: string | null } | null;
}) {
  const [tab, setTab] = useState<"threads" | "registry">("threads");
  const [threadId, setThreadId] = useState<string | null>(null);
  const [errorsHidden, setErrorsHidden] = useState(0);
  const threads = useMemo(() => threadsOf(snapshot), [snapshot]);
  const registry = useMemo(() => registryOf(snapshot), [snapshot]);
  const errors = useMemo(() => errorsOf(snapshot), [snapshot]);
  const threadNames = useMemo(() => new Map(threads.map((t) => [t.id, t.name])), [threads]);
  const streaming = threads.filter((t) => t.status === "streaming").length;
  const visibleErrors = errors.slice(errorsHidden);

  // The relay forwards snapshots as SDKs send them; a client seen for the first time may have sent its last one
  // before this page connected, so ask for a fresh one.
  const hasSnapshot = snapshot !== undefined;
  useEffect(() => {
    if (!hasSnapshot) connection.requestSnapshot(sessionId);
    // Only on opening this client's view: later snapshots come by themselves.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [connection, sessionId]);

  return (
    <div className="client-view" data-testid="client-view" data-session-id={sessionId}>
      <div className="client-head">
        <h2>
          <code>{sessionId}</code>
        </h2>
        {streaming > 0 ? (
          <span className="badge streaming" data-testid="streaming-badge">
            streaming{streaming > 1 ? ` ×${streaming}` : ""}
          </span>
        ) : (
          snapshot && <span className="badge idle" data-testid="streaming-badge">idle</span>
        )}
        <span className="muted small" data-testid="snapshot-age">
          {snapshot ? `snapshot ${clock(snapshot.timestamp)} · ${ago(snapshot.timestamp, now)}` : "no snapshot yet"}
        </span>
        <div className="spacer" />
        <button type="button" data-testid="request-snapshot" onClick={() => connection.requestSnapshot(sessionId)}>
          ⟳ Request snapshot
        </button>
      </div>
      {offline && (
        <div className="offline-banner" role="status" data-testid="offline-banner">
          Relay offline: showing this client&apos;s last known state. Reconnecting
          {offline.attempt > 0 ? ` (attempt ${offline.attempt})` : ""}…
        </div>
      )}
      {visibleErrors.length > 0 && (
        <div className="error-banner" role="alert" data-testid="error-banner">
          <strong>
            {visibleErrors.length} error{visibleErrors.length > 1 ? "s" : ""} reported by the app
          </strong>
          <ul>
            {visibleErrors
              .slice(-3)
              .reverse()
              .map((e, i) => (
                <li key={i}>
                  <span className="muted small">{clock(e.timestamp)}</span> {e.message}
                  {e.threadId && (
                    <button type="button" className="link" onClick={() => { setTab("threads"); setThreadId(e.threadId ?? null); }}>
                      {threadNames.get(e.threadId) ?? e.threadId}
                    </button>
                  )}
                </li>
              ))}
          </ul>
          <button type="button" className="link dismiss" onClick={() => setErrorsHidden(errors.length)}>
            dismiss
          </button>
        </div>
      )}
      <div className="panes">
        <div className="pane-left">
          <div className="tabs" role="tablist">
            <button type="button" role="tab" aria-selected={tab === "threads"} data-testid="tab-threads" onClick={() => setTab("threads")}>
              Threads <span className="count">{threads.length}</span>
            </button>
            <button type="button" role="tab" aria-selected={tab === "registry"} data-testid="tab-registry" onClick={() => setTab("registry")}>
              Registry{" "}
              <span className="count">
                {registry.tools.length + registry.components.length + registry.mcpServers.length}
              </span>
            </button>
          </div>
          {!snapshot ? (
            <div className="teach">
              <h3>Waiting for this client&apos;s first snapshot</h3>
              <p className="muted">
                SDKs send one after their handshake. If it does not come, ask for one with <em>Request snapshot</em>.
              </p>
            </div>
          ) : tab === "threads" ? (
            <ThreadsPanel threads={threads} selectedThreadId={threadId} onSelectThread={setThreadId} now={now} />
          ) : (
            <RegistryPanel {...registry} />
          )}
        </div>
        <div className="pane-right">
          <Timeline
            events={events.events}
            droppedCount={events.droppedCount}
            onClear={() => connection.clearStreamEvents(sessionId)}
            selectedThreadId={threadId}
            threadNames={threadNames}
          />
        </div>
      </div>
    </div>
  );
}
