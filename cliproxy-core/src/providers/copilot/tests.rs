use super::*;
use crate::routing::classify::{Cooldown, ErrorClass, Length, MIN_30, Scope, decide};
use std::time::Duration;

/// The facts of an answer, completed with the account's quota reset date as the account does, then decided.
fn classify(
    status: u16,
    headers: &http::HeaderMap,
    body: &[u8],
    now: SystemTime,
    reset: Option<SystemTime>,
) -> ErrorClass {
    let mut f = failure(status, headers, body, now);
    f.wait_until_reset(reset, now);
    decide(f)
}

fn hdrs(pairs: &[(&str, &str)]) -> http::HeaderMap {
    pairs.iter().map(|(k, v)| (http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap())).collect()
}

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_754_000_000)
}

fn err(code: &str) -> Vec<u8> {
    format!(r#"{{"error":{{"message":"Sorry, you have been rate-limited.","code":"{code}"}}}}"#).into_bytes()
}

#[test]
fn expired_token_refreshes_without_cooling() {
    for status in [401, 403] {
        let c = classify(status, &hdrs(&[]), b"unauthorized: token expired", now(), None);
        assert!(c.refresh, "{status}");
        assert!(c.cooldown.is_none() && c.retry_other);
        assert!(c.error.message().contains("token expired"));
    }
    // A 403 that is not about the token is a real refusal.
    let c = classify(403, &hdrs(&[]), br#"{"message":"Resource not accessible by integration"}"#, now(), None);
    assert!(!c.refresh);
}

#[test]
fn model_rate_limit_cools_the_model_and_global_the_account() {
    let c = classify(429, &hdrs(&[("retry-after", "40")]), &err("user_model_rate_limited"), now(), None);
    assert_eq!(c.cooldown, Some(Cooldown { scope: Scope::Model, length: Length::Fixed(Duration::from_secs(40)) }));
    assert_eq!(c.error.kind(), ErrorKind::RateLimited);
    assert_eq!(c.error.retry_after(), Some(Duration::from_secs(40)));
    assert!(c.error.message().contains("user_model_rate_limited"));
    for code in ["user_global_rate_limited", "user_global_rate_limited:enterprise", "integration_rate_limited"] {
        let c = classify(429, &hdrs(&[("retry-after", "40")]), &err(code), now(), None);
        assert_eq!(c.cooldown.unwrap().scope, Scope::Credential, "{code}");
    }
    let date = httpdate::fmt_http_date(now() + Duration::from_secs(90));
    let c = classify(429, &hdrs(&[("retry-after", &date)]), &err("user_model_rate_limited"), now(), None);
    assert_eq!(c.cooldown.unwrap().length, Length::Fixed(Duration::from_secs(90)));
    let c = classify(429, &hdrs(&[]), b"rate limited", now(), None);
    assert_eq!(c.cooldown, Some(Cooldown { scope: Scope::Model, length: Length::Backoff }));
}

#[test]
fn quota_waits_for_retry_after_then_reset_date_then_30_min() {
    let body = br#"{"error":{"message":"You have exceeded your premium request allowance","code":"quota_exceeded"}}"#;
    let reset = now() + Duration::from_secs(86_400);
    let c = classify(402, &hdrs(&[("retry-after", "120")]), body, now(), Some(reset));
    assert_eq!(
        c.cooldown,
        Some(Cooldown { scope: Scope::Credential, length: Length::Fixed(Duration::from_secs(120)) })
    );
    assert_eq!(c.error.kind(), ErrorKind::QuotaExceeded);
    let c = classify(402, &hdrs(&[]), body, now(), Some(reset));
    assert_eq!(c.cooldown.unwrap().length, Length::Fixed(Duration::from_secs(86_400)));
    assert_eq!(c.error.retry_after(), Some(Duration::from_secs(86_400)));
    let c = classify(402, &hdrs(&[]), br#"{"error":{"message":"x","code":"free_quota_exceeded"}}"#, now(), None);
    assert_eq!(c.cooldown.unwrap().length, Length::Fixed(MIN_30));
    let c = classify(429, &hdrs(&[]), &err("overage_limit_reached"), now(), None);
    assert_eq!(c.error.kind(), ErrorKind::QuotaExceeded);
    assert_eq!(c.cooldown.unwrap().scope, Scope::Credential);
}

#[test]
fn missing_editor_version_is_the_requests_fault() {
    let c = classify(400, &hdrs(&[]), b"bad request: missing Editor-Version header for IDE auth", now(), None);
    assert!(!c.retry_other && !c.refresh && c.cooldown.is_none());
    assert_eq!(c.error.kind(), ErrorKind::InvalidRequest);
    assert!(c.error.message().contains("Editor-Version"));
}

#[test]
fn initiator_follows_the_last_message_only() {
    let p = |b: &str| peek_conversation(b.as_bytes());
    let user_last = r#"{"model":"m","messages":[{"role":"assistant","content":"a"},{"role":"user","content":"q"}]}"#;
    assert_eq!(p(user_last), ConversationPeek { agent: false, vision: false });
    let tool_last =
        r#"{"messages":[{"role":"user","content":"q"},{"role":"tool","tool_call_id":"c","content":"r"}],"x":1}"#;
    assert!(p(tool_last).agent);
    assert!(p(r#"{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"text","text":"a"}]}]}"#).agent);
    let image = r#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:,"}}]}]}"#;
    assert!(p(image).vision);
    // Quoted text inside a message is escaped, so it does not look like an image part.
    assert!(!p(r#"{"messages":[{"role":"user","content":"the \"image_url\" key"}]}"#).vision);
}

#[test]
fn assistant_content_arrays_become_strings() {
    let body = br#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"q"}]},{"role":"assistant","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}]}"#;
    let v: Value = serde_json::from_slice(&flatten_content(body.to_vec())).unwrap();
    assert_eq!(v["messages"][1]["content"], "ab");
    assert!(v["messages"][0]["content"].is_array(), "user content keeps its parts (images)");
}

#[test]
fn snapshot_headers_parse() {
    let s = parse_snapshot_header("ent=300&ov=0.0&ovPerm=false&rem=85.3&rst=2025-08-01T00%3A00%3A00Z").unwrap();
    assert_eq!(s.entitlement, 300.0);
    assert_eq!(s.percent_remaining, 85.3);
    assert!(!s.unlimited && !s.overage_permitted);
    assert_eq!(s.reset, crate::timefmt::parse_rfc3339("2025-08-01T00:00:00Z"));
    assert!(parse_snapshot_header("ent=-1&rem=100").unwrap().unlimited);
    assert!(parse_snapshot_header("garbage").is_none());

    let mut q = quota::QuotaState::default();
    q.observe_headers(
        &hdrs(&[("x-quota-snapshot-premium_interactions", "ent=300&rem=10&rst=2025-09-01T00:00:00Z")]),
        now(),
    );
    let j = q.to_json().unwrap();
    assert_eq!(j["snapshots"]["premium_interactions"]["percent_remaining"], 10.0);
    assert_eq!(j["quota_reset_date"], "2025-09-01T00:00:00Z");
}

#[test]
fn exhausted_premium_quota_without_overage_is_used_last() {
    let mut q = quota::QuotaState::default();
    assert!(!q.premium_exhausted());
    q.observe_headers(&hdrs(&[("x-quota-snapshot-premium_interactions", "ent=300&ov=0.0&ovPerm=true&rem=0")]), now());
    assert!(!q.premium_exhausted(), "overage keeps the account usable");
    q.observe_headers(&hdrs(&[("x-quota-snapshot-premium_interactions", "ent=300&ov=0.0&ovPerm=false&rem=0")]), now());
    assert!(q.premium_exhausted());
    q.observe_headers(&hdrs(&[("x-quota-snapshot-premium_interactions", "ent=-1&rem=0")]), now());
    assert!(!q.premium_exhausted(), "unlimited plans never run out");
}

#[test]
fn user_quota_parses() {
    let v = serde_json::json!({
        "copilot_plan": "individual", "quota_reset_date": "2025-08-01",
        "quota_snapshots": {
            "chat": {"entitlement": 0, "remaining": 0, "percent_remaining": 100.0, "unlimited": true, "overage_count": 0, "overage_permitted": false, "quota_id": "chat"},
            "premium_interactions": {"entitlement": 300, "remaining": 42, "percent_remaining": 14.0, "unlimited": false, "overage_count": 0, "overage_permitted": true, "quota_id": "premium_interactions"}
        }
    });
    let mut q = quota::QuotaState::default();
    q.observe_user(&v, now());
    assert_eq!(q.reset_date, crate::timefmt::parse_rfc3339("2025-08-01T00:00:00Z"));
    let j = q.to_json().unwrap();
    assert_eq!(j["plan"], "individual");
    assert_eq!(j["snapshots"]["premium_interactions"]["remaining"], 42.0);
    assert_eq!(j["snapshots"]["chat"]["unlimited"], true);
}

#[test]
fn models_mark_responses_only_and_skip_embeddings() {
    let body = br#"{"object":"list","data":[
        {"id":"gpt-4o","capabilities":{"type":"chat"},"supported_endpoints":["/chat/completions"]},
        {"id":"claude-sonnet-4","capabilities":{"type":"chat"}},
        {"id":"gpt-5-codex","capabilities":{"type":"chat"},"supported_endpoints":["/responses"]},
        {"id":"o9-pro","capabilities":{"type":"chat"},"supported_endpoints":["/responses"]},
        {"id":"text-embedding-3-small","capabilities":{"type":"embeddings"}}]}"#;
    let m = parse_models(body).unwrap();
    let ids: Vec<(&str, bool)> = m.iter().map(|m| (m.id.as_str(), m.responses_only)).collect();
    assert_eq!(ids, [("claude-sonnet-4", false), ("gpt-4o", false), ("gpt-5-codex", true), ("o9-pro", true)]);
}

#[test]
fn request_ids_are_fresh_and_uuid_shaped() {
    let (a, b) = (request_id(), request_id());
    assert_ne!(a, b);
    assert_eq!(a.len(), 36);
    assert_eq!(a.matches('-').count(), 4);
}
