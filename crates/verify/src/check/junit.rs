//! The JUnit XML of a check run, in the shape of [`crate::junit`]: one `<testsuite>` per
//! kind of check, `classname` = `check.<env>.<service>`, the check's human name, and on
//! failure the cause as the message with the details in the body: target, status, latency,
//! the response excerpt and every attempt.
//!
//! Reports contain no header values: probes never put them into an outcome.

use std::fmt::Write as _;

use super::{CheckError, CheckOutcome, CheckReport, Kind};
use crate::junit::{self, Case, Failure, Suite};

/// The JUnit document for `report`.
pub fn render(report: &CheckReport) -> Result<Vec<u8>, CheckError> {
    let mut kinds: Vec<Kind> = report.checks.iter().map(|c| c.kind).collect();
    kinds.sort();
    kinds.dedup();
    let suites: Vec<Suite> = kinds
        .into_iter()
        .map(|kind| Suite {
            name: junit::classname(&["check", &report.env, kind.as_str()]),
            timestamp: report.started,
            cases: report
                .checks
                .iter()
                .filter(|c| c.kind == kind)
                .map(|c| test_case(&report.env, c))
                .collect(),
        })
        .collect();
    junit::render(&suites).map_err(|e| CheckError::Junit(e.to_string()))
}

/// `check.<env>.<service>`.
pub fn classname(env: &str, service: &str) -> String {
    junit::classname(&["check", env, service])
}

fn test_case(env: &str, c: &CheckOutcome) -> Case {
    let failure = c.message.as_ref().map(|message| Failure {
        kind: if c.unreachable {
            "unreachable".to_owned()
        } else {
            c.kind.as_str().to_owned()
        },
        message: message.clone(),
        details: details(c),
    });
    Case {
        classname: classname(env, &c.service),
        name: c.name.clone(),
        seconds: c.seconds,
        output: failure.is_none().then(|| details(c)),
        failure,
    }
}

/// The failure body: what was probed, the last answer, and every attempt.
fn details(c: &CheckOutcome) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "target: {}", c.target);
    if let Some(message) = &c.message {
        let _ = writeln!(out, "cause: {message}");
    }
    if let Some(status) = c.status {
        let _ = writeln!(out, "status: {status}");
    }
    if let Some(ms) = c.latency_ms {
        let _ = writeln!(out, "latency: {ms:.1} ms");
    }
    let _ = writeln!(out, "attempts: {} in {:.2}s", c.attempts.len(), c.seconds);
    for a in &c.attempts {
        let _ = writeln!(
            out,
            "  #{} at +{:.2}s ({:.3}s): {} {}",
            a.n,
            a.at,
            a.seconds,
            if a.passed { "pass" } else { "fail" },
            a.summary
        );
    }
    if let Some(excerpt) = c.excerpt.as_deref().filter(|e| !e.is_empty()) {
        let _ = writeln!(
            out,
            "response excerpt (first {} bytes):\n{excerpt}",
            super::EXCERPT_BYTES
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Attempt;
    use time::OffsetDateTime;

    fn outcome(service: &str, message: Option<&str>) -> CheckOutcome {
        CheckOutcome {
            kind: Kind::Http,
            name: format!("{service} answers /health"),
            service: service.to_owned(),
            target: "GET http://127.0.0.1:1/health".to_owned(),
            passed: message.is_none(),
            unreachable: false,
            message: message.map(str::to_owned),
            status: Some(503),
            latency_ms: Some(1.5),
            excerpt: Some("<b>]]>\u{1}down</b>".to_owned()),
            started: OffsetDateTime::UNIX_EPOCH,
            seconds: 0.25,
            attempts: vec![Attempt {
                n: 1,
                at: 0.0,
                seconds: 0.25,
                passed: message.is_none(),
                summary: "503 Service Unavailable".to_owned(),
            }],
        }
    }

    #[test]
    fn failures_carry_a_one_line_message_and_escaped_details() {
        let report = CheckReport {
            env: "dev.eu".to_owned(),
            started: OffsetDateTime::UNIX_EPOCH,
            seconds: 0.3,
            passed: 1,
            failed: 1,
            checks: vec![
                outcome("admin.app", Some("status 503,\nexpected 200")),
                outcome("api", None),
            ],
        };
        let xml = String::from_utf8(render(&report).unwrap_or_default()).unwrap_or_default();
        assert!(xml.contains("<testsuites>"), "{xml}");
        assert!(
            xml.contains(r#"classname="check.dev_eu.admin_app""#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"message="status 503, expected 200""#),
            "{xml}"
        );
        assert!(xml.contains("]] >"), "{xml}");
        assert!(!xml.contains('\u{1}'), "{xml}");
        assert!(xml.contains(r#"timestamp="1970-01-01T00:00:00Z""#), "{xml}");
    }
}
