//! Responses clients (`POST /v1/responses`) against both upstream kinds, streamed and not, through the real
//! server: text, a function call round trip, and failures after the stream started.

mod support;

use serde_json::{Value, json};
use support::*;

const TEXT: &str = "héllo 世界 👋🏽 — ok";

/// (client model, upstream) pairs: the Claude key and the OpenAI-compatible entry.
const MODELS: [&str; 2] = ["claude-sonnet-4-5-20250929", "compat-gpt-4o"];

async fn responses(rig: &Rig, body: &Value) -> reqwest::Response {
    rig.http.post(rig.url("/v1/responses")).bearer_auth(CLIENT_KEY).json(body).send().await.unwrap()
}

/// The events of a Responses stream as JSON, checking each names itself in `event:` and `type` and that
/// they are numbered 0, 1, 2, ….
fn stream_events(body: &str) -> Vec<Value> {
    sse_events(body)
        .into_iter()
        .enumerate()
        .map(|(n, (name, data))| {
            let v: Value = serde_json::from_str(&data).unwrap_or_else(|_| panic!("not JSON: {data}"));
            assert_eq!(name.as_deref(), v["type"].as_str(), "{v}");
            if v["type"] != "response.failed" {
                assert_eq!(v["sequence_number"], n, "{v}");
            }
            v
        })
        .collect()
}

fn deltas(events: &[Value], kind: &str) -> String {
    events.iter().filter(|v| v["type"] == kind).map(|v| v["delta"].as_str().unwrap()).collect()
}

fn weather_tool() -> Value {
    json!([{"type": "function", "name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
           {"type": "web_search_preview"}, {"type": "local_shell"}])
}

#[tokio::test]
async fn text_from_both_upstreams() {
    let rig = start().await;
    for model in MODELS {
        let body = json!({"model": model, "instructions": "Be brief.", "input": say(json!({"reply": TEXT}))});
        let r = responses(&rig, &body).await;
        assert_eq!(r.status(), 200, "{model}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["object"], "response");
        assert!(v["id"].as_str().unwrap().starts_with("resp_"), "{v}");
        assert_eq!(v["status"], "completed");
        assert_eq!(v["model"], model);
        assert_eq!(v["output"][0]["type"], "message");
        assert_eq!(v["output"][0]["content"][0]["text"], TEXT, "{model}: {v}");
        let usage = &v["usage"];
        assert!(usage["input_tokens"].as_u64().unwrap() > 0);
        assert_eq!(
            usage["total_tokens"].as_u64(),
            Some(usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap())
        );
    }
}

/// `chunk: 1` makes the mock write every byte of its body separately.
#[tokio::test]
async fn streams_survive_a_split_at_every_byte() {
    let rig = start().await;
    for model in MODELS {
        let d = say(json!({"reply": TEXT, "thinking": "Hmm, 世界.", "chunk": 1}));
        let body = json!({"model": model, "input": d, "stream": true, "reasoning": {"effort": "low"}});
        let r = responses(&rig, &body).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "text/event-stream");
        let text = r.text().await.unwrap();
        let events = stream_events(&text);
        assert_eq!(events.first().unwrap()["type"], "response.created", "{model}: {text}");
        let last = events.last().unwrap();
        assert_eq!(last["type"], "response.completed", "{model}: {text}");
        assert!(!text.contains("[DONE]"));
        assert_eq!(deltas(&events, "response.output_text.delta"), TEXT, "{model}");
        assert_eq!(deltas(&events, "response.reasoning_summary_text.delta"), "Hmm, 世界.", "{model}");
        let output = last["response"]["output"].as_array().unwrap();
        assert_eq!(output.iter().map(|i| i["type"].as_str().unwrap()).collect::<Vec<_>>(), ["reasoning", "message"]);
        assert!(last["response"]["usage"]["output_tokens"].as_u64().unwrap() > 0);
    }
}

/// The client's own loop: the model calls a tool, the client sends the whole conversation back with the
/// call's output (the proxy keeps no state), and the model answers with the result.
#[tokio::test]
async fn function_call_round_trip() {
    let rig = start().await;
    let args = json!({"city": "Zürich 東京"});
    let first = say(json!({"reply": "Checking.", "tool_calls": [{"name": "get_weather", "arguments": args}]}));
    for model in MODELS {
        for stream in [false, true] {
            let body = json!({"model": model, "input": [{"role": "user", "content": first}], "tools": weather_tool(),
                              "tool_choice": "auto", "stream": stream});
            let r = responses(&rig, &body).await;
            assert_eq!(r.status(), 200, "{model}");
            let output = if stream {
                let text = r.text().await.unwrap();
                let events = stream_events(&text);
                let call_args = deltas(&events, "response.function_call_arguments.delta");
                assert_eq!(serde_json::from_str::<Value>(&call_args).unwrap(), args, "{model}: {text}");
                events.last().unwrap()["response"]["output"].clone()
            } else {
                r.json::<Value>().await.unwrap()["output"].clone()
            };
            let items = output.as_array().unwrap();
            let call = items.iter().find(|i| i["type"] == "function_call").unwrap_or_else(|| panic!("{output}"));
            assert_eq!(call["name"], "get_weather");
            assert_eq!(serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()).unwrap(), args);

            let mut input = vec![json!({"role": "user", "content": first})];
            input.extend(items.iter().cloned());
            input.push(json!({"type": "function_call_output", "call_id": call["call_id"],
                              "output": say(json!({"reply": "It is 21°C."}))}));
            let body = json!({"model": model, "input": input, "tools": weather_tool()});
            let v: Value = responses(&rig, &body).await.json().await.unwrap();
            assert_eq!(v["output"][0]["content"][0]["text"], "It is 21°C.", "{model}: {v}");
        }
    }
}

#[tokio::test]
async fn length_is_incomplete() {
    let rig = start().await;
    for model in MODELS {
        let d = say(json!({"reply": TEXT, "finish": "length"}));
        let v: Value =
            responses(&rig, &json!({"model": model, "input": d, "max_output_tokens": 5})).await.json().await.unwrap();
        assert_eq!(v["status"], "incomplete", "{model}: {v}");
        assert_eq!(v["incomplete_details"]["reason"], "max_output_tokens");
    }
}

#[tokio::test]
async fn error_after_first_byte_is_a_failed_response() {
    let rig = start().await;
    let d = say(json!({"reply": "some longer reply text here", "delay_ms": 30, "fault": {"stream_error_after": 3}}));
    for model in MODELS {
        let r = responses(&rig, &json!({"model": model, "input": d, "stream": true})).await;
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        let events = stream_events(&text);
        assert_eq!(events[0]["type"], "response.created");
        let last = events.last().unwrap();
        assert_eq!(last["type"], "response.failed", "{model}: {text}");
        assert_eq!(last["response"]["status"], "failed");
        assert!(last["response"]["error"]["message"].is_string(), "{last}");
    }
}
