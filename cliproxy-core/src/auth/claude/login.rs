//! `login claude`: Claude Code's authorization-code grant with PKCE (S256).
//!
//! The authorize URL (built by `oauth2`, with Claude's `code=true`) names a redirect URI on this machine,
//! `http://localhost:<callback_port>/callback` (54545 by default, as Claude Code's client is registered). The
//! browser comes back there with `code` and `state`; a callback listener in the server (or the user, pasting
//! `code#state` from a remote machine) hands them to the login flow, which checks the state. The code is then
//! exchanged (JSON body, see the parent module) and the account stored as `claude-<email>.json`, the email taken
//! from the token answer, else from the profile endpoint.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::channel::oneshot;
use futures::future::{BoxFuture, Either};
use serde_json::{Value, json};

use super::files::Record;
use super::{CLIENT_ID, GrantFailure, grant, profile_email, store_account};
use crate::auth::{Credential, Ctx, DeviceLogin, LoginProvider, Redirect};
use crate::error::{Error, ErrorKind, Result};
use crate::providers::join_url;

/// The port Claude Code's OAuth client expects the browser back on.
pub const DEFAULT_CALLBACK_PORT: u16 = 54545;

/// The scopes Claude Code asks for.
pub const SCOPES: &[&str] =
    &["user:profile", "user:inference", "user:sessions:claude_code", "user:mcp_servers", "user:file_upload"];

/// How long a started login waits for its code.
const EXPIRES_IN: Duration = Duration::from_secs(600);

pub struct ClaudeLogin;

/// The login implementation the registry hands out.
pub fn make() -> Box<dyn LoginProvider> {
    Box::new(ClaudeLogin)
}

/// The `callback_port` option: absent or null for the default; else a port number.
fn requested_port(options: &Value) -> Result<Option<u16>> {
    match options.get("callback_port") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .map(Some)
            .ok_or_else(|| Error::invalid_request(format!("callback_port must be a port number, got {v}"))),
    }
}

fn login_error(message: String) -> Error {
    Error::new(ErrorKind::Authentication, message)
}

impl LoginProvider for ClaudeLogin {
    fn callback_port(&self, options: &Value) -> Option<u16> {
        Some(requested_port(options).ok().flatten().unwrap_or(DEFAULT_CALLBACK_PORT))
    }

    fn start(&self, ctx: Arc<Ctx>, options: Value) -> BoxFuture<'static, Result<DeviceLogin>> {
        async move {
            let port = requested_port(&options)?.unwrap_or(DEFAULT_CALLBACK_PORT);
            if port == 0 {
                return Err(Error::invalid_request(
                    "callback_port 0 means \"any free port\": bind one and pass the port it got",
                ));
            }
            let endpoints = &ctx.config.claude_endpoints;
            let bad = |what: &str, e: oauth2::url::ParseError| Error::config(format!("{what} is not a URL: {e}"));
            let authorize = join_url(&endpoints.auth_base_url, "/oauth/authorize");
            let redirect_uri = format!("http://localhost:{port}/callback");
            let client = oauth2::basic::BasicClient::new(oauth2::ClientId::new(CLIENT_ID.to_owned()))
                .set_auth_uri(oauth2::AuthUrl::new(authorize).map_err(|e| bad("claude-endpoints.auth-base-url", e))?)
                .set_redirect_uri(
                    oauth2::RedirectUrl::new(redirect_uri.clone()).map_err(|e| bad("the redirect URI", e))?,
                );
            let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256();
            let (url, state) = client
                .authorize_url(oauth2::CsrfToken::new_random)
                .add_extra_param("code", "true")
                .add_scopes(SCOPES.iter().map(|s| oauth2::Scope::new((*s).to_owned())))
                .set_pkce_challenge(challenge)
                .url();
            let (tx, rx) = oneshot::channel();
            let exchange = Exchange {
                ctx: ctx.clone(),
                verifier: verifier.secret().clone(),
                redirect_uri: redirect_uri.clone(),
                state: state.secret().clone(),
            };
            Ok(DeviceLogin {
                verification_uri: url.to_string(),
                verification_uri_complete: None,
                user_code: String::new(),
                expires_in: EXPIRES_IN.as_secs(),
                redirect: Some(Redirect { uri: redirect_uri, state: state.secret().clone(), code: tx }),
                poll: exchange.finish(rx).boxed(),
            })
        }
        .boxed()
    }
}

/// What the code exchange needs once the code arrives.
struct Exchange {
    ctx: Arc<Ctx>,
    verifier: String,
    redirect_uri: String,
    state: String,
}

impl Exchange {
    /// Waits for the code (at most [`EXPIRES_IN`]), exchanges it and stores the account.
    async fn finish(self, code: oneshot::Receiver<Result<String>>) -> Result<Arc<Credential>> {
        let ctx = &self.ctx;
        let code = match futures::future::select(code, ctx.runtime.sleep(EXPIRES_IN)).await {
            Either::Left((Ok(code), _)) => code?,
            Either::Left((Err(_), _)) => {
                return Err(Error::new(ErrorKind::Cancelled, "the Claude login was abandoned"));
            }
            Either::Right(_) => {
                return Err(login_error(format!(
                    "the Claude login got no code within {} minutes; run it again",
                    EXPIRES_IN.as_secs() / 60
                )));
            }
        };
        let body = json!({"grant_type": "authorization_code", "code": code, "state": self.state,
            "client_id": CLIENT_ID, "redirect_uri": self.redirect_uri, "code_verifier": self.verifier});
        let proxy = ctx.config.proxy_url.clone();
        let granted = grant(ctx, proxy.as_deref(), body).await.map_err(|f| match f {
            GrantFailure::Refused(said) => {
                login_error(format!("Claude refused the login code ({said}); run the login again"))
            }
            GrantFailure::Other(e) => e,
        })?;
        let email = match granted.email {
            Some(e) => e,
            None => profile_email(ctx, &granted.access, proxy.as_deref()).await?,
        };
        let rec = Record {
            expires_at: Some(ctx.runtime.now() + Duration::from_secs(granted.expires_in.unwrap_or(3600))),
            access: Some(granted.access),
            refresh: granted.refresh,
            email: Some(email),
        };
        store_account(ctx, rec, json!({}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{Canned, FakeRuntime, ScriptedTransport};

    fn ctx(dir: &std::path::Path) -> (Arc<Ctx>, Arc<ScriptedTransport>, Arc<FakeRuntime>) {
        let rt = Arc::new(FakeRuntime::new());
        let transport = Arc::new(ScriptedTransport::default());
        let mut config = crate::config::Config { auth_dir: dir.display().to_string(), ..Default::default() };
        config.claude_endpoints.auth_base_url = "http://idp.test/".into();
        config.claude_endpoints.token_url = "http://idp.test/v1/oauth/token".into();
        config.claude_endpoints.api_base_url = "http://api.test".into();
        (Arc::new(Ctx { transport: transport.clone(), runtime: rt.clone(), config: Arc::new(config) }), transport, rt)
    }

    fn query(url: &str) -> std::collections::HashMap<String, String> {
        let q = url.split_once('?').unwrap().1;
        form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    }

    #[test]
    fn the_authorize_url_asks_for_a_pkce_protected_code() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, _, _) = ctx(dir.path());
        let login = futures::executor::block_on(ClaudeLogin.start(ctx, json!({"callback_port": 4242}))).unwrap();
        assert!(login.verification_uri.starts_with("http://idp.test/oauth/authorize?"), "{}", login.verification_uri);
        let q = query(&login.verification_uri);
        assert_eq!(q["client_id"], CLIENT_ID);
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["code"], "true");
        assert_eq!(q["redirect_uri"], "http://localhost:4242/callback");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"].len(), 43);
        assert_eq!(q["scope"], SCOPES.join(" "));
        let redirect = login.redirect.unwrap();
        assert_eq!(
            (redirect.uri.as_str(), redirect.state.as_str()),
            ("http://localhost:4242/callback", q["state"].as_str())
        );
        assert!(login.user_code.is_empty());
    }

    #[test]
    fn ports_are_checked() {
        assert_eq!(ClaudeLogin.callback_port(&json!({})), Some(DEFAULT_CALLBACK_PORT));
        assert_eq!(ClaudeLogin.callback_port(&json!({"callback_port": 0})), Some(0));
        assert!(requested_port(&json!({"callback_port": 70000})).is_err());
        assert!(requested_port(&json!({"callback_port": "x"})).is_err());
        let dir = tempfile::tempdir().unwrap();
        let (ctx, _, _) = ctx(dir.path());
        let e = futures::executor::block_on(ClaudeLogin.start(ctx, json!({"callback_port": 0}))).err().unwrap();
        assert!(e.message().contains("any free port"));
    }

    #[test]
    fn the_code_is_exchanged_with_the_verifier_and_the_account_stored() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, transport, _) = ctx(dir.path());
        let login = futures::executor::block_on(ClaudeLogin.start(ctx, json!({}))).unwrap();
        let redirect = login.redirect.unwrap();
        let state = redirect.state.clone();
        transport.push(Canned::json(
            200,
            r#"{"access_token":"at-1","refresh_token":"rt-1","token_type":"Bearer","expires_in":28800,"organization":{"uuid":"o"}}"#,
        ));
        transport.push(Canned::json(200, r#"{"account":{"uuid":"u","email":"pro@example.com"}}"#));
        redirect.code.send(Ok("the-code".into())).unwrap();
        let cred = futures::executor::block_on(login.poll).unwrap();
        assert_eq!(cred.id, "claude:claude-pro@example.com");
        let sent = transport.requests.lock().unwrap();
        let body: Value = serde_json::from_slice(sent[0].body()).unwrap();
        assert_eq!(body["grant_type"], "authorization_code");
        assert_eq!((body["code"].as_str(), body["state"].as_str()), (Some("the-code"), Some(state.as_str())));
        assert_eq!(body["redirect_uri"], "http://localhost:54545/callback");
        assert!(body["code_verifier"].as_str().unwrap().len() >= 43);
        assert_eq!(sent[1].uri(), "http://api.test/api/oauth/profile");
        assert_eq!(sent[1].headers()["authorization"], "Bearer at-1");
        let file = dir.path().join("claude-pro@example.com.json");
        let v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["email"].as_str(), v["refresh_token"].as_str()),
            (Some("claude"), Some("pro@example.com"), Some("rt-1"))
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn a_refused_code_fails_the_login() {
        let dir = tempfile::tempdir().unwrap();
        let (ctx, transport, _) = ctx(dir.path());
        let login = futures::executor::block_on(ClaudeLogin.start(ctx, json!({}))).unwrap();
        transport.push(Canned::json(
            400,
            r#"{"error":"invalid_grant","error_description":"Invalid 'code_verifier' in request."}"#,
        ));
        login.redirect.unwrap().code.send(Ok("c".into())).unwrap();
        let e = futures::executor::block_on(login.poll).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::Authentication);
        assert!(e.message().contains("code_verifier"));
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }
}
