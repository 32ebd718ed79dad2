//! The state directory as a test sets it up and reads it back through the library rather
//! than through `release`: releases recorded as `release push` records them, the ledger,
//! the environment pointers. A scenario that only needs images in the registry and a
//! recorded release does not build them, and what it asserts about the records does not
//! depend on how `release` prints them.

use std::collections::BTreeMap;

use verify::{Digest, EntryKind, EnvPointer, ReleaseManifest, ServiceImage, StateDir, Version};

use crate::{Project, Testbed, docker};

/// The services of the two-service fixtures (`deploy`, `compose`, `blue_green`).
pub const SERVICES: [&str; 2] = ["api", "worker"];

pub fn state(project: &Project) -> StateDir {
    StateDir::open(project.state_dir()).unwrap()
}

/// Pushes one demo image per service of [`SERVICES`] to `REGISTRY/<repo>/<service>:<version>`
/// and records release `version` of them; `api_args` are extra build args for api (to make
/// it unhealthy, say). Returns service → pinned reference.
pub fn record_release(
    bed: &Testbed,
    project: &Project,
    repo: &str,
    version: &str,
    api_args: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let mut services = BTreeMap::new();
    let mut pinned = BTreeMap::new();
    for service in SERVICES {
        let mut args = vec![("SERVICE", service), ("VERSION", version)];
        if service == "api" {
            args.extend_from_slice(api_args);
        }
        let reference = bed.push_demo_image(&format!("{repo}/{service}"), version, &args);
        let (name, digest) = reference.split_once('@').unwrap();
        let (repository, tag) = name.rsplit_once(':').unwrap();
        services.insert(
            verify::ServiceName::parse(service).unwrap(),
            ServiceImage {
                repository: repository.to_owned(),
                tag: tag.to_owned(),
                digest: Digest::parse(digest).unwrap(),
                platform: None,
            },
        );
        pinned.insert(service.to_owned(), reference);
    }
    record_manifest(project, version, services);
    pinned
}

/// Removes the tags of `pinned` (service → `REGISTRY/repo:tag@digest`) from the agent's
/// engine: [`Testbed::push_demo_image`] builds them there, and a Compose deploy would
/// otherwise find them without pulling.
pub fn forget_local_tags(pinned: &BTreeMap<String, String>) {
    for reference in pinned.values() {
        let (name, _) = reference.split_once('@').unwrap();
        docker(["image", "rm", name]);
    }
}

/// Records release `version` as the given images, as `release push` would.
pub fn record_manifest(
    project: &Project,
    version: &str,
    services: BTreeMap<verify::ServiceName, ServiceImage>,
) {
    let manifest = ReleaseManifest {
        project: "e2e".to_owned(),
        version: Version::parse(version).unwrap(),
        created: time::OffsetDateTime::now_utc(),
        git_commit: None,
        jenkins: None,
        services,
    };
    state(project)
        .record_release(&manifest, "e2e-test")
        .unwrap();
}

/// Records release `version` as release `from` but for api, which names tag `version` and
/// a digest the registry never had: a deploy of it cannot pull api.
pub fn record_unpullable_api(project: &Project, from: &str, version: &str) {
    let mut services = state(project)
        .load_release(&Version::parse(from).unwrap())
        .unwrap()
        .manifest
        .services;
    let api = services.get_mut("api").unwrap();
    api.tag = version.to_owned();
    api.digest = Digest::parse(&format!("sha256:{}", "0".repeat(63) + "1")).unwrap();
    record_manifest(project, version, services);
}

/// Every ledger entry after the releases (which the fixtures record first): kind and
/// payload, in ledger order.
pub fn ledger_entries(project: &Project) -> Vec<(EntryKind, serde_json::Value)> {
    state(project)
        .ledger()
        .read_all()
        .unwrap()
        .into_iter()
        .filter(|e| e.kind != EntryKind::Released)
        .map(|e| (e.kind, e.payload))
        .collect()
}

/// The kinds of [`ledger_entries`].
pub fn ledger_kinds(project: &Project) -> Vec<EntryKind> {
    ledger_entries(project)
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// What the state directory says runs in `env`, or `None` if nothing was ever recorded.
pub fn env_pointer(project: &Project, env: &str) -> Option<EnvPointer> {
    state(project).read_env(&env.parse().unwrap()).unwrap()
}

/// The records of a second deploy to `env`, of `version` after `previous`; `pinned` is
/// service → pinned reference of `version`. The pointer names `version` and its digests,
/// the ledger holds the two deploys, the second from `previous`, and the rendered file kept
/// for `version` names every pinned reference.
#[track_caller]
pub fn assert_second_deploy_recorded(
    project: &Project,
    env: &str,
    previous: &str,
    version: &str,
    pinned: &BTreeMap<String, String>,
) {
    let pointer = env_pointer(project, env).unwrap();
    assert_eq!(pointer.version.as_str(), version);
    for (service, image) in pinned {
        assert!(image.ends_with(pointer.digests[service.as_str()].as_str()));
    }
    let entries = ledger_entries(project);
    assert_eq!(
        entries.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        [EntryKind::Deployed, EntryKind::Deployed]
    );
    assert_eq!(entries[1].1["version"], version);
    assert_eq!(entries[1].1["previous_version"], previous);
    let stored = std::fs::read_to_string(
        project
            .state_dir()
            .join(format!("stacks/{env}/{version}.yml")),
    )
    .unwrap();
    for image in pinned.values() {
        assert!(stored.contains(image.as_str()), "{stored}");
    }
}
