//! `release check --env E`: run the environment's smoke and health checks, write JUnit,
//! record a `checked` ledger entry. The checks themselves live in `verify::check`; this
//! module turns `release.toml` into typed checks, and prints.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use verify::check::{
    self, CheckReport, CheckSpec, ComposeProbe, ComposeTarget, HttpProbe, NODE_PLACEHOLDER,
    NodeFanout, Probe, SwarmProbe, SwarmTarget, TcpProbe, Timing,
};
use verify::{EnvName, EnvPointer};

use super::{evidence, stage};
use crate::cli::{CheckArgs, Global};
use crate::exit::{Code, Failure};
use config::{self, Check, Config, Environment};

/// The `--json` document: the run, and what was recorded.
#[derive(Debug, Serialize)]
struct Output<'a> {
    // `env` comes from the flattened report.
    stack: &'a str,
    /// The version recorded for the environment, if any.
    version: Option<&'a str>,
    digests: BTreeMap<String, String>,
    unreachable: bool,
    slowest: f64,
    junit: Option<&'a Path>,
    junit_sha256: &'a str,
    ledger_seq: u64,
    #[serde(flatten)]
    report: &'a CheckReport,
}

pub async fn run(global: &Global, args: &CheckArgs) -> Result<Code, Failure> {
    let config = super::load_config(global)?;
    let env = config.environment(&args.env)?;
    let env_name = EnvName::parse(&args.env)?;
    if env.checks.is_empty() {
        return Err(Failure::usage(format!(
            "environment `{}` declares no checks in {}",
            args.env,
            config.path.display()
        ))
        .with_hint(format!(
            "add [[environments.{}.checks]] with kind = \"http\", \"tcp\", \"swarm\" or \"compose\"",
            args.env
        )));
    }
    // A signing key that cannot be read stops the run before any check: nothing is
    // recorded unsigned by accident.
    let signer = evidence::signer(&config, &args.env)?;
    let state = stage::state_dir(global, &config)?;
    let pointer = state.read_env(&env_name).map_err(stage::record_failure)?;
    let specs = specs(&config, &args.env, env, pointer.as_ref(), None, None)?;
    let clients =
        check::HttpClients::for_checks(&specs).map_err(|e| Failure::usage(e.to_string()))?;
    let report = check::run(&args.env, specs, &clients, usize::from(args.concurrency)).await;

    let xml = check::junit::render(&report).map_err(|e| Failure::infrastructure(e.to_string()))?;
    let junit_sha256 = verify::Digest::of(&xml);
    if let Some(path) = &args.junit {
        stage::write_junit_xml(path, &xml)?;
    }
    let mut event = report.checked_event(check::CheckedOn {
        env: &env_name,
        stack: &env.stack,
        live: pointer.as_ref(),
        junit: args.junit.as_deref(),
        junit_sha256: &junit_sha256,
        jenkins: stage::jenkins_build(),
    });
    // The signed result goes to the registry before the entry is recorded, so the entry
    // names it; a registry that refuses it still leaves the check recorded (exit 3).
    let attested = match &signer {
        Some(signer) => Some(attest(&config, &args.env, signer, &report, &event, &xml).await),
        None => None,
    };
    if let Some(Ok((envelope, _))) = &attested {
        event.attestation = Some(envelope.clone());
    }
    let version = event.version.clone();
    let digests = event.digests.clone();
    let entry = state
        .ledger()
        .append_event(&stage::actor(), &event.into())
        .map_err(|e| stage::record_failure(e.into()))?;

    if global.json {
        super::print_json(&Output {
            stack: &env.stack,
            version: version.as_deref(),
            digests,
            unreachable: report.unreachable(),
            slowest: report.slowest(),
            junit: args.junit.as_deref(),
            junit_sha256: junit_sha256.as_str(),
            ledger_seq: entry.seq,
            report: &report,
        })?;
    } else {
        print!("{}", table(&report));
        println!("{}", summary(&report, args.junit.as_deref()));
    }
    match attested {
        Some(Ok((envelope, attached))) if !global.json => {
            println!(
                "signed test result {envelope} attached to {} image(s)",
                attached.len()
            );
        }
        Some(Err(failure)) => {
            // A usage problem (nothing recorded to attach to) stays one; the rest is the
            // registry's.
            let code = if failure.code == Code::Usage {
                Code::Usage
            } else {
                Code::Infrastructure
            };
            return Err(Failure::new(
                code,
                format!(
                    "the checks of `{}` ran and are recorded (ledger seq {}), but their signed result could not be attached: {}",
                    args.env, entry.seq, failure.message
                ),
            )
            .with_hint(failure.hint.unwrap_or_else(|| {
                "run `release check` again once the registry answers".to_owned()
            })));
        }
        _ => {}
    }
    if report.unreachable() {
        return Err(Failure::infrastructure(format!(
            "environment `{}` could not be reached: every check failed to reach its target",
            args.env
        ))
        .with_hint(format!(
            "is stack `{}` deployed and the Docker Engine up? `release status --env {}`",
            env.stack, args.env
        )));
    }
    Ok(if report.failed == 0 {
        Code::Success
    } else {
        Code::Negative
    })
}

/// Signs the run's test result and attaches it to every image the environment was
/// checked with; the envelope's sha256 and where it went.
async fn attest(
    config: &Config,
    env: &str,
    signer: &evidence::Signer,
    report: &CheckReport,
    event: &verify::ledger::Checked,
    junit: &[u8],
) -> Result<(String, Vec<evidence::Attached>), Failure> {
    use verify::evidence::{ResourceDescriptor, TestResult};
    if event.digests.is_empty() {
        return Err(Failure::usage(format!(
            "environment `{env}` has no recorded release: there is no image to attach the result to"
        ))
        .with_hint(format!(
            "deploy first: `release deploy --env {env} --version …`"
        )));
    }
    let (passed, failed): (Vec<_>, Vec<_>) = report.checks.iter().partition(|r| r.passed);
    let configuration = std::fs::read(&config.path).unwrap_or_default();
    let result = TestResult::new(
        env,
        event.version.as_deref().unwrap_or_default(),
        time::OffsetDateTime::now_utc(),
        ResourceDescriptor::of_bytes("release.toml", &configuration),
        ResourceDescriptor::of_bytes("junit.xml", junit),
    )
    .with_tests(
        passed.iter().map(|r| r.name.clone()).collect(),
        Vec::new(),
        failed.iter().map(|r| r.name.clone()).collect(),
    );
    let result = match stage::jenkins_build() {
        Some(build) => result.with_url(&build.build_url),
        None => result,
    };
    let subjects = evidence::subjects(config, &event.digests);
    let mut statement = result.to_statement("", "");
    statement.subject = evidence::statement_subjects(&subjects);
    let client = stage::registry_client(config)?;
    evidence::attach(&client, signer, env, &statement, &subjects).await
}

/// Runs the environment's checks once without recording them: a blue-green deploy's
/// checks of the idle colour (`project`, its Compose project; through the proxy's preview
/// address when `origin` is `(proxy, preview)`; `pointer` what it must run), and again
/// through the proxy after the switch. The deploy records its own outcome, and
/// `release check` the environment's.
pub(crate) async fn run_unrecorded(
    config: &Config,
    env_name: &str,
    origin: Option<(&str, &str)>,
    project: Option<&str>,
    pointer: Option<&EnvPointer>,
) -> Result<CheckReport, Failure> {
    let env = config.environment(env_name)?;
    let specs: Vec<CheckSpec> = specs(config, env_name, env, pointer, origin, project)?
        .into_iter()
        .collect();
    let clients =
        check::HttpClients::for_checks(&specs).map_err(|e| Failure::usage(e.to_string()))?;
    Ok(check::run(env_name, specs, &clients, 8).await)
}

/// `text` with its leading `from` origin (`http://host:port`, or `host:port` for a TCP
/// address) replaced by `to`'s.
fn via(text: &str, origin: Option<(&str, &str)>) -> String {
    let Some((from, to)) = origin else {
        return text.to_owned();
    };
    let bare = |o: &str| {
        o.trim_end_matches('/')
            .split_once("://")
            .map_or(o, |(_, rest)| rest)
            .to_owned()
    };
    let from = from.trim_end_matches('/');
    let to = to.trim_end_matches('/');
    if let Some(rest) = text.strip_prefix(from)
        && (rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
    {
        return format!("{to}{rest}");
    }
    if text == bare(from) {
        return bare(to);
    }
    text.to_owned()
}

/// The environment's checks, typed. A Swarm check becomes one check per service; an HTTP
/// check whose URL names `{node}` becomes a fan-out over the nodes running its service
/// (expanded when the checks run, from the same listing of the stack as the Swarm checks).
/// `origin` sends the checks addressed to one origin to another, and `project` the
/// Compose checks to another project than the live one ([`run_unrecorded`]).
fn specs(
    config: &Config,
    env_name: &str,
    env: &Environment,
    pointer: Option<&EnvPointer>,
    origin: Option<(&str, &str)>,
    project: Option<&str>,
) -> Result<Vec<CheckSpec>, Failure> {
    // A blue-green Swarm environment: the colour being checked, else the one serving.
    let stack = match project {
        Some(p) => p.to_owned(),
        None => {
            super::live_project(config, env_name)?.unwrap_or_else(|| format!("{}-blue", env.stack))
        }
    };
    let target = SwarmTarget::new(config.endpoint(env_name)?, stack);
    let mut specs = Vec::new();
    for check in &env.checks {
        let timing = timing(check)?;
        let check = &match check {
            Check::Http(c) => Check::Http(config::HttpCheck {
                url: via(&c.url, origin),
                ..c.clone()
            }),
            Check::Tcp(c) => Check::Tcp(config::TcpCheck {
                address: via(&c.address, origin),
                ..c.clone()
            }),
            other => other.clone(),
        };
        match check {
            Check::Http(c) if c.url.contains(NODE_PLACEHOLDER) => {
                // A stand-in address (TEST-NET-1) so the rest of the URL is parsed now.
                let probe = http_probe(config, c, &c.url.replace(NODE_PLACEHOLDER, "192.0.2.1"))?;
                let probe = Probe::Http(Box::new(probe));
                specs.push(fanout_spec(
                    config, &target, &c.name, &c.service, &c.url, probe, timing,
                )?);
            }
            Check::Http(c) => specs.push(CheckSpec {
                name: c.name.clone(),
                service: c.service.clone(),
                timing,
                probe: Probe::Http(Box::new(http_probe(config, c, &c.url)?)),
            }),
            Check::Tcp(c) if c.address.contains(NODE_PLACEHOLDER) => {
                let probe = Probe::Tcp(TcpProbe {
                    address: c.address.clone(),
                });
                specs.push(fanout_spec(
                    config, &target, &c.name, &c.service, &c.address, probe, timing,
                )?);
            }
            Check::Tcp(c) => specs.push(CheckSpec {
                name: c.name.clone(),
                service: c.service.clone(),
                timing,
                probe: Probe::Tcp(TcpProbe {
                    address: c.address.clone(),
                }),
            }),
            Check::Swarm(c) => {
                for service in swarm_services(config, env_name, c.services.as_deref()) {
                    specs.push(swarm_spec(config, &target, service, timing, pointer));
                }
            }
            Check::Compose(c) => {
                let project = match project {
                    Some(p) => p.to_owned(),
                    // A blue-green environment whose proxy serves nothing yet: its first
                    // colour, which then has no containers (unreachable, exit 3).
                    None => super::live_project(config, env_name)?
                        .unwrap_or_else(|| format!("{}-blue", env.compose_project())),
                };
                let target = ComposeTarget::new(config.endpoint(env_name)?, project);
                for service in swarm_services(config, env_name, c.services.as_deref()) {
                    let e = Expected::of(config, service, pointer);
                    specs.push(CheckSpec {
                        name: e.name(service, "containers running and healthy"),
                        service: service.to_owned(),
                        timing,
                        probe: Probe::Compose(ComposeProbe {
                            target: Arc::clone(&target),
                            service: e.stack_service,
                            expected_digest: e.digest,
                            internal: e.internal,
                        }),
                    });
                }
            }
        }
    }
    Ok(specs)
}

/// A check run once per node where `service` publishes a host-mode port.
fn fanout_spec(
    config: &Config,
    target: &Arc<SwarmTarget>,
    name: &str,
    service: &str,
    template: &str,
    probe: Probe,
    timing: Timing,
) -> Result<CheckSpec, Failure> {
    let fanout = NodeFanout::new(
        Arc::clone(target),
        stack_service(config, service),
        template,
        probe,
    )
    .map_err(|e| Failure::usage(format!("check `{name}`: {e}")))?;
    Ok(CheckSpec {
        name: name.to_owned(),
        service: service.to_owned(),
        timing,
        probe: Probe::Fanout(Box::new(fanout)),
    })
}

fn timing(check: &Check) -> Result<Timing, Failure> {
    let t = check.timing();
    let parse = |text: &Option<String>| -> Result<Option<Duration>, Failure> {
        text.as_deref()
            .map(config::parse_duration)
            .transpose()
            .map_err(Failure::usage)
    };
    Ok(Timing::new(
        parse(&t.timeout)?,
        parse(&t.retry_interval)?,
        parse(&t.deadline)?,
    ))
}

/// The stack-file name of project service `service` (itself when the config does not
/// declare it).
fn stack_service(config: &Config, service: &str) -> String {
    config
        .services
        .get(service)
        .map(|s| s.stack_service_name(service))
        .unwrap_or(service)
        .to_owned()
}

fn http_probe(config: &Config, c: &config::HttpCheck, url: &str) -> Result<HttpProbe, Failure> {
    let bad = |what: String| Failure::usage(format!("check `{}`: {what}", c.name));
    let method = check::Method::from_bytes(c.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| bad(format!("`{}` is not an HTTP method", c.method)))?;
    let url = check::Url::parse(url)
        .map_err(|e| bad(format!("URL `{}`: {e}", check::mask_password(&c.url))))?;
    let mut probe = HttpProbe::new(method, url, c.expect_status);
    for (name, value) in &c.headers {
        let header = check::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| bad(format!("`{name}` is not a header name")))?;
        let (value, secret) = match value.strip_prefix("env:") {
            Some(var) => (
                std::env::var(var).map_err(|_| {
                    bad(format!(
                        "header `{name}` reads environment variable {var}, which is not set"
                    ))
                })?,
                true,
            ),
            None => (value.clone(), false),
        };
        // Never echo the value: it may be a token.
        let value = check::HeaderValue::from_str(&value).map_err(|_| {
            bad(format!(
                "the value of header `{name}` is not a valid header value"
            ))
        })?;
        probe = if secret {
            probe.secret_header(header, value)
        } else {
            probe.header(header, value)
        };
    }
    probe.body_contains = c.body_contains.clone();
    probe.ca = c.ca.as_ref().map(|ca| config.dir.join(ca));
    // Validation refuses one of the pair without the other.
    if let (Some(pointer), Some(equals)) = (&c.json_pointer, &c.json_equals) {
        probe.json = Some((pointer.clone(), equals.clone()));
    }
    probe.max_latency = c
        .max_latency
        .as_deref()
        .map(config::parse_duration)
        .transpose()
        .map_err(bad)?;
    Ok(probe)
}

/// The services a Swarm check covers: those it names, else every project service the
/// environment's stack file runs.
fn swarm_services<'c>(
    config: &'c Config,
    env_name: &str,
    named: Option<&'c [String]>,
) -> Vec<&'c str> {
    match named {
        Some(names) => names.iter().map(String::as_str).collect(),
        None => config
            .services
            .iter()
            .filter(|(name, service)| {
                config
                    .stacks
                    .get(env_name)
                    .is_none_or(|stack| stack.service(service.stack_service_name(name)).is_some())
            })
            .map(|(name, _)| name.as_str())
            .collect(),
    }
}

/// What a Swarm or Compose check expects of one service.
struct Expected {
    stack_service: String,
    internal: bool,
    digest: Option<verify::Digest>,
}

impl Expected {
    fn of(config: &Config, service: &str, pointer: Option<&EnvPointer>) -> Self {
        Self {
            stack_service: stack_service(config, service),
            internal: config.services.get(service).is_some_and(|s| s.internal),
            digest: pointer.and_then(|p| p.digests.get(service).cloned()),
        }
    }

    /// `SERVICE: RUNNING, on the recorded digest[, no published port]`.
    fn name(&self, service: &str, running: &str) -> String {
        let mut name = format!("{service}: {running}");
        name.push_str(match self.digest {
            Some(_) => ", on the recorded digest",
            None => " (no digest recorded)",
        });
        if self.internal {
            name.push_str(", no published port");
        }
        name
    }
}

fn swarm_spec(
    config: &Config,
    target: &Arc<SwarmTarget>,
    service: &str,
    timing: Timing,
    pointer: Option<&EnvPointer>,
) -> CheckSpec {
    let e = Expected::of(config, service, pointer);
    CheckSpec {
        name: e.name(service, "desired replicas running, tasks healthy"),
        service: service.to_owned(),
        timing,
        probe: Probe::Swarm(SwarmProbe {
            target: Arc::clone(target),
            stack_service: e.stack_service,
            expected_digest: e.digest,
            internal: e.internal,
        }),
    }
}

fn elapsed(seconds: f64) -> String {
    check::human_elapsed(Duration::from_secs_f64(seconds))
}

/// The line under the table.
fn summary(report: &CheckReport, junit: Option<&Path>) -> String {
    format!(
        "{}: {} of {} checks passed in {} (slowest {}){}",
        report.env,
        report.passed,
        report.checks.len(),
        elapsed(report.seconds),
        elapsed(report.slowest()),
        match junit {
            Some(p) => format!("; JUnit: {}", p.display()),
            None => String::new(),
        }
    )
}

fn table(report: &CheckReport) -> String {
    let mut rows = vec![vec![
        "KIND".to_owned(),
        "SERVICE".to_owned(),
        "CHECK".to_owned(),
        "RESULT".to_owned(),
        "TIME".to_owned(),
        "ATTEMPTS".to_owned(),
        "DETAIL".to_owned(),
    ]];
    for c in &report.checks {
        let detail = match &c.message {
            Some(m) => m.clone(),
            None => c
                .attempts
                .last()
                .map(|a| a.summary.clone())
                .unwrap_or_default(),
        };
        rows.push(vec![
            c.kind.as_str().to_owned(),
            c.service.clone(),
            c.name.clone(),
            if c.passed {
                "pass"
            } else if c.unreachable {
                "UNREACHABLE"
            } else {
                "FAIL"
            }
            .to_owned(),
            elapsed(c.seconds),
            c.attempts.len().to_string(),
            detail,
        ]);
    }
    super::render_table(&rows)
}

#[cfg(test)]
mod output_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use verify::check::{Attempt, CheckOutcome, Kind};

    /// A run of three checks with fixed times: one passed, one failed after two attempts, one
    /// whose target could not be reached.
    fn report() -> CheckReport {
        let started = time::macros::datetime!(2026-11-29 12:00:00 UTC);
        let attempt = |n: u64, at: f64, passed: bool, summary: &str| Attempt {
            n,
            at,
            seconds: 0.012,
            passed,
            summary: summary.to_owned(),
        };
        let check = |kind: Kind, name: &str, service: &str, passed: bool| CheckOutcome {
            kind,
            name: name.to_owned(),
            service: service.to_owned(),
            target: "http://127.0.0.1:18080/health".to_owned(),
            passed,
            unreachable: false,
            message: None,
            status: Some(200),
            latency_ms: Some(12.0),
            excerpt: None,
            started,
            seconds: 0.012,
            attempts: vec![attempt(1, 0.0, passed, "200 OK in 12 ms")],
        };
        let mut failed = check(Kind::Http, "admin health", "admin-app", false);
        failed.message = Some("JSON /status is \"degraded\", expected \"ok\"".to_owned());
        failed.excerpt = Some("{\"status\":\"degraded\"}".to_owned());
        failed.seconds = 1.5;
        failed.attempts = vec![
            attempt(1, 0.0, false, "200 OK in 12 ms, /status is \"degraded\""),
            attempt(2, 1.0, false, "200 OK in 11 ms, /status is \"degraded\""),
        ];
        let mut unreachable = check(Kind::Tcp, "db port", "db", false);
        unreachable.target = "127.0.0.1:15432".to_owned();
        unreachable.unreachable = true;
        unreachable.status = None;
        unreachable.latency_ms = None;
        unreachable.message = Some("connect to 127.0.0.1:15432: Connection refused".to_owned());
        unreachable.attempts = vec![attempt(1, 0.0, false, "Connection refused")];
        CheckReport {
            env: "dev".to_owned(),
            started,
            seconds: 1.52,
            passed: 1,
            failed: 2,
            checks: vec![
                check(Kind::Http, "api health", "api", true),
                failed,
                unreachable,
            ],
        }
    }

    #[test]
    fn the_table_and_summary_read_as_documented() {
        let report = report();
        let text = format!(
            "{}{}",
            table(&report),
            summary(&report, Some(Path::new("reports/check-dev.xml")))
        );
        insta::assert_snapshot!(text);
    }

    #[test]
    fn the_json_document_has_the_run_and_the_record() {
        let report = report();
        let digests = BTreeMap::from([("api".to_owned(), format!("sha256:{}", "a".repeat(64)))]);
        let output = Output {
            stack: "hestino-dev",
            version: Some("1.4.0"),
            digests,
            unreachable: report.unreachable(),
            slowest: report.slowest(),
            junit: Some(Path::new("reports/check-dev.xml")),
            junit_sha256: "sha256:0000000000000000000000000000000000000000000000000000000000000000",
            ledger_seq: 7,
            report: &report,
        };
        let text = serde_json::to_string(&output).unwrap();
        assert_eq!(
            text.matches("\"env\":").count(),
            1,
            "a key appears twice: {text}"
        );
        insta::assert_json_snapshot!(output);
    }
}

#[cfg(test)]
mod spec_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const CONFIG: &str = r#"
[project]
name = "t"
[registry]
host = "r.example.com"
[services.admin-app]
repository = "t/admin"
context = "."
[environments.prod]
stack = "t-prod"
stack_file = "stack.yml"

[[environments.prod.checks]]
kind = "http"
name = "admin-app answers /health"
service = "admin-app"
url = "http://{node}:18080/health"

[[environments.prod.checks]]
kind = "http"
name = "admin-app through the load balancer"
service = "admin-app"
url = "http://127.0.0.1:18080/health"
"#;

    #[test]
    fn checks_of_the_proxy_go_to_the_preview_listener_and_nothing_else_moves() {
        let o = Some(("http://127.0.0.1:28000", "http://127.0.0.1:28001/"));
        assert_eq!(
            via("http://127.0.0.1:28000/api/health", o),
            "http://127.0.0.1:28001/api/health"
        );
        assert_eq!(via("http://127.0.0.1:28000", o), "http://127.0.0.1:28001");
        assert_eq!(via("127.0.0.1:28000", o), "127.0.0.1:28001");
        // Another port that merely starts with the proxy's stays.
        assert_eq!(
            via("http://127.0.0.1:280001/health", o),
            "http://127.0.0.1:280001/health"
        );
        assert_eq!(via("http://db:5432/", o), "http://db:5432/");
        assert_eq!(
            via("http://127.0.0.1:28000/x", None),
            "http://127.0.0.1:28000/x"
        );
    }

    #[test]
    fn a_node_url_becomes_a_fan_out_and_a_plain_one_stays_http() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("stack.yml"),
            "services:\n  admin-app:\n    image: r.example.com/t/admin:1\n",
        )
        .unwrap();
        let config = Config::parse(&dir.path().join("release.toml"), CONFIG.to_owned(), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let env = config.environment("prod").unwrap();
        let specs = specs(&config, "prod", env, None, None, None).unwrap();
        let got: Vec<(&str, String)> = specs
            .iter()
            .map(|s| {
                let kind = match &s.probe {
                    Probe::Fanout(_) => "fanout",
                    Probe::Http(_) => "http",
                    _ => "other",
                };
                (kind, s.probe.target())
            })
            .collect();
        assert_eq!(
            got,
            [
                ("fanout", "GET http://{node}:18080/health".to_owned()),
                ("http", "GET http://127.0.0.1:18080/health".to_owned()),
            ]
        );
        let Probe::Fanout(f) = &specs[0].probe else {
            unreachable!()
        };
        assert_eq!(f.stack_service, "admin-app");
    }
}
