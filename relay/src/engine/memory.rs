//! The in-memory engine: one relay process. Channels are streams in a map; each stream has its own lock, under
//! which its publications are stamped and delivered, so per-channel order is the offset order and different
//! channels never wait for each other.
//!
//! Lock order: the stream map, then one stream (never two streams at once); delivery runs under the stream lock
//! and takes only the hub's index and the peers' queues.
//!
//! History: each stream keeps its last publications (bounded by count, bytes and age, and all streams together
//! by a total). Because live delivery also happens under the stream's lock, a subscriber that is handed the
//! history after its position and registered in the same critical section can neither miss a publication nor
//! see one twice — no buffering of live publications during the replay is needed, as it would be for a
//! networked engine.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use devrelay_protocol::session_event::names;
use devrelay_protocol::splice;
use devrelay_protocol::v2::{publication_frame, publication_frame_len, PresenceInfo};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::{
    Broker, Claim, Delivery, EngineError, Epoch, HistoryLimits, InLegacy, Joined, Owner, Position,
    Presence, Publication, PublishRequest, Since, V2Frame,
};
use crate::outbox::Frame;
use crate::presence::PresenceEntry;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while these locks are held; if something ever did, keep serving rather than cascade.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One channel's stream. Every connected session and agent owns one, most of them idle, so it is small: the
/// epoch is a number (see [`Epoch`]) and the history is allocated with its first publication and given back
/// when it empties.
#[derive(Debug)]
struct Stream {
    id: u64,
    epoch: Epoch,
    offset: u64,
    owner: Option<Owner>,
    interested: bool,
    /// Removed from the map: whoever still holds it must look the channel up again.
    dead: bool,
    /// The last publications (`None`: none).
    history: Option<Box<History>>,
    /// The highest publisher `seq` taken (0: none): resends at or below it are refused as duplicates. Kept as
    /// long as the stream (its owner, watchers or history keep it).
    last_seq: u64,
}

/// A stream's retained publications, oldest first; offsets are consecutive. Never empty while it exists.
#[derive(Debug, Default)]
struct History {
    publications: VecDeque<Arc<Publication>>,
    bytes: usize,
}

impl Stream {
    fn idle(&self) -> bool {
        self.owner.is_none() && !self.interested && self.history.is_none()
    }

    fn history(&self) -> impl Iterator<Item = &Arc<Publication>> {
        self.history.iter().flat_map(|h| h.publications.iter())
    }

    /// Drops the oldest publication; returns its size.
    fn drop_oldest(&mut self) -> Option<usize> {
        let h = self.history.as_mut()?;
        let p = h.publications.pop_front()?;
        let size = footprint(&p);
        h.bytes -= size;
        if h.publications.is_empty() {
            self.history = None;
        }
        Some(size)
    }
}

/// What a publication costs history.
fn footprint(p: &Publication) -> usize {
    p.frame_len() + p.legacy.as_ref().map_or(0, |l| l.len())
}

/// One channel's presence: its clients, each found by its channel name — the one in its info, which is shared
/// with the hub's registry (it holds the same info for the same member). A set keyed through the info rather
/// than a map from the name: the table's slots are per entry and, with the table's spare capacity, paid up to
/// twice over for every idle connection (16 bytes a slot, not 32).
type Members = HashSet<Present>;

/// A present client and its arrival number (the order `presence` lists them in).
#[derive(Debug)]
struct Present {
    arrival: u64,
    info: Arc<PresenceEntry>,
}

impl Present {
    fn name(&self) -> &str {
        self.info.channel()
    }
}

impl PartialEq for Present {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Present {}

impl std::hash::Hash for Present {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As the `str` it is looked up by (`Borrow<str>`).
        self.name().hash(state);
    }
}

impl std::borrow::Borrow<str> for Present {
    fn borrow(&self) -> &str {
        self.name()
    }
}

/// The default engine: streams and presence in this process's memory.
#[derive(Debug)]
pub struct MemoryEngine {
    streams: Mutex<HashMap<Arc<str>, Arc<Mutex<Stream>>>>,
    next_stream: AtomicU64,
    /// Channels beyond this many are refused (`TooManyChannels`), except owned ones (bounded by connections).
    max_channels: usize,
    /// Random per process: epochs differ across restarts.
    epoch_keys: std::hash::RandomState,
    presence: Mutex<HashMap<String, Members>>,
    presence_seq: AtomicU64,
    history: HistoryLimits,
    /// Bytes of history over all streams.
    history_total: AtomicUsize,
}

impl MemoryEngine {
    pub fn new(max_channels: usize, history: HistoryLimits) -> Self {
        MemoryEngine {
            history,
            history_total: AtomicUsize::new(0),
            streams: Mutex::default(),
            next_stream: AtomicU64::new(1),
            max_channels,
            epoch_keys: std::hash::RandomState::new(),
            presence: Mutex::default(),
            presence_seq: AtomicU64::new(0),
        }
    }

    /// The stream of `channel` and its name as the map holds it (shared by its publications rather than
    /// copied into each), created if missing (subject to `max_channels` unless `always`).
    fn stream(
        &self,
        channel: &str,
        always: bool,
    ) -> Result<(Arc<str>, Arc<Mutex<Stream>>), EngineError> {
        let mut map = lock(&self.streams);
        if let Some((name, s)) = map.get_key_value(channel) {
            return Ok((name.clone(), s.clone()));
        }
        if !always && map.len() >= self.max_channels {
            return Err(EngineError::TooManyChannels(self.max_channels));
        }
        let stream = self.new_stream();
        let name: Arc<str> = channel.into();
        map.insert(name.clone(), stream.clone());
        Ok((name, stream))
    }

    /// A new, empty stream: its epoch is chosen here, once, for its life — random per process (the keys) and
    /// per stream (the id).
    fn new_stream(&self) -> Arc<Mutex<Stream>> {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        Arc::new(Mutex::new(Stream {
            id,
            epoch: Epoch(self.epoch_keys.hash_one(id)),
            offset: 0,
            owner: None,
            interested: false,
            dead: false,
            history: None,
            last_seq: 0,
        }))
    }

    /// Creates the stream of `name` under that very name (the caller's copy, shared: a member's channel) if
    /// there is none.
    fn create_named(&self, name: &Arc<str>) {
        let mut map = lock(&self.streams);
        if !map.contains_key(&**name) {
            let stream = self.new_stream();
            map.insert(name.clone(), stream);
        }
    }

    /// Locks the live stream of `channel` (retrying if it was forgotten meanwhile) and runs `f` on it.
    fn with_stream<T>(
        &self,
        channel: &str,
        always: bool,
        mut f: impl FnMut(&mut Stream) -> T,
    ) -> Result<T, EngineError> {
        self.with_named_stream(channel, always, |s, _| f(s))
    }

    /// [`MemoryEngine::with_stream`], also handing `f` the channel's shared name.
    fn with_named_stream<T>(
        &self,
        channel: &str,
        always: bool,
        mut f: impl FnMut(&mut Stream, &Arc<str>) -> T,
    ) -> Result<T, EngineError> {
        loop {
            let (name, stream) = self.stream(channel, always)?;
            let mut s = lock(&stream);
            if s.dead {
                continue;
            }
            let out = f(&mut s, &name);
            let idle = s.idle();
            drop(s);
            if idle {
                self.forget_if_idle(channel);
            }
            return Ok(out);
        }
    }

    /// Adds a publication to its stream's history and enforces the limits (the total by giving up this
    /// stream's own oldest: the channel that publishes pays).
    fn remember(&self, s: &mut Stream, p: &Arc<Publication>) {
        let limits = &self.history;
        if limits.messages == 0 {
            return;
        }
        let size = footprint(p);
        let h = s.history.get_or_insert_with(Box::default);
        h.publications.push_back(p.clone());
        h.bytes += size;
        let mut total = self.history_total.fetch_add(size, Ordering::Relaxed) + size;
        while s
            .history
            .as_ref()
            .is_some_and(|h| h.publications.len() > limits.messages || h.bytes > limits.bytes)
            || total > limits.total_bytes
        {
            let Some(freed) = s.drop_oldest() else { break };
            total = self.history_total.fetch_sub(freed, Ordering::Relaxed) - freed;
        }
    }

    /// Drops publications older than the age limit.
    fn expire(&self, s: &mut Stream, now: Instant) {
        while s
            .history()
            .next()
            .is_some_and(|p| now.saturating_duration_since(p.at) > self.history.max_age)
        {
            if let Some(freed) = s.drop_oldest() {
                self.history_total.fetch_sub(freed, Ordering::Relaxed);
            }
        }
    }

    fn forget_if_idle(&self, channel: &str) {
        let mut map = lock(&self.streams);
        let Some(stream) = map.get(channel).cloned() else {
            return;
        };
        let mut s = lock(&stream);
        if s.idle() {
            s.dead = true;
            map.remove(channel);
        }
    }
}

/// Whether a publication's v2 frame can wait: its `data` is where the request says in its seed-000 frame
/// (checked: a wrong range or prefix must not change what v2 subscribers get) and its event a seed-000 one.
/// Returns the event as a `'static` name and where the data is.
fn deferrable(
    event: &str,
    data: Option<&str>,
    legacy: Option<&Frame>,
    at: Option<&InLegacy>,
) -> Option<(&'static str, InLegacy)> {
    let event = [names::STREAM_EVENT, names::STATE_SNAPSHOT]
        .into_iter()
        .find(|n| *n == event)?;
    let at = at?;
    let rest = splice::trim(data?).strip_prefix(at.prefix)?;
    // Bytes against bytes: equal to the rest of `data`, they are its text (no UTF-8 check per publication).
    let inside = legacy?.payload().get(at.range.clone())?;
    (inside == rest.as_bytes()).then(|| (event, at.clone()))
}

/// The publications after `offset` of epoch `epoch`, if the history holds every one of them.
fn recover(s: &Stream, offset: u64, epoch: &str) -> Result<Vec<Arc<Publication>>, String> {
    if epoch != s.epoch.text().as_str() {
        return Err(format!(
            "epoch changed ({epoch} → {}): the channel was recreated, e.g. by a relay restart",
            s.epoch
        ));
    }
    if offset > s.offset {
        return Err(format!(
            "offset {offset} is ahead of the channel's {}",
            s.offset
        ));
    }
    if offset == s.offset {
        return Ok(Vec::new());
    }
    // History holds offsets first..=s.offset (consecutive); everything after `offset` must be in it.
    let first = s.history().next().map_or(s.offset + 1, |p| p.offset);
    if offset + 1 < first {
        return Err(format!(
            "too far behind: {} publications missed, history starts at offset {first}",
            s.offset - offset
        ));
    }
    let skip = (offset + 1 - first) as usize;
    Ok(s.history().skip(skip).cloned().collect())
}

impl Broker for MemoryEngine {
    fn publish(
        &self,
        request: PublishRequest<'_>,
        delivery: &dyn Delivery,
    ) -> Result<Arc<Publication>, EngineError> {
        let PublishRequest {
            channel,
            event,
            data,
            kind,
            legacy,
            data_in_legacy,
            owner,
            seq,
        } = request;
        let mut legacy = Some(legacy);
        // Owned channels exist while their owner is connected; others are created on first use.
        self.with_named_stream(channel, false, |s, name| {
            if owner.is_some() && s.owner != owner {
                return Err(EngineError::NotOwner(channel.into()));
            }
            if let Some(seq) = seq {
                if seq <= s.last_seq {
                    return Err(EngineError::Duplicate {
                        seq,
                        last: s.last_seq,
                    });
                }
                s.last_seq = seq;
            }
            s.offset += 1;
            let legacy = legacy.take().flatten();
            // The read's clock for a message from a connection (`clock.rs`).
            let now = crate::clock::millis();
            let epoch = s.epoch.text();
            let epoch = epoch.as_str();
            let frame = match deferrable(event, data, legacy.as_ref(), data_in_legacy.as_ref()) {
                Some((event, range)) => {
                    let len = publication_frame_len(channel, event, data, s.offset, epoch, now);
                    V2Frame::deferred(event, range, now, len)
                }
                None => V2Frame::ready(Utf8Bytes::from(publication_frame(
                    channel, event, data, s.offset, epoch, now,
                ))),
            };
            let publication = Arc::new(Publication {
                channel: name.clone(),
                stream: s.id,
                offset: s.offset,
                epoch: s.epoch,
                kind,
                frame,
                legacy,
                at: crate::clock::instant(),
            });
            delivery.deliver(&publication);
            self.remember(s, &publication);
            Ok(publication)
        })?
    }

    fn subscribe(
        &self,
        channel: &str,
        since: Since<'_>,
        f: &mut dyn FnMut(Joined<'_>),
    ) -> Result<(), EngineError> {
        self.with_stream(channel, false, |s| {
            s.interested = true;
            self.expire(s, Instant::now());
            let position = Position {
                offset: s.offset,
                epoch: s.epoch,
            };
            let (replay, recovery) = match since {
                Since::Live => (Vec::new(), None),
                Since::Retained => (s.history().cloned().collect(), None),
                Since::Position { offset, epoch } => match recover(s, offset, epoch) {
                    Ok(replay) => (replay, Some(Ok(()))),
                    Err(why) => (Vec::new(), Some(Err(why))),
                },
            };
            f(Joined {
                position: &position,
                replay,
                recovery,
            })
        })
    }

    fn maintain(&self) {
        let streams: Vec<(Arc<str>, Arc<Mutex<Stream>>)> = lock(&self.streams)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let now = Instant::now();
        for (name, stream) in streams {
            let idle = {
                let mut s = lock(&stream);
                self.expire(&mut s, now);
                s.idle()
            };
            if idle {
                self.forget_if_idle(&name);
            }
        }
    }

    fn history_bytes(&self) -> usize {
        self.history_total.load(Ordering::Relaxed)
    }

    fn unsubscribe(&self, channel: &str, f: &mut dyn FnMut() -> bool) {
        // `always`: removing a subscriber never fails for want of room; a missing stream is recreated and, if
        // idle, forgotten again at once.
        let _ = self.with_stream(channel, true, |s| s.interested = f());
    }

    fn claim(&self, channel: &Arc<str>, owner: Owner) -> Result<Claim, EngineError> {
        // Owned channels are not counted against `max_channels` (connections bound them). Should the new stream
        // be forgotten before it is claimed (it is idle until then), `with_stream` makes another, under a copy
        // of the name: nothing but the sharing is lost.
        self.create_named(channel);
        self.with_stream(channel, true, |s| Claim {
            previous: s.owner.replace(owner),
            last_seq: s.last_seq,
        })
    }

    fn release(&self, channel: &str, owner: Owner) -> bool {
        if !lock(&self.streams).contains_key(channel) {
            return false;
        }
        self.with_stream(channel, true, |s| {
            if s.owner == Some(owner) {
                s.owner = None;
                true
            } else {
                false
            }
        })
        .unwrap_or(false)
    }

    fn channel_count(&self) -> usize {
        lock(&self.streams).len()
    }
}

impl Presence for MemoryEngine {
    fn add_presence(&self, channel: &str, info: Arc<PresenceEntry>) {
        let arrival = self.presence_seq.fetch_add(1, Ordering::Relaxed);
        let mut p = lock(&self.presence);
        match p.get_mut(channel) {
            Some(members) => members,
            None => p.entry(channel.into()).or_default(),
        }
        .replace(Present { arrival, info });
    }

    fn remove_presence(&self, channel: &str, client: &str) {
        let mut p = lock(&self.presence);
        if let Some(members) = p.get_mut(channel) {
            members.remove(client);
            if members.is_empty() {
                p.remove(channel);
            }
        }
    }

    fn update_presence(&self, channel: &str, info: Arc<PresenceEntry>) {
        let mut p = lock(&self.presence);
        let Some(members) = p.get_mut(channel) else {
            return;
        };
        if let Some(arrival) = members.get(&**info.channel()).map(|m| m.arrival) {
            members.replace(Present { arrival, info });
        }
    }

    fn presence(&self, channel: &str) -> Vec<PresenceInfo> {
        let p = lock(&self.presence);
        let Some(members) = p.get(channel) else {
            return Vec::new();
        };
        let mut list: Vec<&Present> = members.iter().collect();
        list.sort_by_key(|m| m.arrival);
        list.into_iter().map(|m| m.info.info()).collect()
    }

    fn presence_count(&self, channel: &str) -> usize {
        lock(&self.presence).get(channel).map_or(0, HashSet::len)
    }

    fn presence_entries(&self) -> usize {
        lock(&self.presence).values().map(HashSet::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use super::*;
    use crate::engine::Kind;
    use devrelay_protocol::Millis;
    use std::time::Duration;

    const LIMITS: HistoryLimits = HistoryLimits {
        messages: 4,
        bytes: 1 << 20,
        max_age: Duration::from_secs(3600),
        total_bytes: 1 << 20,
    };
    const NO_HISTORY: HistoryLimits = HistoryLimits {
        messages: 0,
        ..LIMITS
    };

    #[derive(Default)]
    struct Collect(StdMutex<Vec<(String, u64)>>);
    impl Delivery for Collect {
        fn deliver(&self, p: &Arc<Publication>) {
            self.0
                .lock()
                .unwrap()
                .push((p.channel.to_string(), p.offset));
        }
    }

    fn req<'a>(channel: &'a str, owner: Option<Owner>) -> PublishRequest<'a> {
        PublishRequest {
            channel,
            event: "e",
            data: Some("1"),
            kind: Kind::Event,
            legacy: None,
            data_in_legacy: None,
            owner,
            seq: None,
        }
    }

    #[test]
    fn offsets_count_per_channel_and_epochs_differ() {
        let e = MemoryEngine::new(16, LIMITS);
        let d = Collect::default();
        e.subscribe("topics/a", Since::Live, &mut |_| {}).unwrap();
        e.subscribe("topics/b", Since::Live, &mut |_| {}).unwrap();
        for ch in ["topics/a", "topics/a", "topics/b", "topics/a"] {
            e.publish(req(ch, None), &d).unwrap();
        }
        let got = d.0.lock().unwrap().clone();
        let want: Vec<(String, u64)> = [
            ("topics/a", 1),
            ("topics/a", 2),
            ("topics/b", 1),
            ("topics/a", 3),
        ]
        .iter()
        .map(|(c, o)| (c.to_string(), *o))
        .collect();
        assert_eq!(got, want);
        let mut epochs = Vec::new();
        for ch in ["topics/a", "topics/b"] {
            e.subscribe(ch, Since::Live, &mut |j| epochs.push(j.position.epoch))
                .unwrap();
        }
        assert_ne!(epochs[0], epochs[1]);
        let p = e.publish(req("topics/a", None), &d).unwrap();
        assert!(
            p.frame().contains(r#""offset":4,"#),
            "{}",
            p.frame().as_str()
        );
    }

    /// A publication on `sessions/s` of `event` with `data` `raw` whose v2 frame was deferred: not built at the
    /// publish, then (built now) the bytes and length the eager path gives.
    fn deferred_is_eager(deferred: &Publication, event: &str, raw: &str) {
        assert!(
            deferred.frame.built.get().is_none(),
            "not built at the publish"
        );
        let (len, frame) = (deferred.frame_len(), deferred.frame().clone());
        let eager = publication_frame(
            "sessions/s",
            event,
            Some(raw),
            deferred.offset,
            deferred.epoch.text().as_str(),
            deferred.frame.deferred.as_ref().unwrap().2,
        );
        assert_eq!((frame.as_str(), len), (eager.as_str(), eager.len()));
    }

    #[test]
    fn a_seed_000_event_gets_the_same_v2_frame_built_later_and_a_wrong_range_builds_it_now() {
        let e = MemoryEngine::new(16, LIMITS);
        let d = Collect::default();
        let raw = r#" {"type":"stream_event","sessionId":"s","seq":1} "#;
        // As the relay builds it: with its WebSocket header in front, the range counted in the payload.
        let (legacy, range) = crate::publish::stream_event_update_frame("s", raw);
        assert_eq!(
            legacy.as_str(),
            devrelay_protocol::splice::stream_event_update("s", raw)
        );
        let publish = |range: std::ops::Range<usize>| {
            e.publish(
                PublishRequest {
                    event: names::STREAM_EVENT,
                    data: Some(raw),
                    legacy: Some(legacy.clone()),
                    data_in_legacy: Some(InLegacy { prefix: "", range }),
                    ..req("sessions/s", None)
                },
                &d,
            )
            .unwrap()
        };
        let deferred = publish(range.clone());
        deferred_is_eager(&deferred, names::STREAM_EVENT, raw);
        assert!(
            std::ptr::eq(deferred.frame(), deferred.frame()),
            "built once"
        );
        // A range that is not where the data is: the frame is built from `data` at once.
        let wrong = publish(range.start + 1..range.end);
        assert!(wrong.frame.built.get().is_some());
        assert!(wrong
            .frame()
            .contains(r#""data":{"type":"stream_event","sessionId":"s","seq":1},"#));
    }

    #[test]
    fn a_seed_000_snapshot_gets_the_same_v2_frame_built_later_and_a_wrong_prefix_builds_it_now() {
        let e = MemoryEngine::new(16, LIMITS);
        let d = Collect::default();
        let raw = " {\"type\":\"state_snapshot\",\"sessionId\":\"s\", \"state\":{\"k\":[1,2]}}\n";
        // As the relay builds it (with its WebSocket header in front): the members copied, their place known.
        let (legacy, copied) = crate::publish::state_update_frame_of_checked("s", raw).unwrap();
        let range = copied.expect("an SDK-shaped frame is copied");
        let publish = |prefix: &'static str| {
            e.publish(
                PublishRequest {
                    event: names::STATE_SNAPSHOT,
                    data: Some(raw),
                    kind: Kind::Snapshot,
                    legacy: Some(legacy.clone()),
                    data_in_legacy: Some(InLegacy {
                        prefix,
                        range: range.clone(),
                    }),
                    ..req("sessions/s", None)
                },
                &d,
            )
            .unwrap()
        };
        let deferred = publish(splice::STATE_SNAPSHOT_PREFIX);
        deferred_is_eager(&deferred, names::STATE_SNAPSHOT, raw);
        // A prefix that is not what the frame left out: the frame is built from `data` at once.
        let wrong = publish(r#"{"type":"state_snapshot", "#);
        assert!(wrong.frame.built.get().is_some());
        assert!(wrong
            .frame()
            .contains(&format!(r#""data":{},"#, raw.trim())));
    }

    #[test]
    fn an_epoch_is_sixteen_hex_digits_and_the_same_for_the_streams_life() {
        for n in [0, 1, 0xab, 0x0123_4567_89ab_cdef, u64::MAX] {
            assert_eq!(Epoch(n).text().as_str(), format!("{n:016x}"));
            assert_eq!(Epoch(n).to_string(), format!("{n:016x}"));
            assert_eq!(
                serde_json::to_string(&Epoch(n)).unwrap(),
                format!("\"{n:016x}\"")
            );
        }
        let e = MemoryEngine::new(16, LIMITS);
        let d = Collect::default();
        let channel: Arc<str> = "sessions/idle".into();
        e.claim(&channel, 1).unwrap();
        // Told before the first publication (an idle session's watcher), carried by every publication, and
        // kept across a new owner while the stream lives.
        let mut told = None;
        e.subscribe("sessions/idle", Since::Live, &mut |j| {
            told = Some(*j.position)
        })
        .unwrap();
        let told = told.unwrap();
        assert_eq!(told.offset, 0);
        let first = e.publish(req("sessions/idle", Some(1)), &d).unwrap();
        assert_eq!(first.epoch, told.epoch);
        assert!(
            first
                .frame()
                .contains(&format!(r#""epoch":"{}""#, told.epoch)),
            "{}",
            first.frame().as_str()
        );
        assert!(e.release("sessions/idle", 1));
        e.claim(&channel, 2).unwrap();
        assert_eq!(
            e.publish(req("sessions/idle", Some(2)), &d).unwrap().epoch,
            told.epoch
        );
        let mut again = None;
        e.subscribe(
            "sessions/idle",
            Since::Position {
                offset: 0,
                epoch: &told.epoch.to_string(),
            },
            &mut |j| again = Some((*j.position, j.replay.len(), j.recovery.clone())),
        )
        .unwrap();
        assert_eq!(
            again.unwrap(),
            (
                Position {
                    offset: 2,
                    epoch: told.epoch
                },
                2,
                Some(Ok(()))
            )
        );
        // Another channel has another epoch.
        let other = e.publish(req("topics/other", None), &d).unwrap();
        assert_ne!(other.epoch, told.epoch);
    }

    #[test]
    fn a_stream_gives_its_history_back_when_it_empties() {
        let e = MemoryEngine::new(
            16,
            HistoryLimits {
                max_age: Duration::ZERO,
                ..LIMITS
            },
        );
        let d = Collect::default();
        let channel: Arc<str> = "sessions/h".into();
        e.claim(&channel, 1).unwrap();
        let (_, stream) = e.stream("sessions/h", true).unwrap();
        assert!(
            lock(&stream).history.is_none(),
            "nothing published: no history"
        );
        e.publish(req("sessions/h", Some(1)), &d).unwrap();
        assert_eq!(
            lock(&stream).history.as_ref().map(|h| h.publications.len()),
            Some(1)
        );
        std::thread::sleep(Duration::from_millis(2));
        e.maintain();
        assert!(lock(&stream).history.is_none(), "expired: given back");
        assert_eq!(
            (e.history_bytes(), e.channel_count()),
            (0, 1),
            "the owner keeps the stream"
        );
    }

    #[test]
    fn an_idle_stream_stays_small() {
        // Every connected session and agent has one (BENCHMARKS.md, "Idle connection memory").
        let size = std::mem::size_of::<Stream>();
        eprintln!("Stream: {size} bytes");
        assert!(size <= 64, "{size}");
    }

    #[test]
    fn only_the_owner_publishes_and_a_claim_takes_over() {
        let e = MemoryEngine::new(16, NO_HISTORY);
        let d = Collect::default();
        assert_eq!(e.claim(&"sessions/s".into(), 1).unwrap().previous, None);
        assert!(e.publish(req("sessions/s", Some(1)), &d).is_ok());
        assert_eq!(
            e.publish(req("sessions/s", Some(2)), &d).unwrap_err(),
            EngineError::NotOwner("sessions/s".into())
        );
        assert_eq!(e.claim(&"sessions/s".into(), 2).unwrap().previous, Some(1));
        assert!(e.publish(req("sessions/s", Some(1)), &d).is_err());
        assert!(
            !e.release("sessions/s", 1),
            "a replaced owner releases nothing"
        );
        assert!(e.release("sessions/s", 2));
        assert_eq!(
            e.channel_count(),
            0,
            "an unowned, unwatched channel is forgotten"
        );
    }

    #[test]
    fn idle_channels_are_forgotten_and_come_back_with_a_new_epoch() {
        let e = MemoryEngine::new(2, NO_HISTORY);
        let d = Collect::default();
        e.subscribe("topics/a", Since::Live, &mut |j| {
            assert_eq!(j.position.offset, 0)
        })
        .unwrap();
        let first = e.publish(req("topics/a", None), &d).unwrap();
        e.unsubscribe("topics/a", &mut || false);
        assert_eq!(e.channel_count(), 0);
        let again = e.publish(req("topics/a", None), &d).unwrap();
        assert_eq!(again.offset, 1);
        assert_ne!(again.epoch, first.epoch);
        // A publish nobody watches leaves nothing behind, so it cannot fill the table.
        for i in 0..10 {
            e.publish(req(&format!("topics/n{i}"), None), &d).unwrap();
        }
        assert_eq!(e.channel_count(), 0);
        e.subscribe("topics/x", Since::Live, &mut |_| {}).unwrap();
        e.subscribe("topics/y", Since::Live, &mut |_| {}).unwrap();
        assert_eq!(
            e.publish(req("topics/z", None), &d).unwrap_err(),
            EngineError::TooManyChannels(2)
        );
        assert!(
            e.claim(&"sessions/s".into(), 9).is_ok(),
            "owned channels are bounded by connections"
        );
    }

    #[test]
    fn resends_by_seq_are_refused_across_owners_while_history_keeps_the_channel() {
        let e = MemoryEngine::new(16, LIMITS);
        let d = Collect::default();
        let seq = |owner, seq| PublishRequest {
            seq: Some(seq),
            ..req("agents/a", Some(owner))
        };
        assert_eq!(e.claim(&"agents/a".into(), 1).unwrap().last_seq, 0);
        assert_eq!(e.publish(seq(1, 1), &d).unwrap().offset, 1);
        assert_eq!(e.publish(seq(1, 2), &d).unwrap().offset, 2);
        assert_eq!(
            e.publish(seq(1, 2), &d).unwrap_err(),
            EngineError::Duplicate { seq: 2, last: 2 }
        );
        // Gaps are fine (a publisher may have dropped from a full buffer); going back is not.
        assert_eq!(e.publish(seq(1, 5), &d).unwrap().offset, 3);
        assert!(e.publish(seq(1, 4), &d).is_err());
        // The agent reconnects (a new connection): its channel's history kept the stream, so it learns where
        // the relay stands, its resends are dropped, and the stream continues (same epoch, next offset).
        let epoch = e.publish(req("agents/a", Some(1)), &d).unwrap().epoch;
        assert!(e.release("agents/a", 1));
        assert_eq!(
            e.channel_count(),
            1,
            "kept by its history although nobody watches"
        );
        assert_eq!(e.claim(&"agents/a".into(), 2).unwrap().last_seq, 5);
        assert!(matches!(
            e.publish(seq(2, 5), &d),
            Err(EngineError::Duplicate { .. })
        ));
        let next = e.publish(seq(2, 6), &d).unwrap();
        assert_eq!((next.offset, &next.epoch), (5, &epoch));
    }

    #[test]
    fn without_history_a_released_channel_and_its_last_seq_are_forgotten() {
        let e = MemoryEngine::new(
            16,
            HistoryLimits {
                messages: 0,
                ..LIMITS
            },
        );
        let d = Collect::default();
        e.claim(&"agents/b".into(), 1).unwrap();
        e.publish(
            PublishRequest {
                seq: Some(3),
                ..req("agents/b", Some(1))
            },
            &d,
        )
        .unwrap();
        assert!(e.release("agents/b", 1));
        assert_eq!(e.channel_count(), 0);
        assert_eq!(e.claim(&"agents/b".into(), 2).unwrap().last_seq, 0);
    }

    #[test]
    fn presence_lists_in_arrival_order_and_updates_in_place() {
        let e = MemoryEngine::new(4, LIMITS);
        let info = |id: &str| PresenceInfo {
            kind: devrelay_protocol::v2::PresenceKind::Session,
            id: id.into(),
            channel: format!("sessions/{id}"),
            name: None,
            sdk_version: None,
            project_id: None,
            metadata: None,
            capabilities: None,
            protocol: "v2".into(),
            connected_at: Millis(1.0),
            origin: None,
            stale_since: None,
        };
        for id in ["b", "a", "c"] {
            let entry = Arc::new(PresenceEntry::new(info(id)));
            e.add_presence("global", entry);
        }
        // A new info (a stale mark) replaces the client's in its place, found by the name in it.
        let mut stale = info("a");
        stale.stale_since = Some(Millis(2.0));
        e.update_presence("global", Arc::new(PresenceEntry::new(stale)));
        let listed = e.presence("global");
        let ids: Vec<&str> = listed.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["b", "a", "c"]);
        assert_eq!(listed[1].stale_since, Some(Millis(2.0)));
        // One that is not present is not added by an update.
        e.update_presence("global", Arc::new(PresenceEntry::new(info("z"))));
        assert_eq!(e.presence_count("global"), 3);
        e.remove_presence("global", "sessions/a");
        let ids: Vec<String> = e.presence("global").into_iter().map(|p| p.id).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(e.presence_count("global"), 2);
        // A client added again is listed as a new arrival.
        e.add_presence("global", Arc::new(PresenceEntry::new(info("b"))));
        let ids: Vec<String> = e.presence("global").into_iter().map(|p| p.id).collect();
        assert_eq!(ids, ["c", "b"]);
        assert_eq!(e.presence_count("global"), 2);
    }

    fn offsets(replay: &[Arc<Publication>]) -> Vec<u64> {
        replay.iter().map(|p| p.offset).collect()
    }

    #[test]
    fn recovery_replays_exactly_what_was_missed_or_says_why_not() {
        let e = MemoryEngine::new(16, LIMITS);
        let d = Collect::default();
        let mut epoch = None;
        e.subscribe("topics/r", Since::Live, &mut |j| {
            epoch = Some(j.position.epoch.to_string())
        })
        .unwrap();
        let epoch = epoch.unwrap();
        for _ in 0..6 {
            e.publish(req("topics/r", None), &d).unwrap();
        }
        let mut got = None;
        let mut join = |since| {
            e.subscribe("topics/r", since, &mut |j| {
                got = Some((j.position.offset, offsets(&j.replay), j.recovery.clone()))
            })
            .unwrap();
            got.take().unwrap()
        };
        // History keeps the last 4 (3..=6).
        assert_eq!(
            join(Since::Position {
                offset: 6,
                epoch: &epoch
            }),
            (6, vec![], Some(Ok(())))
        );
        assert_eq!(
            join(Since::Position {
                offset: 2,
                epoch: &epoch
            }),
            (6, vec![3, 4, 5, 6], Some(Ok(())))
        );
        assert_eq!(
            join(Since::Position {
                offset: 4,
                epoch: &epoch
            }),
            (6, vec![5, 6], Some(Ok(())))
        );
        let (_, replay, recovery) = join(Since::Position {
            offset: 1,
            epoch: &epoch,
        });
        assert!(replay.is_empty(), "never a partial replay");
        assert!(recovery.unwrap().unwrap_err().contains("too far behind"));
        let (_, _, recovery) = join(Since::Position {
            offset: 4,
            epoch: "other",
        });
        assert!(recovery.unwrap().unwrap_err().contains("epoch changed"));
        let (_, _, recovery) = join(Since::Position {
            offset: 9,
            epoch: &epoch,
        });
        assert!(recovery.unwrap().unwrap_err().contains("ahead"));
        assert_eq!(join(Since::Retained), (6, vec![3, 4, 5, 6], None));
    }

    #[test]
    fn history_is_bounded_per_channel_in_bytes_and_in_total_and_by_age() {
        let frame_len = {
            let e = MemoryEngine::new(16, LIMITS);
            e.publish(req("topics/x", None), &Collect::default())
                .unwrap()
                .frame_len()
        };
        let limits = HistoryLimits {
            messages: 100,
            // Room for three frames (offsets of two digits are one byte longer).
            bytes: frame_len * 3 + 8,
            max_age: Duration::from_secs(3600),
            total_bytes: frame_len * 5 + 8,
        };
        let e = MemoryEngine::new(16, limits);
        let d = Collect::default();
        for _ in 0..10 {
            e.publish(req("topics/a", None), &d).unwrap();
        }
        let held = e.history_bytes();
        assert!(
            (frame_len * 3..=frame_len * 3 + 8).contains(&held),
            "per-channel byte cap: {held}"
        );
        for _ in 0..10 {
            e.publish(req("topics/b", None), &d).unwrap();
        }
        assert!(
            e.history_bytes() <= frame_len * 5 + 8,
            "total cap: {}",
            e.history_bytes()
        );
        // Channels with history outlive their subscribers: a late subscriber can still recover.
        assert_eq!(e.channel_count(), 2);
        let aged = MemoryEngine::new(
            16,
            HistoryLimits {
                max_age: Duration::ZERO,
                ..limits
            },
        );
        aged.publish(req("topics/old", None), &d).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        aged.maintain();
        assert_eq!(
            (aged.history_bytes(), aged.channel_count()),
            (0, 0),
            "expired, then forgotten"
        );
    }
}
