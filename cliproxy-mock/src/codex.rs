//! Codex with a ChatGPT account: the auth.openai.com OAuth server and the ChatGPT backend's Responses endpoint.
//!
//! # OAuth
//! `GET /oauth/authorize` approves at once (PKCE S256 required) and `POST /oauth/token` takes a form-encoded
//! (or JSON) body for the `authorization_code` grant (verifier checked) and the `refresh_token` grant. These
//! paths are Claude's too: requests whose `client_id` starts with `app_` (Codex's public client is
//! [`CLIENT_ID`]) are ChatGPT's. Answers hold `id_token`, `access_token` (both JWTs whose
//! `https://api.openai.com/auth` claim carries `chatgpt_account_id` and `chatgpt_plan_type`, signed HS256 with
//! [`crate::jwt::SECRET`]), a rotating `refresh_token` and `expires_in`. A used refresh token gets 401
//! `refresh_token_reused`, a revoked one 401 `refresh_token_invalidated`, an unknown one 400
//! `invalid_grant`.
//!
//! # Responses
//! `POST {base}/responses` (base [`DEFAULT_BASE`] unless configured, see [`crate::Options`]) wants a bearer,
//! `chatgpt-account-id` (the token's account, when the mock issued it), `openai-beta: responses=experimental`,
//! `originator`, `session_id`, `version` and `accept: text/event-stream`, and a body with `stream: true` and
//! `store: false`; it streams the Responses events (see [`crate::responses`]). Every answer past
//! authentication carries the `x-codex-{primary,secondary}-{used-percent,window-minutes,reset-at,
//! reset-after-seconds}` headers. Fault kinds: `rate_limit` → 429 `rate_limit_exceeded` with `retry-after`;
//! `quota` → 429 `usage_limit_reached` with `resets_at` = now + `retry_after` and the primary window at 100 %;
//! `invalid_key` → 401; `stream_error_after` ends the stream with `response.failed`. Expired tokens get the
//! 401 `token_expired` answer, so a client refreshes.

use std::sync::Arc;

use axum::Router;
use axum::extract::State as Shared;
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::{Value, json};

use crate::accounts::{Account, Flavor, GrantError, TokenState};
use crate::answer::Answer;
use crate::directive::Directive;
use crate::fault::{self, Dialect, ErrorAnswer, Fault, FaultKind, Rendered};
use crate::oauth::{self, AuthorizePolicy, GrantFields, TokenFailure};
use crate::responses::{self, Head, Rendering};
use crate::state::State;
use crate::writer::{self, Delivery, EventBuf};
use crate::{clock, ids, jwt, keys};

/// The Codex CLI's public OAuth client.
pub const CLIENT_ID: &str = "app_EMoamEEZ73f0CkXaXp7hrann";
/// Where `/responses` is served unless configured otherwise (chatgpt.com's path).
pub const DEFAULT_BASE: &str = "/backend-api/codex";
/// Lifetime of access tokens, in seconds (ten days).
pub const EXPIRES_IN: u64 = 864_000;
/// The plan every mock account has.
pub const PLAN: &str = "plus";
/// Models the Responses endpoint serves.
pub const MODELS: &[&str] =
    &["gpt-5", "gpt-5-codex", "gpt-5-codex-mini", "gpt-5.1", "gpt-5.1-codex", "gpt-5.1-codex-max"];
/// The claim holding the ChatGPT account.
pub const AUTH_CLAIM: &str = "https://api.openai.com/auth";
/// Length of the primary (five-hour) and secondary (weekly) usage windows, in minutes.
pub const WINDOW_MINUTES: [u64; 2] = [300, 10_080];

const ISSUER: &str = "https://auth.openai.com";
const SCOPE: &str = "openid profile email offline_access";

pub(crate) const FLAVOR: Flavor = Flavor {
    access: access_token,
    refresh: || ids::token("rt_", 64),
    code: || ids::token("ac_", 48),
    id_token: Some(id_token),
    rotates: true,
    expires_in: EXPIRES_IN,
    org: || ids::token("org-", 24),
};

/// Whether an OAuth request comes from a ChatGPT client (public client ids start `app_`): that tells
/// Codex's requests from Claude's on the `/oauth/*` paths both use.
pub(crate) fn is_client(client_id: Option<&str>) -> bool {
    client_id.is_some_and(|c| c.starts_with("app_"))
}

fn user_id(account: &Account) -> String {
    format!("user-{}", account.id.replace('-', ""))
}

fn id_token(account: &Account, expires_at: u64) -> String {
    let now = clock::unix_now();
    jwt::encode(&json!({
        "iss": ISSUER, "aud": [CLIENT_ID], "sub": format!("auth0|{}", account.id), "iat": now, "auth_time": now,
        "exp": expires_at, "email": account.email, "email_verified": true,
        AUTH_CLAIM: {
            "chatgpt_account_id": account.id, "chatgpt_plan_type": PLAN, "chatgpt_user_id": user_id(account),
            "user_id": user_id(account),
            "organizations": [{"id": account.org, "is_default": true, "role": "owner", "title": "Personal"}],
        },
    }))
}

fn access_token(account: &Account, expires_at: u64) -> String {
    jwt::encode(&json!({
        "iss": ISSUER, "aud": ["https://api.openai.com/v1"], "client_id": CLIENT_ID,
        "sub": format!("auth0|{}", account.id), "iat": clock::unix_now(), "exp": expires_at, "jti": ids::uuid(),
        "scp": ["openid", "profile", "email", "offline_access"],
        AUTH_CLAIM: {"chatgpt_account_id": account.id, "chatgpt_plan_type": PLAN, "user_id": user_id(account)},
        "https://api.openai.com/profile": {"email": account.email, "email_verified": true},
    }))
}

/// `GET /oauth/authorize` for ChatGPT clients: PKCE S256 is required.
pub(crate) fn authorize(state: &Arc<State>, query: &[u8]) -> Response {
    let policy = AuthorizePolicy { pkce_required: true, offline_param: false };
    oauth::authorize(&state.issuers.codex, query, policy)
}

/// A refresh failure in the shape the Codex CLI classifies (`error.code`).
fn refresh_error(code: &str, message: &str) -> Response {
    writer::json(
        StatusCode::UNAUTHORIZED,
        &json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}}),
    )
}

/// `POST /oauth/token` for ChatGPT clients, form-encoded or JSON.
pub(crate) async fn token(state: &Arc<State>, body: &[u8]) -> Response {
    let request = oauth::fields(body);
    let fields = GrantFields {
        code: &["code", "client_id", "redirect_uri", "code_verifier"],
        refresh: &["refresh_token", "client_id"],
    };
    let issued = match oauth::grant(&state.issuers.codex, &request, fields).await {
        Ok(issued) => issued,
        Err(TokenFailure::Request(response)) => return *response,
        Err(TokenFailure::Grant { error: GrantError::ReusedRefresh, .. }) => {
            return refresh_error(
                "refresh_token_reused",
                "Your refresh token has already been used to generate a new access token. Please try signing in again.",
            );
        }
        Err(TokenFailure::Grant { error: GrantError::Revoked, .. }) => {
            return refresh_error(
                "refresh_token_invalidated",
                "Your refresh token has been invalidated. Please try signing in again.",
            );
        }
        Err(TokenFailure::Grant { error, .. }) => {
            let description = match error {
                GrantError::BadVerifier => "Invalid code_verifier.",
                GrantError::WrongRedirect => "redirect_uri does not match the authorization request.",
                GrantError::WrongClient => "The grant was issued to another client.",
                GrantError::UnknownRefresh => "Invalid refresh token.",
                _ => "Invalid authorization code.",
            };
            return oauth::error(StatusCode::BAD_REQUEST, "invalid_grant", description);
        }
    };
    writer::json(
        StatusCode::OK,
        &json!({
            "id_token": issued.id_token, "access_token": issued.access_token, "refresh_token": issued.refresh_token,
            "expires_in": issued.expires_in, "token_type": "Bearer", "scope": SCOPE,
        }),
    )
}

pub(crate) fn routes(base: &str) -> Router<Arc<State>> {
    Router::new().route(&format!("{base}/responses"), post(responses))
}

/// The ChatGPT backend's rendering for one request.
struct Codex {
    now: u64,
}

impl Codex {
    /// The usage-window headers: the primary window `primary_used` percent used, resetting in
    /// `primary_reset` seconds; the secondary one lightly used.
    fn windows(&self, primary_used: u64, primary_reset: u64) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(8);
        for (name, used, reset, minutes) in
            [("primary", primary_used, primary_reset, WINDOW_MINUTES[0]), ("secondary", 5, 345_600, WINDOW_MINUTES[1])]
        {
            for (field, value) in [
                ("used-percent", used),
                ("window-minutes", minutes),
                ("reset-after-seconds", reset),
                ("reset-at", self.now + reset),
            ] {
                if let Ok(name) = HeaderName::from_bytes(format!("x-codex-{name}-{field}").as_bytes()) {
                    headers.insert(name, HeaderValue::from(value));
                }
            }
        }
        headers
    }

    fn send(&self, answer: ErrorAnswer, fault: Option<&Fault>) -> Response {
        answer.into_response(self.windows(12, 7_200), fault)
    }
}

/// `{"detail": …}`, the backend's own errors.
fn detail(status: StatusCode, detail: Value) -> ErrorAnswer {
    ErrorAnswer::json(status, json!({"detail": detail}).to_string())
}

fn bad_request(message: &str) -> ErrorAnswer {
    detail(StatusCode::BAD_REQUEST, json!(message))
}

fn unauthorized() -> ErrorAnswer {
    detail(StatusCode::UNAUTHORIZED, json!("Unauthorized"))
}

fn token_expired() -> ErrorAnswer {
    detail(
        StatusCode::UNAUTHORIZED,
        json!({"message": "Your authentication token has expired. Please try signing in again.",
            "type": "invalid_request_error", "param": null, "code": "token_expired"}),
    )
}

/// `{"error": {…}}`, the errors of the model layer.
fn model_error(status: StatusCode, code: &str, message: &str) -> ErrorAnswer {
    ErrorAnswer::json(
        status,
        json!({"error": {"type": code, "code": code, "message": message, "param": null}}).to_string(),
    )
}

impl Dialect for Codex {
    fn kind_answer(&self, kind: FaultKind, fault: &Fault) -> ErrorAnswer {
        let secs = fault.retry_after_secs();
        match kind {
            FaultKind::RateLimit => {
                let message = format!("Rate limit reached. Please try again in {secs}s.");
                let mut answer = model_error(StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded", &message);
                if let Ok(value) = HeaderValue::from_str(&fault.retry_after()) {
                    answer.headers.insert("retry-after", value);
                }
                answer
            }
            FaultKind::Quota => {
                let mut answer = ErrorAnswer::json(
                    StatusCode::TOO_MANY_REQUESTS,
                    json!({"error": {"type": "usage_limit_reached",
                        "message": "The usage limit has been reached", "plan_type": PLAN,
                        "resets_at": self.now + secs, "resets_in_seconds": secs}})
                    .to_string(),
                );
                answer.headers.extend(self.windows(100, secs));
                answer
            }
            FaultKind::InvalidKey => unauthorized(),
            FaultKind::Overloaded => model_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_is_overloaded",
                "Our servers are currently overloaded. Please try again later.",
            ),
            FaultKind::ServerError => model_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "An error occurred while processing your request.",
            ),
        }
    }

    fn status_answer(&self, status: StatusCode) -> ErrorAnswer {
        match status.as_u16() {
            401 => unauthorized(),
            429 => model_error(status, "rate_limit_exceeded", "Rate limit reached. Please try again later."),
            s if s >= 500 => model_error(status, "server_error", "An error occurred while processing your request."),
            _ => detail(status, json!(status.canonical_reason().unwrap_or("Error"))),
        }
    }
}

/// The account of the bearer token (`None` for a token the mock did not issue but whose spelling is fine),
/// or the 401 refusing it.
fn authenticate(state: &State, headers: &HeaderMap) -> Result<Option<Account>, Box<ErrorAnswer>> {
    let Some(token) = keys::bearer(headers) else {
        return Err(Box::new(unauthorized()));
    };
    let refusal = match state.issuers.codex.access(token) {
        TokenState::Valid(account) => return Ok(Some(account)),
        TokenState::Expired => token_expired(),
        TokenState::Revoked => unauthorized(),
        TokenState::Unknown if keys::names_any(token, &["expired"]) => token_expired(),
        TokenState::Unknown if keys::names_any(token, &["bad", "invalid", "revoked"]) => unauthorized(),
        TokenState::Unknown => return Ok(None),
    };
    Err(Box::new(refusal))
}

/// The first Codex header that is missing or wrong, as a 400 message.
fn header_problem(headers: &HeaderMap, account: Option<&Account>) -> Option<ErrorAnswer> {
    let present = |name: &str| keys::header(headers, name).is_some_and(|v| !v.trim().is_empty());
    for name in ["chatgpt-account-id", "originator", "session_id", "version"] {
        if !present(name) {
            return Some(bad_request(&format!("Missing required header: {name}")));
        }
    }
    if !keys::list_header_contains(headers, "openai-beta", "responses=experimental") {
        return Some(bad_request("Missing required header: openai-beta: responses=experimental"));
    }
    if !keys::header(headers, "accept").is_some_and(|a| a.contains("text/event-stream")) {
        return Some(bad_request("Missing required header: accept: text/event-stream"));
    }
    match account {
        Some(account) if keys::header(headers, "chatgpt-account-id") != Some(account.id.as_str()) => Some(detail(
            StatusCode::FORBIDDEN,
            json!("chatgpt-account-id does not match the account of the access token"),
        )),
        _ => None,
    }
}

/// What the body of a request for `model` must hold, as a 400 message.
fn body_problem(request: &Value, model: &str) -> Option<String> {
    if !MODELS.contains(&model) {
        return Some(format!("The '{model}' model is not supported when using Codex with a ChatGPT account."));
    }
    if request.get("stream") != Some(&Value::Bool(true)) {
        return Some("Stream must be set to true".to_owned());
    }
    if request.get("store") != Some(&Value::Bool(false)) {
        return Some("Store must be set to false".to_owned());
    }
    None
}

async fn responses(Shared(state): Shared<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    let token = keys::bearer(&headers);
    state.count_hit(token);
    let dialect = Codex { now: clock::unix_now() };
    let account = match authenticate(&state, &headers) {
        Ok(account) => account,
        Err(answer) => return answer.into_response(HeaderMap::new(), None),
    };
    if let Some(answer) = header_problem(&headers, account.as_ref()) {
        return dialect.send(answer, None);
    }
    let request = match serde_json::from_slice::<Value>(&body) {
        Ok(request @ Value::Object(_)) => request,
        _ => return dialect.send(bad_request("The request body must be a JSON object"), None),
    };
    let Some(model) = request.get("model").and_then(Value::as_str) else {
        return dialect.send(bad_request("Missing required parameter: 'model'."), None);
    };
    if let Some(message) = body_problem(&request, model) {
        return dialect.send(bad_request(&message), None);
    }
    let directive = match Directive::find(responses::request_texts(&request)) {
        Ok(found) => found.unwrap_or_default(),
        Err(message) => return dialect.send(bad_request(&message), None),
    };
    let fault = directive.fault_for(token, account.as_ref().and_then(|a| a.fault.as_deref()), model);
    if let Some(fault) = fault {
        fault.hang().await;
        if let Some(answer) = fault.error_answer(&dialect) {
            return dialect.send(answer, Some(fault));
        }
    }
    let answer = Answer::new(&directive, body.len(), "call_");
    let head = Head::new(model);
    let rendering = Rendering::new(&head, &answer, &request);
    let mut out = dialect.windows(12, 7_200);
    out.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    out.insert("cache-control", HeaderValue::from_static("no-cache"));
    let in_stream_error = |events: &mut EventBuf| {
        responses::failed(events, &head, "server_error", "An error occurred while processing your request.");
    };
    let delivery = Delivery::new(&directive, true);
    fault::deliver(fault, Rendered::Events(rendering.events()), in_stream_error, delivery, out, &state)
}
