//! Latency recording (an HDR histogram per receiver, merged at the end) and its percentile summary.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency recorded exactly, in nanoseconds (60 s); larger values are clamped to it.
const MAX_NANOS: u64 = 60_000_000_000;

/// A latency histogram in nanoseconds, 3 significant digits.
#[derive(Debug, Clone)]
pub struct Latencies {
    hist: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            hist: Histogram::new_with_bounds(1, MAX_NANOS, 3).expect("valid histogram bounds"),
        }
    }
}

impl Latencies {
    pub fn record(&mut self, nanos: u64) {
        self.hist.saturating_record(nanos.clamp(1, MAX_NANOS));
    }

    /// `count` deliveries of the same latency.
    pub fn record_n(&mut self, nanos: u64, count: u64) {
        if count > 0 {
            let _ = self.hist.record_n(nanos.clamp(1, MAX_NANOS), count);
        }
    }

    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.hist.add(&other.hist);
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// Percentiles in microseconds.
    pub fn summary(&self) -> LatencySummary {
        let us = |n: u64| n as f64 / 1000.0;
        if self.hist.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.hist.len(),
            mean_us: self.hist.mean() / 1000.0,
            p50_us: us(self.hist.value_at_quantile(0.50)),
            p99_us: us(self.hist.value_at_quantile(0.99)),
            p999_us: us(self.hist.value_at_quantile(0.999)),
            max_us: us(self.hist.max()),
        }
    }
}

/// Latency percentiles of one scenario, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b * 0.002 + 0.001
    }

    #[test]
    fn percentiles_of_a_uniform_spread() {
        let mut l = Latencies::default();
        // 1..=10_000 microseconds, once each.
        for us in 1..=10_000u64 {
            l.record(us * 1000);
        }
        let s = l.summary();
        assert_eq!(s.count, 10_000);
        assert!(close(s.p50_us, 5000.0), "{s:?}");
        assert!(close(s.p99_us, 9900.0), "{s:?}");
        assert!(close(s.p999_us, 9990.0), "{s:?}");
        assert!(close(s.max_us, 10_000.0), "{s:?}");
        assert!(close(s.mean_us, 5000.5), "{s:?}");
    }

    #[test]
    fn merging_receivers_and_a_tail_outlier() {
        let mut a = Latencies::default();
        let mut b = Latencies::default();
        for _ in 0..999 {
            a.record(100_000);
        }
        b.record(50_000_000);
        a.merge(&b);
        let s = a.summary();
        assert_eq!(s.count, 1000);
        assert!(close(s.p50_us, 100.0) && close(s.p99_us, 100.0), "{s:?}");
        assert!(close(s.max_us, 50_000.0), "{s:?}");
        // Out-of-range values are clamped, not lost.
        a.record(u64::MAX);
        a.record(0);
        assert_eq!(a.count(), 1002);
        a.record_n(100_000, 3);
        a.record_n(100_000, 0);
        assert_eq!(a.count(), 1005);
        assert_eq!(Latencies::default().summary(), LatencySummary::default());
    }
}
