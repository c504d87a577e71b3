//! Protocol buffers shared by the control plane, the host agent and envd.
//!
//! # Layout
//! - `proto/*.proto`: the wire contracts. `build.rs` compiles every file there.
//! - One module per protobuf package below (each added by the crate that owns the contract):
//!   `envd::v1` (process + filesystem services inside a capsule) and `hostagent::v1`
//!   (the HostAgentService the control plane calls on each host).

/// The HostAgentService (`proto/hostagent.proto`): the control plane's client, the agent's server.
pub mod hostagent {
    pub mod v1 {
        tonic::include_proto!("wrenn.hostagent.v1");
    }
}

/// envd's ProcessService and FilesystemService (`proto/envd_*.proto`): the agent's client,
/// envd's server.
pub mod envd {
    pub mod v1 {
        tonic::include_proto!("wrenn.envd.v1");
    }
}
