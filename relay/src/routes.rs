//! HTTP on the relay's port: the WebSocket upgrade (`/` and `/ws`), `GET /health`, `GET /stats`, the dashboard
//! (`/` without an upgrade, and every other page path), and the Host / Origin checks in front of all of them.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access::{check_host, check_origin};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::read_ahead::ReadAhead;

#[derive(Debug, Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub tracker: TaskTracker,
    pub shutdown: CancellationToken,
}

/// Paths the relay keeps for its own endpoints, today's and future ones (`/api/…`): a miss under them is an API
/// 404, never the dashboard page.
const API_PREFIXES: &[&str] = &["/api", "/ws", "/health", "/stats"];

pub fn router(state: AppState) -> Router {
    Router::new()
        // Seed-000 SDKs connect to the bare `ws://host:8265`: `/` upgrades when asked to, else it is the page.
        .route("/", get(root))
        .route("/ws", get(websocket))
        .route("/health", get(health))
        .route("/stats", get(stats))
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

fn forbidden(hub: &Hub, headers: &HeaderMap, reason: String) -> Response {
    if is_upgrade(headers) {
        Metrics::bump(&hub.metrics.rejected_upgrades);
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
        Err(refusal) => forbidden(&app.hub, req.headers(), refusal.to_string()),
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

/// The WebSocket endpoint. Done by hand (rather than axum's extractor) to hand tokio-tungstenite our exact
/// buffer and size limits and to see its typed errors (e.g. message too long → 1009).
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
    if let Err(refusal) = check_origin(origin, host, &app.hub.config) {
        return forbidden(&app.hub, headers, refusal.to_string());
    }
    if !header_has_token(headers, header::CONNECTION, "upgrade")
        || headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_none_or(|v| v != "13")
    {
        return (
            StatusCode::BAD_REQUEST,
            "bad WebSocket upgrade: need Connection: Upgrade and version 13\n",
        )
            .into_response();
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return (
            StatusCode::BAD_REQUEST,
            "bad WebSocket upgrade: missing Sec-WebSocket-Key\n",
        )
            .into_response();
    };
    let accept = derive_accept_key(key.as_bytes());
    let on_upgrade = hyper::upgrade::on(&mut req);

    let config = &app.hub.config;
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(config.read_buffer_bytes)
        .write_buffer_size(config.write_buffer_bytes)
        .max_write_buffer_size(
            config
                .write_buffer_bytes
                .saturating_add(config.max_message_bytes)
                .saturating_mul(2),
        )
        .max_message_size(Some(config.max_message_bytes))
        .max_frame_size(Some(config.max_message_bytes));
    let hub = app.hub.clone();
    let shutdown = app.shutdown.clone();
    app.tracker.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let io = ReadAhead::new(TokioIo::new(upgraded));
                let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(ws_config)).await;
                crate::connection::serve(ws, hub, shutdown).await;
            }
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });

    let mut res = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    res
}

async fn health(State(app): State<AppState>) -> Json<serde_json::Value> {
    let g = app.hub.gauges();
    Json(json!({
        "status": "ok",
        "version": crate::VERSION,
        "uptimeSecs": app.hub.metrics.started.elapsed().as_secs(),
        "connections": g.connections,
        "sdkClients": g.sdk_clients,
        "dashboards": g.dashboards,
    }))
}

async fn stats(State(app): State<AppState>) -> Json<serde_json::Value> {
    let mut doc = app.hub.metrics.to_json();
    doc["gauges"] = serde_json::to_value(app.hub.gauges()).unwrap_or_default();
    Json(doc)
}
