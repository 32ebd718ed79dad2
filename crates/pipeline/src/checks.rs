//! The checks an environment declares, typed: `release.toml`'s `[[environments.E.checks]]`
//! become `verify::check` specs (a Swarm check one per service, a `{node}` URL a fan-out,
//! `env:` header values read here), aimed at the live project or at another (a blue-green
//! colour, through the proxy's preview listener). Running and judging them is
//! `verify::check`'s.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use verify::check::{
    self, CheckReport, CheckSpec, ComposeProbe, ComposeTarget, HttpProbe, NODE_PLACEHOLDER,
    NodeFanout, Probe, SwarmProbe, SwarmTarget, TcpProbe, Timing,
};
use verify::{EnvName, EnvPointer, ServiceName, Version};

use crate::{Error, Kind, Stage, evidence};
use config::{self, Check, Config, Environment};

/// What `release check` asks: the environment, how many checks at once, and where the
/// JUnit XML goes (named in the record).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub env: &'a str,
    pub concurrency: usize,
    pub junit: Option<&'a Path>,
}

/// A run of an environment's checks, recorded.
#[derive(Debug)]
pub struct Recorded {
    pub report: CheckReport,
    pub junit_sha256: verify::Digest,
    /// What the environment's pointer said was live: the version and digests the run
    /// vouches for.
    pub version: Option<Version>,
    pub digests: BTreeMap<ServiceName, verify::Digest>,
    /// The `checked` entry's seq.
    pub seq: u64,
    /// The signed result's envelope digest and where it went, when the environment signs.
    pub attested: Option<(verify::Digest, Vec<evidence::Attached>)>,
    /// What the run means beyond its failed checks: its signed result could not be
    /// attached, or no check reached its target.
    pub failure: Option<Error>,
}

/// `release check`: runs environment `env`'s checks against what its pointer says is live,
/// writes the JUnit XML, signs the result and attaches it to the checked images when
/// `signing` is given (before recording, so the entry names it; a registry that refuses
/// it still leaves the run recorded), and records the `checked` entry.
pub async fn check(
    s: &Stage<'_>,
    request: Request<'_>,
    signing: Option<(&registry_client::Client, &evidence::Signer)>,
) -> Result<Recorded, Error> {
    let Request {
        env,
        concurrency,
        junit,
    } = request;
    let CheckRun {
        report,
        junit: xml,
        junit_sha256,
        mut event,
    } = run(s, env, concurrency, junit).await?;
    if let Some(path) = junit {
        crate::stage::write_junit(path, &xml)?;
    }
    let attested = match signing {
        Some((client, signer)) => Some(attest(s, client, signer, &report, &event, &xml).await),
        None => None,
    };
    if let Some(Ok((envelope, _))) = &attested {
        event.attestation = Some(envelope.clone());
    }
    let version = event.version.clone();
    let digests = event.digests.clone();
    let stack = event.stack.clone();
    let seq = record(s, event)?;
    let (attested, unattached) = match attested {
        Some(Ok(attached)) => (Some(attached), None),
        Some(Err(e)) => (None, Some(self::unattached(env, seq, e))),
        None => (None, None),
    };
    let failure = unattached.or_else(|| unreachable(env, &stack, &report));
    Ok(Recorded {
        report,
        junit_sha256,
        version,
        digests,
        seq,
        attested,
        failure,
    })
}

/// One run of an environment's declared checks, judged, with the `checked` event that
/// records it.
#[derive(Debug)]
struct CheckRun {
    pub report: CheckReport,
    /// The run's JUnit XML (the event names its sha256, written to a file or not).
    pub junit: Vec<u8>,
    pub junit_sha256: verify::Digest,
    /// The `checked` event; a signed result's envelope is set on it before it is recorded.
    pub event: verify::ledger::Checked,
}

/// Runs environment `env`'s checks against what its pointer says is live, `concurrency`
/// at a time. `junit`: where the XML is written, named in the event.
async fn run(
    s: &Stage<'_>,
    env: &str,
    concurrency: usize,
    junit: Option<&Path>,
) -> Result<CheckRun, Error> {
    let config = s.config;
    let environment = config.environment(env)?;
    let env_name = EnvName::parse(env)?;
    if environment.checks.is_empty() {
        return Err(Error::usage(format!(
            "environment `{env}` declares no checks in {}",
            config.path.display()
        ))
        .with_hint(format!(
            "add [[environments.{env}.checks]] with kind = \"http\", \"tcp\", \"swarm\" or \"compose\""
        )));
    }
    let pointer = s.state.read_env(&env_name)?;
    let specs = specs(config, env, environment, pointer.as_ref(), None, None)?;
    let clients =
        check::HttpClients::for_checks(&specs).map_err(|e| Error::usage(e.to_string()))?;
    let report = check::run(env, specs, &clients, concurrency).await;
    let xml = check::junit::render(&report).map_err(|e| Error::infrastructure(e.to_string()))?;
    let junit_sha256 = verify::Digest::of(&xml);
    let event = report.checked_event(check::CheckedOn {
        env: &env_name,
        stack: &environment.stack,
        live: pointer.as_ref(),
        junit,
        junit_sha256: &junit_sha256,
        jenkins: s.jenkins.clone(),
    });
    Ok(CheckRun {
        report,
        junit: xml,
        junit_sha256,
        event,
    })
}

/// Records a run's `checked` event; the entry's seq.
fn record(s: &Stage<'_>, event: verify::ledger::Checked) -> Result<u64, Error> {
    Ok(s.state.ledger().append_event(&s.actor, &event.into())?.seq)
}

/// What a recorded run means beyond its failed checks: when no check reached its target,
/// the environment could not be reached (an outage, not a verdict on the release).
fn unreachable(env: &str, stack: &str, report: &CheckReport) -> Option<Error> {
    report.unreachable().then(|| {
        Error::infrastructure(format!(
            "environment `{env}` could not be reached: every check failed to reach its target"
        ))
        .with_hint(format!(
            "is stack `{stack}` deployed and the Docker Engine up? `release status --env {env}`"
        ))
    })
}

/// Signs the run's test result and attaches it to every image the environment was
/// checked with; the envelope's sha256 and where it went.
async fn attest(
    s: &Stage<'_>,
    client: &registry_client::Client,
    signer: &evidence::Signer,
    report: &CheckReport,
    event: &verify::ledger::Checked,
    junit: &[u8],
) -> Result<(verify::Digest, Vec<evidence::Attached>), Error> {
    let config = s.config;
    let env = report.env.as_str();
    use verify::evidence::{ResourceDescriptor, TestResult};
    if event.digests.is_empty() {
        return Err(Error::usage(format!(
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
        event.version.as_ref().map_or("", verify::Version::as_str),
        time::OffsetDateTime::now_utc(),
        ResourceDescriptor::of_bytes("release.toml", &configuration),
        ResourceDescriptor::of_bytes("junit.xml", junit),
    )
    .with_tests(
        passed.iter().map(|r| r.name.clone()).collect(),
        Vec::new(),
        failed.iter().map(|r| r.name.clone()).collect(),
    );
    let result = match &s.jenkins {
        Some(build) => result.with_url(&build.build_url),
        None => result,
    };
    let subjects = evidence::subjects(config, &event.digests);
    let mut statement = result.to_statement("", "");
    statement.subject = evidence::statement_subjects(&subjects);
    evidence::attach(client, signer, env, &statement, &subjects).await
}

/// A run whose signed result could not be attached ([`attest`]): it is recorded (ledger
/// `seq`) all the same. A usage problem (nothing recorded to attach to) stays one; the rest
/// is the registry's.
fn unattached(env: &str, seq: u64, e: Error) -> Error {
    let kind = if e.kind == Kind::Usage {
        Kind::Usage
    } else {
        Kind::Infrastructure
    };
    let hint = e
        .hint
        .unwrap_or_else(|| "run `release check` again once the registry answers".to_owned());
    Error {
        kind,
        message: format!(
            "the checks of `{env}` ran and are recorded (ledger seq {seq}), but their signed result could not be attached: {}",
            e.message
        ),
        hint: Some(hint),
        ..e
    }
}

/// Runs the environment's checks once without recording them: a blue-green deploy's
/// checks of the idle colour (`project`, its Compose project; through the proxy's preview
/// address when `origin` is `(proxy, preview)`; `pointer` what it must run), and again
/// through the proxy after the switch. The deploy records its own outcome, and
/// `release check` the environment's.
pub async fn run_unrecorded(
    config: &Config,
    env_name: &str,
    origin: Option<(&str, &str)>,
    project: Option<&str>,
    pointer: Option<&EnvPointer>,
) -> Result<CheckReport, Error> {
    let env = config.environment(env_name)?;
    let specs: Vec<CheckSpec> = specs(config, env_name, env, pointer, origin, project)?
        .into_iter()
        .collect();
    let clients =
        check::HttpClients::for_checks(&specs).map_err(|e| Error::usage(e.to_string()))?;
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
pub fn specs(
    config: &Config,
    env_name: &str,
    env: &Environment,
    pointer: Option<&EnvPointer>,
    origin: Option<(&str, &str)>,
    project: Option<&str>,
) -> Result<Vec<CheckSpec>, Error> {
    // A blue-green Swarm environment: the colour being checked, else the one serving.
    let stack = match project {
        Some(p) => p.to_owned(),
        None => crate::live::live_project(config, env_name)?
            .unwrap_or_else(|| format!("{}-blue", env.stack)),
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
                    None => crate::live::live_project(config, env_name)?
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
) -> Result<CheckSpec, Error> {
    let fanout = NodeFanout::new(
        Arc::clone(target),
        config.stack_name(service).to_owned(),
        template,
        probe,
    )
    .map_err(|e| Error::usage(format!("check `{name}`: {e}")))?;
    Ok(CheckSpec {
        name: name.to_owned(),
        service: service.to_owned(),
        timing,
        probe: Probe::Fanout(Box::new(fanout)),
    })
}

fn timing(check: &Check) -> Result<Timing, Error> {
    let t = check.timing();
    let parse = |text: &Option<String>| -> Result<Option<Duration>, Error> {
        text.as_deref()
            .map(config::parse_duration)
            .transpose()
            .map_err(Error::usage)
    };
    Ok(Timing::new(
        parse(&t.timeout)?,
        parse(&t.retry_interval)?,
        parse(&t.deadline)?,
    ))
}

fn http_probe(config: &Config, c: &config::HttpCheck, url: &str) -> Result<HttpProbe, Error> {
    let bad = |what: String| Error::usage(format!("check `{}`: {what}", c.name));
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
            stack_service: config.stack_name(service).to_owned(),
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

#[cfg(test)]
mod tests {
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
