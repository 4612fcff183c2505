//! What an upstream failure says, as facts read off the answer: the error to show, who is to blame (the request,
//! one model of the account, the whole account, or the service), how long the upstream asked us to wait, and
//! whether the token expired, a quota ran out or the account was suspended.
//!
//! Wire modules only *describe* a failure. What to do about it (cool down what and for how long, retry elsewhere,
//! refresh, disable) is decided in one place, the routing layer, so the cooldown table is never spread across
//! providers and every provider's facts get the same treatment.

use std::time::{Duration, SystemTime};

use crate::error::{Error, ErrorKind};
use crate::timefmt::parse_retry_after;

/// Whose state a failure says something about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The request itself (malformed, too large, refused for its content): no other account would do better,
    /// and nothing about this account changed.
    Request,
    /// This model on this account (a per-model rate limit, a model the account does not serve).
    Model,
    /// The whole account (rejected key, account-wide quota or rate limit).
    Account,
    /// The upstream service as a whole is busy (Anthropic's 529): another account may get through, and this one
    /// did nothing wrong.
    Service,
}

/// The facts of one failed upstream answer.
#[derive(Debug, Clone)]
pub struct Failure {
    /// What the client sees if no other account succeeds.
    pub error: Error,
    /// The upstream's HTTP status.
    pub status: u16,
    pub blame: Blame,
    /// How long the upstream asked us to stay away (`Retry-After`, a window's reset time), where it said.
    pub wait: Option<Duration>,
    /// The access token expired or was revoked: a refresh may fix it.
    pub token_expired: bool,
    /// A usage quota is used up (rather than a short rate limit): the account waits for its reset.
    pub quota_exhausted: bool,
    /// The account cannot be used until a human acts (rejected key, suspended account), and why.
    pub suspended: Option<String>,
}

impl Failure {
    /// The facts an HTTP status alone gives, as the Go original reads them: 401/403 blame the account, 402 is an
    /// exhausted quota, 404 and 429 and 5xx blame the model on this account, 529 the service, any other 4xx the
    /// request. `Retry-After` (or `retry-after-ms`) becomes the wait and, on 402/429, the error's retry hint.
    pub fn from_status(status: u16, headers: &http::HeaderMap, error: Error, now: SystemTime) -> Failure {
        let wait = parse_retry_after(headers, now);
        let blame = match status {
            401..=403 => Blame::Account,
            404 | 408 | 429 | 500..=528 | 530..=599 => Blame::Model,
            529 => Blame::Service,
            _ => Blame::Request,
        };
        let error = match wait {
            Some(d) if error.retry_after().is_none() && matches!(status, 429 | 402) => error.with_retry_after(d),
            _ => error,
        };
        Failure { error, status, blame, wait, token_expired: false, quota_exhausted: status == 402, suspended: None }
    }

    /// The account's quota is used up until `wait` from now (or an unknown time): the whole account waits.
    pub fn quota(mut self, message: impl Into<String>, wait: Option<Duration>) -> Failure {
        let mut error = Error::new(ErrorKind::QuotaExceeded, message).with_status(self.status);
        if let Some(d) = wait.or(self.error.retry_after()) {
            error = error.with_retry_after(d);
        }
        self.error = error;
        self.blame = Blame::Account;
        self.quota_exhausted = true;
        self.wait = wait.or(self.wait);
        self
    }

    /// The access token was refused as expired or revoked.
    pub fn expired_token(mut self) -> Failure {
        self.token_expired = true;
        self.blame = Blame::Account;
        self
    }

    /// The account is unusable until a human acts.
    pub fn suspend(mut self, reason: impl Into<String>) -> Failure {
        self.suspended = Some(reason.into());
        self.blame = Blame::Account;
        self
    }

    /// Records a wait the upstream gave elsewhere than in `Retry-After` (a reset header), also as the error's hint.
    pub fn wait_for(mut self, wait: Duration) -> Failure {
        self.wait = Some(wait);
        self.error = self.error.with_retry_after(wait);
        self
    }
}

impl Failure {
    /// For an exhausted quota whose answer named no wait: wait until the account's known reset time, where the
    /// account knows one and it is still ahead.
    pub fn wait_until_reset(&mut self, reset: Option<SystemTime>, now: SystemTime) {
        if !self.quota_exhausted || self.wait.is_some() {
            return;
        }
        if let Some(at) = reset.filter(|at| *at > now) {
            let wait = crate::timefmt::until(now, at);
            self.wait = Some(wait);
            self.error = self.error.clone().with_retry_after(wait);
        }
    }
}

/// A header's value as text, if present and visible ASCII.
pub fn header_str<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(status: u16, h: &[(&str, &str)]) -> Failure {
        let mut headers = http::HeaderMap::new();
        for (k, v) in h {
            headers.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        Failure::from_status(status, &headers, Error::new(ErrorKind::from_status(status), "x"), now)
    }

    #[test]
    fn statuses_blame_what_the_go_original_blamed() {
        assert_eq!(facts(401, &[]).blame, Blame::Account);
        assert_eq!(facts(404, &[]).blame, Blame::Model);
        assert_eq!(facts(503, &[]).blame, Blame::Model);
        assert_eq!(facts(529, &[]).blame, Blame::Service);
        assert_eq!(facts(400, &[]).blame, Blame::Request);
        assert_eq!(facts(422, &[]).blame, Blame::Request);
        assert!(facts(402, &[]).quota_exhausted);
    }

    #[test]
    fn retry_after_is_the_wait_and_the_hint() {
        let f = facts(429, &[("retry-after", "30")]);
        assert_eq!(f.wait, Some(Duration::from_secs(30)));
        assert_eq!(f.error.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!(facts(429, &[]).wait, None);
    }

    #[test]
    fn quota_moves_blame_to_the_account() {
        let f = facts(429, &[]).quota("used up", Some(Duration::from_secs(60)));
        assert_eq!((f.blame, f.quota_exhausted, f.wait), (Blame::Account, true, Some(Duration::from_secs(60))));
        assert_eq!(f.error.kind(), ErrorKind::QuotaExceeded);
        assert_eq!(f.error.status(), Some(429));
    }
}
