//! Credentials as every mocked provider reads them: where the key sits in the request and whether
//! the mock treats it as valid. Tests pick the outcome through the key's spelling, which keeps the
//! mock stateless while many tests share one server.

use http::HeaderMap;

/// A key is valid when it starts with `sk-` and does not contain `bad`, `invalid` or `revoked`
/// (in any case).
pub fn is_valid_key(key: &str) -> bool {
    is_valid_spelling(key, "sk-")
}

/// A credential is valid when it starts with `prefix` (`sk-`, Google's `AIza` keys, `ya29.` tokens…) and
/// contains none of `bad`, `invalid`, `revoked` (in any case).
pub fn is_valid_spelling(key: &str, prefix: &str) -> bool {
    key.starts_with(prefix) && !names_any(key, &["bad", "invalid", "revoked"])
}

/// Whether a credential's spelling contains one of `words` (in any case): how tests pick a behaviour.
pub fn names_any(key: &str, words: &[&str]) -> bool {
    let lower = key.to_ascii_lowercase();
    words.iter().any(|word| lower.contains(word))
}

/// The credential a request carries, whatever the provider: `x-api-key`, `x-goog-api-key`, an
/// `Authorization: Bearer` or `token` header, or a `key=` query parameter. Hit counters are kept under it.
pub(crate) fn credential<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    header(headers, "x-api-key")
        .or_else(|| header(headers, "x-goog-api-key"))
        .or_else(|| authorization(headers, &["bearer", "token"]))
        .or_else(|| query_param(query?, "key"))
}

/// The raw value of a query parameter (keys and tokens need no decoding).
pub(crate) fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=')).filter(|v| !v.is_empty())
}

/// A header's value when present and valid UTF-8.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    authorization(headers, &["bearer"])
}

/// The token of an `Authorization` header with one of `schemes` (case-insensitive).
fn authorization<'a>(headers: &'a HeaderMap, schemes: &[&str]) -> Option<&'a str> {
    let value = header(headers, "authorization")?.trim();
    let (scheme, token) = value.split_once(' ')?;
    schemes.iter().any(|s| scheme.eq_ignore_ascii_case(s)).then(|| token.trim()).filter(|t| !t.is_empty())
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

    #[test]
    fn credentials_come_from_any_of_the_providers_places() {
        let mut h = HeaderMap::new();
        assert_eq!(credential(&h, Some("alt=sse&key=AIza-1")), Some("AIza-1"));
        assert_eq!(credential(&h, Some("monkey=x")), None);
        h.insert("authorization", "token gho_1".parse().unwrap());
        assert_eq!(credential(&h, None), Some("gho_1"));
        h.insert("x-goog-api-key", "AIza-2".parse().unwrap());
        assert_eq!(credential(&h, Some("key=AIza-1")), Some("AIza-2"));
        assert!(is_valid_spelling("AIza-ok", "AIza") && !is_valid_spelling("AIza-BAD", "AIza"));
    }
}
