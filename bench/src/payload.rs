//! The messages simulated SDKs and dashboards send, built once as ready-to-write frames; per message only the
//! stamp (and the `seq` digits) are rewritten in place.

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

/// `stream_event` of exactly `size` bytes (at least ~250), stamp first after the session id.
pub fn stream_event(sender: u32, size: usize) -> Template {
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
    Template::new(format!("{head}{text}{tail}"))
}

/// `state_snapshot` with `threads` × `messages` chat messages (20 × 50 ≈ 250 KB), stamp first after the
/// session id.
pub fn state_snapshot(sender: u32, threads: usize, messages: usize) -> Template {
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
    Template::new(out)
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
    }
}
