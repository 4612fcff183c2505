//! What the mock remembers across requests: hit counters per key, cancelled streams, and the
//! most recent requests. Only observations live here; answers never depend on it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde::Serialize;

/// How many requests [`crate::MockServer::requests`] keeps.
pub const RECORDED_REQUESTS: usize = 256;

/// One request as the mock received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string, empty when there is none.
    pub query: String,
    /// Headers in arrival order; names are lower case.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl RecordedRequest {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON, when it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// The JSON form served by `GET /__mock/requests`.
#[derive(Serialize)]
pub(crate) struct RequestView<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a [(String, String)],
    body: std::borrow::Cow<'a, str>,
}

impl<'a> From<&'a RecordedRequest> for RequestView<'a> {
    fn from(r: &'a RecordedRequest) -> Self {
        RequestView {
            method: &r.method,
            path: &r.path,
            query: &r.query,
            headers: &r.headers,
            body: String::from_utf8_lossy(&r.body),
        }
    }
}

/// The JSON form served by `GET /__mock/hits`.
#[derive(Serialize)]
pub(crate) struct HitsView {
    pub total: u64,
    pub cancelled: u64,
    pub by_key: HashMap<String, u64>,
}

/// Shared observations of one mock server.
#[derive(Debug, Default)]
pub struct State {
    total: AtomicU64,
    cancelled: AtomicU64,
    by_key: Mutex<HashMap<String, u64>>,
    requests: Mutex<VecDeque<RecordedRequest>>,
}

impl State {
    /// Counts a request that reached a completion endpoint, under its key when it had one.
    pub fn count_hit(&self, key: Option<&str>) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Some(key) = key {
            let mut by_key = lock(&self.by_key);
            match by_key.get_mut(key) {
                Some(n) => *n += 1,
                None => {
                    by_key.insert(key.to_owned(), 1);
                }
            }
        }
    }

    pub fn count_cancelled(&self) {
        self.cancelled.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record(&self, request: RecordedRequest) {
        let mut requests = lock(&self.requests);
        if requests.len() == RECORDED_REQUESTS {
            requests.pop_front();
        }
        requests.push_back(request);
    }

    pub fn hits(&self, key: &str) -> u64 {
        lock(&self.by_key).get(key).copied().unwrap_or(0)
    }

    pub fn total_hits(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub fn cancelled(&self) -> u64 {
        self.cancelled.load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests).iter().cloned().collect()
    }

    pub(crate) fn hits_view(&self) -> HitsView {
        HitsView { total: self.total_hits(), cancelled: self.cancelled(), by_key: lock(&self.by_key).clone() }
    }

    pub fn reset(&self) {
        self.total.store(0, Ordering::Relaxed);
        self.cancelled.store(0, Ordering::Relaxed);
        lock(&self.by_key).clear();
        lock(&self.requests).clear();
    }
}

/// Locks a mutex, going on after a panic elsewhere: counters stay meaningful either way.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(n: usize) -> RecordedRequest {
        RecordedRequest {
            method: "POST".into(),
            path: format!("/{n}"),
            query: String::new(),
            headers: vec![("x-api-key".into(), "sk-1".into())],
            body: Bytes::from_static(b"{\"a\":1}"),
        }
    }

    #[test]
    fn counters_and_ring_buffer() {
        let state = State::default();
        state.count_hit(Some("sk-1"));
        state.count_hit(Some("sk-1"));
        state.count_hit(None);
        state.count_cancelled();
        assert_eq!((state.hits("sk-1"), state.total_hits(), state.cancelled()), (2, 3, 1));
        for n in 0..RECORDED_REQUESTS + 3 {
            state.record(request(n));
        }
        let requests = state.requests();
        assert_eq!(requests.len(), RECORDED_REQUESTS);
        assert_eq!(requests[0].path, "/3");
        assert_eq!(requests[0].header("X-API-KEY"), Some("sk-1"));
        assert_eq!(requests[0].json().unwrap()["a"], 1);
        state.reset();
        assert_eq!((state.total_hits(), state.hits("sk-1")), (0, 0));
        assert!(state.requests().is_empty());
    }
}
