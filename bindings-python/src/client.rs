//! The core [`Client`](cliproxy_core::Client) as the Python package sees it: JSON text in, JSON text (or a
//! [`NativeStream`]) out. Building request bodies and parsing answers stays in Python, where `json` is fast and
//! the shapes are the user's own dicts; this side only moves bytes and waits.
//!
//! Fork safety: a client remembers the process that built its core client. Used in a forked child, it builds a
//! new core client from the same configuration on the child's own runtime (cooldowns and usage counters start
//! afresh there) and leaks the parent's, whose sockets and tasks belong to the parent.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cliproxy_core::client::CredentialState;
use cliproxy_core::client::{CredentialInfo, ModelInfo, UsageInfo};
use cliproxy_core::config::Config;
use cliproxy_core::dialects::Dialect;
use cliproxy_core::login::LoginFlow;
use cliproxy_core::transport::TokioRuntime;
use cliproxy_core::{Error, ErrorKind, ProxyRequest, Reply};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::PyBytes;
use serde_json::{Value, json};

use crate::errors::{IntoPyResult, to_py_err};
use crate::runtime::{block_on, runtime, spawn_for_asyncio};
use crate::stream::NativeStream;

/// A parsed configuration and what was odd about it.
#[pyclass(module = "cliproxy._native", name = "Config", frozen)]
pub struct NativeConfig {
    pub config: Config,
    warnings: Vec<String>,
}

impl NativeConfig {
    fn loaded(loaded: cliproxy_core::config::Loaded) -> Self {
        NativeConfig { config: loaded.config, warnings: loaded.warnings }
    }
}

#[pymethods]
impl NativeConfig {
    /// From JSON text of a dict with the `config.yaml` keys.
    #[staticmethod]
    fn from_json(py: Python<'_>, text: PyBackedStr) -> PyResult<Self> {
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| to_py_err(py, &Error::config(format!("config is not a JSON-like dict: {e}"))))?;
        Config::from_value(&value).py(py).map(Self::loaded)
    }

    /// From YAML text, as in `config.yaml`.
    #[staticmethod]
    fn from_yaml(py: Python<'_>, text: PyBackedStr) -> PyResult<Self> {
        Config::from_yaml(&text).py(py).map(Self::loaded)
    }

    /// From a YAML file.
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> PyResult<Self> {
        py.detach(|| Config::from_file(&path)).py(py).map(Self::loaded)
    }

    /// Unknown keys and other things that were ignored while loading.
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }
}

struct Core {
    pid: u32,
    /// Always `Some` while the wrapper lives; taken only in `Drop`, to be dropped or leaked.
    client: Option<cliproxy_core::Client>,
}

fn build_core(config: Config) -> Result<cliproxy_core::Client, Error> {
    let runtime = runtime();
    // The transport and the model-list refresh task are created on this process's runtime.
    let _context = runtime.enter();
    cliproxy_core::Client::builder(config)
        .runtime(Arc::new(TokioRuntime::from_handle(runtime.handle().clone())))
        .build()
}

/// The core client. Thread-safe: every method may be called from any thread at any time.
#[pyclass(module = "cliproxy._native", name = "Client", frozen)]
pub struct NativeClient {
    config: Config,
    core: Mutex<Core>,
}

impl NativeClient {
    /// The core client of this process (rebuilt after a fork).
    fn core(&self, py: Python<'_>) -> PyResult<cliproxy_core::Client> {
        let pid = std::process::id();
        let mut core = self.core.lock().unwrap_or_else(|p| p.into_inner());
        if core.pid != pid {
            let fresh = build_core(self.config.clone()).py(py)?;
            // The parent's client stays alive, unused: its sockets are registered with the parent's epoll set.
            std::mem::forget(core.client.replace(fresh));
            core.pid = pid;
        }
        Ok(core.client.clone().expect("the core client is present until drop"))
    }
}

impl Drop for NativeClient {
    fn drop(&mut self) {
        let core = self.core.get_mut().unwrap_or_else(|p| p.into_inner());
        let client = core.client.take();
        if core.pid != std::process::id() {
            std::mem::forget(client);
        }
    }
}

fn dialect(name: &str) -> Result<Dialect, Error> {
    match name {
        "openai" => Ok(Dialect::OpenAiChat),
        "anthropic" => Ok(Dialect::Anthropic),
        other => Err(Error::invalid_request(format!("unknown dialect `{other}` (openai, anthropic)"))),
    }
}

fn request(dialect_name: &str, body: &str, headers: Vec<(String, String)>) -> Result<ProxyRequest, Error> {
    let mut request = ProxyRequest::new(dialect(dialect_name)?, Bytes::copy_from_slice(body.as_bytes()));
    for (name, value) in headers {
        let name = http::HeaderName::try_from(name.as_str())
            .map_err(|_| Error::invalid_request(format!("invalid header name `{name}`")))?;
        let value = http::HeaderValue::try_from(value)
            .map_err(|_| Error::invalid_request(format!("invalid value for header `{name}`")))?;
        request.headers.append(name, value);
    }
    Ok(request)
}

/// `bytes` of a JSON answer, or a [`NativeStream`].
fn reply_to_py(py: Python<'_>, reply: Reply) -> PyResult<Py<PyAny>> {
    match reply {
        Reply::Json { body, .. } => Ok(PyBytes::new(py, &body).into_any().unbind()),
        Reply::Stream(stream) => Ok(Py::new(py, NativeStream::new(stream))?.into_any()),
    }
}

fn seconds_since_epoch(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

fn models_json(models: &[ModelInfo]) -> Value {
    models.iter().map(|m| json!({ "id": m.id, "providers": m.providers })).collect()
}

fn usage_json(usage: &[UsageInfo]) -> Value {
    usage
        .iter()
        .map(|u| {
            json!({
                "credential": u.credential,
                "provider": u.provider,
                "requests": u.requests,
                "failures": u.failures,
                "input_tokens": u.input_tokens,
                "output_tokens": u.output_tokens,
                "quota": u.quota,
            })
        })
        .collect()
}

fn credentials_json(credentials: &[CredentialInfo]) -> Value {
    credentials
        .iter()
        .map(|c| {
            let reason = match &c.state {
                CredentialState::Ready => None,
                CredentialState::NeedsLogin(r) | CredentialState::Disabled(r) => Some(r.as_str()),
            };
            json!({
                "id": c.id,
                "provider": c.provider,
                "priority": c.priority,
                "state": c.state.as_str(),
                "reason": reason,
                "expires_at": c.expires_at.map(seconds_since_epoch),
            })
        })
        .collect()
}

#[pymethods]
impl NativeClient {
    #[new]
    fn new(py: Python<'_>, config: &NativeConfig) -> PyResult<Self> {
        let config = config.config.clone();
        let client = build_core(config.clone()).py(py)?;
        Ok(NativeClient { config, core: Mutex::new(Core { pid: std::process::id(), client: Some(client) }) })
    }

    /// Sends one request (`dialect` is `openai` or `anthropic`, `body` its JSON text) and waits for the answer:
    /// `bytes` of JSON, or a `Stream` once the first event arrived.
    fn send(
        &self,
        py: Python<'_>,
        dialect: PyBackedStr,
        body: PyBackedStr,
        headers: Vec<(String, String)>,
    ) -> PyResult<Py<PyAny>> {
        let request = request(&dialect, &body, headers).py(py)?;
        let client = self.core(py)?;
        let reply = block_on(py, async move { client.send(request).await })?.py(py)?;
        reply_to_py(py, reply)
    }

    /// [`send`](Self::send) for asyncio: returns a future of the running loop.
    fn send_async<'py>(
        &self,
        py: Python<'py>,
        dialect: PyBackedStr,
        body: PyBackedStr,
        headers: Vec<(String, String)>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let request = request(&dialect, &body, headers).py(py)?;
        let client = self.core(py)?;
        let deliver = Box::new(|py: Python<'_>, reply: Result<Reply, Error>| reply_to_py(py, reply.py(py)?));
        Ok(spawn_for_asyncio(py, async move { client.send(request).await }, deliver)?.0)
    }

    fn models_json(&self, py: Python<'_>) -> PyResult<String> {
        Ok(models_json(&self.core(py)?.models()).to_string())
    }

    fn cooldowns_json(&self, py: Python<'_>) -> PyResult<String> {
        let list: Value = self
            .core(py)?
            .cooldowns()
            .iter()
            .map(|c| {
                let left = c.until.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
                json!({
                    "credential": c.credential,
                    "model": c.model,
                    "until": seconds_since_epoch(c.until),
                    "seconds_left": left.as_secs_f64(),
                    "reason": c.reason,
                })
            })
            .collect();
        Ok(list.to_string())
    }

    #[pyo3(signature = (credential=None, model=None))]
    fn reset_cooldowns(&self, py: Python<'_>, credential: Option<String>, model: Option<String>) -> PyResult<usize> {
        Ok(self.core(py)?.reset_cooldowns(credential.as_deref(), model.as_deref()))
    }

    fn usage_json(&self, py: Python<'_>) -> PyResult<String> {
        Ok(usage_json(&self.core(py)?.usage()).to_string())
    }

    fn credentials_json(&self, py: Python<'_>) -> PyResult<String> {
        Ok(credentials_json(&self.core(py)?.credentials()).to_string())
    }

    /// Starts an interactive login; `options` is JSON text of the provider's options. An authorization-code
    /// login (Claude) also listens for the browser's return on its callback port, as the server does.
    fn login(&self, py: Python<'_>, provider: String, options: PyBackedStr) -> PyResult<NativeLoginFlow> {
        let options = login_options(&options).py(py)?;
        let client = self.core(py)?;
        let flow = block_on(py, start_login(client, provider, options))?.py(py)?;
        Ok(NativeLoginFlow { flow })
    }

    fn login_async<'py>(&self, py: Python<'py>, provider: String, options: PyBackedStr) -> PyResult<Bound<'py, PyAny>> {
        let options = login_options(&options).py(py)?;
        let client = self.core(py)?;
        let deliver = Box::new(|py: Python<'_>, flow: Result<LoginFlow, Error>| {
            Ok(Py::new(py, NativeLoginFlow { flow: flow.py(py)? })?.into_any())
        });
        Ok(spawn_for_asyncio(py, start_login(client, provider, options), deliver)?.0)
    }
}

async fn start_login(client: cliproxy_core::Client, provider: String, options: Value) -> Result<LoginFlow, Error> {
    Ok(cliproxy_server::callback::start_login(&client, &provider, options, true).await?.flow)
}

fn login_options(text: &str) -> Result<Value, Error> {
    serde_json::from_str(text).map_err(|e| Error::invalid_request(format!("login options are not JSON-like: {e}")))
}

/// A running interactive login.
#[pyclass(module = "cliproxy._native", name = "LoginFlow", frozen)]
pub struct NativeLoginFlow {
    flow: LoginFlow,
}

#[pymethods]
impl NativeLoginFlow {
    #[getter]
    fn id(&self) -> &str {
        &self.flow.id
    }

    #[getter]
    fn provider(&self) -> &str {
        &self.flow.provider
    }

    #[getter]
    fn verification_uri(&self) -> &str {
        &self.flow.verification_uri
    }

    #[getter]
    fn verification_uri_complete(&self) -> Option<&str> {
        self.flow.verification_uri_complete.as_deref()
    }

    #[getter]
    fn user_code(&self) -> &str {
        &self.flow.user_code
    }

    #[getter]
    fn expires_in(&self) -> u64 {
        self.flow.expires_in
    }

    /// Authorization-code logins: where the browser comes back with the code.
    #[getter]
    fn redirect_uri(&self) -> Option<&str> {
        self.flow.redirect_uri.as_deref()
    }

    /// Hands an authorization-code login the code the browser came back with (`code#state`, or the callback
    /// address); raises when it is not this login's.
    fn complete(&self, py: Python<'_>, code: &str) -> PyResult<()> {
        self.flow.complete(code).py(py)
    }

    /// `pending`, `success` or `failed`.
    #[getter]
    fn status(&self) -> &'static str {
        self.flow.status().as_str()
    }

    /// Blocks until the user approved (the new credential's id) or the login failed (raises).
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<String> {
        let flow = self.flow.clone();
        block_on(py, wait_for_login(flow, timeout))?.py(py)
    }

    #[pyo3(signature = (timeout=None))]
    fn wait_async<'py>(&self, py: Python<'py>, timeout: Option<f64>) -> PyResult<Bound<'py, PyAny>> {
        let flow = self.flow.clone();
        let deliver =
            Box::new(|py: Python<'_>, id: Result<String, Error>| Ok(id.py(py)?.into_pyobject(py)?.into_any().unbind()));
        Ok(spawn_for_asyncio(py, wait_for_login(flow, timeout), deliver)?.0)
    }
}

async fn wait_for_login(flow: LoginFlow, timeout: Option<f64>) -> Result<String, Error> {
    let Some(secs) = timeout else { return flow.wait().await };
    let limit = Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX);
    match tokio::time::timeout(limit, flow.wait()).await {
        Ok(done) => done,
        Err(_) => Err(Error::new(ErrorKind::Timeout, format!("the login did not finish within {secs} s"))),
    }
}
