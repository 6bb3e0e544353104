"use client";
// Clients the dashboard has seen, including ones that left: a client that disconnects stays on screen, marked
// disconnected (its view cleared), until it comes back or the user forgets it. While the relay itself is
// unreachable nobody knows who is connected, so the last known clients are shown as "stale" instead.

import { useCallback, useEffect, useRef, useState } from "react";
import type { ClientInfo, ConnectionStatus } from "devrelay-client";

export type ClientState = "live" | "disconnected" | "stale";

export interface KnownClient {
  info: ClientInfo;
  state: ClientState;
  /** When it disconnected / went stale (ms). */
  since?: number;
}

/** Ghost cards kept at most (oldest forgotten first). */
const MAX_GHOSTS = 20;

export function useKnownClients(clients: ClientInfo[], status: ConnectionStatus) {
  const [known, setKnown] = useState<KnownClient[]>([]);
  // The client list as it was when the relay (re)connected: until it changes, the relay has not told us who is
  // connected yet, so stale clients must not be declared disconnected.
  const listAtOpen = useRef<ClientInfo[] | null>(null);
  const prevStatus = useRef<ConnectionStatus>(status);

  useEffect(() => {
    if (status === "open" && prevStatus.current !== "open") listAtOpen.current = clients;
    prevStatus.current = status;
    const open = status === "open";
    // The store keeps its last client list while reconnecting and replaces it when the relay answers again.
    const authoritative = open && clients !== listAtOpen.current;
    const now = Date.now();
    setKnown((prev) => {
      const before = new Map(prev.map((k) => [k.info.sessionId, k]));
      const listed = new Set(clients.map((c) => c.sessionId));
      const next: KnownClient[] = clients.map((info) => {
        if (open) return { info, state: "live" };
        const was = before.get(info.sessionId);
        return { info, state: "stale", since: was?.state === "stale" ? was.since : now };
      });
      const ghosts: KnownClient[] = [];
      for (const k of prev) {
        if (listed.has(k.info.sessionId)) continue;
        if (k.state === "live") {
          ghosts.push({ info: k.info, state: open ? "disconnected" : "stale", since: now });
        } else if (k.state === "stale" && authoritative) {
          ghosts.push({ ...k, state: "disconnected", since: now });
        } else {
          ghosts.push(k);
        }
      }
      return [...next, ...ghosts.slice(-MAX_GHOSTS)];
    });
  }, [clients, status]);

  const forget = useCallback(
    (sessionId: string) => setKnown((prev) => prev.filter((k) => k.info.sessionId !== sessionId)),
    [],
  );
  return { known, forget };
}
