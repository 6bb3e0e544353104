//! The relay over real sockets: every flow of the protocol and every defect of the seed-000 server it fixes.

mod util;

use std::time::Duration;

use devrelay::Config;
use devrelay_protocol::{ErrorCode, RelayToDashboard, RelayToSdk};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use util::{event, half_request, until_closed, Client, Ended, Relay, PATIENCE};

const STATE_SNAPSHOT: &str = include_str!("../../tests/fixtures/state_snapshot.json");
const STREAM_EVENT: &str = include_str!("../../tests/fixtures/stream_event.json");

fn expect_error(msg: RelayToDashboard, code: ErrorCode) {
    match msg {
        RelayToDashboard::Error(e) => {
            assert_eq!(e.code, code, "{}", e.message);
            assert!(!e.message.is_empty());
        }
        other => panic!("expected error {code:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn sdk_and_dashboard_flow() {
    let relay = Relay::start(Config::default()).await;
    let (mut dash, list) = Client::dashboard(&relay.dash()).await;
    assert!(list.clients.is_empty());

    let mut sdk = Client::sdk(&relay.url(), "sess-7f3a").await;
    match dash.recv::<RelayToDashboard>().await {
        RelayToDashboard::ClientConnected(c) => {
            assert_eq!(
                (c.session_id.as_str(), c.sdk_version.as_str()),
                ("sess-7f3a", "1.0.0")
            );
            assert_eq!(c.project_id.as_deref(), Some("p1"));
            assert!(c.connected_at.0 > 1.7e12);
        }
        other => panic!("{other:?}"),
    }

    // A second dashboard gets the SDK in its list.
    let (mut dash2, list) = Client::dashboard(&relay.dash()).await;
    assert_eq!(list.clients.len(), 1);
    assert_eq!(list.clients[0].session_id, "sess-7f3a");

    // state_snapshot → state_update to both, losslessly (unknown fields and number forms survive).
    sdk.send_text(STATE_SNAPSHOT).await;
    let want_snapshot = {
        let mut v: Value = serde_json::from_str(STATE_SNAPSHOT).unwrap();
        v.as_object_mut().unwrap().remove("type");
        v
    };
    for d in [&mut dash, &mut dash2] {
        let v = d.recv_value().await;
        assert_eq!(v["type"], "state_update");
        assert_eq!(v["sessionId"], "sess-7f3a");
        assert_eq!(v["snapshot"], want_snapshot);
        assert_eq!(v["snapshot"]["futureField"]["addedIn"], "2.0");
    }

    // stream_event → stream_event_update, the whole message as `event`.
    sdk.send_text(STREAM_EVENT).await;
    let want_event: Value = serde_json::from_str(STREAM_EVENT).unwrap();
    for d in [&mut dash, &mut dash2] {
        let v = d.recv_value().await;
        assert_eq!(v["type"], "stream_event_update");
        assert_eq!(v["sessionId"], "sess-7f3a");
        assert_eq!(v["event"], want_event);
    }

    // heartbeat is accepted silently; request_client_list answers the list.
    sdk.send_json(json!({"type":"heartbeat","sessionId":"sess-7f3a","timestamp":5}))
        .await;
    dash.send_text(r#"{"type":"request_client_list"}"#).await;
    match dash.recv::<RelayToDashboard>().await {
        RelayToDashboard::ClientList(l) => assert_eq!(l.clients.len(), 1),
        other => panic!("{other:?}"),
    }

    // request_client_snapshot → request_snapshot at the SDK; unknown sessions are an error.
    dash.send_text(r#"{"type":"request_client_snapshot","sessionId":"sess-7f3a"}"#)
        .await;
    assert_eq!(sdk.recv::<RelayToSdk>().await, RelayToSdk::RequestSnapshot);
    dash.send_text(r#"{"type":"request_client_snapshot","sessionId":"nobody"}"#)
        .await;
    expect_error(dash.recv().await, ErrorCode::UnknownSession);

    // The SDK leaves: every dashboard hears it.
    sdk.ws.close(None).await.unwrap();
    for d in [&mut dash, &mut dash2] {
        match d.recv::<RelayToDashboard>().await {
            RelayToDashboard::ClientDisconnected(s) => assert_eq!(s.session_id, "sess-7f3a"),
            other => panic!("{other:?}"),
        }
    }
    relay.shutdown.cancel();
}

#[tokio::test]
async fn forwarded_bodies_keep_the_sdks_bytes() {
    let relay = Relay::start(Config::default()).await;
    let (mut dash, _) = Client::dashboard(&relay.dash()).await;
    let mut sdk = Client::sdk(&relay.url(), "raw").await;
    assert!(matches!(
        dash.recv().await,
        RelayToDashboard::ClientConnected(_)
    ));
    let members = [
        r#""sessionId":"raw""#,
        r#""timestamp":1.0e3"#,
        r#""threads":[ ]"#,
        r#""registry":{"components":[],"tools":[] , "a\u0062":"\/"}"#,
        r#""\n":"x\u0041""#,
        r#""\/":-0.0"#,
    ];
    // Begun as SDKs write it: every member after `type` is passed on as it stands, the whitespace between them
    // included (one copy; splice::push_state_update_of_frame).
    let snapshot = format!("{{\"type\":\"state_snapshot\", {}}}", members.join(" , "));
    sdk.send_text(&snapshot).await;
    assert_eq!(
        dash.recv_text().await,
        format!(
            r#"{{"type":"state_update","sessionId":"raw","snapshot":{{ {}}}}}"#,
            members.join(" , ")
        )
    );
    // Any other shape: the members are found by parsing, and joined without the whitespace between them.
    let snapshot = format!(
        "{{ {} , \"type\" : \"state_snapshot\"}}",
        members.join(" , ")
    );
    sdk.send_text(&snapshot).await;
    assert_eq!(
        dash.recv_text().await,
        format!(
            r#"{{"type":"state_update","sessionId":"raw","snapshot":{{{}}}}}"#,
            members.join(",")
        )
    );
    let event = r#"{"seq":1, "type":"stream_event","sessionId":"raw","timestamp":2E0,"threadId":"t\u0031","event":{"type":"X","\n":"\/"}}"#;
    sdk.send_text(&format!("  {event}\n")).await;
    assert_eq!(
        dash.recv_text().await,
        format!(r#"{{"type":"stream_event_update","sessionId":"raw","event":{event}}}"#)
    );
    relay.shutdown.cancel();
}

#[tokio::test]
async fn same_session_replaces_the_old_connection_cleanly() {
    let relay = Relay::start(Config::default()).await;
    let (mut dash, _) = Client::dashboard(&relay.dash()).await;
    let mut old = Client::sdk(&relay.url(), "dup").await;
    assert!(matches!(
        dash.recv().await,
        RelayToDashboard::ClientConnected(_)
    ));

    let mut new = Client::sdk(&relay.url(), "dup").await;
    let (code, reason) = old.closed().await;
    assert_eq!(code, 4500);
    assert!(reason.contains("replaced"), "{reason}");
    // Dashboards see the old one leave and the new one arrive, in that order.
    match dash.recv().await {
        RelayToDashboard::ClientDisconnected(s) => assert_eq!(s.session_id, "dup"),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(dash.recv().await, RelayToDashboard::ClientConnected(c) if c.session_id == "dup")
    );

    // The old socket's close did not remove the new one: it is listed and its events flow.
    dash.send_text(r#"{"type":"request_client_list"}"#).await;
    match dash.recv().await {
        RelayToDashboard::ClientList(l) => {
            assert_eq!(l.clients.len(), 1);
            assert_eq!(l.clients[0].session_id, "dup");
        }
        other => panic!("{other:?}"),
    }
    new.send_text(&event("dup", 1, 4)).await;
    assert!(
        matches!(dash.recv().await, RelayToDashboard::StreamEventUpdate(u) if u.event.seq == 1)
    );
    relay.shutdown.cancel();
}

#[tokio::test]
async fn silent_connections_are_closed_after_the_identify_timeout() {
    let relay = Relay::start(Config {
        identify_timeout: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    let mut silent = Client::connect(&relay.url()).await;
    // Invalid messages do not identify a connection.
    silent.send_text(r#"{"type":"request_client_list"}"#).await;
    expect_error(silent.recv().await, ErrorCode::NotIdentified);
    let (code, reason) = silent.closed().await;
    assert_eq!(code, 4001);
    assert!(reason.contains("handshake"), "{reason}");
    // An identified connection is not affected.
    let (mut dash, _) = Client::dashboard(&relay.dash()).await;
    tokio::time::sleep(Duration::from_millis(600)).await; // outlive the timeout on purpose
    dash.send_text(r#"{"type":"request_client_list"}"#).await;
    assert!(matches!(dash.recv().await, RelayToDashboard::ClientList(_)));
    assert_eq!(relay.stats().await["identifyTimeouts"], 1);
    relay.shutdown.cancel();
}

#[tokio::test]
async fn bad_frames_get_typed_errors_and_the_connection_stays_usable() {
    let relay = Relay::start(Config::default()).await;
    let mut c = Client::connect(&relay.url()).await;
    let cases: &[(&str, ErrorCode)] = &[
        ("{oops", ErrorCode::BadJson),
        ("null", ErrorCode::MissingType),
        (r#"{"type":"frobnicate"}"#, ErrorCode::UnknownType),
        (
            r#"{"type":"handshake","sessionId":"s"}"#,
            ErrorCode::InvalidMessage,
        ),
        (
            r#"{"type":"handshake","protocolVersion":1,"sdkVersion":"1","sessionId":""}"#,
            ErrorCode::InvalidMessage,
        ),
    ];
    for (text, code) in cases {
        c.send_text(text).await;
        expect_error(c.recv().await, *code);
    }
    c.ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    expect_error(c.recv().await, ErrorCode::BinaryNotSupported);

    // Still usable: it can become an SDK, and role errors are typed too.
    c.send_json(json!({"type":"handshake","protocolVersion":1,"sdkVersion":"1","sessionId":"s1"}))
        .await;
    assert!(matches!(
        c.recv::<RelayToSdk>().await,
        RelayToSdk::HandshakeAck(_)
    ));
    c.send_text(r#"{"type":"subscribe_dashboard"}"#).await;
    expect_error(c.recv().await, ErrorCode::WrongRole);
    c.send_json(json!({"type":"handshake","protocolVersion":1,"sdkVersion":"1","sessionId":"s1"}))
        .await;
    expect_error(c.recv().await, ErrorCode::WrongRole);
    c.send_text(&event("someone-else", 1, 1)).await;
    expect_error(c.recv().await, ErrorCode::SessionMismatch);
    c.send_text(r#"{"type":"stream_event","sessionId":"s1"}"#)
        .await;
    expect_error(c.recv().await, ErrorCode::InvalidMessage);

    let (mut dash, list) = Client::dashboard(&relay.dash()).await;
    assert_eq!(list.clients.len(), 1);
    dash.send_text(&event("s1", 1, 1)).await;
    expect_error(dash.recv().await, ErrorCode::WrongRole);
    c.send_text(&event("s1", 7, 1)).await;
    assert!(
        matches!(dash.recv().await, RelayToDashboard::StreamEventUpdate(u) if u.event.seq == 7)
    );
    relay.shutdown.cancel();
}

#[tokio::test]
async fn origin_and_host_are_checked() {
    let relay = Relay::start(Config {
        allowed_origins: vec!["https://dash.example.com".into()],
        ..Config::default()
    })
    .await;
    let url = relay.url();
    for origin in [
        "http://localhost:3000",
        "http://127.0.0.1:8080",
        "https://dash.example.com",
    ] {
        assert!(
            Client::connect_with(&url, &[("origin", origin)])
                .await
                .is_ok(),
            "{origin}"
        );
    }
    // Other origins open a socket (an SDK inside its app's page), but never a dashboard, even with the token
    // (the whole matrix is in security.rs).
    for origin in [
        "https://evil.example",
        "http://localhost.evil.example",
        "null",
    ] {
        let mut c = Client::connect_with(&relay.dash(), &[("origin", origin)])
            .await
            .unwrap_or_else(|e| panic!("{origin}: {e}"));
        c.send_text(r#"{"type":"subscribe_dashboard"}"#).await;
        let e = c.recv_value().await;
        assert_eq!(e["code"], "forbidden", "{origin}: {e}");
        assert!(e["message"].as_str().unwrap().contains("Origin"), "{e}");
        assert_eq!(c.closed().await.0, 4502);
    }
    // DNS rebinding: a browser that resolved evil.example to 127.0.0.1 still sends Host: evil.example.
    let (status, body) = relay.get("/health", &[("Host", "evil.example:8265")]).await;
    assert_eq!(status, 403);
    assert!(body.contains("Host"), "{body}");
    let (status, _) = relay.get("/health", &[("Host", "localhost:8265")]).await;
    assert_eq!(status, 200);
    assert_eq!(relay.stats().await["authFailures"], 3);
    relay.shutdown.cancel();
}

#[tokio::test]
async fn health_and_stats() {
    let relay = Relay::start(Config::default()).await;
    let (mut dash, _) = Client::dashboard(&relay.dash()).await;
    let mut sdk = Client::sdk(&relay.url(), "h").await;
    sdk.send_text(&event("h", 1, 10)).await;
    // Wait for the event itself: the relay orders each connection's own frames, not frames across connections
    // (another dashboard's reply may well overtake this SDK's event).
    assert!(matches!(
        dash.recv().await,
        RelayToDashboard::ClientConnected(_)
    ));
    assert!(
        matches!(dash.recv().await, RelayToDashboard::StreamEventUpdate(u) if u.event.seq == 1)
    );
    let _probe = Client::dashboard(&relay.dash()).await.0;

    let (status, body) = relay.get("/health", &[]).await;
    assert_eq!(status, 200);
    let h: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["status"], "ok");
    assert_eq!(h["version"], devrelay::VERSION);
    assert_eq!(
        (
            h["connections"].as_u64(),
            h["sdkClients"].as_u64(),
            h["dashboards"].as_u64()
        ),
        (Some(3), Some(1), Some(2))
    );
    assert!(h["uptimeSecs"].is_u64());

    let s = relay.stats().await;
    assert_eq!(s["in"]["handshake"]["messages"], 1);
    assert_eq!(s["in"]["stream_event"]["messages"], 1);
    assert_eq!(s["in"]["subscribe_dashboard"]["messages"], 2);
    assert_eq!(s["out"]["handshake_ack"]["messages"], 1);
    assert!(s["out"]["stream_event_update"]["bytes"].as_u64().unwrap() > 0);
    assert_eq!(s["gauges"]["sdkClients"], 1);
    let (status, _) = relay.get("/ws", &[]).await;
    assert_eq!(
        status, 426,
        "plain GET /ws explains it is a WebSocket endpoint (/ is the dashboard: tests/dashboard.rs)"
    );
    relay.shutdown.cancel();
}

#[tokio::test]
async fn missed_pongs_terminate_and_heartbeats_count_as_liveness() {
    let relay = Relay::start(Config {
        ping_interval: Duration::from_millis(150),
        // Dropped at once, not kept stale first (tests/stale.rs).
        stale_grace: Duration::ZERO,
        ..Config::default()
    })
    .await;
    let (mut dash, _) = Client::dashboard(&relay.dash()).await;
    // Never polled after the handshake, so it never answers a ping.
    let mut mute = Client::sdk(&relay.url(), "mute").await;
    // Never reads either, but keeps sending application heartbeats.
    let mut chatty = Client::sdk(&relay.url(), "chatty").await;
    let beat = tokio::spawn(async move {
        for i in 0..20 {
            chatty
                .send_json(json!({"type":"heartbeat","sessionId":"chatty","timestamp":i}))
                .await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Still connected after 1 s (≈ 6 ping intervals) without a single pong.
        chatty.send_text(&event("chatty", 1, 1)).await;
        chatty
    });
    // The dashboard reads continuously, so it answers pings and stays. The mute SDK's end and the chatty one's
    // event come from two connections: either may arrive first.
    let (mut mute_gone, mut chatty_heard) = (false, false);
    while !(mute_gone && chatty_heard) {
        match dash.recv().await {
            RelayToDashboard::ClientConnected(_) => {}
            RelayToDashboard::ClientDisconnected(s) => {
                assert_eq!(s.session_id, "mute", "only the silent SDK is terminated");
                mute_gone = true;
            }
            RelayToDashboard::StreamEventUpdate(u) => {
                assert_eq!(u.session_id, "chatty");
                chatty_heard = true;
            }
            other => panic!("{other:?}"),
        }
    }
    let _chatty = beat.await.unwrap();
    let (code, _) = mute.closed().await;
    assert_eq!(code, 4003);
    assert!(relay.stats().await["heartbeatTimeouts"].as_u64() >= Some(1));
    relay.shutdown.cancel();
}

#[tokio::test]
async fn a_peer_with_a_zero_window_is_timed_out_while_a_write_to_it_is_blocked() {
    // 5 s, not less: the reading witness in `blocked_writes` must not look silent itself on a loaded machine.
    let relay = Relay::start(Config {
        ping_interval: Duration::from_secs(5),
        ..Config::default()
    })
    .await;
    // A dashboard that never reads again, advertising a zero window once its 4 KiB are full, and sending nothing.
    let _stalled = Client::small_window_dashboard(&relay).await;
    let mut sdk = blocked_writes(&relay.url(), &relay.dash(), "flood").await;
    // The SDK stays alive the way SDKs do (heartbeats), so that only the stalled dashboard has to go.
    let beat = tokio::spawn(async move {
        for i in 0.. {
            sdk.send_json(json!({"type":"heartbeat","sessionId":"flood","timestamp":i}))
                .await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    // Within about two ping intervals the relay gives up on it: the gauges drop to the SDK alone.
    let deadline = tokio::time::Instant::now() + PATIENCE + Duration::from_secs(10);
    loop {
        let (_, body) = relay.get("/health", &[]).await;
        let h: Value = serde_json::from_str(&body).unwrap();
        if h["dashboards"] == 0 && h["connections"] == 1 {
            assert_eq!(h["sdkClients"], 1);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled dashboard is still connected: {h}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = relay.stats().await;
    assert_eq!(stats["heartbeatTimeouts"], 1, "{stats}");
    assert_eq!(stats["slowConsumerCloses"], 0, "{stats}");
    beat.abort();
    relay.shutdown.cancel();
}

#[tokio::test]
async fn a_dashboard_that_stops_reading_is_closed_without_hurting_the_others() {
    let relay = Relay::start(Config {
        queue_messages: 64,
        queue_bytes: 256 << 10,
        // A firehose on purpose (up to 200 MiB): past the default inbound rate limit.
        max_inbound_messages_per_sec: 10_000_000,
        max_inbound_bytes_per_sec: 16 << 30,
        ..Config::default()
    })
    .await;
    let (mut stalled, _) = Client::dashboard(&relay.dash()).await;
    let (mut live, _) = Client::dashboard(&relay.dash()).await;
    let mut sdk = Client::sdk(&relay.url(), "firehose").await;
    for d in [&mut stalled, &mut live] {
        assert!(matches!(
            d.recv().await,
            RelayToDashboard::ClientConnected(_)
        ));
    }
    // The live dashboard reads everything in a task and reports each seq it sees.
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        loop {
            let v = live.recv_value().await;
            if v["type"] == "stream_event_update" {
                let _ = seen_tx.send(v["event"]["seq"].as_u64().unwrap());
            } else {
                panic!("unexpected {v}");
            }
        }
    });
    // Bursts of 8 16 KiB events; each burst is confirmed by the live dashboard before the next, so only the
    // stalled one falls behind. Stop once the relay has closed it (bounded: 200 MiB at most).
    let mut seq = 0u64;
    let mut expect = 1u64;
    let mut closed = false;
    for burst in 0..1600 {
        for _ in 0..8 {
            seq += 1;
            sdk.send_text(&event("firehose", seq, 16 << 10)).await;
        }
        while expect <= seq {
            let got = tokio::time::timeout(PATIENCE, seen_rx.recv())
                .await
                .unwrap();
            assert_eq!(
                got,
                Some(expect),
                "the live dashboard lost or reordered an event"
            );
            expect += 1;
        }
        if burst % 8 == 7 && relay.stats().await["slowConsumerCloses"] == 1 {
            closed = true;
            break;
        }
    }
    assert!(closed, "the stalled dashboard was never closed");
    // The stalled dashboard, read at last, learns at once that it was closed: the relay reset the connection
    // (a close frame could not have passed the events it did not read), so its read fails — it never finds a
    // silent, open-looking socket.
    match stalled.ended().await {
        Ended::Reset | Ended::Eof => {}
        Ended::Close(code, reason) => panic!("expected a reset, got close {code} {reason}"),
    }
    // The live dashboard saw every event, in order, and keeps receiving.
    seq += 1;
    sdk.send_text(&event("firehose", seq, 10)).await;
    while expect <= seq {
        assert_eq!(
            tokio::time::timeout(PATIENCE, seen_rx.recv())
                .await
                .unwrap(),
            Some(expect)
        );
        expect += 1;
    }
    let stats = relay.stats().await;
    assert_eq!(stats["gauges"]["dashboards"], 1);
    assert!(stats["dropped"].as_u64() >= Some(1));
    reader.abort();
    relay.shutdown.cancel();
}

#[tokio::test]
async fn shutdown_sends_1001_to_everyone_and_returns() {
    let relay = Relay::start(Config::default()).await;
    let (mut dash, _) = Client::dashboard(&relay.dash()).await;
    let mut sdk = Client::sdk(&relay.url(), "bye").await;
    relay.shutdown.cancel();
    for c in [&mut dash, &mut sdk] {
        let (code, reason) = c.closed().await;
        assert_eq!(code, 1001);
        assert!(reason.contains("shutting down"), "{reason}");
    }
    let result = tokio::time::timeout(PATIENCE, relay.task)
        .await
        .expect("run() did not return");
    result.unwrap().unwrap();
}

/// Bytes of events `blocked_writes` pushes at a dashboard that does not read: well past what the kernel
/// (4 MiB send buffer at most here, a 4 KiB receive buffer) and tungstenite's write buffer (≈ 2 MiB) can absorb,
/// and well under the default outbound queue (16 MiB), so the relay's write blocks and the queue does not overflow.
const BLOCKING_BYTES: usize = 8 << 20;

/// An SDK sends `BLOCKING_BYTES` of events; a reading dashboard confirms each was fanned out, so that every
/// dashboard that does not read has a write blocked on it when this returns. Returns the SDK (still connected).
async fn blocked_writes(url: &str, dash_url: &str, session: &str) -> Client {
    let (mut witness, _) = Client::dashboard(dash_url).await;
    let mut sdk = Client::sdk(url, session).await;
    let pad = 64 << 10;
    let n = (BLOCKING_BYTES / pad) as u64;
    // The witness only looks for the last event's `seq` in the raw text: it must keep up with 8 MiB (and answer
    // the relay's pings, which queue behind them) on a loaded machine, where a typed parse of every frame in a
    // debug build fell behind by more than a ping interval.
    let last = [format!("\"seq\":{n},"), format!("\"seq\":{n}}}")];
    let reader = tokio::spawn(async move {
        loop {
            let text = witness.recv_text().await;
            if last.iter().any(|l| text.contains(l.as_str())) {
                return witness;
            }
        }
    });
    for seq in 1..=n {
        sdk.send_text(&event(session, seq, pad)).await;
    }
    let mut witness = reader.await.unwrap();
    witness.ws.close(None).await.unwrap();
    sdk
}

#[tokio::test]
async fn half_sent_and_silent_http_requests_are_cut_off_at_the_header_deadline() {
    let relay = Relay::start(Config {
        header_read_timeout: Duration::from_millis(300),
        ..Config::default()
    })
    .await;
    let mut half = half_request(relay.addr).await;
    let mut silent = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    until_closed(&mut half).await;
    until_closed(&mut silent).await;
    // Complete requests and upgrades are unaffected.
    let (status, _) = relay.get("/health", &[]).await;
    assert_eq!(status, 200);
    let (mut dash, _) = Client::dashboard(&relay.dash()).await;
    dash.send_text(r#"{"type":"request_client_list"}"#).await;
    assert!(matches!(dash.recv().await, RelayToDashboard::ClientList(_)));
    relay.shutdown.cancel();
}

#[tokio::test]
async fn shutdown_returns_despite_a_half_sent_request_and_a_dashboard_that_does_not_read() {
    let relay = Relay::start(Config {
        // Far beyond the test's patience: only the shutdown bound can end the half-sent request.
        header_read_timeout: Duration::from_secs(3600),
        ..Config::default()
    })
    .await;
    let mut half = half_request(relay.addr).await;
    let _stalled = Client::small_window_dashboard(&relay).await;
    let _sdk = blocked_writes(&relay.url(), &relay.dash(), "flood").await;
    relay.shutdown.cancel();
    tokio::time::timeout(PATIENCE, relay.task)
        .await
        .expect("run() did not return")
        .unwrap()
        .unwrap();
    until_closed(&mut half).await;
}

#[test]
fn the_binary_prints_its_url_and_exits_0_on_sigterm_within_its_bound() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_devrelay"))
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("devrelay listening on ws://127.0.0.1:"),
        "{line}"
    );
    let addr: std::net::SocketAddr = line
        .trim()
        .trim_start_matches("devrelay listening on ws://")
        .parse()
        .unwrap();
    let url = format!("ws://{addr}");
    // The second line is the dashboard's URL, its token in the fragment.
    let mut page = String::new();
    out.read_line(&mut page).unwrap();
    let token = page
        .split_once("#token=")
        .and_then(|(_, t)| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("no token in {page:?}"));
    let dash_url = format!("ws://{addr}/?token={token}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Peers that would hold a graceful shutdown up for ever: half an HTTP request, and a dashboard that does not
    // read with writes blocked on it; plus a well-behaved dashboard.
    let (mut dash, _half, _stalled, _sdk) = rt.block_on(async {
        let half = half_request(addr).await;
        let stalled = Client::small_window_dashboard_at(addr, &dash_url).await;
        let sdk = blocked_writes(&url, &dash_url, "flood").await;
        (Client::dashboard(&dash_url).await.0, half, stalled, sdk)
    });
    let started = std::time::Instant::now();
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let (code, _) = rt.block_on(dash.closed());
    assert_eq!(code, 1001);
    // The documented bound is 2 s (shutdown_grace 1.5 s plus exit). 5 s is about correctness, not speed: without
    // the bound the relay waits for these peers for ever.
    let (tx, rx) = std::sync::mpsc::channel();
    let pid = child.id();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(status) => status.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("the relay was still running 5 s after SIGTERM");
        }
    };
    assert!(status.success(), "{status:?}");
    eprintln!("exited {:?} after SIGTERM", started.elapsed());
}

#[test]
fn the_binary_refuses_out_of_range_flags_with_an_error_naming_them() {
    use std::process::Command;
    let max = u64::MAX.to_string();
    let cases: &[(&[&str], &str)] = &[
        (
            &["--ping-interval-secs", &max],
            "--ping-interval-secs (ping_interval) must be from 0.01 to 86400 seconds, got 18446744073709551615",
        ),
        (&["--ping-interval-secs", "0"], "--ping-interval-secs"),
        (&["--ping-interval-secs", "86401"], "--ping-interval-secs"),
        (&["--identify-timeout-secs", "0"], "--identify-timeout-secs"),
        (&["--identify-timeout-secs", &max], "from 0.01 to 3600 seconds"),
        (
            &["--header-read-timeout-secs", "0"],
            "--header-read-timeout-secs",
        ),
        (&["--max-message-bytes", "0"], "--max-message-bytes"),
        (&["--max-message-bytes", &max], "from 1024 to 268435456 bytes"),
        (&["--queue-messages", "0"], "--queue-messages"),
        (&["--queue-bytes", &max], "--queue-bytes"),
        (&["--read-buffer-bytes", "0"], "--read-buffer-bytes"),
        (&["--write-buffer-bytes", &max], "--write-buffer-bytes"),
        (&["--worker-threads", "0"], "--worker-threads (worker_threads) must be from 1 to 1024 threads, got 0"),
        (&["--allow-origin", "dash.example.com"], "--allow-origin"),
        (&["serve", "--ping-interval-secs", &max], "--ping-interval-secs"),
        (&["demo", "--rate", "1e-300"], "--rate"),
        (&["demo", "--sessions", "0"], "--sessions"),
        (&["demo", "--url", "http://127.0.0.1:1"], "--url"),
    ];
    for (args, want) in cases {
        // --port 0 so that a value wrongly accepted cannot collide with a real relay; it then just runs, so a
        // wrongly accepted flag shows up as a timeout below rather than as success.
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_devrelay"));
        match args[0] {
            "demo" => cmd.args(*args),
            "serve" => cmd.args(["serve", "--port", "0"]).args(&args[1..]),
            _ => cmd.args(["--port", "0"]).args(*args),
        };
        let out = run_with_deadline(&mut cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    // The environment variables go through the same check.
    let out = run_with_deadline(
        Command::new(env!("CARGO_BIN_EXE_devrelay"))
            .args(["--port", "0"])
            .env("DEVRELAY_PING_INTERVAL_SECS", &max),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ping-interval-secs"));
}

/// The binary's tokio worker threads: half the CPUs (at least one) unless `--worker-threads` says otherwise —
/// as the runtime itself counts them (`worker_threads` in the start-up log line, from tokio's metrics), so a
/// default that `main` ignored (tokio's own is one per CPU) fails here. (Not from /proc: the blocking pool's
/// threads, such as the one that writes the token file, carry the workers' name.)
#[test]
fn the_binary_runs_half_the_cpus_as_worker_threads_unless_told() {
    use std::io::{BufRead, BufReader};
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (args, want) in [
        (vec![], devrelay::Config::default_worker_threads(cpus)),
        (vec!["--worker-threads", "3"], 3),
    ] {
        let args: Vec<&str> = args.into_iter().chain(["--log-format", "json"]).collect();
        let (mut child, _) = util::start_binary(&args, &[], std::process::Stdio::piped());
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let started = BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
                .filter_map(|line| serde_json::from_str::<serde_json::Value>(&line).ok())
                .find(|v| {
                    v["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("relay started"))
                });
            let _ = tx.send(started);
        });
        // Bounded: a binary that never logs its start fails the test rather than hanging it.
        let started = rx.recv_timeout(PATIENCE);
        let _ = child.kill();
        let _ = child.wait();
        let started = started.ok().flatten().expect("no start-up line");
        assert_eq!(
            started["worker_threads"].as_u64(),
            Some(want as u64),
            "{args:?} on {cpus} CPUs: {started}"
        );
    }
}

/// Runs a command that is expected to exit by itself; kills it (failing the test) if it is still running after
/// `PATIENCE`.
fn run_with_deadline(cmd: &mut std::process::Command) -> std::process::Output {
    use std::process::Stdio;
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(PATIENCE) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
            panic!("{cmd:?} did not exit: an out-of-range flag was accepted");
        }
    }
}

#[tokio::test]
async fn run_refuses_a_config_out_of_range() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config {
        ping_interval: Duration::from_secs(u64::MAX),
        ..Config::default()
    };
    let err = devrelay::run(listener, config, Default::default())
        .await
        .expect_err("an out-of-range ping interval is refused");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("--ping-interval-secs"), "{err}");
}

/// A client frame of `text` (masked, with a zero key: the bytes stay as they are).
fn masked_text_frame(text: &str) -> Vec<u8> {
    let len = text.len();
    let mut f = vec![0x81];
    if len < 126 {
        f.push(0x80 | len as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    }
    f.extend_from_slice(&[0; 4]);
    f.extend_from_slice(text.as_bytes());
    f
}

/// Writes `bytes` to the client's socket without waiting, as far as the kernel takes them; returns how many it
/// took.
fn write_now(c: &mut Client, bytes: &[u8]) -> usize {
    let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = c.ws.get_mut() else {
        panic!("a plain socket");
    };
    let mut done = 0;
    while done < bytes.len() {
        match tcp.try_write(&bytes[done..]) {
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    done
}

/// Fair reads: a publisher whose socket never runs dry does not hold the others' messages back. On one thread
/// (this test's runtime runs the relay too, and it runs only while the test waits), an SDK's socket is filled
/// with as many whole events as the kernel takes — many of the relay's 64 KiB reads — and then a second SDK
/// sends one. Both sockets are ready at once; the flooding one is listed first. Its task reads once, fans out
/// and lets the other run before reading on, so the dashboard sees the lone event after at most about two
/// reads' worth of the flood, not after all of it (tokio's budget alone would let one task read 128 times).
#[tokio::test(flavor = "current_thread")]
async fn a_flooding_sdk_does_not_hold_back_another_sdks_events() {
    let relay = Relay::start(Config {
        queue_messages: 1 << 20,
        queue_bytes: 1 << 30,
        ..Config::default()
    })
    .await;
    let (mut dash, _) = Client::dashboard(&relay.dash()).await;
    let mut flood = Client::sdk(&relay.url(), "flood").await;
    let mut lone = Client::sdk(&relay.url(), "lone").await;
    for _ in 0..2 {
        assert!(matches!(
            dash.recv().await,
            RelayToDashboard::ClientConnected(_)
        ));
    }
    // 2,000 events of ~560 bytes: more than the kernel buffers between the two (writes stop at WouldBlock, on a
    // frame boundary or not; only whole frames count).
    let frames: Vec<Vec<u8>> = (1..=2000)
        .map(|seq| masked_text_frame(&event("flood", seq, 480)))
        .collect();
    let all: Vec<u8> = frames.concat();
    let taken = write_now(&mut flood, &all);
    let whole = frames
        .iter()
        .scan(0, |end, f| {
            *end += f.len();
            Some(*end)
        })
        .take_while(|&end| end <= taken)
        .count() as u64;
    let read_bytes = 64 << 10; // ws_reader::SCRATCH_BYTES
    let per_read = (read_bytes / frames[0].len()) as u64;
    assert!(
        whole >= 4 * per_read,
        "the kernel took only {taken} bytes: too few to need several reads ({per_read} events each)"
    );
    assert_eq!(
        write_now(&mut lone, &masked_text_frame(&event("lone", 1, 8))),
        masked_text_frame(&event("lone", 1, 8)).len()
    );
    // Now the relay runs: count the flood's events the dashboard gets before the lone one.
    let mut before = 0u64;
    loop {
        match dash.recv().await {
            RelayToDashboard::StreamEventUpdate(u) if u.session_id == "lone" => break,
            RelayToDashboard::StreamEventUpdate(u) => {
                assert_eq!(u.session_id, "flood");
                before += 1;
            }
            other => panic!("expected a stream_event_update, got {other:?}"),
        }
    }
    assert!(
        before <= 2 * per_read,
        "{before} of the flood's {whole} buffered events ({per_read} a read) went out before the lone event"
    );
    println!("{before} of {whole} buffered events ({per_read} a read) before the lone one");
    relay.shutdown.cancel();
}
