//! Claude subscription accounts (Pro, Max), through Claude Code's OAuth client: the authorization-code login
//! ([`login`]), the auth-dir files of the Go original and Claude Code's own credentials ([`files`]), the refresh
//! grant with rotating refresh tokens, and the subscription's rate-limit windows each answer reports.
//!
//! Anthropic's token endpoint takes a JSON body, which the `oauth2` crate cannot send (it posts forms), so both
//! grants are posted by hand over [`crate::auth::fetch::send`]; `oauth2` builds the authorize URL and the PKCE
//! pair.

pub mod files;
pub mod login;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use self::files::{FILE_TYPE, Record, TokenFile};
use super::refresh::{RefreshError, Refresher, RefreshingToken, Token};
use super::store::{FileOptions, auth_dir, file_stem, read_auth_files, write_json_atomic};
use super::{AccountState, AccountType, Credential, Ctx};
use crate::config::{RateLimit, Secret};
use crate::error::{Error, ErrorKind, Result};
use crate::providers::claude::{Claude, OAUTH_BETA, Window, unified_windows};
use crate::timefmt::{format_rfc3339, parse_retry_after};
use crate::transport::UpstreamProxy;

pub const ACCOUNT_TYPE: AccountType = AccountType {
    file_type: Some(FILE_TYPE),
    load_file: Some(load_auth_file),
    login: Some(login::make),
    import: Some(import),
    discover: Some(discover),
    ..AccountType::named("claude")
};

/// Claude Code's public OAuth client.
pub const CLIENT_ID: &str = "9d1c250a-e61b-44d9-88ed-5944d1962f5e";

/// Refresh this long before the access token expires (the Go original's lead; tokens live eight hours).
pub const REFRESH_LEAD: Duration = Duration::from_secs(4 * 3600);

/// The id of the account Claude Code's own credentials give, when used in place.
pub const CLAUDE_CODE_ID: &str = "claude:claude-code";

/// What a subscription's answers taught: the state of each rate-limit window.
pub(crate) struct Account {
    windows: Mutex<BTreeMap<String, Window>>,
}

impl Account {
    fn new() -> Account {
        Account { windows: Mutex::new(BTreeMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Window>> {
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl AccountState for Account {
    /// Every answer (success or error) reports the windows; the latest report of each window is kept.
    fn observe_response(&self, headers: &http::HeaderMap, _now: SystemTime) {
        let seen = unified_windows(headers);
        if !seen.is_empty() {
            let mut windows = self.lock();
            for w in seen {
                windows.insert(w.name.clone(), w);
            }
        }
    }

    /// `{"windows": {"5h": {"status", "resets_at", "utilization"}, "7d": …, "unified": …}}`.
    fn quota(&self) -> Option<Value> {
        let windows = self.lock();
        if windows.is_empty() {
            return None;
        }
        let each = windows.values().map(|w| {
            let v = json!({
                "status": w.status_text,
                "resets_at": w.reset.map(format_rfc3339),
                "utilization": w.utilization,
            });
            (w.name.clone(), v)
        });
        Some(json!({"windows": Value::Object(each.collect())}))
    }
}

/// One token-endpoint answer (both grants): `{"access_token","refresh_token","expires_in","account":{…}}`.
struct Granted {
    access: Secret,
    refresh: Option<Secret>,
    expires_in: Option<u64>,
    email: Option<String>,
}

/// Why a grant failed.
enum GrantFailure {
    /// The endpoint refused the code or refresh token (`invalid_grant`): only a new login helps. The text is the
    /// endpoint's description.
    Refused(String),
    Other(Error),
}

/// The endpoint's own words for an error answer, never a token (OAuth errors do not echo them).
fn error_text(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    s("error_description")
        .or_else(|| s("error"))
        .or_else(|| v.pointer("/error/message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
}

/// Posts one grant (`body`) to the token endpoint as JSON.
async fn grant(ctx: &Ctx, proxy: Option<&str>, body: Value) -> std::result::Result<Granted, GrantFailure> {
    let url = &ctx.config.claude_endpoints.token_url;
    let mut b = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json");
    if let Some(p) = proxy {
        b = b.extension(UpstreamProxy(p.to_owned()));
    }
    let req = b
        .body(Bytes::from(body.to_string()))
        .map_err(|e| GrantFailure::Other(Error::config(format!("claude-endpoints.token-url `{url}`: {e}"))))?;
    let answer = super::fetch::send(ctx, req, "Claude's token endpoint").await.map_err(GrantFailure::Other)?;
    let status = answer.status;
    let v: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    if status == 200
        && let Some(access) = v.get("access_token").and_then(Value::as_str).filter(|a| !a.is_empty())
    {
        let text = |p: &str| v.pointer(p).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
        return Ok(Granted {
            access: Secret::new(access),
            refresh: text("/refresh_token").map(Secret::new),
            expires_in: v.get("expires_in").and_then(Value::as_u64),
            email: text("/account/email_address"),
        });
    }
    let said = error_text(&answer.body);
    if matches!(status, 400 | 401) && v.get("error").and_then(Value::as_str) == Some("invalid_grant") {
        return Err(GrantFailure::Refused(said));
    }
    let mut e =
        Error::new(ErrorKind::from_status(status), format!("Claude's token endpoint answered {status}: {said}"))
            .with_status(status);
    if let Some(wait) = parse_retry_after(&answer.headers, ctx.runtime.now()) {
        e = e.with_retry_after(wait);
    }
    Err(GrantFailure::Other(e))
}

/// The email of the account a token belongs to, from the profile endpoint (for token answers without one).
async fn profile_email(ctx: &Ctx, access: &Secret, proxy: Option<&str>) -> Result<String> {
    let url = crate::providers::join_url(&ctx.config.claude_endpoints.api_base_url, "/api/oauth/profile");
    let mut b = http::Request::get(&url)
        .header(http::header::AUTHORIZATION, format!("Bearer {}", access.expose()))
        .header("anthropic-beta", OAUTH_BETA)
        .header(http::header::ACCEPT, "application/json");
    if let Some(p) = proxy {
        b = b.extension(UpstreamProxy(p.to_owned()));
    }
    let req = b.body(Bytes::new()).map_err(|e| Error::config(format!("claude-endpoints.api-base-url: {e}")))?;
    let answer = super::fetch::send(ctx, req, "Claude's profile endpoint").await?;
    let v: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
    v.pointer("/account/email").and_then(Value::as_str).filter(|e| !e.is_empty()).map(str::to_owned).ok_or_else(|| {
        Error::upstream(
            Some(answer.status),
            format!("Claude's profile did not name the account: {}", error_text(&answer.body)),
        )
    })
}

/// Refreshes one account, with its file as the truth about its tokens.
struct ClaudeRefresher {
    id: String,
    file: TokenFile,
    proxy: Option<String>,
    record: Mutex<Record>,
}

impl ClaudeRefresher {
    fn snapshot(&self) -> Record {
        self.record.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn keep(&self, rec: Record) {
        *self.record.lock().unwrap_or_else(|p| p.into_inner()) = rec;
    }
}

impl Refresher for ClaudeRefresher {
    fn refresh<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, std::result::Result<Token, RefreshError>> {
        async move {
            let mut rec = self.snapshot();
            let now = ctx.runtime.now();
            // Someone else may have refreshed since the file was read: Claude Code rotates the refresh token of
            // its own file, and a second proxy may share the auth-dir. A used refresh token is refused for good,
            // so the file's is the one to use, and its access token as is while it is fresh.
            if let Ok(disk) = self.file.read() {
                if disk.refresh.is_some() {
                    rec.refresh = disk.refresh.clone();
                }
                if let (Some(access), Some(exp)) = (&disk.access, disk.expires_at)
                    && Some(access) != rec.access.as_ref()
                    && exp > now + REFRESH_LEAD
                {
                    tracing::info!(credential = %self.id, file = %self.file.path().display(), "using the token another program refreshed");
                    rec.access = Some(access.clone());
                    rec.expires_at = Some(exp);
                    let token = Token { access: access.clone(), expires_at: Some(exp), base_url: None };
                    self.keep(rec);
                    return Ok(token);
                }
            }
            let Some(refresh) = rec.refresh.clone() else {
                return Err(RefreshError::NeedsLogin(
                    "needs login: the account has no refresh token; run `cliproxy-server login claude`".into(),
                ));
            };
            let body = json!({"grant_type": "refresh_token", "refresh_token": refresh.expose(), "client_id": CLIENT_ID});
            let granted = grant(ctx, self.proxy.as_deref(), body).await.map_err(|f| match f {
                GrantFailure::Refused(said) => RefreshError::NeedsLogin(format!(
                    "needs login: Claude refused the refresh token ({said}); run `cliproxy-server login claude`"
                )),
                GrantFailure::Other(e) => RefreshError::Transient(e),
            })?;
            let expires_at = now + Duration::from_secs(granted.expires_in.unwrap_or(3600));
            rec.access = Some(granted.access.clone());
            rec.refresh = granted.refresh.or(rec.refresh);
            rec.expires_at = Some(expires_at);
            rec.email = granted.email.or(rec.email);
            if let Err(e) = self.file.write(&rec, now) {
                tracing::warn!(credential = %self.id, error = %e, "could not write the refreshed Claude tokens back");
            }
            self.keep(rec);
            Ok(Token { access: granted.access, expires_at: Some(expires_at), base_url: None })
        }
        .boxed()
    }
}

/// Builds a subscription credential over its token file and starts refreshing it ahead of expiry.
fn credential(ctx: &Arc<Ctx>, id: String, file: TokenFile, rec: Record, opts: FileOptions) -> Arc<Credential> {
    let proxy_url = opts.proxy_url.filter(|p| !p.is_empty()).or_else(|| ctx.config.proxy_url.clone());
    let initial = rec.access.clone().map(|access| Token { access, expires_at: rec.expires_at, base_url: None });
    let refresher =
        ClaudeRefresher { id: id.clone(), file: file.clone(), proxy: proxy_url.clone(), record: Mutex::new(rec) };
    let token = Arc::new(RefreshingToken::new(id.clone(), Box::new(refresher), initial, REFRESH_LEAD));
    token.spawn_background(ctx.clone());
    Arc::new(Credential {
        id,
        provider: Arc::new(Claude::oauth()),
        account: Arc::new(Account::new()),
        token,
        base_url: Some(ctx.config.claude_endpoints.api_base_url.clone()),
        prefix: opts.prefix.filter(|p| !p.is_empty()),
        priority: opts.priority,
        headers: Vec::new(),
        proxy_url,
        models: Vec::new(),
        excluded_models: opts.excluded_models,
        rate_limit: RateLimit::default(),
        // Only auth-dir files are the account's own: removing an account must never delete Claude Code's file.
        file: match file {
            TokenFile::AuthDir(p) => Some(p),
            TokenFile::ClaudeCode(_) => None,
        },
    })
}

/// The loader of `claude` auth files (the Go original's, and those `login claude` and `import claude` write).
pub fn load_auth_file(ctx: &Arc<Ctx>, path: &Path, value: &Value) -> Result<Arc<Credential>> {
    let rec = Record::from_go(value);
    if rec.access.is_none() && rec.refresh.is_none() {
        return Err(Error::config(format!("{}: neither `access_token` nor `refresh_token` is set", path.display())));
    }
    let id = format!("claude:{}", file_stem(path));
    Ok(credential(ctx, id, TokenFile::AuthDir(path.to_path_buf()), rec, FileOptions::of(value)))
}

/// Stores a new account in the auth-dir as `claude-<email>.json` (replacing an earlier login of the same
/// account) and builds its credential.
fn store_account(ctx: &Arc<Ctx>, rec: Record, extra: Value) -> Result<Arc<Credential>> {
    let email = rec.email.clone().unwrap_or_else(|| "imported".to_owned());
    let path = auth_dir(&ctx.config).join(format!("{}.json", files::stem_for(&email)));
    let mut base = match extra {
        Value::Object(m) => m,
        _ => Default::default(),
    };
    base.remove("type");
    let value = files::go_file(base, &rec, ctx.runtime.now());
    write_json_atomic(&path, &value)?;
    tracing::info!(file = %path.display(), "Claude account stored");
    load_auth_file(ctx, &path, &value)
}

/// `cliproxy-server import claude`: copies Claude Code's login into the auth-dir as an account of its own. Its
/// tokens are not refreshed here: the copy rotates them on first use, after which Claude Code's file and the
/// copy are independent logins of the same account.
pub fn import(ctx: &Arc<Ctx>) -> Result<Vec<PathBuf>> {
    let Some((source, rec)) = files::claude_code_login() else {
        let at = files::claude_code_credentials()
            .map_or_else(|| "$HOME/.claude/.credentials.json".to_owned(), |p| p.display().to_string());
        return Err(Error::config(format!(
            "no Claude Code login found in {at}; sign in with `claude` first, or run `cliproxy-server login claude`"
        )));
    };
    let cred = store_account(ctx, rec, json!({"source": source.display().to_string()}))?;
    let path = cred.file.clone().expect("auth-dir accounts have a file");
    tracing::info!(from = %source.display(), to = %path.display(), "imported Claude Code's login");
    Ok(vec![path])
}

/// Startup discovery: Claude Code's login is used in place (refreshed tokens go back into its file, in its
/// format), at priority -1 so it serves only when no account of the proxy's own does, unless it was imported
/// (then the copy serves, and two users of one refresh token would spoil it for each other).
pub fn discover(ctx: &Arc<Ctx>) -> Vec<Arc<Credential>> {
    let Some((path, rec)) = files::claude_code_login() else { return Vec::new() };
    let source = path.display().to_string();
    let imported = read_auth_files(&auth_dir(&ctx.config)).iter().any(|(_, v)| {
        v.get("type").and_then(Value::as_str) == Some(FILE_TYPE)
            && v.get("source").and_then(Value::as_str) == Some(&source)
    });
    if imported {
        return Vec::new();
    }
    tracing::info!(credential = CLAUDE_CODE_ID, file = %path.display(), "using Claude Code's login in place");
    let opts = FileOptions { priority: -1, ..FileOptions::default() };
    vec![credential(ctx, CLAUDE_CODE_ID.to_owned(), TokenFile::ClaudeCode(path), rec, opts)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{CredentialState, TokenSource};
    use crate::test_support::{Canned, FakeRuntime, ScriptedTransport};
    use crate::transport::Runtime;
    use futures::executor::block_on;

    struct Setup {
        token: Arc<RefreshingToken>,
        ctx: Ctx,
        transport: Arc<ScriptedTransport>,
        rt: Arc<FakeRuntime>,
        file: PathBuf,
        _dir: tempfile::TempDir,
    }

    /// A Claude Code file whose access token expires in `left` seconds, and a refreshing token over it.
    fn setup(left: u64) -> Setup {
        let rt = Arc::new(FakeRuntime::new());
        let transport = Arc::new(ScriptedTransport::default());
        let mut config = crate::config::Config::default();
        config.claude_endpoints.token_url = "http://idp.test/v1/oauth/token".into();
        let ctx = Ctx { transport: transport.clone(), runtime: rt.clone(), config: Arc::new(config) };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(".credentials.json");
        let exp =
            (rt.now() + Duration::from_secs(left)).duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
        let v = json!({"claudeAiOauth": {"accessToken": "at-0", "refreshToken": "rt-0", "expiresAt": exp, "subscriptionType": "pro"}});
        std::fs::write(&file, v.to_string()).unwrap();
        let rec = Record::from_claude_code(&v).unwrap();
        let initial = rec.access.clone().map(|access| Token { access, expires_at: rec.expires_at, base_url: None });
        let refresher = ClaudeRefresher {
            id: "claude:t".into(),
            file: TokenFile::ClaudeCode(file.clone()),
            proxy: None,
            record: Mutex::new(rec),
        };
        let token = Arc::new(RefreshingToken::new("claude:t", Box::new(refresher), initial, REFRESH_LEAD));
        Setup { token, ctx, transport, rt, file, _dir: dir }
    }

    fn granted(n: u32) -> Canned {
        Canned::json(
            200,
            &format!(
                r#"{{"access_token":"at-{n}","refresh_token":"rt-{n}","token_type":"Bearer","expires_in":28800,"account":{{"uuid":"u","email_address":"a@example.com"}}}}"#
            ),
        )
    }

    fn on_disk(file: &Path) -> Value {
        serde_json::from_slice::<Value>(&std::fs::read(file).unwrap()).unwrap()["claudeAiOauth"].clone()
    }

    #[test]
    fn refreshes_inside_the_lead_with_json_and_writes_the_rotated_tokens_back() {
        let s = setup(3 * 3600);
        s.transport.push(granted(1));
        let a = block_on(s.token.access(&s.ctx, false)).unwrap();
        assert_eq!(a.token.expose(), "at-1");
        let sent = s.transport.requests.lock().unwrap();
        assert_eq!(sent[0].uri(), "http://idp.test/v1/oauth/token");
        assert_eq!(sent[0].headers()["content-type"], "application/json");
        let body: Value = serde_json::from_slice(sent[0].body()).unwrap();
        assert_eq!(body, json!({"grant_type": "refresh_token", "refresh_token": "rt-0", "client_id": CLIENT_ID}));
        let disk = on_disk(&s.file);
        assert_eq!((disk["accessToken"].as_str(), disk["refreshToken"].as_str()), (Some("at-1"), Some("rt-1")));
        let exp = (s.rt.now() + Duration::from_secs(28_800)).duration_since(SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(disk["expiresAt"].as_u64(), Some(exp.as_millis() as u64));
        assert_eq!(disk["subscriptionType"], "pro");
    }

    #[test]
    fn a_token_outside_the_lead_is_used_as_is() {
        let s = setup(5 * 3600);
        assert_eq!(block_on(s.token.access(&s.ctx, false)).unwrap().token.expose(), "at-0");
        assert!(s.transport.requests.lock().unwrap().is_empty());
    }

    #[test]
    fn the_file_is_reread_before_a_refresh() {
        let s = setup(60);
        // Claude Code refreshed meanwhile: its new access token is used without a grant.
        let exp =
            (s.rt.now() + Duration::from_secs(8 * 3600)).duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis()
                as u64;
        let v = json!({"claudeAiOauth": {"accessToken": "at-cc", "refreshToken": "rt-cc", "expiresAt": exp}});
        std::fs::write(&s.file, v.to_string()).unwrap();
        assert_eq!(block_on(s.token.access(&s.ctx, false)).unwrap().token.expose(), "at-cc");
        assert!(s.transport.requests.lock().unwrap().is_empty());
        // Forced (the upstream refused it): the file's rotated refresh token is the one sent.
        s.rt.advance(Duration::from_secs(10));
        s.transport.push(granted(2));
        assert_eq!(block_on(s.token.access(&s.ctx, true)).unwrap().token.expose(), "at-2");
        let body: Value = serde_json::from_slice(s.transport.requests.lock().unwrap()[0].body()).unwrap();
        assert_eq!(body["refresh_token"], "rt-cc");
    }

    #[test]
    fn a_refused_refresh_token_needs_login_and_a_rate_limit_does_not() {
        let s = setup(0);
        let mut limited = Canned::json(429, r#"{"error":"rate_limit_exceeded","error_description":"slow down"}"#);
        limited.headers.push(("retry-after", "42".into()));
        s.transport.push(limited);
        let e = block_on(s.token.access(&s.ctx, false)).unwrap_err();
        assert_eq!((e.kind(), e.retry_after()), (ErrorKind::RateLimited, Some(Duration::from_secs(42))));
        assert_eq!(s.token.state(), CredentialState::Ready);
        s.rt.advance(Duration::from_secs(10));
        s.transport.push(Canned::json(
            400,
            r#"{"error":"invalid_grant","error_description":"Refresh token not found or invalid."}"#,
        ));
        let e = block_on(s.token.access(&s.ctx, false)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Authentication);
        assert!(
            matches!(s.token.state(), CredentialState::NeedsLogin(r) if r.starts_with("needs login") && r.contains("Refresh token not found"))
        );
    }

    #[test]
    fn windows_are_kept_per_account_and_listed() {
        let a = Account::new();
        assert!(a.quota().is_none());
        let h = |pairs: &[(&str, &str)]| -> http::HeaderMap {
            pairs
                .iter()
                .map(|(k, v)| (http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap()))
                .collect()
        };
        let now = SystemTime::UNIX_EPOCH;
        a.observe_response(
            &h(&[
                ("anthropic-ratelimit-unified-5h-status", "allowed"),
                ("anthropic-ratelimit-unified-5h-utilization", "0.5"),
                ("anthropic-ratelimit-unified-7d-status", "allowed"),
            ]),
            now,
        );
        a.observe_response(
            &h(&[
                ("anthropic-ratelimit-unified-5h-status", "rejected"),
                ("anthropic-ratelimit-unified-5h-reset", "1800000000"),
            ]),
            now,
        );
        a.observe_response(&h(&[("content-type", "application/json")]), now);
        let q = a.quota().unwrap();
        assert_eq!(
            q["windows"]["5h"],
            json!({"status": "rejected", "resets_at": "2027-01-15T08:00:00Z", "utilization": null})
        );
        assert_eq!(q["windows"]["7d"]["status"], "allowed");
    }
}
