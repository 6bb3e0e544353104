"use client";
// A relative time ("3m ago") that keeps itself current: the only component subscribed to the shared clock, so a
// tick re-renders these text nodes and nothing else.

import { memo } from "react";
import { useRenderCount } from "@/lib/renderCount";
import { ago, useNow } from "@/lib/time";

export const Ago = memo(function Ago({ ms }: { ms: number | undefined }) {
  useRenderCount("Ago");
  const now = useNow();
  // Before the first client render the clock reads 0: show nothing rather than a wrong time.
  return <>{now === 0 ? "" : ago(ms, now)}</>;
});
