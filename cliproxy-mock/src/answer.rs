//! The dialect-neutral content of an answer: what a directive (or the default) says the model
//! produced, with token counts. Each dialect renders it as JSON or as a stream of events.

use crate::directive::Directive;

/// The answer text when no directive gives one.
pub const DEFAULT_REPLY: &str = "Hello from the mock.";

/// Characters per text delta in streams: a few, as real models stream.
pub const TEXT_DELTA_CHARS: usize = 4;

/// Bytes per tool-argument fragment in streams.
pub const ARGUMENT_FRAGMENT_BYTES: usize = 5;

/// One tool call of an answer.
#[derive(Debug, Clone)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as JSON text.
    pub arguments: String,
}

/// Token counts of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cached: u64,
    pub cache_creation: u64,
}

/// What the model "said".
#[derive(Debug, Clone)]
pub struct Answer {
    pub thinking: Option<String>,
    pub text: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    /// Finish reason override from the directive, not yet in any dialect's spelling.
    pub finish: Option<String>,
    pub usage: Usage,
}

impl Answer {
    /// The answer a directive scripts for a request body of `body_len` bytes. Tool call ids are
    /// `{id_prefix}{n}` (n from 0) unless the directive names them. Token counts are a
    /// deterministic estimate (a quarter of the bytes / characters, at least 1) so tests can
    /// predict them.
    pub fn new(directive: &Directive, body_len: usize, id_prefix: &str) -> Answer {
        let text = match (&directive.reply, directive.tool_calls.is_empty()) {
            (Some(reply), _) => Some(reply.clone()),
            (None, true) => Some(DEFAULT_REPLY.to_owned()),
            (None, false) => None,
        };
        let tool_calls: Vec<ToolCall> = directive
            .tool_calls
            .iter()
            .enumerate()
            .map(|(n, call)| ToolCall {
                id: call.id.clone().unwrap_or_else(|| format!("{id_prefix}{n}")),
                name: call.name.clone(),
                arguments: match &call.arguments {
                    serde_json::Value::String(raw) => raw.clone(),
                    value => value.to_string(),
                },
            })
            .collect();
        let output_chars = text.as_deref().map_or(0, |t| t.chars().count())
            + tool_calls.iter().map(|c| c.arguments.chars().count()).sum::<usize>();
        let spec = directive.usage.clone().unwrap_or_default();
        let usage = Usage {
            input: spec.input.unwrap_or_else(|| estimate(body_len)),
            output: spec.output.unwrap_or_else(|| estimate(output_chars)),
            cached: spec.cached.unwrap_or(0),
            cache_creation: spec.cache_creation.unwrap_or(0),
        };
        Answer { thinking: directive.thinking.clone(), text, tool_calls, finish: directive.finish.clone(), usage }
    }
}

/// A quarter of `n`, at least 1: the mock's token count for `n` bytes or characters.
pub fn estimate(n: usize) -> u64 {
    (n as u64 / 4).max(1)
}

/// Pieces of `s` of `n` characters each (the last may be shorter).
pub fn char_pieces(s: &str, n: usize) -> impl Iterator<Item = &str> {
    let n = n.max(1);
    let mut rest = s;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.char_indices().nth(n).map_or(rest.len(), |(i, _)| i);
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

/// Pieces of `s` of about `n` bytes each, never splitting a character (a piece holding one wide
/// character may be longer than `n`).
pub fn byte_pieces(s: &str, n: usize) -> impl Iterator<Item = &str> {
    let n = n.max(1);
    let mut rest = s;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = n.min(rest.len());
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directive(json: &str) -> Directive {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn default_answer_is_the_greeting() {
        let a = Answer::new(&Directive::default(), 100, "call_");
        assert_eq!(a.text.as_deref(), Some(DEFAULT_REPLY));
        assert_eq!(a.usage.input, 25);
        assert_eq!(a.usage.output, 5);
        assert!(a.tool_calls.is_empty());
    }

    #[test]
    fn tool_calls_alone_have_no_text() {
        let a = Answer::new(
            &directive(r#"{"tool_calls":[{"name":"f","arguments":{"a":1}},{"name":"g","id":"x"}]}"#),
            3,
            "toolu_",
        );
        assert!(a.text.is_none());
        assert_eq!(a.tool_calls[0].id, "toolu_0");
        assert_eq!(a.tool_calls[0].arguments, r#"{"a":1}"#);
        assert_eq!(a.tool_calls[1].id, "x");
        assert_eq!(a.usage.input, 1);
        assert_eq!(a.usage.output, 2);
    }

    #[test]
    fn usage_spec_overrides_the_estimate() {
        let a = Answer::new(&directive(r#"{"usage":{"input":7,"cached":3}}"#), 400, "c");
        assert_eq!(a.usage, Usage { input: 7, output: 5, cached: 3, cache_creation: 0 });
    }

    #[test]
    fn pieces_respect_characters() {
        let s = "日本語🎉ab";
        assert_eq!(char_pieces(s, 2).collect::<Vec<_>>(), ["日本", "語🎉", "ab"]);
        let bytes: Vec<_> = byte_pieces(s, 5).collect();
        assert_eq!(bytes.concat(), s);
        assert!(bytes.len() > 2);
        assert_eq!(byte_pieces("", 5).count(), 0);
        assert_eq!(byte_pieces("abcdefghijk", 5).collect::<Vec<_>>(), ["abcde", "fghij", "k"]);
    }
}
