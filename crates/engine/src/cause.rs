//! Why a connection to an engine failed, told from the error chain bollard returns (or
//! from `ssh`'s own words), so that each failure gets a cause and a hint that fits it.

use std::error::Error;
use std::fmt;
use std::io;

use crate::endpoint::{Address, Endpoint};

/// What went wrong when connecting, as far as the errors tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The engine's certificate is signed by a CA the endpoint's `ca.pem` does not hold.
    UnknownCa,
    /// The engine's certificate was refused for another reason (name, expiry, …).
    ServerCertificate,
    /// The engine refused the client certificate (a TLS alert from the server).
    ClientCertificateRejected,
    /// Plain HTTP was sent to an engine that speaks TLS only.
    TlsRequired,
    /// The SSH server refused every key offered.
    SshAuth,
    /// The SSH host key is not known, or changed.
    SshHostKey,
    /// SSH worked, but `docker` failed on the far side.
    SshRemote,
    /// Nothing listens at the address.
    Refused,
    TimedOut,
    /// The host name does not resolve.
    NoSuchHost,
    /// The local socket exists but this user may not open it.
    SocketPermission,
    Other,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cause::UnknownCa => "the engine's certificate is signed by an unknown CA",
            Cause::ServerCertificate => "the engine's certificate is not valid",
            Cause::ClientCertificateRejected => "the engine rejected the client certificate",
            Cause::TlsRequired => "the engine speaks TLS only",
            Cause::SshAuth => "the SSH server refused the key",
            Cause::SshHostKey => "the SSH host key is not known or has changed",
            Cause::SshRemote => "docker failed on the far side of SSH",
            Cause::Refused => "connection refused",
            Cause::TimedOut => "timed out",
            Cause::NoSuchHost => "the host name does not resolve",
            Cause::SocketPermission => "permission denied on the socket",
            Cause::Other => "connection failed",
        })
    }
}

impl Cause {
    /// What to do about it, for `endpoint`. Says nothing of any project's scripts: the
    /// library does not know how its users run their engines.
    pub fn hint(self, endpoint: &Endpoint) -> String {
        let host = endpoint.address().host_name();
        let certs = endpoint.tls().map_or_else(
            || "the TLS directory".to_owned(),
            |t| t.cert_path.display().to_string(),
        );
        match self {
            Cause::UnknownCa => format!(
                "{certs}/ca.pem must hold the CA that signed the engine's certificate on {host}; check docker_cert_path or the context's TLS files"
            ),
            Cause::ServerCertificate => format!(
                "the engine's certificate must be valid now and name {host}; compare with `openssl s_client -connect` to the engine"
            ),
            Cause::ClientCertificateRejected => format!(
                "{certs}/cert.pem must be signed by the CA the engine on {host} trusts (dockerd --tlscacert)"
            ),
            Cause::TlsRequired => {
                "set docker_cert_path to a directory with ca.pem, cert.pem, key.pem (or DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH)".to_owned()
            }
            Cause::SshAuth => format!(
                "load a key {host} accepts into the agent (SSH_AUTH_SOCK, `ssh-add -l`) or name it in ~/.ssh/config; try `ssh {} docker version`",
                ssh_target(endpoint)
            ),
            Cause::SshHostKey => format!(
                "{host}'s host key must be in ~/.ssh/known_hosts or /etc/ssh/ssh_known_hosts; an unknown or changed key is never accepted"
            ),
            Cause::SshRemote => format!(
                "the far side needs the docker CLI on PATH (for `docker system dial-stdio`), a running dockerd, and an SSH user allowed to use it (root or the docker group); try `ssh {} docker version`",
                ssh_target(endpoint)
            ),
            Cause::SocketPermission => {
                format!(
                    "add the user to the docker group, or point {} at an engine it may use",
                    endpoint.named_by()
                )
            }
            Cause::Refused | Cause::TimedOut | Cause::NoSuchHost | Cause::Other => {
                if matches!(endpoint.address(), Address::Ssh { .. }) {
                    format!(
                        "is sshd listening on {host}, and does {} name it?",
                        endpoint.named_by()
                    )
                } else {
                    format!(
                        "is dockerd running on {host}, and does {} name it?",
                        endpoint.named_by()
                    )
                }
            }
        }
    }
}

fn ssh_target(endpoint: &Endpoint) -> String {
    match endpoint.address() {
        Address::Ssh { user, host, port } => {
            let mut s = String::new();
            if let Some(p) = port {
                s.push_str(&format!("-p {p} "));
            }
            if let Some(u) = user {
                s.push_str(&format!("{u}@"));
            }
            s.push_str(host);
            s
        }
        other => other.host_name(),
    }
}

/// Every error of the chain, outermost first. `io::Error::source` skips the error it wraps
/// (rustls puts its errors there), so for an `io::Error` the wrapped error comes next.
pub fn chain<'a>(err: &'a (dyn Error + 'static)) -> Vec<&'a (dyn Error + 'static)> {
    let mut out = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        out.push(e);
        if out.len() > 32 {
            break;
        }
        next = match e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            Some(inner) => Some(inner as &(dyn Error + 'static)),
            None => e.source(),
        };
    }
    out
}

/// The cause of a connection failure, and its most specific message on one line.
pub fn classify(err: &(dyn Error + 'static)) -> (Cause, String) {
    let chain = chain(err);
    let detail = chain
        .last()
        .map(|e| one_line(&e.to_string()))
        .unwrap_or_default();
    // The innermost error that says something specific wins: it is the closest to what
    // actually happened.
    let cause = chain
        .iter()
        .rev()
        .map(|e| of_error(*e))
        .find(|c| *c != Cause::Other)
        .unwrap_or(Cause::Other);
    (cause, detail)
}

fn of_error(e: &(dyn Error + 'static)) -> Cause {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return of_rustls(tls);
    }
    if matches!(
        e.downcast_ref::<bollard::errors::Error>(),
        Some(bollard::errors::Error::RequestTimeoutError)
    ) {
        return Cause::TimedOut;
    }
    let text = of_text(&e.to_string());
    if text != Cause::Other {
        return text;
    }
    match e.downcast_ref::<io::Error>().map(io::Error::kind) {
        Some(io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound) => Cause::Refused,
        Some(io::ErrorKind::TimedOut) => Cause::TimedOut,
        Some(io::ErrorKind::PermissionDenied) => Cause::SocketPermission,
        _ => Cause::Other,
    }
}

fn of_rustls(e: &rustls::Error) -> Cause {
    use rustls::{AlertDescription as A, CertificateError as C};
    match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => Cause::UnknownCa,
        rustls::Error::InvalidCertificate(_) => Cause::ServerCertificate,
        // What a server sends when it does not accept the client certificate: Go's TLS
        // stack (dockerd) sends bad_certificate, or certificate_required for none under
        // TLS 1.3; rustls sends unknown_ca for an unknown issuer.
        rustls::Error::AlertReceived(
            A::BadCertificate
            | A::CertificateRequired
            | A::UnknownCA
            | A::UnsupportedCertificate
            | A::CertificateUnknown
            | A::CertificateRevoked
            | A::CertificateExpired,
        ) => Cause::ClientCertificateRejected,
        _ => Cause::Other,
    }
}

/// Causes told by their words: `ssh` reports only text, and so do resolvers.
pub fn of_text(text: &str) -> Cause {
    if text.contains("Client sent an HTTP request to an HTTPS server") {
        Cause::TlsRequired
    } else if text.contains("Permission denied (") {
        Cause::SshAuth
    } else if text.contains("Host key verification failed")
        || text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || text.contains("host key is known")
    {
        Cause::SshHostKey
    } else if text.contains("Could not resolve hostname")
        || text.contains("failed to lookup address")
        || text.contains("Name or service not known")
        || text.contains("nodename nor servname")
    {
        Cause::NoSuchHost
    } else if text.contains("Connection refused") {
        Cause::Refused
    } else if text.contains("timed out") || text.contains("Connection timed out") {
        Cause::TimedOut
    } else {
        Cause::Other
    }
}

/// A message on one line: the last non-empty lines joined, trimmed to a readable length.
pub fn one_line(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .collect();
    let joined = lines.join("; ");
    if joined.chars().count() > 300 {
        let cut: String = joined.chars().take(297).collect();
        format!("{cut}...")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// An error with a source, as hyper and bollard wrap theirs.
    #[derive(Debug)]
    struct Wrap(&'static str, Box<dyn Error + Send + Sync>);

    impl fmt::Display for Wrap {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Wrap {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&*self.1)
        }
    }

    fn wrapped(inner: impl Error + Send + Sync + 'static) -> Wrap {
        Wrap("client error (Connect)", Box::new(inner))
    }

    #[test]
    fn an_unknown_ca_is_told_through_an_io_error() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let err = wrapped(io::Error::new(io::ErrorKind::InvalidData, tls));
        let (cause, detail) = classify(&err);
        assert_eq!(cause, Cause::UnknownCa);
        assert!(detail.contains("UnknownIssuer"), "{detail}");
    }

    #[test]
    fn a_server_alert_means_the_client_certificate_was_rejected() {
        for alert in [
            rustls::AlertDescription::BadCertificate,
            rustls::AlertDescription::CertificateRequired,
            rustls::AlertDescription::UnknownCA,
        ] {
            let err = wrapped(io::Error::other(rustls::Error::AlertReceived(alert)));
            assert_eq!(
                classify(&err).0,
                Cause::ClientCertificateRejected,
                "{alert:?}"
            );
        }
        let expired = rustls::Error::InvalidCertificate(rustls::CertificateError::Expired);
        assert_eq!(
            classify(&wrapped(io::Error::other(expired))).0,
            Cause::ServerCertificate
        );
    }

    #[test]
    fn ssh_failures_are_told_by_their_words() {
        // As openssh reports a refused key: an io::Error whose message is ssh's stderr.
        let err = wrapped(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "root@198.18.0.10: Permission denied (publickey).",
        ));
        assert_eq!(classify(&err).0, Cause::SshAuth);
        assert_eq!(
            of_text(
                "No ED25519 host key is known for 198.18.0.10 and you have requested strict checking.\r\nHost key verification failed."
            ),
            Cause::SshHostKey
        );
        assert_eq!(
            of_text("ssh: Could not resolve hostname nohost: Name or service not known"),
            Cause::NoSuchHost
        );
        // What dockerd answers plain HTTP with on its TLS port.
        assert_eq!(
            of_text(
                "Docker responded with status code 400: Client sent an HTTP request to an HTTPS server."
            ),
            Cause::TlsRequired
        );
        assert_eq!(
            of_text("ssh: connect to host 198.18.0.10 port 22: Connection refused"),
            Cause::Refused
        );
    }

    #[test]
    fn sockets_refused_and_timeouts() {
        let refused = wrapped(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(classify(&refused).0, Cause::Refused);
        let missing = wrapped(io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(classify(&missing).0, Cause::Refused);
        let denied = wrapped(io::Error::from(io::ErrorKind::PermissionDenied));
        assert_eq!(classify(&denied).0, Cause::SocketPermission);
        assert_eq!(
            classify(&bollard::errors::Error::RequestTimeoutError).0,
            Cause::TimedOut
        );
        assert_eq!(classify(&wrapped(io::Error::other("odd"))).0, Cause::Other);
    }

    #[test]
    fn details_are_one_line() {
        assert_eq!(
            one_line(
                "Warning: Permanently added 'h' (ED25519) to the list of known hosts.\r\nroot@h: Permission denied (publickey).\n"
            ),
            "root@h: Permission denied (publickey)."
        );
    }

    #[test]
    fn hints_name_the_host_and_never_a_script() {
        let e = Endpoint::new("tcp://198.18.0.11:2376", None).unwrap();
        let hint = Cause::Refused.hint(&e);
        assert_eq!(
            hint,
            "is dockerd running on 198.18.0.11, and does the environment's docker_host/docker_context name it?"
        );
        let ssh = Endpoint::new("ssh://root@198.18.0.10:2222", None).unwrap();
        assert!(
            Cause::SshAuth
                .hint(&ssh)
                .contains("ssh -p 2222 root@198.18.0.10 docker version")
        );
        for cause in [
            Cause::UnknownCa,
            Cause::SshAuth,
            Cause::Refused,
            Cause::Other,
        ] {
            assert!(!cause.hint(&e).contains("scripts/"), "{cause:?}");
        }
    }
}
