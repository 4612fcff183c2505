//! Gemini CLI's side: the Google OAuth server (authorize, the form token endpoint with PKCE, non-rotating
//! refresh tokens, userinfo) and Code Assist `v1internal` (onboarding, the `{model, project, request}`
//! envelope, `{response}` answers, per-model quota 429s).

use cliproxy_mock::accounts::{Issued, Mint, pkce_challenge};
use cliproxy_mock::google_oauth::CLIENT_ID;
use cliproxy_mock::{Fault, FaultKind, IdP, MockServer, directive};
use serde_json::{Value, json};

use crate::common::{authorize, client, gemini_frames, post_form, split_text, status_json, text_of};

const REDIRECT: &str = "http://localhost:8085/oauth2callback";
const VERIFIER: &str = "gemini-cli-verifier-0123456789abcdefghijklmnopqrstuv";
const SECRET: &str = "mock-client-secret";

fn v1internal(mock: &MockServer, method: &str, token: &str, body: &Value) -> reqwest::RequestBuilder {
    client()
        .post(format!("{}/v1internal:{method}", mock.url()))
        .bearer_auth(token)
        .header("client-metadata", "ideType=IDE_UNSPECIFIED,platform=PLATFORM_UNSPECIFIED,pluginType=GEMINI")
        .json(body)
}

fn envelope(model: &str, project: &str, d: &Value) -> Value {
    json!({"model": model, "project": project, "user_prompt_id": "p-1", "request": {
        "contents": [{"role": "user", "parts": [{"text": format!("Hello. {}", directive(d))}]}],
        "generationConfig": {"temperature": 0.5}, "session_id": "s-1"}})
}

fn onboarded(mock: &MockServer) -> Issued {
    mock.accounts(IdP::Google).mint(Mint::default())
}

fn detail<'a>(error: &'a Value, kind: &str) -> &'a Value {
    let details = error["error"]["details"].as_array().unwrap();
    details.iter().find(|d| d["@type"] == format!("type.googleapis.com/google.rpc.{kind}")).unwrap()
}

#[tokio::test]
async fn google_login_checks_pkce_and_does_not_rotate_refresh_tokens() {
    let mock = MockServer::start().await;
    let challenge = pkce_challenge(VERIFIER);
    let query = |offline: bool| {
        let mut q = vec![
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT),
            ("response_type", "code"),
            ("scope", "https://www.googleapis.com/auth/cloud-platform openid"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("state", "g-state"),
        ];
        if offline {
            q.push(("access_type", "offline"));
        }
        q
    };
    let back = authorize(&mock, "/o/oauth2/v2/auth", &query(true)).await;
    assert_eq!(back["state"], "g-state");
    let exchange = |code: &str, verifier: &str| {
        let fields = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ];
        post_form(&mock, "/token", &fields)
    };
    let (status, v) = status_json(exchange(&back["code"], "wrong")).await;
    assert_eq!(status, 400);
    assert_eq!(v, json!({"error": "invalid_grant", "error_description": "Invalid code verifier."}));
    let (status, tokens) = status_json(exchange(&back["code"], VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert!(access.starts_with("ya29."));
    assert_eq!(tokens["expires_in"], 3599);
    assert_eq!(tokens["token_type"], "Bearer");
    let refresh_token = tokens["refresh_token"].as_str().unwrap();

    let (status, me) =
        status_json(client().get(format!("{}/oauth2/v2/userinfo", mock.url())).bearer_auth(access)).await;
    assert_eq!(status, 200);
    let account = mock.accounts(IdP::Google).list().pop().unwrap();
    assert_eq!(me["email"], account.email.as_str());

    let refresh = || {
        let fields = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
        ];
        post_form(&mock, "/token", &fields)
    };
    for _ in 0..2 {
        let (status, v) = status_json(refresh()).await;
        assert_eq!(status, 200, "Google refresh tokens stay valid");
        assert!(v.get("refresh_token").is_none(), "and are not rotated: {v}");
        assert_ne!(v["access_token"], tokens["access_token"]);
    }
    let (status, v) = status_json(post_form(
        &mock,
        "/token",
        &[("grant_type", "refresh_token"), ("refresh_token", refresh_token), ("client_id", CLIENT_ID)],
    ))
    .await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_request")), "the client secret is required");

    // Without access_type=offline there is no refresh token.
    let back = authorize(&mock, "/o/oauth2/v2/auth", &query(false)).await;
    let (_, v) = status_json(exchange(&back["code"], VERIFIER)).await;
    assert!(v["access_token"].is_string() && v.get("refresh_token").is_none());

    assert!(mock.accounts(IdP::Google).revoke(&account.email));
    let (status, v) = status_json(refresh()).await;
    assert_eq!((status, v["error_description"].as_str()), (400, Some("Token has been expired or revoked.")));
}

#[tokio::test]
async fn a_new_account_onboards_through_a_long_running_operation() {
    let mock = MockServer::start().await;
    let issued = mock.accounts(IdP::Google).mint(Mint { onboarded: Some(false), ..Mint::default() });
    let token = issued.access_token.as_str();
    let metadata =
        json!({"metadata": {"ideType": "IDE_UNSPECIFIED", "platform": "PLATFORM_UNSPECIFIED", "pluginType": "GEMINI"}});

    let (status, load) = status_json(v1internal(&mock, "loadCodeAssist", token, &metadata)).await;
    assert_eq!(status, 200);
    assert!(load.get("currentTier").is_none());
    let default_tier = load["allowedTiers"].as_array().unwrap().iter().find(|t| t["isDefault"] == true).unwrap();
    assert_eq!(default_tier["id"], "free-tier");

    let (status, v) = status_json(v1internal(
        &mock,
        "generateContent",
        token,
        &envelope("gemini-2.5-pro", &issued.account.org, &json!({})),
    ))
    .await;
    assert_eq!((status, v["error"]["status"].as_str()), (403, Some("PERMISSION_DENIED")), "not onboarded yet");

    let with_project =
        json!({"tierId": "free-tier", "cloudaicompanionProject": "my-project", "metadata": metadata["metadata"]});
    let (status, v) = status_json(v1internal(&mock, "onboardUser", token, &with_project)).await;
    assert_eq!((status, v["error"]["status"].as_str()), (400, Some("FAILED_PRECONDITION")));

    let onboard = json!({"tierId": "free-tier", "metadata": metadata["metadata"]});
    let (status, operation) = status_json(v1internal(&mock, "onboardUser", token, &onboard)).await;
    assert_eq!(status, 200);
    assert_eq!(operation["done"], false);
    let name = operation["name"].as_str().unwrap();
    assert!(name.starts_with("operations/"));
    let poll = client().get(format!("{}/v1internal/{name}", mock.url())).bearer_auth(token);
    let (status, done) = status_json(poll).await;
    assert_eq!(status, 200);
    assert_eq!(done["done"], true);
    assert_eq!(done["response"]["cloudaicompanionProject"]["id"], issued.account.org.as_str());

    let (_, load) = status_json(v1internal(&mock, "loadCodeAssist", token, &metadata)).await;
    assert_eq!(load["currentTier"]["id"], "free-tier");
    assert_eq!(load["cloudaicompanionProject"], issued.account.org.as_str());
    let (status, _) = status_json(v1internal(&mock, "onboardUser", token, &onboard)).await;
    assert_eq!(status, 200, "onboarding again answers the finished operation");
}

#[tokio::test]
async fn generate_content_uses_the_envelope_and_wraps_answers() {
    let mock = MockServer::start().await;
    let issued = onboarded(&mock);
    let (token, project) = (issued.access_token.as_str(), issued.account.org.as_str());
    let d = json!({"reply": "Hello, Gemini CLI", "usage": {"input": 12, "output": 4}});

    let (status, v) =
        status_json(v1internal(&mock, "generateContent", token, &envelope("gemini-2.5-pro", project, &d))).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["traceId"].is_string());
    assert_eq!(v["response"]["candidates"][0]["content"]["parts"][0]["text"], "Hello, Gemini CLI");
    assert_eq!(v["response"]["usageMetadata"]["totalTokenCount"], 16);
    assert!(v.get("candidates").is_none(), "the answer is wrapped");

    let url = format!("{}/v1internal:streamGenerateContent?alt=sse", mock.url());
    let stream = client().post(&url).bearer_auth(token).json(&envelope("gemini-2.5-flash", project, &d));
    let frames = gemini_frames(&text_of(stream).await);
    let text: String = frames
        .iter()
        .map(|f| {
            assert!(f["traceId"].is_string());
            f["response"]["candidates"][0]["content"]["parts"][0]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "Hello, Gemini CLI");
    assert!(frames.last().unwrap()["response"]["usageMetadata"].is_object());
    assert!(frames[..frames.len() - 1].iter().all(|f| f["response"].get("usageMetadata").is_none()));
    assert_eq!(mock.hits(token), 2);

    let count = json!({"request": {"model": "models/gemini-2.5-pro",
        "contents": [{"role": "user", "parts": [{"text": directive(&json!({"usage": {"input": 77}}))}]}]}});
    let (status, v) = status_json(v1internal(&mock, "countTokens", token, &count)).await;
    assert_eq!((status, v), (200, json!({"totalTokens": 77})));

    let mut no_project = envelope("gemini-2.5-pro", project, &d);
    no_project.as_object_mut().unwrap().remove("project");
    let (status, v) = status_json(v1internal(&mock, "generateContent", token, &no_project)).await;
    assert_eq!((status, v["error"]["status"].as_str()), (400, Some("INVALID_ARGUMENT")));
    let bare = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let (status, _) = status_json(v1internal(&mock, "generateContent", token, &bare)).await;
    assert_eq!(status, 400, "the bare Gemini body is not the Code Assist envelope");
    let (status, v) = status_json(v1internal(&mock, "retrieveUserQuota", token, &json!({"project": project}))).await;
    assert_eq!(status, 200);
    assert!(v["buckets"].as_array().unwrap().iter().any(|b| b["modelId"] == "gemini-2.5-pro"));
}

#[tokio::test]
async fn per_model_quota_429s_spare_the_other_models() {
    let mock = MockServer::start().await;
    let issued = onboarded(&mock);
    let (token, project) = (issued.access_token.as_str(), issued.account.org.as_str());
    let fault = Fault {
        kind: Some(FaultKind::Quota),
        model: Some("gemini-2.5-pro".into()),
        retry_after: Some(json!(9000)),
        ..Fault::default()
    };
    assert!(mock.accounts(IdP::Google).set_fault(&issued.account.email, Some(fault)));

    let (status, v) =
        status_json(v1internal(&mock, "generateContent", token, &envelope("gemini-2.5-pro", project, &json!({}))))
            .await;
    assert_eq!(status, 429);
    assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
    let info = detail(&v, "ErrorInfo");
    assert_eq!(info["reason"], "QUOTA_EXHAUSTED");
    assert_eq!(info["domain"], "cloudcode-pa.googleapis.com");
    assert_eq!(info["metadata"]["model"], "gemini-2.5-pro");
    assert!(detail(&v, "QuotaFailure")["violations"][0]["quotaId"].as_str().unwrap().contains("PerDay"));
    assert_eq!(detail(&v, "RetryInfo")["retryDelay"], "9000s");
    assert!(v["error"]["message"].as_str().unwrap().contains("2h30m0s"));

    let (status, _) =
        status_json(v1internal(&mock, "generateContent", token, &envelope("gemini-2.5-flash", project, &json!({}))))
            .await;
    assert_eq!(status, 200, "the fallback model still answers");

    let d = json!({"fault": {"kind": "rate_limit", "retry_after": 5}});
    let (status, v) =
        status_json(v1internal(&mock, "generateContent", token, &envelope("gemini-2.5-flash", project, &d))).await;
    assert_eq!(status, 429);
    assert_eq!(detail(&v, "ErrorInfo")["reason"], "RATE_LIMIT_EXCEEDED");
    assert!(detail(&v, "QuotaFailure")["violations"][0]["quotaId"].as_str().unwrap().contains("PerMinute"));
    assert_eq!(detail(&v, "RetryInfo")["retryDelay"], "5s");
}

#[tokio::test]
async fn expired_tokens_are_unauthenticated_and_streams_split_and_break() {
    let mock = MockServer::start().await;
    let issued = onboarded(&mock);
    let (token, project) = (issued.access_token.as_str(), issued.account.org.as_str());
    assert!(mock.accounts(IdP::Google).expire(token));
    let (status, v) =
        status_json(v1internal(&mock, "generateContent", token, &envelope("gemini-2.5-pro", project, &json!({}))))
            .await;
    assert_eq!((status, v["error"]["status"].as_str()), (401, Some("UNAUTHENTICATED")));
    assert_eq!(detail(&v, "ErrorInfo")["reason"], "ACCESS_TOKEN_EXPIRED");
    let (status, _) = status_json(v1internal(&mock, "loadCodeAssist", "", &json!({}))).await;
    assert_eq!(status, 401);

    let fresh = onboarded(&mock);
    let url = format!("{}/v1internal:streamGenerateContent?alt=sse", mock.url());
    let stream = |d: Value| {
        client().post(&url).bearer_auth(&fresh.access_token).json(&envelope("gemini-2.5-pro", &fresh.account.org, &d))
    };
    let frames =
        gemini_frames(&text_of(stream(json!({"reply": "abcdefghijkl", "fault": {"stream_error_after": 1}}))).await);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[1]["error"]["status"], "INTERNAL");

    let d = json!({"reply": "Привет, 世界 ✨", "usage": {"input": 1, "output": 1}});
    let plain = gemini_frames(&text_of(stream(d.clone())).await);
    let mut split = d.clone();
    split["chunk"] = json!(5);
    let pieces = gemini_frames(&split_text(stream(split).send().await.unwrap(), 5).await);
    let parts =
        |frames: &[Value]| -> Vec<Value> { frames.iter().map(|f| f["response"]["candidates"][0].clone()).collect() };
    assert_eq!(parts(&pieces), parts(&plain));
}
