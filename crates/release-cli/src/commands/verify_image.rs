//! `release image verify REF --env E`: what signed evidence the registry holds for an
//! image, who signed it with which key, and whether it satisfies E's policy. It reads the
//! registry alone: no state directory, no engine.

use serde::Serialize;
use verify::evidence::{
    SignatureStatus, TEST_RESULT_PREDICATE, TestResult, TrustStore, VERIFICATION_SUMMARY_PREDICATE,
    VerificationSummary,
};

use super::keys;
use crate::cli::{Global, ImageVerifyArgs};
use crate::exit::{Code, Failure};
use crate::registry::{self, Surface};
use pipeline::evidence::{self, Subject};

/// One attestation as an auditor reads it.
#[derive(Debug, Serialize)]
struct Evidence {
    /// The referrer manifest's digest.
    attestation: String,
    /// `test-result`, `verification-summary`, or the predicate type as written.
    kind: String,
    /// The environment that produced it, as the statement says.
    environment: Option<String>,
    /// `PASSED`, `FAILED`, … as the statement says.
    result: Option<String>,
    /// When it was made (checked, or verified).
    time: Option<String>,
    /// The approver of a verification summary.
    approver: Option<String>,
    /// Each signature: its key id and what became of it under E's trusted keys.
    signatures: Vec<SignatureView>,
}

#[derive(Debug, Serialize)]
struct SignatureView {
    key_id: String,
    /// `trusted`, `revoked`, `untrusted` (no key of that id), `invalid` (does not verify).
    status: &'static str,
    /// The trusted key's fingerprint, when E knows the key.
    fingerprint: Option<String>,
}

#[derive(Debug, Serialize)]
struct Output<'a> {
    reference: &'a str,
    digest: &'a str,
    env: &'a str,
    /// The environment whose passing test result E's policy asks for.
    policy_source: &'a str,
    satisfied: bool,
    /// Why E's policy is or is not satisfied, one line.
    detail: String,
    evidence: Vec<Evidence>,
}

pub async fn run(global: &Global, args: &ImageVerifyArgs) -> Result<Code, Failure> {
    let config = super::load_config(global)?;
    let env = config.environment(&args.env)?;
    let trust = keys::trust(&config, &args.env)?;
    if trust.is_empty() {
        return Err(Failure::usage(format!(
            "environment `{}` trusts no signing key: there is no policy to verify against",
            args.env
        ))
        .with_hint(format!(
            "add [[environments.{}.evidence.trust]] with id and public_key",
            args.env
        )));
    }
    let source = env.promote_from.clone().unwrap_or_else(|| args.env.clone());
    let client = super::stage::registry_client(&config)?;
    let reference = registry_client::Reference::parse(&args.reference, Some(&config.registry.host))
        .map_err(|e| Failure::usage(e.to_string()))?;
    let digest = match &reference.digest {
        Some(d) => d.clone(),
        None => {
            client
                .resolve(&reference, false)
                .await
                .map_err(|e| registry::failure(e, Surface::Image))?
                .digest
        }
    };
    let subject = Subject {
        service: String::new(),
        repository: reference.name(),
        digest: digest.as_str().to_owned(),
    };
    let found = evidence::fetch(&client, &subject, None)
        .await
        .map_err(|e| registry::failure(e, Surface::Image))?;
    let views: Vec<Evidence> = found
        .iter()
        .map(|(r, json)| view(r, json, &trust))
        .collect();
    let test_results: Vec<(String, Vec<u8>)> = found
        .into_iter()
        .zip(&views)
        .filter(|(_, v)| v.kind != "verification-summary")
        .map(|(f, _)| f)
        .collect();
    let assessment = verify::evidence::evaluate_test_results(
        &test_results,
        digest.as_str(),
        &trust,
        &source,
        time::OffsetDateTime::UNIX_EPOCH,
    );
    let satisfied = assessment.is_accepted();
    let detail = assessment.to_string();
    let output = Output {
        reference: &args.reference,
        digest: digest.as_str(),
        env: &args.env,
        policy_source: &source,
        satisfied,
        detail: detail.clone(),
        evidence: views,
    };
    if global.json {
        super::print_json(&output)?;
    } else {
        print!("{}", table(&output));
        println!(
            "policy of `{}` ({} signed a PASSED test result with a trusted key): {}",
            args.env,
            source,
            if satisfied {
                "satisfied"
            } else {
                "not satisfied"
            }
        );
        println!("  {detail}");
    }
    Ok(if satisfied {
        Code::Success
    } else {
        Code::Negative
    })
}

fn view(attestation: &str, json: &[u8], trust: &TrustStore) -> Evidence {
    let mut out = Evidence {
        attestation: attestation.to_owned(),
        kind: "malformed".to_owned(),
        environment: None,
        result: None,
        time: None,
        approver: None,
        signatures: Vec::new(),
    };
    let Some((envelope, statement)) = evidence::statement_of(json) else {
        return out;
    };
    let rfc3339 = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    out.kind = statement.predicate_type.clone();
    if statement.predicate_type == TEST_RESULT_PREDICATE
        && let Ok(result) = TestResult::from_statement(&statement)
    {
        out.kind = "test-result".to_owned();
        out.environment = Some(result.environment.clone());
        out.result = Some(result.result.to_string());
        out.time = Some(rfc3339(result.checked_at));
    } else if statement.predicate_type == VERIFICATION_SUMMARY_PREDICATE
        && let Ok(summary) = VerificationSummary::from_statement(&statement)
    {
        out.kind = "verification-summary".to_owned();
        out.environment = summary
            .policy
            .uri
            .as_deref()
            .and_then(|u| u.strip_prefix("release-gate:"))
            .map(str::to_owned);
        out.result = Some(format!("{:?}", summary.verification_result).to_uppercase());
        out.time = Some(rfc3339(summary.time_verified));
        out.approver = Some(summary.approver.clone());
    }
    out.signatures = envelope
        .check_signatures(|id| trust.get(id).map(|k| &k.public))
        .into_iter()
        .map(|check| {
            let key = trust.get(&check.keyid);
            let status = match check.status {
                SignatureStatus::UnknownKey => "untrusted",
                SignatureStatus::Invalid => "invalid",
                SignatureStatus::Verified if key.is_some_and(|k| k.revoked) => "revoked",
                SignatureStatus::Verified => "trusted",
            };
            SignatureView {
                fingerprint: key.map(|k| k.public.fingerprint()),
                key_id: check.keyid,
                status,
            }
        })
        .collect();
    out
}

fn table(output: &Output<'_>) -> String {
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
