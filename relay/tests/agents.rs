//! Agents on the relay, over real sockets at the wire level: publisher `seq` (resends dropped, across a
//! reconnect), routing of `command` / `cancel` / `input` / `resize` with their typed errors, permission requests
//! (first answer wins, routed to the requester only, resolved for everyone, timeout, single use, limits), and
//! the agent scrollback a late dashboard gets.

mod util;

use devrelay::Config;
use serde_json::{json, Value};
use util::{Relay, V2};

fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or_default()
}

fn output(seq: u64, text: &str) -> Value {
    json!({"seq": seq, "stream": "pty", "encoding": "utf8", "data": text})
}

async fn agent(relay: &Relay, id: &str, capabilities: Value) -> (V2, Value) {
    V2::hello(
        &relay.dash(),
        json!({"agentId": id, "name": format!("agent {id}"), "capabilities": capabilities}),
    )
    .await
}

/// A dashboard with a name (shown as `from` / `by`), subscribed to `channel`; returns it and its clientId.
async fn dashboard(relay: &Relay, name: &str, channel: &str) -> (V2, String) {
    let (mut d, connected) = V2::hello(&relay.dash(), json!({"name": name})).await;
    d.subscribe(channel).await;
    (d, connected["clientId"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn resends_by_seq_are_dropped_across_a_reconnect() {
    let relay = Relay::start(Config::default()).await;
    let (mut dash, _) = dashboard(&relay, "d", "agents/a").await;
    let (mut a, connected) = agent(&relay, "a", json!({})).await;
    assert!(connected.get("lastSeq").is_none(), "{connected}");
    for seq in 1..=3u64 {
        let ack = a
            .request(
                json!({"type": "publish", "channel": "agents/a", "event": "output", "data": output(seq, "x"), "seq": seq}),
                &format!("p{seq}"),
            )
            .await;
        assert_eq!(ack["offset"], seq, "{ack}");
    }
    // seq is for the publisher's own channel, and positive.
    for (channel, seq) in [("topics/t", 1), ("agents/a", 0)] {
        let e = a
            .request(
                json!({"type": "publish", "channel": channel, "event": "log", "seq": seq}),
                "bad",
            )
            .await;
        assert_eq!(code(&e), "INVALID_MESSAGE", "{e}");
    }
    // The agent's connection drops; it comes back and learns where the relay stands.
    drop(a);
    let (mut a, connected) = agent(&relay, "a", json!({})).await;
    assert_eq!(connected["lastSeq"], json!({"agents/a": 3}), "{connected}");
    // It resends what it was not sure of (2 and 3), then goes on with 4.
    for seq in [2u64, 3] {
        let ack = a
            .request(
                json!({"type": "publish", "channel": "agents/a", "event": "output", "data": output(seq, "x"), "seq": seq}),
                &format!("r{seq}"),
            )
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        assert_eq!(ack["duplicate"], true, "{ack}");
        assert!(ack.get("offset").is_none());
    }
    a.request(
        json!({"type": "publish", "channel": "agents/a", "event": "output", "data": output(4, "x"), "seq": 4}),
        "p4",
    )
    .await;
    // The dashboard saw each seq exactly once, in order, on one stream (same epoch, offsets 1..=4).
    let mut seen = Vec::new();
    let mut epoch = None;
    while seen.len() < 4 {
        let p = dash.publication().await;
        if p["channel"] != "agents/a" {
            continue;
        }
        seen.push((
            p["offset"].as_u64().unwrap(),
            p["data"]["seq"].as_u64().unwrap(),
        ));
        let e = p["epoch"].as_str().unwrap().to_string();
        assert_eq!(epoch.get_or_insert(e.clone()), &e);
    }
    assert_eq!(seen, [(1, 1), (2, 2), (3, 3), (4, 4)]);
    let (_, health) = relay.get("/health", &[]).await;
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["agents"], 1, "{health}");
    relay.shutdown.cancel();
}

#[tokio::test]
async fn commands_are_routed_to_the_agent_with_typed_errors() {
    let relay = Relay::start(Config::default()).await;
    let (mut a, _) = agent(
        &relay,
        "runner",
        json!({"commands": true, "allow": ["ls ..."], "input": false}),
    )
    .await;
    let (mut b, _) = agent(&relay, "shell", json!({"commands": true, "input": true})).await;
    let (mut d, _) = V2::hello(&relay.dash(), json!({"name": "alice"})).await;
    let (_, presence) = {
        let ack = d.subscribe("agents/*").await;
        (0, ack["presence"].clone())
    };
    let runner = presence
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "runner")
        .unwrap()
        .clone();
    assert_eq!(runner["capabilities"]["allow"], json!(["ls ..."]));

    let ack = d
        .request(
            json!({"type": "command", "agentId": "runner", "command": "ls", "args": ["-l"], "cwd": "/tmp"}),
            "c1",
        )
        .await;
    assert_eq!(
        (ack["type"].as_str(), ack["channel"].as_str()),
        (Some("ack"), Some("agents/runner"))
    );
    let got = a.until(|m| m["type"] == "command").await;
    assert_eq!(
        (&got["id"], &got["command"], &got["args"], &got["cwd"]),
        (&json!("c1"), &json!("ls"), &json!(["-l"]), &json!("/tmp"))
    );
    assert_eq!(got["from"]["name"], "alice");
    assert!(got["from"]["clientId"].is_string());

    d.send(json!({"type": "cancel", "id": "c1", "agentId": "runner"}))
        .await;
    let got = a.until(|m| m["type"] == "cancel").await;
    assert_eq!(got["id"], "c1");

    for (msg, want) in [
        (
            json!({"type": "command", "agentId": "nobody", "command": "ls"}),
            "UNKNOWN_AGENT",
        ),
        (
            json!({"type": "command", "agentId": "runner", "command": ""}),
            "INVALID_MESSAGE",
        ),
        (
            json!({"type": "cancel", "agentId": "nobody"}),
            "UNKNOWN_AGENT",
        ),
        (
            json!({"type": "input", "agentId": "runner", "data": "q"}),
            "NOT_INTERACTIVE",
        ),
        (
            json!({"type": "resize", "agentId": "runner", "cols": 80, "rows": 24}),
            "NOT_INTERACTIVE",
        ),
        (
            json!({"type": "resize", "agentId": "shell", "cols": 0, "rows": 24}),
            "INVALID_MESSAGE",
        ),
        (
            json!({"type": "input", "agentId": "nobody", "data": "q"}),
            "UNKNOWN_AGENT",
        ),
    ] {
        // `command` / `cancel` echo their own id; the others take a request id.
        let mut msg = msg;
        let id = "e1";
        if msg["type"] == "command" || msg["type"] == "cancel" {
            msg["id"] = id.into();
            d.send(msg.clone()).await;
            let e = d.until(|m| m["id"] == id && m["type"] == "error").await;
            assert_eq!(code(&e), want, "{msg}: {e}");
        } else {
            let e = d.request(msg.clone(), id).await;
            assert_eq!(code(&e), want, "{msg}: {e}");
        }
    }
    // An interactive agent gets keystrokes and sizes.
    let ack = d
        .request(
            json!({"type": "input", "agentId": "shell", "data": "ls\r"}),
            "i1",
        )
        .await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(b.until(|m| m["type"] == "input").await["data"], "ls\r");
    d.send(json!({"type": "resize", "agentId": "shell", "cols": 100, "rows": 30}))
        .await;
    let r = b.until(|m| m["type"] == "resize").await;
    assert_eq!(
        (r["cols"].as_u64(), r["rows"].as_u64()),
        (Some(100), Some(30))
    );
    // Only dashboards command agents: a session (no token, on loopback) is refused.
    let (mut sdk, _) = V2::hello(&relay.url(), json!({"sessionId": "s1"})).await;
    let e = sdk
        .request(
            json!({"type": "command", "agentId": "runner", "command": "ls"}),
            "x",
        )
        .await;
    assert_eq!(code(&e), "FORBIDDEN", "{e}");
    let e = sdk
        .request(
            json!({"type": "permission_response", "requestId": "r", "allowed": true}),
            "y",
        )
        .await;
    assert_eq!(code(&e), "FORBIDDEN", "{e}");
    relay.shutdown.cancel();
}

fn permission(request_id: &str, timeout_ms: Option<u64>) -> Value {
    let mut data = json!({"requestId": request_id, "toolName": "bash", "command": "rm -rf target", "description": "clean"});
    if let Some(t) = timeout_ms {
        data["timeoutMs"] = t.into();
    }
    json!({"type": "publish", "channel": "agents/a", "event": "permission_request", "data": data})
}

#[tokio::test]
async fn the_first_permission_answer_wins_and_everyone_sees_it_resolved() {
    let relay = Relay::start(Config::default()).await;
    let (mut a, _) = agent(&relay, "a", json!({})).await;
    let (mut d1, id1) = dashboard(&relay, "one", "agents/a").await;
    let (mut d2, _) = dashboard(&relay, "two", "agents/a").await;

    let ack = a.request(permission("perm-1", None), "p").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    for d in [&mut d1, &mut d2] {
        let p = d.publication().await;
        assert_eq!(
            (p["event"].as_str(), p["data"]["requestId"].as_str()),
            (Some("permission_request"), Some("perm-1"))
        );
    }
    let ack = d1
        .request(
            json!({"type": "permission_response", "requestId": "perm-1", "allowed": true, "alwaysAllow": true}),
            "r1",
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    // Only the requester gets the answer as a message ...
    let answer = a.until(|m| m["type"] == "permission_response").await;
    assert_eq!(
        (
            &answer["requestId"],
            &answer["allowed"],
            &answer["alwaysAllow"],
            &answer["by"]["clientId"]
        ),
        (&json!("perm-1"), &json!(true), &json!(true), &json!(id1))
    );
    // ... and every dashboard sees it resolved, by whom, when.
    for d in [&mut d1, &mut d2] {
        let p = d.until(|m| m["event"] == "permission_resolved").await;
        assert_eq!(p["data"]["allowed"], true);
        assert_eq!(p["data"]["by"]["name"], "one");
        assert!(p["data"]["timestamp"].as_f64().unwrap() > 0.0);
    }
    // Single use: the second answer is refused, and an unknown id too.
    let e = d2
        .request(
            json!({"type": "permission_response", "requestId": "perm-1", "allowed": false}),
            "r2",
        )
        .await;
    assert_eq!(code(&e), "ALREADY_ANSWERED", "{e}");
    let e = d2
        .request(
            json!({"type": "permission_response", "requestId": "never", "allowed": true}),
            "r3",
        )
        .await;
    assert_eq!(code(&e), "UNKNOWN_REQUEST", "{e}");
    // Nobody but the relay may publish a resolution.
    let e = a
        .request(
            json!({"type": "publish", "channel": "agents/a", "event": "permission_resolved", "data": {"requestId": "x", "allowed": true, "timestamp": 1}}),
            "spoof",
        )
        .await;
    assert_eq!(code(&e), "FORBIDDEN", "{e}");
    relay.shutdown.cancel();
}

#[tokio::test]
async fn an_unanswered_permission_request_is_denied_at_its_timeout() {
    let relay = Relay::start(Config {
        max_pending_permissions_per_channel: 2,
        ..Config::default()
    })
    .await;
    let (mut a, _) = agent(&relay, "a", json!({})).await;
    let (mut d, _) = dashboard(&relay, "d", "agents/a").await;
    a.request(permission("quick", Some(50)), "p").await;
    let answer = a.until(|m| m["type"] == "permission_response").await;
    assert_eq!(answer["allowed"], false);
    assert!(answer.get("by").is_none());
    assert!(
        answer["reason"].as_str().unwrap().contains("50 ms"),
        "{answer}"
    );
    let p = d.until(|m| m["event"] == "permission_resolved").await;
    assert_eq!(
        (
            p["data"]["requestId"].as_str(),
            p["data"]["allowed"].as_bool()
        ),
        (Some("quick"), Some(false))
    );
    let e = d
        .request(
            json!({"type": "permission_response", "requestId": "quick", "allowed": true}),
            "late",
        )
        .await;
    assert_eq!(code(&e), "ALREADY_ANSWERED");
    // The table is bounded per channel.
    for id in ["w1", "w2"] {
        assert_eq!(a.request(permission(id, None), id).await["type"], "ack");
    }
    let e = a.request(permission("w3", None), "w3").await;
    assert_eq!(code(&e), "TOO_MANY_REQUESTS", "{e}");
    relay.shutdown.cancel();
}

#[tokio::test]
async fn a_late_dashboard_gets_the_scrollback_even_after_the_agent_left() {
    let relay = Relay::start(Config {
        history_messages: 4,
        ..Config::default()
    })
    .await;
    let (mut a, _) = agent(&relay, "a", json!({})).await;
    for seq in 1..=6u64 {
        a.request(
            json!({"type": "publish", "channel": "agents/a", "event": "output", "data": output(seq, &format!("line {seq}\r\n")), "seq": seq}),
            &format!("p{seq}"),
        )
        .await;
    }
    // A dashboard that asks for history gets the newest four at once, right after its ack.
    let (mut d, _) = V2::hello(&relay.dash(), json!({})).await;
    let ack = d
        .request(
            json!({"type": "subscribe", "channel": "agents/a", "history": true}),
            "s",
        )
        .await;
    assert_eq!(
        (ack["offset"].as_u64(), ack["replayed"].as_u64()),
        (Some(6), Some(4)),
        "{ack}"
    );
    let mut offsets = Vec::new();
    for _ in 0..4 {
        offsets.push(d.next().await["offset"].as_u64().unwrap());
    }
    assert_eq!(offsets, [3, 4, 5, 6]);
    // Then live publications follow, without a gap.
    a.request(
        json!({"type": "publish", "channel": "agents/a", "event": "output", "data": output(7, "live"), "seq": 7}),
        "p7",
    )
    .await;
    assert_eq!(d.next().await["offset"], 7);
    // The agent leaves; its channel's history (its scrollback) stays, so a dashboard opening it now still sees
    // what it printed last.
    drop(a);
    let (mut late, _) = V2::hello(&relay.dash(), json!({})).await;
    let ack = late
        .request(
            json!({"type": "subscribe", "channel": "agents/a", "history": true}),
            "s",
        )
        .await;
    assert_eq!(ack["replayed"], 4, "{ack}");
    assert_eq!(late.next().await["data"]["seq"], 4);
    // Without `history` nothing is replayed.
    let (mut plain, _) = V2::hello(&relay.dash(), json!({})).await;
    let ack = plain.subscribe("agents/a").await;
    assert!(ack.get("replayed").is_none(), "{ack}");
    plain.send(json!({"type": "ping"})).await;
    assert_eq!(plain.next().await["type"], "pong");
    relay.shutdown.cancel();
}

#[tokio::test]
async fn a_channel_without_history_is_forgotten_when_its_agent_leaves() {
    let relay = Relay::start(Config {
        history_messages: 0,
        ..Config::default()
    })
    .await;
    let (mut d, _) = dashboard(&relay, "d", "global").await;
    let (mut a, _) = agent(&relay, "a", json!({})).await;
    a.request(
        json!({"type": "publish", "channel": "agents/a", "event": "output", "data": output(1, "x"), "seq": 1}),
        "p",
    )
    .await;
    drop(a);
    // Once the relay saw it go, a new connection starts a fresh stream: nothing to dedup against.
    d.until(|m| m["event"] == "agent.disconnected").await;
    let (_, connected) = agent(&relay, "a", json!({})).await;
    assert!(connected.get("lastSeq").is_none(), "{connected}");
    relay.shutdown.cancel();
}

#[tokio::test]
async fn health_and_the_metrics_channel_count_agents() {
    let relay = Relay::start(Config {
        metrics_interval: std::time::Duration::from_millis(100),
        ..Config::default()
    })
    .await;
    let (mut dash, _) = dashboard(&relay, "d", "metrics").await;
    let (a, _) = agent(&relay, "m1", json!({})).await;
    let (_b, _) = agent(&relay, "m2", json!({})).await;
    let m = dash
        .until(|m| m["event"] == "metric.update" && m["data"]["activeAgents"] == 2)
        .await;
    // Agents are agents, not sessions.
    assert_eq!(m["data"]["activeSessions"], 0, "{m}");
    let (_, h) = relay.get("/health", &[]).await;
    let h: Value = serde_json::from_str(&h).unwrap();
    assert_eq!(
        (h["agents"].as_u64(), h["sdkClients"].as_u64()),
        (Some(2), Some(0)),
        "{h}"
    );
    // One leaves: both count it gone.
    drop(a);
    dash.until(|m| m["event"] == "metric.update" && m["data"]["activeAgents"] == 1)
        .await;
    let (_, h) = relay.get("/health", &[]).await;
    let h: Value = serde_json::from_str(&h).unwrap();
    assert_eq!(h["agents"], 1, "{h}");
    relay.shutdown.cancel();
}
