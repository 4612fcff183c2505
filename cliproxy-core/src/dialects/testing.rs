//! Helpers shared by the tests of both dialects.

use proptest::prelude::*;
use serde_json::Value;

use super::{AnyStreamEncoder, AnyStreamParser, OutEvent};
use crate::error::{Error, ErrorKind};
use crate::stream::sse::SseEvent;
use crate::types::{BlockKind, ChatRequest, StopReason, StreamEvent, Usage};

/// The message of an `invalid_request` error (and a failure for any other outcome).
pub(crate) fn invalid_message(result: Result<ChatRequest, Error>) -> String {
    let e = result.expect_err("the request should be rejected");
    assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{e}");
    e.message().to_owned()
}

pub(crate) fn sse(event: Option<&str>, data: impl Into<String>) -> SseEvent {
    SseEvent { event: event.map(str::to_owned), data: data.into(), ..SseEvent::default() }
}

/// Runs a whole upstream stream through a parser, `finish` included.
pub(crate) fn parse_stream(mut parser: AnyStreamParser, events: &[SseEvent]) -> Result<Vec<StreamEvent>, Error> {
    let mut out = Vec::new();
    for e in events {
        parser.push(e, &mut out)?;
    }
    parser.finish(&mut out)?;
    Ok(out)
}

/// Runs IR events through an encoder, `finish` included.
pub(crate) fn encode_stream(mut encoder: AnyStreamEncoder, events: &[StreamEvent]) -> Vec<OutEvent> {
    let mut out = Vec::new();
    for ev in events {
        encoder.push(ev, &mut out);
    }
    encoder.finish(&mut out);
    out
}

/// The JSON data of every event except `[DONE]`.
pub(crate) fn datas(out: &[OutEvent]) -> Vec<Value> {
    out.iter().filter(|e| e.data != "[DONE]").map(|e| serde_json::from_str(&e.data).unwrap()).collect()
}

/// The text an encoder must write for `events`: every text delta up to `Finish`, after which events are
/// ignored.
pub(crate) fn text_until_finish(events: &[StreamEvent]) -> String {
    events
        .iter()
        .take_while(|e| !matches!(e, StreamEvent::Finish { .. }))
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

/// Any stream event, over a few block indexes so that random sequences hit, miss and reuse blocks.
pub(crate) fn stream_event() -> impl Strategy<Value = StreamEvent> {
    let index = 0usize..4;
    let block = prop_oneof![
        Just(BlockKind::Text),
        Just(BlockKind::Thinking),
        ("[a-z]{1,3}", "[a-z]{1,3}").prop_map(|(id, name)| BlockKind::ToolUse { id, name }),
        "[a-z]{1,3}".prop_map(|data| BlockKind::RedactedThinking { data }),
    ];
    prop_oneof![
        (index.clone(), block).prop_map(|(index, block)| StreamEvent::BlockStart { index, block }),
        (index.clone(), ".{0,4}").prop_map(|(index, text)| StreamEvent::TextDelta { index, text }),
        (index.clone(), ".{0,4}").prop_map(|(index, text)| StreamEvent::ThinkingDelta { index, text }),
        (index.clone(), "[a-z]{0,3}").prop_map(|(index, signature)| StreamEvent::SignatureDelta { index, signature }),
        (index.clone(), "[{}:\"a-z0-9]{0,4}").prop_map(|(index, json)| StreamEvent::ToolArgsDelta { index, json }),
        index.prop_map(|index| StreamEvent::BlockStop { index }),
        Just(StreamEvent::Ping),
        Just(StreamEvent::Start { id: "msg_p".into(), model: "m".into(), usage: Usage::default() }),
        Just(StreamEvent::Finish { stop_reason: Some(StopReason::EndTurn), usage: Usage::default() }),
    ]
}
