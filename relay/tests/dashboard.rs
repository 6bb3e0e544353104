//! The relay serving the dashboard on its own port, over real sockets: the page and hashed assets with their
//! content types, cache headers, precompressed encodings and ETags; client-side routes get the page while API
//! paths keep their 404s; the WebSocket upgrade on `/` is unchanged; the "not built" page; the relay's own pages
//! pass the Origin check; `--dashboard-dir` on the real binary.

mod util;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use devrelay::{Assets, AssetsError, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use util::{Client, Relay, PATIENCE};

const INDEX: &str =
    "<!DOCTYPE html><html><head><title>devrelay</title></head><body>dashboard</body></html>";
const CHUNK: &str = "_next/static/chunks/app-0a1b2c3d.js";
const CHUNK_JS: &str = "console.log('the dashboard');\n";
// Stand-ins for the build's brotli / gzip output: the relay sends the precompressed siblings as they are.
const CHUNK_BR: &[u8] = b"\x1b\x1d\x00brotli bytes";
const CHUNK_GZ: &[u8] = b"\x1f\x8b\x08gzip bytes";

/// A dashboard export in a fresh temporary directory, removed on drop.
struct Site(PathBuf);

impl Site {
    fn new(files: &[(&str, &[u8])]) -> Site {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "devrelay-site-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        for (path, data) in files {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        Site(dir)
    }

    /// What `next build` + `www/precompress.mjs` produce, in miniature.
    fn export() -> Site {
        Site::new(&[
            ("index.html", INDEX.as_bytes()),
            ("index.txt", b"0:rsc payload"),
            ("about.html", b"<!DOCTYPE html><title>about</title>"),
            ("404.html", b"<!DOCTYPE html><title>404</title>"),
            ("favicon.ico", b"\x00\x00\x01\x00"),
            (CHUNK, CHUNK_JS.as_bytes()),
            (&format!("{CHUNK}.br"), CHUNK_BR),
            (&format!("{CHUNK}.gz"), CHUNK_GZ),
            ("_next/static/css/app-99.css", b"body{margin:0}"),
            (
                "_next/static/media/devrelay_client_bg-1f2e.wasm",
                b"\x00asm\x01\x00\x00\x00",
            ),
        ])
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One HTTP/1.1 exchange, headers and body kept as sent.
#[derive(Debug)]
struct Http {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Http {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Http {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut raw))
        .await
        .expect("timed out reading the response")
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Http {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Http {
    request(addr, "GET", path, headers).await
}

async fn relay_serving(assets: Assets) -> Relay {
    Relay::start(Config {
        dashboard: assets,
        ..Config::default()
    })
    .await
}

#[tokio::test]
async fn the_page_and_hashed_assets_have_their_types_cache_headers_and_encodings() {
    let site = Site::export();
    let relay = relay_serving(Assets::from_dir(site.path()).unwrap()).await;
    let addr = relay.addr;

    let page = get(addr, "/", &[("Accept-Encoding", "gzip, deflate, br")]).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.text(), INDEX);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        page.header("cache-control"),
        Some("no-cache"),
        "pages are revalidated"
    );
    assert_eq!(
        page.header("content-encoding"),
        None,
        "no precompressed variant of this one"
    );
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert!(
        page.header("etag").is_some_and(|t| t.starts_with('"')),
        "{page:?}"
    );
    assert_eq!(get(addr, "/index.html", &[]).await.text(), INDEX);

    let immutable = "public, max-age=31536000, immutable";
    let chunk = format!("/{CHUNK}");
    for (accept, encoding, body) in [
        (Some("gzip, deflate, br, zstd"), Some("br"), CHUNK_BR),
        (Some("gzip, deflate"), Some("gzip"), CHUNK_GZ),
        (Some("br;q=0, gzip"), Some("gzip"), CHUNK_GZ),
        (Some("identity"), None, CHUNK_JS.as_bytes()),
        (None, None, CHUNK_JS.as_bytes()),
    ] {
        let headers: Vec<_> = accept.map(|a| ("Accept-Encoding", a)).into_iter().collect();
        let res = get(addr, &chunk, &headers).await;
        assert_eq!(res.status, 200, "{accept:?}");
        assert_eq!(res.body, body, "{accept:?}");
        assert_eq!(res.header("content-encoding"), encoding, "{accept:?}");
        assert_eq!(
            res.header("content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(
            res.header("content-type"),
            Some("text/javascript; charset=utf-8")
        );
        assert_eq!(
            res.header("cache-control"),
            Some(immutable),
            "hashed assets are kept for good"
        );
        assert_eq!(res.header("vary"), Some("accept-encoding"));
    }
    for (path, content_type) in [
        ("/_next/static/css/app-99.css", "text/css; charset=utf-8"),
        (
            "/_next/static/media/devrelay_client_bg-1f2e.wasm",
            "application/wasm",
        ),
    ] {
        let res = get(addr, path, &[]).await;
        assert_eq!(
            (res.status, res.header("content-type")),
            (200, Some(content_type)),
            "{path}"
        );
        assert_eq!(res.header("cache-control"), Some(immutable), "{path}");
    }
    for (path, content_type) in [
        ("/favicon.ico", "image/x-icon"),
        ("/index.txt", "text/plain; charset=utf-8"),
    ] {
        let res = get(addr, path, &[]).await;
        assert_eq!(
            (res.status, res.header("content-type")),
            (200, Some(content_type)),
            "{path}"
        );
        assert_eq!(
            res.header("cache-control"),
            Some("no-cache"),
            "{path}: not hashed"
        );
    }
    // The siblings are encodings of the chunk, not files of their own.
    assert_eq!(get(addr, &format!("{chunk}.br"), &[]).await.status, 404);
    relay.shutdown.cancel();
}

#[tokio::test]
async fn etags_answer_304_and_head_sends_the_headers_alone() {
    let site = Site::export();
    let relay = relay_serving(Assets::from_dir(site.path()).unwrap()).await;
    let addr = relay.addr;
    let chunk = format!("/{CHUNK}");

    let br = get(addr, &chunk, &[("Accept-Encoding", "br")]).await;
    let plain = get(addr, &chunk, &[]).await;
    let (br_tag, plain_tag) = (br.header("etag").unwrap(), plain.header("etag").unwrap());
    assert_ne!(br_tag, plain_tag, "each encoding is its own representation");

    for tag in [
        br_tag,
        plain_tag,
        &format!("W/{br_tag}"),
        &format!("\"x\", {plain_tag}"),
        "*",
    ] {
        let res = get(
            addr,
            &chunk,
            &[("Accept-Encoding", "br"), ("If-None-Match", tag)],
        )
        .await;
        assert_eq!(res.status, 304, "{tag}");
        assert!(res.body.is_empty());
        assert_eq!(res.header("etag"), Some(br_tag));
        assert_eq!(
            res.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
    }
    let stale = get(addr, &chunk, &[("If-None-Match", "\"0000\"")]).await;
    assert_eq!(
        (stale.status, stale.body.as_slice()),
        (200, CHUNK_JS.as_bytes())
    );

    let page = get(addr, "/", &[]).await;
    let tag = page.header("etag").unwrap();
    assert_eq!(get(addr, "/", &[("If-None-Match", tag)]).await.status, 304);
    // Client-side routes are the same page, so the same validator holds.
    assert_eq!(
        get(addr, "/sessions/abc", &[("If-None-Match", tag)])
            .await
            .status,
        304
    );

    for path in ["/", chunk.as_str(), "/sessions/abc"] {
        let full = get(addr, path, &[]).await;
        let head = request(addr, "HEAD", path, &[]).await;
        assert_eq!(head.status, 200, "{path}");
        assert!(head.body.is_empty(), "{path}: HEAD has no body");
        for h in ["content-length", "content-type", "etag", "cache-control"] {
            assert_eq!(head.header(h), full.header(h), "{path}: {h}");
        }
    }
    relay.shutdown.cancel();
}

#[tokio::test]
async fn client_side_routes_get_the_page_and_api_paths_keep_their_404s() {
    let site = Site::export();
    let relay = relay_serving(Assets::from_dir(site.path()).unwrap()).await;
    let addr = relay.addr;

    for path in [
        "/sessions/abc",
        "/sessions/abc/",
        "/x?clientId=demo-1",
        "/v1.2/thing",
    ] {
        let res = get(addr, path, &[]).await;
        assert_eq!((res.status, res.text().as_str()), (200, INDEX), "{path}");
        assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    }
    // Exported routes are served as themselves.
    assert!(get(addr, "/about", &[]).await.text().contains("about"));
    // Encoded paths are decoded before lookup.
    let encoded = get(addr, "/_next/static/chunks/app%2D0a1b2c3d.js", &[]).await;
    assert_eq!(encoded.body, CHUNK_JS.as_bytes());

    // Things that look like files are 404s, not the page (a missing chunk must not parse HTML as JS).
    for path in [
        "/missing.js",
        "/_next/static/chunks/gone-1234.js",
        "/_next/data",
        "/robots.txt",
    ] {
        let res = get(addr, path, &[]).await;
        assert_eq!(res.status, 404, "{path}");
        assert_eq!(
            res.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{path}"
        );
    }
    // API paths: JSON 404s, for every method.
    for (method, path) in [
        ("GET", "/api"),
        ("GET", "/api/sessions"),
        ("POST", "/api/sessions"),
        ("GET", "/health/deep"),
        ("GET", "/stats/x"),
        ("GET", "/ws/x"),
    ] {
        let res = request(addr, method, path, &[]).await;
        assert_eq!(res.status, 404, "{method} {path}");
        assert_eq!(
            res.header("content-type"),
            Some("application/json"),
            "{method} {path}"
        );
        let body: serde_json::Value = serde_json::from_slice(&res.body).unwrap();
        assert_eq!(body["path"], path);
    }
    // The endpoints themselves are unchanged.
    assert_eq!(get(addr, "/health", &[]).await.status, 200);
    assert_eq!(
        get(addr, "/stats", &[]).await.status,
        401,
        "the token opens it"
    );
    let bearer = relay.bearer();
    assert_eq!(
        get(addr, "/stats", &[(bearer[0].0, &bearer[0].1)])
            .await
            .status,
        200
    );
    let ws = get(addr, "/ws", &[]).await;
    assert_eq!(
        ws.status, 426,
        "plain GET /ws still explains it is a WebSocket endpoint"
    );
    // The dashboard is read-only.
    let post = request(addr, "POST", "/sessions", &[("Content-Length", "0")]).await;
    assert_eq!(
        (post.status, post.header("allow")),
        (405, Some("GET, HEAD"))
    );
    assert_eq!(request(addr, "DELETE", "/", &[]).await.status, 405);
    // The DNS-rebinding defence covers the page too.
    let rebound = get(addr, "/", &[("Host", "evil.example:8265")]).await;
    assert_eq!(rebound.status, 403);
    assert!(rebound.text().contains("Host"), "{}", rebound.text());
    relay.shutdown.cancel();
}

#[tokio::test]
async fn websocket_upgrades_on_slash_and_ws_still_work_next_to_the_page() {
    let site = Site::export();
    let relay = relay_serving(Assets::from_dir(site.path()).unwrap()).await;
    // Seed-000 SDKs connect to the bare address.
    let bare = format!("ws://{}", relay.addr);
    let mut sdk = Client::sdk(&bare, "bare-sdk").await;
    let (mut dash, list) =
        Client::dashboard(&relay.with_token(&format!("ws://{}/ws", relay.addr))).await;
    assert_eq!(list.clients.len(), 1);
    sdk.send_json(serde_json::json!({
        "type": "stream_event", "sessionId": "bare-sdk", "timestamp": 1, "threadId": "t", "seq": 1,
        "event": {"type": "RUN_STARTED"}
    }))
    .await;
    let update = dash.recv_value().await;
    assert_eq!(update["type"], "stream_event_update", "{update}");
    // The page is still there for a plain GET at the same address.
    assert_eq!(get(relay.addr, "/", &[]).await.text(), INDEX);
    relay.shutdown.cancel();
}

#[tokio::test]
async fn without_a_dashboard_pages_say_how_to_build_it() {
    let relay = relay_serving(Assets::none()).await;
    let addr = relay.addr;
    for path in ["/", "/sessions/abc"] {
        let res = get(addr, path, &[]).await;
        assert_eq!(res.status, 200, "{path}");
        assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(
            res.header("cache-control"),
            Some("no-cache"),
            "a rebuilt relay shows up on reload"
        );
        let text = res.text();
        assert!(text.contains("data-devrelay-page=\"not-built\""), "{text}");
        assert!(text.contains("scripts/build-dashboard.sh &amp;&amp; cargo build --release"));
        assert!(text.contains("npx devrelay"));
    }
    assert_eq!(
        get(addr, "/_next/static/chunks/app.js", &[]).await.status,
        404
    );
    assert_eq!(get(addr, "/api/x", &[]).await.status, 404);
    // The relay works all the same.
    let _sdk = Client::sdk(&relay.url(), "still-works").await;
    let (_dash, list) = Client::dashboard(&relay.dash()).await;
    assert_eq!(list.clients[0].session_id, "still-works");
    relay.shutdown.cancel();
}

#[test]
fn a_directory_without_an_export_is_refused_with_the_reason() {
    let empty = Site::new(&[("readme.txt", b"not a dashboard")]);
    match Assets::from_dir(empty.path()) {
        Err(e @ AssetsError::NoIndex(_)) => assert!(e.to_string().contains("no index.html"), "{e}"),
        other => panic!("expected NoIndex, got {other:?}"),
    }
    let missing = empty.path().join("nope");
    match Assets::from_dir(&missing) {
        Err(e @ AssetsError::Read { .. }) => assert!(e.to_string().contains("nope"), "{e}"),
        other => panic!("expected Read, got {other:?}"),
    }
    assert!(!Assets::none().has_dashboard());
    assert!(Assets::from_dir(Site::export().path())
        .unwrap()
        .has_dashboard());
}

#[tokio::test]
async fn the_relays_own_pages_pass_the_origin_check_and_other_origins_do_not() {
    let site = Site::export();
    let relay = Relay::start(Config {
        allowed_hosts: vec!["devbox.test".into()],
        dashboard: Assets::from_dir(site.path()).unwrap(),
        ..Config::default()
    })
    .await;
    let url = relay.url();
    let port = relay.addr.port();
    let own = format!("devbox.test:{port}");
    // The page itself, fetched under the allowed name.
    assert_eq!(get(relay.addr, "/", &[("Host", &own)]).await.text(), INDEX);
    // Its WebSocket: Origin = the relay's own origin.
    for origin in [format!("http://{own}"), format!("https://{own}")] {
        let c = Client::connect_with(&url, &[("host", &own), ("origin", &origin)]).await;
        assert!(c.is_ok(), "{origin}");
    }
    // ... and it opens a dashboard with the token.
    let mut own_dash = Client::connect_with(
        &relay.dash(),
        &[("host", &own), ("origin", &format!("http://{own}"))],
    )
    .await
    .unwrap();
    own_dash
        .send_text(r#"{"type":"subscribe_dashboard"}"#)
        .await;
    assert_eq!(own_dash.recv_value().await["type"], "client_list");
    // Same name, other port: another site. Its socket opens (an SDK inside an app page carries the app's
    // Origin), but it is an SDK at most, whatever token it has: a dashboard is refused with 4502.
    for origin in [
        format!("http://devbox.test:{}", port.wrapping_add(1)),
        "http://devbox.test".to_string(),
    ] {
        let mut c = Client::connect_with(&relay.dash(), &[("host", &own), ("origin", &origin)])
            .await
            .unwrap();
        c.send_text(r#"{"type":"subscribe_dashboard"}"#).await;
        let e = c.recv_value().await;
        assert_eq!(e["code"], "forbidden", "{origin}: {e}");
        assert!(
            e["message"].as_str().unwrap().contains("--allow-origin"),
            "{e}"
        );
        assert_eq!(c.closed().await.0, 4502, "{origin}");
    }
    // A rebound foreign name is stopped by the Host check before anything else.
    let (host, origin) = (
        format!("evil.example:{port}"),
        format!("http://evil.example:{port}"),
    );
    match Client::connect_with(&url, &[("host", &host), ("origin", &origin)]).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), 403, "{host} {origin}")
        }
        other => panic!("{host} {origin}: expected 403, got {:?}", other.map(|_| ())),
    }
    assert_eq!(relay.stats().await["rejectedUpgrades"], 1);
    relay.shutdown.cancel();
}

#[test]
fn the_binary_serves_a_dashboard_dir_and_says_where() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let site = Site::export();
    let mut child = Command::new(env!("CARGO_BIN_EXE_devrelay"))
        .args(["--port", "0", "--dashboard-dir"])
        .arg(site.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut first, mut second) = (String::new(), String::new());
    out.read_line(&mut first).unwrap();
    out.read_line(&mut second).unwrap();
    let addr: SocketAddr = first
        .trim()
        .strip_prefix("devrelay listening on ws://")
        .unwrap_or_else(|| panic!("{first}"))
        .parse()
        .unwrap();
    let page = second.trim();
    let token = page
        .strip_prefix(&format!("dashboard http://{addr}/#token="))
        .unwrap_or_else(|| panic!("{page}"));
    assert_eq!(token.len(), 48, "a fresh random token: {page}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert_eq!(rt.block_on(get(addr, "/", &[])).text(), INDEX);
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(child.wait().unwrap().success());

    // Ctrl-C the moment the address is printed (a script that starts and stops it at once) is a clean exit:
    // the handlers are in place before the first line.
    for _ in 0..5 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_devrelay"))
            .args(["--port", "0", "--dashboard-dir"])
            .arg(site.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("devrelay listening on "), "{line}");
        assert!(Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap()
            .success());
        let status = child.wait().unwrap();
        assert!(status.success(), "SIGINT right after start: {status:?}");
    }

    // A reader that leaves after the first line (`devrelay | head -1`) does not take the relay down.
    let (mut child, url) = util::start_binary(&[], &[], Stdio::null()); // stdout closed after its first line
    let addr: SocketAddr = url.trim_start_matches("ws://").parse().unwrap();
    assert_eq!(rt.block_on(get(addr, "/health", &[])).status, 200);
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(child.wait().unwrap().success());

    // A bad directory is a clear error at start, not a relay without its page.
    let out = Command::new(env!("CARGO_BIN_EXE_devrelay"))
        .args(["--port", "0", "--dashboard-dir"])
        .arg(site.path().join("missing"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("reading the dashboard directory"), "{err}");
}
