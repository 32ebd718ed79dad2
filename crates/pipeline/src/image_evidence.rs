//! What the registry holds as signed evidence for one image, as an auditor reads it
//! (`release image verify`): each attestation, who signed it with which key, and whether
//! it satisfies an environment's policy. It reads the registry alone: no state directory,
//! no engine.

use registry_client::{Client, Reference};
use serde::Serialize;
use verify::evidence::{
    SignatureStatus, TEST_RESULT_PREDICATE, TestResult, TrustStore, VERIFICATION_SUMMARY_PREDICATE,
    VerificationSummary,
};

use crate::Error;
use crate::evidence;
use config::Config;

/// One attestation as an auditor reads it.
#[derive(Debug, Serialize)]
pub struct Evidence {
    /// The referrer manifest's digest.
    pub attestation: String,
    /// `test-result`, `verification-summary`, or the predicate type as written.
    pub kind: String,
    /// The environment that produced it, as the statement says.
    pub environment: Option<String>,
    /// `PASSED`, `FAILED`, … as the statement says.
    pub result: Option<String>,
    /// When it was made (checked, or verified).
    pub time: Option<String>,
    /// The approver of a verification summary.
    pub approver: Option<String>,
    /// Each signature: its key id and what became of it under E's trusted keys.
    pub signatures: Vec<SignatureView>,
}

#[derive(Debug, Serialize)]
pub struct SignatureView {
    pub key_id: String,
    /// `trusted`, `revoked`, `untrusted` (no key of that id), `invalid` (does not verify).
    pub status: &'static str,
    /// The trusted key's fingerprint, when E knows the key.
    pub fingerprint: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub reference: String,
    pub digest: String,
    pub env: String,
    /// The environment whose passing test result E's policy asks for.
    pub policy_source: String,
    pub satisfied: bool,
    /// Why E's policy is or is not satisfied, one line.
    pub detail: String,
    pub evidence: Vec<Evidence>,
}

/// The evidence attached to `reference` (resolved in `config`'s registry when it names no
/// digest), judged by environment `env`'s policy: a passing test result of the environment
/// it promotes from (itself when none), signed with a key of `trust`.
pub async fn read(
    config: &Config,
    client: &Client,
    env: &str,
    reference: &str,
    trust: &TrustStore,
) -> Result<Report, Error> {
    if trust.is_empty() {
        return Err(Error::usage(format!(
            "environment `{env}` trusts no signing key: there is no policy to verify against"
        ))
        .with_hint(format!(
            "add [[environments.{env}.evidence.trust]] with id and public_key"
        )));
    }
    let source = config
        .environment(env)?
        .promote_from
        .clone()
        .unwrap_or_else(|| env.to_owned());
    let parsed = Reference::parse(reference, Some(&config.registry.host))
        .map_err(|e| Error::usage(e.to_string()))?;
    let digest = match &parsed.digest {
        Some(d) => d.clone(),
        None => client.resolve(&parsed, false).await?.digest,
    };
    let found = evidence::fetch(client, &parsed.name(), &digest, None).await?;
    let views: Vec<Evidence> = found
        .iter()
        .map(|(r, json)| view(r.as_str(), json, trust))
        .collect();
    let test_results: Vec<evidence::Found> = found
        .into_iter()
        .zip(&views)
        .filter(|(_, v)| v.kind != "verification-summary")
        .map(|(f, _)| f)
        .collect();
    let assessment = verify::evidence::evaluate_test_results(
        &test_results,
        digest.as_str(),
        trust,
        &source,
        time::OffsetDateTime::UNIX_EPOCH,
    );
    Ok(Report {
        reference: reference.to_owned(),
        digest: digest.as_str().to_owned(),
        env: env.to_owned(),
        policy_source: source,
        satisfied: assessment.is_accepted(),
        detail: assessment.to_string(),
        evidence: views,
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
