//! A tiny HTTP/1.1 service for the Hestino example images.
//!
//! It exists so the release toolchain has something real to build, push, deploy and
//! health-check on a testbed that cannot pull any public image: the binary is linked
//! statically and shipped `FROM scratch`, and it answers its own Docker `HEALTHCHECK`
//! (`demo-service --healthcheck`), so the image needs no shell and no curl.
//!
//! Behaviour is configured entirely through environment variables (see [`Config`]);
//! a variable that is unset, empty or only whitespace counts as unset, so a Dockerfile
//! can pass `ARG`s through with empty defaults.
//!
//! | variable             | default | meaning |
//! |----------------------|---------|---------|
//! | `DEMO_PORT`          | `8080`  | TCP port, listened on at `0.0.0.0` |
//! | `DEMO_SERVICE`       | `demo`  | service name reported by `/health` and `/version` |
//! | `DEMO_VERSION`       | `dev`   | version reported by `/health`, `/version` and `--version` |
//! | `DEMO_UNHEALTHY`     | off     | `1`/`true`/`yes`/`on`: `/health` answers 503, `--healthcheck` fails |
//! | `DEMO_HEALTHY_AFTER` | off     | seconds (decimals allowed): `/health` answers 503 until then |
//! | `DEMO_CRASH_AFTER`   | off     | seconds (decimals allowed): the process exits with code 3 |
//! | `DEMO_SLOW_MS`       | off     | milliseconds every response is delayed |
//!
//! The server is deliberately simple: one thread per connection, request line and headers
//! parsed, request bodies discarded, keep-alive honoured (`Connection: close` ends the
//! connection after the response, as does HTTP/1.0 without `keep-alive`).

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Port used when `DEMO_PORT` is unset.
pub const DEFAULT_PORT: u16 = 8080;
/// Service name used when `DEMO_SERVICE` is unset.
pub const DEFAULT_SERVICE: &str = "demo";
/// Version used when `DEMO_VERSION` is unset.
pub const DEFAULT_VERSION: &str = "dev";
/// Overall time budget of `--healthcheck` (connect, send, receive).
pub const HEALTHCHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest accepted request line or header line, in bytes.
const MAX_LINE: u64 = 8 * 1024;
/// Most header lines accepted in one request.
const MAX_HEADERS: usize = 100;
/// Largest request body that is read and discarded to keep a connection alive; a larger
/// one is not read and the connection is closed after the response.
const MAX_DISCARDED_BODY: u64 = 1024 * 1024;
/// A connection idle (or stalled) this long is closed.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest response `--healthcheck` reads.
const MAX_HEALTHCHECK_RESPONSE: u64 = 64 * 1024;

/// The service's configuration, normally read from the environment by [`Config::from_env`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `DEMO_PORT`.
    pub port: u16,
    /// `DEMO_SERVICE`.
    pub service: String,
    /// `DEMO_VERSION`.
    pub version: String,
    /// `DEMO_UNHEALTHY`: `/health` always answers 503.
    pub unhealthy: bool,
    /// `DEMO_HEALTHY_AFTER`: `/health` answers 503 until this long after the server started.
    pub healthy_after: Option<Duration>,
    /// `DEMO_CRASH_AFTER`: the process exits with code 3 this long after it started
    /// (enforced by the binary, not by [`Server`]).
    pub crash_after: Option<Duration>,
    /// `DEMO_SLOW_MS`: every response is delayed this long.
    pub slow: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            port: DEFAULT_PORT,
            service: DEFAULT_SERVICE.to_owned(),
            version: DEFAULT_VERSION.to_owned(),
            unhealthy: false,
            healthy_after: None,
            crash_after: None,
            slow: None,
        }
    }
}

/// An environment variable with a value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The variable's name.
    pub var: &'static str,
    /// The offending value.
    pub value: String,
    /// What was expected instead.
    pub expected: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {}={:?}: expected {}",
            self.var, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

/// The value of environment variable `name`, trimmed; `None` when unset, empty or blank.
pub fn env_setting(name: &str) -> Option<String> {
    setting(
        &|key: &str| std::env::var_os(key).map(|v| v.to_string_lossy().into_owned()),
        name,
    )
}

fn setting(lookup: &dyn Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var_os(key).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Reads the configuration through `lookup` (variable name to raw value), so tests need
    /// not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let lookup: &dyn Fn(&str) -> Option<String> = &lookup;
        let defaults = Self::default();
        Ok(Self {
            port: port_from(lookup)?,
            service: setting(lookup, "DEMO_SERVICE").unwrap_or(defaults.service),
            version: setting(lookup, "DEMO_VERSION").unwrap_or(defaults.version),
            unhealthy: flag(lookup, "DEMO_UNHEALTHY")?,
            healthy_after: seconds(lookup, "DEMO_HEALTHY_AFTER")?,
            crash_after: seconds(lookup, "DEMO_CRASH_AFTER")?,
            slow: millis(lookup, "DEMO_SLOW_MS")?,
        })
    }

    /// Reads only `DEMO_PORT` from the process environment (what `--healthcheck` needs; it
    /// must not fail because some unrelated variable is malformed).
    pub fn port_from_env() -> Result<u16, ConfigError> {
        port_from(&|key: &str| std::env::var_os(key).map(|v| v.to_string_lossy().into_owned()))
    }
}

fn port_from(lookup: &dyn Fn(&str) -> Option<String>) -> Result<u16, ConfigError> {
    match setting(lookup, "DEMO_PORT") {
        None => Ok(DEFAULT_PORT),
        Some(v) => v.parse::<u16>().map_err(|_| ConfigError {
            var: "DEMO_PORT",
            value: v,
            expected: "a TCP port number (0-65535)",
        }),
    }
}

fn flag(lookup: &dyn Fn(&str) -> Option<String>, var: &'static str) -> Result<bool, ConfigError> {
    let Some(v) = setting(lookup, var) else {
        return Ok(false);
    };
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError {
            var,
            value: v,
            expected: "1/true/yes/on or 0/false/no/off",
        }),
    }
}

fn seconds(
    lookup: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
) -> Result<Option<Duration>, ConfigError> {
    let Some(v) = setting(lookup, var) else {
        return Ok(None);
    };
    v.parse::<f64>()
        .ok()
        .filter(|s| *s >= 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .map(Some)
        .ok_or(ConfigError {
            var,
            value: v,
            expected: "a non-negative number of seconds",
        })
}

fn millis(
    lookup: &dyn Fn(&str) -> Option<String>,
    var: &'static str,
) -> Result<Option<Duration>, ConfigError> {
    let Some(v) = setting(lookup, var) else {
        return Ok(None);
    };
    v.parse::<u64>()
        .map(|ms| Some(Duration::from_millis(ms)))
        .map_err(|_| ConfigError {
            var,
            value: v,
            expected: "a whole number of milliseconds",
        })
}

/// Writes one line to stdout; a closed or broken stdout must not take the server down.
pub fn log_line(args: fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    let _ = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
}

/// Writes one line to stderr, ignoring failures.
pub fn log_error(args: fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

struct State {
    config: Config,
    started: Instant,
    log_requests: bool,
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    state: Arc<State>,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port; see [`Server::local_addr`]). The
    /// `healthy_after` clock starts here.
    pub fn bind(addr: SocketAddr, config: Config) -> io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let state = State {
            config,
            started: Instant::now(),
            log_requests: true,
        };
        Ok(Self {
            listener,
            state: Arc::new(state),
        })
    }

    /// Turns the one-line-per-request stdout log off (tests: the harness cannot capture it).
    #[must_use]
    pub fn quiet(self) -> Self {
        let state = State {
            config: self.state.config.clone(),
            started: self.state.started,
            log_requests: false,
        };
        Self {
            listener: self.listener,
            state: Arc::new(state),
        }
    }

    /// Binds `0.0.0.0:config.port`.
    pub fn bind_configured(config: Config) -> io::Result<Self> {
        let addr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, config.port));
        Self::bind(addr, config)
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts connections forever, one thread each.
    pub fn run(self) {
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => {
                    let state = Arc::clone(&self.state);
                    let spawned = thread::Builder::new()
                        .name("demo-conn".to_owned())
                        .spawn(move || handle_connection(stream, peer, &state));
                    if let Err(e) = spawned {
                        log_error(format_args!(
                            "demo-service: cannot start a connection thread: {e}"
                        ));
                    }
                }
                Err(e) => {
                    // Typically EMFILE or a connection reset before accept; back off briefly
                    // instead of spinning.
                    log_error(format_args!("demo-service: accept failed: {e}"));
                    thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// Runs the server on a background thread and returns the bound address (for tests
    /// and embedding; the thread runs until the process exits).
    pub fn spawn(self) -> io::Result<(SocketAddr, JoinHandle<()>)> {
        let addr = self.local_addr()?;
        let handle = thread::Builder::new()
            .name("demo-accept".to_owned())
            .spawn(move || self.run())?;
        Ok((addr, handle))
    }
}

/// One parsed request head.
#[derive(Debug)]
struct Request {
    method: String,
    target: String,
    http_version: String,
    keep_alive: bool,
    content_length: Option<u64>,
    /// A `Transfer-Encoding` body (not parsed): the connection cannot be reused.
    unframed_body: bool,
}

enum ReadError {
    /// The connection failed, timed out or closed mid-request: drop it silently.
    Io,
    /// Malformed request: answer with this status, then close.
    Bad(u16, &'static str),
}

/// Reads one line of at most [`MAX_LINE`] bytes, without its line ending. `Ok(None)` on EOF
/// before any byte.
fn read_line(reader: &mut BufReader<TcpStream>) -> Result<Option<String>, ReadError> {
    let mut buf = Vec::new();
    let n = reader
        .by_ref()
        .take(MAX_LINE)
        .read_until(b'\n', &mut buf)
        .map_err(|_| ReadError::Io)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        if n as u64 >= MAX_LINE {
            return Err(ReadError::Bad(431, "request line or header too long"));
        }
        return Err(ReadError::Io); // EOF in the middle of a line
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| ReadError::Bad(400, "request head is not UTF-8"))
}

/// Reads a request head. `Ok(None)` when the peer closed the connection between requests.
fn read_request(reader: &mut BufReader<TcpStream>) -> Result<Option<Request>, ReadError> {
    // RFC 9112 §2.2: ignore at least one empty line before the request line.
    let line = loop {
        match read_line(reader)? {
            None => return Ok(None),
            Some(line) if line.is_empty() => continue,
            Some(line) => break line,
        }
    };
    if line.chars().any(char::is_control) {
        return Err(ReadError::Bad(400, "control character in request line"));
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(http_version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Bad(400, "malformed request line"));
    };
    if method.is_empty() || target.is_empty() || !http_version.starts_with("HTTP/1.") {
        return Err(ReadError::Bad(400, "malformed request line"));
    }
    let http11 = http_version != "HTTP/1.0";
    let mut keep_alive = http11;
    let mut content_length = None;
    let mut unframed_body = false;
    let mut headers = 0;
    loop {
        let Some(line) = read_line(reader)? else {
            return Err(ReadError::Io);
        };
        if line.is_empty() {
            break;
        }
        headers += 1;
        if headers > MAX_HEADERS {
            return Err(ReadError::Bad(431, "too many headers"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ReadError::Bad(400, "malformed header"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") && !http11 {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            let Ok(len) = value.parse::<u64>() else {
                return Err(ReadError::Bad(400, "invalid Content-Length"));
            };
            content_length = Some(len);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            unframed_body = true;
        }
    }
    Ok(Some(Request {
        method: method.to_owned(),
        target: target.to_owned(),
        http_version: http_version.to_owned(),
        keep_alive,
        content_length,
        unframed_body,
    }))
}

struct Response {
    status: u16,
    body: String,
    allow: Option<&'static str>,
}

impl Response {
    fn json(status: u16, body: String) -> Self {
        Self {
            status,
            body,
            allow: None,
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn health(state: &State) -> Response {
    let config = &state.config;
    let unhealthy_reason = if config.unhealthy {
        Some("DEMO_UNHEALTHY is set")
    } else if config
        .healthy_after
        .is_some_and(|after| state.started.elapsed() < after)
    {
        Some("starting (DEMO_HEALTHY_AFTER)")
    } else {
        None
    };
    let service = json_string(&config.service);
    let version = json_string(&config.version);
    match unhealthy_reason {
        None => Response::json(
            200,
            format!(r#"{{"status":"ok","service":{service},"version":{version}}}"#),
        ),
        Some(why) => Response::json(
            503,
            format!(
                r#"{{"status":"unhealthy","service":{service},"version":{version},"reason":{}}}"#,
                json_string(why)
            ),
        ),
    }
}

fn route(request: &Request, state: &State) -> Response {
    let path = request.target.split(['?', '#']).next().unwrap_or_default();
    let known = matches!(path, "/health" | "/version");
    if known && request.method != "GET" && request.method != "HEAD" {
        let mut response = Response::json(
            405,
            format!(
                r#"{{"error":"method not allowed","method":{}}}"#,
                json_string(&request.method)
            ),
        );
        response.allow = Some("GET, HEAD");
        return response;
    }
    match path {
        "/health" => health(state),
        "/version" => Response::json(
            200,
            format!(
                r#"{{"service":{},"version":{}}}"#,
                json_string(&state.config.service),
                json_string(&state.config.version)
            ),
        ),
        _ => Response::json(
            404,
            format!(r#"{{"error":"not found","path":{}}}"#, json_string(path)),
        ),
    }
}

fn write_response(
    stream: &mut TcpStream,
    response: &Response,
    head_only: bool,
    keep_alive: bool,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: {}\r\n",
        response.status,
        reason(response.status),
        response.body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    );
    if let Some(allow) = response.allow {
        out.push_str("Allow: ");
        out.push_str(allow);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    if !head_only {
        out.push_str(&response.body);
    }
    stream.write_all(out.as_bytes())?;
    stream.flush()
}

fn handle_connection(stream: TcpStream, peer: SocketAddr, state: &State) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let mut writer = match stream.try_clone() {
        Ok(writer) => writer,
        Err(e) => {
            log_error(format_args!(
                "demo-service: {peer}: cannot clone socket: {e}"
            ));
            return;
        }
    };
    let mut reader = BufReader::new(stream);
    loop {
        let received = Instant::now();
        let (request_line, response, head_only, mut keep_alive) = match read_request(&mut reader) {
            Ok(None) | Err(ReadError::Io) => return,
            Err(ReadError::Bad(status, why)) => (
                format!("<{why}>"),
                Response::json(status, format!(r#"{{"error":{}}}"#, json_string(why))),
                false,
                false,
            ),
            Ok(Some(request)) => {
                let mut keep_alive = request.keep_alive && !request.unframed_body;
                if let Some(len) = request.content_length {
                    // Bodies are ignored, but must be consumed to find the next request.
                    // Reading it even before closing avoids a reset that could destroy the
                    // response in flight (unread data at close makes the kernel send RST).
                    if len > MAX_DISCARDED_BODY {
                        keep_alive = false;
                    } else {
                        let read = io::copy(&mut reader.by_ref().take(len), &mut io::sink());
                        if read.ok() != Some(len) {
                            return;
                        }
                    }
                }
                (
                    format!(
                        "{} {} {}",
                        request.method, request.target, request.http_version
                    ),
                    route(&request, state),
                    request.method == "HEAD",
                    keep_alive,
                )
            }
        };
        if let Some(delay) = state.config.slow {
            thread::sleep(delay);
        }
        if write_response(&mut writer, &response, head_only, keep_alive).is_err() {
            keep_alive = false;
        }
        if state.log_requests {
            log_line(format_args!(
                "{peer} \"{request_line}\" {} {} {}ms",
                response.status,
                response.body.len(),
                received.elapsed().as_millis()
            ));
        }
        if !keep_alive {
            let _ = writer.shutdown(Shutdown::Write);
            return;
        }
    }
}

/// What a health probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// HTTP status code.
    pub status: u16,
    /// Response body (lossily decoded).
    pub body: String,
}

/// `GET /health` on `addr` within `timeout` overall. `Err` describes a connection, timeout or
/// protocol failure; any HTTP status is `Ok` (the caller decides what healthy means).
pub fn probe_health(addr: SocketAddr, timeout: Duration) -> Result<Probe, String> {
    let deadline = Instant::now() + timeout;
    let remaining = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("no answer from {addr} within {timeout:?}"))
    };
    let mut stream = TcpStream::connect_timeout(&addr, remaining()?)
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_write_timeout(Some(remaining()?))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: demo-service-healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("send to {addr}: {e}"))?;
    let mut raw = Vec::new();
    let mut limited = stream.take(MAX_HEALTHCHECK_RESPONSE);
    let mut chunk = [0u8; 4096];
    loop {
        limited
            .get_ref()
            .set_read_timeout(Some(remaining()?))
            .map_err(|e| e.to_string())?;
        match limited.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!("no answer from {addr} within {timeout:?}"));
            }
            Err(e) => return Err(format!("receive from {addr}: {e}")),
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or_default();
    let mut fields = status_line.split(' ');
    let status = match (fields.next(), fields.next().map(str::parse::<u16>)) {
        (Some(v), Some(Ok(status))) if v.starts_with("HTTP/1.") => status,
        _ => return Err(format!("malformed response from {addr}: {status_line:?}")),
    };
    Ok(Probe {
        status,
        body: body.trim().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn start(config: Config) -> SocketAddr {
        let server = Server::bind(SocketAddr::from(([127, 0, 0, 1], 0)), config).unwrap();
        server.quiet().spawn().unwrap().0
    }

    /// Sends `raw` and reads until the server closes; returns (status, headers, body).
    fn exchange(addr: SocketAddr, raw: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(raw.as_bytes()).unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_owned(), body.to_owned())
    }

    fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        exchange(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
    }

    fn config(service: &str, version: &str) -> Config {
        Config {
            service: service.into(),
            version: version.into(),
            ..Config::default()
        }
    }

    #[test]
    fn health_ok_with_headers() {
        let addr = start(config("api", "1.2.3"));
        let (status, head, body) = get(addr, "/health");
        assert_eq!(status, 200);
        assert_eq!(body, r#"{"status":"ok","service":"api","version":"1.2.3"}"#);
        assert!(head.contains("Content-Type: application/json"), "{head}");
        assert!(
            head.contains(&format!("Content-Length: {}", body.len())),
            "{head}"
        );
        assert!(head.contains("Connection: close"), "{head}");
    }

    #[test]
    fn version_and_query_string() {
        let addr = start(config("admin-api", "2.0.0"));
        let (status, _, body) = get(addr, "/version?verbose=1");
        assert_eq!(status, 200);
        assert_eq!(body, r#"{"service":"admin-api","version":"2.0.0"}"#);
    }

    #[test]
    fn unknown_path_is_404_and_bad_method_405() {
        let addr = start(Config::default());
        let (status, _, body) = get(addr, "/nope");
        assert_eq!(status, 404);
        assert_eq!(body, r#"{"error":"not found","path":"/nope"}"#);
        let (status, head, _) = exchange(
            addr,
            "POST /health HTTP/1.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        );
        assert_eq!(status, 405);
        assert!(head.contains("Allow: GET, HEAD"), "{head}");
    }

    #[test]
    fn malformed_request_is_400() {
        let addr = start(Config::default());
        let (status, _, _) = exchange(addr, "garbage\r\n\r\n");
        assert_eq!(status, 400);
    }

    #[test]
    fn unhealthy_mode() {
        let addr = start(Config {
            unhealthy: true,
            ..config("api", "1")
        });
        let (status, _, body) = get(addr, "/health");
        assert_eq!(status, 503);
        assert!(
            body.starts_with(r#"{"status":"unhealthy","service":"api","version":"1""#),
            "{body}"
        );
        // /version keeps working: only health is affected.
        assert_eq!(get(addr, "/version").0, 200);
        let probe = probe_health(addr, HEALTHCHECK_TIMEOUT).unwrap();
        assert_eq!(probe.status, 503);
    }

    #[test]
    fn healthy_after_delay() {
        let after = Duration::from_millis(300);
        let addr = start(Config {
            healthy_after: Some(after),
            ..Config::default()
        });
        let started = Instant::now();
        assert_eq!(get(addr, "/health").0, 503);
        thread::sleep(after.saturating_sub(started.elapsed()) + Duration::from_millis(50));
        assert_eq!(get(addr, "/health").0, 200);
    }

    #[test]
    fn slow_mode_delays_every_response() {
        let slow = Duration::from_millis(150);
        let addr = start(Config {
            slow: Some(slow),
            ..Config::default()
        });
        for path in ["/health", "/nope"] {
            let t = Instant::now();
            let _ = get(addr, path);
            assert!(
                t.elapsed() >= slow,
                "{path} answered after {:?}",
                t.elapsed()
            );
        }
    }

    #[test]
    fn probe_health_reports_ok_and_times_out_on_slow_server() {
        let addr = start(config("w", "9"));
        let probe = probe_health(addr, HEALTHCHECK_TIMEOUT).unwrap();
        assert_eq!(
            probe,
            Probe {
                status: 200,
                body: r#"{"status":"ok","service":"w","version":"9"}"#.into()
            }
        );

        let slow = start(Config {
            slow: Some(Duration::from_millis(500)),
            ..Config::default()
        });
        let err = probe_health(slow, Duration::from_millis(100)).unwrap_err();
        assert!(err.contains("no answer"), "{err}");
    }

    #[test]
    fn probe_health_fails_without_server() {
        // Bind then drop to get a port that is (almost certainly) closed.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(
            probe_health(
                SocketAddr::from(([127, 0, 0, 1], port)),
                HEALTHCHECK_TIMEOUT
            )
            .is_err()
        );
    }

    #[test]
    fn keep_alive_serves_several_requests_and_skips_bodies() {
        let addr = start(Config::default());
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(
                b"PUT /x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello\
                  HEAD /health HTTP/1.1\r\n\r\n\
                  GET /version HTTP/1.1\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        assert_eq!(text.matches("HTTP/1.1 ").count(), 3, "{text}");
        assert!(text.starts_with("HTTP/1.1 404 "), "{text}");
        assert!(text.contains("HTTP/1.1 200 OK"), "{text}");
        assert!(
            text.ends_with(r#"{"service":"demo","version":"dev"}"#),
            "{text}"
        );
        // The HEAD answer carries headers only, no health body.
        assert!(!text.contains(r#""status":"ok""#), "{text}");
    }

    #[test]
    fn http10_closes_by_default() {
        let addr = start(Config::default());
        let (status, head, _) = exchange(addr, "GET /health HTTP/1.0\r\n\r\n");
        assert_eq!(status, 200);
        assert!(head.contains("Connection: close"), "{head}");
    }

    #[test]
    fn json_escaping() {
        assert_eq!(json_string("a\"b\\c\n\u{1}é"), r#""a\"b\\c\n\u0001é""#);
    }

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn config_defaults_and_empty_means_unset() {
        assert_eq!(Config::from_lookup(lookup(&[])).unwrap(), Config::default());
        let empty = [
            ("DEMO_PORT", ""),
            ("DEMO_SERVICE", ""),
            ("DEMO_VERSION", " "),
            ("DEMO_UNHEALTHY", ""),
            ("DEMO_CRASH_AFTER", ""),
            ("DEMO_HEALTHY_AFTER", ""),
            ("DEMO_SLOW_MS", ""),
        ];
        assert_eq!(
            Config::from_lookup(lookup(&empty)).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn config_values() {
        let c = Config::from_lookup(lookup(&[
            ("DEMO_PORT", "9000"),
            ("DEMO_SERVICE", "worker"),
            ("DEMO_VERSION", "1.0.0"),
            ("DEMO_UNHEALTHY", "true"),
            ("DEMO_CRASH_AFTER", "5"),
            ("DEMO_HEALTHY_AFTER", "0.5"),
            ("DEMO_SLOW_MS", "250"),
        ]))
        .unwrap();
        assert_eq!(
            c,
            Config {
                port: 9000,
                service: "worker".into(),
                version: "1.0.0".into(),
                unhealthy: true,
                healthy_after: Some(Duration::from_millis(500)),
                crash_after: Some(Duration::from_secs(5)),
                slow: Some(Duration::from_millis(250)),
            }
        );
        assert!(
            !Config::from_lookup(lookup(&[("DEMO_UNHEALTHY", "0")]))
                .unwrap()
                .unhealthy
        );
    }

    #[test]
    fn config_rejects_garbage() {
        for (var, value) in [
            ("DEMO_PORT", "70000"),
            ("DEMO_UNHEALTHY", "maybe"),
            ("DEMO_CRASH_AFTER", "-1"),
            ("DEMO_HEALTHY_AFTER", "soon"),
            ("DEMO_SLOW_MS", "1.5"),
        ] {
            let err = Config::from_lookup(lookup(&[(var, value)])).unwrap_err();
            assert_eq!(err.var, var);
            assert!(err.to_string().contains(value), "{err}");
        }
    }
}
