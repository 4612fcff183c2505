//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the same checks as the fuzz
//! targets, so that every seed and every input the fuzzer once found interesting keeps passing in an
//! ordinary `cargo test`, without nightly or cargo-fuzz.

use std::path::PathBuf;

use cliproxy_core::stream::invariants::{check_eventstream_split_invariance, check_sse_split_invariance};

fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus in {}", dir.display());
    for file in files {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "corpus file {} fails the {target} check", file.display());
    }
}

#[test]
fn sse_corpus() {
    replay("sse", check_sse_split_invariance);
}

#[test]
fn eventstream_corpus() {
    replay("eventstream", check_eventstream_split_invariance);
}
