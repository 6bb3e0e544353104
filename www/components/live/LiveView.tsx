"use client";
// The Live view (seed 002's /live): the relay's KPIs from its `metrics` channel, and every channel's messages as
// they arrive. Its own connection (a DevtoolsProvider): the page listens to `sessions/*` itself, so the
// connection follows no session (no snapshots or event rings are kept for this view).

import { useState } from "react";
import { useSearchParams } from "next/navigation";
import { DevtoolsProvider, useChannel, useDevtools, useMetrics } from "devrelay-client/react";
import { LIVE_CHANNELS } from "@/lib/liveFilter";
import { dashboardToken, relayAddress } from "@/lib/relayAddress";
import { StatusPill } from "../StatusPill";
import { TopNav } from "../TopNav";
import { KpiCards } from "./KpiCards";
import { LiveStream } from "./LiveStream";

/** Messages kept by the Live view when the page has no `?buffer=`. */
const DEFAULT_BUFFER = 5_000;
const MAX_BUFFER = 100_000;

export function LiveView() {
  const params = useSearchParams();
  const relayParam = params.get("relay");
  const relayUrl = relayAddress(relayParam, typeof window === "undefined" ? null : window.location);
  const asked = Number(params.get("buffer"));
  const buffer = Number.isInteger(asked) && asked >= 1 && asked <= MAX_BUFFER ? asked : DEFAULT_BUFFER;
  // The relay's dashboard token, from this page's URL fragment or this tab's storage (see relayAddress.ts).
  const [token] = useState(dashboardToken);
  return (
    <DevtoolsProvider options={{ url: relayUrl, followSelected: true, token: token ?? undefined }}>
      <Live relayUrl={relayUrl} relayParam={relayParam} buffer={buffer} />
    </DevtoolsProvider>
  );
}

function Live({ relayUrl, relayParam, buffer }: { relayUrl: string; relayParam: string | null; buffer: number }) {
  const dt = useDevtools();
  const feed = useChannel(LIVE_CHANNELS, { limit: buffer });
  const metrics = useMetrics();
  return (
    <div className="app">
      <header className="topbar">
        <h1 className="brand">
          <span className="logo" aria-hidden>
            ◆
          </span>{" "}
          devrelay
        </h1>
        <TopNav current="live" relayParam={relayParam} />
        <code className="relay-url" title="Relay address (?relay= to change)">
          {relayUrl}
        </code>
        <StatusPill status={dt.status} attempt={dt.reconnectAttempt} error={dt.error} />
        {dt.protocol === "legacy" && (
          <span className="badge warn" data-testid="legacy-relay">
            this relay speaks seed 000 only: no channels
          </span>
        )}
      </header>
      <main className="live-main">
        <KpiCards metrics={metrics} connected={dt.isConnected && dt.protocol === "v2"} />
        <LiveStream feed={feed} />
      </main>
    </div>
  );
}
