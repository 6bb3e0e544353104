#!/usr/bin/env bash
# Browser benchmark (not a test): COUNT (default 100,000) stream_event messages from an SDK (Node, outside the page)
# through a real release-build relay into (a) a plain-JS implementation of the seed-000 dashboard hook's update
# pattern (copy the session's array on every event) and (b) DevtoolsConnection with the 5,000-event cap, in the
# same page of headless Chromium, same run, two rounds each after a warm-up. Prints a table and writes the raw
# JSON to target/bench-wasm.json. Figures go into BENCHMARKS.md ("Dashboard client (wasm) benchmark").
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/scripts/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
COUNT=${1:-100000}

scripts/build-wasm.sh
cargo build --release -p devrelay

# The SDK outruns the dashboards on purpose. A relay queue big enough for the whole burst keeps the relay from
# closing the slower consumer as a slow consumer (4002) mid-phase: we measure consumption, not back-pressure.
coproc RELAY { exec target/release/devrelay --port 0 --queue-messages 250000 --queue-bytes 1073741824 2>target/bench-wasm-relay.log; }
relay_pid=$RELAY_PID
trap 'kill "$relay_pid" 2>/dev/null || true; wait "$relay_pid" 2>/dev/null || true' EXIT
read -r line <&"${RELAY[0]}"
url=${line#devrelay listening on }

node --experimental-websocket --no-warnings client-wasm/bench/run.mjs "$url" "$COUNT" 2 >target/bench-wasm.json
node - <<'JS'
const r = JSON.parse(require("fs").readFileSync("target/bench-wasm.json", "utf8"));
const avg = (kind, key) => {
  const xs = r.results.filter((x) => x.kind === kind).map((x) => x[key]);
  return xs.reduce((a, b) => a + b, 0) / xs.length;
};
console.log(`${r.count} stream events, cap ${r.capacity}, ${r.chromiumVersion}`);
console.log("impl   round  elapsed ms  events/s  main-thread ms  notifications  kept");
for (const x of r.results)
  console.log(`${x.kind.padEnd(6)} ${String(x.round).padStart(5)} ${x.elapsedMs.toFixed(0).padStart(11)} ` +
    `${x.eventsPerSec.toFixed(0).padStart(9)} ${x.mainThreadMs.toFixed(0).padStart(15)} ` +
    `${String(x.notifications).padStart(14)} ${String(x.kept).padStart(5)}`);
const speed = avg("wasm", "eventsPerSec") / avg("js", "eventsPerSec");
const cpu = avg("js", "mainThreadMs") / avg("wasm", "mainThreadMs");
console.log(`ratio (means): throughput wasm/js ${speed.toFixed(2)}x, main-thread time js/wasm ${cpu.toFixed(2)}x`);
JS
