//! The `cliproxy-server` binary as users run it: startup, refusal to expose itself, health checks, logs that
//! never carry secrets, and SIGTERM draining open streams.

mod support;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use cliproxy_mock::MockServer;
use serde_json::json;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_cliproxy-server");

struct Running {
    child: Child,
    base: String,
    stderr: std::thread::JoinHandle<String>,
}

fn write_config(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("config.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

/// Starts the binary and waits for its `listening on` line.
fn spawn(config: &std::path::Path, env: &[(&str, &str)]) -> Running {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config").arg(config).stdout(Stdio::piped()).stderr(Stdio::piped()).env_remove("CLIPROXY_API_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    let mut err = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        let mut rest = String::new();
        let _ = out.read_to_string(&mut rest);
        s + &rest
    });
    Running { child, base, stderr }
}

impl Running {
    fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let status = self.child.wait().unwrap();
        (status, self.stderr.join().unwrap())
    }
}

#[tokio::test]
async fn logs_never_contain_secrets() {
    let mock = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"
port: 0
api-keys: ["client-SECRET-9999"]
remote-management: {{ secret-key: "mgmt-SECRET-0000" }}
claude-api-key: [{{ api-key: "sk-ant-SECRET-1111", base-url: "{url}" }}]
openai-compatibility:
  - name: c
    base-url: "{url}/v1"
    api-key-entries: [{{ api-key: "sk-compat-SECRET-2222" }}, {{ api-key: "sk-compat-SECRET-invalid-3333" }}]
    models: [{{ name: gpt-4o }}]
kiro: [{{ access-token: "aoaTEST-SECRET-5555" }}]
kiro-endpoints:
  api-base-url: "{url}/kiro/q/{{region}}"
  fallback-api-base-url: "{url}/kiro/cw/{{region}}"
"#,
            url = mock.url()
        ),
    );
    let home = dir.path().to_str().unwrap();
    let run = spawn(&config, &[("RUST_LOG", "debug"), ("HOME", home), ("XDG_CONFIG_HOME", home)]);
    let http = reqwest::Client::new();
    let chat = |key: &str, body: serde_json::Value| {
        http.post(format!("{}/v1/chat/completions", run.base)).bearer_auth(key).json(&body).send()
    };
    // Success through both providers, a rejected upstream key (disabled), a rate limit, a bad client key.
    for model in ["gpt-4o", "claude-sonnet-4-5", "gpt-4o", "gpt-4o", "kiro-claude-sonnet-4-5"] {
        let r = chat("client-SECRET-9999", chat_body(model, "hi", false)).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let d = say(json!({"fault": {"kind": "rate_limit", "retry_after": "1"}}));
    let _ = chat("client-SECRET-9999", chat_body("gpt-4o", &d, false)).await.unwrap();
    assert_eq!(chat("client-WRONG", chat_body("gpt-4o", "hi", false)).await.unwrap().status(), 401);
    for secret in ["mgmt-SECRET-0000", "mgmt-wrong"] {
        let _ = http.get(format!("{}/v0/management/credentials", run.base)).bearer_auth(secret).send().await.unwrap();
    }
    let (_, logs) = run.terminate();
    assert!(logs.contains("credential"), "logs should mention credentials by id: {logs}");
    assert!(logs.contains("openai-compat:c-1"), "{logs}");
    for secret in [
        "SECRET-9999",
        "SECRET-0000",
        "SECRET-1111",
        "SECRET-2222",
        "SECRET-invalid-3333",
        "SECRET-5555",
        "client-WRONG",
    ] {
        assert!(!logs.contains(secret), "log leaked {secret}:\n{logs}");
    }
}

#[tokio::test]
async fn sigterm_drains_open_streams_then_exits() {
    let mock = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "port: 0\nopenai-compatibility: [{{name: c, base-url: \"{}/v1\", api-key-entries: [{{api-key: sk-1}}]}}]\n",
            mock.url()
        ),
    );
    let run = spawn(&config, &[]);
    let d = say(json!({"reply": "one two three four five", "delay_ms": 150}));
    let mut r = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", run.base))
        .json(&chat_body("any-model", &d, true))
        .send()
        .await
        .unwrap();
    let mut body = String::from_utf8(r.chunk().await.unwrap().unwrap().to_vec()).unwrap();
    let pid = run.child.id();
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    while let Some(c) = r.chunk().await.unwrap() {
        body.push_str(std::str::from_utf8(&c).unwrap());
    }
    assert_eq!(openai_stream_text(&body), "one two three four five", "{body}");
    let (status, _) = run.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn refuses_public_bind_without_client_keys() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "host: 0.0.0.0\nport: 0\n");
    let out = Command::new(BIN).arg("--config").arg(&config).env_remove("CLIPROXY_API_KEY").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("api-keys") && err.contains("CLIPROXY_API_KEY"), "{err}");
}

#[test]
fn refuses_public_bind_with_weak_client_keys() {
    let dir = tempfile::tempdir().unwrap();
    // (config keys, CLIPROXY_API_KEY, what the refusal says)
    let cases = [
        ("api-keys: [\"change-me\"]", None, "placeholder"),
        ("api-keys: [\"your-api-key-here\"]", None, "placeholder"),
        ("api-keys: [\"short-key-123\"]", None, "shorter than 16"),
        ("api-keys: []", Some(" "), "blank"),
    ];
    for (keys, env, why) in cases {
        let config = write_config(dir.path(), &format!("host: 0.0.0.0\nport: 0\n{keys}\n"));
        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(&config).env_remove("CLIPROXY_API_KEY");
        if let Some(v) = env {
            cmd.env("CLIPROXY_API_KEY", v);
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success(), "{keys} {env:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why) && err.contains("long random key"), "{keys} {env:?}: {err}");
        assert!(String::from_utf8_lossy(&out.stdout).is_empty(), "it never listened");
    }
    // A strong key starts, and loopback keeps accepting short keys (nothing beyond the machine can reach it).
    let config = write_config(dir.path(), "host: 127.0.0.1\nport: 0\napi-keys: [\"short\"]\n");
    let (status, _) = spawn(&config, &[]).terminate();
    assert!(status.success());
    let config = write_config(dir.path(), "host: 0.0.0.0\nport: 0\napi-keys: [\"9f86d081884c7d659a2feaa0c55ad015\"]\n");
    let (status, _) = spawn(&config, &[]).terminate();
    assert!(status.success());
}

#[tokio::test]
async fn client_text_in_logs_is_escaped_and_cut() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &format!("port: 0\napi-keys: [\"{CLIENT_KEY}\"]\n"));
    let run = spawn(&config, &[("RUST_LOG", "debug")]);
    let forged = format!("m\r\n2099-01-01T00:00:00Z ERROR forged line\u{0}\u{1b}]0;pwned\u{7}{}", "A".repeat(300_000));
    let http = reqwest::Client::new();
    for path in ["/v1/chat/completions", "/v1/messages"] {
        let r = http
            .post(format!("{}{path}", run.base))
            .bearer_auth(CLIENT_KEY)
            .json(&json!({"model": forged, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
    }
    let origin = format!("https://{}.example", "o".repeat(50_000));
    let r = http.get(format!("{}/v1/models", run.base)).header("origin", origin).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let (_, logs) = run.terminate();
    assert!(logs.contains("forged line"), "the rejection was logged: {logs}");
    assert!(!logs.lines().any(|l| l.starts_with("2099-01-01")), "a client split a log line:\n{logs}");
    assert!(!logs.contains("\u{1b}]0;pwned") && !logs.contains('\u{0}'), "raw control characters reached the log");
    let longest = logs.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 2_000, "a log line of {longest} bytes");
}

#[test]
fn runs_with_no_config_on_loopback_8317() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .current_dir(dir.path())
        .env_remove("CLIPROXY_CONFIG")
        .env_remove("CLIPROXY_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    if line.is_empty() {
        // Another process holds 8317 on this machine: the failure must name the default address.
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert!(!child.wait().unwrap().success());
        assert!(err.contains("127.0.0.1:8317"), "{err}");
        return;
    }
    assert_eq!(line.trim(), "listening on http://127.0.0.1:8317");
    let health = Command::new(BIN).current_dir(dir.path()).arg("healthcheck").status().unwrap();
    assert!(health.success());
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    assert!(child.wait().unwrap().success());
}

#[test]
fn healthcheck_fails_when_nothing_listens() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = write_config(dir.path(), &format!("port: {port}\n"));
    let status = Command::new(BIN).arg("--config").arg(&config).arg("healthcheck").status().unwrap();
    assert!(!status.success());
}

#[test]
fn check_config_lists_credentials_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "claude-api-key: [{api-key: sk-ant-SECRET-4444}]\nunknown-key: 1\n");
    let out = Command::new(BIN).arg("--config").arg(&config).arg("check-config").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("claude:key-0"), "{all}");
    assert!(all.contains("unknown config key `unknown-key`"), "{all}");
    assert!(!all.contains("SECRET"), "{all}");
}
