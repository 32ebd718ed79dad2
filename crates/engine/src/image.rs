//! Building and pushing images through the Engine API.
//!
//! The engine does the work; this module packs the build context (honouring
//! `.dockerignore`), streams the engine's output line by line to the caller, and reads the
//! pushed digest from the push stream so the caller can confirm it against the registry.
//!
//! [`Engine::build`] is the Engine API's classic builder, kept for an engine without
//! BuildKit and for a service that asks for it; builds go through BuildKit
//! ([`crate::buildkit`]) otherwise.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bollard::auth::DockerCredentials;
use bollard::query_parameters::{BuildImageOptions, PushImageOptions};
use futures_util::StreamExt;

use crate::Engine;

/// What to build and how to tag it.
#[derive(Debug, Clone)]
pub struct BuildSpec {
    pub context: PathBuf,
    /// Dockerfile path inside the context.
    pub dockerfile: String,
    /// Full reference to tag, `REGISTRY/REPO:TAG`.
    pub tag: String,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub target: Option<String>,
    /// BuildKit only: build secrets, by id and where buildx reads them.
    pub secrets: Vec<crate::buildkit::BuildSecret>,
    /// BuildKit only: `--cache-from` specs, e.g. `type=registry,ref=HOST/REPO:TAG`.
    pub cache_from: Vec<String>,
    /// BuildKit only: a `--cache-to` spec, e.g. `type=inline`.
    pub cache_to: Option<String>,
    /// BuildKit only: `os/arch`.
    pub platform: Option<String>,
}

/// Registry credentials for a push: a username and password, or the identity token
/// `docker login` keeps for an OAuth2 token server. No secret reaches a log or an error.
#[derive(Clone)]
pub enum PushAuth {
    Basic {
        username: String,
        password: String,
        server: String,
    },
    IdentityToken {
        token: String,
        server: String,
    },
}

impl PushAuth {
    fn credentials(&self) -> DockerCredentials {
        match self {
            PushAuth::Basic {
                username,
                password,
                server,
            } => DockerCredentials {
                username: Some(username.clone()),
                password: Some(password.clone()),
                serveraddress: Some(server.clone()),
                ..Default::default()
            },
            PushAuth::IdentityToken { token, server } => DockerCredentials {
                identitytoken: Some(token.clone()),
                serveraddress: Some(server.clone()),
                ..Default::default()
            },
        }
    }
}

impl std::fmt::Debug for PushAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushAuth::Basic {
                username, server, ..
            } => f
                .debug_struct("PushAuth::Basic")
                .field("username", username)
                .field("password", &"***")
                .field("server", server)
                .finish(),
            PushAuth::IdentityToken { server, .. } => f
                .debug_struct("PushAuth::IdentityToken")
                .field("token", &"***")
                .field("server", server)
                .finish(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("cannot read build context {}: {message}", context.display())]
    Context { context: PathBuf, message: String },
    #[error("build of {image} failed at {step}: {message}")]
    BuildFailed {
        image: String,
        /// The Dockerfile step that failed, e.g. `Step 3/7 : COPY app /app`.
        step: String,
        message: String,
        /// The last lines of build output before the failure.
        output: Vec<String>,
    },
    #[error("Dockerfile error in {}{}: {message}", file.display(), line.map(|n| format!(":{n}")).unwrap_or_default())]
    Dockerfile {
        image: String,
        file: PathBuf,
        line: Option<usize>,
        message: String,
    },
    #[error("build of {image} asks for what this builder cannot do: {message}")]
    Unsupported { image: String, message: String },
    #[error("BuildKit build of {image} failed: {message}")]
    Buildx { image: String, message: String },
    #[error("BuildKit built {image} but its metadata file is unusable: {message}")]
    Metadata { image: String, message: String },
    #[error("push of {image} failed: {message}")]
    PushFailed { image: String, message: String },
    #[error("push of {image} finished without reporting a digest")]
    NoDigest { image: String },
    #[error("Docker Engine at {host} failed during {what} of {image}: {source}")]
    Engine {
        host: String,
        what: &'static str,
        image: String,
        source: Box<bollard::errors::Error>,
    },
}

impl ImageError {
    /// Whether the engine or the network failed, rather than the input.
    pub fn is_infrastructure(&self) -> bool {
        matches!(
            self,
            ImageError::Engine { .. }
                | ImageError::PushFailed { .. }
                | ImageError::Buildx { .. }
                | ImageError::Metadata { .. }
        )
    }

    /// Whether the registry refused the credentials the engine pushed with (the engine only
    /// passes on the registry's words: `unauthorized: authentication required`, `denied: …`).
    pub fn is_auth(&self) -> bool {
        let refused = |message: &str| {
            let m = message.to_ascii_lowercase();
            m.contains("unauthorized")
                || m.contains("authentication required")
                || m.starts_with("denied")
                || m.contains("no basic auth credentials")
        };
        match self {
            ImageError::PushFailed { message, .. } => refused(message),
            // The engine also reports the registry's refusal as an error of the push stream.
            ImageError::Engine {
                what: "push",
                source,
                ..
            } => match source.as_ref() {
                bollard::errors::Error::DockerStreamError { error } => refused(error),
                _ => false,
            },
            _ => false,
        }
    }
}

/// How many lines of build output a failure keeps.
const FAILURE_CONTEXT_LINES: usize = 15;

impl Engine {
    /// Builds `spec`, calling `on_line` for every line of build output. Returns the image ID.
    pub async fn build(
        &self,
        spec: &BuildSpec,
        mut on_line: impl FnMut(&str),
    ) -> Result<String, ImageError> {
        let context = spec.context.clone();
        let dockerfile = spec.dockerfile.clone();
        let tar = tokio::task::spawn_blocking(move || pack_context(&context, &dockerfile))
            .await
            .map_err(|e| ImageError::Context {
                context: spec.context.clone(),
                message: e.to_string(),
            })??;
        let options = BuildImageOptions {
            dockerfile: spec.dockerfile.clone(),
            t: Some(spec.tag.clone()),
            rm: true,
            forcerm: true,
            buildargs: Some(to_hash_map(&spec.build_args)),
            labels: Some(to_hash_map(&spec.labels)),
            target: spec.target.clone().unwrap_or_default(),
            ..Default::default()
        };
        let mut stream =
            self.docker()
                .build_image(options, None, Some(bollard::body_full(tar.into())));
        let mut recent: Vec<String> = Vec::new();
        let mut step = String::from("the first step");
        let mut image_id = None;
        while let Some(item) = stream.next().await {
            let info = item.map_err(|source| build_error(self, spec, &step, &recent, source))?;
            if let Some(text) = &info.stream {
                for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
                    if line.starts_with("Step ") {
                        step = line.to_owned();
                    }
                    on_line(line);
                    recent.push(line.to_owned());
                    if recent.len() > FAILURE_CONTEXT_LINES {
                        recent.remove(0);
                    }
                }
            }
            if let Some(message) = info.error_detail.and_then(|d| d.message).or(info.error) {
                return Err(ImageError::BuildFailed {
                    image: spec.tag.clone(),
                    step,
                    message: message.trim().to_owned(),
                    output: recent,
                });
            }
            if let Some(id) = info.aux.and_then(|a| a.id) {
                image_id = Some(id);
            }
        }
        match image_id {
            Some(id) => Ok(id),
            // The classic builder reports the ID only in its last line.
            None => Ok(recent
                .iter()
                .rev()
                .find_map(|l| l.strip_prefix("Successfully built "))
                .unwrap_or_default()
                .to_owned()),
        }
    }

    /// Pushes `repository:tag` and returns the digest the engine reports for it.
    pub async fn push(
        &self,
        repository: &str,
        tag: &str,
        auth: Option<&PushAuth>,
        mut on_line: impl FnMut(&str),
    ) -> Result<String, ImageError> {
        let image = format!("{repository}:{tag}");
        let credentials = auth.map(PushAuth::credentials);
        let options = PushImageOptions {
            tag: Some(tag.to_owned()),
            ..Default::default()
        };
        let mut stream = self
            .docker()
            .push_image(repository, Some(options), credentials);
        let mut digest = None;
        while let Some(item) = stream.next().await {
            let info = item.map_err(|source| ImageError::Engine {
                host: self.host().to_owned(),
                what: "push",
                image: image.clone(),
                source: Box::new(source),
            })?;
            if let Some(message) = info.error_detail.and_then(|d| d.message).or(info.error) {
                return Err(ImageError::PushFailed {
                    image,
                    message: message.trim().to_owned(),
                });
            }
            if let Some(status) = &info.status {
                if let Some(found) = digest_in_status(status) {
                    digest = Some(found);
                }
                on_line(status);
            }
        }
        digest.ok_or(ImageError::NoDigest { image })
    }
}

impl Engine {
    /// A label of a local image, if the image and the label exist.
    pub async fn image_label(&self, reference: &str, key: &str) -> Option<String> {
        let image = self.docker().inspect_image(reference).await.ok()?;
        image.config?.labels?.remove(key)
    }

    /// `os/arch[/variant]` of a local image, if the engine knows it.
    pub async fn image_platform(&self, reference: &str) -> Option<String> {
        let image = self.docker().inspect_image(reference).await.ok()?;
        let os = image.os?;
        let arch = image.architecture?;
        Some(match image.variant.filter(|v| !v.is_empty()) {
            Some(variant) => format!("{os}/{arch}/{variant}"),
            None => format!("{os}/{arch}"),
        })
    }
}

fn build_error(
    engine: &Engine,
    spec: &BuildSpec,
    step: &str,
    recent: &[String],
    source: bollard::errors::Error,
) -> ImageError {
    // The engine reports a failing RUN or COPY as an error of the stream itself.
    match &source {
        bollard::errors::Error::DockerStreamError { error } => ImageError::BuildFailed {
            image: spec.tag.clone(),
            step: step.to_owned(),
            message: error.trim().to_owned(),
            output: recent.to_vec(),
        },
        _ => ImageError::Engine {
            host: engine.host().to_owned(),
            what: "build",
            image: spec.tag.clone(),
            source: Box::new(source),
        },
    }
}

/// The digest in a push status line such as `1.0.0: digest: sha256:… size: 527`.
fn digest_in_status(status: &str) -> Option<String> {
    let rest = status.split_once("digest: ")?.1;
    let digest = rest.split_whitespace().next()?;
    let hex = digest.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then(|| digest.to_owned())
}

fn to_hash_map(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Tars the build context as `docker build` would send it: everything except what
/// `.dockerignore` excludes; the Dockerfile and `.dockerignore` are always sent.
///
/// `.dockerignore` patterns are anchored at the context root (unlike `.gitignore`), so each
/// is anchored with a leading `/` before being handed to the gitignore matcher; `!`
/// exceptions and `**` behave as in Docker. The tar is built in memory: build contexts
/// here are small, and the engine needs the whole archive before it starts anyway.
pub fn pack_context(context: &Path, dockerfile: &str) -> Result<Vec<u8>, ImageError> {
    let fail = |message: String| ImageError::Context {
        context: context.to_owned(),
        message,
    };
    if !context.is_dir() {
        return Err(fail("not a directory".to_owned()));
    }
    let ignore = dockerignore(context).map_err(fail)?;
    // As Docker does: an excluded directory is still walked when an exception (`!…`) could
    // keep something inside it (`docs` then `!docs/keep.md`); its own entry is not sent.
    let has_exceptions = ignore.num_whitelists() > 0;
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    let mut stack = vec![context.to_owned()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| fail(format!("{}: {e}", dir.display())))?
            .collect::<Result<_, _>>()
            .map_err(|e| fail(format!("{}: {e}", dir.display())))?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let path = entry.path();
            let relative = path
                .strip_prefix(context)
                .map_err(|e| fail(e.to_string()))?;
            let is_dir = entry.file_type().map_err(|e| fail(e.to_string()))?.is_dir();
            let always =
                relative == Path::new(dockerfile) || relative == Path::new(".dockerignore");
            if !always
                && ignore
                    .matched_path_or_any_parents(relative, is_dir)
                    .is_ignore()
            {
                if is_dir && has_exceptions {
                    stack.push(path);
                }
                continue;
            }
            if is_dir {
                builder
                    .append_dir(relative, &path)
                    .map_err(|e| fail(format!("{}: {e}", path.display())))?;
                stack.push(path);
            } else {
                builder
                    .append_path_with_name(&path, relative)
                    .map_err(|e| fail(format!("{}: {e}", path.display())))?;
            }
        }
    }
    builder.into_inner().map_err(|e| fail(e.to_string()))
}

fn dockerignore(context: &Path) -> Result<ignore::gitignore::Gitignore, String> {
    let mut builder = ignore::gitignore::GitignoreBuilder::new(context);
    let path = context.join(".dockerignore");
    if let Ok(text) = std::fs::read_to_string(&path) {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (negate, pattern) = match line.strip_prefix('!') {
                Some(p) => ("!", p),
                None => ("", line),
            };
            let anchored = format!("{negate}/{}", pattern.trim_start_matches('/'));
            builder
                .add_line(None, &anchored)
                .map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
        }
    }
    builder.build().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_refusals_are_auth_errors_and_other_push_failures_are_not() {
        let push = |m: &str| ImageError::PushFailed {
            image: "r/x:1".into(),
            message: m.into(),
        };
        assert!(push("unauthorized: authentication required").is_auth());
        assert!(push("denied: requested access to the resource is denied").is_auth());
        assert!(push("no basic auth credentials").is_auth());
        assert!(!push("blob upload unknown").is_auth());
        assert!(!push("received unexpected HTTP status: 500 Internal Server Error").is_auth());
        let stream = |m: &str| ImageError::Engine {
            host: "unix:///var/run/docker.sock".into(),
            what: "push",
            image: "r/x:1".into(),
            source: Box::new(bollard::errors::Error::DockerStreamError { error: m.into() }),
        };
        assert!(stream("unauthorized: authentication required").is_auth());
        assert!(!stream("connection reset by peer").is_auth());
    }

    fn names(tar: &[u8]) -> Vec<String> {
        let mut archive = tar::Archive::new(tar);
        let mut out: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn dockerignore_is_anchored_and_honours_exceptions() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in [
            "Dockerfile",
            "app",
            "notes.md",
            "docs/a.md",
            "sub/notes.md",
            "keep.md",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        std::fs::write(
            root.join(".dockerignore"),
            "*.md\n!keep.md\ndocs\nDockerfile\n",
        )
        .unwrap();
        let tar = pack_context(root, "Dockerfile").unwrap();
        assert_eq!(
            names(&tar),
            [
                ".dockerignore",
                "Dockerfile",
                "app",
                "keep.md",
                "sub",
                "sub/notes.md"
            ]
        );
    }

    /// Regression: for `docs` + `!docs/keep.md` Docker sends `docs/keep.md`; the walker
    /// skipped the excluded directory and lost it.
    #[test]
    fn an_exception_inside_an_excluded_directory_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for file in [
            "Dockerfile",
            "docs/keep.md",
            "docs/drop.md",
            "docs/deep/drop.md",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "x").unwrap();
        }
        std::fs::write(root.join(".dockerignore"), "docs\n!docs/keep.md\n").unwrap();
        let tar = pack_context(root, "Dockerfile").unwrap();
        assert_eq!(names(&tar), [".dockerignore", "Dockerfile", "docs/keep.md"]);
    }

    #[test]
    fn reads_the_digest_from_a_push_status_line() {
        let d = "a".repeat(64);
        assert_eq!(
            digest_in_status(&format!("1.0.0: digest: sha256:{d} size: 527")),
            Some(format!("sha256:{d}"))
        );
        assert_eq!(digest_in_status("Pushed"), None);
        assert_eq!(digest_in_status("x: digest: sha256:abc size: 1"), None);
    }
}
