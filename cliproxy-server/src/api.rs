//! Inference routes: `/v1/chat/completions`, `/v1/messages`, `/v1/messages/count_tokens`, `/v1/responses`,
//! `/v1/models`, and `/healthz`; the request path every front shares (the Gemini front is in [`crate::gemini`]).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cliproxy_core::Error;
use cliproxy_core::client::{ProxyRequest, Reply, UrlTarget};
use cliproxy_core::dialects::Dialect;
use serde_json::json;

use crate::AppState;
use crate::auth::ClientKey;
use crate::family::{ApiError, Family};
use crate::render::{self, Framing};

type S = State<Arc<AppState>>;

/// The `/v1/*` inference routes (behind the client key; CORS applies here when configured).
pub fn v1_routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/v1/responses", post(responses))
        .route("/v1/models", get(models))
        // Google's SDKs also call the stable `v1` (google-genai does by default): `POST` is the Gemini front.
        .route("/v1/models/{*id}", get(model).post(crate::gemini::call))
}

/// The Go original's alias without the version prefix (behind the client key, never CORS).
pub fn alias_routes() -> Router<Arc<AppState>> {
    Router::new().route("/chat/completions", post(chat))
}

/// Routes without authentication.
pub fn public_routes() -> Router<Arc<AppState>> {
    Router::new().route("/healthz", get(healthz))
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

async fn chat(
    State(state): S,
    Extension(ClientKey(key)): Extension<ClientKey>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    forward(&state, Front::body(Dialect::OpenAiChat), key, headers, body).await
}

async fn messages(
    State(state): S,
    Extension(ClientKey(key)): Extension<ClientKey>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    forward(&state, Front::body(Dialect::Anthropic), key, headers, body).await
}

async fn responses(
    State(state): S,
    Extension(ClientKey(key)): Extension<ClientKey>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    forward(&state, Front::body(Dialect::Responses), key, headers, body).await
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

/// Reads an inference body: the configured size limit and the body-read deadline.
pub(crate) async fn read_body(state: &AppState, family: Family, body: Body) -> Result<bytes::Bytes, ApiError> {
    crate::body::read(body, state.body_limit, state.limits.body_read, family).await
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
    let body = match read_body(state, dialect.into(), body).await {
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
        return render::json_with_keepalive(dialect.into(), Duration::from_secs(keepalive), fut);
    }
    match state.client.send(request).await {
        Ok(Reply::Json { body, .. }) => render::json(body),
        Ok(Reply::Stream(events)) => render::stream(front.framing, dialect.into(), events, stream_keepalive),
        Err(e) => ApiError::new(dialect, e).into_response(),
    }
}

async fn count_tokens(State(state): S, headers: HeaderMap, body: Body) -> Response {
    let body = match read_body(&state, Family::Api(Dialect::Anthropic), body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    match state.client.count_tokens(body, headers).await {
        Ok(b) => render::json(b),
        Err(e) => ApiError::new(Family::Api(Dialect::Anthropic), e).into_response(),
    }
}

/// Anthropic clients send `anthropic-version` and get Anthropic's list shape; Google's clients (see
/// [`Family::of`]) get Gemini's.
fn listing_dialect(headers: &HeaderMap) -> Dialect {
    match Family::of("/v1/models", headers) {
        Family::Api(d) => d,
        _ => Dialect::OpenAiChat,
    }
}

fn model_object(dialect: Dialect, id: &str, owner: &str) -> serde_json::Value {
    match dialect {
        Dialect::OpenAiChat | Dialect::Responses => {
            json!({"id": id, "object": "model", "created": 0, "owned_by": owner})
        }
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

async fn models(State(state): S, headers: HeaderMap) -> Response {
    list_models(&state, listing_dialect(&headers))
}

/// Every model, in the list shape of `dialect`.
pub(crate) fn list_models(state: &AppState, dialect: Dialect) -> Response {
    let list = state.client.models();
    let data: Vec<_> = list.iter().map(|m| model_object(dialect, &m.id, m.providers.join(",").as_str())).collect();
    let body = match dialect {
        Dialect::OpenAiChat | Dialect::Responses => json!({"object": "list", "data": data}),
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

async fn model(State(state): S, Path(id): Path<String>, headers: HeaderMap) -> Response {
    describe_model(&state, listing_dialect(&headers), &id)
}

/// One model, in the shape of `dialect`; 404 when no credential serves it.
pub(crate) fn describe_model(state: &AppState, dialect: Dialect, id: &str) -> Response {
    let listed = state.client.models().into_iter().find(|m| m.id == id);
    match listed {
        Some(m) => axum::Json(model_object(dialect, &m.id, &m.providers.join(","))).into_response(),
        None if state.client.has_model(id) => axum::Json(model_object(dialect, id, "cliproxy")).into_response(),
        None => ApiError::new(dialect, Error::model_not_found(id)).into_response(),
    }
}
