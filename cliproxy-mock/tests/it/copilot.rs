//! Copilot's Responses endpoint for the Responses-only (codex-class) models, behind the same token checks as
//! its chat endpoint.

use cliproxy_mock::{MockServer, directive};
use serde_json::{Value, json};

use crate::common::{client, named_events, split_text, status_json};

const GITHUB_TOKEN: &str = "gho_responses1";

/// A Copilot API token exchanged for a GitHub token.
async fn copilot_token(mock: &MockServer, github: &str) -> String {
    let v: Value = client()
        .get(format!("{}/copilot_internal/v2/token", mock.url()))
        .header("authorization", format!("token {github}"))
        .header("editor-version", "vscode/1.104.3")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["token"].as_str().unwrap().to_owned()
}

fn responses(mock: &MockServer, token: &str, body: &Value) -> reqwest::RequestBuilder {
    client()
        .post(format!("{}/copilot/responses", mock.url()))
        .bearer_auth(token)
        .header("editor-version", "vscode/1.104.3")
        .header("copilot-integration-id", "vscode-chat")
        .json(body)
}

fn body(d: &Value, stream: bool) -> Value {
    json!({"model": "gpt-5-codex", "stream": stream,
        "input": [{"role": "user", "content": [{"type": "input_text", "text": format!("Go. {}", directive(d))}]}]})
}

#[tokio::test]
async fn codex_models_answer_on_responses_streamed_or_whole() {
    let mock = MockServer::start().await;
    let token = copilot_token(&mock, GITHUB_TOKEN).await;
    let args = json!({"path": "src/main.rs"});
    let d = json!({"reply": "Reading it.", "tool_calls": [{"name": "read_file", "arguments": args}]});
    let response = responses(&mock, &token, &body(&d, true)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert!(response.headers().contains_key("x-quota-snapshot-premium_interactions"));
    let events = named_events(&response.text().await.unwrap());
    assert_eq!(events[0].0, "response.created");
    assert_eq!(events.last().unwrap().0, "response.completed");
    let text: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, e)| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Reading it.");
    let output = &events.last().unwrap().1["response"]["output"];
    assert_eq!(output[1]["type"], "function_call");
    assert_eq!(serde_json::from_str::<Value>(output[1]["arguments"].as_str().unwrap()).unwrap(), args);

    let (status, v) = status_json(responses(&mock, &token, &body(&json!({"reply": "whole"}), false))).await;
    assert_eq!(status, 200);
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["content"][0]["text"], "whole");
    assert_eq!(mock.hits(&format!("sk-copilot-{GITHUB_TOKEN}")), 2);

    // The chat endpoint sends the same model here.
    let chat = client()
        .post(format!("{}/copilot/chat/completions", mock.url()))
        .bearer_auth(&token)
        .header("editor-version", "vscode/1.104.3")
        .json(&json!({"model": "gpt-5-codex", "messages": [{"role": "user", "content": "hi"}]}));
    let (status, v) = status_json(chat).await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("unsupported_api_for_model")));
}

#[tokio::test]
async fn the_copilot_token_checks_apply() {
    let mock = MockServer::start().await;
    let token = copilot_token(&mock, GITHUB_TOKEN).await;
    let no_editor = client()
        .post(format!("{}/copilot/responses", mock.url()))
        .bearer_auth(&token)
        .json(&body(&json!({}), false))
        .send()
        .await
        .unwrap();
    assert_eq!(no_editor.status(), 400);
    assert_eq!(no_editor.text().await.unwrap(), "bad request: missing Editor-Version header for IDE auth");
    let forged = token.replace("exp=", "exp=9");
    let response = responses(&mock, &forged, &body(&json!({}), false)).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.text().await.unwrap(), "unauthorized: token invalid");

    // A `stale` GitHub token's Copilot token dies after a second.
    let stale = copilot_token(&mock, "gho_stale1").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let response = responses(&mock, &stale, &body(&json!({}), false)).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.text().await.unwrap(), "unauthorized: token expired");

    let mut unknown = body(&json!({}), false);
    unknown["model"] = json!("gpt-99");
    let (status, v) = status_json(responses(&mock, &token, &unknown)).await;
    assert_eq!((status, v["error"]["code"].as_str()), (400, Some("model_not_supported")));
}

#[tokio::test]
async fn faults_rate_limits_in_stream_failures_and_split_bodies() {
    let mock = MockServer::start().await;
    let token = copilot_token(&mock, GITHUB_TOKEN).await;
    let key = format!("sk-copilot-{GITHUB_TOKEN}");
    let mut d = json!({"per_key": {}});
    d["per_key"][&key] = json!({"kind": "rate_limit", "retry_after": 11});
    let response = responses(&mock, &token, &body(&d, true)).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "11");
    assert_eq!(response.headers()["x-ratelimit-exceeded"], "rate_limited");
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "rate_limited");

    // Chat and responses render faults alike, in Copilot's shape.
    let chat = |d: &Value| {
        client()
            .post(format!("{}/copilot/chat/completions", mock.url()))
            .bearer_auth(&token)
            .header("editor-version", "vscode/1.104.3")
            .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": directive(d)}]}))
    };
    let quota = json!({"fault": {"kind": "quota"}});
    for request in [chat(&quota), responses(&mock, &token, &body(&quota, false))] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 402);
        let snapshot = response.headers()["x-quota-snapshot-premium_interactions"].to_str().unwrap().to_owned();
        assert!(snapshot.contains("rem=0&"), "{snapshot}");
        assert!(!response.headers().contains_key("x-ratelimit-remaining-requests"));
        assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "quota_exceeded");
    }
    let response = chat(&json!({"fault": {"kind": "invalid_key"}})).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.text().await.unwrap(), "unauthorized: token expired");
    let global =
        json!({"fault": {"kind": "rate_limit", "headers": {"x-ratelimit-exceeded": "user_global_rate_limited:pro"}}});
    let response = chat(&global).send().await.unwrap();
    assert_eq!((response.status().as_u16(), response.headers()["retry-after"].to_str().unwrap()), (429, "30"));
    assert_eq!(response.headers()["x-ratelimit-exceeded"], "user_global_rate_limited:pro");

    let d = json!({"reply": "abcdefgh", "fault": {"stream_error_after": 3}});
    let events = named_events(&responses(&mock, &token, &body(&d, true)).send().await.unwrap().text().await.unwrap());
    assert_eq!(events.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().last(), Some(&"response.failed"));
    assert_eq!(events.len(), 4);

    let d = json!({"reply": "naïve café — ☕ ok", "chunk": 3});
    let response = responses(&mock, &token, &body(&d, false)).send().await.unwrap();
    let text = split_text(response, 3).await;
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["output"][0]["content"][0]["text"], "naïve café — ☕ ok");
}
