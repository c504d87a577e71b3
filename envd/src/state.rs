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
}
