// Type-checked (tsc --noEmit, strict) against the built pkg/ by scripts/test-wasm.sh: uses every export of the
// package and asserts that none of our types degrades to `any`. Never executed.
import init, {
  DevtoolsConnection,
  type AgUiEvent,
  type ClientInfo,
  type ConnectionStatus,
  type DevtoolsConnectionOptions,
  type DevtoolsOptionsError,
  type DevtoolsState,
  type EventCategory,
  type ReconnectOptions,
  type SessionEvents,
  type SessionMap,
  type Snapshot,
  type StreamEventEntry,
  type Thread,
  type Registry,
} from "devrelay-client";
import { useDevtoolsConnection } from "devrelay-client/react";

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
assertTrue<Equals<Parameters<DevtoolsConnection["subscribe"]>[0], () => void>>();
assertTrue<Equals<ReturnType<DevtoolsConnection["subscribe"]>, () => void>>();
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
  const options: DevtoolsConnectionOptions = { url: "ws://localhost:8265", reconnect, eventCapacity: 5_000 };
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
