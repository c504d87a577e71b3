//! Host side end to end: registry routes, registration and credentials, events and audit,
//! scheduler, monitor and the mTLS pool — against a real control plane with its own
//! PostgreSQL database and Redis (see `cpserver::test_support`).

#[path = "hosts/fixtures.rs"]
mod fixtures;

#[path = "hosts/registry.rs"]
mod registry;

#[path = "hosts/credentials.rs"]
mod credentials;

#[path = "hosts/events_audit.rs"]
mod events_audit;

#[path = "hosts/placement.rs"]
mod placement;

#[path = "hosts/liveness.rs"]
mod liveness;

#[path = "hosts/mtls.rs"]
mod mtls;
