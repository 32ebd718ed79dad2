//! The testbed's servers: DEV (a single-node Swarm on host `dev`) and PROD (a Swarm of
//! `prod-1`, the manager, and the workers `prod-2` and `prod-3`), each a network namespace
//! with its own dockerd, reached from the agent over TCP with mutual TLS and over SSH.

use std::path::PathBuf;
use std::process::Command;

/// How the agent reaches a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `tcp://ADDR:2376` with the agent's client certificate.
    Tls,
    /// `ssh://root@ADDR`, the key held by the testbed's ssh-agent.
    Ssh,
}

/// One server of the testbed.
#[derive(Debug, Clone)]
pub struct Server {
    /// `dev` or `prod-1`.
    pub host: &'static str,
    /// The address on the testbed bridge.
    pub addr: &'static str,
    /// `unix://…` socket of its dockerd, for the test's own reads (the product under test
    /// never gets it: it reaches the server over TLS or SSH).
    pub sock: String,
    pub tcp: String,
    pub ssh: String,
}

/// DEV and PROD as `scripts/testbed env` exports them.
#[derive(Debug, Clone)]
pub struct Topology {
    pub dev: Server,
    pub prod: Server,
    /// `ca.pem`, `cert.pem`, `key.pem` the servers trust.
    pub certs: PathBuf,
    /// A client certificate from a CA the servers do not trust.
    pub rogue_certs: PathBuf,
    /// The right client certificate with a CA that did not sign the servers.
    pub unknown_ca_certs: PathBuf,
    /// An ssh-agent holding a key no server authorises.
    pub wrong_ssh_agent: String,
    pub dir: PathBuf,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need the testbed's servers. \
             Run `scripts/testbed up && eval \"$(scripts/testbed env)\"`, or `scripts/test`."
        )
    })
}

impl Topology {
    /// The running servers. Panics with the fix when they are not up.
    pub fn up() -> Topology {
        let server = |env: &str, host: &'static str, addr: &'static str| Server {
            host,
            addr,
            sock: var(&format!("RELEASE_TESTBED_{env}_SOCK")),
            tcp: var(&format!("RELEASE_TESTBED_{env}_TCP")),
            ssh: var(&format!("RELEASE_TESTBED_{env}_SSH")),
        };
        let t = Topology {
            dev: server("DEV", "dev", "198.18.0.10"),
            prod: server("PROD", "prod-1", "198.18.0.11"),
            certs: var("RELEASE_TESTBED_ENGINE_CERTS").into(),
            rogue_certs: var("RELEASE_TESTBED_ROGUE_CERTS").into(),
            unknown_ca_certs: var("RELEASE_TESTBED_UNKNOWN_CA_CERTS").into(),
            wrong_ssh_agent: var("RELEASE_TESTBED_WRONG_SSH_AUTH_SOCK"),
            dir: var("RELEASE_TESTBED_DIR").into(),
        };
        let nodes = t
            .prod
            .docker(["node", "ls", "--format", "{{.Hostname}} {{.Status}}"]);
        for host in ["prod-1", "prod-2", "prod-3"] {
            assert!(
                nodes.contains(&format!("{host} Ready")),
                "PROD node {host} is not Ready (run `scripts/testbed up`):\n{nodes}"
            );
        }
        static STALE: std::sync::Once = std::sync::Once::new();
        STALE.call_once(|| {
            for server in [&t.dev, &t.prod] {
                crate::remove_stale_stacks(&["-H", &server.sock]);
            }
        });
        t
    }

    /// The `release.toml` lines that name `server`'s engine over `transport`.
    pub fn engine_keys(&self, server: &Server, transport: Transport) -> String {
        match transport {
            Transport::Tls => format!(
                "docker_host = \"{}\"\ndocker_cert_path = \"{}\"\n",
                server.tcp,
                self.certs.display()
            ),
            Transport::Ssh => format!("docker_host = \"{}\"\n", server.ssh),
        }
    }
}

impl Server {
    /// Runs the docker CLI against this server's own socket, asserting success.
    pub fn docker<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut full: Vec<std::ffi::OsString> = vec!["-H".into(), self.sock.clone().into()];
        full.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        crate::docker(full)
    }

    /// `(service, node hostname, image)` of every task of `stack` whose desired state is
    /// running, as this server's engine reports them; the image is read from each task's
    /// spec (`docker stack ps` strips the digest). Asserts that each such task runs.
    pub fn task_images(&self, stack: &str) -> Vec<(String, String, String)> {
        let ids = self.docker([
            "stack",
            "ps",
            stack,
            "--filter",
            "desired-state=running",
            "-q",
        ]);
        ids.lines()
            .filter(|l| !l.is_empty())
            .map(|id| {
                let out = self.docker([
                    "inspect",
                    "--format",
                    "{{index .Spec.ContainerSpec.Labels \"com.docker.stack.namespace\"}}|{{.ServiceID}}|{{.NodeID}}|{{.Spec.ContainerSpec.Image}}|{{.Status.State}}",
                    id,
                ]);
                let f: Vec<&str> = out.trim().split('|').collect();
                let service = self.docker(["service", "inspect", "--format", "{{.Spec.Name}}", f[1]]);
                let node = self.docker(["node", "inspect", "--format", "{{.Description.Hostname}}", f[2]]);
                assert_eq!(f[4], "running", "task {id} of {stack} is {}", f[4]);
                (
                    service.trim().trim_start_matches(&format!("{stack}_")).to_owned(),
                    node.trim().to_owned(),
                    f[3].to_owned(),
                )
            })
            .collect()
    }
}

/// A rule in the agent's OUTPUT chain for TCP to `addr:port`, removed on drop (or by
/// [`Cut::restore`]). Only the agent is cut off: the servers still talk to each other over
/// the bridge, which does not pass the agent's OUTPUT chain.
pub struct Cut {
    rule: Option<Vec<String>>,
}

impl Cut {
    /// New connections are refused (a reset): the server's engine stops answering.
    pub fn connections_to(addr: &str, port: u16) -> Cut {
        Cut::insert(addr, port, &["REJECT", "--reject-with", "tcp-reset"])
    }

    /// Every packet is dropped silently: a cut link, not a refusal. Established
    /// connections stall (nothing answers, nothing resets) and new ones hang in the
    /// handshake.
    pub fn packets_to(addr: &str, port: u16) -> Cut {
        Cut::insert(addr, port, &["DROP"])
    }

    fn insert(addr: &str, port: u16, target: &[&str]) -> Cut {
        let port = port.to_string();
        let rule: Vec<String> = ["OUTPUT", "-d", addr, "-p", "tcp", "--dport", &port, "-j"]
            .iter()
            .chain(target)
            .map(|s| s.to_string())
            .collect();
        iptables("-I", &rule);
        Cut { rule: Some(rule) }
    }

    /// Removes the rule now: the link is back.
    pub fn restore(&mut self) {
        if let Some(rule) = self.rule.take() {
            iptables("-D", &rule);
        }
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        if let Some(rule) = self.rule.take() {
            let _ = Command::new("iptables").arg("-D").args(&rule).status();
        }
    }
}

fn iptables(op: &str, rule: &[String]) {
    let out = Command::new("iptables")
        .arg(op)
        .args(rule)
        .output()
        .expect("run iptables");
    assert!(
        out.status.success(),
        "iptables {op} {rule:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
