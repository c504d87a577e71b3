//! Everything the HTTP handlers share.
use std::sync::Arc;

use crate::auth::AccessToken;
use crate::capsule::Capsule;
use crate::config::Config;
use crate::metrics::CpuSampler;
use crate::processes::Processes;
use crate::server::Transport;

pub struct AppState {
    pub config: Config,
    pub token: Arc<AccessToken>,
    pub capsule: Arc<Capsule>,
    pub processes: Arc<Processes>,
    pub transport: Arc<Transport>,
    pub cpu: CpuSampler,
    /// E2B's envd protocol, served on tunnels to `--e2b-port`; `None` when off.
    pub e2b: Option<Arc<crate::e2b::E2b>>,
}
