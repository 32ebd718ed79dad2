//! Unknown keys. serde would stop at the first; we walk the whole document so that every
//! misspelt key is reported at once, with the closest known key as a hint.

use toml_edit::{Item, TableLike};

use super::Diagnostic;
use super::source::{Seg, Source};

const ROOT: &[&str] = &["project", "registry", "services", "environments", "ledger"];
const PROJECT: &[&str] = &["name", "version_pattern", "source"];
const REGISTRY: &[&str] = &["host", "ca", "insecure"];
const SERVICE: &[&str] = &[
    "repository",
    "context",
    "dockerfile",
    "target",
    "build_args",
    "builder",
    "secrets",
    "cache_from",
    "cache_to",
    "platform",
    "stack_service",
    "max_replicas",
    "internal",
];
const ENVIRONMENT: &[&str] = &[
    "docker_host",
    "docker_cert_path",
    "docker_tls_verify",
    "docker_context",
    "orchestrator",
    "stack",
    "stack_file",
    "project",
    "promote_from",
    "approval_required",
    "deploy_timeout",
    "checks",
    "evidence",
    "strategy",
    "blue_green",
];
const BLUE_GREEN: &[&str] = &[
    "upstream_file",
    "proxy_url",
    "preview_url",
    "test_command",
    "reload_command",
    "rollback_window",
    "switch_settle",
    "upstream_hosts",
    "routes",
];
const ROUTE: &[&str] = &["upstream", "service", "port", "blue", "green"];
const EVIDENCE: &[&str] = &["key_id", "signing_key_env", "signing_key_file", "trust"];
const TRUSTED_KEY: &[&str] = &["id", "public_key", "revoked", "environment"];
const SECRET: &[&str] = &["id", "env", "file"];
const TIMING: &[&str] = &["timeout", "retry_interval", "deadline"];
const HTTP_CHECK: &[&str] = &[
    "kind",
    "name",
    "service",
    "method",
    "url",
    "headers",
    "expect_status",
    "body_contains",
    "json_pointer",
    "json_equals",
    "max_latency",
    "ca",
];
const TCP_CHECK: &[&str] = &["kind", "name", "service", "address"];
const SWARM_CHECK: &[&str] = &["kind", "services"];
const COMPOSE_CHECK: &[&str] = &["kind", "services"];

/// Whether `key` is one of the keys a table of section `section` (`environments`,
/// `services`, …) has itself, rather than one of its nested tables'.
pub fn is_own_key(section: &str, key: &str) -> bool {
    let keys = match section {
        "project" => PROJECT,
        "registry" => REGISTRY,
        "services" => SERVICE,
        "environments" => ENVIRONMENT,
        "ledger" => EVIDENCE,
        _ => return true,
    };
    keys.contains(&key)
}

/// Reports every key the model does not know.
pub fn unknown_keys(source: &Source) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut walk = Walk {
        source,
        out: &mut out,
    };
    let root = source.root();
    walk.keys(root, &[], ROOT, "the top level");
    if let Some(t) = root.get("project").and_then(Item::as_table_like) {
        walk.keys(t, &["project".into()], PROJECT, "[project]");
    }
    if let Some(t) = root.get("registry").and_then(Item::as_table_like) {
        walk.keys(t, &["registry".into()], REGISTRY, "[registry]");
    }
    if let Some(services) = root.get("services").and_then(Item::as_table_like) {
        for (name, item) in services.iter() {
            if let Some(t) = item.as_table_like() {
                let path = [Seg::from("services"), Seg::from(name)];
                walk.keys(t, &path, SERVICE, &format!("[services.{name}]"));
                for (i, secret) in checks(t.get("secrets")).into_iter().enumerate() {
                    let path = [
                        Seg::from("services"),
                        Seg::from(name),
                        Seg::from("secrets"),
                        Seg::from(i),
                    ];
                    let context = format!("a build secret of [services.{name}]");
                    walk.keys(secret, &path, SECRET, &context);
                }
            }
        }
    }
    if let Some(ledger) = root.get("ledger").and_then(Item::as_table_like) {
        walk.evidence(ledger, &[Seg::from("ledger")], "[ledger]");
    }
    if let Some(envs) = root.get("environments").and_then(Item::as_table_like) {
        for (env, item) in envs.iter() {
            let Some(t) = item.as_table_like() else {
                continue;
            };
            let path = [Seg::from("environments"), Seg::from(env)];
            walk.keys(t, &path, ENVIRONMENT, &format!("[environments.{env}]"));
            if let Some(evidence) = t.get("evidence").and_then(Item::as_table_like) {
                let path = [path[0].clone(), path[1].clone(), Seg::from("evidence")];
                walk.evidence(evidence, &path, &format!("[environments.{env}.evidence]"));
            }
            if let Some(bg) = t.get("blue_green").and_then(Item::as_table_like) {
                let path = [path[0].clone(), path[1].clone(), Seg::from("blue_green")];
                let context = format!("[environments.{env}.blue_green]");
                walk.keys(bg, &path, BLUE_GREEN, &context);
                for (i, route) in checks(bg.get("routes")).into_iter().enumerate() {
                    let mut at = path.to_vec();
                    at.extend([Seg::from("routes"), Seg::from(i)]);
                    walk.keys(route, &at, ROUTE, &format!("a route of {context}"));
                }
            }
            for (i, check) in checks(t.get("checks")).into_iter().enumerate() {
                let kind = check.get("kind").and_then(Item::as_str).unwrap_or("");
                let known: &[&str] = match kind {
                    "http" => HTTP_CHECK,
                    "tcp" => TCP_CHECK,
                    "swarm" => SWARM_CHECK,
                    "compose" => COMPOSE_CHECK,
                    // A missing or unknown kind is reported by the typed pass.
                    _ => continue,
                };
                let known: Vec<&str> = known.iter().chain(TIMING).copied().collect();
                let path = [
                    Seg::from("environments"),
                    Seg::from(env),
                    Seg::from("checks"),
                    Seg::from(i),
                ];
                let context = format!("a {kind} check of [environments.{env}]");
                walk.keys(check, &path, &known, &context);
            }
        }
    }
    out
}

fn checks(item: Option<&Item>) -> Vec<&dyn TableLike> {
    match item {
        Some(Item::ArrayOfTables(a)) => a.iter().map(|t| t as &dyn TableLike).collect(),
        Some(Item::Value(toml_edit::Value::Array(a))) => a
            .iter()
            .filter_map(|v| v.as_inline_table().map(|t| t as &dyn TableLike))
            .collect(),
        _ => Vec::new(),
    }
}

struct Walk<'a> {
    source: &'a Source,
    out: &'a mut Vec<Diagnostic>,
}

impl Walk<'_> {
    /// A table of keys (`[environments.E.evidence]`, `[ledger]`) and its trusted keys.
    fn evidence(&mut self, table: &dyn TableLike, path: &[Seg], context: &str) {
        self.keys(table, path, EVIDENCE, context);
        for (i, key) in checks(table.get("trust")).into_iter().enumerate() {
            let mut at = path.to_vec();
            at.extend([Seg::from("trust"), Seg::from(i)]);
            let context = format!("a trusted key of {context}");
            self.keys(key, &at, TRUSTED_KEY, &context);
        }
    }

    fn keys(&mut self, table: &dyn TableLike, path: &[Seg], known: &[&str], context: &str) {
        for (key, _) in table.iter() {
            if known.contains(&key) {
                continue;
            }
            let mut at = path.to_vec();
            at.push(Seg::from(key));
            let hint = match closest(key, known) {
                Some(k) => format!("did you mean `{k}`?"),
                None => format!("known keys here: {}", known.join(", ")),
            };
            self.out.push(
                self.source
                    .at(&at, format!("unknown key `{key}` in {context}"))
                    .with_hint(hint),
            );
        }
    }
}

/// The known key within a small edit distance of `key`, if any.
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min()
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_misses_only() {
        assert_eq!(closest("replicaz", &["max_replicas", "internal"]), None);
        assert_eq!(closest("reposiotry", SERVICE), Some("repository"));
        assert_eq!(closest("stak", ENVIRONMENT), Some("stack"));
    }
}
