//! Independent verification of signed evidence: keys made by `openssl genpkey`, envelopes
//! signed by `verify::evidence`, and signatures checked by Python's `cryptography`, which
//! recomputes the DSSE pre-authentication encoding itself.
//!
//! Needs `openssl` and `python3` with `cryptography` (`apt-get install python3-cryptography`);
//! without them the test fails rather than skips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use time::macros::datetime;
use verify::evidence::{Envelope, PublicKey, ResourceDescriptor, SigningKey, TestResult};

const VERIFIER: &str = r#"
import base64, json, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.exceptions import InvalidSignature

envelope = json.load(open(sys.argv[1]))
public = serialization.load_pem_public_key(open(sys.argv[2], "rb").read())
ptype = envelope["payloadType"].encode()
body = base64.b64decode(envelope["payload"], validate=True)
pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(body), body)
statement = json.loads(body)
assert statement["_type"] == "https://in-toto.io/Statement/v1", statement["_type"]
sigs = envelope["signatures"]
assert len(sigs) == 1 and sigs[0]["keyid"] == sys.argv[3], sigs
sig = base64.b64decode(sigs[0]["sig"], validate=True)
try:
    if isinstance(public, ed25519.Ed25519PublicKey):
        public.verify(sig, pae)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(sig, pae, ec.ECDSA(hashes.SHA256()))
    else:
        sys.exit("unexpected key type %r" % type(public))
except InvalidSignature:
    sys.exit("signature does not verify")
print("verified", statement["predicateType"])
"#;

fn require_python_cryptography() {
    let probe = Command::new("python3")
        .args(["-c", "import cryptography"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "python3 has no `cryptography` package ({}); install it: apt-get install python3-cryptography",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => {
            panic!("python3 cannot be run ({e}); install it: apt-get install python3-cryptography")
        }
    }
}

fn openssl_genpkey(dir: &Path, name: &str, args: &[&str]) -> (String, String) {
    let key = dir.join(format!("{name}.key.pem"));
    let out = Command::new("openssl")
        .arg("genpkey")
        .args(args)
        .arg("-out")
        .arg(&key)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl genpkey: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = dir.join(format!("{name}.pub.pem"));
    let out = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        std::fs::read_to_string(key).unwrap(),
        std::fs::read_to_string(public).unwrap(),
    )
}

fn python_verify(envelope: &Path, public: &Path, keyid: &str) -> std::process::Output {
    Command::new("python3")
        .args(["-c", VERIFIER])
        .arg(envelope)
        .arg(public)
        .arg(keyid)
        .output()
        .unwrap()
}

fn check(name: &str, genpkey: &[&str]) {
    require_python_cryptography();
    let dir = tempfile::tempdir().unwrap();
    let (private_pem, openssl_public_pem) = openssl_genpkey(dir.path(), name, genpkey);
    let key = SigningKey::from_pem(&private_pem).unwrap();

    // Our reading of openssl's public key is our own public key.
    let openssl_public = PublicKey::from_pem(&openssl_public_pem).unwrap();
    assert_eq!(openssl_public, key.public_key());
    assert_eq!(openssl_public.fingerprint(), key.public_key().fingerprint());

    let result = TestResult::new(
        "dev",
        "1.4.0",
        datetime!(2026-12-01 09:30:00 UTC),
        ResourceDescriptor::of_bytes("checks.toml", b"[checks]\n"),
        ResourceDescriptor::of_bytes("junit.xml", b"<testsuites/>"),
    )
    .with_tests(vec!["health".into()], vec![], vec![]);
    let digest = "sha256:4e3d0ea0d6f7fb6ad6c1bb8e6c55cc98f2bd6b7a4d2fb4e3f6b2c1a0d9e8f7a6";
    let envelope = result
        .to_statement("registry.example.com/app", digest)
        .sign(&key, "ci")
        .unwrap();

    // Python gets our public PEM (not openssl's) so `to_pem` is checked too.
    let public_path = dir.path().join("ours.pub.pem");
    std::fs::write(&public_path, key.public_key().to_pem()).unwrap();
    let envelope_path = dir.path().join("envelope.json");
    std::fs::write(&envelope_path, envelope.to_json()).unwrap();

    let out = python_verify(&envelope_path, &public_path, "ci");
    assert!(
        out.status.success(),
        "python refused a good {name} envelope: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("test-result"));

    // One payload byte changed (still valid JSON): python must refuse it.
    let mut tampered = Envelope::from_json(&envelope.to_json()).unwrap();
    let at = tampered
        .payload
        .windows(5)
        .position(|w| w == b"1.4.0")
        .unwrap();
    tampered.payload[at] = b'2';
    std::fs::write(&envelope_path, tampered.to_json()).unwrap();
    let out = python_verify(&envelope_path, &public_path, "ci");
    assert!(
        !out.status.success(),
        "python accepted a tampered {name} envelope: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signature does not verify"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn python_verifies_ed25519_envelopes() {
    check("ed25519", &["-algorithm", "ed25519"]);
}

#[test]
fn python_verifies_p256_envelopes() {
    check(
        "p256",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
    );
}

#[test]
fn openssl_sec1_keys_get_the_conversion_hint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sec1.pem");
    let out = Command::new("openssl")
        .args([
            "ecparam",
            "-genkey",
            "-name",
            "prime256v1",
            "-noout",
            "-out",
        ])
        .arg(&path)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(&path).unwrap();
    assert!(pem.contains("BEGIN EC PRIVATE KEY"));
    let err = SigningKey::from_pem(&pem).unwrap_err().to_string();
    assert!(
        err.contains("openssl pkcs8 -topk8 -nocrypt -in key.pem"),
        "{err}"
    );
}
