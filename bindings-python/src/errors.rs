//! The one mapping from the core's [`Error`] to the Python exception classes.
//!
//! The classes are defined in Python (`cliproxy/_errors.py`) so they are ordinary, picklable, documented Python
//! classes that users can subclass-check and construct in their own tests; the native code only instantiates
//! them. `_errors.BY_KIND` maps the core's stable kind names to classes, so a kind added to the core without a
//! class here falls back to the base `cliproxy.Error` instead of failing.

use cliproxy_core::Error;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

/// The Python exception for `e`: the class of its kind, with every fact the core knows as attributes.
pub fn to_py_err(py: Python<'_>, e: &Error) -> PyErr {
    match build(py, e) {
        Ok(err) => err,
        // Only reachable if the package's Python half is broken; say so rather than hide the original error.
        Err(import_failure) => import_failure,
    }
}

fn build(py: Python<'_>, e: &Error) -> PyResult<PyErr> {
    static BY_KIND: PyOnceLock<Py<PyDict>> = PyOnceLock::new();
    static BASE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let by_kind = BY_KIND.import(py, "cliproxy._errors", "BY_KIND")?;
    let class = match by_kind.get_item(e.kind().as_str())? {
        Some(class) => class,
        None => BASE.import(py, "cliproxy._errors", "Error")?.clone(),
    };
    let kwargs = PyDict::new(py);
    kwargs.set_item("kind", e.kind().as_str())?;
    kwargs.set_item("status", e.status())?;
    kwargs.set_item("retry_after", e.retry_after().map(|d| d.as_secs_f64()))?;
    kwargs.set_item("credential", e.credential())?;
    kwargs.set_item("model", e.model())?;
    kwargs.set_item("code", e.code())?;
    kwargs.set_item("fault", e.fault().as_str())?;
    let exc = class.call((e.message(),), Some(&kwargs))?;
    // What caused the error (a refused connection, say) becomes the exception's `__cause__`, as `raise … from`
    // would make it, so tracebacks show the chain.
    if let Some(cause) = std::error::Error::source(e) {
        let cause = pyo3::exceptions::PyConnectionError::new_err(cause.to_string());
        exc.setattr("__cause__", cause.value(py))?;
    }
    Ok(PyErr::from_value(exc))
}

/// Shorthand for `map_err` at call sites that hold the GIL.
pub trait IntoPyResult<T> {
    fn py(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, Error> {
    fn py(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py_err(py, &e))
    }
}
