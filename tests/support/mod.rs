//! The end-to-end harness: a handle on the real testbed and a `release` command runner,
//! so that each scenario reads as a story.
//!
//! ```no_run
//! let bed = release_e2e::Testbed::up();
//! let project = release_e2e::Project::new();
//! bed.release(&project, ["status", "--env", "e2e"]).expect_code(1).stdout_has("NOT PINNED");
//! ```
//!
//! Nothing here skips: without a testbed every test fails, saying how to start one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod project;
pub mod proxy;
pub mod records;
mod run;
pub mod topology;

pub use project::Project;
pub use run::{Run, Running};

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// The real components every test talks to, as `scripts/testbed env` describes them.
#[derive(Debug, Clone)]
pub struct Testbed {
    /// `host:port` of the TLS + basic-auth registry.
    pub registry: String,
    /// `host:port` of the TLS + token-auth registry on the same storage.
    pub token_registry: String,
    pub username: String,
    pub password: String,
    /// The CA certificate the registry's certificate chains to.
    pub ca: PathBuf,
}

impl Testbed {
    /// The running testbed. Panics with the fix when it is not up.
    pub fn up() -> Testbed {
        let var = |name: &str| {
            std::env::var(name).unwrap_or_else(|_| {
                panic!(
                    "{name} is not set: the end-to-end tests need the testbed. \
                     Run `scripts/testbed up && eval \"$(scripts/testbed env)\"`, or `scripts/test`."
                )
            })
        };
        let bed = Testbed {
            registry: var("RELEASE_TEST_REGISTRY"),
            token_registry: var("RELEASE_TEST_TOKEN_REGISTRY"),
            username: var("RELEASE_REGISTRY_USERNAME"),
            password: var("RELEASE_REGISTRY_PASSWORD"),
            ca: PathBuf::from(var("RELEASE_REGISTRY_CA")),
        };
        let info = docker(["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        assert_eq!(
            info.trim(),
            "active",
            "the testbed's Docker Engine is not in an active Swarm"
        );
        static STALE: std::sync::Once = std::sync::Once::new();
        STALE.call_once(|| remove_stale_stacks(&[]));
        bed
    }

    /// A name no other test (or earlier run) uses: lowercase, safe for stacks and repositories.
    /// `PREFIX-PID-N-HEX`: the pid says which test process owns it (see
    /// [`remove_stale_stacks`]).
    pub fn unique(&self, prefix: &str) -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        format!("{prefix}-{}-{n}-{:x}", std::process::id(), nanos % 0xfffff)
    }

    /// Builds the demo image as `REGISTRY/<repository>:<tag>` and pushes it to the testbed
    /// registry; returns the pinned reference `REGISTRY/<repository>:<tag>@sha256:…`.
    pub fn push_demo_image(
        &self,
        repository: &str,
        tag: &str,
        build_args: &[(&str, &str)],
    ) -> String {
        let reference = format!("{}/{repository}:{tag}", self.registry);
        let mut args = vec![
            "build".to_owned(),
            "-q".to_owned(),
            "-t".to_owned(),
            reference.clone(),
        ];
        for (k, v) in build_args {
            args.push("--build-arg".to_owned());
            args.push(format!("{k}={v}"));
        }
        args.push(example_dir().join("image").display().to_string());
        docker(args);
        docker(["push", "-q", reference.as_str()]);
        let digest = docker([
            "inspect",
            "--format",
            "{{range .RepoDigests}}{{println .}}{{end}}",
            reference.as_str(),
        ]);
        let repo_digest = digest
            .lines()
            .find(|l| l.starts_with(&format!("{}/{repository}@", self.registry)))
            .unwrap_or_else(|| panic!("no repo digest for {reference} after push: {digest}"));
        let (_, digest) = repo_digest.split_once('@').unwrap();
        format!("{reference}@{digest}")
    }

    /// Runs `release` in `project`'s directory with the testbed's environment.
    pub fn release<I, S>(&self, project: &Project, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.release_in(project.dir(), args)
    }

    /// Runs `release` for the project in `dir` (`release.toml`, state in `dir/state`), for
    /// runs from other threads.
    pub fn release_in<I, S>(&self, dir: &Path, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.release_with(dir, &[], args)
    }

    /// Runs `release` for the project in `dir` with extra environment variables.
    pub fn release_with<I, S>(&self, dir: &Path, vars: &[(&str, &str)], args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Run::new(self.release_command(dir, vars, args))
    }

    /// Starts `release` in `project`'s directory and returns while it runs.
    pub fn release_spawn<I, S>(&self, project: &Project, args: I) -> Running
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Running::spawn(self.release_command(project.dir(), &[], args))
    }

    /// `release` in `dir` as a person at a terminal runs it: stdout and stderr a
    /// pseudo-terminal (util-linux `script`), `NO_COLOR`, `CI` and `JENKINS_URL` unset,
    /// `TERM=xterm-256color`. The run's stdout holds everything the terminal showed.
    pub fn release_on_tty<I, S>(&self, dir: &Path, vars: &[(&str, &str)], args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let inner = self.release_command(dir, vars, args);
        let quote =
            |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', r"'\''"));
        let mut line = quote(inner.get_program());
        for arg in inner.get_args() {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"]).current_dir(dir);
        for (k, v) in inner.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.env_remove("NO_COLOR")
            .env_remove("CI")
            .env_remove("JENKINS_URL")
            .env("TERM", "xterm-256color")
            .stdin(std::process::Stdio::null());
        Run::new(cmd)
    }

    fn release_command<I, S>(&self, dir: &Path, vars: &[(&str, &str)], args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(release_binary());
        cmd.current_dir(dir)
            .env("RELEASE_CONFIG", dir.join("release.toml"))
            .env("RELEASE_STATE_DIR", dir.join("state"))
            .env("RELEASE_REGISTRY", &self.registry)
            .env_remove("RELEASE_ENV")
            .env("NO_COLOR", "1")
            .args(args);
        // The caller's variables win over the defaults above.
        cmd.envs(vars.iter().copied());
        cmd
    }
}

/// The JUnit file as an independent parser (Python's junitparser, installed by the testbed)
/// reads it: one object per suite with its name, counts, timestamp and cases (classname,
/// name, failure message and body, time).
pub fn junitparser(path: &Path) -> serde_json::Value {
    let script = r#"
import json, sys
from junitparser import JUnitXml
xml = JUnitXml.fromfile(sys.argv[1])
suites = []
for s in xml:
    cases = []
    for c in s:
        r = [x for x in c.result if type(x).__name__ in ("Failure", "Error")]
        cases.append({"classname": c.classname, "name": c.name,
                      "message": r[0].message if r else None,
                      "body": r[0].text if r else None, "time": c.time})
    suites.append({"name": s.name, "tests": s.tests, "failures": s.failures,
                   "timestamp": s.timestamp, "cases": cases})
print(json.dumps(suites))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "junitparser failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("junitparser printed JSON")
}

/// The single suite of a stage's JUnit file (deploy, promote), as junitparser reads it,
/// after checking its name, its counts and that it is timestamped.
pub fn junit_suite(path: &Path, name: &str, tests: u64, failures: u64) -> serde_json::Value {
    let parsed = junitparser(path);
    assert_eq!(parsed.as_array().map(Vec::len), Some(1), "{parsed:#}");
    let suite = parsed[0].clone();
    assert_eq!(suite["name"], name, "{parsed:#}");
    assert_eq!(suite["tests"], tests, "{parsed:#}");
    assert_eq!(suite["failures"], failures, "{parsed:#}");
    assert!(suite["timestamp"].as_str().is_some(), "{parsed:#}");
    suite
}

/// The text of one of the testbed's logs (`registry.log`, `registry-token.log`,
/// `token-server.log`).
pub fn testbed_log(name: &str) -> String {
    let dir =
        std::env::var("RELEASE_TESTBED_DIR").expect("RELEASE_TESTBED_DIR (scripts/testbed env)");
    std::fs::read_to_string(format!("{dir}/{name}")).unwrap_or_else(|e| panic!("{dir}/{name}: {e}"))
}

/// A loopback port nothing listens on at the moment of asking, for a test to publish a
/// service or start a proxy on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET /version` on loopback `port` (the demo image answers it with its service and
/// version): the body, or `None` when nothing answered or the answer was not a 200.
pub fn version_at(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs;
    let mut stream =
        std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout(1)).ok()?;
    stream.set_read_timeout(Some(timeout(2))).ok()?;
    stream
        .write_all(b"GET /version HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    (head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"))
        .then(|| body.trim().to_owned())
}

/// Runs the docker CLI, asserting success; returns stdout.
pub fn docker<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = Command::new("docker")
        .args(&args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Removes the stacks that test processes which no longer run left on the Swarm that
/// `docker_args` reaches: a run killed mid-test (a CI timeout, an interrupted run) never
/// ran its cleanup, and its stacks keep their host-mode ports, so every later deploy of a
/// service publishing the same port stays pending. Only names made by
/// [`Testbed::unique`] (`PREFIX-PID-N-HEX`) whose process is gone are removed; a live
/// process's stacks, this one's included, and every other stack are left alone.
pub fn remove_stale_stacks(docker_args: &[&str]) {
    let mut list: Vec<&str> = docker_args.to_vec();
    list.extend(["stack", "ls", "--format", "{{.Name}}"]);
    let names = docker(list);
    for name in names.lines() {
        let parts: Vec<&str> = name.rsplitn(4, '-').collect();
        let [hex, n, pid, prefix] = parts.as_slice() else {
            continue;
        };
        let owner = pid.parse::<u32>().ok();
        let made_here =
            !prefix.is_empty() && n.parse::<u32>().is_ok() && u32::from_str_radix(hex, 16).is_ok();
        let Some(owner) = owner.filter(|_| made_here) else {
            continue;
        };
        if owner == std::process::id() || Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        eprintln!("removing stack {name}, left by test process {owner} which no longer runs");
        let mut rm: Vec<&str> = docker_args.to_vec();
        rm.extend(["stack", "rm", name]);
        docker(rm);
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

pub fn example_dir() -> PathBuf {
    repo_root().join("examples/hestino")
}

/// The `release` binary of this build (cargo builds it for the workspace's tests).
pub fn release_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/e2e-<hash> → target/<profile>/release
    let bin = exe.parent().and_then(Path::parent).unwrap().join("release");
    assert!(
        bin.is_file(),
        "{} is missing: build it first (`cargo build -p release-cli`; scripts/test does)",
        bin.display()
    );
    bin
}
