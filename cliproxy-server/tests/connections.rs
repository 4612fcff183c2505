//! Connection liveness: a client that goes away cancels its upstream request; silences get keepalives.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_stream() {
    let rig = start().await;
    for (i, model) in ["compat-gpt-4o", "claude-sonnet-4-5"].into_iter().enumerate() {
        let d = say(json!({"reply": "a b c d e f g h i j k l m n o p q r s t u v w x y z", "delay_ms": 200}));
        let mut r = rig.chat(&chat_body(model, &d, true)).await;
        assert_eq!(r.status(), 200);
        let first = r.chunk().await.unwrap();
        assert!(first.is_some());
        drop(r);
        let want = i as u64 + 1;
        let mut seen = 0;
        for _ in 0..100 {
            seen = rig.mock.cancelled();
            if seen >= want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(seen, want, "{model}: the mock did not see the upstream connection close");
    }
}

#[tokio::test]
async fn sse_keepalive_comments_fill_silences() {
    let yaml = default_config().replace("api-keys:", "streaming: { keepalive-seconds: 1 }\napi-keys:");
    let rig = start_with(&yaml).await;
    let d = say(json!({"reply": "a b", "delay_ms": 1600}));
    let body = rig.chat(&chat_body("compat-gpt-4o", &d, true)).await.text().await.unwrap();
    assert!(body.contains(": keepalive"), "{body}");
    assert_eq!(openai_stream_text(&body), "a b");
}

#[tokio::test]
async fn non_streaming_answers_keep_the_connection_alive_with_whitespace() {
    let yaml = default_config().replace("api-keys:", "nonstream-keepalive-interval: 1\napi-keys:");
    let rig = start_with(&yaml).await;
    let d = say(json!({"reply": "late answer", "fault": {"hang_ms": 2300}}));
    let r = rig.chat(&chat_body("compat-gpt-4o", &d, false)).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.starts_with('\n'), "keepalive whitespace precedes the JSON: {text:?}");
    let v: serde_json::Value = serde_json::from_str(text.trim_start()).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "late answer");
}
