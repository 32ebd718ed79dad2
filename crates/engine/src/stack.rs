//! Compose stack files as `docker stack deploy` reads them.
//!
//! We never convert compose to Swarm specs ourselves (the Docker CLI is the reference
//! conversion); we only read what policy needs: each service's image, replicas, published
//! ports, secrets and configs. The document is kept as a YAML value so that a later render
//! changes nothing but what it means to change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_norway::Value;

/// A stack file that parsed and has a `services` mapping.
#[derive(Debug, Clone)]
pub struct StackFile {
    path: PathBuf,
    document: Value,
    services: BTreeMap<String, StackService>,
}

/// What the policy asks of a stack service the release manages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceRules {
    /// Reached over the stack network only: publishes no port.
    pub internal: bool,
    /// The most replicas it may run.
    pub max_replicas: Option<u64>,
}

/// One way a stack breaks the policy. The one copy of the rules: config validation asks
/// it of the stack files as written, the deploy of the stack exactly as it will apply it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyProblem {
    /// A rendered stack's service names no image.
    NoImage { service: String },
    /// The image is tagged `latest` (mutable by convention, so never deployable).
    Latest { service: String, image: String },
    /// A rendered stack's image names no digest.
    Unpinned { service: String, image: String },
    TooManyReplicas {
        service: String,
        replicas: u64,
        max: u64,
    },
    /// An internal service publishes a port (the first one).
    InternalPublishes { service: String, port: u16 },
}

/// Whether `image` is tagged `latest`: `latest`, `REPO:latest`, `REPO:latest@sha256:…`.
pub fn is_latest(image: &str) -> bool {
    let name = registry_client::ImageName::split(image);
    name.tag == Some("latest") || (name.tag.is_none() && name.repository == "latest")
}

/// What policy needs to know about one service of a stack file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackService {
    pub name: String,
    pub image: Option<String>,
    /// `deploy.replicas`; `None` when unset (Swarm's default is 1) or for global services.
    pub replicas: Option<u64>,
    pub global: bool,
    pub ports: Vec<PublishedPort>,
    pub secrets: Vec<String>,
    pub configs: Vec<String>,
}

/// A port published on the node, from the short (`"8080:80"`) or long syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedPort {
    pub published: u16,
    pub target: u16,
    pub protocol: String,
    /// `host` or `ingress`.
    pub mode: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StackError {
    #[error("cannot read stack file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("stack file {path} is not valid YAML: {message}")]
    Yaml { path: PathBuf, message: String },
    #[error("stack file {path}: {message}")]
    Shape { path: PathBuf, message: String },
}

impl StackFile {
    pub fn load(path: &Path) -> Result<Self, StackError> {
        let text = std::fs::read_to_string(path).map_err(|source| StackError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, StackError> {
        let document: Value = serde_norway::from_str(text).map_err(|e| StackError::Yaml {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let shape = |message: String| StackError::Shape {
            path: path.to_owned(),
            message,
        };
        // What policy reads (ports, replicas, images, secrets) may come from an anchor
        // through a merge key (`<<: *defaults`), as `docker stack deploy` would apply it.
        let mut merged = document.clone();
        merged
            .apply_merge()
            .map_err(|e| shape(format!("cannot apply merge keys: {e}")))?;
        let Some(services) = merged.get("services").and_then(Value::as_mapping) else {
            return Err(shape("no `services` mapping".into()));
        };
        let mut parsed = BTreeMap::new();
        for (name, body) in services {
            let Some(name) = name.as_str() else {
                return Err(shape("a service name is not a string".into()));
            };
            let service =
                parse_service(name, body).map_err(|m| shape(format!("service `{name}`: {m}")))?;
            parsed.insert(name.to_owned(), service);
        }
        Ok(Self {
            path: path.to_owned(),
            document,
            services: parsed,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every problem of this stack under the policy, in service order. `rules` gives the
    /// rules of each service the release manages, by its name in the stack; `rendered`
    /// asks in addition that every service name an image pinned by digest, as a stack
    /// about to be applied must.
    pub fn policy_problems(
        &self,
        rules: &dyn Fn(&str) -> Option<ServiceRules>,
        rendered: bool,
    ) -> Vec<PolicyProblem> {
        let mut problems = Vec::new();
        for (name, service) in &self.services {
            let service_name = || name.clone();
            match service.image.as_deref() {
                None if rendered => problems.push(PolicyProblem::NoImage {
                    service: service_name(),
                }),
                None => {}
                Some(image) => {
                    if is_latest(image) {
                        problems.push(PolicyProblem::Latest {
                            service: service_name(),
                            image: image.to_owned(),
                        });
                    }
                    if rendered && !crate::swarm::is_pinned(image) {
                        problems.push(PolicyProblem::Unpinned {
                            service: service_name(),
                            image: image.to_owned(),
                        });
                    }
                }
            }
            let Some(rules) = rules(name) else {
                continue;
            };
            if let (Some(max), Some(replicas)) = (rules.max_replicas, service.replicas)
                && replicas > max
            {
                problems.push(PolicyProblem::TooManyReplicas {
                    service: service_name(),
                    replicas,
                    max,
                });
            }
            if rules.internal
                && let Some(port) = service.ports.first()
            {
                problems.push(PolicyProblem::InternalPublishes {
                    service: service_name(),
                    port: port.published,
                });
            }
        }
        problems
    }

    pub fn services(&self) -> &BTreeMap<String, StackService> {
        &self.services
    }

    /// Service → image, for every service that names one: what a rendered file expects
    /// each service to run.
    pub fn images(&self) -> BTreeMap<String, String> {
        self.services
            .iter()
            .filter_map(|(name, s)| Some((name.clone(), s.image.clone()?)))
            .collect()
    }

    pub fn service(&self, name: &str) -> Option<&StackService> {
        self.services.get(name)
    }

    /// The parsed document, for renderers that must preserve everything else.
    pub fn document(&self) -> &Value {
        &self.document
    }

    /// Renders the stack `docker stack deploy` applies: each service named in `images`
    /// gets that image (a digest-pinned `REPO:TAG@sha256:…`); everything else is kept.
    ///
    /// YAML merge keys (`<<: *update`) are applied first: serializing the parsed document
    /// would otherwise write `<<` as an ordinary key holding a copy of the anchor, which is
    /// only a merge by the convention of whoever reads it. The result stands alone, with no
    /// anchors, and means the same to every YAML reader.
    pub fn render(&self, images: &BTreeMap<String, String>) -> Result<String, StackError> {
        self.render_published(images, &BTreeMap::new(), false)
    }

    /// [`StackFile::render`], and each service named in `published` publishes exactly the
    /// given `(host port, container port)` pairs: a blue-green colour's ports. For Compose
    /// (`swarm` false) on 127.0.0.1, so that only the proxy on the same host reaches them;
    /// for a Swarm stack in host mode on the node that runs the task (Swarm cannot bind
    /// one address).
    pub fn render_published(
        &self,
        images: &BTreeMap<String, String>,
        published: &BTreeMap<String, Vec<(u16, u16)>>,
        swarm: bool,
    ) -> Result<String, StackError> {
        let shape = |message: String| StackError::Shape {
            path: self.path.clone(),
            message,
        };
        let mut document = self.document.clone();
        document
            .apply_merge()
            .map_err(|e| shape(format!("cannot apply merge keys: {e}")))?;
        let services = document
            .get_mut("services")
            .and_then(Value::as_mapping_mut)
            .ok_or_else(|| shape("no `services` mapping".into()))?;
        for (name, image) in images {
            let body = services
                .get_mut(name.as_str())
                .and_then(Value::as_mapping_mut)
                .ok_or_else(|| shape(format!("no service `{name}` to render an image for")))?;
            body.insert(Value::from("image"), Value::from(image.as_str()));
        }
        for (name, ports) in published {
            let body = services
                .get_mut(name.as_str())
                .and_then(Value::as_mapping_mut)
                .ok_or_else(|| shape(format!("no service `{name}` to publish a port of")))?;
            let list: Vec<Value> = ports
                .iter()
                .map(|(host, target)| {
                    if !swarm {
                        return Value::from(format!("127.0.0.1:{host}:{target}"));
                    }
                    let mut port = serde_norway::Mapping::new();
                    port.insert(Value::from("target"), Value::from(*target));
                    port.insert(Value::from("published"), Value::from(*host));
                    port.insert(Value::from("protocol"), Value::from("tcp"));
                    port.insert(Value::from("mode"), Value::from("host"));
                    Value::Mapping(port)
                })
                .collect();
            body.insert(Value::from("ports"), Value::Sequence(list));
        }
        serde_norway::to_string(&document).map_err(|e| shape(format!("cannot serialize: {e}")))
    }
}

fn parse_service(name: &str, body: &Value) -> Result<StackService, String> {
    let image = match body.get("image") {
        None => None,
        Some(v) => Some(v.as_str().ok_or("`image` is not a string")?.to_owned()),
    };
    let deploy = body.get("deploy");
    let global = deploy
        .and_then(|d| d.get("mode"))
        .and_then(Value::as_str)
        .is_some_and(|m| m == "global");
    let replicas = match deploy.and_then(|d| d.get("replicas")) {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or("`deploy.replicas` is not a non-negative integer")?,
        ),
    };
    let mut ports = Vec::new();
    if let Some(list) = body.get("ports") {
        let list = list.as_sequence().ok_or("`ports` is not a list")?;
        for entry in list {
            if let Some(port) = parse_port(entry)? {
                ports.push(port);
            }
        }
    }
    Ok(StackService {
        name: name.to_owned(),
        image,
        replicas,
        global,
        ports,
        secrets: references(body, "secrets")?,
        configs: references(body, "configs")?,
    })
}

/// Parses one `ports` entry. Returns `None` for a port with no published side (the
/// engine then picks one), which cannot collide.
fn parse_port(entry: &Value) -> Result<Option<PublishedPort>, String> {
    let number = |v: &Value, what: &str| -> Result<u16, String> {
        let n = match v {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse().ok(),
            _ => None,
        };
        n.and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| format!("`{what}` is not a port number: {v:?}"))
    };
    match entry {
        Value::Mapping(_) => {
            let target = entry.get("target").ok_or("a port has no `target`")?;
            let Some(published) = entry.get("published") else {
                return Ok(None);
            };
            Ok(Some(PublishedPort {
                published: number(published, "published")?,
                target: number(target, "target")?,
                protocol: entry
                    .get("protocol")
                    .and_then(Value::as_str)
                    .unwrap_or("tcp")
                    .to_owned(),
                mode: entry
                    .get("mode")
                    .and_then(Value::as_str)
                    .unwrap_or("ingress")
                    .to_owned(),
            }))
        }
        Value::String(_) | Value::Number(_) => {
            let text = match entry {
                Value::String(s) => s.clone(),
                other => format!("{}", other.as_u64().unwrap_or_default()),
            };
            let (spec, protocol) = text.split_once('/').unwrap_or((&text, "tcp"));
            // Short syntax: [HOST_IP:]PUBLISHED:TARGET or TARGET alone.
            let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
            match parts.as_slice() {
                [_target] => Ok(None),
                [target, published, ..] => Ok(Some(PublishedPort {
                    published: published
                        .parse()
                        .map_err(|_| format!("bad published port in `{text}`"))?,
                    target: target
                        .parse()
                        .map_err(|_| format!("bad target port in `{text}`"))?,
                    protocol: protocol.to_owned(),
                    mode: "ingress".to_owned(),
                })),
                [] => Err(format!("empty port `{text}`")),
            }
        }
        other => Err(format!(
            "a port entry is neither a string nor a mapping: {other:?}"
        )),
    }
}

/// Names of secrets or configs a service uses (short or long syntax).
fn references(body: &Value, key: &str) -> Result<Vec<String>, String> {
    let Some(list) = body.get(key) else {
        return Ok(Vec::new());
    };
    let list = list
        .as_sequence()
        .ok_or_else(|| format!("`{key}` is not a list"))?;
    list.iter()
        .map(|item| match item {
            Value::String(s) => Ok(s.clone()),
            Value::Mapping(_) => item
                .get("source")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("an entry of `{key}` has no `source`")),
            _ => Err(format!(
                "an entry of `{key}` is neither a string nor a mapping"
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STACK: &str = r#"
version: "3.8"
services:
  api:
    image: registry.example.com/hestino/api:1.0.0
    deploy:
      replicas: 2
    secrets: [api_key]
  web:
    image: registry.example.com/hestino/web:1.0.0
    ports:
      - "127.0.0.1:8080:80"
      - target: 9000
        published: 9001
        mode: host
      - "7000"
  cache:
    image: redis@sha256:0000000000000000000000000000000000000000000000000000000000000000
    deploy:
      mode: global
    configs:
      - source: cache_conf
        target: /etc/cache.conf
"#;

    /// One copy of the rules for the stack as written and the stack about to be applied:
    /// `latest` anywhere, replicas above the limit, an internal service publishing; and for
    /// a rendered stack, every image pinned.
    #[test]
    fn the_policy_lists_every_problem_of_a_stack() {
        let stack = StackFile::parse(Path::new("stack.yml"), STACK).unwrap();
        let rules = |name: &str| match name {
            "api" => Some(ServiceRules {
                internal: false,
                max_replicas: Some(1),
            }),
            "web" => Some(ServiceRules {
                internal: true,
                max_replicas: None,
            }),
            _ => None,
        };
        let written = stack.policy_problems(&rules, false);
        assert_eq!(
            written,
            [
                PolicyProblem::TooManyReplicas {
                    service: "api".into(),
                    replicas: 2,
                    max: 1
                },
                PolicyProblem::InternalPublishes {
                    service: "web".into(),
                    port: 8080
                },
            ]
        );
        let rendered = stack.policy_problems(&rules, true);
        let unpinned: Vec<&str> = rendered
            .iter()
            .filter_map(|p| match p {
                PolicyProblem::Unpinned { service, .. } => Some(service.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(unpinned, ["api", "web"], "cache is pinned");
    }

    /// Config validation missed `REPO:latest@sha256:…`; the deploy missed a bare `latest`.
    #[test]
    fn latest_is_latest_with_or_without_a_digest() {
        let d = "a".repeat(64);
        assert!(is_latest("latest"));
        assert!(is_latest("r.example.com:5000/x:latest"));
        assert!(is_latest(&format!("x:latest@sha256:{d}")));
        assert!(!is_latest("r.example.com:5000/x:1.0"));
        assert!(!is_latest("r.example.com:5000/latest-images/x:1.0"));
        assert!(!is_latest(&format!("x@sha256:{d}")));
    }

    #[test]
    fn reads_images_replicas_ports_and_references() {
        let stack = StackFile::parse(Path::new("stack.yml"), STACK).unwrap();
        let api = stack.service("api").unwrap();
        assert_eq!(api.replicas, Some(2));
        assert_eq!(api.secrets, vec!["api_key"]);
        let web = stack.service("web").unwrap();
        assert_eq!(
            web.ports,
            vec![
                PublishedPort {
                    published: 8080,
                    target: 80,
                    protocol: "tcp".into(),
                    mode: "ingress".into()
                },
                PublishedPort {
                    published: 9001,
                    target: 9000,
                    protocol: "tcp".into(),
                    mode: "host".into()
                },
            ]
        );
        let cache = stack.service("cache").unwrap();
        assert!(cache.global);
        assert_eq!(cache.configs, vec!["cache_conf"]);
    }

    #[test]
    fn render_replaces_images_applies_merge_keys_and_keeps_the_rest() {
        let text = "x-update: &update\n  update_config:\n    monitor: 2s\nservices:\n  api:\n    image: ${REG}/api:${VERSION}\n    init: true\n    deploy:\n      replicas: 2\n      <<: *update\n  cache:\n    image: redis@sha256:00\n";
        let stack = StackFile::parse(Path::new("s.yml"), text).unwrap();
        let pinned = format!("r.example.com/api:1.0.0@sha256:{}", "a".repeat(64));
        let images = BTreeMap::from([("api".to_owned(), pinned.clone())]);
        let rendered =
            StackFile::parse(Path::new("r.yml"), &stack.render(&images).unwrap()).unwrap();
        let api = rendered.document()["services"]["api"].clone();
        assert_eq!(api["image"].as_str(), Some(pinned.as_str()));
        assert_eq!(api["init"].as_bool(), Some(true));
        assert_eq!(api["deploy"]["replicas"].as_u64(), Some(2));
        assert_eq!(
            api["deploy"]["update_config"]["monitor"].as_str(),
            Some("2s")
        );
        assert!(api["deploy"].get("<<").is_none());
        assert_eq!(
            rendered.service("cache").unwrap().image.as_deref(),
            Some("redis@sha256:00")
        );
        let unknown = BTreeMap::from([("web".to_owned(), pinned)]);
        assert!(
            stack
                .render(&unknown)
                .unwrap_err()
                .to_string()
                .contains("no service `web`")
        );
    }

    #[test]
    fn refuses_a_file_without_services() {
        let err = StackFile::parse(Path::new("s.yml"), "version: '3'\n").unwrap_err();
        assert_eq!(err.to_string(), "stack file s.yml: no `services` mapping");
    }

    #[test]
    fn names_the_service_with_a_bad_port() {
        let text = "services:\n  web:\n    ports: ['x:80']\n";
        let err = StackFile::parse(Path::new("s.yml"), text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "stack file s.yml: service `web`: bad published port in `x:80`"
        );
    }
}
