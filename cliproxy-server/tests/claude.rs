//! Claude subscription accounts through the real server against the mock's Claude OAuth side: Go-original
//! `claude-*.json` files, the OAuth request shape, refresh (expired 401, refused refresh token), the unified
//! rate-limit windows across two accounts, and the authorization-code login through the management endpoints
//! with the callback listener and with a pasted code.

mod support;

use std::path::Path;
use std::time::Duration;

use cliproxy_mock::accounts::{Issued, Mint};
use cliproxy_mock::{Fault, FaultKind, IdP, MockServer};
use serde_json::{Value, json};
use support::*;

fn config(auth_dir: &Path) -> String {
    format!(
        r#"
api-keys: ["{CLIENT_KEY}"]
remote-management: {{ secret-key: "{MGMT}" }}
timeouts: {{ first-byte-seconds: 5, idle-seconds: 5 }}
max-retry-interval: 0
auth-dir: "{}"
claude-endpoints:
  auth-base-url: "{{MOCK}}"
  token-url: "{{MOCK}}/v1/oauth/token"
  api-base-url: "{{MOCK}}"
"#,
        auth_dir.display()
    )
}

/// Mints an account on the mock and writes its tokens as the Go original stores them (`expired` in its local
/// offset, as Go's RFC 3339 formatting writes it).
fn go_file(mock: &MockServer, dir: &Path, email: &str, expires_in: u64) -> Issued {
    let issued = mock.accounts(IdP::Claude).mint(Mint { email: Some(email.into()), ..Mint::default() });
    let at = std::time::SystemTime::now() + Duration::from_secs(expires_in + 8 * 3600);
    let expired = cliproxy_core::timefmt::format_rfc3339(at).replace('Z', "+08:00");
    let v = json!({"id_token": "", "access_token": issued.access_token, "refresh_token": issued.refresh_token,
        "last_refresh": "2025-08-01T10:00:00+08:00", "email": email, "type": "claude", "expired": expired});
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("claude-{email}.json")), serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    issued
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

async fn credential(rig: &Rig, id: &str) -> Value {
    let list = rig.management("/v0/management/credentials").await;
    list["credentials"].as_array().unwrap().iter().find(|c| c["id"] == id).cloned().unwrap_or(Value::Null)
}

#[tokio::test]
async fn go_original_files_load_and_requests_go_out_as_claude_code_sends_them() {
    let mock = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let issued = go_file(&mock, dir.path(), "go@example.com", 6 * 3600);
    let rig = start_on_mock(mock, &config(dir.path())).await;

    let c = credential(&rig, "claude:claude-go@example.com").await;
    assert_eq!((c["provider"].as_str(), c["state"].as_str()), (Some("claude"), Some("ready")), "{c}");
    let models: Value =
        rig.http.get(rig.url("/v1/models")).bearer_auth(CLIENT_KEY).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert!(
        ids.contains(&"claude-sonnet-4-5-20250929") && ids.contains(&"claude/claude-sonnet-4-5-20250929"),
        "{ids:?}"
    );

    // Unusual spacing and key order: only the model name may change on the way.
    let body = "{ \"max_tokens\":64,\"model\" : \"claude/claude-sonnet-4-5\",  \"messages\":[{\"role\":\"user\",\"content\":\"mock:{\\\"reply\\\":\\\"via subscription\\\"}\"}] }";
    let r = rig
        .http
        .post(rig.url("/v1/messages"))
        .header("x-api-key", CLIENT_KEY)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "prompt-caching-2024-07-31")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["content"][0]["text"], "via subscription");

    let sent = rig.mock.requests().into_iter().rfind(|r| r.path == "/v1/messages").unwrap();
    assert_eq!(sent.query, "beta=true");
    assert_eq!(sent.header("authorization"), Some(format!("Bearer {}", issued.access_token).as_str()));
    assert_eq!(sent.header("x-api-key"), None);
    let betas: Vec<&str> = sent.header("anthropic-beta").unwrap().split(',').collect();
    for beta in
        ["prompt-caching-2024-07-31", "oauth-2025-04-20", "claude-code-20250219", "interleaved-thinking-2025-05-14"]
    {
        assert!(betas.contains(&beta), "{betas:?}");
    }
    assert_eq!(sent.header("x-app"), Some("cli"));
    assert_eq!(sent.header("anthropic-dangerous-direct-browser-access"), Some("true"));
    assert!(sent.header("user-agent").unwrap().starts_with("claude-cli/"));
    assert_eq!(std::str::from_utf8(&sent.body).unwrap(), body.replace("claude/claude-sonnet-4-5", "claude-sonnet-4-5"));
    assert_eq!(rig.mock.endpoint_hits("/v1/oauth/token"), 0, "a token outside the 4 h lead is used as is");
}

#[tokio::test]
async fn an_expired_401_refreshes_once_and_retries_and_the_file_holds_the_rotated_tokens() {
    let mock = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let issued = go_file(&mock, dir.path(), "exp@example.com", 6 * 3600);
    // The token looks fresh to the proxy, but the upstream says it expired.
    assert!(mock.accounts(IdP::Claude).expire(&issued.access_token));
    let rig = start_on_mock(mock, &config(dir.path())).await;

    let r = rig.messages(&messages_body("claude-sonnet-4-5", &say(json!({"reply": "after refresh"})), false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["content"][0]["text"], "after refresh");
    assert_eq!(rig.mock.endpoint_hits("/v1/oauth/token"), 1);
    assert_eq!(rig.mock.endpoint_hits_for("/v1/messages", &issued.access_token), 1);

    let file = read_json(&dir.path().join("claude-exp@example.com.json"));
    let rotated = file["refresh_token"].as_str().unwrap();
    assert_ne!(rotated, issued.refresh_token.as_deref().unwrap());
    assert_ne!(file["access_token"], issued.access_token.as_str());
    assert_eq!((file["type"].as_str(), file["email"].as_str()), (Some("claude"), Some("exp@example.com")));
    let expired = cliproxy_core::timefmt::parse_rfc3339(file["expired"].as_str().unwrap()).unwrap();
    let left = expired.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(left > Duration::from_secs(7 * 3600), "{left:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("claude-exp@example.com.json")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[tokio::test]
async fn a_refused_refresh_token_needs_login_while_the_other_account_serves() {
    let mock = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let dead = go_file(&mock, dir.path(), "a-dead@example.com", 0);
    let alive = go_file(&mock, dir.path(), "b-alive@example.com", 6 * 3600);
    assert!(mock.accounts(IdP::Claude).revoke("a-dead@example.com"));
    let rig = start_on_mock(mock, &config(dir.path())).await;

    for _ in 0..3 {
        let r = rig.messages(&messages_body("claude-sonnet-4-5", "hi", false)).await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(rig.mock.hits(&alive.access_token), 3);
    assert_eq!(rig.mock.hits(&dead.access_token), 0, "an expired token is refreshed before it is sent");
    let c = credential(&rig, "claude:claude-a-dead@example.com").await;
    assert_eq!(c["state"], "needs_login", "{c}");
    let reason = c["reason"].as_str().unwrap();
    assert!(reason.starts_with("needs login") && reason.contains("login claude"), "{reason}");
    assert_eq!(credential(&rig, "claude:claude-b-alive@example.com").await["state"], "ready");
}

#[tokio::test]
async fn a_rejected_five_hour_window_moves_traffic_to_the_next_account_until_its_reset() {
    let mock = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let first = go_file(&mock, dir.path(), "a-first@example.com", 6 * 3600);
    let second = go_file(&mock, dir.path(), "b-second@example.com", 6 * 3600);
    let fault = Fault { kind: Some(FaultKind::RateLimit), retry_after: Some(json!(3)), ..Fault::default() };
    assert!(mock.accounts(IdP::Claude).set_fault("a-first@example.com", Some(fault)));
    let rig = start_on_mock(mock, &config(dir.path())).await;

    // A streamed request: the first account's 429 moves it to the second before any byte reached the client.
    let r = rig.messages(&messages_body("claude-sonnet-4-5", &say(json!({"reply": "from the second"})), true)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(anthropic_stream_text(&r.text().await.unwrap()), "from the second");
    assert_eq!((rig.mock.hits(&first.access_token), rig.mock.hits(&second.access_token)), (1, 1));

    let c = credential(&rig, "claude:claude-a-first@example.com").await;
    let five = &c["quota"]["windows"]["5h"];
    assert_eq!(five["status"], "rejected", "{c}");
    let reset = cliproxy_core::timefmt::parse_rfc3339(five["resets_at"].as_str().unwrap()).unwrap();
    let ahead = reset.duration_since(std::time::SystemTime::now()).unwrap_or_default();
    assert!(ahead <= Duration::from_secs(4), "{ahead:?}");
    let other = credential(&rig, "claude:claude-b-second@example.com").await;
    assert_eq!(other["quota"]["windows"]["5h"]["status"], "allowed", "{other}");
    assert_eq!(other["quota"]["windows"]["5h"]["utilization"], 0.25);
    let cooling = rig.management("/v0/management/cooldowns").await;
    assert_eq!(cooling["cooldowns"][0]["credential"], "claude:claude-a-first@example.com", "{cooling}");

    for _ in 0..4 {
        assert_eq!(rig.messages(&messages_body("claude-sonnet-4-5", "hi", false)).await.status(), 200);
    }
    assert_eq!(rig.mock.hits(&first.access_token), 1, "a cooling account gets no traffic");

    // The window resets: the account serves again once its reset time passed.
    rig.mock.accounts(IdP::Claude).set_fault("a-first@example.com", None);
    tokio::time::sleep(ahead + Duration::from_millis(1200)).await;
    for _ in 0..4 {
        assert_eq!(rig.messages(&messages_body("claude-sonnet-4-5", "hi", false)).await.status(), 200);
    }
    assert!(rig.mock.hits(&first.access_token) >= 2, "the first account came back");
    let c = credential(&rig, "claude:claude-a-first@example.com").await;
    assert_eq!(c["quota"]["windows"]["5h"]["status"], "allowed", "{c}");
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Follows an authorize URL as a browser that approved would, without following the redirect: the address the
/// browser is sent back to.
async fn approve(authorize_url: &str) -> String {
    let r = no_redirects().get(authorize_url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    r.headers()["location"].to_str().unwrap().to_owned()
}

fn query(url: &str) -> std::collections::HashMap<String, String> {
    let q = url.split_once('?').unwrap().1;
    form_urlencoded::parse(q.as_bytes()).into_owned().collect()
}

async fn poll_login(rig: &Rig, id: &str) -> Value {
    for _ in 0..100 {
        let s = rig.management(&format!("/v0/management/login/{id}")).await;
        if s["status"] != "pending" {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("login {id} never finished");
}

async fn start_login(rig: &Rig) -> Value {
    let r = rig
        .http
        .post(rig.url("/v0/management/login/claude"))
        .bearer_auth(MGMT)
        .json(&json!({"callback_port": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn login_through_the_management_endpoint_and_the_callback_listener() {
    let dir = tempfile::tempdir().unwrap();
    let rig = start_with(&config(dir.path())).await;
    let flow = start_login(&rig).await;
    let authorize = flow["verification_uri"].as_str().unwrap();
    assert!(authorize.starts_with(&format!("{}/oauth/authorize?", rig.mock.url())), "{flow}");
    let redirect = flow["redirect_uri"].as_str().unwrap();
    let port = flow["callback"].as_str().unwrap().rsplit(':').next().unwrap();
    assert_eq!(redirect, format!("http://localhost:{port}/callback"));
    assert_eq!(query(authorize)["redirect_uri"], redirect);
    assert_eq!(flow["status"], "pending");

    let back = approve(authorize).await;
    assert!(back.starts_with(redirect), "{back}");
    // A forged return (another state) is refused and leaves the login waiting.
    let forged = format!("{redirect}?code=planted&state=not-this-login");
    let r = rig.http.get(forged).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = rig.http.get(&back).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let page = r.text().await.unwrap();
    assert!(page.contains("Logged in"), "{page}");

    let done = poll_login(&rig, flow["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "success", "{done}");
    let id = done["credential"].as_str().unwrap();
    let email = rig.mock.accounts(IdP::Claude).list().pop().unwrap().email;
    assert_eq!(id, format!("claude:claude-{email}"));
    let file = read_json(&dir.path().join(format!("claude-{email}.json")));
    assert_eq!((file["type"].as_str(), file["email"].as_str()), (Some("claude"), Some(email.as_str())));
    for key in ["access_token", "refresh_token", "expired", "last_refresh", "id_token"] {
        assert!(file.get(key).is_some(), "{key} missing: {file}");
    }
    // The new account serves at once.
    let r = rig.messages(&messages_body("claude-sonnet-4-5", &say(json!({"reply": "new account"})), false)).await;
    assert_eq!(r.json::<Value>().await.unwrap()["content"][0]["text"], "new account");
    // The listener is gone once the login ended.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(rig.http.get(&back).send().await.is_err());
}

#[tokio::test]
async fn login_with_a_pasted_code() {
    let dir = tempfile::tempdir().unwrap();
    let rig = start_with(&config(dir.path())).await;
    let flow = start_login(&rig).await;
    let id = flow["id"].as_str().unwrap();
    let back = query(&approve(flow["verification_uri"].as_str().unwrap()).await);
    let post = |code: String| {
        rig.http
            .post(rig.url(&format!("/v0/management/login/{id}/code")))
            .bearer_auth(MGMT)
            .json(&json!({"code": code}))
            .send()
    };
    let r = post(format!("{}#wrong-state", back["code"])).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("another login"));
    let r = post(format!("{}#{}", back["code"], back["state"])).await.unwrap();
    assert_eq!(r.status(), 200);
    let done = poll_login(&rig, id).await;
    assert_eq!(done["status"], "success", "{done}");
    assert!(done["credential"].as_str().unwrap().starts_with("claude:claude-user-"));

    let r = post("x#y".into()).await.unwrap();
    assert_eq!(r.status(), 400, "a finished login takes no more codes");
    let unknown = rig
        .http
        .post(rig.url("/v0/management/login/nope/code"))
        .bearer_auth(MGMT)
        .json(&json!({"code": "x#y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let unauthenticated = rig.http.post(rig.url(&format!("/v0/management/login/{id}/code"))).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
}

#[tokio::test]
async fn logins_started_again_on_the_same_port_share_its_listener() {
    let dir = tempfile::tempdir().unwrap();
    let rig = start_with(&config(dir.path())).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let start = || async {
        let r = rig
            .http
            .post(rig.url("/v0/management/login/claude"))
            .bearer_auth(MGMT)
            .json(&json!({"callback_port": port}))
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()
    };
    let (first, second) = (start().await, start().await);
    assert_eq!(first["callback"], second["callback"], "{first}\n{second}");
    assert_eq!(second["redirect_uri"], format!("http://localhost:{port}/callback"));

    // The newer login's return reaches the newer login; the older one still waits, and then gets its own.
    for flow in [&second, &first] {
        let back = approve(flow["verification_uri"].as_str().unwrap()).await;
        let r = rig.http.get(&back).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        assert_eq!(poll_login(&rig, flow["id"].as_str().unwrap()).await["status"], "success");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(), "the listener closed after the last login");
}
