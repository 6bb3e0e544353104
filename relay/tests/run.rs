//! `devrelay run` end to end: the real binary runs real programs under a PTY as an agent of a real relay, and
//! a dashboard (the agent library as a watcher) sees the coloured output in order, the exit status, commands
//! that run (exit code), are rejected (never run) or cancelled (`sleep 30`), keystrokes into an interactive
//! program, Ctrl-C, and a relay restart in the middle of the output losing nothing.

mod util;

use std::collections::BTreeMap;
use std::process::Stdio;

use devrelay::Config;
use devrelay_agent::agent_event::{CommandState, CommandStatus, Output};
use devrelay_agent::{Client, Config as ClientConfig, Event, Events, Identity};
use devrelay_protocol::v2::RelayMessage;
use serde_json::{json, Value};
use tokio::process::{Child, Command};
use util::{Relay, PATIENCE};

fn devrelay_run(relay: &Relay, name: &str, extra: &[&str]) -> Child {
    devrelay_run_at(&relay.url(), relay.token.as_deref(), name, extra)
}

fn devrelay_run_at(url: &str, token: Option<&str>, name: &str, extra: &[&str]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_devrelay"));
    cmd.args(["run", "--url", url, "--name", name, "--quiet"]);
    if let Some(t) = token {
        cmd.args(["--token", t]);
    }
    cmd.args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn exit_code(child: &mut Child) -> Option<i32> {
    tokio::time::timeout(PATIENCE, child.wait())
        .await
        .expect("devrelay run ends")
        .unwrap()
        .code()
}

fn interrupt(child: &Child) {
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
}

async fn next(events: &mut Events) -> Event {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("timed out waiting for an event")
        .expect("events ended")
}

/// A dashboard watching `agents/{name}` (with its scrollback) through the agent library.
async fn watch(url: &str, name: &str) -> (Client, Events) {
    let mut c = ClientConfig::new(url, Identity::Anonymous);
    c.reconnect.initial_delay_ms = 50.0;
    let (client, mut events) = Client::connect(c).unwrap();
    client.subscribe(&format!("agents/{name}"), true);
    loop {
        if let Event::Reply(RelayMessage::Ack(a)) = next(&mut events).await {
            if a.channel.as_deref() == Some(&format!("agents/{name}")) {
                return (client, events);
            }
        }
    }
}

/// The agent's publications as (event, data), skipping everything else.
async fn publication(events: &mut Events) -> (String, Value) {
    loop {
        if let Event::Publication(p) = next(events).await {
            return (p.event, p.data);
        }
    }
}

/// Terminal output (chunks in seq order, checked gap-free from `from`) until the program's `exited` status.
async fn terminal_from_until_exit(events: &mut Events, from: u64) -> (Vec<u8>, Value) {
    let mut chunks = BTreeMap::new();
    loop {
        let (event, data) = publication(events).await;
        match event.as_str() {
            "output" => {
                let o: Output = serde_json::from_value(data).unwrap();
                assert!(
                    chunks.insert(o.seq, o.bytes().unwrap()).is_none(),
                    "chunk {} twice",
                    o.seq
                );
            }
            "status" if data["state"] == "exited" => {
                let seqs: Vec<u64> = chunks.keys().copied().collect();
                assert_eq!(seqs, (from..from + seqs.len() as u64).collect::<Vec<_>>());
                return (chunks.into_values().flatten().collect(), data);
            }
            _ => {}
        }
    }
}

async fn terminal_until_exit(events: &mut Events) -> (Vec<u8>, Value) {
    terminal_from_until_exit(events, 1).await
}

#[tokio::test]
async fn coloured_output_arrives_in_order_then_the_exit_status() {
    let relay = Relay::start(Config::default()).await;
    let (_d, mut seen) = watch(&relay.dash(), "colours").await;
    let script = r#"for i in 1 2 3 4 5 6; do printf '\033[3%dmline %d\033[0m\n' $i $i; done; printf '\033[2K\033[1Gdone'; exit 4"#;
    let mut run = devrelay_run(&relay, "colours", &["--", "sh", "-c", script]);
    let (bytes, status) = terminal_until_exit(&mut seen).await;
    let mut want = String::new();
    for i in 1..=6 {
        // The terminal turns \n into \r\n, as any terminal shows it.
        want.push_str(&format!("\x1b[3{i}mline {i}\x1b[0m\r\n"));
    }
    want.push_str("\x1b[2K\x1b[1Gdone");
    assert_eq!(String::from_utf8(bytes).unwrap(), want);
    assert_eq!(
        (status["exitCode"].as_i64(), status["program"].as_str()),
        (Some(4), Some("sh"))
    );
    assert_eq!(
        exit_code(&mut run).await,
        Some(4),
        "devrelay run exits with the program's code"
    );
    relay.shutdown.cancel();
}

/// Sends a command from the dashboard and collects its statuses and output until its final status.
async fn run_command(
    dash: &Client,
    seen: &mut Events,
    id: &str,
    program: &str,
    args: &[&str],
) -> (Vec<CommandStatus>, String) {
    dash.request(
        json!({"type": "command", "id": id, "agentId": "cmds", "command": program, "args": args}),
    )
    .unwrap();
    collect(seen, id).await
}

async fn collect(seen: &mut Events, id: &str) -> (Vec<CommandStatus>, String) {
    let mut statuses = Vec::new();
    let mut out = BTreeMap::new();
    loop {
        let (event, data) = publication(seen).await;
        match event.as_str() {
            "command.status" if data["id"] == id => {
                let s: CommandStatus = serde_json::from_value(data).unwrap();
                let last = s.state.is_final();
                statuses.push(s);
                if last {
                    let bytes: Vec<u8> = out.into_values().flatten().collect();
                    return (statuses, String::from_utf8(bytes).unwrap());
                }
            }
            "output" if data["commandId"] == id => {
                let o: Output = serde_json::from_value(data).unwrap();
                out.insert(o.seq, o.bytes().unwrap());
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn commands_from_a_dashboard_run_are_rejected_or_cancelled() {
    let relay = Relay::start(Config::default()).await;
    let (dash, mut seen) = watch(&relay.dash(), "cmds").await;
    // No program: an agent that only runs commands.
    let mut run = devrelay_run(
        &relay,
        "cmds",
        &[
            "--allow",
            "sh -c *",
            "--allow",
            "sleep ?*",
            "--cancel-grace-secs",
            "1",
        ],
    );
    let (event, status) = publication(&mut seen).await;
    assert_eq!(
        (event.as_str(), status["state"].as_str()),
        ("status", Some("idle"))
    );

    let (s, out) = run_command(
        &dash,
        &mut seen,
        "ok",
        "sh",
        &["-c", "echo \"from $0\"; exit 7"],
    )
    .await;
    let states: Vec<CommandState> = s.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [
            CommandState::Queued,
            CommandState::Running,
            CommandState::Completed
        ]
    );
    assert_eq!(s[2].exit_code, Some(7));
    assert_eq!(out, "from sh\n");

    let marker = std::env::temp_dir().join(format!("devrelay-run-never-{}", std::process::id()));
    let (s, _) = run_command(&dash, &mut seen, "no", "touch", &[marker.to_str().unwrap()]).await;
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].state, CommandState::Rejected);
    assert!(
        s[0].reason
            .as_deref()
            .unwrap()
            .contains("allowed: sh -c *, sleep ?*"),
        "{:?}",
        s[0].reason
    );
    assert!(!marker.exists(), "a rejected command never runs");

    dash.request(json!({"type": "command", "id": "long", "agentId": "cmds", "command": "sleep", "args": ["30"]}))
        .unwrap();
    loop {
        let (event, data) = publication(&mut seen).await;
        if event == "command.status" && data["id"] == "long" && data["state"] == "running" {
            break;
        }
    }
    dash.request(json!({"type": "cancel", "id": "long", "agentId": "cmds"}))
        .unwrap();
    let (s, _) = collect(&mut seen, "long").await;
    let last = s.last().unwrap();
    assert_eq!(
        (last.state, last.signal),
        (CommandState::Cancelled, Some(15))
    );
    assert!(last.duration_ms.unwrap() < 30_000);

    // Ctrl-C: the agent leaves cleanly.
    interrupt(&run);
    assert_eq!(exit_code(&mut run).await, Some(130));
    relay.shutdown.cancel();
}

#[tokio::test]
async fn ctrl_c_stops_the_program_and_the_agent() {
    let relay = Relay::start(Config::default()).await;
    let (_d, mut seen) = watch(&relay.dash(), "sleeper").await;
    let mut run = devrelay_run(&relay, "sleeper", &["--", "sleep", "30"]);
    let (_, status) = publication(&mut seen).await;
    assert_eq!(status["state"], "running");
    interrupt(&run);
    let (_, status) = terminal_until_exit(&mut seen).await;
    assert_eq!(status["signal"], 15, "{status}");
    assert_eq!(exit_code(&mut run).await, Some(130));
    relay.shutdown.cancel();
}

#[tokio::test]
async fn an_interactive_program_takes_keystrokes_and_others_refuse_them() {
    let relay = Relay::start(Config::default()).await;
    let (dash, mut seen) = watch(&relay.dash(), "cat").await;
    let mut run = devrelay_run(&relay, "cat", &["--interactive", "--", "cat"]);
    assert_eq!(publication(&mut seen).await.1["state"], "running");
    dash.request(json!({"type": "input", "agentId": "cat", "data": "hello\r"}))
        .unwrap();
    let mut echoed = Vec::new();
    let mut last = 0;
    while !String::from_utf8_lossy(&echoed).contains("hello") {
        let (event, data) = publication(&mut seen).await;
        if event == "output" {
            let o = serde_json::from_value::<Output>(data).unwrap();
            last = o.seq;
            echoed.extend(o.bytes().unwrap());
        }
    }
    // Ctrl-D ends cat.
    dash.request(json!({"type": "input", "agentId": "cat", "data": "\u{4}"}))
        .unwrap();
    let (_, status) = terminal_from_until_exit(&mut seen, last + 1).await;
    assert_eq!(status["exitCode"], 0);
    assert_eq!(exit_code(&mut run).await, Some(0));

    let (dash, mut seen) = watch(&relay.dash(), "plain").await;
    let mut run = devrelay_run(&relay, "plain", &["--", "sleep", "30"]);
    assert_eq!(publication(&mut seen).await.1["state"], "running");
    let id = dash
        .request(json!({"type": "input", "agentId": "plain", "data": "x"}))
        .unwrap();
    loop {
        if let Event::Reply(RelayMessage::Error(e)) = next(&mut seen).await {
            if e.id == Some(devrelay_protocol::v2::RequestId::Str(id.clone())) {
                assert_eq!(e.code, devrelay_protocol::v2::V2ErrorCode::NotInteractive);
                break;
            }
        }
    }
    interrupt(&run);
    assert_eq!(exit_code(&mut run).await, Some(130));
    relay.shutdown.cancel();
}

#[tokio::test]
async fn a_relay_restart_in_the_middle_of_the_output_loses_nothing() {
    // The same token before and after the restart (as `--token` gives a relay).
    let config = || Config {
        auth: devrelay::Auth::Tokens {
            dashboard: devrelay::Token::new("restart-test-token-0123456789").unwrap(),
            agent: None,
        },
        ..Config::default()
    };
    let relay = Relay::start(config()).await;
    let addr = relay.addr;
    let dash = relay.dash();
    let (_d1, mut before) = watch(&relay.dash(), "counter").await;
    let script = "i=0; while [ $i -lt 300 ]; do echo line $i; i=$((i+1)); sleep 0.01; done";
    let mut run = devrelay_run(&relay, "counter", &["--", "sh", "-c", script]);
    // Everything the first relay delivered, until line 50 went by.
    let mut chunks: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    loop {
        let (event, data) = publication(&mut before).await;
        if event == "output" {
            let o: Output = serde_json::from_value(data).unwrap();
            chunks.insert(o.seq, o.bytes().unwrap());
            let text: Vec<u8> = chunks.values().flatten().copied().collect();
            if String::from_utf8_lossy(&text).contains("line 50\r\n") {
                break;
            }
        }
    }
    relay.shutdown.cancel();
    relay.task.await.unwrap().unwrap();
    // The program goes on printing while the relay is down; the agent buffers it.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(devrelay::run(listener, config(), shutdown.clone()));
    let (_d2, mut after) = watch(&dash, "counter").await;
    // The new relay has, in its scrollback and then live, every chunk the first one did not deliver (and maybe
    // some it did, whose acks were lost): together, every chunk of the stream, the same bytes wherever seen.
    let status = loop {
        let (event, data) = publication(&mut after).await;
        match event.as_str() {
            "output" => {
                let o: Output = serde_json::from_value(data).unwrap();
                let bytes = o.bytes().unwrap();
                assert_eq!(chunks.entry(o.seq).or_insert_with(|| bytes.clone()), &bytes);
            }
            "status" if data["state"] == "exited" => break data,
            _ => {}
        }
    };
    assert_eq!(status["exitCode"], 0);
    let seqs: Vec<u64> = chunks.keys().copied().collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "no chunk lost"
    );
    let text = String::from_utf8(chunks.into_values().flatten().collect()).unwrap();
    let want: String = (0..300).map(|i| format!("line {i}\r\n")).collect();
    assert_eq!(text, want);
    assert_eq!(exit_code(&mut run).await, Some(0));
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
