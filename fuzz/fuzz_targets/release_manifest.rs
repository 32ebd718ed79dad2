//! Release manifests (`releases/<version>.json`): `serde_json::from_slice` and the strict
//! `ReleaseManifest::from_bytes` that loading applies; what loads must re-serialize and
//! load back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use verify::ReleaseManifest;

fuzz_target!(|bytes: &[u8]| {
    let lax = serde_json::from_slice::<ReleaseManifest>(bytes);
    let Ok(manifest) = ReleaseManifest::from_bytes(bytes) else {
        return;
    };
    assert_eq!(
        lax.ok().as_ref(),
        Some(&manifest),
        "from_bytes accepted what serde refused"
    );
    let _ = manifest.digests();
    if let Ok(written) = serde_json::to_vec_pretty(&manifest) {
        let back = ReleaseManifest::from_bytes(&written)
            .unwrap_or_else(|e| panic!("a loaded manifest re-serialized does not load: {e}"));
        assert_eq!(back, manifest);
    }
});
