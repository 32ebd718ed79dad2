//! HTTP checks: one request per attempt, judged on status, latency, body and a JSON value.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, Method, Url};

use super::{CheckError, EXCERPT_BYTES, Probed, excerpt, human, human_elapsed};

/// Bytes of a body read for `body_contains` and JSON; a health endpoint answers far less.
const MAX_BODY: usize = 256 * 1024;

/// One HTTP request and what its answer must satisfy.
#[derive(Debug, Clone)]
pub struct HttpProbe {
    pub method: Method,
    pub url: Url,
    /// Values are marked sensitive: their `Debug` prints `Sensitive`, and no report ever
    /// includes a header value (only the names, in [`HttpProbe::header_names`]).
    headers: HeaderMap,
    /// Values read from the environment (tokens): cut out of excerpts and causes, in case
    /// the server echoes a request header back.
    secrets: Vec<String>,
    pub expect_status: u16,
    pub body_contains: Option<String>,
    /// JSON pointer and the value it must equal.
    pub json: Option<(String, serde_json::Value)>,
    pub max_latency: Option<Duration>,
    /// A CA certificate (PEM bundle) trusted for this check, besides the system roots;
    /// only this check's requests trust it.
    pub ca: Option<PathBuf>,
}

impl HttpProbe {
    pub fn new(method: Method, url: Url, expect_status: u16) -> Self {
        Self {
            method,
            url,
            headers: HeaderMap::new(),
            secrets: Vec::new(),
            expect_status,
            body_contains: None,
            json: None,
            max_latency: None,
            ca: None,
        }
    }

    /// Adds a request header whose value is never shown.
    pub fn header(mut self, name: HeaderName, mut value: HeaderValue) -> Self {
        value.set_sensitive(true);
        self.headers.append(name, value);
        self
    }

    /// Adds a request header whose value is a secret: besides never being shown, it is
    /// replaced by `***` wherever an answer repeats it.
    /// The credential of a `Scheme credential` value (`Bearer …`) is cut out on its own
    /// too, in case only that part comes back.
    pub fn secret_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        // Shorter values would turn every `42` of an excerpt into `***`.
        const SHORTEST: usize = 4;
        if let Ok(text) = value.to_str() {
            let text = text.trim();
            if text.len() >= SHORTEST {
                self.secrets.push(text.to_owned());
            }
            if let Some((_, credential)) = text.rsplit_once(' ')
                && credential.len() >= SHORTEST
            {
                self.secrets.push(credential.to_owned());
            }
        }
        self.header(name, value)
    }

    /// `text` with every secret header value replaced by `***`.
    fn redact(&self, text: String) -> String {
        self.secrets
            .iter()
            .fold(text, |text, secret| text.replace(secret.as_str(), "***"))
    }

    /// The excerpt of `body` for reports. Secrets are cut from the whole body before it is
    /// shortened, so a secret across the cut leaves no prefix behind.
    fn excerpt(&self, body: &[u8]) -> String {
        if self.secrets.is_empty() {
            return excerpt(body, EXCERPT_BYTES);
        }
        let text = self.redact(String::from_utf8_lossy(body).into_owned());
        excerpt(text.as_bytes(), EXCERPT_BYTES)
    }

    pub fn header_names(&self) -> Vec<String> {
        self.headers.keys().map(|k| k.to_string()).collect()
    }

    /// What the check calls, for reports (JUnit): a password in the URL's userinfo is
    /// shown as `***`, since JUnit files are archived and published by Jenkins.
    pub(crate) fn target(&self) -> String {
        format!("{} {}", self.method, mask_password(self.url.as_str()))
    }

    pub(crate) async fn attempt(&self, clients: &HttpClients, budget: Duration) -> Probed {
        let Some(client) = clients.get(&self.ca) else {
            return Probed::fail("no HTTP client was built for this check's `ca`");
        };
        let t0 = Instant::now();
        let send = client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone())
            .timeout(budget)
            .send();
        tokio::pin!(send);
        // reqwest does not say whether a timeout hit the connection or the answer, so an
        // answer that has not come by half the budget starts a plain TCP connect to the
        // same address beside it: a server that accepts it was reached and is slow (a
        // failure), one that does not is out of reach (exit 3 when all are). Answers in
        // time cost nothing more.
        let reach = async {
            tokio::time::sleep(budget / 2).await;
            accepts_connections(&self.url).await
        };
        tokio::pin!(reach);
        let mut reached = None;
        let sent = loop {
            tokio::select! {
                biased;
                sent = &mut send => break sent,
                accepted = &mut reach, if reached.is_none() => reached = Some(accepted),
            }
        };
        let mut response = match sent {
            Ok(r) => r,
            // The server answered, but not with a certificate this client trusts: that is a
            // verdict on the environment, not an environment out of reach.
            Err(e) if e.is_connect() && registry_client::is_tls_error(&e) => {
                let cause = root_cause(&e);
                let hint = if cause.contains("UnknownIssuer") {
                    "; set the check's `ca` to the CA that signed the server's certificate"
                } else {
                    ""
                };
                return Probed::fail(format!(
                    "TLS handshake with {} failed: {cause}{hint}",
                    authority(&self.url),
                ));
            }
            Err(e) if e.is_timeout() && reached != Some(true) => {
                return Probed::timed_out(Probed::unreachable(format!(
                    "cannot connect to {}: no answer within {}",
                    authority(&self.url),
                    human(budget)
                )));
            }
            Err(e) if e.is_timeout() => return Probed::no_response(budget),
            Err(e) if e.is_connect() => {
                return Probed::unreachable(format!(
                    "cannot connect to {}: {}",
                    authority(&self.url),
                    root_cause(&e)
                ));
            }
            Err(e) => return Probed::fail(format!("request failed: {}", root_cause(&e))),
        };
        let status = response.status();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_BODY.saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if room <= chunk.len() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => {
                    return Probed::timed_out(Probed::fail(format!(
                        "status {} but the body did not arrive within {}",
                        status.as_u16(),
                        human(budget)
                    )));
                }
                Err(e) => {
                    return Probed::fail(format!(
                        "status {} but reading the body failed: {}",
                        status.as_u16(),
                        root_cause(&e)
                    ));
                }
            }
        }
        let latency = t0.elapsed();
        let summary = format!("{status} in {}", human_elapsed(latency));
        Probed {
            failure: self
                .judge(status.as_u16(), latency, &body)
                .map(|cause| self.redact(cause)),
            unreachable: false,
            timed_out: false,
            summary,
            status: Some(status.as_u16()),
            latency: Some(latency),
            excerpt: Some(self.excerpt(&body)),
        }
        .with_cause_in_summary()
    }

    /// The first unmet expectation, in the order a person would look: status, latency,
    /// body, JSON value.
    fn judge(&self, status: u16, latency: Duration, body: &[u8]) -> Option<String> {
        if status != self.expect_status {
            return Some(format!("status {status}, expected {}", self.expect_status));
        }
        if let Some(max) = self.max_latency
            && latency > max
        {
            return Some(format!(
                "latency {} over the {} budget",
                human_elapsed(latency),
                human(max)
            ));
        }
        if let Some(needle) = &self.body_contains
            && !String::from_utf8_lossy(body).contains(needle.as_str())
        {
            return Some(format!("body does not contain {needle:?}"));
        }
        if let Some((pointer, want)) = &self.json {
            let value: serde_json::Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return Some(format!("body is not JSON ({e})")),
            };
            match value.pointer(pointer) {
                None => return Some(format!("JSON {pointer} is missing, expected {want}")),
                Some(got) if !same_json(got, want) => {
                    return Some(format!("JSON {pointer} is {got}, expected {want}"));
                }
                Some(_) => {}
            }
        }
        None
    }
}

impl Probed {
    fn with_cause_in_summary(mut self) -> Self {
        if let Some(cause) = &self.failure {
            self.summary = format!("{}: {cause}", self.summary);
        }
        self
    }
}

/// The HTTP clients of a run: one per distinct `ca` among its HTTP checks, so a CA is
/// trusted only by the checks that declare it, and all checks without one share a client
/// (one in all for the usual run). Checks of one client share its connections.
#[derive(Debug, Clone)]
pub struct HttpClients {
    by_ca: BTreeMap<Option<PathBuf>, Client>,
}

impl HttpClients {
    /// Builds the clients `checks` need, reading each CA file once.
    pub fn for_checks(checks: &[super::CheckSpec]) -> Result<Self, CheckError> {
        let mut by_ca = BTreeMap::new();
        for check in checks {
            let probe = match &check.probe {
                super::Probe::Http(p) => p.as_ref(),
                super::Probe::Fanout(f) => match &f.probe {
                    super::Probe::Http(p) => p.as_ref(),
                    _ => continue,
                },
                _ => continue,
            };
            if !by_ca.contains_key(&probe.ca) {
                by_ca.insert(probe.ca.clone(), http_client(probe.ca.as_deref())?);
            }
        }
        Ok(Self { by_ca })
    }

    fn get(&self, ca: &Option<PathBuf>) -> Option<&Client> {
        self.by_ca.get(ca)
    }
}

/// A client trusting the system roots plus `ca` (PEM). Redirects are not followed: a
/// health endpoint that redirects is answering something else, and the expected status
/// says so. Each request has its attempt's timeout, connecting included.
fn http_client(ca: Option<&Path>) -> Result<Client, CheckError> {
    let mut builder = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("release-check/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(128);
    if let Some(path) = ca {
        let pem = std::fs::read(path).map_err(|e| CheckError::Ca {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| CheckError::Ca {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| CheckError::Client(e.to_string()))
}

/// Whether `url`'s host accepts a TCP connection on its port (its name resolved as for
/// the request). Pending for as long as the connect is.
async fn accepts_connections(url: &Url) -> bool {
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return false;
    };
    // `[::1]` in a URL is `::1` to a socket.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    tokio::net::TcpStream::connect((host, port)).await.is_ok()
}

fn authority(url: &Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        _ => url.to_string(),
    }
}

/// JSON equality where numbers compare by value: `1` in release.toml equals `1.0` in a
/// response.
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// `text` (a URL as written, perhaps not even parseable) with the password of a
/// `user:password@` part replaced by `***`, for error messages.
pub fn mask_password(text: &str) -> String {
    let start = text.find("://").map_or(0, |i| i + 3);
    // The authority ends at the first `/`: a password may hold an unencoded `?` or `#`
    // (that is what makes such a URL unparseable), and masking a query's `a:b@c` when
    // there is no path costs nothing.
    let end = text[start..].find('/').map_or(text.len(), |i| start + i);
    let Some(at) = text[start..end].rfind('@').map(|i| start + i) else {
        return text.to_owned();
    };
    match text[start..at].find(':').map(|i| start + i) {
        Some(colon) => format!("{}:***{}", &text[..colon], &text[at..]),
        None => text.to_owned(),
    }
}

/// The innermost error's text: `Connection refused (os error 111)` rather than reqwest's
/// "error sending request".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> HttpProbe {
        let url = Url::parse("http://127.0.0.1:1/health").unwrap_or_else(|e| panic!("{e}"));
        HttpProbe::new(Method::GET, url, 200)
    }

    #[test]
    fn judges_status_then_latency_then_body_then_json() {
        let mut p = probe();
        p.max_latency = Some(Duration::from_millis(100));
        p.body_contains = Some("ok".to_owned());
        p.json = Some(("/status".to_owned(), serde_json::json!("ok")));
        let fast = Duration::from_millis(5);
        assert_eq!(
            p.judge(503, fast, b"x").as_deref(),
            Some("status 503, expected 200")
        );
        assert_eq!(
            p.judge(200, Duration::from_millis(300), b"x").as_deref(),
            Some("latency 300ms over the 100ms budget")
        );
        assert_eq!(
            p.judge(200, fast, b"nope").as_deref(),
            Some("body does not contain \"ok\"")
        );
        assert_eq!(
            p.judge(200, fast, br#"{"status":"down","ok":1}"#)
                .as_deref(),
            Some("JSON /status is \"down\", expected \"ok\"")
        );
        assert_eq!(p.judge(200, fast, br#"{"status":"ok"}"#), None);
    }

    #[test]
    fn a_password_in_the_url_never_shows_in_the_target() {
        let url =
            Url::parse("http://ci:canary-pw@127.0.0.1:1/health").unwrap_or_else(|e| panic!("{e}"));
        let target = HttpProbe::new(Method::GET, url, 200).target();
        assert_eq!(target, "GET http://ci:***@127.0.0.1:1/health");
    }

    #[test]
    fn numbers_compare_by_value_and_pointers_judge_nested_values() {
        let mut p = probe();
        p.json = Some(("/replicas".to_owned(), serde_json::json!(1)));
        let fast = Duration::from_millis(5);
        assert_eq!(p.judge(200, fast, br#"{"replicas":1.0}"#), None);
        assert_eq!(
            p.judge(200, fast, br#"{"replicas":2}"#).as_deref(),
            Some("JSON /replicas is 2, expected 1")
        );
        p.json = Some(("/db".to_owned(), serde_json::json!({"ok": true, "lag": 0})));
        assert_eq!(p.judge(200, fast, br#"{"db":{"lag":0.0,"ok":true}}"#), None);
    }

    #[test]
    fn passwords_are_masked_in_urls_as_written() {
        for (written, shown) in [
            ("http://ci:pw@h:1/x", "http://ci:***@h:1/x"),
            ("htp://ci:p@w@h/x?q=a@b", "htp://ci:***@h/x?q=a@b"),
            ("ci:pw@h", "ci:***@h"),
            ("http://ci@h/x", "http://ci@h/x"),
            ("http://h/x?mail=a:b@c", "http://h/x?mail=a:b@c"),
            ("http://ci:p#ss@h/x", "http://ci:***@h/x"),
            ("http://ci:p?ss@h/", "http://ci:***@h/"),
        ] {
            assert_eq!(mask_password(written), shown, "{written}");
        }
    }

    #[test]
    fn secret_header_values_are_cut_out_of_what_a_server_echoes() {
        let p = probe()
            .secret_header(
                HeaderName::from_static("authorization"),
                HeaderValue::from_static("Bearer canary-secret"),
            )
            .header(
                HeaderName::from_static("accept"),
                HeaderValue::from_static("application/json"),
            );
        assert_eq!(
            p.redact("auth: Bearer canary-secret, accept: application/json".to_owned()),
            "auth: ***, accept: application/json"
        );
        assert_eq!(
            p.redact("token=canary-secret".to_owned()),
            "token=***",
            "the credential alone"
        );
        // A secret across the excerpt's cut leaves no prefix in it.
        let body = format!("{}canary-secret", "x".repeat(EXCERPT_BYTES - 6));
        let shown = p.excerpt(body.as_bytes());
        assert!(!shown.contains("canary"), "{shown}");
        assert!(shown.ends_with("x***"), "{shown}");
    }

    #[test]
    fn header_values_never_show_in_debug() {
        let p = probe().header(
            HeaderName::from_static("authorization"),
            HeaderValue::from_static("Bearer canary-secret"),
        );
        assert!(!format!("{p:?}").contains("canary-secret"));
        assert_eq!(p.header_names(), vec!["authorization"]);
    }
}
