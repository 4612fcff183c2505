//! Tests of the mock against itself over loopback, as a proxy would talk to it.

mod anthropic;
mod claude_oauth;
mod code_assist;
mod codex;
mod common;
mod control;
mod copilot;
mod delivery;
mod gemini;
mod kiro;
mod openai;
