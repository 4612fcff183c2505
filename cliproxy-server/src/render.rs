//! Rendering core results onto HTTP: errors in the dialect of the endpoint that was called, and streamed
//! replies as SSE (or, for Gemini clients that ask for it, a streamed JSON array) with keepalives. This is
//! the server's one mapping of `cliproxy_core::Error`.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cliproxy_core::client::{Event, EventStream};
use cliproxy_core::dialects::Dialect;
use cliproxy_core::stream::sse::encode_event;
use cliproxy_core::{Error, ErrorKind};
use futures::{Stream, StreamExt};

/// An error bound to the dialect it must be rendered in.
pub struct ApiError {
    pub dialect: Dialect,
    pub error: Error,
}

impl ApiError {
    pub fn new(dialect: Dialect, error: Error) -> Self {
        ApiError { dialect, error }
    }
}

/// The JSON error body of `dialect`.
fn error_body(dialect: Dialect, e: &Error) -> Vec<u8> {
    match dialect {
        Dialect::OpenAiChat => e.openai_body(),
        Dialect::Anthropic => e.anthropic_body(),
        Dialect::Gemini => e.google_body(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = &self.error;
        let body = error_body(self.dialect, e);
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        let h = resp.headers_mut();
        if let Some(secs) = e.retry_after_secs() {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if !e.is_retryable() {
            h.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        if e.kind() == ErrorKind::Upstream || e.kind() == ErrorKind::Timeout {
            tracing::warn!(error = %e, "request failed");
        } else {
            tracing::debug!(error = %e, "request rejected");
        }
        resp
    }
}

/// A complete JSON body.
pub fn json(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A JSON body for a non-streaming request that sends whitespace every `interval` while the answer is pending,
/// so proxies and load balancers with short idle timeouts keep the connection (JSON parsers skip the leading
/// whitespace). The status is committed as 200 once the first keepalive goes out, so errors after that are
/// sent as a JSON error body with that status.
pub fn json_with_keepalive<F>(dialect: Dialect, interval: Duration, fut: F) -> Response
where
    F: std::future::Future<Output = Result<Bytes, Error>> + Send + 'static,
{
    let stream = futures::stream::unfold(Some(Box::pin(fut)), move |state| async move {
        let mut fut = state?;
        tokio::select! {
            r = &mut fut => {
                let body = match r {
                    Ok(b) => b,
                    Err(e) => Bytes::from(error_body(dialect, &e)),
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

/// Streams `events` in `framing`. A failure after the stream started becomes the dialect's error event;
/// silences longer than `keepalive` (if set) get a keepalive the framing and dialect allow.
pub fn stream(framing: Framing, dialect: Dialect, events: EventStream, keepalive: Option<Duration>) -> Response {
    let data = move |item: Result<Event, Error>| match item {
        Ok(event) => event,
        Err(e) => {
            tracing::warn!(error = %e, "stream failed after it started");
            Event::from(dialect.error_event(&e))
        }
    };
    let (frames, content_type) = match framing {
        Framing::Sse => {
            let frames = events.map(move |item| {
                let Event { event, data } = data(item);
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
                    let frame = match events.next().await {
                        Some(item) => {
                            let mut buf = Vec::from(if opened { &b",\r\n"[..] } else { b"[" });
                            buf.extend_from_slice(data(item).data.as_bytes());
                            return Some((Ok(Bytes::from(buf)), (events, true, false)));
                        }
                        None if opened => Bytes::from_static(b"]"),
                        None => Bytes::from_static(b"[]"),
                    };
                    Some((Ok::<Bytes, std::convert::Infallible>(frame), (events, opened, true)))
                });
            (frames.boxed(), "application/json")
        }
    };
    let body = match keepalive {
        Some(every) => Body::from_stream(with_keepalive(frames, every, keepalive_frame(framing, dialect))),
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
fn keepalive_frame(framing: Framing, dialect: Dialect) -> &'static [u8] {
    match (framing, dialect) {
        (Framing::JsonArray, _) | (Framing::Sse, Dialect::Gemini) => b"\n",
        (Framing::Sse, Dialect::OpenAiChat | Dialect::Anthropic) => b": keepalive\n\n",
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
    fn gemini_errors_are_googles_shape() {
        let resp = ApiError::new(Dialect::Gemini, Error::invalid_request("contents: missing")).into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(resp.headers()["x-should-retry"], "false");
        let body = error_body(Dialect::Gemini, &Error::invalid_request("contents: missing"));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"code": 400, "message": "contents: missing", "status": "INVALID_ARGUMENT"}})
        );
    }

    #[test]
    fn keepalives_are_what_each_framing_allows() {
        assert_eq!(keepalive_frame(Framing::Sse, Dialect::OpenAiChat), b": keepalive\n\n");
        assert_eq!(keepalive_frame(Framing::Sse, Dialect::Gemini), b"\n");
        assert_eq!(keepalive_frame(Framing::JsonArray, Dialect::Gemini), b"\n");
    }
}
