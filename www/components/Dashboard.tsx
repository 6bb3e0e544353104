"use client";
// The dashboard: relay status, client cards, and the selected client's threads, registry and live events.
// All connection state comes from the `devrelay-client` package (its wasm `DevtoolsConnection`, through the
// package's React hook, which loads the wasm in the browser only); this component only lays it out.
//
// Rendering: nothing here subscribes to the clock (relative times are <Ago> leaves), and the per-snapshot
// derivations (threads, registry, errors) are cached per snapshot object, so the page re-renders only when the
// connection's state changes, and then recomputes only what that change touched.

import { memo, useCallback, useEffect, useId, useMemo, useRef, useState } from "react";
import { useRouter, useSearchParams } from "next/navigation";
import type {
  DevtoolsConnection,
  DevtoolsOptionsError,
  RecoveryOutcome,
  Snapshot,
  SessionEvents,
} from "devrelay-client";
import { useDevtoolsConnection } from "devrelay-client/react";
import { useKnownClients } from "@/lib/knownClients";
import { errorsOf, registryOf, threadsOf } from "@/lib/model";
import { accessRefusal, dashboardToken, relayAddress } from "@/lib/relayAddress";
import { useRenderCount } from "@/lib/renderCount";
import { clock } from "@/lib/time";
import { Ago } from "./Ago";
import { StatusPill } from "./StatusPill";
import { RecoveryStatus } from "./RecoveryStatus";
import { ClientList } from "./ClientList";
import { ThreadsPanel } from "./ThreadsPanel";
import { RegistryPanel } from "./RegistryPanel";
import { Timeline } from "./Timeline";
import { AccessRefused, NoClients, OptionsProblem, RelayUnreachable } from "./EmptyState";
import { TopNav } from "./TopNav";

const NO_EVENTS: SessionEvents = { events: [], droppedCount: 0 };

export function Dashboard() {
  useRenderCount("Dashboard");
  const params = useSearchParams();
  const router = useRouter();
  // (Rendered in the browser only: the page's Suspense boundary keeps useSearchParams out of the static build.)
  const relayUrl = relayAddress(params.get("relay"), typeof window === "undefined" ? null : window.location);
  const wanted = params.get("clientId");
  // ?buffer=N: events kept per client (the package's ring buffer; default 5000). Passed on as given (a number,
  // NaN included) so that a bad value is reported by the package, naming the option, rather than ignored.
  const bufferParam = params.get("buffer");
  const buffer = bufferParam === null || bufferParam.trim() === "" ? undefined : Number(bufferParam);
  // The token the relay printed in this page's URL fragment (kept for the tab): sent in the first message.
  const [token] = useState(dashboardToken);
  // ?follow=selected: the connection subscribes to the selected client's channel only (v2), so this page receives
  // that client's traffic and nothing of the others. The page's first value goes in the options (so the first
  // subscriptions are already the right ones); later switches go to the connection, which must not reconnect.
  const follow = params.get("follow") === "selected";
  const [initialFollow] = useState(follow);
  const dt = useDevtoolsConnection({
    url: relayUrl,
    eventCapacity: buffer,
    token: token ?? undefined,
    followSelected: initialFollow,
  });
  const refused = accessRefusal(dt.status, dt.error);
  const { known, forget } = useKnownClients(dt.clients, dt.status);

  const setParam = useCallback(
    (key: string, value: string | null) => {
      const p = new URLSearchParams(params.toString());
      if (value === null) p.delete(key);
      else p.set(key, value);
      router.replace(`?${p.toString()}`, { scroll: false });
    },
    [params, router],
  );

  // The selection has one source of truth: `?clientId=` (so it survives reloads and can be shared). With none
  // yet, the first client that shows up is put there.
  const firstLive = dt.clients[0]?.sessionId ?? null;
  useEffect(() => {
    if (!wanted && firstLive) setParam("clientId", firstLive);
  }, [wanted, firstLive, setParam]);
  const selectedId = wanted ?? firstLive;

  // The connection follows it: selecting is what asks the SDK for a snapshot it has none of (once per session
  // and connection; the package clears its selection when the client leaves, and this puts it back, so the client
  // is asked again when it returns). Nothing else asks, so opening a client sends exactly one request.
  const { connection } = dt;
  useEffect(() => {
    connection?.setFollowSelected(follow);
  }, [connection, follow]);
  const storeSelection = dt.selectedSessionId;
  useEffect(() => {
    if (connection && storeSelection !== selectedId) connection.selectSession(selectedId);
  }, [connection, selectedId, storeSelection]);

  const onSelect = useCallback((id: string) => setParam("clientId", id), [setParam]);
  const onForget = useCallback(
    (id: string) => {
      forget(id);
      if (id === selectedId) setParam("clientId", null);
    },
    [forget, selectedId, setParam],
  );

  const selected = known.find((k) => k.info.sessionId === selectedId);
  const live = dt.clients.some((c) => c.sessionId === selectedId);

  let main: React.ReactNode;
  if (dt.optionsError) {
    main = <OptionsProblem error={dt.optionsError} param={pageParameter(dt.optionsError)} />;
  } else if (refused) {
    main = <AccessRefused code={refused.code} reason={refused.reason} relayUrl={relayUrl} hadToken={token !== null} />;
  } else if (selectedId && live && connection) {
    main = (
      <ClientView
        key={selectedId}
        sessionId={selectedId}
        snapshot={dt.snapshots[selectedId]}
        events={dt.events[selectedId] ?? NO_EVENTS}
        connection={connection}
        offline={!dt.isConnected}
        offlineAttempt={dt.reconnectAttempt}
        recoveryOutcome={dt.recovery[selectedId]?.outcome ?? null}
        recoveryReplayed={dt.recovery[selectedId]?.replayed ?? 0}
        recoveryReason={dt.recovery[selectedId]?.reason ?? null}
      />
    );
  } else if (selectedId && (selected || !dt.isConnected)) {
    main = (
      <div className="teach gone" data-testid="client-gone" data-state={selected?.state ?? "unknown"}>
        <h2>
          <code>{selectedId}</code> is {dt.isConnected ? "disconnected" : "unreachable: the relay is offline"}
        </h2>
        <p>
          {selected?.since ? (
            <>
              Since {clock(selected.since)} (<Ago ms={selected.since} />
              ).{" "}
            </>
          ) : (
            ""
          )}
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
        <h1 className="brand">
          <span className="logo" aria-hidden>
            ◆
          </span>{" "}
          devrelay
        </h1>
        <TopNav current="sessions" relayParam={params.get("relay")} />
        <code className="relay-url" title="Relay address (?relay= to change)">
          {relayUrl}
        </code>
        <StatusPill status={dt.status} attempt={dt.reconnectAttempt} error={dt.error} />
        <RecoveryStatus last={dt.lastReconnect} status={dt.status} />
        <label className="small follow-toggle" title="Receive the selected client's traffic only (v2 relays)">
          <input
            type="checkbox"
            checked={follow}
            onChange={(e) => setParam("follow", e.target.checked ? "selected" : null)}
            data-testid="follow-selected"
          />{" "}
          selected client only
        </label>
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
            onSelect={onSelect}
            onForget={onForget}
            snapshots={dt.snapshots}
            events={dt.events}
          />
        </aside>
        <main className="main">{main}</main>
      </div>
    </div>
  );
}

/** The page parameter an invalid option came from, so the page can say what to fix in its own URL. */
function pageParameter(error: DevtoolsOptionsError): string | null {
  if (error.field === "url") return "relay";
  if (error.field === "eventCapacity") return "buffer";
  return null;
}

type Tab = "threads" | "registry";
const TABS: Tab[] = ["threads", "registry"];

/** The open client. Memoized with primitive props: a change elsewhere on the page does not re-render it. */
const ClientView = memo(function ClientView({
  sessionId,
  snapshot,
  events,
  connection,
  offline,
  offlineAttempt,
  recoveryOutcome,
  recoveryReplayed,
  recoveryReason,
}: {
  sessionId: string;
  snapshot: Snapshot | undefined;
  events: SessionEvents;
  connection: DevtoolsConnection;
  /** The relay is unreachable: the view shows the last known state. */
  offline: boolean;
  offlineAttempt: number;
  /** How this client came through the last reconnect (null: it was not there, or no reconnect yet). */
  recoveryOutcome: RecoveryOutcome | null;
  recoveryReplayed: number;
  recoveryReason: string | null;
}) {
  useRenderCount("ClientView");
  const [tab, setTab] = useState<Tab>("threads");
  const [threadId, setThreadId] = useState<string | null>(null);
  // Dismissed errors by identity, not by count: the SDK's error list rolls (old ones drop off the front as new
  // ones arrive), so "the first N" would hide the new ones.
  const [dismissed, setDismissed] = useState<ReadonlySet<string>>(() => new Set());
  const threads = threadsOf(snapshot);
  const registry = registryOf(snapshot);
  const errors = errorsOf(snapshot);
  const threadNames = useMemo(() => new Map(threads.map((t) => [t.id, t.name])), [threads]);
  const streaming = useMemo(() => threads.filter((t) => t.status === "streaming").length, [threads]);
  const visibleErrors = useMemo(() => errors.filter((e) => !dismissed.has(e.key)), [errors, dismissed]);
  const onClear = useCallback(() => connection.clearStreamEvents(sessionId), [connection, sessionId]);

  const ids = useId();
  const tabId = (t: Tab) => `${ids}-tab-${t}`;
  const panelId = (t: Tab) => `${ids}-panel-${t}`;
  const tabList = useRef<HTMLDivElement>(null);
  // The APG tabs pattern: one tab stop; ←/→ (wrapping), Home and End move the selection and the focus.
  const onTabKey = (e: React.KeyboardEvent) => {
    const at = TABS.indexOf(tab);
    const next =
      e.key === "ArrowRight"
        ? TABS[(at + 1) % TABS.length]
        : e.key === "ArrowLeft"
          ? TABS[(at - 1 + TABS.length) % TABS.length]
          : e.key === "Home"
            ? TABS[0]
            : e.key === "End"
              ? TABS[TABS.length - 1]
              : null;
    if (next === null) return;
    e.preventDefault();
    setTab(next);
    tabList.current?.querySelector<HTMLElement>(`[data-tab="${next}"]`)?.focus();
  };
  const registryCount = registry.tools.length + registry.components.length + registry.mcpServers.length;
  const waiting = (
    <div className="teach">
      <h3>Waiting for this client&apos;s first snapshot</h3>
      <p className="muted">
        SDKs send one after their handshake. If it does not come, ask for one with <em>Request snapshot</em>.
      </p>
    </div>
  );

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
          {snapshot ? (
            <>
              snapshot {clock(snapshot.timestamp)} · <Ago ms={snapshot.timestamp} />
            </>
          ) : (
            "no snapshot yet"
          )}
        </span>
        {(recoveryOutcome === "recovered" || recoveryOutcome === "resynced") && (
          <span
            className={`badge ${recoveryOutcome === "resynced" ? "warn" : ""}`}
            data-testid="session-recovery"
            data-outcome={recoveryOutcome}
            title={recoveryReason ?? undefined}
          >
            {recoveryOutcome === "recovered"
              ? `${recoveryReplayed.toLocaleString("en-US")} missed replayed`
              : "resynced: older events dropped"}
          </span>
        )}
        <div className="spacer" />
        <button type="button" data-testid="request-snapshot" onClick={() => connection.requestSnapshot(sessionId)}>
          ⟳ Request snapshot
        </button>
      </div>
      {offline && (
        <div className="offline-banner" role="status" data-testid="offline-banner">
          Relay offline: showing this client&apos;s last known state. Reconnecting
          {offlineAttempt > 0 ? ` (attempt ${offlineAttempt})` : ""}…
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
                <li key={`${e.key}#${i}`} data-testid="error-item">
                  <span className="muted small">{clock(e.timestamp)}</span> {e.message}
                  {e.threadId && (
                    <button
                      type="button"
                      className="link"
                      onClick={() => {
                        setTab("threads");
                        setThreadId(e.threadId ?? null);
                      }}
                    >
                      {threadNames.get(e.threadId) ?? e.threadId}
                    </button>
                  )}
                </li>
              ))}
          </ul>
          <button
            type="button"
            className="link dismiss"
            data-testid="dismiss-errors"
            // Everything listed now, by identity; keys of errors no longer in the list are dropped with it.
            onClick={() => setDismissed(new Set(errors.map((e) => e.key)))}
          >
            dismiss
          </button>
        </div>
      )}
      <div className="panes">
        <div className="pane-left">
          <div className="tabs" role="tablist" aria-label="Client details" ref={tabList} onKeyDown={onTabKey}>
            {TABS.map((t) => (
              <button
                key={t}
                type="button"
                role="tab"
                id={tabId(t)}
                data-tab={t}
                data-testid={`tab-${t}`}
                aria-selected={tab === t}
                aria-controls={panelId(t)}
                tabIndex={tab === t ? 0 : -1}
                onClick={() => setTab(t)}
              >
                {t === "threads" ? "Threads" : "Registry"}{" "}
                <span className="count">{t === "threads" ? threads.length : registryCount}</span>
              </button>
            ))}
          </div>
          <div
            className="tab-panel"
            role="tabpanel"
            id={panelId("threads")}
            aria-labelledby={tabId("threads")}
            data-testid="panel-threads"
            hidden={tab !== "threads"}
          >
            {!snapshot ? (
              waiting
            ) : (
              <ThreadsPanel threads={threads} selectedThreadId={threadId} onSelectThread={setThreadId} />
            )}
          </div>
          <div
            className="tab-panel"
            role="tabpanel"
            id={panelId("registry")}
            aria-labelledby={tabId("registry")}
            data-testid="panel-registry"
            hidden={tab !== "registry"}
          >
            {!snapshot ? waiting : <RegistryPanel {...registry} />}
          </div>
        </div>
        <div className="pane-right">
          <Timeline
            events={events.events}
            droppedCount={events.droppedCount}
            onClear={onClear}
            selectedThreadId={threadId}
            threadNames={threadNames}
          />
        </div>
      </div>
    </div>
  );
});
