//! `devrelay-bench`: runs one benchmark scenario against a relay, or writes the report from saved results.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;

use devrelay_bench::conn::Target;
use devrelay_bench::report::{self, Machine, RunMeta, ScenarioReport};
use devrelay_bench::scenario::{self, Options};

/// Run one scenario (a–f of issue 4) against a relay and print / save the results.
#[derive(Debug, Parser)]
#[command(
    name = "devrelay-bench",
    after_help = "Scenarios:\n  a  10 SDKs × 50 dashboards × 100 msg/s, 512 B\n  b  1 SDK × 1 dashboard, as fast as possible\n  c  4 SDKs × 16 dashboards, as fast as possible\n  d  10,000 idle SDK connections\n  e  10 SDKs × 10 dashboards × 5 snapshots/s of ~250 KB\n  f  a + one dashboard that stops reading\n  a2 a over v2: SDKs publish, batched dashboards on sessions/*\n  g  100 sessions × 50 v2 dashboards following 2 each × 100 msg/s\n  g10 g plus 900 silent sessions followed by 450 more dashboards (same deliveries)\n  h  reconnect storm: a's load over v2, every dashboard away 5 s, back with since\n\n`devrelay-bench null-relay` serves a relay that does (almost) nothing, for the generator's own ceiling;\n`devrelay-bench report --help` for the BENCHMARKS.md generator; `devrelay-bench soak --help` for the soak."
)]
struct RunArgs {
    /// Scenario name: a, a2, b, c, d, e, f, g or h.
    scenario: String,
    /// Relay WebSocket URL (loopback, numeric): ws://127.0.0.1:PORT[/PATH].
    #[arg(long)]
    url: String,
    /// PID of the relay process, to sample its CPU and RSS.
    #[arg(long)]
    relay_pid: Option<u32>,
    /// Label of the relay in the results (e.g. devrelay, node-ws).
    #[arg(long, default_value = "relay")]
    label: String,
    /// Worker threads of the load generator's tokio runtime.
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Measured duration in seconds (default: the scenario's own).
    #[arg(long)]
    duration_secs: Option<f64>,
    /// Closed-loop window per SDK (messages not yet delivered to every dashboard), for scenarios b and c.
    #[arg(long, default_value_t = 256)]
    window: u64,
    /// Seconds to wait after the last send for deliveries in flight.
    #[arg(long, default_value_t = 10.0)]
    drain_secs: f64,
    /// Override the number of connections of scenario d.
    #[arg(long)]
    connections: Option<u32>,
    /// Connections of scenario d in set-up at once.
    #[arg(long, default_value_t = 256)]
    connecting: usize,
    /// Override the number of dashboards of a fan-out scenario.
    #[arg(long)]
    dashboards: Option<u32>,
    /// Override the number of SDKs of a fan-out scenario.
    #[arg(long)]
    sdks: Option<u32>,
    /// Override the messages per second per SDK of a fixed-rate scenario (e.g. a lower rate for a relay
    /// running under valgrind).
    #[arg(long)]
    rate: Option<f64>,
    /// Reconnect storm (h): seconds of steady load before every dashboard drops.
    #[arg(long)]
    storm_warmup_secs: Option<f64>,
    /// Reconnect storm (h): seconds the dashboards stay away.
    #[arg(long)]
    storm_outage_secs: Option<f64>,
    /// Write the result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Write the generated section of BENCHMARKS.md from saved JSON results, keeping every other section.
#[derive(Debug, Parser)]
#[command(name = "devrelay-bench report")]
struct ReportArgs {
    /// Directory of `*.json` scenario results (and an optional `meta.json`).
    #[arg(long)]
    results: PathBuf,
    /// The Markdown file to update.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
}

/// Soak: scenario a's load plus churn for minutes, the relay's RSS and open fds sampled (issue 11).
#[derive(Debug, Parser)]
#[command(name = "devrelay-bench soak")]
struct SoakArgs {
    /// Relay WebSocket URL (loopback, numeric): ws://127.0.0.1:PORT[/PATH].
    #[arg(long)]
    url: String,
    /// PID of the relay process (its RSS and open file descriptors are sampled).
    #[arg(long)]
    relay_pid: u32,
    /// Seconds to run.
    #[arg(long, default_value_t = 900.0)]
    duration_secs: f64,
    /// Seconds of warm-up (sampled, not judged; beyond the relay's history age, 300 s by default).
    #[arg(long, default_value_t = 420.0)]
    warmup_secs: f64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10.0)]
    sample_every_secs: f64,
    /// Steady SDKs / dashboards / messages per second per SDK (default: scenario a's).
    #[arg(long, default_value_t = 10)]
    sdks: u32,
    #[arg(long, default_value_t = 50)]
    dashboards: u32,
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// After every client left: seconds the relay may take to let go of what connections held (connections,
    /// registry, subscriptions, presence, queues; fds back to before the first client).
    #[arg(long, default_value_t = 60.0)]
    release_timeout_secs: f64,
    /// ... and to age its history out (history, cached snapshots, channels): the relay's
    /// --history-max-age-secs plus slack; 0: do not wait for it.
    #[arg(long, default_value_t = 330.0)]
    history_timeout_secs: f64,
    /// Write the result as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the samples table and the verdict as Markdown here.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("report") => {
            args.remove(1);
            return write_report(ReportArgs::parse_from(args));
        }
        Some("soak") => {
            args.remove(1);
            return soak(SoakArgs::parse_from(args));
        }
        Some("fault-sdk") => {
            args.remove(1);
            return fault_sdk(FaultSdkArgs::parse_from(args));
        }
        Some("fault-dashboard") => {
            args.remove(1);
            return fault_dashboard(FaultDashboardArgs::parse_from(args));
        }
        Some("null-relay") => {
            args.remove(1);
            return null_relay(NullRelayArgs::parse_from(args));
        }
        Some("fault-summary") => {
            args.remove(1);
            return fault_summary(FaultSummaryArgs::parse_from(args));
        }
        _ => {}
    }
    run(RunArgs::parse_from(args))
}

/// A relay that does (almost) nothing: seed-000 handshakes, then every SDK frame forwarded to every dashboard
/// without parsing it. The load generator's b / c against it show the generator's own ceiling.
#[derive(Debug, Parser)]
#[command(name = "devrelay-bench null-relay")]
struct NullRelayArgs {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// 0: an ephemeral port.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Fault on purpose (to see the generator catch it): drop every N-th message of each SDK.
    #[arg(long)]
    drop_every: Option<u64>,
    /// Fault on purpose: deliver every N-th message of each SDK after the next one (N ≥ 2).
    #[arg(long)]
    swap_every: Option<u64>,
}

fn null_relay(args: NullRelayArgs) -> anyhow::Result<()> {
    use std::io::Write;
    let listener = std::net::TcpListener::bind((args.host.as_str(), args.port))?;
    let addr = listener.local_addr()?;
    println!("listening on ws://{addr}");
    std::io::stdout().flush()?;
    let fault = devrelay_bench::nullrelay::Fault {
        drop_every: args.drop_every,
        swap_every: args.swap_every,
    };
    devrelay_bench::nullrelay::serve(listener, fault)?;
    Ok(())
}

/// The SDK end of scripts/fault-test.sh: numbered stream_events at a fixed rate.
#[derive(Debug, Parser)]
#[command(name = "devrelay-bench fault-sdk")]
struct FaultSdkArgs {
    #[arg(long)]
    url: String,
    #[arg(long, default_value = "fault-1")]
    session: String,
    /// Messages per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Messages to send (seq 0 … count − 1).
    #[arg(long)]
    count: u64,
    /// Seconds to stay connected after the last message.
    #[arg(long, default_value_t = 60.0)]
    linger_secs: f64,
}

/// The dashboard end of scripts/fault-test.sh: follows the session over v2, resuming with since.
#[derive(Debug, Parser)]
#[command(name = "devrelay-bench fault-dashboard")]
struct FaultDashboardArgs {
    #[arg(long)]
    url: String,
    #[arg(long, default_value = "fault-1")]
    session: String,
    /// Messages the SDK sends.
    #[arg(long)]
    expect: u64,
    /// Seconds between v2 pings.
    #[arg(long, default_value_t = 1.0)]
    ping_every_secs: f64,
    /// Seconds without any frame after which the link is taken for dead.
    #[arg(long, default_value_t = 3.0)]
    dead_after_secs: f64,
    #[arg(long, default_value_t = 2.0)]
    connect_timeout_secs: f64,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    deadline_secs: f64,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the link's events and every message's send time here (for `fault-summary`).
    #[arg(long)]
    trace: Option<PathBuf>,
}

/// scripts/fault-test.sh's per-fault table: the dashboard's report and trace against the fault schedule.
#[derive(Debug, Parser)]
#[command(name = "devrelay-bench fault-summary")]
struct FaultSummaryArgs {
    /// `fault-dashboard --json`'s file.
    #[arg(long)]
    report: PathBuf,
    /// `fault-dashboard --trace`'s file.
    #[arg(long)]
    trace: PathBuf,
    /// `name start_ms end_ms` (unix ms) per fault, in order.
    #[arg(long)]
    phases: PathBuf,
}

fn fault_summary(args: FaultSummaryArgs) -> anyhow::Result<()> {
    use devrelay_bench::fault::{phase_table, DashboardReport, Phase, Trace};
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
    };
    let report: DashboardReport = serde_json::from_str(&read(&args.report)?)?;
    let trace: Trace = serde_json::from_str(&read(&args.trace)?)?;
    let phases = Phase::parse_list(&read(&args.phases)?).map_err(anyhow::Error::msg)?;
    print!("{}", phase_table(&report, &trace, &phases));
    Ok(())
}

fn current_thread() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn fault_sdk(args: FaultSdkArgs) -> anyhow::Result<()> {
    let target = Target::parse(&args.url)?;
    let sent = current_thread()?.block_on(devrelay_bench::fault::sdk(
        &target,
        &args.session,
        args.rate,
        args.count,
        Duration::from_secs_f64(args.linger_secs),
    ))?;
    println!("sent {sent}");
    Ok(())
}

fn fault_dashboard(args: FaultDashboardArgs) -> anyhow::Result<()> {
    use devrelay_bench::fault::{self, DashboardPlan};
    let plan = DashboardPlan {
        target: Target::parse(&args.url)?,
        session: args.session,
        expect: args.expect,
        ping_every: Duration::from_secs_f64(args.ping_every_secs),
        dead_after: Duration::from_secs_f64(args.dead_after_secs),
        connect_timeout: Duration::from_secs_f64(args.connect_timeout_secs),
        deadline: Duration::from_secs_f64(args.deadline_secs),
    };
    let (r, trace) = current_thread()?.block_on(fault::dashboard(plan));
    println!("{}", serde_json::to_string(&r)?);
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&r)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = args.trace {
        std::fs::write(&path, serde_json::to_string(&trace)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if !r.zero_loss() {
        bail!(
            "messages lost or duplicated: {} of {} received, {} missing, {} duplicates, {} offset gaps, {} not recovered",
            r.received, r.expected, r.missing, r.duplicates, r.offset_gaps, r.not_recovered
        );
    }
    Ok(())
}

fn soak(args: SoakArgs) -> anyhow::Result<()> {
    use devrelay_bench::soak::{self, SoakOptions};
    let mut o = SoakOptions::issue_11(Target::parse(&args.url)?, args.relay_pid);
    o.duration = Duration::from_secs_f64(args.duration_secs);
    o.warmup = Duration::from_secs_f64(args.warmup_secs);
    o.sample_every = Duration::from_secs_f64(args.sample_every_secs);
    o.sdks = args.sdks;
    o.dashboards = args.dashboards;
    o.rate = args.rate;
    o.release_timeout = Duration::from_secs_f64(args.release_timeout_secs);
    o.history_timeout = Duration::from_secs_f64(args.history_timeout_secs);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let r = rt.block_on(soak::run(o, |s| {
        eprintln!(
            "[soak] t={:>4.0}s rss={:.1} MiB fds={} connections={}",
            s.t_secs,
            s.rss_kib as f64 / 1024.0,
            s.fds,
            s.connections.map_or("?".into(), |c| c.to_string())
        );
    }))?;
    println!("{}", r.verdict());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&r)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.markdown {
        let text = format!("{}\n**{}**\n", r.markdown_samples(), r.verdict());
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if !r.passed() {
        bail!("soak failed: {}", r.verdict());
    }
    Ok(())
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let Some(sc) = scenario::by_name(&args.scenario) else {
        bail!(
            "unknown scenario {:?} (expected a, a2, b, c, d, e, f, g or h)",
            args.scenario
        );
    };
    let mut opts = Options::new(Target::parse(&args.url)?);
    opts.relay_label = args.label;
    opts.relay_pid = args.relay_pid;
    opts.workers = args.workers.max(1);
    opts.duration = args.duration_secs.map(Duration::from_secs_f64);
    opts.window = args.window;
    opts.drain_timeout = Duration::from_secs_f64(args.drain_secs);
    opts.connections = args.connections;
    opts.connecting = args.connecting;
    opts.dashboards = args.dashboards;
    opts.sdks = args.sdks;
    opts.rate = args.rate;
    opts.storm_warmup = args.storm_warmup_secs.map(Duration::from_secs_f64);
    opts.storm_outage = args.storm_outage_secs.map(Duration::from_secs_f64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.workers)
        .enable_all()
        .build()?;
    let result = rt.block_on(scenario::run(&sc, &opts))?;
    print!("{}", result.summary());
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&result)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn write_report(args: ReportArgs) -> anyhow::Result<()> {
    let mut results: Vec<ScenarioReport> = Vec::new();
    let mut meta = RunMeta::default();
    let mut entries: Vec<_> = std::fs::read_dir(&args.results)
        .with_context(|| format!("reading {}", args.results.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(&path)?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name == "meta.json" {
            let callgrind = std::mem::take(&mut meta.callgrind);
            meta = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            meta.callgrind.extend(callgrind);
        } else if name.starts_with("callgrind-") {
            meta.callgrind.push(
                serde_json::from_str(&text)
                    .with_context(|| format!("parsing {}", path.display()))?,
            );
        } else {
            results.push(
                serde_json::from_str(&text)
                    .with_context(|| format!("parsing {}", path.display()))?,
            );
        }
    }
    let section = report::render(&results, &Machine::detect(), &meta);
    let existing = std::fs::read_to_string(&args.out).unwrap_or_default();
    std::fs::write(&args.out, report::splice_section(&existing, &section))
        .with_context(|| format!("writing {}", args.out.display()))?;
    for t in report::check_targets(&results, &meta) {
        println!(
            "{}: {} — {} — {}",
            t.scenario,
            t.target,
            t.measured,
            match t.met {
                Some(true) => "met",
                Some(false) => "NOT met",
                None => "n/a",
            }
        );
    }
    Ok(())
}
