//! How bodies go on the wire: splits, chunks, hangs, broken streams and cancellation.

use std::time::{Duration, Instant};

use cliproxy_mock::MockServer;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::common::{anthropic, anthropic_body, data_frames, named_events, openai, openai_body, read_pieces, text_of};

/// `text` with the completion id and `created` of `like` (both taken from the first frame), so
/// two answers to the same script compare byte for byte.
fn with_identity_of(text: &str, like: &str) -> String {
    let first = |t: &str| data_frames(t)[0].clone();
    let (a, b) = (first(text), first(like));
    text.replace(a["id"].as_str().unwrap(), b["id"].as_str().unwrap())
        .replace(&format!("\"created\":{}", a["created"]), &format!("\"created\":{}", b["created"]))
}

#[tokio::test]
async fn split_body_has_the_same_bytes_cut_where_asked() {
    let mock = MockServer::start().await;
    let reply = "Split me into pieces, 分割 please 🎉";
    let plain = text_of(openai(&mock, "sk-1", &openai_body(&json!({"reply": reply}), true))).await;
    let offsets = [1, 7, 50, 51, 200, 333, 1_000_000];
    let response =
        openai(&mock, "sk-1", &openai_body(&json!({"reply": reply, "split": offsets}), true)).send().await.unwrap();
    let (body, ends, errored) = read_pieces(response).await;
    assert!(!errored);
    let split = String::from_utf8(body).unwrap();
    assert_eq!(with_identity_of(&plain, &split), split);
    for offset in offsets.into_iter().filter(|&o| o < split.len()) {
        assert!(ends.contains(&offset), "no read ended at {offset}: {ends:?}");
    }
}

#[tokio::test]
async fn chunked_json_body_arrives_whole() {
    let mock = MockServer::start().await;
    let d = json!({"reply": "small pieces", "chunk": 16, "usage": {"input": 3}});
    let response = anthropic(&mock, "sk-ant-1", &anthropic_body(&d, false)).send().await.unwrap();
    let length: usize = response.headers()["content-length"].to_str().unwrap().parse().unwrap();
    let (body, _, errored) = read_pieces(response).await;
    assert!(!errored);
    assert_eq!(body.len(), length);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["content"][0]["text"], "small pieces");

    let d = json!({"reply": "one byte at a time: ü", "chunk": 1});
    let response = anthropic(&mock, "sk-ant-1", &anthropic_body(&d, true)).send().await.unwrap();
    let (body, ends, errored) = read_pieces(response).await;
    assert!(!errored);
    assert_eq!(ends.len(), body.len(), "one read per byte");
    let text: String = named_events(std::str::from_utf8(&body).unwrap())
        .iter()
        .filter_map(|(_, e)| e["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "one byte at a time: ü");
}

#[tokio::test]
async fn hang_delays_the_status_line() {
    let mock = MockServer::start().await;
    let d = json!({"fault": {"hang_ms": 300}});
    let started = Instant::now();
    let response = openai(&mock, "sk-1", &openai_body(&d, false)).send().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(response.status(), 200);
    let v: Value = response.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from the mock.");
}

#[tokio::test]
async fn stream_error_after_sends_an_in_stream_error() {
    let mock = MockServer::start().await;
    let d = json!({"fault": {"stream_error_after": 2}});
    let response = openai(&mock, "sk-1", &openai_body(&d, true)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let frames = data_frames(&response.text().await.unwrap());
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[2]["error"]["type"], "server_error");

    let response = anthropic(&mock, "sk-ant-1", &anthropic_body(&d, true)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let events = named_events(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["message_start", "ping", "error"]);
    assert_eq!(events[2].1["error"]["type"], "overloaded_error");

    let response = anthropic(&mock, "sk-ant-1", &anthropic_body(&d, false)).send().await.unwrap();
    assert_eq!(response.status(), 529);
}

#[tokio::test]
async fn cut_after_closes_the_connection_mid_stream() {
    let mock = MockServer::start().await;
    let d = json!({"fault": {"cut_after": 3}});
    for response in
        [openai(&mock, "sk-1", &openai_body(&d, true)), anthropic(&mock, "sk-ant-1", &anthropic_body(&d, true))]
    {
        let response = response.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let (body, _, errored) = read_pieces(response).await;
        assert!(errored, "the body must end in an error");
        let text = String::from_utf8(body).unwrap();
        assert_eq!(text.matches("\n\n").count(), 3, "{text}");
        assert!(!text.contains("[DONE]") && !text.contains("message_stop"));
    }
    let response = openai(&mock, "sk-1", &openai_body(&d, false)).send().await.unwrap();
    assert!(response.bytes().await.is_err());
    assert_eq!(mock.cancelled(), 0, "a cut is not a cancellation");
}

#[tokio::test]
async fn delay_paces_events_and_dropping_the_stream_counts_as_cancelled() {
    let mock = MockServer::start().await;
    let fast = openai(&mock, "sk-1", &openai_body(&json!({"delay_ms": 5}), true)).send().await.unwrap();
    let (_, ends, _) = read_pieces(fast).await;
    assert!(ends.len() >= 5, "events arrive separately: {ends:?}");
    assert_eq!(mock.cancelled(), 0);

    let d = json!({"reply": "x".repeat(400), "delay_ms": 20});
    let response = openai(&mock, "sk-1", &openai_body(&d, true)).send().await.unwrap();
    let mut stream = response.bytes_stream();
    stream.next().await.unwrap().unwrap();
    stream.next().await.unwrap().unwrap();
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(3);
    while mock.cancelled() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(mock.cancelled(), 1);
}

#[tokio::test]
async fn per_key_faults_and_explicit_answers() {
    let mock = MockServer::start().await;
    let d = json!({
        "fault": {"status": 418, "headers": {"x-teapot": "yes"}, "body": {"custom": true}},
        "per_key": {"sk-limited": {"kind": "rate_limit"}, "sk-text": {"status": 403, "body": "forbidden: plain"}}
    });
    let body = openai_body(&d, false);
    let teapot = openai(&mock, "sk-other", &body).send().await.unwrap();
    assert_eq!(teapot.status(), 418);
    assert_eq!(teapot.headers()["x-teapot"], "yes");
    assert!(teapot.headers().contains_key("x-request-id"));
    assert_eq!(teapot.json::<Value>().await.unwrap(), json!({"custom": true}));
    let limited = openai(&mock, "sk-limited", &body).send().await.unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "30");
    let text = openai(&mock, "sk-text", &body).send().await.unwrap();
    assert_eq!(text.status(), 403);
    assert_eq!(text.text().await.unwrap(), "forbidden: plain");
    let (a, b, c) = (mock.hits("sk-other"), mock.hits("sk-limited"), mock.hits("sk-text"));
    assert_eq!((a, b, c), (1, 1, 1));
}
