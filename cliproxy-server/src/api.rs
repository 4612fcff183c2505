//! Inference routes: `/v1/chat/completions`, `/v1/messages`, `/v1/messages/count_tokens`, `/v1/models`,
//! and `/healthz`; the request path every front shares (the Gemini front is in [`crate::gemini`]).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use cliproxy_core::client::{ProxyRequest, Reply, UrlTarget};
use cliproxy_core::dialects::Dialect;
use cliproxy_core::{Error, ErrorKind};
use http_body_util::BodyExt;
use serde_json::json;

use crate::AppState;
use crate::auth::ClientAuth;
use crate::render::{self, ApiError, Framing};

type S = State<Arc<AppState>>;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/chat/completions", post(chat))
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/v1/models", get(models))
        .route("/v1/models/{*id}", get(model))
        .route("/healthz", get(healthz))
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

async fn chat(State(state): S, headers: HeaderMap, uri: Uri, body: Body) -> Response {
    proxy(&state, Front::body(Dialect::OpenAiChat), headers, uri, body).await
}

async fn messages(State(state): S, headers: HeaderMap, uri: Uri, body: Body) -> Response {
    proxy(&state, Front::body(Dialect::Anthropic), headers, uri, body).await
}

/// How a route is answered: its dialect, what its URL says (for dialects whose body does not name the model)
/// and how a streamed answer is framed.
pub(crate) struct Front {
    pub dialect: Dialect,
    pub url: Option<UrlTarget>,
    pub framing: Framing,
}

impl Front {
    /// A dialect whose body says everything, streamed as SSE.
    fn body(dialect: Dialect) -> Self {
        Front { dialect, url: None, framing: Framing::Sse }
    }
}

/// Authenticates the caller; `Ok(key)` carries the client key for per-key rate limits.
pub(crate) fn authenticate(
    state: &AppState,
    dialect: Dialect,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Option<String>, ApiError> {
    match state.keys.check(headers, uri.query()) {
        ClientAuth::Open => Ok(None),
        ClientAuth::Key(k) => Ok(Some(k)),
        ClientAuth::Missing => Err(ApiError::new(
            dialect,
            Error::new(
                ErrorKind::Authentication,
                "Missing API key: send it as `Authorization: Bearer <key>`, `x-api-key: <key>`, `x-goog-api-key: <key>` or `?key=<key>`",
            )
            .with_code("missing_api_key"),
        )),
        ClientAuth::Invalid => Err(ApiError::new(
            dialect,
            Error::new(ErrorKind::Authentication, "Invalid API key").with_code("invalid_api_key"),
        )),
    }
}

/// Reads the body up to the configured limit; larger bodies get 413 in the caller's dialect.
pub(crate) async fn read_body(state: &AppState, dialect: Dialect, body: Body) -> Result<Bytes, ApiError> {
    let limit = state.body_limit;
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            dialect,
            Error::invalid_request(format!("request body exceeds {} MiB (body-limit-mb)", limit >> 20))
                .with_code("request_too_large")
                .with_http_status(413),
        )),
        Err(e) => Err(ApiError::new(
            dialect,
            Error::new(ErrorKind::Cancelled, format!("could not read the request body: {e}")).with_http_status(400),
        )),
    }
}

async fn proxy(state: &AppState, front: Front, headers: HeaderMap, uri: Uri, body: Body) -> Response {
    match authenticate(state, front.dialect, &headers, &uri) {
        Ok(client_key) => forward(state, front, client_key, headers, body).await,
        Err(e) => e.into_response(),
    }
}

/// Sends an authenticated request through the client and renders its answer.
pub(crate) async fn forward(
    state: &AppState,
    front: Front,
    client_key: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let dialect = front.dialect;
    let body = match read_body(state, dialect, body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    // Streaming decides its own framing; a non-streaming request may get whitespace keepalives.
    let streaming = match &front.url {
        Some(url) => url.stream,
        None => cliproxy_core::passthrough::Peek::parse(&body, dialect).is_ok_and(|p| p.stream),
    };
    let request = ProxyRequest { dialect, body, headers, client_key, url: front.url };
    let config = state.client.config();
    let keepalive = config.nonstream_keepalive_interval;
    let stream_keepalive =
        (config.streaming.keepalive_seconds > 0).then(|| Duration::from_secs(config.streaming.keepalive_seconds));
    if keepalive > 0 && !streaming {
        let client = state.client.clone();
        let fut = async move {
            match client.send(request).await? {
                Reply::Json { body, .. } => Ok(body),
                Reply::Stream(_) => Err(Error::upstream(None, "unexpected stream for a non-streaming request")),
            }
        };
        return render::json_with_keepalive(dialect, Duration::from_secs(keepalive), fut);
    }
    match state.client.send(request).await {
        Ok(Reply::Json { body, .. }) => render::json(body),
        Ok(Reply::Stream(events)) => render::stream(front.framing, dialect, events, stream_keepalive),
        Err(e) => ApiError::new(dialect, e).into_response(),
    }
}

async fn count_tokens(State(state): S, headers: HeaderMap, uri: Uri, body: Body) -> Response {
    let dialect = Dialect::Anthropic;
    if let Err(e) = authenticate(&state, dialect, &headers, &uri) {
        return e.into_response();
    }
    let body = match read_body(&state, dialect, body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match state.client.count_tokens(body, headers).await {
        Ok(b) => render::json(b),
        Err(e) => ApiError::new(dialect, e).into_response(),
    }
}

/// Anthropic clients send `anthropic-version` and get Anthropic's list shape; Google's clients send their
/// key as `x-goog-api-key` (or name themselves in `x-goog-api-client`) and get Gemini's.
fn listing_dialect(headers: &HeaderMap) -> Dialect {
    if headers.contains_key("anthropic-version") {
        Dialect::Anthropic
    } else if headers.contains_key("x-goog-api-key") || headers.contains_key("x-goog-api-client") {
        Dialect::Gemini
    } else {
        Dialect::OpenAiChat
    }
}

fn model_object(dialect: Dialect, id: &str, owner: &str) -> serde_json::Value {
    match dialect {
        Dialect::OpenAiChat => json!({"id": id, "object": "model", "created": 0, "owned_by": owner}),
        Dialect::Anthropic => {
            json!({"type": "model", "id": id, "display_name": id, "created_at": "1970-01-01T00:00:00Z"})
        }
        Dialect::Gemini => json!({
            "name": format!("models/{id}"),
            "displayName": id,
            "description": format!("{id}, served by {owner}"),
            "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
        }),
    }
}

async fn models(State(state): S, headers: HeaderMap, uri: Uri) -> Response {
    list_models(&state, listing_dialect(&headers), &headers, &uri)
}

/// Every model, in the list shape of `dialect`.
pub(crate) fn list_models(state: &AppState, dialect: Dialect, headers: &HeaderMap, uri: &Uri) -> Response {
    if let Err(e) = authenticate(state, dialect, headers, uri) {
        return e.into_response();
    }
    let list = state.client.models();
    let data: Vec<_> = list.iter().map(|m| model_object(dialect, &m.id, m.providers.join(",").as_str())).collect();
    let body = match dialect {
        Dialect::OpenAiChat => json!({"object": "list", "data": data}),
        Dialect::Anthropic => json!({
            "data": data,
            "has_more": false,
            "first_id": list.first().map(|m| m.id.as_str()),
            "last_id": list.last().map(|m| m.id.as_str()),
        }),
        Dialect::Gemini => json!({"models": data}),
    };
    axum::Json(body).into_response()
}

async fn model(State(state): S, Path(id): Path<String>, headers: HeaderMap, uri: Uri) -> Response {
    describe_model(&state, listing_dialect(&headers), &id, &headers, &uri)
}

/// One model, in the shape of `dialect`; 404 when no credential serves it.
pub(crate) fn describe_model(state: &AppState, dialect: Dialect, id: &str, headers: &HeaderMap, uri: &Uri) -> Response {
    if let Err(e) = authenticate(state, dialect, headers, uri) {
        return e.into_response();
    }
    let listed = state.client.models().into_iter().find(|m| m.id == id);
    match listed {
        Some(m) => axum::Json(model_object(dialect, &m.id, &m.providers.join(","))).into_response(),
        None if state.client.has_model(id) => axum::Json(model_object(dialect, id, "cliproxy")).into_response(),
        None => ApiError::new(dialect, Error::model_not_found(id)).into_response(),
    }
}
