//! Golden translations between the dialects.
//!
//! Each file in `tests/golden/` gives an input in one dialect and the exact output expected in another (or
//! the same: round trips), written and checked by hand against the wire examples of the provider reference
//! and the original proxy's recorded answers; its `about` says which rules it pins down. Outputs are
//! compared as JSON values, so key order does not matter but every key and value does.
//!
//! Streams are given as SSE events. They are fed to the pipeline (SSE decoder → upstream parser → client
//! encoder) as bytes cut at every position, and byte by byte: the output must not depend on how the network
//! split the stream. An upstream error ends the output with the client dialect's error event, as the server
//! does once the answer has started.

use cliproxy_core::dialects::{AnyStreamEncoder, Dialect, OutEvent, gemini, openai_chat, responses};
use cliproxy_core::stream::sse::{SseDecoder, SseEvent, encode_event};
use serde::Deserialize;
use serde_json::Value;

/// The `created` (`created_at`) time of OpenAI answers in the fixtures.
const CREATED: u64 = 1_700_000_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[allow(dead_code)]
    about: String,
    kind: Kind,
    from: DialectName,
    to: DialectName,
    /// The model name the client asked for (answers and streams), or the one in a Gemini request's URL.
    #[serde(default)]
    model: String,
    /// Whether a Gemini request's URL asked for a stream (`:streamGenerateContent`).
    #[serde(default)]
    stream: bool,
    /// The OpenAI client's `stream_options.include_usage` (streams to OpenAI clients).
    #[serde(default)]
    include_usage: bool,
    input: Value,
    expected: Value,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Request,
    Response,
    Stream,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum DialectName {
    OpenaiChat,
    Anthropic,
    Gemini,
    Responses,
}

impl From<DialectName> for Dialect {
    fn from(d: DialectName) -> Dialect {
        match d {
            DialectName::OpenaiChat => Dialect::OpenAiChat,
            DialectName::Anthropic => Dialect::Anthropic,
            DialectName::Gemini => Dialect::Gemini,
            DialectName::Responses => Dialect::Responses,
        }
    }
}

fn load(name: &str) -> Case {
    let path = format!("{}/tests/golden/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn check(name: &str) {
    let case = load(name);
    let (from, to) = (Dialect::from(case.from), Dialect::from(case.to));
    match case.kind {
        Kind::Request => {
            let body = case.input.to_string();
            let req = match from {
                // The model and the streaming choice of a Gemini request are in its URL.
                Dialect::Gemini => gemini::parse_request(body.as_bytes(), &case.model, case.stream),
                _ => from.parse_request(body.as_bytes()),
            }
            .expect("input parses");
            let out: Value = serde_json::from_slice(&to.encode_request(&req)).unwrap();
            assert_json_eq(name, &out, &case.expected);
        }
        Kind::Response => {
            let resp = from.parse_response(case.input.to_string().as_bytes()).expect("input parses");
            let body = match to {
                Dialect::OpenAiChat => openai_chat::encode_response_at(&resp, &case.model, CREATED),
                Dialect::Anthropic | Dialect::Gemini => {
                    to.encode_response(&resp, &case.model, std::time::SystemTime::UNIX_EPOCH)
                }
                Dialect::Responses => responses::encode_response_at(&resp, &case.model, CREATED),
            };
            let out: Value = serde_json::from_slice(&body).unwrap();
            assert_json_eq(name, &out, &case.expected);
        }
        Kind::Stream => {
            let bytes = sse_bytes(&case.input);
            let whole = run_stream(&case, from, to, &[&bytes]);
            assert_json_eq(name, &whole, &case.expected);
            for cut in 1..bytes.len() {
                let (a, b) = bytes.split_at(cut);
                let split = run_stream(&case, from, to, &[a, b]);
                assert!(split == whole, "{name}: output differs when the stream is cut at byte {cut}");
            }
            let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
            assert!(run_stream(&case, from, to, &bytewise) == whole, "{name}: output differs when fed byte by byte");
        }
    }
}

/// The fixture's events as SSE bytes: `event:` lines where named, JSON data, `[DONE]` as it is.
fn sse_bytes(events: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    for ev in events.as_array().expect("stream input is an array of events") {
        let data = match &ev["data"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        encode_event(ev["event"].as_str(), &data, &mut out);
    }
    out
}

/// SSE bytes in the given pieces → upstream parser → client encoder; the client events as JSON.
fn run_stream(case: &Case, from: Dialect, to: Dialect, chunks: &[&[u8]]) -> Value {
    let mut decoder = SseDecoder::new();
    let mut parser = from.stream_parser();
    let mut encoder = match to {
        Dialect::OpenAiChat => AnyStreamEncoder::OpenAiChat(openai_chat::StreamEncoder::with_created(
            &case.model,
            case.include_usage,
            CREATED,
        )),
        Dialect::Responses => AnyStreamEncoder::Responses(responses::StreamEncoder::with_created(&case.model, CREATED)),
        Dialect::Anthropic | Dialect::Gemini => {
            to.stream_encoder(&case.model, case.include_usage, std::time::SystemTime::UNIX_EPOCH)
        }
    };
    let mut sse: Vec<SseEvent> = Vec::new();
    let mut ir = Vec::new();
    let mut out: Vec<OutEvent> = Vec::new();
    let mut outcome = Ok(());
    for chunk in chunks {
        decoder.push(chunk, &mut sse).expect("fixture SSE decodes");
        outcome = sse.drain(..).try_for_each(|ev| parser.push(&ev, &mut ir));
        for ev in ir.drain(..) {
            encoder.push(&ev, &mut out);
        }
        if outcome.is_err() {
            break;
        }
    }
    if outcome.is_ok() {
        decoder.finish(&mut sse).expect("fixture SSE decodes");
        outcome = sse.drain(..).try_for_each(|ev| parser.push(&ev, &mut ir)).and_then(|()| parser.finish(&mut ir));
        for ev in ir.drain(..) {
            encoder.push(&ev, &mut out);
        }
    }
    match outcome {
        Ok(()) => encoder.finish(&mut out),
        Err(e) => out.push(to.error_event(&e)),
    }
    Value::Array(
        out.into_iter()
            .map(|e| {
                let data = serde_json::from_str(&e.data).unwrap_or(Value::String(e.data));
                let mut ev = serde_json::Map::new();
                if let Some(name) = e.event {
                    ev.insert("event".into(), name.into());
                }
                ev.insert("data".into(), data);
                Value::Object(ev)
            })
            .collect(),
    )
}

fn assert_json_eq(name: &str, actual: &Value, expected: &Value) {
    if actual != expected {
        panic!(
            "{name}: output differs\n--- expected\n{}\n--- actual\n{}",
            serde_json::to_string_pretty(expected).unwrap(),
            serde_json::to_string_pretty(actual).unwrap()
        );
    }
}

macro_rules! golden {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*
        const CASES: &[&str] = &[$(stringify!($name)),*];
    };
}

golden!(
    request_anthropic_roundtrip,
    request_anthropic_to_gemini,
    request_anthropic_to_openai,
    request_anthropic_to_openai_conformance_text,
    request_anthropic_to_responses,
    request_gemini_roundtrip,
    request_gemini_stream_to_openai,
    request_gemini_to_anthropic,
    request_gemini_to_openai_conformance_tool,
    request_openai_roundtrip,
    request_openai_to_anthropic,
    request_openai_to_anthropic_conformance_mixed,
    request_responses_roundtrip,
    request_responses_to_anthropic,
    request_responses_to_openai,
    response_anthropic_roundtrip,
    response_anthropic_thinking_tools_cached_to_openai,
    response_anthropic_to_gemini,
    response_anthropic_to_openai,
    response_anthropic_to_responses,
    response_gemini_to_anthropic,
    response_gemini_to_openai,
    response_openai_reasoning_to_gemini,
    response_openai_reasoning_tools_cached_to_anthropic,
    response_openai_roundtrip,
    response_openai_to_anthropic,
    response_openai_to_responses,
    response_responses_to_anthropic,
    response_responses_to_openai,
    stream_anthropic_full_roundtrip,
    stream_anthropic_full_to_openai,
    stream_anthropic_full_to_responses,
    stream_anthropic_overloaded_to_gemini,
    stream_anthropic_overloaded_to_openai,
    stream_anthropic_overloaded_to_responses,
    stream_anthropic_to_gemini,
    stream_gemini_cut_off_to_openai,
    stream_gemini_to_anthropic,
    stream_gemini_to_openai,
    stream_openai_cut_off_to_anthropic,
    stream_openai_parallel_tools_to_responses,
    stream_openai_reasoning_cached_to_anthropic,
    stream_openai_tool_call_roundtrip,
    stream_openai_tool_call_to_anthropic,
    stream_openai_tool_calls_to_gemini,
    stream_responses_failed_to_openai,
    stream_responses_full_to_anthropic,
    stream_responses_full_to_openai,
);

/// A fixture without a test would silently check nothing.
#[test]
fn every_fixture_has_a_test() {
    let dir = format!("{}/tests/golden", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter_map(|f| f.strip_suffix(".json").map(str::to_owned))
        .collect();
    files.sort();
    let mut cases: Vec<&str> = CASES.to_vec();
    cases.sort();
    assert_eq!(files, cases);
}
