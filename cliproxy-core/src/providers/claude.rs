//! Anthropic's Messages API with API keys (`claude-api-key`).
//!
//! Requests carry `x-api-key` and `anthropic-version`; the client's `anthropic-beta` (and its
//! `anthropic-version`, when it sent one) are forwarded so beta features keep working through the proxy.
//! Errors are classified from the status, the error type in the body and the rate-limit headers
//! (`retry-after`, `anthropic-ratelimit-*-reset`, and the subscription's `unified` windows).

use std::time::SystemTime;

use bytes::Bytes;

use super::failure::{Blame, Failure, header_str};
use super::{Provider, UpstreamCall, finish_request, join_url, post_json};
use crate::dialects::{Dialect, anthropic};
use crate::error::Result;
use crate::timefmt::{parse_rfc3339, until};

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
pub const API_VERSION: &str = "2023-06-01";

/// Listed for keys without a `models` list; any other `claude-*` name is still forwarded.
const CATALOGUE: &[&str] = &[
    "claude-opus-4-5-20251101",
    "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5-20251001",
    "claude-opus-4-1-20250805",
    "claude-sonnet-4-20250514",
    "claude-3-7-sonnet-20250219",
    "claude-3-5-haiku-20241022",
];

pub struct Claude;

impl Provider for Claude {
    fn id(&self) -> &'static str {
        "claude"
    }

    fn dialect(&self) -> Option<Dialect> {
        Some(Dialect::Anthropic)
    }

    fn prefixes(&self) -> Vec<String> {
        vec!["claude".into()]
    }

    fn resolve_model(&self, model: &str) -> Option<String> {
        model.starts_with("claude-").then(|| model.to_owned())
    }

    fn catalogue(&self) -> Vec<String> {
        CATALOGUE.iter().map(|s| (*s).to_owned()).collect()
    }

    fn build_http(&self, call: &UpstreamCall<'_>, body: Bytes) -> Result<http::Request<Bytes>> {
        let base = call.base_url.unwrap_or(DEFAULT_BASE_URL);
        let b = headers(post_json(call, &join_url(base, "/v1/messages")), call);
        finish_request(b, body, "claude")
    }

    fn count_tokens_request(&self, call: &UpstreamCall<'_>, body: Bytes) -> Option<Result<http::Request<Bytes>>> {
        let base = call.base_url.unwrap_or(DEFAULT_BASE_URL);
        let b = headers(post_json(call, &join_url(base, "/v1/messages/count_tokens")), call);
        Some(finish_request(b, body, "claude"))
    }

    fn failure(&self, status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> Failure {
        failure(status, headers, body, now)
    }
}

fn headers(mut b: http::request::Builder, call: &UpstreamCall<'_>) -> http::request::Builder {
    let client = call.client_headers;
    let version = client.get("anthropic-version").cloned().unwrap_or(http::HeaderValue::from_static(API_VERSION));
    b = b.header("x-api-key", call.access.token.expose()).header("anthropic-version", version);
    if let Some(beta) = client.get("anthropic-beta") {
        b = b.header("anthropic-beta", beta.clone());
    }
    b
}

/// What an Anthropic error answer says: 529 (overloaded) is the service's, not the key's; a rejected
/// subscription window (unified headers) holds the whole account until its reset; a plain rate limit waits for the
/// key's `anthropic-ratelimit-*-reset`; an expired OAuth token wants a refresh; any other 401 means the key is dead;
/// a billing error is an exhausted quota.
pub fn failure(status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> Failure {
    let text = String::from_utf8_lossy(body);
    let f = Failure::from_status(status, headers, anthropic::parse_error(status, body), now);
    match status {
        429 => match unified_reset(headers, now) {
            // A subscription window is account-wide: every model of the credential waits.
            Some(reset) => Failure { blame: Blame::Account, ..f }.wait_for(reset),
            None if f.wait.is_none() => match standard_reset(headers, now) {
                Some(reset) => f.wait_for(reset),
                None => f,
            },
            None => f,
        },
        401 if text.contains("OAuth token has expired") => f.expired_token(),
        401 => {
            let reason = format!("upstream rejected the API key: {}", f.error.message());
            f.suspend(reason)
        }
        400 | 402 if text.contains("billing_error") || text.contains("credit balance") => {
            let message = f.error.message().to_owned();
            f.quota(message, None)
        }
        _ => f,
    }
}

/// The latest reset among rejected unified (subscription) windows, in unix seconds.
fn unified_reset(headers: &http::HeaderMap, now: SystemTime) -> Option<std::time::Duration> {
    let rejected = |w: &str| header_str(headers, &format!("anthropic-ratelimit-unified-{w}status")) == Some("rejected");
    let reset = |w: &str| {
        header_str(headers, &format!("anthropic-ratelimit-unified-{w}reset"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| until(now, SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s)))
    };
    ["5h-", "7d-", "7d_oi-", ""].iter().filter(|w| rejected(w)).filter_map(|w| reset(w)).max()
}

/// The earliest of the API key's `anthropic-ratelimit-*-reset` times (RFC 3339) whose remaining count is 0.
fn standard_reset(headers: &http::HeaderMap, now: SystemTime) -> Option<std::time::Duration> {
    ["requests", "tokens", "input-tokens", "output-tokens"]
        .iter()
        .filter(|k| header_str(headers, &format!("anthropic-ratelimit-{k}-remaining")) == Some("0"))
        .filter_map(|k| header_str(headers, &format!("anthropic-ratelimit-{k}-reset")).and_then(parse_rfc3339))
        .map(|t| until(now, t))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::routing::classify::{Cooldown, ErrorClass, Length, Scope, decide};
    use std::time::Duration;

    fn classify(status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> ErrorClass {
        decide(failure(status, headers, body, now))
    }

    fn hdrs(pairs: &[(&str, &str)]) -> http::HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap())).collect()
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_755_780_000)
    }

    fn err(t: &str, m: &str) -> Vec<u8> {
        format!(r#"{{"type":"error","error":{{"type":"{t}","message":"{m}"}},"request_id":"req_1"}}"#).into_bytes()
    }

    #[test]
    fn rate_limit_with_retry_after() {
        let c = classify(429, &hdrs(&[("retry-after", "30")]), &err("rate_limit_error", "slow"), now());
        assert_eq!(c.error.kind(), ErrorKind::RateLimited);
        assert_eq!(c.cooldown.unwrap().length, Length::Fixed(Duration::from_secs(30)));
        assert!(c.retry_other);
    }

    #[test]
    fn unified_window_cools_whole_credential_until_latest_reset() {
        let h = hdrs(&[
            ("anthropic-ratelimit-unified-status", "rejected"),
            ("anthropic-ratelimit-unified-5h-status", "rejected"),
            ("anthropic-ratelimit-unified-5h-reset", "1755783600"),
            ("anthropic-ratelimit-unified-7d-status", "allowed"),
            ("anthropic-ratelimit-unified-7d-reset", "1756000000"),
        ]);
        let c = classify(429, &h, &err("rate_limit_error", "limit"), now());
        assert_eq!(
            c.cooldown,
            Some(Cooldown { scope: Scope::Credential, length: Length::Fixed(Duration::from_secs(3600)) })
        );
        assert_eq!(c.error.retry_after(), Some(Duration::from_secs(3600)));
    }

    #[test]
    fn standard_reset_headers_used_without_retry_after() {
        let h = hdrs(&[
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "2025-08-21T12:40:59Z"),
        ]);
        let c = classify(429, &h, &err("rate_limit_error", "limit"), now());
        assert_eq!(c.cooldown.unwrap().length, Length::Fixed(Duration::from_secs(59)));
    }

    #[test]
    fn overloaded_is_not_the_keys_fault() {
        let c = classify(529, &hdrs(&[]), &err("overloaded_error", "Overloaded"), now());
        assert!(c.retry_other);
        assert!(c.cooldown.is_none());
    }

    #[test]
    fn auth_failures() {
        let c = classify(401, &hdrs(&[]), &err("authentication_error", "invalid x-api-key"), now());
        assert!(c.disable.is_some() && !c.refresh);
        let c = classify(
            401,
            &hdrs(&[]),
            &err(
                "authentication_error",
                "OAuth token has expired. Please obtain a new token or refresh your existing token.",
            ),
            now(),
        );
        assert!(c.refresh && c.disable.is_none());
    }

    #[test]
    fn billing_is_quota() {
        let c = classify(400, &hdrs(&[]), &err("invalid_request_error", "Your credit balance is too low"), now());
        assert_eq!(c.error.kind(), ErrorKind::QuotaExceeded);
        assert_eq!(c.cooldown.unwrap().scope, Scope::Credential);
    }

    #[test]
    fn bad_request_is_not_retried() {
        let c = classify(400, &hdrs(&[]), &err("invalid_request_error", "max_tokens: Field required"), now());
        assert!(!c.retry_other);
        assert_eq!(c.error.kind(), ErrorKind::InvalidRequest);
    }
}
