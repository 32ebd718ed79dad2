//! `release.toml` validation: every problem reported at once, each at `file:line` with a
//! hint. Messages are pinned by snapshots so a change is a visible diff.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use config::{Config, ConfigError};

const STACK: &str = "services:\n  api:\n    image: r.example.com/hestino/api:1.0.0\n    deploy:\n      replicas: 2\n  worker:\n    image: r.example.com/hestino/worker:1.0.0\n";

const VALID: &str = r#"[project]
name = "hestino"

[registry]
host = "registry.dreamconsistency.com"

[services.api]
repository = "hestino/api"
context = "ctx"

[services.worker]
repository = "hestino/worker"
context = "ctx"
max_replicas = 1

[environments.dev]
stack = "hestino-dev"
stack_file = "stack.yml"
"#;

/// Writes `config` (and a valid stack file and build context) into a temp dir and loads it.
fn load_with(config: &str, files: &[(&str, &str)]) -> Result<Config, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("ctx")).unwrap();
    std::fs::write(dir.path().join("stack.yml"), STACK).unwrap();
    for (name, text) in files {
        let file = dir.path().join(name);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    }
    let path = dir.path().join("release.toml");
    std::fs::write(&path, config).unwrap();
    Config::load(&path, None).map_err(|e| render(&e, dir.path()))
}

fn render(e: &ConfigError, dir: &Path) -> String {
    e.to_string().replace(&format!("{}/", dir.display()), "")
}

fn problems(config: &str) -> String {
    load_with(config, &[]).expect_err("config should be refused")
}

#[test]
fn the_valid_config_loads() {
    let config = load_with(VALID, &[]).unwrap();
    assert_eq!(config.services.len(), 2);
    assert_eq!(config.services["api"].dockerfile, "Dockerfile");
    assert!(config.stacks.contains_key("dev"));
}

#[test]
fn the_bundled_example_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hestino/release.toml");
    let config = Config::load(&path, Some("127.0.0.1:5443")).unwrap();
    assert_eq!(config.registry.host, "127.0.0.1:5443");
    assert_eq!(
        config.environments["prod"].promote_from.as_deref(),
        Some("dev")
    );
    assert_eq!(config.services.len(), 6);
}

#[test]
fn the_second_example_loads_with_its_merged_compose_files() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/shop/release.toml");
    let config = Config::load(&path, Some("127.0.0.1:5443")).unwrap();
    let prod = &config.environments["prod"];
    assert_eq!(prod.strategy, config::Strategy::BlueGreen);
    assert_eq!(prod.blue_green.as_ref().unwrap().routes.len(), 3);
    // compose.yml and compose.dev.yml merged: DEV's ports, PROD's none.
    assert_eq!(config.stacks["dev"].service("web").unwrap().ports.len(), 1);
    assert!(
        config.stacks["prod"]
            .service("web")
            .unwrap()
            .ports
            .is_empty()
    );
}

#[test]
fn toml_syntax_error_points_at_its_line() {
    let text = VALID.replace("name = \"hestino\"", "name = \"hestino");
    insta::assert_snapshot!(problems(&text));
}

#[test]
fn unknown_keys_are_all_reported_with_suggestions() {
    let text = VALID
        .replace(
            "context = \"ctx\"\n\n[services.worker]",
            "context = \"ctx\"\nreplicas = 3\n\n[services.worker]",
        )
        .replace(
            "stack = \"hestino-dev\"",
            "stak = \"hestino-dev\"\nstack = \"hestino-dev\"",
        )
        .replace("[registry]", "[registry]\nhots = \"x\"");
    insta::assert_snapshot!(problems(&text));
}

#[test]
fn unknown_service_in_an_environment() {
    let text = format!(
        "{VALID}\n[[environments.dev.checks]]\nkind = \"tcp\"\nname = \"db\"\nservice = \"database\"\naddress = \"127.0.0.1:5432\"\n"
    );
    insta::assert_snapshot!(problems(&text));
}

#[test]
fn bad_registry_hosts() {
    let text = VALID.replace(
        "registry.dreamconsistency.com",
        "https://registry.example.com/v2",
    );
    insta::assert_snapshot!(problems(&text));
    let err = Config::parse(
        Path::new("release.toml"),
        VALID.to_owned(),
        Some("bad host!"),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("(given in place of the file's)"),
        "{err}"
    );
}

#[test]
fn latest_is_refused_anywhere() {
    let stack = STACK.replace("worker:1.0.0", "worker:latest");
    let text = VALID.replace(
        "context = \"ctx\"\n\n[services.worker]",
        "context = \"ctx\"\nbuild_args = { BASE = \"alpine:latest\" }\n\n[services.worker]",
    );
    insta::assert_snapshot!(load_with(&text, &[("stack.yml", &stack)]).unwrap_err());
}

#[test]
fn duplicate_published_ports_within_and_across_environments() {
    let dev = "services:\n  api:\n    image: a/api:1\n    ports:\n      - \"8080:80\"\n  worker:\n    image: a/worker:1\n    ports:\n      - target: 80\n        published: 8080\n        mode: host\n";
    let prod = "services:\n  api:\n    image: a/api:1\n    ports:\n      - \"8080:80\"\n  worker:\n    image: a/worker:1\n";
    let text = format!(
        "{VALID}\n[environments.prod]\nstack = \"hestino-prod\"\nstack_file = \"prod.yml\"\npromote_from = \"dev\"\n"
    );
    insta::assert_snapshot!(
        load_with(&text, &[("stack.yml", dev), ("prod.yml", prod)]).unwrap_err()
    );
}

#[test]
fn names_that_could_escape_a_path() {
    let text = VALID
        .replace("[services.worker]", "[services.\"../worker\"]")
        .replace("[environments.dev]", "[environments.\"dev/../../etc\"]")
        .replace("stack = \"hestino-dev\"", "stack = \"../hestino\"");
    insta::assert_snapshot!(problems(&text));
}

#[test]
fn wrong_types_and_missing_fields_in_several_sections() {
    let text = VALID
        .replace("repository = \"hestino/api\"\n", "")
        .replace("max_replicas = 1", "max_replicas = \"one\"");
    insta::assert_snapshot!(problems(&text));
}

#[test]
fn stack_and_policy_problems() {
    let stack = "services:\n  api:\n    image: a/api:1\n    deploy:\n      replicas: 2\n  worker:\n    image: a/worker:1\n    deploy:\n      replicas: 3\n";
    let text = VALID
        .replace(
            "stack_file = \"stack.yml\"",
            "stack_file = \"stack.yml\"\ndeploy_timeout = \"soon\"\npromote_from = \"staging\"",
        )
        .replace("[services.worker]", "[services.worker]\ninternal = true");
    let stack = stack.replace(
        "  worker:\n    image: a/worker:1\n",
        "  worker:\n    image: a/worker:1\n    ports: [\"6379:6379\"]\n",
    );
    insta::assert_snapshot!(load_with(&text, &[("stack.yml", &stack)]).unwrap_err());
}

#[test]
fn ports_and_replicas_merged_from_an_anchor_are_checked_too() {
    let stack = "x-published: &published\n  ports: [\"6379:6379\"]\nx-many: &many\n  replicas: 3\nservices:\n  api:\n    image: a/api:1\n  worker:\n    image: a/worker:1\n    <<: *published\n    deploy:\n      <<: *many\n";
    let text = VALID.replace("[services.worker]", "[services.worker]\ninternal = true");
    let problems = load_with(&text, &[("stack.yml", stack)]).unwrap_err();
    assert!(
        problems.contains("internal service `worker` publishes port 6379"),
        "{problems}"
    );
    assert!(
        problems.contains("service `worker` runs 3 replicas in environment `dev`; its limit is 1"),
        "{problems}"
    );
}

#[test]
fn environments_never_share_secrets() {
    let dev = format!("{STACK}secrets:\n  api_key:\n    external: true\n");
    let prod = format!("{STACK}secrets:\n  api_key:\n    external: true\n");
    let text = format!(
        "{VALID}\n[environments.prod]\nstack = \"hestino-prod\"\nstack_file = \"prod.yml\"\n"
    );
    insta::assert_snapshot!(
        load_with(&text, &[("stack.yml", &dev), ("prod.yml", &prod)]).unwrap_err()
    );
}

#[test]
fn many_kinds_of_problem_are_reported_together() {
    let text = VALID
        .replace("[registry]", "[registry]\nhots = \"x\"")
        .replace("registry.dreamconsistency.com", "https://r.example.com")
        .replace("hestino/worker", "Hestino/Worker:latest")
        .replace("[environments.dev]", "[environments.\"Dev\"]")
        .replace("stack_file = \"stack.yml\"", "stack_file = \"missing.yml\"");
    let message = problems(&text);
    insta::assert_snapshot!(message);
    assert!(
        message.starts_with("6 problems in release.toml"),
        "{message}"
    );
}

#[test]
fn checks_that_could_never_judge_anything_are_refused() {
    let text = format!(
        r#"{VALID}
[[environments.dev.checks]]
kind = "http"
name = "pointer alone"
service = "api"
url = "http://127.0.0.1:8080/health"
json_pointer = "/status"

[[environments.dev.checks]]
kind = "http"
name = "pointer without slash"
service = "api"
url = "htp://ci:canary-pw@127.0.0.1:8080/health"
json_pointer = "status"
json_equals = "ok"
retry_interval = "0s"

[[environments.dev.checks]]
kind = "swarm"
services = []
timeout = "0ms"
"#
    );
    let message = problems(&text);
    for expected in [
        "check `pointer alone` has json_pointer without json_equals",
        "check `pointer without slash` has json_pointer `status`, which does not start with `/`",
        "retry_interval must be longer than 0",
        "timeout must be longer than 0",
        "a swarm check of environment `dev` lists no services",
        "has URL `htp://ci:***@127.0.0.1:8080/health` that is not http:// or https://",
    ] {
        assert!(
            message.contains(expected),
            "missing {expected:?} in:\n{message}"
        );
    }
    assert!(!message.contains("canary-pw"), "{message}");
    assert!(
        message.starts_with("6 problems in release.toml"),
        "{message}"
    );
}

/// An environment named `name` on the shared stack file, with `keys` added.
fn env(name: &str, keys: &str) -> String {
    format!(
        "\n[environments.{name}]\nstack = \"hestino-{name}\"\nstack_file = \"stack.yml\"\n{keys}\n"
    )
}

const CERTS: [(&str, &str); 3] = [
    ("certs/ca.pem", "ca"),
    ("certs/cert.pem", "cert"),
    ("certs/key.pem", "key"),
];

#[test]
fn engine_keys_are_checked_together() {
    let text = [
        VALID.to_owned(),
        env("scheme", "docker_host = \"http://198.18.0.11:2375\""),
        env("tlsport", "docker_host = \"tcp://198.18.0.11:2376\""),
        env(
            "sshcerts",
            "docker_host = \"ssh://root@198.18.0.10\"\ndocker_cert_path = \"certs\"",
        ),
        env(
            "both",
            "docker_host = \"unix:///var/run/docker.sock\"\ndocker_context = \"prod\"",
        ),
        env(
            "partial",
            "docker_host = \"tcp://198.18.0.11:2376\"\ndocker_cert_path = \"partial\"",
        ),
        env(
            "unverified",
            "docker_host = \"tcp://198.18.0.11:2376\"\ndocker_cert_path = \"certs\"\ndocker_tls_verify = false",
        ),
        env("typo", "docker_cert_pth = \"certs\""),
    ]
    .concat();
    let mut files = CERTS.to_vec();
    files.extend([("partial/ca.pem", "ca"), ("partial/cert.pem", "cert")]);
    let message = load_with(&text, &files).unwrap_err();
    insta::assert_snapshot!(message);
    assert!(
        message.starts_with("7 problems in release.toml"),
        "{message}"
    );
}

#[test]
fn each_kind_of_engine_loads_and_resolves() {
    let text = [
        VALID.to_owned(),
        env(
            "tls",
            "docker_host = \"tcp://198.18.0.11:2376\"\ndocker_cert_path = \"certs\"",
        ),
        env("ssh", "docker_host = \"ssh://root@198.18.0.11\""),
        env("ctx", "docker_context = \"prod\""),
        env("plain", "docker_host = \"tcp://127.0.0.1:2375\""),
    ]
    .concat();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("ctx")).unwrap();
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    std::fs::write(dir.path().join("stack.yml"), STACK).unwrap();
    for (name, text) in CERTS {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let path = dir.path().join("release.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path, None).unwrap();
    assert_eq!(
        config.endpoint("tls").unwrap().to_string(),
        format!(
            "tcp://198.18.0.11:2376 (TLS, certs {})",
            dir.path().join("certs").display()
        ),
        "the cert path is relative to the config file"
    );
    assert_eq!(
        config.endpoint("ssh").unwrap().to_string(),
        "ssh://root@198.18.0.11"
    );
    assert_eq!(
        config.endpoint("plain").unwrap().to_string(),
        "tcp://127.0.0.1:2375 (plain HTTP)"
    );
    // A context is read from the CLI's store when a command runs, not at load time.
    assert!(config.environments["ctx"].docker_context.is_some());
}

#[test]
fn build_keys_are_checked_together() {
    let text = VALID
        .replace(
            "context = \"ctx\"\n\n[services.worker]",
            r#"context = "ctx"
target = "final stage"
platform = "linux/arm64"
secrets = [
  { id = "npm", env = "NPM_TOKEN" },
  { id = "npm", file = "npmrc" },
  { id = "both", env = "A", file = "b" },
  { id = "neither" },
  { id = "own", env = "RELEASE_REGISTRY_PASSWORD" },
  { id = "typo", evn = "X" },
]
cache_from = ["type=registry,ref=registry.example.com/hestino/api:cache", "type=local,src=/tmp/c", "type=registry,ref=hestino/api"]
cache_to = "type=registry,ref=hestino/api:cache,mode=all"

[services.worker]"#,
        )
        .replace(
            "max_replicas = 1",
            "max_replicas = 1\nbuilder = \"classic\"\ncache_to = \"type=inline\"",
        );
    let message = problems(&text);
    insta::assert_snapshot!(message);
    assert!(
        message.starts_with("13 problems in release.toml"),
        "{message}"
    );
}

#[test]
fn build_keys_that_buildkit_takes_load() {
    let text = VALID.replace(
        "context = \"ctx\"\n\n[services.worker]",
        r#"context = "ctx"
target = "final"
platform = "linux/amd64"
secrets = [{ id = "npm", env = "NPM_TOKEN" }, { id = "nuget", file = "nuget.config" }]
cache_from = ["type=registry,ref=hestino/api:1.3.0"]
cache_to = "type=inline"

[services.worker]"#,
    );
    let config = load_with(&text, &[]).unwrap();
    let api = &config.services["api"];
    assert_eq!(api.secrets.len(), 2);
    assert_eq!(api.cache_to.as_deref(), Some("type=inline"));
    assert_eq!(api.builder, config::Builder::Buildkit);
}

#[test]
fn compose_environment_keys_are_checked() {
    use config::Orchestrator;
    let compose = VALID.replace(
        "stack = \"hestino-dev\"",
        "orchestrator = \"compose\"\nstack = \"hestino-dev\"\nproject = \"hestino-dev-compose\"",
    );
    let config = load_with(&compose, &[]).unwrap();
    let dev = &config.environments["dev"];
    assert_eq!(dev.orchestrator, Orchestrator::Compose);
    assert_eq!(dev.compose_project(), "hestino-dev-compose");
    let default_project = VALID.replace(
        "stack = \"hestino-dev\"",
        "orchestrator = \"compose\"\nstack = \"hestino-dev\"",
    );
    let config = load_with(&default_project, &[]).unwrap();
    assert_eq!(config.environments["dev"].compose_project(), "hestino-dev");
    let swarm = load_with(VALID, &[]).unwrap();
    assert_eq!(swarm.environments["dev"].orchestrator, Orchestrator::Swarm);

    let unknown = VALID.replace(
        "stack = \"hestino-dev\"",
        "orchestrator = \"kubernetes\"\nstack = \"hestino-dev\"",
    );
    insta::assert_snapshot!("unknown_orchestrator", problems(&unknown));
    let misplaced = VALID.replace(
        "stack = \"hestino-dev\"",
        "stack = \"hestino-dev\"\nproject = \"../etc\"",
    );
    insta::assert_snapshot!("project_on_swarm_and_unsafe", problems(&misplaced));
    let swarm_check = format!("{compose}\n[[environments.dev.checks]]\nkind = \"swarm\"\n");
    insta::assert_snapshot!("swarm_check_on_compose", problems(&swarm_check));
}

#[test]
fn evidence_keys_are_checked_together() {
    let evidence = |name: &str, keys: &str| {
        format!(
            "\n[environments.{name}]\nstack = \"hestino-{name}\"\nstack_file = \"stack.yml\"\n\n[environments.{name}.evidence]\n{keys}\n"
        )
    };
    let text = [
        VALID.to_owned(),
        evidence(
            "twice",
            "key_id = \"a\"\nsigning_key_env = \"KEY\"\nsigning_key_file = \"keys/a.pem\"",
        ),
        evidence("noid", "signing_key_env = \"KEY\""),
        evidence("badvar", "key_id = \"b\"\nsigning_key_env = \"not a var\""),
        evidence("nofile", "key_id = \"c\"\nsigning_key_file = \"keys/missing.pem\""),
        evidence("badid", "key_id = \"has space\""),
        evidence(
            "trust",
            "trust = [\n  { id = \"dev\", public_key = \"keys/dev.pub\" },\n  { id = \"dev\", public_key = \"keys/dev.pub\" },\n  { id = \"gone\", public_key = \"keys/gone.pub\", revoked = true },\n  { id = \"x\", public_key = \"keys/dev.pub\", revokd = true },\n]",
        ),
        evidence("typo", "key_idd = \"d\""),
    ]
    .concat();
    let files = [("keys/a.pem", "pem"), ("keys/dev.pub", "pub")];
    let message = load_with(&text, &files).unwrap_err();
    insta::assert_snapshot!(message);
    assert!(
        message.starts_with("9 problems in release.toml"),
        "{message}"
    );
    for needle in [
        "names its signing key twice",
        "has a signing key but no key_id",
        "is not a variable name",
        "keys/missing.pem` of environment `nofile` does not exist",
        "key_id `has space`",
        "trusts key id `dev` twice",
        "keys/gone.pub` of trusted key `gone`",
        "unknown key `revokd`",
    ] {
        assert!(message.contains(needle), "{needle}: {message}");
    }
}

/// Compose has no named secret objects: two Compose environments share a secret when they
/// read the same file, whatever their project names; distinct files are not shared.
#[test]
fn compose_environments_sharing_a_secret_file_are_refused() {
    let with_secret = |file: &str| format!("{STACK}secrets:\n  api_key:\n    file: {file}\n");
    let text = format!(
        "{}\n[environments.prod]\norchestrator = \"compose\"\nstack = \"hestino-prod\"\nproject = \"shop-prod\"\nstack_file = \"prod.yml\"\n",
        VALID.replace(
            "stack = \"hestino-dev\"",
            "orchestrator = \"compose\"\nstack = \"hestino-dev\"\nproject = \"shop-dev\""
        )
    );
    let shared = load_with(
        &text,
        &[
            ("stack.yml", &with_secret("./secrets/api_key")),
            ("prod.yml", &with_secret("secrets/api_key")),
            ("secrets/api_key", "s3cret"),
        ],
    )
    .unwrap_err();
    assert!(
        shared.contains("environment `prod` uses secret")
            && shared.contains("which environment `dev` also uses"),
        "{shared}"
    );
    assert!(!shared.contains("s3cret"), "{shared}");
    load_with(
        &text,
        &[
            ("stack.yml", &with_secret("secrets/dev_key")),
            ("prod.yml", &with_secret("secrets/prod_key")),
        ],
    )
    .unwrap();
}

#[test]
fn ledger_keys_are_checked_like_evidence_keys() {
    let text = format!(
        "{VALID}\n[ledger]\nkey_id = \"ledger 1\"\nsigning_key_env = \"NOT-A-VAR\"\nsigning_key_file = \"missing.pem\"\ntrust = [{{ id = \"a\", public_key = \"a.pub\" }}, {{ id = \"a\", public_key = \"missing.pub\", revokd = true }}]\nsigning_key = \"x\"\n"
    );
    let message = load_with(&text, &[("a.pub", "x")]).expect_err("refused");
    for expected in [
        "unknown key `signing_key` in [ledger]",
        "unknown key `revokd` in a trusted key of [ledger]",
        "[ledger] names its signing key twice (signing_key_env and signing_key_file)",
        "signing_key_env `NOT-A-VAR` of [ledger] is not a variable name",
        "signing key file `missing.pem` of [ledger] does not exist",
        "key_id `ledger 1` of [ledger] is not a key id",
        "[ledger] trusts key id `a` twice",
        "public key file `missing.pub` of trusted key `a` ([ledger]) does not exist",
    ] {
        assert!(message.contains(expected), "{expected}\n---\n{message}");
    }
    // The same block without a key id.
    let text = format!("{VALID}\n[ledger]\nsigning_key_env = \"LEDGER_KEY\"\n");
    let message = problems(&text);
    assert!(
        message.contains("[ledger] has a signing key but no key_id"),
        "{message}"
    );
    // A valid block loads, and no [ledger] is no ledger key.
    let text = format!(
        "{VALID}\n[ledger]\nkey_id = \"ledger-1\"\nsigning_key_env = \"LEDGER_KEY\"\ntrust = [{{ id = \"ledger-1\", public_key = \"a.pub\" }}]\n"
    );
    let config = load_with(&text, &[("a.pub", "x")]).unwrap();
    let ledger = config.ledger.unwrap();
    assert_eq!(ledger.key_id.as_deref(), Some("ledger-1"));
    assert_eq!(ledger.trust.len(), 1);
    assert!(load_with(VALID, &[]).unwrap().ledger.is_none());
}

#[test]
fn blue_green_keys_are_checked_together() {
    let compose = VALID.replace(
        "stack = \"hestino-dev\"",
        "orchestrator = \"compose\"\nstrategy = \"blue-green\"\nstack = \"hestino-dev\"",
    );
    let table = "\n[environments.dev.blue_green]\nupstream_file = \"upstreams.conf\"\nproxy_url = \"http://127.0.0.1:8080\"\npreview_url = \"http://127.0.0.1:8081\"\nroutes = [{ upstream = \"shop_api\", service = \"api\", port = 8080, blue = 18101, green = 18201 }]\n";
    let config = load_with(&format!("{compose}{table}"), &[]).unwrap();
    let bg = config.environments["dev"].blue_green.as_ref().unwrap();
    assert_eq!(bg.routes[0].green, 18201);
    // Every problem at once: no table; a table on an in-place or Swarm environment; bad
    // URLs, names, ports and commands; an unknown or internal service; a port in the file.
    insta::assert_snapshot!("blue_green_without_table", problems(&compose));
    insta::assert_snapshot!(
        "blue_green_on_swarm_and_in_place",
        problems(&format!(
            "{}{table}\n[environments.prod]\nstrategy = \"blue-green\"\nstack = \"hestino-prod\"\nstack_file = \"stack.yml\"\n{}",
            VALID,
            table.replace("environments.dev", "environments.prod")
        ))
    );
    let broken = "\n[environments.dev.blue_green]\nupstream_file = \"upstreams.conf\"\nproxy_url = \"127.0.0.1:8080\"\npreview_url = \"http://127.0.0.1:8081/preview\"\ntest_command = []\nrollback_window = \"soon\"\nroutes = [\n  { upstream = \"shop-api\", service = \"api\", port = 8080, blue = 18101, green = 18101 },\n  { upstream = \"shop_w\", service = \"nope\", port = 1, blue = 0, green = 18301 },\n  { upstream = \"shop_w\", service = \"worker\", port = 1, blue = 18401, green = 18402, colour = \"red\" },\n]\n";
    let internal = compose.replace("max_replicas = 1", "max_replicas = 1\ninternal = true");
    insta::assert_snapshot!(
        "blue_green_broken_table",
        problems(&format!("{internal}{broken}"))
    );
    let publishing = "services:\n  api:\n    image: r.example.com/hestino/api:1.0.0\n    ports: [\"8080:8080\"]\n  worker:\n    image: r.example.com/hestino/worker:1.0.0\n";
    let err = load_with(&format!("{compose}{table}"), &[("stack.yml", publishing)]).unwrap_err();
    assert!(
        err.contains("service `api` publishes port 8080 in blue-green environment `dev`, where both colours run at once"),
        "{err}"
    );
}
