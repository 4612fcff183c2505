//! How a core [`Error`] crosses into JavaScript.
//!
//! N-API errors carry only a message and a status, so the facts a caller acts on (`retryAfter`, `status`,
//! `credential`, …) travel as a JSON payload behind a fixed prefix in the message. The JavaScript layer
//! recognises the prefix and builds a `CliproxyError` from the payload; that is the only place the mapping
//! happens on the JavaScript side, and [`js_code`] is the only place on this side.

use cliproxy_core::{Error, ErrorKind};
use serde_json::{Value, json};

/// Marks a message as a structured cliproxy error. Must match `ERROR_PREFIX` in `index.js`.
pub(crate) const ERROR_PREFIX: &str = "cliproxy-error:";

/// The stable JavaScript `code` of each core error kind. The match is exhaustive on purpose: a new kind
/// fails to compile here instead of reaching users as an unknown code.
pub(crate) fn js_code(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Config => "CONFIG",
        ErrorKind::Authentication => "AUTHENTICATION",
        ErrorKind::Permission => "PERMISSION_DENIED",
        ErrorKind::InvalidRequest => "INVALID_REQUEST",
        ErrorKind::ModelNotFound => "MODEL_NOT_FOUND",
        ErrorKind::RateLimited => "RATE_LIMITED",
        ErrorKind::QuotaExceeded => "QUOTA_EXCEEDED",
        ErrorKind::Upstream => "UPSTREAM",
        ErrorKind::Timeout => "TIMEOUT",
        ErrorKind::Cancelled => "CANCELLED",
    }
}

/// The JSON payload describing `e`. `retryAfter` is in whole seconds, rounded up like `Retry-After`, so a
/// caller that sleeps for it never comes back too early; `reason` is the finer-grained code the HTTP
/// server puts in OpenAI error bodies (e.g. `model_cooldown`).
pub(crate) fn payload(e: &Error) -> Value {
    json!({
        "code": js_code(e.kind()),
        "message": e.message(),
        "reason": e.code(),
        "status": e.status(),
        "retryAfter": e.retry_after_secs(),
        "credential": e.credential(),
        "model": e.model(),
        "fault": e.fault().as_str(),
        "cause": std::error::Error::source(e).map(|c| c.to_string()),
    })
}

/// The N-API error that carries `e` to JavaScript.
pub(crate) fn to_napi(e: Error) -> napi::Error {
    napi::Error::new(napi::Status::GenericFailure, format!("{ERROR_PREFIX}{}", payload(&e)))
}

/// The error a cancelled call or stream ends with.
pub(crate) fn cancelled() -> Error {
    Error::new(ErrorKind::Cancelled, "the request was cancelled by the caller")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn every_kind_has_a_distinct_upper_snake_code() {
        let codes: std::collections::HashSet<_> = ErrorKind::ALL.iter().map(|k| js_code(*k)).collect();
        assert_eq!(codes.len(), ErrorKind::ALL.len());
        assert!(codes.iter().all(|c| c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_')));
    }

    #[test]
    fn payload_carries_what_callers_act_on() {
        let e = Error::new(ErrorKind::RateLimited, "slow down")
            .with_retry_after(Duration::from_millis(1500))
            .with_credential("openai-compat:up-0")
            .with_model("gpt-4o")
            .with_code("model_cooldown");
        let p = payload(&e);
        assert_eq!(p["code"], "RATE_LIMITED");
        assert_eq!(p["retryAfter"], 2);
        assert_eq!(p["credential"], "openai-compat:up-0");
        assert_eq!(p["model"], "gpt-4o");
        assert_eq!(p["reason"], "model_cooldown");
        assert_eq!(p["status"], Value::Null);

        let up = payload(&Error::upstream(Some(503), "down"));
        assert_eq!(up["code"], "UPSTREAM");
        assert_eq!(up["status"], 503);
    }

    #[test]
    fn napi_message_is_prefix_then_json() {
        let e = to_napi(Error::invalid_request("bad \"body\""));
        let json = e.reason.strip_prefix(ERROR_PREFIX).expect("prefixed");
        let v: Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["code"], "INVALID_REQUEST");
        assert_eq!(v["message"], "bad \"body\"");
    }
}
