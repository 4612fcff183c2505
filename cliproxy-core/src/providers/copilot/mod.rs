//! GitHub Copilot: chat models of a Copilot subscription, behind a GitHub login.
//!
//! A credential is a long-lived GitHub OAuth token (from the device login, an auth-dir file written by the Go
//! original, or an editor plugin's `apps.json`). It is exchanged for a short-lived Copilot token that lives only
//! in memory ([`auth::Exchange`] under the shared `RefreshingToken`). The token names the API host
//! (`endpoints.api`), which differs per plan, so requests go wherever the token says unless
//! `github-copilot.api-base-url` overrides it.
//!
//! The API speaks OpenAI Chat Completions, so OpenAI clients pass through; the editor headers are added, and
//! `X-Initiator` tells Copilot whether a human or an agent loop sent the turn, which decides premium billing.
//! Each credential has its own [`Copilot`] instance holding what that account's answers taught us: the model
//! list, quota snapshots and the quota reset date (used to cool down until the reset on a 402).

mod auth;
mod quota;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::{Provider, UpstreamCall, finish_request, join_url, post_json};
use crate::config::Secret;
use crate::credential::Credential;
use crate::dialects::{Dialect, openai_chat};
use crate::error::{Error, ErrorKind, Result};
use crate::routing::classify::{Cooldown, ErrorClass, Length, MIN_30, Scope, default_class, parse_retry_after, until};
use crate::types::ChatRequest;

pub use auth::{CLIENT_ID, CopilotLogin, discover, import, load_auth_file, login_provider};
pub use quota::parse_snapshot_header;

/// Where chat goes when neither the configuration nor the token names a host.
pub const DEFAULT_API_BASE_URL: &str = "https://api.githubcopilot.com";
/// The editor identity Copilot's API requires (without `editor-version` it answers 400).
pub const EDITOR_VERSION: &str = "vscode/1.104.3";
pub const EDITOR_PLUGIN_VERSION: &str = "copilot-chat/0.31.5";
pub const USER_AGENT: &str = "GitHubCopilotChat/0.31.5";
pub const INTEGRATION_ID: &str = "vscode-chat";
pub const API_VERSION: &str = "2025-04-01";

/// One model of the account's `/models` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub id: String,
    /// Served only by `/responses` (Codex-class models), which cliproxy does not speak yet.
    pub responses_only: bool,
}

/// What one account's answers taught us; shared by its provider instance, token exchange and background task.
pub(crate) struct Account {
    id: String,
    github_token: Secret,
    /// `github-copilot.github-api-base-url` when the credential was built.
    github_api: String,
    proxy_url: Option<String>,
    /// `None` until the first successful `/models` answer.
    models: Mutex<Option<Vec<Model>>>,
    quota: Mutex<quota::QuotaState>,
}

impl Account {
    fn models(&self) -> Option<Vec<Model>> {
        lock(&self.models).clone()
    }

    fn is_responses_only(&self, model: &str) -> bool {
        match lock(&self.models).as_ref().and_then(|ms| ms.iter().find(|m| m.id == model)) {
            Some(m) => m.responses_only,
            None => model.contains("codex"),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The provider instance of one Copilot credential.
pub struct Copilot {
    account: Arc<Account>,
}

impl Copilot {
    /// The account's models as last fetched (`None`: not fetched yet).
    pub fn models(&self) -> Option<Vec<Model>> {
        self.account.models()
    }
}

impl Provider for Copilot {
    fn id(&self) -> &'static str {
        "copilot"
    }

    fn dialect(&self) -> Option<Dialect> {
        Some(Dialect::OpenAiChat)
    }

    fn prefixes(&self, _credential: &Credential) -> Vec<String> {
        vec!["copilot".into()]
    }

    fn resolve_model(&self, _credential: &Credential, model: &str) -> Option<String> {
        match &*lock(&self.account.models) {
            Some(models) => models.iter().any(|m| m.id == model).then(|| model.to_owned()),
            // Until the list arrived, let Copilot judge the name rather than refuse a model it serves.
            None => Some(model.to_owned()),
        }
    }

    fn is_catch_all(&self, _credential: &Credential) -> bool {
        lock(&self.account.models).is_none()
    }

    fn catalogue(&self, _credential: &Credential) -> Vec<String> {
        let models = self.account.models().unwrap_or_default();
        models.iter().map(|m| m.id.clone()).chain(models.iter().map(|m| format!("copilot/{}", m.id))).collect()
    }

    fn encode_request(&self, request: &ChatRequest) -> Result<Bytes> {
        Ok(flatten_content(Dialect::OpenAiChat.encode_request(request)).into())
    }

    fn build_http(&self, call: &UpstreamCall<'_>, body: Bytes) -> Result<http::Request<Bytes>> {
        if self.account.is_responses_only(call.model) {
            return Err(Error::invalid_request(format!(
                "model {} only works on the Responses API, which cliproxy does not serve yet",
                call.model
            ))
            .with_model(call.model));
        }
        let base =
            call.credential.base_url.as_deref().or(call.access.base_url.as_deref()).unwrap_or(DEFAULT_API_BASE_URL);
        let mut b = post_json(call, &join_url(base, "/chat/completions"));
        let peek = peek_conversation(&body);
        b = api_headers(b, call.access.token.expose())
            .header("openai-intent", "conversation-panel")
            .header("x-initiator", if peek.agent { "agent" } else { "user" });
        if peek.vision {
            b = b.header("copilot-vision-request", "true");
        }
        // Configured extra headers win over the built-in editor identity.
        if let Some(h) = b.headers_mut() {
            for (k, v) in &call.credential.headers {
                h.insert(k.clone(), v.clone());
            }
        }
        finish_request(b, body, "copilot")
    }

    fn classify_error(&self, status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> ErrorClass {
        let reset = lock(&self.account.quota).reset_date;
        classify(status, headers, body, now, reset)
    }

    /// An account whose premium requests are used up (without overage) serves only when no other account is
    /// ready: premium models would answer 402 there.
    fn preference(&self, _credential: &Credential) -> u8 {
        if lock(&self.account.quota).premium_exhausted() { 0 } else { 1 }
    }

    fn observe_response(&self, _credential: &Credential, headers: &http::HeaderMap, now: SystemTime) {
        lock(&self.account.quota).observe_headers(headers, now);
    }

    fn quota(&self, _credential: &Credential) -> Option<Value> {
        let models = self.account.models().unwrap_or_default();
        let mut v = lock(&self.account.quota).to_json()?;
        let responses_only: Vec<&str> = models.iter().filter(|m| m.responses_only).map(|m| m.id.as_str()).collect();
        if !responses_only.is_empty() {
            v["responses_only_models"] = responses_only.into();
        }
        Some(v)
    }
}

/// The Copilot API's own headers (token, editor identity, a fresh request id), for chat and `/models`.
fn api_headers(b: http::request::Builder, token: &str) -> http::request::Builder {
    b.header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header("copilot-integration-id", INTEGRATION_ID)
        .header("editor-version", EDITOR_VERSION)
        .header("editor-plugin-version", EDITOR_PLUGIN_VERSION)
        .header(http::header::USER_AGENT, USER_AGENT)
        .header("x-github-api-version", API_VERSION)
        .header("x-request-id", request_id())
        .header("x-vscode-user-agent-library-version", "electron-fetch")
}

/// A fresh UUID-shaped id per request (Copilot correlates retries and logs by it).
fn request_id() -> String {
    use sha2::Digest;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let d = sha2::Sha256::digest(format!("{nanos}:{n}:{}", std::process::id()).as_bytes());
    let h: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

/// What the headers depend on in a request body.
#[derive(Debug, Default, PartialEq, Eq)]
struct ConversationPeek {
    /// The last message is from the assistant or a tool: an agent loop continues, not a human turn.
    agent: bool,
    /// An image part is present.
    vision: bool,
}

/// Reads only the roles of `messages` (everything else is skipped without being built) and searches the bytes
/// for an image part. A quoted `"image_url"` inside text is escaped in JSON, so the byte search only finds
/// the key or type name.
fn peek_conversation(body: &[u8]) -> ConversationPeek {
    #[derive(Deserialize)]
    struct Conversation {
        #[serde(default)]
        messages: LastRole,
    }
    #[derive(Default)]
    struct LastRole(Option<String>);
    #[derive(Deserialize)]
    struct RoleOnly {
        role: Option<String>,
    }
    impl<'de> Deserialize<'de> for LastRole {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = LastRole;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a list of messages")
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> std::result::Result<LastRole, A::Error> {
                    let mut last = None;
                    while let Some(m) = seq.next_element::<RoleOnly>()? {
                        last = m.role;
                    }
                    Ok(LastRole(last))
                }
            }
            d.deserialize_seq(V)
        }
    }
    let role = serde_json::from_slice::<Conversation>(body).ok().and_then(|c| c.messages.0);
    ConversationPeek {
        agent: matches!(role.as_deref(), Some("assistant" | "tool" | "function")),
        vision: memchr::memmem::find(body, b"\"image_url\"").is_some(),
    }
}

/// Copilot wants assistant and tool `content` as a string; the translation from Anthropic produces text-part
/// arrays. Joins their text (non-text parts carry nothing Copilot would read there).
fn flatten_content(body: Vec<u8>) -> Vec<u8> {
    let Ok(mut v) = serde_json::from_slice::<Value>(&body) else { return body };
    let mut changed = false;
    for m in v.get_mut("messages").and_then(Value::as_array_mut).into_iter().flatten() {
        if !matches!(m.get("role").and_then(Value::as_str), Some("assistant" | "tool")) {
            continue;
        }
        if let Some(Value::Array(parts)) = m.get("content") {
            let text: String = parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect();
            m["content"] = Value::String(text);
            changed = true;
        }
    }
    if changed { serde_json::to_vec(&v).unwrap_or(body) } else { body }
}

/// Quota codes of a 402 (or a 429 that means the same).
const QUOTA_CODES: &[&str] =
    &["quota_exceeded", "free_quota_exceeded", "overage_limit_reached", "billing_not_configured"];

/// Copilot's error signals (section F of the provider reference): 401/403 re-exchange the token and retry once;
/// 402 cools the account until the quota resets; 429 cools the model or the account depending on the code.
/// Bodies are JSON (`{"error":{"message","code"}}`, or GitHub's `{"message"}`) or plain text.
pub fn classify(
    status: u16,
    headers: &http::HeaderMap,
    body: &[u8],
    now: SystemTime,
    quota_reset: Option<SystemTime>,
) -> ErrorClass {
    let (message, code) = error_parts(body);
    let base = openai_chat::parse_error(status, body);
    let kind = match status {
        402 => ErrorKind::QuotaExceeded,
        429 if QUOTA_CODES.contains(&code.as_str()) => ErrorKind::QuotaExceeded,
        429 => ErrorKind::RateLimited,
        _ => base.kind(),
    };
    let text = if message.is_empty() { base.message().to_owned() } else { message };
    let shown =
        if code.is_empty() { format!("GitHub Copilot: {text}") } else { format!("GitHub Copilot: {text} ({code})") };
    let mut error = Error::new(kind, shown).with_status(status);
    if let Some(d) = base.retry_after() {
        error = error.with_retry_after(d);
    }
    let mut class = default_class(status, headers, error, now);
    let retry_after = parse_retry_after(headers, now);
    let lower = text.to_ascii_lowercase();
    match status {
        401 => token_rejected(&mut class),
        403 if lower.contains("token") || lower.contains("unauthorized") => token_rejected(&mut class),
        402 => quota_cooldown(&mut class, retry_after, quota_reset, now),
        429 if QUOTA_CODES.contains(&code.as_str()) => quota_cooldown(&mut class, retry_after, quota_reset, now),
        429 => {
            let account_wide = code.starts_with("user_global_rate_limited")
                || code == "integration_rate_limited"
                || code == "agent_mode_limit_exceeded";
            let scope = if account_wide { Scope::Credential } else { Scope::Model };
            let length = retry_after.map_or(Length::Backoff, Length::Fixed);
            class.cooldown = Some(Cooldown { scope, length });
        }
        _ => {}
    }
    class
}

/// The Copilot token expired or was revoked: exchange it again and retry once, without cooling the account (a
/// failed exchange marks it as needing a login instead).
fn token_rejected(class: &mut ErrorClass) {
    class.refresh = true;
    class.cooldown = None;
    class.retry_other = true;
}

fn quota_cooldown(
    class: &mut ErrorClass,
    retry_after: Option<std::time::Duration>,
    reset: Option<SystemTime>,
    now: SystemTime,
) {
    let wait = retry_after.or_else(|| reset.map(|r| until(now, r))).filter(|d| !d.is_zero()).unwrap_or(MIN_30);
    class.cooldown = Some(Cooldown { scope: Scope::Credential, length: Length::Fixed(wait) });
    class.retry_other = true;
    class.error = Error::new(ErrorKind::QuotaExceeded, class.error.message().to_owned())
        .with_status(class.error.status().unwrap_or(402))
        .with_retry_after(wait);
}

/// `(message, code)` of an error body in any of Copilot's shapes.
fn error_parts(body: &[u8]) -> (String, String) {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => {
            let e = v.get("error").filter(|e| e.is_object()).unwrap_or(&v);
            let message = match e.get("message") {
                Some(Value::String(m)) => m.clone(),
                _ => s(v.get("error").filter(|e| e.is_string())),
            };
            (message, s(e.get("code")))
        }
        Err(_) => (String::from_utf8_lossy(body).trim().chars().take(500).collect(), String::new()),
    }
}

/// A `quota_reset_date` (`2025-08-01`) or RFC 3339 time.
fn parse_date(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    if s.len() == 10 {
        crate::timefmt::parse_rfc3339(&format!("{s}T00:00:00Z"))
    } else {
        crate::timefmt::parse_rfc3339(s)
    }
}

/// Model ids from a `/models` answer: chat models only (embeddings are not served), each marked when only
/// `/responses` serves it.
pub fn parse_models(body: &[u8]) -> Result<Vec<Model>> {
    #[derive(Deserialize)]
    struct List {
        data: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        id: String,
        #[serde(default)]
        capabilities: Option<Value>,
        #[serde(default)]
        supported_endpoints: Option<Vec<String>>,
    }
    let list: List = serde_json::from_slice(body)
        .map_err(|e| Error::upstream(None, format!("GitHub Copilot sent an unreadable model list: {e}")))?;
    let mut seen = BTreeMap::new();
    for e in list.data {
        let kind = e.capabilities.as_ref().and_then(|c| c.get("type")).and_then(Value::as_str).unwrap_or("chat");
        if kind != "chat" {
            continue;
        }
        let responses_only = e.id.contains("codex")
            || e.supported_endpoints.as_ref().is_some_and(|s| !s.iter().any(|p| p == "/chat/completions"));
        seen.entry(e.id.clone()).or_insert(Model { id: e.id, responses_only });
    }
    Ok(seen.into_values().collect())
}

#[cfg(test)]
mod tests;
