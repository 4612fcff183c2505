//! Same-dialect requests reach the upstream byte-for-byte, except the targeted edits.

mod support;

use serde_json::Value;
use support::*;

#[tokio::test]
async fn unknown_openai_fields_reach_the_upstream_byte_identical() {
    let rig = start().await;
    let text = say(serde_json::json!({"reply": "ok"}));
    let sent = format!(
        r#"{{"model":"compat-gpt-4o","messages":[{{"role":"user","content":{}}}],"x_vendor_field":{{"nested":[1,2.50,"é",null]}},"logit_bias":{{"50256":-100}},   "seed" : 7}}"#,
        serde_json::to_string(&text).unwrap()
    );
    let r = rig
        .http
        .post(rig.url("/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .header("content-type", "application/json")
        .body(sent.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let upstream = rig.mock.requests().into_iter().rev().find(|r| r.path == "/v1/chat/completions").unwrap();
    let expected = sent.replace(r#""model":"compat-gpt-4o""#, r#""model":"gpt-4o""#);
    assert_eq!(std::str::from_utf8(&upstream.body).unwrap(), expected);
}

#[tokio::test]
async fn anthropic_passthrough_keeps_unknown_fields_and_forwards_beta() {
    let rig = start().await;
    let sent = r#"{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}],"container":{"id":"c1"},"service_tier":"auto"}"#;
    let r = rig
        .http
        .post(rig.url("/v1/messages"))
        .header("x-api-key", CLIENT_KEY)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "interleaved-thinking-2025-05-14")
        .header("content-type", "application/json")
        .body(sent)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let up = rig.mock.requests().into_iter().rev().find(|r| r.path == "/v1/messages").unwrap();
    assert_eq!(std::str::from_utf8(&up.body).unwrap(), sent);
    let header = |n: &str| up.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(header("anthropic-beta").as_deref(), Some("interleaved-thinking-2025-05-14"));
    assert_eq!(header("x-api-key").as_deref(), Some("sk-ant-test-1"));
    assert_eq!(header("anthropic-version").as_deref(), Some("2023-06-01"));
}

#[tokio::test]
async fn streaming_passthrough_adds_usage_upstream_and_hides_it_downstream() {
    let rig = start().await;
    let body = rig.chat(&chat_body("compat-gpt-4o", "hi", true)).await.text().await.unwrap();
    let up = rig.mock.requests().into_iter().rev().find(|r| r.path == "/v1/chat/completions").unwrap();
    let v: Value = serde_json::from_slice(&up.body).unwrap();
    assert_eq!(v["stream_options"]["include_usage"], true);
    assert!(!body.contains("\"choices\":[]"), "{body}");
    assert!(body.trim_end().ends_with("data: [DONE]"));
}
