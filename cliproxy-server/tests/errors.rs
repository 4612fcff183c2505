//! Bad input gets a clear 4xx in the dialect of the endpoint; upstream failures map to the right kind.

mod support;

use serde_json::{Value, json};
use support::*;

async fn status_and_json(r: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    (status, headers, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")))
}

fn is_openai_error(v: &Value) -> bool {
    v["error"]["message"].is_string() && v["error"]["type"].is_string()
}

fn is_anthropic_error(v: &Value) -> bool {
    v["type"] == "error" && v["error"]["type"].is_string() && v["error"]["message"].is_string()
}

#[tokio::test]
async fn malformed_requests_get_dialect_errors() {
    let rig = start().await;
    let post = |path: &str, body: &'static str| {
        rig.http
            .post(rig.url(path))
            .bearer_auth(CLIENT_KEY)
            .header("anthropic-version", "2023-06-01")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    for body in ["{not json", "[]", "{\"messages\":[]}", "{\"model\":5,\"messages\":[]}", ""] {
        let (s, h, v) = status_and_json(post("/v1/chat/completions", body).await.unwrap()).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert!(is_openai_error(&v), "{v}");
        assert_eq!(h["x-should-retry"], "false");
        let (s, _, v) = status_and_json(post("/v1/messages", body).await.unwrap()).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert!(is_anthropic_error(&v), "{v}");
    }
    let (s, _, v) =
        status_and_json(post("/v1/messages", r#"{"model":"claude-sonnet-4-5","messages":[]}"#).await.unwrap()).await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("max_tokens"), "{v}");
}

#[tokio::test]
async fn malformed_responses_requests_get_openai_errors() {
    let rig = start().await;
    let post = |body: &'static str| {
        rig.http
            .post(rig.url("/v1/responses"))
            .bearer_auth(CLIENT_KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases = [
        ("{not json", "not a valid JSON object"),
        ("[]", "not a valid JSON object"),
        ("", "not a valid JSON object"),
        (r#"{"input":"hi"}"#, "model: field required"),
        (r#"{"model":5,"input":"hi"}"#, "model: expected a string"),
        (r#"{"model":"claude-sonnet-4-5","messages":[]}"#, "input: field required"),
        (r#"{"model":"claude-sonnet-4-5","input":7}"#, "input: expected a string or an array of input items"),
        (r#"{"model":"compat-gpt-4o","input":"hi","previous_response_id":"resp_1"}"#, "previous_response_id: "),
        (r#"{"model":"claude-sonnet-4-5","input":[{"type":"item_reference","id":"msg_1"}]}"#, "input[0]: "),
        (
            r#"{"model":"claude-sonnet-4-5","input":[{"role":"user","content":[{"type":"input_text"}]}]}"#,
            "input[0].content[0].text: missing",
        ),
        (r#"{"model":"claude-sonnet-4-5","input":"hi","tools":[{"type":"function"}]}"#, "tools[0].name: missing"),
    ];
    for (body, want) in cases {
        let (s, h, v) = status_and_json(post(body).await.unwrap()).await;
        assert_eq!(s, 400, "{body}: {v}");
        assert!(is_openai_error(&v), "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert!(v["error"].get("param").is_some() && v["error"]["code"].is_string(), "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(want), "{body}: {v}");
        assert_eq!(h["x-should-retry"], "false");
    }
    // Nothing that was refused reached an upstream.
    assert_eq!(rig.mock.total_hits(), 0);
    let body = r#"{"model":"no-such-model","input":"hi"}"#;
    let (s, _, v) = status_and_json(post(body).await.unwrap()).await;
    assert_eq!((s, v["error"]["code"].as_str()), (404, Some("model_not_found")), "{v}");
}

#[tokio::test]
async fn unknown_model_is_404_model_not_found() {
    let rig = start().await;
    let (s, _, v) = status_and_json(rig.chat(&chat_body("no-such-model", "hi", false)).await).await;
    assert_eq!(s, 404);
    assert_eq!(v["error"]["code"], "model_not_found", "{v}");
    let (s, _, v) = status_and_json(rig.messages(&messages_body("no-such-model", "hi", false)).await).await;
    assert_eq!(s, 404);
    assert_eq!(v["error"]["type"], "not_found_error", "{v}");
    let r = rig.http.get(rig.url("/v1/models/no-such-model")).bearer_auth(CLIENT_KEY).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn oversized_body_is_413_in_dialect() {
    let rig = start_with(&default_config().replace("api-keys:", "body-limit-mb: 1\napi-keys:")).await;
    let big = "x".repeat(1_200_000);
    let r = rig.chat(&chat_body("compat-gpt-4o", &big, false)).await;
    let (s, _, v) = status_and_json(r).await;
    assert_eq!(s, 413);
    assert!(is_openai_error(&v));
    let r = rig.messages(&messages_body("claude-sonnet-4-5", &big, false)).await;
    let (s, _, v) = status_and_json(r).await;
    assert_eq!(s, 413);
    assert!(is_anthropic_error(&v));
}

#[tokio::test]
async fn client_keys_are_required_in_every_form() {
    let rig = start().await;
    let body = chat_body("compat-gpt-4o", "hi", false);
    let r = rig.http.post(rig.url("/v1/chat/completions")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = rig.http.post(rig.url("/v1/chat/completions")).bearer_auth("wrong").json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    for (name, value) in [("x-api-key", CLIENT_KEY), ("x-goog-api-key", CLIENT_KEY)] {
        let r = rig.http.post(rig.url("/v1/chat/completions")).header(name, value).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{name}");
    }
    let r = rig.http.post(rig.url(&format!("/v1/chat/completions?key={CLIENT_KEY}"))).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = rig.http.get(rig.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "health needs no key");
    let r = rig.http.request(reqwest::Method::OPTIONS, rig.url("/v1/chat/completions")).send().await.unwrap();
    assert_eq!(r.status(), 204, "CORS preflight");
    assert!(r.headers().get("access-control-allow-origin").is_none(), "no CORS unless configured");
}

#[tokio::test]
async fn upstream_bad_request_is_not_retried_and_says_so() {
    let rig = start().await;
    let d = say(
        json!({"fault": {"status": 400, "body": {"error": {"message": "bad thing", "type": "invalid_request_error", "param": null, "code": null}}}}),
    );
    let (s, h, v) = status_and_json(rig.chat(&chat_body("compat-gpt-4o", &d, false)).await).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(h["x-should-retry"], "false");
    assert!(v["error"]["message"].as_str().unwrap().contains("bad thing"), "{v}");
    assert_eq!(rig.mock.total_hits(), 1);
}

#[tokio::test]
async fn error_after_first_byte_becomes_an_error_event() {
    let rig = start().await;
    let d = say(json!({"reply": "some longer reply text here", "delay_ms": 30, "fault": {"stream_error_after": 3}}));
    for model in ["compat-gpt-4o", "claude-sonnet-4-5"] {
        let r = rig.chat(&chat_body(model, &d, true)).await;
        assert_eq!(r.status(), 200);
        let body = r.text().await.unwrap();
        let last = sse_events(&body).into_iter().rfind(|(_, d)| d != "[DONE]").unwrap();
        let v: Value = serde_json::from_str(&last.1).unwrap();
        assert!(v["error"]["message"].is_string(), "{model}: {body}");

        let r = rig.messages(&messages_body(model, &d, true)).await;
        assert_eq!(r.status(), 200);
        let body = r.text().await.unwrap();
        let last = sse_events(&body).pop().unwrap();
        assert_eq!(last.0.as_deref(), Some("error"), "{model}: {body}");
    }
    // The failure came after bytes were sent: no second credential was tried.
    assert_eq!(rig.mock.total_hits(), 4);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_in_the_family_of_the_path() {
    let rig = start().await;
    let send = |method: reqwest::Method, path: &str, key: &str| {
        rig.http.request(method, rig.url(path)).bearer_auth(key).header("content-type", "application/json").send()
    };
    let (s, _, v) = status_and_json(send(reqwest::Method::POST, "/v1/nowhere", CLIENT_KEY).await.unwrap()).await;
    assert_eq!(s, 404);
    assert!(is_openai_error(&v), "{v}");
    assert_eq!(v["error"]["code"], "unknown_route");
    let (s, _, v) =
        status_and_json(send(reqwest::Method::POST, "/v1/messages/nowhere", CLIENT_KEY).await.unwrap()).await;
    assert_eq!(s, 404);
    assert!(is_anthropic_error(&v), "{v}");
    let (s, _, v) = status_and_json(send(reqwest::Method::GET, "/v0/management/nowhere", MGMT).await.unwrap()).await;
    assert_eq!(s, 404);
    assert!(v["error"].is_string(), "{v}");

    let (s, h, v) =
        status_and_json(send(reqwest::Method::GET, "/v1/chat/completions", CLIENT_KEY).await.unwrap()).await;
    assert_eq!(s, 405);
    assert!(is_openai_error(&v), "{v}");
    assert_eq!(v["error"]["code"], "method_not_allowed");
    assert_eq!(h["allow"], "POST");
    let (s, _, v) = status_and_json(send(reqwest::Method::PUT, "/v1/messages", CLIENT_KEY).await.unwrap()).await;
    assert_eq!(s, 405);
    assert!(is_anthropic_error(&v), "{v}");
    let (s, _, v) = status_and_json(send(reqwest::Method::PUT, "/v0/management/cooldowns", MGMT).await.unwrap()).await;
    assert_eq!(s, 405);
    assert!(v["error"].is_string(), "{v}");
    let r = rig.http.post(rig.url("/v0/oauth/kiro")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert_eq!(rig.mock.total_hits(), 0);
}
