//! Image references: `registry_client::Reference::parse`, plus the round-trip property
//! that a parsed reference prints as text that parses back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use registry_client::Reference;

const DEFAULT: &str = "registry.example.com";

fuzz_target!(|text: &str| {
    let Ok(reference) = Reference::parse(text, Some(DEFAULT)) else {
        return;
    };
    let printed = reference.to_string();
    let again = Reference::parse(&printed, Some(DEFAULT))
        .unwrap_or_else(|e| panic!("{text:?} parsed, but its display {printed:?} does not: {e}"));
    assert_eq!(
        again, reference,
        "{text:?} -> {printed:?} changed on re-parse"
    );
    // The other accessors read the parsed fields; none may panic.
    let _ = (reference.name(), reference.target());
    let _ = Reference::parse(text, None);
});
