//! The accounts of the mocked identity providers (Claude, ChatGPT for Codex, Google for Gemini CLI) and the
//! grants they issued: authorization codes bound to a client, a redirect URI and a PKCE challenge; refresh
//! tokens, single-use where the real provider rotates them; access tokens that expire on their own or when a
//! test says so. An OAuth server is stateful by nature (a code works once, a refresh token until it is rotated
//! away), so this is the one part of the mock whose answers depend on earlier requests.
//!
//! Tokens the mock never issued are [`TokenState::Unknown`] here; the API endpoints then judge them by their
//! spelling as before (see the crate docs), so tests that need no login flow stay stateless.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fault::Fault;
use crate::state::lock;
use crate::{claude_oauth, clock, codex, google_oauth, ids};

/// The identity providers the mock runs, as named in the control endpoints (`/__mock/accounts/{idp}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdP {
    Claude,
    Codex,
    Google,
}

impl IdP {
    pub fn from_name(name: &str) -> Option<IdP> {
        match name {
            "claude" => Some(IdP::Claude),
            "codex" => Some(IdP::Codex),
            "google" | "gemini" => Some(IdP::Google),
            _ => None,
        }
    }
}

/// How one identity provider spells and handles its tokens.
pub(crate) struct Flavor {
    /// A new access token for an account, valid until the given unix time.
    pub access: fn(&Account, u64) -> String,
    pub refresh: fn() -> String,
    pub code: fn() -> String,
    /// An OpenID `id_token`, for providers whose token answers carry one.
    pub id_token: Option<fn(&Account, u64) -> String>,
    /// Whether a refresh grant replaces the refresh token (Claude, ChatGPT) or leaves it valid (Google).
    pub rotates: bool,
    /// Lifetime of access tokens, in seconds.
    pub expires_in: u64,
    /// The organization (Claude, ChatGPT) or Cloud project (Google) of a new account.
    pub org: fn() -> String,
}

/// Where an account stands with Code Assist onboarding (`onboardUser`); only Google accounts use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Onboarding {
    New,
    /// `onboardUser` answered a running operation; the next poll finishes it.
    Pending,
    Done,
}

/// One account of an identity provider.
#[derive(Debug, Clone, Serialize)]
pub struct Account {
    pub email: String,
    /// Claude account uuid, ChatGPT account id (`chatgpt_account_id`), Google user id.
    pub id: String,
    /// Claude organization uuid, ChatGPT organization id, Google Cloud project (Code Assist).
    pub org: String,
    /// Lifetime of the access tokens issued to it, in seconds.
    pub expires_in: u64,
    pub onboarding: Onboarding,
    /// A fault every API request made with one of its access tokens gets, until cleared.
    #[serde(skip)]
    pub fault: Option<Box<Fault>>,
    /// A fault the token endpoint answers to its codes and refresh tokens, until cleared.
    #[serde(skip)]
    pub token_fault: Option<Box<Fault>>,
}

/// What a test asks of [`Accounts::mint`]; every field is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mint {
    /// The account's email; a fresh one when absent. Minting an existing email issues new tokens for it.
    pub email: Option<String>,
    /// Lifetime of its access tokens in seconds, instead of the provider's.
    pub expires_in: Option<u64>,
    /// Google: whether Code Assist onboarding is already done (default: yes, so the account can be used at
    /// once; accounts created by a browser login start unonboarded).
    pub onboarded: Option<bool>,
}

/// Tokens issued to an account, as a token endpoint answers them.
#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    pub account: Account,
    pub access_token: String,
    /// `None` when the grant gives none: a Google refresh (the old one stays valid) or a Google code exchange
    /// without `access_type=offline`.
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub expires_in: u64,
}

/// Why a token endpoint refuses a grant; each provider renders it in its own error shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantError {
    /// The code was never issued or was already exchanged.
    UnknownCode,
    /// The code or refresh token was issued to another client.
    WrongClient,
    /// The code was issued for another redirect URI.
    WrongRedirect,
    /// The PKCE verifier is missing or does not hash to the challenge given at authorization.
    BadVerifier,
    UnknownRefresh,
    /// The refresh token was already exchanged for a new one.
    ReusedRefresh,
    /// The refresh token was revoked with its account's grants.
    Revoked,
}

/// What an access token is worth.
#[derive(Debug, Clone)]
pub enum TokenState {
    Valid(Account),
    Expired,
    Revoked,
    /// Not issued by this provider.
    Unknown,
}

/// An authorization the authorize endpoint approves.
pub(crate) struct Authorization<'a> {
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    /// The S256 PKCE challenge, when the client sent one.
    pub challenge: Option<&'a str>,
    /// Whether the exchange also gives a refresh token (always, except Google without `access_type=offline`).
    pub offline: bool,
    /// Approve this account (created if needed) instead of a fresh one.
    pub login_hint: Option<&'a str>,
}

struct Code {
    email: String,
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    offline: bool,
}

struct Refresh {
    email: String,
    /// `None` for minted tokens, which any client may use.
    client_id: Option<String>,
    used: bool,
    revoked: bool,
}

struct Access {
    email: String,
    expires_at: u64,
    expired: bool,
    revoked: bool,
}

#[derive(Default)]
struct Inner {
    accounts: HashMap<String, Account>,
    codes: HashMap<String, Code>,
    refresh: HashMap<String, Refresh>,
    access: HashMap<String, Access>,
}

/// The accounts and grants of one identity provider.
pub struct Accounts {
    flavor: Flavor,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts").field("accounts", &lock(&self.inner).accounts.len()).finish()
    }
}

/// The S256 PKCE challenge of a verifier: base64url (no padding) of its SHA-256.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

fn fresh_email() -> String {
    format!("user-{}@example.com", ids::token("", 10).to_ascii_lowercase())
}

impl Accounts {
    pub(crate) fn new(flavor: Flavor) -> Accounts {
        Accounts { flavor, inner: Mutex::new(Inner::default()) }
    }

    fn new_account(&self, email: String, onboarding: Onboarding) -> Account {
        Account {
            email,
            id: ids::uuid(),
            org: (self.flavor.org)(),
            expires_in: self.flavor.expires_in,
            onboarding,
            fault: None,
            token_fault: None,
        }
    }

    /// Fresh tokens for `account`; a refresh token only when `with_refresh`.
    fn issue(&self, inner: &mut Inner, account: Account, client_id: Option<&str>, with_refresh: bool) -> Issued {
        let expires_at = clock::unix_now() + account.expires_in;
        let access_token = (self.flavor.access)(&account, expires_at);
        let access = Access { email: account.email.clone(), expires_at, expired: false, revoked: false };
        inner.access.insert(access_token.clone(), access);
        let refresh_token = with_refresh.then(|| {
            let token = (self.flavor.refresh)();
            let client_id = client_id.map(str::to_owned);
            let grant = Refresh { email: account.email.clone(), client_id, used: false, revoked: false };
            inner.refresh.insert(token.clone(), grant);
            token
        });
        let id_token = self.flavor.id_token.map(|mint| mint(&account, expires_at));
        Issued { expires_in: account.expires_in, account, access_token, refresh_token, id_token }
    }

    /// Creates an account (or takes the one with that email) and issues it tokens, as a login would.
    pub fn mint(&self, spec: Mint) -> Issued {
        let mut inner = lock(&self.inner);
        let email = spec.email.unwrap_or_else(fresh_email);
        let account = match inner.accounts.remove(&email) {
            Some(account) => account,
            None => self.new_account(email.clone(), Onboarding::Done),
        };
        let account = Account {
            expires_in: spec.expires_in.unwrap_or(account.expires_in),
            onboarding: match spec.onboarded {
                Some(true) => Onboarding::Done,
                Some(false) => Onboarding::New,
                None => account.onboarding,
            },
            ..account
        };
        inner.accounts.insert(email, account.clone());
        self.issue(&mut inner, account, None, true)
    }

    /// Records an approved authorization and returns its code.
    pub(crate) fn authorize(&self, request: Authorization) -> String {
        let mut inner = lock(&self.inner);
        let email = request.login_hint.filter(|e| e.contains('@')).map_or_else(fresh_email, str::to_owned);
        if !inner.accounts.contains_key(&email) {
            let account = self.new_account(email.clone(), Onboarding::New);
            inner.accounts.insert(email.clone(), account);
        }
        let code = (self.flavor.code)();
        inner.codes.insert(
            code.clone(),
            Code {
                email,
                client_id: request.client_id.to_owned(),
                redirect_uri: request.redirect_uri.to_owned(),
                challenge: request.challenge.map(str::to_owned),
                offline: request.offline,
            },
        );
        code
    }

    /// The authorization-code grant. A code works once; a failed attempt leaves it usable.
    pub(crate) fn exchange(
        &self,
        code: &str,
        verifier: Option<&str>,
        client_id: &str,
        redirect_uri: &str,
    ) -> Result<Issued, GrantError> {
        let mut inner = lock(&self.inner);
        let grant = inner.codes.get(code).ok_or(GrantError::UnknownCode)?;
        if grant.client_id != client_id {
            return Err(GrantError::WrongClient);
        }
        if grant.redirect_uri != redirect_uri {
            return Err(GrantError::WrongRedirect);
        }
        if let Some(challenge) = &grant.challenge
            && verifier.is_none_or(|v| pkce_challenge(v) != *challenge)
        {
            return Err(GrantError::BadVerifier);
        }
        let grant = inner.codes.remove(code).ok_or(GrantError::UnknownCode)?;
        let account = inner.accounts.get(&grant.email).cloned().ok_or(GrantError::UnknownCode)?;
        Ok(self.issue(&mut inner, account, Some(client_id), grant.offline))
    }

    /// The refresh-token grant: rotating providers retire the token used and issue a new one.
    pub(crate) fn refresh(&self, token: &str, client_id: &str) -> Result<Issued, GrantError> {
        let mut inner = lock(&self.inner);
        let grant = inner.refresh.get_mut(token).ok_or(GrantError::UnknownRefresh)?;
        if grant.revoked {
            return Err(GrantError::Revoked);
        }
        if grant.used {
            return Err(GrantError::ReusedRefresh);
        }
        if grant.client_id.as_deref().is_some_and(|c| c != client_id) {
            return Err(GrantError::WrongClient);
        }
        let email = grant.email.clone();
        let account = inner.accounts.get(&email).cloned().ok_or(GrantError::UnknownRefresh)?;
        if self.flavor.rotates
            && let Some(grant) = inner.refresh.get_mut(token)
        {
            grant.used = true;
        }
        Ok(self.issue(&mut inner, account, Some(client_id), self.flavor.rotates))
    }

    /// What an access token is worth now.
    pub fn access(&self, token: &str) -> TokenState {
        let inner = lock(&self.inner);
        let Some(access) = inner.access.get(token) else {
            return TokenState::Unknown;
        };
        match inner.accounts.get(&access.email) {
            None => TokenState::Unknown,
            Some(_) if access.revoked => TokenState::Revoked,
            Some(_) if access.expired || access.expires_at <= clock::unix_now() => TokenState::Expired,
            Some(account) => TokenState::Valid(account.clone()),
        }
    }

    /// Makes an issued access token expired; `false` when the mock did not issue it.
    pub fn expire(&self, access_token: &str) -> bool {
        lock(&self.inner).access.get_mut(access_token).map(|a| a.expired = true).is_some()
    }

    /// Revokes every grant of an account, as a password change or a revocation in the provider's settings
    /// does: its access tokens become invalid, its refresh tokens and pending codes `invalid_grant`. A new
    /// login works again.
    pub fn revoke(&self, email: &str) -> bool {
        let mut inner = lock(&self.inner);
        if !inner.accounts.contains_key(email) {
            return false;
        }
        inner.codes.retain(|_, c| c.email != email);
        inner.refresh.values_mut().filter(|r| r.email == email).for_each(|r| r.revoked = true);
        inner.access.values_mut().filter(|a| a.email == email).for_each(|a| a.revoked = true);
        true
    }

    /// Scripts a fault for every API request of an account (`None` clears it); `false` for an unknown email.
    pub fn set_fault(&self, email: &str, fault: Option<Fault>) -> bool {
        lock(&self.inner).accounts.get_mut(email).map(|a| a.fault = fault.map(Box::new)).is_some()
    }

    /// Scripts a fault for the token endpoint's grants of an account (`None` clears it), say a 429 with
    /// `retry-after` on refresh; `false` for an unknown email.
    pub fn set_token_fault(&self, email: &str, fault: Option<Fault>) -> bool {
        lock(&self.inner).accounts.get_mut(email).map(|a| a.token_fault = fault.map(Box::new)).is_some()
    }

    /// The token-endpoint fault of the account an authorization code or a refresh token belongs to.
    pub(crate) fn token_fault(&self, code: Option<&str>, refresh: Option<&str>) -> Option<Fault> {
        let inner = lock(&self.inner);
        let email = match (code, refresh) {
            (Some(code), _) => &inner.codes.get(code)?.email,
            (None, Some(refresh)) => &inner.refresh.get(refresh)?.email,
            (None, None) => return None,
        };
        inner.accounts.get(email)?.token_fault.as_deref().cloned()
    }

    pub fn account(&self, email: &str) -> Option<Account> {
        lock(&self.inner).accounts.get(email).cloned()
    }

    /// Every account, by email.
    pub fn list(&self) -> Vec<Account> {
        let mut all: Vec<Account> = lock(&self.inner).accounts.values().cloned().collect();
        all.sort_by(|a, b| a.email.cmp(&b.email));
        all
    }

    /// One step of Code Assist onboarding through `onboardUser`: a new account's first call starts a running
    /// operation, the next one (or a poll of the operation, see [`Accounts::poll_onboarding`]) finishes it.
    pub(crate) fn onboard(&self, email: &str) -> Option<Onboarding> {
        let mut inner = lock(&self.inner);
        let account = inner.accounts.get_mut(email)?;
        account.onboarding = match account.onboarding {
            Onboarding::New => Onboarding::Pending,
            Onboarding::Pending | Onboarding::Done => Onboarding::Done,
        };
        Some(account.onboarding)
    }

    /// A poll of the onboarding operation: finishes a pending one; `None` when there is none.
    pub(crate) fn poll_onboarding(&self, email: &str) -> Option<Onboarding> {
        let mut inner = lock(&self.inner);
        let account = inner.accounts.get_mut(email)?;
        match account.onboarding {
            Onboarding::New => None,
            Onboarding::Pending | Onboarding::Done => {
                account.onboarding = Onboarding::Done;
                Some(Onboarding::Done)
            }
        }
    }
}

/// The three identity providers' accounts.
#[derive(Debug)]
pub(crate) struct Issuers {
    pub claude: Accounts,
    pub codex: Accounts,
    pub google: Accounts,
}

impl Default for Issuers {
    fn default() -> Issuers {
        Issuers {
            claude: Accounts::new(claude_oauth::FLAVOR),
            codex: Accounts::new(codex::FLAVOR),
            google: Accounts::new(google_oauth::FLAVOR),
        }
    }
}

impl Issuers {
    pub fn get(&self, idp: IdP) -> &Accounts {
        match idp {
            IdP::Claude => &self.claude,
            IdP::Codex => &self.codex,
            IdP::Google => &self.google,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts(rotates: bool) -> Accounts {
        Accounts::new(Flavor {
            access: |_, _| ids::token("at-", 12),
            refresh: || ids::token("rt-", 12),
            code: || ids::token("c-", 12),
            id_token: None,
            rotates,
            expires_in: 3600,
            org: ids::uuid,
        })
    }

    fn authorize(a: &Accounts, challenge: Option<&str>) -> String {
        a.authorize(Authorization {
            client_id: "app",
            redirect_uri: "http://localhost/cb",
            challenge,
            offline: true,
            login_hint: None,
        })
    }

    #[test]
    fn pkce_challenge_matches_rfc_7636_appendix_b() {
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn codes_check_client_redirect_and_verifier_and_work_once() {
        let a = accounts(true);
        let code = authorize(&a, Some(&pkce_challenge("verifier-1")));
        assert_eq!(
            a.exchange(&code, Some("verifier-2"), "app", "http://localhost/cb").unwrap_err(),
            GrantError::BadVerifier
        );
        assert_eq!(a.exchange(&code, None, "app", "http://localhost/cb").unwrap_err(), GrantError::BadVerifier);
        assert_eq!(
            a.exchange(&code, Some("verifier-1"), "other", "http://localhost/cb").unwrap_err(),
            GrantError::WrongClient
        );
        assert_eq!(a.exchange(&code, Some("verifier-1"), "app", "http://x/cb").unwrap_err(), GrantError::WrongRedirect);
        let issued = a.exchange(&code, Some("verifier-1"), "app", "http://localhost/cb").unwrap();
        assert!(issued.refresh_token.is_some());
        assert_eq!(issued.account.onboarding, Onboarding::New);
        assert!(
            matches!(a.access(&issued.access_token), TokenState::Valid(ref acc) if acc.email == issued.account.email)
        );
        assert_eq!(
            a.exchange(&code, Some("verifier-1"), "app", "http://localhost/cb").unwrap_err(),
            GrantError::UnknownCode
        );
    }

    #[test]
    fn rotating_refresh_tokens_work_once_and_others_stay() {
        let a = accounts(true);
        let first = a.mint(Mint::default());
        let rt = first.refresh_token.unwrap();
        let second = a.refresh(&rt, "any").unwrap();
        let next = second.refresh_token.unwrap();
        assert_ne!(next, rt);
        assert_eq!(a.refresh(&rt, "any").unwrap_err(), GrantError::ReusedRefresh);
        assert_eq!(a.refresh(&next, "other").unwrap_err(), GrantError::WrongClient);
        assert_eq!(a.refresh("nope", "any").unwrap_err(), GrantError::UnknownRefresh);

        let keeps = accounts(false);
        let rt = keeps.mint(Mint::default()).refresh_token.unwrap();
        assert!(keeps.refresh(&rt, "c").unwrap().refresh_token.is_none());
        assert!(keeps.refresh(&rt, "c").is_ok(), "a non-rotating refresh token stays valid");
    }

    #[test]
    fn expiry_revocation_faults_and_onboarding() {
        let a = accounts(true);
        let issued = a.mint(Mint { email: Some("a@example.com".into()), expires_in: Some(0), onboarded: Some(false) });
        assert!(matches!(a.access(&issued.access_token), TokenState::Expired), "a zero lifetime is already over");
        let issued = a.mint(Mint { email: Some("a@example.com".into()), expires_in: Some(60), ..Mint::default() });
        assert!(matches!(a.access(&issued.access_token), TokenState::Valid(_)));
        assert!(a.expire(&issued.access_token));
        assert!(matches!(a.access(&issued.access_token), TokenState::Expired));
        assert!(!a.expire("never-issued"));
        assert!(matches!(a.access("never-issued"), TokenState::Unknown));

        assert!(a.set_fault("a@example.com", Some(Fault { status: Some(429), ..Fault::default() })));
        assert_eq!(a.account("a@example.com").unwrap().fault.unwrap().status, Some(429));
        assert!(!a.set_fault("b@example.com", None));
        assert!(a.set_token_fault("a@example.com", Some(Fault { status: Some(503), ..Fault::default() })));
        let rt = issued.refresh_token.as_deref();
        assert_eq!(a.token_fault(None, rt).unwrap().status, Some(503));
        assert!(a.token_fault(None, Some("other")).is_none());

        assert_eq!(a.poll_onboarding("a@example.com"), None, "no operation before onboardUser");
        assert_eq!(a.onboard("a@example.com"), Some(Onboarding::Pending));
        assert_eq!(a.poll_onboarding("a@example.com"), Some(Onboarding::Done));

        let fresh = a.mint(Mint { email: Some("a@example.com".into()), ..Mint::default() });
        assert!(a.revoke("a@example.com"));
        assert!(matches!(a.access(&fresh.access_token), TokenState::Revoked));
        assert_eq!(a.refresh(fresh.refresh_token.as_deref().unwrap(), "c").unwrap_err(), GrantError::Revoked);
        let again = a.mint(Mint { email: Some("a@example.com".into()), ..Mint::default() });
        assert!(matches!(a.access(&again.access_token), TokenState::Valid(_)), "a new login works");
        assert_eq!(a.list().len(), 1);
    }
}
