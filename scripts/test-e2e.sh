#!/usr/bin/env bash
# Dashboard end-to-end tests: the relay binary alone (serving the dashboard it embeds), the real demo SDK and
# headless Chromium (playwright-core driving the system chromium). Builds what it tests first, in the order the
# embedding needs: the dashboard, then the relay. Screenshots: test-artifacts/e2e/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/scripts/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"

scripts/build-dashboard.sh
cargo build -p devrelay

rm -rf test-artifacts/e2e
# --experimental-websocket: Node 20 has no global WebSocket without it (one test drives a hand-written SDK).
DEVRELAY_BIN="$PWD/target/debug/devrelay" node --experimental-websocket --test --test-concurrency=1 tests/e2e/
echo "screenshots: $PWD/test-artifacts/e2e/"
