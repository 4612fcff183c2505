//! The Kiro login page, `GET /v0/oauth/kiro`, and the JSON actions it calls, all behind the management auth.
//!
//! A browser cannot send the management key as a header, so the page first shows a form that posts the secret
//! to `POST /v0/oauth/kiro/login`; a right secret sets the `cliproxy_mgmt` cookie (HttpOnly, SameSite=Strict,
//! so other sites cannot ride on it) and the same checks as every management route apply: loopback only unless
//! `allow-remote`, bans after repeated failures, 404 while no secret is configured.
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

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cliproxy_core::timefmt::format_rfc3339;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::{COOKIE, Denied};
use crate::management::denied;

type S = State<Arc<AppState>>;

const PAGE: &str = include_str!("kiro_ui.html");
const LOGIN_PAGE: &str = include_str!("kiro_ui_login.html");

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v0/oauth/kiro", get(page))
        .route("/v0/oauth/kiro/login", post(login))
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

/// Whether the request presents any management secret at all (a visit without one just gets the form, and
/// does not count as a failed attempt).
fn presents_secret(headers: &HeaderMap) -> bool {
    headers.contains_key(header::AUTHORIZATION)
        || headers.contains_key("x-management-key")
        || headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|c| c.split(';').any(|kv| kv.trim().starts_with(&format!("{COOKIE}="))))
}

async fn page(State(state): S, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    if !state.management.enabled() {
        return denied(Denied::Disabled);
    }
    if !presents_secret(&headers) {
        return login_form(StatusCode::UNAUTHORIZED, "");
    }
    match state.management.check(peer, &headers) {
        Ok(()) => html(StatusCode::OK, PAGE.to_owned()),
        Err(Denied::BadSecret) => login_form(StatusCode::UNAUTHORIZED, "The saved key is no longer valid."),
        Err(d) => denied(d),
    }
}

/// The form's `secret` field (URL-encoded form body).
fn form_secret(body: &[u8]) -> Option<String> {
    form_urlencoded::parse(body).find(|(k, _)| k == "secret").map(|(_, v)| v.into_owned())
}

/// Percent-encodes everything but RFC 3986 unreserved characters, so any secret is a valid cookie value.
fn cookie_encode(s: &str) -> String {
    const RESERVED: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    percent_encoding::utf8_percent_encode(s, RESERVED).to_string()
}

async fn login(State(state): S, ConnectInfo(peer): ConnectInfo<SocketAddr>, body: Bytes) -> Response {
    if !state.management.enabled() {
        return denied(Denied::Disabled);
    }
    let secret = form_secret(&body);
    match state.management.check_secret(peer, secret.as_deref()) {
        Ok(()) => {
            let cookie = format!(
                "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
                cookie_encode(secret.as_deref().unwrap_or_default())
            );
            let mut r = StatusCode::SEE_OTHER.into_response();
            let h = r.headers_mut();
            h.insert(header::LOCATION, HeaderValue::from_static("/v0/oauth/kiro"));
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                h.insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(Denied::BadSecret) => login_form(StatusCode::UNAUTHORIZED, "Wrong management key."),
        Err(Denied::Banned(secs)) => {
            login_form(StatusCode::FORBIDDEN, &format!("Too many failed attempts: try again in {secs} s."))
        }
        Err(d) => denied(d),
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": message}))).into_response()
}

fn core_error(e: &cliproxy_core::Error) -> Response {
    error(StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_GATEWAY), e.message())
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

async fn accounts(State(state): S, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    if let Err(d) = state.management.check(peer, &headers) {
        return denied(d);
    }
    axum::Json(json!({"accounts": kiro_accounts(&state.client)})).into_response()
}

async fn import(State(state): S, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    if let Err(d) = state.management.check(peer, &headers) {
        return denied(d);
    }
    let client = state.client.clone();
    match tokio::task::spawn_blocking(move || client.import("kiro")).await {
        Ok(Ok(files)) => {
            let files: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
            axum::Json(json!({"imported": files})).into_response()
        }
        Ok(Err(e)) => core_error(&e),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "import failed"),
    }
}

async fn add_token(
    State(state): S,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(d) = state.management.check(peer, &headers) {
        return denied(d);
    }
    let token = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("refresh_token").and_then(Value::as_str).map(str::to_owned));
    let Some(token) = token else {
        return error(StatusCode::BAD_REQUEST, "body must be {\"refresh_token\": \"…\"}");
    };
    match state.client.add_account("kiro", &token).await {
        Ok(id) => axum::Json(json!({"credential": id})).into_response(),
        Err(e) => core_error(&e),
    }
}

async fn refresh_all(State(state): S, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    if let Err(d) = state.management.check(peer, &headers) {
        return denied(d);
    }
    let (refreshed, failed) = state.client.refresh_accounts(Some("kiro"), None).await;
    let warnings: Vec<String> = failed.iter().map(|(id, e)| format!("{id}: {}", e.message())).collect();
    axum::Json(json!({"success": warnings.is_empty(), "refreshed_count": refreshed.len(), "warnings": warnings}))
        .into_response()
}
