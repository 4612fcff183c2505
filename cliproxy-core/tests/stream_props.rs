//! Property tests of the stream decoders: the events or frames a stream decodes to must not depend on how
//! the transport cut it into chunks, text must never be silently replaced, and corruption must be caught.
//! The Gemini stream parser, whose streams have no end marker, is held to the same standard. For Responses
//! streams the same holds up to the IR events the dialect's parser makes of them.

use cliproxy_core::dialects::{Dialect, responses};
use cliproxy_core::stream::StreamError;
use cliproxy_core::stream::eventstream::{self, Frame, HeaderValue};
use cliproxy_core::stream::invariants::{
    Outcome, check_eventstream_split_invariance, check_sse_split_invariance, decode_eventstream, decode_sse,
};
use cliproxy_core::stream::sse::{self, SseDecoder, SseEvent};
use cliproxy_core::types::{BlockKind, StopReason, StreamEvent, Usage};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

const SSE_LIMIT: usize = sse::DEFAULT_MAX_EVENT_SIZE;
const FRAME_LIMIT: usize = eventstream::DEFAULT_MAX_FRAME_SIZE;

/// Characters weighted towards the ones that break naive decoders: multi-byte (2, 3 and 4 bytes, CJK and
/// emoji with modifiers) and line breaks.
fn text_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => proptest::char::range(' ', '~'),
        2 => proptest::char::range('\u{80}', '\u{7FF}'),
        2 => proptest::char::range('\u{4E00}', '\u{9FFF}'),
        2 => proptest::char::range('\u{1F300}', '\u{1FAFF}'),
        1 => Just('\u{1F3FD}'),
        1 => Just('\r'),
        1 => Just('\n'),
        1 => any::<char>().prop_filter("U+FFFD is what the decoder must never invent", |c| *c != '\u{FFFD}'),
    ]
}

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(text_char(), 0..max).prop_map(|cs| cs.into_iter().collect())
}

/// One generated event: what is written, and optional extras (a comment before it, id, retry).
#[derive(Debug, Clone)]
struct GenEvent {
    event: Option<String>,
    data: String,
    id: Option<String>,
    retry: Option<u64>,
    comment: bool,
}

fn gen_event() -> impl Strategy<Value = GenEvent> {
    (
        proptest::option::of("[a-z_界👋]{1,12}"),
        text(40),
        proptest::option::of("[a-zA-Z0-9 世]{0,8}"),
        proptest::option::of(any::<u64>()),
        any::<bool>(),
    )
        .prop_map(|(event, data, id, retry, comment)| GenEvent { event, data, id, retry, comment })
}

/// How lines end: one style for the whole stream, or a random one per line.
#[derive(Debug, Clone, Copy)]
enum Endings {
    Lf,
    CrLf,
    Cr,
    Mixed,
}

fn endings() -> impl Strategy<Value = Endings> {
    prop_oneof![Just(Endings::Lf), Just(Endings::CrLf), Just(Endings::Cr), Just(Endings::Mixed)]
}

/// A generated SSE stream and the events it must decode to.
#[derive(Debug, Clone)]
struct SseCase {
    bytes: Vec<u8>,
    expected: Vec<SseEvent>,
}

/// Writes `events` as an SSE stream. `seeds` pick per-line endings in `Mixed` mode; `tail` cuts the end:
/// 0 keeps it, 1 drops the final blank line, 2 also drops the last line's ending (both must still deliver
/// the last event, as `finish` does for servers that omit the blank line).
fn build_sse(events: &[GenEvent], bom: bool, style: Endings, seeds: &[u8], tail: u8) -> SseCase {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for e in events {
        if e.comment {
            lines.push(": keep-alive 世".as_bytes().to_vec());
        }
        if let Some(id) = &e.id {
            lines.push(format!("id: {id}").into_bytes());
        }
        if let Some(retry) = e.retry {
            lines.push(format!("retry: {retry}").into_bytes());
        }
        let mut encoded = Vec::new();
        sse::encode_event(e.event.as_deref(), &e.data, &mut encoded);
        // `encode_event` ends lines with `\n` only; re-cut them so each can get its own ending.
        encoded.truncate(encoded.len() - 2);
        lines.extend(encoded.split(|&b| b == b'\n').map(<[u8]>::to_vec));
        lines.push(Vec::new());
    }
    if !events.is_empty() && tail > 0 {
        lines.pop();
    }
    let mut bytes = Vec::new();
    if bom {
        bytes.extend_from_slice(b"\xEF\xBB\xBF");
    }
    let mut previous: &[u8] = b"";
    for (n, line) in lines.iter().enumerate() {
        bytes.extend_from_slice(line);
        if tail == 2 && n + 1 == lines.len() {
            break;
        }
        let seed = seeds.get(n % seeds.len().max(1)).copied().unwrap_or(0);
        let mut ending: &[u8] = match style {
            Endings::Lf => b"\n",
            Endings::CrLf => b"\r\n",
            Endings::Cr => b"\r",
            Endings::Mixed => [&b"\n"[..], b"\r\n", b"\r"][usize::from(seed % 3)],
        };
        // A `\r` ending then an empty line ended by `\n` would read as one `\r\n`, losing the blank line:
        // a real ambiguity of the format, so a writer must avoid it and so does this one.
        if previous == b"\r" && line.is_empty() && ending == b"\n" {
            ending = b"\r\n";
        }
        bytes.extend_from_slice(ending);
        previous = ending;
    }
    let expected = events
        .iter()
        .map(|e| SseEvent {
            event: e.event.clone(),
            data: e.data.replace("\r\n", "\n").replace('\r', "\n"),
            id: e.id.clone(),
            retry: e.retry,
        })
        .collect();
    SseCase { bytes, expected }
}

fn sse_case() -> impl Strategy<Value = SseCase> {
    (
        proptest::collection::vec(gen_event(), 0..6),
        any::<bool>(),
        endings(),
        proptest::collection::vec(any::<u8>(), 1..16),
        0u8..3,
    )
        .prop_map(|(events, bom, style, seeds, tail)| build_sse(&events, bom, style, &seeds, tail))
}

/// Cuts `bytes` at the given positions (in any order, repeats allowed).
fn cut<'a>(bytes: &'a [u8], positions: &[usize]) -> Vec<&'a [u8]> {
    let mut positions = positions.to_vec();
    positions.sort_unstable();
    positions.dedup();
    let mut chunks = Vec::new();
    let mut start = 0;
    for p in positions {
        chunks.push(&bytes[start..p]);
        start = p;
    }
    chunks.push(&bytes[start..]);
    chunks
}

fn cut_at(bytes: &[u8], splits: &[Index]) -> Vec<usize> {
    splits.iter().map(|i| i.index(bytes.len() + 1)).collect()
}

/// Every position that falls inside a multi-byte character or between a `\r` and a `\n`: the cuts that
/// break decoders working per chunk.
fn awkward_positions(bytes: &[u8]) -> Vec<usize> {
    (1..bytes.len()).filter(|&p| (bytes[p] & 0xC0 == 0x80) || (bytes[p - 1] == b'\r' && bytes[p] == b'\n')).collect()
}

fn no_replacement_char(events: &[SseEvent]) -> bool {
    events.iter().all(|e| !e.data.contains('\u{FFFD}') && !e.event.iter().any(|n| n.contains('\u{FFFD}')))
}

proptest! {
    #[test]
    fn sse_decodes_the_same_under_any_split(case in sse_case(), splits in proptest::collection::vec(any::<Index>(), 0..8)) {
        let ok: Outcome<SseEvent> = (case.expected.clone(), None);
        prop_assert_eq!(&decode_sse([&case.bytes[..]], SSE_LIMIT), &ok);
        prop_assert_eq!(&decode_sse(cut(&case.bytes, &cut_at(&case.bytes, &splits)), SSE_LIMIT), &ok);
        prop_assert_eq!(&decode_sse(case.bytes.chunks(1), SSE_LIMIT), &ok);
        prop_assert_eq!(&decode_sse(cut(&case.bytes, &awkward_positions(&case.bytes)), SSE_LIMIT), &ok);
    }

    #[test]
    fn sse_invalid_utf8_is_an_error_never_a_replacement(
        case in sse_case(),
        at in any::<Index>(),
        bad in prop::sample::select(vec![
            &b"\xFF"[..], b"\xC0\x80", b"\x80", b"\xED\xA0\x80", b"\xF4\x90\x80\x80", b"\xE4\xB8", b"\xF0\x9F\x91",
        ]),
        splits in proptest::collection::vec(any::<Index>(), 0..8),
    ) {
        let pos = at.index(case.bytes.len() + 1);
        let mut bytes = case.bytes.clone();
        bytes.splice(pos..pos, bad.iter().copied());
        let whole = decode_sse([&bytes[..]], SSE_LIMIT);
        prop_assert_eq!(&decode_sse(cut(&bytes, &cut_at(&bytes, &splits)), SSE_LIMIT), &whole);
        prop_assert_eq!(&decode_sse(bytes.chunks(1), SSE_LIMIT), &whole);
        let (events, err) = whole;
        prop_assert!(no_replacement_char(&events));
        prop_assert!(case.expected.starts_with(&events), "events before the fault are the genuine ones");
        match err {
            // The first bad byte is the inserted one, or a byte of a character it cut into.
            Some(StreamError::InvalidUtf8 { offset }) => {
                prop_assert!((pos.saturating_sub(3) as u64..=pos as u64 + 3).contains(&offset), "offset {} for insert at {}", offset, pos);
            }
            // An incomplete character can only be cut short by the end of the stream.
            Some(StreamError::Truncated) => {
                prop_assert!(!bytes[pos..].iter().any(|&b| b == b'\r' || b == b'\n'));
            }
            other => prop_assert!(false, "expected a UTF-8 error, got {:?}", other),
        }
    }

    #[test]
    fn sse_arbitrary_bytes_hold_the_shared_invariants(
        pieces in proptest::collection::vec(prop::sample::select(vec![
            &b"data: "[..], b"data:", b"event: x", b"id: 1", b"retry: 10", b":c", b"\r", b"\n", b"\r\n", b"x",
            "é".as_bytes(), "世".as_bytes(), "👋🏽".as_bytes(), b"\xEF\xBB\xBF", b"\xE4", b"\xFF", b"\xF0\x9F",
        ]), 0..40),
        control in any::<u8>(),
    ) {
        let mut input = vec![control];
        input.extend(pieces.concat());
        check_sse_split_invariance(&input);
    }
}

fn header_value() -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        any::<bool>().prop_map(HeaderValue::Bool),
        any::<i8>().prop_map(HeaderValue::Byte),
        any::<i16>().prop_map(HeaderValue::Short),
        any::<i32>().prop_map(HeaderValue::Int),
        any::<i64>().prop_map(HeaderValue::Long),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(HeaderValue::Bytes),
        text(30).prop_map(HeaderValue::String),
        any::<i64>().prop_map(HeaderValue::Timestamp),
        any::<[u8; 16]>().prop_map(HeaderValue::Uuid),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    let name = prop_oneof![
        prop::sample::select(vec![":event-type", ":message-type", ":content-type", ":exception-type"])
            .prop_map(String::from),
        text(20),
    ];
    (proptest::collection::vec((name, header_value()), 0..6), proptest::collection::vec(any::<u8>(), 0..300))
        .prop_map(|(headers, payload)| Frame { headers, payload: payload.into() })
}

fn encode_frames(frames: &[Frame]) -> (Vec<u8>, Vec<usize>) {
    let mut bytes = Vec::new();
    let mut starts = Vec::new();
    for f in frames {
        starts.push(bytes.len());
        let headers: Vec<(&str, HeaderValue)> = f.headers.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
        bytes.extend(eventstream::encode_frame(&headers, &f.payload));
    }
    (bytes, starts)
}

proptest! {
    #[test]
    fn eventstream_decodes_the_same_under_any_split(
        frames in proptest::collection::vec(frame(), 0..6),
        splits in proptest::collection::vec(any::<Index>(), 0..8),
    ) {
        let (bytes, _) = encode_frames(&frames);
        let ok: Outcome<Frame> = (frames, None);
        prop_assert_eq!(&decode_eventstream([&bytes[..]], FRAME_LIMIT), &ok);
        prop_assert_eq!(&decode_eventstream(cut(&bytes, &cut_at(&bytes, &splits)), FRAME_LIMIT), &ok);
        prop_assert_eq!(&decode_eventstream(bytes.chunks(1), FRAME_LIMIT), &ok);
    }

    #[test]
    fn eventstream_any_corrupted_byte_is_caught_by_a_crc(
        frames in proptest::collection::vec(frame(), 1..4),
        at in any::<Index>(),
        mask in 1u8..=255,
        splits in proptest::collection::vec(any::<Index>(), 0..4),
    ) {
        let (mut bytes, starts) = encode_frames(&frames);
        let pos = at.index(bytes.len());
        bytes[pos] ^= mask;
        let hit = starts.iter().rposition(|&s| s <= pos).unwrap();
        let whole = decode_eventstream([&bytes[..]], FRAME_LIMIT);
        prop_assert_eq!(&decode_eventstream(cut(&bytes, &cut_at(&bytes, &splits)), FRAME_LIMIT), &whole);
        let (decoded, err) = whole;
        prop_assert_eq!(&decoded[..], &frames[..hit], "frames before the corrupted one are delivered intact");
        // CRC-32 catches every single-byte error: the prelude's own CRC for the first 12 bytes of a frame,
        // the message CRC for the rest.
        if pos - starts[hit] < 12 {
            prop_assert!(matches!(err, Some(StreamError::BadPreludeCrc { .. })), "{:?}", err);
        } else {
            prop_assert!(matches!(err, Some(StreamError::BadMessageCrc { .. })), "{:?}", err);
        }
    }

    #[test]
    fn eventstream_mutated_streams_hold_the_shared_invariants(
        frames in proptest::collection::vec(frame(), 0..4),
        edits in proptest::collection::vec((any::<Index>(), any::<u8>(), 0u8..3), 0..4),
        control in any::<u8>(),
    ) {
        let (mut bytes, _) = encode_frames(&frames);
        for (at, byte, op) in edits {
            let pos = at.index(bytes.len() + 1);
            match op {
                0 if pos < bytes.len() => bytes[pos] = byte,
                1 => bytes.insert(pos, byte),
                _ => bytes.truncate(pos),
            }
        }
        let mut input = vec![control];
        input.extend(bytes);
        check_eventstream_split_invariance(&input);
    }
}

/// The text the original proxy mangled: 2-, 3- and 4-byte characters and an emoji with a skin-tone modifier.
const MIXED_TEXT: &str = "héllo 世界 👋🏽";

/// Decodes `stream` cut at every position and at every pair of positions, and asserts each gives the
/// outcome of the uncut stream, which it returns.
fn assert_every_cut_agrees<T: PartialEq + std::fmt::Debug>(
    stream: &[u8],
    decode: impl Fn(Vec<&[u8]>) -> Outcome<T>,
) -> Outcome<T> {
    let whole = decode(vec![stream]);
    for i in 0..=stream.len() {
        for j in i..=stream.len() {
            assert_eq!(decode(cut(stream, &[i, j])), whole, "cuts at {i} and {j}");
        }
    }
    whole
}

#[test]
fn sse_every_single_and_double_cut_gives_identical_events() {
    let mut stream = Vec::new();
    sse::encode_event(Some("content_block_delta"), MIXED_TEXT, &mut stream);
    stream.extend_from_slice(format!("data: {MIXED_TEXT}\r\ndata: {MIXED_TEXT}\r\n\r\n").as_bytes());
    stream.extend_from_slice(format!(": {MIXED_TEXT}\rdata: {MIXED_TEXT}\r\r").as_bytes());
    let (events, err) = assert_every_cut_agrees(&stream, |chunks| decode_sse(chunks, SSE_LIMIT));
    assert_eq!(err, None);
    let data: Vec<&str> = events.iter().map(|e| e.data.as_str()).collect();
    let two_lines = format!("{MIXED_TEXT}\n{MIXED_TEXT}");
    assert_eq!(data, [MIXED_TEXT, &two_lines, MIXED_TEXT]);
    assert_eq!(events[0].event.as_deref(), Some("content_block_delta"));
}

#[test]
fn eventstream_every_single_and_double_cut_gives_identical_frames() {
    let headers = [
        (":event-type", HeaderValue::String("assistantResponseEvent".into())),
        ("note", HeaderValue::String(MIXED_TEXT.into())),
    ];
    let payload = format!("{{\"content\":\"{MIXED_TEXT}\"}}");
    let mut stream = eventstream::encode_frame(&headers, payload.as_bytes());
    stream.extend(eventstream::encode_frame(&[], MIXED_TEXT.as_bytes()));
    let (frames, err) = assert_every_cut_agrees(&stream, |chunks| decode_eventstream(chunks, FRAME_LIMIT));
    assert_eq!(err, None);
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].header_str("note"), Some(MIXED_TEXT));
    assert_eq!(&frames[0].payload[..], payload.as_bytes());
    assert_eq!(&frames[1].payload[..], MIXED_TEXT.as_bytes());
}

/// SSE bytes in the given pieces → Gemini stream parser: the IR events, or the first error as text.
fn gemini_events<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<StreamEvent>, String> {
    let mut decoder = SseDecoder::new();
    let mut parser = Dialect::Gemini.stream_parser();
    let (mut frames, mut events) = (Vec::new(), Vec::new());
    for chunk in chunks {
        decoder.push(chunk, &mut frames).map_err(|e| e.to_string())?;
        for f in frames.drain(..) {
            parser.push(&f, &mut events).map_err(|e| e.to_string())?;
        }
    }
    decoder.finish(&mut frames).map_err(|e| e.to_string())?;
    for f in frames.drain(..) {
        parser.push(&f, &mut events).map_err(|e| e.to_string())?;
    }
    parser.finish(&mut events).map_err(|e| e.to_string())?;
    Ok(events)
}

/// One part of a generated Gemini chunk.
fn gemini_part() -> impl Strategy<Value = Value> {
    prop_oneof![
        text(12).prop_map(|t| json!({"text": t})),
        text(12).prop_map(|t| json!({"text": t, "thought": true})),
        "[A-Za-z0-9+/]{4,12}".prop_map(|s| json!({"thought": true, "thoughtSignature": s})),
        ("[a-z_]{1,8}", text(6))
            .prop_map(|(name, city)| json!({"functionCall": {"name": name, "args": {"city": city}}})),
    ]
}

/// A Gemini stream as a server writes it: `data:` chunks, the last with the finish reason and usage, no end
/// marker; LF or CRLF line endings.
fn gemini_stream() -> impl Strategy<Value = (Vec<u8>, Vec<Value>)> {
    (proptest::collection::vec(proptest::collection::vec(gemini_part(), 1..3), 0..5), any::<bool>()).prop_map(
        |(chunks, crlf)| {
            let mut bytes = Vec::new();
            let mut parts = Vec::new();
            let last = json!({"candidates": [{"content": {"role": "model", "parts": []}, "finishReason": "STOP"}],
                              "usageMetadata": {"promptTokenCount": 4, "candidatesTokenCount": 2}});
            let bodies = chunks.iter().map(|p| json!({"candidates": [{"content": {"role": "model", "parts": p}}]}));
            for body in bodies.chain([last]) {
                let mut event = Vec::new();
                sse::encode_event(None, &body.to_string(), &mut event);
                if crlf {
                    event = String::from_utf8(event).unwrap().replace('\n', "\r\n").into_bytes();
                }
                bytes.extend(event);
            }
            parts.extend(chunks.into_iter().flatten());
            (bytes, parts)
        },
    )
}

proptest! {
    /// A Gemini stream cut at every byte, and fed byte by byte, gives the IR events of the whole stream, and
    /// those carry every text, thought and call as written.
    #[test]
    fn gemini_streams_parse_the_same_under_any_split((bytes, parts) in gemini_stream()) {
        let whole = gemini_events([&bytes[..]]).expect("generated streams are valid");
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            prop_assert_eq!(&gemini_events([a, b]), &Ok(whole.clone()), "cut at byte {}", cut);
        }
        prop_assert_eq!(&gemini_events(bytes.chunks(1)), &Ok(whole.clone()));

        let text = |thought: bool| -> String {
            parts.iter().filter(|p| p.get("thought").is_some() == thought).filter_map(|p| p["text"].as_str()).collect()
        };
        let (mut got_text, mut got_thought, mut args) = (String::new(), String::new(), Vec::new());
        for ev in &whole {
            match ev {
                StreamEvent::TextDelta { text, .. } => got_text.push_str(text),
                StreamEvent::ThinkingDelta { text, .. } => got_thought.push_str(text),
                StreamEvent::ToolArgsDelta { json, .. } => args.push(serde_json::from_str::<Value>(json).unwrap()),
                _ => {}
            }
        }
        prop_assert_eq!(got_text, text(false));
        prop_assert_eq!(got_thought, text(true));
        let want: Vec<_> = parts.iter().filter_map(|p| p.get("functionCall").map(|c| c["args"].clone())).collect();
        prop_assert_eq!(args, want);
        let finished = matches!(whole.last(), Some(StreamEvent::Finish { .. }));
        prop_assert!(finished, "the stream ends with Finish");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Responses streams: SSE decoder and Responses parser together, up to the IR events.

/// A Responses stream cut into `chunks`, through the SSE decoder and the Responses parser: the IR events,
/// then the message of the first error, if any.
fn decode_responses(chunks: Vec<&[u8]>) -> (Vec<StreamEvent>, Option<String>) {
    let mut decoder = SseDecoder::new();
    let mut parser = responses::StreamParser::new();
    let (mut sse, mut ir) = (Vec::new(), Vec::new());
    let mut feed = |chunk: Option<&[u8]>, ir: &mut Vec<StreamEvent>| -> Result<(), String> {
        match chunk {
            Some(c) => decoder.push(c, &mut sse).map_err(|e| e.to_string())?,
            None => decoder.finish(&mut sse).map_err(|e| e.to_string())?,
        }
        for ev in sse.drain(..) {
            parser.push(&ev, ir).map_err(|e| e.to_string())?;
        }
        if chunk.is_none() {
            parser.finish(ir).map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    for chunk in chunks {
        if let Err(e) = feed(Some(chunk), &mut ir) {
            return (ir, Some(e));
        }
    }
    let err = feed(None, &mut ir).err();
    (ir, err)
}

/// One block of a generated answer: text pieces, thinking pieces with a signature, or a tool call's name and
/// argument fragments.
#[derive(Debug, Clone)]
enum GenBlock {
    Text(Vec<String>),
    Thinking(Vec<String>, String),
    Tool(String, Vec<String>),
}

fn gen_block() -> impl Strategy<Value = GenBlock> {
    prop_oneof![
        proptest::collection::vec(text(10), 0..3).prop_map(GenBlock::Text),
        (proptest::collection::vec(text(10), 0..3), "[A-Za-z0-9+/=]{0,12}").prop_map(|(t, s)| GenBlock::Thinking(t, s)),
        ("[a-z_]{1,8}", proptest::collection::vec(text(8), 0..3)).prop_map(|(n, a)| GenBlock::Tool(n, a)),
    ]
}

/// The IR events of a generated answer, as a parser of a well-formed upstream stream produces them (no empty
/// deltas).
fn answer_events(blocks: &[GenBlock], max_tokens: bool) -> Vec<StreamEvent> {
    let mut evs = vec![StreamEvent::Start { id: "resp_gen".into(), model: "m".into(), usage: Usage::default() }];
    for (index, b) in blocks.iter().enumerate() {
        let pieces = match b {
            GenBlock::Text(p) => {
                evs.push(StreamEvent::BlockStart { index, block: BlockKind::Text });
                evs.extend(
                    p.iter().filter(|t| !t.is_empty()).map(|t| StreamEvent::TextDelta { index, text: t.clone() }),
                );
                continue;
            }
            GenBlock::Thinking(p, _) => {
                evs.push(StreamEvent::BlockStart { index, block: BlockKind::Thinking });
                p
            }
            GenBlock::Tool(name, p) => {
                let block = BlockKind::ToolUse { id: format!("call_{index}"), name: name.clone() };
                evs.push(StreamEvent::BlockStart { index, block });
                evs.extend(
                    p.iter().filter(|a| !a.is_empty()).map(|a| StreamEvent::ToolArgsDelta { index, json: a.clone() }),
                );
                evs.push(StreamEvent::BlockStop { index });
                continue;
            }
        };
        evs.extend(
            pieces.iter().filter(|t| !t.is_empty()).map(|t| StreamEvent::ThinkingDelta { index, text: t.clone() }),
        );
        if let GenBlock::Thinking(_, signature) = b
            && !signature.is_empty()
        {
            evs.push(StreamEvent::SignatureDelta { index, signature: signature.clone() });
        }
        evs.push(StreamEvent::BlockStop { index });
    }
    // Text blocks close where the next block starts, as the parser reads item done events in order.
    let mut out = Vec::with_capacity(evs.len() + blocks.len());
    for ev in evs {
        if let StreamEvent::BlockStart { index, .. } = ev
            && index > 0
            && matches!(blocks[index - 1], GenBlock::Text(_))
        {
            out.push(StreamEvent::BlockStop { index: index - 1 });
        }
        out.push(ev);
    }
    if matches!(blocks.last(), Some(GenBlock::Text(_))) {
        out.push(StreamEvent::BlockStop { index: blocks.len() - 1 });
    }
    let tools = blocks.iter().any(|b| matches!(b, GenBlock::Tool(..)));
    let stop_reason = match (max_tokens, tools) {
        (true, _) => StopReason::MaxTokens,
        (false, true) => StopReason::ToolUse,
        (false, false) => StopReason::EndTurn,
    };
    let usage =
        Usage { input_tokens: 7, output_tokens: 3, cache_read_tokens: 2, reasoning_tokens: 1, ..Usage::default() };
    out.push(StreamEvent::Finish { stop_reason: Some(stop_reason), usage });
    out
}

/// The Responses SSE bytes the proxy writes for `events`.
fn responses_bytes(events: &[StreamEvent]) -> Vec<u8> {
    let mut encoder = responses::StreamEncoder::with_created("m", 1);
    let mut out = Vec::new();
    for ev in events {
        encoder.push(ev, &mut out);
    }
    encoder.finish(&mut out);
    let mut bytes = Vec::new();
    for ev in &out {
        ev.write_sse(&mut bytes);
    }
    bytes
}

proptest! {
    // Each case parses its stream once per byte boundary: fewer cases than the default keep it quick.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// A Responses stream written by the encoder parses back to the IR events it was written from, cut at
    /// every byte boundary, byte by byte and whole alike.
    #[test]
    fn responses_streams_parse_back_the_same_under_every_cut(
        blocks in proptest::collection::vec(gen_block(), 0..4),
        max_tokens in any::<bool>(),
    ) {
        let events = answer_events(&blocks, max_tokens);
        let bytes = responses_bytes(&events);
        let whole = decode_responses(vec![&bytes[..]]);
        prop_assert_eq!(&whole, &(events, None));
        for at in 0..=bytes.len() {
            prop_assert_eq!(&decode_responses(cut(&bytes, &[at])), &whole, "cut at {}", at);
        }
        prop_assert_eq!(&decode_responses(bytes.chunks(1).collect()), &whole);
    }
}

#[test]
fn responses_stream_every_cut_gives_identical_ir_events() {
    let text = |t: &str, v: Value| {
        let mut v = v;
        v["type"] = t.into();
        let mut out = Vec::new();
        sse::encode_event(Some(t), &v.to_string(), &mut out);
        out
    };
    let mut stream = Vec::new();
    let mut last = 0;
    for piece in [
        text("response.created", json!({"response": {"id": "resp_1", "model": "gpt-5", "status": "in_progress"}})),
        text("response.output_item.added", json!({"output_index": 0, "item": {"type": "reasoning", "id": "rs"}})),
        text("response.reasoning_summary_text.delta", json!({"output_index": 0, "delta": MIXED_TEXT})),
        text(
            "response.output_item.done",
            json!({"output_index": 0, "item": {"type": "reasoning", "encrypted_content": "enc"}}),
        ),
        text("response.output_item.added", json!({"output_index": 1, "item": {"type": "message", "id": "m"}})),
        text("response.output_text.delta", json!({"output_index": 1, "delta": MIXED_TEXT})),
        text("response.output_item.done", json!({"output_index": 1, "item": {"type": "message"}})),
        text(
            "response.output_item.added",
            json!({"output_index": 2, "item": {"type": "function_call", "call_id": "c", "name": "f"}}),
        ),
        text(
            "response.function_call_arguments.delta",
            json!({"output_index": 2, "delta": format!("{{\"q\":\"{MIXED_TEXT}\"}}")}),
        ),
        text(
            "response.output_item.done",
            json!({"output_index": 2, "item": {"type": "function_call", "call_id": "c"}}),
        ),
        text(
            "response.completed",
            json!({"response": {"status": "completed", "usage": {"input_tokens": 3, "output_tokens": 2}}}),
        ),
    ] {
        last = piece.len();
        stream.extend(piece);
    }
    let whole = decode_responses(vec![&stream[..]]);
    assert_eq!(whole.1, None);
    let deltas: Vec<&str> = whole
        .0
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text, .. } | StreamEvent::ThinkingDelta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deltas, [MIXED_TEXT, MIXED_TEXT]);
    assert!(matches!(whole.0.last(), Some(StreamEvent::Finish { stop_reason: Some(StopReason::ToolUse), .. })));
    for at in 0..=stream.len() {
        assert_eq!(decode_responses(cut(&stream, &[at])), whole, "cut at {at}");
    }
    assert_eq!(decode_responses(stream.chunks(1).collect()), whole);
    // Cut off before the terminal event: the same error wherever the cut falls.
    let end = stream.len() - last;
    let truncated = decode_responses(vec![&stream[..end]]);
    assert!(truncated.1.as_deref().is_some_and(|e| e.contains("ended early")), "{truncated:?}");
    for at in 0..=end {
        assert_eq!(decode_responses(cut(&stream[..end], &[at])), truncated, "cut at {at}");
    }
}
