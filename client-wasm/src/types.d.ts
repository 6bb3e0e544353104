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

/** Which protocol to speak: "auto" (v2, falling back to seed 000 when the relay does not speak it), "v2" (never
 *  fall back) or "legacy" (seed 000 only, no hello). */
export type ProtocolChoice = "auto" | "v2" | "legacy";

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
  /** Default "auto". */
  protocol?: ProtocolChoice | null;
  /** With "auto": how long a new socket waits for the relay's answer to `hello` before speaking seed 000
   *  (a seed-000 server never answers it), 100..=60_000 ms. Default 2_000. */
  helloTimeoutMs?: number | null;
  /** A v2 socket sends `ping` this often; one from which nothing arrived for two intervals (a relay that went
   *  silent: browsers do not show WebSocket pings to pages) is closed and a new one opened, with backoff.
   *  100..=3_600_000 ms. Default 15_000. */
  heartbeatIntervalMs?: number | null;
  /** Follow mode: subscribe to the selected session (and those given to `followSessions`) only, instead of
   *  every session. Default false. */
  followSelected?: boolean | null;
  /** Publishes waiting for the relay's answer at most, an integer 1..=65_536; more are rejected at once
   *  (`TOO_MANY_IN_FLIGHT`). Default 256. */
  maxInFlightPublishes?: number | null;
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
  /** The page Origin the SDK connected from, when it is not one the relay allows for dashboards (an app on
   *  `http://myapp.test:3000`); absent for native SDKs and allowed Origins. v2 relays only. */
  origin?: string;
  /** Set while the SDK does not answer the relay's pings (paused at a breakpoint, a laptop lid): ms since the
   *  epoch when it went stale. It continues without reconnecting if it answers in time. v2 relays only. */
  staleSince?: number;
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

/** Values keyed by channel name, in an object with a null prototype (like `SessionMap`). */
export type ChannelMap<T> = { readonly [channel: string]: T | undefined };

/** Where a subscribed channel stands: waiting for the relay's answer (or for a connection), subscribed, refused
 *  by the relay (`error` says why; retried on the next connection), or impossible (a seed-000 relay). */
export type ChannelStatus = "pending" | "subscribed" | "failed" | "unsupported";

export interface ChannelState {
  status: ChannelStatus;
  /** Page listeners (`subscribe(channel, onMessage)`); 0 for the connection's own channels. */
  listeners: number;
  error: { code: string; message: string } | null;
}

/** How a session came through the last reconnect: still waiting for the relay (`recovering`: its messages
 *  are held back meanwhile), `recovered` (every missed message replayed, no gap), or `resynced` (the relay
 *  could not replay: its old snapshot and events were dropped and it starts again from a fresh snapshot). */
export type RecoveryOutcome = "recovering" | "recovered" | "resynced";

export interface SessionRecovery {
  outcome: RecoveryOutcome;
  /** Messages replayed (0 unless recovered). */
  replayed: number;
  /** Why it was not recovered (the relay's words: "epoch changed …" after a relay restart, "too far
   *  behind …"). */
  reason: string | null;
}

/** The last reconnect that resumed anything, summed over its sessions. */
export interface ReconnectSummary {
  /** The relay restarted (a channel's epoch changed): every session was resynced. */
  relayRestarted: boolean;
  recovering: number;
  recovered: number;
  resynced: number;
  /** Messages replayed over all sessions. */
  replayed: number;
}

/** The last position seen on a channel: the offset of its last publication, and the channel's epoch. */
export interface ChannelPosition {
  offset: number;
  epoch: string;
}

/** A message published on a channel, as `subscribe(channel, onMessage)` delivers it. */
export interface ChannelMessage<T = unknown> {
  channel: string;
  event: string;
  data: T;
  /** The channel's offset of this message (1, 2, ...). */
  offset: number;
  /** The channel's epoch: a new one means the channel was recreated (e.g. a relay restart). */
  epoch: string;
  /** ms since the epoch, when the relay published it. */
  timestamp: number;
}

/** `metric.update` on the `metrics` channel (every `--metrics-interval-secs`, 5 s by default). */
export interface MetricsUpdate {
  activeSessions: number;
  activeAgents: number;
  dashboards: number;
  connections: number;
  channels: number;
  messagesInPerMinute: number;
  messagesOutPerMinute: number;
  /** Messages not delivered since the relay started (a full queue). */
  dropped: number;
  /** Snapshots replaced in a queue by a newer one since start. */
  conflated: number;
  slowConsumerCloses: number;
  /** Publication to socket write over the last interval, µs (0 when nothing was delivered). */
  fanoutLatencyP50Us: number;
  fanoutLatencyP99Us: number;
  /** Bytes of publications held in channel histories (recovery). */
  historyBytes: number;
  uptimeSecs: number;
}

/** Who is connected (`data` of `session.connected` / `agent.connected` on `global`). */
export interface PresenceInfo {
  kind: "session" | "agent";
  id: string;
  channel: string;
  name?: string;
  sdkVersion?: string;
  projectId?: string;
  metadata?: { [key: string]: unknown };
  protocol: "v1" | "v2";
  connectedAt: number;
}

/** The relay's v2 error codes, and the client's own (`NOT_CONNECTED`, `DISCONNECTED`, `LEGACY_RELAY`,
 *  `TOO_MANY_IN_FLIGHT`, `INVALID_DATA`; `PAYLOAD_TOO_LARGE` is both). A newer relay may send others. */
export type RequestErrorCode =
  | "BAD_JSON" | "BINARY_NOT_SUPPORTED" | "INVALID_MESSAGE" | "UNKNOWN_TYPE" | "INVALID_CHANNEL"
  | "NOT_SUBSCRIBED" | "ALREADY_SUBSCRIBED" | "FORBIDDEN" | "TOO_MANY_SUBSCRIPTIONS" | "PAYLOAD_TOO_LARGE"
  | "INVALID_PAYLOAD" | "ALREADY_IDENTIFIED" | "WRONG_PROTOCOL" | "UNKNOWN_SESSION" | "BUSY"
  | "TOO_MANY_CHANNELS" | "INTERNAL"
  | "NOT_CONNECTED" | "DISCONNECTED" | "LEGACY_RELAY" | "TOO_MANY_IN_FLIGHT" | "INVALID_DATA"
  | (string & {});

/** What `publish` rejects with, and a channel's `onError` gets: an `Error` named "DevtoolsRequestError". */
export interface DevtoolsRequestError extends Error {
  name: "DevtoolsRequestError";
  code: RequestErrorCode;
  /** The channel of the request, when it had one. */
  channel: string | null;
}

/** What `publish` resolves with: the publication's position. */
export interface PublishAck {
  channel: string;
  offset: number;
  epoch: string;
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
  snapshots: SessionMap<Snapshot>;
  /** Events per sessionId; every connected session has an entry. */
  events: SessionMap<SessionEvents>;
  selectedSessionId: string | null;
  /** Frames that were not usable (bad JSON, unknown type, missing fields, unknown session, binary). */
  ignoredFrames: number;
  /** The protocol of the open connection; null while not open or still choosing. */
  protocol: "v2" | "legacy" | null;
  /** Follow mode: the sessions whose snapshots and events are kept (and subscribed to); null: every session. */
  following: string[] | null;
  /** Every channel subscribed (the connection's own: `global`, `sessions/*` or the followed sessions; and the
   *  page's). */
  channels: ChannelMap<ChannelState>;
  /** The last position seen per channel publications came from (at most 4096 channels, least recent forgotten
   *  first). */
  positions: ChannelMap<ChannelPosition>;
  /** Per sessionId: how it came through the last reconnect (v2 relays; sessions known before it). A seed-000
   *  relay keeps no history: there it stays empty and events sent while disconnected are missing. */
  recovery: SessionMap<SessionRecovery>;
  /** The sum over `recovery`; null before the first reconnect that had anything to resume. */
  lastReconnect: ReconnectSummary | null;
  /** Text frames received, over every connection of this object. */
  framesReceived: number;
  /** Messages received (a batched frame counts each of its messages). */
  messagesReceived: number;
}

/** `DevtoolsConnection`'s channel and publish methods (declared here because `subscribe` is overloaded). */
export interface DevtoolsConnection {
  /** Calls `listener` (coalesced: once per burst of state changes, never synchronously) until the returned
   *  function is called. */
  subscribe(listener: () => void): () => void;
  /** Calls `onMessage` with every message published on `channel` (`sessions/*`, `agents/*`, `topics/*` cover
   *  their namespace), in order, once per message even when two subscriptions cover it; `onError` if the relay
   *  refuses the subscription (or speaks seed 000 only). Listeners of one channel share one relay
   *  subscription; it is renewed after every reconnect. Returns the function that ends this listener. */
  subscribe<T = unknown>(
    channel: string,
    onMessage: (message: ChannelMessage<T>) => void,
    onError?: (error: DevtoolsRequestError) => void,
  ): () => void;
  /** Publishes `data` (any JSON value; `undefined` is `null`) as `event` on `channel`. Resolves with its
   *  position when the relay acknowledges it; rejects with a `DevtoolsRequestError` when the relay refuses it
   *  (`FORBIDDEN`, `INVALID_CHANNEL`, ...), when the connection ends first (`DISCONNECTED`), or at once when
   *  it cannot be sent (`NOT_CONNECTED`, `LEGACY_RELAY`, `TOO_MANY_IN_FLIGHT`, `PAYLOAD_TOO_LARGE`,
   *  `INVALID_DATA`). */
  publish(channel: string, event: string, data?: unknown): Promise<PublishAck>;
}
