//! Anthropic's Messages API, with API keys (`claude-api-key`) or a Claude subscription's OAuth token.
//!
//! API keys go in `x-api-key`. Subscription tokens go in `Authorization: Bearer` and the request dresses as
//! Claude Code does (the only client the subscription serves): the `oauth-2025-04-20` beta merged into the
//! client's betas with Claude Code's defaults, `x-app: cli`, its user agent, `?beta=true`. Either way the
//! client's `anthropic-beta` (and its `anthropic-version`, when it sent one) are forwarded so beta features keep
//! working through the proxy, and a same-dialect body passes through untouched but for the model name.
//! Errors are classified from the status, the error type in the body and the rate-limit headers
//! (`retry-after`, `anthropic-ratelimit-*-reset`, and the subscription's `unified` windows).

use std::time::{Duration, SystemTime};

use bytes::Bytes;

use super::failure::{Blame, Failure, header_str};
use super::{Provider, UpstreamCall, finish_request, join_url, post_json};
use crate::dialects::{Dialect, anthropic};
use crate::error::Result;
use crate::timefmt::{parse_rfc3339, until};

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
pub const API_VERSION: &str = "2023-06-01";

/// The beta that lets a subscription's OAuth token call the API.
pub const OAUTH_BETA: &str = "oauth-2025-04-20";

/// The betas Claude Code sends with a subscription token; each subscription request carries them besides the
/// client's own.
pub const OAUTH_BETAS: &[&str] =
    &["claude-code-20250219", OAUTH_BETA, "interleaved-thinking-2025-05-14", "fine-grained-tool-streaming-2025-05-14"];

/// Claude Code's user agent, sent with subscription tokens when the client is not Claude Code itself.
pub const CLAUDE_CODE_USER_AGENT: &str = "claude-cli/1.0.83 (external, cli)";

/// Listed for keys without a `models` list; any other `claude-*` name is still forwarded.
const CATALOGUE: &[&str] = &[
    "claude-opus-4-5-20251101",
    "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5-20251001",
    "claude-opus-4-1-20250805",
    "claude-sonnet-4-20250514",
    "claude-3-7-sonnet-20250219",
    "claude-3-5-haiku-20241022",
];

/// How a Claude credential proves itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Auth {
    /// `x-api-key` (a Console API key).
    #[default]
    ApiKey,
    /// `Authorization: Bearer` with a subscription's OAuth access token, dressed as Claude Code.
    OAuth,
}

/// The Messages API wire format for one kind of credential.
#[derive(Clone, Copy, Debug, Default)]
pub struct Claude {
    pub auth: Auth,
}

impl Claude {
    pub const fn api_key() -> Claude {
        Claude { auth: Auth::ApiKey }
    }

    pub const fn oauth() -> Claude {
        Claude { auth: Auth::OAuth }
    }

    /// `path` on the credential's base URL; subscription requests add `?beta=true` as Claude Code does.
    fn url(&self, call: &UpstreamCall<'_>, path: &str) -> String {
        let url = join_url(call.base_url.unwrap_or(DEFAULT_BASE_URL), path);
        match self.auth {
            Auth::ApiKey => url,
            Auth::OAuth => url + "?beta=true",
        }
    }

    fn request(&self, call: &UpstreamCall<'_>, path: &str, body: Bytes) -> Result<http::Request<Bytes>> {
        let b = post_json(call, &self.url(call, path));
        let b = match self.auth {
            Auth::ApiKey => api_key_headers(b, call),
            Auth::OAuth => oauth_headers(b, call),
        };
        finish_request(b, body, "claude")
    }
}

impl Provider for Claude {
    fn id(&self) -> &'static str {
        "claude"
    }

    fn dialect(&self) -> Option<Dialect> {
        Some(Dialect::Anthropic)
    }

    fn prefixes(&self) -> Vec<String> {
        vec!["claude".into()]
    }

    fn resolve_model(&self, model: &str) -> Option<String> {
        model.starts_with("claude-").then(|| model.to_owned())
    }

    /// A subscription's models are listed twice: by name, and as `claude/<model>`, the name clients use to ask
    /// for Claude itself when other upstreams (Kiro, Copilot) serve the same model names.
    fn catalogue(&self) -> Vec<String> {
        let names = CATALOGUE.iter().map(|s| (*s).to_owned());
        match self.auth {
            Auth::ApiKey => names.collect(),
            Auth::OAuth => names.flat_map(|n| [format!("claude/{n}"), n]).collect(),
        }
    }

    fn build_http(&self, call: &UpstreamCall<'_>, body: Bytes) -> Result<http::Request<Bytes>> {
        self.request(call, "/v1/messages", body)
    }

    fn count_tokens_request(&self, call: &UpstreamCall<'_>, body: Bytes) -> Option<Result<http::Request<Bytes>>> {
        Some(self.request(call, "/v1/messages/count_tokens", body))
    }

    fn failure(&self, status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> Failure {
        failure(self.auth, status, headers, body, now)
    }
}

/// The client's `anthropic-version`, else the current one.
fn version(call: &UpstreamCall<'_>) -> http::HeaderValue {
    call.client_headers.get("anthropic-version").cloned().unwrap_or(http::HeaderValue::from_static(API_VERSION))
}

fn api_key_headers(mut b: http::request::Builder, call: &UpstreamCall<'_>) -> http::request::Builder {
    b = b.header("x-api-key", call.access.token.expose()).header("anthropic-version", version(call));
    if let Some(beta) = call.client_headers.get("anthropic-beta") {
        b = b.header("anthropic-beta", beta.clone());
    }
    b
}

fn oauth_headers(b: http::request::Builder, call: &UpstreamCall<'_>) -> http::request::Builder {
    let client = call.client_headers;
    // Claude Code's own user agent (with its real version) is kept; any other client is dressed as Claude Code.
    let agent = client
        .get(http::header::USER_AGENT)
        .filter(|v| v.as_bytes().starts_with(b"claude-cli/"))
        .cloned()
        .unwrap_or(http::HeaderValue::from_static(CLAUDE_CODE_USER_AGENT));
    b.header(http::header::AUTHORIZATION, format!("Bearer {}", call.access.token.expose()))
        .header("anthropic-version", version(call))
        .header("anthropic-beta", merged_betas(client))
        .header("anthropic-dangerous-direct-browser-access", "true")
        .header("x-app", "cli")
        .header(http::header::USER_AGENT, agent)
}

/// The client's betas (every `anthropic-beta` header, each a comma-separated list) in their order, then those of
/// [`OAUTH_BETAS`] the client did not name; each once.
pub fn merged_betas(client: &http::HeaderMap) -> String {
    let mut betas: Vec<&str> = Vec::new();
    let named = client.get_all("anthropic-beta").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
    for beta in named.map(str::trim).chain(OAUTH_BETAS.iter().copied()) {
        if !beta.is_empty() && !betas.contains(&beta) {
            betas.push(beta);
        }
    }
    betas.join(",")
}

/// What an Anthropic error answer says: 529 (overloaded) is the service's, not the key's; a rejected
/// subscription window (unified headers) holds the whole account until its reset, the weekly one as an exhausted
/// quota; a plain rate limit waits for the key's `anthropic-ratelimit-*-reset`; an expired OAuth token wants a
/// refresh; any other 401 means the key (or the subscription's login) is dead; a billing error is an exhausted
/// quota.
pub fn failure(auth: Auth, status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> Failure {
    let text = String::from_utf8_lossy(body);
    let f = Failure::from_status(status, headers, anthropic::parse_error(status, body), now);
    match status {
        429 => {
            let windows = unified_windows(headers);
            let rejected = windows.iter().filter(|w| w.status == WindowStatus::Rejected);
            let wait = rejected.clone().filter_map(|w| w.reset).map(|t| until(now, t)).max();
            let weekly = rejected.clone().any(|w| w.name.starts_with("7d"));
            match wait {
                // The weekly window is the subscription's quota: the account waits for it, whatever the model.
                Some(reset) if weekly => {
                    let message = f.error.message().to_owned();
                    f.quota(message, Some(reset))
                }
                // The 5-hour window is account-wide too: every model of the credential waits.
                Some(reset) => Failure { blame: Blame::Account, ..f }.wait_for(reset),
                None if f.wait.is_none() => match standard_reset(headers, now) {
                    Some(reset) => f.wait_for(reset),
                    None => f,
                },
                None => f,
            }
        }
        401 if text.contains("OAuth token has expired") => f.expired_token(),
        401 => {
            let reason = match auth {
                Auth::ApiKey => format!("upstream rejected the API key: {}", f.error.message()),
                Auth::OAuth => format!(
                    "Claude rejected the subscription's login ({}): log in again with `cliproxy-server login claude`",
                    f.error.message()
                ),
            };
            f.suspend(reason)
        }
        400 | 402 if text.contains("billing_error") || text.contains("credit balance") => {
            let message = f.error.message().to_owned();
            f.quota(message, None)
        }
        _ => f,
    }
}

/// Whether a subscription window still admits requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowStatus {
    Allowed,
    /// Used up until its reset.
    Rejected,
    /// A status this code does not know (say `allowed_warning`), kept as sent.
    Other,
}

/// One subscription rate-limit window as the unified headers describe it (`anthropic-ratelimit-unified-5h-*`,
/// `-7d-*`, …): its status, when it resets and how much of it is used (0 to 1), as far as the answer said.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// `5h`, `7d`, `7d_oi` (or whatever the upstream names it), or `unified` for the overall status.
    pub name: String,
    pub status: WindowStatus,
    pub status_text: String,
    pub reset: Option<SystemTime>,
    pub utilization: Option<f64>,
}

const UNIFIED: &str = "anthropic-ratelimit-unified-";

/// Every unified window an answer describes, from its `…-status` headers (resets are unix seconds).
pub fn unified_windows(headers: &http::HeaderMap) -> Vec<Window> {
    let mut out = Vec::new();
    for name in headers.keys().filter_map(|k| k.as_str().strip_prefix(UNIFIED)?.strip_suffix("status")) {
        let value = |field: &str| header_str(headers, &format!("{UNIFIED}{name}{field}")).map(str::trim);
        let Some(text) = value("status") else { continue };
        let status = match text {
            "allowed" => WindowStatus::Allowed,
            "rejected" => WindowStatus::Rejected,
            _ => WindowStatus::Other,
        };
        let reset =
            value("reset").and_then(|v| v.parse::<u64>().ok()).map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        out.push(Window {
            name: name.strip_suffix('-').filter(|n| !n.is_empty()).unwrap_or("unified").to_owned(),
            status,
            status_text: text.to_owned(),
            reset,
            utilization: value("utilization").and_then(|v| v.parse::<f64>().ok()).filter(|u| u.is_finite()),
        });
    }
    out
}

/// The earliest of the API key's `anthropic-ratelimit-*-reset` times (RFC 3339) whose remaining count is 0.
fn standard_reset(headers: &http::HeaderMap, now: SystemTime) -> Option<std::time::Duration> {
    ["requests", "tokens", "input-tokens", "output-tokens"]
        .iter()
        .filter(|k| header_str(headers, &format!("anthropic-ratelimit-{k}-remaining")) == Some("0"))
        .filter_map(|k| header_str(headers, &format!("anthropic-ratelimit-{k}-reset")).and_then(parse_rfc3339))
        .map(|t| until(now, t))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::providers::Access;
    use crate::routing::classify::{Cooldown, ErrorClass, Length, Scope, decide};

    fn classify(status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> ErrorClass {
        decide(failure(Auth::ApiKey, status, headers, body, now))
    }

    fn hdrs(pairs: &[(&str, &str)]) -> http::HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap())).collect()
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_755_780_000)
    }

    fn err(t: &str, m: &str) -> Vec<u8> {
        format!(r#"{{"type":"error","error":{{"type":"{t}","message":"{m}"}},"request_id":"req_1"}}"#).into_bytes()
    }

    #[test]
    fn rate_limit_with_retry_after() {
        let c = classify(429, &hdrs(&[("retry-after", "30")]), &err("rate_limit_error", "slow"), now());
        assert_eq!(c.error.kind(), ErrorKind::RateLimited);
        assert_eq!(c.cooldown.unwrap().length, Length::Fixed(Duration::from_secs(30)));
        assert!(c.retry_other);
    }

    #[test]
    fn unified_window_cools_whole_credential_until_latest_reset() {
        let h = hdrs(&[
            ("anthropic-ratelimit-unified-status", "rejected"),
            ("anthropic-ratelimit-unified-5h-status", "rejected"),
            ("anthropic-ratelimit-unified-5h-reset", "1755783600"),
            ("anthropic-ratelimit-unified-7d-status", "allowed"),
            ("anthropic-ratelimit-unified-7d-reset", "1756000000"),
        ]);
        let c = classify(429, &h, &err("rate_limit_error", "limit"), now());
        assert_eq!(
            c.cooldown,
            Some(Cooldown { scope: Scope::Credential, length: Length::Fixed(Duration::from_secs(3600)) })
        );
        assert_eq!(c.error.retry_after(), Some(Duration::from_secs(3600)));
    }

    #[test]
    fn standard_reset_headers_used_without_retry_after() {
        let h = hdrs(&[
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "2025-08-21T12:40:59Z"),
        ]);
        let c = classify(429, &h, &err("rate_limit_error", "limit"), now());
        assert_eq!(c.cooldown.unwrap().length, Length::Fixed(Duration::from_secs(59)));
    }

    #[test]
    fn overloaded_is_not_the_keys_fault() {
        let c = classify(529, &hdrs(&[]), &err("overloaded_error", "Overloaded"), now());
        assert!(c.retry_other);
        assert!(c.cooldown.is_none());
    }

    #[test]
    fn auth_failures() {
        let c = classify(401, &hdrs(&[]), &err("authentication_error", "invalid x-api-key"), now());
        assert!(c.disable.is_some() && !c.refresh);
        let c = classify(
            401,
            &hdrs(&[]),
            &err(
                "authentication_error",
                "OAuth token has expired. Please obtain a new token or refresh your existing token.",
            ),
            now(),
        );
        assert!(c.refresh && c.disable.is_none());
    }

    #[test]
    fn billing_is_quota() {
        let c = classify(400, &hdrs(&[]), &err("invalid_request_error", "Your credit balance is too low"), now());
        assert_eq!(c.error.kind(), ErrorKind::QuotaExceeded);
        assert_eq!(c.cooldown.unwrap().scope, Scope::Credential);
    }

    #[test]
    fn bad_request_is_not_retried() {
        let c = classify(400, &hdrs(&[]), &err("invalid_request_error", "max_tokens: Field required"), now());
        assert!(!c.retry_other);
        assert_eq!(c.error.kind(), ErrorKind::InvalidRequest);
    }

    fn built(wire: Claude, client: &[(&str, &str)], base: Option<&str>) -> http::Request<Bytes> {
        let access = Access { token: crate::config::Secret::new("tok-1"), base_url: None };
        let client = hdrs(client);
        let call = UpstreamCall {
            access: &access,
            base_url: base,
            headers: &[],
            proxy_url: None,
            model: "claude-sonnet-4-5",
            stream: true,
            client_headers: &client,
        };
        wire.build_http(&call, Bytes::from_static(b"{}")).unwrap()
    }

    #[test]
    fn api_keys_go_in_x_api_key_with_the_clients_betas() {
        let r = built(Claude::api_key(), &[("anthropic-beta", "a-1"), ("user-agent", "sdk/1")], None);
        assert_eq!(r.uri(), "https://api.anthropic.com/v1/messages");
        let h = r.headers();
        assert_eq!(h["x-api-key"], "tok-1");
        assert_eq!(h["anthropic-beta"], "a-1");
        assert_eq!(h["anthropic-version"], API_VERSION);
        assert!(!h.contains_key("authorization") && !h.contains_key("x-app"));
    }

    #[test]
    fn oauth_tokens_are_bearer_dressed_as_claude_code() {
        let client = [("anthropic-beta", "a-1, oauth-2025-04-20"), ("anthropic-beta", "b-2"), ("user-agent", "sdk/1")];
        let r = built(Claude::oauth(), &client, Some("http://up.test/"));
        assert_eq!(r.uri(), "http://up.test/v1/messages?beta=true");
        let h = r.headers();
        assert_eq!(h["authorization"], "Bearer tok-1");
        assert!(!h.contains_key("x-api-key"));
        assert_eq!(
            h["anthropic-beta"],
            "a-1,oauth-2025-04-20,b-2,claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"
        );
        assert_eq!(h["anthropic-dangerous-direct-browser-access"], "true");
        assert_eq!(h["x-app"], "cli");
        assert_eq!(h["user-agent"], CLAUDE_CODE_USER_AGENT);
        assert_eq!(h.get_all("user-agent").iter().count(), 1);

        let r = built(Claude::oauth(), &[("user-agent", "claude-cli/2.1.0 (external, sdk-cli)")], None);
        assert_eq!(r.headers()["user-agent"], "claude-cli/2.1.0 (external, sdk-cli)", "Claude Code keeps its own");
        assert_eq!(r.headers()["anthropic-beta"], OAUTH_BETAS.join(","));
    }

    #[test]
    fn subscriptions_list_their_models_also_with_the_claude_prefix() {
        let oauth = Claude::oauth().catalogue();
        assert!(oauth.contains(&"claude-sonnet-4-5-20250929".to_owned()));
        assert!(oauth.contains(&"claude/claude-sonnet-4-5-20250929".to_owned()));
        assert!(Claude::api_key().catalogue().iter().all(|m| m.starts_with("claude-")));
    }

    #[test]
    fn unified_windows_are_read_with_reset_and_utilization() {
        let h = hdrs(&[
            ("anthropic-ratelimit-unified-status", "allowed"),
            ("anthropic-ratelimit-unified-5h-status", "allowed"),
            ("anthropic-ratelimit-unified-5h-reset", "1755783600"),
            ("anthropic-ratelimit-unified-5h-utilization", "0.25"),
            ("anthropic-ratelimit-unified-7d-status", "allowed_warning"),
            ("anthropic-ratelimit-unified-7d-reset", "nonsense"),
        ]);
        let mut w = unified_windows(&h);
        w.sort_by(|a, b| a.name.cmp(&b.name));
        let names: Vec<&str> = w.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["5h", "7d", "unified"]);
        assert_eq!(w[0].reset, Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_755_783_600)));
        assert_eq!((w[0].status, w[0].utilization), (WindowStatus::Allowed, Some(0.25)));
        assert_eq!(
            (w[1].status, w[1].status_text.as_str(), w[1].reset),
            (WindowStatus::Other, "allowed_warning", None)
        );
        assert!(unified_windows(&hdrs(&[("retry-after", "3")])).is_empty());
    }

    #[test]
    fn a_rejected_weekly_window_is_an_exhausted_quota_until_its_reset() {
        let h = hdrs(&[
            ("anthropic-ratelimit-unified-status", "rejected"),
            ("anthropic-ratelimit-unified-7d-status", "rejected"),
            ("anthropic-ratelimit-unified-7d-reset", "1756000000"),
        ]);
        let c = classify(429, &h, &err("rate_limit_error", "weekly limit"), now());
        assert_eq!(c.error.kind(), ErrorKind::QuotaExceeded);
        assert_eq!(
            c.cooldown,
            Some(Cooldown { scope: Scope::Credential, length: Length::Fixed(Duration::from_secs(220_000)) })
        );
    }

    #[test]
    fn a_refused_subscription_login_says_to_log_in_again() {
        let body = err("authentication_error", "Invalid authentication credentials");
        let c = decide(failure(Auth::OAuth, 401, &hdrs(&[]), &body, now()));
        assert!(!c.refresh);
        assert!(c.disable.unwrap().contains("login claude"));
    }
}
