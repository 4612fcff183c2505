//! Credentials as every mocked provider reads them: where the key sits in the request and whether
//! the mock treats it as valid. Tests pick the outcome through the key's spelling, which keeps the
//! mock stateless while many tests share one server.

use http::HeaderMap;

/// A key is valid when it starts with `sk-` and does not contain `bad`, `invalid` or `revoked`
/// (in any case).
pub fn is_valid_key(key: &str) -> bool {
    if !key.starts_with("sk-") {
        return false;
    }
    let lower = key.to_ascii_lowercase();
    !["bad", "invalid", "revoked"].iter().any(|word| lower.contains(word))
}

/// A header's value when present and valid UTF-8.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = header(headers, "authorization")?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Whether any value of a comma-separated list header (such as `anthropic-beta`) names `item`.
pub(crate) fn list_header_contains(headers: &HeaderMap, name: &str, item: &str) -> bool {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|v| v.trim() == item)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_validity_follows_the_spelling() {
        assert!(is_valid_key("sk-1"));
        assert!(is_valid_key("sk-ant-oat01-abc"));
        assert!(!is_valid_key("pk-1"));
        assert!(!is_valid_key("sk-BAD-1"));
        assert!(!is_valid_key("sk-invalid"));
        assert!(!is_valid_key("sk-Revoked"));
        assert!(!is_valid_key(""));
    }

    #[test]
    fn bearer_and_list_headers() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "bearer  sk-x ".parse().unwrap());
        h.append("anthropic-beta", "a, oauth-2025-04-20".parse().unwrap());
        h.append("anthropic-beta", "b".parse().unwrap());
        assert_eq!(bearer(&h), Some("sk-x"));
        assert!(list_header_contains(&h, "anthropic-beta", "oauth-2025-04-20"));
        assert!(list_header_contains(&h, "anthropic-beta", "b"));
        assert!(!list_header_contains(&h, "anthropic-beta", "oauth"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
