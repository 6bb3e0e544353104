//! One clock reading per socket read, not two or three per message.
//!
//! A streaming SDK's read brings ~100 messages at once (scenario b: ~130 per `recv`), and each used to read the
//! clock three times: the monotonic clock for its rate limit and the idle timer (`on_received`), the wall clock
//! for its publication's `timestamp` and the monotonic clock again for the publication's history age
//! (`MemoryEngine::publish`): ~6 % of the relay's CPU in b (`clock_gettime` through the vDSO). A connection's
//! reader handles a read's messages synchronously, one after another, in microseconds, so they share one
//! reading: [`Scope`] takes it when a read's first message is handled and holds it for the rest of that read;
//! [`instant`] and [`millis`] return it while a scope is open on the thread, and read the clock themselves
//! otherwise (HTTP publishes, the relay's own events, timers). The wall clock is read only if a message of the
//! read needs it (a publication), once.
//!
//! What it changes: the messages of one read are stamped with the time the read's first one was handled (the
//! later ones are no older than the read itself — they arrived together): the same millisecond `timestamp`, the
//! same rate-limit refill (none between them: stricter, never looser), the same idle-timer mark and history
//! age. A scope lives inside one synchronous call (`!Send`, never held across an `.await`), like the outbox's
//! cork.

use std::cell::Cell;
use std::marker::PhantomData;
use std::time::Instant;

use devrelay_protocol::Millis;

#[derive(Clone, Copy)]
struct Reading {
    at: Instant,
    /// Read on first use within the scope.
    millis: Option<Millis>,
}

thread_local! {
    static CURRENT: Cell<Option<Reading>> = const { Cell::new(None) };
}

/// While it lives, [`instant`] and [`millis`] on this thread return one reading taken when it was opened.
pub struct Scope {
    /// The scope it replaced (none but in a nested use), restored when it ends.
    outer: Option<Reading>,
    _not_send: PhantomData<*const ()>,
}

impl Scope {
    /// Reads the monotonic clock and holds the reading (the wall clock waits until asked for).
    pub fn open() -> Scope {
        let outer = CURRENT.replace(Some(Reading {
            at: Instant::now(),
            millis: None,
        }));
        Scope {
            outer,
            _not_send: PhantomData,
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        CURRENT.set(self.outer.take());
    }
}

/// The monotonic time: the open scope's, else the clock's.
pub fn instant() -> Instant {
    CURRENT.get().map_or_else(Instant::now, |r| r.at)
}

/// The wall-clock time in milliseconds: the open scope's (read at its first use), else the clock's.
pub fn millis() -> Millis {
    match CURRENT.get() {
        Some(Reading {
            millis: Some(ms), ..
        }) => ms,
        Some(mut r) => {
            let ms = Millis::now();
            r.millis = Some(ms);
            CURRENT.set(Some(r));
            ms
        }
        None => Millis::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_holds_one_reading_and_restores_what_it_replaced() {
        let before = instant();
        {
            let _scope = Scope::open();
            let (at, ms) = (instant(), millis());
            assert!(at >= before);
            // The same reading however often it is asked for, while the clock moves on.
            std::thread::sleep(std::time::Duration::from_millis(2));
            assert_eq!(instant(), at);
            assert_eq!(millis(), ms);
            {
                let _inner = Scope::open();
                assert!(instant() > at);
            }
            assert_eq!(instant(), at);
            assert_eq!(millis(), ms);
            // Another thread has no scope: its own clock.
            std::thread::spawn(move || assert!(instant() > at))
                .join()
                .unwrap();
        }
        let after = instant();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(instant() > after, "no scope: the clock itself");
        assert!(CURRENT.get().is_none());
    }
}
