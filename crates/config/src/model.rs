//! The typed `release.toml`: what a project declares about its registry, services and
//! environments. Field names are the file's keys; `schema` lists them for the unknown-key
//! check, so a field added here must be added there too.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Project {
    pub name: String,
    /// A regular expression every version must match in full (for example semver).
    pub version_pattern: Option<String>,
    /// Where the source lives; becomes the `org.opencontainers.image.source` label.
    pub source: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Registry {
    /// `host[:port]`, no scheme and no path. Overridden by `--registry`/`RELEASE_REGISTRY`.
    pub host: String,
    /// Extra CA certificate (PEM) trusted for this registry, relative to the config file.
    pub ca: Option<PathBuf>,
    /// Plain HTTP; accepted only for loopback hosts.
    #[serde(default)]
    pub insecure: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Service {
    /// Repository path inside the registry, e.g. `hestino/api`.
    pub repository: String,
    /// Build context, relative to the config file.
    pub context: PathBuf,
    /// Dockerfile path inside the context.
    #[serde(default = "default_dockerfile")]
    pub dockerfile: String,
    /// The stage of a multi-stage Dockerfile to build (`--target`).
    pub target: Option<String>,
    /// Build args (`--build-arg`); not secret: they are visible in the image history.
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    /// `buildkit` (the default, through `docker buildx build`) or `classic` (the Engine
    /// API's deprecated builder).
    #[serde(default)]
    pub builder: Builder,
    /// Build secrets for `RUN --mount=type=secret,id=…`, each read from an environment
    /// variable or a file; never part of the image, its history or any output.
    #[serde(default)]
    pub secrets: Vec<BuildSecret>,
    /// BuildKit cache sources, `type=registry,ref=REPO:TAG` in the project's registry.
    #[serde(default)]
    pub cache_from: Vec<String>,
    /// Where BuildKit exports its cache: `type=inline`, or `type=registry,ref=REPO:TAG`.
    pub cache_to: Option<String>,
    /// `linux/amd64`, the only platform accepted for now.
    pub platform: Option<String>,
    /// The service's name in the stack files; defaults to the service's own name.
    pub stack_service: Option<String>,
    /// Upper bound on replicas any environment may run (the worker runs exactly 1).
    pub max_replicas: Option<u64>,
    /// An internal service publishes no port.
    #[serde(default)]
    pub internal: bool,
}

/// Which builder builds a service's image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Builder {
    #[default]
    Buildkit,
    Classic,
}

/// One build secret: `{ id = "npm", env = "NPM_TOKEN" }` or `{ id = "nuget", file = "…" }`.
#[derive(Debug, Clone, Deserialize)]
pub struct BuildSecret {
    pub id: String,
    /// An environment variable of the process running `release build`.
    pub env: Option<String>,
    /// A file, relative to the config file.
    pub file: Option<PathBuf>,
}

fn default_dockerfile() -> String {
    "Dockerfile".to_owned()
}

impl Service {
    /// What the stack file calls the service named `name` here.
    pub fn stack_service_name<'a>(&'a self, name: &'a (impl AsRef<str> + ?Sized)) -> &'a str {
        self.stack_service.as_deref().unwrap_or(name.as_ref())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Environment {
    /// `unix://…`, `tcp://…` or `ssh://…`; when neither this nor `docker_context` is
    /// set, the process environment as the Docker CLI reads it (see docs/engines.md).
    pub docker_host: Option<String>,
    /// For a tcp:// host: a directory with `ca.pem`, `cert.pem` and `key.pem`, relative
    /// to the config file.
    pub docker_cert_path: Option<PathBuf>,
    /// Verify the engine's certificate; defaults to true when `docker_cert_path` is set
    /// (false is refused: there is no unverified TLS).
    pub docker_tls_verify: Option<bool>,
    /// A Docker CLI context by name, read from the CLI's context store.
    pub docker_context: Option<String>,
    /// `swarm` (the default: `docker stack deploy`) or `compose` (`docker compose up`).
    #[serde(default)]
    pub orchestrator: Orchestrator,
    /// The Swarm stack name; for a Compose environment, the default project name.
    pub stack: String,
    /// The stack file (for Compose, the compose file, or a list of them merged the way
    /// `docker compose -f A -f B` merges them), relative to the config file.
    pub stack_file: StackFiles,
    /// The Compose project name (`docker compose -p`); defaults to `stack`. Compose only.
    pub project: Option<String>,
    /// The environment whose tested digests this one may receive (through `promote`).
    pub promote_from: Option<String>,
    #[serde(default)]
    pub approval_required: bool,
    /// How long a deploy may take to converge, e.g. `"5m"`.
    pub deploy_timeout: Option<String>,
    #[serde(default)]
    pub checks: Vec<Check>,
    /// The signed evidence this environment produces (a signing key) and accepts (the
    /// public keys it trusts); see docs/evidence.md.
    pub evidence: Option<Evidence>,
    /// `in-place` (the default: the live project or stack is updated) or `blue-green` (the
    /// release starts beside the live one and a reverse proxy is switched; docs/blue-green.md).
    #[serde(default)]
    pub strategy: Strategy,
    /// The proxy and the colours' ports of a `strategy = "blue-green"` environment.
    pub blue_green: Option<BlueGreen>,
}

/// `stack_file = "a.yml"` or, for Compose, `stack_file = ["compose.yml", "compose.prod.yml"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StackFiles {
    One(PathBuf),
    Many(Vec<PathBuf>),
}

impl StackFiles {
    pub fn paths(&self) -> Vec<&std::path::Path> {
        match self {
            StackFiles::One(p) => vec![p.as_path()],
            StackFiles::Many(ps) => ps.iter().map(PathBuf::as_path).collect(),
        }
    }
}

/// How a deploy replaces the live release.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    #[default]
    InPlace,
    BlueGreen,
}

/// `[environments.E.blue_green]`: where the proxy's upstreams are written, how the proxy
/// is validated and reloaded, and the port each colour of each routed service listens on.
#[derive(Debug, Clone, Deserialize)]
pub struct BlueGreen {
    /// The file of `upstream` blocks the tool owns and rewrites atomically, relative to
    /// the config file; the proxy's configuration includes it.
    pub upstream_file: PathBuf,
    /// The proxy's public address (`http://host:port`): checks whose URL starts with it are
    /// sent to `preview_url` while the new colour is idle.
    pub proxy_url: String,
    /// The proxy's address for the idle colour (its `*_preview` upstreams).
    pub preview_url: String,
    /// Validates the proxy's configuration; default `["nginx", "-t"]`.
    pub test_command: Option<Vec<String>>,
    /// Makes the proxy read its configuration again; default `["nginx", "-s", "reload"]`.
    pub reload_command: Option<Vec<String>>,
    /// How long the previous colour keeps running after a switch, for `release rollback`;
    /// default `"1h"`.
    pub rollback_window: Option<String>,
    /// How long a deploy waits after a reload before it checks through the proxy: Nginx's
    /// reload returns once signalled, and its old workers take connections a little
    /// longer. Default `"1s"`.
    pub switch_settle: Option<String>,
    /// The addresses the proxy reaches a colour's ports on: default `["127.0.0.1"]` (the
    /// proxy runs on the Compose host). For a Swarm stack, the nodes' addresses (its
    /// colours publish in host mode on whichever node runs a task).
    pub upstream_hosts: Option<Vec<String>>,
    /// The services the proxy sends traffic to.
    pub routes: Vec<Route>,
}

/// One upstream of the proxy: `{ upstream = "shop_web", service = "web", port = 8080,
/// blue = 28101, green = 28201 }`.
#[derive(Debug, Clone, Deserialize)]
pub struct Route {
    /// The live upstream's name in the proxy's configuration; the idle colour's is
    /// `<upstream>_preview`.
    pub upstream: String,
    /// The service (of `[services]`) behind it.
    pub service: String,
    /// The port the service's container listens on.
    pub port: u16,
    /// The host port (on 127.0.0.1) the blue colour publishes it on.
    pub blue: u16,
    /// The host port the green colour publishes it on.
    pub green: u16,
}

/// `[environments.E.evidence]`: the environment's signing key and the keys it trusts.
#[derive(Debug, Clone, Deserialize)]
pub struct Evidence {
    /// The id the environment's signatures carry (DSSE `keyid`), e.g. `"dev-2026"`.
    pub key_id: Option<String>,
    /// An environment variable holding the signing key's PEM (a Jenkins credential).
    pub signing_key_env: Option<String>,
    /// A file holding the signing key's PEM, relative to the config file.
    pub signing_key_file: Option<PathBuf>,
    /// The public keys whose signatures this environment accepts, each with its id.
    #[serde(default)]
    pub trust: Vec<TrustedKey>,
}

/// One trusted public key: `{ id = "dev-2026", public_key = "keys/dev-2026.pub" }`.
#[derive(Debug, Clone, Deserialize)]
pub struct TrustedKey {
    pub id: String,
    /// The SPKI PEM (`-----BEGIN PUBLIC KEY-----`), relative to the config file.
    pub public_key: PathBuf,
    /// A revoked key's signatures are refused, whenever they were made.
    #[serde(default)]
    pub revoked: bool,
    /// The environment whose evidence the key signs (e.g. `"dev"`): its signature then
    /// counts for that environment's evidence only. Without it, for any environment's.
    pub environment: Option<String>,
}

impl Evidence {
    /// Whether the environment signs what it produces.
    pub fn signs(&self) -> bool {
        self.signing_key_env.is_some() || self.signing_key_file.is_some()
    }
}

/// What applies an environment's stack file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Orchestrator {
    #[default]
    Swarm,
    Compose,
}

impl Environment {
    /// The Compose project name: `project`, else the stack name.
    pub fn compose_project(&self) -> &str {
        self.project.as_deref().unwrap_or(&self.stack)
    }
}

/// One smoke or health check of an environment.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Check {
    Http(HttpCheck),
    Tcp(TcpCheck),
    Swarm(SwarmCheck),
    Compose(ComposeCheck),
}

#[derive(Debug, Clone, Deserialize)]
pub struct Timing {
    /// Per-attempt timeout, e.g. `"2s"`.
    pub timeout: Option<String>,
    /// Pause between attempts.
    pub retry_interval: Option<String>,
    /// Total time allowed, attempts included.
    pub deadline: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpCheck {
    pub name: String,
    pub service: String,
    #[serde(default = "default_method")]
    pub method: String,
    pub url: String,
    /// Header values; `env:NAME` reads the value from the environment and never echoes it.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default = "default_status")]
    pub expect_status: u16,
    pub body_contains: Option<String>,
    pub json_pointer: Option<String>,
    /// Any TOML value, compared as JSON.
    pub json_equals: Option<serde_json::Value>,
    pub max_latency: Option<String>,
    pub ca: Option<PathBuf>,
    #[serde(flatten)]
    pub timing: Timing,
}

fn default_method() -> String {
    "GET".to_owned()
}

fn default_status() -> u16 {
    200
}

#[derive(Debug, Clone, Deserialize)]
pub struct TcpCheck {
    pub name: String,
    pub service: String,
    /// `host:port`.
    pub address: String,
    #[serde(flatten)]
    pub timing: Timing,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SwarmCheck {
    /// Services to check; all of the project's services when absent.
    pub services: Option<Vec<String>>,
    #[serde(flatten)]
    pub timing: Timing,
}

/// `kind = "compose"`: the containers of a Compose environment's services.
#[derive(Debug, Clone, Deserialize)]
pub struct ComposeCheck {
    /// Services to check; all of the project's services when absent.
    pub services: Option<Vec<String>>,
    #[serde(flatten)]
    pub timing: Timing,
}

impl Check {
    /// The services a check concerns, for validation against the project's services.
    pub fn services(&self) -> Vec<&str> {
        match self {
            Check::Http(c) => vec![c.service.as_str()],
            Check::Tcp(c) => vec![c.service.as_str()],
            Check::Swarm(c) => c.services.iter().flatten().map(String::as_str).collect(),
            Check::Compose(c) => c.services.iter().flatten().map(String::as_str).collect(),
        }
    }

    pub fn timing(&self) -> &Timing {
        match self {
            Check::Http(c) => &c.timing,
            Check::Tcp(c) => &c.timing,
            Check::Swarm(c) => &c.timing,
            Check::Compose(c) => &c.timing,
        }
    }
}
