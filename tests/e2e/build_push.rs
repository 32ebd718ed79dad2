use std::process::Command;

use release_e2e::{Project, Testbed, example_dir};

/// A two-service project (api, worker) built from the example's demo image context.
fn project(bed: &Testbed, api_build_args: &str) -> (Project, String) {
    let repo = format!("e2e/{}", bed.unique("bp"));
    let project = Project::new();
    project.write(
        "stack.yml",
        "services:\n  api:\n    image: x/api:1\n  worker:\n    image: x/worker:1\n",
    );
    project.write(
        "release.toml",
        &format!(
            r#"[project]
name = "e2e"
version_pattern = '^[0-9]+\.[0-9]+\.[0-9]+$'

[registry]
host = "registry.invalid"

[services.api]
repository = "{repo}/api"
context = "{context}"
build_args = {{ {api_build_args} }}

[services.worker]
repository = "{repo}/worker"
context = "{context}"
build_args = {{ SERVICE = "worker" }}

[environments.e2e]
stack = "e2e"
stack_file = "stack.yml"
"#,
            context = example_dir().join("image").display()
        ),
    );
    (project, repo)
}

fn skopeo_digest(bed: &Testbed, reference: &str) -> String {
    let out = Command::new("skopeo")
        .args(["inspect", "--format", "{{.Digest}}", "--creds"])
        .arg(format!("{}:{}", bed.username, bed.password))
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn pushed_digests_are_what_the_registry_serves_and_are_recorded() {
    let bed = Testbed::up();
    let (project, repo) = project(&bed, "SERVICE = \"api\"");
    bed.release(
        &project,
        ["build", "--version", "1.0.0", "--git-commit", "abc123"],
    )
    .success()
    .stderr_has("api: building");
    let push = bed.release(&project, ["--json", "push", "--version", "1.0.0"]);
    push.success();
    let report = push.json();
    assert_eq!(report["outcome"], "recorded");

    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(project.state_dir().join("releases/1.0.0.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["git_commit"], "abc123");
    for service in ["api", "worker"] {
        let recorded = manifest["services"][service]["digest"].as_str().unwrap();
        let oracle = skopeo_digest(&bed, &format!("{}/{repo}/{service}:1.0.0", bed.registry));
        assert_eq!(
            recorded, oracle,
            "{service}: recorded digest differs from skopeo's"
        );
        assert_eq!(report["services"][service], oracle);
    }
    let ledger = std::fs::read_to_string(project.state_dir().join("ledger.jsonl")).unwrap();
    assert_eq!(ledger.lines().count(), 1);
    assert!(ledger.contains("\"kind\":\"released\""), "{ledger}");

    // The same digests again: a no-op success.
    bed.release(&project, ["push", "--version", "1.0.0"])
        .success()
        .stdout_has("already recorded");
    let again = std::fs::read_to_string(project.state_dir().join("ledger.jsonl")).unwrap();
    assert_eq!(again, ledger, "an identical re-push wrote to the ledger");
}

/// An agent that only ran `docker login` (no RELEASE_REGISTRY_* variables) pushes with the
/// Docker CLI's own credentials, as `docker push` would.
#[test]
fn push_takes_the_credentials_of_docker_login() {
    let bed = Testbed::up();
    let (project, repo) = project(&bed, "SERVICE = \"api\"");
    let docker_config = project.dir().join("docker-config");
    let mut login = Command::new("docker")
        .arg("--config")
        .arg(&docker_config)
        .args([
            "login",
            &bed.registry,
            "-u",
            &bed.username,
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(login.stdin.as_mut().unwrap(), bed.password.as_bytes()).unwrap();
    drop(login.stdin.take());
    assert!(login.wait().unwrap().success(), "docker login failed");
    let config = docker_config.to_str().unwrap();
    let only_docker_login = [
        ("RELEASE_REGISTRY_USERNAME", None),
        ("RELEASE_REGISTRY_PASSWORD", None),
        ("DOCKER_CONFIG", Some(config)),
    ];
    bed.release(&project, ["-q", "build", "--version", "1.0.0"])
        .success();
    let push = bed.release_env(
        &project,
        &only_docker_login,
        ["--json", "push", "--version", "1.0.0"],
    );
    push.success();
    assert!(!push.stdout().contains(&bed.password) && !push.stderr().contains(&bed.password));
    for service in ["api", "worker"] {
        let oracle = skopeo_digest(&bed, &format!("{}/{repo}/{service}:1.0.0", bed.registry));
        assert_eq!(push.json()["services"][service], oracle, "{service}");
    }
    // Without the login, a push is refused by the registry.
    bed.release(&project, ["-q", "build", "--version", "1.0.1"])
        .success();
    let empty = project.dir().join("no-login");
    std::fs::create_dir_all(&empty).unwrap();
    bed.release_env(
        &project,
        &[
            ("RELEASE_REGISTRY_USERNAME", None),
            ("RELEASE_REGISTRY_PASSWORD", None),
            ("DOCKER_CONFIG", Some(empty.to_str().unwrap())),
        ],
        ["push", "--version", "1.0.1"],
    )
    .expect_code(2)
    .stderr_has(&bed.registry);
}

#[test]
fn repushing_a_version_with_a_changed_image_is_refused_and_nothing_is_overwritten() {
    let bed = Testbed::up();
    let (project, _) = project(&bed, "SERVICE = \"api\"");
    bed.release(&project, ["build", "--version", "1.0.0"])
        .success();
    bed.release(&project, ["push", "--version", "1.0.0"])
        .success();
    let manifest = project.state_dir().join("releases/1.0.0.json");
    let before = std::fs::read(&manifest).unwrap();

    // Rebuild api differently under the same version.
    let changed = std::fs::read_to_string(project.config())
        .unwrap()
        .replace("SERVICE = \"api\"", "SERVICE = \"api-v2\"");
    project.write("release.toml", &changed);
    bed.release(
        &project,
        ["build", "--version", "1.0.0", "--service", "api"],
    )
    .success();
    bed.release(&project, ["push", "--version", "1.0.0"])
        .expect_code(1)
        .stderr_has("api")
        .stderr_has("immutable");
    assert_eq!(
        std::fs::read(&manifest).unwrap(),
        before,
        "the manifest was overwritten"
    );
}

#[test]
fn bad_versions_are_refused_and_nothing_is_written() {
    let bed = Testbed::up();
    let (project, _) = project(&bed, "SERVICE = \"api\"");
    for version in ["latest", "../../etc/passwd", "1.0/2", "", "1.0"] {
        bed.release(&project, ["push", "--version", version])
            .expect_code(2)
            .stderr_has("version");
        bed.release(&project, ["build", "--version", version])
            .expect_code(2);
    }
    let releases = project.state_dir().join("releases");
    let written = std::fs::read_dir(&releases).map(|d| d.count()).unwrap_or(0);
    assert_eq!(
        written,
        0,
        "something was written to {}",
        releases.display()
    );
}

#[test]
fn unknown_services_are_named() {
    let bed = Testbed::up();
    let (project, _) = project(&bed, "SERVICE = \"api\"");
    bed.release(&project, ["build", "--version", "1.0.0", "--service", "db"])
        .expect_code(2)
        .stderr_has("unknown service `db`")
        .stderr_has("api, worker");
}

#[test]
fn a_failing_dockerfile_step_is_shown() {
    let bed = Testbed::up();
    let (project, _) = project(&bed, "SERVICE = \"api\"");
    project.write(
        "broken/Dockerfile",
        "FROM scratch\nCOPY demo-service /demo-service\nCOPY does-not-exist /x\n",
    );
    std::fs::copy(
        example_dir().join("image/demo-service"),
        project.dir().join("broken/demo-service"),
    )
    .unwrap();
    let config = std::fs::read_to_string(project.config()).unwrap();
    let broken = config.replacen(
        &example_dir().join("image").display().to_string(),
        "broken",
        1,
    );
    project.write("release.toml", &broken);
    bed.release(
        &project,
        ["build", "--version", "1.0.0", "--service", "api"],
    )
    .expect_code(1)
    .stderr_has("failed at [2/2] COPY does-not-exist /x")
    .stderr_has("Dockerfile:3)")
    .stderr_has("\"/does-not-exist\": not found");
}

#[test]
fn eight_concurrent_pushes_of_different_versions_keep_eight_intact_manifests() {
    let bed = Testbed::up();
    let (project, _) = project(&bed, "SERVICE = \"api\"");
    let versions: Vec<String> = (1..=8).map(|i| format!("2.0.{i}")).collect();
    for v in &versions {
        bed.release(&project, ["-q", "build", "--version", v])
            .success();
    }
    let pushes: Vec<_> = versions
        .iter()
        .map(|v| {
            let bed = bed.clone();
            let dir = project.dir().to_owned();
            let v = v.clone();
            std::thread::spawn(move || bed.release_in(&dir, ["-q", "push", "--version", &v]).code())
        })
        .collect();
    for push in pushes {
        assert_eq!(push.join().unwrap(), 0);
    }
    for v in &versions {
        let path = project.state_dir().join(format!("releases/{v}.json"));
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(manifest["version"], v.as_str());
        assert_eq!(manifest["services"].as_object().unwrap().len(), 2);
    }
    bed.release(&project, ["audit", "verify"])
        .success()
        .stdout_has("ledger: 8 entries")
        .stdout_has("manifests: 8 checked");
}
