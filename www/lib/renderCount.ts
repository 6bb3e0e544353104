"use client";
// Render counters for tests: with `?debugRenders` in the page URL, `window.__devrelayRenders` counts every
// committed render of the instrumented components (and a few other events, e.g. clock ticks), so the e2e suite
// can prove what does *not* re-render (the page while only the clock moves). Without the parameter nothing is
// counted and nothing is put on `window`.

import { useEffect } from "react";

type Counts = Record<string, number>;

const counts: Counts | null = (() => {
  if (typeof window === "undefined" || !new URLSearchParams(window.location.search).has("debugRenders")) return null;
  const c: Counts = {};
  (window as unknown as { __devrelayRenders: Counts }).__devrelayRenders = c;
  return c;
})();

/** Counts one occurrence of `name` (when counting is on). */
export function count(name: string): void {
  if (counts) counts[name] = (counts[name] ?? 0) + 1;
}

/** Counts every committed render of the calling component under `name`. An effect without dependencies runs
 * once per commit, so this counts renders that reached the screen, without side effects during render. */
export function useRenderCount(name: string): void {
  useEffect(() => {
    count(name);
  });
}
