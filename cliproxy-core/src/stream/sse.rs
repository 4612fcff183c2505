//! Server-sent events (`text/event-stream`), decoded as the WHATWG HTML standard describes
//! (<https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation>), with two
//! deliberate differences: invalid UTF-8 is an error instead of U+FFFD (a proxy must not corrupt text it
//! relays), and an event still pending at the end of the stream is delivered (LLM servers sometimes omit
//! the final blank line).

use super::{Fuse, StreamError};

/// The default bound on one event: the original proxy's 20 MB scanner buffer, rounded to a power of two.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 16 * 1024 * 1024;

/// The UTF-8 byte order mark a stream may start with; it is not part of the first line.
const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// A line buffer that grew beyond this for one long line is released afterwards, so a single large event
/// does not pin its memory for the rest of a long-lived stream.
const KEEP_LINE_CAPACITY: usize = 64 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field; `None` for the default type (`message`), also when the field was empty.
    pub event: Option<String>,
    /// The `data:` lines of the event joined with `\n`.
    pub data: String,
    /// The `id:` field of this event, if it carried one. Unlike a browser's `lastEventId` it does not
    /// persist to later events: a relay should repeat only ids the upstream actually sent.
    pub id: Option<String>,
    /// The `retry:` field of this event, if it carried one that is all ASCII digits.
    pub retry: Option<u64>,
}

/// Where the decoder stands on the optional byte order mark at the start of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bom {
    /// Still at the start: this many bytes of the mark have been seen (and held back).
    Matching(u8),
    /// Past the start of the stream.
    Done,
}

/// Decodes a byte stream into [`SseEvent`]s, whatever pieces it arrives in.
///
/// Lines are parsed straight from the caller's chunk when they lie inside it; only a line cut by a chunk
/// boundary is copied, into a buffer that is reused. Each byte is scanned once.
///
/// After an error the decoder is poisoned: every later `push` or `finish` returns the same error, because
/// the bytes after a fault cannot be trusted to line up with event boundaries.
#[derive(Debug)]
pub struct SseDecoder {
    /// The start of the current line when it began in an earlier chunk; empty otherwise.
    line: Vec<u8>,
    fields: EventFields,
    /// Offset in the whole stream of the next byte to be pushed.
    pos: u64,
    /// Offset in the whole stream of the first byte of the current line.
    line_start: u64,
    /// The last chunk ended with a `\r` line ending; a `\n` starting the next chunk belongs to it.
    pending_cr: bool,
    bom: Bom,
    fuse: Fuse,
}

/// The fields of the event being assembled, and the size bound that applies to them.
#[derive(Debug)]
struct EventFields {
    /// Every `data:` value so far, each followed by `\n` (the last one is removed on dispatch).
    data: String,
    event: Option<String>,
    id: Option<String>,
    retry: Option<u64>,
    limit: usize,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// A decoder that buffers at most [`DEFAULT_MAX_EVENT_SIZE`] bytes of one event.
    pub fn new() -> Self {
        Self::with_max_event_size(DEFAULT_MAX_EVENT_SIZE)
    }

    /// A decoder that fails with [`StreamError::TooLarge`] rather than buffer more than `limit` bytes of one
    /// event: the line being read plus the fields collected so far.
    pub fn with_max_event_size(limit: usize) -> Self {
        SseDecoder {
            line: Vec::new(),
            fields: EventFields { data: String::new(), event: None, id: None, retry: None, limit },
            pos: 0,
            line_start: 0,
            pending_cr: false,
            bom: Bom::Matching(0),
            fuse: Fuse::default(),
        }
    }

    /// Feeds bytes; appends every event completed by them to `out`.
    ///
    /// On error, the events completed before the fault are still appended to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), StreamError> {
        self.fuse.check()?;
        let result = self.push_inner(chunk, out);
        self.fuse.record(result)
    }

    /// End of input: dispatches a final event that lacked its blank line.
    ///
    /// The WHATWG standard drops an unterminated event at the end of the stream, but upstream LLM servers
    /// sometimes omit the final blank line, so an event with data is delivered. A stream that ends inside a
    /// multi-byte character is [`StreamError::Truncated`]. After a successful `finish` the decoder is as new
    /// and may decode another stream.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), StreamError> {
        self.fuse.check()?;
        let result = self.finish_inner(out);
        if result.is_ok() {
            *self = Self::with_max_event_size(self.fields.limit);
        }
        self.fuse.record(result)
    }

    fn push_inner(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), StreamError> {
        let chunk_start = self.pos;
        self.pos += chunk.len() as u64;
        let mut i = 0;

        if let Bom::Matching(seen) = self.bom {
            let mut seen = usize::from(seen);
            while seen < BOM.len() && i < chunk.len() && chunk[i] == BOM[seen] {
                seen += 1;
                i += 1;
            }
            if seen == BOM.len() {
                self.bom = Bom::Done;
                self.line_start = chunk_start + i as u64;
            } else if i == chunk.len() {
                // Still undecided: the chunk ended inside what may be a byte order mark.
                self.bom = Bom::Matching(seen as u8);
                return Ok(());
            } else {
                // Not a byte order mark after all: what was held back starts the first line.
                self.line.extend_from_slice(&BOM[..seen]);
                self.bom = Bom::Done;
            }
        }

        if self.pending_cr && i < chunk.len() {
            if chunk[i] == b'\n' {
                i += 1;
                self.line_start = chunk_start + i as u64;
            }
            self.pending_cr = false;
        }

        while i < chunk.len() {
            let Some(len) = memchr::memchr2(b'\n', b'\r', &chunk[i..]) else {
                let rest = &chunk[i..];
                self.fields.check_size(self.line.len() + rest.len())?;
                self.line.extend_from_slice(rest);
                break;
            };
            let end = i + len;
            if self.line.is_empty() {
                self.fields.line(&chunk[i..end], self.line_start, false, out)?;
            } else {
                self.fields.check_size(self.line.len() + len)?;
                self.line.extend_from_slice(&chunk[i..end]);
                self.fields.line(&self.line, self.line_start, false, out)?;
                self.clear_line();
            }
            i = end + 1;
            if chunk[end] == b'\r' {
                match chunk.get(i) {
                    Some(b'\n') => i += 1,
                    Some(_) => {}
                    None => self.pending_cr = true,
                }
            }
            self.line_start = chunk_start + i as u64;
        }
        Ok(())
    }

    fn finish_inner(&mut self, out: &mut Vec<SseEvent>) -> Result<(), StreamError> {
        if let Bom::Matching(seen) = self.bom {
            // The stream was shorter than a byte order mark; what it held is its only line.
            self.line.extend_from_slice(&BOM[..usize::from(seen)]);
        }
        if !self.line.is_empty() {
            self.fields.line(&self.line, self.line_start, true, out)?;
            self.clear_line();
        }
        self.fields.dispatch(out);
        Ok(())
    }

    fn clear_line(&mut self) {
        self.line.clear();
        if self.line.capacity() > KEEP_LINE_CAPACITY {
            self.line.shrink_to(KEEP_LINE_CAPACITY);
        }
    }
}

impl EventFields {
    /// Bytes held for the current event.
    fn size(&self) -> usize {
        self.data.len() + self.event.as_ref().map_or(0, String::len) + self.id.as_ref().map_or(0, String::len)
    }

    /// Fails if a line of `line_len` bytes would take the event over the limit. The check is the same for
    /// a whole line and for the part of it received so far, so the outcome does not depend on the split.
    fn check_size(&self, line_len: usize) -> Result<(), StreamError> {
        if line_len.saturating_add(self.size()) > self.limit {
            return Err(StreamError::TooLarge { limit: self.limit });
        }
        Ok(())
    }

    /// Interprets one complete line (without its line ending) that starts at stream offset `offset`.
    /// `at_eof` says the line was cut by the end of the stream, where an incomplete character means the
    /// stream was truncated rather than corrupted.
    fn line(&mut self, line: &[u8], offset: u64, at_eof: bool, out: &mut Vec<SseEvent>) -> Result<(), StreamError> {
        self.check_size(line.len())?;
        let line = std::str::from_utf8(line).map_err(|e| {
            if at_eof && e.error_len().is_none() {
                StreamError::Truncated
            } else {
                StreamError::InvalidUtf8 { offset: offset + e.valid_up_to() as u64 }
            }
        })?;
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let (field, value) = match memchr::memchr(b':', line.as_bytes()) {
            Some(0) => return Ok(()), // a comment
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (line, ""),
        };
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "event" => self.event = Some(value.to_owned()),
            // The standard ignores an id containing NUL, so that it can never truncate a C string.
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // All digits but too large for u64 is as meaningless as a non-number: ignored too.
                if let Ok(ms) = value.parse() {
                    self.retry = Some(ms);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Ends the current event: delivers it if it had data (per the standard an event without any `data:`
    /// line is not dispatched), and starts afresh either way.
    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take().filter(|e| !e.is_empty());
        let id = self.id.take();
        let retry = self.retry.take();
        if self.data.is_empty() {
            return;
        }
        self.data.pop();
        out.push(SseEvent { event, data: std::mem::take(&mut self.data), id, retry });
    }
}

/// Encodes one event as SSE bytes: an `event:` line when a type is given, one `data:` line per line of
/// `data` (a line break in `data` is `\n`, `\r\n` or `\r`, as a decoder reads them), and the blank line.
///
/// A line break inside `event` cannot be expressed in SSE and would split the field, so it is written as a
/// space.
pub fn encode_event(event: Option<&str>, data: &str, out: &mut Vec<u8>) {
    if let Some(event) = event {
        out.extend_from_slice(b"event: ");
        out.extend(event.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
        out.push(b'\n');
    }
    let mut rest = data.as_bytes();
    loop {
        out.extend_from_slice(b"data: ");
        match memchr::memchr2(b'\n', b'\r', rest) {
            Some(end) => {
                out.extend_from_slice(&rest[..end]);
                out.push(b'\n');
                let next = if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') { end + 2 } else { end + 1 };
                rest = &rest[next..];
            }
            None => {
                out.extend_from_slice(rest);
                out.push(b'\n');
                break;
            }
        }
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> Result<Vec<SseEvent>, StreamError> {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            d.push(c, &mut out)?;
        }
        d.finish(&mut out)?;
        Ok(out)
    }

    fn data(d: &str) -> SseEvent {
        SseEvent { data: d.to_owned(), ..SseEvent::default() }
    }

    #[test]
    fn openai_style_frames_and_done() {
        let events = decode(&[b"data: {\"a\":1}\n\ndata: [DONE]\n\n"]).unwrap();
        assert_eq!(events, vec![data("{\"a\":1}"), data("[DONE]")]);
    }

    #[test]
    fn anthropic_style_named_events() {
        let events = decode(&[b"event: ping\ndata: {\"type\":\"ping\"}\n\nevent: message_stop\ndata: {}\n\n"]).unwrap();
        assert_eq!(events[0].event.as_deref(), Some("ping"));
        assert_eq!(events[1].event.as_deref(), Some("message_stop"));
        assert_eq!(events[1].data, "{}");
    }

    #[test]
    fn all_line_endings() {
        let want = vec![data("a\nb"), data("c")];
        for stream in [
            &b"data: a\ndata: b\n\ndata: c\n\n"[..],
            b"data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n",
            b"data: a\rdata: b\r\rdata: c\r\r",
            b"data: a\r\ndata: b\r\rdata: c\n\r\n",
        ] {
            assert_eq!(decode(&[stream]).unwrap(), want, "{:?}", String::from_utf8_lossy(stream));
        }
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_ending() {
        // Were the `\n` taken as a second line ending, the blank line would dispatch "a" alone.
        let events = decode(&[b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]).unwrap();
        assert_eq!(events, vec![data("a\nb")]);
    }

    #[test]
    fn lone_cr_at_chunk_end_followed_by_other_text() {
        let events = decode(&[b"data: a\r", b"data: b\r", b"\r"]).unwrap();
        assert_eq!(events, vec![data("a\nb")]);
    }

    #[test]
    fn leading_bom_is_stripped_even_when_split() {
        let stream = b"\xEF\xBB\xBFdata: x\n\n";
        for split in 0..=stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(decode(&[a, b]).unwrap(), vec![data("x")], "split {split}");
        }
        // Only one mark is stripped; a second is part of the field name, which is then unknown.
        assert_eq!(decode(&[b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n"]).unwrap(), vec![]);
    }

    #[test]
    fn bom_prefix_that_is_not_a_bom_is_data() {
        // EF BB followed by something other than BF is an invalid sequence, reported at its start.
        assert_eq!(decode(&[b"\xEF", b"\xBBdata: x\n\n"]), Err(StreamError::InvalidUtf8 { offset: 0 }));
        assert_eq!(decode(&[b"\xEF\xBB"]), Err(StreamError::Truncated));
        assert_eq!(decode(&[]).unwrap(), vec![]);
    }

    #[test]
    fn field_parsing() {
        let events =
            decode(&[b": comment\nevent:x\ndata:no space\ndata:  two spaces\nunknown: y\nid: 7\nretry: 1500\n\n"])
                .unwrap();
        assert_eq!(
            events,
            vec![SseEvent {
                event: Some("x".into()),
                data: "no space\n two spaces".into(),
                id: Some("7".into()),
                retry: Some(1500),
            }]
        );
    }

    #[test]
    fn field_without_colon_has_empty_value() {
        assert_eq!(decode(&[b"data\ndata\n\n"]).unwrap(), vec![data("\n")]);
        assert_eq!(decode(&[b"data\n\n"]).unwrap(), vec![data("")]);
    }

    #[test]
    fn retry_only_when_all_digits() {
        for bad in ["retry: 15x", "retry: -1", "retry:", "retry: 99999999999999999999999"] {
            let stream = format!("{bad}\ndata: d\n\n");
            assert_eq!(decode(&[stream.as_bytes()]).unwrap()[0].retry, None, "{bad}");
        }
    }

    #[test]
    fn id_with_nul_is_ignored() {
        assert_eq!(decode(&[b"id: a\0b\ndata: d\n\n"]).unwrap()[0].id, None);
    }

    #[test]
    fn empty_event_type_is_the_default() {
        assert_eq!(decode(&[b"event:\ndata: d\n\n"]).unwrap()[0].event, None);
    }

    #[test]
    fn event_without_data_is_not_dispatched_and_does_not_leak() {
        let events = decode(&[b"event: a\nid: 1\nretry: 5\n\ndata: d\n\n"]).unwrap();
        assert_eq!(events, vec![data("d")]);
    }

    #[test]
    fn unterminated_final_event_is_delivered() {
        assert_eq!(decode(&[b"data: last"]).unwrap(), vec![data("last")]);
        assert_eq!(decode(&[b"data: last\n"]).unwrap(), vec![data("last")]);
        assert_eq!(decode(&[b"event: x\n"]).unwrap(), vec![]);
    }

    #[test]
    fn split_multibyte_characters_are_reassembled() {
        let stream = "data: 世界👋🏽\n\n".as_bytes();
        for split in 0..=stream.len() {
            let (a, b) = stream.split_at(split);
            assert_eq!(decode(&[a, b]).unwrap(), vec![data("世界👋🏽")], "split {split}");
        }
    }

    #[test]
    fn invalid_utf8_is_an_error_with_its_offset() {
        assert_eq!(decode(&[b"data: ok\n\ndata: a\xFFb\n\n"]), Err(StreamError::InvalidUtf8 { offset: 17 }));
        // A character cut by a line ending is invalid, not truncated.
        assert_eq!(decode(&[b"data: \xE4\xB8\n\n"]), Err(StreamError::InvalidUtf8 { offset: 6 }));
        // Comments are checked too: nothing is relayed unchecked.
        assert_eq!(decode(&[b":\xC0\n"]), Err(StreamError::InvalidUtf8 { offset: 1 }));
    }

    #[test]
    fn events_before_a_fault_are_delivered_and_the_decoder_stays_failed() {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        let err = d.push(b"data: a\n\ndata: \xFF\n", &mut out).unwrap_err();
        assert_eq!(out, vec![data("a")]);
        assert_eq!(d.push(b"data: b\n\n", &mut out), Err(err.clone()));
        assert_eq!(d.finish(&mut out), Err(err));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn truncated_character_at_eof() {
        assert_eq!(decode(&[b"data: \xF0\x9F"]), Err(StreamError::Truncated));
    }

    #[test]
    fn size_limit() {
        let mut d = SseDecoder::with_max_event_size(16);
        let mut out = Vec::new();
        d.push(b"data: 0123456789\n\n", &mut out).unwrap();
        assert_eq!(d.push(b"data: 01234", &mut out), Ok(()));
        assert_eq!(d.push(b"56789ab\n", &mut out), Err(StreamError::TooLarge { limit: 16 }));
        // Many short lines add up too.
        let mut d = SseDecoder::with_max_event_size(16);
        assert_eq!(d.push(b"data: 0123\ndata: 4567\ndata: 89\n", &mut out), Err(StreamError::TooLarge { limit: 16 }));
        // The bound holds for a line that never ends.
        let mut d = SseDecoder::with_max_event_size(16);
        d.push(&[b'x'; 16], &mut out).unwrap();
        assert_eq!(d.push(b"x", &mut out), Err(StreamError::TooLarge { limit: 16 }));
    }

    #[test]
    fn decoder_is_reusable_after_finish() {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        d.push(b"data: a", &mut out).unwrap();
        d.finish(&mut out).unwrap();
        d.push(b"\xEF\xBB\xBFdata: b\n\n", &mut out).unwrap();
        d.finish(&mut out).unwrap();
        assert_eq!(out, vec![data("a"), data("b")]);
    }

    #[test]
    fn encode_round_trips() {
        let mut buf = Vec::new();
        encode_event(Some("message_start"), "{\"a\":\n1}", &mut buf);
        encode_event(None, "", &mut buf);
        encode_event(None, " lead\r\nx\ry\n", &mut buf);
        assert_eq!(
            std::str::from_utf8(&buf).unwrap(),
            "event: message_start\ndata: {\"a\":\ndata: 1}\n\ndata: \n\ndata:  lead\ndata: x\ndata: y\ndata: \n\n"
        );
        let events = decode(&[&buf]).unwrap();
        assert_eq!(
            events,
            vec![
                SseEvent { event: Some("message_start".into()), ..data("{\"a\":\n1}") },
                data(""),
                data(" lead\nx\ny\n"),
            ]
        );
    }

    #[test]
    fn encode_keeps_event_name_on_one_line() {
        let mut buf = Vec::new();
        encode_event(Some("a\nb"), "d", &mut buf);
        assert_eq!(decode(&[&buf]).unwrap()[0].event.as_deref(), Some("a b"));
    }

    #[test]
    fn error_converts_to_upstream() {
        let e: crate::Error = StreamError::Truncated.into();
        assert_eq!(e.kind(), crate::ErrorKind::Upstream);
        assert!(e.message().contains("ended"), "{}", e.message());
    }
}
