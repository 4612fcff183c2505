//! Failed-secret throttling: wrong client keys and wrong management secrets are slowed per address, requests
//! without any secret never count, and the right secret over loopback always passes. Also: any letter case of
//! the `Bearer` scheme, and the Kiro page's cookie being a session id rather than the secret.

mod support;

use serde_json::Value;
use support::*;

#[tokio::test]
async fn wrong_client_keys_are_throttled_but_the_right_key_over_loopback_is_not() {
    let rig = start().await;
    let body = chat_body("compat-gpt-4o", "hi", false);
    let post = |key: Option<&'static str>| {
        let r = rig.http.post(rig.url("/v1/chat/completions")).json(&body);
        match key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
        .send()
    };
    for _ in 0..30 {
        assert_eq!(post(None).await.unwrap().status(), 401, "no key: refused, not counted");
    }
    for i in 0..9 {
        assert_eq!(post(Some("wrong-key")).await.unwrap().status(), 401, "wrong key #{}", i + 1);
    }
    let r = post(Some("wrong-key")).await.unwrap();
    assert_eq!(r.status(), 429, "the tenth wrong key locks the address");
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "too_many_failed_attempts", "{v}");
    assert_eq!(post(Some("another-guess")).await.unwrap().status(), 429);
    assert_eq!(post(Some(CLIENT_KEY)).await.unwrap().status(), 200, "the owner is not locked out");
    let r = rig
        .http
        .post(rig.url("/v1/messages"))
        .header("x-api-key", "wrong-key")
        .json(&messages_body("claude-sonnet-4-5", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "rate_limit_error", "Anthropic's shape");
    assert_eq!(rig.mock.total_hits(), 1);
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let rig = start().await;
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = rig
            .http
            .get(rig.url("/v1/models"))
            .header("authorization", format!("{scheme} {CLIENT_KEY}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
        let r = rig
            .http
            .get(rig.url("/v0/management/credentials"))
            .header("authorization", format!("{scheme} {MGMT}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "management, {scheme}");
    }
}

#[tokio::test]
async fn requests_without_a_management_secret_never_lock_anyone_out() {
    let rig = start().await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    // Bare GETs from any local process, and cross-site form posts without the field.
    for _ in 0..10 {
        assert_eq!(http.get(rig.url("/v0/management/cooldowns")).send().await.unwrap().status(), 401);
        let r = http.post(rig.url("/v0/oauth/kiro/login")).form(&[("other", "x")]).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
    for _ in 0..4 {
        let r = http.get(rig.url("/v0/management/cooldowns")).bearer_auth("wrong").send().await.unwrap();
        assert_eq!(r.status(), 401, "still counting from zero");
    }
    let r = http.post(rig.url("/v0/oauth/kiro/login")).form(&[("secret", "wrong")]).send().await.unwrap();
    assert_eq!(r.status(), 429, "the fifth wrong secret locks the address");
    assert!(r.headers().contains_key("retry-after"));
    let r = http.post(rig.url("/v0/oauth/kiro/login")).form(&[("secret", MGMT)]).send().await.unwrap();
    assert_eq!(r.status(), 303, "the right secret over loopback still signs in");
    assert_eq!(http.get(rig.url("/v0/management/cooldowns")).bearer_auth(MGMT).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn the_page_cookie_is_an_expiring_session_not_the_secret() {
    let rig = start().await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = http.post(rig.url("/v0/oauth/kiro/login")).form(&[("secret", MGMT)]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(!cookie.contains(MGMT), "{cookie}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/v0", "Max-Age=43200"] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_owned();
    let id = pair.strip_prefix("cliproxy_mgmt=").unwrap();
    assert_eq!(id.len(), 64, "{id}");
    let r = http.get(rig.url("/v0/management/cooldowns")).header("cookie", &pair).send().await.unwrap();
    assert_eq!(r.status(), 200, "the session opens the management API the page calls");
    // The secret itself is no longer accepted as a cookie, nor is a made-up session.
    for forged in [format!("cliproxy_mgmt={MGMT}"), format!("cliproxy_mgmt={}", "0".repeat(64))] {
        let r = http.get(rig.url("/v0/management/cooldowns")).header("cookie", forged).send().await.unwrap();
        assert_eq!(r.status(), 401);
    }
    // A second sign-in is a second session.
    let r = http.post(rig.url("/v0/oauth/kiro/login")).form(&[("secret", MGMT)]).send().await.unwrap();
    assert_ne!(r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap(), pair);
}
