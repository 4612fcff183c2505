//! `openai-compatibility` entries: their credentials, and the upstream's `/models` list for entries that name no
//! models of their own.

use std::sync::Arc;

use super::listing::Listing;
use super::{AccountState, AccountType, Credential, Ctx, keys_or_keyless};
use crate::error::Result;
use crate::providers::openai_compat::{OpenAiCompat, model_list_request, parse_model_list};
use crate::providers::{Provider, parse_headers};

pub const ACCOUNT_TYPE: AccountType =
    AccountType { load_config: Some(load_config_entries), ..AccountType::named("openai-compatibility") };

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
                let base_url = entry.base_url.clone();
                Arc::new(Listing {
                    id: id.clone(),
                    request: Box::new(move |access| model_list_request(&base_url, access.token.expose())),
                    parse: parse_model_list,
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
