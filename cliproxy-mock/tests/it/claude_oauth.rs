//! The Claude OAuth side: authorize + PKCE, the JSON token endpoint with rotating refresh tokens, the profile,
//! and how the messages endpoint treats the tokens (beta, expiry, unified windows, per-account faults).

use std::time::{SystemTime, UNIX_EPOCH};

use cliproxy_mock::accounts::{Mint, pkce_challenge};
use cliproxy_mock::claude_oauth::CLIENT_ID;
use cliproxy_mock::{Fault, FaultKind, IdP, MockServer};
use serde_json::{Value, json};

use crate::common::{anthropic_body, anthropic_oauth, authorize, client, status_json};

const REDIRECT: &str = "http://localhost:54545/callback";
const VERIFIER: &str = "claude-verifier-0123456789-0123456789-0123456789";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn token(mock: &MockServer, path: &str, body: &Value) -> reqwest::RequestBuilder {
    client().post(format!("{}{path}", mock.url())).json(body)
}

fn exchange(code: &str, verifier: &str) -> Value {
    json!({"grant_type": "authorization_code", "code": code, "state": "st-1", "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT, "code_verifier": verifier})
}

fn refresh(refresh_token: &str) -> Value {
    json!({"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": CLIENT_ID,
        "scope": "user:profile user:inference"})
}

fn profile(mock: &MockServer, token: &str) -> reqwest::RequestBuilder {
    client()
        .get(format!("{}/api/oauth/profile", mock.url()))
        .bearer_auth(token)
        .header("anthropic-beta", "oauth-2025-04-20")
}

async fn login(mock: &MockServer) -> Value {
    let challenge = pkce_challenge(VERIFIER);
    let query = [
        ("code", "true"),
        ("client_id", CLIENT_ID),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", "user:profile user:inference user:sessions:claude_code"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("state", "st-1"),
    ];
    let back = authorize(mock, "/oauth/authorize", &query).await;
    assert_eq!(back["state"], "st-1");
    let (status, answer) = status_json(token(mock, "/v1/oauth/token", &exchange(&back["code"], VERIFIER))).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

#[tokio::test]
async fn authorize_redirects_at_once_and_the_code_needs_the_pkce_verifier() {
    let mock = MockServer::start().await;
    let challenge = pkce_challenge(VERIFIER);
    let query = [
        ("client_id", CLIENT_ID),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", "xyz"),
    ];
    let back = authorize(&mock, "/oauth/authorize", &query).await;
    assert_eq!(back["state"], "xyz");
    let code = &back["code"];

    let (status, v) = status_json(token(&mock, "/v1/oauth/token", &exchange(code, "a-wrong-verifier"))).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_grant")));
    assert!(v["error_description"].as_str().unwrap().contains("code_verifier"));
    let mut no_verifier = exchange(code, VERIFIER);
    no_verifier.as_object_mut().unwrap().remove("code_verifier");
    let (status, v) = status_json(token(&mock, "/v1/oauth/token", &no_verifier)).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_request")));

    let (status, v) = status_json(token(&mock, "/v1/oauth/token", &exchange(code, VERIFIER))).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["access_token"].as_str().unwrap().starts_with("sk-ant-oat01-"));
    assert!(v["refresh_token"].as_str().unwrap().starts_with("sk-ant-ort01-"));
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 28_800);
    let account = mock.accounts(IdP::Claude).list().pop().unwrap();
    assert_eq!(v["account"], json!({"uuid": account.id, "email_address": account.email}));
    assert_eq!(v["organization"]["uuid"], account.org.as_str());
    assert!(v["organization"]["name"].is_string());

    let (status, v) = status_json(token(&mock, "/v1/oauth/token", &exchange(code, VERIFIER))).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_grant")), "a code works once");

    // Without a PKCE challenge the authorization itself is refused, back at the redirect URI.
    let back = authorize(&mock, "/oauth/authorize", &query[..3]).await;
    assert_eq!(back["error"], "invalid_request");
    assert!(!back.contains_key("code"));
    // A body the endpoint does not take.
    let form = client().post(format!("{}/v1/oauth/token", mock.url())).body("grant_type=refresh_token");
    assert_eq!(status_json(form).await.1["error"], "invalid_request");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_used_or_unknown_ones_are_invalid_grant() {
    let mock = MockServer::start().await;
    let first = login(&mock).await;
    let old = first["refresh_token"].as_str().unwrap();
    let (status, second) = status_json(token(&mock, "/v1/oauth/token", &refresh(old))).await;
    assert_eq!(status, 200);
    let new = second["refresh_token"].as_str().unwrap();
    assert_ne!(new, old);
    assert_ne!(second["access_token"], first["access_token"]);
    assert_eq!(second["account"], first["account"]);
    assert_eq!(second["scope"], "user:profile user:inference");

    for used_or_unknown in [old, "sk-ant-ort01-never-issued"] {
        let (status, v) = status_json(token(&mock, "/v1/oauth/token", &refresh(used_or_unknown))).await;
        assert_eq!(status, 400);
        assert_eq!(v, json!({"error": "invalid_grant", "error_description": "Refresh token not found or invalid."}));
    }
    // The older path serves the same grants.
    let (status, third) = status_json(token(&mock, "/oauth/token", &refresh(new))).await;
    assert_eq!(status, 200);
    assert_eq!(mock.endpoint_hits("/v1/oauth/token"), 4);
    assert_eq!(mock.endpoint_hits("/oauth/token"), 1);

    // Both the old and the new access token work until they expire.
    for access in [&first["access_token"], &third["access_token"]] {
        let r = anthropic_oauth(&mock, access.as_str().unwrap(), &anthropic_body(&json!({}), false)).send().await;
        assert_eq!(r.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn profile_describes_the_account_of_an_issued_token() {
    let mock = MockServer::start().await;
    let issued = mock.accounts(IdP::Claude).mint(Mint { email: Some("pro@example.com".into()), ..Mint::default() });
    let (status, v) = status_json(profile(&mock, &issued.access_token)).await;
    assert_eq!(status, 200);
    assert_eq!(v["account"]["email"], "pro@example.com");
    assert_eq!(v["account"]["uuid"], issued.account.id.as_str());
    assert_eq!(v["organization"]["uuid"], issued.account.org.as_str());
    assert!(v["organization"]["rate_limit_tier"].is_string());

    let (status, v) = status_json(profile(&mock, "sk-ant-oat01-never-issued")).await;
    assert_eq!((status, v["error"]["type"].as_str()), (401, Some("authentication_error")));
    let no_beta = client().get(format!("{}/api/oauth/profile", mock.url())).bearer_auth(&issued.access_token);
    let (status, v) = status_json(no_beta).await;
    assert_eq!(status, 401);
    assert_eq!(v["error"]["message"], "OAuth authentication is currently not supported.");
}

#[tokio::test]
async fn messages_want_the_beta_and_refuse_expired_and_revoked_tokens() {
    let mock = MockServer::start().await;
    let accounts = mock.accounts(IdP::Claude);
    let issued = accounts.mint(Mint::default());
    let body = anthropic_body(&json!({"reply": "ok"}), false);

    let response = anthropic_oauth(&mock, &issued.access_token, &body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let h = response.headers();
    let now = now();
    for (window, span) in [("5h", 5 * 3600), ("7d", 7 * 86_400)] {
        assert_eq!(h[format!("anthropic-ratelimit-unified-{window}-status").as_str()], "allowed");
        let reset: u64 =
            h[format!("anthropic-ratelimit-unified-{window}-reset").as_str()].to_str().unwrap().parse().unwrap();
        assert!((now + span - 5..=now + span + 5).contains(&reset), "{window} reset {reset}");
        let used: f64 =
            h[format!("anthropic-ratelimit-unified-{window}-utilization").as_str()].to_str().unwrap().parse().unwrap();
        assert!((0.0..1.0).contains(&used), "{window} utilization {used}");
    }
    assert_eq!(h["anthropic-ratelimit-unified-status"], "allowed");

    let no_beta = client()
        .post(format!("{}/v1/messages", mock.url()))
        .bearer_auth(&issued.access_token)
        .header("anthropic-version", "2023-06-01")
        .json(&body);
    let (status, v) = status_json(no_beta).await;
    assert_eq!(status, 401);
    assert_eq!(
        v["error"],
        json!({"type": "authentication_error", "message": "OAuth authentication is currently not supported."})
    );

    assert!(accounts.expire(&issued.access_token));
    let (status, v) = status_json(anthropic_oauth(&mock, &issued.access_token, &body)).await;
    assert_eq!(status, 401);
    assert_eq!(v["type"], "error");
    assert_eq!(
        v["error"],
        json!({"type": "authentication_error",
            "message": "OAuth token has expired. Please obtain a new token or refresh your existing token."})
    );
    assert!(v["request_id"].as_str().unwrap().starts_with("req_"));

    // The refresh grant gives a working token again; revoking the account ends that too.
    let (_, fresh) =
        status_json(token(&mock, "/v1/oauth/token", &refresh(issued.refresh_token.as_deref().unwrap()))).await;
    let access = fresh["access_token"].as_str().unwrap();
    assert_eq!(anthropic_oauth(&mock, access, &body).send().await.unwrap().status(), 200);
    assert!(accounts.revoke(&issued.account.email));
    let (status, v) = status_json(anthropic_oauth(&mock, access, &body)).await;
    assert_eq!((status, v["error"]["message"].as_str()), (401, Some("Invalid authentication credentials")));
    let (status, v) =
        status_json(token(&mock, "/v1/oauth/token", &refresh(fresh["refresh_token"].as_str().unwrap()))).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_grant")));
    let relogin = accounts.mint(Mint { email: Some(issued.account.email.clone()), ..Mint::default() });
    let r = anthropic_oauth(&mock, &relogin.access_token, &body).send().await.unwrap();
    assert_eq!(r.status(), 200, "after a revocation a new login works");
    assert_eq!(mock.hits(&issued.access_token), 3, "every messages call counts, refused or not");
    assert_eq!(mock.endpoint_hits_for("/v1/messages", access), 2);
}

#[tokio::test]
async fn one_account_can_be_scripted_into_a_rejected_five_hour_window() {
    let mock = MockServer::start().await;
    let accounts = mock.accounts(IdP::Claude);
    let limited = accounts.mint(Mint { email: Some("limited@example.com".into()), ..Mint::default() });
    let other = accounts.mint(Mint { email: Some("other@example.com".into()), ..Mint::default() });
    let fault = Fault { kind: Some(FaultKind::RateLimit), retry_after: Some(json!(1800)), ..Fault::default() };
    assert!(accounts.set_fault("limited@example.com", Some(fault)));
    let body = anthropic_body(&json!({"reply": "hi"}), true);

    let response = anthropic_oauth(&mock, &limited.access_token, &body).send().await.unwrap();
    assert_eq!(response.status(), 429);
    let h = response.headers();
    assert_eq!(h["retry-after"], "1800");
    assert_eq!(h["anthropic-ratelimit-unified-status"], "rejected");
    assert_eq!(h["anthropic-ratelimit-unified-5h-status"], "rejected");
    let reset: u64 = h["anthropic-ratelimit-unified-5h-reset"].to_str().unwrap().parse().unwrap();
    assert!((now() + 1795..=now() + 1805).contains(&reset));
    assert_eq!(h["anthropic-ratelimit-unified-5h-utilization"], "1.0");
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["type"], "rate_limit_error");

    // The account's other tokens are limited too; other accounts are not.
    let again = accounts.mint(Mint { email: Some("limited@example.com".into()), ..Mint::default() });
    assert_eq!(anthropic_oauth(&mock, &again.access_token, &body).send().await.unwrap().status(), 429);
    let fine = anthropic_oauth(&mock, &other.access_token, &body).send().await.unwrap();
    assert_eq!(fine.status(), 200);
    assert_eq!(fine.headers()["anthropic-ratelimit-unified-5h-status"], "allowed");

    // A directive's per-key fault still wins over the account's; clearing the account's ends the limit.
    let mut d = json!({"per_key": {}});
    d["per_key"][&limited.access_token] = json!({"status": 529});
    let r = anthropic_oauth(&mock, &limited.access_token, &anthropic_body(&d, false)).send().await.unwrap();
    assert_eq!(r.status(), 529);
    assert!(accounts.set_fault("limited@example.com", None));
    assert_eq!(anthropic_oauth(&mock, &limited.access_token, &body).send().await.unwrap().status(), 200);
    assert_eq!(mock.hits(&limited.access_token), 3);
    assert_eq!(mock.hits(&other.access_token), 1);
}

#[tokio::test]
async fn the_token_endpoint_can_be_scripted_to_fail_for_one_account() {
    let mock = MockServer::start().await;
    let accounts = mock.accounts(IdP::Claude);
    let limited = accounts.mint(Mint { email: Some("slow@example.com".into()), ..Mint::default() });
    let other = accounts.mint(Mint::default());
    let fault = Fault { kind: Some(FaultKind::RateLimit), retry_after: Some(json!(42)), ..Fault::default() };
    assert!(accounts.set_token_fault("slow@example.com", Some(fault)));
    let rt = limited.refresh_token.as_deref().unwrap();

    let response = token(&mock, "/v1/oauth/token", &refresh(rt)).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "42");
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "rate_limit_exceeded");
    let (status, _) =
        status_json(token(&mock, "/v1/oauth/token", &refresh(other.refresh_token.as_deref().unwrap()))).await;
    assert_eq!(status, 200, "other accounts refresh as usual");

    let server_error = Fault { status: Some(500), ..Fault::default() };
    accounts.set_token_fault("slow@example.com", Some(server_error));
    let (status, v) = status_json(token(&mock, "/v1/oauth/token", &refresh(rt))).await;
    assert_eq!((status, v["error"].as_str()), (500, Some("server_error")));
    accounts.set_token_fault("slow@example.com", None);
    let (status, _) = status_json(token(&mock, "/v1/oauth/token", &refresh(rt))).await;
    assert_eq!(status, 200, "a refused refresh leaves the refresh token usable");
}
