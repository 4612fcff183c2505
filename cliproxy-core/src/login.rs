//! Interactive logins: one mechanism for every provider and every surface.
//!
//! An account type's [`LoginProvider::start`](crate::auth::LoginProvider::start) begins a login and returns what the
//! user must see together with a future that finishes it and yields the new credential. Two shapes exist:
//! - device logins (GitHub, AWS): the user enters a code at a URL; the future polls until they approved;
//! - authorization-code logins (Claude): the user opens an authorize URL; the browser comes back to a redirect
//!   URI with `code` and `state`, which a local callback listener (in the server) or the user (pasting
//!   `code#state`) hands to [`LoginFlow::complete`]; the future then exchanges the code.
//!
//! [`Client::login`] runs that future in the background, adds the credential to the pool on success, and hands
//! back a [`LoginFlow`] that the CLI, the HTTP login endpoints, Python and Node all observe the same way.
//!
//! [`Client::login`]: crate::Client::login

use std::sync::{Arc, Mutex};

use futures::channel::oneshot;
use futures::future::{FutureExt, Shared};

use crate::auth::{Credential, Ctx, DeviceLogin};
use crate::error::{Error, ErrorKind, Result};

/// Where a login stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginStatus {
    Pending,
    /// The new credential's id.
    Success(String),
    Failed(Error),
}

impl LoginStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            LoginStatus::Pending => "pending",
            LoginStatus::Success(_) => "success",
            LoginStatus::Failed(_) => "failed",
        }
    }
}

/// The code an authorization-code login still waits for: the `state` it must come with, and where it goes.
type AwaitedCode = (String, oneshot::Sender<Result<String>>);

struct FlowState {
    status: Mutex<LoginStatus>,
    done: Shared<oneshot::Receiver<()>>,
    code: Mutex<Option<AwaitedCode>>,
}

/// A running login. Cloning shares it; `wait` may be called from several places.
#[derive(Clone)]
pub struct LoginFlow {
    pub id: String,
    pub provider: String,
    /// Device logins: where to enter `user_code`. Authorization-code logins: the authorize URL to open.
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    /// Empty for authorization-code logins.
    pub user_code: String,
    pub expires_in: u64,
    /// Authorization-code logins: where the browser comes back with the code (a local callback URL).
    pub redirect_uri: Option<String>,
    state: Arc<FlowState>,
}

impl std::fmt::Debug for LoginFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginFlow")
            .field("id", &self.id)
            .field("provider", &self.provider)
            .field("status", &self.status().as_str())
            .finish_non_exhaustive()
    }
}

/// What the browser came back with, from whatever the user pasted or the callback received: `code#state` (as
/// Claude's code page shows it), the whole callback URL, or its query (`code=…&state=…`, or `error=…`).
#[derive(Debug, Default, PartialEq, Eq)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

impl Callback {
    fn parse(text: &str) -> Callback {
        let text = text.trim();
        if !["code=", "state=", "error="].iter().any(|k| text.contains(k)) {
            let (code, state) = match text.split_once('#') {
                Some((c, s)) => (c, Some(s)),
                None => (text, None),
            };
            let some = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
            return Callback { code: some(code), state: state.and_then(some), error: None };
        }
        let query = text.split_once('?').map_or(text, |(_, q)| q);
        let query = query.split_once('#').map_or(query, |(q, _)| q);
        let mut cb = Callback::default();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            let v = Some(v.into_owned()).filter(|v| !v.is_empty());
            match k.as_ref() {
                "code" => cb.code = v,
                "state" => cb.state = v,
                "error" => cb.error = v.or(cb.error),
                "error_description" => cb.error = v.or(cb.error),
                _ => {}
            }
        }
        cb
    }
}

impl LoginFlow {
    pub fn status(&self) -> LoginStatus {
        self.state.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Resolves when the login finished: the new credential's id, or why it failed.
    pub async fn wait(&self) -> Result<String> {
        let _ = self.state.done.clone().await;
        match self.status() {
            LoginStatus::Success(id) => Ok(id),
            LoginStatus::Failed(e) => Err(e),
            LoginStatus::Pending => Err(Error::new(crate::ErrorKind::Cancelled, "login was abandoned")),
        }
    }

    /// Hands an authorization-code login what the browser came back with: `code#state`, the callback URL or its
    /// query. The state must be this login's (so a code meant for another login, or planted by another page,
    /// is refused); an `error` the provider redirected with fails the login. The exchange then runs in the
    /// background: [`LoginFlow::wait`] tells how it ended.
    pub fn complete(&self, pasted: &str) -> Result<()> {
        let refuse = |m: String| Err(Error::invalid_request(m));
        let cb = Callback::parse(pasted);
        let mut slot = self.state.code.lock().unwrap_or_else(|p| p.into_inner());
        let Some((state, _)) = slot.as_ref() else {
            return refuse(match &self.redirect_uri {
                None => format!("{} logins finish on their own: there is no code to enter", self.provider),
                Some(_) => "this login already received its code".to_owned(),
            });
        };
        match &cb.state {
            Some(s) if s == state => {}
            Some(_) => return refuse("the code belongs to another login (its state does not match)".to_owned()),
            None => {
                return refuse(
                    "the state is missing: paste the whole `code#state`, or the whole address the browser was sent to"
                        .to_owned(),
                );
            }
        }
        let outcome = match (cb.error, cb.code) {
            (Some(e), _) => {
                Err(Error::new(ErrorKind::Authentication, format!("{} refused the login: {e}", self.provider)))
            }
            (None, Some(code)) => Ok(code),
            (None, None) => return refuse("no authorization code in what was given".to_owned()),
        };
        let (_, tx) = slot.take().expect("checked above");
        // The login may have ended meanwhile (it expired): then there is nobody to tell.
        let _ = tx.send(outcome);
        Ok(())
    }

    /// Starts the background polling. `on_success` adds the credential to the pool.
    pub(crate) fn spawn(
        id: String,
        provider: String,
        device: DeviceLogin,
        ctx: &Ctx,
        on_success: impl FnOnce(Arc<Credential>) + Send + 'static,
    ) -> LoginFlow {
        let (tx, rx) = oneshot::channel();
        let (redirect_uri, code) = match device.redirect {
            Some(r) => (Some(r.uri), Some((r.state, r.code))),
            None => (None, None),
        };
        let state =
            Arc::new(FlowState { status: Mutex::new(LoginStatus::Pending), done: rx.shared(), code: Mutex::new(code) });
        let flow = LoginFlow {
            id,
            provider,
            verification_uri: device.verification_uri,
            verification_uri_complete: device.verification_uri_complete,
            user_code: device.user_code,
            expires_in: device.expires_in,
            redirect_uri,
            state: state.clone(),
        };
        let poll = device.poll;
        let provider_name = flow.provider.clone();
        ctx.runtime.spawn(
            async move {
                let status = match poll.await {
                    Ok(cred) => {
                        let id = cred.id.clone();
                        tracing::info!(credential = %id, "{provider_name} login succeeded");
                        on_success(cred);
                        LoginStatus::Success(id)
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "{provider_name} login failed");
                        LoginStatus::Failed(e)
                    }
                };
                *state.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
                let _ = tx.send(());
            }
            .boxed(),
        );
        flow
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Redirect;
    use crate::test_support::{FakeRuntime, NoTransport};

    #[test]
    fn pasted_codes_in_every_shape() {
        let want = |c: &str, s: &str| Callback { code: Some(c.into()), state: Some(s.into()), error: None };
        assert_eq!(Callback::parse(" abc#st-1\n"), want("abc", "st-1"));
        assert_eq!(Callback::parse("http://localhost:54545/callback?code=a%2Bb&state=st-1"), want("a+b", "st-1"));
        assert_eq!(Callback::parse("state=st-1&code=abc"), want("abc", "st-1"));
        assert_eq!(Callback::parse("abc"), Callback { code: Some("abc".into()), ..Callback::default() });
        let e = Callback::parse("/callback?error=access_denied&error_description=User+said+no&state=s");
        assert_eq!((e.error.as_deref(), e.state.as_deref(), e.code), (Some("User said no"), Some("s"), None));
    }

    /// A flow whose login ends with the code it is given (as `<code>-ok`), or the error it is given.
    fn flow() -> (LoginFlow, Arc<FakeRuntime>) {
        let rt = Arc::new(FakeRuntime::new());
        let ctx = Ctx { transport: Arc::new(NoTransport), runtime: rt.clone(), config: Default::default() };
        let (tx, rx) = oneshot::channel::<Result<String>>();
        let poll = async move {
            let code = rx.await.map_err(|_| Error::invalid_request("gone"))??;
            Err(Error::invalid_request(format!("{code}-ok")))
        };
        let device = DeviceLogin {
            verification_uri: "https://auth.test/authorize".into(),
            verification_uri_complete: None,
            user_code: String::new(),
            expires_in: 600,
            redirect: Some(Redirect { uri: "http://localhost:1/callback".into(), state: "st-1".into(), code: tx }),
            poll: poll.boxed(),
        };
        let flow = LoginFlow::spawn("f".into(), "claude".into(), device, &ctx, |_| {});
        (flow, rt)
    }

    #[test]
    fn the_code_reaches_the_login_only_with_its_state_and_only_once() {
        let (flow, rt) = flow();
        assert_eq!(flow.redirect_uri.as_deref(), Some("http://localhost:1/callback"));
        assert!(flow.complete("abc#other").unwrap_err().message().contains("another login"));
        assert!(flow.complete("abc").unwrap_err().message().contains("state is missing"));
        assert!(flow.complete("state=st-1").unwrap_err().message().contains("no authorization code"));
        rt.run_until_stalled();
        assert_eq!(flow.status(), LoginStatus::Pending, "refused pastes leave the login waiting");
        flow.complete("abc#st-1").unwrap();
        assert!(flow.complete("abc#st-1").unwrap_err().message().contains("already received"));
        rt.run_until_stalled();
        assert!(matches!(flow.status(), LoginStatus::Failed(e) if e.message() == "abc-ok"));
    }

    #[test]
    fn an_error_redirect_fails_the_login() {
        let (flow, rt) = flow();
        flow.complete("?error=access_denied&state=st-1").unwrap();
        rt.run_until_stalled();
        assert!(
            matches!(flow.status(), LoginStatus::Failed(e) if e.message().contains("refused the login: access_denied"))
        );
    }
}
