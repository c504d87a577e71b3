//! Command line and environment configuration of `wrenn-agent`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// The Wrenn host agent: runs capsules on this host for the control plane.
#[derive(Debug, Clone, Parser)]
#[command(name = "wrenn-agent", version)]
pub struct Config {
    /// State directory (images, sandboxes, snapshots, credentials).
    #[arg(long, env = "WRENN_DIR", default_value = "/var/lib/wrenn")]
    pub wrenn_dir: PathBuf,

    /// Template images directory; defaults to `$WRENN_DIR/images`.
    #[arg(long, env = "WRENN_IMAGES_DIR")]
    pub images_dir: Option<PathBuf>,

    /// The address the control plane reaches this agent at (ip:port); also the listen
    /// address unless --listen is given.
    #[arg(long, env = "WRENN_AGENT_ADDRESS")]
    pub address: Option<SocketAddr>,

    /// Listen address of the gRPC server (default: --address).
    #[arg(long, env = "WRENN_AGENT_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Serve plaintext gRPC without credentials, for development and tests only. Refused
    /// unless the listen address is a loopback address.
    #[arg(long)]
    pub insecure_dev: bool,

    /// One-time registration token from `POST /v1/hosts` (first start only).
    #[arg(long, env = "WRENN_REGISTRATION_TOKEN")]
    pub register: Option<String>,

    /// Control plane base URL (e.g. https://cp.example.com).
    #[arg(long, env = "WRENN_CP_URL")]
    pub cp_url: Option<String>,

    /// Heartbeat period in seconds.
    #[arg(long, env = "WRENN_HEARTBEAT_SECS", default_value_t = 30)]
    pub heartbeat_secs: u64,

    /// runsc binary.
    #[arg(long, env = "WRENN_RUNSC", default_value = "runsc")]
    pub runsc: PathBuf,

    /// gVisor platform (systrap, ptrace, kvm).
    #[arg(long, env = "WRENN_GVISOR_PLATFORM", default_value = "systrap")]
    pub platform: String,

    /// Capsule network mode: `sandbox` (gVisor netstack in a per-capsule netns, NAT to
    /// the host's uplink) or `none`. When the probe finds `sandbox` unusable here,
    /// capsules run with `none` and the capabilities say why.
    #[arg(long, env = "WRENN_NETWORK", default_value = "sandbox")]
    pub network: String,

    /// Transfer pool of capsule networks: one /30 per capsule between its router netns
    /// and the host. Must not overlap a network the host reaches.
    #[arg(long, env = "WRENN_NET_POOL", default_value = "10.201.0.0/16")]
    pub net_pool: String,

    /// Resolvers written to capsules' /etc/resolv.conf (comma-separated IPv4 addresses);
    /// default: the host's own non-loopback resolvers.
    #[arg(long, env = "WRENN_DNS", value_delimiter = ',')]
    pub dns: Vec<String>,

    /// Medium of the per-capsule root overlay: runsc's `memory` (writes bounded by the
    /// capsule's memory), `self` or `dir=/path`, or `disk` (each capsule gets its own disk of
    /// `disk_mb`, a loop-mounted sparse ext4 image; a full disk is ENOSPC inside). `disk` is
    /// not the default yet: forks of Debian snapshots restored with it failed in about one
    /// run in three.
    #[arg(long, env = "WRENN_OVERLAY", default_value = "memory")]
    pub overlay: String,

    /// Cache file of the start-up capability probe (default `$WRENN_DIR/capabilities.json`).
    #[arg(long, env = "WRENN_PROBE_CACHE")]
    pub probe_cache: Option<PathBuf>,

    /// How often the TTL reaper looks for idle capsules, in milliseconds.
    #[arg(long, env = "WRENN_REAPER_INTERVAL_MS", default_value_t = 1000)]
    pub reaper_interval_ms: u64,

    /// A pause first freezes the capsule in place (memory resident, resumed by a thaw in
    /// milliseconds) and writes it to disk as a checkpoint only after it has stayed paused
    /// this many seconds, or when a snapshot needs the checkpoint. 0 checkpoints at once.
    #[arg(long, env = "WRENN_HIBERNATE_AFTER_SECS", default_value_t = 600)]
    pub hibernate_after_secs: u64,

    /// Warm pools: capsules booted ahead of demand, so that a matching create is a hand-over
    /// (`TEMPLATE[:VCPUSxMEMORY_MB[xDISK_MB]]=SIZE`, comma-separated; TEMPLATE is
    /// `minimal-<distro>` or `<team id>/<template id>`; resources default to a create's
    /// defaults, 1 vCPU and 512 MiB). `none` turns pools off. A pool's full size counts as
    /// reserved capacity of the host.
    #[arg(
        long,
        env = "WRENN_WARM_POOL",
        value_delimiter = ',',
        default_value = "minimal-debian=2"
    )]
    pub warm_pool: Vec<String>,

    /// How often the watchdog looks for capsules whose sandbox ended on its own (out of
    /// memory, crashed), in milliseconds.
    #[arg(long, env = "WRENN_WATCHDOG_INTERVAL_MS", default_value_t = 1000)]
    pub watchdog_interval_ms: u64,

    /// Serve Prometheus metrics (OpenMetrics text) at `GET /metrics` on this address,
    /// plain HTTP without authentication: use a private or loopback address. Off when unset.
    #[arg(long, env = "WRENN_AGENT_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

impl Config {
    pub fn images_dir(&self) -> PathBuf {
        self.images_dir
            .clone()
            .unwrap_or_else(|| self.wrenn_dir.join("images"))
    }

    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.or(self.address)
    }
}
