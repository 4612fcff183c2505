//! GitHub Copilot through the real server against the mock GitHub: device login (CLI, in-process, HTTP),
//! editor credentials, token exchange and refresh, the editor headers, cooldown scopes, quota, and the host
//! overrides GitHub Enterprise needs.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cliproxy_core::Client;
use cliproxy_core::config::Config;
use cliproxy_mock::{MockServer, RecordedRequest};
use serde_json::{Value, json};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_cliproxy-server");

/// Config for Copilot only: every GitHub host on `mock` (or the three given), auth files in `auth_dir`.
fn copilot_yaml(github: &str, api: &str, copilot_api: &str, auth_dir: &Path) -> String {
    format!(
        r#"
api-keys: ["{CLIENT_KEY}"]
remote-management: {{ secret-key: "{MGMT}" }}
max-retry-interval: 0
timeouts: {{ first-byte-seconds: 5, idle-seconds: 5 }}
auth-dir: "{}"
github-copilot:
  github-base-url: "{github}"
  github-api-base-url: "{api}"
  api-base-url: "{copilot_api}"
"#,
        auth_dir.display()
    )
}

fn write_account(dir: &Path, user: &str, token: &str) -> PathBuf {
    let p = dir.join(format!("github-copilot-{user}.json"));
    let v = json!({"type": "github-copilot", "username": user, "email": "", "name": "", "access_token": token,
                   "token_type": "bearer", "scope": "read:user", "timestamp": 1_700_000_000_000u64});
    std::fs::write(&p, v.to_string()).unwrap();
    p
}

/// A server with one Copilot account (GitHub token `token`) on a fresh mock; waits until its models arrived.
async fn start_account(token: &str) -> (Rig, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    write_account(dir.path(), "mona", token);
    let mock = MockServer::start().await;
    let yaml = copilot_yaml(&mock.url(), &mock.url(), "", dir.path());
    let rig = start_on_mock(mock, &yaml).await;
    wait_for_models(rig.server.client()).await;
    (rig, dir)
}

async fn wait_for_models(client: &Client) {
    let started = Instant::now();
    while !client.models().iter().any(|m| m.id == "copilot/gpt-4o") {
        assert!(started.elapsed() < Duration::from_secs(10), "Copilot models never arrived: {:?}", client.models());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn chat_requests(mock: &MockServer) -> Vec<RecordedRequest> {
    mock.requests().into_iter().filter(|r| r.path == "/copilot/chat/completions").collect()
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The id of the account `start_account` creates.
const ID: &str = "copilot:github-copilot-mona";

fn credential<'a>(listing: &'a Value, id: &str) -> &'a Value {
    listing["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("{id} in {listing}"))
}

/// The poll answers the mock gave, in order (`authorization_pending`, `slow_down`, or `token`).
fn poll_log(mock: &MockServer) -> Vec<String> {
    mock.requests().iter().filter(|r| r.path.ends_with("/login/oauth/access_token")).map(|r| r.path.clone()).collect()
}

#[tokio::test]
async fn cli_login_completes_after_pending_polls_and_one_slow_down() {
    let mock = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let auths = dir.path().join("auths");
    std::fs::write(&config, copilot_yaml(&mock.url(), &mock.url(), "", &auths)).unwrap();
    let started = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .args(["login", "copilot"])
            .env("XDG_CONFIG_HOME", dir.path().join("no-editor"))
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("login finishes")
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("https://github.com/login/device"), "{stdout}");
    assert!(stdout.contains("Logged in: credential copilot:github-copilot-mona"), "{stdout}");
    // Two pending polls, one slow_down (interval 1 s), one more pending, then the token.
    assert_eq!(poll_log(&mock).len(), 5);
    assert!(started.elapsed() >= Duration::from_secs(1), "the slow_down interval was honoured");
    let file = auths.join("github-copilot-mona.json");
    assert_eq!(mode(&file), 0o600);
    let v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(v["type"], "github-copilot");
    assert_eq!(v["username"], "mona");
    assert_eq!(v["email"], "mona@example.com");
    assert!(v["access_token"].as_str().unwrap().starts_with("gho_"));
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["scope"], "read:user");
    assert!(v["timestamp"].as_u64().unwrap() > 1_700_000_000_000);
    let device = mock.requests().into_iter().find(|r| r.path == "/login/device/code").unwrap();
    // The device request is form-encoded, as RFC 8628 has it (GitHub takes JSON too).
    let form: std::collections::BTreeMap<String, String> = form_urlencoded::parse(&device.body).into_owned().collect();
    assert_eq!(form["client_id"], "Iv1.b507a08c87ecfe98");
    assert_eq!(form["scope"], "read:user");
    assert_eq!(device.header("accept"), Some("application/json"));
}

#[tokio::test]
async fn in_process_login_joins_the_pool_and_serves_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockServer::start().await;
    let rig = start_on_mock(mock.clone(), &copilot_yaml(&mock.url(), &mock.url(), "", dir.path())).await;
    let client = rig.server.client();
    let flow = client.login("copilot", json!({})).await.unwrap();
    assert_eq!(flow.verification_uri, "https://github.com/login/device");
    assert_eq!(flow.user_code.len(), 9);
    let id = flow.wait().await.unwrap();
    assert_eq!(id, "copilot:github-copilot-mona");
    assert!(dir.path().join("github-copilot-mona.json").exists());
    let r = rig.chat(&chat_body("copilot/gpt-4o", &say(json!({"reply": "fresh account"})), false)).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "fresh account", "{body}");
    wait_for_models(client).await;
}

#[tokio::test]
async fn http_login_endpoints_drive_the_device_flow() {
    let dir = tempfile::tempdir().unwrap();
    let mock = MockServer::start().await;
    let rig = start_on_mock(mock.clone(), &copilot_yaml(&mock.url(), &mock.url(), "", dir.path())).await;
    let denied = rig.http.post(rig.url("/v0/management/login/copilot")).send().await.unwrap();
    assert_ne!(denied.status(), 200, "login needs the management secret");
    let started: Value = rig
        .http
        .post(rig.url("/v0/management/login/copilot"))
        .bearer_auth(MGMT)
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(started["status"], "pending", "{started}");
    assert_eq!(started["verification_uri"], "https://github.com/login/device");
    let id = started["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        let s = rig.management(&format!("/v0/management/login/{id}")).await;
        if s["status"] != "pending" || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["status"], "success", "{status}");
    assert_eq!(status["credential"], "copilot:github-copilot-mona");
    let creds = rig.management("/v0/management/credentials").await;
    let c = credential(&creds, "copilot:github-copilot-mona");
    assert_eq!((c["provider"].as_str(), c["state"].as_str()), (Some("copilot"), Some("ready")), "{creds}");
}

#[tokio::test]
async fn denied_and_expired_logins_fail_clearly_and_400_polls_still_work() {
    let mock = MockServer::start().await;
    for (scenario, expect) in [("denied", Some("denied")), ("expired", Some("expired")), ("status400", None)] {
        let dir = tempfile::tempdir().unwrap();
        let github = format!("{}/{scenario}", mock.url());
        let yaml = copilot_yaml(&github, &mock.url(), "", dir.path());
        let client = Client::new(Config::from_yaml(&yaml).unwrap().config).unwrap();
        let flow = client.login("copilot", json!({})).await.unwrap();
        let result = flow.wait().await;
        match expect {
            Some(word) => {
                let e = result.unwrap_err();
                assert!(e.message().contains(word), "{scenario}: {e}");
                assert!(!dir.path().join("github-copilot-mona.json").exists());
            }
            None => assert_eq!(result.unwrap(), "copilot:github-copilot-mona", "{scenario}"),
        }
    }
}

/// Runs the binary with `args` and the editor config under `xdg`, returning (status, stdout, stderr).
fn run(args: &[&str], config: &Path, xdg: &Path) -> (bool, String, String) {
    let out = std::process::Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("XDG_CONFIG_HOME", xdg)
        .output()
        .unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[tokio::test]
async fn editor_credentials_are_discovered_at_startup_and_imported() {
    let mock = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let xdg = dir.path().join("xdg");
    let editor = xdg.join("github-copilot");
    std::fs::create_dir_all(&editor).unwrap();
    std::fs::write(
        editor.join("apps.json"),
        json!({"github.com:Iv1.b507a08c87ecfe98": {"user": "octo-apps", "oauth_token": "ghu_editorapps1", "githubAppId": "Iv1.b507a08c87ecfe98"}}).to_string(),
    )
    .unwrap();
    std::fs::write(
        editor.join("hosts.json"),
        json!({"github.com": {"user": "octo-hosts", "oauth_token": "gho_editorhosts1"}}).to_string(),
    )
    .unwrap();
    let auths = dir.path().join("auths");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, format!("port: 0\n{}", copilot_yaml(&mock.url(), &mock.url(), "", &auths))).unwrap();

    // Startup: both editor accounts are used in place, with a log line naming the file.
    let (ok, stdout, stderr) = run(&["check-config"], &config, &xdg);
    assert!(ok, "{stdout}{stderr}");
    let all = format!("{stdout}{stderr}");
    assert!(
        all.contains("copilot:github-copilot-octo-apps") && all.contains("copilot:github-copilot-octo-hosts"),
        "{all}"
    );
    assert!(
        all.contains("using GitHub Copilot editor credential")
            && all.contains("apps.json")
            && all.contains("hosts.json"),
        "{all}"
    );
    assert!(
        all.contains("credential copilot:github-copilot-octo-apps (copilot), priority -1"),
        "borrowed accounts serve last: {all}"
    );

    // Import: copied into the auth-dir as independent accounts.
    let (ok, stdout, stderr) = run(&["import", "copilot"], &config, &xdg);
    assert!(ok, "{stdout}{stderr}");
    for (user, token) in [("octo-apps", "ghu_editorapps1"), ("octo-hosts", "gho_editorhosts1")] {
        let f = auths.join(format!("github-copilot-{user}.json"));
        assert!(stdout.contains(&f.display().to_string()), "{stdout}");
        assert_eq!(mode(&f), 0o600);
        let v: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["username"].as_str(), v["access_token"].as_str()),
            (Some("github-copilot"), Some(user), Some(token))
        );
    }
    // Once imported, startup loads them from the auth-dir instead of the editor files.
    let (ok, stdout, stderr) = run(&["check-config"], &config, &xdg);
    assert!(ok && !format!("{stdout}{stderr}").contains("using GitHub Copilot editor credential"), "{stdout}{stderr}");
    assert!(stdout.contains("credential copilot:github-copilot-octo-apps (copilot), priority 0"), "{stdout}");

    // Nothing to import is an error that says where it looked.
    let (ok, _, stderr) = run(&["import", "copilot"], &config, &dir.path().join("empty"));
    assert!(!ok && stderr.contains("github-copilot"), "{stderr}");
}

#[tokio::test]
async fn openai_client_passes_through_with_the_editor_headers() {
    let (rig, _dir) = start_account("gho_headers1").await;
    let text = say(json!({"reply": "Hello from Copilot"}));
    let r = rig.chat(&chat_body("gpt-4o", &text, false)).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from Copilot", "{body}");
    let r = rig.chat(&chat_body("copilot/gpt-4o", &text, true)).await;
    assert_eq!(openai_stream_text(&r.text().await.unwrap()), "Hello from Copilot");
    // An agent turn (last message from a tool) with an image.
    let agent = json!({"model": "gpt-4o", "messages": [
        {"role": "user", "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"}]});
    assert_eq!(rig.chat(&agent).await.status(), 200);

    let reqs = chat_requests(&rig.mock);
    assert_eq!(reqs.len(), 3);
    for r in &reqs {
        assert!(r.header("authorization").unwrap().starts_with("Bearer tid="));
        assert_eq!(r.header("editor-version"), Some("vscode/1.104.3"));
        assert_eq!(r.header("copilot-integration-id"), Some("vscode-chat"));
        assert_eq!(r.header("openai-intent"), Some("conversation-panel"));
        assert!(r.header("editor-plugin-version").unwrap().starts_with("copilot-chat/"));
        assert!(r.header("user-agent").unwrap().starts_with("GitHubCopilotChat/"));
        assert_eq!(r.header("x-github-api-version"), Some("2025-04-01"));
    }
    assert_eq!(reqs[0].header("x-initiator"), Some("user"));
    assert_eq!(reqs[0].header("copilot-vision-request"), None);
    assert_eq!(reqs[2].header("x-initiator"), Some("agent"));
    assert_eq!(reqs[2].header("copilot-vision-request"), Some("true"));
    let ids: std::collections::HashSet<_> = reqs.iter().map(|r| r.header("x-request-id").unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 3, "a fresh x-request-id per request");
    // The exchange used the GitHub token with the editor identity.
    let ex = rig.mock.requests().into_iter().find(|r| r.path == "/copilot_internal/v2/token").unwrap();
    assert_eq!(ex.header("authorization"), Some("token gho_headers1"));
    assert!(ex.header("editor-version").is_some());
}

#[tokio::test]
async fn anthropic_client_is_translated_and_assistant_content_flattened() {
    let (rig, _dir) = start_account("gho_anthropic1").await;
    let text = say(json!({"reply": "translated"}));
    let body = json!({"model": "claude-sonnet-4", "max_tokens": 100, "messages": [
        {"role": "user", "content": "earlier"},
        {"role": "assistant", "content": [{"type": "text", "text": "part one, "}, {"type": "text", "text": "part two"}]},
        {"role": "user", "content": [{"type": "text", "text": text}]}]});
    let r = rig.messages(&body).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "message", "{v}");
    assert_eq!(v["content"][0]["text"], "translated");
    let s = rig.messages(&messages_body("claude-sonnet-4", &text, true)).await;
    assert_eq!(anthropic_stream_text(&s.text().await.unwrap()), "translated");
    let sent = chat_requests(&rig.mock)[0].json().unwrap();
    assert_eq!(sent["messages"][1]["role"], "assistant");
    assert_eq!(sent["messages"][1]["content"], "part one, part two", "{sent}");
    assert_eq!(chat_requests(&rig.mock)[0].header("x-initiator"), Some("user"));
}

#[tokio::test]
async fn expired_copilot_token_is_exchanged_again_once() {
    // `short` tokens live 2 s.
    let (rig, _dir) = start_account("gho_short1").await;
    let text = say(json!({"reply": "still works"}));
    assert_eq!(rig.chat(&chat_body("gpt-4o", &text, false)).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let before = rig.mock.hits("gho_short1");
    let r = rig.chat(&chat_body("gpt-4o", &text, false)).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(rig.mock.hits("gho_short1"), before + 1, "exactly one new exchange");

    // Two concurrent requests after the next expiry share one exchange.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let before = rig.mock.hits("gho_short1");
    let (first, second) = (chat_body("gpt-4o", &text, false), chat_body("gpt-4.1", &text, false));
    let (a, b) = tokio::join!(rig.chat(&first), rig.chat(&second));
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    assert_eq!(rig.mock.hits("gho_short1"), before + 1, "concurrent requests share one exchange");
}

#[tokio::test]
async fn token_rejected_by_copilot_is_exchanged_and_the_request_retried_once() {
    // `stale` tokens claim 30 minutes but die after 1 s, as a token revoked on Copilot's side.
    let (rig, _dir) = start_account("gho_stale1").await;
    tokio::time::sleep(Duration::from_millis(5500)).await;
    let before = rig.mock.hits("gho_stale1");
    let r = rig.chat(&chat_body("gpt-4o", &say(json!({"reply": "after 401"})), false)).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "after 401", "{body}");
    assert_eq!(rig.mock.hits("gho_stale1"), before + 1);
    assert_eq!(chat_requests(&rig.mock).len(), 2, "the rejected attempt and its retry");
    assert!(rig.server.client().cooldowns().is_empty(), "a refreshed token is not a reason to cool down");
}

#[tokio::test]
async fn revoked_github_token_marks_the_account_as_needing_login() {
    let dir = tempfile::tempdir().unwrap();
    write_account(dir.path(), "gone", "gho_revoked1");
    let mock = MockServer::start().await;
    let rig = start_on_mock(mock.clone(), &copilot_yaml(&mock.url(), &mock.url(), "", dir.path())).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let state = || {
        let creds = rig.server.client().credentials();
        creds.into_iter().find(|c| c.id == "copilot:github-copilot-gone").unwrap().state
    };
    while state().as_str() != "needs_login" {
        assert!(Instant::now() < deadline, "{:?}", rig.server.client().credentials());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let creds = rig.management("/v0/management/credentials").await;
    let c = credential(&creds, "copilot:github-copilot-gone");
    assert_eq!(c["state"], "needs_login", "{creds}");
    assert!(c["reason"].as_str().unwrap().contains("login copilot"), "{creds}");
    let r = rig.chat(&chat_body("copilot/gpt-4o", "hi", false)).await;
    assert_ne!(r.status(), 200);
}

#[tokio::test]
async fn model_rate_limit_leaves_other_models_usable_and_global_limit_does_not() {
    let (rig, _dir) = start_account("gho_limits1").await;
    let limited = |code: &str| {
        say(json!({"fault": {"status": 429, "headers": {"retry-after": "120", "x-ratelimit-exceeded": code},
                              "body": {"error": {"message": "Sorry, you have been rate-limited.", "code": code}}}}))
    };
    let r = rig.chat(&chat_body("gpt-4o", &limited("user_model_rate_limited"), false)).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "120");
    let ok = say(json!({"reply": "ok"}));
    assert_eq!(rig.chat(&chat_body("gpt-4.1", &ok, false)).await.status(), 200, "other models stay usable");
    let hits = chat_requests(&rig.mock).len();
    let r = rig.chat(&chat_body("gpt-4o", &ok, false)).await;
    assert_eq!(r.status(), 429, "the limited model cools down");
    assert_eq!(chat_requests(&rig.mock).len(), hits, "without asking upstream");

    let r = rig.chat(&chat_body("gpt-4.1", &limited("user_global_rate_limited:pro"), false)).await;
    assert_eq!(r.status(), 429);
    let r = rig.chat(&chat_body("claude-sonnet-4", &ok, false)).await;
    assert_eq!(r.status(), 429, "an account-wide limit cools every model");
    let cds = rig.management("/v0/management/cooldowns").await;
    let list = cds["cooldowns"].as_array().unwrap();
    assert!(list.iter().any(|c| c["model"] == "gpt-4o"), "{cds}");
    assert!(list.iter().any(|c| c["model"].is_null()), "{cds}");
}

#[tokio::test]
async fn quota_comes_from_the_user_endpoint_and_answer_headers() {
    let (rig, _dir) = start_account("gho_quota1").await;
    let client = rig.server.client();
    let deadline = Instant::now() + Duration::from_secs(10);
    let quota = loop {
        let q = client.usage().into_iter().find(|u| u.credential == ID).and_then(|u| u.quota);
        if let Some(q) = q.filter(|q| q["plan"] == "individual") {
            break q;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let premium = &quota["snapshots"]["premium_interactions"];
    assert_eq!(premium["entitlement"], 300.0, "{quota}");
    assert_eq!(premium["remaining"], 256.0, "{quota}");
    assert!(quota["quota_reset_date"].as_str().unwrap().ends_with("T00:00:00Z"));
    assert_eq!(quota["responses_only_models"], json!(["gpt-5-codex"]));

    let text = say(json!({"reply": "ok", "fault": {"headers": {
        "x-quota-snapshot-premium_interactions": "ent=300&ov=2.0&ovPerm=true&rem=12.5&rst=2030-01-01T00%3A00%3A00Z"}}}));
    assert_eq!(rig.chat(&chat_body("gpt-4o", &text, false)).await.status(), 200);
    let q = client.usage().into_iter().find(|u| u.credential == ID).unwrap().quota.unwrap();
    let premium = &q["snapshots"]["premium_interactions"];
    assert_eq!(
        (premium["percent_remaining"].as_f64(), premium["overage_permitted"].as_bool()),
        (Some(12.5), Some(true)),
        "{q}"
    );
    assert_eq!(q["quota_reset_date"], "2030-01-01T00:00:00Z");

    // A 402 without retry-after cools the whole account until that reset date.
    let text = say(json!({"fault": {"status": 402,
            "headers": {"x-quota-snapshot-premium_interactions": "ent=300&ov=0.0&ovPerm=false&rem=0&rst=2030-01-01T00%3A00%3A00Z"},
            "body": {"error": {"message": "You have no premium requests left", "code": "quota_exceeded"}}}}));
    let r = rig.chat(&chat_body("gpt-4o", &text, false)).await;
    assert_eq!(r.status(), 429, "quota errors reach clients as 429 with a retry time");
    let cds = client.cooldowns();
    assert_eq!(cds.len(), 1);
    assert!(cds[0].model.is_none(), "the whole account waits");
    let reset = cliproxy_core::timefmt::parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
    let off = cds[0].until.duration_since(reset).unwrap_or_else(|e| e.duration());
    assert!(off < Duration::from_secs(5), "cooling until the quota reset date, off by {off:?}");
}

#[tokio::test]
async fn models_are_listed_by_name_and_prefix_and_responses_only_models_refused() {
    let (rig, _dir) = start_account("gho_models1").await;
    let v: Value =
        rig.http.get(rig.url("/v1/models")).bearer_auth(CLIENT_KEY).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = v["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    for id in ["gpt-4o", "copilot/gpt-4o", "claude-sonnet-4", "copilot/gpt-5-codex"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    assert!(!ids.contains(&"text-embedding-3-small"), "embedding models are not chat models");
    let r = rig.chat(&chat_body("gpt-5-codex", "hi", false)).await;
    assert_eq!(r.status(), 400);
    let e: Value = r.json().await.unwrap();
    assert!(e["error"]["message"].as_str().unwrap().contains("only works on the Responses API"), "{e}");
    assert!(chat_requests(&rig.mock).is_empty());
    let r = rig.chat(&chat_body("no-such-model", "hi", false)).await;
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn enterprise_hosts_are_all_configurable() {
    let (github, api, copilot) = (MockServer::start().await, MockServer::start().await, MockServer::start().await);
    let dir = tempfile::tempdir().unwrap();
    let yaml = copilot_yaml(&github.url(), &api.url(), &format!("{}/copilot", copilot.url()), dir.path());
    let rig = start_on_mock(github.clone(), &yaml).await;
    let flow = rig.server.client().login("copilot", json!({})).await.unwrap();
    flow.wait().await.unwrap();
    let r = rig.chat(&chat_body("gpt-4o", &say(json!({"reply": "enterprise"})), false)).await;
    assert_eq!(r.status(), 200);
    let paths = |m: &MockServer| m.requests().into_iter().map(|r| r.path).collect::<Vec<_>>();
    assert!(paths(&github).iter().all(|p| p.starts_with("/login/")), "{:?}", paths(&github));
    let api_paths = paths(&api);
    assert!(api_paths.contains(&"/user".to_string()) && api_paths.contains(&"/copilot_internal/v2/token".to_string()));
    assert!(!api_paths.iter().any(|p| p.starts_with("/copilot/")), "chat does not follow the token's endpoints.api");
    assert!(paths(&copilot).contains(&"/copilot/chat/completions".to_string()));
}

#[tokio::test]
async fn mock_copilot_api_requires_the_editor_version() {
    let mock = MockServer::start().await;
    let http = reqwest::Client::new();
    let token: Value = http
        .get(format!("{}/copilot_internal/v2/token", mock.url()))
        .header("authorization", "token gho_mock1")
        .header("editor-version", "vscode/1.104.3")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(token["endpoints"]["api"], format!("{}/copilot", mock.url()));
    assert_eq!(token["refresh_in"], 1500);
    let r = http
        .post(format!("{}/chat/completions", token["endpoints"]["api"].as_str().unwrap()))
        .bearer_auth(token["token"].as_str().unwrap())
        .json(&chat_body("gpt-4o", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.text().await.unwrap(), "bad request: missing Editor-Version header for IDE auth");
    let r = http
        .get(format!("{}/copilot_internal/v2/token", mock.url()))
        .header("authorization", "token gho_mock1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn an_account_out_of_premium_requests_is_used_last() {
    let dir = tempfile::tempdir().unwrap();
    write_account(dir.path(), "spent", "gho_spent1");
    write_account(dir.path(), "fresh", "gho_fresh1");
    let mock = MockServer::start().await;
    let rig = start_on_mock(mock.clone(), &copilot_yaml(&mock.url(), &mock.url(), "", dir.path())).await;
    wait_for_models(rig.server.client()).await;
    let snapshot = |rem: u32| json!({"headers": {"x-quota-snapshot-premium_interactions": format!("ent=300&ov=0.0&ovPerm=false&rem={rem}")}});
    let text = say(
        json!({"reply": "ok", "per_key": {"sk-copilot-gho_spent1": snapshot(0), "sk-copilot-gho_fresh1": snapshot(60)}}),
    );
    // Round robin reaches both accounts once, which tells the proxy what each has left.
    for _ in 0..2 {
        assert_eq!(rig.chat(&chat_body("gpt-4o", &text, false)).await.status(), 200);
    }
    assert_eq!((rig.mock.hits("sk-copilot-gho_spent1"), rig.mock.hits("sk-copilot-gho_fresh1")), (1, 1));
    for _ in 0..4 {
        assert_eq!(rig.chat(&chat_body("gpt-4o", &text, false)).await.status(), 200);
    }
    assert_eq!(rig.mock.hits("sk-copilot-gho_spent1"), 1, "the spent account waits while another is ready");
    assert_eq!(rig.mock.hits("sk-copilot-gho_fresh1"), 5);
}
