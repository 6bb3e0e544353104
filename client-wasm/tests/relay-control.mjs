// Runs a real devrelay relay for the wasm browser tests and lets the tests kill it and start it again on the
// same port, through a tiny HTTP control endpoint (CORS-open, loopback only):
//   POST /kill   -> SIGKILL the relay (sockets die without a close frame, like a crash); waits for exit
//   POST /start  -> start it again on the same port; answers once it is listening
//   POST /stop   -> SIGSTOP the relay: its sockets stay open but nothing answers (a relay gone silent)
//   POST /cont   -> SIGCONT it again
//   GET  /health -> the relay's /health, proxied (the relay itself sends no CORS headers)
//   POST /cut    -> the cutting proxy (RELAY_PROXY_URL, a plain TCP proxy in front of the relay) destroys every
//                   connection through it, both sockets, without a close frame (as when a network path dies),
//                   and refuses new ones until
//   POST /uncut  -> the proxy accepts connections again
// Prints `RELAY_URL=ws://...`, `RELAY_CONTROL_URL=http://...`, `RELAY_TOKEN=...` and `RELAY_PROXY_URL=ws://...`
// lines on stdout once ready.
// The relay keeps one dashboard token across restarts (--token), as a relay started with --token does.
// With SEED_RELAY=<path to bench/baselines/node-relay/server.js> it also runs that seed-000 Node relay (the one the
// client falls back to seed 000 against), for the whole run, and prints `SEED_RELAY_URL=ws://...` after them.
// Usage: node relay-control.mjs <path to devrelay binary> [extra relay args...]
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import http from "node:http";
import net from "node:net";
import readline from "node:readline";

const [bin, ...extraArgs] = process.argv.slice(2);
let relay = null;
let port = 0;
const token = randomBytes(24).toString("hex");

function startRelay() {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ["--port", String(port), "--token", token, ...extraArgs], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const lines = readline.createInterface({ input: child.stdout });
    let ready = false;
    lines.on("line", (line) => {
      const m = /^devrelay listening on ws:\/\/127\.0\.0\.1:(\d+)$/.exec(line);
      if (!ready && m) {
        ready = true;
        port = Number(m[1]);
        relay = child;
        resolve(port);
      }
    });
    child.on("exit", (code, signal) => {
      if (relay === child) relay = null;
      if (!ready) reject(new Error(`relay exited before listening (code ${code}, signal ${signal})`));
    });
  });
}

function killRelay() {
  return new Promise((resolve) => {
    const child = relay;
    if (!child) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGKILL");
  });
}

async function startWithRetry() {
  // The port was just released by a killed process; binding normally works at once (SO_REUSEADDR), but give
  // the kernel a few tries rather than failing the suite on a transient EADDRINUSE.
  for (let i = 0; ; i++) {
    try {
      return await startRelay();
    } catch (e) {
      if (i >= 20) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

function relayHealth() {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path: "/health" }, (res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve(body));
      })
      .on("error", reject);
  });
}

// The cutting proxy: each accepted connection is piped to the relay's current port (so it survives restarts).
const proxied = new Set();
let refusing = false;
const proxy = net.createServer((client) => {
  if (refusing) return client.destroy();
  const upstream = net.connect(port, "127.0.0.1");
  const pair = { client, upstream };
  proxied.add(pair);
  const end = () => {
    proxied.delete(pair);
    client.destroy();
    upstream.destroy();
  };
  for (const socket of [client, upstream]) {
    socket.on("error", end);
    socket.on("close", end);
  }
  client.pipe(upstream);
  upstream.pipe(client);
});

function cut() {
  refusing = true;
  const n = proxied.size;
  for (const { client, upstream } of proxied) {
    client.destroy();
    upstream.destroy();
  }
  proxied.clear();
  return n;
}

const server = http.createServer(async (req, res) => {
  const reply = (status, body) => {
    res.writeHead(status, { "content-type": "application/json", "access-control-allow-origin": "*" });
    res.end(JSON.stringify(body));
  };
  try {
    if (req.method === "POST" && req.url === "/kill") {
      await killRelay();
      reply(200, { killed: true });
    } else if (req.method === "POST" && req.url === "/start") {
      if (!relay) await startWithRetry();
      reply(200, { url: `ws://127.0.0.1:${port}` });
    } else if (req.method === "POST" && req.url === "/cut") {
      reply(200, { cut: cut() });
    } else if (req.method === "POST" && req.url === "/uncut") {
      refusing = false;
      reply(200, { refusing });
    } else if (req.method === "POST" && (req.url === "/stop" || req.url === "/cont")) {
      if (!relay) throw new Error("the relay is not running");
      relay.kill(req.url === "/stop" ? "SIGSTOP" : "SIGCONT");
      reply(200, { signalled: req.url.slice(1) });
    } else if (req.method === "GET" && req.url === "/health") {
      reply(200, JSON.parse(await relayHealth()));
    } else {
      reply(404, { error: "not found" });
    }
  } catch (e) {
    reply(500, { error: String(e) });
  }
});

/** The seed-000 Node relay: started once, on a free port; resolves with its URL once it listens. */
let seedRelay = null;
function startSeedRelay(script) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, "0"], { stdio: ["ignore", "pipe", "inherit"] });
    const lines = readline.createInterface({ input: child.stdout });
    lines.on("line", (line) => {
      const m = /^listening on (ws:\/\/127\.0\.0\.1:\d+)$/.exec(line);
      if (m) resolve(m[1]);
    });
    child.on("exit", (code, signal) => reject(new Error(`seed relay exited (code ${code}, signal ${signal})`)));
    seedRelay = child;
  });
}

await startWithRetry();
const seedUrl = process.env.SEED_RELAY ? await startSeedRelay(process.env.SEED_RELAY) : null;
await new Promise((ok) => proxy.listen(0, "127.0.0.1", ok));
server.listen(0, "127.0.0.1", () => {
  console.log(`RELAY_URL=ws://127.0.0.1:${port}`);
  console.log(`RELAY_CONTROL_URL=http://127.0.0.1:${server.address().port}`);
  console.log(`RELAY_TOKEN=${token}`);
  console.log(`RELAY_PROXY_URL=ws://127.0.0.1:${proxy.address().port}`);
  if (seedUrl) console.log(`SEED_RELAY_URL=${seedUrl}`);
});

const shutdown = async () => {
  seedRelay?.kill("SIGKILL");
  relay?.kill("SIGCONT");
  await killRelay();
  process.exit(0);
};
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);
