//! Invoking the `runsc` binary.
//!
//! Every call carries the same global flags (state root, platform, network, overlay,
//! host sockets), because runsc requires a restore to use the flags of the checkpoint
//! and `runsc state` to see the same root as `runsc run`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::runtime::RuntimeError;

/// How runsc is invoked on this host.
#[derive(Debug, Clone)]
pub struct Runsc {
    pub binary: PathBuf,
    pub root: PathBuf,
    pub platform: String,
    pub network: String,
    pub overlay: String,
}

/// Flags of one capsule's `run`/`restore` that differ between capsules.
#[derive(Debug, Clone)]
pub struct Launch {
    /// `--overlay2` value (the capsule's own disk, or the host's medium).
    pub overlay: String,
}

/// Output of a finished runsc call.
pub struct Output {
    pub stdout: String,
}

impl Runsc {
    fn command(&self) -> Command {
        self.command_with(&self.overlay)
    }

    fn command_with(&self, overlay: &str) -> Command {
        let mut cmd = Command::new(&self.binary);
        // Operators chasing a runsc problem: WRENN_RUNSC_DEBUG_DIR=/path gives every runsc
        // command and sandbox its own debug log there.
        if let Some(dir) = std::env::var_os("WRENN_RUNSC_DEBUG_DIR") {
            let dir = PathBuf::from(dir);
            cmd.arg("--debug")
                .arg(format!("--debug-log={}/", dir.display()));
        }
        cmd.arg(format!("--root={}", self.root.display()))
            .arg(format!("--platform={}", self.platform))
            .arg(format!("--network={}", self.network));
        if self.network == "sandbox" {
            // Open TCP connections are reset at checkpoint instead of refusing it
            // ("endpoint cannot be saved in connected state").
            cmd.arg("--net-disconnect-ok");
        }
        cmd.arg(format!("--overlay2={overlay}"))
            .arg("--host-uds=all")
            .arg("--cpu-num-from-quota")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `runsc <args>` and waits (bounded by `timeout`), returning stdout or a
    /// [`RuntimeError::Command`] with stderr.
    pub async fn run(
        &self,
        op: &'static str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<Output, RuntimeError> {
        let started = std::time::Instant::now();
        let result = self.run_timed(op, args, timeout).await;
        crate::telemetry::get().command(op, result.is_ok(), started.elapsed());
        result
    }

    async fn run_timed(
        &self,
        op: &'static str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<Output, RuntimeError> {
        let mut cmd = self.command();
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = cmd
            .spawn()
            .map_err(RuntimeError::io(format!("spawning runsc {op}")))?;
        let out = tokio::time::timeout(timeout, child.wait_with_output())
            .await
            .map_err(|_| RuntimeError::Command {
                op: format!("runsc {op}"),
                reason: format!("timed out after {timeout:?}"),
            })?
            .map_err(RuntimeError::io(format!("waiting for runsc {op}")))?;
        if !out.status.success() {
            return Err(RuntimeError::Command {
                op: format!("runsc {op}"),
                reason: last_lines(&String::from_utf8_lossy(&out.stderr)),
            });
        }
        Ok(Output {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        })
    }

    /// Runs a command that leaves a sandbox behind (`run --detach`, `restore --detach`).
    /// The sandbox must outlive the agent: it gets its own session, and its stdio goes
    /// to `log` instead of the agent's pipes.
    pub async fn run_detached(
        &self,
        op: &'static str,
        args: &[&str],
        log: &Path,
        timeout: Duration,
        launch: &Launch,
    ) -> Result<(), RuntimeError> {
        let started = std::time::Instant::now();
        let result = self.detached(op, args, log, timeout, launch).await;
        crate::telemetry::get().command(op, result.is_ok(), started.elapsed());
        result
    }

    async fn detached(
        &self,
        op: &'static str,
        args: &[&str],
        log: &Path,
        timeout: Duration,
        launch: &Launch,
    ) -> Result<(), RuntimeError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(RuntimeError::io(format!("opening {}", log.display())))?;
        let err = file
            .try_clone()
            .map_err(RuntimeError::io("cloning log handle"))?;
        let mut cmd = self.command_with(&launch.overlay);
        cmd.args(args).stdout(file).stderr(err).kill_on_drop(false);
        let mask = self.network == "sandbox";
        // SAFETY: setsid, unshare and mount are plain syscalls, async-signal-safe, and
        // touch no memory of the parent.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if mask {
                    mask_proc_sys_net()?;
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .map_err(RuntimeError::io(format!("spawning runsc {op}")))?;
        let status = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => status.map_err(RuntimeError::io(format!("waiting for runsc {op}")))?,
            Err(_) => {
                let _ = child.start_kill();
                return Err(RuntimeError::Command {
                    op: format!("runsc {op}"),
                    reason: format!("timed out after {timeout:?}"),
                });
            }
        };
        if !status.success() {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            return Err(RuntimeError::Command {
                op: format!("runsc {op}"),
                reason: last_lines(&text),
            });
        }
        Ok(())
    }

    /// Process ids of runsc commands that change containers (`run`, `restore`, `create`,
    /// `start`, `checkpoint`, `delete`) running against this state root: what a previous
    /// agent process left running when it died. Sandbox and gofer processes are not counted.
    pub fn commands_in_flight(&self) -> Vec<i32> {
        let root_flag = format!("--root={}", self.root.display());
        let mut pids = Vec::new();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return pids;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<&[u8]> = raw.split(|b| *b == 0).filter(|a| !a.is_empty()).collect();
            if !args.contains(&root_flag.as_bytes()) {
                continue;
            }
            // The first argument after argv[0] that is not a flag is the subcommand.
            let sub = args.iter().skip(1).find(|a| !a.starts_with(b"-"));
            if matches!(
                sub.map(|s| &s[..]),
                Some(b"run" | b"restore" | b"create" | b"start" | b"checkpoint" | b"delete")
            ) {
                pids.push(pid);
            }
        }
        pids
    }

    /// Whether runsc's state root holds `container` as a single-container sandbox, the only
    /// kind the agent creates (`<root>/<id>_sandbox:<id>.state`). A file check instead of
    /// `runsc state`, which would spawn runsc on every create.
    pub fn has_state(&self, container: &str) -> bool {
        self.root
            .join(format!("{container}_sandbox:{container}.state"))
            .exists()
    }

    /// `runsc state`: the container's status ("running", "stopped", ...), None if unknown.
    pub async fn status(&self, container: &str) -> Option<String> {
        self.state(container).await.map(|(status, _)| status)
    }

    /// `runsc state`: the container's status and its sandbox's host process id.
    pub async fn state(&self, container: &str) -> Option<(String, i32)> {
        let out = self
            .run("state", &["state", container], Duration::from_secs(10))
            .await
            .ok()?;
        let v: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
        let status = v.get("status").and_then(|s| s.as_str())?.to_owned();
        let pid = v.get("pid").and_then(|p| p.as_i64()).unwrap_or(0) as i32;
        Some((status, pid))
    }

    /// Container ids known to this runsc root.
    pub async fn list(&self) -> Result<Vec<String>, RuntimeError> {
        let out = self
            .run("list", &["list", "--quiet"], Duration::from_secs(10))
            .await?;
        Ok(out
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
    }

    /// Kills and deletes a container; absent containers are not an error. Processes of a
    /// sandbox that never registered with runsc (a start that hung) are killed too.
    pub async fn remove(&self, container: &str) {
        let t = Duration::from_secs(10);
        if self.status(container).await.as_deref() == Some("paused") {
            // A frozen sandbox takes no signals: let it run to be killed.
            let _ = self.run("resume", &["resume", container], t).await;
        }
        let _ = self
            .run("kill", &["kill", "--all", container, "KILL"], t)
            .await;
        if self
            .run("delete", &["delete", "--force", container], t)
            .await
            .is_err()
        {
            // A sandbox mid-exit can refuse the first delete.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = self
                .run("delete", &["delete", "--force", container], t)
                .await;
        }
        kill_container_processes(container);
    }
}

/// runsc releases before 2024-08 decide "am I in the root netns?" by looking for
/// `/proc/sys/net/core/rmem_default`, which recent kernels show in every netns, and then
/// refuse `--network=sandbox`. A private mount namespace with a tmpfs over `/proc/sys/net`
/// hides it from runsc alone (the host's mounts are untouched: propagation is private).
/// Called between fork and exec.
fn mask_proc_sys_net() -> std::io::Result<()> {
    // SAFETY: raw syscalls with static NUL-terminated strings.
    unsafe {
        if libc::unshare(libc::CLONE_NEWNS) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        if libc::mount(
            c"none".as_ptr(),
            c"/proc/sys/net".as_ptr(),
            c"tmpfs".as_ptr(),
            0,
            std::ptr::null(),
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Process ids of every runsc process whose command line names `container` as an argument
/// or as its bundle directory (container ids are unique and full-length, so this never
/// finds another capsule's).
fn container_processes(container: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let bundle_suffix = format!("/{container}");
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .collect();
        let is_runsc = args.first().is_some_and(|a| a.starts_with(b"runsc"));
        let names_it = args.iter().any(|a| {
            *a == container.as_bytes()
                || (a.starts_with(b"--bundle=") && a.ends_with(bundle_suffix.as_bytes()))
        });
        if is_runsc && names_it {
            found.push(pid);
        }
    }
    found
}

/// SIGKILLs every runsc process of `container` ([`container_processes`]).
pub fn kill_container_processes(container: &str) {
    for pid in container_processes(container) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// The tail of runsc's stderr, which is where it explains itself.
pub(super) fn last_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(3);
    let tail = lines[start..].join(" | ");
    if tail.is_empty() {
        "no output".into()
    } else {
        tail
    }
}
