//! The management API (`/v0/management/*`), behind the [`crate::auth::management`] middleware: 404 while no
//! secret is configured, loopback only unless `allow-remote`, throttled after repeated failures.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cliproxy_core::timefmt::format_rfc3339;
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::family::{ApiError, Family};

type S = State<Arc<AppState>>;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v0/management/cooldowns", get(list_cooldowns).delete(reset_cooldowns))
        .route("/v0/management/credentials", get(list_credentials))
}

fn seconds_left(until: SystemTime) -> u64 {
    until.duration_since(SystemTime::now()).map_or(0, |d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

async fn list_cooldowns(State(state): S) -> Response {
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

async fn reset_cooldowns(State(state): S, q: Result<Query<ResetQuery>, QueryRejection>) -> Response {
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => {
            let e = cliproxy_core::Error::invalid_request(format!("invalid query: {}", e.body_text()));
            return ApiError::new(Family::Management, e).into_response();
        }
    };
    let cleared = state.client.reset_cooldowns(q.credential.as_deref(), q.model.as_deref());
    axum::Json(json!({"cleared": cleared})).into_response()
}

async fn list_credentials(State(state): S) -> Response {
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
                "quota": c.quota,
            })
        })
        .collect();
    axum::Json(json!({"credentials": list})).into_response()
}

/// The largest management request body: login options and pasted tokens are small.
const BODY_LIMIT: usize = 64 << 10;

/// Reads a management body: at most [`BODY_LIMIT`], within the body-read deadline.
pub async fn read_body(state: &AppState, body: axum::body::Body) -> Result<bytes::Bytes, ApiError> {
    crate::body::read(body, BODY_LIMIT, state.limits.body_read, Family::Management).await
}
