//! The warm pool: capsules booted ahead of demand, so that a create is a hand-over.
//!
//! Each pool ([`PoolSpec`], `--warm-pool`) names a base template and the resources of its
//! capsules; the agent keeps that many sandboxes booted with envd answering, owned by no
//! team, under runtime ids `pool-<hex>`. A create for the same template and resources (and
//! no snapshot) takes one ([`Host::create`](super::Host::create)): the team's egress policy
//! is applied on the host, and envd's `/init` gives the capsule its access token, env vars,
//! user, working directory and a fresh machine id. The capsule keeps the entry's sandbox
//! (its runtime id stays `pool-<hex>`, its capsule id is the control plane's), and the pool
//! boots a replacement in the background.
//!
//! Pool entries are never listed (they are not in the [`Registry`](crate::capsules::Registry)),
//! never billed (the control plane never hears of them) and unreachable (envd holds a token
//! only this process knows). Their resources are reported with the host's load, so the
//! scheduler counts a pool's full size as reserved capacity. Entries boot one at a time;
//! refilling waits while the host is short of memory. An entry whose template changed on
//! disk after it booted is discarded rather than handed out. The pool is drained when the
//! agent stops, and an agent that died leaves entries its successor's sweep removes (they
//! have no capsule record).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tracing::{info, warn};

use super::Host;
use crate::envd::{Envd, InitParams};
use crate::runtime::{CapsuleSpec, EnvdAddress, NetworkPolicy};

/// Names operators use for the platform's base templates, and their template ids.
const PLATFORM_TEMPLATES: [(&str, u32); 6] = [
    ("minimal-ubuntu", 0),
    ("minimal-alpine", 1),
    ("minimal-arch", 2),
    ("minimal-fedora", 3),
    ("minimal-debian", 4),
    ("minimal-busybox", 5),
];

/// The platform team's id.
const PLATFORM_TEAM: &str = "0000000000000000000000000";

/// How long the refill loop sleeps when nothing wakes it.
const REFILL_EVERY: Duration = Duration::from_secs(2);

/// One configured pool: `TEMPLATE[:VCPUSxMEMORY_MB[xDISK_MB]]=SIZE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSpec {
    /// As the operator wrote it (for logs and metrics).
    pub label: String,
    pub team_id: String,
    pub template_id: String,
    pub vcpus: u32,
    pub memory_mb: u32,
    /// 0: the control plane's default disk (what a create without `disk_mb` sends).
    pub disk_mb: u32,
    pub size: usize,
}

impl PoolSpec {
    /// Parses one pool. TEMPLATE is a platform base template's name (`minimal-debian`) or
    /// `<team id>/<template id>`; the resources default to the control plane's defaults
    /// for a create that names none (1 vCPU, 512 MiB).
    pub fn parse(text: &str) -> Result<PoolSpec, String> {
        let text = text.trim();
        let (what, size) = text.rsplit_once('=').ok_or_else(|| {
            format!("warm pool {text:?}: expected TEMPLATE[:VCPUSxMEMORY_MB[xDISK_MB]]=SIZE")
        })?;
        let size: usize = size
            .trim()
            .parse()
            .map_err(|_| format!("warm pool {text:?}: the size is not a number"))?;
        if size > 64 {
            return Err(format!("warm pool {text:?}: at most 64 capsules per pool"));
        }
        let (template, resources) = match what.split_once(':') {
            Some((t, r)) => (t.trim(), Some(r.trim())),
            None => (what.trim(), None),
        };
        let (team_id, template_id) = match PLATFORM_TEMPLATES.iter().find(|(n, _)| *n == template) {
            Some((_, id)) => (PLATFORM_TEAM.to_owned(), format!("{id:0>25}")),
            None => {
                let (team, tpl) = template.split_once('/').ok_or_else(|| {
                    format!("warm pool {text:?}: unknown template {template:?} (minimal-<distro> or <team id>/<template id>)")
                })?;
                let base36 = |s: &str| {
                    s.len() == 25
                        && s.bytes()
                            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
                };
                if !base36(team) || !base36(tpl) {
                    return Err(format!(
                        "warm pool {text:?}: team and template ids are base36, 25 characters"
                    ));
                }
                (team.to_owned(), tpl.to_owned())
            }
        };
        let (mut vcpus, mut memory_mb, mut disk_mb) = (1, 512, 0);
        if let Some(r) = resources {
            let parts: Vec<&str> = r.split('x').collect();
            let num = |s: &str| {
                s.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("warm pool {text:?}: {s:?} is not a positive number"))
            };
            match parts.as_slice() {
                [v, m] => (vcpus, memory_mb) = (num(v)?, num(m)?),
                [v, m, d] => (vcpus, memory_mb, disk_mb) = (num(v)?, num(m)?, num(d)?),
                _ => {
                    return Err(format!(
                        "warm pool {text:?}: resources are VCPUSxMEMORY_MB[xDISK_MB]"
                    ))
                }
            }
        }
        Ok(PoolSpec {
            label: what.trim().to_owned(),
            team_id,
            template_id,
            vcpus,
            memory_mb,
            disk_mb,
            size,
        })
    }

    /// Parses `--warm-pool` (empty or `none`: no pool).
    pub fn parse_all(items: &[String]) -> Result<Vec<PoolSpec>, String> {
        items
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty() && *s != "none")
            .map(PoolSpec::parse)
            .collect()
    }
}

/// What a create must match to take an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    template_dir: PathBuf,
    vcpus: u32,
    memory_mb: u32,
    disk_mb: u32,
}

impl Shape {
    /// A `disk_mb` of 0 is the default disk, as the runtime reads it.
    pub fn new(template_dir: PathBuf, vcpus: u32, memory_mb: u32, disk_mb: u32) -> Shape {
        let disk_mb = if disk_mb == 0 {
            crate::runtime::gvisor::DEFAULT_DISK_MB
        } else {
            disk_mb
        };
        Shape {
            template_dir,
            vcpus,
            memory_mb,
            disk_mb,
        }
    }
}

/// A booted capsule waiting for a team.
pub struct Entry {
    pub rid: String,
    pool: usize,
    pub token: String,
    pub address: EnvdAddress,
    pub envd_version: String,
    /// The spec it booted with (`id` = `rid`).
    pub spec: CapsuleSpec,
    stamp: Option<Stamp>,
}

/// Identifies one version of a template's rootfs on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    mtime: i64,
}

fn stamp(template_dir: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(template_dir.join("rootfs")).ok()?;
    Some(Stamp {
        ino: m.ino(),
        mtime: m.mtime(),
    })
}

pub struct WarmPool {
    specs: Vec<PoolSpec>,
    ready: Mutex<Vec<Entry>>,
    wake: Notify,
}

/// The resources a pool holds whether or not its entries are booted yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reserved {
    pub vcpus: u32,
    pub memory_mb: u64,
    pub ready: u32,
}

impl WarmPool {
    pub fn new(specs: Vec<PoolSpec>) -> Self {
        WarmPool {
            specs,
            ready: Mutex::new(Vec::new()),
            wake: Notify::new(),
        }
    }

    fn ready(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.ready.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn specs(&self) -> &[PoolSpec] {
        &self.specs
    }

    /// Entries ready per pool, in the order of [`WarmPool::specs`].
    pub fn ready_counts(&self) -> Vec<usize> {
        let ready = self.ready();
        (0..self.specs.len())
            .map(|i| ready.iter().filter(|e| e.pool == i).count())
            .collect()
    }

    /// Each pool's shape and its ready entries, for the control plane's placement.
    pub fn loads(&self) -> Vec<wrenn_proto::host_http::PoolLoad> {
        self.specs
            .iter()
            .zip(self.ready_counts())
            .map(|(s, ready)| wrenn_proto::host_http::PoolLoad {
                team_id: s.team_id.clone(),
                template_id: s.template_id.clone(),
                vcpus: s.vcpus,
                memory_mb: s.memory_mb,
                disk_mb: if s.disk_mb == 0 {
                    crate::runtime::gvisor::DEFAULT_DISK_MB
                } else {
                    s.disk_mb
                },
                ready: ready as u32,
            })
            .collect()
    }

    /// What the configured pools hold at full size, and how many entries are ready.
    pub fn reserved(&self) -> Reserved {
        let mut r = Reserved::default();
        for s in &self.specs {
            r.vcpus += s.vcpus * s.size as u32;
            r.memory_mb += u64::from(s.memory_mb) * s.size as u64;
        }
        r.ready = self.ready().len() as u32;
        r
    }

    /// The shape of pool `i`'s capsules on `host`.
    fn shape(&self, host: &Host, i: usize) -> Shape {
        let s = &self.specs[i];
        Shape::new(
            host.template_dir(&s.team_id, &s.template_id),
            s.vcpus,
            s.memory_mb,
            s.disk_mb,
        )
    }

    /// Takes a ready entry of `shape`, if there is one whose template has not changed since
    /// it booted. Wakes the refill either way.
    pub fn take(&self, host: &Host, shape: &Shape) -> Option<Entry> {
        let taken = {
            let mut ready = self.ready();
            ready
                .iter()
                .position(|e| self.shape(host, e.pool) == *shape)
                .map(|at| ready.remove(at))
        };
        self.wake.notify_one();
        let entry = match taken {
            Some(e) => e,
            None => {
                if (0..self.specs.len()).any(|i| self.shape(host, i) == *shape) {
                    crate::telemetry::get().pool_take(false);
                }
                return None;
            }
        };
        if entry.stamp != stamp(&shape.template_dir) {
            // Rebuilt since: never hand out the old one.
            self.discard(host, entry);
            return None;
        }
        crate::telemetry::get().pool_take(true);
        Some(entry)
    }

    /// Destroys an entry in the background (never on a create's path).
    pub fn discard(&self, host: &Host, entry: Entry) {
        let runtime = host.runtime.clone();
        tokio::spawn(async move {
            if let Err(e) = runtime.destroy(&entry.rid).await {
                warn!(pool_entry = %entry.rid, error = %e, "removing a warm pool entry failed");
            }
        });
    }

    /// Destroys (in the background) every ready entry of a template: it is being deleted.
    pub fn drain_template(&self, host: &Host, template_dir: &Path) {
        let drained: Vec<Entry> = {
            let mut ready = self.ready();
            let (gone, keep): (Vec<Entry>, Vec<Entry>) = ready
                .drain(..)
                .partition(|e| e.spec.template_dir == template_dir);
            *ready = keep;
            gone
        };
        for e in drained {
            self.discard(host, e);
        }
    }

    /// Destroys every ready entry (the agent is stopping).
    pub async fn drain(&self, host: &Host) {
        let drained: Vec<Entry> = self.ready().drain(..).collect();
        let n = drained.len();
        for e in drained {
            if let Err(e2) = host.runtime.destroy(&e.rid).await {
                warn!(pool_entry = %e.rid, error = %e2, "removing a warm pool entry failed");
            }
        }
        if n > 0 {
            info!(count = n, "warm pool drained");
        }
    }
}

/// Boots one entry of pool `i`.
async fn boot(host: &Host, pool: &WarmPool, i: usize) -> Result<Entry, super::HostError> {
    let s = &pool.specs[i];
    let template_dir = host.template_dir(&s.team_id, &s.template_id);
    let rid = format!("pool-{}", hex::encode(rand::random::<[u8; 8]>()));
    let token = hex::encode(rand::random::<[u8; 16]>());
    let spec = CapsuleSpec {
        id: rid.clone(),
        template_dir: template_dir.clone(),
        snapshot_dir: None,
        vcpus: s.vcpus,
        memory_mb: s.memory_mb,
        disk_mb: s.disk_mb,
        env: BTreeMap::new(),
        network: NetworkPolicy::default(),
    };
    let stamp = stamp(&template_dir);
    let address = host.runtime.create(&spec).await?;
    let ready = async {
        let envd = Envd::new(address.clone(), token.clone());
        let version = envd.wait_healthy(super::ENVD_READY_TIMEOUT).await?;
        envd.init(&InitParams {
            access_token: token.clone(),
            sandbox_id: rid.clone(),
            template_id: s.template_id.clone(),
            ..Default::default()
        })
        .await?;
        Ok::<_, super::HostError>(version)
    }
    .await;
    match ready {
        Ok(envd_version) => Ok(Entry {
            rid,
            pool: i,
            token,
            address,
            envd_version,
            spec,
            stamp,
        }),
        Err(e) => {
            let _ = host.runtime.destroy(&rid).await;
            Err(e)
        }
    }
}

/// Keeps every pool at its size until the host shuts down, then drains them.
pub async fn run(host: Arc<Host>) {
    let pool = host.pool.clone();
    let mut missing_template = vec![false; pool.specs.len()];
    let mut failures = vec![0u32; pool.specs.len()];
    loop {
        // Entries whose sandbox died while waiting are dropped.
        let entries: Vec<(String, usize)> = pool
            .ready()
            .iter()
            .map(|e| (e.rid.clone(), e.pool))
            .collect();
        for (rid, _) in entries {
            if host.runtime.exited(&rid).await.is_some() {
                let dead = {
                    let mut ready = pool.ready();
                    ready
                        .iter()
                        .position(|e| e.rid == rid)
                        .map(|at| ready.remove(at))
                };
                if let Some(e) = dead {
                    warn!(pool_entry = %e.rid, "a warm pool entry died; replacing it");
                    let _ = host.runtime.destroy(&e.rid).await;
                }
            }
        }
        for i in 0..pool.specs.len() {
            loop {
                if host.shutdown.is_cancelled() {
                    break;
                }
                if pool.ready_counts()[i] >= pool.specs[i].size {
                    break;
                }
                let dir = pool.shape(&host, i).template_dir;
                if !dir.join("rootfs").is_dir() {
                    if !missing_template[i] {
                        warn!(pool = %pool.specs[i].label, "warm pool template is not on this host; not filling it");
                        missing_template[i] = true;
                    }
                    break;
                }
                missing_template[i] = false;
                if super::reaper::short_of_memory(
                    &std::fs::read_to_string("/proc/meminfo").unwrap_or_default(),
                ) {
                    break;
                }
                // Back off after failures (1, 2, 4 ... 60 rounds skipped).
                if failures[i] > 0 {
                    failures[i] -= 1;
                    break;
                }
                let started = Instant::now();
                match boot(&host, &pool, i).await {
                    Ok(entry) => {
                        info!(pool = %pool.specs[i].label, pool_entry = %entry.rid,
                            ms = started.elapsed().as_millis() as u64, "warm pool entry ready");
                        if host.shutdown.is_cancelled() {
                            let _ = host.runtime.destroy(&entry.rid).await;
                        } else {
                            pool.ready().push(entry);
                        }
                    }
                    Err(e) => {
                        warn!(pool = %pool.specs[i].label, error = %e, "booting a warm pool entry failed");
                        failures[i] = 30;
                        break;
                    }
                }
            }
        }
        tokio::select! {
            _ = host.shutdown.cancelled() => break,
            _ = pool.wake.notified() => {}
            _ = tokio::time::sleep(REFILL_EVERY) => {}
        }
    }
    pool.drain(&host).await;
}

#[cfg(test)]
mod tests {
    use super::PoolSpec;

    #[test]
    fn pools_parse_from_names_ids_and_resources() {
        let p = PoolSpec::parse("minimal-debian=2").unwrap();
        assert_eq!(p.team_id, "0000000000000000000000000");
        assert_eq!(p.template_id, "0000000000000000000000004");
        assert_eq!((p.vcpus, p.memory_mb, p.disk_mb, p.size), (1, 512, 0, 2));
        let p = PoolSpec::parse("minimal-busybox:2x256=3").unwrap();
        assert_eq!(p.template_id, "0000000000000000000000005");
        assert_eq!((p.vcpus, p.memory_mb, p.disk_mb, p.size), (2, 256, 0, 3));
        let p =
            PoolSpec::parse("3k5bqzs0nb6eq9wc3d0b5e1xf/00000000000000000000000sh:1x1024x4096=1")
                .unwrap();
        assert_eq!(p.team_id, "3k5bqzs0nb6eq9wc3d0b5e1xf");
        assert_eq!((p.vcpus, p.memory_mb, p.disk_mb), (1, 1024, 4096));
        for bad in [
            "minimal-debian",
            "minimal-debian=x",
            "minimal-debian=65",
            "minimal-gentoo=1",
            "minimal-debian:1=1",
            "minimal-debian:0x512=1",
            "a/b=1",
        ] {
            assert!(PoolSpec::parse(bad).is_err(), "{bad} accepted");
        }
        assert!(PoolSpec::parse_all(&["none".into()]).unwrap().is_empty());
        assert!(PoolSpec::parse_all(&[]).unwrap().is_empty());
        assert_eq!(
            PoolSpec::parse_all(&["minimal-debian=1".into(), " minimal-busybox=2".into()])
                .unwrap()
                .len(),
            2
        );
    }
}
