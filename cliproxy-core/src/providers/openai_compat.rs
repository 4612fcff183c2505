//! Any OpenAI-compatible Chat Completions backend (`openai-compatibility` entries; also `OPENAI_API_KEY`).
//!
//! The request goes to `{base-url}/chat/completions` with `Authorization: Bearer`. An entry without a
//! `models` list is a catch-all: it serves any model name that no other credential serves explicitly.

use std::sync::RwLock;
use std::time::SystemTime;

use futures::FutureExt;
use futures::future::BoxFuture;

use bytes::Bytes;

use super::{Ctx, Provider, UpstreamCall, finish_request, join_url, post_json};
use crate::credential::Credential;
use crate::dialects::{Dialect, openai_chat};
use crate::error::{ErrorKind, Result};
use crate::routing::classify::{Cooldown, ErrorClass, Length, MIN_30, Scope, default_class, header_str};
use crate::timefmt::parse_go_duration;

/// One `openai-compatibility` entry; its `name` is the credential id's middle part and a model prefix.
pub struct OpenAiCompat {
    pub name: String,
    /// The upstream's own `/models` list, for entries without a `models` list (shown in `/v1/models`).
    listed: RwLock<Vec<String>>,
}

impl OpenAiCompat {
    pub fn new(name: &str) -> Self {
        OpenAiCompat { name: name.to_owned(), listed: RwLock::new(Vec::new()) }
    }
}

#[derive(serde::Deserialize)]
struct ModelList {
    data: Vec<ModelId>,
}

#[derive(serde::Deserialize)]
struct ModelId {
    id: String,
}

impl Provider for OpenAiCompat {
    fn id(&self) -> &'static str {
        "openai-compat"
    }

    fn dialect(&self) -> Option<Dialect> {
        Some(Dialect::OpenAiChat)
    }

    fn prefixes(&self, _credential: &Credential) -> Vec<String> {
        vec![self.name.clone()]
    }

    fn resolve_model(&self, _credential: &Credential, model: &str) -> Option<String> {
        Some(model.to_owned())
    }

    fn is_catch_all(&self, credential: &Credential) -> bool {
        credential.models.is_empty()
    }

    fn catalogue(&self, _credential: &Credential) -> Vec<String> {
        self.listed.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn refresh_models<'a>(&'a self, ctx: &'a Ctx, credential: &'a Credential) -> BoxFuture<'a, ()> {
        async move {
            if !credential.models.is_empty() {
                return;
            }
            let Ok(access) = credential.token.access(ctx, false).await else { return };
            let base = credential.base_url.as_deref().unwrap_or("https://api.openai.com/v1");
            let mut b = http::Request::get(join_url(base, "/models"));
            if !access.token.is_empty() {
                b = b.header(http::header::AUTHORIZATION, format!("Bearer {}", access.token.expose()));
            }
            if let Some(p) = &credential.proxy_url {
                b = b.extension(crate::transport::UpstreamProxy(p.clone()));
            }
            let Ok(req) = b.body(Bytes::new()) else { return };
            let idle = std::time::Duration::from_secs(ctx.config.timeouts.idle_seconds.max(1));
            let listed = async {
                let mut resp = ctx.transport.send(req).await.ok()?;
                let body = crate::transport::read_body(&ctx.runtime, &mut resp.body, 8 << 20, idle).await.ok()?;
                if !resp.status.is_success() {
                    return None;
                }
                serde_json::from_slice::<ModelList>(&body).ok()
            };
            match listed.await {
                Some(list) => {
                    let ids: Vec<String> = list.data.into_iter().map(|m| m.id).collect();
                    tracing::debug!(credential = %credential.id, models = ids.len(), "upstream model list refreshed");
                    *self.listed.write().unwrap_or_else(|p| p.into_inner()) = ids;
                }
                None => tracing::debug!(credential = %credential.id, "upstream has no usable /models list"),
            }
        }
        .boxed()
    }

    fn build_http(&self, call: &UpstreamCall<'_>, body: Bytes) -> Result<http::Request<Bytes>> {
        let base = call.credential.base_url.as_deref().unwrap_or("https://api.openai.com/v1");
        let mut b = post_json(call, &join_url(base, "/chat/completions"));
        let token = call.access.token.expose();
        if !token.is_empty() {
            b = b.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        finish_request(b, body, "openai-compatibility")
    }

    fn classify_error(&self, status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> ErrorClass {
        classify(status, headers, body, now)
    }
}

/// OpenAI's signals: `insufficient_quota` is billing (long, whole key), `rate_limit_exceeded` is transient
/// (`retry-after`, else the `x-ratelimit-reset-*` durations), `invalid_api_key` disables the key.
pub fn classify(status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> ErrorClass {
    let error = openai_chat::parse_error(status, body);
    let text = String::from_utf8_lossy(body);
    let mut class = default_class(status, headers, error, now);
    match status {
        429 if text.contains("insufficient_quota") => {
            class.error = crate::Error::new(ErrorKind::QuotaExceeded, class.error.message().to_owned());
            class.cooldown = Some(Cooldown { scope: Scope::Credential, length: Length::Fixed(MIN_30) });
        }
        429 if class.cooldown.is_some_and(|c| c.length == Length::Backoff) => {
            let reset = ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
                .iter()
                .filter_map(|h| header_str(headers, h).and_then(parse_go_duration))
                .max();
            if let Some(d) = reset.filter(|d| !d.is_zero()) {
                class.cooldown = Some(Cooldown { scope: Scope::Model, length: Length::Fixed(d) });
                class.error = class.error.clone().with_retry_after(d);
            }
        }
        401 if text.contains("invalid_api_key") => {
            class.disable = Some(format!("upstream rejected the API key: {}", class.error.message()));
        }
        _ => {}
    }
    class
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn hdrs(pairs: &[(&str, &str)]) -> http::HeaderMap {
        pairs.iter().map(|(k, v)| (http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap())).collect()
    }

    const NOW: SystemTime = SystemTime::UNIX_EPOCH;

    #[test]
    fn quota_vs_rate_limit() {
        let q = br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        let c = classify(429, &hdrs(&[]), q, NOW);
        assert_eq!(c.error.kind(), ErrorKind::QuotaExceeded);
        assert_eq!(c.cooldown.unwrap().scope, Scope::Credential);

        let r = br#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        let c = classify(429, &hdrs(&[("retry-after", "20")]), r, NOW);
        assert_eq!(c.error.kind(), ErrorKind::RateLimited);
        assert_eq!(c.cooldown.unwrap().length, Length::Fixed(Duration::from_secs(20)));

        let c = classify(
            429,
            &hdrs(&[("x-ratelimit-reset-requests", "6m0s"), ("x-ratelimit-reset-tokens", "12ms")]),
            r,
            NOW,
        );
        assert_eq!(c.cooldown.unwrap().length, Length::Fixed(Duration::from_secs(360)));
    }

    #[test]
    fn invalid_key_disables() {
        let b = br#"{"error":{"message":"Incorrect API key provided: sk-***","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        let c = classify(401, &hdrs(&[]), b, NOW);
        assert!(c.disable.is_some());
        assert_eq!(c.error.kind(), ErrorKind::Authentication);
    }
}
