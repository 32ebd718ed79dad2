//! `release.toml`: the typed model, loading, and validation that reports every problem at
//! once. The `release` command reads its settings through this crate only; the crate
//! knows nothing of flags or exit codes.
//!
//! Loading runs three passes over one file, each adding diagnostics rather than stopping:
//! TOML syntax (which does stop: nothing else can be read), unknown keys ([`schema`]),
//! types per section (serde), then meaning ([`validate`]): names, registry host, `latest`,
//! stack files, ports, secrets, durations.

mod model;
mod schema;
pub(crate) mod source;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use model::{
    BlueGreen, BuildSecret, Builder, Check, Environment, Evidence, HttpCheck, Orchestrator,
    Project, Registry, Route, Service, Strategy, TcpCheck,
};

use std::borrow::Borrow;

use engine::StackFile;
use serde::de::DeserializeOwned;
use source::{Seg, Source, keypath};
use verify::{EnvName, ServiceName};

/// A loaded, validated configuration, its services and environments named by their
/// validated names. (Validation reads a [`Draft`], the same file with its names as
/// written.)
#[derive(Debug, Clone)]
pub struct Config<S = ServiceName, E = EnvName> {
    /// The file it came from.
    pub path: PathBuf,
    /// The directory relative paths in the file are resolved against.
    pub dir: PathBuf,
    pub project: Project,
    pub registry: Registry,
    pub services: BTreeMap<S, Service>,
    pub environments: BTreeMap<E, Environment>,
    /// `[ledger]`: the key that signs the ledger head after every append, and the keys
    /// `audit verify` accepts for it (the same keys as an environment's evidence block).
    pub ledger: Option<Evidence>,
    /// Each environment's parsed stack file.
    pub stacks: BTreeMap<E, StackFile>,
}

/// The file as written, its names not yet parsed: what validation reads, so that an entry
/// with an unsafe name is still checked for everything else.
pub(crate) type Draft = Config<String, String>;

/// One problem in a config file, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn new(file: &Path, line: Option<usize>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            line,
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message)?,
            None => write!(f, "{}: {}", self.file.display(), self.message)?,
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} in {}:\n{}", plural(diagnostics.len()), file.display(), render(diagnostics))]
    Invalid {
        file: PathBuf,
        diagnostics: Vec<Diagnostic>,
    },
    #[error("unknown environment `{name}` in {}", file.display())]
    UnknownEnvironment {
        name: String,
        file: PathBuf,
        known: Vec<String>,
    },
    #[error("environment `{env}`: {source}")]
    Endpoint {
        env: String,
        source: engine::EndpointError,
    },
}

impl ConfigError {
    /// The error's first line: for an invalid file, how many problems and where; the
    /// problems themselves are [`ConfigError::details`].
    pub fn headline(&self) -> String {
        match self {
            ConfigError::Invalid { file, diagnostics } => {
                format!("{} in {}:", plural(diagnostics.len()), file.display())
            }
            other => other.to_string(),
        }
    }

    /// One line per problem of an invalid file (its hint indented under it), as the full
    /// message lists them.
    pub fn details(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid { diagnostics, .. } => diagnostics
                .iter()
                .map(|d| d.to_string().replace('\n', "\n  "))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// What would help, in the config's own terms. A file that cannot be read has none
    /// here: where the file comes from is the caller's business (flags, variables), and
    /// the caller words it.
    pub fn hint(&self) -> Option<String> {
        match self {
            ConfigError::Read { .. } | ConfigError::Invalid { .. } => None,
            ConfigError::UnknownEnvironment { known, .. } => {
                Some(format!("environments defined: {}", known.join(", ")))
            }
            ConfigError::Endpoint { source, .. } => Some(source.hint()),
        }
    }
}

fn plural(n: usize) -> String {
    if n == 1 {
        "1 problem".to_owned()
    } else {
        format!("{n} problems")
    }
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| format!("  {}", d.to_string().replace('\n', "\n  ")))
        .collect::<Vec<_>>()
        .join("\n")
}

impl<S: Borrow<str> + Ord, E> Config<S, E> {
    /// `REGISTRY/REPOSITORY` of a service.
    pub fn repository(&self, service: &Service) -> String {
        format!("{}/{}", self.registry.host, service.repository)
    }

    /// Release service `service`'s name in the stack file (itself when the config does not
    /// declare it).
    pub fn stack_name<'a>(&'a self, service: &'a (impl AsRef<str> + ?Sized)) -> &'a str {
        let service = service.as_ref();
        self.services
            .get_key_value(service)
            .map_or(service, |(name, s)| s.stack_service_name(name.borrow()))
    }

    /// The policy's rules for the stack service `stack_name`, when the release manages it.
    pub fn rules_of(&self, stack_name: &str) -> Option<engine::ServiceRules> {
        self.services
            .iter()
            .find(|(name, s)| s.stack_service_name((*name).borrow()) == stack_name)
            .map(|(_, s)| engine::ServiceRules {
                internal: s.internal,
                max_replicas: s.max_replicas,
            })
    }

    /// A path from the config file, resolved against the file's directory.
    pub fn resolve(&self, relative: &Path) -> PathBuf {
        self.dir.join(relative)
    }
}

impl Draft {
    /// The validated draft with its names parsed. Validation refused every unsafe name
    /// already, so a refusal here would be a name the two grammars disagree on.
    fn typed(self) -> Result<Config, Vec<Diagnostic>> {
        let mut problems = Vec::new();
        let services = names(self.services, ServiceName::parse, &self.path, &mut problems);
        let environments = names(self.environments, EnvName::parse, &self.path, &mut problems);
        let stacks = names(self.stacks, EnvName::parse, &self.path, &mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Config {
            path: self.path,
            dir: self.dir,
            project: self.project,
            registry: self.registry,
            services,
            environments,
            ledger: self.ledger,
            stacks,
        })
    }
}

/// `map` with its keys parsed by `parse`; each key refused is a problem in `problems`.
fn names<K: Ord, V>(
    map: BTreeMap<String, V>,
    parse: impl Fn(&str) -> Result<K, verify::NameError>,
    file: &Path,
    problems: &mut Vec<Diagnostic>,
) -> BTreeMap<K, V> {
    map.into_iter()
        .filter_map(|(key, value)| match parse(&key) {
            Ok(name) => Some((name, value)),
            Err(e) => {
                problems.push(Diagnostic::new(file, None, e.to_string()));
                None
            }
        })
        .collect()
}

impl Config {
    /// Reads and validates `path`. `registry_override` replaces the file's registry host
    /// (the `release` command takes it from a flag or a variable), which is how the demo
    /// and the tests point the example at the testbed registry.
    pub fn load(path: &Path, registry_override: Option<&str>) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, text, registry_override)
    }

    pub fn parse(
        path: &Path,
        text: String,
        registry_override: Option<&str>,
    ) -> Result<Config, ConfigError> {
        let invalid = |diagnostics: Vec<Diagnostic>| ConfigError::Invalid {
            file: path.to_owned(),
            diagnostics,
        };
        let source = Source::parse(path, text).map_err(|d| invalid(vec![d]))?;
        let mut diagnostics = schema::unknown_keys(&source);
        // The one parse, by toml_edit: the schema walk above and the typed sections below
        // read the same document.
        let raw = source.root();
        let mut typed = Typed {
            source: &source,
            diagnostics: &mut diagnostics,
        };
        let project = typed.section::<Project>(raw, &keypath!["project"]);
        let registry = typed.section::<Registry>(raw, &keypath!["registry"]);
        let services = typed.named::<Service>(raw, "services");
        let environments = typed.named::<Environment>(raw, "environments");
        let ledger = if raw.contains_key("ledger") {
            typed.section::<Evidence>(raw, &keypath!["ledger"])
        } else {
            None
        };
        let dir = path
            .parent()
            .map(Path::to_owned)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        let (Some(project), Some(mut registry)) = (project, registry) else {
            diagnostics.sort_by_key(|d| d.line);
            return Err(invalid(diagnostics));
        };
        if let Some(host) = registry_override {
            registry.host = host.to_owned();
        }
        let mut config = Draft {
            path: path.to_owned(),
            dir,
            project,
            registry,
            services,
            environments,
            ledger,
            stacks: BTreeMap::new(),
        };
        validate::validate(&mut config, &source, registry_override, &mut diagnostics);
        if diagnostics.is_empty() {
            config.typed().map_err(invalid)
        } else {
            diagnostics.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
            Err(invalid(diagnostics))
        }
    }

    pub fn environment(&self, name: &str) -> Result<&Environment, ConfigError> {
        Ok(self.environment_entry(name)?.1)
    }

    /// Environment `name` with its validated name.
    pub fn environment_entry(&self, name: &str) -> Result<(&EnvName, &Environment), ConfigError> {
        self.environments
            .get_key_value(name)
            .ok_or_else(|| ConfigError::UnknownEnvironment {
                name: name.to_owned(),
                file: self.path.clone(),
                known: self.environments.keys().map(EnvName::to_string).collect(),
            })
    }

    /// The engine environment `name` talks to: its `docker_context`, else its
    /// `docker_host` (with `docker_cert_path`), else the process environment as the Docker
    /// CLI reads it. A problem is a usage error naming the environment.
    pub fn endpoint(&self, name: &str) -> Result<engine::Endpoint, ConfigError> {
        let env = self.environment(name)?;
        let made = match (&env.docker_context, &env.docker_host) {
            (Some(context), _) => {
                engine::Endpoint::from_context(context, &engine::endpoint::docker_config_dir())
            }
            (None, Some(host)) => engine::Endpoint::new(
                host,
                env.docker_cert_path.as_ref().map(|dir| engine::Tls {
                    cert_path: self.resolve(dir),
                    verify: env.docker_tls_verify.unwrap_or(true),
                }),
            ),
            (None, None) => engine::Endpoint::from_env(),
        };
        made.map_err(|source| ConfigError::Endpoint {
            env: name.to_owned(),
            source,
        })
    }
}

/// Parses a duration such as `"90s"` or `"5m"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("`{text}` is not a duration ({e})"))
}

struct Typed<'a> {
    source: &'a Source,
    diagnostics: &'a mut Vec<Diagnostic>,
}

impl Typed<'_> {
    /// Deserializes one section on its own, so that a type error in one section does not
    /// hide the problems of the others.
    fn section<T: DeserializeOwned>(&mut self, raw: &toml_edit::Table, path: &[Seg]) -> Option<T> {
        // Only the section itself is copied (a copy of the whole table for every section
        // made loading cost sections × file size: a third of loading 100 checks).
        let value = lookup(raw, path).cloned();
        let name = dotted(path);
        let Some(value) = value else {
            self.diagnostics.push(
                Diagnostic::new(
                    self.source.path(),
                    None,
                    format!("missing section [{name}]"),
                )
                .with_hint(format!(
                    "add a [{name}] table; see examples/hestino/release.toml"
                )),
            );
            return None;
        };
        // A section is a table (`[project]`, or `services.api = { … }` inline): as a
        // document of its own it deserializes like the whole file would.
        let table = match value.into_table() {
            Ok(t) => t,
            Err(_) => {
                self.diagnostics
                    .push(self.source.at(path, format!("[{name}] must be a table")));
                return None;
            }
        };
        match toml_edit::de::from_document::<T>(toml_edit::DocumentMut::from(table)) {
            Ok(v) => Some(v),
            Err(e) => {
                let message = e.message().trim().to_owned();
                let mut at = path.to_vec();
                let mut what = format!("[{name}]");
                if let Some(field) = field_named(&message) {
                    // A field the section's own table does not have is missing from one of
                    // its nested tables (a check without its `service`): point at that one.
                    let section = dotted(&path[..1]);
                    let nested = (!schema::is_own_key(&section, &field))
                        .then(|| lookup(raw, path)?.as_table_like())
                        .flatten()
                        .and_then(|t| lacking(t, &field));
                    if let Some((key, index)) = nested {
                        what = format!("[[{name}.{key}]] number {}", index + 1);
                        at.extend([Seg::from(key.as_str()), Seg::Index(index)]);
                    } else {
                        at.push(Seg::from(field.as_str()));
                    }
                }
                self.diagnostics
                    .push(self.source.at(&at, format!("in {what}: {message}")));
                None
            }
        }
    }

    /// Deserializes each entry of a table of named tables (`[services.NAME]`).
    fn named<T: DeserializeOwned>(
        &mut self,
        raw: &toml_edit::Table,
        key: &str,
    ) -> BTreeMap<String, T> {
        let names: Vec<String> = match raw.get(key).map(toml_edit::Item::as_table_like) {
            Some(Some(t)) => t.iter().map(|(k, _)| k.to_owned()).collect(),
            Some(None) => {
                self.diagnostics.push(
                    self.source
                        .at(&keypath![key], format!("`{key}` must be a table")),
                );
                return BTreeMap::new();
            }
            None => return BTreeMap::new(),
        };
        names
            .into_iter()
            .filter_map(|name| {
                let value = self.section::<T>(raw, &keypath![key, name.as_str()])?;
                Some((name, value))
            })
            .collect()
    }
}

/// The first table of an array of tables in `table` (`checks`, `trust`, …) that lacks
/// `field`: its array's key and its index.
fn lacking(table: &dyn toml_edit::TableLike, field: &str) -> Option<(String, usize)> {
    table.iter().find_map(|(key, item)| {
        let tables: Vec<&dyn toml_edit::TableLike> = match item {
            toml_edit::Item::ArrayOfTables(a) => {
                a.iter().map(|t| t as &dyn toml_edit::TableLike).collect()
            }
            toml_edit::Item::Value(toml_edit::Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_inline_table().map(|t| t as &dyn toml_edit::TableLike))
                .collect(),
            _ => return None,
        };
        let index = tables.iter().position(|t| !t.contains_key(field))?;
        Some((key.to_owned(), index))
    })
}

/// The item at `path` (keys only) inside `raw`.
fn lookup<'t>(raw: &'t toml_edit::Table, path: &[Seg]) -> Option<&'t toml_edit::Item> {
    let (Seg::Key(first), rest) = path.split_first()? else {
        return None;
    };
    rest.iter()
        .try_fold(raw.get(first)?, |item, seg| match seg {
            Seg::Key(k) => item.as_table_like()?.get(k),
            Seg::Index(_) => None,
        })
}

fn dotted(path: &[Seg]) -> String {
    path.iter()
        .map(|s| match s {
            Seg::Key(k) => k.clone(),
            Seg::Index(i) => i.to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The field a serde message names (``missing field `x` `` or ``unknown variant `x` ``).
fn field_named(message: &str) -> Option<String> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split_once('`').map(|(f, _)| f.to_owned())
}
