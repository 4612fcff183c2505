//! What an API key learns: its upstream's model list, for keys whose entry names no models of its own. The wire
//! (`providers/<name>`) builds the request and reads the answer; this fetches it through the transport seam at
//! startup and hourly, and shares the list with the wire value, which offers and resolves those models.

use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;

use super::{AccountState, Ctx, TokenSource, fetch};
use crate::error::Result;
use crate::providers::Access;

/// Builds the model-list request for an access token.
pub type ListRequest = Box<dyn Fn(&Access) -> Result<http::Request<Bytes>> + Send + Sync>;

/// The model-list state of one key.
pub struct Listing {
    /// The credential id, for logs.
    pub id: String,
    pub request: ListRequest,
    /// The model ids of a successful answer, `None` for an answer that is not a model list.
    pub parse: fn(&[u8]) -> Option<Vec<String>>,
    /// The entry's extra headers and outbound proxy, as its other requests have them.
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub proxy_url: Option<String>,
    /// Shared with the wire value.
    pub listed: Arc<RwLock<Vec<String>>>,
}

impl AccountState for Listing {
    fn refresh_models<'a>(&'a self, ctx: &'a Ctx, token: &'a dyn TokenSource) -> BoxFuture<'a, ()> {
        async move {
            let listed = async {
                let access = token.access(ctx, false).await.ok()?;
                let mut req = (self.request)(&access).ok()?;
                for (k, v) in &self.headers {
                    req.headers_mut().insert(k.clone(), v.clone());
                }
                if let Some(p) = &self.proxy_url {
                    req.extensions_mut().insert(crate::transport::UpstreamProxy(p.clone()));
                }
                let answer = fetch::send(ctx, req, "the model list").await.ok()?;
                if !(200..300).contains(&answer.status) {
                    return None;
                }
                (self.parse)(&answer.body)
            };
            match listed.await {
                Some(ids) => {
                    tracing::debug!(credential = %self.id, models = ids.len(), "upstream model list refreshed");
                    *self.listed.write().unwrap_or_else(|p| p.into_inner()) = ids;
                }
                None => tracing::debug!(credential = %self.id, "upstream has no usable model list"),
            }
        }
        .boxed()
    }
}
