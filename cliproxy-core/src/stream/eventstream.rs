//! The AWS binary event stream (`application/vnd.amazon.eventstream`), which Kiro / CodeWhisperer answers
//! with.
//!
//! A frame is, with all integers big-endian and CRC-32/IEEE (as in zlib):
//!
//! ```text
//! [0,4) total_len | [4,8) headers_len | [8,12) crc32(bytes[0,8)) | headers | payload | crc32(bytes[0,total-4))
//! header = name_len u8 | name (UTF-8) | type u8 | value
//! ```
//!
//! Both CRCs are checked: the original proxy skipped the prelude CRC, so a corrupted length could make it
//! wait for (and buffer) megabytes that were never coming.

use bytes::{Bytes, BytesMut};

use super::{Fuse, StreamError};

/// The default bound on one frame. Kiro's frames are small; the original proxy allowed 10 MB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 * 1024 * 1024;
/// Prelude (12 bytes) plus message CRC (4 bytes): a frame with no headers and no payload.
pub const MIN_FRAME_SIZE: usize = 16;
const PRELUDE_LEN: usize = 12;
const CRC_LEN: usize = 4;

/// A typed header value. The type codes of the wire format are noted on each variant.
#[derive(Debug, Clone, PartialEq)]
pub enum HeaderValue {
    /// Types 0 (true) and 1 (false): no value bytes.
    Bool(bool),
    /// Type 2.
    Byte(i8),
    /// Type 3.
    Short(i16),
    /// Type 4.
    Int(i32),
    /// Type 5.
    Long(i64),
    /// Type 6: u16 length, then the bytes.
    Bytes(Vec<u8>),
    /// Type 7: u16 length, then UTF-8.
    String(String),
    /// Type 8: milliseconds since the Unix epoch, i64.
    Timestamp(i64),
    /// Type 9: 16 bytes.
    Uuid([u8; 16]),
}

impl HeaderValue {
    /// Appends the type code and the value bytes.
    fn encode(&self, out: &mut Vec<u8>) {
        let mut fixed = |code: u8, bytes: &[u8]| {
            out.push(code);
            out.extend_from_slice(bytes);
        };
        match self {
            HeaderValue::Bool(true) => fixed(0, &[]),
            HeaderValue::Bool(false) => fixed(1, &[]),
            HeaderValue::Byte(v) => fixed(2, &v.to_be_bytes()),
            HeaderValue::Short(v) => fixed(3, &v.to_be_bytes()),
            HeaderValue::Int(v) => fixed(4, &v.to_be_bytes()),
            HeaderValue::Long(v) => fixed(5, &v.to_be_bytes()),
            HeaderValue::Timestamp(v) => fixed(8, &v.to_be_bytes()),
            HeaderValue::Uuid(v) => fixed(9, v),
            HeaderValue::Bytes(v) => {
                out.push(6);
                put_u16_prefixed(v, out);
            }
            HeaderValue::String(v) => {
                out.push(7);
                put_u16_prefixed(v.as_bytes(), out);
            }
        }
    }
}

fn put_u16_prefixed(value: &[u8], out: &mut Vec<u8>) {
    let len = u16::try_from(value.len()).expect("event-stream header values are at most 65535 bytes");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(value);
}

/// Named, typed headers in wire order.
type Headers = Vec<(String, HeaderValue)>;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// Headers in wire order; a name may repeat.
    pub headers: Vec<(String, HeaderValue)>,
    pub payload: Bytes,
}

impl Frame {
    /// The first header called `name`, of any type.
    pub fn header(&self, name: &str) -> Option<&HeaderValue> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The value of the first string-typed header called `name`.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.iter().find_map(|(n, v)| match v {
            HeaderValue::String(s) if n == name => Some(s.as_str()),
            _ => None,
        })
    }

    /// `:message-type`: `event`, `exception` or `error`.
    pub fn message_type(&self) -> Option<&str> {
        self.header_str(":message-type")
    }

    /// `:event-type`, e.g. `assistantResponseEvent`.
    pub fn event_type(&self) -> Option<&str> {
        self.header_str(":event-type")
    }
}

/// Decodes a byte stream into [`Frame`]s, whatever pieces it arrives in.
///
/// A frame that lies inside one chunk is decoded in place (its payload is copied once, into the
/// [`Frame`]); a frame cut by a chunk boundary is gathered in a buffer and handed out without a further
/// copy. Both length fields and the prelude CRC are checked before anything past the prelude is buffered,
/// so a corrupted length is reported at once instead of leaving the decoder waiting for bytes that never
/// come; and the buffer grows only with the bytes actually received, never reserved from a length field.
///
/// After an error the decoder is poisoned: every later `push` or `finish` returns the same error, because
/// once a frame is bad the position of the next frame is unknown.
#[derive(Debug)]
pub struct EventStreamDecoder {
    /// The beginning of a frame cut by a chunk boundary; empty between frames.
    buf: BytesMut,
    /// The total length of the frame in `buf`, once its prelude has been checked; 0 before that.
    frame_len: usize,
    /// Offset in the whole stream of the first byte of the current frame.
    frame_start: u64,
    max_frame_size: usize,
    fuse: Fuse,
}

impl Default for EventStreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl EventStreamDecoder {
    /// A decoder accepting frames of [`MIN_FRAME_SIZE`] ..= [`DEFAULT_MAX_FRAME_SIZE`] bytes.
    pub fn new() -> Self {
        Self::with_max_frame_size(DEFAULT_MAX_FRAME_SIZE)
    }

    /// A decoder that rejects frames longer than `limit` bytes with [`StreamError::TooLarge`].
    pub fn with_max_frame_size(limit: usize) -> Self {
        EventStreamDecoder {
            buf: BytesMut::new(),
            frame_len: 0,
            frame_start: 0,
            max_frame_size: limit,
            fuse: Fuse::default(),
        }
    }

    /// Feeds bytes; appends every frame completed by them to `out`.
    ///
    /// On error, the frames completed before the faulty one are still appended to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Frame>) -> Result<(), StreamError> {
        self.fuse.check()?;
        let result = self.push_inner(chunk, out);
        self.fuse.record(result)
    }

    /// End of input: `Err(Truncated)` if bytes of an incomplete frame remain. After `Ok` the decoder is as
    /// new and may decode another stream.
    pub fn finish(&mut self) -> Result<(), StreamError> {
        self.fuse.check()?;
        let result = if self.buf.is_empty() { Ok(()) } else { Err(StreamError::Truncated) };
        if result.is_ok() {
            self.frame_start = 0;
        }
        self.fuse.record(result)
    }

    fn push_inner(&mut self, mut chunk: &[u8], out: &mut Vec<Frame>) -> Result<(), StreamError> {
        if !self.buf.is_empty() {
            if self.frame_len == 0 {
                let take = (PRELUDE_LEN - self.buf.len()).min(chunk.len());
                self.buf.extend_from_slice(&chunk[..take]);
                chunk = &chunk[take..];
                if self.buf.len() < PRELUDE_LEN {
                    return Ok(());
                }
                self.frame_len = check_prelude(&self.buf, self.max_frame_size)?;
            }
            let take = (self.frame_len - self.buf.len()).min(chunk.len());
            self.buf.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.buf.len() < self.frame_len {
                return Ok(());
            }
            let (headers, payload) = parse_frame(&self.buf, self.frame_start)?;
            let frame = self.buf.split().freeze();
            out.push(Frame { headers, payload: frame.slice(payload) });
            self.frame_start += self.frame_len as u64;
            self.frame_len = 0;
        }

        while chunk.len() >= PRELUDE_LEN {
            let len = check_prelude(chunk, self.max_frame_size)?;
            if chunk.len() < len {
                self.frame_len = len;
                break;
            }
            let (headers, payload) = parse_frame(&chunk[..len], self.frame_start)?;
            out.push(Frame { headers, payload: Bytes::copy_from_slice(&chunk[payload]) });
            self.frame_start += len as u64;
            chunk = &chunk[len..];
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Checks the 12-byte prelude at the start of `bytes` and returns the total frame length.
fn check_prelude(bytes: &[u8], max_frame_size: usize) -> Result<usize, StreamError> {
    let total = be_u32(&bytes[0..4]) as usize;
    let headers_len = be_u32(&bytes[4..8]) as usize;
    let expected = be_u32(&bytes[8..12]);
    let actual = crc32fast::hash(&bytes[0..8]);
    // The CRC first: when a length is garbage, the corruption is the better diagnosis.
    if expected != actual {
        return Err(StreamError::BadPreludeCrc { expected, actual });
    }
    if total < MIN_FRAME_SIZE {
        return Err(StreamError::BadFrame(format!("frame length {total} is below the {MIN_FRAME_SIZE}-byte minimum")));
    }
    if total > max_frame_size {
        return Err(StreamError::TooLarge { limit: max_frame_size });
    }
    if headers_len > total - MIN_FRAME_SIZE {
        return Err(StreamError::BadFrame(format!(
            "headers length {headers_len} does not fit in a {total}-byte frame"
        )));
    }
    Ok(total)
}

/// Checks the message CRC of a whole frame (whose prelude was checked) and parses its headers. Returns the
/// headers and where the payload lies in `frame`. `offset` is the frame's position in the stream.
fn parse_frame(frame: &[u8], offset: u64) -> Result<(Headers, std::ops::Range<usize>), StreamError> {
    let crc_at = frame.len() - CRC_LEN;
    let expected = be_u32(&frame[crc_at..]);
    let actual = crc32fast::hash(&frame[..crc_at]);
    if expected != actual {
        return Err(StreamError::BadMessageCrc { expected, actual });
    }
    let headers_end = PRELUDE_LEN + be_u32(&frame[4..8]) as usize;
    let mut cursor = Cursor { bytes: &frame[..headers_end], pos: PRELUDE_LEN, offset };
    let mut headers = Vec::new();
    while cursor.pos < headers_end {
        let name_len = usize::from(cursor.take::<1>()?[0]);
        let name = cursor.utf8(name_len)?;
        let value = match cursor.take::<1>()?[0] {
            0 => HeaderValue::Bool(true),
            1 => HeaderValue::Bool(false),
            2 => HeaderValue::Byte(i8::from_be_bytes(cursor.take()?)),
            3 => HeaderValue::Short(i16::from_be_bytes(cursor.take()?)),
            4 => HeaderValue::Int(i32::from_be_bytes(cursor.take()?)),
            5 => HeaderValue::Long(i64::from_be_bytes(cursor.take()?)),
            6 => {
                let len = usize::from(u16::from_be_bytes(cursor.take()?));
                HeaderValue::Bytes(cursor.slice(len)?.to_vec())
            }
            7 => {
                let len = usize::from(u16::from_be_bytes(cursor.take()?));
                HeaderValue::String(cursor.utf8(len)?)
            }
            8 => HeaderValue::Timestamp(i64::from_be_bytes(cursor.take()?)),
            9 => HeaderValue::Uuid(cursor.take()?),
            other => {
                return Err(StreamError::BadFrame(format!("header '{name}' has unknown value type {other}")));
            }
        };
        headers.push((name, value));
    }
    Ok((headers, headers_end..crc_at))
}

/// Reads the header block of one frame, failing instead of reading past its end.
struct Cursor<'a> {
    /// The frame up to the end of its header block.
    bytes: &'a [u8],
    pos: usize,
    /// Stream offset of `bytes[0]`, for error reports.
    offset: u64,
}

impl<'a> Cursor<'a> {
    fn slice(&mut self, len: usize) -> Result<&'a [u8], StreamError> {
        let bytes = self.bytes;
        let s = bytes
            .get(self.pos..self.pos + len)
            .ok_or_else(|| StreamError::BadFrame("a header runs past the end of the header block".into()))?;
        self.pos += len;
        Ok(s)
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], StreamError> {
        Ok(self.slice(N)?.try_into().expect("slice has the requested length"))
    }

    fn utf8(&mut self, len: usize) -> Result<String, StreamError> {
        let start = self.pos;
        let s = self.slice(len)?;
        match std::str::from_utf8(s) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(StreamError::InvalidUtf8 { offset: self.offset + (start + e.valid_up_to()) as u64 }),
        }
    }
}

/// Encodes a frame with correct prelude and message CRCs.
///
/// # Panics
/// If a header name is longer than 255 bytes, a bytes or string value longer than 65535 bytes, or the
/// frame longer than 4 GiB: the format cannot express them.
pub fn encode_frame(headers: &[(&str, HeaderValue)], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MIN_FRAME_SIZE + payload.len() + headers.len() * 32);
    out.extend_from_slice(&[0; PRELUDE_LEN]);
    for (name, value) in headers {
        let len = u8::try_from(name.len()).expect("event-stream header names are at most 255 bytes");
        out.push(len);
        out.extend_from_slice(name.as_bytes());
        value.encode(&mut out);
    }
    let headers_len = u32::try_from(out.len() - PRELUDE_LEN).expect("headers fit in a frame");
    out.extend_from_slice(payload);
    let total = u32::try_from(out.len() + CRC_LEN).expect("event-stream frames are at most 4 GiB");
    out[0..4].copy_from_slice(&total.to_be_bytes());
    out[4..8].copy_from_slice(&headers_len.to_be_bytes());
    let prelude_crc = crc32fast::hash(&out[0..8]);
    out[8..12].copy_from_slice(&prelude_crc.to_be_bytes());
    let message_crc = crc32fast::hash(&out);
    out.extend_from_slice(&message_crc.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Section D.4 vector 1: no headers, payload `{"foo": "bar"}`.
    const VECTOR_1: &str = "0000001e00000000baf2f68a7b22666f6f223a2022626172227dae7258e4";
    /// Section D.4 vector 2: Kiro's three string headers and payload `{"content":"Hi"}`.
    const VECTOR_2: &str = "0000007c0000005c3bddcf780b3a6576656e742d74797065070016617373697374616e74526573706f6e73654576656e740d3a636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e0d3a6d6573736167652d747970650700056576656e747b22636f6e74656e74223a224869227db02babdc";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn decode(bytes: &[u8]) -> Result<Vec<Frame>, StreamError> {
        let mut d = EventStreamDecoder::new();
        let mut out = Vec::new();
        d.push(bytes, &mut out)?;
        d.finish()?;
        Ok(out)
    }

    fn kiro_headers() -> Vec<(&'static str, HeaderValue)> {
        vec![
            (":event-type", HeaderValue::String("assistantResponseEvent".into())),
            (":content-type", HeaderValue::String("application/json".into())),
            (":message-type", HeaderValue::String("event".into())),
        ]
    }

    #[test]
    fn vector_1_decodes_and_encodes() {
        let bytes = hex(VECTOR_1);
        let frames = decode(&bytes).unwrap();
        assert_eq!(frames.len(), 1);
        assert!(frames[0].headers.is_empty());
        assert_eq!(&frames[0].payload[..], b"{\"foo\": \"bar\"}");
        assert_eq!(encode_frame(&[], b"{\"foo\": \"bar\"}"), bytes);
    }

    #[test]
    fn vector_2_decodes_and_encodes() {
        let bytes = hex(VECTOR_2);
        assert_eq!(bytes.len(), 124);
        let frames = decode(&bytes).unwrap();
        assert_eq!(frames.len(), 1);
        let f = &frames[0];
        assert_eq!(f.event_type(), Some("assistantResponseEvent"));
        assert_eq!(f.message_type(), Some("event"));
        assert_eq!(f.header_str(":content-type"), Some("application/json"));
        assert_eq!(&f.payload[..], b"{\"content\":\"Hi\"}");
        assert_eq!(encode_frame(&kiro_headers(), b"{\"content\":\"Hi\"}"), bytes);
    }

    #[test]
    fn vectors_split_at_every_position() {
        let mut stream = hex(VECTOR_1);
        stream.extend(hex(VECTOR_2));
        let want = decode(&stream).unwrap();
        for split in 0..=stream.len() {
            let mut d = EventStreamDecoder::new();
            let mut out = Vec::new();
            d.push(&stream[..split], &mut out).unwrap();
            d.push(&stream[split..], &mut out).unwrap();
            d.finish().unwrap();
            assert_eq!(out, want, "split {split}");
        }
    }

    #[test]
    fn every_header_type_round_trips() {
        let headers = vec![
            ("t", HeaderValue::Bool(true)),
            ("f", HeaderValue::Bool(false)),
            ("byte", HeaderValue::Byte(-7)),
            ("short", HeaderValue::Short(-300)),
            ("int", HeaderValue::Int(i32::MIN)),
            ("long", HeaderValue::Long(i64::MAX)),
            ("bytes", HeaderValue::Bytes(vec![0, 255, 10])),
            ("string", HeaderValue::String("héllo 世界".into())),
            ("ts", HeaderValue::Timestamp(1_700_000_000_000)),
            ("uuid", HeaderValue::Uuid(*b"0123456789abcdef")),
            ("empty", HeaderValue::String(String::new())),
            ("", HeaderValue::Bytes(Vec::new())),
        ];
        let frames = decode(&encode_frame(&headers, b"payload")).unwrap();
        let got: Vec<(&str, HeaderValue)> = frames[0].headers.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
        assert_eq!(got, headers);
        assert_eq!(frames[0].header("int"), Some(&HeaderValue::Int(i32::MIN)));
        // `header_str` only answers for strings.
        assert_eq!(frames[0].header_str("bytes"), None);
        assert_eq!(frames[0].header_str("string"), Some("héllo 世界"));
    }

    #[test]
    fn header_str_skips_same_named_headers_of_other_types() {
        let frame = Frame {
            headers: vec![("x".into(), HeaderValue::Int(1)), ("x".into(), HeaderValue::String("s".into()))],
            payload: Bytes::new(),
        };
        assert_eq!(frame.header_str("x"), Some("s"));
        assert_eq!(frame.header("x"), Some(&HeaderValue::Int(1)));
    }

    /// Builds a frame with the given prelude lengths and valid CRCs around arbitrary content.
    fn raw_frame(total: u32, headers_len: u32, body: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&headers_len.to_be_bytes());
        f.extend_from_slice(&crc32fast::hash(&f).to_be_bytes());
        f.extend_from_slice(body);
        f.extend_from_slice(&crc32fast::hash(&f).to_be_bytes());
        f
    }

    #[test]
    fn bad_prelude_crc() {
        let mut bytes = hex(VECTOR_1);
        bytes[9] ^= 1;
        assert_eq!(decode(&bytes), Err(StreamError::BadPreludeCrc { expected: 0xbaf3f68a, actual: 0xbaf2f68a }));
    }

    #[test]
    fn bad_message_crc() {
        let mut bytes = hex(VECTOR_1);
        bytes[14] ^= 0x20;
        assert!(matches!(decode(&bytes), Err(StreamError::BadMessageCrc { expected: 0xae7258e4, .. })));
    }

    #[test]
    fn length_bounds_are_checked_before_buffering() {
        assert!(matches!(decode(&raw_frame(15, 0, b"")), Err(StreamError::BadFrame(_))));
        assert!(matches!(decode(&raw_frame(20, 5, b"abcd")), Err(StreamError::BadFrame(_))));
        // A huge length is refused from the prelude alone, without waiting for (or reserving) the body.
        let mut d = EventStreamDecoder::new();
        let prelude = &raw_frame(u32::MAX, 0, b"")[..12];
        assert_eq!(d.push(prelude, &mut Vec::new()), Err(StreamError::TooLarge { limit: DEFAULT_MAX_FRAME_SIZE }));
        let mut d = EventStreamDecoder::with_max_frame_size(64);
        assert_eq!(d.push(&encode_frame(&[], &[0; 49]), &mut Vec::new()), Err(StreamError::TooLarge { limit: 64 }));
        let mut d = EventStreamDecoder::with_max_frame_size(64);
        d.push(&encode_frame(&[], &[0; 48]), &mut Vec::new()).unwrap();
    }

    #[test]
    fn header_errors() {
        // Unknown value type.
        assert!(
            matches!(decode(&raw_frame(20, 4, b"\x01a\x0a\x00")), Err(StreamError::BadFrame(m)) if m.contains("type 10"))
        );
        // Name longer than the header block.
        assert!(matches!(decode(&raw_frame(20, 4, b"\x09abc")), Err(StreamError::BadFrame(_))));
        // String value longer than the header block (the payload must not be read as header bytes).
        assert!(matches!(decode(&raw_frame(24, 5, b"\x01a\x07\x00\x03xyz")), Err(StreamError::BadFrame(_))));
        // Missing type byte.
        assert!(matches!(decode(&raw_frame(18, 2, b"\x01a")), Err(StreamError::BadFrame(_))));
        // Invalid UTF-8 in a name, reported at its stream offset.
        assert_eq!(decode(&raw_frame(19, 3, b"\x01\xFF\x00")), Err(StreamError::InvalidUtf8 { offset: 13 }));
        // ... and in a string value.
        assert_eq!(decode(&raw_frame(22, 6, b"\x01a\x07\x00\x01\xC0")), Err(StreamError::InvalidUtf8 { offset: 17 }));
    }

    #[test]
    fn truncated_frame_at_finish() {
        let bytes = hex(VECTOR_2);
        for cut in 1..bytes.len() {
            let mut d = EventStreamDecoder::new();
            let mut out = Vec::new();
            d.push(&bytes[..cut], &mut out).unwrap();
            assert!(out.is_empty());
            assert_eq!(d.finish(), Err(StreamError::Truncated), "cut at {cut}");
        }
    }

    #[test]
    fn poisoned_after_error() {
        let mut stream = hex(VECTOR_1);
        let mut bad = hex(VECTOR_2);
        bad[100] ^= 0xFF;
        stream.extend(bad);
        let mut d = EventStreamDecoder::new();
        let mut out = Vec::new();
        let err = d.push(&stream, &mut out).unwrap_err();
        assert!(matches!(err, StreamError::BadMessageCrc { .. }));
        assert_eq!(out.len(), 1, "the good frame before the fault is delivered");
        assert_eq!(d.push(&hex(VECTOR_1), &mut out), Err(err.clone()));
        assert_eq!(d.finish(), Err(err));
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn decoder_is_reusable_after_finish() {
        let mut d = EventStreamDecoder::new();
        let mut out = Vec::new();
        d.push(&hex(VECTOR_1), &mut out).unwrap();
        d.finish().unwrap();
        d.push(&hex(VECTOR_2), &mut out).unwrap();
        d.finish().unwrap();
        assert_eq!(out.len(), 2);
    }
}
