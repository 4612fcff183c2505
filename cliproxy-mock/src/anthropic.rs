//! The Anthropic Messages dialect: `/v1/messages` (JSON and named-event SSE),
//! `/v1/messages/count_tokens`, API-key and OAuth-token authentication, Anthropic error bodies
//! and `anthropic-ratelimit-*` headers (the subscription's unified windows, with status, reset and
//! utilization, for OAuth callers), and the OAuth profile (`GET /api/oauth/profile`).
//!
//! A bearer token needs the `oauth-2025-04-20` beta ("OAuth authentication is currently not supported."
//! otherwise). Tokens issued by the Claude OAuth mock ([`crate::claude_oauth`]) are judged by their account:
//! expired ones get the OAuth-expired 401, revoked ones "Invalid authentication credentials", and an account's
//! scripted fault applies to every request it makes. Other tokens are judged by their spelling.

use std::sync::Arc;

use axum::Router;
use axum::extract::State as Shared;
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};

use crate::accounts::{Account, Accounts, TokenState};
use crate::answer::{ARGUMENT_FRAGMENT_BYTES, Answer, TEXT_DELTA_CHARS, byte_pieces, char_pieces, estimate};
use crate::directive::{self, Directive};
use crate::fault::{self, Dialect, ErrorAnswer, Fault, FaultKind, Rendered};
use crate::state::State;
use crate::writer::{self, Delivery, EventBuf};
use crate::{claude_oauth, clock, ids, keys};

/// The beta flag that lets a bearer OAuth token call the API.
pub const OAUTH_BETA: &str = "oauth-2025-04-20";

/// Thinking text when the request enables thinking and the directive gives none.
pub const DEFAULT_THINKING: &str = "Let me think about this.";

/// Models listed by `GET /v1/models` for Anthropic clients.
pub const MODELS: &[(&str, &str)] = &[
    ("claude-sonnet-4-5", "Claude Sonnet 4.5"),
    ("claude-opus-4-1", "Claude Opus 4.1"),
    ("claude-haiku-4-5", "Claude Haiku 4.5"),
];

/// The 401 message for an expired OAuth access token.
pub const OAUTH_EXPIRED: &str = "OAuth token has expired. Please obtain a new token or refresh your existing token.";

/// The share of the 5-hour window an allowed OAuth answer reports as used (`…-5h-utilization`, 0 to 1).
pub const FIVE_HOUR_UTILIZATION: &str = "0.25";

/// The share of the weekly window an allowed OAuth answer reports as used.
pub const WEEKLY_UTILIZATION: &str = "0.1";

/// The 401 message for a revoked or unknown OAuth access token.
const INVALID_CREDENTIALS: &str = "Invalid authentication credentials";

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/api/oauth/profile", get(profile))
}

/// Anthropic's rendering for one request: errors carry the request's id, and OAuth callers get
/// the subscription ("unified") rate-limit headers.
pub struct Anthropic {
    request_id: String,
    oauth: bool,
    now: u64,
}

impl Anthropic {
    fn new(oauth: bool) -> Anthropic {
        Anthropic { request_id: ids::token("req_011C", 20), oauth, now: clock::unix_now() }
    }

    fn error(&self, status: StatusCode, kind: &str, message: &str) -> ErrorAnswer {
        let body = json!({
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": self.request_id,
        });
        ErrorAnswer::json(status, body.to_string())
    }

    fn bad_request(&self, message: &str) -> ErrorAnswer {
        self.error(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    fn unauthorized(&self, message: &str) -> ErrorAnswer {
        self.error(StatusCode::UNAUTHORIZED, "authentication_error", message)
    }

    fn overloaded(&self) -> ErrorAnswer {
        self.error(
            StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "overloaded_error",
            "Overloaded",
        )
    }

    /// Headers on every response: the request id and the rate-limit state.
    fn common_headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(24);
        insert(&mut headers, "request-id", &self.request_id);
        let reset = clock::rfc3339(self.now + 1);
        for (kind, limit, remaining) in [
            ("requests", "4000", "3999"),
            ("tokens", "2000000", "1999000"),
            ("input-tokens", "2000000", "1999000"),
            ("output-tokens", "400000", "400000"),
        ] {
            insert(&mut headers, &format!("anthropic-ratelimit-{kind}-limit"), limit);
            insert(&mut headers, &format!("anthropic-ratelimit-{kind}-remaining"), remaining);
            insert(&mut headers, &format!("anthropic-ratelimit-{kind}-reset"), &reset);
        }
        if self.oauth {
            let five_hours = (self.now + 5 * 3600).to_string();
            insert(&mut headers, "anthropic-ratelimit-unified-status", "allowed");
            insert(&mut headers, "anthropic-ratelimit-unified-5h-status", "allowed");
            insert(&mut headers, "anthropic-ratelimit-unified-5h-reset", &five_hours);
            insert(&mut headers, "anthropic-ratelimit-unified-5h-utilization", FIVE_HOUR_UTILIZATION);
            insert(&mut headers, "anthropic-ratelimit-unified-7d-status", "allowed");
            insert(&mut headers, "anthropic-ratelimit-unified-7d-reset", &(self.now + 7 * 86_400).to_string());
            insert(&mut headers, "anthropic-ratelimit-unified-7d-utilization", WEEKLY_UTILIZATION);
            insert(&mut headers, "anthropic-ratelimit-unified-reset", &five_hours);
        }
        headers
    }

    fn send(&self, answer: ErrorAnswer, fault: Option<&Fault>) -> Response {
        answer.into_response(self.common_headers(), fault)
    }
}

impl Dialect for Anthropic {
    fn kind_answer(&self, kind: FaultKind, fault: &Fault) -> ErrorAnswer {
        match kind {
            FaultKind::RateLimit => {
                let secs = fault.retry_after_secs();
                let mut answer = self.error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    "This request would exceed the rate limit for your organization of 4,000 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits.",
                );
                let reset = (self.now + secs).to_string();
                let headers = &mut answer.headers;
                insert(headers, "retry-after", &fault.retry_after());
                insert(headers, "anthropic-ratelimit-requests-remaining", "0");
                insert(
                    headers,
                    "anthropic-ratelimit-requests-reset",
                    &clock::rfc3339(self.now + secs),
                );
                insert(headers, "anthropic-ratelimit-unified-status", "rejected");
                insert(headers, "anthropic-ratelimit-unified-5h-status", "rejected");
                insert(headers, "anthropic-ratelimit-unified-5h-reset", &reset);
                insert(headers, "anthropic-ratelimit-unified-5h-utilization", "1.0");
                insert(headers, "anthropic-ratelimit-unified-reset", &reset);
                answer
            }
            // A subscription's weekly limit is a 429 with the 7-day window rejected; an API
            // key's empty balance is a billing error.
            FaultKind::Quota if self.oauth => {
                let mut answer = self.error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    "You have reached your weekly usage limit.",
                );
                let reset = (self.now + 3 * 86_400).to_string();
                let headers = &mut answer.headers;
                insert(headers, "anthropic-ratelimit-unified-status", "rejected");
                insert(headers, "anthropic-ratelimit-unified-7d-status", "rejected");
                insert(headers, "anthropic-ratelimit-unified-7d-reset", &reset);
                insert(headers, "anthropic-ratelimit-unified-7d-utilization", "1.0");
                insert(headers, "anthropic-ratelimit-unified-reset", &reset);
                answer
            }
            FaultKind::Quota => self.error(
                StatusCode::BAD_REQUEST,
                "billing_error",
                "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
            ),
            FaultKind::InvalidKey if self.oauth => {
                self.unauthorized("Invalid authentication credentials")
            }
            FaultKind::InvalidKey => self.unauthorized("invalid x-api-key"),
            FaultKind::Overloaded => self.overloaded(),
            FaultKind::ServerError => self.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "Internal server error",
            ),
        }
    }

    fn status_answer(&self, status: StatusCode) -> ErrorAnswer {
        let (kind, message) = match status.as_u16() {
            400 => ("invalid_request_error", "Invalid request"),
            401 => ("authentication_error", "invalid x-api-key"),
            402 => ("billing_error", "Your credit balance is too low to access the Anthropic API."),
            403 => ("permission_error", "Your API key does not have permission to use the specified resource."),
            404 => ("not_found_error", "The requested resource could not be found."),
            413 => ("request_too_large", "Request exceeds the maximum allowed size."),
            429 => ("rate_limit_error", "This request would exceed the rate limit for your organization."),
            529 => ("overloaded_error", "Overloaded"),
            s if s >= 500 => ("api_error", "Internal server error"),
            _ => ("invalid_request_error", "Invalid request"),
        };
        self.error(status, kind, message)
    }
}

fn insert(headers: &mut HeaderMap, name: &str, value: &str) {
    if let (Ok(name), Ok(value)) = (http::HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
        headers.insert(name, value);
    }
}

/// An accepted caller.
enum Caller {
    ApiKey,
    /// An OAuth token, with its account when the Claude OAuth mock issued it.
    OAuth(Option<Account>),
}

impl Caller {
    fn is_oauth(auth: &Result<Caller, &str>) -> bool {
        matches!(auth, Ok(Caller::OAuth(_)))
    }
}

/// The credential of a request (for hit counting) and whether it is accepted, or the 401 message.
fn authenticate<'h>(headers: &'h HeaderMap, accounts: &Accounts) -> (Option<&'h str>, Result<Caller, &'static str>) {
    if let Some(key) = keys::header(headers, "x-api-key") {
        let verdict = if keys::is_valid_key(key) { Ok(Caller::ApiKey) } else { Err("invalid x-api-key") };
        return (Some(key), verdict);
    }
    let Some(token) = keys::bearer(headers) else {
        return (None, Err("x-api-key header is required"));
    };
    if !keys::list_header_contains(headers, "anthropic-beta", OAUTH_BETA) {
        return (Some(token), Err("OAuth authentication is currently not supported."));
    }
    let verdict = match accounts.access(token) {
        TokenState::Valid(account) => Ok(Caller::OAuth(Some(account))),
        TokenState::Expired => Err(OAUTH_EXPIRED),
        TokenState::Revoked => Err(INVALID_CREDENTIALS),
        TokenState::Unknown if token.starts_with("sk-ant-oat") && keys::names_any(token, &["expired"]) => {
            Err(OAUTH_EXPIRED)
        }
        TokenState::Unknown if keys::is_valid_key(token) => Ok(Caller::OAuth(None)),
        TokenState::Unknown => Err(INVALID_CREDENTIALS),
    };
    (Some(token), verdict)
}

/// A request that passed the checks both endpoints share.
struct Checked {
    dialect: Anthropic,
    request: Value,
    caller: Caller,
}

/// Version header, credential, JSON body and the fields both endpoints need; `max_tokens` only
/// for `messages`. A rejection is boxed: a response is large and rejections are the rare path.
fn check(state: &State, headers: &HeaderMap, body: &[u8], needs_max_tokens: bool) -> Result<Checked, Box<Response>> {
    let (_, auth) = authenticate(headers, &state.issuers.claude);
    let dialect = Anthropic::new(Caller::is_oauth(&auth));
    if keys::header(headers, "anthropic-version").is_none() {
        return Err(Box::new(dialect.send(dialect.bad_request("anthropic-version: header is required"), None)));
    }
    let caller = match auth {
        Ok(caller) => caller,
        Err(message) => return Err(Box::new(dialect.send(dialect.unauthorized(message), None))),
    };
    let request: Value = match serde_json::from_slice(body) {
        Ok(request @ Value::Object(_)) => request,
        _ => {
            return Err(Box::new(dialect.send(
                dialect.bad_request(
                    "There was an error parsing the body of your request. Please check that it is valid JSON.",
                ),
                None,
            )));
        }
    };
    let required: &[&str] =
        if needs_max_tokens { &["model", "max_tokens", "messages"] } else { &["model", "messages"] };
    if let Some(missing) = required.iter().find(|f| request.get(**f).is_none()) {
        let message = format!("{missing}: Field required");
        return Err(Box::new(dialect.send(dialect.bad_request(&message), None)));
    }
    Ok(Checked { dialect, request, caller })
}

/// The directive among the system prompt and the messages.
fn find_directive(request: &Value) -> Result<Directive, String> {
    let mut texts = Vec::new();
    if let Some(system) = request.get("system") {
        directive::content_texts(system, &mut texts);
    }
    if let Some(messages) = request.get("messages").and_then(Value::as_array) {
        directive::message_texts(messages, &mut texts);
    }
    Directive::find(texts).map(Option::unwrap_or_default)
}

async fn count_tokens(Shared(state): Shared<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    let key = keys::header(&headers, "x-api-key").or_else(|| keys::bearer(&headers));
    state.count_hit(key);
    let Checked { dialect, request, .. } = match check(&state, &headers, &body, false) {
        Ok(checked) => checked,
        Err(response) => return *response,
    };
    let directive = match find_directive(&request) {
        Ok(directive) => directive,
        Err(message) => return dialect.send(dialect.bad_request(&message), None),
    };
    // The counter is rate limited and overloaded like the rest of the API: scripted faults apply here too.
    let model = request.get("model").and_then(Value::as_str).unwrap_or("");
    if let Some(fault) = directive.fault_for(key, None, model) {
        fault.hang().await;
        if let Some(answer) = fault.error_answer(&dialect) {
            return dialect.send(answer, Some(fault));
        }
    }
    let input = directive.usage.and_then(|u| u.input).unwrap_or_else(|| estimate(body.len()));
    let mut headers = dialect.common_headers();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let body = json!({ "input_tokens": input }).to_string();
    writer::whole(StatusCode::OK, headers, body.into())
}

async fn messages(Shared(state): Shared<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    let key = keys::header(&headers, "x-api-key").or_else(|| keys::bearer(&headers));
    state.count_hit(key);
    let Checked { dialect, request, caller } = match check(&state, &headers, &body, true) {
        Ok(checked) => checked,
        Err(response) => return *response,
    };
    let directive = match find_directive(&request) {
        Ok(directive) => directive,
        Err(message) => return dialect.send(dialect.bad_request(&message), None),
    };
    let model = request.get("model").and_then(Value::as_str).unwrap_or("");
    let account_fault = match &caller {
        Caller::OAuth(Some(account)) => account.fault.as_deref(),
        _ => None,
    };
    let fault = directive.fault_for(key, account_fault, model);
    if let Some(fault) = fault {
        fault.hang().await;
        if let Some(answer) = fault.error_answer(&dialect) {
            return dialect.send(answer, Some(fault));
        }
    }
    let mut answer = Answer::new(&directive, body.len(), "toolu_");
    let thinking_enabled =
        matches!(request.pointer("/thinking/type").and_then(Value::as_str), Some("enabled" | "adaptive"));
    if answer.thinking.is_none() && thinking_enabled {
        answer.thinking = Some(DEFAULT_THINKING.to_owned());
    }
    let stream = request.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let message = MessageHead {
        id: ids::token("msg_01", 22),
        model,
        signature: answer.thinking.as_ref().map(|_| ids::token("EqQBCkgIBRABGAIiQ", 96)),
    };
    let delivery = Delivery::new(&directive, stream);
    let mut headers = dialect.common_headers();
    let rendered = if stream {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert("cache-control", HeaderValue::from_static("no-cache"));
        Rendered::Events(stream_events(&message, &answer))
    } else {
        if fault.is_some_and(|f| f.stream_error_after.is_some()) {
            return dialect.send(dialect.overloaded(), fault);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Rendered::Whole(message_json(&message, &answer).to_string().into_bytes())
    };
    let in_stream_error = |events: &mut EventBuf| {
        events.event(
            "error",
            &json!({"type": "error",
                "error": {"type": "overloaded_error", "message": "Overloaded"},
                "request_id": dialect.request_id}),
        );
    };
    fault::deliver(fault, rendered, in_stream_error, delivery, headers, &state)
}

/// `GET /api/oauth/profile`: the account and organization of an OAuth token the mock issued.
async fn profile(Shared(state): Shared<Arc<State>>, headers: HeaderMap) -> Response {
    let (_, auth) = authenticate(&headers, &state.issuers.claude);
    let dialect = Anthropic::new(Caller::is_oauth(&auth));
    let account = match auth {
        Ok(Caller::OAuth(Some(account))) => account,
        Ok(_) => return dialect.send(dialect.unauthorized(INVALID_CREDENTIALS), None),
        Err(message) => return dialect.send(dialect.unauthorized(message), None),
    };
    let mut headers = dialect.common_headers();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    writer::whole(StatusCode::OK, headers, claude_oauth::profile(&account).to_string().into())
}

/// The Anthropic-shaped models list (`GET /v1/models` with an `anthropic-version` header).
pub(crate) fn models(state: &State, headers: &HeaderMap) -> Response {
    let (_, auth) = authenticate(headers, &state.issuers.claude);
    let dialect = Anthropic::new(Caller::is_oauth(&auth));
    if let Err(message) = auth {
        return dialect.send(dialect.unauthorized(message), None);
    }
    let data: Vec<Value> = MODELS
        .iter()
        .map(|(id, name)| {
            json!({"type": "model", "id": id, "display_name": name,
                "created_at": "2025-09-29T00:00:00Z"})
        })
        .collect();
    let body = json!({
        "data": data,
        "has_more": false,
        "first_id": MODELS.first().map(|m| m.0),
        "last_id": MODELS.last().map(|m| m.0),
    });
    let mut headers = dialect.common_headers();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    writer::whole(StatusCode::OK, headers, body.to_string().into())
}

/// What the message start and the JSON message share.
struct MessageHead<'a> {
    id: String,
    model: &'a str,
    signature: Option<String>,
}

/// The stop reason in Anthropic's spelling; OpenAI spellings in a directive are translated so
/// that one directive reads the same whichever dialect the upstream speaks.
fn stop_reason(answer: &Answer) -> &str {
    match answer.finish.as_deref() {
        Some("length") => "max_tokens",
        Some("stop") => "end_turn",
        Some("tool_calls") => "tool_use",
        Some("content_filter") => "refusal",
        Some(other) => other,
        None if answer.tool_calls.is_empty() => "end_turn",
        None => "tool_use",
    }
}

fn usage_json(answer: &Answer, output: u64) -> Value {
    json!({
        "input_tokens": answer.usage.input,
        "output_tokens": output,
        "cache_creation_input_tokens": answer.usage.cache_creation,
        "cache_read_input_tokens": answer.usage.cached,
    })
}

/// The non-streaming Message.
fn message_json(head: &MessageHead, answer: &Answer) -> Value {
    let mut content = Vec::new();
    if let Some(thinking) = &answer.thinking {
        content.push(json!({"type": "thinking", "thinking": thinking, "signature": head.signature}));
    }
    if let Some(text) = &answer.text {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in &answer.tool_calls {
        let input: Value = serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!(call.arguments));
        content.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
    }
    json!({
        "id": head.id,
        "type": "message",
        "role": "assistant",
        "model": head.model,
        "content": content,
        "stop_reason": stop_reason(answer),
        "stop_sequence": null,
        "usage": usage_json(answer, answer.usage.output),
    })
}

#[derive(Serialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: usize,
    delta: DeltaBody<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum DeltaBody<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

/// Writes content blocks with consecutive indexes.
struct Blocks {
    events: EventBuf,
    index: usize,
}

impl Blocks {
    fn block<'a>(&mut self, start: Value, deltas: impl Iterator<Item = DeltaBody<'a>>) {
        let index = self.index;
        self.events.event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": start}),
        );
        for delta in deltas {
            self.events.event("content_block_delta", &BlockDelta { kind: "content_block_delta", index, delta });
        }
        self.events.event("content_block_stop", &json!({"type": "content_block_stop", "index": index}));
        self.index += 1;
    }
}

/// The named events of a streamed Message, through `message_stop`.
fn stream_events(head: &MessageHead, answer: &Answer) -> EventBuf {
    let mut events = EventBuf::new();
    events.event(
        "message_start",
        &json!({"type": "message_start", "message": {
            "id": head.id, "type": "message", "role": "assistant", "model": head.model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": usage_json(answer, 1),
        }}),
    );
    events.event("ping", &json!({"type": "ping"}));
    let mut blocks = Blocks { events, index: 0 };
    if let Some(thinking) = &answer.thinking {
        let signature = head.signature.as_deref().unwrap_or_default();
        let deltas = char_pieces(thinking, TEXT_DELTA_CHARS)
            .map(|thinking| DeltaBody::Thinking { thinking })
            .chain(std::iter::once(DeltaBody::Signature { signature }));
        blocks.block(json!({"type": "thinking", "thinking": ""}), deltas);
    }
    if let Some(text) = &answer.text {
        let deltas = char_pieces(text, TEXT_DELTA_CHARS).map(|text| DeltaBody::Text { text });
        blocks.block(json!({"type": "text", "text": ""}), deltas);
    }
    for call in &answer.tool_calls {
        let deltas = byte_pieces(&call.arguments, ARGUMENT_FRAGMENT_BYTES)
            .map(|partial_json| DeltaBody::InputJson { partial_json });
        blocks.block(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": {}}), deltas);
    }
    let mut events = blocks.events;
    events.event(
        "message_delta",
        &json!({"type": "message_delta",
            "delta": {"stop_reason": stop_reason(answer), "stop_sequence": null},
            "usage": {"output_tokens": answer.usage.output}}),
    );
    events.event("message_stop", &json!({"type": "message_stop"}));
    events
}
