//! Who may call the server: client API keys for the inference routes, and the management secret (or a
//! management session) for `/v0/management/*` and the JSON actions of the pages. Both checks run as
//! `route_layer` middleware ([`client_key`], [`management`]) in front of the handlers, with failed-secret
//! throttling per address ([`crate::throttle`]).
//!
//! Keys are compared as SHA-256 digests in constant time, so neither the key's content nor its length leaks
//! through timing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cliproxy_core::error::Fault;
use cliproxy_core::{Error, ErrorKind};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::family::{ApiError, Family};
use crate::sessions::Sessions;
use crate::throttle::{self, Throttle, Verdict};

type KeyHash = [u8; 32];

fn digest(s: &str) -> KeyHash {
    Sha256::digest(s.as_bytes()).into()
}

/// The authenticated client key of a request, put into its extensions by [`client_key`] for per-key rate
/// limits (`None` while the server is open). Never logged.
#[derive(Clone, Debug)]
pub struct ClientKey(pub Option<String>);

/// The address a request came from. Requests without one (a router driven without a listener) count as
/// remote, which only ever refuses more.
pub fn peer(req: &Request) -> IpAddr {
    req.extensions().get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(a)| a.ip())
}

/// The accepted client keys.
pub struct ClientKeys {
    keys: Vec<(KeyHash, String)>,
    throttle: Throttle,
}

impl ClientKeys {
    /// Blank keys are ignored (a key of spaces would otherwise close the server to everyone and still be
    /// guessable); [`crate::keys::check_strength`] refuses them, with weak ones, beyond loopback.
    pub fn new(keys: impl IntoIterator<Item = String>) -> Self {
        ClientKeys {
            keys: keys.into_iter().filter(|k| !k.trim().is_empty()).map(|k| (digest(&k), k)).collect(),
            throttle: Throttle::new(throttle::CLIENT_KEYS),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks `Authorization: Bearer`, `x-api-key`, `x-goog-api-key`, then `?key=` / `?auth_token=`. `Ok(None)`:
    /// no keys are configured, the server is open (it only binds loopback in that case).
    pub fn check(&self, ip: IpAddr, headers: &HeaderMap, query: Option<&str>) -> Result<Option<String>, Error> {
        if self.keys.is_empty() {
            return Ok(None);
        }
        let presented = presented_key(headers, query);
        let mut found: Option<&str> = None;
        let verdict = self.throttle.check(ip, presented.as_deref(), |p| {
            let d = digest(p);
            for (h, k) in &self.keys {
                if bool::from(h.ct_eq(&d)) {
                    found = Some(k);
                }
            }
            found.is_some()
        });
        match verdict {
            Verdict::Ok => Ok(found.map(str::to_owned)),
            Verdict::Missing => Err(Error::new(
                ErrorKind::Authentication,
                "Missing API key: send it as `Authorization: Bearer <key>`, `x-api-key: <key>`, `x-goog-api-key: <key>` or `?key=<key>`",
            )
            .with_code("missing_api_key")),
            Verdict::Wrong => {
                Err(Error::new(ErrorKind::Authentication, "Invalid API key").with_code("invalid_api_key"))
            }
            Verdict::Locked(left) => Err(locked(left)),
        }
    }
}

fn locked(left: std::time::Duration) -> Error {
    Error::new(ErrorKind::RateLimited, "too many failed authentication attempts from this address; try again later")
        .with_code("too_many_failed_attempts")
        .with_fault(Fault::Client)
        .with_retry_after(left)
}

/// The token of an `Authorization` value: after a `Bearer` scheme in any letter case, else the whole value.
fn authorization_token(value: &str) -> Option<&str> {
    let value = value.trim();
    let token = match value.split_once(char::is_whitespace) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ if value.eq_ignore_ascii_case("bearer") => "",
        _ => value,
    };
    (!token.is_empty()).then_some(token)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

fn presented_key(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(auth) = header(headers, "authorization") {
        return authorization_token(auth).map(str::to_owned);
    }
    if let Some(k) = header(headers, "x-api-key").or_else(|| header(headers, "x-goog-api-key")) {
        return Some(k.to_owned());
    }
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, v)| (k == "key" || k == "auth_token") && !v.is_empty())
        .map(|(_, v)| v.into_owned())
}

/// Middleware of the inference routes: checks the client key, then puts it into the request's extensions.
pub async fn client_key(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let checked = state.keys.check(peer(&req), req.headers(), req.uri().query());
    match checked {
        Ok(key) => {
            req.extensions_mut().insert(ClientKey(key));
            next.run(req).await
        }
        Err(e) => ApiError::new(Family::of(req.uri().path(), req.headers()), e).into_response(),
    }
}

/// The management check: a secret or a live session, loopback only unless `allow-remote`, and throttling.
pub struct ManagementAuth {
    secret: Option<KeyHash>,
    allow_remote: bool,
    throttle: Throttle,
    pub sessions: Sessions,
}

/// Why a management request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// No secret configured: management does not exist (404).
    Disabled,
    /// A remote address while `allow-remote` is off (403).
    RemoteNotAllowed,
    /// Too many failures from this address (429, with the time left).
    Locked(std::time::Duration),
    /// No secret and no session presented (401, not counted as a failure).
    Missing,
    /// A wrong secret, or a session that expired (401).
    BadSecret,
}

impl Denied {
    pub fn into_error(self) -> Error {
        match self {
            Denied::Disabled => {
                Error::new(ErrorKind::InvalidRequest, "not found").with_code("not_found").with_http_status(404)
            }
            Denied::RemoteNotAllowed => Error::new(
                ErrorKind::Permission,
                "remote management is disabled: set remote-management.allow-remote: true",
            ),
            Denied::Locked(left) => locked(left),
            Denied::Missing => {
                Error::new(ErrorKind::Authentication, "missing management key").with_code("missing_management_key")
            }
            Denied::BadSecret => Error::new(ErrorKind::Authentication, "missing or invalid management key")
                .with_code("invalid_management_key"),
        }
    }
}

/// What a request presents to the management check.
enum Presented {
    Secret(String),
    Session(String),
    Nothing,
}

impl ManagementAuth {
    pub fn new(secret: &str, allow_remote: bool) -> Self {
        ManagementAuth {
            secret: (!secret.is_empty()).then(|| digest(secret)),
            allow_remote,
            throttle: Throttle::new(throttle::MANAGEMENT),
            sessions: Sessions::default(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.secret.is_some()
    }

    /// Checks a request from `ip` presenting the secret as `Authorization: Bearer` or `X-Management-Key`, or a
    /// session cookie from the login form.
    pub fn check(&self, ip: IpAddr, headers: &HeaderMap) -> Result<(), Denied> {
        match presented_management(headers) {
            Presented::Secret(s) => self.check_secret(ip, Some(&s)),
            Presented::Session(id) => {
                self.reachable(ip)?;
                // A session id is 256 random bits: guessing it is hopeless, so a stale one is not a failure.
                if self.sessions.is_live(&id) { Ok(()) } else { Err(Denied::BadSecret) }
            }
            Presented::Nothing => self.check_secret(ip, None),
        }
    }

    /// The same check for a secret obtained elsewhere (the login form's body).
    pub fn check_secret(&self, ip: IpAddr, presented: Option<&str>) -> Result<(), Denied> {
        self.reachable(ip)?;
        let secret = self.secret.as_ref().ok_or(Denied::Disabled)?;
        match self.throttle.check(ip, presented, |p| bool::from(digest(p).ct_eq(secret))) {
            Verdict::Ok => Ok(()),
            Verdict::Missing => Err(Denied::Missing),
            Verdict::Wrong => Err(Denied::BadSecret),
            Verdict::Locked(left) => Err(Denied::Locked(left)),
        }
    }

    fn reachable(&self, ip: IpAddr) -> Result<(), Denied> {
        if self.secret.is_none() {
            Err(Denied::Disabled)
        } else if !self.allow_remote && !ip.is_loopback() {
            Err(Denied::RemoteNotAllowed)
        } else {
            Ok(())
        }
    }
}

fn presented_management(headers: &HeaderMap) -> Presented {
    if let Some(auth) = header(headers, "authorization") {
        return authorization_token(auth).map_or(Presented::Nothing, |t| Presented::Secret(t.to_owned()));
    }
    if let Some(k) = header(headers, "x-management-key") {
        return Presented::Secret(k.to_owned());
    }
    Sessions::presented(headers).map_or(Presented::Nothing, Presented::Session)
}

/// Middleware of the management routes.
pub async fn management(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    match state.management.check(peer(&req), req.headers()) {
        Ok(()) => next.run(req).await,
        Err(d) => ApiError::new(Family::of(req.uri().path(), req.headers()), d.into_error()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap())).collect()
    }

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn client_key_sources() {
        let keys = ClientKeys::new(["k1".to_string(), "k 2".to_string(), "  ".to_string()]);
        let check = |h: &[(&str, &str)], q| keys.check(LOCAL, &hm(h), q);
        assert_eq!(check(&[("authorization", "Bearer k1")], None).unwrap().as_deref(), Some("k1"));
        for scheme in ["bearer", "BEARER", "BeArEr"] {
            assert!(check(&[("authorization", &format!("{scheme} k1"))], None).is_ok(), "{scheme}");
        }
        assert!(check(&[("x-api-key", "k1")], None).is_ok());
        assert!(check(&[("x-goog-api-key", "k1")], None).is_ok());
        assert_eq!(check(&[], Some("a=b&key=k%202")).unwrap().as_deref(), Some("k 2"));
        assert_eq!(check(&[("authorization", "Bearer nope")], None).unwrap_err().code(), "invalid_api_key");
        assert_eq!(check(&[], None).unwrap_err().code(), "missing_api_key");
        assert_eq!(check(&[("authorization", "Bearer ")], None).unwrap_err().code(), "missing_api_key");
        assert_eq!(
            check(&[("x-api-key", "  ")], None).unwrap_err().code(),
            "missing_api_key",
            "blank keys never match"
        );
        assert_eq!(ClientKeys::new([]).check(LOCAL, &hm(&[]), None).unwrap(), None);
        assert!(ClientKeys::new([" ".to_string()]).is_empty());
    }

    #[test]
    fn management_throttles_wrong_secrets_but_not_missing_ones() {
        let m = ManagementAuth::new("s3cret", true);
        let remote: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..20 {
            assert_eq!(m.check(remote, &hm(&[])), Err(Denied::Missing));
        }
        for _ in 0..throttle::MANAGEMENT.max_failures - 1 {
            assert_eq!(m.check(remote, &hm(&[("x-management-key", "wrong")])), Err(Denied::BadSecret));
        }
        assert!(matches!(m.check(remote, &hm(&[("x-management-key", "wrong")])), Err(Denied::Locked(_))));
        assert!(matches!(m.check(remote, &hm(&[("x-management-key", "s3cret")])), Err(Denied::Locked(_))));
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(m.check(other, &hm(&[("authorization", "BEARER s3cret")])), Ok(()));
    }

    #[test]
    fn management_sessions_not_secrets_in_cookies() {
        let m = ManagementAuth::new("s3cret", false);
        assert_eq!(m.check(LOCAL, &hm(&[("cookie", "cliproxy_mgmt=s3cret")])), Err(Denied::BadSecret));
        let id = m.sessions.start().unwrap();
        assert_eq!(m.check(LOCAL, &hm(&[("cookie", &format!("a=b; cliproxy_mgmt={id}"))])), Ok(()));
    }

    #[test]
    fn management_remote_and_disabled() {
        let remote: IpAddr = "10.0.0.1".parse().unwrap();
        let m = ManagementAuth::new("s", false);
        assert_eq!(m.check(remote, &hm(&[("x-management-key", "s")])), Err(Denied::RemoteNotAllowed));
        let m = ManagementAuth::new("s", true);
        assert_eq!(m.check(remote, &hm(&[("x-management-key", "s")])), Ok(()));
        let m = ManagementAuth::new("", true);
        assert_eq!(m.check(remote, &hm(&[])), Err(Denied::Disabled));
    }
}
