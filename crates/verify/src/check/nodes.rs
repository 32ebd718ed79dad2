//! Checks that fan out to every node: `{node}` in an HTTP check's URL or a TCP check's
//! address stands for the address of each node where the check's service has a running
//! task publishing a port in host mode, so one healthy replica cannot hide a broken one.
//!
//! [`expand`] turns such a check into one check per node, named `NAME [hostname]`,
//! from the same listing of the stack the Swarm checks use ([`SwarmTarget`]). A node's
//! address is the one the Swarm manager sees it at (`Status.Addr`): where its host-mode
//! ports answer. When no node qualifies yet (or the stack cannot be listed), the check
//! stays one check whose attempts list the stack again, fail naming the service while no
//! node qualifies, and otherwise probe every node in the same attempt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::Url;

use super::swarm::StackListing;
use super::{CheckSpec, HttpClients, Probe, Probed, SwarmTarget, TcpProbe};

/// What a URL or a TCP address names a node's address by.
pub const NODE_PLACEHOLDER: &str = "{node}";

/// An HTTP or TCP check to run once per node that runs the service with a host-mode port.
#[derive(Debug, Clone)]
pub struct NodeFanout {
    pub target: Arc<SwarmTarget>,
    /// The service's name in the stack file.
    pub stack_service: String,
    /// The URL (HTTP) or `host:port` (TCP), with [`NODE_PLACEHOLDER`] for the host.
    pub url: String,
    /// The HTTP request and its expectations, or the TCP probe; its URL or address is
    /// replaced for each node.
    pub probe: Probe,
}

/// One node a fan-out check runs against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTarget {
    pub hostname: String,
    pub addr: String,
}

#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    #[error("URL `{url}` has no `{NODE_PLACEHOLDER}`")]
    NoPlaceholder { url: String },
    #[error("URL `{url}` for node {node}: {reason}")]
    Url {
        url: String,
        node: String,
        reason: String,
    },
    #[error("only HTTP and TCP checks can name `{NODE_PLACEHOLDER}`")]
    Kind,
}

impl NodeFanout {
    /// A fan-out of `probe` (HTTP or TCP) over `url` (which must contain
    /// [`NODE_PLACEHOLDER`]). A URL is checked once with a stand-in address, so a malformed
    /// one fails before any run.
    pub fn new(
        target: Arc<SwarmTarget>,
        stack_service: impl Into<String>,
        url: impl Into<String>,
        probe: Probe,
    ) -> Result<Self, FanoutError> {
        let url = url.into();
        if !url.contains(NODE_PLACEHOLDER) {
            return Err(FanoutError::NoPlaceholder { url });
        }
        match &probe {
            Probe::Http(_) => drop(node_url(&url, "192.0.2.1")?),
            Probe::Tcp(_) => {}
            _ => return Err(FanoutError::Kind),
        }
        Ok(Self {
            target,
            stack_service: stack_service.into(),
            url,
            probe,
        })
    }

    pub(crate) fn target(&self) -> String {
        match &self.probe {
            Probe::Http(p) => format!("{} {}", p.method, super::mask_password(&self.url)),
            _ => self.url.clone(),
        }
    }

    /// The probe for one node.
    fn for_node(&self, node: &NodeTarget) -> Result<Probe, FanoutError> {
        match &self.probe {
            Probe::Http(p) => {
                let mut probe = p.clone();
                probe.url = node_url(&self.url, &node.addr).map_err(|e| match e {
                    FanoutError::Url { url, reason, .. } => FanoutError::Url {
                        url,
                        node: node.hostname.clone(),
                        reason,
                    },
                    other => other,
                })?;
                Ok(Probe::Http(probe))
            }
            Probe::Tcp(_) => Ok(Probe::Tcp(TcpProbe {
                address: self.url.replace(NODE_PLACEHOLDER, &bracketed(&node.addr)),
            })),
            _ => Err(FanoutError::Kind),
        }
    }

    fn none_message(&self) -> String {
        format!(
            "service {} of stack {} has no running task publishing a port in host mode on \
             any node",
            self.stack_service,
            self.target.stack()
        )
    }

    /// One attempt of a fan-out that could not be expanded before the run: list the stack
    /// again; fail while no node qualifies, else probe every node and pass if all pass.
    pub(crate) async fn attempt(&self, clients: &HttpClients, budget: Duration) -> Probed {
        let listing = match self.target.listing(Instant::now()).await {
            Ok(l) => l,
            Err(probed) => return probed,
        };
        let nodes = node_targets(&listing, &self.stack_service);
        if nodes.is_empty() {
            return Probed::fail(self.none_message());
        }
        let probes: Vec<(String, Result<Probe, FanoutError>)> = nodes
            .iter()
            .map(|n| (n.hostname.clone(), self.for_node(n)))
            .collect();
        let results = join_all(probes.iter().map(|(host, probe)| async move {
            match probe {
                // Not through `Probe::attempt`, which runs this fan-out: no recursion.
                Ok(Probe::Http(p)) => (host, p.attempt(clients, budget).await),
                Ok(Probe::Tcp(p)) => (host, p.attempt().await),
                Ok(_) => (host, Probed::fail(FanoutError::Kind.to_string())),
                Err(e) => (host, Probed::fail(e.to_string())),
            }
        }))
        .await;
        let summary = results
            .iter()
            .map(|(host, p)| format!("[{host}] {}", p.summary))
            .collect::<Vec<_>>()
            .join("; ");
        let failures: Vec<String> = results
            .iter()
            .filter_map(|(host, p)| p.failure.as_ref().map(|f| format!("[{host}] {f}")))
            .collect();
        Probed {
            summary,
            failure: (!failures.is_empty()).then(|| failures.join("; ")),
            unreachable: results.iter().all(|(_, p)| p.unreachable),
            timed_out: results.iter().any(|(_, p)| p.timed_out),
            ..Probed::default()
        }
    }
}

/// The nodes where `stack_service` has a running task publishing a host-mode port, in the
/// order of the listing's nodes (by hostname), each once.
pub(crate) fn node_targets(listing: &StackListing, stack_service: &str) -> Vec<NodeTarget> {
    let Some(service) = listing
        .services
        .iter()
        .find(|s| s.stack_service == stack_service)
    else {
        return Vec::new();
    };
    listing
        .nodes
        .iter()
        .filter(|n| !n.addr.is_empty())
        .filter(|n| {
            service
                .tasks
                .iter()
                .any(|t| t.publishes_on_node() && t.node_id.as_deref() == Some(n.id.as_str()))
        })
        .map(|n| NodeTarget {
            hostname: n.hostname.clone(),
            addr: n.addr.clone(),
        })
        .collect()
}

/// `addr`, bracketed when it is an IPv6 address (for a URL's host or a `host:port`).
fn bracketed(addr: &str) -> String {
    if addr.contains(':') && !addr.starts_with('[') {
        format!("[{addr}]")
    } else {
        addr.to_owned()
    }
}

/// `url` with the placeholder replaced by `addr`.
fn node_url(url: &str, addr: &str) -> Result<Url, FanoutError> {
    Url::parse(&url.replace(NODE_PLACEHOLDER, &bracketed(addr))).map_err(|e| FanoutError::Url {
        url: super::mask_password(url),
        node: addr.to_owned(),
        reason: e.to_string(),
    })
}

/// `specs` with every fan-out check that has nodes to run on replaced by one HTTP check per
/// node, named `NAME [hostname]`; the others are left as they are. A fan-out check is
/// expanded from one listing of its stack, shared with the other checks of that stack.
pub(crate) async fn expand(specs: Vec<CheckSpec>) -> Vec<CheckSpec> {
    let since = Instant::now();
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let Probe::Fanout(fanout) = &spec.probe else {
            out.push(spec);
            continue;
        };
        let nodes = match fanout.target.listing(since).await {
            Ok(listing) => node_targets(&listing, &fanout.stack_service),
            Err(probed) => {
                tracing::warn!(check = %spec.name, "cannot list the stack to expand `{NODE_PLACEHOLDER}`: {}", probed.summary);
                Vec::new()
            }
        };
        out.extend(expand_one(&spec, fanout, &nodes));
        if nodes.is_empty() {
            out.push(spec);
        }
    }
    out
}

/// One HTTP check per node of `nodes`; none when `nodes` is empty. A node whose URL does
/// not parse becomes a fan-out check of its own that fails (it cannot be probed).
fn expand_one(spec: &CheckSpec, fanout: &NodeFanout, nodes: &[NodeTarget]) -> Vec<CheckSpec> {
    nodes
        .iter()
        .map(|node| CheckSpec {
            name: format!("{} [{}]", spec.name, node.hostname),
            service: spec.service.clone(),
            timing: spec.timing,
            probe: match fanout.for_node(node) {
                Ok(probe) => probe,
                Err(e) => Probe::Broken {
                    target: fanout.target(),
                    cause: e.to_string(),
                },
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{HttpProbe, Method, Timing};
    use engine::{
        Availability, LivePort, Node, NodeState, Role, ServiceTasks, TaskDetail, TaskHealth,
    };

    fn node(n: u8) -> Node {
        Node {
            id: format!("n{n}"),
            hostname: format!("prod-{n}"),
            role: Role::Worker,
            state: NodeState::Ready,
            availability: Availability::Active,
            addr: format!("198.18.0.1{n}"),
            leader: false,
        }
    }

    fn task(slot: u64, node: u8, state: &str, host_port: bool) -> TaskDetail {
        TaskDetail {
            id: format!("t{slot}"),
            slot: Some(slot),
            state: state.to_owned(),
            image: "r/admin:1".to_owned(),
            container_id: None,
            health: TaskHealth::OtherNode,
            error: None,
            node_id: Some(format!("n{node}")),
            host_ports: if host_port {
                vec![LivePort {
                    published: 18080,
                    target: 8080,
                    protocol: "tcp".to_owned(),
                    mode: "host".to_owned(),
                }]
            } else {
                Vec::new()
            },
        }
    }

    fn listing(tasks: Vec<TaskDetail>) -> StackListing {
        StackListing {
            services: vec![ServiceTasks {
                name: "s_admin-app".to_owned(),
                stack_service: "admin-app".to_owned(),
                image: "r/admin:1".to_owned(),
                global: false,
                desired: tasks.len() as u64,
                published_ports: Vec::new(),
                tasks,
            }],
            nodes: vec![node(1), node(2), node(3)],
        }
    }

    fn fanout() -> (CheckSpec, NodeFanout) {
        let url = "http://{node}:18080/health";
        let probe = HttpProbe::new(
            Method::GET,
            Url::parse("http://192.0.2.1:18080/health").unwrap_or_else(|e| panic!("{e}")),
            200,
        );
        let fanout = NodeFanout::new(
            SwarmTarget::new(engine::Endpoint::local(), "s"),
            "admin-app",
            url,
            Probe::Http(Box::new(probe)),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let spec = CheckSpec {
            name: "admin-app answers /health".to_owned(),
            service: "admin-app".to_owned(),
            timing: Timing::new(None, None, None),
            probe: Probe::Fanout(Box::new(fanout.clone())),
        };
        (spec, fanout)
    }

    #[test]
    fn one_check_per_node_with_a_running_host_mode_task() {
        let l = listing(vec![
            task(1, 2, "running", true),
            task(2, 1, "running", true),
            // Two tasks on one node: one check for the node.
            task(3, 2, "running", true),
            // Not running, or publishing nothing on its node: no check there.
            task(4, 3, "starting", true),
        ]);
        let nodes = node_targets(&l, "admin-app");
        assert_eq!(
            nodes,
            [
                NodeTarget {
                    hostname: "prod-1".to_owned(),
                    addr: "198.18.0.11".to_owned()
                },
                NodeTarget {
                    hostname: "prod-2".to_owned(),
                    addr: "198.18.0.12".to_owned()
                },
            ]
        );
        let (spec, fanout) = fanout();
        let expanded = expand_one(&spec, &fanout, &nodes);
        let got: Vec<(String, String)> = expanded
            .iter()
            .map(|s| (s.name.clone(), s.probe.target()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "admin-app answers /health [prod-1]".to_owned(),
                    "GET http://198.18.0.11:18080/health".to_owned()
                ),
                (
                    "admin-app answers /health [prod-2]".to_owned(),
                    "GET http://198.18.0.12:18080/health".to_owned()
                ),
            ]
        );
        assert!(expanded.iter().all(|s| s.service == "admin-app"));
    }

    #[test]
    fn a_tcp_check_fans_out_to_host_port_per_node() {
        let target = SwarmTarget::new(engine::Endpoint::local(), "s");
        let probe = Probe::Tcp(TcpProbe {
            address: "{node}:18080".to_owned(),
        });
        let fanout = NodeFanout::new(target, "admin-app", "{node}:18080", probe)
            .unwrap_or_else(|e| panic!("{e}"));
        let spec = CheckSpec {
            name: "admin-app accepts connections".to_owned(),
            service: "admin-app".to_owned(),
            timing: Timing::new(None, None, None),
            probe: Probe::Fanout(Box::new(fanout.clone())),
        };
        assert_eq!(spec.probe.kind(), crate::check::Kind::Tcp);
        let nodes = [
            NodeTarget {
                hostname: "prod-3".to_owned(),
                addr: "198.18.0.13".to_owned(),
            },
            NodeTarget {
                hostname: "v6".to_owned(),
                addr: "2001:db8::1".to_owned(),
            },
        ];
        let got: Vec<(String, String)> = expand_one(&spec, &fanout, &nodes)
            .iter()
            .map(|s| (s.name.clone(), s.probe.target()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "admin-app accepts connections [prod-3]".to_owned(),
                    "198.18.0.13:18080".to_owned()
                ),
                (
                    "admin-app accepts connections [v6]".to_owned(),
                    "[2001:db8::1]:18080".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn no_node_when_the_service_publishes_in_ingress_mode_or_is_absent() {
        let l = listing(vec![task(1, 1, "running", false)]);
        assert!(node_targets(&l, "admin-app").is_empty());
        assert!(node_targets(&l, "api").is_empty());
        let (spec, fanout) = fanout();
        assert!(expand_one(&spec, &fanout, &[]).is_empty());
        assert_eq!(
            fanout.none_message(),
            "service admin-app of stack s has no running task publishing a port in host \
             mode on any node"
        );
    }

    #[test]
    fn urls_are_checked_up_front_and_ipv6_addresses_bracketed() {
        let probe = fanout().1.probe;
        let target = SwarmTarget::new(engine::Endpoint::local(), "s");
        assert!(matches!(
            NodeFanout::new(
                Arc::clone(&target),
                "a",
                "http://host/health",
                probe.clone()
            ),
            Err(FanoutError::NoPlaceholder { .. })
        ));
        assert!(matches!(
            NodeFanout::new(
                Arc::clone(&target),
                "a",
                "http://{node}:99999/",
                probe.clone()
            ),
            Err(FanoutError::Url { .. })
        ));
        let url = node_url("http://{node}:18080/health", "2001:db8::1");
        assert_eq!(
            url.map(|u| u.to_string()).ok().as_deref(),
            Some("http://[2001:db8::1]:18080/health")
        );
    }
}
