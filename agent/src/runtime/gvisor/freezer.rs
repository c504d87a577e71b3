//! Freezing a sandbox in place through the host's cgroup freezer.
//!
//! `runsc pause` stops the sentry's tasks from inside gVisor; a checkpoint taken after a
//! `runsc pause`/`runsc resume` cycle sometimes wrote an image that did not restore (a fork
//! of such a snapshot stopped at once). The cgroup freezer stops the sandbox's host threads
//! instead: gVisor never learns of it, so the sentry's state after a thaw is exactly what it
//! was before the freeze, and a later checkpoint is an ordinary one.
//!
//! cgroup v1: `freezer.state` of the sandbox's `freezer` group (`FROZEN`/`THAWED`, reading
//! `FREEZING` while in progress). cgroup v2: `cgroup.freeze` (`1`/`0`) of its group, with
//! `frozen 1` in `cgroup.events` once done. A frozen v1 task holds even SIGKILL until thawed,
//! so the driver thaws a frozen sandbox before killing it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a freeze may take to settle.
const SETTLE: Duration = Duration::from_secs(5);

/// The freezer of one sandbox's cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freezer {
    /// `freezer.state` of a v1 freezer group.
    V1(PathBuf),
    /// The v2 group directory (`cgroup.freeze`, `cgroup.events`).
    V2(PathBuf),
}

impl Freezer {
    /// The freezer of runsc container `cid`'s sandbox, at runsc's default cgroup path (the
    /// container id), when the host has one. Found without asking runsc: `runsc state` of a
    /// sandbox frozen this way does not answer until it is thawed.
    pub fn of_container(cid: &str) -> Option<Freezer> {
        Self::at(Path::new("/sys/fs/cgroup"), cid)
    }

    fn at(root: &Path, cid: &str) -> Option<Freezer> {
        let v1 = root.join("freezer").join(cid).join("freezer.state");
        if v1.exists() {
            return Some(Freezer::V1(v1));
        }
        [root.join(cid), root.join("unified").join(cid)]
            .into_iter()
            .find(|d| d.join("cgroup.freeze").exists())
            .map(Freezer::V2)
    }

    /// The freezer of process `pid`'s cgroup, when the host has one.
    #[cfg(test)]
    pub fn of_pid(pid: i32) -> Option<Freezer> {
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        Self::from_cgroups(Path::new("/sys/fs/cgroup"), &cgroups)
    }

    /// The freezer named by a `/proc/<pid>/cgroup` text under the cgroup mount `root`: the v1
    /// `freezer` controller when mounted, else the v2 group (at `root` or `root/unified`).
    #[cfg(test)]
    fn from_cgroups(root: &Path, cgroups: &str) -> Option<Freezer> {
        let mut v2 = None;
        for line in cgroups.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let rel = path.trim_start_matches('/');
            if controllers.split(',').any(|c| c == "freezer") {
                let state = root.join("freezer").join(rel).join("freezer.state");
                if state.exists() {
                    return Some(Freezer::V1(state));
                }
            }
            if controllers.is_empty() && !rel.is_empty() {
                v2 = [root.join(rel), root.join("unified").join(rel)]
                    .into_iter()
                    .find(|d| d.join("cgroup.freeze").exists())
                    .map(Freezer::V2);
            }
        }
        v2
    }

    /// Whether the group is frozen (or freezing).
    pub fn is_frozen(&self) -> bool {
        match self {
            Freezer::V1(state) => std::fs::read_to_string(state)
                .map(|s| matches!(s.trim(), "FROZEN" | "FREEZING"))
                .unwrap_or(false),
            Freezer::V2(dir) => std::fs::read_to_string(dir.join("cgroup.freeze"))
                .map(|s| s.trim() == "1")
                .unwrap_or(false),
        }
    }

    fn settled(&self, frozen: bool) -> bool {
        match self {
            Freezer::V1(state) => std::fs::read_to_string(state)
                .map(|s| s.trim() == if frozen { "FROZEN" } else { "THAWED" })
                .unwrap_or(false),
            Freezer::V2(dir) => std::fs::read_to_string(dir.join("cgroup.events"))
                .map(|s| {
                    s.lines()
                        .any(|l| l.trim() == if frozen { "frozen 1" } else { "frozen 0" })
                })
                .unwrap_or(false),
        }
    }

    async fn set(&self, frozen: bool) -> std::io::Result<()> {
        let (file, value) = match self {
            Freezer::V1(state) => (state.clone(), if frozen { "FROZEN" } else { "THAWED" }),
            Freezer::V2(dir) => (dir.join("cgroup.freeze"), if frozen { "1" } else { "0" }),
        };
        tokio::fs::write(&file, value).await?;
        let started = Instant::now();
        while !self.settled(frozen) {
            if started.elapsed() > SETTLE {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("{} did not settle within {SETTLE:?}", file.display()),
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(())
    }

    /// Freezes every task of the group and waits until they are.
    pub async fn freeze(&self) -> std::io::Result<()> {
        let result = self.set(true).await;
        if result.is_err() {
            // Never leave a half-frozen sandbox behind.
            let _ = self.set(false).await;
        }
        result
    }

    /// Lets the group run again.
    pub async fn thaw(&self) -> std::io::Result<()> {
        self.set(false).await
    }
}

#[cfg(test)]
mod tests {
    use super::Freezer;
    use std::path::Path;

    #[test]
    fn finds_the_freezer_of_either_cgroup_version() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("freezer/wrenn-sb_1")).unwrap();
        std::fs::write(root.join("freezer/wrenn-sb_1/freezer.state"), "THAWED\n").unwrap();
        let v1 = "12:memory:/wrenn-sb_1\n7:freezer:/wrenn-sb_1\n0::/user.slice\n";
        assert_eq!(
            Freezer::from_cgroups(root, v1),
            Some(Freezer::V1(root.join("freezer/wrenn-sb_1/freezer.state")))
        );
        std::fs::create_dir_all(root.join("unified/wrenn-sb_2")).unwrap();
        std::fs::write(root.join("unified/wrenn-sb_2/cgroup.freeze"), "0\n").unwrap();
        let v2 = "0::/wrenn-sb_2\n";
        assert_eq!(
            Freezer::from_cgroups(root, v2),
            Some(Freezer::V2(root.join("unified/wrenn-sb_2")))
        );
        assert_eq!(Freezer::from_cgroups(Path::new("/nonexistent"), v1), None);
        assert_eq!(Freezer::from_cgroups(root, "garbage"), None);
        // By container id, as runsc names the groups.
        assert_eq!(
            Freezer::at(root, "wrenn-sb_1"),
            Some(Freezer::V1(root.join("freezer/wrenn-sb_1/freezer.state")))
        );
        assert_eq!(
            Freezer::at(root, "wrenn-sb_2"),
            Some(Freezer::V2(root.join("unified/wrenn-sb_2")))
        );
        assert_eq!(Freezer::at(root, "wrenn-sb_3"), None);
        assert!(Freezer::of_pid(0).is_none());
    }
}
