//! Any OpenAI-compatible Chat Completions backend (`openai-compatibility` entries; also `OPENAI_API_KEY`).
//!
//! The request goes to `{base-url}/chat/completions` with `Authorization: Bearer`. An entry without a
//! `models` list is a catch-all: it serves any model name that no other credential serves explicitly. The
//! upstream's own `/models` list, which the account lifecycle (`auth::openai_compat`) fetches, is what such an
//! entry shows in `/v1/models`.

use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use bytes::Bytes;

use super::failure::{Failure, header_str};
use super::{Provider, UpstreamCall, finish_request, join_url, post_json};
use crate::dialects::{Dialect, openai_chat};
use crate::error::Result;
use crate::timefmt::parse_go_duration;

/// Where an entry without a `base-url` sends requests.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// One `openai-compatibility` entry; its `name` is the credential id's middle part and a model prefix.
pub struct OpenAiCompat {
    pub name: String,
    /// The upstream's own `/models` list, shared with the account that fetches it.
    pub listed: Arc<RwLock<Vec<String>>>,
}

impl OpenAiCompat {
    pub fn new(name: &str) -> Self {
        OpenAiCompat { name: name.to_owned(), listed: Arc::default() }
    }
}

/// The model ids of an OpenAI `/models` answer.
pub fn parse_model_list(body: &[u8]) -> Option<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct ModelList {
        data: Vec<ModelId>,
    }
    #[derive(serde::Deserialize)]
    struct ModelId {
        id: String,
    }
    serde_json::from_slice::<ModelList>(body).ok().map(|l| l.data.into_iter().map(|m| m.id).collect())
}

/// The request for the upstream's `/models` list (keyless backends send no `Authorization`).
pub fn model_list_request(base_url: &str, token: &str) -> Result<http::Request<Bytes>> {
    let mut b = http::Request::get(join_url(base_url, "/models"));
    if !token.is_empty() {
        b = b.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    finish_request(b, Bytes::new(), "openai-compatibility model-list")
}

impl Provider for OpenAiCompat {
    fn id(&self) -> &'static str {
        "openai-compat"
    }

    fn dialect(&self) -> Option<Dialect> {
        Some(Dialect::OpenAiChat)
    }

    fn prefixes(&self) -> Vec<String> {
        vec![self.name.clone()]
    }

    fn resolve_model(&self, model: &str) -> Option<String> {
        Some(model.to_owned())
    }

    fn is_catch_all(&self) -> bool {
        true
    }

    fn catalogue(&self) -> Vec<String> {
        self.listed.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn build_http(&self, call: &UpstreamCall<'_>, body: Bytes) -> Result<http::Request<Bytes>> {
        let base = call.base_url.unwrap_or(DEFAULT_BASE_URL);
        let mut b = post_json(call, &join_url(base, "/chat/completions"));
        let token = call.access.token.expose();
        if !token.is_empty() {
            b = b.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        finish_request(b, body, "openai-compatibility")
    }

    fn failure(&self, status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> Failure {
        failure(status, headers, body, now)
    }
}

/// OpenAI's signals: `insufficient_quota` is billing (long, whole key), `rate_limit_exceeded` is transient
/// (`retry-after`, else the `x-ratelimit-reset-*` durations), `invalid_api_key` means the key is dead.
pub fn failure(status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> Failure {
    let text = String::from_utf8_lossy(body);
    let f = Failure::from_status(status, headers, openai_chat::parse_error(status, body), now);
    match status {
        429 if text.contains("insufficient_quota") => {
            let message = f.error.message().to_owned();
            f.quota(message, None)
        }
        429 if f.wait.is_none() => {
            let reset = ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
                .iter()
                .filter_map(|h| header_str(headers, h).and_then(parse_go_duration))
                .max();
            match reset.filter(|d| !d.is_zero()) {
                Some(d) => f.wait_for(d),
                None => f,
            }
        }
        401 if text.contains("invalid_api_key") => {
            let reason = format!("upstream rejected the API key: {}", f.error.message());
            f.suspend(reason)
        }
        _ => f,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::routing::classify::{ErrorClass, Length, Scope, decide};
    use std::time::Duration;

    fn classify(status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> ErrorClass {
        decide(failure(status, headers, body, now))
    }

    fn hdrs(pairs: &[(&str, &str)]) -> http::HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap())).collect()
    }

    const NOW: SystemTime = SystemTime::UNIX_EPOCH;

    #[test]
    fn quota_vs_rate_limit() {
        let q = br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        let c = classify(429, &hdrs(&[]), q, NOW);
        assert_eq!(c.error.kind(), ErrorKind::QuotaExceeded);
        assert_eq!(c.cooldown.unwrap().scope, Scope::Credential);

        let r = br#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        let c = classify(429, &hdrs(&[("retry-after", "20")]), r, NOW);
        assert_eq!(c.error.kind(), ErrorKind::RateLimited);
        assert_eq!(c.cooldown.unwrap().length, Length::Fixed(Duration::from_secs(20)));

        let c = classify(
            429,
            &hdrs(&[("x-ratelimit-reset-requests", "6m0s"), ("x-ratelimit-reset-tokens", "12ms")]),
            r,
            NOW,
        );
        assert_eq!(c.cooldown.unwrap().length, Length::Fixed(Duration::from_secs(360)));
    }

    #[test]
    fn invalid_key_disables() {
        let b = br#"{"error":{"message":"Incorrect API key provided: sk-***","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        let c = classify(401, &hdrs(&[]), b, NOW);
        assert!(c.disable.is_some());
        assert_eq!(c.error.kind(), ErrorKind::Authentication);
    }
}
