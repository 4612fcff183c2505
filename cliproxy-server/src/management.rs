//! The management API (`/v0/management/*`), behind [`crate::auth::ManagementAuth`]: 404 while no secret is
//! configured, loopback only unless `allow-remote`, bans after repeated failures.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cliproxy_core::timefmt::format_rfc3339;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::auth::Denied;

type S = State<Arc<AppState>>;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v0/management/cooldowns", get(list_cooldowns).delete(reset_cooldowns))
        .route("/v0/management/credentials", get(list_credentials))
}

/// The response for a refused management request.
pub fn denied(d: Denied) -> Response {
    let (status, msg) = match d {
        Denied::Disabled => (StatusCode::NOT_FOUND, "not found".to_string()),
        Denied::RemoteNotAllowed => (
            StatusCode::FORBIDDEN,
            "remote management is disabled: set remote-management.allow-remote: true".to_string(),
        ),
        Denied::Banned(secs) => {
            (StatusCode::FORBIDDEN, format!("too many failed attempts; banned for {secs} more seconds"))
        }
        Denied::BadSecret => (StatusCode::UNAUTHORIZED, "missing or invalid management key".to_string()),
    };
    (status, axum::Json(json!({"error": msg}))).into_response()
}

fn seconds_left(until: SystemTime) -> u64 {
    until.duration_since(SystemTime::now()).map_or(0, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

async fn list_cooldowns(State(state): S, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    if let Err(d) = state.management.check(peer, &headers) {
        return denied(d);
    }
    let list: Vec<_> = state
        .client
        .cooldowns()
        .into_iter()
        .map(|c| {
            json!({
                "credential": c.credential,
                "model": c.model,
                "until": format_rfc3339(c.until),
                "seconds_left": seconds_left(c.until),
                "reason": c.reason,
            })
        })
        .collect();
    axum::Json(json!({"cooldowns": list})).into_response()
}

#[derive(Deserialize)]
struct ResetQuery {
    credential: Option<String>,
    model: Option<String>,
}

async fn reset_cooldowns(
    State(state): S,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(q): Query<ResetQuery>,
) -> Response {
    if let Err(d) = state.management.check(peer, &headers) {
        return denied(d);
    }
    let cleared = state.client.reset_cooldowns(q.credential.as_deref(), q.model.as_deref());
    axum::Json(json!({"cleared": cleared})).into_response()
}

async fn list_credentials(State(state): S, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    if let Err(d) = state.management.check(peer, &headers) {
        return denied(d);
    }
    let list: Vec<_> = state
        .client
        .credentials()
        .into_iter()
        .map(|c| {
            json!({
                "id": c.id,
                "provider": c.provider,
                "priority": c.priority,
                "state": c.state.as_str(),
                "reason": c.state.reason(),
                "expires_at": c.expires_at.map(format_rfc3339),
            })
        })
        .collect();
    axum::Json(json!({"credentials": list})).into_response()
}
