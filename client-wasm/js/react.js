"use client";
// useDevtoolsConnection: the DevtoolsConnection as React state (useSyncExternalStore).
// The wasm module is loaded with a dynamic import inside an effect, so importing this file is safe during
// server rendering: nothing touches the wasm or WebSocket until the component mounts in the browser.
import { useEffect, useMemo, useState, useSyncExternalStore } from "react";

/** State shown before the connection exists (server render, first client render, while wasm loads). */
const INITIAL_STATE = Object.freeze({
  status: "connecting",
  isConnected: false,
  error: null,
  reconnectAttempt: 0,
  clients: Object.freeze([]),
  snapshots: Object.freeze({}),
  events: Object.freeze({}),
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

export function useDevtoolsConnection(options) {
  // Options usually come as an inline object literal: reconnect only when their content changes.
  const key = JSON.stringify(options ?? {});
  const [connection, setConnection] = useState(null);
  const [loadError, setLoadError] = useState(null);

  useEffect(() => {
    let cancelled = false;
    let conn = null;
    loadModule().then(
      (mod) => {
        if (cancelled) return;
        conn = new mod.DevtoolsConnection(JSON.parse(key));
        setConnection(conn);
        setLoadError(null);
      },
      (err) => {
        if (!cancelled) setLoadError(`cannot load devrelay-client wasm: ${err}`);
      },
    );
    return () => {
      cancelled = true;
      setConnection(null);
      if (conn !== null) {
        conn.close();
        freed.add(conn);
        conn.free();
      }
    };
  }, [key]);

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
    if (loadError !== null && connection === null) {
      return { ...state, status: "closed", error: loadError, connection };
    }
    return { ...state, connection };
  }, [state, connection, loadError]);
}
