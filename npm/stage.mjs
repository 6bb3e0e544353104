#!/usr/bin/env node
// Stages the npm packages for one platform: the `devrelay` launcher and `devrelay-<platform>` with the given relay
// binary inside, both at the workspace's version, in an output directory; with --pack, also `npm pack`s them and
// prints the two tarball paths. The binary should be one built after scripts/build-dashboard.sh, so that it
// carries the dashboard. See npm/README.md for the release pipeline (one run per platform).
//
//   node npm/stage.mjs --binary target/release/devrelay [--platform linux-x64] [--out target/npm] [--strip] [--pack]
//
// --strip: strip the staged copy's symbols and debug info (with `strip`, or $STRIP for a cross-built binary).

import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";

const here = import.meta.dirname;
const root = resolve(here, "..");
const { values: args } = parseArgs({
  options: {
    binary: { type: "string" },
    platform: { type: "string", default: `${process.platform}-${process.arch}` },
    out: { type: "string", default: join(root, "target", "npm") },
    pack: { type: "boolean", default: false },
    strip: { type: "boolean", default: false },
  },
});

function fail(message) {
  console.error(`stage: ${message}`);
  process.exit(1);
}

if (!args.binary) fail("--binary PATH is required (the relay binary to ship, e.g. target/release/devrelay)");
const binary = resolve(args.binary);
if (!existsSync(binary)) fail(`no binary at ${binary}`);

// One version for everything: the workspace's (Cargo.toml [workspace.package]).
const cargo = readFileSync(join(root, "Cargo.toml"), "utf8");
const version = cargo.match(/\[workspace\.package\][^[]*?\nversion\s*=\s*"([^"]+)"/)?.[1];
if (!version) fail("no [workspace.package] version in Cargo.toml");

const platformPkg = `devrelay-${args.platform}`;
const template = join(here, platformPkg);
if (!existsSync(join(template, "package.json"))) {
  fail(`no package template npm/${platformPkg}/ (add one like npm/devrelay-linux-x64/, with its os and cpu)`);
}

const out = resolve(args.out);
const readJson = (p) => JSON.parse(readFileSync(p, "utf8"));
const writeJson = (p, v) => writeFileSync(p, `${JSON.stringify(v, null, 2)}\n`);

// The launcher, its version and its platform packages' versions pinned to this release.
const launcherDir = join(out, "devrelay");
rmSync(launcherDir, { recursive: true, force: true });
cpSync(join(here, "devrelay"), launcherDir, { recursive: true });
const launcher = readJson(join(launcherDir, "package.json"));
launcher.version = version;
if (!(platformPkg in (launcher.optionalDependencies ?? {}))) {
  fail(`npm/devrelay/package.json does not list ${platformPkg} in optionalDependencies`);
}
for (const name of Object.keys(launcher.optionalDependencies)) launcher.optionalDependencies[name] = version;
writeJson(join(launcherDir, "package.json"), launcher);

// The platform package, with the binary.
const platformDir = join(out, platformPkg);
rmSync(platformDir, { recursive: true, force: true });
cpSync(template, platformDir, { recursive: true });
const pkg = readJson(join(platformDir, "package.json"));
pkg.version = version;
writeJson(join(platformDir, "package.json"), pkg);
const exe = args.platform.startsWith("win32-") ? "devrelay.exe" : "devrelay";
const target = join(platformDir, "bin", exe);
mkdirSync(dirname(target), { recursive: true });
copyFileSync(binary, target);
chmodSync(target, 0o755);
if (args.strip) execFileSync(process.env.STRIP ?? "strip", [target], { stdio: "inherit" });
if (!pkg.files?.includes(`bin/${exe}`)) fail(`npm/${platformPkg}/package.json "files" must list bin/${exe}`);

console.error(`stage: devrelay ${version} for ${args.platform} in ${out}`);
if (args.pack) {
  for (const dir of [launcherDir, platformDir]) {
    const [{ filename }] = JSON.parse(
      execFileSync("npm", ["pack", "--json", "--pack-destination", out], { cwd: dir, encoding: "utf8" }),
    );
    console.log(join(out, filename));
  }
}
