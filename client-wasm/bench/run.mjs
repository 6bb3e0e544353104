// Browser benchmark driver: serves pkg/ and this directory, opens the page in headless Chromium (playwright-core,
// Debian's chromium), and for each phase acts as the SDK itself (Node's WebSocket, outside the browser, so the
// page's main thread only does dashboard work) sending `count` stream events through the relay given as argv[2]
// to one dashboard implementation (page.html: the floors, the seed-pattern JS baseline, DevtoolsConnection over
// seed 000 and over v2 batched frames). Prints a JSON report. Main-thread time is Chromium's own TaskDuration
// metric (CDP Performance) over the phase. Needs node --experimental-websocket.
// Usage: node run.mjs <relay ws url> [count=100000] [rounds=3]
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const require = createRequire(path.join(root, "scripts/tools/package.json"));
const { chromium } = require("playwright-core");

const relayUrl = process.argv[2];
const count = Number(process.argv[3] ?? 100_000);
const rounds = Number(process.argv[4] ?? 3);
const KINDS = ["floor", "js", "wasm", "floor-v2", "v2"];

const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  const file = path.normalize(path.join(root, url.pathname));
  const allowed = [path.join(root, "pkg"), path.join(root, "client-wasm/bench")];
  if (!allowed.some((dir) => file.startsWith(dir + path.sep)) || !fs.existsSync(file)) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { "content-type": types[path.extname(file)] ?? "application/octet-stream" });
  fs.createReadStream(file).pipe(res);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const pageUrl = `http://127.0.0.1:${server.address().port}/client-wasm/bench/page.html?relay=${encodeURIComponent(relayUrl)}`;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  await page.goto(pageUrl);
  await page.evaluate(() => window.benchReady);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Performance.enable");
  const metric = async (name) => (await cdp.send("Performance.getMetrics")).metrics.find((m) => m.name === name).value;

  async function phase(kind, n, sessionId) {
    const sdk = new WebSocket(relayUrl);
    await new Promise((resolve, reject) => ((sdk.onopen = resolve), (sdk.onerror = reject)));
    const acked = new Promise((resolve) => (sdk.onmessage = resolve));
    sdk.send(JSON.stringify({ type: "handshake", protocolVersion: 1, sdkVersion: "bench", sessionId }));
    await acked;
    await page.evaluate(([k, c, id]) => window.startPhase(k, c, id), [kind, n, sessionId]);
    const before = await metric("TaskDuration");
    const t0 = performance.now();
    for (let seq = 1; seq <= n; seq++) {
      sdk.send(JSON.stringify({
        type: "stream_event", sessionId, timestamp: 1763812800000 + seq, threadId: "thr_1", seq,
        event: { type: "TEXT_MESSAGE_CONTENT", messageId: `msg_${seq >> 6}`, delta: `token ${seq} of the answer ` },
      }));
    }
    const r = await page.evaluate(() => window.finishPhase());
    r.elapsedMs = performance.now() - t0;
    r.mainThreadMs = ((await metric("TaskDuration")) - before) * 1000;
    r.count = n;
    r.eventsPerSec = n / (r.elapsedMs / 1000);
    sdk.close(1000);
    return r;
  }

  // Warm-up: JIT, wasm tier-up, socket paths.
  for (const kind of KINDS) await phase(kind, 2000, `warm-${kind}`);

  const results = [];
  for (let round = 1; round <= rounds; round++) {
    for (const kind of KINDS) {
      const r = await phase(kind, count, `bench-${kind}-${round}`);
      r.round = round;
      results.push(r);
      console.error(`${kind} round ${round}: ${r.elapsedMs.toFixed(0)} ms, ${r.eventsPerSec.toFixed(0)} ev/s, ` +
        `main thread ${r.mainThreadMs.toFixed(0)} ms, ${r.notifications} notifications, kept ${r.kept}` +
        (r.frames === null ? "" : `, ${r.messages} messages in ${r.frames} frames`));
    }
  }
  const chromiumVersion = browser.version();
  console.log(JSON.stringify({ count, rounds, capacity: 5000, chromiumVersion, results }, null, 2));
} finally {
  await browser.close();
  server.close();
}
