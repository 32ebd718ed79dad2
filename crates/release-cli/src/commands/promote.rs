//! `release promote --version V --to E`: the gate, then a deploy of the same digests.
//!
//! [`pipeline::promote`] observes and evaluates the gate, records a refusal and signs the
//! summary of a passed one; the deploy is the one `release deploy` runs, with the approver
//! and the gate's evidence. This module renders the verdict (lines or `--json`, and a JUnit
//! case per condition) and chooses what follows it.

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
    let quiet = |_: engine::Progress<'_>| {};
    let on = stage::of(&config, &state, &quiet);
    let request = pipeline::promote::Request {
        version: &version,
        to: &args.to,
        approver: args.approved_by.as_deref(),
    };
    let gate = pipeline::promote::evaluate(&on, &client, request, &trust).await?;
    if let Some(path) = &args.junit {
        crate::junit::write(
            path,
            &[crate::junit::of_gate(
                &args.to,
                version.as_str(),
                &gate.verdict,
            )],
        )?;
    }
    print_verdict(global, &gate.verdict, args.dry_run)?;

    // From here the verdict is on stdout: under `--json` it is the command's document, and
    // a failure after it is reported by it, not by a second one.
    let rest = async {
        if args.dry_run {
            return match gate.dry_run_outage() {
                Some(outage) => Err(outage.into()),
                None if gate.passed() => Ok(Code::Success),
                None => Ok(Code::Negative),
            };
        }
        if !gate.passed() {
            return Err(gate.refuse(&on).into());
        }
        if let Some(artifact) = gate.record_published(&on)?
            && !global.quiet
            && !global.json
        {
            eprintln!(
                "release {} recorded from the registry (artifact {artifact})",
                version.as_str()
            );
        }
        let options = Options {
            env: &args.to,
            timeout: args.timeout.as_deref(),
            lock_timeout: args.lock_timeout.as_deref(),
            junit: None,
        };
        let promoted = super::deploy::run_deploy(global, gate.target(), &options).await?;
        if promoted == Code::Success
            && let Some(signer) = &signer
        {
            let (envelope, attached) = gate.attach_summary(&on, &client, signer).await?;
            if !global.json {
                println!(
                    "signed verification summary {envelope} attached to {} image(s)",
                    attached.len()
                );
            }
        }
        Ok(promoted)
    };
    rest.await.map_err(Failure::reported)
}

fn print_verdict(global: &Global, verdict: &Verdict, dry_run: bool) -> Result<(), Failure> {
    if global.json {
        let mut value = serde_json::to_value(verdict)
            .map_err(|e| Failure::infrastructure(format!("cannot encode JSON output: {e}")))?;
        value["passed"] = json!(verdict.passed());
        value["dry_run"] = json!(dry_run);
        return super::print_json(&value);
    }
    for c in &verdict.conditions {
        let mark = if c.passed { "PASS" } else { "FAIL" };
        println!("{mark}  {}: {}", c.name, c.detail);
    }
    println!(
        "gate {}",
        if verdict.passed() {
            "passed"
        } else {
            "refused"
        }
    );
    Ok(())
}
