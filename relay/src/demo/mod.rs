//! The demo SDK: simulated app sessions that connect to a relay and emit realistic devtools traffic.
//!
//! `devrelay demo` stands in for an instrumented app while there is none: each session speaks the SDK side of
//! the protocol (handshake, snapshots with threads of every content type and a registry, AG-UI event sequences,
//! heartbeats, answers to `request_snapshot`) and reconnects with backoff when the relay restarts.

mod agent;
mod scenario;
mod session;

use anyhow::Context;
use devrelay_protocol::rng::Rng;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use agent::Agent;
pub use session::{PROJECT_ID, SDK_VERSION};

/// Options of `devrelay demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoConfig {
    /// Relay WebSocket URL the simulated SDK clients connect to.
    #[arg(long, default_value = "ws://127.0.0.1:8265")]
    pub url: String,
    /// Number of simulated SDK sessions (one WebSocket each).
    #[arg(long, default_value_t = 2)]
    pub sessions: usize,
    /// AG-UI stream events per second, per session (0: snapshots and heartbeats only).
    #[arg(long, default_value_t = 8.0)]
    pub rate: f64,
    /// Seed for the generated traffic and the session ids: the same seed gives the same sessions, so a restarted
    /// demo shows up as the same clients. Random when absent.
    #[arg(long)]
    pub seed: Option<u64>,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            url: format!("ws://127.0.0.1:{}", devrelay_protocol::limits::DEFAULT_PORT),
            sessions: 2,
            rate: 8.0,
            seed: None,
        }
    }
}

impl DemoConfig {
    /// The session ids this configuration connects as.
    pub fn session_ids(&self) -> Vec<String> {
        let seed = self.seed();
        (1..=self.sessions)
            .map(|i| format!("demo-{:04x}-{i}", seed & 0xffff))
            .collect()
    }

    /// Most sessions one demo process runs (each is a socket and a task).
    pub const MAX_SESSIONS: usize = 10_000;
    /// Highest `--rate`, events per second per session.
    pub const MAX_RATE: f64 = 100_000.0;
    /// Lowest non-zero `--rate`: an event every 100 s.
    pub const MIN_RATE: f64 = 0.01;

    /// Checks the options before anything connects: a bad one is an error naming the flag and its range.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=Self::MAX_SESSIONS).contains(&self.sessions),
            "--sessions must be from 1 to {}, got {}",
            Self::MAX_SESSIONS,
            self.sessions
        );
        anyhow::ensure!(
            self.rate == 0.0 || (Self::MIN_RATE..=Self::MAX_RATE).contains(&self.rate),
            "--rate must be 0 (snapshots and heartbeats only) or from {} to {} events per second, got {}",
            Self::MIN_RATE,
            Self::MAX_RATE,
            self.rate
        );
        anyhow::ensure!(
            self.url.starts_with("ws://") || self.url.starts_with("wss://"),
            "--url must be a ws:// or wss:// URL, got {:?}",
            self.url
        );
        Ok(())
    }

    fn seed(&self) -> u64 {
        // Random per process unless given; fixed once here so ids and traffic agree.
        self.seed.unwrap_or_else(|| {
            static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
            *SEED.get_or_init(Rng::entropy_seed)
        })
    }
}

/// Runs the demo sessions until `shutdown` is cancelled (then closes each socket cleanly). Returns early with an
/// error only if a session is told by the relay not to reconnect.
pub async fn run(cfg: DemoConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    cfg.validate()?;
    let seed = cfg.seed();
    // Our own child token: a failing session stops its siblings without cancelling the caller's token.
    let stop = shutdown.child_token();
    let mut sessions = JoinSet::new();
    for (i, id) in cfg.session_ids().into_iter().enumerate() {
        let rng = Rng::with_seed(
            seed.wrapping_add(i as u64)
                .wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        let agent = Agent::new(id, rng);
        sessions.spawn(session::run(cfg.url.clone(), agent, cfg.rate, stop.clone()));
    }
    tracing::info!(
        sessions = cfg.sessions,
        rate = cfg.rate,
        url = %cfg.url,
        "demo SDK running"
    );
    let mut result = Ok(());
    while let Some(done) = sessions.join_next().await {
        let ended = done.context("demo session task failed").and_then(|r| r);
        if let Err(e) = ended {
            stop.cancel();
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    result
}
