//! The one error type of cliproxy.
//!
//! Every surface (HTTP JSON, SSE error events, Python exceptions, JavaScript error codes) renders the same
//! [`Error`], so the kind list below is a stable contract: new kinds are a breaking change for the bindings.
//! Rendering lives here, once, so the dialects never disagree about status codes or error shapes.

use std::fmt;
use std::time::Duration;

/// The stable kinds of failure. Their string names (`as_str`) are what bindings expose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The configuration is invalid, or nothing is configured that could serve the request.
    Config,
    /// The caller's (or an upstream credential's) key or token was rejected.
    Authentication,
    /// Authenticated, but not allowed.
    Permission,
    /// The request is malformed; retrying it unchanged will not help.
    InvalidRequest,
    /// No provider serves the requested model.
    ModelNotFound,
    /// Too many requests; `retry_after` says when to come back.
    RateLimited,
    /// A usage quota is used up; `retry_after` says when it resets, where known.
    QuotaExceeded,
    /// The upstream failed (its HTTP status is in `status`), or sent something we could not understand.
    Upstream,
    /// The upstream did not answer in time.
    Timeout,
    /// The caller went away or cancelled the request.
    Cancelled,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Config,
        ErrorKind::Authentication,
        ErrorKind::Permission,
        ErrorKind::InvalidRequest,
        ErrorKind::ModelNotFound,
        ErrorKind::RateLimited,
        ErrorKind::QuotaExceeded,
        ErrorKind::Upstream,
        ErrorKind::Timeout,
        ErrorKind::Cancelled,
    ];

    /// The stable snake_case name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Config => "config",
            ErrorKind::Authentication => "authentication",
            ErrorKind::Permission => "permission",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::Upstream => "upstream",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Cancelled => "cancelled",
        }
    }

    /// The HTTP status a server answers with for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::Config => 500,
            ErrorKind::Authentication => 401,
            ErrorKind::Permission => 403,
            ErrorKind::InvalidRequest => 400,
            ErrorKind::ModelNotFound => 404,
            ErrorKind::RateLimited | ErrorKind::QuotaExceeded => 429,
            ErrorKind::Upstream => 502,
            ErrorKind::Timeout => 504,
            ErrorKind::Cancelled => 499,
        }
    }

    /// OpenAI's `error.type` for this kind.
    fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::Config | ErrorKind::Upstream | ErrorKind::Timeout | ErrorKind::Cancelled => "server_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Permission => "permission_error",
            ErrorKind::InvalidRequest | ErrorKind::ModelNotFound => "invalid_request_error",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::QuotaExceeded => "insufficient_quota",
        }
    }

    /// OpenAI's default `error.code` for this kind.
    fn openai_code(self) -> &'static str {
        match self {
            ErrorKind::Config => "config_error",
            ErrorKind::Authentication => "invalid_api_key",
            ErrorKind::Permission => "permission_denied",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::RateLimited => "rate_limit_exceeded",
            ErrorKind::QuotaExceeded => "insufficient_quota",
            ErrorKind::Upstream => "upstream_error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Cancelled => "cancelled",
        }
    }

    /// Google's canonical `error.status` for this kind (Gemini).
    fn google_status(self) -> &'static str {
        match self {
            ErrorKind::Config => "INTERNAL",
            ErrorKind::Authentication => "UNAUTHENTICATED",
            ErrorKind::Permission => "PERMISSION_DENIED",
            ErrorKind::InvalidRequest => "INVALID_ARGUMENT",
            ErrorKind::ModelNotFound => "NOT_FOUND",
            ErrorKind::RateLimited | ErrorKind::QuotaExceeded => "RESOURCE_EXHAUSTED",
            ErrorKind::Upstream => "UNAVAILABLE",
            ErrorKind::Timeout => "DEADLINE_EXCEEDED",
            ErrorKind::Cancelled => "CANCELLED",
        }
    }

    /// Anthropic's `error.type` for this kind.
    fn anthropic_type(self) -> &'static str {
        match self {
            ErrorKind::Config | ErrorKind::Upstream | ErrorKind::Cancelled => "api_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Permission => "permission_error",
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::ModelNotFound => "not_found_error",
            ErrorKind::RateLimited | ErrorKind::QuotaExceeded => "rate_limit_error",
            ErrorKind::Timeout => "timeout_error",
        }
    }
}

impl ErrorKind {
    /// The kind an upstream's HTTP status stands for when its body says nothing more specific.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            400 | 413 | 422 => ErrorKind::InvalidRequest,
            401 => ErrorKind::Authentication,
            402 => ErrorKind::QuotaExceeded,
            403 => ErrorKind::Permission,
            404 => ErrorKind::ModelNotFound,
            408 | 504 => ErrorKind::Timeout,
            429 => ErrorKind::RateLimited,
            _ => ErrorKind::Upstream,
        }
    }
}

/// Whose fault a failure is: decides what a caller can do about it (fix the request, wait for the upstream, or
/// report a bug) and how the server logs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The caller's request or key is wrong; retrying it unchanged will not help.
    Client,
    /// An upstream refused, failed or could not be reached.
    Upstream,
    /// cliproxy itself: its configuration, or a bug.
    Ours,
}

impl Fault {
    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::Client => "client",
            Fault::Upstream => "upstream",
            Fault::Ours => "ours",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cliproxy error: a kind, a message meant for humans, and the facts a caller may act on. Boxed so that
/// `Result<T, Error>` stays one pointer wide on the hot path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(Box<Inner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    kind: ErrorKind,
    message: String,
    /// The upstream's HTTP status, for `Upstream` errors (and others that came from an upstream answer).
    status: Option<u16>,
    retry_after: Option<Duration>,
    credential: Option<String>,
    model: Option<String>,
    /// A more specific code than the kind's default (e.g. `model_cooldown`), used in OpenAI bodies.
    code: Option<&'static str>,
    /// Overrides the kind's HTTP status (e.g. 413 for an oversized body, still `invalid_request`).
    http_status: Option<u16>,
    /// Overrides the fault the kind implies (an upstream that rejected our credential is `Upstream`, not `Client`).
    fault: Option<Fault>,
    /// What caused this error (a transport failure, an I/O error), for `source()` chains on every surface.
    source: Source,
}

/// A cause kept behind an `Arc` so that `Error` stays `Clone` (one failure may be reported to several waiters).
#[derive(Clone, Default)]
struct Source(Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>);

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Two errors are equal when what they report is; their causes are diagnostics, not identity.
impl PartialEq for Source {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl Eq for Source {}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error(Box::new(Inner {
            kind,
            message: message.into(),
            status: None,
            retry_after: None,
            credential: None,
            model: None,
            code: None,
            http_status: None,
            fault: None,
            source: Source::default(),
        }))
    }

    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    pub fn upstream(status: Option<u16>, message: impl Into<String>) -> Self {
        let mut e = Self::new(ErrorKind::Upstream, message);
        e.0.status = status;
        e
    }

    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            ErrorKind::ModelNotFound,
            format!(
                "no provider serves model '{model}': list the available models with GET /v1/models, or add a credential that serves it (e.g. under `claude-api-key` or `openai-compatibility` in config.yaml)"
            ),
        )
        .with_model(model)
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.0.status = Some(status);
        self
    }

    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.0.retry_after = Some(retry_after);
        self
    }

    pub fn with_credential(mut self, credential: impl Into<String>) -> Self {
        self.0.credential = Some(credential.into());
        self
    }

    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.0.model = Some(model.into());
        self
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.0.code = Some(code);
        self
    }

    pub fn with_http_status(mut self, status: u16) -> Self {
        self.0.http_status = Some(status);
        self
    }

    /// Records whose fault this is, where the kind alone would say otherwise.
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.0.fault = Some(fault);
        self
    }

    /// Keeps `cause` as this error's `source()`.
    pub fn with_source(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.0.source = Source(Some(std::sync::Arc::new(cause)));
        self
    }

    /// Whose fault this is: set explicitly, else what the kind implies (an upstream's HTTP status means the
    /// upstream; a malformed request the client; a configuration problem ours).
    pub fn fault(&self) -> Fault {
        if let Some(f) = self.0.fault {
            return f;
        }
        if self.0.status.is_some() {
            return Fault::Upstream;
        }
        match self.0.kind {
            ErrorKind::InvalidRequest | ErrorKind::ModelNotFound | ErrorKind::Cancelled => Fault::Client,
            ErrorKind::Authentication | ErrorKind::Permission => Fault::Client,
            ErrorKind::Config => Fault::Ours,
            ErrorKind::RateLimited | ErrorKind::QuotaExceeded | ErrorKind::Upstream | ErrorKind::Timeout => {
                Fault::Upstream
            }
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The upstream HTTP status, where the error came from an upstream answer.
    pub fn status(&self) -> Option<u16> {
        self.0.status
    }

    pub fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after
    }

    /// The id (`<provider>:<name>`) of the credential involved, never its secret.
    pub fn credential(&self) -> Option<&str> {
        self.0.credential.as_deref()
    }

    pub fn model(&self) -> Option<&str> {
        self.0.model.as_deref()
    }

    pub fn code(&self) -> &'static str {
        self.0.code.unwrap_or_else(|| self.0.kind.openai_code())
    }

    /// The status a server answers this error with.
    pub fn http_status(&self) -> u16 {
        self.0.http_status.unwrap_or_else(|| self.0.kind.http_status())
    }

    /// Whether retrying the same request later could succeed. Servers send `x-should-retry: false` otherwise.
    pub fn is_retryable(&self) -> bool {
        match self.0.kind {
            ErrorKind::RateLimited | ErrorKind::Timeout => true,
            ErrorKind::QuotaExceeded => self.0.retry_after.is_some(),
            ErrorKind::Upstream => !matches!(self.0.status, Some(400..=499)),
            _ => false,
        }
    }

    /// `Retry-After` in whole seconds, rounded up so a client never comes back too early.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.0.retry_after.map(|d| {
            let s = d.as_secs();
            if d.subsec_nanos() > 0 { s + 1 } else { s }
        })
    }

    /// The JSON error body of the OpenAI dialect: `{"error":{"message","type","param","code"}}`.
    pub fn openai_body(&self) -> Vec<u8> {
        let mut error = serde_json::json!({
            "message": self.0.message,
            "type": self.0.kind.openai_type(),
            "param": null,
            "code": self.code(),
        });
        if let Some(secs) = self.retry_after_secs() {
            error["reset_seconds"] = secs.into();
        }
        if let Some(model) = &self.0.model {
            error["model"] = model.as_str().into();
        }
        serde_json::to_vec(&serde_json::json!({ "error": error })).expect("json values serialize")
    }

    /// The JSON error body of the Anthropic dialect: `{"type":"error","error":{"type","message"}}`.
    pub fn anthropic_body(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "type": "error",
            "error": { "type": self.0.kind.anthropic_type(), "message": self.0.message },
        }))
        .expect("json values serialize")
    }

    /// Google's `error.status`: the kind's, unless an overridden HTTP status names a more precise one (an
    /// unknown route is `NOT_FOUND` to Google's clients, though cliproxy files it as an invalid request).
    fn google_status(&self) -> &'static str {
        match self.0.http_status {
            Some(404) => "NOT_FOUND",
            Some(408) => "DEADLINE_EXCEEDED",
            _ => self.0.kind.google_status(),
        }
    }

    /// The JSON error body of the Gemini dialect: Google's `{"error":{"code","message","status"}}`, with a
    /// `RetryInfo` detail when the caller should wait (Google's SDKs and clients read it from there).
    pub fn google_body(&self) -> Vec<u8> {
        let mut error = serde_json::json!({
            "code": self.http_status(),
            "message": self.0.message,
            "status": self.google_status(),
        });
        if let Some(secs) = self.retry_after_secs() {
            error["details"] = serde_json::json!([{
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": format!("{secs}s"),
            }]);
        }
        serde_json::to_vec(&serde_json::json!({ "error": error })).expect("json values serialize")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.kind, self.0.message)?;
        if let Some(status) = self.0.status {
            write!(f, " (upstream status {status})")?;
        }
        if let Some(c) = &self.0.credential {
            write!(f, " [credential {c}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source.0.as_ref().map(|s| &**s as &(dyn std::error::Error + 'static))
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_distinct_name_and_status_class() {
        let names: std::collections::HashSet<_> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), ErrorKind::ALL.len());
        for k in ErrorKind::ALL {
            let s = k.http_status();
            assert!((400..600).contains(&s), "{k} -> {s}");
        }
    }

    #[test]
    fn openai_body_shape() {
        let e = Error::new(ErrorKind::RateLimited, "slow down")
            .with_retry_after(Duration::from_millis(1500))
            .with_code("model_cooldown")
            .with_model("m");
        let v: serde_json::Value = serde_json::from_slice(&e.openai_body()).unwrap();
        assert_eq!(v["error"]["code"], "model_cooldown");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["reset_seconds"], 2);
        assert_eq!(v["error"]["model"], "m");
        assert_eq!(e.http_status(), 429);
    }

    #[test]
    fn anthropic_body_shape() {
        let e = Error::model_not_found("nope");
        let v: serde_json::Value = serde_json::from_slice(&e.anthropic_body()).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "not_found_error");
        assert_eq!(e.http_status(), 404);
    }

    #[test]
    fn google_body_shape() {
        let v: serde_json::Value = serde_json::from_slice(&Error::invalid_request("bad").google_body()).unwrap();
        assert_eq!(v, serde_json::json!({"error": {"code": 400, "message": "bad", "status": "INVALID_ARGUMENT"}}));
        let e = Error::new(ErrorKind::RateLimited, "slow").with_retry_after(Duration::from_millis(2500));
        let v: serde_json::Value = serde_json::from_slice(&e.google_body()).unwrap();
        assert_eq!(v["error"]["code"], 429);
        assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(v["error"]["details"][0]["retryDelay"], "3s");
        let v: serde_json::Value =
            serde_json::from_slice(&Error::invalid_request("big").with_http_status(413).google_body()).unwrap();
        assert_eq!((v["error"]["code"].as_u64(), v["error"]["status"].as_str()), (Some(413), Some("INVALID_ARGUMENT")));
        let v: serde_json::Value =
            serde_json::from_slice(&Error::invalid_request("no route").with_http_status(404).google_body()).unwrap();
        assert_eq!((v["error"]["code"].as_u64(), v["error"]["status"].as_str()), (Some(404), Some("NOT_FOUND")));
    }

    #[test]
    fn status_kinds_and_faults() {
        assert_eq!(ErrorKind::from_status(422), ErrorKind::InvalidRequest);
        assert_eq!(ErrorKind::from_status(402), ErrorKind::QuotaExceeded);
        assert_eq!(ErrorKind::from_status(504), ErrorKind::Timeout);
        assert_eq!(ErrorKind::from_status(418), ErrorKind::Upstream);
        assert_eq!(Error::invalid_request("x").fault(), Fault::Client);
        assert_eq!(Error::config("x").fault(), Fault::Ours);
        assert_eq!(Error::new(ErrorKind::Authentication, "x").with_status(401).fault(), Fault::Upstream);
        assert_eq!(Error::config("x").with_fault(Fault::Client).fault(), Fault::Client);
    }

    #[test]
    fn sources_chain_and_do_not_affect_equality() {
        use std::error::Error as _;
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::upstream(None, "cannot connect").with_source(io);
        assert_eq!(e.source().unwrap().to_string(), "refused");
        assert_eq!(e, Error::upstream(None, "cannot connect"));
    }

    #[test]
    fn retryability() {
        assert!(Error::new(ErrorKind::RateLimited, "").is_retryable());
        assert!(!Error::invalid_request("").is_retryable());
        assert!(Error::upstream(Some(503), "").is_retryable());
        assert!(!Error::upstream(Some(400), "").is_retryable());
    }
}
