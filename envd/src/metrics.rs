//! Capsule resource figures from /proc and statvfs.
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SystemMetrics {
    pub cpu_count: usize,
    /// Busy share of all CPUs since the previous sample (or over a 100 ms window), 0–100.
    pub cpu_used_pct: f64,
    pub mem_total: u64,
    pub mem_used: u64,
    pub disk_total: u64,
    pub disk_used: u64,
}

/// (busy, total) jiffies from the first line of /proc/stat.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// Remembers the last CPU sample so consecutive calls measure the time between them.
#[derive(Debug, Default)]
pub struct CpuSampler(Mutex<Option<(Instant, u64, u64)>>);

impl CpuSampler {
    async fn used_pct(&self) -> f64 {
        let previous = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        let (busy0, total0) = match previous {
            Some((at, busy, total)) if at.elapsed() >= Duration::from_millis(50) => (busy, total),
            _ => {
                let first = cpu_times().unwrap_or_default();
                tokio::time::sleep(Duration::from_millis(100)).await;
                first
            }
        };
        let (busy1, total1) = cpu_times().unwrap_or_default();
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), busy1, total1));
        let total = total1.saturating_sub(total0);
        if total == 0 {
            return 0.0;
        }
        let pct = busy1.saturating_sub(busy0) as f64 * 100.0 / total as f64;
        (pct * 10.0).round() / 10.0
    }

    pub async fn sample(&self) -> SystemMetrics {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib = |key: &str| {
            meminfo
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        let mem_total = kib("MemTotal:");
        let mem_used = mem_total.saturating_sub(kib("MemAvailable:"));
        let (disk_total, disk_used) = match nix::sys::statvfs::statvfs("/") {
            Ok(s) => {
                let frag = s.fragment_size();
                (
                    s.blocks() * frag,
                    s.blocks().saturating_sub(s.blocks_free()) * frag,
                )
            }
            Err(_) => (0, 0),
        };
        SystemMetrics {
            cpu_count: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_used_pct: self.used_pct().await,
            mem_total,
            mem_used,
            disk_total,
            disk_used,
        }
    }
}
