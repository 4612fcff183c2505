//! Kiro (AWS CodeWhisperer): Claude models through a Kiro login, the wire side.
//!
//! - [`models`]: Kiro ids ⇄ listed names; [`request`]: IR → `conversationState`; [`response`]: the AWS event
//!   stream → IR events; [`fingerprint`]: per-account SDK headers; [`usage`]: the usage-limits answer.
//! - Calls go to `q.{region}` first and to `codewhisperer.{region}` (with `X-Amz-Target`) when the first
//!   answers 429 / 5xx or cannot be reached. The region comes from the profile ARN, never from the login's
//!   OIDC region (that mistake sends requests to hosts that do not exist).
//! - Each credential has its own wire value holding the account's [`Profile`] (hosts, device identity, profile
//!   ARN), which the account lifecycle (`auth::kiro`) keeps current.

pub mod fingerprint;
pub mod models;
pub mod request;
pub mod response;
pub mod usage;

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use serde_json::Value;

use self::fingerprint::Fingerprint;
use super::failure::Failure;
use super::{Provider, UpstreamCall, UpstreamStream, finish_request};
use crate::config::KiroEndpoints;
use crate::dialects::Dialect;
use crate::error::{Error, ErrorKind, Result};
use crate::types::{ChatRequest, ChatResponse};

/// The provider id (credential ids are `kiro:…`).
pub const KIRO_ID: &str = "kiro";
/// `X-Amz-Target` of the fallback (codewhisperer) endpoint.
pub const TARGET: &str = "AmazonCodeWhispererStreamingService.GenerateAssistantResponse";

/// The resolved endpoints.
#[derive(Debug, Clone)]
pub struct Endpoints(pub KiroEndpoints);

impl Endpoints {
    fn fill(template: &str, region: &str) -> String {
        template.replace("{region}", region).trim_end_matches('/').to_owned()
    }

    pub fn oidc_base(&self, region: &str) -> String {
        Self::fill(&self.0.oidc_base_url, region)
    }
    pub fn auth_base(&self, region: &str) -> String {
        Self::fill(&self.0.auth_base_url, region)
    }
    pub fn api_base(&self, region: &str) -> String {
        Self::fill(&self.0.api_base_url, region)
    }
    pub fn fallback_api_base(&self, region: &str) -> String {
        Self::fill(&self.0.fallback_api_base_url, region)
    }
}

/// What the wire needs of one account: its hosts, its device identity, and the profile ARN that names the API
/// region (set at login, and updated by refreshes that return a new one).
pub struct Profile {
    pub endpoints: Endpoints,
    pub fingerprint: Fingerprint,
    profile_arn: Mutex<Option<String>>,
    api_region: Option<String>,
}

impl Profile {
    pub fn new(
        endpoints: Endpoints,
        fingerprint: Fingerprint,
        profile_arn: Option<String>,
        api_region: Option<String>,
    ) -> Profile {
        Profile {
            endpoints,
            fingerprint,
            profile_arn: Mutex::new(profile_arn),
            api_region: api_region.filter(|r| valid_region(r)),
        }
    }

    pub fn profile_arn(&self) -> Option<String> {
        self.profile_arn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_profile_arn(&self, arn: String) {
        *self.profile_arn.lock().unwrap_or_else(|p| p.into_inner()) = Some(arn);
    }

    /// The API region: configured, else the profile ARN's, else us-east-1.
    pub fn api_region(&self) -> String {
        self.api_region
            .clone()
            .or_else(|| self.profile_arn().as_deref().and_then(arn_region).map(str::to_owned))
            .unwrap_or_else(|| "us-east-1".into())
    }
}

/// The region of a profile ARN (`arn:aws:codewhisperer:{region}:…`).
pub fn arn_region(arn: &str) -> Option<&str> {
    let region = arn.split(':').nth(3)?;
    valid_region(region).then_some(region)
}

/// Regions go into host names: only `[a-z0-9-]`.
pub fn valid_region(r: &str) -> bool {
    !r.is_empty() && r.len() <= 32 && r.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The Kiro wire format for one account.
pub struct Kiro {
    pub profile: Arc<Profile>,
}

impl Kiro {
    fn request(&self, call: &UpstreamCall<'_>, body: Bytes, fallback: bool) -> Result<http::Request<Bytes>> {
        let region = self.profile.api_region();
        let endpoints = &self.profile.endpoints;
        let base = if fallback { endpoints.fallback_api_base(&region) } else { endpoints.api_base(&region) };
        let mut b = http::Request::post(format!("{base}/generateAssistantResponse"))
            .header(http::header::AUTHORIZATION, format!("Bearer {}", call.access.token.expose()));
        b = if fallback {
            b.header(http::header::CONTENT_TYPE, "application/x-amz-json-1.0").header("x-amz-target", TARGET)
        } else {
            b.header(http::header::CONTENT_TYPE, "application/json")
        };
        b = self.profile.fingerprint.apply(b, &fingerprint::invocation_id(), 3);
        if let Some(h) = b.headers_mut() {
            for (k, v) in call.headers {
                h.insert(k.clone(), v.clone());
            }
        }
        if let Some(p) = call.proxy_url {
            b = b.extension(crate::transport::UpstreamProxy(p.to_owned()));
        }
        finish_request(b, body, KIRO_ID)
    }
}

impl Provider for Kiro {
    fn id(&self) -> &'static str {
        KIRO_ID
    }

    fn dialect(&self) -> Option<Dialect> {
        None
    }

    fn prefixes(&self) -> Vec<String> {
        vec![KIRO_ID.into()]
    }

    fn resolve_model(&self, model: &str) -> Option<String> {
        models::resolve(model)
    }

    fn catalogue(&self) -> Vec<String> {
        models::catalogue()
    }

    fn encode_request(&self, req: &ChatRequest) -> Result<Bytes> {
        let arn = self.profile.profile_arn();
        let enc = request::Encoding { profile_arn: arn.as_deref(), conversation_id: fingerprint::invocation_id() };
        Ok(Bytes::from(request::encode(req, &enc).to_string()))
    }

    fn parse_response(&self, body: &[u8]) -> Result<ChatResponse> {
        response::parse_whole(&ChatRequest::default(), new_id(), body)
    }

    fn parse_response_for(&self, request: &ChatRequest, body: &[u8]) -> Result<ChatResponse> {
        response::parse_whole(request, new_id(), body)
    }

    fn stream_decoder(&self) -> Box<dyn UpstreamStream> {
        Box::new(response::KiroStream::new(&ChatRequest::default(), new_id()))
    }

    fn stream_decoder_for(&self, request: &ChatRequest) -> Box<dyn UpstreamStream> {
        Box::new(response::KiroStream::new(request, new_id()))
    }

    fn build_http(&self, call: &UpstreamCall<'_>, body: Bytes) -> Result<http::Request<Bytes>> {
        self.request(call, body, false)
    }

    fn fallback_http(&self, call: &UpstreamCall<'_>, body: Bytes) -> Option<Result<http::Request<Bytes>>> {
        Some(self.request(call, body, true))
    }

    fn failure(&self, status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> Failure {
        failure(status, headers, body, now)
    }
}

/// The message of a Kiro error body: `{"message"}`, `{"error":{"message"}}`, `{"Message"}`, else the text.
pub fn error_message(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let m = v
        .get("message")
        .or(v.get("Message"))
        .or(v.pointer("/error/message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(300).collect());
    match v.get("reason").or(v.pointer("/error/reason")).and_then(Value::as_str) {
        Some(r) => format!("{m} ({r})"),
        None => m,
    }
}

/// What a Kiro error answer says:
/// - 402 `MONTHLY_REQUEST_COUNT` (or the older 400 "… reached for this month"): the account's monthly quota is
///   used up (its reset date is the account's to add);
/// - 403 `SUSPENDED`: the account is suspended;
/// - 401, or 403 "bearer token … invalid": the token expired or was revoked;
/// - 429 / `ThrottlingException`: a rate limit;
/// - 400 "Improperly formed request": the request is at fault.
pub fn failure(status: u16, headers: &http::HeaderMap, body: &[u8], now: SystemTime) -> Failure {
    let text = String::from_utf8_lossy(body);
    let message = error_message(body);
    let throttled = status == 400 && text.contains("ThrottlingException");
    let status_meaning = if throttled { 429 } else { status };
    let error = Error::new(ErrorKind::from_status(status_meaning), format!("Kiro: {message}")).with_status(status);
    let f = Failure::from_status(status_meaning, headers, error, now);
    let monthly = text.contains("MONTHLY_REQUEST_COUNT") || (status == 400 && text.contains("reached for this month"));
    if monthly || status == 402 {
        f.quota(format!("Kiro monthly limit reached: {message}"), None)
    } else if status == 403 && text.contains("SUSPENDED") {
        f.suspend(format!("Kiro suspended this account: {message}"))
    } else if status == 401 || (status == 403 && text.to_ascii_lowercase().contains("bearer token")) {
        f.expired_token()
    } else {
        f
    }
}

fn new_id() -> String {
    format!("msg_{}", fingerprint::invocation_id().replace('-', ""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::classify::decide;

    #[test]
    fn region_from_arn_never_oidc() {
        let fp = Fingerprint::derive("", "r", &Default::default());
        let p = Profile::new(
            Endpoints(KiroEndpoints::default()),
            fp,
            Some("arn:aws:codewhisperer:eu-central-1:1:profile/P".into()),
            None,
        );
        assert_eq!(p.api_region(), "eu-central-1");
        assert_eq!(p.endpoints.api_base(&p.api_region()), "https://q.eu-central-1.amazonaws.com");
        assert_eq!(arn_region("arn:aws:codewhisperer:us-east-1:1:profile/X"), Some("us-east-1"));
        assert!(!valid_region("us-east-1.evil.com/"));
    }

    #[test]
    fn suspension_bearer_and_throttling() {
        let h = http::HeaderMap::new();
        let now = SystemTime::UNIX_EPOCH;
        let c = decide(failure(403, &h, br#"{"message":"Account TEMPORARILY_SUSPENDED","reason":"SUSPENDED"}"#, now));
        assert!(c.disable.unwrap().contains("SUSPENDED"));
        let bearer = br#"{"message":"The bearer token included in the request is invalid.","reason":null}"#;
        let c = decide(failure(403, &h, bearer, now));
        assert!(c.refresh && c.retry_other && c.cooldown.is_none());
        let c = decide(failure(429, &h, br#"{"message":"Too many requests, please wait before trying again."}"#, now));
        assert!(c.retry_other);
        assert_eq!(c.error.kind(), ErrorKind::RateLimited);
        let c = decide(failure(400, &h, br#"{"message":"Rate exceeded","reason":"ThrottlingException"}"#, now));
        assert!(c.retry_other && c.cooldown.is_some());
        let c = decide(failure(400, &h, br#"{"message":"Improperly formed request.","reason":null}"#, now));
        assert!(!c.retry_other && c.cooldown.is_none());
    }

    #[test]
    fn monthly_limit_is_an_exhausted_quota_of_the_account() {
        let body = br#"{"message":"You have reached the limit.","reason":"MONTHLY_REQUEST_COUNT"}"#;
        let f = failure(402, &http::HeaderMap::new(), body, SystemTime::UNIX_EPOCH);
        assert!(f.quota_exhausted);
        assert_eq!(f.error.kind(), ErrorKind::QuotaExceeded);
    }
}
