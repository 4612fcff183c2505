//! [`Client`]: the one object the server and both bindings wrap.
//!
//! A request goes: parse the top-level fields → client rate limit → candidates for the model → pick a
//! credential → build the upstream request (passthrough or translation) → send with a first-byte timeout →
//! on failure classify, cool down and fail over; on success translate the answer back. For streams, the first
//! upstream event is read before the reply is handed out, so a fault at the start still fails over; after that,
//! faults become an error item in the stream (never a retry, since the client already has bytes).

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};
use serde::Deserialize;

pub use crate::auth::CredentialState;
use crate::auth::{self, Ctx};
use crate::config::{Config, RateLimit};
use crate::dialects::{AnyStreamEncoder, Dialect, OutEvent, anthropic, gemini, openai_chat, responses};
use crate::error::{Error, ErrorKind, Result};
use crate::login::LoginFlow;
use crate::logtext::Clean;
use crate::passthrough::Peek;
use crate::providers::{UpstreamCall, UpstreamStream};
use crate::routing::classify::{ErrorClass, decide, transport_class};
use crate::routing::{CooldownInfo, Pick, Router, Target, wait_for};
use crate::stream::sse::{SseDecoder, SseEvent};
use crate::transport::{ByteStream, HttpTransport, Runtime, read_body, with_timeout};
use crate::types::{ChatRequest, StreamEvent, Usage};

/// Largest upstream JSON answer (or error body) we buffer.
const MAX_UPSTREAM_BODY: usize = 64 << 20;

/// One client request in a client dialect.
#[derive(Debug, Clone)]
pub struct ProxyRequest {
    pub dialect: Dialect,
    pub body: Bytes,
    /// Client headers; providers forward the few that matter (`anthropic-beta`, `anthropic-version`).
    pub headers: http::HeaderMap,
    /// The client key that authenticated the request, for per-key rate limits.
    pub client_key: Option<String>,
    /// What the URL says, for a dialect whose body names neither model nor streaming (Gemini); the other
    /// dialects read both from the body and ignore it.
    pub url: Option<UrlTarget>,
}

/// The model and the streaming choice a request's URL names (`/v1beta/models/{model}:streamGenerateContent`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlTarget {
    pub model: String,
    pub stream: bool,
}

impl ProxyRequest {
    pub fn new(dialect: Dialect, body: impl Into<Bytes>) -> Self {
        ProxyRequest { dialect, body: body.into(), headers: http::HeaderMap::new(), client_key: None, url: None }
    }
}

/// One outgoing event of a streamed reply, in the client's dialect. `data` is JSON text (or `[DONE]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event: Option<Cow<'static, str>>,
    pub data: String,
}

impl From<OutEvent> for Event {
    fn from(e: OutEvent) -> Self {
        Event { event: e.event.map(Cow::Borrowed), data: e.data }
    }
}

/// The answer to a request.
pub enum Reply {
    /// A complete JSON body in the client's dialect.
    Json {
        body: Bytes,
        credential: String,
    },
    Stream(EventStream),
}

/// A streamed answer. Dropping it cancels the upstream request. An `Err` item is a failure after the stream
/// started; it is the last item.
pub struct EventStream {
    inner: BoxStream<'static, Result<Event>>,
    credential: String,
}

impl EventStream {
    /// The id of the credential serving the stream.
    pub fn credential(&self) -> &str {
        &self.credential
    }
}

impl Stream for EventStream {
    type Item = Result<Event>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}

/// A model offered by `/v1/models`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    pub id: String,
    /// Provider ids serving it, e.g. `["claude"]`.
    pub providers: Vec<&'static str>,
}

/// A credential as shown in listings: never the secret.
#[derive(Debug, Clone)]
pub struct CredentialInfo {
    pub id: String,
    pub provider: &'static str,
    pub priority: i32,
    pub state: CredentialState,
    pub expires_at: Option<SystemTime>,
    /// The account's quota as last seen (remaining requests, windows, reset dates), where the upstream tells.
    pub quota: Option<serde_json::Value>,
}

/// Per-credential counters and, where the provider knows it, its quota.
#[derive(Debug, Clone, Default)]
pub struct UsageInfo {
    pub credential: String,
    pub provider: &'static str,
    pub requests: u64,
    pub failures: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub quota: Option<serde_json::Value>,
}

#[derive(Default, Clone, Copy)]
struct Counters {
    requests: u64,
    failures: u64,
    input_tokens: u64,
    output_tokens: u64,
}

struct Inner {
    ctx: Arc<Ctx>,
    router: Router,
    stats: Mutex<HashMap<String, Counters>>,
    /// Logins started through this client, by flow id (the HTTP login endpoints look them up).
    logins: Mutex<HashMap<String, LoginFlow>>,
}

/// The proxy engine. Cheap to clone; safe to share across threads.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// Builds a [`Client`] with a custom transport or runtime (tests, embedders without tokio).
pub struct ClientBuilder {
    config: Config,
    transport: Option<Arc<dyn HttpTransport>>,
    runtime: Option<Arc<dyn Runtime>>,
}

impl ClientBuilder {
    pub fn transport(mut self, transport: Arc<dyn HttpTransport>) -> Self {
        self.transport = Some(transport);
        self
    }

    pub fn runtime(mut self, runtime: Arc<dyn Runtime>) -> Self {
        self.runtime = Some(runtime);
        self
    }

    pub fn build(self) -> Result<Client> {
        #[cfg(feature = "reqwest")]
        let transport = match self.transport {
            Some(t) => t,
            None => Arc::new(crate::transport::ReqwestTransport::new(Duration::from_secs(
                self.config.timeouts.connect_seconds.max(1),
            ))),
        };
        #[cfg(not(feature = "reqwest"))]
        let transport = self
            .transport
            .ok_or_else(|| Error::config("no HTTP transport: enable the `reqwest` feature or pass one"))?;
        #[cfg(feature = "reqwest")]
        let runtime = match self.runtime {
            Some(r) => r,
            None => Arc::new(crate::transport::TokioRuntime::current()),
        };
        #[cfg(not(feature = "reqwest"))]
        let runtime =
            self.runtime.ok_or_else(|| Error::config("no runtime: enable the `reqwest` feature or pass one"))?;
        let config = Arc::new(self.config);
        let ctx = Arc::new(Ctx { transport, runtime, config: config.clone() });
        let credentials = auth::load_credentials(&ctx)?;
        let router = Router::new(credentials, config.routing.strategy, !config.disable_cooling);
        let client = Client {
            inner: Arc::new(Inner {
                ctx,
                router,
                stats: Mutex::new(HashMap::new()),
                logins: Mutex::new(HashMap::new()),
            }),
        };
        client.spawn_model_refresh();
        Ok(client)
    }
}

impl Client {
    pub fn builder(config: Config) -> ClientBuilder {
        ClientBuilder { config, transport: None, runtime: None }
    }

    /// A client on the current tokio runtime with the reqwest transport.
    #[cfg(feature = "reqwest")]
    pub fn new(config: Config) -> Result<Client> {
        Self::builder(config).build()
    }

    pub fn config(&self) -> &Config {
        &self.inner.ctx.config
    }

    pub fn ctx(&self) -> &Arc<Ctx> {
        &self.inner.ctx
    }

    pub fn router(&self) -> &Router {
        &self.inner.router
    }

    /// Keeps upstream model lists fresh (startup, then hourly) for as long as the client lives.
    fn spawn_model_refresh(&self) {
        const EVERY: Duration = Duration::from_secs(3600);
        let weak = Arc::downgrade(&self.inner);
        let runtime = self.inner.ctx.runtime.clone();
        runtime.spawn(
            async move {
                loop {
                    let Some(inner) = weak.upgrade() else { return };
                    for c in inner.router.credentials().iter() {
                        c.account.refresh_models(&inner.ctx, &*c.token).await;
                    }
                    let runtime = inner.ctx.runtime.clone();
                    drop(inner);
                    runtime.sleep(EVERY).await;
                }
            }
            .boxed(),
        );
    }

    /// An OpenAI Chat Completions request (JSON body).
    pub async fn chat(&self, body: impl Into<Bytes>) -> Result<Reply> {
        self.send(ProxyRequest::new(Dialect::OpenAiChat, body)).await
    }

    /// An Anthropic Messages request (JSON body).
    pub async fn messages(&self, body: impl Into<Bytes>) -> Result<Reply> {
        self.send(ProxyRequest::new(Dialect::Anthropic, body)).await
    }

    pub async fn send(&self, request: ProxyRequest) -> Result<Reply> {
        let peek = match &request.url {
            Some(url) if request.dialect == Dialect::Gemini => Peek::from_url(&request.body, &url.model, url.stream)?,
            _ => Peek::parse(&request.body, request.dialect)?,
        };
        let estimate = estimate_tokens(&request.body);
        let (client_key, client_limit) = self.client_limit(request.client_key.as_deref());
        let now = self.now();
        if let Some(key) = &client_key
            && let Err(wait) = self.inner.router.limiter.try_acquire(key, client_limit, estimate, now)
        {
            return Err(Error::new(
                ErrorKind::RateLimited,
                format!("this API key is over its rate limit; retry in {} s", wait.as_secs().max(1)),
            )
            .with_retry_after(wait)
            .with_code("client_rate_limited"));
        }
        let candidates = self.inner.router.candidates(&peek.model);
        if candidates.is_empty() {
            return Err(Error::model_not_found(&peek.model));
        }
        let prepared = Prepared { request, peek, ir: OnceLock::new(), estimate, client_key, client_limit };
        self.route(&prepared.peek.model, &candidates, &prepared).await
    }

    /// Tries `candidates` for `model` until one attempt succeeds: cooldowns, refresh-and-retry-once, failover to
    /// the next credential and waiting for a short cooldown are the same for every kind of upstream call.
    async fn route<A: Attempt>(&self, model: &str, candidates: &[Target], call: &A) -> Result<A::Output> {
        let config = &self.inner.ctx.config;
        let max_attempts = 1 + config.request_retry as usize;
        let max_wait = Duration::from_secs(config.max_retry_interval);
        let mut tried: Vec<String> = Vec::new();
        let mut refreshed: Vec<String> = Vec::new();
        let mut waited = Duration::ZERO;
        let mut attempts = 0;
        let mut last: Option<Error> = None;
        let mut force_refresh_for: Option<Target> = None;
        loop {
            let target = match force_refresh_for.take() {
                Some(t) => t,
                None => match self.inner.router.pick(model, candidates, &tried, self.now()) {
                    Pick::Use(t) => t,
                    Pick::Cooling { until } => {
                        let wait = wait_for(self.now(), until);
                        if last.is_none() && waited + wait <= max_wait {
                            self.inner.ctx.runtime.sleep(wait).await;
                            waited += wait;
                            continue;
                        }
                        return Err(last.unwrap_or_else(|| cooling_error(model, wait, until)));
                    }
                    Pick::Exhausted => return Err(last.unwrap_or_else(|| unusable_error(model))),
                },
            };
            if attempts == max_attempts {
                return Err(last.expect("an attempt was made"));
            }
            attempts += 1;
            let force = refreshed.contains(&target.credential.id);
            match call.run(self, &target, force).await {
                Ok(reply) => return Ok(reply),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Class(class)) => {
                    let id = target.credential.id.clone();
                    self.count(&id, |c| c.failures += 1);
                    let error = self.apply(&target, class.clone());
                    if class.refresh && !refreshed.contains(&id) {
                        refreshed.push(id);
                        force_refresh_for = Some(target);
                        last = Some(error);
                        continue;
                    }
                    if !class.retry_other {
                        return Err(error);
                    }
                    tried.push(id);
                    last = Some(error);
                }
            }
        }
    }

    /// Records what a failure means: cooldown, disabling, logs. Returns the client-facing error.
    fn apply(&self, target: &Target, class: ErrorClass) -> Error {
        let id = &target.credential.id;
        let router = &self.inner.router;
        if let Some(reason) = &class.disable {
            tracing::warn!(credential = %id, %reason, "credential disabled until reset");
            router.disable(id, reason.clone());
        }
        if let (Some(cd), true) = (class.cooldown, router.cooling_enabled()) {
            let len = router.cooldowns.set(id, &target.model, cd, class.error.message().to_owned(), self.now());
            tracing::info!(credential = %id, model = %Clean(&target.model), cooldown_secs = len.as_secs_f64(), error = %Clean(&class.error.to_string()), "credential cooling down");
        } else {
            tracing::info!(credential = %id, model = %Clean(&target.model), error = %Clean(&class.error.to_string()), "upstream attempt failed");
        }
        class.error.with_credential(id.clone()).with_model(target.model.clone())
    }

    async fn attempt(&self, req: &Prepared, target: &Target, force_refresh: bool) -> Result<Reply, Failure> {
        let ctx = &self.inner.ctx;
        let cred = &target.credential;
        let provider = &cred.provider;
        let access = cred.token.access(ctx, force_refresh).await.map_err(|e| {
            Failure::Class(ErrorClass { error: e, retry_other: true, cooldown: None, refresh: false, disable: None })
        })?;
        // `None`: same dialect on both sides, the body passes through; `Some`: the request as translated.
        let translated: Option<ChatRequest> = if provider.dialect() == Some(req.request.dialect) {
            None
        } else {
            let mut ir = req.ir()?.clone();
            ir.model = target.model.clone();
            Some(ir)
        };
        let body = match &translated {
            None => req.peek.rewrite(&req.request.body, &target.model, req.request.dialect),
            Some(ir) => provider.encode_request(ir).map_err(Failure::Fatal)?,
        };
        let call = UpstreamCall {
            access: &access,
            base_url: cred.base_url.as_deref(),
            headers: &cred.headers,
            proxy_url: cred.proxy_url.as_deref(),
            model: &target.model,
            stream: req.peek.stream,
            client_headers: &req.request.headers,
        };
        let fallback_body = body.clone();
        let http_req = provider.build_http(&call, body).map_err(Failure::Fatal)?;
        self.inner.router.limiter.try_acquire(&cred.id, cred.rate_limit, req.estimate, self.now()).ok();
        self.count(&cred.id, |c| c.requests += 1);
        tracing::debug!(credential = %cred.id, model = %Clean(&target.model), passthrough = translated.is_none(), "sending upstream request");

        let timeouts = &ctx.config.timeouts;
        let first_byte = Duration::from_secs(timeouts.first_byte_seconds.max(1));
        let idle = Duration::from_secs(timeouts.idle_seconds.max(1));
        let started = ctx.runtime.now();
        let send = |http_req| send_within(ctx, http_req, first_byte);
        let mut sent = send(http_req).await;
        let primary_failed = match &sent {
            Err(_) => true,
            Ok(r) => r.status.as_u16() == 429 || r.status.is_server_error(),
        };
        if primary_failed && let Some(fallback) = provider.fallback_http(&call, fallback_body) {
            let status = sent.as_ref().map(|r| r.status.as_u16()).ok();
            tracing::info!(credential = %cred.id, ?status, "primary upstream host failed; trying the fallback host");
            sent = send(fallback.map_err(Failure::Fatal)?).await;
        }
        let mut resp = sent.map_err(|e| Failure::Class(transport_class(e.into())))?;
        let status = resp.status.as_u16();
        cred.account.observe_response(&resp.headers, self.now());
        if status >= 400 {
            let body = read_body(&ctx.runtime, &mut resp.body, MAX_UPSTREAM_BODY, idle).await.unwrap_or_default();
            return Err(Failure::Class(self.classify(cred, status, &resp.headers, &body)));
        }
        let outcome = Outcome {
            client: self.clone(),
            credential: cred.id.clone(),
            model: target.model.clone(),
            req_estimate: req.estimate,
            client_key: req.client_key.clone(),
            client_limit: req.client_limit,
            credential_limit: cred.rate_limit,
        };
        if !req.peek.stream {
            let body = read_body(&ctx.runtime, &mut resp.body, MAX_UPSTREAM_BODY, idle)
                .await
                .map_err(|e| Failure::Class(transport_class(e)))?;
            let body = match &translated {
                None => {
                    let usage = json_usage(req.request.dialect, &body);
                    if usage.is_none() || std::str::from_utf8(&body).is_err() {
                        check_json_answer(status, &body).map_err(|e| Failure::Class(transport_class(e)))?;
                    }
                    outcome.settle(usage);
                    body
                }
                Some(ir) => {
                    let parsed =
                        provider.parse_response_for(ir, &body).map_err(|e| Failure::Class(transport_class(e)))?;
                    outcome.settle(Some(parsed.usage));
                    Bytes::from(req.request.dialect.encode_response(&parsed, &req.peek.model, self.now()))
                }
            };
            self.inner.router.cooldowns.clear_on_success(&cred.id, &target.model);
            return Ok(Reply::Json { body, credential: cred.id.clone() });
        }

        let mode = match &translated {
            None => Mode::Passthrough {
                dialect: req.request.dialect,
                strip_usage: req.request.dialect == Dialect::OpenAiChat && !req.peek.client_wants_usage(),
                sse: SseDecoder::new(),
                events: Vec::new(),
                finished: false,
            },
            Some(ir) => Mode::Translate {
                upstream: provider.stream_decoder_for(ir),
                events: Vec::new(),
                encoder: req.request.dialect.stream_encoder(&req.peek.model, req.peek.client_wants_usage(), self.now()),
                out: Vec::new(),
            },
        };
        let remaining = first_byte.saturating_sub(ctx.runtime.now().duration_since(started).unwrap_or_default());
        let mut state = StreamState {
            body: resp.body,
            mode,
            queue: VecDeque::new(),
            done: false,
            runtime: ctx.runtime.clone(),
            idle,
            usage: Usage::default(),
            outcome: Some(outcome),
        };
        // Read until the first event (or the end) before committing: a fault here still fails over.
        let first = with_timeout(&ctx.runtime, remaining.max(Duration::from_millis(1)), state.fill_first(), || {
            Err(Error::new(ErrorKind::Timeout, format!("no first event within {} s", first_byte.as_secs())))
        })
        .await;
        if let Err(e) = first {
            state.outcome = None;
            let class = match e.status() {
                Some(s) if e.kind() == ErrorKind::Upstream => {
                    self.classify(cred, s, &http::HeaderMap::new(), e.message().as_bytes())
                }
                _ => transport_class(e),
            };
            return Err(Failure::Class(class));
        }
        self.inner.router.cooldowns.clear_on_success(&cred.id, &target.model);
        let inner = futures::stream::unfold(state, |mut st| async move { st.next_item().await.map(|i| (i, st)) });
        Ok(Reply::Stream(EventStream { inner: inner.boxed(), credential: cred.id.clone() }))
    }

    /// An error answer's facts, as the wire reads them and the account completes them, decided by routing.
    fn classify(&self, cred: &auth::Credential, status: u16, headers: &http::HeaderMap, body: &[u8]) -> ErrorClass {
        let now = self.now();
        let mut facts = cred.provider.failure(status, headers, body, now);
        cred.account.observe_failure(&mut facts, now);
        decide(facts)
    }

    fn client_limit(&self, key: Option<&str>) -> (Option<String>, RateLimit) {
        let rl = &self.inner.ctx.config.rate_limit;
        let Some(key) = key else { return (None, RateLimit::default()) };
        let limit = rl.per_key.get(key).copied().unwrap_or(RateLimit { rpm: rl.rpm, tpm: rl.tpm });
        if limit.is_unlimited() { (None, limit) } else { (Some(format!("client:{key}")), limit) }
    }

    fn now(&self) -> SystemTime {
        self.inner.ctx.runtime.now()
    }

    fn count(&self, id: &str, f: impl FnOnce(&mut Counters)) {
        let mut stats = self.inner.stats.lock().unwrap_or_else(|p| p.into_inner());
        // Look up before inserting: the request path should not allocate a key for a credential it has seen.
        match stats.get_mut(id) {
            Some(c) => f(c),
            None => f(stats.entry(id.to_owned()).or_default()),
        }
    }

    /// The union of every credential's models, sorted by name.
    pub fn models(&self) -> Vec<ModelInfo> {
        let mut map: std::collections::BTreeMap<String, Vec<&'static str>> = Default::default();
        for c in self.inner.router.credentials().iter() {
            for m in c.listed_models() {
                let providers = map.entry(m).or_default();
                if !providers.contains(&c.provider.id()) {
                    providers.push(c.provider.id());
                }
            }
        }
        map.into_iter().map(|(id, providers)| ModelInfo { id, providers }).collect()
    }

    /// Whether some credential serves `model` (aliases and prefixes included).
    pub fn has_model(&self, model: &str) -> bool {
        !self.inner.router.candidates(model).is_empty()
    }

    pub fn credentials(&self) -> Vec<CredentialInfo> {
        self.inner
            .router
            .credentials()
            .iter()
            .map(|c| CredentialInfo {
                id: c.id.clone(),
                provider: c.provider.id(),
                priority: c.priority,
                state: match self.inner.router.disabled_reason(&c.id) {
                    Some(reason) => CredentialState::Disabled(reason),
                    None => c.token.state(),
                },
                expires_at: c.token.expires_at(),
                quota: c.account.quota(),
            })
            .collect()
    }

    /// Adds an account from a pasted token (`account_type` names it, e.g. `kiro` for a social refresh token).
    /// The token is validated with the upstream and stored in the auth-dir first. Returns the new credential id.
    pub async fn add_account(&self, account_type: &str, token: &str) -> Result<String> {
        let add = auth::account_type(account_type)
            .and_then(|t| t.add_token)
            .ok_or_else(|| auth::unsupported("pasted-token login", account_type, |t| t.add_token.is_some()))?;
        let cred = add(self.inner.ctx.clone(), token.to_owned()).await?;
        let id = cred.id.clone();
        self.inner.router.upsert(cred);
        Ok(id)
    }

    /// Obtains new access tokens now for the accounts matching the filters (`provider`, e.g. `kiro`; one credential
    /// id; both `None`: every account). Returns the ids refreshed and those that failed, with why.
    pub async fn refresh_accounts(
        &self,
        provider: Option<&str>,
        id: Option<&str>,
    ) -> (Vec<String>, Vec<(String, Error)>) {
        let creds: Vec<_> = self
            .inner
            .router
            .credentials()
            .iter()
            .filter(|c| provider.is_none_or(|p| c.provider.id() == p) && id.is_none_or(|i| c.id == i))
            .cloned()
            .collect();
        let (mut ok, mut failed) = (Vec::new(), Vec::new());
        for c in creds {
            match c.token.refresh(&self.inner.ctx).await {
                Ok(()) => ok.push(c.id.clone()),
                Err(e) => failed.push((c.id.clone(), e)),
            }
        }
        (ok, failed)
    }

    /// Removes an account from the pool and deletes its auth-dir file, where it has one. Accounts that live in
    /// config.yaml or in another tool's files are only taken out of the pool until the next reload.
    pub fn remove_account(&self, id: &str) -> Result<()> {
        let all = self.inner.router.credentials();
        let cred = all.iter().find(|c| c.id == id).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidRequest,
                format!("no account `{id}`: list them with GET /v0/management/credentials"),
            )
            .with_http_status(404)
        })?;
        if let Some(path) = &cred.file {
            std::fs::remove_file(path)
                .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
                .map_err(|e| Error::config(format!("cannot delete {}: {e}", path.display())).with_source(e))?;
        }
        self.inner.router.set_credentials(all.iter().filter(|c| c.id != id).cloned().collect());
        tracing::info!(credential = %id, "account removed");
        Ok(())
    }

    /// Active cooldowns, soonest first.
    pub fn cooldowns(&self) -> Vec<CooldownInfo> {
        self.inner.router.cooldowns.list(self.now())
    }

    /// Clears cooldowns for one credential, one model, or everything; a whole-credential or full reset also
    /// re-enables disabled credentials. Returns how many entries were cleared.
    pub fn reset_cooldowns(&self, credential: Option<&str>, model: Option<&str>) -> usize {
        let n = self.inner.router.reset(credential, model);
        tracing::info!(
            credential = credential.unwrap_or("*"),
            model = model.unwrap_or("*"),
            cleared = n,
            "cooldowns reset"
        );
        n
    }

    pub fn usage(&self) -> Vec<UsageInfo> {
        let stats = self.inner.stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.inner
            .router
            .credentials()
            .iter()
            .map(|c| {
                let s = stats.get(&c.id).copied().unwrap_or_default();
                UsageInfo {
                    credential: c.id.clone(),
                    provider: c.provider.id(),
                    requests: s.requests,
                    failures: s.failures,
                    input_tokens: s.input_tokens,
                    output_tokens: s.output_tokens,
                    quota: c.account.quota(),
                }
            })
            .collect()
    }

    /// Starts an interactive login with `provider` (`options` are provider-specific). The returned flow carries
    /// the verification URL and user code; on success the new credential joins the pool at once.
    pub async fn login(&self, provider: &str, options: serde_json::Value) -> Result<LoginFlow> {
        let make = auth::account_type(provider)
            .and_then(|t| t.login)
            .ok_or_else(|| auth::unsupported("interactive login", provider, |t| t.login.is_some()))?;
        let device = make().start(self.inner.ctx.clone(), options).await?;
        let id = flow_id(provider, self.now());
        let inner = self.inner.clone();
        let flow = LoginFlow::spawn(id.clone(), provider.to_owned(), device, &self.inner.ctx, move |cred| {
            inner.router.upsert(cred);
        });
        self.inner.logins.lock().unwrap_or_else(|p| p.into_inner()).insert(id, flow.clone());
        Ok(flow)
    }

    /// Copies another tool's credentials (`source`, e.g. an IDE session) into the auth-dir as independent
    /// accounts and adds them to the pool. Returns the written files.
    pub fn import(&self, source: &str) -> Result<Vec<std::path::PathBuf>> {
        let import = auth::account_type(source)
            .and_then(|t| t.import)
            .ok_or_else(|| auth::unsupported("importer", source, |t| t.import.is_some()))?;
        let written = import(&self.inner.ctx)?;
        self.reload()?;
        Ok(written)
    }

    /// Re-reads configured and auth-dir credentials (after an import or a file change). Cooldowns of
    /// credentials that still exist are kept.
    pub fn reload(&self) -> Result<()> {
        let creds = auth::load_credentials(&self.inner.ctx)?;
        self.inner.router.set_credentials(creds);
        Ok(())
    }

    /// A login started earlier through this client.
    pub fn login_flow(&self, id: &str) -> Option<LoginFlow> {
        self.inner.logins.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    /// For a provider whose login is an authorization-code flow: the local port its redirect URI names for
    /// `options`, which a surface that can listen for the browser's return binds before calling
    /// [`Client::login`] (passing the port it really bound as `callback_port`). `None` for device logins.
    pub fn login_callback_port(&self, provider: &str, options: &serde_json::Value) -> Option<u16> {
        auth::account_type(provider).and_then(|t| t.login).and_then(|make| make().callback_port(options))
    }

    /// Hands a running authorization-code login the code the browser came back with (`code#state`, the
    /// callback URL or its query); see [`LoginFlow::complete`].
    pub fn complete_login(&self, id: &str, code: &str) -> Result<()> {
        let flow = self.login_flow(id).ok_or_else(|| {
            Error::invalid_request(format!("no login flow `{id}`")).with_code("not_found").with_http_status(404)
        })?;
        flow.complete(code)
    }

    /// Anthropic `count_tokens`: the upstream's own count where the serving provider has one, otherwise an
    /// estimate with the o200k tokenizer over the request's text (documented as an estimate).
    pub async fn count_tokens(&self, body: Bytes, headers: http::HeaderMap) -> Result<Bytes> {
        let model = Peek::count_tokens_model(&body)?;
        let value: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| Error::invalid_request(format!("request body is not valid JSON: {e}")))?;
        if value.get("messages").is_none_or(|m| !m.is_array()) {
            return Err(Error::invalid_request("messages: expected an array"));
        }
        let candidates = self.inner.router.candidates(&model);
        if candidates.is_empty() {
            return Err(Error::model_not_found(&model));
        }
        let counted = self.route(&model, &candidates, &CountTokens { value: &value, headers: &headers }).await;
        match counted {
            Ok(Some(body)) => return Ok(body),
            Ok(None) => {}
            // The upstream judged the request itself: that answer is the client's to see.
            Err(e) if e.kind() == ErrorKind::InvalidRequest => return Err(e),
            Err(e) => tracing::debug!(error = %e, "no upstream could count tokens; estimating"),
        }
        // `count_tokens` bodies carry no `max_tokens`; the Messages parser requires one.
        let mut with_max = value;
        if with_max.get("max_tokens").is_none() {
            with_max["max_tokens"] = 1.into();
        }
        let ir = anthropic::parse_request(&serde_json::to_vec(&with_max).expect("json values serialize"))?;
        let n = crate::tokens::count_request(&ir);
        Ok(Bytes::from(format!("{{\"input_tokens\":{n}}}")))
    }

    /// Gemini `countTokens` for `model` (from the URL): the body (`{"contents":…}` or
    /// `{"generateContentRequest":…}`) is counted as [`Client::count_tokens`] counts its Messages equivalent,
    /// and answered as `{"totalTokens":N}`.
    pub async fn count_gemini_tokens(&self, model: &str, body: Bytes, headers: http::HeaderMap) -> Result<Bytes> {
        let ir = gemini::parse_count_request(&body, model)?;
        // Only what the count depends on: `count_tokens` endpoints reject generation settings.
        let counted = ChatRequest {
            model: ir.model,
            system: ir.system,
            messages: ir.messages,
            tools: ir.tools,
            ..ChatRequest::default()
        };
        let mut messages: serde_json::Value =
            serde_json::from_slice(&anthropic::encode_request(&counted)).expect("encoded requests are JSON");
        if let Some(o) = messages.as_object_mut() {
            o.remove("max_tokens");
        }
        let answer = self.count_tokens(Bytes::from(messages.to_string()), headers).await?;
        #[derive(Deserialize)]
        struct Counted {
            input_tokens: u64,
        }
        let n = serde_json::from_slice::<Counted>(&answer)
            .map_err(|e| Error::upstream(None, format!("the upstream sent an unreadable token count: {e}")))?
            .input_tokens;
        Ok(Bytes::from(gemini::encode_count_response(n)))
    }
}

impl Client {
    /// One upstream `count_tokens` call: `Ok(None)` when the provider has no counter of its own (the caller
    /// estimates), the upstream's answer on success, and failures classified like any other upstream call.
    async fn count_attempt(
        &self,
        value: &serde_json::Value,
        headers: &http::HeaderMap,
        target: &Target,
        force_refresh: bool,
    ) -> Result<Option<Bytes>, Failure> {
        let ctx = &self.inner.ctx;
        let cred = &target.credential;
        let access = cred.token.access(ctx, force_refresh).await.map_err(|e| {
            Failure::Class(ErrorClass { error: e, retry_other: true, cooldown: None, refresh: false, disable: None })
        })?;
        let call = UpstreamCall {
            base_url: cred.base_url.as_deref(),
            headers: &cred.headers,
            proxy_url: cred.proxy_url.as_deref(),
            access: &access,
            model: &target.model,
            stream: false,
            client_headers: headers,
        };
        let mut v = value.clone();
        v["model"] = target.model.clone().into();
        let body = Bytes::from(serde_json::to_vec(&v).expect("json values serialize"));
        let Some(http_req) = cred.provider.count_tokens_request(&call, body) else { return Ok(None) };
        let http_req = http_req.map_err(Failure::Fatal)?;
        let timeouts = &ctx.config.timeouts;
        let first_byte = Duration::from_secs(timeouts.first_byte_seconds.max(1));
        let idle = Duration::from_secs(timeouts.idle_seconds.max(1));
        let mut resp =
            send_within(ctx, http_req, first_byte).await.map_err(|e| Failure::Class(transport_class(e.into())))?;
        let status = resp.status.as_u16();
        cred.account.observe_response(&resp.headers, self.now());
        let body = read_body(&ctx.runtime, &mut resp.body, MAX_UPSTREAM_BODY, idle)
            .await
            .map_err(|e| Failure::Class(transport_class(e)))?;
        if status >= 400 {
            return Err(Failure::Class(self.classify(cred, status, &resp.headers, &body)));
        }
        self.inner.router.cooldowns.clear_on_success(&cred.id, &target.model);
        Ok(cred.provider.count_tokens_answer(body))
    }
}

/// One kind of upstream call that [`Client::route`] can try on a credential: a proxied request, or a
/// `count_tokens` call.
trait Attempt: Sync {
    type Output: Send;
    fn run<'a>(
        &'a self,
        client: &'a Client,
        target: &'a Target,
        force_refresh: bool,
    ) -> BoxFuture<'a, Result<Self::Output, Failure>>;
}

impl Attempt for Prepared {
    type Output = Reply;
    fn run<'a>(&'a self, client: &'a Client, target: &'a Target, force: bool) -> BoxFuture<'a, Result<Reply, Failure>> {
        client.attempt(self, target, force).boxed()
    }
}

/// An Anthropic-shaped `count_tokens` request.
struct CountTokens<'r> {
    value: &'r serde_json::Value,
    headers: &'r http::HeaderMap,
}

impl Attempt for CountTokens<'_> {
    type Output = Option<Bytes>;
    fn run<'a>(
        &'a self,
        client: &'a Client,
        target: &'a Target,
        force: bool,
    ) -> BoxFuture<'a, Result<Option<Bytes>, Failure>> {
        client.count_attempt(self.value, self.headers, target, force).boxed()
    }
}

/// Sends one upstream request; no answer head within `first_byte` is a timeout.
async fn send_within(
    ctx: &Ctx,
    req: http::Request<Bytes>,
    first_byte: Duration,
) -> std::result::Result<crate::transport::TransportResponse, crate::transport::TransportError> {
    with_timeout(&ctx.runtime, first_byte, ctx.transport.send(req), move || {
        Err(crate::transport::TransportError::new(
            crate::transport::TransportErrorKind::Timeout,
            format!("no answer within {} s (timeouts.first-byte-seconds)", first_byte.as_secs()),
        ))
    })
    .await
}

/// The request as routing sees it: the raw body, its peeked fields and (only if a translation needs it) the
/// parsed IR, shared across attempts.
struct Prepared {
    request: ProxyRequest,
    peek: Peek,
    ir: OnceLock<Result<ChatRequest>>,
    estimate: u64,
    client_key: Option<String>,
    client_limit: RateLimit,
}

impl Prepared {
    fn ir(&self) -> Result<&ChatRequest, Failure> {
        let parsed = self.ir.get_or_init(|| match self.request.dialect {
            Dialect::Gemini => gemini::parse_request(&self.request.body, &self.peek.model, self.peek.stream),
            dialect => dialect.parse_request(&self.request.body),
        });
        parsed.as_ref().map_err(|e| Failure::Fatal(e.clone()))
    }
}

enum Failure {
    /// The request itself is wrong (or cannot be built): no other credential will do better.
    Fatal(Error),
    Class(ErrorClass),
}

/// Everything needed to account for a finished request (stats, token buckets).
struct Outcome {
    client: Client,
    credential: String,
    model: String,
    req_estimate: u64,
    client_key: Option<String>,
    client_limit: RateLimit,
    credential_limit: RateLimit,
}

impl Outcome {
    fn settle(&self, usage: Option<Usage>) {
        let Some(u) = usage else { return };
        let now = self.client.now();
        let total = u.input_tokens + u.output_tokens + u.cache_read_tokens + u.cache_creation_tokens;
        let limiter = &self.client.inner.router.limiter;
        limiter.settle(&self.credential, self.credential_limit, self.req_estimate, total, now);
        if let Some(key) = &self.client_key {
            limiter.settle(key, self.client_limit, self.req_estimate, total, now);
        }
        self.client.count(&self.credential, |c| {
            c.input_tokens += u.input_tokens + u.cache_read_tokens + u.cache_creation_tokens;
            c.output_tokens += u.output_tokens;
        });
        tracing::debug!(credential = %self.credential, model = %Clean(&self.model), input = u.input_tokens, output = u.output_tokens, "request settled");
    }
}

enum Mode {
    /// Same dialect: upstream events are forwarded as they are (the added usage chunk is removed again).
    Passthrough {
        dialect: Dialect,
        strip_usage: bool,
        sse: SseDecoder,
        events: Vec<SseEvent>,
        /// The upstream sent its terminal event: a clean close before it means the answer was cut short.
        finished: bool,
    },
    Translate {
        upstream: Box<dyn UpstreamStream>,
        events: Vec<StreamEvent>,
        encoder: AnyStreamEncoder,
        out: Vec<OutEvent>,
    },
}

struct StreamState {
    body: ByteStream,
    mode: Mode,
    queue: VecDeque<Event>,
    done: bool,
    runtime: Arc<dyn Runtime>,
    idle: Duration,
    usage: Usage,
    /// Taken when the stream completes, so accounting happens exactly once.
    outcome: Option<Outcome>,
}

impl StreamState {
    /// Reads until at least one event is queued or the upstream ended.
    async fn fill_first(&mut self) -> Result<()> {
        while self.queue.is_empty() && !self.done {
            self.read_chunk().await?;
        }
        Ok(())
    }

    async fn next_item(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Some(Ok(ev));
            }
            if self.done {
                return None;
            }
            if let Err(e) = self.read_chunk().await {
                self.done = true;
                self.outcome = None;
                return Some(Err(e));
            }
        }
    }

    async fn read_chunk(&mut self) -> Result<()> {
        let next = with_timeout(&self.runtime, self.idle, self.body.next(), || {
            Some(Err(crate::transport::TransportError::new(
                crate::transport::TransportErrorKind::Timeout,
                "upstream went silent (timeouts.idle-seconds)",
            )))
        })
        .await;
        match next {
            Some(Ok(chunk)) => self.process(Some(&chunk)),
            Some(Err(e)) => Err(e.into()),
            None => {
                self.process(None)?;
                self.done = true;
                if let Some(o) = self.outcome.take() {
                    o.settle(Some(std::mem::take(&mut self.usage)));
                }
                Ok(())
            }
        }
    }

    /// Feeds one chunk (`None`: end of body) through the decoders into the queue.
    fn process(&mut self, chunk: Option<&[u8]>) -> Result<()> {
        match &mut self.mode {
            Mode::Passthrough { dialect, strip_usage, sse, events, finished } => {
                match chunk {
                    Some(c) => sse.push(c, events)?,
                    None => sse.finish(events)?,
                }
                for ev in events.drain(..) {
                    if !looks_like_json_event(&ev.data) {
                        return Err(Error::upstream(None, "the upstream sent a stream event that is not JSON"));
                    }
                    *finished |= ends_stream(*dialect, &ev);
                    let keep = passthrough_event(*dialect, &ev, &mut self.usage, *strip_usage)?;
                    if keep {
                        let name = ev.event.map(Cow::Owned);
                        self.queue.push_back(Event { event: name, data: ev.data });
                    }
                }
                if chunk.is_none() && !*finished {
                    return Err(Error::upstream(None, "the upstream closed the stream before it finished the answer"));
                }
            }
            Mode::Translate { upstream, events, encoder, out } => {
                match chunk {
                    Some(c) => upstream.push(c, events)?,
                    None => upstream.finish(events)?,
                }
                for ev in events.drain(..) {
                    match &ev {
                        StreamEvent::Start { usage, .. } => merge_usage(&mut self.usage, usage),
                        StreamEvent::Finish { usage, .. } => merge_usage(&mut self.usage, usage),
                        _ => {}
                    }
                    encoder.push(&ev, out);
                }
                if chunk.is_none() {
                    encoder.finish(out);
                }
                self.queue.extend(out.drain(..).map(Event::from));
            }
        }
        Ok(())
    }
}

/// Whether a passthrough event is the upstream's last word: OpenAI's `[DONE]` or a chunk with a finish reason,
/// Anthropic's `message_stop`, a terminal Responses event, a Gemini chunk with a finish reason.
fn ends_stream(dialect: Dialect, ev: &SseEvent) -> bool {
    match dialect {
        Dialect::OpenAiChat => ev.data.trim() == "[DONE]" || has_string_field(&ev.data, "\"finish_reason\""),
        Dialect::Anthropic => matches!(ev.event.as_deref(), Some("message_stop")),
        Dialect::Responses => {
            matches!(ev.event.as_deref(), Some("response.completed" | "response.incomplete" | "response.failed"))
        }
        Dialect::Gemini => has_string_field(&ev.data, "\"finishReason\""),
    }
}

/// Whether `data` has the (quoted) `key` with a string value, without parsing it (`null` does not count).
fn has_string_field(data: &str, key: &str) -> bool {
    memchr::memmem::find(data.as_bytes(), key.as_bytes()).is_some_and(|i| {
        let rest = data[i + key.len()..].trim_start().strip_prefix(':').unwrap_or_default();
        rest.trim_start().starts_with('"')
    })
}

/// Every event of the passthrough dialects carries one JSON object (or OpenAI's `[DONE]`). A cheap shape check,
/// not a parse: it catches an upstream that cut an event short or sent text, without parsing every chunk.
fn looks_like_json_event(data: &str) -> bool {
    let d = data.trim();
    d == "[DONE]" || (d.starts_with('{') && d.ends_with('}'))
}

/// A same-dialect JSON answer must be JSON in UTF-8 before it is passed on: an HTML error page, an empty body or
/// broken bytes from the upstream become an upstream error in the client's dialect, not a 200.
fn check_json_answer(status: u16, body: &[u8]) -> Result<()> {
    if std::str::from_utf8(body).is_err() {
        return Err(Error::upstream(Some(status), "the upstream's answer is not valid UTF-8"));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map(|_| ())
        .map_err(|e| Error::upstream(Some(status), format!("the upstream's answer is not JSON ({e})")))
}

fn merge_usage(acc: &mut Usage, u: &Usage) {
    let max = |a: &mut u64, b: u64| *a = (*a).max(b);
    max(&mut acc.input_tokens, u.input_tokens);
    max(&mut acc.output_tokens, u.output_tokens);
    max(&mut acc.cache_read_tokens, u.cache_read_tokens);
    max(&mut acc.cache_creation_tokens, u.cache_creation_tokens);
    max(&mut acc.reasoning_tokens, u.reasoning_tokens);
}

#[derive(Deserialize)]
struct OpenAiUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

#[derive(Deserialize)]
struct OpenAiUsageChunk {
    choices: Option<Vec<serde::de::IgnoredAny>>,
    usage: Option<OpenAiUsage>,
}

#[derive(Deserialize, Default)]
struct AnthropicUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    cache_read_input_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: u64,
}

#[derive(Deserialize)]
struct AnthropicUsageEvent {
    message: Option<AnthropicUsageHolder>,
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct AnthropicUsageHolder {
    usage: Option<AnthropicUsage>,
}

/// Looks at a passthrough event only as far as needed: usage for accounting, an error frame (which before the
/// first byte must fail over), and the usage chunk the client did not ask for. Returns whether to forward it.
fn passthrough_event(dialect: Dialect, ev: &SseEvent, usage: &mut Usage, strip_usage: bool) -> Result<bool> {
    match dialect {
        Dialect::OpenAiChat => {
            let data = ev.data.trim_start();
            if data.starts_with("{\"error\"") {
                return Err(openai_chat::parse_stream_error(data.as_bytes()));
            }
            if data.contains("\"usage\":{")
                && let Ok(chunk) = serde_json::from_str::<OpenAiUsageChunk>(data)
                && let Some(u) = chunk.usage
            {
                usage.input_tokens = u.prompt_tokens;
                usage.output_tokens = u.completion_tokens;
                let usage_only = chunk.choices.is_none_or(|c| c.is_empty());
                return Ok(!(strip_usage && usage_only));
            }
            Ok(true)
        }
        Dialect::Anthropic => {
            match ev.event.as_deref() {
                Some("error") => return Err(anthropic::parse_stream_error(ev.data.as_bytes())),
                Some("message_start") | Some("message_delta") => {
                    if let Ok(e) = serde_json::from_str::<AnthropicUsageEvent>(&ev.data)
                        && let Some(u) = e.usage.or(e.message.and_then(|m| m.usage))
                    {
                        let seen = Usage {
                            input_tokens: u.input_tokens,
                            output_tokens: u.output_tokens,
                            cache_read_tokens: u.cache_read_input_tokens,
                            cache_creation_tokens: u.cache_creation_input_tokens,
                            ..Default::default()
                        };
                        merge_usage(usage, &seen);
                    }
                }
                _ => {}
            }
            Ok(true)
        }
        Dialect::Gemini => {
            let data = ev.data.trim_start().as_bytes();
            if data.starts_with(b"{\"error\"") {
                return Err(gemini::parse_stream_error(data));
            }
            if let Some(seen) = gemini::usage_of(data) {
                merge_usage(usage, &seen);
            }
            Ok(true)
        }
        Dialect::Responses => {
            if let Some(u) = responses::passthrough_usage(ev)? {
                *usage = u;
            }
            Ok(true)
        }
    }
}

/// Usage of a complete JSON answer in `dialect`, read without building the whole tree.
fn json_usage(dialect: Dialect, body: &[u8]) -> Option<Usage> {
    match dialect {
        Dialect::OpenAiChat => {
            let c: OpenAiUsageChunk = serde_json::from_slice(body).ok()?;
            let u = c.usage?;
            Some(Usage { input_tokens: u.prompt_tokens, output_tokens: u.completion_tokens, ..Default::default() })
        }
        Dialect::Anthropic => {
            let e: AnthropicUsageEvent = serde_json::from_slice(body).ok()?;
            let u = e.usage?;
            Some(Usage {
                input_tokens: u.input_tokens,
                output_tokens: u.output_tokens,
                cache_read_tokens: u.cache_read_input_tokens,
                cache_creation_tokens: u.cache_creation_input_tokens,
                ..Default::default()
            })
        }
        Dialect::Gemini => gemini::usage_of(body),
        Dialect::Responses => responses::answer_usage(body),
    }
}

/// A login flow id: unique per process (time and a counter, hashed so it reveals neither).
fn flow_id(provider: &str, now: SystemTime) -> String {
    use sha2::Digest;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let digest = sha2::Sha256::digest(format!("{provider}:{nanos}:{n}:{}", std::process::id()).as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{provider}-{hex}")
}

/// The admission estimate for rate limits: about four bytes of JSON per token.
fn estimate_tokens(body: &[u8]) -> u64 {
    (body.len() as u64 / 4).max(1)
}

fn cooling_error(model: &str, wait: Duration, until: SystemTime) -> Error {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Error::new(
        ErrorKind::RateLimited,
        format!(
            "All credentials for model {model} are cooling down; the first is available again in {secs} s (at {})",
            crate::timefmt::format_rfc3339(until)
        ),
    )
    .with_code("model_cooldown")
    .with_model(model)
    .with_retry_after(wait)
}

fn unusable_error(model: &str) -> Error {
    Error::new(
        ErrorKind::Authentication,
        format!(
            "no usable credential for model {model}: every credential serving it is disabled or needs a new login; check GET /v0/management/cooldowns and the server log"
        ),
    )
    .with_model(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{Canned, FakeRuntime, ScriptedTransport};
    use futures::executor::block_on;

    const OK: &str = r#"{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#;
    const LIMITED: &str =
        r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;

    fn client(extra: &str) -> (Client, Arc<ScriptedTransport>, Arc<FakeRuntime>) {
        let yaml = format!(
            "openai-compatibility: [{{name: up, base-url: http://up.test/v1, api-key-entries: [{{api-key: k0}}, {{api-key: k1}}]}}]\n{extra}"
        );
        let transport = Arc::new(ScriptedTransport::default());
        let runtime = Arc::new(FakeRuntime::new());
        let client = Client::builder(Config::from_yaml(&yaml).unwrap().config)
            .transport(transport.clone())
            .runtime(runtime.clone())
            .build()
            .unwrap();
        (client, transport, runtime)
    }

    fn body() -> Bytes {
        Bytes::from_static(br#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#)
    }

    fn auth_of(t: &ScriptedTransport, i: usize) -> String {
        t.requests.lock().unwrap()[i].headers()["authorization"].to_str().unwrap().to_owned()
    }

    #[test]
    fn fails_over_and_cools_down_on_the_fake_clock() {
        let (client, transport, runtime) = client("");
        let mut limited = Canned::json(429, LIMITED);
        limited.headers.push(("retry-after", "30".into()));
        transport.push(limited);
        transport.push(Canned::json(200, OK));
        let Reply::Json { body: out, credential } = block_on(client.chat(body())).unwrap() else { panic!("json") };
        assert_eq!(credential, "openai-compat:up-1");
        assert!(std::str::from_utf8(&out).unwrap().contains("\"hi\""));
        assert_eq!(auth_of(&transport, 0), "Bearer k0");
        assert_eq!(auth_of(&transport, 1), "Bearer k1");

        let cds = client.cooldowns();
        assert_eq!(cds.len(), 1);
        assert_eq!(cds[0].credential, "openai-compat:up-0");
        assert_eq!(cds[0].until, runtime.now() + Duration::from_secs(30));

        // While k0 cools down, every request goes to k1.
        for _ in 0..3 {
            transport.push(Canned::json(200, OK));
            block_on(client.chat(body())).unwrap();
        }
        assert!((2..5).all(|i| auth_of(&transport, i) == "Bearer k1"));

        runtime.advance(Duration::from_secs(30));
        assert!(client.cooldowns().is_empty(), "cooldowns expire on their own");
    }

    #[test]
    fn all_cooling_is_a_rate_limit_with_retry_after() {
        let (client, transport, _) = client("max-retry-interval: 0");
        for _ in 0..2 {
            let mut limited = Canned::json(429, LIMITED);
            limited.headers.push(("retry-after", "20".into()));
            transport.push(limited);
        }
        let e = block_on(client.chat(body())).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(20)));
        // The next request finds both keys cooling and does not touch the network.
        let e = block_on(client.chat(body())).err().unwrap();
        assert_eq!(e.code(), "model_cooldown");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(20)));
        assert_eq!(transport.requests.lock().unwrap().len(), 2);
        assert_eq!(client.reset_cooldowns(Some("openai-compat:up-0"), None), 1);
        transport.push(Canned::json(200, OK));
        block_on(client.chat(body())).unwrap();
    }

    #[test]
    fn bad_request_is_not_retried_elsewhere() {
        let (client, transport, _) = client("");
        transport.push(Canned::json(
            400,
            r#"{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":null}}"#,
        ));
        let e = block_on(client.chat(body())).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        assert_eq!(transport.requests.lock().unwrap().len(), 1);
        assert!(client.cooldowns().is_empty());
    }

    #[test]
    fn stream_error_before_first_event_fails_over() {
        let (client, transport, _) = client("");
        transport.push(Canned {
            status: 200,
            headers: vec![("content-type", "text/event-stream".into())],
            chunks: vec![Bytes::from_static(
                b"data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\",\"code\":null}}\n\n",
            )],
        });
        transport.push(Canned {
            status: 200,
            headers: vec![("content-type", "text/event-stream".into())],
            chunks: vec![Bytes::from_static(
                b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"ok\"},\"finish_reason\":null}]}\n\ndata: [DONE]\n\n",
            )],
        });
        let streamed =
            Bytes::from_static(br#"{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}"#);
        let Reply::Stream(s) = block_on(client.chat(streamed)).unwrap() else { panic!("stream") };
        assert_eq!(s.credential(), "openai-compat:up-1");
        let events: Vec<_> = block_on(s.collect::<Vec<_>>());
        assert!(events.iter().all(|e| e.is_ok()));
        assert_eq!(events.last().unwrap().as_ref().unwrap().data, "[DONE]");
    }
}
