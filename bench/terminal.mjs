// The browser terminal benchmark (issue 8): one agent prints --rate bytes per second of coloured terminal text
// (`devrelay-bench-agents --flood`, 100 chunks a second) for --seconds; the dashboard's Agents view, in headless
// Chromium, shows it in its xterm.js terminal. Sampled from the page every 250 ms: bytes the page received, bytes
// xterm finished parsing (its write callback), the backlog between them, and animation frames. "Keeps up" means
// the backlog stays bounded during the flood (it does not grow with time) and is gone soon after it.
//
//   DEVRELAY_BIN=target/release/devrelay BENCH_AGENTS_BIN=target/release/devrelay-bench-agents \
//     node bench/terminal.mjs [--rate 1000000] [--seconds 20]
//
// Prints a markdown row (BENCHMARKS.md "Agents").

import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ROOT, Proc, startRelay, launchBrowser, withTimeout } from "../tests/e2e/harness.mjs";

const { values } = parseArgs({
  options: { rate: { type: "string", default: "1000000" }, seconds: { type: "string", default: "20" } },
});
const rate = Number(values.rate);
const seconds = Number(values.seconds);
const agentsBin = process.env.BENCH_AGENTS_BIN ?? join(ROOT, "target", "release", "devrelay-bench-agents");
if (!existsSync(agentsBin)) throw new Error(`${agentsBin} not built: cargo build --release -p devrelay-bench`);

const relay = await startRelay(0);
const browser = await launchBrowser();
let flood;
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(`${relay.page}agents?agent=flood${relay.token ? `#token=${relay.token}` : ""}`);
  // Animation frames: a renderer that falls behind skips them.
  await page.evaluate(() => {
    window.__frames = 0;
    const tick = () => {
      window.__frames++;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  const args = ["--url", relay.url, "--flood", String(rate), "--seconds", String(seconds)];
  if (relay.token) args.push("--token", relay.token);
  flood = new Proc("flood", agentsBin, args);
  await page.waitForSelector('[data-testid="agent-panel"][data-agent-id="flood"] [data-testid="agent-terminal"]', {
    timeout: 30_000,
  });
  const sample = () =>
    page.evaluate(() => ({ t: performance.now(), frames: window.__frames, ...window.__devrelayTerminalStats?.flood }));
  const samples = [];
  let floodDone = false;
  const done = flood.line(/^flood: (\d+) bytes/).then((m) => {
    floodDone = true;
    return Number(m[1]);
  });
  // Until the flood ends, then until the terminal has parsed everything it received (or 30 s).
  let endedAt = null;
  for (;;) {
    const s = await sample();
    samples.push(s);
    if (floodDone && endedAt === null) endedAt = s.t;
    if (endedAt !== null && s.received > 0 && s.parsed === s.received) break;
    if (endedAt !== null && s.t - endedAt > 30_000) break;
    await new Promise((ok) => setTimeout(ok, 250));
  }
  const sent = await withTimeout(done, "flood total");
  const live = samples.filter((s) => s.received > 0);
  const first = live[0];
  const last = live[live.length - 1];
  const during = live.filter((s) => endedAt === null || s.t <= endedAt);
  const backlog = (s) => s.received - s.parsed;
  const quarter = (q) => during[Math.min(during.length - 1, Math.floor((during.length - 1) * q))];
  const span = (during[during.length - 1].t - first.t) / 1000;
  const row = {
    rate,
    seconds,
    sentBytes: sent,
    receivedBytes: last.received,
    parsedBytes: last.parsed,
    receivedPerSec: Math.round((during[during.length - 1].received - first.received) / span),
    parsedPerSec: Math.round((during[during.length - 1].parsed - first.parsed) / span),
    backlogAt25_50_75_100: [0.25, 0.5, 0.75, 1].map((q) => backlog(quarter(q))),
    maxBacklog: last.maxBacklog,
    drainMs: Math.round(last.t - endedAt),
    fps: Math.round((during[during.length - 1].frames - first.frames) / span),
  };
  console.log(JSON.stringify(row));
  console.log(
    `| ${rate} B/s × ${seconds} s | ${row.sentBytes} | ${row.receivedBytes} | ${row.parsedBytes} | ${row.receivedPerSec} | ${row.parsedPerSec} | ${row.backlogAt25_50_75_100.join(" / ")} | ${row.maxBacklog} | ${row.drainMs} | ${row.fps} |`,
  );
  await page.close();
} finally {
  await flood?.stop().catch(() => {});
  await browser.close();
  await relay.stop();
}
