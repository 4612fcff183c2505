//! What an upstream failure means for routing: try another credential or not, cool down what and for how long,
//! refresh the token, or disable the credential until a human acts.
//!
//! Providers start from [`default_class`] (the Go original's table) and refine it from their own signals
//! (reset headers, error codes in the body). Everything here is pure so every rule is unit-tested.

use std::time::{Duration, SystemTime};

use crate::error::{Error, ErrorKind};

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

/// The Go original's cooldown table, refined: 401/403 → 30 min; 402 → 30 min; 404 → 12 h (that model);
/// 429 → `Retry-After`, else exponential; 408/5xx → 1 min; 529 (overloaded) → no cooldown, retry elsewhere;
/// other 4xx → the request itself is wrong, no retry.
pub fn default_class(status: u16, headers: &http::HeaderMap, error: Error, now: SystemTime) -> ErrorClass {
    let retry_after = parse_retry_after(headers, now);
    let fixed = |scope, d| Some(Cooldown { scope, length: Length::Fixed(d) });
    let (retry_other, cooldown) = match status {
        401 | 403 => (true, fixed(Scope::Credential, MIN_30)),
        402 => (true, fixed(Scope::Credential, retry_after.unwrap_or(MIN_30))),
        404 => (true, fixed(Scope::Model, HOURS_12)),
        429 => {
            (true, Some(Cooldown { scope: Scope::Model, length: retry_after.map_or(Length::Backoff, Length::Fixed) }))
        }
        529 => (true, None),
        408 | 500..=599 => (true, fixed(Scope::Model, retry_after.unwrap_or(MIN_1))),
        _ => (false, None),
    };
    let error = match retry_after {
        Some(d) if error.retry_after().is_none() && matches!(status, 429 | 402) => error.with_retry_after(d),
        _ => error,
    };
    ErrorClass { error, retry_other, cooldown, refresh: false, disable: None }
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

/// The status → kind mapping used when a provider has nothing more specific.
pub fn kind_for_status(status: u16) -> ErrorKind {
    match status {
        400 | 413 | 422 => ErrorKind::InvalidRequest,
        401 => ErrorKind::Authentication,
        402 => ErrorKind::QuotaExceeded,
        403 => ErrorKind::Permission,
        404 => ErrorKind::ModelNotFound,
        408 | 504 => ErrorKind::Timeout,
        429 => ErrorKind::RateLimited,
        _ => ErrorKind::Upstream,
    }
}

/// `Retry-After` as delta-seconds (fractions allowed) or an HTTP date; also `retry-after-ms`.
pub fn parse_retry_after(headers: &http::HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(ms) = header_str(headers, "retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return duration_from_secs(ms / 1000.0);
    }
    let v = header_str(headers, "retry-after")?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return duration_from_secs(secs);
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An absolute reset time (unix seconds, or RFC 3339) turned into a delay from `now`.
pub fn until(now: SystemTime, at: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or(Duration::ZERO)
}

pub fn duration_from_secs(secs: f64) -> Option<Duration> {
    (secs.is_finite() && (0.0..1e9).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

pub fn header_str<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Cooldown for the n-th consecutive failure without a hint: 1 s · 2ⁿ, at most 30 min.
pub fn backoff(level: u32) -> Duration {
    Duration::from_secs(1u64 << level.min(11)).min(MIN_30)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdrs(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    fn class(status: u16, h: &[(&str, &str)]) -> ErrorClass {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        default_class(status, &hdrs(h), Error::new(kind_for_status(status), "x"), now)
    }

    #[test]
    fn table() {
        let c = class(401, &[]);
        assert_eq!(c.cooldown, Some(Cooldown { scope: Scope::Credential, length: Length::Fixed(MIN_30) }));
        assert!(c.retry_other);
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
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(&hdrs(&[("retry-after", "1.5")]), now), Some(Duration::from_millis(1500)));
        assert_eq!(parse_retry_after(&hdrs(&[("retry-after-ms", "250")]), now), Some(Duration::from_millis(250)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(parse_retry_after(&hdrs(&[("retry-after", &date)]), now), Some(Duration::from_secs(90)));
        assert_eq!(parse_retry_after(&hdrs(&[("retry-after", "soon")]), now), None);
        assert_eq!(parse_retry_after(&hdrs(&[("retry-after", "-3")]), now), None);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(40), MIN_30);
    }
}
