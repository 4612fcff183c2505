//! The native half of the `cliproxy` Python package (`cliproxy._native`).
//!
//! It wraps the core [`Client`](cliproxy_core::Client) and the reference server for the pure-Python layer in
//! `python/cliproxy`, which owns the public API: argument handling, JSON, the iterator and context-manager
//! protocols and the exception classes. Keeping this side to "bytes in, bytes out, wait without the GIL" keeps
//! the public surface in one language and the Rust side free of Python object juggling.

mod client;
mod errors;
mod runtime;
mod server;
mod stream;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // The core's error kinds, so the Python side can check that it has a class for each.
    m.add("ERROR_KINDS", cliproxy_core::ErrorKind::ALL.map(|k| k.as_str()).to_vec())?;
    // Benchmarks record whether they measured an optimized build.
    m.add("DEBUG_BUILD", cfg!(debug_assertions))?;
    m.add_class::<client::NativeConfig>()?;
    m.add_class::<client::NativeClient>()?;
    m.add_class::<client::NativeLoginFlow>()?;
    m.add_class::<stream::NativeStream>()?;
    m.add_class::<server::NativeServer>()?;
    m.add_class::<runtime::AbortOnCancel>()?;
    m.add_class::<stream::CloseOnCancel>()?;
    m.add_function(wrap_pyfunction!(server::serve, m)?)?;
    Ok(())
}
