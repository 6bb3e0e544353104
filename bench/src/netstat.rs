//! The kernel's TCP counters (`/proc/net/netstat`, `/proc/net/snmp`), read before and after a scenario so a
//! report can say what the network stack did meanwhile: accept-queue overflows, dropped SYNs, retransmits.
//!
//! The counters are per network namespace, not per process: other traffic on the machine during the run adds
//! to them, so a report states them as "during the run", not as the relay's alone.

use std::collections::BTreeMap;

/// The counters a connect-latency investigation needs (see BENCHMARKS.md, scenario d).
pub const WATCHED: &[&str] = &[
    "TcpExt.ListenOverflows",
    "TcpExt.ListenDrops",
    "TcpExt.TCPReqQFullDrop",
    "TcpExt.TCPReqQFullDoCookies",
    "TcpExt.SyncookiesSent",
    "TcpExt.TCPTimeouts",
    "TcpExt.TCPSynRetrans",
    "Tcp.RetransSegs",
    "Tcp.ActiveOpens",
    "Tcp.PassiveOpens",
    "Tcp.AttemptFails",
];

/// Parses the "Prefix: name name …" / "Prefix: value value …" line pairs of `/proc/net/netstat` and
/// `/proc/net/snmp` into `Prefix.name → value`.
pub fn parse(text: &str) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let (Some((prefix, names)), Some((vprefix, values))) =
            (names.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        if prefix != vprefix {
            continue;
        }
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            if let Ok(v) = v.parse::<i64>() {
                out.insert(format!("{prefix}.{n}"), v);
            }
        }
    }
    out
}

/// The current counters of this network namespace (empty where `/proc/net` is not readable).
pub fn read() -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for f in ["/proc/net/netstat", "/proc/net/snmp"] {
        if let Ok(text) = std::fs::read_to_string(f) {
            out.extend(parse(&text));
        }
    }
    out
}

/// How much each [`WATCHED`] counter grew from `before` to `after`.
pub fn delta(
    before: &BTreeMap<String, i64>,
    after: &BTreeMap<String, i64>,
) -> BTreeMap<String, i64> {
    WATCHED
        .iter()
        .filter_map(|k| Some((k.to_string(), after.get(*k)? - before.get(*k)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_value_pairs_and_computes_deltas() {
        let a = parse(
            "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 3 4\n\
             Tcp: RtoAlgorithm RetransSegs\nTcp: 1 10\n",
        );
        assert_eq!(a["TcpExt.ListenOverflows"], 3);
        assert_eq!(a["Tcp.RetransSegs"], 10);
        let mut b = a.clone();
        b.insert("TcpExt.ListenOverflows".into(), 5);
        let d = delta(&a, &b);
        assert_eq!(d["TcpExt.ListenOverflows"], 2);
        assert_eq!(d["Tcp.RetransSegs"], 0);
        assert!(
            !d.contains_key("TcpExt.TCPSynRetrans"),
            "absent counters are left out"
        );
        // This machine's own counters parse (Linux); the values are not asserted.
        assert!(read().contains_key("Tcp.ActiveOpens"));
    }
}
