//! HTTP on the relay's port: the WebSocket upgrade (`/` and `/ws`), `GET /health`, `GET /stats`, `GET /metrics`,
//! `POST /api/publish`, the dashboard (`/` without an upgrade, and every other page path), and the Host /
//! Origin checks in front of all of them.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access::{check_host, check_origin};
use crate::auth::{Denied, Principal, Source};
use crate::connection::{ConnectParams, Start};
use crate::engine::{EngineError, PublishRequest};
use crate::hub::{ConnectionRefused, ConnectionSlot, Hub};
use crate::metrics::{Metrics, Rejection};
use crate::prometheus;
use crate::publish::{self, Refusal};
use crate::transport::Transport;
use devrelay_protocol::channel::Publisher;
use devrelay_protocol::v2::V2ErrorCode;

#[derive(Debug, Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub tracker: TaskTracker,
    pub shutdown: CancellationToken,
}

/// Paths the relay keeps for its own endpoints, today's and future ones (`/api/…`): a miss under them is an API
/// 404, never the dashboard page.
const API_PREFIXES: &[&str] = &["/api", "/ws", "/health", "/stats", "/metrics"];
/// Room in a `POST /api/publish` body beyond its data (`max_publish_bytes`, or `max_snapshot_bytes` for a
/// snapshot), for the channel, event and JSON.
const PUBLISH_ENVELOPE_BYTES: usize = 64 << 10;

pub fn router(state: AppState) -> Router {
    let config = &state.hub.config;
    let body_limit = config
        .max_publish_bytes
        .max(config.max_snapshot_bytes)
        .saturating_add(PUBLISH_ENVELOPE_BYTES);
    Router::new()
        // Seed-000 SDKs connect to the bare `ws://host:8265`: `/` upgrades when asked to, else it is the page.
        .route("/", get(root))
        .route("/ws", get(websocket))
        .route("/health", get(health))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .route(
            "/api/publish",
            post(api_publish).layer(DefaultBodyLimit::max(body_limit)),
        )
        .fallback(dashboard)
        .layer(middleware::from_fn_with_state(state.clone(), host_guard))
        .with_state(state)
}

async fn root(state: State<AppState>, req: Request) -> Response {
    if is_upgrade(req.headers()) {
        websocket(state, req).await
    } else {
        state
            .hub
            .config
            .dashboard
            .respond(req.uri().path(), req.headers())
    }
}

/// Every path without a route: the dashboard's files and client-side routes, or an API 404.
async fn dashboard(
    State(app): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path();
    let is_api = API_PREFIXES.iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    if is_api {
        let body = json!({"error": "not found", "path": path});
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
            "the dashboard's files are read-only: GET or HEAD\n",
        )
            .into_response();
    }
    app.hub.config.dashboard.respond(path, &headers)
}

fn forbidden(hub: &Hub, headers: &HeaderMap, why: Rejection, reason: String) -> Response {
    if is_upgrade(headers) {
        hub.metrics.reject(why);
    }
    tracing::warn!(%reason, "request refused");
    (StatusCode::FORBIDDEN, reason).into_response()
}

async fn host_guard(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .map(|h| h.to_str().unwrap_or("<non-ascii>"));
    match check_host(host, &app.hub.config) {
        Ok(()) => next.run(req).await,
        Err(refusal) => forbidden(
            &app.hub,
            req.headers(),
            Rejection::Host,
            refusal.to_string(),
        ),
    }
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    header_has_token(headers, header::UPGRADE, "websocket")
}

/// The WebSocket endpoint. Done by hand (rather than axum's extractor): the connection takes the upgraded TCP
/// socket itself, reads its frames with devrelay's own reader (`ws_reader.rs`) and writes through its outbox.
async fn websocket(State(app): State<AppState>, mut req: Request) -> Response {
    let headers = req.headers();
    if !is_upgrade(headers) {
        return (
            StatusCode::UPGRADE_REQUIRED,
            [(header::UPGRADE, "websocket")],
            "devrelay: connect with a WebSocket client (SDK or dashboard); see /health and /stats\n",
        )
            .into_response();
    }
    let origin = headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or("<non-ascii>"));
    // Already checked by `host_guard`; the Origin check needs it to recognise the relay's own pages.
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    // Every Origin may open a socket: an SDK runs inside its app's page, whatever that page's origin. One the
    // relay does not allow caps the connection's role at `sdk` (auth.rs), so such a page can publish its own
    // session and nothing else — never watch, command, or be an agent.
    let foreign_origin = check_origin(origin, host, &app.hub.config)
        .err()
        .map(|_| origin.unwrap_or_default().to_string());
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(devrelay_protocol::auth::bearer)
        .map(str::to_string);
    if !header_has_token(headers, header::CONNECTION, "upgrade")
        || headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_none_or(|v| v != "13")
    {
        app.hub.metrics.reject(Rejection::BadRequest);
        return (
            StatusCode::BAD_REQUEST,
            "bad WebSocket upgrade: need Connection: Upgrade and version 13\n",
        )
            .into_response();
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        app.hub.metrics.reject(Rejection::BadRequest);
        return (
            StatusCode::BAD_REQUEST,
            "bad WebSocket upgrade: missing Sec-WebSocket-Key\n",
        )
            .into_response();
    };
    // Capacity last: only a valid upgrade takes a slot (and spends the connection rate).
    let slot = match app.hub.admit_connection() {
        Ok(slot) => slot,
        Err(refused) => {
            let (status, why) = match refused {
                ConnectionRefused::Full(_) => (StatusCode::SERVICE_UNAVAILABLE, Rejection::Full),
                ConnectionRefused::Rate(_) => (StatusCode::TOO_MANY_REQUESTS, Rejection::Rate),
            };
            app.hub.metrics.reject(why);
            tracing::warn!(reason = %refused, "upgrade refused");
            return (
                status,
                [(header::RETRY_AFTER, "1")],
                format!("devrelay: {refused}\n"),
            )
                .into_response();
        }
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);

    let params = ConnectParams::from_query(req.uri().query());
    let token = params.token.clone().or(bearer);
    let pending = Box::new(PendingUpgrade {
        on_upgrade,
        foreign_origin,
        token,
        hub: app.hub.clone(),
        shutdown: app.shutdown.clone(),
        params,
        slot,
    });
    app.tracker.spawn(connect(pending));

    let mut res = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}

/// An accepted upgrade, until hyper hands its socket over. Boxed into the connection's task, which then holds
/// one pointer instead of each of these beside the connection they become (`connection::Start`).
struct PendingUpgrade {
    on_upgrade: hyper::upgrade::OnUpgrade,
    foreign_origin: Option<String>,
    token: Option<String>,
    hub: Arc<Hub>,
    shutdown: CancellationToken,
    params: ConnectParams,
    slot: ConnectionSlot,
}

impl PendingUpgrade {
    /// Waits for the upgrade and admits the connection's principal. `None`: nothing to serve.
    async fn upgraded(self: Box<Self>) -> Option<Box<Start>> {
        let PendingUpgrade {
            on_upgrade,
            foreign_origin,
            token,
            hub,
            shutdown,
            params,
            slot,
        } = *self;
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return None;
            }
        };
        let (transport, leftover) = Transport::from_upgraded(upgraded);
        let source = Source {
            loopback: transport.peer_is_loopback(),
            foreign_origin,
        };
        let admitted = Principal::admit(&hub.config.auth, token.as_deref(), source);
        // The socket itself: the connection reads its frames (`ws_reader.rs`) and writes to it (`outbox.rs`).
        let Transport::Tcp(tcp) = transport else {
            tracing::warn!("upgraded connection is not a TCP socket; dropped");
            return None;
        };
        Some(Box::new(Start {
            tcp,
            leftover,
            hub,
            shutdown,
            params,
            admitted,
            slot,
        }))
    }
}

/// A WebSocket connection's task, from the upgrade to the close.
async fn connect(pending: Box<PendingUpgrade>) {
    // Boxed: the wait for the upgrade is over before the connection starts, and need not size its task.
    if let Some(start) = Box::pin(pending.upgraded()).await {
        crate::connection::serve(start).await;
    }
}

/// `GET /health`: open to anyone (monitors, `curl`), so it shows counts only. Channel names carry session and
/// agent ids, so `channelStats` (seed 002's channel → subscribers) comes with the dashboard token only.
async fn health(State(app): State<AppState>, headers: HeaderMap) -> Json<serde_json::Value> {
    let g = app.hub.gauges();
    let authorized = app.hub.config.auth.check_bearer(&headers, "").is_ok();
    let mut doc = json!({
        "status": "ok",
        "version": crate::VERSION,
        "uptimeSecs": app.hub.metrics.started.elapsed().as_secs(),
        "connections": g.connections,
        "sdkClients": g.sdk_clients,
        "agents": g.agents,
        "dashboards": g.dashboards,
        "activeChannels": g.active_channels,
    });
    if authorized {
        // Busiest first, at most `channel_stats_limit`.
        let channel_stats: serde_json::Map<String, serde_json::Value> = app
            .hub
            .channel_stats()
            .into_iter()
            .map(|c| (c.channel, c.subscribers.into()))
            .collect();
        doc["channelStats"] = channel_stats.into();
    }
    Json(doc)
}

/// A 401 / 403 for an HTTP endpoint that needs the dashboard token.
fn denied(hub: &Hub, d: Denied) -> Response {
    Metrics::bump(&hub.metrics.auth_failures);
    let body = json!({ "error": { "code": d.v2_code(), "message": d.message } });
    let mut res = (d.http_status(), Json(body)).into_response();
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"devrelay\""),
    );
    res
}

/// `GET /stats`: every counter, and per-channel numbers (which name sessions and agents): dashboard token only.
async fn stats(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(d) = app.hub.config.auth.check_bearer(&headers, "GET /stats") {
        return denied(&app.hub, d);
    }
    let mut doc = app.hub.metrics.to_json();
    doc["gauges"] = serde_json::to_value(app.hub.gauges()).unwrap_or_default();
    doc["channels"] = serde_json::to_value(app.hub.channel_stats()).unwrap_or_default();
    doc["historyBytes"] = app.hub.history_bytes().into();
    doc["snapshotCacheBytes"] = app.hub.snapshot_cache_bytes().into();
    doc["queues"] = serde_json::to_value(app.hub.queue_depth()).unwrap_or_default();
    doc["pendingPermissions"] = app.hub.permissions.len().into();
    doc["retained"] = serde_json::to_value(app.hub.retained()).unwrap_or_default();
    Json(doc).into_response()
}

/// `GET /metrics`: the numbers of `/stats` for Prometheus (`prometheus.rs`), with the dashboard token like
/// `/stats` (Prometheus sends it with `authorization` / `bearer_token_file`) unless `--metrics-public`.
async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if !app.hub.config.metrics_public {
        if let Err(d) = app.hub.config.auth.check_bearer(
            &headers,
            "GET /metrics (or start the relay with --metrics-public)",
        ) {
            return denied(&app.hub, d);
        }
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let openmetrics = prometheus::wants_openmetrics(accept);
    let body = prometheus::render(&app.hub, openmetrics);
    let content_type = if openmetrics {
        prometheus::OPENMETRICS
    } else {
        prometheus::TEXT
    };
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The body of `POST /api/publish`.
#[derive(serde::Deserialize)]
struct PublishBody<'a> {
    #[serde(borrow)]
    channel: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    event: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    data: Option<&'a serde_json::value::RawValue>,
}

fn api_error(status: StatusCode, r: Refusal) -> Response {
    let body = json!({ "error": { "code": r.code, "message": r.message } });
    (status, Json(body)).into_response()
}

/// `POST /api/publish {channel, event, data}`: publish without holding a socket (a CI job, a script, a
/// database bridge), with the rules of the HTTP API (`channel::may_publish`), given `Authorization: Bearer
/// <dashboard token>`. Answers `{channel, offset, epoch}`. Browsers cannot use it from another site: a foreign `Origin` is refused, and the JSON content
/// type a cross-site page would need triggers a CORS preflight this relay does not grant.
async fn api_publish(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let origin = headers
        .get(header::ORIGIN)
        .map(|o| o.to_str().unwrap_or("<non-ascii>"));
    let host = headers
        .get(header::HOST)
        .map(|h| h.to_str().unwrap_or("<non-ascii>"));
    if let Err(refusal) = check_origin(origin, host, &app.hub.config) {
        return forbidden(&app.hub, &headers, Rejection::Origin, refusal.to_string());
    }
    if let Err(d) = app
        .hub
        .config
        .auth
        .check_bearer(&headers, "POST /api/publish")
    {
        return denied(&app.hub, d);
    }
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json_body {
        return api_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Refusal::new(
                V2ErrorCode::InvalidMessage,
                "send the body as Content-Type: application/json",
            ),
        );
    }
    let parsed = std::str::from_utf8(&body)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str::<PublishBody<'_>>(text).map_err(|e| e.to_string()));
    let p = match parsed {
        Ok(p) => p,
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                Refusal::new(
                    V2ErrorCode::InvalidMessage,
                    format!("body must be {{\"channel\", \"event\", \"data\"}}: {e}"),
                ),
            )
        }
    };
    let hub = &app.hub;
    let data = p.data.map(serde_json::value::RawValue::get);
    let checked = match publish::check(
        &hub.config,
        Publisher::ServerApi,
        &p.channel,
        &p.event,
        data,
    ) {
        Ok(c) => c,
        Err(r) => {
            let status = match r.code {
                V2ErrorCode::Forbidden => StatusCode::FORBIDDEN,
                V2ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::BAD_REQUEST,
            };
            return api_error(status, r);
        }
    };
    hub.metrics.inbound("publish", body.len());
    let request = PublishRequest {
        channel: checked.channel.name(),
        event: &p.event,
        data,
        kind: checked.kind,
        legacy: checked.legacy,
        data_in_legacy: None,
        owner: None,
        seq: None,
    };
    match hub.publish(request) {
        Ok(publication) => Json(json!({
            "channel": checked.channel.name(),
            "offset": publication.offset,
            "epoch": publication.epoch,
        }))
        .into_response(),
        Err(e @ EngineError::TooManyChannels(_)) => api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            Refusal::new(V2ErrorCode::TooManyChannels, e.to_string()),
        ),
        // Neither can happen without an owner or a seq; said anyway.
        Err(e @ (EngineError::NotOwner(_) | EngineError::Duplicate { .. })) => api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            Refusal::new(V2ErrorCode::Internal, e.to_string()),
        ),
    }
}
