//! OpenAI Chat Completions: the client dialect of `/v1/chat/completions` and the wire format of
//! OpenAI-compatible upstreams.
//!
//! Mapping decisions (the IR is described in [`crate::types`]):
//! - `system` and `developer` messages become [`ChatRequest::system`] parts, in order, wherever they stood;
//!   an encoding writes one `system` message first.
//! - `tool` messages become tool-result parts of a user message; consecutive ones share that message, and
//!   a user message right after them joins it too (Anthropic's shape for a tool turn). Encoding undoes this:
//!   tool messages first, then the rest of the user message, so an OpenAI round trip is exact.
//! - Assistant `reasoning_content` (or `reasoning`, as some servers call it) becomes a thinking part without
//!   signature. Encoding a request sends back only unsigned thinking, as `reasoning_content`: signed
//!   thinking came from Anthropic and means nothing to another model.
//! - Tool-call `arguments` in a client request must be JSON (`""` reads as `{}`); anything else is an
//!   `invalid_request` naming the message. In an upstream answer, arguments that are not JSON are kept as a
//!   JSON string of the raw text (see [`crate::types::parse_tool_arguments`]) and written back verbatim.
//! - `reasoning_effort` ⇄ [`Reasoning::effort`]; a budget from Anthropic maps to the nearest effort
//!   (below 4096 tokens `low`, below 16384 `medium`, else `high`), Anthropic's `max` to `high`.
//! - Usage: `prompt_tokens` includes cached tokens, so `input_tokens = prompt_tokens − cached_tokens −
//!   cache_write_tokens`, and encoding writes `prompt_tokens` as the sum (`cache_write_tokens` is the
//!   non-standard detail some relays use for cache creation; written only when non-zero).
//! - finish reasons: `stop` ⇄ end turn (stop sequences also map to `stop`), `length` ⇄ max tokens,
//!   `tool_calls` (and the legacy `function_call`) ⇄ tool use, `content_filter` ⇄ content filter and
//!   refusal; a missing reason is written as `stop`.
//! - `top_k` (not an OpenAI parameter, but accepted by vLLM and others) is sent only when the client itself
//!   spoke this dialect; OpenAI proper rejects it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::json::{self, Kind, Obj, Path, Str};
use super::{
    Dialect, OutEvent, client_id, client_tool_arguments, effort_of, image_from_url, image_url, read_cache_control,
    to_json, tool_arguments_text, tool_choice_mode, upstream_error,
};
use crate::error::{Error, ErrorKind};
use crate::logtext::Clean;
use crate::stream::sse::SseEvent;
use crate::types::{
    BlockKind, ChatRequest, ChatResponse, ContentPart, Message, Opaque, Reasoning, Role, StopReason, StreamEvent, Tool,
    ToolChoice, Usage, parse_tool_arguments,
};

// =========================================================================================================
// Requests: client body → IR

/// Parses and validates a client's chat completion request.
pub fn parse_request(body: &[u8]) -> Result<ChatRequest, Error> {
    let root = Path::Root;
    let obj = Obj::from_body(body)?;
    let mut req = ChatRequest { source: Some(Dialect::OpenAiChat), ..ChatRequest::default() };
    let (mut max_tokens, mut max_completion_tokens) = (None, None);
    for (key, raw) in obj.fields() {
        if json::kind(raw) == Kind::Null {
            continue;
        }
        let path = root.key(key);
        match key {
            // Read below, once, whatever the number of duplicates.
            "model" | "messages" | "tools" => {}
            "tool_choice" => req.tool_choice = Some(parse_tool_choice(raw, &path)?),
            "max_tokens" => max_tokens = Some(json::unsigned(raw, &path)?),
            "max_completion_tokens" => max_completion_tokens = Some(json::unsigned(raw, &path)?),
            "temperature" => req.temperature = Some(json::number(raw, &path)?),
            "top_p" => req.top_p = Some(json::number(raw, &path)?),
            "top_k" => req.top_k = Some(json::unsigned(raw, &path)?),
            "stop" => req.stop = parse_stop(raw, &path)?,
            "stream" => req.stream = json::boolean(raw, &path)?,
            "stream_options" => {
                let o = Obj::read(raw, &path)?;
                req.include_usage = o.bool("include_usage", &path)?.unwrap_or(false);
            }
            "reasoning_effort" => {
                let effort = json::string(raw, &path)?.into_owned();
                req.reasoning = Some(Reasoning { effort: Some(effort), ..Reasoning::default() });
            }
            "parallel_tool_calls" => req.parallel_tool_calls = Some(json::boolean(raw, &path)?),
            "user" => req.user = Some(json::string(raw, &path)?.into_owned()),
            _ => {
                req.extra.insert(key.to_owned(), json::value(raw, &path)?);
            }
        }
    }
    req.model = obj.require_string("model", &root)?.into_owned();
    if req.model.is_empty() {
        return Err(root.key("model").invalid("must not be empty"));
    }
    let messages = obj.require("messages", &root, "a non-empty array of messages")?;
    parse_messages(messages, &root.key("messages"), &mut req)?;
    if let Some(tools) = obj.get("tools") {
        req.tools = parse_tools(tools, &root.key("tools"))?;
    }
    req.max_completion_tokens = max_completion_tokens.is_some();
    req.max_tokens = max_completion_tokens.or(max_tokens);
    Ok(req)
}

fn parse_messages(raw: &RawValue, path: &Path<'_>, req: &mut ChatRequest) -> Result<(), Error> {
    const EXPECTED: &str = "a non-empty array of messages";
    let items = json::array(raw, path, EXPECTED)?;
    if items.is_empty() {
        return Err(path.invalid(format_args!("expected {EXPECTED}")));
    }
    // Whether the last IR message is the user message holding the current tool turn's results.
    let mut tool_turn = false;
    for (i, item) in items.into_iter().enumerate() {
        let p = path.index(i);
        let m = Obj::read(item, &p)?;
        let role = m.require_string("role", &p)?;
        match role.as_ref() {
            "system" | "developer" => {
                for part in parse_parts(&m, &p, Allow::User)? {
                    if !matches!(part, ContentPart::Text { .. }) {
                        return Err(p.key("content").invalid("system messages may contain only text parts"));
                    }
                    req.system.push(part);
                }
            }
            "user" => {
                let parts = parse_parts(&m, &p, Allow::User)?;
                match req.messages.last_mut() {
                    Some(last) if tool_turn => last.content.extend(parts),
                    _ => req.messages.push(Message::user(parts)),
                }
                tool_turn = false;
            }
            "assistant" => {
                req.messages.push(Message::assistant(parse_assistant(&m, &p, Args::Strict)?));
                tool_turn = false;
            }
            "tool" => {
                let tool_use_id = m.require_string("tool_call_id", &p)?.into_owned();
                let content = parse_parts(&m, &p, Allow::User)?;
                let part = ContentPart::tool_result(tool_use_id, content, false);
                match req.messages.last_mut() {
                    Some(last) if tool_turn => last.content.push(part),
                    _ => req.messages.push(Message::user(vec![part])),
                }
                tool_turn = true;
            }
            "function" => {
                return Err(p.key("role").invalid("the legacy 'function' role is not supported; use 'tool' messages"));
            }
            other => {
                return Err(p.key("role").invalid(format_args!(
                    "unknown role '{other}'; expected system, developer, user, assistant or tool"
                )));
            }
        }
    }
    Ok(())
}

/// Which content a message may carry, and how empty text is treated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Allow {
    /// Text (empty strings kept), images and parts the IR keeps opaque.
    User,
    /// Text and refusals; empty text is no part at all (an assistant tool-call message has `""` or `null`).
    Assistant,
}

/// Reads `content`: a string, an array of parts, or absent/`null`.
fn parse_parts(m: &Obj<'_>, path: &Path<'_>, allow: Allow) -> Result<Vec<ContentPart>, Error> {
    let path = path.key("content");
    let Some(raw) = m.get("content") else {
        return Ok(Vec::new());
    };
    match json::kind(raw) {
        Kind::String => {
            let text = json::string(raw, &path)?;
            if text.is_empty() && allow == Allow::Assistant {
                return Ok(Vec::new());
            }
            Ok(vec![ContentPart::text(text)])
        }
        Kind::Array => {
            let items = json::array(raw, &path, "an array of content parts")?;
            let mut parts = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                if let Some(part) = parse_part(item, &path.index(i), allow)? {
                    parts.push(part);
                }
            }
            Ok(parts)
        }
        _ => Err(path.invalid(if allow == Allow::Assistant {
            "expected a string, an array of content parts or null"
        } else {
            "expected a string or an array of content parts"
        })),
    }
}

fn parse_part(raw: &RawValue, path: &Path<'_>, allow: Allow) -> Result<Option<ContentPart>, Error> {
    let o = Obj::read(raw, path)?;
    let tag = o.tag(path)?;
    match (tag.as_ref(), allow) {
        ("text", _) => {
            let text = o.require_string("text", path)?;
            if text.is_empty() && allow == Allow::Assistant {
                return Ok(None);
            }
            // `cache_control` is not OpenAI's, but relays such as OpenRouter accept it on text parts.
            let cache_control = read_cache_control(&o, path)?;
            Ok(Some(ContentPart::Text { text: text.into_owned(), cache_control }))
        }
        ("refusal", Allow::Assistant) => {
            let text = o.require_string("refusal", path)?;
            Ok((!text.is_empty()).then(|| ContentPart::text(text)))
        }
        ("image_url", Allow::User) => {
            let ip = path.key("image_url");
            let image = o.require("image_url", path, "an object with a url")?;
            // Early clients sent the URL as a bare string.
            let (url, detail) = if json::kind(image) == Kind::String {
                (json::string(image, &ip)?, None)
            } else {
                let io = Obj::read(image, &ip)?;
                (io.require_string("url", &ip)?, io.string("detail", &ip)?.map(Cow::into_owned))
            };
            let cache_control = read_cache_control(&o, path)?;
            Ok(Some(ContentPart::Image { source: image_from_url(&url), detail, cache_control }))
        }
        (_, Allow::User) => {
            Ok(Some(ContentPart::Opaque(Opaque { dialect: Dialect::OpenAiChat, value: json::value(raw, path)? })))
        }
        (other, Allow::Assistant) => Err(path
            .key("type")
            .invalid(format_args!("unsupported assistant content part '{other}'; expected text or refusal"))),
    }
}

/// How tool-call arguments that are not JSON are treated: a client's are an error, an upstream's are kept.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Args {
    Strict,
    Lenient,
}

/// An assistant message (request history, or the `message` of an upstream answer) → parts: thinking first,
/// then text, then tool calls.
fn parse_assistant(m: &Obj<'_>, path: &Path<'_>, args: Args) -> Result<Vec<ContentPart>, Error> {
    let mut parts = Vec::new();
    let reasoning = match m.string("reasoning_content", path)? {
        Some(r) => Some(r),
        None => m.string("reasoning", path)?,
    };
    if let Some(text) = reasoning.filter(|r| !r.is_empty()) {
        parts.push(ContentPart::Thinking { text: text.into_owned(), signature: None });
    }
    parts.extend(parse_parts(m, path, Allow::Assistant)?);
    if let Some(refusal) = m.string("refusal", path)?.filter(|r| !r.is_empty()) {
        parts.push(ContentPart::text(refusal));
    }
    if m.get("function_call").is_some() {
        return Err(path
            .key("function_call")
            .invalid("the legacy function_call field is not supported; use tool_calls"));
    }
    if let Some(calls) = m.get("tool_calls") {
        let cp = path.key("tool_calls");
        for (i, call) in json::array(calls, &cp, "an array of tool calls")?.into_iter().enumerate() {
            let p = cp.index(i);
            let c = Obj::read(call, &p)?;
            let id = c.require_string("id", &p)?.into_owned();
            let f =
                c.object("function", &p)?.ok_or_else(|| p.key("function").invalid("missing; expected an object"))?;
            let fp = p.key("function");
            let name = f.require_string("name", &fp)?.into_owned();
            let arguments = f.string("arguments", &fp)?.unwrap_or_default();
            let input = match args {
                Args::Lenient => parse_tool_arguments(&arguments),
                Args::Strict => client_tool_arguments(&arguments, &fp.key("arguments"))?,
            };
            parts.push(ContentPart::tool_use(id, name, input));
        }
    }
    Ok(parts)
}

fn parse_tools(raw: &RawValue, path: &Path<'_>) -> Result<Vec<Tool>, Error> {
    let items = json::array(raw, path, "an array of tools")?;
    let mut tools = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let p = path.index(i);
        let t = Obj::read(item, &p)?;
        let kind = t.string("type", &p)?.unwrap_or(Cow::Borrowed("function"));
        if kind != "function" {
            let name = t.string("name", &p)?.unwrap_or_else(|| kind.clone()).into_owned();
            let builtin = Opaque { dialect: Dialect::OpenAiChat, value: json::value(item, &p)? };
            tools.push(Tool { name, builtin: Some(builtin), ..Tool::default() });
            continue;
        }
        let fp = p.key("function");
        let f = t.object("function", &p)?.ok_or_else(|| fp.invalid("missing; expected an object with a name"))?;
        tools.push(Tool {
            name: f.require_string("name", &fp)?.into_owned(),
            description: f.string("description", &fp)?.map(Cow::into_owned),
            parameters: f.value("parameters", &fp)?.unwrap_or(Value::Null),
            strict: f.bool("strict", &fp)?,
            cache_control: read_cache_control(&t, &p)?,
            builtin: None,
        });
    }
    Ok(tools)
}

fn parse_tool_choice(raw: &RawValue, path: &Path<'_>) -> Result<ToolChoice, Error> {
    const EXPECTED: &str =
        "expected \"none\", \"auto\", \"required\" or {\"type\":\"function\",\"function\":{\"name\"}}";
    match json::kind(raw) {
        Kind::String => tool_choice_mode(&json::string(raw, path)?).ok_or_else(|| path.invalid(EXPECTED)),
        Kind::Object => {
            let o = Obj::read(raw, path)?;
            let f = o.object("function", path)?.ok_or_else(|| path.invalid(EXPECTED))?;
            Ok(ToolChoice::Tool(f.require_string("name", &path.key("function"))?.into_owned()))
        }
        _ => Err(path.invalid(EXPECTED)),
    }
}

fn parse_stop(raw: &RawValue, path: &Path<'_>) -> Result<Vec<String>, Error> {
    match json::kind(raw) {
        Kind::String => Ok(vec![json::string(raw, path)?.into_owned()]),
        Kind::Array => json::array(raw, path, "a string or an array of strings")?
            .into_iter()
            .enumerate()
            .map(|(i, s)| json::string(s, &path.index(i)).map(Cow::into_owned))
            .collect(),
        _ => Err(path.invalid("expected a string or an array of strings")),
    }
}

// =========================================================================================================
// Requests: IR → upstream body

#[derive(Serialize)]
struct RequestOut<'a> {
    model: &'a str,
    messages: Vec<MessageOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_k: Option<u32>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptionsOut>,
    #[serde(flatten)]
    extra: Option<&'a serde_json::Map<String, Value>>,
}

#[derive(Serialize)]
struct StreamOptionsOut {
    include_usage: bool,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    /// `None` is written as `null` (an assistant message that only calls tools).
    content: Option<ContentOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

impl<'a> MessageOut<'a> {
    fn new(role: &'static str, content: Option<ContentOut<'a>>) -> Self {
        MessageOut { role, content, reasoning_content: None, tool_calls: Vec::new(), tool_call_id: None }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum ContentOut<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<PartOut<'a>>),
}

impl<'a> ContentOut<'a> {
    /// A single text part is written as a plain string, which every compatible server accepts.
    fn from_parts(parts: Vec<PartOut<'a>>) -> Self {
        match parts.as_slice() {
            [] => ContentOut::Text(Cow::Borrowed("")),
            [PartOut::Text { text }] => ContentOut::Text(Cow::Borrowed(text)),
            _ => ContentOut::Parts(parts),
        }
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum PartOut<'a> {
    Text {
        text: &'a str,
    },
    ImageUrl {
        image_url: ImageUrlOut<'a>,
    },
    #[serde(untagged)]
    Raw(&'a Value),
}

#[derive(Serialize)]
struct ImageUrlOut<'a> {
    url: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

#[derive(Serialize)]
struct ToolCallOut<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: FunctionCallOut<'a>,
}

#[derive(Serialize)]
struct FunctionCallOut<'a> {
    name: &'a str,
    arguments: Cow<'a, str>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ToolOut<'a> {
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        function: FunctionOut<'a>,
    },
    Raw(&'a Value),
}

#[derive(Serialize)]
struct FunctionOut<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Value::is_null")]
    parameters: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<bool>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ToolChoiceOut<'a> {
    Mode(&'static str),
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        function: NameOut<'a>,
    },
}

#[derive(Serialize)]
struct NameOut<'a> {
    name: &'a str,
}

/// Encodes a request for an OpenAI-compatible upstream. Streaming requests always ask for usage
/// (`stream_options.include_usage`), so the proxy knows the token counts whatever the client asked for.
pub fn encode_request(req: &ChatRequest) -> Vec<u8> {
    let same_dialect = req.source == Some(Dialect::OpenAiChat);
    let has_tools = !req.tools.is_empty();
    let tools: Vec<ToolOut<'_>> = req.tools.iter().filter_map(tool_out).collect();
    let tool_choice = req.tool_choice.as_ref().filter(|_| has_tools).map(|c| match c {
        ToolChoice::Auto => ToolChoiceOut::Mode("auto"),
        ToolChoice::None => ToolChoiceOut::Mode("none"),
        ToolChoice::Required => ToolChoiceOut::Mode("required"),
        ToolChoice::Tool(name) => ToolChoiceOut::Function { kind: "function", function: NameOut { name } },
    });
    let (max_tokens, max_completion_tokens) =
        if req.max_completion_tokens { (None, req.max_tokens) } else { (req.max_tokens, None) };
    let out = RequestOut {
        model: &req.model,
        messages: messages_out(req),
        tools,
        tool_choice,
        parallel_tool_calls: req.parallel_tool_calls.filter(|_| has_tools),
        max_tokens,
        max_completion_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k.filter(|_| same_dialect),
        stop: &req.stop,
        reasoning_effort: req.reasoning.as_ref().and_then(effort_of),
        user: req.user.as_deref(),
        stream: req.stream,
        stream_options: req.stream.then_some(StreamOptionsOut { include_usage: true }),
        extra: same_dialect.then_some(&req.extra),
    };
    to_json(&out)
}

fn tool_out(t: &Tool) -> Option<ToolOut<'_>> {
    match &t.builtin {
        Some(Opaque { dialect: Dialect::OpenAiChat, value }) => Some(ToolOut::Raw(value)),
        Some(_) => {
            tracing::warn!(tool = %Clean(&t.name), "dropping a provider-defined tool an OpenAI-compatible upstream cannot run");
            None
        }
        None => Some(ToolOut::Function {
            kind: "function",
            function: FunctionOut {
                name: &t.name,
                description: t.description.as_deref(),
                parameters: &t.parameters,
                strict: t.strict,
            },
        }),
    }
}

fn messages_out(req: &ChatRequest) -> Vec<MessageOut<'_>> {
    let mut out = Vec::with_capacity(req.messages.len() + 1);
    if !req.system.is_empty() {
        let parts = req.system.iter().filter_map(user_part).collect();
        out.push(MessageOut::new("system", Some(ContentOut::from_parts(parts))));
    }
    for m in &req.messages {
        match m.role {
            Role::User => user_messages(&m.content, &mut out),
            Role::Assistant => out.push(assistant_message(&m.content, Thinking::UnsignedOnly)),
        }
    }
    out
}

/// A user message of the IR: its tool results as `tool` messages first (they must follow the assistant's
/// calls directly), then everything else (including images from tool results, which `tool` messages
/// cannot carry) as one user message.
fn user_messages<'a>(content: &'a [ContentPart], out: &mut Vec<MessageOut<'a>>) {
    let mut rest = Vec::new();
    let mut had_results = false;
    for part in content {
        if let ContentPart::ToolResult { tool_use_id, content, .. } = part {
            had_results = true;
            let mut texts = Vec::new();
            for p in content {
                match p {
                    ContentPart::Text { text, .. } => texts.push(PartOut::Text { text }),
                    other => rest.extend(user_part(other)),
                }
            }
            let mut msg = MessageOut::new("tool", Some(ContentOut::from_parts(texts)));
            msg.tool_call_id = Some(tool_use_id);
            out.push(msg);
        } else {
            rest.extend(user_part(part));
        }
    }
    if !rest.is_empty() || !had_results {
        out.push(MessageOut::new("user", Some(ContentOut::from_parts(rest))));
    }
}

fn user_part(part: &ContentPart) -> Option<PartOut<'_>> {
    match part {
        ContentPart::Text { text, .. } => Some(PartOut::Text { text }),
        ContentPart::Image { source, detail, .. } => {
            Some(PartOut::ImageUrl { image_url: ImageUrlOut { url: image_url(source), detail: detail.as_deref() } })
        }
        ContentPart::Opaque(Opaque { dialect: Dialect::OpenAiChat, value }) => Some(PartOut::Raw(value)),
        ContentPart::Opaque(Opaque { value, .. }) => {
            let kind = value.get("type").unwrap_or(&Value::Null);
            tracing::warn!(part = %Clean(&kind.to_string()), "dropping a content part an OpenAI-compatible upstream cannot take");
            None
        }
        // Tool calls and reasoning belong to assistant messages; a user message cannot carry them here.
        ContentPart::ToolUse { .. }
        | ContentPart::ToolResult { .. }
        | ContentPart::Thinking { .. }
        | ContentPart::RedactedThinking { .. } => None,
    }
}

/// Which thinking parts an assistant message carries as `reasoning_content`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Thinking {
    /// Requests: only reasoning that came from an OpenAI-style model (no signature).
    UnsignedOnly,
    /// Answers to clients: all of it.
    All,
}

fn assistant_message(content: &[ContentPart], thinking: Thinking) -> MessageOut<'_> {
    let mut text: Option<Cow<'_, str>> = None;
    let mut reasoning: Option<Cow<'_, str>> = None;
    let mut tool_calls = Vec::new();
    for part in content {
        match part {
            ContentPart::Text { text: t, .. } => append(&mut text, t),
            ContentPart::Thinking { text: t, signature } if thinking == Thinking::All || signature.is_none() => {
                append(&mut reasoning, t)
            }
            ContentPart::ToolUse { id, name, input, .. } => tool_calls.push(ToolCallOut {
                id,
                kind: "function",
                function: FunctionCallOut { name, arguments: tool_arguments_text(input) },
            }),
            _ => {}
        }
    }
    let content = match text {
        Some(t) => Some(ContentOut::Text(t)),
        // An assistant message must have content or tool calls.
        None if tool_calls.is_empty() => Some(ContentOut::Text(Cow::Borrowed(""))),
        None => None,
    };
    MessageOut { role: "assistant", content, reasoning_content: reasoning, tool_calls, tool_call_id: None }
}

/// Concatenates text without copying when there is only one piece.
fn append<'a>(acc: &mut Option<Cow<'a, str>>, s: &'a str) {
    match acc {
        None => *acc = Some(Cow::Borrowed(s)),
        Some(a) => a.to_mut().push_str(s),
    }
}

// =========================================================================================================
// Responses

/// Usage as OpenAI and compatible servers send it. Every field is optional: servers omit details or send
/// `null` inside them.
#[derive(Deserialize, Default, Debug, Clone, Copy)]
#[serde(default)]
struct UsageWire {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptDetailsWire>,
    completion_tokens_details: Option<CompletionDetailsWire>,
}

#[derive(Deserialize, Default, Debug, Clone, Copy)]
#[serde(default)]
struct PromptDetailsWire {
    cached_tokens: Option<u64>,
    cache_write_tokens: Option<u64>,
}

#[derive(Deserialize, Default, Debug, Clone, Copy)]
#[serde(default)]
struct CompletionDetailsWire {
    reasoning_tokens: Option<u64>,
}

impl From<UsageWire> for Usage {
    fn from(u: UsageWire) -> Usage {
        let details = u.prompt_tokens_details.unwrap_or_default();
        let cache_read = details.cached_tokens.unwrap_or(0);
        let cache_creation = details.cache_write_tokens.unwrap_or(0);
        Usage {
            input_tokens: u.prompt_tokens.unwrap_or(0).saturating_sub(cache_read + cache_creation),
            output_tokens: u.completion_tokens.unwrap_or(0),
            cache_read_tokens: cache_read,
            cache_creation_tokens: cache_creation,
            reasoning_tokens: u.completion_tokens_details.and_then(|d| d.reasoning_tokens).unwrap_or(0),
        }
    }
}

#[derive(Serialize)]
struct UsageOut {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptDetailsOut,
    completion_tokens_details: CompletionDetailsOut,
}

#[derive(Serialize)]
struct PromptDetailsOut {
    cached_tokens: u64,
    #[serde(skip_serializing_if = "is_zero")]
    cache_write_tokens: u64,
}

#[derive(Serialize)]
struct CompletionDetailsOut {
    reasoning_tokens: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl From<&Usage> for UsageOut {
    fn from(u: &Usage) -> UsageOut {
        UsageOut {
            prompt_tokens: u.prompt_tokens(),
            completion_tokens: u.output_tokens,
            total_tokens: u.total_tokens(),
            prompt_tokens_details: PromptDetailsOut {
                cached_tokens: u.cache_read_tokens,
                cache_write_tokens: u.cache_creation_tokens,
            },
            completion_tokens_details: CompletionDetailsOut { reasoning_tokens: u.reasoning_tokens },
        }
    }
}

fn parse_finish_reason(reason: &str) -> StopReason {
    match reason {
        "stop" => StopReason::EndTurn,
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::ContentFilter,
        other => StopReason::Other(other.to_owned()),
    }
}

fn finish_reason(reason: Option<&StopReason>) -> &str {
    match reason {
        None | Some(StopReason::EndTurn | StopReason::StopSequence | StopReason::PauseTurn) => "stop",
        Some(StopReason::MaxTokens) => "length",
        Some(StopReason::ToolUse) => "tool_calls",
        Some(StopReason::ContentFilter | StopReason::Refusal) => "content_filter",
        Some(StopReason::Other(s)) => s,
    }
}

/// Parses an upstream's `chat.completion`. Only the first choice is read (the proxy never asks for more).
/// A 200 answer carrying an `error` object instead is returned as that error.
pub fn parse_response(body: &[u8]) -> Result<ChatResponse, Error> {
    let fault = json::upstream_fault("chat completion");
    let root = Path::Root;
    let obj = Obj::from_body(body).map_err(&fault)?;
    if let Some(err) = obj.get("error") {
        return Err(error_from_wire(None, Some(err), body));
    }
    let choices = obj.require("choices", &root, "an array of choices").map_err(&fault)?;
    let cp = root.key("choices");
    let choices = json::array(choices, &cp, "an array of choices").map_err(&fault)?;
    let Some(first) = choices.first() else {
        return Err(Error::upstream(None, "the upstream answered with no choices"));
    };
    let p = cp.index(0);
    let choice = Obj::read(first, &p).map_err(&fault)?;
    let message = choice.object("message", &p).map_err(&fault)?;
    let content = match message {
        Some(m) => parse_assistant(&m, &p.key("message"), Args::Lenient).map_err(&fault)?,
        None => Vec::new(),
    };
    let usage = match obj.get("usage") {
        Some(raw) => serde_json::from_str::<UsageWire>(raw.get())
            .map_err(|e| Error::upstream(None, format!("the upstream sent unreadable usage: {e}")))?
            .into(),
        None => Usage::default(),
    };
    Ok(ChatResponse {
        id: obj.string("id", &root).map_err(&fault)?.unwrap_or_default().into_owned(),
        model: obj.string("model", &root).map_err(&fault)?.unwrap_or_default().into_owned(),
        content,
        stop_reason: choice.string("finish_reason", &p).map_err(&fault)?.map(|r| parse_finish_reason(&r)),
        usage,
    })
}

#[derive(Serialize)]
struct CompletionOut<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [ChoiceOut<'a>; 1],
    usage: UsageOut,
}

#[derive(Serialize)]
struct ChoiceOut<'a> {
    index: u32,
    message: MessageOut<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
}

/// [`encode_response`] with a given `created` time (seconds since the epoch), for reproducible output.
pub fn encode_response_at(resp: &ChatResponse, model: &str, created: u64) -> Vec<u8> {
    let id = client_id(&resp.id, "chatcmpl-");
    let out = CompletionOut {
        id: &id,
        object: "chat.completion",
        created,
        model,
        choices: [ChoiceOut {
            index: 0,
            message: assistant_message(&resp.content, Thinking::All),
            logprobs: None,
            finish_reason: finish_reason(resp.stop_reason.as_ref()),
        }],
        usage: UsageOut::from(&resp.usage),
    };
    to_json(&out)
}

// =========================================================================================================
// Errors

/// Maps an upstream error answer (`{"error":{"message","type","code"}}`, or plain text as some servers
/// send) to an error of the right kind, keeping the upstream's message.
pub fn parse_error(status: u16, body: &[u8]) -> Error {
    let raw = serde_json::from_slice::<ErrorEnvelope<'_>>(body).ok().and_then(|e| e.error);
    error_from_wire(Some(status), raw, body)
}

/// An error frame inside a 200 stream (`data: {"error":…}`), which has no HTTP status of its own.
pub fn parse_stream_error(data: &[u8]) -> Error {
    let raw = serde_json::from_slice::<ErrorEnvelope<'_>>(data).ok().and_then(|e| e.error);
    error_from_wire(None, raw, data)
}

#[derive(Deserialize)]
struct ErrorEnvelope<'a> {
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorWire<'a> {
    #[serde(borrow)]
    message: Option<Str<'a>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    code: Option<&'a RawValue>,
}

/// `error` is the value of the body's `error` field, if any; `body` is used as the message otherwise.
pub(super) fn error_from_wire(status: Option<u16>, error: Option<&RawValue>, body: &[u8]) -> Error {
    let (message, etype, code) = match error {
        Some(raw) if json::kind(raw) == Kind::String => {
            (serde_json::from_str::<String>(raw.get()).unwrap_or_default(), String::new(), String::new())
        }
        Some(raw) => {
            let w = serde_json::from_str::<ErrorWire<'_>>(raw.get()).unwrap_or_default();
            // `code` is a string at OpenAI but a number at some compatible servers.
            let code = w.code.map(|c| c.get().trim_matches('"').to_owned()).unwrap_or_default();
            (
                w.message.map(|m| m.0.into_owned()).unwrap_or_default(),
                w.kind.map(|k| k.0.into_owned()).unwrap_or_default(),
                code,
            )
        }
        None => (super::error_snippet(body), String::new(), String::new()),
    };
    let kind = if etype == "insufficient_quota" || code == "insufficient_quota" {
        ErrorKind::QuotaExceeded
    } else if code == "rate_limit_exceeded" || etype == "rate_limit_error" {
        ErrorKind::RateLimited
    } else if code == "model_not_found" {
        ErrorKind::ModelNotFound
    } else if let Some(status) = status {
        match ErrorKind::from_status(status) {
            // A 404 without `model_not_found` is more often a wrong base URL than an unknown model.
            ErrorKind::ModelNotFound => ErrorKind::Upstream,
            kind => kind,
        }
    } else {
        match etype.as_str() {
            "invalid_request_error" => ErrorKind::InvalidRequest,
            "authentication_error" => ErrorKind::Authentication,
            "permission_error" => ErrorKind::Permission,
            _ => ErrorKind::Upstream,
        }
    };
    upstream_error(kind, message, status)
}

/// An error after the stream started, as the data of one SSE event: OpenAI's error body.
pub fn error_event(err: &Error) -> OutEvent {
    OutEvent { event: None, data: String::from_utf8(err.openai_body()).expect("serde_json writes UTF-8") }
}

// =========================================================================================================
// Streams: upstream chunks → IR events

#[derive(Deserialize)]
struct ChunkWire<'a> {
    #[serde(borrow, default)]
    id: Option<Str<'a>>,
    #[serde(borrow, default)]
    model: Option<Str<'a>>,
    #[serde(borrow, default)]
    choices: Option<Vec<ChoiceWire<'a>>>,
    #[serde(default)]
    usage: Option<UsageWire>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ChoiceWire<'a> {
    #[serde(default)]
    index: u32,
    #[serde(borrow, default)]
    delta: Option<DeltaWire<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Str<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DeltaWire<'a> {
    #[serde(borrow)]
    content: Option<Str<'a>>,
    #[serde(borrow)]
    reasoning_content: Option<Str<'a>>,
    #[serde(borrow)]
    reasoning: Option<Str<'a>>,
    #[serde(borrow)]
    refusal: Option<Str<'a>>,
    #[serde(borrow)]
    tool_calls: Option<Vec<ToolCallWire<'a>>>,
}

#[derive(Deserialize)]
struct ToolCallWire<'a> {
    #[serde(default)]
    index: Option<usize>,
    #[serde(borrow, default)]
    id: Option<Str<'a>>,
    #[serde(borrow, default)]
    function: Option<FunctionWire<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct FunctionWire<'a> {
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    arguments: Option<Str<'a>>,
}

/// The block open in the IR stream being produced.
#[derive(Debug)]
enum Open {
    Text(usize),
    Thinking(usize),
    /// `key` is the upstream's tool-call `index`.
    Tool {
        index: usize,
        key: usize,
        id: String,
    },
}

impl Open {
    fn index(&self) -> usize {
        match self {
            Open::Text(i) | Open::Thinking(i) | Open::Tool { index: i, .. } => *i,
        }
    }
}

/// Turns an upstream's `chat.completion.chunk` stream into block events.
///
/// A block opens when the kind of delta changes (reasoning, text, or a tool call with a new `index`).
/// Reasoning and text blocks close when another block opens. Tool-call blocks stay open until the choice
/// finishes (or text or reasoning follows them): the format has no end marker per call, so parallel calls
/// are known complete only at `finish_reason`, and a client dialect that reports each call done (the
/// Responses API) must say so then, as the original proxy does. `Finish` waits for the usage
/// chunk that follows `finish_reason` (or `[DONE]`, or the end of the stream) so that it carries the final
/// counts. A stream that ends before any `finish_reason` or `[DONE]` was cut off: `finish` reports it.
/// Arguments resumed for a tool call after another one started cannot be expressed as blocks and are an
/// error; no server is known to interleave calls.
#[derive(Debug, Default)]
pub struct StreamParser {
    started: bool,
    next_index: usize,
    open: Option<Open>,
    /// Block indexes of earlier tool calls, still open (see the type's docs).
    open_tools: Vec<usize>,
    /// Upstream keys and ids of the tool calls seen so far.
    tools: Vec<(usize, String)>,
    stop_reason: Option<StopReason>,
    saw_finish_reason: bool,
    usage: Option<Usage>,
    finished: bool,
}

impl StreamParser {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), Error> {
        let data = ev.data.trim();
        if self.finished || data.is_empty() {
            return Ok(());
        }
        if data == "[DONE]" {
            return self.emit_finish(out);
        }
        let chunk: ChunkWire<'_> = serde_json::from_str(data)
            .map_err(|e| Error::upstream(None, format!("the upstream sent an unreadable stream chunk: {e}")))?;
        if chunk.error.is_some() || ev.event.as_deref() == Some("error") {
            return Err(error_from_wire(None, chunk.error, data.as_bytes()));
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: chunk.id.map(|s| s.0.into_owned()).unwrap_or_default(),
                model: chunk.model.map(|s| s.0.into_owned()).unwrap_or_default(),
                usage: Usage::default(),
            });
        }
        for choice in chunk.choices.into_iter().flatten().filter(|c| c.index == 0) {
            if let Some(delta) = choice.delta {
                self.delta(delta, out)?;
            }
            // Some servers send `"finish_reason": ""` on every chunk until the real one.
            if let Some(reason) = choice.finish_reason.filter(|r| !r.0.is_empty()) {
                self.close(out);
                self.saw_finish_reason = true;
                self.stop_reason = Some(parse_finish_reason(&reason.0));
            }
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.into());
            if self.saw_finish_reason {
                self.emit_finish(out)?;
            }
        }
        Ok(())
    }

    /// Ends the stream: emits `Finish` if `finish_reason` came but no usage after it, and reports a stream
    /// cut off before any `finish_reason` or `[DONE]`.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), Error> {
        if self.finished {
            return Ok(());
        }
        if !self.saw_finish_reason {
            return Err(Error::upstream(
                None,
                "the upstream stream ended early, before a finish_reason or [DONE]; the answer is incomplete",
            ));
        }
        self.emit_finish(out)
    }

    fn delta(&mut self, d: DeltaWire<'_>, out: &mut Vec<StreamEvent>) -> Result<(), Error> {
        if let Some(text) = d.reasoning_content.or(d.reasoning).filter(|t| !t.0.is_empty()) {
            let index = match self.open {
                Some(Open::Thinking(i)) => i,
                _ => self.open_block(Open::Thinking, BlockKind::Thinking, out),
            };
            out.push(StreamEvent::ThinkingDelta { index, text: text.0.into_owned() });
        }
        for text in [d.content, d.refusal].into_iter().flatten().filter(|t| !t.0.is_empty()) {
            let index = match self.open {
                Some(Open::Text(i)) => i,
                _ => self.open_block(Open::Text, BlockKind::Text, out),
            };
            out.push(StreamEvent::TextDelta { index, text: text.0.into_owned() });
        }
        for call in d.tool_calls.into_iter().flatten() {
            self.tool_call(call, out)?;
        }
        Ok(())
    }

    fn open_block(&mut self, open: fn(usize) -> Open, block: BlockKind, out: &mut Vec<StreamEvent>) -> usize {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some(open(index));
        out.push(StreamEvent::BlockStart { index, block });
        index
    }

    fn tool_call(&mut self, call: ToolCallWire<'_>, out: &mut Vec<StreamEvent>) -> Result<(), Error> {
        let id = call.id.map(|s| s.0).filter(|s| !s.is_empty());
        let function = call.function.unwrap_or_default();
        let args = function.arguments.map(|s| s.0).unwrap_or_default();
        let open_tool = match &self.open {
            Some(Open::Tool { key, id, .. }) => Some((*key, id.as_str())),
            _ => None,
        };
        // Servers that leave out `index` number calls by their ids instead.
        let key = call.index.unwrap_or_else(|| match (open_tool, &id) {
            (Some((key, open_id)), Some(id)) if open_id != id.as_ref() => key + 1,
            (Some((key, _)), _) => key,
            (None, _) => self.tools.len(),
        });
        let same_call = |k: usize, known_id: &str| k == key && id.as_deref().is_none_or(|id| id == known_id);
        if let Some((k, open_id)) = open_tool
            && same_call(k, open_id)
        {
            let index = self.open.as_ref().map_or(0, Open::index);
            if !args.is_empty() {
                out.push(StreamEvent::ToolArgsDelta { index, json: args.into_owned() });
            }
            return Ok(());
        }
        if self.tools.iter().any(|(k, known_id)| same_call(*k, known_id)) {
            if args.is_empty() {
                return Ok(());
            }
            return Err(Error::upstream(
                None,
                format!("the upstream resumed the arguments of tool call {key} after another call had started"),
            ));
        }
        match self.open.take() {
            Some(Open::Tool { index, .. }) => self.open_tools.push(index),
            other => {
                self.open = other;
                self.close(out);
            }
        }
        let index = self.next_index;
        self.next_index += 1;
        let id = id.map_or_else(|| format!("call_{index}"), Cow::into_owned);
        let name = function.name.map(|s| s.0.into_owned()).unwrap_or_default();
        out.push(StreamEvent::BlockStart { index, block: BlockKind::ToolUse { id: id.clone(), name } });
        if !args.is_empty() {
            out.push(StreamEvent::ToolArgsDelta { index, json: args.into_owned() });
        }
        self.tools.push((key, id.clone()));
        self.open = Some(Open::Tool { index, key, id });
        Ok(())
    }

    /// Closes every open block, in the order they opened.
    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        out.extend(self.open_tools.drain(..).map(|index| StreamEvent::BlockStop { index }));
        if let Some(open) = self.open.take() {
            out.push(StreamEvent::BlockStop { index: open.index() });
        }
    }

    /// Emits `Finish` once. Without a `finish_reason` (some servers send only `[DONE]`) the reason is
    /// inferred from the content: tool use if any tool was called, else end of turn.
    fn emit_finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), Error> {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start { id: String::new(), model: String::new(), usage: Usage::default() });
        }
        self.close(out);
        let stop_reason = self.stop_reason.take().unwrap_or(if self.tools.is_empty() {
            StopReason::EndTurn
        } else {
            StopReason::ToolUse
        });
        out.push(StreamEvent::Finish { stop_reason: Some(stop_reason), usage: self.usage.unwrap_or_default() });
        self.finished = true;
        self.saw_finish_reason = true;
        Ok(())
    }
}

// =========================================================================================================
// Streams: IR events → client chunks

#[derive(Serialize)]
struct ChunkOut<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChunkChoiceOut<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageOut>,
}

#[derive(Serialize)]
struct ChunkChoiceOut<'a> {
    index: u32,
    delta: DeltaOut<'a>,
    finish_reason: Option<&'a str>,
}

#[derive(Serialize, Default)]
struct DeltaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDeltaOut<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallDeltaOut<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDeltaOut<'a>,
}

#[derive(Serialize)]
struct FunctionDeltaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

/// Writes IR stream events as `chat.completion.chunk` events: a role-only first delta, `content` for text,
/// `reasoning_content` for thinking, `tool_calls` fragments (id, type and name in the first, numbered from
/// 0 over the tool blocks), a final chunk with an empty delta and the `finish_reason`, the usage chunk
/// (`choices: []`) when the client asked for it, and `[DONE]` from [`StreamEncoder::finish`].
///
/// Any event sequence yields a valid stream: content before `Start` starts the stream, events after
/// `Finish` and argument fragments of unknown tool blocks are dropped.
#[derive(Debug)]
pub struct StreamEncoder {
    model: String,
    include_usage: bool,
    created: u64,
    id: String,
    started: bool,
    /// IR block index → `tool_calls` index.
    tools: Vec<(usize, u32)>,
    finished: bool,
    done: bool,
}

impl StreamEncoder {
    /// [`StreamEncoder::new`] with a given `created` time, for reproducible output.
    pub fn with_created(model: &str, include_usage: bool, created: u64) -> Self {
        StreamEncoder {
            model: model.to_owned(),
            include_usage,
            created,
            id: String::new(),
            started: false,
            tools: Vec::new(),
            finished: false,
            done: false,
        }
    }

    pub fn push(&mut self, ev: &StreamEvent, out: &mut Vec<OutEvent>) {
        if self.finished {
            return;
        }
        if let StreamEvent::Start { id, .. } = ev {
            self.start(id, out);
            return;
        }
        if matches!(ev, StreamEvent::Ping) {
            return;
        }
        self.start("", out);
        match ev {
            StreamEvent::BlockStart { index, block: BlockKind::ToolUse { id, name } } => {
                let tool_index = self.tools.len() as u32;
                self.tools.push((*index, tool_index));
                let call = ToolCallDeltaOut {
                    index: tool_index,
                    id: Some(id),
                    kind: Some("function"),
                    function: FunctionDeltaOut { name: Some(name), arguments: "" },
                };
                self.delta(DeltaOut { tool_calls: Some([call]), ..DeltaOut::default() }, out);
            }
            StreamEvent::TextDelta { text, .. } if !text.is_empty() => {
                self.delta(DeltaOut { content: Some(text), ..DeltaOut::default() }, out);
            }
            StreamEvent::ThinkingDelta { text, .. } if !text.is_empty() => {
                self.delta(DeltaOut { reasoning_content: Some(text), ..DeltaOut::default() }, out);
            }
            StreamEvent::ToolArgsDelta { index, json } if !json.is_empty() => {
                // The latest tool block with this index: indexes only repeat in malformed sequences.
                if let Some(&(_, tool_index)) = self.tools.iter().rev().find(|(i, _)| i == index) {
                    let call = ToolCallDeltaOut {
                        index: tool_index,
                        id: None,
                        kind: None,
                        function: FunctionDeltaOut { name: None, arguments: json },
                    };
                    self.delta(DeltaOut { tool_calls: Some([call]), ..DeltaOut::default() }, out);
                }
            }
            StreamEvent::Finish { stop_reason, usage } => {
                self.finished = true;
                let choice = ChunkChoiceOut {
                    index: 0,
                    delta: DeltaOut::default(),
                    finish_reason: Some(finish_reason(stop_reason.as_ref())),
                };
                self.chunk(&[choice], None, out);
                if self.include_usage {
                    self.chunk(&[], Some(UsageOut::from(usage)), out);
                }
            }
            _ => {}
        }
    }

    /// Ends the stream with `data: [DONE]`.
    pub fn finish(&mut self, out: &mut Vec<OutEvent>) {
        if !self.done {
            self.done = true;
            self.finished = true;
            out.push(OutEvent { event: None, data: "[DONE]".to_owned() });
        }
    }

    fn start(&mut self, upstream_id: &str, out: &mut Vec<OutEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        self.id = client_id(upstream_id, "chatcmpl-").into_owned();
        self.delta(DeltaOut { role: Some("assistant"), content: Some(""), ..DeltaOut::default() }, out);
    }

    fn delta(&self, delta: DeltaOut<'_>, out: &mut Vec<OutEvent>) {
        self.chunk(&[ChunkChoiceOut { index: 0, delta, finish_reason: None }], None, out);
    }

    fn chunk(&self, choices: &[ChunkChoiceOut<'_>], usage: Option<UsageOut>, out: &mut Vec<OutEvent>) {
        let chunk = ChunkOut {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage,
        };
        out.push(OutEvent { event: None, data: super::to_json_string(&chunk) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::dialects::testing::{self, datas, invalid_message, parse_stream, sse};
    use crate::types::ImageSource;

    fn parse(v: Value) -> Result<ChatRequest, Error> {
        parse_request(v.to_string().as_bytes())
    }

    fn err(v: Value) -> String {
        invalid_message(parse(v))
    }

    fn encode(req: &ChatRequest) -> Value {
        serde_json::from_slice(&encode_request(req)).unwrap()
    }

    fn chunk(delta: Value, finish: Option<&str>) -> String {
        json!({"id":"c1","object":"chat.completion.chunk","created":1,"model":"m",
               "choices":[{"index":0,"delta":delta,"finish_reason":finish}]})
        .to_string()
    }

    fn run(frames: &[String]) -> Result<Vec<StreamEvent>, Error> {
        let events: Vec<_> = frames.iter().map(|f| sse(None, f.as_str())).collect();
        parse_stream(Dialect::OpenAiChat.stream_parser(), &events)
    }

    // ---------------------------------------------------------------- parse_request

    #[test]
    fn parses_scalars_and_keeps_unmodelled_fields() {
        let r = parse(json!({
            "model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}],
            "max_completion_tokens": 100, "max_tokens": 5, "temperature": 0.2, "top_p": 0.9, "top_k": 40,
            "stop": "END", "stream": true, "stream_options": {"include_usage": true},
            "reasoning_effort": "low", "parallel_tool_calls": false, "user": "u1",
            "seed": 7, "response_format": {"type": "json_object"}, "n": null
        }))
        .unwrap();
        assert_eq!(r.model, "gpt-4o");
        assert_eq!(r.max_tokens, Some(100));
        assert!(r.max_completion_tokens);
        assert_eq!((r.temperature, r.top_p, r.top_k), (Some(0.2), Some(0.9), Some(40)));
        assert_eq!(r.stop, vec!["END"]);
        assert!(r.stream && r.include_usage);
        assert_eq!(r.reasoning, Some(Reasoning { effort: Some("low".into()), ..Reasoning::default() }));
        assert_eq!(r.parallel_tool_calls, Some(false));
        assert_eq!(r.user.as_deref(), Some("u1"));
        assert_eq!(r.source, Some(Dialect::OpenAiChat));
        assert_eq!(Value::Object(r.extra), json!({"seed": 7, "response_format": {"type": "json_object"}}));
        assert_eq!(r.messages, vec![Message::user(vec![ContentPart::text("hi")])]);
    }

    #[test]
    fn system_and_developer_messages_become_system_parts() {
        let r = parse(json!({"model": "m", "messages": [
            {"role": "system", "content": "a"},
            {"role": "user", "content": "q"},
            {"role": "developer", "content": [{"type": "text", "text": "b", "cache_control": {"type": "ephemeral"}}]}
        ]}))
        .unwrap();
        assert_eq!(
            r.system,
            vec![
                ContentPart::text("a"),
                ContentPart::Text { text: "b".into(), cache_control: Some(crate::types::CacheControl::ephemeral()) }
            ]
        );
        assert_eq!(r.messages.len(), 1);
    }

    #[test]
    fn tool_messages_and_the_following_user_message_form_one_user_turn() {
        let r = parse(json!({"model": "m", "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "c2", "type": "function", "function": {"name": "w", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "rain"}]},
            {"role": "user", "content": "thanks"},
            {"role": "user", "content": "bye"}
        ]}))
        .unwrap();
        assert_eq!(r.messages.len(), 4);
        assert_eq!(
            r.messages[1].content,
            vec![
                ContentPart::tool_use("c1", "w", json!({"city": "Paris"})),
                ContentPart::tool_use("c2", "w", json!({}))
            ]
        );
        assert_eq!(
            r.messages[2].content,
            vec![
                ContentPart::tool_result("c1", vec![ContentPart::text("sunny")], false),
                ContentPart::tool_result("c2", vec![ContentPart::text("rain")], false),
                ContentPart::text("thanks"),
            ]
        );
        assert_eq!(r.messages[3], Message::user(vec![ContentPart::text("bye")]));
    }

    #[test]
    fn assistant_reasoning_and_refusal_are_kept() {
        let r = parse(json!({"model": "m", "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "reasoning_content": "hmm", "content": [{"type": "text", "text": "a"}, {"type": "refusal", "refusal": "no"}]}
        ]}))
        .unwrap();
        assert_eq!(
            r.messages[1].content,
            vec![
                ContentPart::Thinking { text: "hmm".into(), signature: None },
                ContentPart::text("a"),
                ContentPart::text("no")
            ]
        );
    }

    #[test]
    fn image_urls_map_to_sources() {
        let r = parse(json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://x/y.jpg"}},
            {"type": "input_audio", "input_audio": {"data": "..", "format": "wav"}}
        ]}]}))
        .unwrap();
        let c = &r.messages[0].content;
        assert_eq!(
            c[0],
            ContentPart::Image {
                source: ImageSource::Base64 { media_type: "image/png".into(), data: "AAAA".into() },
                detail: Some("high".into()),
                cache_control: None
            }
        );
        assert_eq!(
            c[1],
            ContentPart::Image {
                source: ImageSource::Url { url: "https://x/y.jpg".into() },
                detail: None,
                cache_control: None
            }
        );
        assert!(matches!(&c[2], ContentPart::Opaque(Opaque { dialect: Dialect::OpenAiChat, .. })));
    }

    #[test]
    fn tools_and_tool_choice() {
        let r = parse(json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": true}},
                      {"type": "function", "function": {"name": "g"}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}}}))
        .unwrap();
        assert_eq!(r.tools[0].name, "f");
        assert_eq!(r.tools[0].description.as_deref(), Some("d"));
        assert_eq!(r.tools[0].parameters, json!({"type": "object"}));
        assert_eq!(r.tools[0].strict, Some(true));
        assert_eq!(r.tools[1].parameters, Value::Null);
        assert_eq!(r.tool_choice, Some(ToolChoice::Tool("f".into())));
        for (choice, want) in
            [("none", ToolChoice::None), ("auto", ToolChoice::Auto), ("required", ToolChoice::Required)]
        {
            let r = parse(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": choice}))
                .unwrap();
            assert_eq!(r.tool_choice, Some(want));
        }
    }

    #[test]
    fn validation_errors_name_the_field() {
        let user = json!([{"role": "user", "content": "x"}]);
        assert_eq!(err(json!({"messages": user})), "model: missing; expected a string");
        assert_eq!(err(json!({"model": 5, "messages": user})), "model: expected a string");
        assert_eq!(err(json!({"model": "", "messages": user})), "model: must not be empty");
        assert_eq!(err(json!({"model": "m"})), "messages: missing; expected a non-empty array of messages");
        assert_eq!(err(json!({"model": "m", "messages": []})), "messages: expected a non-empty array of messages");
        assert_eq!(err(json!({"model": "m", "messages": {}})), "messages: expected a non-empty array of messages");
        assert_eq!(err(json!({"model": "m", "messages": [1]})), "messages[0]: expected a JSON object");
        assert_eq!(
            err(json!({"model": "m", "messages": [{"content": "x"}]})),
            "messages[0].role: missing; expected a string"
        );
        assert_eq!(
            err(json!({"model": "m", "messages": [{"role": "bot", "content": "x"}]})),
            "messages[0].role: unknown role 'bot'; expected system, developer, user, assistant or tool"
        );
        assert_eq!(
            err(
                json!({"model": "m", "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "user", "content": 5}]})
            ),
            "messages[2].content: expected a string or an array of content parts"
        );
        assert_eq!(
            err(json!({"model": "m", "messages": [{"role": "assistant", "content": 5}]})),
            "messages[0].content: expected a string, an array of content parts or null"
        );
        let e = err(
            json!({"model": "m", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]}),
        );
        assert!(
            e.starts_with("messages[1].tool_calls[0].function.arguments: tool call arguments are not valid JSON"),
            "{e}"
        );
        assert_eq!(
            err(json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]})),
            "messages[0].tool_call_id: missing; expected a string"
        );
        assert_eq!(
            err(
                json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]})
            ),
            "messages[0].content[0].image_url.url: missing; expected a string"
        );
        assert_eq!(
            err(json!({"model": "m", "messages": [{"role": "user", "content": [{"text": "x"}]}]})),
            "messages[0].content[0].type: missing; expected a string naming the type"
        );
        assert_eq!(
            err(
                json!({"model": "m", "messages": [{"role": "system", "content": [{"type": "image_url", "image_url": "https://x"}]}]})
            ),
            "messages[0].content: system messages may contain only text parts"
        );
        assert_eq!(
            err(json!({"model": "m", "messages": [{"role": "function", "content": "x"}]})),
            "messages[0].role: the legacy 'function' role is not supported; use 'tool' messages"
        );
        assert!(
            err(json!({"model": "m", "messages": user, "tool_choice": "any"}))
                .starts_with("tool_choice: expected \"none\"")
        );
        assert_eq!(
            err(json!({"model": "m", "messages": user, "max_tokens": -1})),
            "max_tokens: expected a non-negative integer below 2^32"
        );
        assert_eq!(
            err(json!({"model": "m", "messages": user, "stop": 1})),
            "stop: expected a string or an array of strings"
        );
        assert_eq!(
            err(json!({"model": "m", "messages": user, "tools": [{"type": "function"}]})),
            "tools[0].function: missing; expected an object with a name"
        );
        assert_eq!(err(json!({"model": "m", "messages": user, "stream": "yes"})), "stream: expected true or false");
        assert!(parse_request(b"{not json").unwrap_err().message().starts_with("body is not valid JSON"));
    }

    // ---------------------------------------------------------------- encode_request

    fn foreign_request() -> ChatRequest {
        ChatRequest {
            model: "gpt-4o".into(),
            system: vec![ContentPart::text("be brief")],
            messages: vec![
                Message::user(vec![
                    ContentPart::text("look"),
                    ContentPart::Image {
                        source: ImageSource::Base64 { media_type: "image/png".into(), data: "AAAA".into() },
                        detail: None,
                        cache_control: None,
                    },
                ]),
                Message::assistant(vec![
                    ContentPart::Thinking { text: "signed".into(), signature: Some("sig".into()) },
                    ContentPart::RedactedThinking { data: "xx".into() },
                    ContentPart::text("calling"),
                    ContentPart::tool_use("t1", "f", json!({"a": 1})),
                ]),
                Message::user(vec![
                    ContentPart::tool_result(
                        "t1",
                        vec![
                            ContentPart::text("r1"),
                            ContentPart::Image {
                                source: ImageSource::Url { url: "https://i".into() },
                                detail: None,
                                cache_control: None,
                            },
                        ],
                        true,
                    ),
                    ContentPart::text("go on"),
                ]),
            ],
            tools: vec![Tool { name: "f".into(), parameters: json!({"type": "object"}), ..Tool::default() }],
            tool_choice: Some(ToolChoice::Required),
            max_tokens: Some(1000),
            top_k: Some(5),
            stream: true,
            reasoning: Some(Reasoning { budget_tokens: Some(10000), ..Reasoning::default() }),
            parallel_tool_calls: Some(false),
            user: Some("u".into()),
            source: Some(Dialect::Anthropic),
            extra: [("service_tier".to_owned(), json!("auto"))].into_iter().collect(),
            ..ChatRequest::default()
        }
    }

    #[test]
    fn encodes_a_foreign_request_for_an_openai_upstream() {
        let v = encode(&foreign_request());
        assert_eq!(
            v,
            json!({
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                    {"role": "assistant", "content": "calling", "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
                    {"role": "tool", "tool_call_id": "t1", "content": "r1"},
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://i"}}, {"type": "text", "text": "go on"}]}
                ],
                "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
                "tool_choice": "required",
                "parallel_tool_calls": false,
                "max_tokens": 1000,
                "reasoning_effort": "medium",
                "user": "u",
                "stream": true,
                "stream_options": {"include_usage": true}
            })
        );
    }

    #[test]
    fn unsigned_thinking_goes_back_as_reasoning_content() {
        let mut r = foreign_request();
        r.messages[1].content[0] = ContentPart::Thinking { text: "plain".into(), signature: None };
        assert_eq!(encode(&r)["messages"][2]["reasoning_content"], "plain");
    }

    #[test]
    fn tool_options_need_tools_and_same_dialect_fields_stay_home() {
        let mut r = foreign_request();
        r.tools.clear();
        r.source = Some(Dialect::OpenAiChat);
        r.max_completion_tokens = true;
        r.reasoning = Some(Reasoning { effort: Some("max".into()), ..Reasoning::default() });
        let v = encode(&r);
        assert!(v.get("tool_choice").is_none() && v.get("parallel_tool_calls").is_none() && v.get("tools").is_none());
        assert_eq!(v["top_k"], 5);
        assert_eq!(v["service_tier"], "auto");
        assert_eq!(v["max_completion_tokens"], 1000);
        assert!(v.get("max_tokens").is_none());
        assert_eq!(v["reasoning_effort"], "high");
        r.stream = false;
        let v = encode(&r);
        assert_eq!(v["stream"], false);
        assert!(v.get("stream_options").is_none());
    }

    #[test]
    fn foreign_builtin_tools_and_parts_are_left_out() {
        let mut r = foreign_request();
        r.tools.push(Tool {
            name: "web_search".into(),
            builtin: Some(Opaque {
                dialect: Dialect::Anthropic,
                value: json!({"type": "web_search_20250305", "name": "web_search"}),
            }),
            ..Tool::default()
        });
        r.messages[0]
            .content
            .push(ContentPart::Opaque(Opaque { dialect: Dialect::Anthropic, value: json!({"type": "document"}) }));
        let v = encode(&r);
        assert_eq!(v["tools"].as_array().unwrap().len(), 1);
        assert_eq!(v["messages"][1]["content"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn openai_requests_round_trip() {
        let body = json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "sys"},
                {"role": "user", "content": [{"type": "text", "text": "q"}, {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j", "detail": "low"}}]},
                {"role": "assistant", "content": null, "reasoning_content": "r", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":[1,2]}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"},
                {"role": "user", "content": "more"},
                {"role": "assistant", "content": "done"}
            ],
            "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object", "properties": {}}, "strict": false}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "parallel_tool_calls": true,
            "max_tokens": 50,
            "temperature": 0.5,
            "top_p": 1.0,
            "top_k": 3,
            "stop": ["a", "b"],
            "reasoning_effort": "low",
            "user": "me",
            "stream": true,
            "stream_options": {"include_usage": true},
            "seed": 1,
            "logprobs": true
        });
        let req = parse(body.clone()).unwrap();
        assert_eq!(encode(&req), body);
    }

    // ---------------------------------------------------------------- responses

    #[test]
    fn parses_a_completion_with_reasoning_tools_and_cached_usage() {
        let body = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi", "reasoning_content": "think",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                               {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{bad"}}]},
                "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
                      "prompt_tokens_details": {"cached_tokens": 5}, "completion_tokens_details": {"reasoning_tokens": 3}}});
        let r = parse_response(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.id, "chatcmpl-1");
        assert_eq!(r.model, "gpt-4o");
        assert_eq!(
            r.content,
            vec![
                ContentPart::Thinking { text: "think".into(), signature: None },
                ContentPart::text("Hi"),
                ContentPart::tool_use("c1", "f", json!({"a": 1})),
                ContentPart::tool_use("c2", "g", json!("{bad")),
            ]
        );
        assert_eq!(r.stop_reason, Some(StopReason::ToolUse));
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 6,
                output_tokens: 7,
                cache_read_tokens: 5,
                cache_creation_tokens: 0,
                reasoning_tokens: 3
            }
        );
        // Arguments that were not JSON are written back as they came.
        let out: Value = serde_json::from_slice(&encode_response_at(&r, "x", 9)).unwrap();
        assert_eq!(out["choices"][0]["message"]["tool_calls"][1]["function"]["arguments"], "{bad");
    }

    #[test]
    fn finish_reasons_map_both_ways() {
        for (wire, ir) in [
            ("stop", StopReason::EndTurn),
            ("length", StopReason::MaxTokens),
            ("tool_calls", StopReason::ToolUse),
            ("content_filter", StopReason::ContentFilter),
            ("eos", StopReason::Other("eos".into())),
        ] {
            assert_eq!(parse_finish_reason(wire), ir);
            assert_eq!(finish_reason(Some(&ir)), wire);
        }
        assert_eq!(parse_finish_reason("function_call"), StopReason::ToolUse);
        assert_eq!(finish_reason(Some(&StopReason::StopSequence)), "stop");
        assert_eq!(finish_reason(Some(&StopReason::Refusal)), "content_filter");
        assert_eq!(finish_reason(Some(&StopReason::PauseTurn)), "stop");
        assert_eq!(finish_reason(None), "stop");
    }

    #[test]
    fn response_errors() {
        let e = parse_response(br#"{"choices":[]}"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Upstream);
        let e = parse_response(br#"{"error":{"message":"quota","type":"insufficient_quota"}}"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
        let e = parse_response(b"<html>").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Upstream);
        assert!(e.message().starts_with("the upstream sent an unreadable chat completion: body is not valid JSON"));
    }

    #[test]
    fn encodes_a_completion_with_usage_sums() {
        let resp = ChatResponse {
            id: "msg_1".into(),
            model: "claude".into(),
            content: vec![ContentPart::tool_use("t", "f", json!({}))],
            stop_reason: Some(StopReason::ToolUse),
            usage: Usage {
                input_tokens: 11,
                output_tokens: 7,
                cache_read_tokens: 5,
                cache_creation_tokens: 3,
                reasoning_tokens: 0,
            },
        };
        let v: Value = serde_json::from_slice(&encode_response_at(&resp, "asked", 42)).unwrap();
        assert_eq!(
            v,
            json!({"id": "chatcmpl-msg_1", "object": "chat.completion", "created": 42, "model": "asked",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
                    "tool_calls": [{"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                    "logprobs": null, "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": 19, "completion_tokens": 7, "total_tokens": 26,
                    "prompt_tokens_details": {"cached_tokens": 5, "cache_write_tokens": 3},
                    "completion_tokens_details": {"reasoning_tokens": 0}}})
        );
        // cache_write_tokens is read back, so the split survives a trip through this dialect.
        let back = parse_response(&encode_response_at(&resp, "asked", 42)).unwrap();
        assert_eq!(back.usage, resp.usage);
    }

    // ---------------------------------------------------------------- errors

    #[test]
    fn upstream_errors_are_classified() {
        let quota = br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        let e = parse_error(429, quota);
        assert_eq!(
            (e.kind(), e.status(), e.message()),
            (ErrorKind::QuotaExceeded, Some(429), "You exceeded your current quota")
        );
        let rate = br#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        assert_eq!(parse_error(429, rate).kind(), ErrorKind::RateLimited);
        let key = br#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        assert_eq!(parse_error(401, key).kind(), ErrorKind::Authentication);
        assert_eq!(
            parse_error(404, br#"{"error":{"message":"no","code":"model_not_found"}}"#).kind(),
            ErrorKind::ModelNotFound
        );
        assert_eq!(parse_error(404, b"Not Found").kind(), ErrorKind::Upstream);
        assert_eq!(parse_error(400, br#"{"error":{"message":"bad","code":400}}"#).kind(), ErrorKind::InvalidRequest);
        let e = parse_error(503, b"  upstream overloaded\n");
        assert_eq!((e.kind(), e.message()), (ErrorKind::Upstream, "upstream overloaded"));
        assert!(e.is_retryable());
        let e = parse_error(500, b"");
        assert_eq!(e.message(), "the upstream answered HTTP 500 without an error message");
        assert_eq!(parse_error(403, br#"{"error":"forbidden"}"#).message(), "forbidden");
    }

    #[test]
    fn error_event_is_the_openai_error_body() {
        let ev = error_event(&Error::upstream(None, "boom"));
        assert_eq!(ev.event, None);
        let v: Value = serde_json::from_str(&ev.data).unwrap();
        assert_eq!(v["error"]["message"], "boom");
    }

    // ---------------------------------------------------------------- stream parser

    #[test]
    fn parses_the_reference_tool_call_stream() {
        let frames = [
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"f","arguments":""}}]},"finish_reason":null}]}"#.to_owned(),
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":1}"}}]},"finish_reason":null}]}"#.to_owned(),
            r#"{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#.to_owned(),
            "[DONE]".to_owned(),
        ];
        assert_eq!(
            run(&frames).unwrap(),
            vec![
                StreamEvent::Start { id: "c1".into(), model: "m".into(), usage: Usage::default() },
                StreamEvent::BlockStart {
                    index: 0,
                    block: BlockKind::ToolUse { id: "call_a".into(), name: "f".into() }
                },
                StreamEvent::ToolArgsDelta { index: 0, json: "{\"a\":1}".into() },
                StreamEvent::BlockStop { index: 0 },
                StreamEvent::Finish { stop_reason: Some(StopReason::ToolUse), usage: Usage::default() },
            ]
        );
    }

    #[test]
    fn blocks_follow_the_kind_of_delta_and_finish_waits_for_usage() {
        let frames = [
            chunk(json!({"role": "assistant", "content": ""}), None),
            chunk(json!({"reasoning_content": "Let me "}), None),
            chunk(json!({"reasoning": "think."}), None),
            chunk(json!({"content": "Hi"}), None),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}},
                                        {"index": 1, "id": "b", "function": {"name": "g", "arguments": "{\"x\""}}]}),
                None,
            ),
            chunk(json!({"tool_calls": [{"index": 1, "function": {"arguments": ":1}"}}]}), None),
            chunk(json!({}), Some("tool_calls")),
            json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 4}}).to_string(),
            "[DONE]".to_owned(),
        ];
        let evs = run(&frames).unwrap();
        use StreamEvent::*;
        assert_eq!(
            evs[1..],
            [
                BlockStart { index: 0, block: BlockKind::Thinking },
                ThinkingDelta { index: 0, text: "Let me ".into() },
                ThinkingDelta { index: 0, text: "think.".into() },
                BlockStop { index: 0 },
                BlockStart { index: 1, block: BlockKind::Text },
                TextDelta { index: 1, text: "Hi".into() },
                BlockStop { index: 1 },
                BlockStart { index: 2, block: BlockKind::ToolUse { id: "a".into(), name: "f".into() } },
                ToolArgsDelta { index: 2, json: "{}".into() },
                // Parallel calls are all complete only when the choice finishes.
                BlockStart { index: 3, block: BlockKind::ToolUse { id: "b".into(), name: "g".into() } },
                ToolArgsDelta { index: 3, json: "{\"x\"".into() },
                ToolArgsDelta { index: 3, json: ":1}".into() },
                BlockStop { index: 2 },
                BlockStop { index: 3 },
                Finish {
                    stop_reason: Some(StopReason::ToolUse),
                    usage: Usage { input_tokens: 9, output_tokens: 4, ..Usage::default() }
                },
            ]
        );
    }

    #[test]
    fn usage_chunks_with_null_or_missing_choices_and_usage_on_the_finish_chunk() {
        let usage = json!({"prompt_tokens": 3, "completion_tokens": 2});
        for last in [json!({"id": "c", "choices": null, "usage": usage}), json!({"id": "c", "usage": usage})] {
            let evs =
                run(&[chunk(json!({"content": "a"}), None), chunk(json!({}), Some("stop")), last.to_string()]).unwrap();
            assert_eq!(
                evs.last(),
                Some(&StreamEvent::Finish {
                    stop_reason: Some(StopReason::EndTurn),
                    usage: Usage { input_tokens: 3, output_tokens: 2, ..Usage::default() }
                })
            );
        }
        let mut with_usage: Value = serde_json::from_str(&chunk(json!({}), Some("length"))).unwrap();
        with_usage["usage"] = usage;
        let mut p = StreamParser::new();
        let mut out = Vec::new();
        p.push(&sse(None, with_usage.to_string()), &mut out).unwrap();
        assert!(matches!(out.last(), Some(StreamEvent::Finish { stop_reason: Some(StopReason::MaxTokens), .. })));
        // Nothing after Finish, not even a second [DONE].
        let n = out.len();
        p.push(&sse(None, "[DONE]"), &mut out).unwrap();
        p.finish(&mut out).unwrap();
        assert_eq!(out.len(), n);
    }

    #[test]
    fn stream_endings() {
        // finish_reason, then the connection closes without usage or [DONE]: complete, zero usage.
        let evs =
            run(&[chunk(json!({"content": "a"}), Some("")), chunk(json!({"content": "b"}), Some("stop"))]).unwrap();
        assert!(matches!(evs.last(), Some(StreamEvent::Finish { stop_reason: Some(StopReason::EndTurn), .. })));
        assert_eq!(evs.iter().filter(|e| matches!(e, StreamEvent::TextDelta { .. })).count(), 2);
        // [DONE] without any finish_reason: the reason is inferred.
        let evs = run(&[
            chunk(json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f"}}]}), None),
            "[DONE]".into(),
        ])
        .unwrap();
        assert!(matches!(evs.last(), Some(StreamEvent::Finish { stop_reason: Some(StopReason::ToolUse), .. })));
        // Cut off mid-answer.
        let e = run(&[chunk(json!({"content": "a"}), None)]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Upstream);
        assert!(e.message().contains("ended early"));
        let e = run(&[]).unwrap_err();
        assert!(e.message().contains("ended early"));
    }

    #[test]
    fn error_frames_and_garbage_are_errors() {
        let e = run(&[
            chunk(json!({"content": "a"}), None),
            r#"{"error":{"message":"overloaded","type":"server_error"}}"#.into(),
        ])
        .unwrap_err();
        assert_eq!((e.kind(), e.message()), (ErrorKind::Upstream, "overloaded"));
        let e = run(&[r#"{"error":{"message":"slow down","code":"rate_limit_exceeded"}}"#.into()]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        let e = run(&["{nope".into()]).unwrap_err();
        assert!(e.message().starts_with("the upstream sent an unreadable stream chunk"));
    }

    #[test]
    fn tool_call_quirks() {
        // Repeated empty fragments for a finished call are harmless; a resumed one is an error.
        let a = json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}]});
        let b = json!({"tool_calls": [{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}}]});
        let again = |args: &str| json!({"tool_calls": [{"index": 0, "function": {"arguments": args}}]});
        assert!(
            run(&[
                chunk(a.clone(), None),
                chunk(b.clone(), None),
                chunk(again(""), None),
                chunk(json!({}), Some("tool_calls"))
            ])
            .is_ok()
        );
        let e = run(&[chunk(a, None), chunk(b, None), chunk(again("x"), None)]).unwrap_err();
        assert!(e.message().contains("resumed"), "{}", e.message());
        // Servers that number every call 0 but give each its own id, or leave out index.
        for calls in [
            [
                json!({"index": 0, "id": "a", "function": {"name": "f", "arguments": "{}"}}),
                json!({"index": 0, "id": "b", "function": {"name": "g", "arguments": "{}"}}),
            ],
            [
                json!({"id": "a", "function": {"name": "f", "arguments": "{}"}}),
                json!({"id": "b", "function": {"name": "g", "arguments": "{}"}}),
            ],
        ] {
            let evs = run(&[chunk(json!({"tool_calls": calls}), Some("tool_calls"))]).unwrap();
            let names: Vec<_> = evs
                .iter()
                .filter_map(|e| match e {
                    StreamEvent::BlockStart { block: BlockKind::ToolUse { id, .. }, .. } => Some(id.as_str()),
                    _ => None,
                })
                .collect();
            assert_eq!(names, ["a", "b"]);
        }
        // A call without id gets one.
        let evs = run(&[chunk(json!({"tool_calls": [{"index": 0, "function": {"name": "f"}}]}), Some("tool_calls"))])
            .unwrap();
        assert!(evs.contains(&StreamEvent::BlockStart {
            index: 0,
            block: BlockKind::ToolUse { id: "call_0".into(), name: "f".into() }
        }));
    }

    // ---------------------------------------------------------------- stream encoder

    fn encode_stream(events: &[StreamEvent], include_usage: bool) -> Vec<OutEvent> {
        let encoder = StreamEncoder::with_created("asked", include_usage, 7);
        testing::encode_stream(crate::dialects::AnyStreamEncoder::OpenAiChat(encoder), events)
    }

    #[test]
    fn encodes_chunks_for_every_block_kind() {
        use StreamEvent::*;
        let usage = Usage { input_tokens: 11, output_tokens: 7, cache_read_tokens: 5, ..Usage::default() };
        let out = encode_stream(
            &[
                Start { id: "msg_1".into(), model: "claude".into(), usage: Usage::default() },
                Ping,
                BlockStart { index: 0, block: BlockKind::Thinking },
                ThinkingDelta { index: 0, text: "hm".into() },
                SignatureDelta { index: 0, signature: "s".into() },
                BlockStop { index: 0 },
                BlockStart { index: 1, block: BlockKind::Text },
                TextDelta { index: 1, text: "Hi".into() },
                TextDelta { index: 1, text: "".into() },
                BlockStop { index: 1 },
                BlockStart { index: 2, block: BlockKind::ToolUse { id: "t".into(), name: "f".into() } },
                ToolArgsDelta { index: 2, json: "{\"a\":".into() },
                ToolArgsDelta { index: 2, json: "1}".into() },
                ToolArgsDelta { index: 9, json: "lost".into() },
                BlockStop { index: 2 },
                Finish { stop_reason: Some(StopReason::ToolUse), usage },
                TextDelta { index: 3, text: "after".into() },
            ],
            true,
        );
        assert!(out.iter().all(|e| e.event.is_none()));
        assert_eq!(out.last().unwrap().data, "[DONE]");
        let head = |delta: Value, finish: Value| {
            json!({"id": "chatcmpl-msg_1", "object": "chat.completion.chunk", "created": 7, "model": "asked",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        assert_eq!(
            datas(&out),
            vec![
                head(json!({"role": "assistant", "content": ""}), Value::Null),
                head(json!({"reasoning_content": "hm"}), Value::Null),
                head(json!({"content": "Hi"}), Value::Null),
                head(
                    json!({"tool_calls": [{"index": 0, "id": "t", "type": "function", "function": {"name": "f", "arguments": ""}}]}),
                    Value::Null
                ),
                head(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}), Value::Null),
                head(json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}), Value::Null),
                head(json!({}), json!("tool_calls")),
                json!({"id": "chatcmpl-msg_1", "object": "chat.completion.chunk", "created": 7, "model": "asked", "choices": [],
                       "usage": {"prompt_tokens": 16, "completion_tokens": 7, "total_tokens": 23,
                                 "prompt_tokens_details": {"cached_tokens": 5}, "completion_tokens_details": {"reasoning_tokens": 0}}}),
            ]
        );
    }

    #[test]
    fn usage_chunk_only_on_request_and_a_stream_without_start_still_starts() {
        let out = encode_stream(
            &[
                StreamEvent::TextDelta { index: 0, text: "x".into() },
                StreamEvent::Finish { stop_reason: None, usage: Usage::default() },
            ],
            false,
        );
        assert_eq!(out.len(), 4);
        let first: Value = serde_json::from_str(&out[0].data).unwrap();
        assert_eq!(first["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
        assert_eq!(first["id"], "chatcmpl-cliproxy");
        let fin: Value = serde_json::from_str(&out[2].data).unwrap();
        assert_eq!(fin["choices"][0]["finish_reason"], "stop");
        assert_eq!(out[3].data, "[DONE]");
    }

    /// Random event sequences: what a client assembles from the chunks is what went in.
    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn deltas_concatenate_to_the_input(events in proptest::collection::vec(testing::stream_event(), 0..40)) {
                let mut want_text = String::new();
                let mut want_reasoning = String::new();
                let mut want_args: Vec<(String, String)> = Vec::new();
                let mut tool_of_block: Vec<(usize, usize)> = Vec::new();
                for ev in &events {
                    match ev {
                        StreamEvent::TextDelta { text, .. } => want_text.push_str(text),
                        StreamEvent::ThinkingDelta { text, .. } => want_reasoning.push_str(text),
                        StreamEvent::BlockStart { index, block: BlockKind::ToolUse { name, .. } } => {
                            tool_of_block.push((*index, want_args.len()));
                            want_args.push((name.clone(), String::new()));
                        }
                        StreamEvent::ToolArgsDelta { index, json } => {
                            if let Some(&(_, t)) = tool_of_block.iter().rev().find(|(i, _)| i == index) {
                                want_args[t].1.push_str(json);
                            }
                        }
                        StreamEvent::Finish { .. } => break,
                        _ => {}
                    }
                }
                let out = encode_stream(&events, true);
                prop_assert_eq!(out.iter().filter(|e| e.data == "[DONE]").count(), 1);
                prop_assert_eq!(&out.last().unwrap().data, "[DONE]");
                let mut text = String::new();
                let mut reasoning = String::new();
                let mut args: Vec<(String, String)> = Vec::new();
                let mut finishes = 0;
                for e in &out[..out.len() - 1] {
                    let v: Value = serde_json::from_str(&e.data).unwrap();
                    prop_assert_eq!(&v["id"], &json!(out_id(&out)));
                    for c in v["choices"].as_array().unwrap() {
                        let d = &c["delta"];
                        text.push_str(d["content"].as_str().unwrap_or(""));
                        reasoning.push_str(d["reasoning_content"].as_str().unwrap_or(""));
                        for call in d["tool_calls"].as_array().into_iter().flatten() {
                            let i = call["index"].as_u64().unwrap() as usize;
                            if i == args.len() {
                                args.push((call["function"]["name"].as_str().unwrap().to_owned(), String::new()));
                            }
                            args[i].1.push_str(call["function"]["arguments"].as_str().unwrap());
                        }
                        if !c["finish_reason"].is_null() {
                            finishes += 1;
                        }
                    }
                }
                prop_assert_eq!(text, want_text);
                prop_assert_eq!(reasoning, want_reasoning);
                prop_assert_eq!(args, want_args);
                prop_assert!(finishes <= 1);
            }
        }

        fn out_id(out: &[OutEvent]) -> String {
            serde_json::from_str::<Value>(&out[0].data)
                .map(|v| v["id"].as_str().unwrap_or("").to_owned())
                .unwrap_or_default()
        }
    }
}
