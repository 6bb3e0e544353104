import path from "node:path";
import type { NextConfig } from "next";

const config: NextConfig = {
  // A static site: `out/` is served by serve.mjs (or any static server); the dashboard talks to the relay
  // directly from the browser, so there is no Next.js server to run.
  output: "export",
  reactStrictMode: true,
  // `devrelay-client` is a `file:../pkg` dependency: without a root above www/, Turbopack silently fails to
  // resolve it (see shared toolchain notes).
  turbopack: { root: path.join(__dirname, "..") },
};

export default config;
