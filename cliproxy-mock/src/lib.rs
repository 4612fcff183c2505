//! Mock upstream providers for cliproxy's tests and benchmarks.
//!
//! One server speaks each provider's wire format on its usual paths (module docs give the details):
//!
//! | provider | paths | module |
//! |---|---|---|
//! | OpenAI Chat Completions | `/v1/chat/completions`, `/v1/models` | [`openai`] |
//! | Anthropic Messages | `/v1/messages`, `/v1/messages/count_tokens`, `/api/oauth/profile` | [`anthropic`] |
//! | Claude OAuth | `GET /oauth/authorize`, `POST /v1/oauth/token` (and `/oauth/token`) | [`claude_oauth`] |
//! | Codex (ChatGPT) | `GET /oauth/authorize`, `POST /oauth/token` (client id `app_…`), `POST {codex base}/responses` | [`codex`] |
//! | GitHub Copilot | `/login/…`, `/user`, `/copilot_internal/…`, `/copilot/{chat/completions,responses,models}` | [`copilot`] |
//! | Kiro | `/kiro/{oidc,auth,q,cw}/{region}/…` | [`kiro`] |
//! | Gemini API keys | `/v1beta/models`, `/v1beta/models/{model}:{generateContent,streamGenerateContent,countTokens}` | [`gemini`] |
//! | Google OAuth | `GET /o/oauth2/v2/auth`, `POST /token`, `GET /oauth2/v2/userinfo` | [`google_oauth`] |
//! | Gemini Code Assist | `/v1internal:{loadCodeAssist,onboardUser,generateContent,streamGenerateContent,countTokens,retrieveUserQuota}`, `/v1internal/operations/{id}` | [`code_assist`] |
//!
//! The Codex base path is [`codex::DEFAULT_BASE`] (`/backend-api/codex`) unless [`Options::codex_base`] (the
//! binary's `--codex-base`) says otherwise.
//!
//! # Scripting answers
//! What the completion endpoints answer is chosen by a *directive* inside the conversation text
//! (`mock:{json}`, see [`directive()`] and [`Directive`]), so that they keep no per-test state and parallel
//! tests can share one server. Every provider reads it wherever its requests carry text (messages, system
//! prompts, instructions, tool results).
//!
//! All fields are optional; the last directive in the conversation wins; none gives the reply
//! "Hello from the mock.".
//! - `reply`, `thinking`: answer and reasoning text (reasoning also comes by default when the request enables
//!   it: Anthropic `thinking`, Gemini `includeThoughts`, Kiro's thinking mode).
//! - `tool_calls`: `[{"name", "arguments", "id"?}]`, ids `call_<n>` / `toolu_<n>` from 0.
//! - `finish`: finish / stop reason, in any dialect's spelling.
//! - `usage`: `{"input","output","cached","cache_creation"}`; otherwise input = request bytes / 4
//!   and output = characters of reply and arguments / 4 (at least 1 each).
//! - `split` (byte offsets, also inside UTF-8 sequences), `chunk` (bytes per piece), `delay_ms` (between
//!   events): pacing.
//! - `fault`, `per_key` (`{"<key>": fault}`): see [`Fault`]. A fault can answer an error (`kind`: `rate_limit`,
//!   `quota`, `invalid_key`, `overloaded`, `server_error`, rendered in each provider's shape; or a bare
//!   `status`, with `retry_after`, `headers`, `body`), hang (`hang_ms`), send an error inside a 200 stream
//!   (`stream_error_after`: N events) or cut the connection (`cut_after`: N events), and be limited to one
//!   `model` (or one Kiro `host`).
//!
//! # Accounts
//! The three OAuth servers (Claude, ChatGPT, Google) keep real grants ([`accounts`]): codes bound to a PKCE
//! challenge, rotating refresh tokens, access tokens that expire. Tests reach them through
//! [`MockServer::accounts`] or `/__mock/accounts/{claude,codex,google}` ([`control`]): mint an account and its
//! tokens, expire an access token, revoke an account, or script a fault for every API request one account
//! makes (say a 429 with Claude's 5-hour window rejected, Codex's `usage_limit_reached`, or a Gemini model's
//! daily quota) or for its token-endpoint grants (say a 429 with `retry-after` on refresh).
//!
//! # Keys
//! Credentials the mock did not issue are judged by their spelling. A key (or bearer token) is valid when it
//! starts with `sk-` and contains none of `bad`, `invalid`, `revoked`; Gemini keys start `AIza`, Google
//! tokens `ya29.`. Tokens containing `expired` get the provider's expired-token 401.
//!
//! # Observation
//! The server counts hits per key on the completion endpoints ([`MockServer::hits`]), requests per endpoint
//! and credential ([`MockServer::endpoint_hits`]), cancelled streams, and keeps the recent requests; all
//! readable through [`MockServer`] or the `/__mock/*` control endpoints.

pub mod accounts;
pub mod answer;
pub mod anthropic;
pub mod claude_oauth;
mod clock;
pub mod code_assist;
pub mod codex;
pub mod control;
pub mod copilot;
pub mod directive;
pub mod fault;
pub mod gemini;
pub mod google_oauth;
mod ids;
pub mod jwt;
pub mod keys;
pub mod kiro;
pub mod oauth;
pub mod openai;
pub mod responses;
pub mod state;
pub mod writer;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, RawQuery, Request, State as Shared};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tokio::net::TcpListener;

pub use accounts::{Accounts, IdP};
pub use directive::{Directive, MARKER};
pub use fault::{Fault, FaultKind};
pub use state::RecordedRequest;
use state::State;

/// The text of a directive for `v`: `mock:` followed by compact JSON. Put it anywhere in a
/// message (or system prompt) to script the mock's answer.
pub fn directive(v: &serde_json::Value) -> String {
    format!("{MARKER}{v}")
}

/// How a server is set up.
#[derive(Clone, Debug)]
pub struct Options {
    /// Where Codex's `/responses` is served: a path starting with `/`, without a trailing one.
    pub codex_base: String,
}

impl Default for Options {
    fn default() -> Options {
        Options { codex_base: codex::DEFAULT_BASE.to_owned() }
    }
}

/// A running mock server. Clones share the server; it runs on a task of the runtime that started
/// it and stops with that runtime.
#[derive(Clone, Debug)]
pub struct MockServer {
    addr: SocketAddr,
    state: Arc<State>,
    options: Arc<Options>,
}

impl MockServer {
    /// Starts a server on an ephemeral port of 127.0.0.1.
    pub async fn start() -> MockServer {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.expect("binding an ephemeral port on 127.0.0.1");
        MockServer::start_on(listener).await
    }

    /// Starts a server on a listener the caller bound.
    pub async fn start_on(listener: TcpListener) -> MockServer {
        MockServer::start_with(listener, Options::default()).await
    }

    /// Starts a server on a listener the caller bound, set up as `options` say.
    pub async fn start_with(listener: TcpListener, options: Options) -> MockServer {
        let addr = listener.local_addr().expect("a bound listener has a local address");
        let state = Arc::new(State::default());
        let app = router(Arc::clone(&state), &options);
        // No Nagle delay: pieces of a split body must leave as separate segments, and small
        // SSE frames must not wait for an ACK.
        let listener = listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "setting TCP_NODELAY");
            }
        });
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "mock server stopped");
            }
        });
        MockServer { addr, state, options: Arc::new(options) }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://HOST:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Base URL of the OpenAI-compatible API (chat at `{base}/chat/completions`).
    pub fn openai_base(&self) -> String {
        format!("{}/v1", self.url())
    }

    /// Base URL of the Anthropic API (messages at `{base}/v1/messages`).
    pub fn anthropic_base(&self) -> String {
        self.url()
    }

    /// Base URL of Codex's Responses endpoint (`{base}/responses`).
    pub fn codex_base(&self) -> String {
        format!("{}{}", self.url(), self.options.codex_base)
    }

    /// The identity provider's accounts, to mint, expire, revoke or script faults for.
    pub fn accounts(&self, idp: IdP) -> &Accounts {
        self.state.issuers.get(idp)
    }

    /// Requests that reached a completion endpoint (chat completions, messages, responses, generateContent,
    /// Kiro's generateAssistantResponse; and Copilot token exchanges) with this API key or bearer token,
    /// whatever the answer was.
    pub fn hits(&self, key: &str) -> u64 {
        self.state.hits(key)
    }

    /// Requests that reached a completion endpoint, with or without a key.
    pub fn total_hits(&self) -> u64 {
        self.state.total_hits()
    }

    /// Requests to one path (say `/v1/oauth/token`), any method and answer, control endpoints excluded.
    pub fn endpoint_hits(&self, path: &str) -> u64 {
        self.state.endpoint_hits(path, None)
    }

    /// Requests to one path carrying this credential (API key, bearer token or `?key=`).
    pub fn endpoint_hits_for(&self, path: &str, key: &str) -> u64 {
        self.state.endpoint_hits(path, Some(key))
    }

    /// Streaming answers dropped before they were complete (the client went away).
    pub fn cancelled(&self) -> u64 {
        self.state.cancelled()
    }

    /// The most recent requests (up to [`state::RECORDED_REQUESTS`]), oldest first, control
    /// endpoints excluded.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests()
    }

    /// Clears the counters and the recorded requests (accounts stay).
    pub fn reset(&self) {
        self.state.reset();
    }
}

/// Every route of the mock.
fn router(state: Arc<State>, options: &Options) -> Router {
    Router::new()
        .merge(openai::routes())
        .merge(anthropic::routes())
        .merge(kiro::routes())
        .merge(copilot::routes())
        .merge(codex::routes(&options.codex_base))
        .merge(gemini::routes())
        .merge(google_oauth::routes())
        .merge(code_assist::routes())
        .merge(control::routes())
        .route("/v1/models", get(models))
        .route("/models", get(models))
        .route("/oauth/authorize", get(oauth_authorize))
        .route("/oauth/token", post(oauth_token))
        .route("/v1/oauth/token", post(claude_token))
        .layer(middleware::from_fn_with_state(Arc::clone(&state), record))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Both providers serve `GET /v1/models`; Anthropic clients are told apart by their
/// `anthropic-version` header.
async fn models(Shared(state): Shared<Arc<State>>, headers: HeaderMap) -> Response {
    if headers.contains_key("anthropic-version") {
        anthropic::models(&state, &headers)
    } else {
        openai::models(&headers)
    }
}

/// `/oauth/authorize` is claude.ai's and auth.openai.com's path alike; the client id tells them apart.
async fn oauth_authorize(Shared(state): Shared<Arc<State>>, RawQuery(query): RawQuery) -> Response {
    let query = query.unwrap_or_default();
    let fields = oauth::form_fields(query.as_bytes());
    if codex::is_client(oauth::field(&fields, "client_id")) {
        codex::authorize(&state, query.as_bytes())
    } else {
        claude_oauth::authorize(&state, query.as_bytes())
    }
}

/// `/oauth/token` is the Claude console's (older clients) and auth.openai.com's path alike.
async fn oauth_token(Shared(state): Shared<Arc<State>>, body: Bytes) -> Response {
    if codex::is_client(oauth::field(&oauth::fields(&body), "client_id")) {
        codex::token(&state, &body).await
    } else {
        claude_oauth::token(&state, &body).await
    }
}

async fn claude_token(Shared(state): Shared<Arc<State>>, body: Bytes) -> Response {
    claude_oauth::token(&state, &body).await
}

/// Records and counts every request except the control endpoints' own.
async fn record(Shared(state): Shared<Arc<State>>, request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/__mock/") {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(error) => {
            let mut response = Response::new(Body::from(error.to_string()));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            return response;
        }
    };
    state.count_endpoint(parts.uri.path(), keys::credential(&parts.headers, parts.uri.query()));
    state.record(RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        body: body.clone(),
    });
    next.run(Request::from_parts(parts, Body::from(body))).await
}
