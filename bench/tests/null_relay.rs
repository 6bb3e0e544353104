//! The load generator against the null relay (`devrelay-bench null-relay`, over real sockets on an ephemeral
//! port): exact accounting when it forwards everything, and the generator's checks failing the run when the
//! relay loses or reorders messages on purpose.

use std::time::Duration;

use devrelay_bench::conn::Target;
use devrelay_bench::nullrelay::{self, Fault};
use devrelay_bench::report::FanoutReport;
use devrelay_bench::scenario::{self, Options};

/// A null relay on an ephemeral port, serving on its own threads for the rest of the test process.
fn null_relay(fault: Fault) -> Target {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || nullrelay::serve(listener, fault));
    Target::parse(&format!("ws://{addr}")).unwrap()
}

async fn run(scenario: &str, target: Target, sdks: u32, dashboards: u32) -> FanoutReport {
    let mut o = Options::new(target);
    o.relay_label = "null".into();
    o.duration = Some(Duration::from_millis(300));
    // A relay that lost messages never delivers them: the drain ends at its bound, kept short.
    o.drain_timeout = Duration::from_secs(2);
    o.setup_timeout = Duration::from_secs(30);
    o.sdks = Some(sdks);
    o.dashboards = Some(dashboards);
    o.window = 16;
    let r = scenario::run(&scenario::by_name(scenario).unwrap(), &o)
        .await
        .unwrap();
    let f = r.fanout.clone().unwrap();
    println!("{}", r.summary());
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_forwarded_is_counted_exactly_once() {
    for (scenario, sdks, dashboards) in [("b", 1, 1), ("c", 3, 4)] {
        let f = run(scenario, null_relay(Fault::default()), sdks, dashboards).await;
        assert!(f.sent > 16, "{scenario}: the window turned over");
        assert_eq!(f.expected, f.sent * u64::from(dashboards));
        assert_eq!(f.received, f.expected, "{scenario}");
        assert_eq!((f.lost, f.gaps, f.duplicates, f.unexpected), (0, 0, 0, 0));
        assert_eq!(f.latency.count, f.received);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_drops_messages_fails_the_run() {
    let f = run(
        "c",
        null_relay(Fault {
            drop_every: Some(50),
            ..Fault::default()
        }),
        2,
        3,
    )
    .await;
    assert!(f.sent >= 100, "the losses did not stall the closed loop");
    assert!(f.lost > 0 && f.gaps > 0, "{f:?}");
    assert!(f.received < f.expected);
    // Every 50th message of each SDK, for each of the 3 dashboards (the last one may be owed, not a gap).
    assert!(f.lost >= (f.sent / 50).saturating_sub(2) * 3, "{f:?}");
    assert_eq!(f.latency.count, f.received);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_reorders_messages_fails_the_run() {
    let f = run(
        "b",
        null_relay(Fault {
            swap_every: Some(40),
            ..Fault::default()
        }),
        1,
        1,
    )
    .await;
    assert!(f.sent >= 80, "{f:?}");
    // Message 40k − 1 arrives after 40k: a gap when 40k comes, then a late (duplicate) arrival, not received.
    assert!(f.gaps > 0 && f.duplicates > 0, "{f:?}");
    assert!(f.lost > 0 && f.received < f.expected, "{f:?}");
    assert_eq!(f.received + f.lost, f.expected);
}
