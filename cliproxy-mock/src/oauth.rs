//! The Claude OAuth token endpoint (`/v1/oauth/token`, also at `/oauth/token` as older clients
//! post there): the authorization-code exchange and the refresh grant, issuing fresh
//! `sk-ant-oat01-…` access tokens that the messages endpoint accepts.

use std::sync::Arc;

use axum::Router;
use axum::response::Response;
use axum::routing::post;
use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};

use crate::state::State;
use crate::{ids, writer};

/// Lifetime of issued access tokens, in seconds (eight hours, as Claude issues them).
pub const EXPIRES_IN: u64 = 28_800;

/// Scopes granted when the request names none.
pub const DEFAULT_SCOPE: &str = "user:profile user:inference user:sessions:claude_code";

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new().route("/v1/oauth/token", post(token)).route("/oauth/token", post(token))
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    writer::whole(status, headers, body.to_string().into())
}

/// An OAuth 2 error answer (`{"error","error_description"}`).
fn oauth_error(error: &str, description: &str) -> Response {
    json_response(StatusCode::BAD_REQUEST, &json!({"error": error, "error_description": description}))
}

async fn token(body: Bytes) -> Response {
    let Ok(Value::Object(request)) = serde_json::from_slice::<Value>(&body) else {
        return oauth_error("invalid_request", "Request body must be a JSON object");
    };
    let field = |name: &str| request.get(name).and_then(Value::as_str).filter(|v| !v.is_empty());
    let required: &[&str] = match field("grant_type") {
        Some("authorization_code") => &["code", "code_verifier", "client_id", "redirect_uri"],
        Some("refresh_token") => &["refresh_token", "client_id"],
        Some(other) => {
            return oauth_error("unsupported_grant_type", &format!("Unsupported grant_type: {other}"));
        }
        None => return oauth_error("invalid_request", "Missing required parameter: grant_type"),
    };
    if let Some(missing) = required.iter().find(|name| field(name).is_none()) {
        return oauth_error("invalid_request", &format!("Missing required parameter: {missing}"));
    }
    if field("code").is_some_and(|c| c.contains("invalid")) {
        return oauth_error("invalid_grant", "Invalid 'code' in request.");
    }
    if field("refresh_token").is_some_and(|t| t.contains("invalid")) {
        return oauth_error("invalid_grant", "Refresh token not found or invalid.");
    }
    json_response(
        StatusCode::OK,
        &json!({
            "access_token": ids::token("sk-ant-oat01-", 86),
            "refresh_token": ids::token("sk-ant-ort01-", 86),
            "token_type": "Bearer",
            "expires_in": EXPIRES_IN,
            "scope": field("scope").unwrap_or(DEFAULT_SCOPE),
            "organization": {"uuid": ids::uuid(), "name": "Example Organization"},
            "account": {"uuid": ids::uuid(), "email_address": "user@example.com"},
        }),
    )
}
