//! Oversized messages over real sockets, at 1.1, 2, 16 and 64 MiB: a whole message over its limit is refused with
//! `too_big` (naming its size and the limit) and the connection stays; a session's snapshot has its own, larger
//! limit, and one over it is shown to the session's dashboards; a fragmented message over the limit closes with
//! 1009 and the reason — which the peer receives, however much it was still sending — and a 64 MiB frame is never
//! held in the relay's memory.

mod util;

use devrelay::Config;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;
use util::{event, Client, Relay, PATIENCE, V2};

const MIB: usize = 1 << 20;

/// A seed-000 `state_snapshot` of about `bytes` bytes.
fn snapshot(session: &str, bytes: usize) -> String {
    let pad = "t".repeat(bytes.saturating_sub(200));
    json!({"type": "state_snapshot", "sessionId": session, "timestamp": 1,
           "threads": [{"id": "t1", "messages": [{"id": "m1", "role": "assistant", "content": [{"type": "text", "text": pad}]}]}],
           "registry": {"components": [], "tools": []}})
    .to_string()
}

/// The next `error` on `c` (skipping anything else).
async fn error(c: &mut Client) -> Value {
    loop {
        let v = c.recv_value().await;
        if v["type"] == "error" {
            return v;
        }
    }
}

#[tokio::test]
async fn whole_messages_over_their_limit_get_too_big_and_the_connection_stays() {
    // 80 MiB in a few seconds would also go past the inbound byte rate (limits.rs): that is another test.
    let relay = Relay::start(Config {
        max_inbound_bytes_per_sec: 16 << 30,
        ..Config::default()
    })
    .await;
    let (mut dash, _) = Client::dashboard(&relay.dash()).await;
    let mut v2dash = V2::dashboard(&relay.dash()).await;
    v2dash.subscribe("sessions/app").await;
    let mut sdk = Client::sdk(&relay.url(), "app").await;
    assert_eq!(dash.recv_value().await["type"], "client_connected");

    // 1.1 MiB of stream event: over the 1 MiB of a message that is not a snapshot.
    let big_event = event("app", 1, MIB + MIB / 10);
    sdk.send_text(&big_event).await;
    let e = error(&mut sdk).await;
    assert_eq!(e["code"], "too_big");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains(&big_event.len().to_string()) && message.contains("1 MiB"),
        "{message}"
    );
    // ... and the SDK carries on.
    sdk.send_text(&event("app", 2, 10)).await;
    let next = dash.recv_value().await;
    assert_eq!(
        (next["type"].as_str(), next["event"]["seq"].as_u64()),
        (Some("stream_event_update"), Some(2)),
        "{next}"
    );

    // Snapshots over their own limit (16 MiB), just over and far over: refused the same way, without being
    // buffered; the session's dashboards are told, in both protocols.
    for size in [16 * MIB + 1024, 64 * MIB] {
        sdk.send_text(&snapshot("app", size)).await;
        let e = error(&mut sdk).await;
        assert_eq!(e["code"], "too_big", "{size}");
        let message = e["message"].as_str().unwrap();
        assert!(
            message.contains("state_snapshot") && message.contains("16 MiB"),
            "{message}"
        );
        let legacy = dash.recv_value().await;
        assert_eq!(
            (legacy["type"].as_str(), legacy["code"].as_str()),
            (Some("error"), Some("too_big")),
            "{legacy}"
        );
        let text = legacy["message"].as_str().unwrap();
        assert!(
            text.starts_with("session app: snapshot too large (")
                && text.ends_with("> 16 MiB): raise --max-snapshot-bytes"),
            "{text}"
        );
        let warning = v2dash.until(|m| m["event"] == "relay.warning").await;
        assert_eq!(warning["data"]["code"], "too_big");
        assert!(warning["data"]["size"].as_u64().unwrap() > (16 * MIB) as u64);
        assert_eq!(warning["data"]["limit"], 16 * MIB);
        sdk.send_text(&event("app", 3, 10)).await;
        assert_eq!(
            dash.recv_value().await["event"]["seq"],
            3,
            "still connected"
        );
    }
    // A dashboard sends no snapshots: its limit is the 1 MiB one, and 2 MiB from it is refused as well.
    dash.send_text(&format!(
        r#"{{"type":"request_client_snapshot","sessionId":"{}"}}"#,
        "x".repeat(2 * MIB)
    ))
    .await;
    let e = error(&mut dash).await;
    assert_eq!(e["code"], "too_big", "{e}");
    dash.send_text(r#"{"type":"request_client_list"}"#).await;
    assert_eq!(dash.recv_value().await["type"], "client_list");
    let stats = relay.stats().await;
    assert_eq!(stats["tooBig"], 4, "{stats}");
    assert_eq!(stats["oversizeCloses"], 0);
    relay.shutdown.cancel();
}

#[tokio::test]
async fn snapshots_have_their_own_larger_limit_in_both_protocols() {
    let relay = Relay::start(Config::default()).await;
    let (mut dash, _) = Client::dashboard(&relay.dash()).await;
    let mut sdk = Client::sdk(&relay.url(), "long").await;
    assert_eq!(dash.recv_value().await["type"], "client_connected");
    // A long conversation's snapshot: 2 MiB, twice the limit of other messages.
    let snap = snapshot("long", 2 * MIB);
    sdk.send_text(&snap).await;
    let update = dash.recv_text().await;
    assert!(update.starts_with(r#"{"type":"state_update","sessionId":"long""#));
    assert!(update.len() > 2 * MIB - 1000, "{}", update.len());
    // A v2 session publishes one too (data over max_publish_bytes, within max_snapshot_bytes).
    let (mut v2sdk, _) = V2::hello(&relay.url(), json!({"sessionId": "v2long"})).await;
    let data: Value = serde_json::from_str(&snapshot("v2long", 2 * MIB)).unwrap();
    let ack = v2sdk
        .request(
            json!({"type": "publish", "channel": "sessions/v2long", "event": "state_snapshot", "data": data}),
            "snap",
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    relay.shutdown.cancel();
}

#[tokio::test]
async fn a_fragmented_message_over_the_limit_gets_1009_and_the_reason_while_still_sending() {
    let relay = Relay::start(Config::default()).await;
    let sdk = Client::sdk(&relay.url(), "frag").await;
    let (mut sink, mut stream) = sdk.ws.split();
    // 64 MiB in 256 KiB fragments: the relay gives up after the first 16 MiB (the largest message here), while
    // the client is still sending.
    let writer = tokio::spawn(async move {
        let piece = vec![b'x'; 256 << 10];
        let pieces = 256;
        for i in 0..pieces {
            let op = if i == 0 {
                OpCode::Data(Data::Text)
            } else {
                OpCode::Data(Data::Continue)
            };
            let frame = Frame::message(piece.clone(), op, i == pieces - 1);
            if sink.send(Message::Frame(frame)).await.is_err() {
                return;
            }
        }
    });
    let (code, reason) = loop {
        match tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("no close")
        {
            Some(Ok(Message::Close(Some(f)))) => break (u16::from(f.code), f.reason.to_string()),
            Some(Ok(_)) => {}
            other => panic!("the close frame was lost: {other:?}"),
        }
    };
    writer.abort();
    assert_eq!(code, 1009, "{reason}");
    assert!(
        reason.contains("exceeds the 16777216-byte limit"),
        "{reason}"
    );
    assert_eq!(relay.stats().await["oversizeCloses"], 1);
    relay.shutdown.cancel();
}

/// The relay binary's peak resident set (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn a_64_mib_frame_is_never_held_in_memory() {
    let (mut child, url) = util::start_binary(
        &["--no-auth", "--max-inbound-bytes-per-sec", "17179869184"],
        &[],
        std::process::Stdio::null(),
    );
    let pid = child.id();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (before, after) = rt.block_on(async {
        let mut sdk = Client::sdk(&url, "huge").await;
        // Warm up: one message through, so the relay's buffers for a connection exist.
        sdk.send_text(&event("huge", 1, 1000)).await;
        sdk.send_text(r#"{"type":"heartbeat","sessionId":"huge","timestamp":1}"#)
            .await;
        let before = peak_rss(pid);
        sdk.send_text(&snapshot("huge", 64 * MIB)).await;
        assert_eq!(error(&mut sdk).await["code"], "too_big");
        (before, peak_rss(pid))
    });
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
    // Buffered, it would have taken 64 MiB at least; skipped as it arrives, it takes nothing like it.
    assert!(
        after < before + (8 << 20),
        "peak RSS grew from {before} to {after} bytes"
    );
}
