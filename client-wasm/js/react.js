"use client";
// useDevtoolsConnection: the DevtoolsConnection as React state (useSyncExternalStore); DevtoolsProvider /
// useDevtools share one connection with a subtree; useChannel / useMetrics: a channel's recent messages and the
// relay's metrics (seed 002's useRealtimeEvents / useRealtimeMetrics).
// The wasm module is loaded with a dynamic import inside an effect, so importing this file is safe during
// server rendering: nothing touches the wasm or WebSocket until the component mounts in the browser.
import {
  createContext,
  createElement,
  useContext,
  useEffect,
  useMemo,
  useState,
  useSyncExternalStore,
} from "react";

/** State shown before the connection exists (server render, first client render, while wasm loads). The session
 * maps have no prototype, like the connection's own (see docs/client-api.md). */
const INITIAL_STATE = Object.freeze({
  status: "connecting",
  isConnected: false,
  error: null,
  reconnectAttempt: 0,
  clients: Object.freeze([]),
  snapshots: Object.freeze(Object.create(null)),
  events: Object.freeze(Object.create(null)),
  selectedSessionId: null,
  ignoredFrames: 0,
  recovery: Object.freeze(Object.create(null)),
  lastReconnect: null,
});

const noopSubscribe = () => () => {};
/** Connections this hook has freed: their getSnapshot must never reach the wasm again. */
const freed = new WeakSet();
const initialSnapshot = () => INITIAL_STATE;

let ready = null;
/** Loads and instantiates the wasm once per page. */
function loadModule() {
  if (ready === null) {
    ready = import("./devrelay_client.js").then(async (mod) => {
      await mod.default();
      return mod;
    });
    ready.catch(() => {
      ready = null; // let a later mount retry (e.g. the .wasm failed to download)
    });
  }
  return ready;
}

/** JSON of the options for the reconnect decision, keeping what JSON would lose (NaN, Infinity, functions), so
 * that changing `eventCapacity` from NaN to null still reconnects (and reports or clears the error). */
function optionsKey(options) {
  return JSON.stringify(options ?? {}, (_, v) =>
    typeof v === "number" && !Number.isFinite(v) ? `#${v}` : typeof v === "function" || typeof v === "bigint" ? `#${typeof v}` : v,
  );
}

export function useDevtoolsConnection(options) {
  // Options usually come as an inline object literal: reconnect only when their content changes. The object
  // itself (not a JSON copy) goes to the constructor, so it validates exactly what the page passed.
  const key = optionsKey(options);
  // Deliberately keyed by content (`key`), not by the object's identity.
  const stableOptions = useMemo(() => options, [key]);
  const [connection, setConnection] = useState(null);
  const [loadError, setLoadError] = useState(null);
  const [optionsError, setOptionsError] = useState(null);

  useEffect(() => {
    let cancelled = false;
    let conn = null;
    loadModule().then(
      (mod) => {
        if (cancelled) return;
        try {
          conn = new mod.DevtoolsConnection(stableOptions);
        } catch (err) {
          // Invalid options (a DevtoolsOptionsError naming the field): a state the page shows, not an unhandled
          // rejection that leaves it "connecting" for ever.
          setOptionsError(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        setConnection(conn);
        setLoadError(null);
        setOptionsError(null);
      },
      (err) => {
        if (!cancelled) setLoadError(`cannot load devrelay-client wasm: ${err}`);
      },
    );
    return () => {
      cancelled = true;
      setConnection(null);
      setOptionsError(null);
      if (conn !== null) {
        conn.close();
        freed.add(conn);
        conn.free();
      }
    };
  }, [stableOptions]);

  const subscribe = useMemo(
    () => (connection ? (listener) => connection.subscribe(listener) : noopSubscribe),
    [connection],
  );
  const getSnapshot = useMemo(() => {
    if (!connection) return initialSnapshot;
    // If React asks once more after the effect cleanup freed the connection, answer with the last state.
    let last = INITIAL_STATE;
    return () => (freed.has(connection) ? last : (last = connection.getSnapshot()));
  }, [connection]);
  const state = useSyncExternalStore(subscribe, getSnapshot, initialSnapshot);

  return useMemo(() => {
    if (optionsError !== null) {
      return { ...state, status: "closed", error: optionsError.message, connection: null, optionsError };
    }
    if (loadError !== null && connection === null) {
      return { ...state, status: "closed", error: loadError, connection, optionsError: null };
    }
    return { ...state, connection, optionsError: null };
  }, [state, connection, loadError, optionsError]);
}

/** The connection state `DevtoolsProvider` shares (what `useDevtoolsConnection` returns); null outside one. */
const DevtoolsContext = createContext(null);

/** One connection for a subtree: `useDevtools()`, `useChannel()` and `useMetrics()` below it use it. */
export function DevtoolsProvider({ options, children }) {
  const value = useDevtoolsConnection(options);
  return createElement(DevtoolsContext.Provider, { value }, children);
}

/** The nearest `DevtoolsProvider`'s state and connection. */
export function useDevtools() {
  const value = useContext(DevtoolsContext);
  if (value === null) throw new Error("useDevtools() needs a <DevtoolsProvider> above it");
  return value;
}

/** `options.connection` when given (null: not loaded yet), else the provider's. */
function useConnectionOf(options) {
  const context = useContext(DevtoolsContext);
  if (options?.connection !== undefined) return options.connection;
  if (context === null) {
    throw new Error("useChannel() / useMetrics() need a <DevtoolsProvider> above them, or options.connection");
  }
  return context.connection;
}

/** Largest `limit` / `history`: messages kept per hook. */
const MAX_KEPT = 100_000;
const EMPTY_FEED = Object.freeze({ messages: Object.freeze([]), total: 0, dropped: 0, error: null, receivedAt: null });

function keptCount(value, fallback, name) {
  if (value === undefined || value === null) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > MAX_KEPT) {
    throw new RangeError(`${name} must be an integer from 1 to ${MAX_KEPT}, got ${String(value)}`);
  }
  return value;
}

/** Calls `flush` once on the next animation frame (a zero-delay timer where frames do not run). */
function frameScheduler(flush) {
  let pending = null;
  return {
    schedule() {
      if (pending !== null) return;
      const visible = typeof document === "undefined" || document.visibilityState === "visible";
      if (visible && typeof requestAnimationFrame === "function") {
        const id = requestAnimationFrame(() => ((pending = null), flush()));
        pending = () => cancelAnimationFrame(id);
      } else {
        const id = setTimeout(() => ((pending = null), flush()), 0);
        pending = () => clearTimeout(id);
      }
    },
    cancel() {
      pending?.();
      pending = null;
    },
  };
}

/** A bounded ring of a channel's messages, as an external store: one new snapshot (and one render) per frame. */
function createFeed(limit) {
  const ring = new Array(limit);
  let start = 0;
  let size = 0;
  let total = 0;
  let error = null;
  let receivedAt = null;
  let snapshot = EMPTY_FEED;
  const listeners = new Set();
  const scheduler = frameScheduler(() => {
    const messages = new Array(size);
    for (let i = 0; i < size; i++) messages[i] = ring[(start + i) % limit];
    snapshot = Object.freeze({ messages: Object.freeze(messages), total, dropped: total - size, error, receivedAt });
    listeners.forEach((l) => l());
  });
  return {
    push(message) {
      if (size < limit) {
        ring[(start + size) % limit] = message;
        size++;
      } else {
        ring[start] = message;
        start = (start + 1) % limit;
      }
      total++;
      receivedAt = Date.now();
      scheduler.schedule();
    },
    fail(e) {
      error = e;
      scheduler.schedule();
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    getSnapshot: () => snapshot,
    stop: () => scheduler.cancel(),
  };
}

const initialFeed = () => EMPTY_FEED;

/**
 * The recent messages of a channel (or of several, merged in arrival order): at most `limit` (default 200),
 * oldest first, with how many arrived in all (`total`) and were let go (`dropped`), the relay's refusal if any
 * (`error`) and when the last one arrived here (`receivedAt`, ms). Re-renders at most once per animation frame.
 * `channel` null: nothing. Subscribes while mounted; the connection renews it after reconnects.
 */
export function useChannel(channel, options) {
  const connection = useConnectionOf(options);
  const limit = keptCount(options?.limit, 200, "useChannel limit");
  const channels = channel === null || channel === undefined ? [] : typeof channel === "string" ? [channel] : [...channel];
  // Keyed by content: an inline array literal must not resubscribe on every render.
  const key = JSON.stringify(channels);
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const feed = useMemo(() => createFeed(limit), [connection, key, limit]);
  useEffect(() => {
    if (!connection) return undefined;
    const unsubscribes = JSON.parse(key).map((name) =>
      connection.subscribe(name, (m) => feed.push(m), (e) => feed.fail(e)),
    );
    return () => {
      for (const unsubscribe of unsubscribes) unsubscribe();
      feed.stop();
    };
  }, [connection, key, feed]);
  return useSyncExternalStore(feed.subscribe, feed.getSnapshot, initialFeed);
}

/**
 * The relay's `metric.update` on the `metrics` channel: the latest (`metrics`, null until the first), the last
 * `history` of them (default 120: ten minutes at the relay's default 5 s) with their `timestamp` for charts,
 * when the relay published the latest (`updatedAt`) and when it arrived here (`receivedAt`).
 */
export function useMetrics(options) {
  const history = keptCount(options?.history, 120, "useMetrics history");
  const feed = useChannel("metrics", { limit: history, connection: options?.connection });
  return useMemo(() => {
    const updates = feed.messages.filter((m) => m.event === "metric.update" && m.data !== null && typeof m.data === "object");
    const last = updates.length > 0 ? updates[updates.length - 1] : null;
    return {
      metrics: last ? last.data : null,
      history: updates.map((m) => ({ ...m.data, timestamp: m.timestamp })),
      updatedAt: last ? last.timestamp : null,
      receivedAt: feed.receivedAt,
      error: feed.error,
    };
  }, [feed]);
}
