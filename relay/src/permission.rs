//! Permission requests (seed 004): the table of unanswered `permission_request`s, their deadlines, and the
//! ids recently resolved.
//!
//! A request is registered when its requester (the owner of a `sessions/{id}` or `agents/{id}` channel)
//! publishes it, before the publication reaches anyone, so an answer can never arrive for a request the relay
//! does not know yet. The first `permission_response` takes it out of the table ([`Permissions::take`]); that
//! is what makes the first answer win and every request single-use. A request nobody answers is taken out by
//! the timer task ([`run`]) at its deadline and denied. The hub routes the outcome to the requester and
//! publishes `permission_resolved` on its channel.
//!
//! Bounded: at most `max_pending_permissions` requests in all and `max_pending_permissions_per_channel` per
//! channel; the last [`RECENT`] resolved ids are remembered to tell "already answered" from "unknown". The
//! table's lock is a leaf: nothing else is taken while it is held.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use devrelay_protocol::v2::PresenceKind;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

/// Resolved request ids remembered (for `ALREADY_ANSWERED`), most recent first out.
pub const RECENT: usize = 4096;

/// An unanswered request.
#[derive(Debug, Clone)]
pub struct Pending {
    pub request_id: String,
    /// The requester's channel (`sessions/{id}` / `agents/{id}`), where the outcome is published.
    pub channel: Arc<str>,
    /// Who asked: the answer goes to that member's connection, whichever it is by then.
    pub requester: (PresenceKind, String),
    pub timeout: Duration,
    deadline: Instant,
    key: u64,
}

/// Why a request could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterError {
    /// The table (or this channel's share of it) is full.
    TooMany { limit: usize, per_channel: bool },
    /// The id is pending for another channel.
    Conflict,
}

/// How a registration went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    New,
    /// The same request was already pending on this channel (a publisher's resend): nothing changed.
    Again,
}

/// Why an answer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerError {
    Unknown,
    AlreadyAnswered,
}

#[derive(Debug, Default)]
struct Table {
    pending: HashMap<String, Pending>,
    per_channel: HashMap<Arc<str>, usize>,
    deadlines: BTreeMap<(Instant, u64), String>,
    next_key: u64,
    recent: VecDeque<String>,
    recent_set: HashSet<String>,
}

impl Table {
    fn remove(&mut self, request_id: &str) -> Option<Pending> {
        let p = self.pending.remove(request_id)?;
        self.deadlines.remove(&(p.deadline, p.key));
        if let Some(n) = self.per_channel.get_mut(&p.channel) {
            *n -= 1;
            if *n == 0 {
                self.per_channel.remove(&p.channel);
            }
        }
        Some(p)
    }

    fn remember(&mut self, request_id: &str) {
        if self.recent_set.insert(request_id.to_string()) {
            self.recent.push_back(request_id.to_string());
        }
        while self.recent.len() > RECENT {
            if let Some(old) = self.recent.pop_front() {
                self.recent_set.remove(&old);
            }
        }
    }
}

/// The relay's unanswered permission requests.
#[derive(Debug)]
pub struct Permissions {
    table: Mutex<Table>,
    /// Wakes the timer task when a request with an earlier deadline arrives.
    wake: Notify,
    max_total: usize,
    max_per_channel: usize,
}

impl Permissions {
    pub fn new(max_total: usize, max_per_channel: usize) -> Self {
        Permissions {
            table: Mutex::default(),
            wake: Notify::new(),
            max_total,
            max_per_channel,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a request of `requester` on `channel`, denied after `timeout` without an answer.
    pub fn register(
        &self,
        request_id: &str,
        channel: &str,
        requester: (PresenceKind, String),
        timeout: Duration,
    ) -> Result<Registered, RegisterError> {
        let mut t = self.lock();
        if let Some(p) = t.pending.get(request_id) {
            return if &*p.channel == channel {
                Ok(Registered::Again)
            } else {
                Err(RegisterError::Conflict)
            };
        }
        if t.pending.len() >= self.max_total {
            return Err(RegisterError::TooMany {
                limit: self.max_total,
                per_channel: false,
            });
        }
        let channel: Arc<str> = channel.into();
        if t.per_channel.get(&channel).copied().unwrap_or(0) >= self.max_per_channel {
            return Err(RegisterError::TooMany {
                limit: self.max_per_channel,
                per_channel: true,
            });
        }
        let deadline = Instant::now() + timeout;
        let key = t.next_key;
        t.next_key += 1;
        let earliest = t.deadlines.keys().next().is_none_or(|(d, _)| deadline < *d);
        t.deadlines.insert((deadline, key), request_id.to_string());
        *t.per_channel.entry(channel.clone()).or_default() += 1;
        // A re-used id (asked again after it was resolved) is pending again, not "already answered".
        t.recent_set.remove(request_id);
        t.pending.insert(
            request_id.to_string(),
            Pending {
                request_id: request_id.to_string(),
                channel,
                requester,
                timeout,
                deadline,
                key,
            },
        );
        drop(t);
        if earliest {
            self.wake.notify_one();
        }
        Ok(Registered::New)
    }

    /// Drops a request whose publication failed.
    pub fn unregister(&self, request_id: &str) {
        self.lock().remove(request_id);
    }

    /// Takes a pending request out to resolve it: exactly one caller gets it.
    pub fn take(&self, request_id: &str) -> Result<Pending, AnswerError> {
        let mut t = self.lock();
        match t.remove(request_id) {
            Some(p) => {
                t.remember(request_id);
                Ok(p)
            }
            None if t.recent_set.contains(request_id) => Err(AnswerError::AlreadyAnswered),
            None => Err(AnswerError::Unknown),
        }
    }

    /// Takes every request whose deadline is at or before `now`.
    pub fn expired(&self, now: Instant) -> Vec<Pending> {
        let mut t = self.lock();
        let due: Vec<String> = t
            .deadlines
            .range(..=(now, u64::MAX))
            .map(|(_, id)| id.clone())
            .collect();
        due.iter()
            .filter_map(|id| {
                let p = t.remove(id)?;
                t.remember(id);
                Some(p)
            })
            .collect()
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.lock().deadlines.keys().next().map(|(d, _)| *d)
    }

    /// Unanswered requests.
    pub fn len(&self) -> usize {
        self.lock().pending.len()
    }
}

/// The timer task: denies each request whose deadline passed, until `shutdown`.
pub async fn run(hub: Arc<Hub>, shutdown: CancellationToken) {
    loop {
        let next = hub.permissions.next_deadline();
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = hub.permissions.wake.notified() => continue,
            _ = sleep => {}
        }
        for p in hub.permissions.expired(Instant::now()) {
            let reason = format!("no answer within {} ms", p.timeout.as_millis());
            hub.resolve_permission(&p, false, None, None, Some(reason));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(id: &str) -> (PresenceKind, String) {
        (PresenceKind::Agent, id.into())
    }

    #[test]
    fn first_answer_wins_and_requests_are_single_use() {
        let p = Permissions::new(8, 8);
        let t = Duration::from_secs(60);
        assert_eq!(
            p.register("r1", "agents/a", agent("a"), t),
            Ok(Registered::New)
        );
        assert_eq!(
            p.register("r1", "agents/a", agent("a"), t),
            Ok(Registered::Again)
        );
        assert_eq!(
            p.register("r1", "agents/b", agent("b"), t),
            Err(RegisterError::Conflict)
        );
        assert_eq!(p.take("r1").unwrap().requester, agent("a"));
        assert_eq!(p.take("r1").unwrap_err(), AnswerError::AlreadyAnswered);
        assert_eq!(p.take("nope").unwrap_err(), AnswerError::Unknown);
        assert_eq!(p.len(), 0);
    }

    #[test]
    fn bounded_in_all_and_per_channel() {
        let p = Permissions::new(3, 2);
        let t = Duration::from_secs(60);
        p.register("a1", "agents/a", agent("a"), t).unwrap();
        p.register("a2", "agents/a", agent("a"), t).unwrap();
        assert_eq!(
            p.register("a3", "agents/a", agent("a"), t),
            Err(RegisterError::TooMany {
                limit: 2,
                per_channel: true
            })
        );
        p.register("b1", "agents/b", agent("b"), t).unwrap();
        assert_eq!(
            p.register("c1", "agents/c", agent("c"), t),
            Err(RegisterError::TooMany {
                limit: 3,
                per_channel: false
            })
        );
        p.unregister("a1");
        assert!(p.register("a3", "agents/a", agent("a"), t).is_ok());
    }

    #[test]
    fn deadlines_expire_in_order() {
        let p = Permissions::new(8, 8);
        p.register("late", "agents/a", agent("a"), Duration::from_secs(120))
            .unwrap();
        p.register("soon", "agents/a", agent("a"), Duration::from_secs(10))
            .unwrap();
        assert!(p.expired(Instant::now()).is_empty());
        let at = p.next_deadline().unwrap();
        let ids: Vec<String> = p.expired(at).into_iter().map(|x| x.request_id).collect();
        assert_eq!(ids, ["soon"]);
        assert_eq!(p.take("soon").unwrap_err(), AnswerError::AlreadyAnswered);
        let ids: Vec<String> = p
            .expired(Instant::now() + Duration::from_secs(121))
            .into_iter()
            .map(|x| x.request_id)
            .collect();
        assert_eq!(ids, ["late"]);
    }
}
