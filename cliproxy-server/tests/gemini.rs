//! The Gemini front through the real server: `generateContent`, `streamGenerateContent` in both framings,
//! function calls, `countTokens`, model listings, and Google-shaped errors.

mod support;

use serde_json::{Value, json};
use support::*;

const TEXT: &str = "héllo 世界 👋🏽 — ok";
const MODELS: [&str; 2] = ["claude-sonnet-4-5-20250929", "compat-gpt-4o"];

/// POSTs a Gemini body to `models/{model}:{method}{query}` with the client key in `x-goog-api-key`.
async fn gemini(rig: &Rig, model: &str, method: &str, query: &str, body: &Value) -> reqwest::Response {
    rig.http
        .post(rig.url(&format!("/v1beta/models/{model}:{method}{query}")))
        .header("x-goog-api-key", CLIENT_KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn ask(text: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": text}]}]})
}

/// The parts of every chunk of a Gemini answer (one object, or the chunks of a stream) in order.
fn parts(chunks: &[Value]) -> Vec<Value> {
    chunks.iter().flat_map(|c| c["candidates"][0]["content"]["parts"].as_array().cloned().unwrap_or_default()).collect()
}

fn text(parts: &[Value]) -> String {
    parts.iter().filter(|p| p.get("thought").is_none()).filter_map(|p| p["text"].as_str()).collect()
}

/// The JSON chunks of an SSE body, checking the framing Gemini clients read: `data:` lines only, no `[DONE]`.
fn sse_chunks(body: &str) -> Vec<Value> {
    sse_events(body)
        .into_iter()
        .map(|(name, data)| {
            assert_eq!(name, None, "Gemini SDKs read every line but data: as JSON: {body}");
            serde_json::from_str(&data).unwrap_or_else(|_| panic!("not JSON: {data}"))
        })
        .collect()
}

fn is_google_error(v: &Value, code: u16, status: &str) -> bool {
    v["error"]["code"] == code && v["error"]["status"] == status && v["error"]["message"].is_string()
}

#[tokio::test]
async fn generate_content_from_both_upstreams() {
    let rig = start().await;
    for model in MODELS {
        let r = gemini(&rig, model, "generateContent", "", &ask(&say(json!({"reply": TEXT})))).await;
        assert_eq!(r.status(), 200, "{model}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        let v: Value = r.json().await.unwrap();
        assert_eq!(text(&parts(std::slice::from_ref(&v))), TEXT, "{model}: {v}");
        assert_eq!(v["candidates"][0]["finishReason"], "STOP");
        assert_eq!(v["modelVersion"], model);
        let u = &v["usageMetadata"];
        let (prompt, candidates) =
            (u["promptTokenCount"].as_u64().unwrap(), u["candidatesTokenCount"].as_u64().unwrap());
        assert!(prompt > 0 && candidates > 0, "{v}");
        assert_eq!(u["totalTokenCount"].as_u64(), Some(prompt + candidates));
    }
}

/// `chunk: 1` makes the mock write its stream one byte at a time: every split is exercised in one request.
#[tokio::test]
async fn streams_in_both_framings_survive_a_split_at_every_byte() {
    let rig = start().await;
    let body = ask(&say(json!({"reply": TEXT, "chunk": 1})));
    for model in MODELS {
        for query in ["?alt=sse", ""] {
            let r = gemini(&rig, model, "streamGenerateContent", query, &body).await;
            assert_eq!(r.status(), 200);
            assert_eq!(r.headers()["content-type"], "text/event-stream");
            let body = r.text().await.unwrap();
            let chunks = sse_chunks(&body);
            assert_eq!(text(&parts(&chunks)), TEXT, "{model}{query}: {body}");
            let last = chunks.last().unwrap();
            assert_eq!(last["candidates"][0]["finishReason"], "STOP", "{body}");
            assert!(last["usageMetadata"]["totalTokenCount"].as_u64().unwrap() > 0);
        }
        // Google's other framing: one JSON array, written as the chunks come.
        let r = gemini(&rig, model, "streamGenerateContent", "?alt=json", &body).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/json");
        let chunks: Vec<Value> = r.json().await.unwrap();
        assert_eq!(text(&parts(&chunks)), TEXT, "{model}");
        assert_eq!(chunks.last().unwrap()["candidates"][0]["finishReason"], "STOP");
    }
}

#[tokio::test]
async fn function_calls_arrive_whole_and_their_results_go_back() {
    let rig = start().await;
    let args = json!({"city": "Zürich", "days": 2});
    let tools = json!([{"functionDeclarations": [{"name": "get_weather", "description": "Weather",
        "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}, "days": {"type": "INTEGER"}}}}]}]);
    let directive = say(json!({"tool_calls": [{"name": "get_weather", "arguments": args}], "chunk": 7}));
    for model in MODELS {
        let mut body = ask(&directive);
        body["tools"] = tools.clone();
        let v: Value = gemini(&rig, model, "generateContent", "", &body).await.json().await.unwrap();
        let call = &parts(std::slice::from_ref(&v))[0]["functionCall"];
        assert_eq!((&call["name"], &call["args"]), (&json!("get_weather"), &args), "{model}: {v}");
        let id = call["id"].as_str().unwrap().to_owned();

        let r = gemini(&rig, model, "streamGenerateContent", "?alt=sse", &body).await.text().await.unwrap();
        let calls: Vec<Value> =
            parts(&sse_chunks(&r)).into_iter().filter_map(|p| p.get("functionCall").cloned()).collect();
        assert_eq!(calls.len(), 1, "{model}: {r}");
        assert_eq!(calls[0]["args"], args);

        // The next turn, as a Gemini client writes it (the call echoed, its result without an id): the
        // upstream gets a tool result for that very call.
        rig.mock.reset();
        body["contents"] = json!([
            {"role": "user", "parts": [{"text": "weather?"}]},
            {"role": "model", "parts": [{"functionCall": call}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}},
                                       {"text": say(json!({"reply": "It is sunny."}))}]}
        ]);
        let v: Value = gemini(&rig, model, "generateContent", "", &body).await.json().await.unwrap();
        assert_eq!(text(&parts(std::slice::from_ref(&v))), "It is sunny.", "{model}: {v}");
        let sent: Value = serde_json::from_slice(&rig.mock.requests().last().unwrap().body).unwrap();
        let sent = sent.to_string();
        assert!(sent.contains(&id) && sent.contains("sunny"), "{model}: {sent}");
    }
}

#[tokio::test]
async fn malformed_gemini_requests_get_google_errors() {
    let rig = start().await;
    let post = |path: &str, body: &'static str| {
        rig.http.post(rig.url(path)).header("x-goog-api-key", CLIENT_KEY).body(body).send()
    };
    let path = "/v1beta/models/compat-gpt-4o:generateContent";
    for body in [
        "{not json",
        "[]",
        "",
        "{}",
        r#"{"contents":[]}"#,
        r#"{"contents":[{"role":"assistant","parts":[{"text":"x"}]}]}"#,
        r#"{"contents":[{"parts":[{"text":1}]}]}"#,
        r#"{"contents":[{"parts":[{"text":"x"}]}],"generationConfig":{"maxOutputTokens":"many"}}"#,
        r#"{"contents":[{"parts":[{"text":"x"}]}],"toolConfig":{"functionCallingConfig":{"mode":"MAYBE"}}}"#,
    ] {
        for path in [path, "/v1beta/models/compat-gpt-4o:streamGenerateContent?alt=sse"] {
            let r = post(path, body).await.unwrap();
            let (status, retry) = (r.status().as_u16(), r.headers()["x-should-retry"].clone());
            let v: Value = r.json().await.unwrap();
            assert_eq!(status, 400, "{path} {body}: {v}");
            assert!(is_google_error(&v, 400, "INVALID_ARGUMENT"), "{body}: {v}");
            assert_eq!(retry, "false");
        }
    }
    let v: Value = post(path, r#"{"contents":[{"role":"assistant","parts":[]}]}"#).await.unwrap().json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("contents[0].role"), "{v}");

    let cases = [
        ("/v1beta/models/compat-gpt-4o:fooBar", 404, "NOT_FOUND"),
        ("/v1beta/models/compat-gpt-4o", 404, "NOT_FOUND"),
        ("/v1beta/models/:generateContent", 400, "INVALID_ARGUMENT"),
        ("/v1beta/models/no-such-model:generateContent", 404, "NOT_FOUND"),
        ("/v1beta/models/compat-gpt-4o:streamGenerateContent?alt=proto", 400, "INVALID_ARGUMENT"),
    ];
    for (path, code, status) in cases {
        let r = post(path, r#"{"contents":[{"parts":[{"text":"x"}]}]}"#).await.unwrap();
        assert_eq!(r.status(), code, "{path}");
        let v: Value = r.json().await.unwrap();
        assert!(is_google_error(&v, code, status), "{path}: {v}");
    }
    let big = format!(r#"{{"contents":[{{"parts":[{{"text":"{}"}}]}}]}}"#, "x".repeat(1_200_000));
    let rig = start_with(&default_config().replace("api-keys:", "body-limit-mb: 1\napi-keys:")).await;
    let r = rig.http.post(rig.url(path)).header("x-goog-api-key", CLIENT_KEY).body(big).send().await.unwrap();
    assert_eq!(r.status(), 413);
    assert!(is_google_error(&r.json().await.unwrap(), 413, "INVALID_ARGUMENT"));
}

#[tokio::test]
async fn gemini_keys_in_every_form() {
    let rig = start().await;
    let url = rig.url("/v1beta/models/compat-gpt-4o:generateContent");
    let body = ask("hi");
    let r = rig.http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(is_google_error(&r.json().await.unwrap(), 401, "UNAUTHENTICATED"));
    let r = rig.http.post(format!("{url}?key=wrong")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(rig.http.post(format!("{url}?key={CLIENT_KEY}")).json(&body).send().await.unwrap().status(), 200);
    assert_eq!(rig.http.post(&url).bearer_auth(CLIENT_KEY).json(&body).send().await.unwrap().status(), 200);
    assert_eq!(rig.http.get(rig.url("/v1beta/models")).send().await.unwrap().status(), 401);
    // Under `v1` a Gemini call is told by its method, before any key is checked.
    let r = rig.http.post(rig.url("/v1/models/compat-gpt-4o:generateContent")).json(&body).send().await.unwrap();
    assert!(is_google_error(&r.json().await.unwrap(), 401, "UNAUTHENTICATED"));
    // Nothing reached the upstream without a valid key.
    assert_eq!(rig.mock.total_hits(), 2);
}

#[tokio::test]
async fn unknown_routes_and_methods_under_v1beta_get_google_errors() {
    let rig = start().await;
    let r = rig.http.get(rig.url("/v1beta/files")).header("x-goog-api-key", CLIENT_KEY).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(is_google_error(&r.json().await.unwrap(), 404, "NOT_FOUND"));
    let r = rig.http.delete(rig.url("/v1beta/models")).header("x-goog-api-key", CLIENT_KEY).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert!(is_google_error(&r.json().await.unwrap(), 405, "INVALID_ARGUMENT"));
}

#[tokio::test]
async fn error_after_the_first_chunk_is_a_google_error_chunk() {
    let rig = start().await;
    let failing = |after: usize| {
        ask(&say(
            json!({"reply": "some longer reply text here", "delay_ms": 30, "fault": {"stream_error_after": after}}),
        ))
    };
    for model in MODELS {
        let r = gemini(&rig, model, "streamGenerateContent", "?alt=sse", &failing(6)).await;
        assert_eq!(r.status(), 200);
        let body = r.text().await.unwrap();
        let chunks = sse_chunks(&body);
        assert!(!text(&parts(&chunks)).is_empty(), "{model}: {body}");
        let last = chunks.last().unwrap();
        assert!(last["error"]["message"].is_string() && last["error"]["status"].is_string(), "{model}: {body}");
        // In the JSON-array framing the error is the array's last element, and the array is still closed.
        let r = gemini(&rig, model, "streamGenerateContent", "?alt=json", &failing(6)).await;
        let chunks: Vec<Value> = r.json().await.unwrap();
        assert!(chunks.last().unwrap()["error"]["status"].is_string(), "{model}: {chunks:?}");
        // Before anything a Gemini client would read (Gemini has no start event), the failure is still an
        // HTTP error in Google's shape.
        let r = gemini(&rig, model, "streamGenerateContent", "?alt=sse", &failing(1)).await;
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert!(status >= 500 && is_google_error(&v, status, "UNAVAILABLE"), "{model}: {status} {v}");
    }
}

#[tokio::test]
async fn count_tokens_and_model_listings() {
    let rig = start().await;
    for model in MODELS {
        let r = gemini(&rig, model, "countTokens", "", &ask("How many tokens is this sentence?")).await;
        assert_eq!(r.status(), 200, "{model}");
        let v: Value = r.json().await.unwrap();
        assert!(v["totalTokens"].as_u64().unwrap() > 0, "{model}: {v}");
        let wrapped =
            json!({"generateContentRequest": {"model": format!("models/{model}"), "contents": ask("hi")["contents"]}});
        let v: Value = gemini(&rig, model, "countTokens", "", &wrapped).await.json().await.unwrap();
        assert!(v["totalTokens"].as_u64().unwrap() > 0, "{model}: {v}");
    }
    let r = gemini(&rig, "compat-gpt-4o", "countTokens", "", &json!({"contents": "x"})).await;
    assert_eq!(r.status(), 400);

    let list = |path: &str| rig.http.get(rig.url(path)).header("x-goog-api-key", CLIENT_KEY).send();
    let v: Value = list("/v1beta/models").await.unwrap().json().await.unwrap();
    let models = v["models"].as_array().unwrap();
    let compat = models.iter().find(|m| m["name"] == "models/compat-gpt-4o").unwrap_or_else(|| panic!("{v}"));
    assert_eq!(compat["displayName"], "compat-gpt-4o");
    assert!(compat["supportedGenerationMethods"].as_array().unwrap().contains(&json!("streamGenerateContent")));
    let v: Value = list("/v1beta/models/compat-gpt-4o").await.unwrap().json().await.unwrap();
    assert_eq!(v["name"], "models/compat-gpt-4o");
    let r = list("/v1beta/models/no-such-model").await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(is_google_error(&r.json().await.unwrap(), 404, "NOT_FOUND"));
    // Under `v1` (google-genai's default) the listing is shared: the key header tells a Google client.
    let v: Value = list("/v1/models").await.unwrap().json().await.unwrap();
    assert!(v["models"].as_array().unwrap().iter().any(|m| m["name"] == "models/compat-gpt-4o"), "{v}");
    let v: Value = list("/v1/models/compat-gpt-4o").await.unwrap().json().await.unwrap();
    assert_eq!(v["name"], "models/compat-gpt-4o");
    let v: Value =
        rig.http.get(rig.url("/v1/models")).bearer_auth(CLIENT_KEY).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["object"], "list", "OpenAI clients keep theirs: {v}");
}

#[tokio::test]
async fn v1_serves_the_gemini_methods_too() {
    let rig = start().await;
    let r = rig
        .http
        .post(rig.url("/v1/models/compat-gpt-4o:generateContent"))
        .header("x-goog-api-key", CLIENT_KEY)
        .json(&ask(&say(json!({"reply": TEXT}))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(text(&parts(&[r.json().await.unwrap()])), TEXT);
    let v: Value = rig
        .http
        .get(rig.url("/v1/models/compat-gpt-4o"))
        .bearer_auth(CLIENT_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["id"], "compat-gpt-4o", "GET stays OpenAI's model object: {v}");
}

/// Google's SDKs read every line that is not `data:` as JSON, so a silent Gemini stream is kept alive with
/// blank lines, never SSE comments; in the JSON-array framing they are whitespace between elements.
#[tokio::test]
async fn silences_get_keepalives_gemini_clients_can_read() {
    let yaml = default_config().replace("api-keys:", "streaming: { keepalive-seconds: 1 }\napi-keys:");
    let rig = start_with(&yaml).await;
    let body = ask(&say(json!({"reply": "a b", "delay_ms": 1150})));
    let sse = gemini(&rig, "compat-gpt-4o", "streamGenerateContent", "?alt=sse", &body).await.text().await.unwrap();
    assert!(!sse.contains(": keepalive"), "{sse:?}");
    assert!(sse.contains("\n\n\n"), "a blank line filled the silence: {sse:?}");
    assert_eq!(text(&parts(&sse_chunks(&sse))), "a b");
    let array = gemini(&rig, "compat-gpt-4o", "streamGenerateContent", "?alt=json", &body).await.text().await.unwrap();
    let chunks: Vec<Value> = serde_json::from_str(&array).unwrap_or_else(|e| panic!("{e}: {array:?}"));
    assert!(array.contains("\n\n") || array.starts_with('\n'), "{array:?}");
    assert_eq!(text(&parts(&chunks)), "a b");
}
