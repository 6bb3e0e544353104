//! The `metrics` channel: every `metrics_interval` the relay publishes its own numbers (`metric.update`) —
//! who is connected, channels, message rates, drops, history memory, and fan-out latency quantiles over the
//! interval. The same task runs the engine's housekeeping every second.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;

use devrelay_protocol::channel::METRICS;
use devrelay_protocol::v2::{MetricsUpdate, METRIC_UPDATE};
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;
use crate::metrics::HistogramSnapshot;

/// Publishes `metric.update` on `metrics` until `shutdown`.
pub async fn run(hub: Arc<Hub>, shutdown: CancellationToken) {
    let every = hub.config.metrics_interval;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = (
        Instant::now(),
        hub.metrics.totals(),
        hub.metrics.fanout_latency.snapshot(),
    );
    // Housekeeping (expired history, forgotten channels) once a second, whatever the metrics period.
    let mut maintain = tokio::time::interval(std::time::Duration::from_secs(1));
    maintain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = maintain.tick() => {
                hub.maintain();
                continue;
            }
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        let totals = hub.metrics.totals();
        let latency = hub.metrics.fanout_latency.snapshot();
        let update = sample(
            &hub,
            now.duration_since(last.0).as_secs_f64(),
            last.1,
            totals,
            &latency.since(&last.2),
        );
        last = (now, totals, latency);
        hub.publish_relay(METRICS, METRIC_UPDATE, &update);
    }
}

/// The update for an interval of `secs` seconds in which the in/out totals went from `before` to `after` and
/// `latency` was recorded.
fn sample(
    hub: &Hub,
    secs: f64,
    before: (u64, u64),
    after: (u64, u64),
    latency: &HistogramSnapshot,
) -> MetricsUpdate {
    let g = hub.gauges();
    let per_minute = |a: u64, b: u64| {
        if secs > 0.0 {
            (b.saturating_sub(a) as f64) * 60.0 / secs
        } else {
            0.0
        }
    };
    let (p50, p99) = (latency.quantile(0.5), latency.quantile(0.99));
    let m = &hub.metrics;
    MetricsUpdate {
        active_sessions: g.sdk_clients as u64,
        active_agents: g.agents as u64,
        dashboards: g.dashboards as u64,
        connections: g.connections as u64,
        channels: g.active_channels as u64,
        messages_in_per_minute: per_minute(before.0, after.0),
        messages_out_per_minute: per_minute(before.1, after.1),
        dropped: m.dropped.load(Relaxed),
        conflated: m.conflated.load(Relaxed),
        slow_consumer_closes: m.slow_consumer_closes.load(Relaxed),
        fanout_latency_p50_us: p50,
        fanout_latency_p99_us: p99,
        history_bytes: hub.history_bytes() as u64,
        uptime_secs: m.started.elapsed().as_secs(),
    }
}
