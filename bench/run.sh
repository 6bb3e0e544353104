#!/usr/bin/env bash
# Runs every benchmark scenario (a–f of issue 4; a2, g, g10, h of issues 9 and 12) against devrelay and each
# baseline relay, back to back in one session, each run against a freshly started relay process, BENCH_RUNS
# times in rounds (every scenario × relay once per round, so a noisy minute hits all relays alike); then writes
# the generated section of BENCHMARKS.md from the medians (other sections of that file are kept).
# The v2 scenarios (a2, g, g10, h) run against devrelay only: the baselines speak seed 000. `null` is the load
# generator's null relay (`devrelay-bench null-relay`: no parsing, no queues, one write per dashboard per read),
# the floor of what any relay can show on this machine with this generator; it runs a, b, c and e only (a thread
# per connection: not d; a blocking write per dashboard: not f).
#
# Usage: bench/run.sh
# Environment (all optional):
#   BENCH_SCENARIOS="a a2 b c d e f g g10 h"   which scenarios
#   BENCH_RELAYS="devrelay bun bun-loop node-ws null"   which relays (also: node-ws-once)
#   BENCH_RUNS=3                      runs per scenario × relay (the report shows medians)
#   BENCH_DURATION_SECS=N             measured seconds per fan-out scenario (default: each scenario's own)
#   BENCH_WORKERS=1                   load generator worker threads
#   BENCH_CONNECTIONS=10000           connections of scenario d
#   BENCH_CALLGRIND=1                 also count instructions per delivery in scenario a under callgrind
#                                     (bench/callgrind.sh; devrelay and bun; 0 = skip)
#   BENCH_OUT=target/bench-results    where JSON results and relay logs go
#   BENCH_REPORT=BENCHMARKS.md        the file to update
# Takes about 20 minutes with the defaults. Loopback only.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
SCENARIOS=${BENCH_SCENARIOS:-"a a2 b c d e f g g10 h"}
RELAYS=${BENCH_RELAYS:-"devrelay bun bun-loop node-ws null"}
RUNS=${BENCH_RUNS:-3}
V2_ONLY=" a2 g g10 h "
NULL_SCENARIOS=" a b c e "
WORKERS=${BENCH_WORKERS:-1}
CONNECTIONS=${BENCH_CONNECTIONS:-10000}
OUT=${BENCH_OUT:-target/bench-results}
REPORT=${BENCH_REPORT:-BENCHMARKS.md}
NODE_DIR=bench/baselines/node-relay
BUN_DIR=bench/baselines/bun-relay

log() { printf '[bench] %s\n' "$*" >&2; }

# Scenario d holds 10,000 sockets in each process.
if ! ulimit -n 20000 2>/dev/null; then
  log "could not raise the open-files limit to 20000 (now $(ulimit -n)); scenario d may fail to connect everything"
fi

log "building release binaries"
cargo build --release --quiet -p devrelay -p devrelay-bench
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BENCH=$TARGET_DIR/release/devrelay-bench
RELAY_BIN=$TARGET_DIR/release/devrelay

# Node runs the baselines and writes the run's metadata, so it is always needed.
command -v node >/dev/null || { log "node (and npm) are required"; exit 1; }
if [ ! -d "$NODE_DIR/node_modules/ws" ]; then
  log "installing the Node baseline's dependencies (npm ci)"
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --silent)
fi
case " $RELAYS " in
  *" bun "* | *" bun-loop "*)
    if [ ! -x "$BUN_DIR/node_modules/.bin/bun" ]; then
      log "installing Bun for the Bun baseline (npm ci: the bun package ships the binary)"
      (cd "$BUN_DIR" && npm ci --no-audit --no-fund --silent)
    fi
    ;;
esac

rm -rf "$OUT"
mkdir -p "$OUT/logs"

RELAY_PID=""
RELAY_URL=""
# devrelay wants its dashboard token from dashboards (the load generator's ones pass it as ?token=, which the
# baselines ignore); one per run, fixed so that it can be put on the URL.
BENCH_TOKEN=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
LIMITS_LIFTED="--max-inbound-messages-per-sec 10000000 --max-inbound-bytes-per-sec 17179869184 --max-connections 1048576 --max-connections-per-sec 1000000"

# start_relay LABEL RUN: starts a fresh relay on an ephemeral port; sets RELAY_PID and RELAY_URL.
start_relay() {
  local label=$1 logf="$OUT/logs/$1-$2.log"
  case $label in
    devrelay)
      # The load scenarios go past the per-connection rate and connection limits on purpose: lifted.
      "$RELAY_BIN" --host 127.0.0.1 --port 0 --token "$BENCH_TOKEN" $LIMITS_LIFTED >"$logf" 2>&1 &
      ;;
    node-ws)
      node "$NODE_DIR/server.js" 0 >"$logf" 2>&1 &
      ;;
    node-ws-once)
      STRINGIFY_ONCE=1 node "$NODE_DIR/server.js" 0 >"$logf" 2>&1 &
      ;;
    bun)
      FANOUT=publish "$BUN_DIR/node_modules/.bin/bun" "$BUN_DIR/server.ts" 0 >"$logf" 2>&1 &
      ;;
    bun-loop)
      FANOUT=loop "$BUN_DIR/node_modules/.bin/bun" "$BUN_DIR/server.ts" 0 >"$logf" 2>&1 &
      ;;
    null)
      "$BENCH" null-relay >"$logf" 2>&1 &
      ;;
    *)
      log "unknown relay $label"
      return 1
      ;;
  esac
  RELAY_PID=$!
  RELAY_URL=""
  # Wait (bounded: 20 s) for the "listening on ws://..." line.
  local i
  for i in $(seq 1 200); do
    RELAY_URL=$(grep -a -m1 -o 'ws://127\.0\.0\.1:[0-9]*' "$logf" 2>/dev/null || true)
    if [ -n "$RELAY_URL" ]; then
      [ "$label" = devrelay ] && RELAY_URL="$RELAY_URL/?token=$BENCH_TOKEN"
      return 0
    fi
    kill -0 "$RELAY_PID" 2>/dev/null || break
    sleep 0.1
  done
  log "relay $label did not start; log:"
  cat "$logf" >&2
  return 1
}

stop_relay() {
  if [ -n "$RELAY_PID" ]; then
    kill "$RELAY_PID" 2>/dev/null || true
    wait "$RELAY_PID" 2>/dev/null || true
    RELAY_PID=""
  fi
}
trap stop_relay EXIT

STARTED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
COMMANDS=()

for run in $(seq 1 "$RUNS"); do
  for s in $SCENARIOS; do
    for relay in $RELAYS; do
      if [ "$relay" != devrelay ] && [[ $V2_ONLY == *" $s "* ]]; then
        continue
      fi
      if [ "$relay" = null ] && [[ $NULL_SCENARIOS != *" $s "* ]]; then
        continue
      fi
      start_relay "$relay" "$s-run$run"
      args=("$s" --url "$RELAY_URL" --relay-pid "$RELAY_PID" --label "$relay" --workers "$WORKERS"
            --json "$OUT/$relay-$s-run$run.json")
      if [ "$s" = d ]; then
        args+=(--connections "$CONNECTIONS")
      elif [ -n "${BENCH_DURATION_SECS:-}" ] && [ "$s" != h ]; then
        args+=(--duration-secs "$BENCH_DURATION_SECS")
      fi
      log "run $run/$RUNS: scenario $s against $relay ($RELAY_URL, pid $RELAY_PID; load $(cut -d' ' -f1 /proc/loadavg))"
      if ! "$BENCH" "${args[@]}" | tee -a "$OUT/summary.txt"; then
        log "scenario $s against $relay failed (see $OUT/logs/$relay-$s-run$run.log)"
      fi
      # Record the command once per scenario, with placeholders for what changes per relay and run.
      if [ "$run" = 1 ] && [ "$relay" = devrelay ]; then
        cmd="target/release/devrelay-bench ${args[*]}"
        cmd=${cmd//$RELAY_URL/ws://127.0.0.1:PORT}
        cmd=${cmd//$BENCH_TOKEN/TOKEN}
        cmd=${cmd//--relay-pid $RELAY_PID/--relay-pid PID}
        cmd=${cmd//--label $relay/--label RELAY}
        cmd=${cmd//$OUT\/$relay-$s-run$run.json/$OUT\/RELAY-$s-runN.json}
        COMMANDS+=("$cmd")
      fi
      stop_relay
    done
  done
done

if [ "${BENCH_CALLGRIND:-1}" = 1 ]; then
  if command -v valgrind >/dev/null; then
    log "instruction counts under callgrind (scenario a)"
    BENCH_OUT=$OUT bench/callgrind.sh a || log "callgrind run failed"
  else
    log "valgrind not installed: no instruction counts (apt-get install valgrind)"
  fi
fi

FINISHED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if ! git diff --quiet HEAD -- relay protocol bench 2>/dev/null; then
  COMMIT="$COMMIT (with uncommitted changes)"
fi

# meta.json for the report, written by node (already required for the baselines) to get the quoting right.
STARTED=$STARTED FINISHED=$FINISHED LOAD_START=$LOAD_START LOAD_END=$LOAD_END COMMIT=$COMMIT \
WORKERS=$WORKERS RELAYS=$RELAYS OUT=$OUT RUNS=$RUNS \
node -e '
  const commands = process.argv.slice(1);
  const bunVersion = () => {
    try { return require("./bench/baselines/bun-relay/node_modules/bun/package.json").version; }
    catch { return "not installed"; }
  };
  const e = process.env;
  const relays = {};
  const all = {
    "devrelay": "target/release/devrelay --host 127.0.0.1 --port 0 --token TOKEN (release build; rate and connection limits lifted with --max-inbound-messages-per-sec 10000000 --max-inbound-bytes-per-sec 17179869184 --max-connections 1048576 --max-connections-per-sec 1000000; dashboards connect with ?token=TOKEN)",
    "node-ws": "node bench/baselines/node-relay/server.js 0 (Node " + process.version + ", ws " +
      require("./bench/baselines/node-relay/node_modules/ws/package.json").version +
      "; seed-000 style: JSON.parse per frame, JSON.stringify + send per dashboard)",
    "node-ws-once": "STRINGIFY_ONCE=1 node bench/baselines/node-relay/server.js 0 (same, one JSON.stringify per broadcast)",
    "bun": "FANOUT=publish bun bench/baselines/bun-relay/server.ts 0 (Bun " + bunVersion() +
      ", built-in WebSocket server, written the way Bun users write it: dashboards ws.subscribe a topic, " +
      "a broadcast is one server.publish — uWebSockets native pub/sub; seed-000 logic otherwise)",
    "bun-loop": "FANOUT=loop bun bench/baselines/bun-relay/server.ts 0 (the same server, but a JavaScript " +
      "loop with one ws.send per dashboard, as the seed-000 Node server does; one JSON.stringify per broadcast)",
    "null": "devrelay-bench null-relay (the floor, not a relay: seed-000 handshakes, then each read of an SDK " +
      "forwarded to every dashboard with one blocking write each — no JSON parsed, no queues, no pings; what " +
      "this machine and this load generator allow any relay to show; scenarios a, b, c and e only)",
  };
  for (const r of e.RELAYS.split(/\s+/).filter(Boolean)) relays[r] = all[r] ?? r;
  const meta = {
    started: e.STARTED, finished: e.FINISHED, commit: e.COMMIT,
    loadavg_start: e.LOAD_START, loadavg_end: e.LOAD_END,
    commands: ["bench/run.sh", ...commands],
    relays,
    notes: [
      "Each scenario × relay ran " + e.RUNS + " times, in rounds; tables show the median of the runs for each " +
      "column (lost: the worst run), ratios are of medians.",
      "2 vCPUs shared by the relay under test and the load generator (" + e.WORKERS + " worker thread); " +
      "other work on the machine during the run adds noise (see the load averages).",
    ],
  };
  require("fs").writeFileSync(process.env.OUT + "/meta.json", JSON.stringify(meta, null, 2));
' "${COMMANDS[@]}"

"$BENCH" report --results "$OUT" --out "$REPORT"
log "wrote $REPORT (results in $OUT)"
