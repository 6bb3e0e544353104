#!/usr/bin/env node
// Writes brotli (`x.br`) and gzip (`x.gz`) twins next to every compressible file of the static export, at the
// highest settings, once per build: the relay embeds out/ and sends the twin a browser accepts (relay/src/assets.rs)
// instead of compressing on every request. Part of `npm run build`.
//   node precompress.mjs [dir]        (default: out/ next to this file)

import { readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const root = process.argv[2] ?? join(import.meta.dirname, "out");
// Text and wasm compress well; images and fonts are compressed already.
const COMPRESSIBLE = /\.(html?|m?js|css|json|map|txt|svg|wasm|xml|webmanifest|ico)$/i;
// Below this a twin saves less than its own headers cost.
const MIN_BYTES = 512;

async function* files(dir) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else if (entry.isFile()) yield path;
  }
}

try {
  await stat(join(root, "index.html"));
} catch {
  console.error(`precompress: ${root} has no index.html (run next build first)`);
  process.exit(1);
}

let count = 0;
const total = { raw: 0, br: 0, gz: 0 };
for await (const path of files(root)) {
  // Twins from an earlier run are rebuilt below (or dropped, if their file is gone or no longer worth it).
  if (/\.(br|gz)$/.test(path) && COMPRESSIBLE.test(path.slice(0, -3))) {
    await rm(path);
    continue;
  }
  if (!COMPRESSIBLE.test(path)) continue;
  const raw = await readFile(path);
  if (raw.length < MIN_BYTES) continue;
  const br = brotliCompressSync(raw, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY,
      [constants.BROTLI_PARAM_SIZE_HINT]: raw.length,
    },
  });
  const gz = gzipSync(raw, { level: 9 });
  // Keep a twin only when it is meaningfully smaller (at least 10 %).
  let kept = false;
  for (const [ext, data] of [
    ["br", br],
    ["gz", gz],
  ]) {
    if (data.length <= raw.length * 0.9) {
      await writeFile(`${path}.${ext}`, data);
      total[ext] += data.length;
      kept = true;
    }
  }
  if (kept) {
    count++;
    total.raw += raw.length;
  }
}
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
console.log(
  `precompress: ${count} files in ${relative(process.cwd(), root) || "."}: ${kb(total.raw)} → ${kb(total.br)} brotli, ${kb(total.gz)} gzip`,
);
