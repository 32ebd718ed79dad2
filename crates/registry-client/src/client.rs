//! One HTTP client per registry: TLS, credentials, auth challenges, retries, concurrency.
//!
//! Why reqwest and not `oci-client` for the wire: oci-client 0.15 retries nothing (no backoff,
//! no `Retry-After`), treats a 202 answer to a blob mount as an error instead of closing the
//! upload session it opened, has no hook for per-attempt logging, and its HEAD-for-digest
//! gives no way to fall back to hashing the body. Those are the contracts this crate exists
//! for, so it speaks the distribution API directly over reqwest, one `reqwest::Client`
//! (one connection pool) per registry.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{RequestBuilder, Response, StatusCode};
use tokio::sync::Semaphore;

use crate::auth::{Challenge, Credentials, Scope, TokenCache, TokenResponse};
use crate::error::Error;
use crate::retry::{Fail, RetryPolicy, parse_retry_after};

/// How a [`Client`] talks to registries.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// A PEM file with extra CA certificates to trust, on top of the built-in roots.
    pub extra_ca: Option<PathBuf>,
    /// Registries (`host:port`) reached over plain HTTP. Only loopback hosts are accepted.
    pub insecure: Vec<String>,
    /// Credentials for every registry (env or stdin); `None` reads the Docker config.
    pub credentials: Option<Credentials>,
    pub retry: RetryPolicy,
    /// Requests in flight per registry.
    pub concurrency: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            extra_ca: None,
            insecure: Vec::new(),
            credentials: None,
            retry: RetryPolicy::default(),
            concurrency: 16,
        }
    }
}

/// The entry point: resolve tags to digests, copy images. Cheap to share; registries are
/// connected lazily, each with its own connection pool.
pub struct Client {
    config: ClientConfig,
    ca: Vec<reqwest::Certificate>,
    registries: Mutex<HashMap<String, Arc<Registry>>>,
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        let ca = match &config.extra_ca {
            None => Vec::new(),
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| Error::CaFile {
                    path: path.display().to_string(),
                    cause: e.to_string(),
                })?;
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| Error::CaFile {
                    path: path.display().to_string(),
                    cause: e.to_string(),
                })?
            }
        };
        Ok(Client {
            config,
            ca,
            registries: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn registry(&self, host: &str) -> Result<Arc<Registry>, Error> {
        let mut map = self.registries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = map.get(host) {
            return Ok(r.clone());
        }
        let registry = Arc::new(Registry::new(host, &self.config, &self.ca)?);
        map.insert(host.to_owned(), registry.clone());
        Ok(registry)
    }
}

/// What we learnt from the registry's `WWW-Authenticate`.
#[derive(Debug, Clone)]
enum AuthMode {
    /// Not asked yet: send Basic if we have it, and learn from a 401.
    Unknown,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// One registry: its base URL, its connection pool, its credentials and tokens.
pub(crate) struct Registry {
    pub(crate) host: String,
    base: String,
    http: reqwest::Client,
    /// HTTP/1.1 only: for blob bodies.
    bulk: reqwest::Client,
    pub(crate) policy: RetryPolicy,
    explicit: Option<Credentials>,
    credentials: tokio::sync::OnceCell<Credentials>,
    mode: Mutex<AuthMode>,
    /// Held by the one request that learns the auth mode while it is unknown.
    learning: tokio::sync::Mutex<()>,
    tokens: tokio::sync::Mutex<TokenCache>,
    permits: Semaphore,
}

/// Whether a registry `host[:port]` names this machine: `localhost`, or a loopback IP
/// address (`127.0.0.0/8`, `[::1]`). A name that merely starts like one (`127.evil.com`)
/// does not.
pub fn is_loopback(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Registry {
    fn new(
        host: &str,
        config: &ClientConfig,
        ca: &[reqwest::Certificate],
    ) -> Result<Registry, Error> {
        let insecure = config.insecure.iter().any(|h| h == host);
        if insecure && !is_loopback(host) {
            return Err(Error::Protocol {
                registry: host.to_owned(),
                message:
                    "plain HTTP is only allowed for loopback registries; drop `insecure` or use TLS"
                        .to_owned(),
            });
        }
        let client = |http1_only: bool| {
            let mut builder = reqwest::Client::builder()
                .use_rustls_tls()
                .user_agent(concat!("release/", env!("CARGO_PKG_VERSION")))
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(Duration::from_secs(30))
                .pool_max_idle_per_host(config.concurrency.max(1));
            if http1_only {
                builder = builder.http1_only();
            }
            for cert in ca {
                builder = builder.add_root_certificate(cert.clone());
            }
            builder.build().map_err(|e| Error::Tls {
                host: host.to_owned(),
                cause: error_chain(&e),
            })
        };
        // Small requests (manifests, HEADs, mounts) share one HTTP/2 connection when the
        // registry offers it; blob bodies go over HTTP/1.1 connections of their own, which
        // stream a 1 GB copy about a quarter faster than HTTP/2 flow control allows here.
        let http = client(false)?;
        let bulk = client(true)?;
        Ok(Registry {
            host: host.to_owned(),
            base: format!("{}://{host}", if insecure { "http" } else { "https" }),
            http,
            bulk,
            policy: config.retry,
            explicit: config.credentials.clone(),
            credentials: tokio::sync::OnceCell::new(),
            mode: Mutex::new(AuthMode::Unknown),
            learning: tokio::sync::Mutex::new(()),
            tokens: tokio::sync::Mutex::new(TokenCache::default()),
            permits: Semaphore::new(config.concurrency.max(1)),
        })
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The client for blob bodies (streamed downloads and uploads).
    pub(crate) fn bulk(&self) -> &reqwest::Client {
        &self.bulk
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/v2/{path}", self.base)
    }

    /// An upload `Location` may be relative to the registry or absolute.
    pub(crate) fn join(&self, location: &str) -> Result<url::Url, Error> {
        let base = url::Url::parse(&self.base).map_err(|e| self.protocol(e.to_string()))?;
        base.join(location)
            .map_err(|e| self.protocol(format!("bad Location {location:?}: {e}")))
    }

    pub(crate) fn protocol(&self, message: impl Into<String>) -> Error {
        Error::Protocol {
            registry: self.host.clone(),
            message: message.into(),
        }
    }

    async fn credentials(&self) -> Result<&Credentials, Error> {
        self.credentials
            .get_or_try_init(|| async {
                match &self.explicit {
                    Some(c) => Ok(c.clone()),
                    None => Credentials::from_docker_config(&self.host).await,
                }
            })
            .await
    }

    fn mode(&self) -> AuthMode {
        self.mode.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_mode(&self, mode: AuthMode) {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
    }

    /// The `Authorization` value for `scope`, marked sensitive so no layer prints it.
    async fn authorization(
        &self,
        scope: &Scope,
        repository: &str,
    ) -> Result<Option<HeaderValue>, Fail> {
        let credentials = self.credentials().await?;
        let value = match self.mode() {
            AuthMode::Unknown | AuthMode::Basic => credentials.basic_header(),
            AuthMode::Bearer { realm, service } => {
                let token = self
                    .token(scope, repository, &realm, service.as_deref(), credentials)
                    .await?;
                Some(format!("Bearer {}", token.expose()))
            }
        };
        Ok(value.and_then(|v| {
            let mut header = HeaderValue::from_str(&v).ok()?;
            header.set_sensitive(true);
            Some(header)
        }))
    }

    /// A bearer token for `scope`, from the cache or the token server.
    async fn token(
        &self,
        scope: &Scope,
        repository: &str,
        realm: &str,
        service: Option<&str>,
        credentials: &Credentials,
    ) -> Result<crate::secret::Secret, Fail> {
        let mut cache = self.tokens.lock().await;
        if let Some(token) = cache.get(scope) {
            return Ok(token);
        }
        let mut url = url::Url::parse(realm)
            .map_err(|e| self.protocol(format!("bad token realm {realm:?}: {e}")))?;
        let request = match credentials {
            Credentials::IdentityToken(refresh) => {
                let mut form = vec![
                    ("grant_type", "refresh_token".to_owned()),
                    ("refresh_token", refresh.expose().to_owned()),
                    ("client_id", "release".to_owned()),
                    ("scope", scope.items().join(" ")),
                ];
                if let Some(s) = service {
                    form.push(("service", s.to_owned()));
                }
                self.http.post(url).form(&form)
            }
            _ => {
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    for item in scope.items() {
                        q.append_pair("scope", item);
                    }
                }
                let mut request = self.http.get(url);
                if let Some(basic) = credentials.basic_header()
                    && let Ok(mut header) = HeaderValue::from_str(&basic)
                {
                    header.set_sensitive(true);
                    request = request.header(AUTHORIZATION, header);
                }
                request
            }
        };
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let response = self.classify(response, repository)?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(self
                .unauthorized(
                    repository,
                    credentials,
                    "the token server rejected the credentials",
                )
                .into());
        }
        if !response.status().is_success() {
            return Err(self
                .protocol(format!("token server answered {}", response.status()))
                .into());
        }
        let body = read_limited(response, 1 << 20).await?;
        let token = serde_json::from_slice::<TokenResponse>(&body)
            .ok()
            .and_then(TokenResponse::into_token)
            .ok_or_else(|| self.protocol("the token server's answer has no token"))?;
        let value = token.value.clone();
        cache.put(scope, token);
        Ok(value)
    }

    fn unauthorized(&self, repository: &str, credentials: &Credentials, why: &str) -> Error {
        let cause = match credentials {
            Credentials::Anonymous => "no credentials found (anonymous access refused)".to_owned(),
            Credentials::Basic { username, .. } => format!("{why} (username {username:?})"),
            Credentials::IdentityToken(_) => {
                format!("{why} (identity token from the Docker config)")
            }
        };
        Error::Unauthorized {
            registry: self.host.clone(),
            repository: repository.to_owned(),
            cause,
        }
    }

    /// Sends one request with authentication, answering one 401 challenge by re-sending
    /// (when the body can be replayed). Returns any response that is not a retryable failure,
    /// 401 or 403; the caller interprets 404 and other statuses.
    pub(crate) async fn send(
        &self,
        scope: &Scope,
        repository: &str,
        request: RequestBuilder,
    ) -> Result<Response, Fail> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| self.protocol("connection pool closed"))?;
        // While the auth mode is unknown, one request at a time: its answer (accepted, or a
        // 401 with the challenge) teaches every request queued behind it, instead of each of
        // the concurrent first requests collecting a 401 of its own.
        let _learning = if matches!(self.mode(), AuthMode::Unknown) {
            let guard = self.learning.lock().await;
            matches!(self.mode(), AuthMode::Unknown).then_some(guard)
        } else {
            None
        };
        let spare = request.try_clone();
        let auth = self.authorization(scope, repository).await?;
        let sent = auth.clone();
        let response = self.dispatch(request, auth).await?;
        let response = if response.status() == StatusCode::UNAUTHORIZED {
            let credentials = self.credentials().await?;
            self.learn(&response, scope, sent.as_ref(), repository, credentials)
                .await?;
            let Some(request) = spare else {
                return Err(self
                    .unauthorized(
                        repository,
                        credentials,
                        "the registry rejected the credentials",
                    )
                    .into());
            };
            let auth = self.authorization(scope, repository).await?;
            let response = self.dispatch(request, auth).await?;
            if response.status() == StatusCode::UNAUTHORIZED {
                return Err(self
                    .unauthorized(
                        repository,
                        credentials,
                        "the registry rejected the credentials",
                    )
                    .into());
            }
            response
        } else {
            // Accepted as sent (Basic credentials, or none): the registry does not want tokens.
            if matches!(self.mode(), AuthMode::Unknown)
                && (response.status().is_success() || response.status() == StatusCode::NOT_FOUND)
            {
                self.set_mode(AuthMode::Basic);
            }
            response
        };
        self.classify(response, repository)
    }

    /// Updates the auth mode from a 401's challenge; fails when another try cannot succeed.
    /// `sent` is the `Authorization` the refused request carried.
    async fn learn(
        &self,
        response: &Response,
        scope: &Scope,
        sent: Option<&HeaderValue>,
        repository: &str,
        credentials: &Credentials,
    ) -> Result<(), Fail> {
        let challenges: Vec<Challenge> = response
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(Challenge::parse_all)
            .collect();
        let bearer = challenges
            .iter()
            .find(|c| c.scheme == "bearer" && c.params.contains_key("realm"));
        if let Some(b) = bearer {
            self.set_mode(AuthMode::Bearer {
                realm: b.params.get("realm").cloned().unwrap_or_default(),
                service: b.params.get("service").cloned(),
            });
            // Only a token we sent can be stale. A 401 answering Basic (the first requests,
            // several in flight at once) must not drop the token another task fetched
            // meanwhile, or each of them would ask the token server again.
            let sent_bearer = sent.is_some_and(|v| v.as_bytes().starts_with(b"Bearer "));
            if sent_bearer {
                self.tokens.lock().await.forget(scope);
            }
            if sent_bearer && b.params.get("error").is_some_and(|e| e != "invalid_token") {
                return Err(self
                    .unauthorized(repository, credentials, "the token was refused")
                    .into());
            }
            return Ok(());
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            self.set_mode(AuthMode::Basic);
            if sent.is_some() || credentials.basic_header().is_none() {
                return Err(self
                    .unauthorized(
                        repository,
                        credentials,
                        "the registry rejected the username or password",
                    )
                    .into());
            }
            return Ok(());
        }
        Err(self
            .unauthorized(
                repository,
                credentials,
                "the registry sent no usable WWW-Authenticate challenge",
            )
            .into())
    }

    async fn dispatch(
        &self,
        request: RequestBuilder,
        auth: Option<HeaderValue>,
    ) -> Result<Response, Fail> {
        let request = match auth {
            Some(value) => request.header(AUTHORIZATION, value),
            None => request,
        };
        request.send().await.map_err(|e| self.transport(e))
    }

    /// Turns retryable statuses into [`Fail::Retry`] (with `Retry-After`) and 403 into a
    /// fatal error; passes everything else through.
    fn classify(&self, response: Response, repository: &str) -> Result<Response, Fail> {
        let status = response.status();
        if status == StatusCode::FORBIDDEN {
            return Err(Error::Denied {
                registry: self.host.clone(),
                repository: repository.to_owned(),
            }
            .into());
        }
        if status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
        {
            let after = response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()));
            return Err(Fail::Retry {
                cause: format!("HTTP {status}"),
                after,
            });
        }
        Ok(response)
    }

    /// A transport error: TLS problems are fatal (retrying will not fix a certificate),
    /// everything else (refused, reset, timeout, truncated) is worth another try.
    pub(crate) fn transport(&self, e: reqwest::Error) -> Fail {
        let chain = error_chain(&e);
        if is_tls_error(&e) {
            Fail::Fatal(Error::Tls {
                host: self.host.clone(),
                cause: chain,
            })
        } else {
            Fail::Retry {
                cause: chain,
                after: None,
            }
        }
    }
}

/// Whether the TLS layer refused a connection, from the typed error chain (never from the
/// text, which holds the URL: a repository named `acme/mtls-proxy` is no TLS error).
/// rustls reports through tokio-rustls as an I/O error of kind `InvalidData` (which no TCP
/// or DNS failure is), wrapped by reqwest's connector in another I/O error;
/// `io::Error::source` skips the error it wraps, so the walk goes through `get_ref`.
pub fn is_tls_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        match c.downcast_ref::<std::io::Error>() {
            Some(io) if io.kind() == std::io::ErrorKind::InvalidData => return true,
            Some(io) => {
                cause = io
                    .get_ref()
                    .map(|inner| inner as &(dyn std::error::Error + 'static))
                    .or_else(|| c.source());
            }
            None => cause = c.source(),
        }
    }
    false
}

/// `e: cause: cause…`, deduplicated (reqwest and hyper often repeat themselves).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Reads a whole body, refusing more than `limit` bytes. A broken body is worth a retry.
pub(crate) async fn read_limited(response: Response, limit: usize) -> Result<Bytes, Fail> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(Fail::Fatal(Error::Protocol {
            registry: response.url().host_str().unwrap_or_default().to_owned(),
            message: format!("response larger than {limit} bytes"),
        }));
    }
    let url = response.url().clone();
    let mut body = BytesMut::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Fail::Retry {
            cause: format!("reading {}: {}", url.path(), error_chain(&e)),
            after: None,
        })?;
        if body.len() + chunk.len() > limit {
            return Err(Fail::Fatal(Error::Protocol {
                registry: url.host_str().unwrap_or_default().to_owned(),
                message: format!("response larger than {limit} bytes"),
            }));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        for yes in [
            "127.0.0.1:5000",
            "localhost",
            "localhost:80",
            "[::1]:5000",
            "127.3.2.1",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in ["10.0.0.1:5000", "registry.example.com", "example.com:443"] {
            assert!(!is_loopback(no), "{no}");
        }
    }

    /// Regression: a transport error was called TLS (fatal, no retry) when "tls",
    /// "certificate" or "handshake" appeared anywhere in its text, URL included.
    #[tokio::test]
    async fn a_repository_named_mtls_proxy_does_not_make_a_refused_connection_a_tls_error() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let client = Client::new(ClientConfig {
            insecure: vec![format!("127.0.0.1:{port}")],
            ..ClientConfig::default()
        })
        .unwrap();
        let registry = client.registry(&format!("127.0.0.1:{port}")).unwrap();
        let e = reqwest::Client::new()
            .get(format!(
                "http://127.0.0.1:{port}/v2/acme/mtls-proxy/manifests/tls-handshake-certificate"
            ))
            .send()
            .await
            .unwrap_err();
        assert!(
            error_chain(&e).contains("mtls-proxy"),
            "{}",
            error_chain(&e)
        );
        assert!(!is_tls_error(&e));
        assert!(matches!(registry.transport(e), Fail::Retry { .. }));
    }

    #[test]
    fn insecure_is_refused_off_loopback() {
        let config = ClientConfig {
            insecure: vec!["registry.example.com".into()],
            ..ClientConfig::default()
        };
        let client = Client::new(config).unwrap();
        assert!(client.registry("registry.example.com").is_err());
    }
}
