//! The demo SDK against a real relay: its sessions appear to dashboards with realistic traffic, it answers
//! `request_snapshot`, leaves cleanly, and comes back by itself after the relay restarts.

mod util;

use std::collections::{BTreeSet, HashMap};

use devrelay::demo::{self, DemoConfig, PROJECT_ID, SDK_VERSION};
use devrelay::Config;
use devrelay_protocol::ClientList;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use util::{Client, Relay, PATIENCE};

struct Demo {
    ids: Vec<String>,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

fn start_demo(url: String, sessions: usize, rate: f64, seed: u64) -> Demo {
    let cfg = DemoConfig {
        url,
        sessions,
        rate,
        seed: Some(seed),
        ..DemoConfig::default()
    };
    let shutdown = CancellationToken::new();
    Demo {
        ids: cfg.session_ids(),
        shutdown: shutdown.clone(),
        task: tokio::spawn(demo::run(cfg, shutdown)),
    }
}

impl Demo {
    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("demo stops promptly")
            .unwrap()
            .expect("demo ends without error");
    }
}

/// Reads dashboard messages until `f` returns `Some` (bounded by `PATIENCE` per message).
async fn until<T>(dash: &mut Client, mut f: impl FnMut(&Value) -> Option<T>) -> T {
    loop {
        let v = dash.recv_value().await;
        if let Some(t) = f(&v) {
            return t;
        }
    }
}

/// Waits until the dashboard has seen every id in `ids` connect.
async fn connected(dash: &mut Client, ids: &[String]) {
    let mut waiting: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    until(dash, |v| {
        if v["type"] == "client_connected" {
            assert_eq!(v["sdkVersion"], SDK_VERSION);
            assert_eq!(v["projectId"], PROJECT_ID);
            waiting.remove(v["sessionId"].as_str().unwrap());
        }
        waiting.is_empty().then_some(())
    })
    .await
}

fn content_types(snapshot: &Value) -> BTreeSet<String> {
    snapshot["threads"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|t| t["messages"].as_array().unwrap())
        .flat_map(|m| m["content"].as_array().unwrap())
        .map(|b| b["type"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn demo_sessions_stream_realistic_traffic() {
    let relay = Relay::start(Config::default()).await;
    let (mut dash, list) = Client::dashboard(&relay.dash()).await;
    assert!(list.clients.is_empty());

    let demo = start_demo(relay.url(), 2, 400.0, 1);
    connected(&mut dash, &demo.ids).await;

    // Every session: snapshots whose threads hold all five content types, a full registry, and AG-UI events
    // of every family with per-session increasing sequence numbers.
    let all_types: BTreeSet<String> = ["text", "tool_use", "tool_result", "component", "resource"]
        .map(String::from)
        .into();
    let must_see = [
        "RUN_STARTED",
        "TEXT_MESSAGE_START",
        "TEXT_MESSAGE_CONTENT",
        "TEXT_MESSAGE_END",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
        "TOOL_CALL_RESULT",
        "RUN_FINISHED",
    ];
    let mut complete_snapshot = BTreeSet::new();
    let mut kinds: HashMap<String, BTreeSet<String>> = HashMap::new();
    let mut last_seq: HashMap<String, u64> = HashMap::new();
    until(&mut dash, |v| {
        let session = v["sessionId"].as_str().unwrap_or_default().to_string();
        match v["type"].as_str() {
            Some("state_update") => {
                let snap = &v["snapshot"];
                let reg = &snap["registry"];
                assert!(reg["tools"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|t| t["inputSchema"].is_object()));
                assert!(reg["components"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|c| c["propsSchema"].is_object()));
                assert!(!reg["mcpServers"].as_array().unwrap().is_empty());
                if content_types(snap) == all_types {
                    complete_snapshot.insert(session);
                }
            }
            Some("stream_event_update") => {
                let ev = &v["event"];
                assert_eq!(ev["type"], "stream_event");
                let seq = ev["seq"].as_u64().unwrap();
                let prev = last_seq.insert(session.clone(), seq).unwrap_or(0);
                assert!(seq > prev, "seq goes up: {prev} then {seq}");
                let kind = ev["event"]["type"].as_str().unwrap().to_string();
                kinds.entry(session).or_default().insert(kind);
            }
            _ => {}
        }
        let done = demo.ids.iter().all(|id| {
            complete_snapshot.contains(id)
                && kinds
                    .get(id)
                    .is_some_and(|k| must_see.iter().all(|m| k.contains(*m)))
        });
        done.then_some(())
    })
    .await;

    // Stopping the demo: each session leaves with an orderly close, and dashboards are told.
    let ids = demo.ids.clone();
    demo.stop().await;
    let mut gone = BTreeSet::new();
    until(&mut dash, |v| {
        if v["type"] == "client_disconnected" {
            gone.insert(v["sessionId"].as_str().unwrap().to_string());
        }
        (gone.len() == ids.len()).then_some(())
    })
    .await;
    assert_eq!(gone, ids.into_iter().collect());
    relay.shutdown.cancel();
}

#[tokio::test]
async fn demo_answers_request_snapshot() {
    let relay = Relay::start(Config::default()).await;
    let (mut dash, _) = Client::dashboard(&relay.dash()).await;
    // Rate 0: no events and no run checkpoints, so the only snapshots are the one after the handshake and the
    // ones the dashboard asks for.
    let demo = start_demo(relay.url(), 1, 0.0, 2);
    let id = demo.ids[0].clone();
    connected(&mut dash, &demo.ids).await;
    let first = until(&mut dash, |v| {
        (v["type"] == "state_update").then(|| v["snapshot"]["timestamp"].as_f64().unwrap())
    })
    .await;

    dash.send_json(json!({"type": "request_client_snapshot", "sessionId": id}))
        .await;
    let answer = until(&mut dash, |v| {
        assert_ne!(
            v["type"], "stream_event_update",
            "rate 0 sends no stream events"
        );
        (v["type"] == "state_update").then(|| v["snapshot"].clone())
    })
    .await;
    assert_eq!(answer["sessionId"], id.as_str());
    assert!(answer["timestamp"].as_f64().unwrap() >= first);
    assert!(!answer["threads"].as_array().unwrap().is_empty());
    demo.stop().await;
    relay.shutdown.cancel();
}

#[tokio::test]
async fn demo_reconnects_after_the_relay_restarts() {
    let relay = Relay::start(Config::default()).await;
    let addr = relay.addr;
    let demo = start_demo(relay.url(), 2, 20.0, 3);
    let (mut dash, list) = Client::dashboard(&relay.dash()).await;
    wait_for_clients(&mut dash, list, &demo.ids).await;

    // Stop the relay and start a new one on the same port.
    relay.shutdown.cancel();
    relay.task.await.unwrap().unwrap();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let shutdown = CancellationToken::new();
    let config = Config::default();
    let token = config.auth.dashboard_token().unwrap().expose().to_string();
    let task = tokio::spawn(devrelay::run(listener, config, shutdown.clone()));

    let (mut dash, list) = Client::dashboard(&format!("ws://{addr}/?token={token}")).await;
    wait_for_clients(&mut dash, list, &demo.ids).await;
    // And the traffic flows again.
    until(&mut dash, |v| {
        (v["type"] == "stream_event_update").then_some(())
    })
    .await;

    demo.stop().await;
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

/// Waits until every id in `ids` is connected: in the dashboard's initial `list`, or announced after it.
async fn wait_for_clients(dash: &mut Client, list: ClientList, ids: &[String]) {
    let want: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    let mut have: BTreeSet<String> = list.clients.into_iter().map(|c| c.session_id).collect();
    if want.iter().all(|id| have.contains(*id)) {
        return;
    }
    until(dash, |v| {
        match v["type"].as_str() {
            Some("client_connected") => {
                have.insert(v["sessionId"].as_str().unwrap().to_string());
            }
            Some("client_disconnected") => {
                have.remove(v["sessionId"].as_str().unwrap());
            }
            _ => {}
        }
        want.iter().all(|id| have.contains(*id)).then_some(())
    })
    .await
}
