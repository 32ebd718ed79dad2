//! `WWW-Authenticate` header values: `registry_client::Challenge::parse_all`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use registry_client::Challenge;

fuzz_target!(|header: &str| {
    for challenge in Challenge::parse_all(header) {
        assert!(!challenge.scheme.is_empty(), "empty scheme from {header:?}");
        assert_eq!(challenge.scheme, challenge.scheme.to_ascii_lowercase());
    }
});
