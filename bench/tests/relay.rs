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
    let task = tokio::spawn(devrelay::run(
        listener,
        devrelay::Config::default(),
        shutdown.clone(),
    ));
    Relay {
        target: Target::parse(&format!("ws://{addr}/ws")).unwrap(),
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
    assert_eq!(f.received, f.sent * 2, "{}", e.summary());
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
