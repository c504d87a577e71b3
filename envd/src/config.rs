//! Command-line and environment configuration.
use std::path::PathBuf;
use std::str::FromStr;

use clap::Parser;

/// envd's configuration: flags, each also readable from an `ENVD_*` environment variable.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "envd",
    version,
    about = "Wrenn guest agent: processes, files and ports inside a capsule"
)]
pub struct Config {
    /// Where to serve gRPC and HTTP: `unix:PATH`, `vsock:PORT` or `tcp:ADDR` (e.g. tcp:127.0.0.1:49983).
    #[arg(long, env = "ENVD_LISTEN", default_value = "unix:/run/wrenn/envd.sock")]
    pub listen: ListenAddr,

    /// Access token required until `/init` sets another one. Without it, every call is allowed
    /// until the first `/init` that carries an `access_token`.
    #[arg(long, env = "ENVD_ACCESS_TOKEN", hide_env_values = true)]
    pub access_token: Option<String>,

    /// Output bytes kept per process for late subscribers and reconnects.
    #[arg(long, env = "ENVD_REPLAY_BUFFER", default_value_t = 1 << 20)]
    pub replay_buffer: usize,

    /// Seconds an exited process stays visible (List, ConnectProcess) with its exit status.
    #[arg(long, env = "ENVD_EXITED_RETENTION_SECS", default_value_t = 60)]
    pub exited_retention_secs: u64,

    /// Let `/init` set the system clock from its `timestamp_ms` when it is more than one
    /// second off (needs CAP_SYS_TIME; only meant for capsules).
    #[arg(long, env = "ENVD_SYNC_CLOCK")]
    pub sync_clock: bool,

    /// Most tasks (processes and threads) the user of a started process may have: its
    /// RLIMIT_NPROC. envd itself keeps no such limit, so a fork bomb in a child stops at the
    /// limit while envd can still start the commands that end it. 0: unchanged.
    #[arg(long, env = "ENVD_MAX_PROCESSES", default_value_t = 0)]
    pub max_processes: u64,

    /// The tunnel port at which envd itself speaks E2B's envd protocol (Connect JSON and
    /// `/files`), so the `e2b` SDKs can drive the capsule. Nothing listens on it: a tunnel
    /// to this port is served in-process. 0: off, the port is tunnelled like any other.
    #[arg(long, env = "ENVD_E2B_PORT", default_value_t = 49983)]
    pub e2b_port: u16,

    /// The user E2B calls run as when they name none, if it exists in /etc/passwd
    /// (otherwise /init's default user, else root).
    #[arg(long, env = "ENVD_E2B_DEFAULT_USER", default_value = "user")]
    pub e2b_default_user: String,
}

/// The one listener envd serves on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// A Unix socket path (gVisor: a bind-mounted host directory with `--host-uds`).
    Unix(PathBuf),
    /// A vsock port on any CID (cloud-hypervisor).
    Vsock(u32),
    /// A TCP address (development and tests); port 0 picks a free port.
    Tcp(String),
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("`{s}`: expected unix:PATH, vsock:PORT or tcp:ADDR"))?;
        match kind {
            "unix" if !rest.is_empty() => Ok(Self::Unix(PathBuf::from(rest))),
            "vsock" => rest
                .parse()
                .map(Self::Vsock)
                .map_err(|_| format!("`{rest}` is not a vsock port")),
            "tcp" if !rest.is_empty() => Ok(Self::Tcp(rest.to_owned())),
            _ => Err(format!("`{s}`: expected unix:PATH, vsock:PORT or tcp:ADDR")),
        }
    }
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix:{}", p.display()),
            Self::Vsock(port) => write!(f, "vsock:{port}"),
            Self::Tcp(addr) => write!(f, "tcp:{addr}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_listen_addresses() {
        assert_eq!(
            "unix:/run/x.sock".parse::<ListenAddr>().unwrap(),
            ListenAddr::Unix("/run/x.sock".into())
        );
        assert_eq!(
            "vsock:49983".parse::<ListenAddr>().unwrap(),
            ListenAddr::Vsock(49983)
        );
        assert_eq!(
            "tcp:127.0.0.1:0".parse::<ListenAddr>().unwrap(),
            ListenAddr::Tcp("127.0.0.1:0".into())
        );
        assert!("udp:1".parse::<ListenAddr>().is_err());
        assert!("vsock:x".parse::<ListenAddr>().is_err());
        assert!("unix:".parse::<ListenAddr>().is_err());
    }
}
