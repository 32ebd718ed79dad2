//! What a config means, checked: names that become paths, the registry host, `latest`,
//! references between sections, stack files, published ports, secrets and durations.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use engine::StackFile;
use regex::Regex;

use super::source::{Seg, Source, keypath};
use super::{Check, Diagnostic, Draft as Config, parse_duration};

/// Names that end up in file paths (`envs/<env>.json`) and Swarm object names.
static NAME: LazyLock<Regex> = LazyLock::new(|| fixed(r"^[a-z0-9][a-z0-9_-]{0,62}$"));
/// Docker's repository path grammar.
static REPOSITORY: LazyLock<Regex> = LazyLock::new(|| {
    fixed(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
});
static HOST: LazyLock<Regex> = LazyLock::new(|| {
    fixed(
        r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$",
    )
});

/// A Dockerfile stage name (`FROM … AS NAME`).
static STAGE: LazyLock<Regex> = LazyLock::new(|| fixed(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"));
/// A build secret id, as `RUN --mount=type=secret,id=…` takes it.
static SECRET_ID: LazyLock<Regex> = LazyLock::new(|| fixed(r"^[A-Za-z0-9_.-]{1,128}$"));
static ENV_NAME: LazyLock<Regex> = LazyLock::new(|| fixed(r"^[A-Za-z_][A-Za-z0-9_]*$"));
/// A key id (DSSE `keyid`): no spaces, no quotes.
static KEY_ID: LazyLock<Regex> = LazyLock::new(|| fixed(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"));
/// A tag, as the distribution spec has it.
static TAG: LazyLock<Regex> = LazyLock::new(|| fixed(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$"));

/// Compiles a pattern written in this file; the unit tests exercise each one.
#[allow(clippy::expect_used)]
fn fixed(pattern: &str) -> Regex {
    Regex::new(pattern).expect("patterns in this file are valid")
}

pub fn validate(
    config: &mut Config,
    source: &Source,
    registry_override: Option<&str>,
    out: &mut Vec<Diagnostic>,
) {
    let mut v = Validator { source, out };
    v.project(config);
    v.registry(config, registry_override);
    v.no_latest();
    v.services(config);
    v.environments(config);
    v.ledger(config);
    let stacks = v.stacks(config);
    v.ports(config, &stacks);
    v.secrets(config, &stacks);
    config.stacks = stacks;
}

struct Validator<'a> {
    source: &'a Source,
    out: &'a mut Vec<Diagnostic>,
}

impl Validator<'_> {
    fn push(&mut self, path: &[Seg], message: impl Into<String>, hint: impl Into<String>) {
        let d = self.source.at(path, message).with_hint(hint);
        self.out.push(d);
    }

    fn name(&mut self, path: &[Seg], what: &str, name: &str) {
        if !NAME.is_match(name) {
            self.push(
                path,
                format!("{what} `{name}` is not a safe name"),
                "use lowercase letters, digits, `-` and `_` (it becomes part of file paths and Swarm names)",
            );
        }
    }

    fn duration(&mut self, path: &[Seg], value: Option<&str>) {
        if let Some(text) = value
            && let Err(e) = parse_duration(text)
        {
            self.push(
                path,
                e,
                "write a duration such as \"500ms\", \"30s\" or \"5m\"",
            );
        }
    }

    fn project(&mut self, config: &Config) {
        self.name(
            &keypath!["project", "name"],
            "project name",
            &config.project.name,
        );
        if let Some(pattern) = &config.project.version_pattern
            && let Err(e) = Regex::new(pattern)
        {
            let first = e
                .to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_owned();
            self.push(
                &keypath!["project", "version_pattern"],
                format!("version_pattern is not a valid regular expression: {first}"),
                "use Rust regex syntax; it must match the whole version",
            );
        }
    }

    fn registry(&mut self, config: &Config, registry_override: Option<&str>) {
        let host = &config.registry.host;
        if !HOST.is_match(host) || host.contains("://") {
            let message = match registry_override {
                Some(_) => format!(
                    "registry host `{host}` (given in place of the file's) is not a host[:port]"
                ),
                None => format!("registry host `{host}` is not a host[:port]"),
            };
            self.push(
                &keypath!["registry", "host"],
                message,
                "write only the host and optional port, e.g. registry.example.com or 127.0.0.1:5443 (no scheme, no path)",
            );
        }
        if config.registry.insecure && !registry_client::is_loopback(host) {
            self.push(
                &keypath!["registry", "insecure"],
                format!("plain HTTP is refused for non-loopback registry `{host}`"),
                "serve the registry over TLS and set `ca` if it uses a private CA",
            );
        }
        if let Some(ca) = &config.registry.ca
            && !config.resolve(ca).is_file()
        {
            self.push(
                &keypath!["registry", "ca"],
                format!(
                    "registry CA file {} does not exist",
                    config.resolve(ca).display()
                ),
                "paths are relative to the config file",
            );
        }
    }

    /// Deployments always name an explicit version: `latest` anywhere is refused.
    fn no_latest(&mut self) {
        for (line, value) in self.source.strings() {
            if engine::is_latest(&value) {
                self.out.push(
                    Diagnostic::new(
                        self.source.path(),
                        Some(line),
                        format!("`{value}` uses the `latest` tag"),
                    )
                    .with_hint("deployments name an explicit version; `latest` is never allowed"),
                );
            }
        }
    }

    fn services(&mut self, config: &Config) {
        for (name, service) in &config.services {
            self.name(&keypath!["services", name.as_str()], "service name", name);
            if !REPOSITORY.is_match(&service.repository) {
                self.push(
                    &keypath!["services", name.as_str(), "repository"],
                    format!("repository `{}` of service `{name}` is not a valid repository path", service.repository),
                    "lowercase path components separated by `/`, e.g. hestino/api (no registry host, no tag)",
                );
            }
            if !config.resolve(&service.context).is_dir() {
                self.push(
                    &keypath!["services", name.as_str(), "context"],
                    format!(
                        "build context {} of service `{name}` is not a directory",
                        config.resolve(&service.context).display()
                    ),
                    "paths are relative to the config file",
                );
            }
            self.build(name, service);
            if service.max_replicas == Some(0) {
                self.push(
                    &keypath!["services", name.as_str(), "max_replicas"],
                    format!("max_replicas of service `{name}` is 0"),
                    "remove the service or allow at least 1 replica",
                );
            }
        }
    }

    /// A service's build keys (that the Dockerfile and secrets exist is checked by `release
    /// build`, the only command that needs them): secrets name an id and exactly one
    /// source, cache specs are ones BuildKit takes in the project's registry, the platform
    /// is the one supported, and BuildKit-only keys are not given to the classic builder.
    fn build(&mut self, name: &str, service: &super::Service) {
        let at = |key: &str| keypath!["services", name, key];
        if let Some(target) = &service.target
            && !STAGE.is_match(target)
        {
            self.push(
                &at("target"),
                format!("target `{target}` of service `{name}` is not a stage name"),
                "name a stage of the Dockerfile (`FROM … AS NAME`): letters, digits, `-`, `_`, `.`",
            );
        }
        if let Some(platform) = &service.platform
            && platform != "linux/amd64"
        {
            self.push(
                &at("platform"),
                format!("platform `{platform}` of service `{name}` is not supported"),
                "only \"linux/amd64\" is supported for now (see docs/build.md)",
            );
        }
        let mut ids = std::collections::BTreeSet::new();
        for (i, secret) in service.secrets.iter().enumerate() {
            let p = keypath!["services", name, "secrets", i];
            if !SECRET_ID.is_match(&secret.id) {
                self.push(
                    &p,
                    format!("build secret id `{}` of service `{name}` is not a valid id", secret.id),
                    "use letters, digits, `-`, `_` and `.`; the Dockerfile mounts it with RUN --mount=type=secret,id=ID",
                );
            } else if !ids.insert(secret.id.as_str()) {
                self.push(
                    &p,
                    format!(
                        "build secret `{}` of service `{name}` is listed twice",
                        secret.id
                    ),
                    "give each secret of a service its own id",
                );
            }
            match (&secret.env, &secret.file) {
                (Some(_), Some(_)) | (None, None) => self.push(
                    &p,
                    format!(
                        "build secret `{}` of service `{name}` needs exactly one of `env` and `file`",
                        secret.id
                    ),
                    "e.g. { id = \"npm\", env = \"NPM_TOKEN\" } or { id = \"nuget\", file = \"secrets/nuget.config\" }",
                ),
                (Some(var), None) => {
                    if !ENV_NAME.is_match(var) {
                        self.push(
                            &p,
                            format!("build secret `{}` of service `{name}` names `{var}`, which is not an environment variable name", secret.id),
                            "letters, digits and `_`, not starting with a digit",
                        );
                    } else if var.starts_with("RELEASE_") {
                        self.push(
                            &p,
                            format!("build secret `{}` of service `{name}` reads `{var}`: the toolchain's own RELEASE_* variables never reach a child process", secret.id),
                            "export the value under another name for the build",
                        );
                    }
                }
                (None, Some(file)) => {
                    let text = file.to_string_lossy();
                    if text.contains(',') || text.contains('"') {
                        self.push(
                            &p,
                            format!("build secret `{}` of service `{name}`: the file path contains `,` or `\"`", secret.id),
                            "buildx takes the path in a comma-separated list; rename the file",
                        );
                    }
                }
            }
        }
        for (i, spec) in service.cache_from.iter().enumerate() {
            let p = keypath!["services", name, "cache_from", i];
            if let Err(problem) = cache_spec(spec, &["registry"]) {
                self.push(
                    &p,
                    format!("cache_from `{spec}` of service `{name}`: {problem}"),
                    "write \"type=registry,ref=REPOSITORY:TAG\", a repository of the project's registry (no host)",
                );
            }
        }
        if let Some(spec) = &service.cache_to
            && let Err(problem) = cache_spec(spec, &["inline", "registry"])
        {
            self.push(
                &at("cache_to"),
                format!("cache_to `{spec}` of service `{name}`: {problem}"),
                "write \"type=inline\" (the cache travels in the pushed image) or \"type=registry,ref=REPOSITORY:TAG[,mode=max]\"",
            );
        }
        if service.builder == super::Builder::Classic {
            for (key, set) in [
                ("secrets", !service.secrets.is_empty()),
                ("cache_from", !service.cache_from.is_empty()),
                ("cache_to", service.cache_to.is_some()),
                ("platform", service.platform.is_some()),
            ] {
                if set {
                    self.push(
                        &at(key),
                        format!("service `{name}` sets `{key}`, which the classic builder (builder = \"classic\") cannot honour"),
                        "remove builder = \"classic\" to build with BuildKit, or remove the key",
                    );
                }
            }
        }
    }

    /// Whether the file declares environment `env`, even one whose table could not be
    /// read (that is reported at its own line, and is no unknown environment).
    fn declared(&self, env: &str) -> bool {
        self.source
            .root()
            .get("environments")
            .and_then(toml_edit::Item::as_table_like)
            .is_some_and(|t| t.contains_key(env))
    }

    fn environments(&mut self, config: &Config) {
        for (env, e) in &config.environments {
            let at = |key: &str| keypath!["environments", env.as_str(), key];
            self.name(
                &keypath!["environments", env.as_str()],
                "environment name",
                env,
            );
            self.name(&at("stack"), "stack name", &e.stack);
            if let Some(project) = &e.project {
                self.name(&at("project"), "compose project name", project);
                if e.orchestrator != super::model::Orchestrator::Compose {
                    self.push(
                        &at("project"),
                        format!("environment `{env}` sets `project`, which only a Compose environment uses"),
                        "set orchestrator = \"compose\", or remove `project` (a Swarm environment is named by `stack`)",
                    );
                }
            }
            self.duration(&at("deploy_timeout"), e.deploy_timeout.as_deref());
            if let Some(from) = &e.promote_from {
                if from == env {
                    self.push(
                        &at("promote_from"),
                        format!("environment `{env}` promotes from itself"),
                        "name the environment whose tested digests it receives, e.g. \"dev\"",
                    );
                } else if !config.environments.contains_key(from) && !self.declared(from) {
                    self.push(
                        &at("promote_from"),
                        format!("environment `{env}` promotes from unknown environment `{from}`"),
                        format!("environments defined: {}", keys(&config.environments)),
                    );
                }
            }
            self.engine(config, env, e);
            self.blue_green(config, env, e);
            if let Some(evidence) = &e.evidence {
                let base = keypath!["environments", env.as_str(), "evidence"];
                self.keys(config, &base, &format!("environment `{env}`"), evidence);
            }
            for (i, check) in e.checks.iter().enumerate() {
                let cpath = keypath!["environments", env.as_str(), "checks", i].to_vec();
                for service in check.services() {
                    if !config.services.contains_key(service) {
                        self.push(
                            &cpath,
                            format!(
                                "a check of environment `{env}` names unknown service `{service}`"
                            ),
                            format!("services defined: {}", keys(&config.services)),
                        );
                    }
                }
                let timing = check.timing();
                for (key, value) in [
                    ("timeout", &timing.timeout),
                    ("retry_interval", &timing.retry_interval),
                    ("deadline", &timing.deadline),
                ] {
                    let mut p = cpath.clone();
                    p.push(Seg::from(key));
                    self.duration(&p, value.as_deref());
                    // A zero timeout fails every attempt; a zero interval retries in a
                    // busy loop, listing thousands of attempts in the report.
                    if key != "deadline"
                        && let Some(Ok(d)) = value.as_deref().map(parse_duration)
                        && d.is_zero()
                    {
                        self.push(
                            &p,
                            format!("{key} must be longer than 0"),
                            "write a duration such as \"500ms\" or \"1s\"",
                        );
                    }
                }
                let compose = e.orchestrator == super::model::Orchestrator::Compose;
                if matches!(check, Check::Swarm(_)) && compose {
                    self.push(
                        &cpath,
                        format!("a swarm check of environment `{env}` cannot judge a Compose environment"),
                        "use kind = \"compose\", which judges the project's containers the same way",
                    );
                }
                if matches!(check, Check::Compose(_)) && !compose {
                    self.push(
                        &cpath,
                        format!("a compose check of environment `{env}` cannot judge a Swarm environment"),
                        "use kind = \"swarm\", or set orchestrator = \"compose\"",
                    );
                }
                let listed = match check {
                    Check::Swarm(c) => Some(("swarm", &c.services)),
                    Check::Compose(c) => Some(("compose", &c.services)),
                    _ => None,
                };
                if let Some((kind, services)) = listed
                    && services.as_ref().is_some_and(Vec::is_empty)
                {
                    self.push(
                        &cpath,
                        format!("a {kind} check of environment `{env}` lists no services"),
                        "name the services to check, or leave `services` out to check all of them",
                    );
                }
                if let Check::Http(http) = check {
                    let mut p = cpath.clone();
                    p.push(Seg::from("max_latency"));
                    self.duration(&p, http.max_latency.as_deref());
                    if !(http.url.starts_with("http://") || http.url.starts_with("https://")) {
                        self.push(
                            &cpath,
                            format!(
                                "check `{}` has URL `{}` that is not http:// or https://",
                                http.name,
                                verify::check::mask_password(&http.url)
                            ),
                            "write a full URL, e.g. http://127.0.0.1:18080/health",
                        );
                    }
                    match (&http.json_pointer, &http.json_equals) {
                        (None, Some(_)) => self.push(
                            &cpath,
                            format!("check `{}` has json_equals without json_pointer", http.name),
                            "add json_pointer, e.g. \"/status\"",
                        ),
                        (Some(_), None) => self.push(
                            &cpath,
                            format!("check `{}` has json_pointer without json_equals", http.name),
                            "add the value it must equal, e.g. json_equals = \"ok\"",
                        ),
                        (Some(pointer), Some(_))
                            if !(pointer.is_empty() || pointer.starts_with('/')) =>
                        {
                            self.push(
                                &cpath,
                                format!(
                                    "check `{}` has json_pointer `{pointer}`, which does not start with `/`",
                                    http.name
                                ),
                                "write a JSON pointer (RFC 6901), e.g. \"/status\" or \"/checks/0/ok\"",
                            );
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// A block of keys (an environment's evidence, or `[ledger]`): one way to read the
    /// signing key, with an id; each trusted key's file present, and every id once. `base`
    /// is the block's path, `who` names its owner in messages ("environment `dev`").
    fn keys(
        &mut self,
        config: &Config,
        base: &[Seg],
        who: &str,
        evidence: &super::model::Evidence,
    ) {
        let at = |key: &str| {
            let mut path = base.to_vec();
            path.push(Seg::from(key));
            path
        };
        if evidence.signing_key_env.is_some() && evidence.signing_key_file.is_some() {
            self.push(
                &at("signing_key_file"),
                format!("{who} names its signing key twice (signing_key_env and signing_key_file)"),
                "keep one: signing_key_env for a Jenkins credential, signing_key_file for a file",
            );
        }
        if let Some(var) = &evidence.signing_key_env
            && !ENV_NAME.is_match(var)
        {
            self.push(
                &at("signing_key_env"),
                format!("signing_key_env `{var}` of {who} is not a variable name"),
                "name an environment variable, e.g. \"RELEASE_DEV_SIGNING_KEY\"",
            );
        }
        if let Some(file) = &evidence.signing_key_file
            && !config.dir.join(file).is_file()
        {
            self.push(
                &at("signing_key_file"),
                format!(
                    "signing key file `{}` of {who} does not exist",
                    file.display()
                ),
                "the path is relative to release.toml; generate a key with `openssl genpkey -algorithm ed25519 -out dev.pem`",
            );
        }
        match &evidence.key_id {
            None if evidence.signs() => self.push(
                &at("key_id"),
                format!("{who} has a signing key but no key_id"),
                "add key_id = \"<env>-<year>\": the id its signatures carry and other environments trust",
            ),
            Some(id) if !KEY_ID.is_match(id) => self.push(
                &at("key_id"),
                format!("key_id `{id}` of {who} is not a key id"),
                "use letters, digits, `.`, `_`, `:` and `-`",
            ),
            _ => {}
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, key) in evidence.trust.iter().enumerate() {
            let mut path = at("trust");
            path.push(Seg::from(i));
            if !KEY_ID.is_match(&key.id) {
                self.push(
                    &path,
                    format!("trusted key id `{}` of {who} is not a key id", key.id),
                    "use letters, digits, `.`, `_`, `:` and `-`",
                );
            }
            if !seen.insert(key.id.as_str()) {
                self.push(
                    &path,
                    format!("{who} trusts key id `{}` twice", key.id),
                    "give each key its own id; mark an old one revoked = true instead of reusing its id",
                );
            }
            if !config.dir.join(&key.public_key).is_file() {
                self.push(
                    &path,
                    format!(
                        "public key file `{}` of trusted key `{}` ({who}) does not exist",
                        key.public_key.display(),
                        key.id
                    ),
                    "the path is relative to release.toml; export it with `openssl pkey -in KEY.pem -pubout -out KEY.pub`",
                );
            }
            if let Some(env) = &key.environment
                && !config.environments.contains_key(env)
            {
                self.push(
                    &path,
                    format!(
                        "trusted key `{}` ({who}) signs for unknown environment `{env}`",
                        key.id
                    ),
                    format!("environments defined: {}", keys(&config.environments)),
                );
            }
        }
    }

    /// `[ledger]`: the key that signs the ledger head and the keys that verify it.
    fn ledger(&mut self, config: &Config) {
        if let Some(ledger) = &config.ledger {
            self.keys(config, &keypath!["ledger"], "[ledger]", ledger);
        }
    }

    /// The keys that name an environment's engine, checked together: which address, and
    /// the TLS material a tcp address needs.
    fn engine(&mut self, config: &Config, env: &str, e: &super::Environment) {
        let at = |key: &str| keypath!["environments", env, key];
        if let (Some(_), Some(_)) = (&e.docker_host, &e.docker_context) {
            self.push(
                &at("docker_context"),
                format!("environment `{env}` sets both docker_host and docker_context"),
                "keep one: docker_host names an address, docker_context a Docker CLI context",
            );
        }
        if let Some(name) = &e.docker_context
            && name.trim().is_empty()
        {
            self.push(
                &at("docker_context"),
                format!("docker_context of environment `{env}` is empty"),
                "name a context from `docker context ls`, or leave the key out",
            );
        }
        let tcp = match &e.docker_host {
            Some(host) => match engine::Address::parse(host, e.docker_cert_path.is_some()) {
                Ok(address) => matches!(address, engine::Address::Tcp { .. }).then_some(address),
                Err(err) => {
                    let reason = match err {
                        engine::EndpointError::InvalidHost { reason, .. } => reason,
                        other => other.to_string(),
                    };
                    self.push(
                        &at("docker_host"),
                        format!("docker_host `{host}` of environment `{env}` is not a unix://, tcp:// or ssh:// address ({reason})"),
                        "e.g. unix:///var/run/docker.sock, tcp://HOST:2376 or ssh://USER@HOST; leave it out to use DOCKER_HOST",
                    );
                    return;
                }
            },
            None => None,
        };
        match (&e.docker_cert_path, &tcp) {
            (Some(_), None) => {
                self.push(
                    &at("docker_cert_path"),
                    format!("docker_cert_path of environment `{env}` needs a tcp:// docker_host"),
                    "TLS certificates apply to tcp:// hosts; ssh:// and unix:// need none, and a context brings its own",
                );
                return;
            }
            (None, Some(engine::Address::Tcp { port: 2376, .. })) => {
                self.push(
                    &at("docker_host"),
                    format!(
                        "docker_host `{}` of environment `{env}` is Docker's TLS port, but docker_cert_path is not set",
                        e.docker_host.as_deref().unwrap_or_default()
                    ),
                    "2376 is Docker's TLS port; set docker_cert_path to a directory with ca.pem, cert.pem, key.pem",
                );
            }
            _ => {}
        }
        if e.docker_tls_verify.is_some() && e.docker_cert_path.is_none() {
            self.push(
                &at("docker_tls_verify"),
                format!("docker_tls_verify of environment `{env}` needs docker_cert_path"),
                "set docker_cert_path to a directory with ca.pem, cert.pem, key.pem",
            );
        }
        if e.docker_tls_verify == Some(false) {
            self.push(
                &at("docker_tls_verify"),
                format!("environment `{env}` sets docker_tls_verify = false: TLS without verifying the engine is refused"),
                "give the CA that signed the engine's certificate as ca.pem in docker_cert_path, and remove docker_tls_verify",
            );
        }
        if let Some(dir) = &e.docker_cert_path {
            let dir = config.resolve(dir);
            if !dir.is_dir() {
                self.push(
                    &at("docker_cert_path"),
                    format!(
                        "docker_cert_path {} of environment `{env}` is not a directory",
                        dir.display()
                    ),
                    "paths are relative to the config file; the directory holds ca.pem, cert.pem, key.pem",
                );
                return;
            }
            for file in engine::endpoint::TLS_FILES {
                if !dir.join(file).is_file() {
                    self.push(
                        &at("docker_cert_path"),
                        format!(
                            "docker_cert_path of environment `{env}` has no {file}: {} does not exist",
                            dir.join(file).display()
                        ),
                        "the directory holds ca.pem (the CA that signed the engine's certificate), cert.pem and key.pem (the client's)",
                    );
                }
            }
        }
    }

    /// Parses each environment's stack file and checks it against the services.
    fn stacks(&mut self, config: &Config) -> BTreeMap<String, StackFile> {
        let mut stacks = BTreeMap::new();
        for (env, e) in &config.environments {
            let at = keypath!["environments", env.as_str(), "stack_file"];
            let files: Vec<std::path::PathBuf> = e
                .stack_file
                .paths()
                .into_iter()
                .map(|p| config.resolve(p))
                .collect();
            let Some(file) = files.first().cloned() else {
                self.push(
                    &at,
                    format!("environment `{env}` names no stack file"),
                    "name one, e.g. stack_file = \"compose.yml\"",
                );
                continue;
            };
            let loaded = if files.len() == 1 {
                StackFile::load(&file)
            } else if e.orchestrator != super::model::Orchestrator::Compose {
                self.push(
                    &at,
                    format!(
                        "environment `{env}` lists {} stack files; a Swarm environment takes one",
                        files.len()
                    ),
                    "merge them into one stack file, or set orchestrator = \"compose\"",
                );
                continue;
            } else {
                // Compose merges them, as `docker compose -f A -f B` would apply them.
                match engine::compose_config(&files) {
                    Ok(text) => StackFile::parse(&file, &text),
                    Err(err) => {
                        self.push(&at, format!("environment `{env}`: {err}"), "each file must exist and `docker compose config` must accept them together");
                        continue;
                    }
                }
            };
            let stack = match loaded {
                Ok(s) => s,
                Err(err) => {
                    self.push(
                        &at,
                        format!("environment `{env}`: {err}"),
                        "paths are relative to the config file",
                    );
                    continue;
                }
            };
            for (name, service) in &config.services {
                let stack_name = service.stack_service_name(name);
                if stack.service(stack_name).is_none() {
                    self.push(&at, format!("service `{name}` is not in stack file {} of environment `{env}` (looked for `{stack_name}`)", file.display()), "add it to the stack file or set `stack_service` on the service");
                }
            }
            use engine::PolicyProblem as P;
            for problem in stack.policy_problems(&|name| config.rules_of(name), false) {
                match problem {
                    P::TooManyReplicas { service, replicas, max } => self.stack_problem(&stack, &service, "replicas:", format!("service `{service}` runs {replicas} replicas in environment `{env}`; its limit is {max}"), "lower deploy.replicas or raise max_replicas in release.toml"),
                    P::InternalPublishes { service, port } => self.stack_problem(&stack, &service, "ports:", format!("internal service `{service}` publishes port {port} in environment `{env}`"), "internal services are reached over the stack network only; remove `ports`"),
                    P::Latest { service, image } => self.stack_problem(&stack, &service, &image, format!("service `{service}` uses image `{image}` tagged latest"), "pin an explicit version, or a digest for services the release does not build"),
                    // Only a rendered stack must name and pin every image.
                    P::NoImage { .. } | P::Unpinned { .. } => {}
                }
            }
            if e.strategy == super::model::Strategy::BlueGreen {
                // Both colours run at once: a port in the file would be bound twice.
                for (name, service) in stack.services() {
                    if let Some(port) = service.ports.first() {
                        self.stack_problem(&stack, name, "ports:", format!("service `{name}` publishes port {} in blue-green environment `{env}`, where both colours run at once", port.published), "remove `ports`: the tool publishes each routed service on its colour's port (blue_green.routes)");
                    }
                }
                if let Some(bg) = &e.blue_green {
                    // An unknown service is reported with the route.
                    for route in bg
                        .routes
                        .iter()
                        .filter(|r| config.services.contains_key(&r.service))
                    {
                        let in_file = config
                            .services
                            .get(&route.service)
                            .map_or(route.service.as_str(), |s| {
                                s.stack_service_name(&route.service)
                            });
                        if stack.service(in_file).is_none() {
                            self.push(&at, format!("routed service `{}` is not in compose file {} of environment `{env}`", route.service, file.display()), "add it to the file, or remove its route");
                        }
                    }
                }
            }
            stacks.insert(env.clone(), stack);
        }
        stacks
    }

    /// `strategy = "blue-green"` and its `[environments.E.blue_green]` table.
    fn blue_green(&mut self, config: &Config, env: &str, e: &super::model::Environment) {
        use super::model::{Orchestrator, Strategy};
        let at = |key: &str| keypath!["environments", env, key];
        let bg = match (e.strategy, &e.blue_green) {
            (Strategy::InPlace, None) => return,
            (Strategy::InPlace, Some(_)) => {
                return self.push(
                    &at("blue_green"),
                    format!("environment `{env}` has a [blue_green] table but deploys in place"),
                    "set strategy = \"blue-green\", or remove the table",
                );
            }
            (Strategy::BlueGreen, None) => {
                return self.push(
                    &at("strategy"),
                    format!("environment `{env}` deploys blue-green but has no [environments.{env}.blue_green] table"),
                    "add upstream_file, proxy_url, preview_url and at least one route (docs/blue-green.md)",
                );
            }
            (Strategy::BlueGreen, Some(bg)) => bg,
        };
        let base = keypath!["environments", env, "blue_green"];
        let here = |key: &str| {
            let mut p = base.to_vec();
            p.push(Seg::from(key));
            p
        };
        self.duration(&here("rollback_window"), bg.rollback_window.as_deref());
        self.duration(&here("switch_settle"), bg.switch_settle.as_deref());
        for (key, url) in [
            ("proxy_url", &bg.proxy_url),
            ("preview_url", &bg.preview_url),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.trim_end_matches('/').matches('/').count() != 2
            {
                self.push(
                    &here(key),
                    format!("`{key}` = `{url}` is not an origin such as http://127.0.0.1:8080"),
                    "write the scheme, host and port, with no path",
                );
            }
        }
        if bg.proxy_url.trim_end_matches('/') == bg.preview_url.trim_end_matches('/') {
            self.push(
                &here("preview_url"),
                "`preview_url` is the same address as `proxy_url`",
                "the idle colour needs a listener of its own on the proxy",
            );
        }
        for key in ["test_command", "reload_command"] {
            let command = if key == "test_command" {
                &bg.test_command
            } else {
                &bg.reload_command
            };
            if command
                .as_ref()
                .is_some_and(|c| c.is_empty() || c[0].is_empty())
            {
                self.push(
                    &here(key),
                    format!("`{key}` is empty"),
                    "write the program and its arguments, e.g. [\"nginx\", \"-t\"]",
                );
            }
        }
        match &bg.upstream_hosts {
            Some(hosts) if hosts.is_empty() => self.push(
                &here("upstream_hosts"),
                "`upstream_hosts` lists no address",
                "leave it out for the proxy's own host (127.0.0.1), or list the Swarm nodes' addresses",
            ),
            Some(hosts) => {
                for host in hosts.iter().filter(|h| {
                    h.is_empty() || !h.chars().all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
                }) {
                    self.push(&here("upstream_hosts"), format!("`{host}` is not a host name or address"), "write e.g. \"198.18.0.11\"");
                }
            }
            None if e.orchestrator == Orchestrator::Swarm => self.push(
                &here("upstream_hosts"),
                format!("blue-green Swarm environment `{env}` names no upstream_hosts"),
                "list the addresses of the Swarm nodes that may run the routed services: a colour publishes its ports in host mode on whichever node runs a task",
            ),
            None => {}
        }
        if bg.routes.is_empty() {
            self.push(
                &here("routes"),
                format!("environment `{env}` deploys blue-green but routes no service"),
                "add { upstream = \"…\", service = \"…\", port = …, blue = …, green = … }",
            );
        }
        let mut ports: BTreeMap<u16, String> = BTreeMap::new();
        let mut upstreams = BTreeSet::new();
        for (i, route) in bg.routes.iter().enumerate() {
            let mut p = here("routes");
            p.push(Seg::from(i));
            match config.services.get(&route.service) {
                None => self.push(
                    &p,
                    format!(
                        "a route of environment `{env}` names unknown service `{}`",
                        route.service
                    ),
                    format!("services defined: {}", keys(&config.services)),
                ),
                Some(s) if s.internal => self.push(
                    &p,
                    format!(
                        "service `{}` is internal and cannot be routed by the proxy",
                        route.service
                    ),
                    "remove the route, or `internal = true`",
                ),
                Some(_) => {}
            }
            if route.upstream.is_empty()
                || !route
                    .upstream
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                self.push(
                    &p,
                    format!(
                        "upstream name `{}` is not letters, digits and `_`",
                        route.upstream
                    ),
                    "use the name of the proxy configuration's upstream, e.g. \"shop_web\"",
                );
            }
            if !upstreams.insert(route.upstream.clone()) {
                self.push(
                    &p,
                    format!("upstream `{}` is routed twice", route.upstream),
                    "give each route its own upstream",
                );
            }
            for (colour, port) in [("blue", route.blue), ("green", route.green)] {
                if port == 0 {
                    self.push(
                        &p,
                        format!("the {colour} port of upstream `{}` is 0", route.upstream),
                        "choose a free host port",
                    );
                } else if let Some(other) =
                    ports.insert(port, format!("{colour} of `{}`", route.upstream))
                {
                    self.push(
                        &p,
                        format!(
                            "host port {port} ({colour} of `{}`) is also {other}",
                            route.upstream
                        ),
                        "give each colour of each route its own host port",
                    );
                }
            }
        }
    }

    /// A problem in a stack file, located at the first line after the service's key that
    /// contains `needle`.
    fn stack_problem(
        &mut self,
        stack: &StackFile,
        service: &str,
        needle: &str,
        message: String,
        hint: &str,
    ) {
        let text = std::fs::read_to_string(stack.path()).unwrap_or_default();
        let line = find_line(&text, &format!("{service}:"), needle);
        self.out
            .push(Diagnostic::new(stack.path(), line, message).with_hint(hint));
    }

    /// Two services binding the same node port can never both run: within a stack, or
    /// across environments deployed to the same Docker host.
    fn ports(&mut self, config: &Config, stacks: &BTreeMap<String, StackFile>) {
        let mut seen: BTreeMap<(String, u16, String), (String, String)> = BTreeMap::new();
        for (env, stack) in stacks {
            // Environments on one engine share its ports; a context or the process
            // environment each count as an engine of their own.
            let host = config
                .environments
                .get(env)
                .and_then(|e| {
                    e.docker_host
                        .clone()
                        .or_else(|| e.docker_context.as_ref().map(|c| format!("context {c}")))
                })
                .unwrap_or_default();
            for (name, s) in stack.services() {
                for port in &s.ports {
                    let key = (host.clone(), port.published, port.protocol.clone());
                    match seen.get(&key) {
                        Some((other_env, other)) => {
                            let whom = if other_env == env {
                                format!("service `{other}`")
                            } else {
                                format!("service `{other}` of environment `{other_env}`")
                            };
                            self.stack_problem(stack, name, &port.published.to_string(), format!("service `{name}` of environment `{env}` publishes port {}/{} already published by {whom}", port.published, port.protocol), "give each service and each environment on one Docker host its own published port");
                        }
                        None => {
                            seen.insert(key, (env.clone(), name.clone()));
                        }
                    }
                }
            }
        }
    }

    /// DEV and PROD never share secrets or configs: an object name two environments
    /// resolve to is refused.
    fn secrets(&mut self, config: &Config, stacks: &BTreeMap<String, StackFile>) {
        let mut owners: BTreeMap<String, String> = BTreeMap::new();
        for (env, stack) in stacks {
            let Some(e) = config.environments.get(env) else {
                continue;
            };
            let compose = e.orchestrator == super::model::Orchestrator::Compose;
            for kind in ["secrets", "configs"] {
                let names = if compose {
                    compose_sources(stack, kind)
                } else {
                    external_names(stack, kind, &e.stack)
                };
                for (key, name) in names {
                    if let Some(other) = owners.get(&name)
                        && other != env
                    {
                        let text = std::fs::read_to_string(stack.path()).unwrap_or_default();
                        let line = find_line(&text, &format!("{kind}:"), &format!("{key}:"));
                        self.out.push(
                            Diagnostic::new(stack.path(), line, format!("environment `{env}` uses {} `{name}`, which environment `{other}` also uses", &kind[..kind.len() - 1]))
                                .with_hint("DEV and PROD never share secrets: give each environment its own"),
                        );
                    } else {
                        owners.insert(name, env.clone());
                    }
                }
            }
        }
    }
}

/// A BuildKit cache spec (`type=…,ref=…[,mode=…]`) parsed and checked: a type out of
/// `types`, a `ref` `REPOSITORY[:TAG]` inside the project's registry for `type=registry`
/// (the registry host is added when building), `mode` min or max for an export.
pub fn cache_spec(spec: &str, types: &[&str]) -> Result<BTreeMap<String, String>, String> {
    let mut fields = BTreeMap::new();
    for part in spec.split(',') {
        let Some((key, value)) = part.split_once('=') else {
            return Err(format!("`{part}` is not KEY=VALUE"));
        };
        if fields
            .insert(key.trim().to_owned(), value.trim().to_owned())
            .is_some()
        {
            return Err(format!("`{key}` is given twice"));
        }
    }
    let kind = fields
        .get("type")
        .ok_or_else(|| "it has no `type`".to_owned())?
        .clone();
    if !types.contains(&kind.as_str()) {
        return Err(format!(
            "type `{kind}` is not supported here (supported: {})",
            types.join(", ")
        ));
    }
    let known: &[&str] = match (kind.as_str(), types.contains(&"inline")) {
        ("registry", true) => &["type", "ref", "mode"],
        ("registry", false) => &["type", "ref"],
        _ => &["type"],
    };
    if let Some(unknown) = fields.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!("`{unknown}` is not supported for type `{kind}`"));
    }
    if let Some(mode) = fields.get("mode")
        && mode != "min"
        && mode != "max"
    {
        return Err(format!("mode `{mode}` is neither min nor max"));
    }
    if kind == "registry" {
        let reference = fields
            .get("ref")
            .ok_or_else(|| "type=registry needs a `ref`".to_owned())?;
        let (repository, tag) = match reference.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, t),
            _ => return Err(format!("ref `{reference}` needs a tag (REPOSITORY:TAG)")),
        };
        let first = repository.split('/').next().unwrap_or_default();
        if first.contains('.')
            || first.contains(':')
            || first == "localhost"
            || reference.contains('@')
        {
            return Err(format!(
                "ref `{reference}` names a registry host or a digest; the cache lives in the project's registry"
            ));
        }
        if !REPOSITORY.is_match(repository) || !TAG.is_match(tag) {
            return Err(format!("ref `{reference}` is not REPOSITORY:TAG"));
        }
    }
    Ok(fields)
}

/// The Swarm names of a stack's top-level secrets or configs: `name:` if set, the key for
/// `external: true`, else `<stack>_<key>` as `docker stack deploy` names them.
fn external_names(stack: &StackFile, kind: &str, stack_name: &str) -> Vec<(String, String)> {
    let Some(map) = stack.document().get(kind).and_then(|v| v.as_mapping()) else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(k, v)| {
            let key = k.as_str()?.to_owned();
            let explicit = v.get("name").and_then(|n| n.as_str()).map(str::to_owned);
            let external = v.get("external").and_then(|x| x.as_bool()).unwrap_or(false);
            let name = explicit.unwrap_or_else(|| {
                if external {
                    key.clone()
                } else {
                    format!("{stack_name}_{key}")
                }
            });
            Some((key, name))
        })
        .collect()
}

/// What each secret or config of a compose file is read from: Compose has no named
/// secret objects, so two environments share one when they read the same file (resolved
/// against the compose file's directory) or the same variable.
fn compose_sources(stack: &StackFile, kind: &str) -> Vec<(String, String)> {
    let Some(map) = stack.document().get(kind).and_then(|v| v.as_mapping()) else {
        return Vec::new();
    };
    let dir = stack.path().parent().unwrap_or(std::path::Path::new("."));
    map.iter()
        .filter_map(|(k, v)| {
            let key = k.as_str()?.to_owned();
            if let Some(file) = v.get("file").and_then(|f| f.as_str()) {
                let path = dir.join(file);
                let path = std::fs::canonicalize(&path).unwrap_or(path);
                return Some((key, path.display().to_string()));
            }
            let var = v.get("environment").and_then(|e| e.as_str())?;
            Some((key, format!("${var}")))
        })
        .collect()
}

/// The 1-based line of the first line containing `needle` after a line containing `anchor`.
fn find_line(text: &str, anchor: &str, needle: &str) -> Option<usize> {
    let start = text
        .lines()
        .position(|l| l.trim_start().starts_with(anchor))?;
    text.lines()
        .enumerate()
        .skip(start)
        .find(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
}

fn keys<V>(map: &BTreeMap<String, V>) -> String {
    map.keys()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}
