//! `release deploy` on a Compose environment (`orchestrator = "compose"`), with the real
//! `docker compose` v2 on the agent's engine: the rendered file is pinned and recorded, the
//! containers run the recorded digests, an unhealthy release is rolled back while the
//! previous version serves again, a first failed deploy leaves nothing, `latest` is refused.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use release_e2e::records::{
    SERVICES, assert_second_deploy_recorded, env_pointer, forget_local_tags, ledger_entries,
    ledger_kinds, record_release, record_unpullable_api,
};
use release_e2e::{Project, Testbed, docker, example_dir, free_port, junit_suite, version_at};
use verify::EntryKind;

/// Takes the Compose project down when the test ends, however it ends.
struct Down(String);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args([
                "compose",
                "-p",
                &self.0,
                "down",
                "--remove-orphans",
                "-t",
                "1",
            ])
            .output();
    }
}

/// A two-service Compose project (env `e2e`): api publishes a loopback port, the worker is
/// internal and publishes none.
struct Fixture {
    project: Project,
    name: String,
    repo: String,
    port: u16,
    _down: Down,
}

fn fixture(bed: &Testbed, prefix: &str) -> Fixture {
    let name = bed.unique(prefix);
    let repo = format!("e2e/{name}");
    let project = Project::new();
    project.write(
        "release.toml",
        &format!(
            r#"[project]
name = "e2e"

[registry]
host = "registry.invalid"

[services.api]
repository = "{repo}/api"
context = "{context}"

[services.worker]
repository = "{repo}/worker"
context = "{context}"
internal = true

[environments.e2e]
orchestrator = "compose"
stack = "unused-{name}"
project = "{name}"
stack_file = "compose.yml"
deploy_timeout = "40s"
"#,
            context = example_dir().join("image").display()
        ),
    );
    let port = free_port();
    project.write("compose.yml", &compose_file(&repo, port, ""));
    Fixture {
        project,
        _down: Down(name.clone()),
        name,
        repo,
        port,
    }
}

/// The compose file; images name tags only (rendering pins them).
fn compose_file(repo: &str, port: u16, extra: &str) -> String {
    let mut text = String::from("services:\n");
    for service in SERVICES {
        text.push_str(&format!(
            "  {service}:\n    image: ${{RELEASE_REGISTRY}}/{repo}/{service}:${{VERSION}}\n    \
             init: true\n    stop_grace_period: 1s\n"
        ));
        if service == "api" {
            text.push_str(&format!("    ports:\n      - \"127.0.0.1:{port}:8080\"\n"));
        }
    }
    text.push_str(extra);
    text
}

/// Pushes one demo image per service and records release `version`; `api_args` are extra
/// build args for api. Returns service → pinned reference.
fn record(
    bed: &Testbed,
    f: &Fixture,
    version: &str,
    api_args: &[(&str, &str)],
) -> BTreeMap<String, String> {
    let pinned = record_release(bed, &f.project, &f.repo, version, api_args);
    // The deploy pulls: the tags pushed from this engine are removed from it.
    forget_local_tags(&pinned);
    pinned
}

fn deploy(bed: &Testbed, f: &Fixture, version: &str) -> release_e2e::Run {
    bed.release(&f.project, ["deploy", "--env", "e2e", "--version", version])
}

/// The project's containers as the plain Docker CLI sees them: service → (state, health,
/// the digests of the image the container runs).
fn containers(project: &str) -> BTreeMap<String, Vec<(String, String, Vec<String>)>> {
    let ids = docker([
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        &format!("label=com.docker.compose.project={project}"),
    ]);
    let mut out: BTreeMap<String, Vec<(String, String, Vec<String>)>> = BTreeMap::new();
    for id in ids.split_whitespace() {
        let line = docker([
            "inspect",
            "--format",
            "{{index .Config.Labels \"com.docker.compose.service\"}}|{{.State.Status}}|{{if .State.Health}}{{.State.Health.Status}}{{end}}|{{.Image}}",
            id,
        ]);
        let parts: Vec<&str> = line.trim().split('|').collect();
        let digests = docker([
            "image",
            "inspect",
            "--format",
            "{{range .RepoDigests}}{{println .}}{{end}}",
            parts[3],
        ]);
        out.entry(parts[0].to_owned()).or_default().push((
            parts[1].to_owned(),
            parts[2].to_owned(),
            digests.lines().map(str::to_owned).collect(),
        ));
    }
    out
}

/// Every service runs exactly one container, running and healthy, on the pinned digest.
#[track_caller]
fn assert_runs(project: &str, release: &BTreeMap<String, String>) {
    let live = containers(project);
    assert_eq!(
        live.keys().collect::<Vec<_>>(),
        release.keys().collect::<Vec<_>>(),
        "{live:#?}"
    );
    for (service, pinned) in release {
        let (name, digest) = pinned.split_once('@').unwrap();
        let repo = name.rsplit_once(':').unwrap().0;
        let want = format!("{repo}@{digest}");
        let running = &live[service];
        assert_eq!(running.len(), 1, "service {service}: {live:#?}");
        let (status, health, digests) = &running[0];
        assert_eq!(status, "running", "service {service}: {live:#?}");
        assert_eq!(health, "healthy", "service {service}: {live:#?}");
        assert!(
            digests.contains(&want),
            "service {service}: want {want}, {live:#?}"
        );
    }
}

#[test]
fn a_compose_deploy_pins_records_and_runs_the_recorded_digests() {
    let bed = Testbed::up();
    let f = fixture(&bed, "compose-e2e-ab");
    let a = record(&bed, &f, "1.0.0", &[]);
    let b = record(&bed, &f, "1.1.0", &[]);

    deploy(&bed, &f, "1.0.0").success();
    assert_runs(&f.name, &a);
    assert!(version_at(f.port).unwrap().contains("1.0.0"));

    let junit = f.project.dir().join("deploy.xml");
    let run = bed.release(
        &f.project,
        [
            "--json",
            "deploy",
            "--env",
            "e2e",
            "--version",
            "1.1.0",
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    let report = run.json();
    run.success();
    assert_runs(&f.name, &b);
    assert!(version_at(f.port).unwrap().contains("1.1.0"));
    assert_eq!(report["outcome"], "deployed", "{report:#}");
    assert_eq!(report["stack"], f.name.as_str(), "{report:#}");
    assert_eq!(report["previous_version"], "1.0.0", "{report:#}");
    for service in report["services"].as_array().unwrap() {
        assert_eq!(service["result"], "converged", "{report:#}");
    }

    assert_eq!(
        report["rendered_stack"].as_str().unwrap(),
        f.project
            .state_dir()
            .join("stacks/e2e/1.1.0.yml")
            .to_str()
            .unwrap()
    );
    assert_second_deploy_recorded(&f.project, "e2e", "1.0.0", "1.1.0", &b);
    // `status` reads the project's containers: both on 1.1.0's digests.
    bed.release(&f.project, ["status", "--env", "e2e"])
        .success()
        .stdout_has("all 2 containers pinned, running and on the recorded digests")
        .stdout_has(b["api"].as_str());
    let suite = junit_suite(&junit, "deploy 1.1.0 to e2e", 2, 0);
    for case in suite["cases"].as_array().unwrap() {
        assert_eq!(case["classname"], "deploy.e2e", "{case:#}");
    }

    // `release rollback` takes the same path back to the version live before.
    bed.release(&f.project, ["rollback", "--env", "e2e"])
        .success()
        .stdout_has("e2e rolled back to 1.0.0");
    assert_runs(&f.name, &a);
    assert!(version_at(f.port).unwrap().contains("1.0.0"));
    let kinds = ledger_entries(&f.project);
    assert_eq!(kinds.last().unwrap().0, EntryKind::RolledBack, "{kinds:#?}");
    assert_eq!(
        env_pointer(&f.project, "e2e").unwrap().version.as_str(),
        "1.0.0"
    );
}

#[test]
fn an_unhealthy_compose_release_is_rolled_back_and_the_previous_one_serves() {
    let bed = Testbed::up();
    let f = fixture(&bed, "compose-e2e-unhealthy");
    let b = record(&bed, &f, "1.1.0", &[]);
    record(&bed, &f, "1.2.0", &[("DEMO_UNHEALTHY", "1")]);
    deploy(&bed, &f, "1.1.0").success();
    assert_runs(&f.name, &b);

    // A request loop on the published port for the whole attempt.
    let port = f.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let looping = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                seen.push((Instant::now(), version_at(port)));
                std::thread::sleep(Duration::from_millis(50));
            }
            seen
        })
    };
    let run = deploy(&bed, &f, "1.2.0");
    let ended = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let seen = looping.join().unwrap();
    run.expect_code(4)
        .stderr_has("service api")
        .stderr_has("unhealthy")
        .stderr_has("rolled back api, worker to 1.1.0");
    assert!(
        !run.stderr().contains("service worker:"),
        "{}",
        run.stderr()
    );

    assert_runs(&f.name, &b);
    let answered = version_at(f.port).expect("api answers after the rollback");
    assert!(answered.contains("1.1.0"), "{answered}");
    // Every request after the deploy returned was served by the previous version.
    let after: Vec<&Option<String>> = seen
        .iter()
        .filter(|(at, _)| *at > ended)
        .map(|(_, v)| v)
        .collect();
    assert!(!after.is_empty());
    assert!(
        after
            .iter()
            .all(|v| v.as_deref().is_some_and(|v| v.contains("1.1.0"))),
        "{after:?}"
    );
    eprintln!("{}", run.stderr());
    let failed = seen.iter().filter(|(_, v)| v.is_none()).count();
    eprintln!(
        "request loop during the failed deploy: {} requests, {failed} unanswered (Compose recreates a container stop-first)",
        seen.len()
    );

    let pointer = env_pointer(&f.project, "e2e").unwrap();
    assert_eq!(pointer.version.as_str(), "1.1.0");
    let entries = ledger_entries(&f.project);
    assert_eq!(
        entries.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        [
            EntryKind::Deployed,
            EntryKind::DeployFailed,
            EntryKind::RolledBack
        ]
    );
    let failures = entries[1].1["failures"].as_object().unwrap();
    assert_eq!(failures.keys().collect::<Vec<_>>(), ["api"], "{failures:?}");
    assert_eq!(entries[2].1["to_version"], "1.1.0", "{:#}", entries[2].1);
    assert_eq!(entries[2].1["from_version"], "1.2.0", "{:#}", entries[2].1);
}

#[test]
fn a_failed_first_compose_deploy_leaves_nothing_behind() {
    let bed = Testbed::up();
    let f = fixture(&bed, "compose-e2e-first");
    record(&bed, &f, "1.0.0", &[("DEMO_UNHEALTHY", "1")]);

    deploy(&bed, &f, "1.0.0")
        .expect_code(4)
        .stderr_has("service api")
        .stderr_has("the state before the deploy");
    assert!(containers(&f.name).is_empty(), "{:#?}", containers(&f.name));
    let networks = docker([
        "network",
        "ls",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={}", f.name),
    ]);
    assert_eq!(networks.trim(), "", "networks left behind");
    assert!(env_pointer(&f.project, "e2e").is_none());
    let kinds = ledger_kinds(&f.project);
    assert_eq!(kinds, [EntryKind::DeployFailed, EntryKind::RolledBack]);
}

#[test]
fn latest_in_a_compose_file_is_refused_and_nothing_starts() {
    let bed = Testbed::up();
    let f = fixture(&bed, "compose-e2e-latest");
    record(&bed, &f, "1.0.0", &[]);
    f.project.write(
        "compose.yml",
        &compose_file(
            &f.repo,
            f.port,
            &format!(
                "  side:\n    image: {}/{}/api:latest\n",
                bed.registry, f.repo
            ),
        ),
    );
    deploy(&bed, &f, "1.0.0")
        .expect_code(2)
        .stderr_has("`side`")
        .stderr_has("latest");
    assert!(containers(&f.name).is_empty(), "{:#?}", containers(&f.name));
    assert!(ledger_entries(&f.project).is_empty());
}

#[test]
fn a_compose_release_that_cannot_be_pulled_or_crashes_is_rolled_back() {
    let bed = Testbed::up();
    let f = fixture(&bed, "compose-e2e-pull");
    let b = record(&bed, &f, "1.1.0", &[]);
    record(&bed, &f, "1.3.0", &[("DEMO_CRASH_AFTER", "1")]);
    deploy(&bed, &f, "1.1.0").success();

    // api names a digest the registry never had.
    record_unpullable_api(&f.project, "1.1.0", "1.2.0");
    let run = deploy(&bed, &f, "1.2.0");
    eprintln!("{}", run.stderr());
    run.expect_code(4)
        .stderr_has("service api")
        .stderr_has("not the recorded sha256:0000")
        .stderr_has("`docker compose up`")
        .stderr_has("rolled back api to 1.1.0");
    assert_runs(&f.name, &b);

    let run = deploy(&bed, &f, "1.3.0");
    eprintln!("{}", run.stderr());
    run.expect_code(4)
        .stderr_has("service api")
        .stderr_has("exit code 3")
        .stderr_has("to 1.1.0");
    assert_runs(&f.name, &b);
    let kinds = ledger_kinds(&f.project);
    assert_eq!(
        kinds,
        [
            EntryKind::Deployed,
            EntryKind::DeployFailed,
            EntryKind::RolledBack,
            EntryKind::DeployFailed,
            EntryKind::RolledBack
        ]
    );
}

/// Watchtower's failure mode: a container recreated from a tag behind the tool's back.
/// `status` and `audit --live` read the project's containers and flag it (exit 1); before
/// that, both report the project clean (exit 0).
#[test]
fn a_compose_container_changed_behind_the_tools_back_is_flagged_by_status_and_audit() {
    let bed = Testbed::up();
    let f = fixture(&bed, "compose-e2e-drift");
    let a = record(&bed, &f, "1.0.0", &[]);
    let b = record(&bed, &f, "1.1.0", &[]);
    deploy(&bed, &f, "1.0.0").success();

    let status = bed.release(&f.project, ["--json", "status", "--env", "e2e"]);
    let report = status.success().json();
    assert_eq!(report["flagged"], false, "{report:#}");
    assert_eq!(report["project"], f.name.as_str());
    assert_eq!(
        report["containers"].as_array().unwrap().len(),
        2,
        "{report:#}"
    );
    bed.release(&f.project, ["status", "--env", "e2e"])
        .success()
        .stdout_has("all 2 containers pinned, running and on the recorded digests");
    bed.release(&f.project, ["audit", "--live", "--env", "e2e"])
        .success()
        .stdout_has("no drift: 2 services");

    // Recreate api from its 1.1.0 tag, as an updater following tags would.
    let (tagged, _) = b["api"].split_once('@').unwrap();
    let (_, digest_b) = b["api"].split_once('@').unwrap();
    let (_, digest_a) = a["api"].split_once('@').unwrap();
    let behind = f.project.write(
        "behind.yml",
        &format!(
            "services:\n  api:\n    image: {tagged}\n    init: true\n    ports:\n      - \"127.0.0.1:{}:8080\"\n",
            f.port
        ),
    );
    let out = Command::new("docker")
        .args(["compose", "-p", &f.name, "-f"])
        .arg(&behind)
        .args(["up", "-d", "--no-deps", "api"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let status = bed.release(&f.project, ["--json", "status", "--env", "e2e"]);
    status.expect_code(1);
    let report = status.json();
    let api: Vec<&serde_json::Value> = report["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["service"] == "api")
        .collect();
    assert_eq!(api.len(), 1, "{report:#}");
    let flags = api[0]["flags"].to_string();
    assert!(
        flags.contains(&format!("runs {digest_b}, the records say {digest_a}")),
        "{report:#}"
    );
    bed.release(&f.project, ["audit", "--live", "--env", "e2e"])
        .expect_code(1)
        .stdout_has("DRIFT e2e api: runs a different digest")
        .stdout_has(digest_b);
}

/// The gate between two Compose environments refuses and passes as between two Swarm
/// ones: no check of DEV yet, a failed check, no approval, a moved tag each refuse with
/// exit 1; with all of them held PROD runs exactly DEV's digests.
#[test]
fn promotion_from_a_compose_dev_to_a_compose_prod_is_gated_as_for_swarm() {
    let bed = Testbed::up();
    let f = fixture(&bed, "compose-e2e-gate");
    let prod_name = format!("{}-prod", f.name);
    let _down_prod = Down(prod_name.clone());
    let prod_port = free_port();
    let config = std::fs::read_to_string(f.project.config()).unwrap();
    f.project.write(
        "release.toml",
        &format!(
            "{config}\n[[environments.e2e.checks]]\nkind = \"http\"\nname = \"api answers /health\"\nservice = \"api\"\n\
             url = \"http://127.0.0.1:{}/health\"\ntimeout = \"1s\"\nretry_interval = \"300ms\"\ndeadline = \"3s\"\n\n\
             [environments.prod]\norchestrator = \"compose\"\nstack = \"unused-{prod_name}\"\nproject = \"{prod_name}\"\n\
             stack_file = \"prod.yml\"\ndeploy_timeout = \"40s\"\npromote_from = \"e2e\"\napproval_required = true\n",
            f.port
        ),
    );
    f.project
        .write("prod.yml", &compose_file(&f.repo, prod_port, ""));
    let a = record(&bed, &f, "1.0.0", &[]);
    deploy(&bed, &f, "1.0.0").success();
    let promote = |approved: bool| {
        let mut args = vec!["promote", "--version", "1.0.0", "--to", "prod"];
        if approved {
            args.extend(["--approved-by", "alice"]);
        }
        bed.release(&f.project, args)
    };

    promote(true)
        .expect_code(1)
        .stdout_has("PASS  source environment runs exactly this release")
        .stdout_has(
            "FAIL  source environment passed its checks after the deploy: no check of `e2e`",
        );

    // A failed check revokes nothing it did not give, and gives nothing.
    let api = format!("{}-api-1", f.name);
    docker(["stop", "-t", "1", api.as_str()]);
    bed.release(&f.project, ["check", "--env", "e2e"])
        .expect_code(3);
    promote(true)
        .expect_code(1)
        .stdout_has("FAIL  source environment passed its checks after the deploy")
        .stdout_has("did not pass");
    docker(["start", api.as_str()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while version_at(f.port).is_none() {
        assert!(Instant::now() < deadline, "api did not answer again");
        std::thread::sleep(Duration::from_millis(300));
    }
    bed.release(&f.project, ["check", "--env", "e2e"]).success();

    promote(false)
        .expect_code(1)
        .stdout_has("FAIL  approval given: environment `prod` requires approval");
    promote(true).success().stdout_has("gate passed");
    assert_runs(&prod_name, &a);

    // The tag moves in the registry: the same version is refused from now on.
    bed.push_demo_image(
        &format!("{}/api", f.repo),
        "1.0.0",
        &[("SERVICE", "api"), ("VERSION", "1.0.0-moved")],
    );
    bed.release(
        &f.project,
        [
            "promote",
            "--version",
            "1.0.0",
            "--to",
            "prod",
            "--approved-by",
            "alice",
            "--dry-run",
        ],
    )
    .expect_code(1)
    .stdout_has("FAIL  every tag still resolves to the recorded digest: api: tag moved");
}

#[test]
fn several_compose_files_are_merged_by_compose_then_pinned_and_recorded_as_one() {
    let bed = Testbed::up();
    let f = fixture(&bed, "compose-e2e-files");
    let toml = std::fs::read_to_string(f.project.dir().join("release.toml")).unwrap();
    f.project.write(
        "release.toml",
        &toml.replace(
            "stack_file = \"compose.yml\"",
            "stack_file = [\"compose.yml\", \"compose.prod.yml\"]",
        ),
    );
    // The override adds a label and an environment variable to api, as a PROD file would.
    f.project.write(
        "compose.prod.yml",
        "services:\n  api:\n    labels:\n      shop.tier: prod\n    environment:\n      DEMO_SLOW_MS: \"1\"\n",
    );
    let a = record(&bed, &f, "1.0.0", &[]);
    deploy(&bed, &f, "1.0.0").success();
    assert_runs(&f.name, &a);
    let stored =
        std::fs::read_to_string(f.project.state_dir().join("stacks/e2e/1.0.0.yml")).unwrap();
    assert!(stored.contains("shop.tier: prod"), "{stored}");
    assert!(stored.contains(a["api"].as_str()), "{stored}");
    let id = docker([
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.compose.project={}", f.name),
        "--filter",
        "label=com.docker.compose.service=api",
    ]);
    let labels = docker([
        "inspect",
        "--format",
        "{{index .Config.Labels \"shop.tier\"}} {{range .Config.Env}}{{.}} {{end}}",
        id.trim(),
    ]);
    assert!(labels.starts_with("prod "), "{labels}");
    assert!(labels.contains("DEMO_SLOW_MS=1"), "{labels}");

    // A file Compose refuses is a config error naming it, and nothing is deployed.
    f.project
        .write("compose.prod.yml", "services:\n  api:\n    ports: 12\n");
    bed.release(&f.project, ["deploy", "--env", "e2e", "--version", "1.0.0"])
        .expect_code(2)
        .stderr_has("`docker compose config`")
        .stderr_has("compose.prod.yml");
}
