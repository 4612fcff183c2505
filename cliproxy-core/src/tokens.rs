//! Token counting for `count_tokens` when the upstream has no counter of its own, and for providers whose
//! streams carry no usage. Uses the o200k BPE: Claude's tokenizer is not public, so this is an estimate that is
//! close for English and code (within roughly 10–20%) and is documented as such.

use crate::types::{ChatRequest, ContentPart};

/// Tokens of a piece of text.
pub fn count_text(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    tiktoken_rs::o200k_base_singleton().encode_with_special_tokens(text).len() as u64
}

/// Tokens of everything a request sends: system, messages, tool definitions, plus a small per-message overhead
/// for the role markers the upstream adds.
pub fn count_request(req: &ChatRequest) -> u64 {
    const PER_MESSAGE: u64 = 4;
    let mut n = req.system.iter().map(count_part).sum::<u64>();
    for m in &req.messages {
        n += PER_MESSAGE + m.content.iter().map(count_part).sum::<u64>();
    }
    for t in &req.tools {
        n += count_text(&t.name)
            + t.description.as_deref().map_or(0, count_text)
            + count_text(&t.parameters.to_string());
    }
    n.max(1)
}

fn count_part(p: &ContentPart) -> u64 {
    match p {
        ContentPart::Text { text, .. } => count_text(text),
        ContentPart::Thinking { text, .. } => count_text(text),
        ContentPart::ToolUse { name, input, .. } => count_text(name) + count_text(&input.to_string()),
        ContentPart::ToolResult { content, .. } => content.iter().map(count_part).sum(),
        // Anthropic bills images by pixel area; without decoding we use its typical ~1.6k for a 1 MP image.
        ContentPart::Image { .. } => 1600,
        ContentPart::Opaque(o) => count_text(&o.value.to_string()),
        ContentPart::RedactedThinking { .. } => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_plausible() {
        assert_eq!(count_text(""), 0);
        let n = count_text("The quick brown fox jumps over the lazy dog.");
        assert!((8..=12).contains(&n), "{n}");
        assert!(count_text("你好，世界") >= 2);
    }
}
