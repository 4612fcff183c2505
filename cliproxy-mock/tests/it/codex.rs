//! Codex: the ChatGPT OAuth server (form-encoded token endpoint, PKCE, rotating refresh tokens, JWTs naming
//! the account) and the Responses endpoint (headers, event sequence, usage windows, usage limits, faults).

use std::time::{SystemTime, UNIX_EPOCH};

use cliproxy_mock::accounts::{Issued, Mint, pkce_challenge};
use cliproxy_mock::codex::{AUTH_CLAIM, CLIENT_ID};
use cliproxy_mock::{Fault, FaultKind, IdP, MockServer, Options, directive, jwt};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::common::{authorize, client, named_events, post_form, read_pieces, split_text, status_json, text_of};

const REDIRECT: &str = "http://localhost:1455/auth/callback";
const VERIFIER: &str = "codex-verifier-abcdefghijklmnopqrstuvwxyz-0123456789";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A Responses request with every header the Codex CLI sends.
fn responses(mock: &MockServer, token: &str, account_id: &str, body: &Value) -> reqwest::RequestBuilder {
    client()
        .post(format!("{}/responses", mock.codex_base()))
        .bearer_auth(token)
        .header("chatgpt-account-id", account_id)
        .header("openai-beta", "responses=experimental")
        .header("originator", "codex_cli_rs")
        .header("session_id", "0199c3a4-6f0e-7d31-9a61-0c5b2f6c1e07")
        .header("version", "0.50.0")
        .header("accept", "text/event-stream")
        .json(body)
}

fn body(d: &Value) -> Value {
    json!({
        "model": "gpt-5-codex", "instructions": "You are Codex.",
        "input": [{"type": "message", "role": "user",
            "content": [{"type": "input_text", "text": format!("Fix the bug. {}", directive(d))}]}],
        "tools": [], "tool_choice": "auto", "parallel_tool_calls": false,
        "reasoning": {"effort": "medium", "summary": "auto"}, "store": false, "stream": true,
        "include": ["reasoning.encrypted_content"],
    })
}

fn mint(mock: &MockServer) -> Issued {
    mock.accounts(IdP::Codex).mint(Mint::default())
}

#[tokio::test]
async fn form_token_exchange_checks_pkce_and_issues_jwts_naming_the_account() {
    let mock = MockServer::start().await;
    let challenge = pkce_challenge(VERIFIER);
    let query = [
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile email offline_access"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("id_token_add_organizations", "true"),
        ("codex_cli_simplified_flow", "true"),
        ("state", "st-9"),
    ];
    let back = authorize(&mock, "/oauth/authorize", &query).await;
    assert_eq!(back["state"], "st-9");
    let code = back["code"].as_str();
    let exchange = |verifier: &'static str| {
        post_form(
            &mock,
            "/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("client_id", CLIENT_ID),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ],
        )
    };
    let (status, v) = status_json(exchange("not-the-verifier")).await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_grant")));

    let (status, tokens) = status_json(exchange(VERIFIER)).await;
    assert_eq!(status, 200, "{tokens}");
    let v = &tokens;
    let account = mock.accounts(IdP::Codex).list().pop().unwrap();
    let id_claims = jwt::decode(v["id_token"].as_str().unwrap()).expect("a well-formed, correctly signed JWT");
    assert_eq!(id_claims["email"], account.email.as_str());
    assert_eq!(id_claims[AUTH_CLAIM]["chatgpt_account_id"], account.id.as_str());
    assert_eq!(id_claims[AUTH_CLAIM]["chatgpt_plan_type"], "plus");
    assert_eq!(id_claims["aud"][0], CLIENT_ID);
    let access_claims = jwt::decode(v["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(access_claims[AUTH_CLAIM]["chatgpt_account_id"], account.id.as_str());
    assert!(access_claims["exp"].as_u64().unwrap() >= now() + 863_000);
    assert!(v["refresh_token"].as_str().unwrap().starts_with("rt_"));
    assert_eq!(v["expires_in"], 864_000);

    let (status, again) = status_json(exchange(VERIFIER)).await;
    assert_eq!((status, again["error"].as_str()), (400, Some("invalid_grant")), "a code works once");
    // The issued token works on the Responses endpoint.
    let access = tokens["access_token"].as_str().unwrap();
    let answer = responses(&mock, access, &account.id, &body(&json!({}))).send().await.unwrap();
    assert_eq!(answer.status(), 200);
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_is_refresh_token_reused() {
    let mock = MockServer::start().await;
    let first = mint(&mock);
    let old = first.refresh_token.clone().unwrap();
    // The Codex CLI refreshes with a JSON body, other clients with a form: both are taken.
    let json_refresh = |rt: &str| {
        client().post(format!("{}/oauth/token", mock.url())).json(
            &json!({"client_id": CLIENT_ID, "grant_type": "refresh_token", "refresh_token": rt, "scope": "openid profile email"}),
        )
    };
    let (status, second) = status_json(json_refresh(&old)).await;
    assert_eq!(status, 200, "{second}");
    let new = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(jwt::decode(second["id_token"].as_str().unwrap()).is_some());

    let (status, v) = status_json(json_refresh(&old)).await;
    assert_eq!(status, 401);
    assert_eq!(v["error"]["code"], "refresh_token_reused");
    let (status, v) = status_json(post_form(
        &mock,
        "/oauth/token",
        &[("grant_type", "refresh_token"), ("client_id", CLIENT_ID), ("refresh_token", "rt_never_issued")],
    ))
    .await;
    assert_eq!((status, v["error"].as_str()), (400, Some("invalid_grant")));

    let (status, third) = status_json(post_form(
        &mock,
        "/oauth/token",
        &[("grant_type", "refresh_token"), ("client_id", CLIENT_ID), ("refresh_token", &new)],
    ))
    .await;
    assert_eq!(status, 200);
    assert!(mock.accounts(IdP::Codex).revoke(&first.account.email));
    let (status, v) = status_json(json_refresh(third["refresh_token"].as_str().unwrap())).await;
    assert_eq!((status, v["error"]["code"].as_str()), (401, Some("refresh_token_invalidated")));
    assert_eq!(mock.endpoint_hits("/oauth/token"), 5);
}

#[tokio::test]
async fn responses_stream_the_event_sequence_with_usage_windows() {
    let mock = MockServer::start().await;
    let issued = mint(&mock);
    let args = json!({"cmd": ["rg", "-n", "TODO"], "workdir": "/tmp/ü"});
    let d = json!({"thinking": "Search first.", "reply": "Let me look — 見る.",
        "tool_calls": [{"name": "shell", "arguments": args}], "usage": {"input": 40, "output": 12, "cached": 8}});
    let response = responses(&mock, &issued.access_token, &issued.account.id, &body(&d)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let h = response.headers().clone();
    assert_eq!(h["content-type"], "text/event-stream");
    assert_eq!(h["x-codex-primary-window-minutes"], "300");
    assert_eq!(h["x-codex-secondary-window-minutes"], "10080");
    for window in ["primary", "secondary"] {
        for field in ["used-percent", "reset-at", "reset-after-seconds"] {
            assert!(h.contains_key(format!("x-codex-{window}-{field}").as_str()), "{window} {field}");
        }
    }
    let events = named_events(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..3], ["response.created", "response.in_progress", "response.output_item.added"]);
    assert_eq!(names.last(), Some(&"response.completed"));
    for (n, (_, e)) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], n);
    }
    let joined = |name: &str| -> String {
        events.iter().filter(|(n, _)| n == name).map(|(_, e)| e["delta"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(joined("response.reasoning_summary_text.delta"), "Search first.");
    assert_eq!(joined("response.output_text.delta"), "Let me look — 見る.");
    let arguments = joined("response.function_call_arguments.delta");
    assert_eq!(serde_json::from_str::<Value>(&arguments).unwrap(), args);
    assert!(events.iter().filter(|(n, _)| n == "response.function_call_arguments.delta").count() > 2);
    let call_done =
        events.iter().find(|(n, e)| n == "response.output_item.done" && e["item"]["type"] == "function_call").unwrap();
    assert_eq!(call_done.1["item"]["name"], "shell");
    assert_eq!(call_done.1["item"]["call_id"], "call_0");
    assert_eq!(call_done.1["item"]["arguments"], arguments.as_str());
    let item_types: Vec<&str> = events
        .iter()
        .filter(|(n, _)| n == "response.output_item.added")
        .map(|(_, e)| e["item"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(item_types, ["reasoning", "message", "function_call"]);

    let done = &events.last().unwrap().1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["model"], "gpt-5-codex");
    assert_eq!(done["usage"]["input_tokens"], 40);
    assert_eq!(done["usage"]["input_tokens_details"]["cached_tokens"], 8);
    assert_eq!(done["usage"]["output_tokens"], 12);
    assert_eq!(done["usage"]["total_tokens"], 52);
    assert!(done["usage"]["output_tokens_details"]["reasoning_tokens"].as_u64().unwrap() > 0);
    assert!(done["output"][0]["encrypted_content"].is_string(), "asked for in `include`");
    assert_eq!(mock.hits(&issued.access_token), 1);

    // Cut by the token limit, the response ends `incomplete`.
    let text =
        text_of(responses(&mock, &issued.access_token, &issued.account.id, &body(&json!({"finish": "length"})))).await;
    let last = named_events(&text).pop().unwrap();
    assert_eq!(last.0, "response.incomplete");
    assert_eq!(last.1["response"]["incomplete_details"]["reason"], "max_output_tokens");
}

#[tokio::test]
async fn responses_check_the_codex_headers_and_body() {
    let mock = MockServer::start().await;
    let issued = mint(&mock);
    let (token, account_id) = (issued.access_token.as_str(), issued.account.id.as_str());
    let url = format!("{}/responses", mock.codex_base());
    let full = [
        ("chatgpt-account-id", account_id),
        ("openai-beta", "responses=experimental"),
        ("originator", "codex_cli_rs"),
        ("session_id", "s-1"),
        ("version", "0.50.0"),
        ("accept", "text/event-stream"),
    ];
    for left_out in 0..full.len() {
        let mut request = client().post(&url).bearer_auth(token).json(&body(&json!({})));
        for (n, (name, value)) in full.iter().enumerate() {
            if n != left_out {
                request = request.header(*name, *value);
            }
        }
        let (status, v) = status_json(request).await;
        assert_eq!(status, 400, "without {}", full[left_out].0);
        assert!(v["detail"].as_str().unwrap().contains(full[left_out].0), "{v}");
    }
    let (status, v) = status_json(responses(&mock, token, "another-account", &body(&json!({})))).await;
    assert_eq!(status, 403, "{v}");

    for (change, detail) in [
        (json!({"stream": false}), "Stream must be set to true"),
        (json!({"store": true}), "Store must be set to false"),
        (json!({"model": "gpt-4o"}), "The 'gpt-4o' model is not supported when using Codex with a ChatGPT account."),
    ] {
        let mut b = body(&json!({}));
        for (k, v) in change.as_object().unwrap() {
            b[k] = v.clone();
        }
        let (status, v) = status_json(responses(&mock, token, account_id, &b)).await;
        assert_eq!((status, v["detail"].as_str()), (400, Some(detail)));
    }
    let (status, v) = status_json(responses(&mock, "garbage-invalid", account_id, &body(&json!({})))).await;
    assert_eq!((status, v["detail"].as_str()), (401, Some("Unauthorized")));
}

#[tokio::test]
async fn usage_limit_reached_carries_resets_at_and_a_full_primary_window() {
    let mock = MockServer::start().await;
    let issued = mint(&mock);
    let (token, account_id) = (issued.access_token.as_str(), issued.account.id.as_str());
    let d = json!({"fault": {"kind": "quota", "retry_after": 7200}});
    let response = responses(&mock, token, account_id, &body(&d)).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["x-codex-primary-used-percent"], "100");
    assert_eq!(response.headers()["x-codex-primary-reset-after-seconds"], "7200");
    let v: Value = response.json().await.unwrap();
    assert_eq!(v["error"]["type"], "usage_limit_reached");
    assert_eq!(v["error"]["resets_in_seconds"], 7200);
    let resets_at = v["error"]["resets_at"].as_u64().unwrap();
    assert!((now() + 7195..=now() + 7205).contains(&resets_at));
    assert_eq!(v["error"]["plan_type"], "plus");

    // Scripted for the account instead of the request.
    let fault = Fault { kind: Some(FaultKind::Quota), ..Fault::default() };
    assert!(mock.accounts(IdP::Codex).set_fault(&issued.account.email, Some(fault)));
    let (status, v) = status_json(responses(&mock, token, account_id, &body(&json!({})))).await;
    assert_eq!((status, v["error"]["type"].as_str()), (429, Some("usage_limit_reached")));
    mock.accounts(IdP::Codex).set_fault(&issued.account.email, None);

    let d = json!({"fault": {"kind": "rate_limit", "retry_after": 9}});
    let response = responses(&mock, token, account_id, &body(&d)).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "9");
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn an_expired_token_gets_401_and_the_refreshed_one_works() {
    let mock = MockServer::start().await;
    let issued = mint(&mock);
    assert!(mock.accounts(IdP::Codex).expire(&issued.access_token));
    let (status, v) = status_json(responses(&mock, &issued.access_token, &issued.account.id, &body(&json!({})))).await;
    assert_eq!(status, 401);
    assert_eq!(v["detail"]["code"], "token_expired");
    let refresh = [("grant_type", "refresh_token"), ("client_id", CLIENT_ID)];
    let rt = issued.refresh_token.as_deref().unwrap();
    let (_, fresh) =
        status_json(post_form(&mock, "/oauth/token", &[refresh[0], refresh[1], ("refresh_token", rt)])).await;
    let response = responses(&mock, fresh["access_token"].as_str().unwrap(), &issued.account.id, &body(&json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn broken_and_split_streams() {
    let mock = MockServer::start().await;
    let issued = mint(&mock);
    let send = |d: Value| responses(&mock, &issued.access_token, &issued.account.id, &body(&d)).send();

    let text = send(json!({"reply": "abcdefghijkl", "fault": {"stream_error_after": 4}})).await.unwrap().text().await;
    let events = named_events(&text.unwrap());
    assert_eq!(events.len(), 5);
    assert_eq!(events[4].0, "response.failed");
    assert_eq!(events[4].1["sequence_number"], 4);
    assert_eq!(events[4].1["response"]["status"], "failed");
    assert_eq!(events[4].1["response"]["error"]["code"], "server_error");

    let (body_bytes, _, errored) = read_pieces(send(json!({"fault": {"cut_after": 3}})).await.unwrap()).await;
    assert!(errored);
    assert_eq!(String::from_utf8(body_bytes).unwrap().matches("\n\n").count(), 3);

    let d = json!({"reply": "déjà vu — 日本語 🎉", "thinking": "ünïcödé", "usage": {"input": 5, "output": 5}});
    let plain = named_events(&send(d.clone()).await.unwrap().text().await.unwrap());
    let mut split = d.clone();
    split["chunk"] = json!(3);
    let pieces = named_events(&split_text(send(split).await.unwrap(), 3).await);
    let shape = |events: &[(String, Value)]| -> Vec<(String, Value)> {
        events.iter().map(|(n, e)| (n.clone(), e.get("delta").cloned().unwrap_or(Value::Null))).collect()
    };
    assert_eq!(shape(&pieces), shape(&plain));
}

#[tokio::test]
async fn the_base_path_is_configurable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mock = MockServer::start_with(listener, Options { codex_base: "/api/codex".into() }).await;
    assert_eq!(mock.codex_base(), format!("{}/api/codex", mock.url()));
    let response = responses(&mock, "codex-token", "acct-1", &body(&json!({"reply": "here"}))).send().await.unwrap();
    assert_eq!(response.status(), 200, "a token the mock did not issue is judged by its spelling");
    let default = client().post(format!("{}/backend-api/codex/responses", mock.url())).send().await.unwrap();
    assert_eq!(default.status(), 404);
}
