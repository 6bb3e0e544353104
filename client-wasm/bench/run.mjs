// Browser benchmark driver: serves pkg/ and this directory, opens the page in headless Chromium (playwright-core,
// Debian's chromium), and for each phase acts as the SDK itself (in Node, outside the browser, so the page's main
// thread only does dashboard work) sending `count` stream events through the relay given as argv[2]
// to one dashboard implementation (page.html: the floors, the seed-pattern JS baseline, DevtoolsConnection over
// seed 000 and over v2 batched frames). Prints a JSON report. Main-thread time is Chromium's own TaskDuration
// metric (CDP Performance) over the phase. Needs node --experimental-websocket.
// Snapshot phases: the SDK sends big `state_snapshot`s (a long conversation, SNAPSHOT_SIZES bytes, SNAPSHOTS of each
// per phase) to a DevtoolsConnection over seed 000 (`state_update`) and over v2 (`state_snapshot` publications); the
// page times the handler and the notification (page.html) and parses the same frame bare for reference.
// The event phases' SDK (SOURCE=burst, the default) is a raw WebSocket client over TCP that writes all `count`
// frames, built before the phase starts, with one socket write: the relay takes them as fast as it can read, so
// the source is never what limits a phase (it reports how long the relay took to read the burst: `sourceMs`).
// SOURCE=ws is the earlier source, Node's WebSocket sending one event at a time, which could not produce more than
// ~7-10 k events/s on this machine under load and so capped every fast kind (BENCHMARKS.md).
// Usage: [PHASES=events,snapshots] [SOURCE=burst|ws] [SNAPSHOT_SIZES=1000000,5000000] [SNAPSHOTS=5]
//   node run.mjs <relay ws url> [count=100000] [rounds=3]
import http from "node:http";
import fs from "node:fs";
import net from "node:net";
import crypto from "node:crypto";
import path from "node:path";
import { createRequire } from "node:module";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const require = createRequire(path.join(root, "scripts/tools/package.json"));
const { chromium } = require("playwright-core");

const relayUrl = process.argv[2];
const count = Number(process.argv[3] ?? 100_000);
const rounds = Number(process.argv[4] ?? 3);
// With BASE_PKG the event phases run `v2-base` too: DevtoolsConnection over v2 from the package before a change.
const KINDS = (process.env.KINDS ?? `floor,js,wasm,floor-v2,v2${process.env.BASE_PKG ? ",v2-base" : ""}`).split(",");
const SOURCE = process.env.SOURCE ?? "burst";
if (!["burst", "ws"].includes(SOURCE)) throw new Error(`SOURCE must be burst or ws, not ${SOURCE}`);
const loadavg = () => fs.readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number);
const loadStart = loadavg();

const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };
// PKG_DIR: serve another build of the package as /pkg/ (a profiling build that keeps function names, say).
const pkgDir = process.env.PKG_DIR ? path.resolve(process.env.PKG_DIR) : null;
// BASE_PKG: another build (the package before a change, built from another checkout) served as /pkg-base/; the
// snapshot phases then run it too, in the same page, interleaved with this one (kinds `*-base`).
const basePkgDir = process.env.BASE_PKG ? path.resolve(process.env.BASE_PKG) : null;
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  const file = path.normalize(path.join(root, url.pathname));
  for (const [prefix, dir] of [["/pkg/", pkgDir], ["/pkg-base/", basePkgDir]]) {
    if (!dir || !url.pathname.startsWith(prefix)) continue;
    const inPkg = path.normalize(path.join(dir, url.pathname.slice(prefix.length)));
    if (inPkg.startsWith(dir + path.sep) && fs.existsSync(inPkg)) {
      res.writeHead(200, { "content-type": types[path.extname(inPkg)] ?? "application/octet-stream" });
      fs.createReadStream(inPkg).pipe(res);
      return;
    }
  }
  const allowed = [path.join(root, "pkg"), path.join(root, "client-wasm/bench")];
  if (!allowed.some((dir) => file.startsWith(dir + path.sep)) || !fs.existsSync(file)) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { "content-type": types[path.extname(file)] ?? "application/octet-stream" });
  fs.createReadStream(file).pipe(res);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const pageUrl = `http://127.0.0.1:${server.address().port}/client-wasm/bench/page.html?relay=${encodeURIComponent(relayUrl)}` +
  (basePkgDir ? "&base=1" : "");

// PROFILE=<kind>: a CPU profile of that kind's measured phases (target/bench-wasm-<kind>.cpuprofile), and its top
// functions by self time on stderr.
function printProfile(profile) {
  const self = new Map();
  const dt = profile.timeDeltas;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  profile.samples.forEach((id, i) => {
    const f = byId.get(id).callFrame;
    const key = `${f.functionName || "(anonymous)"} ${f.url.split("/").pop()}:${f.lineNumber}`;
    self.set(key, (self.get(key) ?? 0) + (dt[i] ?? 0));
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  for (const [k, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 40))
    console.error(`${(us / 1000).toFixed(1).padStart(9)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`);
}

// A client text frame, masked with the all-zero key (the payload bytes stay as they are; the relay still unmasks
// every byte, as the load generator's frames make it do).
function clientFrame(text) {
  const payload = Buffer.from(text);
  const n = payload.length;
  const head = n < 126 ? [0x81, 0x80 | n] : n < 65536 ? [0x81, 0x80 | 126, n >> 8, n & 255]
    : [0x81, 0x80 | 127, 0, 0, 0, 0, (n >>> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255];
  return Buffer.concat([Buffer.from(head), Buffer.alloc(4), payload]);
}

// The events an SDK sends in a phase (AG-UI TEXT_MESSAGE_CONTENT, ~250 B each), `seq` 1..n.
function streamEvent(sessionId, seq) {
  return JSON.stringify({
    type: "stream_event", sessionId, timestamp: 1763812800000 + seq, threadId: "thr_1", seq,
    event: { type: "TEXT_MESSAGE_CONTENT", messageId: `msg_${seq >> 6}`, delta: `token ${seq} of the answer ` },
  });
}

// The burst source: a seed-000 SDK over a raw TCP socket (HTTP upgrade, `handshake`, wait for `handshake_ack`;
// whatever the relay sends after that is read and dropped). `burst(frames)` writes the frames with one socket
// write and resolves with the milliseconds until Node handed the last byte to the kernel: with the loopback's
// socket buffers that is, to within a few hundred kilobytes, the time the relay took to read the whole burst.
async function rawSdk(url, sessionId) {
  const u = new URL(url);
  const socket = net.connect(Number(u.port), u.hostname);
  socket.setNoDelay(true);
  await new Promise((resolve, reject) => (socket.once("connect", resolve), socket.once("error", reject)));
  let received = "";
  let check = null;
  socket.on("data", (chunk) => {
    if (check === null) return;
    received += chunk.toString("latin1");
    check();
  });
  const until = (done, what) => new Promise((resolve, reject) => {
    socket.once("close", () => reject(new Error(`relay closed the SDK socket while waiting for ${what}: ${received}`)));
    check = () => done(received) && ((check = null), resolve());
    check();
  });
  socket.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${crypto.randomBytes(16).toString("base64")}\r\n` +
    "Sec-WebSocket-Version: 13\r\n\r\n");
  await until((r) => r.includes("\r\n\r\n"), "the upgrade");
  if (!received.startsWith("HTTP/1.1 101")) throw new Error(`upgrade refused: ${received.split("\r\n")[0]}`);
  socket.write(clientFrame(JSON.stringify({ type: "handshake", protocolVersion: 1, sdkVersion: "bench", sessionId })));
  await until((r) => r.includes('"handshake_ack"'), "handshake_ack");
  return {
    burst: (frames) => {
      const t0 = performance.now();
      return new Promise((resolve, reject) =>
        socket.write(frames, (e) => (e ? reject(e) : resolve(performance.now() - t0))));
    },
    // A close frame (1000), masked like the others; the relay answers and closes the TCP connection.
    close: () => socket.end(Buffer.from([0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8])),
  };
}

// The earlier source (SOURCE=ws): Node's WebSocket, one `send` per event. Resolves with the milliseconds until
// its buffer was empty (`bufferedAmount` 0, polled).
async function wsSdk(url, sessionId) {
  const sdk = new WebSocket(url);
  await new Promise((resolve, reject) => ((sdk.onopen = resolve), (sdk.onerror = reject)));
  const acked = new Promise((resolve) => (sdk.onmessage = resolve));
  sdk.send(JSON.stringify({ type: "handshake", protocolVersion: 1, sdkVersion: "bench", sessionId }));
  await acked;
  return {
    send: async (n) => {
      const t0 = performance.now();
      for (let seq = 1; seq <= n; seq++) sdk.send(streamEvent(sessionId, seq));
      while (sdk.bufferedAmount > 0) await new Promise((resolve) => setTimeout(resolve, 5));
      return performance.now() - t0;
    },
    close: () => sdk.close(1000),
  };
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ...(process.env.JS_FLAGS ? [`--js-flags=${process.env.JS_FLAGS}`] : [])],
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
    const sdk = SOURCE === "burst" ? await rawSdk(relayUrl, sessionId) : await wsSdk(relayUrl, sessionId);
    // Built before the clock starts: the phase measures delivery and consumption, not JSON.stringify in Node.
    const frames = SOURCE === "burst"
      ? Buffer.concat(Array.from({ length: n }, (_, i) => clientFrame(streamEvent(sessionId, i + 1))))
      : null;
    await page.evaluate(([k, c, id]) => window.startPhase(k, c, id), [kind, n, sessionId]);
    const profiling = process.env.PROFILE === kind && n === count;
    if (profiling) {
      await cdp.send("Profiler.enable");
      await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
      await cdp.send("Profiler.start");
    }
    const before = await metric("TaskDuration");
    const t0 = performance.now();
    const sent = SOURCE === "burst" ? sdk.burst(frames) : sdk.send(n);
    const r = await page.evaluate(() => window.finishPhase());
    r.elapsedMs = performance.now() - t0;
    r.sourceMs = await sent;
    r.mainThreadMs = ((await metric("TaskDuration")) - before) * 1000;
    if (profiling) {
      const { profile } = await cdp.send("Profiler.stop");
      fs.writeFileSync(path.join(root, `target/bench-wasm-${kind}.cpuprofile`), JSON.stringify(profile));
      printProfile(profile);
    }
    r.count = n;
    r.eventsPerSec = n / (r.elapsedMs / 1000);
    r.sourceEventsPerSec = n / (r.sourceMs / 1000);
    sdk.close();
    return r;
  }

  // A long conversation of about `bytes` as a seed-000 `state_snapshot`, with `"timestamp":STAMP` to fill in.
  function conversation(sessionId, bytes) {
    const messages = [];
    let size = 200;
    for (let i = 0; size < bytes; i++) {
      const text = `Message ${i} of a long conversation. `.repeat(8) + "Ünïcödé and \"quotes\" too.";
      const m = { id: `msg_${i}`, role: i % 2 ? "assistant" : "user", createdAt: 1763812790000 + i,
        content: [{ type: "text", text }] };
      if (i % 10 === 9) m.content.push({ type: "tool_use", id: `call_${i}`, name: "get_weather", input: { city: "Lisbon" } });
      size += JSON.stringify(m).length + 1;
      messages.push(m);
    }
    return JSON.stringify({
      type: "state_snapshot", sessionId, timestamp: "STAMP",
      threads: [{ id: "thr_1", name: "A long one", status: "idle", createdAt: 1763812790000, messages }],
      registry: { components: [], tools: [{ name: "get_weather", description: "Current weather for a city" }] },
    }).replace('"timestamp":"STAMP"', '"timestamp":STAMP');
  }

  // One snapshot phase: an SDK session, a DevtoolsConnection speaking `protocol`, `n` snapshots of `bytes`
  // sent one at a time (each once the previous one reached the listener).
  async function snapshotPhase(protocol, bytes, n, sessionId, base = false) {
    const sdk = new WebSocket(relayUrl);
    await new Promise((resolve, reject) => ((sdk.onopen = resolve), (sdk.onerror = reject)));
    const acked = new Promise((resolve) => (sdk.onmessage = resolve));
    sdk.send(JSON.stringify({ type: "handshake", protocolVersion: 1, sdkVersion: "bench", sessionId }));
    await acked;
    await page.evaluate(([p, id, b]) => window.startSnapshotPhase(p, id, b), [protocol, sessionId, base]);
    const template = conversation(sessionId, bytes);
    const out = [];
    const kind = `snapshot-${protocol}${base ? "-base" : ""}`;
    const profiling = process.env.PROFILE === kind && bytes === snapshotSizes[snapshotSizes.length - 1];
    if (profiling) {
      await cdp.send("Profiler.enable");
      await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
      await cdp.send("Profiler.start");
    }
    for (let i = 1; i <= n; i++) {
      const stamp = 1763812800000 + i;
      await page.evaluate((s) => window.expectSnapshot(s), stamp);
      sdk.send(template.replace("STAMP", String(stamp)));
      const r = await page.evaluate(() => window.snapshotDone());
      out.push({ kind, bytes, sdkFrameBytes: Buffer.byteLength(template), ...r });
    }
    if (profiling) {
      const { profile } = await cdp.send("Profiler.stop");
      fs.writeFileSync(path.join(root, `target/bench-wasm-${kind}.cpuprofile`), JSON.stringify(profile));
      printProfile(profile);
    }
    await page.evaluate(() => window.finishSnapshotPhase());
    sdk.close(1000);
    return out;
  }

  const phases = (process.env.PHASES ?? "events,snapshots").split(",");
  const snapshotSizes = (process.env.SNAPSHOT_SIZES ?? "1000000,5000000").split(",").map(Number);
  const snapshotsPerPhase = Number(process.env.SNAPSHOTS ?? 5);
  const snapshotKinds = (process.env.SNAPSHOT_KINDS ?? "js,js-raf,legacy,v2").split(",");
  const snapshots = [];
  if (phases.includes("snapshots")) {
    const variants = basePkgDir ? [false, true] : [false];
    for (const base of variants)
      for (const protocol of ["js", "legacy", "v2"]) await snapshotPhase(protocol, 100_000, 2, `warm-snap-${protocol}-${base}`, base);
    for (let round = 1; round <= rounds; round++) {
      for (const bytes of snapshotSizes) {
        for (const [protocol, base] of snapshotKinds.flatMap((p) => (p.startsWith("js") ? [[p, false]] : variants.map((b) => [p, b])))) {
          const id = `snap-${protocol}-${base ? "base-" : ""}${bytes}-${round}`;
          for (const r of await snapshotPhase(protocol, bytes, snapshotsPerPhase, id, base)) {
            r.round = round;
            snapshots.push(r);
            console.error(`${r.kind} ${bytes} B round ${round}: frame ${r.frameChars} chars, busy ${r.busyMs.toFixed(1)} ms ` +
              `(handler ${r.handlerMs.toFixed(1)} + notify ${r.notifyMs.toFixed(1)}), wall ${r.wallMs.toFixed(1)} ms, ` +
              `bare JSON.parse ${r.parseMs.toFixed(1)} ms, ${r.longTasks} long tasks (longest ${r.longestTaskMs.toFixed(0)} ms)` +
              (process.env.DEBUG ? ` ${JSON.stringify(r.taskTimes.map((t) => t.map(Math.round)))} notify at ${r.notifyStartMs.toFixed(0)}` : ""));
          }
        }
      }
    }
  }

  const results = [];
  // Warm-up: JIT, wasm tier-up, socket paths.
  if (phases.includes("events")) for (const kind of KINDS) await phase(kind, 2000, `warm-${kind}`);
  for (let round = 1; round <= rounds && phases.includes("events"); round++) {
    for (const kind of KINDS) {
      const r = await phase(kind, count, `bench-${kind}-${round}`);
      r.round = round;
      results.push(r);
      console.error(`${kind} round ${round}: ${r.elapsedMs.toFixed(0)} ms, ${r.eventsPerSec.toFixed(0)} ev/s, ` +
        `main thread ${r.mainThreadMs.toFixed(0)} ms, ${r.notifications} notifications, kept ${r.kept}, ` +
        `source done in ${r.sourceMs.toFixed(0)} ms` +
        (r.frames === null ? "" : `, ${r.messages} messages in ${r.frames} frames`));
    }
  }
  const chromiumVersion = browser.version();
  const loadAverage = { start: loadStart, end: loadavg() };
  console.log(JSON.stringify({ count, rounds, capacity: 5000, source: SOURCE, chromiumVersion, loadAverage, results, snapshots },
    null, 2));
} finally {
  await browser.close();
  server.close();
}
