//! The messages simulated SDKs and dashboards send, built once as ready-to-write frames; per message only the
//! stamp (and the `seq` digits) are rewritten in place.

use devrelay_protocol::v2::{ClientMessage, Hello, RequestId, StreamPosition, Subscribe};
use devrelay_protocol::{DashboardMessage, Handshake, SdkMessage, PROTOCOL_VERSION};

use crate::frame::{self, Opcode};
use crate::stamp::{self, Stamp};

/// `seq` is written as `SEQ_BASE + n` so its width never changes (JSON numbers have no leading zeros).
const SEQ_BASE: u64 = 1_000_000_000_000;
const SEQ_DIGITS: usize = 13;

/// The session id of simulated SDK number `index`.
pub fn session_id(index: u32) -> String {
    format!("bench-sdk-{index:06}")
}

/// A complete client frame with holes for the stamp and (for stream events) the sequence number.
#[derive(Debug, Clone)]
pub struct Template {
    frame: Vec<u8>,
    header: usize,
    stamp_at: usize,
    seq_at: Option<usize>,
}

impl Template {
    fn new(payload: String) -> Template {
        let frame = frame::encode(Opcode::Text, payload.as_bytes());
        let header = frame::header_len(payload.len());
        let stamp_at = header
            + memchr::memmem::find(payload.as_bytes(), stamp::KEY).expect("template has a stamp")
            + stamp::KEY.len();
        let seq_at = memchr::memmem::find(payload.as_bytes(), br#""seq":"#).map(|i| header + i + 6);
        Template {
            frame,
            header,
            stamp_at,
            seq_at,
        }
    }

    /// The frame with `stamp` written in, ready to send.
    pub fn stamped(&mut self, stamp: Stamp) -> &[u8] {
        stamp.write(&mut self.frame[self.stamp_at..self.stamp_at + stamp::LEN]);
        if let Some(at) = self.seq_at {
            let mut v = SEQ_BASE + stamp.seq;
            for b in self.frame[at..at + SEQ_DIGITS].iter_mut().rev() {
                *b = b'0' + (v % 10) as u8;
                v /= 10;
            }
        }
        &self.frame
    }

    /// The payload (the message text) as it currently stands.
    pub fn payload(&self) -> &[u8] {
        &self.frame[self.header..]
    }
}

/// The v2 channel of simulated SDK number `index`: `sessions/{session id}`.
pub fn session_channel(index: u32) -> String {
    format!("sessions/{}", session_id(index))
}

/// `stream_event` of exactly `size` bytes (at least ~250), stamp first after the session id.
pub fn stream_event(sender: u32, size: usize) -> Template {
    Template::new(stream_event_text(sender, size))
}

/// A v2 `publish` of the seed-000 `stream_event` of exactly `size` bytes as `data` on the sender's own
/// `sessions/{id}` channel (event `stream_event`), without an `id`: a streaming SDK does not wait for acks.
pub fn publish_stream_event(sender: u32, size: usize) -> Template {
    Template::new(format!(
        r#"{{"type":"publish","channel":"{}","event":"stream_event","data":{}}}"#,
        session_channel(sender),
        stream_event_text(sender, size)
    ))
}

/// A v2 `publish` of a `state_snapshot` (as [`state_snapshot`]) on the sender's `sessions/{id}` channel.
pub fn publish_state_snapshot(sender: u32, threads: usize, messages: usize) -> Template {
    Template::new(format!(
        r#"{{"type":"publish","channel":"{}","event":"state_snapshot","data":{}}}"#,
        session_channel(sender),
        state_snapshot_text(sender, threads, messages)
    ))
}

fn stream_event_text(sender: u32, size: usize) -> String {
    let head = format!(
        r#"{{"type":"stream_event","sessionId":"{}","bn":"{}","timestamp":1763812801500,"threadId":"thr_1","seq":{SEQ_BASE},"event":{{"type":"TEXT_MESSAGE_CONTENT","messageId":"msg_1","delta":""#,
        session_id(sender),
        Stamp::placeholder(),
    );
    let tail = r#""}}"#;
    let pad = size.saturating_sub(head.len() + tail.len());
    let text: String = "lorem ipsum dolor sit amet "
        .chars()
        .cycle()
        .take(pad)
        .collect();
    format!("{head}{text}{tail}")
}

/// `state_snapshot` with `threads` × `messages` chat messages (20 × 50 ≈ 250 KB), stamp first after the
/// session id.
pub fn state_snapshot(sender: u32, threads: usize, messages: usize) -> Template {
    Template::new(state_snapshot_text(sender, threads, messages))
}

fn state_snapshot_text(sender: u32, threads: usize, messages: usize) -> String {
    let sid = session_id(sender);
    let mut out = format!(
        r#"{{"type":"state_snapshot","sessionId":"{sid}","bn":"{}","timestamp":1763812800123,"threads":["#,
        Stamp::placeholder()
    );
    let text =
        "The agent streams a long answer about WebSocket relays, back-pressure, bounded queues \
                and the cost of serializing JSON once per recipient, not per message.";
    for t in 0..threads {
        if t > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"id":"thr_{t}","name":"Thread {t}","status":"idle","createdAt":1763812790000,"messages":["#
        ));
        for m in 0..messages {
            if m > 0 {
                out.push(',');
            }
            let role = if m % 2 == 0 { "user" } else { "assistant" };
            out.push_str(&format!(
                r#"{{"id":"msg_{t}_{m}","role":"{role}","createdAt":{},"content":[{{"type":"text","text":"{text}"}}]}}"#,
                1_763_812_790_000u64 + m as u64
            ));
        }
        out.push_str("]}");
    }
    out.push_str(r#"],"registry":{"components":[{"name":"WeatherCard","description":"Shows current weather"}],"tools":[{"name":"get_weather","description":"Current weather for a city"}]}}"#);
    out
}

/// The `handshake` frame for SDK `index`.
pub fn handshake(index: u32) -> Vec<u8> {
    let msg = SdkMessage::Handshake(Handshake {
        protocol_version: PROTOCOL_VERSION,
        sdk_version: "devrelay-bench".into(),
        project_id: Some("bench".into()),
        session_id: session_id(index),
    });
    frame::encode(
        Opcode::Text,
        serde_json::to_string(&msg)
            .expect("handshake serializes")
            .as_bytes(),
    )
}

/// The `subscribe_dashboard` frame.
pub fn subscribe_dashboard() -> Vec<u8> {
    let msg = serde_json::to_string(&DashboardMessage::SubscribeDashboard)
        .expect("subscribe_dashboard serializes");
    frame::encode(Opcode::Text, msg.as_bytes())
}

fn v2_frame(msg: &ClientMessage) -> Vec<u8> {
    frame::encode(
        Opcode::Text,
        serde_json::to_string(msg)
            .expect("v2 messages serialize")
            .as_bytes(),
    )
}

/// The v2 `hello` of a dashboard (anonymous; `batch` asks for batched frames) or of SDK `session` (identified
/// as that session, so it may publish on its channel).
pub fn hello(batch: bool, session: Option<u32>) -> Vec<u8> {
    v2_frame(&ClientMessage::Hello(Hello {
        session_id: session.map(session_id),
        sdk_version: session.map(|_| "devrelay-bench".to_string()),
        project_id: session.map(|_| "bench".to_string()),
        batch,
        ..Hello::default()
    }))
}

/// A v2 `subscribe {channel, id, since?}`.
pub fn subscribe(channel: &str, id: u64, since: Option<StreamPosition>) -> Vec<u8> {
    v2_frame(&ClientMessage::Subscribe(Subscribe {
        channel: channel.to_string(),
        id: Some(RequestId::Num(id)),
        since,
        history: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stamp::StampFinder;
    use devrelay_protocol::{decode, splice, SdkMessage};

    fn stamp(seq: u64) -> Stamp {
        Stamp {
            sent_nanos: 123_456_789,
            sender: 7,
            seq,
        }
    }

    #[test]
    fn stream_event_is_exact_size_valid_and_its_stamp_survives_the_relay_splice() {
        let mut t = stream_event(7, 512);
        t.stamped(stamp(41));
        let text = std::str::from_utf8(t.payload()).unwrap();
        assert_eq!(text.len(), 512);
        let Ok(SdkMessage::StreamEvent(ev)) = decode::<SdkMessage>(text) else {
            panic!("not a stream_event: {text}");
        };
        assert_eq!(ev.session_id, session_id(7));
        assert_eq!(ev.seq, SEQ_BASE + 41);
        let update = splice::stream_event_update(&ev.session_id, text);
        assert_eq!(
            StampFinder::default().find(update.as_bytes()),
            Some(stamp(41))
        );
        // A JSON.parse + JSON.stringify relay keeps member order, so the stamp survives it too.
        let v: serde_json::Value = serde_json::from_str(text).unwrap();
        let node_style = serde_json::json!({"type": "stream_event_update", "sessionId": ev.session_id, "event": v});
        assert_eq!(
            StampFinder::default().find(node_style.to_string().as_bytes()),
            Some(stamp(41))
        );
    }

    #[test]
    fn snapshot_is_about_250kb_valid_and_its_stamp_survives_the_relay_splice() {
        let mut t = state_snapshot(7, 20, 50);
        t.stamped(stamp(3));
        let text = std::str::from_utf8(t.payload()).unwrap();
        assert!((240_000..260_000).contains(&text.len()), "{}", text.len());
        let Ok(SdkMessage::StateSnapshot(s)) = decode::<SdkMessage>(text) else {
            panic!("not a state_snapshot");
        };
        assert_eq!(s.threads.len(), 20);
        let update = splice::state_update(&s.session_id, text).unwrap();
        let f = StampFinder::default();
        assert_eq!(f.find(update.as_bytes()), Some(stamp(3)));
        // Found early: a receiver scans only the first few hundred bytes.
        assert!(memchr::memmem::find(update.as_bytes(), stamp::KEY).unwrap() < 200);
    }

    #[test]
    fn control_frames_decode_as_protocol_messages() {
        let h = handshake(3);
        assert!(matches!(
            decode::<SdkMessage>(std::str::from_utf8(&h[6..]).unwrap()),
            Ok(SdkMessage::Handshake(_))
        ));
        let s = subscribe_dashboard();
        assert_eq!(&s[6..], br#"{"type":"subscribe_dashboard"}"#);
        let h = hello(true, None);
        assert_eq!(&h[6..], br#"{"type":"hello","batch":true}"#);
        let text = |f: &[u8]| {
            let at = frame::header_len(f.len() - 6);
            serde_json::from_slice::<ClientMessage>(&f[at..]).unwrap()
        };
        let ClientMessage::Hello(h) = text(&hello(false, Some(4))) else {
            panic!()
        };
        assert_eq!(h.session_id.as_deref(), Some("bench-sdk-000004"));
        assert!(!h.batch);
        let since = StreamPosition {
            offset: 9,
            epoch: "e1".into(),
        };
        let ClientMessage::Subscribe(s) = text(&subscribe("sessions/x", 3, Some(since.clone())))
        else {
            panic!()
        };
        assert_eq!(
            (s.channel.as_str(), s.id, s.since),
            ("sessions/x", Some(RequestId::Num(3)), Some(since))
        );
    }

    #[test]
    fn v2_publish_wraps_the_same_stream_event_and_keeps_stamp_and_seq_writable() {
        let mut t = publish_stream_event(2, 512);
        t.stamped(stamp(5));
        let ClientMessage::Publish(p) = serde_json::from_slice::<ClientMessage>(t.payload())
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(t.payload())))
        else {
            panic!("not a publish");
        };
        assert_eq!(
            (p.channel.as_str(), p.event.as_str()),
            ("sessions/bench-sdk-000002", "stream_event")
        );
        let data = serde_json::to_string(&p.data).unwrap();
        assert_eq!(
            data.len(),
            512,
            "the same 512 B event as the seed-000 SDK sends"
        );
        assert_eq!(p.data["seq"], SEQ_BASE + 5);
        assert_eq!(StampFinder::default().find(t.payload()), Some(stamp(5)));
        let mut s = publish_state_snapshot(1, 2, 2);
        s.stamped(stamp(1));
        assert!(matches!(
            serde_json::from_slice::<ClientMessage>(s.payload()),
            Ok(ClientMessage::Publish(p)) if p.event == "state_snapshot"
        ));
    }
}
