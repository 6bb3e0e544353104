// Type-checked (tsc --noEmit, strict) against the built pkg/ by scripts/test-wasm.sh: uses every export of the
// package and asserts that none of our types degrades to `any`. Never executed.
import init, {
  DevtoolsConnection,
  type AgUiEvent,
  type ChannelMap,
  type ChannelMessage,
  type ChannelPosition,
  type ChannelState,
  type ChannelStatus,
  type DevtoolsRequestError,
  type MetricsUpdate,
  type PresenceInfo,
  type ProtocolChoice,
  type PublishAck,
  type RequestErrorCode,
  type ClientInfo,
  type ConnectionStatus,
  type DevtoolsConnectionOptions,
  type DevtoolsOptionsError,
  type DevtoolsState,
  type EventCategory,
  type ReconnectOptions,
  type ReconnectSummary,
  type RecoveryOutcome,
  type SessionRecovery,
  type SessionEvents,
  type SessionMap,
  type Snapshot,
  type StreamEventEntry,
  type Thread,
  type Registry,
} from "devrelay-client";
import {
  DevtoolsProvider,
  useChannel,
  useDevtools,
  useDevtoolsConnection,
  useMetrics,
  type ChannelFeed,
  type DevtoolsConnectionState,
  type MetricsSample,
  type RealtimeMetrics,
} from "devrelay-client/react";
import { createElement, type ReactElement } from "react";

type IsAny<T> = 0 extends 1 & T ? true : false;
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function assertTrue<T extends true>(): T | void {}

// Nothing we define is `any`.
assertTrue<Equals<IsAny<DevtoolsState>, false>>();
assertTrue<Equals<IsAny<DevtoolsState["clients"][number]>, false>>();
assertTrue<Equals<IsAny<DevtoolsState["snapshots"][string]>, false>>();
assertTrue<Equals<IsAny<NonNullable<DevtoolsState["events"][string]>["events"][number]>, false>>();
// Session maps: any id may be missing, and they are read-only.
assertTrue<Equals<DevtoolsState["snapshots"][string], Snapshot | undefined>>();
assertTrue<Equals<DevtoolsState["events"], SessionMap<SessionEvents>>>();
assertTrue<Equals<IsAny<DevtoolsOptionsError["field"]>, false>>();
assertTrue<Equals<IsAny<StreamEventEntry["event"]>, false>>();
assertTrue<Equals<IsAny<Snapshot["threads"][number]>, false>>();
assertTrue<Equals<IsAny<Snapshot["registry"]["tools"][number]>, false>>();
// The class is typed with our types, not `any`.
assertTrue<Equals<ReturnType<DevtoolsConnection["getSnapshot"]>, DevtoolsState>>();
// `subscribe` is overloaded (state listener / channel listener); both return the unsubscribe function.
assertTrue<Equals<ReturnType<DevtoolsConnection["subscribe"]>, () => void>>();
assertTrue<Equals<ReturnType<DevtoolsConnection["publish"]>, Promise<PublishAck>>>();
assertTrue<Equals<IsAny<ChannelMessage["data"]>, false>>();
assertTrue<Equals<ChannelMessage["data"], unknown>>();
assertTrue<Equals<ChannelMessage<MetricsUpdate>["data"], MetricsUpdate>>();
assertTrue<Equals<IsAny<DevtoolsRequestError["code"]>, false>>();
assertTrue<Equals<DevtoolsState["protocol"], "v2" | "legacy" | null>>();
assertTrue<Equals<DevtoolsState["channels"], ChannelMap<ChannelState>>>();
assertTrue<Equals<DevtoolsState["positions"][string], ChannelPosition | undefined>>();
assertTrue<Equals<ChannelStatus, "pending" | "subscribed" | "failed" | "unsupported">>();
assertTrue<Equals<DevtoolsState["recovery"], SessionMap<SessionRecovery>>>();
assertTrue<Equals<DevtoolsState["lastReconnect"], ReconnectSummary | null>>();
assertTrue<Equals<RecoveryOutcome, "recovering" | "recovered" | "resynced">>();
assertTrue<Equals<IsAny<SessionRecovery["reason"]>, false>>();
assertTrue<Equals<ProtocolChoice, "auto" | "v2" | "legacy">>();
assertTrue<Equals<IsAny<ChannelFeed["messages"][number]>, false>>();
assertTrue<Equals<IsAny<RealtimeMetrics["history"][number]>, false>>();
assertTrue<Equals<RealtimeMetrics["metrics"], MetricsUpdate | null>>();
assertTrue<Equals<IsAny<PresenceInfo["metadata"]>, false>>();
assertTrue<Equals<ConnectionStatus, "connecting" | "open" | "reconnecting" | "closed">>();
assertTrue<Equals<EventCategory, "run" | "text" | "tool" | "component" | "thinking" | "other">>();

function describe(state: DevtoolsState): string[] {
  const lines: string[] = [];
  const status: ConnectionStatus = state.status;
  const connected: boolean = state.isConnected;
  const error: string | null = state.error;
  const attempt: number = state.reconnectAttempt;
  const ignored: number = state.ignoredFrames;
  const selected: string | null = state.selectedSessionId;
  lines.push(`${status} ${connected} ${error ?? ""} ${attempt} ${ignored} ${selected ?? "-"}`);
  const protocol: "v2" | "legacy" | null = state.protocol;
  const following: string[] | null = state.following;
  lines.push(`${protocol ?? "-"} ${following?.join(",") ?? "all"} ${state.framesReceived} ${state.messagesReceived}`);
  for (const [name, channel] of Object.entries(state.channels)) {
    const s: ChannelState | undefined = channel;
    lines.push(`${name} ${s?.status} ${s?.listeners} ${s?.error?.code ?? ""} ${s?.error?.message ?? ""}`);
  }
  for (const [id, recovery] of Object.entries(state.recovery)) {
    const r: SessionRecovery | undefined = recovery;
    const outcome: RecoveryOutcome | undefined = r?.outcome;
    lines.push(`${id} ${outcome} ${r?.replayed} ${r?.reason ?? ""}`);
  }
  const last: ReconnectSummary | null = state.lastReconnect;
  if (last) {
    const restarted: boolean = last.relayRestarted;
    lines.push(`${restarted} ${last.recovering} ${last.recovered} ${last.resynced} ${last.replayed}`);
  }
  for (const [name, position] of Object.entries(state.positions)) {
    lines.push(`${name} ${position?.offset} ${position?.epoch}`);
  }
  for (const client of state.clients) {
    const c: ClientInfo = client;
    const project: string | undefined = c.projectId;
    lines.push(`${c.sessionId} ${c.sdkVersion} ${project ?? ""} ${new Date(c.connectedAt).toISOString()}`);
    const snapshot: Snapshot | undefined = state.snapshots[c.sessionId];
    if (snapshot) {
      const threads: Thread[] = snapshot.threads;
      const registry: Registry = snapshot.registry;
      lines.push(`${snapshot.timestamp} ${threads.length} ${registry.tools.map((t) => t.name ?? "?").join(",")}`);
      for (const thread of threads) lines.push(`${thread.id ?? ""} ${thread.messages?.length ?? 0}`);
      for (const e of snapshot.errors ?? []) lines.push(e.message ?? "");
    }
    const events: SessionEvents | undefined = state.events[c.sessionId];
    if (events) {
      lines.push(`dropped ${events.droppedCount}`);
      for (const entry of events.events) {
        const category: EventCategory = entry.category;
        const body: AgUiEvent = entry.event;
        lines.push(`${entry.id} ${entry.seq} ${entry.timestamp} ${entry.threadId} ${entry.type} ${category}`);
        lines.push(`${entry.summary} ${body.type}`);
      }
    }
  }
  return lines;
}

export async function useWholeApi(): Promise<string[]> {
  await init();
  const reconnect: ReconnectOptions = {
    enabled: true,
    initialDelayMs: 500,
    maxDelayMs: 10_000,
    multiplier: 2,
    jitter: 0.2,
    stableAfterMs: 5_000,
  };
  const protocol: ProtocolChoice = "auto";
  const options: DevtoolsConnectionOptions = {
    url: "ws://localhost:8265",
    reconnect,
    eventCapacity: 5_000,
    protocol,
    helloTimeoutMs: 2_000,
    heartbeatIntervalMs: 15_000,
    followSelected: false,
    maxInFlightPublishes: 256,
  };
  const conn = new DevtoolsConnection(options);
  const defaults = new DevtoolsConnection();
  const lines: string[] = [];
  const unsubscribe: () => void = conn.subscribe(() => {
    describe(conn.getSnapshot());
  });
  conn.requestClientList();
  conn.requestSnapshot("sess-1");
  conn.clearStreamEvents("sess-1");
  conn.selectSession("sess-1");
  conn.selectSession(null);
  conn.setFollowSelected(true);
  conn.followSessions(["sess-2", "sess-3"]);
  const stopMetrics: () => void = conn.subscribe<MetricsUpdate>(
    "metrics",
    (m: ChannelMessage<MetricsUpdate>) => {
      const n: number = m.data.activeSessions + m.data.fanoutLatencyP99Us;
      const where: string = `${m.channel} ${m.event} ${m.offset} ${m.epoch} ${m.timestamp} ${n}`;
      lines.push(where);
    },
    (e: DevtoolsRequestError) => {
      const c: RequestErrorCode = e.code;
      lines.push(`${e.name} ${c} ${e.channel ?? ""} ${e.message}`);
    },
  );
  const stopTopics = conn.subscribe("topics/*", (m) => {
    const data: unknown = m.data;
    lines.push(String(data));
  });
  try {
    const ack: PublishAck = await conn.publish("topics/deploys", "deploy.finished", { ok: true });
    lines.push(`${ack.channel} ${ack.offset} ${ack.epoch}`);
    await conn.publish("topics/deploys", "ping");
  } catch (e) {
    const error = e as DevtoolsRequestError;
    lines.push(error.code);
  }
  stopMetrics();
  stopTopics();
  // @ts-expect-error a channel listener needs its onMessage
  conn.subscribe("metrics");
  // @ts-expect-error publish takes a channel and an event
  conn.publish("topics/x");
  // @ts-expect-error options are typed
  new DevtoolsConnection({ url: 8265 });
  // @ts-expect-error listeners are functions
  conn.subscribe("listener");
  // @ts-expect-error status is a closed union
  conn.getSnapshot().status = "bogus";
  // @ts-expect-error the session maps are read-only
  conn.getSnapshot().events["sess-1"] = { events: [], droppedCount: 0 };
  try {
    new DevtoolsConnection({ url: "not a url", eventCapacity: null, reconnect: { maxDelayMs: null } });
  } catch (e) {
    const error = e as DevtoolsOptionsError;
    const parts: string[] = [error.name, error.field, error.expected, error.received, error.message];
    lines.push(...parts);
  }
  unsubscribe();
  lines.push(...describe(conn.getSnapshot()));
  conn.close();
  conn.free();
  defaults[Symbol.dispose]();
  return lines;
}

export function Hooks(): ReactElement {
  const dt: DevtoolsConnectionState = useDevtools();
  const feed: ChannelFeed<{ ok: boolean }> = useChannel<{ ok: boolean }>("topics/deploys", { limit: 50 });
  const merged = useChannel(["global", "sessions/*"], { limit: 1000, connection: dt.connection });
  const none = useChannel(null);
  const { metrics, history, updatedAt, receivedAt, error }: RealtimeMetrics = useMetrics({ history: 60 });
  const points: number[] = history.map((s: MetricsSample) => s.timestamp + s.messagesInPerMinute);
  const ok: boolean | undefined = feed.messages[0]?.data.ok;
  const text = `${feed.total} ${feed.dropped} ${feed.error?.code ?? ""} ${feed.receivedAt ?? 0} ${merged.total} ${none.total}
    ${metrics?.activeSessions ?? 0} ${points.length} ${updatedAt ?? 0} ${receivedAt ?? 0} ${error?.code ?? ""} ${ok}`;
  // @ts-expect-error limit is a number
  useChannel("metrics", { limit: "10" });
  return createElement("pre", null, text);
}

export function App(): ReactElement {
  return createElement(DevtoolsProvider, { options: { url: "ws://127.0.0.1:8265", followSelected: true } }, createElement(Hooks));
}

export function useHook(): string[] {
  const state = useDevtoolsConnection({ url: "ws://127.0.0.1:8265", eventCapacity: 100 });
  const connection: DevtoolsConnection | null = state.connection;
  const optionsError: DevtoolsOptionsError | null = state.optionsError;
  connection?.selectSession(state.clients[0]?.sessionId ?? null);
  // @ts-expect-error options are typed in the hook too
  useDevtoolsConnection({ reconnect: { enabled: "yes" } });
  if (optionsError) return [optionsError.field];
  return describe(state);
}
