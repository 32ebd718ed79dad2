//! JUnit XML for the Jenkins JUnit plugin: the one shape every stage writes (`release
//! check`, `deploy`, `rollback`, `promote`).
//!
//! - a `<testsuites>` root, every suite timestamped;
//! - a `classname` made of dot-free segments joined by dots (the plugin reads dots as
//!   packages, so `check.dev.eu.api` would become four levels): see [`classname`];
//! - on failure a one-line `message` (the plugin's summary line) and the details in the
//!   body;
//! - no character XML 1.0 cannot carry (a response excerpt or a Docker error may hold
//!   control characters), and no `]]>` in a body (junit-report writes a body as one
//!   CDATA section without splitting it).
//!
//! Callers never put secret values into a case: the text here is written as given.

use junit_report::{ReportBuilder, TestCase, TestCaseBuilder, TestSuiteBuilder};
use time::OffsetDateTime;

/// One `<testsuite>`.
#[derive(Debug, Clone)]
pub struct Suite {
    pub name: String,
    pub timestamp: OffsetDateTime,
    pub cases: Vec<Case>,
}

/// One `<testcase>`.
#[derive(Debug, Clone)]
pub struct Case {
    /// Build it with [`classname`].
    pub classname: String,
    pub name: String,
    pub seconds: f64,
    /// `None` for a pass.
    pub failure: Option<Failure>,
    /// What a passing case reports (`<system-out>`); a failure carries its details instead.
    pub output: Option<String>,
}

/// Why a case failed.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The `type` attribute: the kind of failure (`http`, `unreachable`, `gate`, `failed`).
    pub kind: String,
    /// Made one line when written.
    pub message: String,
    /// The body.
    pub details: String,
}

/// JUnit XML could not be encoded.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode JUnit XML: {0}")]
pub struct JunitError(String);

/// `segments` joined by dots, dots inside a segment replaced by `_`:
/// `classname(&["check", "dev.eu", "api"])` is `check.dev_eu.api`.
pub fn classname(segments: &[&str]) -> String {
    segments
        .iter()
        .map(|s| s.replace('.', "_"))
        .collect::<Vec<_>>()
        .join(".")
}

/// The document for `suites`.
pub fn render(suites: &[Suite]) -> Result<Vec<u8>, JunitError> {
    let mut builder = ReportBuilder::new();
    for suite in suites {
        let cases = suite.cases.iter().map(test_case);
        builder.add_testsuite(
            TestSuiteBuilder::new(&xml_text(&suite.name))
                .set_timestamp(suite.timestamp)
                .add_testcases(cases)
                .build(),
        );
    }
    let mut bytes = Vec::new();
    builder
        .build()
        .write_xml(&mut bytes)
        .map_err(|e| JunitError(e.to_string()))?;
    Ok(bytes)
}

fn test_case(c: &Case) -> TestCase {
    let time = junit_report::Duration::seconds_f64(c.seconds);
    let name = xml_text(&c.name);
    let mut case = match &c.failure {
        None => {
            let mut case = TestCase::success(&name, time);
            if let Some(output) = &c.output {
                case.set_system_out(&body(output));
            }
            case
        }
        Some(f) => {
            let mut case = TestCaseBuilder::failure(
                &name,
                time,
                &xml_text(&f.kind),
                &xml_text(&one_line(&f.message)),
            );
            case.set_trace(&body(&f.details));
            case.build()
        }
    };
    case.set_classname(&c.classname);
    case
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Drops the characters XML 1.0 cannot carry at all (control characters other than tab,
/// newline and carriage return).
fn xml_text(text: &str) -> String {
    text.chars()
        .filter(|&c| matches!(c, '\t' | '\n' | '\r') || !c.is_control())
        .collect()
}

/// Text for a body (`<system-out>`, a failure's trace), which junit-report writes as one
/// CDATA section: XML-safe characters, and no `]]>` to end the section early.
fn body(text: &str) -> String {
    xml_text(text).replace("]]>", "]] >")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite(cases: Vec<Case>) -> Suite {
        Suite {
            name: "deploy 1.0.0 to dev.eu".to_owned(),
            timestamp: OffsetDateTime::UNIX_EPOCH,
            cases,
        }
    }

    fn case(name: &str, failure: Option<Failure>) -> Case {
        Case {
            classname: classname(&["deploy", "dev.eu"]),
            name: name.to_owned(),
            seconds: 1.5,
            failure,
            output: Some("converged\u{7} after 1.5s ]]> <b>".to_owned()),
        }
    }

    fn xml(suites: &[Suite]) -> String {
        String::from_utf8(render(suites).expect("renders")).expect("UTF-8")
    }

    #[test]
    fn classnames_keep_one_segment_per_name() {
        assert_eq!(
            classname(&["check", "dev.eu", "admin.app"]),
            "check.dev_eu.admin_app"
        );
        assert_eq!(classname(&["gate", "prod"]), "gate.prod");
    }

    #[test]
    fn a_failure_has_a_one_line_message_and_a_safe_body() {
        let out = xml(&[suite(vec![
            case("api runs r/api@sha256:1", None),
            case(
                "worker runs r/worker@sha256:2",
                Some(Failure {
                    kind: "failed".to_owned(),
                    message: "task exited\n  with code 3".to_owned(),
                    details: "log: ]]> \u{1b}[31mred\u{1b}[0m".to_owned(),
                }),
            ),
        ])]);
        assert!(out.contains("<testsuites>"), "{out}");
        assert!(out.contains(r#"classname="deploy.dev_eu""#), "{out}");
        assert!(out.contains(r#"timestamp="1970-01-01T00:00:00Z""#), "{out}");
        assert!(out.contains(r#"type="failed""#), "{out}");
        assert!(
            out.contains(r#"message="task exited with code 3""#),
            "{out}"
        );
        // Both bodies (the passing case's output, the failure's details) held a `]]>`:
        // every one left in the document ends one of the CDATA sections.
        assert_eq!(out.matches("]] >").count(), 2, "{out}");
        assert_eq!(
            out.matches("]]>").count(),
            out.matches("<![CDATA[").count(),
            "{out}"
        );
        assert!(!out.chars().any(|c| c == '\u{1b}' || c == '\u{7}'), "{out}");
        assert_eq!(out.matches("<failure").count(), 1, "{out}");
        assert_eq!(out.matches("<system-out>").count(), 1, "{out}");
    }
}
