//! `GET /metrics`: the relay's numbers in the Prometheus text exposition format (0.0.4, or OpenMetrics 1.0
//! when the scraper asks for it), encoded by `prometheus-client`.
//!
//! Nothing here counts: at each scrape a collector reads the same atomics and gauges that `/stats` serves
//! (`metrics.rs`, the hub's gauges, history and snapshot-cache sizes, queue depths), so the two endpoints can
//! never disagree about what happened.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeCounterValue, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::hub::Hub;

/// `Content-Type` of the Prometheus text format.
pub const TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// `Content-Type` of OpenMetrics text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The exposition: Prometheus text, or OpenMetrics text when `openmetrics`.
pub fn render(hub: &Arc<Hub>, openmetrics: bool) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(hub.clone())));
    let mut out = String::with_capacity(16 << 10);
    // Writing into a String cannot fail; the encoders only fail on a failing writer.
    let _ = if openmetrics {
        prometheus_client::encoding::text::encode(&mut out, &registry)
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
    };
    out
}

/// Whether an `Accept` header prefers OpenMetrics text (what Prometheus sends first when it supports it).
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',').any(|t| {
            t.split(';').next().is_some_and(|m| {
                m.trim()
                    .eq_ignore_ascii_case("application/openmetrics-text")
            })
        })
    })
}

/// Reads the hub at scrape time.
#[derive(Debug)]
struct Scrape(Arc<Hub>);

type Fmt = Result<(), std::fmt::Error>;

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    v: u64,
) -> Fmt {
    enc.encode_descriptor(name, help, unit, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&v, None)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, unit: Option<&Unit>, v: u64) -> Fmt {
    enc.encode_descriptor(name, help, unit, MetricType::Gauge)?
        .encode_gauge(&v)
}

/// One counter family with a single label.
fn counters<V: EncodeCounterValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    label: &str,
    values: impl IntoIterator<Item = (&'static str, V)>,
) -> Fmt {
    let mut m = enc.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (value, v) in values {
        m.encode_family(&[(label, value)])?
            .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> Fmt {
        let hub = &self.0;
        let m = &hub.metrics;
        let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        let bytes = Some(&Unit::Bytes);
        let seconds = Some(&Unit::Seconds);

        enc.encode_descriptor(
            "devrelay_build_info",
            "The relay's version",
            None,
            MetricType::Gauge,
        )?
        .encode_family(&[("version", crate::VERSION)])?
        .encode_gauge(&1u64)?;
        enc.encode_descriptor(
            "devrelay_uptime",
            "Time since the relay started",
            seconds,
            MetricType::Gauge,
        )?
        .encode_gauge(&m.started.elapsed().as_secs_f64())?;

        // Who is connected. `other`: not yet identified, or v2 connections that neither registered nor watch.
        let g = hub.gauges();
        let known = g.sdk_clients + g.agents + g.dashboards;
        let mut c = enc.encode_descriptor(
            "devrelay_connections",
            "Open WebSocket connections by role",
            None,
            MetricType::Gauge,
        )?;
        for (role, n) in [
            ("sdk", g.sdk_clients),
            ("agent", g.agents),
            ("dashboard", g.dashboards),
            ("other", g.connections.saturating_sub(known)),
        ] {
            c.encode_family(&[("role", role)])?.encode_gauge(&n)?;
        }
        counter(
            &mut enc,
            "devrelay_connections_opened",
            "WebSocket connections accepted since start",
            None,
            load(&m.connections_total),
        )?;
        gauge(
            &mut enc,
            "devrelay_channels",
            "Channels with subscribers or history",
            None,
            g.active_channels as u64,
        )?;

        counters(
            &mut enc,
            "devrelay_messages_received",
            "Frames received, by message type (invalid: undecodable; binary: binary frames)",
            None,
            "type",
            m.inbound_by_kind().map(|(k, n, _)| (k, n)),
        )?;
        counters(
            &mut enc,
            "devrelay_received",
            "Bytes of frames received, by message type",
            bytes,
            "type",
            m.inbound_by_kind().map(|(k, _, b)| (k, b)),
        )?;
        counters(
            &mut enc,
            "devrelay_messages_sent",
            "Messages queued for peers (one per recipient), by message type (publication: v2 publications)",
            None,
            "type",
            m.outbound_by_kind().map(|(k, n, _)| (k, n)),
        )?;
        counters(
            &mut enc,
            "devrelay_sent",
            "Bytes of messages queued for peers, by message type",
            bytes,
            "type",
            m.outbound_by_kind().map(|(k, _, b)| (k, b)),
        )?;

        for (name, help, value) in [
            (
                "devrelay_dropped_messages",
                "Messages not delivered because the recipient's queue was full",
                &m.dropped,
            ),
            (
                "devrelay_slow_consumer_closes",
                "Connections closed as slow consumers (4002)",
                &m.slow_consumer_closes,
            ),
            (
                "devrelay_heartbeat_timeouts",
                "Connections closed for missing pongs (4003)",
                &m.heartbeat_timeouts,
            ),
            (
                "devrelay_identify_timeouts",
                "Connections closed for not identifying in time (4001)",
                &m.identify_timeouts,
            ),
            (
                "devrelay_oversize_closes",
                "Connections closed for a message over max_message_bytes (1009)",
                &m.oversize_closes,
            ),
            (
                "devrelay_sessions_replaced",
                "Sessions or agents taken over by a newer connection with the same id (4500)",
                &m.sessions_replaced,
            ),
            (
                "devrelay_takeovers_refused",
                "Connections refused a session or agent id held by another live connection (4503)",
                &m.takeovers_refused,
            ),
            (
                "devrelay_stale",
                "Sessions and agents that stopped answering pings and were shown as stale",
                &m.stale,
            ),
            (
                "devrelay_auth_failures",
                "Requests and connections refused for a missing or wrong token, or a role or Origin that may not",
                &m.auth_failures,
            ),
            (
                "devrelay_rate_limited_messages",
                "Inbound messages dropped over a connection's rate limit",
                &m.rate_limited,
            ),
            (
                "devrelay_rate_limit_closes",
                "Connections closed for staying over their rate limit (4004)",
                &m.rate_limit_closes,
            ),
            (
                "devrelay_too_big_messages",
                "Messages refused as larger than their limit (too_big), the connection kept",
                &m.too_big,
            ),
            (
                "devrelay_idle_timeouts",
                "Connections closed for sending nothing for the idle timeout (4005)",
                &m.idle_timeouts,
            ),
            (
                "devrelay_conflated_snapshots",
                "Queued snapshots replaced by a newer one of the same channel before they were sent",
                &m.conflated,
            ),
            (
                "devrelay_coalesced_deltas",
                "text_delta publications saved by merging",
                &m.deltas_coalesced,
            ),
            (
                "devrelay_snapshots_not_cached",
                "Snapshots not cached for late subscribers because the cache was full",
                &m.snapshots_not_cached,
            ),
        ] {
            counter(&mut enc, name, help, None, load(value))?;
        }
        counters(
            &mut enc,
            "devrelay_rejected_upgrades",
            "WebSocket upgrades refused, by reason",
            None,
            "reason",
            m.rejections().map(|(r, n)| (r.as_str(), n)),
        )?;

        let q = hub.queue_depth();
        for (name, help, unit, v) in [
            (
                "devrelay_queued_frames",
                "Frames waiting in outbound queues, summed over connections",
                None,
                q.frames,
            ),
            (
                "devrelay_queued",
                "Bytes waiting in outbound queues, summed over connections",
                bytes,
                q.bytes,
            ),
            (
                "devrelay_queue_max_frames",
                "The longest outbound queue, in frames",
                None,
                q.max_frames,
            ),
            (
                "devrelay_queue_max",
                "The largest outbound queue, in bytes",
                bytes,
                q.max_bytes,
            ),
            (
                "devrelay_history",
                "Bytes held by channel history (recovery)",
                bytes,
                hub.history_bytes(),
            ),
            (
                "devrelay_snapshot_cache",
                "Bytes of cached latest snapshots",
                bytes,
                hub.snapshot_cache_bytes(),
            ),
        ] {
            gauge(&mut enc, name, help, unit, v as u64)?;
        }

        let h = m.fanout_latency.snapshot();
        // Octave boundaries from 16 µs to 2^32 µs (~72 min), then `+Inf` (the OpenMetrics encoder does not add
        // it); the encoders want each bucket's own count.
        let mut below_previous = 0;
        let mut buckets: Vec<(f64, u64)> = h
            .octaves()
            .filter(|&(upper, _)| upper >= 16)
            .map(|(upper, below)| {
                let own = below - below_previous;
                below_previous = below;
                (upper as f64 / 1e6, own)
            })
            .collect();
        buckets.push((f64::INFINITY, h.count() - below_previous));
        enc.encode_descriptor(
            "devrelay_fanout_latency",
            "Publication stamped to written to the subscriber's socket",
            seconds,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(
            h.sum_us() as f64 / 1e6,
            h.count(),
            &buckets,
            None,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_choose_the_format() {
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some("text/plain")));
        assert!(!wants_openmetrics(Some("*/*")));
        // Prometheus 2.x's scrape header.
        assert!(wants_openmetrics(Some(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )));
    }
}
