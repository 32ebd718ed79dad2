use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use tempfile::TempDir;
use time::OffsetDateTime;
use verify::{Digest, JenkinsBuild, ReleaseManifest, ServiceImage, StateDir, Version};

/// Names the role a re-executed test binary plays.
pub const ROLE_VAR: &str = "VERIFY_TEST_CHILD_ROLE";
/// The state directory a child writes to.
pub const STATE_VAR: &str = "VERIFY_TEST_STATE_DIR";

pub fn temp_state() -> (TempDir, StateDir) {
    let dir = tempfile::tempdir().unwrap();
    let state = StateDir::open(dir.path().join("state")).unwrap();
    (dir, state)
}

/// A stable, valid digest derived from `seed`.
pub fn digest(seed: &str) -> Digest {
    Digest::of(seed.as_bytes())
}

pub fn version(v: &str) -> Version {
    Version::parse(v).unwrap()
}

/// A manifest for `version` whose service `s` has digest `digest("<s>@<seed>")`.
pub fn manifest(v: &str, services: &[(&str, &str)]) -> ReleaseManifest {
    ReleaseManifest {
        project: "hestino".into(),
        version: version(v),
        created: OffsetDateTime::now_utc(),
        git_commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        jenkins: Some(JenkinsBuild {
            build_url: "https://jenkins.example/job/hestino/42/".into(),
            build_number: 42,
            job_name: "hestino".into(),
        }),
        services: services
            .iter()
            .map(|&(name, seed)| {
                let image = ServiceImage {
                    repository: format!("127.0.0.1:5443/hestino/{name}"),
                    tag: v.into(),
                    digest: digest(&format!("{name}@{seed}")),
                    platform: Some("linux/amd64".into()),
                };
                (verify::ServiceName::parse(name).unwrap(), image)
            })
            .collect::<BTreeMap<_, _>>(),
    }
}

/// The five Hestino services, all built from `seed`.
pub fn hestino(v: &str, seed: &str) -> ReleaseManifest {
    let services: Vec<(&str, &str)> = ["api", "admin-api", "app", "admin-app", "worker"]
        .into_iter()
        .map(|s| (s, seed))
        .collect();
    manifest(v, &services)
}

/// Re-runs this test binary as a child playing `role` on `state`.
pub fn child(role: &str, state: &Path) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_process",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ROLE_VAR, role)
    .env(STATE_VAR, state);
    cmd
}

pub fn run_child_role() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let state = StateDir::open(PathBuf::from(std::env::var(STATE_VAR).unwrap())).unwrap();
    match role.as_str() {
        "append" => super::concurrency::append_role(&state),
        "crash-writer" => super::crash::writer_role(&state),
        other => panic!("unknown child role {other:?}"),
    }
}

/// A small deterministic PRNG (xorshift64*), so failures can be replayed from the seed.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `VERIFY_TEST_SEED` if set, else from the clock; prints the seed.
    pub fn from_env() -> Self {
        let seed = std::env::var("VERIFY_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("VERIFY_TEST_SEED={seed}");
        Self(seed)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}
