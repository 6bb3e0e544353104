//! The outbox: what the client published on its own channel and the relay has not acknowledged yet, numbered by
//! the client's own sequence (`seq`), bounded in messages and bytes.
//!
//! Everything published goes through it, connected or not: entries are written to the socket once
//! (`take_unsent`) and removed when the relay acknowledges them (`acked`, in order). When a connection ends,
//! every entry left is unsent again and goes out on the next one, with the same `seq`: the relay drops those it
//! already took (`ack.duplicate`), so a reconnect loses nothing and repeats nothing. Full, the oldest entries
//! go first (they are the oldest output, and keeping the newest is what a terminal does); `dropped` counts them.

use std::collections::VecDeque;

/// One publication waiting for its ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    pub event: String,
    /// The `data`, as JSON text.
    pub data: String,
}

impl Entry {
    fn size(&self) -> usize {
        self.event.len() + self.data.len()
    }
}

/// The bounded, ordered outbox of one client.
#[derive(Debug)]
pub struct Outbox {
    entries: VecDeque<Entry>,
    bytes: usize,
    max_messages: usize,
    max_bytes: usize,
    /// The next `seq` to give out.
    next_seq: u64,
    /// Entries with `seq` up to this were written to the current connection.
    sent_upto: u64,
    /// Entries dropped because the outbox was full, since the client started.
    pub dropped: u64,
    /// Entries acknowledged (published, or already taken before), since the client started.
    pub acked: u64,
}

impl Outbox {
    pub fn new(max_messages: usize, max_bytes: usize) -> Self {
        Outbox {
            entries: VecDeque::new(),
            bytes: 0,
            max_messages: max_messages.max(1),
            max_bytes,
            next_seq: 1,
            sent_upto: 0,
            dropped: 0,
            acked: 0,
        }
    }

    /// Adds a publication; returns its `seq`. Makes room by dropping the oldest entries.
    pub fn push(&mut self, event: String, data: String) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let entry = Entry { seq, event, data };
        self.bytes += entry.size();
        self.entries.push_back(entry);
        while self.entries.len() > self.max_messages
            || (self.bytes > self.max_bytes && self.entries.len() > 1)
        {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.size();
                self.dropped += 1;
            }
        }
        seq
    }

    /// Entries not yet written to this connection, at most `max` of them; they count as written from now on.
    pub fn take_unsent(&mut self, max: usize) -> Vec<Entry> {
        let out: Vec<Entry> = self
            .entries
            .iter()
            .filter(|e| e.seq > self.sent_upto)
            .take(max)
            .cloned()
            .collect();
        if let Some(last) = out.last() {
            self.sent_upto = last.seq;
        }
        out
    }

    /// Whether something is waiting to be written.
    pub fn has_unsent(&self) -> bool {
        self.entries.back().is_some_and(|e| e.seq > self.sent_upto)
    }

    /// The relay answered everything up to `seq` (an ack, a duplicate, or an error for it).
    pub fn acked(&mut self, seq: u64) {
        while let Some(front) = self.entries.front() {
            if front.seq > seq {
                break;
            }
            self.bytes -= front.size();
            self.entries.pop_front();
            self.acked += 1;
        }
    }

    /// A new connection: everything left is to be written again. `last_seq` is the relay's highest `seq` for
    /// the channel (`connected.lastSeq`). If this client published to the relay before (`resumed`), entries up to
    /// it were taken and go; otherwise they were never sent and `last_seq` belongs to an earlier process with this
    /// identity, so the entries are renumbered above it (the relay would take them for resends otherwise).
    pub fn reconnected(&mut self, last_seq: u64, resumed: bool) {
        self.sent_upto = 0;
        if resumed {
            self.acked(last_seq);
            self.next_seq = self.next_seq.max(last_seq + 1);
        } else if last_seq >= self.entries.front().map_or(self.next_seq, |e| e.seq) {
            let shift = last_seq + 1 - self.entries.front().map_or(self.next_seq, |e| e.seq);
            for e in &mut self.entries {
                e.seq += shift;
            }
            self.next_seq += shift;
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(v: &[Entry]) -> Vec<u64> {
        v.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn written_once_per_connection_and_removed_when_acked() {
        let mut o = Outbox::new(10, 1000);
        for i in 0..3 {
            o.push("output".into(), i.to_string());
        }
        assert_eq!(seqs(&o.take_unsent(2)), [1, 2]);
        assert_eq!(seqs(&o.take_unsent(10)), [3]);
        assert!(o.take_unsent(10).is_empty() && !o.has_unsent());
        o.acked(2);
        assert_eq!(o.len(), 1);
        // The connection drops before 3 is acked: it goes out again on the next one.
        o.reconnected(2, true);
        assert_eq!(seqs(&o.take_unsent(10)), [3]);
        o.acked(3);
        assert!(o.is_empty());
        assert_eq!((o.acked, o.dropped, o.bytes()), (3, 0, 0));
    }

    #[test]
    fn a_reconnect_drops_what_the_relay_already_took() {
        let mut o = Outbox::new(10, 1000);
        for _ in 0..5 {
            o.push("e".into(), "1".into());
        }
        o.take_unsent(10);
        // The acks for 1..=4 were lost with the connection, but the relay has them.
        o.reconnected(4, true);
        assert_eq!(seqs(&o.take_unsent(10)), [5]);
        // A relay that restarted knows nothing: everything is resent.
        let mut o2 = Outbox::new(10, 1000);
        o2.push("e".into(), "1".into());
        o2.take_unsent(10);
        o2.reconnected(0, true);
        assert_eq!(seqs(&o2.take_unsent(10)), [1]);
    }

    #[test]
    fn a_new_process_numbers_above_its_predecessor() {
        let mut o = Outbox::new(10, 1000);
        o.push("e".into(), "a".into());
        o.push("e".into(), "b".into());
        o.reconnected(40, false);
        assert_eq!(seqs(&o.take_unsent(10)), [41, 42]);
        assert_eq!(o.push("e".into(), "c".into()), 43);
        // Nothing buffered: the next one follows the relay's.
        let mut o = Outbox::new(10, 1000);
        o.reconnected(7, false);
        assert_eq!(o.push("e".into(), "x".into()), 8);
    }

    #[test]
    fn full_drops_the_oldest() {
        let mut o = Outbox::new(3, 1000);
        for _ in 0..5 {
            o.push("e".into(), "1".into());
        }
        assert_eq!(seqs(&o.take_unsent(10)), [3, 4, 5]);
        assert_eq!(o.dropped, 2);
        let mut o = Outbox::new(100, 9);
        o.push("e".into(), "1234".into());
        o.push("e".into(), "1234".into());
        assert_eq!((o.len(), o.dropped), (1, 1), "byte bound");
    }
}
