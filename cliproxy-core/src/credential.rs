//! Credentials: one upstream account or key, with a stable id that never contains the secret.
//!
//! Ids are `<provider>:<name>` — the auth-file stem for file-based accounts, or the config entry's name and index
//! (`claude:key-0`, `openai-compat:openrouter-1`). Logs, listings, cooldowns and management APIs all use the id,
//! so nothing outside the provider request builder ever needs the secret itself.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::config::{ModelAlias, RateLimit, Secret};
use crate::error::Result;
use crate::providers::{Ctx, Provider};

/// What a provider needs to call the upstream right now: the token to present and, for providers whose token
/// tells where to send requests (Copilot's `endpoints.api`), a base URL.
#[derive(Clone, Debug)]
pub struct Access {
    pub token: Secret,
    pub base_url: Option<String>,
}

/// Whether a credential can be used, as shown in listings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialState {
    Ready,
    /// A human must log in again (refresh token rejected, GitHub token revoked, …).
    NeedsLogin(String),
    /// Disabled until a human acts (invalid key, suspended account).
    Disabled(String),
}

impl CredentialState {
    pub fn as_str(&self) -> &'static str {
        match self {
            CredentialState::Ready => "ready",
            CredentialState::NeedsLogin(_) => "needs_login",
            CredentialState::Disabled(_) => "disabled",
        }
    }
    pub fn reason(&self) -> Option<&str> {
        match self {
            CredentialState::Ready => None,
            CredentialState::NeedsLogin(r) | CredentialState::Disabled(r) => Some(r),
        }
    }
}

/// Produces the access token of a credential. API keys are static; OAuth providers implement refresh here
/// (single-flight, ahead of expiry, and forced after the upstream rejected the token).
pub trait TokenSource: Send + Sync {
    fn access<'a>(&'a self, ctx: &'a Ctx, force_refresh: bool) -> BoxFuture<'a, Result<Access>>;
    fn state(&self) -> CredentialState {
        CredentialState::Ready
    }
    /// Seconds until the access token expires, where known (listings only).
    fn expires_at(&self) -> Option<std::time::SystemTime> {
        None
    }
}

/// A fixed API key.
pub struct StaticKey(pub Secret);

impl TokenSource for StaticKey {
    fn access<'a>(&'a self, _ctx: &'a Ctx, _force: bool) -> BoxFuture<'a, Result<Access>> {
        let access = Access { token: self.0.clone(), base_url: None };
        futures::future::ready(Ok(access)).boxed()
    }
}

/// One usable upstream credential.
pub struct Credential {
    pub id: String,
    pub provider: Arc<dyn Provider>,
    pub token: Arc<dyn TokenSource>,
    pub base_url: Option<String>,
    /// `prefix/model` selects this credential.
    pub prefix: Option<String>,
    pub priority: i32,
    /// Extra headers sent with every upstream request.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub proxy_url: Option<String>,
    pub models: Vec<ModelAlias>,
    pub excluded_models: Vec<String>,
    pub rate_limit: RateLimit,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("id", &self.id)
            .field("provider", &self.provider.id())
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// The upstream model name this credential would use for the client's `model`, or `None` if it does not
    /// serve it. Handles `prefix/model`, `models: [{name, alias}]`, the provider's own catalogue and
    /// `excluded-models` wildcards.
    pub fn resolve(&self, model: &str) -> Option<String> {
        let bare = match model.split_once('/') {
            Some((p, rest)) if self.answers_to_prefix(p) => rest,
            _ if self.prefix.is_some() && self.provider.requires_prefix() => return None,
            _ => model,
        };
        let upstream = if self.models.is_empty() {
            self.provider.resolve_model(self, bare)?
        } else {
            self.models
                .iter()
                .find(|m| m.alias == bare || (m.alias.is_empty() && m.name == bare))
                .or_else(|| self.models.iter().find(|m| m.name == bare))
                .map(|m| m.name.clone())?
        };
        if self.is_excluded(bare) || self.is_excluded(&upstream) {
            return None;
        }
        Some(upstream)
    }

    fn answers_to_prefix(&self, p: &str) -> bool {
        self.prefix.as_deref() == Some(p) || self.provider.prefixes(self).iter().any(|x| x == p)
    }

    fn is_excluded(&self, name: &str) -> bool {
        self.excluded_models.iter().any(|pat| wildcard_match(pat, name))
    }

    /// Client-facing model names this credential offers (for `/v1/models`).
    pub fn listed_models(&self) -> Vec<String> {
        let names: Vec<String> = if self.models.is_empty() {
            self.provider.catalogue(self)
        } else {
            self.models.iter().map(|m| if m.alias.is_empty() { m.name.clone() } else { m.alias.clone() }).collect()
        };
        names.into_iter().filter(|n| !self.is_excluded(n)).collect()
    }
}

/// `*` matches any run of characters (`gpt-*`, `*-preview`, `*mini*`); everything else literally.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::wildcard_match;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("gpt-*", "gpt-4o"));
        assert!(wildcard_match("*-preview", "gemini-preview"));
        assert!(wildcard_match("*mini*", "gpt-4o-mini-2024"));
        assert!(wildcard_match("a*b*c", "a-x-b-y-c"));
        assert!(!wildcard_match("a*b*c", "a-x-c"));
        assert!(!wildcard_match("gpt-*", "claude"));
        assert!(wildcard_match("exact", "exact"));
        assert!(!wildcard_match("ab*ba", "aba"));
    }
}
