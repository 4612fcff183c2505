//! Shared test rig: a mock upstream and the real server on loopback ports, and a plain HTTP client.
#![allow(dead_code)]

use std::time::Duration;

use cliproxy_core::config::Config;
use cliproxy_mock::MockServer;
use cliproxy_server::{ConnLimits, ServerHandle};
use serde_json::{Value, json};

pub const CLIENT_KEY: &str = "test-client-key";
pub const MGMT: &str = "test-mgmt-secret";

pub struct Rig {
    pub mock: MockServer,
    pub server: ServerHandle,
    pub base: String,
    pub http: reqwest::Client,
}

/// Config text with `{MOCK}` (mock URL) substituted. The default adds one Claude key, one OpenAI-compatible
/// entry (`mockcompat`, model `gpt-4o` as alias `compat-gpt-4o`), a client key and a management secret.
pub fn default_config() -> String {
    format!(
        r#"
api-keys: ["{CLIENT_KEY}"]
remote-management: {{ secret-key: "{MGMT}" }}
timeouts: {{ first-byte-seconds: 5, idle-seconds: 5 }}
claude-api-key:
  - api-key: sk-ant-test-1
    base-url: "{{MOCK}}"
openai-compatibility:
  - name: mockcompat
    base-url: "{{MOCK}}/v1"
    api-key-entries: [{{ api-key: sk-compat-1 }}]
    models: [{{ name: gpt-4o, alias: compat-gpt-4o }}, {{ name: gpt-4o-mini }}]
"#
    )
}

pub async fn start() -> Rig {
    start_with(&default_config()).await
}

pub async fn start_with(yaml: &str) -> Rig {
    let mock = MockServer::start().await;
    start_on_mock(mock, yaml).await
}

pub async fn start_on_mock(mock: MockServer, yaml: &str) -> Rig {
    start_with_limits(mock, yaml, ConnLimits::default()).await
}

/// Starts the server with connection limits of the test's choosing (short timeouts, a small cap).
pub async fn start_with_limits(mock: MockServer, yaml: &str, limits: ConnLimits) -> Rig {
    let text = yaml.replace("{MOCK}", &mock.url());
    let config: Config = Config::from_yaml(&text).expect("test config parses").config;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = cliproxy_core::Client::new(config).expect("client builds");
    let server = cliproxy_server::serve_with(client, listener, limits).await.expect("server starts");
    let base = format!("http://{}", server.local_addr());
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    Rig { mock, server, base, http }
}

impl Rig {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET a management route with the management secret, as JSON.
    pub async fn management(&self, path: &str) -> Value {
        self.http.get(self.url(path)).bearer_auth(MGMT).send().await.unwrap().json().await.unwrap()
    }

    /// POST an OpenAI chat request with the client key.
    pub async fn chat(&self, body: &Value) -> reqwest::Response {
        self.http.post(self.url("/v1/chat/completions")).bearer_auth(CLIENT_KEY).json(body).send().await.unwrap()
    }

    /// POST `body` to an inference route with the client key (and the Anthropic version header, which the
    /// OpenAI routes ignore).
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        let r = self.http.post(self.url(path)).bearer_auth(CLIENT_KEY).header("anthropic-version", "2023-06-01");
        r.json(body).send().await.unwrap()
    }

    /// POST an Anthropic messages request with the client key.
    pub async fn messages(&self, body: &Value) -> reqwest::Response {
        self.messages_with(body, &[]).await
    }

    /// POST an Anthropic messages request with the client key and `extra` headers.
    pub async fn messages_with(&self, body: &Value, extra: &[(&str, &str)]) -> reqwest::Response {
        let mut r = self
            .http
            .post(self.url("/v1/messages"))
            .header("x-api-key", CLIENT_KEY)
            .header("anthropic-version", "2023-06-01");
        for (k, v) in extra {
            r = r.header(*k, *v);
        }
        r.json(body).send().await.unwrap()
    }
}

/// A user message whose text scripts the mock.
pub fn say(directive: Value) -> String {
    cliproxy_mock::directive(&directive)
}

pub fn chat_body(model: &str, text: &str, stream: bool) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}], "stream": stream})
}

pub fn messages_body(model: &str, text: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": text}], "stream": stream})
}

/// A `get_weather(city)` tool in OpenAI's shape.
pub fn weather_tool_chat() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
}

/// The same tool in Anthropic's shape.
pub fn weather_tool_anthropic() -> Value {
    json!([{"name": "get_weather", "description": "Weather of a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
}

/// Parses an SSE body into (event name, data) pairs.
pub fn sse_events(body: &str) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    for block in body.replace("\r\n", "\n").split("\n\n") {
        let mut name = None;
        let mut data = Vec::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
            }
        }
        if !data.is_empty() {
            out.push((name, data.join("\n")));
        }
    }
    out
}

/// The assistant text of an OpenAI SSE body (concatenated content deltas).
pub fn openai_stream_text(body: &str) -> String {
    sse_events(body)
        .into_iter()
        .filter(|(_, d)| d != "[DONE]")
        .filter_map(|(_, d)| serde_json::from_str::<Value>(&d).ok())
        .flat_map(|v| v["choices"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["delta"]["content"].as_str().map(str::to_owned))
        .collect()
}

/// The assistant text of an Anthropic SSE body (concatenated text deltas).
pub fn anthropic_stream_text(body: &str) -> String {
    sse_events(body)
        .into_iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(&d).ok())
        .filter(|v| v["type"] == "content_block_delta" && v["delta"]["type"] == "text_delta")
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_owned))
        .collect()
}
