//! GitHub and GitHub Copilot: the device login, the REST endpoints Copilot clients use
//! (`/user`, `copilot_internal/v2/token`, `copilot_internal/user`) and the Copilot API under
//! `/copilot` (`/copilot/chat/completions`, `/copilot/responses`, `/copilot/models`). The exchanged token's
//! `endpoints.api` points at `{mock}/copilot`, so a client that follows the token lands here.
//!
//! # Device login
//! `POST /login/device/code` then `POST /login/oauth/access_token`. Polls of one device code
//! answer `authorization_pending` twice, then one `slow_down` carrying `interval: 1`, once more
//! pending, then the token; all with status 200, as GitHub does. A path prefix before `/login`
//! (used as the GitHub base URL) picks another script: `/denied` ends in `access_denied`,
//! `/expired` in `expired_token`, `/status400` answers the pending polls with status 400 (as
//! some servers do). The first answer is `interval: 0` so tests run fast.
//!
//! # GitHub tokens
//! Tokens starting `gho_`, `ghu_` or `ghp_` are valid unless they contain `revoked`, `bad` or
//! `invalid` (401 from `/user` and the exchange). One containing `nocopilot` has no Copilot
//! subscription (403). Exchanged Copilot tokens live 30 minutes (`refresh_in` 1500 s); for a
//! GitHub token containing `short` they live 2 s (`refresh_in` 1); for one containing `stale`
//! the answer claims 30 minutes but the token dies after 1 s, as a token revoked server-side.
//! Exchanges are counted as hits under the GitHub token ([`crate::MockServer::hits`]).
//!
//! # Copilot API
//! Without `editor-version` the API answers 400 `bad request: missing Editor-Version header for
//! IDE auth`; an expired token gets 401 `unauthorized: token expired` (plain text). Chat answers
//! like the OpenAI mock (directives and faults included); a Responses-only model there gets 400
//! `unsupported_api_for_model`. `/copilot/responses` serves every model of [`MODELS`] in the OpenAI Responses
//! dialect ([`crate::responses`], JSON or SSE per `stream`) with the same token checks, OpenAI-shaped errors
//! and faults, and `response.failed` for `stream_error_after`. Each account's hits on both count under
//! `sk-copilot-<github token>`, the key `per_key` faults use too. Answers carry an
//! `x-quota-snapshot-premium_interactions` header unless a fault sets one.
//!
//! Fault kinds render as Copilot's errors (`{"error":{"message","code"}}`): `rate_limit` → 429 `rate_limited`
//! with `retry-after` and `x-ratelimit-exceeded` (a fault's `headers` and `body` can name another code, such
//! as `user_global_rate_limited:pro`); `quota` → 402 `quota_exceeded` with the premium quota at 0;
//! `invalid_key` → 401 `unauthorized: token expired` (plain text); `overloaded` → 503 `model_overloaded`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Extension, Path, State as Shared};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};

use crate::answer::Answer;
use crate::directive::Directive;
use crate::fault::{self, Dialect, ErrorAnswer, Fault, FaultKind, Rendered};
use crate::openai::OpenAi;
use crate::responses::{self, Head, Rendering};
use crate::state::State;
use crate::writer::{Delivery, EventBuf};
use crate::{clock, ids, keys, oauth, openai, writer};

/// The OAuth app of GitHub's editor plugins.
pub const CLIENT_ID: &str = "Iv1.b507a08c87ecfe98";
/// The login `/user` reports.
pub const LOGIN: &str = "mona";

/// Models of `/copilot/models`: id, vendor, and whether only `/responses` serves it.
pub const MODELS: &[(&str, &str, bool)] = &[
    ("gpt-4o", "Azure OpenAI", false),
    ("gpt-4.1", "Azure OpenAI", false),
    ("claude-sonnet-4", "Anthropic", false),
    ("gemini-2.5-pro", "Google", false),
    ("gpt-5-codex", "OpenAI", true),
];

const EMBEDDING_MODEL: &str = "text-embedding-3-small";

/// Poll counts per device code: the only memory the login script needs.
#[derive(Default)]
struct Devices {
    polls: Mutex<HashMap<String, u32>>,
}

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/login/device/code", post(device_code))
        .route("/{scenario}/login/device/code", post(device_code_in))
        .route("/login/oauth/access_token", post(access_token))
        .route("/{scenario}/login/oauth/access_token", post(access_token_in))
        .route("/user", get(user))
        .route("/copilot_internal/v2/token", get(exchange))
        .route("/copilot_internal/user", get(quota))
        .route("/copilot/chat/completions", post(chat))
        .route("/copilot/responses", post(responses))
        .route("/copilot/models", get(models))
        .layer(Extension(Arc::new(Devices::default())))
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    writer::whole(status, headers, body.to_string().into())
}

fn text_response(status: StatusCode, text: &'static str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    writer::whole(status, headers, Bytes::from_static(text.as_bytes()))
}

/// Without `accept: application/json` GitHub answers form-encoded.
fn oauth_answer(headers: &HeaderMap, status: StatusCode, body: &Value) -> Response {
    let wants_json = keys::header(headers, "accept").is_some_and(|a| a.contains("application/json"));
    if wants_json {
        return json_response(status, body);
    }
    let form: Vec<String> = body
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
        .collect();
    let mut h = HeaderMap::new();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"));
    writer::whole(status, h, form.join("&").into())
}

async fn device_code(headers: HeaderMap, body: Bytes) -> Response {
    issue_device_code("default", &headers, &body)
}

async fn device_code_in(Path(scenario): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    issue_device_code(&scenario, &headers, &body)
}

fn issue_device_code(scenario: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    let f = oauth::fields(body);
    if f.get("client_id").is_none_or(|c| c.is_empty()) {
        return oauth_answer(
            headers,
            StatusCode::BAD_REQUEST,
            &json!({"error": "unauthorized_client", "error_description": "The client_id parameter is missing."}),
        );
    }
    let code = format!("{scenario}.{}", ids::token("", 40));
    oauth_answer(
        headers,
        StatusCode::OK,
        &json!({
            "device_code": code,
            "user_code": format!("{}-{}", ids::token("", 4).to_uppercase(), ids::token("", 4).to_uppercase()),
            "verification_uri": "https://github.com/login/device",
            "expires_in": 899,
            "interval": 0,
        }),
    )
}

async fn access_token(Extension(devices): Extension<Arc<Devices>>, headers: HeaderMap, body: Bytes) -> Response {
    poll(&devices, &headers, &body)
}

async fn access_token_in(
    Extension(devices): Extension<Arc<Devices>>,
    Path(_scenario): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    poll(&devices, &headers, &body)
}

fn poll(devices: &Devices, headers: &HeaderMap, body: &[u8]) -> Response {
    let f = oauth::fields(body);
    let error = |status: StatusCode, error: &str, description: &str, extra: Option<(&str, u64)>| {
        let mut v = json!({
            "error": error,
            "error_description": description,
            "error_uri": "https://docs.github.com/developers/apps/authorizing-oauth-apps#error-codes-for-the-device-flow",
        });
        if let Some((k, n)) = extra {
            v[k] = json!(n);
        }
        oauth_answer(headers, status, &v)
    };
    if f.get("grant_type").map(String::as_str) != Some("urn:ietf:params:oauth:grant-type:device_code") {
        return error(StatusCode::OK, "unsupported_grant_type", "The grant type is not supported.", None);
    }
    let Some((scenario, _)) = f.get("device_code").and_then(|c| c.split_once('.')) else {
        return error(StatusCode::OK, "incorrect_device_code", "The device_code provided is not valid.", None);
    };
    let code = f["device_code"].clone();
    let n = {
        let mut polls = devices.polls.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = polls.entry(code).or_insert(0);
        *n += 1;
        *n
    };
    let pending_status = if scenario == "status400" { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let pending =
        || error(pending_status, "authorization_pending", "The authorization request is still pending.", None);
    match (scenario, n) {
        ("denied", 2..) => error(StatusCode::OK, "access_denied", "The authorization request was denied.", None),
        ("expired", 2..) => error(StatusCode::OK, "expired_token", "The device_code has expired.", None),
        (_, 1 | 2 | 4) => pending(),
        (_, 3) => error(
            StatusCode::OK,
            "slow_down",
            "Too many requests have been made in the same timeframe.",
            Some(("interval", 1)),
        ),
        _ => oauth_answer(
            headers,
            StatusCode::OK,
            &json!({"access_token": ids::token("gho_", 36), "token_type": "bearer", "scope": "read:user"}),
        ),
    }
}

/// The GitHub token of `authorization: token X` (or `Bearer X`), if valid.
fn github_token(headers: &HeaderMap) -> Result<&str, Box<Response>> {
    let token = keys::header(headers, "authorization")
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty());
    let valid = |t: &str| {
        ["gho_", "ghu_", "ghp_"].iter().any(|p| t.starts_with(p))
            && !["revoked", "bad", "invalid"].iter().any(|w| t.to_ascii_lowercase().contains(w))
    };
    match token {
        Some(t) if valid(t) => Ok(t),
        _ => Err(Box::new(json_response(
            StatusCode::UNAUTHORIZED,
            &json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"}),
        ))),
    }
}

async fn user(headers: HeaderMap) -> Response {
    match github_token(&headers) {
        Ok(_) => json_response(
            StatusCode::OK,
            &json!({"login": LOGIN, "id": 583231, "type": "User", "name": "Mona Lisa Octocat", "email": "mona@example.com"}),
        ),
        Err(r) => *r,
    }
}

fn missing_editor_version(headers: &HeaderMap) -> Option<Response> {
    (!headers.contains_key("editor-version"))
        .then(|| text_response(StatusCode::BAD_REQUEST, "bad request: missing Editor-Version header for IDE auth"))
}

/// A check value over the token's fields, so that an edited `exp` is refused.
fn signature(fields: &str) -> String {
    format!("{:08x}", crc32fast::hash(fields.as_bytes()))
}

async fn exchange(Shared(state): Shared<Arc<State>>, headers: HeaderMap) -> Response {
    if let Some(r) = missing_editor_version(&headers) {
        return r;
    }
    let gh = match github_token(&headers) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    state.count_hit(Some(gh));
    if gh.contains("nocopilot") {
        return json_response(
            StatusCode::FORBIDDEN,
            &json!({
                "can_signup_for_limited": true,
                "error_details": {"message": "You do not have access to GitHub Copilot.", "notification_id": "no_copilot_access",
                                   "title": "No Copilot access", "url": "https://github.com/features/copilot"},
                "message": "You do not have access to GitHub Copilot."
            }),
        );
    }
    let now = clock::unix_now();
    let (claimed, real, refresh_in) = if gh.contains("short") {
        (now + 2, now + 2, 1)
    } else if gh.contains("stale") {
        (now + 1800, now + 1, 1500)
    } else {
        (now + 1800, now + 1800, 1500)
    };
    let fields = format!("tid=copilot-{gh};exp={real};sku=copilot_for_individuals_subscriber;chat=1;8kp=1");
    let token = format!("{fields}:{}", signature(&fields));
    let host = keys::header(&headers, "host").unwrap_or("127.0.0.1");
    let base = format!("http://{host}");
    json_response(
        StatusCode::OK,
        &json!({
            "token": token,
            "expires_at": claimed,
            "refresh_in": refresh_in,
            "sku": "copilot_for_individuals_subscriber",
            "individual": true,
            "chat_enabled": true,
            "limited_user_quotas": null,
            "limited_user_reset_date": null,
            "organization_list": [],
            "endpoints": {
                "api": format!("{base}/copilot"),
                "origin-tracker": format!("{base}/copilot/origin-tracker"),
                "proxy": format!("{base}/copilot/proxy"),
                "telemetry": format!("{base}/copilot/telemetry"),
            },
        }),
    )
}

/// The first of next month (roughly: 20 days ahead, at midnight), when quotas reset.
fn reset_time() -> u64 {
    (clock::unix_now() / 86_400 + 20) * 86_400
}

async fn quota(headers: HeaderMap) -> Response {
    if let Err(r) = github_token(&headers) {
        return *r;
    }
    let reset = clock::rfc3339(reset_time());
    let q = |id: &str, ent: i64, rem: i64, unlimited: bool| {
        let pct = if unlimited || ent == 0 { 100.0 } else { rem as f64 * 100.0 / ent as f64 };
        json!({"entitlement": ent, "remaining": rem, "quota_remaining": rem, "percent_remaining": pct,
               "unlimited": unlimited, "overage_count": 0, "overage_permitted": false, "quota_id": id})
    };
    json_response(
        StatusCode::OK,
        &json!({
            "login": LOGIN,
            "copilot_plan": "individual",
            "access_type_sku": "monthly_subscriber_quota",
            "chat_enabled": true,
            "quota_reset_date": &reset[..10],
            "organization_login_list": [],
            "quota_snapshots": {
                "chat": q("chat", 0, 0, true),
                "completions": q("completions", 0, 0, true),
                "premium_interactions": q("premium_interactions", 300, 256, false),
            },
        }),
    )
}

/// The account of a valid, unexpired Copilot token (`copilot-<github token>`), or the answer
/// refusing it.
fn copilot_token(headers: &HeaderMap) -> Result<String, Box<Response>> {
    if let Some(r) = missing_editor_version(headers) {
        return Err(Box::new(r));
    }
    let token = keys::bearer(headers).unwrap_or_default();
    let Some((fields, sig)) = token.rsplit_once(':') else {
        return Err(Box::new(text_response(StatusCode::UNAUTHORIZED, "unauthorized: token invalid")));
    };
    let field = |name: &str| fields.split(';').find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')));
    let (Some(tid), Some(exp)) = (field("tid"), field("exp").and_then(|e| e.parse::<u64>().ok())) else {
        return Err(Box::new(text_response(StatusCode::UNAUTHORIZED, "unauthorized: token invalid")));
    };
    if signature(fields) != sig {
        return Err(Box::new(text_response(StatusCode::UNAUTHORIZED, "unauthorized: token invalid")));
    }
    if exp <= clock::unix_now() {
        return Err(Box::new(text_response(StatusCode::UNAUTHORIZED, "unauthorized: token expired")));
    }
    Ok(tid.to_owned())
}

async fn models(headers: HeaderMap) -> Response {
    if let Err(r) = copilot_token(&headers) {
        return *r;
    }
    let chat = MODELS.iter().map(|(id, vendor, responses_only)| {
        let endpoints: &[&str] = if *responses_only { &["/responses"] } else { &["/chat/completions", "/responses"] };
        json!({
            "id": id, "name": id, "object": "model", "vendor": vendor, "version": id, "preview": false,
            "model_picker_enabled": true, "policy": {"state": "enabled", "terms": ""},
            "supported_endpoints": endpoints,
            "capabilities": {"family": id, "type": "chat", "tokenizer": "o200k_base", "object": "model_capabilities",
                "limits": {"max_context_window_tokens": 128000, "max_output_tokens": 16384, "max_prompt_tokens": 64000},
                "supports": {"tool_calls": true, "parallel_tool_calls": true, "streaming": true}},
        })
    });
    let embedding = json!({
        "id": EMBEDDING_MODEL, "name": EMBEDDING_MODEL, "object": "model", "vendor": "Azure OpenAI",
        "version": EMBEDDING_MODEL, "preview": false, "model_picker_enabled": false,
        "capabilities": {"family": EMBEDDING_MODEL, "type": "embeddings", "tokenizer": "cl100k_base",
            "limits": {"max_inputs": 512}, "supports": {}},
    });
    let data: Vec<Value> = chat.chain(std::iter::once(embedding)).collect();
    json_response(StatusCode::OK, &json!({"object": "list", "data": data}))
}

fn model_error(status: StatusCode, message: String, code: &str) -> Response {
    json_response(
        status,
        &json!({"error": {"message": message, "code": code, "param": "model", "type": "invalid_request_error"}}),
    )
}

async fn chat(state: Shared<Arc<State>>, mut headers: HeaderMap, body: Bytes) -> Response {
    let account = match copilot_token(&headers) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let model = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("model").and_then(Value::as_str).map(str::to_owned));
    if let Some(model) = &model {
        match MODELS.iter().find(|(id, _, _)| id == model) {
            None => {
                return model_error(
                    StatusCode::BAD_REQUEST,
                    "The requested model is not supported.".into(),
                    "model_not_supported",
                );
            }
            Some((_, _, true)) => {
                return model_error(
                    StatusCode::BAD_REQUEST,
                    format!("model {model} is not accessible via the /chat/completions endpoint"),
                    "unsupported_api_for_model",
                );
            }
            Some(_) => {}
        }
    }
    // The OpenAI mock renders the answer; it knows keys by their `sk-` spelling.
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer sk-{account}")) {
        headers.insert(AUTHORIZATION, v);
    }
    let mut response = openai::chat_in(state, headers, body, &Copilot).await;
    let h = response.headers_mut();
    // Copilot does not send OpenAI's rate-limit state.
    for name in [
        "x-ratelimit-limit-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-requests",
        "x-ratelimit-reset-tokens",
    ] {
        h.remove(name);
    }
    add_quota_snapshot(h);
    response
}

/// The premium-interactions quota header Copilot answers carry, unless a fault already set one.
fn add_quota_snapshot(h: &mut HeaderMap) {
    if !h.contains_key(QUOTA_SNAPSHOT)
        && let Some(v) = quota_snapshot(85.3)
    {
        h.insert(QUOTA_SNAPSHOT, v);
    }
}

const QUOTA_SNAPSHOT: &str = "x-quota-snapshot-premium_interactions";

/// The premium quota snapshot with `remaining` percent left, URL-encoded as Copilot sends it.
fn quota_snapshot(remaining: f64) -> Option<HeaderValue> {
    let rst = clock::rfc3339(reset_time()).replace(':', "%3A");
    HeaderValue::from_str(&format!("ent=300&ov=0.0&ovPerm=false&rem={remaining}&rst={rst}")).ok()
}

/// Copilot's rendering of faults.
struct Copilot;

/// `{"error":{"message","code"}}`.
fn copilot_error(status: StatusCode, code: &str, message: &str) -> ErrorAnswer {
    ErrorAnswer::json(status, json!({"error": {"message": message, "code": code}}).to_string())
}

fn rate_limited() -> ErrorAnswer {
    let mut answer = copilot_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "Sorry, you have been rate-limited.");
    answer.headers.insert("x-ratelimit-exceeded", HeaderValue::from_static("rate_limited"));
    answer
}

impl Dialect for Copilot {
    fn kind_answer(&self, kind: FaultKind, fault: &Fault) -> ErrorAnswer {
        match kind {
            FaultKind::RateLimit => {
                let mut answer = rate_limited();
                if let Ok(v) = HeaderValue::from_str(&fault.retry_after()) {
                    answer.headers.insert("retry-after", v);
                }
                answer
            }
            _ => self.status_answer(match kind {
                FaultKind::Quota => StatusCode::PAYMENT_REQUIRED,
                FaultKind::InvalidKey => StatusCode::UNAUTHORIZED,
                FaultKind::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            }),
        }
    }

    fn status_answer(&self, status: StatusCode) -> ErrorAnswer {
        match status.as_u16() {
            401 => {
                let mut answer = ErrorAnswer::json(status, Bytes::from_static(b"unauthorized: token expired"));
                answer.headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
                answer
            }
            402 => {
                let mut answer = copilot_error(
                    status,
                    "quota_exceeded",
                    "You have exceeded your premium request allowance. Please try again when your quota resets.",
                );
                if let Some(v) = quota_snapshot(0.0) {
                    answer.headers.insert(QUOTA_SNAPSHOT, v);
                }
                answer
            }
            429 => rate_limited(),
            503 => copilot_error(status, "model_overloaded", "The model is overloaded. Please try again later."),
            _ => copilot_error(status, "error", status.canonical_reason().unwrap_or("Error")),
        }
    }
}

/// An error answer of the Copilot API, with Copilot's headers.
fn send(answer: ErrorAnswer, fault: Option<&Fault>) -> Response {
    let mut response = answer.into_response(HeaderMap::new(), fault);
    add_quota_snapshot(response.headers_mut());
    response
}

/// `POST /copilot/responses`: the Responses API, for every Copilot model including the Responses-only ones.
async fn responses(Shared(state): Shared<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    let account = match copilot_token(&headers) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let key = format!("sk-{account}");
    state.count_hit(Some(&key));
    let request = match serde_json::from_slice::<Value>(&body) {
        Ok(request @ Value::Object(_)) => request,
        _ => return send(OpenAi::bad_request("The request body must be a JSON object.", None, None), None),
    };
    let Some(model) = request.get("model").and_then(Value::as_str) else {
        return send(OpenAi::bad_request("Missing required parameter: 'model'.", Some("model"), None), None);
    };
    if !MODELS.iter().any(|(id, _, _)| *id == model) {
        return model_error(
            StatusCode::BAD_REQUEST,
            "The requested model is not supported.".into(),
            "model_not_supported",
        );
    }
    let directive = match Directive::find(responses::request_texts(&request)) {
        Ok(found) => found.unwrap_or_default(),
        Err(message) => return send(OpenAi::bad_request(&message, None, None), None),
    };
    let fault = directive.fault_for(Some(&key), None, model);
    if let Some(fault) = fault {
        fault.hang().await;
        if let Some(answer) = fault.error_answer(&Copilot) {
            return send(answer, Some(fault));
        }
    }
    let stream = request.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let answer = Answer::new(&directive, body.len(), "call_");
    let head = Head::new(model);
    let rendering = Rendering::new(&head, &answer, &request);
    let mut out = HeaderMap::new();
    if let Ok(id) = HeaderValue::from_str(&ids::uuid()) {
        out.insert("x-request-id", id);
    }
    add_quota_snapshot(&mut out);
    let rendered = if stream {
        out.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        Rendered::Events(rendering.events())
    } else {
        if fault.is_some_and(|f| f.stream_error_after.is_some()) {
            return send(Copilot.status_answer(StatusCode::INTERNAL_SERVER_ERROR), fault);
        }
        out.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Rendered::Whole(rendering.finished().to_string().into_bytes())
    };
    let in_stream_error = |events: &mut EventBuf| {
        responses::failed(events, &head, "server_error", "The server had an error while processing your request.");
    };
    fault::deliver(fault, rendered, in_stream_error, Delivery::new(&directive, stream), out, &state)
}
