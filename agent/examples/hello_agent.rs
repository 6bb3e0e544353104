//! A small agent: connects to a relay as `agents/hello`, prints a few coloured lines, asks the dashboards for
//! permission, and runs the `echo` / `date` commands dashboards send it, until Ctrl-C.
//!
//! ```sh
//! cargo run -p devrelay                                      # a relay on ws://127.0.0.1:8265
//! cargo run -p devrelay-agent --example hello_agent          # this agent (or pass the relay URL)
//! ```
//! Open the dashboard's Agents view to see its output, answer its prompt and send it `echo hi`.

use std::time::Duration;

use devrelay_agent::agent_event::{names, AgentStatus, OutputStream, ProgramState};
use devrelay_agent::{
    AllowList, Client, Config, Event, Identity, OutputWriter, Runner, RunnerConfig,
};
use devrelay_protocol::session_event::PermissionRequest;
use devrelay_protocol::v2::Capabilities;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:8265".into());
    let allow = AllowList::parse(&["echo ...", "date"])?;
    let mut config = Config::new(url, Identity::Agent("hello".into()));
    config.name = Some("hello agent (example)".into());
    config.capabilities = Some(Capabilities {
        commands: true,
        allow: allow.sources(),
        input: false,
        max_concurrent: Some(2),
    });
    let (client, mut events) = Client::connect(config)?;
    let runner = Runner::new(
        client.clone(),
        RunnerConfig {
            allow,
            max_concurrent: 2,
            ..RunnerConfig::default()
        },
    );
    client.publish(
        names::STATUS,
        &AgentStatus {
            state: ProgramState::Idle,
            program: None,
            args: Vec::new(),
            pid: Some(std::process::id()),
            started_at: Some(devrelay_protocol::Millis::now()),
            ended_at: None,
            exit_code: None,
            signal: None,
            cols: None,
            rows: None,
        },
    )?;
    let mut out = OutputWriter::new(OutputStream::Pty, None);
    for (colour, word) in [(31, "red"), (32, "green"), (34, "blue")] {
        out.write(
            &client,
            format!("\x1b[{colour}mhello in {word}\x1b[0m\r\n").as_bytes(),
        )?;
    }
    // Ask in the background: the answer comes from whichever dashboard answers first.
    tokio::spawn({
        let client = client.clone();
        async move {
            let request = PermissionRequest {
                request_id: String::new(),
                tool_name: "example".into(),
                command: "say hello to the world".into(),
                description: "The example agent would like to greet everyone".into(),
                timeout_ms: Some(120_000),
            };
            match client
                .ask_permission(request, Duration::from_secs(130))
                .await
            {
                Ok(a) => println!("permission: allowed={} ({:?})", a.allowed, a.reason),
                Err(e) => println!("permission: {e}"),
            }
        }
    });
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            event = events.recv() => match event {
                Some(Event::Connected { client_id, .. }) => println!("connected as {client_id}"),
                Some(Event::Disconnected { reason, retry_in }) => println!("disconnected ({reason}); retry in {retry_in:?}"),
                Some(Event::Command(c)) => runner.command(c),
                Some(Event::Cancel(c)) => runner.cancel(c),
                Some(Event::Closed { reason }) => { println!("closed: {reason}"); break }
                Some(_) => {}
                None => break,
            },
        }
    }
    runner.shutdown().await;
    client.flush(Duration::from_secs(2)).await;
    client.close().await;
    Ok(())
}
