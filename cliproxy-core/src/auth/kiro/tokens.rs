//! Kiro accounts on disk and their token refresh.
//!
//! Three kinds of file hold a Kiro account, all read by [`TokenRecord::from_json`]:
//! - our auth-dir files (`type: "kiro"`, snake_case keys, the Go original's format);
//! - the Kiro IDE's `~/.aws/sso/cache/kiro-auth-token.json` (camelCase; `authMethod` `social` or `IdC` in any
//!   case; for Identity Center the client id and secret live in `~/.aws/sso/cache/{clientIdHash}.json`), also
//!   found at `~/.kiro/kiro-auth-token.json`;
//! - either of those in the other key style (other tools write snake_case IDE files).
//!
//! Refreshed tokens are written back to the file the account came from, atomically and in the key style it
//! was read in, so the IDE and the proxy share one session when a `kiro: [{token-file: …}]` entry (or startup
//! discovery) uses the IDE's file in place.
//!
//! Refresh: social logins (Google, GitHub) post `{refreshToken}` to `{auth}/refreshToken`; Builder ID and
//! Identity Center post the `refresh_token` grant to the SSO-OIDC `/token` endpoint with the registered client.
//! A 400 `invalid_grant` means the session is gone: the account needs a new login.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Map, Value, json};

use super::Account;
use crate::auth::Ctx;
use crate::auth::refresh::{RefreshError, Refresher, Token};
use crate::config::Secret;
use crate::error::{Error, Result};
use crate::providers::kiro::fingerprint::Fingerprint;
use crate::timefmt::{format_rfc3339, parse_rfc3339};

/// How long before expiry tokens are refreshed in the background. Kiro access tokens live an hour; the Go
/// original's core loop uses 20 minutes, which leaves two more tries (a minute apart) if one fails.
pub const REFRESH_LEAD: Duration = Duration::from_secs(20 * 60);

/// The IDE's token file, relative to the home directory, in the order looked at.
pub const IDE_TOKEN_FILES: &[&str] = &[".aws/sso/cache/kiro-auth-token.json", ".kiro/kiro-auth-token.json"];

/// How an account logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// Google or GitHub through Kiro's own auth service; needs the profile ARN on API calls.
    Social,
    /// AWS Builder ID (SSO-OIDC with the public start URL).
    BuilderId,
    /// IAM Identity Center (SSO-OIDC with the organisation's start URL and region).
    Idc,
}

impl AuthMethod {
    /// Parses the spellings seen in the wild: `social`, `IdC`, `idc`, `iam`, `builder-id`, `BuilderId`, …
    pub fn parse(s: &str, provider: Option<&str>) -> Option<AuthMethod> {
        let norm: String = s.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
        match norm.as_str() {
            "social" | "google" | "github" => Some(AuthMethod::Social),
            "builderid" => Some(AuthMethod::BuilderId),
            // The IDE writes `IdC` for Builder ID too and tells them apart by `provider`.
            "idc" | "iam" | "iamidentitycenter" | "enterprise" | "oidc" => {
                match provider.map(|p| p.to_ascii_lowercase().replace(['-', '_', ' '], "")).as_deref() {
                    Some("builderid") | Some("aws") => Some(AuthMethod::BuilderId),
                    _ => Some(AuthMethod::Idc),
                }
            }
            _ => None,
        }
    }

    /// The `auth_method` value of our files (the Go original's spelling).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Social => "social",
            AuthMethod::BuilderId => "builder-id",
            AuthMethod::Idc => "idc",
        }
    }

    pub fn uses_oidc(self) -> bool {
        self != AuthMethod::Social
    }
}

/// A Kiro account's tokens and settings, whatever file (or config entry) they came from.
#[derive(Clone, Debug, Default)]
pub struct TokenRecord {
    pub access_token: Option<Secret>,
    pub refresh_token: Option<Secret>,
    pub profile_arn: Option<String>,
    pub expires_at: Option<SystemTime>,
    pub auth_method: Option<AuthMethod>,
    pub provider: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// The SSO-OIDC (or social auth) region; never used for the API host.
    pub region: Option<String>,
    pub start_url: Option<String>,
    pub email: Option<String>,
    /// Overrides the API region (otherwise taken from the profile ARN).
    pub api_region: Option<String>,
}

/// The first non-empty string among `keys`.
fn field(v: &Value, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned))
}

impl TokenRecord {
    /// Reads a token file's JSON in either key style. `sso_cache` is where `{clientIdHash}.json` files live.
    pub fn from_json(v: &Value, sso_cache: Option<&Path>) -> TokenRecord {
        let provider = field(v, &["provider"]);
        let method = field(v, &["auth_method", "authMethod", "auth_type", "authType"])
            .and_then(|m| AuthMethod::parse(&m, provider.as_deref()));
        let mut r = TokenRecord {
            access_token: field(v, &["access_token", "accessToken"]).map(Secret::new),
            refresh_token: field(v, &["refresh_token", "refreshToken"]).map(Secret::new),
            profile_arn: field(v, &["profile_arn", "profileArn"]),
            expires_at: field(v, &["expires_at", "expiresAt", "expired"]).and_then(|s| parse_rfc3339(&s)),
            auth_method: method,
            provider,
            client_id: field(v, &["client_id", "clientId"]),
            client_secret: field(v, &["client_secret", "clientSecret"]).map(Secret::new),
            region: field(v, &["region"]),
            start_url: field(v, &["start_url", "startUrl"]),
            email: field(v, &["email"]),
            api_region: field(v, &["api_region", "apiRegion"]),
        };
        if r.client_id.is_none()
            && let (Some(hash), Some(dir)) = (field(v, &["client_id_hash", "clientIdHash"]), sso_cache)
            && is_safe_name(&hash)
        {
            let path = dir.join(format!("{hash}.json"));
            match std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok()) {
                Some(reg) => {
                    r.client_id = field(&reg, &["clientId", "client_id"]);
                    r.client_secret = field(&reg, &["clientSecret", "client_secret"]).map(Secret::new);
                }
                None => tracing::warn!(file = %path.display(), "Kiro client registration file missing or unreadable"),
            }
        }
        if r.auth_method.is_none() {
            // Files without a method: a registered client means SSO-OIDC, else a social login.
            r.auth_method = Some(if r.client_id.is_some() { AuthMethod::Idc } else { AuthMethod::Social });
        }
        r
    }

    pub fn method(&self) -> AuthMethod {
        self.auth_method.unwrap_or(AuthMethod::Social)
    }
}

/// A file-name component from the outside world (a `clientIdHash`): no separators, no `..`.
fn is_safe_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Where an account's tokens are written back after a refresh.
#[derive(Clone, Debug)]
pub enum Store {
    /// An auth-dir file (snake_case).
    AuthDir(PathBuf),
    /// A token file used in place (the IDE's), written back in the key style it was read in.
    InPlace { path: PathBuf, camel: bool },
    /// Tokens from the config file: kept in memory only.
    Memory,
}

impl Store {
    /// The key style of an existing file: camelCase when it has `accessToken` or `refreshToken`.
    pub fn in_place(path: PathBuf, v: &Value) -> Store {
        let camel = v.get("accessToken").is_some() || v.get("refreshToken").is_some();
        Store::InPlace { path, camel }
    }

    /// Writes the refreshed fields into the file, keeping every other field as it was.
    pub fn save(&self, rec: &TokenRecord, now: SystemTime) -> Result<()> {
        let (path, camel) = match self {
            Store::AuthDir(p) => (p, false),
            Store::InPlace { path, camel } => (path, *camel),
            Store::Memory => return Ok(()),
        };
        let mut obj = match std::fs::read(path).ok().and_then(|b| serde_json::from_slice::<Value>(&b).ok()) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let key = |snake: &'static str, camel_key: &'static str| if camel { camel_key } else { snake };
        let mut set = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                obj.insert(k.to_owned(), v.into());
            }
        };
        set(key("access_token", "accessToken"), rec.access_token.as_ref().map(|s| s.expose().to_owned()));
        set(key("refresh_token", "refreshToken"), rec.refresh_token.as_ref().map(|s| s.expose().to_owned()));
        set(key("expires_at", "expiresAt"), rec.expires_at.map(format_rfc3339));
        set(key("profile_arn", "profileArn"), rec.profile_arn.clone());
        if !camel {
            set("last_refresh", Some(format_rfc3339(now)));
        }
        crate::auth::store::write_json_atomic(path, &Value::Object(obj))
    }
}

/// The JSON of a new auth-dir file for `rec` (the Go original's fields).
pub fn auth_file_json(rec: &TokenRecord, now: SystemTime) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), "kiro".into());
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            m.insert(k.into(), v.into());
        }
    };
    put("access_token", rec.access_token.as_ref().map(|s| s.expose().to_owned()));
    put("refresh_token", rec.refresh_token.as_ref().map(|s| s.expose().to_owned()));
    put("profile_arn", rec.profile_arn.clone());
    put("expires_at", rec.expires_at.map(format_rfc3339));
    put("auth_method", Some(rec.method().as_str().to_owned()));
    put("provider", rec.provider.clone());
    put("client_id", rec.client_id.clone());
    put("client_secret", rec.client_secret.as_ref().map(|s| s.expose().to_owned()));
    put("region", rec.region.clone());
    put("start_url", rec.start_url.clone());
    put("email", rec.email.clone());
    put("api_region", rec.api_region.clone());
    put("last_refresh", Some(format_rfc3339(now)));
    Value::Object(m)
}

/// The auth-dir file name (without `.json`) for an account: `kiro-{method}-{email}`, else
/// `kiro-idc-{start URL subdomain}`, else `kiro-{method}`; the caller makes it unique.
pub fn file_base(rec: &TokenRecord) -> String {
    let method = rec.method().as_str();
    if let Some(email) = &rec.email {
        return format!("kiro-{method}-{}", email.replace(['@', '.'], "-"));
    }
    if rec.method() == AuthMethod::Idc
        && let Some(sub) = rec.start_url.as_deref().and_then(start_url_subdomain)
    {
        return format!("kiro-idc-{sub}");
    }
    format!("kiro-{method}")
}

fn start_url_subdomain(url: &str) -> Option<String> {
    let host = url.split("://").nth(1)?.split('/').next()?;
    let sub = host.split('.').next()?;
    (!sub.is_empty()).then(|| sub.to_owned())
}

/// The IDE's token file under `home`, if there is one.
pub fn ide_token_file(home: &Path) -> Option<PathBuf> {
    IDE_TOKEN_FILES.iter().map(|f| home.join(f)).find(|p| p.is_file())
}

/// The home directory (`$HOME`), where the IDE keeps its files.
pub fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

/// Reads a token file (the IDE's or ours), resolving the client registration next to it.
pub fn read_token_file(path: &Path) -> Result<(Value, TokenRecord)> {
    let bytes = std::fs::read(path).map_err(|e| Error::config(format!("cannot read {}: {e}", path.display())))?;
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::config(format!("{} is not valid JSON: {e}", path.display())))?;
    let sso_cache = path.parent().map(Path::to_path_buf);
    let home_cache = home().map(|h| h.join(".aws/sso/cache"));
    let mut rec = TokenRecord::from_json(&v, sso_cache.as_deref());
    if rec.client_id.is_none() && rec.method().uses_oidc() {
        rec = TokenRecord::from_json(&v, home_cache.as_deref());
    }
    Ok((v, rec))
}

/// What a refresh endpoint answered.
pub struct Refreshed {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub profile_arn: Option<String>,
    pub expires_in: Option<u64>,
}

/// Sends a JSON POST through the transport and returns status and body.
pub async fn post_json(
    ctx: &Ctx,
    url: &str,
    body: &Value,
    proxy: Option<&str>,
    identity: Option<&Fingerprint>,
) -> Result<(u16, Bytes)> {
    let mut b = http::Request::post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json");
    if let Some(f) = identity {
        b = f.apply_oidc(b);
    }
    if let Some(p) = proxy {
        b = b.extension(crate::transport::UpstreamProxy(p.to_owned()));
    }
    let req = b
        .body(Bytes::from(body.to_string()))
        .map_err(|e| Error::config(format!("cannot build request to {url}: {e}")))?;
    send(ctx, req).await
}

/// Sends a request to a Kiro or AWS endpoint and reads the whole answer: status and body.
pub async fn send(ctx: &Ctx, req: http::Request<Bytes>) -> Result<(u16, Bytes)> {
    let a = crate::auth::fetch::send(ctx, req, "Kiro").await?;
    Ok((a.status, a.body))
}

/// Parses a token answer (camelCase, as SSO-OIDC and Kiro's auth service send; snake_case accepted).
pub fn parse_token_answer(body: &[u8]) -> Option<Refreshed> {
    let v: Value = serde_json::from_slice(body).ok()?;
    Some(Refreshed {
        access_token: field(&v, &["accessToken", "access_token"])?,
        refresh_token: field(&v, &["refreshToken", "refresh_token"]),
        profile_arn: field(&v, &["profileArn", "profile_arn"]),
        expires_in: v.get("expiresIn").or(v.get("expires_in")).and_then(Value::as_u64),
    })
}

/// Whether an error answer says the grant is dead (a new login is needed).
pub fn is_invalid_grant(status: u16, body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    matches!(status, 400 | 401) && (text.contains("invalid_grant") || text.contains("Invalid refresh token"))
}

/// Refreshes one account and persists the result.
pub struct KiroRefresher {
    pub account: Arc<Account>,
    pub record: Mutex<TokenRecord>,
    pub store: Store,
}

impl KiroRefresher {
    fn snapshot(&self) -> TokenRecord {
        self.record.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Calls the refresh endpoint for `rec`.
    pub async fn call(ctx: &Ctx, account: &Account, rec: &TokenRecord) -> std::result::Result<Refreshed, RefreshError> {
        // Without a refresh token there is nothing to try; the account keeps its (static) access token.
        let refresh = rec.refresh_token.as_ref().ok_or_else(|| {
            RefreshError::Transient(Error::new(
                crate::error::ErrorKind::Authentication,
                "this Kiro account has no refresh token: configure a fresh access token or log in",
            ))
        })?;
        let region = rec.region.clone().unwrap_or_else(|| "us-east-1".into());
        let (url, body) = match rec.method() {
            AuthMethod::Social => (
                format!("{}/refreshToken", account.profile.endpoints.auth_base(&region)),
                json!({"refreshToken": refresh.expose()}),
            ),
            _ => {
                let (Some(id), Some(secret)) = (&rec.client_id, &rec.client_secret) else {
                    return Err(RefreshError::NeedsLogin(
                        "the SSO client registration (client id and secret) is missing: log in again".into(),
                    ));
                };
                (
                    format!("{}/token", account.profile.endpoints.oidc_base(&region)),
                    json!({"clientId": id, "clientSecret": secret.expose(), "refreshToken": refresh.expose(),
                        "grantType": "refresh_token"}),
                )
            }
        };
        let (status, answer) =
            post_json(ctx, &url, &body, account.proxy_url.as_deref(), Some(&account.profile.fingerprint))
                .await
                .map_err(RefreshError::Transient)?;
        if is_invalid_grant(status, &answer) {
            return Err(RefreshError::NeedsLogin(format!(
                "Kiro refused the refresh token (invalid_grant): {}",
                String::from_utf8_lossy(&answer).chars().take(200).collect::<String>()
            )));
        }
        if !(200..300).contains(&status) {
            return Err(RefreshError::Transient(Error::upstream(
                Some(status),
                format!("Kiro token refresh failed with HTTP {status}"),
            )));
        }
        parse_token_answer(&answer).ok_or_else(|| {
            RefreshError::Transient(Error::upstream(Some(status), "Kiro token answer without accessToken"))
        })
    }
}

impl Refresher for KiroRefresher {
    fn refresh<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, std::result::Result<Token, RefreshError>> {
        async move {
            let mut rec = self.snapshot();
            let now = ctx.runtime.now();
            if let Store::InPlace { path, .. } = &self.store
                && let Ok((_, disk)) = read_token_file(path)
            {
                // The IDE shares this file: it may have refreshed (and rotated the refresh token) since we read
                // it. Its newer access token is used as is; otherwise refresh with its refresh token.
                if disk.refresh_token.is_some() {
                    rec.refresh_token = disk.refresh_token.clone();
                }
                if let (Some(access), Some(exp)) = (&disk.access_token, disk.expires_at)
                    && Some(access) != rec.access_token.as_ref()
                    && exp > now + REFRESH_LEAD
                {
                    tracing::info!(credential = %self.account.id, "using the token the Kiro IDE refreshed");
                    rec.access_token = Some(access.clone());
                    rec.expires_at = Some(exp);
                    if let Some(arn) = disk.profile_arn.clone() {
                        self.account.profile.set_profile_arn(arn.clone());
                        rec.profile_arn = Some(arn);
                    }
                    let token = Token { access: access.clone(), expires_at: Some(exp), base_url: None };
                    *self.record.lock().unwrap_or_else(|p| p.into_inner()) = rec;
                    return Ok(token);
                }
            }
            let r = Self::call(ctx, &self.account, &rec).await?;
            let expires_at = now + Duration::from_secs(r.expires_in.unwrap_or(3600));
            rec.access_token = Some(Secret::new(r.access_token.clone()));
            if let Some(rt) = r.refresh_token {
                rec.refresh_token = Some(Secret::new(rt));
            }
            if let Some(arn) = r.profile_arn {
                rec.profile_arn = Some(arn.clone());
                self.account.profile.set_profile_arn(arn);
            }
            rec.expires_at = Some(expires_at);
            if let Err(e) = self.store.save(&rec, now) {
                tracing::warn!(credential = %self.account.id, error = %e, "could not write the refreshed Kiro token back");
            }
            *self.record.lock().unwrap_or_else(|p| p.into_inner()) = rec;
            Ok(Token { access: Secret::new(r.access_token), expires_at: Some(expires_at), base_url: None })
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ide_file_camel_case_with_client_registration() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("abc123.json"),
            r#"{"clientId":"cid","clientSecret":"csecret","expiresAt":"2030-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let v = json!({"accessToken": "aoa1", "refreshToken": "aor1", "expiresAt": "2026-01-01T00:00:00.000Z",
            "authMethod": "IdC", "provider": "Enterprise", "clientIdHash": "abc123", "region": "eu-west-1",
            "startUrl": "https://acme.awsapps.com/start"});
        let r = TokenRecord::from_json(&v, Some(dir.path()));
        assert_eq!(r.method(), AuthMethod::Idc);
        assert_eq!(r.client_id.as_deref(), Some("cid"));
        assert_eq!(r.client_secret.as_ref().unwrap().expose(), "csecret");
        assert_eq!(r.region.as_deref(), Some("eu-west-1"));
        assert_eq!(file_base(&r), "kiro-idc-acme");
        let bid = TokenRecord::from_json(&json!({"authMethod": "IdC", "provider": "BuilderId", "clientId": "c"}), None);
        assert_eq!(bid.method(), AuthMethod::BuilderId);
        let social = TokenRecord::from_json(
            &json!({"access_token": "a", "refresh_token": "aorAAAAAG1", "auth_method": "SOCIAL", "profile_arn": "arn:aws:codewhisperer:us-east-1:1:profile/P"}),
            None,
        );
        assert_eq!(social.method(), AuthMethod::Social);
        assert_eq!(file_base(&social), "kiro-social");
        assert!(
            TokenRecord::from_json(&json!({"clientIdHash": "../../etc/passwd"}), Some(dir.path())).client_id.is_none()
        );
    }

    #[test]
    fn write_back_keeps_the_style_and_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kiro-auth-token.json");
        std::fs::write(&p, r#"{"accessToken":"old","refreshToken":"r","authMethod":"social","extra":1}"#).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        let store = Store::in_place(p.clone(), &v);
        let rec = TokenRecord {
            access_token: Some(Secret::new("new")),
            refresh_token: Some(Secret::new("r2")),
            expires_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)),
            ..TokenRecord::default()
        };
        store.save(&rec, SystemTime::UNIX_EPOCH).unwrap();
        let back: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        assert_eq!(back["accessToken"], "new");
        assert_eq!(back["refreshToken"], "r2");
        assert_eq!(back["expiresAt"], "2027-01-15T08:00:00Z");
        assert_eq!(back["extra"], 1);
        assert!(back.get("access_token").is_none());
    }

    #[test]
    fn ide_file_locations_in_order() {
        let home = tempfile::tempdir().unwrap();
        assert_eq!(ide_token_file(home.path()), None);
        let kiro_dir = home.path().join(".kiro/kiro-auth-token.json");
        std::fs::create_dir_all(kiro_dir.parent().unwrap()).unwrap();
        std::fs::write(&kiro_dir, "{}").unwrap();
        assert_eq!(ide_token_file(home.path()), Some(kiro_dir));
        let aws = home.path().join(".aws/sso/cache/kiro-auth-token.json");
        std::fs::create_dir_all(aws.parent().unwrap()).unwrap();
        std::fs::write(&aws, "{}").unwrap();
        assert_eq!(ide_token_file(home.path()), Some(aws), "the AWS SSO cache comes first");
    }

    #[test]
    fn regions_and_grants() {
        use crate::providers::kiro::arn_region;
        assert_eq!(arn_region("arn:aws:codewhisperer:eu-central-1:123:profile/X"), Some("eu-central-1"));
        assert_eq!(arn_region("arn:aws:codewhisperer:EVIL.com/:1:x"), None);
        assert!(is_invalid_grant(
            400,
            br#"{"error":"invalid_grant","error_description":"Invalid refresh token provided"}"#
        ));
        assert!(!is_invalid_grant(500, b"invalid_grant"));
        assert!(!is_invalid_grant(400, br#"{"error":"authorization_pending"}"#));
    }
}
