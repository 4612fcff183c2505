//! Cancellation from JavaScript: an `AbortSignal` (or breaking out of a `for await`) flips a [`Token`];
//! whatever is waiting on it stops, and the future that held the upstream request is dropped, which closes
//! the upstream connection.

use std::sync::Arc;

use napi_derive::napi;
use tokio::sync::watch;

/// A one-way flag that any number of futures can wait on: cancellation of calls and streams, and the end
/// of a server.
#[derive(Clone)]
pub(crate) struct Token(Arc<watch::Sender<bool>>);

impl Default for Token {
    fn default() -> Self {
        Token(Arc::new(watch::channel(false).0))
    }
}

impl Token {
    pub(crate) fn cancel(&self) {
        self.0.send_replace(true);
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once [`Token::cancel`] was called (at once if it already was).
    pub(crate) async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// The JavaScript handle of a [`Token`]: created per call, passed to `send`, cancelled from an abort listener.
#[napi]
pub struct NativeCancel {
    pub(crate) token: Token,
}

#[napi]
impl NativeCancel {
    #[napi(constructor)]
    #[allow(clippy::new_without_default)] // napi constructors are plain `new`.
    pub fn new() -> Self {
        NativeCancel { token: Token::default() }
    }

    /// Cancels the call (and the stream it produced). Idempotent.
    #[napi]
    pub fn cancel(&self) {
        self.token.cancel();
    }

    #[napi(getter)]
    pub fn cancelled(&self) -> bool {
        self.token.is_cancelled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[test]
    fn waiters_wake_on_cancel_and_late_waiters_return_at_once() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let token = Token::default();
        let waiting = token.clone();
        let waiter = rt.spawn(async move { waiting.cancelled().await });
        assert!(!token.is_cancelled());
        token.cancel();
        rt.block_on(waiter).unwrap();
        assert!(token.cancelled().now_or_never().is_some());
    }
}
