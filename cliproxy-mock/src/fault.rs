//! Faults a directive can ask for, and the parts of answering them that every dialect shares.
//! What a fault looks like on the wire (status, error body, headers) belongs to each dialect,
//! which supplies it through [`Dialect`].

use std::sync::Arc;
use std::time::Duration;

use axum::response::Response;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::state::State;
use crate::writer::{self, Delivery, EventBuf, Payload};

/// Seconds a rate-limited client is told to wait when the directive does not say.
pub const DEFAULT_RETRY_AFTER: u64 = 30;

/// A fault: an error answer (`status` and/or `kind`), a delay before answering (`hang_ms`), or a
/// broken stream (`stream_error_after`, `cut_after`). They combine: a hang followed by an error,
/// extra `headers` on a normal answer, and so on.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Fault {
    /// Answer with this status (overrides the kind's status).
    pub status: Option<u16>,
    /// Extra response headers (string or number values), on error and normal answers alike.
    pub headers: serde_json::Map<String, Value>,
    /// Error body: a JSON string is sent as plain text, any other value as JSON. Without it the
    /// dialect's own error body for the status or kind is sent.
    pub body: Option<Value>,
    /// A provider error in the dialect of the endpoint.
    pub kind: Option<FaultKind>,
    /// `retry-after` for `rate_limit` (seconds, string or number).
    pub retry_after: Option<Value>,
    /// Wait this long before sending anything, status line included.
    pub hang_ms: Option<u64>,
    /// Send this many stream events, then an in-stream error, then end the stream.
    pub stream_error_after: Option<usize>,
    /// Send this many stream events, then close the connection without finishing the body.
    pub cut_after: Option<usize>,
    /// Kiro: apply the fault only on this API host (`q` or `cw`), so a test can fail one host and not the
    /// other.
    pub host: Option<String>,
    /// Apply the fault only to requests for this model, so a test can exhaust one model's quota while a
    /// proxy falls back to another with the same conversation.
    pub model: Option<String>,
}

/// The provider errors a fault can name; each dialect renders them in its own shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    RateLimit,
    Quota,
    InvalidKey,
    Overloaded,
    ServerError,
}

/// A complete error answer before the dialect's common headers are added.
#[derive(Debug)]
pub struct ErrorAnswer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl ErrorAnswer {
    /// A JSON error answer.
    pub fn json(status: StatusCode, body: impl Into<Bytes>) -> ErrorAnswer {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        ErrorAnswer { status, headers, body: body.into() }
    }
}

impl ErrorAnswer {
    /// The response: the dialect's `common` headers, then the answer's own, then the fault's
    /// extra headers, each replacing same-named ones before it.
    pub fn into_response(self, mut common: HeaderMap, fault: Option<&Fault>) -> Response {
        for (name, value) in &self.headers {
            common.insert(name, value.clone());
        }
        if let Some(fault) = fault {
            fault.apply_headers(&mut common);
        }
        writer::whole(self.status, common, self.body)
    }
}

/// A rendered normal answer, before any fault breaks it.
pub enum Rendered {
    /// Stream events.
    Events(EventBuf),
    /// A whole JSON (or other) body.
    Whole(Vec<u8>),
}

/// Sends a normal answer as `delivery` says, broken as the fault asks: `stream_error_after`
/// keeps that many events and appends the dialect's `in_stream_error`; `cut_after` closes the
/// connection after that many events (halfway through a whole body). The fault's extra headers
/// are added last.
pub fn deliver(
    fault: Option<&Fault>,
    rendered: Rendered,
    in_stream_error: impl FnOnce(&mut EventBuf),
    mut delivery: Delivery,
    mut headers: HeaderMap,
    state: &Arc<State>,
) -> Response {
    let payload = match rendered {
        Rendered::Events(mut events) => {
            if let Some(n) = fault.and_then(|f| f.stream_error_after) {
                events.truncate(n);
                in_stream_error(&mut events);
            }
            if let Some(n) = fault.and_then(|f| f.cut_after) {
                delivery.cut_at = Some(events.end_of(n));
            }
            events.finish()
        }
        Rendered::Whole(body) => {
            if fault.is_some_and(|f| f.cut_after.is_some()) {
                delivery.cut_at = Some(body.len() / 2);
            }
            Payload::whole(body)
        }
    };
    if let Some(fault) = fault {
        fault.apply_headers(&mut headers);
    }
    delivery.respond(StatusCode::OK, headers, payload, state)
}

/// How one dialect renders faults.
pub trait Dialect {
    /// The dialect's answer for a fault kind.
    fn kind_answer(&self, kind: FaultKind, fault: &Fault) -> ErrorAnswer;
    /// The dialect's error answer for a bare status.
    fn status_answer(&self, status: StatusCode) -> ErrorAnswer;
}

impl Fault {
    /// Checks what serde cannot: statuses and headers must be valid HTTP.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(status) = self.status {
            StatusCode::from_u16(status).map_err(|_| format!("fault status {status}"))?;
        }
        for (name, value) in &self.headers {
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("fault header name {name:?}"))?;
            HeaderValue::from_str(&header_text(value)).map_err(|_| format!("fault header value {value}"))?;
        }
        Ok(())
    }

    /// Waits out `hang_ms`, if any.
    pub async fn hang(&self) {
        if let Some(ms) = self.hang_ms.filter(|&ms| ms > 0) {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }

    /// The `retry-after` header value.
    pub fn retry_after(&self) -> String {
        match &self.retry_after {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => DEFAULT_RETRY_AFTER.to_string(),
        }
    }

    /// `retry-after` in seconds, for reset times derived from it (an HTTP date counts as the
    /// default).
    pub fn retry_after_secs(&self) -> u64 {
        self.retry_after().trim().parse().unwrap_or(DEFAULT_RETRY_AFTER)
    }

    /// The error answer this fault replaces the normal answer with, if it does.
    pub fn error_answer(&self, dialect: &impl Dialect) -> Option<ErrorAnswer> {
        let status = self.status.and_then(|s| StatusCode::from_u16(s).ok());
        let mut answer = match (self.kind, status) {
            (Some(kind), status) => {
                let mut answer = dialect.kind_answer(kind, self);
                if let Some(status) = status {
                    answer.status = status;
                }
                answer
            }
            (None, Some(status)) => dialect.status_answer(status),
            (None, None) => return None,
        };
        match &self.body {
            Some(Value::String(text)) => {
                answer.headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
                answer.body = Bytes::from(text.clone());
            }
            Some(json) => {
                answer.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                answer.body = Bytes::from(json.to_string());
            }
            None => {}
        }
        Some(answer)
    }

    /// Adds the fault's extra headers, replacing any of the same name.
    pub fn apply_headers(&self, headers: &mut HeaderMap) {
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) =
                (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&header_text(value)))
            {
                headers.insert(name, value);
            }
        }
    }
}

fn header_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Plain;

    impl Dialect for Plain {
        fn kind_answer(&self, kind: FaultKind, _: &Fault) -> ErrorAnswer {
            let status = match kind {
                FaultKind::RateLimit => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            ErrorAnswer::json(status, "{\"kind\":true}")
        }
        fn status_answer(&self, status: StatusCode) -> ErrorAnswer {
            ErrorAnswer::json(status, "{\"status\":true}")
        }
    }

    fn fault(v: Value) -> Fault {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn status_kind_and_body_combine() {
        use serde_json::json;
        assert!(fault(json!({"hang_ms": 5})).error_answer(&Plain).is_none());
        let a = fault(json!({"status": 418})).error_answer(&Plain).unwrap();
        assert_eq!((a.status.as_u16(), &a.body[..]), (418, &b"{\"status\":true}"[..]));
        let a = fault(json!({"kind": "rate_limit", "status": 503})).error_answer(&Plain).unwrap();
        assert_eq!((a.status.as_u16(), &a.body[..]), (503, &b"{\"kind\":true}"[..]));
        let a = fault(json!({"status": 400, "body": "bad request: nope"})).error_answer(&Plain).unwrap();
        assert_eq!(&a.body[..], b"bad request: nope");
        assert_eq!(a.headers[CONTENT_TYPE], "text/plain; charset=utf-8");
    }

    #[test]
    fn retry_after_accepts_strings_and_numbers() {
        use serde_json::json;
        assert_eq!(fault(json!({"retry_after": 7})).retry_after(), "7");
        assert_eq!(fault(json!({"retry_after": "9"})).retry_after_secs(), 9);
        assert_eq!(fault(json!({})).retry_after_secs(), DEFAULT_RETRY_AFTER);
    }

    #[test]
    fn invalid_http_is_rejected() {
        use serde_json::json;
        assert!(fault(json!({"status": 42})).validate().is_err());
        assert!(fault(json!({"headers": {"bad name": "x"}})).validate().is_err());
        assert!(fault(json!({"headers": {"x-n": 3}})).validate().is_ok());
    }
}
