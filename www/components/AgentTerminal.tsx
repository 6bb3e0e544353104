"use client";
// One agent's terminal: xterm.js (loaded in the browser only) fitted to its box by the fit add-on, fed the
// agent's kept output and then every new chunk as bytes (colours, cursor movement and all). Interactive agents
// get the keystrokes and the size; others show the terminal read-only.

import { useEffect, useRef } from "react";
import type { AgentsStore } from "@/lib/agents";

/** How far the terminal is behind what arrived, per agent: bytes received, bytes xterm finished parsing, the
 *  largest backlog seen, and when the last byte was parsed (read by bench/terminal.mjs). */
export interface TerminalStats {
  received: number;
  parsed: number;
  maxBacklog: number;
  lastParsedAt: number;
}

declare global {
  interface Window {
    __devrelayTerminalStats?: Record<string, TerminalStats>;
  }
}

/** GitHub-dark-like ANSI colours, each at least 4.5:1 on the background (WCAG AA; the e2e suite runs axe on the
 *  terminal's text too), black included. */
const THEME = {
  background: "#0d1117",
  foreground: "#e6edf3",
  cursor: "#e6edf3",
  black: "#7d8590",
  red: "#ff7b72",
  green: "#3fb950",
  yellow: "#d29922",
  blue: "#58a6ff",
  magenta: "#d2a8ff",
  cyan: "#39c5cf",
  white: "#b1bac4",
  brightBlack: "#8b949e",
  brightRed: "#ffa198",
  brightGreen: "#56d364",
  brightYellow: "#e3b341",
  brightBlue: "#79c0ff",
  brightMagenta: "#e2c5ff",
  brightCyan: "#56d4dd",
  brightWhite: "#f0f6fc",
};

export function AgentTerminal({
  store,
  agentId,
  interactive,
  onInput,
  onResize,
}: {
  store: AgentsStore;
  agentId: string;
  interactive: boolean;
  onInput: (data: string) => void;
  onResize: (cols: number, rows: number) => void;
}) {
  const box = useRef<HTMLDivElement>(null);
  // The latest callbacks, without re-creating the terminal when they change.
  const handlers = useRef({ onInput, onResize, interactive });
  useEffect(() => {
    handlers.current = { onInput, onResize, interactive };
  }, [onInput, onResize, interactive]);

  useEffect(() => {
    let disposed = false;
    let cleanup = () => {};
    (async () => {
      const [{ Terminal }, { FitAddon }] = await Promise.all([import("@xterm/xterm"), import("@xterm/addon-fit")]);
      if (disposed || !box.current) return;
      const term = new Terminal({
        convertEol: false,
        disableStdin: !handlers.current.interactive,
        cursorBlink: handlers.current.interactive,
        scrollback: 10_000,
        fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace',
        fontSize: 13,
        theme: THEME,
      });
      const fit = new FitAddon();
      term.loadAddon(fit);
      term.open(box.current);
      fit.fit();
      const stats: TerminalStats = { received: 0, parsed: 0, maxBacklog: 0, lastParsedAt: 0 };
      (window.__devrelayTerminalStats ??= {})[agentId] = stats;
      const unfollow = store.followTerminal(agentId, (chunk) => {
        if (chunk === "reset") {
          term.reset();
          return;
        }
        const n = chunk.length;
        stats.received += n;
        stats.maxBacklog = Math.max(stats.maxBacklog, stats.received - stats.parsed);
        term.write(chunk, () => {
          stats.parsed += n;
          stats.lastParsedAt = performance.now();
        });
      });
      const input = term.onData((d) => {
        if (handlers.current.interactive) handlers.current.onInput(d);
      });
      const resized = term.onResize(({ cols, rows }) => {
        if (handlers.current.interactive) handlers.current.onResize(cols, rows);
      });
      if (handlers.current.interactive) handlers.current.onResize(term.cols, term.rows);
      const observer = new ResizeObserver(() => fit.fit());
      observer.observe(box.current);
      cleanup = () => {
        observer.disconnect();
        input.dispose();
        resized.dispose();
        unfollow();
        term.dispose();
      };
    })();
    return () => {
      disposed = true;
      cleanup();
    };
  }, [store, agentId]);

  return (
    <div
      className="agent-terminal"
      data-testid="agent-terminal"
      ref={box}
      role="region"
      aria-label={`Terminal of agent ${agentId}${interactive ? " (interactive)" : " (read-only)"}`}
    />
  );
}
