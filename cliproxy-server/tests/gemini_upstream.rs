//! `gemini-api-key` upstreams through the real server against the mock Gemini API: OpenAI and Anthropic clients
//! with tools (answers, streams and the tool result going back), Gemini clients passed through, countTokens,
//! the keys' model lists, and a `PerDay` quota that moves traffic to the next key and keeps the first one cooling
//! until Google's next day.

mod support;

use std::time::{Duration, Instant, SystemTime};

use cliproxy_core::timefmt::start_of_next_pacific_day;
use cliproxy_mock::RecordedRequest;
use serde_json::{Value, json};
use support::*;

const KEY_A: &str = "AIzaSyMock-gemini-a";
const KEY_B: &str = "AIzaSyMock-gemini-b";

/// Two Gemini keys on the mock (no `models` list: the keys learn theirs), and a Claude key to show routing
/// by model name.
fn gemini_yaml() -> String {
    format!(
        r#"
api-keys: ["{CLIENT_KEY}"]
remote-management: {{ secret-key: "{MGMT}" }}
max-retry-interval: 0
timeouts: {{ first-byte-seconds: 5, idle-seconds: 5 }}
routing: {{ strategy: fill-first }}
gemini-endpoints: {{ api-base-url: "{{MOCK}}" }}
gemini-api-key:
  - api-key: {KEY_A}
  - api-key: {KEY_B}
claude-api-key:
  - api-key: sk-ant-test-1
    base-url: "{{MOCK}}"
"#
    )
}

/// The Gemini `generateContent` calls the mock received.
fn gemini_calls(rig: &Rig) -> Vec<RecordedRequest> {
    rig.mock.requests().into_iter().filter(|r| r.path.starts_with("/v1beta/models/") && r.method == "POST").collect()
}

fn body_of(r: &RecordedRequest) -> Value {
    serde_json::from_slice(&r.body).unwrap()
}

/// The function declarations a translated request carried upstream.
fn declared(r: &RecordedRequest) -> Value {
    body_of(r)["tools"][0]["functionDeclarations"][0]["name"].clone()
}

#[tokio::test]
async fn openai_clients_reach_gemini_with_tools() {
    let rig = start_with(&gemini_yaml()).await;
    let d = say(json!({"tool_calls": [{"name": "get_weather", "arguments": {"city": "Zürich"}}]}));
    let mut b = chat_body("gemini-2.5-flash", &format!("Weather? {d}"), false);
    b["tools"] = weather_tool_chat();
    let r = rig.chat(&b).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap()["city"],
        "Zürich"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");

    let sent = gemini_calls(&rig);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(sent[0].header("x-goog-api-key"), Some(KEY_A));
    assert_eq!(declared(&sent[0]), "get_weather");

    // The tool's result goes back as a functionResponse, and the stream carries the answer.
    let id = call["id"].as_str().unwrap().to_owned();
    let b = json!({"model": "gemini-2.5-flash", "stream": true, "tools": weather_tool_chat(), "messages": [
        {"role": "user", "content": "Weather in Zürich?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Zürich\"}"}}]},
        {"role": "tool", "tool_call_id": id, "content": format!("sunny {}", say(json!({"reply": "It is sunny."})))},
    ]});
    let r = rig.chat(&b).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert_eq!(openai_stream_text(&text), "It is sunny.");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    let sent = gemini_calls(&rig);
    assert_eq!(sent[1].path, "/v1beta/models/gemini-2.5-flash:streamGenerateContent");
    assert_eq!(sent[1].query, "alt=sse");
    let contents = body_of(&sent[1])["contents"].clone();
    assert_eq!(contents[1]["parts"][0]["functionCall"]["name"], "get_weather", "{contents}");
    assert_eq!(contents[2]["parts"][0]["functionResponse"]["name"], "get_weather", "{contents}");
}

#[tokio::test]
async fn anthropic_clients_reach_gemini_with_tools() {
    let rig = start_with(&gemini_yaml()).await;
    let d =
        say(json!({"thinking": "Look it up.", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Rome"}}]}));
    for stream in [false, true] {
        let mut b = messages_body("gemini-2.5-pro", &format!("Weather? {d}"), stream);
        b["tools"] = weather_tool_anthropic();
        let r = rig.messages(&b).await;
        assert_eq!(r.status(), 200);
        let (name, input, stop) = if stream {
            let events = sse_events(&r.text().await.unwrap());
            let datas: Vec<Value> = events.iter().filter_map(|(_, d)| serde_json::from_str(d).ok()).collect();
            let start = datas.iter().find(|v| v["content_block"]["type"] == "tool_use").unwrap();
            let args: String = datas
                .iter()
                .filter(|v| v["delta"]["type"] == "input_json_delta")
                .filter_map(|v| v["delta"]["partial_json"].as_str())
                .collect();
            let stop = datas.iter().find_map(|v| v["delta"]["stop_reason"].as_str().map(str::to_owned)).unwrap();
            (start["content_block"]["name"].clone(), serde_json::from_str::<Value>(&args).unwrap(), stop)
        } else {
            let v: Value = r.json().await.unwrap();
            let block = v["content"].as_array().unwrap().iter().find(|c| c["type"] == "tool_use").unwrap().clone();
            (block["name"].clone(), block["input"].clone(), v["stop_reason"].as_str().unwrap().to_owned())
        };
        assert_eq!((name, input["city"].clone(), stop.as_str()), (json!("get_weather"), json!("Rome"), "tool_use"));
    }
    let sent = gemini_calls(&rig);
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|r| declared(r) == "get_weather" && r.header("x-goog-api-key") == Some(KEY_A)));
}

#[tokio::test]
async fn gemini_clients_pass_through_unchanged() {
    let rig = start_with(&gemini_yaml()).await;
    let body = json!({"contents": [{"role": "user", "parts": [{"text": say(json!({"reply": "Straight through."}))}]}],
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]});
    let url = rig.url("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
    let r = rig.http.post(url).header("x-goog-api-key", CLIENT_KEY).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let text: String = sse_events(&r.text().await.unwrap())
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["candidates"][0]["content"]["parts"][0]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "Straight through.");
    let sent = gemini_calls(&rig);
    assert_eq!(body_of(&sent[0]), body, "the body passes through as it came");
    assert_eq!(sent[0].header("x-goog-api-key"), Some(KEY_A), "the client's key is not the upstream's");
}

#[tokio::test]
async fn count_tokens_and_model_lists_come_from_the_keys() {
    let rig = start_with(&gemini_yaml()).await;
    let d = say(json!({"usage": {"input": 321}}));
    let b = json!({"model": "gemini-2.5-pro", "system": "Be brief.", "messages": [{"role": "user", "content": d}]});
    let r = rig
        .http
        .post(rig.url("/v1/messages/count_tokens"))
        .header("x-api-key", CLIENT_KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"input_tokens": 321}));
    assert_eq!(rig.mock.endpoint_hits("/v1beta/models/gemini-2.5-pro:countTokens"), 1);

    // A model only the key's own list names (not in the built-in catalogue) is listed and served.
    let started = Instant::now();
    while !rig.server.client().models().iter().any(|m| m.id == "gemini-3-pro-preview") {
        assert!(started.elapsed() < Duration::from_secs(10), "the model list never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = rig.chat(&chat_body("gemini-3-pro-preview", "hi", false)).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_per_day_quota_moves_traffic_to_the_next_key_until_googles_next_day() {
    let rig = start_with(&gemini_yaml()).await;
    let d = say(json!({"per_key": {KEY_A: {"kind": "quota"}}, "reply": "from the second key"}));
    let r = rig.chat(&chat_body("gemini-2.5-flash", &d, false)).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "from the second key");
    assert_eq!((rig.mock.hits(KEY_A), rig.mock.hits(KEY_B)), (1, 1));

    // The first key cools for this model until midnight Pacific time, far beyond the answer's retryDelay.
    let cooling = rig.management("/v0/management/cooldowns").await;
    let entry = cooling["cooldowns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["credential"] == "gemini:key-0")
        .unwrap_or_else(|| panic!("{cooling}"))
        .clone();
    assert_eq!(entry["model"], "gemini-2.5-flash");
    let left = entry["seconds_left"].as_u64().unwrap();
    let want = start_of_next_pacific_day(SystemTime::now()).duration_since(SystemTime::now()).unwrap().as_secs();
    assert!(left.abs_diff(want) <= 5, "cooling {left} s, the next Pacific day is {want} s away");

    // Meanwhile every request goes to the second key, even without the fault.
    for _ in 0..3 {
        assert_eq!(rig.chat(&chat_body("gemini-2.5-flash", "again", false)).await.status(), 200);
    }
    assert_eq!((rig.mock.hits(KEY_A), rig.mock.hits(KEY_B)), (1, 4));
}
