// Process and browser plumbing for the dashboard e2e tests: a real relay (the binary alone, serving the dashboard
// it embeds), the real demo SDK, and headless Chromium (playwright-core, the system chromium).
// Everything waits on output lines, sockets and page conditions, never on fixed sleeps.

import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const ARTIFACTS = join(ROOT, "test-artifacts", "e2e");
export const RELAY_BIN = process.env.DEVRELAY_BIN ?? join(ROOT, "target", "debug", "devrelay");
/** Host name that Chromium resolves to 127.0.0.1: a page served from it has a foreign Origin. */
export const FOREIGN_HOST = "devrelay-evil.test";
/** Upper bound for anything that should happen; a hang fails instead of blocking CI. */
export const PATIENCE_MS = 30_000;

// playwright-core is installed by scripts/setup.sh in scripts/tools (with the other build/test tooling).
const requireTools = createRequire(join(ROOT, "scripts", "tools", "package.json"));
const { chromium } = requireTools("playwright-core");

export async function freePort() {
  const srv = createServer();
  await new Promise((ok, fail) => srv.listen(0, "127.0.0.1", ok).once("error", fail));
  const { port } = srv.address();
  await new Promise((ok) => srv.close(ok));
  return port;
}

/** A child process whose output is kept (for failure messages) and whose stdout lines can be awaited. */
export class Proc {
  constructor(name, cmd, args, opts = {}) {
    this.name = name;
    this.log = [];
    this.waiters = [];
    this.child = spawn(cmd, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"], ...opts });
    this.exited = new Promise((ok) =>
      this.child.once("exit", (code, signal) => {
        this.exitCode = code ?? signal;
        for (const w of this.waiters) w.fail(new Error(`${name} exited (${this.exitCode}) before printing ${w.re}\n${this.tail()}`));
        ok(this.exitCode);
      }),
    );
    for (const stream of [this.child.stdout, this.child.stderr]) {
      let buf = "";
      stream.setEncoding("utf8");
      stream.on("data", (chunk) => {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          this.log.push(line);
          if (this.log.length > 400) this.log.shift();
          this.waiters = this.waiters.filter((w) => {
            const m = line.match(w.re);
            if (m) w.ok(m);
            return !m;
          });
        }
      });
    }
  }

  /** Resolves with the match of the first output line matching `re`. */
  line(re) {
    return withTimeout(
      new Promise((ok, fail) => {
        if (this.exitCode !== undefined) fail(new Error(`${this.name} already exited\n${this.tail()}`));
        else this.waiters.push({ re, ok, fail });
      }),
      `${this.name}: waiting for ${re}`,
      () => this.tail(),
    );
  }

  tail() {
    return `--- ${this.name} (last lines) ---\n${this.log.slice(-40).join("\n")}`;
  }

  /** SIGTERM (graceful: the relay sends 1001 closes, the demo closes its sockets), then wait for exit. */
  async stop() {
    if (this.exitCode === undefined) this.child.kill("SIGTERM");
    return withTimeout(this.exited, `${this.name}: waiting for exit`, () => this.tail());
  }
}

export async function withTimeout(promise, what, detail = () => "") {
  let timer;
  const timeout = new Promise((_, fail) => {
    timer = setTimeout(() => fail(new Error(`timed out after ${PATIENCE_MS} ms: ${what}\n${detail()}`)), PATIENCE_MS);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The relay binary on `port` (0: any free one): `url` is its WebSocket address, `page` its dashboard (without
 * the token), `token` the dashboard token it printed, and `open(query)` the page's URL with `?query` and the
 * token in the fragment, as the relay prints it. */
export async function startRelay(port = 0, args = [], name = "relay") {
  const p = new Proc(name, RELAY_BIN, ["--port", String(port), ...args], {
    env: { ...process.env, RUST_LOG: "devrelay=info" },
  });
  // Both lines come at once: wait for them together. The second names the dashboard (a binary built before
  // www/out says "dashboard not built" instead, and these tests need the real one).
  const [m, d] = await Promise.all([
    p.line(/^devrelay listening on ws:\/\/127\.0\.0\.1:(\d+)$/),
    p.line(/^dashboard (.*)$/),
  ]);
  p.port = Number(m[1]);
  p.url = `ws://127.0.0.1:${p.port}`;
  p.page = `http://127.0.0.1:${p.port}/`;
  const printed = /^(http:\/\/[^#\s]+)(?:#token=([A-Za-z0-9._~-]+))?$/.exec(d[1]);
  if (!printed || printed[1] !== p.page) {
    throw new Error(`${name}: expected "dashboard ${p.page}#token=…", got "${d[0]}"\n${p.tail()}`);
  }
  p.token = printed[2] ?? null;
  p.open = (query = "") => `${p.page}${query ? `?${query}` : ""}${p.token ? `#token=${p.token}` : ""}`;
  return p;
}

export function startDemo(relayUrl, { sessions = 2, rate = 12, seed = 7 } = {}) {
  return new Proc("demo", RELAY_BIN, [
    "demo",
    "--url",
    relayUrl,
    "--sessions",
    String(sessions),
    "--rate",
    String(rate),
    "--seed",
    String(seed),
  ]);
}

/** The session ids `devrelay demo --seed SEED` connects as (see DemoConfig::session_ids). */
export function demoSessionIds(seed, sessions) {
  const tag = (BigInt(seed) & 0xffffn).toString(16).padStart(4, "0");
  return Array.from({ length: sessions }, (_, i) => `demo-${tag}-${i + 1}`);
}

/** `GET /stats` of `relay` (from `startRelay`), with its dashboard token. */
export async function relayStats(relay) {
  const headers = relay.token ? { Authorization: `Bearer ${relay.token}` } : {};
  const res = await fetch(`http://127.0.0.1:${relay.port}/stats`, { headers });
  if (!res.ok) throw new Error(`/stats: ${res.status}`);
  return res.json();
}

export async function launchBrowser() {
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--host-resolver-rules=MAP ${FOREIGN_HOST} 127.0.0.1`,
    ],
  });
}

export async function screenshot(page, name) {
  const path = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path });
  return path;
}

/** A TCP proxy in front of `targetPort` that can cut every connection through it, as a dying network path does
 * (both sockets destroyed, no close frame), and refuse new ones until `uncut()`. A page loaded through it
 * (`open(relay, query)`) talks to the relay through it too (the dashboard connects back to its own origin). */
export async function startCuttingProxy(targetPort) {
  const { connect, createServer: createTcpServer } = await import("node:net");
  const pairs = new Set();
  let refusing = false;
  const server = createTcpServer((client) => {
    if (refusing) return client.destroy();
    const upstream = connect(targetPort, "127.0.0.1");
    const pair = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const s of pair) s.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise((ok, fail) => server.listen(0, "127.0.0.1", ok).once("error", fail));
  const { port } = server.address();
  return {
    port,
    open: (relay, query = "") =>
      `http://127.0.0.1:${port}/${query ? `?${query}` : ""}${relay.token ? `#token=${relay.token}` : ""}`,
    /** Destroys every connection through the proxy; refuses new ones until `uncut()`. Returns how many. */
    cut() {
      refusing = true;
      const n = pairs.size;
      for (const pair of pairs) for (const s of pair) s.destroy();
      pairs.clear();
      return n;
    },
    uncut() {
      refusing = false;
    },
    close: () => {
      for (const pair of pairs) for (const s of pair) s.destroy();
      return new Promise((ok) => server.close(ok));
    },
  };
}
