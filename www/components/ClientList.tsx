"use client";
// Client cards: one per SDK session (live or recently gone); choosing one selects it (and sets ?clientId=).
// Each card is a list item holding two sibling buttons, "select" (the card's content) and, for a client that
// left, "forget": never one control inside another, so Enter or a click reaches exactly the one it is on.

import { memo } from "react";
import type { DevtoolsState, Snapshot } from "devrelay-client";
import type { KnownClient } from "@/lib/knownClients";
import { threadsOf } from "@/lib/model";
import { useRenderCount } from "@/lib/renderCount";
import { clock } from "@/lib/time";
import { Ago } from "./Ago";

export function ClientList({
  known,
  selectedId,
  onSelect,
  onForget,
  snapshots,
  events,
}: {
  known: KnownClient[];
  selectedId: string | null;
  /** Both callbacks must keep their identity across renders: the cards are memoized. */
  onSelect: (sessionId: string) => void;
  onForget: (sessionId: string) => void;
  snapshots: DevtoolsState["snapshots"];
  events: DevtoolsState["events"];
}) {
  useRenderCount("ClientList");
  const liveCount = known.filter((k) => k.state === "live").length;
  return (
    <nav className="client-list" aria-label="SDK clients">
      <h2 className="section-title">
        Clients <span className="count" data-testid="client-count">{liveCount}</span>
      </h2>
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
      {known.length > 0 && (
        <ul className="client-cards">
          {known.map((k) => (
            <ClientCard
              key={k.info.sessionId}
              client={k}
              selected={k.info.sessionId === selectedId}
              snapshot={snapshots[k.info.sessionId]}
              eventCount={events[k.info.sessionId]?.events.length ?? 0}
              onSelect={onSelect}
              onForget={onForget}
            />
          ))}
        </ul>
      )}
    </nav>
  );
}

/** One card; memoized, so a change in one client (or the page) does not re-render the others. */
const ClientCard = memo(function ClientCard({
  client: k,
  selected,
  snapshot,
  eventCount,
  onSelect,
  onForget,
}: {
  client: KnownClient;
  selected: boolean;
  snapshot: Snapshot | undefined;
  eventCount: number;
  onSelect: (sessionId: string) => void;
  onForget: (sessionId: string) => void;
}) {
  const id = k.info.sessionId;
  useRenderCount(`ClientCard:${id}`);
  // Cached per snapshot object (lib/model.ts): not recomputed for every card on every render.
  const threads = threadsOf(snapshot);
  const streaming = threads.some((t) => t.status === "streaming");
  // The relay says the SDK stopped answering its pings (paused at a breakpoint, a laptop lid): still connected,
  // dropped at `dropAt` unless it answers. Distinct from the card's own "stale" (the relay itself is away).
  const unresponsive = k.state === "live" && k.info.staleSince !== undefined;
  const dot =
    k.state === "live" ? (unresponsive ? "reconnecting" : "open") : k.state === "stale" ? "reconnecting" : "closed";
  return (
    <li
      className={`client-card ${k.state} ${selected ? "selected" : ""}`}
      data-testid="client-card"
      data-session-id={id}
      data-state={k.state}
      data-unresponsive={unresponsive ? "true" : undefined}
    >
      <button
        type="button"
        className="client-card-select"
        data-testid="client-card-select"
        aria-current={selected ? "true" : undefined}
        onClick={() => onSelect(id)}
      >
        <span className="client-card-head">
          <span className={`dot dot-${dot}`} aria-hidden />
          <span className="client-id" title={id}>
            {id}
          </span>
          {streaming && k.state === "live" && !unresponsive && <span className="badge streaming">streaming</span>}
          {unresponsive && (
            <span className="badge warn" data-testid="client-unresponsive" title="the SDK stopped answering the relay's pings">
              stale
            </span>
          )}
        </span>
        <span className="client-meta">
          <span className="k">SDK</span>
          <span className="v">{k.info.sdkVersion}</span>
          <span className="k">Project</span>
          <span className="v">{k.info.projectId ?? "–"}</span>
          {k.info.origin !== undefined && (
            <>
              <span className="k">Origin</span>
              <span className="v" data-testid="client-origin" title="the page this SDK runs in">
                {k.info.origin}
              </span>
            </>
          )}
          {unresponsive && (
            <>
              <span className="k">Status</span>
              <span className="v warn" data-testid="client-stale-status">
                not answering since {clock(k.info.staleSince!)}: dropped unless it answers soon
              </span>
            </>
          )}
          {k.state === "live" ? (
            <>
              <span className="k">Since</span>
              <span className="v" title={new Date(k.info.connectedAt).toISOString()}>
                {clock(k.info.connectedAt)} · <Ago ms={k.info.connectedAt} />
              </span>
              <span className="k">Activity</span>
              <span className="v">
                {threads.length} threads · {eventCount} events
              </span>
            </>
          ) : (
            <>
              <span className="k">Status</span>
              <span className={`v ${k.state === "stale" ? "warn" : "bad"}`}>
                {k.state === "stale" ? "relay offline" : "disconnected"} {clock(k.since)}
              </span>
            </>
          )}
        </span>
      </button>
      {k.state !== "live" && (
        <button
          type="button"
          className="forget"
          data-testid="client-forget"
          title="Forget this client"
          aria-label={`Forget ${id}`}
          onClick={() => onForget(id)}
        >
          ×
        </button>
      )}
    </li>
  );
});
