//! A present session or agent as the relay keeps it: the compact form of the wire's `PresenceInfo`, one per
//! member, shared (`Arc`) by the hub's registry and the engine's presence on `global`.
//!
//! Every idle SDK connection holds one, so its layout is about bytes. The member's channel name
//! (`sessions/{id}`, `agents/{id}`) is one `Arc<str>` that the registry key, the engine's stream and presence
//! keys, the subscription index and the connection's membership all share (the id is its tail). The SDK
//! version and the project, which a seed-000 session sends, share one allocation. The fields a seed-000 session
//! never has (name, metadata, capabilities, a foreign origin) sit behind one optional box. The wire form is
//! built from it when it is sent ([`PresenceEntry::info`], [`PresenceEntry::client_info`]), so dashboards see
//! exactly what the full `PresenceInfo` would serialize.

use std::sync::Arc;

use devrelay_protocol::v2::{Capabilities, PresenceInfo, PresenceKind};
use devrelay_protocol::{ClientInfo, Millis};
use serde_json::{Map, Value};

/// A present member (see the module's doc).
#[derive(Debug, Clone)]
pub struct PresenceEntry {
    /// `sessions/{id}` or `agents/{id}`.
    channel: Arc<str>,
    connected_at: Millis,
    /// The SDK version (`labels[..sdk_end]`), then the project id (`labels[sdk_end..]`); an empty box
    /// allocates nothing.
    labels: Box<str>,
    sdk_end: u32,
    has_sdk: bool,
    has_project: bool,
    kind: PresenceKind,
    /// `protocol: "v1"` (seed 000) rather than `"v2"`.
    v1: bool,
    rare: Option<Box<Rare>>,
}

/// What a seed-000 session never has, or has only for a while.
#[derive(Debug, Clone, Default)]
struct Rare {
    /// Set while it does not answer pings.
    stale_since: Option<Millis>,
    name: Option<String>,
    metadata: Option<Map<String, Value>>,
    capabilities: Option<Capabilities>,
    origin: Option<String>,
    /// A protocol name other than `"v1"` / `"v2"` (the relay writes none; kept rather than lost).
    protocol: Option<String>,
}

impl Rare {
    fn is_empty(&self) -> bool {
        self.stale_since.is_none()
            && self.name.is_none()
            && self.metadata.is_none()
            && self.capabilities.is_none()
            && self.origin.is_none()
            && self.protocol.is_none()
    }
}

/// `sessions/` or `agents/`: the prefix of a member's channel.
fn prefix(kind: PresenceKind) -> &'static str {
    match kind {
        PresenceKind::Session => "sessions/",
        PresenceKind::Agent => "agents/",
    }
}

/// The id at the end of a member's channel name (`sessions/{id}` → `{id}`).
pub fn member_id(channel: &str) -> &str {
    channel.split_once('/').map_or(channel, |(_, id)| id)
}

impl PresenceEntry {
    /// The compact form of `p`. Its channel is `sessions/{id}` or `agents/{id}` by the protocol's rule, and is
    /// made from its kind and id.
    pub fn new(p: PresenceInfo) -> Self {
        let PresenceInfo {
            kind,
            id,
            channel,
            name,
            sdk_version,
            project_id,
            metadata,
            capabilities,
            protocol,
            connected_at,
            origin,
            stale_since,
        } = p;
        let prefix = prefix(kind);
        debug_assert_eq!(channel, format!("{prefix}{id}"), "a member's channel");
        drop(channel);
        let mut name_text = String::with_capacity(prefix.len() + id.len());
        name_text.push_str(prefix);
        name_text.push_str(&id);
        let sdk = sdk_version.as_deref().unwrap_or_default();
        let project = project_id.as_deref().unwrap_or_default();
        let mut labels = String::with_capacity(sdk.len() + project.len());
        labels.push_str(sdk);
        labels.push_str(project);
        let v1 = match protocol.as_str() {
            "v1" => Some(true),
            "v2" => Some(false),
            _ => None,
        };
        let rare = Rare {
            stale_since,
            name,
            metadata,
            capabilities,
            origin,
            protocol: v1.is_none().then_some(protocol),
        };
        PresenceEntry {
            channel: name_text.into(),
            connected_at,
            labels: labels.into_boxed_str(),
            // Longer labels do not fit a message (`max_message_bytes` is at most 256 MiB).
            sdk_end: u32::try_from(sdk.len()).unwrap_or(u32::MAX),
            has_sdk: sdk_version.is_some(),
            has_project: project_id.is_some(),
            kind,
            v1: v1.unwrap_or(false),
            rare: (!rare.is_empty()).then(|| Box::new(rare)),
        }
    }

    /// `sessions/{id}` or `agents/{id}`: the one copy of the member's names, to share.
    pub fn channel(&self) -> &Arc<str> {
        &self.channel
    }

    pub fn id(&self) -> &str {
        &self.channel[prefix(self.kind).len()..]
    }

    pub fn kind(&self) -> PresenceKind {
        self.kind
    }

    pub fn connected_at(&self) -> Millis {
        self.connected_at
    }

    pub fn stale_since(&self) -> Option<Millis> {
        self.rare.as_ref()?.stale_since
    }

    pub fn set_stale_since(&mut self, since: Option<Millis>) {
        match (&mut self.rare, since) {
            (Some(rare), _) => rare.stale_since = since,
            (None, None) => {}
            (None, Some(_)) => {
                self.rare = Some(Box::new(Rare {
                    stale_since: since,
                    ..Rare::default()
                }))
            }
        }
        if self.rare.as_ref().is_some_and(|r| r.is_empty()) {
            self.rare = None;
        }
    }

    pub fn sdk_version(&self) -> Option<&str> {
        let end = (self.sdk_end as usize).min(self.labels.len());
        self.has_sdk.then(|| &self.labels[..end])
    }

    pub fn project_id(&self) -> Option<&str> {
        let end = (self.sdk_end as usize).min(self.labels.len());
        self.has_project.then(|| &self.labels[end..])
    }

    /// The `Origin` of the page it came from, when that is not one the relay serves or allows.
    pub fn origin(&self) -> Option<&str> {
        self.rare.as_ref()?.origin.as_deref()
    }

    /// An agent's `hello.capabilities`.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.rare.as_ref()?.capabilities.as_ref()
    }

    /// The wire form (`ack.presence`, `session.connected`).
    pub fn info(&self) -> PresenceInfo {
        let rare = self.rare.as_deref();
        let protocol = match (rare.and_then(|r| r.protocol.as_deref()), self.v1) {
            (Some(other), _) => other,
            (None, true) => "v1",
            (None, false) => "v2",
        };
        PresenceInfo {
            kind: self.kind,
            id: self.id().into(),
            channel: self.channel.to_string(),
            name: rare.and_then(|r| r.name.clone()),
            sdk_version: self.sdk_version().map(Into::into),
            project_id: self.project_id().map(Into::into),
            metadata: rare.and_then(|r| r.metadata.clone()),
            capabilities: rare.and_then(|r| r.capabilities.clone()),
            protocol: protocol.into(),
            connected_at: self.connected_at,
            origin: rare.and_then(|r| r.origin.clone()),
            stale_since: self.stale_since(),
        }
    }

    /// A session as seed-000 dashboards see it (`client_list`, `client_connected`), in seed 000's shape (a v2
    /// session that gave no SDK version shows `"v2"`).
    pub fn client_info(&self) -> ClientInfo {
        ClientInfo {
            session_id: self.id().into(),
            sdk_version: self.sdk_version().unwrap_or("v2").into(),
            project_id: self.project_id().map(Into::into),
            connected_at: self.connected_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> PresenceInfo {
        let mut metadata = Map::new();
        metadata.insert("host".into(), Value::from("ci-7"));
        PresenceInfo {
            kind: PresenceKind::Agent,
            id: "a/b c".into(),
            channel: "agents/a/b c".into(),
            name: Some("builder".into()),
            sdk_version: Some("1.2.3".into()),
            project_id: Some("".into()),
            metadata: Some(metadata),
            capabilities: Some(Capabilities {
                commands: true,
                allow: vec!["cargo *".into()],
                input: true,
                max_concurrent: Some(2),
            }),
            protocol: "v2".into(),
            connected_at: Millis(1_700_000_000_123.5),
            origin: Some("http://myapp.test:3000".into()),
            stale_since: Some(Millis(1_700_000_000_999.0)),
        }
    }

    fn seed_000() -> PresenceInfo {
        PresenceInfo {
            kind: PresenceKind::Session,
            id: "sdk-00042".into(),
            channel: "sessions/sdk-00042".into(),
            name: None,
            sdk_version: Some("devrelay-bench".into()),
            project_id: Some("bench".into()),
            metadata: None,
            capabilities: None,
            protocol: "v1".into(),
            connected_at: Millis(1_700_000_000_000.0),
            origin: None,
            stale_since: None,
        }
    }

    #[test]
    fn the_wire_form_is_what_was_given() {
        let bare = PresenceInfo {
            sdk_version: None,
            project_id: None,
            protocol: "v2".into(),
            ..seed_000()
        };
        let odd = PresenceInfo {
            protocol: "v9".into(),
            sdk_version: None,
            project_id: Some("p".into()),
            ..seed_000()
        };
        for p in [full(), seed_000(), bare, odd] {
            let entry = PresenceEntry::new(p.clone());
            assert_eq!(entry.info(), p);
            assert_eq!(
                serde_json::to_string(&entry.info()).unwrap(),
                serde_json::to_string(&p).unwrap()
            );
            assert_eq!(entry.id(), p.id);
            assert_eq!(&**entry.channel(), p.channel);
            assert_eq!(member_id(entry.channel()), p.id);
        }
    }

    #[test]
    fn a_seed_000_session_has_nothing_rare_and_its_client_info_is_seed_000s() {
        let entry = PresenceEntry::new(seed_000());
        assert!(entry.rare.is_none());
        let info = entry.client_info();
        assert_eq!(
            serde_json::to_string(&info).unwrap(),
            r#"{"sessionId":"sdk-00042","sdkVersion":"devrelay-bench","projectId":"bench","connectedAt":1700000000000}"#
        );
        let v2 = PresenceEntry::new(PresenceInfo {
            sdk_version: None,
            project_id: None,
            protocol: "v2".into(),
            ..seed_000()
        });
        assert_eq!(v2.client_info().sdk_version, "v2");
        assert_eq!(v2.client_info().project_id, None);
    }

    #[test]
    fn a_stale_mark_changes_only_the_copy_it_is_made_on() {
        let shared = Arc::new(PresenceEntry::new(seed_000()));
        let mut mine = shared.clone();
        Arc::make_mut(&mut mine).set_stale_since(Some(Millis(5.0)));
        assert_eq!(shared.stale_since(), None);
        assert_eq!(mine.info().stale_since, Some(Millis(5.0)));
        assert!(
            Arc::ptr_eq(shared.channel(), mine.channel()),
            "the name is not copied"
        );
        // Fresh again: nothing rare is left behind, and the wire form is the one before.
        Arc::make_mut(&mut mine).set_stale_since(None);
        assert!(mine.rare.is_none());
        assert_eq!(mine.info(), shared.info());
        // A member with rare fields keeps them through a stale mark and back.
        let mut agent = PresenceEntry::new(full());
        agent.set_stale_since(None);
        assert_eq!(
            agent.info(),
            PresenceInfo {
                stale_since: None,
                ..full()
            }
        );
        agent.set_stale_since(Some(Millis(7.0)));
        assert_eq!(
            agent.info(),
            PresenceInfo {
                stale_since: Some(Millis(7.0)),
                ..full()
            }
        );
    }

    #[test]
    fn it_stays_small() {
        // Every idle connection that identified holds one (see BENCHMARKS.md, "Idle connection memory").
        assert!(
            std::mem::size_of::<PresenceEntry>() <= 56,
            "{}",
            std::mem::size_of::<PresenceEntry>()
        );
    }
}
