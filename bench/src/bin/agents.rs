//! `devrelay-bench-agents`: seed 003's agent load against a running relay, measured end to end.
//!
//! 1. **Output fan-out**: `--agents` agents (the `devrelay-agent` library: outbox, seq, acks — the real path)
//!    each publish `--rate` `output` chunks per second for `--seconds`; `--dashboards` dashboards (raw v2
//!    sockets, batched frames) subscribe to `agents/*`. Every chunk carries its send time (one clock: the same
//!    process), so latency is agent publish → dashboard socket read, and every (dashboard, agent) stream is
//!    checked for loss, duplicates and order.
//! 2. **Command round trip**: a dashboard sends `command {echo …}` to an agent running the library's `Runner`
//!    and measures until the first `output` byte of that command is back (`--commands` of them, one after
//!    another): dashboard → relay → agent → fork/exec → pipe → relay → dashboard.
//!
//! Prints a markdown summary (BENCHMARKS.md "Agents").

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use devrelay_agent::{AllowList, Client, Config, Event, Identity, Runner, RunnerConfig};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Parser)]
struct Args {
    /// Relay WebSocket URL.
    #[arg(long, default_value = "ws://127.0.0.1:8265")]
    url: String,
    /// The relay's dashboard token (agents and dashboards use it; none for a relay run with --no-auth).
    #[arg(long, env = "DEVRELAY_TOKEN")]
    token: Option<String>,
    #[arg(long, default_value_t = 10)]
    agents: u32,
    /// Output chunks per second per agent.
    #[arg(long, default_value_t = 100)]
    rate: u32,
    #[arg(long, default_value_t = 50)]
    dashboards: u32,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Bytes of terminal text per chunk (a coloured line).
    #[arg(long, default_value_t = 120)]
    bytes: usize,
    /// Command round trips to measure (0: skip).
    #[arg(long, default_value_t = 200)]
    commands: u32,
    /// Instead: be one agent "flood" printing this many bytes per second of coloured terminal text (100 chunks
    /// a second) for `--seconds`, for the browser terminal benchmark (bench/terminal.mjs).
    #[arg(long)]
    flood: Option<usize>,
}

/// `--flood`: one agent printing `bytes_per_sec` of coloured lines, 100 chunks a second.
async fn flood(args: &Args, bytes_per_sec: usize) -> anyhow::Result<()> {
    let mut c = Config::new(args.url.clone(), Identity::Agent("flood".into()));
    c.token = args.token.clone();
    c.name = Some("flood".into());
    let (client, mut events) = Client::connect(c)?;
    connected(&mut events).await?;
    let chunk = bytes_per_sec / 100;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut out =
        devrelay_agent::OutputWriter::new(devrelay_agent::agent_event::OutputStream::Pty, None);
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let mut line = 0u64;
    let mut total = 0usize;
    while Instant::now() < until {
        tick.tick().await;
        let mut text = String::with_capacity(chunk + 100);
        while text.len() < chunk {
            line += 1;
            text.push_str(&format!(
                "\x1b[3{}mline {line:>8}\x1b[0m {}\r\n",
                line % 7 + 1,
                "=".repeat(60)
            ));
        }
        total += text.len();
        out.write(&client, text.as_bytes())?;
    }
    client.flush(Duration::from_secs(30)).await;
    println!("flood: {total} bytes in {} s, {line} lines", args.seconds);
    client.close().await;
    Ok(())
}

/// One dashboard's view of every agent stream: the last `n` seen per agent.
#[derive(Default)]
struct Streams {
    last: HashMap<u64, u64>,
    received: u64,
    duplicates: u64,
    gaps: u64,
}

fn micros(epoch: Instant) -> u64 {
    epoch.elapsed().as_micros() as u64
}

/// Reads `key=<digits>` after `from` in `s`.
fn field(s: &str, key: &str) -> Option<u64> {
    let i = s.find(key)? + key.len();
    let digits: &str = &s[i..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// A dashboard's `hello` (batched frames, with the token if there is one).
fn hello(token: &Option<String>) -> String {
    let mut h = serde_json::json!({"type": "hello", "batch": true});
    if let Some(t) = token {
        h["token"] = t.clone().into();
    }
    h.to_string()
}

async fn dashboard(
    url: String,
    token: Option<String>,
    epoch: Instant,
    hist: Arc<Mutex<Histogram<u64>>>,
    streams: Arc<Mutex<Streams>>,
    ready: tokio::sync::mpsc::Sender<()>,
    done: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await?;
    ws.send(Message::text(hello(&token))).await?;
    ws.send(Message::text(
        r#"{"type":"subscribe","channel":"agents/*","id":"s"}"#,
    ))
    .await?;
    let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut announced = false;
    loop {
        let frame = tokio::select! {
            _ = done.cancelled() => break,
            f = ws.next() => f,
        };
        let Some(Ok(Message::Text(text))) = frame else {
            if frame.is_none() {
                break;
            }
            continue;
        };
        let now = micros(epoch);
        if !announced && text.contains(r#""id":"s""#) {
            announced = true;
            let _ = ready.send(()).await;
        }
        // Each chunk's text is `t=<send µs> a=<agent> n=<chunk> …`; a batched frame holds many.
        let mut rest: &str = &text;
        let mut s = streams.lock().unwrap();
        while let Some(i) = rest.find("t=") {
            rest = &rest[i..];
            let (Some(t), Some(a), Some(n)) =
                (field(rest, "t="), field(rest, "a="), field(rest, "n="))
            else {
                rest = &rest[2..];
                continue;
            };
            local.saturating_record(now.saturating_sub(t).max(1));
            s.received += 1;
            let last = s.last.get(&a).copied().unwrap_or(0);
            if n <= last {
                s.duplicates += 1;
            } else {
                if n != last + 1 {
                    s.gaps += 1;
                }
                s.last.insert(a, n);
            }
            rest = &rest[2..];
        }
    }
    hist.lock().unwrap().add(&local)?;
    Ok(())
}

async fn connected(events: &mut devrelay_agent::Events) -> anyhow::Result<()> {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), events.recv()).await {
            Ok(Some(Event::Connected { .. })) => return Ok(()),
            Ok(Some(_)) => {}
            Ok(None) => anyhow::bail!("agent client ended"),
            Err(_) => anyhow::bail!("agent did not connect"),
        }
    }
}

fn q(h: &Histogram<u64>, p: f64) -> f64 {
    h.value_at_quantile(p) as f64 / 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(rate) = args.flood {
        return flood(&args, rate).await;
    }
    let epoch = Instant::now();

    // --- 1. output fan-out -------------------------------------------------------------------------------
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let done = tokio_util::sync::CancellationToken::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel(args.dashboards as usize + 1);
    let mut dashes = Vec::new();
    let mut all_streams = Vec::new();
    for _ in 0..args.dashboards {
        let streams = Arc::new(Mutex::new(Streams::default()));
        all_streams.push(streams.clone());
        dashes.push(tokio::spawn(dashboard(
            args.url.clone(),
            args.token.clone(),
            epoch,
            hist.clone(),
            streams,
            ready_tx.clone(),
            done.clone(),
        )));
    }
    for _ in 0..args.dashboards {
        ready_rx
            .recv()
            .await
            .context("a dashboard failed to subscribe")?;
    }
    let mut agents = Vec::new();
    for i in 0..args.agents {
        let mut c = Config::new(args.url.clone(), Identity::Agent(format!("bench-{i}")));
        c.token = args.token.clone();
        c.name = Some(format!("bench agent {i}"));
        let (client, mut events) = Client::connect(c)?;
        connected(&mut events).await?;
        agents.push((client, events));
    }
    let sent = Arc::new(AtomicU64::new(0));
    let pad = "x".repeat(args.bytes.saturating_sub(40));
    let period = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let mut producers = Vec::new();
    for (i, (client, _)) in agents.iter().enumerate() {
        let client = client.clone();
        let sent = sent.clone();
        let pad = pad.clone();
        producers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut n = 0u64;
            while Instant::now() < until {
                tick.tick().await;
                n += 1;
                let text = format!("\x1b[32mt={} a={i} n={n}\x1b[0m {pad}\r\n", micros(epoch));
                let data = serde_json::json!({"seq": n, "stream": "pty", "encoding": "utf8", "data": text});
                if client.publish_json("output", data.to_string()).is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for p in producers {
        p.await?;
    }
    let sent = sent.load(Ordering::Relaxed);
    let expected = sent * u64::from(args.dashboards);
    // Wait (bounded) until every dashboard has everything.
    let drain_until = Instant::now() + Duration::from_secs(10);
    loop {
        let got: u64 = all_streams.iter().map(|s| s.lock().unwrap().received).sum();
        if got >= expected || Instant::now() > drain_until {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    done.cancel();
    for d in dashes {
        d.await??;
    }
    let (received, dups, gaps) = all_streams.iter().fold((0, 0, 0), |acc, s| {
        let s = s.lock().unwrap();
        (acc.0 + s.received, acc.1 + s.duplicates, acc.2 + s.gaps)
    });
    let h = hist.lock().unwrap().clone();
    println!(
        "## agents: {} agents × {} output msgs/s ({} B), {} dashboards on agents/*, {} s",
        args.agents, args.rate, args.bytes, args.dashboards, args.seconds
    );
    println!("| sent | expected | received | lost | duplicates | gaps | p50 ms | p99 ms | p99.9 ms | max ms |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {sent} | {expected} | {received} | {} | {dups} | {gaps} | {:.2} | {:.2} | {:.2} | {:.2} |",
        expected.saturating_sub(received),
        q(&h, 0.5),
        q(&h, 0.99),
        q(&h, 0.999),
        h.max() as f64 / 1000.0
    );
    for (client, _) in &agents {
        client.flush(Duration::from_secs(5)).await;
        let s = client.stats();
        if s.dropped > 0 {
            println!("agent outbox dropped {}", s.dropped);
        }
        client.close().await;
    }

    // --- 2. command round trip ---------------------------------------------------------------------------
    if args.commands == 0 {
        return Ok(());
    }
    let mut c = Config::new(args.url.clone(), Identity::Agent("bench-cmd".into()));
    c.token = args.token.clone();
    c.name = Some("bench command agent".into());
    let (client, mut events) = Client::connect(c)?;
    connected(&mut events).await?;
    let runner = Runner::new(
        client.clone(),
        RunnerConfig {
            allow: AllowList::parse(&["echo ..."])?,
            ..RunnerConfig::default()
        },
    );
    tokio::spawn(async move {
        while let Some(e) = events.recv().await {
            if let Event::Command(cmd) = e {
                runner.command(cmd);
            }
        }
    });
    let (mut ws, _) = tokio_tungstenite::connect_async(args.url.as_str()).await?;
    ws.send(Message::text(hello(&args.token))).await?;
    ws.send(Message::text(
        r#"{"type":"subscribe","channel":"agents/bench-cmd","id":"s"}"#,
    ))
    .await?;
    loop {
        if let Some(Ok(Message::Text(t))) = ws.next().await {
            if t.contains(r#""id":"s""#) {
                break;
            }
        }
    }
    let mut rtt = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for k in 0..args.commands {
        let id = format!("c{k}");
        let start = Instant::now();
        ws.send(Message::text(format!(
            r#"{{"type":"command","id":"{id}","agentId":"bench-cmd","command":"echo","args":["round trip {k}"]}}"#
        )))
        .await?;
        let marker = format!(r#""commandId":"{id}""#);
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(20), ws.next())
                .await
                .context("no output for a command")?;
            if let Some(Ok(Message::Text(t))) = frame {
                if t.contains(&marker) && t.contains(r#""event":"output""#) {
                    break;
                }
            }
        }
        rtt.saturating_record(start.elapsed().as_micros() as u64);
    }
    println!(
        "\n## command round trip (dashboard → agent → `echo` → first output byte back), {} commands",
        args.commands
    );
    println!("| p50 ms | p99 ms | max ms |");
    println!("|---|---|---|");
    println!(
        "| {:.2} | {:.2} | {:.2} |",
        q(&rtt, 0.5),
        q(&rtt, 0.99),
        rtt.max() as f64 / 1000.0
    );
    client.close().await;
    Ok(())
}
