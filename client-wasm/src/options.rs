//! `DevtoolsConnectionOptions`: what the dashboard may configure, the documented defaults and bounds, and the
//! validation that turns the page's untyped object into them (or an error naming the field).
//!
//! The options arrive from JavaScript, so nothing about their types is guaranteed. `lib.rs` reads the object into
//! an [`OptionValue`] tree exactly as the page wrote it (NaN stays NaN, a function stays a function: a JSON round
//! trip would turn NaN into `null` and drop functions), and [`Options::from_value`] checks every field, so a bad
//! value is rejected at construction with the field, what it accepts and what it got, instead of failing later
//! (a relative URL retried for ever, a capacity of 2.5, a reconnect delay that overflows the browser's timer).

use devrelay_protocol::limits::DEFAULT_PORT;

use crate::backoff::ReconnectPolicy;
use crate::store::{
    ProtocolChoice, StoreOptions, DEFAULT_EVENT_CAPACITY, DEFAULT_MAX_IN_FLIGHT_PUBLISHES,
};

/// Largest `eventCapacity`, events per session: the ring is memory the page keeps per connected client.
pub const MAX_EVENT_CAPACITY: usize = 1_000_000;

/// Largest `reconnect.initialDelayMs` / `reconnect.maxDelayMs`, ms (one hour). The browser's timers count in
/// signed 32-bit milliseconds (~24.8 days) and fire at once beyond that; an hour between attempts is already a
/// dashboard nobody is watching.
pub const MAX_RECONNECT_DELAY_MS: f64 = 3_600_000.0;

/// Default `helloTimeoutMs`: how long a new socket waits for the relay's answer to `hello` before speaking seed
/// 000 (a seed-000 server ignores unknown types and never answers). A v2 relay answers in one round trip.
pub const DEFAULT_HELLO_TIMEOUT_MS: f64 = 2_000.0;

/// Default `heartbeatIntervalMs`: a v2 socket sends `ping` this often, and one from which nothing arrived for two
/// of them is taken for dead (browsers do not show WebSocket pings to pages, so a relay that went silent — a
/// dropped network path, a relay that closed us as a slow consumer while our tab was throttled — would
/// otherwise look connected for ever).
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: f64 = 15_000.0;

/// Largest `maxInFlightPublishes`.
pub const MAX_IN_FLIGHT_PUBLISHES: usize = 65_536;

/// Options of `new DevtoolsConnection(options)`; every field is optional.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Relay WebSocket URL (`ws:` or `wss:`; an `http:`/`https:` URL given by the page is mapped to it).
    pub url: String,
    pub reconnect: ReconnectPolicy,
    /// Events kept per session (ring buffer); older ones are dropped and counted.
    pub event_capacity: usize,
    /// The relay's dashboard token, sent in the first message of every socket (never in the URL).
    pub token: Option<String>,
    /// `"auto"` (v2, falling back to seed 000), `"v2"` or `"legacy"`.
    pub protocol: ProtocolChoice,
    /// Wait for `connected` this long before falling back to seed 000 (`"auto"` only), ms.
    pub hello_timeout_ms: f64,
    /// `ping` period of a v2 socket, ms; silent for two periods, it is closed and a new one opened.
    pub heartbeat_interval_ms: f64,
    /// Subscribe to the selected sessions only instead of `sessions/*`.
    pub follow_selected: bool,
    /// Publishes waiting for their answer at most; more are refused at once (`TOO_MANY_IN_FLIGHT`).
    pub max_in_flight_publishes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            url: format!("ws://localhost:{DEFAULT_PORT}"),
            reconnect: ReconnectPolicy::default(),
            event_capacity: DEFAULT_EVENT_CAPACITY,
            token: None,
            protocol: ProtocolChoice::Auto,
            hello_timeout_ms: DEFAULT_HELLO_TIMEOUT_MS,
            heartbeat_interval_ms: DEFAULT_HEARTBEAT_INTERVAL_MS,
            follow_selected: false,
            max_in_flight_publishes: DEFAULT_MAX_IN_FLIGHT_PUBLISHES,
        }
    }
}

impl Options {
    /// What the store needs of them.
    pub fn store(&self) -> StoreOptions {
        StoreOptions {
            event_capacity: self.event_capacity,
            protocol: self.protocol,
            follow_selected: self.follow_selected,
            max_in_flight_publishes: self.max_in_flight_publishes,
        }
    }
}

/// Longest `token`, bytes.
pub const MAX_TOKEN_BYTES: usize = 1024;

/// One value of the page's options object, as JavaScript typed it.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    /// `undefined` or `null`: the field takes its default.
    Absent,
    Bool(bool),
    /// A number and its JavaScript spelling (`String(n)`), used in error messages: formatting an `f64` in Rust
    /// would link core's float printing into the wasm (~7 KB gzip).
    Number(f64, String),
    Text(String),
    /// A plain object's own enumerable properties, in order.
    Object(Vec<(String, OptionValue)>),
    /// Anything else, described for the error message: "an array", "a function", "a bigint", "a symbol".
    Other(&'static str),
}

impl OptionValue {
    /// How the error message describes what the page passed.
    pub fn describe(&self) -> String {
        match self {
            OptionValue::Absent => "undefined".to_owned(),
            OptionValue::Bool(b) => if *b { "true" } else { "false" }.to_owned(),
            OptionValue::Number(_, text) => text.clone(),
            OptionValue::Text(s) => {
                let mut out = String::with_capacity(s.len() + 2);
                out.push('"');
                out.push_str(s);
                out.push('"');
                out
            }
            OptionValue::Object(_) => "an object".to_owned(),
            OptionValue::Other(what) => (*what).to_owned(),
        }
    }
}

/// An option the constructor rejects: which one, what it accepts, what it got. Thrown to the page as a
/// `TypeError` named `DevtoolsOptionsError` with these as `field`, `expected` and `received`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid DevtoolsConnection option `{field}`: expected {expected}, got {received}")]
pub struct OptionsError {
    /// Path of the option, e.g. `reconnect.maxDelayMs`; `options` for the object itself.
    pub field: String,
    /// What it accepts, e.g. "an integer from 0 to 1000000".
    pub expected: String,
    /// What the page passed, as JavaScript spells it.
    pub received: String,
}

/// The error for option `prefix` + `name` (e.g. "reconnect." + "maxDelayMs"). Not inlined: it is called from
/// every check, and one copy keeps the wasm small.
#[inline(never)]
fn error(prefix: &str, name: &str, expected: &str, received: String) -> OptionsError {
    let mut field = String::with_capacity(prefix.len() + name.len());
    field.push_str(prefix);
    field.push_str(name);
    OptionsError {
        field,
        expected: expected.to_owned(),
        received,
    }
}

/// The members of one options object (`prefix` "" for the options, "reconnect." for `reconnect`), each taken
/// at most once; what is left over is an unknown option.
struct Fields {
    prefix: &'static str,
    entries: Vec<(String, OptionValue)>,
}

impl Fields {
    /// The members of `value`, which must be an object or absent; `name` is its own name in an error.
    fn of(name: &str, prefix: &'static str, value: OptionValue) -> Result<Fields, OptionsError> {
        match value {
            OptionValue::Absent => Ok(Fields {
                prefix,
                entries: Vec::new(),
            }),
            OptionValue::Object(entries) => Ok(Fields { prefix, entries }),
            other => Err(error("", name, "an object", other.describe())),
        }
    }

    fn take(&mut self, name: &str) -> OptionValue {
        match self.entries.iter().position(|(k, _)| k == name) {
            Some(i) => self.entries.remove(i).1,
            None => OptionValue::Absent,
        }
    }

    fn error(&self, name: &str, expected: &str, received: String) -> OptionsError {
        error(self.prefix, name, expected, received)
    }

    /// Fails on the first option nobody took: a typo such as `eventCapcity` would otherwise be silently ignored.
    /// (A leftover `undefined` is what `{...defaults, typo: undefined}` produces: harmless, accepted.)
    fn finish(&self, known: &str) -> Result<(), OptionsError> {
        match self
            .entries
            .iter()
            .find(|(_, v)| !matches!(v, OptionValue::Absent))
        {
            None => Ok(()),
            Some((name, value)) => {
                let mut expected = String::from("no such option (known: ");
                expected.push_str(known);
                expected.push(')');
                Err(self.error(name, &expected, value.describe()))
            }
        }
    }

    fn bool(&mut self, name: &str, default: bool) -> Result<bool, OptionsError> {
        match self.take(name) {
            OptionValue::Absent => Ok(default),
            OptionValue::Bool(b) => Ok(b),
            other => Err(self.error(name, "a boolean", other.describe())),
        }
    }

    /// The number `rule` describes, or `default` when absent (then `text` is empty).
    fn number(&mut self, rule: &NumberRule, default: f64) -> Result<Number, OptionsError> {
        match self.take(rule.name) {
            OptionValue::Absent => Ok(Number {
                value: default,
                text: String::new(),
            }),
            // `!(min <= n && n <= max)` rather than `n < min || n > max`: NaN fails every comparison.
            OptionValue::Number(value, text)
                if value >= rule.min
                    && value <= rule.max
                    && (!rule.whole || value.fract() == 0.0) =>
            {
                Ok(Number { value, text })
            }
            other => Err(self.error(rule.name, rule.expected, other.describe())),
        }
    }
}

/// A numeric option: its name, inclusive range, whether it must be whole, and what the error says it accepts.
struct NumberRule {
    name: &'static str,
    min: f64,
    max: f64,
    whole: bool,
    expected: &'static str,
}

const EVENT_CAPACITY: NumberRule = NumberRule {
    name: "eventCapacity",
    min: 0.0,
    max: MAX_EVENT_CAPACITY as f64,
    whole: true,
    expected: "an integer from 0 to 1000000 (events kept per session)",
};

const HELLO_TIMEOUT: NumberRule = NumberRule {
    name: "helloTimeoutMs",
    min: 100.0,
    max: 60_000.0,
    whole: false,
    expected: "a number of ms from 100 to 60000",
};

const HEARTBEAT_INTERVAL: NumberRule = NumberRule {
    name: "heartbeatIntervalMs",
    min: 100.0,
    max: 3_600_000.0,
    whole: false,
    expected: "a number of ms from 100 to 3600000",
};

const MAX_IN_FLIGHT: NumberRule = NumberRule {
    name: "maxInFlightPublishes",
    min: 1.0,
    max: MAX_IN_FLIGHT_PUBLISHES as f64,
    whole: true,
    expected: "an integer from 1 to 65536 (publishes waiting for their answer)",
};

const DELAY: &str = "a number of ms from 0 to 3600000";

/// `reconnect`'s numbers, in `ReconnectPolicy` order: checked in one loop (a table is smaller wasm than five
/// copies of the check).
const RECONNECT_NUMBERS: [NumberRule; 5] = [
    NumberRule {
        name: "initialDelayMs",
        min: 0.0,
        max: MAX_RECONNECT_DELAY_MS,
        whole: false,
        expected: DELAY,
    },
    NumberRule {
        name: "maxDelayMs",
        min: 0.0,
        max: MAX_RECONNECT_DELAY_MS,
        whole: false,
        expected: DELAY,
    },
    NumberRule {
        name: "multiplier",
        min: 1.0,
        max: f64::MAX,
        whole: false,
        expected: "a finite number >= 1",
    },
    NumberRule {
        name: "jitter",
        min: 0.0,
        max: 1.0,
        whole: false,
        expected: "a number from 0 to 1",
    },
    NumberRule {
        name: "stableAfterMs",
        min: 0.0,
        max: f64::MAX,
        whole: false,
        expected: "a finite number of ms >= 0",
    },
];

/// A number the page gave (with its spelling, for later messages), or the default (spelling empty).
struct Number {
    value: f64,
    text: String,
}

/// `n` as the page spelled it, or `default` (the default's spelling) when it was absent. (Spelled out rather
/// than formatted: formatting numbers in Rust would grow the wasm.)
fn spelled<'a>(n: &'a Number, default: &'a str) -> &'a str {
    if n.text.is_empty() {
        default
    } else {
        &n.text
    }
}

/// Checks the relay URL and maps `http:`/`https:` to `ws:`/`wss:` (what the WHATWG WebSocket standard does too,
/// so a relay's HTTP address works as given). This rejects what is not an absolute URL of those schemes with an
/// authority (a relative one would be resolved against the page and retried for ever); the browser's own URL
/// parser then judges the rest when the constructor opens the socket (a bad host or port, a #fragment), and the
/// constructor reports its verdict the same way.
pub fn relay_url(text: &str) -> Result<String, &'static str> {
    // Byte scans rather than `str` patterns: `split_once("://")` alone links a substring searcher (~1 KB gzip).
    let colon = text.bytes().position(|b| b == b':').ok_or(URL)?;
    let scheme = text.get(..colon).ok_or(URL)?;
    let scheme = if scheme.eq_ignore_ascii_case("ws") || scheme.eq_ignore_ascii_case("http") {
        "ws"
    } else if scheme.eq_ignore_ascii_case("wss") || scheme.eq_ignore_ascii_case("https") {
        "wss"
    } else {
        return Err(URL);
    };
    let rest = text
        .get(colon + 1..)
        .ok_or(URL)?
        .strip_prefix("//")
        .ok_or(URL)?;
    if matches!(
        rest.bytes().next(),
        None | Some(b'/' | b'?' | b'#' | b':' | b'@')
    ) {
        return Err(URL); // no host
    }
    let mut url = String::with_capacity(text.len() + 1);
    url.push_str(scheme);
    url.push_str("://");
    url.push_str(rest);
    Ok(url)
}

/// What `url` accepts.
pub const URL: &str =
    "an absolute ws:, wss:, http: or https: URL with a host, e.g. \"ws://127.0.0.1:8265\"";

impl Options {
    /// The options the page passed, every field checked; absent fields take their defaults.
    pub fn from_value(value: OptionValue) -> Result<Options, OptionsError> {
        let d = Options::default();
        let mut fields = Fields::of("options", "", value)?;
        let url = match fields.take("url") {
            OptionValue::Absent => d.url,
            OptionValue::Text(text) => relay_url(&text).map_err(|expected| {
                fields.error("url", expected, OptionValue::Text(text).describe())
            })?,
            other => {
                return Err(fields.error("url", "a string (the relay's URL)", other.describe()))
            }
        };
        let capacity = fields.number(&EVENT_CAPACITY, d.event_capacity as f64)?;
        let reconnect = reconnect(fields.take("reconnect"), d.reconnect)?;
        let token = match fields.take("token") {
            OptionValue::Absent => None,
            // An empty token is no token (a page passing `sessionStorage.getItem(...) ?? ""`).
            OptionValue::Text(t) if t.is_empty() => None,
            OptionValue::Text(t) if t.len() <= MAX_TOKEN_BYTES => Some(t),
            other => {
                return Err(fields.error(
                    "token",
                    "a string of at most 1024 bytes (the relay's dashboard token)",
                    other.describe(),
                ))
            }
        };
        let protocol = match fields.take("protocol") {
            OptionValue::Absent => d.protocol,
            OptionValue::Text(t) if t == "auto" => ProtocolChoice::Auto,
            OptionValue::Text(t) if t == "v2" => ProtocolChoice::V2,
            OptionValue::Text(t) if t == "legacy" => ProtocolChoice::Legacy,
            other => {
                return Err(fields.error(
                    "protocol",
                    "\"auto\", \"v2\" or \"legacy\"",
                    other.describe(),
                ))
            }
        };
        let hello_timeout = fields.number(&HELLO_TIMEOUT, d.hello_timeout_ms)?;
        let heartbeat = fields.number(&HEARTBEAT_INTERVAL, d.heartbeat_interval_ms)?;
        let follow_selected = fields.bool("followSelected", d.follow_selected)?;
        let in_flight = fields.number(&MAX_IN_FLIGHT, d.max_in_flight_publishes as f64)?;
        fields.finish(
            "url, reconnect, eventCapacity, token, protocol, helloTimeoutMs, heartbeatIntervalMs, followSelected, maxInFlightPublishes",
        )?;
        Ok(Options {
            url,
            reconnect,
            event_capacity: capacity.value as usize,
            token,
            protocol,
            hello_timeout_ms: hello_timeout.value,
            heartbeat_interval_ms: heartbeat.value,
            follow_selected,
            max_in_flight_publishes: in_flight.value as usize,
        })
    }
}

fn reconnect(value: OptionValue, d: ReconnectPolicy) -> Result<ReconnectPolicy, OptionsError> {
    let mut f = Fields::of("reconnect", "reconnect.", value)?;
    let enabled = f.bool("enabled", d.enabled)?;
    let defaults = [
        d.initial_delay_ms,
        d.max_delay_ms,
        d.multiplier,
        d.jitter,
        d.stable_after_ms,
    ];
    let mut n = Vec::with_capacity(RECONNECT_NUMBERS.len());
    for (rule, default) in RECONNECT_NUMBERS.iter().zip(defaults) {
        n.push(f.number(rule, default)?);
    }
    f.finish("enabled, initialDelayMs, maxDelayMs, multiplier, jitter, stableAfterMs")?;
    let (initial, max) = (&n[0], &n[1]);
    if max.value < initial.value {
        // Name the one the page gave (if it gave both: the cap), compared with the other's value.
        let (name, mut expected, bound, received) = if max.text.is_empty() {
            let bound = spelled(max, "10000, the default");
            (
                "initialDelayMs",
                String::from("at most reconnect.maxDelayMs ("),
                bound,
                &initial.text,
            )
        } else {
            let bound = spelled(initial, "500, the default");
            (
                "maxDelayMs",
                String::from("at least reconnect.initialDelayMs ("),
                bound,
                &max.text,
            )
        };
        expected.push_str(bound);
        expected.push(')');
        return Err(f.error(name, &expected, received.clone()));
    }
    Ok(ReconnectPolicy {
        enabled,
        initial_delay_ms: n[0].value,
        max_delay_ms: n[1].value,
        multiplier: n[2].value,
        jitter: n[3].value,
        stable_after_ms: n[4].value,
    })
}

#[cfg(test)]
mod tests;
