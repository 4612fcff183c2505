//! cliproxy-core: the embeddable heart of cliproxy.
//!
//! A [`Client`] takes requests in a client dialect (OpenAI Chat Completions, Anthropic Messages or OpenAI
//! Responses), picks a credential through the routing layer, maps the request to the upstream provider's wire
//! format (or passes it through untouched when both sides speak the same dialect), and maps the answer back —
//! streaming or not.
//!
//! The crate is runtime-agnostic: all I/O goes through the [`transport::HttpTransport`] and
//! [`transport::Runtime`] seams. The default `reqwest` feature supplies tokio-based implementations.
//!
//! Modules, each named after its concern:
//! - [`types`]: the intermediate representation; [`dialects`]: the client-facing APIs and their mappings;
//! - [`providers`]: one module per upstream's wire format (pure mapping, and failures described as facts);
//! - [`auth`]: account lifecycles (logins, refresh, auth-dir files, imports, quota), one module per upstream;
//! - [`routing`]: credential selection, the cooldown table, rate limits; [`credential`]: which models a credential
//!   serves;
//! - [`stream`]: sans-IO SSE and AWS event-stream decoders; [`passthrough`]: same-dialect byte-level edits;
//! - [`transport`]: the I/O seams; [`client`]: the engine tying them together; [`login`]: device logins.

pub mod auth;
pub mod client;
pub mod config;
pub mod credential;
pub mod dialects;
pub mod error;
pub mod login;
pub mod logtext;
pub mod passthrough;
pub mod providers;
pub mod routing;
pub mod stream;
pub mod timefmt;
pub mod tokens;
pub mod transport;
pub mod types;

#[cfg(test)]
mod test_support;

pub use client::{Client, ClientBuilder, Event, EventStream, ProxyRequest, Reply, UrlTarget};
pub use error::{Error, ErrorKind};
