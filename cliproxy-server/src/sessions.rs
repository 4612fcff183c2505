//! Browser sessions of the management pages.
//!
//! A browser cannot send the management key as a header, so the login form trades the key for a cookie. The
//! cookie holds an opaque random id, never the key itself, so a leaked cookie (a copied header, a proxy log)
//! expires with its session and does not reveal the secret. Only SHA-256 digests of the ids are kept, and at
//! most [`MAX_SESSIONS`] of them (the oldest goes first).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// How long a management session lasts after the login.
pub const TTL: Duration = Duration::from_secs(12 * 60 * 60);

/// The most sessions held at once.
pub const MAX_SESSIONS: usize = 256;

/// The cookie that carries the session id.
pub const COOKIE: &str = "cliproxy_mgmt";

#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<[u8; 32], Instant>>,
}

impl Sessions {
    /// Starts a session and returns its id (64 hex digits from 32 random bytes).
    pub fn start(&self) -> std::io::Result<String> {
        let mut raw = [0u8; 32];
        getrandom::getrandom(&mut raw).map_err(|e| std::io::Error::other(e.to_string()))?;
        let id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let now = Instant::now();
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|_, until| *until > now);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live.iter().min_by_key(|(_, until)| **until).map(|(k, _)| *k)
        {
            live.remove(&oldest);
        }
        live.insert(Sha256::digest(id.as_bytes()).into(), now + TTL);
        Ok(id)
    }

    /// Whether `id` names a session that has not expired.
    pub fn is_live(&self, id: &str) -> bool {
        let key: [u8; 32] = Sha256::digest(id.as_bytes()).into();
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(&key).is_some_and(|until| *until > Instant::now())
    }

    /// The `Set-Cookie` value for a new session: script-proof, same-site only, sent to `/v0` only.
    pub fn cookie(id: &str) -> String {
        cookie::Cookie::build((COOKIE, id))
            .path("/v0")
            .http_only(true)
            .same_site(cookie::SameSite::Strict)
            .max_age(cookie::time::Duration::seconds(TTL.as_secs() as i64))
            .build()
            .to_string()
    }

    /// The session id in a request's `Cookie` headers, if any.
    pub fn presented(headers: &axum::http::HeaderMap) -> Option<String> {
        headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|c| c.name() == COOKIE)
            .map(|c| c.value().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_random_and_checked() {
        let s = Sessions::default();
        let a = s.start().unwrap();
        let b = s.start().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(s.is_live(&a) && s.is_live(&b));
        assert!(!s.is_live("not-a-session"));
    }

    #[test]
    fn old_sessions_make_room() {
        let s = Sessions::default();
        let first = s.start().unwrap();
        for _ in 0..MAX_SESSIONS {
            s.start().unwrap();
        }
        assert!(!s.is_live(&first));
    }

    #[test]
    fn cookie_attributes_and_parsing() {
        let c = Sessions::cookie("abc");
        for part in ["cliproxy_mgmt=abc", "HttpOnly", "SameSite=Strict", "Path=/v0", "Max-Age=43200"] {
            assert!(c.contains(part), "{c}");
        }
        let mut h = axum::http::HeaderMap::new();
        h.append("cookie", "a=b; cliproxy_mgmt=xyz".parse().unwrap());
        assert_eq!(Sessions::presented(&h).as_deref(), Some("xyz"));
        assert_eq!(Sessions::presented(&axum::http::HeaderMap::new()), None);
    }
}
