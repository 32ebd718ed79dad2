//! Running `release` and asserting on what a user sees: exit code, stdout, stderr.

use std::process::{Command, Output};

/// A finished `release` run.
#[derive(Debug)]
pub struct Run {
    command: String,
    output: Output,
}

impl Run {
    pub(crate) fn new(mut cmd: Command) -> Run {
        let command = format!("{cmd:?}");
        let output = cmd.output().expect("run release");
        Run { command, output }
    }

    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    fn context(&self) -> String {
        format!(
            "command: {}\nexit: {}\n--- stdout\n{}--- stderr\n{}",
            self.command,
            self.code(),
            self.stdout(),
            self.stderr()
        )
    }

    /// Asserts the exit code.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            code,
            "unexpected exit code\n{}",
            self.context()
        );
        self
    }

    #[track_caller]
    pub fn success(&self) -> &Self {
        self.expect_code(0)
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout().contains(needle),
            "stdout lacks {needle:?}\n{}",
            self.context()
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr().contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.context()
        );
        self
    }

    /// stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.output.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{}", self.context()))
    }
}

/// A `release` run still in progress, its stderr lines stamped as they arrive: for fault
/// scenarios that act while the command runs and then ask when it said what.
pub struct Running {
    command: String,
    child: std::process::Child,
    started: std::time::Instant,
    lines: std::thread::JoinHandle<Vec<(std::time::Instant, String)>>,
    stdout: std::thread::JoinHandle<Vec<u8>>,
}

impl Running {
    pub(crate) fn spawn(mut cmd: Command) -> Running {
        use std::io::{BufRead, Read};
        let command = format!("{cmd:?}");
        let started = std::time::Instant::now();
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run release");
        let err = child.stderr.take().unwrap();
        let mut out = child.stdout.take().unwrap();
        let lines = std::thread::spawn(move || {
            std::io::BufReader::new(err)
                .lines()
                .map_while(Result::ok)
                .map(|l| (std::time::Instant::now(), l))
                .collect()
        });
        let stdout = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = out.read_to_end(&mut buf);
            buf
        });
        Running {
            command,
            child,
            started,
            lines,
            stdout,
        }
    }

    pub fn started(&self) -> std::time::Instant {
        self.started
    }

    /// Waits for the end; returns the run, when it ended, and every stderr line with the
    /// time it arrived.
    pub fn wait(mut self) -> (Run, std::time::Instant, Vec<(std::time::Instant, String)>) {
        let status = self.child.wait().expect("wait for release");
        let ended = std::time::Instant::now();
        let lines = self.lines.join().unwrap();
        let stdout = self.stdout.join().unwrap();
        let stderr = lines
            .iter()
            .map(|(_, l)| format!("{l}\n"))
            .collect::<String>()
            .into_bytes();
        let run = Run {
            command: self.command,
            output: Output {
                status,
                stdout,
                stderr,
            },
        };
        (run, ended, lines)
    }
}
