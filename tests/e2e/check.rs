use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use release_e2e::{Project, Testbed, docker, example_dir, junitparser, release_binary};
use serde_json::Value;
use verify::{Digest, EnvName, EnvPointer, StateDir, Version};

/// A host port no other test of this run (or a concurrent run) publishes.
fn free_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 30000 + (std::process::id() % 400) as u16 * 25;
    base + NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A stack service running the demo image; `port` is published in host mode.
fn service(image: &str, port: Option<u16>, env: &[(&str, &str)]) -> String {
    let mut s = format!("    image: {image}\n    init: true\n    stop_grace_period: 1s\n");
    if !env.is_empty() {
        s.push_str("    environment:\n");
        for (k, v) in env {
            s.push_str(&format!("      {k}: \"{v}\"\n"));
        }
    }
    if let Some(p) = port {
        s.push_str(&format!(
            "    ports:\n      - target: 8080\n        published: {p}\n        protocol: tcp\n        mode: host\n"
        ));
    }
    s.push_str("    deploy:\n      replicas: 1\n      endpoint_mode: dnsrr\n");
    s
}

fn no_healthcheck(service: String) -> String {
    service.replace(
        "    deploy:\n",
        "    healthcheck:\n      disable: true\n    deploy:\n",
    )
}

fn stack_file(services: &[(&str, String)]) -> String {
    let mut s = "version: \"3.8\"\nservices:\n".to_owned();
    for (name, body) in services {
        s.push_str(&format!("  {name}:\n{body}"));
    }
    s
}

/// `release.toml` for env `e2e` running `stack` from `stack.yml`; `internal` services are
/// declared internal. `checks` is appended verbatim.
fn config(stack: &str, services: &[&str], internal: &[&str], checks: &str) -> String {
    let mut c =
        "[project]\nname = \"e2e\"\n\n[registry]\nhost = \"registry.invalid\"\n\n".to_owned();
    for s in services {
        c.push_str(&format!(
            "[services.{s}]\nrepository = \"e2e/{s}\"\ncontext = \"{}\"\ninternal = {}\n\n",
            example_dir().join("image").display(),
            internal.contains(s)
        ));
    }
    c.push_str(&format!(
        "[environments.e2e]\nstack = \"{stack}\"\nstack_file = \"stack.yml\"\n\n{checks}"
    ));
    c
}

/// Records `digests` as what env `e2e` runs, as `release deploy` would.
fn record_env(project: &Project, digests: &[(&str, &str)]) {
    let state = StateDir::open(project.state_dir()).unwrap();
    state
        .write_env(&EnvPointer {
            env: EnvName::parse("e2e").unwrap(),
            version: Version::parse("1.0.0").unwrap(),
            digests: digests
                .iter()
                .map(|(s, d)| (s.parse().unwrap(), Digest::parse(d).unwrap()))
                .collect(),
            updated: time::OffsetDateTime::now_utc(),
            actor: "e2e".to_owned(),
        })
        .unwrap();
}

/// Waits until each named service of `stack` runs 1/1 and each port accepts connections.
fn wait_running(stack: &str, services: &[&str], ports: &[u16]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ls = docker([
            "service",
            "ls",
            "--filter",
            &format!("label=com.docker.stack.namespace={stack}"),
            "--format",
            "{{.Name}} {{.Replicas}}",
        ]);
        let up = services
            .iter()
            .all(|s| ls.lines().any(|l| l == format!("{stack}_{s} 1/1")));
        let open = ports
            .iter()
            .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok());
        if up && open {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "stack {stack} not up in 60 s:\n{ls}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Asserts that the JUnit file says what `--json` said: counts, classnames, messages.
fn assert_junit_matches(junit: &Value, report: &Value) {
    let cases: Vec<&Value> = junit
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["cases"].as_array().unwrap())
        .collect();
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(cases.len(), checks.len(), "{junit:#}");
    let failures: u64 = junit
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["failures"].as_u64().unwrap())
        .sum();
    assert_eq!(failures, report["failed"].as_u64().unwrap(), "{junit:#}");
    for suite in junit.as_array().unwrap() {
        assert!(suite["timestamp"].as_str().is_some(), "{suite:#}");
    }
    for check in checks {
        let case = cases
            .iter()
            .find(|c| c["name"] == check["name"])
            .unwrap_or_else(|| panic!("no JUnit case {}", check["name"]));
        assert_eq!(
            case["classname"],
            format!("check.e2e.{}", check["service"].as_str().unwrap()).as_str()
        );
        assert_eq!(case["message"], check["message"], "{case:#}");
    }
}

fn check_by_name<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

#[test]
fn a_fresh_stack_passes_once_healthy_and_the_run_is_recorded() {
    let bed = Testbed::up();
    let stack = bed.unique("check-ok");
    let image = bed.push_demo_image("e2e/check-demo", "1.0.0", &[("SERVICE", "web")]);
    let digest = image.split_once('@').unwrap().1.to_owned();
    let port = free_port();
    let mut project = Project::new();
    // /health answers 503 for its first 2 s: the HTTP check must retry through that.
    project.write(
        "stack.yml",
        &stack_file(&[
            (
                "web",
                service(&image, Some(port), &[("DEMO_HEALTHY_AFTER", "2")]),
            ),
            ("cache", service(&image, None, &[])),
        ]),
    );
    let checks = format!(
        r#"[[environments.e2e.checks]]
kind = "http"
name = "web answers /health"
service = "web"
url = "http://127.0.0.1:{port}/health"
headers = {{ Authorization = "env:E2E_CHECK_TOKEN" }}
json_pointer = "/status"
json_equals = "ok"
body_contains = "web"
max_latency = "1s"
timeout = "1s"
retry_interval = "300ms"
deadline = "45s"

[[environments.e2e.checks]]
kind = "tcp"
name = "web accepts connections"
service = "web"
address = "127.0.0.1:{port}"
timeout = "1s"
retry_interval = "300ms"
deadline = "45s"

[[environments.e2e.checks]]
kind = "swarm"
deadline = "45s"
retry_interval = "500ms"
"#
    );
    project.write(
        "release.toml",
        &config(&stack, &["web", "cache"], &["cache"], &checks),
    );
    record_env(&project, &[("web", &digest), ("cache", &digest)]);
    project.docker_stack_deploy(&stack, "stack.yml");

    let junit = project.dir().join("junit/check.xml");
    let out = Command::new(release_binary())
        .current_dir(project.dir())
        .env("RELEASE_CONFIG", project.config())
        .env("RELEASE_STATE_DIR", project.state_dir())
        .env("E2E_CHECK_TOKEN", "Bearer canary-4f1e9")
        .env("RUST_LOG", "verify=debug")
        .args(["--json", "check", "--env", "e2e", "--junit"])
        .arg(&junit)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["passed"], 4, "{report:#}");
    assert_eq!(report["failed"], 0, "{report:#}");
    let http = check_by_name(&report, "web answers /health");
    assert!(
        http["attempts"].as_array().unwrap().len() > 1,
        "the check should have retried until healthy: {http:#}"
    );
    assert_eq!(http["status"], 200);
    // The swarm checks of web and cache start together, retry on the same beat and share
    // a listing of the stack per round (the debug log names each listing): no more
    // listings than the most attempts a swarm check made, where there was one per attempt.
    let swarm: Vec<usize> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "swarm")
        .map(|c| c["attempts"].as_array().unwrap().len())
        .collect();
    assert_eq!(swarm.len(), 2, "{report:#}");
    let listings = stderr.matches("listed the stack").count();
    let rounds = swarm.iter().copied().max().unwrap_or_default();
    assert!(
        (1..=rounds).contains(&listings),
        "{listings} listings for swarm attempts {swarm:?}\n{stderr}"
    );

    let xml = std::fs::read(&junit).unwrap();
    let parsed = junitparser(&junit);
    assert_junit_matches(&parsed, &report);
    assert_eq!(
        parsed.as_array().unwrap().len(),
        3,
        "one suite per kind: {parsed:#}"
    );
    for text in [
        stdout.as_ref(),
        stderr.as_ref(),
        String::from_utf8_lossy(&xml).as_ref(),
    ] {
        assert!(!text.contains("canary-4f1e9"), "secret header value leaked");
    }

    let ledger = StateDir::open(project.state_dir())
        .unwrap()
        .ledger()
        .read_all()
        .unwrap();
    let entry = ledger.last().unwrap();
    assert_eq!(entry.kind, verify::EntryKind::Checked);
    assert_eq!(entry.payload["env"], "e2e");
    assert_eq!(entry.payload["version"], "1.0.0");
    assert_eq!(entry.payload["digests"]["web"], digest.as_str());
    assert_eq!(entry.payload["passed"], 4);
    assert_eq!(entry.payload["failed"], 0);
    assert_eq!(
        entry.payload["junit_sha256"],
        Digest::of(&xml).as_str(),
        "the ledger holds the hash of the JUnit file written"
    );
}

/// Asserts that every failing check of `report` gave up at its 4 s deadline, not before
/// and not much later, after more than one attempt.
#[track_caller]
fn assert_failed_at_the_deadline(report: &Value) {
    for c in report["checks"].as_array().unwrap() {
        if c["passed"] == false {
            let s = c["seconds"].as_f64().unwrap();
            assert!((4.0..6.0).contains(&s), "{} took {s}s", c["name"]);
            assert!(c["attempts"].as_array().unwrap().len() > 1, "{c:#}");
        }
    }
}

/// A check's failure message, asserting that it failed.
#[track_caller]
fn failure_of(report: &Value, name: &str) -> String {
    let c = check_by_name(report, name);
    assert_eq!(c["passed"], false, "{c:#}");
    c["message"].as_str().unwrap().to_owned()
}

#[test]
fn each_broken_http_expectation_fails_as_its_own_case_at_its_deadline_side_by_side() {
    let bed = Testbed::up();
    let stack = bed.unique("check-http");
    let image = bed.push_demo_image("e2e/check-demo", "1.0.0", &[("SERVICE", "web")]);
    let digest = image.split_once('@').unwrap().1.to_owned();
    let (web, sick, slow) = (free_port(), free_port(), free_port());
    let mut project = Project::new();
    project.write(
        "stack.yml",
        &stack_file(&[
            ("web", service(&image, Some(web), &[])),
            // Answers 503; its healthcheck is off so Swarm leaves it running.
            (
                "sick",
                no_healthcheck(service(&image, Some(sick), &[("DEMO_UNHEALTHY", "1")])),
            ),
            (
                "slow",
                service(&image, Some(slow), &[("DEMO_SLOW_MS", "600")]),
            ),
        ]),
    );
    let checks = format!(
        r#"[[environments.e2e.checks]]
kind = "http"
name = "web says hello"
service = "web"
url = "http://127.0.0.1:{web}/health"
body_contains = "no-such-text"
timeout = "1s"
retry_interval = "500ms"
deadline = "4s"

[[environments.e2e.checks]]
kind = "http"
name = "sick answers /health"
service = "sick"
url = "http://127.0.0.1:{sick}/health"
timeout = "1s"
retry_interval = "500ms"
deadline = "4s"

[[environments.e2e.checks]]
kind = "http"
name = "slow answers fast"
service = "slow"
url = "http://127.0.0.1:{slow}/health"
max_latency = "200ms"
timeout = "2s"
retry_interval = "500ms"
deadline = "4s"
"#
    );
    project.write(
        "release.toml",
        &config(&stack, &["web", "sick", "slow"], &[], &checks),
    );
    record_env(&project, &[("web", &digest)]);
    project.docker_stack_deploy(&stack, "stack.yml");
    wait_running(&stack, &["web", "slow"], &[web, sick, slow]);

    let junit = project.dir().join("check.xml");
    let started = Instant::now();
    let run = bed.release(
        &project,
        [
            "--json",
            "check",
            "--env",
            "e2e",
            "--junit",
            junit.to_str().unwrap(),
        ],
    );
    let elapsed = started.elapsed();
    run.expect_code(1);
    let report = run.json();
    assert_eq!(report["failed"], 3, "{report:#}");
    assert_eq!(report["passed"], 0, "{report:#}");
    let has = |name: &str, needle: &str| {
        let m = failure_of(&report, name);
        assert!(m.contains(needle), "{name}: {m:?} does not name {needle:?}");
    };
    has("web says hello", "body does not contain \"no-such-text\"");
    has("sick answers /health", "status 503, expected 200");
    has("slow answers fast", "over the 200ms budget");

    // Never passing, each gives up at its 4 s deadline; they ran side by side, so the
    // whole run takes about as long as one.
    assert_failed_at_the_deadline(&report);
    assert!(
        elapsed >= Duration::from_secs(4) && elapsed < Duration::from_secs(6),
        "the run took {elapsed:?}"
    );

    let parsed = junitparser(&junit);
    assert_junit_matches(&parsed, &report);
    let bodies: BTreeMap<String, String> = parsed
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["cases"].as_array().unwrap())
        .filter(|c| !c["body"].is_null())
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["body"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let sick_body = &bodies["sick answers /health"];
    assert!(sick_body.contains("status: 503"), "{sick_body}");
    assert!(
        sick_body.contains("#2 at +"),
        "every attempt is listed: {sick_body}"
    );
    assert!(sick_body.contains("response excerpt"), "{sick_body}");
}

#[test]
fn a_swarm_check_fails_each_service_unhealthy_on_a_foreign_digest_or_publishing_while_internal() {
    let bed = Testbed::up();
    let stack = bed.unique("check-swarm");
    let image = bed.push_demo_image("e2e/check-demo", "1.0.0", &[("SERVICE", "web")]);
    let digest = image.split_once('@').unwrap().1.to_owned();
    let cache = free_port();
    let services = ["web", "ill", "drift", "cache"];
    let live = |cache_port: Option<u16>| {
        stack_file(&[
            ("web", service(&image, None, &[])),
            ("ill", service(&image, None, &[("DEMO_UNHEALTHY", "1")])),
            ("drift", service(&image, None, &[])),
            ("cache", service(&image, cache_port, &[])),
        ])
    };
    let mut project = Project::new();
    // Swarm runs `cache` with a published port; the config's stack file has none (config
    // validation would refuse it): the check must read the live service.
    project.write("live.yml", &live(Some(cache)));
    project.write("stack.yml", &live(None));
    let checks = r#"[[environments.e2e.checks]]
kind = "swarm"
services = ["drift", "cache", "web", "ill"]
retry_interval = "500ms"
deadline = "4s"
"#;
    project.write(
        "release.toml",
        &config(&stack, &services, &["cache"], checks),
    );
    let foreign = Digest::of(b"some other build").as_str().to_owned();
    record_env(
        &project,
        &[
            ("web", &digest),
            ("ill", &digest),
            ("drift", &foreign),
            ("cache", &digest),
        ],
    );
    project.docker_stack_deploy(&stack, "live.yml");
    wait_running(&stack, &["web", "drift", "cache"], &[cache]);

    let run = bed.release(&project, ["--json", "check", "--env", "e2e"]);
    run.expect_code(1);
    let report = run.json();
    assert_eq!(report["failed"], 3, "{report:#}");
    assert_eq!(report["passed"], 1, "{report:#}");
    let of = |service: &str, what: &str| {
        failure_of(
            &report,
            &format!(
                "{service}: desired replicas running, tasks healthy, on the recorded digest{what}"
            ),
        )
    };
    // Swarm restarts an unhealthy task, so the last attempt sees it unhealthy, in its
    // start period, or being replaced: each names the cause.
    let ill = of("ill", "");
    assert!(
        ill.contains("unhealthy")
            || ill.contains("health: starting")
            || ill.contains("replicas running"),
        "{ill}"
    );
    let drift = of("drift", "");
    assert!(drift.contains("runs foreign digest"), "{drift}");
    assert!(drift.contains(&foreign[..19]), "{drift}");
    let cache_msg = of("cache", ", no published port");
    assert!(
        cache_msg.contains(&format!("internal service publishes port {cache}/tcp")),
        "{cache_msg}"
    );
    let web = check_by_name(
        &report,
        "web: desired replicas running, tasks healthy, on the recorded digest",
    );
    assert_eq!(web["passed"], true, "{web:#}");
    assert_failed_at_the_deadline(&report);
}

#[test]
fn an_environment_that_cannot_be_reached_exits_3_at_the_deadline() {
    let bed = Testbed::up();
    let project = Project::new();
    let image = format!("{}/e2e/none:1.0.0", bed.registry);
    project.write(
        "stack.yml",
        &stack_file(&[("web", service(&image, None, &[]))]),
    );
    let port = free_port();
    let checks = format!(
        r#"[[environments.e2e.checks]]
kind = "http"
name = "web answers /health"
service = "web"
url = "http://127.0.0.1:{port}/health"
timeout = "500ms"
retry_interval = "200ms"
deadline = "2s"

[[environments.e2e.checks]]
kind = "swarm"
timeout = "1s"
deadline = "2s"
"#
    );
    let mut config = config("e2e-nowhere", &["web"], &[], &checks);
    // An engine nobody listens on.
    config = config.replace(
        "stack = \"e2e-nowhere\"",
        "stack = \"e2e-nowhere\"\ndocker_host = \"tcp://127.0.0.1:1\"",
    );
    project.write("release.toml", &config);
    let started = Instant::now();
    let run = bed.release(&project, ["check", "--env", "e2e"]);
    let elapsed = started.elapsed();
    run.expect_code(3)
        .stdout_has("UNREACHABLE")
        .stderr_has("environment `e2e` could not be reached");
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(4),
        "took {elapsed:?}"
    );
}

#[test]
fn a_certificate_problem_is_a_verdict_and_an_environment_without_answer_is_out_of_reach() {
    let bed = Testbed::up();
    let project = Project::new();
    let image = format!("{}/e2e/none:1.0.0", bed.registry);
    project.write(
        "stack.yml",
        &stack_file(&[("web", service(&image, None, &[]))]),
    );

    // The testbed registry answers over TLS with a certificate from the testbed CA. The
    // check that names the CA passes; the one that does not was reached and failed, even
    // though the other check of the run trusts the CA (a check's `ca` is its own).
    let tls = format!(
        r#"[[environments.e2e.checks]]
kind = "http"
name = "registry with its CA"
service = "web"
url = "https://{registry}/v2/"
expect_status = 401
ca = "{ca}"
timeout = "2s"

[[environments.e2e.checks]]
kind = "http"
name = "registry without its CA"
service = "web"
url = "https://{registry}/v2/"
expect_status = 401
timeout = "2s"
"#,
        registry = bed.registry,
        ca = bed.ca.display(),
    );
    project.write("release.toml", &config("e2e-tls", &["web"], &[], &tls));
    let run = bed.release(&project, ["--json", "check", "--env", "e2e"]);
    run.expect_code(1);
    let report = run.json();
    assert_eq!(report["unreachable"], false, "{report:#}");
    assert_eq!(report["passed"], 1, "{report:#}");
    assert_eq!(
        check_by_name(&report, "registry with its CA")["status"],
        401,
        "{report:#}"
    );
    let message = check_by_name(&report, "registry without its CA")["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.starts_with(&format!("TLS handshake with {} failed:", bed.registry))
            && message.contains("UnknownIssuer"),
        "{message}"
    );

    // Each of these environments has nothing there to judge: `release check` exits 3,
    // says why on stdout and that the environment could not be reached on stderr.
    let out_of_reach = |checks: &str, why: &str| {
        project.write(
            "release.toml",
            &config("e2e-never-deployed", &["web"], &[], checks),
        );
        bed.release(&project, ["check", "--env", "e2e"])
            .expect_code(3)
            .stdout_has(why)
            .stderr_has("environment `e2e` could not be reached");
    };
    let http = |url: &str| {
        format!(
            r#"[[environments.e2e.checks]]
kind = "http"
name = "web answers /health"
service = "web"
url = "{url}"
timeout = "500ms"
"#
        )
    };

    // A stack the engine has never run, and a port nobody listens on.
    let port = free_port();
    let swarm = "[[environments.e2e.checks]]\nkind = \"swarm\"\ntimeout = \"2s\"\n\n";
    out_of_reach(
        &format!(
            "{swarm}{}",
            http(&format!("http://127.0.0.1:{port}/health"))
        ),
        "stack e2e-never-deployed is not deployed",
    );

    // Behind a firewall that drops packets, connection attempts get no answer at all:
    // also out of reach, not a slow server.
    let (silent, _listener, _queued) = silent_address();
    out_of_reach(
        &http(&format!("http://{silent}/health")),
        &format!("cannot connect to {silent}: no answer within"),
    );
}

/// A loopback address whose accept queue is full: the kernel drops further connection
/// attempts without an answer, as a firewall that drops packets does. The listener and
/// the queued streams keep it so.
fn silent_address() -> (String, socket2::Socket, Vec<std::net::TcpStream>) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("address");
    socket.bind(&any.into()).expect("bind");
    socket.listen(0).expect("listen");
    let addr = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("address");
    let mut queued = Vec::new();
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Ok(stream) => queued.push(stream),
            Err(_) => return (addr.to_string(), socket, queued),
        }
    }
    panic!("the accept queue of {addr} never filled");
}
