// The npm packages as a user gets them: `npm pack` the launcher and the linux-x64 package (npm/stage.mjs), install
// both from the tarballs into an empty project with no network, run `npx devrelay`, use the relay and its
// dashboard, stop it with Ctrl-C. Also the launcher's argument / signal / exit-code passing, its message when the
// platform package is missing, and `cargo install --path relay`. Run with scripts/test-npm.sh.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, test } from "node:test";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = process.env.DEVRELAY_BIN ?? join(ROOT, "target", "debug", "devrelay");
const PATIENCE_MS = 60_000;
const VERSION = readFileSync(join(ROOT, "Cargo.toml"), "utf8").match(/\[workspace\.package\][^[]*?\nversion\s*=\s*"([^"]+)"/)[1];

// No network: an unreachable registry, an empty cache of our own, and --offline. Anything npm tried to fetch
// would fail the install.
const OFFLINE = {
  npm_config_registry: "http://127.0.0.1:9/",
  npm_config_offline: "true",
  npm_config_audit: "false",
  npm_config_fund: "false",
  npm_config_update_notifier: "false",
};

let work, tarballs, project;

function npm(args, cwd, cache) {
  return execFileSync("npm", [...args, "--cache", cache], {
    cwd,
    env: { ...process.env, ...OFFLINE },
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** An empty project with `tgzs` installed (offline). */
function installInto(name, tgzs, extra = []) {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name, private: true }));
  npm(["install", "--offline", ...extra, ...tgzs], dir, join(work, `cache-${name}`));
  return dir;
}

/** A child whose stdout/stderr lines are kept and can be awaited. */
function run(cmd, args, opts = {}) {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], ...opts });
  const out = { stdout: "", stderr: "", waiters: [] };
  const check = () => {
    out.waiters = out.waiters.filter((w) => {
      const m = out.stdout.match(w.re);
      if (m) w.ok(m);
      return !m;
    });
  };
  child.stdout.on("data", (d) => {
    out.stdout += d;
    check();
  });
  child.stderr.on("data", (d) => (out.stderr += d));
  // "close", not "exit": it waits for every process holding the output pipes too (the launcher, the relay), so
  // nothing outlives it and the relay's last log lines are in.
  out.exit = new Promise((ok) => child.on("close", (code, signal) => ok({ code, signal })));
  out.exit.then(() => {
    for (const w of out.waiters) w.fail(new Error(`exited before printing ${w.re}\n${out.stdout}\n${out.stderr}`));
  });
  out.line = (re) => within(new Promise((ok, fail) => (out.waiters.push({ re, ok, fail }), check())), `${re}`, out);
  out.child = child;
  return out;
}

async function within(promise, what, out) {
  let timer;
  const timeout = new Promise((_, fail) => {
    timer = setTimeout(
      () => fail(new Error(`timed out after ${PATIENCE_MS} ms: ${what}\n${out?.stdout ?? ""}\n${out?.stderr ?? ""}`)),
      PATIENCE_MS,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves once nothing accepts connections on the port any more. */
function refused(port) {
  return new Promise((ok, fail) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      fail(new Error(`port ${port} still accepts connections`));
    });
    s.once("error", (e) => (e.code === "ECONNREFUSED" ? ok() : fail(e)));
  });
}

/** Waits for the relay's two lines; returns its port. */
async function started(proc) {
  const [m, d] = await Promise.all([
    proc.line(/^devrelay listening on ws:\/\/127\.0\.0\.1:(\d+)$/m),
    proc.line(/^dashboard (.*)$/m),
  ]);
  const port = Number(m[1]);
  assert.match(
    d[1],
    new RegExp(`^http://127\\.0\\.0\\.1:${port}/#token=[0-9a-f]{48}$`),
    "a binary with the dashboard inside, its URL carrying the launch's token",
  );
  return port;
}

/** The relay on `port` answers /health and serves the real dashboard (not the "not built" page). */
async function servesTheDashboard(port) {
  const health = await (await fetch(`http://127.0.0.1:${port}/health`)).json();
  assert.equal(health.status, "ok");
  assert.equal(health.version, VERSION);
  const page = await fetch(`http://127.0.0.1:${port}/`);
  assert.equal(page.status, 200);
  assert.equal(page.headers.get("content-type"), "text/html; charset=utf-8");
  const html = await page.text();
  assert.ok(!html.includes('data-devrelay-page="not-built"'), "the real dashboard, not the not-built page");
  const chunk = html.match(/src="(\/_next\/static\/[^"]+\.js)"/)?.[1];
  assert.ok(chunk, `the page loads its scripts from the relay: ${html.slice(0, 400)}`);
  const js = await fetch(`http://127.0.0.1:${port}${chunk}`);
  assert.equal(js.status, 200);
  assert.equal(js.headers.get("content-type"), "text/javascript; charset=utf-8");
}

describe("npm packages", { timeout: 10 * PATIENCE_MS }, () => {
  before(() => {
    work = mkdtempSync(join(tmpdir(), "devrelay-npm-"));
    const staged = execFileSync(
      process.execPath,
      [join(ROOT, "npm", "stage.mjs"), "--binary", BIN, "--platform", "linux-x64", "--out", join(work, "pack"), "--strip", "--pack"],
      { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
    );
    tarballs = staged.trim().split("\n");
    assert.deepEqual(
      tarballs.map((t) => t.split("/").pop()),
      [`devrelay-${VERSION}.tgz`, `devrelay-linux-x64-${VERSION}.tgz`],
    );
    project = installInto("app", tarballs);
  });

  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** `npx devrelay --port 0` in its own process group (what a terminal's Ctrl-C signals: npx → sh → launcher → relay). */
  function npx(env = {}) {
    return run("npx", ["devrelay", "--port", "0"], {
      cwd: project,
      detached: true,
      env: { ...process.env, ...OFFLINE, npm_config_cache: join(work, "cache-app"), ...env },
    });
  }

  test("npx devrelay runs the relay with its dashboard; Ctrl-C stops it cleanly", async () => {
    const relay = npx();
    const port = await started(relay);
    await servesTheDashboard(port);
    process.kill(-relay.child.pid, "SIGINT");
    const { code, signal } = await within(relay.exit, "npx to exit after Ctrl-C", relay);
    assert.match(relay.stderr, /signal received: closing connections \(1001\)/);
    assert.match(relay.stderr, /relay stopped/, "the relay shut down cleanly, not killed");
    await refused(port); // and nothing is left holding the port
    // npx's own status is its shell's: Debian's sh (dash) dies of the same Ctrl-C at once, and npm re-raises
    // that; the next test shows the relay's exit code coming through npx when the shell waits for it.
    assert.ok(code === 0 || signal === "SIGINT", JSON.stringify({ code, signal }));
  });

  test("through npx, the relay's exit code is npx's (with a shell that waits for its command)", async () => {
    const relay = npx({ npm_config_script_shell: "bash" });
    const port = await started(relay);
    process.kill(-relay.child.pid, "SIGINT");
    const { code, signal } = await within(relay.exit, "npx to exit after Ctrl-C", relay);
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, relay.stderr);
    assert.match(relay.stderr, /relay stopped/);
    await refused(port);
  });

  test("the launcher passes arguments, forwards signals and exits with the relay's code", async () => {
    const launcher = join(project, "node_modules", ".bin", "devrelay");
    // A signal to the launcher alone (a supervisor's SIGTERM) reaches the relay.
    const relay = run(launcher, ["--port", "0"]);
    const port = await started(relay);
    relay.child.kill("SIGTERM");
    assert.deepEqual(await within(relay.exit, "the launcher to exit after SIGTERM", relay), { code: 0, signal: null });
    assert.match(relay.stderr, /relay stopped/);
    await refused(port);

    const version = run(launcher, ["--version"]);
    assert.deepEqual(await within(version.exit, "--version"), { code: 0, signal: null });
    assert.equal(version.stdout.trim(), `devrelay ${VERSION}`);

    // A bad flag: the relay's own error and exit code (clap: 2), unchanged by the launcher.
    const bad = run(launcher, ["--port", "not-a-port"]);
    assert.deepEqual(await within(bad.exit, "a bad flag"), { code: 2, signal: null });
    assert.match(bad.stderr, /invalid value 'not-a-port' for '--port <PORT>'/);
  });

  test("without the platform package, the launcher says which platform and package", async () => {
    // Optional dependencies skipped: the binary's package is absent.
    const bare = installInto("bare", [tarballs[0]], ["--omit=optional"]);
    const missing = run(join(bare, "node_modules", ".bin", "devrelay"), ["--port", "0"]);
    assert.deepEqual(await within(missing.exit, "the launcher without its binary"), { code: 1, signal: null });
    assert.match(missing.stderr, /the package devrelay-linux-x64, which holds the binary for this platform/);
    assert.match(missing.stderr, /linux-x64 \(glibc\); process\.platform=linux, process\.arch=x64/);
    assert.match(missing.stderr, /--omit=optional/);
    assert.match(missing.stderr, /cargo install --locked --path relay/);

    // A platform with no package at all (process.arch faked before the launcher runs).
    const fake = join(work, "arm64.cjs");
    writeFileSync(fake, 'Object.defineProperty(process, "arch", { value: "arm64" });\n');
    const other = run(join(project, "node_modules", ".bin", "devrelay"), ["--port", "0"], {
      env: { ...process.env, NODE_OPTIONS: `--require ${fake}` },
    });
    assert.deepEqual(await within(other.exit, "the launcher on another platform"), { code: 1, signal: null });
    assert.match(other.stderr, /no prebuilt binary for this platform: linux-arm64 \(glibc\); process\.platform=linux, process\.arch=arm64/);
    assert.match(other.stderr, /Prebuilt: devrelay-linux-x64/);
  });

  test("cargo install --path relay installs a relay with the dashboard inside", async () => {
    // Reuses the workspace's debug build (same target directory, --debug): this checks what the install
    // produces and embeds, not the compiler.
    const root = join(work, "cargo-root");
    execFileSync("cargo", ["install", "--path", join(ROOT, "relay"), "--debug", "--locked", "--offline", "--root", root], {
      cwd: ROOT,
      env: { ...process.env, CARGO_TARGET_DIR: process.env.CARGO_TARGET_DIR ?? join(ROOT, "target") },
      stdio: ["ignore", "inherit", "inherit"],
    });
    const relay = run(join(root, "bin", "devrelay"), ["--port", "0"]);
    const port = await started(relay);
    await servesTheDashboard(port);
    relay.child.kill("SIGINT");
    assert.deepEqual(await within(relay.exit, "the installed relay to exit"), { code: 0, signal: null });
  });
});
