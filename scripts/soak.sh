#!/usr/bin/env bash
# The soak of issue 11: a release devrelay under scenario a's load (10 SDKs × 50 seed-000 dashboards × 100 msg/s,
# 512 B events) for 15 minutes (the issue asks 10; the warm-up takes 7, see below), plus churn (one dashboard — seed-000 and v2 in turn — and one SDK connecting
# every second, each staying 3 s) and one dashboard that never reads (reopened whenever the relay closes it as a
# slow consumer). The relay's RSS and open file descriptors are sampled every 10 s; the run passes when, after
# the warm-up, RSS stays within 5 % (every sample), open fds do not drift by more than 5 % (the medians of the
# judged window's halves: a churning connection more or less at one sample is a few % of ~80 fds), the steady
# dashboards received every message exactly once, and once every client has left the relay let go of everything:
# /stats' connections, registry, subscription index, presence and queues back to 0 within 60 s, its open fds
# back to what they were before the first client, and its history, cached snapshots and channels back to 0 once
# history aged out (the default 300 s; the script waits up to 330 s). That end state is what separates a leak
# from an allocator keeping freed memory. The relay runs with its defaults except a fixed --token and
# --metrics-interval-secs 3600 (its own `metrics` channel keeps history like any channel; published hourly, it
# holds none in the run, so "history aged out" means 0). The warm-up (420 s) outlasts the default
# --history-max-age-secs (300): until then the churning sessions' history only grows (by design: it is what late
# dashboards replay), and the allocator settles some 100 s after expiry starts (measured in the first run).
# Writes the result into BENCHMARKS.md's "Soak" section (between the soak markers; other sections are kept).
#
# Usage: scripts/soak.sh
# Environment: SOAK_SECS=900, SOAK_WARMUP_SECS=420, SOAK_SAMPLE_SECS=10, SOAK_HISTORY_WAIT_SECS=330 (0: do not
#   wait for history to age out), SOAK_OUT=target/soak,
#   SOAK_REPORT=BENCHMARKS.md (empty: do not write it). Loopback only. Not part of scripts/test.sh (too long);
#   its mechanics are tested by `cargo test -p devrelay-bench --test soak`.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SOAK_SECS:-900}
WARMUP=${SOAK_WARMUP_SECS:-420}
SAMPLE=${SOAK_SAMPLE_SECS:-10}
HISTORY_WAIT=${SOAK_HISTORY_WAIT_SECS:-330}
OUT=${SOAK_OUT:-target/soak}
REPORT=${SOAK_REPORT-BENCHMARKS.md}
log() { printf '[soak] %s\n' "$*" >&2; }

ulimit -n 20000 2>/dev/null || true
log "building release binaries"
cargo build --release --quiet -p devrelay -p devrelay-bench
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
mkdir -p "$OUT"

# The dashboards' token (the relay's default is a random one per launch; a fixed one is easier to pass on).
TOKEN=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
"$TARGET_DIR/release/devrelay" --host 127.0.0.1 --port 0 --token "$TOKEN" --metrics-interval-secs 3600 \
  >"$OUT/relay.out" 2>"$OUT/relay.log" &
RELAY_PID=$!
trap 'kill "$RELAY_PID" 2>/dev/null || true; wait "$RELAY_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 200); do
  grep -q '^devrelay listening on ' "$OUT/relay.out" 2>/dev/null && break
  kill -0 "$RELAY_PID" 2>/dev/null || { log "the relay exited: $(cat "$OUT/relay.log")"; exit 1; }
  sleep 0.05
done
URL=$(sed -n 's/^devrelay listening on //p' "$OUT/relay.out" | head -1)
[ -n "$URL" ] || { log "the relay did not print its address"; exit 1; }
URL="$URL/?token=$TOKEN"

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%MZ)
log "relay pid $RELAY_PID at ${URL%%\?*}; ${SECS} s (warm-up ${WARMUP} s), load $load_before"
status=0
"$TARGET_DIR/release/devrelay-bench" soak --url "$URL" --relay-pid "$RELAY_PID" \
  --duration-secs "$SECS" --warmup-secs "$WARMUP" --sample-every-secs "$SAMPLE" --history-timeout-secs "$HISTORY_WAIT" \
  --json "$OUT/soak.json" --markdown "$OUT/soak.md" || status=$?
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average before: $load_before, after: $load_after"

if [ -n "$REPORT" ] && [ -f "$OUT/soak.md" ]; then
  section=$(mktemp)
  {
    echo "<!-- soak:begin (written by scripts/soak.sh: edits inside are overwritten) -->"
    echo "## Soak (issue 11)"
    echo
    echo "Run $started on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), shared with other work:"
    echo "load average (1, 5, 15 min) $load_before at the start, $load_after at the end. Release relay"
    echo "$(git rev-parse --short HEAD 2>/dev/null || echo '?'), default configuration but a fixed \`--token\` and \`--metrics-interval-secs 3600\`. Command: \`scripts/soak.sh\` (\`SOAK_SECS=$SECS SOAK_WARMUP_SECS=$WARMUP SOAK_SAMPLE_SECS=$SAMPLE SOAK_HISTORY_WAIT_SECS=$HISTORY_WAIT\`)."
    echo
    echo "Load: 10 seed-000 SDKs × 100 stream_events/s of 512 B to 50 seed-000 dashboards following every session"
    echo "(scenario a, 50,000 deliveries/s); churn: every second one dashboard (seed-000 and v2 \`sessions/*\` in turn)"
    echo "and one SDK (16 session ids in rotation, a snapshot and 10 events/s) connect, stay 3 s and leave; one"
    echo "dashboard with a 4 KiB receive buffer never reads and is reopened whenever the relay closes it as a slow consumer."
    echo "Samples: the relay's VmRSS and the entries of /proc/PID/fd, plus /stats' connections, history and queued bytes. Judged after"
    echo "the warm-up: RSS spread (max − min) ≤ 5 %, open-fd drift (medians of the window's halves) ≤ 5 %, zero loss; and after every"
    echo "client left: /stats' connections, registry, subscriptions, presence and queues 0, open fds back to before the first client,"
    echo "and history, cached snapshots and channels 0 once history aged out (\"released\")."
    echo
    cat "$OUT/soak.md"
    echo "<!-- soak:end -->"
  } >"$section"
  awk -v section="$section" '
    BEGIN { while ((getline line < section) > 0) body = body line "\n" }
    /^<!-- soak:begin/ { printf "%s", body; skip = 1; done = 1; next }
    /^<!-- soak:end/ { skip = 0; next }
    !skip { print }
    END { if (!done) printf "\n%s", body }
  ' "$REPORT" >"$REPORT.tmp" && mv "$REPORT.tmp" "$REPORT"
  rm -f "$section"
  log "wrote the Soak section of $REPORT"
fi
exit $status
