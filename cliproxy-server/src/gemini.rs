//! The Gemini front: `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent` and
//! `:countTokens` (also under `/v1`), and `GET /v1beta/models[/{model}]`, answered (errors included) in
//! Google's shapes.
//!
//! The model is part of the last path segment (`{model}:{method}`), which axum cannot split with a
//! parameter, so the whole rest of the path is captured and split at its last `:`: model names may hold
//! `/` and `:`, methods never do.
//!
//! `streamGenerateContent` answers SSE without `alt` and with `alt=sse` (what the Go original does without
//! `alt`, and what Google's SDKs ask for), and Google's streamed JSON array with `alt=json`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cliproxy_core::client::UrlTarget;
use cliproxy_core::dialects::Dialect;
use cliproxy_core::{Error, ErrorKind};

use crate::AppState;
use crate::api::{self, Front};
use crate::auth::ClientKey;
use crate::family::ApiError;
use crate::render::{self, Framing};

type S = State<Arc<AppState>>;

/// The `/v1beta/*` routes (behind the client key, like `/v1/*`). Google's SDKs also use the stable `v1`
/// (google-genai does by default): [`crate::api::v1_routes`] sends `POST /v1/models/*` to [`call`], and
/// `GET /v1/models` is shared with the other dialects, which tell Google's clients by their headers.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1beta/models", get(list)).route("/v1beta/models/{*action}", get(describe).post(call))
}

async fn list(State(state): S) -> Response {
    api::list_models(&state, Dialect::Gemini)
}

async fn describe(State(state): S, Path(model): Path<String>) -> Response {
    api::describe_model(&state, Dialect::Gemini, &model)
}

fn error(kind: ErrorKind, message: String) -> Response {
    ApiError::new(Dialect::Gemini, Error::new(kind, message)).into_response()
}

/// `models/{model}:{method}`, the URL naming the model and whether to stream.
pub(crate) async fn call(
    State(state): S,
    Extension(ClientKey(client_key)): Extension<ClientKey>,
    Path(action): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    let Some((model, method)) = action.rsplit_once(':') else {
        return error(
            ErrorKind::ModelNotFound,
            format!(
                "models/{action} names no method: POST to models/{{model}}:generateContent, :streamGenerateContent or :countTokens"
            ),
        );
    };
    if model.is_empty() {
        return error(ErrorKind::InvalidRequest, format!("models/{action} names no model"));
    }
    let gemini = |stream: bool, framing: Framing| Front {
        dialect: Dialect::Gemini,
        url: Some(UrlTarget { model: model.to_owned(), stream }),
        framing,
    };
    match method {
        "generateContent" => api::forward(&state, gemini(false, Framing::Sse), client_key, headers, body).await,
        "streamGenerateContent" => match alt(&uri).as_deref() {
            None | Some("sse") => api::forward(&state, gemini(true, Framing::Sse), client_key, headers, body).await,
            Some("json") => api::forward(&state, gemini(true, Framing::JsonArray), client_key, headers, body).await,
            Some(other) => error(
                ErrorKind::InvalidRequest,
                format!("unsupported alt={other}: streams are sent as alt=sse or alt=json"),
            ),
        },
        "countTokens" => {
            let body = match api::read_body(&state, Dialect::Gemini.into(), body).await {
                Ok(b) => b,
                Err(e) => return e.into_response(),
            };
            match state.client.count_gemini_tokens(model, body, headers).await {
                Ok(b) => render::json(b),
                Err(e) => ApiError::new(Dialect::Gemini, e).into_response(),
            }
        }
        other => error(
            ErrorKind::ModelNotFound,
            format!(
                "unknown method '{other}': this server answers generateContent, streamGenerateContent and countTokens"
            ),
        ),
    }
}

/// The `alt` (or `$alt`) query parameter: the response format.
fn alt(uri: &Uri) -> Option<String> {
    form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == "alt" || k == "$alt")
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alt_is_read_in_both_spellings() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert_eq!(alt(&uri("/v1beta/models/m:streamGenerateContent?alt=sse&key=k")).as_deref(), Some("sse"));
        assert_eq!(alt(&uri("/x?%24alt=json")).as_deref(), Some("json"));
        assert_eq!(alt(&uri("/x?key=k")), None);
        assert_eq!(alt(&uri("/x")), None);
    }
}
