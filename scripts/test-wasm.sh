#!/usr/bin/env bash
# DevtoolsConnection in headless Chromium (wasm-pack test) against a real relay. The relay runs under
# client-wasm/tests/relay-control.mjs, which lets the tests kill it and restart it on the same port; both URLs
# reach the tests at compile time (option_env! RELAY_URL / RELAY_CONTROL_URL / RELAY_TOKEN, its dashboard token;
# RELAY_PROXY_URL, a TCP proxy in front of the relay that the control endpoint can cut, for the recovery tests).
# The relay publishes metrics every second (the metrics channel test waits for them). Beside it runs the seed-000
# Node relay of bench/baselines (SEED_RELAY_URL), for the fallback test. Then the TypeScript check of the package's
# .d.ts files (tsc --noEmit over client-wasm/tests/api-check.ts, which uses the whole API).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/scripts/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"

cargo build -p devrelay

coproc CTL { SEED_RELAY=bench/baselines/node-relay/server.js exec node client-wasm/tests/relay-control.mjs \
  target/debug/devrelay --metrics-interval-secs 1; }
ctl_pid=$CTL_PID
trap 'kill "$ctl_pid" 2>/dev/null || true; wait "$ctl_pid" 2>/dev/null || true' EXIT
read -r relay_line <&"${CTL[0]}" || true
read -r control_line <&"${CTL[0]}" || true
read -r token_line <&"${CTL[0]}" || true
read -r proxy_line <&"${CTL[0]}" || true
read -r seed_line <&"${CTL[0]}" || true
if [[ $relay_line != RELAY_URL=* || $control_line != RELAY_CONTROL_URL=* || $token_line != RELAY_TOKEN=* ||
  $proxy_line != RELAY_PROXY_URL=* || $seed_line != SEED_RELAY_URL=* ]]; then
  echo "test-wasm: the relays did not start (see above)" >&2
  exit 1
fi
export "$relay_line" "$control_line" "$token_line" "$proxy_line" "$seed_line"
echo "relay: $RELAY_URL, control: $RELAY_CONTROL_URL, seed-000 relay: $SEED_RELAY_URL"

WASM_BINDGEN_TEST_TIMEOUT=300 wasm-pack test --headless --chrome --mode no-install client-wasm

# The shipped types: build pkg/ (wasm-pack --target web) and type-check a file that uses every export.
scripts/build-wasm.sh
tsc -p client-wasm/tests/tsconfig.json
echo "tsc --noEmit: ok"
