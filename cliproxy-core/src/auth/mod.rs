//! Account lifecycles: everything about an upstream account that happens over time, with I/O through the transport
//! and runtime seams only.
//!
//! - [`Credential`]: one usable account or key, as the routing layer sees it;
//! - [`TokenSource`]: the access token of a credential (static keys, or [`refresh::RefreshingToken`] for OAuth
//!   accounts: refresh ahead of expiry, single-flight, forced after a rejection);
//! - [`AccountState`]: what an account learns from its answers (quota, usage, model lists) and adds to a failure's
//!   facts before routing decides;
//! - [`LoginProvider`]: interactive logins;
//! - [`store`]: the auth-dir in the Go original's file formats (atomic 0600 writes);
//! - one module per upstream that has accounts ([`claude`], [`copilot`], [`kiro`], [`openai_compat`],
//!   [`gemini_keys`]), each registered once in [`ACCOUNT_TYPES`]; [`listing`] for keys that learn their upstream's
//!   model list.
//!
//! A provider's wire format (request building, answer parsing, failure facts) lives in `providers/<name>` and
//! does no I/O; its account lifecycle lives here.

pub mod claude;
pub mod copilot;
pub mod fetch;
pub mod gemini_keys;
pub mod kiro;
pub mod listing;
pub mod openai_compat;
pub mod refresh;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::config::{ApiKeyEntry, ClaudeKey, Config, ModelAlias, RateLimit, Secret};
use crate::error::{Error, Result};
use crate::providers::failure::Failure;
use crate::providers::{Access, Provider, parse_headers};
use crate::transport::{HttpTransport, Runtime};

/// The I/O an account lifecycle may do: the network and time through the seams, and the configuration.
pub struct Ctx {
    pub transport: Arc<dyn HttpTransport>,
    pub runtime: Arc<dyn Runtime>,
    pub config: Arc<Config>,
}

/// Whether a credential can be used, as shown in listings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CredentialState {
    Ready,
    /// A human must log in again (refresh token rejected, GitHub token revoked, …).
    NeedsLogin(String),
    /// Disabled until a human acts (invalid key, suspended account).
    Disabled(String),
}

impl CredentialState {
    pub fn as_str(&self) -> &'static str {
        match self {
            CredentialState::Ready => "ready",
            CredentialState::NeedsLogin(_) => "needs_login",
            CredentialState::Disabled(_) => "disabled",
        }
    }
    pub fn reason(&self) -> Option<&str> {
        match self {
            CredentialState::Ready => None,
            CredentialState::NeedsLogin(r) | CredentialState::Disabled(r) => Some(r),
        }
    }
}

/// Produces the access token of a credential. API keys are static; OAuth accounts refresh here.
pub trait TokenSource: Send + Sync {
    fn access<'a>(&'a self, ctx: &'a Ctx, force_refresh: bool) -> BoxFuture<'a, Result<Access>>;
    fn state(&self) -> CredentialState {
        CredentialState::Ready
    }
    /// When the access token expires, where known (listings only).
    fn expires_at(&self) -> Option<SystemTime> {
        None
    }
    /// Obtains a new access token now, for account operations ("refresh this account"). Static keys have nothing
    /// to refresh.
    fn refresh<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Result<()>> {
        let _ = ctx;
        futures::future::ready(Ok(())).boxed()
    }
}

/// A fixed API key.
pub struct StaticKey(pub Secret);

impl TokenSource for StaticKey {
    fn access<'a>(&'a self, _ctx: &'a Ctx, _force: bool) -> BoxFuture<'a, Result<Access>> {
        let access = Access { token: self.0.clone(), base_url: None };
        futures::future::ready(Ok(access)).boxed()
    }
}

/// What an account learns over time, beyond its token. Every method has a neutral default, so key-based
/// credentials use [`Stateless`].
pub trait AccountState: Send + Sync {
    /// Within a priority group, credentials with the highest preference are used first (e.g. remaining quota).
    fn preference(&self, _now: SystemTime) -> u8 {
        1
    }

    /// Sees the headers of every upstream answer (success or error), for accounts that learn their state from
    /// them (Copilot's quota snapshots, Claude's rate-limit windows).
    fn observe_response(&self, _headers: &http::HeaderMap, _now: SystemTime) {}

    /// Adds what the account knows to a failure's facts (a quota's reset date the answer did not repeat) and
    /// records what the failure taught it (the quota is used up), before routing decides.
    fn observe_failure(&self, _failure: &mut Failure, _now: SystemTime) {}

    /// The account's quota as last seen (remaining requests, windows, reset dates), for listings and `usage()`.
    fn quota(&self) -> Option<serde_json::Value> {
        None
    }

    /// Fetches the upstream's model list, for accounts whose upstream lists models. The client calls it at
    /// startup and then hourly.
    fn refresh_models<'a>(&'a self, _ctx: &'a Ctx, _token: &'a dyn TokenSource) -> BoxFuture<'a, ()> {
        futures::future::ready(()).boxed()
    }
}

/// An account that learns nothing: API keys.
pub struct Stateless;

impl AccountState for Stateless {}

/// One usable upstream account or key, with a stable id that never contains the secret.
///
/// Ids are `<provider>:<name>`: the auth-file stem for file-based accounts, or the config entry's name and index
/// (`claude:key-0`, `openai-compat:openrouter-1`). Logs, listings, cooldowns and management APIs all use the id,
/// so nothing outside the request builder ever needs the secret itself.
pub struct Credential {
    pub id: String,
    /// The upstream's wire format.
    pub provider: Arc<dyn Provider>,
    pub account: Arc<dyn AccountState>,
    pub token: Arc<dyn TokenSource>,
    pub base_url: Option<String>,
    /// `prefix/model` selects this credential.
    pub prefix: Option<String>,
    pub priority: i32,
    /// Extra headers sent with every upstream request.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub proxy_url: Option<String>,
    pub models: Vec<ModelAlias>,
    pub excluded_models: Vec<String>,
    pub rate_limit: RateLimit,
    /// The file this account lives in, for accounts that have one (auth-dir files, token files used in place).
    pub file: Option<PathBuf>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("id", &self.id)
            .field("provider", &self.provider.id())
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

/// What a provider returns when an interactive login starts. A device login shows `user_code` to enter at
/// `verification_uri`; an authorization-code login sends the browser to `verification_uri` (the authorize URL,
/// `user_code` empty) and waits for the code it comes back with, through `redirect`.
pub struct DeviceLogin {
    /// Where the user goes to approve.
    pub verification_uri: String,
    /// The same page with the code filled in, where the provider offers one.
    pub verification_uri_complete: Option<String>,
    pub user_code: String,
    /// Seconds until the code expires.
    pub expires_in: u64,
    /// Authorization-code logins: where the browser comes back, and how the code gets to the login.
    pub redirect: Option<Redirect>,
    /// Polls until the user approved (or waits for the code), then stores and returns the credential.
    pub poll: BoxFuture<'static, Result<Arc<Credential>>>,
}

/// The way back of an authorization-code login: the provider redirects the browser to `uri` with `code` and
/// `state`. Whoever sees it (a local callback listener, or the user pasting `code#state`) hands it over through
/// the login flow (`LoginFlow::complete`), which checks `state` before the code reaches `code`; an error the
/// provider redirected with fails the login at once.
pub struct Redirect {
    pub uri: String,
    pub state: String,
    pub code: futures::channel::oneshot::Sender<Result<String>>,
}

/// An account type with an interactive login. `options` carries provider-specific settings
/// (`{"idc": true, "start_url": …, "region": …}` for Kiro, say).
pub trait LoginProvider: Send + Sync {
    fn start(&self, ctx: Arc<Ctx>, options: serde_json::Value) -> BoxFuture<'static, Result<DeviceLogin>>;

    /// For authorization-code logins: the local port the redirect URI will name for `options` (their
    /// `callback_port`, else the provider's default), so a surface that can listen binds it before the login
    /// starts, and passes the port it really bound back as `callback_port`. Device logins have none.
    fn callback_port(&self, _options: &serde_json::Value) -> Option<u16> {
        None
    }
}

/// Loads an auth-dir file of the account type.
type FileLoader = fn(&Arc<Ctx>, &Path, &serde_json::Value) -> Result<Arc<Credential>>;
/// Copies another tool's credentials into the auth-dir; returns the paths written.
type Importer = fn(&Arc<Ctx>) -> Result<Vec<PathBuf>>;
/// Finds credentials other tools keep (an IDE's session) at startup, used in place.
type Discoverer = fn(&Arc<Ctx>) -> Vec<Arc<Credential>>;
/// Builds the credentials of the account type's config.yaml entries.
type ConfigLoader = fn(&Arc<Ctx>) -> Result<Vec<Arc<Credential>>>;
/// Adds an account from a pasted token.
type TokenAdder = fn(Arc<Ctx>, String) -> BoxFuture<'static, Result<Arc<Credential>>>;

/// One account type: what `login`, `import`, the auth-dir loader and startup discovery can do with it. Every
/// field but `name` is optional, so an account type fills in only what it has.
pub struct AccountType {
    /// The name `login <name>` and `import <name>` take.
    pub name: &'static str,
    /// The `type` of its auth-dir files.
    pub file_type: Option<&'static str>,
    pub load_file: Option<FileLoader>,
    pub load_config: Option<ConfigLoader>,
    pub login: Option<fn() -> Box<dyn LoginProvider>>,
    pub import: Option<Importer>,
    pub discover: Option<Discoverer>,
    pub add_token: Option<TokenAdder>,
}

impl AccountType {
    const fn named(name: &'static str) -> AccountType {
        AccountType {
            name,
            file_type: None,
            load_file: None,
            load_config: None,
            login: None,
            import: None,
            discover: None,
            add_token: None,
        }
    }
}

/// Every account type: adding an upstream with accounts adds one line here.
pub const ACCOUNT_TYPES: &[AccountType] = &[
    claude::ACCOUNT_TYPE,
    copilot::ACCOUNT_TYPE,
    kiro::ACCOUNT_TYPE,
    openai_compat::ACCOUNT_TYPE,
    gemini_keys::ACCOUNT_TYPE,
];

/// The account type called `name`.
pub fn account_type(name: &str) -> Option<&'static AccountType> {
    ACCOUNT_TYPES.iter().find(|t| t.name == name)
}

/// Credentials from the auth-dir files whose `type` an account type owns; other files are left alone (the Go
/// original's other providers may share the directory).
fn load_auth_dir(ctx: &Arc<Ctx>) -> Vec<Arc<Credential>> {
    let dir = store::auth_dir(&ctx.config);
    store::sweep_stale_temp_files(&dir, ctx.runtime.now());
    let mut out = Vec::new();
    for (path, value) in store::read_auth_files(&dir) {
        let kind = value.get("type").and_then(|t| t.as_str()).unwrap_or_default();
        let Some(load) = ACCOUNT_TYPES.iter().find(|t| t.file_type == Some(kind)).and_then(|t| t.load_file) else {
            continue;
        };
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

/// Builds every credential the configuration describes: API keys, each account type's config entries, the
/// auth-dir, and what startup discovery finds (unless already present by id).
pub fn load_credentials(ctx: &Arc<Ctx>) -> Result<Vec<Arc<Credential>>> {
    let config = &ctx.config;
    let mut out = Vec::new();
    let claude: Arc<dyn Provider> = Arc::new(crate::providers::claude::Claude::api_key());
    for (i, k) in config.claude_api_key.iter().enumerate() {
        let headers = parse_headers(&k.headers, &format!("claude-api-key[{i}]"))?;
        let id = format!("claude:key-{i}");
        out.push(key_credential(config, id, claude.clone(), Arc::new(Stateless), k, headers, k.base_url.clone()));
    }
    for t in ACCOUNT_TYPES {
        if let Some(load) = t.load_config {
            out.extend(load(ctx)?);
        }
    }
    out.extend(load_auth_dir(ctx));
    for discover in ACCOUNT_TYPES.iter().filter_map(|t| t.discover) {
        for c in discover(ctx) {
            if !out.iter().any(|o| o.id == c.id) {
                out.push(c);
            }
        }
    }
    Ok(out)
}

/// The credential of one `*-api-key` entry (`claude-api-key`, `gemini-api-key`), with its parsed `headers` and
/// the base URL its requests go to.
pub(crate) fn key_credential(
    config: &Config,
    id: String,
    provider: Arc<dyn Provider>,
    account: Arc<dyn AccountState>,
    k: &ClaudeKey,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    base_url: Option<String>,
) -> Arc<Credential> {
    Arc::new(Credential {
        id,
        provider,
        account,
        token: Arc::new(StaticKey(k.api_key.clone())),
        base_url,
        prefix: k.prefix.clone(),
        priority: k.priority,
        headers,
        proxy_url: k.proxy_url.clone().or_else(|| config.proxy_url.clone()),
        models: k.models.clone(),
        excluded_models: k.excluded_models.clone(),
        rate_limit: k.rate_limit,
        file: None,
    })
}

/// The keys of an `api-key-entries` list, or one keyless entry for a local backend that needs none.
pub(crate) fn keys_or_keyless(entries: &[ApiKeyEntry]) -> Vec<ApiKeyEntry> {
    if entries.is_empty() { vec![ApiKeyEntry::default()] } else { entries.to_vec() }
}

/// An error for an account type that lacks the asked-for operation, naming the ones that have it.
pub fn unsupported(what: &str, name: &str, has: impl Fn(&AccountType) -> bool) -> Error {
    let names: Vec<&str> = ACCOUNT_TYPES.iter().filter(|t| has(t)).map(|t| t.name).collect();
    Error::invalid_request(format!("`{name}` has no {what}; account types with one: {}", names.join(", ")))
}
