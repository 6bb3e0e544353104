//! Test helpers: a real relay on port 0, and thin WebSocket clients that speak the protocol.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use devrelay::Config;
use devrelay_protocol::{decode, ClientList, RelayToDashboard, RelayToSdk, Tagged};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// Upper bound on waiting for something that should happen; a hang fails the test instead of blocking CI.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The `devrelay` binary, started with `--port 0`, `args` and `env`, once it has printed its first line (its
/// stdout is closed after it, as `devrelay | head -1` would); returns the child and the URL that line names
/// (`ws://127.0.0.1:PORT`). `stderr` says where its log goes.
pub fn start_binary(
    args: &[&str],
    env: &[(&str, &str)],
    stderr: std::process::Stdio,
) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_devrelay"))
        .args(["--port", "0"])
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("devrelay listening on ")
        .unwrap_or_else(|| panic!("not the listening line: {line:?}"))
        .to_string();
    (child, url)
}

pub struct Relay {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub task: JoinHandle<std::io::Result<()>>,
    /// The dashboard token (`None` with `Auth::Disabled`).
    pub token: Option<String>,
}

impl Relay {
    pub async fn start(config: Config) -> Relay {
        Relay::start_at("127.0.0.1:0", config).await
    }

    /// A relay listening on `bind` (e.g. `0.0.0.0:0`, to be reached from a non-loopback address).
    pub async fn start_at(bind: &str, config: Config) -> Relay {
        let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
        let mut addr = listener.local_addr().unwrap();
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let shutdown = CancellationToken::new();
        let token = config
            .auth
            .dashboard_token()
            .map(|t| t.expose().to_string());
        let task = tokio::spawn(devrelay::run(listener, config, shutdown.clone()));
        Relay {
            addr,
            shutdown,
            task,
            token,
        }
    }

    /// The URL an SDK connects to (no token: the seed-000 way).
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.addr.port())
    }

    /// The URL a dashboard connects to: with `?token=` (the dashboard token).
    pub fn dash(&self) -> String {
        self.with_token(&format!("ws://127.0.0.1:{}/", self.addr.port()))
    }

    /// `url` with the dashboard token added as `token=` to its query.
    pub fn with_token(&self, url: &str) -> String {
        match &self.token {
            None => url.to_string(),
            Some(t) => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}token={t}")
            }
        }
    }

    /// `Authorization: Bearer <dashboard token>`, for the HTTP endpoints that need it.
    pub fn bearer(&self) -> Vec<(&'static str, String)> {
        self.token
            .iter()
            .map(|t| ("Authorization", format!("Bearer {t}")))
            .collect()
    }

    /// A plain HTTP/1.1 GET; returns (status, body).
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        http_get(self.addr, path, headers).await
    }

    pub async fn stats(&self) -> Value {
        let bearer = self.bearer();
        let headers: Vec<(&str, &str)> = bearer.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = self.get("/stats", &headers).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// Opens a TCP connection and sends the start of an HTTP request (the request line and one header), never the
/// blank line that would end it.
pub async fn half_request(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n").as_bytes())
        .await
        .unwrap();
    s
}

/// Reads until the relay closes the connection (end of stream or reset); fails the test after `PATIENCE`.
pub async fn until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    match tokio::time::timeout(PATIENCE, s.read_to_end(&mut got)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Ok(Err(e)) => panic!("read failed: {e}"),
        Err(_) => panic!("the relay kept the connection open"),
    }
    got
}

/// A `stream_event` of `session` with sequence number `seq`, padded with `pad` bytes of text.
pub fn event(session: &str, seq: u64, pad: usize) -> String {
    serde_json::json!({"type":"stream_event","sessionId":session,"timestamp":1,"threadId":"t","event":{"type":"TEXT_MESSAGE_CONTENT","delta":"x".repeat(pad)},"seq":seq}).to_string()
}

pub async fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// How a connection ended, seen from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    Close(u16, String),
    /// A TCP reset.
    Reset,
    /// End of stream without a close frame.
    Eof,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        Client { ws }
    }

    pub async fn connect_with(
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let mut req = url.into_client_request().unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        tokio_tungstenite::connect_async(req)
            .await
            .map(|(ws, _)| Client { ws })
    }

    /// Connects as a dashboard over a socket with a 4 KiB receive buffer, and returns after its `client_list`. A
    /// test that then stops reading it has a peer advertising a (nearly) zero window: the relay's writes to it
    /// block as soon as its own buffers are full.
    pub async fn small_window_dashboard(relay: &Relay) -> Client {
        Client::small_window_dashboard_at(relay.addr, &relay.dash()).await
    }

    /// [`Client::small_window_dashboard`] for the relay at `addr`, connecting to `url` (with its token).
    pub async fn small_window_dashboard_at(addr: SocketAddr, url: &str) -> Client {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let tcp = socket.connect(addr).await.unwrap();
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
            .await
            .unwrap();
        let mut c = Client { ws };
        c.send_text(r#"{"type":"subscribe_dashboard"}"#).await;
        match c.recv::<RelayToDashboard>().await {
            RelayToDashboard::ClientList(_) => c,
            other => panic!("expected client_list, got {other:?}"),
        }
    }

    /// Connects as an SDK and completes the handshake.
    pub async fn sdk(url: &str, session_id: &str) -> Client {
        let mut c = Client::connect(url).await;
        c.send_json(serde_json::json!({
            "type": "handshake", "protocolVersion": 1, "sdkVersion": "1.0.0", "projectId": "p1", "sessionId": session_id
        }))
        .await;
        match c.recv::<RelayToSdk>().await {
            RelayToSdk::HandshakeAck(ack) => assert_eq!(ack.session_id, session_id),
            other => panic!("expected handshake_ack, got {other:?}"),
        }
        c
    }

    /// Connects as a dashboard; returns it with the `client_list` it got.
    pub async fn dashboard(url: &str) -> (Client, ClientList) {
        let mut c = Client::connect(url).await;
        c.send_text(r#"{"type":"subscribe_dashboard"}"#).await;
        match c.recv::<RelayToDashboard>().await {
            RelayToDashboard::ClientList(list) => (c, list),
            other => panic!("expected client_list, got {other:?}"),
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).await.unwrap();
    }

    pub async fn send_json(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    /// The next text frame (skipping pings/pongs).
    pub async fn recv_text(&mut self) -> String {
        loop {
            let msg = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("connection ended")
                .expect("websocket error");
            match msg {
                Message::Text(t) => return t.to_string(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    pub async fn recv<T: Tagged>(&mut self) -> T {
        let text = self.recv_text().await;
        decode(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    pub async fn recv_value(&mut self) -> Value {
        serde_json::from_str(&self.recv_text().await).unwrap()
    }

    /// Reads (and drops) frames until the connection ends, however it ends; fails the test after `PATIENCE`.
    pub async fn ended(&mut self) -> Ended {
        loop {
            let msg = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("the connection is still open and silent");
            match msg {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map_or(Ended::Close(1005, String::new()), |f| {
                        Ended::Close(f.code.into(), f.reason.to_string())
                    })
                }
                Some(Ok(_)) => continue,
                Some(Err(tokio_tungstenite::tungstenite::Error::Io(e)))
                    if e.kind() == std::io::ErrorKind::ConnectionReset =>
                {
                    return Ended::Reset
                }
                Some(Err(tokio_tungstenite::tungstenite::Error::Protocol(
                    tokio_tungstenite::tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
                ))) => return Ended::Reset,
                Some(Err(e)) => panic!("unexpected error: {e}"),
                None => return Ended::Eof,
            }
        }
    }

    /// Reads until the relay closes the connection; returns the close code and reason.
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            let msg = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("timed out waiting for close");
            match msg {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (frame.code.into(), frame.reason.to_string())
                }
                Some(Ok(Message::Close(None))) => return (1005, String::new()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("error instead of a close frame: {e}"),
                None => panic!("connection ended without a close frame"),
            }
        }
    }
}

/// A v2 client: sends JSON, reads messages one at a time (batched frames are split), answers by request id.
pub struct V2 {
    pub c: Client,
    queue: std::collections::VecDeque<Value>,
    /// Frames received so far (a batch counts once).
    pub frames: usize,
}

impl From<Client> for V2 {
    fn from(c: Client) -> V2 {
        V2 {
            c,
            queue: Default::default(),
            frames: 0,
        }
    }
}

impl V2 {
    /// Connects to `url` (which may carry `?agent_id=` / `?session_id=`) without sending anything.
    pub async fn connect(url: &str) -> V2 {
        V2::from(Client::connect(url).await)
    }

    /// Connects and sends `hello` with these fields; returns the client and its `connected`.
    pub async fn hello(url: &str, hello: Value) -> (V2, Value) {
        let mut v = V2::connect(url).await;
        let mut msg = hello;
        msg["type"] = "hello".into();
        v.send(msg).await;
        let connected = v.next().await;
        assert_eq!(connected["type"], "connected", "{connected}");
        (v, connected)
    }

    /// A batching dashboard (`hello {batch: true}`).
    pub async fn dashboard(url: &str) -> V2 {
        V2::hello(url, serde_json::json!({"batch": true})).await.0
    }

    pub async fn send(&mut self, v: Value) {
        self.c.send_json(v).await;
    }

    /// The next message (a publication or a typed message).
    pub async fn next(&mut self) -> Value {
        loop {
            if let Some(v) = self.queue.pop_front() {
                return v;
            }
            let text = self.c.recv_text().await;
            self.frames += 1;
            match serde_json::from_str::<Value>(&text).unwrap() {
                Value::Array(items) => self.queue.extend(items),
                one => self.queue.push_back(one),
            }
        }
    }

    /// Reads until `pred` holds; returns that message (the ones before it are dropped).
    pub async fn until(&mut self, mut pred: impl FnMut(&Value) -> bool) -> Value {
        loop {
            let v = self.next().await;
            if pred(&v) {
                return v;
            }
        }
    }

    /// Sends a request with `id` and returns the `ack` or `error` that answers it.
    pub async fn request(&mut self, mut msg: Value, id: &str) -> Value {
        msg["id"] = id.into();
        self.send(msg).await;
        self.until(|m| m["id"] == id && (m["type"] == "ack" || m["type"] == "error"))
            .await
    }

    /// Subscribes; panics unless acknowledged. Returns the ack.
    pub async fn subscribe(&mut self, channel: &str) -> Value {
        let ack = self
            .request(
                serde_json::json!({"type": "subscribe", "channel": channel}),
                &format!("sub:{channel}"),
            )
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        ack
    }

    /// The next publication (skipping typed messages).
    pub async fn publication(&mut self) -> Value {
        self.until(|m| m.get("type").is_none()).await
    }
}

/// A TCP proxy in front of the relay whose connections the test can cut at once (a dropped network path).
pub struct Proxy {
    pub addr: SocketAddr,
    cut: tokio::sync::watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let cuts = cut.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                let mut cut = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut upstream) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                        _ = cut.changed() => {}
                    }
                    // Dropping both sockets: the relay and the client each see the connection vanish.
                });
            }
        });
        Proxy { addr, cut, task }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// Drops every connection that goes through the proxy now.
    pub fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
