//! The relay's limits over real sockets: per connection inbound rate (messages and bytes per second, token
//! buckets: `rate_limited`, then 4004 if it persists) and idle timeout (4005); per relay open connections (503 at
//! the upgrade) and new connections per second (429).

mod util;

use std::time::Duration;

use devrelay::Config;
use serde_json::{json, Value};
use util::{event, Client, Relay, PATIENCE, V2};

/// Sends `n` events of `pad` bytes as fast as it can.
async fn flood(sdk: &mut Client, session: &str, n: u64, pad: usize) {
    for seq in 1..=n {
        sdk.send_text(&event(session, seq, pad)).await;
    }
}

/// Reads the SDK's replies until a `rate_limited` error; returns it.
async fn rate_limited(sdk: &mut Client) -> Value {
    loop {
        let v = sdk.recv_value().await;
        if v["code"] == "rate_limited" {
            return v;
        }
    }
}

#[tokio::test]
async fn over_its_message_rate_an_sdk_is_told_and_its_messages_dropped_but_it_stays() {
    let relay = Relay::start(Config {
        max_inbound_messages_per_sec: 50,
        rate_limit_grace: Duration::from_secs(3600),
        ..Config::default()
    })
    .await;
    let (mut dash, _) = Client::dashboard(&relay.dash()).await;
    let mut sdk = Client::sdk(&relay.url(), "fast").await;
    assert_eq!(dash.recv_value().await["type"], "client_connected");
    flood(&mut sdk, "fast", 300, 10).await;
    let e = rate_limited(&mut sdk).await;
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("dropped") && message.contains("50 messages"),
        "{message}"
    );
    // Markers after the flood (sent until one gets through the refilling bucket): once one arrives, everything
    // the dashboard will get of the flood has come, in order before it.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut delivered = 0;
    let mut seq = 1000;
    'marked: loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no marker got through"
        );
        sdk.send_text(&event("fast", seq, 0)).await;
        seq += 1;
        let wait = tokio::time::sleep(Duration::from_millis(200));
        tokio::pin!(wait);
        loop {
            tokio::select! {
                _ = &mut wait => continue 'marked,
                v = dash.recv_value() => {
                    if v["type"] == "stream_event_update" {
                        if v["event"]["seq"].as_u64() >= Some(1000) {
                            break 'marked;
                        }
                        delivered += 1;
                    }
                }
            }
        }
    }
    // The bucket held 50 (plus what refilled while the flood was sent); the rest was dropped, not queued.
    assert!(
        (50..300).contains(&delivered),
        "{delivered} of 300 delivered"
    );
    let stats = relay.stats().await;
    assert!(
        stats["rateLimited"].as_u64() >= Some(300 - delivered),
        "{stats}"
    );
    assert_eq!(stats["rateLimitCloses"], 0);
    assert_eq!(stats["gauges"]["sdkClients"], 1, "still connected");
    relay.shutdown.cancel();
}

#[tokio::test]
async fn an_sdk_that_keeps_going_over_its_rate_is_closed_with_4004() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let relay = Relay::start(Config {
        max_inbound_messages_per_sec: 10,
        rate_limit_grace: Duration::from_millis(200),
        ..Config::default()
    })
    .await;
    let sdk = Client::sdk(&relay.url(), "flood").await;
    let (mut sink, mut stream) = sdk.ws.split();
    // It keeps sending (until the socket is gone) ...
    let sender = tokio::spawn(async move {
        for seq in 1.. {
            if sink
                .send(Message::text(event("flood", seq, 0)))
                .await
                .is_err()
            {
                return;
            }
            tokio::task::yield_now().await;
        }
    });
    // ... and is told, then closed: 4004 with the reason.
    let mut told = false;
    let (code, reason) = loop {
        let msg = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("never closed")
            .expect("ended without a close frame")
            .unwrap();
        match msg {
            Message::Text(t) => told |= t.contains("rate_limited"),
            Message::Close(Some(f)) => break (u16::from(f.code), f.reason.to_string()),
            Message::Close(None) => panic!("a close without a code"),
            _ => {}
        }
    };
    sender.abort();
    assert!(told, "a rate_limited error came first");
    assert_eq!(code, 4004, "{reason}");
    assert!(reason.contains("rate limited"), "{reason}");
    assert_eq!(relay.stats().await["rateLimitCloses"], 1);
    relay.shutdown.cancel();
}

#[tokio::test]
async fn bytes_per_second_count_too_and_v2_gets_rate_limited() {
    let relay = Relay::start(Config {
        max_inbound_bytes_per_sec: 4096,
        rate_limit_grace: Duration::from_secs(3600),
        max_snapshot_bytes: 1 << 20,
        ..Config::default()
    })
    .await;
    let (mut sdk, _) = V2::hello(&relay.url(), json!({"sessionId": "big"})).await;
    // The bucket holds one largest message (here 1 MiB) at most; 12 of 100 KB go past it.
    let pad = "x".repeat(100 << 10);
    for i in 0..12 {
        sdk.send(json!({"type": "publish", "channel": "sessions/big", "event": "note", "data": {"pad": pad, "i": i}}))
            .await;
    }
    let e = sdk.until(|m| m["type"] == "error").await;
    assert_eq!(e["code"], "RATE_LIMITED", "{e}");
    assert!(e["message"].as_str().unwrap().contains("4096 bytes"), "{e}");
    relay.shutdown.cancel();
}

#[tokio::test]
async fn a_connection_that_says_nothing_for_the_idle_timeout_is_closed_with_4005() {
    let relay = Relay::start(Config {
        idle_timeout: Duration::from_secs(2),
        ..Config::default()
    })
    .await;
    // An SDK that keeps talking (heartbeats) is not idle; a dashboard that only listens is.
    let mut sdk = Client::sdk(&relay.url(), "talker").await;
    let beat = tokio::spawn(async move {
        for i in 0.. {
            sdk.send_json(json!({"type":"heartbeat","sessionId":"talker","timestamp":i}))
                .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let (mut quiet, _) = Client::dashboard(&relay.dash()).await;
    let (code, reason) = quiet.closed().await;
    assert_eq!(code, 4005, "{reason}");
    assert!(reason.contains("idle"), "{reason}");
    let stats = relay.stats().await;
    assert_eq!(stats["idleTimeouts"], 1);
    assert_eq!(stats["gauges"]["sdkClients"], 1, "the talking SDK stays");
    beat.abort();
    relay.shutdown.cancel();
}

/// An upgrade that is refused: its status, `Retry-After` and body.
async fn refused(url: &str) -> (u16, Option<String>, String) {
    match Client::connect_with(url, &[]).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => (
            res.status().as_u16(),
            res.headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string()),
            String::from_utf8_lossy(res.body().as_deref().unwrap_or_default()).to_string(),
        ),
        Ok(_) => panic!("the upgrade was accepted"),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn beyond_max_connections_the_upgrade_is_refused_with_503_and_the_reason() {
    let relay = Relay::start(Config {
        max_connections: 3,
        ..Config::default()
    })
    .await;
    let sdk = Client::sdk(&relay.url(), "one").await;
    let _d1 = Client::dashboard(&relay.dash()).await;
    let _d2 = Client::dashboard(&relay.dash()).await;
    let (status, retry, body) = refused(&relay.url()).await;
    assert_eq!((status, retry.as_deref()), (503, Some("1")));
    assert!(
        body.contains("3 connections") && body.contains("--max-connections"),
        "{body}"
    );
    // A slot comes back when a connection goes.
    drop(sdk);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(c) = Client::connect_with(&relay.url(), &[]).await {
            drop(c);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no slot came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = relay.stats().await;
    assert!(
        stats["rejectedUpgradesByReason"]["full"].as_u64() >= Some(1),
        "{stats}"
    );
    relay.shutdown.cancel();
}

#[tokio::test]
async fn beyond_the_connection_rate_the_upgrade_is_refused_with_429() {
    let relay = Relay::start(Config {
        max_connections_per_sec: 5,
        ..Config::default()
    })
    .await;
    // The bucket holds 5 and refills at 5 per second: 60 attempts in a row cannot all pass.
    let mut open = Vec::new();
    let mut refusal = None;
    for _ in 0..60 {
        match Client::connect_with(&relay.url(), &[]).await {
            Ok(c) => open.push(c),
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                let body =
                    String::from_utf8_lossy(res.body().as_deref().unwrap_or_default()).to_string();
                refusal = Some((res.status().as_u16(), body));
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let (status, body) = refusal.expect("every connection was accepted");
    assert_eq!(status, 429);
    assert!(body.contains("--max-connections-per-sec"), "{body}");
    assert!(open.len() >= 5, "the first five pass: {}", open.len());
    assert!(relay.stats().await["rejectedUpgradesByReason"]["rate"].as_u64() >= Some(1));
    relay.shutdown.cancel();
}

/// The listen(2) backlog is what `bind` was given, not mio's 128 (with which a burst of connects overflowed the
/// accept queue and waited a second for a SYN retransmit). Read back from the kernel with `ss`: for a listening
/// socket its Send-Q column is the backlog.
#[tokio::test]
async fn the_listening_socket_has_the_configured_backlog() {
    for backlog in [777u32, devrelay::DEFAULT_LISTEN_BACKLOG] {
        let listener = devrelay::bind("127.0.0.1", 0, backlog).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let out = std::process::Command::new("ss")
            .args(["-ltnH", &format!("sport = :{port}")])
            .output()
            .expect("ss (iproute2) is installed by scripts/setup.sh");
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find(|l| l.contains(&format!("127.0.0.1:{port}")))
            .unwrap_or_else(|| panic!("no listening socket on port {port} in `ss` output: {text}"));
        // State Recv-Q Send-Q Local Peer
        let send_q: u32 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
        let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(send_q, backlog.min(somaxconn), "ss line: {line}");
    }
}

#[tokio::test]
async fn bind_reports_a_host_that_does_not_resolve() {
    let err = devrelay::bind("no-such-host.invalid", 0, 16)
        .await
        .unwrap_err();
    assert!(!err.to_string().is_empty());
}
