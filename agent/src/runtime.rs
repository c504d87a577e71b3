//! The isolation runtime seam: how a capsule is isolated, started, frozen and thawed.
//!
//! Callers (the gRPC service, the reaper, recovery) only see [`Runtime`]. A driver owns
//! everything under `$WRENN_DIR/sandboxes/<id>/` and `$WRENN_DIR/snapshots/<id>/` for
//! its capsules; envd hooks (`/snapshot/prepare` before a pause, `/init` after a resume)
//! are the caller's job because they are the same for every runtime, while telling envd
//! to re-bind its listener after a restore is the driver's (gVisor: a signal to PID 1;
//! a microVM: nothing, its vsock listener survives).
//!
//! Drivers: [`gvisor`] (runsc). A Cloud Hypervisor driver fits the same trait: `create`
//! = dm-snapshot over `rootfs.ext4` + TAP + `vm.create`/`vm.boot` with the transport a
//! vsock socket; `pause` = `vm.pause` + `vm.snapshot`; `resume` = `vm.restore` + `vm.resume`.

pub mod gvisor;

use std::collections::BTreeMap;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Where the host reaches a capsule's envd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EnvdAddress {
    /// A host Unix socket envd listens on directly (gVisor with `--host-uds`).
    Unix { path: PathBuf },
    /// A host Unix socket speaking the Firecracker/Cloud Hypervisor vsock handshake
    /// (`CONNECT <port>\n`).
    Vsock { path: PathBuf, port: u32 },
    /// Plain TCP (development).
    Tcp { addr: String },
}

impl std::fmt::Display for EnvdAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvdAddress::Unix { path } => write!(f, "unix:{}", path.display()),
            EnvdAddress::Vsock { path, port } => write!(f, "vsock:{}:{port}", path.display()),
            EnvdAddress::Tcp { addr } => write!(f, "tcp:{addr}"),
        }
    }
}

/// What a capsule is made of. Persisted next to the capsule so that a restarted agent
/// can adopt it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapsuleSpec {
    pub id: String,
    /// Base template directory (`images/teams/{team}/{template}`).
    pub template_dir: PathBuf,
    /// Snapshot template directory when the capsule is a fork.
    pub snapshot_dir: Option<PathBuf>,
    pub vcpus: u32,
    pub memory_mb: u32,
    pub disk_mb: u32,
    pub env: BTreeMap<String, String>,
    /// Egress policy (ignored when the host runs capsules without a network).
    #[serde(default)]
    pub network: NetworkPolicy,
}

/// Egress mode of a capsule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    #[default]
    AllowAll,
    DenyAll,
    AllowList,
}

impl NetworkMode {
    pub fn parse(s: &str) -> Option<NetworkMode> {
        match s {
            "" | "allow_all" => Some(NetworkMode::AllowAll),
            "deny_all" => Some(NetworkMode::DenyAll),
            "allow_list" => Some(NetworkMode::AllowList),
            _ => None,
        }
    }
}

/// Egress policy of a capsule, enforced on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPolicy {
    pub mode: NetworkMode,
    /// As given: IPv4 CIDRs, addresses and host names (allow_list only).
    #[serde(default)]
    pub allow: Vec<String>,
    /// `allow` with host names resolved on the host when the policy was set (CIDRs).
    #[serde(default)]
    pub resolved: Vec<String>,
}

/// Resource usage of one capsule at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stats {
    /// Cumulative CPU time in nanoseconds (callers derive a percentage from two samples).
    pub cpu_ns: u64,
    pub mem_bytes: u64,
    pub disk_bytes: u64,
}

/// Liveness as the runtime sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveState {
    Running,
    /// Frozen to `$WRENN_DIR/snapshots/<id>/`.
    Paused,
    /// Neither running nor resumable.
    Gone,
}

/// Why a capsule's sandbox ended without being asked to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Death {
    /// The host killed it for exceeding its memory (its memory cgroup counted an OOM kill).
    OutOfMemory,
    /// It ended for another reason; the runtime's last words.
    Crashed(String),
}

impl Death {
    /// The capsule's `status_reason` and the event's `metadata.reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            Death::OutOfMemory => "out_of_memory",
            Death::Crashed(_) => "crashed",
        }
    }

    /// A sentence for the event's `error` and the API's 409.
    pub fn detail(&self) -> String {
        match self {
            Death::OutOfMemory => {
                "the capsule used more memory than it has and the host stopped it".into()
            }
            Death::Crashed(words) => format!("the capsule's sandbox ended unexpectedly: {words}"),
        }
    }
}

/// What the host can do, probed once at start-up and reported to the control plane.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Capabilities {
    pub runtime: String,
    pub runtime_version: String,
    pub platforms: Vec<String>,
    pub platform: String,
    pub network_modes: Vec<String>,
    pub checkpoint_network_modes: Vec<String>,
    pub network_mode: String,
    pub pause_keeps_memory: bool,
    pub snapshots: bool,
    pub hardware_virtualization: bool,
    pub kernel_version: String,
    pub notes: BTreeMap<String, String>,
}

/// A runtime failure, with the reason in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("capsule {0} does not exist")]
    NotFound(String),
    #[error("capsule {0} already exists")]
    AlreadyExists(String),
    #[error("template not found: {0}")]
    TemplateNotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{op} failed: {reason}")]
    Command { op: String, reason: String },
    #[error("io error ({context}): {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl RuntimeError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> RuntimeError {
        let context = context.into();
        move |source| RuntimeError::Io { context, source }
    }
}

/// One isolation technology. Object-safe: the agent holds an `Arc<dyn Runtime>`.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// The probed capabilities of this host for this runtime.
    fn capabilities(&self) -> &Capabilities;

    /// Starts a capsule from `spec` (a fresh boot of the base template, or, when
    /// `spec.snapshot_dir` is set, a restore of that snapshot template under the new id).
    /// Returns once the runtime has started it; the caller waits for envd's health.
    /// On failure everything the call created is removed.
    async fn create(&self, spec: &CapsuleSpec) -> Result<EnvdAddress, RuntimeError>;

    /// Stops the capsule and removes every file it owns (paused state included).
    async fn destroy(&self, id: &str) -> Result<(), RuntimeError>;

    /// Freezes a running capsule, memory included, to its snapshot directory. envd must
    /// have been prepared (host-backed sockets closed) by the caller. Returns the bytes
    /// written.
    async fn pause(&self, id: &str) -> Result<u64, RuntimeError>;

    /// Freezes a running capsule in place: every process stops, memory stays resident, envd
    /// keeps its listener. [`Runtime::resume`] thaws it; [`Runtime::thaw`] too, for a
    /// checkpoint.
    async fn freeze(&self, id: &str) -> Result<(), RuntimeError>;

    /// Lets a capsule frozen in place run again.
    async fn thaw(&self, id: &str) -> Result<(), RuntimeError>;

    /// Whether the capsule is frozen in place (rather than running or on disk).
    async fn is_frozen(&self, id: &str) -> bool;

    /// Tells envd to listen again after a snapshot prepare that was not followed by a
    /// checkpoint.
    async fn listen_again(&self, id: &str) -> Result<(), RuntimeError>;

    /// Brings a paused capsule back (a thaw when frozen in place, else a restore of its
    /// checkpoint) and makes sure envd listens. The paused state stays
    /// until [`Runtime::resumed`] or [`Runtime::abandon_resume`] says how it went.
    async fn resume(&self, spec: &CapsuleSpec) -> Result<EnvdAddress, RuntimeError>;

    /// A resumed capsule answers: its paused state can go.
    async fn resumed(&self, id: &str);

    /// A resumed capsule never answered: stops what was brought back and keeps the paused
    /// state, so the capsule stays paused and a later resume starts from it again.
    async fn abandon_resume(&self, id: &str);

    /// Copies a paused capsule's state into a snapshot template directory (`dest`, which
    /// must not exist) so that `create` with `snapshot_dir = dest` forks it. Returns the
    /// template size in bytes.
    async fn snapshot_to_template(
        &self,
        spec: &CapsuleSpec,
        dest: &std::path::Path,
    ) -> Result<u64, RuntimeError>;

    /// Current resource usage of a running capsule.
    async fn stats(&self, id: &str) -> Result<Stats, RuntimeError>;

    /// Liveness of a capsule (used by recovery after an agent restart).
    async fn state(&self, id: &str) -> LiveState;

    /// For a capsule the caller believes running: `Some` when its sandbox has ended on its
    /// own, and why. Cheap enough to call every second for every capsule (the gVisor driver
    /// reads `/proc`, and runs runsc only to confirm a death). Never changes anything.
    async fn exited(&self, id: &str) -> Option<Death>;

    /// Replaces the egress policy of a capsule (running or paused).
    async fn set_network(&self, id: &str, policy: &NetworkPolicy) -> Result<(), RuntimeError> {
        let _ = (id, policy);
        Err(RuntimeError::Invalid(
            "this host runs capsules without a network".into(),
        ))
    }

    /// The envd address of a running capsule.
    fn envd_address(&self, id: &str) -> EnvdAddress;

    /// Removes runtime leftovers that belong to no known capsule (called at start-up
    /// with the ids recovery adopted).
    async fn sweep(&self, keep: &[String]) -> Result<Vec<String>, RuntimeError>;

    /// Waits (bounded) for runtime commands a previous agent process started and did not see
    /// finish (it died mid-create, say), so recovery judges their final result. Called at
    /// start-up before recovery.
    async fn settle(&self) {}
}
