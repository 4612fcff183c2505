//! The accept loop: HTTP/1.1 connections with the limits that keep slow or hostile clients from holding the
//! server.
//!
//! `axum::serve` offers neither a header-read timeout nor a connection cap, so connections are served here
//! with hyper's own HTTP/1 connection builder (the one `axum::serve` uses underneath, maintained with hyper):
//! - **header-read timeout**: hyper closes a connection whose request head is not complete in time. hyper arms
//!   the same timer whenever it waits for the next request on a kept-alive connection, so it is also the idle
//!   keep-alive timeout;
//! - **body-read timeout**: enforced where bodies are read ([`crate::body::read`]), answered 408;
//! - **connection cap**: a semaphore; a connection beyond it is served by a responder that answers 503 with
//!   `Retry-After` and closes, instead of queueing unseen. A second, small budget bounds those responders;
//!   past it a connection is closed at once.
//!
//! Only HTTP/1.1 is served: HTTP/2 without TLS needs prior knowledge, which no supported client uses, and its
//! connection preface would have to be read before any of these timers run.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::future::RouteFuture;
use cliproxy_core::error::Fault;
use cliproxy_core::{Error, ErrorKind};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower_service::Service;

use crate::family::{ApiError, Family};

/// Limits on client connections. The defaults suit a proxy whose clients are SDKs on a LAN or the Internet.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// Time a client has to send a request head; also how long an idle keep-alive connection stays open.
    pub header_read: Duration,
    /// Time a client has to send a whole request body (32 MiB at 2.2 Mbit/s by default).
    pub body_read: Duration,
    /// Connections served at once; beyond it a connection is answered 503 and closed.
    pub max_connections: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits { header_read: Duration::from_secs(20), body_read: Duration::from_secs(120), max_connections: 1024 }
    }
}

/// Connections beyond the cap that are answered 503 at once; more than this are closed unanswered.
const OVERLOAD_RESPONDERS: usize = 64;

/// Serves `app` on `listener` until `stop` turns true (or its sender is dropped), then lets open connections
/// finish. Dropping the returned future closes every connection.
pub async fn run(listener: TcpListener, app: Router, limits: ConnLimits, mut stop: watch::Receiver<bool>) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read);
    let mut busy = http.clone();
    busy.keep_alive(false).header_read_timeout(limits.header_read.min(Duration::from_secs(2)));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let overload = Arc::new(Semaphore::new(OVERLOAD_RESPONDERS));
    let graceful = GracefulShutdown::new();
    // Owned here, so that aborting this task (the drain ran out) closes every connection.
    let mut connections = JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = async { drop(stop.wait_for(|s| *s).await) } => break,
        };
        // Small SSE frames must leave at once, not wait for the previous segment's ACK.
        let _ = tcp.set_nodelay(true);
        let io = TokioIo::new(tcp);
        if let Ok(slot) = slots.clone().try_acquire_owned() {
            let conn = graceful.watch(http.serve_connection(io, WithPeer { app: app.clone(), peer }));
            connections.spawn(async move {
                let _ = conn.await;
                drop(slot);
            });
        } else if let Ok(slot) = overload.clone().try_acquire_owned() {
            let conn = graceful.watch(busy.serve_connection(io, service_fn(overloaded)));
            connections.spawn(async move {
                let _ = conn.await;
                drop(slot);
            });
        } else {
            tracing::warn!("connection limit reached; closing a connection unanswered");
        }
    }
    drop(listener);
    graceful.shutdown().await;
    while connections.join_next().await.is_some() {}
}

/// The app as a hyper service, with the peer address in each request's extensions (as `ConnectInfo`).
#[derive(Clone)]
struct WithPeer {
    app: Router,
    peer: SocketAddr,
}

impl hyper::service::Service<hyper::Request<Incoming>> for WithPeer {
    type Response = Response;
    type Error = Infallible;
    type Future = RouteFuture<Infallible>;

    fn call(&self, mut req: hyper::Request<Incoming>) -> Self::Future {
        req.extensions_mut().insert(ConnectInfo(self.peer));
        self.app.clone().call(req.map(Body::new))
    }
}

/// The answer of a connection beyond the cap: 503 in the family of the route, then close.
async fn overloaded(req: hyper::Request<Incoming>) -> Result<Response, Infallible> {
    let e = Error::new(ErrorKind::RateLimited, "the server is at its connection limit; retry shortly")
        .with_code("server_overloaded")
        .with_fault(Fault::Ours)
        .with_http_status(503)
        .with_retry_after(Duration::from_secs(1));
    let mut resp = ApiError::new(Family::of(req.uri().path(), req.headers()), e).into_response();
    resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    Ok(resp)
}
