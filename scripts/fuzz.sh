#!/usr/bin/env bash
# Fuzzes every decoder the relay and the dashboard client use, and the frame path through a live relay
# (cargo-fuzz + libFuzzer, targets in fuzz/), each target for SECONDS, starting from the committed seeds in
# fuzz/seeds/<target> (plus whatever fuzz/corpus/<target> holds from earlier runs). Stops at the first crash,
# naming the target and the input libFuzzer saved; prints executions and crashes per target.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]     (default: 60 s, every target; FUZZ_SECONDS also sets it)
#   scripts/fuzz.sh 600                  the long run of FUZZING.md
#   scripts/fuzz.sh 30 inbound splice    two targets, 30 s each
# Environment: FUZZ_JOBS=N runs N targets at once (default 1); FUZZ_SUMMARY=FILE appends the results as
# Markdown table rows (target, seconds, executions, crashes, edges covered, corpus inputs/size, peak RSS MB).
# Installs cargo-fuzz (idempotent) if missing. cargo-fuzz needs nightly flags (-Zsanitizer): RUSTC_BOOTSTRAP=1
# lets the stable toolchain take them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
CARGO_FUZZ_VERSION=0.13.2
SECS=${1:-${FUZZ_SECONDS:-60}}
shift || true
JOBS=${FUZZ_JOBS:-1}
export RUSTC_BOOTSTRAP=1
export PATH="$HOME/.cargo/bin:$PATH"
log() { printf '\033[1;36m[fuzz]\033[0m %s\n' "$*" >&2; }

if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" != "$CARGO_FUZZ_VERSION" ]; then
  log "cargo install cargo-fuzz $CARGO_FUZZ_VERSION (about two minutes, once)"
  cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

# The fuzzed crates build with the versions the workspace ships: fuzz/Cargo.lock (not committed) starts as a
# copy of the workspace's lock, and cargo only adds the fuzzing crates to it.
cp Cargo.lock fuzz/Cargo.lock

if [ $# -gt 0 ]; then
  TARGETS=("$@")
else
  mapfile -t TARGETS < <(cargo fuzz list --fuzz-dir fuzz)
fi

# One build for every target: release, debug assertions and overflow checks on, AddressSanitizer.
log "building ${#TARGETS[@]} targets"
started=$(date +%s)
cargo fuzz build --fuzz-dir fuzz --debug-assertions
log "built in $(( $(date +%s) - started )) s"

mkdir -p fuzz/logs
run_target() {
  local t=$1 corpus=fuzz/corpus/$1 seeds=fuzz/seeds/$1 logf=fuzz/logs/$1.log marker=fuzz/logs/$1.started
  mkdir -p "$corpus" "fuzz/artifacts/$t"
  touch "$marker"
  local extra=()
  # The relay target keeps one relay alive across inputs: its allocations outlive each input by design, which
  # LeakSanitizer's per-input check would call leaks.
  [ "$t" = relay_connection ] && extra+=(-detect_leaks=0)
  local status=0
  cargo fuzz run --fuzz-dir fuzz --debug-assertions "$t" "$corpus" "$seeds" -- \
    -max_total_time="$SECS" -timeout=60 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$t/" "${extra[@]}" >"$logf" 2>&1 || status=$?
  local execs peak crashes last cov corp
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logf" | tail -1)
  peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$logf" | tail -1)
  # Only this run's: inputs saved by earlier runs (fixed since, and kept as seeds) do not count.
  crashes=$(find "fuzz/artifacts/$t" -type f -newer "$marker" | wc -l)
  # libFuzzer's last status line: coverage (edges) and the corpus (inputs/size) it ended with.
  last=$(grep -E '^#[0-9]+' "$logf" | tail -1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "${execs:-?}" "$crashes" "${peak:-?}" "$status" "${cov:-?}" "${corp:-?}" \
    >"fuzz/logs/$t.result"
  if [ "$status" -ne 0 ]; then
    log "$t FAILED (exit $status); the last lines of $logf:"
    tail -n 40 "$logf" >&2
  fi
}

pids=()
for t in "${TARGETS[@]}"; do
  log "$t: ${SECS} s"
  run_target "$t" &
  pids+=($!)
  if [ "${#pids[@]}" -ge "$JOBS" ]; then
    wait "${pids[0]}" || true
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || true; done

failed=0
printf '\n%-18s %14s %8s %8s %16s %12s\n' target executions crashes edges corpus "peak RSS MB" >&2
for t in "${TARGETS[@]}"; do
  IFS=$'\t' read -r name execs crashes peak status cov corp <"fuzz/logs/$t.result"
  printf '%-18s %14s %8s %8s %16s %12s\n' "$name" "$execs" "$crashes" "$cov" "$corp" "$peak" >&2
  if [ -n "${FUZZ_SUMMARY:-}" ]; then
    printf '| `%s` | %s s | %s | %s | %s | %s | %s |\n' "$name" "$SECS" "$execs" "$crashes" "$cov" "$corp" "$peak" \
      >>"$FUZZ_SUMMARY"
  fi
  if [ "$status" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    failed=1
    log "$name: crash input(s) in $ROOT/fuzz/artifacts/$name/, the newest (reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz -a $name FILE)"
  fi
done
exit $failed
