//! Which Docker Engine to talk to: one typed answer, used for the Engine API client and for
//! every Docker CLI child process, so that the two can never reach different engines.
//!
//! An endpoint is read from one of three places, and resolved to the same type:
//! - explicit settings (an environment's `docker_host` with optional TLS material);
//! - a Docker CLI context, read from the CLI's own context store;
//! - the process environment, exactly as the Docker CLI reads it: `DOCKER_HOST` (with
//!   `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH`), else `DOCKER_CONTEXT`, else the CLI config's
//!   `currentContext`, else the local socket.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// The Docker CLI's default socket.
pub const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// The three files a TLS directory holds, as `DOCKER_CERT_PATH` lays them out.
pub const TLS_FILES: [&str; 3] = ["ca.pem", "cert.pem", "key.pem"];

/// The variables that decide which engine a Docker CLI child talks to; each is set or
/// removed explicitly for every child.
const CLI_ENDPOINT_VARS: [&str; 5] = [
    "DOCKER_HOST",
    "DOCKER_TLS_VERIFY",
    "DOCKER_TLS",
    "DOCKER_CERT_PATH",
    "DOCKER_CONTEXT",
];

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("docker host `{host}` is not a unix://, tcp:// or ssh:// address: {reason}")]
    InvalidHost { host: String, reason: String },
    #[error("docker host `{host}` is not tcp://, so it cannot use TLS certificates")]
    TlsWithoutTcp { host: String },
    #[error("TLS file {} of {endpoint} does not exist", file.display())]
    MissingTlsFile { endpoint: String, file: PathBuf },
    #[error("{endpoint} asks for TLS without verifying the engine's certificate, which is refused")]
    SkipVerify { endpoint: String },
    #[error("Docker CLI context `{name}` does not exist (no {})", meta.display())]
    UnknownContext { name: String, meta: PathBuf },
    #[error("cannot read Docker CLI context `{name}` from {}: {reason}", path.display())]
    Context {
        name: String,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot read the Docker CLI config {}: {reason}", path.display())]
    CliConfig { path: PathBuf, reason: String },
}

impl EndpointError {
    /// The hint a user needs to act on this error.
    pub fn hint(&self) -> String {
        match self {
            Self::InvalidHost { .. } => {
                "write e.g. unix:///var/run/docker.sock, tcp://HOST:2376 or ssh://USER@HOST".into()
            }
            Self::TlsWithoutTcp { .. } => {
                "TLS certificates apply to tcp:// hosts only; ssh:// and unix:// need none".into()
            }
            Self::MissingTlsFile { .. } => {
                "a TLS directory holds ca.pem, cert.pem and key.pem, as DOCKER_CERT_PATH does"
                    .into()
            }
            Self::SkipVerify { .. } => "give the CA that signed the engine's certificate as ca.pem (DOCKER_TLS_VERIFY=1, or SkipTLSVerify false in the context)".into(),
            Self::UnknownContext { .. } => "list contexts with `docker context ls`; DOCKER_CONFIG names the CLI config directory".into(),
            Self::Context { .. } | Self::CliConfig { .. } => {
                "check the file with `docker context inspect`; DOCKER_CONFIG names the CLI config directory".into()
            }
        }
    }
}

/// The address part of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `unix://PATH`.
    Unix(PathBuf),
    /// `tcp://HOST:PORT`; `host` may be a bracketed IPv6 address.
    Tcp { host: String, port: u16 },
    /// `ssh://[USER@]HOST[:PORT]`, reached through the system `ssh` and
    /// `docker system dial-stdio` on the far side.
    Ssh {
        user: Option<String>,
        host: String,
        port: Option<u16>,
    },
}

impl Address {
    /// Parses `unix://…`, `tcp://…` and `ssh://…` as the Docker CLI accepts them. A tcp
    /// host without a port gets Docker's: 2376 with TLS, 2375 without.
    pub fn parse(text: &str, tls: bool) -> Result<Self, EndpointError> {
        let invalid = |reason: &str| EndpointError::InvalidHost {
            host: text.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(path) = text.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(invalid("the socket path must be absolute"));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = text.strip_prefix("tcp://") {
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            if rest.contains('/') || rest.contains('@') {
                return Err(invalid("write only HOST:PORT after tcp://"));
            }
            let (host, port) = split_port(rest).map_err(|r| invalid(&r))?;
            if host.is_empty() {
                return Err(invalid("the host is empty"));
            }
            let port = port.unwrap_or(if tls { 2376 } else { 2375 });
            return Ok(Address::Tcp { host, port });
        }
        if let Some(rest) = text.strip_prefix("ssh://") {
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            if rest.contains('/') {
                return Err(invalid("write only [USER@]HOST[:PORT] after ssh://"));
            }
            let (user, hostport) = match rest.rsplit_once('@') {
                Some((user, hostport)) => (Some(user), hostport),
                None => (None, rest),
            };
            if user.is_some_and(|u| u.contains(':')) {
                return Err(invalid(
                    "a password in the address is refused; use an SSH key (agent or ~/.ssh/config)",
                ));
            }
            if user.is_some_and(str::is_empty) {
                return Err(invalid("the user before `@` is empty"));
            }
            let (host, port) = split_port(hostport).map_err(|r| invalid(&r))?;
            if host.is_empty() {
                return Err(invalid("the host is empty"));
            }
            return Ok(Address::Ssh {
                user: user.map(str::to_owned),
                host,
                port,
            });
        }
        Err(invalid("unknown scheme"))
    }

    /// The host name or address, without user or port, for messages.
    pub fn host_name(&self) -> String {
        match self {
            Address::Unix(_) => "this machine".to_owned(),
            Address::Tcp { host, .. } | Address::Ssh { host, .. } => host.clone(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(path) => write!(f, "unix://{}", path.display()),
            Address::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Address::Ssh { user, host, port } => {
                f.write_str("ssh://")?;
                if let Some(user) = user {
                    write!(f, "{user}@")?;
                }
                f.write_str(host)?;
                if let Some(port) = port {
                    write!(f, ":{port}")?;
                }
                Ok(())
            }
        }
    }
}

/// `HOST[:PORT]`, with `[v6]` hosts kept bracketed.
fn split_port(text: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| "an IPv6 address needs its closing `]`".to_owned())?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| format!("unexpected `{p}` after the IPv6 address"))?,
            ),
        };
        (format!("[{v6}]"), port)
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (text.to_owned(), None),
        }
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("port `{p}` is not a number from 1 to 65535"))
        })
        .transpose()?;
    Ok((host, port))
}

/// TLS material for a tcp endpoint: a directory with `ca.pem`, `cert.pem` and `key.pem`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub cert_path: PathBuf,
    /// Whether the engine's certificate is verified against `ca.pem`. Only `true` can
    /// be connected; `false` is kept so the refusal can name where it came from.
    pub verify: bool,
}

impl Tls {
    pub fn ca(&self) -> PathBuf {
        self.cert_path.join("ca.pem")
    }

    pub fn cert(&self) -> PathBuf {
        self.cert_path.join("cert.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.cert_path.join("key.pem")
    }
}

/// One Docker Engine, as the Docker CLI would address it. Two endpoints are equal when
/// they address the same engine the same way, wherever they were found.
#[derive(Debug, Clone)]
pub struct Endpoint {
    address: Address,
    tls: Option<Tls>,
    /// The CLI context it was resolved from, if any; for messages only.
    context: Option<String>,
    /// Found in this process's environment ([`Endpoint::from_env`]: `DOCKER_HOST`, a
    /// context, the local socket) rather than given; for hints only.
    from_process: bool,
}

impl Endpoint {
    /// An endpoint from explicit settings: `host`, and for a tcp host optional TLS.
    pub fn new(host: &str, tls: Option<Tls>) -> Result<Self, EndpointError> {
        let address = Address::parse(host, tls.is_some())?;
        if tls.is_some() && !matches!(address, Address::Tcp { .. }) {
            return Err(EndpointError::TlsWithoutTcp {
                host: host.to_owned(),
            });
        }
        Ok(Self {
            address,
            tls,
            context: None,
            from_process: false,
        })
    }

    /// The local socket, the Docker CLI's default.
    pub fn local() -> Self {
        Self {
            address: Address::Unix(PathBuf::from(DEFAULT_SOCKET)),
            tls: None,
            context: None,
            from_process: false,
        }
    }

    /// The endpoint of Docker CLI context `name`, read from the context store under
    /// `docker_config` (`$DOCKER_CONFIG`, default `~/.docker`) as the CLI reads it:
    /// `contexts/meta/<sha256 of name>/meta.json` names the host, and TLS files, when
    /// the context has them, are in `contexts/tls/<sha256 of name>/docker/`. The context
    /// `default` is the CLI's built-in one: the local socket.
    pub fn from_context(name: &str, docker_config: &Path) -> Result<Self, EndpointError> {
        if name == "default" {
            return Ok(Self {
                context: Some(name.to_owned()),
                ..Self::local()
            });
        }
        let id = hex::encode(Sha256::digest(name.as_bytes()));
        let meta = docker_config
            .join("contexts/meta")
            .join(&id)
            .join("meta.json");
        let context_error = |reason: String| EndpointError::Context {
            name: name.to_owned(),
            path: meta.clone(),
            reason,
        };
        let text = match std::fs::read_to_string(&meta) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(EndpointError::UnknownContext {
                    name: name.to_owned(),
                    meta,
                });
            }
            Err(e) => return Err(context_error(e.to_string())),
        };
        let doc: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| context_error(e.to_string()))?;
        let docker = &doc["Endpoints"]["docker"];
        let host = docker["Host"]
            .as_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| context_error("it names no Endpoints.docker.Host".to_owned()))?;
        let skip_verify = docker["SkipTLSVerify"].as_bool().unwrap_or(false);
        let tls_dir = docker_config.join("contexts/tls").join(&id).join("docker");
        // The CLI uses TLS when the context stores TLS material or skips verification.
        let tls = if tls_dir.is_dir() || skip_verify {
            Some(Tls {
                cert_path: tls_dir,
                verify: !skip_verify,
            })
        } else {
            None
        };
        let address = Address::parse(host, tls.is_some())?;
        let tls = tls.filter(|_| matches!(address, Address::Tcp { .. }));
        Ok(Self {
            address,
            tls,
            context: Some(name.to_owned()),
            from_process: false,
        })
    }

    /// The endpoint the Docker CLI would use in this process's environment.
    pub fn from_env() -> Result<Self, EndpointError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`Endpoint::from_env`] over any variable lookup (`HOME` and `DOCKER_CONFIG`
    /// included), so the precedence is testable.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, EndpointError> {
        let endpoint = Self::found_in(var)?;
        Ok(Self {
            from_process: true,
            ..endpoint
        })
    }

    fn found_in(var: impl Fn(&str) -> Option<String>) -> Result<Self, EndpointError> {
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        let config_dir = config_dir_from(&var);
        if let Some(host) = var("DOCKER_HOST") {
            // As the CLI: any non-empty DOCKER_TLS_VERIFY means verify; DOCKER_TLS alone
            // means TLS without verification.
            let verify = var("DOCKER_TLS_VERIFY").is_some();
            let tls = (verify || var("DOCKER_TLS").is_some()).then(|| Tls {
                cert_path: var("DOCKER_CERT_PATH")
                    .map_or_else(|| config_dir.clone(), PathBuf::from),
                verify,
            });
            let tls = tls.filter(|_| host.starts_with("tcp://"));
            return Self::new(&host, tls);
        }
        if let Some(name) = var("DOCKER_CONTEXT") {
            return Self::from_context(&name, &config_dir);
        }
        if let Some(name) = current_context(&config_dir)? {
            return Self::from_context(&name, &config_dir);
        }
        Ok(Self::local())
    }

    /// What names this endpoint, for a hint: the Docker variables and context of this
    /// process, or the settings of the environment it was given for.
    pub fn named_by(&self) -> &'static str {
        if self.from_process {
            "DOCKER_HOST/DOCKER_CONTEXT (or the docker CLI's current context)"
        } else {
            "the environment's docker_host/docker_context"
        }
    }

    pub fn address(&self) -> &Address {
        &self.address
    }

    pub fn tls(&self) -> Option<&Tls> {
        self.tls.as_ref()
    }

    /// The CLI context this endpoint was read from, if any.
    pub fn context(&self) -> Option<&str> {
        self.context.as_deref()
    }

    /// The address as a `DOCKER_HOST` value.
    pub fn host(&self) -> String {
        self.address.to_string()
    }

    /// Fails unless the endpoint can be connected as it says: TLS verifies, and every TLS
    /// file exists (the client certificate is otherwise silently not offered).
    pub fn check(&self) -> Result<(), EndpointError> {
        let Some(tls) = &self.tls else {
            return Ok(());
        };
        if !tls.verify {
            return Err(EndpointError::SkipVerify {
                endpoint: self.to_string(),
            });
        }
        for name in TLS_FILES {
            let file = tls.cert_path.join(name);
            if !file.is_file() {
                return Err(EndpointError::MissingTlsFile {
                    endpoint: self.to_string(),
                    file,
                });
            }
        }
        Ok(())
    }

    /// What a Docker CLI child needs to reach this engine and no other: each variable that
    /// selects an engine, with its value, or `None` for one that must be removed so that
    /// nothing of this process's environment leaks in.
    ///
    /// A context endpoint is passed as its resolved host and TLS files rather than as
    /// `DOCKER_CONTEXT`: the child then reaches exactly the engine this process
    /// connected to and watched, even if the context store changes in between, and every
    /// kind of endpoint takes one path.
    pub fn child_env(&self) -> Vec<(&'static str, Option<OsString>)> {
        let mut env: Vec<(&'static str, Option<OsString>)> =
            CLI_ENDPOINT_VARS.iter().map(|name| (*name, None)).collect();
        let mut set = |name: &str, value: OsString| {
            if let Some(slot) = env.iter_mut().find(|(n, _)| *n == name) {
                slot.1 = Some(value);
            }
        };
        set("DOCKER_HOST", self.host().into());
        if let Some(tls) = &self.tls {
            set("DOCKER_TLS_VERIFY", "1".into());
            set("DOCKER_CERT_PATH", tls.cert_path.clone().into_os_string());
        }
        env
    }

    /// Sets a Docker CLI child's environment to this endpoint ([`Endpoint::child_env`]).
    pub fn configure(&self, cmd: &mut tokio::process::Command) {
        for (name, value) in self.child_env() {
            match value {
                Some(v) => cmd.env(name, v),
                None => cmd.env_remove(name),
            };
        }
    }
}

impl PartialEq for Endpoint {
    fn eq(&self, other: &Self) -> bool {
        (&self.address, &self.tls, &self.context) == (&other.address, &other.tls, &other.context)
    }
}

impl Eq for Endpoint {}

impl fmt::Display for Endpoint {
    /// The address and how it is secured; never a secret (certificates are named by
    /// their directory, keys are never read here).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.context {
            write!(f, "context `{name}`: ")?;
        }
        write!(f, "{}", self.address)?;
        match (&self.address, &self.tls) {
            (_, Some(tls)) if tls.verify => {
                write!(f, " (TLS, certs {})", tls.cert_path.display())
            }
            (_, Some(tls)) => write!(
                f,
                " (TLS without verification, certs {})",
                tls.cert_path.display()
            ),
            (Address::Tcp { .. }, None) => f.write_str(" (plain HTTP)"),
            _ => Ok(()),
        }
    }
}

/// The Docker CLI's config directory in this process's environment: `$DOCKER_CONFIG`,
/// else `~/.docker`.
pub fn docker_config_dir() -> PathBuf {
    config_dir_from(&|name: &str| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

/// `$DOCKER_CONFIG`, else `~/.docker`, as the CLI finds its config directory.
fn config_dir_from(var: &impl Fn(&str) -> Option<String>) -> PathBuf {
    var("DOCKER_CONFIG").map_or_else(
        || {
            var("HOME")
                .map_or_else(|| PathBuf::from("/"), PathBuf::from)
                .join(".docker")
        },
        PathBuf::from,
    )
}

/// `currentContext` of the CLI's `config.json`; `None` when there is no file, no key, or
/// the built-in `default`.
fn current_context(config_dir: &Path) -> Result<Option<String>, EndpointError> {
    let path = config_dir.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(EndpointError::CliConfig {
                path,
                reason: e.to_string(),
            });
        }
    };
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| EndpointError::CliConfig {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    Ok(doc["currentContext"]
        .as_str()
        .filter(|c| !c.is_empty() && *c != "default")
        .map(str::to_owned))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::HashMap;

    use super::*;

    fn write_context(config: &Path, name: &str, meta: &str, tls: bool) {
        let id = hex::encode(Sha256::digest(name.as_bytes()));
        let dir = config.join("contexts/meta").join(&id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("meta.json"), meta).unwrap();
        if tls {
            let tls = config.join("contexts/tls").join(&id).join("docker");
            std::fs::create_dir_all(&tls).unwrap();
            for f in TLS_FILES {
                std::fs::write(tls.join(f), "pem").unwrap();
            }
        }
    }

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        move |name| map.get(name).map(|v| (*v).to_owned())
    }

    #[test]
    fn addresses_parse_as_the_cli_writes_them() {
        assert_eq!(
            Address::parse("unix:///run/docker.sock", false).unwrap(),
            Address::Unix("/run/docker.sock".into())
        );
        assert_eq!(
            Address::parse("tcp://198.18.0.11:2376", true).unwrap(),
            Address::Tcp {
                host: "198.18.0.11".into(),
                port: 2376
            }
        );
        assert_eq!(
            Address::parse("tcp://engine.example.com", false)
                .unwrap()
                .to_string(),
            "tcp://engine.example.com:2375"
        );
        assert_eq!(
            Address::parse("tcp://[::1]:2376", true)
                .unwrap()
                .to_string(),
            "tcp://[::1]:2376"
        );
        assert_eq!(
            Address::parse("ssh://root@198.18.0.10", false).unwrap(),
            Address::Ssh {
                user: Some("root".into()),
                host: "198.18.0.10".into(),
                port: None
            }
        );
        assert_eq!(
            Address::parse("ssh://ops@h:2222", false)
                .unwrap()
                .to_string(),
            "ssh://ops@h:2222"
        );
        for bad in [
            "http://h:2375",
            "h:2375",
            "tcp://h:notaport",
            "tcp://h:0",
            "tcp://:2376",
            "tcp://h:2376/path",
            "unix://relative.sock",
            "ssh://u:secret@h",
            "ssh://@h",
        ] {
            assert!(Address::parse(bad, false).is_err(), "{bad} parsed");
        }
        let err = Address::parse("ssh://u:secret@h", false).unwrap_err();
        assert!(err.to_string().contains("password"), "{err}");
    }

    #[test]
    fn tls_is_for_tcp_only_and_must_verify_with_all_three_files() {
        let dir = tempfile::tempdir().unwrap();
        let tls = Tls {
            cert_path: dir.path().to_owned(),
            verify: true,
        };
        assert!(matches!(
            Endpoint::new("ssh://h", Some(tls.clone())),
            Err(EndpointError::TlsWithoutTcp { .. })
        ));
        let e = Endpoint::new("tcp://198.18.0.11:2376", Some(tls.clone())).unwrap();
        std::fs::write(dir.path().join("ca.pem"), "x").unwrap();
        std::fs::write(dir.path().join("cert.pem"), "x").unwrap();
        match e.check() {
            Err(EndpointError::MissingTlsFile { file, .. }) => {
                assert!(file.ends_with("key.pem"), "{}", file.display());
            }
            other => panic!("{other:?}"),
        }
        std::fs::write(dir.path().join("key.pem"), "x").unwrap();
        e.check().unwrap();
        let unverified = Endpoint::new(
            "tcp://h:2376",
            Some(Tls {
                verify: false,
                ..tls
            }),
        )
        .unwrap();
        assert!(matches!(
            unverified.check(),
            Err(EndpointError::SkipVerify { .. })
        ));
    }

    #[test]
    fn display_shows_how_it_is_secured_and_no_secret() {
        let tls = Tls {
            cert_path: "/x".into(),
            verify: true,
        };
        let e = Endpoint::new("tcp://198.18.0.11:2376", Some(tls)).unwrap();
        assert_eq!(e.to_string(), "tcp://198.18.0.11:2376 (TLS, certs /x)");
        assert_eq!(
            Endpoint::new("tcp://127.0.0.1:2375", None)
                .unwrap()
                .to_string(),
            "tcp://127.0.0.1:2375 (plain HTTP)"
        );
        assert_eq!(Endpoint::local().to_string(), "unix:///var/run/docker.sock");
    }

    #[test]
    fn docker_host_beats_docker_context_beats_current_context() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().to_str().unwrap();
        write_context(
            dir.path(),
            "prod",
            r#"{"Name":"prod","Endpoints":{"docker":{"Host":"tcp://198.18.0.11:2376","SkipTLSVerify":false}}}"#,
            true,
        );
        write_context(
            dir.path(),
            "dev",
            r#"{"Name":"dev","Endpoints":{"docker":{"Host":"ssh://root@198.18.0.10"}}}"#,
            false,
        );
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"currentContext":"dev"}"#,
        )
        .unwrap();

        let from = |pairs: &[(&str, &str)]| Endpoint::from_vars(vars(pairs)).unwrap();
        let e = from(&[
            ("DOCKER_CONFIG", config),
            ("DOCKER_HOST", "tcp://10.0.0.1:2376"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CONTEXT", "prod"),
        ]);
        assert_eq!(
            e.to_string(),
            format!("tcp://10.0.0.1:2376 (TLS, certs {config})"),
            "DOCKER_HOST wins, certs default to the config dir"
        );
        let e = from(&[("DOCKER_CONFIG", config), ("DOCKER_CONTEXT", "prod")]);
        let tls_dir = dir
            .path()
            .join("contexts/tls")
            .join(hex::encode(Sha256::digest(b"prod")))
            .join("docker");
        assert_eq!(
            e.to_string(),
            format!(
                "context `prod`: tcp://198.18.0.11:2376 (TLS, certs {})",
                tls_dir.display()
            )
        );
        e.check().unwrap();
        let e = from(&[("DOCKER_CONFIG", config)]);
        assert_eq!(e.to_string(), "context `dev`: ssh://root@198.18.0.10");
        assert_eq!(e.tls(), None);
        // An empty DOCKER_HOST counts as unset, as in the CLI.
        let e = from(&[("DOCKER_CONFIG", config), ("DOCKER_HOST", "")]);
        assert_eq!(e.context(), Some("dev"));

        let empty = tempfile::tempdir().unwrap();
        let e = from(&[("DOCKER_CONFIG", empty.path().to_str().unwrap())]);
        assert_eq!(e, Endpoint::local());
        let e = from(&[("HOME", empty.path().to_str().unwrap())]);
        assert_eq!(e, Endpoint::local());
        assert!(matches!(
            Endpoint::from_vars(vars(&[("DOCKER_CONFIG", config), ("DOCKER_CONTEXT", "qa")])),
            Err(EndpointError::UnknownContext { .. })
        ));
    }

    #[test]
    fn a_context_that_skips_verification_is_refused_at_check() {
        let dir = tempfile::tempdir().unwrap();
        write_context(
            dir.path(),
            "lax",
            r#"{"Endpoints":{"docker":{"Host":"tcp://h:2376","SkipTLSVerify":true}}}"#,
            false,
        );
        let e = Endpoint::from_context("lax", dir.path()).unwrap();
        assert!(matches!(e.check(), Err(EndpointError::SkipVerify { .. })));
        let plain = Endpoint::from_vars(vars(&[
            ("DOCKER_HOST", "tcp://h:2376"),
            ("DOCKER_TLS", "1"),
            ("DOCKER_CERT_PATH", "/c"),
        ]))
        .unwrap();
        assert!(matches!(
            plain.check(),
            Err(EndpointError::SkipVerify { .. })
        ));
    }

    #[test]
    fn a_child_gets_every_endpoint_variable_set_or_removed() {
        let get = |e: &Endpoint, name: &str| {
            e.child_env()
                .into_iter()
                .find(|(n, _)| *n == name)
                .expect("every variable is listed")
                .1
        };
        let tls = Endpoint::new(
            "tcp://198.18.0.11:2376",
            Some(Tls {
                cert_path: "/certs".into(),
                verify: true,
            }),
        )
        .unwrap();
        assert_eq!(
            get(&tls, "DOCKER_HOST"),
            Some("tcp://198.18.0.11:2376".into())
        );
        assert_eq!(get(&tls, "DOCKER_TLS_VERIFY"), Some("1".into()));
        assert_eq!(get(&tls, "DOCKER_CERT_PATH"), Some("/certs".into()));
        assert_eq!(get(&tls, "DOCKER_CONTEXT"), None);
        assert_eq!(get(&tls, "DOCKER_TLS"), None);
        let ssh = Endpoint::new("ssh://root@198.18.0.10", None).unwrap();
        assert_eq!(
            get(&ssh, "DOCKER_HOST"),
            Some("ssh://root@198.18.0.10".into())
        );
        for name in ["DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"] {
            assert_eq!(get(&ssh, name), None, "{name}");
        }
    }

    #[tokio::test]
    async fn a_configured_child_sees_the_endpoint_and_nothing_inherited() {
        let endpoint = Endpoint::new("ssh://root@198.18.0.10", None).unwrap();
        let mut cmd = tokio::process::Command::new("env");
        // As if inherited: each must be gone or replaced in the child.
        cmd.env("DOCKER_CONTEXT", "prod")
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", "/elsewhere")
            .env("DOCKER_HOST", "tcp://elsewhere:2376");
        endpoint.configure(&mut cmd);
        let out = cmd.output().await.unwrap();
        let env = String::from_utf8(out.stdout).unwrap();
        let docker: Vec<&str> = env.lines().filter(|l| l.starts_with("DOCKER_")).collect();
        assert_eq!(docker, ["DOCKER_HOST=ssh://root@198.18.0.10"], "{env}");
    }
}
