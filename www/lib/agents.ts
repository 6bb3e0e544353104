// The Agents view's state: agents (presence, program status, commands, pending permission prompts) built from
// their channels' publications, and each agent's terminal output kept as bytes (bounded) outside React state,
// streamed to the terminal component. Immutable snapshots for useSyncExternalStore: a new object per change,
// unchanged agents keep their identity.

import type { AgentSocket, Capabilities, Presence, Publication } from "./agentSocket";

/** Terminal output kept per agent, in bytes (the relay's scrollback is 1 MiB too). */
export const TERMINAL_BYTES = 1 << 20;
/** Commands kept per agent (the oldest finished ones go first). */
export const MAX_COMMANDS = 50;
/** Output text kept per command, in characters. */
export const COMMAND_OUTPUT_CHARS = 64 << 10;

export type CommandState = "queued" | "running" | "completed" | "failed" | "cancelled" | "rejected";

export interface CommandView {
  id: string;
  state: CommandState;
  command: string;
  args: string[];
  cwd?: string;
  exitCode?: number;
  signal?: number;
  error?: string;
  reason?: string;
  durationMs?: number;
  from?: { clientId: string; name?: string };
  /** stdout and stderr as text (ANSI escapes removed), the newest `COMMAND_OUTPUT_CHARS`. */
  output: string;
}

export interface PermissionView {
  requestId: string;
  toolName: string;
  command: string;
  description: string;
  timeoutMs?: number;
  /** When the request was published (relay time, ms). */
  at: number;
}

export interface ProgramStatus {
  state: "running" | "exited" | "idle";
  program?: string;
  args?: string[];
  pid?: number;
  startedAt?: number;
  endedAt?: number;
  exitCode?: number;
  signal?: number;
}

export interface AgentView {
  id: string;
  name: string;
  online: boolean;
  capabilities: Capabilities;
  metadata: Record<string, unknown>;
  program: ProgramStatus | null;
  commands: CommandView[];
  permissions: PermissionView[];
  /** How the last permission prompt of this agent was resolved (by whom), for the notice under the terminal. */
  lastResolved: { requestId: string; allowed: boolean; by?: string; reason?: string } | null;
}

export type AgentActivity = "running" | "idle" | "offline";

export function activity(a: AgentView): AgentActivity {
  if (!a.online) return "offline";
  const busy =
    a.program?.state === "running" || a.commands.some((c) => c.state === "running" || c.state === "queued");
  return busy ? "running" : "idle";
}

export interface AgentsSnapshot {
  agents: AgentView[];
  /** The connection requests go through, once there is one. */
  socket: AgentSocket | null;
}

type TerminalListener = (chunk: Uint8Array | "reset") => void;

interface Terminal {
  chunks: Uint8Array[];
  bytes: number;
  listeners: Set<TerminalListener>;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[@-_]/g;

function bytesOf(data: { encoding?: string; data?: string }): Uint8Array {
  if (data.encoding === "base64") {
    const bin = atob(data.data ?? "");
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  return encoder.encode(data.data ?? "");
}

export class AgentsStore {
  private agents = new Map<string, AgentView>();
  private terminals = new Map<string, Terminal>();
  private listeners = new Set<() => void>();
  private snapshot: AgentsSnapshot = { agents: [], socket: null };
  private scheduled = false;
  private socket: AgentSocket | null = null;

  /** The connection the view sends requests through (null: none now). */
  attach(socket: AgentSocket | null) {
    this.socket = socket;
    this.changed();
  }

  getSnapshot = () => this.snapshot;

  subscribe = (listener: () => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  private changed() {
    if (this.scheduled) return;
    this.scheduled = true;
    // Coalesced: a burst of publications (a replayed scrollback) renders once.
    queueMicrotask(() => {
      this.scheduled = false;
      this.snapshot = {
        agents: [...this.agents.values()].sort(
          (a, b) => Number(b.online) - Number(a.online) || a.id.localeCompare(b.id),
        ),
        socket: this.socket,
      };
      for (const l of this.listeners) l();
    });
  }

  private agent(id: string): AgentView {
    let a = this.agents.get(id);
    if (!a) {
      a = {
        id,
        name: id,
        online: false,
        capabilities: {},
        metadata: {},
        program: null,
        commands: [],
        permissions: [],
        lastResolved: null,
      };
      this.agents.set(id, a);
    }
    return a;
  }

  private update(id: string, f: (a: AgentView) => AgentView) {
    this.agents.set(id, f(this.agent(id)));
    this.changed();
  }

  /** Who is connected right now (after a (re)subscription to `global`): agents not in it are offline. */
  presence(list: Presence[]): string[] {
    const online = new Set<string>();
    for (const p of list) if (p.kind === "agent") online.add(p.id);
    for (const id of this.agents.keys()) if (!online.has(id)) this.update(id, (a) => ({ ...a, online: false }));
    for (const p of list) if (p.kind === "agent") this.joined(p);
    return [...online];
  }

  private joined(p: Presence) {
    this.update(p.id, (a) => ({
      ...a,
      online: true,
      name: p.name ?? p.id,
      capabilities: p.capabilities ?? {},
      metadata: p.metadata ?? {},
    }));
  }

  /** A (re)subscription to an agent channel with history: what follows rebuilds it from the scrollback. */
  reset(id: string) {
    this.update(id, (a) => ({ ...a, program: null, commands: [], permissions: [], lastResolved: null }));
    const t = this.terminal(id);
    t.chunks = [];
    t.bytes = 0;
    for (const l of t.listeners) l("reset");
  }

  /** Applies a publication; returns the id of an agent that just appeared (to watch its channel). */
  publication(p: Publication): string | null {
    if (p.channel === "global") {
      const d = p.data as Presence & { kind: string; id: string };
      if (d?.kind !== "agent") return null;
      if (p.event === "agent.connected") {
        this.joined(d);
        return d.id;
      }
      if (p.event === "agent.disconnected") this.update(d.id, (a) => ({ ...a, online: false }));
      return null;
    }
    if (!p.channel.startsWith("agents/")) return null;
    const id = p.channel.slice("agents/".length);
    const data = (p.data ?? {}) as Record<string, unknown>;
    switch (p.event) {
      case "status":
        this.update(id, (a) => ({ ...a, program: data as unknown as ProgramStatus }));
        break;
      case "output":
        this.output(id, data);
        break;
      case "command.status":
        this.commandStatus(id, data);
        break;
      case "permission_request":
        this.update(id, (a) => ({
          ...a,
          permissions: [
            ...a.permissions.filter((q) => q.requestId !== data.requestId),
            { ...(data as unknown as PermissionView), at: p.timestamp },
          ],
        }));
        break;
      case "permission_resolved": {
        const by = data.by as { clientId: string; name?: string } | undefined;
        this.update(id, (a) => ({
          ...a,
          permissions: a.permissions.filter((q) => q.requestId !== data.requestId),
          lastResolved: {
            requestId: String(data.requestId),
            allowed: Boolean(data.allowed),
            by: by ? (by.name ?? by.clientId) : undefined,
            reason: data.reason as string | undefined,
          },
        }));
        break;
      }
    }
    return null;
  }

  private output(id: string, data: Record<string, unknown>) {
    const bytes = bytesOf(data as { encoding?: string; data?: string });
    const commandId = data.commandId as string | undefined;
    if (commandId) {
      const text = decoder.decode(bytes).replace(ANSI, "");
      this.update(id, (a) => ({
        ...a,
        commands: a.commands.map((c) =>
          c.id === commandId ? { ...c, output: (c.output + text).slice(-COMMAND_OUTPUT_CHARS) } : c,
        ),
      }));
      return;
    }
    const t = this.terminal(id);
    t.chunks.push(bytes);
    t.bytes += bytes.length;
    while (t.bytes > TERMINAL_BYTES && t.chunks.length > 1) t.bytes -= t.chunks.shift()!.length;
    for (const l of t.listeners) l(bytes);
  }

  private commandStatus(id: string, data: Record<string, unknown>) {
    const s = data as unknown as CommandView;
    this.update(id, (a) => {
      const old = a.commands.find((c) => c.id === s.id);
      const next: CommandView = { ...old, ...s, output: old?.output ?? "" };
      let commands = old ? a.commands.map((c) => (c.id === s.id ? next : c)) : [...a.commands, next];
      while (commands.length > MAX_COMMANDS) {
        const i = commands.findIndex((c) => c.state !== "running" && c.state !== "queued");
        commands = commands.filter((_, j) => j !== (i < 0 ? 0 : i));
      }
      return { ...a, commands };
    });
  }

  private terminal(id: string): Terminal {
    let t = this.terminals.get(id);
    if (!t) {
      t = { chunks: [], bytes: 0, listeners: new Set() };
      this.terminals.set(id, t);
    }
    return t;
  }

  /** The agent's kept terminal output, then every new chunk (or "reset"), until the returned function is called. */
  followTerminal(id: string, listener: TerminalListener): () => void {
    const t = this.terminal(id);
    for (const c of t.chunks) listener(c);
    t.listeners.add(listener);
    return () => t.listeners.delete(listener);
  }
}

/** Splits a command line into a program and its arguments: whitespace separates, '…' and "…" quote. Nothing is
 *  expanded: the agent runs the program directly, never through a shell. */
export function splitCommand(line: string): { command: string; args: string[] } | { error: string } {
  const words: string[] = [];
  let cur = "";
  let inWord = false;
  let quote: string | null = null;
  for (const ch of line) {
    if (quote) {
      if (ch === quote) quote = null;
      else cur += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += ch;
      inWord = true;
    }
  }
  if (quote) return { error: `unclosed ${quote}` };
  if (inWord) words.push(cur);
  if (words.length === 0) return { error: "type a program and its arguments" };
  return { command: words[0], args: words.slice(1) };
}
