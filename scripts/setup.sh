#!/usr/bin/env bash
# One-time, idempotent set-up for a bare machine of this kind: everything the run and test commands need.
# Safe to run again: every step checks first and does nothing when already satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.130   # must equal the `=` pin in client-wasm/Cargo.toml
log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  log "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  log "installing Debian chromium + chromium-driver"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium chromium-driver >/dev/null
fi

# `ss` (iproute2): a relay test reads the listening socket's backlog back from the kernel with it.
if ! command -v ss >/dev/null; then
  log "installing Debian iproute2"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq iproute2 >/dev/null
fi

if ! command -v wasm-pack >/dev/null; then
  log "cargo install wasm-pack (a few minutes, once)"
  cargo install --locked wasm-pack
fi

if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  log "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes, once)"
  # Not --locked: one locked dependency is newer than the registry serves here (see shared/TOOLCHAIN.md).
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

# Fuzzing (scripts/fuzz.sh, run by scripts/test.sh): cargo-fuzz. libFuzzer itself is built by the libfuzzer-sys crate.
CARGO_FUZZ_VERSION=0.13.2   # must equal scripts/fuzz.sh's
if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" != "$CARGO_FUZZ_VERSION" ]; then
  log "cargo install cargo-fuzz $CARGO_FUZZ_VERSION (about two minutes, once)"
  cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

# The fault test (scripts/fault-test.sh) makes network namespaces and shapes links with iproute2's ip and tc.
if ! command -v ip >/dev/null || ! command -v tc >/dev/null; then
  log "installing iproute2 (ip, tc)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq iproute2 >/dev/null
fi

# Node tooling: wasm-opt from npm binaryen (Debian's is too old and miscompiles), playwright-core for e2e, axe-core
# for the e2e accessibility checks.
if [ ! -x scripts/tools/node_modules/.bin/wasm-opt ] || [ scripts/tools/package-lock.json -nt scripts/tools/node_modules/.package-lock.json ]; then
  log "npm ci in scripts/tools"
  (cd scripts/tools && npm ci --no-audit --no-fund --loglevel=error)
fi

# The seed-000 Node relay (bench/baselines/node-relay): the wasm tests check the client's fallback against it.
if [ ! -f bench/baselines/node-relay/node_modules/.package-lock.json ] || [ bench/baselines/node-relay/package-lock.json -nt bench/baselines/node-relay/node_modules/.package-lock.json ]; then
  log "npm ci in bench/baselines/node-relay"
  (cd bench/baselines/node-relay && npm ci --no-audit --no-fund --loglevel=error)
fi

# --- www (issue 3): the dashboard's npm dependencies -------------------------------------------------------------
# `npm ci`: installs exactly what www/package-lock.json says and never rewrites it, so every machine gets the same
# packages and a test run leaves the tree clean. The lock is complete (it lists the optional platform packages of
# every OS, e.g. next's macOS/Windows SWC binaries; npm installs only this machine's). After changing
# www/package.json, regenerate it with `npm install` in www and commit it.
# `devrelay-client` is a `file:../pkg` link, so this works before scripts/build-wasm.sh has made pkg/.
if [ ! -f www/node_modules/.package-lock.json ] || [ www/package-lock.json -nt www/node_modules/.package-lock.json ]; then
  log "npm ci in www"
  (cd www && npm ci --no-audit --no-fund --loglevel=error)
fi
# --- end www ---------------------------------------------------------------------------------------------------

log "set-up complete"
