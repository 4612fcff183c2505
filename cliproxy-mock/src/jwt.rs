//! JSON Web Tokens as ChatGPT's OAuth server issues them (its `id_token` and access tokens carry the account in
//! their claims). Clients read the claims without verifying the signature, so the mock signs with HS256 under
//! [`SECRET`], a published key: tests can still check a token is well-formed and untampered.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The HS256 key of every token the mock signs.
pub const SECRET: &[u8] = b"cliproxy-mock-jwt-secret";

/// `header.claims.signature`, each part base64url without padding.
pub fn encode(claims: &Value) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": "cliproxy-mock"});
    let signing_input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = URL_SAFE_NO_PAD.encode(hmac_sha256(SECRET, signing_input.as_bytes()));
    format!("{signing_input}.{signature}")
}

/// The claims of a token the mock signed, `None` when it is malformed or its signature does not match.
pub fn decode(token: &str) -> Option<Value> {
    let (signing_input, signature) = token.rsplit_once('.')?;
    let expected = URL_SAFE_NO_PAD.encode(hmac_sha256(SECRET, signing_input.as_bytes()));
    if expected != signature {
        return None;
    }
    let (_, claims) = signing_input.split_once('.')?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|k| k ^ byte);
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn tokens_round_trip_and_tampering_is_caught() {
        let claims = json!({"email": "a@example.com", "n": 1});
        let token = encode(&claims);
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(decode(&token), Some(claims));
        let (head, _) = token.rsplit_once('.').unwrap();
        assert_eq!(decode(&format!("{head}.AAAA")), None);
    }
}
