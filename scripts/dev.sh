#!/usr/bin/env bash
# The one command to run devrelay: sets up what is missing, builds the wasm package and the dashboard, then runs
# the relay, the dashboard and (unless --no-demo) the demo SDK. Prints both URLs; Ctrl-C stops everything.
#
#   scripts/dev.sh [--no-demo] [--port 8265] [--dashboard-port 8266] [--sessions 2] [--rate 8]
set -euo pipefail
cd "$(dirname "$0")/.."

demo=1
relay_port=${DEVRELAY_PORT:-8265}
dashboard_port=${DASHBOARD_PORT:-8266}
sessions=2
rate=8
usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --no-demo) demo=0 ;;
    --port) relay_port=$2; shift ;;
    --dashboard-port) dashboard_port=$2; shift ;;
    --sessions) sessions=$2; shift ;;
    --rate) rate=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "dev.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

log() { printf '\033[1;34m[dev]\033[0m %s\n' "$*"; }

pids=()
stop_all() {
  trap - INT TERM EXIT
  if [ ${#pids[@]} -gt 0 ]; then
    log "stopping"
    # Newest first: the demo leaves cleanly before the relay goes.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
      kill "${pids[i]}" 2>/dev/null || true
      wait "${pids[i]}" 2>/dev/null || true
    done
  fi
}

trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

scripts/setup.sh
export PATH="$PWD/scripts/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export NEXT_TELEMETRY_DISABLED=1

log "building the wasm package (pkg/)"
scripts/build-wasm.sh
log "building the dashboard (www/out)"
(cd www && npm run --silent build)
log "building the relay (release)"
cargo build --release -p devrelay

# Waits until something accepts TCP connections on 127.0.0.1:$1 (or gives up after ~15 s).
wait_for_port() {
  for _ in $(seq 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "dev.sh: nothing is listening on port $1" >&2
  return 1
}

target/release/devrelay --port "$relay_port" &
pids+=($!)
wait_for_port "$relay_port"

node www/serve.mjs --port "$dashboard_port" &
pids+=($!)
wait_for_port "$dashboard_port"

relay_url="ws://127.0.0.1:$relay_port"
dashboard_url="http://127.0.0.1:$dashboard_port/"
# The dashboard assumes the relay's default address; say otherwise in its URL.
[ "$relay_port" = 8265 ] || dashboard_url="${dashboard_url}?relay=$relay_url"

if [ "$demo" = 1 ]; then
  target/release/devrelay demo --url "$relay_url" --sessions "$sessions" --rate "$rate" &
  pids+=($!)
fi

printf '\n\033[1;32m  relay      %s\n  dashboard  %s\033[0m\n' "$relay_url" "$dashboard_url"
if [ "$demo" = 1 ]; then
  printf '  demo SDK   %s sessions at %s events/s each (--no-demo to skip)\n' "$sessions" "$rate"
fi
printf '  Ctrl-C stops everything.\n\n'

# Runs until Ctrl-C, or until one of them exits (then the rest are stopped too).
wait -n "${pids[@]}"
