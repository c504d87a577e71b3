//! Running the real `wrenn` binary in tests: a temporary home and config file per test, so
//! nothing reads or writes the real home directory, and helpers for its output.

#![allow(dead_code)] // each test binary uses part of this

pub mod pty;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_wrenn");

/// What a finished `wrenn` run left.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "wrenn failed: {self:?}");
        self
    }

    /// Neither stream shows a panic or a backtrace.
    #[track_caller]
    pub fn no_panic(&self) -> &Self {
        for text in [&self.stdout, &self.stderr] {
            assert!(
                !text.contains("panicked") && !text.contains("RUST_BACKTRACE"),
                "panic text in the output: {self:?}"
            );
        }
        self
    }
}

/// A `wrenn` invocation environment: its own HOME and config path, no inherited Wrenn
/// variables.
pub struct Wrenn {
    pub home: tempfile::TempDir,
    pub config: PathBuf,
    pub env: Vec<(String, String)>,
}

impl Wrenn {
    pub fn new() -> Self {
        let home = tempfile::tempdir().expect("temp home");
        let config = home.path().join("wrenn-conf/config.toml");
        Self {
            home,
            config,
            env: Vec::new(),
        }
    }

    /// The same home, another config file.
    pub fn with_config(&self, config: &Path) -> Self {
        let home = tempfile::tempdir().expect("temp home");
        Self {
            home,
            config: config.to_path_buf(),
            env: self.env.clone(),
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(BIN);
        cmd.env_remove("WRENN_URL")
            .env_remove("WRENN_API_KEY")
            .env_remove("XDG_CONFIG_HOME")
            .env("HOME", self.home.path())
            .env("WRENN_CONFIG", &self.config)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `wrenn ARGS` to the end (at most 5 minutes).
    pub async fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None).await
    }

    pub async fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut cmd = self.command();
        cmd.args(args);
        if stdin.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("spawn wrenn");
        if let Some(input) = stdin {
            use tokio::io::AsyncWriteExt;
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(input.as_bytes()).await.unwrap();
            drop(pipe);
        }
        let output = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("wrenn {args:?} ran over 5 minutes"))
            .expect("wrenn output");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// The mode bits of a file.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
