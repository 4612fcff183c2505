//! The example works end to end against the mock upstream.

use cliproxy_core::Client;
use cliproxy_core::config::Config;
use cliproxy_mock::MockServer;

#[tokio::test]
async fn streams_the_answer() {
    let mock = MockServer::start().await;
    let yaml = format!(
        "openai-compatibility: [{{name: m, base-url: \"{}/v1\", api-key-entries: [{{api-key: sk-1}}]}}]",
        mock.url()
    );
    let client = Client::new(Config::from_yaml(&yaml).unwrap().config).unwrap();
    let mut out = Vec::new();
    let prompt = cliproxy_mock::directive(&serde_json::json!({"reply": "Grüße 🌍", "chunk": 3}));
    embedded_client::stream_answer(&client, "gpt-4o", &prompt, &mut out).await.unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "Grüße 🌍");
}
