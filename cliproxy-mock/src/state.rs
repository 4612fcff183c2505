//! What the mock remembers across requests: hit counters per key and per endpoint, cancelled streams, the
//! most recent requests, and the accounts its OAuth servers issued. Apart from those accounts (see
//! [`crate::accounts`]) only observations live here; answers never depend on them.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use serde::Serialize;

use crate::accounts::Issuers;

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
    pub by_endpoint: HashMap<String, EndpointHits>,
}

/// Requests that reached one path, in all and per credential.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct EndpointHits {
    pub total: u64,
    pub by_key: HashMap<String, u64>,
}

/// Shared state of one mock server.
#[derive(Debug, Default)]
pub struct State {
    total: AtomicU64,
    cancelled: AtomicU64,
    by_key: Mutex<HashMap<String, u64>>,
    by_endpoint: Mutex<HashMap<String, EndpointHits>>,
    requests: Mutex<VecDeque<RecordedRequest>>,
    pub(crate) issuers: Issuers,
}

impl State {
    /// Counts a request that reached a completion endpoint, under its key when it had one.
    pub fn count_hit(&self, key: Option<&str>) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Some(key) = key {
            increment(&mut lock(&self.by_key), key);
        }
    }

    /// Counts a request to `path` (any endpoint, any answer), under its credential when it had one.
    pub fn count_endpoint(&self, path: &str, key: Option<&str>) {
        let mut by_endpoint = lock(&self.by_endpoint);
        let hits = match by_endpoint.get_mut(path) {
            Some(hits) => hits,
            None => by_endpoint.entry(path.to_owned()).or_default(),
        };
        hits.total += 1;
        if let Some(key) = key {
            increment(&mut hits.by_key, key);
        }
    }

    /// Requests to `path`, with `key` only when given.
    pub fn endpoint_hits(&self, path: &str, key: Option<&str>) -> u64 {
        let by_endpoint = lock(&self.by_endpoint);
        let Some(hits) = by_endpoint.get(path) else { return 0 };
        match key {
            Some(key) => hits.by_key.get(key).copied().unwrap_or(0),
            None => hits.total,
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
        HitsView {
            total: self.total_hits(),
            cancelled: self.cancelled(),
            by_key: lock(&self.by_key).clone(),
            by_endpoint: lock(&self.by_endpoint).clone(),
        }
    }

    /// Clears the counters and the recorded requests; accounts stay.
    pub fn reset(&self) {
        self.total.store(0, Ordering::Relaxed);
        self.cancelled.store(0, Ordering::Relaxed);
        lock(&self.by_key).clear();
        lock(&self.by_endpoint).clear();
        lock(&self.requests).clear();
    }
}

fn increment(counts: &mut HashMap<String, u64>, key: &str) {
    match counts.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counts.insert(key.to_owned(), 1);
        }
    }
}

/// Locks a mutex, going on after a panic elsewhere: counters stay meaningful either way.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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
        state.count_endpoint("/a", Some("k"));
        state.count_endpoint("/a", None);
        assert_eq!((state.endpoint_hits("/a", None), state.endpoint_hits("/a", Some("k"))), (2, 1));
        assert_eq!(state.endpoint_hits("/b", None), 0);
        for n in 0..RECORDED_REQUESTS + 3 {
            state.record(request(n));
        }
        let requests = state.requests();
        assert_eq!(requests.len(), RECORDED_REQUESTS);
        assert_eq!(requests[0].path, "/3");
        assert_eq!(requests[0].header("X-API-KEY"), Some("sk-1"));
        assert_eq!(requests[0].json().unwrap()["a"], 1);
        state.reset();
        assert_eq!((state.total_hits(), state.hits("sk-1"), state.endpoint_hits("/a", None)), (0, 0, 0));
        assert!(state.requests().is_empty());
    }
}
