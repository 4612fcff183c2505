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

/// What a same-dialect request gets when the upstream answers 200 with something that is not JSON.
async fn status_for_answer_body(path: &str, model: &str, fault_body: Value) -> (u16, Value) {
    let rig = start().await;
    let text = say(serde_json::json!({"fault": {"status": 200, "body": fault_body}}));
    let body = serde_json::json!({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": text}]});
    let r = rig.post(path, &body).await;
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_non_json_answer_on_passthrough_is_a_502_in_the_dialect() {
    for (path, model) in [("/v1/chat/completions", "compat-gpt-4o"), ("/v1/messages", "claude-sonnet-4-5")] {
        for body in [Value::from("<html><body>Bad gateway</body></html>"), Value::from("")] {
            let (status, v) = status_for_answer_body(path, model, body.clone()).await;
            assert_eq!(status, 502, "{path} {body}: {v}");
            let message = v.pointer("/error/message").and_then(Value::as_str).unwrap_or_default();
            assert!(message.contains("not JSON"), "{path}: {v}");
        }
    }
}

/// The raw SSE a streamed same-dialect request gets when the upstream ends cleanly after `n` events.
async fn stream_cut_short(path: &str, model: &str, n: usize) -> String {
    let rig = start().await;
    let text = say(serde_json::json!({"reply": "a longer answer in several pieces", "fault": {"end_after": n}}));
    let body = serde_json::json!({"model": model, "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": text}]});
    let r = rig.post(path, &body).await;
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

#[tokio::test]
async fn a_stream_that_ends_before_its_terminal_event_gets_an_error_event() {
    let sse = stream_cut_short("/v1/chat/completions", "compat-gpt-4o", 2).await;
    let last = sse.lines().rfind(|l| l.starts_with("data:")).unwrap_or_default();
    assert!(last.contains("\"error\"") && last.contains("before it finished"), "{sse}");
    assert!(!sse.contains("[DONE]"), "a cut answer is not reported as complete: {sse}");

    let sse = stream_cut_short("/v1/messages", "claude-sonnet-4-5", 3).await;
    assert!(sse.contains("event: error"), "{sse}");
    assert!(!sse.contains("message_stop"), "{sse}");
}
