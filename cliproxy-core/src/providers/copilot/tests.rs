use super::*;
use std::time::Duration;

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

mod exchange {
    use super::*;
    use crate::auth::refresh::{RefreshingToken, Token};
    use crate::credential::{CredentialState, TokenSource};
    use crate::providers::Ctx;
    use crate::test_support::{Canned, FakeRuntime, ScriptedTransport};
    use crate::transport::Runtime;
    use futures::executor::block_on;

    fn setup() -> (Arc<RefreshingToken>, Ctx, Arc<ScriptedTransport>, Arc<FakeRuntime>) {
        let rt = Arc::new(FakeRuntime::new());
        let transport = Arc::new(ScriptedTransport::default());
        let account = Arc::new(Account {
            id: "copilot:t".into(),
            github_token: Secret::new("gho_test"),
            github_api: "https://ghe.test/api/v3".into(),
            proxy_url: None,
            models: Mutex::new(None),
            quota: Mutex::new(Default::default()),
        });
        let exchange = auth::Exchange::new(account);
        let tok: Option<Token> = None;
        let token = Arc::new(RefreshingToken::new("copilot:t", Box::new(exchange), tok, Duration::from_secs(300)));
        let ctx = Ctx { transport: transport.clone(), runtime: rt.clone(), config: Default::default() };
        (token, ctx, transport, rt)
    }

    fn envelope(rt: &FakeRuntime, n: u32, lifetime: u64, refresh_in: u64) -> Canned {
        let exp = rt.now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() + lifetime;
        Canned::json(
            200,
            &format!(
                r#"{{"token":"tid=1;exp={exp};chat=1:sig{n}","expires_at":{exp},"refresh_in":{refresh_in},"endpoints":{{"api":"https://api.business.githubcopilot.com"}}}}"#
            ),
        )
    }

    #[test]
    fn copilot_token_is_replaced_when_refresh_in_says_not_before() {
        let (token, ctx, transport, rt) = setup();
        transport.push(envelope(&rt, 1, 1800, 1500));
        let a = block_on(token.access(&ctx, false)).unwrap();
        assert!(a.token.expose().ends_with("sig1"));
        assert_eq!(a.base_url.as_deref(), Some("https://api.business.githubcopilot.com"));
        {
            let sent = transport.requests.lock().unwrap();
            assert_eq!(sent[0].uri(), "https://ghe.test/api/v3/copilot_internal/v2/token");
            assert_eq!(sent[0].headers()["authorization"], "token gho_test");
            assert!(sent[0].headers().contains_key("editor-version"));
        }

        rt.advance(Duration::from_secs(1490));
        assert!(block_on(token.access(&ctx, false)).unwrap().token.expose().ends_with("sig1"));
        assert_eq!(transport.requests.lock().unwrap().len(), 1, "still within refresh_in");
        rt.advance(Duration::from_secs(20));
        transport.push(envelope(&rt, 2, 1800, 1500));
        assert!(block_on(token.access(&ctx, false)).unwrap().token.expose().ends_with("sig2"));
        assert_eq!(transport.requests.lock().unwrap().len(), 2, "replaced once refresh_in passed, before expiry");
    }

    #[test]
    fn a_token_living_seconds_is_replaced_even_right_after_a_refresh() {
        let (token, ctx, transport, rt) = setup();
        transport.push(envelope(&rt, 1, 2, 1));
        block_on(token.access(&ctx, false)).unwrap();
        rt.advance(Duration::from_secs(3));
        transport.push(envelope(&rt, 2, 2, 1));
        assert!(block_on(token.access(&ctx, false)).unwrap().token.expose().ends_with("sig2"));
    }

    #[test]
    fn revoked_github_token_needs_login_and_rate_limits_do_not() {
        let (token, ctx, transport, _) = setup();
        transport.push(Canned::json(403, r#"{"message":"API rate limit exceeded for user ID 1.","status":"403"}"#));
        assert!(block_on(token.access(&ctx, false)).is_err());
        assert_eq!(token.state(), CredentialState::Ready);
        transport.push(Canned::json(401, r#"{"message":"Bad credentials","status":"401"}"#));
        let e = block_on(token.access(&ctx, true)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Authentication);
        assert!(matches!(token.state(), CredentialState::NeedsLogin(r) if r.contains("login copilot")));
    }
}
