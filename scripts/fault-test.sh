#!/usr/bin/env bash
# Fault test with real network conditions (issue 12): the relay and a seed-000 SDK in one network namespace,
# a v2 dashboard in another, joined by a veth pair; while the SDK streams numbered events, the test cuts and
# degrades the dashboard's link with the kernel's own tools, and the dashboard must end with every message
# exactly once, in order (checked by channel offset and by the SDK's seq), resuming each reconnect with
# `subscribe {since}`.
#
# Faults, in order, each followed by a few seconds of a healthy link:
#   cut        `ip link set down` on the dashboard's side (routes go, connects fail at once), 3 s
#   blackhole  every packet dropped at the dashboard's veth (tc clsact + a BPF action), 6 s: the TCP connection
#              stays open but silent, so the dashboard must notice by its own heartbeat, and reconnect attempts
#              time out until the link returns
#   blip       the same for 1.5 s: shorter than the dashboard's dead-link timeout, TCP retransmits, no reconnect
#   slow       tc tbf at 96 kbit/s on the relay→dashboard direction, 8 s: the stream needs ~3× that, so data
#              queues (seconds of delay) and the shaper drops what waits longer than 1 s
#   lossy      30 % of packets dropped in both directions (BPF with a random number), 8 s
# netem (tc's delay/loss emulator) is not in this kernel (sch_netem is missing: `tc qdisc add … netem` says
# "Specified qdisc kind is unknown"), so delay comes from real queueing behind a rate limit and loss from a BPF
# classifier's drop verdict; with netem present, FAULT_NETEM=1 adds a `netem delay 400ms 100ms loss 10%` phase.
#
# Addresses: 127.77.0.1 (relay side) and 127.77.0.2 (dashboard side), loopback-range addresses that exist only
# inside the two namespaces this script makes (route_localnet is set there, never in the root namespace).
# Every namespace and process it made is removed on exit, failure included.
#
# Needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN) for `ip netns`. Usage: scripts/fault-test.sh
# Environment: FAULT_RATE=100 (messages/s), FAULT_OUT=target/fault (reports), FAULT_RELEASE=1 (release binaries).
set -euo pipefail
cd "$(dirname "$0")/.."
RATE=${FAULT_RATE:-100}
OUT=${FAULT_OUT:-target/fault}
log() { printf '\033[1;33m[fault]\033[0m %s\n' "$*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "needs root for ip netns / tc (run as root, or set DEVRELAY_SKIP_NETNS=1 in test.sh to skip it knowingly)"
  exit 1
fi
for tool in ip tc; do
  command -v "$tool" >/dev/null || { log "$tool (iproute2) is missing: apt-get install iproute2"; exit 1; }
done

profile=debug
build_flags=()
if [ "${FAULT_RELEASE:-0}" = 1 ]; then profile=release; build_flags=(--release); fi
cargo build --quiet "${build_flags[@]}" -p devrelay -p devrelay-bench
TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
RELAY_BIN=$TARGET_DIR/$profile/devrelay
BENCH_BIN=$TARGET_DIR/$profile/devrelay-bench
mkdir -p "$OUT"
rm -f "$OUT/dashboard.json" "$OUT/trace.json" "$OUT/faults.md"

NS_R=drfault-r-$$
NS_D=drfault-d-$$
VETH_R=drfr$$
VETH_D=drfd$$
PIDS=()
cleanup() {
  local status=$?
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  # Deleting a namespace deletes the veth end inside it, and with it the pair.
  ip netns del "$NS_D" 2>/dev/null || true
  ip netns del "$NS_R" 2>/dev/null || true
  if ip netns list | grep -q -e "$NS_R" -e "$NS_D"; then log "could not delete a namespace"; status=1; fi
  exit $status
}
trap cleanup EXIT INT TERM

ip netns add "$NS_R"
ip netns add "$NS_D"
ip -n "$NS_R" link add "$VETH_R" type veth peer name "$VETH_D" netns "$NS_D"
for ns in "$NS_R" "$NS_D"; do
  ip -n "$ns" link set lo up
  ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.route_localnet=1
done
ip netns exec "$NS_R" sysctl -qw "net.ipv4.conf.$VETH_R.route_localnet=1"
ip netns exec "$NS_D" sysctl -qw "net.ipv4.conf.$VETH_D.route_localnet=1"
ip -n "$NS_R" addr add 127.77.0.1/24 dev "$VETH_R"
ip -n "$NS_D" addr add 127.77.0.2/24 dev "$VETH_D"
ip -n "$NS_R" link set "$VETH_R" up
ip -n "$NS_D" link set "$VETH_D" up

# The relay: pings every 5 s so that connections the network killed are reaped within the test.
# The dashboard's token (fixed here so it can be handed on; by default the relay makes a random one).
TOKEN=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
ip netns exec "$NS_R" "$RELAY_BIN" --host 127.77.0.1 --port 0 --ping-interval-secs 5 --token "$TOKEN" \
  >"$OUT/relay.out" 2>"$OUT/relay.log" &
PIDS+=($!)
for _ in $(seq 1 200); do
  grep -q '^devrelay listening on ' "$OUT/relay.out" 2>/dev/null && break
  sleep 0.05
done
URL=$(sed -n 's/^devrelay listening on //p' "$OUT/relay.out" | head -1)
[ -n "$URL" ] || { log "the relay did not start: $(cat "$OUT/relay.log")"; exit 1; }
log "relay at $URL (namespace $NS_R); dashboard in $NS_D over $VETH_D"

# The schedule (seconds from the SDK's first message). The SDK sends for the whole schedule.
healthy=4
phases=(cut:3 blackhole:6 blip:1.5 slow:8 lossy:8)
[ "${FAULT_NETEM:-0}" = 1 ] && phases+=(netem:8)
total=$healthy
for p in "${phases[@]}"; do total=$(awk -v t="$total" -v d="${p#*:}" -v h="$healthy" 'BEGIN {print t + d + h}'); done
COUNT=$(awk -v t="$total" -v r="$RATE" 'BEGIN {printf "%d", t * r}')
log "SDK: $COUNT events at $RATE/s over ${total} s; faults: ${phases[*]}"

ip netns exec "$NS_D" "$BENCH_BIN" fault-dashboard --url "$URL/?token=$TOKEN" --session fault-1 --expect "$COUNT" \
  --deadline-secs "$(awk -v t="$total" 'BEGIN {print t + 120}')" --json "$OUT/dashboard.json" --trace "$OUT/trace.json" \
  >"$OUT/dashboard.out" 2>"$OUT/dashboard.log" &
DASH=$!
PIDS+=($DASH)
# The dashboard subscribes before the SDK starts (wait for its subscription on /health's channel list).
for _ in $(seq 1 200); do
  ip netns exec "$NS_R" bash -c "exec 3<>/dev/tcp/127.77.0.1/${URL##*:}; printf 'GET /health HTTP/1.1\r\nHost: 127.77.0.1\r\nAuthorization: Bearer $TOKEN\r\nConnection: close\r\n\r\n' >&3; cat <&3" \
    2>/dev/null | grep -q '"sessions/fault-1"' && break
  sleep 0.05
done
ip netns exec "$NS_R" "$BENCH_BIN" fault-sdk --url "$URL" --session fault-1 --rate "$RATE" --count "$COUNT" \
  --linger-secs 180 >"$OUT/sdk.out" 2>"$OUT/sdk.log" &
PIDS+=($!)

BPF_DROP_ALL="1,6 0 0 2,"
# 30 % loss: load a random u32 (ancillary data), drop when it is above 0.7 × 2^32.
BPF_DROP_30="4,32 0 0 4294963256,37 1 0 3006477107,6 0 0 0,6 0 0 2,"
fault_on() {
  case $1 in
    cut) ip -n "$NS_D" link set "$VETH_D" down ;;
    blackhole | blip)
      tc -n "$NS_D" qdisc add dev "$VETH_D" clsact
      tc -n "$NS_D" filter add dev "$VETH_D" egress bpf da bytecode "$BPF_DROP_ALL"
      tc -n "$NS_D" filter add dev "$VETH_D" ingress bpf da bytecode "$BPF_DROP_ALL"
      ;;
    slow) tc -n "$NS_R" qdisc add dev "$VETH_R" root tbf rate 96kbit burst 3000 latency 1s ;;
    lossy)
      tc -n "$NS_D" qdisc add dev "$VETH_D" clsact
      tc -n "$NS_D" filter add dev "$VETH_D" egress bpf da bytecode "$BPF_DROP_30"
      tc -n "$NS_D" filter add dev "$VETH_D" ingress bpf da bytecode "$BPF_DROP_30"
      ;;
    netem) tc -n "$NS_R" qdisc add dev "$VETH_R" root netem delay 400ms 100ms loss 10% ;;
  esac
}
fault_off() {
  case $1 in
    cut) ip -n "$NS_D" link set "$VETH_D" up ;;
    blackhole | blip | lossy) tc -n "$NS_D" qdisc del dev "$VETH_D" clsact ;;
    slow | netem) tc -n "$NS_R" qdisc del dev "$VETH_R" root ;;
  esac
}

t0=$(date +%s.%N)
timeline=()
: >"$OUT/phases.txt"
sleep "$healthy"
for p in "${phases[@]}"; do
  name=${p%%:*}
  secs=${p#*:}
  at=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN {printf "%.1f", a - b}')
  log "t=${at}s $name for ${secs} s"
  start_ms=$(date +%s%3N)
  fault_on "$name"
  sleep "$secs"
  fault_off "$name"
  # The wall clock is the dashboard's too (one kernel): fault-summary places its events and messages by it.
  echo "$name $start_ms $(date +%s%3N)" >>"$OUT/phases.txt"
  timeline+=("$name at ${at} s for ${secs} s")
  sleep "$healthy"
done

status=0
wait "$DASH" || status=$?
cat "$OUT/dashboard.out"
printf '%s\n' "${timeline[@]}" >"$OUT/timeline.txt"
# Per fault: the messages sent from its start to the next fault's, how many arrived, and what the link did.
if [ -f "$OUT/trace.json" ]; then
  "$BENCH_BIN" fault-summary --report "$OUT/dashboard.json" --trace "$OUT/trace.json" --phases "$OUT/phases.txt" \
    | tee "$OUT/faults.md"
fi
if [ "$status" -ne 0 ]; then
  log "FAILED (exit $status): $(cat "$OUT/dashboard.log")"
  exit "$status"
fi
log "every message exactly once, in order: $OUT/dashboard.json, per fault: $OUT/faults.md"
