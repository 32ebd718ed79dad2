//! The JUnit XML of a check run, shaped for the Jenkins JUnit plugin:
//! a `<testsuites>` root, one `<testsuite>` per kind of check, `classname` =
//! `check.<env>.<service>` (dots inside names replaced, since the plugin splits packages on
//! dots), the check's human name, and on failure a one-line `message` with the details in
//! the body: target, status, latency, the response excerpt and every attempt.
//!
//! Reports contain no header values: probes never put them into an outcome.

use std::fmt::Write as _;

use junit_report::{ReportBuilder, TestCase, TestSuiteBuilder};

use super::{CheckError, CheckOutcome, CheckReport, Kind};

/// The JUnit document for `report`.
pub fn render(report: &CheckReport) -> Result<Vec<u8>, CheckError> {
    let mut kinds: Vec<Kind> = report.checks.iter().map(|c| c.kind).collect();
    kinds.sort();
    kinds.dedup();
    let mut builder = ReportBuilder::new();
    for kind in kinds {
        let cases = report
            .checks
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| test_case(&report.env, c));
        let suite =
            TestSuiteBuilder::new(&format!("check.{}.{}", segment(&report.env), kind.as_str()))
                .set_timestamp(report.started)
                .add_testcases(cases)
                .build();
        builder.add_testsuite(suite);
    }
    let mut bytes = Vec::new();
    builder
        .build()
        .write_xml(&mut bytes)
        .map_err(|e| CheckError::Junit(e.to_string()))?;
    Ok(bytes)
}

/// `check.<env>.<service>`.
pub fn classname(env: &str, service: &str) -> String {
    format!("check.{}.{}", segment(env), segment(service))
}

fn test_case(env: &str, c: &CheckOutcome) -> TestCase {
    let time = junit_report::Duration::seconds_f64(c.seconds);
    let name = xml_text(&c.name);
    let mut case = match &c.message {
        None => {
            let mut case = TestCase::success(&name, time);
            case.set_system_out(&xml_text(&details(c)));
            case
        }
        Some(message) => {
            let mut case = junit_report::TestCaseBuilder::failure(
                &name,
                time,
                if c.unreachable {
                    "unreachable"
                } else {
                    c.kind.as_str()
                },
                &xml_text(&one_line(message)),
            );
            case.set_trace(&cdata_safe(&xml_text(&details(c))));
            case.build()
        }
    };
    case.set_classname(&classname(env, &c.service));
    case
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

/// Dots split packages in the Jenkins plugin; keep each name one segment.
fn segment(name: &str) -> String {
    name.replace('.', "_")
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Drops characters XML 1.0 cannot carry at all (control characters other than tab and
/// newline), which a response excerpt may contain.
fn xml_text(text: &str) -> String {
    text.chars()
        .filter(|&c| matches!(c, '\t' | '\n' | '\r') || !c.is_control())
        .collect()
}

/// junit-report writes the failure body as one CDATA section without splitting `]]>`.
fn cdata_safe(text: &str) -> String {
    text.replace("]]>", "]] >")
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
