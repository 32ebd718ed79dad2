use std::collections::BTreeMap;
use std::time::Duration;

use release_e2e::records::{
    SERVICES, assert_second_deploy_recorded, env_pointer, ledger_entries, ledger_kinds,
    record_release, record_unpullable_api,
};
use release_e2e::{Project, Testbed, docker, example_dir, junit_suite};
use verify::EntryKind;

/// A two-service project (env `e2e`) whose stack updates fast: 2 s monitor, health checked.
struct Fixture {
    project: Project,
    stack: String,
    repo: String,
}

fn fixture(bed: &Testbed, prefix: &str) -> Fixture {
    let stack = bed.unique(prefix);
    let repo = format!("e2e/{stack}");
    let mut project = Project::new();
    project.remove_stack_on_drop(&stack);
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
max_replicas = 2

[services.worker]
repository = "{repo}/worker"
context = "{context}"
max_replicas = 1

[environments.e2e]
stack = "{stack}"
stack_file = "stack.yml"
deploy_timeout = "50s"
"#,
            context = example_dir().join("image").display()
        ),
    );
    project.write("stack.yml", &stack_file(&repo, ""));
    Fixture {
        project,
        stack,
        repo,
    }
}

/// The stack file; images name tags only (rendering pins them). `extra` is appended to
/// the services mapping.
fn stack_file(repo: &str, extra: &str) -> String {
    let mut text = String::from(
        "version: \"3.8\"\nx-deploy: &deploy\n  endpoint_mode: dnsrr\n  update_config:\n    \
         order: stop-first\n    failure_action: rollback\n    monitor: 2s\n  rollback_config:\n    \
         order: stop-first\n    monitor: 1s\n  restart_policy:\n    condition: any\n    delay: 1s\n\
         services:\n",
    );
    for service in SERVICES {
        text.push_str(&format!(
            "  {service}:\n    image: ${{RELEASE_REGISTRY}}/{repo}/{service}:${{VERSION}}\n    \
             init: true\n    stop_grace_period: 2s\n    deploy:\n      replicas: 1\n      <<: *deploy\n"
        ));
    }
    text.push_str(extra);
    text
}

/// Pushes one demo image per service and records release `version`; `api_args` are extra
/// build args for api (e.g. to make it unhealthy). Returns service → pinned reference.
fn record(
    bed: &Testbed,
    f: &Fixture,
    version: &str,
    api_args: &[(&str, &str)],
) -> BTreeMap<String, String> {
    record_release(bed, &f.project, &f.repo, version, api_args)
}

/// Service (stack-file name) → images of its running tasks.
fn running_images(stack: &str) -> BTreeMap<String, Vec<String>> {
    let out = docker([
        "stack",
        "ps",
        stack,
        "--no-trunc",
        "--filter",
        "desired-state=running",
        "--format",
        "{{.Name}}|{{.Image}}|{{.CurrentState}}",
    ]);
    let mut images: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in out.lines() {
        let mut parts = line.split('|');
        let (name, image, current) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        if !current.starts_with("Running") {
            continue;
        }
        let service = name
            .strip_prefix(&format!("{stack}_"))
            .unwrap()
            .split('.')
            .next()
            .unwrap();
        images
            .entry(service.to_owned())
            .or_default()
            .push(image.to_owned());
    }
    images
}

#[track_caller]
fn assert_runs(stack: &str, release: &BTreeMap<String, String>) {
    let live = running_images(stack);
    for (service, image) in release {
        assert_eq!(
            live.get(service),
            Some(&vec![image.clone()]),
            "service {service}: live {live:#?}"
        );
    }
}

fn deploy(bed: &Testbed, f: &Fixture, version: &str) -> release_e2e::Run {
    bed.release(&f.project, ["deploy", "--env", "e2e", "--version", version])
}

#[test]
fn deploy_a_then_b_runs_b_digests_and_records_b() {
    let bed = Testbed::up();
    let f = fixture(&bed, "deploy-ab");
    let a = record(&bed, &f, "1.0.0", &[]);
    let b = record(&bed, &f, "1.1.0", &[]);

    deploy(&bed, &f, "1.0.0").success();
    assert_runs(&f.stack, &a);
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
    assert_runs(&f.stack, &b);

    assert_eq!(report["outcome"], "deployed");
    assert_eq!(report["previous_version"], "1.0.0");
    for service in report["services"].as_array().unwrap() {
        assert_eq!(service["result"], "converged", "{report:#}");
    }
    assert_second_deploy_recorded(&f.project, "e2e", "1.0.0", "1.1.0", &b);

    let suite = junit_suite(&junit, "deploy 1.1.0 to e2e", 2, 0);
    for case in suite["cases"].as_array().unwrap() {
        assert_eq!(case["classname"], "deploy.e2e", "{case:#}");
        assert!(case["message"].is_null(), "{case:#}");
    }
}

#[test]
fn an_unhealthy_version_is_rolled_back_to_the_previous_digests() {
    let bed = Testbed::up();
    let f = fixture(&bed, "deploy-unhealthy");
    let b = record(&bed, &f, "1.1.0", &[]);
    let c = record(&bed, &f, "1.2.0", &[("DEMO_UNHEALTHY", "1")]);
    deploy(&bed, &f, "1.1.0").success();

    let run = deploy(&bed, &f, "1.2.0");
    run.expect_code(4)
        .stderr_has("service api")
        .stderr_has("rolled back");
    assert!(!c.is_empty());
    assert_runs(&f.stack, &b);

    let pointer = env_pointer(&f.project, "e2e").unwrap();
    assert_eq!(pointer.version.as_str(), "1.1.0");
    let kinds = ledger_kinds(&f.project);
    assert_eq!(
        kinds,
        [
            EntryKind::Deployed,
            EntryKind::DeployFailed,
            EntryKind::RolledBack
        ]
    );
}

#[test]
fn a_failed_first_deploy_leaves_no_service_behind() {
    let bed = Testbed::up();
    let f = fixture(&bed, "deploy-first");
    record(&bed, &f, "1.0.0", &[("DEMO_UNHEALTHY", "1")]);

    deploy(&bed, &f, "1.0.0")
        .expect_code(4)
        .stderr_has("service api")
        .stderr_has("the state before the deploy");
    let services = docker(["stack", "services", &f.stack, "--format", "{{.Name}}"]);
    assert_eq!(services.trim(), "", "services left behind");
    assert!(env_pointer(&f.project, "e2e").is_none());
    let kinds = ledger_kinds(&f.project);
    assert_eq!(kinds, [EntryKind::DeployFailed, EntryKind::RolledBack]);
}

#[test]
fn a_crash_looping_version_is_rolled_back_to_the_previous_digests() {
    let bed = Testbed::up();
    let f = fixture(&bed, "deploy-crash");
    let b = record(&bed, &f, "1.1.0", &[]);
    record(&bed, &f, "1.2.0", &[("DEMO_CRASH_AFTER", "1")]);
    deploy(&bed, &f, "1.1.0").success();

    deploy(&bed, &f, "1.2.0")
        .expect_code(4)
        .stderr_has("service api")
        .stderr_has("exit code 3")
        .stderr_has("rolled back");
    assert_runs(&f.stack, &b);
    let kinds = ledger_kinds(&f.project);
    assert_eq!(
        kinds,
        [
            EntryKind::Deployed,
            EntryKind::DeployFailed,
            EntryKind::RolledBack
        ]
    );
}

#[test]
fn a_version_whose_image_cannot_be_pulled_is_rolled_back() {
    let bed = Testbed::up();
    let f = fixture(&bed, "deploy-pull");
    let b = record(&bed, &f, "1.1.0", &[]);
    deploy(&bed, &f, "1.1.0").success();
    // Same worker; api names a digest the registry never had.
    record_unpullable_api(&f.project, "1.1.0", "1.2.0");

    let run = deploy(&bed, &f, "1.2.0");
    run.expect_code(4)
        .stderr_has("service api")
        .stderr_has("rolled back api to 1.1.0");
    assert_runs(&f.stack, &b);
    let entries = ledger_entries(&f.project);
    let (kind, payload) = &entries[1];
    assert_eq!(*kind, EntryKind::DeployFailed);
    assert_eq!(
        payload["failures"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["api"],
        "only api changed and failed: {payload:#}"
    );
    assert_eq!(entries[2].0, EntryKind::RolledBack);
}

#[test]
fn policy_violations_are_refused_and_nothing_changes() {
    let bed = Testbed::up();
    let f = fixture(&bed, "deploy-policy");
    let a = record(&bed, &f, "1.0.0", &[]);
    record(&bed, &f, "1.1.0", &[]);
    deploy(&bed, &f, "1.0.0").success();

    let (api_tag_only, _) = a["api"].split_once('@').unwrap();
    f.project.write(
        "stack.yml",
        &stack_file(
            &f.repo,
            &format!(
                "  sidecar:\n    image: {api_tag_only}\n    deploy:\n      endpoint_mode: dnsrr\n  \
                 probe:\n    image: {api_tag_only}\n    deploy:\n      endpoint_mode: dnsrr\n"
            ),
        ),
    );
    deploy(&bed, &f, "1.1.0")
        .expect_code(2)
        .stderr_has("2 problems")
        .stderr_has("service `sidecar`: image")
        .stderr_has("service `probe`: image")
        .stderr_has("not pinned by digest")
        .stderr_has("nothing was deployed");
    // With --json, stdout carries the refusal as one document listing every problem.
    let refusal = bed
        .release(
            &f.project,
            ["--json", "deploy", "--env", "e2e", "--version", "1.1.0"],
        )
        .expect_code(2)
        .json();
    assert_eq!(refusal["error"]["exit_code"], 2);
    let details = refusal["error"]["details"].as_array().unwrap();
    assert_eq!(details.len(), 2, "{refusal}");
    assert!(
        details
            .iter()
            .any(|d| d.as_str().unwrap().starts_with("service `sidecar`: image")),
        "{refusal}"
    );

    assert_runs(&f.stack, &a);

    // Replicas that only a YAML merge key sets are seen too, already when the config is
    // read (the stack's policy applies merge keys as `docker stack deploy` does).
    let text = stack_file(&f.repo, "").replacen(
        "version: \"3.8\"\n",
        "version: \"3.8\"\nx-two: &two\n  replicas: 2\n",
        1,
    );
    let (head, worker) = text.split_once("  worker:\n").unwrap();
    let worker = worker.replace(
        "      replicas: 1\n      <<: *deploy\n",
        "      <<: [*two, *deploy]\n",
    );
    f.project
        .write("stack.yml", &format!("{head}  worker:\n{worker}"));
    deploy(&bed, &f, "1.1.0")
        .expect_code(2)
        .stderr_has("service `worker` runs 2 replicas in environment `e2e`; its limit is 1");

    assert_runs(&f.stack, &a);
    let services = docker(["stack", "services", &f.stack, "--format", "{{.Name}}"]);
    assert!(!services.contains("sidecar"), "{services}");
    let kinds = ledger_kinds(&f.project);
    assert_eq!(kinds, [EntryKind::Deployed]);
}

#[test]
fn rollback_returns_to_the_previous_version() {
    let bed = Testbed::up();
    let f = fixture(&bed, "deploy-rollback");
    let a = record(&bed, &f, "1.0.0", &[]);
    record(&bed, &f, "1.1.0", &[]);
    deploy(&bed, &f, "1.0.0").success();
    deploy(&bed, &f, "1.1.0").success();

    bed.release(&f.project, ["rollback", "--env", "e2e"])
        .success()
        .stdout_has("rolled back to 1.0.0");
    assert_runs(&f.stack, &a);
    let pointer = env_pointer(&f.project, "e2e").unwrap();
    assert_eq!(pointer.version.as_str(), "1.0.0");
    let kinds = ledger_entries(&f.project);
    let (kind, payload) = kinds.last().unwrap();
    assert_eq!(*kind, EntryKind::RolledBack);
    assert_eq!(payload["from_version"], "1.1.0");
    assert_eq!(payload["to_version"], "1.0.0");

    bed.release(&f.project, ["rollback", "--env", "e2e"])
        .expect_code(2)
        .stderr_has("no earlier version");
}

#[test]
fn rollback_to_version_returns_to_an_older_release() {
    let bed = Testbed::up();
    let f = fixture(&bed, "deploy-rollback-to");
    let a = record(&bed, &f, "1.0.0", &[]);
    record(&bed, &f, "1.1.0", &[]);
    record(&bed, &f, "1.2.0", &[]);
    for version in ["1.0.0", "1.1.0", "1.2.0"] {
        deploy(&bed, &f, version).success();
    }

    bed.release(
        &f.project,
        ["rollback", "--env", "e2e", "--to-version", "1.0.0"],
    )
    .success()
    .stdout_has("rolled back to 1.0.0");
    assert_runs(&f.stack, &a);
    let kinds = ledger_entries(&f.project);
    let (kind, payload) = kinds.last().unwrap();
    assert_eq!(*kind, EntryKind::RolledBack);
    assert_eq!(payload["from_version"], "1.2.0");
    assert_eq!(payload["to_version"], "1.0.0");
}

#[test]
fn concurrent_deploys_to_one_env_never_interleave() {
    let bed = Testbed::up();
    let f = fixture(&bed, "deploy-lock");
    record(&bed, &f, "1.0.0", &[]);
    let b = record(&bed, &f, "1.1.0", &[]);

    std::thread::scope(|s| {
        let first = s.spawn(|| deploy(&bed, &f, "1.0.0"));
        std::thread::sleep(Duration::from_millis(700));
        let waiter = s.spawn(|| deploy(&bed, &f, "1.1.0"));
        let impatient = s.spawn(|| {
            bed.release(
                &f.project,
                [
                    "deploy",
                    "--env",
                    "e2e",
                    "--version",
                    "1.1.0",
                    "--lock-timeout",
                    "1s",
                ],
            )
        });
        impatient
            .join()
            .unwrap()
            .expect_code(3)
            .stderr_has("another deploy to e2e is running")
            .stderr_has("release deploy --env e2e --version 1.0.0");
        first.join().unwrap().success();
        waiter.join().unwrap().success();
    });

    assert_runs(&f.stack, &b);
    let deployed: Vec<serde_json::Value> = ledger_entries(&f.project)
        .into_iter()
        .filter(|(k, _)| *k == EntryKind::Deployed)
        .map(|(_, p)| p)
        .collect();
    assert_eq!(deployed.len(), 2);
    assert_eq!(deployed[0]["version"], "1.0.0");
    // The second deploy started from what the first one recorded: they ran one after the other.
    assert_eq!(deployed[1]["previous_version"], "1.0.0");
}
