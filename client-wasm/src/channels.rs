//! The v2 channels a connection wants, and where each stands with the relay.
//!
//! Two kinds of interest share one relay subscription per channel: the store's own (`global` for the client
//! list, `sessions/*` or the followed `sessions/{id}` for snapshots and events) and the page's listeners
//! (`subscribe(channel, onMessage)`, counted here; the functions live in the wasm shell). A channel is
//! subscribed on the relay while anyone wants it and unsubscribed when the last interest goes; after a
//! reconnect every wanted channel is subscribed again. Plain Rust, tested natively.
//!
//! Resuming: after a reconnect each exact channel whose position is known is subscribed with `since` that
//! position, and each channel a wanted wildcard covers (`sessions/a` under `sessions/*`) gets a temporary
//! **catch-up** subscription with `since`, dropped again once its `ack` is in (the wildcard carries it from
//! there). Until a resume's `ack` arrives, publications of that channel are not taken (see
//! [`Channels::resuming`]): every one of them is in the replay that follows the `ack` (the relay queues the
//! `ack` and the replay together), so nothing is lost, duplicated or taken out of order whichever subscription
//! delivered it first.

use std::collections::HashMap;

use devrelay_protocol::v2::StreamPosition;

use crate::outgoing::Outgoing;

/// Where a channel stands with the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayState {
    /// Not subscribed on this connection (yet): not connected, or waiting for the protocol.
    Pending,
    /// `subscribe` sent with this request id; waiting for the `ack`.
    Subscribing(u64),
    Subscribed,
    /// The relay refused (see `ChannelEntry::error`); retried on the next connection.
    Failed,
    /// The relay speaks seed 000 only: it has no channels.
    Unsupported,
}

impl RelayState {
    /// The name in the TS API (`ChannelStatus`).
    pub fn as_str(self) -> &'static str {
        match self {
            RelayState::Pending | RelayState::Subscribing(_) => "pending",
            RelayState::Subscribed => "subscribed",
            RelayState::Failed => "failed",
            RelayState::Unsupported => "unsupported",
        }
    }
}

/// One wanted channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelEntry {
    pub name: String,
    /// Page listeners (`subscribe(channel, onMessage)`).
    pub listeners: u32,
    /// Wanted by the store itself.
    pub internal: bool,
    pub state: RelayState,
    /// The relay's refusal: `(code, message)`.
    pub error: Option<(String, String)>,
    /// A temporary subscription that resumes a channel a wanted wildcard covers; wanted until its `ack`.
    pub catch_up: bool,
    /// Resuming after this position (sent as `since`): set on reconnect, until the `ack` (or refusal).
    pub resume: Option<StreamPosition>,
    /// The resume's replay must not be taken even if the relay recovers it (its publisher was replaced
    /// meanwhile: the replay would carry the old connection's tail into the new one's state).
    pub resync: bool,
}

impl ChannelEntry {
    fn new(name: &str) -> Self {
        ChannelEntry {
            name: name.to_owned(),
            listeners: 0,
            internal: false,
            state: RelayState::Pending,
            error: None,
            catch_up: false,
            resume: None,
            resync: false,
        }
    }

    fn wanted(&self) -> bool {
        self.listeners > 0 || self.internal || self.catch_up
    }

    fn active(&self) -> bool {
        matches!(
            self.state,
            RelayState::Subscribing(_) | RelayState::Subscribed
        )
    }
}

/// A publication's position in its channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub epoch: String,
    pub offset: u64,
    /// Store clock of the last update (the oldest is forgotten first when the table is full).
    stamp: u64,
}

/// Most channels whose position is remembered (sessions, agents, topics seen); the least recently updated is
/// forgotten first beyond that.
pub const MAX_POSITIONS: usize = 4096;

/// The wanted channels (in the order they were first wanted, which is the order they are subscribed in), and
/// the last position seen on every channel publications came from.
#[derive(Debug, Clone, Default)]
pub struct Channels {
    entries: Vec<ChannelEntry>,
    positions: HashMap<String, Position>,
}

/// Whether a publication on `channel` is for a subscription to `pattern` (itself, or its `ns/*`).
pub fn covers(pattern: &str, channel: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => {
            prefix.ends_with('/') && channel.starts_with(prefix) && channel.len() > prefix.len()
        }
        None => pattern == channel,
    }
}

impl Channels {
    pub fn entries(&self) -> &[ChannelEntry] {
        &self.entries
    }

    pub fn positions(&self) -> &HashMap<String, Position> {
        &self.positions
    }

    fn entry(&mut self, name: &str) -> &mut ChannelEntry {
        let i = match self.entries.iter().position(|e| e.name == name) {
            Some(i) => i,
            None => {
                self.entries.push(ChannelEntry::new(name));
                self.entries.len() - 1
            }
        };
        &mut self.entries[i]
    }

    pub fn get(&self, name: &str) -> Option<&ChannelEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    pub fn add_listener(&mut self, name: &str) {
        self.entry(name).listeners += 1;
    }

    pub fn remove_listener(&mut self, name: &str) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.name == name) {
            e.listeners = e.listeners.saturating_sub(1);
        }
    }

    /// Makes exactly `names` the store's own channels, in this order and ahead of the page's (`global`, the
    /// client list, is subscribed before the sessions' data). Moved, not sorted: no sort code in the wasm.
    pub fn set_internal(&mut self, names: &[String]) {
        let mut ordered = Vec::with_capacity(self.entries.len() + names.len());
        for name in names {
            match self.entries.iter().position(|e| &e.name == name) {
                Some(i) => ordered.push(self.entries.remove(i)),
                None => ordered.push(ChannelEntry::new(name)),
            }
        }
        for e in &mut ordered {
            e.internal = true;
        }
        for e in &mut self.entries {
            e.internal = false;
        }
        ordered.append(&mut self.entries);
        self.entries = ordered;
    }

    /// Whether some page listener wants publications of `channel`.
    pub fn has_listener_for(&self, channel: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.listeners > 0 && covers(&e.name, channel))
    }

    /// Brings the relay in line with what is wanted: `unsubscribe` for subscribed channels nobody wants
    /// (forgotten at once), then `subscribe` for wanted ones not yet subscribed (with `since` when resuming).
    /// `request(name, subscribe)` allocates each request's id. Catch-up subscriptions are sent only while the
    /// connection holds fewer than `max_subscriptions` (the relay's limit; the rest wait for a slot, their
    /// publications held back meanwhile). With `live` false (no v2 connection) nothing is sent and unwanted
    /// entries are just forgotten. Returns whether anything changed.
    pub fn sync(
        &mut self,
        live: bool,
        max_subscriptions: usize,
        out: &mut Vec<Outgoing>,
        mut request: impl FnMut(&str, bool) -> u64,
    ) -> bool {
        let mut changed = false;
        // Unsubscribes first: the connection never holds more subscriptions than it ends up with (the relay
        // counts them against `maxSubscriptions`).
        self.entries.retain(|e| {
            if e.wanted() {
                return true;
            }
            if live && matches!(e.state, RelayState::Subscribing(_) | RelayState::Subscribed) {
                let id = request(&e.name, false);
                out.push(Outgoing::Unsubscribe {
                    channel: e.name.clone(),
                    id,
                });
            }
            changed = true;
            false
        });
        if live {
            let mut active = self.entries.iter().filter(|e| e.active()).count();
            for e in &mut self.entries {
                if e.state != RelayState::Pending || (e.catch_up && active >= max_subscriptions) {
                    continue;
                }
                let id = request(&e.name, true);
                out.push(Outgoing::Subscribe {
                    channel: e.name.clone(),
                    id,
                    since: e.resume.clone(),
                });
                e.state = RelayState::Subscribing(id);
                active += 1;
                changed = true;
            }
        }
        changed
    }

    /// A new v2 connection: every wanted exact channel with a known position resumes from it, and every known
    /// position a wanted wildcard covers gets a catch-up subscription. Returns whether anything resumes.
    pub fn prepare_resume(&mut self) -> bool {
        let mut resuming = false;
        for e in &mut self.entries {
            if e.wanted() && !e.name.ends_with('*') {
                if let Some(p) = self.positions.get(&e.name) {
                    e.resume = Some(StreamPosition {
                        offset: p.offset,
                        epoch: p.epoch.clone(),
                    });
                    resuming = true;
                }
            }
        }
        let entries = &self.entries;
        let wildcards = || {
            entries
                .iter()
                .filter(|e| e.wanted() && e.name.ends_with('*'))
        };
        // In table order: the order they are asked for does not matter (each is held back until its own ack), and
        // no sort code goes into the wasm.
        let catch_ups: Vec<ChannelEntry> = self
            .positions
            .iter()
            .filter(|(name, _)| {
                wildcards().any(|w| covers(&w.name, name))
                    && !entries.iter().any(|e| &e.name == *name)
            })
            .map(|(name, p)| ChannelEntry {
                catch_up: true,
                resume: Some(StreamPosition {
                    offset: p.offset,
                    epoch: p.epoch.clone(),
                }),
                ..ChannelEntry::new(name)
            })
            .collect();
        resuming |= !catch_ups.is_empty();
        self.entries.extend(catch_ups);
        resuming
    }

    /// Whether `channel`'s publications are held back: its resume is outstanding, and the replay that follows
    /// its `ack` carries every one of them.
    pub fn resuming(&self, channel: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.resume.is_some() && e.name == channel)
    }

    /// The `ack` of a resume (`subscribe` with `since`): the resume is over, a catch-up no longer wanted.
    /// Not `recovered`: the channel starts again at the `ack`'s position (`top`: epoch, offset).
    pub fn resumed(&mut self, name: &str, recovered: bool, top: Option<(&str, u64)>, stamp: u64) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.name == name) {
            e.resume = None;
            e.catch_up = false;
            e.resync = false;
        }
        if !recovered {
            self.positions.remove(name);
            if let Some((epoch, offset)) = top {
                self.advance(name, epoch, offset, stamp);
            }
        }
    }

    /// `name`'s outstanding resume (if any) is to end in a resync whatever the relay answers.
    pub fn resync_on_ack(&mut self, name: &str) {
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.name == name && e.resume.is_some())
        {
            e.resync = true;
        }
    }

    /// Whether `name`'s resume was marked by [`Channels::resync_on_ack`].
    pub fn must_resync(&self, name: &str) -> bool {
        self.entries.iter().any(|e| e.name == name && e.resync)
    }

    /// The position `name` resumes from, while its resume is outstanding.
    pub fn resume_of(&self, name: &str) -> Option<&StreamPosition> {
        self.entries
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.resume.as_ref())
    }

    /// The `ack` of subscribe request `id`. False if that request is no longer current (a newer `subscribe`
    /// of the channel followed it).
    pub fn subscribed(&mut self, name: &str, id: u64) -> bool {
        match self.entries.iter_mut().find(|e| e.name == name) {
            Some(e) if e.state == RelayState::Subscribing(id) => {
                e.state = RelayState::Subscribed;
                e.error = None;
                true
            }
            _ => false,
        }
    }

    /// The relay refused subscribe request `id`; returns the page listeners to tell (0: nobody, or stale).
    pub fn failed(
        &mut self,
        name: &str,
        id: u64,
        code: &str,
        message: &str,
    ) -> Option<&ChannelEntry> {
        let e = self.entries.iter_mut().find(|e| e.name == name)?;
        if e.state != RelayState::Subscribing(id) {
            return None;
        }
        e.state = RelayState::Failed;
        e.error = Some((code.to_owned(), message.to_owned()));
        // A refused resume holds nothing back any more; a refused catch-up is not retried on this connection
        // (the wildcard still delivers the channel, after the gap).
        e.resume = None;
        e.catch_up = false;
        e.resync = false;
        Some(e)
    }

    /// The connection ended: nothing is subscribed any more; everything wanted is subscribed again on the next
    /// v2 connection (refused channels too: a limit may have changed).
    /// Returns whether any entry changed.
    pub fn disconnected(&mut self) -> bool {
        let before = self.entries.len();
        // Catch-ups are planned afresh from the positions on the next connection.
        self.entries
            .retain(|e| !e.catch_up || e.listeners > 0 || e.internal);
        let mut changed = self.entries.len() != before;
        for e in &mut self.entries {
            changed |= e.state != RelayState::Pending;
            e.state = RelayState::Pending;
            e.catch_up = false;
            e.resume = None;
            e.resync = false;
        }
        changed
    }

    /// One channel is no longer subscribed (the store unsubscribed to subscribe again).
    pub fn disconnected_one(&mut self, name: &str) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.name == name) {
            e.state = RelayState::Pending;
        }
    }

    /// The relay speaks seed 000: every wanted channel becomes `Unsupported`. Returns the names of those that
    /// just became so and have page listeners (to be told once).
    pub fn unsupported(&mut self) -> Vec<String> {
        let mut newly = Vec::new();
        for e in &mut self.entries {
            if e.state != RelayState::Unsupported && e.listeners > 0 {
                newly.push(e.name.clone());
            }
            e.state = RelayState::Unsupported;
        }
        newly
    }

    /// Records a publication's position. False for a publication already seen: same epoch, offset not past
    /// the last one (a channel covered by two subscriptions, e.g. `sessions/*` and `sessions/a`, is delivered
    /// twice by the relay).
    pub fn advance(&mut self, channel: &str, epoch: &str, offset: u64, stamp: u64) -> bool {
        if let Some(p) = self.positions.get_mut(channel) {
            if p.epoch == epoch && offset <= p.offset {
                return false;
            }
            if p.epoch != epoch {
                p.epoch = epoch.to_owned();
            }
            p.offset = offset;
            p.stamp = stamp;
            return true;
        }
        if self.positions.len() >= MAX_POSITIONS {
            let oldest = self
                .positions
                .iter()
                .min_by_key(|(_, p)| p.stamp)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.positions.remove(&k);
            }
        }
        self.positions.insert(
            channel.to_owned(),
            Position {
                epoch: epoch.to_owned(),
                offset,
                stamp,
            },
        );
        true
    }

    /// A subscribe `ack`'s position (the channel's top when the subscription started): kept unless a
    /// publication of the same epoch already went further.
    pub fn start_at(&mut self, channel: &str, epoch: &str, offset: u64, stamp: u64) {
        match self.positions.get(channel) {
            Some(p) if p.epoch == epoch && p.offset >= offset => {}
            _ => {
                self.positions.remove(channel);
                self.advance(channel, epoch, offset, stamp);
            }
        }
    }

    /// Forgets a channel's position (its session or agent left).
    pub fn forget(&mut self, channel: &str) -> bool {
        self.positions.remove(channel).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync(c: &mut Channels, live: bool, next: &mut u64) -> Vec<String> {
        let mut out = Vec::new();
        c.sync(live, 128, &mut out, |_, _| {
            *next += 1;
            *next
        });
        out.iter().map(Outgoing::to_json).collect()
    }

    #[test]
    fn one_relay_subscription_per_channel_whoever_wants_it() {
        let mut c = Channels::default();
        let mut id = 0;
        c.add_listener("topics/x");
        c.add_listener("topics/x");
        c.set_internal(&["global".into(), "sessions/*".into()]);
        assert_eq!(
            sync(&mut c, true, &mut id),
            [
                r#"{"type":"subscribe","channel":"global","id":1}"#,
                r#"{"type":"subscribe","channel":"sessions/*","id":2}"#,
                r#"{"type":"subscribe","channel":"topics/x","id":3}"#,
            ],
            "the store's channels first"
        );
        assert!(sync(&mut c, true, &mut id).is_empty(), "nothing twice");
        assert!(c.subscribed("topics/x", 3));
        assert!(!c.subscribed("topics/x", 3), "one ack per request");
        c.remove_listener("topics/x");
        assert!(sync(&mut c, true, &mut id).is_empty(), "one listener left");
        c.remove_listener("topics/x");
        assert_eq!(
            sync(&mut c, true, &mut id),
            [r#"{"type":"unsubscribe","channel":"topics/x","id":4}"#]
        );
        assert!(c.get("topics/x").is_none());
        // A listener on a store channel shares its subscription; the store letting go keeps it.
        c.add_listener("sessions/*");
        c.set_internal(&["global".into(), "sessions/a".into()]);
        assert_eq!(
            sync(&mut c, true, &mut id),
            [r#"{"type":"subscribe","channel":"sessions/a","id":5}"#]
        );
    }

    #[test]
    fn resubscribes_after_reconnect_and_forgets_offline_changes() {
        let mut c = Channels::default();
        let mut id = 0;
        c.add_listener("metrics");
        c.add_listener("topics/y");
        assert!(
            sync(&mut c, false, &mut id).is_empty(),
            "not connected: nothing sent"
        );
        assert_eq!(sync(&mut c, true, &mut id).len(), 2);
        c.disconnected();
        c.remove_listener("topics/y");
        assert!(
            sync(&mut c, false, &mut id).is_empty(),
            "nothing to unsubscribe from"
        );
        assert_eq!(
            sync(&mut c, true, &mut id),
            [r#"{"type":"subscribe","channel":"metrics","id":3}"#]
        );
        // A stale ack (of a request before the reconnect) does not count.
        assert!(!c.subscribed("metrics", 1));
        assert!(c.subscribed("metrics", 3));
    }

    #[test]
    fn refusals_and_seed_000_relays() {
        let mut c = Channels::default();
        let mut id = 0;
        c.add_listener("bogus");
        sync(&mut c, true, &mut id);
        let e = c
            .failed("bogus", 1, "INVALID_CHANNEL", "no such namespace")
            .unwrap();
        assert_eq!((e.state, e.listeners), (RelayState::Failed, 1));
        assert!(c.failed("bogus", 1, "X", "y").is_none(), "told once");
        assert!(
            sync(&mut c, true, &mut id).is_empty(),
            "not retried on this connection"
        );
        c.disconnected();
        assert_eq!(sync(&mut c, true, &mut id).len(), 1, "retried on the next");
        assert_eq!(c.unsupported(), ["bogus"]);
        assert!(c.unsupported().is_empty());
    }

    #[test]
    fn positions_drop_repeats_and_follow_new_epochs() {
        let mut c = Channels::default();
        assert!(c.advance("sessions/a", "e1", 1, 1));
        assert!(c.advance("sessions/a", "e1", 2, 2));
        assert!(
            !c.advance("sessions/a", "e1", 2, 3),
            "the same publication twice"
        );
        assert!(!c.advance("sessions/a", "e1", 1, 3));
        assert!(
            c.advance("sessions/a", "e2", 1, 4),
            "a new epoch starts over"
        );
        c.start_at("sessions/a", "e2", 0, 5);
        assert_eq!(c.positions()["sessions/a"].offset, 1, "never backwards");
        c.start_at("global", "g", 12, 5);
        assert!(!c.advance("global", "g", 12, 6));
        assert!(c.advance("global", "g", 13, 6));
        for i in 0..MAX_POSITIONS + 10 {
            c.advance(&format!("topics/{i}"), "e", 1, 10 + i as u64);
        }
        assert_eq!(c.positions().len(), MAX_POSITIONS, "bounded");
        assert!(c
            .positions()
            .contains_key(&format!("topics/{}", MAX_POSITIONS + 9)));
        assert!(
            !c.positions().contains_key("sessions/a"),
            "oldest forgotten first"
        );
    }

    #[test]
    fn wildcards_cover_their_namespace_only() {
        assert!(covers("sessions/*", "sessions/a"));
        assert!(covers("sessions/*", "sessions/a/b"));
        assert!(!covers("sessions/*", "sessions/"));
        assert!(!covers("sessions/*", "agents/a"));
        assert!(!covers("sessions/*", "sessionsx/a"));
        assert!(covers("global", "global"));
        assert!(!covers("global", "global/x"));
        assert!(!covers("*", "global"));
    }
}
