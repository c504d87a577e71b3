//! The host's load as the heartbeat reports it: CPU busy share since the previous reading,
//! load average, memory and disk (of `WRENN_DIR`) in use, and capsules by state. Read from
//! `/proc` and `statvfs`; nothing is kept but the previous CPU counters.

use std::path::Path;
use std::sync::Mutex;

use wrenn_proto::host_http::HostLoad;

use super::Host;
use crate::capsules::State;

/// One value (kB) of a `/proc/meminfo` text, e.g. `MemAvailable:`.
pub fn meminfo_kib(meminfo: &str, key: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Busy and total jiffies of all CPUs from the `cpu` line of `/proc/stat` (idle and iowait
/// count as not busy).
fn cpu_times(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    if fields.len() < 4 {
        return None;
    }
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// The busy share (0–100) between two readings of [`cpu_times`].
fn busy_pct(before: (u64, u64), now: (u64, u64)) -> f64 {
    let busy = now.0.saturating_sub(before.0) as f64;
    let total = now.1.saturating_sub(before.1) as f64;
    if total <= 0.0 {
        0.0
    } else {
        (busy / total * 100.0).clamp(0.0, 100.0)
    }
}

/// Reads the host's load; keeps the CPU counters for the next reading's share.
#[derive(Default)]
pub struct LoadReader {
    previous: Mutex<Option<(u64, u64)>>,
}

impl LoadReader {
    pub fn read(&self, host: &Host) -> HostLoad {
        let now = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| cpu_times(&s));
        let cpu_pct = {
            let mut previous = self.previous.lock().unwrap();
            let pct = match (*previous, now) {
                (Some(before), Some(now)) => busy_pct(before, now),
                _ => 0.0,
            };
            *previous = now.or(*previous);
            pct
        };
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let load_avg_1m = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        let (disk_total_mb, disk_available_mb) = disk_mb(&host.wrenn_dir);
        let capsules = host.capsules.all();
        let count = |state: State| capsules.iter().filter(|c| c.state() == state).count() as u32;
        let pool = host.pool.reserved();
        HostLoad {
            cpu_pct,
            load_avg_1m,
            mem_total_mb: meminfo_kib(&meminfo, "MemTotal:").unwrap_or(0) / 1024,
            mem_available_mb: meminfo_kib(&meminfo, "MemAvailable:").unwrap_or(0) / 1024,
            disk_total_mb,
            disk_available_mb,
            capsules_running: count(State::Running),
            capsules_paused: count(State::Paused),
            pool_vcpus: pool.vcpus,
            pool_memory_mb: pool.memory_mb,
            pool_ready: pool.ready,
            pools: host.pool.loads(),
        }
    }
}

/// Total and available MiB of the filesystem holding `path`.
fn disk_mb(path: &Path) -> (u64, u64) {
    nix::sys::statvfs::statvfs(path)
        .map(|s| {
            let mb = |blocks: u64| blocks * s.fragment_size() / (1024 * 1024);
            (mb(s.blocks()), mb(s.blocks_available()))
        })
        .unwrap_or((0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_meminfo_values() {
        let text = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   1200 kB\n";
        assert_eq!(meminfo_kib(text, "MemTotal:"), Some(24_000_000));
        assert_eq!(meminfo_kib(text, "MemAvailable:"), Some(1200));
        assert_eq!(meminfo_kib(text, "SwapTotal:"), None);
    }

    #[test]
    fn cpu_share_between_two_readings() {
        let a = cpu_times("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(a, (200, 1000));
        let b = cpu_times("cpu  200 0 200 1200 200 0 0 0 0 0\n").unwrap();
        // 200 more busy out of 800 more in all.
        assert_eq!(busy_pct(a, b), 25.0);
        assert_eq!(busy_pct(b, b), 0.0, "no time passed");
        assert_eq!(cpu_times("intr 1 2 3\n"), None);
    }
}
