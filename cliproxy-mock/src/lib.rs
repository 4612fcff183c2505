//! Mock upstream providers for cliproxy's tests and benchmarks.
//!
//! One server speaks each provider's wire format on its usual paths: OpenAI Chat Completions
//! (`/v1/chat/completions`, `/v1/models`), Anthropic Messages (`/v1/messages`,
//! `/v1/messages/count_tokens`) and the Claude OAuth token endpoint. What it answers is chosen by
//! a *directive* inside the conversation text (`mock:{json}`, see [`directive()`] and
//! [`Directive`]), so the server keeps no per-test state and parallel tests can share it. It only
//! observes: hits per key, cancelled streams and recent requests, readable through
//! [`MockServer`] or the `/__mock/*` control endpoints.
//!
//! # Directive fields
//! All optional; the last directive in the conversation wins; none gives the reply
//! "Hello from the mock.".
//! - `reply`, `thinking`: answer and reasoning text (Anthropic also sends a thinking block when
//!   the request enables thinking).
//! - `tool_calls`: `[{"name", "arguments", "id"?}]`, ids `call_<n>` / `toolu_<n>` from 0.
//! - `finish`: finish / stop reason, in either dialect's spelling.
//! - `usage`: `{"input","output","cached","cache_creation"}`; otherwise input = request bytes / 4
//!   and output = characters of reply and arguments / 4 (at least 1 each).
//! - `split` (byte offsets), `chunk` (bytes per piece), `delay_ms` (between events): pacing.
//! - `fault`, `per_key` (`{"<key>": fault}`): see [`Fault`].
//!
//! # Keys
//! A key (or bearer token) is valid when it starts with `sk-` and contains none of `bad`,
//! `invalid`, `revoked`. Anthropic OAuth tokens (`sk-ant-oat…`, with the `oauth-2025-04-20`
//! beta) containing `expired` get the OAuth-expired 401.

pub mod answer;
pub mod anthropic;
mod clock;
pub mod copilot;
pub mod directive;
pub mod fault;
mod ids;
pub mod keys;
pub mod kiro;
pub mod oauth;
pub mod openai;
pub mod state;
pub mod writer;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State as Shared};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};
use tokio::net::TcpListener;

pub use directive::{Directive, MARKER};
pub use fault::{Fault, FaultKind};
pub use state::RecordedRequest;
use state::{RequestView, State};

/// The text of a directive for `v`: `mock:` followed by compact JSON. Put it anywhere in a
/// message (or system prompt) to script the mock's answer.
pub fn directive(v: &serde_json::Value) -> String {
    format!("{MARKER}{v}")
}

/// A running mock server. Clones share the server; it runs on a task of the runtime that started
/// it and stops with that runtime.
#[derive(Clone, Debug)]
pub struct MockServer {
    addr: SocketAddr,
    state: Arc<State>,
}

impl MockServer {
    /// Starts a server on an ephemeral port of 127.0.0.1.
    pub async fn start() -> MockServer {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("binding an ephemeral port on 127.0.0.1");
        MockServer::start_on(listener).await
    }

    /// Starts a server on a listener the caller bound.
    pub async fn start_on(listener: TcpListener) -> MockServer {
        let addr = listener.local_addr().expect("a bound listener has a local address");
        let state = Arc::new(State::default());
        let app = router(Arc::clone(&state));
        // No Nagle delay: pieces of a split body must leave as separate segments, and small
        // SSE frames must not wait for an ACK.
        let listener = listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "setting TCP_NODELAY");
            }
        });
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "mock server stopped");
            }
        });
        MockServer { addr, state }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Base URL of the OpenAI-compatible API (chat at `{base}/chat/completions`).
    pub fn openai_base(&self) -> String {
        format!("{}/v1", self.url())
    }

    /// Base URL of the Anthropic API (messages at `{base}/v1/messages`).
    pub fn anthropic_base(&self) -> String {
        self.url()
    }

    /// Requests that reached a completion endpoint (chat completions, messages) with this API key
    /// or bearer token, whatever the answer was.
    pub fn hits(&self, key: &str) -> u64 {
        self.state.hits(key)
    }

    /// Requests that reached a completion endpoint, with or without a key.
    pub fn total_hits(&self) -> u64 {
        self.state.total_hits()
    }

    /// Streaming answers dropped before they were complete (the client went away).
    pub fn cancelled(&self) -> u64 {
        self.state.cancelled()
    }

    /// The most recent requests (up to [`state::RECORDED_REQUESTS`]), oldest first, control
    /// endpoints excluded.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    /// Clears the counters and the recorded requests.
    pub fn reset(&self) {
        self.state.reset();
    }
}

/// Every route of the mock.
fn router(state: Arc<State>) -> Router {
    Router::new()
        .merge(openai::routes())
        .merge(anthropic::routes())
        .merge(oauth::routes())
        .merge(kiro::routes())
        .merge(copilot::routes())
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/__mock/hits", get(control_hits))
        .route("/__mock/requests", get(control_requests))
        .route("/__mock/reset", post(control_reset))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), record))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Both providers serve `GET /v1/models`; Anthropic clients are told apart by their
/// `anthropic-version` header.
async fn models(headers: HeaderMap) -> Response {
    if headers.contains_key("anthropic-version") { anthropic::models(&headers) } else { openai::models(&headers) }
}

/// Records every request except the control endpoints' own.
async fn record(Shared(state): Shared<Arc<State>>, request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/__mock/") {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(error) => {
            let mut response = Response::new(Body::from(error.to_string()));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return response;
        }
    };
    state.record(RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        body: body.clone(),
    });
    next.run(Request::from_parts(parts, Body::from(body))).await
}

fn json_response(body: String) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    writer::whole(StatusCode::OK, headers, body.into())
}

/// `{"total":N,"cancelled":N,"by_key":{"sk-1":3}}`.
async fn control_hits(Shared(state): Shared<Arc<State>>) -> Response {
    json_response(serde_json::to_string(&state.hits_view()).unwrap_or_default())
}

/// The recorded requests, bodies as (lossy) UTF-8 text.
async fn control_requests(Shared(state): Shared<Arc<State>>) -> Response {
    let requests = state.requests();
    let views: Vec<RequestView> = requests.iter().map(RequestView::from).collect();
    json_response(serde_json::to_string(&views).unwrap_or_default())
}

async fn control_reset(Shared(state): Shared<Arc<State>>) -> StatusCode {
    state.reset();
    StatusCode::NO_CONTENT
}
