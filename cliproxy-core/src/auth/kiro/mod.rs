//! Kiro accounts over time: the `kiro:` config entries, auth-dir files, the IDE's session (discovered and used in
//! place, or imported), pasted social refresh tokens, device logins ([`login`]), token refresh ([`tokens`]) and
//! the usage-limit checks that tell how much of the month's quota is left.

pub mod login;
pub mod tokens;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;

use self::tokens::{AuthMethod, KiroRefresher, Store, TokenRecord};
use super::refresh::{RefreshingToken, Token};
use super::{AccountState, AccountType, Credential, CredentialState, Ctx, TokenSource};
use crate::config::{ModelAlias, RateLimit, Secret};
use crate::error::{Error, Result};
use crate::providers::failure::Failure;
use crate::providers::kiro::fingerprint::{self, Fingerprint};
use crate::providers::kiro::usage::{self, UsageSnapshot};
use crate::providers::kiro::{Endpoints, KIRO_ID, Kiro, Profile, error_message};
use crate::providers::parse_headers;

pub const ACCOUNT_TYPE: AccountType = AccountType {
    file_type: Some(KIRO_ID),
    load_file: Some(load_auth_file),
    load_config: Some(load_config_entries),
    login: Some(login::make),
    import: Some(import_ide),
    discover: Some(discover_ide),
    add_token: Some(add_token),
    ..AccountType::named(KIRO_ID)
};

/// The live state of one Kiro account, shared by its wire value, refresher and usage checker.
pub struct Account {
    pub id: String,
    pub method: AuthMethod,
    pub profile: Arc<Profile>,
    pub proxy_url: Option<String>,
    usage: Mutex<Option<UsageSnapshot>>,
    /// Set by a monthly-limit answer: the account has nothing left until then.
    exhausted_until: Mutex<Option<SystemTime>>,
}

impl Account {
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

impl AccountState for Account {
    /// Accounts with known remaining quota first, unknown next, exhausted last.
    fn preference(&self, now: SystemTime) -> u8 {
        match self.usage() {
            _ if self.exhausted(now) => 0,
            Some(_) => 2,
            None => 1,
        }
    }

    /// A monthly-limit answer: the account waits until the quota resets, and remembers it is exhausted.
    fn observe_failure(&self, failure: &mut Failure, now: SystemTime) {
        if !failure.quota_exhausted {
            return;
        }
        let reset = self.next_reset(now);
        *self.exhausted_until.lock().unwrap_or_else(|p| p.into_inner()) = Some(reset);
        failure.wait_until_reset(Some(reset), now);
    }

    fn quota(&self) -> Option<Value> {
        let mut v = self.usage().map(|u| u.to_json())?;
        if let Some(t) = *self.exhausted_until.lock().unwrap_or_else(|p| p.into_inner()) {
            v["exhausted_until"] = crate::timefmt::format_rfc3339(t).into();
        }
        Some(v)
    }
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
    let profile = Profile::new(
        Endpoints(ctx.config.kiro_endpoints.clone()),
        fingerprint,
        rec.profile_arn.clone(),
        rec.api_region.clone(),
    );
    let account = Arc::new(Account {
        id: id.clone(),
        method: rec.method(),
        profile: Arc::new(profile),
        proxy_url,
        usage: Mutex::new(None),
        exhausted_until: Mutex::new(None),
    });
    let initial = rec.access_token.clone().map(|access| Token { access, expires_at: rec.expires_at, base_url: None });
    let refresher = KiroRefresher { account: account.clone(), record: Mutex::new(rec), store };
    let token = Arc::new(RefreshingToken::new(id, Box::new(refresher), initial, tokens::REFRESH_LEAD));
    (account, token)
}

/// The routing settings of a Kiro credential, from a config entry or an auth file.
#[derive(Default)]
struct Settings {
    prefix: Option<String>,
    priority: i32,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    proxy_url: Option<String>,
    models: Vec<ModelAlias>,
    excluded_models: Vec<String>,
    rate_limit: RateLimit,
}

/// Builds a credential and starts its background work (refresh ahead of expiry, usage checks).
fn credential(ctx: &Arc<Ctx>, id: String, rec: TokenRecord, store: Store, s: Settings) -> Arc<Credential> {
    let file = match &store {
        Store::AuthDir(p) => Some(p.clone()),
        Store::InPlace { .. } | Store::Memory => None,
    };
    let (account, token) = build(ctx, id.clone(), rec, store, s.proxy_url.clone());
    token.spawn_background(ctx.clone());
    spawn_usage_checker(ctx.clone(), Arc::downgrade(&account), Arc::downgrade(&token));
    Arc::new(Credential {
        id,
        provider: Arc::new(Kiro { profile: account.profile.clone() }),
        account,
        token,
        base_url: None,
        prefix: s.prefix,
        priority: s.priority,
        headers: s.headers,
        proxy_url: s.proxy_url,
        models: s.models,
        excluded_models: s.excluded_models,
        rate_limit: s.rate_limit,
        file,
    })
}

/// Looks up an account's usage limits (and email) with its current token.
pub async fn fetch_usage(ctx: &Ctx, account: &Account, token: &Secret) -> Result<UsageSnapshot> {
    let region = account.profile.api_region();
    let mut url = format!(
        "{}/getUsageLimits?isEmailRequired=true&origin=AI_EDITOR&resourceType=AGENTIC_REQUEST",
        account.profile.endpoints.api_base(&region)
    );
    if let Some(arn) = account.profile.profile_arn() {
        url.push_str("&profileArn=");
        url.extend(form_urlencoded::byte_serialize(arn.as_bytes()));
    }
    let mut b = http::Request::get(url).header(http::header::AUTHORIZATION, format!("Bearer {}", token.expose()));
    b = account.profile.fingerprint.apply(b, &fingerprint::invocation_id(), 1);
    if let Some(p) = &account.proxy_url {
        b = b.extension(crate::transport::UpstreamProxy(p.clone()));
    }
    let req = b.body(Bytes::new()).map_err(|e| Error::config(format!("cannot build usage request: {e}")))?;
    let (status, body) = tokens::send(ctx, req).await?;
    if !(200..300).contains(&status) {
        return Err(Error::upstream(Some(status), format!("getUsageLimits: {}", error_message(&body))));
    }
    usage::parse(&body, ctx.runtime.now())
        .ok_or_else(|| Error::upstream(Some(status), "getUsageLimits: unexpected answer"))
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
                let (v, rec) = tokens::read_token_file(&path).map_err(|err| Error::config(format!("{name}: {err}")))?;
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
        let settings = Settings {
            prefix: e.prefix.clone(),
            priority: e.priority,
            headers: parse_headers(&e.headers, &name)?,
            proxy_url: e.proxy_url.clone().or_else(|| ctx.config.proxy_url.clone()),
            models: e.models.clone(),
            excluded_models: e.excluded_models.clone(),
            rate_limit: e.rate_limit,
        };
        out.push(credential(ctx, format!("kiro:config-{i}"), rec, store, settings));
    }
    Ok(out)
}

/// Loads an auth-dir file of `type: "kiro"`.
pub fn load_auth_file(ctx: &Arc<Ctx>, path: &Path, v: &Value) -> Result<Arc<Credential>> {
    let sso_cache = tokens::home().map(|h| h.join(".aws/sso/cache"));
    let rec = TokenRecord::from_json(v, sso_cache.as_deref());
    if rec.access_token.is_none() && rec.refresh_token.is_none() {
        return Err(Error::config(format!("{} has neither access_token nor refresh_token", path.display())));
    }
    let id = format!("kiro:{}", super::store::file_stem(path));
    let settings = Settings {
        priority: v.get("priority").and_then(Value::as_i64).unwrap_or(0) as i32,
        prefix: v.get("prefix").and_then(Value::as_str).map(str::to_owned),
        proxy_url: v
            .get("proxy_url")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| ctx.config.proxy_url.clone()),
        excluded_models: v
            .get("excluded_models")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|m| m.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
        ..Settings::default()
    };
    Ok(credential(ctx, id, rec, Store::AuthDir(path.to_path_buf()), settings))
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
            account.profile.set_profile_arn(arn.clone());
            rec.profile_arn = Some(arn);
        }
        if rec.email.is_none()
            && let Ok(u) = fetch_usage(ctx, &account, &token).await
        {
            rec.email = u.email;
        }
    }
    let dir = super::store::auth_dir(&ctx.config);
    super::store::create_private_dir(&dir)?;
    let path = super::store::unique_path(&dir, &tokens::file_base(&rec));
    super::store::write_json_atomic(&path, &tokens::auth_file_json(&rec, ctx.runtime.now()))?;
    tracing::info!(file = %path.display(), method = rec.method().as_str(), "stored Kiro account");
    let v = serde_json::from_slice(&std::fs::read(&path).map_err(|e| Error::config(e.to_string()))?)
        .map_err(|e| Error::config(e.to_string()))?;
    load_auth_file(ctx, &path, &v)
}

/// `ListProfiles` on the codewhisperer host: the first profile's ARN.
async fn list_profiles(ctx: &Ctx, account: &Account, token: &Secret) -> Option<String> {
    let url = format!("{}/", account.profile.endpoints.fallback_api_base("us-east-1"));
    let mut b = http::Request::post(url)
        .header(http::header::AUTHORIZATION, format!("Bearer {}", token.expose()))
        .header(http::header::CONTENT_TYPE, "application/x-amz-json-1.0")
        .header("x-amz-target", "AmazonCodeWhispererService.ListProfiles");
    b = account.profile.fingerprint.apply(b, &fingerprint::invocation_id(), 1);
    let req = b.body(Bytes::from_static(br#"{"origin":"AI_EDITOR"}"#)).ok()?;
    let (status, body) = tokens::send(ctx, req).await.ok()?;
    if !(200..300).contains(&status) {
        tracing::debug!(status, "Kiro ListProfiles failed");
        return None;
    }
    let v: Value = serde_json::from_slice(&body).ok()?;
    v.pointer("/profiles/0/arn").and_then(Value::as_str).map(str::to_owned)
}

/// The pasted-token entry of the account type: a social refresh token.
fn add_token(ctx: Arc<Ctx>, token: String) -> BoxFuture<'static, Result<Arc<Credential>>> {
    async move { add_social_refresh_token(&ctx, &token).await }.boxed()
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
        super::refresh::RefreshError::NeedsLogin(m) => Error::invalid_request(m),
        super::refresh::RefreshError::Transient(e) => e,
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
    let home = tokens::home().ok_or_else(|| Error::config("HOME is not set: cannot find the Kiro IDE's token file"))?;
    let src = tokens::ide_token_file(&home).ok_or_else(|| {
        Error::config(format!(
            "no Kiro IDE session found (looked for {} under {}): log in to the Kiro IDE first",
            tokens::IDE_TOKEN_FILES.join(" and "),
            home.display()
        ))
    })?;
    let (_, mut rec) = tokens::read_token_file(&src)?;
    if rec.access_token.is_none() && rec.refresh_token.is_none() {
        return Err(Error::config(format!("{} holds no tokens", src.display())));
    }
    if rec.provider.is_none() {
        rec.provider = Some("imported".into());
    }
    let dir = super::store::auth_dir(&ctx.config);
    super::store::create_private_dir(&dir)?;
    let path = super::store::unique_path(&dir, &tokens::file_base(&rec));
    super::store::write_json_atomic(&path, &tokens::auth_file_json(&rec, ctx.runtime.now()))?;
    tracing::info!(from = %src.display(), to = %path.display(), "imported the Kiro IDE session");
    Ok(vec![path])
}

/// Startup discovery: the IDE's token file, used in place (unless a configured entry or an auth-dir file
/// already holds the same session).
pub fn discover_ide(ctx: &Arc<Ctx>) -> Vec<Arc<Credential>> {
    let Some(home) = tokens::home() else { return Vec::new() };
    let Some(path) = tokens::ide_token_file(&home) else { return Vec::new() };
    let configured = ctx.config.kiro.iter().filter_map(|e| e.token_file.as_deref()).map(crate::config::expand_home);
    if configured.into_iter().any(|p| p == path) {
        return Vec::new();
    }
    let (v, rec) = match tokens::read_token_file(&path) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "found a Kiro IDE token file but cannot use it");
            return Vec::new();
        }
    };
    let same = |t: &Option<Secret>| t.as_ref().is_some_and(|t| Some(t) == rec.refresh_token.as_ref());
    let dir = super::store::auth_dir(&ctx.config);
    let imported = super::store::read_auth_files(&dir).iter().any(|(_, f)| {
        f.get("type").and_then(Value::as_str) == Some(KIRO_ID) && same(&TokenRecord::from_json(f, None).refresh_token)
    });
    if imported || ctx.config.kiro.iter().any(|e| same(&e.refresh_token)) {
        tracing::info!(file = %path.display(), "the Kiro IDE session is already configured; not adding it twice");
        return Vec::new();
    }
    tracing::info!(file = %path.display(), method = rec.method().as_str(), "using the Kiro IDE session (credential kiro:ide)");
    let store = Store::in_place(path, &v);
    let settings = Settings { proxy_url: ctx.config.proxy_url.clone(), ..Settings::default() };
    vec![credential(ctx, "kiro:ide".into(), rec, store, settings)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KiroEndpoints;
    use crate::error::ErrorKind;
    use crate::routing::classify::{Cooldown, Length, Scope, decide};
    use std::time::Duration;

    fn account(usage: Option<UsageSnapshot>) -> Account {
        let fp = Fingerprint::derive("", "r", &Default::default());
        let arn = Some("arn:aws:codewhisperer:eu-central-1:1:profile/P".to_owned());
        Account {
            id: "kiro:a".into(),
            method: AuthMethod::Social,
            profile: Arc::new(Profile::new(Endpoints(KiroEndpoints::default()), fp, arn, None)),
            proxy_url: None,
            usage: Mutex::new(usage),
            exhausted_until: Mutex::new(None),
        }
    }

    fn now() -> SystemTime {
        crate::timefmt::parse_rfc3339("2026-11-27T06:00:00Z").unwrap()
    }

    fn classify(a: &Account, status: u16, body: &[u8]) -> crate::routing::classify::ErrorClass {
        let mut f = crate::providers::kiro::failure(status, &http::HeaderMap::new(), body, now());
        a.observe_failure(&mut f, now());
        decide(f)
    }

    #[test]
    fn monthly_limit_cools_the_account_until_the_reset() {
        let a = account(None);
        let body = br#"{"message":"You have reached the limit.","reason":"MONTHLY_REQUEST_COUNT"}"#;
        let c = classify(&a, 402, body);
        let first = crate::timefmt::parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
        assert_eq!(
            c.cooldown,
            Some(Cooldown { scope: Scope::Credential, length: Length::Fixed(first.duration_since(now()).unwrap()) })
        );
        assert_eq!(c.error.kind(), ErrorKind::QuotaExceeded);
        assert!(c.retry_other);
        assert_eq!(a.preference(now()), 0, "an exhausted account is used last");
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
        let c = classify(&a, 402, body);
        assert_eq!(c.cooldown.unwrap().length, Length::Fixed(Duration::from_secs(3600)));
    }
}
