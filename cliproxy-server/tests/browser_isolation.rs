//! What web pages can do with the server: by default nothing (no CORS headers, cross-origin inference requests
//! refused, non-loopback `Host` names refused on a loopback bind); `cors.allow-origins` opens `/v1/*` to the
//! listed origins only, never management. (`tests/browser/` shows the same in a real Chromium.)

mod support;

use serde_json::Value;
use support::*;

fn cors_headers(h: &reqwest::header::HeaderMap) -> Vec<String> {
    h.keys().map(|k| k.as_str().to_owned()).filter(|k| k.starts_with("access-control-")).collect()
}

#[tokio::test]
async fn by_default_no_route_sends_cors_headers() {
    let rig = start().await;
    let origin = "https://evil.example";
    let chat = rig
        .http
        .post(rig.url("/v1/chat/completions"))
        .bearer_auth(CLIENT_KEY)
        .json(&chat_body("compat-gpt-4o", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    assert!(cors_headers(chat.headers()).is_empty());
    for path in ["/v1/chat/completions", "/v1/models", "/v0/management/cooldowns", "/healthz"] {
        let r = rig
            .http
            .request(reqwest::Method::OPTIONS, rig.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{path}: preflights still answer 204");
        assert!(cors_headers(r.headers()).is_empty(), "{path}: {:?}", r.headers());
        assert!(r.bytes().await.unwrap().is_empty());
        let r = rig.http.get(rig.url(path)).header("origin", origin).bearer_auth(MGMT).send().await.unwrap();
        assert!(cors_headers(r.headers()).is_empty(), "{path}: {:?}", r.headers());
    }
}

#[tokio::test]
async fn pages_cannot_drive_the_inference_routes_without_an_allowed_origin() {
    let rig = start().await;
    // A form post or a `no-cors` fetch needs no preflight: it must still not reach an upstream.
    let r = rig
        .http
        .post(rig.url("/v1/chat/completions"))
        .header("origin", "https://evil.example")
        .header("content-type", "text/plain")
        .bearer_auth(CLIENT_KEY)
        .body(serde_json::to_string(&chat_body("compat-gpt-4o", "hi", false)).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "permission_error", "{v}");
    assert_eq!(v["error"]["code"], "forbidden_origin", "{v}");
    let r = rig.messages_with(&messages_body("claude-sonnet-4-5", "hi", false), &[("origin", "null")]).await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error", "Anthropic's shape: {v}");
    assert_eq!(rig.mock.total_hits(), 0);
}

#[tokio::test]
async fn allow_origins_opens_v1_to_listed_origins_only() {
    let yaml = default_config().replace("api-keys:", "cors: { allow-origins: [\"https://app.example\"] }\napi-keys:");
    let rig = start_with(&yaml).await;
    let preflight = |path: &str, origin: &str| {
        rig.http
            .request(reqwest::Method::OPTIONS, rig.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization, content-type")
            .send()
    };
    let r = preflight("/v1/chat/completions", "https://app.example").await.unwrap();
    assert_eq!(r.status(), 204, "{:?}", r.headers());
    assert_eq!(r.headers().get("access-control-allow-origin").unwrap(), "https://app.example", "{:?}", r.headers());
    let allowed = r.headers()["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");
    assert!(r.bytes().await.unwrap().is_empty());

    let r = preflight("/v1/chat/completions", "https://other.example").await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    for path in ["/v0/management/cooldowns", "/v0/oauth/kiro/accounts"] {
        let r = preflight(path, "https://app.example").await.unwrap();
        assert_eq!(r.status(), 204);
        assert!(cors_headers(r.headers()).is_empty(), "{path}: management never answers cross-origin");
    }

    let r = rig
        .http
        .post(rig.url("/v1/chat/completions"))
        .header("origin", "https://app.example")
        .bearer_auth(CLIENT_KEY)
        .json(&chat_body("compat-gpt-4o", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example");
    let r = rig
        .http
        .post(rig.url("/v1/chat/completions"))
        .header("origin", "https://other.example")
        .bearer_auth(CLIENT_KEY)
        .json(&chat_body("compat-gpt-4o", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(rig.mock.total_hits(), 1);
}

#[tokio::test]
async fn a_loopback_bind_answers_only_loopback_host_names() {
    let rig = start().await;
    let port = rig.server.local_addr().port();
    let get = |host: String| rig.http.get(rig.url("/v1/models")).header("host", host).bearer_auth(CLIENT_KEY).send();
    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}"), "localhost".into(), format!("[::1]:{port}")]
    {
        assert_eq!(get(host.clone()).await.unwrap().status(), 200, "{host}");
    }
    // A rebinding page's own name, re-pointed at 127.0.0.1.
    let r = get(format!("rebind.evil.example:{port}")).await.unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "forbidden_host", "{v}");
    let r =
        rig.messages_with(&messages_body("claude-sonnet-4-5", "hi", false), &[("host", "rebind.evil.example")]).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["type"], "permission_error");
    let r = rig
        .http
        .get(rig.url("/v0/management/cooldowns"))
        .header("host", "rebind.evil.example")
        .bearer_auth(MGMT)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.json::<Value>().await.unwrap()["error"].is_string(), "management's shape");
    assert_eq!(rig.mock.total_hits(), 0);
}
