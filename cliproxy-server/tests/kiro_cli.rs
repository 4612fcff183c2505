//! Kiro from the `cliproxy-server` binary: `login kiro` (Builder ID and Identity Center), `import kiro` from the
//! IDE's session, and startup discovery of that session, with `$HOME` pointing at a temporary directory.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

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
kiro-endpoints:
  oidc-base-url: "{mock}/kiro/oidc/{{region}}"
  auth-base-url: "{mock}/kiro/auth/{{region}}"
  api-base-url: "{mock}/kiro/q/{{region}}"
  fallback-api-base-url: "{mock}/kiro/cw/{{region}}"
"#,
        auths = dir.join("auths").display()
    );
    let p = dir.join("config.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

fn ide_session(home: &Path) -> std::path::PathBuf {
    let file = home.join(".aws/sso/cache/kiro-auth-token.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let v = json!({"accessToken": "aoaSOCIAL-cli-ide", "refreshToken": "aorAAAAAG-cli-ide-session",
        "expiresAt": "2099-01-01T00:00:00.000Z", "authMethod": "social", "provider": "Github",
        "profileArn": "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"});
    std::fs::write(&file, v.to_string()).unwrap();
    file
}

async fn run(args: Vec<String>, home: &Path) -> (bool, String, String) {
    let home = home.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let out = Command::new(BIN)
            .args(&args)
            .env("HOME", &home)
            .env_remove("CLIPROXY_API_KEY")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

fn arg(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test]
async fn login_kiro_builder_id_and_identity_center_from_the_command_line() {
    let mock = cliproxy_mock::MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &mock.url());
    let (ok, out, err) = run(vec!["--config".into(), arg(&cfg), "login".into(), "kiro".into()], dir.path()).await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("and enter the code:"), "{out}");
    assert!(out.contains("Logged in: credential kiro:kiro-builder-id-builder-user-example-com"), "{out}");
    assert!(dir.path().join("auths/kiro-builder-id-builder-user-example-com.json").is_file());

    let args = [
        "--config",
        &arg(&cfg),
        "login",
        "kiro",
        "--idc",
        "--start-url",
        "https://acme.awsapps.com/start",
        "--region",
        "eu-west-1",
    ];
    let (ok, out, err) = run(args.iter().map(|s| s.to_string()).collect(), dir.path()).await;
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("Logged in: credential kiro:kiro-idc-"), "{out}");
    assert!(mock.requests().iter().any(|r| r.path == "/kiro/oidc/eu-west-1/device_authorization"));
    let (ok, _, err) =
        run(vec!["--config".into(), arg(&cfg), "login".into(), "kiro".into(), "--idc".into()], dir.path()).await;
    assert!(!ok && err.contains("start URL"), "{err}");
}

#[tokio::test]
async fn import_kiro_copies_the_ide_session_into_the_auth_dir() {
    let mock = cliproxy_mock::MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &mock.url());
    let (ok, _, err) = run(vec!["--config".into(), arg(&cfg), "import".into(), "kiro".into()], dir.path()).await;
    assert!(!ok && err.contains("no Kiro IDE session found"), "{err}");
    ide_session(dir.path());
    for expected in ["kiro-social.json", "kiro-social-2.json"] {
        let (ok, out, err) = run(vec!["--config".into(), arg(&cfg), "import".into(), "kiro".into()], dir.path()).await;
        assert!(ok, "{out}\n{err}");
        let file = dir.path().join("auths").join(expected);
        assert!(out.contains(&format!("imported {}", file.display())), "{out}");
        let v: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(v["type"], "kiro");
        assert_eq!(v["auth_method"], "social");
        assert_eq!(v["refresh_token"], "aorAAAAAG-cli-ide-session");
        assert_eq!(v["provider"], "Github");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}

#[tokio::test]
async fn the_ide_session_is_discovered_at_startup_and_used_in_place() {
    let mock = cliproxy_mock::MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &mock.url());
    ide_session(dir.path());
    let mut child = tokio::process::Command::new(BIN)
        .arg("--config")
        .arg(&cfg)
        .env("HOME", dir.path())
        .env_remove("CLIPROXY_API_KEY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let base = first.strip_prefix("listening on ").unwrap().to_owned();
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .json(&json!({"model": "kiro-claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = http
        .get(format!("{base}/v0/management/credentials"))
        .bearer_auth(MGMT)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["credentials"][0]["id"], "kiro:ide");
    child.start_kill().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).await.unwrap();
    assert!(err.contains("using the Kiro IDE session"), "{err}");
    assert!(!err.contains("aorAAAAAG-cli-ide-session") && !err.contains("aoaSOCIAL-cli-ide"), "no secret in logs");
}
