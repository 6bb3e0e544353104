use serde_json::{json, Value};

use super::*;

/// The page's object as `lib.rs` reads it (numbers spelled as JavaScript's `String(n)` spells these).
fn value(v: &Value) -> OptionValue {
    match v {
        Value::Null => OptionValue::Absent,
        Value::Bool(b) => OptionValue::Bool(*b),
        Value::Number(n) => OptionValue::Number(n.as_f64().unwrap(), n.to_string()),
        Value::String(s) => OptionValue::Text(s.clone()),
        Value::Array(_) => OptionValue::Other("an array"),
        Value::Object(o) => {
            OptionValue::Object(o.iter().map(|(k, v)| (k.clone(), value(v))).collect())
        }
    }
}

fn parse(v: Value) -> Result<Options, OptionsError> {
    Options::from_value(value(&v))
}

/// The rejection of `v`, as (field, received); the message must name both.
fn rejected(v: Value) -> (String, String) {
    let e = parse(v.clone()).expect_err(&v.to_string());
    let message = e.to_string();
    assert!(message.contains(&format!("`{}`", e.field)), "{message}");
    assert!(
        message.contains(&e.expected) && message.contains(&e.received),
        "{message}"
    );
    (e.field, e.received)
}

fn number(n: f64, text: &str) -> OptionValue {
    OptionValue::Number(n, text.to_owned())
}

fn with(field: &str, v: OptionValue) -> OptionValue {
    OptionValue::Object(vec![(field.to_owned(), v)])
}

#[test]
fn defaults_match_the_documented_api() {
    let o = Options::from_value(OptionValue::Absent).unwrap();
    assert_eq!(o, Options::default());
    assert_eq!(parse(json!({})).unwrap(), o);
    assert_eq!(o.url, "ws://localhost:8265");
    assert_eq!(o.event_capacity, 5_000);
    assert_eq!(o.reconnect, ReconnectPolicy::default());
    // (The error messages spell these two out: see `reconnect`.)
    assert_eq!(o.reconnect.initial_delay_ms, 500.0);
    assert_eq!(o.reconnect.max_delay_ms, 10_000.0);
    // null and undefined mean "the default" too (the React hook passes `eventCapacity: undefined`).
    let o = parse(json!({"url": null, "eventCapacity": null, "reconnect": null})).unwrap();
    assert_eq!(o, Options::default());
}

#[test]
fn every_field_is_read() {
    let o = parse(json!({
        "url": "ws://127.0.0.1:1",
        "eventCapacity": 10,
        "reconnect": {"enabled": false, "initialDelayMs": 0, "maxDelayMs": 3_600_000, "multiplier": 1.5,
                      "jitter": 1, "stableAfterMs": 0}
    }))
    .unwrap();
    assert_eq!((o.url.as_str(), o.event_capacity), ("ws://127.0.0.1:1", 10));
    assert_eq!(
        o.reconnect,
        ReconnectPolicy {
            enabled: false,
            initial_delay_ms: 0.0,
            max_delay_ms: MAX_RECONNECT_DELAY_MS,
            multiplier: 1.5,
            jitter: 1.0,
            stable_after_ms: 0.0,
        }
    );
    // A partial reconnect object keeps the other defaults.
    let o = parse(json!({"reconnect": {"enabled": false}})).unwrap();
    assert!(!o.reconnect.enabled);
    assert_eq!(o.reconnect.multiplier, 2.0);
    // The bounds are inclusive.
    assert_eq!(
        parse(json!({"eventCapacity": 0})).unwrap().event_capacity,
        0
    );
    assert_eq!(
        parse(json!({"eventCapacity": 1_000_000}))
            .unwrap()
            .event_capacity,
        MAX_EVENT_CAPACITY
    );
}

#[test]
fn urls_must_be_absolute_ws_or_http_with_a_host() {
    for (given, used) in [
        ("ws://127.0.0.1:8265", "ws://127.0.0.1:8265"),
        (
            "wss://relay.example.com/ws?token=1",
            "wss://relay.example.com/ws?token=1",
        ),
        // http(s) maps to ws(s), as the WHATWG WebSocket standard does.
        ("http://127.0.0.1:8265/", "ws://127.0.0.1:8265/"),
        ("https://relay.example.com", "wss://relay.example.com"),
        ("WS://Relay:1", "ws://Relay:1"),
        ("ws://[::1]:8265", "ws://[::1]:8265"),
        ("ws://user@host", "ws://user@host"),
    ] {
        assert_eq!(parse(json!({"url": given})).unwrap().url, used, "{given}");
    }
    for bad in [
        "not a url",
        "",
        "/relay",
        "127.0.0.1:8265",
        "//127.0.0.1:8265",
        "ws:127.0.0.1",
        "ftp://127.0.0.1",
        "file:///tmp/x",
        "ws://",
        "ws:///path",
        "ws://:8265",
        "ws://@host",
        "ws://?x",
        "ws://#x",
        " ws://127.0.0.1",
    ] {
        let (field, received) = rejected(json!({ "url": bad }));
        assert_eq!(field, "url", "{bad}");
        assert_eq!(received, format!("\"{bad}\""));
    }
    let e = parse(json!({"url": "not a url"})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid DevtoolsConnection option `url`: expected an absolute ws:, wss:, http: or https: URL with a \
         host, e.g. \"ws://127.0.0.1:8265\", got \"not a url\""
    );
    assert_eq!(
        rejected(json!({"url": 8265})),
        ("url".into(), "8265".into())
    );
}

#[test]
fn event_capacity_must_be_a_whole_number_in_range() {
    for (bad, spelled) in [
        (-5.0, "-5"),
        (2.5, "2.5"),
        (1e7, "10000000"),
        (-0.5, "-0.5"),
    ] {
        let e = Options::from_value(with("eventCapacity", number(bad, spelled))).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.received.as_str()),
            ("eventCapacity", spelled)
        );
        assert_eq!(
            e.expected,
            "an integer from 0 to 1000000 (events kept per session)"
        );
    }
    for (bad, spelled) in [(f64::NAN, "NaN"), (f64::INFINITY, "Infinity")] {
        let e = Options::from_value(with("eventCapacity", number(bad, spelled))).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.received.as_str()),
            ("eventCapacity", spelled)
        );
    }
    assert_eq!(
        rejected(json!({"eventCapacity": "10"})),
        ("eventCapacity".into(), "\"10\"".into())
    );
    assert_eq!(
        rejected(json!({"eventCapacity": true})),
        ("eventCapacity".into(), "true".into())
    );
}

#[test]
fn reconnect_delays_are_bounded_and_ordered() {
    let delay = |field: &str, n: f64, text: &str| {
        Options::from_value(with("reconnect", with(field, number(n, text)))).map(|o| o.reconnect)
    };
    // 2^31 ms and more used to reach the browser's 32-bit timer and fire at once.
    for field in ["initialDelayMs", "maxDelayMs"] {
        for (n, text) in [
            (2f64.powi(31), "2147483648"),
            (3_600_001.0, "3600001"),
            (-1.0, "-1"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
        ] {
            let e = delay(field, n, text).unwrap_err();
            assert_eq!(e.field, format!("reconnect.{field}"));
            assert_eq!(
                (e.expected.as_str(), e.received.as_str()),
                ("a number of ms from 0 to 3600000", text)
            );
        }
    }
    // The cap below the first delay: the one the page gave is named, with the other's value.
    let e = parse(json!({"reconnect": {"initialDelayMs": 2000, "maxDelayMs": 1000}})).unwrap_err();
    assert_eq!(e.field, "reconnect.maxDelayMs");
    assert_eq!(e.expected, "at least reconnect.initialDelayMs (2000)");
    let e = parse(json!({"reconnect": {"maxDelayMs": 100}})).unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.expected.as_str()),
        (
            "reconnect.maxDelayMs",
            "at least reconnect.initialDelayMs (500, the default)"
        )
    );
    let e = parse(json!({"reconnect": {"initialDelayMs": 60_000}})).unwrap_err();
    assert_eq!(e.field, "reconnect.initialDelayMs");
    assert_eq!(
        e.expected,
        "at most reconnect.maxDelayMs (10000, the default)"
    );
    assert_eq!(e.received, "60000");
    // Equal is fine.
    let r = parse(json!({"reconnect": {"initialDelayMs": 700, "maxDelayMs": 700}}))
        .unwrap()
        .reconnect;
    assert_eq!((r.initial_delay_ms, r.max_delay_ms), (700.0, 700.0));
}

#[test]
fn other_reconnect_fields_are_checked() {
    for (field, v, received) in [
        ("multiplier", json!(0.5), "0.5"),
        ("jitter", json!(1.5), "1.5"),
        ("jitter", json!(-0.1), "-0.1"),
        ("stableAfterMs", json!(-1), "-1"),
        ("enabled", json!("yes"), "\"yes\""),
        ("enabled", json!(1), "1"),
    ] {
        let (f, r) = rejected(json!({ "reconnect": { field: v } }));
        assert_eq!((f, r), (format!("reconnect.{field}"), received.to_owned()));
    }
    let e = Options::from_value(with(
        "reconnect",
        with("multiplier", number(f64::INFINITY, "Infinity")),
    ))
    .unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.expected.as_str()),
        ("reconnect.multiplier", "a finite number >= 1")
    );
    assert_eq!(
        rejected(json!({"reconnect": 5})),
        ("reconnect".into(), "5".into())
    );
    assert_eq!(
        rejected(json!({"reconnect": true})),
        ("reconnect".into(), "true".into())
    );
}

#[test]
fn unknown_options_and_non_objects_are_rejected() {
    let e = parse(json!({"eventCapcity": 10})).unwrap_err();
    assert_eq!(e.field, "eventCapcity");
    assert_eq!(
        e.expected,
        "no such option (known: url, reconnect, eventCapacity, token, protocol, helloTimeoutMs, \
         heartbeatIntervalMs, followSelected, maxInFlightPublishes)"
    );
    let e = parse(json!({"reconnect": {"maxDelay": 10}})).unwrap_err();
    assert_eq!(e.field, "reconnect.maxDelay");
    // An unknown key set to undefined is what `{...defaults, typo: undefined}` produces: harmless, accepted.
    assert!(parse(json!({"somethingElse": null})).is_ok());
    for (v, received) in [
        (
            OptionValue::Text("ws://127.0.0.1".into()),
            "\"ws://127.0.0.1\"",
        ),
        (number(5.0, "5"), "5"),
        (OptionValue::Other("an array"), "an array"),
        (OptionValue::Other("a function"), "a function"),
    ] {
        let e = Options::from_value(v).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.expected.as_str(), e.received.as_str()),
            ("options", "an object", received)
        );
    }
    let e = Options::from_value(with("url", OptionValue::Other("a function"))).unwrap_err();
    assert_eq!(
        (e.field.as_str(), e.received.as_str()),
        ("url", "a function")
    );
}

#[test]
fn the_token_is_a_string_and_never_leaks_into_messages() {
    assert_eq!(
        parse(json!({"token": "abc"})).unwrap().token.as_deref(),
        Some("abc")
    );
    assert_eq!(parse(json!({"token": ""})).unwrap().token, None);
    assert_eq!(parse(json!({"token": null})).unwrap().token, None);
    let (field, received) = rejected(json!({"token": 5}));
    assert_eq!((field.as_str(), received.as_str()), ("token", "5"));
    let long = "t".repeat(MAX_TOKEN_BYTES + 1);
    let e = parse(json!({ "token": long })).unwrap_err();
    assert_eq!(e.field, "token");
}

#[test]
fn protocol_follow_and_publish_options() {
    let o = parse(json!({})).unwrap();
    assert_eq!(o.protocol, ProtocolChoice::Auto);
    assert_eq!(o.hello_timeout_ms, DEFAULT_HELLO_TIMEOUT_MS);
    assert!(!o.follow_selected);
    assert_eq!(o.max_in_flight_publishes, 256);
    assert_eq!(o.heartbeat_interval_ms, DEFAULT_HEARTBEAT_INTERVAL_MS);
    for ms in [100.0, 3_600_000.0] {
        let o = parse(json!({ "heartbeatIntervalMs": ms })).unwrap();
        assert_eq!(o.heartbeat_interval_ms, ms);
    }
    let o = parse(
        json!({"protocol": "legacy", "helloTimeoutMs": 100, "followSelected": true,
        "maxInFlightPublishes": 65_536}),
    )
    .unwrap();
    assert_eq!(
        (
            o.protocol,
            o.hello_timeout_ms,
            o.follow_selected,
            o.max_in_flight_publishes
        ),
        (ProtocolChoice::Legacy, 100.0, true, MAX_IN_FLIGHT_PUBLISHES)
    );
    assert_eq!(
        o.store(),
        StoreOptions {
            event_capacity: 5_000,
            protocol: ProtocolChoice::Legacy,
            follow_selected: true,
            max_in_flight_publishes: MAX_IN_FLIGHT_PUBLISHES,
        }
    );
    assert_eq!(
        parse(json!({"protocol": "v2"})).unwrap().protocol,
        ProtocolChoice::V2
    );
    for (v, field, received) in [
        (json!({"protocol": "v3"}), "protocol", "\"v3\""),
        (json!({"protocol": 2}), "protocol", "2"),
        (json!({"helloTimeoutMs": 99}), "helloTimeoutMs", "99"),
        (json!({"helloTimeoutMs": 60_001}), "helloTimeoutMs", "60001"),
        (
            json!({"heartbeatIntervalMs": 99}),
            "heartbeatIntervalMs",
            "99",
        ),
        (
            json!({"heartbeatIntervalMs": -1}),
            "heartbeatIntervalMs",
            "-1",
        ),
        (
            json!({"heartbeatIntervalMs": 3_600_001}),
            "heartbeatIntervalMs",
            "3600001",
        ),
        (
            json!({"followSelected": "yes"}),
            "followSelected",
            "\"yes\"",
        ),
        (
            json!({"maxInFlightPublishes": 0}),
            "maxInFlightPublishes",
            "0",
        ),
        (
            json!({"maxInFlightPublishes": 1.5}),
            "maxInFlightPublishes",
            "1.5",
        ),
        (
            json!({"maxInFlightPublishes": 65_537}),
            "maxInFlightPublishes",
            "65537",
        ),
    ] {
        assert_eq!(rejected(v), (field.into(), received.into()));
    }
}
