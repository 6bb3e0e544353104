// Baseline relay for devrelay's benchmarks: the seed-000 devtools server logic (a Map of SDK clients by
// sessionId, a Map of dashboards by random id, JSON.parse per frame, one JSON.stringify per broadcast) on Bun's
// built-in WebSocket server (uWebSockets underneath), as a team on Bun (seed 002) would write it.
//
// Two ways to fan a broadcast out, chosen by FANOUT:
// - FANOUT=publish (the default; label `bun`): the way Bun's users write it. Every dashboard joins the topic
//   "dashboards" (`ws.subscribe`) and a broadcast is one `server.publish(topic, text)`: uWebSockets' native
//   pub/sub sends to every subscriber from C++, without a JavaScript call per dashboard.
// - FANOUT=loop (label `bun-loop`): a JavaScript loop over the dashboards Map with one `ws.send` per dashboard,
//   the shape of the seed-000 Node server. Kept to show what the idiomatic form is worth.
// Usage: bun server.ts [port]   (or PORT=...; 0 = ephemeral). Prints "listening on ws://127.0.0.1:PORT".
import type { ServerWebSocket } from "bun";

const HEARTBEAT_INTERVAL = 30_000;
const SERVER_VERSION = "0.1.0";
const FANOUT = process.env.FANOUT ?? "publish";
if (FANOUT !== "publish" && FANOUT !== "loop") {
  console.error(`FANOUT must be "publish" or "loop", not ${JSON.stringify(FANOUT)}`);
  process.exit(2);
}
const DASHBOARDS = "dashboards";

type Conn = { role: "sdk" | "dashboard" | null; key: string | null };
type Socket = ServerWebSocket<Conn>;
type SdkClient = {
  ws: Socket;
  sessionId: string;
  sdkVersion: string;
  projectId?: string;
  connectedAt: number;
  isAlive: boolean;
};

const sdkClients = new Map<string, SdkClient>();
const dashboardClients = new Map<string, { ws: Socket; id: string }>();

function getClientList() {
  return [...sdkClients.values()].map(({ sessionId, sdkVersion, projectId, connectedAt }) => ({
    sessionId,
    sdkVersion,
    projectId,
    connectedAt,
  }));
}

function broadcastToDashboard(message: unknown) {
  const text = JSON.stringify(message);
  if (FANOUT === "publish") {
    server.publish(DASHBOARDS, text);
    return;
  }
  for (const client of dashboardClients.values()) {
    if (client.ws.readyState === 1) {
      client.ws.send(text);
    }
  }
}

function handleSdkMessage(sessionId: string, message: any) {
  switch (message.type) {
    case "state_snapshot":
      broadcastToDashboard({ type: "state_update", sessionId, snapshot: message });
      break;
    case "stream_event":
      broadcastToDashboard({ type: "stream_event_update", sessionId, event: message });
      break;
    case "heartbeat": {
      const c = sdkClients.get(sessionId);
      if (c) c.isAlive = true;
      break;
    }
  }
}

const port = Number(process.argv[2] ?? process.env.PORT ?? 8265);
const server = Bun.serve<Conn, {}>({
  port,
  hostname: "127.0.0.1",
  fetch(req, server) {
    if (server.upgrade(req, { data: { role: null, key: null } })) return;
    return new Response("WebSocket only\n", { status: 426 });
  },
  websocket: {
    message(ws, data) {
      let message: any;
      try {
        message = JSON.parse(typeof data === "string" ? data : data.toString());
      } catch (err) {
        console.error("[DevTools] bad JSON:", (err as Error).message);
        return;
      }
      const conn = ws.data;
      if (conn.role === null) {
        if (message.type === "handshake") {
          conn.role = "sdk";
          conn.key = message.sessionId;
          const c: SdkClient = {
            ws,
            sessionId: message.sessionId,
            sdkVersion: message.sdkVersion,
            projectId: message.projectId,
            connectedAt: Date.now(),
            isAlive: true,
          };
          sdkClients.set(c.sessionId, c);
          ws.send(JSON.stringify({ type: "handshake_ack", sessionId: c.sessionId, serverVersion: SERVER_VERSION }));
          broadcastToDashboard({
            type: "client_connected",
            sessionId: c.sessionId,
            sdkVersion: c.sdkVersion,
            projectId: c.projectId,
            connectedAt: c.connectedAt,
          });
        } else if (message.type === "subscribe_dashboard") {
          conn.role = "dashboard";
          conn.key = crypto.randomUUID();
          dashboardClients.set(conn.key, { ws, id: conn.key });
          // Joined before the client list is sent, so no broadcast after the list can miss this dashboard.
          ws.subscribe(DASHBOARDS);
          ws.send(JSON.stringify({ type: "client_list", clients: getClientList() }));
        }
        return;
      }
      if (conn.role === "sdk") {
        handleSdkMessage(conn.key!, message);
      } else if (message.type === "request_client_list") {
        ws.send(JSON.stringify({ type: "client_list", clients: getClientList() }));
      } else if (message.type === "request_client_snapshot") {
        sdkClients.get(message.sessionId)?.ws.send(JSON.stringify({ type: "request_snapshot" }));
      }
    },
    close(ws) {
      const conn = ws.data;
      if (conn.role === "sdk" && sdkClients.get(conn.key!)?.ws === ws) {
        sdkClients.delete(conn.key!);
        broadcastToDashboard({ type: "client_disconnected", sessionId: conn.key });
      } else if (conn.role === "dashboard") {
        dashboardClients.delete(conn.key!);
      }
    },
    pong(ws) {
      const c = ws.data.role === "sdk" ? sdkClients.get(ws.data.key!) : undefined;
      if (c) c.isAlive = true;
    },
  },
});

const heartbeat = setInterval(() => {
  for (const [sessionId, client] of sdkClients) {
    if (!client.isAlive) {
      client.ws.terminate();
      sdkClients.delete(sessionId);
      continue;
    }
    client.isAlive = false;
    client.ws.ping();
  }
}, HEARTBEAT_INTERVAL);

function shutdown() {
  clearInterval(heartbeat);
  server.stop(true);
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

console.log(`listening on ws://127.0.0.1:${server.port}`);
