//! HTTP for account lifecycles: one bounded request/answer exchange over the transport seam, and the `oauth2`
//! crate's async HTTP client hook on top of it, so every OAuth grant (device code, authorization code with PKCE,
//! refresh) runs through the same transport, timeouts and outbound proxy as the rest of cliproxy.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;

use super::Ctx;
use crate::error::{Error, Result};
use crate::transport::{TransportError, TransportErrorKind, UpstreamProxy, read_body, with_timeout};

/// Largest answer an account endpoint may send (token, profile, usage and model-list answers are small).
const MAX_ANSWER: usize = 4 << 20;

/// One upstream answer, read whole.
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// Sends `req` and reads the whole answer, within the configured first-byte and idle timeouts. `who` names the
/// upstream in the timeout message.
pub async fn send(ctx: &Ctx, req: http::Request<Bytes>, who: &str) -> Result<Answer> {
    let t = &ctx.config.timeouts;
    let first = Duration::from_secs(t.first_byte_seconds.max(1));
    let idle = Duration::from_secs(t.idle_seconds.max(1));
    let mut resp = with_timeout(&ctx.runtime, first, ctx.transport.send(req), || {
        Err(TransportError::new(TransportErrorKind::Timeout, format!("{who} did not answer in time")))
    })
    .await
    .map_err(Error::from)?;
    let body = read_body(&ctx.runtime, &mut resp.body, MAX_ANSWER, idle).await?;
    Ok(Answer { status: resp.status.as_u16(), headers: resp.headers, body })
}

/// `oauth2`'s HTTP client: requests go through [`send`] with the account's outbound proxy.
///
/// Token endpoints that answer an error with status 200 (GitHub's device flow does: `{"error":
/// "authorization_pending"}`) are read as the 400 that RFC 6749 §5.2 prescribes, so the grant logic sees the
/// error instead of a token answer that fails to parse.
pub struct OAuthHttp<'a> {
    ctx: &'a Ctx,
    proxy: Option<String>,
    who: &'static str,
}

impl<'a> OAuthHttp<'a> {
    pub fn new(ctx: &'a Ctx, proxy: Option<String>, who: &'static str) -> Self {
        OAuthHttp { ctx, proxy, who }
    }
}

/// A token-endpoint answer with status 200 that is really an error.
fn is_error_in_200(status: u16, body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe {
        error: Option<serde_json::Value>,
        access_token: Option<serde_json::Value>,
    }
    status == 200 && serde_json::from_slice::<Probe>(body).is_ok_and(|p| p.error.is_some() && p.access_token.is_none())
}

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthHttp<'_> {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let mut req = http::Request::from_parts(parts, Bytes::from(body));
            if let Some(p) = &self.proxy {
                req.extensions_mut().insert(UpstreamProxy(p.clone()));
            }
            let answer = send(self.ctx, req, self.who).await?;
            let status = if is_error_in_200(answer.status, &answer.body) { 400 } else { answer.status };
            let mut resp = http::Response::new(answer.body.to_vec());
            *resp.status_mut() = http::StatusCode::from_u16(status)
                .map_err(|_| Error::upstream(Some(status), format!("{} answered an invalid status", self.who)))?;
            *resp.headers_mut() = answer.headers;
            Ok(resp)
        })
    }
}

/// The runtime's clock in the form `oauth2` polls with, so device-flow deadlines follow the runtime seam.
pub fn oauth_clock(ctx: &Ctx) -> impl Fn() -> chrono::DateTime<chrono::Utc> + Send + Sync + 'static {
    let runtime = ctx.runtime.clone();
    move || chrono::DateTime::<chrono::Utc>::from(runtime.now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_in_200_are_recognised() {
        assert!(is_error_in_200(200, br#"{"error":"authorization_pending","error_description":"x"}"#));
        assert!(!is_error_in_200(200, br#"{"access_token":"t","token_type":"bearer"}"#));
        assert!(!is_error_in_200(400, br#"{"error":"slow_down"}"#));
        assert!(!is_error_in_200(200, b"access_token=t&token_type=bearer"));
    }
}
