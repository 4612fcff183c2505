//! Claude subscriptions from the `cliproxy-server` binary, with `HOME` pointing at a temporary directory:
//! `login claude --no-browser` finished with a pasted `code#state`, `import claude` from Claude Code's
//! `.credentials.json`, and that file discovered at startup and used in place (refreshed first when its access
//! token expired, and written back in Claude Code's format).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cliproxy_mock::accounts::{Issued, Mint};
use cliproxy_mock::{IdP, MockServer};
use serde_json::{Value, json};
use support::{CLIENT_KEY, MGMT};

const BIN: &str = env!("CARGO_BIN_EXE_cliproxy-server");

fn config(dir: &Path, mock: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
port: 0
api-keys: ["{CLIENT_KEY}"]
remote-management: {{ secret-key: "{MGMT}" }}
auth-dir: "{auths}"
claude-endpoints:
  auth-base-url: "{mock}"
  token-url: "{mock}/v1/oauth/token"
  api-base-url: "{mock}"
"#,
        auths = dir.join("auths").display()
    );
    let p = dir.join("config.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

fn command(cfg: &Path, home: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--config").arg(cfg).env("HOME", home).env_remove("CLIPROXY_API_KEY").env_remove("CLAUDE_CONFIG_DIR");
    c
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Claude Code's credentials for a minted account whose access token expired an hour ago, and its
/// `.claude.json` naming the account.
fn claude_code_login(mock: &MockServer, config_dir: &Path, home_json: &Path, email: &str) -> Issued {
    let issued = mock.accounts(IdP::Claude).mint(Mint { email: Some(email.into()), ..Mint::default() });
    assert!(mock.accounts(IdP::Claude).expire(&issued.access_token));
    std::fs::create_dir_all(config_dir).unwrap();
    let creds = json!({"claudeAiOauth": {"accessToken": issued.access_token, "refreshToken": issued.refresh_token,
        "expiresAt": ms(SystemTime::now() - Duration::from_secs(3600)),
        "scopes": ["user:inference", "user:profile"], "subscriptionType": "max", "rateLimitTier": "default_claude_max_20x"}});
    std::fs::write(config_dir.join(".credentials.json"), creds.to_string()).unwrap();
    std::fs::write(
        home_json,
        json!({"oauthAccount": {"emailAddress": email, "accountUuid": issued.account.id}}).to_string(),
    )
    .unwrap();
    issued
}

#[tokio::test]
async fn login_claude_no_browser_completes_with_the_pasted_code_and_writes_the_account_file() {
    let mock = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &mock.url());
    let mut child = command(&cfg, dir.path())
        .args(["login", "claude", "--no-browser"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let url = loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "no URL printed: {printed}");
        printed.push_str(&line);
        if let Some(u) = line.trim().strip_prefix(&format!("{}/oauth/authorize?", mock.url())) {
            break format!("{}/oauth/authorize?{u}", mock.url());
        }
    };
    // The browser approves and is sent back; the test reads the code and state off that address.
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("http://localhost:54545/callback?"), "{location}");
    let q: std::collections::HashMap<String, String> =
        form_urlencoded::parse(location.split_once('?').unwrap().1.as_bytes()).into_owned().collect();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{}#not-the-state", q["code"]).unwrap();
    writeln!(stdin, "{}#{}", q["code"], q["state"]).unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    printed.push_str(&rest);
    assert!(status.status.success(), "{printed}\n{}", String::from_utf8_lossy(&status.stderr));
    assert!(printed.contains("another login"), "the wrong paste is reported: {printed}");
    let email = mock.accounts(IdP::Claude).list().pop().unwrap().email;
    assert!(printed.contains(&format!("Logged in: credential claude:claude-{email}")), "{printed}");
    let file = dir.path().join("auths").join(format!("claude-{email}.json"));
    let v = read_json(&file);
    assert_eq!((v["type"].as_str(), v["email"].as_str()), (Some("claude"), Some(email.as_str())));
    assert!(v["access_token"].as_str().unwrap().starts_with("sk-ant-oat01-"));
    assert!(v["refresh_token"].as_str().unwrap().starts_with("sk-ant-ort01-"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
}

#[tokio::test]
async fn import_claude_copies_claude_codes_login_into_the_auth_dir() {
    let mock = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &mock.url());
    let out = command(&cfg, dir.path()).args(["import", "claude"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Claude Code login found"));

    let issued =
        claude_code_login(&mock, &dir.path().join(".claude"), &dir.path().join(".claude.json"), "cc@example.com");
    let out = command(&cfg, dir.path()).args(["import", "claude"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let file = dir.path().join("auths/claude-cc@example.com.json");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("imported {}", file.display())));
    let v = read_json(&file);
    assert_eq!(v["refresh_token"], issued.refresh_token.as_deref().unwrap());
    assert_eq!((v["type"].as_str(), v["email"].as_str()), (Some("claude"), Some("cc@example.com")));
    assert_eq!(v["source"], dir.path().join(".claude/.credentials.json").display().to_string());
    assert_eq!(mock.endpoint_hits("/v1/oauth/token"), 0, "importing does not rotate Claude Code's tokens");
}

/// Starts the server binary; returns it and its base URL.
async fn serve(cfg: &Path, home: &Path, claude_config_dir: Option<&Path>) -> (tokio::process::Child, String) {
    let mut c = tokio::process::Command::from(command(cfg, home));
    if let Some(d) = claude_config_dir {
        c.env("CLAUDE_CONFIG_DIR", d);
    }
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::null()).kill_on_drop(true).spawn().unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let base = first.strip_prefix("listening on ").unwrap().to_owned();
    (child, base)
}

#[tokio::test]
async fn claude_codes_login_is_used_in_place_refreshed_first_and_written_back_in_its_format() {
    let mock = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    // Under $CLAUDE_CONFIG_DIR, which wins over ~/.claude.
    let cc_dir = dir.path().join("claude-config");
    let issued = claude_code_login(&mock, &cc_dir, &cc_dir.join(".claude.json"), "inplace@example.com");
    let cfg = config(dir.path(), &mock.url());
    let (_server, base) = serve(&cfg, dir.path(), Some(&cc_dir)).await;

    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", CLIENT_KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 32,
            "messages": [{"role": "user", "content": cliproxy_mock::directive(&json!({"reply": "in place"}))}]}))
        .send()
        .await
        .unwrap();
    let (status, answer) = (r.status(), r.json::<Value>().await.unwrap());
    assert_eq!((status.as_u16(), &answer["content"][0]["text"]), (200, &json!("in place")), "{answer}");
    assert_eq!(mock.hits(&issued.access_token), 0, "the expired token was refreshed before any request");
    assert_eq!(mock.endpoint_hits("/v1/oauth/token"), 1);

    let v = read_json(&cc_dir.join(".credentials.json"));
    let o = &v["claudeAiOauth"];
    assert_ne!(o["refreshToken"], issued.refresh_token.as_deref().unwrap(), "the rotated refresh token is stored");
    assert_ne!(o["accessToken"], issued.access_token.as_str());
    assert!(o["expiresAt"].as_u64().unwrap() > ms(SystemTime::now() + Duration::from_secs(7 * 3600)));
    assert_eq!((o["subscriptionType"].as_str(), o["scopes"][0].as_str()), (Some("max"), Some("user:inference")));
    let creds: Value = http
        .get(format!("{base}/v0/management/credentials"))
        .bearer_auth(MGMT)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let c = &creds["credentials"][0];
    assert_eq!(
        (c["id"].as_str(), c["state"].as_str(), c["priority"].as_i64()),
        (Some("claude:claude-code"), Some("ready"), Some(-1))
    );
    assert!(!dir.path().join("auths").exists(), "nothing was copied into the auth-dir");
}
