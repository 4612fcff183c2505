//! Rendering core answers onto HTTP: JSON bodies, JSON with whitespace keepalives, and streamed replies as SSE
//! with keepalive comments. Errors inside them take the shape of the route's [`Family`].

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cliproxy_core::Error;
use cliproxy_core::client::{Event, EventStream};
use cliproxy_core::stream::sse::encode_event;
use futures::{Stream, StreamExt};

use crate::family::Family;
use cliproxy_core::logtext::Clean;

/// A complete JSON body.
pub fn json(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A JSON body for a non-streaming request that sends whitespace every `interval` while the answer is pending,
/// so proxies and load balancers with short idle timeouts keep the connection (JSON parsers skip the leading
/// whitespace). The status is committed as 200 once the first keepalive goes out, so errors after that are
/// sent as a JSON error body with that status.
pub fn json_with_keepalive<F>(family: Family, interval: Duration, fut: F) -> Response
where
    F: std::future::Future<Output = Result<Bytes, Error>> + Send + 'static,
{
    let stream = futures::stream::unfold(Some(Box::pin(fut)), move |state| async move {
        let mut fut = state?;
        tokio::select! {
            r = &mut fut => {
                let body = match r {
                    Ok(b) => b,
                    Err(e) => Bytes::from(family.body(&e)),
                };
                Some((Ok::<_, std::convert::Infallible>(body), None))
            }
            () = tokio::time::sleep(interval) => Some((Ok(Bytes::from_static(b"\n")), Some(fut))),
        }
    });
    ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(stream)).into_response()
}

/// Streams `events` as SSE. A failure after the stream started becomes an error event in the caller's dialect;
/// silences longer than `keepalive` (if set) get an SSE comment.
pub fn sse(family: Family, events: EventStream, keepalive: Option<Duration>) -> Response {
    let frames = events.map(move |item| {
        let mut buf = Vec::with_capacity(256);
        match item {
            Ok(Event { event, data }) => encode_event(event.as_deref(), &data, &mut buf),
            Err(e) => {
                tracing::warn!(kind = %e.kind(), message = %Clean(e.message()), "stream failed after it started");
                let (name, data) = family.event(&e);
                encode_event(name, std::str::from_utf8(&data).unwrap_or_default(), &mut buf);
            }
        }
        Ok::<Bytes, std::convert::Infallible>(Bytes::from(buf))
    });
    let body = match keepalive {
        Some(every) => Body::from_stream(with_keepalive(frames, every)),
        None => Body::from_stream(frames),
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// Interleaves `: keepalive` comments whenever `inner` is silent for `every`.
fn with_keepalive<S>(inner: S, every: Duration) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>>
where
    S: Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static,
{
    futures::stream::unfold(Box::pin(inner), move |mut inner| async move {
        tokio::select! {
            next = inner.next() => next.map(|item| (item, inner)),
            () = tokio::time::sleep(every) => Some((Ok(Bytes::from_static(b": keepalive\n\n")), inner)),
        }
    })
}
