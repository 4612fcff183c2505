//! The shared login-flow endpoints, behind the management auth:
//! - `POST /v0/management/login/{provider}` starts a login (JSON body: provider options, e.g. `callback_port`)
//!   and answers `{id, verification_uri, verification_uri_complete, user_code, expires_in, redirect_uri,
//!   callback}`. A device login shows `user_code` to enter at `verification_uri`; an authorization-code login
//!   (Claude) sends the user to `verification_uri` and comes back to `redirect_uri`, where a listener
//!   (`callback`, its address; `null` when the port was taken) catches the code;
//! - `POST /v0/management/login/{id}/code` `{"code": "code#state"}` hands an authorization-code login the code
//!   by hand (from a browser on another machine) and answers like the status;
//! - `GET /v0/management/login/{id}` answers `{status: pending|success|failed, error?, credential?}`.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use cliproxy_core::Error;
use cliproxy_core::login::{LoginFlow, LoginStatus};
use serde_json::{Value, json};

use crate::AppState;
use crate::family::{ApiError, Family};

type S = State<Arc<AppState>>;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v0/management/login/{key}", post(start).get(status))
        .route("/v0/management/login/{key}/code", post(code))
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
        "redirect_uri": flow.redirect_uri,
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

async fn start(State(state): S, Path(provider): Path<String>, body: Body) -> Response {
    let body = match crate::management::read_body(&state, body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let options: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                let e = Error::invalid_request("body must be a JSON object of login options");
                return ApiError::new(Family::Management, e).into_response();
            }
        }
    };
    match crate::callback::start_login(&state.client, &provider, options, true).await {
        Ok(started) => {
            let mut v = flow_json(&started.flow);
            v["callback"] = started.callback.map(|a| a.to_string()).into();
            axum::Json(v).into_response()
        }
        Err(e) => ApiError::new(Family::Management, e).into_response(),
    }
}

async fn status(State(state): S, Path(id): Path<String>) -> Response {
    match state.client.login_flow(&id) {
        Some(flow) => {
            let mut v = json!({"id": flow.id});
            status_fields(&flow.status(), &mut v);
            axum::Json(v).into_response()
        }
        None => {
            let e = Error::invalid_request(format!("no login flow `{}`", cliproxy_core::logtext::Clean(&id)))
                .with_code("not_found")
                .with_http_status(404);
            ApiError::new(Family::Management, e).into_response()
        }
    }
}

async fn code(State(state): S, Path(id): Path<String>, body: Body) -> Response {
    let body = match crate::management::read_body(&state, body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let code = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v.get("code")?.as_str().map(str::to_owned));
    let Some(code) = code else {
        let e = Error::invalid_request("body must be {\"code\": \"<code>#<state>\"}");
        return ApiError::new(Family::Management, e).into_response();
    };
    match state.client.complete_login(&id, &code) {
        Ok(()) => status(State(state), Path(id)).await,
        Err(e) => ApiError::new(Family::Management, e).into_response(),
    }
}
