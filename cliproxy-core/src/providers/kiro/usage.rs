//! Kiro's usage limits (`getUsageLimits`): what an account has left this month and when it resets.
//!
//! A background checker asks for each account every [`CHECK_EVERY`] and keeps the last answer; routing prefers
//! accounts with requests left within a priority group ([`Provider::preference`](crate::providers::Provider)),
//! `Client::usage()` shows it, and a 402 monthly-limit answer cools the account until `nextDateReset`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

/// How often each account's limits are looked up.
pub const CHECK_EVERY: Duration = Duration::from_secs(10 * 60);

/// One answer of `getUsageLimits`, reduced to what routing and listings use.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageSnapshot {
    pub limit: f64,
    pub used: f64,
    pub next_reset: Option<SystemTime>,
    pub subscription: Option<String>,
    pub email: Option<String>,
    pub checked_at: SystemTime,
}

impl UsageSnapshot {
    /// Limit minus use (an active free trial included), never negative.
    pub fn remaining(&self) -> f64 {
        (self.limit - self.used).max(0.0)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "limit": self.limit,
            "used": self.used,
            "remaining": self.remaining(),
            "next_reset": self.next_reset.map(crate::timefmt::format_rfc3339),
            "subscription": self.subscription,
            "email": self.email,
            "checked_at": crate::timefmt::format_rfc3339(self.checked_at),
        })
    }
}

/// Epoch seconds or milliseconds (sources disagree), as a number or a string.
fn epoch(v: &Value) -> Option<SystemTime> {
    let n = v.as_f64().or_else(|| v.as_str()?.parse().ok())?;
    if !(n.is_finite() && n > 0.0) {
        return None;
    }
    let secs = if n > 1e11 { n / 1000.0 } else { n };
    Some(UNIX_EPOCH + Duration::from_secs_f64(secs))
}

/// Parses the answer body.
pub fn parse(body: &[u8], now: SystemTime) -> Option<UsageSnapshot> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let list = v.get("usageBreakdownList")?.as_array()?;
    let f = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let (mut limit, mut used) = (0.0, 0.0);
    let mut next_reset = v.get("nextDateReset").and_then(epoch);
    for b in list {
        limit += f(b, "usageLimitWithPrecision").max(f(b, "usageLimit"));
        used += f(b, "currentUsageWithPrecision").max(f(b, "currentUsage"));
        if let Some(t) =
            b.get("freeTrialInfo").filter(|t| t.get("freeTrialStatus").and_then(Value::as_str) == Some("ACTIVE"))
        {
            limit += f(t, "usageLimitWithPrecision");
            used += f(t, "currentUsageWithPrecision");
        }
        if next_reset.is_none() {
            next_reset = b.get("nextDateReset").and_then(epoch);
        }
    }
    Some(UsageSnapshot {
        limit,
        used,
        next_reset,
        subscription: v.pointer("/subscriptionInfo/subscriptionTitle").and_then(Value::as_str).map(str::to_owned),
        email: v.pointer("/userInfo/email").and_then(Value::as_str).map(str::to_owned),
        checked_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_with_free_trial_and_reset_in_ms_or_s() {
        let body = json!({
            "usageBreakdownList": [{"resourceType": "CREDIT", "usageLimitWithPrecision": 50.0, "currentUsageWithPrecision": 12.5,
                "freeTrialInfo": {"freeTrialStatus": "ACTIVE", "usageLimitWithPrecision": 500.0, "currentUsageWithPrecision": 100.0}}],
            "nextDateReset": 1_767_225_600_000u64,
            "userInfo": {"email": "a@example.com"},
            "subscriptionInfo": {"subscriptionTitle": "KIRO FREE"}
        });
        let s = parse(body.to_string().as_bytes(), UNIX_EPOCH).unwrap();
        assert_eq!(s.remaining(), 437.5);
        assert_eq!(s.next_reset, Some(UNIX_EPOCH + Duration::from_secs(1_767_225_600)));
        assert_eq!(s.email.as_deref(), Some("a@example.com"));
        let body = json!({"usageBreakdownList": [{"usageLimitWithPrecision": 50.0, "currentUsageWithPrecision": 60.0}],
            "nextDateReset": 1_767_225_600u64});
        let s = parse(body.to_string().as_bytes(), UNIX_EPOCH).unwrap();
        assert_eq!(s.remaining(), 0.0);
        assert_eq!(s.next_reset, Some(UNIX_EPOCH + Duration::from_secs(1_767_225_600)));
        assert!(parse(b"{}", UNIX_EPOCH).is_none());
    }
}
