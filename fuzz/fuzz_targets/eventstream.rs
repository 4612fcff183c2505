//! Feeds arbitrary bytes to the AWS event-stream decoder, whole and cut in two where the first byte says;
//! see `cliproxy_core::stream::invariants` for what must hold.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cliproxy_core::stream::invariants::check_eventstream_split_invariance(data);
});
