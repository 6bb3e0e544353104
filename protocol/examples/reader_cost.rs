//! Instructions per byte of `json_reader` on a plain-text-heavy frame (run under callgrind).
fn main() {
    let pad: String = "lorem ipsum dolor sit amet "
        .chars()
        .cycle()
        .take(400)
        .collect();
    let text = format!(
        r#"{{"type":"stream_event","sessionId":"s1","timestamp":1,"threadId":"t","seq":1,"event":{{"type":"X","delta":"{pad}"}}}}"#
    );
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let mut ok = 0;
    for _ in 0..n {
        if devrelay_protocol::json_reader::from_str::<serde::de::IgnoredAny>(&text).is_ok() {
            ok += 1;
        }
    }
    println!("{ok} × {} bytes", text.len());
}
