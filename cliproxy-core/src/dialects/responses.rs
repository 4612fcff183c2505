//! OpenAI Responses: the client dialect of `/v1/responses` (Codex CLI, the SDKs' `responses.create`) and
//! the wire format of Responses upstreams (Codex, Copilot's `/responses`).
//!
//! Mapping decisions (the IR is described in [`crate::types`]):
//! - `input` is a string (one user message) or a list of items. The items of one assistant turn
//!   (`reasoning`, assistant `message`s, `function_call`s) form one assistant message; `function_call_output`
//!   items become tool-result parts of one user message, which a user message right after them joins (the
//!   shape the chat dialect gives a tool turn). Encoding writes tool results first, then the rest.
//! - `instructions`, then `system`/`developer` messages, become [`ChatRequest::system`] parts; an encoding
//!   writes them all as `instructions`, joined by blank lines.
//! - A `reasoning` item becomes a thinking part: its summary texts joined by blank lines, its
//!   `encrypted_content` as the signature. Reasoning a Claude upstream signed thus reaches the client as
//!   `encrypted_content` and comes back to Claude intact, which Claude requires in tool-use turns; Claude's
//!   redacted thinking travels the same way, marked in its encrypted content. A request encoding sends only
//!   signed thinking: a reasoning item without encrypted content cannot be replayed.
//! - Only `function` tools are mapped. Tools an upstream of another kind cannot run (`web_search`,
//!   `file_search`, `local_shell`, `custom`, `namespace`, …) are dropped, not refused: Codex CLI sends them
//!   by default. A `tool_choice` forcing such a tool becomes `auto`; input items of kinds the IR does not
//!   model (`local_shell_call`, `web_search_call`, …) are dropped with a warning. Function tools encoded from
//!   another dialect get `strict: false` unless the client set it, since the Responses API defaults to
//!   strict schemas that ordinary tool schemas do not satisfy.
//! - The proxy keeps no state: `previous_response_id`, `conversation` and `item_reference` items are
//!   refused with an `invalid_request_error` naming the field. Fields the IR does not model (`store`,
//!   `metadata`, `include`, `text`, `truncation`, …) are kept for a Responses upstream only; a request
//!   encoded from another dialect asks for `store: false` (and, with reasoning on, the encrypted reasoning
//!   that a stateless conversation must carry forward).
//! - `reasoning.effort` ⇄ [`Reasoning::effort`] (a budget maps to the nearest effort, as for chat);
//!   `max_output_tokens` ⇄ `max_tokens`.
//! - Usage: `input_tokens` includes cached tokens (`input_tokens_details.cached_tokens`), like OpenAI's
//!   `prompt_tokens`; `output_tokens_details.reasoning_tokens` ⇄ [`Usage::reasoning_tokens`].
//! - Status: `incomplete` with reason `max_output_tokens` ⇄ max tokens, `content_filter` ⇄ content filter
//!   and refusal; `completed` otherwise, read as tool use when the output has function calls.
//! - Ids: the response is `resp_<upstream id>`; its items `rs_…`/`msg_…` numbered by position, function
//!   calls `fc_<call id>`.
//! - Streams are named events (`event: response.output_text.delta` with the same `type` in the data), each
//!   with a `sequence_number`, ending in `response.completed`, `response.incomplete` or `response.failed`;
//!   there is no `[DONE]`.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use super::json::{self, Kind, Obj, Path, Str};
use super::openai_chat::error_from_wire;
use super::{
    Dialect, OutEvent, client_id, client_tool_arguments, effort_budget, effort_of, image_from_url, image_url, to_json,
    to_json_string, tool_arguments_text, tool_choice_mode,
};
use crate::error::Error;
use crate::logtext::Clean;
use crate::stream::sse::SseEvent;
use crate::types::{
    BlockKind, ChatRequest, ChatResponse, ContentPart, Message, Opaque, Reasoning, Role, StopReason, StreamEvent, Tool,
    ToolChoice, Usage, parse_tool_arguments,
};

/// Why fields that point at stored responses are refused.
const STATELESS: &str = "this proxy keeps no response state, so earlier responses cannot be referenced; send the whole conversation in `input`";

/// The separator between reasoning summary parts when they are joined into one thinking text.
const SUMMARY_SEPARATOR: &str = "\n\n";

/// Marks Anthropic's redacted thinking carried as a reasoning item's `encrypted_content`. Clients keep the
/// content opaque and send it back, and Claude requires the block again in the next turn of a tool loop.
const REDACTED: &str = "cliproxy-redacted:";

// =========================================================================================================
// Requests: client body → IR

/// Parses and validates a client's Responses request.
pub fn parse_request(body: &[u8]) -> Result<ChatRequest, Error> {
    let root = Path::Root;
    let obj = Obj::from_body(body)?;
    let mut req = ChatRequest { source: Some(Dialect::Responses), ..ChatRequest::default() };
    for (key, raw) in obj.fields() {
        if json::kind(raw) == Kind::Null {
            continue;
        }
        let path = root.key(key);
        match key {
            // Read below, once, whatever the number of duplicates.
            "model" | "input" | "instructions" | "tools" => {}
            "previous_response_id" | "conversation" => return Err(path.invalid(STATELESS)),
            "tool_choice" => req.tool_choice = Some(parse_tool_choice(raw, &path)?),
            "parallel_tool_calls" => req.parallel_tool_calls = Some(json::boolean(raw, &path)?),
            "reasoning" => {
                let o = Obj::read(raw, &path)?;
                req.reasoning = o
                    .string("effort", &path)?
                    .map(|effort| Reasoning { effort: Some(effort.into_owned()), ..Reasoning::default() });
            }
            "max_output_tokens" => req.max_tokens = Some(json::unsigned(raw, &path)?),
            "stream" => req.stream = json::boolean(raw, &path)?,
            "temperature" => req.temperature = Some(json::number(raw, &path)?),
            "top_p" => req.top_p = Some(json::number(raw, &path)?),
            "user" => req.user = Some(json::string(raw, &path)?.into_owned()),
            _ => {
                match key {
                    "store" => {
                        json::boolean(raw, &path)?;
                    }
                    "metadata" => {
                        Obj::read(raw, &path)?;
                    }
                    _ => {}
                }
                req.extra.insert(key.to_owned(), json::value(raw, &path)?);
            }
        }
    }
    req.model = obj.require_string("model", &root)?.into_owned();
    if req.model.is_empty() {
        return Err(root.key("model").invalid("must not be empty"));
    }
    if let Some(instructions) = obj.string("instructions", &root)? {
        req.system.push(ContentPart::text(instructions));
    }
    let input = obj.require("input", &root, "a string or an array of input items")?;
    parse_input(input, &root.key("input"), &mut req)?;
    if let Some(tools) = obj.get("tools") {
        req.tools = parse_tools(tools, &root.key("tools"))?;
    }
    Ok(req)
}

/// What the last IR message holds, for joining items into turns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Turn {
    Start,
    User,
    /// A user message made of tool results (a user message may still join it).
    ToolResults,
    Assistant,
}

fn parse_input(raw: &RawValue, path: &Path<'_>, req: &mut ChatRequest) -> Result<(), Error> {
    if json::kind(raw) == Kind::String {
        req.messages.push(Message::user(vec![ContentPart::text(json::string(raw, path)?)]));
        return Ok(());
    }
    let items = json::array(raw, path, "a string or an array of input items")?;
    let mut turn = Turn::Start;
    for (i, item) in items.into_iter().enumerate() {
        let p = path.index(i);
        let o = Obj::read(item, &p)?;
        let kind = o.string("type", &p)?;
        let (role, parts) = match kind.as_deref() {
            // The SDKs' short form `{"role","content"}` has no type.
            None | Some("message") => {
                let role = o.require_string("role", &p)?;
                match role.as_ref() {
                    "system" | "developer" => {
                        for part in parse_content(&o, &p, Side::User)? {
                            if !matches!(part, ContentPart::Text { .. }) {
                                return Err(p.key("content").invalid("system messages may contain only text parts"));
                            }
                            req.system.push(part);
                        }
                        continue;
                    }
                    "user" => (Role::User, parse_content(&o, &p, Side::User)?),
                    "assistant" => (Role::Assistant, parse_content(&o, &p, Side::Assistant)?),
                    other => {
                        return Err(p.key("role").invalid(format_args!(
                            "unknown role '{other}'; expected user, assistant, system or developer"
                        )));
                    }
                }
            }
            Some("function_call") => (Role::Assistant, vec![parse_function_call(&o, &p)?]),
            Some("reasoning") => (Role::Assistant, parse_reasoning_item(&o, &p)?.into_iter().collect()),
            Some("function_call_output") => {
                let call_id = o.require_string("call_id", &p)?.into_owned();
                let op = p.key("output");
                let output = o.require("output", &p, "a string or an array of content parts")?;
                let content = parse_parts(output, &op, Side::User)?;
                let part = ContentPart::tool_result(call_id, content, false);
                match req.messages.last_mut() {
                    Some(last) if turn == Turn::ToolResults => last.content.push(part),
                    _ => req.messages.push(Message::user(vec![part])),
                }
                turn = Turn::ToolResults;
                continue;
            }
            Some("item_reference") => return Err(p.invalid(STATELESS)),
            Some(other) => {
                tracing::warn!(item = %Clean(other), "dropping an input item of a kind the proxy cannot translate");
                continue;
            }
        };
        match (role, req.messages.last_mut()) {
            (Role::Assistant, Some(last)) if turn == Turn::Assistant => last.content.extend(parts),
            (Role::User, Some(last)) if turn == Turn::ToolResults => last.content.extend(parts),
            (role, _) => req.messages.push(Message { role, content: parts }),
        }
        turn = if role == Role::Assistant { Turn::Assistant } else { Turn::User };
    }
    Ok(())
}

/// Whose content is read: a user's (images and parts the IR keeps opaque allowed, empty text kept) or the
/// assistant's (text and refusals; empty text is no part).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    User,
    Assistant,
}

/// Reads a message's `content`: a string or an array of parts.
fn parse_content(o: &Obj<'_>, path: &Path<'_>, side: Side) -> Result<Vec<ContentPart>, Error> {
    let raw = o.require("content", path, "a string or an array of content parts")?;
    parse_parts(raw, &path.key("content"), side)
}

fn parse_parts(raw: &RawValue, path: &Path<'_>, side: Side) -> Result<Vec<ContentPart>, Error> {
    match json::kind(raw) {
        Kind::String => {
            let text = json::string(raw, path)?;
            Ok(if text.is_empty() && side == Side::Assistant { Vec::new() } else { vec![ContentPart::text(text)] })
        }
        Kind::Array => {
            let items = json::array(raw, path, "an array of content parts")?;
            let mut parts = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                parts.extend(parse_part(item, &path.index(i), side)?);
            }
            Ok(parts)
        }
        _ => Err(path.invalid("expected a string or an array of content parts")),
    }
}

fn parse_part(raw: &RawValue, path: &Path<'_>, side: Side) -> Result<Option<ContentPart>, Error> {
    let o = Obj::read(raw, path)?;
    let tag = o.tag(path)?;
    match tag.as_ref() {
        "input_text" | "output_text" | "text" => {
            let text = o.require_string("text", path)?;
            Ok((!(text.is_empty() && side == Side::Assistant)).then(|| ContentPart::text(text)))
        }
        "refusal" => {
            let text = o.require_string("refusal", path)?;
            Ok((!text.is_empty()).then(|| ContentPart::text(text)))
        }
        "input_image" if o.get("image_url").is_some() => {
            let url = o.require_string("image_url", path)?;
            let detail = o.string("detail", path)?.map(Cow::into_owned);
            Ok(Some(ContentPart::Image { source: image_from_url(&url), detail, cache_control: None }))
        }
        // Files, audio and images by file id exist only at OpenAI.
        _ if side == Side::User => {
            Ok(Some(ContentPart::Opaque(Opaque { dialect: Dialect::Responses, value: json::value(raw, path)? })))
        }
        other => Err(path
            .key("type")
            .invalid(format_args!("unsupported assistant content part '{other}'; expected output_text or refusal"))),
    }
}

fn parse_function_call(o: &Obj<'_>, path: &Path<'_>) -> Result<ContentPart, Error> {
    let call_id = o.require_string("call_id", path)?.into_owned();
    let name = o.require_string("name", path)?.into_owned();
    let arguments = o.string("arguments", path)?.unwrap_or_default();
    let input = client_tool_arguments(&arguments, &path.key("arguments"))?;
    Ok(ContentPart::tool_use(call_id, name, input))
}

/// A `reasoning` item → a thinking part, or nothing when it carries neither text nor encrypted content.
fn parse_reasoning_item(o: &Obj<'_>, path: &Path<'_>) -> Result<Option<ContentPart>, Error> {
    let mut texts = Vec::new();
    for key in ["summary", "content"] {
        let Some(raw) = o.get(key) else { continue };
        let kp = path.key(key);
        for (i, part) in json::array(raw, &kp, "an array of text parts")?.into_iter().enumerate() {
            let pp = kp.index(i);
            texts.push(Obj::read(part, &pp)?.require_string("text", &pp)?);
        }
        // The raw reasoning (`content`) is read only where there is no summary.
        if !texts.is_empty() {
            break;
        }
    }
    let text = texts.join(SUMMARY_SEPARATOR);
    let signature = o.string("encrypted_content", path)?.filter(|s| !s.is_empty()).map(Cow::into_owned);
    if let Some(data) = signature.as_deref().and_then(|s| s.strip_prefix(REDACTED)) {
        return Ok(Some(ContentPart::RedactedThinking { data: data.to_owned() }));
    }
    Ok((!text.is_empty() || signature.is_some()).then_some(ContentPart::Thinking { text, signature }))
}

fn parse_tools(raw: &RawValue, path: &Path<'_>) -> Result<Vec<Tool>, Error> {
    let items = json::array(raw, path, "an array of tools")?;
    let mut tools = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let p = path.index(i);
        let t = Obj::read(item, &p)?;
        let kind = t.string("type", &p)?.unwrap_or(Cow::Borrowed("function"));
        if kind != "function" {
            tracing::debug!(tool = %Clean(&kind), "dropping a tool type only OpenAI itself runs");
            continue;
        }
        tools.push(Tool {
            name: t.require_string("name", &p)?.into_owned(),
            description: t.string("description", &p)?.map(Cow::into_owned),
            parameters: t.value("parameters", &p)?.unwrap_or(Value::Null),
            strict: t.bool("strict", &p)?,
            cache_control: None,
            builtin: None,
        });
    }
    Ok(tools)
}

fn parse_tool_choice(raw: &RawValue, path: &Path<'_>) -> Result<ToolChoice, Error> {
    const EXPECTED: &str = "expected \"none\", \"auto\", \"required\" or {\"type\":\"function\",\"name\"}";
    match json::kind(raw) {
        Kind::String => tool_choice_mode(&json::string(raw, path)?).ok_or_else(|| path.invalid(EXPECTED)),
        Kind::Object => {
            let o = Obj::read(raw, path)?;
            match o.tag(path)?.as_ref() {
                "function" => Ok(ToolChoice::Tool(o.require_string("name", path)?.into_owned())),
                "allowed_tools" => match o.string("mode", path)?.as_deref() {
                    Some("required") => Ok(ToolChoice::Required),
                    _ => Ok(ToolChoice::Auto),
                },
                other => {
                    tracing::debug!(tool = %Clean(other), "a tool choice forcing a dropped tool type becomes auto");
                    Ok(ToolChoice::Auto)
                }
            }
        }
        _ => Err(path.invalid(EXPECTED)),
    }
}

// =========================================================================================================
// Requests: IR → upstream body

#[derive(Serialize)]
struct RequestOut<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instructions: Option<String>,
    input: Vec<InputItemOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<ToolChoiceOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<ReasoningOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    store: Option<bool>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    include: &'static [&'static str],
    #[serde(flatten)]
    extra: Option<&'a serde_json::Map<String, Value>>,
}

#[derive(Serialize)]
struct ReasoningOut<'a> {
    effort: &'a str,
    summary: &'static str,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum InputItemOut<'a> {
    Message { role: &'static str, content: Vec<InputPartOut<'a>> },
    Reasoning { summary: Vec<SummaryOut<'a>>, encrypted_content: &'a str },
    FunctionCall { call_id: &'a str, name: &'a str, arguments: Cow<'a, str> },
    FunctionCallOutput { call_id: &'a str, output: ToolOutputOut<'a> },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum InputPartOut<'a> {
    InputText {
        text: &'a str,
    },
    OutputText {
        text: &'a str,
        annotations: [(); 0],
    },
    InputImage {
        image_url: Cow<'a, str>,
        detail: &'a str,
    },
    #[serde(untagged)]
    Raw(&'a Value),
}

#[derive(Serialize)]
#[serde(untagged)]
enum ToolOutputOut<'a> {
    Text(Cow<'a, str>),
    Parts(Vec<InputPartOut<'a>>),
}

#[derive(Serialize)]
struct SummaryOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

impl<'a> SummaryOut<'a> {
    /// The summary parts of a thinking text: none for empty text.
    fn of(text: &'a str) -> Vec<SummaryOut<'a>> {
        if text.is_empty() { Vec::new() } else { vec![SummaryOut { kind: "summary_text", text }] }
    }
}

#[derive(Serialize)]
struct ToolOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    parameters: Cow<'a, Value>,
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
        name: &'a str,
    },
}

/// Encodes a request for a Responses upstream.
pub fn encode_request(req: &ChatRequest) -> Vec<u8> {
    let same_dialect = req.source == Some(Dialect::Responses);
    let has_tools = !req.tools.is_empty();
    let tools: Vec<ToolOut<'_>> = req.tools.iter().filter_map(|t| tool_out(t, same_dialect)).collect();
    let tool_choice = req.tool_choice.as_ref().filter(|_| has_tools).map(|c| match c {
        ToolChoice::Auto => ToolChoiceOut::Mode("auto"),
        ToolChoice::None => ToolChoiceOut::Mode("none"),
        ToolChoice::Required => ToolChoiceOut::Mode("required"),
        ToolChoice::Tool(name) => ToolChoiceOut::Function { kind: "function", name },
    });
    let effort = req.reasoning.as_ref().and_then(effort_of);
    let thinking = effort.is_some_and(|e| effort_budget(e).is_some());
    let texts: Vec<&str> = req
        .system
        .iter()
        .filter_map(|p| match p {
            ContentPart::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let out = RequestOut {
        model: &req.model,
        instructions: (!texts.is_empty()).then(|| texts.join(SUMMARY_SEPARATOR)),
        input: input_items(req),
        tools,
        tool_choice,
        parallel_tool_calls: req.parallel_tool_calls.filter(|_| has_tools),
        max_output_tokens: req.max_tokens,
        temperature: req.temperature,
        top_p: req.top_p,
        reasoning: effort.map(|effort| ReasoningOut { effort, summary: "auto" }),
        user: req.user.as_deref(),
        stream: req.stream,
        store: (!same_dialect).then_some(false),
        include: if !same_dialect && thinking { &["reasoning.encrypted_content"] } else { &[] },
        extra: same_dialect.then_some(&req.extra),
    };
    to_json(&out)
}

fn tool_out(t: &Tool, same_dialect: bool) -> Option<ToolOut<'_>> {
    if t.builtin.is_some() {
        tracing::warn!(tool = %Clean(&t.name), "dropping a provider-defined tool a Responses upstream cannot run");
        return None;
    }
    let parameters = match &t.parameters {
        Value::Null => Cow::Owned(serde_json::json!({"type": "object", "properties": {}})),
        p => Cow::Borrowed(p),
    };
    Some(ToolOut {
        kind: "function",
        name: &t.name,
        description: t.description.as_deref(),
        parameters,
        strict: if same_dialect { t.strict } else { Some(t.strict.unwrap_or(false)) },
    })
}

fn input_items(req: &ChatRequest) -> Vec<InputItemOut<'_>> {
    let mut out = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        match m.role {
            Role::User => user_items(&m.content, &mut out),
            Role::Assistant => assistant_items(&m.content, &mut out),
        }
    }
    out
}

/// A user message of the IR: its tool results as `function_call_output` items first (they answer the calls
/// just before), then the rest as one user message.
fn user_items<'a>(content: &'a [ContentPart], out: &mut Vec<InputItemOut<'a>>) {
    let mut rest = Vec::new();
    for part in content {
        if let ContentPart::ToolResult { tool_use_id, content, .. } = part {
            let parts: Vec<InputPartOut<'_>> = content.iter().filter_map(user_part).collect();
            let output = match parts.as_slice() {
                [] => ToolOutputOut::Text(Cow::Borrowed("")),
                [InputPartOut::InputText { text }] => ToolOutputOut::Text(Cow::Borrowed(text)),
                _ if parts.iter().all(|p| matches!(p, InputPartOut::InputText { .. })) => {
                    let texts: Vec<&str> = parts
                        .iter()
                        .filter_map(|p| match p {
                            InputPartOut::InputText { text } => Some(*text),
                            _ => None,
                        })
                        .collect();
                    ToolOutputOut::Text(Cow::Owned(texts.concat()))
                }
                _ => ToolOutputOut::Parts(parts),
            };
            out.push(InputItemOut::FunctionCallOutput { call_id: tool_use_id, output });
        } else {
            rest.extend(user_part(part));
        }
    }
    if !rest.is_empty() {
        out.push(InputItemOut::Message { role: "user", content: rest });
    }
}

fn user_part(part: &ContentPart) -> Option<InputPartOut<'_>> {
    match part {
        ContentPart::Text { text, .. } => Some(InputPartOut::InputText { text }),
        ContentPart::Image { source, detail, .. } => {
            Some(InputPartOut::InputImage { image_url: image_url(source), detail: detail.as_deref().unwrap_or("auto") })
        }
        ContentPart::Opaque(o) => opaque_part(o),
        ContentPart::ToolUse { .. }
        | ContentPart::ToolResult { .. }
        | ContentPart::Thinking { .. }
        | ContentPart::RedactedThinking { .. } => None,
    }
}

fn opaque_part(o: &Opaque) -> Option<InputPartOut<'_>> {
    if o.dialect == Dialect::Responses {
        return Some(InputPartOut::Raw(&o.value));
    }
    let kind = o.value.get("type").unwrap_or(&Value::Null);
    tracing::warn!(part = %Clean(&kind.to_string()), "dropping a content part a Responses upstream cannot take");
    None
}

/// An assistant message of the IR as items, in order: signed thinking as `reasoning`, runs of text as one
/// assistant `message`, tool calls as `function_call`.
fn assistant_items<'a>(content: &'a [ContentPart], out: &mut Vec<InputItemOut<'a>>) {
    let mut text: Vec<InputPartOut<'a>> = Vec::new();
    let flush = |text: &mut Vec<InputPartOut<'a>>, out: &mut Vec<InputItemOut<'a>>| {
        if !text.is_empty() {
            out.push(InputItemOut::Message { role: "assistant", content: std::mem::take(text) });
        }
    };
    for part in content {
        match part {
            ContentPart::Text { text: t, .. } => text.push(InputPartOut::OutputText { text: t, annotations: [] }),
            ContentPart::Opaque(o) => text.extend(opaque_part(o)),
            ContentPart::Thinking { text: t, signature: Some(signature) } => {
                flush(&mut text, out);
                out.push(InputItemOut::Reasoning { summary: SummaryOut::of(t), encrypted_content: signature });
            }
            ContentPart::ToolUse { id, name, input, .. } => {
                flush(&mut text, out);
                out.push(InputItemOut::FunctionCall { call_id: id, name, arguments: tool_arguments_text(input) });
            }
            // Reasoning without encrypted content cannot be replayed; Anthropic's redacted thinking means
            // nothing to another model.
            ContentPart::Thinking { signature: None, .. }
            | ContentPart::RedactedThinking { .. }
            | ContentPart::Image { .. }
            | ContentPart::ToolResult { .. } => {}
        }
    }
    flush(&mut text, out);
}

// =========================================================================================================
// Answers

/// Usage as Responses upstreams send it; every field optional.
#[derive(Deserialize, Default, Debug, Clone, Copy)]
#[serde(default)]
struct UsageWire {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    input_tokens_details: Option<InputDetailsWire>,
    output_tokens_details: Option<OutputDetailsWire>,
}

#[derive(Deserialize, Default, Debug, Clone, Copy)]
#[serde(default)]
struct InputDetailsWire {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize, Default, Debug, Clone, Copy)]
#[serde(default)]
struct OutputDetailsWire {
    reasoning_tokens: Option<u64>,
}

impl From<UsageWire> for Usage {
    fn from(u: UsageWire) -> Usage {
        let cached = u.input_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0);
        Usage {
            input_tokens: u.input_tokens.unwrap_or(0).saturating_sub(cached),
            output_tokens: u.output_tokens.unwrap_or(0),
            cache_read_tokens: cached,
            cache_creation_tokens: 0,
            reasoning_tokens: u.output_tokens_details.and_then(|d| d.reasoning_tokens).unwrap_or(0),
        }
    }
}

#[derive(Serialize)]
struct UsageOut {
    input_tokens: u64,
    input_tokens_details: InputDetailsOut,
    output_tokens: u64,
    output_tokens_details: OutputDetailsOut,
    total_tokens: u64,
}

#[derive(Serialize)]
struct InputDetailsOut {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct OutputDetailsOut {
    reasoning_tokens: u64,
}

impl From<&Usage> for UsageOut {
    fn from(u: &Usage) -> UsageOut {
        UsageOut {
            input_tokens: u.prompt_tokens(),
            input_tokens_details: InputDetailsOut { cached_tokens: u.cache_read_tokens },
            output_tokens: u.output_tokens,
            output_tokens_details: OutputDetailsOut { reasoning_tokens: u.reasoning_tokens },
            total_tokens: u.total_tokens(),
        }
    }
}

/// The stop reason a response's `status` and `incomplete_details.reason` stand for.
fn stop_reason(status: Option<&str>, incomplete: Option<&str>, tool_calls: bool) -> StopReason {
    match (status, incomplete) {
        (Some("incomplete"), Some("max_output_tokens")) => StopReason::MaxTokens,
        (Some("incomplete"), Some("content_filter")) => StopReason::ContentFilter,
        (Some("incomplete"), Some(other)) => StopReason::Other(other.to_owned()),
        _ if tool_calls => StopReason::ToolUse,
        _ => StopReason::EndTurn,
    }
}

/// The terminal `status` and `incomplete_details.reason` of a stop reason.
fn status_of(reason: Option<&StopReason>) -> (&'static str, Option<&'static str>) {
    match reason {
        Some(StopReason::MaxTokens) => ("incomplete", Some("max_output_tokens")),
        Some(StopReason::ContentFilter | StopReason::Refusal) => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

/// One output item as upstreams send it (in answers and in stream events), flat: fields of every kind.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ItemWire<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    call_id: Option<Str<'a>>,
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    arguments: Option<Str<'a>>,
    #[serde(borrow)]
    content: Option<Vec<PartWire<'a>>>,
    #[serde(borrow)]
    summary: Option<Vec<PartWire<'a>>>,
    #[serde(borrow)]
    encrypted_content: Option<Str<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PartWire<'a> {
    #[serde(borrow)]
    text: Option<Str<'a>>,
    #[serde(borrow)]
    refusal: Option<Str<'a>>,
}

/// What an output item is, for the IR.
enum ItemKind {
    Message,
    Reasoning,
    FunctionCall,
}

impl ItemWire<'_> {
    fn kind(&self) -> Option<ItemKind> {
        match self.kind.as_ref().map(|k| k.0.as_ref()) {
            Some("message") => Some(ItemKind::Message),
            Some("reasoning") => Some(ItemKind::Reasoning),
            Some("function_call") => Some(ItemKind::FunctionCall),
            other => {
                tracing::debug!(item = ?other, "skipping an output item of a kind the IR does not model");
                None
            }
        }
    }

    /// A message's text: its `output_text` and `refusal` parts.
    fn text(&self) -> String {
        self.content.iter().flatten().filter_map(|p| p.text.as_ref().or(p.refusal.as_ref())).map(|s| &*s.0).collect()
    }

    /// A reasoning item's text: its summary, or its raw reasoning where it has no summary.
    fn reasoning_text(&self) -> String {
        let parts = |list: &Option<Vec<PartWire<'_>>>| -> Vec<String> {
            list.iter().flatten().filter_map(|p| p.text.as_ref()).map(|s| s.0.clone().into_owned()).collect()
        };
        let summary = parts(&self.summary);
        if summary.is_empty() { parts(&self.content).concat() } else { summary.join(SUMMARY_SEPARATOR) }
    }

    fn signature(&self) -> Option<String> {
        self.encrypted_content.as_ref().filter(|s| !s.0.is_empty()).map(|s| s.0.clone().into_owned())
    }

    /// The call id, or the item id for servers that leave it out.
    fn call_id(&self) -> String {
        self.call_id.as_ref().or(self.id.as_ref()).map(|s| s.0.clone().into_owned()).unwrap_or_default()
    }

    fn name(&self) -> String {
        self.name.as_ref().map(|s| s.0.clone().into_owned()).unwrap_or_default()
    }

    fn arguments(&self) -> &str {
        self.arguments.as_ref().map_or("", |s| &s.0)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ResponseWire<'a> {
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    model: Option<Str<'a>>,
    #[serde(borrow)]
    status: Option<Str<'a>>,
    #[serde(borrow)]
    incomplete_details: Option<IncompleteWire<'a>>,
    #[serde(borrow)]
    output: Option<Vec<&'a RawValue>>,
    usage: Option<UsageWire>,
    #[serde(borrow)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IncompleteWire<'a> {
    #[serde(borrow)]
    reason: Option<Str<'a>>,
}

impl ResponseWire<'_> {
    fn stop_reason(&self, tool_calls: bool) -> StopReason {
        let incomplete = self.incomplete_details.as_ref().and_then(|d| d.reason.as_ref()).map(|r| &*r.0);
        stop_reason(self.status.as_ref().map(|s| &*s.0), incomplete, tool_calls)
    }

    /// The error of a `failed` response (or of a body that is only an error).
    fn error(&self, body: &[u8]) -> Option<Error> {
        let failed = self.status.as_ref().is_some_and(|s| s.0 == "failed");
        match self.error {
            Some(e) => Some(error_from_wire(None, Some(e), body)),
            None if failed => Some(Error::upstream(None, "the upstream reported a failed response without an error")),
            None => None,
        }
    }
}

/// Parses an upstream's Response object. A failed response, or a body carrying only an `error`, is returned
/// as that error.
pub fn parse_response(body: &[u8]) -> Result<ChatResponse, Error> {
    let fault = |e: serde_json::Error| Error::upstream(None, format!("the upstream sent an unreadable response: {e}"));
    let wire: ResponseWire<'_> = serde_json::from_slice(body).map_err(fault)?;
    if let Some(e) = wire.error(body) {
        return Err(e);
    }
    let mut content = Vec::new();
    let mut tool_calls = false;
    for raw in wire.output.iter().flatten() {
        let item: ItemWire<'_> = serde_json::from_str(raw.get()).map_err(fault)?;
        match item.kind() {
            Some(ItemKind::Message) => content.push(ContentPart::text(item.text())),
            Some(ItemKind::Reasoning) => {
                content.push(ContentPart::Thinking { text: item.reasoning_text(), signature: item.signature() })
            }
            Some(ItemKind::FunctionCall) => {
                tool_calls = true;
                let input = parse_tool_arguments(item.arguments());
                content.push(ContentPart::tool_use(item.call_id(), item.name(), input));
            }
            None => {}
        }
    }
    Ok(ChatResponse {
        id: wire.id.as_ref().map(|s| s.0.clone().into_owned()).unwrap_or_default(),
        model: wire.model.as_ref().map(|s| s.0.clone().into_owned()).unwrap_or_default(),
        stop_reason: Some(wire.stop_reason(tool_calls)),
        usage: wire.usage.map(Usage::from).unwrap_or_default(),
        content,
    })
}

/// A Response object as clients receive it, in answers and in the stream's lifecycle events.
#[derive(Serialize)]
struct ResponseOut<'a> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    status: &'static str,
    error: Option<ErrorOut<'a>>,
    incomplete_details: Option<IncompleteOut>,
    model: &'a str,
    output: Vec<OutputItemOut<'a>>,
    usage: Option<UsageOut>,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    code: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct IncompleteOut {
    reason: &'static str,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutputItemOut<'a> {
    Reasoning {
        id: &'a str,
        status: &'static str,
        summary: Vec<SummaryOut<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<&'a str>,
    },
    Message {
        id: &'a str,
        status: &'static str,
        role: &'static str,
        content: Vec<TextPartOut<'a>>,
    },
    FunctionCall {
        id: &'a str,
        status: &'static str,
        call_id: &'a str,
        name: &'a str,
        arguments: &'a str,
    },
}

#[derive(Serialize)]
struct TextPartOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
    annotations: [(); 0],
    logprobs: [(); 0],
}

impl<'a> TextPartOut<'a> {
    fn new(text: &'a str) -> Self {
        TextPartOut { kind: "output_text", text, annotations: [], logprobs: [] }
    }
}

/// The ids of a response and its items. Items are numbered by their position in `output`; a function call
/// item is named after its call.
#[derive(Debug)]
struct Ids {
    response: String,
}

impl Ids {
    fn new(upstream: &str) -> Self {
        Ids { response: client_id(upstream, "resp_").into_owned() }
    }

    /// The id of the item at `output_index` with this content.
    fn of(&self, content: &ItemContent, output_index: usize) -> String {
        let prefix = match content {
            ItemContent::Message { .. } => "msg",
            ItemContent::Reasoning { .. } => "rs",
            ItemContent::FunctionCall { call_id, .. } if call_id.starts_with("fc_") => return call_id.clone(),
            ItemContent::FunctionCall { call_id, .. } => return format!("fc_{call_id}"),
        };
        let base = self.response.strip_prefix("resp_").unwrap_or(&self.response);
        format!("{prefix}_{base}_{output_index}")
    }
}

/// [`encode_response`] with a given `created_at` time (seconds since the epoch), for reproducible output.
pub fn encode_response_at(resp: &ChatResponse, model: &str, created_at: u64) -> Vec<u8> {
    let ids = Ids::new(&resp.id);
    let (status, incomplete) = status_of(resp.stop_reason.as_ref());
    let message_status = if status == "completed" { "completed" } else { "incomplete" };
    let mut items: Vec<Item> = Vec::new();
    for part in &resp.content {
        let content = match part {
            ContentPart::Text { text, .. } => {
                // Consecutive text parts form one message.
                if let Some(Item { content: ItemContent::Message { text: run }, .. }) = items.last_mut() {
                    run.push_str(text);
                    continue;
                }
                ItemContent::Message { text: text.clone() }
            }
            ContentPart::Thinking { text, signature } => {
                ItemContent::Reasoning { text: text.clone(), signature: signature.clone().unwrap_or_default() }
            }
            ContentPart::RedactedThinking { data } => ItemContent::redacted(data),
            ContentPart::ToolUse { id, name, input, .. } => ItemContent::FunctionCall {
                call_id: id.clone(),
                name: name.clone(),
                arguments: tool_arguments_text(input).into_owned(),
            },
            _ => continue,
        };
        items.push(Item { id: ids.of(&content, items.len()), block: None, content });
    }
    let output = items.iter().map(|item| item.out("completed", message_status)).collect();
    let out = ResponseOut {
        id: &ids.response,
        object: "response",
        created_at,
        status,
        error: None,
        incomplete_details: incomplete.map(|reason| IncompleteOut { reason }),
        model,
        output,
        usage: Some(UsageOut::from(&resp.usage)),
    };
    to_json(&out)
}

// =========================================================================================================
// Errors

/// Maps an upstream error answer, which has OpenAI's shape (`{"error":{"message","type","code"}}`).
pub fn parse_error(status: u16, body: &[u8]) -> Error {
    super::openai_chat::parse_error(status, body)
}

/// An error after the stream started: a terminal `response.failed` event whose response carries the error.
/// Being written without the stream's state, it has no `sequence_number` and no response id; the SDKs and
/// Codex CLI read only `response.error`.
pub fn error_event(err: &Error) -> OutEvent {
    #[derive(Serialize)]
    struct FailedOut<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        response: FailedResponseOut<'a>,
    }
    #[derive(Serialize)]
    struct FailedResponseOut<'a> {
        object: &'static str,
        status: &'static str,
        error: ErrorOut<'a>,
        incomplete_details: Option<()>,
        output: [(); 0],
    }
    let data = FailedOut {
        kind: "response.failed",
        response: FailedResponseOut {
            object: "response",
            status: "failed",
            error: ErrorOut { code: err.code(), message: err.message() },
            incomplete_details: None,
            output: [],
        },
    };
    OutEvent { event: Some("response.failed"), data: to_json_string(&data) }
}

// =========================================================================================================
// Same-dialect passthrough: what the proxy reads from events and answers it forwards untouched

/// For a forwarded stream event: the usage of a terminal event (`response.completed`/`.incomplete`), or the
/// error of a failure event (`response.failed`, `error`), which must fail over before the first byte.
pub fn passthrough_usage(ev: &SseEvent) -> Result<Option<Usage>, Error> {
    #[derive(Deserialize)]
    struct TypeOnly<'a> {
        #[serde(borrow, rename = "type")]
        kind: Option<Str<'a>>,
    }
    let data = ev.data.trim();
    // Servers name every event; for one that does not, the name is the data's `type`.
    let named = serde_json::from_str::<TypeOnly<'_>>(data).ok().and_then(|t| t.kind);
    let kind = ev.event.as_deref().or(named.as_ref().map(|k| &*k.0));
    match kind {
        Some("response.completed" | "response.incomplete") => {
            Ok(serde_json::from_str::<EventWire<'_>>(data).ok().and_then(|e| e.response?.usage).map(Usage::from))
        }
        Some("response.failed" | "error") => Err(stream_error(data)),
        _ => Ok(None),
    }
}

/// The usage of a Response object, read without building the whole tree.
pub fn answer_usage(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    struct Holder {
        usage: Option<UsageWire>,
    }
    serde_json::from_slice::<Holder>(body).ok()?.usage.map(Usage::from)
}

/// The error a `response.failed` or `error` event reports.
fn stream_error(data: &str) -> Error {
    match serde_json::from_str::<EventWire<'_>>(data) {
        Ok(e) => match e.response {
            Some(r) => r.error(data.as_bytes()).unwrap_or_else(|| error_from_wire(None, None, data.as_bytes())),
            // An `error` event has the error's fields at the top level.
            None => error_from_wire(None, serde_json::from_str::<&RawValue>(data).ok(), data.as_bytes()),
        },
        Err(_) => error_from_wire(None, None, data.as_bytes()),
    }
}

// =========================================================================================================
// Streams: upstream events → IR events

/// Every Responses stream event in one flat shape, so each event is parsed once whatever its type.
#[derive(Deserialize, Default)]
#[serde(default)]
struct EventWire<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    response: Option<ResponseWire<'a>>,
    output_index: Option<usize>,
    summary_index: Option<usize>,
    #[serde(borrow)]
    item: Option<ItemWire<'a>>,
    #[serde(borrow)]
    delta: Option<Str<'a>>,
}

/// An output item open in the IR stream being produced.
#[derive(Debug)]
struct OpenItem {
    output_index: usize,
    /// Its IR block index.
    block: usize,
    /// Whether any of its content came as deltas (else it is taken from `output_item.done`).
    streamed: bool,
}

/// Turns an upstream's Responses stream into block events: each output item is one block (a message's
/// content parts form one text block, a reasoning item's summary parts one thinking block, joined by blank
/// lines), numbered in the order the items start. Content is read from the deltas, or from
/// `response.output_item.done` for servers that send items whole; a reasoning item's `encrypted_content`
/// becomes its signature. `Finish` comes from `response.completed`/`.incomplete` with the response's usage;
/// `response.failed` and `error` events are errors. A stream that ends before a terminal event was cut
/// off: `finish` reports it. Events of item kinds the IR does not model (web searches, …) are skipped.
#[derive(Debug, Default)]
pub struct StreamParser {
    started: bool,
    next_block: usize,
    open: Vec<OpenItem>,
    tool_calls: bool,
    finished: bool,
}

impl StreamParser {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), Error> {
        let data = ev.data.trim();
        if self.finished || data.is_empty() || data == "[DONE]" {
            return Ok(());
        }
        let e: EventWire<'_> = serde_json::from_str(data)
            .map_err(|e| Error::upstream(None, format!("the upstream sent an unreadable stream event: {e}")))?;
        let kind = e.kind.as_ref().map(|k| &*k.0).or(ev.event.as_deref()).unwrap_or_default();
        let output_index = e.output_index.unwrap_or(0);
        match kind {
            "response.created" | "response.in_progress" | "response.queued" => {
                let r = e.response.unwrap_or_default();
                self.ensure_started(r.id.map(|s| s.0.into_owned()), r.model.map(|s| s.0.into_owned()), out);
            }
            "response.output_item.added" => {
                let item = e.item.unwrap_or_default();
                self.open_item(output_index, &item, out);
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                if let Some(text) = e.delta.filter(|d| !d.0.is_empty()) {
                    let block = self.block_of(output_index, BlockKind::Text, out);
                    out.push(StreamEvent::TextDelta { index: block, text: text.0.into_owned() });
                }
            }
            "response.reasoning_summary_part.added" if e.summary_index.unwrap_or(0) > 0 => {
                let block = self.block_of(output_index, BlockKind::Thinking, out);
                out.push(StreamEvent::ThinkingDelta { index: block, text: SUMMARY_SEPARATOR.to_owned() });
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                if let Some(text) = e.delta.filter(|d| !d.0.is_empty()) {
                    let block = self.block_of(output_index, BlockKind::Thinking, out);
                    out.push(StreamEvent::ThinkingDelta { index: block, text: text.0.into_owned() });
                }
            }
            "response.function_call_arguments.delta" => {
                if let Some(json) = e.delta.filter(|d| !d.0.is_empty())
                    && let Some(open) = self.open.iter_mut().find(|o| o.output_index == output_index)
                {
                    open.streamed = true;
                    out.push(StreamEvent::ToolArgsDelta { index: open.block, json: json.0.into_owned() });
                }
            }
            "response.output_item.done" => {
                let item = e.item.unwrap_or_default();
                self.close_item(output_index, &item, out);
            }
            "response.completed" | "response.incomplete" => {
                let r = e.response.unwrap_or_default();
                self.ensure_started(None, None, out);
                for open in self.open.drain(..) {
                    out.push(StreamEvent::BlockStop { index: open.block });
                }
                self.finished = true;
                let stop_reason = Some(r.stop_reason(self.tool_calls));
                out.push(StreamEvent::Finish { stop_reason, usage: r.usage.map(Usage::from).unwrap_or_default() });
            }
            "response.failed" | "error" => return Err(stream_error(data)),
            _ => {}
        }
        Ok(())
    }

    /// Ends the stream, reporting one that ended before its terminal event.
    pub fn finish(&mut self, _out: &mut Vec<StreamEvent>) -> Result<(), Error> {
        if self.finished {
            return Ok(());
        }
        Err(Error::upstream(
            None,
            "the upstream stream ended early, before response.completed; the answer is incomplete",
        ))
    }

    fn ensure_started(&mut self, id: Option<String>, model: Option<String>, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: id.unwrap_or_default(),
                model: model.unwrap_or_default(),
                usage: Usage::default(),
            });
        }
    }

    /// Opens the block of an item; returns its index, or `None` for kinds the IR does not model.
    fn open_item(&mut self, output_index: usize, item: &ItemWire<'_>, out: &mut Vec<StreamEvent>) -> Option<usize> {
        let block = match item.kind()? {
            ItemKind::Message => BlockKind::Text,
            ItemKind::Reasoning => BlockKind::Thinking,
            ItemKind::FunctionCall => {
                self.tool_calls = true;
                BlockKind::ToolUse { id: item.call_id(), name: item.name() }
            }
        };
        Some(self.open_block(output_index, block, out))
    }

    fn open_block(&mut self, output_index: usize, block: BlockKind, out: &mut Vec<StreamEvent>) -> usize {
        self.ensure_started(None, None, out);
        let index = self.next_block;
        self.next_block += 1;
        out.push(StreamEvent::BlockStart { index, block });
        self.open.push(OpenItem { output_index, block: index, streamed: false });
        index
    }

    /// The block of the open item at `output_index`, marked as streamed; a delta for an item that was never
    /// announced opens a block of the delta's kind.
    fn block_of(&mut self, output_index: usize, kind: BlockKind, out: &mut Vec<StreamEvent>) -> usize {
        let index = match self.open.iter().position(|o| o.output_index == output_index) {
            Some(i) => i,
            None => {
                self.open_block(output_index, kind, out);
                self.open.len() - 1
            }
        };
        self.open[index].streamed = true;
        self.open[index].block
    }

    /// Closes an item's block, first filling in what `output_item.done` carries and no delta did.
    fn close_item(&mut self, output_index: usize, item: &ItemWire<'_>, out: &mut Vec<StreamEvent>) {
        let position = match self.open.iter().position(|o| o.output_index == output_index) {
            Some(p) => Some(p),
            None => self.open_item(output_index, item, out).map(|_| self.open.len() - 1),
        };
        let Some(position) = position else { return };
        let open = self.open.remove(position);
        let index = open.block;
        match item.kind() {
            Some(ItemKind::Message) if !open.streamed => {
                let text = item.text();
                if !text.is_empty() {
                    out.push(StreamEvent::TextDelta { index, text });
                }
            }
            Some(ItemKind::Reasoning) => {
                let text = item.reasoning_text();
                if !open.streamed && !text.is_empty() {
                    out.push(StreamEvent::ThinkingDelta { index, text });
                }
                if let Some(signature) = item.signature() {
                    out.push(StreamEvent::SignatureDelta { index, signature });
                }
            }
            Some(ItemKind::FunctionCall) if !open.streamed && !item.arguments().is_empty() => {
                out.push(StreamEvent::ToolArgsDelta { index, json: item.arguments().to_owned() });
            }
            _ => {}
        }
        out.push(StreamEvent::BlockStop { index });
    }
}

// =========================================================================================================
// Streams: IR events → client events

/// One client event: its `type` (also the SSE event name), its sequence number and its fields.
#[derive(Serialize)]
struct EventOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    sequence_number: u64,
    #[serde(flatten)]
    body: Body<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Body<'a> {
    Response { response: ResponseOut<'a> },
    Item { output_index: usize, item: OutputItemOut<'a> },
    ContentPart { item_id: &'a str, output_index: usize, content_index: usize, part: TextPartOut<'a> },
    TextDelta { item_id: &'a str, output_index: usize, content_index: usize, delta: &'a str, logprobs: [(); 0] },
    TextDone { item_id: &'a str, output_index: usize, content_index: usize, text: &'a str, logprobs: [(); 0] },
    SummaryPart { item_id: &'a str, output_index: usize, summary_index: usize, part: SummaryOut<'a> },
    SummaryDelta { item_id: &'a str, output_index: usize, summary_index: usize, delta: &'a str },
    SummaryDone { item_id: &'a str, output_index: usize, summary_index: usize, text: &'a str },
    ArgsDelta { item_id: &'a str, output_index: usize, delta: &'a str },
    ArgsDone { item_id: &'a str, output_index: usize, arguments: &'a str },
}

/// An output item being written: one of an answer, or one of a stream with what it has received so far.
#[derive(Debug)]
struct Item {
    id: String,
    /// The IR block feeding it while it is open in a stream.
    block: Option<usize>,
    content: ItemContent,
}

#[derive(Debug)]
enum ItemContent {
    Message { text: String },
    Reasoning { text: String, signature: String },
    FunctionCall { call_id: String, name: String, arguments: String },
}

impl ItemContent {
    fn message() -> Self {
        ItemContent::Message { text: String::new() }
    }

    fn reasoning() -> Self {
        ItemContent::Reasoning { text: String::new(), signature: String::new() }
    }

    /// Anthropic's redacted thinking, as a reasoning item the client sends back whole (see [`REDACTED`]).
    fn redacted(data: &str) -> Self {
        ItemContent::Reasoning { text: String::new(), signature: format!("{REDACTED}{data}") }
    }
}

impl Item {
    fn is_call(&self) -> bool {
        matches!(self.content, ItemContent::FunctionCall { .. })
    }

    /// The item as clients see it; `status` is the item's own, `message_status` that of message items
    /// (incomplete when the whole response is).
    fn out(&self, status: &'static str, message_status: &'static str) -> OutputItemOut<'_> {
        match &self.content {
            ItemContent::Message { text } => OutputItemOut::Message {
                id: &self.id,
                status: message_status,
                role: "assistant",
                content: if status == "in_progress" { Vec::new() } else { vec![TextPartOut::new(text)] },
            },
            ItemContent::Reasoning { text, signature } => OutputItemOut::Reasoning {
                id: &self.id,
                status,
                summary: if status == "in_progress" { Vec::new() } else { SummaryOut::of(text) },
                encrypted_content: (!signature.is_empty()).then_some(signature.as_str()),
            },
            ItemContent::FunctionCall { call_id, name, arguments } => {
                OutputItemOut::FunctionCall { id: &self.id, status, call_id, name, arguments }
            }
        }
    }
}

/// Writes IR stream events as the Responses event sequence the SDKs and Codex CLI parse:
/// `response.created` and `response.in_progress`; per item `response.output_item.added`, its content events
/// (a message's `content_part.added`, `output_text.delta`s, `output_text.done`, `content_part.done`; a
/// reasoning item's `reasoning_summary_part.added`, `reasoning_summary_text.delta`s and `.done`,
/// `reasoning_summary_part.done`; a function call's `function_call_arguments.delta`s and `.done`) and
/// `response.output_item.done`; then `response.completed` (or `response.incomplete`, with the reason) with
/// the whole output and usage. Events are numbered from 0 by `sequence_number`.
///
/// Text and reasoning items close any open item before they open; function-call items stay open beside
/// each other until their blocks stop (parallel calls, see [`crate::types::StreamEvent`]). Any event
/// sequence yields a valid stream: content before `Start` starts it, a delta without its block opens an item
/// of its kind, argument fragments of unknown calls and events after `Finish` are dropped, and a stream that
/// ends without `Finish` is completed by [`StreamEncoder::finish`]. Anthropic's redacted thinking becomes a
/// reasoning item without summary whose encrypted content carries it (see [`REDACTED`]).
#[derive(Debug)]
pub struct StreamEncoder {
    model: String,
    created_at: u64,
    ids: Ids,
    sequence: u64,
    started: bool,
    start_usage: Usage,
    items: Vec<Item>,
    finished: bool,
}

impl StreamEncoder {
    /// [`StreamEncoder::new`] with a given `created_at` time, for reproducible output.
    pub fn with_created(model: &str, created_at: u64) -> Self {
        StreamEncoder {
            model: model.to_owned(),
            created_at,
            ids: Ids::new(""),
            sequence: 0,
            started: false,
            start_usage: Usage::default(),
            items: Vec::new(),
            finished: false,
        }
    }

    pub fn push(&mut self, ev: &StreamEvent, out: &mut Vec<OutEvent>) {
        if self.finished {
            return;
        }
        match ev {
            StreamEvent::Start { id, usage, .. } => self.start(id, *usage, out),
            StreamEvent::Ping => {}
            StreamEvent::BlockStart { index, block } => {
                self.start("", Usage::default(), out);
                match block {
                    BlockKind::Text => {
                        self.open(*index, ItemContent::message(), out);
                    }
                    BlockKind::Thinking => {
                        self.open(*index, ItemContent::reasoning(), out);
                    }
                    BlockKind::ToolUse { id, name } => {
                        let content = ItemContent::FunctionCall {
                            call_id: id.clone(),
                            name: name.clone(),
                            arguments: String::new(),
                        };
                        self.open(*index, content, out);
                    }
                    BlockKind::RedactedThinking { data } => {
                        self.open(*index, ItemContent::redacted(data), out);
                    }
                }
            }
            StreamEvent::TextDelta { index, text } if !text.is_empty() => {
                let i = self.item_for(*index, false, out);
                if let ItemContent::Message { text: t } = &mut self.items[i].content {
                    t.push_str(text);
                }
                let item_id = &self.items[i].id;
                let body = Body::TextDelta { item_id, output_index: i, content_index: 0, delta: text, logprobs: [] };
                emit(&mut self.sequence, "response.output_text.delta", body, out);
            }
            StreamEvent::ThinkingDelta { index, text } if !text.is_empty() => {
                let i = self.item_for(*index, true, out);
                if let ItemContent::Reasoning { text: t, .. } = &mut self.items[i].content {
                    t.push_str(text);
                }
                let item_id = &self.items[i].id;
                let body = Body::SummaryDelta { item_id, output_index: i, summary_index: 0, delta: text };
                emit(&mut self.sequence, "response.reasoning_summary_text.delta", body, out);
            }
            StreamEvent::SignatureDelta { index, signature } if !signature.is_empty() => {
                let i = self.item_for(*index, true, out);
                if let ItemContent::Reasoning { signature: s, .. } = &mut self.items[i].content {
                    s.push_str(signature);
                }
            }
            StreamEvent::ToolArgsDelta { index, json } if !json.is_empty() => {
                let Some(i) = self.open_item(*index).filter(|&i| self.items[i].is_call()) else { return };
                if let ItemContent::FunctionCall { arguments, .. } = &mut self.items[i].content {
                    arguments.push_str(json);
                }
                let body = Body::ArgsDelta { item_id: &self.items[i].id, output_index: i, delta: json };
                emit(&mut self.sequence, "response.function_call_arguments.delta", body, out);
            }
            StreamEvent::BlockStop { index } => {
                if let Some(i) = self.open_item(*index) {
                    self.close(i, out);
                }
            }
            StreamEvent::Finish { stop_reason, usage } => {
                self.start("", Usage::default(), out);
                self.complete(stop_reason.as_ref(), usage, out);
            }
            // Empty deltas carry nothing and must not open items.
            StreamEvent::TextDelta { .. }
            | StreamEvent::ThinkingDelta { .. }
            | StreamEvent::SignatureDelta { .. }
            | StreamEvent::ToolArgsDelta { .. } => {}
        }
    }

    /// Ends a stream that had no `Finish` as completed, with the usage known from its start.
    pub fn finish(&mut self, out: &mut Vec<OutEvent>) {
        if !self.finished {
            self.start("", Usage::default(), out);
            let usage = self.start_usage;
            self.complete(None, &usage, out);
        }
    }

    fn start(&mut self, upstream_id: &str, usage: Usage, out: &mut Vec<OutEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        self.start_usage = usage;
        self.ids = Ids::new(upstream_id);
        let mut sequence = self.sequence;
        for kind in ["response.created", "response.in_progress"] {
            emit(&mut sequence, kind, Body::Response { response: self.response("in_progress", None, None) }, out);
        }
        self.sequence = sequence;
    }

    fn response(
        &self,
        status: &'static str,
        incomplete: Option<&'static str>,
        usage: Option<&Usage>,
    ) -> ResponseOut<'_> {
        let message_status = if incomplete.is_some() { "incomplete" } else { "completed" };
        let output = if usage.is_some() {
            self.items.iter().map(|item| item.out("completed", message_status)).collect()
        } else {
            Vec::new()
        };
        ResponseOut {
            id: &self.ids.response,
            object: "response",
            created_at: self.created_at,
            status,
            error: None,
            incomplete_details: incomplete.map(|reason| IncompleteOut { reason }),
            model: &self.model,
            output,
            usage: usage.map(UsageOut::from),
        }
    }

    /// The output index of the open item fed by IR block `block`.
    fn open_item(&self, block: usize) -> Option<usize> {
        self.items.iter().rposition(|item| item.block == Some(block))
    }

    /// The open item fed by `block` if it is a reasoning item (`reasoning`) or a message (otherwise), else a
    /// new item of that kind.
    fn item_for(&mut self, block: usize, reasoning: bool, out: &mut Vec<OutEvent>) -> usize {
        self.start("", Usage::default(), out);
        let fits = |c: &ItemContent| match c {
            ItemContent::Message { .. } => !reasoning,
            ItemContent::Reasoning { .. } => reasoning,
            ItemContent::FunctionCall { .. } => false,
        };
        if let Some(i) = self.open_item(block).filter(|&i| fits(&self.items[i].content)) {
            return i;
        }
        let content = if reasoning { ItemContent::reasoning() } else { ItemContent::message() };
        self.open(block, content, out)
    }

    /// Opens an item, after closing the open items it cannot stand beside. Returns its output index.
    fn open(&mut self, block: usize, content: ItemContent, out: &mut Vec<OutEvent>) -> usize {
        let call = matches!(content, ItemContent::FunctionCall { .. });
        for i in 0..self.items.len() {
            if self.items[i].block.is_some() && !(call && self.items[i].is_call()) {
                self.close(i, out);
            }
        }
        let output_index = self.items.len();
        self.items.push(Item { id: self.ids.of(&content, output_index), block: Some(block), content });
        let item = &self.items[output_index];
        let body = Body::Item { output_index, item: item.out("in_progress", "in_progress") };
        emit(&mut self.sequence, "response.output_item.added", body, out);
        match &item.content {
            ItemContent::Message { .. } => {
                let part = TextPartOut::new("");
                let body = Body::ContentPart { item_id: &item.id, output_index, content_index: 0, part };
                emit(&mut self.sequence, "response.content_part.added", body, out);
            }
            ItemContent::Reasoning { .. } => {
                let part = SummaryOut { kind: "summary_text", text: "" };
                let body = Body::SummaryPart { item_id: &item.id, output_index, summary_index: 0, part };
                emit(&mut self.sequence, "response.reasoning_summary_part.added", body, out);
            }
            ItemContent::FunctionCall { .. } => {}
        }
        output_index
    }

    /// Writes the closing events of item `i`.
    fn close(&mut self, i: usize, out: &mut Vec<OutEvent>) {
        let item = &mut self.items[i];
        if item.block.take().is_none() {
            return;
        }
        let item = &self.items[i];
        let (item_id, output_index) = (item.id.as_str(), i);
        let seq = &mut self.sequence;
        match &item.content {
            ItemContent::Message { text } => {
                let body = Body::TextDone { item_id, output_index, content_index: 0, text, logprobs: [] };
                emit(seq, "response.output_text.done", body, out);
                let part = TextPartOut::new(text);
                emit(
                    seq,
                    "response.content_part.done",
                    Body::ContentPart { item_id, output_index, content_index: 0, part },
                    out,
                );
            }
            ItemContent::Reasoning { text, .. } => {
                let body = Body::SummaryDone { item_id, output_index, summary_index: 0, text };
                emit(seq, "response.reasoning_summary_text.done", body, out);
                let part = SummaryOut { kind: "summary_text", text };
                let body = Body::SummaryPart { item_id, output_index, summary_index: 0, part };
                emit(seq, "response.reasoning_summary_part.done", body, out);
            }
            ItemContent::FunctionCall { arguments, .. } => {
                emit(
                    seq,
                    "response.function_call_arguments.done",
                    Body::ArgsDone { item_id, output_index, arguments },
                    out,
                );
            }
        }
        let body = Body::Item { output_index, item: item.out("completed", "completed") };
        emit(seq, "response.output_item.done", body, out);
    }

    /// Closes every open item and writes the terminal event.
    fn complete(&mut self, stop_reason: Option<&StopReason>, usage: &Usage, out: &mut Vec<OutEvent>) {
        for i in 0..self.items.len() {
            self.close(i, out);
        }
        self.finished = true;
        let (status, incomplete) = status_of(stop_reason);
        let kind = if incomplete.is_some() { "response.incomplete" } else { "response.completed" };
        let mut sequence = self.sequence;
        emit(&mut sequence, kind, Body::Response { response: self.response(status, incomplete, Some(usage)) }, out);
        self.sequence = sequence;
    }
}

/// Appends one event and advances the sequence number.
fn emit(sequence: &mut u64, kind: &'static str, body: Body<'_>, out: &mut Vec<OutEvent>) {
    let event = EventOut { kind, sequence_number: *sequence, body };
    out.push(OutEvent { event: Some(kind), data: to_json_string(&event) });
    *sequence += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::dialects::testing::{self, datas, invalid_message, parse_stream, sse};
    use crate::error::ErrorKind;
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

    fn weather_tool() -> Value {
        json!({"type": "function", "name": "get_weather", "description": "Weather",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}})
    }

    // ---------------------------------------------------------------- parse_request

    #[test]
    fn parses_scalars_and_keeps_unmodelled_fields() {
        let r = parse(json!({
            "model": "gpt-5", "input": "hi", "instructions": "Be brief.", "max_output_tokens": 100,
            "temperature": 0.2, "top_p": 0.9, "stream": true, "parallel_tool_calls": false, "user": "u1",
            "reasoning": {"effort": "low", "summary": "auto"}, "store": false, "metadata": {"k": "v"},
            "include": ["reasoning.encrypted_content"], "text": {"verbosity": "low"}, "truncation": null
        }))
        .unwrap();
        assert_eq!(r.model, "gpt-5");
        assert_eq!(r.system, vec![ContentPart::text("Be brief.")]);
        assert_eq!(r.messages, vec![Message::user(vec![ContentPart::text("hi")])]);
        assert_eq!(r.max_tokens, Some(100));
        assert_eq!((r.temperature, r.top_p), (Some(0.2), Some(0.9)));
        assert!(r.stream);
        assert_eq!(r.parallel_tool_calls, Some(false));
        assert_eq!(r.user.as_deref(), Some("u1"));
        assert_eq!(r.reasoning, Some(Reasoning { effort: Some("low".into()), ..Reasoning::default() }));
        assert_eq!(r.source, Some(Dialect::Responses));
        assert_eq!(
            Value::Object(r.extra),
            json!({"store": false, "metadata": {"k": "v"}, "include": ["reasoning.encrypted_content"],
                   "text": {"verbosity": "low"}})
        );
        // A reasoning object without an effort leaves the upstream's default.
        assert_eq!(
            parse(json!({"model": "m", "input": "x", "reasoning": {"summary": "auto"}})).unwrap().reasoning,
            None
        );
    }

    #[test]
    fn items_form_turns() {
        let r = parse(json!({"model": "m", "input": [
            {"role": "developer", "content": "Use tools."},
            {"role": "user", "content": [{"type": "input_text", "text": "weather?"},
                                         {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
                                         {"type": "input_file", "file_id": "file-1"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Think"},
                                                            {"type": "summary_text", "text": "more"}],
             "encrypted_content": "enc"},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
             "content": [{"type": "output_text", "text": "Checking.", "annotations": []}]},
            {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
            {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": ""},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            {"type": "function_call_output", "call_id": "c2",
             "output": [{"type": "input_text", "text": "rain"}]},
            {"role": "user", "content": "thanks"},
            {"role": "user", "content": "bye"},
            {"type": "web_search_call", "id": "ws_1", "status": "completed"}
        ]}))
        .unwrap();
        assert_eq!(r.system, vec![ContentPart::text("Use tools.")]);
        assert_eq!(r.messages.len(), 4);
        assert_eq!(r.messages[0].role, Role::User);
        assert_eq!(r.messages[0].content[0], ContentPart::text("weather?"));
        assert_eq!(
            r.messages[0].content[1],
            ContentPart::Image {
                source: ImageSource::Base64 { media_type: "image/png".into(), data: "AAAA".into() },
                detail: Some("low".into()),
                cache_control: None
            }
        );
        assert_eq!(
            r.messages[0].content[2],
            ContentPart::Opaque(Opaque {
                dialect: Dialect::Responses,
                value: json!({"type": "input_file", "file_id": "file-1"})
            })
        );
        assert_eq!(
            r.messages[1],
            Message::assistant(vec![
                ContentPart::Thinking { text: "Think\n\nmore".into(), signature: Some("enc".into()) },
                ContentPart::text("Checking."),
                ContentPart::tool_use("c1", "get_weather", json!({"city": "Paris"})),
                ContentPart::tool_use("c2", "get_weather", json!({})),
            ])
        );
        assert_eq!(
            r.messages[2],
            Message::user(vec![
                ContentPart::tool_result("c1", vec![ContentPart::text("sunny")], false),
                ContentPart::tool_result("c2", vec![ContentPart::text("rain")], false),
                ContentPart::text("thanks"),
            ])
        );
        assert_eq!(r.messages[3], Message::user(vec![ContentPart::text("bye")]));
    }

    #[test]
    fn reasoning_items_without_summary_read_their_content_and_empty_ones_are_skipped() {
        let r = parse(json!({"model": "m", "input": [
            {"role": "user", "content": "q"},
            {"type": "reasoning", "summary": [], "content": [{"type": "reasoning_text", "text": "raw"}]},
            {"type": "reasoning", "summary": []},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "no"}, {"type": "output_text", "text": ""}]}
        ]}))
        .unwrap();
        assert_eq!(
            r.messages[1],
            Message::assistant(vec![
                ContentPart::Thinking { text: "raw".into(), signature: None },
                ContentPart::text("no")
            ])
        );
    }

    #[test]
    fn only_function_tools_are_kept_and_tool_choice_follows() {
        let r = parse(json!({"model": "m", "input": "x", "tools": [
            weather_tool(),
            {"type": "web_search_preview"}, {"type": "web_search"}, {"type": "local_shell"},
            {"type": "custom", "name": "apply_patch", "format": {"type": "text"}},
            {"type": "namespace", "name": "ns", "tools": []}, {"type": "file_search", "vector_store_ids": []},
            {"type": "function", "name": "noop", "strict": true}
        ], "tool_choice": {"type": "function", "name": "get_weather"}}))
        .unwrap();
        let names: Vec<_> = r.tools.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["get_weather", "noop"]);
        assert_eq!(r.tools[0].description.as_deref(), Some("Weather"));
        assert_eq!(r.tools[0].parameters["type"], "object");
        assert_eq!((r.tools[0].strict, r.tools[1].strict), (None, Some(true)));
        assert_eq!(r.tool_choice, Some(ToolChoice::Tool("get_weather".into())));
        let choice = |c: Value| parse(json!({"model": "m", "input": "x", "tool_choice": c})).unwrap().tool_choice;
        assert_eq!(choice(json!("required")), Some(ToolChoice::Required));
        assert_eq!(choice(json!("none")), Some(ToolChoice::None));
        assert_eq!(choice(json!({"type": "web_search_preview"})), Some(ToolChoice::Auto));
        assert_eq!(
            choice(json!({"type": "allowed_tools", "mode": "required", "tools": []})),
            Some(ToolChoice::Required)
        );
    }

    #[test]
    fn malformed_requests_name_the_field() {
        let cases = [
            (json!({"input": "x"}), "model: missing"),
            (json!({"model": "", "input": "x"}), "model: must not be empty"),
            (json!({"model": "m"}), "input: missing"),
            (json!({"model": "m", "input": 5}), "input: expected a string or an array of input items"),
            (
                json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}),
                "previous_response_id: this proxy keeps no response state",
            ),
            (
                json!({"model": "m", "input": "x", "conversation": "conv_1"}),
                "conversation: this proxy keeps no response state",
            ),
            (
                json!({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]}),
                "input[0]: this proxy keeps no response state",
            ),
            (json!({"model": "m", "input": [{"content": "x"}]}), "input[0].role: missing"),
            (json!({"model": "m", "input": [{"role": "tool", "content": "x"}]}), "input[0].role: unknown role 'tool'"),
            (
                json!({"model": "m", "input": [{"role": "user", "content": 3}]}),
                "input[0].content: expected a string or an array",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"text": "x"}]}]}),
                "input[0].content[0].type: missing",
            ),
            (
                json!({"model": "m", "input": [{"role": "system", "content": [{"type": "input_image", "image_url": "u"}]}]}),
                "input[0].content: system messages may contain only text parts",
            ),
            (
                json!({"model": "m", "input": [{"role": "assistant", "content": [{"type": "input_audio"}]}]}),
                "input[0].content[0].type: unsupported assistant content part 'input_audio'",
            ),
            (
                json!({"model": "m", "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{"}]}),
                "input[0].arguments: tool call arguments are not valid JSON",
            ),
            (json!({"model": "m", "input": [{"type": "function_call", "name": "f"}]}), "input[0].call_id: missing"),
            (
                json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "c"}]}),
                "input[0].output: missing",
            ),
            (
                json!({"model": "m", "input": [{"type": "reasoning", "summary": "x"}]}),
                "input[0].summary: expected an array",
            ),
            (json!({"model": "m", "input": "x", "tools": {}}), "tools: expected an array of tools"),
            (json!({"model": "m", "input": "x", "tools": [{"type": "function"}]}), "tools[0].name: missing"),
            (json!({"model": "m", "input": "x", "tool_choice": "any"}), "tool_choice: expected \"none\""),
            (json!({"model": "m", "input": "x", "tool_choice": {"type": "function"}}), "tool_choice.name: missing"),
            (
                json!({"model": "m", "input": "x", "max_output_tokens": -1}),
                "max_output_tokens: expected a non-negative integer",
            ),
            (json!({"model": "m", "input": "x", "reasoning": "high"}), "reasoning: expected a JSON object"),
            (json!({"model": "m", "input": "x", "store": "no"}), "store: expected true or false"),
            (json!({"model": "m", "input": "x", "metadata": []}), "metadata: expected a JSON object"),
            (json!({"model": "m", "input": "x", "stream": "yes"}), "stream: expected true or false"),
            (json!({"model": "m", "input": "x", "instructions": ["a"]}), "instructions: expected a string"),
        ];
        for (body, want) in cases {
            let got = err(body.clone());
            assert!(got.starts_with(want), "{body}: {got}");
        }
        assert!(invalid_message(parse_request(b"[1]")).contains("expected a JSON object"));
        assert!(invalid_message(parse_request(b"{")).starts_with("body is not valid JSON"));
    }

    // ---------------------------------------------------------------- encode_request

    #[test]
    fn encodes_requests_from_other_dialects_for_a_stateless_upstream() {
        let req = ChatRequest {
            model: "gpt-5".into(),
            system: vec![ContentPart::text("A"), ContentPart::text("B")],
            messages: vec![
                Message::user(vec![
                    ContentPart::text("look"),
                    ContentPart::Image {
                        source: ImageSource::Url { url: "https://x/y.png".into() },
                        detail: None,
                        cache_control: None,
                    },
                ]),
                Message::assistant(vec![
                    ContentPart::Thinking { text: "unsigned".into(), signature: None },
                    ContentPart::Thinking { text: "signed".into(), signature: Some("sig".into()) },
                    ContentPart::RedactedThinking { data: "r".into() },
                    ContentPart::text("a"),
                    ContentPart::text("b"),
                    ContentPart::tool_use("c1", "get_weather", json!({"city": "Paris"})),
                    ContentPart::tool_use("c2", "raw", Value::String("{not json".into())),
                ]),
                Message::user(vec![
                    ContentPart::text("and"),
                    ContentPart::tool_result("c1", vec![ContentPart::text("sun"), ContentPart::text("ny")], false),
                    ContentPart::tool_result(
                        "c2",
                        vec![ContentPart::Image {
                            source: ImageSource::Base64 { media_type: "image/png".into(), data: "AAAA".into() },
                            detail: Some("high".into()),
                            cache_control: None,
                        }],
                        true,
                    ),
                    ContentPart::Opaque(Opaque { dialect: Dialect::Anthropic, value: json!({"type": "document"}) }),
                ]),
            ],
            tools: vec![
                Tool { name: "get_weather".into(), parameters: json!({"type": "object"}), ..Tool::default() },
                Tool { name: "bare".into(), ..Tool::default() },
                Tool {
                    name: "web_search".into(),
                    builtin: Some(Opaque {
                        dialect: Dialect::Anthropic,
                        value: json!({"type": "web_search_20250305"}),
                    }),
                    ..Tool::default()
                },
            ],
            tool_choice: Some(ToolChoice::Tool("get_weather".into())),
            parallel_tool_calls: Some(true),
            max_tokens: Some(512),
            reasoning: Some(Reasoning { budget_tokens: Some(20000), ..Reasoning::default() }),
            stream: true,
            source: Some(Dialect::Anthropic),
            extra: serde_json::Map::from_iter([("ignored".to_owned(), json!(1))]),
            ..ChatRequest::default()
        };
        assert_eq!(
            encode(&req),
            json!({
                "model": "gpt-5",
                "instructions": "A\n\nB",
                "input": [
                    {"type": "message", "role": "user", "content": [
                        {"type": "input_text", "text": "look"},
                        {"type": "input_image", "image_url": "https://x/y.png", "detail": "auto"}]},
                    {"type": "reasoning", "summary": [{"type": "summary_text", "text": "signed"}], "encrypted_content": "sig"},
                    {"type": "message", "role": "assistant", "content": [
                        {"type": "output_text", "text": "a", "annotations": []},
                        {"type": "output_text", "text": "b", "annotations": []}]},
                    {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
                    {"type": "function_call", "call_id": "c2", "name": "raw", "arguments": "{not json"},
                    {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
                    {"type": "function_call_output", "call_id": "c2", "output": [
                        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "high"}]},
                    {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "and"}]}
                ],
                "tools": [
                    {"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": false},
                    {"type": "function", "name": "bare", "parameters": {"type": "object", "properties": {}}, "strict": false}
                ],
                "tool_choice": {"type": "function", "name": "get_weather"},
                "parallel_tool_calls": true,
                "max_output_tokens": 512,
                "reasoning": {"effort": "high", "summary": "auto"},
                "stream": true,
                "store": false,
                "include": ["reasoning.encrypted_content"]
            })
        );
    }

    #[test]
    fn responses_requests_round_trip_with_their_own_fields() {
        let body = json!({
            "model": "gpt-5", "instructions": "Be brief.", "stream": false, "store": true,
            "metadata": {"k": "v"}, "reasoning": {"effort": "minimal"}, "tool_choice": "auto",
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": true}],
            "input": [
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"},
                                                               {"type": "input_file", "file_id": "file-1"}]},
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": "ok"}
            ]
        });
        let out = encode(&parse(body.clone()).unwrap());
        // Everything comes back as it was, with reasoning summaries asked for.
        let mut want = body;
        want["reasoning"]["summary"] = "auto".into();
        assert_eq!(out, want);
    }

    // ---------------------------------------------------------------- answers

    #[test]
    fn parses_answers_with_every_item_kind() {
        let body = json!({
            "id": "resp_1", "object": "response", "model": "gpt-5", "status": "completed", "error": null,
            "output": [
                {"id": "rs_1", "type": "reasoning", "summary": [{"type": "summary_text", "text": "a"},
                                                              {"type": "summary_text", "text": "b"}],
                 "encrypted_content": "enc"},
                {"id": "ws_1", "type": "web_search_call", "status": "completed"},
                {"id": "msg_1", "type": "message", "role": "assistant", "status": "completed",
                 "content": [{"type": "output_text", "text": "Hi ", "annotations": []}, {"type": "refusal", "refusal": "no"}]},
                {"id": "fc_1", "type": "function_call", "call_id": "c1", "name": "f", "arguments": "{\"x\":1}"},
                {"id": "fc_2", "type": "function_call", "name": "g", "arguments": "oops"}
            ],
            "usage": {"input_tokens": 20, "input_tokens_details": {"cached_tokens": 8}, "output_tokens": 5,
                      "output_tokens_details": {"reasoning_tokens": 3}, "total_tokens": 25}
        });
        let r = parse_response(body.to_string().as_bytes()).unwrap();
        assert_eq!((r.id.as_str(), r.model.as_str()), ("resp_1", "gpt-5"));
        assert_eq!(
            r.content,
            vec![
                ContentPart::Thinking { text: "a\n\nb".into(), signature: Some("enc".into()) },
                ContentPart::text("Hi no"),
                ContentPart::tool_use("c1", "f", json!({"x": 1})),
                ContentPart::tool_use("fc_2", "g", json!("oops")),
            ]
        );
        assert_eq!(r.stop_reason, Some(StopReason::ToolUse));
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 12,
                output_tokens: 5,
                cache_read_tokens: 8,
                cache_creation_tokens: 0,
                reasoning_tokens: 3
            }
        );
    }

    #[test]
    fn answer_statuses_and_errors() {
        let stop = |v: Value| parse_response(v.to_string().as_bytes()).map(|r| r.stop_reason);
        let incomplete =
            |reason: &str| json!({"status": "incomplete", "incomplete_details": {"reason": reason}, "output": []});
        assert_eq!(stop(incomplete("max_output_tokens")).unwrap(), Some(StopReason::MaxTokens));
        assert_eq!(stop(incomplete("content_filter")).unwrap(), Some(StopReason::ContentFilter));
        assert_eq!(stop(json!({"status": "completed", "output": []})).unwrap(), Some(StopReason::EndTurn));
        let e = stop(json!({"status": "failed", "error": {"code": "rate_limit_exceeded", "message": "slow down"}}))
            .unwrap_err();
        assert_eq!((e.kind(), e.message()), (ErrorKind::RateLimited, "slow down"));
        let e = stop(json!({"status": "failed", "error": null})).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Upstream);
        let e = stop(json!({"error": {"message": "bad", "type": "invalid_request_error"}})).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        let e = parse_response(b"<html>").unwrap_err();
        assert!(e.message().starts_with("the upstream sent an unreadable response"), "{}", e.message());
        let e = parse_error(429, br#"{"error":{"message":"quota","type":"insufficient_quota"}}"#);
        assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
    }

    #[test]
    fn encodes_answers_as_response_objects() {
        let resp = ChatResponse {
            id: "msg_1".into(),
            model: "claude".into(),
            content: vec![
                ContentPart::Thinking { text: "hm".into(), signature: Some("sig".into()) },
                ContentPart::text("Hel"),
                ContentPart::text("lo"),
                ContentPart::RedactedThinking { data: "x".into() },
                ContentPart::tool_use("toolu_1", "f", json!({"a": 1})),
            ],
            stop_reason: Some(StopReason::MaxTokens),
            usage: Usage {
                input_tokens: 11,
                output_tokens: 7,
                cache_read_tokens: 5,
                cache_creation_tokens: 3,
                reasoning_tokens: 2,
            },
        };
        let out: Value = serde_json::from_slice(&encode_response_at(&resp, "asked", 7)).unwrap();
        assert_eq!(
            out,
            json!({
                "id": "resp_msg_1", "object": "response", "created_at": 7, "status": "incomplete", "error": null,
                "incomplete_details": {"reason": "max_output_tokens"}, "model": "asked",
                "output": [
                    {"type": "reasoning", "id": "rs_msg_1_0", "status": "completed",
                     "summary": [{"type": "summary_text", "text": "hm"}], "encrypted_content": "sig"},
                    {"type": "message", "id": "msg_msg_1_1", "status": "incomplete", "role": "assistant", "content": [
                        {"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}]},
                    {"type": "reasoning", "id": "rs_msg_1_2", "status": "completed", "summary": [],
                     "encrypted_content": "cliproxy-redacted:x"},
                    {"type": "function_call", "id": "fc_toolu_1", "status": "completed", "call_id": "toolu_1",
                     "name": "f", "arguments": "{\"a\":1}"}
                ],
                "usage": {"input_tokens": 19, "input_tokens_details": {"cached_tokens": 5}, "output_tokens": 7,
                          "output_tokens_details": {"reasoning_tokens": 2}, "total_tokens": 26}
            })
        );
        let done = ChatResponse { stop_reason: Some(StopReason::ToolUse), ..ChatResponse::default() };
        let out: Value = serde_json::from_slice(&encode_response_at(&done, "m", 1)).unwrap();
        assert_eq!((out["status"].as_str(), &out["incomplete_details"]), (Some("completed"), &Value::Null));
        assert_eq!(out["id"], "resp_cliproxy");
    }

    #[test]
    fn redacted_thinking_travels_through_the_client_and_back() {
        let resp = ChatResponse {
            content: vec![
                ContentPart::RedactedThinking { data: "EmwK".into() },
                ContentPart::tool_use("t", "f", json!({})),
            ],
            ..ChatResponse::default()
        };
        let answer: Value = serde_json::from_slice(&encode_response_at(&resp, "m", 1)).unwrap();
        let mut input = vec![json!({"role": "user", "content": "q"})];
        input.extend(answer["output"].as_array().unwrap().iter().cloned());
        let req = parse(json!({"model": "m", "input": input})).unwrap();
        assert_eq!(req.messages[1].content, resp.content);
        // The stream encoder writes it the same way.
        let out = encode_stream(&[
            StreamEvent::BlockStart { index: 0, block: BlockKind::RedactedThinking { data: "EmwK".into() } },
            StreamEvent::BlockStop { index: 0 },
        ]);
        let done = datas(&out).into_iter().find(|v| v["type"] == "response.output_item.done").unwrap();
        assert_eq!(done["item"]["encrypted_content"], "cliproxy-redacted:EmwK");
    }

    #[test]
    fn errors_after_the_start_are_failed_responses() {
        let e = Error::new(ErrorKind::RateLimited, "slow down");
        let ev = error_event(&e);
        assert_eq!(ev.event, Some("response.failed"));
        let v: Value = serde_json::from_str(&ev.data).unwrap();
        assert_eq!(
            v,
            json!({"type": "response.failed", "response": {"object": "response", "status": "failed",
                   "error": {"code": "rate_limit_exceeded", "message": "slow down"}, "incomplete_details": null, "output": []}})
        );
        // And a Responses upstream's failure reads back as the same kind.
        let back = parse_stream(Dialect::Responses.stream_parser(), &[sse(ev.event, ev.data.clone())]).unwrap_err();
        assert_eq!((back.kind(), back.message()), (ErrorKind::RateLimited, "slow down"));
    }

    #[test]
    fn passthrough_reads_usage_and_failures() {
        let done = json!({"type": "response.completed", "sequence_number": 9, "response": {"usage":
            {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 2, "total_tokens": 12}}});
        let u = passthrough_usage(&sse(Some("response.completed"), done.to_string())).unwrap();
        assert_eq!(u, Some(Usage { input_tokens: 6, output_tokens: 2, cache_read_tokens: 4, ..Usage::default() }));
        // Without an `event:` line the type is read from the data.
        assert_eq!(passthrough_usage(&sse(None, done.to_string())).unwrap(), u);
        let delta = json!({"type": "response.output_text.delta", "delta": "usage"});
        assert_eq!(passthrough_usage(&sse(None, delta.to_string())).unwrap(), None);
        let err = json!({"type": "error", "code": "rate_limit_exceeded", "message": "slow", "param": null});
        assert_eq!(passthrough_usage(&sse(Some("error"), err.to_string())).unwrap_err().kind(), ErrorKind::RateLimited);
        assert_eq!(
            answer_usage(br#"{"id":"r","usage":{"input_tokens":3,"output_tokens":1}}"#),
            Some(Usage { input_tokens: 3, output_tokens: 1, ..Usage::default() })
        );
        assert_eq!(answer_usage(b"{}"), None);
    }

    // ---------------------------------------------------------------- stream parser

    fn run(events: &[Value]) -> Result<Vec<StreamEvent>, Error> {
        let events: Vec<_> = events.iter().map(|e| sse(e["type"].as_str(), e.to_string())).collect();
        parse_stream(Dialect::Responses.stream_parser(), &events)
    }

    #[test]
    fn parses_a_stream_with_every_item_kind() {
        let evs = run(&[
            json!({"type": "response.created", "response": {"id": "resp_1", "model": "gpt-5", "status": "in_progress"}}),
            json!({"type": "response.in_progress", "response": {"id": "resp_1"}}),
            json!({"type": "response.output_item.added", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1", "summary": []}}),
            json!({"type": "response.reasoning_summary_part.added", "output_index": 0, "summary_index": 0}),
            json!({"type": "response.reasoning_summary_text.delta", "output_index": 0, "summary_index": 0, "delta": "a"}),
            json!({"type": "response.reasoning_summary_part.added", "output_index": 0, "summary_index": 1}),
            json!({"type": "response.reasoning_summary_text.delta", "output_index": 0, "summary_index": 1, "delta": "b"}),
            json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "reasoning", "id": "rs_1",
                   "summary": [{"type": "summary_text", "text": "a"}, {"type": "summary_text", "text": "b"}], "encrypted_content": "enc"}}),
            json!({"type": "response.output_item.added", "output_index": 1, "item": {"type": "web_search_call", "id": "ws"}}),
            json!({"type": "response.output_item.done", "output_index": 1, "item": {"type": "web_search_call", "id": "ws"}}),
            json!({"type": "response.output_item.added", "output_index": 2, "item": {"type": "message", "id": "m", "content": []}}),
            json!({"type": "response.content_part.added", "output_index": 2, "content_index": 0, "part": {"type": "output_text", "text": ""}}),
            json!({"type": "response.output_text.delta", "output_index": 2, "content_index": 0, "delta": "Hi"}),
            json!({"type": "response.output_text.done", "output_index": 2, "content_index": 0, "text": "Hi"}),
            json!({"type": "response.output_item.done", "output_index": 2, "item": {"type": "message", "id": "m",
                   "content": [{"type": "output_text", "text": "Hi"}]}}),
            json!({"type": "response.output_item.added", "output_index": 3, "item": {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "f", "arguments": ""}}),
            json!({"type": "response.function_call_arguments.delta", "output_index": 3, "delta": "{\"x\":"}),
            json!({"type": "response.function_call_arguments.delta", "output_index": 3, "delta": "1}"}),
            json!({"type": "response.function_call_arguments.done", "output_index": 3, "arguments": "{\"x\":1}"}),
            json!({"type": "response.output_item.done", "output_index": 3, "item": {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{\"x\":1}"}}),
            json!({"type": "response.completed", "response": {"id": "resp_1", "status": "completed",
                   "usage": {"input_tokens": 9, "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 2}}}}),
        ])
        .unwrap();
        use StreamEvent::*;
        assert_eq!(
            evs,
            [
                Start { id: "resp_1".into(), model: "gpt-5".into(), usage: Usage::default() },
                BlockStart { index: 0, block: BlockKind::Thinking },
                ThinkingDelta { index: 0, text: "a".into() },
                ThinkingDelta { index: 0, text: "\n\n".into() },
                ThinkingDelta { index: 0, text: "b".into() },
                SignatureDelta { index: 0, signature: "enc".into() },
                BlockStop { index: 0 },
                BlockStart { index: 1, block: BlockKind::Text },
                TextDelta { index: 1, text: "Hi".into() },
                BlockStop { index: 1 },
                BlockStart { index: 2, block: BlockKind::ToolUse { id: "c1".into(), name: "f".into() } },
                ToolArgsDelta { index: 2, json: "{\"x\":".into() },
                ToolArgsDelta { index: 2, json: "1}".into() },
                BlockStop { index: 2 },
                Finish {
                    stop_reason: Some(StopReason::ToolUse),
                    usage: Usage { input_tokens: 9, output_tokens: 4, reasoning_tokens: 2, ..Usage::default() }
                },
            ]
        );
    }

    #[test]
    fn items_sent_whole_and_deltas_without_items() {
        let evs = run(&[
            json!({"type": "response.output_item.done", "output_index": 0, "item": {"type": "message",
                   "content": [{"type": "output_text", "text": "whole"}]}}),
            json!({"type": "response.output_item.added", "output_index": 1, "item": {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}}),
            json!({"type": "response.output_item.done", "output_index": 1, "item": {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}}),
            json!({"type": "response.output_text.delta", "output_index": 2, "delta": "loose"}),
            json!({"type": "response.incomplete", "response": {"status": "incomplete", "incomplete_details": {"reason": "max_output_tokens"}}}),
            json!({"type": "response.output_text.delta", "output_index": 3, "delta": "after the end"}),
        ])
        .unwrap();
        use StreamEvent::*;
        assert_eq!(
            evs,
            [
                Start { id: String::new(), model: String::new(), usage: Usage::default() },
                BlockStart { index: 0, block: BlockKind::Text },
                TextDelta { index: 0, text: "whole".into() },
                BlockStop { index: 0 },
                BlockStart { index: 1, block: BlockKind::ToolUse { id: "c".into(), name: "f".into() } },
                ToolArgsDelta { index: 1, json: "{}".into() },
                BlockStop { index: 1 },
                BlockStart { index: 2, block: BlockKind::Text },
                TextDelta { index: 2, text: "loose".into() },
                BlockStop { index: 2 },
                Finish { stop_reason: Some(StopReason::MaxTokens), usage: Usage::default() },
            ]
        );
    }

    #[test]
    fn stream_failures() {
        let e = run(&[
            json!({"type": "response.created", "response": {"id": "r"}}),
            json!({"type": "response.failed", "response": {"status": "failed", "error": {"code": "server_error", "message": "boom"}}}),
        ])
        .unwrap_err();
        assert_eq!((e.kind(), e.message()), (ErrorKind::Upstream, "boom"));
        let e = run(&[json!({"type": "error", "code": "insufficient_quota", "message": "pay"})]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
        let e = run(&[json!({"type": "response.created", "response": {"id": "r"}})]).unwrap_err();
        assert!(e.message().contains("ended early"), "{}", e.message());
        let e = parse_stream(Dialect::Responses.stream_parser(), &[sse(None, "{nope")]).unwrap_err();
        assert!(e.message().starts_with("the upstream sent an unreadable stream event"));
    }

    // ---------------------------------------------------------------- stream encoder

    fn encode_stream(events: &[StreamEvent]) -> Vec<OutEvent> {
        testing::encode_stream(AnyStreamEncoder::Responses(StreamEncoder::with_created("asked", 7)), events)
    }

    use crate::dialects::AnyStreamEncoder;

    /// `type` of every event, checking it is also the SSE event name and the numbering is 0, 1, 2, …
    fn types(out: &[OutEvent]) -> Vec<String> {
        datas(out)
            .iter()
            .zip(out)
            .enumerate()
            .map(|(n, (v, e))| {
                assert_eq!(v["sequence_number"], n, "{v}");
                assert_eq!(Some(v["type"].as_str().unwrap()), e.event);
                v["type"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    #[test]
    fn encodes_the_event_sequence_of_every_item_kind() {
        use StreamEvent::*;
        let usage = Usage { input_tokens: 11, output_tokens: 7, cache_read_tokens: 5, ..Usage::default() };
        let out = encode_stream(&[
            Start { id: "msg_1".into(), model: "claude".into(), usage: Usage::default() },
            Ping,
            BlockStart { index: 0, block: BlockKind::Thinking },
            ThinkingDelta { index: 0, text: "hm".into() },
            SignatureDelta { index: 0, signature: "sig".into() },
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
        ]);
        assert_eq!(
            types(&out),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.reasoning_summary_part.added",
                "response.reasoning_summary_text.delta",
                "response.reasoning_summary_text.done",
                "response.reasoning_summary_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let d = datas(&out);
        assert_eq!(
            d[0]["response"],
            json!({"id": "resp_msg_1", "object": "response", "created_at": 7, "status": "in_progress", "error": null,
                   "incomplete_details": null, "model": "asked", "output": [], "usage": null})
        );
        assert_eq!(
            d[2],
            json!({"type": "response.output_item.added", "sequence_number": 2, "output_index": 0,
                   "item": {"type": "reasoning", "id": "rs_msg_1_0", "status": "in_progress", "summary": []}})
        );
        assert_eq!(
            d[4],
            json!({"type": "response.reasoning_summary_text.delta", "sequence_number": 4, "item_id": "rs_msg_1_0",
                   "output_index": 0, "summary_index": 0, "delta": "hm"})
        );
        assert_eq!(d[7]["item"]["encrypted_content"], "sig");
        assert_eq!(
            d[9],
            json!({"type": "response.content_part.added", "sequence_number": 9, "item_id": "msg_msg_1_1", "output_index": 1,
                   "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}})
        );
        assert_eq!(
            d[10],
            json!({"type": "response.output_text.delta", "sequence_number": 10, "item_id": "msg_msg_1_1", "output_index": 1,
                   "content_index": 0, "delta": "Hi", "logprobs": []})
        );
        assert_eq!(
            d[14]["item"],
            json!({"type": "function_call", "id": "fc_t", "status": "in_progress", "call_id": "t", "name": "f", "arguments": ""})
        );
        assert_eq!(
            d[17],
            json!({"type": "response.function_call_arguments.done", "sequence_number": 17, "item_id": "fc_t",
                   "output_index": 2, "arguments": "{\"a\":1}"})
        );
        let done = &d[19]["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"].as_array().unwrap().len(), 3);
        assert_eq!(done["output"][1]["content"][0]["text"], "Hi");
        assert_eq!(done["output"][2]["arguments"], "{\"a\":1}");
        assert_eq!(
            done["usage"],
            json!({"input_tokens": 16, "input_tokens_details": {"cached_tokens": 5}, "output_tokens": 7,
                   "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 23})
        );
    }

    #[test]
    fn parallel_calls_stay_open_beside_each_other_and_text_closes_them() {
        use StreamEvent::*;
        let call = |index: usize, id: &str| BlockStart {
            index,
            block: BlockKind::ToolUse { id: id.into(), name: "f".into() },
        };
        let out = encode_stream(&[
            call(0, "a"),
            ToolArgsDelta { index: 0, json: "{}".into() },
            call(1, "b"),
            ToolArgsDelta { index: 1, json: "{}".into() },
            ToolArgsDelta { index: 0, json: " ".into() },
            BlockStop { index: 0 },
            TextDelta { index: 5, text: "x".into() },
            Finish { stop_reason: Some(StopReason::MaxTokens), usage: Usage::default() },
        ]);
        let d = datas(&out);
        let seq: Vec<(String, Value)> =
            d.iter().map(|v| (v["type"].as_str().unwrap().to_owned(), v["output_index"].clone())).collect();
        let ev = |t: &str, i: usize| (t.to_owned(), json!(i));
        assert_eq!(
            seq[2..],
            [
                ev("response.output_item.added", 0),
                ev("response.function_call_arguments.delta", 0),
                ev("response.output_item.added", 1),
                ev("response.function_call_arguments.delta", 1),
                ev("response.function_call_arguments.delta", 0),
                ev("response.function_call_arguments.done", 0),
                ev("response.output_item.done", 0),
                ev("response.function_call_arguments.done", 1),
                ev("response.output_item.done", 1),
                ev("response.output_item.added", 2),
                ev("response.content_part.added", 2),
                ev("response.output_text.delta", 2),
                ev("response.output_text.done", 2),
                ev("response.content_part.done", 2),
                ev("response.output_item.done", 2),
                ("response.incomplete".to_owned(), Value::Null),
            ]
        );
        assert_eq!(d[7]["arguments"], "{} ");
        let last = &d.last().unwrap()["response"];
        assert_eq!(
            (last["status"].as_str(), last["incomplete_details"]["reason"].as_str()),
            (Some("incomplete"), Some("max_output_tokens"))
        );
        assert_eq!(last["output"][2]["status"], "incomplete");
    }

    #[test]
    fn a_stream_without_start_or_finish_is_still_complete() {
        let out = encode_stream(&[StreamEvent::TextDelta { index: 0, text: "x".into() }]);
        let t = types(&out);
        assert_eq!(t.first().map(String::as_str), Some("response.created"));
        assert_eq!(t.last().map(String::as_str), Some("response.completed"));
        assert_eq!(datas(&out)[0]["response"]["id"], "resp_cliproxy");
        assert_eq!(encode_stream(&[]).len(), 3);
    }

    /// Random event sequences: the stream is well-formed and what a client assembles is what went in.
    mod props {
        use super::*;
        use proptest::prelude::*;

        /// JSON of the shapes the dialect reads, with the keys it looks for, nested.
        fn json_value() -> impl Strategy<Value = Value> {
            let key = prop::sample::select(vec![
                "type",
                "role",
                "content",
                "text",
                "call_id",
                "name",
                "arguments",
                "output",
                "summary",
                "encrypted_content",
                "image_url",
                "input",
                "model",
                "tools",
                "tool_choice",
                "reasoning",
                "effort",
                "response",
                "item",
                "output_index",
                "delta",
                "status",
                "usage",
                "error",
                "mode",
            ]);
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                prop::sample::select(vec![
                    "message",
                    "function_call",
                    "function_call_output",
                    "reasoning",
                    "user",
                    "assistant",
                    "system",
                    "input_text",
                    "output_text",
                    "input_image",
                    "function",
                    "response.completed",
                    "response.output_item.added",
                    "response.output_text.delta",
                    "response.failed",
                    "{}",
                    "",
                ])
                .prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 48, 6, move |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                    prop::collection::vec((key.clone(), inner), 0..6)
                        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
                ]
            })
        }

        proptest! {
            /// Any body is a request or an `invalid_request` error, never a panic.
            #[test]
            fn any_body_parses_or_is_refused(input in json_value(), tools in json_value(), choice in json_value()) {
                let body = json!({"model": "m", "input": input, "tools": tools, "tool_choice": choice});
                if let Err(e) = parse_request(body.to_string().as_bytes()) {
                    prop_assert_eq!(e.kind(), ErrorKind::InvalidRequest);
                }
            }

            /// Any upstream event data is read or reported as an error, never a panic.
            #[test]
            fn any_upstream_events_parse_or_fail(events in prop::collection::vec(json_value(), 0..8)) {
                let events: Vec<_> = events.iter().map(|e| sse(None, e.to_string())).collect();
                let _ = parse_stream(Dialect::Responses.stream_parser(), &events);
                for e in &events {
                    let _ = parse_response(e.data.as_bytes());
                    let _ = passthrough_usage(e);
                }
            }
        }

        proptest! {
            #[test]
            fn streams_are_well_formed_and_deltas_concatenate(events in proptest::collection::vec(testing::stream_event(), 0..40)) {
                let mut want_text = String::new();
                let mut want_reasoning = String::new();
                for ev in &events {
                    match ev {
                        StreamEvent::TextDelta { text, .. } => want_text.push_str(text),
                        StreamEvent::ThinkingDelta { text, .. } => want_reasoning.push_str(text),
                        StreamEvent::Finish { .. } => break,
                        _ => {}
                    }
                }
                let out = encode_stream(&events);
                let t = types(&out);
                prop_assert_eq!(t[0].as_str(), "response.created");
                prop_assert!(matches!(t.last().unwrap().as_str(), "response.completed" | "response.incomplete"));
                prop_assert_eq!(t.iter().filter(|t| t.starts_with("response.completed") || t.starts_with("response.incomplete")).count(), 1);
                let (mut text, mut reasoning) = (String::new(), String::new());
                // Output index → whether the item is open; content events only for open items.
                let mut open: Vec<bool> = Vec::new();
                for v in datas(&out) {
                    let i = v["output_index"].as_u64().map(|i| i as usize);
                    match v["type"].as_str().unwrap() {
                        "response.output_item.added" => {
                            prop_assert_eq!(i, Some(open.len()));
                            open.push(true);
                        }
                        "response.output_item.done" => {
                            prop_assert!(open[i.unwrap()]);
                            open[i.unwrap()] = false;
                        }
                        "response.output_text.delta" => text.push_str(v["delta"].as_str().unwrap()),
                        "response.reasoning_summary_text.delta" => reasoning.push_str(v["delta"].as_str().unwrap()),
                        "response.completed" | "response.incomplete" => {
                            prop_assert!(open.iter().all(|o| !o));
                            prop_assert_eq!(v["response"]["output"].as_array().unwrap().len(), open.len());
                        }
                        _ => {}
                    }
                    if let Some(i) = i {
                        prop_assert!(i < open.len());
                    }
                }
                prop_assert_eq!(text, want_text);
                prop_assert_eq!(reasoning, want_reasoning);
            }
        }
    }
}
