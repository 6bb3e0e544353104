#!/usr/bin/env bash
# Packaging tests: the npm launcher + linux-x64 package packed, installed offline into an empty project and run
# with `npx devrelay`; the launcher's signals / exit codes / missing-platform message; `cargo install --path relay`.
# Needs a relay binary with the dashboard inside: builds the dashboard if www/out is missing, then the relay.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/scripts/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"

[ -f www/out/index.html ] || scripts/build-dashboard.sh
cargo build -p devrelay

DEVRELAY_BIN="$PWD/target/debug/devrelay" node --test --test-concurrency=1 tests/npm/
