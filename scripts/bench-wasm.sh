#!/usr/bin/env bash
# Browser benchmark (not a test): COUNT (default 100,000) stream_event messages from an SDK (Node, outside the page)
# through a real release-build relay into, in the same page of headless Chromium, same run, ROUNDS rounds (default
# 3) after a warm-up: the floors (raw WebSocket + JSON.parse, seed 000 and v2 batched); a plain-JS implementation of
# the seed-000 dashboard hook's update pattern (copy the session's array on every event, one message per frame);
# DevtoolsConnection with the 5,000-event cap over seed 000 (one message per frame) and over v2 (batched frames).
# Then big snapshots (SNAPSHOT_SIZES, default 1 MB and 5 MB; SNAPSHOTS of each, default 5) to DevtoolsConnection
# over seed 000 and v2: the page's busy time from the frame's arrival to the listener holding the snapshot, against
# a bare JSON.parse of the same frame, and long tasks. PHASES=events or PHASES=snapshots runs one part only.
# The event phases' SDK writes its whole burst at once (SOURCE=burst; SOURCE=ws is the old one-send-per-event
# Node WebSocket, which capped the fast kinds): the table prints how fast the relay read it (the source's ceiling)
# and the floors' events/s (the whole pipeline's, to a page that keeps nothing).
# Prints a table with medians and writes the raw JSON to target/bench-wasm.json. Figures go into BENCHMARKS.md
# ("Dashboard client (wasm) benchmark", "Dashboard client: v2 batched frames", "Dashboard client: big snapshots").
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/scripts/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
COUNT=${1:-100000}
ROUNDS=${2:-3}

scripts/build-wasm.sh
cargo build --release -p devrelay

# The SDK outruns the dashboards on purpose. A relay queue big enough for the whole burst keeps the relay from
# closing the slower consumer as a slow consumer (4002) mid-phase: we measure consumption, not back-pressure.
# The SDK also outruns the relay's per-connection inbound rate limit on purpose (lifted), and the page's dashboards
# connect without a token (--no-auth: the benchmark measures delivery, the same for every phase).
# Messages and publications up to 16 MiB: the snapshot phases send 5 MB snapshots.
coproc RELAY { exec target/release/devrelay --port 0 --no-auth --queue-messages 250000 --queue-bytes 1073741824 \
  --max-inbound-messages-per-sec 10000000 --max-inbound-bytes-per-sec 17179869184 \
  --max-message-bytes 16777216 --max-publish-bytes 16777216 2>target/bench-wasm-relay.log; }
relay_pid=$RELAY_PID
trap 'kill "$relay_pid" 2>/dev/null || true; wait "$relay_pid" 2>/dev/null || true' EXIT
read -r line <&"${RELAY[0]}"
url=${line#devrelay listening on }

node --experimental-websocket --no-warnings client-wasm/bench/run.mjs "$url" "$COUNT" "$ROUNDS" >target/bench-wasm.json
node - <<'JS'
const r = JSON.parse(require("fs").readFileSync("target/bench-wasm.json", "utf8"));
const med = (values) => {
  const xs = [...values].sort((a, b) => a - b);
  const mid = Math.floor(xs.length / 2);
  return xs.length % 2 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
};
const median = (kind, key) => med(r.results.filter((x) => x.kind === kind).map((x) => x[key]));
console.log(`load average ${r.loadAverage.start.join(" ")} at the start, ${r.loadAverage.end.join(" ")} at the end`);
if (r.snapshots.length > 0) {
  console.log("big snapshots (medians): arrival -> listener holding it; busy = socket handler + notification task");
  console.log("kind             bytes  frame chars  busy ms  handler  notify  wall ms  JSON.parse ms  busy/parse  " +
    "long tasks  longest ms");
  for (const kind of [...new Set(r.snapshots.map((x) => x.kind))])
    for (const bytes of [...new Set(r.snapshots.map((x) => x.bytes))]) {
      const xs = r.snapshots.filter((x) => x.kind === kind && x.bytes === bytes);
      const m = (key) => med(xs.map((x) => x[key]));
      console.log(`${kind.padEnd(15)} ${String(bytes).padStart(7)} ${String(m("frameChars")).padStart(12)} ` +
        `${m("busyMs").toFixed(1).padStart(8)} ${m("handlerMs").toFixed(1).padStart(8)} ${m("notifyMs").toFixed(1).padStart(7)} ` +
        `${m("wallMs").toFixed(1).padStart(8)} ${m("parseMs").toFixed(1).padStart(14)} ` +
        `${med(xs.map((x) => x.busyMs / x.parseMs)).toFixed(2).padStart(11)} ` +
        `${String(xs.reduce((n, x) => n + x.longTasks, 0)).padStart(11)} ` +
        `${Math.max(...xs.map((x) => x.longestTaskMs)).toFixed(0).padStart(11)}`);
    }
  console.log("(long tasks: the total over the snapshots, longest: the longest of any; target busy/parse <= 2 at 5 MB, " +
    "no long task over 50 ms at 1 MB)");
  // With BASE_PKG (run.mjs): the package before the change, same page, same run.
  for (const kind of ["snapshot-legacy", "snapshot-v2"])
    for (const bytes of [...new Set(r.snapshots.map((x) => x.bytes))]) {
      const busy = (k) => med(r.snapshots.filter((x) => x.kind === k && x.bytes === bytes).map((x) => x.busyMs));
      if (r.snapshots.some((x) => x.kind === `${kind}-base`))
        console.log(`${kind} ${bytes} B: busy ${busy(`${kind}-base`).toFixed(1)} ms before -> ${busy(kind).toFixed(1)} ms ` +
          `(${(busy(`${kind}-base`) / busy(kind)).toFixed(1)}x less)`);
    }
}
if (r.results.length === 0) process.exit(0);
console.log(`${r.count} stream events, cap ${r.capacity}, ${r.rounds} rounds, source ${r.source}, ${r.chromiumVersion}`);
console.log("impl      round  elapsed ms  events/s  main-thread ms  notifications  kept  frames  source ms");
for (const x of r.results)
  console.log(`${x.kind.padEnd(9)} ${String(x.round).padStart(5)} ${x.elapsedMs.toFixed(0).padStart(11)} ` +
    `${x.eventsPerSec.toFixed(0).padStart(9)} ${x.mainThreadMs.toFixed(0).padStart(15)} ` +
    `${String(x.notifications).padStart(14)} ${String(x.kept).padStart(5)} ${String(x.frames ?? "").padStart(7)} ` +
    `${x.sourceMs.toFixed(0).padStart(10)}`);
const kinds = [...new Set(r.results.map((x) => x.kind))];
const has = (...ks) => ks.every((k) => kinds.includes(k));
console.log("medians:");
for (const kind of kinds)
  console.log(`  ${kind.padEnd(9)} ${median(kind, "eventsPerSec").toFixed(0).padStart(9)} events/s  ` +
    `${median(kind, "mainThreadMs").toFixed(0).padStart(7)} ms main thread  ` +
    `${median(kind, "sourceEventsPerSec").toFixed(0).padStart(9)} events/s into the relay`);
const ratio = (a, b, key) => median(a, key) / median(b, key);
// The ceiling: the source (how fast the relay read the SDK's events, all phases) and the whole pipeline (the
// floors, which keep no state: what the relay and the browser's socket deliver to a page that does nothing).
const source = med(r.results.map((x) => x.sourceEventsPerSec));
console.log(`pipeline ceiling: the relay read the SDK's events at ${source.toFixed(0)} events/s (median of all ` +
  `phases${has("js") ? `; ${(source / median("js", "eventsPerSec")).toFixed(1)}x what js consumed` : ""})` +
  (has("floor-v2", "js") ? `; floor-v2 (batched frames, no state) reached ${median("floor-v2", "eventsPerSec").toFixed(0)} ` +
    `events/s (${ratio("floor-v2", "js", "eventsPerSec").toFixed(2)}x js)` : "") +
  (kinds.includes("floor") ? `; floor (one message per frame, no state) ${median("floor", "eventsPerSec").toFixed(0)} events/s` : ""));
if (has("v2", "js"))
  console.log(`v2 vs the seed-000 hook pattern (js): throughput ${ratio("v2", "js", "eventsPerSec").toFixed(2)}x ` +
    `(target >= 5x), main-thread time ${(1 / ratio("js", "v2", "mainThreadMs")).toFixed(3)} of it (target <= 0.2)`);
if (has("v2", "v2-base"))
  console.log(`v2 vs v2-base (BASE_PKG, the package before a change, same run): throughput ` +
    `${ratio("v2", "v2-base", "eventsPerSec").toFixed(2)}x, main-thread time ${ratio("v2", "v2-base", "mainThreadMs").toFixed(3)}x`);
if (has("wasm", "js"))
  console.log(`seed 000, wasm vs js: throughput ${ratio("wasm", "js", "eventsPerSec").toFixed(2)}x, ` +
    `main-thread time js/wasm ${ratio("js", "wasm", "mainThreadMs").toFixed(2)}x`);
JS
