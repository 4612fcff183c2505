//! Cooldown state per (credential, model) and per credential.
//!
//! Stale cooldowns are the Go original's most reported problem, so the rules here are strict: a success clears
//! the entries it proves wrong, every entry expires on its own, and everything is inspectable and resettable
//! (one credential, one model, or all) through `Client`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use super::classify::{Cooldown, Length, Scope, backoff};

/// The size at which expired entries are swept out before another is added.
const MAX_ENTRIES: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    credential: String,
    /// `None`: the whole credential.
    model: Option<String>,
}

#[derive(Debug, Clone)]
struct Entry {
    until: SystemTime,
    reason: String,
    /// Consecutive hint-less 429s, for the exponential backoff.
    level: u32,
}

/// One active cooldown, as listed by `Client::cooldowns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CooldownInfo {
    pub credential: String,
    /// `None` when the whole credential cools down.
    pub model: Option<String>,
    pub until: SystemTime,
    pub reason: String,
}

#[derive(Default)]
pub struct Cooldowns {
    entries: Mutex<HashMap<Key, Entry>>,
}

impl Cooldowns {
    /// Records a cooldown; returns its length.
    pub fn set(&self, credential: &str, model: &str, cd: Cooldown, reason: String, now: SystemTime) -> Duration {
        let key =
            Key { credential: credential.to_owned(), model: (cd.scope == Scope::Model).then(|| model.to_owned()) };
        let mut map = self.lock();
        // Entries expire by themselves but stay in the map until listed; a burst of failures over many model
        // names (a catch-all backend answering 404 to made-up names) must not grow it without bound.
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, e| e.until > now);
        }
        let level = map.get(&key).map_or(0, |e| e.level);
        let (len, next_level) = match cd.length {
            Length::Fixed(d) => (d, 0),
            Length::Backoff => (backoff(level), level + 1),
        };
        map.insert(key, Entry { until: now + len, reason, level: next_level });
        len
    }

    /// When the credential may next serve `model`, if it is cooling down now.
    pub fn blocked_until(&self, credential: &str, model: &str, now: SystemTime) -> Option<SystemTime> {
        let map = self.lock();
        if map.is_empty() {
            return None;
        }
        let whole = map.get(&Key { credential: credential.to_owned(), model: None });
        let one = map.get(&Key { credential: credential.to_owned(), model: Some(model.to_owned()) });
        [whole, one].into_iter().flatten().map(|e| e.until).filter(|u| *u > now).max()
    }

    /// A success proves both the model entry and the whole-credential entry wrong: clear them.
    pub fn clear_on_success(&self, credential: &str, model: &str) {
        let mut map = self.lock();
        if map.is_empty() {
            return;
        }
        map.remove(&Key { credential: credential.to_owned(), model: Some(model.to_owned()) });
        map.remove(&Key { credential: credential.to_owned(), model: None });
    }

    /// Removes entries matching the filters (both `None`: everything). Returns how many were removed.
    pub fn reset(&self, credential: Option<&str>, model: Option<&str>) -> usize {
        let mut map = self.lock();
        let before = map.len();
        map.retain(|k, _| {
            let cred_match = credential.is_none_or(|c| c == k.credential);
            let model_match = model.is_none_or(|m| k.model.as_deref() == Some(m));
            !(cred_match && model_match)
        });
        before - map.len()
    }

    /// Active cooldowns, soonest first; expired entries are dropped on the way.
    pub fn list(&self, now: SystemTime) -> Vec<CooldownInfo> {
        let mut map = self.lock();
        map.retain(|_, e| e.until > now || e.level > 0);
        let mut v: Vec<CooldownInfo> = map
            .iter()
            .filter(|(_, e)| e.until > now)
            .map(|(k, e)| CooldownInfo {
                credential: k.credential.clone(),
                model: k.model.clone(),
                until: e.until,
                reason: e.reason.clone(),
            })
            .collect();
        v.sort_by(|a, b| a.until.cmp(&b.until).then_with(|| a.credential.cmp(&b.credential)));
        v
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::classify::MIN_30;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + s)
    }

    #[test]
    fn model_scope_blocks_only_that_model() {
        let c = Cooldowns::default();
        let cd = Cooldown { scope: Scope::Model, length: Length::Fixed(Duration::from_secs(30)) };
        c.set("a", "m1", cd, "429".into(), t(0));
        assert_eq!(c.blocked_until("a", "m1", t(1)), Some(t(30)));
        assert_eq!(c.blocked_until("a", "m2", t(1)), None);
        assert_eq!(c.blocked_until("a", "m1", t(30)), None, "expires by itself");
    }

    #[test]
    fn credential_scope_blocks_all_models() {
        let c = Cooldowns::default();
        c.set("a", "m1", Cooldown { scope: Scope::Credential, length: Length::Fixed(MIN_30) }, "401".into(), t(0));
        assert!(c.blocked_until("a", "anything", t(5)).is_some());
        assert!(c.blocked_until("b", "anything", t(5)).is_none());
    }

    #[test]
    fn backoff_grows_until_success() {
        let c = Cooldowns::default();
        let cd = Cooldown { scope: Scope::Model, length: Length::Backoff };
        assert_eq!(c.set("a", "m", cd, "429".into(), t(0)), Duration::from_secs(1));
        assert_eq!(c.set("a", "m", cd, "429".into(), t(1)), Duration::from_secs(2));
        assert_eq!(c.set("a", "m", cd, "429".into(), t(3)), Duration::from_secs(4));
        c.clear_on_success("a", "m");
        assert_eq!(c.set("a", "m", cd, "429".into(), t(10)), Duration::from_secs(1));
    }

    #[test]
    fn reset_filters() {
        let c = Cooldowns::default();
        let cd = Cooldown { scope: Scope::Model, length: Length::Fixed(Duration::from_secs(60)) };
        c.set("a", "m1", cd, "x".into(), t(0));
        c.set("a", "m2", cd, "x".into(), t(0));
        c.set("b", "m1", cd, "x".into(), t(0));
        assert_eq!(c.reset(Some("a"), Some("m1")), 1);
        assert_eq!(c.list(t(1)).len(), 2);
        assert_eq!(c.reset(None, Some("m1")), 1);
        assert_eq!(c.reset(None, None), 1);
        assert!(c.list(t(1)).is_empty());
    }
}
