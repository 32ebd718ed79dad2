//! Compose projects: applying a rendered compose file with `docker compose` (v2) and
//! knowing, through the Engine API, whether the project converged.
//!
//! The file is applied by the Docker CLI's compose plugin, the reference implementation:
//! [`compose_up`] runs `docker compose -p P -f FILE up -d --wait --remove-orphans`, and
//! [`compose_down`] removes a project. Like `docker stack deploy` ([`crate::stack_deploy`]),
//! the child reaches exactly the engine of the [`Endpoint`] (every `DOCKER_*` variable set
//! or removed) and none of the toolchain's `RELEASE_*` variables.
//!
//! `--wait`'s word is not taken alone: [`Engine::compose_converged`] reads every container
//! labelled `com.docker.compose.project=P` from the engine and judges each one: running,
//! healthy where it has a health check, and on the expected digest. The digest is checked
//! on what runs, not on what was asked: the container's image id is inspected, and that
//! image's `RepoDigests` must hold `REPO@sha256:…` of the pinned reference.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use bollard::models::HealthStatusEnum;
use bollard::query_parameters::{InspectContainerOptions, ListContainersOptions};

use registry_client::{ImageName, PinnedImage};

use crate::endpoint::Endpoint;
use crate::swarm::{Engine, EngineError};

/// The label Compose puts on every container of a project.
pub const COMPOSE_PROJECT_LABEL: &str = "com.docker.compose.project";
/// The label Compose puts on a container naming its service.
pub const COMPOSE_SERVICE_LABEL: &str = "com.docker.compose.service";
/// How often containers are read while a project settles.
const POLL: Duration = Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("cannot run `docker compose` for project {project}: {source}")]
    Spawn {
        project: String,
        source: std::io::Error,
    },
    #[error("`docker compose {action}` of project {project} failed (exit {code}): {output}")]
    Command {
        project: String,
        action: &'static str,
        code: String,
        output: String,
    },
}

/// What one [`Engine::compose_apply`] found.
#[derive(Debug)]
pub struct Applied {
    /// Service → why it failed: its problems, joined.
    pub failed: BTreeMap<String, String>,
    /// `docker compose up` refused. The containers may still look fine (then `failed` is
    /// empty and the caller decides whom the refusal fails).
    pub refused: Option<ComposeError>,
}

/// Why a Compose project could not be applied or judged at all.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// `docker compose` could not be run.
    #[error(transparent)]
    Spawn(ComposeError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Each service's problems joined into one cause.
pub fn failures_of(problems: &[Problem]) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for p in problems {
        out.entry(p.service.clone())
            .and_modify(|c| {
                c.push_str("; ");
                c.push_str(&p.cause);
            })
            .or_insert_with(|| p.cause.clone());
    }
    out
}

/// Runs `docker compose -p PROJECT -f FILE up -d --wait --wait-timeout SECONDS
/// --remove-orphans` against `endpoint`. Images are pulled when missing, with the registry
/// login the Docker CLI holds; no credential appears on the command line.
pub async fn compose_up(
    endpoint: &Endpoint,
    project: &str,
    file: &Path,
    wait_timeout: Duration,
) -> Result<(), ComposeError> {
    let seconds = wait_timeout.as_secs().max(1).to_string();
    compose(
        endpoint,
        project,
        file,
        "up",
        &[
            "up",
            "-d",
            "--wait",
            "--wait-timeout",
            &seconds,
            "--remove-orphans",
        ],
    )
    .await
}

/// Runs `docker compose -p PROJECT -f FILE down --remove-orphans`: the project's
/// containers and networks go; named volumes stay.
pub async fn compose_down(
    endpoint: &Endpoint,
    project: &str,
    file: &Path,
) -> Result<(), ComposeError> {
    compose(
        endpoint,
        project,
        file,
        "down",
        &["down", "--remove-orphans", "--timeout", "5"],
    )
    .await
}

async fn compose(
    endpoint: &Endpoint,
    project: &str,
    file: &Path,
    action: &'static str,
    args: &[&str],
) -> Result<(), ComposeError> {
    let mut cmd = tokio::process::Command::new("docker");
    cmd.args(["compose", "--progress", "plain", "-p", project])
        .arg("-f")
        .arg(file)
        .args(args);
    if let Some(dir) = file.parent() {
        cmd.current_dir(dir);
    }
    let failed = crate::deploy::run_docker(endpoint, cmd)
        .await
        .map_err(|source| ComposeError::Spawn {
            project: project.to_owned(),
            source,
        })?;
    failed.map_err(|f| ComposeError::Command {
        project: project.to_owned(),
        action,
        code: f.code,
        output: last_lines(&f.output, 6),
    })
}

/// The compose files merged by Compose itself (`docker compose -f A -f B config
/// --no-interpolate --no-normalize`): the one document `up` would apply, variables left
/// as written (the render pins the release's images). Needs the Docker CLI, not an engine.
pub fn compose_config(files: &[std::path::PathBuf]) -> Result<String, ComposeError> {
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let project = names.join(" + ");
    let mut cmd = std::process::Command::new("docker");
    cmd.args(["compose", "--project-name", "release-config"]);
    // Absolute, since the command runs in the first file's directory (where Compose
    // resolves the files' relative paths).
    let files: Vec<std::path::PathBuf> = files
        .iter()
        .map(|f| std::path::absolute(f).unwrap_or_else(|_| f.clone()))
        .collect();
    for file in &files {
        cmd.arg("-f").arg(file);
    }
    cmd.args(["config", "--no-interpolate", "--no-normalize"]);
    if let Some(dir) = files.first().and_then(|f| f.parent()) {
        cmd.current_dir(dir);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| ComposeError::Spawn {
            project: project.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(ComposeError::Command {
            project,
            action: "config",
            code: out
                .status
                .code()
                .map_or_else(|| "by a signal".to_owned(), |c| c.to_string()),
            output: last_lines(&String::from_utf8_lossy(&out.stderr), 3),
        });
    }
    String::from_utf8(out.stdout).map_err(|e| ComposeError::Command {
        project,
        action: "config",
        code: "0".to_owned(),
        output: format!("not UTF-8: {e}"),
    })
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// One container of a Compose project as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeContainer {
    pub service: String,
    pub name: String,
    /// The image reference the container was created from (`Config.Image`).
    pub image: String,
    /// The id of the image the container runs (`sha256:…`).
    pub image_id: String,
    /// The digests the running image is known by in registries (`REPO@sha256:…`).
    pub repo_digests: Vec<String>,
    /// `running`, `exited`, `restarting`, …
    pub state: String,
    pub exit_code: Option<i64>,
    /// `healthy`, `unhealthy`, `starting`, or `None` without a health check.
    pub health: Option<String>,
    /// The last failing health check's output, if any.
    pub health_output: Option<String>,
    /// The host ports it publishes, `PORT/PROTOCOL`.
    pub published: Vec<String>,
}

impl ComposeContainer {
    /// The image the container runs, pinned to the digest it really runs when the engine
    /// knows it: `Config.Image` when the running image is known by the digest it names;
    /// else the running image's own `REPO@sha256:…` in the same repository (a container
    /// recreated from a moved tag behind the tool's back, as Watchtower does); else
    /// `Config.Image` as written.
    pub fn running_image(&self) -> String {
        if let Some(named) = repo_digest(&self.image)
            && self.repo_digests.contains(&named)
        {
            return self.image.clone();
        }
        let repo = ImageName::split(&self.image).repository;
        self.repo_digests
            .iter()
            .find(|d| ImageName::split(d).repository == repo)
            .cloned()
            .unwrap_or_else(|| self.image.clone())
    }
}

/// Why a container does not count as converged, and whether waiting could change that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub service: String,
    pub cause: String,
    /// Still starting: waiting may resolve it.
    pub transient: bool,
    /// The service has no container of the pinned image (none at all, or one of another
    /// image): what runs is not the new release, so the cause is elsewhere (e.g. a pull
    /// that failed, as `docker compose` says).
    pub not_the_release: bool,
}

impl Engine {
    /// Every container of Compose project `project`, stopped ones included.
    pub async fn compose_containers(
        &self,
        project: &str,
    ) -> Result<Vec<ComposeContainer>, EngineError> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![format!("{COMPOSE_PROJECT_LABEL}={project}")],
        )]);
        let listed = self
            .docker()
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(|source| self.compose_error("list containers", source))?;
        let mut out = Vec::new();
        for summary in listed {
            let mut published: Vec<String> = summary
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    let protocol = p.typ.map_or_else(|| "tcp".to_owned(), |t| t.to_string());
                    Some(format!("{}/{protocol}", p.public_port?))
                })
                .collect();
            published.sort();
            published.dedup();
            let Some(id) = summary.id else { continue };
            let inspected = match self
                .docker()
                .inspect_container(&id, None::<InspectContainerOptions>)
                .await
            {
                Ok(c) => c,
                // Removed between list and inspect (compose recreating it).
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => continue,
                Err(source) => return Err(self.compose_error("inspect container", source)),
            };
            let config = inspected.config.unwrap_or_default();
            let service = config
                .labels
                .as_ref()
                .and_then(|l| l.get(COMPOSE_SERVICE_LABEL))
                .cloned()
                .unwrap_or_default();
            let state = inspected.state.unwrap_or_default();
            let health = state.health.clone();
            let health_output = health
                .as_ref()
                .and_then(|h| h.log.as_ref())
                .and_then(|log| log.iter().rev().find(|r| r.exit_code != Some(0)))
                .map(|r| {
                    let text = r.output.clone().unwrap_or_default();
                    let text = text.trim();
                    format!(
                        "exit {}: {}",
                        r.exit_code.unwrap_or(-1),
                        if text.is_empty() { "(no output)" } else { text }
                    )
                });
            let repo_digests = match &inspected.image {
                Some(image_id) => match self.docker().inspect_image(image_id).await {
                    Ok(image) => image.repo_digests.unwrap_or_default(),
                    Err(bollard::errors::Error::DockerResponseServerError {
                        status_code: 404,
                        ..
                    }) => Vec::new(),
                    Err(source) => return Err(self.compose_error("inspect image", source)),
                },
                None => Vec::new(),
            };
            out.push(ComposeContainer {
                service,
                name: inspected
                    .name
                    .unwrap_or(id)
                    .trim_start_matches('/')
                    .to_owned(),
                image: config.image.unwrap_or_default(),
                image_id: inspected.image.clone().unwrap_or_default(),
                repo_digests,
                state: state
                    .status
                    .map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
                exit_code: state.exit_code,
                health: health.and_then(|h| h.status).and_then(|s| match s {
                    HealthStatusEnum::EMPTY | HealthStatusEnum::NONE => None,
                    other => Some(other.to_string()),
                }),
                health_output,
                published,
            });
        }
        out.sort_by(|a, b| (&a.service, &a.name).cmp(&(&b.service, &b.name)));
        Ok(out)
    }

    /// Reads the project until every container converged (`Ok(containers)`), a container
    /// definitely failed, or `deadline` passed; `Err` lists each service's problems.
    /// `expected` maps each service of the file to its pinned `REPO:TAG@sha256:…`.
    pub async fn compose_converged(
        &self,
        project: &str,
        expected: &BTreeMap<String, String>,
        deadline: Instant,
    ) -> Result<Result<Vec<ComposeContainer>, Vec<Problem>>, EngineError> {
        loop {
            let containers = self.compose_containers(project).await?;
            let problems = judge(&containers, expected);
            if problems.is_empty() {
                return Ok(Ok(containers));
            }
            let settled = problems.iter().any(|p| !p.transient);
            if settled || Instant::now() >= deadline {
                return Ok(Err(problems));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Applies `file` as `project` with [`compose_up`] and judges what runs with
    /// [`Engine::compose_converged`], until `timeout` or, when `--wait` already said no, at
    /// once. Every deploy of a Compose project (in place, or a blue-green colour) is this.
    pub async fn compose_apply(
        &self,
        project: &str,
        file: &Path,
        expected: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<Applied, ApplyError> {
        let deadline = Instant::now() + timeout;
        let applied = compose_up(self.endpoint(), project, file, timeout).await;
        if let Err(e @ ComposeError::Spawn { .. }) = applied {
            return Err(ApplyError::Spawn(e));
        }
        // `--wait` said no: read what it left, without waiting for more.
        let judge_until = if applied.is_ok() {
            deadline
        } else {
            Instant::now()
        };
        let judged = self
            .compose_converged(project, expected, judge_until)
            .await?;
        let mut failed = match &judged {
            Ok(_) => BTreeMap::new(),
            Err(problems) => failures_of(problems),
        };
        // A service still on its old image (or on none) failed where `docker compose` says.
        if let (Err(e), Err(problems)) = (&applied, &judged) {
            for p in problems.iter().filter(|p| p.not_the_release) {
                if let Some(cause) = failed.get_mut(&p.service)
                    && !cause.contains("docker compose")
                {
                    cause.push_str(&format!("; {e}"));
                }
            }
        }
        Ok(Applied {
            failed,
            refused: applied.err(),
        })
    }

    fn compose_error(&self, what: &'static str, source: bollard::errors::Error) -> EngineError {
        EngineError::Request {
            host: self.host().to_owned(),
            what,
            source,
        }
    }
}

/// `REPO@sha256:…` of a pinned `REPO[:TAG]@sha256:…`, as `RepoDigests` spells it.
fn repo_digest(pinned: &str) -> Option<String> {
    PinnedImage::parse(pinned).ok().map(|p| p.repo_digest())
}

/// Every reason the project is not converged: a service of the file without a running
/// container, a container not running, unhealthy or still starting, on another image than
/// the pinned one, or of a service the file does not have.
pub fn judge(containers: &[ComposeContainer], expected: &BTreeMap<String, String>) -> Vec<Problem> {
    let mut problems = Vec::new();
    for service in expected.keys() {
        if !containers.iter().any(|c| &c.service == service) {
            problems.push(Problem {
                service: service.clone(),
                cause: "no container".to_owned(),
                transient: true,
                not_the_release: true,
            });
        }
    }
    for c in containers {
        let problem = |cause: String, transient: bool| Problem {
            service: c.service.clone(),
            cause: format!("container {}: {cause}", c.name),
            transient,
            not_the_release: false,
        };
        let Some(pinned) = expected.get(&c.service) else {
            problems.push(problem("not in the compose file".to_owned(), false));
            continue;
        };
        match c.state.as_str() {
            "running" => {}
            "created" | "restarting" => {
                problems.push(problem(format!("{} (not running yet)", c.state), true));
                continue;
            }
            other => {
                let code = c
                    .exit_code
                    .map(|code| format!(", exit code {code}"))
                    .unwrap_or_default();
                problems.push(problem(format!("{other}{code}"), false));
                continue;
            }
        }
        match c.health.as_deref() {
            Some("unhealthy") => {
                let output = c
                    .health_output
                    .as_deref()
                    .map(|o| format!("; health check: {o}"))
                    .unwrap_or_default();
                problems.push(problem(format!("unhealthy{output}"), false));
                continue;
            }
            Some("starting") => {
                problems.push(problem("health check still starting".to_owned(), true));
                continue;
            }
            _ => {}
        }
        match repo_digest(pinned) {
            Some(want) if c.repo_digests.contains(&want) => {}
            Some(want) => {
                let want = ImageName::split(&want);
                let runs: Vec<&str> = c
                    .repo_digests
                    .iter()
                    .map(|d| ImageName::split(d))
                    .filter(|d| d.repository == want.repository)
                    .filter_map(|d| d.digest)
                    .collect();
                let runs = if runs.is_empty() {
                    format!("image {}", c.image_id)
                } else {
                    runs.join(", ")
                };
                let mut p = problem(
                    format!(
                        "runs {runs}, not the recorded {}",
                        want.digest.unwrap_or_default()
                    ),
                    false,
                );
                p.not_the_release = true;
                problems.push(p);
            }
            None => problems.push(problem(
                format!("the compose file's image {pinned} is not pinned by digest"),
                false,
            )),
        }
    }
    problems.sort_by(|a, b| a.service.cmp(&b.service));
    problems
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const D: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn container(service: &str, digest: &str) -> ComposeContainer {
        ComposeContainer {
            service: service.to_owned(),
            name: format!("p-{service}-1"),
            image: format!("127.0.0.1:5443/t/{service}:1.0.0@{D}"),
            image_id: format!("sha256:{}", "c".repeat(64)),
            repo_digests: vec![format!("127.0.0.1:5443/t/{service}@{digest}")],
            state: "running".to_owned(),
            exit_code: Some(0),
            health: Some("healthy".to_owned()),
            health_output: None,
            published: Vec::new(),
        }
    }

    #[test]
    fn the_running_image_is_pinned_to_what_really_runs() {
        let c = container("api", D);
        assert_eq!(c.running_image(), c.image, "runs what its config names");
        let other = format!("sha256:{}", "b".repeat(64));
        let moved = ComposeContainer {
            image: "127.0.0.1:5443/t/api:latest".to_owned(),
            ..container("api", &other)
        };
        assert_eq!(
            moved.running_image(),
            format!("127.0.0.1:5443/t/api@{other}")
        );
        let swapped = container("api", &other);
        assert_eq!(
            swapped.running_image(),
            format!("127.0.0.1:5443/t/api@{other}"),
            "config names D, the image runs another digest"
        );
        let unknown = ComposeContainer {
            repo_digests: Vec::new(),
            image: "busybox:latest".to_owned(),
            ..container("api", D)
        };
        assert_eq!(unknown.running_image(), "busybox:latest");
    }

    #[test]
    fn repo_digest_drops_the_tag_but_keeps_a_registry_port() {
        assert_eq!(
            repo_digest(&format!("127.0.0.1:5443/t/api:1.0.0@{D}")).unwrap(),
            format!("127.0.0.1:5443/t/api@{D}")
        );
        assert_eq!(
            repo_digest(&format!("127.0.0.1:5443/t/api@{D}")).unwrap(),
            format!("127.0.0.1:5443/t/api@{D}")
        );
        assert_eq!(repo_digest("t/api:1.0.0"), None);
    }

    #[test]
    fn a_project_converges_only_running_healthy_and_on_the_pinned_digest() {
        let expected = BTreeMap::from([
            ("api".to_owned(), format!("127.0.0.1:5443/t/api:1.0.0@{D}")),
            (
                "worker".to_owned(),
                format!("127.0.0.1:5443/t/worker:1.0.0@{D}"),
            ),
        ]);
        let good = vec![container("api", D), container("worker", D)];
        assert!(judge(&good, &expected).is_empty());

        let mut unhealthy = good.clone();
        unhealthy[0].health = Some("unhealthy".to_owned());
        unhealthy[0].health_output = Some("exit 1: unhealthy".to_owned());
        let p = judge(&unhealthy, &expected);
        assert_eq!(p.len(), 1);
        assert!(!p[0].transient);
        assert_eq!(
            p[0].cause,
            "container p-api-1: unhealthy; health check: exit 1: unhealthy"
        );

        let mut exited = good.clone();
        exited[1].state = "exited".to_owned();
        exited[1].exit_code = Some(3);
        let p = judge(&exited, &expected);
        assert_eq!(p[0].service, "worker");
        assert!(p[0].cause.ends_with("exited, exit code 3"), "{p:?}");

        let other = format!("sha256:{}", "b".repeat(64));
        let drifted = vec![container("api", &other), container("worker", D)];
        let p = judge(&drifted, &expected);
        assert_eq!(
            p[0].cause,
            format!("container p-api-1: runs {other}, not the recorded {D}")
        );
        assert!(p[0].not_the_release);
        assert!(!p[0].transient);

        let p = judge(&good[..1], &expected);
        assert_eq!(p[0].service, "worker");
        assert!(p[0].transient);

        let mut starting = good.clone();
        starting[0].health = Some("starting".to_owned());
        assert!(judge(&starting, &expected)[0].transient);

        let mut stray = good.clone();
        stray.push(container("old", D));
        assert_eq!(
            judge(&stray, &expected)[0].cause,
            "container p-old-1: not in the compose file"
        );
    }
}
