//! Rate limits as token buckets: what one connection may send per second (messages and bytes), and how many new
//! connections the relay takes per second. A bucket holds one second's worth, so a burst of that size passes and
//! a steady rate above the limit does not.

use std::time::{Duration, Instant};

/// A token bucket: `rate` tokens per second, at most `capacity` saved up. Starts full.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate_per_sec: f64, capacity: f64, now: Instant) -> Self {
        TokenBucket {
            rate: rate_per_sec,
            capacity,
            tokens: capacity,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.last = now;
    }

    /// Whether `n` tokens are there now (without taking them).
    fn has(&mut self, n: f64, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= n
    }

    /// Takes `n` tokens if there are that many.
    pub fn try_take(&mut self, n: f64, now: Instant) -> bool {
        if self.has(n, now) {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

/// The inbound limits every connection is held to: set once (from the config), shared by all connections.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundRates {
    messages_per_sec: f64,
    bytes_per_sec: f64,
    /// The byte bucket's size: a second's worth, or one largest message if that is more.
    byte_capacity: f64,
    grace: Duration,
}

impl InboundRates {
    /// Limits of `messages_per_sec` and `bytes_per_sec`; the byte bucket holds at least `largest_message` bytes
    /// (a message the relay accepts must be able to pass). Over them for longer than `grace`: `Close`.
    pub fn new(
        messages_per_sec: u32,
        bytes_per_sec: u64,
        largest_message: usize,
        grace: Duration,
    ) -> Self {
        let bytes = bytes_per_sec as f64;
        InboundRates {
            messages_per_sec: f64::from(messages_per_sec),
            bytes_per_sec: bytes,
            byte_capacity: bytes.max(largest_message as f64),
            grace,
        }
    }
}

/// A connection's inbound limits: messages and bytes per second (two token buckets refilled together), and how
/// long it has been going over them. Kept small, as every idle connection holds one: the rates are shared, and
/// an episode of going over them is allocated only while there is one.
#[derive(Debug, Clone)]
pub struct InboundLimit {
    rates: std::sync::Arc<InboundRates>,
    messages: f64,
    bytes: f64,
    last: Instant,
    over: Option<Box<Over>>,
}

/// An episode of going over the limit: it ends after a second without a dropped message.
#[derive(Debug, Clone, Copy)]
struct Over {
    since: Instant,
    last_drop: Instant,
    /// Dropped since the peer was last told.
    untold: u64,
    told: Option<Instant>,
}

/// What to do with one inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Within the limits: handle it.
    Yes,
    /// Over a limit: drop it. `tell`: tell the peer now how many were dropped since it was last told (at most
    /// one `rate_limited` error per second, so the errors cannot be a flood of their own).
    Dropped { tell: Option<u64> },
    /// Over a limit for longer than the grace: close the connection (4004).
    Close,
}

/// A connection stays "over its limit" while messages keep being dropped within this of each other.
const EPISODE_GAP: Duration = Duration::from_secs(1);

impl InboundLimit {
    /// Full buckets at `now`.
    pub fn new(rates: std::sync::Arc<InboundRates>, now: Instant) -> Self {
        InboundLimit {
            messages: rates.messages_per_sec,
            bytes: rates.byte_capacity,
            rates,
            last: now,
            over: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        let r = &*self.rates;
        self.messages = (self.messages + elapsed * r.messages_per_sec).min(r.messages_per_sec);
        self.bytes = (self.bytes + elapsed * r.bytes_per_sec).min(r.byte_capacity);
        self.last = now;
    }

    /// Accounts for one inbound message of `len` bytes.
    pub fn admit(&mut self, len: usize, now: Instant) -> Admit {
        let len = len as f64;
        self.refill(now);
        if self.messages >= 1.0 && self.bytes >= len {
            self.messages -= 1.0;
            self.bytes -= len;
            if self
                .over
                .as_ref()
                .is_some_and(|o| now.saturating_duration_since(o.last_drop) > EPISODE_GAP)
            {
                self.over = None;
            }
            return Admit::Yes;
        }
        let grace = self.rates.grace;
        let over = match self.over.as_deref_mut() {
            Some(o) if now.saturating_duration_since(o.last_drop) <= EPISODE_GAP => o,
            _ => self.over.insert(Box::new(Over {
                since: now,
                last_drop: now,
                untold: 0,
                told: None,
            })),
        };
        over.last_drop = now;
        over.untold += 1;
        if now.saturating_duration_since(over.since) >= grace && over.told.is_some() {
            return Admit::Close;
        }
        let due = over
            .told
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
        if due {
            over.told = Some(now);
            let n = std::mem::take(&mut over.untold);
            Admit::Dropped { tell: Some(n) }
        } else {
            Admit::Dropped { tell: None }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(
        messages: u32,
        bytes: u64,
        largest: usize,
        grace: Duration,
        now: Instant,
    ) -> InboundLimit {
        let rates = InboundRates::new(messages, bytes, largest, grace);
        InboundLimit::new(std::sync::Arc::new(rates), now)
    }

    #[test]
    fn a_bucket_passes_a_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 10.0, t0);
        assert_eq!((0..15).filter(|_| b.try_take(1.0, t0)).count(), 10);
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..15).filter(|_| b.try_take(1.0, t1)).count(), 5);
        // Never more than its capacity, however long it waited.
        let t2 = t1 + Duration::from_secs(3600);
        assert_eq!((0..50).filter(|_| b.try_take(1.0, t2)).count(), 10);
    }

    #[test]
    fn over_the_limit_drops_tells_once_a_second_then_closes_after_the_grace() {
        let t0 = Instant::now();
        let mut l = limit(100, 1 << 30, 1 << 20, Duration::from_secs(3), t0);
        for _ in 0..100 {
            assert_eq!(l.admit(10, t0), Admit::Yes);
        }
        assert_eq!(l.admit(10, t0), Admit::Dropped { tell: Some(1) });
        assert_eq!(l.admit(10, t0), Admit::Dropped { tell: None });
        // Twice the rate, every 100 ms: half passes, half is dropped; told again once a second, with the count.
        let mut told = Vec::new();
        let mut closed_at = None;
        for step in 1..=40u32 {
            let t = t0 + Duration::from_millis(100) * step;
            for _ in 0..20 {
                match l.admit(10, t) {
                    Admit::Dropped { tell: Some(n) } => told.push((step, n)),
                    Admit::Close => {
                        closed_at.get_or_insert(step);
                    }
                    _ => {}
                }
            }
        }
        assert_eq!(told.first().map(|(step, _)| *step), Some(10), "{told:?}");
        assert!(told.iter().all(|(_, n)| *n > 50), "{told:?}");
        // Over it from t0 on: closed once three seconds have passed.
        assert_eq!(closed_at, Some(30));
    }

    #[test]
    fn a_pause_ends_the_episode() {
        let t0 = Instant::now();
        let mut l = limit(1, 1 << 30, 1 << 20, Duration::from_secs(2), t0);
        assert_eq!(l.admit(1, t0), Admit::Yes);
        assert!(matches!(l.admit(1, t0), Admit::Dropped { .. }));
        // Back within the limit for a while: the next drop starts a new episode (and is told).
        let mut t = t0;
        for _ in 0..5 {
            t += Duration::from_secs(1);
            assert_eq!(l.admit(1, t), Admit::Yes);
        }
        assert_eq!(l.admit(1, t), Admit::Dropped { tell: Some(1) });
    }

    #[test]
    fn bytes_count_and_one_largest_message_always_fits() {
        let t0 = Instant::now();
        let mut l = limit(1000, 100, 5000, Duration::from_secs(1), t0);
        assert_eq!(l.admit(5000, t0), Admit::Yes);
        assert!(matches!(l.admit(10, t0), Admit::Dropped { .. }));
    }
}
