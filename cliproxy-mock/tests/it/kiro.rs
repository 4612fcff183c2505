//! The Kiro mock as a Kiro client sees it: SSO-OIDC, the social refresh, `generateAssistantResponse` on both
//! hosts with CRC-checked event-stream frames, the rejections Kiro makes, and usage limits.

use cliproxy_core::stream::eventstream::{EventStreamDecoder, Frame};
use cliproxy_mock::{MockServer, directive};
use serde_json::{Value, json};

use crate::common::client;

async fn post(mock: &MockServer, path: &str, body: &Value) -> (u16, Value) {
    let r = client().post(format!("{}{path}", mock.url())).json(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn body(content: &str, model: &str) -> Value {
    json!({"conversationState": {"chatTriggerType": "MANUAL", "conversationId": "c1",
        "currentMessage": {"userInputMessage": {"content": content, "modelId": model, "origin": "AI_EDITOR"}}}})
}

async fn generate(mock: &MockServer, host: &str, token: &str, body: &Value) -> reqwest::Response {
    let mut r = client()
        .post(format!("{}/kiro/{host}/us-east-1/generateAssistantResponse", mock.url()))
        .bearer_auth(token)
        .json(body);
    if host == "cw" {
        r = r.header("x-amz-target", "AmazonCodeWhispererStreamingService.GenerateAssistantResponse");
    }
    r.send().await.unwrap()
}

fn frames(bytes: &[u8]) -> Vec<Frame> {
    let mut d = EventStreamDecoder::new();
    let mut out = Vec::new();
    d.push(bytes, &mut out).expect("valid frames with correct CRCs");
    d.finish().expect("no trailing partial frame");
    out
}

fn payload(f: &Frame) -> Value {
    serde_json::from_slice(&f.payload).unwrap()
}

#[tokio::test]
async fn device_login_pends_then_issues_tokens_and_refresh_rejects_dead_grants() {
    let mock = MockServer::start().await;
    let (s, reg) = post(
        &mock,
        "/kiro/oidc/us-east-1/client/register",
        &json!({"clientName": "Kiro IDE", "clientType": "public", "scopes": ["codewhisperer:completions"]}),
    )
    .await;
    assert_eq!(s, 200);
    let (id, secret) = (reg["clientId"].as_str().unwrap(), reg["clientSecret"].as_str().unwrap());
    let (s, dev) = post(
        &mock,
        "/kiro/oidc/us-east-1/device_authorization",
        &json!({"clientId": id, "clientSecret": secret, "startUrl": "https://view.awsapps.com/start"}),
    )
    .await;
    assert_eq!(s, 200);
    assert!(dev["userCode"].is_string() && dev["verificationUriComplete"].is_string() && dev["interval"].is_u64());
    let poll = json!({"clientId": id, "clientSecret": secret, "deviceCode": dev["deviceCode"],
        "grantType": "urn:ietf:params:oauth:grant-type:device_code"});
    for _ in 0..cliproxy_mock::kiro::PENDING_POLLS {
        let (s, v) = post(&mock, "/kiro/oidc/us-east-1/token", &poll).await;
        assert_eq!((s, v["error"].as_str()), (400, Some("authorization_pending")));
    }
    let (s, tok) = post(&mock, "/kiro/oidc/us-east-1/token", &poll).await;
    assert_eq!(s, 200);
    assert!(tok["accessToken"].as_str().unwrap().starts_with("aoa"));
    assert_eq!(tok["expiresIn"], 3600);
    let refresh =
        |rt: &str| json!({"clientId": id, "clientSecret": secret, "refreshToken": rt, "grantType": "refresh_token"});
    let (s, v) = post(&mock, "/kiro/oidc/us-east-1/token", &refresh(tok["refreshToken"].as_str().unwrap())).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post(&mock, "/kiro/oidc/us-east-1/token", &refresh("aor-invalid")).await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")));
    let wrong = json!({"clientId": id, "clientSecret": "nope", "refreshToken": "aor-x", "grantType": "refresh_token"});
    assert_eq!(post(&mock, "/kiro/oidc/us-east-1/token", &wrong).await.1["error"], "invalid_client");
    let (s, v) = post(&mock, "/kiro/auth/us-east-1/refreshToken", &json!({"refreshToken": "aorAAAAAG-ok"})).await;
    assert_eq!(s, 200);
    assert!(v["profileArn"].as_str().unwrap().starts_with("arn:aws:codewhisperer:"));
    assert_eq!(post(&mock, "/kiro/auth/us-east-1/refreshToken", &json!({"refreshToken": "aor-invalid"})).await.0, 400);
}

#[tokio::test]
async fn answers_are_crc_valid_event_streams_with_fragmented_tool_input() {
    let mock = MockServer::start().await;
    let d = directive(
        &json!({"reply": "Hello there", "tool_calls": [{"name": "f", "arguments": {"path": "a.txt", "n": 12345}}], "chunk": 3}),
    );
    for host in ["q", "cw"] {
        let r = generate(&mock, host, "aoaTEST-1", &body(&d, "claude-sonnet-4.5")).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/vnd.amazon.eventstream");
        let fs = frames(&r.bytes().await.unwrap());
        let kinds: Vec<&str> = fs.iter().map(|f| f.event_type().unwrap()).collect();
        assert!(kinds.iter().filter(|k| **k == "assistantResponseEvent").count() >= 2, "{kinds:?}");
        assert_eq!(&kinds[kinds.len() - 2..], ["meteringEvent", "contextUsageEvent"]);
        let text: String = fs
            .iter()
            .filter(|f| f.event_type() == Some("assistantResponseEvent"))
            .map(|f| payload(f)["content"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(text, "Hello there");
        let tools: Vec<Value> = fs.iter().filter(|f| f.event_type() == Some("toolUseEvent")).map(payload).collect();
        assert!(tools.len() > 2);
        assert_eq!(tools.last().unwrap()["stop"], true);
        let input: String = tools.iter().filter_map(|t| t["input"].as_str()).collect();
        assert_eq!(serde_json::from_str::<Value>(&input).unwrap(), json!({"path": "a.txt", "n": 12345}));
        assert!(fs.iter().all(|f| f.message_type() == Some("event")));
    }
    // Usage given in the directive comes back as a metadata event.
    let d = directive(&json!({"reply": "x", "usage": {"input": 7, "output": 2}}));
    let fs = frames(&generate(&mock, "q", "aoaTEST-1", &body(&d, "auto")).await.bytes().await.unwrap());
    let meta = fs.iter().find(|f| f.event_type() == Some("metadataEvent")).unwrap();
    assert_eq!(payload(meta)["tokenUsage"]["uncachedInputTokens"], 7);
    // A mid-stream exception frame.
    let d = directive(&json!({"reply": "abcdefgh", "fault": {"stream_error_after": 1, "body": "ThrottlingException"}}));
    let fs = frames(&generate(&mock, "q", "aoaTEST-1", &body(&d, "auto")).await.bytes().await.unwrap());
    assert_eq!(fs.len(), 2);
    assert_eq!(fs[1].message_type(), Some("exception"));
    assert_eq!(fs[1].header_str(":exception-type"), Some("ThrottlingException"));
}

#[tokio::test]
async fn rejects_what_kiro_rejects() {
    let mock = MockServer::start().await;
    let ok = body("hi", "claude-sonnet-4.5");
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(generate(&mock, "q", "aoaTEST-1", &body(" ", "claude-sonnet-4.5")).await), 400);
    assert_eq!(status(generate(&mock, "q", "aoaTEST-1", &body("hi", "gpt-4o")).await), 400);
    assert_eq!(status(generate(&mock, "q", "aoaSOCIAL-1", &ok).await), 400, "social tokens need profileArn");
    let mut with_arn = ok.clone();
    with_arn["profileArn"] = "arn:aws:codewhisperer:us-east-1:1:profile/P".into();
    assert_eq!(status(generate(&mock, "q", "aoaSOCIAL-1", &with_arn).await), 200);
    let r = generate(&mock, "q", "aoaTEST-expired", &ok).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("bearer token included in the request is invalid"));
    let r = generate(&mock, "q", "aoaTEST-suspended", &ok).await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("SUSPENDED"));
    let r = generate(&mock, "q", "aoaTEST-exhausted", &ok).await;
    assert_eq!(r.status(), 402);
    assert!(r.text().await.unwrap().contains("MONTHLY_REQUEST_COUNT"));
    let d = directive(&json!({"fault": {"kind": "rate_limit", "host": "q"}}));
    assert_eq!(status(generate(&mock, "q", "aoaTEST-1", &body(&d, "auto")).await), 429);
    assert_eq!(status(generate(&mock, "cw", "aoaTEST-1", &body(&d, "auto")).await), 200, "the fault names only q");
    let r = client()
        .post(format!("{}/kiro/cw/us-east-1/generateAssistantResponse", mock.url()))
        .bearer_auth("aoaTEST-1")
        .json(&ok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "codewhisperer wants X-Amz-Target");
    let mut bad_history = ok.clone();
    bad_history["conversationState"]["history"] = json!([{"assistantResponseMessage": {"content": "x"}}]);
    assert_eq!(status(generate(&mock, "q", "aoaTEST-1", &bad_history).await), 400, "history starts with a user turn");
}

#[tokio::test]
async fn usage_limits_follow_the_token() {
    let mock = MockServer::start().await;
    let get = |token: &'static str| {
        client()
            .get(format!(
                "{}/kiro/q/us-east-1/getUsageLimits?origin=AI_EDITOR&resourceType=AGENTIC_REQUEST",
                mock.url()
            ))
            .bearer_auth(token)
            .send()
    };
    let v: Value = get("aoaTEST-1").await.unwrap().json().await.unwrap();
    assert_eq!(v["usageBreakdownList"][0]["currentUsageWithPrecision"], 3.0);
    assert!(v["nextDateReset"].as_u64().unwrap() > 1_700_000_000);
    let v: Value = get("aoaTEST-exhausted").await.unwrap().json().await.unwrap();
    assert_eq!(
        v["usageBreakdownList"][0]["currentUsageWithPrecision"],
        v["usageBreakdownList"][0]["usageLimitWithPrecision"]
    );
    assert_eq!(get("aoaSOCIAL-1").await.unwrap().status(), 400, "social accounts must name their profile");
}
