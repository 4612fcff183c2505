//! The cliproxy reference server: OpenAI-, Anthropic- and Gemini-compatible HTTP endpoints over a core
//! [`Client`].
//!
//! Thin by design: routes parse nothing beyond what authentication needs, hand the body to the core and render
//! its answer. The bindings start this same server in-process through [`serve`].

pub mod api;
pub mod auth;
pub mod gemini;
pub mod kiro_ui;
pub mod login;
pub mod management;
pub mod render;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use cliproxy_core::config::Config;
use cliproxy_core::{Client, Error};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::auth::{ClientKeys, ManagementAuth};

/// How long SIGTERM (or [`ServerHandle::shutdown`]) waits for open requests and streams before closing them.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Shared state of every route.
pub struct AppState {
    pub client: Client,
    pub keys: ClientKeys,
    pub management: ManagementAuth,
    pub body_limit: usize,
}

/// A running server.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
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

    /// Waits until the server stops by itself (it only does on an accept error).
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.unwrap_or(Ok(()))
    }
}

/// Builds a [`Client`] from `config` and serves it on `listener`.
pub async fn serve(config: Config, listener: TcpListener) -> Result<ServerHandle, Error> {
    let client = Client::new(config)?;
    serve_client(client, listener).await
}

/// Serves an existing client on `listener`. Refuses a non-loopback address while no client key is configured.
pub async fn serve_client(client: Client, listener: TcpListener) -> Result<ServerHandle, Error> {
    let addr = listener.local_addr().map_err(|e| Error::config(format!("listener has no address: {e}")))?;
    let config = client.config();
    let keys = ClientKeys::new(config.api_keys.iter().map(|k| k.expose().to_owned()));
    if keys.is_empty() && !addr.ip().is_loopback() {
        return Err(Error::config(format!(
            "refusing to listen on {addr} without client API keys: anyone who can reach it could use your credentials. \
             Add `api-keys: [\"<a long random key>\"]` to config.yaml or set CLIPROXY_API_KEY, or bind 127.0.0.1"
        )));
    }
    let management =
        ManagementAuth::new(config.remote_management.secret_key.expose(), config.remote_management.allow_remote);
    let state =
        Arc::new(AppState { body_limit: config.body_limit_mb.max(1) << 20, client: client.clone(), keys, management });
    let app = router(state);
    let (stop, mut stopped) = watch::channel(false);
    // Small SSE frames must leave at once, not wait for the previous segment's ACK.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let task = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
    });
    Ok(ServerHandle { addr, stop, task, client })
}

/// All routes, with CORS and request logging around them.
pub fn router(state: Arc<AppState>) -> Router {
    api::routes()
        .merge(gemini::routes())
        .merge(management::routes())
        .merge(login::routes())
        .merge(kiro_ui::routes())
        .with_state(state)
        .layer(middleware::from_fn(cors))
}

/// Browsers' preflights get 204 with permissive CORS; every answer carries the CORS headers, as in the Go
/// original (clients authenticate with keys, never cookies, so `*` is safe for the API routes).
async fn cors(req: Request, next: Next) -> Response {
    let preflight = req.method() == Method::OPTIONS;
    let mut resp = if preflight { StatusCode::NO_CONTENT.into_response() } else { next.run(req).await };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, OPTIONS"));
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static("Retry-After, X-Request-Id"));
    resp
}
