//! Upstream providers. Each file maps between the IR and one upstream's wire format, purely: building the HTTP
//! request, parsing answers and streams, and classifying errors. I/O happens in `client`, through the
//! transport seam, so every provider is testable with plain byte fixtures.

pub mod claude;
pub mod copilot;
pub mod kiro;
pub mod openai_compat;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use futures::future::BoxFuture;

use crate::config::{ApiKeyEntry, Config};
use crate::credential::{Access, Credential, StaticKey};
use crate::dialects::{AnyStreamParser, Dialect};
use crate::error::{Error, Result};
use crate::login::LoginProvider;
use crate::routing::classify::ErrorClass;
use crate::stream::sse::{SseDecoder, SseEvent};
use crate::transport::{HttpTransport, Runtime};
use crate::types::{ChatRequest, ChatResponse, StreamEvent};

/// What providers may use to do I/O of their own (token exchanges, model lists) — never during mapping.
pub struct Ctx {
    pub transport: Arc<dyn HttpTransport>,
    pub runtime: Arc<dyn Runtime>,
    pub config: Arc<Config>,
}

/// Everything a provider needs to build one upstream call.
pub struct UpstreamCall<'a> {
    pub credential: &'a Credential,
    pub access: &'a Access,
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
    fn prefixes(&self, credential: &Credential) -> Vec<String>;

    /// Whether a credential with a configured `prefix` is only reachable through it.
    fn requires_prefix(&self) -> bool {
        false
    }

    /// For a credential without a `models` list: the upstream name serving `model`, if this provider serves it.
    fn resolve_model(&self, credential: &Credential, model: &str) -> Option<String>;

    /// Whether `resolve_model` accepts any name (an OpenAI-compatible backend without a model list). Such
    /// credentials are used only when no credential serves the model explicitly.
    fn is_catch_all(&self, _credential: &Credential) -> bool {
        false
    }

    /// Model names a credential without a `models` list offers in `/v1/models`.
    fn catalogue(&self, credential: &Credential) -> Vec<String>;

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

    /// What an error answer means for routing.
    fn classify_error(&self, status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> ErrorClass;

    /// The upstream's own token counter for Anthropic-shaped `count_tokens` bodies, where it has one.
    fn count_tokens_request(&self, _call: &UpstreamCall<'_>, _body: Bytes) -> Option<Result<http::Request<Bytes>>> {
        None
    }

    /// Within a priority group, credentials with the highest preference are used first (e.g. remaining
    /// quota). Default: all equal.
    fn preference(&self, _credential: &Credential) -> u8 {
        1
    }

    /// Sees the headers of every upstream answer (success or error) before it is used, for providers that learn
    /// the account's state from them (Copilot's quota snapshots). Default: nothing.
    fn observe_response(&self, _credential: &Credential, _headers: &http::HeaderMap, _now: SystemTime) {}

    /// The credential's quota as the provider last saw it (remaining requests, reset date), for `Client::usage`.
    fn quota(&self, _credential: &Credential) -> Option<serde_json::Value> {
        None
    }

    /// Fetches the upstream's model list for `catalogue`, for providers whose upstream lists models. The client
    /// calls it in the background at startup and then hourly.
    fn refresh_models<'a>(&'a self, _ctx: &'a Ctx, _credential: &'a Credential) -> BoxFuture<'a, ()> {
        Box::pin(futures::future::ready(()))
    }
}

/// Providers with an interactive login, by the name `login <provider>` takes.
type MakeLogin = fn() -> Box<dyn LoginProvider>;
pub const LOGIN_PROVIDERS: &[(&str, MakeLogin)] = &[("kiro", kiro::login::make), ("copilot", copilot::login_provider)];

/// Loaders of auth-dir files, by the file's `type`.
type AuthFileLoader = fn(&Arc<Ctx>, &Path, &serde_json::Value) -> Result<Arc<Credential>>;
pub const AUTH_FILE_LOADERS: &[(&str, AuthFileLoader)] =
    &[("kiro", kiro::load_auth_file), ("github-copilot", copilot::load_auth_file)];

/// Importers of other tools' credentials into the auth-dir, by the name `import <source>` takes. Each returns
/// the paths it wrote.
type Importer = fn(&Arc<Ctx>) -> Result<Vec<PathBuf>>;
pub const IMPORTERS: &[(&str, Importer)] = &[("kiro", kiro::import_ide), ("copilot", copilot::import)];

/// Startup discovery of credentials other tools keep (an IDE's session), used in place. Each logs what it found.
type Discoverer = fn(&Arc<Ctx>) -> Vec<Arc<Credential>>;
pub const DISCOVERERS: &[Discoverer] = &[kiro::discover_ide, copilot::discover];

/// The login implementation of `name`, if it has one.
pub fn login_provider(name: &str) -> Option<Box<dyn LoginProvider>> {
    LOGIN_PROVIDERS.iter().find(|(n, _)| *n == name).map(|(_, make)| make())
}

/// The importer named `name`, if any.
pub fn importer(name: &str) -> Option<Importer> {
    IMPORTERS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// Credentials from the auth-dir files whose `type` a provider owns; other files are left alone (the Go
/// original's other providers may share the directory).
fn load_auth_dir(ctx: &Arc<Ctx>) -> Vec<Arc<Credential>> {
    let dir = crate::auth::store::auth_dir(&ctx.config);
    let mut out = Vec::new();
    for (path, value) in crate::auth::store::read_auth_files(&dir) {
        let kind = value.get("type").and_then(|t| t.as_str()).unwrap_or_default();
        let Some((_, load)) = AUTH_FILE_LOADERS.iter().find(|(t, _)| *t == kind) else { continue };
        match load(ctx, &path, &value) {
            Ok(c) => {
                tracing::info!(credential = %c.id, file = %path.display(), "loaded account from auth-dir");
                out.push(c);
            }
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "skipping auth file"),
        }
    }
    out
}

/// Builds every credential the configuration describes. Each provider contributes its own loader.
pub fn load_credentials(ctx: &Arc<Ctx>) -> Result<Vec<Arc<Credential>>> {
    let config = &ctx.config;
    let mut out = Vec::new();
    let claude: Arc<dyn Provider> = Arc::new(claude::Claude);
    for (i, k) in config.claude_api_key.iter().enumerate() {
        out.push(Arc::new(Credential {
            id: format!("claude:key-{i}"),
            provider: claude.clone(),
            token: Arc::new(StaticKey(k.api_key.clone())),
            base_url: k.base_url.clone(),
            prefix: k.prefix.clone(),
            priority: k.priority,
            headers: parse_headers(&k.headers, &format!("claude-api-key[{i}]"))?,
            proxy_url: k.proxy_url.clone().or_else(|| config.proxy_url.clone()),
            models: k.models.clone(),
            excluded_models: k.excluded_models.clone(),
            rate_limit: k.rate_limit,
        }));
    }
    for (i, entry) in config.openai_compatibility.iter().enumerate() {
        let provider: Arc<dyn Provider> = Arc::new(openai_compat::OpenAiCompat::new(&entry.name));
        let headers = parse_headers(&entry.headers, &format!("openai-compatibility[{i}]"))?;
        // An entry without keys is a local backend that needs none (Ollama, vLLM): one keyless credential.
        let keys =
            if entry.api_key_entries.is_empty() { vec![ApiKeyEntry::default()] } else { entry.api_key_entries.clone() };
        for (j, key) in keys.into_iter().enumerate() {
            out.push(Arc::new(Credential {
                id: format!("openai-compat:{}-{j}", entry.name),
                provider: provider.clone(),
                token: Arc::new(StaticKey(key.api_key)),
                base_url: Some(entry.base_url.clone()),
                prefix: entry.prefix.clone(),
                priority: entry.priority,
                headers: headers.clone(),
                proxy_url: key.proxy_url.or_else(|| config.proxy_url.clone()),
                models: entry.models.clone(),
                excluded_models: entry.excluded_models.clone(),
                rate_limit: entry.rate_limit,
            }));
        }
    }
    out.extend(kiro::load_config_entries(ctx)?);
    out.extend(load_auth_dir(ctx));
    for discover in DISCOVERERS {
        for c in discover(ctx) {
            if !out.iter().any(|o| o.id == c.id) {
                out.push(c);
            }
        }
    }
    Ok(out)
}

/// Configured `headers:` of an entry as HTTP headers; `entry` names it in errors.
pub(crate) fn parse_headers(
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
        for (k, v) in &call.credential.headers {
            h.insert(k.clone(), v.clone());
        }
    }
    if let Some(p) = &call.credential.proxy_url {
        b = b.extension(crate::transport::UpstreamProxy(p.clone()));
    }
    b
}

/// Turns a builder error (a header value with a newline, say) into a config error that names no secret.
pub fn finish_request(b: http::request::Builder, body: Bytes, provider: &str) -> Result<http::Request<Bytes>> {
    b.body(body).map_err(|e| Error::config(format!("cannot build {provider} request: {e}")))
}
