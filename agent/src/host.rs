//! The host: every capsule this agent owns and the lifecycle operations on them.
//!
//! The gRPC service, the TTL reaper, the watchdog, the metrics sampler and start-up recovery
//! all go through [`Host`]; it combines the [`Runtime`] (isolation) with envd's hooks
//! (health, `/init`, `/snapshot/prepare`) and the [`Registry`] of capsules.
//!
//! A capsule whose sandbox ends on its own ([`Host::check`]) is cleaned up at once and
//! remembered as dead ([`Graveyard`]): calls on it answer [`HostError::Dead`] with the
//! reason, and the control plane hears of it through the [`outbox`].

pub mod load;
pub mod outbox;
pub mod pool;
pub mod reaper;
pub mod recovery;
pub mod sampler;
pub mod watchdog;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::capsules::{self, Capsule, Record, Registry, State};
use crate::envd::{Envd, EnvdError, InitParams};
use crate::runtime::{CapsuleSpec, Death, NetworkMode, NetworkPolicy, Runtime, RuntimeError};
use wrenn_proto::host_http::SandboxEventKind;

/// The clock of a periodic host task: a round that runs late delays the next one.
pub(crate) fn ticks(every: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

/// Waits for the next round of a periodic host task; false once the host shuts down.
pub(crate) async fn next_round(host: &Host, tick: &mut tokio::time::Interval) -> bool {
    tokio::select! {
        _ = host.shutdown.cancelled() => false,
        _ = tick.tick() => true,
    }
}

/// Times [`Host::explain`] looks for a death, 250 ms apart.
const EXPLAIN_LOOKS: u32 = 6;

/// How long a fresh or restored envd gets to answer `/health`.
pub(crate) const ENVD_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A lifecycle failure, mapped to a gRPC code by the service.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Internal(String),
    /// The capsule's sandbox ended on its own (`reason`: `out_of_memory`, `crashed`).
    #[error("{detail}")]
    Dead { reason: String, detail: String },
}

/// Capsules that died on their own, remembered (the most recent [`Graveyard::CAPACITY`])
/// so that calls on them say why instead of "not found".
#[derive(Default)]
pub struct Graveyard {
    dead: Mutex<(HashMap<String, Death>, VecDeque<String>)>,
}

impl Graveyard {
    pub const CAPACITY: usize = 4096;

    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<String, Death>, VecDeque<String>)> {
        self.dead.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn bury(&self, id: &str, death: Death) {
        let mut g = self.lock();
        if g.0.insert(id.to_owned(), death).is_none() {
            g.1.push_back(id.to_owned());
        }
        while g.1.len() > Self::CAPACITY {
            if let Some(old) = g.1.pop_front() {
                g.0.remove(&old);
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<Death> {
        self.lock().0.get(id).cloned()
    }

    /// Forgets a capsule (the control plane destroyed it); whether it was here.
    pub fn forget(&self, id: &str) -> bool {
        let mut g = self.lock();
        let was = g.0.remove(id).is_some();
        if was {
            g.1.retain(|d| d != id);
        }
        was
    }

    pub fn ids(&self) -> Vec<String> {
        self.lock().1.iter().cloned().collect()
    }
}

impl From<Death> for HostError {
    fn from(d: Death) -> Self {
        HostError::Dead {
            reason: d.reason().to_owned(),
            detail: d.detail(),
        }
    }
}

impl From<RuntimeError> for HostError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::NotFound(_) | RuntimeError::TemplateNotFound(_) => {
                HostError::NotFound(e.to_string())
            }
            RuntimeError::AlreadyExists(_) => HostError::AlreadyExists(e.to_string()),
            RuntimeError::Invalid(_) => HostError::FailedPrecondition(e.to_string()),
            _ => HostError::Internal(e.to_string()),
        }
    }
}

impl From<EnvdError> for HostError {
    fn from(e: EnvdError) -> Self {
        HostError::Internal(e.to_string())
    }
}

/// Resources of this host, used to refuse capsules that could never fit.
#[derive(Debug, Clone, Copy)]
pub struct HostLimits {
    pub cpus: u32,
    pub memory_mb: u64,
}

/// A capsule creation request, already decoded from the wire.
#[derive(Debug, Clone, Default)]
pub struct CreateParams {
    pub id: String,
    pub team_id: String,
    pub template_id: String,
    pub snapshot: Option<(String, String)>,
    pub vcpus: u32,
    pub memory_mb: u32,
    pub disk_mb: u32,
    pub timeout_sec: u32,
    pub env: std::collections::BTreeMap<String, String>,
    pub access_token: String,
    pub default_user: String,
    pub default_workdir: String,
    /// Egress mode (`allow_all` when empty) and allow-list entries.
    pub network_mode: String,
    pub network_allow: Vec<String>,
}

/// Host names are resolved at most this long when a policy is set.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks an egress policy and resolves its host names (on the host, now).
pub async fn network_policy(mode: &str, allow: &[String]) -> Result<NetworkPolicy, HostError> {
    let mode = NetworkMode::parse(mode).ok_or_else(|| {
        HostError::InvalidArgument(format!(
            "unknown network mode {mode:?} (allow_all, deny_all, allow_list)"
        ))
    })?;
    if mode != NetworkMode::AllowList && !allow.is_empty() {
        return Err(HostError::InvalidArgument(
            "allow entries are only valid with mode allow_list".into(),
        ));
    }
    let mut resolved = Vec::new();
    for entry in allow {
        let entry = entry.trim();
        if let Some(cidr) = crate::runtime::gvisor::net::Cidr::parse(entry) {
            resolved.push(cidr.to_string());
            continue;
        }
        let hostname = !entry.is_empty()
            && entry.len() <= 253
            && !entry.contains('/')
            && entry
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && entry.bytes().any(|b| b.is_ascii_alphabetic());
        if !hostname {
            return Err(HostError::InvalidArgument(format!(
                "allow entry {entry:?} is neither an IPv4 CIDR nor a host name"
            )));
        }
        let addrs = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((entry, 0)))
            .await
            .map_err(|_| HostError::InvalidArgument(format!("resolving {entry:?} timed out")))?
            .map_err(|e| HostError::InvalidArgument(format!("cannot resolve {entry:?}: {e}")))?;
        let before = resolved.len();
        for a in addrs {
            if let std::net::IpAddr::V4(v4) = a.ip() {
                let s = format!("{v4}/32");
                if !resolved.contains(&s) {
                    resolved.push(s);
                }
            }
        }
        if resolved.len() == before {
            return Err(HostError::InvalidArgument(format!(
                "{entry:?} has no IPv4 address"
            )));
        }
    }
    Ok(NetworkPolicy {
        mode,
        allow: allow.iter().map(|a| a.trim().to_owned()).collect(),
        resolved,
    })
}

/// What `create`/`resume` report back.
pub struct Started {
    pub envd_version: String,
    pub envd_address: String,
}

pub struct Host {
    pub wrenn_dir: PathBuf,
    pub images_dir: PathBuf,
    pub runtime: Arc<dyn Runtime>,
    pub capsules: Registry,
    pub limits: HostLimits,
    pub agent_version: String,
    pub shutdown: CancellationToken,
    /// Changes made here on the agent's own initiative, until the control plane has them.
    pub outbox: outbox::Outbox,
    /// Capsules that died on their own.
    pub graveyard: Graveyard,
    /// How long a pause stays a freeze in place before it becomes a checkpoint on disk; zero
    /// checkpoints at once.
    pub hibernate_after: Duration,
    /// Capsules booted ahead of demand ([`pool`]).
    pub pool: Arc<pool::WarmPool>,
}

/// Capsule ids are used in paths and runsc ids: keep them to a safe alphabet.
fn check_id(id: &str) -> Result<(), HostError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(HostError::InvalidArgument(format!(
            "invalid capsule id {id:?}"
        )))
    }
}

/// Team and template ids: base36, 25 characters.
fn check_base36(kind: &str, id: &str) -> Result<(), HostError> {
    if id.len() == 25
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    {
        Ok(())
    } else {
        Err(HostError::InvalidArgument(format!(
            "invalid {kind} id {id:?} (base36, 25 characters)"
        )))
    }
}

impl Host {
    pub fn new(
        wrenn_dir: PathBuf,
        images_dir: PathBuf,
        runtime: Arc<dyn Runtime>,
        limits: HostLimits,
        hibernate_after: Duration,
        pools: Vec<pool::PoolSpec>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Host {
            wrenn_dir,
            images_dir,
            runtime,
            capsules: Registry::default(),
            limits,
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            shutdown,
            outbox: outbox::Outbox::default(),
            graveyard: Graveyard::default(),
            hibernate_after,
            pool: Arc::new(pool::WarmPool::new(pools)),
        })
    }

    pub fn template_dir(&self, team: &str, template: &str) -> PathBuf {
        self.images_dir.join("teams").join(team).join(template)
    }

    /// The capsule, or Dead when it died on its own, or NotFound.
    pub fn capsule(&self, id: &str) -> Result<Arc<Capsule>, HostError> {
        if let Some(c) = self.capsules.get(id) {
            return Ok(c);
        }
        match self.graveyard.get(id) {
            Some(death) => Err(death.into()),
            None => Err(HostError::NotFound(format!("capsule {id} not found"))),
        }
    }

    /// Whether a running capsule's sandbox has ended on its own; if so it is cleaned up,
    /// remembered as dead, and the control plane told (`error` with the reason). Skips a
    /// capsule in the middle of an operation (the operation reports its own failure).
    pub async fn check(&self, capsule: &Arc<Capsule>) -> Option<Death> {
        let _op = capsule.op.try_lock().ok()?;
        let current = self.capsules.get(&capsule.id);
        if !current.is_some_and(|c| Arc::ptr_eq(&c, capsule)) {
            // Buried (or destroyed) while the caller held on to it.
            return self.graveyard.get(&capsule.id);
        }
        if capsule.state() != State::Running {
            return None;
        }
        let death = self.runtime.exited(&capsule.rid).await?;
        warn!(capsule_id = %capsule.id, reason = death.reason(), detail = %death.detail(),
            "capsule died on its own; cleaning up");
        crate::telemetry::get().death(death.reason());
        if let Err(e) = self.runtime.destroy(&capsule.rid).await {
            warn!(capsule_id = %capsule.id, error = %e, "cleaning up a dead capsule failed");
        }
        self.graveyard.bury(&capsule.id, death.clone());
        self.capsules.remove(&capsule.id);
        self.outbox.push(
            &capsule.id,
            SandboxEventKind::Error,
            death.reason(),
            Some(death.detail()),
        );
        Some(death)
    }

    /// Turns a failed call's error into [`HostError::Dead`] when the capsule turns out to
    /// have died (a call that lost envd is how a death is often first seen).
    pub async fn explain(&self, id: &str, error: tonic::Status) -> tonic::Status {
        if !matches!(
            error.code(),
            tonic::Code::Unavailable | tonic::Code::Internal | tonic::Code::Unknown
        ) {
            return error;
        }
        match self.capsules.get(id) {
            // A sandbox being killed closes envd's socket a moment before it is gone: look
            // a few times.
            Some(capsule) => {
                let looks = if error.code() == tonic::Code::Unavailable {
                    EXPLAIN_LOOKS
                } else {
                    1
                };
                for look in 1..=looks {
                    // The watchdog may be the one that buries it meanwhile.
                    if let Some(death) = self
                        .check(&capsule)
                        .await
                        .or_else(|| self.graveyard.get(id))
                    {
                        return HostError::from(death).into();
                    }
                    if look == looks || capsule.state() != State::Running {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                error
            }
            None => match self.graveyard.get(id) {
                Some(death) => HostError::from(death).into(),
                None => error,
            },
        }
    }

    /// The capsule if it is running (activity is recorded), else the matching error.
    pub fn running(&self, id: &str) -> Result<Arc<Capsule>, HostError> {
        let capsule = self.capsule(id)?;
        if capsule.state() != State::Running {
            return Err(HostError::FailedPrecondition(format!(
                "capsule {id} is not running"
            )));
        }
        capsule.touch();
        Ok(capsule)
    }

    fn persist(&self, capsule: &Capsule) {
        let record = capsule.record();
        if let Err(e) = capsules::save(&self.wrenn_dir, &record) {
            warn!(capsule_id = %capsule.id, error = %e, "capsule record not saved");
        }
    }

    pub async fn create(&self, p: CreateParams) -> Result<(Arc<Capsule>, Started), HostError> {
        check_id(&p.id)?;
        check_base36("team", &p.team_id)?;
        check_base36("template", &p.template_id)?;
        let template_dir = self.template_dir(&p.team_id, &p.template_id);
        let (mut vcpus, mut memory_mb) = (
            p.vcpus.max(1),
            if p.memory_mb == 0 { 512 } else { p.memory_mb },
        );
        let mut base_dir = template_dir.clone();
        // envd restored from a snapshot still holds the snapshotted capsule's token; the
        // first /init must present it (and sets the new one).
        let mut restored_token = None;
        let snapshot_dir = match &p.snapshot {
            Some((team, tpl)) => {
                check_base36("team", team)?;
                check_base36("template", tpl)?;
                let dir = self.template_dir(team, tpl);
                let meta: serde_json::Value = std::fs::read(dir.join("snapshot.json"))
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .ok_or_else(|| {
                        HostError::NotFound(format!("snapshot template {team}/{tpl} not found"))
                    })?;
                // A fork continues the snapshot's machine: its base rootfs and resources.
                if let Some(base) = meta["base_template_dir"].as_str() {
                    base_dir = PathBuf::from(base);
                }
                vcpus = meta["vcpus"].as_u64().unwrap_or(vcpus as u64) as u32;
                memory_mb = meta["memory_mb"].as_u64().unwrap_or(memory_mb as u64) as u32;
                restored_token = std::fs::read(dir.join(SNAPSHOT_TOKEN_FILE))
                    .ok()
                    .map(|b| String::from_utf8_lossy(&b).trim().to_owned());
                Some(dir)
            }
            None => None,
        };
        if !base_dir.join("rootfs").is_dir() {
            return Err(HostError::NotFound(format!(
                "template {}/{} not found",
                p.team_id, p.template_id
            )));
        }
        if vcpus > self.limits.cpus {
            return Err(HostError::InvalidArgument(format!(
                "{vcpus} vCPUs requested; this host has {}",
                self.limits.cpus
            )));
        }
        if u64::from(memory_mb) > self.limits.memory_mb {
            return Err(HostError::InvalidArgument(format!(
                "{memory_mb} MiB requested; this host has {} MiB",
                self.limits.memory_mb
            )));
        }
        use crate::runtime::gvisor::disk::{MAX_DISK_MB, MIN_DISK_MB};
        if p.disk_mb != 0 && !(MIN_DISK_MB..=MAX_DISK_MB).contains(&p.disk_mb) {
            return Err(HostError::InvalidArgument(format!(
                "disk_mb must be between {MIN_DISK_MB} and {MAX_DISK_MB} (0: the default)"
            )));
        }
        let network = network_policy(&p.network_mode, &p.network_allow).await?;
        let token = if p.access_token.is_empty() {
            hex::encode(rand::random::<[u8; 16]>())
        } else {
            p.access_token
        };
        let spec = CapsuleSpec {
            id: p.id.clone(),
            template_dir: base_dir,
            snapshot_dir,
            vcpus,
            memory_mb,
            disk_mb: p.disk_mb,
            env: p.env.clone(),
            network,
        };
        let init = InitParams {
            access_token: token.clone(),
            default_user: p.default_user,
            default_workdir: p.default_workdir,
            env_vars: p.env,
            sandbox_id: p.id.clone(),
            template_id: p.template_id.clone(),
            machine_id: hex::encode(rand::random::<[u8; 16]>()),
        };
        let record = Record {
            capsule_id: String::new(),
            spec: spec.clone(),
            team_id: p.team_id,
            template_id: p.template_id,
            timeout_sec: p.timeout_sec,
            created_at_unix: chrono::Utc::now().timestamp(),
            state: State::Running,
            auto_paused: false,
            init: init.clone(),
            envd_version: String::new(),
        };
        if spec.snapshot_dir.is_none() {
            let shape = pool::Shape::new(spec.template_dir.clone(), vcpus, memory_mb, p.disk_mb);
            if let Some(entry) = self.pool.take(self, &shape) {
                match self.hand_over(entry, record.clone(), &init).await {
                    Ok(done) => return Ok(done),
                    // The entry is gone; boot one as if there were no pool.
                    Err(e) => {
                        warn!(capsule_id = %p.id, error = %e, "warm pool hand-over failed; booting a capsule")
                    }
                }
            }
        }
        let envd = Envd::new(self.runtime.envd_address(&p.id), token);
        let capsule = Capsule::new(record, envd.clone());
        if !self.capsules.insert(capsule.clone()) {
            return Err(HostError::AlreadyExists(format!(
                "capsule {} already exists",
                p.id
            )));
        }
        let _op = capsule.op.lock().await;
        let result = async {
            let address = self.runtime.create(&spec).await?;
            let first = match &restored_token {
                Some(old) => Envd::new(address.clone(), old.clone()),
                None => envd.clone(),
            };
            let version = first.wait_healthy(ENVD_READY_TIMEOUT).await?;
            first.init(&init).await?;
            Ok::<_, HostError>((address, version))
        }
        .await;
        match result {
            Ok((address, version)) => {
                capsule.lock().record.envd_version = version.clone();
                capsule.touch();
                self.persist(&capsule);
                info!(capsule_id = %p.id, "capsule created");
                Ok((
                    capsule.clone(),
                    Started {
                        envd_version: version,
                        envd_address: address.to_string(),
                    },
                ))
            }
            Err(e) => {
                warn!(capsule_id = %p.id, error = %e, "capsule create failed");
                let _ = self.runtime.destroy(&p.id).await;
                self.capsules.remove(&p.id);
                Err(e)
            }
        }
    }

    /// Makes a warm pool entry the capsule of `record`: its egress policy, then `/init`
    /// with the capsule's token, env vars, user and a fresh machine id. On failure the entry
    /// is destroyed and the capsule id left free.
    async fn hand_over(
        &self,
        entry: pool::Entry,
        mut record: Record,
        init: &InitParams,
    ) -> Result<(Arc<Capsule>, Started), HostError> {
        let id = record.spec.id.clone();
        record.capsule_id = id.clone();
        record.spec.id = entry.rid.clone();
        record.envd_version = entry.envd_version.clone();
        let envd = Envd::new(entry.address.clone(), init.access_token.clone());
        let capsule = Capsule::new(record.clone(), envd.clone());
        if !self.capsules.insert(capsule.clone()) {
            self.pool.discard(self, entry);
            return Err(HostError::AlreadyExists(format!(
                "capsule {id} already exists"
            )));
        }
        let _op = capsule.op.lock().await;
        let result = async {
            let networked = self.runtime.capabilities().network_mode == "sandbox";
            if networked && record.spec.network != entry.spec.network {
                self.runtime
                    .set_network(&entry.rid, &record.spec.network)
                    .await?;
            }
            Envd::new(entry.address.clone(), entry.token.clone())
                .init(init)
                .await?;
            Ok::<_, HostError>(())
        }
        .await;
        if let Err(e) = result {
            let _ = self.runtime.destroy(&entry.rid).await;
            self.capsules.remove(&id);
            return Err(e);
        }
        capsule.touch();
        self.persist(&capsule);
        info!(capsule_id = %id, pool_entry = %entry.rid, "capsule created from the warm pool");
        Ok((
            capsule.clone(),
            Started {
                envd_version: entry.envd_version,
                envd_address: entry.address.to_string(),
            },
        ))
    }

    pub async fn destroy(&self, id: &str) -> Result<(), HostError> {
        check_id(id)?;
        if self.graveyard.forget(id) {
            // Cleaned up when it died; only leftovers of an interrupted clean-up remain.
            return match self.runtime.destroy(id).await {
                Ok(()) | Err(RuntimeError::NotFound(_)) => Ok(()),
                Err(e) => Err(e.into()),
            };
        }
        match self.capsules.get(id) {
            Some(capsule) => {
                let _op = capsule.op.lock().await;
                let result = self.runtime.destroy(&capsule.rid).await;
                self.capsules.remove(id);
                match result {
                    Ok(()) | Err(RuntimeError::NotFound(_)) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
            // Not in the registry: still remove runtime leftovers if there are any.
            None => self.runtime.destroy(id).await.map_err(HostError::from),
        }
    }

    /// Pauses a running capsule (memory kept). `auto` marks a TTL pause.
    pub async fn pause(&self, id: &str, auto: bool) -> Result<u64, HostError> {
        let capsule = self.capsule(id)?;
        let _op = capsule.op.lock().await;
        let freeze = !self.hibernate_after.is_zero();
        self.pause_locked(&capsule, auto, freeze).await
    }

    /// Pauses a running capsule: a freeze in place when `frozen`, else a checkpoint to disk.
    async fn pause_locked(
        &self,
        capsule: &Capsule,
        auto: bool,
        frozen: bool,
    ) -> Result<u64, HostError> {
        if capsule.state() != State::Running {
            return Err(HostError::FailedPrecondition(format!(
                "capsule {} is not running",
                capsule.id
            )));
        }
        let bytes = if frozen {
            self.runtime.freeze(&capsule.rid).await?;
            0
        } else {
            capsule.envd().prepare_snapshot().await?;
            self.runtime.pause(&capsule.rid).await?
        };
        {
            let mut live = capsule.lock();
            live.record.state = State::Paused;
            live.record.auto_paused = auto;
            live.frozen_since = frozen.then(Instant::now);
        }
        self.persist(capsule);
        info!(capsule_id = %capsule.id, auto, frozen, bytes, "capsule paused");
        Ok(bytes)
    }

    /// Writes a capsule frozen in place to disk as a checkpoint (thaw, prepare envd,
    /// checkpoint); it stays paused. A capsule already on disk is left as it is. Should the
    /// checkpoint fail, the capsule is frozen again, as it was.
    pub async fn hibernate(&self, id: &str) -> Result<(), HostError> {
        let capsule = self.capsule(id)?;
        let _op = capsule.op.lock().await;
        self.hibernate_locked(&capsule).await
    }

    async fn hibernate_locked(&self, capsule: &Capsule) -> Result<(), HostError> {
        if capsule.state() != State::Paused || !self.runtime.is_frozen(&capsule.rid).await {
            return Ok(());
        }
        let started = Instant::now();
        self.runtime.thaw(&capsule.rid).await?;
        let checkpoint = async {
            capsule.envd().prepare_snapshot().await?;
            Ok::<_, HostError>(self.runtime.pause(&capsule.rid).await?)
        }
        .await;
        let bytes = match checkpoint {
            Ok(bytes) => bytes,
            Err(e) => {
                warn!(capsule_id = %capsule.id, error = %e,
                    "writing a frozen capsule to disk failed; it stays frozen");
                // prepare closed envd's listener: let it listen again before freezing.
                let _ = self.runtime.listen_again(&capsule.rid).await;
                self.runtime.freeze(&capsule.rid).await?;
                return Err(e);
            }
        };
        capsule.lock().frozen_since = None;
        self.persist(capsule);
        info!(capsule_id = %capsule.id, bytes, ms = started.elapsed().as_millis() as u64,
            "paused capsule written to disk");
        Ok(())
    }

    pub async fn resume(&self, id: &str, timeout_sec: u32) -> Result<Started, HostError> {
        let capsule = self.capsule(id)?;
        let _op = capsule.op.lock().await;
        if capsule.state() != State::Paused {
            return Err(HostError::FailedPrecondition(format!(
                "capsule {id} is not paused"
            )));
        }
        let record = capsule.record();
        let address = self.runtime.resume(&record.spec).await?;
        let envd = Envd::new(address.clone(), record.init.access_token.clone());
        let ready = async {
            let version = envd.wait_healthy(ENVD_READY_TIMEOUT).await?;
            envd.init(&record.init).await?;
            Ok::<_, HostError>(version)
        }
        .await;
        let version = match ready {
            Ok(v) => v,
            Err(e) => {
                // Keep nothing half-alive, and lose nothing: the capsule stays paused, its
                // paused state intact for another resume.
                warn!(capsule_id = %id, error = %e,
                    "resumed capsule did not answer; it stays paused");
                self.runtime.abandon_resume(&capsule.rid).await;
                return Err(e);
            }
        };
        self.runtime.resumed(&capsule.rid).await;
        {
            let mut live = capsule.lock();
            live.envd = envd;
            live.record.state = State::Running;
            live.record.auto_paused = false;
            live.frozen_since = None;
            live.record.envd_version = version.clone();
            if timeout_sec > 0 {
                live.record.timeout_sec = timeout_sec;
            }
        }
        capsule.touch();
        self.persist(&capsule);
        info!(capsule_id = %id, "capsule resumed");
        Ok(Started {
            envd_version: version,
            envd_address: address.to_string(),
        })
    }

    /// Writes a snapshot template of the capsule (pausing it first if it runs); the capsule
    /// stays paused. Returns (size, vcpus, memory_mb).
    pub async fn snapshot(
        &self,
        id: &str,
        team: &str,
        template: &str,
    ) -> Result<(u64, u32, u32), HostError> {
        check_base36("team", team)?;
        check_base36("template", template)?;
        let dest = self.template_dir(team, template);
        if dest.exists() {
            return Err(HostError::AlreadyExists(format!(
                "template {team}/{template} already exists"
            )));
        }
        let capsule = self.capsule(id)?;
        let _op = capsule.op.lock().await;
        // A template is made from the checkpoint on disk: a running capsule is checkpointed
        // straight away, a frozen one written to disk first.
        if capsule.state() == State::Running {
            self.pause_locked(&capsule, false, false).await?;
        }
        self.hibernate_locked(&capsule).await?;
        let spec = capsule.record().spec;
        let size = self.runtime.snapshot_to_template(&spec, &dest).await?;
        let token = capsule.record().init.access_token;
        if let Err(e) = write_secret(&dest.join(SNAPSHOT_TOKEN_FILE), &token) {
            let _ = remove_tree_atomically(&dest);
            return Err(HostError::Internal(format!(
                "writing the snapshot's token: {e}"
            )));
        }
        info!(capsule_id = %id, template = %template, size, "snapshot template written");
        Ok((size, spec.vcpus, spec.memory_mb))
    }

    pub fn delete_snapshot(&self, team: &str, template: &str) -> Result<(), HostError> {
        check_base36("team", team)?;
        check_base36("template", template)?;
        let dir = self.template_dir(team, template);
        if !dir.exists() {
            return Err(HostError::NotFound(format!(
                "template {team}/{template} not found"
            )));
        }
        // Snapshot templates, and rootfs templates written by builds; never the platform's
        // reserved base images (ids 0-1024).
        if !dir.join("snapshot.json").exists() && is_reserved_base(team, template) {
            return Err(HostError::FailedPrecondition(format!(
                "template {team}/{template} is a reserved base template"
            )));
        }
        self.pool.drain_template(self, &dir);
        remove_tree_atomically(&dir)
            .map_err(|e| HostError::Internal(format!("removing template: {e}")))
    }

    /// Replaces a capsule's egress policy (running or paused) and records it.
    pub async fn set_network(
        &self,
        id: &str,
        mode: &str,
        allow: &[String],
    ) -> Result<NetworkPolicy, HostError> {
        let capsule = self.capsule(id)?;
        let policy = network_policy(mode, allow).await?;
        let _op = capsule.op.lock().await;
        self.runtime.set_network(&capsule.rid, &policy).await?;
        capsule.lock().record.spec.network = policy.clone();
        self.persist(&capsule);
        info!(capsule_id = %id, mode = ?policy.mode, "egress policy set");
        Ok(policy)
    }

    /// How many capsules are (running, paused).
    pub fn state_counts(&self) -> (usize, usize) {
        let all = self.capsules.all();
        let running = all.iter().filter(|c| c.state() == State::Running).count();
        (running, all.len() - running)
    }

    /// Ids auto-paused and still paused.
    pub fn auto_paused_ids(&self) -> Vec<String> {
        self.capsules
            .all()
            .into_iter()
            .filter(|c| {
                let live = c.lock();
                live.record.state == State::Paused && live.record.auto_paused
            })
            .map(|c| c.id.clone())
            .collect()
    }

    /// Pauses (or destroys) every running capsule; returns (paused, destroyed). `auto`
    /// marks the pauses as the agent's own (reported like TTL pauses).
    pub async fn stop_all(&self, pause: bool, auto: bool) -> (Vec<String>, Vec<String>) {
        let mut paused = Vec::new();
        let mut destroyed = Vec::new();
        for capsule in self.capsules.all() {
            if pause {
                if capsule.state() != State::Running {
                    continue;
                }
                match self.pause(&capsule.id, auto).await {
                    Ok(_) => paused.push(capsule.id.clone()),
                    Err(e) => {
                        warn!(capsule_id = %capsule.id, error = %e, "pause at shutdown failed")
                    }
                }
            } else if self.destroy(&capsule.id).await.is_ok() {
                destroyed.push(capsule.id.clone());
            }
        }
        (paused, destroyed)
    }
}

/// File in a snapshot template holding the access token its envd was snapshotted with.
const SNAPSHOT_TOKEN_FILE: &str = "access-token";

fn write_secret(path: &Path, value: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(value.as_bytes())
}

/// Renames a directory aside, then deletes it, so readers never see half a template.
fn remove_tree_atomically(dir: &Path) -> std::io::Result<()> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let trash = dir.with_file_name(format!(".deleted-{name}-{}", std::process::id()));
    std::fs::rename(dir, &trash)?;
    std::fs::remove_dir_all(trash)
}

/// A platform base image (platform team, template id 0-1024): never deleted by an RPC.
fn is_reserved_base(team: &str, template: &str) -> bool {
    team.bytes().all(|b| b == b'0') && u128::from_str_radix(template, 36).is_ok_and(|n| n <= 1024)
}

#[cfg(test)]
mod reserved_tests {
    use super::is_reserved_base;

    #[test]
    fn platform_base_images_are_reserved_and_built_templates_are_not() {
        let platform = "0000000000000000000000000";
        assert!(is_reserved_base(platform, "0000000000000000000000005"));
        assert!(is_reserved_base(platform, "00000000000000000000000sg")); // 1024
        assert!(!is_reserved_base(platform, "00000000000000000000000sh")); // 1025
        assert!(!is_reserved_base(
            "0000000000000000000000001",
            "0000000000000000000000005"
        ));
        assert!(!is_reserved_base(platform, "3k5bqzs0nb6eq9wc3d0b5e1xf"));
    }
}
