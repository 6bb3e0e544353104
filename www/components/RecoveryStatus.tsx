"use client";
// What the last reconnect did to the sessions' data: every missed event replayed ("recovered 312 missed events"),
// or not possible (the relay restarted, or its history no longer reached back) and resynced from a fresh snapshot.

import { memo } from "react";
import type { ConnectionStatus, ReconnectSummary } from "devrelay-client";
import { useRenderCount } from "@/lib/renderCount";

/** `data-state` of the notice: what the last reconnect came to. */
export type RecoveryState = "none" | "recovering" | "recovered" | "resynced" | "restarted";

export function recoveryState(last: ReconnectSummary | null): RecoveryState {
  if (last === null) return "none";
  if (last.recovering > 0) return "recovering";
  if (last.relayRestarted) return "restarted";
  if (last.resynced > 0) return "resynced";
  return "recovered";
}

function plural(n: number, word: string): string {
  return `${n.toLocaleString("en-US")} ${word}${n === 1 ? "" : "s"}`;
}

export function recoveryText(last: ReconnectSummary | null): string {
  if (last === null) return "";
  switch (recoveryState(last)) {
    case "recovering":
      return "Reconnected — recovering missed events…";
    case "restarted":
      return "Relay restarted — resynced";
    case "resynced":
      return `Reconnected — ${plural(last.resynced, "session")} resynced (the relay's history did not reach back)`;
    default:
      return `Reconnected — recovered ${plural(last.replayed, "missed event")}`;
  }
}

export const RecoveryStatus = memo(function RecoveryStatus({
  last,
  status,
}: {
  last: ReconnectSummary | null;
  status: ConnectionStatus;
}) {
  useRenderCount("RecoveryStatus");
  // While the connection is down the status pill speaks; the notice is about the reconnect that followed.
  const state = status === "open" ? recoveryState(last) : "none";
  return (
    // role="status": a polite live region (always in the DOM, so a change of its text is announced).
    <div
      className={`recovery recovery-${state}`}
      role="status"
      data-testid="recovery-status"
      data-state={state}
      data-replayed={last?.replayed ?? 0}
    >
      {state === "none" ? "" : recoveryText(last)}
    </div>
  );
});
