//! Rendering core answers onto HTTP: JSON bodies, JSON with whitespace keepalives, and streamed replies as SSE
//! (or, for Gemini clients that ask for it, a streamed JSON array) with keepalives. Errors inside them take the
//! shape of the route's [`Family`].

use std::borrow::Cow;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cliproxy_core::Error;
use cliproxy_core::client::{Event, EventStream};
use cliproxy_core::dialects::Dialect;
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

/// How a streamed answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Server-sent events.
    Sse,
    /// One JSON array whose elements are the events' data, written as they come (Gemini's
    /// `streamGenerateContent` with `alt=json`).
    JsonArray,
}

/// Streams `events` in `framing`. A failure after the stream started becomes an error event in the family's
/// shape; silences longer than `keepalive` (if set) get a keepalive the framing and family allow.
pub fn stream(framing: Framing, family: Family, events: EventStream, keepalive: Option<Duration>) -> Response {
    let frame = move |item: Result<Event, Error>| match item {
        Ok(event) => event,
        Err(e) => {
            tracing::warn!(kind = %e.kind(), message = %Clean(e.message()), "stream failed after it started");
            let (name, data) = family.event(&e);
            Event { event: name.map(Cow::Borrowed), data: String::from_utf8_lossy(&data).into_owned() }
        }
    };
    let (frames, content_type) = match framing {
        Framing::Sse => {
            let frames = events.map(move |item| {
                let Event { event, data } = frame(item);
                let mut buf = Vec::with_capacity(data.len() + 32);
                encode_event(event.as_deref(), &data, &mut buf);
                Ok::<Bytes, std::convert::Infallible>(Bytes::from(buf))
            });
            (frames.boxed(), "text/event-stream")
        }
        Framing::JsonArray => {
            let frames =
                futures::stream::unfold((events, false, false), move |(mut events, opened, closed)| async move {
                    if closed {
                        return None;
                    }
                    let last = match events.next().await {
                        Some(item) => {
                            let mut buf = Vec::from(if opened { &b",\r\n"[..] } else { b"[" });
                            buf.extend_from_slice(frame(item).data.as_bytes());
                            return Some((Ok(Bytes::from(buf)), (events, true, false)));
                        }
                        None if opened => Bytes::from_static(b"]"),
                        None => Bytes::from_static(b"[]"),
                    };
                    Some((Ok::<Bytes, std::convert::Infallible>(last), (events, opened, true)))
                });
            (frames.boxed(), "application/json")
        }
    };
    let body = match keepalive {
        Some(every) => Body::from_stream(with_keepalive(frames, every, keepalive_frame(framing, family))),
        None => Body::from_stream(frames),
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// What keeps a silent stream alive: an SSE comment, except where the client would read it as data. Gemini
/// SDKs parse every line that is not `data:` as JSON, so Gemini streams get a blank line, which SSE parsers
/// skip and which is whitespace inside a JSON array.
fn keepalive_frame(framing: Framing, family: Family) -> &'static [u8] {
    match (framing, family) {
        (Framing::JsonArray, _) | (Framing::Sse, Family::Api(Dialect::Gemini)) => b"\n",
        (Framing::Sse, _) => b": keepalive\n\n",
    }
}

/// Interleaves `frame` whenever `inner` is silent for `every`.
fn with_keepalive<S>(
    inner: S,
    every: Duration,
    frame: &'static [u8],
) -> impl Stream<Item = Result<Bytes, std::convert::Infallible>>
where
    S: Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static,
{
    futures::stream::unfold(Box::pin(inner), move |mut inner| async move {
        tokio::select! {
            next = inner.next() => next.map(|item| (item, inner)),
            () = tokio::time::sleep(every) => Some((Ok(Bytes::from_static(frame)), inner)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalives_are_what_each_framing_allows() {
        assert_eq!(keepalive_frame(Framing::Sse, Family::Api(Dialect::OpenAiChat)), b": keepalive\n\n");
        assert_eq!(keepalive_frame(Framing::Sse, Family::Api(Dialect::Responses)), b": keepalive\n\n");
        assert_eq!(keepalive_frame(Framing::Sse, Family::Api(Dialect::Gemini)), b"\n");
        assert_eq!(keepalive_frame(Framing::JsonArray, Family::Api(Dialect::Gemini)), b"\n");
    }
}
