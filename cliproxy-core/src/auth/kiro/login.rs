//! Device logins through AWS SSO-OIDC: AWS Builder ID (the public start URL) and IAM Identity Center (the
//! organisation's start URL and region).
//!
//! register client → start device authorization → the user approves at the verification link → poll `/token`
//! (`authorization_pending`: keep polling; `slow_down`: poll 5 s less often) → store the account in the
//! auth-dir. Identity Center accounts then look up their CodeWhisperer profile (its ARN names the API region);
//! the email is read from the usage limits when Kiro tells it, for the file name.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::tokens::{self, AuthMethod, TokenRecord};
use crate::auth::{Credential, Ctx, DeviceLogin, LoginProvider};
use crate::config::Secret;
use crate::error::{Error, ErrorKind, Result};
use crate::providers::kiro::{Endpoints, valid_region};

/// AWS Builder ID's start URL.
pub const BUILDER_ID_START_URL: &str = "https://view.awsapps.com/start";
/// The scopes Kiro's own client registers with.
pub const SCOPES: &[&str] = &[
    "codewhisperer:completions",
    "codewhisperer:analysis",
    "codewhisperer:conversations",
    "codewhisperer:transformations",
    "codewhisperer:taskassist",
];
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// `login kiro` (options: `{"idc": bool, "start_url": …, "region": …}`).
pub struct KiroLogin;

/// What a login was asked for, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginOptions {
    pub method: AuthMethod,
    pub start_url: String,
    pub region: String,
}

impl LoginOptions {
    pub fn parse(options: &Value) -> Result<LoginOptions> {
        let s = |k: &str| options.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let start_url = s("start_url").or(s("startUrl"));
        let idc = options.get("idc").and_then(Value::as_bool).unwrap_or(false)
            || start_url.is_some_and(|u| u.trim_end_matches('/') != BUILDER_ID_START_URL);
        let region = s("region").unwrap_or("us-east-1").to_owned();
        if !valid_region(&region) {
            return Err(Error::invalid_request(format!("`{region}` is not an AWS region name")));
        }
        if !idc {
            return Ok(LoginOptions { method: AuthMethod::BuilderId, start_url: BUILDER_ID_START_URL.into(), region });
        }
        let Some(url) = start_url else {
            return Err(Error::invalid_request(
                "IAM Identity Center needs your start URL (https://<org>.awsapps.com/start) and its region",
            ));
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(Error::invalid_request(format!("the start URL must be an https:// URL, got `{url}`")));
        }
        Ok(LoginOptions { method: AuthMethod::Idc, start_url: url.to_owned(), region })
    }
}

fn text(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_owned)
}

async fn oidc_call(ctx: &Ctx, url: &str, body: &Value) -> Result<(u16, Value)> {
    let (status, bytes) = tokens::post_json(ctx, url, body, ctx.config.proxy_url.as_deref(), None).await?;
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, v))
}

fn oidc_error(step: &str, status: u16, v: &Value) -> Error {
    let detail = text(v, "error_description").or(text(v, "error")).or(text(v, "message")).unwrap_or_default();
    Error::new(ErrorKind::Authentication, format!("Kiro {step} failed (HTTP {status}): {detail}"))
}

impl LoginProvider for KiroLogin {
    fn start(&self, ctx: Arc<Ctx>, options: Value) -> BoxFuture<'static, Result<DeviceLogin>> {
        async move {
            let opts = LoginOptions::parse(&options)?;
            let endpoints = Endpoints(ctx.config.kiro_endpoints.clone());
            let oidc = endpoints.oidc_base(&opts.region);
            let (status, reg) = oidc_call(
                &ctx,
                &format!("{oidc}/client/register"),
                &json!({"clientName": "Kiro IDE", "clientType": "public", "scopes": SCOPES,
                    "grantTypes": [DEVICE_GRANT, "refresh_token"], "issuerUrl": opts.start_url}),
            )
            .await?;
            let (Some(client_id), Some(client_secret)) = (text(&reg, "clientId"), text(&reg, "clientSecret")) else {
                return Err(oidc_error("client registration", status, &reg));
            };
            let (status, dev) = oidc_call(
                &ctx,
                &format!("{oidc}/device_authorization"),
                &json!({"clientId": client_id, "clientSecret": client_secret, "startUrl": opts.start_url}),
            )
            .await?;
            let (Some(device_code), Some(user_code), Some(verification_uri)) =
                (text(&dev, "deviceCode"), text(&dev, "userCode"), text(&dev, "verificationUri"))
            else {
                return Err(oidc_error("device authorization", status, &dev));
            };
            let expires_in = dev.get("expiresIn").and_then(Value::as_u64).unwrap_or(600);
            let interval = dev.get("interval").and_then(Value::as_u64).unwrap_or(5).max(1);
            let poll = poll(
                ctx.clone(),
                opts.clone(),
                oidc,
                client_id,
                Secret::new(client_secret),
                device_code,
                interval,
                expires_in,
            );
            Ok(DeviceLogin {
                verification_uri,
                verification_uri_complete: text(&dev, "verificationUriComplete"),
                user_code,
                expires_in,
                redirect: None,
                poll: poll.boxed(),
            })
        }
        .boxed()
    }
}

#[allow(clippy::too_many_arguments)]
async fn poll(
    ctx: Arc<Ctx>,
    opts: LoginOptions,
    oidc: String,
    client_id: String,
    client_secret: Secret,
    device_code: String,
    mut interval: u64,
    expires_in: u64,
) -> Result<Arc<Credential>> {
    let deadline = ctx.runtime.now() + Duration::from_secs(expires_in);
    let body = json!({"clientId": client_id, "clientSecret": client_secret.expose(), "deviceCode": device_code,
        "grantType": DEVICE_GRANT});
    loop {
        ctx.runtime.sleep(Duration::from_secs(interval)).await;
        if ctx.runtime.now() > deadline {
            return Err(Error::new(ErrorKind::Authentication, "the Kiro login code expired before it was approved"));
        }
        let (status, v) = match oidc_call(&ctx, &format!("{oidc}/token"), &body).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "Kiro token poll failed; retrying");
                continue;
            }
        };
        if (200..300).contains(&status) {
            let Some(t) = tokens::parse_token_answer(v.to_string().as_bytes()) else {
                return Err(oidc_error("token", status, &v));
            };
            let now = ctx.runtime.now();
            let rec = TokenRecord {
                access_token: Some(Secret::new(t.access_token)),
                refresh_token: t.refresh_token.map(Secret::new),
                profile_arn: t.profile_arn,
                expires_at: Some(now + Duration::from_secs(t.expires_in.unwrap_or(3600))),
                auth_method: Some(opts.method),
                provider: Some(if opts.method == AuthMethod::Idc { "Enterprise" } else { "AWS" }.into()),
                client_id: Some(client_id.clone()),
                client_secret: Some(client_secret.clone()),
                region: Some(opts.region.clone()),
                start_url: Some(opts.start_url.clone()),
                email: None,
                api_region: None,
            };
            return super::store_new_account(&ctx, rec).await;
        }
        match text(&v, "error").as_deref() {
            Some("authorization_pending") => {}
            Some("slow_down") => interval += 5,
            _ => return Err(oidc_error("login", status, &v)),
        }
    }
}

/// The login implementation the registry hands out.
pub fn make() -> Box<dyn LoginProvider> {
    Box::new(KiroLogin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let b = LoginOptions::parse(&json!({})).unwrap();
        assert_eq!((b.method, b.start_url.as_str()), (AuthMethod::BuilderId, BUILDER_ID_START_URL));
        let i = LoginOptions::parse(
            &json!({"idc": true, "start_url": "https://acme.awsapps.com/start", "region": "eu-west-1"}),
        )
        .unwrap();
        assert_eq!((i.method, i.region.as_str()), (AuthMethod::Idc, "eu-west-1"));
        assert!(LoginOptions::parse(&json!({"idc": true})).is_err());
        assert!(
            LoginOptions::parse(&json!({"idc": true, "start_url": "https://a/start", "region": "x.evil.com/"}))
                .is_err()
        );
        assert!(LoginOptions::parse(&json!({"idc": null, "start_url": null, "region": null})).is_ok());
    }
}
