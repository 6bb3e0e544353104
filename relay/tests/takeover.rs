//! Duplicate ids over real sockets, with real processes: two demo SDKs with one session id that reconnect
//! whatever the close code says (as the Tambo SDK's socket library does) would take turns for ever; the relay
//! notices, keeps one, refuses the other (4503) for as long as it keeps trying, and tells dashboards once.

mod util;

use std::process::{Child, Command, Stdio};

use devrelay::Config;
use serde_json::Value;
use util::{Client, Relay, PATIENCE, V2};

/// A child process killed when dropped (the test may fail half way).
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn demo(url: &str, seed: u64) -> Proc {
    Proc(
        Command::new(env!("CARGO_BIN_EXE_devrelay"))
            .args(["demo", "--url", url, "--sessions", "1", "--rate", "0"])
            .args(["--seed", &seed.to_string(), "--reconnect-always"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_live_sdks_with_one_session_id_converge_on_one_and_dashboards_hear_it_once() {
    let relay = Relay::start(Config::default()).await;
    let mut dash = V2::dashboard(&relay.dash()).await;
    dash.subscribe("global").await;
    let (mut legacy, _) = Client::dashboard(&relay.dash()).await;
    let id = "demo-004d-1"; // --seed 77
    let _a = demo(&relay.url(), 77);
    let _b = demo(&relay.url(), 77);

    // They replace each other a few times; then the relay settles and says so, once.
    let conflict = dash.until(|m| m["event"] == "session.conflict").await;
    assert_eq!(conflict["data"]["id"], id, "{conflict}");
    assert!(
        conflict["data"]["message"]
            .as_str()
            .unwrap()
            .contains("kept replacing each other"),
        "{conflict}"
    );
    // The other keeps coming back (it ignores close codes) and keeps being refused.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let refused = relay.stats().await["takeoversRefused"].as_u64().unwrap();
        if refused >= 3 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "refused {refused}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Meanwhile the kept one stayed: between the conflict and a marker connecting now, no dashboard saw the id
    // leave or come again.
    let _marker = Client::sdk(&relay.url(), "zz-marker").await;
    let mut after = Vec::new();
    loop {
        let m = dash.next().await;
        if m["event"] == "session.connected" && m["data"]["id"] == "zz-marker" {
            break;
        }
        after.push(m);
    }
    assert!(
        after.iter().all(|m| m["data"]["id"] != id
            || !["session.disconnected", "session.connected"]
                .contains(&m["event"].as_str().unwrap_or(""))),
        "the kept session moved after the conflict: {after:?}"
    );
    let mut legacy_seen: Vec<Value> = Vec::new();
    loop {
        let m = legacy.recv_value().await;
        if m["type"] == "client_connected" && m["sessionId"] == "zz-marker" {
            break;
        }
        legacy_seen.push(m);
    }
    let conflicts: Vec<usize> = legacy_seen
        .iter()
        .enumerate()
        .filter(|(_, m)| m["type"] == "error" && m["code"] == "id_conflict")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(conflicts.len(), 1, "told once: {legacy_seen:?}");
    assert!(
        legacy_seen[conflicts[0]..]
            .iter()
            .all(|m| m["type"] == "error" || m["sessionId"] != id),
        "the seed-000 dashboard saw the kept session move: {legacy_seen:?}"
    );
    assert_eq!(
        relay.stats().await["gauges"]["sdkClients"],
        2,
        "the kept one and the marker"
    );
    relay.shutdown.cancel();
}

/// One attempt of a reconnecting agent: how it ended.
#[derive(Debug)]
enum Attempt {
    /// It got `connected`, then was closed with this code.
    Held(u16),
    /// It got this error, then this close code.
    Refused(String, u16),
}

/// An agent that connects as `agents/twin` and reconnects whatever the close code, reporting each attempt.
fn reconnecting_agent(url: String, tx: tokio::sync::mpsc::UnboundedSender<Attempt>) {
    tokio::spawn(async move {
        loop {
            let mut a = V2::connect(&url).await;
            a.send(serde_json::json!({"type": "hello", "agentId": "twin"}))
                .await;
            let first = a.next().await;
            let attempt = if first["type"] == "connected" {
                Attempt::Held(a.c.closed().await.0)
            } else {
                let code = first["code"].as_str().unwrap_or_default().to_string();
                Attempt::Refused(code, a.c.closed().await.0)
            };
            if tx.send(attempt).is_err() {
                return;
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_live_agents_with_one_id_converge_and_the_kept_one_works() {
    let relay = Relay::start(Config::default()).await;
    let mut dash = V2::dashboard(&relay.dash()).await;
    dash.subscribe("global").await;
    let (tx, mut attempts) = tokio::sync::mpsc::unbounded_channel();
    reconnecting_agent(relay.dash(), tx.clone());
    reconnecting_agent(relay.dash(), tx);

    let conflict = dash.until(|m| m["event"] == "agent.conflict").await;
    assert_eq!(conflict["data"]["id"], "twin", "{conflict}");
    assert_eq!(conflict["data"]["kind"], "agent", "{conflict}");
    // Replacements (4500) first, then only refusals: id_conflict and 4503, over and over.
    let mut refused = 0;
    while refused < 5 {
        match attempts.recv().await.unwrap() {
            Attempt::Held(code) => {
                assert_eq!(refused, 0, "a takeover after the first refusal");
                assert_eq!(code, 4500);
            }
            Attempt::Refused(code, close) => {
                assert_eq!((code.as_str(), close), ("ID_CONFLICT", 4503));
                refused += 1;
            }
        }
    }
    let _marker = V2::hello(&relay.dash(), serde_json::json!({"agentId": "zz-marker"})).await;
    let mut after = Vec::new();
    loop {
        let m = dash.next().await;
        if m["event"] == "agent.connected" && m["data"]["id"] == "zz-marker" {
            break;
        }
        after.push(m);
    }
    assert!(
        after.iter().all(|m| m["data"]["id"] != "twin"),
        "dashboards heard of twin again after the conflict: {after:?}"
    );
    assert_eq!(
        relay.stats().await["gauges"]["agents"],
        2,
        "the kept one and the marker"
    );
    let bearer = relay.bearer();
    let headers: Vec<(&str, &str)> = bearer.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let metrics = relay.get("/metrics", &headers).await.1;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("devrelay_takeovers_refused_total "))
        .unwrap_or_else(|| panic!("{metrics}"));
    let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(n >= 5, "{line}");
    relay.shutdown.cancel();
}
