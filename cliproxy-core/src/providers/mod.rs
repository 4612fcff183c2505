//! Upstream wire formats, one module per upstream: building the HTTP request from the IR (or passthrough bytes)
//! and an access token, parsing answers and streams, and describing failures as facts ([`failure`]). Nothing here
//! does I/O, reads the clock, touches files or knows about routing, so every provider is testable with plain byte
//! fixtures. A wire value may *read* what its account learned (a model list, a profile ARN), which the account
//! lifecycle in `auth/<name>` keeps current.

pub mod claude;
pub mod copilot;
pub mod failure;
pub mod gemini;
pub mod kiro;
pub mod openai_compat;

use std::time::SystemTime;

use bytes::Bytes;

use crate::config::Secret;
use crate::dialects::{AnyStreamParser, Dialect};
use crate::error::{Error, Result};
use crate::stream::sse::{SseDecoder, SseEvent};
use crate::types::{ChatRequest, ChatResponse, StreamEvent};

use failure::Failure;

/// What the wire needs of a credential right now: the token to present and, for upstreams whose token tells
/// where to send requests (Copilot's `endpoints.api`), a base URL.
#[derive(Clone, Debug)]
pub struct Access {
    pub token: Secret,
    pub base_url: Option<String>,
}

/// Everything a provider needs to build one upstream call.
pub struct UpstreamCall<'a> {
    pub access: &'a Access,
    /// The credential's configured base URL, which wins over the token's and the provider's default.
    pub base_url: Option<&'a str>,
    /// The credential's configured extra headers.
    pub headers: &'a [(http::HeaderName, http::HeaderValue)],
    /// The outbound proxy for this credential.
    pub proxy_url: Option<&'a str>,
    /// The upstream model name (after alias and prefix resolution).
    pub model: &'a str,
    pub stream: bool,
    /// The client's request headers; providers forward the few that matter (e.g. `anthropic-beta`).
    pub client_headers: &'a http::HeaderMap,
}

/// Decodes an upstream response body, chunk by chunk, into IR stream events.
pub trait UpstreamStream: Send {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<StreamEvent>) -> Result<()>;
    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<()>;
}

pub trait Provider: Send + Sync + 'static {
    /// The provider part of credential ids and the key of `Client::usage`, e.g. `claude`.
    fn id(&self) -> &'static str;

    /// The client dialect the upstream speaks natively, if any. Requests in that dialect are passed through
    /// byte-for-byte (with targeted edits) instead of being re-encoded.
    fn dialect(&self) -> Option<Dialect>;

    /// Built-in model prefixes that select this credential (`claude/…`), besides its configured `prefix`.
    fn prefixes(&self) -> Vec<String>;

    /// Whether a credential with a configured `prefix` is only reachable through it.
    fn requires_prefix(&self) -> bool {
        false
    }

    /// For a credential without a `models` list: the upstream name serving `model`, if this provider serves it.
    fn resolve_model(&self, model: &str) -> Option<String>;

    /// Whether `resolve_model` accepts any name (a backend without a model list). Such credentials are used only
    /// when no credential serves the model explicitly.
    fn is_catch_all(&self) -> bool {
        false
    }

    /// Model names a credential without a `models` list offers in `/v1/models`.
    fn catalogue(&self) -> Vec<String>;

    /// IR → upstream request body (when not passing through).
    fn encode_request(&self, request: &ChatRequest) -> Result<Bytes> {
        let d =
            self.dialect().ok_or_else(|| Error::config(format!("provider {} has no request encoder", self.id())))?;
        Ok(d.encode_request(request).into())
    }

    /// Upstream JSON answer → IR.
    fn parse_response(&self, body: &[u8]) -> Result<ChatResponse> {
        let d =
            self.dialect().ok_or_else(|| Error::config(format!("provider {} has no response parser", self.id())))?;
        d.parse_response(body)
    }

    /// A decoder for the upstream's streaming body.
    fn stream_decoder(&self) -> Box<dyn UpstreamStream> {
        Box::new(SseUpstream::new(self.dialect().unwrap_or(Dialect::OpenAiChat).stream_parser()))
    }

    /// The HTTP request for one call: URL, auth and provider headers, body.
    fn build_http(&self, call: &UpstreamCall<'_>, body: Bytes) -> Result<http::Request<Bytes>>;

    /// A second host of the same upstream, tried once when the first could not be reached or answered 429 or
    /// 5xx (Kiro: `codewhisperer.{region}` after `q.{region}`). Default: none.
    fn fallback_http(&self, _call: &UpstreamCall<'_>, _body: Bytes) -> Option<Result<http::Request<Bytes>>> {
        None
    }

    /// [`Provider::stream_decoder`] for a translated request, for upstreams whose streams need the request
    /// (Kiro counts usage with the tokenizer when the stream carries none). Default: `stream_decoder`.
    fn stream_decoder_for(&self, _request: &ChatRequest) -> Box<dyn UpstreamStream> {
        self.stream_decoder()
    }

    /// [`Provider::parse_response`] for a translated request (see `stream_decoder_for`).
    fn parse_response_for(&self, _request: &ChatRequest, body: &[u8]) -> Result<ChatResponse> {
        self.parse_response(body)
    }

    /// The facts of an error answer: what the status, headers and body say about the request and the account.
    fn failure(&self, status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> Failure;

    /// The upstream's own token counter for Anthropic-shaped `count_tokens` bodies, where it has one.
    fn count_tokens_request(&self, _call: &UpstreamCall<'_>, _body: Bytes) -> Option<Result<http::Request<Bytes>>> {
        None
    }

    /// The successful answer of [`Provider::count_tokens_request`] as Anthropic's `{"input_tokens":N}`, or `None`
    /// when it cannot be read. Default: the answer as it came (the counter speaks Anthropic's shape).
    fn count_tokens_answer(&self, body: Bytes) -> Option<Bytes> {
        Some(body)
    }
}

/// Configured `headers:` of an entry as HTTP headers; `entry` names it in errors.
pub fn parse_headers(
    headers: &std::collections::BTreeMap<String, String>,
    entry: &str,
) -> Result<Vec<(http::HeaderName, http::HeaderValue)>> {
    headers
        .iter()
        .map(|(k, v)| {
            let name = http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| Error::config(format!("{entry}: invalid header name `{k}`")))?;
            let value = http::HeaderValue::from_str(v)
                .map_err(|_| Error::config(format!("{entry}: invalid value for header `{k}`")))?;
            Ok((name, value))
        })
        .collect()
}

/// SSE bytes → SSE events → IR events.
pub struct SseUpstream {
    sse: SseDecoder,
    events: Vec<SseEvent>,
    parser: AnyStreamParser,
}

impl SseUpstream {
    pub fn new(parser: AnyStreamParser) -> Self {
        SseUpstream { sse: SseDecoder::new(), events: Vec::new(), parser }
    }

    fn drain(&mut self, out: &mut Vec<StreamEvent>) -> Result<()> {
        for ev in self.events.drain(..) {
            self.parser.push(&ev, out)?;
        }
        Ok(())
    }
}

impl UpstreamStream for SseUpstream {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<StreamEvent>) -> Result<()> {
        self.sse.push(chunk, &mut self.events)?;
        self.drain(out)
    }
    fn finish(&mut self, out: &mut Vec<StreamEvent>) -> Result<()> {
        self.sse.finish(&mut self.events)?;
        self.drain(out)?;
        self.parser.finish(out)
    }
}

/// Joins a configured base URL and a path without doubling or dropping the slash.
pub fn join_url(base: &str, path: &str) -> String {
    let mut s = String::with_capacity(base.len() + path.len());
    s.push_str(base.trim_end_matches('/'));
    s.push_str(path);
    s
}

/// Starts a JSON POST with the credential's extra headers and outbound proxy applied.
pub fn post_json(call: &UpstreamCall<'_>, url: &str) -> http::request::Builder {
    let mut b = http::Request::post(url).header(http::header::CONTENT_TYPE, "application/json");
    b = b.header(http::header::ACCEPT, if call.stream { "text/event-stream" } else { "application/json" });
    if let Some(h) = b.headers_mut() {
        for (k, v) in call.headers {
            h.insert(k.clone(), v.clone());
        }
    }
    if let Some(p) = call.proxy_url {
        b = b.extension(crate::transport::UpstreamProxy(p.to_owned()));
    }
    b
}

/// Turns a builder error (a header value with a newline, say) into a config error that names no secret.
pub fn finish_request(b: http::request::Builder, body: Bytes, provider: &str) -> Result<http::Request<Bytes>> {
    b.body(body).map_err(|e| Error::config(format!("cannot build {provider} request: {e}")))
}
