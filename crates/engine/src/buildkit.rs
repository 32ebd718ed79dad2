//! Building with BuildKit through `docker buildx build`, on the same engine as every other
//! call of the toolchain.
//!
//! Why buildx rather than BuildKit over the Engine API (bollard's BuildKit session):
//! - **Correctness.** `docker buildx build` is what `docker build` is on a developer's
//!   machine since Docker 23: the same client, the same Dockerfile frontend, the same
//!   handling of `.dockerignore`, named contexts and cache options. The image CI builds is
//!   the image the developer built.
//! - **Secrets.** buildx reads a build secret itself (`--secret id=…,env=VAR` or
//!   `src=FILE`) and serves it to BuildKit over its session; the value never enters the
//!   build request, our process memory, argv, or any log. With the API session the
//!   toolchain would read every secret and serve it over gRPC itself.
//! - **Progress.** `--progress=plain` gives one line per step with `CACHED` marked, which
//!   is what a Jenkins log needs; `--progress=tty` is BuildKit's own live display for a
//!   person at a terminal. The API session would leave us rendering solve status messages.
//! - **Speed.** Both drive the same BuildKit in the engine; buildx adds one process start.
//!
//! What buildx prints is never parsed for results: the image ID comes from
//! `--metadata-file`. Its stderr is read only to word a failure (which file, which line,
//! which step) and to classify it for the exit code.
//!
//! The engine's image store decides which digest of the metadata file is the image ID
//! ([`ImageStore`]): on the classic store an image is known by its config's digest
//! (`containerimage.config.digest`), on the containerd image store by the digest of its
//! manifest (`containerimage.digest`). Only the containerd image store lets the `docker`
//! driver export a registry cache (`--cache-to type=registry,…`); the classic store
//! exports inline cache only, and buildx refuses anything else.
//!
//! Provenance and SBOM attestations are switched off (`--provenance=false --sbom=false`):
//! with `--load` into the engine's classic image store they would be dropped (or, on a
//! containerd store, turn the pushed manifest into an index whose top-level digest is not
//! the image manifest's). The digest the gate compares stays the one the registry serves
//! for the tag, confirmed after `release push` as before.
//!
//! The result is loaded into the engine (`--load`), so `release push` pushes it through the
//! Engine API and confirms its digest against the registry exactly as for the classic
//! builder.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncBufReadExt;

use crate::Engine;
use crate::image::{BuildSpec, ImageError};

/// How BuildKit's progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// One line per step event, handed to the caller (CI, a pipe, a file).
    Plain,
    /// BuildKit's live display, drawn by buildx on the caller's terminal (stderr inherited).
    Tty,
}

/// A build secret: BuildKit mounts it at `/run/secrets/<id>` for a `RUN --mount=type=secret`
/// and it is never part of the image. buildx reads the value; this process never does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSecret {
    pub id: String,
    pub source: SecretSource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The name of an environment variable of buildx's (inherited) environment.
    Env(String),
    /// A file, by absolute path.
    File(PathBuf),
}

/// Where an engine keeps its images, as `docker info` reports it (`DriverStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageStore {
    /// The graph-driver store: an image's ID is the digest of its config. Its BuildKit
    /// exports inline cache only.
    Classic,
    /// The containerd image store (`"features": {"containerd-snapshotter": true}`): an
    /// image's ID is the digest of its manifest. Its BuildKit exports registry caches.
    Containerd,
}

impl ImageStore {
    /// The store a `DriverStatus` of `docker info` names: the containerd store reports
    /// `["driver-type", "io.containerd.snapshotter.v1"]`; the classic store never does.
    pub fn from_driver_status(status: &[Vec<String>]) -> ImageStore {
        let containerd = status.iter().any(|pair| {
            matches!(pair.as_slice(), [key, value]
                if key == "driver-type" && value.starts_with("io.containerd.snapshotter"))
        });
        if containerd {
            ImageStore::Containerd
        } else {
            ImageStore::Classic
        }
    }

    /// The key of buildx's metadata file that holds the ID this store knows the image by.
    fn id_key(self) -> &'static str {
        match self {
            ImageStore::Classic => "containerimage.config.digest",
            ImageStore::Containerd => "containerimage.digest",
        }
    }
}

/// How many lines of buildx's stderr a failure keeps to word itself.
const TAIL_LINES: usize = 80;

/// Whether `docker buildx` can be run against `endpoint`'s engine: `Err` says why not.
pub async fn buildx_available(endpoint: &crate::Endpoint) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new("docker");
    cmd.args(["buildx", "version"])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    child_env(endpoint, &mut cmd);
    match cmd.output().await {
        Ok(out) if out.status.success() => {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }
        Ok(out) => Err(format!(
            "`docker buildx version` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run `docker buildx`: {e}")),
    }
}

/// The child's environment: the engine variables set or removed from `endpoint` (as for
/// `docker stack deploy`), no `RELEASE_*` variable, and no `BUILDX_BUILDER` (the builder is
/// named on the command line).
fn child_env(endpoint: &crate::Endpoint, cmd: &mut tokio::process::Command) {
    endpoint.configure(cmd);
    crate::deploy::scrub_release_vars(cmd);
    cmd.env_remove("BUILDX_BUILDER");
}

/// The arguments of `docker buildx build` for `spec`; nothing secret is among them (a
/// secret is named by its id and where buildx reads it, never by value).
pub fn buildx_args(spec: &BuildSpec, metadata: &Path, progress: Progress) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |a: &str| args.push(a.into());
    push("buildx");
    push("build");
    // `default` is the docker driver of the engine DOCKER_HOST names: BuildKit inside
    // that engine, so the result lands in its image store.
    push("--builder");
    push("default");
    push("--progress");
    push(match progress {
        Progress::Plain => "plain",
        Progress::Tty => "tty",
    });
    push("--provenance=false");
    push("--sbom=false");
    push("--load");
    push("--tag");
    push(&spec.tag);
    for (k, v) in &spec.build_args {
        push("--build-arg");
        push(&format!("{k}={v}"));
    }
    for (k, v) in &spec.labels {
        push("--label");
        push(&format!("{k}={v}"));
    }
    if let Some(target) = &spec.target {
        push("--target");
        push(target);
    }
    if let Some(platform) = &spec.platform {
        push("--platform");
        push(platform);
    }
    for secret in &spec.secrets {
        push("--secret");
        match &secret.source {
            SecretSource::Env(var) => push(&format!("id={},env={var}", secret.id)),
            SecretSource::File(path) => {
                push(&format!("id={},src={}", secret.id, path.display()));
            }
        }
    }
    for from in &spec.cache_from {
        push("--cache-from");
        push(from);
    }
    if let Some(to) = &spec.cache_to {
        push("--cache-to");
        push(to);
    }
    args.push("--metadata-file".into());
    args.push(metadata.as_os_str().to_owned());
    args.push("--file".into());
    args.push(spec.context.join(&spec.dockerfile).into_os_string());
    args.push(spec.context.clone().into_os_string());
    args
}

impl Engine {
    /// The image store of this engine.
    pub async fn image_store(&self) -> Result<ImageStore, bollard::errors::Error> {
        let info = self.docker().info().await?;
        Ok(ImageStore::from_driver_status(
            info.driver_status.as_deref().unwrap_or_default(),
        ))
    }

    /// Builds `spec` with BuildKit (`docker buildx build`) on this engine and loads the
    /// image into it. With [`Progress::Plain`], `on_line` gets every line of progress.
    /// Returns the image ID the engine knows the image by, read from buildx's metadata
    /// file.
    pub async fn build_buildkit(
        &self,
        spec: &BuildSpec,
        progress: Progress,
        on_line: impl FnMut(&str),
    ) -> Result<String, ImageError> {
        let store = self
            .image_store()
            .await
            .map_err(|source| ImageError::Engine {
                host: self.host().to_owned(),
                what: "build",
                image: spec.tag.clone(),
                source: Box::new(source),
            })?;
        let dir = tempfile::tempdir().map_err(|e| ImageError::Buildx {
            image: spec.tag.clone(),
            message: format!("cannot create a temporary directory: {e}"),
        })?;
        let metadata = dir.path().join("metadata.json");
        let result = self.run_buildx(spec, &metadata, progress, on_line).await;
        let tail = match result {
            Ok(()) => return read_metadata(spec, &metadata, store),
            Err(Failed::Tail(tail)) => tail,
            Err(Failed::Spawn(e)) => return Err(e),
        };
        if progress == Progress::Tty {
            // buildx drew the error on the terminal; its stderr was not ours to read. Run
            // again with plain progress (everything before the failure is cached) to
            // locate and classify it, showing only the error.
            return match self
                .run_buildx(spec, &metadata, Progress::Plain, |_| {})
                .await
            {
                Ok(()) => read_metadata(spec, &metadata, store),
                Err(Failed::Tail(tail)) => Err(classify(spec, &tail)),
                Err(Failed::Spawn(e)) => Err(e),
            };
        }
        Err(classify(spec, &tail))
    }

    async fn run_buildx(
        &self,
        spec: &BuildSpec,
        metadata: &Path,
        progress: Progress,
        mut on_line: impl FnMut(&str),
    ) -> Result<(), Failed> {
        let mut cmd = tokio::process::Command::new("docker");
        cmd.args(buildx_args(spec, metadata, progress))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        child_env(self.endpoint(), &mut cmd);
        cmd.stderr(match progress {
            Progress::Plain => Stdio::piped(),
            Progress::Tty => Stdio::inherit(),
        });
        let spawn_error = |e: std::io::Error| {
            Failed::Spawn(ImageError::Buildx {
                image: spec.tag.clone(),
                message: format!("cannot run `docker buildx build`: {e}"),
            })
        };
        let mut child = cmd.spawn().map_err(spawn_error)?;
        let mut tail: Vec<String> = Vec::new();
        if let Some(stderr) = child.stderr.take() {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Some(line) = lines.next_line().await.map_err(spawn_error)? {
                let line = line.trim_end();
                if line.is_empty() {
                    continue;
                }
                on_line(line);
                tail.push(line.to_owned());
                if tail.len() > TAIL_LINES {
                    tail.remove(0);
                }
            }
        }
        let status = child.wait().await.map_err(spawn_error)?;
        if status.success() {
            Ok(())
        } else {
            Err(Failed::Tail(tail))
        }
    }
}

enum Failed {
    /// buildx ran and failed; the last lines of its stderr.
    Tail(Vec<String>),
    Spawn(ImageError),
}

/// The image ID from buildx's `--metadata-file`, the ID the engine's image store knows the
/// image by: `containerimage.config.digest` on the classic store, `containerimage.digest`
/// (the manifest's digest) on the containerd image store.
fn read_metadata(spec: &BuildSpec, path: &Path, store: ImageStore) -> Result<String, ImageError> {
    let fail = |message: String| ImageError::Metadata {
        image: spec.tag.clone(),
        message,
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| fail(format!("not JSON: {e}")))?;
    let key = store.id_key();
    let id = doc[key]
        .as_str()
        .ok_or_else(|| fail(format!("it names no {key}")))?;
    let valid = id
        .strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    if !valid {
        return Err(fail(format!("`{id}` is not a sha256 digest")));
    }
    Ok(id.to_owned())
}

/// Words and classifies a failed build from the end of buildx's plain stderr:
///
/// ```text
/// ------
///  > [3/3] RUN echo failing && exit 3:
/// 0.367 failing
/// ------
/// Dockerfile:3
/// --------------------
///    3 | >>> RUN echo failing && exit 3
/// --------------------
/// ERROR: failed to solve: process "/bin/sh -c …" did not complete successfully: exit code: 3
/// ```
pub fn classify(spec: &BuildSpec, tail: &[String]) -> ImageError {
    let image = spec.tag.clone();
    let message = tail
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("ERROR: "))
        .map(|m| {
            m.strip_prefix("failed to solve: ")
                .unwrap_or(m)
                .trim()
                .to_owned()
        })
        .unwrap_or_else(|| {
            tail.last()
                .cloned()
                .unwrap_or_else(|| "docker buildx build failed without a message".to_owned())
        });
    let line = dockerfile_line(tail);
    let file = spec.context.join(&spec.dockerfile);
    let lower = message.to_ascii_lowercase();
    if lower.contains("dockerfile parse error")
        || lower.contains("unknown instruction")
        || lower.contains("failed to parse dockerfile")
        || lower.contains("syntax error")
        || lower.contains("unknown flag")
        || lower.contains("failed to process")
    {
        return ImageError::Dockerfile {
            image,
            file,
            line,
            message,
        };
    }
    if lower.contains("cache export is not supported")
        || lower.contains("cache export feature is currently not supported")
    {
        return ImageError::Unsupported { image, message };
    }
    if lower.contains("cannot connect to the docker daemon")
        || lower.contains("error during connect")
        || lower.contains("connection refused")
        || lower.contains("no such host")
        || lower.contains("i/o timeout")
        || lower.contains("context deadline exceeded")
        || lower.contains("connection reset")
    {
        return ImageError::Buildx { image, message };
    }
    let step = tail
        .iter()
        .rev()
        .find_map(|l| {
            l.strip_prefix(" > ")
                .and_then(|s| s.strip_suffix(':'))
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "a build step".to_owned());
    let at = match line {
        Some(n) => format!("{}:{n}", file.display()),
        None => file.display().to_string(),
    };
    ImageError::BuildFailed {
        image,
        step: format!("{step} ({at})"),
        message,
        output: tail
            .iter()
            .rev()
            .take(15)
            .rev()
            .filter(|l| !l.starts_with("ERROR: "))
            .cloned()
            .collect(),
    }
}

/// The line buildx points at: `NAME:LINE` just above a `-----` rule.
fn dockerfile_line(tail: &[String]) -> Option<usize> {
    tail.windows(2).rev().find_map(|w| {
        if !w[1].starts_with("--------------------") {
            return None;
        }
        let (_, n) = w[0].rsplit_once(':')?;
        n.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn spec() -> BuildSpec {
        BuildSpec {
            context: PathBuf::from("/src/api"),
            dockerfile: "Dockerfile".into(),
            tag: "r.example.com/hestino/api:1.0.0".into(),
            build_args: BTreeMap::from([("VERSION".into(), "1.0.0".into())]),
            labels: BTreeMap::from([("org.opencontainers.image.version".into(), "1.0.0".into())]),
            target: Some("final".into()),
            secrets: vec![
                BuildSecret {
                    id: "npm".into(),
                    source: SecretSource::Env("NPM_TOKEN".into()),
                },
                BuildSecret {
                    id: "nuget".into(),
                    source: SecretSource::File("/src/nuget.config".into()),
                },
            ],
            cache_from: vec!["type=registry,ref=r.example.com/hestino/api:cache".into()],
            cache_to: Some("type=inline".into()),
            platform: Some("linux/amd64".into()),
        }
    }

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn the_command_line_names_secrets_by_id_and_source_and_switches_attestations_off() {
        let args: Vec<String> = buildx_args(&spec(), Path::new("/tmp/m.json"), Progress::Plain)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let joined = args.join(" ");
        for expected in [
            "buildx build --builder default --progress plain --provenance=false --sbom=false --load",
            "--tag r.example.com/hestino/api:1.0.0",
            "--build-arg VERSION=1.0.0",
            "--label org.opencontainers.image.version=1.0.0",
            "--target final",
            "--platform linux/amd64",
            "--secret id=npm,env=NPM_TOKEN",
            "--secret id=nuget,src=/src/nuget.config",
            "--cache-from type=registry,ref=r.example.com/hestino/api:cache",
            "--cache-to type=inline",
            "--metadata-file /tmp/m.json --file /src/api/Dockerfile /src/api",
        ] {
            assert!(joined.contains(expected), "{expected:?} not in {joined}");
        }
    }

    #[test]
    fn a_parse_error_is_a_dockerfile_error_with_its_line() {
        let tail = lines(
            "#1 DONE 0.0s\nDockerfile:3\n--------------------\n   1 |     FROM base\n   3 | >>> RUNN echo typo\n--------------------\nERROR: failed to solve: dockerfile parse error on line 3: unknown instruction: RUNN (did you mean RUN?)",
        );
        match classify(&spec(), &tail) {
            ImageError::Dockerfile {
                file,
                line,
                message,
                ..
            } => {
                assert_eq!(file, PathBuf::from("/src/api/Dockerfile"));
                assert_eq!(line, Some(3));
                assert!(
                    message.starts_with("dockerfile parse error on line 3"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_failing_step_names_the_step_file_and_line() {
        let tail = lines(
            "#6 0.367 failing\n#6 ERROR: process \"/bin/sh -c echo failing && exit 3\" did not complete successfully: exit code: 3\n------\n > [3/3] RUN echo failing && exit 3:\n0.367 failing\n------\nDockerfile:3\n--------------------\n   3 | >>> RUN echo failing && exit 3\n--------------------\nERROR: failed to solve: process \"/bin/sh -c echo failing && exit 3\" did not complete successfully: exit code: 3",
        );
        let e = classify(&spec(), &tail);
        let shown = e.to_string();
        assert!(matches!(e, ImageError::BuildFailed { .. }), "{e:?}");
        assert!(
            shown.contains("[3/3] RUN echo failing && exit 3 (/src/api/Dockerfile:3)"),
            "{shown}"
        );
        assert!(shown.contains("exit code: 3"), "{shown}");
    }

    #[test]
    fn an_unreachable_engine_and_an_unsupported_cache_export_are_told_apart() {
        let e = classify(
            &spec(),
            &lines(
                "ERROR: Cannot connect to the Docker daemon at unix:///x.sock. Is the docker daemon running?",
            ),
        );
        assert!(e.is_infrastructure(), "{e:?}");
        let e = classify(
            &spec(),
            &lines(
                "ERROR: Cache export is not supported for the docker driver.\nSwitch to a different driver, or turn on the containerd image store, and try again.",
            ),
        );
        assert!(matches!(e, ImageError::Unsupported { .. }), "{e:?}");
    }

    #[test]
    fn the_image_id_comes_from_the_metadata_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        let id = format!("sha256:{}", "ab".repeat(32));
        std::fs::write(
            &path,
            format!("{{\"containerimage.config.digest\": \"{id}\", \"containerimage.digest\": \"{id}\"}}"),
        )
        .unwrap();
        assert_eq!(
            read_metadata(&spec(), &path, ImageStore::Classic).unwrap(),
            id
        );
        std::fs::write(&path, "{\"containerimage.config.digest\": \"sha256:zz\"}").unwrap();
        assert!(read_metadata(&spec(), &path, ImageStore::Classic).is_err());
    }

    /// What buildx 0.13 writes for a build loaded into the containerd image store: the
    /// engine knows the image by its manifest's digest, not its config's.
    #[test]
    fn on_the_containerd_store_the_image_id_is_the_manifest_digest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        let config = format!("sha256:{}", "cf".repeat(32));
        let manifest = format!("sha256:{}", "3a".repeat(32));
        std::fs::write(
            &path,
            format!(
                r#"{{
  "buildx.build.ref": "default/default/wsbggjnne63nv684sm2m8u8mn",
  "cache.manifest": "{{\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"digest\":\"sha256:{cache}\",\"size\":1550}}",
  "containerimage.config.digest": "{config}",
  "containerimage.descriptor": {{
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "digest": "{manifest}",
    "size": 1086,
    "platform": {{ "architecture": "amd64", "os": "linux" }}
  }},
  "containerimage.digest": "{manifest}",
  "image.name": "r.example.com/hestino/api:1.0.0"
}}"#,
                cache = "4b".repeat(32)
            ),
        )
        .unwrap();
        assert_eq!(
            read_metadata(&spec(), &path, ImageStore::Containerd).unwrap(),
            manifest
        );
        assert_eq!(
            read_metadata(&spec(), &path, ImageStore::Classic).unwrap(),
            config
        );
        // A containerd-store build whose metadata lacks the manifest digest is unusable,
        // not silently the config's.
        std::fs::write(
            &path,
            format!("{{\"containerimage.config.digest\": \"{config}\"}}"),
        )
        .unwrap();
        let e = read_metadata(&spec(), &path, ImageStore::Containerd).unwrap_err();
        assert!(e.to_string().contains("containerimage.digest"), "{e}");
    }

    #[test]
    fn the_image_store_is_read_from_the_driver_status() {
        let pairs = |list: &[(&str, &str)]| -> Vec<Vec<String>> {
            list.iter()
                .map(|(k, v)| vec![(*k).to_owned(), (*v).to_owned()])
                .collect()
        };
        // Engine 26.1 with "features": {"containerd-snapshotter": true}.
        assert_eq!(
            ImageStore::from_driver_status(&pairs(&[(
                "driver-type",
                "io.containerd.snapshotter.v1"
            )])),
            ImageStore::Containerd
        );
        // The classic store's overlay2 graph driver.
        assert_eq!(
            ImageStore::from_driver_status(&pairs(&[
                ("Backing Filesystem", "extfs"),
                ("Supports d_type", "true"),
                ("Using metacopy", "false"),
                ("Native Overlay Diff", "true"),
                ("userxattr", "false"),
            ])),
            ImageStore::Classic
        );
        assert_eq!(ImageStore::from_driver_status(&[]), ImageStore::Classic);
    }
}
