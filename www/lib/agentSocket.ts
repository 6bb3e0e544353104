// The Agents view's connection to the relay: a v2 WebSocket that watches agents (presence on `global`, each
// agent's channel with its scrollback) and sends them requests (`command`, `cancel`, `input`, `resize`,
// `permission_response`), each answered by an `ack` or a typed `error` with the request's id.
//
// It speaks only what the Agents view needs, until `devrelay-client`'s DevtoolsConnection has these requests and
// `subscribe {history}` (its subscribe / publish cover channels, not agent requests): then this file goes and the
// view uses the package. Reconnects with jittered backoff; every subscription is renewed on reconnect (with
// `history`, so an agent's state is rebuilt from the relay's scrollback, not duplicated).

export type SocketStatus = "connecting" | "open" | "reconnecting";

/** A publication on a channel: seed 002's bare `{channel, event, data, offset, epoch, timestamp}`. */
export interface Publication {
  channel: string;
  event: string;
  data: unknown;
  offset: number;
  epoch: string;
  timestamp: number;
}

export interface Capabilities {
  commands?: boolean;
  allow?: string[];
  input?: boolean;
  maxConcurrent?: number;
}

export interface Presence {
  kind: "session" | "agent";
  id: string;
  channel: string;
  name?: string;
  metadata?: Record<string, unknown>;
  capabilities?: Capabilities;
  connectedAt: number;
}

/** The relay's answer to a request: `ack`, or `error {code, message}`. */
export interface Reply {
  type: "ack" | "error";
  id?: string | number;
  code?: string;
  message?: string;
  [key: string]: unknown;
}

export interface SocketHandlers {
  status(status: SocketStatus, error: string | null): void;
  /** A (re)subscription to `channel` was acknowledged; `history` publications of it follow. */
  subscribed(channel: string, ack: Reply): void;
  publication(p: Publication): void;
  /** Everyone present when `global` was (re)subscribed. */
  presence(list: Presence[]): void;
}

/** Requests waiting for their reply, at most (older ones are failed). */
const MAX_PENDING = 256;

export class AgentSocket {
  private ws: WebSocket | null = null;
  private closed = false;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private channels = new Set<string>();
  private pending = new Map<string, (r: Reply) => void>();
  private nextId = 1;
  /** This connection's `clientId` (from `connected`), to tell our own answers from others'. */
  clientId: string | null = null;

  constructor(
    private url: string,
    /** The relay's dashboard token (sent in `hello`); null for a relay run with --no-auth. */
    private token: string | null,
    private handlers: SocketHandlers,
  ) {
    this.connect();
  }

  private connect() {
    this.handlers.status(this.attempt === 0 ? "connecting" : "reconnecting", null);
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this.retry(String(e));
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      const hello: Record<string, unknown> = { type: "hello", name: "dashboard", batch: true };
      if (this.token) hello.token = this.token;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(ev.data);
      } catch {
        return;
      }
      for (const m of Array.isArray(parsed) ? parsed : [parsed]) this.onMessage(m as Record<string, unknown>);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.clientId = null;
      for (const [, fail] of this.pending) fail({ type: "error", code: "DISCONNECTED", message: "the connection ended" });
      this.pending.clear();
      if (!this.closed) this.retry(ev.reason || `closed (${ev.code})`);
    };
  }

  private retry(error: string) {
    this.attempt += 1;
    const base = Math.min(250 * 2 ** Math.min(this.attempt - 1, 8), 5000);
    const delay = base * (0.8 + 0.4 * Math.random());
    this.handlers.status("reconnecting", error);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  private onMessage(m: Record<string, unknown>) {
    if (m.type === undefined) {
      this.handlers.publication(m as unknown as Publication);
      return;
    }
    if (m.type === "connected") {
      this.attempt = 0;
      this.clientId = typeof m.clientId === "string" ? m.clientId : null;
      this.handlers.status("open", null);
      this.send({ type: "subscribe", channel: "global", id: "sub:global" });
      for (const c of this.channels) this.send({ type: "subscribe", channel: c, id: `sub:${c}`, history: true });
      return;
    }
    if (m.type === "ack" || m.type === "error") {
      const id = m.id === undefined ? undefined : String(m.id);
      if (id === "sub:global" && m.type === "ack") {
        this.handlers.presence((m.presence as Presence[] | undefined) ?? []);
        return;
      }
      if (id?.startsWith("sub:") && m.type === "ack") {
        this.handlers.subscribed(id.slice(4), m as unknown as Reply);
        return;
      }
      if (id !== undefined) {
        const done = this.pending.get(id);
        if (done) {
          this.pending.delete(id);
          done(m as unknown as Reply);
        }
      }
    }
  }

  private send(msg: unknown): boolean {
    if (this.ws?.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  /** Watches `channel` (with its scrollback), now and after every reconnect. */
  watch(channel: string) {
    if (this.channels.has(channel)) return;
    this.channels.add(channel);
    if (this.clientId) this.send({ type: "subscribe", channel, id: `sub:${channel}`, history: true });
  }

  /** Sends a request and resolves with its reply (an `error` reply too: the caller shows its message). */
  request(msg: Record<string, unknown>): Promise<Reply> {
    const id = typeof msg.id === "string" ? msg.id : `r${this.nextId++}`;
    return new Promise((resolve) => {
      if (this.pending.size >= MAX_PENDING) {
        resolve({ type: "error", code: "TOO_MANY_IN_FLIGHT", message: "too many requests waiting for an answer" });
        return;
      }
      if (!this.send({ ...msg, id })) {
        resolve({ type: "error", code: "NOT_CONNECTED", message: "not connected to the relay" });
        return;
      }
      this.pending.set(id, resolve);
    });
  }

  close() {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.ws?.close(1000);
    this.ws = null;
  }
}
