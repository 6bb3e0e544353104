#!/usr/bin/env node
// Serves the exported dashboard (out/) over HTTP: a tiny static server, because the dashboard is a static site
// that talks to the relay straight from the browser.
//   node serve.mjs [--port 8266] [--host 127.0.0.1] [--dir out]
// Prints `dashboard listening on http://HOST:PORT/` once it accepts connections (port 0: an ephemeral port).

import { createServer } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { extname, join, normalize, resolve, sep } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: process.env.PORT ?? "8266" },
    host: { type: "string", default: "127.0.0.1" },
    dir: { type: "string", default: join(import.meta.dirname, "out") },
  },
});
const root = resolve(values.dir);

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
  ".woff2": "font/woff2",
};

async function file(path) {
  try {
    const s = await stat(path);
    if (s.isDirectory()) return file(join(path, "index.html"));
    return { path, body: await readFile(path) };
  } catch {
    return null;
  }
}

const server = createServer(async (req, res) => {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { allow: "GET, HEAD" }).end();
    return;
  }
  let pathname;
  try {
    pathname = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
  } catch {
    res.writeHead(400).end("bad request");
    return;
  }
  const target = normalize(join(root, pathname));
  if (target !== root && !target.startsWith(root + sep)) {
    res.writeHead(403).end("forbidden");
    return;
  }
  // Exported routes are `name.html`; unknown paths get the 404 page.
  const found = (await file(target)) ?? (await file(`${target}.html`));
  const notFound = found ? null : await file(join(root, "404.html"));
  const hit = found ?? notFound;
  if (!hit) {
    res.writeHead(404, { "content-type": TYPES[".txt"] }).end("not found");
    return;
  }
  res.writeHead(found ? 200 : 404, {
    "content-type": TYPES[extname(hit.path)] ?? "application/octet-stream",
    "content-length": hit.body.length,
    // Hashed assets never change; pages must be re-read after a rebuild.
    "cache-control": pathname.startsWith("/_next/static/") ? "public, max-age=31536000, immutable" : "no-cache",
  });
  res.end(req.method === "HEAD" ? undefined : hit.body);
});

server.listen(Number(values.port), values.host, () => {
  const { port } = server.address();
  const host = values.host.includes(":") ? `[${values.host}]` : values.host;
  console.log(`dashboard listening on http://${host}:${port}/`);
});

for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => server.close(() => process.exit(0)));
