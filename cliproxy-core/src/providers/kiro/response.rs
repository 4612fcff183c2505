//! Kiro's AWS event stream → IR stream events.
//!
//! Frames come from [`EventStreamDecoder`] (CRC-checked, bounded), so a frame split across reads decodes the
//! same as a whole one. On top of the frames:
//! - `assistantResponseEvent` text is streamed as text deltas; a `<thinking>…</thinking>` span at the start of
//!   the answer becomes a thinking block, with tags that may be cut across events anywhere;
//! - `reasoningContentEvent` text is thinking as well;
//! - `toolUseEvent` fragments are gathered per `toolUseId` and the call is emitted whole when `stop` arrives
//!   (or at the end of the stream), so its arguments are checked before anyone sees them: arguments that do not
//!   parse (Kiro truncates very large tool inputs) are an error naming the tool, never a call with `{}`;
//!   events for a call already emitted are dropped (Kiro sometimes repeats them);
//! - usage comes from `metadataEvent.tokenUsage` when the stream has one, else it is counted with the
//!   tokenizer over the request and the answer: never zeros;
//! - exception / error frames and `invalidStateEvent` end the stream with an error whose status tells routing
//!   what happened (a `ThrottlingException` is a 429, so it fails over like one).

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::request::kiro_tool_name;
use crate::error::{Error, Result};
use crate::providers::UpstreamStream;
use crate::stream::eventstream::{EventStreamDecoder, Frame};
use crate::types::{BlockKind, ChatRequest, ChatResponse, ResponseAccumulator, StopReason, StreamEvent, Usage};

const OPEN: &str = "<thinking>";
const CLOSE: &str = "</thinking>";

/// Where the text of the answer stands with respect to a leading thinking span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing but whitespace seen yet: a `<thinking>` may still begin.
    Start,
    Thinking,
    /// Right after `</thinking>`: leading newlines are dropped.
    AfterThinking,
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(usize),
    Thinking(usize),
}

struct PendingTool {
    name: String,
    input: String,
}

/// The per-request decoder. Built with what it needs to know about the request: the model name to report,
/// the client's tool names (to undo shortening) and the prompt's token count.
pub struct KiroStream {
    frames: EventStreamDecoder,
    buf: Vec<Frame>,
    id: String,
    model: String,
    input_tokens: u64,
    tool_names: HashMap<String, String>,
    started: bool,
    next_index: usize,
    open: Option<Open>,
    phase: Phase,
    /// Text held back because it may be the beginning of a tag.
    held: String,
    tools: Vec<(String, PendingTool)>,
    done_tools: HashSet<String>,
    any_tool: bool,
    /// A stop reason the stream stated (`stopReason`); otherwise tool use or end of turn.
    stop_reason: Option<StopReason>,
    output_text: String,
    metadata: Option<Usage>,
    finished: bool,
}

impl KiroStream {
    pub fn new(request: &ChatRequest, id: String) -> Self {
        let tool_names = request.tools.iter().map(|t| (kiro_tool_name(&t.name), t.name.clone())).collect();
        KiroStream {
            frames: EventStreamDecoder::new(),
            buf: Vec::new(),
            id,
            model: request.model.clone(),
            input_tokens: crate::tokens::count_request(request),
            tool_names,
            started: false,
            next_index: 0,
            open: None,
            phase: Phase::Start,
            held: String::new(),
            tools: Vec::new(),
            done_tools: HashSet::new(),
            any_tool: false,
            stop_reason: None,
            output_text: String::new(),
            metadata: None,
            finished: false,
        }
    }

    fn start(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            let usage = Usage { input_tokens: self.input_tokens, ..Usage::default() };
            out.push(StreamEvent::Start { id: self.id.clone(), model: self.model.clone(), usage });
        }
    }

    fn close_open(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(Open::Text(i) | Open::Thinking(i)) = self.open.take() {
            out.push(StreamEvent::BlockStop { index: i });
        }
    }

    fn emit_text(&mut self, text: &str, out: &mut Vec<StreamEvent>) {
        if text.is_empty() {
            return;
        }
        self.start(out);
        self.output_text.push_str(text);
        let index = match self.open {
            Some(Open::Text(i)) => i,
            _ => {
                self.close_open(out);
                let i = self.next_index;
                self.next_index += 1;
                out.push(StreamEvent::BlockStart { index: i, block: BlockKind::Text });
                self.open = Some(Open::Text(i));
                i
            }
        };
        out.push(StreamEvent::TextDelta { index, text: text.to_owned() });
    }

    fn emit_thinking(&mut self, text: &str, out: &mut Vec<StreamEvent>) {
        if text.is_empty() {
            return;
        }
        self.start(out);
        self.output_text.push_str(text);
        let index = match self.open {
            Some(Open::Thinking(i)) => i,
            _ => {
                self.close_open(out);
                let i = self.next_index;
                self.next_index += 1;
                out.push(StreamEvent::BlockStart { index: i, block: BlockKind::Thinking });
                self.open = Some(Open::Thinking(i));
                i
            }
        };
        out.push(StreamEvent::ThinkingDelta { index, text: text.to_owned() });
    }

    /// Feeds answer text through the thinking-tag state machine.
    fn text(&mut self, piece: &str, out: &mut Vec<StreamEvent>) {
        self.held.push_str(piece);
        loop {
            match self.phase {
                Phase::Start => {
                    let trimmed = self.held.trim_start();
                    if trimmed.is_empty() {
                        return;
                    }
                    if let Some(rest) = trimmed.strip_prefix(OPEN) {
                        self.held = rest.to_owned();
                        self.phase = Phase::Thinking;
                    } else if OPEN.starts_with(trimmed) {
                        return; // maybe the tag, cut short
                    } else {
                        self.phase = Phase::Text;
                    }
                }
                Phase::Thinking => {
                    if let Some(at) = self.held.find(CLOSE) {
                        let thinking = self.held[..at].to_owned();
                        self.held = self.held[at + CLOSE.len()..].to_owned();
                        self.emit_thinking(&thinking, out);
                        self.phase = Phase::AfterThinking;
                    } else {
                        // Emit all but a tail that could start the closing tag.
                        let keep = partial_suffix(&self.held, CLOSE);
                        let emit_to = self.held.len() - keep;
                        let thinking = self.held[..emit_to].to_owned();
                        self.held.drain(..emit_to);
                        self.emit_thinking(&thinking, out);
                        return;
                    }
                }
                Phase::AfterThinking => {
                    let trimmed = self.held.trim_start_matches(['\n', '\r']);
                    if trimmed.is_empty() {
                        self.held.clear();
                        return;
                    }
                    self.held = trimmed.to_owned();
                    self.phase = Phase::Text;
                }
                Phase::Text => {
                    let text = std::mem::take(&mut self.held);
                    self.emit_text(&text, out);
                    return;
                }
            }
        }
    }

    fn tool_event(&mut self, v: &Value, out: &mut Vec<StreamEvent>) -> Result<()> {
        let Some(id) = v.get("toolUseId").and_then(Value::as_str) else { return Ok(()) };
        if self.done_tools.contains(id) {
            return Ok(()); // a repeat of a call already emitted
        }
        let pos = match self.tools.iter().position(|(i, _)| i == id) {
            Some(p) => p,
            None => {
                let name = v.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
                self.tools.push((id.to_owned(), PendingTool { name, input: String::new() }));
                self.tools.len() - 1
            }
        };
        let tool = &mut self.tools[pos].1;
        if tool.name.is_empty()
            && let Some(n) = v.get("name").and_then(Value::as_str)
        {
            tool.name = n.to_owned();
        }
        match v.get("input") {
            Some(Value::String(s)) => tool.input.push_str(s),
            Some(obj @ Value::Object(_)) => tool.input = obj.to_string(),
            _ => {}
        }
        if v.get("stop").and_then(Value::as_bool) == Some(true) {
            let (id, tool) = self.tools.remove(pos);
            self.emit_tool(id, tool, out)?;
        }
        Ok(())
    }

    fn emit_tool(&mut self, id: String, tool: PendingTool, out: &mut Vec<StreamEvent>) -> Result<()> {
        let name = self.tool_names.get(&tool.name).cloned().unwrap_or(tool.name);
        let args = if tool.input.trim().is_empty() { "{}".to_owned() } else { tool.input };
        match serde_json::from_str::<Value>(&args) {
            Ok(Value::Object(_)) => {}
            _ => {
                return Err(Error::upstream(
                    Some(502),
                    format!(
                        "Kiro cut off the arguments of the `{name}` tool call ({} bytes received, not complete JSON); \
                         ask the model to write less per call (the `-agentic` model variants do)",
                        args.len()
                    ),
                ));
            }
        }
        self.start(out);
        self.close_open(out);
        let index = self.next_index;
        self.next_index += 1;
        self.output_text.push_str(&name);
        self.output_text.push_str(&args);
        out.push(StreamEvent::BlockStart { index, block: BlockKind::ToolUse { id: id.clone(), name } });
        out.push(StreamEvent::ToolArgsDelta { index, json: args });
        out.push(StreamEvent::BlockStop { index });
        self.done_tools.insert(id);
        self.any_tool = true;
        Ok(())
    }

    fn frame(&mut self, f: &Frame, out: &mut Vec<StreamEvent>) -> Result<()> {
        let payload: Value = serde_json::from_slice(&f.payload).unwrap_or(Value::Null);
        match f.message_type() {
            Some("exception") | Some("error") => {
                let kind = f.header_str(":exception-type").or(f.header_str(":error-code")).unwrap_or("error");
                return Err(stream_error(kind, &payload));
            }
            _ => {}
        }
        let event = f.event_type().unwrap_or_default();
        // Some streams nest the payload under the event name.
        let v = payload.get(event).cloned().unwrap_or(payload);
        if let Some(t) = v.get("_type").and_then(Value::as_str).filter(|t| t.contains("Exception")) {
            return Err(stream_error(t.rsplit('#').next().unwrap_or(t), &v));
        }
        match event {
            "assistantResponseEvent" => {
                if let Some(text) = v.get("content").and_then(Value::as_str) {
                    let text = text.to_owned();
                    self.text(&text, out);
                }
                // Some streams carry whole tool calls here instead of in `toolUseEvent`s.
                for tool in v.get("toolUses").and_then(Value::as_array).into_iter().flatten() {
                    let mut call = tool.clone();
                    call["stop"] = true.into();
                    self.tool_event(&call, out)?;
                }
                if let Some(reason) = v.get("stopReason").and_then(Value::as_str) {
                    self.stop_reason = Some(match reason.to_ascii_lowercase().as_str() {
                        "max_tokens" | "length" => StopReason::MaxTokens,
                        "tool_use" => StopReason::ToolUse,
                        "end_turn" | "stop" => StopReason::EndTurn,
                        "content_filtered" | "content_filter" => StopReason::ContentFilter,
                        other => StopReason::Other(other.to_owned()),
                    });
                }
            }
            "reasoningContentEvent" => {
                if let Some(text) = v.get("text").and_then(Value::as_str) {
                    let text = text.to_owned();
                    self.emit_thinking(&text, out);
                }
                if let Some(sig) = v.get("signature").and_then(Value::as_str)
                    && let Some(Open::Thinking(index)) = self.open
                {
                    out.push(StreamEvent::SignatureDelta { index, signature: sig.to_owned() });
                }
            }
            "toolUseEvent" => self.tool_event(&v, out)?,
            "metadataEvent" => {
                if let Some(u) = v.get("tokenUsage") {
                    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
                    self.metadata = Some(Usage {
                        input_tokens: n("uncachedInputTokens"),
                        output_tokens: n("outputTokens"),
                        cache_read_tokens: n("cacheReadInputTokens"),
                        cache_creation_tokens: n("cacheWriteInputTokens"),
                        reasoning_tokens: 0,
                    });
                }
            }
            "messageMetadataEvent" => {
                if let Some(u) = v.get("utteranceId").and_then(Value::as_str).filter(|_| !self.started) {
                    self.id = format!("msg_{u}");
                }
            }
            "invalidStateEvent" => {
                let msg = v.get("message").or(v.get("reason")).and_then(Value::as_str).unwrap_or("invalid state");
                return Err(Error::upstream(Some(502), format!("Kiro reported an invalid state: {msg}")));
            }
            _ => {} // metering, context usage, follow-up prompts, links, code references
        }
        Ok(())
    }

    fn usage(&self) -> Usage {
        match self.metadata {
            Some(u) if u.input_tokens + u.output_tokens + u.cache_read_tokens > 0 => u,
            _ => Usage {
                input_tokens: self.input_tokens,
                output_tokens: crate::tokens::count_text(&self.output_text).max(1),
                ..Usage::default()
            },
        }
    }
}

/// How many trailing bytes of `s` could be the beginning of `tag`.
fn partial_suffix(s: &str, tag: &str) -> usize {
    (1..tag.len())
        .rev()
        .find(|&n| n <= s.len() && s.is_char_boundary(s.len() - n) && tag.starts_with(&s[s.len() - n..]))
        .unwrap_or(0)
}

/// An in-stream error with the HTTP status routing should treat it as.
fn stream_error(kind: &str, payload: &Value) -> Error {
    let message = payload.get("message").or(payload.get("Message")).and_then(Value::as_str).unwrap_or("");
    let status = match kind {
        k if k.contains("Throttling") => 429,
        k if k.contains("Validation") => 400,
        k if k.contains("AccessDenied") => 403,
        k if k.contains("ServiceQuotaExceeded") => 402,
        _ => 500,
    };
    Error::upstream(Some(status), format!("Kiro stream error {kind}: {message}"))
}

impl UpstreamStream for KiroStream {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<StreamEvent>) -> Result<()> {
        let result = self.frames.push(chunk, &mut self.buf);
        let frames = std::mem::take(&mut self.buf);
        for f in &frames {
            self.frame(f, out)?;
        }
        result.map_err(Error::from)
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        self.frames.finish().map_err(Error::from)?;
        // Text held back as a possible tag start is text after all.
        let held = std::mem::take(&mut self.held);
        match self.phase {
            Phase::Thinking => self.emit_thinking(&held, out),
            _ => {
                if !held.trim().is_empty() || self.phase == Phase::Text {
                    self.emit_text(&held, out)
                }
            }
        }
        for (id, tool) in std::mem::take(&mut self.tools) {
            self.emit_tool(id, tool, out)?;
        }
        self.start(out);
        self.close_open(out);
        let stop = match self.stop_reason.take() {
            Some(r) if !(self.any_tool && r == StopReason::EndTurn) => r,
            _ if self.any_tool => StopReason::ToolUse,
            _ => StopReason::EndTurn,
        };
        out.push(StreamEvent::Finish { stop_reason: Some(stop), usage: self.usage() });
        Ok(())
    }
}

/// A whole event-stream body → the answer it describes (for clients that did not ask to stream).
pub fn parse_whole(request: &ChatRequest, id: String, body: &[u8]) -> Result<ChatResponse> {
    let mut s = KiroStream::new(request, id);
    let mut events = Vec::new();
    s.push(body, &mut events)?;
    s.finish(&mut events)?;
    let mut acc = ResponseAccumulator::new();
    for e in &events {
        acc.push(e);
    }
    Ok(acc.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::eventstream::{HeaderValue, encode_frame};
    use crate::types::ContentPart;
    use serde_json::json;

    fn event(name: &str, payload: Value) -> Vec<u8> {
        encode_frame(
            &[
                (":event-type", HeaderValue::String(name.into())),
                (":content-type", HeaderValue::String("application/json".into())),
                (":message-type", HeaderValue::String("event".into())),
            ],
            payload.to_string().as_bytes(),
        )
    }

    fn request() -> ChatRequest {
        let mut r = crate::dialects::Dialect::OpenAiChat
            .parse_request(
                br#"{"model":"m","messages":[{"role":"user","content":"What is the weather in Paris?"}],
                "tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]}"#,
            )
            .unwrap();
        r.model = "claude-sonnet-4.5".into();
        r
    }

    /// A realistic answer: thinking with tags cut across events, text, a fragmented tool call repeated after
    /// its stop, metering and context usage.
    fn answer() -> Vec<u8> {
        let mut b = Vec::new();
        for piece in ["<thin", "king>Let me", " check.</thi", "nking>\n\nChecking ", "the weather."] {
            b.extend(event("assistantResponseEvent", json!({"content": piece})));
        }
        for (input, stop) in [("{\"ci", false), ("ty\":\"Par", false), ("is\"}", false), ("", true)] {
            let mut v = json!({"name": "get_weather", "toolUseId": "tooluse_A", "input": input});
            if stop {
                v["stop"] = true.into();
            }
            b.extend(event("toolUseEvent", v));
        }
        b.extend(event(
            "toolUseEvent",
            json!({"name": "get_weather", "toolUseId": "tooluse_A", "input": "{}", "stop": true}),
        ));
        b.extend(event("meteringEvent", json!({"unit": "credit", "unitPlural": "credits", "usage": 0.0169})));
        b.extend(event("contextUsageEvent", json!({"contextUsagePercentage": 1.2})));
        b
    }

    fn decode(chunks: &[&[u8]]) -> Result<Vec<StreamEvent>> {
        let mut s = KiroStream::new(&request(), "msg_1".into());
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out)?;
        }
        s.finish(&mut out)?;
        Ok(out)
    }

    #[test]
    fn thinking_text_and_tool_call() {
        let r = parse_whole(&request(), "msg_1".into(), &answer()).unwrap();
        assert_eq!(
            r.content,
            vec![
                ContentPart::Thinking { text: "Let me check.".into(), signature: None },
                ContentPart::text("Checking the weather."),
                ContentPart::tool_use("tooluse_A", "get_weather", json!({"city": "Paris"})),
            ]
        );
        assert_eq!(r.stop_reason, Some(StopReason::ToolUse));
        assert!(r.usage.input_tokens > 0 && r.usage.output_tokens > 0, "{:?}", r.usage);
    }

    /// The decoder split property: whatever the read boundaries, the same events come out.
    #[test]
    fn any_split_decodes_identically() {
        let bytes = answer();
        let whole = decode(&[&bytes]).unwrap();
        for at in 0..=bytes.len() {
            assert_eq!(decode(&[&bytes[..at], &bytes[at..]]).unwrap(), whole, "split at {at}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(decode(&singles).unwrap(), whole);
        for size in [2, 3, 7, 13, 64] {
            let pieces: Vec<&[u8]> = bytes.chunks(size).collect();
            assert_eq!(decode(&pieces).unwrap(), whole, "chunks of {size}");
        }
    }

    proptest::proptest! {
        /// Any number of cuts anywhere gives the same events as the whole body.
        #[test]
        fn random_splits_decode_identically(mut cuts in proptest::collection::vec(0usize..2048, 0..12)) {
            let bytes = answer();
            let whole = decode(&[&bytes]).unwrap();
            cuts.iter_mut().for_each(|c| *c %= bytes.len() + 1);
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut at = 0;
            for c in cuts {
                pieces.push(&bytes[at..c]);
                at = c;
            }
            pieces.push(&bytes[at..]);
            proptest::prop_assert_eq!(decode(&pieces).unwrap(), whole);
        }
    }

    #[test]
    fn whole_tool_uses_and_stop_reason_in_assistant_events() {
        let mut b = event(
            "assistantResponseEvent",
            json!({"content": "Calling.", "toolUses": [
            {"toolUseId": "t9", "name": "get_weather", "input": {"city": "Rome"}}]}),
        );
        b.extend(event("toolUseEvent", json!({"name": "get_weather", "toolUseId": "t9", "input": "{}", "stop": true})));
        let r = parse_whole(&request(), "m".into(), &b).unwrap();
        assert_eq!(
            r.content,
            vec![ContentPart::text("Calling."), ContentPart::tool_use("t9", "get_weather", json!({"city": "Rome"}))]
        );
        assert_eq!(r.stop_reason, Some(StopReason::ToolUse));
        let b = event("assistantResponseEvent", json!({"content": "cut", "stopReason": "MAX_TOKENS"}));
        assert_eq!(parse_whole(&request(), "m".into(), &b).unwrap().stop_reason, Some(StopReason::MaxTokens));
    }

    #[test]
    fn metadata_usage_wins() {
        let mut b = event("assistantResponseEvent", json!({"content": "Hi"}));
        b.extend(event(
            "metadataEvent",
            json!({"tokenUsage": {"uncachedInputTokens": 11, "cacheReadInputTokens": 3,
            "cacheWriteInputTokens": 0, "outputTokens": 7, "totalTokens": 21}}),
        ));
        let r = parse_whole(&request(), "m".into(), &b).unwrap();
        assert_eq!(r.usage, Usage { input_tokens: 11, output_tokens: 7, cache_read_tokens: 3, ..Usage::default() });
        assert_eq!(r.content, vec![ContentPart::text("Hi")]);
    }

    #[test]
    fn truncated_tool_json_is_an_error_naming_the_tool() {
        let mut b = event("assistantResponseEvent", json!({"content": "Writing"}));
        b.extend(event("toolUseEvent", json!({"name": "get_weather", "toolUseId": "t1", "input": "{\"city\":\"Par"})));
        let e = parse_whole(&request(), "m".into(), &b).unwrap_err();
        assert!(e.message().contains("`get_weather`"), "{}", e.message());
        b.extend(event("toolUseEvent", json!({"name": "get_weather", "toolUseId": "t1", "stop": true})));
        assert!(parse_whole(&request(), "m".into(), &b).is_err());
    }

    #[test]
    fn exceptions_and_invalid_state_are_errors() {
        let frame = encode_frame(
            &[
                (":message-type", HeaderValue::String("exception".into())),
                (":exception-type", HeaderValue::String("ThrottlingException".into())),
            ],
            br#"{"message":"The request was throttled by the service"}"#,
        );
        let mut s = KiroStream::new(&request(), "m".into());
        let mut out = Vec::new();
        let e = s.push(&frame, &mut out).unwrap_err();
        assert_eq!(e.status(), Some(429));
        assert!(out.is_empty(), "nothing was emitted before the error, so routing may fail over");
        let b = event("invalidStateEvent", json!({"reason": "INVALID_TASK_STATE", "message": "Invalid state"}));
        assert!(parse_whole(&request(), "m".into(), &b).is_err());
    }

    #[test]
    fn thinking_tags_only_at_the_start_and_plain_lookalikes() {
        let b = event("assistantResponseEvent", json!({"content": "Use <thinking> tags like this."}));
        let r = parse_whole(&request(), "m".into(), &b).unwrap();
        assert_eq!(r.content, vec![ContentPart::text("Use <thinking> tags like this.")]);
        let b = event("assistantResponseEvent", json!({"content": "<thin"}));
        let r = parse_whole(&request(), "m".into(), &b).unwrap();
        assert_eq!(r.content, vec![ContentPart::text("<thin")]);
        let b = event("assistantResponseEvent", json!({"assistantResponseEvent": {"content": "nested"}}));
        let r = parse_whole(&request(), "m".into(), &b).unwrap();
        assert_eq!(r.content, vec![ContentPart::text("nested")]);
    }
}
