//! JUnit, the report every stage gives Jenkins: one suite per stage run (`verify::junit`),
//! written atomically with its directory created.

use pipeline::deploy::Report;
use verify::gate::Verdict;
use verify::junit::{self, Case, Suite};

use crate::exit::Failure;

/// Writes JUnit suites (`verify::junit`) atomically, creating the directory: a stage that
/// ran must not be reported as failed (exit 3) for want of `target/junit/`.
pub fn write(path: &std::path::Path, suites: &[verify::junit::Suite]) -> Result<(), Failure> {
    let xml = verify::junit::render(suites)
        .map_err(|e| pipeline::Error::infrastructure(e.to_string()))?;
    Ok(pipeline::stage::write_junit(path, &xml)?)
}

/// The moment a stage that has run for `seconds` started.
pub fn started_ago(seconds: f64) -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() - time::Duration::seconds_f64(seconds)
}

/// One JUnit test case per service of the rendered stack (`classname` `deploy.<env>`), in
/// the shape every stage writes (`verify::junit`).
pub fn of_deploy(report: &Report) -> Suite {
    let classname = junit::classname(&["deploy", report.env.as_str()]);
    let cases = report
        .services
        .iter()
        .map(|s| Case {
            classname: classname.clone(),
            name: format!("{} runs {}", s.service, s.image),
            seconds: s.seconds,
            failure: match s.result {
                "converged" | "unchanged" => None,
                other => {
                    let cause = s.cause.clone().unwrap_or_else(|| other.to_owned());
                    Some(junit::Failure {
                        kind: other.to_owned(),
                        message: cause.clone(),
                        details: cause,
                    })
                }
            },
            output: Some(s.result.to_owned()),
        })
        .collect();
    Suite {
        name: format!("deploy {} to {}", report.version, report.env),
        timestamp: started_ago(report.seconds),
        cases,
    }
}

/// One test case per gate condition, in a suite named after the promotion.
pub fn of_gate(env: &str, version: &str, verdict: &Verdict) -> Suite {
    let classname = junit::classname(&["gate", env]);
    let cases = verdict
        .conditions
        .iter()
        .map(|c| Case {
            classname: classname.clone(),
            name: c.name.to_string(),
            seconds: 0.0,
            failure: (!c.passed).then(|| junit::Failure {
                kind: "gate".to_owned(),
                message: c.detail.clone(),
                details: c.detail.clone(),
            }),
            output: c.passed.then(|| c.detail.clone()),
        })
        .collect();
    Suite {
        name: format!("promote {version} to {env}"),
        timestamp: time::OffsetDateTime::now_utc(),
        cases,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use pipeline::deploy::ServiceReport;
    use std::path::PathBuf;

    #[test]
    fn junit_has_one_case_per_service_with_the_failure_cause() {
        let service = |name: &str, result, cause: Option<&str>| ServiceReport {
            service: name.to_owned(),
            image: format!("r.example.com/t/{name}:1.2.0@sha256:{}", "a".repeat(64)),
            changed: true,
            result,
            cause: cause.map(str::to_owned),
            seconds: 1.5,
        };
        let report = Report {
            env: "dev".parse().unwrap(),
            stack: "t-dev".into(),
            version: "1.2.0".parse().unwrap(),
            previous_version: Some("1.1.0".parse().unwrap()),
            outcome: "deploy-failed",
            rendered_stack: PathBuf::from("stacks/dev/1.2.0.yml"),
            seconds: 9.0,
            services: vec![
                service(
                    "api",
                    "failed",
                    Some("task x failed; exit code 3; health check: exit 1: unhealthy"),
                ),
                service("worker", "converged", None),
            ],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deploy.xml");
        write(&path, &[of_deploy(&report)]).unwrap();
        let xml = std::fs::read_to_string(&path).unwrap();
        insta::with_settings!({filters => vec![(r#"timestamp="[^"]*""#, r#"timestamp="[time]""#)]}, {
            insta::assert_snapshot!(xml);
        });
    }
}
