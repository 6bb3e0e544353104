//! The soak's mechanics, briefly, against a real devrelay on an ephemeral port: steady SDKs and dashboards
//! with exact accounting, churn of both kinds, the stalled dashboard closed as a slow consumer and reopened,
//! and the relay's RSS and fds sampled (the relay runs in this process, so its PID is ours).

use std::time::Duration;

use devrelay_bench::conn::Target;
use devrelay_bench::soak::{self, SoakOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_counts_every_delivery_churns_and_samples() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    // A small queue (2 MiB, 1.3 s of this traffic), so the stalled dashboard is closed as a slow consumer
    // within the run.
    let token = "soak-test-token-0123456789";
    let config = devrelay::Config {
        queue_bytes: 2 << 20,
        // History ages out within the test, so that its end state can be judged (the soak waits for it).
        history_max_age: Duration::from_secs(1),
        // The relay's own `metrics` channel keeps history too; published once an hour, it holds none here.
        metrics_interval: Duration::from_secs(3600),
        auth: devrelay::Auth::Tokens {
            dashboard: devrelay::Token::new(token).unwrap(),
            agent: None,
        },
        ..devrelay::Config::default()
    };
    let relay = tokio::spawn(devrelay::run(listener, config, shutdown.clone()));
    let mut o = SoakOptions::issue_11(
        Target::parse(&format!("ws://{addr}/?token={token}")).unwrap(),
        std::process::id(),
    );
    o.duration = Duration::from_secs(6);
    o.warmup = Duration::from_secs(1);
    o.sample_every = Duration::from_secs(1);
    o.sdks = 2;
    o.dashboards = 3;
    // 1.6 MB/s to the stalled dashboard: more than the kernel's socket buffers and its queue hold within the run.
    o.rate = 100.0;
    o.bytes = 8 << 10;
    o.churn_every = Duration::from_millis(250);
    o.churn_life = Duration::from_millis(500);
    // An id comes back after 4 s, long after its last holder left (a takeover would close that one, 4500).
    o.churn_ids = 16;
    o.release_timeout = Duration::from_secs(20);
    o.history_timeout = Duration::from_secs(20);
    let mut seen = 0;
    let r = soak::run(o, |_| seen += 1).await.unwrap();
    assert!(r.sent >= 1000, "{}", r.verdict());
    assert_eq!(r.expected, r.sent * 3);
    assert_eq!(
        (r.lost, r.duplicates, r.steady_closed),
        (0, 0, 0),
        "{}",
        r.verdict()
    );
    assert!(r.zero_loss);
    assert!(
        r.churn_dashboards >= 4 && r.churn_sdks >= 4,
        "{}",
        r.verdict()
    );
    assert_eq!(r.churn_failures, 0, "{:?}", r.first_churn_failure);
    assert!(r.stalled_closes >= 1, "{}", r.verdict());
    // A sample at 0, 1, … 5 s, each with the relay's RSS, fds and /stats figures.
    assert_eq!(seen, r.samples.len());
    assert!(r.samples.len() >= 6, "{:?}", r.samples);
    assert!(r.samples.iter().all(|s| s.rss_kib > 0
        && s.fds > 0
        && s.connections.is_some()
        && s.queued_bytes.is_some()
        && s.load1.is_some()));
    assert!(r.rss_spread_pct.is_some() && r.fds_spread_pct.is_some());
    assert!(r.rss_drift_pct.is_some() && r.fds_drift_pct.is_some());
    assert!(r.markdown_samples().lines().count() >= 7);
    // Once every client left, the relay held nothing for them, its fds were back to the baseline and its
    // history aged out: released, and the run passed (this relay shares the process with the clients, so its
    // "fds" are the process's, which must come back down too).
    let d = r.departure.as_ref().expect("/stats answered");
    assert!(d.released, "{}", r.departure_line());
    assert!(d.released_after_secs.is_some() && d.aged_out_after_secs.is_some());
    assert!(d.fds <= d.baseline_fds, "{}", r.departure_line());
    assert!(r.verdict().contains("released: yes"), "{}", r.verdict());
    shutdown.cancel();
    relay.await.unwrap().unwrap();
}
