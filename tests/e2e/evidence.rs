//! Signed evidence in the registry: `release check` attaches DEV's signed test result to
//! every checked image as an OCI referrer, an independent verifier (Python's
//! `cryptography`, over raw HTTP) accepts it, the PROD gate decides on it, refusing each
//! kind of bad attestation by name, and `release image verify` answers from the registry
//! alone.

use std::process::Command;

use release_e2e::proxy::{Fault, Proxy, Rule};
use release_e2e::{Project, Testbed, example_dir};
use serde_json::Value;
use verify::evidence::{ResourceDescriptor, SigningKey, Statement, TestResult};

use crate::image::curl;

const ARTIFACT_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A one-service project, DEV and PROD as two stacks on the agent's Swarm, with keys:
/// DEV signs with `dev-1` (Ed25519, from a variable), PROD signs with `prod-1` (P-256,
/// from a file) and trusts `dev-1`, its own key, and `dev-0`, which is revoked.
struct Signed {
    project: Project,
    repo: String,
    prod: String,
    dev_key: String,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn keypair(project: &Project, name: &str, ec: bool) {
    let dir = project.dir().join("keys");
    std::fs::create_dir_all(&dir).unwrap();
    let private = dir.join(format!("{name}.pem")).display().to_string();
    let public = dir.join(format!("{name}.pub")).display().to_string();
    if ec {
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            &private,
        ]);
    } else {
        openssl(&["genpkey", "-algorithm", "ed25519", "-out", &private]);
    }
    openssl(&["pkey", "-in", &private, "-pubout", "-out", &public]);
}

fn signed(bed: &Testbed) -> Signed {
    let dev = bed.unique("edev");
    let prod = bed.unique("eprod");
    let repo = format!("e2e/{dev}/web");
    let port = 33000 + (std::process::id() % 1000) as u16 * 2;
    let mut project = Project::new();
    project.remove_stack_on_drop(&dev);
    project.remove_stack_on_drop(&prod);
    for (name, ec) in [
        ("dev", false),
        ("old", false),
        ("rogue", false),
        ("prod", true),
    ] {
        keypair(&project, name, ec);
    }
    let check = |env: &str, port: u16| {
        format!(
            "[[environments.{env}.checks]]\nkind = \"http\"\nname = \"web answers /health\"\nservice = \"web\"\n\
             url = \"http://127.0.0.1:{port}/health\"\ntimeout = \"2s\"\nretry_interval = \"500ms\"\ndeadline = \"20s\"\n\n"
        )
    };
    project.write(
        "release.toml",
        &format!(
            "[project]\nname = \"{dev}\"\n\n[registry]\nhost = \"registry.invalid\"\n\n\
             [services.web]\nrepository = \"{repo}\"\ncontext = \"{ctx}\"\nbuild_args = {{ SERVICE = \"web\" }}\n\n\
             [environments.dev]\nstack = \"{dev}\"\nstack_file = \"dev.yml\"\ndeploy_timeout = \"60s\"\n\n\
             [environments.dev.evidence]\nkey_id = \"dev-1\"\nsigning_key_env = \"DEV_SIGNING_KEY\"\n\n{}\
             [environments.prod]\nstack = \"{prod}\"\nstack_file = \"prod.yml\"\npromote_from = \"dev\"\napproval_required = true\ndeploy_timeout = \"60s\"\n\n\
             [environments.prod.evidence]\nkey_id = \"prod-1\"\nsigning_key_file = \"keys/prod.pem\"\n\
             trust = [\n  {{ id = \"dev-1\", public_key = \"keys/dev.pub\", environment = \"dev\" }},\n  {{ id = \"dev-0\", public_key = \"keys/old.pub\", revoked = true }},\n  {{ id = \"prod-1\", public_key = \"keys/prod.pub\", environment = \"prod\" }},\n]\n\n{}",
            check("dev", port),
            check("prod", port + 1),
            ctx = example_dir().join("image").display()
        ),
    );
    for (file, published) in [("dev.yml", port), ("prod.yml", port + 1)] {
        project.write(
            file,
            &format!(
                "version: \"3.8\"\nservices:\n  web:\n    image: {repo}:0\n    init: true\n    stop_grace_period: 1s\n    ports:\n      - target: 8080\n        published: {published}\n        mode: host\n    deploy:\n      endpoint_mode: dnsrr\n      update_config:\n        monitor: 2s\n        failure_action: rollback\n      restart_policy:\n        condition: any\n        delay: 1s\n"
            ),
        );
    }
    let dev_key = std::fs::read_to_string(project.dir().join("keys/dev.pem")).unwrap();
    Signed {
        project,
        repo,
        prod,
        dev_key,
    }
}

impl Signed {
    fn release(&self, bed: &Testbed, args: &[&str]) -> release_e2e::Run {
        bed.release_with(
            self.project.dir(),
            &[("DEV_SIGNING_KEY", self.dev_key.as_str())],
            args,
        )
    }

    fn key(&self, name: &str) -> SigningKey {
        let pem = std::fs::read_to_string(self.project.dir().join(format!("keys/{name}.pem")));
        SigningKey::from_pem(&pem.unwrap()).unwrap()
    }
}

/// The fallback referrers index of `digest` in `repo`, over raw HTTP.
fn referrers_index(bed: &Testbed, repo: &str, digest: &str) -> Value {
    let url = format!(
        "https://{}/v2/{repo}/manifests/{}",
        bed.registry,
        digest.replacen(':', "-", 1)
    );
    serde_json::from_str(&curl(bed, &["-H", &format!("Accept: {INDEX}"), &url])).unwrap()
}

/// The envelope an attestation manifest carries, over raw HTTP.
fn envelope(bed: &Testbed, repo: &str, manifest: &str) -> Vec<u8> {
    let url = format!("https://{}/v2/{repo}/manifests/{manifest}", bed.registry);
    let doc: Value =
        serde_json::from_str(&curl(bed, &["-H", &format!("Accept: {MANIFEST}"), &url])).unwrap();
    assert_eq!(doc["artifactType"], ARTIFACT_TYPE, "{doc}");
    let layer = doc["layers"][0]["digest"].as_str().unwrap();
    let url = format!("https://{}/v2/{repo}/blobs/{layer}", bed.registry);
    curl(bed, &["-L", &url]).into_bytes()
}

/// Verifies a DSSE envelope with Python's `cryptography`, PAE computed here, not by us.
fn python_verifies(envelope: &[u8], public_pem: &std::path::Path) -> bool {
    const SCRIPT: &str = r#"
import base64, json, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
env = json.load(open(sys.argv[1]))
key = serialization.load_pem_public_key(open(sys.argv[2], "rb").read())
payload = base64.b64decode(env["payload"])
ptype = env["payloadType"].encode()
pae = b"DSSEv1 %d %s %d %s" % (len(ptype), ptype, len(payload), payload)
sig = base64.b64decode(env["signatures"][0]["sig"])
try:
    if isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(sig, pae)
    else:
        key.verify(sig, pae, ec.ECDSA(hashes.SHA256()))
except Exception as e:
    print("invalid:", type(e).__name__)
    sys.exit(1)
print("valid")
"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("envelope.json");
    std::fs::write(&file, envelope).unwrap();
    let out = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(&file)
        .arg(public_pem)
        .output()
        .expect("python3 (scripts/testbed installs python3-cryptography)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "python3-cryptography is missing: apt-get install python3-cryptography\n{stderr}"
    );
    out.status.success()
}

/// The digest `release push` recorded for `web` in the release manifest.
fn recorded_digest(project: &Project) -> String {
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(project.state_dir().join("releases/1.0.0.json")).unwrap(),
    )
    .unwrap();
    manifest["services"]["web"]["digest"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Replaces the fallback index of `digest` with exactly the referrers `keep`.
fn set_referrers(bed: &Testbed, repo: &str, digest: &str, keep: &[Value]) {
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": keep,
    });
    let url = format!(
        "https://{}/v2/{repo}/manifests/{}",
        bed.registry,
        digest.replacen(':', "-", 1)
    );
    curl(
        bed,
        &[
            "-X",
            "PUT",
            "-H",
            &format!("Content-Type: {INDEX}"),
            "--data-binary",
            &index.to_string(),
            &url,
        ],
    );
}

/// Pushes `envelope` as an attestation of `digest` (through the fallback index, as the
/// tool does on this registry) and returns its referrer descriptor.
fn attach(bed: &Testbed, repo: &str, digest: &str, envelope: &[u8]) -> Value {
    let blob = |bytes: &[u8], media: &str| -> Value {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("blob");
        std::fs::write(&file, bytes).unwrap();
        let hex = {
            use std::fmt::Write as _;
            let out = Command::new("sha256sum").arg(&file).output().unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            let mut s = String::new();
            write!(s, "{}", text.split_whitespace().next().unwrap()).unwrap();
            s
        };
        let digest = format!("sha256:{hex}");
        let location = curl(
            bed,
            &[
                "-X",
                "POST",
                "-o",
                "/dev/null",
                "-w",
                "%header{location}",
                &format!("https://{}/v2/{repo}/blobs/uploads/", bed.registry),
            ],
        );
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = if location.starts_with("http") {
            format!("{location}{sep}digest={digest}")
        } else {
            format!("https://{}{location}{sep}digest={digest}", bed.registry)
        };
        curl(
            bed,
            &[
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/octet-stream",
                "--data-binary",
                &format!("@{}", file.display()),
                &url,
            ],
        );
        serde_json::json!({"mediaType": media, "digest": digest, "size": bytes.len()})
    };
    let config = blob(b"{}", "application/vnd.oci.empty.v1+json");
    let layer = blob(envelope, ARTIFACT_TYPE);
    let subject_url = format!("https://{}/v2/{repo}/manifests/{digest}", bed.registry);
    let subject_bytes = curl(
        bed,
        &[
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json",
            "-D",
            "-",
            &subject_url,
        ],
    );
    let (headers, body) = subject_bytes.split_once("\r\n\r\n").unwrap();
    let media = headers
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(|v| v.trim().to_owned())
        })
        .unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": ARTIFACT_TYPE,
        "config": config,
        "layers": [layer],
        "subject": {"mediaType": media, "digest": digest, "size": body.len()},
    })
    .to_string();
    let descriptor = blob(manifest.as_bytes(), MANIFEST);
    curl(
        bed,
        &[
            "-X",
            "PUT",
            "-H",
            &format!("Content-Type: {MANIFEST}"),
            "--data-binary",
            &manifest,
            &format!(
                "https://{}/v2/{repo}/manifests/{}",
                bed.registry,
                descriptor["digest"].as_str().unwrap()
            ),
        ],
    );
    serde_json::json!({
        "mediaType": MANIFEST,
        "digest": descriptor["digest"],
        "size": manifest.len(),
        "artifactType": ARTIFACT_TYPE,
        "annotations": {"in-toto.io/predicate-type": verify::evidence::TEST_RESULT_PREDICATE},
    })
}

/// A test result of `web` by `key`, `result` changed as the case needs.
fn crafted(
    key: &SigningKey,
    keyid: &str,
    subject: &str,
    checked_at: time::OffsetDateTime,
    passed: bool,
) -> Vec<u8> {
    let result = TestResult::new(
        "dev",
        "1.0.0",
        checked_at,
        ResourceDescriptor::of_bytes("release.toml", b"config"),
        ResourceDescriptor::of_bytes("junit.xml", b"<testsuites/>"),
    );
    let result = if passed {
        result.with_tests(vec!["web answers /health".into()], vec![], vec![])
    } else {
        result.with_tests(vec![], vec![], vec!["web answers /health".into()])
    };
    let statement: Statement = result.to_statement("web", subject);
    statement.sign(key, keyid).unwrap().to_json()
}

/// DEV's check signs its result into the registry, where a verifier we did not write
/// accepts it; the gate promotes on it and signs a verification summary; each bad
/// attestation is refused with exit 1 naming why; an unreachable registry is exit 3.
#[test]
fn signed_check_results_travel_with_the_image_and_gate_prod() {
    let bed = Testbed::up();
    let s = signed(&bed);
    let run = |args: &[&str]| s.release(&bed, args);
    run(&["-q", "build", "--version", "1.0.0"]).success();
    let pushed = run(&["--json", "push", "--version", "1.0.0"]);
    let artifact = pushed.success().json()["artifact"]
        .as_str()
        .unwrap()
        .to_owned();
    let digest = recorded_digest(&s.project);
    // The manifest is published next to the images, its exact bytes, and the `released`
    // entry names the artifact.
    let project_name = s.repo.split('/').nth(1).unwrap();
    let published: Value = serde_json::from_str(&curl(
        &bed,
        &[
            "-H",
            &format!("Accept: {MANIFEST}"),
            &format!(
                "https://{}/v2/{project_name}/releases/manifests/1.0.0",
                bed.registry
            ),
        ],
    ))
    .unwrap();
    let layer = published["layers"][0]["digest"].as_str().unwrap();
    let file = std::fs::read(s.project.state_dir().join("releases/1.0.0.json")).unwrap();
    assert_eq!(
        layer,
        format!("sha256:{}", sha256_hex(&file)),
        "{published}"
    );
    let ledger = std::fs::read_to_string(s.project.state_dir().join("ledger.jsonl")).unwrap();
    assert!(ledger.contains(&artifact), "{ledger}");
    run(&["-q", "deploy", "--env", "dev", "--version", "1.0.0"]).success();

    // Without the key's variable, the check refuses to run unsigned: exit 2, nothing
    // recorded.
    let ledger_path = s.project.state_dir().join("ledger.jsonl");
    let before = std::fs::read_to_string(&ledger_path).unwrap();
    bed.release(&s.project, ["check", "--env", "dev"])
        .expect_code(2)
        .stderr_has("DEV_SIGNING_KEY");
    assert_eq!(std::fs::read_to_string(&ledger_path).unwrap(), before);

    let junit = s.project.dir().join("check-dev.xml");
    let checked = run(&["check", "--env", "dev", "--junit", junit.to_str().unwrap()]);
    checked
        .success()
        .stdout_has("signed test result sha256:")
        .stdout_has("attached to 1 image(s)");
    assert!(!checked.stdout().contains("PRIVATE KEY") && !checked.stderr().contains("PRIVATE KEY"));
    let ledger = std::fs::read_to_string(s.project.state_dir().join("ledger.jsonl")).unwrap();
    let checked_entry: Value = ledger
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .rfind(|e| e["kind"] == "checked")
        .unwrap();
    let recorded = checked_entry["payload"]["attestation"].as_str().unwrap();
    assert!(!ledger.contains("PRIVATE KEY"));
    let key_body = s.dev_key.lines().nth(1).unwrap();
    for (what, text) in [
        ("stdout", checked.stdout()),
        ("stderr", checked.stderr()),
        ("ledger", ledger.clone()),
        ("junit", std::fs::read_to_string(&junit).unwrap()),
    ] {
        assert!(
            !text.contains(key_body),
            "the signing key reached the {what}"
        );
    }

    // Raw HTTP, as the distribution spec describes the fallback: the index at
    // sha256-<hex> lists the attestation; Python verifies its signature.
    let index = referrers_index(&bed, &s.repo, &digest);
    let listed = index["manifests"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{index}");
    assert_eq!(listed[0]["artifactType"], ARTIFACT_TYPE);
    let dev_attestation = listed[0].clone();
    let bytes = envelope(&bed, &s.repo, listed[0]["digest"].as_str().unwrap());
    assert_eq!(
        format!("sha256:{}", sha256_hex(&bytes)),
        recorded,
        "the ledger names the envelope in the registry"
    );
    let dev_pub = s.project.dir().join("keys/dev.pub");
    assert!(
        python_verifies(&bytes, &dev_pub),
        "an independent verifier rejects it"
    );
    let mut altered = bytes.clone();
    let at = altered.iter().position(|b| *b == b'"').unwrap() + 40;
    altered[at] = if altered[at] == b'A' { b'B' } else { b'A' };
    assert!(!python_verifies(&altered, &dev_pub));
    let statement: Value = serde_json::from_slice(&base64_decode(
        serde_json::from_slice::<Value>(&bytes).unwrap()["payload"]
            .as_str()
            .unwrap(),
    ))
    .unwrap();
    assert_eq!(
        statement["predicateType"],
        "https://in-toto.io/attestation/test-result/v0.1"
    );
    assert_eq!(statement["predicate"]["result"], "PASSED");
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        digest.trim_start_matches("sha256:")
    );

    // An auditor, from the registry alone.
    let image = format!("{}:1.0.0", s.repo);
    let verify_prod = || run(&["--json", "image", "verify", &image, "--env", "prod"]);
    let verified = verify_prod();
    let v = verified.success().json();
    assert_eq!(v["satisfied"], true, "{v}");
    assert_eq!(v["evidence"][0]["signatures"][0]["key_id"], "dev-1");
    assert_eq!(v["evidence"][0]["signatures"][0]["status"], "trusted");

    // Each bad attestation, alone in the registry, is refused by the gate with exit 1.
    let now = time::OffsetDateTime::now_utc();
    let dev = s.key("dev");
    let other = format!("sha256:{}", "ab".repeat(32));
    let mut tampered = bytes.clone();
    let payload_at = tampered
        .windows(10)
        .position(|w| w == b"\"payload\":")
        .unwrap()
        + 20;
    tampered[payload_at] = if tampered[payload_at] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("one byte changed", tampered, "does not verify"),
        (
            "untrusted key",
            crafted(&s.key("rogue"), "rogue-1", &digest, now, true),
            "not trusted",
        ),
        (
            "revoked key",
            crafted(&s.key("old"), "dev-0", &digest, now, true),
            "revoked",
        ),
        (
            "PROD's own key",
            crafted(&s.key("prod"), "prod-1", &digest, now, true),
            "trusted only for `prod`",
        ),
        (
            "FAILED result",
            crafted(&dev, "dev-1", &digest, now, false),
            "FAILED",
        ),
        (
            "another digest",
            crafted(&dev, "dev-1", &other, now, true),
            "another subject",
        ),
        (
            "older than DEV's deploy",
            crafted(&dev, "dev-1", &digest, now - time::Duration::hours(1), true),
            "before the cut-off",
        ),
    ];
    let gate = [
        "promote",
        "--version",
        "1.0.0",
        "--to",
        "prod",
        "--approved-by",
        "alice",
        "--dry-run",
    ];
    for (case, envelope, reason) in &cases {
        let referrer = attach(&bed, &s.repo, &digest, envelope);
        set_referrers(&bed, &s.repo, &digest, &[referrer]);
        let refused = run(&gate);
        refused
            .expect_code(1)
            .stdout_has("FAIL  `dev` signed a passing check of web");
        assert!(
            refused.stdout().contains(reason),
            "{case}: {}",
            refused.stdout()
        );
        let v = verify_prod();
        // The registry alone does not say when DEV was deployed: `image verify` applies
        // every condition but that one.
        let too_old = *case == "older than DEV's deploy";
        v.expect_code(if too_old { 0 } else { 1 });
        assert_eq!(v.json()["satisfied"], too_old, "{case}");
    }
    set_referrers(&bed, &s.repo, &digest, &[]);
    run(&gate)
        .expect_code(1)
        .stdout_has("there is no test-result attestation");

    // The registry answers everything but the referrers: the gate fails closed, exit 3.
    set_referrers(
        &bed,
        &s.repo,
        &digest,
        std::slice::from_ref(&dev_attestation),
    );
    let proxy = Proxy::start(
        &bed,
        vec![Rule::always(
            "GET",
            "/manifests/sha256-",
            Fault::Status(503, None),
        )],
    );
    let config = std::fs::read_to_string(s.project.config()).unwrap();
    s.project.write(
        "release.toml",
        &config.replace(
            "host = \"registry.invalid\"",
            "host = \"registry.invalid\"\ninsecure = true",
        ),
    );
    let down = bed.release_with(
        s.project.dir(),
        &[
            ("RELEASE_REGISTRY", proxy.addr.as_str()),
            ("RELEASE_REGISTRY_RETRIES", "2"),
        ],
        gate[..7].iter().copied(),
    );
    down.expect_code(3).stderr_has("nothing was deployed");
    assert!(
        !proxy.hits("GET", "/manifests/sha256-").is_empty(),
        "the gate never asked the registry for the referrers"
    );
    // The same for an auditor: exit 3, not a verdict.
    let through_proxy = format!("{}/{}@{digest}", proxy.addr, s.repo);
    bed.release_with(
        s.project.dir(),
        &[
            ("RELEASE_REGISTRY", proxy.addr.as_str()),
            ("RELEASE_REGISTRY_RETRIES", "2"),
        ],
        ["image", "verify", through_proxy.as_str(), "--env", "prod"],
    )
    .expect_code(3)
    .stderr_has("503");
    s.project.write("release.toml", &config);

    // With DEV's real attestation back, another agent, with an empty state directory,
    // promotes from the registry alone, and signs its decision.
    let elsewhere = tempfile::tempdir().unwrap();
    // Every `docker` child logs the names of its variables: a signing key's is never one.
    let (children, path) = crate::security::docker_wrapper(&s.project);
    let agent_b = |args: &[&str]| {
        bed.release_with(
            s.project.dir(),
            &[
                ("DEV_SIGNING_KEY", s.dev_key.as_str()),
                ("RELEASE_STATE_DIR", &elsewhere.path().display().to_string()),
                ("PATH", path.as_str()),
            ],
            args,
        )
    };
    let promoted = agent_b(&gate[..7]);
    promoted
        .success()
        .stdout_has("PASS  release manifest is recorded and unaltered: not in this agent's records: fetched from the registry")
        .stdout_has("PASS  source environment runs exactly this release")
        .stdout_has("no deploy of it in this agent's records")
        .stdout_has("PASS  `dev` signed a passing check of web")
        .stdout_has("signed verification summary");
    let seen = std::fs::read_to_string(&children).unwrap();
    assert!(seen.contains("ARGV stack deploy"), "{seen}");
    assert!(
        !seen.contains("DEV_SIGNING_KEY") && !seen.contains("RELEASE_"),
        "a child saw a secret's variable: {seen}"
    );
    let prod_image = docker_service_image(&s.prod);
    assert!(prod_image.ends_with(&digest), "PROD runs {prod_image}");
    let ledger_b = std::fs::read_to_string(elsewhere.path().join("ledger.jsonl")).unwrap();
    let kinds: Vec<String> = ledger_b
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kinds, ["released", "promoted"], "{ledger_b}");
    assert!(
        ledger_b.contains(dev_attestation["digest"].as_str().unwrap()),
        "the promotion names the attestation it relied on: {ledger_b}"
    );
    let index = referrers_index(&bed, &s.repo, &digest);
    let summaries: Vec<&Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["annotations"]["in-toto.io/predicate-type"]
                == "https://slsa.dev/verification_summary/v1"
        })
        .collect();
    assert_eq!(summaries.len(), 1, "{index}");
    let vsa = envelope(&bed, &s.repo, summaries[0]["digest"].as_str().unwrap());
    assert!(python_verifies(
        &vsa,
        &s.project.dir().join("keys/prod.pub")
    ));
    let vsa: Value = serde_json::from_slice(&base64_decode(
        serde_json::from_slice::<Value>(&vsa).unwrap()["payload"]
            .as_str()
            .unwrap(),
    ))
    .unwrap();
    assert_eq!(vsa["predicate"]["verificationResult"], "PASSED", "{vsa}");
    assert_eq!(vsa["predicate"]["approver"], "alice");
    assert_eq!(
        vsa["predicate"]["inputAttestations"][0]["digest"]["sha256"],
        dev_attestation["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
    );
    let v = verify_prod();
    let v = v.success().json();
    let kinds: Vec<&str> = v["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"verification-summary"), "{v}");

    // Copied to another registry (the token-auth one), the evidence comes along and
    // still verifies there; a copy without it would not.
    let copy = format!(
        "{}/e2e/{}-copy/web:1.0.0",
        bed.token_registry,
        s.repo.replace('/', "-")
    );
    let copied = run(&[
        "--json",
        "image",
        "copy",
        &format!("{}:1.0.0", s.repo),
        &copy,
    ]);
    assert_eq!(
        copied.success().json()["referrers"],
        2,
        "DEV's result and PROD's summary"
    );
    run(&["image", "verify", &copy, "--env", "prod"])
        .success()
        .stdout_has("test-result")
        .stdout_has("dev-1 (trusted)")
        .stdout_has("verification-summary")
        .stdout_has(": satisfied");
}

/// The image PROD's `web` service runs, as its spec names it.
fn docker_service_image(stack: &str) -> String {
    release_e2e::docker([
        "service",
        "inspect",
        "--format",
        "{{.Spec.TaskTemplate.ContainerSpec.Image}}",
        &format!("{stack}_web"),
    ])
    .trim()
    .to_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b");
    std::fs::write(&file, bytes).unwrap();
    let out = Command::new("sha256sum").arg(&file).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

fn base64_decode(text: &str) -> Vec<u8> {
    use std::io::Write as _;
    let mut child = Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap().stdout
}
