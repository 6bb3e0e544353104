/** Connection status: first attempt, connected, waiting to / trying to reconnect, closed for good. */
export type ConnectionStatus = "connecting" | "open" | "reconnecting" | "closed";

/** Reconnect policy: exponential backoff with jitter. Durations in milliseconds. `undefined` or `null`: the
 * default; anything out of range makes the constructor throw a `DevtoolsOptionsError`. */
export interface ReconnectOptions {
  /** Reconnect at all. Default true. Close codes 4500-4999 (e.g. 4500 replaced, 4501 token missing or wrong),
   *  1000 and 1008 never reconnect; 4000-4499 always do, with backoff (see docs/protocol.md, close codes). */
  enabled?: boolean | null;
  /** Delay before the first retry, 0..=3_600_000 (one hour). Default 500. */
  initialDelayMs?: number | null;
  /** Cap of any delay, jitter included, initialDelayMs..=3_600_000 (one hour). Default 10_000. */
  maxDelayMs?: number | null;
  /** Growth per failed attempt, finite, >= 1. Default 2. */
  multiplier?: number | null;
  /** Random spread, 0..=1, as ± fraction of the delay. Default 0.2. */
  jitter?: number | null;
  /** A connection open at least this long (finite, >= 0) resets the backoff. Default 5_000. */
  stableAfterMs?: number | null;
}

/** Options of `new DevtoolsConnection(options)`. `undefined` or `null`: the default. Unknown options and values
 * of the wrong type or out of range make the constructor throw a `DevtoolsOptionsError`. */
export interface DevtoolsConnectionOptions {
  /** Relay URL: absolute `ws:` or `wss:`; `http:` / `https:` (the relay's HTTP address) are used as `ws:` /
   *  `wss:`. Anything else, e.g. a relative URL, is rejected. Default "ws://localhost:8265". */
  url?: string | null;
  reconnect?: ReconnectOptions | null;
  /** Events kept per session (ring buffer), an integer 0..=1_000_000; older ones are dropped and counted.
   *  Default 5_000. */
  eventCapacity?: number | null;
  /** The relay's dashboard token (from the `#token=` of the URL the relay prints), sent in the first message of
   *  every socket, never in the URL. A relay refuses a dashboard without it: the connection ends `closed` with
   *  close code 4501 in `error` (4502: this page's Origin may not open a dashboard). Empty or absent: none. */
  token?: string | null;
}

/** What `new DevtoolsConnection(options)` throws for invalid options: a `TypeError` whose `name` is
 *  "DevtoolsOptionsError" and whose message says all three fields, e.g. "invalid DevtoolsConnection option
 *  `eventCapacity`: expected an integer from 0 to 1000000 (events kept per session), got -5". */
export interface DevtoolsOptionsError extends TypeError {
  name: "DevtoolsOptionsError";
  /** The option's path, e.g. "eventCapacity" or "reconnect.maxDelayMs"; "options" for the argument itself. */
  field: string;
  /** What it accepts, e.g. "a number of ms from 0 to 3600000". */
  expected: string;
  /** What was passed, as JavaScript spells it: `-5`, `NaN`, `"not a url"`, `an array`. */
  received: string;
}

/** A connected SDK client. */
export interface ClientInfo {
  sessionId: string;
  sdkVersion: string;
  projectId?: string;
  /** ms since the epoch, when the SDK connected to the relay. */
  connectedAt: number;
}

/** One content part of a thread message (text, tool_use, tool_result, component, resource, ...). */
export interface ContentPart {
  type: string;
  text?: string;
  [key: string]: unknown;
}

/** A message of an SDK thread. SDK-owned shape: the known fields, all optional, plus anything else. */
export interface ThreadMessage {
  id?: string;
  role?: string;
  createdAt?: number;
  content?: ContentPart[];
  [key: string]: unknown;
}

/** An SDK thread (conversation). */
export interface Thread {
  id?: string;
  name?: string;
  status?: string;
  createdAt?: number;
  messages?: ThreadMessage[];
  [key: string]: unknown;
}

export interface RegisteredComponent {
  name?: string;
  description?: string;
  propsSchema?: unknown;
  [key: string]: unknown;
}

export interface RegisteredTool {
  name?: string;
  description?: string;
  inputSchema?: unknown;
  [key: string]: unknown;
}

export interface McpServerInfo {
  name?: string;
  url?: string;
  status?: string;
  [key: string]: unknown;
}

/** What the SDK's app has registered. */
export interface Registry {
  components: RegisteredComponent[];
  tools: RegisteredTool[];
  mcpServers?: McpServerInfo[];
  [key: string]: unknown;
}

export interface SnapshotError {
  message?: string;
  timestamp?: number;
  [key: string]: unknown;
}

/** The latest `state_snapshot` of a session, without `type`; unknown fields are kept. */
export interface Snapshot {
  sessionId: string;
  timestamp: number;
  threads: Thread[];
  registry: Registry;
  errors?: SnapshotError[];
  [key: string]: unknown;
}

export type EventCategory = "run" | "text" | "tool" | "component" | "thinking" | "other";

/** An AG-UI event body, e.g. `{ type: "TOOL_CALL_START", toolCallId, toolCallName }`. */
export interface AgUiEvent {
  type: string;
  [key: string]: unknown;
}

export interface StreamEventEntry {
  /** Local monotonic key, unique per connection object (React key). */
  id: number;
  /** SDK sequence number. */
  seq: number;
  timestamp: number;
  threadId: string;
  /** AG-UI event type, e.g. "TEXT_MESSAGE_CONTENT". */
  type: string;
  /** RUN_ → run, TEXT_MESSAGE_ → text, TOOL_CALL_ → tool, THINKING_ → thinking, tambo.component. → component,
   *  tambo.run. → run, else other. */
  category: EventCategory;
  /** One line, e.g. `TOOL_CALL_START get_weather (call_1)`. */
  summary: string;
  event: AgUiEvent;
}

/** A session's events, oldest first, and how many older ones the ring buffer dropped. */
export interface SessionEvents {
  events: StreamEventEntry[];
  droppedCount: number;
}

/** Values keyed by sessionId, in an object with a null prototype: every id is an own key, whatever the SDK
 *  chose (`__proto__`, `constructor` and `hasOwnProperty` included), and an id with no entry reads as
 *  `undefined`, never as an inherited method. Read it with `map[id]`, `id in map`, `Object.keys` / `entries` /
 *  `hasOwn`; it has no methods of its own (`map.hasOwnProperty(id)` throws: use `Object.hasOwn(map, id)`). */
export type SessionMap<T> = { readonly [sessionId: string]: T | undefined };

/** The whole state. Immutable by convention: a change produces a new object; unchanged parts keep identity. */
export interface DevtoolsState {
  status: ConnectionStatus;
  isConnected: boolean;
  /** Last error: connection failure/close reason or a relay `error` message. Cleared when a connection opens. */
  error: string | null;
  /** Reconnect attempts since the connection was last open; 0 when open. */
  reconnectAttempt: number;
  /** One row per sessionId, ordered by connectedAt. */
  clients: ClientInfo[];
  /** Latest snapshot per sessionId (sessions without one are absent). */
  snapshots: SessionMap<Snapshot>;
  /** Events per sessionId; every connected session has an entry. */
  events: SessionMap<SessionEvents>;
  selectedSessionId: string | null;
  /** Frames that were not usable (bad JSON, unknown type, missing fields, unknown session, binary). */
  ignoredFrames: number;
}
