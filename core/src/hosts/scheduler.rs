//! Placement: which host gets a new capsule.
//!
//! Candidates are the `online` hosts of the right type: a BYOC team (one listed in
//! `byoc_teams`) only ever lands on its own BYOC hosts, every other team on regular hosts.
//! A host must report every required capability. Its capacity is what remains after the
//! host's own reserve, with vCPUs overcommitted by a configurable factor:
//!
//! ```text
//! cpu_capacity = (cpu_cores - reserve_cpus) * cpu_overcommit
//! mem_capacity = memory_mb - reserve_memory_mb
//! used         = active capsules + paused_weight * paused capsules + warm pools
//! ```
//!
//! A host's warm pools (capsules its agent boots ahead of demand, reported with its load)
//! count at their full configured size.
//!
//! Admission control: a host fits if `used + request <= capacity` on both axes; among those
//! the least loaded after placement wins (the larger of the two ratios, then fewer
//! capsules, then id for determinism). Nothing fits → [`SchedulerError::NoHostsAvailable`],
//! a 503 `no_hosts_available`.

use super::HostsConfig;
use crate::app::App;
use crate::db::hosts::{self as db, HostLoad};
use std::collections::BTreeMap;
use uuid::Uuid;
use wrenn_extension_api::ApiError;

/// What a capsule needs from its host.
#[derive(Debug, Clone, Default)]
pub struct Requirements {
    pub vcpus: u32,
    pub memory_mb: u64,
    /// Capabilities the host must report: a value equal to the host's, or contained in it
    /// when the host reports a list (e.g. `runtime = "gvisor"`, `snapshots = true`,
    /// `network_modes = "none"`).
    pub capabilities: BTreeMap<String, serde_json::Value>,
}

impl Requirements {
    pub fn new(vcpus: u32, memory_mb: u64) -> Self {
        Self {
            vcpus,
            memory_mb,
            capabilities: BTreeMap::new(),
        }
    }

    pub fn capability(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.capabilities.insert(key.into(), value.into());
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("no host can take this capsule")]
    NoHostsAvailable,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl From<SchedulerError> for ApiError {
    fn from(e: SchedulerError) -> Self {
        match e {
            SchedulerError::NoHostsAvailable => ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "no_hosts_available",
                "no host has room for this capsule right now",
            ),
            SchedulerError::Db(e) => ApiError::internal(e),
        }
    }
}

/// Picks the host for a capsule of `team` (configuration from the registered [`Hosts`]).
pub async fn pick_host(
    ctx: &App,
    team: Uuid,
    requirements: &Requirements,
) -> Result<Uuid, SchedulerError> {
    pick_host_with(ctx.db(), &ctx.hosts.config, team, requirements).await
}

/// [`pick_host`] with explicit pool and configuration.
pub async fn pick_host_with(
    db: &sqlx::PgPool,
    config: &HostsConfig,
    team: Uuid,
    requirements: &Requirements,
) -> Result<Uuid, SchedulerError> {
    let byoc = db::is_byoc_team(db, team).await?;
    let hosts = db::online_hosts_with_load(db).await?;
    choose(&hosts, config, team, byoc, requirements).ok_or(SchedulerError::NoHostsAvailable)
}

/// Whether `host` reports every required capability.
pub fn capabilities_match(
    host: &serde_json::Value,
    required: &BTreeMap<String, serde_json::Value>,
) -> bool {
    required.iter().all(|(key, want)| match host.get(key) {
        Some(serde_json::Value::Array(items)) => match want {
            serde_json::Value::Array(wants) => wants.iter().all(|w| items.contains(w)),
            w => items.contains(w),
        },
        Some(have) => have == want,
        None => false,
    })
}

/// The pure placement decision over already-loaded hosts.
pub fn choose(
    hosts: &[HostLoad],
    config: &HostsConfig,
    team: Uuid,
    team_is_byoc: bool,
    req: &Requirements,
) -> Option<Uuid> {
    let mut best: Option<(f64, i64, Uuid)> = None;
    for h in hosts {
        let eligible = if team_is_byoc {
            h.kind == "byoc" && h.team_id == Some(team)
        } else {
            h.kind == "regular"
        };
        if !eligible || !capabilities_match(&h.capabilities, &req.capabilities) {
            continue;
        }
        let cores = f64::from(h.cpu_cores.unwrap_or(0));
        let cpu_capacity = (cores - config.reserve_cpus).max(0.0) * config.cpu_overcommit;
        let mem_capacity =
            (h.memory_mb.unwrap_or(0) as f64 - config.reserve_memory_mb as f64).max(0.0);
        // A warm pool's capacity is reserved whether or not its capsules are booted yet.
        let cpu_used = h.active_vcpus as f64
            + config.paused_weight * h.paused_vcpus as f64
            + h.pool_vcpus as f64;
        let mem_used = h.active_memory_mb as f64
            + config.paused_weight * h.paused_memory_mb as f64
            + h.pool_memory_mb as f64;
        let cpu_after = cpu_used + f64::from(req.vcpus);
        let mem_after = mem_used + req.memory_mb as f64;
        // A tiny epsilon keeps exact fits (e.g. 6.0 of 6.0) admitted despite float rounding.
        if cpu_after > cpu_capacity + 1e-9 || mem_after > mem_capacity + 1e-9 {
            continue;
        }
        let load = (cpu_after / cpu_capacity).max(mem_after / mem_capacity);
        let candidate = (load, h.capsule_count, h.id);
        let better = match &best {
            None => true,
            Some(b) => {
                candidate.0 < b.0 - 1e-12
                    || ((candidate.0 - b.0).abs() <= 1e-12
                        && (candidate.1, candidate.2) < (b.1, b.2))
            }
        };
        if better {
            best = Some(candidate);
        }
    }
    best.map(|(_, _, id)| id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host(id: u128, cores: i32, mem: i64, active: (i64, i64), paused: (i64, i64)) -> HostLoad {
        HostLoad {
            id: Uuid::from_u128(id),
            kind: "regular".into(),
            team_id: None,
            cpu_cores: Some(cores),
            memory_mb: Some(mem),
            capabilities: json!({"runtime": "gvisor", "network_modes": ["none"], "snapshots": true}),
            active_vcpus: active.0,
            active_memory_mb: active.1,
            paused_vcpus: paused.0,
            paused_memory_mb: paused.1,
            capsule_count: 0,
            pool_vcpus: 0,
            pool_memory_mb: 0,
        }
    }

    #[test]
    fn least_loaded_fitting_host_wins() {
        let config = HostsConfig::default();
        let team = Uuid::from_u128(1);
        let hosts = vec![
            host(10, 4, 8192, (8, 2048), (0, 0)),
            host(11, 4, 8192, (2, 1024), (0, 0)),
        ];
        let req = Requirements::new(1, 512);
        assert_eq!(
            choose(&hosts, &config, team, false, &req),
            Some(Uuid::from_u128(11))
        );
        // Capacity of host 11 is (4-0.5)*4 = 14 vCPUs: 13 more do not fit, so nothing does.
        let big = Requirements::new(13, 512);
        assert_eq!(choose(&hosts, &config, team, false, &big), None);
        // Capabilities filter.
        let gpu = Requirements::new(1, 512).capability("runtime", "cloud-hypervisor");
        assert_eq!(choose(&hosts, &config, team, false, &gpu), None);
        let none_net = Requirements::new(1, 512).capability("network_modes", "none");
        assert!(choose(&hosts, &config, team, false, &none_net).is_some());
    }

    #[test]
    fn paused_capsules_count_partially() {
        let config = HostsConfig {
            paused_weight: 0.25,
            ..HostsConfig::default()
        };
        let team = Uuid::from_u128(1);
        // 8192 - 1024 reserve = 7168 MB. 4096 paused counts as 1024.
        let hosts = vec![host(10, 2, 8192, (0, 0), (2, 4096))];
        assert!(choose(&hosts, &config, team, false, &Requirements::new(1, 6144)).is_some());
        assert!(choose(&hosts, &config, team, false, &Requirements::new(1, 6145)).is_none());
    }

    #[test]
    fn a_warm_pool_is_reserved_capacity() {
        let config = HostsConfig::default();
        let team = Uuid::from_u128(1);
        // 8192 - 1024 reserve = 7168 MB, of which a pool of 4 x 512 MB holds 2048.
        let mut pooled = host(10, 2, 8192, (0, 0), (0, 0));
        pooled.pool_vcpus = 4;
        pooled.pool_memory_mb = 2048;
        let hosts = vec![pooled];
        assert!(choose(&hosts, &config, team, false, &Requirements::new(1, 5120)).is_some());
        assert!(choose(&hosts, &config, team, false, &Requirements::new(1, 5121)).is_none());
    }
}
