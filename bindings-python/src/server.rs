//! The reference server, in-process: `cliproxy.serve()` binds, starts it on the shared runtime's threads and
//! returns at once with a handle.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use cliproxy_core::Error;
use cliproxy_server::ServerHandle;
use pyo3::prelude::*;
use tokio::sync::watch;

use crate::client::NativeConfig;
use crate::errors::to_py_err;
use crate::runtime::block_on;

/// Why a server did not start: the address (an `OSError`, as for any socket) or the configuration.
enum StartError {
    Bind(std::io::Error),
    Core(Error),
}

/// A running server. It serves until `stop()`; dropping the handle does not stop it, just as losing a
/// `threading.Thread` object does not stop the thread.
#[pyclass(module = "cliproxy._native", name = "Server", frozen)]
pub struct NativeServer {
    handle: Mutex<Option<ServerHandle>>,
    addr: SocketAddr,
    stopped: watch::Sender<bool>,
    pid: u32,
}

#[pyfunction]
pub fn serve(py: Python<'_>, config: &NativeConfig, host: String, port: u16) -> PyResult<NativeServer> {
    let config = config.config.clone();
    let started = block_on(py, async move {
        let listener = tokio::net::TcpListener::bind((host.as_str(), port)).await.map_err(StartError::Bind)?;
        cliproxy_server::serve(config, listener).await.map_err(StartError::Core)
    })?;
    let handle = match started {
        Ok(handle) => handle,
        Err(StartError::Bind(e)) => return Err(e.into()),
        Err(StartError::Core(e)) => return Err(to_py_err(py, &e)),
    };
    Ok(NativeServer {
        addr: handle.local_addr(),
        handle: Mutex::new(Some(handle)),
        stopped: watch::Sender::new(false),
        pid: std::process::id(),
    })
}

#[pymethods]
impl NativeServer {
    #[getter]
    fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    #[getter]
    fn port(&self) -> u16 {
        self.addr.port()
    }

    #[getter]
    fn running(&self) -> bool {
        !*self.stopped.borrow()
    }

    /// Stops accepting, lets open requests finish for up to `drain` seconds, then closes the rest. Idempotent.
    #[pyo3(signature = (drain=5.0))]
    fn stop(&self, py: Python<'_>, drain: f64) -> PyResult<()> {
        let handle = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            if self.pid == std::process::id() {
                let drain = Duration::try_from_secs_f64(drain.max(0.0)).unwrap_or(Duration::MAX);
                block_on(py, handle.shutdown(drain))?;
            } else {
                // A forked child inherited the handle but not the server (its threads stayed in the parent).
                std::mem::forget(handle);
            }
        }
        self.stopped.send_replace(true);
        Ok(())
    }

    /// Blocks until `stop()` is called (from another thread); Ctrl-C raises `KeyboardInterrupt`.
    fn wait(&self, py: Python<'_>) -> PyResult<()> {
        let mut stopped = self.stopped.subscribe();
        block_on(py, async move { stopped.wait_for(|s| *s).await.map(drop) })?
            .map_err(|_| pyo3::exceptions::PyRuntimeError::new_err("the server handle was dropped"))
    }
}

impl Drop for NativeServer {
    fn drop(&mut self) {
        // Keep serving: dropping the core handle would stop the server.
        if let Some(handle) = self.handle.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            std::mem::forget(handle);
        }
    }
}
