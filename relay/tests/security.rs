//! Authentication, roles and Origins over real sockets: every cell of the matrix in docs/protocol.md
//! ("Authentication") — each role (dashboard token, agent token, no token on loopback, no token from another
//! machine, a page from a foreign Origin) against each thing it may or may not do, in both protocols and over
//! HTTP — plus the seed-000 SDK flow without a token, byte for byte, and the binary's token file.

mod util;

use devrelay::{Auth, Config, Token};
use serde_json::{json, Value};
use util::{http_get, Client, Relay, V2};

const DASH: &str = "dashboard-token-for-tests-0123";
const AGENT: &str = "agent-token-for-tests-0123";

fn tokens() -> Config {
    Config {
        auth: Auth::Tokens {
            dashboard: Token::new(DASH).unwrap(),
            agent: Some(Token::new(AGENT).unwrap()),
        },
        ..Config::default()
    }
}

fn with(url: &str, token: &str) -> String {
    format!("{url}/?token={token}")
}

/// The refusal a connection gets: the `error` (its code and message), then the close (its code).
async fn refused(c: &mut Client) -> (String, String, u16) {
    let e = c.recv_value().await;
    assert_eq!(e["type"], "error", "{e}");
    let (code, reason) = c.closed().await;
    assert!(!reason.is_empty(), "a close says why");
    (
        e["code"].as_str().unwrap().to_string(),
        e["message"].as_str().unwrap().to_string(),
        code,
    )
}

fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn seed_000_dashboards_need_the_dashboard_token() {
    let relay = Relay::start(tokens()).await;
    let url = relay.url();
    let subscribe = r#"{"type":"subscribe_dashboard"}"#;

    // No token: refused with the reason and the way to fix it, then 4501 (do not reconnect).
    let mut c = Client::connect(&url).await;
    c.send_text(subscribe).await;
    let (err, message, close) = refused(&mut c).await;
    assert_eq!((err.as_str(), close), ("unauthorized", 4501));
    assert!(message.contains("#token="), "{message}");

    // A wrong token on the upgrade: closed at once with 4501 and the reason (browsers see no HTTP status).
    let mut c = Client::connect(&with(&url, "not-the-token-0123456789")).await;
    let (close, reason) = c.closed().await;
    assert_eq!(close, 4501);
    assert!(reason.contains("wrong"), "{reason}");
    // ... or in the first message.
    let mut c = Client::connect(&url).await;
    c.send_text(r#"{"type":"subscribe_dashboard","token":"not-the-token-0123456789"}"#)
        .await;
    assert_eq!(refused(&mut c).await.2, 4501);

    // The agent token makes agents, not dashboards.
    let mut c = Client::connect(&with(&url, AGENT)).await;
    c.send_text(subscribe).await;
    let (err, _, close) = refused(&mut c).await;
    assert_eq!((err.as_str(), close), ("forbidden", 4502));

    // The dashboard token, however it comes: ?token=, Authorization: Bearer, or the first message.
    let (_d1, _) = Client::dashboard(&with(&url, DASH)).await;
    let bearer = format!("Bearer {DASH}");
    let mut d2 = Client::connect_with(&url, &[("authorization", &bearer)])
        .await
        .unwrap();
    d2.send_text(subscribe).await;
    assert_eq!(d2.recv_value().await["type"], "client_list");
    let mut d3 = Client::connect(&url).await;
    d3.send_json(json!({"type": "subscribe_dashboard", "token": DASH}))
        .await;
    assert_eq!(d3.recv_value().await["type"], "client_list");
    assert_eq!(relay.stats().await["authFailures"], 4);
}

#[tokio::test]
async fn a_seed_000_sdk_without_a_token_works_exactly_as_before_and_may_do_nothing_else() {
    let relay = Relay::start(tokens()).await;
    let (mut dash, _) = Client::dashboard(&relay.dash()).await;
    let mut sdk = Client::connect(&relay.url()).await;
    sdk.send_text(
        r#"{"type":"handshake","protocolVersion":1,"sdkVersion":"1.0.1","sessionId":"test-123"}"#,
    )
    .await;
    // The same bytes the seed-000 server answers, and dashboards see the SDK's own bytes.
    assert_eq!(
        sdk.recv_text().await,
        format!(
            r#"{{"type":"handshake_ack","sessionId":"test-123","serverVersion":"{}"}}"#,
            devrelay::VERSION
        )
    );
    assert_eq!(
        dash.recv_text()
            .await
            .split(r#","connectedAt""#)
            .next()
            .unwrap(),
        r#"{"type":"client_connected","sessionId":"test-123","sdkVersion":"1.0.1""#
    );
    let event = r#"{"type":"stream_event","sessionId":"test-123","timestamp":1,"threadId":"t","event":{"type":"RUN_STARTED"},"seq":1}"#;
    sdk.send_text(event).await;
    assert_eq!(
        dash.recv_text().await,
        format!(r#"{{"type":"stream_event_update","sessionId":"test-123","event":{event}}}"#)
    );
    // It cannot read other sessions or ask them for anything: dashboard messages are the wrong role.
    for msg in [
        r#"{"type":"subscribe_dashboard"}"#,
        r#"{"type":"request_client_snapshot","sessionId":"test-123"}"#,
        r#"{"type":"request_client_list"}"#,
    ] {
        sdk.send_text(msg).await;
        let e = sdk.recv_value().await;
        assert_eq!(code(&e), "wrong_role", "{msg}: {e}");
    }
    // v2's dashboard messages are refused by role too (not "unknown"), and the connection stays.
    for msg in [
        r#"{"type":"command","id":"c1","agentId":"a1","command":"ls"}"#,
        r#"{"type":"cancel","id":"c1","agentId":"a1"}"#,
        r#"{"type":"permission_response","requestId":"r1","allowed":true}"#,
        r#"{"type":"subscribe","channel":"sessions/other"}"#,
    ] {
        sdk.send_text(msg).await;
        let e = sdk.recv_value().await;
        assert_eq!(code(&e), "wrong_role", "{msg}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains("seed-000 SDK"),
            "{e}"
        );
    }
    // ... nor publish for another session.
    sdk.send_text(&event.replace("test-123", "other")).await;
    assert_eq!(code(&sdk.recv_value().await), "session_mismatch");
    relay.shutdown.cancel();
}

#[tokio::test]
async fn v2_roles_the_whole_matrix() {
    let relay = Relay::start(tokens()).await;
    let url = relay.url();
    let publish =
        |channel: &str| json!({"type": "publish", "channel": channel, "event": "x", "data": 1});

    // A dashboard: hello with the token, or with it on the URL.
    let (mut dash, connected) = V2::hello(&url, json!({"token": DASH, "batch": true})).await;
    assert_eq!(connected["role"], "dashboard");
    let (_dash2, connected) = V2::hello(&with(&url, DASH), json!({})).await;
    assert_eq!(connected["role"], "dashboard");
    dash.subscribe("global").await;
    dash.subscribe("sessions/*").await;
    dash.subscribe("agents/*").await;

    // A hello without identity and without the dashboard token is a dashboard's, refused: 4501.
    let mut anon = V2::connect(&url).await;
    anon.send(json!({"type": "hello"})).await;
    let e = anon.next().await;
    assert_eq!(code(&e), "UNAUTHORIZED", "{e}");
    assert_eq!(anon.c.closed().await.0, 4501);
    // Likewise a first message that only a dashboard sends.
    for first in [
        json!({"type": "subscribe", "channel": "global", "id": 1}),
        json!({"type": "request_snapshot", "sessionId": "s", "id": 1}),
    ] {
        let mut c = V2::connect(&url).await;
        c.send(first.clone()).await;
        assert_eq!(c.next().await["type"], "connected");
        let e = c.next().await;
        assert_eq!((code(&e), &e["id"]), ("UNAUTHORIZED", &json!(1)), "{first}");
        assert_eq!(c.c.closed().await.0, 4501, "{first}");
    }

    // An SDK: a session without a token (loopback). It publishes its own session and nothing else, and may not
    // read or ask for anything; the connection stays.
    let (mut sdk, connected) = V2::hello(&url, json!({"sessionId": "s1"})).await;
    assert_eq!(connected["role"], "sdk");
    let presence = dash.until(|m| m["event"] == "session.connected").await;
    assert_eq!(presence["data"]["id"], "s1");
    assert!(presence["data"].get("origin").is_none(), "{presence}");
    let ok = sdk.request(publish("sessions/s1"), "own").await;
    assert_eq!(ok["type"], "ack", "{ok}");
    for (msg, want) in [
        (publish("sessions/s2"), "FORBIDDEN"),
        (publish("topics/a"), "FORBIDDEN"),
        (publish("agents/a1"), "FORBIDDEN"),
        (publish("global"), "FORBIDDEN"),
        (
            json!({"type": "subscribe", "channel": "sessions/s1"}),
            "FORBIDDEN",
        ),
        (
            json!({"type": "subscribe", "channel": "global"}),
            "FORBIDDEN",
        ),
        (
            json!({"type": "subscribe", "channel": "sessions/*"}),
            "FORBIDDEN",
        ),
        (
            json!({"type": "request_snapshot", "sessionId": "s1"}),
            "FORBIDDEN",
        ),
    ] {
        let e = sdk.request(msg.clone(), "no").await;
        assert_eq!(code(&e), want, "{msg}: {e}");
    }
    // An SDK cannot become an agent: that needs a token, and authentication happened with the first message.
    sdk.send(json!({"type": "hello", "agentId": "a1"})).await;
    let e = sdk.next().await;
    assert_eq!(code(&e), "UNAUTHORIZED", "{e}");
    assert_eq!(sdk.c.closed().await.0, 4501);
    // ... nor pick a token up later.
    let (mut late, _) = V2::hello(&url, json!({"sessionId": "s3"})).await;
    late.send(json!({"type": "hello", "sessionId": "s3", "token": DASH}))
        .await;
    assert_eq!(code(&late.next().await), "UNAUTHORIZED");
    assert_eq!(late.c.closed().await.0, 4501);

    // An agent needs a token: without one, 4501.
    let mut c = V2::connect(&url).await;
    c.send(json!({"type": "hello", "agentId": "a1"})).await;
    assert_eq!(code(&c.next().await), "UNAUTHORIZED");
    assert_eq!(c.c.closed().await.0, 4501);
    // With the agent token (or the dashboard's): its own channels, and topics; never another agent's channel,
    // never another's session, never to read what is not its own, never a snapshot request or a dashboard.
    let (mut agent, connected) = V2::hello(
        &url,
        json!({"agentId": "a1", "sessionId": "a1-session", "token": AGENT}),
    )
    .await;
    assert_eq!(connected["role"], "agent");
    for ch in ["agents/a1", "sessions/a1-session", "topics/builds"] {
        let ok = agent.request(publish(ch), "own").await;
        assert_eq!(ok["type"], "ack", "{ch}: {ok}");
    }
    for ch in ["agents/a2", "sessions/s1", "global", "metrics"] {
        let e = agent.request(publish(ch), "other").await;
        assert_eq!(code(&e), "FORBIDDEN", "{ch}: {e}");
    }
    agent.subscribe("agents/a1").await;
    for ch in [
        "agents/a2",
        "agents/*",
        "global",
        "sessions/s1",
        "topics/builds",
    ] {
        let e = agent
            .request(json!({"type": "subscribe", "channel": ch}), "read")
            .await;
        assert_eq!(code(&e), "FORBIDDEN", "{ch}: {e}");
    }
    let e = agent
        .request(
            json!({"type": "request_snapshot", "sessionId": "s1"}),
            "snap",
        )
        .await;
    assert_eq!(code(&e), "FORBIDDEN");
    let (_dash_agent, connected) = V2::hello(&url, json!({"agentId": "a9", "token": DASH})).await;
    assert_eq!(
        connected["role"], "dashboard",
        "the dashboard token makes agents too"
    );
    // The agent token does not open a dashboard.
    let mut c = V2::connect(&with(&url, AGENT)).await;
    c.send(json!({"type": "hello"})).await;
    assert_eq!(code(&c.next().await), "FORBIDDEN");
    assert_eq!(c.c.closed().await.0, 4502);

    // The dashboard asks the SDK for a snapshot; the agent's and SDK's attempts above never reached it.
    let (mut s9, _) = V2::hello(&url, json!({"sessionId": "s9"})).await;
    let ack = dash
        .request(
            json!({"type": "request_snapshot", "sessionId": "s9"}),
            "snap",
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(
        s9.until(|m| m["type"] == "request_snapshot").await["type"],
        "request_snapshot"
    );
    relay.shutdown.cancel();
}

#[tokio::test]
async fn pages_from_foreign_origins_are_sdks_at_most_and_say_where_they_come_from() {
    let relay = Relay::start(tokens()).await;
    let mut dash = V2::dashboard(&relay.dash()).await;
    dash.subscribe("global").await;
    let app = [("origin", "http://myapp.test:3000")];

    // The SDK inside the app's page: allowed, no token needed (loopback), its origin shown to dashboards.
    let mut sdk = Client::connect_with(&relay.url(), &app).await.unwrap();
    sdk.send_text(
        r#"{"type":"handshake","protocolVersion":1,"sdkVersion":"1","sessionId":"app-1"}"#,
    )
    .await;
    assert_eq!(sdk.recv_value().await["type"], "handshake_ack");
    let p = dash.until(|m| m["event"] == "session.connected").await;
    assert_eq!(p["data"]["origin"], "http://myapp.test:3000", "{p}");
    let mut v2sdk = V2::from(Client::connect_with(&relay.url(), &app).await.unwrap());
    v2sdk
        .send(json!({"type": "hello", "sessionId": "app-2"}))
        .await;
    let connected = v2sdk.next().await;
    assert_eq!(connected["role"], "sdk");
    let ok = v2sdk
        .request(
            json!({"type": "publish", "channel": "sessions/app-2", "event": "x"}),
            "p",
        )
        .await;
    assert_eq!(ok["type"], "ack");

    // A cross-site page, even one that somehow has the dashboard token: never a dashboard, never an agent.
    for first in [
        json!({"type": "subscribe_dashboard"}),
        json!({"type": "hello"}),
        json!({"type": "hello", "agentId": "evil"}),
    ] {
        let mut c = Client::connect_with(&relay.dash(), &[("origin", "https://evil.example")])
            .await
            .unwrap();
        c.send_json(first.clone()).await;
        let (err, message, close) = refused(&mut c).await;
        assert_eq!(err.to_lowercase(), "forbidden", "{first}");
        assert_eq!(close, 4502, "{first}");
        assert!(message.contains("--allow-origin"), "{message}");
    }
    // An allowed origin with the token is a dashboard.
    let allowed = Relay::start(Config {
        allowed_origins: vec!["https://dash.example.com".into()],
        ..tokens()
    })
    .await;
    let mut c = Client::connect_with(&allowed.dash(), &[("origin", "https://dash.example.com")])
        .await
        .unwrap();
    c.send_text(r#"{"type":"subscribe_dashboard"}"#).await;
    assert_eq!(c.recv_value().await["type"], "client_list");
    relay.shutdown.cancel();
    allowed.shutdown.cancel();
}

/// This machine's address on its default route, if it has one: a connection to it is not loopback.
fn non_loopback_address() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    // A UDP "connect" sends nothing; it only picks the route and so the local address.
    s.connect("203.0.113.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback()).then_some(ip)
}

#[tokio::test]
async fn connections_from_another_machine_need_a_token_even_for_an_sdk() {
    let Some(ip) = non_loopback_address() else {
        // A machine with no network at all cannot connect to itself from a non-loopback address; the rule is
        // still held by the principal's unit tests (auth.rs, `the_matrix`).
        eprintln!("no non-loopback address on this machine: remote connections cannot be tested over sockets");
        return;
    };
    let relay = Relay::start_at(
        "0.0.0.0:0",
        Config {
            allowed_hosts: vec![ip.to_string()],
            ..tokens()
        },
    )
    .await;
    let remote = format!("ws://{ip}:{}", relay.addr.port());
    let handshake =
        r#"{"type":"handshake","protocolVersion":1,"sdkVersion":"1","sessionId":"far"}"#;
    let mut c = Client::connect(&remote).await;
    c.send_text(handshake).await;
    let (err, message, close) = refused(&mut c).await;
    assert_eq!((err.as_str(), close), ("unauthorized", 4501));
    assert!(message.contains("another machine"), "{message}");
    // With a token it is welcome (the agent token suffices for a session).
    let mut c = Client::connect(&with(&remote, AGENT)).await;
    c.send_text(handshake).await;
    assert_eq!(c.recv_value().await["type"], "handshake_ack");
    // And loopback SDKs on the same relay still need none.
    let _local = Client::sdk(&relay.url(), "near").await;
    relay.shutdown.cancel();
}

#[tokio::test]
async fn http_endpoints_that_reveal_session_data_need_the_bearer_token() {
    let relay = Relay::start(tokens()).await;
    let _sdk = Client::sdk(&relay.url(), "secret-session").await;
    let dash = format!("Bearer {DASH}");
    let agent = format!("Bearer {AGENT}");
    for (auth, want) in [
        (None, 401),
        (Some("Bearer not-the-token-0123456789"), 401),
        (Some(agent.as_str()), 403),
        (Some(dash.as_str()), 200),
    ] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
        let (status, body) = http_get(relay.addr, "/stats", &headers).await;
        assert_eq!(status, want, "{auth:?}: {body}");
        if want != 200 {
            let v: Value = serde_json::from_str(&body).unwrap();
            let message = v["error"]["message"].as_str().unwrap();
            assert!(
                message.contains(if want == 401 {
                    "Bearer"
                } else {
                    "dashboard token"
                }),
                "{message}"
            );
            assert!(!body.contains("secret-session"));
        }
    }
    // /health stays open and names no session.
    let (status, body) = http_get(relay.addr, "/health", &[]).await;
    assert_eq!(status, 200);
    assert!(!body.contains("secret-session"), "{body}");
    let (_, body) = http_get(relay.addr, "/health", &[("Authorization", &dash)]).await;
    assert!(body.contains("sessions/secret-session"), "{body}");
    // DNS rebinding: a page on a foreign name that resolves here is refused before anything else.
    let (status, body) = http_get(
        relay.addr,
        "/stats",
        &[("Host", "rebound.example:8265"), ("Authorization", &dash)],
    )
    .await;
    assert_eq!(status, 403);
    assert!(body.contains("Host"), "{body}");
    relay.shutdown.cancel();
}

#[tokio::test]
async fn metrics_need_the_dashboard_token_unless_the_relay_makes_them_public() {
    // With tokens (the default), /metrics is held like /stats: the dashboard token as a Bearer token (what
    // Prometheus' `authorization` / `bearer_token_file` send), 401 without it or with a wrong one, 403 with the
    // agent token; each refusal says how to fix it (the token, or --metrics-public) and shows no number.
    let relay = Relay::start(tokens()).await;
    let _sdk = Client::sdk(&relay.url(), "secret-session").await;
    let dash = format!("Bearer {DASH}");
    let agent = format!("Bearer {AGENT}");
    for (auth, want) in [
        (None, 401),
        (Some("Bearer not-the-token-0123456789"), 401),
        (Some(agent.as_str()), 403),
        (Some(dash.as_str()), 200),
    ] {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
        let (status, body) = http_get(relay.addr, "/metrics", &headers).await;
        assert_eq!(status, want, "{auth:?}: {body}");
        if want == 200 {
            assert!(
                body.contains("devrelay_connections{role=\"sdk\"} 1"),
                "{body}"
            );
        } else {
            let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
            let message = v["error"]["message"].as_str().unwrap();
            assert!(message.contains("--metrics-public"), "{message}");
            assert!(!body.contains("devrelay_"), "{body}");
        }
    }
    assert_eq!(relay.stats().await["authFailures"], 3);
    relay.shutdown.cancel();

    // --metrics-public: open to any scraper, still counts only; /stats (which names sessions) keeps its token.
    let relay = Relay::start(Config {
        metrics_public: true,
        ..tokens()
    })
    .await;
    let _sdk = Client::sdk(&relay.url(), "secret-session").await;
    let (status, body) = http_get(relay.addr, "/metrics", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("devrelay_connections{role=\"sdk\"} 1"),
        "{body}"
    );
    assert!(!body.contains("secret-session"), "{body}");
    assert_eq!(http_get(relay.addr, "/stats", &[]).await.0, 401);
    relay.shutdown.cancel();
}

#[tokio::test]
async fn without_auth_everyone_is_a_dashboard_but_foreign_pages_still_are_not() {
    let relay = Relay::start(Config {
        auth: Auth::Disabled,
        ..Config::default()
    })
    .await;
    assert_eq!(relay.token, None);
    let (_d, _) = Client::dashboard(&relay.url()).await;
    let (_, connected) = V2::hello(&relay.url(), json!({"agentId": "free"})).await;
    assert_eq!(connected["role"], "dashboard");
    let (status, _) = http_get(relay.addr, "/stats", &[]).await;
    assert_eq!(status, 200);
    let mut c = Client::connect_with(&relay.url(), &[("origin", "https://evil.example")])
        .await
        .unwrap();
    c.send_text(r#"{"type":"subscribe_dashboard"}"#).await;
    assert_eq!(refused(&mut c).await.2, 4502);
    relay.shutdown.cancel();
}

#[test]
fn the_binary_writes_a_private_token_file_and_removes_it_at_exit() {
    use std::io::{BufRead, BufReader, Read};
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Stdio};
    let runtime = tempdir();
    let start = |args: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_devrelay"))
            .args(["--port", "0"])
            .args(args)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env_remove("DEVRELAY_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (mut first, mut second) = (String::new(), String::new());
        out.read_line(&mut first).unwrap();
        out.read_line(&mut second).unwrap();
        let port: u16 = first.trim().rsplit(':').next().unwrap().parse().unwrap();
        (child, port, second)
    };
    let stop = |mut child: std::process::Child| {
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(child.wait().unwrap().success());
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        err
    };

    // A random token per launch: in the printed URL's fragment and in a 0600 file of a 0700 directory.
    let (child, port, page) = start(&[]);
    let token = page
        .split_once("#token=")
        .and_then(|(_, t)| t.split_whitespace().next())
        .unwrap_or_else(|| panic!("{page}"))
        .to_string();
    let file = runtime.join("devrelay").join(format!("token-{port}"));
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(file.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    stop(child);
    assert!(!file.exists(), "removed at exit");

    // A second launch: another token. A fixed one with --token.
    let (child, _, page2) = start(&[]);
    assert!(!page2.contains(&token), "a new token per launch");
    stop(child);
    let fixed = "fixed-token-for-this-test-42";
    let (child, port, page) = start(&["--token", fixed]);
    assert!(page.contains(&format!("/#token={fixed}")), "{page}");
    let file = runtime.join("devrelay").join(format!("token-{port}"));
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), fixed);
    stop(child);

    // /metrics needs the token by default; --metrics-public opens it (the flag reaches the relay).
    let metrics = |port: u16, auth: Option<&str>| {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let auth = auth.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out.split_whitespace().nth(1).unwrap().to_string()
    };
    let (child, port, _) = start(&["--token", fixed]);
    assert_eq!(metrics(port, None), "401");
    assert_eq!(metrics(port, Some(fixed)), "200");
    stop(child);
    let (child, port, _) = start(&["--token", fixed, "--metrics-public"]);
    assert_eq!(metrics(port, None), "200");
    stop(child);

    // --no-auth: a warning, no file, no fragment.
    let (child, port, page) = start(&["--no-auth"]);
    assert!(!page.contains("#token="), "{page}");
    assert!(!runtime
        .join("devrelay")
        .join(format!("token-{port}"))
        .exists());
    let err = stop(child);
    assert!(err.contains("authentication is OFF"), "{err}");

    // A weak or malformed token is refused before anything starts, naming the flag.
    for bad in ["short", "has spaces in it, long enough"] {
        let out = Command::new(env!("CARGO_BIN_EXE_devrelay"))
            .args(["--port", "0", "--token", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--token"), "{err}");
    }
    let _ = std::fs::remove_dir_all(&runtime);
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "devrelay-security-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn the_demo_presents_its_token_on_the_url() {
    let relay = Relay::start(tokens()).await;
    let run = |token: &str| {
        let cfg = devrelay::demo::DemoConfig {
            url: relay.url(),
            sessions: 1,
            rate: 0.0,
            seed: Some(5),
            token: Some(token.to_string()),
            ..Default::default()
        };
        tokio::spawn(devrelay::demo::run(
            cfg,
            tokio_util::sync::CancellationToken::new(),
        ))
    };
    // A wrong one is refused with 4501, which the demo does not retry: it stops with the reason.
    let refused = tokio::time::timeout(util::PATIENCE, run("not-the-token-0123456789"))
        .await
        .expect("the demo gave up")
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(refused.contains("4501"), "{refused}");
    // The right one connects.
    let (mut dash, list) = Client::dashboard(&relay.dash()).await;
    let ok = run(AGENT);
    if list.clients.is_empty() {
        assert_eq!(dash.recv_value().await["type"], "client_connected");
    }
    ok.abort();
    relay.shutdown.cancel();
}
