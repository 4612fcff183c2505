//! Credentials that live in files and OAuth flows: the auth-dir store and the shared refresh machinery.

pub mod refresh;
pub mod store;
