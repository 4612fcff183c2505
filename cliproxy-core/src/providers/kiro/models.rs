//! Kiro's model names and the names clients use for them.
//!
//! Kiro's own ids are dotted (`claude-sonnet-4.5`); they are listed as `kiro-claude-sonnet-4-5` (the Go
//! original's converter: dots and underscores become dashes, lowercase, a `kiro-` prefix) with an `-agentic`
//! twin each (except `auto`), and requested under any of: the listed name, Kiro's id, the legacy upper-case id
//! (`CLAUDE_SONNET_4_5_20250929_V1_0`, passed through as Kiro still accepts it) and Anthropic's own names
//! (`claude-sonnet-4-5`, `claude-sonnet-4-5-20250929`), so Anthropic clients reach Kiro without renaming.

/// Kiro's current model ids, as `generateAssistantResponse` takes them in `modelId`.
pub const KIRO_MODELS: &[&str] = &[
    "claude-sonnet-4.5",
    "claude-sonnet-4.6",
    "claude-sonnet-4",
    "claude-haiku-4.5",
    "claude-opus-4.5",
    "claude-opus-4.6",
    "claude-3.7-sonnet",
    "auto",
];

/// Legacy upper-case ids and the current id each stands for.
pub const LEGACY_MODELS: &[(&str, &str)] = &[
    ("CLAUDE_SONNET_4_5_20250929_V1_0", "claude-sonnet-4.5"),
    ("CLAUDE_SONNET_4_20250514_V1_0", "claude-sonnet-4"),
    ("CLAUDE_3_7_SONNET_20250219_V1_0", "claude-3.7-sonnet"),
];

/// The suffix of the listed variants that ask the model to write long files in chunks.
pub const AGENTIC: &str = "-agentic";

/// The listed name of a Kiro id: `claude-sonnet-4.5` → `kiro-claude-sonnet-4-5`.
pub fn listed_name(kiro_id: &str) -> String {
    let bare = kiro_id.trim_start_matches("anthropic.").trim_start_matches("amazon.");
    let dashed: String =
        bare.chars().map(|c| if c == '.' || c == '_' { '-' } else { c.to_ascii_lowercase() }).collect();
    format!("kiro-{dashed}")
}

/// Every name `/v1/models` lists for Kiro: each listed name and its `-agentic` twin, bare and under the
/// `kiro/` prefix (which picks a Kiro account when other providers serve the same name).
pub fn catalogue() -> Vec<String> {
    let mut out = Vec::new();
    for id in KIRO_MODELS {
        let name = listed_name(id);
        if *id != "auto" {
            out.push(format!("{name}{AGENTIC}"));
        }
        out.push(name);
    }
    let prefixed: Vec<String> = out.iter().map(|n| format!("kiro/{n}")).collect();
    out.extend(prefixed);
    out.sort();
    out
}

/// The upstream model for a client's name, or `None` when Kiro does not serve it. The agentic variants keep
/// their suffix (the request encoder strips it and adds the chunked-writing instruction).
pub fn resolve(name: &str) -> Option<String> {
    let (base, agentic) = match name.strip_suffix(AGENTIC) {
        Some(b) => (b, true),
        None => (name, false),
    };
    let id = kiro_id(base)?;
    if agentic && id == "auto" {
        return None;
    }
    // Legacy ids go upstream unchanged: they are what the caller asked for and Kiro accepts them.
    Some(if agentic { format!("{id}{AGENTIC}") } else { id })
}

fn kiro_id(name: &str) -> Option<String> {
    if KIRO_MODELS.contains(&name) || LEGACY_MODELS.iter().any(|(l, _)| *l == name) {
        return Some(name.to_owned());
    }
    if let Some(rest) = name.strip_prefix("kiro-") {
        return KIRO_MODELS.iter().find(|id| listed_name(id) == name || **id == rest).map(|s| (*s).to_owned());
    }
    // Anthropic's names: `claude-sonnet-4-5`, `claude-sonnet-4-5-20250929`, `claude-3-7-sonnet-20250219`.
    let undated = strip_date(name);
    KIRO_MODELS
        .iter()
        .filter(|id| **id != "auto")
        .find(|id| listed_name(id).strip_prefix("kiro-") == Some(undated))
        .map(|s| (*s).to_owned())
}

/// `claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`.
fn strip_date(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((head, tail)) if tail.len() == 8 && tail.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => name,
    }
}

/// Splits an upstream model into Kiro's `modelId` and whether the agentic variant was asked for.
pub fn split_agentic(upstream: &str) -> (&str, bool) {
    match upstream.strip_suffix(AGENTIC) {
        Some(id) => (id, true),
        None => (upstream, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(listed_name("claude-sonnet-4.5"), "kiro-claude-sonnet-4-5");
        assert_eq!(resolve("kiro-claude-sonnet-4-5").as_deref(), Some("claude-sonnet-4.5"));
        assert_eq!(resolve("kiro-claude-sonnet-4-5-agentic").as_deref(), Some("claude-sonnet-4.5-agentic"));
        assert_eq!(resolve("claude-sonnet-4.5").as_deref(), Some("claude-sonnet-4.5"));
        assert_eq!(resolve("claude-sonnet-4-5").as_deref(), Some("claude-sonnet-4.5"));
        assert_eq!(resolve("claude-sonnet-4-5-20250929").as_deref(), Some("claude-sonnet-4.5"));
        assert_eq!(resolve("claude-3-7-sonnet-20250219").as_deref(), Some("claude-3.7-sonnet"));
        assert_eq!(resolve("CLAUDE_SONNET_4_5_20250929_V1_0").as_deref(), Some("CLAUDE_SONNET_4_5_20250929_V1_0"));
        assert_eq!(resolve("kiro-auto").as_deref(), Some("auto"));
        assert_eq!(resolve("kiro-auto-agentic"), None);
        assert_eq!(resolve("gpt-4o"), None);
        assert_eq!(resolve("claude-opus-4-1"), None);
        for name in catalogue() {
            assert!(resolve(name.strip_prefix("kiro/").unwrap_or(&name)).is_some(), "{name}");
        }
        assert!(catalogue().contains(&"kiro/kiro-claude-sonnet-4-5".to_string()));
        assert!(catalogue().contains(&"kiro-claude-opus-4-5-agentic".to_string()));
        assert_eq!(split_agentic("claude-opus-4.5-agentic"), ("claude-opus-4.5", true));
    }
}
