//! A streamed answer as Python reads it: one event's JSON text per `next` (blocking) or `anext` (asyncio).
//!
//! The core's [`EventStream`] cancels the upstream request when dropped, so every way of leaving early comes
//! down to dropping it: `close()`, the Python object being collected, Ctrl-C during a blocking read that the
//! caller does not resume, or the asyncio task awaiting `anext` being cancelled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cliproxy_core::{Error, Event, EventStream};
use futures::{FutureExt, StreamExt};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyString;
use tokio::task::AbortHandle;

use crate::errors::to_py_err;
use crate::runtime::{block_on, ready_future, runtime, spawn_for_asyncio};

/// What one read produced.
enum Step {
    Data(String),
    /// The stream ended (or the OpenAI `[DONE]` marker arrived, which Python never sees).
    End,
    /// The upstream failed after the stream started; this is the stream's last item.
    Fail(Error),
}

impl Step {
    fn of(item: Option<cliproxy_core::error::Result<Event>>) -> Step {
        match item {
            None => Step::End,
            Some(Err(e)) => Step::Fail(e),
            Some(Ok(ev)) if ev.data.trim_ascii() == "[DONE]" => Step::End,
            Some(Ok(ev)) => Step::Data(ev.data),
        }
    }

    fn is_last(&self) -> bool {
        !matches!(self, Step::Data(_))
    }

    /// `str` for an event, `None` at the end, the mapped exception for a failure.
    fn into_py(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self {
            Step::Data(s) => Ok(PyString::new(py, &s).into_any().unbind()),
            Step::End => Ok(py.None()),
            Step::Fail(e) => Err(to_py_err(py, &e)),
        }
    }
}

/// Where the stream rests between reads. A read takes it out (so two readers can never interleave) and puts
/// it back unless the stream ended or was closed meanwhile.
struct Slot {
    stream: Mutex<Option<EventStream>>,
    closed: AtomicBool,
    /// The task of an `anext` in flight, aborted by `close()`.
    inflight: Mutex<Option<AbortHandle>>,
    pid: u32,
}

impl Slot {
    /// The stream for one read; `None` once closed or finished.
    fn take(self: &Arc<Self>) -> PyResult<Option<Lease>> {
        if self.closed.load(Ordering::Acquire) {
            return Ok(None);
        }
        match self.stream.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(stream) => Ok(Some(Lease { stream: Some(stream), slot: self.clone() })),
            None if self.closed.load(Ordering::Acquire) => Ok(None),
            None => Err(PyRuntimeError::new_err(
                "this stream is already being read (by another thread or a pending anext); a stream has one reader",
            )),
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let stream = self.stream.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(stream);
        if let Some(task) = self.inflight.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // In a forked child the stream belongs to the parent's runtime: leave it alone (see runtime.rs).
        if self.pid != std::process::id()
            && let Some(stream) = self.stream.get_mut().unwrap_or_else(|p| p.into_inner()).take()
        {
            std::mem::forget(stream);
        }
    }
}

/// A stream taken out of its slot for one read. Dropped without being returned (an aborted `anext` task),
/// it closes the slot: the upstream request is gone with it.
struct Lease {
    stream: Option<EventStream>,
    slot: Arc<Slot>,
}

impl Lease {
    fn stream(&mut self) -> &mut EventStream {
        self.stream.as_mut().expect("a lease holds its stream until returned")
    }

    /// Returns the stream to its slot after a read that produced `step`.
    fn settle(mut self, step: &Step) {
        let stream = self.stream.take();
        if step.is_last() {
            self.slot.closed.store(true, Ordering::Release);
            drop(stream);
            return;
        }
        let mut rest = self.slot.stream.lock().unwrap_or_else(|p| p.into_inner());
        if !self.slot.closed.load(Ordering::Acquire) {
            *rest = stream;
        }
    }

    /// Returns the stream unread (an interrupted blocking read): the caller may read again.
    fn give_back(mut self) {
        let stream = self.stream.take();
        let mut rest = self.slot.stream.lock().unwrap_or_else(|p| p.into_inner());
        if !self.slot.closed.load(Ordering::Acquire) {
            *rest = stream;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            self.slot.closed.store(true, Ordering::Release);
            if self.slot.pid == std::process::id() {
                drop(stream);
            } else {
                std::mem::forget(stream);
            }
        }
    }
}

/// A streamed answer: `next()` blocks, `anext()` returns an awaitable; both give one event's JSON text, or
/// `None` at the end.
#[pyclass(module = "cliproxy._native", name = "Stream", frozen)]
pub struct NativeStream {
    slot: Arc<Slot>,
    credential: String,
}

impl NativeStream {
    pub fn new(stream: EventStream) -> Self {
        let credential = stream.credential().to_owned();
        NativeStream {
            slot: Arc::new(Slot {
                stream: Mutex::new(Some(stream)),
                closed: AtomicBool::new(false),
                inflight: Mutex::new(None),
                pid: std::process::id(),
            }),
            credential,
        }
    }
}

#[pymethods]
impl NativeStream {
    /// The next event's data (JSON text), or `None` at the end. Blocks with the GIL released.
    fn next(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let Some(mut lease) = self.slot.take()? else { return Ok(py.None()) };
        match block_on(py, lease.stream().next()) {
            Ok(item) => {
                let step = Step::of(item);
                lease.settle(&step);
                step.into_py(py)
            }
            Err(interrupted) => {
                lease.give_back();
                Err(interrupted)
            }
        }
    }

    /// An `asyncio.Future` of the next event's data, or of `None` at the end.
    fn anext<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let Some(mut lease) = self.slot.take()? else { return ready_future(py, Ok(py.None())) };
        // Events often arrive several to a network read and wait decoded in the core's queue: take those without
        // a round trip through the runtime's threads.
        let ready = {
            let _context = runtime().enter();
            lease.stream().next().now_or_never()
        };
        if let Some(item) = ready {
            let step = Step::of(item);
            lease.settle(&step);
            return ready_future(py, step.into_py(py));
        }
        let read = async move {
            let step = Step::of(lease.stream().next().await);
            lease.settle(&step);
            step
        };
        let (future, task) = spawn_for_asyncio(py, read, Box::new(|py, step: Step| step.into_py(py)))?;
        *self.slot.inflight.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        future.call_method1("add_done_callback", (CloseOnCancel { slot: self.slot.clone() },))?;
        Ok(future)
    }

    /// Stops reading and cancels the upstream request. Idempotent.
    fn close(&self) {
        self.slot.close();
    }

    #[getter]
    fn closed(&self) -> bool {
        self.slot.closed.load(Ordering::Acquire)
    }

    /// The id of the credential serving the stream.
    #[getter]
    fn credential(&self) -> &str {
        &self.credential
    }
}

/// Done-callback of an `anext` future: a cancelled read closes the stream at once (the read's task is aborted,
/// taking the upstream request with it), so `closed` is already true when the cancelled task resumes.
#[pyclass(module = "cliproxy._native", frozen)]
pub struct CloseOnCancel {
    slot: Arc<Slot>,
}

#[pymethods]
impl CloseOnCancel {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.slot.pid == std::process::id() && future.call_method0("cancelled")?.is_truthy()? {
            self.slot.close();
        }
        Ok(())
    }
}

impl Drop for NativeStream {
    fn drop(&mut self) {
        if self.slot.pid == std::process::id() {
            self.slot.close();
        }
    }
}
