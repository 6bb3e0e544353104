"use client";
// The relay connection's state: connected, connecting, reconnecting (with the attempt number), disconnected.

import { memo } from "react";
import type { ConnectionStatus } from "devrelay-client";
import { useRenderCount } from "@/lib/renderCount";

const LABEL: Record<ConnectionStatus, string> = {
  open: "Connected",
  connecting: "Connecting…",
  reconnecting: "Reconnecting",
  closed: "Disconnected",
};

export const StatusPill = memo(function StatusPill({
  status,
  attempt,
  error,
}: {
  status: ConnectionStatus;
  attempt: number;
  error: string | null;
}) {
  useRenderCount("StatusPill");
  const label = status === "reconnecting" && attempt > 0 ? `${LABEL[status]} (attempt ${attempt})` : LABEL[status];
  return (
    // role="status": a live region, so screen readers announce "Reconnecting (attempt 2)" and the error as they
    // change, without moving focus.
    <div
      className="status"
      role="status"
      data-testid="connection-status"
      data-state={status}
      title={error ?? undefined}
    >
      <span className={`dot dot-${status}`} aria-hidden />
      <span className="status-label">{label}</span>
      {error && status !== "open" && <span className="status-error">{error}</span>}
    </div>
  );
});
