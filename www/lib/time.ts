"use client";
// Clock helpers: wall-clock labels, and one shared ticking clock for relative times ("connected 3m ago"). Only
// the components that show a relative time subscribe to it (see components/Ago.tsx), so a tick re-renders those
// few text nodes and nothing above them.

import { useEffect, useState, useSyncExternalStore } from "react";
import { count } from "./renderCount";

/** How often relative times are refreshed. */
const TICK_MS = 1000;

let now = Date.now();
const listeners = new Set<() => void>();
let timer: ReturnType<typeof setInterval> | null = null;

function subscribeClock(listener: () => void): () => void {
  listeners.add(listener);
  if (timer === null) {
    now = Date.now();
    timer = setInterval(() => {
      now = Date.now();
      count("clockTick");
      for (const l of listeners) l();
    }, TICK_MS);
  }
  return () => {
    listeners.delete(listener);
    if (listeners.size === 0 && timer !== null) {
      clearInterval(timer);
      timer = null;
    }
  };
}

const getNow = () => now;
// Server render: no clock (relative times render on the client).
const getServerNow = () => 0;

/** The shared clock, in ms; re-renders the caller on every tick. Use it only where a relative time is shown. */
export function useNow(): number {
  return useSyncExternalStore(subscribeClock, getNow, getServerNow);
}

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

/** `14:03:07` */
export function clock(ms: number | undefined): string {
  if (ms === undefined) return "–";
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** `14:03:07.042`, for the event timeline. */
export function clockMs(ms: number): string {
  return `${clock(ms)}.${pad(new Date(ms).getMilliseconds(), 3)}`;
}

/** `just now`, `42s ago`, `3m ago`, `2h 5m ago`, `3d ago`. */
export function ago(ms: number | undefined, now: number): string {
  if (ms === undefined) return "";
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 5) return "just now";
  if (s < 60) return `${s}s ago`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ago`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m ago`;
  return `${Math.floor(h / 24)}d ago`;
}

/** The value, but only after it has stopped changing for `ms` (search boxes). */
export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}
