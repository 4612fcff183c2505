//! Turning a response body into bytes on the wire the way a directive asks: in one piece, or cut
//! at given offsets / every N bytes / between events with pauses so that a client really sees
//! separate reads, optionally ending with an abrupt close. Streaming bodies dropped before they
//! were fully handed to the server count as cancelled.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::Serialize;

use crate::directive::Directive;
use crate::state::State;

/// Pause between pieces cut by `split`, long enough for each piece to arrive as its own read.
const SPLIT_PAUSE: Duration = Duration::from_millis(2);

/// A body under construction: bytes plus the end offset of each event, so that delays and faults
/// can act on event boundaries.
#[derive(Debug, Default)]
pub struct EventBuf {
    buf: Vec<u8>,
    ends: Vec<usize>,
}

impl EventBuf {
    pub fn new() -> EventBuf {
        EventBuf { buf: Vec::with_capacity(1024), ends: Vec::new() }
    }

    /// An SSE frame without a name: `data: {json}\n\n`.
    pub fn data<T: Serialize + ?Sized>(&mut self, value: &T) {
        self.buf.extend_from_slice(b"data: ");
        self.json(value);
        self.buf.extend_from_slice(b"\n\n");
        self.end();
    }

    /// An SSE frame with literal data, such as `data: [DONE]\n\n`.
    pub fn data_text(&mut self, text: &str) {
        self.buf.extend_from_slice(b"data: ");
        self.buf.extend_from_slice(text.as_bytes());
        self.buf.extend_from_slice(b"\n\n");
        self.end();
    }

    /// A named SSE event: `event: NAME\ndata: {json}\n\n`.
    pub fn event<T: Serialize + ?Sized>(&mut self, name: &str, value: &T) {
        self.buf.extend_from_slice(b"event: ");
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b"\ndata: ");
        self.json(value);
        self.buf.extend_from_slice(b"\n\n");
        self.end();
    }

    /// One event of arbitrary bytes (a binary frame, or a whole JSON body).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.end();
    }

    /// Number of events so far.
    pub fn events(&self) -> usize {
        self.ends.len()
    }

    /// The byte offset where the first `events` events end.
    pub fn end_of(&self, events: usize) -> usize {
        match events {
            0 => 0,
            n => self.ends.get(n - 1).copied().unwrap_or(self.buf.len()),
        }
    }

    /// Keeps only the first `events` events.
    pub fn truncate(&mut self, events: usize) {
        if events < self.ends.len() {
            self.ends.truncate(events);
            self.buf.truncate(self.ends.last().copied().unwrap_or(0));
        }
    }

    pub fn finish(self) -> Payload {
        Payload { bytes: Bytes::from(self.buf), ends: self.ends }
    }

    fn json<T: Serialize + ?Sized>(&mut self, value: &T) {
        serde_json::to_writer(&mut self.buf, value)
            .expect("the mock's frames are plain data and serialize into memory");
    }

    fn end(&mut self) {
        self.ends.push(self.buf.len());
    }
}

/// A finished body and its event boundaries.
#[derive(Debug, Clone)]
pub struct Payload {
    pub bytes: Bytes,
    pub ends: Vec<usize>,
}

impl Payload {
    /// A body that is one event.
    pub fn whole(bytes: impl Into<Bytes>) -> Payload {
        let bytes = bytes.into();
        let ends = vec![bytes.len()];
        Payload { bytes, ends }
    }
}

/// How a body goes on the wire.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    /// Byte offsets to cut the body at.
    pub split: Vec<usize>,
    /// Cut every this many bytes.
    pub chunk: Option<usize>,
    /// Pause after each event but the last.
    pub delay: Duration,
    /// Send only this many bytes of the body, then close the connection instead of finishing
    /// it (a declared `content-length` still counts the whole body).
    pub cut_at: Option<usize>,
    /// A streaming (SSE / event-stream) answer: no `content-length`, and counted as cancelled
    /// when dropped early.
    pub stream: bool,
}

impl Delivery {
    pub fn new(directive: &Directive, stream: bool) -> Delivery {
        Delivery {
            split: directive.split.clone(),
            chunk: directive.chunk,
            delay: Duration::from_millis(directive.delay_ms),
            cut_at: None,
            stream,
        }
    }

    /// Where the body is cut and how long to pause after each piece (`None` after the last). A
    /// zero pause still yields to the runtime so the server flushes the piece on its own.
    fn plan(&self, payload: &Payload) -> Vec<(usize, Option<Duration>)> {
        let len = self.cut_at.map_or(payload.bytes.len(), |cut| cut.min(payload.bytes.len()));
        let mut cuts: BTreeMap<usize, Duration> = BTreeMap::new();
        let mut cut = |at: usize, pause: Duration| {
            if at > 0 && at < len {
                let entry = cuts.entry(at).or_insert(pause);
                *entry = (*entry).max(pause);
            }
        };
        for &at in &self.split {
            cut(at, SPLIT_PAUSE);
        }
        if let Some(n) = self.chunk.filter(|&n| n > 0) {
            let pause = chunk_pause(len.div_ceil(n));
            for at in (n..len).step_by(n) {
                cut(at, pause);
            }
        }
        if !self.delay.is_zero() {
            for &at in &payload.ends {
                cut(at, self.delay);
            }
        }
        let mut plan: Vec<_> = cuts.into_iter().map(|(at, p)| (at, Some(p))).collect();
        if len > 0 {
            plan.push((len, None));
        }
        plan
    }

    /// The response: `headers` plus a body delivered as planned.
    pub fn respond(self, status: StatusCode, mut headers: HeaderMap, payload: Payload, state: &Arc<State>) -> Response {
        let plan = self.plan(&payload);
        if plan.len() <= 1 && self.cut_at.is_none() && !self.stream {
            return whole(status, headers, payload.bytes);
        }
        if !self.stream {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(payload.bytes.len()));
        }
        let body = {
            let feed = Feed {
                bytes: payload.bytes,
                plan: plan.into_iter(),
                pos: 0,
                pause: None,
                abort: self.cut_at.is_some(),
                guard: self.stream.then(|| CancelGuard { state: Arc::clone(state), complete: false }),
            };
            Body::from_stream(futures::stream::unfold(feed, Feed::next))
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }
}

/// A response whose body goes out in one piece with its length.
pub fn whole(status: StatusCode, mut headers: HeaderMap, body: Bytes) -> Response {
    headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// A JSON response in one piece.
pub fn json(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    whole(status, headers, body.to_string().into())
}

/// Pause between `chunk` pieces: 2 ms while that stays within half a second, 1 ms a little
/// beyond, and for many pieces only a yield to the runtime (each piece is still flushed on its
/// own), so that even one-byte chunks of a long body finish quickly.
fn chunk_pause(pieces: usize) -> Duration {
    match pieces {
        0..=250 => SPLIT_PAUSE,
        251..=500 => Duration::from_millis(1),
        _ => Duration::ZERO,
    }
}

/// The state of a paced body.
struct Feed {
    bytes: Bytes,
    plan: std::vec::IntoIter<(usize, Option<Duration>)>,
    pos: usize,
    pause: Option<Duration>,
    abort: bool,
    guard: Option<CancelGuard>,
}

impl Feed {
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Feed)> {
        match self.pause.take() {
            Some(pause) if pause.is_zero() => tokio::task::yield_now().await,
            Some(pause) => tokio::time::sleep(pause).await,
            None => {}
        }
        match self.plan.next() {
            Some((end, pause)) => {
                let piece = self.bytes.slice(self.pos..end);
                self.pos = end;
                self.pause = pause;
                if self.plan.len() == 0 {
                    self.complete();
                }
                Some((Ok(piece), self))
            }
            None => {
                self.complete();
                if std::mem::take(&mut self.abort) {
                    // Let the server flush what it has (the status line included) before the
                    // error makes it drop the connection along with its unwritten buffer.
                    tokio::time::sleep(SPLIT_PAUSE).await;
                    let cut = std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "mock fault: connection cut");
                    Some((Err(cut), self))
                } else {
                    None
                }
            }
        }
    }

    fn complete(&mut self) {
        if let Some(guard) = &mut self.guard {
            guard.complete = true;
        }
    }
}

/// Counts a streaming body as cancelled when it is dropped before all of it was handed over.
struct CancelGuard {
    state: Arc<State>,
    complete: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.complete {
            self.state.count_cancelled();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> Payload {
        let mut buf = EventBuf::new();
        buf.data_text("a");
        buf.event("x", &serde_json::json!({"k": 1}));
        buf.data_text("[DONE]");
        buf.finish()
    }

    #[test]
    fn events_are_framed_and_truncated_on_boundaries() {
        let p = payload();
        assert_eq!(&p.bytes[..], b"data: a\n\nevent: x\ndata: {\"k\":1}\n\ndata: [DONE]\n\n");
        assert_eq!(p.ends, [9, 33, 47]);
        let mut buf = EventBuf::new();
        buf.data_text("a");
        buf.data_text("b");
        buf.truncate(1);
        assert_eq!(&buf.finish().bytes[..], b"data: a\n\n");
    }

    #[test]
    fn plan_merges_splits_chunks_and_delays() {
        let p = payload();
        let plain = Delivery::default();
        assert_eq!(plain.plan(&p), [(47, None)]);
        let split = Delivery { split: vec![0, 3, 3, 9, 100], delay: Duration::from_millis(50), ..Delivery::default() };
        assert_eq!(
            split.plan(&p),
            [
                (3, Some(SPLIT_PAUSE)),
                (9, Some(Duration::from_millis(50))),
                (33, Some(Duration::from_millis(50))),
                (47, None)
            ]
        );
        let chunk = Delivery { chunk: Some(20), ..Delivery::default() };
        assert_eq!(chunk.plan(&p), [(20, Some(SPLIT_PAUSE)), (40, Some(SPLIT_PAUSE)), (47, None)]);
        assert!(plain.plan(&Payload::whole(Bytes::new())).is_empty());
    }
}
