"use client";
// The relay's KPIs from its `metrics` channel (`metric.update`, every --metrics-interval-secs): one card per
// figure with its current value and a small chart of its recent history, and an indicator that says whether the
// figures are live (an update arrived within three intervals), stale, still awaited, or offline.

import { memo, useMemo } from "react";
import type { MetricsSample, RealtimeMetrics } from "devrelay-client/react";
import { useNow } from "@/lib/time";
import { Sparkline, type Series } from "./Sparkline";

/** The interval assumed before two updates have arrived (the relay's default). */
const DEFAULT_INTERVAL_MS = 5_000;
/** Updates missed before the figures count as stale. */
const STALE_AFTER_INTERVALS = 3;

interface Card {
  id: string;
  title: string;
  value: (m: MetricsSample) => number;
  format: (n: number) => string;
  /** Shown under the value. */
  note?: (m: MetricsSample) => string;
  series: { label: string; stroke: string; pick: (m: MetricsSample) => number }[];
}

const integer = (n: number) => Math.round(n).toLocaleString("en-US");
const perMinute = (n: number) => `${integer(n)}/min`;
const kib = (n: number) => (n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MiB` : `${Math.round(n / 1024)} KiB`);
const micros = (n: number) => (n >= 1000 ? `${(n / 1000).toFixed(n >= 10_000 ? 0 : 1)} ms` : `${integer(n)} µs`);

const CARDS: Card[] = [
  {
    id: "sessions",
    title: "Active sessions",
    value: (m) => m.activeSessions,
    format: integer,
    series: [{ label: "sessions", stroke: "#6cb4ff", pick: (m) => m.activeSessions }],
  },
  {
    id: "agents",
    title: "Agents",
    value: (m) => m.activeAgents,
    format: integer,
    series: [{ label: "agents", stroke: "#b392f9", pick: (m) => m.activeAgents }],
  },
  {
    id: "dashboards",
    title: "Dashboards",
    value: (m) => m.dashboards,
    format: integer,
    note: (m) => `${integer(m.connections)} connections, ${integer(m.channels)} channels, ${kib(m.historyBytes ?? 0)} history`,
    series: [{ label: "dashboards", stroke: "#3fb950", pick: (m) => m.dashboards }],
  },
  {
    id: "messages-in",
    title: "Messages in",
    value: (m) => m.messagesInPerMinute,
    format: perMinute,
    series: [{ label: "in per minute", stroke: "#6cb4ff", pick: (m) => m.messagesInPerMinute }],
  },
  {
    id: "messages-out",
    title: "Messages out",
    value: (m) => m.messagesOutPerMinute,
    format: perMinute,
    series: [{ label: "out per minute", stroke: "#f0883e", pick: (m) => m.messagesOutPerMinute }],
  },
  {
    id: "drops",
    title: "Dropped",
    value: (m) => m.dropped,
    format: integer,
    note: (m) => `${integer(m.slowConsumerCloses)} slow-consumer closes, ${integer(m.conflated)} snapshots conflated`,
    series: [{ label: "dropped", stroke: "#ff6b63", pick: (m) => m.dropped }],
  },
  {
    id: "fanout",
    title: "Fan-out latency",
    value: (m) => m.fanoutLatencyP99Us,
    format: (n) => `p99 ${micros(n)}`,
    note: (m) => `p50 ${micros(m.fanoutLatencyP50Us)}`,
    series: [
      { label: "p50", stroke: "#3fb950", pick: (m) => m.fanoutLatencyP50Us },
      { label: "p99", stroke: "#d29922", pick: (m) => m.fanoutLatencyP99Us },
    ],
  },
];

export type Liveness = "live" | "stale" | "waiting" | "offline";

/** The typical interval between updates (median of the recent gaps), in ms. */
export function intervalOf(history: readonly MetricsSample[]): number {
  const gaps: number[] = [];
  for (let i = Math.max(1, history.length - 10); i < history.length; i++) {
    gaps.push(history[i].timestamp - history[i - 1].timestamp);
  }
  if (gaps.length === 0) return DEFAULT_INTERVAL_MS;
  gaps.sort((a, b) => a - b);
  return Math.max(gaps[Math.floor(gaps.length / 2)], 1);
}

export function liveness(connected: boolean, receivedAt: number | null, interval: number, now: number): Liveness {
  if (!connected) return "offline";
  if (receivedAt === null) return "waiting";
  return now - receivedAt <= STALE_AFTER_INTERVALS * interval ? "live" : "stale";
}

const LIVENESS_LABEL: Record<Liveness, string> = {
  live: "Live",
  stale: "Stale: no update for a while",
  waiting: "Waiting for the first update",
  offline: "Offline: the relay is not connected",
};

export const KpiCards = memo(function KpiCards({
  metrics: { history, receivedAt, error },
  connected,
}: {
  metrics: RealtimeMetrics;
  connected: boolean;
}) {
  const now = useNow();
  const interval = intervalOf(history);
  const state = liveness(connected, receivedAt, interval, now === 0 ? Date.now() : now);
  const latest = history.length > 0 ? history[history.length - 1] : null;
  // Recomputed per update, not per clock tick: the charts get new data only when there is some.
  const times = useMemo(() => history.map((m) => m.timestamp), [history]);
  const seriesByCard: Series[][] = useMemo(
    () => CARDS.map((card) => card.series.map((s) => ({ label: s.label, stroke: s.stroke, values: history.map(s.pick) }))),
    [history],
  );
  return (
    <section className="kpis" aria-labelledby="kpis-title" data-testid="kpis" data-updates={history.length}>
      <div className="kpis-head">
        <h2 id="kpis-title" className="section-title">
          Relay
        </h2>
        <span className="live-indicator" role="status" data-testid="live-indicator" data-state={state}>
          <span className={`dot dot-${state}`} aria-hidden /> {LIVENESS_LABEL[state]}
        </span>
        {latest && (
          <span className="muted small">
            every {Math.round(interval / 100) / 10}s · up {integer(latest.uptimeSecs)}s
          </span>
        )}
        {error && <span className="bad small">metrics: {error.code}</span>}
      </div>
      <div className="kpi-grid">
        {CARDS.map((card, i) => {
          const series = seriesByCard[i];
          return (
            <div className="kpi-card" key={card.id} data-testid={`kpi-${card.id}`}>
              <h3 className="kpi-title">{card.title}</h3>
              <div className="kpi-value" data-testid={`kpi-${card.id}-value`}>
                {latest ? card.format(card.value(latest)) : "–"}
              </div>
              <div className="kpi-note muted small">{latest && card.note ? card.note(latest) : "\u00a0"}</div>
              <Sparkline
                times={times}
                series={series}
                label={`${card.title} over the last ${history.length} updates${latest ? `: now ${card.format(card.value(latest))}` : ""}`}
                testId={`kpi-${card.id}-chart`}
              />
            </div>
          );
        })}
      </div>
    </section>
  );
});
