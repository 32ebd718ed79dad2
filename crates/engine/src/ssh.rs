//! The ssh:// transport: one `ssh` control master per [`Engine`](crate::swarm::Engine),
//! owned by it and closed when it is dropped, and one `docker system dial-stdio` through
//! that master per pooled HTTP connection.
//!
//! Why not bollard's own ssh transport: it launches a master (`ssh -M -f`,
//! `ControlPersist=yes`) inside every *connect* of its connection pool, and only a
//! connection that finished connecting owns that master (its `openssh::Session` runs
//! `ssh -O exit` on drop). hyper's pool starts a connect for each request that finds no
//! idle connection and, when an idle one comes back first, finishes the connect in a
//! spawned background task. Concurrent requests (`join_all`, `try_join!` in the deploy
//! watch and the checks) therefore leave connects in flight, and when the command ends the
//! runtime drops those tasks mid-`launch_master`: the forked master has no owner, persists
//! by design, and outlives the process. A connect cancelled by a timeout does the same.
//!
//! Here the master is started once, in the foreground (no `-f`, `ControlPersist=no`), as a
//! child this process kills on drop, and is owned by a guard from the moment it is spawned:
//! dropping the guard at any point (a cancelled connect included) closes the master. The
//! pool's connects only spawn `dial-stdio` clients of that master (killed on drop too), so
//! cancelling one leaves nothing behind.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bollard::{BollardRequest, Docker};
use futures_util::future::BoxFuture;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Where a master is reached: `ssh [-p PORT] [-l USER] HOST`.
#[derive(Debug, Clone)]
pub(crate) struct Target<'a> {
    pub user: Option<&'a str>,
    pub host: &'a str,
    pub port: Option<u16>,
}

/// A running `ssh -M` master and its control socket. Dropping it closes the master
/// (`ssh -O exit`, then SIGKILL should it still run) and removes the socket directory.
#[derive(Debug)]
pub(crate) struct Master {
    ctl: PathBuf,
    // Field order is drop order: the child (kill on drop) before its directory.
    _child: Child,
    dir: tempfile::TempDir,
}

impl Master {
    /// Starts a master for `target` and waits until its control socket listens, i.e. the
    /// server is connected and authenticated. Host keys are checked strictly: an unknown
    /// or changed key fails (`StrictHostKeyChecking=yes`), as no prompt can answer.
    ///
    /// Cancel-safe: the master is owned by the returned value's guard from its spawn on,
    /// so dropping this future closes it.
    pub(crate) async fn launch(target: &Target<'_>, connect_timeout: Duration) -> io::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(".ssh-connection")
            .tempdir_in(control_dir())?;
        let ctl = dir.path().join("master");
        let log = dir.path().join("log");
        let mut cmd = Command::new("ssh");
        cmd.arg("-E")
            .arg(&log)
            .arg("-S")
            .arg(&ctl)
            .args(["-M", "-N", "-T"])
            .args(["-o", "ControlPersist=no"])
            .args(["-o", "BatchMode=yes"])
            .args(["-o", "StrictHostKeyChecking=yes"])
            .arg("-o")
            .arg(format!(
                "ConnectTimeout={}",
                connect_timeout.as_secs().max(1)
            ));
        if let Some(p) = target.port {
            cmd.arg("-p").arg(p.to_string());
        }
        if let Some(u) = target.user {
            cmd.arg("-l").arg(u);
        }
        cmd.arg("--")
            .arg(target.host)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        crate::deploy::scrub_release_vars(&mut cmd);
        let child = cmd.spawn()?;
        let mut master = Self {
            ctl,
            _child: child,
            dir,
        };
        // ssh creates the control socket only once the session is authenticated.
        loop {
            if master.ctl.exists() {
                return Ok(master);
            }
            if let Some(status) = master._child.try_wait()? {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                let said = said.trim();
                return Err(io::Error::other(if said.is_empty() {
                    format!("ssh master exited with {status}")
                } else {
                    said.to_owned()
                }));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A `docker system dial-stdio` through this master: one HTTP connection to dockerd.
    fn dial(&self) -> io::Result<DialStream> {
        let mut cmd = Command::new("ssh");
        cmd.arg("-S")
            .arg(&self.ctl)
            .args(["-o", "BatchMode=yes", "-T"])
            // The "discard" port, so that ssh cannot make a new connection of its own
            // should the master be gone (as openssh does).
            .args(["-p", "9", "--", "none", "docker", "system", "dial-stdio"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        crate::deploy::scrub_release_vars(&mut cmd);
        let mut child = cmd.spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        Ok(DialStream {
            stdin: Some(stdin),
            stdout,
            _child: child,
        })
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        // Synchronous on purpose: this also runs while the runtime is torn down.
        let mut cmd = std::process::Command::new("ssh");
        cmd.arg("-S")
            .arg(&self.ctl)
            .args(["-o", "BatchMode=yes", "-O", "exit", "none"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        crate::deploy::scrub_release_vars_std(&mut cmd);
        let _ = cmd.status();
        let _ = &self.dir;
    }
}

/// Where control sockets go: where openssh (bollard's transport) put them, so that
/// `pgrep -f 'ssh-connection.*ControlPersist'` finds these masters too (the e2e pipeline
/// asserts none outlives release), else the temporary directory.
fn control_dir() -> PathBuf {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|d| d.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".local/state")));
    match state {
        Some(d) if std::fs::create_dir_all(&d).is_ok() => d,
        _ => std::env::temp_dir(),
    }
}

/// The body type of bollard's requests, which bollard does not name.
trait BodyOf {
    type Body;
}
impl<B> BodyOf for http::Request<B> {
    type Body = B;
}
type Body = <BollardRequest as BodyOf>::Body;

/// hyper's connector: each new pooled connection dials through the shared master.
#[derive(Clone)]
struct Dialer(Arc<Master>);

impl tower_service::Service<http::Uri> for Dialer {
    type Response = TokioIo<DialStream>;
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<Self::Response>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let dialed = self.0.dial().map(TokioIo::new);
        Box::pin(async move { dialed })
    }
}

/// A bollard client for `address` (`ssh://…`) whose connections all go through `master`;
/// the master lives as long as the client or any of its clones or connections.
pub(crate) fn docker(
    master: Master,
    address: &str,
    timeout_secs: u64,
    version: &bollard::ClientVersion,
) -> Result<Docker, bollard::errors::Error> {
    let client: Client<Dialer, Body> =
        Client::builder(TokioExecutor::new()).build(Dialer(Arc::new(master)));
    let client = Arc::new(client);
    Docker::connect_with_custom_transport(
        move |req: BollardRequest| {
            let client = Arc::clone(&client);
            async move {
                client
                    .request(req)
                    .await
                    .map_err(bollard::errors::Error::from)
            }
        },
        Some(address),
        timeout_secs,
        version,
    )
}

/// One `docker system dial-stdio`: its stdout is the response stream, its stdin the request.
struct DialStream {
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    _child: Child,
}

impl AsyncRead for DialStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl DialStream {
    fn stdin(&mut self) -> io::Result<Pin<&mut ChildStdin>> {
        self.stdin
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::ErrorKind::BrokenPipe.into())
    }
}

impl AsyncWrite for DialStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stdin()?.poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stdin()?.poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Closing stdin is how dial-stdio learns the write half is done.
        if let Some(stdin) = self.stdin.as_mut() {
            std::task::ready!(Pin::new(stdin).poll_shutdown(cx))?;
        }
        self.stdin = None;
        Poll::Ready(Ok(()))
    }
}

impl Connection for DialStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A master whose launch is cancelled mid-connect (here: a server that accepts the TCP
    /// connection and never sends the SSH banner) is killed, not left running: the guard
    /// owns it from its spawn. bollard's transport (`ssh -M -f`, awaited by a future that
    /// can be dropped) leaves that ssh running, and it would become a persistent master.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_launch_leaves_no_ssh_behind() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = tokio::task::spawn_blocking(move || listener.accept().map(|(s, _)| s));
        let target = Target {
            user: None,
            host: "127.0.0.1",
            port: Some(port),
        };
        let launch = Master::launch(&target, Duration::from_secs(60));
        let cancelled = tokio::time::timeout(Duration::from_millis(700), launch).await;
        assert!(
            cancelled.is_err(),
            "the launch should still wait: {cancelled:?}"
        );
        let stream = accepted.await.unwrap().unwrap();
        // Once ssh is gone its end of the connection closes: the read sees EOF (or a
        // reset), not a timeout.
        stream
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        let mut buf = [0u8; 256];
        let mut s = &stream;
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => break,
                Err(e) => {
                    panic!("ssh still holds the connection after its launch was cancelled: {e}")
                }
            }
        }
    }

    /// A master that cannot start says ssh's own words, so its cause is told as before.
    #[tokio::test]
    async fn a_failed_launch_reports_what_ssh_said() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let target = Target {
            user: None,
            host: "127.0.0.1",
            port: Some(port),
        };
        let err = Master::launch(&target, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(
            crate::cause::of_text(&err.to_string()),
            crate::cause::Cause::Refused,
            "{err}"
        );
    }
}
