//! Observation: hit counters, recorded requests, control endpoints and the binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use cliproxy_mock::{MockServer, directive};
use serde_json::{Value, json};

use crate::common::{anthropic, anthropic_body, client, json_of, openai, openai_body};

#[tokio::test]
async fn hits_count_per_key_even_for_errors() {
    let mock = MockServer::start().await;
    let ok = openai_body(&json!({}), false);
    for _ in 0..3 {
        openai(&mock, "sk-1", &ok).send().await.unwrap();
    }
    openai(&mock, "sk-bad", &ok).send().await.unwrap();
    let limited = anthropic_body(&json!({"fault": {"kind": "rate_limit"}}), false);
    anthropic(&mock, "sk-2", &limited).send().await.unwrap();
    client().post(format!("{}/v1/chat/completions", mock.url())).json(&ok).send().await.unwrap();
    assert_eq!(mock.hits("sk-1"), 3);
    assert_eq!(mock.hits("sk-bad"), 1);
    assert_eq!(mock.hits("sk-2"), 1);
    assert_eq!(mock.hits("sk-none"), 0);
    assert_eq!(mock.total_hits(), 6);

    let hits: Value = json_of(client().get(format!("{}/__mock/hits", mock.url()))).await;
    assert_eq!(hits, json!({"total": 6, "cancelled": 0, "by_key": {"sk-1": 3, "sk-bad": 1, "sk-2": 1}}));

    let reset = client().post(format!("{}/__mock/reset", mock.url())).send().await.unwrap();
    assert!(reset.status().is_success());
    assert_eq!((mock.total_hits(), mock.hits("sk-1")), (0, 0));
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn requests_are_recorded() {
    let mock = MockServer::start().await;
    let body = openai_body(&json!({"reply": "r"}), false);
    client()
        .post(format!("{}/v1/chat/completions?trace=1", mock.url()))
        .bearer_auth("sk-1")
        .header("x-custom", "yes")
        .json(&body)
        .send()
        .await
        .unwrap();
    let recorded = mock.requests();
    assert_eq!(recorded.len(), 1);
    let r = &recorded[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/v1/chat/completions"));
    assert_eq!(r.query, "trace=1");
    assert_eq!(r.header("authorization"), Some("Bearer sk-1"));
    assert_eq!(r.header("X-Custom"), Some("yes"));
    assert_eq!(r.json().unwrap(), body);

    let listed: Value = json_of(client().get(format!("{}/__mock/requests", mock.url()))).await;
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "control requests are not recorded");
    assert_eq!(listed[0]["path"], "/v1/chat/completions");
    let sent: Value = serde_json::from_str(listed[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent, body);
    assert!(listed[0]["headers"].as_array().unwrap().iter().any(|h| h[0] == "x-custom"));
}

#[test]
fn directive_text_is_marker_and_compact_json() {
    assert_eq!(directive(&json!({"reply": "a b"})), r#"mock:{"reply":"a b"}"#);
}

#[tokio::test]
async fn binary_prints_where_it_listens_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cliproxy-mock"))
        .args(["--port", "0", "--host", "127.0.0.1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the binary");
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let url =
        line.trim_end().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line was {line:?}")).to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let answer = client()
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth("sk-1")
        .json(&openai_body(&json!({}), false))
        .send()
        .await;
    let hits = client().get(format!("{url}/__mock/hits")).send().await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(answer.unwrap().status(), 200);
    let hits: Value = hits.unwrap().json().await.unwrap();
    assert_eq!(hits["by_key"]["sk-1"], 1);
}
