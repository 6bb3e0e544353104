"use client";
// Every channel's messages as they arrive (global, metrics, sessions/*, agents/*, topics/*): a virtualized list
// (newest at the bottom, followed while scrolled to the end), filters by channel, event and free text, pause and
// resume (the list holds still while paused and counts what arrived meanwhile), clear, and a detail pane with the
// message's JSON. Keyboard: ↑/↓ move through the messages, Esc closes the details.

import { memo, useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import { useVirtualizer } from "@tanstack/react-virtual";
import type { ChannelMessage } from "devrelay-client";
import type { ChannelFeed } from "devrelay-client/react";
import { LIVE_CHANNELS, matches, messageKey, namespaceOf, preview, seen, type LiveFilter } from "@/lib/liveFilter";
import { clockMs, useDebounced } from "@/lib/time";
import { JsonTree } from "../JsonTree";

const ROW_HEIGHT = 26;

export const LiveStream = memo(function LiveStream({ feed }: { feed: ChannelFeed }) {
  const [channel, setChannel] = useState("");
  const [event, setEvent] = useState("");
  const [text, setText] = useState("");
  const debouncedText = useDebounced(text, 150);
  const filter: LiveFilter = useMemo(() => ({ channel, event, text: debouncedText }), [channel, event, debouncedText]);

  // Paused: the list shows what it showed when paused; `total` goes on counting.
  const [paused, setPaused] = useState<{ messages: readonly ChannelMessage[]; total: number } | null>(null);
  // Cleared: messages that arrived before (by their number in the feed) are hidden.
  const [clearedAt, setClearedAt] = useState(0);
  const shown = paused ? paused.messages : feed.messages;
  const shownTotal = paused ? paused.total : feed.total;
  const firstNumber = shownTotal - shown.length;
  const visible = useMemo(
    () => (clearedAt > firstNumber ? shown.slice(clearedAt - firstNumber) : shown),
    [shown, clearedAt, firstNumber],
  );
  const rows = useMemo(() => visible.filter((m) => matches(m, filter)), [visible, filter]);
  const menus = useMemo(() => seen(visible), [visible]);
  const arrivedWhilePaused = paused ? feed.total - paused.total : 0;

  const [selected, setSelected] = useState<string | null>(null);
  const selectedMessage = useMemo(
    () => (selected === null ? null : (visible.find((m) => messageKey(m) === selected) ?? null)),
    [visible, selected],
  );

  const scroller = useRef<HTMLDivElement>(null);
  const [follow, setFollow] = useState(true);
  const virtualizer = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 20,
  });
  const pinToEnd = () => {
    const el = scroller.current;
    if (el) el.scrollTop = el.scrollHeight;
  };
  useLayoutEffect(() => {
    if (follow) pinToEnd();
  }, [follow, rows.length, shownTotal]);
  const followRef = useRef(follow);
  followRef.current = follow;
  useEffect(() => {
    const el = scroller.current;
    if (!el) return undefined;
    const ro = new ResizeObserver(() => {
      if (followRef.current) pinToEnd();
    });
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  const onScroll = () => {
    const el = scroller.current;
    if (!el) return;
    const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < ROW_HEIGHT;
    if (atBottom !== follow) setFollow(atBottom);
  };
  const onKeyDown = (ev: React.KeyboardEvent) => {
    if (ev.key === "Escape") {
      setSelected(null);
      return;
    }
    if ((ev.key !== "ArrowUp" && ev.key !== "ArrowDown") || rows.length === 0) return;
    ev.preventDefault();
    const at = rows.findIndex((m) => messageKey(m) === selected);
    const from = at < 0 ? rows.length : at;
    const next = Math.min(rows.length - 1, Math.max(0, from + (ev.key === "ArrowUp" ? -1 : 1)));
    setSelected(messageKey(rows[next]));
    virtualizer.scrollToIndex(next, { align: "auto" });
  };

  const virtualItems = virtualizer.getVirtualItems();
  const activeIndex = selected === null ? -1 : virtualItems.findIndex((v) => rows[v.index] && messageKey(rows[v.index]) === selected);
  const togglePause = () => setPaused((p) => (p ? null : { messages: feed.messages, total: feed.total }));

  return (
    <section className="live-stream" aria-labelledby="live-title" data-testid="live-stream">
      <header className="timeline-head">
        <h2 id="live-title" className="live-title">
          Messages{" "}
          <span className="count" data-testid="live-count">
            {rows.length}
          </span>
        </h2>
        <span className="muted small" data-testid="live-total">
          {feed.total.toLocaleString("en-US")} received
          {feed.dropped > 0 ? `, ${feed.dropped.toLocaleString("en-US")} beyond the buffer` : ""}
        </span>
        {feed.error && (
          <span className="bad small" data-testid="live-error">
            {feed.error.code}: {feed.error.message}
          </span>
        )}
        <div className="spacer" />
        <button
          type="button"
          aria-pressed={paused !== null}
          data-testid="live-pause"
          data-state={paused ? "paused" : "running"}
          onClick={togglePause}
        >
          {paused ? "Resume" : "Pause"}
        </button>
        {paused && (
          <span className="badge warn" role="status" data-testid="live-paused-count">
            {arrivedWhilePaused.toLocaleString("en-US")} new while paused
          </span>
        )}
        <button
          type="button"
          data-testid="live-clear"
          disabled={visible.length === 0}
          onClick={() => {
            setClearedAt(paused ? feed.total : shownTotal);
            setPaused(null);
            setSelected(null);
          }}
        >
          Clear
        </button>
      </header>
      <div className="live-filters" role="group" aria-label="Filters">
        <label>
          <span className="small muted">Channel</span>
          <select value={channel} onChange={(e) => setChannel(e.target.value)} data-testid="live-filter-channel">
            <option value="">all channels</option>
            {LIVE_CHANNELS.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
            {menus.channels
              .filter((c) => !(LIVE_CHANNELS as readonly string[]).includes(c))
              .map((c) => (
                <option key={c} value={c}>
                  {c}
                </option>
              ))}
          </select>
        </label>
        <label>
          <span className="small muted">Event</span>
          <select value={event} onChange={(e) => setEvent(e.target.value)} data-testid="live-filter-event">
            <option value="">all events</option>
            {menus.events.map((e) => (
              <option key={e} value={e}>
                {e}
              </option>
            ))}
            {event !== "" && !menus.events.includes(event) && <option value={event}>{event}</option>}
          </select>
        </label>
        <label className="live-search">
          <span className="small muted">Text</span>
          <input
            type="search"
            value={text}
            placeholder="in channel, event or data"
            onChange={(e) => setText(e.target.value)}
            data-testid="live-filter-text"
          />
        </label>
      </div>
      <div className="timeline-body">
        <div
          className="timeline-scroller"
          ref={scroller}
          onScroll={onScroll}
          onKeyDown={onKeyDown}
          tabIndex={0}
          role={rows.length > 0 ? "listbox" : "region"}
          aria-label="Channel messages (↑/↓ to move, Esc to close the details)"
          aria-activedescendant={activeIndex >= 0 ? `live-row-${virtualItems[activeIndex].index}` : undefined}
          data-testid="live-scroller"
        >
          {rows.length === 0 ? (
            <div className="empty small" data-testid="live-empty">
              {visible.length === 0
                ? `No messages yet. Everything published on ${LIVE_CHANNELS.join(", ")} shows here as it arrives.`
                : "No message matches these filters."}
            </div>
          ) : (
            <div style={{ height: virtualizer.getTotalSize(), position: "relative" }} role="presentation">
              {virtualItems.map((v) => {
                const m = rows[v.index];
                const key = messageKey(m);
                const ns = namespaceOf(m.channel);
                return (
                  <div
                    key={key}
                    id={`live-row-${v.index}`}
                    role="option"
                    aria-selected={key === selected}
                    data-testid="live-row"
                    data-channel={m.channel}
                    data-event={m.event}
                    className={`timeline-row live-row ns-${ns} ${key === selected ? "selected" : ""}`}
                    style={{ transform: `translateY(${v.start}px)`, height: ROW_HEIGHT }}
                    onClick={() => setSelected(key === selected ? null : key)}
                  >
                    <span className="t">{clockMs(m.timestamp)}</span>
                    <span className={`live-channel ns-${ns}`} title={m.channel}>
                      {m.channel}
                    </span>
                    <span className="live-event" title={m.event}>
                      {m.event}
                    </span>
                    <span className="summary">{preview(m)}</span>
                    <span className="live-offset">#{m.offset}</span>
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
            data-testid="live-jump"
            onClick={() => {
              setFollow(true);
              pinToEnd();
            }}
          >
            ↓ Jump to latest
          </button>
        )}
      </div>
      {selected !== null && (
        <div className="event-detail" data-testid="live-detail">
          {selectedMessage ? (
            <>
              <div className="event-detail-head">
                <code>{selectedMessage.channel}</code>
                <code>{selectedMessage.event}</code>
                <span className="muted small">
                  offset {selectedMessage.offset} · epoch {selectedMessage.epoch} · {clockMs(selectedMessage.timestamp)}
                </span>
                <div className="spacer" />
                <button type="button" className="link" onClick={() => setSelected(null)}>
                  close
                </button>
              </div>
              <JsonTree data={selectedMessage.data} depth={3} />
            </>
          ) : (
            <div className="empty small">
              This message is no longer in the buffer.{" "}
              <button type="button" className="link" onClick={() => setSelected(null)}>
                close
              </button>
            </div>
          )}
        </div>
      )}
    </section>
  );
});
