//! The channel hub over real sockets: every v2 message, error code, publish rule and limit; scoping; positions;
//! batching; text-delta coalescing; snapshot conflation; presence; the metrics channel; the HTTP publish API;
//! and the hub defects the redesign had to fix.

mod util;

use std::time::Duration;

use serde_json::{json, Value};
use util::{http_get, Client, Relay, V2};

fn snapshot(session: &str, pad: usize) -> String {
    json!({"type": "state_snapshot", "sessionId": session, "timestamp": 1, "threads": [{"id": "t", "pad": "x".repeat(pad)}],
           "registry": {"components": [], "tools": []}})
    .to_string()
}

fn event(session: &str, seq: u64, marker: &str) -> String {
    format!(
        r#"{{"type":"stream_event","sessionId":"{session}","timestamp":1,"threadId":"t","event":{{"type":"TEXT_MESSAGE_CONTENT","delta":"{marker}"}},"seq":{seq}}}"#
    )
}

async fn post(relay: &Relay, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
        relay.addr,
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    // The dashboard token, unless the test sends its own Authorization (or none: "Authorization: -").
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("authorization"))
    {
        for (k, v) in relay.bearer() {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    let req = req.replace("Authorization: -\r\n", "");
    let mut req = req;
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(util::PATIENCE, s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

#[tokio::test]
async fn connect_parameters_identify_an_agent_and_presence_follows_it() {
    let relay = Relay::start(Default::default()).await;
    let mut dash = V2::dashboard(&relay.dash()).await;
    let ack = dash.subscribe("global").await;
    assert_eq!(ack["presence"], json!([]), "{ack}");
    assert!(ack["epoch"].is_string() && ack["offset"].is_u64(), "{ack}");

    // Seed 002's way in: query parameters, then subscribe as the very first message.
    let mut agent =
        V2::connect(&relay.with_token(&format!("{}/?agent_id=builder&session_id=s1", relay.url())))
            .await;
    let connected = agent.next().await;
    assert_eq!(connected["type"], "connected");
    assert_eq!(
        (
            connected["agentId"].as_str(),
            connected["sessionId"].as_str()
        ),
        (Some("builder"), Some("s1"))
    );
    assert_eq!(connected["protocolVersion"], 2);
    assert_eq!(
        connected["batch"], false,
        "seed-002 clients get one message per frame"
    );
    assert_eq!(connected["limits"]["maxSubscriptions"], 128);

    let mut seen = Vec::new();
    while seen.len() < 2 {
        let p = dash.publication().await;
        assert_eq!(p["channel"], "global");
        seen.push((
            p["event"].as_str().unwrap().to_string(),
            p["data"]["id"].as_str().unwrap().to_string(),
        ));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            ("agent.connected".into(), "builder".into()),
            ("session.connected".into(), "s1".into())
        ]
    );

    // A second dashboard sees both in its presence list.
    let mut late = V2::dashboard(&relay.dash()).await;
    let ack = late.subscribe("global").await;
    let mut ids: Vec<&str> = ack["presence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["builder", "s1"]);
    let wild = late.subscribe("agents/*").await;
    assert_eq!(
        wild["presence"].as_array().unwrap().len(),
        1,
        "agents/* lists agents only: {wild}"
    );

    let (s, h) = relay.get("/health", &[]).await;
    assert_eq!(s, 200);
    let h: Value = serde_json::from_str(&h).unwrap();
    assert_eq!(
        (h["agents"].as_u64(), h["sdkClients"].as_u64()),
        (Some(1), Some(1)),
        "{h}"
    );
    // Channel names carry session and agent ids: only the dashboard token sees them.
    assert!(h.get("channelStats").is_none(), "{h}");
    let bearer = relay.bearer();
    let (s, h) = relay.get("/health", &[(bearer[0].0, &bearer[0].1)]).await;
    assert_eq!(s, 200);
    let h: Value = serde_json::from_str(&h).unwrap();
    assert_eq!(h["channelStats"]["global"], 2, "{h}");
    assert!(h["activeChannels"].as_u64().unwrap() >= 3, "{h}");

    drop(agent);
    let mut gone = Vec::new();
    while gone.len() < 2 {
        let p = dash.publication().await;
        gone.push(p["event"].as_str().unwrap().to_string());
    }
    gone.sort();
    assert_eq!(gone, ["agent.disconnected", "session.disconnected"]);
}

#[tokio::test]
async fn subscribe_unsubscribe_and_their_errors() {
    let relay = Relay::start(devrelay::Config {
        max_subscriptions: 2,
        ..Default::default()
    })
    .await;
    let mut c = V2::connect(&relay.dash()).await;
    // The first v2 message gets `connected` first.
    c.send(json!({"type": "subscribe", "channel": "topics/a", "id": 1}))
        .await;
    assert_eq!(c.next().await["type"], "connected");
    let ack = c.next().await;
    assert_eq!(
        (
            ack["type"].as_str(),
            ack["id"].as_u64(),
            ack["channel"].as_str()
        ),
        (Some("ack"), Some(1), Some("topics/a"))
    );
    assert_eq!(ack["offset"], 0);

    let code = |v: &Value| v["code"].as_str().unwrap_or_default().to_string();
    let e = c
        .request(json!({"type": "subscribe", "channel": "topics/a"}), "dup")
        .await;
    assert_eq!(code(&e), "ALREADY_SUBSCRIBED");
    assert_eq!(e["channel"], "topics/a");
    for bad in [
        "",
        "nope",
        "sessions/",
        "topics/a b",
        "topics/x*",
        &format!("topics/{}", "x".repeat(300)),
    ] {
        let e = c
            .request(json!({"type": "subscribe", "channel": bad}), "bad")
            .await;
        assert_eq!(code(&e), "INVALID_CHANNEL", "{bad:?}: {e}");
    }
    c.subscribe("topics/b").await;
    let e = c
        .request(json!({"type": "subscribe", "channel": "topics/c"}), "third")
        .await;
    assert_eq!(code(&e), "TOO_MANY_SUBSCRIPTIONS");
    let ack = c
        .request(json!({"type": "unsubscribe", "channel": "topics/a"}), "u1")
        .await;
    assert_eq!(ack["type"], "ack");
    let e = c
        .request(json!({"type": "unsubscribe", "channel": "topics/a"}), "u2")
        .await;
    assert_eq!(code(&e), "NOT_SUBSCRIBED");
    c.subscribe("topics/c").await;

    // Malformed frames: typed errors, and the connection keeps working.
    for (frame, want) in [
        ("not json", "BAD_JSON"),
        (r#"{"no":"type"}"#, "INVALID_MESSAGE"),
        (r#"{"type":"frobnicate"}"#, "UNKNOWN_TYPE"),
        (r#"{"type":"subscribe"}"#, "INVALID_MESSAGE"),
        (
            r#"{"type":"publish","channel":"topics/a"}"#,
            "INVALID_MESSAGE",
        ),
        (
            r#"{"type":"handshake","protocolVersion":1,"sdkVersion":"1","sessionId":"x"}"#,
            "WRONG_PROTOCOL",
        ),
    ] {
        c.c.send_text(frame).await;
        let e = c.until(|m| m["type"] == "error").await;
        assert_eq!(code(&e), want, "{frame}: {e}");
    }
    c.c.ws
        .send(tokio_tungstenite::tungstenite::Message::binary(vec![1u8]))
        .await
        .unwrap();
    assert_eq!(
        code(&c.until(|m| m["type"] == "error").await),
        "BINARY_NOT_SUPPORTED"
    );
    c.send(json!({"type": "ping"})).await;
    c.until(|m| m["type"] == "pong").await;
}

use futures_util::SinkExt;

#[tokio::test]
async fn ping_answers_pong() {
    let relay = Relay::start(Default::default()).await;
    let mut c = V2::connect(&relay.url()).await;
    c.send(json!({"type": "ping", "timestamp": 1})).await;
    assert_eq!(c.next().await["type"], "connected");
    let pong = c.next().await;
    assert_eq!(pong["type"], "pong");
    assert!(pong["timestamp"].as_f64().unwrap() > 1.0e12);
}

#[tokio::test]
async fn publish_rules_are_enforced_and_offsets_count_per_channel() {
    let relay = Relay::start(Default::default()).await;
    let mut watcher = V2::dashboard(&relay.dash()).await;
    watcher.subscribe("topics/deploys").await;
    let (mut agent, _) =
        V2::hello(&relay.dash(), json!({"agentId": "a1", "sessionId": "s1"})).await;
    let (mut anon, _) = V2::hello(&relay.dash(), json!({})).await;
    let code = |v: &Value| v["code"].as_str().unwrap_or_default().to_string();

    let publish = |channel: &str, event: &str, data: Value| json!({"type": "publish", "channel": channel, "event": event, "data": data});
    for (who, channel, want) in [
        ("anon", "global", "FORBIDDEN"),
        ("anon", "metrics", "FORBIDDEN"),
        ("anon", "sessions/s1", "FORBIDDEN"),
        ("anon", "agents/a1", "FORBIDDEN"),
        ("agent", "sessions/s2", "FORBIDDEN"),
        ("agent", "agents/a2", "FORBIDDEN"),
        ("agent", "global", "FORBIDDEN"),
        ("agent", "metrics", "FORBIDDEN"),
        ("agent", "sessions/*", "INVALID_CHANNEL"),
        ("anon", "nope/x", "INVALID_CHANNEL"),
    ] {
        let c = if who == "anon" { &mut anon } else { &mut agent };
        let e = c.request(publish(channel, "x", json!(1)), "p").await;
        assert_eq!(code(&e), want, "{who} → {channel}: {e}");
    }
    for (channel, event) in [("sessions/s1", "note"), ("agents/a1", "log")] {
        let ack = agent
            .request(publish(channel, event, json!({"ok": true})), "own")
            .await;
        assert_eq!(
            (ack["type"].as_str(), ack["offset"].as_u64()),
            (Some("ack"), Some(1)),
            "{channel}: {ack}"
        );
    }
    let e = agent
        .request(publish("topics/a", "bad name", json!(1)), "n")
        .await;
    assert_eq!(code(&e), "INVALID_MESSAGE");
    let e = agent
        .request(
            publish("sessions/s1", "text_delta", json!({"delta": 5})),
            "t",
        )
        .await;
    assert_eq!(code(&e), "INVALID_PAYLOAD");

    // Anyone may publish to topics; every publication gets the next offset of its channel and the same epoch.
    let raw = r#"{"type":"publish","channel":"topics/deploys","event":"deploy.finished","data": {"ok" : true, "n": 1.50},"id":"d1"}"#;
    let mut epoch = None;
    for i in 1..=3u64 {
        let c = if i == 2 { &mut agent } else { &mut anon };
        c.c.send_text(raw).await;
        let ack = c.until(|m| m["id"] == "d1").await;
        assert_eq!(ack["offset"], i, "{ack}");
        let p = watcher.publication().await;
        assert_eq!(
            (
                p["channel"].as_str(),
                p["event"].as_str(),
                p["offset"].as_u64()
            ),
            (Some("topics/deploys"), Some("deploy.finished"), Some(i))
        );
        assert_eq!(p["epoch"], ack["epoch"]);
        epoch.get_or_insert(p["epoch"].clone());
        assert_eq!(Some(&p["epoch"]), epoch.as_ref());
    }
    // `data` is forwarded byte for byte.
    anon.c.send_text(raw).await;
    let frame = watcher.c.recv_text().await;
    assert!(
        frame.contains(r#""data":{"ok" : true, "n": 1.50},"#),
        "{frame}"
    );
    anon.until(|m| m["id"] == "d1").await;
    // No id, no ack; errors still come.
    anon.send(publish("topics/deploys", "x", json!(null))).await;
    anon.send(json!({"type": "publish", "channel": "global", "event": "x"}))
        .await;
    let e = anon
        .until(|m| m["type"] == "error" || m["type"] == "ack")
        .await;
    assert_eq!(
        (e["type"].as_str(), code(&e).as_str(), e.get("id")),
        (Some("error"), "FORBIDDEN", None)
    );

    let big = Relay::start(devrelay::Config {
        max_publish_bytes: 100,
        ..Default::default()
    })
    .await;
    let (mut c, _) = V2::hello(&big.dash(), json!({})).await;
    let e = c
        .request(publish("topics/a", "x", json!("y".repeat(200))), "big")
        .await;
    assert_eq!(code(&e), "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn a_dashboard_subscribed_to_one_session_never_receives_a_byte_of_another() {
    let relay = Relay::start(Default::default()).await;
    let mut a = Client::sdk(&relay.url(), "sess-A").await;
    let mut b = Client::sdk(&relay.url(), "sess-B").await;
    let mut dash = V2::dashboard(&relay.dash()).await;
    let ack = dash.subscribe("sessions/sess-A").await;
    assert_eq!(ack["offset"], 0);
    for seq in 1..=200 {
        b.send_text(&event("sess-B", seq, "BBBB")).await;
        a.send_text(&event("sess-A", seq, "aaaa")).await;
    }
    a.send_text(&snapshot("sess-A", 10)).await;
    let mut offsets = Vec::new();
    loop {
        let text = dash.c.recv_text().await;
        assert!(
            !text.contains("sess-B") && !text.contains("BBBB"),
            "a byte of session B leaked: {text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        let items = match v {
            Value::Array(items) => items,
            one => vec![one],
        };
        let mut done = false;
        for p in items {
            assert_eq!(p["channel"], "sessions/sess-A");
            offsets.push(p["offset"].as_u64().unwrap());
            // The SDK's own message is the data, bytes unchanged.
            if p["event"] == "state_snapshot" {
                done = true;
            } else {
                assert_eq!(p["event"], "stream_event");
                assert_eq!(p["data"]["type"], "stream_event");
            }
        }
        if done {
            break;
        }
    }
    assert_eq!(
        offsets,
        (1..=201).collect::<Vec<u64>>(),
        "every publication once, in order"
    );
    // B's last frames may still be on their way through its own connection.
    let deadline = std::time::Instant::now() + util::PATIENCE;
    let stats = loop {
        let stats = relay.stats().await;
        let published = stats["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["channel"] == "sessions/sess-B")
            .map(|c| c["published"].clone());
        if published == Some(json!(200)) || std::time::Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let chans = stats["channels"].as_array().unwrap();
    let b_stat = chans
        .iter()
        .find(|c| c["channel"] == "sessions/sess-B")
        .unwrap();
    assert_eq!(
        (b_stat["published"].as_u64(), b_stat["delivered"].as_u64()),
        (Some(200), Some(0)),
        "{b_stat}"
    );
    let a_stat = chans
        .iter()
        .find(|c| c["channel"] == "sessions/sess-A")
        .unwrap();
    assert_eq!(a_stat["delivered"], 201);
}

#[tokio::test]
async fn seed_000_and_v2_sessions_reach_both_kinds_of_dashboard() {
    let relay = Relay::start(Default::default()).await;
    let (mut legacy, _) = Client::dashboard(&relay.dash()).await;
    let mut v2dash = V2::dashboard(&relay.dash()).await;
    v2dash.subscribe("sessions/*").await;

    // A v2 SDK session shows up in seed-000 dashboards: client_connected, then its snapshot as state_update.
    let (mut sdk, _) = V2::hello(
        &relay.url(),
        json!({"sessionId": "v2-sess", "sdkVersion": "9.9.9"}),
    )
    .await;
    let connected = legacy.recv_value().await;
    assert_eq!(
        (
            connected["type"].as_str(),
            connected["sessionId"].as_str(),
            connected["sdkVersion"].as_str()
        ),
        (Some("client_connected"), Some("v2-sess"), Some("9.9.9"))
    );
    let snap = json!({"sessionId": "v2-sess", "timestamp": 2, "threads": [], "registry": {"components": [], "tools": []}});
    let ack = sdk.request(json!({"type": "publish", "channel": "sessions/v2-sess", "event": "state_snapshot", "data": snap}), "s").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let update = legacy.recv_value().await;
    assert_eq!(update["type"], "state_update");
    assert_eq!(update["snapshot"]["sessionId"], "v2-sess");
    let p = v2dash.publication().await;
    assert_eq!(
        (p["event"].as_str(), p["offset"].as_u64()),
        (Some("state_snapshot"), Some(1))
    );
    // Its other events are v2-only: seed-000 dashboards would not understand them.
    sdk.request(
        json!({"type": "publish", "channel": "sessions/v2-sess", "event": "complete"}),
        "c",
    )
    .await;
    assert_eq!(v2dash.publication().await["event"], "complete");
    // A snapshot naming another session is refused.
    let other = json!({"sessionId": "someone-else", "timestamp": 2, "threads": [], "registry": {"components": [], "tools": []}});
    let e = sdk.request(json!({"type": "publish", "channel": "sessions/v2-sess", "event": "state_snapshot", "data": other}), "o").await;
    assert_eq!(e["code"], "INVALID_PAYLOAD");

    // A seed-000 SDK reaches the v2 dashboard with its bytes as data.
    let mut old = Client::sdk(&relay.url(), "v1-sess").await;
    let raw = event("v1-sess", 1, "hi");
    old.send_text(&raw).await;
    let frame = v2dash.c.recv_text().await;
    assert!(frame.contains(&format!(r#""data":{raw},"#)), "{frame}");
    assert_eq!(legacy.recv_value().await["type"], "client_connected");
    assert_eq!(legacy.recv_value().await["type"], "stream_event_update");
}

#[tokio::test]
async fn batched_dashboards_get_fewer_fuller_frames_and_lose_nothing() {
    let relay = Relay::start(Default::default()).await;
    let mut dash = V2::dashboard(&relay.dash()).await;
    dash.subscribe("sessions/burst").await;
    let mut plain = V2::connect(&relay.dash()).await;
    plain.subscribe("sessions/burst").await;
    let plain_frames_before = plain.frames;
    let mut sdk = Client::sdk(&relay.url(), "burst").await;
    let n = 2000;
    for seq in 1..=n {
        sdk.send_text(&event("burst", seq, "x")).await;
    }
    let start = dash.frames;
    for want in 1..=n {
        let p = dash.publication().await;
        assert_eq!(p["offset"], want);
    }
    let batched_frames = dash.frames - start;
    for want in 1..=n {
        assert_eq!(plain.publication().await["offset"], want);
    }
    assert_eq!(
        plain.frames - plain_frames_before,
        n as usize,
        "no batch without hello.batch"
    );
    assert!(
        batched_frames < n as usize,
        "{batched_frames} frames for {n} messages: nothing was batched"
    );
    eprintln!("{n} publications in {batched_frames} batched frames");
}

#[tokio::test]
async fn batches_are_capped_in_messages() {
    let relay = Relay::start(devrelay::Config {
        batch_max_messages: 3,
        ..Default::default()
    })
    .await;
    let mut dash = V2::dashboard(&relay.dash()).await;
    dash.subscribe("sessions/s").await;
    // Make the dashboard's queue build up: stop reading while the SDK floods, then read.
    let mut sdk = Client::sdk(&relay.url(), "s").await;
    for seq in 1..=300 {
        sdk.send_text(&event("s", seq, "x")).await;
    }
    let mut got = 0;
    while got < 300 {
        let text = dash.c.recv_text().await;
        let n = match serde_json::from_str::<Value>(&text).unwrap() {
            Value::Array(items) => items.len(),
            _ => 1,
        };
        assert!(n <= 3, "batch of {n} > batch_max_messages");
        got += n;
    }
}

#[tokio::test]
async fn text_deltas_merge_without_loss_or_reordering() {
    let relay = Relay::start(devrelay::Config {
        text_delta_window: Duration::from_millis(200),
        ..Default::default()
    })
    .await;
    let mut dash = V2::dashboard(&relay.dash()).await;
    dash.subscribe("sessions/llm").await;
    let (mut sdk, _) = V2::hello(&relay.url(), json!({"sessionId": "llm"})).await;
    let words: Vec<String> = (0..100).map(|i| format!("w{i} ")).collect();
    for (i, w) in words.iter().enumerate() {
        let mut msg = json!({"type": "publish", "channel": "sessions/llm", "event": "text_delta", "data": {"delta": w, "turnId": "t1"}});
        if i % 10 == 0 {
            msg["id"] = format!("d{i}").into();
        }
        sdk.send(msg).await;
        if i == 49 {
            // Any other event flushes the merge first: it must arrive after every delta before it.
            sdk.send(
                json!({"type": "publish", "channel": "sessions/llm", "event": "tool_start",
                "data": {"toolName": "ls", "toolUseId": "u1", "toolInput": {}}}),
            )
            .await;
        }
    }
    sdk.send(json!({"type": "publish", "channel": "sessions/llm", "event": "text_complete", "data": {"text": words.concat()}, "id": "done"})).await;

    let mut text = String::new();
    let mut publications = 0;
    let mut offsets = Vec::new();
    loop {
        let p = dash.publication().await;
        offsets.push(p["offset"].as_u64().unwrap());
        match p["event"].as_str().unwrap() {
            "text_delta" => {
                publications += 1;
                assert_eq!(p["data"]["turnId"], "t1");
                text.push_str(p["data"]["delta"].as_str().unwrap());
            }
            "tool_start" => assert_eq!(
                text,
                words[..50].concat(),
                "the tool_start overtook or lagged deltas"
            ),
            "text_complete" => break,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(text, words.concat(), "every delta, in order");
    assert!(
        publications < 100,
        "{publications} publications for 100 deltas: nothing merged"
    );
    assert_eq!(offsets, (1..=offsets.len() as u64).collect::<Vec<_>>());
    // Every publish that asked for an ack got one, the merged ones with their merge's offset.
    let mut acked = Vec::new();
    while acked.len() < 11 {
        let m = sdk.until(|m| m["type"] == "ack").await;
        acked.push(m["id"].as_str().unwrap().to_string());
    }
    assert!(
        acked.contains(&"done".to_string()) && acked.contains(&"d90".to_string()),
        "{acked:?}"
    );
    let stats = relay.stats().await;
    assert!(stats["deltasCoalesced"].as_u64().unwrap() > 0, "{stats}");
}

#[tokio::test]
async fn a_pending_delta_is_published_when_its_session_leaves() {
    let relay = Relay::start(devrelay::Config {
        text_delta_window: Duration::from_secs(10),
        ..Default::default()
    })
    .await;
    let mut dash = V2::dashboard(&relay.dash()).await;
    dash.subscribe("sessions/bye").await;
    let (mut sdk, _) = V2::hello(&relay.url(), json!({"sessionId": "bye"})).await;
    sdk.send(json!({"type": "publish", "channel": "sessions/bye", "event": "text_delta", "data": {"delta": "last words"}})).await;
    // Round trip so the delta is surely held by the relay before the socket goes.
    sdk.send(json!({"type": "ping"})).await;
    sdk.until(|m| m["type"] == "pong").await;
    drop(sdk);
    let p = dash.publication().await;
    assert_eq!(
        (p["event"].as_str(), p["data"]["delta"].as_str()),
        (Some("text_delta"), Some("last words"))
    );
}

#[tokio::test]
async fn with_the_window_at_zero_every_delta_is_its_own_publication() {
    let relay = Relay::start(devrelay::Config {
        text_delta_window: Duration::ZERO,
        ..Default::default()
    })
    .await;
    let mut dash = V2::dashboard(&relay.dash()).await;
    dash.subscribe("sessions/raw").await;
    let (mut sdk, _) = V2::hello(&relay.url(), json!({"sessionId": "raw"})).await;
    for i in 0..20 {
        sdk.send(json!({"type": "publish", "channel": "sessions/raw", "event": "text_delta", "data": {"delta": i.to_string()}})).await;
    }
    for i in 0..20 {
        let p = dash.publication().await;
        assert_eq!(p["data"]["delta"], i.to_string());
    }
}

#[tokio::test]
async fn queued_snapshots_conflate_but_events_never_do() {
    // Big snapshots, a dashboard that stops reading: its queue fills with snapshots that a newer one replaces.
    let relay = Relay::start(devrelay::Config {
        queue_bytes: 512 << 20,
        ..Default::default()
    })
    .await;
    let mut dash = Client::small_window_dashboard(&relay).await;
    let mut v2 = V2::dashboard(&relay.dash()).await;
    v2.subscribe("sessions/big").await;
    let mut sdk = Client::sdk(&relay.url(), "big").await;
    let snapshots = 40;
    for i in 0..snapshots {
        sdk.send_text(&snapshot("big", 200_000 + i)).await;
        sdk.send_text(&event("big", i as u64 + 1, "ev")).await;
    }
    sdk.send_text(&snapshot("big", 7)).await;
    // The v2 subscriber reads everything as it comes; it may or may not see conflation, but every event.
    let mut events = 0;
    let mut last_pad = 0;
    while last_pad != 7 {
        let p = v2.publication().await;
        match p["event"].as_str().unwrap() {
            "stream_event" => events += 1,
            _ => last_pad = p["data"]["threads"][0]["pad"].as_str().unwrap().len(),
        }
    }
    assert_eq!(events, snapshots);
    // The stalled seed-000 dashboard now reads: every event, the final snapshot, and fewer snapshots than sent.
    let (mut got_events, mut got_snapshots, mut final_seen) = (0, 0, false);
    while !final_seen {
        let v = dash.recv_value().await;
        match v["type"].as_str().unwrap() {
            "stream_event_update" => got_events += 1,
            "client_connected" => {}
            "state_update" => {
                got_snapshots += 1;
                final_seen = v["snapshot"]["threads"][0]["pad"].as_str().unwrap().len() == 7;
            }
            other => panic!("{other}"),
        }
    }
    assert_eq!(got_events, snapshots, "events never conflate");
    let conflated = relay.stats().await["conflated"].as_u64().unwrap();
    assert!(
        conflated > 0 && got_snapshots < snapshots + 1,
        "got {got_snapshots} snapshots, {conflated} conflated"
    );
    // (`conflated` counts every connection's queue; the reading v2 subscriber may have replaced some too.)
    assert!(
        got_snapshots as u64 + conflated > snapshots as u64,
        "each snapshot either sent or replaced"
    );
}

#[tokio::test]
async fn the_metrics_channel_publishes_the_relays_numbers() {
    let relay = Relay::start(devrelay::Config {
        metrics_interval: Duration::from_millis(100),
        ..Default::default()
    })
    .await;
    let _sdk = Client::sdk(&relay.url(), "m1").await;
    let mut dash = V2::dashboard(&relay.dash()).await;
    dash.subscribe("metrics").await;
    let m = dash
        .until(|m| m["event"] == "metric.update" && m["data"]["activeSessions"] == 1)
        .await;
    assert_eq!(m["channel"], "metrics");
    let d = &m["data"];
    assert_eq!(d["dashboards"], 1, "{d}");
    for key in [
        "messagesInPerMinute",
        "messagesOutPerMinute",
        "dropped",
        "slowConsumerCloses",
        "fanoutLatencyP50Us",
        "fanoutLatencyP99Us",
        "channels",
        "conflated",
    ] {
        assert!(d[key].is_number(), "{key} missing: {d}");
    }
    // Fan-out latency is measured once there is traffic.
    let mut sdk2 = Client::sdk(&relay.url(), "m2").await;
    let mut watch = V2::dashboard(&relay.dash()).await;
    watch.subscribe("sessions/m2").await;
    sdk2.send_text(&event("m2", 1, "x")).await;
    watch.publication().await;
    dash.until(|m| m["data"]["fanoutLatencyP99Us"].as_u64().unwrap_or(0) > 0)
        .await;
}

#[tokio::test]
async fn the_http_publish_api() {
    let relay = Relay::start(Default::default()).await;
    let mut dash = V2::dashboard(&relay.dash()).await;
    dash.subscribe("topics/ci").await;
    dash.subscribe("global").await;
    let body = r#"{"channel":"topics/ci","event":"build.finished","data":{"ok":true}}"#;
    let (status, reply) = post(&relay, "/api/publish", &[JSON], body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        (reply["channel"].as_str(), reply["offset"].as_u64()),
        (Some("topics/ci"), Some(1))
    );
    let p = dash.publication().await;
    assert_eq!(
        (p["event"].as_str(), p["data"]["ok"].as_bool(), &p["epoch"]),
        (Some("build.finished"), Some(true), &reply["epoch"])
    );
    // The server API may announce on global (seed 004's config_changed).
    let (status, _) = post(
        &relay,
        "/api/publish",
        &[JSON],
        r#"{"channel":"global","event":"config_changed","data":{"changeType":"theme"}}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(dash.publication().await["event"], "config_changed");

    for (headers, body, want_status, want_code) in [
        (
            vec![JSON],
            r#"{"channel":"metrics","event":"x"}"#,
            403,
            "FORBIDDEN",
        ),
        (
            vec![JSON],
            r#"{"channel":"bad","event":"x"}"#,
            400,
            "INVALID_CHANNEL",
        ),
        (
            vec![JSON],
            r#"{"channel":"global","event":"config_changed","data":{}}"#,
            400,
            "INVALID_PAYLOAD",
        ),
        (vec![JSON], r#"{"event":"x"}"#, 400, "INVALID_MESSAGE"),
        (vec![JSON], "not json", 400, "INVALID_MESSAGE"),
        (vec![], body, 415, "INVALID_MESSAGE"),
    ] {
        let (status, reply) = post(&relay, "/api/publish", &headers, body).await;
        assert_eq!(
            (status, reply["error"]["code"].as_str()),
            (want_status, Some(want_code)),
            "{body}: {reply}"
        );
        assert!(reply["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // Without the dashboard token it answers 401, with a wrong one too; the agent token is not enough (403).
    for (auth, want) in [
        ("-", 401),
        ("Bearer not-the-token-0123456789", 401),
        ("Basic abc", 401),
    ] {
        let (status, reply) = post(
            &relay,
            "/api/publish",
            &[JSON, ("Authorization", auth)],
            body,
        )
        .await;
        assert_eq!(
            (status, reply["error"]["code"].as_str()),
            (want, Some("UNAUTHORIZED")),
            "{auth}: {reply}"
        );
    }
    // A page from another site cannot use it.
    let (status, _) = post(
        &relay,
        "/api/publish",
        &[JSON, ("Origin", "http://evil.example")],
        body,
    )
    .await;
    assert_eq!(status, 403);
    let small = Relay::start(devrelay::Config {
        max_publish_bytes: 10,
        ..Default::default()
    })
    .await;
    let (status, reply) = post(
        &small,
        "/api/publish",
        &[JSON],
        r#"{"channel":"topics/a","event":"x","data":"0123456789abcdef"}"#,
    )
    .await;
    assert_eq!(
        (status, reply["error"]["code"].as_str()),
        (413, Some("PAYLOAD_TOO_LARGE"))
    );
    let (status, _) = http_get(relay.addr, "/api/publish", &[]).await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn snapshot_requests_reach_the_sdk_once_and_concurrent_ones_join() {
    let relay = Relay::start(devrelay::Config {
        queue_messages: 4,
        ..Default::default()
    })
    .await;
    let mut sdk = Client::sdk(&relay.url(), "snap").await;
    let (mut dash, _) = V2::hello(&relay.dash(), json!({})).await;
    let ack = dash
        .request(
            json!({"type": "request_snapshot", "sessionId": "snap"}),
            "r1",
        )
        .await;
    assert_eq!(
        (ack["type"].as_str(), ack.get("coalesced")),
        (Some("ack"), None),
        "{ack}"
    );
    assert_eq!(
        sdk.recv_value().await,
        json!({"type": "request_snapshot"}),
        "seed-000 SDKs get the seed-000 request"
    );
    let ack = dash
        .request(
            json!({"type": "request_snapshot", "sessionId": "snap"}),
            "r2",
        )
        .await;
    assert_eq!(
        ack["coalesced"], true,
        "a second request joins the unanswered one: {ack}"
    );
    sdk.send_text(&snapshot("snap", 1)).await;
    // Answered: the next request goes out again (once the snapshot has been published).
    let mut watcher = V2::dashboard(&relay.dash()).await;
    watcher.subscribe("sessions/snap").await;
    sdk.send_text(&snapshot("snap", 2)).await;
    watcher.publication().await;
    let ack = dash
        .request(
            json!({"type": "request_snapshot", "sessionId": "snap"}),
            "r3",
        )
        .await;
    assert_eq!(ack.get("coalesced"), None);
    let e = dash
        .request(
            json!({"type": "request_snapshot", "sessionId": "nobody"}),
            "r4",
        )
        .await;
    assert_eq!(e["code"], "UNKNOWN_SESSION");

    // (A full SDK queue answers BUSY and costs the SDK nothing: hub::tests::a_full_session_is_busy_not_closed.)
}

#[tokio::test]
async fn a_replaced_sdk_publishes_nothing_after_its_successor_is_announced() {
    let relay = Relay::start(Default::default()).await;
    let (mut dash, _) = Client::dashboard(&relay.dash()).await;
    let mut v2 = V2::dashboard(&relay.dash()).await;
    v2.subscribe("sessions/dup").await;
    let mut old = Client::sdk(&relay.url(), "dup").await;
    assert_eq!(dash.recv_value().await["type"], "client_connected");
    // The old connection floods while its successor takes over.
    let flood = tokio::spawn(async move {
        for seq in 1..=20_000u64 {
            if old
                .ws
                .send(tokio_tungstenite::tungstenite::Message::text(event(
                    "dup", seq, "OLD",
                )))
                .await
                .is_err()
            {
                break;
            }
        }
        old
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut new = Client::sdk(&relay.url(), "dup").await;
    new.send_text(&event("dup", 1, "NEW")).await;
    // Seed-000 dashboard: after the second client_connected, only NEW.
    let mut connects = 1;
    loop {
        let v = dash.recv_value().await;
        match v["type"].as_str().unwrap() {
            "client_connected" => connects += 1,
            "client_disconnected" => assert_eq!(connects, 1),
            "stream_event_update" => {
                let delta = v["event"]["event"]["delta"].as_str().unwrap();
                if connects == 2 {
                    assert_eq!(delta, "NEW", "the replaced connection's frame came after its successor's client_connected");
                    break;
                }
                assert_eq!(delta, "OLD");
            }
            other => panic!("{other}"),
        }
    }
    // v2 subscriber: once NEW appears, OLD never does again (and offsets stay contiguous).
    let mut last = 0;
    loop {
        let p = v2.publication().await;
        let off = p["offset"].as_u64().unwrap();
        assert_eq!(off, last + 1);
        last = off;
        if p["data"]["event"]["delta"] == "NEW" {
            break;
        }
    }
    let _ = flood.await;
}

#[tokio::test]
async fn client_lists_and_announcements_converge_under_churn() {
    // Dashboards subscribing while SDKs come and go: each dashboard's list plus the announcements after it
    // must end at exactly the relay's final set (a list queued after an announcement it lacks would lose one).
    let relay = Relay::start(Default::default()).await;
    let url = relay.url();
    let sdks = tokio::spawn({
        let url = url.clone();
        async move {
            let mut keep = Vec::new();
            for i in 0..60 {
                let c = Client::sdk(&url, &format!("churn-{i}")).await;
                if i % 3 == 0 {
                    drop(c);
                } else {
                    keep.push(c);
                }
            }
            keep
        }
    });
    let mut dashes = Vec::new();
    for _ in 0..20 {
        dashes.push(Client::dashboard(&relay.dash()).await);
        tokio::task::yield_now().await;
    }
    let keep = sdks.await.unwrap();
    let want: std::collections::BTreeSet<String> = (0..60)
        .filter(|i| i % 3 != 0)
        .map(|i| format!("churn-{i}"))
        .collect();
    assert_eq!(keep.len(), want.len());
    // A marker session joins last: once a dashboard sees it, it has seen everything before.
    let _marker = Client::sdk(&url, "zz-marker").await;
    for (mut dash, list) in dashes {
        let mut have: std::collections::BTreeSet<String> =
            list.clients.into_iter().map(|c| c.session_id).collect();
        loop {
            let v = dash.recv_value().await;
            let id = v["sessionId"].as_str().unwrap().to_string();
            match v["type"].as_str().unwrap() {
                "client_connected" if id == "zz-marker" => break,
                "client_connected" => {
                    have.insert(id);
                }
                "client_disconnected" => {
                    have.remove(&id);
                }
                other => panic!("{other}"),
            }
        }
        assert_eq!(have, want);
    }
}

#[tokio::test]
async fn a_second_agent_with_the_same_id_replaces_the_first() {
    let relay = Relay::start(Default::default()).await;
    let (mut first, _) = V2::hello(&relay.dash(), json!({"agentId": "twin"})).await;
    let (mut second, _) = V2::hello(&relay.dash(), json!({"agentId": "twin"})).await;
    assert_eq!(first.c.closed().await.0, 4500);
    let ack = second
        .request(
            json!({"type": "publish", "channel": "agents/twin", "event": "out", "data": 1}),
            "p",
        )
        .await;
    assert_eq!(ack["type"], "ack");
}

#[tokio::test]
async fn hello_cannot_switch_identity_and_checks_its_fields() {
    let relay = Relay::start(Default::default()).await;
    let (mut c, _) = V2::hello(&relay.dash(), json!({"agentId": "a"})).await;
    c.send(json!({"type": "hello", "agentId": "b"})).await;
    assert_eq!(
        c.until(|m| m["type"] == "error").await["code"],
        "ALREADY_IDENTIFIED"
    );
    c.send(json!({"type": "hello", "agentId": "a", "batch": true}))
        .await;
    let again = c.until(|m| m["type"] == "connected").await;
    assert_eq!(
        (again["agentId"].as_str(), again["batch"].as_bool()),
        (Some("a"), Some(true))
    );
    for bad in [
        json!({"agentId": "has space"}),
        json!({"sessionId": ""}),
        json!({"name": "x".repeat(300)}),
        json!({"metadata": {"blob": "x".repeat(5000)}}),
    ] {
        let (mut d, _) = V2::hello(&relay.dash(), json!({})).await;
        let mut msg = bad.clone();
        msg["type"] = "hello".into();
        d.send(msg).await;
        assert_eq!(
            d.until(|m| m["type"] == "error").await["code"],
            "INVALID_MESSAGE",
            "{bad}"
        );
    }
}

/// A seed-000 SDK's snapshot, written as SDKs write it (`type` first): seed-000 dashboards get its members in a
/// `state_update` as they stand, and v2 subscribers — live, and one that joins later — get the SDK's very bytes as
/// `data`, from a v2 frame the relay builds only when one of them needs it.
#[tokio::test]
async fn a_seed_000_snapshot_reaches_v2_subscribers_as_the_sdk_sent_it() {
    let relay = Relay::start(Default::default()).await;
    let (mut legacy, _) = Client::dashboard(&relay.dash()).await;
    let mut sdk = Client::sdk(&relay.url(), "snap-s").await;
    let mut live = V2::dashboard(&relay.dash()).await;
    live.subscribe("sessions/snap-s").await;
    let raw = r#"{"type":"state_snapshot","sessionId":"snap-s","timestamp":1.5,"threads":[{"id":"t","x":"\u0041"}], "registry":{"components":[],"tools":[]}}"#;
    sdk.send_text(raw).await;
    let members = &raw[r#"{"type":"state_snapshot","#.len()..raw.len() - 1];
    let update = loop {
        let text = legacy.recv_text().await;
        if text.contains("state_update") {
            break text;
        }
    };
    assert_eq!(
        update,
        format!(r#"{{"type":"state_update","sessionId":"snap-s","snapshot":{{{members}}}}}"#)
    );
    let data = format!(r#""data":{raw},"#);
    let text = loop {
        let text = live.c.recv_text().await;
        if text.contains("state_snapshot") {
            break text;
        }
    };
    assert!(text.contains(&data), "{text}");
    // A subscriber after the publication: the snapshot comes with its ack, the same bytes.
    let mut late = V2::dashboard(&relay.dash()).await;
    late.send(json!({"type": "subscribe", "channel": "sessions/snap-s", "id": "late"}))
        .await;
    let text = loop {
        let text = late.c.recv_text().await;
        if text.contains("state_snapshot") {
            break text;
        }
    };
    assert!(text.contains(&data), "{text}");
    relay.shutdown.cancel();
}
