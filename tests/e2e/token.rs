//! The bearer-token flow against the testbed's token-auth registry (Distribution with
//! `auth: token`, tokens from `scripts/token-server`), on the same storage as the basic-auth
//! registry: what the basic-auth registry holds, this one serves by token.

use release_e2e::{Project, Testbed, testbed_log};

use crate::image::{assert_resolves, copied, pushed};

/// Token-server log lines added since `before` that name `repository`.
fn token_requests(before: usize, repository: &str) -> Vec<String> {
    testbed_log("token-server.log")
        .lines()
        .skip(before)
        .filter(|l| l.contains(&format!("repository:{repository}:")))
        .map(str::to_owned)
        .collect()
}

fn log_len() -> usize {
    testbed_log("token-server.log").lines().count()
}

#[test]
fn resolve_by_token_matches_the_push_and_asks_one_token_per_scope() {
    let bed = Testbed::up();
    let (reference, digest) = pushed(&bed, "token-digest", "api");
    let repository = reference.split_once(':').unwrap().0.to_owned();
    let project = Project::new();
    // Four more tags of the same image, so one run resolves five references concurrently.
    let tags: Vec<String> = (1..=4)
        .map(|n| {
            let tag = format!("{repository}:t{n}");
            bed.release(
                &project,
                ["image", "copy", reference.as_str(), tag.as_str()],
            )
            .success();
            format!("{}/{tag}", bed.token_registry)
        })
        .collect();

    let before = log_len();
    let mut args = vec!["--json".to_owned(), "image".into(), "digest".into()];
    args.push(format!("{}/{reference}", bed.token_registry));
    args.extend(tags.iter().cloned());
    let json = bed.release(&project, &args).success().json();
    let images = json["images"].as_array().unwrap();
    assert_eq!(images.len(), 5);
    for image in images {
        assert_eq!(image["digest"], digest.as_str(), "{image}");
    }
    let requests = token_requests(before, &repository);
    assert_eq!(
        requests.len(),
        1,
        "five resolves in one repository should share one pull token: {requests:?}"
    );
    assert!(
        requests[0].ends_with(&format!("scopes=repository:{repository}:pull")),
        "{requests:?}"
    );
    // The answers came from the token-auth registry, which accepted the token; only the
    // first request (sent before the client knew the registry wants tokens) met a 401, the
    // other four waited for it to learn instead of collecting a 401 each.
    let log = testbed_log("registry-token.log");
    let refused = log
        .lines()
        .filter(|l| l.contains(&format!(" /v2/{repository}/manifests/")) && l.contains("\" 401 "))
        .count();
    assert_eq!(refused, 1, "401 answers to the five resolves");
    let answered = format!("\"HEAD /v2/{repository}/manifests/t4 HTTP/");
    assert!(
        log.lines()
            .any(|l| l.contains(&answered) && l.contains("\" 200 ")),
        "the token-auth registry did not answer the resolve with 200"
    );
}

#[test]
fn copy_by_token_mounts_with_pull_scope_on_the_source_and_uploads_nothing() {
    let bed = Testbed::up();
    let (source, digest) = pushed(&bed, "token-copy-src", "api");
    let source_repo = source.split_once(':').unwrap().0.to_owned();
    let destination_repo = format!("e2e/{}", bed.unique("token-copy-dst"));
    let project = Project::new();
    let before = log_len();
    let report = copied(
        &bed,
        &project,
        &format!("{}/{source}", bed.token_registry),
        &format!("{}/{destination_repo}:2.0.0", bed.token_registry),
    );
    assert_eq!(report["digest"], digest.as_str());
    assert_eq!(report["bytes_uploaded"], 0);
    assert_eq!(report["blobs_mounted"], report["blobs"]);

    let requests = token_requests(before, &destination_repo);
    let mount_scope =
        format!("scopes=repository:{destination_repo}:pull,push repository:{source_repo}:pull");
    assert!(
        requests.iter().any(|l| l.ends_with(&mount_scope)),
        "no token with push on the destination and pull on the source: {requests:?}"
    );
    // One token for the whole copy: the source manifest, every mount and the destination
    // manifest all use the token asked with the mount scope.
    assert_eq!(
        requests.len(),
        1,
        "more than one token for one copy: {requests:?}"
    );

    // And the basic-auth registry on the same storage sees the same bytes under the new tag.
    assert_resolves(&bed, &format!("{destination_repo}:2.0.0"), &digest);
}

#[test]
fn wrong_password_at_the_token_server_exits_2_without_the_password() {
    let bed = Testbed::up();
    let (reference, _) = pushed(&bed, "token-auth", "api");
    let project = Project::new();
    let canary = "canary-T0ken-Pa55-do-not-print";
    let run = bed.release_with(
        project.dir(),
        &[("RELEASE_REGISTRY_PASSWORD", canary), ("RUST_LOG", "trace")],
        [
            "image",
            "digest",
            &format!("{}/{reference}", bed.token_registry),
        ],
    );
    run.expect_code(2)
        .stderr_has("the token server rejected the credentials")
        .stderr_has("hint:");
    let all = format!("{}{}", run.stdout(), run.stderr());
    assert!(!all.contains(canary), "the password appears in the output");
    assert!(
        !testbed_log("token-server.log").contains(canary),
        "the token server logged the password"
    );
}
