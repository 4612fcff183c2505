//! [`NativeServer`]: the reference HTTP server, started in-process on napi's tokio runtime.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cliproxy_core::{Client, Error};
use cliproxy_server::ServerHandle;
use napi::bindgen_prelude::PromiseRaw;
use napi::{Env, Result};
use napi_derive::napi;

use crate::cancel::Token;
use crate::client::NativeClient;
use crate::error::to_napi;

#[napi]
pub struct NativeServer {
    addr: SocketAddr,
    /// Taken by the first `close()`.
    handle: Arc<Mutex<Option<ServerHandle>>>,
    /// Set once `close()` finished.
    stopped: Token,
}

/// Serves `client` on `host:port`; either falls back to the client's configuration (`host`, `port`), and
/// port 0 picks a free port. Like the server binary, it refuses a non-loopback address while the
/// configuration has no client `api-keys`.
#[napi]
pub fn serve<'env>(
    env: &'env Env,
    client: &NativeClient,
    host: Option<String>,
    port: Option<u32>,
) -> Result<PromiseRaw<'env, NativeServer>> {
    let client: Client = client.client.clone();
    let host = host.unwrap_or_else(|| client.config().host.clone());
    let port = port.unwrap_or(u32::from(client.config().port));
    env.spawn_future(async move {
        let port = u16::try_from(port).map_err(|_| to_napi(Error::config(format!("port {port} is out of range"))))?;
        let listener = tokio::net::TcpListener::bind((host.as_str(), port))
            .await
            .map_err(|e| to_napi(Error::config(format!("cannot listen on {host}:{port}: {e}"))))?;
        let handle = cliproxy_server::serve_client(client, listener).await.map_err(to_napi)?;
        Ok(NativeServer {
            addr: handle.local_addr(),
            handle: Arc::new(Mutex::new(Some(handle))),
            stopped: Token::default(),
        })
    })
}

#[napi]
impl NativeServer {
    /// The address the server listens on, e.g. `127.0.0.1`.
    #[napi(getter)]
    pub fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    #[napi(getter)]
    pub fn port(&self) -> u32 {
        u32::from(self.addr.port())
    }

    /// Stops accepting connections, lets open requests finish for up to `drain_ms` (default: the server's
    /// own drain time), then closes what is left. Later calls resolve at once.
    #[napi]
    pub fn close<'env>(&self, env: &'env Env, drain_ms: Option<u32>) -> Result<PromiseRaw<'env, ()>> {
        let handle = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take();
        let drain = drain_ms.map_or(cliproxy_server::DRAIN, |ms| Duration::from_millis(u64::from(ms)));
        let stopped = self.stopped.clone();
        env.spawn_future(async move {
            if let Some(handle) = handle {
                handle.shutdown(drain).await;
                stopped.cancel();
            }
            Ok(())
        })
    }

    /// Resolves once `close()` finished. While it is pending it keeps Node's event loop alive, so a program
    /// that starts a server keeps running until it closes it, as with Node's own `http.Server`.
    #[napi]
    pub fn closed<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        let stopped = self.stopped.clone();
        env.spawn_future(async move {
            stopped.cancelled().await;
            Ok(())
        })
    }
}
