//! Reconnect schedule: exponential backoff with jitter from a seeded RNG, reset once a connection was stable.
//!
//! The one schedule of every client that reconnects to a relay: the dashboard's `devrelay-client` (wasm) and the
//! demo SDK (native). Plain arithmetic on milliseconds, so it costs the wasm client next to nothing.

use serde::Deserialize;

use crate::rng::Rng;

/// How and when to reconnect after the relay connection drops. Every duration is in milliseconds.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ReconnectPolicy {
    /// Reconnect at all (a close code that forbids it, e.g. 4000 session replaced, always wins).
    pub enabled: bool,
    /// Delay before the first reconnect attempt, ms.
    pub initial_delay_ms: f64,
    /// Upper bound of any delay, jitter included, ms.
    pub max_delay_ms: f64,
    /// Growth factor per failed attempt (≥ 1).
    pub multiplier: f64,
    /// Random spread as a fraction of the delay (0..=1): the delay is drawn from `base·(1 ± jitter)`.
    pub jitter: f64,
    /// A connection that stayed open at least this long resets the schedule to the initial delay, ms.
    pub stable_after_ms: f64,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            enabled: true,
            initial_delay_ms: 500.0,
            max_delay_ms: 10_000.0,
            multiplier: 2.0,
            jitter: 0.2,
            stable_after_ms: 5_000.0,
        }
    }
}

impl ReconnectPolicy {
    /// The policy with every field forced into its valid range (options come from untyped JS).
    pub fn sanitized(self) -> Self {
        let finite = |v: f64, default: f64| if v.is_finite() { v } else { default };
        let d = ReconnectPolicy::default();
        let initial = finite(self.initial_delay_ms, d.initial_delay_ms).max(0.0);
        ReconnectPolicy {
            enabled: self.enabled,
            initial_delay_ms: initial,
            max_delay_ms: finite(self.max_delay_ms, d.max_delay_ms).max(initial),
            multiplier: finite(self.multiplier, d.multiplier).max(1.0),
            jitter: finite(self.jitter, d.jitter).clamp(0.0, 1.0),
            stable_after_ms: finite(self.stable_after_ms, d.stable_after_ms).max(0.0),
        }
    }
}

/// The reconnect schedule of one `DevtoolsConnection`.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: ReconnectPolicy,
    attempt: u32,
    rng: Rng,
}

impl Backoff {
    /// A fresh schedule. `seed` drives the jitter: the browser seeds it from `Math.random()`, tests fix it.
    pub fn new(policy: ReconnectPolicy, seed: u64) -> Self {
        Backoff {
            policy: policy.sanitized(),
            attempt: 0,
            rng: Rng::with_seed(seed),
        }
    }

    pub fn policy(&self) -> &ReconnectPolicy {
        &self.policy
    }

    /// Reconnect attempts scheduled since the last reset (1 for the first retry).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// A connection ended after being open for `open_for_ms` (`None`: it never opened). A stable connection
    /// resets the schedule, so a relay restart after hours of uptime is retried quickly again.
    pub fn connection_ended(&mut self, open_for_ms: Option<f64>) {
        if open_for_ms.is_some_and(|ms| ms >= self.policy.stable_after_ms) {
            self.reset();
        }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// The delay before the next attempt, in ms, and counts the attempt; `None` when reconnecting is disabled.
    pub fn next_delay(&mut self) -> Option<f64> {
        if !self.policy.enabled {
            return None;
        }
        let p = &self.policy;
        // Capping the exponent keeps powi finite; the min() below caps the delay anyway.
        let exp = self.attempt.min(64) as i32;
        let base = (p.initial_delay_ms * p.multiplier.powi(exp)).min(p.max_delay_ms);
        let spread = self.rng.f64() * 2.0 - 1.0; // [-1, 1)
                                                 // max/min, not `clamp`: clamp's bounds check formats f64s in its panic message, which links core's float
                                                 // formatting (~7 KB gzip) into the wasm. `sanitized()` guarantees 0 <= max_delay_ms.
        let delay = (base * (1.0 + p.jitter * spread))
            .max(0.0)
            .min(p.max_delay_ms);
        self.attempt = self.attempt.saturating_add(1);
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_jitter() -> ReconnectPolicy {
        ReconnectPolicy {
            jitter: 0.0,
            ..ReconnectPolicy::default()
        }
    }

    #[test]
    fn grows_exponentially_up_to_the_cap() {
        let mut b = Backoff::new(no_jitter(), 1);
        let delays: Vec<f64> = (0..8).map(|_| b.next_delay().unwrap()).collect();
        assert_eq!(
            delays,
            [500.0, 1000.0, 2000.0, 4000.0, 8000.0, 10_000.0, 10_000.0, 10_000.0]
        );
        assert_eq!(b.attempt(), 8);
        // Far past the exponent cap the delay stays finite and capped.
        for _ in 0..200 {
            assert_eq!(b.next_delay(), Some(10_000.0));
        }
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let policy = ReconnectPolicy::default(); // jitter 0.2
        let mut b = Backoff::new(policy.clone(), 42);
        let mut seen = Vec::new();
        for attempt in 0..12u32 {
            let base = (500.0 * 2f64.powi(attempt as i32)).min(10_000.0);
            let d = b.next_delay().unwrap();
            assert!(
                d >= base * 0.8 && d <= (base * 1.2).min(10_000.0),
                "attempt {attempt}: {d} vs base {base}"
            );
            seen.push(d);
        }
        // Over many first attempts from different seeds the spread covers both sides of the base.
        let firsts: Vec<f64> = (0..200u64)
            .map(|seed| Backoff::new(policy.clone(), seed).next_delay().unwrap())
            .collect();
        assert!(firsts.iter().any(|&d| d < 450.0) && firsts.iter().any(|&d| d > 550.0));
        assert!(firsts.iter().all(|&d| (400.0..=600.0).contains(&d)));
    }

    #[test]
    fn same_seed_same_schedule() {
        let mut a = Backoff::new(ReconnectPolicy::default(), 7);
        let mut b = Backoff::new(ReconnectPolicy::default(), 7);
        for _ in 0..10 {
            assert_eq!(a.next_delay(), b.next_delay());
        }
    }

    #[test]
    fn resets_only_after_a_stable_connection() {
        let mut b = Backoff::new(no_jitter(), 1);
        b.next_delay();
        b.next_delay();
        b.next_delay();
        b.connection_ended(None); // never opened
        assert_eq!(b.next_delay(), Some(4000.0));
        b.connection_ended(Some(4_999.0)); // opened, dropped before stable
        assert_eq!(b.next_delay(), Some(8000.0));
        b.connection_ended(Some(5_000.0));
        assert_eq!(b.attempt(), 0);
        assert_eq!(b.next_delay(), Some(500.0));
    }

    #[test]
    fn disabled_policy_never_reconnects() {
        let mut b = Backoff::new(
            ReconnectPolicy {
                enabled: false,
                ..ReconnectPolicy::default()
            },
            1,
        );
        assert_eq!(b.next_delay(), None);
        assert_eq!(b.attempt(), 0);
    }

    #[test]
    fn nonsense_options_are_sanitized() {
        let p = ReconnectPolicy {
            enabled: true,
            initial_delay_ms: -5.0,
            max_delay_ms: f64::NAN,
            multiplier: 0.5,
            jitter: 3.0,
            stable_after_ms: -1.0,
        }
        .sanitized();
        assert_eq!(p.initial_delay_ms, 0.0);
        assert_eq!(p.max_delay_ms, 10_000.0);
        assert_eq!(p.multiplier, 1.0);
        assert_eq!(p.jitter, 1.0);
        assert_eq!(p.stable_after_ms, 0.0);
        let from_json: ReconnectPolicy =
            crate::json_reader::from_str(r#"{"initialDelayMs":100,"maxDelayMs":50}"#).unwrap();
        let s = from_json.sanitized();
        assert_eq!(
            (s.initial_delay_ms, s.max_delay_ms, s.multiplier),
            (100.0, 100.0, 2.0)
        );
    }
}
