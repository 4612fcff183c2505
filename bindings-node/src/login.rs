//! [`NativeLoginFlow`]: a running login (device code or authorization code), as the core's [`LoginFlow`]
//! describes it.

use cliproxy_core::login::LoginFlow;
use napi::bindgen_prelude::PromiseRaw;
use napi::{Env, Result};
use napi_derive::napi;

use crate::error::to_napi;

#[napi]
pub struct NativeLoginFlow {
    flow: LoginFlow,
}

impl NativeLoginFlow {
    pub(crate) fn new(flow: LoginFlow) -> Self {
        NativeLoginFlow { flow }
    }
}

#[napi]
impl NativeLoginFlow {
    #[napi(getter)]
    pub fn id(&self) -> String {
        self.flow.id.clone()
    }

    #[napi(getter)]
    pub fn provider(&self) -> String {
        self.flow.provider.clone()
    }

    /// Where the user approves the login.
    #[napi(getter)]
    pub fn verification_uri(&self) -> String {
        self.flow.verification_uri.clone()
    }

    /// The same page with the code filled in, where the provider offers one.
    #[napi(getter)]
    pub fn verification_uri_complete(&self) -> Option<String> {
        self.flow.verification_uri_complete.clone()
    }

    #[napi(getter)]
    pub fn user_code(&self) -> String {
        self.flow.user_code.clone()
    }

    /// Seconds until the code expires.
    #[napi(getter)]
    pub fn expires_in(&self) -> f64 {
        self.flow.expires_in as f64
    }

    /// Authorization-code logins: where the browser comes back with the code.
    #[napi(getter)]
    pub fn redirect_uri(&self) -> Option<String> {
        self.flow.redirect_uri.clone()
    }

    /// Hands an authorization-code login the code the browser came back with (`code#state`, or the callback
    /// address); throws when it is not this login's.
    #[napi]
    pub fn complete(&self, code: String) -> Result<()> {
        self.flow.complete(&code).map_err(to_napi)
    }

    /// `pending`, `success` or `failed`.
    #[napi(getter)]
    pub fn status(&self) -> String {
        self.flow.status().as_str().to_owned()
    }

    /// Resolves with the new credential's id once the user approved; rejects with why the login failed.
    #[napi]
    pub fn wait<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, String>> {
        let flow = self.flow.clone();
        env.spawn_future(async move { flow.wait().await.map_err(to_napi) })
    }
}
