//! `release promote --version V --to E`: the gate, then a deploy of the same digests.
//!
//! [`pipeline::promote::run`] observes and evaluates the gate, records a refusal, deploys
//! the gate's digests (the deploy `release deploy` runs, with the approver and the gate's
//! evidence) and signs the summary of a passed one. This module renders the verdict (lines
//! or `--json`, and a JUnit case per condition) as soon as it is known, and the outcome.

use pipeline::promote::{Gate, Outcome, Promoted};
use serde_json::json;
use verify::gate::Verdict;

use super::deploy::Options;
use super::{keys, stage};
use crate::cli::{Global, PromoteArgs};
use crate::exit::{Code, Failure};

pub async fn run(global: &Global, args: &PromoteArgs) -> Result<Code, Failure> {
    let config = super::load_config(global)?;
    pipeline::promote::source(&config, &args.to)?;
    let version = stage::version(&config, &args.version)?;
    let state = stage::state_dir(global, &config)?;
    // One client for every registry request of the promotion: one connection pool, one
    // token per scope.
    let client = stage::registry_client(&config)?;
    let trust = keys::trust(&config, &args.to)?;
    // The target's key signs the decision after the deploy: one that cannot be read stops
    // the promotion here, before the gate looks or anything is recorded.
    let signer = keys::signer(&config, &args.to)?;
    let options = Options {
        env: &args.to,
        timeout: args.timeout.as_deref(),
        lock_timeout: args.lock_timeout.as_deref(),
        junit: None,
    };
    let promotion = pipeline::promote::Promotion {
        request: pipeline::promote::Request {
            version: &version,
            to: &args.to,
            approver: args.approved_by.as_deref(),
        },
        trust: &trust,
        signer: signer.as_ref(),
        deploy: super::deploy::deploy_options(&options)?,
        dry_run: args.dry_run,
    };
    let progress = crate::progress::printer(global.quiet, std::time::Instant::now());
    let on = stage::of(&config, &state, &progress);
    // Under `--json` a promotion that deploys prints one document, the verdict with the
    // deploy's report in it, once the deploy is done; otherwise the verdict comes first.
    let mut document = serde_json::Value::Null;
    let judged = |gate: &Gate| {
        if let Some(path) = &args.junit {
            let suite = crate::junit::of_gate(&args.to, version.as_str(), &gate.verdict);
            crate::junit::write(path, &[suite])?;
        }
        document = verdict_json(&gate.verdict, args.dry_run)?;
        let deploys = gate.passed() && !args.dry_run;
        if !(global.json && deploys) {
            let how = (args.dry_run, !gate.unreachable.is_empty());
            print_verdict(global, &gate.verdict, &document, how)?;
        }
        Ok::<(), Failure>(())
    };
    let promoted = match pipeline::promote::run(&on, &client, &promotion, judged).await? {
        Outcome::DryRun(gate) => {
            return match gate.dry_run_outage() {
                Some(outage) => Err(Failure::from(outage).reported()),
                None if gate.passed() => Ok(Code::Success),
                None => Ok(Code::Negative),
            };
        }
        Outcome::Refused(_, refusal) => return Err(Failure::from(refusal).reported()),
        Outcome::Promoted(promoted) => promoted,
    };
    let Promoted {
        deployed, summary, ..
    } = *promoted;
    if global.json {
        document["deploy"] = json!(deployed.report);
        if let Some(Ok((envelope, attached))) = &summary {
            document["summary"] = json!({ "envelope": envelope, "attached": attached });
        }
        super::print_json(&document)?;
    } else {
        super::deploy::write_outputs(global, &options, &deployed)?;
        if let Some(Ok((envelope, attached))) = &summary {
            println!(
                "signed verification summary {envelope} attached to {} image(s)",
                attached.len()
            );
        }
    }
    let promoted = super::deploy::finish(deployed)?;
    match summary {
        Some(Err(e)) => Err(Failure::from(e).reported()),
        _ => Ok(promoted),
    }
}

/// The verdict's `--json` document: the conditions, whether it passed, whether it was a
/// dry run.
fn verdict_json(verdict: &Verdict, dry_run: bool) -> Result<serde_json::Value, Failure> {
    let mut value = serde_json::to_value(verdict)
        .map_err(|e| pipeline::Error::infrastructure(format!("cannot encode JSON output: {e}")))?;
    value["passed"] = json!(verdict.passed());
    value["dry_run"] = json!(dry_run);
    Ok(value)
}

fn print_verdict(
    global: &Global,
    verdict: &Verdict,
    document: &serde_json::Value,
    (dry_run, outage): (bool, bool),
) -> Result<(), Failure> {
    if global.json {
        return super::print_json(document);
    }
    for c in &verdict.conditions {
        let mark = if c.passed { "PASS" } else { "FAIL" };
        println!("{mark}  {}: {}", c.name, c.detail);
    }
    // A gate that could not look is not a verdict on the release, and says so.
    let verdict_line = if verdict.passed() {
        "gate passed"
    } else {
        "gate refused"
    };
    let dry_run = if dry_run { " (dry run)" } else { "" };
    let why = if outage && !verdict.passed() {
        ": it could not reach what it reads (the error says what)"
    } else {
        ""
    };
    println!("{verdict_line}{dry_run}{why}");
    Ok(())
}
