#!/usr/bin/env bash
# Every test devrelay has, in order: set-up, Rust (native), wasm in headless Chromium, dashboard e2e, packaging.
# This is the README's test command and what CI (.ci/run) calls.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/scripts/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"

section() { printf '\n\033[1;35m=== %s ===\033[0m\n' "$*"; }

section "rustfmt"
cargo fmt --all -- --check

section "clippy: the native workspace, then the wasm client as it ships (wasm32)"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p devrelay-client --target wasm32-unknown-unknown --all-targets -- -D warnings

section "protocol builds for wasm32-unknown-unknown"
cargo check -p devrelay-protocol --target wasm32-unknown-unknown

section "cargo test (workspace)"
cargo test --workspace

section "wasm: DevtoolsConnection in headless Chromium against a real relay, then tsc on pkg/ types"
scripts/test-wasm.sh

section "dashboard e2e: the relay binary serving its embedded dashboard + demo SDK, in headless Chromium"
scripts/test-e2e.sh

section "packaging: npm pack + offline install + npx devrelay; cargo install --path relay"
scripts/test-npm.sh
