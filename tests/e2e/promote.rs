//! The promotion gate, one scenario a test: each builds its own pipeline as far as its
//! scenario needs (deployed to DEV, checked there, promoted) and breaks one condition.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU16, Ordering};

use release_e2e::records::ledger_kinds;
use release_e2e::{Project, Run, Testbed, docker, example_dir, junit_suite};
use serde_json::Value;
use verify::EntryKind;

/// A two-service project with DEV and PROD as two stacks on the one Swarm; PROD has
/// `promote_from = "dev"` and requires approval. `web` answers HTTP checks on ports of this
/// pipeline's own ([`ports`]), so that the scenarios run in parallel.
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
    let port = ports();
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

/// The first of two adjacent ports for DEV's and PROD's `web`, published in host mode on
/// the one Swarm node, so no two pipelines may share one: from 31000-32999, the next pair
/// of this process's sequence, which starts where the process id says so that two test
/// processes (two checkouts) start apart, past any pair something already listens on.
fn ports() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 1000) as u16 * 2;
    let free = |port: u16| std::net::TcpListener::bind(("0.0.0.0", port)).is_ok();
    loop {
        let n = NEXT.fetch_add(2, Ordering::Relaxed);
        assert!(n < 2000, "no free pair of ports left in 31000-32999");
        let port = 31000 + (start + n) % 2000;
        if free(port) && free(port + 1) {
            return port;
        }
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

impl Pipeline {
    fn run(&self, bed: &Testbed, args: &[&str]) -> Run {
        bed.release(&self.project, args)
    }

    fn promote_as_alice(&self, bed: &Testbed) -> Run {
        self.run(bed, &PROMOTE_AS_ALICE)
    }

    /// Another image in the pipeline's repository, for a service changed by hand or a tag
    /// moved: pinned, as [`Testbed::push_demo_image`] returns it.
    fn other_image(&self, bed: &Testbed) -> String {
        bed.push_demo_image(
            &format!("{}/other", self.repo),
            "1",
            &[("SERVICE", "other")],
        )
    }
}

const PROMOTE_AS_ALICE: [&str; 7] = [
    "promote",
    "--version",
    "1.0.0",
    "--to",
    "prod",
    "--approved-by",
    "alice",
];

/// The pipeline with release 1.0.0 built, pushed and deployed to DEV, not yet checked there.
fn deployed_to_dev(bed: &Testbed) -> Pipeline {
    let p = pipeline(bed);
    p.run(bed, &["-q", "build", "--version", "1.0.0"]).success();
    p.run(bed, &["-q", "push", "--version", "1.0.0"]).success();
    p.run(bed, &["-q", "deploy", "--env", "dev", "--version", "1.0.0"])
        .success();
    p
}

/// The pipeline with release 1.0.0 deployed to DEV and DEV's checks passed: every
/// condition of the gate but approval holds.
fn checked_in_dev(bed: &Testbed) -> Pipeline {
    let p = deployed_to_dev(bed);
    p.run(bed, &["-q", "check", "--env", "dev"]).success();
    p
}

/// The pipeline with release 1.0.0 promoted to PROD through a gate that passed.
fn promoted(bed: &Testbed) -> Pipeline {
    let p = checked_in_dev(bed);
    p.promote_as_alice(bed).success().stdout_has("gate passed");
    p
}

/// What every refusal of the gate leaves: PROD untouched, and the refusal recorded, once.
#[track_caller]
fn assert_refused_and_recorded(p: &Pipeline) {
    assert!(
        live_images(&p.prod).is_empty(),
        "a refused promotion touched PROD: {:?}",
        live_images(&p.prod)
    );
    let kinds = ledger_kinds(&p.project);
    let refusals = kinds
        .iter()
        .filter(|k| **k == EntryKind::GateRefused)
        .count();
    assert_eq!(refusals, 1, "{kinds:?}");
}

/// No path reaches PROD around the gate: a plain deploy to it is refused with the
/// promotion to run instead, before anything is deployed or any gate is judged.
#[test]
fn a_deploy_to_prod_is_refused_and_names_the_promotion_to_run() {
    let bed = Testbed::up();
    let p = deployed_to_dev(&bed);
    p.run(&bed, &["deploy", "--env", "prod", "--version", "1.0.0"])
        .expect_code(2)
        .stderr_has("release promote --version 1.0.0 --to prod");
    assert!(live_images(&p.prod).is_empty(), "the deploy touched PROD");
    let kinds = ledger_kinds(&p.project);
    assert!(!kinds.contains(&EntryKind::GateRefused), "{kinds:?}");
}

#[test]
fn the_gate_refuses_a_release_not_yet_checked_in_dev() {
    let bed = Testbed::up();
    let p = deployed_to_dev(&bed);
    p.promote_as_alice(&bed)
        .expect_code(1)
        .stdout_has("FAIL  source environment passed its checks after the deploy");
    assert_refused_and_recorded(&p);
}

/// Without approval the gate refuses, and its JUnit report says which condition failed
/// and why, as Jenkins shows it.
#[test]
fn the_gate_refuses_without_approval_and_its_junit_names_the_cause() {
    let bed = Testbed::up();
    let p = checked_in_dev(&bed);
    let junit = p.project.dir().join("gate.xml");
    p.run(
        &bed,
        &[
            "promote",
            "--version",
            "1.0.0",
            "--to",
            "prod",
            "--junit",
            junit.to_str().unwrap(),
        ],
    )
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
    assert_refused_and_recorded(&p);
}

#[test]
fn the_gate_refuses_a_release_manifest_edited_after_it_was_recorded() {
    let bed = Testbed::up();
    let p = checked_in_dev(&bed);
    let manifest = p.project.state_dir().join("releases/1.0.0.json");
    let original = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, original.replace("\"e2e\"", "\"e2f\"")).unwrap();
    p.promote_as_alice(&bed)
        .expect_code(1)
        .stdout_has("FAIL  release manifest is recorded and unaltered");
    assert_refused_and_recorded(&p);
}

/// What DEV runs is read from the Swarm, not from the pointer the deploy recorded.
#[test]
fn the_gate_refuses_when_a_dev_service_was_changed_by_hand() {
    let bed = Testbed::up();
    let p = checked_in_dev(&bed);
    set_image(&format!("{}_api", p.dev), &p.other_image(&bed));
    p.promote_as_alice(&bed)
        .expect_code(1)
        .stdout_has("FAIL  source environment runs exactly this release")
        .stdout_has("api: runs sha256:");
    assert_refused_and_recorded(&p);
}

/// A registry whose certificate a CA other than the configured one signed cannot be
/// trusted to say what the tags resolve to: the gate fails closed, exit 3.
#[test]
fn the_gate_fails_closed_with_exit_3_when_the_registry_cannot_be_trusted() {
    let bed = Testbed::up();
    let p = checked_in_dev(&bed);
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
        PROMOTE_AS_ALICE,
    )
    .expect_code(3)
    .stdout_has("FAIL  every tag still resolves to the recorded digest")
    .stderr_has("nothing was deployed");
    assert_refused_and_recorded(&p);
}

#[test]
fn a_failed_check_of_dev_after_a_pass_revokes_the_pass() {
    let bed = Testbed::up();
    let p = checked_in_dev(&bed);
    let config = std::fs::read_to_string(p.project.config()).unwrap();
    p.project.write(
        "release.toml",
        &config.replacen(
            "body_contains = \"\\\"status\\\":\\\"ok\\\"\"",
            "body_contains = \"no such text\"",
            1,
        ),
    );
    p.run(&bed, &["-q", "check", "--env", "dev"]).expect_code(1);
    p.promote_as_alice(&bed)
        .expect_code(1)
        .stdout_has("did not pass: 2 passed, 1 failed");
    assert_refused_and_recorded(&p);
}

/// With every condition held PROD runs DEV's exact digests, and the audit records who
/// approved it and the evidence it was judged on.
#[test]
fn a_gate_that_passes_makes_prod_run_devs_exact_digests_and_records_the_approval() {
    let bed = Testbed::up();
    let p = promoted(&bed);
    let (dev, prod) = (live_images(&p.dev), live_images(&p.prod));
    assert_eq!(dev.len(), 2);
    assert_eq!(dev, prod, "PROD does not run DEV's digests");
    assert!(prod.values().all(|i| i.contains("@sha256:")), "{prod:?}");
    p.run(&bed, &["-q", "check", "--env", "prod"]).success();
    let audit = p.run(&bed, &["--json", "audit", "--env", "prod"]).json();
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
    p.run(&bed, &["audit", "--live", "--env", "prod"])
        .success()
        .stdout_has("no drift");
}

/// Promoted under `--json` (a regression: the verdict and the deploy report used to be
/// two documents): stdout is one document, the verdict with the deploy's report in it.
/// Then a PROD service changed by hand is drift.
#[test]
fn a_promotion_under_json_prints_one_document_and_a_prod_service_changed_by_hand_is_drift() {
    let bed = Testbed::up();
    let p = checked_in_dev(&bed);
    let promote = p.run(&bed, &[&["--json"][..], &PROMOTE_AS_ALICE].concat());
    let document = promote.success().json();
    assert_eq!(document["passed"], true, "{document}");
    assert_eq!(document["dry_run"], false, "{document}");
    assert_eq!(document["deploy"]["outcome"], "deployed", "{document}");
    assert_eq!(document["deploy"]["env"], "prod", "{document}");
    assert_eq!(document["deploy"]["version"], "1.0.0", "{document}");
    set_image(&format!("{}_web", p.prod), &p.other_image(&bed));
    p.run(&bed, &["audit", "--live", "--env", "prod"])
        .expect_code(1)
        .stdout_has("DRIFT prod web: runs a different digest");
}

/// A tag re-pushed with another image after DEV was checked: the gate refuses the
/// version, naming the digest the tag resolves to now.
#[test]
fn the_gate_refuses_a_tag_moved_after_the_check() {
    let bed = Testbed::up();
    let p = checked_in_dev(&bed);
    let other = p.other_image(&bed);
    let web_tag = format!("{}/{}/web:1.0.0", bed.registry, p.repo);
    docker(["tag", other.split_once('@').unwrap().0, &web_tag]);
    docker(["push", "-q", &web_tag]);
    let mut dry_run = PROMOTE_AS_ALICE.to_vec();
    dry_run.push("--dry-run");
    p.run(&bed, &dry_run)
        .expect_code(1)
        .stdout_has("web: tag moved to sha256:");
}
