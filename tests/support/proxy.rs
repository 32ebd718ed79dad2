//! A fault-injecting HTTP proxy on loopback: plain HTTP in front, the testbed's TLS registry
//! behind. Each request gets its own connection (the proxy forces `Connection: close`), so
//! faults apply per request; every request is recorded with the time it arrived.
//!
//! The client reaches it as an `insecure` (plain HTTP, loopback-only) registry.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Project, Run, Testbed, release_binary};

/// What to do to one request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status (no body), with `Retry-After` if given.
    Status(u16, Option<&'static str>),
    /// Close the connection without answering.
    Reset,
    /// Wait, then forward.
    Delay(Duration),
    /// Forward, but send only the first half of the response body, then close.
    Truncate,
    /// Forward, and drop this header (any case) from the response.
    DropHeader(&'static str),
}

/// Faults for requests whose method and path match, used up in order; then `always`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: &'static str,
    pub path_contains: String,
    pub faults: VecDeque<Fault>,
    pub always: Option<Fault>,
}

impl Rule {
    pub fn new(method: &'static str, path_contains: &str, faults: Vec<Fault>) -> Rule {
        Rule {
            method,
            path_contains: path_contains.to_owned(),
            faults: faults.into(),
            always: None,
        }
    }

    pub fn always(method: &'static str, path_contains: &str, fault: Fault) -> Rule {
        Rule {
            always: Some(fault),
            ..Rule::new(method, path_contains, Vec::new())
        }
    }
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Hit {
    pub method: String,
    pub path: String,
    pub fault: Option<String>,
    pub at: Instant,
}

pub struct Proxy {
    /// `127.0.0.1:PORT`
    pub addr: String,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Proxy {
    pub fn start(bed: &Testbed, rules: Vec<Rule>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let rules = Arc::new(Mutex::new(rules));
        let tls = Arc::new(tls_config(&bed.ca));
        let upstream = bed.registry.clone();
        {
            let hits = hits.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { continue };
                    let (hits, rules, tls, upstream) =
                        (hits.clone(), rules.clone(), tls.clone(), upstream.clone());
                    std::thread::spawn(move || {
                        let _ = serve(stream, &upstream, &tls, &rules, &hits);
                    });
                }
            });
        }
        Proxy { addr, hits }
    }

    /// Requests seen with this method whose path contains `path_contains`.
    pub fn hits(&self, method: &str, path_contains: &str) -> Vec<Hit> {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.method == method && h.path.contains(path_contains))
            .cloned()
            .collect()
    }

    /// A project whose registry is this proxy (plain HTTP on loopback).
    pub fn project(&self) -> Project {
        let project = Project::new();
        project.write(
            "release.toml",
            &format!(
                "[project]\nname = \"e2e\"\n\n[registry]\nhost = \"{}\"\ninsecure = true\n",
                self.addr
            ),
        );
        project
    }
}

impl Testbed {
    /// Like [`Testbed::release`], with extra environment (`None` removes a variable).
    pub fn release_env<I, S>(&self, project: &Project, env: &[(&str, Option<&str>)], args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(release_binary());
        cmd.current_dir(project.dir())
            .env("RELEASE_CONFIG", project.config())
            .env("RELEASE_STATE_DIR", project.state_dir())
            .env("RELEASE_REGISTRY", &self.registry)
            .env("NO_COLOR", "1");
        for (name, value) in env {
            match value {
                Some(v) => cmd.env(name, v),
                None => cmd.env_remove(name),
            };
        }
        cmd.args(args);
        Run::new(cmd)
    }
}

fn tls_config(ca: &std::path::Path) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn serve(
    client: TcpStream,
    upstream: &str,
    tls: &Arc<rustls::ClientConfig>,
    rules: &Mutex<Vec<Rule>>,
    hits: &Mutex<Vec<Hit>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head_lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        head_lines.push(line.trim_end().to_owned());
    }
    let Some(request_line) = head_lines.first().cloned() else {
        return Ok(());
    };
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let length: usize = head_lines
        .iter()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;

    let fault = {
        let mut rules = rules.lock().unwrap();
        rules
            .iter_mut()
            .find(|r| r.method == method && path.contains(&r.path_contains))
            .and_then(|r| r.faults.pop_front().or_else(|| r.always.clone()))
    };
    hits.lock().unwrap().push(Hit {
        method: method.clone(),
        path: path.clone(),
        fault: fault.as_ref().map(|f| format!("{f:?}")),
        at: Instant::now(),
    });
    let mut client = client;
    let mut truncate = false;
    let mut drop_header = None;
    match fault {
        Some(Fault::Status(code, retry_after)) => {
            let retry = retry_after
                .map(|r| format!("Retry-After: {r}\r\n"))
                .unwrap_or_default();
            write!(
                client,
                "HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\nConnection: close\r\n{retry}\r\n"
            )?;
            return Ok(());
        }
        Some(Fault::Reset) => {
            client.shutdown(std::net::Shutdown::Both)?;
            return Ok(());
        }
        Some(Fault::Delay(d)) => std::thread::sleep(d),
        Some(Fault::Truncate) => truncate = true,
        Some(Fault::DropHeader(name)) => drop_header = Some(name),
        None => {}
    }

    let mut request = String::new();
    request.push_str(&request_line);
    request.push_str("\r\n");
    for line in &head_lines[1..] {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:") || lower.starts_with("keep-alive:") {
            continue;
        }
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("Connection: close\r\nX-Forwarded-Proto: http\r\n\r\n");

    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(tls.clone(), name).unwrap();
    let mut tls_stream = rustls::StreamOwned::new(conn, TcpStream::connect(upstream)?);
    tls_stream.write_all(request.as_bytes())?;
    tls_stream.write_all(&body)?;
    tls_stream.flush()?;
    let mut response = Vec::new();
    match tls_stream.read_to_end(&mut response) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e),
    }
    if let Some(name) = drop_header {
        response = without_header(&response, name);
    }
    if truncate {
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(response.len(), |i| i + 4);
        let body_len = response.len() - split;
        response.truncate(split + body_len / 2);
    }
    client.write_all(&response)?;
    client.flush()?;
    Ok(())
}

/// `response` with every `name:` header line removed from its head.
fn without_header(response: &[u8], name: &str) -> Vec<u8> {
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |i| i + 2);
    let head = String::from_utf8_lossy(&response[..split]);
    let prefix = format!("{}:", name.to_ascii_lowercase());
    let mut out: Vec<u8> = head
        .split_inclusive("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with(&prefix))
        .collect::<String>()
        .into_bytes();
    out.extend_from_slice(&response[split..]);
    out
}
