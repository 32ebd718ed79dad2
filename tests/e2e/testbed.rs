use std::process::Command;

use release_e2e::{Testbed, repo_root};

fn testbed_up() -> (String, String) {
    let out = Command::new(repo_root().join("scripts/testbed"))
        .arg("up")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn dockerd_pid() -> String {
    let out = Command::new("pidof").arg("dockerd").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn testbed_up_on_a_running_testbed_changes_nothing() {
    let _bed = Testbed::up();
    let pid_before = dockerd_pid();
    let (stderr, _) = testbed_up();
    for word in ["started:", "created:", "installing"] {
        assert!(
            !stderr.contains(word),
            "second `up` changed something:\n{stderr}"
        );
    }
    assert!(stderr.contains("leaving it alone"), "{stderr}");
    assert_eq!(dockerd_pid(), pid_before, "the running daemon was replaced");
}
