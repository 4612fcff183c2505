//! Kiro / AWS CodeWhisperer: SSO-OIDC (client registration, device authorization, token polling and
//! refresh), Kiro's social `refreshToken`, `generateAssistantResponse` on both API hosts answering with the
//! AWS binary event stream (valid CRCs), `getUsageLimits` and `ListProfiles`.
//!
//! Paths, each with the region as a path segment so tests can see which region a client chose:
//! `/kiro/oidc/{region}/…` (SSO-OIDC), `/kiro/auth/{region}/refreshToken`, `/kiro/q/{region}/…` (the primary
//! API host) and `/kiro/cw/{region}/…` (the codewhisperer host, which wants `X-Amz-Target`).
//!
//! Behaviour by token spelling (the mock stays stateless apart from device-code polls):
//! - access tokens must start with `aoa`; containing `expired`, `invalid` or `bad` → 403 invalid bearer;
//!   `suspended` → 403 `SUSPENDED`; `exhausted` → 402 `MONTHLY_REQUEST_COUNT` and no usage left; `social` → the
//!   body must carry `profileArn`;
//! - refresh tokens containing `invalid` → 400 `invalid_grant`; `flaky` → 500;
//! - device logins answer `authorization_pending` [`PENDING_POLLS`] times, then tokens; a start URL containing
//!   `slow` first answers `slow_down`, one containing `denied` ends in `access_denied`.
//!
//! Answers follow the usual `mock:{json}` directive (`reply`, `thinking`, `tool_calls`, `usage`, `split`,
//! `chunk`, `delay_ms`, `fault`, `per_key`); a fault's `host` (`q` or `cw`) limits it to one API host, and
//! with `stream_error_after` its `body` text names the in-stream error: an exception type
//! (`ThrottlingException`, default `InternalServerException`) or `invalidStateEvent`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::extract::{Path, RawQuery, State as Shared};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use cliproxy_core::stream::eventstream::{HeaderValue as EsHeader, encode_frame};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};

use crate::answer::{ARGUMENT_FRAGMENT_BYTES, Answer, TEXT_DELTA_CHARS, byte_pieces, char_pieces};
use crate::directive::Directive;
use crate::fault::{self, Dialect, ErrorAnswer, Fault, FaultKind, Rendered};
use crate::state::State;
use crate::writer::{self, Delivery, EventBuf};
use crate::{ids, keys, oauth};

/// Polls answered `authorization_pending` before a device login succeeds.
pub const PENDING_POLLS: u32 = 2;
/// The X-Amz-Target the codewhisperer host requires.
pub const TARGET: &str = "AmazonCodeWhispererStreamingService.GenerateAssistantResponse";
/// The profile every social login belongs to (its region is the API region).
pub const SOCIAL_PROFILE_ARN: &str = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK";
/// Monthly requests of every mock account.
pub const USAGE_LIMIT: f64 = 50.0;
/// Thinking text when the request asks for thinking and the directive gives none.
pub const DEFAULT_THINKING: &str = "Let me think about this.";

/// Model ids `generateAssistantResponse` accepts.
pub const MODELS: &[&str] = &[
    "claude-sonnet-4.5",
    "claude-sonnet-4.6",
    "claude-sonnet-4",
    "claude-haiku-4.5",
    "claude-opus-4.5",
    "claude-opus-4.6",
    "claude-3.7-sonnet",
    "auto",
    "CLAUDE_SONNET_4_5_20250929_V1_0",
    "CLAUDE_SONNET_4_20250514_V1_0",
    "CLAUDE_3_7_SONNET_20250219_V1_0",
];

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/kiro/oidc/{region}/client/register", post(register))
        .route("/kiro/oidc/{region}/device_authorization", post(device_authorization))
        .route("/kiro/oidc/{region}/token", post(token))
        .route("/kiro/auth/{region}/refreshToken", post(social_refresh))
        .route("/kiro/q/{region}/generateAssistantResponse", post(generate_q))
        .route("/kiro/cw/{region}/generateAssistantResponse", post(generate_cw))
        .route("/kiro/q/{region}/getUsageLimits", get(usage_limits))
        .route("/kiro/cw/{region}/getUsageLimits", get(usage_limits))
        .route("/kiro/cw/{region}/", post(list_profiles))
}

fn body_json(body: &[u8]) -> Option<serde_json::Map<String, Value>> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

fn s<'a>(m: &'a serde_json::Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str).filter(|v| !v.is_empty())
}

/// The client secret the mock issues for a client id: checkable without remembering clients.
fn secret_for(client_id: &str) -> String {
    format!("mock-secret-{:08x}", crc32fast::hash(client_id.as_bytes()))
}

fn client_ok(m: &serde_json::Map<String, Value>) -> bool {
    matches!((s(m, "clientId"), s(m, "clientSecret")), (Some(id), Some(secret)) if secret == secret_for(id))
}

fn invalid_client() -> Response {
    oauth::error(StatusCode::BAD_REQUEST, "invalid_client", "Invalid client credentials")
}

async fn register(Path(_region): Path<String>, body: Bytes) -> Response {
    let Some(m) = body_json(&body) else {
        return oauth::error(StatusCode::BAD_REQUEST, "invalid_request", "Body must be JSON");
    };
    if s(&m, "clientName").is_none() || s(&m, "clientType") != Some("public") {
        return oauth::error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "clientName and clientType public are required",
        );
    }
    let id = ids::token("kiro-client-", 22);
    writer::json(
        StatusCode::OK,
        &json!({"clientId": id, "clientSecret": secret_for(&id), "clientIdIssuedAt": crate::clock::unix_now(),
            "clientSecretExpiresAt": crate::clock::unix_now() + 90 * 86_400}),
    )
}

/// Device codes and how often each was polled; the code carries the start URL's behaviour.
fn devices() -> &'static Mutex<HashMap<String, u32>> {
    static DEVICES: OnceLock<Mutex<HashMap<String, u32>>> = OnceLock::new();
    DEVICES.get_or_init(Default::default)
}

async fn device_authorization(Path(region): Path<String>, body: Bytes) -> Response {
    let Some(m) = body_json(&body) else {
        return oauth::error(StatusCode::BAD_REQUEST, "invalid_request", "Body must be JSON");
    };
    if !client_ok(&m) {
        return invalid_client();
    }
    let Some(start_url) = s(&m, "startUrl") else {
        return oauth::error(StatusCode::BAD_REQUEST, "invalid_request", "startUrl is required");
    };
    let flavour = if start_url.contains("denied") {
        "denied"
    } else if start_url.contains("slow") {
        "slow"
    } else {
        "ok"
    };
    let device_code = ids::token(&format!("dc-{flavour}-"), 32);
    devices().lock().unwrap_or_else(|p| p.into_inner()).insert(device_code.clone(), 0);
    let user_code = format!("{}-{}", ids::token("", 4).to_uppercase(), ids::token("", 4).to_uppercase());
    let uri = format!("https://device.sso.{region}.amazonaws.com/");
    writer::json(
        StatusCode::OK,
        &json!({"deviceCode": device_code, "userCode": user_code, "verificationUri": uri,
            "verificationUriComplete": format!("{uri}?user_code={user_code}"), "expiresIn": 600, "interval": 1}),
    )
}

fn issue(kind: &str, refresh: Option<&str>) -> Value {
    json!({
        "accessToken": ids::token(&format!("aoa{kind}-"), 40),
        "tokenType": "Bearer",
        "expiresIn": 3600,
        "refreshToken": refresh.map_or_else(|| ids::token("aor-", 60), str::to_owned),
    })
}

async fn token(Path(_region): Path<String>, body: Bytes) -> Response {
    let Some(m) = body_json(&body) else {
        return oauth::error(StatusCode::BAD_REQUEST, "invalid_request", "Body must be JSON");
    };
    if !client_ok(&m) {
        return invalid_client();
    }
    match s(&m, "grantType") {
        Some("urn:ietf:params:oauth:grant-type:device_code") => {
            let Some(code) = s(&m, "deviceCode") else {
                return oauth::error(StatusCode::BAD_REQUEST, "invalid_request", "deviceCode is required");
            };
            let polls = {
                let mut map = devices().lock().unwrap_or_else(|p| p.into_inner());
                let Some(n) = map.get_mut(code) else {
                    return oauth::error(StatusCode::BAD_REQUEST, "expired_token", "Device code expired or unknown");
                };
                *n += 1;
                *n
            };
            if code.starts_with("dc-denied-") {
                return oauth::error(StatusCode::BAD_REQUEST, "access_denied", "The user denied the request");
            }
            if code.starts_with("dc-slow-") && polls == 1 {
                return oauth::error(StatusCode::BAD_REQUEST, "slow_down", "Slow down");
            }
            if polls <= PENDING_POLLS {
                return oauth::error(StatusCode::BAD_REQUEST, "authorization_pending", "Authorization pending");
            }
            devices().lock().unwrap_or_else(|p| p.into_inner()).remove(code);
            writer::json(StatusCode::OK, &issue("IDC", None))
        }
        Some("refresh_token") => match s(&m, "refreshToken") {
            None => oauth::error(StatusCode::BAD_REQUEST, "invalid_request", "refreshToken is required"),
            Some(t) if t.contains("invalid") => {
                oauth::error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid refresh token provided")
            }
            Some(t) if t.contains("flaky") => {
                oauth::error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "Try later")
            }
            Some(t) => writer::json(StatusCode::OK, &issue(token_kind(t), Some(t))),
        },
        _ => oauth::error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "Unsupported grant type"),
    }
}

/// Access tokens refreshed from a refresh token keep its test behaviour words (`exhausted`, `suspended`).
fn token_kind(refresh: &str) -> &'static str {
    if refresh.contains("exhausted") {
        "IDC-exhausted"
    } else if refresh.contains("suspended") {
        "IDC-suspended"
    } else {
        "IDC"
    }
}

async fn social_refresh(Path(_region): Path<String>, body: Bytes) -> Response {
    let Some(m) = body_json(&body) else {
        return writer::json(StatusCode::BAD_REQUEST, &json!({"message": "Body must be JSON"}));
    };
    match s(&m, "refreshToken") {
        None => writer::json(StatusCode::BAD_REQUEST, &json!({"message": "refreshToken is required"})),
        Some(t) if t.contains("invalid") => {
            oauth::error(StatusCode::BAD_REQUEST, "invalid_grant", "Invalid refresh token provided")
        }
        Some(t) if t.contains("flaky") => writer::json(StatusCode::INTERNAL_SERVER_ERROR, &json!({"message": "down"})),
        Some(t) => {
            let kind = if t.contains("exhausted") { "SOCIAL-exhausted" } else { "SOCIAL" };
            let mut v = issue(kind, Some(t));
            v["profileArn"] = SOCIAL_PROFILE_ARN.into();
            writer::json(StatusCode::OK, &v)
        }
    }
}

/// Kiro's rendering of errors.
struct Kiro;

fn kiro_error(status: StatusCode, message: &str, reason: Option<&str>) -> ErrorAnswer {
    ErrorAnswer::json(status, json!({"message": message, "reason": reason}).to_string())
}

fn throttled() -> ErrorAnswer {
    let mut a = ErrorAnswer::json(
        StatusCode::TOO_MANY_REQUESTS,
        json!({"__type": "com.amazon.aws.codewhisperer#ThrottlingException",
            "message": "Too many requests, please wait before trying again."})
        .to_string(),
    );
    a.headers.insert("x-amzn-errortype", HeaderValue::from_static("ThrottlingException"));
    a
}

fn monthly() -> ErrorAnswer {
    kiro_error(StatusCode::PAYMENT_REQUIRED, "You have reached the limit.", Some("MONTHLY_REQUEST_COUNT"))
}

fn bad_bearer() -> ErrorAnswer {
    kiro_error(StatusCode::FORBIDDEN, "The bearer token included in the request is invalid.", None)
}

fn invalid(message: &str) -> ErrorAnswer {
    let mut a = kiro_error(StatusCode::BAD_REQUEST, message, None);
    a.headers.insert("x-amzn-errortype", HeaderValue::from_static("ValidationException"));
    a
}

impl Dialect for Kiro {
    fn kind_answer(&self, kind: FaultKind, _fault: &Fault) -> ErrorAnswer {
        match kind {
            FaultKind::RateLimit => throttled(),
            FaultKind::Quota => monthly(),
            FaultKind::InvalidKey => bad_bearer(),
            FaultKind::Overloaded => {
                kiro_error(StatusCode::SERVICE_UNAVAILABLE, "Service is temporarily unavailable.", None)
            }
            FaultKind::ServerError => {
                kiro_error(StatusCode::INTERNAL_SERVER_ERROR, "Encountered an unexpected error.", None)
            }
        }
    }

    fn status_answer(&self, status: StatusCode) -> ErrorAnswer {
        match status.as_u16() {
            402 => monthly(),
            403 => bad_bearer(),
            429 => throttled(),
            400 => invalid("Improperly formed request."),
            _ => kiro_error(status, status.canonical_reason().unwrap_or("Error"), None),
        }
    }
}

fn send(answer: ErrorAnswer, fault: Option<&Fault>) -> Response {
    let mut common = HeaderMap::new();
    common.insert("x-amzn-requestid", HeaderValue::from_str(&ids::uuid()).unwrap_or(HeaderValue::from_static("0")));
    answer.into_response(common, fault)
}

/// Checks the bearer: `Err` is the answer to send.
fn authenticate(headers: &HeaderMap) -> Result<&str, Box<ErrorAnswer>> {
    let token = keys::bearer(headers).ok_or_else(|| Box::new(bad_bearer()))?;
    let lower = token.to_ascii_lowercase();
    if !token.starts_with("aoa") || ["expired", "invalid", "bad"].iter().any(|w| lower.contains(w)) {
        return Err(Box::new(bad_bearer()));
    }
    if lower.contains("suspended") {
        return Err(Box::new(kiro_error(
            StatusCode::FORBIDDEN,
            "Your account is TEMPORARILY_SUSPENDED due to unusual activity.",
            Some("SUSPENDED"),
        )));
    }
    Ok(token)
}

/// What Kiro rejects in a `conversationState`, as a 400 message; and the texts a directive may hide in.
fn validate(body: &Value, token: &str) -> Result<(Vec<String>, bool), String> {
    let state = body.get("conversationState").ok_or("conversationState is required")?;
    let current =
        state.pointer("/currentMessage/userInputMessage").ok_or("currentMessage.userInputMessage is required")?;
    let mut texts = Vec::new();
    let content = current.get("content").and_then(Value::as_str).unwrap_or("");
    if content.trim().is_empty() {
        return Err("Improperly formed request: currentMessage content must not be empty".into());
    }
    let model = current.get("modelId").and_then(Value::as_str).unwrap_or("");
    if !MODELS.contains(&model) {
        return Err(format!("Invalid model. Please select a different model to continue. ({model})"));
    }
    if token.to_ascii_lowercase().contains("social") && body.get("profileArn").and_then(Value::as_str).is_none() {
        return Err("profileArn is required for this request.".into());
    }
    let mut tool_ids = std::collections::HashSet::new();
    let history = state.get("history").and_then(Value::as_array).cloned().unwrap_or_default();
    for (i, h) in history.iter().enumerate() {
        let (role, msg) = match (h.get("userInputMessage"), h.get("assistantResponseMessage")) {
            (Some(u), None) => ("user", u),
            (None, Some(a)) => ("assistant", a),
            _ => return Err(format!("Improperly formed request: history[{i}] must be one message")),
        };
        let expected = if i % 2 == 0 { "user" } else { "assistant" };
        if role != expected {
            return Err(format!("Improperly formed request: history must alternate, history[{i}] is {role}"));
        }
        let text = msg.get("content").and_then(Value::as_str).unwrap_or("");
        if text.trim().is_empty() {
            return Err(format!("Improperly formed request: history[{i}] content must not be empty"));
        }
        texts.push(text.to_owned());
        for u in msg.get("toolUses").and_then(Value::as_array).into_iter().flatten() {
            let id = u.get("toolUseId").and_then(Value::as_str).unwrap_or("");
            if !tool_ids.insert(id.to_owned()) {
                return Err(format!("Improperly formed request: duplicate toolUseId {id}"));
            }
        }
        collect_tool_results(msg, &mut texts);
    }
    if history.len() % 2 == 1 {
        return Err("Improperly formed request: history must end with an assistant message".into());
    }
    for t in current.pointer("/userInputMessageContext/tools").and_then(Value::as_array).into_iter().flatten() {
        let spec = t.get("toolSpecification").ok_or("tools[] must be toolSpecification")?;
        let name = spec.get("name").and_then(Value::as_str).unwrap_or("");
        let desc = spec.get("description").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() || name.chars().count() > 64 || desc.is_empty() || desc.len() > 10_240 {
            return Err(format!("Improperly formed request: tool `{name}` name or description out of bounds"));
        }
        if spec.pointer("/inputSchema/json").is_none_or(|s| !s.is_object()) {
            return Err(format!("Improperly formed request: tool `{name}` needs inputSchema.json"));
        }
    }
    collect_tool_results(current, &mut texts);
    texts.push(content.to_owned());
    let thinking = content.contains("<thinking_mode>enabled</thinking_mode>");
    Ok((texts, thinking))
}

fn collect_tool_results(msg: &Value, texts: &mut Vec<String>) {
    for r in msg.pointer("/userInputMessageContext/toolResults").and_then(Value::as_array).into_iter().flatten() {
        for c in r.get("content").and_then(Value::as_array).into_iter().flatten() {
            if let Some(t) = c.get("text").and_then(Value::as_str) {
                texts.push(t.to_owned());
            }
        }
    }
}

fn frame(events: &mut EventBuf, event: &str, payload: &Value) {
    let bytes = encode_frame(
        &[
            (":event-type", EsHeader::String(event.into())),
            (":content-type", EsHeader::String("application/json".into())),
            (":message-type", EsHeader::String("event".into())),
        ],
        payload.to_string().as_bytes(),
    );
    events.raw(&bytes);
}

fn exception_frame(events: &mut EventBuf, kind: &str, message: &str) {
    let bytes = encode_frame(
        &[
            (":exception-type", EsHeader::String(kind.into())),
            (":content-type", EsHeader::String("application/json".into())),
            (":message-type", EsHeader::String("exception".into())),
        ],
        json!({"message": message}).to_string().as_bytes(),
    );
    events.raw(&bytes);
}

/// The event-stream frames of an answer.
fn answer_frames(answer: &Answer, with_metadata: bool) -> EventBuf {
    let mut events = EventBuf::new();
    let mut text = String::new();
    if let Some(t) = &answer.thinking {
        text.push_str(&format!("<thinking>{t}</thinking>\n\n"));
    }
    if let Some(t) = &answer.text {
        text.push_str(t);
    }
    for piece in char_pieces(&text, TEXT_DELTA_CHARS) {
        frame(&mut events, "assistantResponseEvent", &json!({"content": piece}));
    }
    for call in &answer.tool_calls {
        for piece in byte_pieces(&call.arguments, ARGUMENT_FRAGMENT_BYTES) {
            frame(&mut events, "toolUseEvent", &json!({"name": call.name, "toolUseId": call.id, "input": piece}));
        }
        frame(&mut events, "toolUseEvent", &json!({"name": call.name, "toolUseId": call.id, "stop": true}));
    }
    frame(
        &mut events,
        "meteringEvent",
        &json!({"unit": "credit", "unitPlural": "credits", "usage": 0.0169543708291874}),
    );
    frame(&mut events, "contextUsageEvent", &json!({"contextUsagePercentage": 1.5}));
    if with_metadata {
        let u = answer.usage;
        frame(
            &mut events,
            "metadataEvent",
            &json!({"tokenUsage": {"uncachedInputTokens": u.input, "cacheReadInputTokens": u.cached,
                "cacheWriteInputTokens": u.cache_creation, "outputTokens": u.output,
                "totalTokens": u.input + u.cached + u.cache_creation + u.output}}),
        );
    }
    events
}

async fn generate_q(state: Shared<Arc<State>>, region: Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    generate(state, region, headers, body, "q").await
}

async fn generate_cw(state: Shared<Arc<State>>, region: Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    generate(state, region, headers, body, "cw").await
}

async fn generate(
    Shared(state): Shared<Arc<State>>,
    Path(_region): Path<String>,
    headers: HeaderMap,
    body: Bytes,
    host: &str,
) -> Response {
    let token = keys::bearer(&headers).map(str::to_owned);
    state.count_hit(token.as_deref());
    if host == "cw" && keys::header(&headers, "x-amz-target") != Some(TARGET) {
        return send(kiro_error(StatusCode::BAD_REQUEST, "Missing or wrong X-Amz-Target", None), None);
    }
    let token = match authenticate(&headers) {
        Ok(t) => t.to_owned(),
        Err(a) => return send(*a, None),
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return send(invalid("Improperly formed request: body is not JSON"), None);
    };
    let (texts, thinking_requested) = match validate(&request, &token) {
        Ok(v) => v,
        Err(m) => return send(invalid(&m), None),
    };
    let directive = match Directive::find(texts.iter().map(String::as_str)) {
        Ok(d) => d.unwrap_or_default(),
        Err(m) => return send(invalid(&m), None),
    };
    if token.to_ascii_lowercase().contains("exhausted") {
        return send(monthly(), None);
    }
    let model = request.pointer("/conversationState/currentMessage/userInputMessage/modelId").and_then(Value::as_str);
    let fault = directive
        .fault_for(Some(&token), None, model.unwrap_or_default())
        .filter(|f| f.host.as_deref().is_none_or(|h| h == host));
    if let Some(fault) = fault {
        fault.hang().await;
        if let Some(answer) = fault.error_answer(&Kiro) {
            return send(answer, Some(fault));
        }
    }
    let mut answer = Answer::new(&directive, body.len(), "tooluse_");
    if answer.thinking.is_none() && thinking_requested {
        answer.thinking = Some(DEFAULT_THINKING.to_owned());
    }
    let events = answer_frames(&answer, directive.usage.is_some());
    let mut out = HeaderMap::new();
    out.insert(CONTENT_TYPE, HeaderValue::from_static("application/vnd.amazon.eventstream"));
    out.insert("x-amzn-requestid", HeaderValue::from_str(&ids::uuid()).unwrap_or(HeaderValue::from_static("0")));
    // The in-stream error of `stream_error_after`: an exception frame whose type is the fault's `body` text
    // (default `InternalServerException`), or an `invalidStateEvent` when the body says so.
    let kind = match fault.and_then(|f| f.body.as_ref()) {
        Some(Value::String(k)) => k.clone(),
        _ => "InternalServerException".to_owned(),
    };
    let in_stream_error = |events: &mut EventBuf| match kind.as_str() {
        "invalidStateEvent" => frame(
            events,
            "invalidStateEvent",
            &json!({"reason": "INVALID_TASK_STATE", "message": "The conversation is in an invalid state."}),
        ),
        "ThrottlingException" => exception_frame(events, &kind, "The request was throttled by the service"),
        _ => exception_frame(events, &kind, "Encountered an unexpected error when processing the request."),
    };
    let delivery = Delivery::new(&directive, true);
    fault::deliver(fault, Rendered::Events(events), in_stream_error, delivery, out, &state)
}

/// The first instant of next month (UTC), in unix seconds: when the mock's monthly usage resets.
fn next_month(now: u64) -> u64 {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(now);
    cliproxy_core::timefmt::start_of_next_month(t).duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

async fn usage_limits(Path(_region): Path<String>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    let token = match authenticate(&headers) {
        Ok(t) => t.to_owned(),
        Err(a) => return send(*a, None),
    };
    let query = query.unwrap_or_default();
    if !query.contains("origin=AI_EDITOR") {
        return send(invalid("origin is required"), None);
    }
    if token.to_ascii_lowercase().contains("social") && !query.contains("profileArn=") {
        return send(invalid("profileArn is required for this request."), None);
    }
    let used = if token.contains("exhausted") { USAGE_LIMIT } else { 3.0 };
    let email = if token.contains("SOCIAL") { "social-user@example.com" } else { "builder-user@example.com" };
    let reset = next_month(crate::clock::unix_now());
    writer::json(
        StatusCode::OK,
        &json!({
            "usageBreakdownList": [{"resourceType": "CREDIT", "usageLimitWithPrecision": USAGE_LIMIT,
                "currentUsageWithPrecision": used, "nextDateReset": reset, "unit": "credit"}],
            "nextDateReset": reset,
            "userInfo": {"email": email, "userId": ids::uuid()},
            "subscriptionInfo": {"subscriptionTitle": "KIRO FREE", "type": "Q_DEVELOPER_STANDALONE_FREE"},
        }),
    )
}

async fn list_profiles(Path(region): Path<String>, headers: HeaderMap) -> Response {
    if let Err(a) = authenticate(&headers) {
        return send(*a, None);
    }
    if keys::header(&headers, "x-amz-target") != Some("AmazonCodeWhispererService.ListProfiles") {
        return send(invalid("Unknown operation"), None);
    }
    writer::json(
        StatusCode::OK,
        &json!({"profiles": [{"arn": format!("arn:aws:codewhisperer:{region}:123456789012:profile/MOCKIDC"),
            "profileName": "Mock Identity Center profile"}]}),
    )
}
