//! The one tokio runtime of the process, and the two ways Python waits on it.
//!
//! - Blocking calls ([`block_on`]) run the future on the calling thread with the GIL released, in short slices,
//!   checking for signals between slices so Ctrl-C raises `KeyboardInterrupt` (and drops, i.e. cancels, the
//!   request) instead of hanging until the upstream answers.
//! - Asyncio calls ([`spawn_for_asyncio`]) run the future as a tokio task and complete an `asyncio.Future` with
//!   `loop.call_soon_threadsafe`, so the event loop never blocks and needs no extra Python dependency.
//!
//! Fork safety: the runtime's worker threads do not survive `fork()`, so the runtime is keyed by process id and
//! a child builds its own on first use. The parent's runtime is leaked in the child, never dropped: dropping it
//! would join threads that do not exist there, and deregistering its sockets would remove them from the epoll
//! set the child still shares with the parent.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

/// How long a blocking call waits before it looks for pending signals. Short enough that Ctrl-C feels
/// immediate, long enough that an idle wait costs nothing measurable.
const SIGNAL_SLICE: Duration = Duration::from_millis(50);

struct PerProcess {
    pid: u32,
    runtime: &'static Runtime,
}

static RUNTIME: Mutex<Option<PerProcess>> = Mutex::new(None);

/// The runtime of this process, built on first use (and again in a forked child).
///
/// Only called with the GIL held; `os.fork()` holds the GIL too, so a child never inherits this lock locked.
pub fn runtime() -> &'static Runtime {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(|p| p.into_inner());
    match &*slot {
        Some(p) if p.pid == pid => p.runtime,
        _ => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .thread_name("cliproxy-runtime")
                .enable_all()
                .build()
                .expect("the OS refused to start the cliproxy runtime threads");
            // Leaked on purpose: it lives as long as the process (see the module docs for the fork case).
            let runtime: &'static Runtime = Box::leak(Box::new(runtime));
            *slot = Some(PerProcess { pid, runtime });
            runtime
        }
    }
}

/// Runs `fut` to completion on the calling thread with the GIL released. Signals are checked every
/// [`SIGNAL_SLICE`]; a signal handler that raises (Ctrl-C) ends the wait with its exception and drops `fut`,
/// which cancels whatever it was doing upstream.
pub fn block_on<F>(py: Python<'_>, fut: F) -> PyResult<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    let runtime = runtime();
    let mut fut = std::pin::pin!(fut);
    loop {
        // The timer must be created inside `block_on`, where the runtime's context is entered.
        let sliced = py.detach(|| runtime.block_on(async { tokio::time::timeout(SIGNAL_SLICE, fut.as_mut()).await }));
        match sliced {
            Ok(out) => return Ok(out),
            Err(_elapsed) => py.check_signals()?,
        }
    }
}

/// Builds the Python value of a finished task, under the GIL.
pub type Deliver<T> = Box<dyn FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send>;

/// Runs `fut` on the runtime and returns an `asyncio.Future` of the running loop that completes with
/// `deliver(output)` (or its exception). Cancelling the asyncio future aborts the task, which drops the
/// request. The task's handle is returned too, for owners that abort it themselves (a closed stream).
pub fn spawn_for_asyncio<'py, F>(
    py: Python<'py>,
    fut: F,
    deliver: Deliver<F::Output>,
) -> PyResult<(Bound<'py, PyAny>, AbortHandle)>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let event_loop = running_loop(py)?;
    let future = event_loop.call_method0("create_future")?;
    let target = Target { event_loop: event_loop.unbind(), future: future.clone().unbind() };
    let task = runtime().spawn(async move {
        let out = fut.await;
        // The interpreter may be shutting down: then nobody is waiting any more.
        Python::try_attach(|py| target.complete(py, deliver(py, out)));
    });
    let handle = task.abort_handle();
    future.call_method1("add_done_callback", (AbortOnCancel::new(handle.clone()),))?;
    Ok((future, handle))
}

/// An `asyncio.Future` of the running loop that is already done (no thread hop needed).
pub fn ready_future<'py>(py: Python<'py>, value: PyResult<Py<PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    let future = running_loop(py)?.call_method0("create_future")?;
    match value {
        Ok(v) => future.call_method1("set_result", (v,))?,
        Err(e) => future.call_method1("set_exception", (e.into_value(py),))?,
    };
    Ok(future)
}

fn running_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    GET_RUNNING_LOOP.import(py, "asyncio", "get_running_loop")?.call0()
}

/// Where a task's result goes: an asyncio future and the loop that owns it.
pub struct Target {
    event_loop: Py<PyAny>,
    future: Py<PyAny>,
}

impl Target {
    /// Hands `value` to the loop's thread, which sets it on the future unless the future was cancelled
    /// meanwhile (`cliproxy._aio.resolve` / `reject` check that on the loop's thread, where it is race-free).
    pub fn complete(&self, py: Python<'_>, value: PyResult<Py<PyAny>>) {
        static RESOLVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        static REJECT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let (callback, arg) = match value {
            Ok(v) => (RESOLVE.import(py, "cliproxy._aio", "resolve"), v),
            Err(e) => (REJECT.import(py, "cliproxy._aio", "reject"), e.into_value(py).into_any()),
        };
        let scheduled = callback.and_then(|cb| {
            let args = PyTuple::new(py, [cb.clone().unbind(), self.future.clone_ref(py), arg])?;
            self.event_loop.bind(py).call_method1("call_soon_threadsafe", args).map(drop)
        });
        // A closed loop refuses callbacks: its futures are gone, so the result has nowhere to go.
        drop(scheduled);
    }
}

/// Done-callback of an asyncio future: aborts the task computing it when the future was cancelled.
#[pyclass(module = "cliproxy._native", frozen)]
pub struct AbortOnCancel {
    handle: AbortHandle,
    pid: u32,
}

impl AbortOnCancel {
    pub fn new(handle: AbortHandle) -> Self {
        AbortOnCancel { handle, pid: std::process::id() }
    }
}

#[pymethods]
impl AbortOnCancel {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        // A task of the parent's runtime does not exist in a forked child.
        if self.pid == std::process::id() && future.call_method0("cancelled")?.is_truthy()? {
            self.handle.abort();
        }
        Ok(())
    }
}
