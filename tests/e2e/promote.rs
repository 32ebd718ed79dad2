use std::collections::BTreeMap;

use release_e2e::{Project, Testbed, docker, example_dir, junit_suite};
use serde_json::Value;

/// A two-service project with DEV and PROD as two stacks on the one Swarm; PROD has
/// `promote_from = "dev"` and requires approval. `web` answers HTTP checks on a port unique
/// to this run.
struct Pipeline {
    project: Project,
    dev: String,
    prod: String,
    repo: String,
}

fn pipeline(bed: &Testbed) -> Pipeline {
    let dev = bed.unique("pdev");
    let prod = bed.unique("pprod");
    let repo = format!("e2e/{dev}");
    // Ports 31000-32999, distinct per process, DEV and PROD apart.
    let port = 31000 + (std::process::id() % 1000) as u16 * 2;
    let mut project = Project::new();
    project.remove_stack_on_drop(&dev);
    project.remove_stack_on_drop(&prod);
    let check = |env: &str, port: u16, body: &str| {
        format!(
            "[[environments.{env}.checks]]\nkind = \"http\"\nname = \"web answers /health\"\nservice = \"web\"\n\
             url = \"http://127.0.0.1:{port}/health\"\nbody_contains = \"{body}\"\ntimeout = \"2s\"\nretry_interval = \"500ms\"\ndeadline = \"20s\"\n\n\
             [[environments.{env}.checks]]\nkind = \"swarm\"\ndeadline = \"20s\"\n"
        )
    };
    project.write(
        "release.toml",
        &format!(
            "[project]\nname = \"e2e\"\n\n[registry]\nhost = \"registry.invalid\"\n\n\
             [services.api]\nrepository = \"{repo}/api\"\ncontext = \"{ctx}\"\nbuild_args = {{ SERVICE = \"api\" }}\n\n\
             [services.web]\nrepository = \"{repo}/web\"\ncontext = \"{ctx}\"\nbuild_args = {{ SERVICE = \"web\" }}\n\n\
             [environments.dev]\nstack = \"{dev}\"\nstack_file = \"dev.yml\"\ndeploy_timeout = \"60s\"\n\n{}\n\
             [environments.prod]\nstack = \"{prod}\"\nstack_file = \"prod.yml\"\npromote_from = \"dev\"\napproval_required = true\ndeploy_timeout = \"60s\"\n\n{}",
            check("dev", port, "\\\"status\\\":\\\"ok\\\""),
            check("prod", port + 1, "\\\"status\\\":\\\"ok\\\""),
            ctx = example_dir().join("image").display()
        ),
    );
    for (file, published) in [("dev.yml", port), ("prod.yml", port + 1)] {
        project.write(file, &stack_file(&repo, published));
    }
    Pipeline {
        project,
        dev,
        prod,
        repo,
    }
}

fn stack_file(repo: &str, port: u16) -> String {
    let update = "      endpoint_mode: dnsrr\n      update_config:\n        monitor: 2s\n        failure_action: rollback\n      rollback_config:\n        monitor: 1s\n      restart_policy:\n        condition: any\n        delay: 1s\n";
    format!(
        "version: \"3.8\"\nservices:\n  api:\n    image: {repo}/api:0\n    init: true\n    stop_grace_period: 1s\n    deploy:\n{update}\
         \x20 web:\n    image: {repo}/web:0\n    init: true\n    stop_grace_period: 1s\n    ports:\n      - target: 8080\n        published: {port}\n        mode: host\n    deploy:\n{update}"
    )
}

/// Service name → image of each service of a Swarm stack, exactly as its spec names it
/// (`docker service ls` would strip the digest).
fn live_images(stack: &str) -> BTreeMap<String, String> {
    let names = docker([
        "service",
        "ls",
        "-q",
        "--filter",
        &format!("label=com.docker.stack.namespace={stack}"),
    ]);
    names
        .lines()
        .map(|id| {
            let out = docker([
                "service",
                "inspect",
                "--format",
                "{{.Spec.Name}} {{.Spec.TaskTemplate.ContainerSpec.Image}}",
                id,
            ]);
            let (name, image) = out.trim().split_once(' ').unwrap();
            (
                name.trim_start_matches(&format!("{stack}_")).to_owned(),
                image.to_owned(),
            )
        })
        .collect()
}

/// Points a Swarm service at another image by hand, as an operator would.
fn set_image(service: &str, image: &str) {
    docker([
        "service",
        "update",
        "--detach",
        "--no-resolve-image",
        "--image",
        image,
        service,
    ]);
}

fn ledger_kinds(p: &Project) -> Vec<String> {
    std::fs::read_to_string(p.state_dir().join("ledger.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// The gate end to end: every refusal leaves PROD untouched and is recorded, then the
/// promotion runs DEV's exact digests in PROD, and a hand-made change to PROD is drift.
#[test]
fn promotion_gate_refuses_until_every_condition_holds_then_prod_runs_devs_digests() {
    let bed = Testbed::up();
    let p = pipeline(&bed);
    let run = |args: &[&str]| bed.release(&p.project, args);
    let promote_as_alice = || {
        run(&[
            "promote",
            "--version",
            "1.0.0",
            "--to",
            "prod",
            "--approved-by",
            "alice",
        ])
    };
    run(&["-q", "build", "--version", "1.0.0"]).success();
    run(&["-q", "push", "--version", "1.0.0"]).success();
    run(&["-q", "deploy", "--env", "dev", "--version", "1.0.0"]).success();

    // No path reaches PROD around the gate.
    run(&["deploy", "--env", "prod", "--version", "1.0.0"])
        .expect_code(2)
        .stderr_has("release promote --version 1.0.0 --to prod");

    // Not checked yet.
    promote_as_alice()
        .expect_code(1)
        .stdout_has("FAIL  source environment passed its checks after the deploy");
    run(&["-q", "check", "--env", "dev"]).success();

    // Approval missing, and every failure is JUnit.
    let junit = p.project.dir().join("gate.xml");
    run(&[
        "promote",
        "--version",
        "1.0.0",
        "--to",
        "prod",
        "--junit",
        junit.to_str().unwrap(),
    ])
    .expect_code(1)
    .stdout_has("FAIL  approval given")
    .stderr_has("refused");
    let suite = junit_suite(&junit, "promote 1.0.0 to prod", 5, 1);
    let cases = suite["cases"].as_array().unwrap();
    assert!(
        cases.iter().all(|c| c["classname"] == "gate.prod"),
        "{suite:#}"
    );
    let failed: Vec<&Value> = cases.iter().filter(|c| !c["message"].is_null()).collect();
    assert_eq!(failed.len(), 1, "{suite:#}");
    assert_eq!(failed[0]["name"], "approval given", "{suite:#}");
    // The cause itself is the message Jenkins shows, not just the word "gate".
    assert_ne!(failed[0]["message"], "gate", "{suite:#}");
    assert!(
        failed[0]["body"].as_str().is_some_and(|b| !b.is_empty()),
        "{suite:#}"
    );

    // Manifest edited after it was recorded.
    let manifest = p.project.state_dir().join("releases/1.0.0.json");
    let original = std::fs::read(&manifest).unwrap();
    std::fs::write(
        &manifest,
        String::from_utf8(original.clone())
            .unwrap()
            .replace("\"e2e\"", "\"e2f\""),
    )
    .unwrap();
    promote_as_alice()
        .expect_code(1)
        .stdout_has("FAIL  release manifest is recorded and unaltered");
    std::fs::write(&manifest, &original).unwrap();

    // A DEV service updated by hand to another digest (read from the Swarm, not the pointer).
    let other = bed.push_demo_image(&format!("{}/other", p.repo), "1", &[("SERVICE", "other")]);
    let api = format!("{}_api", p.dev);
    let dev_api = live_images(&p.dev)["api"].clone();
    set_image(&api, &other);
    promote_as_alice()
        .expect_code(1)
        .stdout_has("FAIL  source environment runs exactly this release")
        .stdout_has("api: runs sha256:");
    set_image(&api, &dev_api);

    // The registry cannot be trusted (a CA that did not sign it): fail closed, exit 3.
    let dir = p.project.dir();
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=not the testbed CA",
        ])
        .arg("-keyout")
        .arg(dir.join("other.key"))
        .arg("-out")
        .arg(dir.join("other-ca.pem"))
        .output()
        .unwrap();
    assert!(made.status.success());
    let other_ca = dir.join("other-ca.pem");
    bed.release_with(
        dir,
        &[
            ("RELEASE_REGISTRY_CA", other_ca.to_str().unwrap()),
            ("RELEASE_REGISTRY_RETRIES", "2"),
        ],
        [
            "promote",
            "--version",
            "1.0.0",
            "--to",
            "prod",
            "--approved-by",
            "alice",
        ],
    )
    .expect_code(3)
    .stdout_has("FAIL  every tag still resolves to the recorded digest")
    .stderr_has("nothing was deployed");

    // A failing re-check after a pass revokes it.
    let config = std::fs::read_to_string(p.project.config()).unwrap();
    p.project.write(
        "release.toml",
        &config.replacen(
            "body_contains = \"\\\"status\\\":\\\"ok\\\"\"",
            "body_contains = \"no such text\"",
            1,
        ),
    );
    run(&["-q", "check", "--env", "dev"]).expect_code(1);
    promote_as_alice()
        .expect_code(1)
        .stdout_has("did not pass: 2 passed, 1 failed");
    p.project.write("release.toml", &config);
    assert!(
        live_images(&p.prod).is_empty(),
        "a refused promotion touched PROD"
    );
    let refusals = ledger_kinds(&p.project)
        .iter()
        .filter(|k| *k == "gate-refused")
        .count();
    assert_eq!(refusals, 6, "{:?}", ledger_kinds(&p.project));

    // Every condition holds: PROD runs DEV's exact digests.
    run(&["-q", "check", "--env", "dev"]).success();
    promote_as_alice().success().stdout_has("gate passed");
    let (dev, prod) = (live_images(&p.dev), live_images(&p.prod));
    assert_eq!(dev.len(), 2);
    assert_eq!(dev, prod, "PROD does not run DEV's digests");
    assert!(prod.values().all(|i| i.contains("@sha256:")), "{prod:?}");
    run(&["-q", "check", "--env", "prod"]).success();
    let audit = run(&["--json", "audit", "--env", "prod"]).json();
    let promoted = &audit[0];
    assert_eq!(promoted["kind"], "promoted");
    assert_eq!(promoted["approver"], "alice");
    assert!(
        promoted["evidence"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"),
        "{promoted}"
    );
    run(&["audit", "--live", "--env", "prod"])
        .success()
        .stdout_has("no drift");

    // Drift: a PROD service changed by hand.
    let prod_web = format!("{}_web", p.prod);
    set_image(&prod_web, &other);
    run(&["audit", "--live", "--env", "prod"])
        .expect_code(1)
        .stdout_has("DRIFT prod web: runs a different digest");

    // A tag moved after the check: re-pushed with another image.
    let web_tag = format!("{}/{}/web:1.0.0", bed.registry, p.repo);
    docker(["tag", other.split_once('@').unwrap().0, &web_tag]);
    docker(["push", "-q", &web_tag]);
    run(&[
        "promote",
        "--version",
        "1.0.0",
        "--to",
        "prod",
        "--approved-by",
        "alice",
        "--dry-run",
    ])
    .expect_code(1)
    .stdout_has("web: tag moved to sha256:");
}
