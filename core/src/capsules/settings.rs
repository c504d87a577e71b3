//! Settings of the capsule subsystem, part of the clap [`Config`](crate::Config) tree. (The
//! port-proxy domain is `WRENN_DOMAIN`, exposed as `ctx.config().domain`.)

use clap::Args;

/// Settings of the capsule subsystem.
#[derive(Debug, Clone, Args)]
pub struct CapsuleSettings {
    /// The base template used when a create request names none (and what `minimal` means).
    #[arg(
        long = "default-template",
        env = "WRENN_DEFAULT_TEMPLATE",
        default_value = "minimal-ubuntu"
    )]
    pub default_template: String,
    /// Largest body of `POST /files/write`, in bytes.
    #[arg(long = "max-upload-bytes", env = "WRENN_MAX_UPLOAD_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub max_upload_bytes: u64,
    /// How often the stats sampler runs, in seconds.
    #[arg(long = "stats-interval-sec", env = "WRENN_STATS_INTERVAL_SEC", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub stats_interval_sec: u64,
    /// Lifetime of per-capsule access tokens, in seconds.
    #[arg(
        long = "proxy-token-ttl-sec",
        env = "WRENN_PROXY_TOKEN_TTL_SEC",
        default_value_t = 3600
    )]
    pub proxy_token_ttl_sec: u64,
    /// How often capsule metric points are flushed from the agents into PostgreSQL, seconds.
    #[arg(long = "metrics-flush-sec", env = "WRENN_METRICS_FLUSH_SEC", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub metrics_flush_sec: u64,
    /// Disk size of a capsule whose create request names none, in MiB.
    #[arg(long = "default-disk-mb", env = "WRENN_DEFAULT_DISK_MB", default_value_t = 2048,
          value_parser = clap::value_parser!(u32).range(64..=1024 * 1024))]
    pub default_disk_mb: u32,
    /// Most snapshot templates a team may keep; `POST /v1/snapshots` beyond it answers 409
    /// `snapshot_limit` (each holds a memory image on a host's disk).
    #[arg(long = "max-snapshots-per-team", env = "WRENN_MAX_SNAPSHOTS_PER_TEAM", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_snapshots_per_team: u32,
}

impl Default for CapsuleSettings {
    fn default() -> Self {
        Self {
            default_template: "minimal-ubuntu".into(),
            max_upload_bytes: 100 * 1024 * 1024,
            stats_interval_sec: 60,
            proxy_token_ttl_sec: 3600,
            metrics_flush_sec: 60,
            default_disk_mb: 2048,
            max_snapshots_per_team: 100,
        }
    }
}
