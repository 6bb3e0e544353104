//! The command runner: runs dashboards' `command`s that an `--allow` pattern permits, never through a shell, at
//! most `max_concurrent` at once (the rest wait `queued`, at most `max_queued` of them), streams their stdout and
//! stderr as `output` chunks and reports every step as `command.status` on the agent's channel — so every
//! dashboard watching sees the same. `cancel` stops a command: a queued one at once, a running one with SIGTERM
//! to its process group, then SIGKILL after `cancel_grace`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use devrelay_protocol::agent_event::{names, CommandState, CommandStatus, OutputStream};
use devrelay_protocol::v2::{AgentCancel, AgentCommand};
use devrelay_protocol::Millis;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use crate::allow::AllowList;
use crate::{Client, OutputWriter};

/// Bytes read from a command's pipe per chunk.
const READ_CHUNK: usize = 32 << 10;
/// Command ids remembered to refuse a second command with the same id.
const KNOWN_IDS: usize = 4096;

/// What the runner allows and bounds.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// Commands must match one of these; empty: every command is rejected.
    pub allow: AllowList,
    /// Commands running at once.
    pub max_concurrent: usize,
    /// Commands waiting for a slot; beyond it they are rejected.
    pub max_queued: usize,
    /// Time between SIGTERM and SIGKILL when cancelling.
    pub cancel_grace: Duration,
    /// The working directory of commands that name none (default: the agent's own).
    pub default_cwd: Option<PathBuf>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            allow: AllowList::default(),
            max_concurrent: 4,
            max_queued: 64,
            cancel_grace: Duration::from_secs(5),
            default_cwd: None,
        }
    }
}

#[derive(Debug)]
struct Queued {
    command: AgentCommand,
    queued_at: Millis,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Queued>,
    /// Running commands' cancel tokens.
    running: HashMap<String, CancellationToken>,
    known: HashSet<String>,
    known_order: VecDeque<String>,
    stopping: bool,
}

/// Runs commands for one agent; cheap to clone.
#[derive(Debug, Clone)]
pub struct Runner {
    client: Client,
    config: Arc<RunnerConfig>,
    state: Arc<Mutex<State>>,
    /// Running tasks, to wait for on shutdown.
    tasks: tokio_util::task::TaskTracker,
}

fn status(c: &AgentCommand, state: CommandState) -> CommandStatus {
    CommandStatus {
        id: c.id.clone(),
        state,
        command: c.command.clone(),
        args: c.args.clone(),
        cwd: c.cwd.clone(),
        from: Some(c.from.clone()),
        exit_code: None,
        signal: None,
        error: None,
        reason: None,
        queued_at: None,
        started_at: None,
        ended_at: None,
        duration_ms: None,
    }
}

impl Runner {
    pub fn new(client: Client, config: RunnerConfig) -> Runner {
        Runner {
            client,
            config: Arc::new(config),
            state: Arc::default(),
            tasks: tokio_util::task::TaskTracker::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn report(&self, s: &CommandStatus) {
        if let Err(e) = self.client.publish(names::COMMAND_STATUS, s) {
            tracing::warn!(id = %s.id, error = %e, "command status not published");
        }
    }

    /// Commands running now.
    pub fn running(&self) -> usize {
        self.lock().running.len()
    }

    /// Commands waiting for a slot.
    pub fn queued(&self) -> usize {
        self.lock().queue.len()
    }

    /// Takes a dashboard's command: rejects it, queues it, or starts it.
    pub fn command(&self, c: AgentCommand) {
        let reject = |reason: String| {
            let mut s = status(&c, CommandState::Rejected);
            s.reason = Some(reason);
            s.ended_at = Some(Millis::now());
            s
        };
        let mut st = self.lock();
        if st.known.contains(&c.id) {
            drop(st);
            return self.report(&reject(format!(
                "a command with id {:?} was already received: use a new id",
                c.id
            )));
        }
        st.known.insert(c.id.clone());
        st.known_order.push_back(c.id.clone());
        while st.known_order.len() > KNOWN_IDS {
            if let Some(old) = st.known_order.pop_front() {
                st.known.remove(&old);
            }
        }
        let why = if st.stopping {
            Some("the agent is stopping".to_string())
        } else if self.config.allow.is_empty() {
            Some("this agent accepts no commands (it was started without --allow)".to_string())
        } else if self.config.allow.find(&c.command, &c.args).is_none() {
            Some(format!(
                "no --allow pattern matches {} (allowed: {})",
                display(&c.command, &c.args),
                self.config.allow.sources().join(", ")
            ))
        } else if st.queue.len() >= self.config.max_queued {
            Some(format!(
                "{} commands are already waiting (max queued)",
                st.queue.len()
            ))
        } else {
            None
        };
        if let Some(reason) = why {
            drop(st);
            return self.report(&reject(reason));
        }
        let queued_at = Millis::now();
        let mut s = status(&c, CommandState::Queued);
        s.queued_at = Some(queued_at);
        // Published under the lock: `queued` always precedes `running` on the channel.
        self.report(&s);
        st.queue.push_back(Queued {
            command: c,
            queued_at,
        });
        drop(st);
        self.start_next();
    }

    /// A dashboard cancels command `id`.
    pub fn cancel(&self, c: AgentCancel) {
        let mut st = self.lock();
        if let Some(token) = st.running.get(&c.id) {
            token.cancel();
            return;
        }
        if let Some(i) = st.queue.iter().position(|q| q.command.id == c.id) {
            let q = st.queue.remove(i).expect("position is in range");
            let mut s = status(&q.command, CommandState::Cancelled);
            s.queued_at = Some(q.queued_at);
            s.ended_at = Some(Millis::now());
            s.reason = Some("cancelled before it started".into());
            self.report(&s);
            return;
        }
        drop(st);
        tracing::info!(id = %c.id, "cancel for a command that is not queued or running");
    }

    fn start_next(&self) {
        let mut st = self.lock();
        while st.running.len() < self.config.max_concurrent {
            let Some(q) = st.queue.pop_front() else { break };
            let token = CancellationToken::new();
            st.running.insert(q.command.id.clone(), token.clone());
            let runner = self.clone();
            self.tasks.spawn(async move {
                let id = q.command.id.clone();
                runner.run_one(q, token).await;
                runner.lock().running.remove(&id);
                runner.start_next();
            });
        }
    }

    async fn run_one(&self, q: Queued, cancel: CancellationToken) {
        let c = &q.command;
        let mut base = status(c, CommandState::Running);
        base.queued_at = Some(q.queued_at);
        let cwd = c
            .cwd
            .as_ref()
            .map(PathBuf::from)
            .or_else(|| self.config.default_cwd.clone());
        let mut cmd = tokio::process::Command::new(&c.command);
        cmd.args(&c.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so that cancel reaches whatever it started too.
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &cwd {
            cmd.current_dir(dir);
        }
        let started = Instant::now();
        let started_at = Millis::now();
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                let mut s = base.clone();
                s.state = CommandState::Failed;
                s.error = Some(match &cwd {
                    Some(dir) if !dir.is_dir() => {
                        format!("cannot run in {}: not a directory", dir.display())
                    }
                    _ => format!("cannot run {}: {e}", c.command),
                });
                s.ended_at = Some(Millis::now());
                return self.report(&s);
            }
        };
        base.started_at = Some(started_at);
        self.report(&base);
        let pid = child.id().map(|p| Pid::from_raw(p as i32));
        let mut out = OutputWriter::new(OutputStream::Stdout, Some(c.id.clone()));
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let (mut obuf, mut ebuf) = (vec![0u8; READ_CHUNK], vec![0u8; READ_CHUNK]);
        let mut cancelled = false;
        let mut kill_at: Option<tokio::time::Instant> = None;
        let exit = loop {
            let kill = async {
                match kill_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                n = read(&mut stdout, &mut obuf) => match n {
                    Some(n) => { let _ = out.write_to(&self.client, OutputStream::Stdout, &obuf[..n]); }
                    None => stdout = None,
                },
                n = read(&mut stderr, &mut ebuf) => match n {
                    Some(n) => { let _ = out.write_to(&self.client, OutputStream::Stderr, &ebuf[..n]); }
                    None => stderr = None,
                },
                _ = cancel.cancelled(), if !cancelled => {
                    cancelled = true;
                    if let Some(pid) = pid {
                        let _ = killpg(pid, Signal::SIGTERM);
                    }
                    kill_at = Some(tokio::time::Instant::now() + self.config.cancel_grace);
                }
                _ = kill => {
                    kill_at = None;
                    if let Some(pid) = pid {
                        let _ = killpg(pid, Signal::SIGKILL);
                    }
                }
                status = child.wait(), if stdout.is_none() && stderr.is_none() => break status,
            }
        };
        let _ = out.finish(&self.client);
        let mut s = base;
        s.ended_at = Some(Millis::now());
        s.duration_ms = Some(started.elapsed().as_millis() as u64);
        match exit {
            Ok(status) => {
                s.exit_code = status.code();
                s.signal = status.signal();
                s.state = if cancelled {
                    CommandState::Cancelled
                } else {
                    CommandState::Completed
                };
            }
            Err(e) => {
                s.state = CommandState::Failed;
                s.error = Some(format!("lost track of the process: {e}"));
            }
        }
        self.report(&s);
    }

    /// Stops taking commands, cancels the queued and running ones, and waits (bounded by the grace) for them.
    pub async fn shutdown(&self) {
        let queued: Vec<Queued> = {
            let mut st = self.lock();
            st.stopping = true;
            for token in st.running.values() {
                token.cancel();
            }
            st.queue.drain(..).collect()
        };
        for q in queued {
            let mut s = status(&q.command, CommandState::Cancelled);
            s.queued_at = Some(q.queued_at);
            s.ended_at = Some(Millis::now());
            s.reason = Some("the agent is stopping".into());
            self.report(&s);
        }
        self.tasks.close();
        let _ = tokio::time::timeout(self.config.cancel_grace * 2, self.tasks.wait()).await;
    }
}

/// Reads the next chunk from an open pipe (`None`: at its end, or it was closed); pends forever if closed, so a
/// `select!` arm for a finished pipe never fires.
async fn read<R: tokio::io::AsyncRead + Unpin>(
    pipe: &mut Option<R>,
    buf: &mut [u8],
) -> Option<usize> {
    let Some(p) = pipe.as_mut() else {
        return std::future::pending().await;
    };
    match p.read(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
    }
}

fn display(program: &str, args: &[String]) -> String {
    std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}
