// Baseline relay for devrelay's benchmarks, written the way seed 000 describes the devtools server:
// the `ws` package, a Map of SDK clients (by sessionId) and a Map of dashboards (by random id), every frame
// JSON.parse'd, and every broadcast JSON.stringify'd and sent to each open dashboard.
// Usage: node server.js [port]   (or PORT=...; 0 = ephemeral). Prints "listening on ws://127.0.0.1:PORT".
// STRINGIFY_ONCE=1 serializes each broadcast once instead of once per dashboard.
"use strict";

const crypto = require("node:crypto");
const { WebSocketServer, WebSocket } = require("ws");

const HEARTBEAT_INTERVAL = 30_000;
const SERVER_VERSION = "0.1.0";
const STRINGIFY_ONCE = process.env.STRINGIFY_ONCE === "1";

class ConnectionManager {
  constructor() {
    this.sdkClients = new Map();
    this.dashboardClients = new Map();
  }

  handleNewConnection(ws) {
    let role = null;
    let key = null;
    ws.on("message", (data) => {
      let message;
      try {
        message = JSON.parse(data.toString());
      } catch (err) {
        console.error("[DevTools] bad JSON:", err.message);
        return;
      }
      if (role === null) {
        if (message.type === "handshake") {
          role = "sdk";
          key = message.sessionId;
          this.sdkClients.set(key, {
            ws,
            sessionId: message.sessionId,
            sdkVersion: message.sdkVersion,
            projectId: message.projectId,
            connectedAt: Date.now(),
            isAlive: true,
          });
          ws.send(JSON.stringify({ type: "handshake_ack", sessionId: key, serverVersion: SERVER_VERSION }));
          const c = this.sdkClients.get(key);
          this.broadcastToDashboard({
            type: "client_connected",
            sessionId: c.sessionId,
            sdkVersion: c.sdkVersion,
            projectId: c.projectId,
            connectedAt: c.connectedAt,
          });
        } else if (message.type === "subscribe_dashboard") {
          role = "dashboard";
          key = crypto.randomUUID();
          this.dashboardClients.set(key, { ws, id: key });
          ws.send(JSON.stringify({ type: "client_list", clients: this.getClientList() }));
        }
        return;
      }
      if (role === "sdk") {
        this.handleSdkMessage(key, message);
      } else if (message.type === "request_client_list") {
        ws.send(JSON.stringify({ type: "client_list", clients: this.getClientList() }));
      } else if (message.type === "request_client_snapshot") {
        const c = this.sdkClients.get(message.sessionId);
        if (c) c.ws.send(JSON.stringify({ type: "request_snapshot" }));
      }
    });
    ws.on("close", () => {
      if (role === "sdk" && this.sdkClients.get(key)?.ws === ws) {
        this.sdkClients.delete(key);
        this.broadcastToDashboard({ type: "client_disconnected", sessionId: key });
      } else if (role === "dashboard") {
        this.dashboardClients.delete(key);
      }
    });
    ws.on("pong", () => {
      const c = role === "sdk" ? this.sdkClients.get(key) : null;
      if (c) c.isAlive = true;
    });
    ws.on("error", (err) => console.error("[DevTools] socket error:", err.message));
  }

  handleSdkMessage(sessionId, message) {
    switch (message.type) {
      case "state_snapshot":
        this.broadcastToDashboard({ type: "state_update", sessionId, snapshot: message });
        break;
      case "stream_event":
        this.broadcastToDashboard({ type: "stream_event_update", sessionId, event: message });
        break;
      case "heartbeat": {
        const c = this.sdkClients.get(sessionId);
        if (c) c.isAlive = true;
        break;
      }
    }
  }

  broadcastToDashboard(message) {
    // STRINGIFY_ONCE=1: the obvious optimisation (one JSON.stringify per broadcast), run as a second baseline.
    const once = STRINGIFY_ONCE ? JSON.stringify(message) : null;
    for (const client of this.dashboardClients.values()) {
      if (client.ws.readyState === WebSocket.OPEN) {
        client.ws.send(once ?? JSON.stringify(message));
      }
    }
  }

  runHeartbeat() {
    for (const [sessionId, client] of this.sdkClients) {
      if (!client.isAlive) {
        client.ws.terminate();
        this.sdkClients.delete(sessionId);
        continue;
      }
      client.isAlive = false;
      client.ws.ping();
    }
  }

  getClientList() {
    return [...this.sdkClients.values()].map(({ sessionId, sdkVersion, projectId, connectedAt }) => ({
      sessionId,
      sdkVersion,
      projectId,
      connectedAt,
    }));
  }

  cleanup() {
    for (const c of this.sdkClients.values()) c.ws.close();
    for (const c of this.dashboardClients.values()) c.ws.close();
    this.sdkClients.clear();
    this.dashboardClients.clear();
  }
}

const port = Number(process.argv[2] ?? process.env.PORT ?? 8265);
const manager = new ConnectionManager();
const wss = new WebSocketServer({ port, host: "127.0.0.1" });

wss.on("connection", (ws) => manager.handleNewConnection(ws));
const heartbeatInterval = setInterval(() => manager.runHeartbeat(), HEARTBEAT_INTERVAL);

function shutdown() {
  clearInterval(heartbeatInterval);
  manager.cleanup();
  wss.close();
  process.exit(0);
}
process.on("SIGTERM", shutdown);
process.on("SIGINT", shutdown);

wss.on("listening", () => {
  console.log(`listening on ws://127.0.0.1:${wss.address().port}`);
});
