//! Refreshing tokens for OAuth-style credentials, shared by every provider that has them.
//!
//! The rules answer the Go original's most reported refresh problems:
//! - refresh ahead of expiry (a per-provider lead) in the background, and inline when a request finds the token
//!   stale, never both at once: one refresh in flight per credential (single-flight);
//! - a credential whose access token expired but whose refresh token works is *ready*, never cooling down;
//! - when a refresh fails transiently, keep using the old token while it is still valid;
//! - when the upstream says the grant is dead (`invalid_grant`, a revoked GitHub token), the credential is marked
//!   as needing a login, visibly (listings, logs), instead of failing requests forever in silence.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{CredentialState, Ctx, TokenSource};
use crate::config::Secret;
use crate::error::{Error, ErrorKind, Result};
use crate::providers::Access;

/// A freshly obtained access token.
#[derive(Clone, Debug)]
pub struct Token {
    pub access: Secret,
    pub expires_at: Option<SystemTime>,
    /// Where to send requests with this token, if the token says (Copilot's `endpoints.api`).
    pub base_url: Option<String>,
}

/// Why a refresh failed.
#[derive(Debug)]
pub enum RefreshError {
    /// The grant is gone: a human must log in again. The text says why.
    NeedsLogin(String),
    /// Anything else (network, 5xx, 429): try again later.
    Transient(Error),
}

/// Obtains a new access token. Implementations persist rotated refresh tokens themselves (atomically).
pub trait Refresher: Send + Sync + 'static {
    fn refresh<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, std::result::Result<Token, RefreshError>>;

    /// How long before expiry to replace the token this refresher issued last, for upstreams that say when
    /// (Copilot's `refresh_in`). `None` keeps the lead given to [`RefreshingToken::new`].
    fn lead(&self) -> Option<Duration> {
        None
    }
}

struct State {
    token: Option<Token>,
    status: CredentialState,
    last_refresh: Option<SystemTime>,
}

/// A [`TokenSource`] over a [`Refresher`].
pub struct RefreshingToken {
    id: String,
    refresher: Box<dyn Refresher>,
    lead: Duration,
    state: Mutex<State>,
    /// Held while a refresh is running; others wait for it and reuse its result.
    in_flight: futures::lock::Mutex<()>,
}

/// A forced refresh within this window of the last one reuses it (two requests hitting 401 together).
const FORCE_DEBOUNCE: Duration = Duration::from_secs(5);

impl RefreshingToken {
    /// `initial` is the token already known (from a file), if any; `lead` is how long before expiry to refresh.
    pub fn new(id: impl Into<String>, refresher: Box<dyn Refresher>, initial: Option<Token>, lead: Duration) -> Self {
        RefreshingToken {
            id: id.into(),
            refresher,
            lead,
            state: Mutex::new(State { token: initial, status: CredentialState::Ready, last_refresh: None }),
            in_flight: futures::lock::Mutex::new(()),
        }
    }

    fn lead(&self) -> Duration {
        self.refresher.lead().unwrap_or(self.lead)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current token if it is usable without refreshing (valid beyond the lead, or no expiry known).
    fn fresh(&self, now: SystemTime) -> Option<Token> {
        let s = self.lock();
        let t = s.token.as_ref()?;
        match t.expires_at {
            Some(exp) if exp <= now + self.lead() => None,
            _ => Some(t.clone()),
        }
    }

    /// Refreshes now (single-flight). `force` refreshes even a token that looks fresh (the upstream rejected it).
    pub async fn refresh_now(&self, ctx: &Ctx, force: bool) -> Result<Token> {
        let started = ctx.runtime.now();
        let _guard = self.in_flight.lock().await;
        let now = ctx.runtime.now();
        {
            // Someone else refreshed while we waited: use theirs.
            let s = self.lock();
            let recent = s
                .last_refresh
                .is_some_and(|t| t >= started || now.duration_since(t).unwrap_or_default() < FORCE_DEBOUNCE);
            if let Some(t) = &s.token {
                // A recent refresh is reused only while its token is valid: short-lived tokens (Copilot's can
                // live seconds) may expire within the debounce window.
                let valid = t.expires_at.is_none_or(|e| e > now);
                let still_fresh = t.expires_at.is_none_or(|e| e > now + self.lead());
                if (recent && valid) || (!force && still_fresh) {
                    return Ok(t.clone());
                }
            }
        }
        match self.refresher.refresh(ctx).await {
            Ok(token) => {
                let mut s = self.lock();
                s.token = Some(token.clone());
                s.status = CredentialState::Ready;
                s.last_refresh = Some(ctx.runtime.now());
                tracing::info!(credential = %self.id, expires_at = ?token.expires_at.map(crate::timefmt::format_rfc3339), "token refreshed");
                Ok(token)
            }
            Err(RefreshError::NeedsLogin(reason)) => {
                tracing::warn!(credential = %self.id, %reason, "refresh token rejected: run `cliproxy-server login` again");
                let mut s = self.lock();
                s.status = CredentialState::NeedsLogin(reason.clone());
                Err(Error::new(
                    ErrorKind::Authentication,
                    format!("credential {} needs a new login: {reason}", self.id),
                )
                .with_credential(self.id.clone()))
            }
            Err(RefreshError::Transient(e)) => {
                tracing::warn!(credential = %self.id, error = %e, "token refresh failed; will retry");
                let s = self.lock();
                match &s.token {
                    // Keep serving with the old token while it is still valid.
                    Some(t) if !force && t.expires_at.is_none_or(|exp| exp > now) => Ok(t.clone()),
                    _ => Err(e.with_credential(self.id.clone())),
                }
            }
        }
    }

    /// Refreshes in the background `lead` before each expiry, for as long as the credential lives. Failed
    /// refreshes are retried after a minute; a dead grant stops the loop (a new login replaces the credential).
    pub fn spawn_background(self: &Arc<Self>, ctx: Arc<Ctx>) {
        let weak = Arc::downgrade(self);
        let rt = ctx.runtime.clone();
        rt.spawn(
            async move {
                loop {
                    let Some(this) = weak.upgrade() else { return };
                    let now = ctx.runtime.now();
                    let wait = match this.lock().token.as_ref().and_then(|t| t.expires_at) {
                        Some(exp) => {
                            exp.checked_sub(this.lead()).and_then(|t| t.duration_since(now).ok()).unwrap_or_default()
                        }
                        None => Duration::from_secs(3600),
                    };
                    drop(this);
                    ctx.runtime.sleep(wait.max(Duration::from_secs(1))).await;
                    let Some(this) = weak.upgrade() else { return };
                    if matches!(this.lock().status, CredentialState::NeedsLogin(_)) {
                        return;
                    }
                    if this.fresh(ctx.runtime.now()).is_none() && this.refresh_now(&ctx, false).await.is_err() {
                        drop(this);
                        ctx.runtime.sleep(Duration::from_secs(60)).await;
                    }
                }
            }
            .boxed(),
        );
    }
}

impl TokenSource for RefreshingToken {
    fn access<'a>(&'a self, ctx: &'a Ctx, force_refresh: bool) -> BoxFuture<'a, Result<Access>> {
        async move {
            let token = match (force_refresh, self.fresh(ctx.runtime.now())) {
                (false, Some(t)) => t,
                _ => self.refresh_now(ctx, force_refresh).await?,
            };
            Ok(Access { token: token.access, base_url: token.base_url })
        }
        .boxed()
    }

    fn state(&self) -> CredentialState {
        self.lock().status.clone()
    }

    fn expires_at(&self) -> Option<SystemTime> {
        self.lock().token.as_ref().and_then(|t| t.expires_at)
    }

    fn refresh<'a>(&'a self, ctx: &'a Ctx) -> BoxFuture<'a, Result<()>> {
        async move { self.refresh_now(ctx, true).await.map(|_| ()) }.boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{FakeRuntime, NoTransport};
    use crate::transport::Runtime;
    use std::sync::atomic::{AtomicU32, Ordering};

    struct Counting {
        calls: Arc<AtomicU32>,
        outcome: fn(u32) -> std::result::Result<(), RefreshError>,
        runtime: Arc<FakeRuntime>,
    }

    impl Refresher for Counting {
        fn refresh<'a>(&'a self, _ctx: &'a Ctx) -> BoxFuture<'a, std::result::Result<Token, RefreshError>> {
            async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
                // Let concurrent callers pile up behind the in-flight refresh.
                self.runtime.yield_now().await;
                (self.outcome)(n)?;
                Ok(Token {
                    access: Secret::new(format!("token-{n}")),
                    expires_at: Some(self.runtime.now() + Duration::from_secs(3600)),
                    base_url: None,
                })
            }
            .boxed()
        }
    }

    fn setup(
        initial_expiry: Option<u64>,
        outcome: fn(u32) -> std::result::Result<(), RefreshError>,
    ) -> (Arc<RefreshingToken>, Ctx, Arc<AtomicU32>, Arc<FakeRuntime>) {
        let rt = Arc::new(FakeRuntime::new());
        let calls = Arc::new(AtomicU32::new(0));
        let refresher = Counting { calls: calls.clone(), outcome, runtime: rt.clone() };
        let initial = initial_expiry.map(|s| Token {
            access: Secret::new("token-0"),
            expires_at: Some(rt.now() + Duration::from_secs(s)),
            base_url: None,
        });
        let tok = Arc::new(RefreshingToken::new("kiro:a", Box::new(refresher), initial, Duration::from_secs(300)));
        let ctx = Ctx { transport: Arc::new(NoTransport), runtime: rt.clone(), config: Default::default() };
        (tok, ctx, calls, rt)
    }

    #[test]
    fn fresh_token_is_used_without_refresh() {
        let (tok, ctx, calls, _) = setup(Some(3600), |_| Ok(()));
        let a = futures::executor::block_on(tok.access(&ctx, false)).unwrap();
        assert_eq!(a.token.expose(), "token-0");
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn expired_access_token_is_refreshed_and_never_blocks_the_credential() {
        let (tok, ctx, calls, _) = setup(Some(10), |_| Ok(()));
        assert_eq!(tok.state(), CredentialState::Ready);
        let a = futures::executor::block_on(tok.access(&ctx, false)).unwrap();
        assert_eq!(a.token.expose(), "token-1");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn concurrent_requests_share_one_refresh() {
        let (tok, ctx, calls, _) = setup(None, |_| Ok(()));
        let results = futures::executor::block_on(futures::future::join_all((0..8).map(|_| tok.access(&ctx, false))));
        assert!(results.iter().all(|r| r.as_ref().unwrap().token.expose() == "token-1"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Two forced refreshes at once (both saw a 401) also share one.
        let results = futures::executor::block_on(futures::future::join_all((0..2).map(|_| tok.access(&ctx, true))));
        assert!(results.iter().all(|r| r.is_ok()));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "within the debounce window the last refresh is reused");
    }

    #[test]
    fn transient_failure_keeps_old_valid_token() {
        let (tok, ctx, _, _) = setup(Some(60), |_| Err(RefreshError::Transient(Error::upstream(Some(503), "down"))));
        let a = futures::executor::block_on(tok.access(&ctx, false)).unwrap();
        assert_eq!(a.token.expose(), "token-0");
        assert_eq!(tok.state(), CredentialState::Ready);
    }

    #[test]
    fn dead_grant_needs_login() {
        let (tok, ctx, _, _) = setup(Some(1), |_| Err(RefreshError::NeedsLogin("invalid_grant".into())));
        let e = futures::executor::block_on(tok.access(&ctx, false)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Authentication);
        assert!(matches!(tok.state(), CredentialState::NeedsLogin(r) if r == "invalid_grant"));
    }

    #[test]
    fn background_refresh_runs_ahead_of_expiry() {
        let (tok, ctx, calls, rt) = setup(Some(1000), |_| Ok(()));
        tok.spawn_background(Arc::new(ctx));
        rt.advance(Duration::from_secs(600));
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        rt.advance(Duration::from_secs(100)); // now 700 s: 300 s lead before the 1000 s expiry has passed
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(tok.expires_at(), Some(rt.now() + Duration::from_secs(3600)));
    }
}
