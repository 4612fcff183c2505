//! The cooldown table: what a failed upstream attempt means for routing. Providers describe a failure as facts
//! ([`Failure`]); this module alone decides from them whether to try another credential, what to cool down and for
//! how long, whether to refresh the token, and whether to disable the credential until a human acts.
//!
//! The table is the Go original's, refined: a rejected key or token rests the whole credential 30 min; an
//! exhausted quota waits for its reset (30 min when unknown); 404 rests the model on that credential 12 h; 429
//! waits for `Retry-After` or a reset header, else backs off exponentially; 408/5xx and transport failures rest the
//! model a minute; an overloaded service moves on without cooling anything; a request at fault is not retried.

use std::time::Duration;

use crate::error::Error;
use crate::providers::failure::{Blame, Failure};

/// What a cooldown covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Only the requested model on this credential (per-model rate limits, unknown model).
    Model,
    /// Every model of the credential (invalid key, account-wide quota).
    Credential,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    Fixed(Duration),
    /// Exponential from 1 s, doubling per consecutive failure, at most 30 min (429 without any hint).
    Backoff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cooldown {
    pub scope: Scope,
    pub length: Length,
}

/// The routing decision for one failed upstream attempt.
#[derive(Debug, Clone)]
pub struct ErrorClass {
    /// What the client sees if no other credential succeeds.
    pub error: Error,
    /// Whether another credential may succeed where this one failed.
    pub retry_other: bool,
    pub cooldown: Option<Cooldown>,
    /// Refresh this credential's token and retry it once.
    pub refresh: bool,
    /// Disable the credential until a human acts, with the reason shown in listings.
    pub disable: Option<String>,
}

pub const MIN_30: Duration = Duration::from_secs(30 * 60);
pub const HOURS_12: Duration = Duration::from_secs(12 * 3600);
pub const MIN_1: Duration = Duration::from_secs(60);

/// Decides what to do about a failure from its facts.
pub fn decide(f: Failure) -> ErrorClass {
    let pass = |error, retry_other| ErrorClass { error, retry_other, cooldown: None, refresh: false, disable: None };
    if let Some(reason) = f.suspended {
        return ErrorClass { disable: Some(reason), ..pass(f.error, true) };
    }
    if f.token_expired {
        return ErrorClass { refresh: true, ..pass(f.error, true) };
    }
    let scope = match f.blame {
        Blame::Request => return pass(f.error, false),
        Blame::Service => return pass(f.error, true),
        Blame::Model => Scope::Model,
        Blame::Account => Scope::Credential,
    };
    let length = match f.wait {
        Some(d) => Length::Fixed(d),
        None if f.quota_exhausted => Length::Fixed(MIN_30),
        None => match f.status {
            401 | 403 => Length::Fixed(MIN_30),
            404 => Length::Fixed(HOURS_12),
            429 => Length::Backoff,
            _ => Length::Fixed(MIN_1),
        },
    };
    ErrorClass { cooldown: Some(Cooldown { scope, length }), ..pass(f.error, true) }
}

/// A transport failure (no status): connection refused, reset, or a first-byte timeout. Another credential
/// (often another host) may work; this one rests for a minute.
pub fn transport_class(error: Error) -> ErrorClass {
    ErrorClass {
        error,
        retry_other: true,
        cooldown: Some(Cooldown { scope: Scope::Model, length: Length::Fixed(MIN_1) }),
        refresh: false,
        disable: None,
    }
}

/// Cooldown for the n-th consecutive failure without a hint: 1 s · 2ⁿ, at most 30 min.
pub fn backoff(level: u32) -> Duration {
    Duration::from_secs(1u64 << level.min(11)).min(MIN_30)
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::error::ErrorKind;

    fn hdrs(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn class(status: u16, h: &[(&str, &str)]) -> ErrorClass {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        decide(Failure::from_status(status, &hdrs(h), Error::new(ErrorKind::from_status(status), "x"), now))
    }

    #[test]
    fn table() {
        let c = class(401, &[]);
        assert_eq!(c.cooldown, Some(Cooldown { scope: Scope::Credential, length: Length::Fixed(MIN_30) }));
        assert!(c.retry_other);
        assert_eq!(
            class(402, &[]).cooldown,
            Some(Cooldown { scope: Scope::Credential, length: Length::Fixed(MIN_30) })
        );
        assert_eq!(class(404, &[]).cooldown.unwrap().length, Length::Fixed(HOURS_12));
        assert_eq!(class(429, &[]).cooldown.unwrap().length, Length::Backoff);
        let c = class(429, &[("retry-after", "30")]);
        assert_eq!(c.cooldown.unwrap().length, Length::Fixed(Duration::from_secs(30)));
        assert_eq!(c.error.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!(class(503, &[]).cooldown.unwrap().length, Length::Fixed(MIN_1));
        assert_eq!(class(408, &[]).cooldown.unwrap().length, Length::Fixed(MIN_1));
        let c = class(529, &[]);
        assert!(c.retry_other && c.cooldown.is_none());
        let c = class(400, &[]);
        assert!(!c.retry_other && c.cooldown.is_none());
    }

    #[test]
    fn expired_tokens_refresh_and_suspensions_disable_without_cooling() {
        let now = SystemTime::UNIX_EPOCH;
        let f = Failure::from_status(401, &hdrs(&[]), Error::new(ErrorKind::Authentication, "x"), now);
        let c = decide(f.clone().expired_token());
        assert!(c.refresh && c.retry_other && c.cooldown.is_none());
        let c = decide(f.suspend("banned"));
        assert_eq!(c.disable.as_deref(), Some("banned"));
        assert!(c.cooldown.is_none());
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(40), MIN_30);
    }
}
