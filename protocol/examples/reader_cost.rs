//! Instructions per byte of `json_reader` on a plain-text-heavy frame (run under callgrind).
//!
//! `reader_cost [N]`: N parses (default 10,000) of a 509-byte event into `IgnoredAny` (the validating skip).
//! `reader_cost N view`: N relay decodes (`InboundRef::decode`, the relay's path for every inbound frame) of a
//! 512-byte seed-000 `stream_event` shaped like `devrelay-bench b`'s (a 13-digit timestamp, a 13-digit seq, an
//! unknown `bn` member, a 400-odd-byte text delta).
fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let view = args.next().as_deref() == Some("view");
    let mut ok = 0;
    let text = if view { bench_b_event() } else { event() };
    for _ in 0..n {
        let good = if view {
            devrelay_protocol::view::InboundRef::decode(&text).is_ok()
        } else {
            devrelay_protocol::json_reader::from_str::<serde::de::IgnoredAny>(&text).is_ok()
        };
        ok += usize::from(good);
    }
    println!("{ok} × {} bytes", text.len());
}

fn pad(len: usize) -> String {
    "lorem ipsum dolor sit amet "
        .chars()
        .cycle()
        .take(len)
        .collect()
}

fn event() -> String {
    format!(
        r#"{{"type":"stream_event","sessionId":"s1","timestamp":1,"threadId":"t","seq":1,"event":{{"type":"X","delta":"{}"}}}}"#,
        pad(400)
    )
}

/// As bench/src/payload.rs writes it (the stamp a placeholder of the same length).
fn bench_b_event() -> String {
    let head = format!(
        r#"{{"type":"stream_event","sessionId":"bench-sdk-000000","bn":"{}","timestamp":1763812801500,"threadId":"thr_1","seq":1000000000000,"event":{{"type":"TEXT_MESSAGE_CONTENT","messageId":"msg_1","delta":""#,
        "0".repeat(42)
    );
    let tail = r#""}}"#;
    format!("{head}{}{tail}", pad(512 - head.len() - tail.len()))
}
