#!/usr/bin/env bash
# Dashboard end-to-end tests: a real relay, the real demo SDK, the exported dashboard and headless Chromium
# (playwright-core driving the system chromium). Builds what it tests first. Screenshots: test-artifacts/e2e/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/scripts/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export NEXT_TELEMETRY_DISABLED=1

cargo build -p devrelay
scripts/build-wasm.sh
(cd www && npm run --silent build)

rm -rf test-artifacts/e2e
# --experimental-websocket: Node 20 has no global WebSocket without it (one test drives a hand-written SDK).
DEVRELAY_BIN="$PWD/target/debug/devrelay" node --experimental-websocket --test --test-concurrency=1 tests/e2e/
echo "screenshots: $PWD/test-artifacts/e2e/"
