//! The directive: how a test tells the mock what to answer. It rides inside the conversation text
//! (`mock:{json}`) so that it survives any proxy translation between dialects, and it makes the
//! mock stateless: every request carries its own script, so parallel tests never interfere.

use std::collections::HashMap;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use crate::fault::Fault;

/// The text that introduces a directive inside a message.
pub const MARKER: &str = "mock:";

/// The script for one answer. Every field is optional; an empty directive gives the default
/// answer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Directive {
    /// The assistant text.
    pub reply: Option<String>,
    /// Reasoning text, sent before the answer text.
    pub thinking: Option<String>,
    /// Tool calls the answer makes (after any `reply` text).
    pub tool_calls: Vec<ToolCallSpec>,
    /// Finish / stop reason override, in either dialect's spelling.
    pub finish: Option<String>,
    /// Token counts to report instead of the deterministic estimate.
    pub usage: Option<UsageSpec>,
    /// Byte offsets at which the response body is cut into separately flushed pieces.
    pub split: Vec<usize>,
    /// Write the body this many bytes at a time.
    pub chunk: Option<usize>,
    /// Pause between stream events, in milliseconds.
    pub delay_ms: u64,
    /// Fault for every key.
    pub fault: Option<Fault>,
    /// Faults per API key or bearer token, taking precedence over `fault`.
    pub per_key: HashMap<String, Fault>,
}

/// One scripted tool call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCallSpec {
    pub name: String,
    /// The call's input. A JSON string is sent verbatim as the arguments text (so tests can send
    /// malformed arguments); anything else is serialized compactly.
    #[serde(default = "empty_object")]
    pub arguments: Value,
    /// Overrides the generated `call_<n>` / `toolu_<n>` id.
    pub id: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// Reported token counts; missing ones fall back to the estimate (cached ones to zero).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsageSpec {
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub cached: Option<u64>,
    /// Anthropic `cache_creation_input_tokens`.
    pub cache_creation: Option<u64>,
}

impl Directive {
    /// The last directive among `texts`, `None` when there is none. A `mock:` followed by
    /// something that is not a JSON object is ordinary text; a JSON object that is not a valid
    /// directive is an error, so that a typo in a test fails loudly instead of silently giving
    /// the default answer.
    pub fn find<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Option<Directive>, String> {
        let mut last = None;
        for text in texts {
            let mut pos = 0;
            while let Some(found) = text[pos..].find(MARKER) {
                let start = pos + found + MARKER.len();
                match leading_object(&text[start..]) {
                    Some(raw) => {
                        last = Some(raw);
                        pos = raw.as_ptr() as usize - text.as_ptr() as usize + raw.len();
                    }
                    None => pos = start,
                }
            }
        }
        last.map(|raw| {
            let directive: Directive = serde_json::from_str(raw).map_err(|e| format!("mock directive {raw}: {e}"))?;
            directive
                .fault
                .iter()
                .chain(directive.per_key.values())
                .try_for_each(Fault::validate)
                .map_err(|e| format!("mock directive {raw}: {e}"))?;
            Ok(directive)
        })
        .transpose()
    }

    /// The fault that applies to a request made with `key` for `model`: the directive's fault for that key,
    /// else the account's own scripted fault (see [`crate::accounts::Accounts::set_fault`]), else the
    /// directive's general one; a fault scoped to another model is passed over.
    pub fn fault_for<'a>(&'a self, key: Option<&str>, account: Option<&'a Fault>, model: &str) -> Option<&'a Fault> {
        [key.and_then(|k| self.per_key.get(k)), account, self.fault.as_ref()]
            .into_iter()
            .flatten()
            .find(|f| f.model.as_deref().is_none_or(|m| m == model))
    }
}

/// The JSON object at the start of `rest` (after blanks), as a slice of it.
fn leading_object(rest: &str) -> Option<&str> {
    let trimmed = rest.trim_start();
    if !trimmed.starts_with('{') {
        return None;
    }
    let mut values = serde_json::Deserializer::from_str(trimmed).into_iter::<IgnoredAny>();
    match values.next() {
        Some(Ok(_)) => Some(&trimmed[..values.byte_offset()]),
        _ => None,
    }
}

/// Pushes the texts of a message `content` (or an Anthropic `system`): a plain string, or the
/// `text` of each part / block, descending into `tool_result` contents. Both OpenAI parts and
/// Anthropic blocks have this shape, so every dialect shares it.
pub fn content_texts<'a>(content: &'a Value, out: &mut Vec<&'a str>) {
    match content {
        Value::String(s) => out.push(s),
        Value::Array(parts) => {
            for part in parts {
                if let Some(text) = part.get("text").and_then(Value::as_str) {
                    out.push(text);
                }
                if part.get("type").and_then(Value::as_str) == Some("tool_result")
                    && let Some(inner) = part.get("content")
                {
                    content_texts(inner, out);
                }
            }
        }
        _ => {}
    }
}

/// The texts of a `messages` array (each message's `content`).
pub fn message_texts<'a>(messages: &'a [Value], out: &mut Vec<&'a str>) {
    for message in messages {
        if let Some(content) = message.get("content") {
            content_texts(content, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn find(texts: &[&str]) -> Option<Directive> {
        Directive::find(texts.iter().copied()).unwrap()
    }

    #[test]
    fn no_marker_means_no_directive() {
        assert!(find(&["hello", "world"]).is_none());
        assert!(find(&["mock: not json"]).is_none());
    }

    #[test]
    fn directive_anywhere_in_a_block_and_last_wins() {
        let d = find(&[r#"mock:{"reply":"first"}"#, r#"please mock:{"reply":"second"}"#]).unwrap();
        assert_eq!(d.reply.as_deref(), Some("second"));
    }

    #[test]
    fn trailing_text_after_the_object_is_ignored() {
        let d = find(&["mock: {\"reply\":\"日本語 🎉\"}\nand more text"]).unwrap();
        assert_eq!(d.reply.as_deref(), Some("日本語 🎉"));
    }

    #[test]
    fn a_marker_inside_a_directive_is_not_a_second_directive() {
        let d = find(&[r#"mock:{"reply":"say mock:{\"reply\":\"x\"}"}"#]).unwrap();
        assert_eq!(d.reply.as_deref(), Some(r#"say mock:{"reply":"x"}"#));
    }

    #[test]
    fn unknown_fields_are_errors() {
        let err = Directive::find([r#"mock:{"replay":"x"}"#]).unwrap_err();
        assert!(err.contains("replay"), "{err}");
    }

    #[test]
    fn per_key_fault_overrides_the_account_one_which_overrides_the_general_one() {
        let d = find(&[r#"mock:{"fault":{"status":500},"per_key":{"sk-a":{"status":429}}}"#]).unwrap();
        let account = Fault { status: Some(402), ..Fault::default() };
        assert_eq!(d.fault_for(Some("sk-a"), Some(&account), "m").unwrap().status, Some(429));
        assert_eq!(d.fault_for(Some("sk-b"), Some(&account), "m").unwrap().status, Some(402));
        assert_eq!(d.fault_for(Some("sk-b"), None, "m").unwrap().status, Some(500));
        assert_eq!(d.fault_for(None, None, "m").unwrap().status, Some(500));
    }

    #[test]
    fn a_fault_scoped_to_a_model_spares_the_others() {
        let d = find(&[r#"mock:{"fault":{"status":429,"model":"gemini-2.5-pro"}}"#]).unwrap();
        assert!(d.fault_for(None, None, "gemini-2.5-pro").is_some());
        assert!(d.fault_for(None, None, "gemini-2.5-flash").is_none());
        let general = find(&[r#"mock:{"fault":{"status":500}}"#]).unwrap();
        let scoped = Fault { status: Some(429), model: Some("gemini-2.5-pro".into()), ..Fault::default() };
        let on_flash = general.fault_for(None, Some(&scoped), "gemini-2.5-flash").unwrap();
        assert_eq!(on_flash.status, Some(500), "a scoped fault that does not apply gives way to the next");
    }

    #[test]
    fn texts_come_from_strings_parts_and_tool_results() {
        let messages = json!([
            {"role": "user", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": "b"}, {"type": "image_url"}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                "content": [{"type": "text", "text": "c"}]}]},
            {"role": "user", "content": [{"type": "tool_result", "content": "d"}]},
            {"role": "assistant", "content": null}
        ]);
        let mut out = Vec::new();
        message_texts(messages.as_array().unwrap(), &mut out);
        assert_eq!(out, ["a", "b", "c", "d"]);
    }

    #[test]
    fn tool_call_arguments_default_to_an_empty_object() {
        let d = find(&[r#"mock:{"tool_calls":[{"name":"f"}]}"#]).unwrap();
        assert_eq!(d.tool_calls[0].arguments, json!({}));
    }
}
