//! Writes a realistic ledger of N entries (a deploy to dev, a passing check, a promotion to
//! prod, a passing prod check; repeated; release manifests are not generated), one second apart and ending now, for the audit
//! benchmarks: `cargo run --release -p verify --example generate-ledger -- STATE_DIR N`.
//!
//! Lines are written in the ledger's exact format and hash chain, but in one buffered write
//! instead of N locked, fsynced appends (which would take minutes); `release audit verify`
//! checks the result like any other ledger.

use std::io::Write;
use std::process::ExitCode;

use serde_json::json;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use verify::StateDir;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(count)) = (args.get(1), args.get(2).and_then(|n| n.parse::<u64>().ok()))
    else {
        eprintln!("usage: generate-ledger STATE_DIR ENTRIES");
        return ExitCode::from(2);
    };
    let state = match StateDir::open(dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(3);
        }
    };
    let start = OffsetDateTime::now_utc() - Duration::seconds(count as i64);
    let mut out = Vec::new();
    let mut prev = verify::ledger::GENESIS_PREV.to_owned();
    let services = ["api", "admin-api", "app", "admin-app", "worker", "redis"];
    let mut written = 0;
    let mut release = 0u64;
    while written < count {
        release += 1;
        let version = format!("1.{}.{}", release / 1000, release % 1000);
        let digests: serde_json::Map<String, serde_json::Value> = services
            .iter()
            .map(|s| {
                (
                    s.to_string(),
                    json!(format!("sha256:{:064x}", release * 31 + s.len() as u64)),
                )
            })
            .collect();
        let steps = [
            (
                "deployed",
                json!({"env": "dev", "version": version, "digests": digests, "previous_version": null, "stack_sha256": format!("sha256:{:064x}", release + 7)}),
            ),
            (
                "checked",
                json!({"env": "dev", "version": version, "digests": digests, "passed": 9, "failed": 0, "junit_sha256": format!("sha256:{:064x}", release + 9)}),
            ),
            (
                "promoted",
                json!({"env": "prod", "version": version, "digests": digests, "approved_by": "alice", "evidence": {"checked_seq": written + 2, "junit_sha256": format!("sha256:{:064x}", release + 9)}}),
            ),
            (
                "checked",
                json!({"env": "prod", "version": version, "digests": digests, "passed": 9, "failed": 0, "junit_sha256": format!("sha256:{:064x}", release + 11)}),
            ),
        ];
        for (kind, payload) in steps {
            if written == count {
                break;
            }
            written += 1;
            let time = (start + Duration::seconds(written as i64))
                .format(&Rfc3339)
                .unwrap_or_default();
            let line = json!({"seq": written, "time": time, "actor": "jenkins:hestino/main#1",
                "kind": kind, "payload": payload, "prev": prev});
            let line = line.to_string();
            prev = format!("sha256:{}", hex::encode(Sha256::digest(line.as_bytes())));
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
    }
    let written_ok = std::fs::File::create(state.ledger_path())
        .and_then(|mut f| f.write_all(&out).and_then(|()| f.sync_all()));
    if let Err(e) = written_ok {
        eprintln!("cannot write {}: {e}", state.ledger_path().display());
        return ExitCode::from(3);
    }
    println!("{written} entries in {}", state.ledger_path().display());
    ExitCode::SUCCESS
}
