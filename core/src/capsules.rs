//! Capsules: the control plane's side of running sandboxes on hosts.
//!
//! # Layout
//! - [`state`]: the state machine (statuses and guarded transitions).
//! - [`model`]: the API shapes (`Capsule`, `Template`, requests) and their conversions from rows.
//! - [`settings`]: the capsule settings of the configuration (default template, upload cap,
//!   stats interval, access-token lifetime).
//! - [`agent`]: reaching the host agent of a capsule and mapping its gRPC errors to API errors.
//! - [`outcome`]: audit rows, `wrenn:events` entries and SSE state changes for every operation.
//! - [`templates`]: template resolution (default, `minimal` alias, snapshot templates).
//! - [`admission`]: whether a team may have one more capsule (limits, usage, admission hooks)
//!   inside the insert transaction under the team's lock.
//! - [`lifecycle`]: create, destroy, pause, resume and ping, each a guarded transition through
//!   a transitional state that never stays stuck; [`snapshots`]: snapshot and delete-snapshot.
//! - [`facade`]: the extension-facing capsule service (usage, list, pause, destroy).
//! - [`exec`]: foreground/background exec and process event rendering.
//! - [`pty`]: the PTY and process-stream WebSocket bridges.
//! - [`proxy`]: the `{port}-{capsule}.{domain}` port proxy over the agent's byte tunnel, and
//!   per-capsule access tokens.
//! - [`stats`]: the sampler worker (team stats samples, daily usage, metric points) and the
//!   stats/usage/metrics queries.
//!
//! Changes an agent makes on its own (idle auto-pause, auto-destroy, a pause while the control
//! plane was away, a capsule that died) arrive by one path: the agent's
//! `POST /v1/hosts/sandbox-events` (`crate::http::hosts::agent`, typed in
//! `wrenn_proto::host_http`), applied as guarded transitions.
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
pub mod snapshots;
pub mod state;
pub mod stats;
pub mod templates;

pub use model::{Capsule, Template};
pub use settings::CapsuleSettings;
pub use state::CapsuleStatus;
