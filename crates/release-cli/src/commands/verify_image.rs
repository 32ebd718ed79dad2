//! `release image verify REF --env E`: what signed evidence the registry holds for an
//! image, who signed it with which key, and whether it satisfies E's policy. It reads the
//! registry alone: no state directory, no engine.

use super::keys;
use crate::cli::{Global, ImageVerifyArgs};
use crate::exit::{Code, Failure};
use crate::terms::Surface;
use pipeline::image_evidence::Report;

pub async fn run(global: &Global, args: &ImageVerifyArgs) -> Result<Code, Failure> {
    let config = super::load_config(global)?;
    let trust = keys::trust(&config, &args.env)?;
    let client = super::stage::registry_client(&config)?;
    let report =
        pipeline::image_evidence::read(&config, &client, &args.env, &args.reference, &trust)
            .await
            .map_err(|e| Failure::of(e, Surface::Image))?;
    if global.json {
        super::print_json(&report)?;
    } else {
        print!("{}", table(&report));
        println!(
            "policy of `{}` ({} signed a PASSED test result with a trusted key): {}",
            args.env,
            report.policy_source,
            if report.satisfied {
                "satisfied"
            } else {
                "not satisfied"
            }
        );
        println!("  {}", report.detail);
    }
    Ok(if report.satisfied {
        Code::Success
    } else {
        Code::Negative
    })
}

fn table(output: &Report) -> String {
    let mut rows = vec![vec![
        "EVIDENCE".to_owned(),
        "ENV".to_owned(),
        "RESULT".to_owned(),
        "SIGNED BY".to_owned(),
        "TIME".to_owned(),
        "ATTESTATION".to_owned(),
    ]];
    for e in &output.evidence {
        let signed = e
            .signatures
            .iter()
            .map(|s| format!("{} ({})", s.key_id, s.status))
            .collect::<Vec<_>>()
            .join(", ");
        rows.push(vec![
            e.kind.clone(),
            e.environment.clone().unwrap_or_else(|| "-".to_owned()),
            e.result.clone().unwrap_or_else(|| "-".to_owned()),
            if signed.is_empty() {
                "-".to_owned()
            } else {
                signed
            },
            e.time.clone().unwrap_or_else(|| "-".to_owned()),
            e.attestation.clone(),
        ]);
    }
    if output.evidence.is_empty() {
        return format!(
            "{} {}: no signed evidence\n",
            output.reference, output.digest
        );
    }
    format!(
        "{} {}\n{}",
        output.reference,
        output.digest,
        super::render_table(&rows)
    )
}
