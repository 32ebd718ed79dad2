//! The deploy of a Compose environment (`orchestrator = "compose"`): the rendered, pinned
//! file is applied with `docker compose up -d --wait --remove-orphans`, then the project's
//! containers are read from the engine and judged ([`engine::compose`]). On failure the
//! previous rendered file (the environment pointer's version, from the state dir) is
//! applied again and judged the same way; a first deploy is taken down. The records are
//! the Swarm path's: pointer, `deployed`, `deploy-failed`, `rolled-back`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use engine::{Change, Outcome, Progress, StackFile};

use super::{Deployed, Plan, Summary};
use crate::stage;
use crate::{Error, Kind};

/// Applies the rendered, pinned compose file `file` (written at `stack_path`).
pub(super) async fn deploy(
    c: &Plan<'_>,
    yaml: &str,
    file: &StackFile,
    stack_path: &Path,
) -> Result<Deployed, Error> {
    let engine = stage::connect(c.s.config, c.env_name.as_str()).await?;
    let project = c.env.compose_project();
    let expected = file.images();
    let before = engine.compose_containers(project).await?;
    let changes: Vec<Change> = expected
        .iter()
        .filter(|(service, image)| {
            !before
                .iter()
                .any(|b| &b.service == *service && &b.image == *image)
        })
        .map(|(service, image)| Change {
            service: service.clone(),
            name: format!("{project}-{service}"),
            image: image.clone(),
            before: None,
        })
        .collect();
    (c.s.progress)(Progress {
        service: "*",
        state: format!(
            "applying {} to compose project {project} ({})",
            c.version,
            stack_path.display()
        ),
    });
    let engine::Applied {
        mut failed,
        refused,
    } = engine
        .compose_apply(project, stack_path, &expected, c.timeout)
        .await?;
    if let Some(e) = &refused
        && failed.is_empty()
    {
        // The containers look fine but Compose refused: every change failed with its word.
        for change in &changes {
            failed.insert(change.service.clone(), e.to_string());
        }
        if failed.is_empty() {
            return Err(Error::infrastructure(e.to_string()));
        }
    }
    let after = c.started.elapsed();
    let outcomes: Vec<Outcome> = changes
        .iter()
        .map(|change| match failed.get(&change.service) {
            Some(cause) => Outcome::Failed {
                cause: cause.clone(),
            },
            None => Outcome::Converged { after },
        })
        .collect();
    let previous_version = c.previous.as_ref().map(|p| p.version.clone());
    let summary = |outcome| {
        Summary {
            env: c.env,
            version: c.version,
            previous_version: &previous_version,
            outcome,
            stack_path,
            started: c.started,
            expected: &expected,
            changes: &changes,
            outcomes: &outcomes,
        }
        .report(c.env_name)
    };

    if failed.is_empty() {
        c.record_live(previous_version.clone(), &changes, yaml)?;
        return Ok(Deployed::done(summary(if c.rolling_back {
            "rolled-back"
        } else {
            "deployed"
        })));
    }

    let message = c.record_failed(failed.iter(), previous_version.clone())?;
    if changes.is_empty() {
        // Nothing was changed: the live project is not what the records would claim.
        let failure = Error::new(Kind::Negative, message)
            .with_hint(format!("inspect with `docker compose -p {project} ps`"));
        return Ok(Deployed::failed(summary("deploy-failed"), failure));
    }
    let stuck = roll_back(c, &engine, project, stack_path).await;
    let rolled: Vec<String> = changes.iter().map(|ch| ch.service.clone()).collect();
    if stuck.is_none() {
        c.record_rolled_back(rolled.clone(), previous_version.clone())?;
    }
    let report = summary("deploy-failed");
    if let Some(stuck) = stuck {
        let failure = Error::infrastructure(format!(
            "{message}; and the rollback did not converge: {stuck}"
        ))
        .with_hint(format!("inspect with `docker compose -p {project} ps`"));
        return Ok(Deployed::failed(report, failure));
    }
    Ok(Deployed::failed(
        report,
        super::rolled_back(
            &message,
            &rolled,
            previous_version.as_ref().map(verify::Version::as_str),
        ),
    ))
}

/// Applies the previous version's rendered file again and judges it, or, on a first
/// deploy, takes the project down. `Some(cause)` when that did not work.
async fn roll_back(
    c: &Plan<'_>,
    engine: &engine::Engine,
    project: &str,
    stack_path: &Path,
) -> Option<String> {
    let Some(previous) = &c.previous else {
        (c.s.progress)(Progress {
            service: "*",
            state: format!("first deploy failed: removing compose project {project}"),
        });
        return engine::compose_down(engine.endpoint(), project, stack_path)
            .await
            .err()
            .map(|e| e.to_string());
    };
    let file: PathBuf = c.s.state.stack_path(c.env_name, &previous.version);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) => {
            return Some(format!(
                "the rendered file of {} is not on record ({}: {e})",
                previous.version,
                file.display()
            ));
        }
    };
    let earlier = match StackFile::parse(&file, &text) {
        Ok(f) => f,
        Err(e) => return Some(e.to_string()),
    };
    (c.s.progress)(Progress {
        service: "*",
        state: format!(
            "rolling back compose project {project} to {} ({})",
            previous.version,
            file.display()
        ),
    });
    let deadline = Instant::now() + c.timeout;
    if let Err(e) = engine::compose_up(engine.endpoint(), project, &file, c.timeout).await {
        return Some(e.to_string());
    }
    match engine
        .compose_converged(project, &earlier.images(), deadline)
        .await
    {
        Ok(Ok(_)) => None,
        Ok(Err(problems)) => Some(
            engine::compose::failures_of(&problems)
                .iter()
                .map(|(s, cause)| format!("service {s}: {cause}"))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Err(e) => Some(e.to_string()),
    }
}
