//! The accounts page (grown from the Kiro page, still at `/v0/oauth/kiro`) and its JSON actions over HTTP: the
//! management login form and cookie, the account list, a pasted social refresh token, refresh-all and the auth
//! rules. (The page's behaviour in a real browser is tested in `tests/browser/`.)

mod support;

use serde_json::{Value, json};
use support::*;

fn config(auth_dir: &std::path::Path, accounts: &str) -> String {
    format!(
        r#"
api-keys: ["{CLIENT_KEY}"]
remote-management: {{ secret-key: "{MGMT}" }}
auth-dir: "{}"
kiro-endpoints:
  oidc-base-url: "{{MOCK}}/kiro/oidc/{{region}}"
  auth-base-url: "{{MOCK}}/kiro/auth/{{region}}"
  api-base-url: "{{MOCK}}/kiro/q/{{region}}"
  fallback-api-base-url: "{{MOCK}}/kiro/cw/{{region}}"
kiro:
{accounts}
"#,
        auth_dir.display()
    )
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

#[tokio::test]
async fn login_form_sets_an_http_only_cookie_that_opens_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let rig = start_with(&config(dir.path(), "  - access-token: aoaTEST-ui-1")).await;
    let http = no_redirects();
    let r = http.get(rig.url("/v0/oauth/kiro")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let body = r.text().await.unwrap();
    assert!(body.contains("id=\"login-form\"") && !body.contains("id=\"builder-id\""));

    let r = http.post(rig.url("/v0/oauth/kiro/login")).form(&[("secret", "wrong")]).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(r.text().await.unwrap().contains("Wrong management key"));

    let r = http.post(rig.url("/v0/oauth/kiro/login")).form(&[("secret", MGMT)]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/v0/oauth/kiro");
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_owned();

    let r = http.get(rig.url("/v0/oauth/kiro")).header("cookie", &pair).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    for id in ["builder-id", "idc-start", "start-url", "region", "accounts", "import-ide", "add-token", "refresh-all"] {
        assert!(page.contains(&format!("id=\"{id}\"")), "{id} missing");
    }
    let r = http.get(rig.url("/v0/oauth/kiro/accounts")).header("cookie", &pair).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["accounts"][0]["id"], "kiro:config-0");
    assert_eq!(v["accounts"][0]["state"], "ready");
    // The JSON actions refuse callers without the secret.
    for path in ["/v0/oauth/kiro/accounts"] {
        assert_eq!(http.get(rig.url(path)).send().await.unwrap().status(), 401);
    }
    for path in ["/v0/oauth/kiro/import", "/v0/oauth/kiro/token", "/v0/oauth/kiro/refresh"] {
        assert_eq!(http.post(rig.url(path)).send().await.unwrap().status(), 401, "{path}");
    }
}

#[tokio::test]
async fn pasted_refresh_token_is_validated_then_added_and_refresh_all_reports() {
    let dir = tempfile::tempdir().unwrap();
    let rig = start_with(&config(dir.path(), "  - access-token: aoaTEST-ui-2")).await;
    let post = |path: &str, body: Value| rig.http.post(rig.url(path)).bearer_auth(MGMT).json(&body).send();
    let r = post("/v0/oauth/kiro/token", json!({"refresh_token": "aorAAAAAG-invalid-pasted-token"})).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("invalid_grant"));
    let r = post("/v0/oauth/kiro/token", json!({"refresh_token": "aorAAAAAGpasted-social-token-1"})).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["credential"], "kiro:kiro-social-social-user-example-com");
    let saved: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("kiro-social-social-user-example-com.json")).unwrap())
            .unwrap();
    assert_eq!(saved["auth_method"], "social");
    assert_eq!(saved["provider"], "imported");
    assert!(saved["profile_arn"].as_str().unwrap().starts_with("arn:aws:codewhisperer:"));
    let r = rig.http.get(rig.url("/v0/oauth/kiro/accounts")).bearer_auth(MGMT).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["accounts"].as_array().unwrap().len(), 2);
    let r = post("/v0/oauth/kiro/refresh", json!({})).await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["refreshed_count"], 1, "{v}");
    assert_eq!(v["success"], false, "the static-token account cannot refresh: {v}");
    assert!(v["warnings"][0].as_str().unwrap().contains("kiro:config-0"), "{v}");
    // The new account serves requests.
    let r = rig.chat(&chat_body("kiro-claude-sonnet-4-5", "hi", false)).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn without_a_management_secret_the_page_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let text = config(dir.path(), "  - access-token: aoaTEST-ui-3")
        .replace(&format!("secret-key: \"{MGMT}\""), "secret-key: \"\"");
    let rig = start_with(&text).await;
    assert_eq!(rig.http.get(rig.url("/v0/oauth/kiro")).send().await.unwrap().status(), 404);
    let r = no_redirects().post(rig.url("/v0/oauth/kiro/login")).form(&[("secret", "x")]).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn the_accounts_page_is_served_at_its_own_path_with_its_own_form() {
    let dir = tempfile::tempdir().unwrap();
    let rig = start_with(&config(dir.path(), "  - access-token: aoaTEST-ui-4")).await;
    let http = no_redirects();
    let r = http.get(rig.url("/v0/oauth/accounts")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("action=\"/v0/oauth/accounts/login\""));
    let r = http.post(rig.url("/v0/oauth/accounts/login")).form(&[("secret", MGMT)]).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/v0/oauth/accounts");
    let pair = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let page =
        http.get(rig.url("/v0/oauth/accounts")).header("cookie", &pair).send().await.unwrap().text().await.unwrap();
    let kiro = http.get(rig.url("/v0/oauth/kiro")).header("cookie", &pair).send().await.unwrap().text().await.unwrap();
    assert_eq!(page, kiro, "one page for every account type");
    for id in
        ["claude-login", "claude-code", "claude-submit", "claude-import", "copilot-login", "builder-id", "accounts"]
    {
        assert!(page.contains(&format!("id=\"{id}\"")), "{id} missing");
    }
    // Every account type's actions, and refresh of every account.
    let v: Value = http
        .get(rig.url("/v0/oauth/claude/accounts"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["accounts"], json!([]));
    let r = http.post(rig.url("/v0/oauth/accounts/refresh")).header("cookie", &pair).send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1, "{v}");
    let r = http.post(rig.url("/v0/oauth/nope/import")).header("cookie", &pair).send().await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(http.post(rig.url("/v0/oauth/claude/import")).send().await.unwrap().status(), 401);
}
