//! The Gemini API (generativelanguage.googleapis.com) and what Code Assist ([`crate::code_assist`]) shares with
//! it: `generateContent` answers, their streamed chunks, and Google's error shape.
//!
//! # Endpoints
//! `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent` (SSE `data:` chunks with
//! `?alt=sse`, no `[DONE]`; without it the JSON-array stream the real API sends), `:countTokens`, and
//! `GET /v1beta/models` (plus `GET /v1beta/models/{model}`). The key comes in `x-goog-api-key` or `?key=` and
//! is valid when spelled `AIza…` without `bad`, `invalid` or `revoked` (400 `API_KEY_INVALID` otherwise); a
//! Google OAuth bearer works too (issued by [`crate::google_oauth`], or spelled `ya29.…`); neither gives 403
//! `PERMISSION_DENIED`.
//!
//! # Answers
//! Text, thought parts (`"thought": true`) and `functionCall` parts; streamed text comes a few characters per
//! chunk, each function call whole in one chunk, and `finishReason` with `usageMetadata` on the last chunk
//! only. Errors are `{"error":{"code","message","status","details"}}`. Fault kinds: `rate_limit` → 429
//! `RESOURCE_EXHAUSTED` whose `details` hold a `google.rpc.QuotaFailure` with a `…PerMinute…` quotaId and a
//! `google.rpc.RetryInfo` `retryDelay` of `retry_after` seconds; `quota` → the same with a `…PerDay…` quotaId;
//! `invalid_key` → 400 `API_KEY_INVALID` (401 `UNAUTHENTICATED` for a bearer); `overloaded` → 503
//! `UNAVAILABLE`; `server_error` → 500 `INTERNAL`; `stream_error_after` → a `data: {"error":…}` chunk. A
//! fault's `model` limits it to one model.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State as Shared};
use axum::response::Response;
use axum::routing::get;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};

use crate::accounts::{Account, TokenState};
use crate::answer::{Answer, TEXT_DELTA_CHARS, char_pieces, estimate};
use crate::directive::Directive;
use crate::fault::{self, Dialect, ErrorAnswer, Fault, FaultKind, Rendered};
use crate::state::State;
use crate::writer::{self, Delivery, EventBuf};
use crate::{ids, keys};

/// Models served, with their display names.
pub const MODELS: &[(&str, &str)] = &[
    ("gemini-2.5-pro", "Gemini 2.5 Pro"),
    ("gemini-2.5-flash", "Gemini 2.5 Flash"),
    ("gemini-2.5-flash-lite", "Gemini 2.5 Flash-Lite"),
    ("gemini-2.0-flash", "Gemini 2.0 Flash"),
    ("gemini-3-pro-preview", "Gemini 3 Pro Preview"),
];

/// Thinking text when the request asks for thoughts (`thinkingConfig.includeThoughts`) and the directive gives
/// none.
pub const DEFAULT_THINKING: &str = "Let me think about this.";

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new().route("/v1beta/models", get(list_models)).route("/v1beta/models/{call}", get(get_model).post(call))
}

/// Which Google service answers: it names the `domain` of error details and shapes quota errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Service {
    GenerativeLanguage,
    CodeAssist,
}

/// Google's error rendering for one request.
pub(crate) struct Google<'a> {
    pub service: Service,
    pub model: &'a str,
    /// The caller used an OAuth bearer rather than an API key.
    pub bearer: bool,
}

/// `{"error":{"code","message","status","details"?}}`.
pub(crate) fn google_error(status: StatusCode, rpc: &str, message: &str, details: Vec<Value>) -> ErrorAnswer {
    let mut error = json!({"code": status.as_u16(), "message": message, "status": rpc});
    if !details.is_empty() {
        error["details"] = Value::Array(details);
    }
    ErrorAnswer::json(status, json!({ "error": error }).to_string())
}

pub(crate) fn invalid_argument(message: &str) -> ErrorAnswer {
    google_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message, Vec::new())
}

pub(crate) fn not_found(message: &str) -> ErrorAnswer {
    google_error(StatusCode::NOT_FOUND, "NOT_FOUND", message, Vec::new())
}

/// The 401 for a missing, invalid or (with `expired`) expired OAuth token.
pub(crate) fn unauthenticated(expired: bool) -> ErrorAnswer {
    let details = if expired {
        vec![json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "ACCESS_TOKEN_EXPIRED",
            "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}})]
    } else {
        Vec::new()
    };
    google_error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        details,
    )
}

fn invalid_api_key() -> ErrorAnswer {
    let message = "API key not valid. Please pass a valid API key.";
    google_error(
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        message,
        vec![
            json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}),
            json!({"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": message}),
        ],
    )
}

/// `2h3m4s` for a number of seconds, as Code Assist words its quota resets.
fn hms(secs: u64) -> String {
    format!("{}h{}m{}s", secs / 3600, secs / 60 % 60, secs % 60)
}

impl Google<'_> {
    /// The 429 `RESOURCE_EXHAUSTED` answer: a per-minute (`daily` false) or per-day quota of the model, to be
    /// retried after `secs`.
    fn exhausted(&self, daily: bool, secs: u64) -> ErrorAnswer {
        let model = self.model;
        let period = if daily { "PerDay" } else { "PerMinute" };
        let retry = json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{secs}s")});
        let (message, first, quota_id, metric) = match self.service {
            Service::GenerativeLanguage => (
                format!(
                    "You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n* Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: {}, model: {model}\nPlease retry in {secs}s.",
                    if daily { 250 } else { 10 }
                ),
                json!({"@type": "type.googleapis.com/google.rpc.Help", "links": [{"description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]}),
                format!("GenerateRequests{period}PerProjectPerModel-FreeTier"),
                "generativelanguage.googleapis.com/generate_content_free_tier_requests",
            ),
            Service::CodeAssist => {
                let (reason, message) = if daily {
                    (
                        "QUOTA_EXHAUSTED",
                        format!(
                            "You have exhausted your capacity on this model. Your quota will reset after {}.",
                            hms(secs)
                        ),
                    )
                } else {
                    ("RATE_LIMIT_EXCEEDED", "Resource has been exhausted (e.g. check quota).".to_owned())
                };
                (
                    message,
                    json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                        "domain": "cloudcode-pa.googleapis.com",
                        "metadata": {"model": model, "quotaResetDelay": format!("{secs}s")}}),
                    format!("GenerateContentRequests{period}PerUserPerModel"),
                    "cloudcode-pa.googleapis.com/generate_content_requests",
                )
            }
        };
        let failure = json!({"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
            "quotaMetric": metric, "quotaId": quota_id,
            "quotaDimensions": {"location": "global", "model": model}, "quotaValue": if daily { "250" } else { "10" }}]});
        google_error(StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED", &message, vec![first, failure, retry])
    }
}

impl Dialect for Google<'_> {
    fn kind_answer(&self, kind: FaultKind, fault: &Fault) -> ErrorAnswer {
        match kind {
            FaultKind::RateLimit => self.exhausted(false, fault.retry_after_secs()),
            FaultKind::Quota => self.exhausted(true, fault.retry_after_secs()),
            FaultKind::InvalidKey if self.bearer => unauthenticated(false),
            FaultKind::InvalidKey => invalid_api_key(),
            FaultKind::Overloaded => self.status_answer(StatusCode::SERVICE_UNAVAILABLE),
            FaultKind::ServerError => self.status_answer(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    fn status_answer(&self, status: StatusCode) -> ErrorAnswer {
        let (rpc, message) = match status.as_u16() {
            400 => ("INVALID_ARGUMENT", "Request contains an invalid argument."),
            401 => return unauthenticated(false),
            403 => ("PERMISSION_DENIED", "The caller does not have permission"),
            404 => ("NOT_FOUND", "Requested entity was not found."),
            429 => return self.exhausted(false, fault::DEFAULT_RETRY_AFTER),
            500 => (
                "INTERNAL",
                "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
            ),
            503 => ("UNAVAILABLE", "The model is overloaded. Please try again later."),
            504 => ("DEADLINE_EXCEEDED", "The request timed out. Please try again."),
            _ => ("UNKNOWN", status.canonical_reason().unwrap_or("Unknown error")),
        };
        google_error(status, rpc, message, Vec::new())
    }
}

/// The account of a Google OAuth bearer token: `Some` for a token the mock issued, `None` for one it did not
/// but that is spelled `ya29.…` without `bad`, `invalid`, `revoked` or `expired`; otherwise the 401.
pub(crate) fn bearer_account(state: &State, token: &str) -> Result<Option<Account>, Box<ErrorAnswer>> {
    match state.issuers.google.access(token) {
        TokenState::Valid(account) => Ok(Some(account)),
        TokenState::Expired => Err(Box::new(unauthenticated(true))),
        TokenState::Revoked => Err(Box::new(unauthenticated(false))),
        TokenState::Unknown if keys::names_any(token, &["expired"]) => Err(Box::new(unauthenticated(true))),
        TokenState::Unknown if keys::is_valid_spelling(token, "ya29.") => Ok(None),
        TokenState::Unknown => Err(Box::new(unauthenticated(false))),
    }
}

/// An authenticated Gemini API caller: its credential (for hits and `per_key` faults) and, for a bearer the
/// mock issued, its account.
struct Caller<'a> {
    key: &'a str,
    bearer: bool,
    account: Option<Account>,
}

fn authenticate<'a>(
    state: &State,
    headers: &'a HeaderMap,
    query: Option<&'a str>,
) -> Result<Caller<'a>, Box<ErrorAnswer>> {
    let key = keys::header(headers, "x-goog-api-key").or_else(|| query.and_then(|q| keys::query_param(q, "key")));
    if let Some(key) = key {
        return match keys::is_valid_spelling(key, "AIza") {
            true => Ok(Caller { key, bearer: false, account: None }),
            false => Err(Box::new(invalid_api_key())),
        };
    }
    if let Some(token) = keys::bearer(headers) {
        let account = bearer_account(state, token)?;
        return Ok(Caller { key: token, bearer: true, account });
    }
    Err(Box::new(google_error(
        StatusCode::FORBIDDEN,
        "PERMISSION_DENIED",
        "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
        Vec::new(),
    )))
}

/// An error answer with Google's content type and no other headers.
pub(crate) fn send(answer: ErrorAnswer, fault: Option<&Fault>) -> Response {
    answer.into_response(HeaderMap::new(), fault)
}

fn model_json(id: &str, name: &str) -> Value {
    json!({
        "name": format!("models/{id}"), "version": "001", "displayName": name,
        "description": format!("{name} (mock)"), "inputTokenLimit": 1_048_576, "outputTokenLimit": 65_536,
        "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"],
        "temperature": 1.0, "topP": 0.95, "topK": 64, "maxTemperature": 2.0, "thinking": true,
    })
}

async fn list_models(Shared(state): Shared<Arc<State>>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    if let Err(answer) = authenticate(&state, &headers, query.as_deref()) {
        return send(*answer, None);
    }
    let models: Vec<Value> = MODELS.iter().map(|(id, name)| model_json(id, name)).collect();
    writer::json(StatusCode::OK, &json!({ "models": models }))
}

async fn get_model(
    Shared(state): Shared<Arc<State>>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(answer) = authenticate(&state, &headers, query.as_deref()) {
        return send(*answer, None);
    }
    match MODELS.iter().find(|(m, _)| *m == id) {
        Some((id, name)) => writer::json(StatusCode::OK, &model_json(id, name)),
        None => send(not_found(&format!("models/{id} is not found for API version v1beta")), None),
    }
}

/// `POST /v1beta/models/{model}:{method}`.
async fn call(
    Shared(state): Shared<Arc<State>>,
    Path(call): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((model, method)) = call.split_once(':') else {
        return send(not_found(&format!("Method not found: models/{call}")), None);
    };
    let stream = match method {
        "generateContent" => None,
        "streamGenerateContent" => Some(Framing::from_query(query.as_deref())),
        "countTokens" => return count_tokens(&state, &headers, query.as_deref(), &body),
        _ => return send(not_found(&format!("Method not found: {method}")), None),
    };
    state.count_hit(keys::credential(&headers, query.as_deref()));
    let caller = match authenticate(&state, &headers, query.as_deref()) {
        Ok(caller) => caller,
        Err(answer) => return send(*answer, None),
    };
    let dialect = Google { service: Service::GenerativeLanguage, model, bearer: caller.bearer };
    if !MODELS.iter().any(|(m, _)| *m == model) {
        let message = format!(
            "models/{model} is not found for API version v1beta, or is not supported for {method}. Call ListModels to see the list of available models and their supported methods."
        );
        return send(not_found(&message), None);
    }
    let request = match json_object(&body).and_then(|r| check_contents(&r).map(|()| r)) {
        Ok(request) => request,
        Err(answer) => return send(*answer, None),
    };
    let account_fault = caller.account.as_ref().and_then(|a| a.fault.as_deref());
    let reply = Reply { model, response_id: ids::token("", 22), wrap: None, stream };
    reply.deliver(&state, &dialect, &request, body.len(), Some(caller.key), account_fault).await
}

/// A request body that must be a JSON object.
pub(crate) fn json_object(body: &[u8]) -> Result<Value, Box<ErrorAnswer>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(request @ Value::Object(_)) => Ok(request),
        _ => Err(Box::new(invalid_argument("Invalid JSON payload received. Expected an object."))),
    }
}

/// A `generateContent` request needs non-empty `contents`.
pub(crate) fn check_contents(request: &Value) -> Result<(), Box<ErrorAnswer>> {
    match request.get("contents").and_then(Value::as_array) {
        Some(contents) if !contents.is_empty() => Ok(()),
        _ => Err(Box::new(invalid_argument("* GenerateContentRequest.contents: contents is not specified\n"))),
    }
}

fn count_tokens(state: &State, headers: &HeaderMap, query: Option<&str>, body: &[u8]) -> Response {
    let request = match authenticate(state, headers, query).and_then(|_| json_object(body)) {
        Ok(request) => request,
        Err(answer) => return send(*answer, None),
    };
    let inner = request.get("generateContentRequest").unwrap_or(&request);
    match total_tokens(inner, body.len()) {
        Ok(total) => writer::json(
            StatusCode::OK,
            &json!({"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]}),
        ),
        Err(answer) => send(*answer, None),
    }
}

/// The token count of a request with `contents`: the directive's `usage.input`, else the estimate for
/// `body_len` bytes.
pub(crate) fn total_tokens(request: &Value, body_len: usize) -> Result<u64, Box<ErrorAnswer>> {
    if request.get("contents").and_then(Value::as_array).is_none() {
        return Err(Box::new(invalid_argument("* CountTokensRequest.contents: contents is not specified\n")));
    }
    let directive =
        Directive::find(request_texts(request).iter().copied()).map_err(|e| Box::new(invalid_argument(&e)))?;
    Ok(directive.and_then(|d| d.usage).and_then(|u| u.input).unwrap_or_else(|| estimate(body_len)))
}

/// The texts of a `generateContent` request a directive may hide in: `systemInstruction` and `contents` text
/// parts, and the string values of `functionResponse.response`.
pub(crate) fn request_texts(request: &Value) -> Vec<&str> {
    let mut texts = Vec::new();
    let system = request.get("systemInstruction").or_else(|| request.get("system_instruction"));
    let contents = request.get("contents").and_then(Value::as_array).into_iter().flatten();
    for content in system.into_iter().chain(contents) {
        for part in content.get("parts").and_then(Value::as_array).into_iter().flatten() {
            if let Some(text) = part.get("text").and_then(Value::as_str) {
                texts.push(text);
            }
            if let Some(response) = part.pointer("/functionResponse/response") {
                strings(response, &mut texts);
            }
        }
    }
    texts
}

fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// How a streamed answer is framed: SSE with `?alt=sse`, else one JSON array written piece by piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Sse,
    JsonArray,
}

impl Framing {
    pub fn from_query(query: Option<&str>) -> Framing {
        if query.and_then(|q| keys::query_param(q, "alt")) == Some("sse") { Framing::Sse } else { Framing::JsonArray }
    }

    fn content_type(self) -> &'static str {
        match self {
            Framing::Sse => "text/event-stream",
            Framing::JsonArray => "application/json; charset=UTF-8",
        }
    }

    /// One chunk as the next event; a JSON array's first chunk opens it.
    fn push(self, events: &mut EventBuf, chunk: &Value) {
        match self {
            Framing::Sse => events.data(chunk),
            Framing::JsonArray => {
                let lead: &[u8] = if events.events() == 0 { b"[" } else { b",\r\n" };
                events.raw(&[lead, chunk.to_string().as_bytes()].concat());
            }
        }
    }

    /// Ends the stream (a JSON array's closing bracket is an event of its own).
    fn close(self, events: &mut EventBuf) {
        if self == Framing::JsonArray {
            let close: &[u8] = if events.events() == 0 { b"[]" } else { b"]" };
            events.raw(close);
        }
    }
}

/// Gemini's spelling of the finish reason; other dialects' spellings in a directive are translated.
fn finish_reason(answer: &Answer) -> String {
    match answer.finish.as_deref() {
        None | Some("stop" | "end_turn" | "stop_sequence" | "tool_calls" | "tool_use") => "STOP".to_owned(),
        Some("length" | "max_tokens") => "MAX_TOKENS".to_owned(),
        Some("content_filter" | "refusal") => "SAFETY".to_owned(),
        Some(other) => other.to_ascii_uppercase(),
    }
}

fn usage_metadata(answer: &Answer) -> Value {
    let u = answer.usage;
    let mut usage = json!({"promptTokenCount": u.input, "candidatesTokenCount": u.output,
        "totalTokenCount": u.input + u.output});
    if u.cached > 0 {
        usage["cachedContentTokenCount"] = json!(u.cached);
    }
    if let Some(thinking) = &answer.thinking {
        usage["thoughtsTokenCount"] = json!(estimate(thinking.chars().count()));
    }
    usage
}

fn function_call(call: &crate::answer::ToolCall) -> Value {
    let args: Value = serde_json::from_str(&call.arguments).unwrap_or_else(|_| json!(call.arguments));
    json!({"functionCall": {"name": call.name, "args": args}})
}

/// One answer rendered as `generateContent` responses.
pub(crate) struct Reply<'a> {
    pub model: &'a str,
    pub response_id: String,
    /// Code Assist wraps every response: `{"response": …, "traceId": …}`.
    pub wrap: Option<&'a str>,
    /// Streamed, and how; `None` for one whole response.
    pub stream: Option<Framing>,
}

impl Reply<'_> {
    /// One response holding `parts`; the `last` one also carries the finish reason and the usage.
    fn response(&self, parts: Vec<Value>, last: Option<&Answer>) -> Value {
        let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if let Some(answer) = last {
            candidate["finishReason"] = json!(finish_reason(answer));
        }
        let mut response =
            json!({"candidates": [candidate], "modelVersion": self.model, "responseId": self.response_id});
        if let Some(answer) = last {
            response["usageMetadata"] = usage_metadata(answer);
        }
        match self.wrap {
            Some(trace) => json!({"response": response, "traceId": trace}),
            None => response,
        }
    }

    /// The whole answer as one response.
    fn whole(&self, answer: &Answer) -> Value {
        let thought = answer.thinking.iter().map(|t| json!({"text": t, "thought": true}));
        let text = answer.text.iter().map(|t| json!({"text": t}));
        let calls = answer.tool_calls.iter().map(function_call);
        self.response(thought.chain(text).chain(calls).collect(), Some(answer))
    }

    /// The streamed chunks: thoughts and text a few characters each, every call whole, and `finishReason` with
    /// `usageMetadata` on the last.
    fn chunks(&self, answer: &Answer) -> Vec<Value> {
        let thought = answer
            .thinking
            .iter()
            .flat_map(|t| char_pieces(t, TEXT_DELTA_CHARS))
            .map(|p| json!({"text": p, "thought": true}));
        let text = answer.text.iter().flat_map(|t| char_pieces(t, TEXT_DELTA_CHARS)).map(|p| json!({"text": p}));
        let calls = answer.tool_calls.iter().map(function_call);
        let mut parts: Vec<Value> = thought.chain(text).chain(calls).collect();
        if parts.is_empty() {
            parts.push(json!({"text": ""}));
        }
        let last = parts.len() - 1;
        parts
            .into_iter()
            .enumerate()
            .map(|(n, part)| self.response(vec![part], (n == last).then_some(answer)))
            .collect()
    }

    /// Answers a `generateContent` request (`request` is the inner one for Code Assist) as scripted: the
    /// fault's error, or the answer whole or streamed, broken as the fault asks.
    pub async fn deliver(
        &self,
        state: &Arc<State>,
        dialect: &Google<'_>,
        request: &Value,
        body_len: usize,
        key: Option<&str>,
        account_fault: Option<&Fault>,
    ) -> Response {
        let directive = match Directive::find(request_texts(request)) {
            Ok(found) => found.unwrap_or_default(),
            Err(message) => return send(invalid_argument(&message), None),
        };
        let fault = directive.fault_for(key, account_fault, self.model);
        if let Some(fault) = fault {
            fault.hang().await;
            if let Some(answer) = fault.error_answer(dialect) {
                return send(answer, Some(fault));
            }
        }
        let mut answer = Answer::new(&directive, body_len, "call_");
        let wants_thoughts =
            request.pointer("/generationConfig/thinkingConfig/includeThoughts") == Some(&Value::Bool(true));
        if answer.thinking.is_none() && wants_thoughts {
            answer.thinking = Some(DEFAULT_THINKING.to_owned());
        }
        let mut headers = HeaderMap::new();
        let (rendered, framing, total) = match self.stream {
            Some(framing) => {
                let mut events = EventBuf::new();
                for chunk in self.chunks(&answer) {
                    framing.push(&mut events, &chunk);
                }
                framing.close(&mut events);
                let total = events.events();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(framing.content_type()));
                (Rendered::Events(events), framing, total)
            }
            None => {
                if fault.is_some_and(|f| f.stream_error_after.is_some()) {
                    return send(dialect.status_answer(StatusCode::INTERNAL_SERVER_ERROR), fault);
                }
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json; charset=UTF-8"));
                (Rendered::Whole(self.whole(&answer).to_string().into_bytes()), Framing::JsonArray, 1)
            }
        };
        let in_stream_error = |events: &mut EventBuf| {
            if framing == Framing::JsonArray && events.events() == total {
                // Nothing was cut: reopen the array to put the error inside it.
                events.truncate(total - 1);
            }
            let error = json!({"error": {"code": 500, "message": "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting", "status": "INTERNAL"}});
            framing.push(events, &error);
            framing.close(events);
        };
        let delivery = Delivery::new(&directive, self.stream.is_some());
        fault::deliver(fault, rendered, in_stream_error, delivery, headers, state)
    }
}
