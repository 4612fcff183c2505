//! Google's OAuth server as Gemini CLI uses it: the authorize endpoint (`GET /o/oauth2/v2/auth`, approving at
//! once; PKCE S256 checked when a challenge is sent; a refresh token only with `access_type=offline`), the
//! token endpoint (`POST /token`, form-encoded or JSON, `client_id` and `client_secret` required) for the
//! `authorization_code` and `refresh_token` grants, and `GET /oauth2/v2/userinfo`. Google does not rotate
//! refresh tokens: a refresh answer has no `refresh_token` and the old one stays valid. Access tokens are
//! `ya29.…`, refused with 401 `UNAUTHENTICATED` once expired.

use std::sync::Arc;

use axum::Router;
use axum::extract::{RawQuery, State as Shared};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use serde_json::json;

use crate::accounts::{Flavor, GrantError};
use crate::gemini::{self, unauthenticated};
use crate::oauth::{self, AuthorizePolicy, GrantFields, TokenFailure};
use crate::state::State;
use crate::{ids, keys, writer};

/// Gemini CLI's public OAuth client.
pub const CLIENT_ID: &str = "681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com";
/// Lifetime of access tokens, in seconds.
pub const EXPIRES_IN: u64 = 3599;
/// The scopes Gemini CLI asks for.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile openid";

pub(crate) const FLAVOR: Flavor = Flavor {
    access: |_, _| ids::token("ya29.a0", 120),
    refresh: || ids::token("1//0", 100),
    code: || ids::token("4/0", 70),
    id_token: None,
    rotates: false,
    expires_in: EXPIRES_IN,
    org: || format!("mock-project-{}", ids::token("", 8).to_ascii_lowercase()),
};

pub(crate) fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/o/oauth2/v2/auth", get(authorize))
        .route("/token", post(token))
        .route("/oauth2/v2/userinfo", get(userinfo))
}

async fn authorize(Shared(state): Shared<Arc<State>>, RawQuery(query): RawQuery) -> Response {
    let policy = AuthorizePolicy { pkce_required: false, offline_param: true };
    oauth::authorize(&state.issuers.google, query.unwrap_or_default().as_bytes(), policy)
}

async fn token(Shared(state): Shared<Arc<State>>, body: Bytes) -> Response {
    let request = oauth::fields(&body);
    let fields = GrantFields {
        code: &["code", "client_id", "client_secret", "redirect_uri"],
        refresh: &["refresh_token", "client_id", "client_secret"],
    };
    let issued = match oauth::grant(&state.issuers.google, &request, fields).await {
        Ok(issued) => issued,
        Err(TokenFailure::Request(response)) => return *response,
        Err(TokenFailure::Grant { error, .. }) => {
            let description = match error {
                GrantError::BadVerifier => "Invalid code verifier.",
                GrantError::WrongClient => "Unauthorized",
                GrantError::Revoked => "Token has been expired or revoked.",
                _ => "Bad Request",
            };
            return oauth::error(StatusCode::BAD_REQUEST, "invalid_grant", description);
        }
    };
    let mut answer = json!({"access_token": issued.access_token, "expires_in": issued.expires_in,
        "scope": SCOPE, "token_type": "Bearer"});
    if let Some(refresh) = issued.refresh_token {
        answer["refresh_token"] = json!(refresh);
    }
    writer::json(StatusCode::OK, &answer)
}

async fn userinfo(Shared(state): Shared<Arc<State>>, headers: HeaderMap) -> Response {
    let account = match keys::bearer(&headers).map(|token| gemini::bearer_account(&state, token)) {
        Some(Ok(Some(account))) => account,
        Some(Err(answer)) => return gemini::send(*answer, None),
        _ => return gemini::send(unauthenticated(false), None),
    };
    let name = account.email.split('@').next().unwrap_or_default().to_owned();
    writer::json(
        StatusCode::OK,
        &json!({"id": account.id, "email": account.email, "verified_email": true, "name": name,
            "given_name": name, "picture": "https://lh3.googleusercontent.com/a/default-user"}),
    )
}
