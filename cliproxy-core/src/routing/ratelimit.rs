//! Requests- and tokens-per-minute limits as token buckets, keyed by client key or credential id.
//!
//! A bucket holds up to one minute's allowance and refills continuously, so bursts up to the limit pass and
//! sustained traffic settles at the configured rate. Tokens are not known before the answer, so admission takes
//! an estimate (request bytes / 4 plus `max_tokens` where given is too pessimistic; we take the prompt estimate
//! only) and [`Limiter::settle`] corrects the bucket with the real usage afterwards. A bucket may go negative
//! after settling: the next requests then wait until it has refilled.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::config::RateLimit;

#[derive(Debug, Clone)]
struct Bucket {
    level: f64,
    last: SystemTime,
}

impl Bucket {
    fn full(cap: u64, now: SystemTime) -> Self {
        Bucket { level: cap as f64, last: now }
    }

    fn refill(&mut self, cap: u64, now: SystemTime) {
        let elapsed = now.duration_since(self.last).unwrap_or(Duration::ZERO).as_secs_f64();
        self.level = (self.level + elapsed * cap as f64 / 60.0).min(cap as f64);
        self.last = now;
    }

    /// Time until the level reaches `need`.
    fn wait_for(&self, cap: u64, need: f64) -> Duration {
        let missing = need - self.level;
        if missing <= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(missing * 60.0 / cap as f64) }
    }
}

#[derive(Debug, Clone)]
struct Buckets {
    requests: Bucket,
    tokens: Bucket,
}

#[derive(Default)]
pub struct Limiter {
    buckets: Mutex<HashMap<String, Buckets>>,
}

impl Limiter {
    /// Admits one request of `estimated_tokens`, or says how long to wait.
    pub fn try_acquire(
        &self,
        key: &str,
        limit: RateLimit,
        estimated_tokens: u64,
        now: SystemTime,
    ) -> Result<(), Duration> {
        if limit.is_unlimited() {
            return Ok(());
        }
        let mut map = self.lock();
        let b = Self::entry(&mut map, key, limit, now);
        let wait = Self::wait(b, limit);
        if !wait.is_zero() {
            return Err(wait);
        }
        if limit.rpm > 0 {
            b.requests.level -= 1.0;
        }
        if limit.tpm > 0 {
            b.tokens.level -= estimated_tokens as f64;
        }
        Ok(())
    }

    /// How long until a request would be admitted, without taking anything (zero: now). Selection skips
    /// credentials that are over their limit and reports when they free up.
    pub fn available_in(&self, key: &str, limit: RateLimit, now: SystemTime) -> Duration {
        if limit.is_unlimited() {
            return Duration::ZERO;
        }
        let mut map = self.lock();
        let b = Self::entry(&mut map, key, limit, now);
        Self::wait(b, limit)
    }

    /// Corrects the token bucket once the real usage is known.
    pub fn settle(&self, key: &str, limit: RateLimit, estimated: u64, actual: u64, now: SystemTime) {
        if limit.tpm == 0 {
            return;
        }
        let mut map = self.lock();
        let b = Self::entry(&mut map, key, limit, now);
        b.tokens.level = (b.tokens.level + estimated as f64 - actual as f64).min(limit.tpm as f64);
    }

    fn wait(b: &Buckets, limit: RateLimit) -> Duration {
        let r = if limit.rpm > 0 { b.requests.wait_for(limit.rpm, 1.0) } else { Duration::ZERO };
        // A tokens bucket is open while it holds anything: one large prompt must not be refused forever.
        let t = if limit.tpm > 0 { b.tokens.wait_for(limit.tpm, f64::MIN_POSITIVE) } else { Duration::ZERO };
        r.max(t)
    }

    fn entry<'a>(
        map: &'a mut HashMap<String, Buckets>,
        key: &str,
        limit: RateLimit,
        now: SystemTime,
    ) -> &'a mut Buckets {
        if !map.contains_key(key) {
            let fresh = Buckets { requests: Bucket::full(limit.rpm, now), tokens: Bucket::full(limit.tpm, now) };
            map.insert(key.to_owned(), fresh);
        }
        let b = map.get_mut(key).expect("inserted above");
        b.requests.refill(limit.rpm, now);
        b.tokens.refill(limit.tpm, now);
        b
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Buckets>> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(1_000_000_000 + ms)
    }

    #[test]
    fn rpm_allows_burst_then_waits_for_refill() {
        let l = Limiter::default();
        let lim = RateLimit { rpm: 3, tpm: 0 };
        for _ in 0..3 {
            l.try_acquire("k", lim, 0, t(0)).unwrap();
        }
        let wait = l.try_acquire("k", lim, 0, t(0)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(20), "one request refills in 60/3 s");
        assert_eq!(l.available_in("k", lim, t(19_000)), Duration::from_secs(1));
        l.try_acquire("k", lim, 0, t(20_000)).unwrap();
    }

    #[test]
    fn keys_are_independent_and_zero_is_unlimited() {
        let l = Limiter::default();
        let lim = RateLimit { rpm: 1, tpm: 0 };
        l.try_acquire("a", lim, 0, t(0)).unwrap();
        l.try_acquire("b", lim, 0, t(0)).unwrap();
        assert!(l.try_acquire("a", lim, 0, t(0)).is_err());
        for _ in 0..1000 {
            l.try_acquire("c", RateLimit::default(), 10_000, t(0)).unwrap();
        }
    }

    #[test]
    fn tokens_settle_with_real_usage() {
        let l = Limiter::default();
        let lim = RateLimit { rpm: 0, tpm: 1000 };
        l.try_acquire("k", lim, 100, t(0)).unwrap();
        // The answer was much longer than estimated: the bucket goes empty.
        l.settle("k", lim, 100, 1500, t(0));
        let wait = l.try_acquire("k", lim, 10, t(0)).unwrap_err();
        assert!(wait >= Duration::from_secs(30), "{wait:?}");
        // One minute refills the whole allowance.
        l.try_acquire("k", lim, 10, t(60_000)).unwrap();
    }
}
