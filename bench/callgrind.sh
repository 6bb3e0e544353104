#!/usr/bin/env bash
# Instruction counts per delivery under valgrind's callgrind: a CPU-cost figure that does not jitter with the
# machine's load (wall-clock CPU per delivery does, on a shared 2-core box). For each relay, two runs of the
# same scenario at the same reduced rate: a long one and a short one; instructions per delivery =
# (instructions(long) − instructions(short)) ÷ (deliveries(long) − deliveries(short)), so start-up and connection
# setup cancel out. Callgrind counts user-space instructions only: the kernel's share (the loopback TCP send and
# the receiver's wake-up, most of scenario a's CPU) is not in these figures — see BENCHMARKS.md.
#
# Usage: bench/callgrind.sh [SCENARIO]   (default a)
# Environment (all optional):
#   CALLGRIND_RELAYS="devrelay bun"   which relays (bun-loop, node-ws also work)
#   CALLGRIND_RATE=4                  messages per second per SDK (valgrind runs a relay 20–50× slower)
#   CALLGRIND_SECS=10                 the long run's duration (the short one is 1 s)
#   BENCH_OUT=target/bench-results    where callgrind-RELAY-SCENARIO.json and the callgrind.out files go
#   DEVRELAY_BIN=target/release/devrelay  the relay binary (e.g. a copy of main's, for an A/B); set, nothing
#                                     is built (the load generator only if it is missing)
#   DEVRELAY_BENCH_BIN=target/release/devrelay-bench  the load generator (one binary for every side of an A/B)
#   DEVRELAY_ARGS="--inline-write-peers 64"  extra flags for devrelay
#   CALLGRIND_TAG=NAME                a label in the output file names (A/B runs side by side)
#   BUN_BIN=…/node_modules/.bin/bun  the bun binary (default: the baseline's own install)
set -euo pipefail

cd "$(dirname "$0")/.."
SCENARIO=${1:-a}
RELAYS=${CALLGRIND_RELAYS:-"devrelay bun"}
RATE=${CALLGRIND_RATE:-4}
SECS=${CALLGRIND_SECS:-10}
OUT=${BENCH_OUT:-target/bench-results}
TARGET_DIR=${CARGO_TARGET_DIR:-$(pwd)/target}
BENCH=${DEVRELAY_BENCH_BIN:-$TARGET_DIR/release/devrelay-bench}
RELAY_BIN=${DEVRELAY_BIN:-$TARGET_DIR/release/devrelay}
read -r -a RELAY_ARGS <<<"${DEVRELAY_ARGS:-}"
TAG=${CALLGRIND_TAG:+-$CALLGRIND_TAG}
BUN=${BUN_BIN:-bench/baselines/bun-relay/node_modules/.bin/bun}

log() { printf '[callgrind] %s\n' "$*" >&2; }
command -v valgrind >/dev/null || { log "valgrind is required (apt-get install valgrind)"; exit 1; }
if [ -n "${DEVRELAY_BIN:-}" ]; then
  [ -x "$BENCH" ] || cargo build --release --quiet -p devrelay-bench
else
  cargo build --release --quiet -p devrelay -p devrelay-bench
fi
mkdir -p "$OUT/callgrind"

PID=""
stop() {
  if [ -n "$PID" ]; then
    kill -TERM "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=""
  fi
}
trap stop EXIT
TOKEN=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')

# run_once RELAY SECS TAG: the relay under callgrind, one scenario run; prints "instructions deliveries".
run_once() {
  local relay=$1 secs=$2 tag=$3
  local cg="$OUT/callgrind/callgrind.out.$relay$TAG-$SCENARIO-$tag" logf="$OUT/callgrind/$relay$TAG-$SCENARIO-$tag.log"
  local vg=(valgrind --tool=callgrind --callgrind-out-file="$cg" --dump-instr=no --collect-jumps=no)
  case $relay in
    devrelay) "${vg[@]}" "$RELAY_BIN" --host 127.0.0.1 --port 0 --token "$TOKEN" --max-inbound-messages-per-sec 10000000 --max-inbound-bytes-per-sec 17179869184 --max-connections 1048576 --max-connections-per-sec 1000000 "${RELAY_ARGS[@]}" >"$logf" 2>&1 & ;;
    bun) FANOUT=publish "${vg[@]}" "$BUN" bench/baselines/bun-relay/server.ts 0 >"$logf" 2>&1 & ;;
    bun-loop) FANOUT=loop "${vg[@]}" "$BUN" bench/baselines/bun-relay/server.ts 0 >"$logf" 2>&1 & ;;
    node-ws) "${vg[@]}" node bench/baselines/node-relay/server.js 0 >"$logf" 2>&1 & ;;
    *) log "unknown relay $relay"; return 1 ;;
  esac
  PID=$!
  local url="" i
  for i in $(seq 1 600); do
    url=$(grep -a -m1 -o 'ws://127\.0\.0\.1:[0-9]*' "$logf" 2>/dev/null || true)
    [ -n "$url" ] && break
    kill -0 "$PID" 2>/dev/null || break
    sleep 0.1
  done
  # devrelay's dashboards need its token (baselines ignore the parameter).
  [ "$relay" = devrelay ] && [ -n "$url" ] && url="$url/?token=$TOKEN"
  if [ -z "$url" ]; then
    log "$relay did not start under valgrind; log:"
    tail -20 "$logf" >&2
    PID=""
    return 1
  fi
  local json="$OUT/callgrind/$relay$TAG-$SCENARIO-$tag.json"
  "$BENCH" "$SCENARIO" --url "$url" --label "$relay" --rate "$RATE" --duration-secs "$secs" \
    --drain-secs 30 --json "$json" >&2
  stop
  local ir deliveries
  ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$cg")
  deliveries=$(node -e 'const r=require(process.argv[1]); console.log(r.fanout.received)' "$(realpath "$json")")
  echo "$ir $deliveries"
}

for relay in $RELAYS; do
  log "$relay: long run ($SECS s at $RATE msg/s per SDK)"
  read -r ir_long d_long < <(run_once "$relay" "$SECS" long) || { log "$relay: skipped"; continue; }
  log "$relay: short run (1 s)"
  read -r ir_short d_short < <(run_once "$relay" 1 short) || { log "$relay: skipped"; continue; }
  RELAY=$relay SCENARIO=$SCENARIO RATE=$RATE SECS=$SECS IR_LONG=$ir_long D_LONG=$d_long IR_SHORT=$ir_short \
  D_SHORT=$d_short OUTF="$OUT/callgrind-$relay$TAG-$SCENARIO.json" node -e '
    const e = process.env;
    const ir = Number(e.IR_LONG) - Number(e.IR_SHORT), d = Number(e.D_LONG) - Number(e.D_SHORT);
    const r = {
      callgrind: true, scenario: e.SCENARIO, relay: e.RELAY, rate_per_sdk: Number(e.RATE),
      long: { secs: Number(e.SECS), instructions: Number(e.IR_LONG), deliveries: Number(e.D_LONG) },
      short: { secs: 1, instructions: Number(e.IR_SHORT), deliveries: Number(e.D_SHORT) },
      instructions_per_delivery: d > 0 ? ir / d : null,
      command: "bench/callgrind.sh " + e.SCENARIO + " (CALLGRIND_RATE=" + e.RATE + ", CALLGRIND_SECS=" + e.SECS + ")",
    };
    require("fs").writeFileSync(e.OUTF, JSON.stringify(r, null, 2));
    console.log(e.RELAY + ": " + (r.instructions_per_delivery ?? NaN).toFixed(0) + " instructions per delivery");
  '
done
