use std::time::{Duration, Instant};

use release_e2e::{Project, Testbed, example_dir};

/// A two-service project whose stack runs `api` pinned by digest and `worker` by tag only.
fn project_with_one_unpinned_service(bed: &Testbed) -> (Project, String) {
    let stack = bed.unique("status");
    let repo = format!("e2e/{stack}");
    let api = bed.push_demo_image(&format!("{repo}/api"), "1.0.0", &[("SERVICE", "api")]);
    let worker = bed.push_demo_image(&format!("{repo}/worker"), "1.0.0", &[("SERVICE", "worker")]);
    let (worker_tag_only, _) = worker.split_once('@').unwrap();
    let mut project = Project::new();
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
max_replicas = 1

[environments.e2e]
stack = "{stack}"
stack_file = "stack.yml"
"#,
            context = example_dir().join("image").display()
        ),
    );
    project.write(
        "stack.yml",
        &format!(
            "version: \"3.8\"\nservices:\n  api:\n    image: {api}\n    init: true\n    deploy:\n      endpoint_mode: dnsrr\n  worker:\n    image: {worker_tag_only}\n    init: true\n    deploy:\n      endpoint_mode: dnsrr\n"
        ),
    );
    project.docker_stack_deploy(&stack, "stack.yml");
    (project, api)
}

/// Polls `release --json status` until every service runs its desired tasks.
fn wait_converged(bed: &Testbed, project: &Project) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let report = bed
            .release(project, ["--json", "status", "--env", "e2e"])
            .json();
        let services = report["services"].as_array().unwrap();
        let converged = services.len() == 2
            && services
                .iter()
                .all(|s| s["desired"].as_u64() > Some(0) && s["running"] == s["desired"]);
        if converged {
            return report;
        }
        assert!(
            Instant::now() < deadline,
            "stack did not converge in 90 s: {report:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn status_flags_the_service_running_an_unpinned_tag() {
    let bed = Testbed::up();
    let (project, api_image) = project_with_one_unpinned_service(&bed);
    let report = wait_converged(&bed, &project);

    let services = report["services"].as_array().unwrap();
    let api = services.iter().find(|s| s["service"] == "api").unwrap();
    let worker = services.iter().find(|s| s["service"] == "worker").unwrap();
    assert_eq!(api["image"], api_image.as_str());
    assert_eq!(api["pinned"], true);
    assert_eq!(api["flags"].as_array().unwrap().len(), 0, "{api:#}");
    assert_eq!(worker["pinned"], false);
    assert!(
        worker["flags"][0].as_str().unwrap().contains("NOT PINNED"),
        "{worker:#}"
    );
    assert_eq!(report["flagged"], true);

    let human = bed.release(&project, ["status", "--env", "e2e"]);
    human.expect_code(1).stdout_has("1 of 2 services flagged");
    let worker_line = human
        .stdout()
        .lines()
        .find(|l| l.starts_with("worker"))
        .unwrap()
        .to_owned();
    assert!(worker_line.contains("NOT PINNED"), "{worker_line}");
    let api_line = human
        .stdout()
        .lines()
        .find(|l| l.starts_with("api"))
        .unwrap()
        .to_owned();
    assert!(
        api_line.contains(" yes ") && !api_line.contains("NOT PINNED"),
        "{api_line}"
    );
}

#[test]
fn status_of_an_unknown_environment_is_a_usage_error() {
    let bed = Testbed::up();
    let project = Project::new();
    project.write(
        "release.toml",
        "[project]\nname = \"e2e\"\n[registry]\nhost = \"registry.invalid\"\n",
    );
    bed.release(&project, ["status", "--env", "qa"])
        .expect_code(2)
        .stderr_has("unknown environment `qa`");
}

#[test]
fn status_against_an_unreachable_engine_is_an_infrastructure_failure() {
    let bed = Testbed::up();
    let project = Project::new();
    project.write("stack.yml", "services:\n  api:\n    image: x/api:1\n");
    project.write(
        "release.toml",
        "[project]\nname = \"e2e\"\n[registry]\nhost = \"registry.invalid\"\n\
         [environments.e2e]\nstack = \"e2e\"\nstack_file = \"stack.yml\"\n\
         docker_host = \"unix:///nonexistent/docker.sock\"\n",
    );
    bed.release(&project, ["status", "--env", "e2e"])
        .expect_code(3)
        .stderr_has("unix:///nonexistent/docker.sock")
        .stderr_has("hint:");
}
