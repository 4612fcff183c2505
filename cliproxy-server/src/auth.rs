//! Who may call the server: client API keys for the inference routes, and the management secret (with
//! per-address bans) for `/v0/management/*` and the provider login pages.
//!
//! Keys are compared as SHA-256 digests in constant time, so neither the key's content nor its length leaks
//! through timing.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type KeyHash = [u8; 32];

fn digest(s: &str) -> KeyHash {
    Sha256::digest(s.as_bytes()).into()
}

/// The accepted client keys.
pub struct ClientKeys {
    keys: Vec<(KeyHash, String)>,
}

/// The outcome of checking a request's client key.
pub enum ClientAuth {
    /// No keys are configured: the server is open (it only binds loopback in that case).
    Open,
    /// Authenticated with this key (kept for per-key rate limits; never logged).
    Key(String),
    Missing,
    Invalid,
}

impl ClientKeys {
    pub fn new(keys: impl IntoIterator<Item = String>) -> Self {
        ClientKeys { keys: keys.into_iter().filter(|k| !k.is_empty()).map(|k| (digest(&k), k)).collect() }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks `Authorization: Bearer`, `x-api-key`, `x-goog-api-key`, then `?key=` / `?auth_token=`.
    pub fn check(&self, headers: &HeaderMap, query: Option<&str>) -> ClientAuth {
        if self.keys.is_empty() {
            return ClientAuth::Open;
        }
        let Some(presented) = presented_key(headers, query) else { return ClientAuth::Missing };
        let d = digest(&presented);
        let mut found: Option<&str> = None;
        for (h, k) in &self.keys {
            if bool::from(h.ct_eq(&d)) {
                found = Some(k);
            }
        }
        match found {
            Some(k) => ClientAuth::Key(k.to_owned()),
            None => ClientAuth::Invalid,
        }
    }
}

fn presented_key(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    if let Some(auth) = header("authorization") {
        let token = auth.strip_prefix("Bearer ").or_else(|| auth.strip_prefix("bearer ")).unwrap_or(auth);
        return Some(token.trim().to_owned());
    }
    if let Some(k) = header("x-api-key").or_else(|| header("x-goog-api-key")) {
        return Some(k.to_owned());
    }
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, v)| (k == "key" || k == "auth_token") && !v.is_empty())
        .map(|(_, v)| v.into_owned())
}

/// The management check: a secret, loopback-only unless `allow-remote`, and bans after repeated failures.
pub struct ManagementAuth {
    secret: Option<KeyHash>,
    allow_remote: bool,
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

struct Failures {
    count: u32,
    banned_until: Option<Instant>,
}

/// Why a management request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// No secret configured: management does not exist (404).
    Disabled,
    /// A remote address while `allow-remote` is off (403).
    RemoteNotAllowed,
    /// Too many failures from this address (403, with seconds left).
    Banned(u64),
    /// Missing or wrong secret (401).
    BadSecret,
}

pub const MAX_FAILURES: u32 = 5;
pub const BAN: Duration = Duration::from_secs(30 * 60);

/// The cookie set by the HTML login form of the management pages.
pub const COOKIE: &str = "cliproxy_mgmt";

impl ManagementAuth {
    pub fn new(secret: &str, allow_remote: bool) -> Self {
        ManagementAuth {
            secret: (!secret.is_empty()).then(|| digest(secret)),
            allow_remote,
            failures: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.secret.is_some()
    }

    /// Checks a request from `peer` presenting the secret as `Authorization: Bearer`, `X-Management-Key` or the
    /// login cookie.
    pub fn check(&self, peer: SocketAddr, headers: &HeaderMap) -> Result<(), Denied> {
        let presented = management_secret(headers);
        self.check_secret(peer, presented.as_deref())
    }

    /// The same check for a secret obtained elsewhere (the login form's body).
    pub fn check_secret(&self, peer: SocketAddr, presented: Option<&str>) -> Result<(), Denied> {
        let Some(secret) = &self.secret else { return Err(Denied::Disabled) };
        let ip = peer.ip();
        if !self.allow_remote && !ip.is_loopback() {
            return Err(Denied::RemoteNotAllowed);
        }
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = map.get_mut(&ip) {
            match f.banned_until {
                Some(until) if until > now => return Err(Denied::Banned((until - now).as_secs().max(1))),
                Some(_) => {
                    f.banned_until = None;
                    f.count = 0;
                }
                None => {}
            }
        }
        let ok = presented.is_some_and(|p| bool::from(digest(p).ct_eq(secret)));
        if ok {
            map.remove(&ip);
            return Ok(());
        }
        let f = map.entry(ip).or_insert(Failures { count: 0, banned_until: None });
        f.count += 1;
        if f.count >= MAX_FAILURES {
            f.banned_until = Some(now + BAN);
            tracing::warn!(%ip, "management access banned for 30 minutes after {MAX_FAILURES} failed attempts");
        }
        Err(Denied::BadSecret)
    }
}

fn management_secret(headers: &HeaderMap) -> Option<String> {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    if let Some(auth) = header("authorization") {
        return Some(auth.strip_prefix("Bearer ").unwrap_or(auth).trim().to_owned());
    }
    if let Some(k) = header("x-management-key") {
        return Some(k.to_owned());
    }
    header("cookie")?.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == COOKIE).then(|| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap())).collect()
    }

    #[test]
    fn client_key_sources() {
        let keys = ClientKeys::new(["k1".to_string(), "k 2".to_string()]);
        assert!(matches!(keys.check(&hm(&[("authorization", "Bearer k1")]), None), ClientAuth::Key(k) if k == "k1"));
        assert!(matches!(keys.check(&hm(&[("x-api-key", "k1")]), None), ClientAuth::Key(_)));
        assert!(matches!(keys.check(&hm(&[("x-goog-api-key", "k1")]), None), ClientAuth::Key(_)));
        assert!(matches!(keys.check(&hm(&[]), Some("a=b&key=k%202")), ClientAuth::Key(k) if k == "k 2"));
        assert!(matches!(keys.check(&hm(&[("authorization", "Bearer nope")]), None), ClientAuth::Invalid));
        assert!(matches!(keys.check(&hm(&[]), None), ClientAuth::Missing));
        assert!(matches!(ClientKeys::new([]).check(&hm(&[]), None), ClientAuth::Open));
    }

    #[test]
    fn management_bans_after_five_failures() {
        let m = ManagementAuth::new("s3cret", false);
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert_eq!(m.check(peer, &hm(&[("x-management-key", "wrong")])), Err(Denied::BadSecret));
        }
        assert!(matches!(m.check(peer, &hm(&[("x-management-key", "s3cret")])), Err(Denied::Banned(_))));
        let other: SocketAddr = "127.0.0.2:1".parse().unwrap();
        assert_eq!(m.check(other, &hm(&[("authorization", "Bearer s3cret")])), Ok(()));
        assert_eq!(m.check(other, &hm(&[("cookie", "a=b; cliproxy_mgmt=s3cret")])), Ok(()));
    }

    #[test]
    fn management_remote_and_disabled() {
        let remote: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let m = ManagementAuth::new("s", false);
        assert_eq!(m.check(remote, &hm(&[("x-management-key", "s")])), Err(Denied::RemoteNotAllowed));
        let m = ManagementAuth::new("s", true);
        assert_eq!(m.check(remote, &hm(&[("x-management-key", "s")])), Ok(()));
        let m = ManagementAuth::new("", true);
        assert_eq!(m.check(remote, &hm(&[])), Err(Denied::Disabled));
    }
}
