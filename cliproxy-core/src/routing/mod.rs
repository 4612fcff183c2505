//! Routing: which credential serves a request, and what happens when one fails.
//!
//! - [`classify`]: what an upstream failure means (retry elsewhere, cooldown scope and length, refresh, disable).
//! - [`cooldown`]: per (credential, model) and per-credential cooldown state.
//! - [`ratelimit`]: requests/tokens per minute for client keys and credentials.
//! - [`Router`]: the credential pool: model resolution, then available → highest priority → provider
//!   preference → round-robin per model or fill-first, ordered by credential id so choices are reproducible.

pub mod classify;
pub mod cooldown;
pub mod ratelimit;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use crate::config::Strategy;
use crate::credential::{Credential, CredentialState};

pub use cooldown::{CooldownInfo, Cooldowns};
pub use ratelimit::Limiter;

/// A credential chosen for a model, with the upstream model name it will be asked for.
#[derive(Clone, Debug)]
pub struct Target {
    pub credential: Arc<Credential>,
    pub model: String,
}

/// The outcome of one selection.
#[derive(Debug)]
pub enum Pick {
    Use(Target),
    /// Nothing is available now; the earliest candidate frees up at `until` (cooldown or rate limit).
    Cooling {
        until: SystemTime,
    },
    /// No candidate is left: all were tried in this request, or are disabled / need a login.
    Exhausted,
}

pub struct Router {
    credentials: RwLock<Arc<Vec<Arc<Credential>>>>,
    pub cooldowns: Cooldowns,
    pub limiter: Limiter,
    /// Credentials disabled until a human acts (invalid key, suspended account), with the reason.
    disabled: Mutex<HashMap<String, String>>,
    cursors: Mutex<HashMap<String, usize>>,
    strategy: Strategy,
    cooling_enabled: bool,
}

impl Router {
    pub fn new(credentials: Vec<Arc<Credential>>, strategy: Strategy, cooling_enabled: bool) -> Self {
        let r = Router {
            credentials: RwLock::new(Arc::new(Vec::new())),
            cooldowns: Cooldowns::default(),
            limiter: Limiter::default(),
            disabled: Mutex::new(HashMap::new()),
            cursors: Mutex::new(HashMap::new()),
            strategy,
            cooling_enabled,
        };
        r.set_credentials(credentials);
        r
    }

    /// Replaces the pool (logins, imports, reloads). Cooldowns of surviving ids are kept.
    pub fn set_credentials(&self, mut credentials: Vec<Arc<Credential>>) {
        credentials.sort_by(|a, b| a.id.cmp(&b.id));
        *self.credentials.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(credentials);
    }

    /// Adds or replaces one credential by id.
    pub fn upsert(&self, credential: Arc<Credential>) {
        let mut all: Vec<Arc<Credential>> =
            self.credentials().iter().filter(|c| c.id != credential.id).cloned().collect();
        all.push(credential);
        self.set_credentials(all);
    }

    pub fn credentials(&self) -> Arc<Vec<Arc<Credential>>> {
        self.credentials.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every credential able to serve `model`: those that serve it explicitly, or else the catch-alls.
    pub fn candidates(&self, model: &str) -> Vec<Target> {
        let all = self.credentials();
        let mut explicit = Vec::new();
        let mut catch_all = Vec::new();
        for c in all.iter() {
            if let Some(upstream) = c.resolve(model) {
                let t = Target { credential: c.clone(), model: upstream };
                if c.models.is_empty() && c.provider.is_catch_all() { catch_all.push(t) } else { explicit.push(t) }
            }
        }
        if explicit.is_empty() { catch_all } else { explicit }
    }

    /// Chooses among `candidates` for `model`, skipping the ids in `tried`.
    pub fn pick(&self, model: &str, candidates: &[Target], tried: &[String], now: SystemTime) -> Pick {
        let mut earliest: Option<SystemTime> = None;
        let mut ready: Vec<&Target> = Vec::with_capacity(candidates.len());
        for t in candidates {
            let c = &t.credential;
            if tried.iter().any(|id| *id == c.id) || self.disabled_reason(&c.id).is_some() {
                continue;
            }
            if !matches!(c.token.state(), CredentialState::Ready) {
                continue;
            }
            let cooling = if self.cooling_enabled { self.cooldowns.blocked_until(&c.id, &t.model, now) } else { None };
            let limited = self.limiter.available_in(&c.id, c.rate_limit, now);
            let free_at = match cooling {
                Some(u) => Some(u.max(now + limited)),
                None if !limited.is_zero() => Some(now + limited),
                None => None,
            };
            match free_at {
                Some(u) => earliest = Some(earliest.map_or(u, |e| e.min(u))),
                None => ready.push(t),
            }
        }
        if ready.is_empty() {
            return earliest.map_or(Pick::Exhausted, |until| Pick::Cooling { until });
        }
        let top = ready.iter().map(|t| t.credential.priority).max().expect("non-empty");
        ready.retain(|t| t.credential.priority == top);
        let best = ready.iter().map(|t| t.credential.account.preference(now)).max().expect("non-empty");
        ready.retain(|t| t.credential.account.preference(now) == best);
        let i = match self.strategy {
            Strategy::FillFirst => 0,
            Strategy::RoundRobin => {
                let mut cursors = self.cursors.lock().unwrap_or_else(|p| p.into_inner());
                if !cursors.contains_key(model) {
                    cursors.insert(model.to_owned(), 0);
                }
                let cur = cursors.get_mut(model).expect("inserted above");
                let i = *cur % ready.len();
                *cur = cur.wrapping_add(1);
                i
            }
        };
        Pick::Use(ready[i].clone())
    }

    pub fn disable(&self, id: &str, reason: String) {
        self.disabled.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_owned(), reason);
    }

    pub fn disabled_reason(&self, id: &str) -> Option<String> {
        let map = self.disabled.lock().unwrap_or_else(|p| p.into_inner());
        if map.is_empty() { None } else { map.get(id).cloned() }
    }

    /// Clears cooldowns (and, for a whole credential or everything, the disabled flag) matching the filters.
    pub fn reset(&self, credential: Option<&str>, model: Option<&str>) -> usize {
        let mut n = self.cooldowns.reset(credential, model);
        if model.is_none() {
            let mut d = self.disabled.lock().unwrap_or_else(|p| p.into_inner());
            let before = d.len();
            d.retain(|id, _| credential.is_some_and(|c| c != id));
            n += before - d.len();
        }
        n
    }

    pub fn cooling_enabled(&self) -> bool {
        self.cooling_enabled
    }
}

/// How long to wait for `until`, if at all.
pub fn wait_for(now: SystemTime, until: SystemTime) -> Duration {
    until.duration_since(now).unwrap_or(Duration::ZERO)
}
