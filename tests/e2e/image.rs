//! `release image digest|copy` against the real TLS + basic-auth registry, directly and
//! through a fault-injecting proxy.

use std::process::Command;
use std::time::{Duration, Instant};

use release_e2e::proxy::{Fault, Proxy, Rule};
use release_e2e::{Project, Testbed, testbed_log};

/// Pushes the demo image as `e2e/<name>:1.0.0`; returns (`e2e/<name>:1.0.0` without registry, digest).
pub(crate) fn pushed(bed: &Testbed, name: &str, service: &str) -> (String, String) {
    let repo = format!("e2e/{}", bed.unique(name));
    let pinned = bed.push_demo_image(&repo, "1.0.0", &[("SERVICE", service)]);
    let (_, digest) = pinned.split_once('@').unwrap();
    (format!("{repo}:1.0.0"), digest.to_owned())
}

/// `release --json image copy SOURCE DESTINATION`, which must succeed; returns the report.
pub(crate) fn copied(
    bed: &Testbed,
    project: &Project,
    source: &str,
    destination: &str,
) -> serde_json::Value {
    bed.release(project, ["--json", "image", "copy", source, destination])
        .success()
        .json()
}

/// `release image digest REFERENCE` prints exactly `REFERENCE DIGEST`.
pub(crate) fn assert_resolves(bed: &Testbed, reference: &str, digest: &str) {
    let run = bed.release(&Project::new(), ["image", "digest", reference]);
    run.success();
    assert_eq!(run.stdout(), format!("{reference} {digest}\n"));
}

pub(crate) fn curl(bed: &Testbed, args: &[&str]) -> String {
    let auth = format!("{}:{}", bed.username, bed.password);
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(&bed.ca)
        .args(["-u", &auth])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn registry_log() -> String {
    testbed_log("registry.log")
}

#[test]
fn digest_matches_what_docker_push_reported() {
    let bed = Testbed::up();
    let (reference, digest) = pushed(&bed, "digest", "api");
    let project = Project::new();
    assert_resolves(&bed, &reference, &digest);

    let json = bed
        .release(
            &project,
            ["--json", "image", "digest", "--verify", reference.as_str()],
        )
        .success()
        .json();
    let image = &json["images"][0];
    assert_eq!(image["digest"], digest.as_str());
    assert_eq!(image["verified"], true);
    assert_eq!(
        image["media_type"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
}

#[test]
fn digest_of_an_oci_index_is_the_index_and_lists_both_platforms() {
    let bed = Testbed::up();
    let repo = format!("e2e/{}", bed.unique("index"));
    let amd = bed.push_demo_image(&repo, "amd64", &[("SERVICE", "api")]);
    let arm = bed.push_demo_image(&repo, "arm64", &[("SERVICE", "worker")]);
    let children: Vec<(String, usize, &str)> = [(amd, "amd64"), (arm, "arm64")]
        .into_iter()
        .map(|(pinned, arch)| {
            let digest = pinned.split_once('@').unwrap().1.to_owned();
            let body = curl(
                &bed,
                &[
                    "-H",
                    "Accept: application/vnd.docker.distribution.manifest.v2+json",
                    &format!("https://{}/v2/{repo}/manifests/{digest}", bed.registry),
                ],
            );
            (digest, body.len(), arch)
        })
        .collect();
    let manifests: Vec<serde_json::Value> = children
        .iter()
        .map(|(digest, size, arch)| {
            serde_json::json!({
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "digest": digest, "size": size,
                "platform": {"os": "linux", "architecture": arch}
            })
        })
        .collect();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let project = Project::new();
    let file = project.write("index.json", &index.to_string());
    let headers = curl(
        &bed,
        &[
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.oci.image.index.v1+json",
            "--data-binary",
            &format!("@{}", file.display()),
            &format!("https://{}/v2/{repo}/manifests/multi", bed.registry),
        ],
    );
    let pushed = headers
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("docker-content-digest:")
                .map(|v| v.trim().to_owned())
        })
        .expect("the registry returned no digest for the index");

    let reference = format!("{repo}:multi");
    let json = bed
        .release(&project, ["--json", "image", "digest", reference.as_str()])
        .success()
        .json();
    let image = &json["images"][0];
    assert_eq!(image["digest"], pushed.as_str());
    assert_eq!(
        image["media_type"],
        "application/vnd.oci.image.index.v1+json"
    );
    let platforms = image["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 2);
    for ((digest, _, arch), platform) in children.iter().zip(platforms) {
        assert_eq!(platform["digest"], digest.as_str());
        assert_eq!(platform["platform"]["architecture"], *arch);
    }

    // The whole index copies to another repository with its digest intact.
    let copy = format!("e2e/{}:multi", bed.unique("index-copy"));
    let report = copied(&bed, &project, &reference, &copy);
    assert_eq!(report["digest"], pushed.as_str());
    assert_eq!(report["manifests"], 3);
    assert_eq!(report["bytes_uploaded"], 0);
    assert_resolves(&bed, &copy, &pushed);
}

#[test]
fn copy_to_another_repository_mounts_every_blob_and_uploads_no_bytes() {
    let bed = Testbed::up();
    let (source, digest) = pushed(&bed, "copy-src", "api");
    let destination_repo = format!("e2e/{}", bed.unique("copy-dst"));
    let destination = format!("{destination_repo}:2.0.0");
    let project = Project::new();
    let report = copied(&bed, &project, &source, &destination);
    assert_eq!(report["digest"], digest.as_str());
    assert_eq!(report["bytes_uploaded"], 0);
    assert!(report["blobs"].as_u64().unwrap() >= 2);
    assert_eq!(report["blobs_mounted"], report["blobs"]);

    // The registry's own access log agrees: mounts, and no blob data sent to the destination.
    let log = registry_log();
    let uploads = format!("/v2/{destination_repo}/blobs/uploads/");
    let mounts = log
        .lines()
        .filter(|l| l.contains(&format!("\"POST {uploads}?mount=")))
        .count();
    assert!(
        mounts >= 2,
        "no mount requests for {destination_repo} in the registry log"
    );
    for verb in ["PATCH", "PUT"] {
        assert!(
            !log.contains(&format!("\"{verb} {uploads}")),
            "blob bytes were uploaded to {destination_repo}: {verb} in the registry log"
        );
    }
    assert_resolves(&bed, &destination, &digest);

    // A retag in the same repository writes the manifest only.
    let retag = source.replace(":1.0.0", ":stable");
    let report = copied(&bed, &project, &source, &retag);
    assert_eq!(report["digest"], digest.as_str());
    assert_eq!(report["blobs_present"], report["blobs"]);
    assert_eq!(report["manifests"], 1);
}

#[test]
fn a_declined_mount_closes_its_upload_session_and_uploads_nothing_the_destination_has() {
    let bed = Testbed::up();
    let (source, digest) = pushed(&bed, "decline-src", "api");
    let source_repo = source.split_once(':').unwrap().0.to_owned();
    let destination_repo = format!("e2e/{}", bed.unique("decline-dst"));
    let destination = format!("{destination_repo}:1.0.0");
    let project = Project::new();
    bed.release(
        &project,
        ["image", "copy", source.as_str(), destination.as_str()],
    )
    .success();

    // Unlink the config blob from the source repository: a mount from there is now declined
    // (Distribution answers 202 and opens an upload session instead of 201).
    let manifest: serde_json::Value = serde_json::from_str(&curl(
        &bed,
        &[
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json",
            &format!("https://{}/v2/{source_repo}/manifests/1.0.0", bed.registry),
        ],
    ))
    .unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap().to_owned();
    curl(
        &bed,
        &[
            "-X",
            "DELETE",
            &format!("https://{}/v2/{source_repo}/blobs/{config}", bed.registry),
        ],
    );

    let report = copied(&bed, &project, &source, &destination);
    assert_eq!(report["digest"], digest.as_str());
    assert_eq!(report["bytes_uploaded"], 0);
    assert_eq!(report["blobs_present"], 1, "{report}");
    assert_eq!(
        report["blobs_mounted"].as_u64().unwrap() + 1,
        report["blobs"].as_u64().unwrap()
    );
    // The session the registry opened for the declined mount was closed, not left open.
    let log = registry_log();
    let uploads = format!("/v2/{destination_repo}/blobs/uploads/");
    let declined = log
        .lines()
        .filter(|l| {
            l.contains(&format!("\"POST {uploads}?mount={config}")) && l.contains("\" 202 ")
        })
        .count();
    assert_eq!(
        declined, 1,
        "the registry did not decline the mount of {config}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains(&format!("\"DELETE {uploads}")) && l.contains("\" 204 ")),
        "the upload session of the declined mount was not closed"
    );
    for verb in ["PATCH", "PUT"] {
        assert!(
            !log.contains(&format!("\"{verb} {uploads}")),
            "blob bytes were uploaded to {destination_repo}: {verb} in the registry log"
        );
    }
}

#[test]
fn missing_tag_exits_1_naming_registry_repository_and_tag() {
    let bed = Testbed::up();
    let (reference, _) = pushed(&bed, "missing", "api");
    let missing = reference.replace(":1.0.0", ":9.9.9");
    let repository = missing.split_once(':').unwrap().0;
    let project = Project::new();
    bed.release(&project, ["image", "digest", missing.as_str()])
        .expect_code(1)
        .stderr_has("tag not found")
        .stderr_has(&format!("registry {}", bed.registry))
        .stderr_has(&format!("repository {repository}"))
        .stderr_has("tag 9.9.9");
}

#[test]
fn wrong_password_exits_2_with_a_hint_and_never_prints_a_password() {
    let bed = Testbed::up();
    let (reference, _) = pushed(&bed, "auth", "api");
    let project = Project::new();
    let canary = "canary-Pa55w0rd-do-not-print";
    let run = bed.release_env(
        &project,
        &[
            ("RELEASE_REGISTRY_PASSWORD", Some(canary)),
            ("RUST_LOG", Some("trace")),
        ],
        ["image", "digest", reference.as_str()],
    );
    run.expect_code(2)
        .stderr_has("authentication failed")
        .stderr_has("hint:");
    assert!(!run.stderr().contains(canary) && !run.stdout().contains(canary));

    // A successful run at trace level sends the real password on every request; it must not show.
    let run = bed.release_env(
        &project,
        &[("RUST_LOG", Some("trace"))],
        ["image", "digest", reference.as_str()],
    );
    run.success();
    let basic = {
        let out = Command::new("base64")
            .arg("-w0")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child
                    .stdin
                    .take()
                    .unwrap()
                    .write_all(format!("{}:{}", bed.username, bed.password).as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let all = format!("{}{}", run.stdout(), run.stderr());
    assert!(
        run.stderr().contains("attempt 1/"),
        "trace output has no attempt log"
    );
    assert!(
        !all.contains(&bed.password),
        "the password appears at RUST_LOG=trace"
    );
    assert!(
        !all.contains(&basic),
        "the Authorization header appears at RUST_LOG=trace"
    );
}

#[test]
fn tls_is_verified_and_the_error_names_the_host() {
    let bed = Testbed::up();
    let project = Project::new();
    bed.release_env(
        &project,
        &[("RELEASE_REGISTRY_CA", None)],
        ["image", "digest", "e2e/any:1"],
    )
    .expect_code(3)
    .stderr_has(&format!("TLS error talking to {}", bed.registry))
    .stderr_has("certificate");
}

/// Environment for runs through the proxy: the proxy is the default registry, fast backoff.
fn through<'a>(proxy: &'a Proxy, retries: &'a str) -> Vec<(&'a str, Option<&'a str>)> {
    vec![
        ("RELEASE_REGISTRY", Some(proxy.addr.as_str())),
        ("RELEASE_REGISTRY_RETRIES", Some(retries)),
        ("RELEASE_REGISTRY_RETRY_BASE_MS", Some("50")),
        ("RELEASE_REGISTRY_MAX_WAIT", Some("5")),
        ("RUST_LOG", Some("debug")),
    ]
}

#[test]
fn resolve_survives_503_429_resets_delays_and_truncated_bodies() {
    let bed = Testbed::up();
    let (reference, digest) = pushed(&bed, "faults", "api");
    let proxy = Proxy::start(
        &bed,
        vec![
            Rule::new(
                "HEAD",
                "/manifests/",
                vec![
                    Fault::Status(503, Some("1")),
                    Fault::Status(429, None),
                    Fault::Reset,
                    Fault::Delay(Duration::from_millis(300)),
                ],
            ),
            Rule::new(
                "GET",
                "/manifests/",
                vec![Fault::Truncate, Fault::Status(502, None)],
            ),
        ],
    );
    let project = proxy.project();
    let start = Instant::now();
    let run = bed.release_env(
        &project,
        &through(&proxy, "6"),
        ["image", "digest", "--verify", reference.as_str()],
    );
    run.success();
    assert_eq!(run.stdout(), format!("{reference} {digest}\n"));
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "took {:?}",
        start.elapsed()
    );

    let heads = proxy.hits("HEAD", "/manifests/");
    // 503, 429, reset, then a slow but good answer: four tries, within the cap of six.
    assert_eq!(heads.len(), 4, "HEAD tries: {heads:?}");
    let waited = heads[1].at - heads[0].at;
    assert!(
        waited >= Duration::from_secs(1),
        "retried {waited:?} after Retry-After: 1"
    );
    assert_eq!(proxy.hits("GET", "/manifests/").len(), 3);
    run.stderr_has("attempt 2/6").stderr_has("503");
}

#[test]
fn exhausted_retry_budget_exits_3_after_exactly_the_cap() {
    let bed = Testbed::up();
    let proxy = Proxy::start(
        &bed,
        vec![Rule::always(
            "HEAD",
            "/manifests/",
            Fault::Status(503, None),
        )],
    );
    let project = proxy.project();
    bed.release_env(
        &project,
        &through(&proxy, "3"),
        ["image", "digest", "e2e/any:1"],
    )
    .expect_code(3)
    .stderr_has("unreachable after 3 attempt(s)")
    .stderr_has("503");
    assert_eq!(proxy.hits("HEAD", "/manifests/").len(), 3);
}

#[test]
fn retry_after_beyond_the_budget_exits_3_at_once() {
    let bed = Testbed::up();
    let proxy = Proxy::start(
        &bed,
        vec![Rule::always(
            "HEAD",
            "/manifests/",
            Fault::Status(503, Some("120")),
        )],
    );
    let project = proxy.project();
    let start = Instant::now();
    bed.release_env(
        &project,
        &through(&proxy, "5"),
        ["image", "digest", "e2e/any:1"],
    )
    .expect_code(3)
    .stderr_has("retry")
    .stderr_has("120s");
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(proxy.hits("HEAD", "/manifests/").len(), 1);
}

#[test]
fn copy_takes_the_digest_from_the_put_answer_and_heads_only_when_it_names_none() {
    let bed = Testbed::up();
    let (source, digest) = pushed(&bed, "confirm", "api");
    let destination = format!("e2e/{}", bed.unique("confirm-copy"));
    let copy_through = |proxy: &Proxy, tag: &str| {
        let target = format!("{destination}:{tag}");
        let run = bed.release_env(
            &proxy.project(),
            &through(proxy, "3"),
            ["--json", "image", "copy", source.as_str(), target.as_str()],
        );
        run.success();
        assert_eq!(run.json()["digest"], digest.as_str());
        assert_resolves(&bed, &target, &digest);
    };

    // The registry names the stored digest in its answer to the PUT: no HEAD afterwards.
    let proxy = Proxy::start(&bed, Vec::new());
    copy_through(&proxy, "put");
    assert_eq!(proxy.hits("PUT", "/manifests/put").len(), 1);
    assert_eq!(proxy.hits("HEAD", "/manifests/").len(), 0);

    // An answer without `Docker-Content-Digest`: the copy confirms with one HEAD.
    let proxy = Proxy::start(
        &bed,
        vec![Rule::new(
            "PUT",
            "/manifests/",
            vec![Fault::DropHeader("Docker-Content-Digest")],
        )],
    );
    copy_through(&proxy, "head");
    let put = proxy.hits("PUT", "/manifests/head");
    assert_eq!(put.len(), 1);
    assert!(put[0].fault.is_some(), "the header was dropped: {put:?}");
    assert_eq!(proxy.hits("HEAD", "/manifests/head").len(), 1);
}

#[test]
fn not_found_and_auth_failures_are_never_retried() {
    let bed = Testbed::up();
    let proxy = Proxy::start(&bed, Vec::new());
    let project = proxy.project();
    bed.release_env(
        &project,
        &through(&proxy, "5"),
        ["image", "digest", "e2e/never-pushed:1"],
    )
    .expect_code(1);
    assert_eq!(proxy.hits("HEAD", "/manifests/").len(), 1);

    let mut env = through(&proxy, "5");
    env.push(("RELEASE_REGISTRY_PASSWORD", Some("wrong")));
    bed.release_env(&project, &env, ["image", "digest", "e2e/never-pushed:2"])
        .expect_code(2);
    // One unauthenticated-or-basic try, one answer to the challenge at most; no retry loop.
    assert!(proxy.hits("HEAD", "never-pushed/manifests/2").len() <= 2);
}
