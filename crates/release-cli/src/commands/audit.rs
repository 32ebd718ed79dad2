//! `release audit`: answers for auditors from the ledger. History (what was deployed where,
//! by whom, approved by whom, on what evidence), `--at` (what was live then), `--live`
//! (does the Swarm still run what was recorded?) and `audit verify` (is the ledger intact?).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use verify::StateDir;
use verify::audit::{self, Deployment};

use super::stage;
use crate::cli::{AuditAction, AuditArgs, Global};
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
        Some(AuditAction::Verify(v)) => super::audit_verify::run(global, &config, &state, v),
        None if args.live => live(global, &config, &state, args).await,
        None => history(global, &config, &state, args, at),
    }
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
    let mut rows = pipeline::audit::deployments(state, query)?;
    if let Some(service) = &args.service {
        stage::services(config, std::slice::from_ref(service))?;
        for row in &mut rows {
            row.digests.retain(|name, _| name == service.as_str());
        }
    }
    super::show(global, &rows, |rows| render_history(rows))?;
    Ok(Code::Success)
}

fn render_history(rows: &[Deployment]) -> String {
    if rows.is_empty() {
        return "no deployments recorded\n".to_owned();
    }
    let mut table = vec![super::header(&[
        "TIME", "ENV", "VERSION", "EVENT", "SERVICE", "DIGEST", "ACTOR", "APPROVER", "EVIDENCE",
    ])];
    for d in rows {
        let time = d.time.format(&Rfc3339).unwrap_or_default();
        for (i, (service, digest)) in d.digests.iter().enumerate() {
            let first = i == 0;
            let cell = |s: String| if first { s } else { String::new() };
            table.push(vec![
                cell(time.clone()),
                cell(d.env.to_string()),
                cell(d.version.to_string()),
                cell(d.kind.to_string()),
                service.to_string(),
                digest.to_string(),
                cell(d.actor.clone()),
                cell(d.approver.clone().unwrap_or_else(|| "-".to_owned())),
                cell(d.evidence.clone().unwrap_or_else(|| "-".to_owned())),
            ]);
        }
    }
    super::render_table(&table)
}

/// Accepts RFC 3339 (`2026-11-23T19:40:00Z`) or `now`.
fn parse_time(text: &str) -> Result<OffsetDateTime, pipeline::Error> {
    if text == "now" {
        return Ok(OffsetDateTime::now_utc());
    }
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
        pipeline::Error::usage(format!("--at `{text}` is not an RFC 3339 time: {e}"))
            .with_hint("write e.g. 2026-11-23T19:40:00Z or 2026-11-23T20:40:00+01:00")
    })
}

/// `audit --live` ([`pipeline::audit::live`]): a line per drifted service, or `--json`.
async fn live(
    global: &Global,
    config: &Config,
    state: &StateDir,
    args: &AuditArgs,
) -> Result<Code, Failure> {
    let registry = stage::registry_client(config)?;
    let env = args.env.as_deref();
    let service = args.service.as_deref();
    let audit = pipeline::audit::live(config, state, &registry, env, service).await?;
    let pipeline::audit::LiveAudit { compared, drift } = &audit;
    if global.json {
        super::print_json(&audit)?;
    } else if drift.is_empty() {
        println!("no drift: {compared} services run exactly the recorded digests");
    } else {
        for d in drift {
            println!(
                "DRIFT {} {}: {} (recorded {}, live {})",
                d.env,
                d.service,
                d.problem,
                d.recorded.as_ref().map_or("-", verify::Digest::as_str),
                d.live.as_ref().map_or("-", verify::Digest::as_str)
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
