//! [`NativeClient`]: the core client, one per JavaScript `Client`.

use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;

use bytes::Bytes;
use cliproxy_core::config::{Config, Loaded};
use cliproxy_core::dialects::Dialect;
use cliproxy_core::{Client, Error, ProxyRequest, Reply};
use napi::bindgen_prelude::{Either, PromiseRaw, within_runtime_if_available};
use napi::{Env, Result};
use napi_derive::napi;

use crate::cancel::NativeCancel;
use crate::error::{cancelled, to_napi};
use crate::login::NativeLoginFlow;
use crate::stream::NativeStream;

#[napi]
pub struct NativeClient {
    pub(crate) client: Client,
    warnings: Vec<String>,
}

/// A complete (non-streamed) answer: the JSON body in the request's dialect and the credential that served it.
#[napi(object)]
pub struct JsonReply {
    pub body: String,
    pub credential: String,
}

#[napi(object)]
pub struct ModelEntry {
    pub id: String,
    pub providers: Vec<String>,
}

#[napi(object)]
pub struct CooldownEntry {
    pub credential: String,
    pub model: Option<String>,
    /// Milliseconds since the Unix epoch (JavaScript turns it into a `Date`).
    pub until_ms: f64,
    pub reason: String,
}

/// Token and request counts are `i64` because N-API has no unsigned 64-bit number; they never get near 2⁶³.
#[napi(object)]
pub struct UsageEntry {
    pub credential: String,
    pub provider: String,
    pub requests: i64,
    pub failures: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub quota: Option<serde_json::Value>,
}

#[napi(object)]
pub struct CredentialEntry {
    pub id: String,
    pub provider: String,
    pub priority: i32,
    pub state: String,
    pub state_reason: Option<String>,
    pub expires_at_ms: Option<f64>,
}

fn epoch_ms(t: SystemTime) -> f64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(before) => -before.duration().as_secs_f64() * 1000.0,
    }
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn parse_dialect(name: &str) -> std::result::Result<Dialect, Error> {
    match name {
        "openai" => Ok(Dialect::OpenAiChat),
        "anthropic" => Ok(Dialect::Anthropic),
        other => Err(Error::invalid_request(format!("unknown dialect `{other}` (expected openai or anthropic)"))),
    }
}

fn header_map(headers: Option<HashMap<String, String>>) -> std::result::Result<http::HeaderMap, Error> {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers.into_iter().flatten() {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| Error::invalid_request(format!("invalid header name `{name}`: {e}")))?;
        let value = http::HeaderValue::from_str(&value)
            .map_err(|e| Error::invalid_request(format!("invalid value for header `{name}`: {e}")))?;
        map.append(name, value);
    }
    Ok(map)
}

impl NativeClient {
    /// Builds the core client inside napi's tokio runtime, whose handle the client keeps for its timers and
    /// background tasks (token refreshes, logins).
    fn build(loaded: std::result::Result<Loaded, Error>) -> Result<Self> {
        let Loaded { config, warnings } = loaded.map_err(to_napi)?;
        let client = within_runtime_if_available(|| Client::new(config)).map_err(to_napi)?;
        Ok(NativeClient { client, warnings })
    }
}

#[napi]
impl NativeClient {
    /// From an object with the `config.yaml` keys.
    #[napi(factory)]
    pub fn from_value(config: serde_json::Value) -> Result<Self> {
        Self::build(Config::from_value(&config))
    }

    #[napi(factory)]
    pub fn from_yaml(text: String) -> Result<Self> {
        Self::build(Config::from_yaml(&text))
    }

    /// Reads a YAML file. This and the credential files of `auth-dir` are read synchronously, once, like
    /// `require` reads a module; no later call blocks.
    #[napi(factory)]
    pub fn from_file(path: String) -> Result<Self> {
        Self::build(Config::from_file(Path::new(&path)))
    }

    /// What the configuration contained that was ignored (unknown keys and the like).
    #[napi(getter)]
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    /// Sends one request (`dialect`: `openai` or `anthropic`; `body`: JSON text). Resolves to a [`JsonReply`]
    /// or, when the body asks for `"stream": true`, a [`NativeStream`]. `cancel` aborts the call; it also
    /// closes the stream the call produced.
    #[napi]
    pub fn send<'env>(
        &self,
        env: &'env Env,
        dialect: String,
        body: String,
        headers: Option<HashMap<String, String>>,
        cancel: Option<&NativeCancel>,
    ) -> Result<PromiseRaw<'env, Either<JsonReply, NativeStream>>> {
        let client = self.client.clone();
        let token = cancel.map(|c| c.token.clone()).unwrap_or_default();
        let prepared = parse_dialect(&dialect).and_then(|d| Ok((d, header_map(headers)?)));
        env.spawn_future(async move {
            let (dialect, headers) = prepared.map_err(to_napi)?;
            if token.is_cancelled() {
                return Err(to_napi(cancelled()));
            }
            let request = ProxyRequest { headers, ..ProxyRequest::new(dialect, Bytes::from(body.into_bytes())) };
            // Dropping `send` on cancellation drops the upstream request with it.
            let reply = tokio::select! {
                reply = client.send(request) => reply,
                () = token.cancelled() => Err(cancelled()),
            };
            match reply.map_err(to_napi)? {
                Reply::Json { body, credential } => {
                    let body = String::from_utf8(body.into())
                        .map_err(|e| to_napi(Error::upstream(None, format!("the answer is not valid UTF-8: {e}"))))?;
                    Ok(Either::A(JsonReply { body, credential }))
                }
                Reply::Stream(events) => Ok(Either::B(NativeStream::new(events, token))),
            }
        })
    }

    #[napi]
    pub fn models(&self) -> Vec<ModelEntry> {
        self.client
            .models()
            .into_iter()
            .map(|m| ModelEntry { id: m.id, providers: m.providers.into_iter().map(String::from).collect() })
            .collect()
    }

    #[napi]
    pub fn cooldowns(&self) -> Vec<CooldownEntry> {
        self.client
            .cooldowns()
            .into_iter()
            .map(|c| CooldownEntry {
                credential: c.credential,
                model: c.model,
                until_ms: epoch_ms(c.until),
                reason: c.reason,
            })
            .collect()
    }

    /// Clears cooldowns of one credential, one model, both, or (neither given) everything. Returns how many
    /// entries were cleared.
    #[napi]
    pub fn reset_cooldowns(&self, credential: Option<String>, model: Option<String>) -> u32 {
        let n = self.client.reset_cooldowns(credential.as_deref(), model.as_deref());
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    #[napi]
    pub fn usage(&self) -> Vec<UsageEntry> {
        self.client
            .usage()
            .into_iter()
            .map(|u| UsageEntry {
                credential: u.credential,
                provider: u.provider.to_owned(),
                requests: count(u.requests),
                failures: count(u.failures),
                input_tokens: count(u.input_tokens),
                output_tokens: count(u.output_tokens),
                quota: u.quota,
            })
            .collect()
    }

    #[napi]
    pub fn credentials(&self) -> Vec<CredentialEntry> {
        self.client
            .credentials()
            .into_iter()
            .map(|c| CredentialEntry {
                id: c.id,
                provider: c.provider.to_owned(),
                priority: c.priority,
                state: c.state.as_str().to_owned(),
                state_reason: c.state.reason().map(str::to_owned),
                expires_at_ms: c.expires_at.map(epoch_ms),
            })
            .collect()
    }

    /// Starts an interactive login; resolves once the provider handed out what the user needs. An
    /// authorization-code login (Claude) also listens for the browser's return on its callback port.
    #[napi]
    pub fn login<'env>(
        &self,
        env: &'env Env,
        provider: String,
        options: Option<serde_json::Value>,
    ) -> Result<PromiseRaw<'env, NativeLoginFlow>> {
        let client = self.client.clone();
        let options = options.unwrap_or_else(|| serde_json::Value::Object(Default::default()));
        env.spawn_future(async move {
            let started = cliproxy_server::callback::start_login(&client, &provider, options, true).await;
            Ok(NativeLoginFlow::new(started.map_err(to_napi)?.flow))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dialect_names() {
        assert_eq!(parse_dialect("openai").unwrap(), Dialect::OpenAiChat);
        assert_eq!(parse_dialect("anthropic").unwrap(), Dialect::Anthropic);
        assert_eq!(parse_dialect("gemini").unwrap_err().kind(), cliproxy_core::ErrorKind::InvalidRequest);
    }

    #[test]
    fn headers_are_validated() {
        let ok = header_map(Some(HashMap::from([("anthropic-beta".into(), "x".into())]))).unwrap();
        assert_eq!(ok["anthropic-beta"], "x");
        assert!(header_map(Some(HashMap::from([("bad name".into(), "x".into())]))).is_err());
        assert!(header_map(Some(HashMap::from([("x".into(), "a\nb".into())]))).is_err());
        assert!(header_map(None).unwrap().is_empty());
    }

    #[test]
    fn epoch_milliseconds() {
        assert_eq!(epoch_ms(SystemTime::UNIX_EPOCH + Duration::from_millis(1500)), 1500.0);
        assert_eq!(epoch_ms(SystemTime::UNIX_EPOCH - Duration::from_secs(1)), -1000.0);
    }
}
