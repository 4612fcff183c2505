//! Sans-IO decoders for the two streaming wire formats upstreams answer with.
//!
//! [`sse`] decodes `text/event-stream` (OpenAI, Anthropic, Copilot, Gemini, Codex); [`eventstream`] decodes
//! the AWS binary event stream (`application/vnd.amazon.eventstream`, Kiro). Both take bytes in whatever
//! pieces the transport delivers them and produce the same events whatever the split: a character, a line
//! ending or a frame cut across two reads is reassembled, never decoded per read. That is the failure the
//! original proxy had (CJK or emoji split across reads turned into U+FFFD), so invalid UTF-8 is an error
//! here and is never replaced.
//!
//! The decoders do no I/O and never allocate per byte; each input byte is scanned a bounded number of times,
//! so a stream of n bytes costs O(n) however it is split.

pub mod eventstream;
#[doc(hidden)]
pub mod invariants;
pub mod sse;

/// A fault in an upstream stream. One enum serves both decoders so callers map stream faults in one place.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum StreamError {
    /// The bytes are not UTF-8. `offset` is the position of the first offending byte in the whole stream
    /// (counting from the first byte ever fed, a byte order mark included).
    #[error("invalid UTF-8 at stream offset {offset}")]
    InvalidUtf8 { offset: u64 },
    /// An event or frame is larger than the decoder is allowed to buffer.
    #[error("event or frame larger than the {limit}-byte limit")]
    TooLarge { limit: usize },
    /// The stream ended inside a frame, or inside a multi-byte UTF-8 character.
    #[error("stream ended in the middle of a frame or character")]
    Truncated,
    /// The CRC-32 of a frame's length fields does not match: `expected` is the value the frame carries,
    /// `actual` the one computed over the bytes received.
    #[error("frame prelude CRC mismatch: frame says {expected:#010x}, bytes give {actual:#010x}")]
    BadPreludeCrc { expected: u32, actual: u32 },
    /// The CRC-32 of a whole frame does not match: `expected` is the value the frame carries, `actual` the
    /// one computed over the bytes received.
    #[error("frame CRC mismatch: frame says {expected:#010x}, bytes give {actual:#010x}")]
    BadMessageCrc { expected: u32, actual: u32 },
    /// A structurally invalid frame: a length field out of bounds, a malformed or unknown header.
    #[error("malformed frame: {0}")]
    BadFrame(String),
}

impl From<StreamError> for crate::Error {
    fn from(e: StreamError) -> Self {
        crate::Error::upstream(None, format!("the upstream sent a malformed stream: {e}"))
    }
}

/// Remembers the first error of a decoder so that every later call reports it again.
///
/// Once a decoder has failed its buffered state no longer lines up with the stream (the bytes after the
/// fault may be half a line or half a frame), so carrying on could only produce garbage.
#[derive(Debug, Default, Clone)]
struct Fuse(Option<StreamError>);

impl Fuse {
    fn check(&self) -> Result<(), StreamError> {
        match &self.0 {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn record<T>(&mut self, result: Result<T, StreamError>) -> Result<T, StreamError> {
        if let Err(e) = &result {
            self.0 = Some(e.clone());
        }
        result
    }
}
