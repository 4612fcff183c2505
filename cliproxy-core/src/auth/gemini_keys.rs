//! `gemini-api-key` entries: one credential per key, sent to the entry's `base-url` or else
//! `gemini-endpoints.api-base-url`. A key whose entry names no models learns the models it serves from
//! `GET /v1beta/models` ([`super::listing`]).

use std::sync::Arc;

use super::listing::Listing;
use super::{AccountState, AccountType, Credential, Ctx, Stateless, key_credential};
use crate::error::Result;
use crate::providers::gemini::{Gemini, model_list_request, parse_model_list};
use crate::providers::parse_headers;

pub const ACCOUNT_TYPE: AccountType =
    AccountType { load_config: Some(load_keys), ..AccountType::named("gemini-api-key") };

/// The credentials of the `gemini-api-key` entries, `gemini:key-<index>`.
pub fn load_keys(ctx: &Arc<Ctx>) -> Result<Vec<Arc<Credential>>> {
    let config = &ctx.config;
    let mut out = Vec::new();
    for (i, k) in config.gemini_api_key.iter().enumerate() {
        let id = format!("gemini:key-{i}");
        let headers = parse_headers(&k.headers, &format!("gemini-api-key[{i}]"))?;
        let base_url = k.base_url.clone().unwrap_or_else(|| config.gemini_endpoints.api_base_url.clone());
        let wire = Gemini::default();
        let account: Arc<dyn AccountState> = if k.models.is_empty() {
            let list_base = base_url.clone();
            Arc::new(Listing {
                id: id.clone(),
                request: Box::new(move |access| model_list_request(Some(&list_base), access.token.expose())),
                parse: parse_model_list,
                headers: headers.clone(),
                proxy_url: k.proxy_url.clone().or_else(|| config.proxy_url.clone()),
                listed: wire.listed.clone(),
            })
        } else {
            Arc::new(Stateless)
        };
        out.push(key_credential(config, id, Arc::new(wire), account, k, headers, Some(base_url)));
    }
    Ok(out)
}
