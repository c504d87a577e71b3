//! Capsules: the control plane's side of running sandboxes on hosts.
//!
//! # Layout
//! - [`state`]: the state machine (statuses and guarded transitions).
//! - [`model`]: the API shapes (`Capsule`, `Template`, requests) and their conversions from rows.
//! - [`settings`]: the capsule settings read from the environment (default template, upload
//!   cap, stats interval, access-token lifetime).
//! - [`agent`]: reaching the host agent of a capsule and mapping its gRPC errors to API errors.
//! - [`outcome`]: audit rows, `wrenn:events` entries and SSE state changes for every operation.
//! - [`templates`]: template resolution (default, `minimal` alias, snapshot templates).
//! - [`lifecycle`]: create, destroy, pause, resume, ping and snapshot, each a guarded
//!   transition through a transitional state that never stays stuck.
//! - [`exec`]: foreground/background exec and process event rendering.
//! - [`pty`]: the PTY and process-stream WebSocket bridges.
//! - [`proxy`]: the `{port}-{capsule}.{domain}` port proxy over the agent's byte tunnel, and
//!   per-capsule access tokens.
//! - [`ttl`]: applies the agents' auto-pauses (idle `timeout_sec`) to the database, with
//!   reason `ttl_expired`.
//! - [`stats`]: the sampler worker (team stats samples, daily usage, metric points) and the
//!   stats/usage/metrics queries.
//!
//! Data flows HTTP handler (`crate::http::capsules`, `exec`, `files`, `snapshots`, `proxy`) →
//! [`lifecycle`] / [`exec`] → `crate::db::capsules` for state and [`agent`] for the host, with
//! [`outcome`] reporting each result.

pub mod admission;
pub mod agent;
pub mod exec;
pub mod facade;
pub mod lifecycle;
pub mod metrics;
pub mod model;
pub mod outcome;
pub mod proxy;
pub mod pty;
pub mod settings;
pub mod state;
pub mod stats;
pub mod templates;
pub mod ttl;

pub use model::{Capsule, Template};
pub use settings::CapsuleSettings;
pub use state::CapsuleStatus;
