//! Configuration: the Go original's `config.yaml` keys, so users migrate with the file they have.
//!
//! Loading is forgiving where the original was: unknown keys produce warnings (returned to the caller, who logs
//! them) instead of failures, and `${NAME}` references in string values are expanded from the environment so
//! secrets need not be written into the file. Secrets are held in [`Secret`], whose `Debug` never shows them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};

/// A secret string (API key, token). `Debug` and `Display` print a fixed mask so a stray `{:?}` in a log line
/// cannot leak it; call [`Secret::expose`] where the value really is needed (building an upstream request).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// The whole configuration. Field names are the YAML keys in kebab-case.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct Config {
    pub host: String,
    pub port: u16,
    /// Directory of per-account credential files (`~` is expanded).
    pub auth_dir: String,
    /// Client API keys accepted by the server. Empty: no client authentication (loopback only).
    pub api_keys: Vec<Secret>,
    /// Default outbound proxy (http, https or socks5 URL) for every upstream call.
    pub proxy_url: Option<String>,
    /// How many other credentials to try after the first fails (before any byte reached the client).
    pub request_retry: u32,
    /// When every credential is cooling down, wait for the earliest reset if it is at most this many seconds away.
    pub max_retry_interval: u64,
    pub disable_cooling: bool,
    pub routing: Routing,
    pub remote_management: RemoteManagement,
    pub timeouts: Timeouts,
    pub streaming: Streaming,
    /// Seconds between whitespace keepalives on non-streaming responses; 0 disables them.
    pub nonstream_keepalive_interval: u64,
    pub rate_limit: ClientRateLimit,
    /// Largest accepted request body, in MiB.
    pub body_limit_mb: usize,
    pub debug: bool,
    pub claude_api_key: Vec<ClaudeKey>,
    /// Gemini API keys (generativelanguage.googleapis.com).
    pub gemini_api_key: Vec<GeminiKey>,
    /// Google's hosts, overridable for proxies and the mock upstream.
    pub gemini_endpoints: GeminiEndpoints,
    pub openai_compatibility: Vec<OpenAiCompatibility>,
    /// Kiro accounts given in the file (token files used in place, or tokens).
    pub kiro: Vec<KiroEntry>,
    /// Kiro's hosts, `{region}` substituted.
    pub kiro_endpoints: KiroEndpoints,
    /// Pins for the per-account Kiro device identity.
    pub kiro_fingerprint: FingerprintConfig,
    pub github_copilot: GithubCopilot,
    /// Claude subscription (OAuth) hosts: login, token refresh and the API.
    pub claude_endpoints: ClaudeEndpoints,
    /// Browser access to the inference routes. Off by default: no CORS headers at all.
    pub cors: Cors,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".into(),
            port: 8317,
            auth_dir: "~/.cli-proxy-api".into(),
            api_keys: Vec::new(),
            proxy_url: None,
            request_retry: 3,
            max_retry_interval: 30,
            disable_cooling: false,
            routing: Routing::default(),
            remote_management: RemoteManagement::default(),
            timeouts: Timeouts::default(),
            streaming: Streaming::default(),
            nonstream_keepalive_interval: 0,
            rate_limit: ClientRateLimit::default(),
            body_limit_mb: 32,
            debug: false,
            claude_api_key: Vec::new(),
            gemini_api_key: Vec::new(),
            gemini_endpoints: GeminiEndpoints::default(),
            openai_compatibility: Vec::new(),
            kiro: Vec::new(),
            kiro_endpoints: Default::default(),
            kiro_fingerprint: Default::default(),
            github_copilot: GithubCopilot::default(),
            claude_endpoints: ClaudeEndpoints::default(),
            cors: Cors::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Rotate through the credentials of the best priority group, one cursor per model.
    #[default]
    RoundRobin,
    /// Use the first available credential until it cools down.
    FillFirst,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct Routing {
    pub strategy: Strategy,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RemoteManagement {
    pub allow_remote: bool,
    /// Management routes answer 404 while this is empty.
    pub secret_key: Secret,
    pub disable_control_panel: bool,
}

/// Upstream timeouts, in seconds. A hung upstream before its first byte is treated like an error and fails over.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct Timeouts {
    pub connect_seconds: u64,
    /// From sending the request to the response head and first body bytes.
    pub first_byte_seconds: u64,
    /// Longest silence between two body chunks once the answer started.
    pub idle_seconds: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        // Reasoning models can think for minutes before their first token; 120 s keeps those working while still
        // abandoning a dead upstream well before clients give up (most SDKs default to 600 s).
        Timeouts { connect_seconds: 10, first_byte_seconds: 120, idle_seconds: 300 }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct Streaming {
    /// Seconds of silence after which an SSE comment is sent to keep intermediaries from closing the stream; 0 = off.
    pub keepalive_seconds: u64,
    /// Kept for compatibility with the Go original; failover before the first byte is governed by `request-retry`.
    pub bootstrap_retries: u32,
}

/// Requests and tokens per minute; 0 means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RateLimit {
    pub rpm: u64,
    pub tpm: u64,
}

impl RateLimit {
    pub fn is_unlimited(&self) -> bool {
        self.rpm == 0 && self.tpm == 0
    }
}

/// The top-level `rate-limit`: a default per client key, and overrides for single keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct ClientRateLimit {
    pub rpm: u64,
    pub tpm: u64,
    pub per_key: BTreeMap<String, RateLimit>,
}

/// One `models: [{name, alias}]` entry: the upstream `name`, offered to clients as `alias` (or as `name`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct ModelAlias {
    pub name: String,
    pub alias: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct ClaudeKey {
    pub api_key: Secret,
    pub base_url: Option<String>,
    pub prefix: Option<String>,
    pub priority: i32,
    pub headers: BTreeMap<String, String>,
    pub proxy_url: Option<String>,
    pub models: Vec<ModelAlias>,
    pub excluded_models: Vec<String>,
    pub rate_limit: RateLimit,
}

/// A `gemini-api-key` entry: the Go original gives it the same keys as `claude-api-key`.
pub type GeminiKey = ClaudeKey;

/// `gemini-endpoints`: Google's base URLs. The API host serves `gemini-api-key` entries (an entry's own
/// `base-url` wins); Code Assist and the OAuth token endpoint serve Gemini CLI accounts.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct GeminiEndpoints {
    pub api_base_url: String,
    pub code_assist_base_url: String,
    /// Google's OAuth host (`/token`).
    pub oauth_base_url: String,
}

impl Default for GeminiEndpoints {
    fn default() -> Self {
        GeminiEndpoints {
            api_base_url: "https://generativelanguage.googleapis.com".into(),
            code_assist_base_url: "https://cloudcode-pa.googleapis.com".into(),
            oauth_base_url: "https://oauth2.googleapis.com".into(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct ApiKeyEntry {
    pub api_key: Secret,
    pub proxy_url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct OpenAiCompatibility {
    pub name: String,
    pub base_url: String,
    pub prefix: Option<String>,
    pub priority: i32,
    pub headers: BTreeMap<String, String>,
    pub api_key_entries: Vec<ApiKeyEntry>,
    pub models: Vec<ModelAlias>,
    pub excluded_models: Vec<String>,
    pub rate_limit: RateLimit,
}

/// `cors:`: the web origins (`https://app.example.com`, or `*` for any) whose pages may call the inference
/// routes (`/v1/*`) from a browser. Empty, the default: browsers get no CORS headers, and a request that carries
/// an `Origin` header is refused. Management routes never answer cross-origin requests.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct Cors {
    pub allow_origins: Vec<String>,
}

/// GitHub Copilot hosts. Every one is overridable so GitHub Enterprise (and a mock upstream) work.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct GithubCopilot {
    /// The device-flow login host.
    pub github_base_url: String,
    /// The REST API: Copilot token exchange, the user's login, quota.
    pub github_api_base_url: String,
    /// Chat and models. Empty: the `endpoints.api` the Copilot token names (it differs per plan).
    pub api_base_url: String,
}

impl Default for GithubCopilot {
    fn default() -> Self {
        GithubCopilot {
            github_base_url: "https://github.com".into(),
            github_api_base_url: "https://api.github.com".into(),
            api_base_url: String::new(),
        }
    }
}

/// `claude-endpoints`: where Claude subscription accounts log in, refresh their tokens and call the API. Every one
/// is overridable so enterprise proxies (and a mock upstream) work.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct ClaudeEndpoints {
    /// Where `/oauth/authorize` lives (the browser goes there).
    pub auth_base_url: String,
    /// The token endpoint itself, for both the authorization-code and the refresh grant.
    pub token_url: String,
    /// `/v1/messages` and `/api/oauth/profile`.
    pub api_base_url: String,
}

impl Default for ClaudeEndpoints {
    fn default() -> Self {
        ClaudeEndpoints {
            auth_base_url: "https://claude.ai".into(),
            token_url: "https://console.anthropic.com/v1/oauth/token".into(),
            api_base_url: "https://api.anthropic.com".into(),
        }
    }
}

/// A parsed configuration and the warnings produced while reading it (unknown keys, env fallbacks).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<String>,
}

impl Config {
    /// Parses YAML text: expands `${NAME}` references, collects unknown keys as warnings.
    pub fn from_yaml(text: &str) -> Result<Loaded> {
        let mut value: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| Error::config(format!("config.yaml is not valid YAML: {e}")))?;
        if value.is_null() {
            value = serde_yaml_ng::Value::Mapping(Default::default());
        }
        expand_env(&mut value)?;
        Self::from_yaml_value(value)
    }

    /// Builds a configuration from any serializable value with the YAML keys (a JSON object from the bindings,
    /// say). `${NAME}` references are expanded as in files.
    pub fn from_value<T: serde::Serialize>(value: &T) -> Result<Loaded> {
        let mut v = serde_yaml_ng::to_value(value).map_err(|e| Error::config(format!("invalid config: {e}")))?;
        if v.is_null() {
            v = serde_yaml_ng::Value::Mapping(Default::default());
        }
        expand_env(&mut v)?;
        Self::from_yaml_value(v)
    }

    fn from_yaml_value(value: serde_yaml_ng::Value) -> Result<Loaded> {
        let mut warnings = Vec::new();
        let config: Config = serde_ignored::deserialize(value, |path| {
            warnings.push(format!("unknown config key `{path}` ignored"));
        })
        .map_err(|e| Error::config(format!("invalid config: {e}")))?;
        config.validate()?;
        Ok(Loaded { config, warnings })
    }

    /// Reads and parses a YAML file.
    pub fn from_file(path: &std::path::Path) -> Result<Loaded> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::config(format!("cannot read config file {}: {e}", path.display())))?;
        Self::from_yaml(&text)
    }

    fn validate(&self) -> Result<()> {
        for (i, c) in self.openai_compatibility.iter().enumerate() {
            if c.name.trim().is_empty() {
                return Err(Error::config(format!("openai-compatibility[{i}]: `name` is required")));
            }
            if c.base_url.trim().is_empty() {
                return Err(Error::config(format!("openai-compatibility[{i}] ({}): `base-url` is required", c.name)));
            }
        }
        for (list, keys) in [("claude-api-key", &self.claude_api_key), ("gemini-api-key", &self.gemini_api_key)] {
            if let Some(i) = keys.iter().position(|k| k.api_key.is_empty()) {
                return Err(Error::config(format!("{list}[{i}]: `api-key` is required")));
            }
        }
        Ok(())
    }

    /// Whether any upstream credential is configured in the file.
    pub fn has_providers(&self) -> bool {
        !self.claude_api_key.is_empty()
            || !self.gemini_api_key.is_empty()
            || !self.openai_compatibility.is_empty()
            || !self.kiro.is_empty()
    }

    /// With no provider configured, `OPENAI_API_KEY` and `ANTHROPIC_API_KEY` (and their `*_BASE_URL`) become
    /// credentials, so `cliproxy-server` is useful with zero configuration. Returns what it added, for logging.
    pub fn apply_env_fallback(&mut self, env: impl Fn(&str) -> Option<String>) -> Vec<String> {
        let mut added = Vec::new();
        if self.has_providers() {
            return added;
        }
        if let Some(key) = env("ANTHROPIC_API_KEY").filter(|k| !k.is_empty()) {
            self.claude_api_key.push(ClaudeKey {
                api_key: Secret::new(key),
                base_url: env("ANTHROPIC_BASE_URL").filter(|u| !u.is_empty()),
                ..Default::default()
            });
            added.push("ANTHROPIC_API_KEY became credential claude:key-0".to_string());
        }
        if let Some(key) = env("OPENAI_API_KEY").filter(|k| !k.is_empty()) {
            self.openai_compatibility.push(OpenAiCompatibility {
                name: "openai".into(),
                base_url: env("OPENAI_BASE_URL")
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(|| "https://api.openai.com/v1".into()),
                api_key_entries: vec![ApiKeyEntry { api_key: Secret::new(key), proxy_url: None }],
                ..Default::default()
            });
            added.push("OPENAI_API_KEY became credential openai-compat:openai-0".to_string());
        }
        added
    }
}

/// Expands `${NAME}` in every string of the document. An undefined variable is an error: silently sending an
/// empty API key upstream would only move the failure somewhere harder to understand.
fn expand_env(value: &mut serde_yaml_ng::Value) -> Result<()> {
    use serde_yaml_ng::Value;
    match value {
        Value::String(s) if s.contains("${") => *s = expand_str(s, |n| std::env::var(n).ok())?,
        Value::Sequence(items) => items.iter_mut().try_for_each(expand_env)?,
        Value::Mapping(map) => map.iter_mut().try_for_each(|(_, v)| expand_env(v))?,
        Value::Tagged(t) => expand_env(&mut t.value)?,
        _ => {}
    }
    Ok(())
}

fn expand_str(s: &str, env: impl Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| Error::config(format!("unterminated `${{` in config value near `{}`", &rest[start..])))?;
        let name = &after[..end];
        let (name, default) = match name.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (name, None),
        };
        match env(name).or_else(|| default.map(str::to_owned)) {
            Some(v) => out.push_str(&v),
            None => {
                return Err(Error::config(format!(
                    "config refers to environment variable `{name}`, which is not set (use `${{{name}:-default}}` for a default)"
                )));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Expands a leading `~` to the home directory.
pub fn expand_home(path: &str) -> std::path::PathBuf {
    if let Some(rest) = path.strip_prefix("~/").or(if path == "~" { Some("") } else { None })
        && let Some(home) = std::env::var_os("HOME")
    {
        return std::path::Path::new(&home).join(rest);
    }
    std::path::PathBuf::from(path)
}

// ---------------------------------------------------------------------------------------------------------------
// Kiro

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
pub struct KiroEndpoints {
    pub oidc_base_url: String,
    pub auth_base_url: String,
    pub api_base_url: String,
    pub fallback_api_base_url: String,
}

impl Default for KiroEndpoints {
    fn default() -> Self {
        KiroEndpoints {
            oidc_base_url: "https://oidc.{region}.amazonaws.com".into(),
            auth_base_url: "https://prod.{region}.auth.desktop.kiro.dev".into(),
            api_base_url: "https://q.{region}.amazonaws.com".into(),
            fallback_api_base_url: "https://codewhisperer.{region}.amazonaws.com".into(),
        }
    }
}

/// `kiro-fingerprint` in config.yaml: each field, when set, replaces the derived value for every account.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct FingerprintConfig {
    pub sdk_version: Option<String>,
    pub os: Option<String>,
    pub os_version: Option<String>,
    pub node_version: Option<String>,
    pub kiro_version: Option<String>,
    /// The 64-hex-digit machine id.
    pub machine_id: Option<String>,
    /// `x-amzn-kiro-agent-mode` (default `vibe`).
    pub agent_mode: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_file() {
        let c = Config::from_yaml("").unwrap().config;
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.port, 8317);
        assert_eq!(c.request_retry, 3);
        assert_eq!(c.routing.strategy, Strategy::RoundRobin);
    }

    #[test]
    fn claude_endpoints_default_and_override() {
        let d = Config::from_yaml("").unwrap().config.claude_endpoints;
        assert_eq!(
            (d.auth_base_url.as_str(), d.token_url.as_str(), d.api_base_url.as_str()),
            ("https://claude.ai", "https://console.anthropic.com/v1/oauth/token", "https://api.anthropic.com")
        );
        let yaml =
            "claude-endpoints: { auth-base-url: 'http://m/a', token-url: 'http://m/t', api-base-url: 'http://m' }";
        let loaded = Config::from_yaml(yaml).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let e = loaded.config.claude_endpoints;
        assert_eq!(
            (e.auth_base_url.as_str(), e.token_url.as_str(), e.api_base_url.as_str()),
            ("http://m/a", "http://m/t", "http://m")
        );
    }

    #[test]
    fn go_original_keys_parse_and_unknown_keys_warn() {
        let yaml = r#"
port: 9000
auth-dir: '~/.cli-proxy-api'
api-keys: ['sk-client-1']
remote-management: { allow-remote: false, secret-key: 'mgmt' }
request-retry: 2
max-retry-interval: 10
quota-exceeded: { switch-project: true }
routing: { strategy: fill-first }
claude-api-key: [{ api-key: 'sk-ant-1', prefix: team, priority: 2, models: [{ name: claude-sonnet-4-5-20250929, alias: cs45 }] }]
openai-compatibility:
  - { name: openrouter, base-url: 'https://openrouter.ai/api/v1', api-key-entries: [{ api-key: 'sk-or-1' }],
      models: [{ name: 'moonshotai/kimi-k2:free', alias: kimi-k2 }] }
"#;
        let loaded = Config::from_yaml(yaml).unwrap();
        let c = loaded.config;
        assert_eq!(c.port, 9000);
        assert_eq!(c.routing.strategy, Strategy::FillFirst);
        assert_eq!(c.claude_api_key[0].api_key.expose(), "sk-ant-1");
        assert_eq!(c.claude_api_key[0].models[0].alias, "cs45");
        assert_eq!(c.openai_compatibility[0].api_key_entries[0].api_key.expose(), "sk-or-1");
        assert_eq!(c.remote_management.secret_key.expose(), "mgmt");
        assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
        assert!(loaded.warnings[0].contains("quota-exceeded"));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Config::from_yaml("api-keys: ['sk-client-secret']\nclaude-api-key: [{api-key: sk-ant-topsecret}]")
            .unwrap()
            .config;
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("topsecret") && !dbg.contains("client-secret"), "{dbg}");
    }

    #[test]
    fn from_json_value() {
        let v = serde_json::json!({"port": 1234, "claude-api-key": [{"api-key": "sk-1"}], "bogus": 1});
        let l = Config::from_value(&v).unwrap();
        assert_eq!(l.config.port, 1234);
        assert_eq!(l.config.claude_api_key.len(), 1);
        assert_eq!(l.warnings.len(), 1);
    }

    #[test]
    fn env_expansion() {
        let env = |n: &str| (n == "KEY").then(|| "v".to_string());
        assert_eq!(expand_str("a-${KEY}-b", env).unwrap(), "a-v-b");
        assert_eq!(expand_str("${NOPE:-d}", env).unwrap(), "d");
        assert!(expand_str("${NOPE}", env).is_err());
        assert!(expand_str("${KEY", env).is_err());
    }

    #[test]
    fn env_fallback_only_without_providers() {
        let mut c = Config::default();
        let added = c.apply_env_fallback(|n| match n {
            "OPENAI_API_KEY" => Some("sk-o".into()),
            "ANTHROPIC_API_KEY" => Some("sk-a".into()),
            _ => None,
        });
        assert_eq!(added.len(), 2);
        assert_eq!(c.openai_compatibility[0].base_url, "https://api.openai.com/v1");
        let again = c.apply_env_fallback(|_| Some("x".into()));
        assert!(again.is_empty());
    }

    #[test]
    fn compat_entry_requires_name_and_base_url() {
        assert!(Config::from_yaml("openai-compatibility: [{base-url: x}]").is_err());
        assert!(Config::from_yaml("openai-compatibility: [{name: x}]").is_err());
    }
}
