//! The Gemini API with keys: generateContent, the SSE and JSON-array streams, countTokens, models, and
//! Google's errors, `RESOURCE_EXHAUSTED` with QuotaFailure and RetryInfo above all.

use cliproxy_mock::{MockServer, directive};
use serde_json::{Value, json};

use crate::common::{client, gemini_frames, read_pieces, split_text, status_json, text_of};

const KEY: &str = "AIzaSyMock-key-1";

fn call(mock: &MockServer, model_method: &str, query: &str, body: &Value) -> reqwest::RequestBuilder {
    client()
        .post(format!("{}/v1beta/models/{model_method}{query}", mock.url()))
        .header("x-goog-api-key", KEY)
        .json(body)
}

fn body(d: &Value) -> Value {
    json!({
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [{"role": "user", "parts": [{"text": format!("Weather? {}", directive(d))}]}],
        "tools": [{"functionDeclarations": [{"name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]}],
        "generationConfig": {"temperature": 0.2},
    })
}

/// The details of a Google error, by their `@type` suffix.
fn detail<'a>(error: &'a Value, kind: &str) -> &'a Value {
    error["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["@type"] == format!("type.googleapis.com/google.rpc.{kind}"))
        .unwrap_or_else(|| panic!("no {kind} in {error}"))
}

#[tokio::test]
async fn sse_streams_have_no_done_and_usage_only_on_the_last_chunk() {
    let mock = MockServer::start().await;
    let d = json!({"thinking": "Check the sky.", "reply": "Sunny in Zürich ☀",
        "tool_calls": [{"name": "get_weather", "arguments": {"city": "Zürich"}}],
        "usage": {"input": 30, "output": 9}});
    let response = call(&mock, "gemini-2.5-flash:streamGenerateContent", "?alt=sse", &body(&d)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let frames = gemini_frames(&response.text().await.unwrap());
    assert!(frames.len() > 4);
    let (last, rest) = frames.split_last().unwrap();
    for frame in rest {
        assert!(frame.get("usageMetadata").is_none(), "usage only on the last chunk: {frame}");
        assert!(frame["candidates"][0].get("finishReason").is_none());
        assert_eq!(frame["candidates"][0]["content"]["role"], "model");
        assert_eq!(frame["modelVersion"], "gemini-2.5-flash");
    }
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["promptTokenCount"], 30);
    assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 9);
    assert_eq!(last["usageMetadata"]["totalTokenCount"], 39);
    let parts: Vec<&Value> = frames.iter().map(|f| &f["candidates"][0]["content"]["parts"][0]).collect();
    let thought: String = parts.iter().filter(|p| p["thought"] == true).map(|p| p["text"].as_str().unwrap()).collect();
    let text: String = parts.iter().filter(|p| p.get("thought").is_none()).filter_map(|p| p["text"].as_str()).collect();
    assert_eq!((thought.as_str(), text.as_str()), ("Check the sky.", "Sunny in Zürich ☀"));
    assert_eq!(
        parts.last().unwrap()["functionCall"],
        json!({"name": "get_weather", "args": {"city": "Zürich"}}),
        "a call comes whole"
    );
    assert_eq!(mock.hits(KEY), 1);
}

#[tokio::test]
async fn without_alt_sse_the_stream_is_one_json_array() {
    let mock = MockServer::start().await;
    let response = call(&mock, "gemini-2.5-pro:streamGenerateContent", "", &body(&json!({"reply": "in an array"})));
    let text = text_of(response).await;
    let chunks: Vec<Value> = serde_json::from_str(&text).unwrap();
    let joined: String =
        chunks.iter().map(|c| c["candidates"][0]["content"]["parts"][0]["text"].as_str().unwrap()).collect();
    assert_eq!(joined, "in an array");
    assert!(chunks.last().unwrap()["usageMetadata"].is_object());

    // An error inside the stream stays inside the array.
    let d = json!({"reply": "abcdefghijkl", "fault": {"stream_error_after": 2}});
    let text = text_of(call(&mock, "gemini-2.5-pro:streamGenerateContent", "", &body(&d))).await;
    let chunks: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[2]["error"]["status"], "INTERNAL");
}

#[tokio::test]
async fn generate_content_count_tokens_and_models() {
    let mock = MockServer::start().await;
    let url = format!("{}/v1beta/models/gemini-2.5-pro:generateContent?key={KEY}", mock.url());
    let d = json!({"reply": "Hi", "finish": "max_tokens", "usage": {"input": 7, "output": 2, "cached": 3}});
    let (status, v) = status_json(client().post(&url).json(&body(&d))).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["candidates"][0]["content"], json!({"role": "model", "parts": [{"text": "Hi"}]}));
    assert_eq!(v["candidates"][0]["finishReason"], "MAX_TOKENS");
    assert_eq!(v["usageMetadata"]["cachedContentTokenCount"], 3);
    assert!(v["responseId"].is_string());
    assert_eq!(mock.endpoint_hits_for("/v1beta/models/gemini-2.5-pro:generateContent", KEY), 1);

    // Thoughts come when the request asks for them.
    let mut thinking = body(&json!({"reply": "x"}));
    thinking["generationConfig"]["thinkingConfig"] = json!({"includeThoughts": true, "thinkingBudget": 1024});
    let (_, v) = status_json(call(&mock, "gemini-2.5-pro:generateContent", "", &thinking)).await;
    assert_eq!(v["candidates"][0]["content"]["parts"][0]["thought"], true);
    assert!(v["usageMetadata"]["thoughtsTokenCount"].as_u64().unwrap() > 0);

    let count = json!({"contents": [{"role": "user", "parts": [{"text": "count me"}]}]});
    let sent = serde_json::to_vec(&count).unwrap().len() as u64;
    let (status, v) = status_json(call(&mock, "gemini-2.5-pro:countTokens", "", &count)).await;
    assert_eq!((status, v["totalTokens"].as_u64()), (200, Some(sent / 4)));

    let (status, v) =
        status_json(client().get(format!("{}/v1beta/models", mock.url())).header("x-goog-api-key", KEY)).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = v["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"models/gemini-2.5-pro"));
    assert!(v["models"][0]["supportedGenerationMethods"].as_array().unwrap().contains(&json!("generateContent")));
}

#[tokio::test]
async fn keys_models_and_bodies_are_checked_in_googles_error_shape() {
    let mock = MockServer::start().await;
    let path = |model: &str| format!("{}/v1beta/models/{model}:generateContent", mock.url());
    let ok = body(&json!({}));

    let (status, v) =
        status_json(client().post(path("gemini-2.5-pro")).header("x-goog-api-key", "AIza-revoked").json(&ok)).await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["code"], 400);
    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(v["error"]["message"], "API key not valid. Please pass a valid API key.");
    assert_eq!(detail(&v, "ErrorInfo")["reason"], "API_KEY_INVALID");
    let (status, v) = status_json(client().post(path("gemini-2.5-pro")).json(&ok)).await;
    assert_eq!((status, v["error"]["status"].as_str()), (403, Some("PERMISSION_DENIED")));
    let (status, v) = status_json(call(&mock, "gemini-9:generateContent", "", &ok)).await;
    assert_eq!((status, v["error"]["status"].as_str()), (404, Some("NOT_FOUND")));
    let (status, v) = status_json(call(&mock, "gemini-2.5-pro:generateContent", "", &json!({"contents": []}))).await;
    assert_eq!((status, v["error"]["status"].as_str()), (400, Some("INVALID_ARGUMENT")));
    let (status, _) =
        status_json(call(&mock, "gemini-2.5-pro:generateContent", "", &body(&json!({"replay": 1})))).await;
    assert_eq!(status, 400, "a mistyped directive fails loudly");
    // A Google bearer works as well as a key; an expired one is UNAUTHENTICATED.
    let bearer = |token: &str| client().post(path("gemini-2.5-pro")).bearer_auth(token).json(&ok);
    assert_eq!(bearer("ya29.valid-token").send().await.unwrap().status(), 200);
    let (status, v) = status_json(bearer("ya29.expired-token")).await;
    assert_eq!((status, v["error"]["status"].as_str()), (401, Some("UNAUTHENTICATED")));
}

#[tokio::test]
async fn resource_exhausted_carries_quota_failure_and_retry_info() {
    let mock = MockServer::start().await;
    for (kind, period, other) in [("rate_limit", "PerMinute", "PerDay"), ("quota", "PerDay", "PerMinute")] {
        let d = json!({"fault": {"kind": kind, "retry_after": 41}});
        let (status, v) =
            status_json(call(&mock, "gemini-2.5-flash:streamGenerateContent", "?alt=sse", &body(&d))).await;
        assert_eq!(status, 429);
        assert_eq!(v["error"]["code"], 429);
        assert_eq!(v["error"]["status"], "RESOURCE_EXHAUSTED");
        let quota_id = detail(&v, "QuotaFailure")["violations"][0]["quotaId"].as_str().unwrap();
        assert!(quota_id.contains(period) && !quota_id.contains(other), "{kind}: {quota_id}");
        assert_eq!(detail(&v, "QuotaFailure")["violations"][0]["quotaDimensions"]["model"], "gemini-2.5-flash");
        assert_eq!(detail(&v, "RetryInfo")["retryDelay"], "41s");
        assert!(v["error"]["message"].as_str().unwrap().contains("Please retry in 41s."));
    }
    // Per key, and per model: a proxy falling back to another model gets through.
    let d = json!({"per_key": {KEY: {"kind": "quota", "model": "gemini-2.5-pro"}}});
    assert_eq!(call(&mock, "gemini-2.5-pro:generateContent", "", &body(&d)).send().await.unwrap().status(), 429);
    assert_eq!(call(&mock, "gemini-2.5-flash:generateContent", "", &body(&d)).send().await.unwrap().status(), 200);
    let other_key = client()
        .post(format!("{}/v1beta/models/gemini-2.5-pro:generateContent", mock.url()))
        .header("x-goog-api-key", "AIza-other")
        .json(&body(&d));
    assert_eq!(other_key.send().await.unwrap().status(), 200);
    for (kind, status, rpc) in [("overloaded", 503, "UNAVAILABLE"), ("server_error", 500, "INTERNAL")] {
        let d = json!({"fault": {"kind": kind}});
        let (got, v) = status_json(call(&mock, "gemini-2.5-pro:generateContent", "", &body(&d))).await;
        assert_eq!((got, v["error"]["status"].as_str()), (status, Some(rpc)));
    }
}

#[tokio::test]
async fn broken_and_split_sse_streams() {
    let mock = MockServer::start().await;
    let d = json!({"reply": "abcdefghijklmnop", "fault": {"stream_error_after": 2}});
    let frames =
        gemini_frames(&text_of(call(&mock, "gemini-2.5-pro:streamGenerateContent", "?alt=sse", &body(&d))).await);
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[2]["error"]["code"], 500);

    let d = json!({"reply": "abcdefghijklmnop", "fault": {"cut_after": 2}});
    let response = call(&mock, "gemini-2.5-pro:streamGenerateContent", "?alt=sse", &body(&d)).send().await.unwrap();
    let (bytes, _, errored) = read_pieces(response).await;
    assert!(errored);
    assert_eq!(String::from_utf8(bytes).unwrap().matches("\n\n").count(), 2);

    let d = json!({"reply": "Grüße aus 東京 🌸!", "usage": {"input": 3, "output": 3}});
    let plain =
        gemini_frames(&text_of(call(&mock, "gemini-2.5-pro:streamGenerateContent", "?alt=sse", &body(&d))).await);
    let mut split = d.clone();
    split["chunk"] = json!(2);
    let response = call(&mock, "gemini-2.5-pro:streamGenerateContent", "?alt=sse", &body(&split)).send().await.unwrap();
    let pieces = gemini_frames(&split_text(response, 2).await);
    let without_id = |frames: Vec<Value>| -> Vec<Value> {
        frames
            .into_iter()
            .map(|mut f| {
                f.as_object_mut().unwrap().remove("responseId");
                f
            })
            .collect()
    };
    assert_eq!(without_id(pieces), without_id(plain));
}
