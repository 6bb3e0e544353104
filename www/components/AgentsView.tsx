"use client";
// The Agents view: every agent the relay knows (running / idle / offline), and for the selected one its
// terminal (xterm.js, with the scrollback the relay kept), a command box (history, the allowed patterns, why a
// command was rejected), its commands with status badges (exit code, duration, cancel), and its permission
// prompts (Allow / Deny / Always allow), which disappear on every dashboard once one of them answered.

import { useCallback, useEffect, useMemo, useState, useSyncExternalStore } from "react";
import { useRouter, useSearchParams } from "next/navigation";
import { AgentSocket, type SocketStatus } from "@/lib/agentSocket";
import {
  activity,
  AgentsStore,
  splitCommand,
  type AgentView,
  type CommandView,
  type PermissionView,
} from "@/lib/agents";
import { dashboardToken, relayAddress } from "@/lib/relayAddress";
import { AgentTerminal } from "./AgentTerminal";
import { TopNav } from "./TopNav";

const STATUS_LABEL: Record<SocketStatus, string> = {
  connecting: "Connecting…",
  open: "Connected",
  reconnecting: "Reconnecting",
};

export function AgentsView() {
  const params = useSearchParams();
  const router = useRouter();
  const relayUrl = relayAddress(params.get("relay"), typeof window === "undefined" ? null : window.location);
  const store = useMemo(() => new AgentsStore(), []);
  // The token the relay printed in this page's URL fragment (kept for the tab): sent in the first message.
  const [token] = useState(dashboardToken);
  const [conn, setConn] = useState<{ status: SocketStatus; error: string | null }>({ status: "connecting", error: null });

  useEffect(() => {
    const s: AgentSocket = new AgentSocket(relayUrl, token, {
      status: (status, error) => setConn({ status, error }),
      subscribed: (channel) => {
        if (channel.startsWith("agents/")) store.reset(channel.slice("agents/".length));
      },
      publication: (p) => {
        const joined = store.publication(p);
        if (joined) s.watch(`agents/${joined}`);
      },
      presence: (list) => {
        for (const id of store.presence(list)) s.watch(`agents/${id}`);
      },
    });
    store.attach(s);
    return () => {
      store.attach(null);
      s.close();
    };
  }, [relayUrl, token, store]);

  const { agents, socket } = useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
  const wanted = params.get("agent");
  const selected = agents.find((a) => a.id === wanted) ?? (wanted ? undefined : agents[0]);
  const select = useCallback(
    (id: string) => {
      const p = new URLSearchParams(params.toString());
      p.set("agent", id);
      router.replace(`?${p.toString()}`, { scroll: false });
    },
    [params, router],
  );

  return (
    <div className="app">
      <header className="topbar">
        <h1 className="brand">
          <span className="logo" aria-hidden>
            ◆
          </span>{" "}
          devrelay
        </h1>
        <TopNav current="agents" relayParam={params.get("relay")} />
        <code className="relay-url" title="Relay address (?relay= to change)">
          {relayUrl}
        </code>
        <div className="status" role="status" data-testid="agents-connection" data-state={conn.status}>
          <span className={`dot dot-${conn.status}`} aria-hidden />
          <span className="status-label">{STATUS_LABEL[conn.status]}</span>
          {conn.error && conn.status !== "open" && <span className="status-error">{conn.error}</span>}
        </div>
      </header>
      <div className="layout">
        <aside className="sidebar">
          <h2 className="side-title">Agents</h2>
          {agents.length === 0 ? (
            <p className="muted small" data-testid="no-agents">
              No agent yet. Start one: <code>devrelay run -- your-program</code>
            </p>
          ) : (
            <ul className="agent-list" aria-label="Agents">
              {agents.map((a) => (
                <li key={a.id}>
                  <button
                    type="button"
                    className={`agent-item${a.id === selected?.id ? " selected" : ""}`}
                    aria-current={a.id === selected?.id ? "true" : undefined}
                    data-testid="agent-item"
                    data-agent-id={a.id}
                    data-activity={activity(a)}
                    onClick={() => select(a.id)}
                  >
                    <span className="agent-name">{a.name}</span>
                    <ActivityBadge agent={a} />
                  </button>
                </li>
              ))}
            </ul>
          )}
        </aside>
        <main className="main">
          {selected && socket ? (
            <AgentPanel key={selected.id} agent={selected} store={store} socket={socket} />
          ) : (
            <div className="teach" data-testid="agent-none">
              <h2>{wanted ? `Waiting for agent ${wanted}` : "No agent selected"}</h2>
              <p>
                Agents are programs run with <code>devrelay run</code> (or built on the <code>devrelay-agent</code>{" "}
                library). Their terminal output, commands and permission prompts show up here.
              </p>
            </div>
          )}
        </main>
      </div>
    </div>
  );
}

function ActivityBadge({ agent }: { agent: AgentView }) {
  const a = activity(agent);
  return (
    <span className={`badge activity-${a}`} data-testid="activity-badge">
      {a}
    </span>
  );
}

function duration(ms: number | undefined): string {
  if (ms === undefined) return "";
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)} s`;
}

function commandLine(c: { command: string; args: string[] }): string {
  return [c.command, ...c.args.map((a) => (/[\s'"]/.test(a) || a === "" ? JSON.stringify(a) : a))].join(" ");
}

let commandCounter = 0;

function AgentPanel({ agent, store, socket }: { agent: AgentView; store: AgentsStore; socket: AgentSocket }) {
  const [line, setLine] = useState("");
  const [notice, setNotice] = useState<string | null>(null);
  const [history, setHistory] = useState<string[]>([]);
  const [cursor, setCursor] = useState<number | null>(null);
  // This dashboard's own commands (a rejection of one is said next to the box).
  const [mine, setMine] = useState<ReadonlySet<string>>(() => new Set());
  const interactive = Boolean(agent.capabilities.input) && agent.online;
  const allow = agent.capabilities.allow ?? [];

  // A rejection of one of this dashboard's commands is said next to the box (everyone sees it in the list).
  const rejected = [...agent.commands].reverse().find((c) => c.state === "rejected" && mine.has(c.id));
  const rejection = rejected ? `${commandLine(rejected)} was rejected: ${rejected.reason ?? "no reason given"}` : null;

  const run = async (e: React.FormEvent) => {
    e.preventDefault();
    const parsed = splitCommand(line);
    if ("error" in parsed) {
      setNotice(parsed.error);
      return;
    }
    const id = `${socket.clientId ?? "dash"}-${Date.now().toString(36)}-${++commandCounter}`;
    setMine((m) => new Set(m).add(id));
    setHistory((h) => [...h.filter((x) => x !== line), line].slice(-50));
    setCursor(null);
    setLine("");
    setNotice(null);
    const reply = await socket.request({ type: "command", id, agentId: agent.id, ...parsed });
    if (reply.type === "error") setNotice(`${reply.code}: ${reply.message}`);
  };

  const onKey = (e: React.KeyboardEvent<HTMLInputElement>) => {
    if (history.length === 0 || (e.key !== "ArrowUp" && e.key !== "ArrowDown")) return;
    e.preventDefault();
    const at = cursor ?? history.length;
    const next = e.key === "ArrowUp" ? Math.max(0, at - 1) : Math.min(history.length, at + 1);
    setCursor(next === history.length ? null : next);
    setLine(next === history.length ? "" : history[next]);
  };

  const input = useCallback((data: string) => void socket.request({ type: "input", agentId: agent.id, data }), [socket, agent.id]);
  const resize = useCallback(
    (cols: number, rows: number) => void socket.request({ type: "resize", agentId: agent.id, cols, rows }),
    [socket, agent.id],
  );

  const p = agent.program;
  return (
    <div className="agent-panel" data-testid="agent-panel" data-agent-id={agent.id}>
      <div className="client-head">
        <h2>
          <code>{agent.name}</code>
        </h2>
        <ActivityBadge agent={agent} />
        {p && (
          <span className="muted small" data-testid="program-status" data-state={p.state}>
            {p.program ? commandLine({ command: p.program, args: p.args ?? [] }) : "no program"}
            {p.state === "exited" &&
              ` · exited ${p.exitCode !== undefined ? `with ${p.exitCode}` : `by signal ${p.signal}`}`}
            {p.state === "running" && p.pid ? ` · pid ${p.pid}` : ""}
          </span>
        )}
      </div>
      {agent.permissions.map((q) => (
        <PermissionPrompt key={q.requestId} request={q} agentId={agent.id} socket={socket} />
      ))}
      {agent.lastResolved && agent.permissions.length === 0 && (
        <p className="muted small" data-testid="permission-resolved" role="status">
          Permission request {agent.lastResolved.requestId} {agent.lastResolved.allowed ? "allowed" : "denied"}
          {agent.lastResolved.by ? ` by ${agent.lastResolved.by}` : ""}
          {agent.lastResolved.reason ? ` (${agent.lastResolved.reason})` : ""}
        </p>
      )}
      <AgentTerminal store={store} agentId={agent.id} interactive={interactive} onInput={input} onResize={resize} />
      <form className="command-box" onSubmit={run} aria-label={`Run a command on ${agent.name}`}>
        <label htmlFor="command-line" className="visually-hidden">
          Command for agent {agent.name}
        </label>
        <input
          id="command-line"
          data-testid="command-input"
          value={line}
          onChange={(e) => setLine(e.target.value)}
          onKeyDown={onKey}
          placeholder={allow.length ? `e.g. ${allow[0].replace(/ \.\.\.$/, "")}` : "this agent accepts no commands"}
          autoComplete="off"
          spellCheck={false}
          disabled={!agent.online}
        />
        <button type="submit" data-testid="command-run" disabled={!agent.online || line.trim() === ""}>
          Run
        </button>
      </form>
      <p className="muted small" data-testid="allowed-patterns">
        {allow.length > 0 ? (
          <>
            Allowed (<code>--allow</code>): {allow.map((a, i) => (
              <span key={a}>
                {i > 0 && ", "}
                <code>{a}</code>
              </span>
            ))}{" "}
            · run directly, never through a shell · ↑/↓ history
          </>
        ) : (
          <>This agent accepts no commands: it was started without <code>--allow</code>.</>
        )}
      </p>
      {(notice || rejection) && (
        <p className="command-error" role="alert" data-testid="command-error">
          {notice ?? rejection}
        </p>
      )}
      <ol className="command-list" aria-label="Commands" data-testid="command-list">
        {[...agent.commands].reverse().map((c) => (
          <CommandItem key={c.id} command={c} agentId={agent.id} socket={socket} />
        ))}
      </ol>
    </div>
  );
}

function CommandItem({ command: c, agentId, socket }: { command: CommandView; agentId: string; socket: AgentSocket }) {
  const live = c.state === "queued" || c.state === "running";
  let detail = "";
  if (c.state === "completed") detail = c.exitCode !== undefined ? `exit ${c.exitCode}` : `signal ${c.signal}`;
  if (c.state === "cancelled" && c.signal) detail = `signal ${c.signal}`;
  if (c.state === "failed") detail = c.error ?? "";
  if (c.state === "rejected") detail = c.reason ?? "";
  return (
    <li className="command-item" data-testid="command-item" data-command-id={c.id} data-state={c.state}>
      <div className="command-head">
        <code className="command-line">{commandLine(c)}</code>
        <span
          className={`badge command-${c.state}${c.state === "completed" && c.exitCode !== 0 ? " nonzero" : ""}`}
          data-testid="command-badge"
        >
          {c.state}
          {detail && c.state !== "rejected" && c.state !== "failed" ? ` · ${detail}` : ""}
          {c.durationMs !== undefined ? ` · ${duration(c.durationMs)}` : ""}
        </span>
        {c.from?.name && <span className="muted small">from {c.from.name}</span>}
        {live && (
          <button
            type="button"
            className="link"
            data-testid="command-cancel"
            onClick={() => void socket.request({ type: "cancel", id: c.id, agentId })}
          >
            Cancel
          </button>
        )}
      </div>
      {(c.state === "rejected" || c.state === "failed") && (
        <p className="command-reason" data-testid="command-reason">
          {detail}
        </p>
      )}
      {c.output && (
        <pre className="command-output" data-testid="command-output">
          {c.output}
        </pre>
      )}
    </li>
  );
}

function PermissionPrompt({ request: q, agentId, socket }: { request: PermissionView; agentId: string; socket: AgentSocket }) {
  const [error, setError] = useState<string | null>(null);
  const answer = async (allowed: boolean, alwaysAllow = false) => {
    const reply = await socket.request({ type: "permission_response", requestId: q.requestId, allowed, alwaysAllow });
    if (reply.type === "error") setError(reply.message ?? String(reply.code));
  };
  const titleId = `perm-${agentId}-${q.requestId}`;
  return (
    <section className="permission" role="group" aria-labelledby={titleId} data-testid="permission-prompt" data-request-id={q.requestId}>
      <h3 id={titleId}>
        {agentId} asks permission to use <code>{q.toolName}</code>
      </h3>
      <pre className="permission-command">{q.command}</pre>
      <p>{q.description}</p>
      <div className="permission-actions">
        <button type="button" data-testid="permission-allow" onClick={() => void answer(true)}>
          Allow
        </button>
        <button type="button" data-testid="permission-deny" onClick={() => void answer(false)}>
          Deny
        </button>
        <button type="button" data-testid="permission-always" onClick={() => void answer(true, true)}>
          Always allow
        </button>
        {q.timeoutMs !== undefined && (
          <span className="muted small">denied if nobody answers within {Math.round(q.timeoutMs / 1000)} s</span>
        )}
      </div>
      {error && (
        <p className="command-error" role="alert">
          {error}
        </p>
      )}
    </section>
  );
}
