//! `release promote --version V --to E`: the gate, then a deploy of the same digests.
//!
//! The gate's conditions are decided in `verify::gate` from what this command observes:
//! the records, the source environment's live Swarm services and the registry. Every
//! condition becomes a JUnit test case; every failure is listed and recorded as
//! `gate-refused`. Only a passing gate reaches the deploy path, which records `promoted`
//! with the approver and the evidence (the source's passing check and its JUnit hash).
//!
//! The gate is evaluated before the target's deploy lock is taken; what it vouches for is
//! the digests, and those are exactly what the deploy pins, so a change to the source
//! environment in between cannot put untested bytes into the target.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;
use verify::gate::{self, Observations, Verdict};

use super::deploy::{Options, Target};
use super::{evidence, stage};
use crate::cli::{Global, PromoteArgs};
use crate::exit::{Code, Failure};

pub async fn run(global: &Global, args: &PromoteArgs) -> Result<Code, Failure> {
    let config = super::load_config(global)?;
    let target = config.environment(&args.to)?;
    let Some(source) = target.promote_from.clone() else {
        return Err(Failure::usage(format!(
            "environment `{}` has no `promote_from`: it is not a promotion target",
            args.to
        ))
        .with_hint(format!(
            "deploy to it with `release deploy --env {} --version …`",
            args.to
        )));
    };
    let version = stage::version(&config, &args.version)?;
    let state = stage::state_dir(global, &config)?;
    // One client for every registry request of the promotion: one connection pool, one
    // token per scope.
    let client = stage::registry_client(&config)?;

    let trust = evidence::trust(&config, &args.to)?;
    // PROD's key signs the decision after the deploy: one that cannot be read stops the
    // promotion here, before the gate looks or anything is recorded.
    let signer = evidence::signer(&config, &args.to)?;
    let digests_of = |m: &verify::ReleaseManifest| -> BTreeMap<String, String> {
        m.services
            .iter()
            .map(|(k, v)| (k.clone(), v.digest.as_str().to_owned()))
            .collect()
    };
    let loaded = state.load_release(&version);
    // Only a manifest this agent never recorded is looked up in the registry: one that is
    // recorded but unreadable or altered fails the gate.
    let not_recorded = matches!(loaded, Err(verify::RecordError::NotRecorded { .. }));
    let mut manifest = loaded
        .map(|r| {
            (
                digests_of(&r.manifest),
                r.sha256.as_str().to_owned(),
                r.manifest,
            )
        })
        .map_err(|e| e.to_string());
    // An agent without DEV's records takes the manifest from the registry, where `push`
    // published it; with signed evidence required, the signed results vouch for its
    // digests (a forged manifest names digests nobody checked).
    let mut published: Option<(String, verify::ReleaseManifest)> = None;
    if not_recorded && !trust.is_empty() {
        match evidence::fetch_manifest(&client, &config, version.as_str()).await {
            Ok(Some((artifact, bytes))) => match verify::ReleaseManifest::from_bytes(&bytes) {
                Ok(m) if m.version == version => {
                    let sha = verify::Digest::of(&bytes).as_str().to_owned();
                    manifest = Ok((digests_of(&m), sha, m.clone()));
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
            },
            Ok(None) => {}
            Err(e) => return Err(crate::registry::failure(e, crate::registry::Surface::Stage)),
        }
    }
    let entries = state
        .ledger()
        .read_events()
        .map_err(|e| stage::record_failure(e.into()))?;

    // Infrastructure failures make the gate fail closed, and the command exit 3; each
    // cause is kept with its hint. A source environment whose engine cannot be addressed
    // as configured is a usage error (exit 2), not a verdict on the release: it stops
    // here, before anything is recorded.
    let mut unreachable: Vec<(String, Option<String>)> = Vec::new();
    let mut source_updated_at = None;
    let live_source = match super::live_images(&config, &source).await {
        Ok((live, updated)) => {
            source_updated_at = updated;
            Ok(live)
        }
        Err(f) if f.code == Code::Usage => return Err(f),
        Err(f) => {
            if f.code == Code::Infrastructure {
                unreachable.push((f.message.clone(), f.hint.clone()));
            }
            Err(f.message)
        }
    };
    let mut registry = BTreeMap::new();
    if let Ok((_, _, manifest)) = &manifest {
        for (service, image) in &manifest.services {
            let resolved = stage::resolve_tag(&client, &image.repository, &image.tag).await;
            let answer = resolved.map_err(|e| {
                if e.kind() == registry_client::ErrorKind::Infrastructure {
                    unreachable.push((e.to_string(), None));
                }
                e.to_string()
            });
            registry.insert(service.clone(), answer);
        }
    }

    // Signed evidence, when the target trusts keys: the source's test results attached
    // to each release digest in the registry.
    let mut found = BTreeMap::new();
    if !trust.is_empty()
        && let Ok((digests, _, _)) = &manifest
    {
        // Every service's at once: each listing and fetch is a round trip of its own.
        let subjects = evidence::subjects(&config, digests);
        let answers = futures_util::future::join_all(subjects.iter().map(|subject| {
            evidence::fetch(
                &client,
                subject,
                Some(verify::evidence::TEST_RESULT_PREDICATE),
            )
        }))
        .await;
        for (subject, answer) in subjects.into_iter().zip(answers) {
            let answer = answer.map_err(|e| {
                if e.kind() == registry_client::ErrorKind::Infrastructure {
                    unreachable.push((e.to_string(), None));
                }
                e.to_string()
            });
            found.insert(subject.service, answer);
        }
    }
    let observations = Observations {
        version: version.as_str(),
        target_env: &args.to,
        source_env: Some(&source),
        manifest: manifest
            .as_ref()
            .map(|(d, sha, _)| (d.clone(), sha.clone()))
            .map_err(Clone::clone),
        entries: &entries,
        live_source,
        registry,
        approval_required: target.approval_required,
        approver: args.approved_by.as_deref(),
        attestations: (!trust.is_empty()).then_some(gate::Attestations {
            trust: &trust,
            found,
        }),
        manifest_artifact: published.as_ref().map(|(a, _)| a.clone()),
        source_updated_at,
    };
    let verdict = gate::evaluate(&observations);
    if let Some(path) = &args.junit {
        write_junit(path, &args.to, version.as_str(), &verdict)?;
    }
    print_verdict(global, &verdict, args.dry_run)?;

    // From here the verdict is on stdout: under `--json` it is the command's document, and
    // a failure after it is reported by it, not by a second one.
    let rest = async {
        if args.dry_run {
            // Like the real promotion: a gate that could not look is an outage (exit 3), not a
            // verdict on the release.
            if !verdict.passed()
                && let Some((cause, hint)) = unreachable.first()
            {
                return Err(Failure::new(
                    Code::Infrastructure,
                    format!(
                        "the gate for {} to `{}` could not be evaluated (dry run): {cause}",
                        version.as_str(),
                        args.to
                    ),
                )
                .with_hint(unreachable_hint(hint.as_deref())));
            }
            return Ok(if verdict.passed() {
                Code::Success
            } else {
                Code::Negative
            });
        }
        let actor = stage::actor();
        if !verdict.passed() {
            let event = verdict.refusal(&observations, stage::jenkins_build());
            let reasons = event.reasons.clone();
            state
                .ledger()
                .append_event(&actor, &event.into())
                .map_err(|e| stage::record_failure(e.into()))?;
            let first = reasons.first().cloned().unwrap_or_default();
            let code = if unreachable.is_empty() {
                Code::Negative
            } else {
                Code::Infrastructure
            };
            let message = format!(
                "promotion of {} to `{}` refused ({} of {} conditions failed): {first}",
                version.as_str(),
                args.to,
                reasons.len(),
                verdict.conditions.len()
            );
            let failure = Failure::new(code, message);
            return Err(match unreachable.first() {
                Some((_, hint)) => failure.with_hint(unreachable_hint(hint.as_deref())),
                None => {
                    failure.with_hint("nothing was deployed; the refusal is recorded in the ledger")
                }
            });
        }

        // The deploy reads the release from this agent's records: a manifest taken from the
        // registry is recorded here first, naming its artifact.
        if let Some((artifact, m)) = &published {
            state
                .record_published_release(m, &actor, Some(artifact))
                .map_err(stage::record_failure)?;
            if !global.quiet && !global.json {
                eprintln!(
                    "release {} recorded from the registry (artifact {artifact})",
                    version.as_str()
                );
            }
        }
        let promoted = super::deploy::run_deploy(
            global,
            Target::Promote {
                version: version.as_str().to_owned(),
                approver: args.approved_by.clone(),
                evidence: verdict.evidence(&source),
            },
            &Options {
                env: &args.to,
                timeout: args.timeout.as_deref(),
                lock_timeout: args.lock_timeout.as_deref(),
                junit: None,
            },
        )
        .await?;
        if promoted == Code::Success
            && let (Some(signer), Ok((digests, _, _))) = (&signer, &manifest)
        {
            let summary = summary(
                &args.to,
                version.as_str(),
                &verdict,
                args.approved_by.as_deref(),
            );
            let subjects = evidence::subjects(&config, digests);
            match evidence::attach_summary(&client, signer, &args.to, &summary, &subjects).await {
                Ok((envelope, attached)) if !global.json => println!(
                    "signed verification summary {envelope} attached to {} image(s)",
                    attached.len()
                ),
                Ok(_) => {}
                Err(f) => {
                    return Err(Failure::new(
                        Code::Infrastructure,
                        format!(
                            "{} is live in `{}`, but the signed verification summary could not be attached: {}",
                            version.as_str(),
                            args.to,
                            f.message
                        ),
                    )
                    .with_hint("the promotion is recorded in the ledger; the registry holds no summary of it"));
                }
            }
        }
        Ok(promoted)
    };
    rest.await.map_err(Failure::reported)
}

/// Who signs promotion decisions: this tool, as the summary's `verifier.id`.
const VERIFIER_ID: &str = "urn:dreamconsistency:release";

/// The SLSA verification summary of a passed gate: this tool as the verifier, the gate's
/// conditions as the policy, the accepted test results as the inputs.
fn summary(
    env: &str,
    version: &str,
    verdict: &Verdict,
    approver: Option<&str>,
) -> verify::evidence::VerificationSummary {
    use verify::evidence::{Condition, ResourceDescriptor, SummaryInput, VerificationSummary};
    let conditions: Vec<Condition> = verdict
        .conditions
        .iter()
        .map(|c| Condition {
            name: c.name.to_string(),
            passed: c.passed,
            detail: c.detail.clone(),
        })
        .collect();
    let inputs: Vec<ResourceDescriptor> = verdict
        .attestations
        .values()
        .map(|a| ResourceDescriptor::at_uri(&format!("oci-referrer:{a}"), a))
        .collect();
    VerificationSummary::new(SummaryInput {
        verifier_id: VERIFIER_ID,
        release_version: env!("CARGO_PKG_VERSION"),
        time_verified: time::OffsetDateTime::now_utc(),
        resource_uri: &format!("release:{version}"),
        environment: env,
        input_attestations: inputs,
        approver: approver.unwrap_or("not required"),
        conditions,
    })
}

/// The hint for a gate that could not look: what to fix, and that nothing changed.
fn unreachable_hint(hint: Option<&str>) -> String {
    match hint {
        Some(hint) => format!("{hint}; nothing was deployed"),
        None => "nothing was deployed; the gate could not reach what it reads".to_owned(),
    }
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

/// One test case per gate condition, in a suite named after the promotion.
fn write_junit(path: &Path, env: &str, version: &str, verdict: &Verdict) -> Result<(), Failure> {
    use verify::junit::{self, Case, Suite};
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
    let suite = Suite {
        name: format!("promote {version} to {env}"),
        timestamp: time::OffsetDateTime::now_utc(),
        cases,
    };
    stage::write_junit_suites(path, &[suite])
}
