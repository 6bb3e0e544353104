"use client";
// useDevtoolsConnection: the DevtoolsConnection as React state (useSyncExternalStore).
// The wasm module is loaded with a dynamic import inside an effect, so importing this file is safe during
// server rendering: nothing touches the wasm or WebSocket until the component mounts in the browser.
import { useEffect, useMemo, useState, useSyncExternalStore } from "react";

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
