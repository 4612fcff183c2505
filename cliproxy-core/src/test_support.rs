//! Test doubles for the I/O seams: a fake clock that also runs spawned tasks, and scripted transports. They let
//! unit tests drive `Client`, refresh loops and cooldown rules on `futures::executor` without sockets or waiting.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;

use crate::transport::{HttpTransport, Runtime, TransportError, TransportErrorKind, TransportResponse};

/// A clock that moves only when told to, and an executor for the tasks spawned on it.
pub struct FakeRuntime {
    now: Arc<Mutex<SystemTime>>,
    tasks: Mutex<Vec<BoxFuture<'static, ()>>>,
}

impl FakeRuntime {
    pub fn new() -> Self {
        FakeRuntime {
            now: Arc::new(Mutex::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000))),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Moves the clock forward, then runs spawned tasks until none can make progress.
    pub fn advance(&self, by: Duration) {
        *self.now.lock().unwrap() += by;
        self.run_until_stalled();
    }

    /// Polls every spawned task until a whole round wakes nothing.
    pub fn run_until_stalled(&self) {
        for _ in 0..10_000 {
            let flag = Arc::new(Flag(AtomicBool::new(false)));
            let waker = Waker::from(flag.clone());
            let mut cx = Context::from_waker(&waker);
            let mut tasks = std::mem::take(&mut *self.tasks.lock().unwrap());
            tasks.retain_mut(|t| t.as_mut().poll(&mut cx).is_pending());
            let mut guard = self.tasks.lock().unwrap();
            let spawned_meanwhile = !guard.is_empty();
            tasks.append(&mut guard);
            *guard = tasks;
            drop(guard);
            if !flag.0.load(Ordering::SeqCst) && !spawned_meanwhile {
                return;
            }
        }
        panic!("spawned tasks never settle");
    }

    /// A future that is pending once (so concurrent callers interleave), then ready.
    pub fn yield_now(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut yielded = false;
        futures::future::poll_fn(move |cx| {
            if yielded {
                Poll::Ready(())
            } else {
                yielded = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
    }
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Runtime for FakeRuntime {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap()
    }

    /// Completes once the fake clock reached the deadline. It re-arms its waker on every poll, so whoever drives
    /// it (a test's executor or `run_until_stalled`) checks it again after each step.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Sleep { deadline: self.now() + duration, now: self.now.clone() }.boxed()
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        self.tasks.lock().unwrap().push(task);
    }
}

struct Sleep {
    deadline: SystemTime,
    now: Arc<Mutex<SystemTime>>,
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if *self.now.lock().unwrap() >= self.deadline { Poll::Ready(()) } else { Poll::Pending }
    }
}

/// A transport that refuses every request (for code paths that must not do I/O).
pub struct NoTransport;

impl HttpTransport for NoTransport {
    fn send(&self, _request: http::Request<Bytes>) -> BoxFuture<'static, Result<TransportResponse, TransportError>> {
        futures::future::ready(Err(TransportError::new(TransportErrorKind::Connect, "no network in this test"))).boxed()
    }
}

/// One scripted answer: status, headers and body chunks.
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub chunks: Vec<Bytes>,
}

impl Canned {
    pub fn json(status: u16, body: &str) -> Self {
        Canned {
            status,
            headers: vec![("content-type", "application/json".into())],
            chunks: vec![Bytes::from(body.to_owned())],
        }
    }
}

/// A transport answering from a queue, recording every request it was sent.
#[derive(Default)]
pub struct ScriptedTransport {
    pub answers: Mutex<VecDeque<Canned>>,
    pub requests: Mutex<Vec<http::Request<Bytes>>>,
}

impl ScriptedTransport {
    pub fn push(&self, c: Canned) {
        self.answers.lock().unwrap().push_back(c);
    }
}

impl HttpTransport for ScriptedTransport {
    fn send(&self, request: http::Request<Bytes>) -> BoxFuture<'static, Result<TransportResponse, TransportError>> {
        self.requests.lock().unwrap().push(request);
        let answer = self.answers.lock().unwrap().pop_front();
        async move {
            let c = answer.ok_or_else(|| TransportError::new(TransportErrorKind::Connect, "script exhausted"))?;
            let mut headers = http::HeaderMap::new();
            for (k, v) in c.headers {
                headers.insert(k, v.parse().unwrap());
            }
            let body = futures::stream::iter(c.chunks.into_iter().map(Ok));
            Ok(TransportResponse {
                status: http::StatusCode::from_u16(c.status).unwrap(),
                headers,
                body: Box::pin(body),
            })
        }
        .boxed()
    }
}
