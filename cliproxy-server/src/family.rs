//! Route families and their one error rendering.
//!
//! Every route belongs to a family that fixes how its errors look on the wire: the OpenAI shape for
//! `/v1/chat/completions` and the other OpenAI-style routes, Anthropic's for `/v1/messages*`, a small
//! `{"error": "…"}` object for the management API (the Kiro page reads that field) and an HTML page for the
//! pages people open in a browser. [`ApiError`] is the only place a `cliproxy_core::Error` becomes an HTTP
//! answer, so a new client dialect is one arm in [`Family::of`].

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cliproxy_core::dialects::Dialect;
use cliproxy_core::error::Fault;
use cliproxy_core::{Error, ErrorKind};

use cliproxy_core::logtext::Clean;

/// The error dialect of a group of routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Inference routes, whose errors take the shape of the client dialect they speak (OpenAI's
    /// `{"error":{"message","type","param","code"}}` for chat completions and responses, Anthropic's
    /// `{"type":"error","error":{"type","message"}}` for messages, Google's `{"error":{"code","message","status"}}`
    /// for Gemini), in bodies and in stream error events.
    Api(Dialect),
    /// `/v0/management/*` and the JSON actions of the pages: `{"error": "…", "code": "…"}`.
    Management,
    /// Pages meant for a browser: a short HTML document.
    Html,
}

/// Headers only Google's clients send.
const GOOGLE_HEADERS: [&str; 2] = ["x-goog-api-key", "x-goog-api-client"];

/// Whether a `/v1/models/…` path calls a Gemini method (`models/{model}:generateContent`), which any client
/// may do without Google's headers.
fn is_gemini_call(path: &str) -> bool {
    path.rsplit_once(':')
        .is_some_and(|(_, method)| ["generateContent", "streamGenerateContent", "countTokens"].contains(&method))
}

/// The pages a person opens in a browser (everything else under `/v0` is JSON).
const HTML_PAGES: [&str; 4] =
    ["/v0/oauth/accounts", "/v0/oauth/accounts/login", "/v0/oauth/kiro", "/v0/oauth/kiro/login"];

impl Family {
    /// The family of a request, from its path (and, for the shared model routes, the headers that tell the
    /// clients apart: Anthropic's always send `anthropic-version`, Google's send their key as `x-goog-api-key`
    /// or name themselves in `x-goog-api-client`).
    pub fn of(path: &str, headers: &HeaderMap) -> Family {
        let models = path.starts_with("/v1/models");
        if path.starts_with("/v1/messages") || (models && headers.contains_key("anthropic-version")) {
            Family::Api(Dialect::Anthropic)
        } else if path == "/v1beta"
            || path.starts_with("/v1beta/")
            || (models && (is_gemini_call(path) || GOOGLE_HEADERS.iter().any(|h| headers.contains_key(*h))))
        {
            Family::Api(Dialect::Gemini)
        } else if path.starts_with("/v1/responses") {
            Family::Api(Dialect::Responses)
        } else if HTML_PAGES.contains(&path) {
            Family::Html
        } else if path.starts_with("/v0/") {
            Family::Management
        } else {
            Family::Api(Dialect::OpenAiChat)
        }
    }

    /// The body of `e` in this family's shape.
    pub fn body(self, e: &Error) -> Vec<u8> {
        match self {
            Family::Api(d) => d.error_body(e),
            Family::Management => serde_json::to_vec(&serde_json::json!({"error": e.message(), "code": e.code()}))
                .expect("json values serialize"),
            Family::Html => format!(
                "<!doctype html><html><head><meta charset=\"utf-8\"><title>cliproxy</title></head>\
                 <body><p>{}</p></body></html>",
                html_escape(e.message())
            )
            .into_bytes(),
        }
    }

    /// An error event for a stream that already started: its SSE event name and data.
    pub fn event(self, e: &Error) -> (Option<&'static str>, Vec<u8>) {
        match self {
            Family::Api(d) => {
                let ev = d.error_event(e);
                (ev.event, ev.data.into_bytes())
            }
            _ => (None, self.body(e)),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Family::Html => "text/html; charset=utf-8",
            _ => "application/json",
        }
    }
}

impl From<Dialect> for Family {
    fn from(d: Dialect) -> Family {
        Family::Api(d)
    }
}

pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A core error bound to the family it is rendered in.
pub struct ApiError {
    pub family: Family,
    pub error: Error,
}

impl ApiError {
    pub fn new(family: impl Into<Family>, error: Error) -> Self {
        ApiError { family: family.into(), error }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = &self.error;
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut resp =
            (status, [(header::CONTENT_TYPE, self.family.content_type())], self.family.body(e)).into_response();
        let h = resp.headers_mut();
        if let Some(secs) = e.retry_after_secs() {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if !e.is_retryable() {
            h.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        // The client's mistakes are routine; failures of an upstream or of ours are worth the operator's eye.
        match e.fault() {
            Fault::Client => tracing::debug!(kind = %e.kind(), message = %Clean(e.message()), "request rejected"),
            fault => tracing::warn!(
                kind = %e.kind(),
                fault = fault.as_str(),
                status = e.status(),
                message = %Clean(e.message()),
                "request failed"
            ),
        }
        resp
    }
}

/// Unknown paths: 404 in the family of the path.
pub async fn not_found(req: axum::extract::Request) -> Response {
    let message = format!("no route {} {}", req.method(), req.uri().path());
    route_error(&req, message, "unknown_route", 404)
}

/// Known paths called with another method: 405 in the family of the path.
pub async fn method_not_allowed(req: axum::extract::Request) -> Response {
    let message = format!("{} is not allowed on {}", req.method(), req.uri().path());
    route_error(&req, message, "method_not_allowed", 405)
}

fn route_error(req: &axum::extract::Request, message: String, code: &'static str, status: u16) -> Response {
    let e = Error::new(ErrorKind::InvalidRequest, message).with_code(code).with_http_status(status);
    ApiError::new(Family::of(req.uri().path(), req.headers()), e).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_by_path() {
        let none = HeaderMap::new();
        let mut anthropic = HeaderMap::new();
        anthropic.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        assert_eq!(Family::of("/v1/chat/completions", &none), Family::Api(Dialect::OpenAiChat));
        assert_eq!(Family::of("/v1/messages/count_tokens", &none), Family::Api(Dialect::Anthropic));
        assert_eq!(Family::of("/v1/models", &none), Family::Api(Dialect::OpenAiChat));
        assert_eq!(Family::of("/v1/models", &anthropic), Family::Api(Dialect::Anthropic));
        assert_eq!(Family::of("/v0/management/cooldowns", &none), Family::Management);
        assert_eq!(Family::of("/v0/oauth/kiro/accounts", &none), Family::Management);
        assert_eq!(Family::of("/v0/oauth/kiro", &none), Family::Html);
        assert_eq!(Family::of("/v1/responses", &none), Family::Api(Dialect::Responses));
        assert_eq!(Family::of("/nowhere", &none), Family::Api(Dialect::OpenAiChat));
    }

    #[test]
    fn gemini_routes_and_clients_are_told_apart() {
        let none = HeaderMap::new();
        let mut google = HeaderMap::new();
        google.insert("x-goog-api-key", HeaderValue::from_static("k"));
        let gemini = Family::Api(Dialect::Gemini);
        assert_eq!(Family::of("/v1beta/models", &none), gemini);
        assert_eq!(Family::of("/v1beta/models/m:generateContent", &none), gemini);
        assert_eq!(Family::of("/v1beta/nowhere", &none), gemini);
        assert_eq!(Family::of("/v1/models/m:streamGenerateContent", &none), gemini);
        assert_eq!(Family::of("/v1/models", &google), gemini);
        // An OpenAI model id may hold a colon; only Gemini's methods make a Gemini call.
        assert_eq!(Family::of("/v1/models/ft:gpt-4o:org", &none), Family::Api(Dialect::OpenAiChat));
        assert_eq!(Family::of("/v1beta2/models", &none), Family::Api(Dialect::OpenAiChat));
    }

    #[test]
    fn gemini_errors_are_googles_shape() {
        let resp = ApiError::new(Dialect::Gemini, Error::invalid_request("contents: missing")).into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(resp.headers()["x-should-retry"], "false");
        let body = Family::Api(Dialect::Gemini).body(&Error::invalid_request("contents: missing"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"code": 400, "message": "contents: missing", "status": "INVALID_ARGUMENT"}})
        );
    }

    #[test]
    fn html_body_escapes_the_message() {
        let body = Family::Html.body(&Error::invalid_request("<script>x</script>"));
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("&lt;script&gt;") && !text.contains("<script>"), "{text}");
    }

    #[test]
    fn management_body_is_a_plain_error_string() {
        let v: serde_json::Value =
            serde_json::from_slice(&Family::Management.body(&Error::invalid_request("bad"))).unwrap();
        assert_eq!(v["error"], "bad");
        assert_eq!(v["code"], "invalid_request");
    }
}
