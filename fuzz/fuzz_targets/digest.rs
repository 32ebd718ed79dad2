//! Digests, both parsers: registry-client's OCI `Digest` and the records' `verify::Digest`.
//! They must agree, and a parsed digest must print as its input.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let oci = registry_client::Digest::parse(text);
    let record = verify::Digest::parse(text);
    assert_eq!(
        oci.is_ok(),
        record.is_ok(),
        "the two digest parsers disagree on {text:?}"
    );
    if let Ok(d) = oci {
        assert_eq!(d.as_str(), text);
        assert_eq!(d.hex().len(), 64);
    }
    if let Ok(d) = record {
        assert_eq!(d.as_str(), text);
    }
});
