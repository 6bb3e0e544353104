//! Observability over real sockets: `GET /metrics` parses as the Prometheus text exposition format (and
//! OpenMetrics), its counters move with real traffic and equal `/stats`' (one source), queue depth and
//! rejected upgrades by reason; and the binary's `--log-format json` writes one JSON object per stderr line.

mod util;

use std::collections::BTreeMap;
use std::time::Duration;

use devrelay::Config;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use util::{event, Client, Relay, PATIENCE};

/// A small, strict reader of the text exposition formats: Prometheus 0.0.4 and OpenMetrics 1.0 text.
mod exposition {
    use std::collections::{BTreeMap, HashMap, HashSet};

    #[derive(Debug, Clone, PartialEq)]
    pub struct Sample {
        pub name: String,
        pub labels: BTreeMap<String, String>,
        pub value: f64,
    }

    #[derive(Debug, Default)]
    pub struct Family {
        pub kind: String,
        pub help: Option<String>,
        pub samples: Vec<Sample>,
    }

    #[derive(Debug, Default)]
    pub struct Exposition {
        pub families: HashMap<String, Family>,
    }

    fn is_name(s: &str, colons: bool) -> bool {
        let mut chars = s.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':'))
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':'))
    }

    fn value(s: &str) -> Result<f64, String> {
        match s {
            "+Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            "NaN" => Ok(f64::NAN),
            _ => s.parse::<f64>().map_err(|e| format!("value {s:?}: {e}")),
        }
    }

    /// `{a="x",b="y\"z"}` → the map and the rest of the line.
    fn labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
        let mut out = BTreeMap::new();
        let mut rest = s.strip_prefix('{').ok_or("labels must start with {")?;
        loop {
            if let Some(r) = rest.strip_prefix('}') {
                return Ok((out, r));
            }
            let eq = rest.find('=').ok_or("label without =")?;
            let name = &rest[..eq];
            if !is_name(name, false) {
                return Err(format!("bad label name {name:?}"));
            }
            let mut chars = rest[eq + 1..].char_indices();
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err("label value must be quoted".into());
            }
            let mut v = String::new();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => v.push('\n'),
                        Some((_, '\\')) => v.push('\\'),
                        Some((_, '"')) => v.push('"'),
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    Some((i, '"')) => break eq + 1 + i + 1,
                    Some((_, c)) => v.push(c),
                    None => return Err("unterminated label value".into()),
                }
            };
            if out.insert(name.to_string(), v).is_some() {
                return Err(format!("label {name} twice"));
            }
            rest = &rest[end..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }

    /// The family a sample belongs to, given the declared families.
    fn family_of<'a>(name: &'a str, declared: &HashMap<String, Family>) -> Option<&'a str> {
        if declared.contains_key(name) {
            return Some(name);
        }
        for suffix in ["_bucket", "_sum", "_count", "_total", "_created"] {
            if let Some(base) = name.strip_suffix(suffix) {
                if declared.contains_key(base) {
                    return Some(base);
                }
            }
        }
        None
    }

    pub fn parse(text: &str, openmetrics: bool) -> Result<Exposition, String> {
        let mut x = Exposition::default();
        let mut seen = HashSet::new();
        let mut current: Option<String> = None;
        let mut finished = HashSet::new();
        let mut eof = false;
        for (n, line) in text.lines().enumerate() {
            let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
            if eof {
                return Err(at("content after # EOF".into()));
            }
            if line.is_empty() {
                if openmetrics {
                    return Err(at("empty line".into()));
                }
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let mut parts = comment.trim_start().splitn(3, ' ');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some("EOF"), None, None) if openmetrics => eof = true,
                    (Some("HELP"), Some(name), help) => {
                        if !is_name(name, true) {
                            return Err(at(format!("bad metric name {name:?}")));
                        }
                        x.families.entry(name.into()).or_default().help =
                            Some(help.unwrap_or("").to_string());
                    }
                    (Some("TYPE"), Some(name), Some(kind)) => {
                        let kinds = [
                            "counter",
                            "gauge",
                            "histogram",
                            "summary",
                            "untyped",
                            "unknown",
                            "info",
                            "stateset",
                            "gaugehistogram",
                        ];
                        if !kinds.contains(&kind) {
                            return Err(at(format!("unknown type {kind}")));
                        }
                        let f = x.families.entry(name.into()).or_default();
                        if !f.kind.is_empty() || !f.samples.is_empty() {
                            return Err(at(format!("TYPE of {name} after its samples or twice")));
                        }
                        f.kind = kind.to_string();
                        if let Some(prev) = current.replace(name.to_string()) {
                            finished.insert(prev);
                        }
                    }
                    (Some("UNIT"), Some(_), Some(_)) if openmetrics => {}
                    _ if openmetrics => return Err(at("unknown # line".into())),
                    _ => {}
                }
                continue;
            }
            let name_end = line
                .find(['{', ' '])
                .ok_or_else(|| at("sample without value".into()))?;
            let name = &line[..name_end];
            if !is_name(name, true) {
                return Err(at(format!("bad metric name {name:?}")));
            }
            let (labels, rest) = if line[name_end..].starts_with('{') {
                labels(&line[name_end..]).map_err(at)?
            } else {
                (BTreeMap::new(), &line[name_end..])
            };
            let mut fields = rest
                .strip_prefix(' ')
                .ok_or_else(|| at("no space before the value".into()))?
                .split(' ');
            let v = value(fields.next().unwrap_or("")).map_err(at)?;
            if let Some(ts) = fields.next() {
                ts.parse::<f64>()
                    .map_err(|e| at(format!("timestamp: {e}")))?;
            }
            if fields.next().is_some() {
                return Err(at("trailing fields".into()));
            }
            let family = family_of(name, &x.families)
                .ok_or_else(|| at(format!("sample {name} of no declared family")))?
                .to_string();
            if finished.contains(&family) {
                return Err(at(format!("samples of {family} are not contiguous")));
            }
            if current.as_deref() != Some(family.as_str()) {
                if let Some(prev) = current.replace(family.clone()) {
                    finished.insert(prev);
                }
            }
            let key = format!("{name}{labels:?}");
            if !seen.insert(key) {
                return Err(at("duplicate sample".into()));
            }
            x.families.get_mut(&family).unwrap().samples.push(Sample {
                name: name.to_string(),
                labels,
                value: v,
            });
        }
        if openmetrics && !eof {
            return Err("OpenMetrics text must end with # EOF".into());
        }
        for (name, f) in &x.families {
            if f.kind.is_empty() {
                return Err(format!("{name} has no TYPE"));
            }
            if f.kind == "histogram" {
                check_histogram(name, f)?;
            }
        }
        Ok(x)
    }

    fn check_histogram(name: &str, f: &Family) -> Result<(), String> {
        let mut last = (f64::NEG_INFINITY, 0.0);
        for s in f.samples.iter().filter(|s| s.name.ends_with("_bucket")) {
            let le = value(s.labels.get("le").ok_or("bucket without le")?)?;
            if le <= last.0 || s.value < last.1 {
                return Err(format!("{name}: buckets not ascending and cumulative"));
            }
            last = (le, s.value);
        }
        let count = f
            .samples
            .iter()
            .find(|s| s.name.ends_with("_count"))
            .ok_or("histogram without _count")?;
        if last.0 != f64::INFINITY || last.1 != count.value {
            return Err(format!("{name}: the +Inf bucket must equal _count"));
        }
        if !f.samples.iter().any(|s| s.name.ends_with("_sum")) {
            return Err(format!("{name}: no _sum"));
        }
        Ok(())
    }

    impl Exposition {
        /// The value of the sample `name` with exactly these labels.
        pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
            let want: BTreeMap<String, String> = labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            self.families
                .values()
                .flat_map(|f| &f.samples)
                .find(|s| s.name == name && s.labels == want)
                .map(|s| s.value)
        }

        pub fn kind(&self, family: &str) -> Option<&str> {
            self.families.get(family).map(|f| f.kind.as_str())
        }

        /// Every sample of `name`, label `key` → value.
        pub fn by_label(&self, name: &str, key: &str) -> BTreeMap<String, f64> {
            self.families
                .values()
                .flat_map(|f| &f.samples)
                .filter(|s| s.name == name)
                .filter_map(|s| Some((s.labels.get(key)?.clone(), s.value)))
                .collect()
        }
    }

    #[test]
    fn the_reader_refuses_what_is_not_exposition_text() {
        let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"\"} 3\n";
        assert_eq!(
            parse(ok, false).unwrap().get("a_total", &[("x", "1\"")]),
            Some(3.0)
        );
        for bad in [
            "a_total 3\n",                                            // no TYPE
            "# TYPE a counter\na{x=1} 3\n",                           // unquoted
            "# TYPE a counter\na 3 x\n",                              // bad timestamp
            "# TYPE a counter\na three\n",                            // bad value
            "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n",        // not contiguous
            "# TYPE a gauge\na 1\na 1\n",                             // duplicate
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        ] {
            assert!(parse(bad, false).is_err(), "{bad}");
        }
        assert!(parse("# TYPE a gauge\na 1\n", true).is_err(), "no # EOF");
    }
}

/// A GET with the relay's dashboard token (`/metrics` needs it like `/stats`; security.rs tests the refusals).
async fn get_full(relay: &Relay, path: &str, accept: Option<&str>) -> (u16, String, String) {
    let addr = relay.addr;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut extra = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    for (k, v) in relay.bearer() {
        extra.push_str(&format!("{k}: {v}\r\n"));
    }
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (status, content_type, body.to_string())
}

async fn scrape(relay: &Relay) -> exposition::Exposition {
    let (status, content_type, body) = get_full(relay, "/metrics", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    exposition::parse(&body, false).unwrap_or_else(|e| panic!("{e}\n{body}"))
}

fn get(x: &exposition::Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    x.get(name, labels)
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

#[tokio::test]
async fn metrics_parse_as_exposition_text_and_move_with_traffic() {
    let relay = Relay::start(Config::default()).await;
    let idle = scrape(&relay).await;
    for (family, kind) in [
        ("devrelay_connections", "gauge"),
        ("devrelay_connections_opened_total", "counter"),
        ("devrelay_messages_received_total", "counter"),
        ("devrelay_received_bytes_total", "counter"),
        ("devrelay_messages_sent_total", "counter"),
        ("devrelay_sent_bytes_total", "counter"),
        ("devrelay_dropped_messages_total", "counter"),
        ("devrelay_slow_consumer_closes_total", "counter"),
        ("devrelay_rejected_upgrades_total", "counter"),
        ("devrelay_queued_frames", "gauge"),
        ("devrelay_queue_max_bytes", "gauge"),
        ("devrelay_fanout_latency_seconds", "histogram"),
        ("devrelay_history_bytes", "gauge"),
        ("devrelay_snapshot_cache_bytes", "gauge"),
    ] {
        assert_eq!(idle.kind(family), Some(kind), "{family}");
    }
    assert_eq!(
        get(&idle, "devrelay_fanout_latency_seconds_count", &[]),
        0.0
    );
    let roles = idle.by_label("devrelay_connections", "role");
    assert_eq!(roles.values().sum::<f64>(), 0.0, "{roles:?}");

    // Real traffic: a seed-000 dashboard and SDK, 20 events.
    let (mut dash, _) = Client::dashboard(&relay.dash()).await;
    let mut sdk = Client::sdk(&relay.url(), "metrics-1").await;
    const N: u64 = 20;
    for seq in 0..N {
        sdk.send_text(&event("metrics-1", seq, 100)).await;
    }
    let mut updates = 0;
    while updates < N {
        let v = dash.recv_value().await;
        if v["type"] == "stream_event_update" {
            updates += 1;
        }
    }
    let busy = scrape(&relay).await;
    let received = |x: &exposition::Exposition, t: &str| {
        get(x, "devrelay_messages_received_total", &[("type", t)])
    };
    let sent = |x: &exposition::Exposition, t: &str| {
        get(x, "devrelay_messages_sent_total", &[("type", t)])
    };
    assert_eq!(
        received(&busy, "stream_event") - received(&idle, "stream_event"),
        N as f64
    );
    assert_eq!(received(&busy, "handshake"), 1.0);
    assert_eq!(received(&busy, "subscribe_dashboard"), 1.0);
    assert_eq!(sent(&busy, "stream_event_update"), N as f64);
    assert!(
        get(
            &busy,
            "devrelay_received_bytes_total",
            &[("type", "stream_event")]
        ) > (N * 100) as f64
    );
    assert_eq!(get(&busy, "devrelay_connections", &[("role", "sdk")]), 1.0);
    assert_eq!(
        get(&busy, "devrelay_connections", &[("role", "dashboard")]),
        1.0
    );
    assert_eq!(get(&busy, "devrelay_connections_opened_total", &[]), 2.0);
    // Every delivered publication was timed at its write.
    assert!(get(&busy, "devrelay_fanout_latency_seconds_count", &[]) >= N as f64);
    assert!(get(&busy, "devrelay_fanout_latency_seconds_sum", &[]) > 0.0);
    // History keeps the session's events.
    assert!(get(&busy, "devrelay_history_bytes", &[]) > 0.0);

    // One source: with the traffic quiet, /stats says exactly what /metrics says.
    let stats = relay.stats().await;
    let again = scrape(&relay).await;
    for (dir, name) in [
        ("in", "devrelay_messages_received_total"),
        ("out", "devrelay_messages_sent_total"),
    ] {
        let by_type = again.by_label(name, "type");
        let doc = stats[dir].as_object().unwrap();
        assert_eq!(by_type.len(), doc.len(), "{dir}: the same message types");
        for (t, v) in doc {
            assert_eq!(by_type[t], v["messages"].as_f64().unwrap(), "{dir} {t}");
        }
    }
    for (key, name) in [
        ("historyBytes", "devrelay_history_bytes"),
        ("snapshotCacheBytes", "devrelay_snapshot_cache_bytes"),
        ("dropped", "devrelay_dropped_messages_total"),
        ("slowConsumerCloses", "devrelay_slow_consumer_closes_total"),
        ("connectionsTotal", "devrelay_connections_opened_total"),
    ] {
        assert_eq!(
            stats[key].as_f64().unwrap(),
            get(&again, name, &[]),
            "{key}"
        );
    }
    assert_eq!(
        stats["gauges"]["connections"].as_f64().unwrap(),
        again
            .by_label("devrelay_connections", "role")
            .values()
            .sum::<f64>()
    );

    // OpenMetrics when the scraper asks for it (Prometheus does), with its # EOF.
    let (status, content_type, body) = get_full(
        &relay,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let om = exposition::parse(&body, true).unwrap_or_else(|e| panic!("{e}\n{body}"));
    assert_eq!(om.kind("devrelay_messages_received"), Some("counter"));
    assert_eq!(
        get(
            &om,
            "devrelay_messages_sent_total",
            &[("type", "stream_event_update")]
        ),
        N as f64
    );

    // Leaving shows too.
    drop(sdk);
    drop(dash);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let x = scrape(&relay).await;
        if x.by_label("devrelay_connections", "role")
            .values()
            .sum::<f64>()
            == 0.0
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "connections never went back to 0"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.shutdown.cancel();
}

#[tokio::test]
async fn rejected_upgrades_are_counted_by_reason() {
    let relay = Relay::start(Config::default()).await;
    // A foreign Origin is not refused at the upgrade any more (an SDK in an app's page carries its app's
    // Origin): it opens, as an SDK at most (security.rs), and counts nowhere here.
    assert!(
        Client::connect_with(&relay.url(), &[("Origin", "https://evil.example")])
            .await
            .is_ok()
    );
    for _ in 0..2 {
        assert!(
            Client::connect_with(&relay.url(), &[("Host", "rebind.example:80")])
                .await
                .is_err()
        );
    }
    // An upgrade without Sec-WebSocket-Key.
    let mut s = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
        relay.addr
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 400");

    let x = scrape(&relay).await;
    let by_reason = x.by_label("devrelay_rejected_upgrades_total", "reason");
    assert_eq!(
        by_reason,
        BTreeMap::from([
            ("bad_request".to_string(), 1.0),
            ("full".to_string(), 0.0),
            ("host".to_string(), 2.0),
            ("origin".to_string(), 0.0),
            ("rate".to_string(), 0.0),
        ])
    );
    let stats = relay.stats().await;
    assert_eq!(stats["rejectedUpgrades"], 3);
    assert_eq!(
        stats["rejectedUpgradesByReason"],
        serde_json::json!({"host": 2, "origin": 0, "bad_request": 1, "full": 0, "rate": 0})
    );
    relay.shutdown.cancel();
}

#[tokio::test]
async fn queue_depth_shows_a_dashboard_that_stopped_reading() {
    let relay = Relay::start(Config::default()).await;
    let _stalled = Client::small_window_dashboard(&relay).await;
    let mut sdk = Client::sdk(&relay.url(), "queue-1").await;
    // 12 MiB in 192 events: far beyond what the socket buffers hold, within the queue's 16 MiB.
    const N: u64 = 192;
    for seq in 0..N {
        sdk.send_text(&event("queue-1", seq, 64 << 10)).await;
    }
    // Wait for the SDK's events to be in and the queue to stop moving (the writer blocked on the dashboard).
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut last = (-1.0, -1.0);
    let x = loop {
        let x = scrape(&relay).await;
        let now = (
            get(&x, "devrelay_queued_frames", &[]),
            get(
                &x,
                "devrelay_messages_received_total",
                &[("type", "stream_event")],
            ),
        );
        if now.1 == N as f64 && now.0 > 0.0 && now == last {
            break x;
        }
        last = now;
        assert!(
            tokio::time::Instant::now() < deadline,
            "queue never settled: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let frames = get(&x, "devrelay_queued_frames", &[]);
    let bytes = get(&x, "devrelay_queued_bytes", &[]);
    // One connection holds the whole backlog: the sums are its maximum.
    assert_eq!(get(&x, "devrelay_queue_max_frames", &[]), frames);
    assert_eq!(get(&x, "devrelay_queue_max_bytes", &[]), bytes);
    assert!(
        bytes > frames * f64::from(64u32 << 10),
        "{bytes} for {frames} frames"
    );
    let stats: Value = relay.stats().await;
    assert_eq!(stats["queues"]["frames"].as_f64(), Some(frames));
    assert_eq!(stats["queues"]["maxBytes"].as_f64(), Some(bytes));
    relay.shutdown.cancel();
}

/// Runs the binary with `args`, opens and closes one WebSocket, stops it with SIGTERM; returns stderr's lines.
fn binary_stderr(args: &[&str]) -> Vec<String> {
    use std::io::Read;
    use std::process::Stdio;
    let (mut child, url) =
        util::start_binary(args, &[("RUST_LOG", "devrelay=debug")], Stdio::piped());
    let addr = url.trim_start_matches("ws://").to_string();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = Client::connect(&format!("ws://{addr}")).await;
        c.send_text("not json").await;
        let v = c.recv_value().await;
        assert_eq!(v["type"], "error");
        drop(c);
    });
    // An upgrade refused (a rebound Host), for a warn line.
    rt.block_on(async {
        let _ =
            Client::connect_with(&format!("ws://{addr}"), &[("Host", "rebind.example:80")]).await;
    });
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(child.wait().unwrap().success());
    err.lines().map(String::from).collect()
}

#[test]
fn the_binary_logs_json_objects_with_level_target_and_message() {
    let lines = binary_stderr(&["--log-format", "json"]);
    assert!(lines.len() >= 3, "{lines:?}");
    let mut levels = Vec::new();
    for line in &lines {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let level = v["level"]
            .as_str()
            .unwrap_or_else(|| panic!("no level: {line}"));
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
            "{line}"
        );
        assert!(
            v["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("devrelay")),
            "{line}"
        );
        assert!(v["message"].is_string(), "{line}");
        assert!(v["timestamp"].is_string(), "{line}");
        levels.push(level.to_string());
    }
    let started = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("relay started"))
        })
        .expect("a start line");
    // The event's fields sit beside the message.
    assert!(
        started["addr"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:")),
        "{started}"
    );
    assert_eq!(started["version"], devrelay::VERSION);
    for want in ["INFO", "DEBUG", "WARN"] {
        assert!(
            levels.iter().any(|l| l == want),
            "no {want} line in {lines:?}"
        );
    }
}

#[test]
fn the_default_log_format_is_text_for_people() {
    let lines = binary_stderr(&[]);
    assert!(
        lines.iter().any(|l| l.contains("relay started")),
        "{lines:?}"
    );
    for line in &lines {
        assert!(serde_json::from_str::<Value>(line).is_err(), "{line}");
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_devrelay"))
        .args(["--log-format", "xml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--log-format"));
}
