//! A throwaway project: a `release.toml`, stack files and a state directory in a temp dir,
//! and the Swarm stacks it deployed, removed when it is dropped.

use std::path::{Path, PathBuf};

use crate::docker;

pub struct Project {
    dir: tempfile::TempDir,
    /// (engine, stack): `None` is the agent's own engine.
    stacks: Vec<(Option<String>, String)>,
}

impl Project {
    /// An empty project directory; write files into it with [`Project::write`].
    pub fn new() -> Project {
        Project {
            dir: tempfile::Builder::new()
                .prefix("release-e2e-")
                .tempdir()
                .unwrap(),
            stacks: Vec::new(),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.dir().join("release.toml")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir().join("state")
    }

    /// Writes a file relative to the project directory.
    pub fn write(&self, relative: &str, contents: &str) -> PathBuf {
        let path = self.dir().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// Removes Swarm stack `stack` when the project is dropped, for stacks the test deploys
    /// through `release` rather than [`Project::docker_stack_deploy`].
    pub fn remove_stack_on_drop(&mut self, stack: &str) {
        self.stacks.push((None, stack.to_owned()));
    }

    /// Removes Swarm stack `stack` from the engine at `host` (`docker -H host`) when the
    /// project is dropped: for stacks deployed to one of the testbed's servers.
    pub fn remove_stack_on_drop_at(&mut self, host: &str, stack: &str) {
        self.stacks.push((Some(host.to_owned()), stack.to_owned()));
    }

    /// Deploys `stack_file` as Swarm stack `stack` with the plain Docker CLI, images taken
    /// as written; the stack is removed when the project is dropped.
    pub fn docker_stack_deploy(&mut self, stack: &str, stack_file: &str) {
        self.stacks.push((None, stack.to_owned()));
        let file = self.dir().join(stack_file);
        docker([
            "stack",
            "deploy",
            "--resolve-image",
            "never",
            "-c",
            file.to_str().unwrap(),
            stack,
        ]);
    }
}

impl Default for Project {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        for (host, stack) in &self.stacks {
            let mut cmd = std::process::Command::new("docker");
            if let Some(host) = host {
                cmd.args(["-H", host]);
            }
            let _ = cmd.args(["stack", "rm", stack]).output();
        }
    }
}
