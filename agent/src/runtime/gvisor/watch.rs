//! Noticing a sandbox that ended on its own (killed for its memory, crashed).
//!
//! After every start the driver notes the sandbox's host process (id and start time, so a
//! reused pid is not mistaken for it) and its memory cgroup. Checking is then a read of
//! `/proc/<pid>/stat`; only a process that is gone costs a `runsc state` to confirm. The
//! memory cgroup outlives the sandbox until `runsc delete`, and its `oom_kill` counter says
//! whether the host's OOM killer ended it.

use std::path::{Path, PathBuf};

/// A sandbox process being watched.
#[derive(Debug, Clone)]
pub struct Watched {
    pid: i32,
    start: u64,
    /// The cgroup file holding the `oom_kill` counter (v1 `memory.oom_control`, v2
    /// `memory.events`).
    oom_counter: Option<PathBuf>,
}

impl Watched {
    /// The process `pid` as it is now; None when it does not exist.
    pub fn observe(pid: i32) -> Option<Watched> {
        if pid <= 0 {
            return None;
        }
        let start = start_time(pid)?;
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        Some(Watched {
            pid,
            start,
            oom_counter: oom_counter(Path::new("/sys/fs/cgroup"), &cgroups),
        })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the watched process still runs (the same process, not a reused pid).
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }

    /// Whether the host's OOM killer killed a process of the sandbox's memory cgroup.
    pub fn oom_killed(&self) -> bool {
        self.oom_counter
            .as_deref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .is_some_and(|text| oom_kills(&text) > 0)
    }
}

/// Whether the host's OOM killer killed a process of runsc container `cid`'s memory cgroup,
/// found by runsc's default cgroup path (the container id), for a sandbox whose process was
/// never observed (adopted after an agent restart, already gone).
pub fn oom_killed_container(cid: &str) -> bool {
    let root = Path::new("/sys/fs/cgroup");
    [
        root.join("memory").join(cid).join("memory.oom_control"),
        root.join(cid).join("memory.events"),
    ]
    .iter()
    .filter_map(|p| std::fs::read_to_string(p).ok())
    .any(|text| oom_kills(&text) > 0)
}

/// Field 22 of `/proc/<pid>/stat` (start time in clock ticks since boot); None when the
/// process does not exist or has ended (a zombie waiting for its parent counts as ended).
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    if matches!(fields.next(), Some("Z" | "X" | "x")) {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// The `oom_kill` counter file for a process with `/proc/<pid>/cgroup` text `cgroups`, under
/// the cgroup mount `root`: the v1 memory controller when mounted, else the v2 group.
fn oom_counter(root: &Path, cgroups: &str) -> Option<PathBuf> {
    let mut v2 = None;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let rel = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            return Some(root.join("memory").join(rel).join("memory.oom_control"));
        }
        if controllers.is_empty() {
            v2 = Some(root.join(rel).join("memory.events"));
        }
    }
    v2.filter(|p| p.exists())
}

/// The `oom_kill` value of a `memory.oom_control` / `memory.events` text.
fn oom_kills(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_oom_counter_of_either_cgroup_version() {
        let root = Path::new("/sys/fs/cgroup");
        let v1 = "9:name=systemd:/wrenn-a\n4:memory:/wrenn-a\n1:cpu:/wrenn-a\n0::/\n";
        assert_eq!(
            oom_counter(root, v1),
            Some(root.join("memory/wrenn-a/memory.oom_control"))
        );
        // v2: only when the group exists (the test machine's root group has memory.events
        // only on v2 hosts, so use a directory that surely lacks it).
        assert_eq!(
            oom_counter(Path::new("/nonexistent"), "0::/wrenn-b\n"),
            None
        );
    }

    #[test]
    fn reads_the_oom_kill_counter() {
        assert_eq!(
            oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"),
            1
        );
        assert_eq!(oom_kills("low 0\nhigh 0\nmax 3\noom 2\noom_kill 0\n"), 0);
        assert_eq!(oom_kills(""), 0);
    }

    #[test]
    fn watches_a_live_process_and_notices_its_end() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let w = Watched::observe(child.id() as i32).expect("a live child is observable");
        assert!(w.alive());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!w.alive(), "a reaped process is gone");
        assert!(Watched::observe(i32::MAX).is_none());
    }
}
