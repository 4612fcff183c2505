//! What the mocked OAuth servers (Claude, ChatGPT, Google) share: request fields from a query, a form or a JSON
//! body; the authorize endpoint, which approves at once and redirects back with a code; and the standard
//! OAuth 2 error answer.

use std::collections::HashMap;

use axum::response::Response;
use bytes::Bytes;
use http::header::{LOCATION, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};

use crate::accounts::{Accounts, Authorization, GrantError, Issued};
use crate::fault::{Dialect, ErrorAnswer, Fault, FaultKind};
use crate::writer;

/// Request fields by name; of a JSON body only the string values.
pub(crate) type Fields = HashMap<String, String>;

/// Fields of a JSON object body, `None` when the body is not one.
pub(crate) fn json_fields(body: &[u8]) -> Option<Fields> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Some(
            map.into_iter()
                .filter_map(|(k, v)| match v {
                    Value::String(s) => Some((k, s)),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    }
}

/// Fields of a form-encoded body or a query string.
pub(crate) fn form_fields(bytes: &[u8]) -> Fields {
    form_urlencoded::parse(bytes).into_owned().collect()
}

/// Fields of a JSON object body, else of a form-encoded one.
pub(crate) fn fields(body: &[u8]) -> Fields {
    json_fields(body).unwrap_or_else(|| form_fields(body))
}

/// A field's value, when present and not empty.
pub(crate) fn field<'a>(fields: &'a Fields, name: &str) -> Option<&'a str> {
    fields.get(name).map(String::as_str).filter(|v| !v.is_empty())
}

/// The first of `names` that `fields` lacks.
pub(crate) fn missing<'a>(fields: &Fields, names: &[&'a str]) -> Option<&'a str> {
    names.iter().copied().find(|name| field(fields, name).is_none())
}

/// An OAuth 2 error answer (RFC 6749 §5.2): `{"error","error_description"}`.
pub(crate) fn error(status: StatusCode, error: &str, description: &str) -> Response {
    oauth_error(status, error, description).into_response(HeaderMap::new(), None)
}

/// The fields a token endpoint requires for each grant.
pub(crate) struct GrantFields {
    pub code: &'static [&'static str],
    pub refresh: &'static [&'static str],
}

/// Why a token request failed: a malformed request (already answered), or a grant the provider refuses in its
/// own words (`exchange` tells the authorization-code grant from the refresh grant).
pub(crate) enum TokenFailure {
    Request(Box<Response>),
    Grant { error: GrantError, exchange: bool },
}

/// Runs a token request's grant (`authorization_code` or `refresh_token`) against `accounts`, after checking
/// the grant type and the fields it requires, and after the account's scripted token fault, if any.
pub(crate) async fn grant(
    accounts: &Accounts,
    request: &Fields,
    required: GrantFields,
) -> Result<Issued, TokenFailure> {
    let refuse = |error: &str, description: String| {
        TokenFailure::Request(Box::new(self::error(StatusCode::BAD_REQUEST, error, &description)))
    };
    let (exchange, needed) = match field(request, "grant_type") {
        Some("authorization_code") => (true, required.code),
        Some("refresh_token") => (false, required.refresh),
        Some(other) => return Err(refuse("unsupported_grant_type", format!("Unsupported grant_type: {other}"))),
        None => return Err(refuse("invalid_request", "Missing required parameter: grant_type".to_owned())),
    };
    if let Some(name) = missing(request, needed) {
        return Err(refuse("invalid_request", format!("Missing required parameter: {name}")));
    }
    let (code, refresh) =
        if exchange { (field(request, "code"), None) } else { (None, field(request, "refresh_token")) };
    if let Some(fault) = accounts.token_fault(code, refresh) {
        fault.hang().await;
        if let Some(answer) = fault.error_answer(&OAuth) {
            return Err(TokenFailure::Request(Box::new(answer.into_response(HeaderMap::new(), Some(&fault)))));
        }
    }
    let client_id = &request["client_id"];
    let issued = if exchange {
        accounts.exchange(&request["code"], field(request, "code_verifier"), client_id, &request["redirect_uri"])
    } else {
        accounts.refresh(&request["refresh_token"], client_id)
    };
    issued.map_err(|error| TokenFailure::Grant { error, exchange })
}

/// Faults on a token endpoint, as OAuth errors (`{"error","error_description"}`).
struct OAuth;

fn oauth_error(status: StatusCode, error: &str, description: &str) -> ErrorAnswer {
    ErrorAnswer::json(status, json!({"error": error, "error_description": description}).to_string())
}

impl Dialect for OAuth {
    fn kind_answer(&self, kind: FaultKind, fault: &Fault) -> ErrorAnswer {
        match kind {
            FaultKind::RateLimit | FaultKind::Quota => {
                let mut answer = self.status_answer(StatusCode::TOO_MANY_REQUESTS);
                if let Ok(value) = HeaderValue::from_str(&fault.retry_after()) {
                    answer.headers.insert(RETRY_AFTER, value);
                }
                answer
            }
            FaultKind::InvalidKey => self.status_answer(StatusCode::UNAUTHORIZED),
            FaultKind::Overloaded => self.status_answer(StatusCode::SERVICE_UNAVAILABLE),
            FaultKind::ServerError => self.status_answer(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    fn status_answer(&self, status: StatusCode) -> ErrorAnswer {
        let (error, description) = match status.as_u16() {
            401 => ("invalid_client", "Client authentication failed."),
            429 => ("rate_limit_exceeded", "Too many requests. Please try again later."),
            503 => ("temporarily_unavailable", "The server is temporarily unavailable."),
            s if s >= 500 => ("server_error", "The server encountered an unexpected error."),
            _ => ("invalid_request", status.canonical_reason().unwrap_or("Invalid request")),
        };
        oauth_error(status, error, description)
    }
}

/// What an identity provider's authorize endpoint requires.
pub(crate) struct AuthorizePolicy {
    /// Refuse authorizations without an S256 PKCE challenge (Claude, ChatGPT); Google takes both.
    pub pkce_required: bool,
    /// Issue a refresh token only with `access_type=offline` (Google); the others always issue one.
    pub offline_param: bool,
}

/// The authorize endpoint: approves at once (for the account named by `login_hint`, else a new one) and
/// redirects (302) to `redirect_uri` with `code` and `state`. Errors the client can be told about go back to
/// the redirect URI as `error` and `error_description`; without a usable redirect URI the answer is a 400.
pub(crate) fn authorize(accounts: &Accounts, query: &[u8], policy: AuthorizePolicy) -> Response {
    let q = form_fields(query);
    if let Some(name) = missing(&q, &["client_id", "redirect_uri", "response_type"]) {
        return error(StatusCode::BAD_REQUEST, "invalid_request", &format!("Missing required parameter: {name}"));
    }
    let redirect_uri = q["redirect_uri"].as_str();
    if !(redirect_uri.starts_with("http://") || redirect_uri.starts_with("https://")) {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "Invalid redirect_uri");
    }
    let state = field(&q, "state");
    let refuse = |error: &str, description: &str| {
        redirect(redirect_uri, &[("error", error), ("error_description", description)], state)
    };
    if q["response_type"] != "code" {
        return refuse("unsupported_response_type", "Only response_type=code is supported");
    }
    let challenge = field(&q, "code_challenge");
    match (challenge, field(&q, "code_challenge_method")) {
        (None, _) if policy.pkce_required => return refuse("invalid_request", "code_challenge is required"),
        (Some(_), method) if method != Some("S256") => {
            return refuse("invalid_request", "code_challenge_method must be S256");
        }
        _ => {}
    }
    let code = accounts.authorize(Authorization {
        client_id: &q["client_id"],
        redirect_uri,
        challenge,
        offline: !policy.offline_param || field(&q, "access_type") == Some("offline"),
        login_hint: field(&q, "login_hint"),
    });
    redirect(redirect_uri, &[("code", &code)], state)
}

/// A 302 to `uri` with `params` (and `state`, when given) added to its query.
fn redirect(uri: &str, params: &[(&str, &str)], state: Option<&str>) -> Response {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.extend_pairs(params);
    if let Some(state) = state {
        query.append_pair("state", state);
    }
    let separator = if uri.contains('?') { '&' } else { '?' };
    let Ok(location) = HeaderValue::from_str(&format!("{uri}{separator}{}", query.finish())) else {
        return error(StatusCode::BAD_REQUEST, "invalid_request", "Invalid redirect_uri");
    };
    let mut headers = HeaderMap::new();
    headers.insert(LOCATION, location);
    writer::whole(StatusCode::FOUND, headers, Bytes::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_come_from_json_or_forms_decoded() {
        let f = fields(br#"{"a":"x y","n":1}"#);
        assert_eq!((f["a"].as_str(), f.get("n")), ("x y", None));
        let f = fields(b"grant_type=authorization_code&redirect_uri=http%3A%2F%2Flocalhost%3A1455%2Fcb&s=a+b");
        assert_eq!(f["redirect_uri"], "http://localhost:1455/cb");
        assert_eq!(f["s"], "a b");
        assert_eq!(missing(&f, &["grant_type", "code"]), Some("code"));
        assert_eq!(field(&form_fields(b"x="), "x"), None);
    }
}
