//! `release build` with BuildKit: real builds on the agent's engine, pushed to the testbed
//! registry. Every image is built from a base made FROM scratch out of Debian's
//! busybox-static, so `RUN` steps run for real with no image pulled from the internet.
//!
//! Names are unique per run (`buildkit-e2e/…` repositories, unique tags and cache ids);
//! every local image and build-cache record a test makes is removed by it, and nothing
//! else: the engine is shared.
//!
//! The agent's engine keeps the classic image store, whose BuildKit exports inline cache
//! only. A registry cache (`cache_to = "type=registry,…"`) is exercised on the testbed's
//! builder engine (`RELEASE_TESTBED_BUILDER_HOST`), a second engine on the agent with the
//! containerd image store.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use release_e2e::{Project, Run, Testbed, docker, example_dir};

const SECRET_ENV: &str = "BUILDKIT_E2E_TOKEN";

/// The docker CLI for the engine at `host` (`DOCKER_HOST`), or the agent's engine.
fn docker_cmd(host: Option<&str>) -> Command {
    let mut cmd = Command::new("docker");
    if let Some(host) = host {
        cmd.env("DOCKER_HOST", host);
    }
    cmd
}

/// [`docker`] on the engine at `host`: asserts success, returns stdout.
fn docker_at<I, S>(host: Option<&str>, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let Some(host) = host else {
        return docker(args);
    };
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = docker_cmd(Some(host)).args(&args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?} on {host} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The testbed's builder engine: its `DOCKER_HOST`, after checking that it answers and
/// keeps the containerd image store. Panics (never skips) when it is missing.
fn builder_engine() -> String {
    let host = std::env::var("RELEASE_TESTBED_BUILDER_HOST").unwrap_or_else(|_| {
        panic!(
            "RELEASE_TESTBED_BUILDER_HOST is not set: this test needs the testbed's builder engine \
             (containerd image store). Run `scripts/testbed up` (or `scripts/testbed up-builder`), \
             then `eval \"$(scripts/testbed env)\"`."
        )
    });
    let store = docker_at(Some(&host), ["info", "--format", "{{json .DriverStatus}}"]);
    assert!(
        store.contains("io.containerd.snapshotter"),
        "the builder engine at {host} does not keep the containerd image store: {store}"
    );
    host
}

/// What the registry serves for `reference` (a tag): the manifest's digest.
fn served_digest(bed: &Testbed, reference: &str) -> String {
    let out = Command::new("skopeo")
        .args(["inspect", "--format", "{{.Digest}}", "--creds"])
        .arg(format!("{}:{}", bed.username, bed.password))
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A base image with a shell: busybox-static's binary FROM scratch, tagged locally only,
/// on the engine at `host` (the agent's engine when `None`). Removed on drop.
struct Base {
    tag: String,
    token: String,
    host: Option<String>,
}

impl Base {
    fn build(bed: &Testbed, host: Option<&str>) -> Base {
        let busybox = Path::new("/bin/busybox");
        assert!(
            busybox.is_file(),
            "/bin/busybox is missing: install Debian's busybox-static (apt-get install busybox-static)"
        );
        let dir = tempfile::tempdir().unwrap();
        let token = bed.unique("base").replace('-', "");
        std::fs::copy(busybox, dir.path().join(format!("busybox-{token}"))).unwrap();
        // The token in each step's text names this base's build-cache records.
        std::fs::write(
            dir.path().join("Dockerfile"),
            format!("FROM scratch\nCOPY busybox-{token} /bin/busybox\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox --install -s /bin # {token}\"]\n"),
        )
        .unwrap();
        let tag = format!("buildkit-e2e/base:{token}");
        docker_at(
            host,
            [
                "buildx",
                "build",
                "--builder",
                "default",
                "--progress",
                "plain",
                "--load",
                "-t",
                &tag,
                dir.path().to_str().unwrap(),
            ],
        );
        Base {
            tag,
            token,
            host: host.map(str::to_owned),
        }
    }
}

impl Drop for Base {
    fn drop(&mut self) {
        let _ = docker_cmd(self.host.as_deref())
            .args(["image", "rm", &self.tag])
            .output();
        prune_cache_records(self.host.as_deref(), &self.token);
    }
}

/// A one-service project (`app`) whose Dockerfile has two stages and a third that must
/// not be built, a cache mount, a build secret, a heredoc and `COPY --link`. `token` is
/// unique to the test: it is in every RUN command, so the test can find (and prune) the
/// build-cache records it made, and in the cache mount's id. `@REPO@` in `extra_keys`
/// stands for the service's repository.
struct App {
    project: Project,
    repo: String,
    token: String,
    base: Base,
    tags: Vec<String>,
    /// The engine it builds on (`DOCKER_HOST`); the agent's engine when `None`.
    host: Option<String>,
}

impl App {
    fn new(bed: &Testbed, extra_keys: &str) -> App {
        App::on(bed, None, extra_keys)
    }

    /// An [`App`] built (and pushed) on the engine at `host`.
    fn on(bed: &Testbed, host: Option<&str>, extra_keys: &str) -> App {
        let base = Base::build(bed, host);
        let token = bed.unique("bk").replace('-', "");
        let repo = format!("buildkit-e2e/{token}/app");
        let extra_keys = extra_keys.replace("@REPO@", &repo);
        let project = Project::new();
        project.write("stack.yml", "services:\n  app:\n    image: x/app:1\n");
        project.write(&format!("ctx/src-{token}.txt"), "source v1\n");
        project.write(
            "ctx/Dockerfile",
            &format!(
                r#"FROM {base} AS builder
RUN --mount=type=secret,id=token,required=true sh -c 'echo {token} >/dev/null; wc -c < /run/secrets/token > /token-length'
RUN <<EOT
echo {token} heredoc > /heredoc.txt
EOT
COPY --link src-{token}.txt /src.txt
RUN --mount=type=cache,id={token},target=/cache sh -c 'echo {token}; if [ -f /cache/dep ]; then echo cache-mount: hit; else echo cache-mount: miss; sleep 3; echo dep > /cache/dep; fi; cp /cache/dep /dep'

FROM builder AS final
COPY --link --chmod=0644 src-{token}.txt /final.txt

FROM builder AS never
RUN echo {token} && exit 7
"#,
                base = base.tag
            ),
        );
        project.write(
            "release.toml",
            &format!(
                r#"[project]
name = "bke2e"
version_pattern = '^[0-9]+\.[0-9]+\.[0-9]+$'

[registry]
host = "registry.invalid"

[services.app]
repository = "{repo}"
context = "ctx"
target = "final"
platform = "linux/amd64"
secrets = [{{ id = "token", env = "{SECRET_ENV}" }}]
{extra_keys}

[environments.e2e]
stack = "bke2e"
stack_file = "stack.yml"
"#
            ),
        );
        App {
            project,
            repo,
            token,
            base,
            tags: Vec::new(),
            host: host.map(str::to_owned),
        }
    }

    /// `release build --version V` with the secret set to `secret`.
    fn build(&mut self, bed: &Testbed, version: &str, secret: &str) -> Run {
        self.tags
            .push(format!("{}/{}:{version}", bed.registry, self.repo));
        let mut vars = vec![(SECRET_ENV, secret)];
        if let Some(host) = &self.host {
            vars.push(("DOCKER_HOST", host));
        }
        bed.release_with(self.project.dir(), &vars, ["build", "--version", version])
    }

    /// `release ARGS` on this app's engine.
    fn release(&self, bed: &Testbed, args: &[&str]) -> Run {
        let vars: Vec<(&str, &str)> = self
            .host
            .iter()
            .map(|h| ("DOCKER_HOST", h.as_str()))
            .collect();
        bed.release_with(self.project.dir(), &vars, args)
    }

    fn reference(&self, bed: &Testbed, version: &str) -> String {
        format!("{}/{}:{version}", bed.registry, self.repo)
    }

    /// Removes this test's images and build-cache records from the engine (and nothing else:
    /// the prune names each record by id).
    fn prune_own_cache(&self) {
        for tag in &self.tags {
            let _ = docker_cmd(self.host.as_deref())
                .args(["image", "rm", tag])
                .output();
        }
        prune_cache_records(self.host.as_deref(), &self.token);
    }

    fn cache_records(&self) -> BTreeSet<String> {
        cache_records(self.host.as_deref(), &self.token)
    }

    fn source(&self) -> String {
        format!("ctx/src-{}.txt", self.token)
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.prune_own_cache();
        let _ = &self.base;
    }
}

/// The build-cache records of one test on the engine at `host`: those whose description
/// holds `token`, and every record built on them.
fn cache_records(host: Option<&str>, token: &str) -> BTreeSet<String> {
    let out = docker_at(host, ["buildx", "du", "--builder", "default", "--verbose"]);
    let records: Vec<(String, Vec<String>, String)> = out
        .split("\n\n")
        .filter_map(|block| {
            let mut id = None;
            let mut parents = Vec::new();
            let mut description = String::new();
            for line in block.lines() {
                let Some((key, value)) = line.split_once(':') else {
                    continue;
                };
                match key.trim() {
                    "ID" => id = Some(value.trim().to_owned()),
                    "Parent" | "Parents" => parents.extend(
                        value
                            .split([',', ' ', '\t'])
                            .filter(|p| !p.is_empty())
                            .map(str::to_owned),
                    ),
                    "Description" => description = value.trim().to_owned(),
                    _ => {}
                }
            }
            Some((id?, parents, description))
        })
        .collect();
    let mut selected: BTreeSet<String> = records
        .iter()
        .filter(|(_, _, d)| d.contains(token))
        .map(|(id, _, _)| id.clone())
        .collect();
    loop {
        let more: Vec<String> = records
            .iter()
            .filter(|(id, parents, _)| {
                !selected.contains(id) && parents.iter().any(|p| selected.contains(p))
            })
            .map(|(id, _, _)| id.clone())
            .collect();
        if more.is_empty() {
            return selected;
        }
        selected.extend(more);
    }
}

/// Prunes the records of [`cache_records`], each named by id (and nothing else: the engine
/// and its build cache are shared).
fn prune_cache_records(host: Option<&str>, token: &str) {
    let ids = cache_records(host, token);
    if ids.is_empty() {
        return;
    }
    let filter = format!("id={}", ids.into_iter().collect::<Vec<_>>().join("|"));
    docker_at(
        host,
        [
            "buildx",
            "prune",
            "--builder",
            "default",
            "--force",
            "--all",
            "--filter",
            &filter,
        ],
    );
}

/// The step headers of a plain progress log (`#7 [builder 2/5] RUN …`) whose step never
/// said `CACHED`.
fn steps_not_cached(stderr: &str) -> Vec<String> {
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut cached: BTreeSet<String> = BTreeSet::new();
    for line in stderr.lines() {
        // `HH:MM:SS app: #N …`
        let Some((_, rest)) = line.split_once(" app: ") else {
            continue;
        };
        let Some((step, text)) = rest.split_once(' ') else {
            continue;
        };
        if !step.starts_with('#') {
            continue;
        }
        if text.starts_with('[') && !text.starts_with("[internal]") && !text.starts_with("[auth]") {
            headers.push((step.to_owned(), text.to_owned()));
        }
        if text == "CACHED" {
            cached.insert(step.to_owned());
        }
    }
    assert!(
        !headers.is_empty(),
        "no BuildKit step lines in the output:\n{stderr}"
    );
    headers
        .into_iter()
        .filter(|(step, text)| !cached.contains(step) && !text.contains("FROM "))
        .map(|(_, text)| text)
        .collect()
}

/// Every blob of `reference` (manifest, config, layers) as the registry serves it, by
/// skopeo into a directory; returns the directory and the file names of the blobs.
fn registry_blobs(bed: &Testbed, reference: &str) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("skopeo")
        .args(["copy", "--src-creds"])
        .arg(format!("{}:{}", bed.username, bed.password))
        .arg(format!("docker://{reference}"))
        .arg(format!("dir:{}", dir.path().join("image").display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = std::fs::read_dir(dir.path().join("image"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    (dir, files)
}

/// A layer blob's files and contents, uncompressed, as one byte string per file.
fn layer_contents(blob: &Path) -> Option<Vec<(String, Vec<u8>)>> {
    let list = Command::new("tar").arg("-tzf").arg(blob).output().unwrap();
    if !list.status.success() {
        return None; // not a gzipped tar: the manifest, the config or `version`
    }
    let names: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    Some(
        names
            .into_iter()
            .map(|name| {
                let out = Command::new("tar")
                    .arg("-xzOf")
                    .arg(blob)
                    .arg(&name)
                    .output()
                    .unwrap();
                (name, out.stdout)
            })
            .collect(),
    )
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn a_multi_stage_build_with_a_secret_is_pushed_pinned_recorded_and_leaks_the_secret_nowhere() {
    let bed = Testbed::up();
    let mut app = App::new(&bed, "cache_to = \"type=inline\"");
    let secret = format!("canary-{}-secret", app.token);

    let started = std::time::Instant::now();
    let build = app.build(&bed, "1.0.0", &secret);
    let cold = started.elapsed();
    build
        .success()
        .stderr_has("app: building")
        .stderr_has("[builder 2/")
        .stderr_has("RUN <<EOT")
        .stderr_has(&format!("COPY --link src-{}.txt /src.txt", app.token))
        .stderr_has(&format!(
            "[final 1/1] COPY --link --chmod=0644 src-{}.txt /final.txt",
            app.token
        ))
        .stderr_has("cache-mount: miss");
    assert!(
        !build.stderr().contains("exit 7"),
        "the stage after the target was built:\n{}",
        build.stderr()
    );
    // One line per step, prefixed with a time stamp and the service.
    let step_line = build
        .stderr()
        .lines()
        .find(|l| l.contains(" app: #") && l.contains("[final 1/1]"))
        .unwrap()
        .to_owned();
    let stamp = step_line.split(' ').next().unwrap();
    assert!(
        stamp.len() == 8 && stamp.as_bytes()[2] == b':' && stamp.as_bytes()[5] == b':',
        "no HH:MM:SS stamp: {step_line}"
    );

    let push = bed.release(&app.project, ["--json", "push", "--version", "1.0.0"]);
    push.success();
    let digest = push.json()["services"]["app"].as_str().unwrap().to_owned();
    let reference = app.reference(&bed, "1.0.0");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(app.project.state_dir().join("releases/1.0.0.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["services"]["app"]["digest"], digest.as_str());
    assert_eq!(manifest["services"]["app"]["platform"], "linux/amd64");
    let served = Command::new("skopeo")
        .args(["inspect", "--format", "{{.Digest}}", "--creds"])
        .arg(format!("{}:{}", bed.username, bed.password))
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&served.stdout).trim(),
        digest,
        "the recorded digest is not what the registry serves for the tag"
    );
    // Pinned: the registry serves the recorded digest by digest, as a single image manifest
    // (no attestation index).
    let by_digest = format!("{}/{}@{digest}", bed.registry, app.repo);
    let (_dir, blobs) = registry_blobs(&bed, &by_digest);
    let manifest_file = blobs
        .iter()
        .find(|p| p.file_name().unwrap() == "manifest.json")
        .unwrap();
    let image_manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(manifest_file).unwrap()).unwrap();
    assert!(
        image_manifest["layers"].is_array() && image_manifest["manifests"].is_null(),
        "not a single image manifest: {image_manifest}"
    );

    // The secret is in no blob: no layer file, not the config (history included).
    let mut files_seen = BTreeSet::new();
    let mut token_length = None;
    for blob in &blobs {
        let bytes = std::fs::read(blob).unwrap();
        assert!(
            !contains(&bytes, &secret),
            "the secret is in blob {}",
            blob.display()
        );
        if let Some(files) = layer_contents(blob) {
            for (name, content) in files {
                assert!(
                    !contains(&content, &secret),
                    "the secret is in {name} of layer {}",
                    blob.display()
                );
                if name == "token-length" {
                    token_length = Some(String::from_utf8_lossy(&content).trim().to_owned());
                }
                files_seen.insert(name);
            }
        }
    }
    for file in ["heredoc.txt", "src.txt", "final.txt", "dep", "token-length"] {
        assert!(
            files_seen.contains(file),
            "{file} is in no layer: {files_seen:?}"
        );
    }
    assert_eq!(
        token_length.as_deref(),
        Some(secret.len().to_string().as_str()),
        "the RUN step did not read the secret"
    );
    let config = docker(["image", "inspect", &reference]);
    let history = docker(["history", "--no-trunc", &reference]);
    assert!(
        config.contains("org.opencontainers.image.version"),
        "{config}"
    );
    for (what, text) in [
        ("image config", config),
        ("history", history),
        ("build stdout", build.stdout()),
        ("build stderr", build.stderr()),
        ("push stdout", push.stdout()),
        ("push stderr", push.stderr()),
    ] {
        assert!(!text.contains(&secret), "the secret is in the {what}");
    }
    for entry in walk(app.project.state_dir()) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !contains(&bytes, &secret),
            "the secret is in {}",
            entry.display()
        );
    }

    // An unchanged rebuild is fully cached.
    let again = app.build(&bed, "1.0.1", &secret);
    again.success();
    let uncached = steps_not_cached(&again.stderr());
    assert!(
        uncached.is_empty(),
        "steps rebuilt although nothing changed: {uncached:?}\n{}",
        again.stderr()
    );

    // A source change: the steps after the COPY run again, and the cache mount still
    // holds what the first build put there.
    app.project.write(&app.source(), "source v2\n");
    let started = std::time::Instant::now();
    let changed = app.build(&bed, "1.0.2", &secret);
    let elapsed = started.elapsed();
    changed.success().stderr_has("cache-mount: hit");
    let rerun = steps_not_cached(&changed.stderr());
    assert!(
        rerun.iter().any(|s| s.contains("COPY --link src-")),
        "the changed source was not copied again: {rerun:?}"
    );
    eprintln!(
        "measured: first build {cold:.2?} (cache mount cold: its step sleeps 3 s), build after a source change {elapsed:.2?} (cache mount warm)"
    );
}

fn walk(dir: PathBuf) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn after_the_local_cache_is_pruned_a_rebuild_imports_the_registry_cache() {
    let bed = Testbed::up();
    let mut app = App::new(&bed, "cache_to = \"type=inline\"");
    let secret = format!("canary-{}", app.token);
    app.build(&bed, "1.0.0", &secret).success();
    bed.release(&app.project, ["-q", "push", "--version", "1.0.0"])
        .success();

    // Nothing of this build is left in the engine: its images and its cache records.
    app.prune_own_cache();
    let left = app.cache_records();
    assert!(left.is_empty(), "build-cache records left: {left:?}");

    let config = std::fs::read_to_string(app.project.config()).unwrap();
    app.project.write(
        "release.toml",
        &config.replace(
            "cache_to = \"type=inline\"",
            &format!(
                "cache_to = \"type=inline\"\ncache_from = [\"type=registry,ref={}:1.0.0\"]",
                app.repo
            ),
        ),
    );
    let rebuild = app.build(&bed, "1.0.1", &secret);
    rebuild
        .success()
        .stderr_has(&format!(
            "importing cache manifest from {}",
            app.reference(&bed, "1.0.0")
        ))
        .stderr_has("pulling sha256:");
    let uncached = steps_not_cached(&rebuild.stderr());
    assert!(
        uncached.is_empty(),
        "steps rebuilt although the registry cache has them: {uncached:?}\n{}",
        rebuild.stderr()
    );
}

/// The agent's engine keeps the classic image store: its BuildKit refuses to export a
/// registry cache, and `release build` says so with exit 2 before building anything.
#[test]
fn the_classic_image_store_refuses_a_registry_cache_export_with_exit_2() {
    let bed = Testbed::up();
    let store = docker(["info", "--format", "{{json .DriverStatus}}"]);
    assert!(
        !store.contains("io.containerd.snapshotter"),
        "the agent's engine is meant to keep the classic image store: {store}"
    );
    let mut app = App::new(
        &bed,
        "cache_to = \"type=registry,ref=@REPO@:cache,mode=max\"",
    );
    let run = app.build(&bed, "1.0.0", "s3cret");
    run.expect_code(2)
        .stderr_has("service `app`")
        .stderr_has("Cache export is not supported for the docker driver")
        .stderr_has("containerd image store")
        .stderr_has("type=inline");
    let inspect = Command::new("docker")
        .args(["image", "inspect", &app.reference(&bed, "1.0.0")])
        .output()
        .unwrap();
    assert!(!inspect.status.success(), "the image was built and loaded");
}

/// On the builder engine (containerd image store) the engine's own BuildKit exports a
/// registry cache; after this test's images and build cache are gone from the engine, a
/// rebuild imports that cache and runs no step. The digests recorded are the registry's.
#[test]
fn on_the_containerd_image_store_a_registry_cache_is_exported_and_a_rebuild_after_a_prune_imports_it()
 {
    let bed = Testbed::up();
    let builder = builder_engine();
    let mut app = App::on(
        &bed,
        Some(&builder),
        "cache_to = \"type=registry,ref=@REPO@:cache,mode=max\"",
    );
    let secret = format!("canary-{}", app.token);
    let cache_ref = format!("{}/{}:cache", bed.registry, app.repo);

    let build = app.build(&bed, "1.0.0", &secret);
    build
        .success()
        .stderr_has("exporting cache to registry")
        .stderr_has("writing cache manifest")
        .stderr_has("cache-mount: miss");
    // The image ID printed is the one the engine knows the image by (on this store, the
    // manifest's digest rather than the config's).
    let id = build
        .stdout()
        .lines()
        .find_map(|l| l.strip_prefix("app  ").map(str::to_owned))
        .unwrap_or_else(|| panic!("no built line: {}", build.stdout()));
    let reference = app.reference(&bed, "1.0.0");
    let engine_id = docker_at(
        Some(&builder),
        ["image", "inspect", "--format", "{{.Id}}", &reference],
    );
    assert_eq!(
        id,
        format!("{reference}  {}", engine_id.trim()),
        "the printed image ID is not the engine's"
    );
    // The cache is in the registry, under its own tag, as an OCI index.
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--creds"])
        .arg(format!("{}:{}", bed.username, bed.password))
        .arg(format!("docker://{cache_ref}"))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "no cache at {cache_ref}: {}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let cache: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        cache["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{cache}"
    );

    let push = app.release(&bed, &["--json", "push", "--version", "1.0.0"]);
    push.success();
    let digest = push.json()["services"]["app"].as_str().unwrap().to_owned();
    let recorded: serde_json::Value = serde_json::from_slice(
        &std::fs::read(app.project.state_dir().join("releases/1.0.0.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(recorded["services"]["app"]["digest"], digest.as_str());
    assert_eq!(recorded["services"]["app"]["platform"], "linux/amd64");
    assert_eq!(
        served_digest(&bed, &reference),
        digest,
        "the recorded digest is not what the registry serves for the tag"
    );

    // Nothing of this build is left in the builder engine: its images and cache records
    // (the base image stays: it is in no registry).
    app.prune_own_cache();
    let left = app.cache_records();
    assert!(left.is_empty(), "build-cache records left: {left:?}");
    let gone = docker_cmd(Some(&builder))
        .args(["image", "inspect", &reference])
        .output()
        .unwrap();
    assert!(!gone.status.success(), "{reference} is still in the engine");

    let config = std::fs::read_to_string(app.project.config()).unwrap();
    app.project.write(
        "release.toml",
        &config.replace(
            "mode=max\"",
            &format!(
                "mode=max\"\ncache_from = [\"type=registry,ref={}:cache\"]",
                app.repo
            ),
        ),
    );
    let started = std::time::Instant::now();
    let rebuild = app.build(&bed, "1.0.1", &secret);
    let elapsed = started.elapsed();
    rebuild
        .success()
        .stderr_has(&format!("importing cache manifest from {cache_ref}"));
    let uncached = steps_not_cached(&rebuild.stderr());
    assert!(
        uncached.is_empty(),
        "steps rebuilt although the registry cache has them: {uncached:?}\n{}",
        rebuild.stderr()
    );

    let push = app.release(&bed, &["--json", "push", "--version", "1.0.1"]);
    push.success();
    let digest = push.json()["services"]["app"].as_str().unwrap().to_owned();
    let recorded: serde_json::Value = serde_json::from_slice(
        &std::fs::read(app.project.state_dir().join("releases/1.0.1.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(recorded["services"]["app"]["digest"], digest.as_str());
    assert_eq!(
        served_digest(&bed, &app.reference(&bed, "1.0.1")),
        digest,
        "the recorded digest is not what the registry serves for the tag"
    );
    eprintln!("measured: rebuild from the registry cache after the prune {elapsed:.2?}");
}

#[test]
fn broken_input_fails_with_the_documented_exit_code_and_location() {
    let bed = Testbed::up();
    let mut app = App::new(&bed, "");
    let image = app.reference(&bed, "1.0.0");

    // A missing secret: exit 2 before anything is built.
    let run = bed.release_with(
        app.project.dir(),
        &[(SECRET_ENV, "")],
        ["build", "--version", "1.0.0"],
    );
    run.expect_code(2)
        .stderr_has(
            "build secret `token` reads environment variable BUILDKIT_E2E_TOKEN, which is not set",
        )
        .stderr_has("nothing was built");
    assert!(!run.stderr().contains("app: building"), "{}", run.stderr());
    let inspect = Command::new("docker")
        .args(["image", "inspect", &image])
        .output()
        .unwrap();
    assert!(!inspect.status.success(), "{image} was built");

    // A syntax error: exit 2, with the service, the file and the line.
    let dockerfile = app.project.dir().join("ctx/Dockerfile");
    let good = std::fs::read_to_string(&dockerfile).unwrap();
    app.project.write(
        "ctx/Dockerfile",
        &good.replacen("COPY --link src-", "COPPY --link src-", 1),
    );
    let line = good
        .lines()
        .position(|l| l.starts_with("COPY --link src-"))
        .unwrap()
        + 1;
    app.build(&bed, "1.0.0", "s3cret")
        .expect_code(2)
        .stderr_has("service `app`")
        .stderr_has(&format!("{}:{line}", dockerfile.display()))
        .stderr_has("unknown instruction");

    // A failing step: exit 1, naming the step, the file and its line.
    app.project.write(
        "ctx/Dockerfile",
        &good.replacen(
            "/src.txt\n",
            "/src.txt\nRUN echo broken-step && exit 5\n",
            1,
        ),
    );
    app.build(&bed, "1.0.0", "s3cret")
        .expect_code(1)
        .stderr_has("service `app`")
        .stderr_has("RUN echo broken-step && exit 5")
        .stderr_has(&format!("{}:{}", dockerfile.display(), line + 1))
        .stderr_has("exit code: 5");
}

#[test]
fn the_example_builds_with_buildkit_and_a_classic_service_says_so() {
    let bed = Testbed::up();
    let project = Project::new();
    let version = format!("0.0.0-{}", bed.unique("bk").replace('-', "."));
    let config = example_dir().join("release.toml");
    let run = bed.release(
        &project,
        [
            "--config",
            config.to_str().unwrap(),
            "build",
            "--version",
            &version,
        ],
    );
    let services = ["api", "admin-api", "app", "admin-app", "worker", "redis"];
    let tags: Vec<String> = run
        .stdout()
        .lines()
        .filter_map(|l| l.split("  ").nth(1).map(str::to_owned))
        .collect();
    for tag in &tags {
        let _ = Command::new("docker").args(["image", "rm", tag]).output();
    }
    run.success();
    for service in services {
        assert!(
            run.stderr().contains(&format!(" {service}: #")),
            "{service} was not built with BuildKit:\n{}",
            run.stderr()
        );
    }
    assert_eq!(tags.len(), 6, "{}", run.stdout());

    // builder = "classic": the Engine API's builder, with a notice.
    let classic = Project::new();
    classic.write("stack.yml", "services:\n  api:\n    image: x/api:1\n");
    let repo = format!("buildkit-e2e/{}/classic", bed.unique("c").replace('-', ""));
    classic.write(
        "release.toml",
        &format!(
            "[project]\nname = \"bke2e\"\n\n[registry]\nhost = \"registry.invalid\"\n\n[services.api]\nrepository = \"{repo}\"\ncontext = \"{}\"\nbuilder = \"classic\"\n\n[environments.e2e]\nstack = \"bke2e\"\nstack_file = \"stack.yml\"\n",
            example_dir().join("image").display()
        ),
    );
    let run = bed.release(&classic, ["build", "--version", "1.0.0"]);
    let _ = Command::new("docker")
        .args(["image", "rm", &format!("{}/{repo}:1.0.0", bed.registry)])
        .output();
    run.success()
        .stderr_has("api: notice: builder = \"classic\"")
        .stderr_has("Step 1/");
}

/// On a terminal, buildx draws BuildKit's live display itself; the result is the same
/// pinned image. A failure there is located by a plain re-run (everything before it is
/// cached), so the message still names the file and the line.
#[test]
fn on_a_terminal_buildkit_draws_its_own_progress_and_a_failure_is_still_located() {
    let bed = Testbed::up();
    let mut app = App::new(&bed, "");
    app.tags.push(app.reference(&bed, "1.0.0"));
    let run = bed.release_on_tty(
        app.project.dir(),
        &[(SECRET_ENV, "s3cret")],
        ["build", "--version", "1.0.0"],
    );
    run.success();
    let shown = run.stdout();
    assert!(
        shown.contains("[+] Building"),
        "no BuildKit tty display:\n{shown}"
    );
    assert!(
        shown.contains('\x1b'),
        "the display is drawn in place:\n{shown}"
    );
    assert!(
        !shown.contains(" app: #"),
        "plain progress lines on a terminal:\n{shown}"
    );
    assert!(
        !shown.contains("s3cret"),
        "the secret on the terminal:\n{shown}"
    );
    let inspect = Command::new("docker")
        .args(["image", "inspect", &app.reference(&bed, "1.0.0")])
        .output()
        .unwrap();
    assert!(inspect.status.success(), "the image was not loaded");

    let dockerfile = app.project.dir().join("ctx/Dockerfile");
    let good = std::fs::read_to_string(&dockerfile).unwrap();
    app.project.write(
        "ctx/Dockerfile",
        &good.replacen("COPY --link src-", "COPPY --link src-", 1),
    );
    let line = good
        .lines()
        .position(|l| l.starts_with("COPY --link src-"))
        .unwrap()
        + 1;
    let run = bed.release_on_tty(
        app.project.dir(),
        &[(SECRET_ENV, "s3cret")],
        ["build", "--version", "1.0.1"],
    );
    run.expect_code(2)
        .stdout_has("service `app`")
        .stdout_has(&format!("{}:{line}", dockerfile.display()))
        .stdout_has("unknown instruction");
}
