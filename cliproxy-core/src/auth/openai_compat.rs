//! `openai-compatibility` entries: their credentials, and the upstream's `/models` list for entries that name no
//! models of their own.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::{AccountState, AccountType, Credential, Ctx, TokenSource, keys_or_keyless};
use crate::error::Result;
use crate::providers::openai_compat::{OpenAiCompat, parse_model_list};
use crate::providers::{Provider, join_url, parse_headers};

pub const ACCOUNT_TYPE: AccountType =
    AccountType { load_config: Some(load_config_entries), ..AccountType::named("openai-compatibility") };

/// What one key of an entry learns: the upstream's model list, fetched when the entry lists no models.
struct Listing {
    id: String,
    base_url: String,
    proxy_url: Option<String>,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    listed: Arc<RwLock<Vec<String>>>,
}

impl AccountState for Listing {
    fn refresh_models<'a>(&'a self, ctx: &'a Ctx, token: &'a dyn TokenSource) -> BoxFuture<'a, ()> {
        async move {
            let Ok(access) = token.access(ctx, false).await else { return };
            let mut b = http::Request::get(join_url(&self.base_url, "/models"));
            if !access.token.is_empty() {
                b = b.header(http::header::AUTHORIZATION, format!("Bearer {}", access.token.expose()));
            }
            if let Some(h) = b.headers_mut() {
                for (k, v) in &self.headers {
                    h.insert(k.clone(), v.clone());
                }
            }
            if let Some(p) = &self.proxy_url {
                b = b.extension(crate::transport::UpstreamProxy(p.clone()));
            }
            let Ok(req) = b.body(Bytes::new()) else { return };
            let idle = Duration::from_secs(ctx.config.timeouts.idle_seconds.max(1));
            let listed = async {
                let mut resp = ctx.transport.send(req).await.ok()?;
                let body = crate::transport::read_body(&ctx.runtime, &mut resp.body, 8 << 20, idle).await.ok()?;
                if !resp.status.is_success() {
                    return None;
                }
                parse_model_list(&body)
            };
            match listed.await {
                Some(ids) => {
                    tracing::debug!(credential = %self.id, models = ids.len(), "upstream model list refreshed");
                    *self.listed.write().unwrap_or_else(|p| p.into_inner()) = ids;
                }
                None => tracing::debug!(credential = %self.id, "upstream has no usable /models list"),
            }
        }
        .boxed()
    }
}

/// The credentials of the `openai-compatibility` entries: one per key (or one keyless one for a local backend).
pub fn load_config_entries(ctx: &Arc<Ctx>) -> Result<Vec<Arc<Credential>>> {
    let config = &ctx.config;
    let mut out = Vec::new();
    for (i, entry) in config.openai_compatibility.iter().enumerate() {
        let wire = OpenAiCompat::new(&entry.name);
        let listed = wire.listed.clone();
        let provider: Arc<dyn Provider> = Arc::new(wire);
        let headers = parse_headers(&entry.headers, &format!("openai-compatibility[{i}]"))?;
        for (j, key) in keys_or_keyless(&entry.api_key_entries).into_iter().enumerate() {
            let id = format!("openai-compat:{}-{j}", entry.name);
            let proxy_url = key.proxy_url.or_else(|| config.proxy_url.clone());
            // Entries with their own `models` list never need the upstream's.
            let account: Arc<dyn AccountState> = if entry.models.is_empty() {
                Arc::new(Listing {
                    id: id.clone(),
                    base_url: entry.base_url.clone(),
                    proxy_url: proxy_url.clone(),
                    headers: headers.clone(),
                    listed: listed.clone(),
                })
            } else {
                Arc::new(super::Stateless)
            };
            out.push(Arc::new(Credential {
                id,
                provider: provider.clone(),
                account,
                token: Arc::new(super::StaticKey(key.api_key)),
                base_url: Some(entry.base_url.clone()),
                prefix: entry.prefix.clone(),
                priority: entry.priority,
                headers: headers.clone(),
                proxy_url,
                models: entry.models.clone(),
                excluded_models: entry.excluded_models.clone(),
                rate_limit: entry.rate_limit,
                file: None,
            }));
        }
    }
    Ok(out)
}
