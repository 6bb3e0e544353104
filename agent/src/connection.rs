//! The connection task: connect, `hello`, serve the socket until it ends, reconnect with backoff — until the
//! client closes or the relay says not to come back.
//!
//! One task owns the socket. It writes what the handles queued (the outbox's unsent publications, requests),
//! reads the relay's frames (acks shrink the outbox; commands, publications and answers become events), pings
//! every `ping_interval`, and takes a connection silent for two intervals for lost (a half-open TCP connection
//! would otherwise look alive for minutes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use devrelay_protocol::backoff::Backoff;
use devrelay_protocol::close::should_reconnect;
use devrelay_protocol::rng::Rng;
use devrelay_protocol::v2::{
    decode_relay_frame, Hello, RelayInbound, RelayMessage, RequestId, V2Error,
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::{Config, Event, Identity, Shared};

/// Publications written per wake-up (then the socket is flushed and the loop looks at reads again).
const WRITE_BATCH: usize = 256;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How one connection ended.
enum End {
    /// The client closed.
    Shutdown,
    /// The relay closed with this code.
    Closed(u16, String),
    /// The transport failed or went silent.
    Lost(String),
}

pub(crate) fn subscribe_message(channel: &str, history: bool) -> String {
    let mut msg = serde_json::json!({"type": "subscribe", "channel": channel, "id": format!("sub:{channel}")});
    if history {
        msg["history"] = true.into();
    }
    msg.to_string()
}

fn hello(config: &Config) -> String {
    let (agent_id, session_id) = match &config.identity {
        Identity::Agent(id) => (Some(id.clone()), None),
        Identity::Session(id) => (None, Some(id.clone())),
        Identity::Anonymous => (None, None),
    };
    let hello = Hello {
        agent_id,
        session_id,
        name: config.name.clone(),
        sdk_version: Some(
            config
                .sdk_version
                .clone()
                .unwrap_or_else(|| concat!("devrelay-agent/", env!("CARGO_PKG_VERSION")).into()),
        ),
        project_id: config.project_id.clone(),
        metadata: config.metadata.clone(),
        batch: config.batch,
        capabilities: config.capabilities.clone(),
        token: config.token.clone(),
    };
    let mut v = serde_json::to_value(&hello).unwrap_or_default();
    v["type"] = "hello".into();
    v.to_string()
}

/// Runs the client until it is closed or told not to reconnect.
pub(crate) async fn run(shared: Arc<Shared>, config: Arc<Config>, events: mpsc::Sender<Event>) {
    let seed = config.seed.unwrap_or_else(Rng::entropy_seed);
    let mut backoff = Backoff::new(config.reconnect.clone(), seed);
    // Whether this client ever had a connection acknowledged (its outbox entries were numbered for a relay).
    let mut resumed = false;
    let reason = loop {
        let attempt = tokio::select! {
            _ = shared.closed.cancelled() => break "closed by the application".to_string(),
            r = tokio::time::timeout(config.connect_timeout, connect(&config)) => r,
        };
        let (end, open_for) = match attempt {
            Ok(Ok((ws, connected))) => {
                let opened = Instant::now();
                let end = serve(ws, connected, &shared, &config, &events, &mut resumed).await;
                (end, Some(opened.elapsed()))
            }
            Ok(Err(end)) => (end, None),
            Err(_) => (End::Lost("connect timed out".into()), None),
        };
        shared.lock().connected = false;
        let why = match end {
            End::Shutdown => break "closed by the application".to_string(),
            End::Closed(code, reason) if !should_reconnect(code) && !config.reconnect_always => {
                break format!(
                    "relay closed the connection with {code} ({reason}); not reconnecting"
                )
            }
            End::Closed(code, reason) => {
                format!("relay closed the connection with {code} ({reason})")
            }
            End::Lost(e) => e,
        };
        backoff.connection_ended(open_for.map(|d| d.as_secs_f64() * 1000.0));
        let delay = backoff
            .next_delay()
            .map(|ms| Duration::from_micros((ms * 1000.0) as u64));
        tracing::debug!(?delay, %why, "devrelay connection ended");
        let _ = events
            .send(Event::Disconnected {
                reason: why.clone(),
                retry_in: delay,
            })
            .await;
        let Some(delay) = delay else { break why };
        tokio::select! {
            _ = shared.closed.cancelled() => break "closed by the application".to_string(),
            _ = tokio::time::sleep(delay) => {}
        }
    };
    shared.closed.cancel();
    // Nobody will answer the ones still waiting.
    shared.lock().permissions.clear();
    shared.progress.notify_waiters();
    let _ = events.send(Event::Closed { reason }).await;
}

/// Connects, sends `hello`, and waits for `connected` (frames before it are not expected). A close instead
/// (e.g. 4501: a wrong token) ends it as the relay said, so a code that forbids reconnecting is obeyed.
async fn connect(config: &Config) -> Result<(Ws, devrelay_protocol::v2::Connected), End> {
    let lost = End::Lost;
    let (mut ws, _) = tokio_tungstenite::connect_async(config.url.as_str())
        .await
        .map_err(|e| lost(format!("cannot connect to {}: {e}", config.url)))?;
    ws.send(Message::text(hello(config)))
        .await
        .map_err(|e| lost(e.to_string()))?;
    // An error before `connected` is remembered: the close that follows it says why.
    let mut refused: Option<String> = None;
    loop {
        let frame = ws
            .next()
            .await
            .ok_or_else(|| lost("the relay closed before answering hello".into()))?
            .map_err(|e| lost(e.to_string()))?;
        let Message::Text(text) = frame else {
            if let Message::Close(f) = frame {
                let (code, reason) = f.map_or((1005, String::new()), |f| {
                    (f.code.into(), f.reason.to_string())
                });
                let reason = match refused {
                    Some(r) => format!("{reason}; {r}"),
                    None => reason,
                };
                return Err(End::Closed(code, reason));
            }
            continue;
        };
        for item in decode_relay_frame(&text).map_err(|e| lost(e.to_string()))? {
            match item {
                RelayInbound::Message(RelayMessage::Connected(c)) => return Ok((ws, c)),
                RelayInbound::Message(RelayMessage::Error(e)) => {
                    refused = Some(format!("{:?}: {}", e.code, e.message));
                }
                _ => {}
            }
        }
    }
}

/// Serves one open connection until it ends.
async fn serve(
    mut ws: Ws,
    connected: devrelay_protocol::v2::Connected,
    shared: &Shared,
    config: &Config,
    events: &mpsc::Sender<Event>,
    resumed: &mut bool,
) -> End {
    let channel = config.identity.channel();
    let last_seq = channel
        .as_ref()
        .and_then(|c| connected.last_seq.get(c).copied())
        .unwrap_or(0);
    let reconnect = *resumed;
    {
        let mut s = shared.lock();
        s.outbox.reconnected(last_seq, *resumed);
        s.connected = true;
        s.connections += 1;
        s.requests.clear();
        let subs: Vec<String> = s
            .subscriptions
            .iter()
            .map(|(c, h)| subscribe_message(c, *h))
            .collect();
        s.requests.extend(subs);
    }
    *resumed = true;
    shared.progress.notify_waiters();
    // An application that dropped its events receiver still publishes: events are then discarded.
    let _ = events
        .send(Event::Connected {
            client_id: connected.client_id.clone(),
            last_seq,
            reconnect,
        })
        .await;
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + config.ping_interval,
        config.ping_interval,
    );
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = true;
    let mut silent_periods = 0;
    loop {
        if let Err(e) = write_pending(&mut ws, shared, channel.as_deref()).await {
            return End::Lost(e);
        }
        let wake = shared.wake.notified();
        tokio::select! {
            _ = shared.closed.cancelled() => {
                let frame = CloseFrame { code: CloseCode::Normal, reason: "client closing".into() };
                let _ = ws.send(Message::Close(Some(frame))).await;
                let _ = tokio::time::timeout(config.close_grace, async { while ws.next().await.is_some() {} }).await;
                return End::Shutdown;
            }
            _ = wake => {}
            _ = ping.tick() => {
                if heard {
                    silent_periods = 0;
                } else {
                    silent_periods += 1;
                    if silent_periods >= 2 {
                        return End::Lost("no frame from the relay for two ping intervals".into());
                    }
                }
                heard = false;
                if let Err(e) = ws.send(Message::text(r#"{"type":"ping"}"#)).await {
                    return End::Lost(e.to_string());
                }
            }
            frame = ws.next() => {
                heard = true;
                match frame {
                    None => return End::Lost("socket closed".into()),
                    Some(Err(e)) => return End::Lost(e.to_string()),
                    Some(Ok(Message::Close(f))) => {
                        let (code, reason) = f.map_or((1005, String::new()), |f| (f.code.into(), f.reason.to_string()));
                        return End::Closed(code, reason);
                    }
                    Some(Ok(Message::Text(text))) => on_text(&text, shared, events).await,
                    Some(Ok(_)) => {}
                }
            }
        }
    }
}

/// Writes the requests and unsent publications, then flushes.
async fn write_pending(ws: &mut Ws, shared: &Shared, channel: Option<&str>) -> Result<(), String> {
    let (requests, entries) = {
        let mut s = shared.lock();
        let requests: Vec<String> = s.requests.drain(..).collect();
        let entries = if channel.is_some() {
            s.outbox.take_unsent(WRITE_BATCH)
        } else {
            Vec::new()
        };
        (requests, entries)
    };
    if requests.is_empty() && entries.is_empty() {
        return Ok(());
    }
    for r in requests {
        ws.feed(Message::text(r)).await.map_err(|e| e.to_string())?;
    }
    if let Some(channel) = channel {
        for e in &entries {
            // `channel` and `event` are validated names; the frame is built by hand around the raw data.
            let frame = format!(
                r#"{{"type":"publish","channel":{},"event":{},"data":{},"id":{},"seq":{}}}"#,
                serde_json::to_string(channel).unwrap_or_default(),
                serde_json::to_string(&e.event).unwrap_or_default(),
                e.data,
                e.seq,
                e.seq
            );
            ws.feed(Message::text(frame))
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    ws.flush().await.map_err(|e| e.to_string())?;
    // More may be waiting than one batch took.
    if shared.lock().outbox.has_unsent() {
        shared.wake.notify_one();
    }
    Ok(())
}

/// Handles one relay frame.
async fn on_text(text: &str, shared: &Shared, events: &mpsc::Sender<Event>) {
    let items = match decode_relay_frame(text) {
        Ok(items) => items,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable frame from the relay");
            return;
        }
    };
    for item in items {
        let event = match item {
            RelayInbound::Publication(p) => Event::Publication(p),
            RelayInbound::Message(m) => match m {
                RelayMessage::Ack(ack) => {
                    if let Some(RequestId::Num(seq)) = ack.id {
                        shared.lock().outbox.acked(seq);
                        shared.progress.notify_waiters();
                        continue;
                    }
                    Event::Reply(RelayMessage::Ack(ack))
                }
                RelayMessage::Error(V2Error {
                    id: Some(RequestId::Num(seq)),
                    code,
                    message,
                    ..
                }) => {
                    shared.lock().outbox.acked(seq);
                    shared.progress.notify_waiters();
                    tracing::warn!(seq, ?code, %message, "the relay refused a publication");
                    Event::PublishFailed { seq, code, message }
                }
                RelayMessage::Error(e) => Event::Reply(RelayMessage::Error(e)),
                RelayMessage::Command(c) => Event::Command(c),
                RelayMessage::Cancel(c) => Event::Cancel(c),
                RelayMessage::Input(i) => Event::Input(i),
                RelayMessage::Resize(r) => Event::Resize(r),
                RelayMessage::RequestSnapshot(_) => Event::SnapshotRequested,
                RelayMessage::PermissionResponse(answer) => {
                    let waiter = shared.lock().permissions.remove(&answer.request_id);
                    match waiter {
                        Some(tx) => match tx.send(answer) {
                            Ok(()) => continue,
                            Err(answer) => Event::LatePermissionAnswer(answer),
                        },
                        None => Event::LatePermissionAnswer(answer),
                    }
                }
                RelayMessage::Pong(_) | RelayMessage::Connected(_) => continue,
            },
        };
        let _ = events.send(event).await;
    }
}
