//! Smoke and health checks of an environment: the evidence the PROD gate relies on.
//!
//! A [`CheckSpec`] is typed and validated by the caller (the CLI parses `release.toml` at
//! the edge). [`run`] runs every check concurrently, at most `concurrency` at a time, with
//! one HTTP client for all HTTP checks. Each check retries within its own deadline:
//! attempt (bounded by `timeout`), pause `retry_interval`, again, until it passes or the
//! deadline is reached — so "wait until healthy" is bounded, and a check that never
//! passes fails at its deadline, not before. The run takes about as long as its slowest
//! check.
//!
//! An HTTP check whose URL names `{node}` ([`NodeFanout`]) runs once per node where its
//! service has a running task publishing a host-mode port, each as a check of its own.
//!
//! The [`CheckReport`] renders as JUnit ([`junit`]) for Jenkins and serializes to JSON.

mod compose;
mod http;
pub mod junit;
mod lazy;
mod nodes;
mod swarm;
mod tcp;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;
use time::OffsetDateTime;

pub use compose::{ComposeProbe, ComposeTarget};
pub use http::{HttpClients, HttpProbe, mask_password};
pub use nodes::{FanoutError, NODE_PLACEHOLDER, NodeFanout, NodeTarget};
/// The HTTP vocabulary of [`HttpProbe`], so callers need not depend on reqwest.
pub use reqwest::header::{HeaderName, HeaderValue};
pub use reqwest::{Client, Method, Url};
pub use swarm::{SwarmProbe, SwarmTarget};
pub use tcp::TcpProbe;

/// Bytes of a response body kept as an excerpt in reports.
pub const EXCERPT_BYTES: usize = 512;

/// Why checks could not be run at all (a failing check is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("cannot read CA certificate {path}: {reason}")]
    Ca { path: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("cannot encode the JUnit report: {0}")]
    Junit(String),
}

/// The kind of a check; one JUnit test suite per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Http,
    Tcp,
    Swarm,
    Compose,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Http => "http",
            Kind::Tcp => "tcp",
            Kind::Swarm => "swarm",
            Kind::Compose => "compose",
        }
    }
}

/// How long a check may take: each attempt, the pause between attempts, and in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub timeout: Duration,
    pub retry_interval: Duration,
    /// Never shorter than `timeout`: one whole attempt always fits.
    pub deadline: Duration,
}

impl Timing {
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const DEFAULT_RETRY_INTERVAL: Duration = Duration::from_secs(1);

    /// Defaults: a 5 s attempt, 1 s between attempts, and a deadline of one attempt's
    /// timeout unless one is given (attempts that fail sooner are retried within it).
    pub fn new(
        timeout: Option<Duration>,
        retry_interval: Option<Duration>,
        deadline: Option<Duration>,
    ) -> Self {
        let timeout = timeout.unwrap_or(Self::DEFAULT_TIMEOUT);
        Self {
            timeout,
            retry_interval: retry_interval.unwrap_or(Self::DEFAULT_RETRY_INTERVAL),
            deadline: deadline.unwrap_or(timeout).max(timeout),
        }
    }

    /// An upper bound on attempts, for log lines ("attempt n of at most m").
    fn max_attempts(&self) -> u64 {
        let step = self.retry_interval.as_millis().max(1);
        u64::try_from(self.deadline.as_millis() / step)
            .unwrap_or(u64::MAX)
            .saturating_add(1)
    }
}

/// One check, typed and ready to run.
#[derive(Debug, Clone)]
pub struct CheckSpec {
    /// Human name, the JUnit test case name.
    pub name: String,
    /// The project service it concerns (the JUnit classname's last part).
    pub service: String,
    pub timing: Timing,
    pub probe: Probe,
}

/// What one attempt of a check does.
#[derive(Debug, Clone)]
pub enum Probe {
    Http(Box<HttpProbe>),
    Tcp(TcpProbe),
    Swarm(SwarmProbe),
    Compose(ComposeProbe),
    /// An HTTP or TCP check per node; [`run`] expands it into [`Probe::Http`] or
    /// [`Probe::Tcp`] checks when it can.
    Fanout(Box<NodeFanout>),
    /// A check that cannot be run as declared: every attempt fails with `cause`.
    Broken {
        target: String,
        cause: String,
    },
}

impl Probe {
    pub fn kind(&self) -> Kind {
        match self {
            Probe::Http(_) | Probe::Broken { .. } => Kind::Http,
            Probe::Fanout(p) => p.probe.kind(),
            Probe::Tcp(_) => Kind::Tcp,
            Probe::Swarm(_) => Kind::Swarm,
            Probe::Compose(_) => Kind::Compose,
        }
    }

    /// What is probed, for reports: `GET URL`, `host:port`, `stack/service`. Never a
    /// header value.
    pub fn target(&self) -> String {
        match self {
            Probe::Http(p) => p.target(),
            Probe::Tcp(p) => p.address.clone(),
            Probe::Swarm(p) => p.target(),
            Probe::Compose(p) => p.target(),
            Probe::Fanout(p) => p.target(),
            Probe::Broken { target, .. } => target.clone(),
        }
    }

    /// One attempt, ended after `budget` at the latest. An HTTP attempt ends itself on its
    /// request's timeout (connecting, the answer and the body), which lets it say which of
    /// them the time ran out on; the outer bound here is a safety net a little later.
    async fn attempt(&self, clients: &HttpClients, budget: Duration) -> Probed {
        const HTTP_SAFETY_NET: Duration = Duration::from_millis(250);
        let within = human(budget);
        match self {
            Probe::Http(p) => {
                tokio::time::timeout(budget + HTTP_SAFETY_NET, p.attempt(clients, budget))
                    .await
                    .unwrap_or_else(|_| Probed::no_response(budget))
            }
            Probe::Tcp(p) => tokio::time::timeout(budget, p.attempt())
                .await
                .unwrap_or_else(|_| {
                    Probed::timed_out(Probed::unreachable(format!(
                        "cannot connect to {}: no answer within {within}",
                        p.address
                    )))
                }),
            Probe::Fanout(p) => {
                tokio::time::timeout(budget + HTTP_SAFETY_NET, p.attempt(clients, budget))
                    .await
                    .unwrap_or_else(|_| Probed::no_response(budget))
            }
            Probe::Broken { cause, .. } => Probed::fail(cause.clone()),
            Probe::Swarm(p) => tokio::time::timeout(budget, p.attempt())
                .await
                .unwrap_or_else(|_| {
                    Probed::timed_out(Probed::unreachable(format!(
                        "the Docker Engine did not answer within {within}"
                    )))
                }),
            Probe::Compose(p) => tokio::time::timeout(budget, p.attempt())
                .await
                .unwrap_or_else(|_| {
                    Probed::timed_out(Probed::unreachable(format!(
                        "the Docker Engine did not answer within {within}"
                    )))
                }),
        }
    }
}

/// The result of one attempt, as a probe reports it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Probed {
    /// One-line cause when the attempt failed.
    pub failure: Option<String>,
    /// The failure is that the target could not be reached at all (refused, no engine).
    pub unreachable: bool,
    /// The attempt ran out of its time budget before an answer.
    pub timed_out: bool,
    /// What was observed, one line: `200 OK in 3 ms`.
    pub summary: String,
    /// HTTP status, when a response came.
    pub status: Option<u16>,
    pub latency: Option<Duration>,
    /// The first [`EXCERPT_BYTES`] of the response body.
    pub excerpt: Option<String>,
}

impl Probed {
    pub(crate) fn fail(cause: impl Into<String>) -> Self {
        let cause = cause.into();
        Self {
            summary: cause.clone(),
            failure: Some(cause),
            ..Self::default()
        }
    }

    pub(crate) fn unreachable(cause: impl Into<String>) -> Self {
        Self {
            unreachable: true,
            ..Self::fail(cause)
        }
    }

    /// `probed`, marked as having run out of its time budget.
    pub(crate) fn timed_out(probed: Self) -> Self {
        Self {
            timed_out: true,
            ..probed
        }
    }

    /// An HTTP request that got no response within `budget`.
    pub(crate) fn no_response(budget: Duration) -> Self {
        Self::timed_out(Self::fail(format!("no response within {}", human(budget))))
    }
}

/// One attempt of a check, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub n: u64,
    /// Seconds after the check started.
    pub at: f64,
    pub seconds: f64,
    pub passed: bool,
    /// What was observed, or why it failed.
    pub summary: String,
}

/// How one check ended.
#[derive(Debug, Clone, Serialize)]
pub struct CheckOutcome {
    pub kind: Kind,
    pub name: String,
    pub service: String,
    pub target: String,
    pub passed: bool,
    /// Failed because the target could not be reached at all.
    pub unreachable: bool,
    /// One-line cause of a failure.
    pub message: Option<String>,
    pub status: Option<u16>,
    pub latency_ms: Option<f64>,
    /// Bounded excerpt of the last response body.
    pub excerpt: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    pub seconds: f64,
    pub attempts: Vec<Attempt>,
}

/// The result of running an environment's checks.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub env: String,
    #[serde(with = "time::serde::rfc3339")]
    pub started: OffsetDateTime,
    /// Wall time of the whole run.
    pub seconds: f64,
    pub passed: usize,
    pub failed: usize,
    pub checks: Vec<CheckOutcome>,
}

/// Where a check run ran and what it was about, for its ledger entry.
#[derive(Debug, Clone)]
pub struct CheckedOn<'a> {
    pub env: &'a crate::EnvName,
    /// The environment's stack (or project).
    pub stack: &'a str,
    /// What the environment's pointer said was live when the checks ran, if anything.
    pub live: Option<&'a crate::EnvPointer>,
    /// Where the JUnit file was written, if it was.
    pub junit: Option<&'a std::path::Path>,
    /// sha256 of the JUnit XML, written or not.
    pub junit_sha256: &'a crate::Digest,
    pub jenkins: Option<crate::JenkinsBuild>,
}

impl CheckReport {
    /// The `checked` ledger event of this run: the digests it vouches for (the pointer's),
    /// its counts and failed checks, its JUnit and whether nothing could be reached. The
    /// promotion gate later reads exactly these fields.
    pub fn checked_event(&self, on: CheckedOn<'_>) -> crate::ledger::Checked {
        crate::ledger::Checked {
            attestation: None,
            digests: on.live.map(|p| p.digests.clone()).unwrap_or_default(),
            env: on.env.clone(),
            failed: self.failed as u64,
            failed_checks: self
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| c.name.clone())
                .collect(),
            jenkins: on.jenkins,
            junit: on.junit.map(|p| p.display().to_string()),
            junit_sha256: on.junit_sha256.as_str().to_owned(),
            passed: self.passed as u64,
            seconds: self.seconds,
            stack: on.stack.to_owned(),
            unreachable: self.unreachable(),
            version: on.live.map(|p| p.version.clone()),
        }
    }

    /// Every check failed because nothing could be reached: an infrastructure problem
    /// (engine down, stack not deployed, connections refused or unanswered), not a verdict
    /// on the release. A certificate the client does not trust is a verdict.
    pub fn unreachable(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.unreachable)
    }

    /// The slowest single check, in seconds.
    pub fn slowest(&self) -> f64 {
        self.checks.iter().map(|c| c.seconds).fold(0.0, f64::max)
    }
}

/// Runs `checks` concurrently, at most `concurrency` at a time, the HTTP checks through
/// `clients` (built for them by [`HttpClients::for_checks`]). Outcomes are in the order of
/// `checks`, a fan-out check's per-node outcomes in its place, by hostname.
pub async fn run(
    env: &str,
    checks: Vec<CheckSpec>,
    clients: &HttpClients,
    concurrency: usize,
) -> CheckReport {
    let started = OffsetDateTime::now_utc();
    let clock = Instant::now();
    let checks = nodes::expand(checks).await;
    // Unordered, so a slow check holds only its own slot: an ordered buffer keeps every
    // finished check's slot until all checks before it have finished too.
    let mut outcomes: Vec<(usize, CheckOutcome)> =
        futures_util::stream::iter(checks.into_iter().enumerate())
            .map(|(i, spec)| async move { (i, run_one(spec, clients).await) })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
    outcomes.sort_by_key(|(i, _)| *i);
    let outcomes: Vec<CheckOutcome> = outcomes.into_iter().map(|(_, c)| c).collect();
    let passed = outcomes.iter().filter(|c| c.passed).count();
    CheckReport {
        env: env.to_owned(),
        started,
        seconds: clock.elapsed().as_secs_f64(),
        passed,
        failed: outcomes.len() - passed,
        checks: outcomes,
    }
}

/// Attempts until the check passes or its deadline is reached.
async fn run_one(spec: CheckSpec, clients: &HttpClients) -> CheckOutcome {
    let started = OffsetDateTime::now_utc();
    let clock = Instant::now();
    let deadline = clock + spec.timing.deadline;
    let max = spec.timing.max_attempts();
    let mut attempts = Vec::new();
    let mut last = Probed::default();
    for n in 1.. {
        let at = clock.elapsed();
        let remaining = deadline.saturating_duration_since(Instant::now());
        if n > 1 && remaining.is_zero() {
            break;
        }
        // The deadline always fits the first attempt whole (`remaining` is already a few
        // microseconds short of it, which would make a "500ms" timeout read "499ms").
        let budget = if n == 1 {
            spec.timing.timeout
        } else {
            spec.timing
                .timeout
                .min(remaining.max(Duration::from_millis(1)))
        };
        let t0 = Instant::now();
        let probed = spec.probe.attempt(clients, budget).await;
        let passed = probed.failure.is_none();
        tracing::debug!(
            check = %spec.name,
            "attempt {n} of at most {max}: {}",
            probed.summary
        );
        attempts.push(Attempt {
            n,
            at: at.as_secs_f64(),
            seconds: t0.elapsed().as_secs_f64(),
            passed,
            summary: probed.summary.clone(),
        });
        // The deadline may leave the last attempt a sliver of its timeout; when that runs
        // out, the full attempt before it (its status, latency, excerpt) is the better
        // cause. Every attempt stays listed.
        let cut_short = budget < spec.timing.timeout;
        if passed || n == 1 || !(cut_short && probed.timed_out) {
            last = probed;
        }
        if passed {
            break;
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        tracing::info!(
            check = %spec.name,
            "attempt {n} of at most {max} failed ({}); retrying in {}",
            last.summary,
            human(spec.timing.retry_interval.min(remaining))
        );
        tokio::time::sleep(spec.timing.retry_interval.min(remaining)).await;
    }
    let seconds = clock.elapsed().as_secs_f64();
    let message = last.failure.as_ref().map(|cause| {
        if attempts.len() > 1 {
            format!(
                "{cause} (after {} attempts in {seconds:.1}s)",
                attempts.len()
            )
        } else {
            cause.clone()
        }
    });
    CheckOutcome {
        kind: spec.probe.kind(),
        target: spec.probe.target(),
        name: spec.name,
        service: spec.service,
        passed: last.failure.is_none(),
        unreachable: last.unreachable,
        message,
        status: last.status,
        latency_ms: last.latency.map(|l| l.as_secs_f64() * 1000.0),
        excerpt: last.excerpt,
        started,
        seconds,
        attempts,
    }
}

/// `1.5s`, `250ms`: short human durations for messages.
pub(crate) fn human(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// `2.5ms`, `31ms`, `1.5s`: a measured time, with a decimal below 10 ms where `human`
/// would round a fast answer to `0ms`.
pub fn human_elapsed(d: Duration) -> String {
    if d < Duration::from_millis(10) {
        format!("{:.1}ms", d.as_secs_f64() * 1000.0)
    } else {
        human(d)
    }
}

/// The first `max` bytes of `bytes` as text, cut at a character boundary.
pub(crate) fn excerpt(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).into_owned();
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    /// The `checked` entry vouches for the digests the pointer says are live, names the
    /// failed checks, and says when nothing could be reached: the fields the gate reads.
    #[test]
    fn a_check_run_becomes_its_checked_event() {
        let outcome = |name: &str, passed: bool| CheckOutcome {
            kind: Kind::Http,
            name: name.to_owned(),
            service: "api".to_owned(),
            target: "http://127.0.0.1:1/health".to_owned(),
            passed,
            unreachable: !passed,
            message: None,
            status: None,
            latency_ms: None,
            excerpt: None,
            started: OffsetDateTime::UNIX_EPOCH,
            seconds: 0.1,
            attempts: Vec::new(),
        };
        let report = CheckReport {
            env: "dev".to_owned(),
            started: OffsetDateTime::UNIX_EPOCH,
            seconds: 1.5,
            passed: 1,
            failed: 1,
            checks: vec![outcome("health", true), outcome("login", false)],
        };
        let env = crate::EnvName::parse("dev").unwrap();
        let digest = crate::Digest::of(b"api");
        let pointer = crate::EnvPointer {
            env: env.clone(),
            version: crate::Version::parse("1.2.0").unwrap(),
            digests: [(crate::ServiceName::parse("api").unwrap(), digest.clone())].into(),
            updated: OffsetDateTime::UNIX_EPOCH,
            actor: "t".to_owned(),
        };
        let junit = crate::Digest::of(b"<testsuites/>");
        let event = report.checked_event(CheckedOn {
            env: &env,
            stack: "hestino-dev",
            live: Some(&pointer),
            junit: None,
            junit_sha256: &junit,
            jenkins: None,
        });
        assert_eq!(event.digests["api"], digest);
        assert_eq!(
            event.version.as_ref().map(crate::Version::as_str),
            Some("1.2.0")
        );
        assert_eq!((event.passed, event.failed), (1, 1));
        assert_eq!(event.failed_checks, ["login"]);
        assert!(!event.unreachable, "one check reached its target");
        assert_eq!(event.junit_sha256, junit.as_str());
        assert_eq!(event.stack, "hestino-dev");

        let nothing = report.checked_event(CheckedOn {
            env: &env,
            stack: "hestino-dev",
            live: None,
            junit: None,
            junit_sha256: &junit,
            jenkins: None,
        });
        assert!(nothing.digests.is_empty() && nothing.version.is_none());
    }

    /// A real HTTP server on loopback: `/slow` answers after `delay`, `/unavailable` answers
    /// 503 after `delay`, `/echo` answers with the request's header lines, anything else
    /// `ok` at once.
    fn server(delay: Duration) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let mut headers = String::new();
                    let mut header = String::new();
                    while reader
                        .read_line(&mut header)
                        .map(|n| n > 2)
                        .unwrap_or(false)
                    {
                        headers.push_str(&header);
                        header.clear();
                    }
                    if line.contains("/slow") || line.contains("/unavailable") {
                        std::thread::sleep(delay);
                    }
                    let (status, body) = if line.contains("/unavailable") {
                        ("503 Service Unavailable", "down".to_owned())
                    } else if line.contains("/echo") {
                        ("200 OK", headers)
                    } else {
                        ("200 OK", "ok".to_owned())
                    };
                    let mut stream = stream;
                    let _ = stream.write_all(
                        format!(
                            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                        .as_bytes(),
                    );
                });
            }
        });
        addr
    }

    fn http_check(name: &str, url: &str) -> CheckSpec {
        CheckSpec {
            name: name.to_owned(),
            service: "api".to_owned(),
            timing: Timing::new(Some(Duration::from_secs(5)), None, None),
            probe: Probe::Http(Box::new(HttpProbe::new(
                Method::GET,
                Url::parse(url).expect("URL"),
                200,
            ))),
        }
    }

    #[tokio::test]
    async fn a_slow_check_holds_only_its_own_slot_and_the_report_keeps_the_order() {
        let delay = Duration::from_secs(2);
        let addr = server(delay);
        let mut checks = vec![http_check("slow", &format!("http://{addr}/slow"))];
        for i in 0..5 {
            checks.push(http_check(
                &format!("fast {i}"),
                &format!("http://{addr}/fast"),
            ));
        }
        let clients = HttpClients::for_checks(&checks).expect("clients");
        let report = run("dev", checks, &clients, 2).await;

        assert_eq!(report.passed, 6, "{report:#?}");
        let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["slow", "fast 0", "fast 1", "fast 2", "fast 3", "fast 4"]
        );
        // Two slots: the slow check keeps one, the five fast ones pass through the other
        // long before it answers.
        for fast in &report.checks[1..] {
            let waited = (fast.started - report.started).as_seconds_f64();
            assert!(
                waited < delay.as_secs_f64() / 2.0,
                "{} started {waited:.3}s into the run: it waited for the slow check",
                fast.name
            );
        }
        assert!(report.checks[0].seconds >= delay.as_secs_f64());
    }

    #[tokio::test]
    async fn an_attempt_the_deadline_cuts_short_does_not_hide_the_answer_before_it() {
        // Each attempt gets its 503 after 500 ms; the third starts at ~1.1 s with ~400 ms
        // left of the 1.5 s deadline (of a 600 ms timeout) and runs out. The second may
        // end up to ~350 ms late and there is still a third.
        let addr = server(Duration::from_millis(500));
        let mut check = http_check("down", &format!("http://{addr}/unavailable"));
        check.timing = Timing::new(
            Some(Duration::from_millis(600)),
            Some(Duration::from_millis(50)),
            Some(Duration::from_millis(1500)),
        );
        let checks = vec![check];
        let clients = HttpClients::for_checks(&checks).expect("clients");
        let report = run("dev", checks, &clients, 1).await;
        let c = &report.checks[0];

        assert_eq!(c.attempts.len(), 3, "{c:#?}");
        let cut = &c.attempts[2];
        assert!(cut.summary.starts_with("no response within"), "{c:#?}");
        assert!(cut.seconds < 0.59, "not cut short: {c:#?}");
        // The cause is the last full attempt's answer, not the sliver's timeout.
        assert_eq!(c.status, Some(503), "{c:#?}");
        assert_eq!(c.excerpt.as_deref(), Some("down"), "{c:#?}");
        let message = c.message.as_deref().unwrap_or_default();
        assert!(
            message.starts_with("status 503, expected 200 (after 3 attempts"),
            "{message}"
        );
        assert!(!c.unreachable);
        assert!((1.45..2.2).contains(&c.seconds), "{c:#?}");
    }

    #[tokio::test]
    async fn a_server_that_echoes_a_secret_header_shows_it_masked() {
        let addr = server(Duration::ZERO);
        let probe = HttpProbe::new(
            Method::GET,
            Url::parse(&format!("http://{addr}/echo")).expect("URL"),
            200,
        )
        .secret_header(
            HeaderName::from_static("authorization"),
            HeaderValue::from_static("Bearer canary-secret"),
        );
        let mut probe = probe;
        probe.body_contains = Some("healthy".to_owned());
        let check = CheckSpec {
            probe: Probe::Http(Box::new(probe)),
            ..http_check("echo", "http://unused")
        };
        let checks = vec![check];
        let clients = HttpClients::for_checks(&checks).expect("clients");
        let report = run("dev", checks, &clients, 1).await;
        let c = &report.checks[0];
        assert!(!c.passed);
        let excerpt = c.excerpt.as_deref().unwrap_or_default();
        assert!(excerpt.contains("authorization: ***"), "{excerpt}");
        let everything = format!("{report:?}");
        assert!(!everything.contains("canary-secret"), "{everything}");
    }

    /// A listener whose accept queue is full: the kernel drops further connection attempts
    /// without an answer, as a firewall that drops packets does. The returned streams keep
    /// the queue full.
    fn silent_address() -> (String, tokio::net::TcpListener, Vec<std::net::TcpStream>) {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.1:0".parse().expect("address"))
            .expect("bind");
        let listener = socket.listen(0).expect("listen");
        let addr = listener.local_addr().expect("address");
        let mut queued = Vec::new();
        for _ in 0..8 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(stream) => queued.push(stream),
                Err(_) => return (addr.to_string(), listener, queued),
            }
        }
        panic!("the accept queue of {addr} never filled");
    }

    /// A server that accepts connections, keeps them open and never says anything.
    fn mute_server() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        std::thread::spawn(move || {
            let held: Vec<std::net::TcpStream> = listener.incoming().flatten().collect();
            drop(held);
        });
        addr
    }

    #[tokio::test]
    async fn a_connection_nobody_answers_is_out_of_reach_a_server_that_does_not_answer_is_not() {
        let (silent, _listener, _queued) = silent_address();
        let mute = mute_server();
        let timing = Timing::new(Some(Duration::from_secs(1)), None, None);
        let with = |probe: Probe| CheckSpec {
            name: probe.target(),
            service: "api".to_owned(),
            timing,
            probe,
        };
        let http = |url: String| {
            with(Probe::Http(Box::new(HttpProbe::new(
                Method::GET,
                Url::parse(&url).expect("URL"),
                200,
            ))))
        };
        let checks = vec![
            http(format!("http://{silent}/health")),
            with(Probe::Tcp(TcpProbe {
                address: silent.clone(),
            })),
            with(Probe::Swarm(SwarmProbe {
                target: SwarmTarget::new(
                    engine::Endpoint::new(&format!("tcp://{silent}"), None).expect("endpoint"),
                    "shop",
                ),
                stack_service: "api".to_owned(),
                expected_digest: None,
                internal: false,
            })),
            http(format!("http://{mute}/health")),
            http(format!("https://{mute}/health")),
        ];
        let clients = HttpClients::for_checks(&checks).expect("clients");
        let report = run("dev", checks.clone(), &clients, 8).await;
        let outcome = |i: usize| {
            let c = &report.checks[i];
            assert_eq!(c.attempts.len(), 1, "{c:#?}");
            let took = c.attempts[0].seconds;
            assert!((0.95..1.6).contains(&took), "{c:#?}");
            (c.unreachable, c.message.clone().unwrap_or_default())
        };

        // Connection attempts that get no answer: out of reach, whatever the kind.
        let within = "no answer within 1.0s";
        assert_eq!(
            outcome(0),
            (true, format!("cannot connect to {silent}: {within}"))
        );
        assert_eq!(
            outcome(1),
            (true, format!("cannot connect to {silent}: {within}"))
        );
        assert_eq!(
            outcome(2),
            (
                true,
                "the Docker Engine did not answer within 1.0s".to_owned()
            )
        );
        // A server that took the connection and says nothing, in HTTP or in the TLS
        // handshake, was reached: a failure.
        let silence = (false, "no response within 1.0s".to_owned());
        assert_eq!(outcome(3), silence);
        assert_eq!(outcome(4), silence);
        assert!(!report.unreachable());

        // Only what cannot be reached: the environment is out of reach (exit 3).
        let clients = HttpClients::for_checks(&checks[..3]).expect("clients");
        let report = run("dev", checks[..3].to_vec(), &clients, 8).await;
        assert!(report.unreachable(), "{report:#?}");
    }

    #[test]
    fn the_deadline_always_fits_one_attempt() {
        let t = Timing::new(
            Some(Duration::from_secs(2)),
            None,
            Some(Duration::from_secs(1)),
        );
        assert_eq!(t.deadline, Duration::from_secs(2));
        let t = Timing::new(None, None, None);
        assert_eq!(t.deadline, Timing::DEFAULT_TIMEOUT);
        assert_eq!(t.max_attempts(), 6);
    }

    #[test]
    fn excerpts_are_bounded_and_valid_text() {
        let body = "é".repeat(400);
        let e = excerpt(body.as_bytes(), EXCERPT_BYTES);
        assert!(e.len() <= EXCERPT_BYTES);
        assert!(e.chars().all(|c| c == 'é'));
    }
}
