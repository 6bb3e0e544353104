//! Stale, not dead, with real processes stopped by SIGSTOP: a session (the demo SDK, seed 000) or an agent (a Node
//! WebSocket client, v2) that stops answering pings is shown to dashboards as stale for `stale_grace`; resumed by
//! SIGCONT within it, it continues on its connection (no disconnect, no reconnect); kept stopped past it, it is
//! dropped (4003) — and comes back by reconnecting once resumed.

mod util;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use devrelay::Config;
use serde_json::{json, Value};
use util::{Relay, V2};

/// A child process, resumed and killed when dropped (the test may fail half way).
struct Proc(Child);

impl Proc {
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn demo(url: &str, seed: u64) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_devrelay"))
            .args(["demo", "--url", url, "--sessions", "1", "--rate", "0"])
            .args(["--seed", &seed.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// A v2 agent in another process: Node's WebSocket (which answers pings as browsers do), identified by connect
/// parameters, doing nothing else.
fn node_agent(url: &str) -> Proc {
    let script = "const ws = new WebSocket(process.argv[1]); ws.onclose = () => process.exit(0);";
    Proc(
        Command::new("node")
            .args([
                "--no-warnings",
                "--experimental-websocket",
                "-e",
                script,
                url,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node (scripts/setup.sh installs it)"),
    )
}

fn config(grace: Duration) -> Config {
    Config {
        // Short periods so that the test does not wait long; nothing is timed against them.
        ping_interval: Duration::from_millis(200),
        stale_grace: grace,
        ..Config::default()
    }
}

async fn watcher(relay: &Relay) -> V2 {
    let mut dash = V2::dashboard(&relay.dash()).await;
    dash.subscribe("global").await;
    dash
}

/// The presence entry of `id` a dashboard subscribing now gets.
async fn presence_now(relay: &Relay, id: &str) -> Value {
    let mut late = V2::dashboard(&relay.dash()).await;
    let ack = late.subscribe("global").await;
    ack["presence"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Messages about `id` until `event` for it.
async fn until_event(dash: &mut V2, id: &str, event: &str) -> (Value, Vec<Value>) {
    let mut before = Vec::new();
    loop {
        let m = dash.next().await;
        if m["data"]["id"] != id {
            continue;
        }
        if m["event"] == event {
            return (m, before);
        }
        before.push(m);
    }
}

/// Stopped, shown stale, resumed within the grace: it continues on the same connection.
async fn comes_back_within_the_grace(kind: &str, id: &str, start: impl FnOnce(&Relay) -> Proc) {
    let relay = Relay::start(config(Duration::from_secs(120))).await;
    let mut dash = watcher(&relay).await;
    let p = start(&relay);
    let (connected, _) = until_event(&mut dash, id, &format!("{kind}.connected")).await;

    p.signal("-STOP");
    let (stale, between) = until_event(&mut dash, id, &format!("{kind}.stale")).await;
    let (since, drop_at) = (
        stale["data"]["since"].as_f64(),
        stale["data"]["dropAt"].as_f64(),
    );
    assert!(drop_at.unwrap() >= since.unwrap() + 120_000.0, "{stale}");
    assert!(between
        .iter()
        .all(|m| !m["event"].as_str().unwrap().ends_with("connected")));
    // Dashboards that come now see it stale too.
    let entry = presence_now(&relay, id).await;
    assert_eq!(entry["staleSince"], stale["data"]["since"], "{entry}");

    p.signal("-CONT");
    let (fresh, between) = until_event(&mut dash, id, &format!("{kind}.fresh")).await;
    assert_eq!(fresh["data"]["kind"], kind, "{fresh}");
    assert!(
        between.is_empty(),
        "it left or came again meanwhile: {between:?}"
    );
    // The same connection: no staleSince, the same connectedAt.
    let entry = presence_now(&relay, id).await;
    assert_eq!(entry.get("staleSince"), None, "{entry}");
    assert_eq!(
        entry["connectedAt"], connected["data"]["connectedAt"],
        "{entry}"
    );
    let stats = relay.stats().await;
    assert_eq!(stats["stale"], 1, "{stats}");
    assert_eq!(stats["heartbeatTimeouts"], 0, "{stats}");
    relay.shutdown.cancel();
}

/// Stopped past the grace: dropped; resumed, it reconnects (4003 is in the reconnect range).
async fn is_dropped_past_the_grace(kind: &str, id: &str, start: impl FnOnce(&Relay) -> Proc) {
    let relay = Relay::start(config(Duration::from_secs(1))).await;
    let mut dash = watcher(&relay).await;
    let p = start(&relay);
    until_event(&mut dash, id, &format!("{kind}.connected")).await;
    p.signal("-STOP");
    until_event(&mut dash, id, &format!("{kind}.stale")).await;
    let (_, between) = until_event(&mut dash, id, &format!("{kind}.disconnected")).await;
    assert!(between.is_empty(), "{between:?}");
    let stats = relay.stats().await;
    assert_eq!(stats["heartbeatTimeouts"], 1, "{stats}");
    assert_eq!(presence_now(&relay, id).await, Value::Null);
    p.signal("-CONT");
    if kind == "session" {
        until_event(&mut dash, id, "session.connected").await;
    }
    relay.shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_sdk_is_stale_then_continues_when_resumed() {
    comes_back_within_the_grace("session", "demo-0015-1", |r| demo(&r.url(), 21)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_sdk_past_the_grace_is_dropped_and_reconnects_when_resumed() {
    is_dropped_past_the_grace("session", "demo-0016-1", |r| demo(&r.url(), 22)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_agent_is_stale_then_continues_when_resumed() {
    comes_back_within_the_grace("agent", "paused", |r| {
        node_agent(&r.with_token(&format!("{}/?agent_id=paused", r.url())))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_agent_past_the_grace_is_dropped() {
    is_dropped_past_the_grace("agent", "gone", |r| {
        node_agent(&r.with_token(&format!("{}/?agent_id=gone", r.url())))
    })
    .await;
}

#[tokio::test]
async fn dashboards_are_not_kept_stale() {
    // A dashboard has no one to show it stale to: a silent one ends after a period, as before.
    let relay = Relay::start(config(Duration::from_secs(120))).await;
    let mut c = V2::dashboard(&relay.dash()).await;
    c.send(json!({"type": "subscribe", "channel": "global", "id": 1}))
        .await;
    // Not reading: tungstenite answers pings only while it reads, so this dashboard is silent.
    let deadline = tokio::time::Instant::now() + util::PATIENCE;
    loop {
        if relay.stats().await["heartbeatTimeouts"] == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never dropped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(relay.stats().await["stale"], 0);
}
