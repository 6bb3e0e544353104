//! Text-delta coalescing (seed 004): consecutive `text_delta` publications of one session are merged into
//! one over a short window, so a model streaming tokens costs dashboards one message per window instead of
//! one per token.
//!
//! It lives in the publishing connection: only a session's own connection publishes on `sessions/{id}`, so
//! holding its pending delta there keeps the session's order exactly. The pending delta is published when
//! the window ends, before any other publication of that connection, when the merged text would grow past
//! its bound, when the turn changes, and when the connection ends. No delta is lost or reordered.

use std::time::{Duration, Instant};

use devrelay_protocol::session_event::TextDelta;
use devrelay_protocol::v2::RequestId;

/// Most `publish` ids one merged delta answers (each gets its ack when it is published).
const MAX_IDS: usize = 256;

/// A merged delta waiting for its window to end.
#[derive(Debug, PartialEq)]
pub struct Pending {
    pub channel: String,
    pub delta: TextDelta,
    /// Ids of the merged publishes that asked for an ack.
    pub ids: Vec<RequestId>,
    /// How many deltas were merged.
    pub merged: u64,
    pub deadline: Instant,
}

/// One connection's coalescer.
#[derive(Debug)]
pub struct Coalescer {
    window: Duration,
    /// The merged text is published before it would exceed this many bytes.
    max_bytes: usize,
    pending: Option<Pending>,
}

/// What to do with an offered delta.
#[derive(Debug, PartialEq)]
pub enum Offer {
    /// Held: it will go out with the pending merge.
    Held,
    /// Coalescing is off or this delta cannot wait: publish it now, after publishing `flush` (if any).
    PublishNow { flush: Option<Pending> },
    /// Held, but publish `flush` (an earlier merge that this one could not join) first.
    HeldAfter { flush: Pending },
}

impl Coalescer {
    pub fn new(window: Duration, max_bytes: usize) -> Self {
        Coalescer {
            window,
            max_bytes,
            pending: None,
        }
    }

    /// When the pending merge must go out.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.deadline)
    }

    /// Takes the pending merge (to publish it), if any.
    pub fn take(&mut self) -> Option<Pending> {
        self.pending.take()
    }

    /// Offers a `text_delta` published on `channel`, with the publish's ack id.
    pub fn offer(
        &mut self,
        channel: &str,
        delta: TextDelta,
        id: Option<RequestId>,
        now: Instant,
    ) -> Offer {
        if self.window.is_zero() {
            return Offer::PublishNow { flush: None };
        }
        let joins = self.pending.as_ref().is_some_and(|p| {
            p.channel == channel
                && p.delta.turn_id == delta.turn_id
                && p.delta.delta.len() + delta.delta.len() <= self.max_bytes
                && (id.is_none() || p.ids.len() < MAX_IDS)
        });
        if joins {
            let p = self.pending.as_mut().expect("checked above");
            p.delta.delta.push_str(&delta.delta);
            p.ids.extend(id);
            p.merged += 1;
            return Offer::Held;
        }
        let flush = self.pending.take();
        if delta.delta.len() > self.max_bytes {
            return Offer::PublishNow { flush };
        }
        self.pending = Some(Pending {
            channel: channel.into(),
            delta,
            ids: id.into_iter().collect(),
            merged: 1,
            deadline: now + self.window,
        });
        match flush {
            Some(flush) => Offer::HeldAfter { flush },
            None => Offer::Held,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str, turn: Option<&str>) -> TextDelta {
        TextDelta {
            delta: text.into(),
            turn_id: turn.map(Into::into),
        }
    }

    #[test]
    fn deltas_merge_in_order_within_a_turn() {
        let mut c = Coalescer::new(Duration::from_millis(50), 1000);
        let t0 = Instant::now();
        assert_eq!(
            c.offer("sessions/s", d("Hel", Some("t")), Some(1.into()), t0),
            Offer::Held
        );
        assert_eq!(
            c.offer("sessions/s", d("lo", Some("t")), None, t0),
            Offer::Held
        );
        assert_eq!(
            c.offer("sessions/s", d(" w", Some("t")), Some(2.into()), t0),
            Offer::Held
        );
        assert_eq!(c.deadline(), Some(t0 + Duration::from_millis(50)));
        let p = c.take().unwrap();
        assert_eq!(p.delta, d("Hello w", Some("t")));
        assert_eq!(p.ids, [RequestId::Num(1), RequestId::Num(2)]);
        assert_eq!(p.merged, 3);
        assert_eq!(c.take(), None);
    }

    #[test]
    fn a_new_turn_or_channel_flushes_the_old_merge_first() {
        let mut c = Coalescer::new(Duration::from_millis(50), 1000);
        let t0 = Instant::now();
        c.offer("sessions/s", d("a", Some("t1")), None, t0);
        match c.offer("sessions/s", d("b", Some("t2")), None, t0) {
            Offer::HeldAfter { flush } => assert_eq!(flush.delta, d("a", Some("t1"))),
            other => panic!("{other:?}"),
        }
        match c.offer("sessions/x", d("c", Some("t2")), None, t0) {
            Offer::HeldAfter { flush } => assert_eq!(flush.delta, d("b", Some("t2"))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn off_and_oversized_deltas_go_at_once() {
        let mut off = Coalescer::new(Duration::ZERO, 1000);
        let t0 = Instant::now();
        assert_eq!(
            off.offer("sessions/s", d("a", None), None, t0),
            Offer::PublishNow { flush: None }
        );
        let mut c = Coalescer::new(Duration::from_millis(50), 4);
        c.offer("sessions/s", d("abc", None), None, t0);
        // "abc" + "de" > 4 bytes: the merge goes out and "de" starts a new one.
        assert!(matches!(
            c.offer("sessions/s", d("de", None), None, t0),
            Offer::HeldAfter { .. }
        ));
        match c.offer("sessions/s", d("toolong", None), None, t0) {
            Offer::PublishNow { flush: Some(f) } => assert_eq!(f.delta.delta, "de"),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.take(), None);
    }
}
