//! The `/__mock/*` control endpoints: what [`crate::MockServer`] offers Rust tests, over HTTP for tests in
//! other languages driving the binary.
//!
//! - `GET /__mock/hits`: `{"total","cancelled","by_key":{key:n},"by_endpoint":{path:{"total","by_key"}}}`.
//! - `GET /__mock/requests`: the recorded requests, bodies as (lossy) UTF-8 text.
//! - `POST /__mock/reset`: clears counters and recorded requests (accounts stay).
//! - `GET /__mock/accounts/{idp}` (`claude`, `codex`, `google`): the accounts of one identity provider.
//! - `POST /__mock/accounts/{idp}` with an optional [`crate::accounts::Mint`] body (`{"email","expires_in",
//!   "onboarded"}`): mints an account and answers its tokens (`{"account","access_token","refresh_token",
//!   "id_token","expires_in"}`).
//! - `POST /__mock/accounts/{idp}/expire` `{"access_token"}`, `…/revoke` `{"email"}`, `…/fault` and
//!   `…/token_fault` `{"email","fault"}` (a directive fault object, or `null` to clear; `fault` applies to the
//!   account's API requests, `token_fault` to the token endpoint's grants of its codes and refresh tokens): 204,
//!   or 404 when the token or account is unknown.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State as Shared};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::accounts::{Accounts, IdP, Mint};
use crate::fault::Fault;
use crate::state::{RequestView, State};
use crate::writer;

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/__mock/hits", get(hits))
        .route("/__mock/requests", get(requests))
        .route("/__mock/reset", post(reset))
        .route("/__mock/accounts/{idp}", get(list).post(mint))
        .route("/__mock/accounts/{idp}/{action}", post(act))
}

async fn hits(Shared(state): Shared<Arc<State>>) -> Response {
    writer::json(StatusCode::OK, &serde_json::to_value(state.hits_view()).unwrap_or_default())
}

async fn requests(Shared(state): Shared<Arc<State>>) -> Response {
    let requests = state.requests();
    let views: Vec<RequestView> = requests.iter().map(RequestView::from).collect();
    writer::json(StatusCode::OK, &serde_json::to_value(views).unwrap_or_default())
}

async fn reset(Shared(state): Shared<Arc<State>>) -> StatusCode {
    state.reset();
    StatusCode::NO_CONTENT
}

fn problem(status: StatusCode, message: &str) -> Response {
    writer::json(status, &json!({ "error": message }))
}

fn accounts<'a>(state: &'a State, name: &str) -> Option<&'a Accounts> {
    IdP::from_name(name).map(|idp| state.issuers.get(idp))
}

fn unknown_idp() -> Response {
    problem(StatusCode::NOT_FOUND, "unknown identity provider: use claude, codex or google")
}

async fn list(Shared(state): Shared<Arc<State>>, Path(idp): Path<String>) -> Response {
    match accounts(&state, &idp) {
        Some(accounts) => writer::json(StatusCode::OK, &serde_json::to_value(accounts.list()).unwrap_or_default()),
        None => unknown_idp(),
    }
}

async fn mint(Shared(state): Shared<Arc<State>>, Path(idp): Path<String>, body: Bytes) -> Response {
    let Some(accounts) = accounts(&state, &idp) else {
        return unknown_idp();
    };
    let spec: Mint = if body.iter().all(u8::is_ascii_whitespace) {
        Mint::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(spec) => spec,
            Err(e) => return problem(StatusCode::BAD_REQUEST, &e.to_string()),
        }
    };
    writer::json(StatusCode::OK, &serde_json::to_value(accounts.mint(spec)).unwrap_or_default())
}

/// The body of the account actions; each action reads the fields it needs.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Action {
    access_token: Option<String>,
    email: Option<String>,
    #[serde(default)]
    fault: Option<Fault>,
}

async fn act(Shared(state): Shared<Arc<State>>, Path((idp, action)): Path<(String, String)>, body: Bytes) -> Response {
    let Some(accounts) = accounts(&state, &idp) else {
        return unknown_idp();
    };
    let request: Action = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return problem(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    if let Some(Err(e)) = request.fault.as_ref().map(Fault::validate) {
        return problem(StatusCode::BAD_REQUEST, &e);
    }
    let (needed, found) = match action.as_str() {
        "expire" => ("access_token", request.access_token.as_deref().map(|t| accounts.expire(t))),
        "revoke" => ("email", request.email.as_deref().map(|e| accounts.revoke(e))),
        "fault" => ("email", request.email.as_deref().map(|e| accounts.set_fault(e, request.fault.clone()))),
        "token_fault" => {
            ("email", request.email.as_deref().map(|e| accounts.set_token_fault(e, request.fault.clone())))
        }
        _ => return problem(StatusCode::NOT_FOUND, "unknown action: use expire, revoke, fault or token_fault"),
    };
    match found {
        None => problem(StatusCode::BAD_REQUEST, &format!("{needed} is required")),
        Some(false) => problem(StatusCode::NOT_FOUND, &format!("no such {needed}")),
        Some(true) => StatusCode::NO_CONTENT.into_response(),
    }
}
