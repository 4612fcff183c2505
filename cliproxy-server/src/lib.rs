//! The cliproxy reference server: OpenAI-, Anthropic- and Gemini-compatible HTTP endpoints over a core
//! [`Client`].
//!
//! Thin by design: routes parse nothing beyond what authentication needs, hand the body to the core and render
//! its answer. The bindings start this same server in-process through [`serve`].

pub mod accounts_ui;
pub mod api;
pub mod auth;
pub mod body;
pub mod browser;
pub mod callback;
pub mod family;
pub mod gemini;
pub mod keys;
pub mod listen;
pub mod login;
pub mod management;
pub mod render;
pub mod sessions;
pub mod throttle;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware::from_fn_with_state;
use cliproxy_core::config::Config;
use cliproxy_core::{Client, Error};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::{ClientKeys, ManagementAuth};
use crate::browser::Browser;
pub use crate::listen::ConnLimits;

/// How long SIGTERM (or [`ServerHandle::shutdown`]) waits for open requests and streams before closing them.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Shared state of every route.
pub struct AppState {
    pub client: Client,
    pub keys: ClientKeys,
    pub management: ManagementAuth,
    pub browser: Browser,
    pub body_limit: usize,
    pub limits: ConnLimits,
}

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    client: Client,
}

impl ServerHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Stops accepting, lets open requests finish for up to `drain`, then closes what is left.
    pub async fn shutdown(self, drain: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(drain, &mut task).await.is_err() {
            tracing::warn!("open connections did not finish within {} s; closing them", drain.as_secs());
            task.abort();
        }
    }

    /// Serves until the process ends (the handle held here keeps the server running).
    pub async fn wait(self) -> std::io::Result<()> {
        let _ = self.task.await;
        Ok(())
    }
}

/// Builds a [`Client`] from `config` and serves it on `listener`.
pub async fn serve(config: Config, listener: TcpListener) -> Result<ServerHandle, Error> {
    let client = Client::new(config)?;
    serve_client(client, listener).await
}

/// Serves an existing client on `listener` with the default [`ConnLimits`].
pub async fn serve_client(client: Client, listener: TcpListener) -> Result<ServerHandle, Error> {
    serve_with(client, listener, ConnLimits::default()).await
}

/// Serves an existing client on `listener`. Beyond loopback it refuses to start without strong client keys.
pub async fn serve_with(client: Client, listener: TcpListener, limits: ConnLimits) -> Result<ServerHandle, Error> {
    let addr = listener.local_addr().map_err(|e| Error::config(format!("listener has no address: {e}")))?;
    let config = client.config();
    let loopback = addr.ip().is_loopback();
    if !loopback {
        if config.api_keys.is_empty() {
            return Err(Error::config(format!(
                "refusing to listen on {addr} without client API keys: anyone who can reach it could use your \
                 credentials. Add `api-keys: [\"<a long random key>\"]` to config.yaml or set CLIPROXY_API_KEY, or bind \
                 127.0.0.1"
            )));
        }
        keys::check_strength(config.api_keys.iter().map(|k| k.expose()), addr)?;
    }
    let keys = ClientKeys::new(config.api_keys.iter().map(|k| k.expose().to_owned()));
    let management =
        ManagementAuth::new(config.remote_management.secret_key.expose(), config.remote_management.allow_remote);
    let browser = Browser::new(&config.cors, loopback)?;
    let state = Arc::new(AppState {
        body_limit: config.body_limit_mb.max(1) << 20,
        client: client.clone(),
        keys,
        management,
        browser,
        limits,
    });
    let app = router(state);
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(listen::run(listener, app, limits, stopped));
    Ok(ServerHandle { addr, stop, task, client })
}

/// All routes: the inference routes behind the client key (and, for `/v1/*` and `/v1beta/*`, CORS when configured), the
/// management routes behind the management key, the pages, JSON 404/405 in each route's family, and the
/// browser guard around everything.
fn router(state: Arc<AppState>) -> Router {
    // Set on each group before its layers, so the layers (CORS above all) also wrap the 405 answers.
    let answer_405 = |r: Router<Arc<AppState>>| r.method_not_allowed_fallback(family::method_not_allowed);
    let keyed = |r: Router<Arc<AppState>>| {
        answer_405(r)
            .route_layer(from_fn_with_state(state.clone(), auth::client_key))
            .route_layer(from_fn_with_state(state.clone(), browser::origin))
    };
    let mut v1 = keyed(api::v1_routes().merge(gemini::routes()));
    if let Some(cors) = state.browser.cors_layer() {
        v1 = v1.layer(cors);
    }
    let managed = answer_405(management::routes().merge(login::routes()).merge(accounts_ui::actions()))
        .route_layer(from_fn_with_state(state.clone(), auth::management));
    Router::new()
        .merge(v1)
        .merge(keyed(api::alias_routes()))
        .merge(answer_405(api::public_routes()))
        .merge(managed)
        .merge(answer_405(accounts_ui::pages()))
        .fallback(family::not_found)
        .layer(from_fn_with_state(state.clone(), browser::guard))
        .with_state(state)
}
