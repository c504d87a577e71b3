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
//! Admission control: a host fits if `used + request <= capacity` on both axes. Among those,
//! a host whose last reported load shows a ready warm-pool capsule of the request's
//! [`WarmShape`] wins (the create is then a hand-over, not a boot); then the least loaded
//! after placement (the larger of the two ratios), then fewer capsules, then id for
//! determinism. The pool counts are as of the host's last heartbeat: a host whose pool ran
//! dry since boots the capsule instead. Nothing fits → [`SchedulerError::NoHostsAvailable`],
//! a 503 `no_hosts_available`.

use super::HostsConfig;
use crate::app::App;
use crate::db::hosts::{self as db, HostLoad};
use std::collections::BTreeMap;
use uuid::Uuid;
use wrenn_extension_api::ApiError;
use wrenn_proto::host_http::PoolLoad;

/// What a capsule needs from its host.
#[derive(Debug, Clone, Default)]
pub struct Requirements {
    pub vcpus: u32,
    pub memory_mb: u64,
    /// Capabilities the host must report: a value equal to the host's, or contained in it
    /// when the host reports a list (e.g. `runtime = "gvisor"`, `snapshots = true`,
    /// `network_modes = "none"`).
    pub capabilities: BTreeMap<String, serde_json::Value>,
    /// The shape a host's warm pool must have to serve this create; `None` for creates no
    /// pool can serve (forks of a snapshot).
    pub warm: Option<WarmShape>,
}

/// A create's template and resources, as agents report their warm pools
/// (`wrenn_proto::host_http::PoolLoad`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmShape {
    /// Base36 without prefix, as the agent's template directories are named.
    pub team_id: String,
    pub template_id: String,
    pub vcpus: u32,
    pub memory_mb: u32,
    pub disk_mb: u32,
}

impl WarmShape {
    /// Whether `pools` (a host's reported `pools`) has a ready capsule of this shape.
    fn ready_in(&self, pools: &serde_json::Value) -> bool {
        let Ok(pools) = serde_json::from_value::<Vec<PoolLoad>>(pools.clone()) else {
            return false;
        };
        pools.iter().any(|p| {
            p.ready > 0
                && p.team_id == self.team_id
                && p.template_id == self.template_id
                && (p.vcpus, p.memory_mb, p.disk_mb) == (self.vcpus, self.memory_mb, self.disk_mb)
        })
    }
}

impl Requirements {
    pub fn new(vcpus: u32, memory_mb: u64) -> Self {
        Self {
            vcpus,
            memory_mb,
            capabilities: BTreeMap::new(),
            warm: None,
        }
    }

    /// Prefers hosts with a ready warm-pool capsule of `shape`.
    pub fn warm(mut self, shape: WarmShape) -> Self {
        self.warm = Some(shape);
        self
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
    // (no ready pool capsule, load after placement, capsules, id): smaller is better.
    let mut best: Option<(bool, f64, i64, Uuid)> = None;
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
        let cold = !req.warm.as_ref().is_some_and(|w| w.ready_in(&h.pools));
        let candidate = (cold, load, h.capsule_count, h.id);
        let better = match &best {
            None => true,
            Some(b) if candidate.0 != b.0 => !candidate.0,
            Some(b) => {
                candidate.1 < b.1 - 1e-12
                    || ((candidate.1 - b.1).abs() <= 1e-12
                        && (candidate.2, candidate.3) < (b.2, b.3))
            }
        };
        if better {
            best = Some(candidate);
        }
    }
    best.map(|(_, _, _, id)| id)
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
            pools: json!([]),
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

    #[test]
    fn a_host_with_a_ready_pool_capsule_of_the_shape_wins() {
        let config = HostsConfig::default();
        let team = Uuid::from_u128(1);
        let shape = WarmShape {
            team_id: "0".repeat(25),
            template_id: format!("{}4", "0".repeat(24)),
            vcpus: 1,
            memory_mb: 512,
            disk_mb: 2048,
        };
        let pool = |ready: u32, memory_mb: u32| {
            json!([{"team_id": shape.team_id, "template_id": shape.template_id,
                    "vcpus": 1, "memory_mb": memory_mb, "disk_mb": 2048, "ready": ready}])
        };
        // Host 10 is busier, but has a capsule of the shape waiting.
        let idle = host(11, 4, 8192, (0, 0), (0, 0));
        let mut pooled = host(10, 4, 8192, (4, 4096), (0, 0));
        pooled.pools = pool(1, 512);
        let req = Requirements::new(1, 512).warm(shape.clone());
        let hosts = vec![idle.clone(), pooled.clone()];
        assert_eq!(choose(&hosts, &config, team, false, &req), Some(pooled.id));
        // Without a pool preference, or with the pool empty or of another shape, the load rules.
        let plain = Requirements::new(1, 512);
        assert_eq!(choose(&hosts, &config, team, false, &plain), Some(idle.id));
        for pools in [pool(0, 512), pool(1, 1024), json!("garbage")] {
            pooled.pools = pools;
            let hosts = vec![idle.clone(), pooled.clone()];
            assert_eq!(choose(&hosts, &config, team, false, &req), Some(idle.id));
        }
        // A ready pool never overrides admission: a full host is not chosen for it.
        let mut full = host(12, 1, 2048, (1, 1024), (0, 0));
        full.pools = pool(1, 512);
        let hosts = vec![idle.clone(), full];
        assert_eq!(choose(&hosts, &config, team, false, &req), Some(idle.id));
    }
}
