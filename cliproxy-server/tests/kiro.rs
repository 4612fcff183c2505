//! Kiro through the real server against the mock's SSO-OIDC, auth service and both API hosts: translation
//! both ways with tool calls, fallback host, every error class, refresh, token files and device logins.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::*;

const TOOLS: &str = r#"[{"type":"function","function":{"name":"get_weather","description":"Weather by city",
    "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]"#;

/// Config with the Kiro hosts on the mock, a private auth-dir and `accounts` (YAML list items).
fn config(auth_dir: &std::path::Path, accounts: &str, extra: &str) -> String {
    format!(
        r#"
api-keys: ["{CLIENT_KEY}"]
remote-management: {{ secret-key: "{MGMT}" }}
auth-dir: "{dir}"
request-retry: 3
max-retry-interval: 0
timeouts: {{ first-byte-seconds: 5, idle-seconds: 5 }}
kiro-endpoints:
  oidc-base-url: "{{MOCK}}/kiro/oidc/{{region}}"
  auth-base-url: "{{MOCK}}/kiro/auth/{{region}}"
  api-base-url: "{{MOCK}}/kiro/q/{{region}}"
  fallback-api-base-url: "{{MOCK}}/kiro/cw/{{region}}"
kiro:
{accounts}
{extra}
"#,
        dir = auth_dir.display()
    )
}

async fn kiro_rig(accounts: &str, extra: &str) -> (Rig, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let rig = start_with(&config(&dir.path().join("auths"), accounts, extra)).await;
    (rig, dir)
}

fn generate_requests(rig: &Rig) -> Vec<cliproxy_mock::RecordedRequest> {
    rig.mock.requests().into_iter().filter(|r| r.path.ends_with("/generateAssistantResponse")).collect()
}

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")))
}

async fn credentials(rig: &Rig) -> Vec<Value> {
    rig.management("/v0/management/credentials").await["credentials"].as_array().unwrap().clone()
}

#[tokio::test]
async fn openai_stream_tool_call_arrives_whole_through_kiro() {
    let (rig, _d) = kiro_rig("  - access-token: aoaTEST-plain-1", "").await;
    let args = json!({"city": "東京", "days": [1, 2, 3]});
    let mut body = chat_body(
        "kiro-claude-sonnet-4-5",
        &say(json!({"reply": "Checking.", "tool_calls": [{"name": "get_weather", "arguments": args}], "chunk": 7})),
        true,
    );
    body["tools"] = serde_json::from_str(TOOLS).unwrap();
    body["stream_options"] = json!({"include_usage": true});
    let r = rig.chat(&body).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let (mut name, mut arguments, mut finish, mut usage) = (String::new(), String::new(), None, None);
    for (_, data) in sse_events(&text) {
        if data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(&data).unwrap();
        if let Some(c) = v["choices"].get(0) {
            for tc in c["delta"]["tool_calls"].as_array().into_iter().flatten() {
                name.push_str(tc["function"]["name"].as_str().unwrap_or(""));
                arguments.push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
            }
            if let Some(f) = c["finish_reason"].as_str() {
                finish = Some(f.to_owned());
            }
        }
        if v["usage"].is_object() {
            usage = Some(v["usage"].clone());
        }
    }
    assert_eq!(openai_stream_text(&text), "Checking.");
    assert_eq!(name, "get_weather");
    assert_eq!(serde_json::from_str::<Value>(&arguments).unwrap(), args);
    assert_eq!(finish.as_deref(), Some("tool_calls"));
    let usage = usage.expect("usage chunk");
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0 && usage["completion_tokens"].as_u64().unwrap() > 0);

    let reqs = generate_requests(&rig);
    assert_eq!(reqs.len(), 1);
    let req = &reqs[0];
    assert_eq!(req.path, "/kiro/q/us-east-1/generateAssistantResponse");
    assert!(req.header("x-amz-target").is_none(), "the primary host takes no X-Amz-Target");
    assert!(req.header("user-agent").unwrap().starts_with("aws-sdk-js/"));
    assert!(req.header("x-amz-user-agent").unwrap().contains("KiroIDE-"));
    assert_eq!(req.header("amz-sdk-request"), Some("attempt=1; max=3"));
    assert_eq!(req.header("x-amzn-kiro-agent-mode"), Some("vibe"));
    assert_eq!(req.header("x-amzn-codewhisperer-optout"), Some("true"));
    assert_eq!(req.header("amz-sdk-invocation-id").unwrap().len(), 36);
    let sent = req.json().unwrap();
    let current = &sent["conversationState"]["currentMessage"]["userInputMessage"];
    assert_eq!(current["modelId"], "claude-sonnet-4.5");
    assert_eq!(current["origin"], "AI_EDITOR");
    assert_eq!(current["userInputMessageContext"]["tools"][0]["toolSpecification"]["name"], "get_weather");
    assert!(sent.get("profileArn").is_none(), "no profile ARN is known for this account");
}

#[tokio::test]
async fn anthropic_messages_with_thinking_and_tools_stream_and_json() {
    let (rig, _d) = kiro_rig("  - access-token: aoaTEST-plain-2", "").await;
    let directive = say(json!({"reply": "Sunny.", "thinking": "The user wants weather.",
        "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}));
    let mut body = json!({"model": "claude-sonnet-4-5", "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": directive}]});
    let (status, v) = json_of(rig.messages(&body).await).await;
    assert_eq!(status, 200, "{v}");
    let kinds: Vec<&str> = v["content"].as_array().unwrap().iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["thinking", "text", "tool_use"], "{v}");
    assert_eq!(v["content"][0]["thinking"], "The user wants weather.");
    assert_eq!(v["content"][1]["text"], "Sunny.");
    assert_eq!(v["content"][2]["input"], json!({"city": "Paris"}));
    assert_eq!(v["stop_reason"], "tool_use");
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0 && v["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let sent = generate_requests(&rig)[0].json().unwrap();
    let content = sent["conversationState"]["currentMessage"]["userInputMessage"]["content"].as_str().unwrap();
    assert!(content.ends_with("<max_thinking_length>2000</max_thinking_length>"), "{content}");

    body["stream"] = true.into();
    let r = rig.messages(&body).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert_eq!(anthropic_stream_text(&text), "Sunny.");
    let events = sse_events(&text);
    let thinking: String = events
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter(|v| v["delta"]["type"] == "thinking_delta")
        .map(|v| v["delta"]["thinking"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(thinking, "The user wants weather.");
    let partial: String = events
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter(|v| v["delta"]["type"] == "input_json_delta")
        .map(|v| v["delta"]["partial_json"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&partial).unwrap(), json!({"city": "Paris"}));
    assert_eq!(events.last().unwrap().0.as_deref(), Some("message_stop"));
}

#[tokio::test]
async fn every_byte_split_and_multiturn_history() {
    let (rig, _d) = kiro_rig("  - access-token: aoaTEST-plain-3", "").await;
    let text = "Grüße, 世界! 👋🏽 café ∑";
    let body = json!({"model": "kiro/kiro-claude-opus-4-5-agentic", "stream": true, "messages": [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "-3C"},
        {"role": "user", "content": say(json!({"reply": text, "chunk": 1}))}
    ], "tools": serde_json::from_str::<Value>(TOOLS).unwrap()});
    let r = rig.chat(&body).await;
    assert_eq!(r.status(), 200);
    assert_eq!(openai_stream_text(&r.text().await.unwrap()), text);
    let sent = generate_requests(&rig)[0].json().unwrap();
    let state = &sent["conversationState"];
    let history = state["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert!(history[0]["userInputMessage"]["content"].as_str().unwrap().starts_with("Be terse."));
    assert!(history[0]["userInputMessage"]["content"].as_str().unwrap().contains("at most 350 lines"));
    assert_eq!(history[1]["assistantResponseMessage"]["toolUses"][0]["input"], json!({"city": "Oslo"}));
    let current = &state["currentMessage"]["userInputMessage"];
    assert_eq!(current["modelId"], "claude-opus-4.5");
    assert_eq!(current["userInputMessageContext"]["toolResults"][0]["content"][0]["text"], "-3C");
}

#[tokio::test]
async fn models_are_listed_with_and_without_prefix() {
    let (rig, _d) = kiro_rig("  - access-token: aoaTEST-plain-4", "").await;
    let r = rig.http.get(rig.url("/v1/models")).bearer_auth(CLIENT_KEY).send().await.unwrap();
    let (_, v) = json_of(r).await;
    let ids: Vec<&str> = v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    for m in [
        "kiro-claude-sonnet-4-5",
        "kiro-claude-sonnet-4-5-agentic",
        "kiro-auto",
        "kiro-claude-opus-4-5",
        "kiro/kiro-claude-sonnet-4-5",
    ] {
        assert!(ids.contains(&m), "{m} missing from {ids:?}");
    }
    for model in ["kiro/kiro-claude-sonnet-4-5", "claude-sonnet-4.5", "CLAUDE_SONNET_4_5_20250929_V1_0"] {
        let (status, v) = json_of(rig.chat(&chat_body(model, "hi", false)).await).await;
        assert_eq!(status, 200, "{model}: {v}");
        assert_eq!(v["model"], model);
    }
}

#[tokio::test]
async fn social_account_sends_profile_arn_and_uses_its_region() {
    let accounts = r#"  - access-token: aoaSOCIAL-static-1
    profile-arn: "arn:aws:codewhisperer:eu-central-1:123456789012:profile/ABC"
    region: us-east-1"#;
    let (rig, _d) = kiro_rig(accounts, "").await;
    let (status, v) = json_of(rig.chat(&chat_body("kiro-claude-sonnet-4-5", "hi", false)).await).await;
    assert_eq!(status, 200, "{v}");
    let req = &generate_requests(&rig)[0];
    assert_eq!(req.path, "/kiro/q/eu-central-1/generateAssistantResponse", "API region comes from the ARN");
    assert_eq!(req.json().unwrap()["profileArn"], "arn:aws:codewhisperer:eu-central-1:123456789012:profile/ABC");
}

#[tokio::test]
async fn fallback_host_takes_over_when_the_primary_throttles() {
    let (rig, _d) = kiro_rig("  - access-token: aoaTEST-plain-5", "").await;
    let msg = say(json!({"reply": "from the fallback", "fault": {"kind": "rate_limit", "host": "q"}}));
    let (status, v) = json_of(rig.chat(&chat_body("kiro-claude-sonnet-4-5", &msg, false)).await).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "from the fallback");
    let reqs = generate_requests(&rig);
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/kiro/q/us-east-1/generateAssistantResponse", "/kiro/cw/us-east-1/generateAssistantResponse"]);
    assert_eq!(reqs[1].header("x-amz-target"), Some("AmazonCodeWhispererStreamingService.GenerateAssistantResponse"));
}

#[tokio::test]
async fn monthly_limit_moves_traffic_to_the_next_account_until_the_reset() {
    let accounts = "  - access-token: aoaTEST-first\n  - access-token: aoaTEST-second";
    let (rig, _d) = kiro_rig(accounts, "routing: { strategy: fill-first }").await;
    let msg = say(json!({"reply": "served", "per_key": {"aoaTEST-first": {"kind": "quota"}}}));
    let (status, v) = json_of(rig.chat(&chat_body("kiro-claude-sonnet-4-5", &msg, false)).await).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(rig.mock.hits("aoaTEST-first"), 1, "a 402 is final for the account: no fallback host");
    assert_eq!(rig.mock.hits("aoaTEST-second"), 1);
    let r = rig.http.get(rig.url("/v0/management/cooldowns")).bearer_auth(MGMT).send().await.unwrap();
    let (_, cds) = json_of(r).await;
    let cd = &cds["cooldowns"][0];
    assert_eq!(cd["credential"], "kiro:config-0");
    assert!(cd["model"].is_null(), "the whole account cools down: {cd}");
    let secs = cd["seconds_left"].as_u64().unwrap();
    assert!(secs > 0 && secs <= 31 * 86_400, "until the monthly reset: {secs}");
    // The next request goes straight to the second account.
    let (status, _) = json_of(rig.chat(&chat_body("kiro-claude-sonnet-4-5", &msg, false)).await).await;
    assert_eq!(status, 200);
    assert_eq!(rig.mock.hits("aoaTEST-first"), 1);
    assert_eq!(rig.mock.hits("aoaTEST-second"), 2);
}

#[tokio::test]
async fn suspended_account_is_disabled_with_the_reason_shown() {
    let accounts = "  - access-token: aoaTEST-suspended-1\n  - access-token: aoaTEST-fine-1";
    let (rig, _d) = kiro_rig(accounts, "routing: { strategy: fill-first }").await;
    let (status, _) = json_of(rig.chat(&chat_body("kiro-claude-sonnet-4-5", "hi", false)).await).await;
    assert_eq!(status, 200);
    let creds = credentials(&rig).await;
    let c = creds.iter().find(|c| c["id"] == "kiro:config-0").unwrap();
    assert_eq!(c["state"], "disabled");
    assert!(c["reason"].as_str().unwrap().contains("SUSPENDED"), "{c}");
}

#[tokio::test]
async fn throttling_and_server_errors_rotate_and_midstream_exceptions_end_the_stream() {
    let accounts = "  - access-token: aoaTEST-x1\n  - access-token: aoaTEST-x2";
    let (rig, _d) = kiro_rig(accounts, "routing: { strategy: fill-first }").await;
    let msg = say(json!({"reply": "ok", "per_key": {"aoaTEST-x1": {"kind": "rate_limit"}}}));
    let (status, v) = json_of(rig.chat(&chat_body("kiro-claude-sonnet-4-5", &msg, false)).await).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(rig.mock.hits("aoaTEST-x1"), 2, "both hosts of the first account were tried");
    // An exception frame mid-stream, after content reached the client: an error event closes the stream. (In
    // the same read as the first content it would still fail over, since the client has nothing yet.)
    let msg = say(json!({"reply": "partial answer here", "delay_ms": 10, "fault": {"stream_error_after": 2}}));
    let r = rig.chat(&chat_body("kiro-claude-sonnet-4-5", &msg, true)).await;
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("\"error\""), "{body}");
    assert!(body.contains("InternalServerException"), "{body}");
    assert_eq!(openai_stream_text(&body), "partial ");
    // A throttling exception or an invalid-state event as the very first frame fails over to the next
    // account: the client has received nothing yet.
    for kind in ["ThrottlingException", "invalidStateEvent"] {
        let msg = say(json!({"reply": "second", "per_key": {"aoaTEST-x1": {"stream_error_after": 0, "body": kind}}}));
        let r = rig.http.delete(rig.url("/v0/management/cooldowns")).bearer_auth(MGMT).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let (before1, before2) = (rig.mock.hits("aoaTEST-x1"), rig.mock.hits("aoaTEST-x2"));
        let (status, v) = json_of(rig.chat(&chat_body("kiro-claude-sonnet-4-5", &msg, false)).await).await;
        assert_eq!(status, 200, "{kind}: {v}");
        assert_eq!(v["choices"][0]["message"]["content"], "second");
        assert_eq!(rig.mock.hits("aoaTEST-x1"), before1 + 1, "{kind}: the first account answered with the error");
        assert_eq!(rig.mock.hits("aoaTEST-x2"), before2 + 1, "{kind}");
    }
}

#[tokio::test]
async fn truncated_tool_arguments_are_an_error_naming_the_tool() {
    let (rig, _d) = kiro_rig("  - access-token: aoaTEST-trunc", "").await;
    let msg = say(json!({"tool_calls": [{"name": "Write", "arguments": "{\"path\":\"a.txt\",\"content\":\"abc"}]}));
    let (status, v) = json_of(rig.chat(&chat_body("kiro-claude-sonnet-4-5", &msg, false)).await).await;
    assert!(status >= 500, "{status} {v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("`Write`"), "{v}");
}

#[tokio::test]
async fn bad_requests_are_not_retried() {
    let (rig, _d) = kiro_rig("  - access-token: aoaTEST-bad-request-1\n  - access-token: aoaTEST-r2", "").await;
    // `aoaTEST-bad…` contains `bad`: invalid bearer without a refresh token → the other account serves.
    let (status, _) = json_of(rig.chat(&chat_body("kiro-claude-sonnet-4-5", "hi", false)).await).await;
    assert_eq!(status, 200);
    let msg = say(json!({"fault": {"status": 400}}));
    let (status, v) = json_of(rig.chat(&chat_body("kiro-claude-sonnet-4-5", &msg, false)).await).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("Improperly formed request"), "{v}");
}

#[tokio::test]
async fn invalid_bearer_refreshes_the_social_token_once_and_retries() {
    let accounts = r#"  - access-token: aoaSOCIAL-expired-1
    refresh-token: aorAAAAAGsocial-refresh-good-1
    profile-arn: "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK""#;
    let (rig, _d) = kiro_rig(accounts, "").await;
    let (status, v) = json_of(rig.chat(&chat_body("kiro-claude-sonnet-4-5", "hi", false)).await).await;
    assert_eq!(status, 200, "{v}");
    let refreshes: Vec<_> =
        rig.mock.requests().into_iter().filter(|r| r.path == "/kiro/auth/us-east-1/refreshToken").collect();
    assert_eq!(refreshes.len(), 1);
    assert_eq!(refreshes[0].json().unwrap()["refreshToken"], "aorAAAAAGsocial-refresh-good-1");
    let gens = generate_requests(&rig);
    assert!(gens.last().unwrap().header("authorization").unwrap().starts_with("Bearer aoaSOCIAL-"));
    assert_ne!(gens.last().unwrap().header("authorization"), Some("Bearer aoaSOCIAL-expired-1"));
}

fn write(path: &std::path::Path, v: &Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

#[tokio::test]
async fn ide_token_file_in_place_refreshes_and_writes_back_in_its_own_format() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".aws/sso/cache/kiro-auth-token.json");
    write(
        &file,
        &json!({"accessToken": "aoaSOCIAL-old", "refreshToken": "aorAAAAAGide-session-1",
            "expiresAt": "2020-01-01T00:00:00.000Z", "authMethod": "social", "provider": "Google",
            "profileArn": "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"}),
    );
    let accounts = format!("  - token-file: \"{}\"", file.display());
    let rig = start_with(&config(&dir.path().join("auths"), &accounts, "")).await;
    let (status, v) = json_of(rig.chat(&chat_body("kiro-claude-sonnet-4-5", "hi", false)).await).await;
    assert_eq!(status, 200, "{v}");
    let back: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let access = back["accessToken"].as_str().unwrap();
    assert!(access.starts_with("aoaSOCIAL-") && access != "aoaSOCIAL-old", "{back}");
    assert_eq!(back["refreshToken"], "aorAAAAAGide-session-1");
    assert_eq!(back["provider"], "Google", "other fields are kept");
    assert!(back.get("access_token").is_none(), "written back in camelCase");
    let exp = cliproxy_core::timefmt::parse_rfc3339(back["expiresAt"].as_str().unwrap()).unwrap();
    assert!(exp > std::time::SystemTime::now());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert_eq!(generate_requests(&rig)[0].header("authorization"), Some(&*format!("Bearer {access}")));
}

/// Registers a client with the mock's SSO-OIDC, as the IDE did, for files that reference it.
async fn registered_client(rig: &Rig) -> (String, String) {
    let r = rig
        .http
        .post(format!("{}/kiro/oidc/us-east-1/client/register", rig.mock.url()))
        .json(&json!({"clientName": "Kiro IDE", "clientType": "public", "scopes": ["codewhisperer:completions"]}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    (v["clientId"].as_str().unwrap().to_owned(), v["clientSecret"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn idc_ide_file_with_client_registration_and_snake_case_refreshes_through_oidc() {
    let dir = tempfile::tempdir().unwrap();
    let mock = cliproxy_mock::MockServer::start().await;
    let probe = start_on_mock(mock.clone(), &config(&dir.path().join("a0"), "  - access-token: aoaTEST-p", "")).await;
    let (client_id, client_secret) = registered_client(&probe).await;
    let cache = dir.path().join("sso");
    write(
        &cache.join("a1b2c3.json"),
        &json!({"clientId": client_id, "clientSecret": client_secret,
        "expiresAt": "2099-01-01T00:00:00Z"}),
    );
    let file = cache.join("kiro-auth-token.json");
    write(
        &file,
        &json!({"access_token": "aoaIDC-expired-x", "refresh_token": "aor-idc-session-1",
            "expires_at": "2099-01-01T00:00:00Z", "auth_method": "IdC", "provider": "Enterprise",
            "client_id_hash": "a1b2c3", "region": "eu-west-1", "start_url": "https://acme.awsapps.com/start"}),
    );
    let rig =
        start_on_mock(mock, &config(&dir.path().join("auths"), &format!("  - token-file: \"{}\"", file.display()), ""))
            .await;
    let (status, v) = json_of(rig.chat(&chat_body("kiro-claude-sonnet-4-5", "hi", false)).await).await;
    assert_eq!(status, 200, "{v}");
    let token_calls: Vec<_> = rig.mock.requests().into_iter().filter(|r| r.path.starts_with("/kiro/oidc/")).collect();
    assert_eq!(token_calls.last().unwrap().path, "/kiro/oidc/eu-west-1/token", "refresh uses the OIDC region");
    let sent = token_calls.last().unwrap().json().unwrap();
    assert_eq!(sent["grantType"], "refresh_token");
    assert_eq!(sent["clientId"], client_id.as_str());
    let ua = token_calls.last().unwrap().header("user-agent").unwrap().to_owned();
    assert!(ua.contains("api/sso-oidc#") && ua.contains("KiroIDE-"), "{ua}");
    assert_eq!(token_calls.last().unwrap().header("amz-sdk-request"), Some("attempt=1; max=4"));
    let gens = generate_requests(&rig);
    assert_eq!(gens.last().unwrap().path, "/kiro/q/us-east-1/generateAssistantResponse", "never the OIDC region");
    let back: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert!(
        back["access_token"].as_str().unwrap().starts_with("aoaIDC-") && back["access_token"] != "aoaIDC-expired-x"
    );
    assert!(back.get("accessToken").is_none(), "written back in snake_case");
}

#[tokio::test]
async fn dead_refresh_token_marks_the_account_as_needing_login() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kiro-auth-token.json");
    write(
        &file,
        &json!({"accessToken": "aoaSOCIAL-old", "refreshToken": "aorAAAAAG-invalid-grant",
        "expiresAt": "2020-01-01T00:00:00Z", "authMethod": "social",
        "profileArn": "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"}),
    );
    let rig =
        start_with(&config(&dir.path().join("auths"), &format!("  - token-file: \"{}\"", file.display()), "")).await;
    let (status, v) = json_of(rig.chat(&chat_body("kiro-claude-sonnet-4-5", "hi", false)).await).await;
    assert_eq!(status, 401, "{v}");
    let creds = credentials(&rig).await;
    assert_eq!(creds[0]["state"], "needs_login");
    assert!(creds[0]["reason"].as_str().unwrap().contains("invalid_grant"), "{}", creds[0]);
}

async fn run_login(rig: &Rig, options: Value) -> Value {
    let r = rig.http.post(rig.url("/v0/management/login/kiro")).bearer_auth(MGMT).json(&options).send().await.unwrap();
    let (status, flow) = json_of(r).await;
    assert_eq!(status, 200, "{flow}");
    assert!(flow["user_code"].as_str().unwrap().len() >= 8);
    assert!(flow["verification_uri"].as_str().unwrap().starts_with("https://"));
    let id = flow["id"].as_str().unwrap().to_owned();
    for _ in 0..100 {
        let r = rig.http.get(rig.url(&format!("/v0/management/login/{id}"))).bearer_auth(MGMT).send().await.unwrap();
        let (_, v) = json_of(r).await;
        if v["status"] != "pending" {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("login did not finish");
}

#[tokio::test]
async fn builder_id_device_login_through_the_endpoints_adds_a_working_account() {
    let dir = tempfile::tempdir().unwrap();
    let auths = dir.path().join("auths");
    let rig = start_with(&config(&auths, "", "")).await;
    let v = run_login(&rig, json!({})).await;
    assert_eq!(v["status"], "success", "{v}");
    let id = v["credential"].as_str().unwrap();
    assert_eq!(id, "kiro:kiro-builder-id-builder-user-example-com");
    let reqs = rig.mock.requests();
    let dev = reqs.iter().find(|r| r.path == "/kiro/oidc/us-east-1/device_authorization").unwrap();
    assert_eq!(dev.json().unwrap()["startUrl"], "https://view.awsapps.com/start");
    let reg = reqs.iter().find(|r| r.path == "/kiro/oidc/us-east-1/client/register").unwrap().json().unwrap();
    assert_eq!(reg["clientName"], "Kiro IDE");
    assert!(reg["scopes"].as_array().unwrap().contains(&json!("codewhisperer:conversations")));
    let polls = reqs.iter().filter(|r| r.path == "/kiro/oidc/us-east-1/token").count();
    assert_eq!(polls, 3, "two authorization_pending answers, then the token");
    let file = auths.join("kiro-builder-id-builder-user-example-com.json");
    let saved: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(saved["type"], "kiro");
    assert_eq!(saved["auth_method"], "builder-id");
    assert!(saved["client_secret"].is_string() && saved["refresh_token"].is_string());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(credentials(&rig).await.iter().any(|c| c["id"] == id && c["state"] == "ready"));
    let (status, v) = json_of(rig.chat(&chat_body("kiro-claude-sonnet-4-5", "hi", false)).await).await;
    assert_eq!(status, 200, "{v}");
    // A second login of the same user gets its own file.
    let v = run_login(&rig, json!({})).await;
    assert_eq!(v["credential"], "kiro:kiro-builder-id-builder-user-example-com-2");
}

#[tokio::test]
async fn identity_center_login_uses_its_start_url_and_region_and_slows_down() {
    let dir = tempfile::tempdir().unwrap();
    let auths = dir.path().join("auths");
    let rig = start_with(&config(&auths, "", "")).await;
    let v = run_login(
        &rig,
        json!({"idc": true, "start_url": "https://acme-slow.awsapps.com/start", "region": "eu-west-1"}),
    )
    .await;
    assert_eq!(v["status"], "success", "{v}");
    let reqs = rig.mock.requests();
    let dev = reqs.iter().find(|r| r.path == "/kiro/oidc/eu-west-1/device_authorization").unwrap();
    assert_eq!(dev.json().unwrap()["startUrl"], "https://acme-slow.awsapps.com/start");
    let id = v["credential"].as_str().unwrap();
    let saved: Value =
        serde_json::from_slice(&std::fs::read(auths.join(format!("{}.json", id.trim_start_matches("kiro:")))).unwrap())
            .unwrap();
    assert_eq!(saved["auth_method"], "idc");
    assert_eq!(saved["region"], "eu-west-1");
    assert_eq!(saved["profile_arn"], "arn:aws:codewhisperer:us-east-1:123456789012:profile/MOCKIDC");
    let r = rig
        .http
        .post(rig.url("/v0/management/login/kiro"))
        .bearer_auth(MGMT)
        .json(&json!({"idc": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "Identity Center needs a start URL");
    let v = run_login(&rig, json!({"idc": true, "start_url": "https://denied.awsapps.com/start"})).await;
    assert_eq!(v["status"], "failed");
    assert!(v["error"].as_str().unwrap().contains("denied"), "{v}");
}

#[tokio::test]
async fn usage_limits_are_checked_per_account_and_exhausted_accounts_are_avoided() {
    let accounts = "  - access-token: aoaTEST-exhausted-u\n  - access-token: aoaTEST-fresh-u";
    let (rig, _d) = kiro_rig(accounts, "routing: { strategy: fill-first }").await;
    let client = rig.server.client().clone();
    let mut quotas = Vec::new();
    for _ in 0..50 {
        quotas = client
            .usage()
            .into_iter()
            .filter(|u| u.provider == "kiro")
            .filter_map(|u| u.quota.map(|q| (u.credential, q)))
            .collect();
        if quotas.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(quotas.len(), 2, "{quotas:?}");
    let q0 = &quotas.iter().find(|(c, _)| c == "kiro:config-0").unwrap().1;
    assert_eq!(q0["remaining"], 0.0);
    assert!(q0["next_reset"].as_str().unwrap().ends_with("-01T00:00:00Z"), "{q0}");
    let q1 = &quotas.iter().find(|(c, _)| c == "kiro:config-1").unwrap().1;
    assert_eq!(q1["remaining"], 47.0);
    let usage_req = rig.mock.requests().into_iter().find(|r| r.path.ends_with("/getUsageLimits")).unwrap();
    assert!(usage_req.query.contains("resourceType=AGENTIC_REQUEST"));
    assert_eq!(usage_req.header("amz-sdk-request"), Some("attempt=1; max=1"));
    // Fill-first would pick config-0, but it has nothing left: config-1 is preferred.
    let (status, _) = json_of(rig.chat(&chat_body("kiro-claude-sonnet-4-5", "hi", false)).await).await;
    assert_eq!(status, 200);
    assert_eq!(rig.mock.hits("aoaTEST-exhausted-u"), 0);
    assert_eq!(rig.mock.hits("aoaTEST-fresh-u"), 1);
}

#[tokio::test]
async fn fingerprints_differ_per_account_and_are_stable() {
    let accounts = "  - access-token: aoaTEST-fp1\n    refresh-token: aorAAAAAG-fp-one\n  - access-token: aoaTEST-fp2\n    refresh-token: aorAAAAAG-fp-two";
    let (rig, _d) = kiro_rig(accounts, "kiro-fingerprint: { kiro-version: 0.11.63 }").await;
    for _ in 0..2 {
        json_of(rig.chat(&chat_body("kiro-claude-sonnet-4-5", "hi", false)).await).await;
    }
    let uas: Vec<String> = generate_requests(&rig).iter().map(|r| r.header("user-agent").unwrap().to_owned()).collect();
    assert_eq!(uas.len(), 2);
    assert_ne!(uas[0], uas[1], "two accounts look like two installs");
    assert!(uas.iter().all(|u| u.contains("KiroIDE-0.11.63-")), "{uas:?}");
    let (rig2, _d2) = kiro_rig(accounts, "kiro-fingerprint: { kiro-version: 0.11.63 }").await;
    json_of(rig2.chat(&chat_body("kiro-claude-sonnet-4-5", "hi", false)).await).await;
    let ua = generate_requests(&rig2)[0].header("user-agent").unwrap().to_owned();
    assert!(uas.contains(&ua), "the same account has the same identity after a restart");
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_old_token_while_it_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kiro-auth-token.json");
    // Valid for ten more minutes: inside the 20-minute lead, so a refresh is due, and the auth service fails.
    let expires = cliproxy_core::timefmt::format_rfc3339(std::time::SystemTime::now() + Duration::from_secs(600));
    write(
        &file,
        &json!({"accessToken": "aoaSOCIAL-still-valid", "refreshToken": "aorAAAAAG-flaky-1",
        "expiresAt": expires, "authMethod": "social",
        "profileArn": "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"}),
    );
    let rig =
        start_with(&config(&dir.path().join("auths"), &format!("  - token-file: \"{}\"", file.display()), "")).await;
    let (status, v) = json_of(rig.chat(&chat_body("kiro-claude-sonnet-4-5", "hi", false)).await).await;
    assert_eq!(status, 200, "{v}");
    assert!(rig.mock.requests().iter().any(|r| r.path == "/kiro/auth/us-east-1/refreshToken"), "a refresh was tried");
    assert_eq!(generate_requests(&rig)[0].header("authorization"), Some("Bearer aoaSOCIAL-still-valid"));
    assert_eq!(credentials(&rig).await[0]["state"], "ready");
    let back: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(back["accessToken"], "aoaSOCIAL-still-valid", "nothing was written back");
}

#[tokio::test]
async fn tokens_the_ide_refreshed_in_the_shared_file_are_picked_up() {
    // Tokens that look valid for years, so nothing refreshes on its own; the mock rejects those spelled
    // `expired`, which makes the proxy refresh when it uses them.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("kiro-auth-token.json");
    let session = |access: &str, refresh: &str| {
        json!({"accessToken": access, "refreshToken": refresh, "expiresAt": "2099-01-01T00:00:00Z",
            "authMethod": "social", "profileArn": "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"})
    };
    write(&file, &session("aoaSOCIAL-expired-a", "aorAAAAAG-rotated-away"));
    let rig =
        start_with(&config(&dir.path().join("auths"), &format!("  - token-file: \"{}\"", file.display()), "")).await;
    // Meanwhile the IDE refreshed: a new access token and a rotated refresh token.
    write(&file, &session("aoaSOCIAL-from-the-ide", "aorAAAAAG-rotated-by-ide"));
    let (status, v) = json_of(rig.chat(&chat_body("kiro-claude-sonnet-4-5", "hi", false)).await).await;
    assert_eq!(status, 200, "{v}");
    let auths: Vec<_> = generate_requests(&rig).iter().map(|r| r.header("authorization").unwrap().to_owned()).collect();
    assert_eq!(auths, ["Bearer aoaSOCIAL-expired-a", "Bearer aoaSOCIAL-from-the-ide"]);
    assert!(!rig.mock.requests().iter().any(|r| r.path.ends_with("/refreshToken")), "the IDE's token was enough");

    // Only the refresh token was rotated: the refresh uses the IDE's new one.
    let file2 = dir.path().join("second/kiro-auth-token.json");
    write(&file2, &session("aoaSOCIAL-expired-b", "aorAAAAAG-rotated-away-2"));
    let rig2 =
        start_with(&config(&dir.path().join("auths2"), &format!("  - token-file: \"{}\"", file2.display()), "")).await;
    write(&file2, &session("aoaSOCIAL-expired-b", "aorAAAAAG-rotated-again"));
    let (status, v) = json_of(rig2.chat(&chat_body("kiro-claude-sonnet-4-5", "hi", false)).await).await;
    assert_eq!(status, 200, "{v}");
    let refreshes: Vec<_> = rig2.mock.requests().into_iter().filter(|r| r.path.ends_with("/refreshToken")).collect();
    assert_eq!(refreshes.len(), 1);
    assert_eq!(refreshes[0].json().unwrap()["refreshToken"], "aorAAAAAG-rotated-again");
    let back: Value = serde_json::from_slice(&std::fs::read(&file2).unwrap()).unwrap();
    assert!(
        back["accessToken"].as_str().unwrap().starts_with("aoaSOCIAL-") && back["accessToken"] != "aoaSOCIAL-expired-b"
    );
}
