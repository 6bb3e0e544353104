//! `devrelay run`: runs a program under a pseudo-terminal as agent `{name}` of a relay — its terminal output
//! streamed to `agents/{name}` as ordered, sequenced chunks, then its exit status — and runs the commands
//! dashboards send that an `--allow` pattern permits (`devrelay_agent::Runner`). With `--interactive`,
//! dashboards type into the program's terminal. Ctrl-C (or SIGTERM) stops the program (SIGTERM to its process
//! group, SIGKILL after the grace), cancels commands, sends what is buffered, and leaves.
//!
//! Without a program, the agent only runs commands (its status is `idle`).

mod terminal;

use std::io::Write;
use std::time::Duration;

use anyhow::bail;
use devrelay_agent::agent_event::{names, AgentStatus, OutputStream, ProgramState};
use devrelay_agent::{
    AllowList, Client, Config, Event, Identity, OutputWriter, Runner, RunnerConfig,
};
use devrelay_protocol::channel::{is_valid_id, Namespace};
use devrelay_protocol::v2::Capabilities;
use devrelay_protocol::Millis;
use nix::sys::signal::Signal;
use serde_json::{json, Map};
use tokio_util::sync::CancellationToken;

pub use terminal::{Exit, Produced, Terminal};

/// How long the terminal may still deliver output after the program exited.
const DRAIN: Duration = Duration::from_secs(2);

/// Options of `devrelay run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunConfig {
    /// Relay WebSocket URL.
    #[arg(long, env = "DEVRELAY_URL", default_value = "ws://127.0.0.1:8265")]
    pub url: String,
    /// The relay's agent token (or its dashboard token). Default: the token file a relay on this machine wrote
    /// for the URL's port.
    #[arg(long, env = "DEVRELAY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Agent name: the channel is agents/{name} (default: the program's name and this process's id).
    #[arg(long)]
    pub name: Option<String>,
    /// Run dashboards' commands that match this pattern (repeatable): a program, then argument globs (`*`,
    /// `?`), `...` last for any further arguments, e.g. --allow 'cargo test ...'. No pattern: no commands.
    /// Anyone who can reach the relay's dashboard can run these (see the README).
    #[arg(long = "allow", value_name = "PATTERN")]
    pub allow: Vec<String>,
    /// Let dashboards type into the program's terminal (keystrokes and resize).
    #[arg(long)]
    pub interactive: bool,
    /// Commands that run at once; more wait queued.
    #[arg(long, default_value_t = 4)]
    pub max_concurrent: usize,
    /// Commands that may wait for a slot; more are rejected.
    #[arg(long, default_value_t = 64)]
    pub max_queued: usize,
    /// Seconds between SIGTERM and SIGKILL when a command is cancelled or the program is stopped.
    #[arg(long, default_value_t = 5)]
    pub cancel_grace_secs: u64,
    /// Terminal width for the program, in columns (default: $COLUMNS or 80).
    #[arg(long)]
    pub cols: Option<u16>,
    /// Terminal height for the program, in rows (default: $LINES or 24).
    #[arg(long)]
    pub rows: Option<u16>,
    /// Output kept while the relay is unreachable, in publications (the oldest go first beyond it).
    #[arg(long, default_value_t = 10_000)]
    pub outbox_messages: usize,
    /// Output kept while the relay is unreachable, in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    pub outbox_bytes: usize,
    /// Seconds to wait, when leaving, for the relay to acknowledge what is still buffered.
    #[arg(long, default_value_t = 5)]
    pub flush_secs: u64,
    /// Do not copy the program's output to this terminal.
    #[arg(long, short)]
    pub quiet: bool,
    /// The program and its arguments (after `--`).
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PROGRAM ARGS"
    )]
    pub command: Vec<String>,
}

impl RunConfig {
    /// The agent's name: `--name`, or `{program}-{pid}`.
    pub fn agent_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let program = self
                .command
                .first()
                .map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
                .unwrap_or_else(|| "agent".into());
            let clean: String = program
                .chars()
                .map(|c| {
                    if devrelay_protocol::channel::is_name_char(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("{clean}-{}", std::process::id())
        })
    }

    /// Checks the options before anything starts.
    pub fn validate(&self) -> anyhow::Result<AllowList> {
        anyhow::ensure!(
            self.url.starts_with("ws://") || self.url.starts_with("wss://"),
            "--url must be a ws:// or wss:// URL, got {:?}",
            self.url
        );
        let name = self.agent_name();
        anyhow::ensure!(
            is_valid_id(&name, Namespace::Agents),
            "--name {name:?} cannot name a channel: 1 to 248 bytes of printable ASCII without space, '\"', '\\' and '*'"
        );
        anyhow::ensure!(
            (1..=1024).contains(&self.max_concurrent),
            "--max-concurrent must be from 1 to 1024, got {}",
            self.max_concurrent
        );
        anyhow::ensure!(
            self.max_queued <= 65_536,
            "--max-queued must be at most 65536"
        );
        for (flag, v) in [("--cols", self.cols), ("--rows", self.rows)] {
            if let Some(v) = v {
                anyhow::ensure!(
                    (1..=4096).contains(&v),
                    "{flag} must be from 1 to 4096, got {v}"
                );
            }
        }
        anyhow::ensure!(
            self.outbox_messages >= 1 && self.outbox_bytes >= 1024,
            "--outbox-messages must be at least 1 and --outbox-bytes at least 1024"
        );
        AllowList::parse(&self.allow).map_err(Into::into)
    }

    fn size(&self) -> (u16, u16) {
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u16>().ok());
        (
            self.cols
                .or_else(|| env("COLUMNS"))
                .unwrap_or(80)
                .clamp(1, 4096),
            self.rows
                .or_else(|| env("LINES"))
                .unwrap_or(24)
                .clamp(1, 4096),
        )
    }
}

/// What the agent's program is doing, as `status` reports it.
struct Program {
    status: AgentStatus,
}

impl Program {
    fn publish(&self, client: &Client) {
        if let Err(e) = client.publish(names::STATUS, &self.status) {
            tracing::warn!(error = %e, "status not published");
        }
    }
}

/// Runs `devrelay run` until the program ends or `shutdown`; returns the exit code for the process.
pub async fn run(cfg: RunConfig, shutdown: CancellationToken) -> anyhow::Result<i32> {
    let allow = cfg.validate()?;
    let name = cfg.agent_name();
    let (cols, rows) = cfg.size();
    let grace = Duration::from_secs(cfg.cancel_grace_secs);
    let mut metadata = Map::new();
    metadata.insert("kind".into(), json!("devrelay run"));
    if let Ok(host) = std::env::var("HOSTNAME") {
        metadata.insert("host".into(), json!(host));
    }
    if let Ok(dir) = std::env::current_dir() {
        metadata.insert("cwd".into(), json!(dir.display().to_string()));
    }
    metadata.insert("pid".into(), json!(std::process::id()));
    if let Some((program, args)) = cfg.command.split_first() {
        metadata.insert("program".into(), json!(program));
        metadata.insert("args".into(), json!(args));
    }
    let mut config = Config::new(cfg.url.clone(), Identity::Agent(name.clone()));
    config.token = cfg
        .token
        .clone()
        .or_else(|| crate::token_file::port_of(&cfg.url).and_then(crate::token_file::read_for));
    config.name = Some(name.clone());
    config.sdk_version = Some(concat!("devrelay-run/", env!("CARGO_PKG_VERSION")).into());
    config.metadata = Some(metadata);
    config.capabilities = Some(Capabilities {
        commands: !allow.is_empty(),
        allow: allow.sources(),
        input: cfg.interactive,
        max_concurrent: Some(cfg.max_concurrent as u32),
    });
    config.outbox_messages = cfg.outbox_messages;
    config.outbox_bytes = cfg.outbox_bytes;
    let (client, mut events) = Client::connect(config)?;
    let runner = Runner::new(
        client.clone(),
        RunnerConfig {
            allow,
            max_concurrent: cfg.max_concurrent,
            max_queued: cfg.max_queued,
            cancel_grace: grace,
            default_cwd: None,
        },
    );

    let (terminal, mut output_rx, mut exit_rx) = match cfg.command.split_first() {
        Some((program, args)) => {
            let (t, p) = Terminal::spawn(program, args, cols, rows)?;
            (Some(t), Some(p.output), Some(p.exited))
        }
        None => (None, None, None),
    };
    let mut program = Program {
        status: AgentStatus {
            state: if terminal.is_some() {
                ProgramState::Running
            } else {
                ProgramState::Idle
            },
            program: cfg.command.first().cloned(),
            args: cfg.command.iter().skip(1).cloned().collect(),
            pid: terminal.as_ref().map(|t| t.pid),
            started_at: Some(Millis::now()),
            ended_at: None,
            exit_code: None,
            signal: None,
            cols: terminal.as_ref().map(|_| cols),
            rows: terminal.as_ref().map(|_| rows),
        },
    };
    program.publish(&client);
    eprintln!(
        "devrelay run: agent {name} → {} ({})",
        cfg.url,
        if cfg.allow.is_empty() {
            "no commands: no --allow".to_string()
        } else {
            format!("commands allowed: {}", cfg.allow.join(", "))
        }
    );

    let mut output = OutputWriter::new(OutputStream::Pty, None);
    let mut stdout = std::io::stdout();
    let mut exit: Option<Exit> = None;
    let mut output_open = terminal.is_some();
    let mut stopping = false;
    let mut stop_kill_at: Option<tokio::time::Instant> = None;
    // After the program exited, how long its terminal may still deliver output (something it started may hold
    // the terminal open).
    let mut drain_until: Option<tokio::time::Instant> = None;
    let closed_reason = loop {
        // The program is over once it exited and its terminal has nothing more to say.
        if exit.is_some() && !output_open {
            break None;
        }
        let kill = async {
            match stop_kill_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let drained = async {
            match drain_until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled(), if !stopping => {
                stopping = true;
                match &terminal {
                    Some(t) if exit.is_none() => {
                        t.signal(Signal::SIGTERM);
                        stop_kill_at = Some(tokio::time::Instant::now() + grace);
                    }
                    _ => break None,
                }
            }
            _ = kill => {
                stop_kill_at = None;
                if let Some(t) = &terminal {
                    t.signal(Signal::SIGKILL);
                }
            }
            chunk = recv_output(&mut output_rx), if output_open => match chunk {
                Some(bytes) => {
                    if !cfg.quiet {
                        let _ = stdout.write_all(&bytes).and_then(|()| stdout.flush());
                    }
                    if let Err(e) = output.write(&client, &bytes) {
                        tracing::warn!(error = %e, "output not published");
                    }
                }
                None => output_open = false,
            },
            _ = drained => output_open = false,
            e = recv_exit(&mut exit_rx), if exit.is_none() && terminal.is_some() => {
                exit = Some(e);
                drain_until = Some(tokio::time::Instant::now() + DRAIN);
                // Whatever the program left running on its terminal must not keep us here.
                if let Some(t) = &terminal {
                    t.signal(Signal::SIGHUP);
                }
            }
            event = events.recv() => match event {
                Some(Event::Connected { .. }) => {
                    // The latest status close to the top of the scrollback for dashboards that open now.
                    program.publish(&client);
                }
                Some(Event::Command(c)) => runner.command(c),
                Some(Event::Cancel(c)) => runner.cancel(c),
                Some(Event::Input(i)) => match &terminal {
                    Some(t) if cfg.interactive => t.write(i.data.into_bytes()),
                    _ => tracing::warn!("input refused: not --interactive"),
                },
                Some(Event::Resize(r)) => match &terminal {
                    Some(t) if cfg.interactive => {
                        t.resize(r.cols, r.rows);
                        program.status.cols = Some(r.cols);
                        program.status.rows = Some(r.rows);
                    }
                    _ => tracing::warn!("resize refused: not --interactive"),
                },
                Some(Event::Disconnected { reason, retry_in }) => {
                    tracing::warn!(%reason, ?retry_in, "relay connection lost; output is buffered");
                }
                Some(Event::Closed { reason }) => break Some(reason),
                Some(_) => {}
                None => break Some("the client stopped".into()),
            },
        }
    };
    let _ = output.finish(&client);
    runner.shutdown().await;
    if let Some(t) = &terminal {
        if exit.is_none() {
            // Told not to reconnect while the program runs: stop it too.
            t.signal(Signal::SIGTERM);
        }
    }
    let code = match exit {
        Some(e) => {
            program.status.state = ProgramState::Exited;
            program.status.exit_code = e.code;
            program.status.signal = e.signal;
            program.status.ended_at = Some(Millis::now());
            program.publish(&client);
            e.process_code()
        }
        None => 0,
    };
    if !client.flush(Duration::from_secs(cfg.flush_secs)).await {
        let s = client.stats();
        eprintln!(
            "devrelay run: {} publications not acknowledged by the relay when leaving",
            s.queued
        );
    }
    client.close().await;
    if let Some(reason) = closed_reason {
        bail!("devrelay run: {reason}");
    }
    Ok(
        if shutdown.is_cancelled() && exit.is_none_or(|e| e.signal.is_some()) {
            130
        } else {
            code
        },
    )
}

async fn recv_output(rx: &mut Option<tokio::sync::mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn recv_exit(rx: &mut Option<tokio::sync::oneshot::Receiver<Exit>>) -> Exit {
    match rx {
        Some(rx) => rx.await.unwrap_or(Exit {
            code: None,
            signal: None,
        }),
        None => std::future::pending().await,
    }
}
