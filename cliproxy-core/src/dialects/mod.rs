//! The client-facing APIs ("dialects") and their mapping to and from the IR in [`crate::types`].
//!
//! Each dialect module has the same pure functions, used in both roles (a client speaking the dialect, and
//! an upstream speaking it):
//! - `parse_request` / `encode_request`: client body → IR, IR → upstream body;
//! - `parse_response` / `encode_response`: upstream JSON answer → IR, IR → client JSON answer;
//! - `StreamParser`: upstream SSE events → IR [`StreamEvent`](crate::types::StreamEvent)s;
//! - `StreamEncoder`: IR stream events → client SSE events ([`OutEvent`]);
//! - `error_event` and `parse_error`: errors on the client and the upstream side.
//!
//! Nothing here does I/O. [`Dialect`] dispatches to the modules for callers that hold the dialect as data.

pub mod anthropic;
pub mod gemini;
pub(crate) mod json;
pub mod openai_chat;
pub mod responses;
#[cfg(test)]
mod testing;

use serde::Serialize;

use crate::error::{Error, ErrorKind};
use crate::stream::sse::SseEvent;
pub use crate::types::Dialect;
use crate::types::{CacheControl, ChatRequest, ChatResponse, ImageSource, Reasoning, StreamEvent, ToolChoice};

use json::{Obj, Path};

impl Dialect {
    pub fn parse_request(self, body: &[u8]) -> Result<ChatRequest, Error> {
        match self {
            Dialect::OpenAiChat => openai_chat::parse_request(body),
            Dialect::Anthropic => anthropic::parse_request(body),
            // The body lacks what routing needs: see `gemini::parse_request`.
            Dialect::Gemini => Err(gemini::model_not_in_body()),
            Dialect::Responses => responses::parse_request(body),
        }
    }

    pub fn encode_request(self, req: &ChatRequest) -> Vec<u8> {
        match self {
            Dialect::OpenAiChat => openai_chat::encode_request(req),
            Dialect::Anthropic => anthropic::encode_request(req),
            Dialect::Gemini => gemini::encode_request(req),
            Dialect::Responses => responses::encode_request(req),
        }
    }

    pub fn parse_response(self, body: &[u8]) -> Result<ChatResponse, Error> {
        match self {
            Dialect::OpenAiChat => openai_chat::parse_response(body),
            Dialect::Anthropic => anthropic::parse_response(body),
            Dialect::Gemini => gemini::parse_response(body),
            Dialect::Responses => responses::parse_response(body),
        }
    }

    /// `now` (the runtime's clock) dates the answer where the dialect has a timestamp (OpenAI's `created`).
    pub fn encode_response(self, resp: &ChatResponse, model: &str, now: std::time::SystemTime) -> Vec<u8> {
        match self {
            Dialect::OpenAiChat => openai_chat::encode_response_at(resp, model, unix_secs(now)),
            Dialect::Anthropic => anthropic::encode_response(resp, model),
            Dialect::Gemini => gemini::encode_response(resp, model),
            Dialect::Responses => responses::encode_response_at(resp, model, unix_secs(now)),
        }
    }

    pub fn parse_error(self, status: u16, body: &[u8]) -> Error {
        match self {
            Dialect::OpenAiChat => openai_chat::parse_error(status, body),
            Dialect::Anthropic => anthropic::parse_error(status, body),
            Dialect::Gemini => gemini::parse_error(status, body),
            Dialect::Responses => responses::parse_error(status, body),
        }
    }

    pub fn error_event(self, err: &Error) -> OutEvent {
        match self {
            Dialect::OpenAiChat => openai_chat::error_event(err),
            Dialect::Anthropic => anthropic::error_event(err),
            Dialect::Gemini => gemini::error_event(err),
            Dialect::Responses => responses::error_event(err),
        }
    }

    /// The JSON error body a client of this dialect gets (OpenAI's shape for both OpenAI APIs, Google's for Gemini).
    pub fn error_body(self, err: &Error) -> Vec<u8> {
        match self {
            Dialect::OpenAiChat | Dialect::Responses => err.openai_body(),
            Dialect::Anthropic => err.anthropic_body(),
            Dialect::Gemini => err.google_body(),
        }
    }

    pub fn stream_parser(self) -> AnyStreamParser {
        match self {
            Dialect::OpenAiChat => AnyStreamParser::OpenAiChat(openai_chat::StreamParser::new()),
            Dialect::Anthropic => AnyStreamParser::Anthropic(anthropic::StreamParser::new()),
            Dialect::Gemini => AnyStreamParser::Gemini(gemini::StreamParser::new()),
            Dialect::Responses => AnyStreamParser::Responses(responses::StreamParser::new()),
        }
    }

    /// An encoder for a client of this dialect. `include_usage` matters only to OpenAI clients.
    pub fn stream_encoder(self, model: &str, include_usage: bool, now: std::time::SystemTime) -> AnyStreamEncoder {
        match self {
            Dialect::OpenAiChat => AnyStreamEncoder::OpenAiChat(openai_chat::StreamEncoder::with_created(
                model,
                include_usage,
                unix_secs(now),
            )),
            Dialect::Anthropic => AnyStreamEncoder::Anthropic(anthropic::StreamEncoder::new(model)),
            Dialect::Gemini => AnyStreamEncoder::Gemini(gemini::StreamEncoder::new(model)),
            Dialect::Responses => {
                AnyStreamEncoder::Responses(responses::StreamEncoder::with_created(model, unix_secs(now)))
            }
        }
    }
}

/// One outgoing SSE event in a client dialect: `event` is the SSE `event:` name (Anthropic, Responses) or
/// `None` (OpenAI chat); `data` is JSON text or `[DONE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutEvent {
    pub event: Option<&'static str>,
    pub data: String,
}

impl OutEvent {
    /// Appends the event in SSE framing (`event: …\ndata: …\n\n`).
    pub fn write_sse(&self, out: &mut Vec<u8>) {
        crate::stream::sse::encode_event(self.event, &self.data, out);
    }
}

/// The stream parser of any dialect.
#[derive(Debug)]
pub enum AnyStreamParser {
    OpenAiChat(openai_chat::StreamParser),
    Anthropic(anthropic::StreamParser),
    Gemini(gemini::StreamParser),
    Responses(responses::StreamParser),
}

impl AnyStreamParser {
    pub fn push(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), Error> {
        match self {
            AnyStreamParser::OpenAiChat(p) => p.push(ev, out),
            AnyStreamParser::Anthropic(p) => p.push(ev, out),
            AnyStreamParser::Gemini(p) => p.push(ev, out),
            AnyStreamParser::Responses(p) => p.push(ev, out),
        }
    }

    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), Error> {
        match self {
            AnyStreamParser::OpenAiChat(p) => p.finish(out),
            AnyStreamParser::Anthropic(p) => p.finish(out),
            AnyStreamParser::Gemini(p) => p.finish(out),
            AnyStreamParser::Responses(p) => p.finish(out),
        }
    }
}

/// The stream encoder of any dialect.
#[derive(Debug)]
pub enum AnyStreamEncoder {
    OpenAiChat(openai_chat::StreamEncoder),
    Anthropic(anthropic::StreamEncoder),
    Gemini(gemini::StreamEncoder),
    Responses(responses::StreamEncoder),
}

impl AnyStreamEncoder {
    pub fn push(&mut self, ev: &StreamEvent, out: &mut Vec<OutEvent>) {
        match self {
            AnyStreamEncoder::OpenAiChat(e) => e.push(ev, out),
            AnyStreamEncoder::Anthropic(e) => e.push(ev, out),
            AnyStreamEncoder::Gemini(e) => e.push(ev, out),
            AnyStreamEncoder::Responses(e) => e.push(ev, out),
        }
    }

    pub fn finish(&mut self, out: &mut Vec<OutEvent>) {
        match self {
            AnyStreamEncoder::OpenAiChat(e) => e.finish(out),
            AnyStreamEncoder::Anthropic(e) => e.finish(out),
            AnyStreamEncoder::Gemini(e) => e.finish(out),
            AnyStreamEncoder::Responses(e) => e.finish(out),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Mapping rules the dialects share.

/// The thinking budget an effort level stands for, or `None` when the effort turns thinking off.
///
/// The budgets are those the original proxy used for the same levels (low 1024, which is Anthropic's
/// minimum; medium 8192; high 24576). Levels above high (`xhigh`, Anthropic's `max`) get high's budget so
/// the default `max_tokens` still leaves room for the answer; unknown levels (`auto`) get medium's.
pub(crate) fn effort_budget(effort: &str) -> Option<u32> {
    match effort.to_ascii_lowercase().as_str() {
        "none" | "minimal" | "off" | "disabled" => None,
        "low" => Some(1024),
        "high" | "xhigh" | "max" => Some(24576),
        _ => Some(8192),
    }
}

/// The effort level closest to a thinking budget: the inverse of [`effort_budget`], with each level
/// covering the budgets up to the midpoint of the next.
pub(crate) fn budget_effort(budget: u32) -> &'static str {
    match budget {
        0..4096 => "low",
        4096..16384 => "medium",
        _ => "high",
    }
}

/// The effort an OpenAI-style upstream (chat `reasoning_effort`, Responses `reasoning.effort`) gets: the
/// client's own, with Anthropic's `max` as `high`, or the level closest to a budget (see [`budget_effort`]).
pub(crate) fn effort_of(r: &Reasoning) -> Option<&str> {
    match (&r.effort, r.budget_tokens) {
        (Some(e), _) if e == "max" => Some("high"),
        (Some(e), _) => Some(e),
        (None, Some(budget)) => Some(budget_effort(budget)),
        (None, None) => None,
    }
}

/// The `arguments` string of a tool call in the OpenAI APIs: the input as JSON text, or, for arguments an
/// upstream sent that were not JSON (kept as a string), that text as it was.
pub(crate) fn tool_arguments_text(input: &serde_json::Value) -> std::borrow::Cow<'_, str> {
    match input {
        serde_json::Value::String(raw) => std::borrow::Cow::Borrowed(raw),
        other => std::borrow::Cow::Owned(other.to_string()),
    }
}

/// Reads `cache_control` (`{"type":"ephemeral","ttl":"1h"}`) from a block or part.
pub(crate) fn read_cache_control(obj: &Obj<'_>, path: &Path<'_>) -> Result<Option<CacheControl>, Error> {
    let Some(cc) = obj.object("cache_control", path)? else {
        return Ok(None);
    };
    let path = path.key("cache_control");
    let kind = cc.require_string("type", &path)?.into_owned();
    let ttl = cc.string("ttl", &path)?.map(|s| s.into_owned());
    Ok(Some(CacheControl { kind, ttl }))
}

/// `cache_control` as written on the wire.
#[derive(Serialize)]
pub(crate) struct CacheControlOut<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<&'a str>,
}

impl<'a> CacheControlOut<'a> {
    pub(crate) fn from_ir(cc: &'a Option<CacheControl>) -> Option<Self> {
        cc.as_ref().map(|c| CacheControlOut { kind: &c.kind, ttl: c.ttl.as_deref() })
    }
}

/// Splits a `data:<media type>;base64,<data>` URL; anything else is an ordinary URL.
pub(crate) fn image_from_url(url: &str) -> ImageSource {
    if let Some(rest) = url.strip_prefix("data:")
        && let Some((meta, data)) = rest.split_once(',')
        && let Some(media_type) = meta.strip_suffix(";base64")
    {
        return ImageSource::Base64 { media_type: media_type.to_owned(), data: data.to_owned() };
    }
    ImageSource::Url { url: url.to_owned() }
}

/// The `data:` URL of an inline image.
pub(crate) fn data_url(media_type: &str, data: &str) -> String {
    format!("data:{media_type};base64,{data}")
}

/// An image as the OpenAI APIs take it: a URL, inline images as `data:` URLs.
pub(crate) fn image_url(source: &ImageSource) -> std::borrow::Cow<'_, str> {
    match source {
        ImageSource::Base64 { media_type, data } => std::borrow::Cow::Owned(data_url(media_type, data)),
        ImageSource::Url { url } => std::borrow::Cow::Borrowed(url),
    }
}

/// The tool-choice modes the OpenAI APIs write as strings.
pub(crate) fn tool_choice_mode(mode: &str) -> Option<ToolChoice> {
    match mode {
        "none" => Some(ToolChoice::None),
        "auto" => Some(ToolChoice::Auto),
        "required" => Some(ToolChoice::Required),
        _ => None,
    }
}

/// The arguments of a tool call in a client's request (OpenAI's JSON text, at `path`), which must be JSON;
/// empty text means no arguments.
pub(crate) fn client_tool_arguments(arguments: &str, path: &Path<'_>) -> Result<serde_json::Value, Error> {
    if arguments.trim().is_empty() {
        return Ok(serde_json::Value::Object(serde_json::Map::new()));
    }
    serde_json::from_str(arguments)
        .map_err(|e| path.invalid(format_args!("tool call arguments are not valid JSON ({e})")))
}

/// Seconds since the Unix epoch of `now`, for OpenAI's `created`. A clock before 1970 reads as 0.
pub(crate) fn unix_secs(now: std::time::SystemTime) -> u64 {
    now.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Serializes a value that cannot fail to serialize (borrowed structs of strings, numbers and `Value`s).
pub(crate) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("IR wire structs always serialize")
}

/// Like [`to_json`], as a `String` for SSE data.
pub(crate) fn to_json_string<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("IR wire structs always serialize")
}

/// An id in the form a dialect's clients expect (`chatcmpl-…`, `msg_…`, `resp_…`), derived from the upstream's id so
/// log lines of both sides can be matched up.
pub(crate) fn client_id<'a>(upstream: &'a str, prefix: &str) -> std::borrow::Cow<'a, str> {
    if upstream.starts_with(prefix) {
        std::borrow::Cow::Borrowed(upstream)
    } else if upstream.is_empty() {
        std::borrow::Cow::Owned(format!("{prefix}cliproxy"))
    } else {
        std::borrow::Cow::Owned(format!("{prefix}{upstream}"))
    }
}

/// An error an upstream reported, with its HTTP status where there was one. An empty message is replaced by
/// one that at least says where the error came from.
pub(crate) fn upstream_error(kind: ErrorKind, message: String, status: Option<u16>) -> Error {
    let message = match (message.is_empty(), status) {
        (false, _) => message,
        (true, Some(s)) => format!("the upstream answered HTTP {s} without an error message"),
        (true, None) => "the upstream reported an error without a message".to_owned(),
    };
    let err = Error::new(kind, message);
    match status {
        Some(s) => err.with_status(s),
        None => err,
    }
}

/// Trims an upstream's non-JSON error body to something fit for a message.
pub(crate) fn error_snippet(body: &[u8]) -> String {
    const MAX: usize = 500;
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effort_and_budget_tables() {
        assert_eq!(effort_budget("none"), None);
        assert_eq!(effort_budget("minimal"), None);
        assert_eq!(effort_budget("low"), Some(1024));
        assert_eq!(effort_budget("medium"), Some(8192));
        assert_eq!(effort_budget("high"), Some(24576));
        assert_eq!(effort_budget("HIGH"), Some(24576));
        assert_eq!(effort_budget("max"), Some(24576));
        assert_eq!(effort_budget("auto"), Some(8192));
        for effort in ["low", "medium", "high"] {
            assert_eq!(budget_effort(effort_budget(effort).unwrap()), effort);
        }
        assert_eq!(budget_effort(4095), "low");
        assert_eq!(budget_effort(16384), "high");
    }

    #[test]
    fn data_urls_split_into_base64_sources() {
        assert_eq!(
            image_from_url("data:image/png;base64,iVBOR"),
            ImageSource::Base64 { media_type: "image/png".into(), data: "iVBOR".into() }
        );
        assert_eq!(image_from_url("https://x/y.png"), ImageSource::Url { url: "https://x/y.png".into() });
        // A data URL that is not base64 cannot become a base64 source: it stays a URL.
        assert_eq!(image_from_url("data:text/plain,hi"), ImageSource::Url { url: "data:text/plain,hi".into() });
        assert_eq!(data_url("image/png", "iVBOR"), "data:image/png;base64,iVBOR");
    }

    #[test]
    fn client_ids_keep_or_gain_the_prefix() {
        assert_eq!(client_id("msg_1", "msg_"), "msg_1");
        assert_eq!(client_id("chatcmpl-1", "msg_"), "msg_chatcmpl-1");
        assert_eq!(client_id("", "chatcmpl-"), "chatcmpl-cliproxy");
    }

    #[test]
    fn upstream_errors_always_have_a_message() {
        let e = upstream_error(ErrorKind::Upstream, String::new(), Some(500));
        assert_eq!((e.message(), e.status()), ("the upstream answered HTTP 500 without an error message", Some(500)));
        let e = upstream_error(ErrorKind::RateLimited, String::new(), None);
        assert_eq!((e.message(), e.status()), ("the upstream reported an error without a message", None));
        assert_eq!(upstream_error(ErrorKind::Upstream, "x".into(), None).message(), "x");
    }

    #[test]
    fn error_snippets_are_bounded_on_char_boundaries() {
        assert_eq!(error_snippet(b"  bad request: x \n"), "bad request: x");
        let long = "é".repeat(400);
        let s = error_snippet(long.as_bytes());
        assert!(s.ends_with('…'));
        assert!(s.len() <= 503);
    }
}
