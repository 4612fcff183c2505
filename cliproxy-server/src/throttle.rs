//! Failed-secret throttling per client address, for client keys and the management secret.
//!
//! The rules keep guessing slow without letting anyone lock the owner out:
//! - only a *wrong* secret counts: a request that presents none (a browser's stray form post, a health probe)
//!   is refused but not counted;
//! - `max_failures` wrong secrets within `window` lock the address for `lockout`; while locked, a remote
//!   address is refused without its secret being compared (429 with `Retry-After`), so guessing stops;
//! - a right secret presented over loopback always passes: local processes share 127.0.0.1, and one of them
//!   guessing must not lock out the owner.
//!
//! The table holds at most [`MAX_ADDRESSES`] entries, so a spray of addresses cannot grow memory without bound.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most addresses tracked at once; past it, expired entries go first, then the oldest.
pub const MAX_ADDRESSES: usize = 4096;

/// How many failures, within what time, lock an address for how long.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub max_failures: u32,
    pub window: Duration,
    pub lockout: Duration,
}

/// Client keys: ten wrong keys a minute lock an address for a minute.
pub const CLIENT_KEYS: Policy =
    Policy { max_failures: 10, window: Duration::from_secs(60), lockout: Duration::from_secs(60) };

/// The management secret (as in the Go original): five wrong secrets lock an address for 30 minutes.
pub const MANAGEMENT: Policy =
    Policy { max_failures: 5, window: Duration::from_secs(30 * 60), lockout: Duration::from_secs(30 * 60) };

/// The outcome of checking one presented secret.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The secret matched.
    Ok,
    /// No secret was presented (not counted).
    Missing,
    /// A wrong secret (counted).
    Wrong,
    /// The address is locked out; come back after this long.
    Locked(Duration),
}

pub struct Throttle {
    policy: Policy,
    table: Mutex<HashMap<IpAddr, Entry>>,
}

struct Entry {
    failures: u32,
    since: Instant,
    locked_until: Option<Instant>,
}

impl Entry {
    fn expired(&self, now: Instant, policy: &Policy) -> bool {
        self.locked_until.is_none_or(|t| t <= now) && now.duration_since(self.since) >= policy.window
    }
}

impl Throttle {
    pub fn new(policy: Policy) -> Self {
        Throttle { policy, table: Mutex::new(HashMap::new()) }
    }

    /// Checks a secret presented from `ip`; `matches` compares it (in constant time) with the accepted ones.
    pub fn check(&self, ip: IpAddr, presented: Option<&str>, matches: impl FnOnce(&str) -> bool) -> Verdict {
        let Some(presented) = presented else { return Verdict::Missing };
        let now = Instant::now();
        let locked = self.locked(ip, now);
        if let Some(left) = locked
            && !ip.is_loopback()
        {
            return Verdict::Locked(left);
        }
        if matches(presented) {
            if locked.is_none() {
                self.lock().remove(&ip);
            }
            return Verdict::Ok;
        }
        match locked.or_else(|| self.fail(ip, now)) {
            Some(left) => Verdict::Locked(left),
            None => Verdict::Wrong,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Entry>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn locked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let until = self.lock().get(&ip)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failure; returns the lockout it starts, if it is the one that reaches the limit.
    fn fail(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let policy = self.policy;
        let mut table = self.lock();
        if table.len() >= MAX_ADDRESSES && !table.contains_key(&ip) {
            table.retain(|_, e| !e.expired(now, &policy));
            if table.len() >= MAX_ADDRESSES
                && let Some(oldest) = table.iter().min_by_key(|(_, e)| e.since).map(|(ip, _)| *ip)
            {
                table.remove(&oldest);
            }
        }
        let e = table.entry(ip).or_insert(Entry { failures: 0, since: now, locked_until: None });
        if e.expired(now, &policy) {
            *e = Entry { failures: 0, since: now, locked_until: None };
        }
        e.failures += 1;
        if e.failures < policy.max_failures {
            return None;
        }
        e.locked_until = Some(now + policy.lockout);
        e.failures = 0;
        e.since = now;
        tracing::warn!(%ip, "{} failed attempts: address locked for {} s", policy.max_failures, policy.lockout.as_secs());
        Some(policy.lockout)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Policy =
        Policy { max_failures: 3, window: Duration::from_secs(60), lockout: Duration::from_secs(60) };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn missing_secrets_never_count() {
        let t = Throttle::new(POLICY);
        for _ in 0..100 {
            assert_eq!(t.check(ip("10.0.0.1"), None, |_| true), Verdict::Missing);
        }
        assert_eq!(t.check(ip("10.0.0.1"), Some("k"), |_| true), Verdict::Ok);
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn wrong_secrets_lock_a_remote_address_even_for_the_right_one() {
        let t = Throttle::new(POLICY);
        let remote = ip("10.0.0.1");
        assert_eq!(t.check(remote, Some("x"), |_| false), Verdict::Wrong);
        assert_eq!(t.check(remote, Some("x"), |_| false), Verdict::Wrong);
        assert!(matches!(t.check(remote, Some("x"), |_| false), Verdict::Locked(_)));
        assert!(matches!(t.check(remote, Some("right"), |_| true), Verdict::Locked(_)));
        assert_eq!(t.check(ip("10.0.0.2"), Some("right"), |_| true), Verdict::Ok, "other addresses are not affected");
    }

    #[test]
    fn loopback_with_the_right_secret_is_never_locked_out() {
        let t = Throttle::new(POLICY);
        let local = ip("127.0.0.1");
        for _ in 0..10 {
            t.check(local, Some("guess"), |_| false);
        }
        assert!(matches!(t.check(local, Some("guess"), |_| false), Verdict::Locked(_)));
        assert_eq!(t.check(local, Some("right"), |_| true), Verdict::Ok);
        assert!(matches!(t.check(local, Some("guess"), |_| false), Verdict::Locked(_)), "the lock stays for guesses");
        assert_eq!(t.check(ip("::1"), Some("right"), |_| true), Verdict::Ok);
    }

    #[test]
    fn the_table_is_bounded() {
        let t = Throttle::new(POLICY);
        for i in 0..(MAX_ADDRESSES as u32 + 500) {
            t.check(IpAddr::from(i.to_be_bytes()), Some("x"), |_| false);
        }
        assert_eq!(t.len(), MAX_ADDRESSES);
    }
}
