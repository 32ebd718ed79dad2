//! Security review against the real testbed: canary secrets in every output channel, the
//! argv and environment of child processes, file permissions, TLS. The Docker-free parts
//! are in `crates/release-cli/tests/security.rs`; the findings are listed in RELIABILITY.md.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use release_e2e::{Project, Run, Testbed, example_dir};

/// A password in a check URL's userinfo (the demo service ignores it).
const URL_CANARY: &str = "canary-url-pw";

/// A one-service project: DEV answers an HTTP check that sends a secret header
/// (`env:E2E_SEC_TOKEN`) to a URL with a password; PROD is promoted from DEV.
fn project(bed: &Testbed) -> (Project, String, String) {
    let dev = bed.unique("secdev");
    let prod = bed.unique("secprod");
    let repo = format!("e2e/{dev}");
    let port = 33000 + (std::process::id() % 1000) as u16 * 2;
    let mut p = Project::new();
    p.remove_stack_on_drop(&dev);
    p.remove_stack_on_drop(&prod);
    p.write(
        "release.toml",
        &format!(
            "[project]\nname = \"e2e\"\n\n[registry]\nhost = \"registry.invalid\"\n\n\
             [services.web]\nrepository = \"{repo}/web\"\ncontext = \"{ctx}\"\nbuild_args = {{ SERVICE = \"web\" }}\n\n\
             [environments.dev]\nstack = \"{dev}\"\nstack_file = \"dev.yml\"\ndeploy_timeout = \"60s\"\n\n\
             [[environments.dev.checks]]\nkind = \"http\"\nname = \"web answers\"\nservice = \"web\"\n\
             url = \"http://probe:{URL_CANARY}@127.0.0.1:{port}/health\"\nheaders = {{ Authorization = \"env:E2E_SEC_TOKEN\" }}\n\
             timeout = \"2s\"\nretry_interval = \"500ms\"\ndeadline = \"20s\"\n\n\
             [environments.prod]\nstack = \"{prod}\"\nstack_file = \"prod.yml\"\npromote_from = \"dev\"\ndeploy_timeout = \"60s\"\n\n\
             [[environments.prod.checks]]\nkind = \"swarm\"\ndeadline = \"20s\"\n",
            ctx = example_dir().join("image").display()
        ),
    );
    for (file, published) in [("dev.yml", port), ("prod.yml", port + 1)] {
        p.write(
            file,
            &format!(
                "version: \"3.8\"\nservices:\n  web:\n    image: {repo}/web:0\n    init: true\n    stop_grace_period: 1s\n\
                 \x20   ports:\n      - target: 8080\n        published: {published}\n        mode: host\n\
                 \x20   deploy:\n      endpoint_mode: dnsrr\n      update_config:\n        monitor: 1s\n        failure_action: rollback\n\
                 \x20     restart_policy:\n        condition: any\n        delay: 1s\n"
            ),
        );
    }
    (p, dev, prod)
}

/// A `docker` first in PATH that logs its argv and the NAMES of its environment variables,
/// then runs the real one.
pub(crate) fn docker_wrapper(p: &Project) -> (PathBuf, String) {
    let real = std::process::Command::new("sh")
        .args(["-c", "command -v docker"])
        .output()
        .unwrap();
    let real = String::from_utf8(real.stdout).unwrap().trim().to_owned();
    let bin = p.dir().join("wrapper-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = p.dir().join("docker-argv.log");
    let script = bin.join("docker");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{{ printf 'ARGV'; for a in \"$@\"; do printf ' %s' \"$a\"; done; printf '\\nENV '; \
             env | cut -d= -f1 | tr '\\n' ' '; printf '\\n'; }} >> '{}'\nexec '{real}' \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    (log, path)
}

fn b64(bytes: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The forms a secret takes on the wire and in logs: raw, base64 of `user:secret` (Basic
/// auth), base64 of the secret, URL-encoded.
fn forms(user: &str, secret: &str) -> Vec<String> {
    let mut f = vec![
        secret.to_owned(),
        b64(format!("{user}:{secret}").as_bytes()),
        b64(secret.as_bytes()),
        url_encode(secret),
    ];
    // base64 without padding appears inside longer base64 strings too.
    f.iter_mut().for_each(|s| {
        let t = s.trim_end_matches('=').to_owned();
        *s = t;
    });
    f.dedup();
    f
}

fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap().flatten() {
                stack.push(e.path());
            }
        } else {
            out.push(p);
        }
    }
    out
}

fn assert_absent(canaries: &[String], channel: &str, text: &str) {
    for c in canaries {
        assert!(
            !text.contains(c.as_str()),
            "secret form {c:?} leaked into {channel}"
        );
    }
}

/// The whole pipeline at RUST_LOG=trace with the real registry password and a secret check
/// header: no form of either appears in stdout, stderr, JUnit, the ledger, manifests,
/// pointers or rendered stacks, nor on any `docker` command line. Every record is 0600 in
/// 0700 directories, JUnit files included. Findings (fixed): the `docker stack deploy` child
/// inherited RELEASE_REGISTRY_PASSWORD in its environment (engine::deploy::stack_deploy);
/// `check --junit` wrote a check URL's userinfo password into the JUnit XML
/// (verify::check::http::HttpProbe::target).
#[test]
fn secrets_never_reach_any_output_channel_nor_a_child_process() {
    let bed = Testbed::up();
    let (p, _dev, _prod) = project(&bed);
    let token = "Bearer canary-tok3n/+=%&secret";
    let (argv_log, path) = docker_wrapper(&p);
    let junit = p.dir().join("junit");
    std::fs::create_dir_all(&junit).unwrap();
    let vars = [
        ("RUST_LOG", "trace"),
        ("RUST_BACKTRACE", "1"),
        ("E2E_SEC_TOKEN", token),
        ("PATH", path.as_str()),
        ("RELEASE_REGISTRY_USERNAME", bed.username.as_str()),
        ("RELEASE_REGISTRY_PASSWORD", bed.password.as_str()),
        ("RELEASE_REGISTRY_CA", bed.ca.to_str().unwrap()),
    ];
    let mut canaries = forms(&bed.username, &bed.password);
    canaries.extend(forms("", token.trim_start_matches("Bearer ")));
    canaries.extend(forms("probe", URL_CANARY));
    let junit_arg = |name: &str| junit.join(name).display().to_string();
    let steps: Vec<Vec<String>> = vec![
        vec!["build".into(), "--version".into(), "1.0.0".into()],
        vec!["push".into(), "--version".into(), "1.0.0".into()],
        vec![
            "deploy".into(),
            "--env".into(),
            "dev".into(),
            "--version".into(),
            "1.0.0".into(),
            "--junit".into(),
            junit_arg("deploy.xml"),
        ],
        vec![
            "check".into(),
            "--env".into(),
            "dev".into(),
            "--junit".into(),
            junit_arg("check.xml"),
        ],
        vec![
            "promote".into(),
            "--version".into(),
            "1.0.0".into(),
            "--to".into(),
            "prod".into(),
            "--approved-by".into(),
            "alice".into(),
            "--junit".into(),
            junit_arg("promote.xml"),
        ],
        vec!["audit".into()],
        vec!["--json".into(), "audit".into(), "verify".into()],
        vec![
            "image".into(),
            "digest".into(),
            "--verify".into(),
            format!("{}/e2e/{}/web:1.0.0", bed.registry, _dev),
        ],
    ];
    for args in &steps {
        let run: Run = bed.release_with(p.dir(), &vars, args);
        run.success();
        let what = format!("`release {}`", args.join(" "));
        assert_absent(&canaries, &format!("stdout of {what}"), &run.stdout());
        assert_absent(&canaries, &format!("stderr of {what}"), &run.stderr());
    }

    // Records and JUnit: content and permissions.
    for file in files_under(&p.state_dir())
        .into_iter()
        .chain(files_under(&junit))
    {
        let bytes = std::fs::read(&file).unwrap();
        assert_absent(
            &canaries,
            &file.display().to_string(),
            &String::from_utf8_lossy(&bytes),
        );
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} has mode {mode:o}", file.display());
    }
    for dir in files_under(&p.state_dir())
        .iter()
        .filter_map(|f| f.parent())
        .chain([p.state_dir().as_path()])
    {
        let mode = std::fs::metadata(dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} has mode {mode:o}", dir.display());
    }
    assert!(
        files_under(&p.state_dir())
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "yml")),
        "no rendered stack was recorded"
    );

    // Child processes: `docker stack deploy` ran (twice), with no secret on its command line
    // and without the toolchain's password in its environment.
    let log = std::fs::read_to_string(&argv_log).unwrap_or_default();
    assert!(
        log.matches("ARGV stack deploy").count() >= 2,
        "docker stack deploy did not run through PATH:\n{log}"
    );
    assert_absent(&canaries, "a docker command line", &log);
    for line in log.lines().filter(|l| l.starts_with("ENV ")) {
        let names: Vec<&str> = line.split(' ').collect();
        assert!(
            !names.contains(&"RELEASE_REGISTRY_PASSWORD"),
            "RELEASE_REGISTRY_PASSWORD was passed to a docker child: {line}"
        );
    }
    for line in log.lines().filter(|l| l.starts_with("ARGV ")) {
        assert!(
            !line.contains("--password") && !line.contains(" login"),
            "credential-bearing docker command line: {line}"
        );
    }
}

/// A wrong password (a canary with characters that URL- and base64-encoding change) fails
/// the push and `image digest` alike with exit 2 and a hint, each saying authentication failed,
/// and no form of the canary appears on stdout or stderr at RUST_LOG=trace.
#[test]
fn a_wrong_canary_password_is_never_echoed_on_failure_paths() {
    let bed = Testbed::up();
    let (p, dev, _prod) = project(&bed);
    let canary = "canary-Wr0ng/p@ss+w%rd=";
    let vars = [
        ("RUST_LOG", "trace"),
        ("RUST_BACKTRACE", "1"),
        ("RELEASE_REGISTRY_USERNAME", bed.username.as_str()),
        ("RELEASE_REGISTRY_PASSWORD", canary),
        ("RELEASE_REGISTRY_CA", bed.ca.to_str().unwrap()),
        ("RELEASE_REGISTRY_RETRIES", "1"),
    ];
    let canaries = forms(&bed.username, canary);
    bed.release(&p, ["-q", "build", "--version", "1.0.0"])
        .success();
    let push = bed.release_with(p.dir(), &vars, ["push", "--version", "1.0.0"]);
    push.expect_code(2)
        .stderr_has("authentication required")
        .stderr_has("hint: check RELEASE_REGISTRY_USERNAME");
    let reference = format!("{}/e2e/{dev}/web:1.0.0", bed.registry);
    let digest = bed.release_with(p.dir(), &vars, ["image", "digest", reference.as_str()]);
    digest
        .expect_code(2)
        .stderr_has("authentication failed for registry");
    for run in [&push, &digest] {
        assert_absent(&canaries, "stdout", &run.stdout());
        assert_absent(&canaries, "stderr", &run.stderr());
    }
    assert!(
        !p.state_dir().join("releases/1.0.0.json").exists(),
        "a failed push recorded a release"
    );
}

/// TLS verification cannot be switched off from outside: with the registry's CA not
/// trusted, every knob other tools honour set, the call fails with exit 3 naming the host
/// and the certificate problem.
#[test]
fn tls_verification_cannot_be_silently_disabled() {
    let bed = Testbed::up();
    let p = Project::new();
    p.write(
        "release.toml",
        &format!(
            "[project]\nname = \"e2e\"\n\n[registry]\nhost = \"{}\"\n",
            bed.registry
        ),
    );
    let reference = format!("{}/e2e/none:1.0.0", bed.registry);
    let vars = [
        ("RELEASE_REGISTRY_USERNAME", bed.username.as_str()),
        ("RELEASE_REGISTRY_PASSWORD", bed.password.as_str()),
        // A CA bundle that does not contain the testbed's CA.
        ("RELEASE_REGISTRY_CA", "/etc/ssl/certs/ca-certificates.crt"),
        ("RELEASE_REGISTRY_RETRIES", "1"),
        ("RELEASE_INSECURE", "1"),
        ("RELEASE_REGISTRY_INSECURE", "true"),
        ("RELEASE_TLS_VERIFY", "0"),
        ("SSL_NO_VERIFY", "1"),
        ("NODE_TLS_REJECT_UNAUTHORIZED", "0"),
        ("GIT_SSL_NO_VERIFY", "1"),
        ("CURL_INSECURE", "1"),
        ("DOCKER_TLS_VERIFY", ""),
        ("PYTHONHTTPSVERIFY", "0"),
    ];
    bed.release_with(p.dir(), &vars, ["image", "digest", reference.as_str()])
        .expect_code(3)
        .stderr_has(&format!("TLS error talking to {}", bed.registry))
        .stderr_has("certificate");
}

/// Finding (fixed): `deploy --junit DIR/x.xml` into a directory that did not exist applied
/// and recorded the deploy, then exited 3, so Jenkins saw a failed deploy that had happened
/// (and `promote --junit` refused to start). Both now create the directory, like `check`.
#[test]
fn junit_into_a_missing_directory_does_not_turn_a_deploy_into_a_failure() {
    let bed = Testbed::up();
    let (p, _dev, _prod) = project(&bed);
    bed.release(&p, ["-q", "build", "--version", "1.0.0"])
        .success();
    bed.release(&p, ["-q", "push", "--version", "1.0.0"])
        .success();
    let junit = p.dir().join("not/yet/there/deploy.xml");
    bed.release(
        &p,
        [
            "deploy",
            "--env",
            "dev",
            "--version",
            "1.0.0",
            "--junit",
            junit.to_str().unwrap(),
        ],
    )
    .success();
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<testcase"), "{xml}");
    let gate = p.dir().join("also/missing/gate.xml");
    // The gate refuses (no check yet) but still writes its JUnit.
    bed.release(
        &p,
        [
            "promote",
            "--version",
            "1.0.0",
            "--to",
            "prod",
            "--dry-run",
            "--junit",
            gate.to_str().unwrap(),
        ],
    )
    .expect_code(1);
    assert!(gate.is_file(), "no gate JUnit written");
}

/// Finding (fixed in verify::release): a push whose `released` ledger append failed (a full
/// disk; here RLIMIT_FSIZE, so the ledger cannot grow while a small manifest still fits)
/// exited 3 but left `releases/V.json` behind with no ledger entry, so `audit verify`
/// reported the state directory broken until someone re-ran the push. Now a failed append
/// takes the manifest back: nothing is recorded, the ledger is intact, and a re-run records.
#[test]
fn a_push_that_cannot_append_to_the_ledger_records_nothing() {
    let bed = Testbed::up();
    let (p, dev, _prod) = project(&bed);
    bed.release(&p, ["-q", "build", "--version", "1.0.0"])
        .success();
    let image = format!("{}/e2e/{dev}/web", bed.registry);
    for v in ["1.0.1", "1.0.2"] {
        release_e2e::docker(["tag", &format!("{image}:1.0.0"), &format!("{image}:{v}")]);
    }
    bed.release(&p, ["-q", "push", "--version", "1.0.0"])
        .success();
    bed.release(&p, ["-q", "push", "--version", "1.0.1"])
        .success();
    let ledger = p.state_dir().join("ledger.jsonl");
    let before = std::fs::read(&ledger).unwrap();
    assert!(before.len() > 512, "the ledger must exceed the limit below");
    // 1 block of 512 bytes: a new manifest fits, an append to the ledger does not.
    let script = format!(
        "ulimit -f 1; trap '' XFSZ; exec '{}' push --version 1.0.2",
        release_e2e::release_binary().display()
    );
    let mut cmd = std::process::Command::new("sh");
    cmd.args(["-c", &script])
        .current_dir(p.dir())
        .env("RELEASE_CONFIG", p.config())
        .env("RELEASE_STATE_DIR", p.state_dir())
        .env("RELEASE_REGISTRY", &bed.registry)
        .env("NO_COLOR", "1");
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("ledger.jsonl"), "{stderr}");
    assert_eq!(
        std::fs::read(&ledger).unwrap(),
        before,
        "the ledger changed"
    );
    assert!(
        !p.state_dir().join("releases/1.0.2.json").exists(),
        "a failed push left its manifest behind"
    );
    bed.release(&p, ["audit", "verify"])
        .success()
        .stdout_has("chain: intact");
    bed.release(&p, ["-q", "push", "--version", "1.0.2"])
        .success();
    bed.release(&p, ["audit", "verify"]).success();
}
