//! `Retry-After` header values: `registry_client::parse_retry_after`, at any "now".
#![no_main]

use std::time::{Duration, SystemTime};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    /// Seconds since the epoch for "now" (any u64: far past and far future included).
    now: u64,
    value: &'a str,
}

fuzz_target!(|input: Input<'_>| {
    let now = SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(input.now))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let _ = registry_client::parse_retry_after(input.value, now);
    let _ = registry_client::parse_retry_after(input.value, SystemTime::now());
});
