//! Node.js bindings of cliproxy: the core [`cliproxy_core::Client`] and the reference server, in-process.
//!
//! This native layer is deliberately small and is not the public API: the hand-written JavaScript layer
//! (`index.js`, typed by `index.d.ts`) wraps it with error classes, abort signals and async iterators. Keeping
//! the split lets the JavaScript side stay idiomatic while everything here stays plain data:
//! - request and response bodies cross as JSON text (V8's `JSON.parse` is faster than building objects
//!   through N-API calls one property at a time);
//! - every failure of the core crosses as one structured error ([`error`]) that JavaScript maps to its
//!   `CliproxyError` class in a single place;
//! - everything that waits (upstream calls, stream reads, logins, the server) runs as a future on napi's
//!   tokio runtime and settles a promise, so the event loop never blocks.

// Public so that the exported functions count as used in `cargo test` builds, where napi registers nothing.
pub mod cancel;
pub mod client;
pub mod error;
pub mod login;
pub mod server;
pub mod stream;
