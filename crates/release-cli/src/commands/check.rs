//! `release check --env E`: run the environment's smoke and health checks, write JUnit,
//! record a `checked` ledger entry ([`pipeline::checks::check`], which also signs the
//! result); this module wires the keys and prints the report.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use verify::check::{self, CheckReport};

use super::{keys, stage};
use crate::cli::{CheckArgs, Global};
use crate::exit::{Code, Failure};

/// The `--json` document: the run, and what was recorded.
#[derive(Debug, Serialize)]
struct Output<'a> {
    // `env` comes from the flattened report.
    stack: &'a str,
    /// The version recorded for the environment, if any.
    version: Option<&'a str>,
    digests: BTreeMap<verify::ServiceName, verify::Digest>,
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
    // A signing key that cannot be read stops the run before any check: nothing is
    // recorded unsigned by accident.
    let signer = keys::signer(&config, &args.env)?;
    let client = signer
        .as_ref()
        .map(|_| stage::registry_client(&config))
        .transpose()?;
    let state = stage::state_dir(global, &config)?;
    let quiet = |_: engine::Progress<'_>| {};
    let on = stage::of(&config, &state, &quiet);
    let request = pipeline::checks::Request {
        env: &args.env,
        concurrency: usize::from(args.concurrency),
        junit: args.junit.as_deref(),
    };
    let signing = signer.as_ref().zip(client.as_ref()).map(|(s, c)| (c, s));
    let recorded = pipeline::checks::check(&on, request, signing).await?;
    let report = &recorded.report;
    if global.json {
        super::print_json(&Output {
            stack: &env.stack,
            version: recorded.version.as_ref().map(verify::Version::as_str),
            digests: recorded.digests.clone(),
            unreachable: report.unreachable(),
            slowest: report.slowest(),
            junit: args.junit.as_deref(),
            junit_sha256: recorded.junit_sha256.as_str(),
            ledger_seq: recorded.seq,
            report,
        })?;
    } else {
        print!("{}", table(report));
        println!("{}", summary(report, args.junit.as_deref()));
        if let Some((envelope, attached)) = &recorded.attested {
            println!(
                "signed test result {envelope} attached to {} image(s)",
                attached.len()
            );
        }
    }
    if let Some(failure) = recorded.failure {
        return Err(Failure::from(failure).reported());
    }
    Ok(if report.failed == 0 {
        Code::Success
    } else {
        Code::Negative
    })
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
    let mut rows = vec![super::header(&[
        "KIND", "SERVICE", "CHECK", "RESULT", "TIME", "ATTEMPTS", "DETAIL",
    ])];
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
        let digests = BTreeMap::from([(
            verify::ServiceName::parse("api").unwrap(),
            verify::Digest::parse(&format!("sha256:{}", "a".repeat(64))).unwrap(),
        )]);
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
