//! The accounts page, `GET /v0/oauth/accounts` (also served at `/v0/oauth/kiro`, where it began as the Kiro
//! page), and the JSON actions it calls, all behind the management auth.
//!
//! A browser cannot send the management key as a header, so the page first shows a form that posts the secret
//! to `POST <page>/login`; a right secret starts a management session ([`crate::sessions`]): its cookie holds an
//! opaque id with a 12-hour expiry (HttpOnly, SameSite=Strict, Path=/v0), never the secret. The same checks as
//! every management route apply: loopback only unless `allow-remote`, throttling after repeated wrong secrets,
//! 404 while no secret is configured.
//!
//! The page lists every account (`GET /v0/management/credentials`: state, token expiry, quota or rate-limit
//! windows), starts logins through the shared login endpoints (`/v0/management/login/{type}`, polled for live
//! status; a Claude login's code can be pasted there too) and uses these actions, `{type}` being an account
//! type (`claude`, `copilot`, `kiro`, …):
//! - `GET /v0/oauth/{type}/accounts`: the accounts of one type with state, token expiry and quota;
//! - `POST /v0/oauth/{type}/import`: copies another tool's login (Claude Code, the Kiro IDE, an editor's
//!   Copilot plugin) into the auth-dir;
//! - `POST /v0/oauth/{type}/token` `{refresh_token}`: adds an account from a pasted token (Kiro's Google/GitHub
//!   logins), validated by refreshing it;
//! - `POST /v0/oauth/{type}/refresh`, and `POST /v0/oauth/accounts/refresh` for every account: refreshes now,
//!   `{success, refreshed_count, warnings}`.
//!
//! The page is a static file: everything dynamic is fetched as JSON and written with `textContent`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
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

const PAGE: &str = include_str!("accounts_ui.html");
const LOGIN_PAGE: &str = include_str!("accounts_ui_login.html");

/// Where the page is served: its own path, and the Kiro page's, which it grew out of.
const PAGE_PATHS: [&str; 2] = ["/v0/oauth/accounts", "/v0/oauth/kiro"];

/// The pages, which check the management key themselves (a missing one gets the login form).
pub fn pages() -> Router<Arc<AppState>> {
    PAGE_PATHS.iter().fold(Router::new(), |r, path| {
        r.route(path, get(move |s: S, req: Request| page(s, req, path)))
            .route(&format!("{path}/login"), post(move |s: S, req: Request| login(s, req, path)))
    })
}

/// The JSON actions of the page (behind the management middleware).
pub fn actions() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v0/oauth/accounts/refresh", post(refresh_every))
        .route("/v0/oauth/{kind}/accounts", get(accounts))
        .route("/v0/oauth/{kind}/import", post(import))
        .route("/v0/oauth/{kind}/token", post(add_token))
        .route("/v0/oauth/{kind}/refresh", post(refresh_kind))
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

/// The management-key form; it posts to `<page>/login`, which comes back to `page`.
fn login_form(status: StatusCode, page: &str, message: &str) -> Response {
    html(status, LOGIN_PAGE.replace("{{page}}", page).replace("{{message}}", message))
}

/// A refusal the login form can explain, or the HTML error page.
fn refused(d: Denied, page: &str) -> Response {
    match d {
        Denied::Missing => login_form(StatusCode::UNAUTHORIZED, page, ""),
        Denied::BadSecret => {
            login_form(StatusCode::UNAUTHORIZED, page, "Wrong management key, or the session expired.")
        }
        Denied::Locked(left) => {
            let mut r = login_form(
                StatusCode::TOO_MANY_REQUESTS,
                page,
                &format!("Too many failed attempts: try again in {} s.", left.as_secs().max(1)),
            );
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(left.as_secs().max(1)));
            r
        }
        d => ApiError::new(Family::Html, d.into_error()).into_response(),
    }
}

async fn page(State(state): S, req: Request, path: &'static str) -> Response {
    match state.management.check(peer(&req), req.headers()) {
        Ok(()) => html(StatusCode::OK, PAGE.to_owned()),
        Err(d) => refused(d, path),
    }
}

/// The form's `secret` field (URL-encoded form body).
fn form_secret(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body).find(|(k, v)| k == "secret" && !v.is_empty()).map(|(_, v)| v.into_owned())
}

async fn login(State(state): S, req: Request, path: &'static str) -> Response {
    let ip = peer(&req);
    let body = match crate::body::read(req.into_body(), 64 << 10, state.limits.body_read, Family::Html).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let secret = form_secret(&body);
    if let Err(d) = state.management.check_secret(ip, secret.as_deref()) {
        return refused(d, path);
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
    h.insert(header::LOCATION, HeaderValue::from_static(path));
    if let Ok(v) = HeaderValue::from_str(&Sessions::cookie(&id)) {
        h.insert(header::SET_COOKIE, v);
    }
    r
}

fn core_error(e: Error) -> Response {
    ApiError::new(Family::Management, e).into_response()
}

/// The accounts of one type as the page shows them (the type's name is its credentials' provider id).
pub fn accounts_of(client: &cliproxy_core::Client, kind: &str) -> Vec<Value> {
    client
        .credentials()
        .into_iter()
        .filter(|c| c.provider == kind)
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

async fn accounts(State(state): S, Path(kind): Path<String>) -> Response {
    axum::Json(json!({"accounts": accounts_of(&state.client, &kind)})).into_response()
}

async fn import(State(state): S, Path(kind): Path<String>) -> Response {
    let client = state.client.clone();
    match tokio::task::spawn_blocking(move || client.import(&kind)).await {
        Ok(Ok(files)) => {
            let files: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
            axum::Json(json!({"imported": files})).into_response()
        }
        Ok(Err(e)) => core_error(e),
        Err(_) => core_error(Error::config("import failed")),
    }
}

async fn add_token(State(state): S, Path(kind): Path<String>, body: Body) -> Response {
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
    match state.client.add_account(&kind, &token).await {
        Ok(id) => axum::Json(json!({"credential": id})).into_response(),
        Err(e) => core_error(e),
    }
}

async fn refresh_kind(State(state): S, Path(kind): Path<String>) -> Response {
    refreshed(state.client.refresh_accounts(Some(&kind), None).await)
}

async fn refresh_every(State(state): S) -> Response {
    refreshed(state.client.refresh_accounts(None, None).await)
}

fn refreshed((refreshed, failed): (Vec<String>, Vec<(String, Error)>)) -> Response {
    let warnings: Vec<String> = failed.iter().map(|(id, e)| format!("{id}: {}", e.message())).collect();
    axum::Json(json!({"success": warnings.is_empty(), "refreshed_count": refreshed.len(), "warnings": warnings}))
        .into_response()
}
