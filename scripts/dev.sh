#!/usr/bin/env bash
# The one command to run devrelay from a clone: sets up what is missing, builds the dashboard and then the relay
# (which embeds it), and runs one `devrelay` (the relay and its dashboard on one port) plus, unless --no-demo,
# the demo SDK. Prints the one URL to open; Ctrl-C stops everything.
#
#   scripts/dev.sh [--no-demo] [--port 8265] [--sessions 2] [--rate 8]
set -euo pipefail
cd "$(dirname "$0")/.."

demo=1
port=${DEVRELAY_PORT:-8265}
sessions=2
rate=8
usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --no-demo) demo=0 ;;
    --port) port=$2; shift ;;
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
log "building the dashboard (pkg/, www/out)"
scripts/build-dashboard.sh
log "building the relay (release, with the dashboard inside)"
cargo build --release -p devrelay

# The relay's first stdout line names its address (with --port 0, the port it picked); read it from a pipe.
relay_out=$(mktemp -u "${TMPDIR:-/tmp}/devrelay-dev.XXXXXX")
mkfifo "$relay_out"
target/release/devrelay --port "$port" >"$relay_out" &
pids+=($!)
exec 3<"$relay_out"
rm -f "$relay_out"
if ! IFS= read -r -t 30 line <&3 || [[ $line != "devrelay listening on ws://"* ]]; then
  echo "dev.sh: the relay did not start (${line:-no output})" >&2
  exit 1
fi
relay_url=${line#devrelay listening on }
# The second line is the page to open, with the relay's dashboard token in its fragment (#token=…).
page_url="http://${relay_url#ws://}/"
if IFS= read -r -t 5 dashboard_line <&3 && [[ $dashboard_line == "dashboard http"* ]]; then
  page_url=${dashboard_line#dashboard }
fi
# Keep draining its stdout so the relay never blocks on a full pipe.
cat <&3 >/dev/null &
pids+=($!)

if [ "$demo" = 1 ]; then
  target/release/devrelay demo --url "$relay_url" --sessions "$sessions" --rate "$rate" &
  pids+=($!)
fi

printf '\n\033[1;32m  devrelay  %s\033[0m\n' "$page_url"
printf '  (the #token=… part is the dashboard token: the page keeps it for the tab; a fresh one per start)\n'
printf '  SDKs connect to %s' "$relay_url"
if [ "$demo" = 1 ]; then
  printf '; the demo SDK runs %s sessions at %s events/s each (--no-demo to skip)' "$sessions" "$rate"
fi
printf '\n  Ctrl-C stops everything.\n\n'

# Runs until Ctrl-C, or until one of them exits (then the rest are stopped too).
wait -n "${pids[@]}"
