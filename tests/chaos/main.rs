//! The fault campaign: real faults against the real `release` binary, then the invariants.
//!
//! ```text
//! cargo test -p release-e2e --test chaos               full campaign (~5-10 min)
//! cargo test -p release-e2e --test chaos -- --smoke    every scenario once or twice (< 2 min)
//! CHAOS_SEED=7 …                  another (repeatable) random schedule; default seed 1
//! CHAOS_DAEMON=1 …                also restart the Docker daemon during a deploy watch
//!                                 (disrupts everything else using the daemon: run it alone)
//! CHAOS_ONLY=kill|disk|registry|proxy|daemon   only that section (after the baseline)
//! CHAOS_KEEP=1 …                  keep the work directory
//! ```
//! `scripts/chaos [--smoke]` runs it with the testbed's environment.
//!
//! Scenarios (worst first): SIGKILL of the CLI at a random moment of push, deploy, check and
//! promote; a full disk and a read-only state directory during record writes; a registry
//! killed and restarted during push, resolve, copy and promote; a proxy injecting resets,
//! truncated bodies, 503 and 429 at several rates; optionally the daemon restarted.
//!
//! It never touches the shared testbed registry: it starts its own registry (same
//! certificate and htpasswd, its own storage) on `CHAOS_REGISTRY_PORT` (default 5447; the
//! testbed uses 5443-5445), and its own Swarm stacks.
//!
//! Invariants checked after every run, on the records as the `verify` library reads them:
//! the ledger's chain and every manifest intact (`release audit verify`), every record
//! parses, every `promoted` entry cites a passing `checked` entry of its source with exactly
//! its digests (0 promotions without a passing gate), no exit 0 on a failed operation, every
//! failure exits with a documented code (1-4) and says why. Prints a table: scenario | runs |
//! failures | result | exit codes seen. Exits 1 if any run fails, 101 if the setup fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use release_e2e::{release_binary, repo_root};
use serde_json::Value;
use verify::{Event, StateDir};

/// A failed setup step: the campaign cannot judge anything. A panic, so the campaign's
/// registry, mounts and stacks are still cleaned up on the way out (exit 101).
macro_rules! setup_failed {
    ($($arg:tt)*) => {{
        panic!("chaos: {}", format!($($arg)*))
    }};
}

/// The campaign's random schedule: xorshift64*, so a seed replays the same schedule.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in `[0, n)`.
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }

    fn ms_below(&mut self, n: u64) -> Duration {
        Duration::from_millis(self.below(n))
    }
}

/// One finished `release` run.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn of(status: ExitStatus, stdout: Vec<u8>, stderr: Vec<u8>) -> Out {
        // As a shell reports it: 128 + the signal for a killed process.
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        Out {
            code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// A documented failure: code 1-4 and a reason in the output.
    fn documented_failure(&self) -> bool {
        (1..=4).contains(&self.code)
            && ["error", "FAIL", "refused", "rolled back"]
                .iter()
                .any(|w| self.stderr.contains(w) || self.stdout.contains(w))
    }

    fn head(&self) -> String {
        self.stderr.chars().take(300).collect()
    }
}

#[derive(Default)]
struct Tally {
    runs: u32,
    failures: u32,
    codes: Vec<String>,
}

struct Campaign {
    release: PathBuf,
    work: PathBuf,
    registry: String,
    ca: String,
    user: String,
    password: String,
    testbed_dir: PathBuf,
    rng: Rng,
    n: u32,
    version: String,
    base: String,
    base_digest: String,
    repo: String,
    dev: String,
    prod: String,
    http_port: u16,
    /// Variables every run gets on top of the campaign's (a section's retry budget).
    extra_env: Vec<(String, String)>,
    registry_child: Option<Child>,
    mounts: Vec<PathBuf>,
    order: Vec<String>,
    tallies: BTreeMap<String, Tally>,
    failures: Vec<String>,
}

impl Campaign {
    fn state(&self) -> PathBuf {
        self.work.join("state")
    }

    fn command(&self, args: &[&str], state: &Path, env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(&self.release);
        cmd.args(args)
            .current_dir(&self.work)
            .env("RELEASE_CONFIG", self.work.join("proj/release.toml"))
            .env("RELEASE_STATE_DIR", state)
            .env("RELEASE_REGISTRY", &self.registry)
            .env("RELEASE_REGISTRY_CA", &self.ca)
            .env("NO_COLOR", "1")
            .env_remove("RELEASE_ENV")
            .env_remove("RELEASE_VERSION");
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    fn rel_in(&self, state: &Path, env: &[(&str, &str)], args: &[&str]) -> Out {
        let out = self
            .command(args, state, env)
            .output()
            .unwrap_or_else(|e| setup_failed!("cannot run {}: {e}", self.release.display()));
        Out::of(out.status, out.stdout, out.stderr)
    }

    fn rel(&self, args: &[&str]) -> Out {
        self.rel_in(&self.state(), &[], args)
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.command(args, &self.state(), &[])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| setup_failed!("cannot run {}: {e}", self.release.display()))
    }

    fn finish(child: Child) -> Out {
        let out = child.wait_with_output().unwrap();
        Out::of(out.status, out.stdout, out.stderr)
    }

    /// Runs `args`, SIGKILLs it after a random delay in `[0, max_ms)`; returns the run and
    /// the delay. Exit 137: killed mid-run; anything else: it finished before the kill.
    fn kill_at_random(&mut self, max_ms: u64, args: &[&str]) -> (Out, u64) {
        let after = self.rng.below(max_ms);
        let mut child = self.spawn(args);
        std::thread::sleep(Duration::from_millis(after));
        let _ = child.kill();
        (Self::finish(child), after)
    }

    /// A fresh version: the one image under a new tag (same digest), so pushes stay fast.
    fn next_version(&mut self) -> String {
        self.n += 1;
        self.version = format!("1.0.{}", self.n);
        let image = format!("{}/{}", self.registry, self.repo);
        docker(&[
            "tag",
            &format!("{image}:0.0.0"),
            &format!("{image}:{}", self.version),
        ]);
        self.version.clone()
    }

    fn record(&mut self, scenario: &str, ok: bool, codes: &str, why: &str) {
        if !self.tallies.contains_key(scenario) {
            self.order.push(scenario.to_owned());
        }
        let tally = self.tallies.entry(scenario.to_owned()).or_default();
        tally.runs += 1;
        tally.codes.push(codes.to_owned());
        if !ok {
            tally.failures += 1;
            let line = format!("{scenario}: {why}");
            eprintln!("{line}");
            self.failures.push(line);
        }
    }

    // ---- the registry this campaign may kill ---------------------------------------------

    fn start_registry(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.work.join("registry.log"))
            .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(self.work.join("registry.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| setup_failed!("cannot start docker-registry: {e}"));
        self.registry_child = Some(child);
        for _ in 0..80 {
            let status = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "--cacert", &self.ca])
                .arg(format!("https://{}/v2/", self.registry))
                .status()
                .unwrap();
            if status.success() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        setup_failed!("the registry on {} did not start", self.registry)
    }

    fn kill_registry(&mut self) {
        if let Some(mut child) = self.registry_child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs `args`, kills the registry after a random delay below `max_ms`, restarts it
    /// after another below 1.5 s, and returns the run.
    fn registry_outage(&mut self, max_ms: u64, args: &[&str]) -> Out {
        let child = self.spawn(args);
        std::thread::sleep(self.rng.ms_below(max_ms));
        self.kill_registry();
        std::thread::sleep(self.rng.ms_below(1500));
        self.start_registry();
        Self::finish(child)
    }

    /// What the registry really serves for `repo:tag`, asked without the tool.
    fn true_digest(&self, tag: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sf", "--cacert", &self.ca, "-u"])
            .arg(format!("{}:{}", self.user, self.password))
            .args([
                "-H",
                "Accept: application/vnd.docker.distribution.manifest.v2+json",
                "-H",
                "Accept: application/vnd.oci.image.manifest.v1+json",
                "-o",
                "/dev/null",
                "-D",
                "-",
            ])
            .arg(format!(
                "https://{}/v2/{}/manifests/{tag}",
                self.registry, self.repo
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("docker-content-digest")
                .then(|| value.trim().to_owned())
        })
    }

    // ---- the invariants ---------------------------------------------------------------------

    /// The invariants over a state directory: `Err` says which one broke.
    fn invariants(&self, state: &Path) -> Result<(), String> {
        let verified = self.rel_in(state, &[], &["audit", "verify"]);
        if verified.code != 0 {
            let all = format!("{}{}", verified.stdout, verified.stderr).replace('\n', " ");
            return Err(format!(
                "audit verify: {}",
                all.chars().take(300).collect::<String>()
            ));
        }
        for dir in ["releases", "envs"] {
            let Ok(entries) = std::fs::read_dir(state.join(dir)) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "json") {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    if serde_json::from_str::<Value>(&text).is_err() {
                        return Err(format!("unparseable record {}", path.display()));
                    }
                }
            }
        }
        if !state.join("ledger.jsonl").exists() {
            return Ok(());
        }
        let ledger = StateDir::open(state)
            .map_err(|e| format!("state directory: {e}"))?
            .ledger();
        let events = ledger.read_events().map_err(|e| format!("ledger: {e}"))?;
        // Every promotion cites a passing check of its source environment with exactly its
        // digests.
        for recorded in &events {
            let Event::Promoted(promoted) = &recorded.event else {
                continue;
            };
            let cited = promoted
                .evidence
                .checked_seq
                .and_then(|seq| events.iter().find(|r| r.entry.seq == seq).map(|r| &r.event));
            let passing = match cited {
                Some(Event::Checked(check)) => {
                    check.failed == 0
                        && check.passed >= 1
                        && check.env == promoted.evidence.source_env
                        && check.digests == promoted.digests
                }
                _ => false,
            };
            if !passing {
                return Err(format!(
                    "promotion seq {} without a passing gate",
                    recorded.entry.seq
                ));
            }
        }
        Ok(())
    }

    /// Was `version` promoted, by the ledger?
    fn promoted(&self, state: &Path, version: &str) -> bool {
        StateDir::open(state)
            .ok()
            .and_then(|s| s.ledger().read_events().ok())
            .is_some_and(|events| {
                events
                    .iter()
                    .any(|r| matches!(&r.event, Event::Promoted(p) if p.version == version))
            })
    }

    fn ledger_lines(state: &Path) -> usize {
        std::fs::read_to_string(state.join("ledger.jsonl"))
            .map(|t| t.lines().count())
            .unwrap_or(0)
    }

    /// The invariants, then: exit 0 with `ok` true, or a documented failure.
    fn judge(&mut self, scenario: &str, out: &Out, ok: bool) {
        match self.invariants(&self.state()) {
            Err(why) => self.record(scenario, false, &out.code.to_string(), &why),
            Ok(()) if out.code == 0 => {
                self.record(scenario, ok, "0", "exit 0 but the result is wrong");
            }
            Ok(()) if out.documented_failure() => {
                self.record(scenario, true, &out.code.to_string(), "");
            }
            Ok(()) => {
                let why = format!("exit {}: {}", out.code, out.head());
                self.record(scenario, false, &out.code.to_string(), &why);
            }
        }
    }

    /// After a SIGKILL: the invariants, then the same command re-run must succeed or
    /// refuse cleanly.
    fn after_kill(&mut self, scenario: &str, killed: &Out, after_ms: u64, rerun: &[&str]) {
        if let Err(why) = self.invariants(&self.state()) {
            let why = format!("after kill at {after_ms}ms: {why}");
            return self.record(scenario, false, &killed.code.to_string(), &why);
        }
        if killed.code != 137 && killed.code != 0 && !killed.documented_failure() {
            let why = format!("exit {} before the kill: {}", killed.code, killed.head());
            return self.record(scenario, false, &killed.code.to_string(), &why);
        }
        let out = self.rel(rerun);
        let codes = format!("{}/{}", killed.code, out.code);
        let clean =
            out.code == 0 || (out.documented_failure() && self.invariants(&self.state()).is_ok());
        let why = format!(
            "re-run `release {}` exit {}: {}",
            rerun.join(" "),
            out.code,
            out.head()
        );
        self.record(scenario, clean, &codes, &why);
    }

    fn mount_state(&mut self, size: &str) -> Option<PathBuf> {
        let m = self
            .work
            .join(format!("mnt{}-{}", self.n, self.rng.below(1 << 30)));
        std::fs::create_dir_all(&m).unwrap();
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&m)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            return None;
        }
        self.mounts.push(m.clone());
        let copied = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", self.state().display()))
            .arg(&m)
            .status()
            .is_ok_and(|s| s.success());
        copied.then_some(m)
    }

    fn unmount(&mut self, m: &Path) {
        let _ = Command::new("umount").arg(m).status();
        self.mounts.retain(|x| x != m);
    }
}

impl Drop for Campaign {
    fn drop(&mut self) {
        self.kill_registry();
        for m in self.mounts.clone() {
            let _ = Command::new("umount").arg(&m).status();
        }
        let _ = Command::new("docker")
            .args(["stack", "rm", &self.dev, &self.prod])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if std::env::var_os("CHAOS_KEEP").is_some() {
            eprintln!("kept {}", self.work.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.work);
        }
    }
}

fn docker(args: &[&str]) -> bool {
    Command::new("docker")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        setup_failed!(
            "{name} is not set: run `eval \"$(scripts/testbed env)\"` (scripts/chaos does)"
        )
    })
}

fn project_files(c: &Campaign) {
    let proj = c.work.join("proj");
    std::fs::create_dir_all(&proj).unwrap();
    let context = repo_root().join("examples/hestino/image");
    let config = format!(
        r#"[project]
name = "chaos"

[registry]
host = "registry.invalid"

[services.web]
repository = "{repo}"
context = "{context}"
build_args = {{ SERVICE = "web" }}

[environments.dev]
stack = "{dev}"
stack_file = "dev.yml"
deploy_timeout = "60s"

[[environments.dev.checks]]
kind = "http"
name = "web answers"
service = "web"
url = "http://127.0.0.1:{port}/health"
timeout = "2s"
retry_interval = "300ms"
deadline = "15s"

[environments.prod]
stack = "{prod}"
stack_file = "prod.yml"
promote_from = "dev"
deploy_timeout = "60s"
"#,
        repo = c.repo,
        context = context.display(),
        dev = c.dev,
        prod = c.prod,
        port = c.http_port,
    );
    std::fs::write(proj.join("release.toml"), config).unwrap();
    for (env, port) in [("dev", c.http_port), ("prod", c.http_port + 1)] {
        let stack = format!(
            r#"version: "3.8"
services:
  web:
    image: {repo}:0
    init: true
    stop_grace_period: 1s
    ports:
      - target: 8080
        published: {port}
        mode: host
    deploy:
      endpoint_mode: dnsrr
      update_config:
        monitor: 1s
        failure_action: rollback
      restart_policy:
        condition: any
        delay: 1s
"#,
            repo = c.repo
        );
        std::fs::write(proj.join(format!("{env}.yml")), stack).unwrap();
    }
}

/// The kill window of a command: its measured duration plus 20 %, so kills land uniformly
/// over the whole run, record writes at the end included.
fn timed(c: &Campaign, args: &[&str]) -> u64 {
    let t0 = Instant::now();
    let out = c.rel(args);
    if out.code != 0 {
        setup_failed!(
            "baseline `release {}` failed (exit {}):\n{}",
            args.join(" "),
            out.code,
            out.stderr
        );
    }
    let ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
    ms * 12 / 10 + 20
}

struct Sizes {
    push: u32,
    deploy: u32,
    check: u32,
    promote: u32,
    disk: u32,
    registry: u32,
    proxy: u32,
    rates: &'static [&'static str],
    free_kb: &'static [u64],
}

fn main() -> ExitCode {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let only = std::env::var("CHAOS_ONLY").ok().filter(|s| !s.is_empty());
    let want = |section: &str| only.as_deref().is_none_or(|o| o == section);
    let started = Instant::now();

    let port = std::env::var("CHAOS_REGISTRY_PORT").unwrap_or_else(|_| "5447".to_owned());
    let registry = format!("127.0.0.1:{port}");
    let listening = Command::new("ss").arg("-ltn").output().unwrap();
    if String::from_utf8_lossy(&listening.stdout).contains(&format!("{registry} ")) {
        setup_failed!("port {port} is taken; set CHAOS_REGISTRY_PORT");
    }
    let work = tempfile::Builder::new()
        .prefix("release-chaos.")
        .tempdir_in("/tmp")
        .unwrap()
        .keep();
    std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o700)).unwrap();
    let id = format!("chaos{}", std::process::id());
    let mut c = Campaign {
        release: release_binary(),
        work: work.clone(),
        registry: registry.clone(),
        ca: var("RELEASE_REGISTRY_CA"),
        user: var("RELEASE_REGISTRY_USERNAME"),
        password: var("RELEASE_REGISTRY_PASSWORD"),
        testbed_dir: PathBuf::from(var("RELEASE_TESTBED_DIR")),
        rng: Rng::new(seed),
        n: 0,
        version: String::new(),
        base: String::new(),
        base_digest: String::new(),
        repo: format!("chaos/{id}/web"),
        dev: format!("{id}-dev"),
        prod: format!("{id}-prod"),
        http_port: 34000 + u16::try_from(std::process::id() % 1000).unwrap(),
        extra_env: Vec::new(),
        registry_child: None,
        mounts: Vec::new(),
        order: Vec::new(),
        tallies: BTreeMap::new(),
        failures: Vec::new(),
    };

    // The campaign's own registry: the testbed's configuration on its own port and storage.
    let config = std::fs::read_to_string(c.testbed_dir.join("registry.yml"))
        .unwrap_or_else(|e| setup_failed!("the testbed's registry.yml: {e}"));
    let config: String = config
        .replace("127.0.0.1:5443", &registry)
        .lines()
        .map(|l| match l.find("rootdirectory:") {
            Some(i) => format!("{}rootdirectory: {}/registry-data", &l[..i], work.display()),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(work.join("registry.yml"), config + "\n").unwrap();
    let certs_d = PathBuf::from(format!("/etc/docker/certs.d/{registry}"));
    std::fs::create_dir_all(&certs_d).unwrap();
    std::fs::copy(&c.ca, certs_d.join("ca.crt")).unwrap();
    c.start_registry();
    project_files(&c);

    eprintln!(
        "chaos: building the image once (seed {seed}, work dir {})",
        work.display()
    );
    let built = c.rel(&["-q", "build", "--version", "0.0.0"]);
    if built.code != 0 {
        setup_failed!("build failed (exit {}):\n{}", built.code, built.stderr);
    }

    // ---- baseline: DEV deployed and checked, PROD promoted; each stage timed -------------
    c.base = c.next_version();
    let base = c.base.clone();
    let push_ms = timed(&c, &["push", "--version", &base]);
    let deploy_ms = timed(&c, &["deploy", "--env", "dev", "--version", &base]);
    let check_ms = timed(&c, &["check", "--env", "dev"]);
    let promote_ms = timed(&c, &["promote", "--version", &base, "--to", "prod"]);
    eprintln!(
        "chaos: baseline pipeline ok ({base}); kill windows ms: push {push_ms} deploy {deploy_ms} check {check_ms} promote {promote_ms}"
    );
    c.base_digest = c
        .true_digest(&base)
        .unwrap_or_else(|| setup_failed!("the registry serves no digest for {base}"));

    let sizes = if smoke {
        Sizes {
            push: 1,
            deploy: 1,
            check: 1,
            promote: 1,
            disk: 1,
            registry: 1,
            proxy: 2,
            rates: &["0.2"],
            free_kb: &[0],
        }
    } else {
        Sizes {
            push: 10,
            deploy: 5,
            check: 10,
            promote: 5,
            disk: 2,
            registry: 4,
            proxy: 8,
            rates: &["0.05", "0.2", "0.5"],
            free_kb: &[0, 4, 12],
        }
    };

    if want("kill") {
        sigkills(&mut c, &sizes, [push_ms, deploy_ms, check_ms, promote_ms]);
    }
    if want("disk") {
        disk(&mut c, &sizes);
    }
    if want("registry") {
        registry_restarts(&mut c, &sizes);
    }
    if want("proxy") {
        proxy(&mut c, &sizes, seed);
    }
    let daemon = std::env::var("CHAOS_DAEMON").is_ok_and(|v| v == "1");
    if daemon {
        daemon_restart(&mut c);
    }

    // ---- the table ------------------------------------------------------------------------
    println!("\n| scenario | runs | failures | result | exit codes seen |\n|---|---|---|---|---|");
    for s in &c.order {
        let t = &c.tallies[s];
        let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
        for code in &t.codes {
            *counts.entry(code.as_str()).or_default() += 1;
        }
        let codes: String = counts.iter().map(|(k, n)| format!("{k}×{n} ")).collect();
        let result = if t.failures > 0 { "FAIL" } else { "PASS" };
        println!("| {s} | {} | {} | {result} | {codes}|", t.runs, t.failures);
    }
    if !daemon {
        println!("| dockerd restart during deploy | 0 | - | not run (set CHAOS_DAEMON=1) | |");
    }
    println!(
        "\nseed {seed}, {} mode, {} s",
        if smoke { "smoke" } else { "full" },
        started.elapsed().as_secs()
    );
    if c.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("\n{} failure(s):", c.failures.len());
        for f in &c.failures {
            println!("{f}");
        }
        ExitCode::from(1)
    }
}

// ---- 1. SIGKILL of the CLI at a random moment of each writing command ----------------------
fn sigkills(c: &mut Campaign, sizes: &Sizes, [push_ms, deploy_ms, check_ms, promote_ms]: [u64; 4]) {
    const LOCK: [&str; 2] = ["--lock-timeout", "30s"];
    for _ in 0..sizes.push {
        let v = c.next_version();
        let args = ["push", "--version", &v];
        let (killed, after) = c.kill_at_random(push_ms, &args);
        c.after_kill("SIGKILL during push", &killed, after, &args);
    }
    for _ in 0..sizes.deploy {
        let v = c.next_version();
        c.rel(&["push", "--version", &v]);
        let args = ["deploy", "--env", "dev", "--version", &v, LOCK[0], LOCK[1]];
        let (killed, after) = c.kill_at_random(deploy_ms, &args);
        c.after_kill("SIGKILL during deploy", &killed, after, &args);
    }
    for _ in 0..sizes.check {
        let args = ["check", "--env", "dev"];
        let (killed, after) = c.kill_at_random(check_ms, &args);
        c.after_kill("SIGKILL during check", &killed, after, &args);
    }
    for _ in 0..sizes.promote {
        let v = c.next_version();
        c.rel(&["push", "--version", &v]);
        c.rel(&["deploy", "--env", "dev", "--version", &v]);
        let checked = c.rel(&["check", "--env", "dev"]);
        if checked.code != 0 {
            let code = checked.code.to_string();
            c.record("SIGKILL during promote", false, &code, "setup check failed");
            continue;
        }
        let args = ["promote", "--version", &v, "--to", "prod", LOCK[0], LOCK[1]];
        let (killed, after) = c.kill_at_random(promote_ms, &args);
        c.after_kill("SIGKILL during promote", &killed, after, &args);
    }
    // A promotion whose DEV check fails is refused (the gate, not a kill): never exit 0.
    let v = c.next_version();
    c.rel(&["push", "--version", &v]);
    c.rel(&["deploy", "--env", "dev", "--version", &v]);
    docker(&["service", "scale", &format!("{}_web=0", c.dev)]);
    for _ in 0..50 {
        let answered = Command::new("curl")
            .args(["-s", "-o", "/dev/null"])
            .arg(format!("http://127.0.0.1:{}/health", c.http_port))
            .status()
            .is_ok_and(|s| s.success());
        if !answered {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let state = c.state();
    let check = c.rel_in(
        &state,
        &[("RELEASE_REGISTRY_RETRIES", "1")],
        &["check", "--env", "dev"],
    );
    let promote = c.rel(&["promote", "--version", &v, "--to", "prod"]);
    let invariants = c.invariants(&state);
    let refused = check.code != 0 && promote.code == 1 && !c.promoted(&state, &v);
    let why = format!(
        "check exit {}, promote exit {} {}",
        check.code,
        promote.code,
        invariants.clone().err().unwrap_or_default()
    );
    c.record(
        "gate refuses after a failed check",
        refused && invariants.is_ok(),
        &promote.code.to_string(),
        &why,
    );
    docker(&["service", "scale", &format!("{}_web=1", c.dev)]);
    let base = c.base.clone();
    c.rel(&["deploy", "--env", "dev", "--version", &base]);
    c.rel(&["check", "--env", "dev"]);
}

// ---- 2. full disk and read-only state directory during record writes -----------------------
fn disk(c: &mut Campaign, sizes: &Sizes) {
    for _ in 0..sizes.disk {
        for &free_kb in sizes.free_kb {
            for op in ["push", "check"] {
                full_disk(c, op, free_kb);
            }
        }
    }
    for op in ["push", "check", "deploy", "promote"] {
        for _ in 0..sizes.disk {
            read_only(c, op);
        }
    }
}

fn full_disk(c: &mut Campaign, op: &str, free_kb: u64) {
    let s = format!("full disk during {op}");
    let Some(m) = c.mount_state("512k") else {
        return c.record(&s, false, "-", "cannot mount tmpfs");
    };
    // Fill the tmpfs, then leave `free_kb` KiB.
    let fill = m.join(".fill");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", &format!("of={}", fill.display()), "bs=1024"])
        .stderr(Stdio::null())
        .status();
    if free_kb > 0 {
        let _ = Command::new("truncate")
            .args(["-s", &format!("-{}", free_kb * 1024)])
            .arg(&fill)
            .status();
    }
    let _ = Command::new("sync").status();
    let v = if op == "push" {
        c.next_version()
    } else {
        String::new()
    };
    let args: Vec<&str> = if op == "push" {
        vec!["push", "--version", &v]
    } else {
        vec!["check", "--env", "dev"]
    };
    let mut before = Campaign::ledger_lines(&m);
    let mut out = c.rel_in(&m, &[], &args);
    // A ledger append often fits in the last page of the file: append until one does not.
    for _ in 0..12 {
        if !(op == "check" && out.code == 0 && c.invariants(&m).is_ok()) {
            break;
        }
        before = Campaign::ledger_lines(&m);
        out = c.rel_in(&m, &[], &args);
    }
    if out.code == 0 {
        // Enough room was left: the record must be whole.
        match c.invariants(&m) {
            Ok(()) => c.record(&s, true, "0", ""),
            Err(why) => c.record(&s, false, "0", &why),
        }
    } else if out.code == 3 && out.stderr.contains("No space left") {
        let _ = std::fs::remove_file(&fill);
        if let Err(why) = c.invariants(&m) {
            c.record(&s, false, "3", &why);
        } else if Campaign::ledger_lines(&m) != before {
            c.record(&s, false, "3", "a failed write changed the ledger");
        } else {
            let again = c.rel_in(&m, &[], &args);
            let ok = again.code == 0 && c.invariants(&m).is_ok();
            let why = format!(
                "re-run after freeing space: exit {} {}",
                again.code,
                again.head()
            );
            c.record(&s, ok, &format!("3/{}", again.code), &why);
        }
    } else {
        let why = format!("exit {}, stderr: {}", out.code, out.head());
        c.record(&s, false, &out.code.to_string(), &why);
    }
    c.unmount(&m);
}

fn read_only(c: &mut Campaign, op: &str) {
    let s = format!("read-only state dir during {op}");
    let Some(m) = c.mount_state("4m") else {
        return c.record(&s, false, "-", "cannot mount tmpfs");
    };
    let _ = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&m)
        .status();
    let base = c.base.clone();
    let v = if op == "push" {
        c.next_version()
    } else {
        String::new()
    };
    let args: Vec<&str> = match op {
        "push" => vec!["push", "--version", &v],
        "check" => vec!["check", "--env", "dev"],
        "deploy" => vec!["deploy", "--env", "dev", "--version", &base],
        _ => vec!["promote", "--version", &base, "--to", "prod"],
    };
    let out = c.rel_in(&m, &[], &args);
    if out.code == 3 && out.stderr.to_lowercase().contains("read-only file system") {
        let _ = Command::new("mount")
            .args(["-o", "remount,rw"])
            .arg(&m)
            .status();
        match c.invariants(&m) {
            Ok(()) => c.record(&s, true, "3", ""),
            Err(why) => c.record(&s, false, "3", &why),
        }
    } else {
        let why = format!("exit {}, stderr: {}", out.code, out.head());
        c.record(&s, false, &out.code.to_string(), &why);
    }
    c.unmount(&m);
}

// ---- 3. the registry killed and restarted mid-operation ------------------------------------
fn registry_restarts(c: &mut Campaign, sizes: &Sizes) {
    c.extra_env = vec![
        ("RELEASE_REGISTRY_RETRIES".into(), "4".into()),
        ("RELEASE_REGISTRY_RETRY_BASE_MS".into(), "200".into()),
    ];
    let base = c.base.clone();
    let state = c.state();
    for _ in 0..sizes.registry {
        let v = c.next_version();
        let out = c.registry_outage(1500, &["push", "--version", &v]);
        let pushed = std::fs::read_to_string(state.join(format!("releases/{v}.json")))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|r| r["services"]["web"]["digest"] == c.base_digest.as_str());
        c.judge("registry restart during push", &out, pushed);

        let image = format!("{}:{base}", c.repo);
        let out = c.registry_outage(300, &["image", "digest", "--verify", &image]);
        let right = out.stdout.contains(&c.base_digest);
        c.judge("registry restart during resolve", &out, right);

        let tag = format!("copy-{}-{}", c.n, c.rng.below(1 << 20));
        let destination = format!("{}:{tag}", c.repo);
        let out = c.registry_outage(300, &["image", "copy", &image, &destination]);
        let copied = c.true_digest(&tag).as_deref() == Some(c.base_digest.as_str());
        c.judge("registry restart during copy", &out, copied);

        c.rel(&["deploy", "--env", "dev", "--version", &v]);
        c.rel(&["check", "--env", "dev"]);
        let out = c.registry_outage(800, &["promote", "--version", &v, "--to", "prod"]);
        let promoted = c.promoted(&state, &v);
        c.judge("registry restart during promote", &out, promoted);
    }
    // The registry down for longer than the retry budget: a documented exit 3 naming the
    // registry, nothing recorded.
    let deployed = c.version.clone();
    c.kill_registry();
    c.extra_env = vec![("RELEASE_REGISTRY_RETRIES".into(), "2".into())];
    let v = c.next_version();
    let out = c.rel(&["push", "--version", &v]);
    let recorded = state.join(format!("releases/{v}.json")).exists();
    let invariants = c.invariants(&state);
    let ok = out.code == 3 && out.stderr.contains(&c.registry) && !recorded && invariants.is_ok();
    let why = format!(
        "exit {} {} {}",
        out.code,
        invariants.err().unwrap_or_default(),
        out.head()
    );
    c.record("registry down: push", ok, &out.code.to_string(), &why);

    let out = c.rel(&["image", "digest", &format!("{}:{base}", c.repo)]);
    let ok = out.code == 3 && out.stderr.contains(&c.registry);
    let why = format!("exit {} {}", out.code, out.head());
    c.record("registry down: resolve", ok, &out.code.to_string(), &why);

    let out = c.rel(&[
        "promote",
        "--version",
        &deployed,
        "--to",
        "prod",
        "--dry-run",
    ]);
    let invariants = c.invariants(&state);
    let ok = out.code == 3 && invariants.is_ok();
    let why = format!(
        "exit {} {} {}",
        out.code,
        invariants.err().unwrap_or_default(),
        out.head()
    );
    c.record(
        "registry down: promote gate fails closed",
        ok,
        &out.code.to_string(),
        &why,
    );
    c.start_registry();
    c.extra_env.clear();
}

// ---- 4. the proxy injecting resets, truncation, 503 and 429 --------------------------------
fn proxy(c: &mut Campaign, sizes: &Sizes, seed: u64) {
    let port = 35000 + std::process::id() % 1000;
    let through = format!("127.0.0.1:{port}");
    let config = c.work.join("proxy.toml");
    std::fs::write(
        &config,
        format!(
            "[project]\nname = \"chaos\"\n\n[registry]\nhost = \"{through}\"\ninsecure = true\n"
        ),
    )
    .unwrap();
    let config = config.display().to_string();
    let image = format!("{}:{}", c.repo, c.base);
    for rate in sizes.rates {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(c.work.join("proxy.log"))
            .unwrap();
        let mut proxy = Command::new("python3")
            .arg(repo_root().join("scripts/chaos.d/proxy.py"))
            .args([
                port.to_string().as_str(),
                &c.registry,
                &c.ca,
                rate,
                &seed.to_string(),
            ])
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| setup_failed!("cannot start the proxy: {e}"));
        for _ in 0..50 {
            let listening = Command::new("ss").arg("-ltn").output().unwrap();
            if String::from_utf8_lossy(&listening.stdout).contains(&format!("{through} ")) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let env = [
            ("RELEASE_CONFIG", config.as_str()),
            ("RELEASE_REGISTRY", through.as_str()),
        ];
        let state = c.state();
        for _ in 0..sizes.proxy {
            let out = c.rel_in(&state, &env, &["image", "digest", "--verify", &image]);
            let right = out.stdout.contains(&c.base_digest);
            c.judge(
                &format!("proxy faults at rate {rate}: resolve"),
                &out,
                right,
            );

            let tag = format!("p-{}-{}", c.n, c.rng.below(1 << 20));
            let destination = format!("{}:{tag}", c.repo);
            let out = c.rel_in(&state, &env, &["image", "copy", &image, &destination]);
            let copied = c.true_digest(&tag).as_deref() == Some(c.base_digest.as_str());
            c.judge(&format!("proxy faults at rate {rate}: copy"), &out, copied);
        }
        let _ = proxy.kill();
        let _ = proxy.wait();
    }
}

// ---- 5. the Docker daemon restarted during a deploy watch (opt-in) -------------------------
fn daemon_restart(c: &mut Campaign) {
    let s = "dockerd restart during deploy";
    let v = c.next_version();
    c.rel(&["push", "--version", &v]);
    let child = c.spawn(&["deploy", "--env", "dev", "--version", &v]);
    std::thread::sleep(Duration::from_millis(1000) + c.rng.ms_below(2000));
    let pgrep = Command::new("pgrep")
        .args(["-x", "dockerd"])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&pgrep.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    // Restart it exactly as it was started: same command line, same environment.
    let split = |bytes: Vec<u8>| -> Vec<String> {
        bytes
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect()
    };
    let args = split(std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default());
    let env = split(std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default());
    if args.is_empty() {
        let _ = Campaign::finish(child);
        return c.record(s, false, "-", "no dockerd found");
    }
    let _ = Command::new("kill").arg(&pid).status();
    while Path::new(&format!("/proc/{pid}")).exists() {
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/tmp/release-chaos-dockerd.log")
        .unwrap();
    let mut restart = Command::new(&args[0]);
    restart
        .args(&args[1..])
        .env_clear()
        .current_dir("/")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null());
    for pair in &env {
        if let Some((k, v)) = pair.split_once('=') {
            restart.env(k, v);
        }
    }
    // Detached: it must outlive the campaign, which never waits for it.
    std::os::unix::process::CommandExt::process_group(&mut restart, 0);
    #[allow(clippy::zombie_processes)]
    let _daemon = restart
        .spawn()
        .unwrap_or_else(|e| setup_failed!("cannot restart dockerd: {e}"));
    for _ in 0..120 {
        if docker(&["info"]) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = Campaign::finish(child);
    c.judge(s, &out, true);
    let retries = out
        .stderr
        .lines()
        .filter(|l| {
            let l = l.to_lowercase();
            l.contains("error") || l.contains("retry") || l.contains("reconnect")
        })
        .count();
    eprintln!(
        "chaos: deploy across the dockerd restart: exit {}; {retries} error/retry lines; last: {}",
        out.code,
        out.stderr.lines().last().unwrap_or_default()
    );
    let again = c.rel(&["deploy", "--env", "dev", "--version", &v]);
    c.judge(&format!("{s} (re-run)"), &again, true);
}
