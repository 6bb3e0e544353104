//! Recovery over real sockets: a dashboard whose connection is cut mid-stream resumes from its last position
//! and gets every publication exactly once, in order, while publishing goes on; beyond the history bound it is
//! told so and gets the session's state from the snapshot cache; a relay restart changes the epoch; late
//! subscribers get the latest snapshot at once (seed-000 dashboards too); retained history on request.

mod util;

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{json, Value};
use util::{Client, Proxy, Relay, V2};

fn event(session: &str, seq: u64) -> String {
    format!(
        r#"{{"type":"stream_event","sessionId":"{session}","timestamp":1,"threadId":"t","event":{{"type":"TEXT_MESSAGE_CONTENT","delta":"d"}},"seq":{seq}}}"#
    )
}

fn snapshot(session: &str, marker: &str) -> String {
    json!({"type": "state_snapshot", "sessionId": session, "timestamp": 1, "threads": [{"id": marker}],
           "registry": {"components": [], "tools": []}})
    .to_string()
}

/// Subscribes with `since` and returns the ack.
async fn resume(c: &mut V2, channel: &str, offset: u64, epoch: &str) -> Value {
    c.request(
        json!({"type": "subscribe", "channel": channel, "since": {"offset": offset, "epoch": epoch}}),
        "resume",
    )
    .await
}

/// The SDK's `seq` inside a publication of its `stream_event`.
fn seq_of(p: &Value) -> u64 {
    p["data"]["seq"].as_u64().unwrap()
}

#[tokio::test]
async fn a_cut_dashboard_resumes_with_every_message_exactly_once_while_publishing_goes_on() {
    let relay = Relay::start(Default::default()).await;
    let proxy = Proxy::start(relay.addr).await;
    let mut dash = V2::dashboard(&relay.with_token(&format!("{}/", proxy.url()))).await;
    let ack = dash.subscribe("sessions/live").await;
    let epoch = ack["epoch"].as_str().unwrap().to_string();
    let mut sdk = Client::sdk(&relay.url(), "live").await;
    let total = 600u64;
    // The SDK publishes without pause, through the cut and the resume.
    let publisher = tokio::spawn(async move {
        for seq in 1..=total {
            sdk.send_text(&event("live", seq)).await;
            if seq % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        sdk
    });
    let mut last = 0;
    let mut seen = Vec::new();
    while last < 100 {
        let p = dash.publication().await;
        last = p["offset"].as_u64().unwrap();
        seen.push(seq_of(&p));
    }
    proxy.cut();
    // The cut connection dies; a new one resumes from the last offset it applied.
    let mut dash = V2::dashboard(&relay.with_token(&format!("{}/", proxy.url()))).await;
    let ack = resume(&mut dash, "sessions/live", last, &epoch).await;
    assert_eq!(ack["recovered"], true, "{ack}");
    let replayed = ack["replayed"].as_u64().unwrap();
    eprintln!("replayed {replayed} publications after offset {last}");
    while seen.len() < total as usize {
        let p = dash.publication().await;
        let offset = p["offset"].as_u64().unwrap();
        assert_eq!(offset, last + 1, "a gap or a duplicate after the resume");
        last = offset;
        seen.push(seq_of(&p));
    }
    assert_eq!(
        seen,
        (1..=total).collect::<Vec<_>>(),
        "every message exactly once, in order"
    );
    publisher.await.unwrap();
}

#[tokio::test]
async fn too_far_behind_says_so_and_the_snapshot_comes_with_the_ack() {
    let relay = Relay::start(devrelay::Config {
        history_messages: 10,
        ..Default::default()
    })
    .await;
    let mut sdk = Client::sdk(&relay.url(), "far").await;
    let mut dash = V2::dashboard(&relay.dash()).await;
    let epoch = dash.subscribe("sessions/far").await["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    sdk.send_text(&snapshot("far", "state-1")).await;
    for seq in 1..=30 {
        sdk.send_text(&event("far", seq)).await;
    }
    let p = dash
        .until(|p| p.get("type").is_none() && p["data"]["seq"] == 30)
        .await;
    let top = p["offset"].as_u64().unwrap();
    dash.request(
        json!({"type": "unsubscribe", "channel": "sessions/far"}),
        "u",
    )
    .await;
    let ack = resume(&mut dash, "sessions/far", 1, &epoch).await;
    assert_eq!(
        ack["recovered"], false,
        "never a partial replay called recovered: {ack}"
    );
    assert!(
        ack["reason"].as_str().unwrap().contains("too far behind"),
        "{ack}"
    );
    assert_eq!(ack["replayed"], 0);
    assert_eq!(ack["offset"], top);
    // The state to resynchronise from: the session's latest snapshot, with its age.
    assert_eq!(ack["snapshot"]["event"], "state_snapshot", "{ack}");
    assert_eq!(ack["snapshot"]["data"]["threads"][0]["id"], "state-1");
    assert!(ack["snapshotAgeMs"].is_u64());
    // And live publications follow the ack without a gap.
    sdk.send_text(&event("far", 31)).await;
    let next = dash.publication().await;
    assert_eq!(next["offset"], top + 1);
}

#[tokio::test]
async fn a_replay_larger_than_the_queue_takes_is_refused_not_attempted() {
    let relay = Relay::start(devrelay::Config {
        queue_messages: 20,
        ..Default::default()
    })
    .await;
    let (mut pubr, _) = V2::hello(&relay.dash(), json!({})).await;
    let mut sub = V2::dashboard(&relay.dash()).await;
    let epoch = sub.subscribe("topics/q").await["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    // A first publication: the channel now has history, so it lives on without subscribers.
    pubr.request(
        json!({"type": "publish", "channel": "topics/q", "event": "first"}),
        "f",
    )
    .await;
    sub.request(json!({"type": "unsubscribe", "channel": "topics/q"}), "u")
        .await;
    for i in 0..15 {
        pubr.send(json!({"type": "publish", "channel": "topics/q", "event": "e", "data": i}))
            .await;
    }
    pubr.request(
        json!({"type": "publish", "channel": "topics/q", "event": "last"}),
        "p",
    )
    .await;
    let ack = resume(&mut sub, "topics/q", 0, &epoch).await;
    assert_eq!(ack["recovered"], false, "{ack}");
    assert!(ack["reason"].as_str().unwrap().contains("queue"), "{ack}");
    assert_eq!(relay.stats().await["slowConsumerCloses"], 0);
}

/// Resumes of several channels read in one burst (one cork): each replay fits half the queue, together they
/// exceed it. The burst's replays are written out as the queue fills instead of being held for the cork's lift,
/// which closed the dashboard as a slow consumer (bench/run.sh's reconnect storm, scenario h, found it).
#[tokio::test]
async fn resumes_of_several_channels_in_one_burst_replay_more_than_the_queue_holds() {
    let relay = Relay::start(devrelay::Config {
        queue_messages: 40,
        ..Default::default()
    })
    .await;
    let sessions = ["b1", "b2", "b3", "b4"];
    let per = 15u64; // ≤ queue_messages / 2: each replay alone is allowed
    let mut watcher = V2::dashboard(&relay.dash()).await;
    let mut dash = V2::dashboard(&relay.dash()).await;
    let mut epochs = Vec::new();
    for s in sessions {
        watcher.subscribe(&format!("sessions/{s}")).await;
        let ack = dash.subscribe(&format!("sessions/{s}")).await;
        epochs.push(ack["epoch"].as_str().unwrap().to_string());
        dash.request(
            json!({"type": "unsubscribe", "channel": format!("sessions/{s}")}),
            &format!("u:{s}"),
        )
        .await;
    }
    let mut sdks = Vec::new();
    for s in sessions {
        let mut sdk = Client::sdk(&relay.url(), s).await;
        for seq in 1..=per {
            sdk.send_text(&event(s, seq)).await;
        }
        sdks.push(sdk);
    }
    // Every event is in its channel's history once the watcher has seen the last of each session.
    let mut done = 0;
    while done < sessions.len() {
        let p = watcher.publication().await;
        if seq_of(&p) == per {
            done += 1;
        }
    }
    // The four resumes in one write, so that the relay reads them in one burst.
    for (s, epoch) in sessions.iter().zip(&epochs) {
        let msg = json!({"type": "subscribe", "channel": format!("sessions/{s}"), "id": format!("r:{s}"),
                         "since": {"offset": 0, "epoch": epoch}});
        dash.c
            .ws
            .feed(tokio_tungstenite::tungstenite::Message::text(
                msg.to_string(),
            ))
            .await
            .unwrap();
    }
    dash.c.ws.flush().await.unwrap();
    let mut acks = 0;
    let mut seen: std::collections::HashMap<String, Vec<u64>> = Default::default();
    while acks < sessions.len()
        || seen.values().map(Vec::len).sum::<usize>() < sessions.len() * per as usize
    {
        let m = dash.next().await;
        if m["type"] == "ack" {
            assert_eq!(m["recovered"], true, "{m}");
            assert_eq!(m["replayed"], per, "{m}");
            acks += 1;
        } else {
            assert!(m.get("type").is_none(), "only acks and publications: {m}");
            seen.entry(m["channel"].as_str().unwrap().to_string())
                .or_default()
                .push(seq_of(&m));
        }
    }
    for s in sessions {
        assert_eq!(
            seen[&format!("sessions/{s}")],
            (1..=per).collect::<Vec<_>>(),
            "{s}: every event once, in order"
        );
    }
    assert_eq!(relay.stats().await["slowConsumerCloses"], 0);
}

#[tokio::test]
async fn a_relay_restart_changes_the_epoch() {
    let first = Relay::start(Default::default()).await;
    let addr = first.addr;
    let mut dash = V2::dashboard(&first.dash()).await;
    let ack = dash.subscribe("topics/r").await;
    let epoch = ack["epoch"].as_str().unwrap().to_string();
    first.shutdown.cancel();
    let _ = first.task.await;
    // The same address again: a restarted relay.
    let listener = loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => break l,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let config = devrelay::Config::default();
    let token = config.auth.dashboard_token().unwrap().expose().to_string();
    let _second = tokio::spawn(devrelay::run(listener, config, shutdown.clone()));
    let mut dash = V2::dashboard(&format!("ws://{addr}/?token={token}")).await;
    let ack = resume(&mut dash, "topics/r", 0, &epoch).await;
    assert_eq!(ack["recovered"], false);
    assert!(
        ack["reason"].as_str().unwrap().contains("epoch changed"),
        "{ack}"
    );
    assert_ne!(ack["epoch"], epoch.as_str());
    shutdown.cancel();
}

/// A session's stream holds its epoch as a number from the moment the session joins (not a string made on first
/// use): the epoch an idle session's watcher is told before anything was published is the one its publications
/// carry, across the session reconnecting, and a resume from it recovers.
#[tokio::test]
async fn an_idle_sessions_epoch_is_the_one_its_first_publication_carries() {
    let relay = Relay::start(Default::default()).await;
    let sdk = Client::sdk(&relay.url(), "quiet").await;
    let mut dash = V2::dashboard(&relay.dash()).await;
    dash.subscribe("global").await;
    let ack = dash.subscribe("sessions/quiet").await;
    assert_eq!(ack["offset"], 0, "{ack}");
    let epoch = ack["epoch"].as_str().unwrap().to_string();
    assert!(
        epoch.len() == 16
            && epoch
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "16 lowercase hex digits: {epoch}"
    );
    // The session leaves and comes back; its watched channel lives on, and so does its epoch.
    drop(sdk);
    dash.until(|m| m["event"] == "session.disconnected" && m["data"]["id"] == "quiet")
        .await;
    let mut sdk = Client::sdk(&relay.url(), "quiet").await;
    sdk.send_text(&event("quiet", 1)).await;
    let p = dash
        .until(|m| m.get("type").is_none() && m["channel"] == "sessions/quiet")
        .await;
    assert_eq!(
        (p["offset"].as_u64(), p["epoch"].as_str()),
        (Some(1), Some(epoch.as_str())),
        "{p}"
    );
    let mut late = V2::dashboard(&relay.dash()).await;
    let ack = resume(&mut late, "sessions/quiet", 0, &epoch).await;
    assert_eq!(
        (ack["recovered"].as_bool(), ack["replayed"].as_u64()),
        (Some(true), Some(1)),
        "{ack}"
    );
    assert_eq!(ack["epoch"], epoch.as_str());
    let replayed = late.publication().await;
    assert_eq!(replayed, p, "the replay is the publication itself");
}

#[tokio::test]
async fn late_dashboards_get_the_latest_snapshot_at_once_in_both_protocols() {
    let relay = Relay::start(Default::default()).await;
    let mut sdk = Client::sdk(&relay.url(), "cached").await;
    let mut other = Client::sdk(&relay.url(), "bare").await;
    let mut watch = V2::dashboard(&relay.dash()).await;
    watch.subscribe("sessions/cached").await;
    sdk.send_text(&snapshot("cached", "old")).await;
    sdk.send_text(&snapshot("cached", "newest")).await;
    sdk.send_text(&event("cached", 1)).await;
    watch.until(|p| p["event"] == "stream_event").await;
    other.send_text(&event("bare", 1)).await;

    // v2: the ack carries the newest snapshot, without a round trip to the SDK.
    let mut late = V2::dashboard(&relay.dash()).await;
    let ack = late.subscribe("sessions/cached").await;
    assert_eq!(
        ack["snapshot"]["data"]["threads"][0]["id"], "newest",
        "{ack}"
    );
    assert!(ack["snapshot"]["offset"].as_u64().unwrap() < ack["offset"].as_u64().unwrap());
    let ack = late.subscribe("sessions/bare").await;
    assert!(
        ack.get("snapshot").is_none(),
        "no snapshot, none cached: {ack}"
    );

    // Seed 000: the cached state_update right after client_list, before anything live.
    let (mut legacy, list) = Client::dashboard(&relay.dash()).await;
    assert_eq!(list.clients.len(), 2);
    let update = legacy.recv_value().await;
    assert_eq!(update["type"], "state_update");
    assert_eq!(
        (
            update["sessionId"].as_str(),
            update["snapshot"]["threads"][0]["id"].as_str()
        ),
        (Some("cached"), Some("newest"))
    );
    sdk.send_text(&event("cached", 2)).await;
    assert_eq!(legacy.recv_value().await["type"], "stream_event_update");

    // When the session leaves, its cache goes with it.
    drop(sdk);
    let deadline = std::time::Instant::now() + util::PATIENCE;
    while relay.stats().await["snapshotCacheBytes"] != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the cached snapshot outlived its session"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_snapshot_cache_is_bounded() {
    let relay = Relay::start(devrelay::Config {
        snapshot_cache_bytes: 1000,
        ..Default::default()
    })
    .await;
    let mut sdk = Client::sdk(&relay.url(), "huge").await;
    let mut watch = V2::dashboard(&relay.dash()).await;
    watch.subscribe("sessions/huge").await;
    sdk.send_text(&snapshot("huge", &"x".repeat(5000))).await;
    watch.publication().await;
    let stats = relay.stats().await;
    assert_eq!(
        (
            stats["snapshotCacheBytes"].as_u64(),
            stats["snapshotsNotCached"].as_u64()
        ),
        (Some(0), Some(1)),
        "{stats}"
    );
}

#[tokio::test]
async fn retained_history_is_replayed_on_request() {
    let relay = Relay::start(Default::default()).await;
    let (mut agent, _) = V2::hello(&relay.dash(), json!({"agentId": "a"})).await;
    for i in 0..5 {
        agent
            .send(json!({"type": "publish", "channel": "agents/a", "event": "log", "data": i}))
            .await;
    }
    agent
        .request(
            json!({"type": "publish", "channel": "agents/a", "event": "log", "data": 5}),
            "last",
        )
        .await;
    let mut late = V2::dashboard(&relay.dash()).await;
    let ack = late
        .request(
            json!({"type": "subscribe", "channel": "agents/a", "history": true}),
            "h",
        )
        .await;
    assert_eq!(
        (ack["replayed"].as_u64(), ack["offset"].as_u64()),
        (Some(6), Some(6)),
        "{ack}"
    );
    assert!(ack.get("recovered").is_none());
    for i in 0..6 {
        let p = late.publication().await;
        assert_eq!(
            (p["offset"].as_u64(), p["data"].as_u64()),
            (Some(i + 1), Some(i))
        );
    }
    // History outlives its subscribers and publishers, within its age limit.
    drop(agent);
    let mut later = V2::dashboard(&relay.dash()).await;
    let ack = later
        .request(
            json!({"type": "subscribe", "channel": "agents/a", "history": true}),
            "h2",
        )
        .await;
    assert_eq!(ack["replayed"], 6);
    let stats = relay.stats().await;
    assert!(stats["historyBytes"].as_u64().unwrap() > 0);
}
