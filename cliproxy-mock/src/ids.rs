//! Identifiers that look like the providers' own (`chatcmpl-…`, `msg_01…`, `req_…`, OAuth tokens).
//! They only need to be unique and well-formed, so a splitmix64 sequence seeded from the clock
//! serves instead of a random-number crate.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Digits and consonants only: a generated token can then never spell one of the words that script the mock's
/// behaviour (`bad`, `invalid`, `revoked`, `expired`, `short`, …), which made issued tokens fail at random.
const ALPHABET: &[u8] = b"0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz";

static SEED: OnceLock<u64> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

fn next_u64() -> u64 {
    let seed = *SEED.get_or_init(|| {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0x5eed, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut z = seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `prefix` followed by `len` characters of [`ALPHABET`].
pub(crate) fn token(prefix: &str, len: usize) -> String {
    let mut out = String::with_capacity(prefix.len() + len);
    out.push_str(prefix);
    let mut bits = 0u64;
    let mut left = 0;
    for _ in 0..len {
        if left == 0 {
            bits = next_u64();
            left = 10;
        }
        out.push(char::from(ALPHABET[(bits % ALPHABET.len() as u64) as usize]));
        bits /= ALPHABET.len() as u64;
        left -= 1;
    }
    out
}

/// A UUID-shaped string (version 4 layout), as OAuth accounts and organizations carry.
pub(crate) fn uuid() -> String {
    let hi = next_u64();
    let lo = next_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0x0fff,
        ((lo >> 48) & 0x3fff) | 0x8000,
        lo & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_well_formed() {
        let a = token("req_", 24);
        let b = token("req_", 24);
        assert_ne!(a, b);
        assert_eq!(a.len(), 28);
        assert!(a[4..].bytes().all(|c| c.is_ascii_alphanumeric()));
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(u.as_bytes()[14], b'4');
    }
}
