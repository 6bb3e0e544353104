//! One demo SDK client: a WebSocket to the relay that survives relay restarts (reconnect with backoff).

use std::time::Duration;

use anyhow::bail;
use devrelay_protocol::backoff::{Backoff, ReconnectPolicy};
use devrelay_protocol::rng::Rng;
use devrelay_protocol::{
    close::should_reconnect, decode, Handshake, Heartbeat, Millis, RelayToSdk, SdkMessage,
    PROTOCOL_VERSION,
};
use futures_util::{SinkExt, StreamExt};
use tokio::time::{interval, sleep, timeout, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::agent::Agent;

/// `sdkVersion` the demo announces in its handshake.
pub const SDK_VERSION: &str = concat!("devrelay-demo/", env!("CARGO_PKG_VERSION"));
/// `projectId` the demo announces in its handshake.
pub const PROJECT_ID: &str = "proj_demo";

/// Application-level heartbeat interval (the relay's own pings are answered by tungstenite as we read).
const HEARTBEAT_EVERY: Duration = Duration::from_secs(15);
/// How long to wait for the relay's close reply when shutting down.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Reconnect delays: 250 ms doubling to 5 s, ±20 % jitter so that many SDKs do not reconnect in lockstep after a
/// relay restart; a connection that stayed up 5 s resets them.
fn reconnect_policy() -> ReconnectPolicy {
    ReconnectPolicy {
        enabled: true,
        initial_delay_ms: 250.0,
        max_delay_ms: 5_000.0,
        multiplier: 2.0,
        jitter: 0.2,
        stable_after_ms: 5_000.0,
    }
}

/// How one connection ended.
enum Ended {
    Shutdown,
    /// The relay closed the connection with this code.
    Closed(u16, String),
    /// Transport error or the socket vanished (relay killed, network).
    Lost(String),
}

/// Runs one SDK session until `shutdown`, reconnecting whenever the relay goes away. Fails only when the relay
/// closes the session with a code that says not to come back (e.g. the session was replaced), unless
/// `reconnect_always` (then it comes back whatever the code, like the Tambo SDK).
pub async fn run(
    url: String,
    mut agent: Agent,
    rate: f64,
    reconnect_always: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut backoff = Backoff::new(reconnect_policy(), Rng::entropy_seed() ^ 0x5eed);
    loop {
        let connected = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = tokio_tungstenite::connect_async(url.as_str()) => r,
        };
        match connected {
            Ok((ws, _)) => {
                let opened = Instant::now();
                tracing::info!(session = agent.session_id(), "demo SDK connected");
                match serve(ws, &mut agent, rate, &shutdown).await {
                    Ended::Shutdown => return Ok(()),
                    Ended::Closed(code, reason) if !should_reconnect(code) && !reconnect_always => {
                        bail!(
                            "relay closed session {} with {code} ({reason}); not reconnecting",
                            agent.session_id()
                        )
                    }
                    Ended::Closed(code, reason) => {
                        tracing::warn!(session = agent.session_id(), code, %reason, "relay closed the connection")
                    }
                    Ended::Lost(e) => {
                        tracing::warn!(session = agent.session_id(), error = %e, "connection lost")
                    }
                }
                backoff.connection_ended(Some(opened.elapsed().as_secs_f64() * 1000.0));
            }
            Err(e) => {
                tracing::debug!(session = agent.session_id(), error = %e, "connect failed")
            }
        }
        // The policy is enabled, so there is always a delay; `as` saturates (never panics) on the finite,
        // non-negative milliseconds it returns.
        let delay = Duration::from_millis(backoff.next_delay().unwrap_or_default().round() as u64);
        tracing::info!(
            session = agent.session_id(),
            attempt = backoff.attempt(),
            "reconnecting in {delay:?}"
        );
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = sleep(delay) => {}
        }
    }
}

/// Speaks the SDK side of the protocol on one open socket: handshake, snapshot, then events at `rate` per
/// second, heartbeats, and a snapshot whenever the relay asks for one.
async fn serve<S>(mut ws: S, agent: &mut Agent, rate: f64, shutdown: &CancellationToken) -> Ended
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error>
        + futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
{
    let handshake = SdkMessage::Handshake(Handshake {
        protocol_version: PROTOCOL_VERSION,
        sdk_version: SDK_VERSION.into(),
        project_id: Some(PROJECT_ID.into()),
        session_id: agent.session_id().into(),
    });
    if let Err(e) = send(&mut ws, &handshake).await {
        return Ended::Lost(e.to_string());
    }
    if let Err(e) = send(&mut ws, &SdkMessage::StateSnapshot(agent.snapshot())).await {
        return Ended::Lost(e.to_string());
    }

    // A rate of 0 (or less) means snapshots and heartbeats only: the events branch below is then disabled.
    let period = if rate > 0.0 {
        Duration::from_secs_f64(1.0 / rate)
    } else {
        Duration::from_secs(3600)
    };
    let mut events = interval(period);
    events.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut heartbeat = interval(HEARTBEAT_EVERY);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);

    loop {
        let sent = tokio::select! {
            _ = shutdown.cancelled() => {
                let frame = CloseFrame { code: CloseCode::Away, reason: "demo SDK stopping".into() };
                let _ = ws.send(Message::Close(Some(frame))).await;
                // Wait briefly for the relay's close reply so it sees an orderly close, not a reset.
                let _ = timeout(CLOSE_GRACE, async { while ws.next().await.is_some() {} }).await;
                return Ended::Shutdown;
            }
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => match decode::<RelayToSdk>(&text) {
                    Ok(RelayToSdk::RequestSnapshot) => {
                        send(&mut ws, &SdkMessage::StateSnapshot(agent.snapshot())).await
                    }
                    Ok(RelayToSdk::HandshakeAck(ack)) => {
                        tracing::debug!(session = %ack.session_id, server = %ack.server_version, "handshake acknowledged");
                        Ok(())
                    }
                    Ok(RelayToSdk::Error(e)) => {
                        tracing::warn!(session = agent.session_id(), error = ?e, "relay reported an error");
                        Ok(())
                    }
                    Err(e) => {
                        tracing::warn!(session = agent.session_id(), error = %e, "unreadable frame from relay");
                        Ok(())
                    }
                },
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return Ended::Closed(code, reason);
                }
                // Pings are answered by tungstenite itself; binary frames are not part of the protocol.
                Some(Ok(_)) => Ok(()),
                Some(Err(e)) => return Ended::Lost(e.to_string()),
                None => return Ended::Lost("socket closed".into()),
            },
            _ = events.tick(), if rate > 0.0 => {
                let (event, snapshot_due) = agent.step();
                match send(&mut ws, &SdkMessage::StreamEvent(event)).await {
                    Ok(()) if snapshot_due => {
                        send(&mut ws, &SdkMessage::StateSnapshot(agent.snapshot())).await
                    }
                    other => other,
                }
            }
            _ = heartbeat.tick() => {
                let beat = Heartbeat { session_id: agent.session_id().into(), timestamp: Millis::now() };
                send(&mut ws, &SdkMessage::Heartbeat(beat)).await
            }
        };
        if let Err(e) = sent {
            return Ended::Lost(e.to_string());
        }
    }
}

async fn send<S>(ws: &mut S, msg: &SdkMessage) -> Result<(), tokio_tungstenite::tungstenite::Error>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    let text = serde_json::to_string(msg).expect("protocol messages serialize");
    ws.send(Message::text(text)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_from_250_ms_doubling_to_5_s_with_bounded_jitter() {
        let mut b = Backoff::new(reconnect_policy(), 9);
        for attempt in 0..12 {
            let base = (250.0 * 2f64.powi(attempt)).min(5_000.0);
            let d = b.next_delay().unwrap();
            assert!(
                d >= base * 0.8 && d <= (base * 1.2).min(5_000.0),
                "attempt {attempt}: {d}"
            );
        }
        b.connection_ended(Some(5_000.0));
        assert_eq!(b.attempt(), 0, "a stable connection resets the schedule");
    }
}
