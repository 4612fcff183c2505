//! The intermediate representation (IR) every client dialect and every upstream maps to and from.
//!
//! The IR follows Anthropic's Messages model because it is the richer of the two: content is a list of typed
//! parts (text with cache hints, images, tool calls, tool results, signed thinking), tool results live inside
//! user messages, and a stream is a sequence of numbered blocks. OpenAI Chat Completions maps into it without
//! loss of meaning (a `tool` message becomes a tool-result part, `reasoning_content` a thinking part), and
//! both directions of each dialect round-trip through it: what one dialect has and the IR does not model is
//! kept in [`ChatRequest::extra`] or [`ContentPart::Opaque`] and written back only to the dialect it came from.
//!
//! Token usage is counted the Anthropic way (see [`Usage`]) because that split cannot be recovered from
//! OpenAI's totals, while OpenAI's numbers are simple sums of it.

use serde_json::Value;

/// Who wrote a message. System prompts are not messages (see [`ChatRequest::system`]) and tool results are
/// [`ContentPart::ToolResult`] parts of a user message, as in Anthropic's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    #[default]
    User,
    Assistant,
}

/// A prompt-caching breakpoint (Anthropic `cache_control`). `kind` is `ephemeral` today; `ttl` (`5m`, `1h`)
/// is optional. Kept as strings so values the API adds later pass through unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheControl {
    pub kind: String,
    pub ttl: Option<String>,
}

impl CacheControl {
    /// The only breakpoint kind Anthropic defines: `{"type":"ephemeral"}`.
    pub fn ephemeral() -> Self {
        CacheControl { kind: "ephemeral".to_owned(), ttl: None }
    }
}

/// Where an image's bytes are: inline (OpenAI `data:` URLs, Anthropic `base64` sources) or at a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

/// A wire format clients speak and upstreams answer in. The IR records it only as a tag (where a request or an
/// untranslatable piece of JSON came from); the codecs that speak each format live in `dialects`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// OpenAI Chat Completions (`/v1/chat/completions`).
    OpenAiChat,
    /// Anthropic Messages (`/v1/messages`).
    Anthropic,
    /// OpenAI Responses (`/v1/responses`).
    Responses,
    /// Gemini `generateContent` (`/v1beta/models/{model}:generateContent`); the model is in the URL.
    Gemini,
}

impl Dialect {
    /// A stable name for logs and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::OpenAiChat => "openai-chat",
            Dialect::Anthropic => "anthropic",
            Dialect::Responses => "responses",
            Dialect::Gemini => "gemini",
        }
    }
}

/// A piece of JSON from one dialect that the IR does not model (an Anthropic `document` block, a server
/// tool, an OpenAI `input_audio` part). It is sent on verbatim to an upstream of the same dialect and left
/// out, with a warning in the log, for any other: there is no faithful translation to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Opaque {
    pub dialect: Dialect,
    pub value: Value,
}

/// One part of a message, a system prompt, a tool result or an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ContentPart {
    Text {
        text: String,
        cache_control: Option<CacheControl>,
    },
    Image {
        source: ImageSource,
        /// OpenAI's `image_url.detail` (`auto`, `low`, `high`); Anthropic has no equivalent.
        detail: Option<String>,
        cache_control: Option<CacheControl>,
    },
    /// A tool call by the assistant. `input` is the parsed arguments object; arguments an upstream sent
    /// that are not valid JSON are kept as a JSON string holding the raw text (see the dialect docs).
    ToolUse {
        id: String,
        name: String,
        input: Value,
        cache_control: Option<CacheControl>,
    },
    /// The result of a tool call, sent back in a user message. `content` holds text and images.
    ToolResult {
        tool_use_id: String,
        content: Vec<ContentPart>,
        is_error: bool,
        cache_control: Option<CacheControl>,
    },
    /// Model reasoning. Anthropic signs it (`signature`) and checks the signature when it is sent back;
    /// reasoning from OpenAI-style upstreams (`reasoning_content`) has none.
    Thinking {
        text: String,
        signature: Option<String>,
    },
    /// Reasoning Anthropic encrypted; only ever sent back to Anthropic as it came.
    RedactedThinking {
        data: String,
    },
    /// Something the IR does not model, kept for the dialect it came from.
    Opaque(Opaque),
}

impl ContentPart {
    /// A text part without a cache breakpoint.
    pub fn text(text: impl Into<String>) -> Self {
        ContentPart::Text { text: text.into(), cache_control: None }
    }

    /// A tool call without a cache breakpoint.
    pub fn tool_use(id: impl Into<String>, name: impl Into<String>, input: Value) -> Self {
        ContentPart::ToolUse { id: id.into(), name: name.into(), input, cache_control: None }
    }

    /// A tool result without a cache breakpoint.
    pub fn tool_result(tool_use_id: impl Into<String>, content: Vec<ContentPart>, is_error: bool) -> Self {
        ContentPart::ToolResult { tool_use_id: tool_use_id.into(), content, is_error, cache_control: None }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    pub role: Role,
    pub content: Vec<ContentPart>,
}

impl Message {
    pub fn user(content: Vec<ContentPart>) -> Self {
        Message { role: Role::User, content }
    }

    pub fn assistant(content: Vec<ContentPart>) -> Self {
        Message { role: Role::Assistant, content }
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// The JSON Schema of the arguments (OpenAI `parameters`, Anthropic `input_schema`).
    pub parameters: Value,
    /// OpenAI's `function.strict` (structured-output tool calls).
    pub strict: Option<bool>,
    pub cache_control: Option<CacheControl>,
    /// A tool the provider itself runs (Anthropic `web_search_20250305`, `bash_20250124`, …): its whole JSON,
    /// sent only to the dialect that defines it. `name` is still filled for routing and logs.
    pub builtin: Option<Opaque>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    None,
    /// The model must call some tool (OpenAI `required`, Anthropic `any`).
    Required,
    /// The model must call this tool.
    Tool(String),
}

/// How much the model should reason. OpenAI clients give an `effort`; Anthropic clients a token budget or,
/// on models with adaptive thinking, `adaptive` with an optional effort (`output_config.effort`). Each
/// encoder derives what its dialect needs from whichever is present (see the dialect docs for the tables).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reasoning {
    pub effort: Option<String>,
    pub budget_tokens: Option<u32>,
    /// Anthropic `thinking: {"type":"adaptive"}`: the model decides how much to think.
    pub adaptive: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    pub model: String,
    /// System prompt parts: OpenAI `system`/`developer` messages (in order), Anthropic `system`.
    pub system: Vec<ContentPart>,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub max_tokens: Option<u32>,
    /// The OpenAI client limited output with `max_completion_tokens` (which reasoning models require)
    /// rather than the older `max_tokens`; an OpenAI encoding uses the same key.
    pub max_completion_tokens: bool,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u32>,
    pub stop: Vec<String>,
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`: the client wants a final usage chunk.
    pub include_usage: bool,
    pub reasoning: Option<Reasoning>,
    pub parallel_tool_calls: Option<bool>,
    /// OpenAI `user` ⇄ Anthropic `metadata.user_id`.
    pub user: Option<String>,
    /// The dialect the request was parsed from, if any.
    pub source: Option<Dialect>,
    /// Top-level fields of the `source` dialect the IR does not model (`seed`, `response_format`, `n`,
    /// `service_tier`, …). Written back only when encoding to that same dialect; never holds a key the
    /// encoder writes itself.
    pub extra: serde_json::Map<String, Value>,
}

/// Token counts, split the Anthropic way: `input_tokens` excludes the cached prompt, which is counted in
/// `cache_read_tokens` (read from cache) and `cache_creation_tokens` (written to cache). OpenAI's
/// `prompt_tokens` is the sum of the three. `reasoning_tokens` is the part of `output_tokens` spent
/// reasoning, where an upstream reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_creation_tokens: u64,
    pub reasoning_tokens: u64,
}

impl Usage {
    /// All prompt tokens, cached or not: OpenAI's `prompt_tokens`.
    pub fn prompt_tokens(&self) -> u64 {
        self.input_tokens + self.cache_read_tokens + self.cache_creation_tokens
    }

    /// Prompt plus output: OpenAI's `total_tokens`.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens() + self.output_tokens
    }
}

/// Why the model stopped. Reasons a dialect defines but the IR does not are kept as `Other` and passed on
/// as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    StopSequence,
    ToolUse,
    ContentFilter,
    PauseTurn,
    Refusal,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatResponse {
    pub id: String,
    pub model: String,
    pub content: Vec<ContentPart>,
    pub stop_reason: Option<StopReason>,
    pub usage: Usage,
}

/// The kind of a streamed block, given when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockKind {
    Text,
    Thinking,
    ToolUse {
        id: String,
        name: String,
    },
    /// Encrypted reasoning; it arrives whole in the start event and has no deltas.
    RedactedThinking {
        data: String,
    },
}

/// Block-oriented stream events: the Anthropic stream shape, which is a superset of OpenAI's flat deltas.
///
/// A well-formed sequence is `Start`, then blocks (`BlockStart`, deltas for that index, `BlockStop`), one at
/// a time, then `Finish` once. The one exception is parallel tool calls from a dialect that marks them
/// complete only at the end (OpenAI chat): their tool-use blocks may overlap each other, each stopping when
/// the upstream says so. Parsers produce well-formed sequences; encoders nevertheless accept any
/// sequence and still write a valid stream in their dialect.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    Start {
        id: String,
        model: String,
        usage: Usage,
    },
    BlockStart {
        index: usize,
        block: BlockKind,
    },
    TextDelta {
        index: usize,
        text: String,
    },
    ThinkingDelta {
        index: usize,
        text: String,
    },
    SignatureDelta {
        index: usize,
        signature: String,
    },
    /// A fragment of a tool call's arguments JSON; the fragments concatenate to the whole object.
    ToolArgsDelta {
        index: usize,
        json: String,
    },
    BlockStop {
        index: usize,
    },
    /// The stop reason and the cumulative usage of the whole answer (Anthropic `message_delta`); emitted once.
    Finish {
        stop_reason: Option<StopReason>,
        usage: Usage,
    },
    Ping,
}

impl StreamEvent {
    /// The block index of a block event.
    pub fn index(&self) -> Option<usize> {
        match self {
            StreamEvent::BlockStart { index, .. }
            | StreamEvent::TextDelta { index, .. }
            | StreamEvent::ThinkingDelta { index, .. }
            | StreamEvent::SignatureDelta { index, .. }
            | StreamEvent::ToolArgsDelta { index, .. }
            | StreamEvent::BlockStop { index } => Some(*index),
            StreamEvent::Start { .. } | StreamEvent::Finish { .. } | StreamEvent::Ping => None,
        }
    }
}

/// Folds stream events into the [`ChatResponse`] they describe, for a client that asked for JSON from an
/// upstream that was asked to stream.
///
/// Deltas for a block that never started open a block of their kind (text or thinking); argument fragments
/// for an unknown tool call are dropped, since a call without id and name cannot be reported.
#[derive(Debug, Default)]
pub struct ResponseAccumulator {
    id: String,
    model: String,
    blocks: Vec<(usize, Block)>,
    stop_reason: Option<StopReason>,
    usage: Usage,
}

#[derive(Debug)]
enum Block {
    Text(String),
    Thinking { text: String, signature: String },
    Redacted(String),
    Tool { id: String, name: String, args: String },
}

impl ResponseAccumulator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, ev: &StreamEvent) {
        match ev {
            StreamEvent::Start { id, model, usage } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
                self.usage = *usage;
            }
            StreamEvent::BlockStart { index, block } => {
                let b = match block {
                    BlockKind::Text => Block::Text(String::new()),
                    BlockKind::Thinking => Block::Thinking { text: String::new(), signature: String::new() },
                    BlockKind::RedactedThinking { data } => Block::Redacted(data.clone()),
                    BlockKind::ToolUse { id, name } => {
                        Block::Tool { id: id.clone(), name: name.clone(), args: String::new() }
                    }
                };
                self.blocks.push((*index, b));
            }
            StreamEvent::TextDelta { index, text } => match self.block(*index) {
                Some(Block::Text(t)) => t.push_str(text),
                _ => self.blocks.push((*index, Block::Text(text.clone()))),
            },
            StreamEvent::ThinkingDelta { index, text } => match self.block(*index) {
                Some(Block::Thinking { text: t, .. }) => t.push_str(text),
                _ => self.blocks.push((*index, Block::Thinking { text: text.clone(), signature: String::new() })),
            },
            StreamEvent::SignatureDelta { index, signature } => match self.block(*index) {
                Some(Block::Thinking { signature: s, .. }) => s.push_str(signature),
                _ => self.blocks.push((*index, Block::Thinking { text: String::new(), signature: signature.clone() })),
            },
            StreamEvent::ToolArgsDelta { index, json } => {
                if let Some(Block::Tool { args, .. }) = self.block(*index) {
                    args.push_str(json);
                }
            }
            StreamEvent::Finish { stop_reason, usage } => {
                self.stop_reason.clone_from(stop_reason);
                self.usage = *usage;
            }
            StreamEvent::BlockStop { .. } | StreamEvent::Ping => {}
        }
    }

    /// The latest block with this index (indexes may repeat in malformed streams; the newest wins).
    fn block(&mut self, index: usize) -> Option<&mut Block> {
        self.blocks.iter_mut().rev().find(|(i, _)| *i == index).map(|(_, b)| b)
    }

    pub fn finish(self) -> ChatResponse {
        let content = self
            .blocks
            .into_iter()
            .map(|(_, b)| match b {
                Block::Text(text) => ContentPart::Text { text, cache_control: None },
                Block::Thinking { text, signature } => {
                    ContentPart::Thinking { text, signature: (!signature.is_empty()).then_some(signature) }
                }
                Block::Redacted(data) => ContentPart::RedactedThinking { data },
                Block::Tool { id, name, args } => {
                    ContentPart::ToolUse { id, name, input: parse_tool_arguments(&args), cache_control: None }
                }
            })
            .collect();
        ChatResponse { id: self.id, model: self.model, content, stop_reason: self.stop_reason, usage: self.usage }
    }
}

/// Parses tool-call arguments an upstream produced. Empty text means no arguments (`{}`, as several
/// OpenAI-compatible servers send for parameterless tools); text that is not JSON is kept as a JSON string
/// holding it, so the caller still sees what the model wrote instead of losing the call.
pub fn parse_tool_arguments(args: &str) -> Value {
    if args.trim().is_empty() {
        return Value::Object(serde_json::Map::new());
    }
    match serde_json::from_str(args) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "tool call arguments are not valid JSON; passing them on as a string");
            Value::String(args.to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_sums_follow_openai_definitions() {
        let u = Usage {
            input_tokens: 11,
            output_tokens: 7,
            cache_read_tokens: 5,
            cache_creation_tokens: 3,
            reasoning_tokens: 2,
        };
        assert_eq!(u.prompt_tokens(), 19);
        assert_eq!(u.total_tokens(), 26);
    }

    #[test]
    fn accumulator_builds_blocks_in_order() {
        let mut acc = ResponseAccumulator::new();
        let usage = Usage { input_tokens: 3, output_tokens: 9, ..Usage::default() };
        for ev in [
            StreamEvent::Start { id: "msg_1".into(), model: "m".into(), usage: Usage::default() },
            StreamEvent::BlockStart { index: 0, block: BlockKind::Thinking },
            StreamEvent::ThinkingDelta { index: 0, text: "Let ".into() },
            StreamEvent::ThinkingDelta { index: 0, text: "me".into() },
            StreamEvent::SignatureDelta { index: 0, signature: "sig".into() },
            StreamEvent::BlockStop { index: 0 },
            StreamEvent::BlockStart { index: 1, block: BlockKind::ToolUse { id: "t1".into(), name: "f".into() } },
            StreamEvent::ToolArgsDelta { index: 1, json: "{\"a\":".into() },
            StreamEvent::ToolArgsDelta { index: 1, json: "1}".into() },
            StreamEvent::BlockStop { index: 1 },
            StreamEvent::ToolArgsDelta { index: 7, json: "lost".into() },
            StreamEvent::TextDelta { index: 2, text: "implicit".into() },
            StreamEvent::Finish { stop_reason: Some(StopReason::ToolUse), usage },
        ] {
            acc.push(&ev);
        }
        let r = acc.finish();
        assert_eq!(r.id, "msg_1");
        assert_eq!(r.stop_reason, Some(StopReason::ToolUse));
        assert_eq!(r.usage, usage);
        assert_eq!(
            r.content,
            vec![
                ContentPart::Thinking { text: "Let me".into(), signature: Some("sig".into()) },
                ContentPart::tool_use("t1", "f", json!({"a": 1})),
                ContentPart::text("implicit"),
            ]
        );
    }

    #[test]
    fn tool_arguments_empty_invalid_and_valid() {
        assert_eq!(parse_tool_arguments(""), json!({}));
        assert_eq!(parse_tool_arguments(" "), json!({}));
        assert_eq!(parse_tool_arguments("{\"x\":[1]}"), json!({"x": [1]}));
        assert_eq!(parse_tool_arguments("{\"x\":"), json!("{\"x\":"));
    }
}
