"use client";
// Client cards: one per SDK session (live or recently gone); clicking one selects it (and sets ?clientId=).

import type { DevtoolsState } from "devrelay-client";
import type { KnownClient } from "@/lib/knownClients";
import { threadsOf } from "@/lib/model";
import { ago, clock } from "@/lib/time";

export function ClientList({
  known,
  selectedId,
  onSelect,
  onForget,
  state,
  now,
}: {
  known: KnownClient[];
  selectedId: string | null;
  onSelect: (sessionId: string) => void;
  onForget: (sessionId: string) => void;
  state: DevtoolsState;
  now: number;
}) {
  const liveCount = known.filter((k) => k.state === "live").length;
  return (
    <nav className="client-list" aria-label="SDK clients">
      <div className="section-title">
        Clients <span className="count" data-testid="client-count">{liveCount}</span>
      </div>
      {known.length > 1 && (
        <select
          className="client-select"
          aria-label="Select client"
          value={selectedId ?? ""}
          onChange={(e) => onSelect(e.target.value)}
        >
          {selectedId === null && <option value="">Select a client…</option>}
          {known.map((k) => (
            <option key={k.info.sessionId} value={k.info.sessionId}>
              {k.info.sessionId}
              {k.state !== "live" ? ` (${k.state})` : ""}
            </option>
          ))}
        </select>
      )}
      {known.length === 0 && <p className="muted small">No SDK client has connected yet.</p>}
      {known.map((k) => {
        const id = k.info.sessionId;
        const threads = threadsOf(state.snapshots[id]);
        const streaming = threads.some((t) => t.status === "streaming");
        const events = state.events[id]?.events.length ?? 0;
        return (
          <div
            key={id}
            role="button"
            tabIndex={0}
            className={`client-card ${k.state} ${id === selectedId ? "selected" : ""}`}
            data-testid="client-card"
            data-session-id={id}
            data-state={k.state}
            onClick={() => onSelect(id)}
            onKeyDown={(e) => (e.key === "Enter" || e.key === " ") && onSelect(id)}
          >
            <div className="client-card-head">
              <span className={`dot dot-${k.state === "live" ? "open" : k.state === "stale" ? "reconnecting" : "closed"}`} />
              <span className="client-id" title={id}>
                {id}
              </span>
              {streaming && k.state === "live" && <span className="badge streaming">streaming</span>}
              {k.state !== "live" && (
                <button
                  type="button"
                  className="forget"
                  title="Forget this client"
                  onClick={(e) => {
                    e.stopPropagation();
                    onForget(id);
                  }}
                >
                  ×
                </button>
              )}
            </div>
            <dl className="client-meta">
              <dt>SDK</dt>
              <dd>{k.info.sdkVersion}</dd>
              <dt>Project</dt>
              <dd>{k.info.projectId ?? "–"}</dd>
              {k.state === "live" ? (
                <>
                  <dt>Since</dt>
                  <dd title={new Date(k.info.connectedAt).toISOString()}>
                    {clock(k.info.connectedAt)} · {ago(k.info.connectedAt, now)}
                  </dd>
                  <dt>Activity</dt>
                  <dd>
                    {threads.length} threads · {events} events
                  </dd>
                </>
              ) : (
                <>
                  <dt>Status</dt>
                  <dd className={k.state === "stale" ? "warn" : "bad"}>
                    {k.state === "stale" ? "relay offline" : "disconnected"} {clock(k.since)}
                  </dd>
                </>
              )}
            </dl>
          </div>
        );
      })}
    </nav>
  );
}
