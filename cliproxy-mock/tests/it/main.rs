//! Tests of the mock against itself over loopback, as a proxy would talk to it.

mod anthropic;
mod common;
mod control;
mod delivery;
mod kiro;
mod openai;
