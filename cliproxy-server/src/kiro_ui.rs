//! The Kiro login page, `GET /v0/oauth/kiro`, and the JSON actions it calls, all behind the management auth.
//!
//! A browser cannot send the management key as a header, so the page first shows a form that posts the secret
//! to `POST /v0/oauth/kiro/login`; a right secret starts a management session ([`crate::sessions`]): its
//! cookie holds an opaque id with a 12-hour expiry (HttpOnly, SameSite=Strict, Path=/v0), never the secret.
//! The same checks as every management route apply: loopback only unless `allow-remote`, throttling after
//! repeated wrong secrets, 404 while no secret is configured.
//!
//! The page starts Builder ID and Identity Center logins through the shared login endpoints
//! (`/v0/management/login/kiro`, polled for live status) and uses these actions:
//! - `GET /v0/oauth/kiro/accounts`: the Kiro accounts with state (ready / needs login / disabled and why),
//!   token expiry and quota;
//! - `POST /v0/oauth/kiro/import`: copies the Kiro IDE's session into the auth-dir;
//! - `POST /v0/oauth/kiro/token` `{refresh_token}`: adds a Google/GitHub (social) account from a pasted refresh
//!   token, validated by refreshing it;
//! - `POST /v0/oauth/kiro/refresh`: refreshes every Kiro account now, `{success, refreshed_count, warnings}`.
//!
//! The page is a static file: everything dynamic is fetched as JSON and written with `textContent`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cliproxy_core::Error;
use cliproxy_core::timefmt::format_rfc3339;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{Denied, peer};
use crate::family::{ApiError, Family};
use crate::sessions::Sessions;

type S = State<Arc<AppState>>;

const PAGE: &str = include_str!("kiro_ui.html");
const LOGIN_PAGE: &str = include_str!("kiro_ui_login.html");

/// The pages, which check the management key themselves (a missing one gets the login form).
pub fn pages() -> Router<Arc<AppState>> {
    Router::new().route("/v0/oauth/kiro", get(page)).route("/v0/oauth/kiro/login", post(login))
}

/// The JSON actions of the page (behind the management middleware).
pub fn actions() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v0/oauth/kiro/accounts", get(accounts))
        .route("/v0/oauth/kiro/import", post(import))
        .route("/v0/oauth/kiro/token", post(add_token))
        .route("/v0/oauth/kiro/refresh", post(refresh_all))
}

fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    r
}

fn login_form(status: StatusCode, message: &str) -> Response {
    html(status, LOGIN_PAGE.replace("{{message}}", message))
}

/// A refusal the login form can explain, or the HTML error page.
fn refused(d: Denied) -> Response {
    match d {
        Denied::Missing => login_form(StatusCode::UNAUTHORIZED, ""),
        Denied::BadSecret => login_form(StatusCode::UNAUTHORIZED, "Wrong management key, or the session expired."),
        Denied::Locked(left) => {
            let mut r = login_form(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Too many failed attempts: try again in {} s.", left.as_secs().max(1)),
            );
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(left.as_secs().max(1)));
            r
        }
        d => ApiError::new(Family::Html, d.into_error()).into_response(),
    }
}

async fn page(State(state): S, req: Request) -> Response {
    match state.management.check(peer(&req), req.headers()) {
        Ok(()) => html(StatusCode::OK, PAGE.to_owned()),
        Err(d) => refused(d),
    }
}

/// The form's `secret` field (URL-encoded form body).
fn form_secret(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body).find(|(k, v)| k == "secret" && !v.is_empty()).map(|(_, v)| v.into_owned())
}

async fn login(State(state): S, req: Request) -> Response {
    let ip = peer(&req);
    let body = match crate::body::read(req.into_body(), 64 << 10, state.limits.body_read, Family::Html).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let secret = form_secret(&body);
    if let Err(d) = state.management.check_secret(ip, secret.as_deref()) {
        return refused(d);
    }
    let id = match state.management.sessions.start() {
        Ok(id) => id,
        Err(e) => {
            let e = Error::config(format!("cannot start a session: {e}"));
            return ApiError::new(Family::Html, e).into_response();
        }
    };
    let mut r = StatusCode::SEE_OTHER.into_response();
    let h = r.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_static("/v0/oauth/kiro"));
    if let Ok(v) = HeaderValue::from_str(&Sessions::cookie(&id)) {
        h.insert(header::SET_COOKIE, v);
    }
    r
}

fn core_error(e: Error) -> Response {
    ApiError::new(Family::Management, e).into_response()
}

/// The Kiro accounts as the page shows them.
pub fn kiro_accounts(client: &cliproxy_core::Client) -> Vec<Value> {
    client
        .credentials()
        .into_iter()
        .filter(|c| c.provider == "kiro")
        .map(|c| {
            json!({
                "id": c.id,
                "state": c.state.as_str(),
                "reason": c.state.reason(),
                "expires_at": c.expires_at.map(format_rfc3339),
                "priority": c.priority,
                "quota": c.quota,
            })
        })
        .collect()
}

async fn accounts(State(state): S) -> Response {
    axum::Json(json!({"accounts": kiro_accounts(&state.client)})).into_response()
}

async fn import(State(state): S) -> Response {
    let client = state.client.clone();
    match tokio::task::spawn_blocking(move || client.import("kiro")).await {
        Ok(Ok(files)) => {
            let files: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
            axum::Json(json!({"imported": files})).into_response()
        }
        Ok(Err(e)) => core_error(e),
        Err(_) => core_error(Error::config("import failed")),
    }
}

async fn add_token(State(state): S, body: Body) -> Response {
    let body = match crate::management::read_body(&state, body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let token = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("refresh_token").and_then(Value::as_str).map(str::to_owned));
    let Some(token) = token else {
        return core_error(Error::invalid_request("body must be {\"refresh_token\": \"…\"}"));
    };
    match state.client.add_account("kiro", &token).await {
        Ok(id) => axum::Json(json!({"credential": id})).into_response(),
        Err(e) => core_error(e),
    }
}

async fn refresh_all(State(state): S) -> Response {
    let (refreshed, failed) = state.client.refresh_accounts(Some("kiro"), None).await;
    let warnings: Vec<String> = failed.iter().map(|(id, e)| format!("{id}: {}", e.message())).collect();
    axum::Json(json!({"success": warnings.is_empty(), "refreshed_count": refreshed.len(), "warnings": warnings}))
        .into_response()
}
