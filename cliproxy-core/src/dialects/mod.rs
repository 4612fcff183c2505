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
//! Nothing here does I/O. [`Dialect`] dispatches to either module for callers that hold the dialect as data.

pub mod anthropic;
pub mod gemini;
pub(crate) mod json;
pub mod openai_chat;
#[cfg(test)]
mod testing;

use serde::Serialize;

use crate::error::{Error, ErrorKind};
use crate::stream::sse::SseEvent;
use crate::types::{CacheControl, ChatRequest, ChatResponse, ImageSource, StreamEvent};

use json::{Obj, Path};

/// A wire format clients speak and upstreams answer in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// OpenAI Chat Completions (`/v1/chat/completions`).
    OpenAiChat,
    /// Anthropic Messages (`/v1/messages`).
    Anthropic,
    /// Gemini `generateContent` (`/v1beta/models/{model}:generateContent`); the model is in the URL.
    Gemini,
}

impl Dialect {
    /// A stable name for logs and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::OpenAiChat => "openai-chat",
            Dialect::Anthropic => "anthropic",
            Dialect::Gemini => "gemini",
        }
    }

    pub fn parse_request(self, body: &[u8]) -> Result<ChatRequest, Error> {
        match self {
            Dialect::OpenAiChat => openai_chat::parse_request(body),
            Dialect::Anthropic => anthropic::parse_request(body),
            // The body lacks what routing needs: see `gemini::parse_request`.
            Dialect::Gemini => Err(gemini::model_not_in_body()),
        }
    }

    pub fn encode_request(self, req: &ChatRequest) -> Vec<u8> {
        match self {
            Dialect::OpenAiChat => openai_chat::encode_request(req),
            Dialect::Anthropic => anthropic::encode_request(req),
            Dialect::Gemini => gemini::encode_request(req),
        }
    }

    pub fn parse_response(self, body: &[u8]) -> Result<ChatResponse, Error> {
        match self {
            Dialect::OpenAiChat => openai_chat::parse_response(body),
            Dialect::Anthropic => anthropic::parse_response(body),
            Dialect::Gemini => gemini::parse_response(body),
        }
    }

    pub fn encode_response(self, resp: &ChatResponse, model: &str) -> Vec<u8> {
        match self {
            Dialect::OpenAiChat => openai_chat::encode_response(resp, model),
            Dialect::Anthropic => anthropic::encode_response(resp, model),
            Dialect::Gemini => gemini::encode_response(resp, model),
        }
    }

    pub fn parse_error(self, status: u16, body: &[u8]) -> Error {
        match self {
            Dialect::OpenAiChat => openai_chat::parse_error(status, body),
            Dialect::Anthropic => anthropic::parse_error(status, body),
            Dialect::Gemini => gemini::parse_error(status, body),
        }
    }

    pub fn error_event(self, err: &Error) -> OutEvent {
        match self {
            Dialect::OpenAiChat => openai_chat::error_event(err),
            Dialect::Anthropic => anthropic::error_event(err),
            Dialect::Gemini => gemini::error_event(err),
        }
    }

    pub fn stream_parser(self) -> AnyStreamParser {
        match self {
            Dialect::OpenAiChat => AnyStreamParser::OpenAiChat(openai_chat::StreamParser::new()),
            Dialect::Anthropic => AnyStreamParser::Anthropic(anthropic::StreamParser::new()),
            Dialect::Gemini => AnyStreamParser::Gemini(gemini::StreamParser::new()),
        }
    }

    /// An encoder for a client of this dialect. `include_usage` matters only to OpenAI clients.
    pub fn stream_encoder(self, model: &str, include_usage: bool) -> AnyStreamEncoder {
        match self {
            Dialect::OpenAiChat => AnyStreamEncoder::OpenAiChat(openai_chat::StreamEncoder::new(model, include_usage)),
            Dialect::Anthropic => AnyStreamEncoder::Anthropic(anthropic::StreamEncoder::new(model)),
            Dialect::Gemini => AnyStreamEncoder::Gemini(gemini::StreamEncoder::new(model)),
        }
    }
}

/// One outgoing SSE event in a client dialect: `event` is the SSE `event:` name (Anthropic) or `None`
/// (OpenAI); `data` is JSON text or `[DONE]`.
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

/// The stream parser of either dialect.
#[derive(Debug)]
pub enum AnyStreamParser {
    OpenAiChat(openai_chat::StreamParser),
    Anthropic(anthropic::StreamParser),
    Gemini(gemini::StreamParser),
}

impl AnyStreamParser {
    pub fn push(&mut self, ev: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), Error> {
        match self {
            AnyStreamParser::OpenAiChat(p) => p.push(ev, out),
            AnyStreamParser::Anthropic(p) => p.push(ev, out),
            AnyStreamParser::Gemini(p) => p.push(ev, out),
        }
    }

    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), Error> {
        match self {
            AnyStreamParser::OpenAiChat(p) => p.finish(out),
            AnyStreamParser::Anthropic(p) => p.finish(out),
            AnyStreamParser::Gemini(p) => p.finish(out),
        }
    }
}

/// The stream encoder of either dialect.
#[derive(Debug)]
pub enum AnyStreamEncoder {
    OpenAiChat(openai_chat::StreamEncoder),
    Anthropic(anthropic::StreamEncoder),
    Gemini(gemini::StreamEncoder),
}

impl AnyStreamEncoder {
    pub fn push(&mut self, ev: &StreamEvent, out: &mut Vec<OutEvent>) {
        match self {
            AnyStreamEncoder::OpenAiChat(e) => e.push(ev, out),
            AnyStreamEncoder::Anthropic(e) => e.push(ev, out),
            AnyStreamEncoder::Gemini(e) => e.push(ev, out),
        }
    }

    pub fn finish(&mut self, out: &mut Vec<OutEvent>) {
        match self {
            AnyStreamEncoder::OpenAiChat(e) => e.finish(out),
            AnyStreamEncoder::Anthropic(e) => e.finish(out),
            AnyStreamEncoder::Gemini(e) => e.finish(out),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Mapping rules both dialects share.

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

/// Seconds since the Unix epoch, for OpenAI's `created`. A clock before 1970 reads as 0.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Serializes a value that cannot fail to serialize (borrowed structs of strings, numbers and `Value`s).
pub(crate) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("IR wire structs always serialize")
}

/// Like [`to_json`], as a `String` for SSE data.
pub(crate) fn to_json_string<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("IR wire structs always serialize")
}

/// An id in the form a dialect's clients expect (`chatcmpl-…`, `msg_…`), derived from the upstream's id so
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
