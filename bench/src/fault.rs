//! The two ends of the fault test with real network conditions (issue 12, `scripts/fault-test.sh`): a seed-000
//! SDK streaming numbered `stream_event`s at a fixed rate, and a v2 dashboard that follows its session across
//! whatever the network does — resuming every reconnect with `subscribe {since}` — and accounts for every
//! message by channel offset and by the SDK's `seq`.
//!
//! The dashboard notices a dead link the way a browser page must (no TCP keepalive, no WebSocket pings to
//! rely on): it sends a v2 `ping` every `ping_every` and gives the connection up when nothing at all has
//! arrived for `dead_after`; connecting is bounded by `connect_timeout`; between attempts it backs off from
//! 100 ms to 1 s.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::conn::{self, ConnError, FrameReader, Msg, SocketOpts, Target};
use crate::frame::{self, Opcode};

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn text_frame(v: &Value) -> Vec<u8> {
    frame::encode(Opcode::Text, v.to_string().as_bytes())
}

/// The SDK: `handshake` as `session`, then `count` `stream_event`s (seq 0 … count−1) at `rate` per second;
/// answers pings, and stays connected (sending heartbeats) until `linger` has passed after the last one.
pub async fn sdk(
    target: &Target,
    session: &str,
    rate: f64,
    count: u64,
    linger: Duration,
) -> Result<u64, ConnError> {
    let (mut s, mut r) = conn::connect(target, SocketOpts::default()).await?;
    let hs = serde_json::json!({"type": "handshake", "protocolVersion": 1, "sdkVersion": "fault-test",
        "projectId": "fault", "sessionId": session});
    s.write_all(&text_frame(&hs)).await?;
    loop {
        match r.next(&mut s).await? {
            Some(Msg::Text(p)) if memchr::memmem::find(p, b"handshake_ack").is_some() => break,
            Some(Msg::Close(c)) => return Err(ConnError::Upgrade(format!("closed ({c:?})"))),
            None => return Err(ConnError::Upgrade("closed during the handshake".into())),
            _ => {}
        }
    }
    let (mut rd, mut w) = s.into_split();
    let (ping_tx, mut ping_rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let reader = tokio::spawn(async move {
        while let Ok(Some(m)) = r.next(&mut rd).await {
            if let Msg::Ping(p) = m {
                let _ = ping_tx.send(p.to_vec());
            }
        }
    });
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let pad = "x".repeat(200);
    for seq in 0..count {
        tokio::time::sleep_until(start + period.mul_f64(seq as f64)).await;
        while let Ok(p) = ping_rx.try_recv() {
            w.write_all(&conn::pong(&p)).await?;
        }
        let ev = serde_json::json!({"type": "stream_event", "sessionId": session, "timestamp": now_ms(),
            "threadId": "t1", "event": {"type": "TEXT_MESSAGE_CONTENT", "messageId": "m1", "delta": pad},
            "seq": seq});
        w.write_all(&text_frame(&ev)).await?;
    }
    let end = tokio::time::Instant::now() + linger;
    let mut beat = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => break,
            p = ping_rx.recv() => match p {
                Some(p) => w.write_all(&conn::pong(&p)).await?,
                None => break,
            },
            _ = beat.tick() => {
                let hb = serde_json::json!({"type": "heartbeat", "sessionId": session, "timestamp": now_ms()});
                w.write_all(&text_frame(&hb)).await?;
            }
        }
    }
    reader.abort();
    Ok(count)
}

/// How the dashboard behaves.
#[derive(Debug, Clone)]
pub struct DashboardPlan {
    pub target: Target,
    pub session: String,
    /// Messages the SDK sends; the dashboard ends when it has them all (or at `deadline`).
    pub expect: u64,
    pub ping_every: Duration,
    pub dead_after: Duration,
    pub connect_timeout: Duration,
    pub deadline: Duration,
}

/// What the dashboard saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DashboardReport {
    pub expected: u64,
    /// Distinct `seq`s received.
    pub received: u64,
    /// Messages whose `seq` (or offset) was already received.
    pub duplicates: u64,
    /// `seq`s never received (missing at the end).
    pub missing: u64,
    /// Offsets that did not follow the previous one (within one epoch).
    pub offset_gaps: u64,
    pub epochs: Vec<String>,
    pub connections: u64,
    pub connect_failures: u64,
    /// Connections given up for silence (`dead_after` without a frame).
    pub dead_links: u64,
    /// Connections the relay or the network ended (close frame, FIN, reset, a failed write).
    pub ended: u64,
    pub resumed: u64,
    pub recovered: u64,
    pub not_recovered: u64,
    pub replayed: u64,
    /// Why connections ended, and why resumes were not recovered (distinct, a few).
    pub reasons: Vec<String>,
    /// Longest time without a new message while the SDK was sending, in seconds.
    pub longest_silence_secs: f64,
    /// SDK timestamp → receipt, over every message: median and worst, in ms.
    pub latency_p50_ms: f64,
    pub latency_max_ms: f64,
    pub elapsed_secs: f64,
    pub first_error: Option<String>,
}

impl DashboardReport {
    pub fn zero_loss(&self) -> bool {
        self.received == self.expected
            && self.missing == 0
            && self.duplicates == 0
            && self.offset_gaps == 0
            && self.not_recovered == 0
    }
}

/// One thing that happened to the dashboard's link, at a wall-clock time (the fault script's clock too).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkEvent {
    /// Unix time in ms.
    pub at_ms: f64,
    pub kind: LinkEventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkEventKind {
    Connected,
    ConnectFailed,
    /// Given up for silence (`dead_after` without a frame).
    DeadLink,
    /// Ended by the relay or the network, and why.
    Ended(String),
    /// A `subscribe {since}` answered: recovered or not, messages replayed.
    Resumed {
        recovered: bool,
        replayed: u64,
    },
}

/// What `fault-summary` needs to judge each fault: the link's events, and when each message was sent (the SDK's
/// timestamp, by `seq`; `None` for a message that never arrived).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Trace {
    pub events: Vec<LinkEvent>,
    pub sent_ms: Vec<Option<f64>>,
}

/// One fault of the script's schedule: `name` from `start_ms` to `end_ms` (unix ms); its window runs to the
/// next fault's start (the healthy seconds after it, when the dashboard reconnects and catches up).
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    pub name: String,
    pub start_ms: f64,
    pub end_ms: f64,
}

impl Phase {
    /// `name start_ms end_ms` per line (what scripts/fault-test.sh writes).
    pub fn parse_list(text: &str) -> Result<Vec<Phase>, String> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let num = |s: &str| s.parse::<f64>().map_err(|e| format!("{l:?}: {e}"));
                match f[..] {
                    [name, start, end] => Ok(Phase {
                        name: name.to_string(),
                        start_ms: num(start)?,
                        end_ms: num(end)?,
                    }),
                    _ => Err(format!("{l:?}: want `name start_ms end_ms`")),
                }
            })
            .collect()
    }
}

/// Per fault: the messages the SDK sent from the fault's start to the next one's, how many of them arrived
/// (exactly once: duplicates are counted for the whole run), what happened to the connection, and how it
/// resumed. A message that never arrived is placed at its nearest received neighbour's send time.
pub fn phase_table(report: &DashboardReport, trace: &Trace, phases: &[Phase]) -> String {
    let sent = &trace.sent_ms;
    let when = |seq: usize| -> Option<f64> {
        sent[seq].or_else(|| {
            (1..sent.len()).find_map(|d| {
                let before = seq.checked_sub(d).and_then(|i| sent[i]);
                before.or_else(|| sent.get(seq + d).copied().flatten())
            })
        })
    };
    let mut out = String::from(
        "| fault | at (s) | for (s) | sent in its window | received | connections lost (dead link / ended) | connect failures | resumed: recovered (replayed) | not recovered |\n\
         |---|---:|---:|---:|---:|---|---:|---|---:|\n",
    );
    let t0 = phases.first().map_or(0.0, |p| p.start_ms);
    let first_sent = sent
        .iter()
        .flatten()
        .copied()
        .reduce(f64::min)
        .unwrap_or(t0);
    let mut rows = vec![Phase {
        name: "(healthy start)".into(),
        start_ms: first_sent.min(t0),
        end_ms: t0,
    }];
    rows.extend(phases.iter().cloned());
    // Times from the SDK's first message.
    let origin = rows[0].start_ms;
    for (i, p) in rows.iter().enumerate() {
        let until = rows.get(i + 1).map_or(f64::INFINITY, |n| n.start_ms);
        let inside = |t: f64| t >= p.start_ms && t < until;
        let (mut n_sent, mut n_recv) = (0u64, 0u64);
        for (seq, at) in sent.iter().enumerate() {
            if when(seq).is_some_and(inside) {
                n_sent += 1;
                n_recv += u64::from(at.is_some());
            }
        }
        let (mut dead, mut ended, mut failed, mut rec, mut replayed, mut not_rec) =
            (0, 0, 0, 0, 0u64, 0);
        for e in trace.events.iter().filter(|e| inside(e.at_ms)) {
            match &e.kind {
                LinkEventKind::DeadLink => dead += 1,
                LinkEventKind::Ended(_) => ended += 1,
                LinkEventKind::ConnectFailed => failed += 1,
                LinkEventKind::Resumed {
                    recovered: true,
                    replayed: r,
                } => {
                    rec += 1;
                    replayed += r;
                }
                LinkEventKind::Resumed {
                    recovered: false, ..
                } => not_rec += 1,
                LinkEventKind::Connected => {}
            }
        }
        out.push_str(&format!(
            "| {} | {:.1} | {:.1} | {n_sent} | {n_recv} | {} ({dead} / {ended}) | {failed} | {rec} ({replayed}) | {not_rec} |\n",
            p.name,
            (p.start_ms - origin) / 1000.0,
            (p.end_ms - p.start_ms) / 1000.0,
            dead + ended,
        ));
    }
    out.push_str(&format!(
        "\nWhole run: {} of {} messages, {} missing, {} duplicates, {} offset gaps, {} connections, epochs {}.\n",
        report.received,
        report.expected,
        report.missing,
        report.duplicates,
        report.offset_gaps,
        report.connections,
        report.epochs.len()
    ));
    out
}

struct Follow {
    plan: DashboardPlan,
    trace: Trace,
    seen: Vec<bool>,
    position: Option<(u64, String)>,
    report: DashboardReport,
    latencies: Vec<f64>,
    last_new: Instant,
}

/// Why a connection ended.
enum Ended {
    Done,
    Dead,
    Closed(String),
}

impl Follow {
    fn on_value(&mut self, v: &Value) -> Result<(), String> {
        match v.get("type").and_then(Value::as_str) {
            Some("ack") => {
                if v.get("recovered").and_then(Value::as_bool) == Some(false) {
                    self.report.not_recovered += 1;
                    let reason = format!(
                        "not recovered: {}",
                        v["reason"].as_str().unwrap_or("no reason")
                    );
                    if !self.report.reasons.contains(&reason) {
                        self.report.reasons.push(reason);
                    }
                } else if v.get("recovered").and_then(Value::as_bool) == Some(true) {
                    self.report.recovered += 1;
                    self.report.replayed += v["replayed"].as_u64().unwrap_or(0);
                }
                if let Some(recovered) = v.get("recovered").and_then(Value::as_bool) {
                    let replayed = v["replayed"].as_u64().unwrap_or(0);
                    self.event(LinkEventKind::Resumed {
                        recovered,
                        replayed,
                    });
                }
                if self.position.is_none() {
                    if let (Some(o), Some(e)) = (v["offset"].as_u64(), v["epoch"].as_str()) {
                        self.position = Some((o, e.to_string()));
                        self.note_epoch(e);
                    }
                }
                Ok(())
            }
            Some("error") => Err(format!("relay error: {v}")),
            Some(_) => Ok(()),
            None => {
                let (Some(offset), Some(epoch)) = (v["offset"].as_u64(), v["epoch"].as_str())
                else {
                    return Err(format!("publication without a position: {v}"));
                };
                self.note_epoch(epoch);
                match &self.position {
                    Some((last, e)) if e == epoch => {
                        if offset <= *last {
                            self.report.duplicates += 1;
                            return Ok(());
                        }
                        if offset != last + 1 {
                            self.report.offset_gaps += offset - last - 1;
                        }
                    }
                    _ => {}
                }
                self.position = Some((offset, epoch.to_string()));
                if v["event"] != "stream_event" {
                    return Ok(());
                }
                let data = &v["data"];
                let seq = data["seq"].as_u64().ok_or("stream_event without seq")?;
                match self.seen.get_mut(seq as usize) {
                    Some(true) => self.report.duplicates += 1,
                    Some(slot) => {
                        *slot = true;
                        self.report.received += 1;
                        self.last_new = Instant::now();
                        if let Some(ts) = data["timestamp"].as_f64() {
                            self.latencies.push((now_ms() - ts).max(0.0));
                            self.trace.sent_ms[seq as usize] = Some(ts);
                        }
                    }
                    None => {
                        return Err(format!(
                            "seq {seq} beyond the {} expected",
                            self.plan.expect
                        ))
                    }
                }
                Ok(())
            }
        }
    }

    fn event(&mut self, kind: LinkEventKind) {
        self.trace.events.push(LinkEvent {
            at_ms: now_ms(),
            kind,
        });
    }

    fn note_epoch(&mut self, e: &str) {
        if !self.report.epochs.iter().any(|x| x == e) {
            self.report.epochs.push(e.to_string());
        }
    }

    fn done(&self) -> bool {
        self.report.received >= self.plan.expect
    }

    fn on_frame(&mut self, p: &[u8]) -> Result<(), String> {
        let v: Value = serde_json::from_slice(p).map_err(|e| format!("bad frame: {e}"))?;
        match v {
            Value::Array(items) => items.iter().try_for_each(|i| self.on_value(i)),
            one => self.on_value(&one),
        }
    }

    /// One connection: hello, subscribe (with `since` once it has a position), then follow until done, dead
    /// or ended. `Err` only when no connection could be made.
    async fn connection(&mut self) -> Result<Ended, ConnError> {
        let plan = self.plan.clone();
        let (s, r) = tokio::time::timeout(
            plan.connect_timeout,
            conn::connect(&plan.target, SocketOpts::default()),
        )
        .await
        .map_err(|_| ConnError::Upgrade("connect timed out".into()))??;
        self.report.connections += 1;
        self.event(LinkEventKind::Connected);
        Ok(match self.follow(s, r).await {
            Ok(ended) => ended,
            Err(e) => Ended::Closed(e.to_string()),
        })
    }

    async fn follow(&mut self, mut s: TcpStream, mut r: FrameReader) -> Result<Ended, ConnError> {
        let plan = self.plan.clone();
        s.write_all(&text_frame(
            &serde_json::json!({"type": "hello", "batch": true}),
        ))
        .await?;
        let mut sub = serde_json::json!({"type": "subscribe", "channel": format!("sessions/{}", plan.session), "id": "follow"});
        if let Some((offset, epoch)) = &self.position {
            sub["since"] = serde_json::json!({"offset": offset, "epoch": epoch});
            self.report.resumed += 1;
        }
        s.write_all(&text_frame(&sub)).await?;
        let mut ping = tokio::time::interval(plan.ping_every);
        // The link is dead when nothing at all (data, pong, ping) arrived for `dead_after`.
        let mut last_frame = tokio::time::Instant::now();
        loop {
            if self.done() {
                let _ = s
                    .write_all(&frame::encode(Opcode::Close, &1000u16.to_be_bytes()))
                    .await;
                return Ok(Ended::Done);
            }
            let dead_at = last_frame + plan.dead_after;
            let frame = tokio::select! {
                f = r.next(&mut s) => f,
                _ = tokio::time::sleep_until(dead_at) => return Ok(Ended::Dead),
                _ = ping.tick() => {
                    let p = serde_json::json!({"type": "ping"});
                    // A write to a dead link blocks once the socket buffer is full: bounded like a read.
                    match tokio::time::timeout_at(dead_at, s.write_all(&text_frame(&p))).await {
                        Ok(r) => r?,
                        Err(_) => return Ok(Ended::Dead),
                    }
                    continue;
                }
            };
            last_frame = tokio::time::Instant::now();
            match frame? {
                Some(Msg::Text(p)) => {
                    if let Err(e) = self.on_frame(p) {
                        self.report.first_error.get_or_insert(e);
                    }
                }
                Some(Msg::Ping(p)) => {
                    let pong = conn::pong(p);
                    s.write_all(&pong).await?;
                }
                Some(Msg::Close(c)) => return Ok(Ended::Closed(format!("close {c:?}"))),
                None => return Ok(Ended::Closed("end of stream".into())),
                Some(_) => {}
            }
        }
    }
}

/// Follows the SDK's session until every message arrived or `deadline`; reconnects whatever happens.
pub async fn dashboard(plan: DashboardPlan) -> (DashboardReport, Trace) {
    let started = Instant::now();
    let deadline = started + plan.deadline;
    let mut f = Follow {
        trace: Trace {
            events: Vec::new(),
            sent_ms: vec![None; plan.expect as usize],
        },
        seen: vec![false; plan.expect as usize],
        position: None,
        report: DashboardReport {
            expected: plan.expect,
            ..DashboardReport::default()
        },
        latencies: Vec::new(),
        last_new: Instant::now(),
        plan,
    };
    let mut backoff = Duration::from_millis(100);
    let mut longest = Duration::ZERO;
    while !f.done() && Instant::now() < deadline {
        let before = f.report.received;
        let attempt = tokio::time::timeout(
            deadline.saturating_duration_since(Instant::now()),
            f.connection(),
        )
        .await;
        // Silence is counted only while messages are still to come, from the last new one.
        longest = longest.max(f.last_new.elapsed());
        match attempt {
            Err(_) => break,
            Ok(Ok(Ended::Done)) => break,
            Ok(Ok(Ended::Dead)) => {
                f.report.dead_links += 1;
                f.event(LinkEventKind::DeadLink);
            }
            Ok(Ok(Ended::Closed(why))) => {
                f.report.ended += 1;
                f.event(LinkEventKind::Ended(why.clone()));
                if !f.report.reasons.contains(&why) && f.report.reasons.len() < 8 {
                    f.report.reasons.push(why);
                }
            }
            Ok(Err(_)) => {
                f.report.connect_failures += 1;
                f.event(LinkEventKind::ConnectFailed);
            }
        }
        if f.report.received > before {
            backoff = Duration::from_millis(100);
        } else {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }
    let mut r = f.report;
    r.missing = f.seen.iter().filter(|s| !**s).count() as u64;
    r.longest_silence_secs = longest.as_secs_f64();
    let mut lat = f.latencies;
    lat.sort_by(f64::total_cmp);
    r.latency_p50_ms = lat.get(lat.len() / 2).copied().unwrap_or(0.0);
    r.latency_max_ms = lat.last().copied().unwrap_or(0.0);
    r.elapsed_secs = started.elapsed().as_secs_f64();
    (r, f.trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn follow(expect: u64) -> Follow {
        Follow {
            trace: Trace {
                events: Vec::new(),
                sent_ms: vec![None; expect as usize],
            },
            plan: DashboardPlan {
                target: Target::parse("ws://127.0.0.1:1").unwrap(),
                session: "s".into(),
                expect,
                ping_every: Duration::from_secs(1),
                dead_after: Duration::from_secs(3),
                connect_timeout: Duration::from_secs(2),
                deadline: Duration::from_secs(10),
            },
            seen: vec![false; expect as usize],
            position: None,
            report: DashboardReport {
                expected: expect,
                ..DashboardReport::default()
            },
            latencies: Vec::new(),
            last_new: Instant::now(),
        }
    }

    fn publication(offset: u64, seq: u64) -> String {
        format!(
            r#"{{"channel":"sessions/s","event":"stream_event","data":{{"seq":{seq},"timestamp":1}},"offset":{offset},"epoch":"e1","timestamp":1}}"#
        )
    }

    #[test]
    fn the_accounting_finds_duplicates_gaps_and_missing_messages() {
        let mut f = follow(4);
        f.on_frame(br#"{"type":"ack","id":"follow","success":true,"offset":9,"epoch":"e1"}"#)
            .unwrap();
        f.on_frame(format!("[{},{}]", publication(10, 0), publication(11, 1)).as_bytes())
            .unwrap();
        // A replayed message again (same offset): a duplicate, not a new one.
        f.on_frame(publication(11, 1).as_bytes()).unwrap();
        // Offset 12 skipped.
        f.on_frame(publication(13, 3).as_bytes()).unwrap();
        f.on_frame(br#"{"type":"ack","id":"follow","success":true,"recovered":true,"replayed":3}"#)
            .unwrap();
        assert_eq!(
            (f.report.received, f.report.duplicates, f.report.offset_gaps),
            (3, 1, 1)
        );
        assert_eq!((f.report.recovered, f.report.replayed), (1, 3));
        assert!(!f.done());
        assert!(
            f.on_frame(publication(14, 9).as_bytes()).is_err(),
            "seq out of range"
        );
    }

    #[test]
    fn each_fault_gets_the_messages_and_link_events_of_its_window() {
        // Ten messages, one every 100 ms from t = 1000 ms; seq 6 never arrived (placed at seq 5's time, the
        // nearer earlier neighbour). A fault at 1240–1400 ms, whose window runs to the next at 1600 ms: the link
        // died, a connect failed, and it resumed within it.
        let mut sent: Vec<Option<f64>> = (0..10).map(|i| Some(1000.0 + 100.0 * i as f64)).collect();
        sent[6] = None;
        let at = |at_ms, kind| LinkEvent { at_ms, kind };
        let trace = Trace {
            events: vec![
                at(1000.0, LinkEventKind::Connected),
                at(1300.0, LinkEventKind::DeadLink),
                at(1350.0, LinkEventKind::ConnectFailed),
                at(1450.0, LinkEventKind::Connected),
                at(
                    1460.0,
                    LinkEventKind::Resumed {
                        recovered: true,
                        replayed: 2,
                    },
                ),
                at(1700.0, LinkEventKind::Ended("close".into())),
            ],
            sent_ms: sent,
        };
        let phases = Phase::parse_list("blackhole 1240 1400\nlossy 1600 1800\n").unwrap();
        assert_eq!(phases[1].end_ms, 1800.0);
        let report = DashboardReport {
            expected: 10,
            received: 9,
            missing: 1,
            ..DashboardReport::default()
        };
        let table = phase_table(&report, &trace, &phases);
        let rows: Vec<&str> = table.lines().skip(2).take(3).collect();
        // Healthy start: seqs 0–2; blackhole: 3–6; lossy: 7–9.
        assert_eq!(
            rows[0],
            "| (healthy start) | 0.0 | 0.2 | 3 | 3 | 0 (0 / 0) | 0 | 0 (0) | 0 |"
        );
        assert_eq!(
            rows[1],
            "| blackhole | 0.2 | 0.2 | 4 | 3 | 1 (1 / 0) | 1 | 1 (2) | 0 |"
        );
        assert_eq!(
            rows[2],
            "| lossy | 0.6 | 0.2 | 3 | 3 | 1 (0 / 1) | 0 | 0 (0) | 0 |"
        );
        assert!(table.contains("9 of 10 messages, 1 missing"), "{table}");
        assert!(Phase::parse_list("x 1").is_err());
    }
}
