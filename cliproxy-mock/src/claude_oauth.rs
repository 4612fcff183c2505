//! The Claude OAuth server: the claude.ai authorize endpoint (`GET /oauth/authorize`, approving at once) and the
//! console token endpoint (`POST /v1/oauth/token`, also `/oauth/token` where older clients post) taking the
//! JSON body Claude Code sends, for the `authorization_code` grant (PKCE S256 checked) and the `refresh_token`
//! grant (refresh tokens rotate: a used one is `invalid_grant`). Access tokens are `sk-ant-oat01-…`, accepted
//! by the messages endpoint with the `oauth-2025-04-20` beta; the profile endpoint lives with the API in
//! [`crate::anthropic`].

use std::sync::Arc;

use axum::response::Response;
use http::StatusCode;
use serde_json::json;

use crate::accounts::{Account, Flavor, GrantError};
use crate::oauth::{self, AuthorizePolicy, GrantFields, TokenFailure, field};
use crate::state::State;
use crate::{ids, writer};

/// Lifetime of issued access tokens, in seconds (eight hours, as Claude issues them).
pub const EXPIRES_IN: u64 = 28_800;

/// Scopes granted when the request names none.
pub const DEFAULT_SCOPE: &str = "user:profile user:inference user:sessions:claude_code";

/// Claude Code's public OAuth client.
pub const CLIENT_ID: &str = "9d1c250a-e61b-44d9-88ed-5944d1962f5e";

pub(crate) const FLAVOR: Flavor = Flavor {
    access: |_, _| ids::token("sk-ant-oat01-", 86),
    refresh: || ids::token("sk-ant-ort01-", 86),
    code: || ids::token("", 44),
    id_token: None,
    rotates: true,
    expires_in: EXPIRES_IN,
    org: ids::uuid,
};

/// `GET /oauth/authorize` for Claude clients: PKCE S256 is required.
pub(crate) fn authorize(state: &Arc<State>, query: &[u8]) -> Response {
    let policy = AuthorizePolicy { pkce_required: true, offline_param: false };
    oauth::authorize(&state.issuers.claude, query, policy)
}

/// The organization an account's tokens name.
fn organization_name(account: &Account) -> String {
    format!("{}'s Organization", account.email)
}

/// `POST /v1/oauth/token`.
pub(crate) async fn token(state: &Arc<State>, body: &[u8]) -> Response {
    let Some(request) = oauth::json_fields(body) else {
        return oauth::error(StatusCode::BAD_REQUEST, "invalid_request", "Request body must be a JSON object");
    };
    let fields = GrantFields {
        code: &["code", "code_verifier", "client_id", "redirect_uri"],
        refresh: &["refresh_token", "client_id"],
    };
    let issued = match oauth::grant(&state.issuers.claude, &request, fields).await {
        Ok(issued) => issued,
        Err(TokenFailure::Request(response)) => return *response,
        Err(TokenFailure::Grant { error, exchange }) => {
            let description = match error {
                GrantError::UnknownCode if exchange => "Invalid 'code' in request.",
                GrantError::WrongClient => "Invalid 'client_id' in request.",
                GrantError::WrongRedirect => "Invalid 'redirect_uri' in request.",
                GrantError::BadVerifier => "Invalid 'code_verifier' in request.",
                _ => "Refresh token not found or invalid.",
            };
            return oauth::error(StatusCode::BAD_REQUEST, "invalid_grant", description);
        }
    };
    let account = &issued.account;
    writer::json(
        StatusCode::OK,
        &json!({
            "access_token": issued.access_token,
            "refresh_token": issued.refresh_token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "scope": field(&request, "scope").unwrap_or(DEFAULT_SCOPE),
            "organization": {"uuid": account.org, "name": organization_name(account)},
            "account": {"uuid": account.id, "email_address": account.email},
        }),
    )
}

/// The `GET /api/oauth/profile` body for an account.
pub(crate) fn profile(account: &Account) -> serde_json::Value {
    let name = account.email.split('@').next().unwrap_or_default();
    json!({
        "account": {
            "uuid": account.id, "email": account.email, "full_name": name, "display_name": name,
            "has_claude_max": true, "has_claude_pro": false, "created_at": "2025-01-01T00:00:00Z",
        },
        "organization": {
            "uuid": account.org, "name": organization_name(account), "organization_type": "claude_max",
            "billing_type": "stripe_subscription", "rate_limit_tier": "default_claude_max_20x",
            "has_extra_usage_enabled": false,
        },
    })
}
