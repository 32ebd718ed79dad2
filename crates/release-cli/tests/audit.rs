//! `release audit` over real records: history, `--at` before, between and after deploys
//! and rollbacks, and `audit verify` catching every tampering of the ledger.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use verify::{EntryKind, StateDir};

const CONFIG: &str = "[project]\nname = \"hestino\"\n[registry]\nhost = \"r.example.com\"\n\
[services.api]\nrepository = \"hestino/api\"\ncontext = \".\"\n\
[environments.dev]\nstack = \"hestino-dev\"\nstack_file = \"stack.yml\"\n\
[environments.prod]\nstack = \"hestino-prod\"\nstack_file = \"stack.yml\"\npromote_from = \"dev\"\napproval_required = true\n";

fn digest(c: char) -> String {
    format!("sha256:{}", c.to_string().repeat(64))
}

struct Records {
    dir: tempfile::TempDir,
}

impl Records {
    fn new() -> Records {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("release.toml"), CONFIG).unwrap();
        std::fs::write(
            dir.path().join("stack.yml"),
            "services:\n  api:\n    image: x/api:1\n",
        )
        .unwrap();
        Records { dir }
    }

    fn state(&self) -> StateDir {
        StateDir::open(self.state_path()).unwrap()
    }

    fn state_path(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn ledger(&self) -> PathBuf {
        self.state_path().join("ledger.jsonl")
    }

    fn append(&self, kind: EntryKind, payload: serde_json::Value) -> OffsetDateTime {
        let entry = self
            .state()
            .ledger()
            .append(kind, "tester", payload)
            .unwrap();
        // Distinct timestamps, so "between" has room.
        std::thread::sleep(std::time::Duration::from_millis(20));
        entry.time
    }

    fn release(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_release"))
            .current_dir(self.dir.path())
            .arg("--state-dir")
            .arg(self.state_path())
            .args(args)
            .env_remove("RELEASE_CONFIG")
            .env_remove("RELEASE_REGISTRY")
            .output()
            .unwrap()
    }
}

fn at(t: OffsetDateTime, millis: i64) -> String {
    (t + time::Duration::milliseconds(millis))
        .format(&Rfc3339)
        .unwrap()
}

fn live_version(records: &Records, env: &str, when: &str) -> Option<String> {
    let out = records.release(&["--json", "audit", "--env", env, "--at", when]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    rows.as_array()
        .unwrap()
        .first()
        .map(|r| r["version"].as_str().unwrap().to_owned())
}

#[test]
fn audit_at_answers_before_between_and_after_deploys_and_rollbacks() {
    let r = Records::new();
    let t1 = r.append(
        EntryKind::Deployed,
        json!({"env": "dev", "version": "1.0.0", "digests": {"api": digest('a')}, "changed": ["api"], "stack_sha256": digest('9')}),
    );
    let t2 = r.append(
        EntryKind::Deployed,
        json!({"env": "dev", "version": "1.1.0", "digests": {"api": digest('b')}, "changed": ["api"], "stack_sha256": digest('9')}),
    );
    let t3 = r.append(
        EntryKind::Promoted,
        json!({"env": "prod", "version": "1.1.0", "digests": {"api": digest('b')}, "changed": ["api"], "stack_sha256": digest('9'), "approved_by": "alice", "evidence": {"source_env": "dev", "junit_sha256": "sha256:feed"}}),
    );
    let t4 = r.append(EntryKind::RolledBack, json!({"env": "dev", "from_version": "1.1.0", "to_version": "1.0.0", "version": "1.0.0", "digests": {"api": digest('a')}, "changed": ["api"], "stack_sha256": digest('9'), "trigger": "release rollback"}));

    assert_eq!(live_version(&r, "dev", &at(t1, -5)), None);
    assert_eq!(
        live_version(&r, "dev", &at(t1, 5)).as_deref(),
        Some("1.0.0")
    );
    assert_eq!(
        live_version(&r, "dev", &at(t2, 5)).as_deref(),
        Some("1.1.0")
    );
    assert_eq!(
        live_version(&r, "dev", &at(t4, -5)).as_deref(),
        Some("1.1.0")
    );
    assert_eq!(
        live_version(&r, "dev", &at(t4, 5)).as_deref(),
        Some("1.0.0")
    );
    assert_eq!(live_version(&r, "prod", &at(t3, -5)), None);
    assert_eq!(live_version(&r, "prod", "now").as_deref(), Some("1.1.0"));

    let out = r.release(&["audit", "--env", "prod"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("promoted") && table.contains("alice") && table.contains("sha256:feed"),
        "{table}"
    );
    assert!(table.contains(&digest('b')), "{table}");
}

#[test]
fn audit_at_rejects_a_time_it_cannot_read() {
    let r = Records::new();
    let out = r.release(&["audit", "--at", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an RFC 3339 time"));
}

/// A small deterministic generator, so a failing case can be replayed from its seed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

fn verify_at(records: &Records, head: &str) -> (i32, String) {
    let out = records.release(&["audit", "verify", "--expect-head", head]);
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn audit_verify_catches_every_randomised_tampering() {
    let r = Records::new();
    for i in 0..12 {
        r.append(
            EntryKind::Deployed,
            json!({"env": "dev", "version": format!("1.0.{i}"), "digests": {"api": digest('a')}, "changed": [], "stack_sha256": digest('9')}),
        );
    }
    let pristine = std::fs::read(r.ledger()).unwrap();
    let (code, out) = verify_at(&r, "unknown");
    assert_eq!(code, 1, "a wrong archived head must fail: {out}");
    let head = out
        .lines()
        .find_map(|l| l.strip_prefix("head: "))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(verify_at(&r, &head).0, 0);

    let lines: Vec<&[u8]> = pristine.split_inclusive(|&b| b == b'\n').collect();
    let mut rng = Lcg(0x5eed_1234);
    let cases = 200;
    let mut detected = 0;
    for case in 0..cases {
        let kind = case % 4;
        let mut edited: Vec<Vec<u8>> = lines.iter().map(|l| l.to_vec()).collect();
        let target = rng.below(edited.len());
        let expect_line = match kind {
            0 => {
                // Flip one byte inside the line (not its newline).
                let line = &mut edited[target];
                let pos = rng.below(line.len() - 1);
                line[pos] = if line[pos] == b'7' { b'8' } else { b'7' };
                if edited[target] == lines[target] {
                    continue;
                }
                Some(target + 1)
            }
            1 => {
                edited.remove(target);
                Some(target + 1)
            }
            2 => {
                let other = (target + 1 + rng.below(edited.len() - 1)) % edited.len();
                edited.swap(target, other);
                Some(target.min(other) + 1)
            }
            _ => {
                let mut bytes: Vec<u8> = edited.concat();
                let cut = rng.below(bytes.len() - 1) + 1;
                bytes.truncate(cut);
                edited = vec![bytes];
                None
            }
        };
        std::fs::write(r.ledger(), edited.concat()).unwrap();
        let (code, out) = verify_at(&r, &head);
        assert_eq!(
            code,
            1,
            "case {case} (kind {kind}, line {}) went undetected:\n{out}",
            target + 1
        );
        detected += 1;
        if let Some(line) = expect_line
            && let Some(reported) = out
                .lines()
                .find_map(|l| l.strip_prefix("chain: BROKEN at line "))
        {
            let reported: usize = reported
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                reported == line || reported == line + 1,
                "case {case} (kind {kind}): edit at line {line}, reported line {reported}\n{out}"
            );
        }
        std::fs::write(r.ledger(), &pristine).unwrap();
    }
    assert!(detected >= cases * 9 / 10, "only {detected} cases ran");
}

#[test]
fn audit_verify_names_an_edited_manifest() {
    let r = Records::new();
    let dir = r.state_path().join("releases");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = json!({"project": "hestino", "version": "1.0.0", "created": "2026-11-23T19:00:00Z", "git_commit": null, "jenkins": null,
        "services": {"api": {"repository": "r.example.com/hestino/api", "tag": "1.0.0", "digest": digest('a'), "platform": null}}});
    let manifest: verify::ReleaseManifest = serde_json::from_value(manifest).unwrap();
    r.state().record_release(&manifest, "tester").unwrap();
    assert_eq!(r.release(&["audit", "verify"]).status.code(), Some(0));
    let path = dir.join("1.0.0.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&digest('a'), &digest('b'));
    std::fs::write(&path, text).unwrap();
    let out = r.release(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("manifest 1.0.0 (released at seq 1)"),
        "{stdout}"
    );
    assert!(Path::new(&path).exists());
}

/// A records error carries its hint as data: on stderr after the message, and in the
/// `--json` error document's `hint`, where it was empty while hints were baked into the
/// message.
#[test]
fn a_records_error_carries_its_hint_in_json() {
    let records = Records::new();
    let out = records.release(&["--json", "deploy", "--env", "dev", "--version", "9.9.9"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let error = &doc["error"];
    assert_eq!(error["exit_code"], 2);
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("release 9.9.9 is not recorded"),
        "{message}"
    );
    assert!(!message.contains("hint"), "{message}");
    assert_eq!(error["hint"], "push release 9.9.9 first");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\n  hint: push release 9.9.9 first"),
        "{stderr}"
    );

    let out = records.release(&["--json", "deploy", "--env", "dev", "--version", "latest"]);
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["error"]["hint"].as_str().is_some_and(|h| !h.is_empty()),
        "{doc}"
    );
}
