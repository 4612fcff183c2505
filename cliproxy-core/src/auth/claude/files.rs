//! Where Claude subscription tokens live, in whose format:
//! - auth-dir files in the Go original's format, `claude-<email>.json`:
//!   `{"type":"claude","email","access_token","refresh_token","id_token","last_refresh","expired"}` (times in
//!   RFC 3339), plus the generic keys (`prefix`, `priority`, …);
//! - Claude Code's own `.credentials.json` (`$CLAUDE_CONFIG_DIR`, else `~/.claude`):
//!   `{"claudeAiOauth":{"accessToken","refreshToken","expiresAt":<epoch ms>,"scopes","subscriptionType",…}}`,
//!   used in place; Claude Code's `.claude.json` beside it names the account (`oauthAccount.emailAddress`).
//!
//! Both are written back read-modify-write, so keys this code does not know survive a refresh.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use crate::config::Secret;
use crate::error::{Error, Result};
use crate::timefmt::{format_rfc3339, parse_rfc3339};

/// The auth-file `type`.
pub const FILE_TYPE: &str = "claude";

/// An account's tokens as far as they are known.
#[derive(Clone, Debug, Default)]
pub struct Record {
    pub access: Option<Secret>,
    pub refresh: Option<Secret>,
    pub expires_at: Option<SystemTime>,
    pub email: Option<String>,
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

impl Record {
    /// An auth-dir file in the Go original's format.
    pub fn from_go(v: &Value) -> Record {
        Record {
            access: text(v, "access_token").map(Secret::new),
            refresh: text(v, "refresh_token").map(Secret::new),
            expires_at: text(v, "expired").as_deref().and_then(parse_rfc3339),
            email: text(v, "email"),
        }
    }

    /// Claude Code's `.credentials.json`; `None` when it holds no subscription login.
    pub fn from_claude_code(v: &Value) -> Option<Record> {
        let o = v.get("claudeAiOauth")?;
        let rec = Record {
            access: text(o, "accessToken").map(Secret::new),
            refresh: text(o, "refreshToken").map(Secret::new),
            expires_at: o
                .get("expiresAt")
                .and_then(Value::as_u64)
                .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms)),
            email: None,
        };
        (rec.access.is_some() || rec.refresh.is_some()).then_some(rec)
    }
}

/// Where an account's tokens are re-read before a refresh and written back after one.
#[derive(Clone, Debug)]
pub enum TokenFile {
    /// An auth-dir file in the Go original's format.
    AuthDir(PathBuf),
    /// Claude Code's `.credentials.json`, shared with Claude Code.
    ClaudeCode(PathBuf),
}

fn read_json(path: &Path) -> Result<Value> {
    let bytes = std::fs::read(path).map_err(|e| Error::config(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::config(format!("{} is not valid JSON: {e}", path.display())))
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

impl TokenFile {
    pub fn path(&self) -> &Path {
        match self {
            TokenFile::AuthDir(p) | TokenFile::ClaudeCode(p) => p,
        }
    }

    /// The tokens the file holds now.
    pub fn read(&self) -> Result<Record> {
        let v = read_json(self.path())?;
        match self {
            TokenFile::AuthDir(_) => Ok(Record::from_go(&v)),
            TokenFile::ClaudeCode(p) => Record::from_claude_code(&v)
                .ok_or_else(|| Error::config(format!("{} holds no Claude login (claudeAiOauth)", p.display()))),
        }
    }

    /// Writes `rec` into the file in its own format, keeping every other key, atomically with mode 0600.
    pub fn write(&self, rec: &Record, now: SystemTime) -> Result<()> {
        let existing = read_json(self.path()).map(object).unwrap_or_default();
        let value = match self {
            TokenFile::AuthDir(_) => go_file(existing, rec, now),
            TokenFile::ClaudeCode(_) => claude_code_file(existing, rec),
        };
        crate::auth::store::write_json_atomic(self.path(), &value)
    }
}

/// `rec` written over an auth file's keys in the Go original's format (a new file starts from `{}`).
pub fn go_file(mut m: Map<String, Value>, rec: &Record, now: SystemTime) -> Value {
    let mut set = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            m.insert(k.to_owned(), v.into());
        }
    };
    set("type", Some(FILE_TYPE.to_owned()));
    set("access_token", rec.access.as_ref().map(|s| s.expose().to_owned()));
    set("refresh_token", rec.refresh.as_ref().map(|s| s.expose().to_owned()));
    set("expired", rec.expires_at.map(format_rfc3339));
    set("last_refresh", Some(format_rfc3339(now)));
    set("email", rec.email.clone());
    m.entry("id_token").or_insert_with(|| "".into());
    Value::Object(m)
}

fn claude_code_file(mut m: Map<String, Value>, rec: &Record) -> Value {
    let mut o = object(m.remove("claudeAiOauth").unwrap_or_default());
    if let Some(a) = &rec.access {
        o.insert("accessToken".into(), a.expose().into());
    }
    if let Some(r) = &rec.refresh {
        o.insert("refreshToken".into(), r.expose().into());
    }
    if let Some(t) = rec.expires_at {
        let ms = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_millis() as u64;
        o.insert("expiresAt".into(), ms.into());
    }
    m.insert("claudeAiOauth".into(), Value::Object(o));
    Value::Object(m)
}

/// Claude Code's configuration directory: `$CLAUDE_CONFIG_DIR`, else `~/.claude`.
fn claude_code_dir() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("CLAUDE_CONFIG_DIR").or_else(|| env("HOME").map(|h| h.join(".claude")))
}

/// Claude Code's credentials file, where it would be (it may not exist).
pub fn claude_code_credentials() -> Option<PathBuf> {
    claude_code_dir().map(|d| d.join(".credentials.json"))
}

/// The account Claude Code's `.claude.json` names (`$CLAUDE_CONFIG_DIR/.claude.json`, else `~/.claude.json`).
pub fn claude_code_email() -> Option<String> {
    let file = match std::env::var_os("CLAUDE_CONFIG_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir).join(".claude.json"),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".claude.json"),
    };
    let v = read_json(&file).ok()?;
    text(v.get("oauthAccount")?, "emailAddress")
}

/// Claude Code's login, if it has one: its file and tokens (with the email `.claude.json` names).
pub fn claude_code_login() -> Option<(PathBuf, Record)> {
    let path = claude_code_credentials()?;
    let v = read_json(&path).ok()?;
    let mut rec = Record::from_claude_code(&v)?;
    rec.email = claude_code_email();
    Some((path, rec))
}

/// The auth-file stem of an account: `claude-<email>` as the Go original names it, made safe for file names.
pub fn stem_for(email: &str) -> String {
    format!("{FILE_TYPE}-{}", crate::auth::store::safe_file_name(email))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn go_files_read_and_write_back_keeping_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("claude-a@example.com.json");
        let go = json!({"id_token": "", "access_token": "sk-ant-oat01-a", "refresh_token": "sk-ant-ort01-r",
            "last_refresh": "2025-08-01T10:00:00+02:00", "email": "a@example.com", "type": "claude",
            "expired": "2025-08-01T18:00:00+02:00", "priority": 3});
        std::fs::write(&path, go.to_string()).unwrap();
        let file = TokenFile::AuthDir(path.clone());
        let rec = file.read().unwrap();
        assert_eq!(rec.access.as_ref().unwrap().expose(), "sk-ant-oat01-a");
        assert_eq!(rec.refresh.as_ref().unwrap().expose(), "sk-ant-ort01-r");
        assert_eq!(rec.expires_at, parse_rfc3339("2025-08-01T16:00:00Z"));
        assert_eq!(rec.email.as_deref(), Some("a@example.com"));

        let new = Record { access: Some(Secret::new("sk-ant-oat01-b")), expires_at: Some(at(1_800_000_000)), ..rec };
        file.write(&new, at(1_799_990_000)).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["access_token"], "sk-ant-oat01-b");
        assert_eq!(v["refresh_token"], "sk-ant-ort01-r");
        assert_eq!(v["expired"], format_rfc3339(at(1_800_000_000)));
        assert_eq!(v["last_refresh"], format_rfc3339(at(1_799_990_000)));
        assert_eq!(
            (v["type"].as_str(), v["priority"].as_i64(), v["id_token"].as_str()),
            (Some("claude"), Some(3), Some(""))
        );
    }

    #[test]
    fn claude_code_credentials_are_written_back_in_claude_codes_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".credentials.json");
        let cc = json!({"claudeAiOauth": {"accessToken": "sk-ant-oat01-a", "refreshToken": "sk-ant-ort01-r",
            "expiresAt": 1_700_000_000_000u64, "scopes": ["user:inference"], "subscriptionType": "max"},
            "mcpOAuth": {"x": 1}});
        std::fs::write(&path, cc.to_string()).unwrap();
        let file = TokenFile::ClaudeCode(path.clone());
        let rec = file.read().unwrap();
        assert_eq!(rec.expires_at, Some(at(1_700_000_000)));
        let new = Record {
            access: Some(Secret::new("sk-ant-oat01-b")),
            refresh: Some(Secret::new("sk-ant-ort01-s")),
            expires_at: Some(at(1_700_028_800)),
            email: Some("a@example.com".into()),
        };
        file.write(&new, at(1_700_000_100)).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"claudeAiOauth": {"accessToken": "sk-ant-oat01-b", "refreshToken": "sk-ant-ort01-s",
                "expiresAt": 1_700_028_800_000u64, "scopes": ["user:inference"], "subscriptionType": "max"},
                "mcpOAuth": {"x": 1}})
        );
        assert!(Record::from_claude_code(&json!({"mcpOAuth": {}})).is_none());
    }

    #[test]
    fn file_stems_follow_the_go_original() {
        assert_eq!(stem_for("a.b@example.com"), "claude-a.b@example.com");
        assert_eq!(stem_for("../x@y"), "claude-..-x@y");
    }
}
