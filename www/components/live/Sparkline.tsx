"use client";
// A small time-series chart (uPlot, canvas): one or two series over time, no axes, no legend. uPlot is loaded in
// the browser only (it reads `window` when imported), sized to its container, and fed new data in place
// (`setData`) rather than rebuilt. For assistive technology the chart is an image whose label says what it
// shows and the latest value; the numbers themselves are in the card's text.

import { useEffect, useMemo, useRef } from "react";
import type uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

const HEIGHT = 44;

export interface Series {
  label: string;
  /** A CSS colour. */
  stroke: string;
  values: readonly number[];
}

export function Sparkline({
  times,
  series,
  label,
  testId,
}: {
  /** ms since the epoch, one per value. */
  times: readonly number[];
  series: readonly Series[];
  /** The accessible name, e.g. "Messages in per minute, last 10 minutes". */
  label: string;
  testId?: string;
}) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const aligned: uPlot.AlignedData = useMemo(
    () => [times.map((t) => t / 1000), ...series.map((s) => [...s.values])],
    [times, series],
  );
  // The latest data, for the chart created (asynchronously) later.
  const data = useRef<uPlot.AlignedData>(aligned);
  useEffect(() => {
    data.current = aligned;
    plot.current?.setData(aligned);
  }, [aligned]);
  const shape = series.map((s) => `${s.label}:${s.stroke}`).join("|");

  useEffect(() => {
    const el = host.current;
    if (!el) return undefined;
    let cancelled = false;
    let observer: ResizeObserver | null = null;
    import("uplot").then(({ default: UPlot }) => {
      if (cancelled) return;
      const opts: uPlot.Options = {
        width: Math.max(el.clientWidth, 40),
        height: HEIGHT,
        padding: [4, 2, 2, 2],
        legend: { show: false },
        cursor: { show: false },
        select: { show: false, left: 0, top: 0, width: 0, height: 0 },
        scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min), max > min ? max : min + 1] } },
        axes: [{ show: false }, { show: false }],
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: 1.5, points: { show: false } }))],
      };
      plot.current = new UPlot(opts, data.current, el);
      observer = new ResizeObserver(() => {
        plot.current?.setSize({ width: Math.max(el.clientWidth, 40), height: HEIGHT });
      });
      observer.observe(el);
    });
    return () => {
      cancelled = true;
      observer?.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // The chart is rebuilt only when its series change (names, colours); values go through setData below.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [shape]);

  return (
    <div
      className="sparkline"
      ref={host}
      role="img"
      aria-label={label}
      data-testid={testId}
      data-points={times.length}
    />
  );
}
