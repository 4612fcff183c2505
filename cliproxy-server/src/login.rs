//! The shared login-flow endpoints, behind the management auth:
//! `POST /v0/management/login/{provider}` starts a device login (JSON body: provider options) and answers
//! `{id, verification_uri, verification_uri_complete, user_code, expires_in}`;
//! `GET /v0/management/login/{id}` answers `{status: pending|success|failed, error?, credential?}`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use cliproxy_core::login::{LoginFlow, LoginStatus};
use serde_json::{Value, json};

use crate::AppState;
use crate::management::denied;

type S = State<Arc<AppState>>;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v0/management/login/{key}", post(start).get(status))
}

/// The JSON shape of a flow, shared by the endpoints and the HTML pages.
pub fn flow_json(flow: &LoginFlow) -> Value {
    let mut v = json!({
        "id": flow.id,
        "provider": flow.provider,
        "verification_uri": flow.verification_uri,
        "verification_uri_complete": flow.verification_uri_complete,
        "user_code": flow.user_code,
        "expires_in": flow.expires_in,
    });
    status_fields(&flow.status(), &mut v);
    v
}

fn status_fields(status: &LoginStatus, v: &mut Value) {
    v["status"] = status.as_str().into();
    match status {
        LoginStatus::Success(id) => v["credential"] = id.as_str().into(),
        LoginStatus::Failed(e) => v["error"] = e.message().into(),
        LoginStatus::Pending => {}
    }
}

async fn start(
    State(state): S,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(d) = state.management.check(peer, &headers) {
        return denied(d);
    }
    let options: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(json!({"error": "body must be a JSON object of login options"})),
                )
                    .into_response();
            }
        }
    };
    match state.client.login(&provider, options).await {
        Ok(flow) => axum::Json(flow_json(&flow)).into_response(),
        Err(e) => {
            let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
            (status, axum::Json(json!({"error": e.message(), "kind": e.kind().as_str()}))).into_response()
        }
    }
}

async fn status(
    State(state): S,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(d) = state.management.check(peer, &headers) {
        return denied(d);
    }
    match state.client.login_flow(&id) {
        Some(flow) => {
            let mut v = json!({"id": flow.id});
            status_fields(&flow.status(), &mut v);
            axum::Json(v).into_response()
        }
        None => (StatusCode::NOT_FOUND, axum::Json(json!({"error": format!("no login flow `{id}`")}))).into_response(),
    }
}
