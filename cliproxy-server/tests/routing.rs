//! Routing and resilience through the real server: failover, cooldowns, timeouts, rate limits, management.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

fn two_keys(extra: &str) -> String {
    format!(
        r#"
api-keys: ["{CLIENT_KEY}"]
remote-management: {{ secret-key: "{MGMT}" }}
timeouts: {{ first-byte-seconds: 1, idle-seconds: 5 }}
{extra}
openai-compatibility:
  - name: pool
    base-url: "{{MOCK}}/v1"
    api-key-entries: [{{ api-key: sk-one }}, {{ api-key: sk-two }}]
    models: [{{ name: gpt-4o }}]
claude-api-key:
  - {{ api-key: sk-ant-one, base-url: "{{MOCK}}" }}
  - {{ api-key: sk-ant-two, base-url: "{{MOCK}}" }}
"#
    )
}

fn limited(key: &str, secs: &str) -> String {
    say(json!({"reply": "ok", "per_key": {key: {"kind": "rate_limit", "retry_after": secs}}}))
}

#[tokio::test]
async fn a_rate_limited_key_rests_while_the_other_serves_everything() {
    let rig = start_with(&two_keys("")).await;
    let text = limited("sk-one", "30");
    for _ in 0..10 {
        let r = rig.chat(&chat_body("gpt-4o", &text, false)).await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(rig.mock.hits("sk-one"), 1, "the limited key gets no request during its cooldown");
    assert_eq!(rig.mock.hits("sk-two"), 10);
    let cds = rig.management("/v0/management/cooldowns").await;
    let list = cds["cooldowns"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{cds}");
    assert_eq!(list[0]["credential"], "openai-compat:pool-0");
    assert!(list[0]["seconds_left"].as_u64().unwrap() > 25);

    // Resetting makes the key eligible again at once.
    let r = rig.http.delete(rig.url("/v0/management/cooldowns")).bearer_auth(MGMT).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["cleared"], 1);
    for _ in 0..2 {
        rig.chat(&chat_body("gpt-4o", "hi", false)).await;
    }
    assert_eq!(rig.mock.hits("sk-one"), 2, "round-robin reaches the reset key again");
}

#[tokio::test]
async fn all_keys_cooling_is_429_with_retry_after_in_both_dialects() {
    let rig = start_with(&two_keys("max-retry-interval: 0")).await;
    let both = say(json!({"fault": {"kind": "rate_limit", "retry_after": "40"}}));
    let r = rig.chat(&chat_body("gpt-4o", &both, false)).await;
    assert_eq!(r.status(), 429);
    // Now nothing is tried at all: the answer comes from the cooldown state.
    let hits = rig.mock.total_hits();
    let r = rig.chat(&chat_body("gpt-4o", "hi", false)).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((35..=40).contains(&retry), "{retry}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "model_cooldown", "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("gpt-4o"));
    assert_eq!(rig.mock.total_hits(), hits);

    let r = rig.messages(&messages_body("claude-sonnet-4-5", &both, false)).await;
    assert_eq!(r.status(), 429);
    let r = rig.messages(&messages_body("claude-sonnet-4-5", "hi", false)).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
}

#[tokio::test]
async fn short_cooldowns_are_waited_out_within_max_retry_interval() {
    let rig = start_with(&two_keys("max-retry-interval: 5")).await;
    let both = say(json!({"fault": {"kind": "rate_limit", "retry_after": "1"}}));
    assert_eq!(rig.chat(&chat_body("gpt-4o", &both, false)).await.status(), 429);
    let started = Instant::now();
    let r = rig.chat(&chat_body("gpt-4o", "hi", false)).await;
    assert_eq!(r.status(), 200, "waited for the 1 s cooldown instead of failing");
    assert!(started.elapsed() >= Duration::from_millis(500), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_hung_upstream_is_abandoned_at_the_first_byte_timeout() {
    let rig = start_with(&two_keys("")).await;
    let text = say(
        json!({"reply": "from the live key", "per_key": {"sk-one": {"hang_ms": 10000}, "sk-ant-one": {"hang_ms": 10000}}}),
    );
    for (model, stream) in [("gpt-4o", false), ("gpt-4o", true), ("claude-sonnet-4-5", false)] {
        let started = Instant::now();
        let r = rig.chat(&chat_body(model, &text, stream)).await;
        assert_eq!(r.status(), 200);
        let body = r.text().await.unwrap();
        let text = if stream { openai_stream_text(&body) } else { body.clone() };
        assert!(text.contains("from the live key"), "{body}");
        assert!(started.elapsed() < Duration::from_secs(4), "{model}: {:?}", started.elapsed());
    }
    assert_eq!(rig.mock.hits("sk-two"), 2);
    assert_eq!(rig.mock.hits("sk-one"), 1, "the hung key cools down after timing out");
}

#[tokio::test]
async fn disable_cooling_keeps_every_key_eligible() {
    let rig = start_with(&two_keys("disable-cooling: true")).await;
    let text = limited("sk-one", "30");
    for _ in 0..4 {
        assert_eq!(rig.chat(&chat_body("gpt-4o", &text, false)).await.status(), 200);
    }
    assert!(rig.mock.hits("sk-one") >= 2, "without cooldowns the limited key keeps being tried");
}

#[tokio::test]
async fn overloaded_fails_over_without_cooling() {
    let rig = start_with(&two_keys("")).await;
    let text = say(json!({"reply": "ok", "per_key": {"sk-ant-one": {"kind": "overloaded"}}}));
    let r = rig.messages(&messages_body("claude-sonnet-4-5", &text, false)).await;
    assert_eq!(r.status(), 200);
    let cds = rig.server.client().cooldowns();
    assert!(cds.is_empty(), "529 is not the key's fault: {cds:?}");
}

#[tokio::test]
async fn invalid_upstream_key_is_disabled_until_reset() {
    let rig = start_with(&two_keys("")).await;
    let text = say(json!({"reply": "ok", "per_key": {"sk-one": {"kind": "invalid_key"}}}));
    for _ in 0..4 {
        assert_eq!(rig.chat(&chat_body("gpt-4o", &text, false)).await.status(), 200);
    }
    assert_eq!(rig.mock.hits("sk-one"), 1);
    let creds: Value = rig
        .http
        .get(rig.url("/v0/management/credentials"))
        .header("x-management-key", MGMT)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let one =
        creds["credentials"].as_array().unwrap().iter().find(|c| c["id"] == "openai-compat:pool-0").unwrap().clone();
    assert_eq!(one["state"], "disabled", "{creds}");
    rig.http
        .delete(rig.url("/v0/management/cooldowns?credential=openai-compat:pool-0"))
        .bearer_auth(MGMT)
        .send()
        .await
        .unwrap();
    assert!(rig.server.client().credentials().iter().all(|c| c.state.as_str() == "ready"));
}

#[tokio::test]
async fn client_rate_limits_answer_429_with_retry_after() {
    let extra = format!(
        "rate-limit: {{ rpm: 2, per-key: {{ other-key: {{ rpm: 100 }} }} }}\napi-keys: [\"{CLIENT_KEY}\", other-key]"
    );
    let rig = start_with(&two_keys("").replace(&format!("api-keys: [\"{CLIENT_KEY}\"]"), &extra)).await;
    for _ in 0..2 {
        assert_eq!(rig.chat(&chat_body("gpt-4o", "hi", false)).await.status(), 200);
    }
    let r = rig.chat(&chat_body("gpt-4o", "hi", false)).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    let r = rig
        .http
        .post(rig.url("/v1/chat/completions"))
        .bearer_auth("other-key")
        .json(&chat_body("gpt-4o", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "another key has its own allowance");
}

#[tokio::test]
async fn credentials_over_their_rate_limit_are_skipped() {
    let yaml = two_keys("").replace(
        "api-key-entries: [{ api-key: sk-one }, { api-key: sk-two }]",
        "api-key-entries: [{ api-key: sk-one }, { api-key: sk-two }]\n    rate-limit: { rpm: 1 }",
    );
    let rig = start_with(&yaml).await;
    assert_eq!(rig.chat(&chat_body("gpt-4o", "hi", false)).await.status(), 200);
    assert_eq!(rig.chat(&chat_body("gpt-4o", "hi", false)).await.status(), 200);
    assert_eq!(rig.mock.hits("sk-one"), 1);
    assert_eq!(rig.mock.hits("sk-two"), 1);
}

#[tokio::test]
async fn priority_and_fill_first() {
    let yaml = format!(
        r#"
api-keys: ["{CLIENT_KEY}"]
routing: {{ strategy: fill-first }}
openai-compatibility:
  - {{ name: low, base-url: "{{MOCK}}/v1", priority: 0, api-key-entries: [{{ api-key: sk-low }}], models: [{{ name: gpt-4o }}] }}
  - {{ name: high, base-url: "{{MOCK}}/v1", priority: 5, api-key-entries: [{{ api-key: sk-high-a }}, {{ api-key: sk-high-b }}], models: [{{ name: gpt-4o }}] }}
"#
    );
    let rig = start_with(&yaml).await;
    for _ in 0..3 {
        rig.chat(&chat_body("gpt-4o", "hi", false)).await;
    }
    assert_eq!(rig.mock.hits("sk-high-a"), 3, "fill-first sticks to the first of the best group");
    assert_eq!(rig.mock.hits("sk-low") + rig.mock.hits("sk-high-b"), 0);
    // When the whole best group cools down, the lower priority takes over.
    let both = say(
        json!({"reply": "x", "per_key": {"sk-high-a": {"kind": "rate_limit", "retry_after": "30"}, "sk-high-b": {"kind": "rate_limit", "retry_after": "30"}}}),
    );
    assert_eq!(rig.chat(&chat_body("gpt-4o", &both, false)).await.status(), 200);
    assert_eq!(rig.mock.hits("sk-low"), 1);
}

#[tokio::test]
async fn model_names_aliases_prefixes_and_exclusions() {
    let yaml = format!(
        r#"
api-keys: ["{CLIENT_KEY}"]
claude-api-key:
  - {{ api-key: sk-ant-team, base-url: "{{MOCK}}", prefix: team, excluded-models: ["*haiku*"] }}
openai-compatibility:
  - {{ name: router, base-url: "{{MOCK}}/v1", api-key-entries: [{{ api-key: sk-r }}], models: [{{ name: "vendor/model-x:free", alias: mx }}] }}
"#
    );
    let rig = start_with(&yaml).await;
    let ok = |r: reqwest::Response| async move { r.status().as_u16() };
    assert_eq!(ok(rig.chat(&chat_body("mx", "hi", false)).await).await, 200);
    let up = rig.mock.requests().into_iter().last().unwrap();
    assert_eq!(up.json().unwrap()["model"], "vendor/model-x:free");
    assert_eq!(ok(rig.chat(&chat_body("router/mx", "hi", false)).await).await, 200);
    assert_eq!(ok(rig.chat(&chat_body("team/claude-sonnet-4-5", "hi", false)).await).await, 200);
    assert_eq!(rig.mock.requests().into_iter().last().unwrap().json().unwrap()["model"], "claude-sonnet-4-5");
    assert_eq!(ok(rig.chat(&chat_body("claude/claude-sonnet-4-5", "hi", false)).await).await, 200);
    assert_eq!(ok(rig.chat(&chat_body("claude-3-5-haiku-20241022", "hi", false)).await).await, 404, "excluded");
    let models: Value =
        rig.http.get(rig.url("/v1/models")).bearer_auth(CLIENT_KEY).send().await.unwrap().json().await.unwrap();
    let ids: Vec<&str> = models["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"mx") && ids.contains(&"claude-sonnet-4-5-20250929"), "{ids:?}");
    assert!(!ids.iter().any(|i| i.contains("haiku")), "{ids:?}");
    let anthropic: Value = rig
        .http
        .get(rig.url("/v1/models"))
        .header("x-api-key", CLIENT_KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(anthropic["has_more"], false);
    assert_eq!(anthropic["data"][0]["type"], "model");
}

#[tokio::test]
async fn management_is_guarded_and_throttles_repeated_failures() {
    let rig = start().await;
    let get = |key: &'static str| rig.http.get(rig.url("/v0/management/cooldowns")).bearer_auth(key).send();
    assert_eq!(get(MGMT).await.unwrap().status(), 200);
    for _ in 0..4 {
        assert_eq!(get("wrong").await.unwrap().status(), 401);
    }
    let r = get("wrong").await.unwrap();
    assert_eq!(r.status(), 429, "the fifth wrong secret locks the address");
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(get("wrong").await.unwrap().status(), 429);
    assert_eq!(get(MGMT).await.unwrap().status(), 200, "the right secret over loopback is never locked out");

    let open =
        start_with(&default_config().replace(&format!("remote-management: {{ secret-key: \"{MGMT}\" }}"), "")).await;
    let r = open.http.get(open.url("/v0/management/cooldowns")).bearer_auth(MGMT).send().await.unwrap();
    assert_eq!(r.status(), 404, "no secret: management does not exist");
}

#[tokio::test]
async fn entries_without_a_model_list_offer_the_upstream_list() {
    let yaml = format!(
        "api-keys: [\"{CLIENT_KEY}\"]\nopenai-compatibility: [{{ name: open, base-url: \"{{MOCK}}/v1\", api-key-entries: [{{ api-key: sk-o }}] }}]\n"
    );
    let rig = start_with(&yaml).await;
    let mut ids = Vec::new();
    for _ in 0..50 {
        let v: Value =
            rig.http.get(rig.url("/v1/models")).bearer_auth(CLIENT_KEY).send().await.unwrap().json().await.unwrap();
        ids = v["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
        if !ids.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ids.iter().any(|i| i == "gpt-4o-mini"), "{ids:?}");
    // A catch-all entry still serves names its upstream did not list.
    assert_eq!(rig.chat(&chat_body("some-other-model", "hi", false)).await.status(), 200);
}

#[tokio::test]
async fn an_overloaded_stream_start_fails_over_without_cooling_the_key() {
    let rig = start_with(&two_keys("")).await;
    let text = say(json!({"reply": "from the other key", "per_key": {"sk-ant-one": {"stream_error_after": 0}}}));
    for _ in 0..2 {
        let r = rig.messages(&messages_body("claude-sonnet-4-5", &text, true)).await;
        assert_eq!(r.status(), 200);
        assert_eq!(anthropic_stream_text(&r.text().await.unwrap()), "from the other key");
    }
    assert!(rig.server.client().cooldowns().is_empty(), "overloaded is not the key's fault");
    assert_eq!(rig.mock.hits("sk-ant-two"), 2);
    assert_eq!(rig.mock.hits("sk-ant-one"), 2, "still tried: an overloaded upstream earns no cooldown");
}
