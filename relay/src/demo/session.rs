//! One demo SDK client: a v2 session on the agent library (`devrelay-agent`), which reconnects with backoff and
//! resends what it buffered while the relay was away. Its `state_snapshot` / `stream_event` publications on
//! `sessions/{id}` reach seed-000 dashboards as `state_update` / `stream_event_update`.

use std::time::Duration;

use anyhow::bail;
use devrelay_agent::{Client, Config, Event, Identity};
use devrelay_protocol::session_event::names;
use devrelay_protocol::SdkMessage;
use tokio::time::{interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::agent::Agent;

/// `sdkVersion` the demo announces.
pub const SDK_VERSION: &str = concat!("devrelay-demo/", env!("CARGO_PKG_VERSION"));
/// `projectId` the demo announces.
pub const PROJECT_ID: &str = "proj_demo";

/// The library's client for one demo session.
fn config(url: String, session_id: &str) -> Config {
    let mut c = Config::new(url, Identity::Session(session_id.into()));
    c.sdk_version = Some(SDK_VERSION.into());
    c.project_id = Some(PROJECT_ID.into());
    c.name = Some(format!("demo {session_id}"));
    c
}

/// Runs one SDK session until `shutdown`. Fails only when the relay closes the session with a code that says
/// not to come back (e.g. the session was replaced), unless `reconnect_always` (then it comes back whatever the
/// code, like the Tambo SDK).
pub async fn run(
    url: String,
    mut agent: Agent,
    rate: f64,
    reconnect_always: bool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut config = config(url, agent.session_id());
    config.reconnect_always = reconnect_always;
    let (client, mut events) = Client::connect(config)?;
    // A rate of 0 (or less) means snapshots only: the events branch below is then disabled.
    let period = if rate > 0.0 {
        Duration::from_secs_f64(1.0 / rate)
    } else {
        Duration::from_secs(3600)
    };
    let mut ticks = interval(period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                client.close().await;
                return Ok(());
            }
            event = events.recv() => match event {
                // A fresh snapshot on every (re)connection and whenever a dashboard asks.
                Some(Event::Connected { .. } | Event::SnapshotRequested) => {
                    publish_snapshot(&client, &mut agent)?;
                }
                Some(Event::Disconnected { reason, retry_in }) => {
                    tracing::warn!(session = agent.session_id(), %reason, ?retry_in, "demo SDK disconnected");
                }
                Some(Event::Closed { reason }) => {
                    bail!("session {}: {reason}", agent.session_id())
                }
                Some(_) => {}
                None => bail!("session {}: the client stopped", agent.session_id()),
            },
            _ = ticks.tick(), if rate > 0.0 => {
                let (event, snapshot_due) = agent.step();
                client.publish(names::STREAM_EVENT, &SdkMessage::StreamEvent(event))?;
                if snapshot_due {
                    publish_snapshot(&client, &mut agent)?;
                }
            }
        }
    }
}

fn publish_snapshot(client: &Client, agent: &mut Agent) -> anyhow::Result<()> {
    client.publish(
        names::STATE_SNAPSHOT,
        &SdkMessage::StateSnapshot(agent.snapshot()),
    )?;
    Ok(())
}
