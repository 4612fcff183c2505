//! Google's Gemini API with API keys (`gemini-api-key`).
//!
//! Requests go to `{base}/v1beta/models/{model}:generateContent`, or `:streamGenerateContent?alt=sse` to
//! stream (SSE `data:` chunks without `[DONE]`), with the key in `x-goog-api-key`; the base is the entry's
//! `base-url`, else `gemini-endpoints.api-base-url`. Bodies are the Gemini dialect's (`dialects::gemini`), so a
//! Gemini client's request passes through as it came. `countTokens` counts Anthropic-shaped `count_tokens`
//! bodies, and `GET /v1beta/models` lists what a key serves.
//!
//! Failures: `RESOURCE_EXHAUSTED` names its quota in a `QuotaFailure` detail. A `PerDay` quota is used up
//! until Google's next day (midnight Pacific time); a `PerMinute` one within the minute. `RetryInfo.retryDelay`
//! is the wait the answer asks for, and a `PerModel` quota is the model's, not the whole key's. A rejected key
//! (400 `API_KEY_INVALID`, 401) is dead until a human replaces it.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::Deserialize;

use super::failure::{Blame, Failure};
use super::{Provider, UpstreamCall, finish_request, join_url, post_json};
use crate::config::GeminiEndpoints;
use crate::dialects::{Dialect, anthropic, gemini};
use crate::error::{Error, ErrorKind, Result};
use crate::timefmt::{start_of_next_pacific_day, until};
use crate::types::ChatRequest;

/// Listed for keys without a `models` list until the key's own model list is known; any other `gemini-*`
/// name is still forwarded.
const CATALOGUE: &[&str] = &["gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash"];

/// The longest a per-minute quota can hold a model: its window.
const MINUTE: Duration = Duration::from_secs(60);

/// The Gemini API wire.
#[derive(Default)]
pub struct Gemini {
    /// The models the key's `GET /v1beta/models` lists, shared with the account that fetches it.
    pub listed: Arc<RwLock<Vec<String>>>,
}

impl Provider for Gemini {
    fn id(&self) -> &'static str {
        "gemini"
    }

    fn dialect(&self) -> Option<Dialect> {
        Some(Dialect::Gemini)
    }

    fn prefixes(&self) -> Vec<String> {
        vec!["gemini".into()]
    }

    fn resolve_model(&self, model: &str) -> Option<String> {
        let listed = self.listed.read().unwrap_or_else(|p| p.into_inner());
        (model.starts_with("gemini-") || listed.iter().any(|m| m == model)).then(|| model.to_owned())
    }

    fn catalogue(&self) -> Vec<String> {
        let listed = self.listed.read().unwrap_or_else(|p| p.into_inner());
        if listed.is_empty() { CATALOGUE.iter().map(|s| (*s).to_owned()).collect() } else { listed.clone() }
    }

    fn build_http(&self, call: &UpstreamCall<'_>, body: Bytes) -> Result<http::Request<Bytes>> {
        let method = if call.stream { "streamGenerateContent?alt=sse" } else { "generateContent" };
        let b = post_json(call, &model_url(call, method)).header("x-goog-api-key", call.access.token.expose());
        finish_request(b, body, "gemini")
    }

    fn failure(&self, status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> Failure {
        failure(status, headers, body, now)
    }

    fn count_tokens_request(&self, call: &UpstreamCall<'_>, body: Bytes) -> Option<Result<http::Request<Bytes>>> {
        let build = || {
            let body = count_tokens_body(&body, call.model)?;
            let b =
                post_json(call, &model_url(call, "countTokens")).header("x-goog-api-key", call.access.token.expose());
            finish_request(b, body, "gemini")
        };
        Some(build())
    }

    fn count_tokens_answer(&self, body: Bytes) -> Option<Bytes> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Counted {
            total_tokens: u64,
        }
        let n = serde_json::from_slice::<Counted>(&body).ok()?.total_tokens;
        Some(Bytes::from(format!("{{\"input_tokens\":{n}}}")))
    }
}

/// `{base}/v1beta/models/{model}:{method}`, the model escaped as one path segment.
fn model_url(call: &UpstreamCall<'_>, method: &str) -> String {
    join_url(&base_url(call.base_url), &format!("/v1beta/models/{}:{method}", path_segment(call.model)))
}

/// The configured base URL, else Google's (credentials built from the configuration always have one).
fn base_url(configured: Option<&str>) -> Cow<'_, str> {
    configured.map_or_else(|| Cow::Owned(GeminiEndpoints::default().api_base_url), Cow::Borrowed)
}

/// `s` with every byte but RFC 3986's unreserved characters percent-encoded, so a model name can never leave
/// its path segment or start a query.
fn path_segment(s: &str) -> Cow<'_, str> {
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    if s.bytes().all(unreserved) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if unreserved(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

/// An Anthropic `count_tokens` body (model, system, messages, tools) as Gemini's `countTokens` request, whose
/// `generateContentRequest` form counts the system instruction and tools too.
fn count_tokens_body(body: &[u8], model: &str) -> Result<Bytes> {
    let mut value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| Error::invalid_request(format!("request body is not valid JSON: {e}")))?;
    // `count_tokens` bodies carry no `max_tokens`; the Messages parser requires one, and the count ignores it.
    if let Some(o) = value.as_object_mut() {
        o.entry("max_tokens").or_insert(1.into());
    }
    let ir = anthropic::parse_request(&serde_json::to_vec(&value).expect("json values serialize"))?;
    // Only what the count depends on: generation settings have no place in a count.
    let counted = ChatRequest { system: ir.system, messages: ir.messages, tools: ir.tools, ..ChatRequest::default() };
    let mut request: serde_json::Value =
        serde_json::from_slice(&gemini::encode_request(&counted)).expect("encoded requests are JSON");
    request["model"] = format!("models/{model}").into();
    let wrapped = serde_json::json!({ "generateContentRequest": request });
    Ok(Bytes::from(serde_json::to_vec(&wrapped).expect("json values serialize")))
}

/// The model ids of a `GET /v1beta/models` answer that can generate content (`models/gemini-2.5-pro` →
/// `gemini-2.5-pro`).
pub fn parse_model_list(body: &[u8]) -> Option<Vec<String>> {
    #[derive(Deserialize)]
    struct ModelList {
        #[serde(default)]
        models: Vec<Model>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Model {
        name: String,
        #[serde(default)]
        supported_generation_methods: Vec<String>,
    }
    let list = serde_json::from_slice::<ModelList>(body).ok()?;
    let ids = list
        .models
        .into_iter()
        .filter(|m| m.supported_generation_methods.iter().any(|g| g == "generateContent"))
        .map(|m| m.name.strip_prefix("models/").map(str::to_owned).unwrap_or(m.name))
        .collect();
    Some(ids)
}

/// The request for a key's model list.
pub fn model_list_request(configured: Option<&str>, key: &str) -> Result<http::Request<Bytes>> {
    let b = http::Request::get(join_url(&base_url(configured), "/v1beta/models?pageSize=1000"))
        .header("x-goog-api-key", key);
    finish_request(b, Bytes::new(), "gemini model-list")
}

/// What a Gemini error answer says (see the module docs).
pub fn failure(status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> Failure {
    let f = Failure::from_status(status, headers, gemini::parse_error(status, body), now);
    let per_model = quota_ids(body).iter().any(|q| q.contains("PerModel"));
    let scoped = |f: Failure| if per_model { Failure { blame: Blame::Model, ..f } } else { f };
    let delay = f.error.retry_after();
    match f.error.kind() {
        // `parse_error` files a `PerDay` quota as exhausted, any other `RESOURCE_EXHAUSTED` as a rate limit.
        ErrorKind::QuotaExceeded => {
            let reset = until(now, start_of_next_pacific_day(now));
            let message = f.error.message().to_owned();
            scoped(f.quota(message, Some(delay.map_or(reset, |d| d.max(reset)))))
        }
        ErrorKind::RateLimited => scoped(f.wait_for(delay.unwrap_or(MINUTE))),
        ErrorKind::Authentication => {
            let reason = format!("upstream rejected the API key: {}", f.error.message());
            f.suspend(reason)
        }
        _ => f,
    }
}

/// The `quotaId`s of a `QuotaFailure` detail.
fn quota_ids(body: &[u8]) -> Vec<String> {
    #[derive(Deserialize)]
    struct Envelope {
        error: ErrorBody,
    }
    #[derive(Deserialize)]
    struct ErrorBody {
        #[serde(default)]
        details: Vec<Detail>,
    }
    #[derive(Deserialize)]
    struct Detail {
        #[serde(default)]
        violations: Vec<Violation>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Violation {
        #[serde(default)]
        quota_id: String,
    }
    serde_json::from_slice::<Envelope>(body)
        .map(|e| e.error.details.into_iter().flat_map(|d| d.violations).map(|v| v.quota_id).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::providers::Access;
    use crate::routing::classify::{Cooldown, Length, Scope, decide};
    use crate::timefmt::parse_rfc3339;

    fn now() -> SystemTime {
        parse_rfc3339("2025-08-21T12:40:59Z").unwrap()
    }

    fn exhausted(quota_id: &str, delay: &str) -> Vec<u8> {
        serde_json::json!({"error": {"code": 429, "message": "You exceeded your current quota", "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaMetric": "m", "quotaId": quota_id}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]}})
        .to_string()
        .into_bytes()
    }

    fn call<'a>(access: &'a Access, headers: &'a http::HeaderMap, model: &'a str, stream: bool) -> UpstreamCall<'a> {
        UpstreamCall {
            access,
            base_url: Some("http://127.0.0.1:9/g/"),
            headers: &[],
            proxy_url: None,
            model,
            stream,
            client_headers: headers,
        }
    }

    #[test]
    fn per_day_quota_holds_the_model_until_the_next_pacific_day() {
        let f = failure(
            429,
            &http::HeaderMap::new(),
            &exhausted("GenerateRequestsPerDayPerProjectPerModel-FreeTier", "41.5s"),
            now(),
        );
        let c = decide(f);
        // 12:40:59 UTC in August is 05:40:59 PDT: the day ends at 07:00 UTC tomorrow.
        let wait = Duration::from_secs(18 * 3600 + 19 * 60 + 1);
        assert_eq!(c.cooldown, Some(Cooldown { scope: Scope::Model, length: Length::Fixed(wait) }));
        assert_eq!(c.error.kind(), ErrorKind::QuotaExceeded);
        assert_eq!(c.error.retry_after(), Some(wait));
        assert!(c.retry_other);
    }

    #[test]
    fn per_minute_quota_waits_the_retry_delay_or_the_minute() {
        let c = decide(failure(
            429,
            &http::HeaderMap::new(),
            &exhausted("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "41.5s"),
            now(),
        ));
        assert_eq!(
            c.cooldown,
            Some(Cooldown { scope: Scope::Model, length: Length::Fixed(Duration::from_millis(41_500)) })
        );
        assert_eq!(c.error.kind(), ErrorKind::RateLimited);
        let bare = br#"{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}"#;
        let c = decide(failure(429, &http::HeaderMap::new(), bare, now()));
        assert_eq!(c.cooldown, Some(Cooldown { scope: Scope::Model, length: Length::Fixed(MINUTE) }));
    }

    #[test]
    fn a_project_wide_quota_cools_the_whole_key() {
        let c =
            decide(failure(429, &http::HeaderMap::new(), &exhausted("GenerateRequestsPerDayPerProject", "0s"), now()));
        assert_eq!(c.cooldown.unwrap().scope, Scope::Credential);
    }

    #[test]
    fn rejected_keys_are_disabled_and_bad_requests_are_not_retried() {
        let invalid = br#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT",
            "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}"#;
        let c = decide(failure(400, &http::HeaderMap::new(), invalid, now()));
        assert!(c.disable.as_deref().is_some_and(|r| r.contains("API key not valid")), "{:?}", c.disable);
        let bad = br#"{"error":{"code":400,"message":"Invalid JSON payload","status":"INVALID_ARGUMENT"}}"#;
        let c = decide(failure(400, &http::HeaderMap::new(), bad, now()));
        assert!(!c.retry_other && c.disable.is_none() && c.cooldown.is_none());
        assert_eq!(c.error.kind(), ErrorKind::InvalidRequest);
        let c = decide(failure(
            503,
            &http::HeaderMap::new(),
            br#"{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}"#,
            now(),
        ));
        assert!(c.retry_other && c.disable.is_none());
    }

    #[test]
    fn requests_name_the_model_and_method_in_the_url_and_send_the_key() {
        let access = Access { token: Secret::new("AIza-key"), base_url: None };
        let h = http::HeaderMap::new();
        let r = Gemini::default()
            .build_http(&call(&access, &h, "gemini-2.5-flash", true), Bytes::from_static(b"{}"))
            .unwrap();
        assert_eq!(r.uri(), "http://127.0.0.1:9/g/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
        assert_eq!(r.headers()["x-goog-api-key"], "AIza-key");
        assert_eq!(r.headers()["accept"], "text/event-stream");
        let r = Gemini::default().build_http(&call(&access, &h, "tuned/x?y #z", false), Bytes::new()).unwrap();
        assert_eq!(r.uri(), "http://127.0.0.1:9/g/v1beta/models/tuned%2Fx%3Fy%20%23z:generateContent");
    }

    #[test]
    fn count_tokens_translates_both_ways() {
        let access = Access { token: Secret::new("AIza-key"), base_url: None };
        let h = http::HeaderMap::new();
        let body = br#"{"model":"gemini-2.5-pro","system":"Be brief.","messages":[{"role":"user","content":"hi"}]}"#;
        let r = Gemini::default()
            .count_tokens_request(&call(&access, &h, "gemini-2.5-pro", false), Bytes::from_static(body))
            .unwrap()
            .unwrap();
        assert!(r.uri().to_string().ends_with("/v1beta/models/gemini-2.5-pro:countTokens"));
        let sent: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        let inner = &sent["generateContentRequest"];
        assert_eq!(inner["model"], "models/gemini-2.5-pro");
        assert_eq!(inner["contents"][0]["parts"][0]["text"], "hi");
        assert_eq!(inner["systemInstruction"]["parts"][0]["text"], "Be brief.");
        assert!(inner.pointer("/generationConfig/maxOutputTokens").is_none(), "{inner}");
        let answer = Gemini::default()
            .count_tokens_answer(Bytes::from_static(br#"{"totalTokens":31,"promptTokensDetails":[]}"#));
        assert_eq!(answer.as_deref(), Some(&b"{\"input_tokens\":31}"[..]));
        assert!(Gemini::default().count_tokens_answer(Bytes::from_static(b"{}")).is_none());
    }

    #[test]
    fn model_lists_keep_what_generates_content() {
        let body = br#"{"models":[
            {"name":"models/gemini-2.5-pro","supportedGenerationMethods":["generateContent","countTokens"]},
            {"name":"models/text-embedding-004","supportedGenerationMethods":["embedContent"]}]}"#;
        assert_eq!(parse_model_list(body), Some(vec!["gemini-2.5-pro".to_owned()]));
        assert_eq!(parse_model_list(b"nope"), None);
        let g = Gemini::default();
        assert_eq!(g.catalogue().len(), CATALOGUE.len());
        *g.listed.write().unwrap() = vec!["learnlm-2.0".into()];
        assert_eq!(g.catalogue(), ["learnlm-2.0"]);
        assert_eq!(g.resolve_model("learnlm-2.0").as_deref(), Some("learnlm-2.0"));
        assert_eq!(g.resolve_model("gemini-3-pro").as_deref(), Some("gemini-3-pro"));
        assert_eq!(g.resolve_model("gpt-4o"), None);
    }
}
