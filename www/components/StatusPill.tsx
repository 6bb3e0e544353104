"use client";
// The relay connection's state: connected, connecting, reconnecting (with the attempt number), disconnected.

import type { ConnectionStatus } from "devrelay-client";

const LABEL: Record<ConnectionStatus, string> = {
  open: "Connected",
  connecting: "Connecting…",
  reconnecting: "Reconnecting",
  closed: "Disconnected",
};

export function StatusPill({
  status,
  attempt,
  error,
}: {
  status: ConnectionStatus;
  attempt: number;
  error: string | null;
}) {
  const label = status === "reconnecting" && attempt > 0 ? `${LABEL[status]} (attempt ${attempt})` : LABEL[status];
  return (
    <div className="status" data-testid="connection-status" data-state={status} title={error ?? undefined}>
      <span className={`dot dot-${status}`} aria-hidden />
      <span className="status-label">{label}</span>
      {error && status !== "open" && <span className="status-error">{error}</span>}
    </div>
  );
}
