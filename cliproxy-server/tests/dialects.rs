//! Both client dialects against both upstream kinds, streamed and not, through the real server.

mod support;

use serde_json::{Value, json};
use support::*;

const TEXT: &str = "héllo 世界 👋🏽 — ok";

/// (client model, upstream) pairs: the Claude key and the OpenAI-compatible entry.
const MODELS: [&str; 2] = ["claude-sonnet-4-5-20250929", "compat-gpt-4o"];

#[tokio::test]
async fn chat_clients_get_exact_text_from_both_upstreams() {
    let rig = start().await;
    for model in MODELS {
        let r = rig.chat(&chat_body(model, &say(json!({"reply": TEXT})), false)).await;
        assert_eq!(r.status(), 200, "{model}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["object"], "chat.completion");
        assert_eq!(v["choices"][0]["message"]["content"], TEXT, "{model}: {v}");
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    }
}

#[tokio::test]
async fn messages_clients_get_exact_text_from_both_upstreams() {
    let rig = start().await;
    for model in MODELS {
        let r = rig.messages(&messages_body(model, &say(json!({"reply": TEXT})), false)).await;
        assert_eq!(r.status(), 200, "{model}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["type"], "message");
        assert_eq!(v["content"][0]["text"], TEXT, "{model}: {v}");
        assert_eq!(v["stop_reason"], "end_turn");
        assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0);
    }
}

/// `chunk: 1` makes the mock write every byte of its body separately, so every split position — inside
/// multi-byte characters, between `\r`/`\n`, inside JSON — is exercised in one request.
#[tokio::test]
async fn streams_survive_a_split_at_every_byte() {
    let rig = start().await;
    for model in MODELS {
        let d = say(json!({"reply": TEXT, "chunk": 1}));
        let body = rig.chat(&chat_body(model, &d, true)).await.text().await.unwrap();
        assert_eq!(openai_stream_text(&body), TEXT, "chat via {model}: {body}");
        assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");

        let body = rig.messages(&messages_body(model, &d, true)).await.text().await.unwrap();
        assert_eq!(anthropic_stream_text(&body), TEXT, "messages via {model}: {body}");
        let names: Vec<_> = sse_events(&body).into_iter().filter_map(|(n, _)| n).filter(|n| n != "ping").collect();
        assert_eq!(names.first().map(String::as_str), Some("message_start"), "{names:?}");
        assert_eq!(names.last().map(String::as_str), Some("message_stop"), "{names:?}");
    }
}

#[tokio::test]
async fn single_splits_inside_characters() {
    let rig = start().await;
    // Offsets around the multi-byte characters of the first text delta in the upstream body.
    for split in [1usize, 40, 97, 98, 99, 100, 101, 150, 151, 152, 153, 200] {
        let d = say(json!({"reply": TEXT, "split": [split]}));
        let body = rig.chat(&chat_body("compat-gpt-4o", &d, true)).await.text().await.unwrap();
        assert_eq!(openai_stream_text(&body), TEXT, "split at {split}");
        let body = rig.chat(&chat_body("claude-sonnet-4-5", &d, true)).await.text().await.unwrap();
        assert_eq!(openai_stream_text(&body), TEXT, "split at {split}");
    }
}

#[tokio::test]
async fn tool_calls_arrive_whole_in_both_dialects() {
    let rig = start().await;
    let args = json!({"city": "Zürich 東京", "days": 3});
    let d = say(json!({"tool_calls": [{"name": "get_weather", "arguments": args}]}));
    for model in MODELS {
        // OpenAI client, JSON.
        let mut b = chat_body(model, &d, false);
        b["tools"] = weather_tool_chat();
        let v: Value = rig.chat(&b).await.json().await.unwrap();
        let call = &v["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather", "{model}: {v}");
        let parsed: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(parsed, args);
        assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");

        // OpenAI client, stream: concatenated argument fragments parse to the same object.
        b["stream"] = true.into();
        let body = rig.chat(&b).await.text().await.unwrap();
        let mut name = String::new();
        let mut joined = String::new();
        for (_, data) in sse_events(&body) {
            let Ok(v) = serde_json::from_str::<Value>(&data) else { continue };
            for tc in v["choices"][0]["delta"]["tool_calls"].as_array().cloned().unwrap_or_default() {
                name += tc["function"]["name"].as_str().unwrap_or("");
                joined += tc["function"]["arguments"].as_str().unwrap_or("");
            }
        }
        assert_eq!(name, "get_weather", "{model}: {body}");
        assert_eq!(serde_json::from_str::<Value>(&joined).unwrap(), args, "{model}: {joined}");

        // Anthropic client, JSON and stream.
        let mut b = messages_body(model, &d, false);
        b["tools"] = weather_tool_anthropic();
        let v: Value = rig.messages(&b).await.json().await.unwrap();
        let block = v["content"].as_array().unwrap().iter().find(|c| c["type"] == "tool_use").cloned().unwrap();
        assert_eq!(block["input"], args, "{model}: {v}");
        assert_eq!(v["stop_reason"], "tool_use");
        b["stream"] = true.into();
        let body = rig.messages(&b).await.text().await.unwrap();
        let partial: String = sse_events(&body)
            .into_iter()
            .filter_map(|(_, d)| serde_json::from_str::<Value>(&d).ok())
            .filter(|v| v["delta"]["type"] == "input_json_delta")
            .map(|v| v["delta"]["partial_json"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(serde_json::from_str::<Value>(&partial).unwrap(), args, "{model}: {body}");
    }
}

#[tokio::test]
async fn usage_chunk_only_when_asked() {
    let rig = start().await;
    for model in MODELS {
        let body = rig.chat(&chat_body(model, "hi", true)).await.text().await.unwrap();
        let usage_chunks = sse_events(&body)
            .into_iter()
            .filter_map(|(_, d)| serde_json::from_str::<Value>(&d).ok())
            .filter(|v| v["choices"].as_array().is_some_and(|c| c.is_empty()))
            .count();
        assert_eq!(usage_chunks, 0, "{model}: {body}");

        let mut b = chat_body(model, "hi", true);
        b["stream_options"] = json!({"include_usage": true});
        let body = rig.chat(&b).await.text().await.unwrap();
        let usage: Vec<Value> = sse_events(&body)
            .into_iter()
            .filter_map(|(_, d)| serde_json::from_str::<Value>(&d).ok())
            .filter(|v| v["usage"].is_object())
            .collect();
        assert_eq!(usage.len(), 1, "{model}: {body}");
        assert!(usage[0]["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    }
}

#[tokio::test]
async fn thinking_maps_to_reasoning_and_back() {
    let rig = start().await;
    let d = say(json!({"reply": "answer", "thinking": "let me think"}));
    let mut b = chat_body("claude-sonnet-4-5", &d, false);
    b["reasoning_effort"] = "high".into();
    let v: Value = rig.chat(&b).await.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["reasoning_content"], "let me think", "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "answer");
    // The Claude upstream saw a thinking budget for the effort.
    let req = rig.mock.requests().into_iter().rev().find(|r| r.path == "/v1/messages").unwrap();
    let up: Value = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(up["thinking"]["type"], "enabled", "{up}");
    assert!(up["thinking"]["budget_tokens"].as_u64().unwrap() >= 1024);
}
