//! The signed ledger head, through real commands: `release push` signs `ledger.head` with
//! the `[ledger]` key after its `released` entry, and `release audit verify` (no archived
//! head, no `--expect-head`) catches an edit or the removal of the newest entry, a head
//! signed by a key it does not trust, and a missing head. A push whose key variable is
//! unset exits 2 and writes nothing. The key's text never appears in any output.

use std::path::PathBuf;
use std::process::Command;

use release_e2e::{Project, Run, Testbed, example_dir};
use verify::evidence::{Envelope, SigningKey};

const KEY_VAR: &str = "LEDGER_SIGNING_KEY";

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An Ed25519 key pair `keys/NAME.pem` and `keys/NAME.pub`.
fn keypair(project: &Project, name: &str) -> String {
    let dir = project.dir().join("keys");
    std::fs::create_dir_all(&dir).unwrap();
    let private = dir.join(format!("{name}.pem")).display().to_string();
    let public = dir.join(format!("{name}.pub")).display().to_string();
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", &private]);
    openssl(&["pkey", "-in", &private, "-pubout", "-out", &public]);
    std::fs::read_to_string(private).unwrap()
}

struct Ledgered {
    project: Project,
    key: String,
    /// Every run's stdout and stderr, to prove the key never appears in them.
    outputs: std::cell::RefCell<Vec<String>>,
}

impl Ledgered {
    fn new(bed: &Testbed) -> Ledgered {
        let repo = format!("e2e/{}/api", bed.unique("ledger"));
        let project = Project::new();
        let key = keypair(&project, "ledger");
        keypair(&project, "old");
        keypair(&project, "rogue");
        project.write("stack.yml", "services:\n  api:\n    image: x/api:1\n");
        let base = format!(
            "[project]\nname = \"e2e\"\n\n[registry]\nhost = \"registry.invalid\"\n\n\
             [services.api]\nrepository = \"{repo}\"\ncontext = \"{ctx}\"\nbuild_args = {{ SERVICE = \"api\" }}\n\n\
             [environments.e2e]\nstack = \"e2e\"\nstack_file = \"stack.yml\"\n",
            ctx = example_dir().join("image").display()
        );
        project.write(
            "release.toml",
            &format!(
                "{base}\n[ledger]\nkey_id = \"ledger-1\"\nsigning_key_env = \"{KEY_VAR}\"\n\
                 trust = [\n  {{ id = \"ledger-1\", public_key = \"keys/ledger.pub\" }},\n  {{ id = \"old\", public_key = \"keys/old.pub\", revoked = true }},\n]\n"
            ),
        );
        // The same project without `[ledger]`: the unkeyed chain alone.
        project.write("plain.toml", &base);
        Ledgered {
            project,
            key,
            outputs: std::cell::RefCell::new(Vec::new()),
        }
    }

    fn keep(&self, run: Run) -> Run {
        self.outputs
            .borrow_mut()
            .push(format!("{}\n{}", run.stdout(), run.stderr()));
        run
    }

    /// A run with the ledger key in its environment.
    fn with_key(&self, bed: &Testbed, args: &[&str]) -> Run {
        self.keep(bed.release_env(&self.project, &[(KEY_VAR, Some(self.key.as_str()))], args))
    }

    /// A run without the ledger key, as an auditor runs it.
    fn without_key(&self, bed: &Testbed, args: &[&str]) -> Run {
        self.keep(bed.release_env(&self.project, &[(KEY_VAR, None)], args))
    }

    fn ledger(&self) -> PathBuf {
        self.project.state_dir().join("ledger.jsonl")
    }

    fn head(&self) -> PathBuf {
        self.project.state_dir().join("ledger.head")
    }

    fn read(&self) -> (Vec<u8>, Vec<u8>) {
        (
            std::fs::read(self.ledger()).unwrap(),
            std::fs::read(self.head()).unwrap(),
        )
    }

    fn restore(&self, saved: &(Vec<u8>, Vec<u8>)) {
        std::fs::write(self.ledger(), &saved.0).unwrap();
        std::fs::write(self.head(), &saved.1).unwrap();
    }

    /// Replaces the head with its own payload signed by `keys/NAME.pem` under `key_id`.
    fn resign(&self, name: &str, key_id: &str) {
        let pem =
            std::fs::read_to_string(self.project.dir().join(format!("keys/{name}.pem"))).unwrap();
        let key = SigningKey::from_pem(&pem).unwrap();
        let old = Envelope::from_json(&std::fs::read(self.head()).unwrap()).unwrap();
        let forged = Envelope::sign(&old.payload_type, &old.payload, &key, key_id).unwrap();
        std::fs::write(self.head(), forged.to_json()).unwrap();
    }

    /// `audit verify` refuses, naming `cause` on its one `signed head:` line.
    #[track_caller]
    fn refused(&self, bed: &Testbed, cause: &str) -> Run {
        let run = self.without_key(bed, &["audit", "verify"]);
        run.expect_code(1);
        let line = run
            .stdout()
            .lines()
            .find(|l| l.starts_with("signed head: "))
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("no signed head line:\n{}", run.stdout()));
        assert!(line.starts_with("signed head: REFUSED: "), "{line}");
        assert!(line.contains(cause), "expected `{cause}` in: {line}");
        run
    }
}

#[test]
fn the_signed_head_catches_what_the_chain_cannot_without_an_archived_head() {
    let bed = Testbed::up();
    let l = Ledgered::new(&bed);
    for version in ["1.0.0", "1.0.1", "1.0.2"] {
        l.without_key(&bed, &["build", "--version", version])
            .success();
    }
    for version in ["1.0.0", "1.0.1"] {
        l.with_key(&bed, &["push", "--version", version]).success();
    }
    let ledger = std::fs::read_to_string(l.ledger()).unwrap();
    assert_eq!(ledger.lines().count(), 2, "{ledger}");

    // Intact: the head is signed by the trusted key and names entry 2. The auditor needs
    // no private key.
    l.without_key(&bed, &["audit", "verify"])
        .success()
        .stdout_has("chain: intact")
        .stdout_has("signed head: valid (seq 2, signed by key `ledger-1`)");
    let json = l.without_key(&bed, &["--json", "audit", "verify"]);
    json.success();
    let report = json.json();
    assert_eq!(report["intact"], true);
    assert_eq!(report["signed_head"]["signed_by"], "ledger-1");
    assert_eq!(report["signed_head"]["head"]["seq"], 2);
    assert_eq!(report["signed_head"]["head"]["hash"], report["head"]);
    assert_eq!(report["signed_head"]["problem"], serde_json::Value::Null);
    // Without `[ledger]`, the head is not checked and the JSON is as before.
    let plain = l.without_key(
        &bed,
        &["--config", "plain.toml", "--json", "audit", "verify"],
    );
    plain.success();
    assert!(
        plain.json().get("signed_head").is_none(),
        "{}",
        plain.stdout()
    );
    let saved = l.read();

    // Edit the newest entry (its actor), recomputing nothing. The unkeyed chain cannot
    // see it; the signed head does.
    let edited: Vec<String> = ledger
        .lines()
        .enumerate()
        .map(|(i, line)| {
            if i == 1 {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                let actor = value["actor"].as_str().unwrap().to_owned();
                assert!(line.contains(&format!("\"actor\":\"{actor}\"")), "{line}");
                line.replace(
                    &format!("\"actor\":\"{actor}\""),
                    "\"actor\":\"someone-else\"",
                )
            } else {
                line.to_owned()
            }
        })
        .collect();
    assert_ne!(edited.join("\n") + "\n", ledger);
    std::fs::write(l.ledger(), edited.join("\n") + "\n").unwrap();
    l.without_key(&bed, &["--config", "plain.toml", "audit", "verify"])
        .success()
        .stdout_has("chain: intact");
    let run = l.refused(&bed, "the newest ledger entry (seq 2, hash sha256:");
    run.stdout_has("chain: intact")
        .stdout_has("is not the one the signed head covers (head seq 2, hash sha256:");
    let json = l.without_key(&bed, &["--json", "audit", "verify"]);
    json.expect_code(1);
    let report = json.json();
    assert_eq!(report["intact"], false);
    assert_eq!(report["signed_head"]["problem"]["kind"], "mismatch");
    assert_eq!(report["signed_head"]["problem"]["ledger_seq"], 2);
    assert!(
        report["signed_head"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the newest ledger entry (seq 2")
    );

    // Remove the newest entry.
    l.restore(&saved);
    l.without_key(&bed, &["audit", "verify"]).success();
    let first = ledger.lines().next().unwrap();
    std::fs::write(l.ledger(), format!("{first}\n")).unwrap();
    l.refused(&bed, "the newest ledger entry (seq 1, hash sha256:")
        .stdout_has("(head seq 2, hash sha256:");

    // A head signed by another key: not trusted, revoked, or another key under the
    // trusted id.
    l.restore(&saved);
    l.resign("rogue", "rogue");
    l.refused(
        &bed,
        "ledger.head is signed by key `rogue`, which is not trusted",
    );
    l.resign("old", "old");
    l.refused(&bed, "ledger.head is signed by key `old`, which is revoked");
    l.resign("rogue", "ledger-1");
    l.refused(
        &bed,
        "the signature of key `ledger-1` on ledger.head does not verify",
    );

    // No head at all.
    l.restore(&saved);
    std::fs::remove_file(l.head()).unwrap();
    l.refused(&bed, "ledger.head is missing");

    // The key variable unset: the push exits 2 naming the variable, and writes nothing.
    l.restore(&saved);
    let run = l.without_key(&bed, &["push", "--version", "1.0.2"]);
    run.expect_code(2).stderr_has(KEY_VAR);
    assert_eq!(
        l.read(),
        saved,
        "a push without its ledger key wrote records"
    );
    assert!(!l.project.state_dir().join("releases/1.0.2.json").exists());

    // With the key, the next push signs the new head.
    l.with_key(&bed, &["push", "--version", "1.0.2"]).success();
    l.without_key(&bed, &["audit", "verify"])
        .success()
        .stdout_has("signed head: valid (seq 3, signed by key `ledger-1`)");

    // The private key's text appears in no output of any run.
    let body: Vec<&str> = l
        .key
        .lines()
        .filter(|line| !line.starts_with("-----") && !line.trim().is_empty())
        .collect();
    assert!(!body.is_empty());
    let outputs = l.outputs.borrow();
    assert!(outputs.len() >= 15, "{} runs", outputs.len());
    for output in outputs.iter() {
        for line in &body {
            assert!(
                !output.contains(line),
                "the ledger key appeared in:\n{output}"
            );
        }
        assert!(!output.contains("PRIVATE KEY"), "{output}");
    }
}
