#!/usr/bin/env bash
# Builds the npm package `devrelay-client` (DevtoolsConnection + the React hook) into pkg/ and prints its
# gzipped size. Needs what scripts/setup.sh installs (wasm32 target, wasm-pack, wasm-bindgen-cli, npm binaryen).
set -euo pipefail
cd "$(dirname "$0")/.."
# npm binaryen's wasm-opt first: Debian's is too old and miscompiles (see docs / shared toolchain notes).
export PATH="$PWD/scripts/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"

# Size-tuned release settings for this build only. The workspace [profile.release] is tuned for the relay
# (thin LTO, 4 codegen units); these overrides apply to this cargo invocation alone, and the separate target
# directory keeps them from invalidating the relay's release artifacts. No `strip`: it breaks wasm-opt.
export CARGO_PROFILE_RELEASE_OPT_LEVEL=z
export CARGO_PROFILE_RELEASE_LTO=true
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
export CARGO_PROFILE_RELEASE_PANIC=abort
export CARGO_PROFILE_RELEASE_DEBUG=false
export CARGO_TARGET_DIR="$PWD/target/wasm-pack"

# --mode no-install: use the wasm-bindgen CLI on PATH, never download (see client-wasm/Cargo.toml pin).
wasm-pack build client-wasm --release --target web --out-dir ../pkg --out-name devrelay_client --mode no-install

# The React hook ships in the same package as `devrelay-client/react` (react is an optional peer dependency:
# the main entry works without it).
cp client-wasm/js/react.js client-wasm/js/react.d.ts pkg/
node - <<'JS'
const fs = require("fs");
const path = "pkg/package.json";
const pkg = JSON.parse(fs.readFileSync(path, "utf8"));
const files = new Set(pkg.files ?? []);
for (const f of ["react.js", "react.d.ts"]) files.add(f);
if (fs.existsSync("pkg/snippets")) files.add("snippets/");
pkg.files = [...files];
pkg.exports = {
  ".": { types: "./devrelay_client.d.ts", default: "./devrelay_client.js" },
  "./react": { types: "./react.d.ts", default: "./react.js" },
  "./devrelay_client_bg.wasm": "./devrelay_client_bg.wasm",
  "./package.json": "./package.json",
};
pkg.peerDependencies = { ...(pkg.peerDependencies ?? {}), react: ">=18" };
pkg.peerDependenciesMeta = { ...(pkg.peerDependenciesMeta ?? {}), react: { optional: true } };
fs.writeFileSync(path, JSON.stringify(pkg, null, 2) + "\n");
JS

wasm_gz=$(gzip -9 -c pkg/devrelay_client_bg.wasm | wc -c)
glue_gz=$(cat pkg/devrelay_client.js $(find pkg/snippets -name '*.js' 2>/dev/null) | gzip -9 | wc -c)
printf 'pkg/: devrelay_client_bg.wasm %d B raw, %d B gzip; JS glue %d B gzip; total %d B gzip (budget 86016)\n' \
  "$(wc -c <pkg/devrelay_client_bg.wasm)" "$wasm_gz" "$glue_gz" "$((wasm_gz + glue_gz))"
# The size budget: .wasm + JS glue <= 84 KiB gzipped. Fatal, so test.sh (via test-wasm.sh) catches any change that
# grows the package past it; docs/client-api.md ("Size") says where the bytes go and what to avoid. It was 60 KB
# (issue 5) until the client learnt v2 (issue 9), measured +21.1 KB gzip over main at the time (58,190 B ->
# 79,279 B): a second decoder, channel subscriptions, publish promises and follow mode, while the seed-000 path
# stays for the fallback; see docs/client-api.md for the breakdown. 80 KiB -> 84 KiB (issue 14): main was already
# at 82,098 B (json_reader's eight-bytes-at-a-time string skipping), and big snapshots parsed by the browser
# (big_frame.rs) measured +1,506 B for 5-8x less main-thread time per multi-megabyte snapshot (BENCHMARKS.md).
budget=86016
if [ $((wasm_gz + glue_gz)) -gt $budget ]; then
  echo "build-wasm: FAIL: $((wasm_gz + glue_gz)) B gzip is over the 84 KiB ($budget B) budget" >&2
  exit 1
fi
