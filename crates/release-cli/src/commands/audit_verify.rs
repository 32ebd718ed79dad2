//! `release audit verify`: is the ledger intact (its hash chain, the release manifests it
//! names, its signed head), and is its head the one archived?

use std::collections::BTreeMap;

use verify::StateDir;
use verify::audit;

use crate::cli::{AuditVerifyArgs, Global};
use crate::exit::{Code, Failure};
use config::Config;

pub fn run(
    global: &Global,
    config: &Config,
    state: &StateDir,
    args: &AuditVerifyArgs,
) -> Result<Code, Failure> {
    let head_trust = super::keys::ledger_trust(config)?;
    let report = audit::verify_records(state, head_trust.as_ref())?;
    let head_mismatch = match (&args.expect_head, &report.head) {
        (Some(expected), Some(head)) => (expected != head).then(|| head.clone()),
        (Some(_), None) => Some("none (empty ledger)".to_owned()),
        (None, _) => None,
    };
    let intact = report.is_intact() && head_mismatch.is_none();
    if global.json {
        let mut value = serde_json::to_value(&report).map_err(|e| {
            pipeline::Error::infrastructure(format!("cannot encode JSON output: {e}"))
        })?;
        value["intact"] = serde_json::json!(intact);
        value["expected_head"] = serde_json::json!(args.expect_head);
        if let Some(problem) = report.signed_head.as_ref().and_then(|h| h.problem.as_ref()) {
            value["signed_head"]["message"] = serde_json::json!(problem.to_string());
        }
        super::print_json(&value)?;
    } else {
        let mut lines = BTreeMap::new();
        lines.insert(0, format!("ledger: {} entries", report.entries));
        match &report.chain_break {
            None => lines.insert(1, "chain: intact".to_owned()),
            Some(b) => lines.insert(
                1,
                format!(
                    "chain: BROKEN at line {}{}: {}",
                    b.line,
                    b.seq.map(|s| format!(" (seq {s})")).unwrap_or_default(),
                    b.problem
                ),
            ),
        };
        lines.insert(
            2,
            format!("manifests: {} checked", report.manifests_checked),
        );
        for (i, p) in report.manifest_problems.iter().enumerate() {
            let seq = p
                .seq
                .map(|s| format!(" (released at seq {s})"))
                .unwrap_or_default();
            lines.insert(3 + i, format!("manifest {}{seq}: {}", p.version, p.problem));
        }
        for line in lines.values() {
            println!("{line}");
        }
        println!(
            "head: {}",
            report.head.as_deref().unwrap_or("none (empty ledger)")
        );
        match &report.signed_head {
            None => {}
            Some(check) => match (&check.problem, &check.signed_by, &check.head) {
                (None, Some(key), Some(head)) => println!(
                    "signed head: valid (seq {}, signed by key `{key}`)",
                    head.seq
                ),
                (None, _, _) => println!("signed head: none needed (empty ledger)"),
                (Some(problem), _, _) => println!("signed head: REFUSED: {problem}"),
            },
        }
        if let Some(actual) = &head_mismatch {
            println!(
                "head: DIFFERS from the archived head {} (now {actual})",
                args.expect_head.as_deref().unwrap_or_default()
            );
        }
    }
    Ok(if intact {
        Code::Success
    } else {
        Code::Negative
    })
}
