//! Interactive logins (device-code style): one mechanism for every provider and every surface.
//!
//! An account type's [`LoginProvider::start`](crate::auth::LoginProvider::start) asks the upstream for a device code and returns it together with a
//! future that polls until the user approved (or refused) and yields the new credential. [`Client::login`]
//! runs that future in the background, adds the credential to the pool on success, and hands back a
//! [`LoginFlow`] that the CLI, the HTTP login endpoints, Python and Node all observe the same way.
//!
//! [`Client::login`]: crate::Client::login

use std::sync::{Arc, Mutex};

use futures::channel::oneshot;
use futures::future::{FutureExt, Shared};

use crate::auth::{Credential, Ctx, DeviceLogin};
use crate::error::{Error, Result};

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

struct FlowState {
    status: Mutex<LoginStatus>,
    done: Shared<oneshot::Receiver<()>>,
}

/// A running login. Cloning shares it; `wait` may be called from several places.
#[derive(Clone)]
pub struct LoginFlow {
    pub id: String,
    pub provider: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub user_code: String,
    pub expires_in: u64,
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

    /// Starts the background polling. `on_success` adds the credential to the pool.
    pub(crate) fn spawn(
        id: String,
        provider: String,
        device: DeviceLogin,
        ctx: &Ctx,
        on_success: impl FnOnce(Arc<Credential>) + Send + 'static,
    ) -> LoginFlow {
        let (tx, rx) = oneshot::channel();
        let state = Arc::new(FlowState { status: Mutex::new(LoginStatus::Pending), done: rx.shared() });
        let flow = LoginFlow {
            id,
            provider,
            verification_uri: device.verification_uri,
            verification_uri_complete: device.verification_uri_complete,
            user_code: device.user_code,
            expires_in: device.expires_in,
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
