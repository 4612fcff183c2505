//! Gemini `generateContent`: the client dialect of `/v1beta/models/{model}:generateContent` (and
//! `:streamGenerateContent`, `:countTokens`) and the wire format of Gemini upstreams.
//!
//! A Gemini body names neither its model nor whether it streams: the URL does, so [`parse_request`] takes
//! both from the caller. Mapping decisions (the IR is described in [`crate::types`]):
//! - Keys are read in the API's camelCase and in the snake_case its JSON parser also accepts
//!   (`system_instruction`, `inline_data`, `mime_type`, …); encodings write camelCase.
//! - Roles: `user` (or none, or the legacy `function`/`tool` of function-response turns) and `model`.
//!   `systemInstruction` text parts are the system prompt; other parts there are rejected.
//! - Parts: `text`; `inlineData`/`fileData` of images become images (base64 / URL), other media stay opaque,
//!   for a Gemini upstream only, as do `executableCode`, `codeExecutionResult` and parts added later.
//! - Thoughts: consecutive `thought: true` parts form one thinking part, signed by their `thoughtSignature`.
//!   A signature on any other part (Gemini signs function calls) becomes an empty signed thinking part just
//!   before it, and encodings put it back on that part. Unsigned thinking (from OpenAI-style models) is left
//!   out of requests; Anthropic's redacted thinking has no Gemini form and is left out everywhere.
//! - Signatures in answers to Gemini clients are wrapped: Google's SDKs hold `thoughtSignature` as bytes, so
//!   they reject text that is not base64 and write back URL-safe base64 whatever they read, which would
//!   break another model's signature (Claude checks its own to the byte). A client gets URL-safe base64 of a
//!   tag and the signature, which survives that round trip, and the tag tells the signature apart when the
//!   client sends it back; signatures without it are taken as they are.
//! - Tool-call ids: Gemini clients may leave them out. A call without one gets `call_<n>`; a
//!   `functionResponse` without one answers the earliest unanswered call of its name. Encodings always write
//!   the id, so clients that echo it are matched exactly.
//! - `functionResponse.response`: `{"output": x}` / `{"error": x}` (Google's convention) give the result text
//!   and the error flag; any other object is the result, as JSON text. Encoding writes a result that is one
//!   JSON object as the response itself and other text as `{"output": …}` (`{"error": …}` for errors).
//! - Tools: `functionDeclarations` become tools. `parameters` (Gemini's OpenAPI subset, whose types may be
//!   upper case) becomes JSON Schema by lower-casing the types; `parametersJsonSchema` is taken as it is, and
//!   is what encodings write. Other tools (`googleSearch`, `codeExecution`, …) are provider-defined, for a
//!   Gemini upstream only.
//! - `toolConfig.functionCallingConfig.mode`: AUTO (and VALIDATED) ⇄ auto, NONE ⇄ none, ANY ⇄ required; ANY
//!   with one allowed function ⇄ that tool, with several it keeps only the allowed tools.
//! - `generationConfig`: `maxOutputTokens`, `temperature`, `topP`, `topK`, `stopSequences` map one to one; the
//!   rest (`candidateCount`, `responseMimeType`, `responseSchema`, penalties, `seed`, …) is kept for a Gemini
//!   upstream only (only the first candidate is ever answered).
//! - `thinkingConfig`: `thinkingLevel` is an effort; `thinkingBudget` N > 0 a budget, 0 turns thinking off
//!   (effort `none`), −1 (dynamic) and `includeThoughts` alone read as effort `medium`, the level every
//!   upstream takes. Encoding writes a `thinkingBudget` (efforts through the shared effort table: every
//!   thinking Gemini model takes a budget, not every one a level) and `includeThoughts` when thinking is on.
//! - Cache hints, `parallel_tool_calls` and `user` have no Gemini form and are not written.
//! - finishReason: STOP ⇄ end of turn, or tool use when the answer calls a function (Gemini has no reason of
//!   its own for it); MAX_TOKENS ⇄ max tokens; SAFETY and the other filter reasons ⇄ content filter. Refusals
//!   are written as SAFETY, reasons Gemini does not define as OTHER.
//! - Usage: `promptTokenCount` includes the cached prompt (`cachedContentTokenCount`) and
//!   `candidatesTokenCount` excludes the thoughts (`thoughtsTokenCount`), so input = prompt − cached and
//!   output = candidates + thoughts. Encoding writes every prompt token (cache writes included) as the prompt
//!   and total = prompt + output.
//! - Streams are `data:` chunks, each a whole `GenerateContentResponse`, with no `[DONE]`: the end of the body
//!   ends the answer. Function calls arrive whole; the finish reason and usage come with the last chunks.
//! - Errors are Google's `{"error":{"code","message","status","details"}}`.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::json::{self, Kind, Obj, Path, Str};
use super::{Dialect, OutEvent, effort_budget, error_snippet, image_from_url, to_json, to_json_string, upstream_error};
use crate::error::{Error, ErrorKind};
use crate::stream::sse::SseEvent;
use crate::types::{
    BlockKind, ChatRequest, ChatResponse, ContentPart, ImageSource, Message, Opaque, Reasoning, Role, StopReason,
    StreamEvent, Tool, ToolChoice, Usage,
};

/// Nested objects whose unmodelled fields are kept in [`ChatRequest::extra`] under their own key and merged
/// back by the encoder, which writes the modelled ones itself.
const NESTED: [&str; 2] = ["generationConfig", "toolConfig"];

// =========================================================================================================
// Keys

/// A key in camelCase: the API's JSON parser takes `inline_data` for `inlineData`.
fn camel(key: &str) -> Cow<'_, str> {
    if !key.contains('_') {
        return Cow::Borrowed(key);
    }
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// The value of a field named `name` (camelCase) in either spelling; the last wins, `null` is absent.
fn field<'a>(o: &Obj<'a>, name: &str) -> Option<&'a RawValue> {
    o.fields().filter(|(k, _)| camel(k) == name).map(|(_, v)| v).last().filter(|v| json::kind(v) != Kind::Null)
}

fn string_field<'a>(o: &Obj<'a>, name: &str, path: &Path<'_>) -> Result<Option<Cow<'a, str>>, Error> {
    field(o, name).map(|raw| json::string(raw, &path.key(name))).transpose()
}

// =========================================================================================================
// Thought signatures for Gemini clients (see the module docs)

/// What a wrapped signature's bytes start with.
const SIGNATURE_TAG: &[u8] = b"cliproxy-signature:";

/// A signature as a Gemini client receives it.
fn wrap_signature(signature: &str) -> String {
    URL_SAFE.encode([SIGNATURE_TAG, signature.as_bytes()].concat())
}

/// The signature a Gemini client sent back: the original of a wrapped one (in any base64 spelling the
/// client chose), any other as it is.
fn unwrap_signature(signature: Cow<'_, str>) -> Cow<'_, str> {
    let url_safe: String = signature
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    match URL_SAFE_NO_PAD.decode(url_safe).ok().and_then(|b| b.strip_prefix(SIGNATURE_TAG).map(<[u8]>::to_vec)) {
        Some(original) => String::from_utf8(original).map_or(signature, Cow::Owned),
        None => signature,
    }
}

// =========================================================================================================
// Parts: shared by requests, answers and stream chunks

/// One part as read, before it becomes IR parts (requests, answers) or stream events.
struct PartIn<'a> {
    data: DataIn<'a>,
    thought: bool,
    signature: Option<Cow<'a, str>>,
}

enum DataIn<'a> {
    Text(Cow<'a, str>),
    /// No data: a thought part carrying only its signature.
    Empty,
    Image(ImageSource),
    Call {
        id: Option<Cow<'a, str>>,
        name: Cow<'a, str>,
        args: Option<&'a RawValue>,
    },
    Response {
        id: Option<Cow<'a, str>>,
        name: Cow<'a, str>,
        response: Option<&'a RawValue>,
        media: Vec<ContentPart>,
    },
    Opaque(Value),
}

fn read_part<'a>(raw: &'a RawValue, path: &Path<'_>) -> Result<PartIn<'a>, Error> {
    let o = Obj::read(raw, path)?;
    let (mut thought, mut signature, mut data) = (false, None, None);
    for (key, v) in o.fields() {
        if json::kind(v) == Kind::Null {
            continue;
        }
        let p = path.key(key);
        let d = match camel(key).as_ref() {
            "thought" => {
                thought = json::boolean(v, &p)?;
                continue;
            }
            "thoughtSignature" => {
                signature = Some(json::string(v, &p)?).filter(|s| !s.is_empty());
                continue;
            }
            "text" => DataIn::Text(json::string(v, &p)?),
            "inlineData" | "fileData" => match read_media(v, &p)? {
                Some(source) => DataIn::Image(source),
                None => DataIn::Opaque(json::value(raw, path)?),
            },
            "functionCall" => {
                let c = Obj::read(v, &p)?;
                let name =
                    string_field(&c, "name", &p)?.ok_or_else(|| p.key("name").invalid("missing; expected a string"))?;
                DataIn::Call { id: string_field(&c, "id", &p)?, name, args: field(&c, "args") }
            }
            "functionResponse" => {
                let r = Obj::read(v, &p)?;
                let name =
                    string_field(&r, "name", &p)?.ok_or_else(|| p.key("name").invalid("missing; expected a string"))?;
                let media = match field(&r, "parts") {
                    Some(parts) => read_media_parts(parts, &p.key("parts"))?,
                    None => Vec::new(),
                };
                DataIn::Response { id: string_field(&r, "id", &p)?, name, response: field(&r, "response"), media }
            }
            // Metadata (`videoMetadata`, `partMetadata`, `mediaResolution`) and data kinds the IR does not model.
            _ => continue,
        };
        if data.is_some() {
            return Err(path.invalid(
                "a part holds one of text, inlineData, fileData, functionCall or functionResponse, not several",
            ));
        }
        data = Some(d);
    }
    let data = match data {
        Some(d) => d,
        None if thought || signature.is_some() => DataIn::Empty,
        None => DataIn::Opaque(json::value(raw, path)?),
    };
    Ok(PartIn { data, thought, signature })
}

/// `inlineData {mimeType, data}` or `fileData {mimeType, fileUri}`: an image source, or `None` for other
/// media (documents, audio, video), which only Gemini reads.
fn read_media(raw: &RawValue, path: &Path<'_>) -> Result<Option<ImageSource>, Error> {
    let o = Obj::read(raw, path)?;
    let mime = string_field(&o, "mimeType", path)?;
    let Some(mime) = mime.filter(|m| m.starts_with("image/")) else { return Ok(None) };
    if let Some(data) = string_field(&o, "data", path)? {
        return Ok(Some(ImageSource::Base64 { media_type: mime.into_owned(), data: data.into_owned() }));
    }
    let uri =
        string_field(&o, "fileUri", path)?.ok_or_else(|| path.key("data").invalid("missing; expected a string"))?;
    Ok(Some(image_from_url(&uri)))
}

/// The `parts` of a `functionResponse`: images, as tool-result content; other media are left out.
fn read_media_parts(raw: &RawValue, path: &Path<'_>) -> Result<Vec<ContentPart>, Error> {
    let mut out = Vec::new();
    for (i, item) in json::array(raw, path, "an array of parts")?.into_iter().enumerate() {
        let p = path.index(i);
        let o = Obj::read(item, &p)?;
        for (key, v) in o.fields() {
            if matches!(camel(key).as_ref(), "inlineData" | "fileData")
                && json::kind(v) != Kind::Null
                && let Some(source) = read_media(v, &p.key(key))?
            {
                out.push(ContentPart::Image { source, detail: None, cache_control: None });
            }
        }
    }
    Ok(out)
}

fn read_parts<'a>(raw: &'a RawValue, path: &Path<'_>) -> Result<Vec<PartIn<'a>>, Error> {
    json::array(raw, path, "an array of parts")?
        .into_iter()
        .enumerate()
        .map(|(i, p)| read_part(p, &path.index(i)))
        .collect()
}

/// Tool-call ids across one request or answer (see the module docs).
#[derive(Debug, Default)]
struct CallIds {
    calls: Vec<Call>,
    generated: usize,
}

#[derive(Debug)]
struct Call {
    id: String,
    name: String,
    answered: bool,
}

impl CallIds {
    /// The id of a call: its own, or a new one.
    fn call(&mut self, id: Option<Cow<'_, str>>, name: &str) -> String {
        let id = match id.filter(|i| !i.is_empty()) {
            Some(id) => id.into_owned(),
            None => self.fresh(),
        };
        self.calls.push(Call { id: id.clone(), name: name.to_owned(), answered: false });
        id
    }

    /// The id of the call a response answers: its own, else the earliest unanswered call of that name.
    fn response(&mut self, id: Option<Cow<'_, str>>, name: &str) -> String {
        let call = match id.filter(|i| !i.is_empty()) {
            Some(id) => match self.calls.iter_mut().find(|c| c.id == id) {
                Some(call) => call,
                None => return id.into_owned(),
            },
            None => match self.calls.iter_mut().find(|c| !c.answered && c.name == name) {
                Some(call) => call,
                None => return self.fresh(),
            },
        };
        call.answered = true;
        call.id.clone()
    }

    /// `call_<n>`, unless the conversation already has that id.
    fn fresh(&mut self) -> String {
        loop {
            self.generated += 1;
            let id = format!("call_{}", self.generated);
            if !self.calls.iter().any(|c| c.id == id) {
                return id;
            }
        }
    }
}

/// Appends a part read from a request or an answer to `out` (see the module docs for thoughts).
fn push_part(part: PartIn<'_>, ids: &mut CallIds, path: &Path<'_>, out: &mut Vec<ContentPart>) -> Result<(), Error> {
    let signature = part.signature.map(Cow::into_owned);
    if part.thought && matches!(part.data, DataIn::Text(_) | DataIn::Empty) {
        let text = match part.data {
            DataIn::Text(t) => t,
            _ => Cow::Borrowed(""),
        };
        if let Some(ContentPart::Thinking { text: t, signature: s @ None }) = out.last_mut() {
            t.push_str(&text);
            *s = signature;
        } else {
            out.push(ContentPart::Thinking { text: text.into_owned(), signature });
        }
        return Ok(());
    }
    if signature.is_some() {
        out.push(ContentPart::Thinking { text: String::new(), signature });
    }
    let part = match part.data {
        DataIn::Text(text) => ContentPart::text(text),
        DataIn::Empty => return Ok(()),
        DataIn::Image(source) => ContentPart::Image { source, detail: None, cache_control: None },
        DataIn::Call { id, name, args } => {
            let input = match args {
                Some(a) => json::value(a, &path.key("functionCall").key("args"))?,
                None => Value::Object(Map::new()),
            };
            ContentPart::tool_use(ids.call(id, &name), name, input)
        }
        DataIn::Response { id, name, response, mut media } => {
            let (mut content, is_error) = match response {
                Some(r) => tool_result(r, &path.key("functionResponse").key("response"))?,
                None => (Vec::new(), false),
            };
            content.append(&mut media);
            ContentPart::tool_result(ids.response(id, &name), content, is_error)
        }
        DataIn::Opaque(value) => ContentPart::Opaque(Opaque { dialect: Dialect::Gemini, value }),
    };
    out.push(part);
    Ok(())
}

/// A `functionResponse.response` as tool-result content and error flag (see the module docs).
fn tool_result(raw: &RawValue, path: &Path<'_>) -> Result<(Vec<ContentPart>, bool), Error> {
    let text = |v: &RawValue| -> Result<String, Error> {
        match json::kind(v) {
            Kind::String => json::string(v, path).map(Cow::into_owned),
            _ => Ok(json::value(v, path)?.to_string()),
        }
    };
    let (text, is_error) = match json::kind(raw) {
        Kind::Object => {
            let o = Obj::read(raw, path)?;
            let mut fields = o.fields().filter(|(_, v)| json::kind(v) != Kind::Null);
            match (fields.next(), fields.next()) {
                (Some(("output", v)), None) => (text(v)?, false),
                (Some(("error", v)), None) => (text(v)?, true),
                _ => (text(raw)?, false),
            }
        }
        _ => (text(raw)?, false),
    };
    Ok((if text.is_empty() { Vec::new() } else { vec![ContentPart::text(text)] }, is_error))
}

// =========================================================================================================
// Requests: client body → IR

/// Parses and validates a client's `generateContent` body. `model` and `stream` come from the URL
/// (`/v1beta/models/{model}:generateContent` or `:streamGenerateContent`).
pub fn parse_request(body: &[u8], model: &str, stream: bool) -> Result<ChatRequest, Error> {
    let root = Path::Root;
    let obj = Obj::from_body(body)?;
    check_url_model(model)?;
    let mut req =
        ChatRequest { model: model.to_owned(), stream, source: Some(Dialect::Gemini), ..ChatRequest::default() };
    let mut allowed: Option<Vec<String>> = None;
    let mut contents = None;
    for (key, raw) in obj.fields() {
        if json::kind(raw) == Kind::Null {
            continue;
        }
        let path = root.key(key);
        match camel(key).as_ref() {
            "contents" => contents = Some((raw, key)),
            "systemInstruction" => req.system = parse_system(raw, &path)?,
            "tools" => req.tools = parse_tools(raw, &path)?,
            "toolConfig" => (req.tool_choice, allowed) = parse_tool_config(raw, &path, &mut req.extra)?,
            "generationConfig" => parse_generation_config(raw, &path, &mut req)?,
            // The URL names the model (count requests repeat it in the body).
            "model" => {}
            _ => {
                req.extra.insert(key.to_owned(), json::value(raw, &path)?);
            }
        }
    }
    let Some((contents, key)) = contents else {
        return Err(root.key("contents").invalid("missing; expected a non-empty array of contents"));
    };
    req.messages = parse_contents(contents, &root.key(key))?;
    // ANY with several allowed functions: the model must call one of them, so only they are offered.
    if let Some(names) = allowed {
        req.tools.retain(|t| t.builtin.is_some() || names.contains(&t.name));
    }
    Ok(req)
}

/// Checks the model a URL names (`models/{model}:generateContent`).
pub(crate) fn check_url_model(model: &str) -> Result<(), Error> {
    if model.is_empty() {
        return Err(Error::invalid_request("the model named in the URL (models/{model}:…) must not be empty"));
    }
    Ok(())
}

/// The error for a Gemini body given without the URL that names its model.
pub(crate) fn model_not_in_body() -> Error {
    Error::invalid_request(
        "a Gemini request names its model in the URL (/v1beta/models/{model}:generateContent), not in the body",
    )
}

/// Parses a `countTokens` body: `{"contents": …}` or `{"generateContentRequest": {…}}`.
pub fn parse_count_request(body: &[u8], model: &str) -> Result<ChatRequest, Error> {
    let obj = Obj::from_body(body)?;
    match field(&obj, "generateContentRequest") {
        Some(inner) => parse_request(inner.get().as_bytes(), model, false)
            .map_err(|e| Error::invalid_request(format!("generateContentRequest: {}", e.message()))),
        None => parse_request(body, model, false),
    }
}

fn parse_contents(raw: &RawValue, path: &Path<'_>) -> Result<Vec<Message>, Error> {
    const EXPECTED: &str = "a non-empty array of contents";
    let items = json::array(raw, path, EXPECTED)?;
    if items.is_empty() {
        return Err(path.invalid(format_args!("expected {EXPECTED}")));
    }
    let mut ids = CallIds::default();
    let mut messages = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let p = path.index(i);
        let c = Obj::read(item, &p)?;
        let role = match string_field(&c, "role", &p)?.as_deref() {
            None | Some("user" | "function" | "tool") => Role::User,
            Some("model") => Role::Assistant,
            Some(other) => {
                return Err(p.key("role").invalid(format_args!(
                    "unknown role '{other}'; expected user or model (the system prompt goes in systemInstruction)"
                )));
            }
        };
        let parts = field(&c, "parts").ok_or_else(|| p.key("parts").invalid("missing; expected an array of parts"))?;
        let pp = p.key("parts");
        let mut content = Vec::new();
        for (j, mut part) in read_parts(parts, &pp)?.into_iter().enumerate() {
            part.signature = part.signature.map(unwrap_signature);
            push_part(part, &mut ids, &pp.index(j), &mut content)?;
        }
        messages.push(Message { role, content });
    }
    Ok(messages)
}

/// `systemInstruction`: a content of text parts (a plain string is taken too).
fn parse_system(raw: &RawValue, path: &Path<'_>) -> Result<Vec<ContentPart>, Error> {
    if json::kind(raw) == Kind::String {
        let text = json::string(raw, path)?;
        return Ok(if text.is_empty() { Vec::new() } else { vec![ContentPart::text(text)] });
    }
    let o = Obj::read(raw, path)?;
    let Some(parts) = field(&o, "parts") else { return Ok(Vec::new()) };
    let pp = path.key("parts");
    read_parts(parts, &pp)?
        .into_iter()
        .enumerate()
        .map(|(i, part)| match part.data {
            DataIn::Text(text) if !part.thought => Ok(ContentPart::text(text)),
            _ => Err(pp.index(i).invalid("only text parts are allowed in the system instruction")),
        })
        .collect()
}

fn parse_tools(raw: &RawValue, path: &Path<'_>) -> Result<Vec<Tool>, Error> {
    let mut tools = Vec::new();
    for (i, item) in json::array(raw, path, "an array of tools")?.into_iter().enumerate() {
        let p = path.index(i);
        let t = Obj::read(item, &p)?;
        for (key, v) in t.fields() {
            if json::kind(v) == Kind::Null {
                continue;
            }
            let kp = p.key(key);
            let name = camel(key);
            if name == "functionDeclarations" {
                for (j, decl) in json::array(v, &kp, "an array of function declarations")?.into_iter().enumerate() {
                    tools.push(parse_function(decl, &kp.index(j))?);
                }
            } else {
                let mut value = Map::new();
                value.insert(key.to_owned(), json::value(v, &kp)?);
                let builtin = Opaque { dialect: Dialect::Gemini, value: Value::Object(value) };
                tools.push(Tool { name: name.into_owned(), builtin: Some(builtin), ..Tool::default() });
            }
        }
    }
    Ok(tools)
}

fn parse_function(raw: &RawValue, path: &Path<'_>) -> Result<Tool, Error> {
    let f = Obj::read(raw, path)?;
    let name = string_field(&f, "name", path)?.filter(|n| !n.is_empty());
    let name = name.ok_or_else(|| path.key("name").invalid("missing; expected a non-empty string"))?;
    let parameters = match (field(&f, "parametersJsonSchema"), field(&f, "parameters")) {
        (Some(schema), _) => json::value(schema, &path.key("parametersJsonSchema"))?,
        (None, Some(schema)) => json_schema(json::value(schema, &path.key("parameters"))?),
        (None, None) => Value::Null,
    };
    Ok(Tool {
        name: name.into_owned(),
        description: string_field(&f, "description", path)?.map(Cow::into_owned),
        parameters,
        ..Tool::default()
    })
}

/// Gemini's `Schema` (an OpenAPI subset whose types are often written `OBJECT`, `STRING`) as JSON Schema:
/// the types lower-cased, wherever a schema can stand.
fn json_schema(mut schema: Value) -> Value {
    fn walk(v: &mut Value) {
        let Value::Object(o) = v else { return };
        match o.get_mut("type") {
            Some(Value::String(t)) => t.make_ascii_lowercase(),
            Some(Value::Array(types)) => {
                for t in types {
                    if let Value::String(t) = t {
                        t.make_ascii_lowercase();
                    }
                }
            }
            _ => {}
        }
        for key in ["items", "additionalProperties", "not"] {
            if let Some(s) = o.get_mut(key) {
                walk(s);
            }
        }
        for key in ["anyOf", "oneOf", "allOf", "prefixItems"] {
            if let Some(Value::Array(list)) = o.get_mut(key) {
                list.iter_mut().for_each(walk);
            }
        }
        for key in ["properties", "$defs", "definitions"] {
            if let Some(Value::Object(map)) = o.get_mut(key) {
                map.values_mut().for_each(walk);
            }
        }
    }
    walk(&mut schema);
    schema
}

/// `toolConfig` → the tool choice and, for ANY with several allowed functions, those functions. Fields other
/// than `functionCallingConfig` are kept in `extra`.
fn parse_tool_config(
    raw: &RawValue,
    path: &Path<'_>,
    extra: &mut Map<String, Value>,
) -> Result<(Option<ToolChoice>, Option<Vec<String>>), Error> {
    let o = Obj::read(raw, path)?;
    let mut rest = Map::new();
    let mut calling = None;
    for (key, v) in o.fields() {
        if json::kind(v) == Kind::Null {
            continue;
        }
        match camel(key).as_ref() {
            "functionCallingConfig" => calling = Some((v, key)),
            _ => {
                rest.insert(key.to_owned(), json::value(v, &path.key(key))?);
            }
        }
    }
    if !rest.is_empty() {
        extra.insert("toolConfig".to_owned(), Value::Object(rest));
    }
    let Some((raw, key)) = calling else { return Ok((None, None)) };
    let p = path.key(key);
    let c = Obj::read(raw, &p)?;
    let mut allowed: Vec<String> = match field(&c, "allowedFunctionNames") {
        Some(names) => strings(names, &p.key("allowedFunctionNames"))?,
        None => Vec::new(),
    };
    let mode = string_field(&c, "mode", &p)?.map(|m| m.to_ascii_uppercase());
    let choice = match mode.as_deref() {
        None | Some("AUTO" | "VALIDATED" | "MODE_UNSPECIFIED") => ToolChoice::Auto,
        Some("NONE") => ToolChoice::None,
        Some("ANY") if allowed.len() == 1 => ToolChoice::Tool(allowed.remove(0)),
        Some("ANY") if !allowed.is_empty() => return Ok((Some(ToolChoice::Required), Some(allowed))),
        Some("ANY") => ToolChoice::Required,
        Some(other) => {
            return Err(p
                .key("mode")
                .invalid(format_args!("unknown mode '{other}'; expected AUTO, ANY, NONE or VALIDATED")));
        }
    };
    Ok((Some(choice), None))
}

/// `generationConfig`: the modelled fields into `req`, the others into `req.extra["generationConfig"]`.
fn parse_generation_config(raw: &RawValue, path: &Path<'_>, req: &mut ChatRequest) -> Result<(), Error> {
    let o = Obj::read(raw, path)?;
    let mut rest = Map::new();
    for (key, v) in o.fields() {
        if json::kind(v) == Kind::Null {
            continue;
        }
        let p = path.key(key);
        match camel(key).as_ref() {
            "maxOutputTokens" => req.max_tokens = Some(json::unsigned(v, &p)?),
            "temperature" => req.temperature = Some(json::number(v, &p)?),
            "topP" => req.top_p = Some(json::number(v, &p)?),
            "topK" => req.top_k = Some(whole_number(v, &p)?),
            "stopSequences" => req.stop = strings(v, &p)?,
            "thinkingConfig" => req.reasoning = parse_thinking(v, &p)?,
            _ => {
                rest.insert(key.to_owned(), json::value(v, &p)?);
            }
        }
    }
    if !rest.is_empty() {
        req.extra.insert("generationConfig".to_owned(), Value::Object(rest));
    }
    Ok(())
}

fn parse_thinking(raw: &RawValue, path: &Path<'_>) -> Result<Option<Reasoning>, Error> {
    let o = Obj::read(raw, path)?;
    let (mut budget, mut level, mut include) = (None, None, false);
    for (key, v) in o.fields() {
        if json::kind(v) == Kind::Null {
            continue;
        }
        let p = path.key(key);
        match camel(key).as_ref() {
            "thinkingBudget" => {
                let n = json::number(v, &p)?;
                if n.fract() != 0.0 || !(-1.0..=f64::from(u32::MAX)).contains(&n) {
                    return Err(p.invalid("expected -1 (dynamic), 0 (off) or a positive number of tokens"));
                }
                budget = Some(n as i64);
            }
            "thinkingLevel" => {
                level = Some(json::string(v, &p)?.to_ascii_lowercase()).filter(|l| l != "thinking_level_unspecified");
            }
            "includeThoughts" => include = json::boolean(v, &p)?,
            _ => {}
        }
    }
    let effort = |e: &str| Some(Reasoning { effort: Some(e.to_owned()), ..Reasoning::default() });
    Ok(match (level, budget) {
        (Some(level), _) => effort(&level),
        (None, Some(0)) => effort("none"),
        (None, Some(n)) if n > 0 => Some(Reasoning { budget_tokens: Some(n as u32), ..Reasoning::default() }),
        (None, Some(_)) => effort("medium"),
        (None, None) if include => effort("medium"),
        (None, None) => None,
    })
}

fn strings(raw: &RawValue, path: &Path<'_>) -> Result<Vec<String>, Error> {
    json::array(raw, path, "an array of strings")?
        .into_iter()
        .enumerate()
        .map(|(i, s)| json::string(s, &path.index(i)).map(Cow::into_owned))
        .collect()
}

/// A count the API types as an integer but SDKs may write as a float (`topK: 40.0`).
fn whole_number(raw: &RawValue, path: &Path<'_>) -> Result<u32, Error> {
    let n = json::number(raw, path)?;
    if n.fract() != 0.0 || !(0.0..=f64::from(u32::MAX)).contains(&n) {
        return Err(path.invalid("expected a non-negative integer"));
    }
    Ok(n as u32)
}

// =========================================================================================================
// Requests and answers: IR → Gemini

#[derive(Serialize)]
struct ContentOut<'a> {
    role: &'static str,
    parts: Vec<PartOut<'a>>,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct PartOut<'a> {
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    thought: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inline_data: Option<BlobOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_data: Option<FileOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_call: Option<FunctionCallOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    function_response: Option<FunctionResponseOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    thought_signature: Option<Cow<'a, str>>,
    /// A part kept opaque, written as it came.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    raw: Option<&'a Map<String, Value>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BlobOut<'a> {
    mime_type: &'a str,
    data: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileOut<'a> {
    file_uri: &'a str,
}

#[derive(Serialize)]
struct FunctionCallOut<'a> {
    id: &'a str,
    name: &'a str,
    args: &'a Value,
}

#[derive(Serialize)]
struct FunctionResponseOut<'a> {
    id: &'a str,
    name: &'a str,
    response: Value,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    parts: Vec<PartOut<'a>>,
}

/// Where parts are written: requests leave out what means nothing to Gemini, answers keep everything and
/// wrap signatures for Gemini clients.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    Request,
    Answer,
}

impl Target {
    fn signature(self, signature: &str) -> Cow<'_, str> {
        match self {
            Target::Request => Cow::Borrowed(signature),
            Target::Answer => Cow::Owned(wrap_signature(signature)),
        }
    }
}

fn empty_object() -> &'static Value {
    static EMPTY: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Value::Object(Map::new()))
}

fn image_out(source: &ImageSource) -> PartOut<'_> {
    match source {
        ImageSource::Base64 { media_type, data } => {
            PartOut { inline_data: Some(BlobOut { mime_type: media_type, data }), ..PartOut::default() }
        }
        ImageSource::Url { url } => PartOut { file_data: Some(FileOut { file_uri: url }), ..PartOut::default() },
    }
}

/// IR parts as Gemini parts. `names` gives the function name of each tool-call id, which a
/// `functionResponse` must repeat.
fn parts_out<'a>(content: &'a [ContentPart], names: &[(&'a str, &'a str)], target: Target) -> Vec<PartOut<'a>> {
    let mut out = Vec::with_capacity(content.len());
    // The signature of an empty thinking part, for the part after it.
    let mut carried: Option<Cow<'a, str>> = None;
    for part in content {
        let mut p = match part {
            ContentPart::Text { text, .. } => PartOut { text: Some(text), ..PartOut::default() },
            ContentPart::Image { source, .. } => image_out(source),
            ContentPart::ToolUse { id, name, input, .. } => {
                let args = if input.is_object() {
                    input
                } else {
                    tracing::warn!(tool = %name, "tool-call arguments are not a JSON object; writing {{}} for Gemini");
                    empty_object()
                };
                PartOut { function_call: Some(FunctionCallOut { id, name, args }), ..PartOut::default() }
            }
            ContentPart::ToolResult { tool_use_id, content, is_error, .. } => {
                let name = names.iter().find(|(id, _)| id == tool_use_id).map_or(tool_use_id.as_str(), |(_, n)| n);
                let response = FunctionResponseOut {
                    id: tool_use_id,
                    name,
                    response: tool_response(content, *is_error),
                    parts: content
                        .iter()
                        .filter_map(|c| {
                            if let ContentPart::Image { source, .. } = c { Some(image_out(source)) } else { None }
                        })
                        .collect(),
                };
                PartOut { function_response: Some(response), ..PartOut::default() }
            }
            ContentPart::Thinking { text, signature: Some(signature) } if text.is_empty() => {
                if let Some(previous) = carried.replace(target.signature(signature)) {
                    out.push(signature_part(previous));
                }
                continue;
            }
            // Reasoning of another kind of model means nothing to Gemini.
            ContentPart::Thinking { signature: None, .. } if target == Target::Request => continue,
            ContentPart::Thinking { text, signature } => PartOut {
                thought: true,
                text: Some(text),
                thought_signature: signature.as_deref().map(|s| target.signature(s)),
                ..PartOut::default()
            },
            ContentPart::RedactedThinking { .. } => continue,
            ContentPart::Opaque(Opaque { dialect: Dialect::Gemini, value: Value::Object(raw) }) => {
                PartOut { raw: Some(raw), ..PartOut::default() }
            }
            ContentPart::Opaque(Opaque { value, .. }) => {
                let kind = value.get("type").unwrap_or(&Value::Null);
                tracing::warn!(part = %kind, "dropping a content part Gemini cannot take");
                continue;
            }
        };
        if let Some(signature) = carried.take() {
            if p.raw.is_none() && p.thought_signature.is_none() {
                p.thought_signature = Some(signature);
            } else {
                out.push(signature_part(signature));
            }
        }
        out.push(p);
    }
    out.extend(carried.map(signature_part));
    out
}

fn signature_part(signature: Cow<'_, str>) -> PartOut<'_> {
    PartOut { thought: true, thought_signature: Some(signature), ..PartOut::default() }
}

/// A tool result as `functionResponse.response` (see the module docs).
fn tool_response(content: &[ContentPart], is_error: bool) -> Value {
    let texts: Vec<&str> = content
        .iter()
        .filter_map(|c| if let ContentPart::Text { text, .. } = c { Some(text.as_str()) } else { None })
        .collect();
    let text = texts.join("\n");
    if !is_error && let Ok(Value::Object(o)) = serde_json::from_str::<Value>(&text) {
        return Value::Object(o);
    }
    let mut o = Map::new();
    o.insert((if is_error { "error" } else { "output" }).to_owned(), Value::String(text));
    Value::Object(o)
}

/// The function name of every tool call in a conversation, by id.
fn call_names(messages: &[Message]) -> Vec<(&str, &str)> {
    messages
        .iter()
        .flat_map(|m| &m.content)
        .filter_map(|p| {
            if let ContentPart::ToolUse { id, name, .. } = p { Some((id.as_str(), name.as_str())) } else { None }
        })
        .collect()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestOut<'a> {
    contents: Vec<ContentOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system_instruction: Option<SystemOut<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ToolOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_config: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation_config: Option<Map<String, Value>>,
    #[serde(flatten)]
    extra: TopExtra<'a>,
}

#[derive(Serialize)]
struct SystemOut<'a> {
    parts: Vec<PartOut<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum ToolOut<'a> {
    Functions {
        #[serde(rename = "functionDeclarations")]
        declarations: Vec<DeclarationOut<'a>>,
    },
    Raw(&'a Value),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeclarationOut<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters_json_schema: Option<&'a Value>,
}

/// The top-level fields a Gemini client sent that the IR does not model, except the nested objects the
/// encoder writes itself (their kept fields are merged there).
struct TopExtra<'a>(Option<&'a Map<String, Value>>);

impl Serialize for TopExtra<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.0.into_iter().flatten().filter(|(k, _)| !NESTED.contains(&k.as_str())) {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Encodes a request for a Gemini upstream (see the module docs).
pub fn encode_request(req: &ChatRequest) -> Vec<u8> {
    let extra = (req.source == Some(Dialect::Gemini)).then_some(&req.extra);
    let nested = |key: &str| extra.and_then(|e| e.get(key)).and_then(Value::as_object).cloned().unwrap_or_default();
    let names = call_names(&req.messages);
    let contents = req
        .messages
        .iter()
        .map(|m| ContentOut {
            role: match m.role {
                Role::User => "user",
                Role::Assistant => "model",
            },
            parts: parts_out(&m.content, &names, Target::Request),
        })
        .filter(|c| !c.parts.is_empty())
        .collect();
    let system: Vec<PartOut<'_>> = req
        .system
        .iter()
        .filter_map(|p| match p {
            ContentPart::Text { text, .. } if !text.is_empty() => {
                Some(PartOut { text: Some(text), ..PartOut::default() })
            }
            _ => None,
        })
        .collect();

    let mut tools = Vec::new();
    let declarations: Vec<DeclarationOut<'_>> = req
        .tools
        .iter()
        .filter(|t| t.builtin.is_none())
        .map(|t| DeclarationOut {
            name: &t.name,
            description: t.description.as_deref(),
            parameters_json_schema: Some(&t.parameters).filter(|p| !p.is_null()),
        })
        .collect();
    if !declarations.is_empty() {
        tools.push(ToolOut::Functions { declarations });
    }
    for t in &req.tools {
        match &t.builtin {
            Some(Opaque { dialect: Dialect::Gemini, value }) => tools.push(ToolOut::Raw(value)),
            Some(_) => tracing::warn!(tool = %t.name, "dropping a provider-defined tool Gemini cannot run"),
            None => {}
        }
    }

    let mut tool_config = nested("toolConfig");
    if let Some(choice) = req.tool_choice.as_ref().filter(|_| !req.tools.is_empty()) {
        let (mode, allowed) = match choice {
            ToolChoice::Auto => ("AUTO", None),
            ToolChoice::None => ("NONE", None),
            ToolChoice::Required => ("ANY", None),
            ToolChoice::Tool(name) => ("ANY", Some(name)),
        };
        let mut calling = Map::new();
        calling.insert("mode".to_owned(), mode.into());
        if let Some(name) = allowed {
            calling.insert("allowedFunctionNames".to_owned(), Value::Array(vec![name.as_str().into()]));
        }
        tool_config.insert("functionCallingConfig".to_owned(), Value::Object(calling));
    }

    let mut generation = nested("generationConfig");
    let mut set = |key: &str, v: Option<Value>| {
        if let Some(v) = v {
            generation.insert(key.to_owned(), v);
        }
    };
    set("maxOutputTokens", req.max_tokens.map(Value::from));
    set("temperature", req.temperature.map(Value::from));
    set("topP", req.top_p.map(Value::from));
    set("topK", req.top_k.map(Value::from));
    set("stopSequences", (!req.stop.is_empty()).then(|| req.stop.iter().map(|s| Value::from(s.as_str())).collect()));
    set("thinkingConfig", req.reasoning.as_ref().map(thinking_config));

    let out = RequestOut {
        contents,
        system_instruction: (!system.is_empty()).then_some(SystemOut { parts: system }),
        tools,
        tool_config: (!tool_config.is_empty()).then_some(tool_config),
        generation_config: (!generation.is_empty()).then_some(generation),
        extra: TopExtra(extra),
    };
    to_json(&out)
}

/// `thinkingConfig` for a reasoning setting (see the module docs).
fn thinking_config(r: &Reasoning) -> Value {
    let budget: i64 = if r.adaptive {
        -1
    } else if let Some(b) = r.budget_tokens {
        i64::from(b)
    } else {
        r.effort.as_deref().and_then(effort_budget).map_or(0, i64::from)
    };
    let mut config = Map::new();
    config.insert("thinkingBudget".to_owned(), budget.into());
    if budget != 0 {
        config.insert("includeThoughts".to_owned(), true.into());
    }
    Value::Object(config)
}

// =========================================================================================================
// Answers

/// Usage as Gemini sends it; stream chunks may carry only some of the fields.
#[derive(Deserialize, Default, Debug, Clone, Copy)]
#[serde(default, rename_all = "camelCase")]
struct UsageWire {
    prompt_token_count: Option<u64>,
    candidates_token_count: Option<u64>,
    cached_content_token_count: Option<u64>,
    thoughts_token_count: Option<u64>,
    tool_use_prompt_token_count: Option<u64>,
}

impl UsageWire {
    /// `self` with the fields `newer` has replaced.
    fn update(self, newer: UsageWire) -> UsageWire {
        UsageWire {
            prompt_token_count: newer.prompt_token_count.or(self.prompt_token_count),
            candidates_token_count: newer.candidates_token_count.or(self.candidates_token_count),
            cached_content_token_count: newer.cached_content_token_count.or(self.cached_content_token_count),
            thoughts_token_count: newer.thoughts_token_count.or(self.thoughts_token_count),
            tool_use_prompt_token_count: newer.tool_use_prompt_token_count.or(self.tool_use_prompt_token_count),
        }
    }
}

impl From<UsageWire> for Usage {
    fn from(u: UsageWire) -> Usage {
        let cached = u.cached_content_token_count.unwrap_or(0);
        let thoughts = u.thoughts_token_count.unwrap_or(0);
        let prompt = u.prompt_token_count.unwrap_or(0) + u.tool_use_prompt_token_count.unwrap_or(0);
        Usage {
            input_tokens: prompt.saturating_sub(cached),
            output_tokens: u.candidates_token_count.unwrap_or(0) + thoughts,
            cache_read_tokens: cached,
            cache_creation_tokens: 0,
            reasoning_tokens: thoughts,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UsageOut {
    prompt_token_count: u64,
    candidates_token_count: u64,
    total_token_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    cached_content_token_count: u64,
    #[serde(skip_serializing_if = "is_zero")]
    thoughts_token_count: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl From<&Usage> for UsageOut {
    fn from(u: &Usage) -> UsageOut {
        UsageOut {
            prompt_token_count: u.prompt_tokens(),
            candidates_token_count: u.output_tokens.saturating_sub(u.reasoning_tokens),
            total_token_count: u.total_tokens(),
            cached_content_token_count: u.cache_read_tokens,
            thoughts_token_count: u.reasoning_tokens,
        }
    }
}

/// The usage of an answer or stream chunk in this dialect, for accounting of answers passed through
/// unchanged.
pub fn usage_of(body: &[u8]) -> Option<Usage> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Holder {
        usage_metadata: Option<UsageWire>,
    }
    serde_json::from_slice::<Holder>(body).ok()?.usage_metadata.map(Usage::from)
}

/// `called`: the answer calls a function, which Gemini reports as STOP.
fn parse_finish_reason(reason: &str, called: bool) -> StopReason {
    match reason {
        "STOP" if called => StopReason::ToolUse,
        "STOP" => StopReason::EndTurn,
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            StopReason::ContentFilter
        }
        other => StopReason::Other(other.to_owned()),
    }
}

fn finish_reason(reason: Option<&StopReason>) -> &str {
    match reason {
        None | Some(StopReason::EndTurn | StopReason::StopSequence | StopReason::ToolUse | StopReason::PauseTurn) => {
            "STOP"
        }
        Some(StopReason::MaxTokens) => "MAX_TOKENS",
        Some(StopReason::ContentFilter | StopReason::Refusal) => "SAFETY",
        Some(StopReason::Other(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') => s,
        Some(StopReason::Other(_)) => "OTHER",
    }
}

/// One answer or stream chunk, as read.
struct ChunkIn<'a> {
    id: Option<Cow<'a, str>>,
    model: Option<Cow<'a, str>>,
    parts: Vec<PartIn<'a>>,
    finish_reason: Option<Cow<'a, str>>,
    /// `promptFeedback.blockReason`: the prompt was refused and there is no candidate.
    blocked: bool,
    usage: Option<UsageWire>,
}

/// Reads a `GenerateContentResponse`; one carrying an `error` instead is returned as that error.
fn read_chunk<'a>(body: &'a [u8], what: &str) -> Result<ChunkIn<'a>, Error> {
    let fault = json::upstream_fault(what);
    let root = Path::Root;
    let obj = Obj::from_body(body).map_err(&fault)?;
    if let Some(err) = obj.get("error") {
        return Err(error_from_wire(None, Some(err), body));
    }
    let mut chunk =
        ChunkIn { id: None, model: None, parts: Vec::new(), finish_reason: None, blocked: false, usage: None };
    chunk.id = string_field(&obj, "responseId", &root).map_err(&fault)?;
    chunk.model = string_field(&obj, "modelVersion", &root).map_err(&fault)?;
    if let Some(u) = field(&obj, "usageMetadata") {
        let u = serde_json::from_str(u.get())
            .map_err(|e| Error::upstream(None, format!("the upstream sent unreadable usage: {e}")))?;
        chunk.usage = Some(u);
    }
    if let Some(feedback) = field(&obj, "promptFeedback") {
        let f = Obj::read(feedback, &root.key("promptFeedback")).map_err(&fault)?;
        chunk.blocked = field(&f, "blockReason").is_some();
    }
    let Some(candidates) = field(&obj, "candidates") else { return Ok(chunk) };
    let cp = root.key("candidates");
    let candidates = json::array(candidates, &cp, "an array of candidates").map_err(&fault)?;
    // The proxy never asks for more than one candidate.
    let Some(first) = candidates.first() else { return Ok(chunk) };
    let p = cp.index(0);
    let c = Obj::read(first, &p).map_err(&fault)?;
    chunk.finish_reason = string_field(&c, "finishReason", &p).map_err(&fault)?;
    if let Some(content) = field(&c, "content") {
        let content = Obj::read(content, &p.key("content")).map_err(&fault)?;
        if let Some(parts) = field(&content, "parts") {
            chunk.parts = read_parts(parts, &p.key("content").key("parts")).map_err(&fault)?;
        }
    }
    Ok(chunk)
}

/// Parses an upstream's `GenerateContentResponse`.
pub fn parse_response(body: &[u8]) -> Result<ChatResponse, Error> {
    let chunk = read_chunk(body, "generateContent answer")?;
    let path = Path::Root.key("candidates");
    let mut ids = CallIds::default();
    let mut content = Vec::with_capacity(chunk.parts.len());
    for part in chunk.parts {
        push_part(part, &mut ids, &path, &mut content).map_err(json::upstream_fault("generateContent answer"))?;
    }
    let called = content.iter().any(|p| matches!(p, ContentPart::ToolUse { .. }));
    let stop_reason = match (&chunk.finish_reason, chunk.blocked) {
        (Some(r), _) => Some(parse_finish_reason(r, called)),
        (None, true) => Some(StopReason::ContentFilter),
        (None, false) => None,
    };
    Ok(ChatResponse {
        id: chunk.id.map(Cow::into_owned).unwrap_or_default(),
        model: chunk.model.map(Cow::into_owned).unwrap_or_default(),
        content,
        stop_reason,
        usage: chunk.usage.map(Usage::from).unwrap_or_default(),
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseOut<'a> {
    candidates: [CandidateOut<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage_metadata: Option<UsageOut>,
    model_version: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    response_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CandidateOut<'a> {
    content: ContentOut<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'a str>,
    index: u32,
}

impl<'a> ResponseOut<'a> {
    fn new(parts: Vec<PartOut<'a>>, model: &'a str, id: &'a str) -> Self {
        ResponseOut {
            candidates: [CandidateOut { content: ContentOut { role: "model", parts }, finish_reason: None, index: 0 }],
            usage_metadata: None,
            model_version: model,
            response_id: id,
        }
    }
}

/// Encodes an answer as the `GenerateContentResponse` a client receives; `model` is the name the client
/// asked for. A missing stop reason is written as STOP.
pub fn encode_response(resp: &ChatResponse, model: &str) -> Vec<u8> {
    let mut out = ResponseOut::new(parts_out(&resp.content, &[], Target::Answer), model, &resp.id);
    out.candidates[0].finish_reason = Some(finish_reason(resp.stop_reason.as_ref()));
    out.usage_metadata = Some(UsageOut::from(&resp.usage));
    to_json(&out)
}

/// The answer of `countTokens`.
pub fn encode_count_response(total_tokens: u64) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct CountOut {
        total_tokens: u64,
    }
    to_json(&CountOut { total_tokens })
}

// =========================================================================================================
// Errors

/// Maps an upstream error answer (`{"error":{"code","message","status","details"}}`, also wrapped in an
/// array as the non-SSE stream form sends it, or anything else) to an error of the right kind, keeping the
/// upstream's message.
pub fn parse_error(status: u16, body: &[u8]) -> Error {
    error_from_wire(Some(status), error_object(body), body)
}

/// An error chunk inside a 200 stream, which has no HTTP status of its own.
pub fn parse_stream_error(data: &[u8]) -> Error {
    error_from_wire(None, error_object(data), data)
}

fn error_object(body: &[u8]) -> Option<&RawValue> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        error: Option<&'a RawValue>,
    }
    let raw: &RawValue = serde_json::from_slice(body).ok()?;
    let raw = match json::kind(raw) {
        Kind::Array => *serde_json::from_str::<Vec<&RawValue>>(raw.get()).ok()?.first()?,
        _ => raw,
    };
    serde_json::from_str::<Envelope<'_>>(raw.get()).ok()?.error
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorWire<'a> {
    code: Option<u16>,
    #[serde(borrow)]
    message: Option<Str<'a>>,
    #[serde(borrow)]
    status: Option<Str<'a>>,
    details: Vec<DetailWire<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DetailWire<'a> {
    #[serde(borrow, rename = "@type")]
    kind: Option<Str<'a>>,
    #[serde(borrow)]
    reason: Option<Str<'a>>,
    #[serde(borrow, rename = "retryDelay")]
    retry_delay: Option<Str<'a>>,
    #[serde(borrow)]
    violations: Vec<ViolationWire<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ViolationWire<'a> {
    #[serde(borrow, rename = "quotaId")]
    quota_id: Option<Str<'a>>,
}

/// Google's canonical status for an HTTP status, for errors that do not name one.
fn status_for_http(status: u16) -> &'static str {
    match status {
        400 | 413 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        429 => "RESOURCE_EXHAUSTED",
        _ => "UNAVAILABLE",
    }
}

/// `error` is the value of the body's `error` field, if any; `body` is used as the message otherwise.
fn error_from_wire(status: Option<u16>, error: Option<&RawValue>, body: &[u8]) -> Error {
    let w: ErrorWire<'_> = error.and_then(|e| serde_json::from_str(e.get()).ok()).unwrap_or_default();
    let message = match (&w.message, error) {
        (Some(m), _) => m.0.clone().into_owned(),
        (None, Some(_)) => String::new(),
        (None, None) => error_snippet(body),
    };
    let http = status.or(w.code);
    let name = match &w.status {
        Some(s) => s.0.as_ref(),
        None => http.map_or("UNAVAILABLE", status_for_http),
    };
    let reason = |r: &str| w.details.iter().any(|d| d.reason.as_ref().is_some_and(|x| x.0 == r));
    let kind = match name {
        "INVALID_ARGUMENT" if reason("API_KEY_INVALID") => ErrorKind::Authentication,
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => ErrorKind::InvalidRequest,
        "UNAUTHENTICATED" => ErrorKind::Authentication,
        "PERMISSION_DENIED" => ErrorKind::Permission,
        "NOT_FOUND" => ErrorKind::ModelNotFound,
        "RESOURCE_EXHAUSTED" => {
            let daily = w
                .details
                .iter()
                .flat_map(|d| &d.violations)
                .any(|v| v.quota_id.as_ref().is_some_and(|q| q.0.contains("PerDay")));
            if daily { ErrorKind::QuotaExceeded } else { ErrorKind::RateLimited }
        }
        "DEADLINE_EXCEEDED" => ErrorKind::Timeout,
        _ => ErrorKind::Upstream,
    };
    let mut err = upstream_error(kind, message, http);
    let delay =
        w.details.iter().filter(|d| d.kind.as_ref().is_some_and(|k| k.0.ends_with("RetryInfo"))).find_map(|d| {
            let secs: f64 = d.retry_delay.as_ref()?.0.strip_suffix('s')?.parse().ok()?;
            std::time::Duration::try_from_secs_f64(secs).ok()
        });
    if let Some(d) = delay {
        err = err.with_retry_after(d);
    }
    err
}

/// An error after the stream started: a `data:` chunk holding Google's error body, which Gemini SDKs raise.
pub fn error_event(err: &Error) -> OutEvent {
    OutEvent { event: None, data: String::from_utf8(err.google_body()).expect("serde_json writes UTF-8") }
}

// =========================================================================================================
// Streams: upstream chunks → IR events

/// The block open in the IR stream being produced.
#[derive(Debug, Clone, Copy)]
enum Open {
    Text(usize),
    /// `signed`: its signature came, so further thoughts start a new block.
    Thinking {
        index: usize,
        signed: bool,
    },
}

/// Turns an upstream's Gemini stream (`data:` chunks of `GenerateContentResponse`) into block events.
///
/// Text and thoughts open a block when the kind changes; a function call, which arrives whole, is a block of
/// its own; a signature on a part that is not a thought is an empty thinking block before it (see the module
/// docs). Gemini has no end event, so `Finish` is emitted by [`StreamParser::finish`] at the end of the body,
/// with the last finish reason and the latest usage; a body that ends before any finish reason was cut off
/// and is reported. An `error` chunk is returned as an error of the matching kind.
#[derive(Debug, Default)]
pub struct StreamParser {
    started: bool,
    next_index: usize,
    open: Option<Open>,
    ids: CallIds,
    called: bool,
    finish_reason: Option<String>,
    blocked: bool,
    usage: UsageWire,
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
        // Not Gemini's, but relays that frame every stream like OpenAI's add it.
        if data == "[DONE]" {
            return self.finish(out);
        }
        let chunk = read_chunk(data.as_bytes(), "stream chunk")?;
        if let Some(u) = chunk.usage {
            self.usage = self.usage.update(u);
        }
        if !self.started {
            self.started = true;
            // Gemini counts the prompt from the first chunk on, as Anthropic's `message_start` does.
            out.push(StreamEvent::Start {
                id: chunk.id.as_deref().unwrap_or_default().to_owned(),
                model: chunk.model.as_deref().unwrap_or_default().to_owned(),
                usage: self.usage.into(),
            });
        }
        for part in chunk.parts {
            self.part(part, out);
        }
        if let Some(reason) = chunk.finish_reason {
            self.close(out);
            self.finish_reason = Some(reason.into_owned());
        }
        self.blocked |= chunk.blocked;
        Ok(())
    }

    /// Ends the stream: emits `Finish`, or reports a stream cut off before any finish reason.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), Error> {
        if self.finished {
            return Ok(());
        }
        let stop_reason = match (&self.finish_reason, self.blocked) {
            (Some(r), _) => parse_finish_reason(r, self.called),
            (None, true) => StopReason::ContentFilter,
            (None, false) => {
                return Err(Error::upstream(
                    None,
                    "the upstream stream ended early, before a finishReason; the answer is incomplete",
                ));
            }
        };
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start { id: String::new(), model: String::new(), usage: Usage::default() });
        }
        self.close(out);
        self.finished = true;
        out.push(StreamEvent::Finish { stop_reason: Some(stop_reason), usage: self.usage.into() });
        Ok(())
    }

    fn part(&mut self, part: PartIn<'_>, out: &mut Vec<StreamEvent>) {
        if part.thought && matches!(part.data, DataIn::Text(_) | DataIn::Empty) {
            let index = match self.open {
                Some(Open::Thinking { index, signed: false }) => index,
                _ => self.open_block(BlockKind::Thinking, out),
            };
            if let DataIn::Text(text) = part.data.filter_empty() {
                out.push(StreamEvent::ThinkingDelta { index, text: text.into_owned() });
            }
            if let Some(signature) = part.signature {
                out.push(StreamEvent::SignatureDelta { index, signature: signature.into_owned() });
                self.open = Some(Open::Thinking { index, signed: true });
            }
            return;
        }
        if let Some(signature) = part.signature {
            let index = self.open_block(BlockKind::Thinking, out);
            out.push(StreamEvent::SignatureDelta { index, signature: signature.into_owned() });
            self.close(out);
        }
        match part.data {
            DataIn::Text(text) if !text.is_empty() => {
                let index = match self.open {
                    Some(Open::Text(index)) => index,
                    _ => self.open_block(BlockKind::Text, out),
                };
                out.push(StreamEvent::TextDelta { index, text: text.into_owned() });
            }
            DataIn::Call { id, name, args } => {
                self.close(out);
                let index = self.next_index;
                self.next_index += 1;
                let id = self.ids.call(id, &name);
                out.push(StreamEvent::BlockStart { index, block: BlockKind::ToolUse { id, name: name.into_owned() } });
                if let Some(args) = args {
                    out.push(StreamEvent::ToolArgsDelta { index, json: args.get().to_owned() });
                }
                out.push(StreamEvent::BlockStop { index });
                self.called = true;
            }
            // Media and parts the IR does not model have no stream events.
            _ => {}
        }
    }

    fn open_block(&mut self, block: BlockKind, out: &mut Vec<StreamEvent>) -> usize {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some(match block {
            BlockKind::Thinking => Open::Thinking { index, signed: false },
            _ => Open::Text(index),
        });
        out.push(StreamEvent::BlockStart { index, block });
        index
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(open) = self.open.take() {
            let (Open::Text(index) | Open::Thinking { index, .. }) = open;
            out.push(StreamEvent::BlockStop { index });
        }
    }
}

impl DataIn<'_> {
    /// Empty text as no data: it carries nothing to stream.
    fn filter_empty(self) -> Self {
        match self {
            DataIn::Text(t) if t.is_empty() => DataIn::Empty,
            other => other,
        }
    }
}

// =========================================================================================================
// Streams: IR events → client chunks

/// A tool call being collected: Gemini sends calls whole.
#[derive(Debug)]
struct PendingCall {
    index: usize,
    id: String,
    name: String,
    args: String,
}

/// Writes IR stream events as Gemini stream chunks, each a whole `GenerateContentResponse`: one per text or
/// thought delta, one per signature (a thought part without text), one per tool call once its arguments are
/// complete, and a last one with empty parts, the finish reason and the usage. There is no end marker.
///
/// Any event sequence yields a valid stream: events after `Finish` are dropped, argument fragments of
/// unknown tool blocks too, and a call still collecting when the stream ends is written then.
#[derive(Debug)]
pub struct StreamEncoder {
    model: String,
    id: String,
    pending: Option<PendingCall>,
    finished: bool,
}

impl StreamEncoder {
    /// `model` is the name the client asked for.
    pub fn new(model: &str) -> Self {
        StreamEncoder { model: model.to_owned(), id: String::new(), pending: None, finished: false }
    }

    pub fn push(&mut self, ev: &StreamEvent, out: &mut Vec<OutEvent>) {
        if self.finished {
            return;
        }
        match ev {
            StreamEvent::Start { id, .. } => self.id.clone_from(id),
            StreamEvent::BlockStart { index, block: BlockKind::ToolUse { id, name } } => {
                self.flush(out);
                self.pending =
                    Some(PendingCall { index: *index, id: id.clone(), name: name.clone(), args: String::new() });
            }
            StreamEvent::TextDelta { text, .. } if !text.is_empty() => {
                self.flush(out);
                self.chunk(vec![PartOut { text: Some(text), ..PartOut::default() }], out);
            }
            StreamEvent::ThinkingDelta { text, .. } if !text.is_empty() => {
                self.flush(out);
                self.chunk(vec![PartOut { thought: true, text: Some(text), ..PartOut::default() }], out);
            }
            StreamEvent::SignatureDelta { signature, .. } if !signature.is_empty() => {
                self.flush(out);
                self.chunk(vec![signature_part(Cow::Owned(wrap_signature(signature)))], out);
            }
            StreamEvent::ToolArgsDelta { index, json } => {
                if let Some(call) = self.pending.as_mut().filter(|c| c.index == *index) {
                    call.args.push_str(json);
                }
            }
            StreamEvent::BlockStop { index } if self.pending.as_ref().is_some_and(|c| c.index == *index) => {
                self.flush(out);
            }
            StreamEvent::Finish { stop_reason, usage } => {
                self.flush(out);
                self.finished = true;
                let mut last = ResponseOut::new(Vec::new(), &self.model, &self.id);
                last.candidates[0].finish_reason = Some(finish_reason(stop_reason.as_ref()));
                last.usage_metadata = Some(UsageOut::from(usage));
                out.push(OutEvent { event: None, data: to_json_string(&last) });
            }
            _ => {}
        }
    }

    /// Ends the stream: a call still collecting is written; Gemini streams have no end marker.
    pub fn finish(&mut self, out: &mut Vec<OutEvent>) {
        self.flush(out);
        self.finished = true;
    }

    /// Writes the tool call being collected, if any.
    fn flush(&mut self, out: &mut Vec<OutEvent>) {
        let Some(call) = self.pending.take() else { return };
        let args = match crate::types::parse_tool_arguments(&call.args) {
            Value::Object(o) => Value::Object(o),
            _ => {
                tracing::warn!(tool = %call.name, "tool-call arguments are not a JSON object; writing {{}} for Gemini");
                Value::Object(Map::new())
            }
        };
        let part = PartOut {
            function_call: Some(FunctionCallOut { id: &call.id, name: &call.name, args: &args }),
            ..PartOut::default()
        };
        self.chunk(vec![part], out);
    }

    fn chunk(&self, parts: Vec<PartOut<'_>>, out: &mut Vec<OutEvent>) {
        out.push(OutEvent { event: None, data: to_json_string(&ResponseOut::new(parts, &self.model, &self.id)) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::dialects::testing::{self, datas, invalid_message, parse_stream, sse};
    use crate::types::CacheControl;

    fn parse(v: Value) -> Result<ChatRequest, Error> {
        parse_request(v.to_string().as_bytes(), "gemini-2.5-pro", false)
    }

    fn err(v: Value) -> String {
        invalid_message(parse(v))
    }

    fn user(parts: Value) -> Value {
        json!({"contents": [{"role": "user", "parts": parts}]})
    }

    fn encode(req: &ChatRequest) -> Value {
        serde_json::from_slice(&encode_request(req)).unwrap()
    }

    fn run(chunks: &[Value]) -> Result<Vec<StreamEvent>, Error> {
        let events: Vec<_> = chunks.iter().map(|c| sse(None, c.to_string())).collect();
        parse_stream(Dialect::Gemini.stream_parser(), &events)
    }

    fn chunk(parts: Value) -> Value {
        json!({"candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}], "responseId": "r1", "modelVersion": "gemini-x"})
    }

    // ---------------------------------------------------------------- parse_request

    #[test]
    fn parses_every_part_kind_and_option() {
        let r = parse(json!({
            "systemInstruction": {"role": "system", "parts": [{"text": "be brief"}, {"text": "and kind"}]},
            "contents": [
                {"role": "user", "parts": [
                    {"text": "see"},
                    {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
                    {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x/y.jpg"}},
                    {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
                    {"executableCode": {"language": "PYTHON", "code": "print(1)"}}
                ]},
                {"role": "model", "parts": [
                    {"text": "Let me ", "thought": true},
                    {"text": "think.", "thought": true},
                    {"thought": true, "thoughtSignature": "sig"},
                    {"text": "Calling."},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "fc-sig"},
                    {"functionCall": {"id": "own", "name": "get_time", "args": {}}}
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "get_time", "id": "own", "response": {"output": "noon"}}},
                    {"functionResponse": {"name": "get_weather", "response": {"temp": 20}}}
                ]},
                {"parts": [{"text": "thanks"}]}
            ],
            "tools": [{"functionDeclarations": [
                {"name": "get_weather", "description": "Weather", "parameters": {
                    "type": "OBJECT", "required": ["city"],
                    "properties": {"city": {"type": "STRING"}, "days": {"type": "ARRAY", "items": {"type": "INTEGER"}}}
                }},
                {"name": "get_time", "parametersJsonSchema": {"type": "object", "properties": {}}}
            ]}, {"googleSearch": {}}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_time"]}},
            "generationConfig": {"maxOutputTokens": 100, "temperature": 0.5, "topP": 0.9, "topK": 40.0,
                                 "stopSequences": ["END"], "candidateCount": 1, "responseMimeType": "application/json",
                                 "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": true}},
            "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}]
        }))
        .unwrap();
        assert_eq!((r.model.as_str(), r.stream, r.source), ("gemini-2.5-pro", false, Some(Dialect::Gemini)));
        assert_eq!(r.system, vec![ContentPart::text("be brief"), ContentPart::text("and kind")]);
        let m = &r.messages;
        assert_eq!(m.len(), 4);
        assert_eq!(
            m[0].content[..3],
            [
                ContentPart::text("see"),
                ContentPart::Image {
                    source: ImageSource::Base64 { media_type: "image/png".into(), data: "AAAA".into() },
                    detail: None,
                    cache_control: None
                },
                ContentPart::Image {
                    source: ImageSource::Url { url: "https://x/y.jpg".into() },
                    detail: None,
                    cache_control: None
                },
            ]
        );
        assert!(
            matches!(&m[0].content[3], ContentPart::Opaque(Opaque { dialect: Dialect::Gemini, value }) if value["inlineData"]["mimeType"] == "application/pdf")
        );
        assert!(matches!(&m[0].content[4], ContentPart::Opaque(o) if o.value["executableCode"]["code"] == "print(1)"));
        assert_eq!(m[1].role, Role::Assistant);
        assert_eq!(
            m[1].content,
            vec![
                ContentPart::Thinking { text: "Let me think.".into(), signature: Some("sig".into()) },
                ContentPart::text("Calling."),
                ContentPart::Thinking { text: String::new(), signature: Some("fc-sig".into()) },
                ContentPart::tool_use("call_1", "get_weather", json!({"city": "Paris"})),
                ContentPart::tool_use("own", "get_time", json!({})),
            ]
        );
        assert_eq!(
            m[2].content,
            vec![
                ContentPart::tool_result("own", vec![ContentPart::text("noon")], false),
                ContentPart::tool_result("call_1", vec![ContentPart::text(r#"{"temp":20}"#)], false),
            ]
        );
        assert_eq!(m[3], Message::user(vec![ContentPart::text("thanks")]));
        // ANY with one allowed function forces it; the other tools stay available to name in history.
        assert_eq!(r.tool_choice, Some(ToolChoice::Tool("get_time".into())));
        assert_eq!(r.tools.len(), 3);
        assert_eq!(
            r.tools[0].parameters,
            json!({"type": "object", "required": ["city"],
                   "properties": {"city": {"type": "string"}, "days": {"type": "array", "items": {"type": "integer"}}}})
        );
        assert_eq!(r.tools[1].parameters, json!({"type": "object", "properties": {}}));
        assert!(
            matches!(&r.tools[2].builtin, Some(Opaque { dialect: Dialect::Gemini, value }) if *value == json!({"googleSearch": {}}))
        );
        assert_eq!((r.max_tokens, r.temperature, r.top_p, r.top_k), (Some(100), Some(0.5), Some(0.9), Some(40)));
        assert_eq!(r.stop, vec!["END"]);
        assert_eq!(r.reasoning, Some(Reasoning { budget_tokens: Some(2048), ..Reasoning::default() }));
        assert_eq!(
            Value::Object(r.extra),
            json!({"generationConfig": {"candidateCount": 1, "responseMimeType": "application/json"},
                   "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}]})
        );
    }

    #[test]
    fn snake_case_keys_are_read_too() {
        let r = parse(json!({
            "system_instruction": {"parts": [{"text": "sys"}]},
            "contents": [{"role": "user", "parts": [{"inline_data": {"mime_type": "image/png", "data": "AA"}}]},
                         {"role": "model", "parts": [{"function_call": {"name": "f", "args": {"a": 1}}, "thought_signature": "s"}]},
                         {"role": "function", "parts": [{"function_response": {"name": "f", "response": {"error": "boom"}}}]}],
            "tool_config": {"function_calling_config": {"mode": "none"}},
            "generation_config": {"max_output_tokens": 7, "stop_sequences": ["x"], "thinking_config": {"thinking_level": "HIGH"}}
        }))
        .unwrap();
        assert_eq!(r.system, vec![ContentPart::text("sys")]);
        assert!(matches!(&r.messages[0].content[0], ContentPart::Image { source: ImageSource::Base64 { .. }, .. }));
        assert_eq!(r.messages[1].content[1], ContentPart::tool_use("call_1", "f", json!({"a": 1})));
        assert_eq!(r.messages[2].content[0], ContentPart::tool_result("call_1", vec![ContentPart::text("boom")], true));
        assert_eq!(r.tool_choice, Some(ToolChoice::None));
        assert_eq!((r.max_tokens, r.stop.clone()), (Some(7), vec!["x".to_owned()]));
        assert_eq!(r.reasoning, Some(Reasoning { effort: Some("high".into()), ..Reasoning::default() }));
        assert!(r.extra.is_empty());
    }

    #[test]
    fn thinking_config_maps_to_one_reasoning_setting() {
        let reasoning = |config: Value| {
            parse(json!({"contents": [{"parts": [{"text": "q"}]}], "generationConfig": {"thinkingConfig": config}}))
                .unwrap()
                .reasoning
        };
        let effort = |e: &str| Some(Reasoning { effort: Some(e.into()), ..Reasoning::default() });
        assert_eq!(reasoning(json!({"thinkingBudget": 0})), effort("none"));
        assert_eq!(reasoning(json!({"thinkingBudget": -1})), effort("medium"));
        assert_eq!(reasoning(json!({"includeThoughts": true})), effort("medium"));
        assert_eq!(reasoning(json!({"includeThoughts": false})), None);
        assert_eq!(reasoning(json!({"thinkingLevel": "low", "thinkingBudget": 9000})), effort("low"));
        assert_eq!(reasoning(json!({"thinkingLevel": "THINKING_LEVEL_UNSPECIFIED"})), None);
        assert!(err(json!({"contents": [{"parts": [{"text": "q"}]}], "generationConfig": {"thinkingConfig": {"thinkingBudget": -5}}}))
            .starts_with("generationConfig.thinkingConfig.thinkingBudget: expected -1"));
    }

    #[test]
    fn function_calling_modes() {
        let with = |config: Value| {
            parse(json!({"contents": [{"parts": [{"text": "q"}]}],
                         "tools": [{"functionDeclarations": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}],
                         "toolConfig": {"functionCallingConfig": config}}))
            .unwrap()
        };
        assert_eq!(with(json!({"mode": "AUTO"})).tool_choice, Some(ToolChoice::Auto));
        assert_eq!(with(json!({"mode": "VALIDATED"})).tool_choice, Some(ToolChoice::Auto));
        assert_eq!(with(json!({})).tool_choice, Some(ToolChoice::Auto));
        assert_eq!(with(json!({"mode": "ANY"})).tool_choice, Some(ToolChoice::Required));
        let r = with(json!({"mode": "ANY", "allowedFunctionNames": ["a", "c"]}));
        assert_eq!(r.tool_choice, Some(ToolChoice::Required));
        assert_eq!(r.tools.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["a", "c"]);
        let e = err(
            json!({"contents": [{"parts": [{"text": "q"}]}], "toolConfig": {"functionCallingConfig": {"mode": "SOMETIMES"}}}),
        );
        assert!(e.contains("unknown mode 'SOMETIMES'"), "{e}");
    }

    #[test]
    fn function_responses_answer_the_earliest_open_call_of_their_name() {
        let r = parse(json!({"contents": [
            {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"n": 1}}}, {"functionCall": {"name": "f", "args": {"n": 2}}},
                                        {"functionCall": {"name": "call_1"}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {"output": 1}}},
                                       {"functionResponse": {"name": "f", "response": {"output": 2}}},
                                       {"functionResponse": {"name": "g", "response": {}}}]}
        ]}))
        .unwrap();
        let ids: Vec<_> = r.messages[0]
            .content
            .iter()
            .map(|p| match p {
                ContentPart::ToolUse { id, .. } => id.clone(),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(ids, ["call_1", "call_2", "call_3"]);
        let answered: Vec<_> = r.messages[1]
            .content
            .iter()
            .map(|p| match p {
                ContentPart::ToolResult { tool_use_id, content, .. } => (tool_use_id.clone(), content.clone()),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(answered[0], ("call_1".into(), vec![ContentPart::text("1")]));
        assert_eq!(answered[1], ("call_2".into(), vec![ContentPart::text("2")]));
        // A response to no call gets an id of its own (the upstream decides whether that is acceptable).
        assert_eq!(answered[2], ("call_4".into(), vec![ContentPart::text("{}")]));
    }

    #[test]
    fn malformed_requests_are_rejected_with_the_path() {
        assert!(err(json!({})).starts_with("contents: missing"));
        assert!(err(json!({"contents": []})).starts_with("contents: expected a non-empty array"));
        assert!(err(json!({"contents": "hi"})).starts_with("contents: expected a non-empty array"));
        assert!(err(json!({"contents": [{"role": "user"}]})).starts_with("contents[0].parts: missing"));
        assert!(err(json!({"contents": [{"role": "assistant", "parts": []}]})).contains("unknown role 'assistant'"));
        assert!(err(user(json!([{"text": 5}]))).starts_with("contents[0].parts[0].text: expected a string"));
        assert!(err(user(json!([{"text": "a", "functionCall": {"name": "f"}}]))).contains("not several"));
        assert!(
            err(user(json!([{"functionCall": {"args": {}}}])))
                .starts_with("contents[0].parts[0].functionCall.name: missing")
        );
        assert!(
            err(user(json!([{"thought": "yes", "text": "a"}])))
                .starts_with("contents[0].parts[0].thought: expected true or false")
        );
        assert!(err(user(json!(["text"]))).starts_with("contents[0].parts[0]: expected a JSON object"));
        let e = err(
            json!({"contents": [{"parts": [{"text": "q"}]}], "systemInstruction": {"parts": [{"inlineData": {"mimeType": "image/png", "data": "A"}}]}}),
        );
        assert!(e.starts_with("systemInstruction.parts[0]: only text parts"), "{e}");
        assert!(err(json!({"contents": [{"parts": [{"text": "q"}]}], "tools": [{"functionDeclarations": [{"description": "x"}]}]}))
            .starts_with("tools[0].functionDeclarations[0].name: missing"));
        assert!(
            err(json!({"contents": [{"parts": [{"text": "q"}]}], "generationConfig": {"topK": 1.5}}))
                .starts_with("generationConfig.topK")
        );
        assert!(
            err(json!({"contents": [{"parts": [{"text": "q"}]}], "generationConfig": {"maxOutputTokens": -1}}))
                .starts_with("generationConfig.maxOutputTokens")
        );
        assert!(invalid_message(parse_request(b"{", "m", false)).starts_with("body is not valid JSON"));
        assert!(invalid_message(parse_request(b"[]", "m", false)).contains("expected a JSON object"));
        assert!(
            invalid_message(parse_request(br#"{"contents":[{"parts":[{"text":"q"}]}]}"#, "", false)).contains("model")
        );
        assert!(invalid_message(Dialect::Gemini.parse_request(b"{}")).contains("URL"));
    }

    #[test]
    fn signatures_survive_the_round_trip_through_googles_sdks() {
        // A Claude signature is base64 of its own, which Google's SDKs would rewrite in URL-safe form.
        let claude = "EqQBCkgIBRABGAIiQ+/x==";
        let wrapped = wrap_signature(claude);
        assert!(wrapped.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)), "{wrapped}");
        assert_eq!(unwrap_signature(Cow::Borrowed(&wrapped)), claude);
        // What an SDK may write back: standard alphabet, padding dropped.
        let standard = wrapped.replace('-', "+").replace('_', "/");
        assert_eq!(unwrap_signature(Cow::Owned(standard.trim_end_matches('=').to_owned())), claude);
        // Gemini's own signatures and anything else stay as they are.
        for foreign in ["CiQB0e2Kb7", "not base64!", ""] {
            assert_eq!(unwrap_signature(Cow::Borrowed(foreign)), foreign);
        }
        let r = parse(json!({"contents": [{"role": "model", "parts": [
            {"text": "hm", "thought": true, "thoughtSignature": wrapped},
            {"functionCall": {"name": "f"}, "thoughtSignature": "CiQB0e2Kb7"}
        ]}]}))
        .unwrap();
        assert_eq!(
            r.messages[0].content[0],
            ContentPart::Thinking { text: "hm".into(), signature: Some(claude.into()) }
        );
        assert_eq!(
            r.messages[0].content[1],
            ContentPart::Thinking { text: String::new(), signature: Some("CiQB0e2Kb7".into()) }
        );
        // Requests for a Gemini upstream carry the signatures as they are.
        assert_eq!(encode(&r)["contents"][0]["parts"][0]["thoughtSignature"], claude);
    }

    #[test]
    fn count_requests_take_either_form() {
        let plain = parse_count_request(br#"{"contents":[{"parts":[{"text":"hi"}]}]}"#, "m").unwrap();
        let wrapped = parse_count_request(
            br#"{"generateContentRequest":{"model":"models/m","contents":[{"parts":[{"text":"hi"}]}]}}"#,
            "m",
        )
        .unwrap();
        assert_eq!(plain.messages, wrapped.messages);
        let e = invalid_message(parse_count_request(br#"{"generateContentRequest":{}}"#, "m"));
        assert!(e.starts_with("generateContentRequest: contents: missing"), "{e}");
    }

    // ---------------------------------------------------------------- encode_request

    #[test]
    fn encodes_requests_from_other_dialects() {
        let req = ChatRequest {
            model: "gemini-2.5-flash".into(),
            system: vec![ContentPart::Text { text: "sys".into(), cache_control: Some(CacheControl::ephemeral()) }],
            messages: vec![
                Message::user(vec![
                    ContentPart::text("look"),
                    ContentPart::Image {
                        source: ImageSource::Base64 { media_type: "image/png".into(), data: "AA".into() },
                        detail: Some("high".into()),
                        cache_control: None,
                    },
                ]),
                Message::assistant(vec![
                    ContentPart::Thinking { text: "hm".into(), signature: None },
                    ContentPart::Thinking { text: "signed".into(), signature: Some("s1".into()) },
                    ContentPart::RedactedThinking { data: "enc".into() },
                    ContentPart::tool_use("t1", "get_weather", json!({"city": "Paris"})),
                    ContentPart::tool_use("t2", "bad_args", json!("{not json")),
                ]),
                Message::user(vec![
                    ContentPart::tool_result("t1", vec![ContentPart::text(r#"{"temp": 20}"#)], false),
                    ContentPart::tool_result("t2", vec![ContentPart::text("failed")], true),
                    ContentPart::tool_result("t9", vec![ContentPart::text("plain")], false),
                ]),
                Message::assistant(vec![ContentPart::Thinking { text: "only unsigned".into(), signature: None }]),
            ],
            tools: vec![
                Tool {
                    name: "get_weather".into(),
                    description: Some("W".into()),
                    parameters: json!({"type": "object"}),
                    ..Tool::default()
                },
                Tool { name: "bad_args".into(), ..Tool::default() },
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
            max_tokens: Some(500),
            temperature: Some(0.2),
            top_k: Some(5),
            stop: vec!["X".into()],
            reasoning: Some(Reasoning { effort: Some("high".into()), ..Reasoning::default() }),
            parallel_tool_calls: Some(false),
            user: Some("u".into()),
            source: Some(Dialect::OpenAiChat),
            extra: [("seed".to_owned(), json!(1))].into_iter().collect(),
            ..ChatRequest::default()
        };
        assert_eq!(
            encode(&req),
            json!({
                "contents": [
                    {"role": "user", "parts": [{"text": "look"}, {"inlineData": {"mimeType": "image/png", "data": "AA"}}]},
                    {"role": "model", "parts": [
                        {"thought": true, "text": "signed", "thoughtSignature": "s1"},
                        {"functionCall": {"id": "t1", "name": "get_weather", "args": {"city": "Paris"}}},
                        {"functionCall": {"id": "t2", "name": "bad_args", "args": {}}}
                    ]},
                    {"role": "user", "parts": [
                        {"functionResponse": {"id": "t1", "name": "get_weather", "response": {"temp": 20}}},
                        {"functionResponse": {"id": "t2", "name": "bad_args", "response": {"error": "failed"}}},
                        {"functionResponse": {"id": "t9", "name": "t9", "response": {"output": "plain"}}}
                    ]}
                ],
                "systemInstruction": {"parts": [{"text": "sys"}]},
                "tools": [{"functionDeclarations": [
                    {"name": "get_weather", "description": "W", "parametersJsonSchema": {"type": "object"}},
                    {"name": "bad_args"}
                ]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}},
                "generationConfig": {"maxOutputTokens": 500, "temperature": 0.2, "topK": 5, "stopSequences": ["X"],
                                     "thinkingConfig": {"thinkingBudget": 24576, "includeThoughts": true}}
            })
        );
    }

    #[test]
    fn thinking_settings_become_budgets() {
        let config = |r: Reasoning| thinking_config(&r);
        assert_eq!(
            config(Reasoning { budget_tokens: Some(3000), ..Reasoning::default() }),
            json!({"thinkingBudget": 3000, "includeThoughts": true})
        );
        assert_eq!(
            config(Reasoning { effort: Some("none".into()), ..Reasoning::default() }),
            json!({"thinkingBudget": 0})
        );
        assert_eq!(
            config(Reasoning { effort: Some("low".into()), ..Reasoning::default() }),
            json!({"thinkingBudget": 1024, "includeThoughts": true})
        );
        assert_eq!(
            config(Reasoning { adaptive: true, effort: Some("low".into()), ..Reasoning::default() }),
            json!({"thinkingBudget": -1, "includeThoughts": true})
        );
    }

    #[test]
    fn gemini_requests_round_trip_with_their_extras() {
        let body = json!({
            "contents": [{"role": "user", "parts": [{"text": "q"}, {"executableCode": {"language": "PYTHON", "code": "1"}}]},
                         {"role": "model", "parts": [{"functionCall": {"id": "c", "name": "f", "args": {}}, "thoughtSignature": "sig"}]},
                         {"role": "user", "parts": [{"functionResponse": {"id": "c", "name": "f", "response": {"output": "ok"}}}]}],
            "tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": {"type": "object"}}]}, {"codeExecution": {}}],
            "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}, "retrievalConfig": {"languageCode": "en"}},
            "generationConfig": {"temperature": 1, "seed": 3, "thinkingConfig": {"thinkingBudget": 100, "includeThoughts": true}},
            "safetySettings": [],
            "cachedContent": "cachedContents/x"
        });
        let r = parse(body.clone()).unwrap();
        let mut expected = body;
        expected["generationConfig"]["temperature"] = json!(1.0);
        assert_eq!(encode(&r), expected);
    }

    // ---------------------------------------------------------------- answers

    #[test]
    fn parses_answers_with_thoughts_calls_and_usage() {
        let body = json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "plan", "thought": true},
                {"text": "Hi"},
                {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "s"}
            ]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 5, "thoughtsTokenCount": 7, "cachedContentTokenCount": 4, "totalTokenCount": 32},
            "modelVersion": "gemini-2.5-pro", "responseId": "abc"
        });
        let r = parse_response(body.to_string().as_bytes()).unwrap();
        assert_eq!((r.id.as_str(), r.model.as_str()), ("abc", "gemini-2.5-pro"));
        assert_eq!(
            r.content,
            vec![
                ContentPart::Thinking { text: "plan".into(), signature: None },
                ContentPart::text("Hi"),
                ContentPart::Thinking { text: String::new(), signature: Some("s".into()) },
                ContentPart::tool_use("call_1", "f", json!({"a": 1})),
            ]
        );
        assert_eq!(r.stop_reason, Some(StopReason::ToolUse));
        assert_eq!(
            r.usage,
            Usage {
                input_tokens: 16,
                output_tokens: 12,
                cache_read_tokens: 4,
                cache_creation_tokens: 0,
                reasoning_tokens: 7
            }
        );
        // Encoded back for a Gemini client: the same usage and the signature on the call again, wrapped.
        let v: Value = serde_json::from_slice(&encode_response(&r, "alias")).unwrap();
        assert_eq!(v["usageMetadata"], body["usageMetadata"]);
        assert_eq!(
            v["candidates"][0]["content"]["parts"][2],
            json!({"functionCall": {"id": "call_1", "name": "f", "args": {"a": 1}}, "thoughtSignature": wrap_signature("s")})
        );
        assert_eq!(
            (v["modelVersion"].as_str(), v["candidates"][0]["finishReason"].as_str()),
            (Some("alias"), Some("STOP"))
        );
    }

    #[test]
    fn finish_reasons_both_ways() {
        assert_eq!(parse_finish_reason("STOP", false), StopReason::EndTurn);
        assert_eq!(parse_finish_reason("MAX_TOKENS", true), StopReason::MaxTokens);
        assert_eq!(parse_finish_reason("RECITATION", false), StopReason::ContentFilter);
        assert_eq!(
            parse_finish_reason("MALFORMED_FUNCTION_CALL", false),
            StopReason::Other("MALFORMED_FUNCTION_CALL".into())
        );
        assert_eq!(finish_reason(None), "STOP");
        assert_eq!(finish_reason(Some(&StopReason::ToolUse)), "STOP");
        assert_eq!(finish_reason(Some(&StopReason::MaxTokens)), "MAX_TOKENS");
        assert_eq!(finish_reason(Some(&StopReason::Refusal)), "SAFETY");
        assert_eq!(
            finish_reason(Some(&StopReason::Other("MALFORMED_FUNCTION_CALL".into()))),
            "MALFORMED_FUNCTION_CALL"
        );
        assert_eq!(finish_reason(Some(&StopReason::Other("insufficient_system_resource".into()))), "OTHER");
    }

    #[test]
    fn blocked_prompts_and_error_answers() {
        let r =
            parse_response(br#"{"promptFeedback":{"blockReason":"SAFETY"},"usageMetadata":{"promptTokenCount":3}}"#)
                .unwrap();
        assert_eq!((r.content.len(), r.stop_reason), (0, Some(StopReason::ContentFilter)));
        let e =
            parse_response(br#"{"error":{"code":429,"message":"slow","status":"RESOURCE_EXHAUSTED"}}"#).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        let e = parse_response(b"not json").unwrap_err();
        assert!(e.message().starts_with("the upstream sent an unreadable generateContent answer"), "{e}");
    }

    #[test]
    fn encodes_answers_for_gemini_clients() {
        let resp = ChatResponse {
            id: "msg_1".into(),
            model: "claude".into(),
            content: vec![
                ContentPart::Thinking { text: "Let me think.".into(), signature: Some("sig".into()) },
                ContentPart::Thinking { text: "unsigned".into(), signature: None },
                ContentPart::RedactedThinking { data: "enc".into() },
                ContentPart::text("Hello"),
                ContentPart::tool_use("toolu_1", "get_weather", json!({"city": "Paris"})),
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
        let v: Value = serde_json::from_slice(&encode_response(&resp, "gemini-alias")).unwrap();
        assert_eq!(
            v,
            json!({
                "candidates": [{"content": {"role": "model", "parts": [
                    {"thought": true, "text": "Let me think.", "thoughtSignature": wrap_signature("sig")},
                    {"thought": true, "text": "unsigned"},
                    {"text": "Hello"},
                    {"functionCall": {"id": "toolu_1", "name": "get_weather", "args": {"city": "Paris"}}}
                ]}, "finishReason": "MAX_TOKENS", "index": 0}],
                "usageMetadata": {"promptTokenCount": 19, "candidatesTokenCount": 5, "totalTokenCount": 26,
                                  "cachedContentTokenCount": 5, "thoughtsTokenCount": 2},
                "modelVersion": "gemini-alias",
                "responseId": "msg_1"
            })
        );
        assert_eq!(encode_count_response(42), br#"{"totalTokens":42}"#);
    }

    #[test]
    fn usage_of_passthrough_bodies() {
        assert_eq!(usage_of(br#"{"candidates":[]}"#), None);
        let u = usage_of(
            br#"{"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":2,"toolUsePromptTokenCount":1}}"#,
        )
        .unwrap();
        assert_eq!((u.input_tokens, u.output_tokens), (10, 2));
    }

    // ---------------------------------------------------------------- errors

    #[test]
    fn google_errors_map_to_kinds() {
        let body = |status: &str, details: Value| {
            json!({"error": {"code": 400, "message": "m", "status": status, "details": details}}).to_string()
        };
        let e = parse_error(429, body("RESOURCE_EXHAUSTED", json!([
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "41.5s"}
        ])).as_bytes());
        assert_eq!(
            (e.kind(), e.status(), e.retry_after()),
            (ErrorKind::RateLimited, Some(429), Some(std::time::Duration::from_millis(41500)))
        );
        let e = parse_error(
            429,
            body(
                "RESOURCE_EXHAUSTED",
                json!([{"violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]),
            )
            .as_bytes(),
        );
        assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
        let e = parse_error(
            400,
            body(
                "INVALID_ARGUMENT",
                json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]),
            )
            .as_bytes(),
        );
        assert_eq!(e.kind(), ErrorKind::Authentication);
        assert_eq!(parse_error(400, body("INVALID_ARGUMENT", json!([])).as_bytes()).kind(), ErrorKind::InvalidRequest);
        assert_eq!(parse_error(401, body("UNAUTHENTICATED", json!([])).as_bytes()).kind(), ErrorKind::Authentication);
        assert_eq!(parse_error(404, body("NOT_FOUND", json!([])).as_bytes()).kind(), ErrorKind::ModelNotFound);
        let e = parse_error(503, body("UNAVAILABLE", json!([])).as_bytes());
        assert!(e.kind() == ErrorKind::Upstream && e.is_retryable());
        // The array the non-SSE stream form wraps errors in, and bodies that are not Google's.
        let wrapped = format!("[{}]", body("PERMISSION_DENIED", json!([])));
        assert_eq!(parse_error(403, wrapped.as_bytes()).kind(), ErrorKind::Permission);
        let e = parse_error(502, b"<html>Bad Gateway</html>");
        assert_eq!((e.kind(), e.message()), (ErrorKind::Upstream, "<html>Bad Gateway</html>"));
        assert_eq!(parse_error(429, b"").kind(), ErrorKind::RateLimited);
        let e = parse_stream_error(br#"{"error":{"code":500,"message":"internal","status":"INTERNAL"}}"#);
        assert_eq!((e.kind(), e.status(), e.message()), (ErrorKind::Upstream, Some(500), "internal"));
    }

    #[test]
    fn error_events_are_data_chunks_with_googles_body() {
        let ev = error_event(&Error::new(ErrorKind::Upstream, "gone"));
        assert_eq!(ev.event, None);
        let v: Value = serde_json::from_str(&ev.data).unwrap();
        assert_eq!(v, json!({"error": {"code": 502, "message": "gone", "status": "UNAVAILABLE"}}));
    }

    // ---------------------------------------------------------------- stream parser

    #[test]
    fn stream_chunks_become_blocks() {
        use StreamEvent::*;
        let evs = run(&[
            chunk(json!([{"text": "Let ", "thought": true}])),
            chunk(json!([{"text": "me", "thought": true}, {"thought": true, "thoughtSignature": "s1"}])),
            chunk(json!([{"text": "Hel"}])),
            chunk(json!([{"text": ""}, {"text": "lo"}])),
            chunk(json!([{"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "s2"}, {"functionCall": {"id": "x", "name": "g"}}])),
            json!({"candidates": [{"content": {"role": "model", "parts": []}, "finishReason": "STOP"}],
                   "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "thoughtsTokenCount": 2}}),
        ])
        .unwrap();
        assert_eq!(
            evs,
            vec![
                Start { id: "r1".into(), model: "gemini-x".into(), usage: Usage::default() },
                BlockStart { index: 0, block: BlockKind::Thinking },
                ThinkingDelta { index: 0, text: "Let ".into() },
                ThinkingDelta { index: 0, text: "me".into() },
                SignatureDelta { index: 0, signature: "s1".into() },
                BlockStop { index: 0 },
                BlockStart { index: 1, block: BlockKind::Text },
                TextDelta { index: 1, text: "Hel".into() },
                TextDelta { index: 1, text: "lo".into() },
                BlockStop { index: 1 },
                BlockStart { index: 2, block: BlockKind::Thinking },
                SignatureDelta { index: 2, signature: "s2".into() },
                BlockStop { index: 2 },
                BlockStart { index: 3, block: BlockKind::ToolUse { id: "call_1".into(), name: "f".into() } },
                ToolArgsDelta { index: 3, json: r#"{"a":1}"#.into() },
                BlockStop { index: 3 },
                BlockStart { index: 4, block: BlockKind::ToolUse { id: "x".into(), name: "g".into() } },
                BlockStop { index: 4 },
                Finish {
                    stop_reason: Some(StopReason::ToolUse),
                    usage: Usage { input_tokens: 5, output_tokens: 5, reasoning_tokens: 2, ..Usage::default() }
                },
            ]
        );
    }

    #[test]
    fn stream_usage_merges_and_a_later_thought_opens_a_new_block() {
        let evs = run(&[
            json!({"candidates": [{"content": {"parts": [{"text": "a", "thought": true, "thoughtSignature": "s"}]}}], "usageMetadata": {"promptTokenCount": 4}}),
            chunk(json!([{"text": "b", "thought": true}])),
            json!({"candidates": [{"content": {"parts": [{"text": "c"}]}, "finishReason": "MAX_TOKENS"}], "usageMetadata": {"candidatesTokenCount": 2}}),
            json!({"candidates": [], "usageMetadata": {"candidatesTokenCount": 3, "cachedContentTokenCount": 1}}),
        ])
        .unwrap();
        let starts = evs.iter().filter(|e| matches!(e, StreamEvent::BlockStart { .. })).count();
        assert_eq!(starts, 3);
        assert_eq!(
            evs.last(),
            Some(&StreamEvent::Finish {
                stop_reason: Some(StopReason::MaxTokens),
                usage: Usage { input_tokens: 3, output_tokens: 3, cache_read_tokens: 1, ..Usage::default() }
            })
        );
    }

    #[test]
    fn stream_errors_and_cut_offs() {
        let e = run(&[
            chunk(json!([{"text": "a"}])),
            json!({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}),
        ])
        .unwrap_err();
        assert_eq!((e.kind(), e.status(), e.message()), (ErrorKind::Upstream, Some(503), "overloaded"));
        let e = run(&[chunk(json!([{"text": "a"}]))]).unwrap_err();
        assert!(e.message().contains("ended early"), "{e}");
        let e = run(&[json!("nope")]).unwrap_err();
        assert!(e.message().starts_with("the upstream sent an unreadable stream chunk"), "{e}");
        // A blocked prompt ends the stream without a candidate; a relay's `[DONE]` ends it too.
        let evs = run(&[json!({"promptFeedback": {"blockReason": "OTHER"}})]).unwrap();
        assert!(matches!(evs.last(), Some(StreamEvent::Finish { stop_reason: Some(StopReason::ContentFilter), .. })));
        let mut parser = Dialect::Gemini.stream_parser();
        let mut out = Vec::new();
        parser
            .push(
                &sse(
                    None,
                    json!({"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "STOP"}]})
                        .to_string(),
                ),
                &mut out,
            )
            .unwrap();
        parser.push(&sse(None, "[DONE]"), &mut out).unwrap();
        assert!(matches!(out.last(), Some(StreamEvent::Finish { stop_reason: Some(StopReason::EndTurn), .. })));
        parser.push(&sse(None, chunk(json!([{"text": "late"}])).to_string()), &mut out).unwrap();
        parser.finish(&mut out).unwrap();
        assert!(matches!(out.last(), Some(StreamEvent::Finish { .. })));
    }

    // ---------------------------------------------------------------- stream encoder

    fn encode_stream(events: &[StreamEvent]) -> Vec<OutEvent> {
        testing::encode_stream(
            Dialect::Gemini.stream_encoder("asked", false, std::time::SystemTime::UNIX_EPOCH),
            events,
        )
    }

    #[test]
    fn encoder_writes_one_chunk_per_delta_and_whole_calls() {
        use StreamEvent::*;
        let out = encode_stream(&[
            Start { id: "msg_1".into(), model: "c".into(), usage: Usage::default() },
            Ping,
            BlockStart { index: 0, block: BlockKind::Thinking },
            ThinkingDelta { index: 0, text: "hm".into() },
            SignatureDelta { index: 0, signature: "sig".into() },
            BlockStop { index: 0 },
            BlockStart { index: 1, block: BlockKind::Text },
            TextDelta { index: 1, text: "Hi".into() },
            TextDelta { index: 1, text: "".into() },
            BlockStop { index: 1 },
            BlockStart { index: 2, block: BlockKind::ToolUse { id: "t1".into(), name: "f".into() } },
            ToolArgsDelta { index: 2, json: "{\"a\":".into() },
            ToolArgsDelta { index: 9, json: "lost".into() },
            ToolArgsDelta { index: 2, json: "1}".into() },
            BlockStop { index: 2 },
            BlockStart { index: 3, block: BlockKind::ToolUse { id: "t2".into(), name: "g".into() } },
            Finish {
                stop_reason: Some(StopReason::ToolUse),
                usage: Usage { input_tokens: 3, output_tokens: 4, ..Usage::default() },
            },
            TextDelta { index: 4, text: "after finish".into() },
        ]);
        assert!(out.iter().all(|e| e.event.is_none()));
        let parts: Vec<Value> = datas(&out).iter().map(|c| c["candidates"][0]["content"]["parts"].clone()).collect();
        assert_eq!(
            parts,
            vec![
                json!([{"thought": true, "text": "hm"}]),
                json!([{"thought": true, "thoughtSignature": wrap_signature("sig")}]),
                json!([{"text": "Hi"}]),
                json!([{"functionCall": {"id": "t1", "name": "f", "args": {"a": 1}}}]),
                json!([{"functionCall": {"id": "t2", "name": "g", "args": {}}}]),
                json!([]),
            ]
        );
        let last = &datas(&out)[5];
        assert_eq!(
            *last,
            json!({"candidates": [{"content": {"role": "model", "parts": []}, "finishReason": "STOP", "index": 0}],
                   "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 4, "totalTokenCount": 7},
                   "modelVersion": "asked", "responseId": "msg_1"})
        );
        // No end marker, and a call still collecting at the end is written.
        let out = encode_stream(&[
            BlockStart { index: 0, block: BlockKind::ToolUse { id: "t".into(), name: "f".into() } },
            ToolArgsDelta { index: 0, json: "not json".into() },
        ]);
        assert_eq!(datas(&out).len(), 1);
        assert_eq!(datas(&out)[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["args"], json!({}));
        assert!(datas(&out)[0].get("responseId").is_none());
        assert!(encode_stream(&[]).is_empty());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever the event sequence, every chunk is a whole `GenerateContentResponse` with one candidate,
            /// at most the last one carries a finish reason, no text is lost or invented, and there is no
            /// `[DONE]`.
            #[test]
            fn any_event_sequence_encodes_to_a_valid_stream(events in proptest::collection::vec(testing::stream_event(), 0..40)) {
                let out = encode_stream(&events);
                let chunks: Vec<Value> = out.iter().map(|e| serde_json::from_str(&e.data).unwrap()).collect();
                for (i, c) in chunks.iter().enumerate() {
                    prop_assert_eq!(c["candidates"].as_array().map(Vec::len), Some(1));
                    prop_assert_eq!(&c["candidates"][0]["content"]["role"], "model");
                    prop_assert!(c["candidates"][0]["content"]["parts"].is_array());
                    let finished = c["candidates"][0].get("finishReason").is_some();
                    prop_assert!(!finished || i + 1 == chunks.len(), "finish reason before the last chunk");
                    prop_assert_eq!(finished, c.get("usageMetadata").is_some());
                }
                let want = testing::text_until_finish(&events);
                let got: String = chunks
                    .iter()
                    .flat_map(|c| c["candidates"][0]["content"]["parts"].as_array().cloned().unwrap_or_default())
                    .filter(|p| p.get("thought").is_none())
                    .filter_map(|p| p["text"].as_str().map(str::to_owned))
                    .collect();
                prop_assert_eq!(got, want);
            }

            /// Gemini chunks through the parser and back through the encoder keep every text, thought and call.
            #[test]
            fn gemini_chunks_round_trip(
                parts in proptest::collection::vec(prop_oneof![
                    ".{0,3}".prop_map(|t| json!({"text": t})),
                    ".{0,3}".prop_map(|t| json!({"text": t, "thought": true})),
                    "[a-z]{1,3}".prop_map(|s| json!({"thought": true, "thoughtSignature": s})),
                    ("[a-z]{1,3}", 0u8..3).prop_map(|(n, a)| json!({"functionCall": {"id": format!("id_{n}"), "name": n, "args": {"a": a}}})),
                ], 0..10),
            ) {
                let mut chunks: Vec<Value> = parts.iter().map(|p| chunk(json!([p]))).collect();
                chunks.push(json!({"candidates": [{"content": {"parts": []}, "finishReason": "STOP"}]}));
                let events = run(&chunks).unwrap();
                let out = encode_stream(&events);
                let text = |ps: &[Value], thought: bool| -> String {
                    ps.iter().filter(|p| p.get("thought").is_some() == thought).filter_map(|p| p["text"].as_str()).collect()
                };
                let calls = |ps: &[Value]| -> Vec<Value> { ps.iter().filter_map(|p| p.get("functionCall").cloned()).collect() };
                let got: Vec<Value> = datas(&out)
                    .iter()
                    .flat_map(|c| c["candidates"][0]["content"]["parts"].as_array().cloned().unwrap_or_default())
                    .collect();
                prop_assert_eq!(text(&got, false), text(&parts, false));
                prop_assert_eq!(text(&got, true), text(&parts, true));
                prop_assert_eq!(calls(&got), calls(&parts));
            }
        }
    }
}
