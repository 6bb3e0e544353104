//! Nothing outlives the connections that made it. Two waves of every kind of client — seed-000 and v2
//! dashboards (exact channels, wildcards, history), seed-000 and v2 sessions with snapshots and events, an agent
//! leaving a permission request unanswered, a takeover, an oversize message, a refused token, a dashboard that
//! stops reading and is closed as a slow consumer — come and go; then the relay's own counters in `/stats`
//! (connections, registry, subscription index, presence, queues, pending permissions, cached snapshots, history
//! and the channels it keeps) are back to zero once history has aged out, and the process has the open file
//! descriptors it had before the first client. The soak (`scripts/soak.sh`) judges its end the same way; this is
//! the check that fails in seconds when a path forgets to clean up. Its own test binary: the fd count is the
//! process's, so no other test may run beside it.

mod util;

use std::time::Duration;

use devrelay::Config;
use serde_json::{json, Value};
use util::{event, Client, Relay, PATIENCE, V2};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Everything `/stats` shows that a connection or a channel holds, by name; all 0 on an idle relay whose
/// history has aged out.
fn held(s: &Value) -> Vec<(&'static str, u64)> {
    let n = |v: &Value| v.as_u64().unwrap_or(u64::MAX);
    vec![
        ("gauges.connections", n(&s["gauges"]["connections"])),
        ("gauges.sdkClients", n(&s["gauges"]["sdkClients"])),
        ("gauges.agents", n(&s["gauges"]["agents"])),
        ("gauges.dashboards", n(&s["gauges"]["dashboards"])),
        ("gauges.activeChannels", n(&s["gauges"]["activeChannels"])),
        ("historyBytes", n(&s["historyBytes"])),
        ("snapshotCacheBytes", n(&s["snapshotCacheBytes"])),
        ("pendingPermissions", n(&s["pendingPermissions"])),
        ("queues.frames", n(&s["queues"]["frames"])),
        ("queues.bytes", n(&s["queues"]["bytes"])),
        ("retained.queues", n(&s["retained"]["queues"])),
        ("retained.indexChannels", n(&s["retained"]["indexChannels"])),
        ("retained.subscriptions", n(&s["retained"]["subscriptions"])),
        (
            "retained.presenceEntries",
            n(&s["retained"]["presenceEntries"]),
        ),
    ]
}

fn snapshot(session: &str, pad: usize) -> String {
    json!({
        "type": "state_snapshot", "sessionId": session, "timestamp": 1,
        "threads": [], "registry": {"tools": [], "components": []},
        "padding": "x".repeat(pad),
    })
    .to_string()
}

/// One wave: every kind of client, each doing what it does, then all of them gone.
async fn wave(relay: &Relay, round: u32) {
    let url = relay.url();
    let token = relay.token.clone().unwrap();
    let stats = |s: Value, key: &str| s[key].as_u64().unwrap();

    // A dashboard that stops reading, fed until the relay closes it as a slow consumer.
    let slow_before = stats(relay.stats().await, "slowConsumerCloses");
    let _stalled = Client::small_window_dashboard(relay).await;
    let mut feeder = Client::sdk(&url, &format!("feeder-{round}")).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut seq = 0;
    while stats(relay.stats().await, "slowConsumerCloses") == slow_before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never closed the stalled dashboard"
        );
        for _ in 0..16 {
            feeder
                .send_text(&event(&format!("feeder-{round}"), seq, 64 << 10))
                .await;
            seq += 1;
        }
    }

    // Dashboards: seed 000, and v2 on exact channels, wildcards and with history.
    let (mut legacy_dash, _) = Client::dashboard(&relay.dash()).await;
    let mut dash = V2::dashboard(&relay.dash()).await;
    for channel in [
        "global",
        "metrics",
        "sessions/*",
        "agents/*",
        "topics/*",
        "topics/leak",
    ] {
        dash.subscribe(channel).await;
    }
    let ack = dash
        .request(
            json!({"type": "subscribe", "channel": format!("sessions/v2-{round}"), "history": true}),
            "h",
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");

    // Sessions: a seed-000 SDK with a snapshot and events, taken over by its reload; a v2 session.
    let legacy_id = format!("legacy-{round}");
    let mut sdk = Client::sdk(&url, &legacy_id).await;
    sdk.send_text(&snapshot(&legacy_id, 4096)).await;
    for seq in 0..20 {
        sdk.send_text(&event(&legacy_id, seq, 256)).await;
    }
    // Too big: refused, the connection stays.
    sdk.send_text(&event(&legacy_id, 99, 2 << 20)).await;
    loop {
        let reply = sdk.recv_value().await;
        if reply["type"] == "error" {
            assert_eq!(reply["code"], "too_big", "{reply}");
            break;
        }
    }
    let mut reload = Client::sdk(&url, &legacy_id).await;
    assert_eq!(sdk.closed().await.0, 4500);
    reload.send_text(&event(&legacy_id, 100, 256)).await;

    let v2_id = format!("v2-{round}");
    let (mut v2_session, _) = V2::hello(&url, json!({"sessionId": &v2_id})).await;
    // The seed-000 bodies (without `type`) are the v2 payloads.
    let body = |text: String| {
        let mut v: Value = serde_json::from_str(&text).unwrap();
        v.as_object_mut().unwrap().remove("type");
        v
    };
    let publications = [
        ("state_snapshot", body(snapshot(&v2_id, 4096))),
        ("stream_event", body(event(&v2_id, 1, 256))),
        ("stream_event", body(event(&v2_id, 2, 256))),
    ];
    for (i, (event, data)) in publications.into_iter().enumerate() {
        let ack = v2_session
            .request(
                json!({"type": "publish", "channel": format!("sessions/{v2_id}"), "event": event, "data": data}),
                &format!("p{i}"),
            )
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
    }

    // An agent: output, and a permission request nobody answers before it leaves.
    let (mut agent, _) = V2::hello(&url, json!({"agentId": "leaky", "token": token})).await;
    let ack = agent
        .request(
            json!({"type": "publish", "channel": "agents/leaky", "event": "output",
                   "data": {"seq": 1, "stream": "pty", "encoding": "utf8", "data": "hello\r\n"}}),
            "o",
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let ack = agent
        .request(
            json!({"type": "publish", "channel": "agents/leaky", "event": "permission_request",
                   "data": {"requestId": format!("perm-{round}"), "toolName": "bash", "command": "ls", "description": "list"}}),
            "perm",
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");

    // A topic, and connections refused or that never say anything.
    let ack = dash
        .request(
            json!({"type": "publish", "channel": "topics/leak", "event": "x", "data": round}),
            "t",
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let mut wrong = Client::connect(&format!("{url}/?token=not-the-token-0123456789")).await;
    assert_eq!(wrong.closed().await.0, 4501);
    let silent = Client::connect(&url).await;

    // The seed-000 dashboard saw the sessions come.
    let _ = legacy_dash.recv_text().await;
    drop((legacy_dash, dash, reload, v2_session, agent, silent, feeder));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_a_connection_leaves_behind_is_released() {
    let relay = Relay::start(Config {
        // Short-lived history and permission requests, so that what they hold on purpose ages out quickly; a
        // small queue, so that the stalled dashboard is closed soon.
        history_max_age: Duration::from_secs(1),
        permission_timeout: Duration::from_millis(200),
        queue_bytes: 256 << 10,
        // The relay's own `metrics` channel keeps a history like any other; published once an hour, it holds
        // none during this test.
        metrics_interval: Duration::from_secs(3600),
        ..Config::default()
    })
    .await;
    let idle = relay.stats().await;
    let zero: Vec<(&str, u64)> = held(&idle).into_iter().map(|(k, _)| (k, 0)).collect();
    assert_eq!(held(&idle), zero, "an idle relay holds nothing: {idle}");
    let baseline_fds = open_fds();

    for round in 0..2 {
        wave(&relay, round).await;
        // Everything let go, once history and the unanswered request have aged out.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let s = relay.stats().await;
            let fds = open_fds();
            if held(&s) == zero && fds <= baseline_fds {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: still held after every client left: {:?}; open fds {fds} (before: {baseline_fds})",
                held(&s).into_iter().filter(|(_, v)| *v != 0).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let s = relay.stats().await;
    assert!(s["slowConsumerCloses"].as_u64().unwrap() >= 2, "{s}");
    assert!(s["sessionsReplaced"].as_u64().unwrap() >= 2, "{s}");
    assert!(s["tooBig"].as_u64().unwrap() >= 2, "{s}");
    relay.shutdown.cancel();
}
