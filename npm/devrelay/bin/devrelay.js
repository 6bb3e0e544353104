#!/usr/bin/env node
// `devrelay` for npm: runs the native relay binary from the platform package npm installed next to this one
// (`devrelay-<platform>-<arch>`, one of our optionalDependencies; each declares its `os` / `cpu`, so npm installs
// only the one that fits). Arguments pass through untouched, Ctrl-C and SIGTERM reach the relay (which closes
// its sockets and exits 0), and this process exits with the relay's exit code. Nothing is downloaded.
"use strict";

const { spawn } = require("node:child_process");
const os = require("node:os");
const path = require("node:path");

const manifest = require("../package.json");

/** The platform packages this release ships: exactly our optionalDependencies. */
const platforms = Object.keys(manifest.optionalDependencies ?? {});

function fail(message) {
  process.stderr.write(`devrelay: ${message}\n`);
  process.exit(1);
}

/** `glibc`, `musl`, or null off Linux: the Linux packages are built against glibc. */
function linuxLibc() {
  if (process.platform !== "linux") return null;
  const header = process.report?.getReport?.().header;
  return header?.glibcVersionRuntime ? "glibc" : "musl";
}

function binaryPath() {
  const key = `${process.platform}-${process.arch}`;
  const pkg = `devrelay-${key}`;
  const libc = linuxLibc();
  const where = `${key}${libc ? ` (${libc})` : ""}; process.platform=${process.platform}, process.arch=${process.arch}`;
  const fromSource =
    "Build it from source instead (Rust toolchain): scripts/build-dashboard.sh && cargo install --locked --path relay, in a clone of the devrelay repository.";
  if (!platforms.includes(pkg)) {
    fail(`no prebuilt binary for this platform: ${where}. Prebuilt: ${platforms.join(", ") || "none"}. ${fromSource}`);
  }
  let dir;
  try {
    dir = path.dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    fail(
      `the package ${pkg}, which holds the binary for this platform (${where}), is not installed. ` +
        "npm installs it with devrelay unless optional dependencies are skipped (--omit=optional, --no-optional) " +
        `or it does not match this system${libc === "musl" ? " (it needs glibc; this system uses musl)" : ""}. ` +
        `Reinstall devrelay without skipping optional dependencies, or add ${pkg}@${manifest.version} yourself. ${fromSource}`,
    );
  }
  return path.join(dir, "bin", process.platform === "win32" ? "devrelay.exe" : "devrelay");
}

const binary = binaryPath();
const child = spawn(binary, process.argv.slice(2), { stdio: "inherit" });

// Ctrl-C in a terminal signals the whole process group, so the relay usually has it already; forwarding covers a
// signal sent to this process alone (npx, a supervisor, `kill`). A second one is harmless: the relay is
// already shutting down.
const forwarded = ["SIGINT", "SIGTERM", "SIGHUP"];
for (const signal of forwarded) {
  process.on(signal, () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  });
}

child.on("error", (err) => {
  const hint = err.code === "EACCES" ? ` (not executable: chmod +x ${binary})` : "";
  fail(`could not run ${binary}: ${err.message}${hint}`);
});

child.on("exit", (code, signal) => {
  if (signal) {
    // Die of the same signal, so whoever started us sees what happened to the relay.
    for (const s of forwarded) process.removeAllListeners(s);
    process.kill(process.pid, signal);
    // (A signal whose default is not to terminate: exit the way a shell reports it.)
    process.exit(128 + (os.constants.signals[signal] ?? 0));
  }
  process.exit(code ?? 1);
});
