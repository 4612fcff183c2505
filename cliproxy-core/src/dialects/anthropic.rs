//! Anthropic Messages: the client dialect of `/v1/messages` and the wire format of Claude upstreams.
//!
//! The IR follows this dialect closely, so most fields map one to one. The decisions:
//! - `max_tokens` is required upstream. A request without one (an OpenAI client may leave it out) gets
//!   32000, the original proxy's default: large enough not to cut answers short with the default thinking
//!   budgets, small enough for current Sonnet and Opus models. Providers clamp it for smaller models.
//! - Thinking: a budget is sent as `{"type":"enabled","budget_tokens"}` (at least 1024, Anthropic's minimum);
//!   an effort becomes a budget (low 1024, medium 8192, high/xhigh/max 24576; `none`/`minimal` mean no
//!   thinking); adaptive thinking is sent as `{"type":"adaptive"}` with `output_config.effort`. When
//!   `max_tokens` does not exceed the budget, the budget is added on top of it: the client's limit is read
//!   as the room for the answer, which Anthropic requires to be left after thinking.
//! - With thinking on, Anthropic accepts only `temperature` 1, `top_p` ≥ 0.95 and no `top_k`; other values
//!   are left out rather than failing the request. A forced tool (`any`/`tool`) cannot be combined with
//!   thinking either: the client's tool choice wins and thinking is left out.
//! - Thinking without a signature came from another kind of model and is left out of requests (Anthropic
//!   would reject it); in answers to clients it is written with an empty signature.
//! - `parallel_tool_calls: false` ⇄ `tool_choice.disable_parallel_tool_use: true`; `user` ⇄
//!   `metadata.user_id`; stop reasons map one to one, with OpenAI's content filter written as `refusal`.
//! - Blocks the IR does not model (`document`, server tool results, …) are kept opaque and only sent back
//!   to Anthropic; in streams, events of such blocks are skipped.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::json::{self, Kind, Obj, Path, Str};
use super::{
    CacheControlOut, Dialect, OutEvent, client_id, effort_budget, read_cache_control, to_json, to_json_string,
    upstream_error,
};
use crate::error::{Error, ErrorKind};
use crate::logtext::Clean;
use crate::stream::sse::SseEvent;
use crate::types::{
    BlockKind, ChatRequest, ChatResponse, ContentPart, ImageSource, Message, Opaque, Reasoning, Role, StopReason,
    StreamEvent, Tool, ToolChoice, Usage,
};

/// `max_tokens` for requests that do not set one (see the module docs).
pub const DEFAULT_MAX_TOKENS: u32 = 32000;

/// Anthropic's smallest thinking budget.
const MIN_THINKING_BUDGET: u32 = 1024;

// =========================================================================================================
// Requests: client body → IR

/// Parses and validates a client's Messages request.
pub fn parse_request(body: &[u8]) -> Result<ChatRequest, Error> {
    let root = Path::Root;
    let obj = Obj::from_body(body)?;
    let mut req = ChatRequest { source: Some(Dialect::Anthropic), ..ChatRequest::default() };
    for (key, raw) in obj.fields() {
        if json::kind(raw) == Kind::Null {
            continue;
        }
        let path = root.key(key);
        match key {
            // Read below, once, whatever the number of duplicates.
            "model" | "messages" | "system" | "tools" | "max_tokens" => {}
            "temperature" => req.temperature = Some(json::number(raw, &path)?),
            "top_p" => req.top_p = Some(json::number(raw, &path)?),
            "top_k" => req.top_k = Some(json::unsigned(raw, &path)?),
            "stop_sequences" => {
                req.stop = json::array(raw, &path, "an array of strings")?
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| json::string(s, &path.index(i)).map(Cow::into_owned))
                    .collect::<Result<_, _>>()?;
            }
            "stream" => req.stream = json::boolean(raw, &path)?,
            "tool_choice" => {
                let (choice, parallel) = parse_tool_choice(raw, &path)?;
                req.tool_choice = Some(choice);
                req.parallel_tool_calls = parallel;
            }
            "thinking" => req.reasoning = parse_thinking(raw, &path)?,
            "metadata" => {
                let m = Obj::read(raw, &path)?;
                req.user = m.string("user_id", &path)?.map(Cow::into_owned);
            }
            _ => {
                req.extra.insert(key.to_owned(), json::value(raw, &path)?);
            }
        }
    }
    req.model = obj.require_string("model", &root)?.into_owned();
    if req.model.is_empty() {
        return Err(root.key("model").invalid("must not be empty"));
    }
    let max_tokens = obj.require("max_tokens", &root, "a positive integer")?;
    match json::unsigned(max_tokens, &root.key("max_tokens")) {
        Ok(n) if n > 0 => req.max_tokens = Some(n),
        _ => return Err(root.key("max_tokens").invalid("expected a positive integer")),
    }
    if let Some(system) = obj.get("system") {
        req.system = parse_system(system, &root.key("system"))?;
    }
    let messages = obj.require("messages", &root, "a non-empty array of messages")?;
    req.messages = parse_messages(messages, &root.key("messages"))?;
    if let Some(tools) = obj.get("tools") {
        req.tools = parse_tools(tools, &root.key("tools"))?;
    }
    // Adaptive thinking takes its effort from `output_config`, which stays in `extra` for Anthropic.
    if let Some(r) = req.reasoning.as_mut().filter(|r| r.adaptive) {
        r.effort =
            req.extra.get("output_config").and_then(|c| c.get("effort")).and_then(Value::as_str).map(str::to_owned);
    }
    Ok(req)
}

fn parse_system(raw: &RawValue, path: &Path<'_>) -> Result<Vec<ContentPart>, Error> {
    match json::kind(raw) {
        Kind::String => {
            let text = json::string(raw, path)?;
            Ok(if text.is_empty() { Vec::new() } else { vec![ContentPart::text(text)] })
        }
        Kind::Array => {
            let blocks = parse_blocks(raw, path)?;
            if let Some(i) = blocks.iter().position(|b| !matches!(b, ContentPart::Text { .. })) {
                return Err(path.index(i).invalid("system blocks must be text blocks"));
            }
            Ok(blocks)
        }
        _ => Err(path.invalid("expected a string or an array of text blocks")),
    }
}

fn parse_messages(raw: &RawValue, path: &Path<'_>) -> Result<Vec<Message>, Error> {
    const EXPECTED: &str = "a non-empty array of messages";
    let items = json::array(raw, path, EXPECTED)?;
    if items.is_empty() {
        return Err(path.invalid(format_args!("expected {EXPECTED}")));
    }
    let mut messages = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let p = path.index(i);
        let m = Obj::read(item, &p)?;
        let role = match m.require_string("role", &p)?.as_ref() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => {
                return Err(p.key("role").invalid(format_args!(
                    "unknown role '{other}'; expected user or assistant (the system prompt goes in the top-level system field)"
                )));
            }
        };
        let cp = p.key("content");
        let content = m.require("content", &p, "a string or an array of content blocks")?;
        messages.push(Message { role, content: parse_content(content, &cp)? });
    }
    Ok(messages)
}

/// Message or tool-result content: a string or an array of blocks.
fn parse_content(raw: &RawValue, path: &Path<'_>) -> Result<Vec<ContentPart>, Error> {
    match json::kind(raw) {
        Kind::String => Ok(vec![ContentPart::text(json::string(raw, path)?)]),
        Kind::Array => parse_blocks(raw, path),
        _ => Err(path.invalid("expected a string or an array of content blocks")),
    }
}

fn parse_blocks(raw: &RawValue, path: &Path<'_>) -> Result<Vec<ContentPart>, Error> {
    json::array(raw, path, "an array of content blocks")?
        .into_iter()
        .enumerate()
        .map(|(i, b)| parse_block(b, &path.index(i)))
        .collect()
}

/// One content block, in a request or in an upstream's answer.
fn parse_block(raw: &RawValue, path: &Path<'_>) -> Result<ContentPart, Error> {
    let b = Obj::read(raw, path)?;
    let tag = b.tag(path)?;
    let part = match tag.as_ref() {
        "text" => ContentPart::Text {
            text: b.require_string("text", path)?.into_owned(),
            cache_control: read_cache_control(&b, path)?,
        },
        "image" => {
            let sp = path.key("source");
            let s = b.object("source", path)?.ok_or_else(|| sp.invalid("missing; expected an object"))?;
            let source = match s.tag(&sp)?.as_ref() {
                "base64" => ImageSource::Base64 {
                    media_type: s.require_string("media_type", &sp)?.into_owned(),
                    data: s.require_string("data", &sp)?.into_owned(),
                },
                "url" => ImageSource::Url { url: s.require_string("url", &sp)?.into_owned() },
                // File references and future source kinds: only Anthropic can resolve them.
                _ => return opaque(raw, path),
            };
            ContentPart::Image { source, detail: None, cache_control: read_cache_control(&b, path)? }
        }
        "tool_use" => ContentPart::ToolUse {
            id: b.require_string("id", path)?.into_owned(),
            name: b.require_string("name", path)?.into_owned(),
            input: b.value("input", path)?.unwrap_or_else(|| Value::Object(serde_json::Map::new())),
            cache_control: read_cache_control(&b, path)?,
        },
        "tool_result" => ContentPart::ToolResult {
            tool_use_id: b.require_string("tool_use_id", path)?.into_owned(),
            content: match b.get("content") {
                Some(c) => parse_content(c, &path.key("content"))?,
                None => Vec::new(),
            },
            is_error: b.bool("is_error", path)?.unwrap_or(false),
            cache_control: read_cache_control(&b, path)?,
        },
        "thinking" => ContentPart::Thinking {
            text: b.require_string("thinking", path)?.into_owned(),
            // Thinking that came from another model is sent back with an empty signature.
            signature: b.string("signature", path)?.filter(|s| !s.is_empty()).map(Cow::into_owned),
        },
        "redacted_thinking" => ContentPart::RedactedThinking { data: b.require_string("data", path)?.into_owned() },
        _ => return opaque(raw, path),
    };
    Ok(part)
}

fn opaque(raw: &RawValue, path: &Path<'_>) -> Result<ContentPart, Error> {
    Ok(ContentPart::Opaque(Opaque { dialect: Dialect::Anthropic, value: json::value(raw, path)? }))
}

fn parse_tools(raw: &RawValue, path: &Path<'_>) -> Result<Vec<Tool>, Error> {
    let items = json::array(raw, path, "an array of tools")?;
    let mut tools = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let p = path.index(i);
        let t = Obj::read(item, &p)?;
        let name = t.require_string("name", &p)?.into_owned();
        if t.string("type", &p)?.is_some_and(|k| k != "custom") {
            let builtin = Opaque { dialect: Dialect::Anthropic, value: json::value(item, &p)? };
            tools.push(Tool { name, builtin: Some(builtin), ..Tool::default() });
            continue;
        }
        tools.push(Tool {
            name,
            description: t.string("description", &p)?.map(Cow::into_owned),
            parameters: t.value("input_schema", &p)?.unwrap_or(Value::Null),
            strict: None,
            cache_control: read_cache_control(&t, &p)?,
            builtin: None,
        });
    }
    Ok(tools)
}

/// `tool_choice` → the choice and `parallel_tool_calls` (`Some(false)` when parallel use is disabled).
fn parse_tool_choice(raw: &RawValue, path: &Path<'_>) -> Result<(ToolChoice, Option<bool>), Error> {
    let o = Obj::read(raw, path)?;
    let choice = match o.tag(path)?.as_ref() {
        "auto" => ToolChoice::Auto,
        "any" => ToolChoice::Required,
        "none" => ToolChoice::None,
        "tool" => ToolChoice::Tool(o.require_string("name", path)?.into_owned()),
        other => {
            return Err(path
                .key("type")
                .invalid(format_args!("unknown tool choice '{other}'; expected auto, any, tool or none")));
        }
    };
    let parallel = o.bool("disable_parallel_tool_use", path)?.and_then(|off| off.then_some(false));
    Ok((choice, parallel))
}

fn parse_thinking(raw: &RawValue, path: &Path<'_>) -> Result<Option<Reasoning>, Error> {
    let o = Obj::read(raw, path)?;
    match o.tag(path)?.as_ref() {
        "enabled" => {
            let budget = o.u32("budget_tokens", path)?;
            let budget =
                budget.ok_or_else(|| path.key("budget_tokens").invalid("missing; expected a positive integer"))?;
            Ok(Some(Reasoning { budget_tokens: Some(budget), ..Reasoning::default() }))
        }
        "adaptive" => Ok(Some(Reasoning { adaptive: true, ..Reasoning::default() })),
        "disabled" => Ok(None),
        other => Err(path
            .key("type")
            .invalid(format_args!("unknown thinking type '{other}'; expected enabled, adaptive or disabled"))),
    }
}

// =========================================================================================================
// Requests: IR → upstream body

#[derive(Serialize)]
struct RequestOut<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<ContentOut<'a>>,
    messages: Vec<MessageOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thinking: Option<ThinkingOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output_config: Option<OutputConfigOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<MetadataOut<'a>>,
    #[serde(flatten)]
    extra: Option<&'a serde_json::Map<String, Value>>,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: ContentOut<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ContentOut<'a> {
    Text(&'a str),
    Blocks(Vec<BlockOut<'a>>),
}

impl<'a> ContentOut<'a> {
    /// A single text block without a cache breakpoint is written as a plain string, as clients write it.
    fn from_blocks(blocks: Vec<BlockOut<'a>>) -> Self {
        match blocks.as_slice() {
            [BlockOut::Text { text, cache_control: None }] => ContentOut::Text(text),
            _ => ContentOut::Blocks(blocks),
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockOut<'a> {
    Text {
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControlOut<'a>>,
    },
    Image {
        source: ImageSourceOut<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControlOut<'a>>,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControlOut<'a>>,
    },
    ToolResult {
        tool_use_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<ContentOut<'a>>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControlOut<'a>>,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    RedactedThinking {
        data: &'a str,
    },
    #[serde(untagged)]
    Raw(&'a Value),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ImageSourceOut<'a> {
    Base64 { media_type: &'a str, data: &'a str },
    Url { url: &'a str },
}

/// Where a block is written: requests leave out what the upstream would reject, answers keep everything.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Request,
    Answer,
}

fn block_out(part: &ContentPart, target: Target) -> Option<BlockOut<'_>> {
    let block = match part {
        ContentPart::Text { text, .. } if text.is_empty() && target == Target::Request => return None,
        ContentPart::Text { text, cache_control } => {
            BlockOut::Text { text, cache_control: CacheControlOut::from_ir(cache_control) }
        }
        ContentPart::Image { source, cache_control, .. } => BlockOut::Image {
            source: match source {
                ImageSource::Base64 { media_type, data } => ImageSourceOut::Base64 { media_type, data },
                ImageSource::Url { url } => ImageSourceOut::Url { url },
            },
            cache_control: CacheControlOut::from_ir(cache_control),
        },
        ContentPart::ToolUse { id, name, input, cache_control } => {
            BlockOut::ToolUse { id, name, input, cache_control: CacheControlOut::from_ir(cache_control) }
        }
        ContentPart::ToolResult { tool_use_id, content, is_error, cache_control } => {
            let blocks: Vec<_> = content.iter().filter_map(|p| block_out(p, target)).collect();
            BlockOut::ToolResult {
                tool_use_id,
                content: (!blocks.is_empty()).then(|| ContentOut::from_blocks(blocks)),
                is_error: *is_error,
                cache_control: CacheControlOut::from_ir(cache_control),
            }
        }
        ContentPart::Thinking { text, signature: Some(signature) } => BlockOut::Thinking { thinking: text, signature },
        ContentPart::Thinking { text, signature: None } => match target {
            Target::Answer => BlockOut::Thinking { thinking: text, signature: "" },
            Target::Request => return None,
        },
        ContentPart::RedactedThinking { data } => BlockOut::RedactedThinking { data },
        ContentPart::Opaque(Opaque { dialect: Dialect::Anthropic, value }) => BlockOut::Raw(value),
        ContentPart::Opaque(Opaque { value, .. }) => {
            let kind = value.get("type").unwrap_or(&Value::Null);
            tracing::warn!(part = %Clean(&kind.to_string()), "dropping a content part Anthropic cannot take");
            return None;
        }
    };
    Some(block)
}

#[derive(Serialize)]
#[serde(untagged)]
enum ToolOut<'a> {
    Custom {
        name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        description: Option<&'a str>,
        input_schema: &'a Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        cache_control: Option<CacheControlOut<'a>>,
    },
    Raw(&'a Value),
}

#[derive(Serialize)]
struct ToolChoiceOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disable_parallel_tool_use: Option<bool>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ThinkingOut {
    Enabled { budget_tokens: u32 },
    Adaptive,
}

#[derive(Serialize)]
struct OutputConfigOut<'a> {
    effort: &'a str,
}

#[derive(Serialize)]
struct MetadataOut<'a> {
    user_id: &'a str,
}

/// The schema Anthropic requires for a tool declared without parameters.
fn empty_schema() -> &'static Value {
    static EMPTY: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| serde_json::json!({"type": "object", "properties": {}}))
}

/// Encodes a request for a Claude upstream (see the module docs for defaults and adjustments).
pub fn encode_request(req: &ChatRequest) -> Vec<u8> {
    let same_dialect = req.source == Some(Dialect::Anthropic);
    let has_tools = !req.tools.is_empty();
    let forced_tool = has_tools && matches!(req.tool_choice, Some(ToolChoice::Required | ToolChoice::Tool(_)));
    let thinking = req.reasoning.as_ref().filter(|_| !forced_tool).and_then(|r| {
        if r.adaptive {
            Some(ThinkingOut::Adaptive)
        } else {
            let budget = r.budget_tokens.or_else(|| r.effort.as_deref().and_then(effort_budget))?;
            Some(ThinkingOut::Enabled { budget_tokens: budget.max(MIN_THINKING_BUDGET) })
        }
    });
    let mut max_tokens = req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
    if let Some(ThinkingOut::Enabled { budget_tokens }) = thinking
        && max_tokens <= budget_tokens
    {
        max_tokens = max_tokens.saturating_add(budget_tokens);
    }
    let thinking_on = thinking.is_some();
    let extra = same_dialect.then_some(&req.extra);
    let output_config = match (&thinking, &req.reasoning) {
        (Some(ThinkingOut::Adaptive), Some(Reasoning { effort: Some(effort), .. }))
            if !extra.is_some_and(|e| e.contains_key("output_config")) =>
        {
            Some(OutputConfigOut { effort })
        }
        _ => None,
    };
    let parallel_off = req.parallel_tool_calls == Some(false);
    let tool_choice = match &req.tool_choice {
        _ if !has_tools => None,
        None if parallel_off => Some(ToolChoiceOut { kind: "auto", name: None, disable_parallel_tool_use: Some(true) }),
        None => None,
        Some(choice) => {
            let (kind, name) = match choice {
                ToolChoice::Auto => ("auto", None),
                ToolChoice::Required => ("any", None),
                ToolChoice::None => ("none", None),
                ToolChoice::Tool(name) => ("tool", Some(name.as_str())),
            };
            let disable = (parallel_off && kind != "none").then_some(true);
            Some(ToolChoiceOut { kind, name, disable_parallel_tool_use: disable })
        }
    };
    let system: Vec<BlockOut<'_>> = req.system.iter().filter_map(|p| block_out(p, Target::Request)).collect();
    let messages = req
        .messages
        .iter()
        .filter_map(|m| {
            let blocks: Vec<_> = m.content.iter().filter_map(|p| block_out(p, Target::Request)).collect();
            // A message left empty (only reasoning from another model, say) would be rejected.
            (!blocks.is_empty()).then(|| MessageOut {
                role: match m.role {
                    Role::User => "user",
                    Role::Assistant => "assistant",
                },
                content: ContentOut::from_blocks(blocks),
            })
        })
        .collect();
    let out = RequestOut {
        model: &req.model,
        max_tokens,
        system: (!system.is_empty()).then(|| ContentOut::from_blocks(system)),
        messages,
        tools: req.tools.iter().filter_map(tool_out).collect(),
        tool_choice,
        thinking,
        output_config,
        temperature: req.temperature.filter(|t| !thinking_on || *t == 1.0),
        top_p: req.top_p.filter(|p| !thinking_on || *p >= 0.95),
        top_k: req.top_k.filter(|_| !thinking_on),
        stop_sequences: &req.stop,
        stream: req.stream,
        metadata: req.user.as_deref().map(|user_id| MetadataOut { user_id }),
        extra,
    };
    to_json(&out)
}

fn tool_out(t: &Tool) -> Option<ToolOut<'_>> {
    match &t.builtin {
        Some(Opaque { dialect: Dialect::Anthropic, value }) => Some(ToolOut::Raw(value)),
        Some(_) => {
            tracing::warn!(tool = %Clean(&t.name), "dropping a provider-defined tool Anthropic cannot run");
            None
        }
        None => Some(ToolOut::Custom {
            name: &t.name,
            description: t.description.as_deref(),
            input_schema: if t.parameters.is_null() { empty_schema() } else { &t.parameters },
            cache_control: CacheControlOut::from_ir(&t.cache_control),
        }),
    }
}

// =========================================================================================================
// Responses

/// Usage as Anthropic sends it; `message_delta` events carry only some of the fields.
#[derive(Deserialize, Default, Debug, Clone, Copy)]
#[serde(default)]
struct UsageWire {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
}

impl UsageWire {
    /// `base` updated with the fields present here.
    fn apply(self, base: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens.unwrap_or(base.input_tokens),
            output_tokens: self.output_tokens.unwrap_or(base.output_tokens),
            cache_read_tokens: self.cache_read_input_tokens.unwrap_or(base.cache_read_tokens),
            cache_creation_tokens: self.cache_creation_input_tokens.unwrap_or(base.cache_creation_tokens),
            reasoning_tokens: base.reasoning_tokens,
        }
    }
}

#[derive(Serialize)]
struct UsageOut {
    input_tokens: u64,
    output_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
}

impl From<&Usage> for UsageOut {
    fn from(u: &Usage) -> UsageOut {
        UsageOut {
            input_tokens: u.input_tokens,
            output_tokens: u.output_tokens,
            cache_creation_input_tokens: u.cache_creation_tokens,
            cache_read_input_tokens: u.cache_read_tokens,
        }
    }
}

fn parse_stop_reason(reason: &str) -> StopReason {
    match reason {
        "end_turn" => StopReason::EndTurn,
        "max_tokens" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        "tool_use" => StopReason::ToolUse,
        "pause_turn" => StopReason::PauseTurn,
        "refusal" => StopReason::Refusal,
        other => StopReason::Other(other.to_owned()),
    }
}

fn stop_reason(reason: &StopReason) -> &str {
    match reason {
        StopReason::EndTurn => "end_turn",
        StopReason::MaxTokens => "max_tokens",
        StopReason::StopSequence => "stop_sequence",
        StopReason::ToolUse => "tool_use",
        StopReason::PauseTurn => "pause_turn",
        StopReason::ContentFilter | StopReason::Refusal => "refusal",
        StopReason::Other(s) => s,
    }
}

/// Parses an upstream's Message. A body of `"type":"error"` is returned as that error.
pub fn parse_response(body: &[u8]) -> Result<ChatResponse, Error> {
    let fault = json::upstream_fault("message");
    let root = Path::Root;
    let obj = Obj::from_body(body).map_err(&fault)?;
    if obj.string("type", &root).ok().flatten().is_some_and(|t| t == "error") {
        return Err(parse_error_body(None, body));
    }
    let content = match obj.get("content") {
        Some(raw) => parse_blocks(raw, &root.key("content")).map_err(&fault)?,
        None => Vec::new(),
    };
    let usage = match obj.get("usage") {
        Some(raw) => serde_json::from_str::<UsageWire>(raw.get())
            .map_err(|e| Error::upstream(None, format!("the upstream sent unreadable usage: {e}")))?
            .apply(Usage::default()),
        None => Usage::default(),
    };
    Ok(ChatResponse {
        id: obj.string("id", &root).map_err(&fault)?.unwrap_or_default().into_owned(),
        model: obj.string("model", &root).map_err(&fault)?.unwrap_or_default().into_owned(),
        content,
        stop_reason: obj.string("stop_reason", &root).map_err(&fault)?.map(|r| parse_stop_reason(&r)),
        usage,
    })
}

#[derive(Serialize)]
struct MessageResponseOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<BlockOut<'a>>,
    stop_reason: Option<&'a str>,
    stop_sequence: Option<()>,
    usage: UsageOut,
}

/// Encodes an answer as the Message a client receives; `model` is the name the client asked for. A
/// missing stop reason is written as `end_turn`.
pub fn encode_response(resp: &ChatResponse, model: &str) -> Vec<u8> {
    let id = client_id(&resp.id, "msg_");
    let out = MessageResponseOut {
        id: &id,
        kind: "message",
        role: "assistant",
        model,
        content: resp.content.iter().filter_map(|p| block_out(p, Target::Answer)).collect(),
        stop_reason: Some(resp.stop_reason.as_ref().map_or("end_turn", stop_reason)),
        stop_sequence: None,
        usage: UsageOut::from(&resp.usage),
    };
    to_json(&out)
}

// =========================================================================================================
// Errors

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorBodyWire<'a> {
    #[serde(borrow)]
    error: Option<ErrorWire<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorWire<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    message: Option<Str<'a>>,
}

/// Maps an upstream error answer (`{"type":"error","error":{"type","message"}}`, or anything else) to an
/// error of the right kind, keeping the upstream's message.
pub fn parse_error(status: u16, body: &[u8]) -> Error {
    parse_error_body(Some(status), body)
}

/// An `error` event inside a 200 stream: no HTTP status, so the one its type implies is used
/// (`overloaded_error` → 529, which is not the credential's fault).
pub fn parse_stream_error(data: &[u8]) -> Error {
    parse_error_body(None, data)
}

fn parse_error_body(status: Option<u16>, body: &[u8]) -> Error {
    match serde_json::from_slice::<ErrorBodyWire<'_>>(body).ok().and_then(|b| b.error) {
        Some(e) => error_from_wire(status, &e),
        None => {
            let message = super::error_snippet(body);
            let kind = status.map_or(ErrorKind::Upstream, ErrorKind::from_status);
            upstream_error(kind, message, status)
        }
    }
}

/// Anthropic's error types → kinds. Mid-stream errors have no HTTP status; the one their type implies
/// (529 for `overloaded_error`, 500 for `api_error`) is recorded so retry decisions see it.
fn error_from_wire(status: Option<u16>, e: &ErrorWire<'_>) -> Error {
    let etype = e.kind.as_ref().map_or("", |k| k.0.as_ref());
    let message = e.message.as_ref().map(|m| m.0.clone().into_owned()).unwrap_or_default();
    let (kind, implied_status) = match etype {
        "invalid_request_error" | "request_too_large" => (ErrorKind::InvalidRequest, None),
        "authentication_error" => (ErrorKind::Authentication, None),
        "permission_error" => (ErrorKind::Permission, None),
        "not_found_error" => (ErrorKind::ModelNotFound, None),
        "rate_limit_error" => (ErrorKind::RateLimited, None),
        "billing_error" => (ErrorKind::QuotaExceeded, None),
        "timeout_error" => (ErrorKind::Timeout, None),
        "overloaded_error" => (ErrorKind::Upstream, Some(529)),
        "api_error" => (ErrorKind::Upstream, Some(500)),
        _ => (status.map_or(ErrorKind::Upstream, ErrorKind::from_status), None),
    };
    let err = upstream_error(kind, message, status.or(implied_status));
    if etype == "request_too_large" { err.with_http_status(413) } else { err }
}

/// An error after the stream started: an `error` event with Anthropic's error body.
pub fn error_event(err: &Error) -> OutEvent {
    OutEvent { event: Some("error"), data: String::from_utf8(err.anthropic_body()).expect("serde_json writes UTF-8") }
}

// =========================================================================================================
// Streams: upstream events → IR events

/// Every Anthropic stream event in one flat shape, so each event is parsed once whatever its type.
#[derive(Deserialize, Default)]
#[serde(default)]
struct EventWire<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    message: Option<MessageStartWire<'a>>,
    index: Option<usize>,
    #[serde(borrow)]
    content_block: Option<PayloadWire<'a>>,
    #[serde(borrow)]
    delta: Option<PayloadWire<'a>>,
    usage: Option<UsageWire>,
    #[serde(borrow)]
    error: Option<ErrorWire<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct MessageStartWire<'a> {
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    model: Option<Str<'a>>,
    usage: Option<UsageWire>,
}

/// The payload of `content_block_start` (`content_block`) and of the delta events (`delta`): one flat
/// shape with every field either may carry, read according to its `type`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct PayloadWire<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    text: Option<Str<'a>>,
    #[serde(borrow)]
    thinking: Option<Str<'a>>,
    #[serde(borrow)]
    signature: Option<Str<'a>>,
    #[serde(borrow)]
    data: Option<Str<'a>>,
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
    #[serde(borrow)]
    partial_json: Option<Str<'a>>,
    #[serde(borrow)]
    stop_reason: Option<Str<'a>>,
}

fn owned(s: Option<Str<'_>>) -> String {
    s.map(|s| s.0.into_owned()).unwrap_or_default()
}

/// Turns an upstream's Messages stream into block events. Block indexes are passed on as the upstream
/// numbered them; blocks of kinds the IR does not model are skipped with all their events. `Finish` is
/// emitted at `message_delta` with the usage of `message_start` updated by the delta's (cumulative) counts.
/// An `error` event is returned as an error of the matching kind. A stream that ends before
/// `message_delta` was cut off: `finish` reports it.
#[derive(Debug, Default)]
pub struct StreamParser {
    started: bool,
    usage: Usage,
    skipped: Vec<usize>,
    finished: bool,
}

impl StreamParser {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), Error> {
        let data = ev.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        let e: EventWire<'_> = serde_json::from_str(data)
            .map_err(|e| Error::upstream(None, format!("the upstream sent an unreadable stream event: {e}")))?;
        let name = ev.event.as_deref().or(e.kind.as_ref().map(|k| k.0.as_ref())).unwrap_or("");
        match name {
            "message_start" if !self.started => {
                let m = e.message.unwrap_or_default();
                self.usage = m.usage.unwrap_or_default().apply(Usage::default());
                self.started = true;
                out.push(StreamEvent::Start { id: owned(m.id), model: owned(m.model), usage: self.usage });
            }
            "content_block_start" => {
                let index = e.index.unwrap_or(0);
                let b = e.content_block.unwrap_or_default();
                self.block_start(index, b, out);
            }
            "content_block_delta" => {
                let index = e.index.unwrap_or(0);
                if let Some(d) = e.delta.filter(|_| !self.skipped.contains(&index)) {
                    self.ensure_started(out);
                    let ev = match d.kind.as_ref().map_or("", |k| k.0.as_ref()) {
                        "text_delta" => StreamEvent::TextDelta { index, text: owned(d.text) },
                        "thinking_delta" => StreamEvent::ThinkingDelta { index, text: owned(d.thinking) },
                        "signature_delta" => StreamEvent::SignatureDelta { index, signature: owned(d.signature) },
                        "input_json_delta" => StreamEvent::ToolArgsDelta { index, json: owned(d.partial_json) },
                        // citations_delta and kinds added later carry nothing the IR keeps.
                        _ => return Ok(()),
                    };
                    out.push(ev);
                }
            }
            "content_block_stop" => {
                let index = e.index.unwrap_or(0);
                if !self.skipped.contains(&index) {
                    self.ensure_started(out);
                    out.push(StreamEvent::BlockStop { index });
                }
            }
            "message_delta" if !self.finished => {
                self.ensure_started(out);
                self.finished = true;
                self.usage = e.usage.unwrap_or_default().apply(self.usage);
                let stop_reason = e.delta.and_then(|d| d.stop_reason).map(|r| parse_stop_reason(&r.0));
                out.push(StreamEvent::Finish { stop_reason, usage: self.usage });
            }
            // A `message_stop` without `message_delta` still ends the message, without a stop reason.
            "message_stop" if !self.finished => {
                self.ensure_started(out);
                self.finished = true;
                out.push(StreamEvent::Finish { stop_reason: None, usage: self.usage });
            }
            "ping" => out.push(StreamEvent::Ping),
            "error" => return Err(error_from_wire(None, &e.error.unwrap_or_default())),
            _ => {}
        }
        Ok(())
    }

    /// Ends the stream, reporting one that ended before its `message_delta`.
    pub fn finish(&mut self, _out: &mut Vec<StreamEvent>) -> Result<(), Error> {
        if self.finished {
            return Ok(());
        }
        Err(Error::upstream(None, "the upstream stream ended early, before message_delta; the answer is incomplete"))
    }

    fn ensure_started(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start { id: String::new(), model: String::new(), usage: Usage::default() });
        }
    }

    fn block_start(&mut self, index: usize, b: PayloadWire<'_>, out: &mut Vec<StreamEvent>) {
        let kind = b.kind.as_ref().map_or("", |k| k.0.as_ref());
        let block = match kind {
            "text" => BlockKind::Text,
            "thinking" => BlockKind::Thinking,
            "redacted_thinking" => BlockKind::RedactedThinking { data: owned(b.data) },
            "tool_use" => BlockKind::ToolUse { id: owned(b.id), name: owned(b.name) },
            _ => {
                self.skipped.push(index);
                return;
            }
        };
        self.ensure_started(out);
        out.push(StreamEvent::BlockStart { index, block });
        // Start events normally carry empty content; some compatible servers put it all there.
        if let Some(text) = b.text.filter(|t| !t.0.is_empty()) {
            out.push(StreamEvent::TextDelta { index, text: text.0.into_owned() });
        }
        if let Some(text) = b.thinking.filter(|t| !t.0.is_empty()) {
            out.push(StreamEvent::ThinkingDelta { index, text: text.0.into_owned() });
        }
        if let Some(signature) = b.signature.filter(|s| !s.0.is_empty()) {
            out.push(StreamEvent::SignatureDelta { index, signature: signature.0.into_owned() });
        }
        if let Some(input) = b.input.filter(|i| kind == "tool_use" && !is_empty_object(i)) {
            out.push(StreamEvent::ToolArgsDelta { index, json: input.get().to_owned() });
        }
    }
}

fn is_empty_object(raw: &RawValue) -> bool {
    let s = raw.get().trim();
    s.starts_with('{') && s[1..].trim_start() == "}"
}

// =========================================================================================================
// Streams: IR events → client events

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum EventOut<'a> {
    MessageStart { message: MessageStartOut<'a> },
    ContentBlockStart { index: usize, content_block: BlockStartOut<'a> },
    ContentBlockDelta { index: usize, delta: DeltaOut<'a> },
    ContentBlockStop { index: usize },
    MessageDelta { delta: MessageDeltaOut<'a>, usage: UsageOut },
    MessageStop,
    Ping,
}

impl EventOut<'_> {
    fn name(&self) -> &'static str {
        match self {
            EventOut::MessageStart { .. } => "message_start",
            EventOut::ContentBlockStart { .. } => "content_block_start",
            EventOut::ContentBlockDelta { .. } => "content_block_delta",
            EventOut::ContentBlockStop { .. } => "content_block_stop",
            EventOut::MessageDelta { .. } => "message_delta",
            EventOut::MessageStop => "message_stop",
            EventOut::Ping => "ping",
        }
    }
}

#[derive(Serialize)]
struct MessageStartOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: [(); 0],
    stop_reason: Option<()>,
    stop_sequence: Option<()>,
    usage: UsageOut,
}

#[derive(Serialize)]
struct EmptyObject {}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockStartOut<'a> {
    Text { text: &'static str },
    Thinking { thinking: &'static str },
    ToolUse { id: &'a str, name: &'a str, input: EmptyObject },
    RedactedThinking { data: &'a str },
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum DeltaOut<'a> {
    #[serde(rename = "text_delta")]
    Text { text: &'a str },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

#[derive(Serialize)]
struct MessageDeltaOut<'a> {
    stop_reason: Option<&'a str>,
    stop_sequence: Option<()>,
}

/// The kind of the block open in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenKind {
    Text,
    Thinking,
    ToolUse,
    RedactedThinking,
}

#[derive(Debug, Clone, Copy)]
struct OpenBlock {
    /// The IR index the block was opened for.
    ir: usize,
    /// The index written to the client.
    out: usize,
    kind: OpenKind,
}

/// Writes IR stream events as an Anthropic Messages stream: `message_start`, blocks numbered from 0 and
/// never overlapping, one `message_delta` with the stop reason and cumulative usage, and `message_stop`
/// from [`StreamEncoder::finish`].
///
/// Any event sequence yields a valid stream, whatever produced it: the message starts at the first event,
/// a block still open is closed before the next one opens, a delta that does not belong to the open block
/// opens a block of its own kind (text or thinking; tool arguments without their tool block are dropped),
/// and events after `Finish` are ignored.
#[derive(Debug)]
pub struct StreamEncoder {
    model: String,
    started: bool,
    open: Option<OpenBlock>,
    next_index: usize,
    finished: bool,
    stopped: bool,
    start_usage: Usage,
}

impl StreamEncoder {
    /// `model` is the name the client asked for.
    pub fn new(model: &str) -> Self {
        StreamEncoder {
            model: model.to_owned(),
            started: false,
            open: None,
            next_index: 0,
            finished: false,
            stopped: false,
            start_usage: Usage::default(),
        }
    }

    pub fn push(&mut self, ev: &StreamEvent, out: &mut Vec<OutEvent>) {
        if self.finished {
            return;
        }
        match ev {
            StreamEvent::Start { id, usage, .. } => self.start(id, *usage, out),
            StreamEvent::Ping => {
                if self.started {
                    emit(&EventOut::Ping, out);
                }
            }
            StreamEvent::BlockStart { index, block } => {
                self.start("", Usage::default(), out);
                let kind = match block {
                    BlockKind::Text => OpenKind::Text,
                    BlockKind::Thinking => OpenKind::Thinking,
                    BlockKind::ToolUse { .. } => OpenKind::ToolUse,
                    BlockKind::RedactedThinking { .. } => OpenKind::RedactedThinking,
                };
                let content_block = match block {
                    BlockKind::Text => BlockStartOut::Text { text: "" },
                    BlockKind::Thinking => BlockStartOut::Thinking { thinking: "" },
                    BlockKind::ToolUse { id, name } => BlockStartOut::ToolUse { id, name, input: EmptyObject {} },
                    BlockKind::RedactedThinking { data } => BlockStartOut::RedactedThinking { data },
                };
                self.open_block(*index, kind, content_block, out);
            }
            StreamEvent::TextDelta { index, text } if !text.is_empty() => {
                let out_index = self.block_for(*index, OpenKind::Text, out);
                emit(&EventOut::ContentBlockDelta { index: out_index, delta: DeltaOut::Text { text } }, out);
            }
            StreamEvent::ThinkingDelta { index, text } if !text.is_empty() => {
                let out_index = self.block_for(*index, OpenKind::Thinking, out);
                let delta = DeltaOut::Thinking { thinking: text };
                emit(&EventOut::ContentBlockDelta { index: out_index, delta }, out);
            }
            StreamEvent::SignatureDelta { index, signature } if !signature.is_empty() => {
                let out_index = self.block_for(*index, OpenKind::Thinking, out);
                let delta = DeltaOut::Signature { signature };
                emit(&EventOut::ContentBlockDelta { index: out_index, delta }, out);
            }
            StreamEvent::ToolArgsDelta { index, json } if !json.is_empty() => {
                if let Some(open) = self.open.filter(|o| o.ir == *index && o.kind == OpenKind::ToolUse) {
                    let delta = DeltaOut::InputJson { partial_json: json };
                    emit(&EventOut::ContentBlockDelta { index: open.out, delta }, out);
                }
            }
            StreamEvent::BlockStop { index } => {
                if self.open.is_some_and(|o| o.ir == *index) {
                    self.close(out);
                }
            }
            StreamEvent::Finish { stop_reason: reason, usage } => {
                self.start("", Usage::default(), out);
                self.close(out);
                self.finished = true;
                let delta = MessageDeltaOut { stop_reason: reason.as_ref().map(stop_reason), stop_sequence: None };
                emit(&EventOut::MessageDelta { delta, usage: UsageOut::from(usage) }, out);
            }
            // Empty deltas carry nothing and must not open blocks.
            StreamEvent::TextDelta { .. }
            | StreamEvent::ThinkingDelta { .. }
            | StreamEvent::SignatureDelta { .. }
            | StreamEvent::ToolArgsDelta { .. } => {}
        }
    }

    /// Ends the stream with `message_stop`, after whatever a complete message still lacks.
    pub fn finish(&mut self, out: &mut Vec<OutEvent>) {
        if self.stopped {
            return;
        }
        self.start("", Usage::default(), out);
        if !self.finished {
            self.close(out);
            self.finished = true;
            let delta = MessageDeltaOut { stop_reason: None, stop_sequence: None };
            emit(&EventOut::MessageDelta { delta, usage: UsageOut::from(&self.start_usage) }, out);
        }
        self.stopped = true;
        emit(&EventOut::MessageStop, out);
    }

    fn start(&mut self, upstream_id: &str, usage: Usage, out: &mut Vec<OutEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        self.start_usage = usage;
        let id = client_id(upstream_id, "msg_");
        let message = MessageStartOut {
            id: &id,
            kind: "message",
            role: "assistant",
            model: &self.model,
            content: [],
            stop_reason: None,
            stop_sequence: None,
            usage: UsageOut::from(&usage),
        };
        emit(&EventOut::MessageStart { message }, out);
    }

    /// The output index of the open block for IR block `ir` of `kind`, opening one if needed.
    fn block_for(&mut self, ir: usize, kind: OpenKind, out: &mut Vec<OutEvent>) -> usize {
        if let Some(open) = self.open.filter(|o| o.ir == ir && o.kind == kind) {
            return open.out;
        }
        self.start("", Usage::default(), out);
        let content_block = match kind {
            OpenKind::Thinking => BlockStartOut::Thinking { thinking: "" },
            _ => BlockStartOut::Text { text: "" },
        };
        self.open_block(ir, kind, content_block, out)
    }

    fn open_block(&mut self, ir: usize, kind: OpenKind, block: BlockStartOut<'_>, out: &mut Vec<OutEvent>) -> usize {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some(OpenBlock { ir, out: index, kind });
        emit(&EventOut::ContentBlockStart { index, content_block: block }, out);
        index
    }

    fn close(&mut self, out: &mut Vec<OutEvent>) {
        if let Some(open) = self.open.take() {
            emit(&EventOut::ContentBlockStop { index: open.out }, out);
        }
    }
}

fn emit(ev: &EventOut<'_>, out: &mut Vec<OutEvent>) {
    out.push(OutEvent { event: Some(ev.name()), data: to_json_string(ev) });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::CacheControl;
    use serde_json::json;

    use crate::dialects::testing::{self, datas, invalid_message, parse_stream, sse};

    fn parse(v: Value) -> Result<ChatRequest, Error> {
        parse_request(v.to_string().as_bytes())
    }

    fn err(v: Value) -> String {
        invalid_message(parse(v))
    }

    fn encode(req: &ChatRequest) -> Value {
        serde_json::from_slice(&encode_request(req)).unwrap()
    }

    fn named(event: &str, data: Value) -> SseEvent {
        sse(Some(event), data.to_string())
    }

    fn run(events: &[SseEvent]) -> Result<Vec<StreamEvent>, Error> {
        parse_stream(Dialect::Anthropic.stream_parser(), events)
    }

    // ---------------------------------------------------------------- parse_request

    #[test]
    fn parses_every_block_kind_and_option() {
        let r = parse(json!({
            "model": "claude-sonnet-4-5", "max_tokens": 1024,
            "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "see"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                    {"type": "image", "source": {"type": "url", "url": "https://i"}, "cache_control": {"type": "ephemeral"}},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "sig"},
                    {"type": "redacted_thinking", "data": "enc"},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "ok"},
                    {"type": "tool_result", "tool_use_id": "t2", "is_error": true, "cache_control": {"type": "ephemeral"},
                     "content": [{"type": "text", "text": "bad"}, {"type": "image", "source": {"type": "url", "url": "https://j"}}]},
                    {"type": "tool_result", "tool_use_id": "t3"}
                ]}
            ],
            "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
                      {"type": "web_search_20250305", "name": "web_search", "max_uses": 2}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "temperature": 1, "top_p": 0.99, "top_k": 5, "stop_sequences": ["X"], "stream": true,
            "metadata": {"user_id": "u1"}, "service_tier": "auto"
        }))
        .unwrap();
        assert_eq!(r.model, "claude-sonnet-4-5");
        assert_eq!(r.max_tokens, Some(1024));
        assert_eq!(
            r.system,
            vec![ContentPart::Text {
                text: "sys".into(),
                cache_control: Some(CacheControl { kind: "ephemeral".into(), ttl: Some("1h".into()) })
            }]
        );
        let m = &r.messages;
        assert_eq!(
            m[0].content[1],
            ContentPart::Image {
                source: ImageSource::Base64 { media_type: "image/png".into(), data: "AAAA".into() },
                detail: None,
                cache_control: None
            }
        );
        assert_eq!(
            m[0].content[2],
            ContentPart::Image {
                source: ImageSource::Url { url: "https://i".into() },
                detail: None,
                cache_control: Some(CacheControl::ephemeral())
            }
        );
        assert!(
            matches!(&m[0].content[3], ContentPart::Opaque(Opaque { dialect: Dialect::Anthropic, value }) if value["type"] == "document")
        );
        assert_eq!(m[1].role, Role::Assistant);
        assert_eq!(
            m[1].content,
            vec![
                ContentPart::Thinking { text: "hm".into(), signature: Some("sig".into()) },
                ContentPart::RedactedThinking { data: "enc".into() },
                ContentPart::tool_use("t1", "f", json!({"a": 1})),
            ]
        );
        assert_eq!(m[2].content[0], ContentPart::tool_result("t1", vec![ContentPart::text("ok")], false));
        assert_eq!(
            m[2].content[1],
            ContentPart::ToolResult {
                tool_use_id: "t2".into(),
                content: vec![
                    ContentPart::text("bad"),
                    ContentPart::Image {
                        source: ImageSource::Url { url: "https://j".into() },
                        detail: None,
                        cache_control: None
                    }
                ],
                is_error: true,
                cache_control: Some(CacheControl::ephemeral()),
            }
        );
        assert_eq!(m[2].content[2], ContentPart::tool_result("t3", vec![], false));
        assert_eq!(r.tools[0].cache_control, Some(CacheControl::ephemeral()));
        assert_eq!(r.tools[1].name, "web_search");
        assert!(r.tools[1].builtin.is_some());
        assert_eq!(r.tool_choice, Some(ToolChoice::Required));
        assert_eq!(r.parallel_tool_calls, Some(false));
        assert_eq!(r.reasoning, Some(Reasoning { budget_tokens: Some(2048), ..Reasoning::default() }));
        assert_eq!((r.temperature, r.top_p, r.top_k), (Some(1.0), Some(0.99), Some(5)));
        assert_eq!(r.stop, vec!["X"]);
        assert!(r.stream);
        assert_eq!(r.user.as_deref(), Some("u1"));
        assert_eq!(Value::Object(r.extra), json!({"service_tier": "auto"}));
    }

    #[test]
    fn thinking_variants() {
        let base = |thinking: Value| json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}], "thinking": thinking});
        assert_eq!(parse(base(json!({"type": "disabled"}))).unwrap().reasoning, None);
        let mut adaptive = base(json!({"type": "adaptive"}));
        adaptive["output_config"] = json!({"effort": "low"});
        let r = parse(adaptive).unwrap();
        assert_eq!(r.reasoning, Some(Reasoning { effort: Some("low".into()), budget_tokens: None, adaptive: true }));
        assert_eq!(r.extra["output_config"], json!({"effort": "low"}));
        assert_eq!(
            err(base(json!({"type": "enabled"}))),
            "thinking.budget_tokens: missing; expected a positive integer"
        );
        assert_eq!(
            err(base(json!({"type": "magic"}))),
            "thinking.type: unknown thinking type 'magic'; expected enabled, adaptive or disabled"
        );
    }

    #[test]
    fn validation_errors_name_the_field() {
        let user = json!([{"role": "user", "content": "x"}]);
        assert_eq!(err(json!({"model": "m", "messages": user})), "max_tokens: missing; expected a positive integer");
        assert_eq!(
            err(json!({"model": "m", "max_tokens": 0, "messages": user})),
            "max_tokens: expected a positive integer"
        );
        assert_eq!(
            err(json!({"model": "m", "max_tokens": "9", "messages": user})),
            "max_tokens: expected a positive integer"
        );
        assert_eq!(err(json!({"max_tokens": 9, "messages": user})), "model: missing; expected a string");
        assert_eq!(
            err(json!({"model": "m", "max_tokens": 9, "messages": []})),
            "messages: expected a non-empty array of messages"
        );
        assert_eq!(
            err(json!({"model": "m", "max_tokens": 9, "messages": [{"role": "system", "content": "x"}]})),
            "messages[0].role: unknown role 'system'; expected user or assistant (the system prompt goes in the top-level system field)"
        );
        assert_eq!(
            err(json!({"model": "m", "max_tokens": 9, "messages": [{"role": "user"}]})),
            "messages[0].content: missing; expected a string or an array of content blocks"
        );
        assert_eq!(
            err(json!({"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": 3}]})),
            "messages[0].content: expected a string or an array of content blocks"
        );
        assert_eq!(
            err(
                json!({"model": "m", "max_tokens": 9, "messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": "f", "input": {}}]}]})
            ),
            "messages[0].content[0].id: missing; expected a string"
        );
        assert_eq!(
            err(
                json!({"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": 1}]}]})
            ),
            "messages[0].content[0].content: expected a string or an array of content blocks"
        );
        assert_eq!(
            err(
                json!({"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "x"}}]}]})
            ),
            "messages[0].content[0].source.media_type: missing; expected a string"
        );
        assert_eq!(
            err(
                json!({"model": "m", "max_tokens": 9, "messages": user, "system": [{"type": "image", "source": {"type": "url", "url": "u"}}]})
            ),
            "system[0]: system blocks must be text blocks"
        );
        assert_eq!(
            err(json!({"model": "m", "max_tokens": 9, "messages": user, "system": 1})),
            "system: expected a string or an array of text blocks"
        );
        assert_eq!(
            err(json!({"model": "m", "max_tokens": 9, "messages": user, "tool_choice": {"type": "sometimes"}})),
            "tool_choice.type: unknown tool choice 'sometimes'; expected auto, any, tool or none"
        );
        assert_eq!(
            err(json!({"model": "m", "max_tokens": 9, "messages": user, "tool_choice": {"type": "tool"}})),
            "tool_choice.name: missing; expected a string"
        );
        assert_eq!(
            err(json!({"model": "m", "max_tokens": 9, "messages": user, "tools": [{"input_schema": {}}]})),
            "tools[0].name: missing; expected a string"
        );
        assert_eq!(
            err(json!({"model": "m", "max_tokens": 9, "messages": user, "stop_sequences": "X"})),
            "stop_sequences: expected an array of strings"
        );
    }

    // ---------------------------------------------------------------- encode_request

    fn openai_request() -> ChatRequest {
        ChatRequest {
            model: "claude-sonnet-4-5".into(),
            system: vec![ContentPart::text("a"), ContentPart::text("b")],
            messages: vec![
                Message::user(vec![ContentPart::text("q"), ContentPart::text("")]),
                Message::assistant(vec![
                    ContentPart::Thinking { text: "from gpt".into(), signature: None },
                    ContentPart::tool_use("c1", "f", json!({"x": 1})),
                ]),
                Message::user(vec![ContentPart::tool_result("c1", vec![ContentPart::text("r")], false)]),
                Message::assistant(vec![ContentPart::Thinking { text: "only".into(), signature: None }]),
            ],
            tools: vec![Tool { name: "f".into(), strict: Some(true), ..Tool::default() }],
            temperature: Some(0.2),
            top_p: Some(0.5),
            top_k: Some(3),
            stop: vec!["END".into()],
            stream: true,
            include_usage: true,
            reasoning: Some(Reasoning { effort: Some("high".into()), ..Reasoning::default() }),
            user: Some("u".into()),
            parallel_tool_calls: Some(false),
            source: Some(Dialect::OpenAiChat),
            extra: [("seed".to_owned(), json!(1))].into_iter().collect(),
            ..ChatRequest::default()
        }
    }

    #[test]
    fn encodes_an_openai_request_for_claude() {
        assert_eq!(
            encode(&openai_request()),
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 32000,
                "system": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "f", "input": {"x": 1}}]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "r"}]}
                ],
                "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {}}}],
                "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
                "thinking": {"type": "enabled", "budget_tokens": 24576},
                "stop_sequences": ["END"],
                "stream": true,
                "metadata": {"user_id": "u"}
            })
        );
    }

    #[test]
    fn thinking_adjusts_limits_and_sampling() {
        let mut r = openai_request();
        r.max_tokens = Some(1000);
        r.temperature = Some(1.0);
        r.top_p = Some(0.97);
        let v = encode(&r);
        assert_eq!(v["max_tokens"], 25576);
        assert_eq!((v["temperature"].clone(), v["top_p"].clone()), (json!(1.0), json!(0.97)));
        assert!(v.get("top_k").is_none());
        // Budgets below Anthropic's minimum are raised to it.
        r.reasoning = Some(Reasoning { budget_tokens: Some(100), ..Reasoning::default() });
        assert_eq!(encode(&r)["thinking"], json!({"type": "enabled", "budget_tokens": 1024}));
        // No thinking: sampling goes through untouched.
        for effort in ["none", "minimal"] {
            r.reasoning = Some(Reasoning { effort: Some(effort.into()), ..Reasoning::default() });
            let v = encode(&r);
            assert!(v.get("thinking").is_none());
            assert_eq!(v["top_k"], 3);
            assert_eq!(v["max_tokens"], 1000);
        }
        for (effort, budget) in [("low", 1024), ("medium", 8192), ("high", 24576)] {
            r.reasoning = Some(Reasoning { effort: Some(effort.into()), ..Reasoning::default() });
            assert_eq!(encode(&r)["thinking"]["budget_tokens"], budget);
        }
        // A forced tool cannot be combined with thinking: the tool choice wins.
        r.tool_choice = Some(ToolChoice::Tool("f".into()));
        let v = encode(&r);
        assert!(v.get("thinking").is_none());
        assert_eq!(v["tool_choice"], json!({"type": "tool", "name": "f", "disable_parallel_tool_use": true}));
        // Adaptive thinking carries its effort in output_config.
        r.tool_choice = None;
        r.reasoning = Some(Reasoning { effort: Some("low".into()), budget_tokens: None, adaptive: true });
        let v = encode(&r);
        assert_eq!(v["thinking"], json!({"type": "adaptive"}));
        assert_eq!(v["output_config"], json!({"effort": "low"}));
    }

    #[test]
    fn same_dialect_extras_and_tool_choice_rules() {
        let mut r = openai_request();
        r.source = Some(Dialect::Anthropic);
        r.extra =
            [("output_config".to_owned(), json!({"effort": "max", "format": {"type": "json"}}))].into_iter().collect();
        r.reasoning = Some(Reasoning { effort: Some("max".into()), budget_tokens: None, adaptive: true });
        r.parallel_tool_calls = None;
        r.tool_choice = Some(ToolChoice::None);
        let v = encode(&r);
        assert_eq!(v["output_config"], json!({"effort": "max", "format": {"type": "json"}}));
        assert_eq!(v["tool_choice"], json!({"type": "none"}));
        r.tools.clear();
        assert!(encode(&r).get("tool_choice").is_none());
    }

    #[test]
    fn anthropic_requests_round_trip() {
        let body = json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 4096,
            "system": [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "t", "signature": "s"},
                    {"type": "redacted_thinking", "data": "r"},
                    {"type": "text", "text": "calling"},
                    {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": [1]}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}], "is_error": true},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                    {"type": "document", "source": {"type": "url", "url": "https://d"}},
                    {"type": "text", "text": "go", "cache_control": {"type": "ephemeral", "ttl": "5m"}}
                ]}
            ],
            "tools": [
                {"name": "f", "description": "d", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
                {"type": "bash_20250124", "name": "bash"}
            ],
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "temperature": 1.0,
            "stop_sequences": ["x"],
            "stream": true,
            "metadata": {"user_id": "u"},
            "service_tier": "auto"
        });
        assert_eq!(encode(&parse(body.clone()).unwrap()), body);
    }

    // ---------------------------------------------------------------- responses

    #[test]
    fn parses_and_encodes_messages() {
        let body = json!({"id": "msg_01", "type": "message", "role": "assistant", "model": "claude",
            "content": [{"type": "thinking", "thinking": "t", "signature": "s"}, {"type": "text", "text": "Hi"},
                        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"city": "Paris"}},
                        {"type": "server_tool_use", "id": "srv", "name": "web_search", "input": {}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 11, "output_tokens": 7, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 3}});
        let r = parse_response(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.stop_reason, Some(StopReason::ToolUse));
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 11,
                output_tokens: 7,
                cache_read_tokens: 5,
                cache_creation_tokens: 3,
                reasoning_tokens: 0
            }
        );
        assert_eq!(r.content.len(), 4);
        let out: Value = serde_json::from_slice(&encode_response(&r, "claude")).unwrap();
        assert_eq!(out, body);
    }

    #[test]
    fn foreign_answers_get_anthropic_ids_and_reasons() {
        let resp = ChatResponse {
            id: "chatcmpl-1".into(),
            model: "gpt".into(),
            content: vec![ContentPart::Thinking { text: "r".into(), signature: None }, ContentPart::text("")],
            stop_reason: Some(StopReason::ContentFilter),
            usage: Usage::default(),
        };
        let out: Value = serde_json::from_slice(&encode_response(&resp, "asked")).unwrap();
        assert_eq!(out["id"], "msg_chatcmpl-1");
        assert_eq!(out["model"], "asked");
        assert_eq!(out["stop_reason"], "refusal");
        assert_eq!(
            out["content"],
            json!([{"type": "thinking", "thinking": "r", "signature": ""}, {"type": "text", "text": ""}])
        );
        let none = ChatResponse { stop_reason: None, ..resp };
        let out: Value = serde_json::from_slice(&encode_response(&none, "asked")).unwrap();
        assert_eq!(out["stop_reason"], "end_turn");
    }

    #[test]
    fn stop_reasons_map_both_ways() {
        for (wire, ir) in [
            ("end_turn", StopReason::EndTurn),
            ("max_tokens", StopReason::MaxTokens),
            ("stop_sequence", StopReason::StopSequence),
            ("tool_use", StopReason::ToolUse),
            ("pause_turn", StopReason::PauseTurn),
            ("refusal", StopReason::Refusal),
            ("model_context_window_exceeded", StopReason::Other("model_context_window_exceeded".into())),
        ] {
            assert_eq!(parse_stop_reason(wire), ir);
            assert_eq!(stop_reason(&ir), wire);
        }
        assert_eq!(stop_reason(&StopReason::ContentFilter), "refusal");
    }

    #[test]
    fn upstream_errors_are_classified() {
        let body =
            |t: &str| format!(r#"{{"type":"error","error":{{"type":"{t}","message":"m"}},"request_id":"req_1"}}"#);
        for (status, t, kind) in [
            (400, "invalid_request_error", ErrorKind::InvalidRequest),
            (401, "authentication_error", ErrorKind::Authentication),
            (402, "billing_error", ErrorKind::QuotaExceeded),
            (403, "permission_error", ErrorKind::Permission),
            (404, "not_found_error", ErrorKind::ModelNotFound),
            (429, "rate_limit_error", ErrorKind::RateLimited),
            (500, "api_error", ErrorKind::Upstream),
            (529, "overloaded_error", ErrorKind::Upstream),
            (504, "timeout_error", ErrorKind::Timeout),
            (418, "teapot_error", ErrorKind::Upstream),
        ] {
            let e = parse_error(status, body(t).as_bytes());
            assert_eq!((e.kind(), e.status(), e.message()), (kind, Some(status), "m"), "{t}");
        }
        let e = parse_error(413, body("request_too_large").as_bytes());
        assert_eq!((e.kind(), e.http_status()), (ErrorKind::InvalidRequest, 413));
        let e = parse_error(502, b"<html>Bad Gateway</html>");
        assert_eq!((e.kind(), e.message()), (ErrorKind::Upstream, "<html>Bad Gateway</html>"));
        assert_eq!(parse_error(429, b"").kind(), ErrorKind::RateLimited);
        let e = parse_response(body("overloaded_error").as_bytes()).unwrap_err();
        assert_eq!((e.kind(), e.status()), (ErrorKind::Upstream, Some(529)));
    }

    #[test]
    fn error_event_is_the_anthropic_error_body() {
        let ev = error_event(&Error::new(ErrorKind::RateLimited, "slow"));
        assert_eq!(ev.event, Some("error"));
        assert_eq!(
            serde_json::from_str::<Value>(&ev.data).unwrap(),
            json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}})
        );
    }

    // ---------------------------------------------------------------- stream parser

    #[test]
    fn stream_usage_merges_start_and_delta_counts() {
        let evs = run(&[
            named(
                "message_start",
                json!({"type": "message_start", "message": {"id": "msg_1", "model": "c", "content": [],
                "usage": {"input_tokens": 11, "output_tokens": 1, "cache_read_input_tokens": 5}}}),
            ),
            named(
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "max_tokens"},
                "usage": {"output_tokens": 7, "cache_creation_input_tokens": 3}}),
            ),
            named("message_stop", json!({"type": "message_stop"})),
        ])
        .unwrap();
        assert_eq!(
            evs,
            vec![
                StreamEvent::Start {
                    id: "msg_1".into(),
                    model: "c".into(),
                    usage: Usage { input_tokens: 11, output_tokens: 1, cache_read_tokens: 5, ..Usage::default() }
                },
                StreamEvent::Finish {
                    stop_reason: Some(StopReason::MaxTokens),
                    usage: Usage {
                        input_tokens: 11,
                        output_tokens: 7,
                        cache_read_tokens: 5,
                        cache_creation_tokens: 3,
                        reasoning_tokens: 0
                    }
                },
            ]
        );
    }

    #[test]
    fn stream_skips_unknown_blocks_and_events_and_reads_events_without_names() {
        let unnamed = |data: Value| sse(None, data.to_string());
        let evs = run(&[
            unnamed(json!({"type": "message_start", "message": {"id": "m", "model": "c", "usage": {"input_tokens": 1}}})),
            named("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "server_tool_use", "id": "s", "name": "web_search"}})),
            named("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{}"}})),
            named("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            named("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}}})),
            named("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "citations_delta", "citation": {}}})),
            named("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
            named("content_block_start", json!({"type": "content_block_start", "index": 2, "content_block": {"type": "redacted_thinking", "data": "enc"}})),
            named("content_block_stop", json!({"type": "content_block_stop", "index": 2})),
            named("future_event", json!({"type": "future_event"})),
            unnamed(json!({"type": "ping"})),
            unnamed(json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 2}})),
        ])
        .unwrap();
        use StreamEvent::*;
        assert_eq!(
            evs[1..],
            [
                BlockStart { index: 1, block: BlockKind::ToolUse { id: "t".into(), name: "f".into() } },
                ToolArgsDelta { index: 1, json: "{\"a\":1}".into() },
                BlockStop { index: 1 },
                BlockStart { index: 2, block: BlockKind::RedactedThinking { data: "enc".into() } },
                BlockStop { index: 2 },
                Ping,
                Finish {
                    stop_reason: Some(StopReason::ToolUse),
                    usage: Usage { input_tokens: 1, output_tokens: 2, ..Usage::default() }
                },
            ]
        );
    }

    #[test]
    fn stream_errors() {
        let start =
            named("message_start", json!({"type": "message_start", "message": {"id": "m", "model": "c", "usage": {}}}));
        let error = |t: &str| named("error", json!({"type": "error", "error": {"type": t, "message": "Overloaded"}}));
        let e = run(&[start.clone(), error("overloaded_error")]).unwrap_err();
        assert_eq!((e.kind(), e.status(), e.message()), (ErrorKind::Upstream, Some(529), "Overloaded"));
        assert!(e.is_retryable());
        assert_eq!(run(&[start.clone(), error("rate_limit_error")]).unwrap_err().kind(), ErrorKind::RateLimited);
        let e = run(&[start.clone(), error("api_error")]).unwrap_err();
        assert_eq!((e.kind(), e.status()), (ErrorKind::Upstream, Some(500)));
        assert_eq!(
            run(&[start.clone(), error("invalid_request_error")]).unwrap_err().kind(),
            ErrorKind::InvalidRequest
        );
        let e = run(&[start]).unwrap_err();
        assert!(e.message().contains("ended early"));
        let e = run(&[named("message_start", json!("nope"))]).unwrap_err();
        assert!(e.message().starts_with("the upstream sent an unreadable stream event"));
    }

    // ---------------------------------------------------------------- stream encoder

    fn encode_stream(events: &[StreamEvent]) -> Vec<OutEvent> {
        testing::encode_stream(
            Dialect::Anthropic.stream_encoder("asked", false, std::time::SystemTime::UNIX_EPOCH),
            events,
        )
    }

    fn names(out: &[OutEvent]) -> Vec<&'static str> {
        out.iter().map(|e| e.event.unwrap()).collect()
    }

    #[test]
    fn encoder_repairs_sequences_from_flat_deltas() {
        use StreamEvent::*;
        let out = encode_stream(&[
            TextDelta { index: 0, text: "a".into() },
            ThinkingDelta { index: 1, text: "t".into() },
            ToolArgsDelta { index: 2, json: "{}".into() },
            BlockStart { index: 3, block: BlockKind::ToolUse { id: "x".into(), name: "f".into() } },
            BlockStart { index: 4, block: BlockKind::Text },
            TextDelta { index: 4, text: "".into() },
            BlockStop { index: 9 },
            Finish {
                stop_reason: Some(StopReason::EndTurn),
                usage: Usage { input_tokens: 2, output_tokens: 3, ..Usage::default() },
            },
            TextDelta { index: 5, text: "late".into() },
            Finish { stop_reason: None, usage: Usage::default() },
        ]);
        assert_eq!(
            names(&out),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_stop",
                "content_block_start",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        let data = datas(&out);
        assert_eq!(
            data[0],
            json!({"type": "message_start", "message": {"id": "msg_cliproxy", "type": "message", "role": "assistant", "model": "asked",
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}})
        );
        assert_eq!(data[7]["content_block"], json!({"type": "tool_use", "id": "x", "name": "f", "input": {}}));
        assert_eq!((data[7]["index"].clone(), data[9]["index"].clone()), (json!(2), json!(3)));
        assert_eq!(
            data[11],
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                   "usage": {"input_tokens": 2, "output_tokens": 3, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}})
        );
    }

    #[test]
    fn finish_alone_completes_a_message() {
        assert_eq!(names(&encode_stream(&[])), ["message_start", "message_delta", "message_stop"]);
        let out = encode_stream(&[
            StreamEvent::Ping,
            StreamEvent::Start { id: "msg_9".into(), model: "c".into(), usage: Usage::default() },
            StreamEvent::Ping,
        ]);
        assert_eq!(names(&out), ["message_start", "ping", "message_delta", "message_stop"]);
    }

    /// A strict reading of Anthropic's event grammar: `message_start`; blocks numbered from 0, one open at a
    /// time, deltas of the open block's kind only; one `message_delta` with no block open; `message_stop`
    /// last; `ping` anywhere after the start.
    pub(crate) fn check_anthropic_sequence(out: &[OutEvent]) -> Result<(), String> {
        let mut started = false;
        let mut open: Option<(u64, String)> = None;
        let mut next = 0u64;
        let mut delta_seen = false;
        let mut stopped = false;
        for (i, e) in out.iter().enumerate() {
            let v: Value = serde_json::from_str(&e.data).map_err(|err| format!("event {i}: {err}"))?;
            let name = e.event.ok_or(format!("event {i} has no name"))?;
            if v["type"] != name {
                return Err(format!("event {i}: name {name} but type {}", v["type"]));
            }
            if stopped {
                return Err(format!("event {i} after message_stop"));
            }
            if !started && name != "message_start" {
                return Err(format!("event {i} ({name}) before message_start"));
            }
            match name {
                "message_start" => {
                    if started {
                        return Err("second message_start".into());
                    }
                    started = true;
                    if v["message"]["content"] != json!([]) || !v["message"]["usage"]["input_tokens"].is_u64() {
                        return Err("message_start without empty content and usage".into());
                    }
                }
                "content_block_start" => {
                    if open.is_some() || delta_seen {
                        return Err(format!("event {i}: block start while a block is open or after message_delta"));
                    }
                    if v["index"] != next {
                        return Err(format!("event {i}: index {} but expected {next}", v["index"]));
                    }
                    let kind = v["content_block"]["type"].as_str().unwrap_or_default().to_owned();
                    if !["text", "thinking", "tool_use", "redacted_thinking"].contains(&kind.as_str()) {
                        return Err(format!("event {i}: unknown block type {kind}"));
                    }
                    open = Some((next, kind));
                    next += 1;
                }
                "content_block_delta" => {
                    let Some((index, kind)) = &open else { return Err(format!("event {i}: delta without open block")) };
                    if v["index"] != *index {
                        return Err(format!("event {i}: delta for index {} while {index} is open", v["index"]));
                    }
                    let allowed: &[&str] = match kind.as_str() {
                        "text" => &["text_delta"],
                        "thinking" => &["thinking_delta", "signature_delta"],
                        "tool_use" => &["input_json_delta"],
                        _ => &[],
                    };
                    let dt = v["delta"]["type"].as_str().unwrap_or_default();
                    if !allowed.contains(&dt) {
                        return Err(format!("event {i}: {dt} in a {kind} block"));
                    }
                }
                "content_block_stop" => match &open {
                    Some((index, _)) if v["index"] == *index => open = None,
                    _ => return Err(format!("event {i}: stop of a block that is not open")),
                },
                "message_delta" => {
                    if open.is_some() || delta_seen {
                        return Err(format!("event {i}: message_delta with a block open or twice"));
                    }
                    if !v["usage"]["output_tokens"].is_u64() {
                        return Err(format!("event {i}: message_delta without usage.output_tokens"));
                    }
                    delta_seen = true;
                }
                "message_stop" => {
                    if !delta_seen {
                        return Err("message_stop before message_delta".into());
                    }
                    stopped = true;
                }
                "ping" => {}
                other => return Err(format!("event {i}: unknown event {other}")),
            }
        }
        if !stopped {
            return Err("no message_stop".into());
        }
        Ok(())
    }

    mod props {
        use super::*;
        use crate::dialects::openai_chat;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_event_sequence_encodes_to_a_valid_stream(events in proptest::collection::vec(testing::stream_event(), 0..40)) {
                let out = encode_stream(&events);
                if let Err(e) = check_anthropic_sequence(&out) {
                    return Err(TestCaseError::fail(format!("{e}\nevents: {events:?}\nout: {out:?}")));
                }
                // No text is lost or invented on the way.
                let want = testing::text_until_finish(&events);
                let got: String = out
                    .iter()
                    .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
                    .filter_map(|v| v["delta"]["text"].as_str().map(str::to_owned))
                    .collect();
                prop_assert_eq!(got, want);
            }

            /// Whatever an OpenAI-compatible upstream streams, the Anthropic client gets a valid stream.
            #[test]
            fn openai_chunks_through_both_dialects_stay_valid(
                deltas in proptest::collection::vec(prop_oneof![
                    ".{0,3}".prop_map(|t| json!({"content": t})),
                    ".{0,3}".prop_map(|t| json!({"reasoning_content": t})),
                    (0usize..3, "[a-z]{0,2}").prop_map(|(i, a)| json!({"tool_calls": [{"index": i, "id": format!("c{i}"), "function": {"name": "f", "arguments": a}}]})),
                ], 0..12),
            ) {
                let mut parser = openai_chat::StreamParser::new();
                let mut events = Vec::new();
                let mut failed = false;
                for d in deltas {
                    let frame = json!({"id": "c", "choices": [{"index": 0, "delta": d, "finish_reason": null}]}).to_string();
                    if parser.push(&sse(None, frame), &mut events).is_err() {
                        failed = true;
                        break;
                    }
                }
                if !failed {
                    parser.push(&sse(None, "[DONE]"), &mut events).unwrap();
                    parser.finish(&mut events).unwrap();
                    let out = encode_stream(&events);
                    if let Err(e) = check_anthropic_sequence(&out) {
                        return Err(TestCaseError::fail(format!("{e}\nevents: {events:?}")));
                    }
                }
            }
        }
    }
}
