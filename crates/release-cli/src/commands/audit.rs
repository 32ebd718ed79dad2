//! `release audit`: answers for auditors from the ledger. History (what was deployed where,
//! by whom, approved by whom, on what evidence), `--at` (what was live then), `--live`
//! (does the Swarm still run what was recorded?) and `audit verify` (is the ledger intact?).

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use verify::audit::{self, Deployment};
use verify::{StateDir, Version};

use super::stage;
use crate::cli::{AuditAction, AuditArgs, AuditVerifyArgs, Global};
use crate::exit::{Code, Failure};
use config::Config;

pub async fn run(global: &Global, args: &AuditArgs) -> Result<Code, Failure> {
    let config = super::load_config(global)?;
    // The flags are read before the records are looked for.
    let at = args.at.as_deref().map(parse_time).transpose()?;
    // Auditing only reads: it needs the keys that verify the ledger head, not the one that
    // signs it.
    let state = stage::state_dir_to_read(global, &config)?;
    match &args.action {
        Some(AuditAction::Verify(v)) => verify(global, &config, &state, v),
        None if args.live => live(global, &config, &state, args).await,
        None => history(global, &config, &state, args, at),
    }
}

/// Deployments matching `query`, digests completed from the release manifests.
fn load_deployments(state: &StateDir, query: audit::Query<'_>) -> Result<Vec<Deployment>, Failure> {
    let manifest_digests = |version: &str| {
        let version = Version::parse(version).ok()?;
        let recorded = state.load_release(&version).ok()?;
        Some(
            recorded
                .manifest
                .services
                .iter()
                .map(|(k, v)| (k.clone(), v.digest.as_str().to_owned()))
                .collect(),
        )
    };
    audit::deployments(&state.ledger(), query, manifest_digests)
        .map_err(|e| stage::record_failure(e.into()))
}

fn history(
    global: &Global,
    config: &Config,
    state: &StateDir,
    args: &AuditArgs,
    at: Option<time::OffsetDateTime>,
) -> Result<Code, Failure> {
    if let Some(env) = &args.env {
        config.environment(env)?;
    }
    let query = audit::Query {
        env: args.env.as_deref(),
        at,
    };
    let mut rows = load_deployments(state, query)?;
    if let Some(service) = &args.service {
        if !config.services.contains_key(service) {
            return Err(Failure::usage(format!("unknown service `{service}`")));
        }
        for row in &mut rows {
            row.digests.retain(|name, _| name == service);
        }
    }
    if global.json {
        super::print_json(&rows)?;
    } else {
        print!("{}", render_history(&rows));
    }
    Ok(Code::Success)
}

fn render_history(rows: &[Deployment]) -> String {
    if rows.is_empty() {
        return "no deployments recorded\n".to_owned();
    }
    let mut table = vec![
        [
            "TIME", "ENV", "VERSION", "EVENT", "SERVICE", "DIGEST", "ACTOR", "APPROVER", "EVIDENCE",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for d in rows {
        let time = d.time.format(&Rfc3339).unwrap_or_default();
        for (i, (service, digest)) in d.digests.iter().enumerate() {
            let first = i == 0;
            let cell = |s: String| if first { s } else { String::new() };
            table.push(vec![
                cell(time.clone()),
                cell(d.env.clone()),
                cell(d.version.clone()),
                cell(d.kind.to_string()),
                service.clone(),
                digest.clone(),
                cell(d.actor.clone()),
                cell(d.approver.clone().unwrap_or_else(|| "-".to_owned())),
                cell(d.evidence.clone().unwrap_or_else(|| "-".to_owned())),
            ]);
        }
    }
    super::render_table(&table)
}

/// Accepts RFC 3339 (`2026-11-23T19:40:00Z`) or `now`.
fn parse_time(text: &str) -> Result<OffsetDateTime, Failure> {
    if text == "now" {
        return Ok(OffsetDateTime::now_utc());
    }
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
        Failure::usage(format!("--at `{text}` is not an RFC 3339 time: {e}"))
            .with_hint("write e.g. 2026-11-23T19:40:00Z or 2026-11-23T20:40:00+01:00")
    })
}

#[derive(Debug, Serialize)]
struct Drift {
    env: String,
    service: String,
    recorded: Option<String>,
    live: Option<String>,
    problem: String,
}

/// Compares what each environment's engine runs (Swarm services, or Compose containers)
/// with what the ledger says it runs.
async fn live(
    global: &Global,
    config: &Config,
    state: &StateDir,
    args: &AuditArgs,
) -> Result<Code, Failure> {
    let deployments = load_deployments(
        state,
        audit::Query {
            env: args.env.as_deref(),
            at: Some(OffsetDateTime::now_utc()),
        },
    )?;
    let envs: Vec<&String> = match &args.env {
        Some(e) => {
            config.environment(e)?;
            vec![e]
        }
        None => config.environments.keys().collect(),
    };
    let registry = stage::registry_client(config)?;
    let mut drift = Vec::new();
    let mut compared = 0;
    for env_name in envs {
        // With `at`, the query keeps only the latest deployment per environment.
        let Some(recorded) = deployments.iter().find(|d| &d.env == env_name) else {
            continue;
        };
        let (live, _) = super::live_images(config, env_name).await?;
        // The registry too: a tag that moved since the release no longer names what runs.
        let manifest = Version::parse(&recorded.version)
            .ok()
            .and_then(|v| state.load_release(&v).ok());
        let selected: BTreeMap<String, String> = recorded
            .digests
            .iter()
            .filter(|(service, _)| args.service.as_ref().is_none_or(|s| s == *service))
            .map(|(service, digest)| (service.clone(), digest.clone()))
            .collect();
        compared += selected.len();
        // What each selected release service runs now.
        let running: BTreeMap<String, String> = live
            .into_iter()
            .filter(|(service, _)| selected.contains_key(service))
            .collect();
        let mut live_drift: BTreeMap<String, verify::drift::Drift> =
            verify::drift::compare(&selected, &running)
                .into_iter()
                .collect();
        for (service, digest) in &selected {
            // The registry too: a tag that moved since the release no longer names what runs.
            if let Some(image) = manifest
                .as_ref()
                .and_then(|m| m.manifest.services.get(service))
            {
                let served = pipeline::stage::resolve_tag(&registry, &image.repository, &image.tag)
                    .await
                    .map_err(|e| Failure::from(e).with_context(service))?;
                if &served != digest {
                    drift.push(Drift {
                        env: env_name.clone(),
                        service: service.clone(),
                        recorded: Some(digest.clone()),
                        live: Some(served.clone()),
                        problem: format!(
                            "tag {}:{} moved in the registry",
                            image.repository, image.tag
                        ),
                    });
                }
            }
            use verify::drift::Drift as D;
            let (problem, live_digest) = match live_drift.remove(service) {
                None => continue,
                Some(D::NotRunning) => ("service is not running".to_owned(), None),
                Some(D::Unpinned { image }) => (format!("runs unpinned image {image}"), None),
                Some(D::Foreign { live }) => {
                    ("runs a different digest".to_owned(), Some(live.to_string()))
                }
            };
            drift.push(Drift {
                env: env_name.clone(),
                service: service.clone(),
                recorded: Some(digest.clone()),
                live: live_digest,
                problem,
            });
        }
    }
    if global.json {
        super::print_json(&serde_json::json!({ "compared": compared, "drift": drift }))?;
    } else if drift.is_empty() {
        println!("no drift: {compared} services run exactly the recorded digests");
    } else {
        for d in &drift {
            println!(
                "DRIFT {} {}: {} (recorded {}, live {})",
                d.env,
                d.service,
                d.problem,
                d.recorded.as_deref().unwrap_or("-"),
                d.live.as_deref().unwrap_or("-")
            );
        }
        println!("{} of {compared} services drifted", drift.len());
    }
    Ok(if drift.is_empty() {
        Code::Success
    } else {
        Code::Negative
    })
}

fn verify(
    global: &Global,
    config: &Config,
    state: &StateDir,
    args: &AuditVerifyArgs,
) -> Result<Code, Failure> {
    let head_trust = super::keys::ledger_trust(config)?;
    let report =
        audit::verify_records(state, head_trust.as_ref()).map_err(stage::record_failure)?;
    let head_mismatch = match (&args.expect_head, &report.head) {
        (Some(expected), Some(head)) => (expected != head).then(|| head.clone()),
        (Some(_), None) => Some("none (empty ledger)".to_owned()),
        (None, _) => None,
    };
    let intact = report.is_intact() && head_mismatch.is_none();
    if global.json {
        let mut value = serde_json::to_value(&report)
            .map_err(|e| Failure::infrastructure(format!("cannot encode JSON output: {e}")))?;
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
