//! The client for a `tcp://` engine with mutual TLS.
//!
//! bollard's own (`Docker::connect_with_ssl`) keeps no idle connection
//! (`pool_max_idle_per_host(0)`), so every request pays a TCP connect and a full TLS
//! handshake, and a deploy's watch sends several requests each poll. It also trusts the
//! system's roots beside `ca.pem`. This one keeps its connections (hyper's pool, as the
//! Docker CLI's `http.Transport` does) and trusts `ca.pem` alone, as the CLI does with
//! `--tlsverify --tlscacert`.

use std::sync::Arc;
use std::time::Duration;

use bollard::errors::Error;
use bollard::{BollardRequest, Docker};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::endpoint::Tls;

/// How long [`rejection`] waits for the engine's verdict on the client certificate.
const VERDICT: Duration = Duration::from_secs(3);

/// How long an idle connection is kept: longer than any pause between a watch's polls.
const IDLE: Duration = Duration::from_secs(30);

/// The rustls configuration `tls` names: its CA as the only root, its certificate and key
/// as the client's identity.
fn config(tls: &Tls) -> Result<rustls::ClientConfig, Error> {
    let certs = |path: std::path::PathBuf| {
        CertificateDer::pem_file_iter(&path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .ok()
            .filter(|certs| !certs.is_empty())
            .ok_or(Error::CertPathError { path })
    };
    let mut roots = rustls::RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs(tls.ca())?);
    if added == 0 {
        return Err(Error::CertParseError { path: tls.ca() });
    }
    let chain = certs(tls.cert())?;
    let key = PrivateKeyDer::from_pem_file(tls.key())
        .map_err(|_| Error::CertParseError { path: tls.key() })?;
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|_| Error::CertParseError { path: tls.key() })
}

/// A bollard client for the engine at `host_port` (`HOST:PORT`) over mutual TLS.
pub(crate) fn docker(
    tls: &Tls,
    host_port: &str,
    timeout_secs: u64,
    version: &bollard::ClientVersion,
) -> Result<Docker, Error> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(config(tls)?)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    let client = Arc::new(
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE)
            .build(https),
    );
    Docker::connect_with_custom_transport(
        move |req: BollardRequest| {
            let client = Arc::clone(&client);
            async move { client.request(req).await.map_err(Error::from) }
        },
        Some(format!("https://{host_port}")),
        timeout_secs,
        version,
    )
}

/// The TLS error the engine at `host:port` answers a fresh connection with, if any.
///
/// Under TLS 1.3 the server checks the client's certificate only after the client has
/// finished its side of the handshake, so a certificate the engine rejects reaches a
/// pooled HTTP client as a connection closed before the first request ("connection was
/// not ready"), and the alert that says why is lost. This connects once, completes the
/// handshake, sends nothing, and waits a moment for the engine's alert: an engine that
/// accepts the certificate sends nothing unasked (rustls consumes session tickets), so
/// the wait ends quietly. The handshake's own errors (an unknown CA, TLS 1.2's alert) are
/// returned as well.
pub(crate) async fn rejection(tls: &Tls, host: &str, port: u16) -> Option<rustls::Error> {
    use tokio::io::AsyncReadExt;
    let config = config(tls).ok()?;
    let name = rustls::pki_types::ServerName::try_from(host.to_owned()).ok()?;
    let tcp = tokio::time::timeout(VERDICT, tokio::net::TcpStream::connect((host, port)))
        .await
        .ok()?
        .ok()?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tls_error = |e: std::io::Error| {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .cloned()
    };
    let mut stream = match tokio::time::timeout(VERDICT, connector.connect(name, tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return tls_error(e),
        Err(_) => return None,
    };
    let mut byte = [0u8; 1];
    match tokio::time::timeout(VERDICT, stream.read(&mut byte)).await {
        Ok(Err(e)) => tls_error(e),
        _ => None,
    }
}
