//! `Engine::connect` over mutual TLS against a loopback server started here, with CAs and
//! certificates generated here: the right files connect and negotiate the API version; an
//! unknown server CA and a client certificate the server does not trust each fail with
//! their own cause, before any request other than the version is sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use engine::{Cause, Endpoint, EngineError, Tls};
use rcgen::{BasicConstraints, Certificate, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A leaf certificate for `names`, signed by `ca`.
fn leaf(ca: &Ca, names: &[&str]) -> (Certificate, KeyPair) {
    let params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert, key)
}

/// A DOCKER_CERT_PATH-style directory.
fn cert_dir(dir: &Path, ca: &Ca, client: &(Certificate, KeyPair)) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.cert.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), client.0.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), client.1.serialize_pem()).unwrap();
}

/// A TLS server on a loopback port that requires a client certificate signed by `ca` and
/// answers every request as an Engine 20.10 answers `/version`, keeping each connection
/// open for the next request as dockerd does. Returns its port and the count of TLS
/// connections it accepted.
fn serve(ca: &Ca) -> (u16, Arc<AtomicUsize>) {
    let (cert, key) = leaf(ca, &["127.0.0.1"]);
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.cert.der().to_vec()))
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    let config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    std::thread::spawn(move || {
        // Bounded: a test makes one connection, a few at most if the client retries.
        for stream in listener.incoming().take(8) {
            let Ok(stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let config = Arc::clone(&config);
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, stream);
                loop {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body =
                        r#"{"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.12"}"#;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if tls
                        .write_all(response.as_bytes())
                        .and_then(|()| tls.flush())
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (port, accepted)
}

fn endpoint(port: u16, dir: &Path) -> Endpoint {
    Endpoint::new(
        &format!("tcp://127.0.0.1:{port}"),
        Some(Tls {
            cert_path: dir.to_owned(),
            verify: true,
        }),
    )
    .unwrap()
}

#[tokio::test]
async fn mutual_tls_connects_and_negotiates_the_version() {
    let engine_ca = ca("engine CA");
    let (port, _) = serve(&engine_ca);
    let dir = tempfile::tempdir().unwrap();
    cert_dir(dir.path(), &engine_ca, &leaf(&engine_ca, &["client"]));
    let engine = engine::Engine::connect(&endpoint(port, dir.path()))
        .await
        .unwrap();
    assert_eq!(
        engine.host(),
        format!(
            "tcp://127.0.0.1:{port} (TLS, certs {})",
            dir.path().display()
        )
    );
}

/// A deploy's watch sends several requests a poll: they share one kept-alive connection
/// (one TLS handshake), not one connection each.
#[tokio::test]
async fn requests_reuse_one_tls_connection() {
    let engine_ca = ca("engine CA");
    let (port, accepted) = serve(&engine_ca);
    let dir = tempfile::tempdir().unwrap();
    cert_dir(dir.path(), &engine_ca, &leaf(&engine_ca, &["client"]));
    let engine = engine::Engine::connect(&endpoint(port, dir.path()))
        .await
        .unwrap();
    for _ in 0..5 {
        let version = engine.docker().version().await.unwrap();
        assert_eq!(version.api_version.as_deref(), Some("1.41"));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "connections accepted");
}

#[tokio::test]
async fn an_unknown_server_ca_is_its_own_cause() {
    let engine_ca = ca("engine CA");
    let other_ca = ca("some other CA");
    let (port, _) = serve(&engine_ca);
    let dir = tempfile::tempdir().unwrap();
    // A valid client certificate, but the wrong ca.pem.
    let client = leaf(&engine_ca, &["client"]);
    cert_dir(dir.path(), &other_ca, &client);
    let err = engine::Engine::connect(&endpoint(port, dir.path()))
        .await
        .unwrap_err();
    let EngineError::Connect { cause, .. } = &err else {
        panic!("{err:?}");
    };
    eprintln!("{err}\n  hint: {}", err.hint().unwrap_or_default());
    assert_eq!(*cause, Cause::UnknownCa, "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&format!("tcp://127.0.0.1:{port} (TLS")),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");
    let hint = err.hint().unwrap();
    assert!(hint.contains("ca.pem must hold the CA"), "{hint}");
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_rejected_by_the_server() {
    let engine_ca = ca("engine CA");
    let rogue_ca = ca("rogue CA");
    let (port, _) = serve(&engine_ca);
    let dir = tempfile::tempdir().unwrap();
    cert_dir(dir.path(), &engine_ca, &leaf(&rogue_ca, &["client"]));
    std::fs::write(dir.path().join("ca.pem"), engine_ca.cert.pem()).unwrap();
    let err = engine::Engine::connect(&endpoint(port, dir.path()))
        .await
        .unwrap_err();
    let EngineError::Connect { cause, .. } = &err else {
        panic!("{err:?}");
    };
    eprintln!("{err}\n  hint: {}", err.hint().unwrap_or_default());
    assert_eq!(*cause, Cause::ClientCertificateRejected, "{err}");
}

#[tokio::test]
async fn nothing_listening_is_refused() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = Endpoint::new(&format!("tcp://127.0.0.1:{port}"), None).unwrap();
    let err = engine::Engine::connect(&endpoint).await.unwrap_err();
    let EngineError::Connect { cause, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*cause, Cause::Refused, "{err}");
    assert_eq!(
        err.hint().unwrap(),
        "is dockerd running on 127.0.0.1, and does the environment's docker_host/docker_context name it?"
    );
}

/// Through the system `ssh`, as for a real ssh:// endpoint: a port nobody listens on is
/// told apart from a refused key, with a hint about sshd rather than dockerd.
#[tokio::test]
async fn an_ssh_endpoint_nobody_answers_is_refused() {
    assert!(
        std::process::Command::new("ssh").arg("-V").output().is_ok(),
        "no ssh binary: scripts/testbed installs openssh-client"
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = Endpoint::new(&format!("ssh://nobody@127.0.0.1:{port}"), None).unwrap();
    let err = engine::Engine::connect(&endpoint).await.unwrap_err();
    let EngineError::Connect { cause, detail, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(*cause, Cause::Refused, "{err}");
    assert!(detail.contains("Connection refused"), "{detail}");
    assert!(
        err.hint()
            .unwrap()
            .starts_with("is sshd listening on 127.0.0.1"),
        "{err:?}"
    );
}
