//! Protocol buffers shared by the control plane, the host agent and envd.
//!
//! # Layout
//! - `proto/*.proto`: the wire contracts. `build.rs` compiles every file there.
//! - One module per protobuf package below (each added by the crate that owns the contract):
//!   `envd::v1` (process + filesystem services inside a capsule) and `hostagent::v1`
//!   (the HostAgentService the control plane calls on each host).
//! - [`host_http`]: the JSON bodies the agent sends the control plane over HTTP (heartbeat,
//!   and the capsule changes the agent made itself), typed once for both sides.

/// The HostAgentService (`proto/hostagent.proto`): the control plane's client, the agent's server.
pub mod hostagent {
    pub mod v1 {
        tonic::include_proto!("wrenn.hostagent.v1");
    }

    /// gRPC metadata key on a `FAILED_PRECONDITION` answer about a capsule whose sandbox
    /// ended on its own; its value is the reason (`out_of_memory`, `crashed`).
    pub const CAPSULE_DEAD_METADATA: &str = "wrenn-capsule-dead";

    /// gRPC metadata key on an `UNAVAILABLE` answer to `Tunnel` when nothing listens on the
    /// port inside the capsule (the host and the capsule are fine); its value is the port.
    pub const PORT_CLOSED_METADATA: &str = "wrenn-port-closed";
}

/// envd's ProcessService and FilesystemService (`proto/envd_*.proto`): the agent's client,
/// envd's server.
pub mod envd {
    pub mod v1 {
        tonic::include_proto!("wrenn.envd.v1");
    }
}

/// The agent → control-plane HTTP contract (API.md "Hosts", agent side): typed once here,
/// serialised by the agent and parsed by the control plane.
pub mod host_http {
    use serde::{Deserialize, Serialize};

    /// `POST /v1/hosts/{id}/heartbeat` body (every field optional).
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct Heartbeat {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub agent_version: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub capabilities: Option<serde_json::Value>,
        /// The host's load at the time of the beat.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub load: Option<HostLoad>,
    }

    /// A host's load as its agent reads it (`Heartbeat::load`); the control plane shows it on
    /// the host object as `load`, with the time it arrived.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct HostLoad {
        /// Busy share of all CPUs since the previous beat, 0–100.
        pub cpu_pct: f64,
        /// The 1-minute load average.
        pub load_avg_1m: f64,
        pub mem_total_mb: u64,
        pub mem_available_mb: u64,
        /// The filesystem of the agent's `WRENN_DIR`.
        pub disk_total_mb: u64,
        pub disk_available_mb: u64,
        pub capsules_running: u32,
        pub capsules_paused: u32,
        /// What the host's warm pools hold at their full size (reserved capacity), and how
        /// many pooled capsules are booted and waiting.
        #[serde(default)]
        pub pool_vcpus: u32,
        #[serde(default)]
        pub pool_memory_mb: u64,
        #[serde(default)]
        pub pool_ready: u32,
        /// Each warm pool: the shape of its capsules and how many are ready, so the control
        /// plane can send a matching create where one is waiting.
        #[serde(default)]
        pub pools: Vec<PoolLoad>,
    }

    /// One warm pool of a host ([`HostLoad::pools`]).
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct PoolLoad {
        /// The template, as the directory names under `images/teams/` (base36, no prefix).
        pub team_id: String,
        pub template_id: String,
        pub vcpus: u32,
        pub memory_mb: u32,
        /// The disk its capsules have (the agent's default filled in when not configured).
        pub disk_mb: u32,
        /// Booted and waiting to be handed to a create.
        pub ready: u32,
    }

    /// What the agent did to a capsule on its own (not at the control plane's request).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum SandboxEventKind {
        /// The idle timeout paused it (reason `ttl_expired`).
        AutoPaused,
        /// Paused for another reason (the control plane was unreachable).
        Paused,
        /// The idle timeout's pause failed and the capsule was destroyed.
        AutoDestroyed,
        Destroyed,
        Stopped,
        /// The capsule failed on the host (its sandbox died).
        Error,
        /// A kind this control plane does not know (from a newer agent): ignored.
        #[serde(other)]
        Unknown,
    }

    /// One change the agent reports.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct SandboxEvent {
        /// `sb_` wire id.
        pub sandbox_id: String,
        pub event: SandboxEventKind,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub reason: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub error: Option<String>,
    }

    /// `POST /v1/hosts/sandbox-events` body: `{"events": [...]}` or one event object.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum SandboxEvents {
        Many { events: Vec<SandboxEvent> },
        One(SandboxEvent),
    }

    impl SandboxEvents {
        pub fn into_vec(self) -> Vec<SandboxEvent> {
            match self {
                SandboxEvents::Many { events } => events,
                SandboxEvents::One(e) => vec![e],
            }
        }
    }

    /// The answer: how many changes were applied and how many did not apply (unknown or
    /// foreign capsules, kinds it does not know, states that moved on); both are final, so
    /// the agent forgets every event of a 200.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SandboxEventsReply {
        pub applied: u32,
        pub ignored: u32,
    }

    /// Most events one call may carry.
    pub const MAX_EVENTS_PER_CALL: usize = 1000;

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn bodies_keep_their_wire_shape() {
            let one: SandboxEvents =
                serde_json::from_str(r#"{"sandbox_id":"sb_1","event":"auto_paused"}"#).unwrap();
            assert_eq!(
                one.clone().into_vec()[0].event,
                SandboxEventKind::AutoPaused
            );
            let many: SandboxEvents = serde_json::from_str(
                r#"{"events":[{"sandbox_id":"sb_1","event":"exploded","error":"x"}]}"#,
            )
            .unwrap();
            assert_eq!(many.into_vec()[0].event, SandboxEventKind::Unknown);
            let out = serde_json::to_value(SandboxEvent {
                sandbox_id: "sb_2".into(),
                event: SandboxEventKind::AutoDestroyed,
                reason: Some("ttl_expired".into()),
                error: None,
            })
            .unwrap();
            assert_eq!(
                out,
                serde_json::json!({"sandbox_id":"sb_2","event":"auto_destroyed","reason":"ttl_expired"})
            );
        }
    }
}
