//! Kiro (AWS CodeWhisperer): Claude models through a Kiro login.
//!
//! - [`models`]: Kiro ids ⇄ listed names; [`request`]: IR → `conversationState`; [`response`]: the AWS event
//!   stream → IR events; [`auth`]: token files and refresh; [`login`]: Builder ID / Identity Center device
//!   logins; [`fingerprint`]: per-account SDK headers; [`usage`]: usage limits.
//! - Calls go to `q.{region}` first and to `codewhisperer.{region}` (with `X-Amz-Target`) when the first
//!   answers 429 / 5xx or cannot be reached. The region comes from the profile ARN, never from the login's
//!   OIDC region (that mistake sends requests to hosts that do not exist).
//! - Each credential has its own provider value holding the account's state (profile ARN, usage, identity),
//!   so error classification and preference can use it.

pub mod auth;
pub mod fingerprint;
pub mod login;
pub mod models;
pub mod request;
pub mod response;
pub mod usage;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use bytes::Bytes;
use futures::FutureExt;
use serde::Deserialize;
use serde_json::Value;

use self::auth::{AuthMethod, KiroRefresher, Store, TokenRecord};
use self::fingerprint::Fingerprint;
use self::usage::UsageSnapshot;
use super::{Ctx, Provider, UpstreamCall, UpstreamStream, finish_request, parse_headers};
use crate::auth::refresh::{RefreshingToken, Token};
use crate::config::{Config, ModelAlias, RateLimit, Secret};
use crate::credential::{Credential, CredentialState, TokenSource};
use crate::dialects::Dialect;
use crate::error::{Error, ErrorKind, Result};
use crate::routing::classify::{Cooldown, ErrorClass, Length, Scope, default_class, kind_for_status, until};
use crate::types::{ChatRequest, ChatResponse};

/// The provider id (credential ids are `kiro:…`).
pub const KIRO_ID: &str = "kiro";
/// `X-Amz-Target` of the fallback (codewhisperer) endpoint.
pub const TARGET: &str = "AmazonCodeWhispererStreamingService.GenerateAssistantResponse";

/// One `kiro:` entry of config.yaml: a token file used in place, or tokens given directly.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct KiroEntry {
    /// A Kiro token file (the IDE's, or one of ours) used in place; refreshed tokens are written back to it.
    pub token_file: Option<String>,
    pub access_token: Option<Secret>,
    pub refresh_token: Option<Secret>,
    pub profile_arn: Option<String>,
    /// The SSO-OIDC / auth-service region of the login.
    pub region: Option<String>,
    /// The API region, when the profile ARN does not tell it.
    pub api_region: Option<String>,
    pub start_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// `social`, `builder-id` or `idc`.
    pub auth_method: Option<String>,
    pub prefix: Option<String>,
    pub priority: i32,
    pub proxy_url: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub models: Vec<ModelAlias>,
    pub excluded_models: Vec<String>,
    pub rate_limit: RateLimit,
}

/// `kiro-endpoints`: base URLs with `{region}` substituted, overridable for proxies and the mock upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct EndpointsConfig {
    pub oidc_base_url: String,
    pub auth_base_url: String,
    pub api_base_url: String,
    pub fallback_api_base_url: String,
}

impl Default for EndpointsConfig {
    fn default() -> Self {
        EndpointsConfig {
            oidc_base_url: "https://oidc.{region}.amazonaws.com".into(),
            auth_base_url: "https://prod.{region}.auth.desktop.kiro.dev".into(),
            api_base_url: "https://q.{region}.amazonaws.com".into(),
            fallback_api_base_url: "https://codewhisperer.{region}.amazonaws.com".into(),
        }
    }
}

/// The resolved endpoints.
#[derive(Debug, Clone)]
pub struct Endpoints(EndpointsConfig);

impl Endpoints {
    pub fn from_config(config: &Config) -> Endpoints {
        Endpoints(config.kiro_endpoints.clone())
    }

    fn fill(template: &str, region: &str) -> String {
        template.replace("{region}", region).trim_end_matches('/').to_owned()
    }

    pub fn oidc_base(&self, region: &str) -> String {
        Self::fill(&self.0.oidc_base_url, region)
    }
    pub fn auth_base(&self, region: &str) -> String {
        Self::fill(&self.0.auth_base_url, region)
    }
    pub fn api_base(&self, region: &str) -> String {
        Self::fill(&self.0.api_base_url, region)
    }
    pub fn fallback_api_base(&self, region: &str) -> String {
        Self::fill(&self.0.fallback_api_base_url, region)
    }
}

/// The live state of one Kiro account, shared by its provider value, refresher and usage checker.
pub struct Account {
    pub id: String,
    pub method: AuthMethod,
    profile_arn: Mutex<Option<String>>,
    api_region: Option<String>,
    pub endpoints: Endpoints,
    pub fingerprint: Fingerprint,
    pub proxy_url: Option<String>,
    usage: Mutex<Option<UsageSnapshot>>,
    /// Set by a monthly-limit answer: the account has nothing left until then.
    exhausted_until: Mutex<Option<SystemTime>>,
}

impl Account {
    pub fn profile_arn(&self) -> Option<String> {
        self.profile_arn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_profile_arn(&self, arn: String) {
        *self.profile_arn.lock().unwrap_or_else(|p| p.into_inner()) = Some(arn);
    }

    /// The API region: configured, else the profile ARN's, else us-east-1.
    pub fn api_region(&self) -> String {
        self.api_region
            .clone()
            .or_else(|| self.profile_arn().as_deref().and_then(auth::arn_region).map(str::to_owned))
            .unwrap_or_else(|| "us-east-1".into())
    }

    pub fn usage(&self) -> Option<UsageSnapshot> {
        self.usage.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_usage(&self, u: UsageSnapshot) {
        if u.remaining() > 0.0 {
            *self.exhausted_until.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        *self.usage.lock().unwrap_or_else(|p| p.into_inner()) = Some(u);
    }

    /// When the monthly quota resets: the usage limits' `nextDateReset`, else the 1st of next month (UTC).
    pub fn next_reset(&self, now: SystemTime) -> SystemTime {
        self.usage()
            .and_then(|u| u.next_reset)
            .filter(|t| *t > now)
            .unwrap_or_else(|| crate::timefmt::start_of_next_month(now))
    }

    fn exhausted(&self, now: SystemTime) -> bool {
        if self.exhausted_until.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|t| t > now) {
            return true;
        }
        self.usage().is_some_and(|u| u.remaining() <= 0.0)
    }
}

/// The Kiro provider for one account.
pub struct Kiro {
    pub account: Arc<Account>,
}

fn new_id() -> String {
    format!("msg_{}", fingerprint::invocation_id().replace('-', ""))
}

impl Kiro {
    fn request(&self, call: &UpstreamCall<'_>, body: Bytes, fallback: bool) -> Result<http::Request<Bytes>> {
        let region = self.account.api_region();
        let endpoints = &self.account.endpoints;
        let base = if fallback { endpoints.fallback_api_base(&region) } else { endpoints.api_base(&region) };
        let mut b = http::Request::post(format!("{base}/generateAssistantResponse"))
            .header(http::header::AUTHORIZATION, format!("Bearer {}", call.access.token.expose()));
        b = if fallback {
            b.header(http::header::CONTENT_TYPE, "application/x-amz-json-1.0").header("x-amz-target", TARGET)
        } else {
            b.header(http::header::CONTENT_TYPE, "application/json")
        };
        b = self.account.fingerprint.apply(b, &fingerprint::invocation_id(), 3);
        if let Some(h) = b.headers_mut() {
            for (k, v) in &call.credential.headers {
                h.insert(k.clone(), v.clone());
            }
        }
        if let Some(p) = &call.credential.proxy_url {
            b = b.extension(crate::transport::UpstreamProxy(p.clone()));
        }
        finish_request(b, body, KIRO_ID)
    }
}

impl Provider for Kiro {
    fn id(&self) -> &'static str {
        KIRO_ID
    }

    fn dialect(&self) -> Option<Dialect> {
        None
    }

    fn prefixes(&self, _credential: &Credential) -> Vec<String> {
        vec![KIRO_ID.into()]
    }

    fn resolve_model(&self, _credential: &Credential, model: &str) -> Option<String> {
        models::resolve(model)
    }

    fn catalogue(&self, _credential: &Credential) -> Vec<String> {
        models::catalogue()
    }

    fn encode_request(&self, req: &ChatRequest) -> Result<Bytes> {
        let arn = self.account.profile_arn();
        let enc = request::Encoding { profile_arn: arn.as_deref(), conversation_id: fingerprint::invocation_id() };
        Ok(Bytes::from(request::encode(req, &enc).to_string()))
    }

    fn parse_response(&self, body: &[u8]) -> Result<ChatResponse> {
        response::parse_whole(&ChatRequest::default(), new_id(), body)
    }

    fn parse_response_for(&self, request: &ChatRequest, body: &[u8]) -> Result<ChatResponse> {
        response::parse_whole(request, new_id(), body)
    }

    fn stream_decoder(&self) -> Box<dyn UpstreamStream> {
        Box::new(response::KiroStream::new(&ChatRequest::default(), new_id()))
    }

    fn stream_decoder_for(&self, request: &ChatRequest) -> Box<dyn UpstreamStream> {
        Box::new(response::KiroStream::new(request, new_id()))
    }

    fn build_http(&self, call: &UpstreamCall<'_>, body: Bytes) -> Result<http::Request<Bytes>> {
        self.request(call, body, false)
    }

    fn fallback_http(&self, call: &UpstreamCall<'_>, body: Bytes) -> Option<Result<http::Request<Bytes>>> {
        Some(self.request(call, body, true))
    }

    fn classify_error(&self, status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> ErrorClass {
        classify(&self.account, status, headers, body, now)
    }

    fn preference(&self, _credential: &Credential) -> u8 {
        let now = SystemTime::now();
        match self.account.usage() {
            _ if self.account.exhausted(now) => 0,
            Some(_) => 2,
            None => 1,
        }
    }

    fn quota(&self, _credential: &Credential) -> Option<Value> {
        let mut v = self.account.usage().map(|u| u.to_json())?;
        if let Some(t) = *self.account.exhausted_until.lock().unwrap_or_else(|p| p.into_inner()) {
            v["exhausted_until"] = crate::timefmt::format_rfc3339(t).into();
        }
        Some(v)
    }
}

/// The message of a Kiro error body: `{"message"}`, `{"error":{"message"}}`, `{"Message"}`, else the text.
fn error_message(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let m = v
        .get("message")
        .or(v.get("Message"))
        .or(v.pointer("/error/message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect());
    match v.get("reason").or(v.pointer("/error/reason")).and_then(Value::as_str) {
        Some(r) => format!("{m} ({r})"),
        None => m,
    }
}

/// What a Kiro error answer means:
/// - 402 `MONTHLY_REQUEST_COUNT` (or the older 400 "… reached for this month"): the whole account cools down
///   until the quota resets and traffic moves to the next account;
/// - 403 `SUSPENDED`: the account is disabled with the reason shown in listings;
/// - 401, or 403 "bearer token … invalid": refresh the token and retry once;
/// - 429 / `ThrottlingException`: cool down and rotate (the default table);
/// - 400 "Improperly formed request": the request is at fault, no retry.
pub fn classify(account: &Account, status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> ErrorClass {
    let text = String::from_utf8_lossy(body);
    let message = error_message(body);
    let error = Error::new(kind_for_status(status), format!("Kiro: {message}")).with_status(status);
    let mut class = default_class(status, headers, error, now);
    let monthly = text.contains("MONTHLY_REQUEST_COUNT") || (status == 400 && text.contains("reached for this month"));
    if monthly || status == 402 {
        let reset = account.next_reset(now);
        *account.exhausted_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(reset);
        let wait = until(now, reset);
        class.error = Error::new(ErrorKind::QuotaExceeded, format!("Kiro monthly limit reached: {message}"))
            .with_status(status)
            .with_retry_after(wait);
        class.cooldown = Some(Cooldown { scope: Scope::Credential, length: Length::Fixed(wait) });
        class.retry_other = true;
    } else if status == 403 && text.contains("SUSPENDED") {
        class.disable = Some(format!("Kiro suspended this account: {message}"));
        class.cooldown = None;
        class.retry_other = true;
    } else if status == 401 || (status == 403 && text.to_ascii_lowercase().contains("bearer token")) {
        class.refresh = true;
        class.cooldown = None;
        class.retry_other = true;
    } else if status == 400 && text.contains("ThrottlingException") {
        class = default_class(429, headers, class.error.clone(), now);
    }
    class
}

/// The account state and token source for a token record.
fn build(
    ctx: &Arc<Ctx>,
    id: String,
    rec: TokenRecord,
    store: Store,
    proxy_url: Option<String>,
) -> (Arc<Account>, Arc<RefreshingToken>) {
    let fp_seed = rec.refresh_token.as_ref().map(|s| s.expose().to_owned()).unwrap_or_else(|| id.clone());
    let fingerprint =
        Fingerprint::derive(rec.client_id.as_deref().unwrap_or_default(), &fp_seed, &ctx.config.kiro_fingerprint);
    let account = Arc::new(Account {
        id: id.clone(),
        method: rec.method(),
        profile_arn: Mutex::new(rec.profile_arn.clone()),
        api_region: rec.api_region.clone().filter(|r| auth::valid_region(r)),
        endpoints: Endpoints::from_config(&ctx.config),
        fingerprint,
        proxy_url,
        usage: Mutex::new(None),
        exhausted_until: Mutex::new(None),
    });
    let initial = rec.access_token.clone().map(|access| Token { access, expires_at: rec.expires_at, base_url: None });
    let refresher = KiroRefresher { account: account.clone(), record: Mutex::new(rec), store };
    let token = Arc::new(RefreshingToken::new(id, Box::new(refresher), initial, auth::REFRESH_LEAD));
    (account, token)
}

/// Builds a credential and starts its background work (refresh ahead of expiry, usage checks).
#[allow(clippy::too_many_arguments)]
fn credential(
    ctx: &Arc<Ctx>,
    id: String,
    rec: TokenRecord,
    store: Store,
    prefix: Option<String>,
    priority: i32,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    proxy_url: Option<String>,
    models: Vec<ModelAlias>,
    excluded_models: Vec<String>,
    rate_limit: RateLimit,
) -> Arc<Credential> {
    let (account, token) = build(ctx, id.clone(), rec, store, proxy_url.clone());
    token.spawn_background(ctx.clone());
    spawn_usage_checker(ctx.clone(), Arc::downgrade(&account), Arc::downgrade(&token));
    Arc::new(Credential {
        id,
        provider: Arc::new(Kiro { account }),
        token,
        base_url: None,
        prefix,
        priority,
        headers,
        proxy_url,
        models,
        excluded_models,
        rate_limit,
    })
}

/// Looks up an account's usage limits (and email) with its current token.
pub async fn fetch_usage(ctx: &Ctx, account: &Account, token: &Secret) -> Result<UsageSnapshot> {
    let region = account.api_region();
    let mut url = format!(
        "{}/getUsageLimits?isEmailRequired=true&origin=AI_EDITOR&resourceType=AGENTIC_REQUEST",
        account.endpoints.api_base(&region)
    );
    if let Some(arn) = account.profile_arn() {
        url.push_str("&profileArn=");
        url.push_str(&percent_encode(&arn));
    }
    let mut b = http::Request::get(url).header(http::header::AUTHORIZATION, format!("Bearer {}", token.expose()));
    b = account.fingerprint.apply(b, &fingerprint::invocation_id(), 1);
    if let Some(p) = &account.proxy_url {
        b = b.extension(crate::transport::UpstreamProxy(p.clone()));
    }
    let req = b.body(Bytes::new()).map_err(|e| Error::config(format!("cannot build usage request: {e}")))?;
    let (status, body) = auth::send(ctx, req).await?;
    if !(200..300).contains(&status) {
        return Err(Error::upstream(Some(status), format!("getUsageLimits: {}", error_message(&body))));
    }
    usage::parse(&body, ctx.runtime.now())
        .ok_or_else(|| Error::upstream(Some(status), "getUsageLimits: unexpected answer"))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn spawn_usage_checker(ctx: Arc<Ctx>, account: Weak<Account>, token: Weak<RefreshingToken>) {
    let rt = ctx.runtime.clone();
    rt.spawn(
        async move {
            loop {
                let (Some(acc), Some(tok)) = (account.upgrade(), token.upgrade()) else { return };
                if tok.state() == CredentialState::Ready
                    && let Ok(access) = tok.access(&ctx, false).await
                {
                    match fetch_usage(&ctx, &acc, &access.token).await {
                        Ok(u) => {
                            tracing::debug!(credential = %acc.id, remaining = u.remaining(), "Kiro usage checked");
                            acc.set_usage(u);
                        }
                        Err(e) => tracing::debug!(credential = %acc.id, error = %e, "Kiro usage check failed"),
                    }
                }
                drop((acc, tok));
                ctx.runtime.sleep(usage::CHECK_EVERY).await;
            }
        }
        .boxed(),
    );
}

/// The credentials of the `kiro:` config entries.
pub fn load_config_entries(ctx: &Arc<Ctx>) -> Result<Vec<Arc<Credential>>> {
    let mut out = Vec::new();
    for (i, e) in ctx.config.kiro.iter().enumerate() {
        let name = format!("kiro[{i}]");
        let (mut rec, store) = match &e.token_file {
            Some(f) => {
                let path = crate::config::expand_home(f);
                let (v, rec) = auth::read_token_file(&path).map_err(|err| Error::config(format!("{name}: {err}")))?;
                (rec, Store::in_place(path, &v))
            }
            None => (TokenRecord::default(), Store::Memory),
        };
        let set = |slot: &mut Option<String>, v: &Option<String>| {
            if v.is_some() {
                slot.clone_from(v);
            }
        };
        if e.access_token.is_some() {
            rec.access_token.clone_from(&e.access_token);
        }
        if e.refresh_token.is_some() {
            rec.refresh_token.clone_from(&e.refresh_token);
        }
        if e.client_secret.is_some() {
            rec.client_secret.clone_from(&e.client_secret);
        }
        set(&mut rec.profile_arn, &e.profile_arn);
        set(&mut rec.region, &e.region);
        set(&mut rec.api_region, &e.api_region);
        set(&mut rec.start_url, &e.start_url);
        set(&mut rec.client_id, &e.client_id);
        if let Some(m) = &e.auth_method {
            rec.auth_method = Some(
                AuthMethod::parse(m, None)
                    .ok_or_else(|| Error::config(format!("{name}: unknown auth-method `{m}`")))?,
            );
        } else if e.token_file.is_none() {
            rec.auth_method = Some(if rec.client_id.is_some() { AuthMethod::Idc } else { AuthMethod::Social });
        }
        if rec.access_token.is_none() && rec.refresh_token.is_none() {
            return Err(Error::config(format!("{name}: needs `token-file`, `access-token` or `refresh-token`")));
        }
        out.push(credential(
            ctx,
            format!("kiro:config-{i}"),
            rec,
            store,
            e.prefix.clone(),
            e.priority,
            parse_headers(&e.headers, &name)?,
            e.proxy_url.clone().or_else(|| ctx.config.proxy_url.clone()),
            e.models.clone(),
            e.excluded_models.clone(),
            e.rate_limit,
        ));
    }
    Ok(out)
}

/// Loads an auth-dir file of `type: "kiro"`.
pub fn load_auth_file(ctx: &Arc<Ctx>, path: &Path, v: &Value) -> Result<Arc<Credential>> {
    let sso_cache = auth::home().map(|h| h.join(".aws/sso/cache"));
    let rec = TokenRecord::from_json(v, sso_cache.as_deref());
    if rec.access_token.is_none() && rec.refresh_token.is_none() {
        return Err(Error::config(format!("{} has neither access_token nor refresh_token", path.display())));
    }
    let id = format!("kiro:{}", crate::auth::store::file_stem(path));
    let priority = v.get("priority").and_then(Value::as_i64).unwrap_or(0) as i32;
    let prefix = v.get("prefix").and_then(Value::as_str).map(str::to_owned);
    let proxy = v.get("proxy_url").and_then(Value::as_str).map(str::to_owned).or_else(|| ctx.config.proxy_url.clone());
    let excluded = v
        .get("excluded_models")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|m| m.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    Ok(credential(
        ctx,
        id,
        rec,
        Store::AuthDir(path.to_path_buf()),
        prefix,
        priority,
        Vec::new(),
        proxy,
        Vec::new(),
        excluded,
        RateLimit::default(),
    ))
}

/// Writes a new account to the auth-dir (unique name, 0600, atomic) and builds its credential. Looks up the
/// profile (Identity Center) and the email first, where Kiro tells them.
pub async fn store_new_account(ctx: &Arc<Ctx>, mut rec: TokenRecord) -> Result<Arc<Credential>> {
    let probe_id = "kiro:new".to_string();
    let (account, _) = build(ctx, probe_id, rec.clone(), Store::Memory, ctx.config.proxy_url.clone());
    if let Some(token) = rec.access_token.clone() {
        if rec.profile_arn.is_none()
            && rec.method() == AuthMethod::Idc
            && let Some(arn) = list_profiles(ctx, &account, &token).await
        {
            account.set_profile_arn(arn.clone());
            rec.profile_arn = Some(arn);
        }
        if rec.email.is_none()
            && let Ok(u) = fetch_usage(ctx, &account, &token).await
        {
            rec.email = u.email;
        }
    }
    let dir = crate::auth::store::auth_dir(&ctx.config);
    crate::auth::store::create_private_dir(&dir)?;
    let path = crate::auth::store::unique_path(&dir, &auth::file_base(&rec));
    crate::auth::store::write_json_atomic(&path, &auth::auth_file_json(&rec, ctx.runtime.now()))?;
    tracing::info!(file = %path.display(), method = rec.method().as_str(), "stored Kiro account");
    let v = serde_json::from_slice(&std::fs::read(&path).map_err(|e| Error::config(e.to_string()))?)
        .map_err(|e| Error::config(e.to_string()))?;
    load_auth_file(ctx, &path, &v)
}

/// `ListProfiles` on the codewhisperer host: the first profile's ARN.
async fn list_profiles(ctx: &Ctx, account: &Account, token: &Secret) -> Option<String> {
    let url = format!("{}/", account.endpoints.fallback_api_base("us-east-1"));
    let mut b = http::Request::post(url)
        .header(http::header::AUTHORIZATION, format!("Bearer {}", token.expose()))
        .header(http::header::CONTENT_TYPE, "application/x-amz-json-1.0")
        .header("x-amz-target", "AmazonCodeWhispererService.ListProfiles");
    b = account.fingerprint.apply(b, &fingerprint::invocation_id(), 1);
    let req = b.body(Bytes::from_static(br#"{"origin":"AI_EDITOR"}"#)).ok()?;
    let (status, body) = auth::send(ctx, req).await.ok()?;
    if !(200..300).contains(&status) {
        tracing::debug!(status, "Kiro ListProfiles failed");
        return None;
    }
    let v: Value = serde_json::from_slice(&body).ok()?;
    v.pointer("/profiles/0/arn").and_then(Value::as_str).map(str::to_owned)
}

/// Validates a pasted social refresh token by refreshing it, then stores it as a new account.
pub async fn add_social_refresh_token(ctx: &Arc<Ctx>, refresh_token: &str) -> Result<Arc<Credential>> {
    let refresh_token = refresh_token.trim();
    if refresh_token.len() < 16 || refresh_token.chars().any(char::is_whitespace) {
        return Err(Error::invalid_request("that does not look like a Kiro refresh token"));
    }
    let mut rec = TokenRecord {
        refresh_token: Some(Secret::new(refresh_token)),
        auth_method: Some(AuthMethod::Social),
        provider: Some("imported".into()),
        ..TokenRecord::default()
    };
    let (account, _) = build(ctx, "kiro:new".into(), rec.clone(), Store::Memory, ctx.config.proxy_url.clone());
    let r = KiroRefresher::call(ctx, &account, &rec).await.map_err(|e| match e {
        crate::auth::refresh::RefreshError::NeedsLogin(m) => Error::invalid_request(m),
        crate::auth::refresh::RefreshError::Transient(e) => e,
    })?;
    rec.access_token = Some(Secret::new(r.access_token));
    if let Some(rt) = r.refresh_token {
        rec.refresh_token = Some(Secret::new(rt));
    }
    rec.profile_arn = r.profile_arn;
    rec.expires_at = Some(ctx.runtime.now() + std::time::Duration::from_secs(r.expires_in.unwrap_or(3600)));
    store_new_account(ctx, rec).await
}

/// `import kiro`: copies the IDE's session into the auth-dir as an independent account.
pub fn import_ide(ctx: &Arc<Ctx>) -> Result<Vec<PathBuf>> {
    let home = auth::home().ok_or_else(|| Error::config("HOME is not set: cannot find the Kiro IDE's token file"))?;
    let src = auth::ide_token_file(&home).ok_or_else(|| {
        Error::config(format!(
            "no Kiro IDE session found (looked for {} under {}): log in to the Kiro IDE first",
            auth::IDE_TOKEN_FILES.join(" and "),
            home.display()
        ))
    })?;
    let (_, mut rec) = auth::read_token_file(&src)?;
    if rec.access_token.is_none() && rec.refresh_token.is_none() {
        return Err(Error::config(format!("{} holds no tokens", src.display())));
    }
    if rec.provider.is_none() {
        rec.provider = Some("imported".into());
    }
    let dir = crate::auth::store::auth_dir(&ctx.config);
    crate::auth::store::create_private_dir(&dir)?;
    let path = crate::auth::store::unique_path(&dir, &auth::file_base(&rec));
    crate::auth::store::write_json_atomic(&path, &auth::auth_file_json(&rec, ctx.runtime.now()))?;
    tracing::info!(from = %src.display(), to = %path.display(), "imported the Kiro IDE session");
    Ok(vec![path])
}

/// Startup discovery: the IDE's token file, used in place (unless a configured entry or an auth-dir file
/// already holds the same session).
pub fn discover_ide(ctx: &Arc<Ctx>) -> Vec<Arc<Credential>> {
    let Some(home) = auth::home() else { return Vec::new() };
    let Some(path) = auth::ide_token_file(&home) else { return Vec::new() };
    let configured = ctx.config.kiro.iter().filter_map(|e| e.token_file.as_deref()).map(crate::config::expand_home);
    if configured.into_iter().any(|p| p == path) {
        return Vec::new();
    }
    let (v, rec) = match auth::read_token_file(&path) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "found a Kiro IDE token file but cannot use it");
            return Vec::new();
        }
    };
    let same = |t: &Option<Secret>| t.as_ref().is_some_and(|t| Some(t) == rec.refresh_token.as_ref());
    let dir = crate::auth::store::auth_dir(&ctx.config);
    let imported = crate::auth::store::read_auth_files(&dir).iter().any(|(_, f)| {
        f.get("type").and_then(Value::as_str) == Some(KIRO_ID) && same(&TokenRecord::from_json(f, None).refresh_token)
    });
    if imported || ctx.config.kiro.iter().any(|e| same(&e.refresh_token)) {
        tracing::info!(file = %path.display(), "the Kiro IDE session is already configured; not adding it twice");
        return Vec::new();
    }
    tracing::info!(file = %path.display(), method = rec.method().as_str(), "using the Kiro IDE session (credential kiro:ide)");
    let store = Store::in_place(path, &v);
    let proxy = ctx.config.proxy_url.clone();
    vec![credential(
        ctx,
        "kiro:ide".into(),
        rec,
        store,
        None,
        0,
        Vec::new(),
        proxy,
        Vec::new(),
        Vec::new(),
        RateLimit::default(),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn account(usage: Option<UsageSnapshot>) -> Account {
        Account {
            id: "kiro:a".into(),
            method: AuthMethod::Social,
            profile_arn: Mutex::new(Some("arn:aws:codewhisperer:eu-central-1:1:profile/P".into())),
            api_region: None,
            endpoints: Endpoints(EndpointsConfig::default()),
            fingerprint: Fingerprint::derive("", "r", &fingerprint::FingerprintConfig::default()),
            proxy_url: None,
            usage: Mutex::new(usage),
            exhausted_until: Mutex::new(None),
        }
    }

    fn now() -> SystemTime {
        // 2026-11-27T06:00:00Z
        crate::timefmt::parse_rfc3339("2026-11-27T06:00:00Z").unwrap()
    }

    #[test]
    fn region_from_arn_never_oidc() {
        let a = account(None);
        assert_eq!(a.api_region(), "eu-central-1");
        assert_eq!(a.endpoints.api_base(&a.api_region()), "https://q.eu-central-1.amazonaws.com");
    }

    #[test]
    fn monthly_limit_cools_the_account_until_the_reset() {
        let a = account(None);
        let body = br#"{"message":"You have reached the limit.","reason":"MONTHLY_REQUEST_COUNT"}"#;
        let c = classify(&a, 402, &http::HeaderMap::new(), body, now());
        let first = crate::timefmt::parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
        assert_eq!(
            c.cooldown,
            Some(Cooldown { scope: Scope::Credential, length: Length::Fixed(first.duration_since(now()).unwrap()) })
        );
        assert_eq!(c.error.kind(), ErrorKind::QuotaExceeded);
        assert!(c.retry_other);
        let reset = now() + Duration::from_secs(3600);
        let u = UsageSnapshot {
            limit: 50.0,
            used: 50.0,
            next_reset: Some(reset),
            subscription: None,
            email: None,
            checked_at: now(),
        };
        let a = account(Some(u));
        let c = classify(&a, 402, &http::HeaderMap::new(), body, now());
        assert_eq!(c.cooldown.unwrap().length, Length::Fixed(Duration::from_secs(3600)));
    }

    #[test]
    fn suspension_bearer_and_throttling() {
        let a = account(None);
        let h = http::HeaderMap::new();
        let c = classify(&a, 403, &h, br#"{"message":"Account TEMPORARILY_SUSPENDED","reason":"SUSPENDED"}"#, now());
        assert!(c.disable.unwrap().contains("SUSPENDED"));
        let c = classify(
            &a,
            403,
            &h,
            br#"{"message":"The bearer token included in the request is invalid.","reason":null}"#,
            now(),
        );
        assert!(c.refresh && c.retry_other && c.cooldown.is_none());
        let c = classify(&a, 429, &h, br#"{"message":"Too many requests, please wait before trying again."}"#, now());
        assert!(c.retry_other);
        assert_eq!(c.error.kind(), ErrorKind::RateLimited);
        let c = classify(&a, 400, &h, br#"{"message":"Improperly formed request.","reason":null}"#, now());
        assert!(!c.retry_other && c.cooldown.is_none());
    }
}
