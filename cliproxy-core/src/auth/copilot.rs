//! Copilot accounts: the GitHub device login, the auth-dir file (the Go original's `github-copilot-{user}.json`),
//! editor plugins' `apps.json` / `hosts.json`, the GitHub → Copilot token exchange, and the background refresh
//! of each account's model list and quota.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::refresh::{RefreshError, Refresher, RefreshingToken, Token};
use super::store::{FileOptions, auth_dir, file_stem, write_json_atomic};
use super::{AccountState, AccountType, Credential, CredentialState, Ctx, DeviceLogin, LoginProvider};
use crate::config::{RateLimit, Secret};
use crate::error::{Error, ErrorKind, Result};
use crate::providers::copilot::quota::QuotaState;
use crate::providers::copilot::{
    API_VERSION, Copilot, DEFAULT_API_BASE_URL, EDITOR_PLUGIN_VERSION, EDITOR_VERSION, Models, USER_AGENT, api_headers,
    lock, parse_models,
};
use crate::providers::failure::Failure;
use crate::providers::join_url;
use crate::transport::UpstreamProxy;

pub const ACCOUNT_TYPE: AccountType = AccountType {
    file_type: Some(FILE_TYPE),
    load_file: Some(load_auth_file),
    login: Some(login_provider),
    import: Some(import),
    discover: Some(discover),
    ..AccountType::named("copilot")
};

/// What one account's answers taught us; shared by its token exchange, its background task and routing.
pub(crate) struct Account {
    id: String,
    github_token: Secret,
    /// `github-copilot.github-api-base-url` when the credential was built.
    github_api: String,
    proxy_url: Option<String>,
    /// Shared with the credential's wire value, which reads it.
    models: Models,
    quota: Mutex<QuotaState>,
}

impl AccountState for Account {
    /// An account whose premium requests are used up (without overage) serves only when no other account is
    /// ready: premium models would answer 402 there.
    fn preference(&self, _now: std::time::SystemTime) -> u8 {
        if lock(&self.quota).premium_exhausted() { 0 } else { 1 }
    }

    fn observe_response(&self, headers: &http::HeaderMap, now: std::time::SystemTime) {
        lock(&self.quota).observe_headers(headers, now);
    }

    /// A quota answer without `Retry-After` waits until the reset date the quota snapshot gave.
    fn observe_failure(&self, failure: &mut Failure, now: std::time::SystemTime) {
        let reset = lock(&self.quota).reset_date;
        failure.wait_until_reset(reset, now);
    }

    fn quota(&self) -> Option<Value> {
        let models = lock(&self.models).clone().unwrap_or_default();
        let mut v = lock(&self.quota).to_json()?;
        let responses_only: Vec<&str> = models.iter().filter(|m| m.responses_only).map(|m| m.id.as_str()).collect();
        if !responses_only.is_empty() {
            v["responses_only_models"] = responses_only.into();
        }
        Some(v)
    }
}

/// The OAuth app of GitHub's editor plugins; Copilot's token exchange accepts only its tokens.
pub const CLIENT_ID: &str = "Iv1.b507a08c87ecfe98";
/// The auth-file `type`.
pub const FILE_TYPE: &str = "github-copilot";
/// How long before expiry the Copilot token is replaced when its answer gives no `refresh_in`.
const DEFAULT_LEAD: Duration = Duration::from_secs(300);
/// How often an account's model list and quota are fetched again.
const CATALOGUE_EVERY: Duration = Duration::from_secs(30 * 60);
/// Retry delay after a failed catalogue fetch.
const CATALOGUE_RETRY: Duration = Duration::from_secs(5 * 60);
/// The shortest pause between device-flow polls, whatever the server says (it may say 0).
const MIN_POLL: Duration = Duration::from_millis(100);

/// One HTTP exchange with GitHub: status, headers, body. Transport failures become upstream errors.
async fn send(ctx: &Ctx, req: http::Request<Bytes>) -> Result<(u16, http::HeaderMap, Bytes)> {
    let a = super::fetch::send(ctx, req, "GitHub").await?;
    Ok((a.status, a.headers, a.body))
}

fn with_proxy(mut b: http::request::Builder, proxy: Option<&String>) -> http::request::Builder {
    if let Some(p) = proxy {
        b = b.extension(UpstreamProxy(p.clone()));
    }
    b
}

/// A GET against GitHub's REST API with the GitHub token and the editor identity the Copilot endpoints want.
fn github_get(url: &str, github_token: &Secret, proxy: Option<&String>) -> Result<http::Request<Bytes>> {
    let b = http::Request::get(url)
        .header(http::header::AUTHORIZATION, format!("token {}", github_token.expose()))
        .header(http::header::ACCEPT, "application/json")
        .header("editor-version", EDITOR_VERSION)
        .header("editor-plugin-version", EDITOR_PLUGIN_VERSION)
        .header(http::header::USER_AGENT, USER_AGENT)
        .header("x-github-api-version", API_VERSION);
    with_proxy(b, proxy).body(Bytes::new()).map_err(|e| Error::config(format!("cannot build GitHub request: {e}")))
}

/// The text of a GitHub error answer, for messages (never a token: GitHub does not echo them).
fn snippet(body: &[u8]) -> String {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    let from_json = v.as_ref().and_then(|v| {
        v.get("message")
            .or_else(|| v.get("error_description"))
            .or_else(|| v.get("error"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    from_json.unwrap_or_else(|| String::from_utf8_lossy(body).trim().chars().take(300).collect())
}

/// Exchanges the GitHub token for a Copilot token (`copilot_internal/v2/token`).
pub(crate) struct Exchange {
    account: Arc<Account>,
    /// `expires_at − refresh_in` of the last token: when Copilot wants it replaced.
    lead: Mutex<Option<Duration>>,
}

impl Exchange {
    pub(crate) fn new(account: Arc<Account>) -> Exchange {
        Exchange { account, lead: Mutex::new(None) }
    }
}

#[derive(Deserialize)]
struct TokenEnvelope {
    token: String,
    expires_at: Option<u64>,
    refresh_in: Option<u64>,
    #[serde(default)]
    endpoints: Option<Endpoints>,
}

#[derive(Deserialize)]
struct Endpoints {
    api: Option<String>,
}

impl Refresher for Exchange {
    fn refresh<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, std::result::Result<Token, RefreshError>> {
        async move {
            let a = &self.account;
            let url = join_url(&a.github_api, "/copilot_internal/v2/token");
            let req = github_get(&url, &a.github_token, a.proxy_url.as_ref()).map_err(RefreshError::Transient)?;
            let (status, _, body) = send(ctx, req).await.map_err(RefreshError::Transient)?;
            match status {
                200 => {}
                401 => {
                    return Err(RefreshError::NeedsLogin(format!(
                        "GitHub rejected the account's token (revoked or expired: {}); run `cliproxy-server login copilot`",
                        snippet(&body)
                    )));
                }
                403 if !snippet(&body).to_ascii_lowercase().contains("rate limit") => {
                    return Err(RefreshError::NeedsLogin(format!(
                        "this GitHub account has no Copilot access: {}",
                        snippet(&body)
                    )));
                }
                s => {
                    return Err(RefreshError::Transient(Error::upstream(
                        Some(s),
                        format!("Copilot token exchange failed ({s}): {}", snippet(&body)),
                    )));
                }
            }
            let env: TokenEnvelope = serde_json::from_slice(&body).map_err(|e| {
                RefreshError::Transient(Error::upstream(Some(200), format!("unreadable Copilot token answer: {e}")))
            })?;
            let now = ctx.runtime.now();
            let expires_at = env.expires_at.map(|s| std::time::UNIX_EPOCH + Duration::from_secs(s));
            let lifetime = expires_at.and_then(|e| e.duration_since(now).ok());
            let lead = match (lifetime, env.refresh_in) {
                (Some(l), Some(r)) => l.saturating_sub(Duration::from_secs(r)),
                (Some(l), None) => DEFAULT_LEAD.min(l / 2),
                (None, _) => DEFAULT_LEAD,
            };
            *lock(&self.lead) = Some(lead);
            let base_url = env.endpoints.and_then(|e| e.api).filter(|u| !u.is_empty());
            Ok(Token { access: Secret::new(env.token), expires_at, base_url })
        }
        .boxed()
    }

    fn lead(&self) -> Option<Duration> {
        *lock(&self.lead)
    }
}

/// Builds the credential of a GitHub token and starts its catalogue refresh.
fn credential(
    ctx: &Arc<Ctx>,
    stem: &str,
    github_token: Secret,
    file: &Value,
    path: Option<PathBuf>,
) -> Arc<Credential> {
    let opts = FileOptions::of(file);
    let config = &ctx.config;
    let id = format!("copilot:{stem}");
    let proxy_url = opts.proxy_url.filter(|p| !p.is_empty()).or_else(|| config.proxy_url.clone());
    let account = Arc::new(Account {
        id: id.clone(),
        github_token,
        github_api: config.github_copilot.github_api_base_url.clone(),
        proxy_url: proxy_url.clone(),
        models: Models::default(),
        quota: Mutex::new(Default::default()),
    });
    let exchange = Exchange::new(account.clone());
    let token = Arc::new(RefreshingToken::new(id.clone(), Box::new(exchange), None, DEFAULT_LEAD));
    let api = config.github_copilot.api_base_url.trim();
    let cred = Arc::new(Credential {
        id,
        provider: Arc::new(Copilot { models: account.models.clone() }),
        account: account.clone(),
        token,
        base_url: (!api.is_empty()).then(|| api.to_owned()),
        prefix: opts.prefix.filter(|p| !p.is_empty()),
        priority: opts.priority,
        headers: Vec::new(),
        proxy_url,
        models: Vec::new(),
        excluded_models: opts.excluded_models,
        rate_limit: RateLimit::default(),
        file: path,
    });
    spawn_catalogue(ctx.clone(), Arc::downgrade(&cred), account);
    cred
}

/// Fetches the account's models and quota now and every [`CATALOGUE_EVERY`], for as long as the credential
/// lives; stops when it needs a new login.
fn spawn_catalogue(ctx: Arc<Ctx>, cred: Weak<Credential>, account: Arc<Account>) {
    let account = Arc::downgrade(&account);
    let rt = ctx.runtime.clone();
    rt.spawn(
        async move {
            loop {
                let (Some(c), Some(a)) = (cred.upgrade(), account.upgrade()) else { return };
                let ok = refresh_catalogue(&ctx, &c, &a).await;
                if matches!(c.token.state(), CredentialState::NeedsLogin(_)) {
                    return;
                }
                drop((c, a));
                ctx.runtime.sleep(if ok { CATALOGUE_EVERY } else { CATALOGUE_RETRY }).await;
            }
        }
        .boxed(),
    );
}

/// One round: `/models` with the Copilot token, `copilot_internal/user` with the GitHub token. Returns whether
/// the model list was fetched.
async fn refresh_catalogue(ctx: &Ctx, cred: &Credential, account: &Account) -> bool {
    let models = async {
        let access = cred.token.access(ctx, false).await?;
        let base = cred.base_url.as_deref().or(access.base_url.as_deref()).unwrap_or(DEFAULT_API_BASE_URL);
        let b = api_headers(http::Request::get(join_url(base, "/models")), access.token.expose())
            .header(http::header::ACCEPT, "application/json");
        let req = with_proxy(b, cred.proxy_url.as_ref())
            .body(Bytes::new())
            .map_err(|e| Error::config(format!("cannot build Copilot request: {e}")))?;
        let (status, headers, body) = send(ctx, req).await?;
        cred.account.observe_response(&headers, ctx.runtime.now());
        if status != 200 {
            return Err(Error::upstream(Some(status), format!("Copilot /models failed: {}", snippet(&body))));
        }
        parse_models(&body)
    };
    let ok = match models.await {
        Ok(list) => {
            tracing::info!(credential = %account.id, models = list.len(), "GitHub Copilot models fetched");
            *lock(&account.models) = Some(list);
            true
        }
        Err(e) => {
            tracing::warn!(credential = %account.id, error = %e, "cannot fetch GitHub Copilot models");
            false
        }
    };
    let url = join_url(&account.github_api, "/copilot_internal/user");
    if let Ok(req) = github_get(&url, &account.github_token, account.proxy_url.as_ref()) {
        match send(ctx, req).await {
            Ok((200, _, body)) => match serde_json::from_slice::<Value>(&body) {
                Ok(v) => lock(&account.quota).observe_user(&v, ctx.runtime.now()),
                Err(e) => tracing::debug!(credential = %account.id, "unreadable Copilot quota answer: {e}"),
            },
            Ok((s, _, _)) => tracing::debug!(credential = %account.id, status = s, "Copilot quota unavailable"),
            Err(e) => tracing::debug!(credential = %account.id, error = %e, "Copilot quota unavailable"),
        }
    }
    ok
}

/// The loader of `github-copilot` auth files.
pub fn load_auth_file(ctx: &Arc<Ctx>, path: &Path, value: &Value) -> Result<Arc<Credential>> {
    let token = value
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::config(format!("{}: `access_token` is missing", path.display())))?;
    Ok(credential(ctx, &file_stem(path), Secret::new(token), value, Some(path.to_path_buf())))
}

/// `github-copilot-{user}` with characters unsafe in file names replaced.
fn stem_for(user: &str) -> String {
    let clean: String = user
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '-' })
        .collect();
    format!("{FILE_TYPE}-{clean}")
}

/// The auth file of an account, in the Go original's shape.
fn account_file(user: &str, name: Option<&str>, email: Option<&str>, token: &str, scope: &str, now_ms: u128) -> Value {
    json!({
        "type": FILE_TYPE,
        "username": user,
        "email": email.unwrap_or_default(),
        "name": name.unwrap_or_default(),
        "access_token": token,
        "token_type": "bearer",
        "scope": scope,
        "timestamp": now_ms as u64,
    })
}

fn unix_ms(ctx: &Ctx) -> u128 {
    ctx.runtime.now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis()
}

// ---------------------------------------------------------------------------------------------------------------
// Device login

/// `cliproxy-server login copilot`: GitHub's device authorization grant.
pub struct CopilotLogin;

pub fn login_provider() -> Box<dyn LoginProvider> {
    Box::new(CopilotLogin)
}

/// GitHub's OAuth endpoints for the device authorization grant (RFC 8628), as an `oauth2` client. The client id
/// goes in the request body: the editor plugins' OAuth app has no secret.
fn github_client(ctx: &Ctx) -> Result<GithubClient> {
    let gh = &ctx.config.github_copilot;
    let url = |path: &str| join_url(&gh.github_base_url, path);
    let bad = |e: oauth2::url::ParseError| Error::config(format!("github-copilot.github-base-url is not a URL: {e}"));
    Ok(oauth2::basic::BasicClient::new(oauth2::ClientId::new(CLIENT_ID.to_owned()))
        .set_auth_type(oauth2::AuthType::RequestBody)
        .set_device_authorization_url(oauth2::DeviceAuthorizationUrl::new(url("/login/device/code")).map_err(bad)?)
        .set_token_uri(oauth2::TokenUrl::new(url("/login/oauth/access_token")).map_err(bad)?))
}

type GithubClient = oauth2::basic::BasicClient<
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

impl LoginProvider for CopilotLogin {
    fn start(&self, ctx: Arc<Ctx>, _options: Value) -> BoxFuture<'static, Result<DeviceLogin>> {
        async move {
            let client = github_client(&ctx)?;
            let http = super::fetch::OAuthHttp::new(&ctx, ctx.config.proxy_url.clone(), "GitHub");
            let details: oauth2::StandardDeviceAuthorizationResponse = client
                .exchange_device_code()
                .add_scope(oauth2::Scope::new("read:user".to_owned()))
                .request_async(&http)
                .await
                .map_err(|e| grant_error("GitHub refused to start the device login", e))?;
            Ok(DeviceLogin {
                verification_uri: details.verification_uri().to_string(),
                verification_uri_complete: details.verification_uri_complete().map(|u| u.secret().clone()),
                user_code: details.user_code().secret().clone(),
                expires_in: details.expires_in().as_secs(),
                redirect: None,
                poll: poll_device(ctx.clone(), details).boxed(),
            })
        }
        .boxed()
    }
}

fn login_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Authentication, message)
}

/// A failed OAuth exchange as an error that says what GitHub answered (never a token: GitHub does not echo them).
fn grant_error<T: oauth2::ErrorResponse + 'static>(what: &str, e: oauth2::RequestTokenError<Error, T>) -> Error {
    match e {
        oauth2::RequestTokenError::Request(e) => e,
        oauth2::RequestTokenError::ServerResponse(r) => login_error(format!("{what}: {r}")),
        oauth2::RequestTokenError::Parse(e, body) => {
            Error::upstream(None, format!("{what}: unreadable answer ({e}): {}", snippet(&body)))
        }
        oauth2::RequestTokenError::Other(m) => Error::upstream(None, format!("{what}: {m}")),
    }
}

/// Polls until the user approved, at the interval GitHub asks for (RFC 8628: five seconds more after each
/// `slow_down`); then stores the account.
async fn poll_device(ctx: Arc<Ctx>, details: oauth2::StandardDeviceAuthorizationResponse) -> Result<Arc<Credential>> {
    use oauth2::DeviceCodeErrorResponseType as Code;
    use oauth2::TokenResponse;
    let client = github_client(&ctx)?;
    let http = super::fetch::OAuthHttp::new(&ctx, ctx.config.proxy_url.clone(), "GitHub");
    let runtime = ctx.runtime.clone();
    let answer = client
        .exchange_device_access_token(&details)
        .set_time_fn(super::fetch::oauth_clock(&ctx))
        .request_async(&http, move |d| runtime.sleep(d.max(MIN_POLL)), None)
        .await
        .map_err(|e| match e {
            oauth2::RequestTokenError::ServerResponse(r) if *r.error() == Code::ExpiredToken => {
                login_error("the GitHub login code expired before it was approved; run the login again")
            }
            oauth2::RequestTokenError::ServerResponse(r) if *r.error() == Code::AccessDenied => {
                login_error("the GitHub login was denied (access_denied)")
            }
            e => grant_error("GitHub refused the login", e),
        })?;
    let scope = answer.scopes().map(|s| s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")).unwrap_or_default();
    let token = Secret::new(answer.access_token().secret().clone());
    let gh = &ctx.config.github_copilot;
    let user_url = join_url(&gh.github_api_base_url, "/user");
    let (status, _, body) = send(&ctx, github_get(&user_url, &token, ctx.config.proxy_url.as_ref())?).await?;
    let user: Value = serde_json::from_slice(&body).unwrap_or_default();
    let login = user.get("login").and_then(Value::as_str).filter(|l| !l.is_empty()).ok_or_else(|| {
        Error::upstream(Some(status), format!("GitHub did not say who logged in ({status}): {}", snippet(&body)))
    })?;
    let text = |k: &str| user.get(k).and_then(Value::as_str);
    let file = account_file(login, text("name"), text("email"), token.expose(), &scope, unix_ms(&ctx));
    let stem = stem_for(login);
    let path = auth_dir(&ctx.config).join(format!("{stem}.json"));
    write_json_atomic(&path, &file)?;
    tracing::info!(file = %path.display(), user = login, "GitHub Copilot account stored");
    Ok(credential(&ctx, &stem, token, &file, Some(path)))
}

// ---------------------------------------------------------------------------------------------------------------
// Editor plugins' credentials

/// One account an editor plugin keeps.
struct EditorAccount {
    file: PathBuf,
    user: String,
    token: Secret,
}

/// Where GitHub's editor plugins keep `apps.json` / `hosts.json`: `$XDG_CONFIG_HOME/github-copilot`, else
/// `~/.config/github-copilot` (also on macOS), and `%LOCALAPPDATA%\github-copilot` on Windows.
fn editor_dir() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(x) = env("XDG_CONFIG_HOME") {
        return Some(x.join("github-copilot"));
    }
    if cfg!(windows)
        && let Some(l) = env("LOCALAPPDATA")
    {
        return Some(l.join("github-copilot"));
    }
    env("HOME").map(|h| h.join(".config").join("github-copilot"))
}

/// Accounts in `apps.json` (`{"github.com:<app id>": {"user", "oauth_token", "githubAppId"}}`) and the older
/// `hosts.json` (`{"github.com": {"user", "oauth_token"}}`), each token once.
fn editor_accounts() -> Vec<EditorAccount> {
    let Some(dir) = editor_dir() else { return Vec::new() };
    let mut out: Vec<EditorAccount> = Vec::new();
    for name in ["apps.json", "hosts.json"] {
        let file = dir.join(name);
        let Ok(text) = std::fs::read(&file) else { continue };
        let Ok(Value::Object(entries)) = serde_json::from_slice::<Value>(&text) else {
            tracing::warn!(file = %file.display(), "not a JSON object; skipped");
            continue;
        };
        for (key, v) in entries {
            let Some(token) = v.get("oauth_token").and_then(Value::as_str).filter(|t| !t.is_empty()) else { continue };
            if out.iter().any(|a| a.token.expose() == token) {
                continue;
            }
            let host = key.split(':').next().unwrap_or_default();
            let user = v.get("user").and_then(Value::as_str).filter(|u| !u.is_empty()).map_or_else(
                || if host == "github.com" { "editor".to_owned() } else { format!("editor-{host}") },
                str::to_owned,
            );
            out.push(EditorAccount { file: file.clone(), user, token: Secret::new(token) });
        }
    }
    out
}

/// `cliproxy-server import copilot`: copies the editor plugins' accounts into the auth-dir.
pub fn import(ctx: &Arc<Ctx>) -> Result<Vec<PathBuf>> {
    let accounts = editor_accounts();
    if accounts.is_empty() {
        let dir = editor_dir().map_or_else(|| "$HOME/.config/github-copilot".to_owned(), |d| d.display().to_string());
        return Err(Error::config(format!(
            "no GitHub Copilot editor credentials found in {dir} (apps.json or hosts.json); sign in to Copilot in your editor, or run `cliproxy-server login copilot`"
        )));
    }
    let dir = auth_dir(&ctx.config);
    let mut written = Vec::new();
    for a in accounts {
        let path = dir.join(format!("{}.json", stem_for(&a.user)));
        let mut file = account_file(&a.user, None, None, a.token.expose(), "", unix_ms(ctx));
        file["source"] = a.file.display().to_string().into();
        write_json_atomic(&path, &file)?;
        tracing::info!(from = %a.file.display(), to = %path.display(), "imported GitHub Copilot editor credential");
        written.push(path);
    }
    Ok(written)
}

/// Startup discovery: editor accounts not already in the auth-dir are used in place, at priority -1: an account
/// borrowed from another tool only serves when no configured or logged-in account does (importing it makes it a
/// regular account).
pub fn discover(ctx: &Arc<Ctx>) -> Vec<Arc<Credential>> {
    let dir = auth_dir(&ctx.config);
    editor_accounts()
        .into_iter()
        .filter_map(|a| {
            let stem = stem_for(&a.user);
            if dir.join(format!("{stem}.json")).exists() {
                return None;
            }
            let cred = credential(ctx, &stem, a.token, &json!({"priority": -1}), None);
            tracing::info!(credential = %cred.id, file = %a.file.display(), "using GitHub Copilot editor credential");
            Some(cred)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::TokenSource;
    use crate::auth::refresh::{RefreshingToken, Token};
    use crate::test_support::{Canned, FakeRuntime, ScriptedTransport};
    use crate::transport::Runtime;
    use futures::executor::block_on;

    fn setup() -> (Arc<RefreshingToken>, Ctx, Arc<ScriptedTransport>, Arc<FakeRuntime>) {
        let rt = Arc::new(FakeRuntime::new());
        let transport = Arc::new(ScriptedTransport::default());
        let account = Arc::new(Account {
            id: "copilot:t".into(),
            github_token: Secret::new("gho_test"),
            github_api: "https://ghe.test/api/v3".into(),
            proxy_url: None,
            models: Models::default(),
            quota: Mutex::new(Default::default()),
        });
        let exchange = Exchange::new(account);
        let tok: Option<Token> = None;
        let token = Arc::new(RefreshingToken::new("copilot:t", Box::new(exchange), tok, Duration::from_secs(300)));
        let ctx = Ctx { transport: transport.clone(), runtime: rt.clone(), config: Default::default() };
        (token, ctx, transport, rt)
    }

    fn envelope(rt: &FakeRuntime, n: u32, lifetime: u64, refresh_in: u64) -> Canned {
        let exp = rt.now().duration_since(std::time::SystemTime::UNIX_EPOCH).unwrap().as_secs() + lifetime;
        Canned::json(
            200,
            &format!(
                r#"{{"token":"tid=1;exp={exp};chat=1:sig{n}","expires_at":{exp},"refresh_in":{refresh_in},"endpoints":{{"api":"https://api.business.githubcopilot.com"}}}}"#
            ),
        )
    }

    #[test]
    fn copilot_token_is_replaced_when_refresh_in_says_not_before() {
        let (token, ctx, transport, rt) = setup();
        transport.push(envelope(&rt, 1, 1800, 1500));
        let a = block_on(token.access(&ctx, false)).unwrap();
        assert!(a.token.expose().ends_with("sig1"));
        assert_eq!(a.base_url.as_deref(), Some("https://api.business.githubcopilot.com"));
        {
            let sent = transport.requests.lock().unwrap();
            assert_eq!(sent[0].uri(), "https://ghe.test/api/v3/copilot_internal/v2/token");
            assert_eq!(sent[0].headers()["authorization"], "token gho_test");
            assert!(sent[0].headers().contains_key("editor-version"));
        }

        rt.advance(Duration::from_secs(1490));
        assert!(block_on(token.access(&ctx, false)).unwrap().token.expose().ends_with("sig1"));
        assert_eq!(transport.requests.lock().unwrap().len(), 1, "still within refresh_in");
        rt.advance(Duration::from_secs(20));
        transport.push(envelope(&rt, 2, 1800, 1500));
        assert!(block_on(token.access(&ctx, false)).unwrap().token.expose().ends_with("sig2"));
        assert_eq!(transport.requests.lock().unwrap().len(), 2, "replaced once refresh_in passed, before expiry");
    }

    #[test]
    fn a_token_living_seconds_is_replaced_even_right_after_a_refresh() {
        let (token, ctx, transport, rt) = setup();
        transport.push(envelope(&rt, 1, 2, 1));
        block_on(token.access(&ctx, false)).unwrap();
        rt.advance(Duration::from_secs(3));
        transport.push(envelope(&rt, 2, 2, 1));
        assert!(block_on(token.access(&ctx, false)).unwrap().token.expose().ends_with("sig2"));
    }

    #[test]
    fn revoked_github_token_needs_login_and_rate_limits_do_not() {
        let (token, ctx, transport, _) = setup();
        transport.push(Canned::json(403, r#"{"message":"API rate limit exceeded for user ID 1.","status":"403"}"#));
        assert!(block_on(token.access(&ctx, false)).is_err());
        assert_eq!(token.state(), CredentialState::Ready);
        transport.push(Canned::json(401, r#"{"message":"Bad credentials","status":"401"}"#));
        let e = block_on(token.access(&ctx, true)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Authentication);
        assert!(matches!(token.state(), CredentialState::NeedsLogin(r) if r.contains("login copilot")));
    }
}
