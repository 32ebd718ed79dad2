//! The real topology: DEV and PROD on separate servers, PROD a Swarm of three nodes, each
//! reached from the agent over mutual TLS or SSH, never through a local socket.

use std::sync::{Mutex, MutexGuard};

use release_e2e::topology::{Cut, Topology, Transport};
use release_e2e::{Project, Testbed, example_dir};

/// The servers are shared: one scenario at a time changes them.
pub(crate) fn servers() -> MutexGuard<'static, ()> {
    static SERVERS: Mutex<()> = Mutex::new(());
    SERVERS.lock().unwrap_or_else(|e| e.into_inner())
}

pub(crate) struct Pipeline {
    pub(crate) project: Project,
    pub(crate) dev: String,
    pub(crate) prod: String,
}

/// A two-service project: `api` (3 replicas on PROD, spread over the nodes) and `web`
/// (answers HTTP on a host-mode port: one task on DEV, one per node on PROD). Each
/// environment names its server's engine over `transport`.
pub(crate) fn pipeline(bed: &Testbed, t: &Topology, transport: Transport) -> Pipeline {
    let dev = bed.unique("tdev");
    let prod = bed.unique("tprod");
    let repo = format!("e2e/{dev}");
    let port = match transport {
        Transport::Tls => 18181,
        Transport::Ssh => 18182,
    };
    let mut project = Project::new();
    project.remove_stack_on_drop_at(&t.dev.sock, &dev);
    project.remove_stack_on_drop_at(&t.prod.sock, &prod);
    let checks = |env: &str, url: &str| {
        format!(
            "[[environments.{env}.checks]]\nkind = \"http\"\nname = \"web answers /health\"\nservice = \"web\"\n\
             url = \"{url}\"\nbody_contains = \"ok\"\ntimeout = \"2s\"\nretry_interval = \"500ms\"\ndeadline = \"30s\"\n\n\
             [[environments.{env}.checks]]\nkind = \"swarm\"\ndeadline = \"30s\"\n\n"
        )
    };
    project.write(
        "release.toml",
        &format!(
            "[project]\nname = \"e2e\"\n\n[registry]\nhost = \"registry.invalid\"\n\n\
             [services.api]\nrepository = \"{repo}/api\"\ncontext = \"{ctx}\"\nbuild_args = {{ SERVICE = \"api\" }}\n\n\
             [services.web]\nrepository = \"{repo}/web\"\ncontext = \"{ctx}\"\nbuild_args = {{ SERVICE = \"web\" }}\n\n\
             [environments.dev]\nstack = \"{dev}\"\nstack_file = \"dev.yml\"\ndeploy_timeout = \"90s\"\n{dev_engine}\n{dev_checks}\
             [environments.prod]\nstack = \"{prod}\"\nstack_file = \"prod.yml\"\npromote_from = \"dev\"\napproval_required = true\ndeploy_timeout = \"90s\"\n{prod_engine}\n{prod_checks}",
            ctx = example_dir().join("image").display(),
            dev_engine = t.engine_keys(&t.dev, transport),
            prod_engine = t.engine_keys(&t.prod, transport),
            dev_checks = checks("dev", &format!("http://{}:{port}/health", t.dev.addr)),
            // `web` runs on every PROD node: one check per node.
            prod_checks = checks("prod", &format!("http://{{node}}:{port}/health")),
        ),
    );
    project.write("dev.yml", &stack_file(&repo, port, "replicas: 1", 1));
    project.write("prod.yml", &stack_file(&repo, port, "mode: global", 3));
    Pipeline { project, dev, prod }
}

fn stack_file(repo: &str, port: u16, web_mode: &str, api_replicas: u32) -> String {
    let update = "      endpoint_mode: dnsrr\n      update_config:\n        monitor: 2s\n        failure_action: rollback\n      rollback_config:\n        monitor: 1s\n      restart_policy:\n        condition: any\n        delay: 1s\n";
    format!(
        "version: \"3.8\"\nservices:\n  api:\n    image: {repo}/api:0\n    init: true\n    stop_grace_period: 1s\n    deploy:\n      replicas: {api_replicas}\n      placement:\n        max_replicas_per_node: 1\n{update}\
         \x20 web:\n    image: {repo}/web:0\n    init: true\n    stop_grace_period: 1s\n    ports:\n      - target: 8080\n        published: {port}\n        mode: host\n    deploy:\n      {web_mode}\n{update}"
    )
}

/// The digest `releases/VERSION.json` recorded for each service.
pub(crate) fn recorded(p: &Project, version: &str) -> std::collections::BTreeMap<String, String> {
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(p.state_dir().join(format!("releases/{version}.json"))).unwrap(),
    )
    .unwrap();
    manifest["services"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, s)| (name.clone(), s["digest"].as_str().unwrap().to_owned()))
        .collect()
}

fn whole_pipeline_reaches_every_prod_node_with_devs_digests(transport: Transport) {
    let bed = Testbed::up();
    let t = Topology::up();
    let _servers = servers();
    let p = pipeline(&bed, &t, transport);
    let run = |args: &[&str]| bed.release(&p.project, args);
    run(&["-q", "build", "--version", "1.0.0"]).success();
    run(&["-q", "push", "--version", "1.0.0"]).success();
    run(&["-q", "deploy", "--env", "dev", "--version", "1.0.0"]).success();
    run(&["check", "--env", "dev"]).success();
    run(&[
        "promote",
        "--version",
        "1.0.0",
        "--to",
        "prod",
        "--approved-by",
        "alice",
    ])
    .success();
    let checked = run(&["check", "--env", "prod"]);
    checked.success();
    for node in ["prod-1", "prod-2", "prod-3"] {
        checked.stdout_has(&format!("web answers /health [{node}]"));
    }
    let status = run(&["status", "--env", "prod"]);
    status.success();
    for node in ["prod-1", "prod-2", "prod-3"] {
        status.stdout_has(node);
    }
    if transport == Transport::Ssh {
        // Each SSH connection's master process ends with the command that opened it.
        let masters = std::process::Command::new("pgrep")
            .args(["-af", "ssh-connection.*ControlPersist"])
            .output()
            .unwrap();
        let masters = String::from_utf8_lossy(&masters.stdout);
        assert!(
            !masters.contains(t.dev.addr) && !masters.contains(t.prod.addr),
            "ssh master processes outlived release:\n{masters}"
        );
    }

    let digests = recorded(&p.project, "1.0.0");
    // DEV ran on DEV's server only, PROD on PROD's.
    assert!(
        t.prod
            .docker(["stack", "ls"])
            .lines()
            .all(|l| !l.starts_with(&p.dev)),
        "DEV's stack reached PROD's server"
    );
    let dev_tasks = t.dev.task_images(&p.dev);
    assert_eq!(dev_tasks.len(), 2, "DEV tasks: {dev_tasks:?}");
    // Every PROD task on every node runs the digest DEV checked, as PROD's engine says.
    let prod_tasks = t.prod.task_images(&p.prod);
    assert_eq!(
        prod_tasks.len(),
        6,
        "3 api + 3 web tasks on PROD: {prod_tasks:?}"
    );
    for (service, node, image) in &prod_tasks {
        assert!(
            image.ends_with(&format!("@{}", digests[service])),
            "{service} on {node} runs {image}, DEV checked {}",
            digests[service]
        );
    }
    let mut nodes: Vec<&str> = prod_tasks.iter().map(|(_, n, _)| n.as_str()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    assert_eq!(
        nodes,
        ["prod-1", "prod-2", "prod-3"],
        "tasks: {prod_tasks:?}"
    );
    for (service, _, image) in &dev_tasks {
        assert!(
            image.ends_with(&format!("@{}", digests[service])),
            "{service} on DEV runs {image}"
        );
    }
}

/// DEV (Swarm A) to PROD (Swarm B, 3 nodes) with both engines reached over mutual TLS.
#[test]
fn pipeline_over_tls_puts_devs_checked_digests_on_every_prod_node() {
    whole_pipeline_reaches_every_prod_node_with_devs_digests(Transport::Tls);
}

/// The same pipeline with both engines reached over SSH (`docker system dial-stdio`).
#[test]
fn pipeline_over_ssh_puts_devs_checked_digests_on_every_prod_node() {
    whole_pipeline_reaches_every_prod_node_with_devs_digests(Transport::Ssh);
}

/// The gate reads DEV's live state from DEV's engine: when that engine cannot be reached,
/// promotion is an infrastructure failure (exit 3) and PROD is not touched.
#[test]
fn an_unreachable_dev_engine_makes_the_gate_refuse_with_exit_3() {
    let bed = Testbed::up();
    let t = Topology::up();
    let _servers = servers();
    let p = pipeline(&bed, &t, Transport::Tls);
    let run = |args: &[&str]| bed.release(&p.project, args);
    run(&["-q", "build", "--version", "1.0.0"]).success();
    run(&["-q", "push", "--version", "1.0.0"]).success();
    run(&["-q", "deploy", "--env", "dev", "--version", "1.0.0"]).success();
    run(&["-q", "check", "--env", "dev"]).success();
    {
        let _cut = Cut::connections_to(t.dev.addr, 2376);
        run(&[
            "promote",
            "--version",
            "1.0.0",
            "--to",
            "prod",
            "--approved-by",
            "alice",
        ])
        .expect_code(3)
        .stderr_has("dev")
        .stderr_has(&t.dev.tcp);
    }
    assert!(
        t.prod
            .docker(["stack", "ls"])
            .lines()
            .all(|l| !l.starts_with(&p.prod)),
        "PROD was deployed although DEV could not be read"
    );
    let ledger = std::fs::read_to_string(p.project.state_dir().join("ledger.jsonl")).unwrap();
    assert!(!ledger.contains("\"promoted\""), "{ledger}");
}

fn refused(bed: &Testbed, p: &Project, vars: &[(&str, &str)], cause: &str, endpoint: &str) {
    for args in [
        &["status", "--env", "prod"][..],
        &[
            "promote",
            "--version",
            "1.0.0",
            "--to",
            "prod",
            "--approved-by",
            "alice",
        ][..],
    ] {
        bed.release_with(p.dir(), vars, args)
            .expect_code(3)
            .stderr_has("prod")
            .stderr_has(endpoint)
            .stderr_has(cause);
    }
}

/// A client certificate the server does not trust, a CA that did not sign the server and
/// a key the server does not authorise: each exits 3 naming the environment, the endpoint
/// and the cause, and nothing is deployed.
#[test]
fn wrong_tls_material_or_ssh_key_exits_3_and_changes_nothing() {
    let bed = Testbed::up();
    let t = Topology::up();
    let _servers = servers();
    let p = pipeline(&bed, &t, Transport::Tls);
    let run = |p: &Pipeline, args: &[&str]| bed.release(&p.project, args);
    run(&p, &["-q", "build", "--version", "1.0.0"]).success();
    run(&p, &["-q", "push", "--version", "1.0.0"]).success();
    run(&p, &["-q", "deploy", "--env", "dev", "--version", "1.0.0"]).success();
    run(&p, &["-q", "check", "--env", "dev"]).success();
    let config = std::fs::read_to_string(p.project.config()).unwrap();
    let certs = t.certs.display().to_string();
    for (material, cause) in [
        (&t.rogue_certs, "client certificate"),
        (&t.unknown_ca_certs, "certificate"),
    ] {
        let prod_keys = t.engine_keys(&t.prod, Transport::Tls);
        p.project.write(
            "release.toml",
            &config.replace(
                &prod_keys,
                &prod_keys.replace(&certs, &material.display().to_string()),
            ),
        );
        refused(&bed, &p.project, &[], cause, &t.prod.tcp);
    }
    p.project.write(
        "release.toml",
        &config.replace(
            &t.engine_keys(&t.prod, Transport::Tls),
            &t.engine_keys(&t.prod, Transport::Ssh),
        ),
    );
    refused(
        &bed,
        &p.project,
        &[("SSH_AUTH_SOCK", t.wrong_ssh_agent.as_str())],
        "Permission denied",
        &t.prod.ssh,
    );
    assert!(
        t.prod
            .docker(["stack", "ls"])
            .lines()
            .all(|l| !l.starts_with(&p.prod)),
        "PROD was changed by a refused connection"
    );
    let ledger = std::fs::read_to_string(p.project.state_dir().join("ledger.jsonl")).unwrap();
    assert!(!ledger.contains("\"promoted\""), "{ledger}");
}
