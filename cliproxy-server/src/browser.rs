//! What web pages may do with the server. A browser on the same machine is the one client that can reach a
//! loopback server on behalf of someone else (any site the user visits), so by default pages get nothing:
//! - no CORS headers at all, so a page can never read an answer;
//! - inference requests that carry an `Origin` header (browsers add it to every cross-origin and every POST
//!   request; SDKs and curl never do) are refused unless the origin is listed under `cors.allow-origins`, so a
//!   page cannot spend the user's credentials with a form post or a `no-cors` fetch either;
//! - on a loopback bind, the `Host` header must name a loopback host, which defeats DNS rebinding (a page
//!   whose own name was re-pointed at 127.0.0.1 still sends that name);
//! - management routes never answer cross-origin requests: their cookie is `SameSite=Strict` and their
//!   preflights get no CORS headers.
//!
//! Preflights (`OPTIONS`) always answer 204 with an empty body, with CORS headers only for the inference routes
//! (`/v1/*`, `/v1beta/*`) and a listed origin. The headers themselves come from `tower-http`'s [`CorsLayer`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cliproxy_core::config::Cors;
use cliproxy_core::{Error, ErrorKind};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::AppState;
use crate::family::{ApiError, Family};
use cliproxy_core::logtext::Clean;

/// The browser policy, from `cors:` and the bound address.
pub struct Browser {
    origins: Origins,
    /// Whether the server is bound to loopback, so `Host` must name a loopback host.
    loopback: bool,
}

enum Origins {
    None,
    Any,
    List(Vec<HeaderValue>),
}

impl Browser {
    pub fn new(cors: &Cors, loopback: bool) -> Result<Self, Error> {
        let listed: Vec<&str> = cors.allow_origins.iter().map(|o| o.trim().trim_end_matches('/')).collect();
        let origins = if listed.is_empty() {
            Origins::None
        } else if listed.contains(&"*") {
            Origins::Any
        } else {
            let parsed: Result<Vec<HeaderValue>, _> = listed.iter().map(|o| HeaderValue::from_str(o)).collect();
            Origins::List(
                parsed.map_err(|_| Error::config("cors.allow-origins: an origin is not a valid header value"))?,
            )
        };
        Ok(Browser { origins, loopback })
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        match &self.origins {
            Origins::None => false,
            Origins::Any => true,
            Origins::List(list) => list.contains(origin),
        }
    }

    /// The CORS layer for `/v1/*` and `/v1beta/*`, when any origin is allowed.
    pub fn cors_layer(&self) -> Option<CorsLayer> {
        let allow = match &self.origins {
            Origins::None => return None,
            Origins::Any => AllowOrigin::any(),
            Origins::List(list) => AllowOrigin::list(list.iter().cloned()),
        };
        Some(
            CorsLayer::new()
                .allow_origin(allow)
                .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
                // Listed one by one by the browser: a `*` would not cover `Authorization`.
                .allow_headers(AllowHeaders::mirror_request())
                .expose_headers([header::RETRY_AFTER, header::HeaderName::from_static("x-request-id")])
                .max_age(Duration::from_secs(600)),
        )
    }
}

/// Whether `host` (a `Host` value or a URI authority) names this machine's loopback.
fn is_loopback_host(host: &str) -> bool {
    let Ok(authority) = host.parse::<Authority>() else { return false };
    let name = authority.host();
    name.eq_ignore_ascii_case("localhost")
        || name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn refuse(req: &Request, code: &'static str, message: String) -> Response {
    let e = Error::new(ErrorKind::Permission, message).with_code(code);
    ApiError::new(Family::of(req.uri().path(), req.headers()), e).into_response()
}

/// Outer middleware of every route: the `Host` check and the preflight answer.
pub async fn guard(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if state.browser.loopback {
        let host = req
            .uri()
            .authority()
            .map(Authority::as_str)
            .or_else(|| req.headers().get(header::HOST).map(|h| h.to_str().unwrap_or("\u{fffd}")));
        if let Some(host) = host.filter(|h| !is_loopback_host(h)) {
            tracing::warn!(host = %Clean(host), "refused a request for a non-loopback Host (DNS rebinding?)");
            return refuse(
                &req,
                "forbidden_host",
                "this server listens on loopback and answers only requests for localhost, 127.0.0.1 or [::1]".into(),
            );
        }
    }
    if req.method() != Method::OPTIONS {
        return next.run(req).await;
    }
    let mut answer = StatusCode::NO_CONTENT.into_response();
    let path = req.uri().path();
    if (path.starts_with("/v1/") || path.starts_with("/v1beta/")) && !matches!(state.browser.origins, Origins::None) {
        let from_cors = next.run(req).await;
        for (name, value) in from_cors.headers() {
            if name.as_str().starts_with("access-control-") || name == header::VARY {
                answer.headers_mut().append(name, value.clone());
            }
        }
    }
    answer
}

/// Route middleware of the inference routes: a request from a web page (it carries `Origin`) must come from
/// a listed origin.
pub async fn origin(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    match req.headers().get(header::ORIGIN) {
        Some(o) if !state.browser.allows(o) => {
            let shown = o.to_str().unwrap_or("?").to_owned();
            tracing::debug!(origin = %Clean(&shown), "refused a cross-origin request");
            refuse(
                &req,
                "forbidden_origin",
                format!(
                    "requests from web pages at origin {} are not allowed: list it under cors.allow-origins",
                    Clean(&shown)
                ),
            )
        }
        _ => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in ["localhost", "LOCALHOST:8317", "127.0.0.1", "127.0.0.1:8317", "127.1.2.3:1", "[::1]", "[::1]:8317"] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in ["evil.example", "evil.example:8317", "localhost.evil.example", "10.0.0.1:8317", "", "[::2]:1"] {
            assert!(!is_loopback_host(h), "{h}");
        }
    }

    #[test]
    fn origins() {
        let cors = |list: &[&str]| Cors { allow_origins: list.iter().map(|s| s.to_string()).collect() };
        let b = Browser::new(&cors(&[]), true).unwrap();
        assert!(!b.allows(&HeaderValue::from_static("https://a.example")));
        assert!(b.cors_layer().is_none());
        let b = Browser::new(&cors(&["https://a.example/"]), true).unwrap();
        assert!(b.allows(&HeaderValue::from_static("https://a.example")));
        assert!(!b.allows(&HeaderValue::from_static("https://b.example")));
        let b = Browser::new(&cors(&["*"]), true).unwrap();
        assert!(b.allows(&HeaderValue::from_static("null")));
    }
}
