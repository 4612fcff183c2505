//! Client-key strength, checked at startup when the server listens beyond loopback. There the keys are all
//! that stands between the network and your credentials, so a short key, a blank one or a placeholder copied
//! from an example refuses the start instead of serving.

use cliproxy_core::Error;

/// The shortest client key accepted beyond loopback.
pub const MIN_LEN: usize = 16;

/// Placeholder keys from examples and tutorials, compared ignoring letter case and `-`/`_`. Documented in
/// README's "Security defaults".
pub const PLACEHOLDERS: [&str; 13] = [
    "change-me",
    "changeme",
    "change-this",
    "replace-me",
    "your-api-key",
    "your-api-key-here",
    "your-key-here",
    "api-key",
    "sk-xxx",
    "sk-xxxxxxxxxxxxxxxx",
    "<a long random key>",
    "test-key",
    // The README's example key.
    "sk-my-client-key",
];

fn normalized(s: &str) -> String {
    s.trim().chars().filter(|c| !matches!(c, '-' | '_')).flat_map(char::to_lowercase).collect()
}

/// Why `key` is too weak to guard a network-facing server, if it is.
fn weakness(key: &str) -> Option<&'static str> {
    let n = normalized(key);
    if key.trim().is_empty() {
        Some("is blank")
    } else if PLACEHOLDERS.iter().any(|p| normalized(p) == n) || n.chars().all(|c| c == 'x' || c == '*') {
        Some("is a placeholder from an example")
    } else if key.trim().chars().count() < MIN_LEN {
        Some("is shorter than 16 characters")
    } else {
        None
    }
}

/// Refuses weak client keys (by position, never by value) with what to do instead.
pub fn check_strength<'a>(keys: impl IntoIterator<Item = &'a str>, addr: std::net::SocketAddr) -> Result<(), Error> {
    for (i, key) in keys.into_iter().enumerate() {
        if let Some(why) = weakness(key) {
            return Err(Error::config(format!(
                "refusing to listen on {addr}: client key #{} (api-keys / CLIPROXY_API_KEY) {why}. Beyond loopback the \
                 client keys guard your credentials: use a long random key (e.g. `openssl rand -hex 24`), or bind \
                 127.0.0.1",
                i + 1
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_keys_are_named() {
        assert_eq!(weakness(" "), Some("is blank"));
        assert_eq!(weakness(""), Some("is blank"));
        assert_eq!(weakness("change-me"), Some("is a placeholder from an example"));
        assert_eq!(weakness("CHANGE_ME"), Some("is a placeholder from an example"));
        assert_eq!(weakness("Your-API-Key-Here"), Some("is a placeholder from an example"));
        assert_eq!(weakness("xxxxxxxxxxxxxxxxxxxxxxxx"), Some("is a placeholder from an example"));
        assert_eq!(weakness("short-key"), Some("is shorter than 16 characters"));
        assert_eq!(weakness("9f86d081884c7d659a2feaa0c55ad015"), None);
    }

    #[test]
    fn the_error_names_the_key_by_position_not_value() {
        let addr = "0.0.0.0:8317".parse().unwrap();
        let e = check_strength(["9f86d081884c7d659a2feaa0c55ad015", "hunter2"], addr).unwrap_err();
        assert!(e.message().contains("client key #2") && !e.message().contains("hunter2"), "{}", e.message());
        assert!(check_strength(["9f86d081884c7d659a2feaa0c55ad015"], addr).is_ok());
    }
}
