//! A promotion's gate: what it observes, its verdict, what a refusal records, and the
//! signed verification summary of a passed one; [`run`] is the whole promotion. The deploy
//! that follows a passed gate is [`crate::deploy::run`] of a [`crate::deploy::Target::Promote`]:
//! the gate's version and digests, with its approver and the evidence it accepted.
//!
//! The gate's conditions are decided in `verify::gate` from what is observed here: the
//! records, the source environment's live services and the registry. Infrastructure
//! failures make the gate fail closed; each cause is kept with its hint, and a refused gate
//! with any is an outage, not a verdict on the release.
//!
//! The gate is evaluated before the target's deploy lock is taken; what it vouches for is
//! the digests, and those are exactly what the deploy pins, so a change to the source
//! environment in between cannot put untested bytes into the target.

use std::collections::BTreeMap;

use registry_client::{Client, ErrorKind};
use verify::evidence::{TrustStore, VerificationSummary};
use verify::gate::{self, Observations, Verdict};
use verify::ledger::GateRefused;
use verify::{Digest, EnvName, ReleaseManifest, Version};

use crate::deploy::Target;
use crate::{Error, Kind, Stage, evidence};
use config::Config;

/// Who signs promotion decisions: this tool, as the summary's `verifier.id`.
const VERIFIER_ID: &str = "urn:dreamconsistency:release";

/// What is promoted, where to, on whose approval.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub version: &'a Version,
    pub to: &'a str,
    pub approver: Option<&'a str>,
}

/// A promotion as `release promote` runs it: the request, the target's trusted keys and
/// signing key, the deploy's settings, and whether it only evaluates the gate.
#[derive(Debug, Clone)]
pub struct Promotion<'a> {
    pub request: Request<'a>,
    /// When it holds keys, the gate requires the source's signed test results.
    pub trust: &'a TrustStore,
    /// Signs the verification summary of a promotion that converged.
    pub signer: Option<&'a evidence::Signer>,
    pub deploy: crate::deploy::Options<'a>,
    pub dry_run: bool,
}

/// What a promotion came to.
#[derive(Debug)]
pub enum Outcome {
    /// A dry run: the gate evaluated, nothing acted on ([`Gate::dry_run_outage`] says
    /// whether it could look).
    DryRun(Gate),
    /// The gate refused; the refusal is recorded, and this is its error.
    Refused(Gate, Error),
    /// The gate passed and the deploy ran.
    Promoted(Box<Promoted>),
}

/// A passed gate and what followed it.
#[derive(Debug)]
pub struct Promoted {
    pub gate: Gate,
    /// The deploy of the gate's digests; its `failure` says whether it converged.
    pub deployed: crate::deploy::Deployed,
    /// The signed verification summary's envelope digest and where it went, when the
    /// target signs and the deploy converged; `Err` when it could not be attached (the
    /// promotion stands).
    pub summary: Option<Result<(Digest, Vec<evidence::Attached>), Error>>,
}

/// `release promote`: evaluates the gate ([`evaluate`]) and hands it to `judged` (which
/// reports the verdict before anything acts on it); then, unless a dry run, records a
/// refusal, or records a manifest taken from the registry, deploys the gate's digests
/// ([`crate::deploy::run`]) and signs the summary. An error is a promotion that stopped
/// before its outcome: the gate could not be evaluated, `judged` failed, or the deploy
/// applied nothing.
pub async fn run<E: From<Error>>(
    s: &Stage<'_>,
    client: &Client,
    promotion: &Promotion<'_>,
    judged: impl FnOnce(&Gate) -> Result<(), E>,
) -> Result<Outcome, E> {
    let gate = evaluate(s, client, promotion.request, promotion.trust).await?;
    judged(&gate)?;
    if promotion.dry_run {
        return Ok(Outcome::DryRun(gate));
    }
    if !gate.passed() {
        let refusal = gate.refuse(s);
        return Ok(Outcome::Refused(gate, refusal));
    }
    if let Some(artifact) = gate.record_published(s)? {
        s.say(format!(
            "release {} recorded from the registry (artifact {artifact})",
            gate.version
        ));
    }
    let deployed = crate::deploy::run(s, gate.target(), &promotion.deploy).await?;
    let summary = match promotion.signer {
        Some(signer) if deployed.failure.is_none() => {
            Some(gate.attach_summary(s, client, signer).await)
        }
        _ => None,
    };
    Ok(Outcome::Promoted(Box::new(Promoted {
        gate,
        deployed,
        summary,
    })))
}

/// A gate evaluated: the verdict, and what a refusal, a deploy or a summary needs of what
/// was observed.
#[derive(Debug)]
pub struct Gate {
    pub version: Version,
    pub target: EnvName,
    pub source: EnvName,
    pub approver: Option<String>,
    pub verdict: Verdict,
    /// What the gate could not reach, with its hint: a refused gate with any is an outage.
    pub unreachable: Vec<(String, Option<String>)>,
    /// The release manifest taken from the registry (its artifact's digest), when this
    /// agent had none recorded.
    pub published: Option<(Digest, ReleaseManifest)>,
    /// The release's service → digest, when its manifest could be read.
    digests: Option<gate::Digests>,
    refusal: GateRefused,
}

/// The environment `to` promotes from; an environment without `promote_from` is not a
/// promotion target.
pub fn source(config: &Config, to: &str) -> Result<EnvName, Error> {
    let Some(from) = &config.environment(to)?.promote_from else {
        return Err(Error::usage(format!(
            "environment `{to}` has no `promote_from`: it is not a promotion target"
        ))
        .with_hint(format!(
            "deploy to it with `release deploy --env {to} --version …`"
        )));
    };
    Ok(config.environment_entry(from)?.0.clone())
}

/// Observes what the gate reads and evaluates it. `trust` is the target's trusted keys:
/// when it holds any, the gate requires the source's signed test results. An error is a
/// failure to look at all (records unreadable, the source's engine misconfigured); what
/// could not be reached is in the gate, which fails closed.
pub async fn evaluate(
    s: &Stage<'_>,
    client: &Client,
    request: Request<'_>,
    trust: &TrustStore,
) -> Result<Gate, Error> {
    let config = s.config;
    let Request {
        version,
        to,
        approver,
    } = request;
    let source = source(config, to)?;
    let (target_env, target) = config.environment_entry(to)?;
    let loaded = s.state.load_release(version);
    // Only a manifest this agent never recorded is looked up in the registry: one that is
    // recorded but unreadable or altered fails the gate.
    let not_recorded = matches!(loaded, Err(verify::RecordError::NotRecorded { .. }));
    let mut manifest = loaded
        .map(|r| (r.manifest.digests(), r.sha256, r.manifest))
        .map_err(|e| e.to_string());
    // An agent without the source's records takes the manifest from the registry, where
    // `push` published it; with signed evidence required, the signed results vouch for its
    // digests (a forged manifest names digests nobody checked).
    let mut published = None;
    if not_recorded && !trust.is_empty() {
        if let Some((artifact, bytes)) =
            evidence::fetch_manifest(client, config, version.as_str()).await?
        {
            match ReleaseManifest::from_bytes(&bytes) {
                Ok(m) if m.version == *version => {
                    let sha = Digest::of(&bytes);
                    manifest = Ok((m.digests(), sha, m.clone()));
                    published = Some((artifact, m));
                }
                Ok(m) => {
                    manifest = Err(format!(
                        "the registry's manifest artifact {artifact} is of version {}, not {}",
                        m.version.as_str(),
                        version.as_str()
                    ))
                }
                Err(e) => {
                    manifest = Err(format!(
                        "the registry's manifest artifact {artifact} is malformed: {e}"
                    ))
                }
            }
        }
    }
    let entries = s.state.ledger().read_events().map_err(Error::from)?;

    let mut unreachable = Vec::new();
    // A source whose engine cannot be addressed as configured is a usage error, not a
    // verdict on the release: it stops here, before anything is recorded.
    let (live_source, source_updated_at) =
        match crate::live::live_images(config, source.as_str()).await {
            Ok((live, updated)) => (Ok(live), updated),
            Err(e) if e.kind == Kind::Usage => return Err(e),
            Err(e) => {
                if e.kind == Kind::Infrastructure {
                    unreachable.push((e.message.clone(), e.hint.clone()));
                }
                (Err(e.message), None)
            }
        };
    let mut outage = |e: &registry_client::Error| {
        if e.kind() == ErrorKind::Infrastructure {
            unreachable.push((e.to_string(), None));
        }
        e.to_string()
    };
    let mut registry = BTreeMap::new();
    let mut found = BTreeMap::new();
    if let Ok((digests, _, manifest)) = &manifest {
        for (service, image) in &manifest.services {
            let answer = crate::stage::resolve_tag(client, &image.repository, &image.tag).await;
            registry.insert(service.clone(), answer.map_err(|e| outage(&e)));
        }
        // Signed evidence, when the target trusts keys: the source's test results attached
        // to each release digest in the registry; every service's at once.
        if !trust.is_empty() {
            let subjects = evidence::subjects(config, digests);
            let answers = futures_util::future::join_all(subjects.iter().map(|subject| {
                evidence::fetch(
                    client,
                    &subject.repository,
                    &subject.digest,
                    Some(verify::evidence::TEST_RESULT_PREDICATE),
                )
            }))
            .await;
            for (subject, answer) in subjects.into_iter().zip(answers) {
                found.insert(subject.service, answer.map_err(|e| outage(&e)));
            }
        }
    }
    let observations = Observations {
        version,
        target_env,
        source_env: Some(&source),
        manifest: manifest
            .as_ref()
            .map(|(d, sha, _)| (d.clone(), sha.clone()))
            .map_err(Clone::clone),
        entries: &entries,
        live_source,
        registry,
        approval_required: target.approval_required,
        approver,
        attestations: (!trust.is_empty()).then_some(gate::Attestations { trust, found }),
        manifest_artifact: published.as_ref().map(|(a, _)| a.clone()),
        source_updated_at,
    };
    let verdict = gate::evaluate(&observations);
    let refusal = verdict.refusal(&observations, s.jenkins.clone());
    Ok(Gate {
        version: version.clone(),
        target: target_env.clone(),
        source,
        approver: approver.map(str::to_owned),
        verdict,
        unreachable,
        published,
        digests: manifest.ok().map(|(d, _, _)| d),
        refusal,
    })
}

impl Gate {
    pub fn passed(&self) -> bool {
        self.verdict.passed()
    }

    /// A dry run's answer: an outage (a refused gate that could not look) is an error, not
    /// a verdict on the release.
    pub fn dry_run_outage(&self) -> Option<Error> {
        if self.passed() {
            return None;
        }
        let (cause, hint) = self.unreachable.first()?;
        Some(
            Error::infrastructure(format!(
                "the gate for {} to `{}` could not be evaluated (dry run): {cause}",
                self.version.as_str(),
                self.target
            ))
            .with_hint(unreachable_hint(hint.as_deref())),
        )
    }

    /// Records a refused gate (`gate-refused`, every reason) and returns the refusal as an
    /// error: an outage when the gate could not reach what it reads, else a verdict.
    fn refuse(&self, s: &Stage<'_>) -> Error {
        if let Err(e) = s.append(&self.refusal.clone().into()) {
            return e;
        }
        let reasons = &self.refusal.reasons;
        let kind = if self.unreachable.is_empty() {
            Kind::Negative
        } else {
            Kind::Infrastructure
        };
        let error = Error::new(
            kind,
            format!(
                "promotion of {} to `{}` refused ({} of {} conditions failed): {}",
                self.version.as_str(),
                self.target,
                reasons.len(),
                self.verdict.conditions.len(),
                reasons.first().cloned().unwrap_or_default()
            ),
        );
        match self.unreachable.first() {
            Some((_, hint)) => error.with_hint(unreachable_hint(hint.as_deref())),
            None => error.with_hint("nothing was deployed; the refusal is recorded in the ledger"),
        }
    }

    /// Records a release manifest taken from the registry, naming its artifact, so that
    /// the deploy reads it from this agent's records; the artifact, when there was one.
    fn record_published(&self, s: &Stage<'_>) -> Result<Option<&Digest>, Error> {
        let Some((artifact, manifest)) = &self.published else {
            return Ok(None);
        };
        s.state
            .record_published_release(manifest, &s.actor, Some(artifact))?;
        Ok(Some(artifact))
    }

    /// The deploy a passed gate allows: the same digests, with the approver and the
    /// evidence the gate accepted.
    fn target(&self) -> Target {
        Target::Promote {
            version: self.version.as_str().to_owned(),
            approver: self.approver.clone(),
            evidence: self.verdict.evidence(&self.source),
        }
    }

    /// Signs the verification summary of this (passed) gate and attaches it to every
    /// promoted image: the envelope's sha256 and where it went. A failure says the
    /// promotion itself stands.
    async fn attach_summary(
        &self,
        s: &Stage<'_>,
        client: &Client,
        signer: &evidence::Signer,
    ) -> Result<(Digest, Vec<evidence::Attached>), Error> {
        let subjects =
            evidence::subjects(s.config, self.digests.as_ref().unwrap_or(&BTreeMap::new()));
        let summary = self.summary();
        let attached =
            evidence::attach_summary(client, signer, self.target.as_str(), &summary, &subjects)
                .await;
        attached.map_err(|e| {
            Error::infrastructure(format!(
                "{} is live in `{}`, but the signed verification summary could not be attached: {}",
                self.version.as_str(),
                self.target,
                e.message
            ))
            .with_hint(
                "the promotion is recorded in the ledger; the registry holds no summary of it",
            )
        })
    }

    /// The SLSA verification summary of a passed gate: this tool as the verifier, the
    /// gate's conditions as the policy, the accepted test results as the inputs.
    pub fn summary(&self) -> VerificationSummary {
        use verify::evidence::{Condition, ResourceDescriptor, SummaryInput};
        let conditions = self
            .verdict
            .conditions
            .iter()
            .map(|c| Condition {
                name: c.name.to_string(),
                passed: c.passed,
                detail: c.detail.clone(),
            })
            .collect();
        let inputs = self
            .verdict
            .attestations
            .values()
            .map(|a| ResourceDescriptor::at_uri(&format!("oci-referrer:{a}"), a.as_str()))
            .collect();
        VerificationSummary::new(SummaryInput {
            verifier_id: VERIFIER_ID,
            release_version: env!("CARGO_PKG_VERSION"),
            time_verified: time::OffsetDateTime::now_utc(),
            resource_uri: &format!("release:{}", self.version.as_str()),
            environment: self.target.as_str(),
            input_attestations: inputs,
            approver: self.approver.as_deref().unwrap_or("not required"),
            conditions,
        })
    }
}

/// The hint for a gate that could not look: what to fix, and that nothing changed.
fn unreachable_hint(hint: Option<&str>) -> String {
    match hint {
        Some(hint) => format!("{hint}; nothing was deployed"),
        None => "nothing was deployed; the gate could not reach what it reads".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_of_a_gate_that_could_not_look_says_nothing_was_deployed() {
        assert_eq!(
            unreachable_hint(Some("start the engine")),
            "start the engine; nothing was deployed"
        );
        assert!(unreachable_hint(None).starts_with("nothing was deployed"));
    }
}
