//! The I/O seams of the core: how bytes reach an upstream ([`HttpTransport`]) and how time passes ([`Runtime`]).
//!
//! Everything else in the crate is sans-IO. Keeping these two traits small is what lets the same `Client` run
//! inside tokio (server, Python, Node), on `futures::executor` in tests, and against a fake clock that makes
//! cooldown and rate-limit rules testable without waiting.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::future::{BoxFuture, Either};
use futures::{FutureExt, Stream};

use crate::error::{Error, ErrorKind};

/// A response body: chunks as they arrive.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, TransportError>> + Send>>;

/// What the transport hands back once the response head has arrived.
pub struct TransportResponse {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: ByteStream,
}

/// Per-request outbound proxy, carried in the request's extensions so the transport trait stays one method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamProxy(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportErrorKind {
    Connect,
    Timeout,
    /// The connection broke while the body was being read.
    Body,
    Other,
}

/// A failure below HTTP: no status code was received (or the body broke off).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    pub kind: TransportErrorKind,
    pub message: String,
}

impl TransportError {
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        TransportError { kind, message: message.into() }
    }
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        let kind = if e.kind == TransportErrorKind::Timeout { ErrorKind::Timeout } else { ErrorKind::Upstream };
        Error::new(kind, format!("upstream connection failed: {}", e.message)).with_source(e)
    }
}

/// Sends one HTTP request upstream. Implementations must not log request headers: they carry credentials.
pub trait HttpTransport: Send + Sync + 'static {
    fn send(&self, request: http::Request<Bytes>) -> BoxFuture<'static, Result<TransportResponse, TransportError>>;
}

/// Time and task spawning. `now` is wall-clock time because cooldowns come from upstream wall-clock hints
/// (`Retry-After` dates, reset timestamps); a fake runtime moves it by hand.
pub trait Runtime: Send + Sync + 'static {
    fn now(&self) -> SystemTime;
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
    /// Runs a background task (token refresh sweeps and the like) to completion, detached.
    fn spawn(&self, task: BoxFuture<'static, ()>);
}

/// Runs `fut`, failing with `on_timeout` if it takes longer than `duration` on `runtime`'s clock.
pub async fn with_timeout<T>(
    runtime: &Arc<dyn Runtime>,
    duration: Duration,
    fut: impl std::future::Future<Output = T>,
    on_timeout: impl FnOnce() -> T,
) -> T {
    let fut = std::pin::pin!(fut);
    match futures::future::select(fut, runtime.sleep(duration)).await {
        Either::Left((v, _)) => v,
        Either::Right(((), _)) => on_timeout(),
    }
}

/// Collects a whole body, failing if it is larger than `limit` bytes or stalls for `idle` between chunks.
pub async fn read_body(
    runtime: &Arc<dyn Runtime>,
    body: &mut ByteStream,
    limit: usize,
    idle: Duration,
) -> Result<Bytes, Error> {
    use futures::StreamExt;
    let mut buf: Option<bytes::BytesMut> = None;
    let mut first: Option<Bytes> = None;
    loop {
        let next = with_timeout(runtime, idle, body.next().map(Ok), || Err(())).await;
        let chunk = match next {
            Err(()) => return Err(Error::new(ErrorKind::Timeout, "upstream stopped sending its answer")),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(Some(Ok(c))) => c,
        };
        // Most answers arrive in one chunk: keep it without copying until a second one shows up.
        match (&mut buf, &first) {
            (None, None) => first = Some(chunk),
            (None, Some(f)) => {
                let mut b = bytes::BytesMut::with_capacity(f.len() + chunk.len());
                b.extend_from_slice(f);
                b.extend_from_slice(&chunk);
                buf = Some(b);
                first = None;
            }
            (Some(b), _) => b.extend_from_slice(&chunk),
        }
        let len = buf.as_ref().map_or_else(|| first.as_ref().map_or(0, Bytes::len), |b| b.len());
        if len > limit {
            return Err(Error::upstream(None, format!("upstream answer exceeds {limit} bytes")));
        }
    }
    Ok(match buf {
        Some(b) => b.freeze(),
        None => first.unwrap_or_default(),
    })
}

#[cfg(feature = "reqwest")]
pub use self::tokio_impl::{ReqwestTransport, TokioRuntime};

#[cfg(feature = "reqwest")]
mod tokio_impl {
    use super::*;
    use futures::StreamExt;
    use std::collections::HashMap;
    use std::sync::Mutex;

    /// The ready transport: reqwest (rustls) with one pooled client per outbound proxy URL.
    pub struct ReqwestTransport {
        /// Built on first use: loading the TLS roots takes milliseconds that startup should not pay.
        direct: std::sync::OnceLock<reqwest::Client>,
        connect_timeout: Duration,
        proxied: Mutex<HashMap<String, reqwest::Client>>,
    }

    impl ReqwestTransport {
        pub fn new(connect_timeout: Duration) -> Self {
            ReqwestTransport {
                direct: std::sync::OnceLock::new(),
                connect_timeout,
                proxied: Mutex::new(HashMap::new()),
            }
        }

        fn build(connect_timeout: Duration, proxy: Option<&str>) -> Result<reqwest::Client, Error> {
            let mut b = reqwest::Client::builder()
                .connect_timeout(connect_timeout)
                .tcp_nodelay(true)
                .pool_idle_timeout(Duration::from_secs(90))
                // A cold pooled connection that the peer already closed is the classic source of spurious EOFs.
                .tcp_keepalive(Duration::from_secs(30));
            b = match proxy {
                Some(p) => {
                    b.proxy(reqwest::Proxy::all(p).map_err(|e| Error::config(format!("invalid proxy-url: {e}")))?)
                }
                None => b.no_proxy(),
            };
            b.build().map_err(|e| Error::config(format!("cannot build HTTP client: {e}")))
        }

        fn client_for(&self, proxy: Option<&UpstreamProxy>) -> Result<reqwest::Client, TransportError> {
            let Some(UpstreamProxy(url)) = proxy else {
                if let Some(c) = self.direct.get() {
                    return Ok(c.clone());
                }
                let c = Self::build(self.connect_timeout, None)
                    .map_err(|e| TransportError::new(TransportErrorKind::Other, e.message().to_string()))?;
                return Ok(self.direct.get_or_init(|| c).clone());
            };
            let mut map = self.proxied.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = map.get(url) {
                return Ok(c.clone());
            }
            let c = Self::build(self.connect_timeout, Some(url))
                .map_err(|e| TransportError::new(TransportErrorKind::Other, e.message().to_string()))?;
            map.insert(url.clone(), c.clone());
            Ok(c)
        }
    }

    fn classify(e: &reqwest::Error) -> TransportErrorKind {
        if e.is_timeout() {
            TransportErrorKind::Timeout
        } else if e.is_connect() {
            TransportErrorKind::Connect
        } else if e.is_body() || e.is_decode() {
            TransportErrorKind::Body
        } else {
            TransportErrorKind::Other
        }
    }

    /// reqwest's error text can include the URL but never headers; drop the query string anyway, since some
    /// upstreams take keys there.
    fn describe(e: &reqwest::Error) -> String {
        let mut e2 = e.to_string();
        if let Some(q) = e.url().and_then(|u| u.query()) {
            e2 = e2.replace(q, "…");
        }
        e2
    }

    impl HttpTransport for ReqwestTransport {
        fn send(&self, request: http::Request<Bytes>) -> BoxFuture<'static, Result<TransportResponse, TransportError>> {
            let client = self.client_for(request.extensions().get::<UpstreamProxy>());
            async move {
                let client = client?;
                let req = reqwest::Request::try_from(request)
                    .map_err(|e| TransportError::new(TransportErrorKind::Other, describe(&e)))?;
                let resp = client.execute(req).await.map_err(|e| TransportError::new(classify(&e), describe(&e)))?;
                let status = resp.status();
                let headers = resp.headers().clone();
                let body = resp.bytes_stream().map(|r| r.map_err(|e| TransportError::new(classify(&e), describe(&e))));
                Ok(TransportResponse { status, headers, body: Box::pin(body) })
            }
            .boxed()
        }
    }

    /// The tokio runtime seam. Holds a handle so tasks spawned from non-runtime threads (bindings) still land on
    /// the runtime the client was built in.
    pub struct TokioRuntime {
        handle: tokio::runtime::Handle,
    }

    impl TokioRuntime {
        /// Uses the runtime of the calling context. Panics outside a tokio runtime, like `Handle::current`.
        pub fn current() -> Self {
            TokioRuntime { handle: tokio::runtime::Handle::current() }
        }
        pub fn from_handle(handle: tokio::runtime::Handle) -> Self {
            TokioRuntime { handle }
        }
    }

    impl Runtime for TokioRuntime {
        fn now(&self) -> SystemTime {
            SystemTime::now()
        }
        fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
            tokio::time::sleep(duration).boxed()
        }
        fn spawn(&self, task: BoxFuture<'static, ()>) {
            self.handle.spawn(task);
        }
    }
}
