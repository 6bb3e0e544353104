import path from "node:path";
import type { NextConfig } from "next";

const config: NextConfig = {
  // A static site: the relay embeds `out/` and serves it on its own port (relay/src/assets.rs); the dashboard
  // talks to the relay straight from the browser, so there is no Next.js server to run.
  output: "export",
  reactStrictMode: true,
  // `devrelay-client` is a `file:../pkg` dependency: without a root above www/, Turbopack silently fails to
  // resolve it (see shared toolchain notes).
  turbopack: { root: path.join(__dirname, "..") },
};

export default config;
