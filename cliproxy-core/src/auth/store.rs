//! The auth-dir: one JSON file per account, compatible with the Go original (`type` names the provider, keys
//! are snake_case). Files are written atomically (temp file, fsync, rename) with mode 0600 in a 0700
//! directory, so a crash never leaves a half-written token and other users never read one.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{Config, expand_home};
use crate::error::{Error, Result};

/// The configured auth-dir with `~` expanded.
pub fn auth_dir(config: &Config) -> PathBuf {
    expand_home(&config.auth_dir)
}

/// Writes `value` as pretty JSON to `path` atomically with mode 0600, creating the directory (0700).
pub fn write_json_atomic(path: &Path, value: &serde_json::Value) -> Result<()> {
    let dir = path.parent().ok_or_else(|| Error::config(format!("{} has no parent directory", path.display())))?;
    create_private_dir(dir)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("auth");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let text = serde_json::to_vec_pretty(value).expect("json values serialize");
    let result = (|| -> std::io::Result<()> {
        let mut f = open_private(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::config(format!("cannot write {}: {e}", path.display()))
    })
}

fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
}

/// Creates `dir` (and parents) with mode 0700 where it does not exist yet.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| Error::config(format!("cannot create {}: {e}", dir.display())))
}

/// How old a leftover temp file must be before a start removes it: far longer than a write takes, so a replica
/// sharing the directory is never caught mid-write.
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes the temp files of writes that never finished (the process was killed between write and rename).
/// Returns how many were removed.
pub fn sweep_stale_temp_files(dir: &Path, now: std::time::SystemTime) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for path in entries.filter_map(|e| e.ok().map(|e| e.path())) {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if !(name.starts_with('.') && name.ends_with(".tmp")) {
            continue;
        }
        let modified = std::fs::metadata(&path).and_then(|m| m.modified());
        let stale = modified.is_ok_and(|t| now.duration_since(t).unwrap_or_default() >= STALE_TEMP);
        if stale && std::fs::remove_file(&path).is_ok() {
            tracing::info!(file = %path.display(), "removed the temp file of an interrupted write");
            removed += 1;
        }
    }
    removed
}

/// Every `*.json` file of the auth-dir with its parsed content; unreadable files are skipped with a warning.
pub fn read_auth_files(dir: &Path) -> Vec<(PathBuf, serde_json::Value)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json") && p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|p| match std::fs::read(&p).map(|b| serde_json::from_slice::<serde_json::Value>(&b)) {
            Ok(Ok(v)) => Some((p, v)),
            Ok(Err(e)) => {
                tracing::warn!(file = %p.display(), "skipping auth file that is not valid JSON: {e}");
                None
            }
            Err(e) => {
                tracing::warn!(file = %p.display(), "skipping unreadable auth file: {e}");
                None
            }
        })
        .collect()
}

/// The credential-id name of an auth file: its stem.
pub fn file_stem(path: &Path) -> String {
    path.file_stem().and_then(|s| s.to_str()).unwrap_or("account").to_owned()
}

/// `name` with every character unsafe in a file name (path separators above all) replaced by `-`; an email
/// keeps its letters, digits, `-`, `_`, `.` and `@`.
pub fn safe_file_name(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.@".contains(c) { c } else { '-' }).collect()
}

/// A file name unique in `dir`: `{base}.json`, else `{base}-2.json`, … (accounts without an email must not
/// overwrite each other).
pub fn unique_path(dir: &Path, base: &str) -> PathBuf {
    let clean = safe_file_name(base);
    let first = dir.join(format!("{clean}.json"));
    if !first.exists() {
        return first;
    }
    (2..).map(|n| dir.join(format!("{clean}-{n}.json"))).find(|p| !p.exists()).expect("an unused name exists")
}

/// What an auth file may carry besides its tokens: the Go original's generic keys that decide routing.
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct FileOptions {
    pub prefix: Option<String>,
    pub priority: i32,
    pub proxy_url: Option<String>,
    pub excluded_models: Vec<String>,
}

impl FileOptions {
    /// The options of an auth file's JSON; missing or malformed keys take their defaults.
    pub fn of(file: &serde_json::Value) -> FileOptions {
        serde_json::from_value(file.clone()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_private_write_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("auths");
        let p = sub.join("kiro-a.json");
        write_json_atomic(&p, &serde_json::json!({"type": "kiro", "access_token": "x"})).unwrap();
        write_json_atomic(&p, &serde_json::json!({"type": "kiro", "access_token": "y"})).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(std::fs::metadata(&sub).unwrap().permissions().mode() & 0o777, 0o700);
        }
        let files = read_auth_files(&sub);
        assert_eq!(files.len(), 1, "no temp files left behind");
        assert_eq!(files[0].1["access_token"], "y");
        assert_eq!(file_stem(&files[0].0), "kiro-a");
    }

    #[test]
    fn unique_names() {
        let dir = tempfile::tempdir().unwrap();
        let a = unique_path(dir.path(), "kiro-builder-id");
        std::fs::write(&a, "{}").unwrap();
        let b = unique_path(dir.path(), "kiro-builder-id");
        assert_ne!(a, b);
        assert!(b.ends_with("kiro-builder-id-2.json"));
        assert!(unique_path(dir.path(), "a/b@c").ends_with("a-b@c.json"));
    }

    #[test]
    fn interrupted_writes_leave_nothing_behind_after_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let now = std::time::SystemTime::now();
        let old = dir.path().join(".claude-a.json.4242.tmp");
        std::fs::write(&old, "{half").unwrap();
        let f = std::fs::File::options().write(true).open(&old).unwrap();
        f.set_modified(now - std::time::Duration::from_secs(3600)).unwrap();
        let fresh = dir.path().join(".claude-b.json.4243.tmp");
        std::fs::write(&fresh, "{").unwrap();
        std::fs::write(dir.path().join("claude-a.json"), "{}").unwrap();
        assert_eq!(sweep_stale_temp_files(dir.path(), now), 1);
        assert!(!old.exists() && fresh.exists(), "a write under way in another process is left alone");
        assert!(dir.path().join("claude-a.json").exists());
    }
}
