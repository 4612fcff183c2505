//! Checks shared by the fuzz targets (`fuzz/`), the corpus replay test and the property tests, so that all
//! of them hold the decoders to the same contract. Not part of the supported API.
//!
//! The contract: the outcome of decoding a stream (the events or frames delivered, then the first error if
//! any) does not depend on how the stream is cut into chunks, the decoders never panic, and a decoded
//! event never contains U+FFFD unless the input itself encoded it.

use std::fmt::Debug;

use super::StreamError;
use super::eventstream::{self, EventStreamDecoder, Frame};
use super::sse::{self, SseDecoder, SseEvent};

/// What decoding a whole stream produced: everything delivered, then the first error (if any).
pub type Outcome<T> = (Vec<T>, Option<StreamError>);

/// The common shape of the two decoders, so that each check is written once for both.
trait Decoder {
    type Item: PartialEq + Debug;
    fn with_limit(limit: usize) -> Self;
    fn push(&mut self, chunk: &[u8], out: &mut Vec<Self::Item>) -> Result<(), StreamError>;
    fn finish(&mut self, out: &mut Vec<Self::Item>) -> Result<(), StreamError>;
}

impl Decoder for SseDecoder {
    type Item = SseEvent;
    fn with_limit(limit: usize) -> Self {
        SseDecoder::with_max_event_size(limit)
    }
    fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), StreamError> {
        SseDecoder::push(self, chunk, out)
    }
    fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), StreamError> {
        SseDecoder::finish(self, out)
    }
}

impl Decoder for EventStreamDecoder {
    type Item = Frame;
    fn with_limit(limit: usize) -> Self {
        EventStreamDecoder::with_max_frame_size(limit)
    }
    fn push(&mut self, chunk: &[u8], out: &mut Vec<Frame>) -> Result<(), StreamError> {
        EventStreamDecoder::push(self, chunk, out)
    }
    fn finish(&mut self, _out: &mut Vec<Frame>) -> Result<(), StreamError> {
        EventStreamDecoder::finish(self)
    }
}

fn decode<'a, D: Decoder>(chunks: impl IntoIterator<Item = &'a [u8]>, limit: usize) -> Outcome<D::Item> {
    let mut decoder = D::with_limit(limit);
    let mut out = Vec::new();
    for chunk in chunks {
        if let Err(e) = decoder.push(chunk, &mut out) {
            return (out, Some(e));
        }
    }
    let err = decoder.finish(&mut out).err();
    (out, err)
}

/// Decodes `chunks` as one SSE stream with an event-size bound of `limit`, then finishes it.
pub fn decode_sse<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, limit: usize) -> Outcome<SseEvent> {
    decode::<SseDecoder>(chunks, limit)
}

/// Decodes `chunks` as one event stream with a frame-size bound of `limit`, then finishes it.
pub fn decode_eventstream<'a>(chunks: impl IntoIterator<Item = &'a [u8]>, limit: usize) -> Outcome<Frame> {
    decode::<EventStreamDecoder>(chunks, limit)
}

/// A bound small enough that fuzz inputs reach it, so the size checks are held to the contract too.
const SMALL_LIMIT: usize = 64;

/// Decodes the stream in `data[1..]` whole, in two parts cut where `data[0]` says (scaled over the
/// stream, so every position is reachable for short and long inputs alike), and one byte at a time, under
/// the default bound and a small one; panics unless all agree. Returns the whole-stream outcomes.
fn check_split<D: Decoder>(data: &[u8], default_limit: usize) -> Vec<Outcome<D::Item>> {
    let Some((&control, stream)) = data.split_first() else {
        return Vec::new();
    };
    let split = usize::from(control) * stream.len() / 255;
    let (a, b) = stream.split_at(split);
    let mut outcomes = Vec::new();
    for limit in [default_limit, SMALL_LIMIT] {
        let whole = decode::<D>([stream], limit);
        assert_eq!(decode::<D>([a, b], limit), whole, "split at {split}, limit {limit}");
        assert_eq!(decode::<D>(stream.chunks(1), limit), whole, "byte by byte, limit {limit}");
        outcomes.push(whole);
    }
    outcomes
}

/// The split check for SSE; also panics if an event gained a U+FFFD that the input did not encode.
pub fn check_sse_split_invariance(data: &[u8]) {
    let outcomes = check_split::<SseDecoder>(data, sse::DEFAULT_MAX_EVENT_SIZE);
    let stream = data.get(1..).unwrap_or_default();
    if memchr::memmem::find(stream, "\u{FFFD}".as_bytes()).is_some() {
        return;
    }
    for event in outcomes.iter().flat_map(|(events, _)| events) {
        let fields = [Some(&event.data), event.event.as_ref(), event.id.as_ref()];
        assert!(!fields.into_iter().flatten().any(|f| f.contains('\u{FFFD}')), "U+FFFD in {event:?}");
    }
}

/// The split check for the AWS event stream.
pub fn check_eventstream_split_invariance(data: &[u8]) {
    check_split::<EventStreamDecoder>(data, eventstream::DEFAULT_MAX_FRAME_SIZE);
}
