#!/usr/bin/env bash
# Builds the dashboard the relay embeds: the wasm client package (pkg/), then the static Next.js export in
# www/out with its brotli/gzip twins. A relay built afterwards (`cargo build --release`, `cargo install --path
# relay`) has the dashboard inside; one built before serves a page saying how to get it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/scripts/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export NEXT_TELEMETRY_DISABLED=1

scripts/build-wasm.sh
(cd www && npm run --silent build)
