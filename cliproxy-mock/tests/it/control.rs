//! Observation: hit counters, recorded requests, control endpoints and the binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use cliproxy_mock::{MockServer, directive};
use serde_json::{Value, json};

use crate::common::{anthropic, anthropic_body, anthropic_oauth, client, json_of, openai, openai_body, status_json};

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
    assert_eq!(hits["total"], 6);
    assert_eq!(hits["cancelled"], 0);
    assert_eq!(hits["by_key"], json!({"sk-1": 3, "sk-bad": 1, "sk-2": 1}));
    assert_eq!(
        hits["by_endpoint"],
        json!({
            "/v1/chat/completions": {"total": 5, "by_key": {"sk-1": 3, "sk-bad": 1}},
            "/v1/messages": {"total": 1, "by_key": {"sk-2": 1}},
        })
    );
    assert_eq!(mock.endpoint_hits("/v1/chat/completions"), 5);
    assert_eq!(mock.endpoint_hits_for("/v1/chat/completions", "sk-1"), 3);
    assert_eq!(mock.endpoint_hits_for("/v1/messages", "sk-1"), 0);

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
        .args(["--port", "0", "--host", "127.0.0.1", "--codex-base=/api/codex"])
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
    let codex = client()
        .post(format!("{url}/api/codex/responses"))
        .bearer_auth("codex-1")
        .header("chatgpt-account-id", "acct")
        .header("openai-beta", "responses=experimental")
        .header("originator", "codex_cli_rs")
        .header("session_id", "s")
        .header("version", "1")
        .header("accept", "text/event-stream")
        .json(&json!({"model": "gpt-5-codex", "input": "hi", "stream": true, "store": false}))
        .send()
        .await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(answer.unwrap().status(), 200);
    let hits: Value = hits.unwrap().json().await.unwrap();
    assert_eq!(hits["by_key"]["sk-1"], 1);
    assert_eq!(codex.unwrap().status(), 200, "Codex is served under --codex-base");
}

#[tokio::test]
async fn accounts_are_scripted_over_http() {
    let mock = MockServer::start().await;
    let base = format!("{}/__mock/accounts", mock.url());
    let (status, issued) =
        status_json(client().post(format!("{base}/claude")).json(&json!({"email": "http@example.com"}))).await;
    assert_eq!(status, 200);
    assert_eq!(issued["account"]["email"], "http@example.com");
    let token = issued["access_token"].as_str().unwrap().to_owned();
    let (status, minted) = status_json(client().post(format!("{base}/codex"))).await;
    assert_eq!(status, 200, "an empty body mints a fresh account");
    assert!(minted["id_token"].is_string());
    let listed: Value = json_of(client().get(format!("{base}/claude"))).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["email"], "http@example.com");

    let body = anthropic_body(&json!({}), false);
    let fault = json!({"email": "http@example.com", "fault": {"kind": "rate_limit", "retry_after": 60}});
    let r = client().post(format!("{base}/claude/fault")).json(&fault).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let r = anthropic_oauth(&mock, &token, &body).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["anthropic-ratelimit-unified-5h-status"].to_str().unwrap()),
        (429, "rejected")
    );
    let clear = json!({"email": "http@example.com", "fault": null});
    assert_eq!(client().post(format!("{base}/claude/fault")).json(&clear).send().await.unwrap().status(), 204);
    assert_eq!(anthropic_oauth(&mock, &token, &body).send().await.unwrap().status(), 200);

    let expire = client().post(format!("{base}/claude/expire")).json(&json!({"access_token": token}));
    assert_eq!(expire.send().await.unwrap().status(), 204);
    let (status, v) = status_json(anthropic_oauth(&mock, &token, &body)).await;
    assert_eq!(status, 401);
    assert!(v["error"]["message"].as_str().unwrap().starts_with("OAuth token has expired"));

    for (path, request, expected) in [
        ("nobody/expire", json!({"access_token": "x"}), 404),
        ("claude/expire", json!({"access_token": "never-issued"}), 404),
        ("claude/revoke", json!({"email": "nobody@example.com"}), 404),
        ("claude/revoke", json!({}), 400),
        ("claude/fault", json!({"email": "http@example.com", "fault": {"status": 42}}), 400),
        ("claude/fault", json!({"email": "http@example.com", "faults": {}}), 400),
        ("claude/explode", json!({}), 404),
    ] {
        let r = client().post(format!("{base}/{path}")).json(&request).send().await.unwrap();
        assert_eq!(r.status(), expected, "{path} {request}");
    }
    assert_eq!(
        client()
            .post(format!("{base}/claude/revoke"))
            .json(&json!({"email": "http@example.com"}))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );

    // A token-endpoint fault for a Google account.
    let (_, google) =
        status_json(client().post(format!("{base}/google")).json(&json!({"email": "g@example.com"}))).await;
    let fault = json!({"email": "g@example.com", "fault": {"status": 503}});
    assert_eq!(client().post(format!("{base}/google/token_fault")).json(&fault).send().await.unwrap().status(), 204);
    let refresh = format!(
        "grant_type=refresh_token&client_id=c&client_secret=s&refresh_token={}",
        google["refresh_token"].as_str().unwrap()
    );
    let (status, v) = status_json(client().post(format!("{}/token", mock.url())).body(refresh)).await;
    assert_eq!((status, v["error"].as_str()), (503, Some("temporarily_unavailable")));
}
