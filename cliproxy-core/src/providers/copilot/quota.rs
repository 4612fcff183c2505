//! Copilot quota as the account last reported it: the `copilot_internal/user` snapshot (plan, reset date, per
//! category entitlements) refreshed in the background, and the `x-quota-snapshot-*` headers of every chat
//! answer, which are fresher. Both land in one per-category map shown by `Client::usage()`.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{Value, json};

use super::parse_date;
use crate::timefmt::format_rfc3339;

/// One category's quota (`premium_interactions`, `chat`, `completions`, `premium_models`).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// `-1` (or `unlimited`) means no limit.
    pub entitlement: f64,
    /// Requests left, where the source says (the user endpoint does; headers give a percentage only).
    pub remaining: Option<f64>,
    pub percent_remaining: f64,
    pub unlimited: bool,
    pub overage_permitted: bool,
    pub overage: f64,
    pub reset: Option<SystemTime>,
}

impl Snapshot {
    fn to_json(&self) -> Value {
        let mut v = json!({
            "entitlement": self.entitlement,
            "percent_remaining": self.percent_remaining,
            "unlimited": self.unlimited,
            "overage_permitted": self.overage_permitted,
            "overage": self.overage,
        });
        if let Some(r) = self.remaining {
            v["remaining"] = r.into();
        }
        if let Some(t) = self.reset {
            v["reset"] = format_rfc3339(t).into();
        }
        v
    }
}

/// Parses an `x-quota-snapshot-*` value: URL-encoded `ent=300&ov=0.0&ovPerm=false&rem=85.3&rst=2025-08-01T00:00:00Z`
/// (`rem` is the percentage left; `ent=-1` is unlimited).
pub fn parse_snapshot_header(value: &str) -> Option<Snapshot> {
    let mut s = Snapshot {
        entitlement: 0.0,
        remaining: None,
        percent_remaining: 100.0,
        unlimited: false,
        overage_permitted: false,
        overage: 0.0,
        reset: None,
    };
    let mut any = false;
    for (k, v) in form_urlencoded::parse(value.trim().as_bytes()) {
        let num = || v.trim().parse::<f64>().ok();
        match k.as_ref() {
            "ent" => s.entitlement = num()?,
            "rem" => s.percent_remaining = num()?,
            "ov" => s.overage = num().unwrap_or(0.0),
            "ovPerm" => s.overage_permitted = v == "true",
            "rst" => s.reset = parse_date(&v),
            _ => continue,
        }
        any = true;
    }
    s.unlimited = s.entitlement < 0.0;
    any.then_some(s)
}

#[derive(Debug, Default)]
pub(crate) struct QuotaState {
    pub plan: Option<String>,
    /// When the monthly quota resets (the user endpoint's `quota_reset_date`, or a header's `rst`).
    pub reset_date: Option<SystemTime>,
    pub snapshots: BTreeMap<String, Snapshot>,
    pub updated_at: Option<SystemTime>,
}

impl QuotaState {
    /// Takes in the `x-quota-snapshot-<category>` headers of an answer.
    pub fn observe_headers(&mut self, headers: &http::HeaderMap, now: SystemTime) {
        for (name, value) in headers {
            let Some(category) = name.as_str().strip_prefix("x-quota-snapshot-") else { continue };
            let Some(snap) = value.to_str().ok().and_then(parse_snapshot_header) else { continue };
            if let Some(r) = snap.reset {
                self.reset_date = Some(r);
            }
            self.snapshots.insert(category.to_owned(), snap);
            self.updated_at = Some(now);
        }
    }

    /// Takes in a `copilot_internal/user` answer.
    pub fn observe_user(&mut self, v: &Value, now: SystemTime) {
        let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        self.plan = text("copilot_plan").or_else(|| text("access_type_sku")).or(self.plan.take());
        let reset = text("quota_reset_date").or_else(|| text("limited_user_reset_date")).and_then(|d| parse_date(&d));
        if reset.is_some() {
            self.reset_date = reset;
        }
        if let Some(snaps) = v.get("quota_snapshots").and_then(Value::as_object) {
            for (category, q) in snaps {
                let f = |k: &str| q.get(k).and_then(Value::as_f64);
                let unlimited = q.get("unlimited").and_then(Value::as_bool).unwrap_or(false);
                let snap = Snapshot {
                    entitlement: f("entitlement").unwrap_or(if unlimited { -1.0 } else { 0.0 }),
                    remaining: f("remaining").or_else(|| f("quota_remaining")),
                    percent_remaining: f("percent_remaining").unwrap_or(100.0),
                    unlimited,
                    overage_permitted: q.get("overage_permitted").and_then(Value::as_bool).unwrap_or(false),
                    overage: f("overage_count").unwrap_or(0.0),
                    reset: self.reset_date,
                };
                self.snapshots.insert(category.clone(), snap);
            }
        }
        self.updated_at = Some(now);
    }

    /// No premium requests left and no overage allowed.
    pub fn premium_exhausted(&self) -> bool {
        ["premium_interactions", "premium_models"]
            .iter()
            .filter_map(|k| self.snapshots.get(*k))
            .any(|s| !s.unlimited && !s.overage_permitted && (s.percent_remaining <= 0.0 || s.remaining == Some(0.0)))
    }

    pub fn to_json(&self) -> Option<Value> {
        self.updated_at?;
        let snapshots: serde_json::Map<String, Value> =
            self.snapshots.iter().map(|(k, s)| (k.clone(), s.to_json())).collect();
        Some(json!({
            "plan": self.plan,
            "quota_reset_date": self.reset_date.map(format_rfc3339),
            "snapshots": snapshots,
            "updated_at": self.updated_at.map(format_rfc3339),
        }))
    }
}
