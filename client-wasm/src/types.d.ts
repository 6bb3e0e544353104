/** Connection status: first attempt, connected, waiting to / trying to reconnect, closed for good. */
export type ConnectionStatus = "connecting" | "open" | "reconnecting" | "closed";

/** Reconnect policy: exponential backoff with jitter. Durations in milliseconds. */
export interface ReconnectOptions {
  /** Reconnect at all. Default true. Close codes 1000, 1008 and 4000 never reconnect. */
  enabled?: boolean;
  /** Delay before the first retry. Default 500. */
  initialDelayMs?: number;
  /** Cap of any delay, jitter included. Default 10_000. */
  maxDelayMs?: number;
  /** Growth per failed attempt (>= 1). Default 2. */
  multiplier?: number;
  /** Random spread, 0..1, as ± fraction of the delay. Default 0.2. */
  jitter?: number;
  /** A connection open at least this long resets the backoff. Default 5_000. */
  stableAfterMs?: number;
}

export interface DevtoolsConnectionOptions {
  /** Relay WebSocket URL. Default "ws://localhost:8265". */
  url?: string;
  reconnect?: ReconnectOptions;
  /** Events kept per session (ring buffer); older ones are dropped and counted. Default 5_000. */
  eventCapacity?: number;
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
  snapshots: Record<string, Snapshot>;
  /** Events per sessionId; every connected session has an entry. */
  events: Record<string, SessionEvents>;
  selectedSessionId: string | null;
  /** Frames that were not usable (bad JSON, unknown type, missing fields, unknown session, binary). */
  ignoredFrames: number;
}
