//! The Anthropic dialect (the Claude OAuth side is in `claude_oauth.rs`).

use cliproxy_mock::MockServer;
use serde_json::{Value, json};

use crate::common::{
    anthropic, anthropic_body, anthropic_oauth, client, json_of, named_events, status_json, text_of, user,
};

#[tokio::test]
async fn stream_events_come_in_order_with_ping_and_cumulative_usage() {
    let mock = MockServer::start().await;
    let reply = "Bonjour 世界 👋 from the stream";
    let d = json!({"reply": reply, "usage": {"input": 25, "output": 42, "cached": 4}});
    let response = anthropic(&mock, "sk-ant-1", &anthropic_body(&d, true)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert!(response.headers().contains_key("request-id"));
    let events = named_events(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..3], ["message_start", "ping", "content_block_start"]);
    assert_eq!(names[names.len() - 3..], ["content_block_stop", "message_delta", "message_stop"]);
    assert!(names[3..names.len() - 3].iter().all(|n| *n == "content_block_delta"));
    let start = &events[0].1["message"];
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["model"], "claude-sonnet-4-5");
    assert_eq!(start["usage"]["input_tokens"], 25);
    assert_eq!(start["usage"]["output_tokens"], 1);
    assert_eq!(start["usage"]["cache_read_input_tokens"], 4);
    assert_eq!(events[2].1["content_block"], json!({"type": "text", "text": ""}));
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "content_block_delta")
        .map(|(_, e)| {
            assert_eq!(e["index"], 0);
            assert_eq!(e["delta"]["type"], "text_delta");
            e["delta"]["text"].as_str().unwrap()
        })
        .collect();
    assert_eq!(text, reply);
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["delta"]["stop_sequence"], Value::Null);
    assert_eq!(delta["usage"]["output_tokens"], 42);
}

#[tokio::test]
async fn thinking_comes_first_with_a_signature() {
    let mock = MockServer::start().await;
    let d = json!({"thinking": "Let me reason about it carefully.", "reply": "Done."});
    let text = text_of(anthropic(&mock, "sk-ant-1", &anthropic_body(&d, true))).await;
    let events = named_events(&text);
    assert_eq!(events[2].1["content_block"], json!({"type": "thinking", "thinking": ""}));
    let block0: Vec<&Value> = events
        .iter()
        .filter(|(n, e)| n == "content_block_delta" && e["index"] == 0)
        .map(|(_, e)| &e["delta"])
        .collect();
    let thinking: String = block0.iter().filter_map(|d| d["thinking"].as_str()).collect();
    assert_eq!(thinking, "Let me reason about it carefully.");
    let last = block0.last().unwrap();
    assert_eq!(last["type"], "signature_delta");
    assert!(!last["signature"].as_str().unwrap().is_empty());
    assert!(block0[..block0.len() - 1].iter().all(|d| d["type"] == "thinking_delta"));
    let text_start = events.iter().find(|(n, e)| n == "content_block_start" && e["index"] == 1).unwrap();
    assert_eq!(text_start.1["content_block"]["type"], "text");

    // A request with thinking enabled gets a thinking block even without scripted thinking;
    // without either there is none.
    let mut body = anthropic_body(&json!({"reply": "x"}), false);
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 1024});
    let v: Value = json_of(anthropic(&mock, "sk-ant-1", &body)).await;
    assert_eq!(v["content"][0]["type"], "thinking");
    assert!(v["content"][0]["signature"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(v["content"][1], json!({"type": "text", "text": "x"}));
    let v: Value = json_of(anthropic(&mock, "sk-ant-1", &anthropic_body(&json!({"reply": "x"}), false))).await;
    assert_eq!(v["content"], json!([{"type": "text", "text": "x"}]));
}

#[tokio::test]
async fn tool_use_input_json_deltas_reassemble_to_the_arguments() {
    let mock = MockServer::start().await;
    let args = json!({"city": "Zürich", "days": [1, 2], "detail": {"wind": true}});
    let d = json!({"reply": "Checking.", "tool_calls": [{"name": "get_weather", "arguments": args}]});
    let text = text_of(anthropic(&mock, "sk-ant-1", &anthropic_body(&d, true))).await;
    let events = named_events(&text);
    let start = events.iter().find(|(n, e)| n == "content_block_start" && e["index"] == 1).unwrap();
    assert_eq!(
        start.1["content_block"],
        json!({"type": "tool_use", "id": "toolu_0", "name": "get_weather", "input": {}})
    );
    let fragments: Vec<&str> = events
        .iter()
        .filter(|(n, e)| n == "content_block_delta" && e["index"] == 1)
        .map(|(_, e)| {
            assert_eq!(e["delta"]["type"], "input_json_delta");
            e["delta"]["partial_json"].as_str().unwrap()
        })
        .collect();
    assert!(fragments.len() > 2);
    assert_eq!(serde_json::from_str::<Value>(&fragments.concat()).unwrap(), args);
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");

    let v: Value = json_of(anthropic(&mock, "sk-ant-1", &anthropic_body(&d, false))).await;
    assert_eq!(v["type"], "message");
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["content"][1]["input"], args);
    for field in ["input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"] {
        assert!(v["usage"][field].is_u64(), "{field}");
    }
}

#[tokio::test]
async fn requests_without_version_max_tokens_or_a_good_key_are_rejected() {
    let mock = MockServer::start().await;
    let body = anthropic_body(&json!({}), false);
    let url = format!("{}/v1/messages", mock.anthropic_base());
    let check = |response: reqwest::Response, status: u16, kind: &'static str| async move {
        assert_eq!(response.status(), status);
        let header_id = response.headers()["request-id"].to_str().unwrap().to_owned();
        let v: Value = response.json().await.unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], kind);
        assert_eq!(v["request_id"], header_id.as_str());
        v["error"]["message"].as_str().unwrap().to_owned()
    };
    let no_version = client().post(&url).header("x-api-key", "sk-ant-1").json(&body).send().await.unwrap();
    let message = check(no_version, 400, "invalid_request_error").await;
    assert_eq!(message, "anthropic-version: header is required");

    let no_max = json!({"model": "claude-sonnet-4-5", "messages": [user(&json!({}))]});
    let response = anthropic(&mock, "sk-ant-1", &no_max).send().await.unwrap();
    let message = check(response, 400, "invalid_request_error").await;
    assert_eq!(message, "max_tokens: Field required");

    let response = anthropic(&mock, "sk-revoked-1", &body).send().await.unwrap();
    check(response, 401, "authentication_error").await;

    let bearer_without_beta = client()
        .post(&url)
        .bearer_auth("sk-ant-oat01-good")
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    check(bearer_without_beta, 401, "authentication_error").await;
}

#[tokio::test]
async fn oauth_tokens_work_expire_and_get_revoked() {
    let mock = MockServer::start().await;
    let body = anthropic_body(&json!({"reply": "ok"}), false);
    let response = anthropic_oauth(&mock, "sk-ant-oat01-fresh", &body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["anthropic-ratelimit-unified-status"], "allowed");
    assert_eq!(mock.hits("sk-ant-oat01-fresh"), 1);

    let (status, v) = status_json(anthropic_oauth(&mock, "sk-ant-oat01-expired-1", &body)).await;
    assert_eq!(status, 401);
    assert_eq!(v["error"]["type"], "authentication_error");
    assert_eq!(
        v["error"]["message"],
        "OAuth token has expired. Please obtain a new token or refresh your existing token."
    );
    assert!(v["request_id"].as_str().unwrap().starts_with("req_"));

    let (status, v) = status_json(anthropic_oauth(&mock, "sk-ant-oat01-revoked-1", &body)).await;
    assert_eq!(status, 401);
    assert_eq!(v["error"]["message"], "Invalid authentication credentials");
}

#[tokio::test]
async fn rate_limit_overload_and_billing_faults() {
    let mock = MockServer::start().await;
    let d = json!({"fault": {"kind": "rate_limit", "retry_after": 12}});
    let response = anthropic(&mock, "sk-ant-1", &anthropic_body(&d, true)).send().await.unwrap();
    assert_eq!(response.status(), 429);
    let h = response.headers();
    assert_eq!(h["retry-after"], "12");
    assert_eq!(h["anthropic-ratelimit-unified-status"], "rejected");
    assert_eq!(h["anthropic-ratelimit-unified-5h-status"], "rejected");
    let reset: u64 = h["anthropic-ratelimit-unified-5h-reset"].to_str().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!((now + 10..=now + 14).contains(&reset), "{reset} vs {now}");
    assert!(h["anthropic-ratelimit-requests-reset"].to_str().unwrap().ends_with('Z'));
    let v: Value = response.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");

    for (kind, expected, error) in [
        ("overloaded", 529, "overloaded_error"),
        ("quota", 400, "billing_error"),
        ("server_error", 500, "api_error"),
        ("invalid_key", 401, "authentication_error"),
    ] {
        let d = json!({"fault": {"kind": kind}});
        let (status, v) = status_json(anthropic(&mock, "sk-ant-1", &anthropic_body(&d, false))).await;
        assert_eq!(status, expected, "{kind}");
        assert_eq!(v["error"]["type"], error);
    }

    // A subscription hitting its weekly limit sees the 7-day window rejected.
    let d = json!({"fault": {"kind": "quota"}});
    let response = anthropic_oauth(&mock, "sk-ant-oat01-x", &anthropic_body(&d, false)).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["anthropic-ratelimit-unified-7d-status"], "rejected");
}

#[tokio::test]
async fn count_tokens_estimates_the_input() {
    let mock = MockServer::start().await;
    let body =
        json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "count me please, twice over"}]});
    let sent = serde_json::to_vec(&body).unwrap().len() as u64;
    let (status, v) = status_json(
        client()
            .post(format!("{}/v1/messages/count_tokens", mock.anthropic_base()))
            .header("x-api-key", "sk-ant-1")
            .header("anthropic-version", "2023-06-01")
            .json(&body),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v, json!({"input_tokens": sent / 4}));
}
