//! Gemini Code Assist (cloudcode-pa.googleapis.com `v1internal`), the API behind Gemini CLI's Google login.
//! Every call wants a Google OAuth bearer ([`crate::google_oauth`]); tokens the mock did not issue are judged
//! by their spelling (`ya29.…`) and belong to no account, with project [`DEFAULT_PROJECT`].
//!
//! - `POST /v1internal:loadCodeAssist`: an onboarded account gets `currentTier` and its
//!   `cloudaicompanionProject`; a new one only `allowedTiers` (free tier by default).
//! - `POST /v1internal:onboardUser` (`tierId` required; the free tier refuses a `cloudaicompanionProject` with
//!   400 `FAILED_PRECONDITION`): a long-running operation. A new account's first call answers
//!   `{"name":"operations/…","done":false}`; the next call, or `GET /v1internal/operations/{id}`, answers
//!   `done: true` with `response.cloudaicompanionProject.id`.
//! - `POST /v1internal:generateContent` and `:streamGenerateContent?alt=sse`: the `{model, project,
//!   user_prompt_id, request}` envelope, answered `{"response": <generateContent response>, "traceId"}` per
//!   chunk; `project` is required, and an account that has not finished onboarding gets 403.
//! - `POST /v1internal:countTokens` (`{"request": {"model", "contents"}}` → `{"totalTokens"}`) and
//!   `POST /v1internal:retrieveUserQuota` (a bucket per model).
//!
//! Faults are Gemini's (see [`crate::gemini`]) with Code Assist's quota shape: the 429's `details` hold an
//! `ErrorInfo` of domain `cloudcode-pa.googleapis.com` (`RATE_LIMIT_EXCEEDED` for `rate_limit`,
//! `QUOTA_EXHAUSTED` for `quota`) naming the model, a `QuotaFailure` (`…PerMinute…` / `…PerDay…`) and a
//! `RetryInfo`. A fault's `model` limits it to one model, so a client's fallback to another model succeeds.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State as Shared};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::accounts::{Account, Onboarding};
use crate::fault::ErrorAnswer;
use crate::gemini::{self, Framing, Google, MODELS, Reply, Service, google_error, invalid_argument, send};
use crate::state::State;
use crate::{clock, ids, keys, writer};

/// The project of callers whose token the mock did not issue.
pub const DEFAULT_PROJECT: &str = "mock-project";
/// The tier onboarding picks by default.
pub const FREE_TIER: &str = "free-tier";

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/v1internal:loadCodeAssist", post(load_code_assist))
        .route("/v1internal:onboardUser", post(onboard_user))
        .route("/v1internal:generateContent", post(generate))
        .route("/v1internal:streamGenerateContent", post(stream_generate))
        .route("/v1internal:countTokens", post(count_tokens))
        .route("/v1internal:retrieveUserQuota", post(retrieve_user_quota))
        .route("/v1internal/operations/{id}", get(operation))
}

/// The bearer's account (`None` for a well-spelled token the mock did not issue), or the 401.
fn caller(state: &State, headers: &HeaderMap) -> Result<Option<Account>, Box<ErrorAnswer>> {
    let token = keys::bearer(headers).ok_or_else(|| Box::new(gemini::unauthenticated(false)))?;
    gemini::bearer_account(state, token)
}

fn project_of(account: Option<&Account>) -> &str {
    account.map_or(DEFAULT_PROJECT, |a| a.org.as_str())
}

fn tier(id: &str) -> Value {
    match id {
        FREE_TIER => json!({"id": FREE_TIER, "name": "Gemini Code Assist for individuals",
            "description": "Unlimited coding assistant with the most powerful Gemini models",
            "userDefinedCloudaicompanionProject": false, "isDefault": true}),
        _ => json!({"id": "standard-tier", "name": "Gemini Code Assist",
            "description": "Unlimited coding assistant with the most powerful Gemini models",
            "userDefinedCloudaicompanionProject": true}),
    }
}

async fn load_code_assist(Shared(state): Shared<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    let account = match caller(&state, &headers).and_then(|a| gemini::json_object(&body).map(|_| a)) {
        Ok(account) => account,
        Err(answer) => return send(*answer, None),
    };
    let mut answer = json!({"allowedTiers": [tier(FREE_TIER), tier("standard-tier")], "gcpManaged": false});
    if account.as_ref().is_none_or(|a| a.onboarding == Onboarding::Done) {
        answer["currentTier"] = tier(FREE_TIER);
        answer["cloudaicompanionProject"] = json!(project_of(account.as_ref()));
    }
    writer::json(StatusCode::OK, &answer)
}

fn operation_name(account: Option<&Account>) -> String {
    format!("operations/onboard-{}", account.map_or("mock", |a| a.id.as_str()))
}

/// The finished onboarding operation.
fn onboarded(account: Option<&Account>) -> Value {
    let project = project_of(account);
    json!({"name": operation_name(account), "done": true, "response": {
        "@type": "type.googleapis.com/google.internal.cloud.code.v1internal.OnboardUserResponse",
        "cloudaicompanionProject": {"id": project, "name": project}}})
}

async fn onboard_user(Shared(state): Shared<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    let (account, request) = match caller(&state, &headers).and_then(|a| gemini::json_object(&body).map(|r| (a, r))) {
        Ok(found) => found,
        Err(answer) => return send(*answer, None),
    };
    let Some(tier_id) = request.get("tierId").and_then(Value::as_str) else {
        return send(invalid_argument("tierId is required"), None);
    };
    if tier_id == FREE_TIER && request.get("cloudaicompanionProject").is_some_and(|p| !p.is_null()) {
        let answer =
            google_error(StatusCode::BAD_REQUEST, "FAILED_PRECONDITION", "Precondition check failed.", Vec::new());
        return send(answer, None);
    }
    let step = account.as_ref().map(|a| state.issuers.google.onboard(&a.email));
    match step {
        Some(Some(Onboarding::Pending)) => {
            writer::json(StatusCode::OK, &json!({"name": operation_name(account.as_ref()), "done": false}))
        }
        _ => writer::json(StatusCode::OK, &onboarded(account.as_ref())),
    }
}

async fn operation(Shared(state): Shared<Arc<State>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let account = match caller(&state, &headers) {
        Ok(account) => account,
        Err(answer) => return send(*answer, None),
    };
    let name = format!("operations/{id}");
    let finished = account
        .as_ref()
        .filter(|a| operation_name(Some(a)) == name)
        .and_then(|a| state.issuers.google.poll_onboarding(&a.email));
    match finished {
        Some(_) => writer::json(StatusCode::OK, &onboarded(account.as_ref())),
        None => send(gemini::not_found(&format!("Operation {name} not found.")), None),
    }
}

async fn generate(state: Shared<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    generate_content(state, headers, body, None).await
}

async fn stream_generate(
    state: Shared<Arc<State>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    generate_content(state, headers, body, Some(Framing::from_query(query.as_deref()))).await
}

/// The `{model, project, user_prompt_id, request}` envelope around a `generateContent` request, checked.
fn envelope<'a>(request: &'a Value, account: Option<&Account>) -> Result<(&'a str, &'a Value), Box<ErrorAnswer>> {
    let field = |name: &str| request.get(name).filter(|v| !v.is_null());
    let model = field("model").and_then(Value::as_str);
    let inner = field("request").filter(|r| r.is_object());
    let project = field("project").and_then(Value::as_str).filter(|p| !p.is_empty());
    let (Some(model), Some(inner), Some(project)) = (model, inner, project) else {
        return Err(Box::new(invalid_argument("model, project and request are required")));
    };
    if account.is_some_and(|a| a.onboarding != Onboarding::Done) {
        let message = format!("Permission denied on resource project {project}: the user has not been onboarded.");
        return Err(Box::new(google_error(StatusCode::FORBIDDEN, "PERMISSION_DENIED", &message, Vec::new())));
    }
    if !MODELS.iter().any(|(m, _)| *m == model) {
        return Err(Box::new(gemini::not_found("Requested entity was not found.")));
    }
    gemini::check_contents(inner)?;
    Ok((model, inner))
}

async fn generate_content(
    Shared(state): Shared<Arc<State>>,
    headers: HeaderMap,
    body: Bytes,
    stream: Option<Framing>,
) -> Response {
    let token = keys::bearer(&headers);
    state.count_hit(token);
    let account = match caller(&state, &headers) {
        Ok(account) => account,
        Err(answer) => return send(*answer, None),
    };
    let request = match gemini::json_object(&body) {
        Ok(request) => request,
        Err(answer) => return send(*answer, None),
    };
    let (model, inner) = match envelope(&request, account.as_ref()) {
        Ok(found) => found,
        Err(answer) => return send(*answer, None),
    };
    let dialect = Google { service: Service::CodeAssist, model, bearer: true };
    let trace = ids::token("", 16).to_ascii_lowercase();
    let reply = Reply { model, response_id: ids::token("", 22), wrap: Some(&trace), stream };
    let account_fault = account.as_ref().and_then(|a| a.fault.as_deref());
    reply.deliver(&state, &dialect, inner, body.len(), token, account_fault).await
}

async fn count_tokens(Shared(state): Shared<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    let request = match caller(&state, &headers).and_then(|_| gemini::json_object(&body)) {
        Ok(request) => request,
        Err(answer) => return send(*answer, None),
    };
    let Some(inner) = request.get("request") else {
        return send(invalid_argument("request is required"), None);
    };
    match gemini::total_tokens(inner, body.len()) {
        Ok(total) => writer::json(StatusCode::OK, &json!({ "totalTokens": total })),
        Err(answer) => send(*answer, None),
    }
}

async fn retrieve_user_quota(Shared(state): Shared<Arc<State>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(answer) = caller(&state, &headers).and_then(|_| gemini::json_object(&body)) {
        return send(*answer, None);
    }
    let reset = clock::rfc3339(clock::unix_now() / 86_400 * 86_400 + 86_400);
    let buckets: Vec<Value> = MODELS
        .iter()
        .map(|(model, _)| json!({"remainingFraction": 0.9, "resetTime": reset, "tokenType": "REQUESTS", "modelId": model}))
        .collect();
    writer::json(StatusCode::OK, &json!({ "buckets": buckets }))
}
