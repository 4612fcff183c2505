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

pub mod quota;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::failure::{Blame, Failure};
use super::{Provider, UpstreamCall, finish_request, join_url, post_json};
use crate::dialects::{Dialect, openai_chat};
use crate::error::{Error, ErrorKind, Result};
use crate::types::ChatRequest;

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

/// The account's model list as last fetched by its account lifecycle (`None`: not fetched yet).
pub type Models = Arc<Mutex<Option<Vec<Model>>>>;

/// Locks a mutex whose data stays valid even if a holder panicked.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The wire format of one Copilot credential; it reads the model list its account keeps current.
pub struct Copilot {
    pub models: Models,
}

impl Copilot {
    /// The account's models as last fetched (`None`: not fetched yet).
    pub fn models(&self) -> Option<Vec<Model>> {
        lock(&self.models).clone()
    }

    fn is_responses_only(&self, model: &str) -> bool {
        match lock(&self.models).as_ref().and_then(|ms| ms.iter().find(|m| m.id == model)) {
            Some(m) => m.responses_only,
            None => model.contains("codex"),
        }
    }
}

impl Provider for Copilot {
    fn id(&self) -> &'static str {
        "copilot"
    }

    fn dialect(&self) -> Option<Dialect> {
        Some(Dialect::OpenAiChat)
    }

    fn prefixes(&self) -> Vec<String> {
        vec!["copilot".into()]
    }

    fn resolve_model(&self, model: &str) -> Option<String> {
        match &*lock(&self.models) {
            Some(models) => models.iter().any(|m| m.id == model).then(|| model.to_owned()),
            // Until the list arrived, let Copilot judge the name rather than refuse a model it serves.
            None => Some(model.to_owned()),
        }
    }

    fn is_catch_all(&self) -> bool {
        lock(&self.models).is_none()
    }

    fn catalogue(&self) -> Vec<String> {
        let models = self.models().unwrap_or_default();
        models.iter().map(|m| m.id.clone()).chain(models.iter().map(|m| format!("copilot/{}", m.id))).collect()
    }

    fn encode_request(&self, request: &ChatRequest) -> Result<Bytes> {
        Ok(flatten_content(Dialect::OpenAiChat.encode_request(request)).into())
    }

    fn build_http(&self, call: &UpstreamCall<'_>, body: Bytes) -> Result<http::Request<Bytes>> {
        if self.is_responses_only(call.model) {
            return Err(Error::invalid_request(format!(
                "model {} only works on the Responses API, which cliproxy does not serve yet",
                call.model
            ))
            .with_model(call.model));
        }
        let base = call.base_url.or(call.access.base_url.as_deref()).unwrap_or(DEFAULT_API_BASE_URL);
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
            for (k, v) in call.headers {
                h.insert(k.clone(), v.clone());
            }
        }
        finish_request(b, body, "copilot")
    }

    fn failure(&self, status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> Failure {
        failure(status, headers, body, now)
    }
}

/// The Copilot API's own headers (token, editor identity, a fresh request id), for chat and `/models`.
pub fn api_headers(b: http::request::Builder, token: &str) -> http::request::Builder {
    b.header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header("copilot-integration-id", INTEGRATION_ID)
        .header("editor-version", EDITOR_VERSION)
        .header("editor-plugin-version", EDITOR_PLUGIN_VERSION)
        .header(http::header::USER_AGENT, USER_AGENT)
        .header("x-github-api-version", API_VERSION)
        .header("x-request-id", request_id())
        .header("x-vscode-user-agent-library-version", "electron-fetch")
}

/// A fresh random UUID per request (Copilot correlates retries and logs by it).
fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
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

/// Copilot's error signals (section F of the provider reference): 401 (and a 403 about the token) means the
/// Copilot token expired or was revoked; 402, or a 429 with a quota code, is an exhausted quota (its reset date
/// comes from the account's quota snapshot); other 429s are rate limits of the model or, by their code, of the
/// whole account. Bodies are JSON (`{"error":{"message","code"}}`, or GitHub's `{"message"}`) or plain text.
pub fn failure(status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> Failure {
    let (message, code) = error_parts(body);
    let base = openai_chat::parse_error(status, body);
    let quota_code = QUOTA_CODES.contains(&code.as_str());
    let kind = match status {
        402 => ErrorKind::QuotaExceeded,
        429 if quota_code => ErrorKind::QuotaExceeded,
        429 => ErrorKind::RateLimited,
        _ => base.kind(),
    };
    let text = if message.is_empty() { base.message().to_owned() } else { message };
    let shown =
        if code.is_empty() { format!("GitHub Copilot: {text}") } else { format!("GitHub Copilot: {text} ({code})") };
    let mut error = Error::new(kind, shown.clone()).with_status(status);
    if let Some(d) = base.retry_after() {
        error = error.with_retry_after(d);
    }
    let f = Failure::from_status(status, headers, error, now);
    let lower = text.to_ascii_lowercase();
    match status {
        401 => f.expired_token(),
        403 if lower.contains("token") || lower.contains("unauthorized") => f.expired_token(),
        402 => f.quota(shown, None),
        429 if quota_code => f.quota(shown, None),
        429 => {
            let account_wide = code.starts_with("user_global_rate_limited")
                || code == "integration_rate_limited"
                || code == "agent_mode_limit_exceeded";
            Failure { blame: if account_wide { Blame::Account } else { Blame::Model }, ..f }
        }
        _ => f,
    }
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
