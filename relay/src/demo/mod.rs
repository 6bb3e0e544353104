//! The demo SDK: simulated app sessions that connect to a relay and emit realistic devtools traffic.
//!
//! `devrelay demo` stands in for an instrumented app while there is none: each session is a v2 SDK session on
//! the agent library (`devrelay-agent`): snapshots with threads of every content type and a registry, AG-UI
//! event sequences, answers to `request_snapshot`, heartbeats; it reconnects with backoff when the relay
//! restarts. Seed-000 dashboards see it as any SDK.

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
    /// A token of the relay (dashboard or agent), sent as `?token=` on the URL. SDKs on the relay's own machine
    /// need none; one on another machine does.
    #[arg(
        long,
        env = "DEVRELAY_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// Reconnect whatever the relay's close code says, as the Tambo SDK's socket library does (to see how the
    /// relay copes with such clients, e.g. two with one session id).
    #[arg(long)]
    pub reconnect_always: bool,
}

impl Default for DemoConfig {
    fn default() -> Self {
        DemoConfig {
            url: format!("ws://127.0.0.1:{}", devrelay_protocol::limits::DEFAULT_PORT),
            sessions: 2,
            rate: 8.0,
            seed: None,
            token: None,
            reconnect_always: false,
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

    /// The URL the sessions connect to: `--url`, with `?token=` when a token was given.
    pub fn connect_url(&self) -> String {
        match &self.token {
            None => self.url.clone(),
            Some(token) => {
                // `ws://host:port` has no path: the query needs one before it (`ws://host:port/?token=`).
                let has_path = self
                    .url
                    .split_once("://")
                    .is_some_and(|(_, rest)| rest.contains('/'));
                let base = if has_path {
                    self.url.clone()
                } else {
                    format!("{}/", self.url)
                };
                let sep = if base.contains('?') { '&' } else { '?' };
                let token: String = percent_encoding::utf8_percent_encode(
                    token,
                    percent_encoding::NON_ALPHANUMERIC,
                )
                .collect();
                format!(
                    "{base}{sep}{}={token}",
                    devrelay_protocol::auth::TOKEN_PARAM
                )
            }
        }
    }

    #[cfg(test)]
    fn url_with(url: &str, token: Option<&str>) -> String {
        DemoConfig {
            url: url.into(),
            token: token.map(Into::into),
            ..DemoConfig::default()
        }
        .connect_url()
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
        sessions.spawn(session::run(
            cfg.connect_url(),
            agent,
            cfg.rate,
            cfg.reconnect_always,
            stop.clone(),
        ));
    }
    tracing::info!(
        sessions = cfg.sessions,
        rate = cfg.rate,
        url = %cfg.url,
        token = cfg.token.is_some(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_goes_on_the_url() {
        assert_eq!(DemoConfig::url_with("ws://h:1", None), "ws://h:1");
        assert_eq!(
            DemoConfig::url_with("ws://h:1", Some("a.b-c")),
            "ws://h:1/?token=a%2Eb%2Dc"
        );
        assert_eq!(
            DemoConfig::url_with("ws://h:1/ws?x=1", Some("t")),
            "ws://h:1/ws?x=1&token=t"
        );
    }
}
