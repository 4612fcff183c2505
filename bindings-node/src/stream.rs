//! [`NativeStream`]: a streamed answer, read from JavaScript one batch of events at a time.
//!
//! Each `next()` waits for at least one event and then takes every further event that is already decoded,
//! so a fast stream costs one promise per network read rather than one per token. OpenAI's closing `[DONE]`
//! is not an event for the caller and is dropped here, but the stream is still read to its end after it so
//! the core accounts the usage the upstream reported. Dropping the core stream (on `close()`, cancellation,
//! an error, or garbage collection of this object) cancels the upstream request.

use std::sync::Arc;

use cliproxy_core::{Error, EventStream};
use futures::{FutureExt, StreamExt};
use napi::bindgen_prelude::PromiseRaw;
use napi::{Env, Result};
use napi_derive::napi;
use tokio::sync::Mutex;

use crate::cancel::Token;
use crate::error::{cancelled, to_napi};

/// Most events handed over by one `next()`: bounds the work one promise resolution does on the JS thread.
const MAX_BATCH: usize = 256;

/// One server-sent event in the request's dialect. `data` is JSON text.
#[napi(object)]
pub struct NativeEvent {
    pub event: Option<String>,
    pub data: String,
}

struct State {
    /// `None` once the stream ended, failed, or was closed.
    events: Option<EventStream>,
    /// A failure that arrived behind events of the same batch; reported by the following `next()`.
    failed: Option<Error>,
}

struct Shared {
    state: Mutex<State>,
    token: Token,
    credential: String,
}

#[napi]
pub struct NativeStream {
    shared: Arc<Shared>,
}

impl NativeStream {
    pub(crate) fn new(events: EventStream, token: Token) -> Self {
        let credential = events.credential().to_owned();
        NativeStream {
            shared: Arc::new(Shared {
                state: Mutex::new(State { events: Some(events), failed: None }),
                token,
                credential,
            }),
        }
    }
}

#[napi]
impl NativeStream {
    /// The id of the credential serving the stream.
    #[napi(getter)]
    pub fn credential(&self) -> String {
        self.shared.credential.clone()
    }

    /// The next events (at least one), or `null` at the end. Rejects with the structured error when the
    /// upstream failed mid-stream, and with `CANCELLED` once the call was cancelled.
    #[napi]
    pub fn next<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Option<Vec<NativeEvent>>>> {
        let shared = self.shared.clone();
        env.spawn_future(async move { next_batch(&shared).await.map_err(to_napi) })
    }

    /// Stops the stream and cancels the upstream request. Idempotent; a `next()` in flight rejects with
    /// `CANCELLED`.
    #[napi]
    pub fn close(&self) {
        self.shared.token.cancel();
        // Drop the upstream at once when no `next()` holds the state; otherwise that `next()` drops it when
        // it sees the cancellation.
        if let Ok(mut state) = self.shared.state.try_lock() {
            state.events = None;
        }
    }
}

async fn next_batch(shared: &Shared) -> std::result::Result<Option<Vec<NativeEvent>>, Error> {
    let mut state = shared.state.lock().await;
    if let Some(e) = state.failed.take() {
        return Err(e);
    }
    let Some(mut events) = state.events.take() else {
        return if shared.token.is_cancelled() { Err(cancelled()) } else { Ok(None) };
    };
    let mut batch = Vec::new();
    loop {
        let item = if batch.is_empty() {
            if shared.token.is_cancelled() {
                return Err(cancelled());
            }
            tokio::select! {
                item = events.next() => item,
                () = shared.token.cancelled() => return Err(cancelled()),
            }
        } else {
            match events.next().now_or_never() {
                Some(item) => item,
                None => break,
            }
        };
        match item {
            None => return Ok(if batch.is_empty() { None } else { Some(batch) }),
            Some(Err(e)) if batch.is_empty() => return Err(e),
            Some(Err(e)) => {
                state.failed = Some(e);
                return Ok(Some(batch));
            }
            Some(Ok(ev)) if ev.data == "[DONE]" => {}
            Some(Ok(ev)) => {
                batch.push(NativeEvent { event: ev.event.map(|e| e.into_owned()), data: ev.data });
                if batch.len() == MAX_BATCH {
                    break;
                }
            }
        }
    }
    state.events = Some(events);
    Ok(Some(batch))
}
