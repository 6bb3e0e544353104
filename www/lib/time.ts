"use client";
// Clock helpers: wall-clock labels and a ticking "now" for relative times ("connected 3m ago").

import { useEffect, useState } from "react";

export function useNow(intervalMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(t);
  }, [intervalMs]);
  return now;
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
