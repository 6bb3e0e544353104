//! The load generator against a real devrelay on an ephemeral port: every scenario kind runs end to end, the
//! accounting is exact (each message sent reaches each dashboard once, with a latency recorded), and the
//! relay's process figures are read.

use std::time::Duration;

use devrelay_bench::conn::Target;
use devrelay_bench::report::{self, Machine, RunMeta};
use devrelay_bench::scenario::{self, Options};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

struct Relay {
    target: Target,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start_relay() -> Relay {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    // Load tests: past the per-connection rate and connection limits on purpose.
    let config = devrelay::Config {
        max_inbound_messages_per_sec: 10_000_000,
        max_inbound_bytes_per_sec: 16 << 30,
        max_connections_per_sec: 1_000_000,
        ..devrelay::Config::default()
    };
    // The dashboard token on the URL: the load generator's dashboards need it (its SDKs do not mind it).
    let token = config.auth.dashboard_token().unwrap().expose().to_string();
    let task = tokio::spawn(devrelay::run(listener, config, shutdown.clone()));
    Relay {
        target: Target::parse(&format!("ws://{addr}/ws?token={token}")).unwrap(),
        shutdown,
        task,
    }
}

impl Relay {
    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().unwrap();
    }

    fn options(&self) -> Options {
        let mut o = Options::new(self.target.clone());
        o.relay_label = "devrelay".into();
        // The relay runs in this process: its "PID" is ours, which exercises the /proc sampling path.
        o.relay_pid = Some(std::process::id());
        o.duration = Some(Duration::from_millis(300));
        o.drain_timeout = Duration::from_secs(30);
        o.setup_timeout = Duration::from_secs(30);
        o
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_fanout_delivers_every_message_to_every_dashboard() {
    let relay = start_relay().await;
    let mut o = relay.options();
    o.sdks = Some(2);
    o.dashboards = Some(3);
    o.window = 8;
    let r = scenario::run(&scenario::by_name("c").unwrap(), &o)
        .await
        .unwrap();
    let f = r.fanout.as_ref().unwrap();
    assert!(f.sent > 0);
    assert_eq!(f.expected, f.sent * 3);
    assert_eq!(f.received, f.expected, "{}", r.summary());
    assert_eq!(f.lost, 0);
    assert_eq!(f.latency.count, f.received);
    assert!(f.latency.p50_us <= f.latency.p99_us && f.latency.p99_us <= f.latency.max_us);
    assert!(f.delivered_per_sec > 0.0);
    assert_eq!(
        f.sdk_errors, 0,
        "the relay accepted every stamped stream_event"
    );
    assert!(f.dashboard_closes.is_empty() && f.stalled.is_none());
    let p = r.relay_proc.as_ref().unwrap();
    assert!(p.rss_peak_kib.unwrap() > 0);
    assert_eq!(r.params.message_bytes, 512);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_fixed_rate_and_a_stalled_dashboard_are_accounted_for() {
    let relay = start_relay().await;
    let mut o = relay.options();
    o.sdks = Some(2);
    o.dashboards = Some(2);
    o.duration = Some(Duration::from_millis(500));
    let e = scenario::run(&scenario::by_name("e").unwrap(), &o)
        .await
        .unwrap();
    let f = e.fanout.as_ref().unwrap();
    // 5 snapshots/s for 0.5 s, the two SDKs half a period apart: 2 or 3 each.
    assert!(f.sent >= 4, "{}", e.summary());
    // A loaded relay may conflate a queued snapshot with a newer one: that is a gap, never a loss.
    assert_eq!(f.received + f.conflated, f.sent * 2, "{}", e.summary());
    assert_eq!((f.lost, f.duplicates), (0, 0), "{}", e.summary());
    assert!(e.params.message_bytes > 200_000);

    let stalled = scenario::run(&scenario::by_name("f").unwrap(), &o)
        .await
        .unwrap();
    let f = stalled.fanout.as_ref().unwrap();
    assert_eq!(
        f.lost,
        0,
        "the reading dashboards get everything: {}",
        stalled.summary()
    );
    let st = f.stalled.as_ref().unwrap();
    assert_eq!(st.sent, f.sent);
    assert!(st.delivered <= st.sent);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_all_connect_and_the_report_is_written() {
    let relay = start_relay().await;
    let mut o = relay.options();
    o.connections = Some(200);
    let d = scenario::run(&scenario::by_name("d").unwrap(), &o)
        .await
        .unwrap();
    let i = d.idle.as_ref().unwrap();
    assert_eq!((i.connected, i.failed), (200, 0), "{:?}", i.first_error);
    assert!(i.rss_per_connection_bytes.is_some());
    let c = i.connect_latency.expect("connect latencies");
    assert_eq!(c.count, 200);
    assert!(c.p50_us <= c.p999_us && c.p999_us <= c.max_us);
    assert!(i.tcp_counters.contains_key("Tcp.ActiveOpens"));
    // Every connection reached every step, and the steps' figures are of all 200.
    let steps = i.connect_steps.as_ref().expect("connect steps");
    for step in [&steps.tcp, &steps.upgrade, &steps.answer] {
        assert_eq!(step.count, 200);
        assert!(step.max_us <= c.max_us);
    }
    assert!(!steps.slowest.is_empty() && steps.slowest.len() <= report::SLOWEST_LISTED);
    assert!(steps
        .slowest
        .windows(2)
        .all(|w| w[0].total_ms >= w[1].total_ms));
    assert!(d.summary().contains("by longest step"), "{}", d.summary());
    relay.stop().await;

    // The JSON round-trips and renders into a BENCHMARKS.md section.
    let json = serde_json::to_string(&d).unwrap();
    let back: report::ScenarioReport = serde_json::from_str(&json).unwrap();
    // (Floats may come back an ulp apart: serde_json's default float parsing is not exact.)
    assert_eq!(
        (back.scenario.as_str(), back.relay.as_str()),
        ("d", "devrelay")
    );
    assert_eq!(back.idle.as_ref().unwrap().connected, 200);
    let section = report::render(&[back], &Machine::detect(), &RunMeta::default());
    assert!(section.contains("| devrelay | 200/200 | 0 |"), "{section}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_batched_dashboards_get_every_message_of_every_session() {
    let relay = start_relay().await;
    let mut o = relay.options();
    o.sdks = Some(3);
    o.dashboards = Some(4);
    o.duration = Some(Duration::from_millis(500));
    let r = scenario::run(&scenario::by_name("a2").unwrap(), &o)
        .await
        .unwrap();
    let f = r.fanout.as_ref().unwrap();
    assert!(f.sent >= 3, "{}", r.summary());
    assert_eq!(f.expected, f.sent * 4);
    assert_eq!(f.received, f.expected, "{}", r.summary());
    assert_eq!(f.latency.count, f.received);
    assert_eq!(
        (
            f.duplicates,
            f.gaps,
            f.unexpected,
            f.dashboard_errors,
            f.sdk_errors
        ),
        (0, 0, 0, 0, 0),
        "{:?}",
        f.first_dashboard_error
    );
    assert!(r.params.sdk_protocol.as_deref().unwrap().starts_with("v2"));
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_receive_their_sessions_and_nothing_else() {
    let relay = start_relay().await;
    let mut o = relay.options();
    o.sdks = Some(6);
    o.dashboards = Some(3);
    o.duration = Some(Duration::from_millis(500));
    let r = scenario::run(&scenario::by_name("g").unwrap(), &o)
        .await
        .unwrap();
    let f = r.fanout.as_ref().unwrap();
    // 3 dashboards × 2 sessions = 6 follows: each session has exactly one follower, so a relay that sent a
    // dashboard sessions it does not follow would show them as `unexpected`.
    assert_eq!(r.params.follows_per_dashboard, Some(2));
    assert!(f.sent >= 6, "{}", r.summary());
    assert_eq!(f.expected, f.sent);
    assert_eq!(f.received, f.expected, "{}", r.summary());
    assert_eq!((f.unexpected, f.duplicates, f.gaps), (0, 0, 0));
    assert_eq!(f.dashboard_errors, 0, "{:?}", f.first_dashboard_error);
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_storm_resumes_every_dashboard_and_accounts_for_every_message() {
    let relay = start_relay().await;
    let mut o = relay.options();
    o.sdks = Some(2);
    o.dashboards = Some(3);
    o.storm_warmup = Some(Duration::from_millis(300));
    o.storm_outage = Some(Duration::from_millis(300));
    o.duration = Some(Duration::from_millis(1200));
    let r = scenario::run(&scenario::by_name("h").unwrap(), &o)
        .await
        .unwrap();
    let f = r.fanout.as_ref().unwrap();
    let s = f.storm.as_ref().expect("a storm report");
    assert_eq!(
        r.params.follows_per_dashboard,
        Some(2),
        "every session, one subscription each"
    );
    assert_eq!(
        (s.dashboards, s.reconnected, s.reconnect_errors),
        (3, 3, 0),
        "{:?}",
        s.first_reconnect_error
    );
    assert_eq!(s.caught_up, 3, "{}", r.summary());
    assert!(s.catch_up_max_secs.unwrap() >= s.catch_up_p50_secs.unwrap());
    // Every resuming subscribe was answered, recovered or not.
    assert_eq!(
        s.subscriptions_recovered + s.subscriptions_not_recovered,
        3 * 2
    );
    assert_eq!(f.expected, f.sent * 3);
    assert_eq!(
        f.duplicates, 0,
        "a replay must not repeat what the dashboard had"
    );
    // Whatever was not received is a gap the dashboard saw (nothing is still missing at the end).
    assert_eq!(f.received + f.gaps, f.expected, "{}", r.summary());
    if s.subscriptions_not_recovered == 0 {
        assert_eq!(f.lost, 0, "recovered: true must mean nothing was missed");
    } else {
        assert!(
            !s.reasons.is_empty(),
            "recovered: false comes with a reason"
        );
    }
    // The relay's /stats was read just before the drop.
    assert!(s.history.is_some());
    relay.stop().await;
}
