//! The agent library against a real relay over real sockets: publish with acks, reconnect after a cut
//! connection and after a relay restart with the buffered publications resent exactly once, commands (lifecycle,
//! output, rejection, cancel, concurrency), and permission requests (answered, timed out).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use devrelay::Config as RelayConfig;
use devrelay_agent::agent_event::{CommandState, CommandStatus, Output};
use devrelay_agent::{AllowList, Client, Config, Event, Events, Identity, Runner, RunnerConfig};
use devrelay_protocol::session_event::PermissionRequest;
use devrelay_protocol::v2::{AgentCommand, Origin, Publication};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Upper bound on waiting for something that should happen (a hang fails instead of blocking CI).
const PATIENCE: Duration = Duration::from_secs(20);

struct Relay {
    addr: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

/// Every relay of these tests has this dashboard token (a restarted one too, as `--token` gives it).
const TOKEN: &str = "agent-library-test-token-0123456789";

/// A relay config with the tests' token.
fn relay_config() -> RelayConfig {
    RelayConfig {
        auth: devrelay::Auth::Tokens {
            dashboard: devrelay::Token::new(TOKEN).unwrap(),
            agent: None,
        },
        ..RelayConfig::default()
    }
}

impl Relay {
    async fn start(config: RelayConfig) -> Relay {
        Relay::on(TcpListener::bind("127.0.0.1:0").await.unwrap(), config)
    }

    /// A relay on `listener`, with the tests' token whatever `config` says.
    fn on(listener: TcpListener, mut config: RelayConfig) -> Relay {
        config.auth = relay_config().auth;
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(devrelay::run(listener, config, shutdown.clone()));
        Relay {
            addr,
            shutdown,
            task,
        }
    }

    fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    async fn stop(self) -> SocketAddr {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
        self.addr
    }
}

/// A TCP proxy in front of the relay whose connections can be cut (a network failure: the relay may have read
/// what the client sent while the client never sees the acks).
struct Proxy {
    addr: SocketAddr,
    cut: Arc<tokio::sync::Mutex<CancellationToken>>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(tokio::sync::Mutex::new(CancellationToken::new()));
        let c = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                let token = c.lock().await.clone();
                tokio::spawn(async move {
                    let Ok(mut up) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut down, &mut up) => {}
                    }
                });
            }
        });
        Proxy { addr, cut }
    }

    fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Drops every connection through the proxy (new ones work again).
    async fn cut(&self) {
        let mut token = self.cut.lock().await;
        token.cancel();
        *token = CancellationToken::new();
    }
}

fn config(url: &str, identity: Identity) -> Config {
    let mut c = Config::new(url, identity);
    c.token = Some(TOKEN.into());
    c.reconnect.initial_delay_ms = 20.0;
    c.reconnect.max_delay_ms = 200.0;
    c.seed = Some(7);
    c
}

async fn next(events: &mut Events) -> Event {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("timed out waiting for an event")
        .expect("events ended")
}

async fn until<T>(events: &mut Events, mut f: impl FnMut(&Event) -> Option<T>) -> T {
    loop {
        let e = next(events).await;
        if let Some(t) = f(&e) {
            return t;
        }
    }
}

async fn connected(events: &mut Events) -> String {
    until(events, |e| match e {
        Event::Connected { client_id, .. } => Some(client_id.clone()),
        _ => None,
    })
    .await
}

/// A watcher subscribed to `channel` (with its history).
async fn watcher(url: &str, channel: &str) -> (Client, Events) {
    let (c, mut events) = Client::connect(config(url, Identity::Anonymous)).unwrap();
    c.subscribe(channel, true);
    connected(&mut events).await;
    until(&mut events, |e| match e {
        Event::Reply(devrelay_protocol::v2::RelayMessage::Ack(a))
            if a.channel.as_deref() == Some(channel) =>
        {
            Some(())
        }
        _ => None,
    })
    .await;
    (c, events)
}

async fn publication(events: &mut Events) -> Publication {
    until(events, |e| match e {
        Event::Publication(p) => Some(p.clone()),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn publications_are_acknowledged_and_reach_watchers() {
    let relay = Relay::start(RelayConfig::default()).await;
    let (_w, mut seen) = watcher(&relay.url(), "agents/a1").await;
    let (agent, mut events) =
        Client::connect(config(&relay.url(), Identity::Agent("a1".into()))).unwrap();
    // Published before the connection is up: it waits in the outbox.
    assert_eq!(agent.publish("log", &json!({"n": 1})).unwrap(), 1);
    connected(&mut events).await;
    assert_eq!(agent.publish("log", &json!({"n": 2})).unwrap(), 2);
    assert!(agent.flush(PATIENCE).await);
    let stats = agent.stats();
    assert_eq!((stats.queued, stats.acked, stats.dropped), (0, 2, 0));
    for n in 1..=2 {
        let p = publication(&mut seen).await;
        assert_eq!((p.event.as_str(), &p.data), ("log", &json!({"n": n})));
    }
    assert!(matches!(
        agent.publish("x", &"y".repeat(2 << 20)),
        Err(devrelay_agent::Error::TooLarge { .. })
    ));
    agent.close().await;
    assert!(matches!(
        agent.publish("log", &1),
        Err(devrelay_agent::Error::Closed)
    ));
    relay.stop().await;
}

#[tokio::test]
async fn a_cut_connection_resends_without_duplicates() {
    let relay = Relay::start(RelayConfig::default()).await;
    let proxy = Proxy::start(relay.addr).await;
    let (_w, mut seen) = watcher(&relay.url(), "agents/cut").await;
    let (agent, mut events) =
        Client::connect(config(&proxy.url(), Identity::Agent("cut".into()))).unwrap();
    connected(&mut events).await;
    // Cut the network while a burst is in flight: some publications reached the relay, their acks did not.
    for n in 1..=200u64 {
        agent.publish("log", &json!({"n": n})).unwrap();
        if n == 100 {
            proxy.cut().await;
        }
    }
    let reconnected = until(&mut events, |e| match e {
        Event::Connected {
            last_seq,
            reconnect: true,
            ..
        } => Some(*last_seq),
        _ => None,
    })
    .await;
    assert!(reconnected <= 200);
    assert!(
        agent.flush(PATIENCE).await,
        "everything acknowledged in the end"
    );
    // The watcher (on the relay directly) saw every publication exactly once, in order.
    let mut got = Vec::new();
    while got.len() < 200 {
        let p = publication(&mut seen).await;
        got.push(p.data["n"].as_u64().unwrap());
    }
    assert_eq!(got, (1..=200).collect::<Vec<_>>());
    assert_eq!(agent.stats().dropped, 0);
    assert!(agent.stats().connections >= 2);
    agent.close().await;
    relay.stop().await;
}

#[tokio::test]
async fn a_relay_restart_loses_nothing_within_the_outbox_bound() {
    let relay = Relay::start(RelayConfig::default()).await;
    let (agent, mut events) =
        Client::connect(config(&relay.url(), Identity::Agent("r".into()))).unwrap();
    connected(&mut events).await;
    for n in 1..=20u64 {
        agent.publish("log", &json!({"n": n})).unwrap();
    }
    assert!(agent.flush(PATIENCE).await);
    let addr = relay.stop().await;
    until(&mut events, |e| {
        matches!(e, Event::Disconnected { .. }).then_some(())
    })
    .await;
    // While the relay is away the agent keeps producing; the outbox holds it.
    for n in 21..=60u64 {
        agent.publish("log", &json!({"n": n})).unwrap();
    }
    assert_eq!(agent.stats().queued, 40);
    let relay = Relay::on(
        TcpListener::bind(addr).await.unwrap(),
        RelayConfig::default(),
    );
    connected(&mut events).await;
    assert!(agent.flush(PATIENCE).await);
    // A dashboard opening the agent on the new relay gets all of it from the scrollback, once each.
    let (_w, mut seen) = watcher(&relay.url(), "agents/r").await;
    let mut got = Vec::new();
    while got.len() < 40 {
        got.push(publication(&mut seen).await.data["n"].as_u64().unwrap());
    }
    assert_eq!(got, (21..=60).collect::<Vec<_>>());
    agent.close().await;
    relay.stop().await;
}

#[tokio::test]
async fn a_full_outbox_drops_the_oldest_and_counts_them() {
    let mut c = config("ws://127.0.0.1:9", Identity::Agent("full".into()));
    c.outbox_messages = 5;
    let (agent, _events) = Client::connect(c).unwrap();
    for n in 0..8 {
        agent.publish("log", &n).unwrap();
    }
    let s = agent.stats();
    assert_eq!((s.queued, s.dropped, s.connected), (5, 3, false));
    agent.close().await;
}

fn command(id: &str, program: &str, args: &[&str]) -> AgentCommand {
    AgentCommand {
        id: id.into(),
        command: program.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        cwd: None,
        from: Origin {
            client_id: "test".into(),
            name: None,
        },
        timestamp: devrelay_protocol::Millis::now(),
    }
}

/// Collects a command's statuses (in order) and its output bytes until its final status.
async fn lifecycle(seen: &mut Events, id: &str) -> (Vec<CommandStatus>, Vec<u8>) {
    let mut statuses = Vec::new();
    let mut chunks: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    loop {
        let p = publication(seen).await;
        match p.event.as_str() {
            "command.status" => {
                let s: CommandStatus = serde_json::from_value(p.data).unwrap();
                if s.id != id {
                    continue;
                }
                let done = s.state.is_final();
                statuses.push(s);
                if done {
                    let seqs: Vec<u64> = chunks.keys().copied().collect();
                    assert_eq!(
                        seqs,
                        (1..=seqs.len() as u64).collect::<Vec<_>>(),
                        "output seq has no gaps"
                    );
                    return (statuses, chunks.into_values().flatten().collect());
                }
            }
            "output" => {
                let o: Output = serde_json::from_value(p.data).unwrap();
                if o.command_id.as_deref() == Some(id) {
                    chunks.insert(o.seq, o.bytes().unwrap());
                }
            }
            _ => {}
        }
    }
}

fn states(s: &[CommandStatus]) -> Vec<CommandState> {
    s.iter().map(|s| s.state).collect()
}

#[tokio::test]
async fn commands_run_if_allowed_and_report_every_step() {
    let relay = Relay::start(RelayConfig::default()).await;
    let (_w, mut seen) = watcher(&relay.url(), "agents/cmd").await;
    let (agent, mut events) =
        Client::connect(config(&relay.url(), Identity::Agent("cmd".into()))).unwrap();
    connected(&mut events).await;
    let runner = Runner::new(
        agent.clone(),
        RunnerConfig {
            allow: AllowList::parse(&[
                "sh -c *",
                "printf ...",
                "sleep ?*",
                "nosuchprogram-xyz ...",
            ])
            .unwrap(),
            max_concurrent: 1,
            cancel_grace: Duration::from_millis(500),
            ..RunnerConfig::default()
        },
    );

    // Allowed: runs, its stdout and stderr come back, and its exit code.
    runner.command(command(
        "c1",
        "sh",
        &["-c", "printf 'out\\n'; printf 'err\\n' >&2; exit 3"],
    ));
    let (s, out) = lifecycle(&mut seen, "c1").await;
    assert_eq!(
        states(&s),
        [
            CommandState::Queued,
            CommandState::Running,
            CommandState::Completed
        ]
    );
    let done = s.last().unwrap();
    assert_eq!(done.exit_code, Some(3));
    assert!(done.duration_ms.is_some() && done.started_at.is_some() && done.from.is_some());
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("out\n") && out.contains("err\n"), "{out:?}");

    // Not allowed: rejected with the reason, never run.
    let marker = std::env::temp_dir().join(format!("devrelay-agent-never-{}", std::process::id()));
    runner.command(command("c2", "touch", &[marker.to_str().unwrap()]));
    let (s, _) = lifecycle(&mut seen, "c2").await;
    assert_eq!(states(&s), [CommandState::Rejected]);
    assert!(s[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("no --allow pattern matches touch"));
    assert!(!marker.exists());
    // A reused id is rejected too; a program that does not exist fails.
    runner.command(command("c1", "printf", &["again"]));
    assert_eq!(
        states(&lifecycle(&mut seen, "c1").await.0),
        [CommandState::Rejected]
    );
    runner.command(command("c3", "nosuchprogram-xyz", &[]));
    let (s, _) = lifecycle(&mut seen, "c3").await;
    assert_eq!(s.last().unwrap().state, CommandState::Failed);
    assert!(s
        .last()
        .unwrap()
        .error
        .as_deref()
        .unwrap()
        .contains("nosuchprogram-xyz"));

    // One slot: the second sleep waits queued; cancelling it there is immediate, cancelling the running one is
    // SIGTERM.
    runner.command(command("s1", "sleep", &["30"]));
    runner.command(command("s2", "sleep", &["30"]));
    until(&mut seen, |e| match e {
        Event::Publication(p)
            if p.event == "command.status"
                && p.data["id"] == "s1"
                && p.data["state"] == "running" =>
        {
            Some(())
        }
        _ => None,
    })
    .await;
    assert_eq!((runner.running(), runner.queued()), (1, 1));
    runner.cancel(devrelay_protocol::v2::AgentCancel {
        id: "s2".into(),
        from: command("x", "x", &[]).from,
        timestamp: devrelay_protocol::Millis::now(),
    });
    // (Its `queued` went by while waiting for s1 to run.)
    let (s, _) = lifecycle(&mut seen, "s2").await;
    assert_eq!(states(&s), [CommandState::Cancelled]);
    assert_eq!(s[0].reason.as_deref(), Some("cancelled before it started"));
    assert!(s[0].started_at.is_none());
    runner.cancel(devrelay_protocol::v2::AgentCancel {
        id: "s1".into(),
        from: command("x", "x", &[]).from,
        timestamp: devrelay_protocol::Millis::now(),
    });
    let (s, _) = lifecycle(&mut seen, "s1").await;
    let last = s.last().unwrap();
    assert_eq!(
        (last.state, last.signal),
        (CommandState::Cancelled, Some(15))
    );
    runner.shutdown().await;
    agent.close().await;
    relay.stop().await;
}

#[tokio::test]
async fn a_command_that_ignores_sigterm_is_killed_after_the_grace() {
    let relay = Relay::start(RelayConfig::default()).await;
    let (_w, mut seen) = watcher(&relay.url(), "agents/stubborn").await;
    let (agent, mut events) =
        Client::connect(config(&relay.url(), Identity::Agent("stubborn".into()))).unwrap();
    connected(&mut events).await;
    let runner = Runner::new(
        agent.clone(),
        RunnerConfig {
            allow: AllowList::parse(&["sh -c *"]).unwrap(),
            cancel_grace: Duration::from_millis(200),
            ..RunnerConfig::default()
        },
    );
    runner.command(command(
        "t",
        "sh",
        &["-c", "trap '' TERM; echo ready; while :; do sleep 1; done"],
    ));
    until(&mut seen, |e| match e {
        Event::Publication(p) if p.event == "output" && p.data["commandId"] == "t" => Some(()),
        _ => None,
    })
    .await;
    runner.cancel(devrelay_protocol::v2::AgentCancel {
        id: "t".into(),
        from: command("x", "x", &[]).from,
        timestamp: devrelay_protocol::Millis::now(),
    });
    let (s, _) = lifecycle(&mut seen, "t").await;
    let last = s.last().unwrap();
    assert_eq!(
        (last.state, last.signal),
        (CommandState::Cancelled, Some(9))
    );
    agent.close().await;
    relay.stop().await;
}

#[tokio::test]
async fn ask_permission_gets_the_first_answer_or_a_denial_at_the_timeout() {
    let relay = Relay::start(RelayConfig::default()).await;
    let (dash, mut seen) = watcher(&relay.url(), "agents/p").await;
    let (agent, mut events) =
        Client::connect(config(&relay.url(), Identity::Agent("p".into()))).unwrap();
    connected(&mut events).await;
    let request = |id: &str, timeout_ms| PermissionRequest {
        request_id: id.into(),
        tool_name: "bash".into(),
        command: "rm -rf target".into(),
        description: "clean".into(),
        timeout_ms,
    };
    let asking = tokio::spawn({
        let agent = agent.clone();
        async move { agent.ask_permission(request("p1", None), PATIENCE).await }
    });
    let p = until(&mut seen, |e| match e {
        Event::Publication(p) if p.event == "permission_request" => Some(p.clone()),
        _ => None,
    })
    .await;
    dash.request(
        json!({"type": "permission_response", "requestId": p.data["requestId"], "allowed": true}),
    )
    .unwrap();
    let answer = asking.await.unwrap().unwrap();
    assert!(answer.allowed && answer.by.is_some());
    // Nobody answers: the relay denies at the request's timeout.
    let answer = agent
        .ask_permission(request("p2", Some(50)), PATIENCE)
        .await
        .unwrap();
    assert!(!answer.allowed);
    assert!(answer.reason.unwrap().contains("50 ms"));
    // A relay that cannot answer: the local wait ends it.
    let addr = relay.stop().await;
    let e = agent
        .ask_permission(request("p3", None), Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(
        matches!(e, devrelay_agent::Error::PermissionTimeout(_)),
        "{e}"
    );
    let _ = addr;
    agent.close().await;
}
