//! The OpenAI Chat Completions dialect: `/v1/chat/completions` (JSON and `data:`-only SSE with
//! `[DONE]`), `/v1/models`, OpenAI error bodies and `x-ratelimit-*` headers.

use std::sync::Arc;

use axum::Router;
use axum::extract::State as Shared;
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};

use crate::answer::{ARGUMENT_FRAGMENT_BYTES, Answer, TEXT_DELTA_CHARS, byte_pieces, char_pieces};
use crate::directive::{self, Directive};
use crate::fault::{self, Dialect, ErrorAnswer, Fault, FaultKind, Rendered};
use crate::state::State;
use crate::writer::{self, Delivery, EventBuf};
use crate::{clock, ids, keys};

/// Models listed by `GET /v1/models`.
pub const MODELS: &[&str] = &["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3-mini"];

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new().route("/v1/chat/completions", post(chat)).route("/chat/completions", post(chat))
}

/// OpenAI's error rendering.
pub struct OpenAi;

impl OpenAi {
    fn error(status: StatusCode, message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> ErrorAnswer {
        ErrorAnswer::json(status, error_body(message, kind, param, code))
    }

    fn invalid_key() -> ErrorAnswer {
        OpenAi::error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided: sk-***. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            None,
            Some("invalid_api_key"),
        )
    }

    pub(crate) fn bad_request(message: &str, param: Option<&str>, code: Option<&str>) -> ErrorAnswer {
        OpenAi::error(StatusCode::BAD_REQUEST, message, "invalid_request_error", param, code)
    }

    fn server_error() -> ErrorAnswer {
        OpenAi::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
            None,
        )
    }
}

impl Dialect for OpenAi {
    fn kind_answer(&self, kind: FaultKind, fault: &Fault) -> ErrorAnswer {
        match kind {
            FaultKind::RateLimit => {
                let secs = fault.retry_after_secs();
                let mut answer = OpenAi::error(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!(
                        "Rate limit reached for requests on requests per min (RPM): Limit 10000, Used 10000, Requested 1. Please try again in {secs}s."
                    ),
                    "requests",
                    None,
                    Some("rate_limit_exceeded"),
                );
                let headers = &mut answer.headers;
                insert(headers, "retry-after", &fault.retry_after());
                insert(headers, "x-ratelimit-remaining-requests", "0");
                insert(headers, "x-ratelimit-reset-requests", &clock::go_duration(secs * 1000));
                answer
            }
            FaultKind::Quota => OpenAi::error(
                StatusCode::TOO_MANY_REQUESTS,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                None,
                Some("insufficient_quota"),
            ),
            FaultKind::InvalidKey => OpenAi::invalid_key(),
            FaultKind::Overloaded => OpenAi::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "The engine is currently overloaded, please try again later.",
                "server_error",
                None,
                None,
            ),
            FaultKind::ServerError => OpenAi::server_error(),
        }
    }

    fn status_answer(&self, status: StatusCode) -> ErrorAnswer {
        let (message, kind, code) = match status.as_u16() {
            401 => return OpenAi::invalid_key(),
            403 => (
                "Country, region, or territory not supported",
                "request_forbidden",
                Some("unsupported_country_region_territory"),
            ),
            404 => (
                "The model does not exist or you do not have access to it.",
                "invalid_request_error",
                Some("model_not_found"),
            ),
            429 => {
                ("Rate limit reached for requests. Please try again later.", "requests", Some("rate_limit_exceeded"))
            }
            500 => return OpenAi::server_error(),
            503 => ("The engine is currently overloaded, please try again later.", "server_error", None),
            s if s >= 500 => (status.canonical_reason().unwrap_or("Server error"), "server_error", None),
            _ => (status.canonical_reason().unwrap_or("Invalid request"), "invalid_request_error", None),
        };
        OpenAi::error(status, message, kind, None, code)
    }
}

/// `{"error":{"message","type","param","code"}}`.
pub fn error_body(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Vec<u8> {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}}).to_string().into_bytes()
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// Headers on every OpenAI response: a request id and the rate-limit state.
pub fn common_headers() -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(12);
    insert(&mut headers, "x-request-id", &ids::token("req_", 32));
    for (name, value) in [
        ("x-ratelimit-limit-requests", "10000"),
        ("x-ratelimit-limit-tokens", "30000000"),
        ("x-ratelimit-remaining-requests", "9999"),
        ("x-ratelimit-remaining-tokens", "29999000"),
        ("x-ratelimit-reset-requests", "6ms"),
        ("x-ratelimit-reset-tokens", "6m0s"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
}

/// An error answer with the common headers and the fault's extra headers.
pub(crate) fn send_error(answer: ErrorAnswer, fault: Option<&Fault>) -> Response {
    answer.into_response(common_headers(), fault)
}

/// The `models` list, in OpenAI's shape.
pub(crate) fn models(headers: &HeaderMap) -> Response {
    if !keys::bearer(headers).is_some_and(keys::is_valid_key) {
        return send_error(OpenAi::invalid_key(), None);
    }
    let data: Vec<Value> = MODELS
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_715_367_049, "owned_by": "system"}))
        .collect();
    let body = json!({"object": "list", "data": data}).to_string();
    let mut headers = common_headers();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    writer::whole(StatusCode::OK, headers, body.into())
}

async fn chat(state: Shared<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    chat_in(state, headers, body, &OpenAi).await
}

/// Chat completions with faults rendered by `dialect`: OpenAI's own, or an OpenAI-compatible provider's.
pub(crate) async fn chat_in(
    Shared(state): Shared<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
    dialect: &impl Dialect,
) -> Response {
    let key = keys::bearer(&headers);
    state.count_hit(key);
    if !key.is_some_and(keys::is_valid_key) {
        return send_error(OpenAi::invalid_key(), None);
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(request @ Value::Object(_)) => request,
        _ => {
            return send_error(
                OpenAi::bad_request(
                    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
                    None,
                    None,
                ),
                None,
            );
        }
    };
    let Some(model) = request.get("model").and_then(Value::as_str) else {
        return send_error(OpenAi::bad_request("you must provide a model parameter", None, None), None);
    };
    let Some(messages) = request.get("messages").and_then(Value::as_array) else {
        return send_error(
            OpenAi::bad_request(
                "Missing required parameter: 'messages'.",
                Some("messages"),
                Some("missing_required_parameter"),
            ),
            None,
        );
    };
    let mut texts = Vec::new();
    directive::message_texts(messages, &mut texts);
    let directive = match Directive::find(texts) {
        Ok(found) => found.unwrap_or_default(),
        Err(message) => return send_error(OpenAi::bad_request(&message, None, None), None),
    };
    let fault = directive.fault_for(key, None, model);
    if let Some(fault) = fault {
        fault.hang().await;
        if let Some(answer) = fault.error_answer(dialect) {
            return send_error(answer, Some(fault));
        }
    }
    let stream = request.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = request.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    let answer = Answer::new(&directive, body.len(), "call_");
    let head = Head { id: ids::token("chatcmpl-", 29), created: clock::unix_now(), model };
    let delivery = Delivery::new(&directive, stream);
    let mut headers = common_headers();
    let rendered = if stream {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        Rendered::Events(stream_events(&head, &answer, include_usage))
    } else {
        if fault.is_some_and(|f| f.stream_error_after.is_some()) {
            return send_error(dialect.status_answer(StatusCode::INTERNAL_SERVER_ERROR), fault);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Rendered::Whole(completion(&head, &answer).to_string().into_bytes())
    };
    let in_stream_error = |events: &mut EventBuf| {
        events.data(&json!({"error": {
            "message": "The server had an error while processing your request. Sorry about that!",
            "type": "server_error", "param": null, "code": null}}));
    };
    fault::deliver(fault, rendered, in_stream_error, delivery, headers, &state)
}

/// What every chunk of one completion shares.
struct Head<'a> {
    id: String,
    created: u64,
    model: &'a str,
}

/// The finish reason in OpenAI's spelling; Anthropic spellings in a directive are translated so
/// that one directive reads the same whichever dialect the upstream speaks.
fn finish_reason(answer: &Answer) -> &str {
    match answer.finish.as_deref() {
        Some("max_tokens") => "length",
        Some("end_turn" | "stop_sequence") => "stop",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        Some(other) => other,
        None if answer.tool_calls.is_empty() => "stop",
        None => "tool_calls",
    }
}

#[derive(Serialize)]
struct UsageJson {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: CachedJson,
}

#[derive(Serialize)]
struct CachedJson {
    cached_tokens: u64,
}

fn usage_json(answer: &Answer) -> UsageJson {
    let u = answer.usage;
    UsageJson {
        prompt_tokens: u.input,
        completion_tokens: u.output,
        total_tokens: u.input + u.output,
        prompt_tokens_details: CachedJson { cached_tokens: u.cached },
    }
}

/// The non-streaming `chat.completion` object.
fn completion(head: &Head, answer: &Answer) -> Value {
    let mut message = json!({"role": "assistant", "content": answer.text});
    if let Some(thinking) = &answer.thinking {
        message["reasoning_content"] = json!(thinking);
    }
    if !answer.tool_calls.is_empty() {
        message["tool_calls"] = answer
            .tool_calls
            .iter()
            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}))
            .collect();
    }
    json!({
        "id": head.id,
        "object": "chat.completion",
        "created": head.created,
        "model": head.model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason(answer)}],
        "usage": usage_json(answer),
    })
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChunkChoice<'a>],
    usage: Option<UsageJson>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: (),
    finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// The `chat.completion.chunk` frames of an answer, through `[DONE]`.
fn stream_events(head: &Head, answer: &Answer, include_usage: bool) -> EventBuf {
    let mut events = EventBuf::new();
    let chunk = |events: &mut EventBuf, delta: Delta, finish_reason: Option<&str>| {
        let choice = ChunkChoice { index: 0, delta, logprobs: (), finish_reason };
        events.data(&Chunk {
            id: &head.id,
            object: "chat.completion.chunk",
            created: head.created,
            model: head.model,
            choices: std::slice::from_ref(&choice),
            usage: None,
        });
    };
    let role = Delta { role: Some("assistant"), content: Some(""), ..Delta::default() };
    chunk(&mut events, role, None);
    for piece in answer.thinking.iter().flat_map(|t| char_pieces(t, TEXT_DELTA_CHARS)) {
        let delta = Delta { reasoning_content: Some(piece), ..Delta::default() };
        chunk(&mut events, delta, None);
    }
    for piece in answer.text.iter().flat_map(|t| char_pieces(t, TEXT_DELTA_CHARS)) {
        let delta = Delta { content: Some(piece), ..Delta::default() };
        chunk(&mut events, delta, None);
    }
    for (index, call) in answer.tool_calls.iter().enumerate() {
        let first = ToolCallDelta {
            index,
            id: Some(&call.id),
            kind: Some("function"),
            function: FunctionDelta { name: Some(&call.name), arguments: "" },
        };
        let delta = Delta { tool_calls: Some([first]), ..Delta::default() };
        chunk(&mut events, delta, None);
        for piece in byte_pieces(&call.arguments, ARGUMENT_FRAGMENT_BYTES) {
            let fragment =
                ToolCallDelta { index, id: None, kind: None, function: FunctionDelta { name: None, arguments: piece } };
            let delta = Delta { tool_calls: Some([fragment]), ..Delta::default() };
            chunk(&mut events, delta, None);
        }
    }
    chunk(&mut events, Delta::default(), Some(finish_reason(answer)));
    if include_usage {
        events.data(&Chunk {
            id: &head.id,
            object: "chat.completion.chunk",
            created: head.created,
            model: head.model,
            choices: &[],
            usage: Some(usage_json(answer)),
        });
    }
    events.data_text("[DONE]");
    events
}
