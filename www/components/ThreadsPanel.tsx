"use client";
// Threads of the selected client: filters (status, role, content type, debounced search), the thread list, and
// the selected thread's messages with every content block.

import { memo, useMemo, useState } from "react";
import {
  CONTENT_TYPES,
  isFiltered,
  messageMatches,
  NO_FILTER,
  ROLES,
  type ThreadFilter,
  threadMatches,
  type ThreadView,
} from "@/lib/model";
import { useRenderCount } from "@/lib/renderCount";
import { clock, useDebounced } from "@/lib/time";
import { Ago } from "./Ago";
import { MessageBlock } from "./MessageBlock";

const SEARCH_DEBOUNCE_MS = 250;

export const ThreadsPanel = memo(function ThreadsPanel({
  threads,
  selectedThreadId,
  onSelectThread,
}: {
  threads: ThreadView[];
  selectedThreadId: string | null;
  onSelectThread: (id: string | null) => void;
}) {
  useRenderCount("ThreadsPanel");
  const [filter, setFilter] = useState<ThreadFilter>(NO_FILTER);
  const search = useDebounced(filter.search, SEARCH_DEBOUNCE_MS);
  const applied = useMemo(() => ({ ...filter, search }), [filter, search]);
  const statuses = useMemo(() => [...new Set(threads.map((t) => t.status))].sort(), [threads]);
  // Newest first.
  const visible = useMemo(
    () => threads.filter((t) => threadMatches(t, applied)).sort((a, b) => (b.createdAt ?? 0) - (a.createdAt ?? 0)),
    [threads, applied],
  );
  const selected = threads.find((t) => t.id === selectedThreadId) ?? null;
  const set = (patch: Partial<ThreadFilter>) => setFilter((f) => ({ ...f, ...patch }));

  return (
    <div className="threads-panel">
      <div className="filters" role="search">
        <input
          type="search"
          placeholder="Search messages, tools, components…"
          aria-label="Search threads"
          data-testid="thread-search"
          value={filter.search}
          onChange={(e) => set({ search: e.target.value })}
        />
        <select aria-label="Status" data-testid="filter-status" value={filter.status} onChange={(e) => set({ status: e.target.value })}>
          <option value="">any status</option>
          {statuses.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
        <select aria-label="Message role" data-testid="filter-role" value={filter.role} onChange={(e) => set({ role: e.target.value })}>
          <option value="">any role</option>
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
        <select
          aria-label="Content type"
          data-testid="filter-content"
          value={filter.contentType}
          onChange={(e) => set({ contentType: e.target.value })}
        >
          <option value="">any content</option>
          {CONTENT_TYPES.map((c) => (
            <option key={c} value={c}>
              {c}
            </option>
          ))}
        </select>
        {isFiltered(filter) && (
          <button type="button" className="link" onClick={() => setFilter(NO_FILTER)}>
            clear
          </button>
        )}
      </div>
      <div className="threads-split">
        <ul className="thread-list" data-testid="thread-list">
          {threads.length === 0 && (
            <li className="empty small">No threads yet: they appear when the app starts a conversation.</li>
          )}
          {threads.length > 0 && visible.length === 0 && (
            <li className="empty small">No thread matches these filters.</li>
          )}
          {visible.map((t) => {
            const last = t.messages[t.messages.length - 1];
            const preview = last?.content.find((b) => b.type === "text")?.text;
            return (
              <li key={t.id}>
                <button
                  type="button"
                  className={`thread-item ${t.id === selectedThreadId ? "selected" : ""}`}
                  data-testid="thread-item"
                  data-thread-id={t.id}
                  onClick={() => onSelectThread(t.id === selectedThreadId ? null : t.id)}
                >
                  <span className="thread-name">{t.name}</span>
                  <span className={`badge status-${t.status}`}>{t.status}</span>
                  <span className="thread-meta">
                    {t.messages.length} msgs · <Ago ms={t.createdAt} />
                  </span>
                  {typeof preview === "string" && preview && <span className="thread-preview">{preview}</span>}
                </button>
              </li>
            );
          })}
        </ul>
        <div className="messages" data-testid="messages">
          {!selected ? (
            <div className="empty">
              {threads.length > 0 ? "Select a thread to see its messages." : "Messages show here once a thread exists."}
            </div>
          ) : (
            <ThreadMessages thread={selected} filter={applied} />
          )}
        </div>
      </div>
    </div>
  );
});

function ThreadMessages({ thread, filter }: { thread: ThreadView; filter: ThreadFilter }) {
  const filtered = isFiltered({ ...filter, status: "" });
  return (
    <div>
      <div className="thread-head">
        <h3>{thread.name}</h3>
        <span className={`badge status-${thread.status}`} data-testid="thread-status">
          {thread.status}
        </span>
        <code className="muted">{thread.id}</code>
        <span className="muted small">started {clock(thread.createdAt)}</span>
      </div>
      {thread.messages.length === 0 && <div className="empty small">No messages in this thread yet.</div>}
      {thread.messages.map((m) => (
        <article
          key={m.id}
          className={`message ${filtered && !messageMatches(m, filter) ? "dimmed" : ""}`}
          data-testid="message"
          data-role={m.role}
        >
          <header>
            <span className={`role role-${m.role}`}>{m.role}</span>
            <code className="muted">{m.id}</code>
            <span className="muted small">{clock(m.createdAt)}</span>
          </header>
          {m.content.map((b, i) => (
            <MessageBlock key={i} block={b} />
          ))}
        </article>
      ))}
    </div>
  );
}
