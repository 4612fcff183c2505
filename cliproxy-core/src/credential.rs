//! Which models a credential serves: `prefix/model`, `models: [{name, alias}]`, the provider's catalogue and
//! `excluded-models` wildcards. The credential itself (one upstream account or key) is defined with the account
//! lifecycles in `auth`; this is the routing view of it.

pub use crate::auth::{Credential, CredentialState};

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
            self.provider.resolve_model(bare)?
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
        self.prefix.as_deref() == Some(p) || self.provider.prefixes().iter().any(|x| x == p)
    }

    fn is_excluded(&self, name: &str) -> bool {
        self.excluded_models.iter().any(|pat| wildcard_match(pat, name))
    }

    /// Client-facing model names this credential offers (for `/v1/models`).
    pub fn listed_models(&self) -> Vec<String> {
        let names: Vec<String> = if self.models.is_empty() {
            self.provider.catalogue()
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
