"use client";
// The live event timeline of one client: a virtualized list (thousands of rows stay smooth), one colour per
// event category, a one-line summary per event, a detail pane with the event's JSON, auto-scroll that stops when
// the user scrolls up (with "jump to latest"), the count of events dropped from the client's buffer, and clear.

import { memo, useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import { useVirtualizer } from "@tanstack/react-virtual";
import type { EventCategory, StreamEventEntry } from "devrelay-client";
import { useRenderCount } from "@/lib/renderCount";
import { clockMs } from "@/lib/time";
import { JsonTree } from "./JsonTree";

const ROW_HEIGHT = 26;
export const CATEGORIES: EventCategory[] = ["run", "text", "tool", "component", "thinking", "other"];

export const Timeline = memo(function Timeline({
  events,
  droppedCount,
  onClear,
  selectedThreadId,
  threadNames,
}: {
  events: StreamEventEntry[];
  droppedCount: number;
  onClear: () => void;
  selectedThreadId: string | null;
  threadNames: Map<string, string>;
}) {
  useRenderCount("Timeline");
  const [hidden, setHidden] = useState<Set<EventCategory>>(() => new Set());
  const [threadOnly, setThreadOnly] = useState(false);
  const [follow, setFollow] = useState(true);
  const [seenId, setSeenId] = useState(0);
  const [selectedId, setSelectedId] = useState<number | null>(null);
  const scroller = useRef<HTMLDivElement>(null);

  const rows = useMemo(
    () =>
      events.filter(
        (e) => !hidden.has(e.category) && (!threadOnly || !selectedThreadId || e.threadId === selectedThreadId),
      ),
    [events, hidden, threadOnly, selectedThreadId],
  );
  // The SDK numbers its events 1, 2, 3, ...: a skip means events never reached this dashboard (after a reconnect
  // the package replays what was missed, or drops the old events and starts over, so there should be none).
  const seqGaps = useMemo(() => {
    let gaps = 0;
    for (let i = 1; i < events.length; i++) if (events[i].seq !== events[i - 1].seq + 1) gaps++;
    return gaps;
  }, [events]);
  const counts = useMemo(() => {
    const c: Record<string, number> = {};
    for (const e of events) c[e.category] = (c[e.category] ?? 0) + 1;
    return c;
  }, [events]);

  const virtualizer = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 20,
  });

  const lastId = rows.length > 0 ? rows[rows.length - 1].id : 0;
  const followRef = useRef(follow);
  followRef.current = follow;
  const pinToEnd = () => {
    const el = scroller.current;
    if (el) el.scrollTop = el.scrollHeight;
  };
  // Pinned by hand rather than with virtualizer.scrollToIndex: rows have a fixed height, so the end is simply
  // scrollHeight, set synchronously in the commit (scrollToIndex re-scrolls a frame later with the list height
  // it measured before, which after a resize lands above the end and reads as "the user scrolled up").
  useLayoutEffect(() => {
    if (follow) pinToEnd();
  }, [follow, lastId, rows.length]);
  // The list's height changes (detail pane opened or closed, window resized): a following timeline stays pinned
  // to the newest event. Done before the browser's resulting scroll event, which would otherwise read as "the
  // user scrolled up" and pause following.
  const detailOpen = selectedId !== null;
  useLayoutEffect(() => {
    if (followRef.current) pinToEnd();
  }, [detailOpen]);
  useEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const ro = new ResizeObserver(() => {
      if (followRef.current) pinToEnd();
    });
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  // While following, everything is "seen"; the jump button counts what arrived since the user scrolled away.
  useEffect(() => {
    if (follow) setSeenId(lastId);
  }, [follow, lastId]);
  const unseen = follow ? 0 : rows.filter((r) => r.id > seenId).length;

  const onScroll = () => {
    const el = scroller.current;
    if (!el) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < ROW_HEIGHT;
    if (atBottom !== follow) setFollow(atBottom);
  };

  const selected = selectedId === null ? null : (events.find((e) => e.id === selectedId) ?? null);

  // Keyboard: ↑/↓ select the previous/next event (from the newest when none is selected), Esc closes details.
  const onKeyDown = (ev: React.KeyboardEvent) => {
    if (ev.key === "Escape") {
      setSelectedId(null);
      return;
    }
    if ((ev.key !== "ArrowUp" && ev.key !== "ArrowDown") || rows.length === 0) return;
    ev.preventDefault();
    const at = rows.findIndex((r) => r.id === selectedId);
    const from = at < 0 ? rows.length : at;
    const next = Math.min(rows.length - 1, Math.max(0, from + (ev.key === "ArrowUp" ? -1 : 1)));
    setSelectedId(rows[next].id);
    virtualizer.scrollToIndex(next, { align: "auto" });
  };
  const toggle = (c: EventCategory) =>
    setHidden((h) => {
      const n = new Set(h);
      if (n.has(c)) n.delete(c);
      else n.add(c);
      return n;
    });

  // aria-activedescendant must name an element that exists: the selected row may have been filtered out, dropped
  // from the buffer, or (virtualized) scrolled out of the rendered window. Only a rendered row is named; keyboard
  // navigation scrolls the row back into the window, which names it again.
  const virtualItems = virtualizer.getVirtualItems();
  const activeRendered = selectedId !== null && virtualItems.some((v) => rows[v.index]?.id === selectedId);

  return (
    <section
      className="timeline"
      data-testid="timeline"
      data-seq-first={events[0]?.seq ?? ""}
      data-seq-last={events[events.length - 1]?.seq ?? ""}
      data-seq-gaps={seqGaps}
    >
      <header className="timeline-head">
        <h3>
          Events <span className="count" data-testid="timeline-count">{events.length}</span>
        </h3>
        {droppedCount > 0 && (
          <span className="badge warn" data-testid="dropped-count" title="Older events fell out of the client's buffer">
            {droppedCount} dropped
          </span>
        )}
        {seqGaps > 0 && (
          <span
            className="badge warn"
            data-testid="seq-gaps"
            title="The SDK's sequence numbers skip: events were lost before they reached the dashboard"
          >
            {seqGaps} gap{seqGaps > 1 ? "s" : ""} in seq
          </span>
        )}
        <div className="spacer" />
        <label className="small">
          <input
            type="checkbox"
            checked={threadOnly}
            disabled={!selectedThreadId}
            onChange={(e) => setThreadOnly(e.target.checked)}
          />{" "}
          selected thread only
        </label>
        <button type="button" data-testid="timeline-clear" onClick={onClear} disabled={events.length === 0}>
          Clear
        </button>
      </header>
      <div className="category-chips">
        {CATEGORIES.map((c) => (
          <button
            key={c}
            type="button"
            className={`chip cat-${c} ${hidden.has(c) ? "off" : ""}`}
            aria-pressed={!hidden.has(c)}
            onClick={() => toggle(c)}
          >
            {c} <span className="chip-count">{counts[c] ?? 0}</span>
          </button>
        ))}
      </div>
      <div className="timeline-body">
        <div
          className="timeline-scroller"
          ref={scroller}
          onScroll={onScroll}
          onKeyDown={onKeyDown}
          tabIndex={0}
          // A listbox only while it has options (an empty listbox is an ARIA error); the empty state is a note.
          role={rows.length > 0 ? "listbox" : "region"}
          aria-label="Stream events (↑/↓ to move, Esc to close the details)"
          aria-activedescendant={activeRendered ? `event-${selectedId}` : undefined}
          data-testid="timeline-scroller"
        >
          {rows.length === 0 ? (
            <div className="empty small">
              {events.length === 0
                ? "No events yet. AG-UI events stream here live while the agent runs."
                : "No event matches these filters."}
            </div>
          ) : (
            <div style={{ height: virtualizer.getTotalSize(), position: "relative" }} role="presentation">
              {virtualItems.map((v) => {
                const e = rows[v.index];
                return (
                  <div
                    key={e.id}
                    role="option"
                    id={`event-${e.id}`}
                    aria-selected={e.id === selectedId}
                    data-testid="timeline-row"
                    data-category={e.category}
                    className={`timeline-row cat-${e.category} ${e.id === selectedId ? "selected" : ""}`}
                    style={{ transform: `translateY(${v.start}px)`, height: ROW_HEIGHT }}
                    onClick={() => setSelectedId(e.id === selectedId ? null : e.id)}
                  >
                    <span className="t">{clockMs(e.timestamp)}</span>
                    <span className={`cat cat-${e.category}`}>{e.category}</span>
                    <span className="summary" title={e.summary}>
                      {e.summary}
                    </span>
                    <span className="thread" title={threadNames.get(e.threadId) ?? e.threadId}>
                      {e.threadId}
                    </span>
                  </div>
                );
              })}
            </div>
          )}
        </div>
        {!follow && rows.length > 0 && (
          <button
            type="button"
            className="jump"
            data-testid="jump-to-latest"
            onClick={() => {
              setFollow(true);
              pinToEnd();
            }}
          >
            ↓ Jump to latest{unseen > 0 ? ` (${unseen} new)` : ""}
          </button>
        )}
      </div>
      {selectedId !== null && (
        <div className="event-detail" data-testid="event-detail">
          {selected ? (
            <>
              <div className="event-detail-head">
                <span className={`cat cat-${selected.category}`}>{selected.category}</span>
                <code>{selected.type}</code>
                <span className="muted small">
                  seq {selected.seq} · {clockMs(selected.timestamp)} · thread{" "}
                  {threadNames.get(selected.threadId) ?? selected.threadId}
                </span>
                <div className="spacer" />
                <button type="button" className="link" onClick={() => setSelectedId(null)}>
                  close
                </button>
              </div>
              <JsonTree data={selected.event} depth={3} />
            </>
          ) : (
            <div className="empty small">
              This event is no longer in the buffer (cleared or dropped).{" "}
              <button type="button" className="link" onClick={() => setSelectedId(null)}>
                close
              </button>
            </div>
          )}
        </div>
      )}
    </section>
  );
});
