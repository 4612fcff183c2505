//! The OpenAI dialect.

use cliproxy_mock::MockServer;
use serde_json::{Value, json};

use crate::common::{client, data_frames, json_of, openai, openai_body, status_json, text_of};

#[tokio::test]
async fn stream_has_role_first_text_deltas_finish_and_done() {
    let mock = MockServer::start().await;
    let reply = "こんにちは 🎉 world, streaming!";
    let response = openai(&mock, "sk-1", &openai_body(&json!({"reply": reply}), true)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let frames = data_frames(&response.text().await.unwrap());
    assert_eq!(frames.last().unwrap(), "[DONE]");
    let chunks = &frames[..frames.len() - 1];
    assert_eq!(chunks[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
    for chunk in chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], chunks[0]["id"]);
        assert_eq!(chunk["created"], chunks[0]["created"]);
        assert_eq!(chunk["model"], "gpt-4o");
        assert_eq!(chunk["usage"], Value::Null);
    }
    let text: String = chunks[1..].iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, reply);
    assert!(chunks.len() > 4, "text comes in several deltas");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["delta"], json!({}));
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert!(chunks[..chunks.len() - 1].iter().all(|c| c["choices"][0]["finish_reason"].is_null()));
}

#[tokio::test]
async fn include_usage_adds_one_usage_chunk_before_done() {
    let mock = MockServer::start().await;
    let mut body = openai_body(&json!({"usage": {"input": 11, "output": 7, "cached": 5}}), true);
    body["stream_options"] = json!({"include_usage": true});
    let text = text_of(openai(&mock, "sk-1", &body)).await;
    let frames = data_frames(&text);
    let usage_chunk = &frames[frames.len() - 2];
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(
        usage_chunk["usage"],
        json!({"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
            "prompt_tokens_details": {"cached_tokens": 5}})
    );
    let with_usage = frames.iter().filter(|f| !f["usage"].is_null()).count();
    assert_eq!(with_usage, 1);

    body["stream_options"] = json!({"include_usage": false});
    let text = text_of(openai(&mock, "sk-1", &body)).await;
    let frames = data_frames(&text);
    assert!(frames.iter().all(|f| f["usage"].is_null()));
    assert!(frames.iter().all(|f| f == "[DONE]" || f["choices"] != json!([])));
}

#[tokio::test]
async fn tool_call_arguments_are_fragmented_with_id_and_name_first() {
    let mock = MockServer::start().await;
    let args0 = json!({"city": "Paris", "units": "celsius", "note": "naïve café ☕"});
    let args1 = json!({"q": [1, 2, 3]});
    let d = json!({"reply": "Checking.", "thinking": "Hmm.", "tool_calls": [
        {"name": "get_weather", "arguments": args0},
        {"name": "search", "arguments": args1}]});
    let text = text_of(openai(&mock, "sk-1", &openai_body(&d, true))).await;
    let frames = data_frames(&text);
    let deltas: Vec<&Value> = frames[..frames.len() - 1].iter().map(|f| &f["choices"][0]["delta"]).collect();
    let reasoning: String = deltas.iter().filter_map(|d| d["reasoning_content"].as_str()).collect();
    assert_eq!(reasoning, "Hmm.");
    let first_tool = deltas.iter().position(|d| d.get("tool_calls").is_some()).unwrap();
    let last_content = deltas.iter().rposition(|d| d["content"].as_str().is_some_and(|c| !c.is_empty())).unwrap();
    assert!(last_content < first_tool, "text comes before tool calls");
    for (index, (name, args)) in [("get_weather", &args0), ("search", &args1)].into_iter().enumerate() {
        let calls: Vec<&Value> =
            deltas.iter().filter_map(|d| d["tool_calls"].get(0)).filter(|c| c["index"] == index).collect();
        assert!(calls.len() > 2, "arguments come in several fragments");
        assert_eq!(calls[0]["id"], format!("call_{index}"));
        assert_eq!(calls[0]["type"], "function");
        assert_eq!(calls[0]["function"]["name"], name);
        for later in &calls[1..] {
            assert_eq!(later.as_object().unwrap().keys().collect::<Vec<_>>(), ["function", "index"]);
            assert!(later["function"].get("name").is_none());
        }
        let joined: String = calls.iter().map(|c| c["function"]["arguments"].as_str().unwrap()).collect();
        assert_eq!(serde_json::from_str::<Value>(&joined).unwrap(), *args);
    }
    let last = &frames[frames.len() - 2];
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn non_stream_completion_has_openai_shape() {
    let mock = MockServer::start().await;
    let d = json!({"reply": "Hi", "thinking": "Let me see", "finish": "max_tokens",
        "usage": {"cached": 3}});
    let body = openai_body(&d, false);
    let sent = serde_json::to_vec(&body).unwrap().len() as u64;
    let response = openai(&mock, "sk-1", &body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    for name in [
        "x-request-id",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
    ] {
        assert!(response.headers().contains_key(name), "{name}");
    }
    let v: Value = response.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["model"], "gpt-4o");
    let choice = &v["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "Hi");
    assert_eq!(choice["message"]["reasoning_content"], "Let me see");
    assert_eq!(choice["finish_reason"], "length");
    assert_eq!(choice["logprobs"], Value::Null);
    assert_eq!(
        v["usage"],
        json!({"prompt_tokens": sent / 4, "completion_tokens": 1,
            "total_tokens": sent / 4 + 1, "prompt_tokens_details": {"cached_tokens": 3}})
    );
}

#[tokio::test]
async fn non_stream_tool_calls_have_null_content() {
    let mock = MockServer::start().await;
    let d = json!({"tool_calls": [{"name": "f", "arguments": {"a": 1}, "id": "call_xyz"}]});
    let v: Value = json_of(openai(&mock, "sk-1", &openai_body(&d, false))).await;
    let message = &v["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null);
    assert_eq!(
        message["tool_calls"],
        json!([{"id": "call_xyz", "type": "function",
            "function": {"name": "f", "arguments": "{\"a\":1}"}}])
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn bad_keys_and_bad_requests_are_rejected() {
    let mock = MockServer::start().await;
    let body = openai_body(&json!({}), false);
    for key in ["sk-bad-1", "sk-Invalid", "nope"] {
        let response = openai(&mock, key, &body).send().await.unwrap();
        assert_eq!(response.status(), 401);
        let v: Value = response.json().await.unwrap();
        assert_eq!(v["error"]["code"], "invalid_api_key");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], Value::Null);
    }
    let url = format!("{}/chat/completions", mock.openai_base());
    let missing = client().post(&url).json(&body).send().await.unwrap();
    assert_eq!(missing.status(), 401);

    let not_json = client().post(&url).bearer_auth("sk-1").body("{nope").send().await.unwrap();
    assert_eq!(not_json.status(), 400);
    let no_messages = openai(&mock, "sk-1", &json!({"model": "gpt-4o"})).send().await.unwrap();
    assert_eq!(no_messages.status(), 400);
    let v: Value = no_messages.json().await.unwrap();
    assert_eq!(v["error"]["param"], "messages");
    let bad_directive = openai(&mock, "sk-1", &openai_body(&json!({"replay": "x"}), false)).send().await.unwrap();
    assert_eq!(bad_directive.status(), 400);
    assert!(bad_directive.text().await.unwrap().contains("replay"));
}

#[tokio::test]
async fn rate_limit_and_quota_faults() {
    let mock = MockServer::start().await;
    let d = json!({"fault": {"kind": "rate_limit", "retry_after": "20"}});
    let response = openai(&mock, "sk-1", &openai_body(&d, true)).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "20");
    assert_eq!(response.headers()["x-ratelimit-remaining-requests"], "0");
    assert_eq!(response.headers()["x-ratelimit-reset-requests"], "20s");
    let v: Value = response.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");

    let d = json!({"fault": {"kind": "quota"}});
    let (status, v) = status_json(openai(&mock, "sk-1", &openai_body(&d, false))).await;
    assert_eq!(status, 429);
    assert_eq!(v["error"]["code"], "insufficient_quota");
    assert_eq!(v["error"]["type"], "insufficient_quota");

    for (kind, expected) in [("invalid_key", 401), ("overloaded", 503), ("server_error", 500)] {
        let d = json!({"fault": {"kind": kind}});
        let (status, v) = status_json(openai(&mock, "sk-1", &openai_body(&d, false))).await;
        assert_eq!(status, expected, "{kind}");
        assert!(v["error"]["message"].is_string());
    }
}

#[tokio::test]
async fn models_are_listed_with_a_key() {
    let mock = MockServer::start().await;
    for path in ["/v1/models", "/models"] {
        let v: Value = json_of(client().get(format!("{}{path}", mock.url())).bearer_auth("sk-1")).await;
        assert_eq!(v["object"], "list");
        let ids: Vec<&str> = v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert!(ids.contains(&"gpt-4o") && ids.contains(&"gpt-4o-mini"));
        assert_eq!(v["data"][0]["object"], "model");
        assert_eq!(v["data"][0]["owned_by"], "system");
    }
    let anonymous = client().get(format!("{}/v1/models", mock.url())).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}
