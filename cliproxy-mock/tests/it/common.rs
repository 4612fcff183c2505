//! Helpers shared by the tests: requests in each dialect, SSE parsing, OAuth redirects and split bodies.

use std::collections::HashMap;

use cliproxy_mock::{MockServer, directive};
use futures::StreamExt;
use serde_json::{Value, json};

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().expect("building a client")
}

/// A user message carrying a directive.
pub fn user(d: &Value) -> Value {
    json!({"role": "user", "content": format!("Hi there. {}", directive(d))})
}

/// A chat completions request with `key`.
pub fn openai(mock: &MockServer, key: &str, body: &Value) -> reqwest::RequestBuilder {
    client().post(format!("{}/chat/completions", mock.openai_base())).bearer_auth(key).json(body)
}

/// An OpenAI request body with a directive.
pub fn openai_body(d: &Value, stream: bool) -> Value {
    json!({"model": "gpt-4o", "stream": stream, "messages": [
        {"role": "system", "content": "You are helpful."}, user(d)]})
}

/// A messages request with an API key.
pub fn anthropic(mock: &MockServer, key: &str, body: &Value) -> reqwest::RequestBuilder {
    client()
        .post(format!("{}/v1/messages", mock.anthropic_base()))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
}

/// A messages request with an OAuth token and the betas Claude Code sends.
pub fn anthropic_oauth(mock: &MockServer, token: &str, body: &Value) -> reqwest::RequestBuilder {
    client()
        .post(format!("{}/v1/messages", mock.anthropic_base()))
        .bearer_auth(token)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14")
        .json(body)
}

/// An Anthropic request body with a directive.
pub fn anthropic_body(d: &Value, stream: bool) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": stream,
        "messages": [user(d)]})
}

/// The JSON payloads of `data:` frames, with `[DONE]` as the string "[DONE]". Panics on any
/// line that is not a data line, since OpenAI streams have no `event:` lines.
pub fn data_frames(text: &str) -> Vec<Value> {
    assert!(text.ends_with("\n\n"), "unterminated stream: {text:?}");
    text.split_terminator("\n\n")
        .map(|frame| {
            let data = frame.strip_prefix("data: ").unwrap_or_else(|| panic!("not a data frame: {frame:?}"));
            assert!(!data.contains('\n'), "multi-line frame {frame:?}");
            if data == "[DONE]" {
                json!("[DONE]")
            } else {
                serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"))
            }
        })
        .collect()
}

/// Named SSE events as (name, data), checking that `data.type` equals the name.
pub fn named_events(text: &str) -> Vec<(String, Value)> {
    text.split_terminator("\n\n")
        .map(|frame| {
            let (event, data) = frame.split_once('\n').expect("event and data lines");
            let name = event.strip_prefix("event: ").expect("event line").to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").expect("data line")).unwrap();
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect()
}

/// The body as received, frame by frame: the concatenated bytes, the offsets where reads ended
/// and whether the body ended with an error.
pub async fn read_pieces(response: reqwest::Response) -> (Vec<u8>, Vec<usize>, bool) {
    let mut stream = response.bytes_stream();
    let mut body = Vec::new();
    let mut ends = Vec::new();
    while let Some(piece) = stream.next().await {
        match piece {
            Ok(piece) => {
                body.extend_from_slice(&piece);
                ends.push(body.len());
            }
            Err(_) => return (body, ends, true),
        }
    }
    (body, ends, false)
}

/// Sends a request and returns the body as text, whatever the status.
pub async fn text_of(request: reqwest::RequestBuilder) -> String {
    request.send().await.unwrap().text().await.unwrap()
}

/// Sends a request and returns the body as JSON, whatever the status.
pub async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// Sends a request and returns the status and the JSON body.
pub async fn status_json(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Follows nothing: the authorize endpoints' 302 is the answer under test.
pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Calls an authorize endpoint (`path` with its query pairs), checks the 302 goes back to `redirect_uri` and
/// returns the query the client receives there.
pub async fn authorize(mock: &MockServer, path: &str, query: &[(&str, &str)]) -> HashMap<String, String> {
    let response = no_redirects().get(format!("{}{path}", mock.url())).query(query).send().await.unwrap();
    assert_eq!(response.status(), 302, "{}", response.text().await.unwrap());
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let redirect_uri = query.iter().find(|(k, _)| *k == "redirect_uri").unwrap().1;
    let (target, params) = location.split_once('?').unwrap();
    assert_eq!(target, redirect_uri);
    form_urlencoded::parse(params.as_bytes()).into_owned().collect()
}

/// A POST of form fields.
pub fn post_form(mock: &MockServer, path: &str, fields: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    client()
        .post(format!("{}{path}", mock.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
}

/// Reads a body delivered in pieces: the reassembled text, after checking reads ended at every piece
/// boundary asked for and that at least one of them fell inside a UTF-8 sequence.
pub async fn split_text(response: reqwest::Response, every: usize) -> String {
    let (body, ends, errored) = read_pieces(response).await;
    assert!(!errored);
    let text = String::from_utf8(body).expect("pieces reassemble to valid UTF-8");
    // Pieces are flushed apart; allow a few to coalesce on a busy machine.
    assert!(ends.len() * 2 >= text.len() / every, "{} reads for {} bytes", ends.len(), text.len());
    assert!(ends.iter().any(|&end| !text.is_char_boundary(end)), "no piece ended inside a character");
    text
}

/// The `data:` payloads of an SSE body that has no `[DONE]` (Gemini's).
pub fn gemini_frames(text: &str) -> Vec<Value> {
    let frames = data_frames(text);
    assert!(!frames.iter().any(|f| f == "[DONE]"), "Gemini streams end without [DONE]");
    frames
}
