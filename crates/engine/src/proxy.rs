//! The reverse proxy of a blue-green environment: the file of `upstream` blocks the tool
//! owns, and the proxy's own commands to validate and reload its configuration.
//!
//! The proxy is Nginx as the reference architectures run it, on the host, with its
//! configuration including [`Proxy::upstream_file`]. A switch:
//! 1. writes the new file beside the old one and renames it into place (a reader sees the
//!    old file or the new one, never a part);
//! 2. runs the test command (`nginx -t`): when it refuses, the previous bytes are put back
//!    the same way and nothing is reloaded;
//! 3. runs the reload command (`nginx -s reload`): Nginx starts new workers on the new
//!    configuration and lets the old ones finish the requests they hold, so no request
//!    is dropped by the switch.
//!
//! Nothing here decides which colour is live; [`render`] writes what it is told.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One upstream pair: the live upstream `name` and the idle colour's `name_preview`, each
/// pointing at a port on 127.0.0.1, or at none (`None`: the upstream answers 502).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub name: String,
    pub live: Option<u16>,
    pub preview: Option<u16>,
}

/// The suffix of the idle colour's upstream.
pub const PREVIEW_SUFFIX: &str = "_preview";

/// A port no colour listens on; an upstream without a colour points at it, marked `down`,
/// so the configuration stays valid and the proxy answers 502.
const NOWHERE: u16 = 9;

/// The upstream file: a comment saying what it holds, then one block per upstream, each
/// with a `server` per host in `hosts` (the proxy's host itself for Compose; the Swarm's
/// nodes, whichever runs the task, for a Swarm stack publishing in host mode).
pub fn render(comment: &str, upstreams: &[Upstream], hosts: &[String]) -> String {
    let mut out = String::new();
    for line in comment.lines() {
        out.push_str("# ");
        out.push_str(line);
        out.push('\n');
    }
    out.push_str("# Written by `release`; the next switch rewrites it.\n");
    for u in upstreams {
        for (name, port) in [
            (u.name.clone(), u.live),
            (format!("{}{PREVIEW_SUFFIX}", u.name), u.preview),
        ] {
            match port {
                Some(port) => {
                    out.push_str(&format!("upstream {name} {{\n"));
                    for host in hosts {
                        out.push_str(&format!("    server {host}:{port};\n"));
                    }
                    out.push_str("}\n");
                }
                None => out.push_str(&format!(
                    "upstream {name} {{\n    server 127.0.0.1:{NOWHERE} down;\n}}\n"
                )),
            }
        }
    }
    out
}

/// The port upstream `name` sends traffic to in an upstream file [`render`] wrote: the
/// inverse of `render` for one upstream. `None` when the file has no such upstream or it
/// points nowhere (`down`).
pub fn live_port(text: &str, name: &str) -> Option<u16> {
    let block = text
        .split("upstream ")
        .find(|b| b.split_whitespace().next() == Some(name))?;
    let body = block.split_once('{')?.1.split_once('}')?.0;
    if body.contains(" down;") {
        return None;
    }
    let server = body.split(';').next()?.trim().strip_prefix("server ")?;
    server.rsplit_once(':')?.1.trim().parse().ok()
}

/// The proxy of one environment.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub upstream_file: PathBuf,
    pub test_command: Vec<String>,
    pub reload_command: Vec<String>,
    /// The directory the commands run in; a program named by a relative path with a `/`
    /// is found from there too.
    pub dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot write the proxy's upstream file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot run the proxy's {what} command `{command}`: {source}")]
    Spawn {
        what: &'static str,
        command: String,
        source: std::io::Error,
    },
    #[error(
        "the proxy refused the new upstreams (`{command}` exited {code}: {output}); the previous upstream file is back in place"
    )]
    Refused {
        command: String,
        code: String,
        output: String,
    },
    #[error("the proxy did not reload (`{command}` exited {code}: {output})")]
    Reload {
        command: String,
        code: String,
        output: String,
    },
}

impl ProxyError {
    /// What an operator can do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            ProxyError::Write { .. } => {
                "the upstream file's directory must exist and be writable by the agent"
            }
            ProxyError::Spawn { .. } => {
                "is the proxy installed on the agent? set blue_green.test_command and reload_command to its commands"
            }
            ProxyError::Refused { .. } => {
                "does the proxy's configuration include the upstream file and name each upstream and its _preview?"
            }
            ProxyError::Reload { .. } => {
                "is the proxy running? `nginx -s reload` needs its pid file"
            }
        }
    }
}

/// A switch that took effect: the time the reload command took.
#[derive(Debug, Clone, Copy)]
pub struct Switched {
    pub reload: Duration,
}

impl Proxy {
    /// The upstream file as it is now (empty when there is none yet).
    pub fn current(&self) -> String {
        std::fs::read_to_string(&self.upstream_file).unwrap_or_default()
    }

    /// Puts `text` in place of the upstream file, validates and reloads (see the module
    /// documentation). On a refusal the previous file is restored.
    pub async fn switch(&self, text: &str) -> Result<Switched, ProxyError> {
        let previous = std::fs::read(&self.upstream_file).ok();
        write_atomic(&self.upstream_file, text.as_bytes())?;
        if let Err(e) = self.run("test", &self.test_command).await {
            // Put back what was there; an absent file stays absent.
            match &previous {
                Some(bytes) => write_atomic(&self.upstream_file, bytes)?,
                None => {
                    let _ = std::fs::remove_file(&self.upstream_file);
                }
            }
            return Err(match e {
                Ran::Exit { code, output } => ProxyError::Refused {
                    command: self.test_command.join(" "),
                    code,
                    output,
                },
                Ran::Spawn(e) => e,
            });
        }
        let started = Instant::now();
        match self.run("reload", &self.reload_command).await {
            Ok(()) => Ok(Switched {
                reload: started.elapsed(),
            }),
            Err(Ran::Exit { code, output }) => Err(ProxyError::Reload {
                command: self.reload_command.join(" "),
                code,
                output,
            }),
            Err(Ran::Spawn(e)) => Err(e),
        }
    }

    async fn run(&self, what: &'static str, command: &[String]) -> Result<(), Ran> {
        let Some((program, args)) = command.split_first() else {
            return Err(Ran::Spawn(ProxyError::Spawn {
                what,
                command: String::new(),
                source: std::io::Error::other("the command is empty"),
            }));
        };
        let program = if program.contains('/') && Path::new(program).is_relative() {
            self.dir.join(program)
        } else {
            PathBuf::from(program)
        };
        let out = tokio::process::Command::new(program)
            .args(args)
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|source| {
                Ran::Spawn(ProxyError::Spawn {
                    what,
                    command: command.join(" "),
                    source,
                })
            })?;
        if out.status.success() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        Err(Ran::Exit {
            code: out
                .status
                .code()
                .map_or_else(|| "by a signal".to_owned(), |c| c.to_string()),
            output: lines[lines.len().saturating_sub(3)..].join(" | "),
        })
    }
}

enum Ran {
    Exit { code: String, output: String },
    Spawn(ProxyError),
}

/// Writes `bytes` to a temporary file in `path`'s directory, syncs it and renames it over
/// `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ProxyError> {
    let error = |source| ProxyError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".upstreams.")
        .tempfile_in(dir)
        .map_err(error)?;
    tmp.write_all(bytes).map_err(error)?;
    tmp.as_file().sync_all().map_err(error)?;
    // The proxy's master process reads the file as whatever user it runs as.
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(error)?;
    tmp.persist(path).map_err(|e| error(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_port_reads_back_what_render_wrote() {
        let text = render(
            "prod",
            &[
                Upstream {
                    name: "shop".into(),
                    live: Some(28201),
                    preview: Some(28101),
                },
                Upstream {
                    name: "shop_api".into(),
                    live: None,
                    preview: Some(28102),
                },
            ],
            &["10.0.0.1".to_owned(), "10.0.0.2".to_owned()],
        );
        assert_eq!(live_port(&text, "shop"), Some(28201));
        assert_eq!(
            live_port(&text, &format!("shop{PREVIEW_SUFFIX}")),
            Some(28101)
        );
        // Pointing nowhere, and absent, are both "no port".
        assert_eq!(live_port(&text, "shop_api"), None);
        assert_eq!(live_port(&text, "nope"), None);
        assert_eq!(live_port("", "shop"), None);
    }

    #[test]
    fn the_upstream_file_names_both_upstreams_of_each_route() {
        let text = render(
            "prod: live green (1.2.0), preview blue (1.1.0)",
            &[
                Upstream {
                    name: "shop_web".into(),
                    live: Some(28201),
                    preview: Some(28101),
                },
                Upstream {
                    name: "shop_api".into(),
                    live: Some(28202),
                    preview: None,
                },
            ],
            &["127.0.0.1".to_owned()],
        );
        insta::assert_snapshot!(text, @r"
        # prod: live green (1.2.0), preview blue (1.1.0)
        # Written by `release`; the next switch rewrites it.
        upstream shop_web {
            server 127.0.0.1:28201;
        }
        upstream shop_web_preview {
            server 127.0.0.1:28101;
        }
        upstream shop_api {
            server 127.0.0.1:28202;
        }
        upstream shop_api_preview {
            server 127.0.0.1:9 down;
        }
        ");
        let swarm = render(
            "",
            &[Upstream {
                name: "a".into(),
                live: Some(1),
                preview: None,
            }],
            &["198.18.0.11".to_owned(), "198.18.0.12".to_owned()],
        );
        assert!(
            swarm.contains("upstream a {\n    server 198.18.0.11:1;\n    server 198.18.0.12:1;\n}"),
            "{swarm}"
        );
    }

    fn proxy(dir: &Path, test: &[&str]) -> Proxy {
        Proxy {
            upstream_file: dir.join("upstreams.conf"),
            test_command: test.iter().map(|s| (*s).to_owned()).collect(),
            reload_command: vec!["true".into()],
            dir: dir.to_owned(),
        }
    }

    #[tokio::test]
    async fn a_refused_configuration_puts_the_previous_file_back() {
        let dir = tempfile::tempdir().unwrap();
        let ok = proxy(dir.path(), &["true"]);
        ok.switch("upstream a { server 127.0.0.1:1; }\n")
            .await
            .unwrap();
        let refusing = proxy(dir.path(), &["sh", "-c", "echo 'emerg: bad' >&2; exit 1"]);
        let err = refusing.switch("garbage").await.unwrap_err();
        assert!(
            matches!(&err, ProxyError::Refused { code, output, .. } if code == "1" && output.contains("emerg: bad")),
            "{err}"
        );
        assert_eq!(ok.current(), "upstream a { server 127.0.0.1:1; }\n");
        // A first switch that is refused leaves no file behind.
        let fresh = tempfile::tempdir().unwrap();
        let refusing = proxy(fresh.path(), &["false"]);
        refusing.switch("garbage").await.unwrap_err();
        assert!(!fresh.path().join("upstreams.conf").exists());
    }

    #[tokio::test]
    async fn a_missing_proxy_program_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = proxy(dir.path(), &["/nonexistent/nginx", "-t"]);
        let err = p.switch("x").await.unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot run the proxy's test command `/nonexistent/nginx -t`"),
            "{err}"
        );
    }
}
