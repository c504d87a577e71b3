//! The gVisor driver: one runsc sandbox per capsule.
//!
//! Files of capsule `<id>` (container id `wrenn-<id>`, full length so no id is a prefix
//! of another in runsc commands):
//! - `$WRENN_DIR/sandboxes/<id>/bundle/config.json`: the OCI spec ([`bundle`]);
//! - `$WRENN_DIR/sandboxes/<id>/run/`: bind-mounted to `/run/wrenn`, holds envd's socket;
//! - `$WRENN_DIR/sandboxes/<id>/runsc.log`: runsc's output;
//! - `$WRENN_DIR/sandboxes/<id>/disk.img`, mounted on `disk/`: the capsule's disk, which
//!   holds its root overlay ([`disk`]);
//! - `$WRENN_DIR/snapshots/<id>/`: the checkpoint image while paused.
//!
//! A snapshot template directory holds `checkpoint/` (the image) and `snapshot.json`.
//! Restoring it under another id works because the root path recorded in the image is
//! the shared template rootfs, which every fork's bundle names too.

mod bundle;
pub mod disk;
mod freezer;
pub mod net;
pub mod probe;
mod runsc;
mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tracing::{info, warn};

use disk::Medium;
use freezer::Freezer;
pub use probe::probe;
use runsc::{Launch, Runsc};
use watch::Watched;

use net::Net;

use super::{
    Capabilities, CapsuleSpec, Death, EnvdAddress, LiveState, NetworkPolicy, Runtime, RuntimeError,
    Stats,
};

/// Disk of a capsule whose request names none (a control plane older than disks).
pub const DEFAULT_DISK_MB: u32 = 2048;

const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Restores tried before a create-from-snapshot or resume fails (see [`Gvisor::restore`]).
const RESTORE_ATTEMPTS: u32 = 3;

/// Settings of the gVisor driver.
#[derive(Debug, Clone)]
pub struct GvisorConfig {
    pub wrenn_dir: PathBuf,
    pub runsc: PathBuf,
    pub platform: String,
    pub network: String,
    /// Medium of the root overlay: `disk` (each capsule's own disk, `disk_mb` large),
    /// or runsc's `memory`, `self` or `dir=/path` (no disk bound).
    pub overlay: String,
    /// Per-capsule networking; required when `network` is `sandbox`.
    pub net: Option<net::NetConfig>,
    /// Freeze capsules in place with the host's cgroup freezer (`true`, falling back to
    /// `runsc pause` where the sandbox has no freezer group) or always with `runsc pause`.
    pub cgroup_freezer: bool,
}

pub struct Gvisor {
    runsc: Runsc,
    wrenn_dir: PathBuf,
    capabilities: Capabilities,
    /// Set when capsules run with `--network=sandbox`.
    net: Option<Net>,
    /// New capsules get a disk of their own.
    disks: bool,
    /// Sandbox processes of running capsules ([`watch`]).
    watched: Mutex<HashMap<String, Watched>>,
    /// Freezes go through the cgroup freezer ([`freezer`]).
    cgroup_freezer: bool,
}

/// runsc container id of a capsule.
pub fn container_id(id: &str) -> String {
    format!("wrenn-{id}")
}

impl Gvisor {
    /// Fails when the overlay is disabled: capsules would then write into the shared
    /// template rootfs.
    pub fn new(config: GvisorConfig, capabilities: Capabilities) -> Result<Self, RuntimeError> {
        if config.overlay.is_empty() || config.overlay == "none" {
            return Err(RuntimeError::Invalid(
                "the root overlay cannot be disabled: capsules share the template rootfs".into(),
            ));
        }
        let net = match (config.network.as_str(), config.net) {
            ("sandbox", Some(c)) => Some(Net::new(c)),
            ("sandbox", None) => {
                return Err(RuntimeError::Invalid(
                    "--network=sandbox needs the network settings".into(),
                ))
            }
            _ => None,
        };
        let disks = config.overlay == "disk";
        let runsc = Runsc {
            binary: config.runsc,
            root: config.wrenn_dir.join("runsc"),
            platform: config.platform,
            network: config.network,
            // With disks, the medium of commands that start no sandbox does not matter.
            overlay: if disks {
                "root:memory".into()
            } else {
                format!("root:{}", config.overlay)
            },
        };
        Ok(Gvisor {
            runsc,
            wrenn_dir: config.wrenn_dir,
            capabilities,
            net,
            disks,
            watched: Mutex::new(HashMap::new()),
            cgroup_freezer: config.cgroup_freezer,
        })
    }

    /// The flags that start capsule `spec` with its overlay in `medium`, its disk mounted
    /// first when it has one.
    async fn launch(&self, spec: &CapsuleSpec, medium: Medium) -> Result<Launch, RuntimeError> {
        let overlay = match medium {
            Medium::Disk => {
                let dir = self.sandbox_dir(&spec.id);
                let asked = if spec.disk_mb == 0 {
                    DEFAULT_DISK_MB
                } else {
                    spec.disk_mb
                };
                // A fork needs room for everything its snapshot wrote.
                let size =
                    asked.max(self.snapshot_meta(spec)["disk_mb"].as_u64().unwrap_or(0) as u32);
                disk::ensure(&dir, size).await?;
                format!("root:dir={}", disk::mount_point(&dir).display())
            }
            // Capsules from before disks, on a host that now has them, keep memory.
            Medium::Memory if self.disks => "root:memory".into(),
            Medium::Memory => self.runsc.overlay.clone(),
        };
        Ok(Launch { overlay })
    }

    /// `snapshot.json` of a fork's snapshot template (`null` for a fresh capsule).
    fn snapshot_meta(&self, spec: &CapsuleSpec) -> serde_json::Value {
        spec.snapshot_dir
            .as_ref()
            .and_then(|dir| std::fs::read(dir.join("snapshot.json")).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// The medium a new capsule's overlay uses: a fork's is its snapshot's.
    fn medium_for(&self, spec: &CapsuleSpec) -> Medium {
        match &spec.snapshot_dir {
            Some(_) => serde_json::from_value(self.snapshot_meta(spec)["overlay_medium"].clone())
                .unwrap_or_default(),
            None if self.disks => Medium::Disk,
            None => Medium::Memory,
        }
    }

    /// Notes the sandbox process of a capsule that just started ([`watch`]).
    async fn watch(&self, id: &str) {
        let observed = match self.runsc.state(&container_id(id)).await {
            Some((status, pid)) if status == "running" => Watched::observe(pid),
            _ => None,
        };
        let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        match observed {
            Some(w) => {
                watched.insert(id.to_owned(), w);
            }
            None => {
                watched.remove(id);
            }
        }
    }

    fn watched(&self, id: &str) -> Option<Watched> {
        self.watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .cloned()
    }

    fn unwatch(&self, id: &str) {
        self.watched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// The cgroup freezer of capsule `id`'s sandbox, when it has one. Capsules frozen this
    /// way are found whatever `--freezer` says now (an agent restarted with another setting).
    fn freezer(&self, id: &str) -> Option<Freezer> {
        Freezer::of_container(&container_id(id))
    }

    fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.wrenn_dir.join("sandboxes").join(id)
    }

    fn snapshot_dir(&self, id: &str) -> PathBuf {
        self.wrenn_dir.join("snapshots").join(id)
    }

    /// Writes the bundle and the run dir; returns (bundle dir, log path).
    fn prepare(&self, spec: &CapsuleSpec) -> Result<(PathBuf, PathBuf), RuntimeError> {
        let rootfs = spec.template_dir.join("rootfs");
        if !rootfs.is_dir() {
            return Err(RuntimeError::TemplateNotFound(
                spec.template_dir.display().to_string(),
            ));
        }
        let dir = self.sandbox_dir(&spec.id);
        let bundle_dir = dir.join("bundle");
        let run_dir = dir.join("run");
        std::fs::create_dir_all(&bundle_dir).map_err(RuntimeError::io("creating bundle dir"))?;
        std::fs::create_dir_all(&run_dir).map_err(RuntimeError::io("creating run dir"))?;
        mount_run_dir(&run_dir)?;
        // A stale socket from a previous run would make envd's bind fail.
        let _ = std::fs::remove_file(run_dir.join(bundle::ENVD_SOCKET));
        let netns = net::netns_path(&spec.id);
        let resolv_conf = dir.join("resolv.conf");
        let mounts = self.net.as_ref().map(|_| bundle::NetMounts {
            netns: &netns,
            resolv_conf: &resolv_conf,
        });
        let config = bundle::config(spec, &rootfs, bundle::init_args(&rootfs), &run_dir, mounts);
        let text =
            serde_json::to_vec_pretty(&config).map_err(|e| RuntimeError::Invalid(e.to_string()))?;
        std::fs::write(bundle_dir.join("config.json"), text)
            .map_err(RuntimeError::io("writing config.json"))?;
        Ok((bundle_dir, dir.join("runsc.log")))
    }

    /// Restores `image` as capsule `spec.id` and asks envd to listen again.
    ///
    /// On this host's runsc (20240729, systrap) a restored sandbox occasionally loses its
    /// init within milliseconds: envd takes a SIGSEGV inside its async runtime right after
    /// "Restore successful" (seen on forks and resumes, a few in a hundred restores while
    /// other capsules were busy; never on a fresh boot). The checkpoint image is intact, so
    /// such a restore is retried.
    async fn restore(
        &self,
        spec: &CapsuleSpec,
        image: &Path,
        medium: Medium,
    ) -> Result<(), RuntimeError> {
        let cid = container_id(&spec.id);
        let image_arg = format!("--image-path={}", image.display());
        let mut attempt = 1;
        loop {
            let (bundle_dir, log) = self.prepare(spec)?;
            if let Some(net) = &self.net {
                if net::netns_path(&spec.id).exists() {
                    net.readdress(&spec.id).await?;
                } else {
                    // Lost (a host reboot): build it again.
                    net.setup(&spec.id, &self.sandbox_dir(&spec.id), &spec.network)
                        .await?;
                }
            }
            let bundle_arg = format!("--bundle={}", bundle_dir.display());
            let launch = self.launch(spec, medium).await?;
            let restored = self
                .runsc
                .run_detached(
                    "restore",
                    &["restore", "--detach", &image_arg, &bundle_arg, &cid],
                    &log,
                    RUN_TIMEOUT,
                    &launch,
                )
                .await;
            if let Err(e) = restored {
                // The image is untouched by a failed restore: clear what it left and retry.
                if attempt < RESTORE_ATTEMPTS {
                    let output =
                        runsc::last_lines(&std::fs::read_to_string(&log).unwrap_or_default());
                    warn!(capsule_id = %spec.id, attempt, error = %e, %output,
                        "runsc restore failed; restoring again");
                    self.runsc.remove(&cid).await;
                    attempt += 1;
                    continue;
                }
                return Err(e);
            }
            let Err(e) = self.rebind(&cid).await else {
                self.await_socket(&spec.id, &cid).await;
                self.watch(&spec.id).await;
                return Ok(());
            };
            let output = runsc::last_lines(&std::fs::read_to_string(&log).unwrap_or_default());
            let stopped = self.runsc.status(&cid).await.as_deref() == Some("stopped");
            if stopped && attempt < RESTORE_ATTEMPTS {
                warn!(capsule_id = %spec.id, attempt, error = %e, %output,
                    "restored capsule stopped at once; restoring again");
                self.runsc.remove(&cid).await;
                attempt += 1;
                continue;
            }
            return Err(RuntimeError::Command {
                op: "runsc restore".into(),
                reason: format!("{e}; runsc output: {output}"),
            });
        }
    }

    /// envd closed its host-backed listener before the checkpoint; SIGUSR1 to PID 1
    /// (forwarded by tini) makes it bind again. `runsc kill` finds the init process by
    /// the container id recorded in the image, so for a fork (restored under a new id) the
    /// signal is sent from inside instead.
    async fn rebind(&self, cid: &str) -> Result<(), RuntimeError> {
        let t = Duration::from_secs(10);
        // `restore --detach` can return before the restored sandbox answers on its control
        // socket (large images, a loaded host: several restores at once on two cores have
        // taken longer than 8 s): retry for a while.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
        loop {
            if self
                .runsc
                .run("kill", &["kill", cid, "USR1"], t)
                .await
                .is_ok()
            {
                return Ok(());
            }
            let exec = self
                .runsc
                .run("exec", &["exec", cid, "/bin/sh", "-c", "kill -USR1 1"], t)
                .await;
            match exec {
                Ok(_) => return Ok(()),
                // A stopped container will not come back: no point retrying.
                Err(e) if self.runsc.status(cid).await.as_deref() == Some("stopped") => {
                    return Err(e)
                }
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Waits for envd's socket after a re-bind, signalling again while it is missing: a
    /// SIGUSR1 that lands while a restored sandbox is still settling can be lost (seen with
    /// several restores at once on two cores: the socket never came back). envd ignores the
    /// signal once it listens, so repeating it is harmless. Gives up after 20 s, leaving the
    /// health check to report the failure.
    async fn await_socket(&self, id: &str, cid: &str) {
        let EnvdAddress::Unix { path } = self.envd_address(id) else {
            return;
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            for _ in 0..10 {
                if path.exists() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if tokio::time::Instant::now() >= deadline {
                warn!(capsule_id = %id, "envd did not re-open its socket after the restore");
                return;
            }
            let _ = self.rebind(cid).await;
        }
    }

    /// Removes what a failed create left behind.
    async fn cleanup(&self, id: &str) {
        self.unwatch(id);
        self.runsc.remove(&container_id(id)).await;
        if let Some(net) = &self.net {
            net.teardown(id).await;
        }
        unmount_run_dir(&self.sandbox_dir(id));
        disk::release(&self.sandbox_dir(id));
        let _ = std::fs::remove_dir_all(self.sandbox_dir(id));
    }

    /// A fresh boot of the base template.
    async fn boot(&self, spec: &CapsuleSpec, medium: Medium) -> Result<(), RuntimeError> {
        let cid = container_id(&spec.id);
        let (bundle_dir, log) = self.prepare(spec)?;
        let launch = self.launch(spec, medium).await?;
        let bundle_arg = format!("--bundle={}", bundle_dir.display());
        self.runsc
            .run_detached(
                "run",
                &["run", "--detach", &bundle_arg, &cid],
                &log,
                RUN_TIMEOUT,
                &launch,
            )
            .await?;
        self.watch(&spec.id).await;
        Ok(())
    }

    /// Why capsule `id`'s sandbox ended: its memory, or else a crash told by the end of its
    /// runsc log.
    fn death(&self, id: &str, oom_killed: bool) -> Death {
        if oom_killed {
            return Death::OutOfMemory;
        }
        let log =
            std::fs::read_to_string(self.sandbox_dir(id).join("runsc.log")).unwrap_or_default();
        Death::Crashed(runsc::last_lines(&log))
    }

    /// Creates the sandbox dir and, with networking, the capsule's network.
    async fn setup_network(&self, spec: &CapsuleSpec) -> Result<(), RuntimeError> {
        let dir = self.sandbox_dir(&spec.id);
        std::fs::create_dir_all(&dir).map_err(RuntimeError::io("creating sandbox dir"))?;
        if let Some(net) = &self.net {
            net.setup(&spec.id, &dir, &spec.network).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Runtime for Gvisor {
    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn create(&self, spec: &CapsuleSpec) -> Result<EnvdAddress, RuntimeError> {
        let cid = container_id(&spec.id);
        if self.sandbox_dir(&spec.id).exists() || self.runsc.has_state(&cid) {
            return Err(RuntimeError::AlreadyExists(spec.id.clone()));
        }
        let medium = self.medium_for(spec);
        let result = match self.setup_network(spec).await {
            Err(e) => Err(e),
            Ok(()) => match &spec.snapshot_dir {
                Some(snapshot) => {
                    self.restore(spec, &snapshot.join("checkpoint"), medium)
                        .await
                }
                None => self.boot(spec, medium).await,
            },
        };
        match result {
            Ok(()) => {
                info!(capsule_id = %spec.id, "capsule started");
                Ok(self.envd_address(&spec.id))
            }
            Err(e) => {
                warn!(capsule_id = %spec.id, error = %e, "capsule start failed; cleaning up");
                self.cleanup(&spec.id).await;
                Err(e)
            }
        }
    }

    async fn destroy(&self, id: &str) -> Result<(), RuntimeError> {
        let cid = container_id(id);
        // A frozen task holds even SIGKILL (cgroup v1) until thawed, and `runsc state` does not
        // answer for a sandbox frozen by the cgroup freezer.
        let frozen = self.freezer(id).filter(Freezer::is_frozen);
        if let Some(f) = &frozen {
            let _ = f.thaw().await;
        }
        let known =
            frozen.is_some() || self.sandbox_dir(id).exists() || self.snapshot_dir(id).exists();
        if !known && self.runsc.status(&cid).await.is_none() {
            return Err(RuntimeError::NotFound(id.to_owned()));
        }
        self.unwatch(id);
        self.runsc.remove(&cid).await;
        if let Some(net) = &self.net {
            net.teardown(id).await;
        }
        unmount_run_dir(&self.sandbox_dir(id));
        disk::release(&self.sandbox_dir(id));
        for dir in [self.sandbox_dir(id), self.snapshot_dir(id)] {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(RuntimeError::Io {
                        context: format!("removing {}", dir.display()),
                        source: e,
                    });
                }
            }
        }
        Ok(())
    }

    async fn pause(&self, id: &str) -> Result<u64, RuntimeError> {
        let cid = container_id(id);
        let image = self.snapshot_dir(id);
        let _ = std::fs::remove_dir_all(&image);
        std::fs::create_dir_all(&image).map_err(RuntimeError::io("creating snapshot dir"))?;
        let image_arg = format!("--image-path={}", image.display());
        self.unwatch(id);
        if let Err(e) = self
            .runsc
            .run("checkpoint", &["checkpoint", &image_arg, &cid], RUN_TIMEOUT)
            .await
        {
            let _ = std::fs::remove_dir_all(&image);
            // envd closed its listener for the checkpoint; let it listen again.
            let _ = self.rebind(&cid).await;
            self.watch(id).await;
            return Err(e);
        }
        // The checkpointed container is stopped; delete it so restore can reuse the id.
        let _ = self
            .runsc
            .run(
                "delete",
                &["delete", "--force", &cid],
                Duration::from_secs(10),
            )
            .await;
        Ok(dir_size(&image))
    }

    async fn freeze(&self, id: &str) -> Result<(), RuntimeError> {
        if let Some(f) = self.freezer(id).filter(|_| self.cgroup_freezer) {
            let started = std::time::Instant::now();
            let result = f.freeze().await;
            crate::telemetry::get().command("cgroup-freeze", result.is_ok(), started.elapsed());
            return result.map_err(|e| RuntimeError::Command {
                op: "cgroup freeze".into(),
                reason: e.to_string(),
            });
        }
        let t = Duration::from_secs(10);
        self.runsc
            .run("pause", &["pause", &container_id(id)], t)
            .await?;
        Ok(())
    }

    async fn thaw(&self, id: &str) -> Result<(), RuntimeError> {
        // Frozen either way: by this driver's freezer, or by `runsc pause` (an earlier agent).
        if let Some(f) = self.freezer(id).filter(Freezer::is_frozen) {
            let started = std::time::Instant::now();
            let result = f.thaw().await;
            crate::telemetry::get().command("cgroup-thaw", result.is_ok(), started.elapsed());
            return result.map_err(|e| RuntimeError::Command {
                op: "cgroup thaw".into(),
                reason: e.to_string(),
            });
        }
        let t = Duration::from_secs(10);
        self.runsc
            .run("resume", &["resume", &container_id(id)], t)
            .await?;
        Ok(())
    }

    async fn is_frozen(&self, id: &str) -> bool {
        if self.freezer(id).is_some_and(|f| f.is_frozen()) {
            return true;
        }
        self.runsc.status(&container_id(id)).await.as_deref() == Some("paused")
    }

    async fn listen_again(&self, id: &str) -> Result<(), RuntimeError> {
        self.rebind(&container_id(id)).await
    }

    async fn resume(&self, spec: &CapsuleSpec) -> Result<EnvdAddress, RuntimeError> {
        if self.is_frozen(&spec.id).await {
            self.thaw(&spec.id).await?;
            return Ok(self.envd_address(&spec.id));
        }
        let image = self.snapshot_dir(&spec.id);
        if !image.join("checkpoint.img").exists() {
            return Err(RuntimeError::Invalid(format!(
                "capsule {} has no paused state",
                spec.id
            )));
        }
        let medium = if disk::exists(&self.sandbox_dir(&spec.id)) {
            Medium::Disk
        } else {
            Medium::Memory
        };
        if let Err(e) = self.restore(spec, &image, medium).await {
            // Keep the paused state so a later resume can retry.
            self.abandon_resume(&spec.id).await;
            return Err(e);
        }
        Ok(self.envd_address(&spec.id))
    }

    async fn resumed(&self, id: &str) {
        let _ = std::fs::remove_dir_all(self.snapshot_dir(id));
    }

    async fn abandon_resume(&self, id: &str) {
        if !self.snapshot_dir(id).join("checkpoint.img").exists() {
            // A thaw: the capsule's only copy is the sandbox itself. Freeze it again.
            if let Err(e) = self.freeze(id).await {
                warn!(capsule_id = %id, error = %e, "could not freeze a capsule again");
            }
            return;
        }
        self.unwatch(id);
        self.runsc.remove(&container_id(id)).await;
    }

    async fn snapshot_to_template(
        &self,
        spec: &CapsuleSpec,
        dest: &Path,
    ) -> Result<u64, RuntimeError> {
        let image = self.snapshot_dir(&spec.id);
        if !image.join("checkpoint.img").exists() {
            return Err(RuntimeError::Invalid(format!(
                "capsule {} is not paused",
                spec.id
            )));
        }
        if dest.exists() {
            return Err(RuntimeError::AlreadyExists(dest.display().to_string()));
        }
        let parent = dest
            .parent()
            .ok_or_else(|| RuntimeError::Invalid("bad template path".into()))?;
        std::fs::create_dir_all(parent).map_err(RuntimeError::io("creating template parent"))?;
        let tmp = parent.join(format!(".snapshot-{}", spec.id));
        let _ = std::fs::remove_dir_all(&tmp);
        let checkpoint = tmp.join("checkpoint");
        std::fs::create_dir_all(&checkpoint).map_err(RuntimeError::io("creating template dir"))?;
        let copy = || -> std::io::Result<()> {
            for entry in std::fs::read_dir(&image)? {
                let entry = entry?;
                std::fs::copy(entry.path(), checkpoint.join(entry.file_name()))?;
            }
            let meta = serde_json::json!({
                "base_template_dir": spec.template_dir,
                "vcpus": spec.vcpus,
                "memory_mb": spec.memory_mb,
                "disk_mb": spec.disk_mb,
                "runtime": "gvisor",
                "overlay_medium": if disk::exists(&self.sandbox_dir(&spec.id)) {
                    Medium::Disk
                } else {
                    Medium::Memory
                },
            });
            std::fs::write(tmp.join("snapshot.json"), serde_json::to_vec_pretty(&meta)?)?;
            std::fs::rename(&tmp, dest)
        };
        if let Err(e) = copy() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(RuntimeError::Io {
                context: "writing snapshot template".into(),
                source: e,
            });
        }
        Ok(dir_size(dest))
    }

    async fn stats(&self, id: &str) -> Result<Stats, RuntimeError> {
        let cid = container_id(id);
        let out = self
            .runsc
            .run(
                "events",
                &["events", "--stats", &cid],
                Duration::from_secs(10),
            )
            .await?;
        let v: serde_json::Value =
            serde_json::from_str(out.stdout.trim()).map_err(|e| RuntimeError::Command {
                op: "runsc events".into(),
                reason: format!("unreadable stats: {e}"),
            })?;
        let data = &v["data"];
        Ok(Stats {
            cpu_ns: data["cpu"]["usage"]["total"].as_u64().unwrap_or(0),
            mem_bytes: data["memory"]["usage"]["usage"].as_u64().unwrap_or(0),
            disk_bytes: disk::used_bytes(&self.sandbox_dir(id)),
        })
    }

    async fn state(&self, id: &str) -> LiveState {
        // Frozen by the cgroup freezer: runsc does not know of it (and its `state` would not
        // answer until the thaw).
        if self.freezer(id).is_some_and(|f| f.is_frozen()) {
            return LiveState::Paused;
        }
        match self.runsc.status(&container_id(id)).await.as_deref() {
            Some("running") => LiveState::Running,
            // Frozen in place; an agent restart finds it so.
            Some("paused") => LiveState::Paused,
            _ if self.snapshot_dir(id).join("checkpoint.img").exists() => LiveState::Paused,
            _ => LiveState::Gone,
        }
    }

    async fn exited(&self, id: &str) -> Option<Death> {
        let watched = match self.watched(id) {
            Some(w) if w.alive() => return None,
            Some(w) => w,
            // Adopted after an agent restart: learn its process now.
            None => {
                self.watch(id).await;
                if self.watched(id).is_some() {
                    return None;
                }
                // Not running: no process to inspect, but its cgroup remains until deleted.
                return Some(self.death(id, watch::oom_killed_container(&container_id(id))));
            }
        };
        // The process has ended. runsc calls a sandbox whose process is a zombie "running",
        // so only a different live process means the sandbox was started again meanwhile.
        if let Some((status, pid)) = self.runsc.state(&container_id(id)).await {
            if status == "running" && pid != watched.pid() && Watched::observe(pid).is_some() {
                self.watch(id).await;
                return None;
            }
        }
        Some(self.death(id, watched.oom_killed()))
    }

    async fn set_network(&self, id: &str, policy: &NetworkPolicy) -> Result<(), RuntimeError> {
        let Some(net) = &self.net else {
            return Err(RuntimeError::Invalid(
                "this host runs capsules without a network (--network=none)".into(),
            ));
        };
        if !self.sandbox_dir(id).exists() {
            return Err(RuntimeError::NotFound(id.to_owned()));
        }
        net.apply(id, policy).await
    }

    fn envd_address(&self, id: &str) -> EnvdAddress {
        EnvdAddress::Unix {
            path: self.sandbox_dir(id).join("run").join(bundle::ENVD_SOCKET),
        }
    }

    async fn settle(&self) {
        let deadline = tokio::time::Instant::now() + RUN_TIMEOUT;
        let mut announced = false;
        loop {
            let pids = self.runsc.commands_in_flight();
            if pids.is_empty() {
                return;
            }
            if !announced {
                info!(?pids, "waiting for runsc commands a previous agent started");
                announced = true;
            }
            if tokio::time::Instant::now() >= deadline {
                warn!(
                    ?pids,
                    "runsc commands of a previous agent still running; recovering anyway"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn sweep(&self, keep: &[String]) -> Result<Vec<String>, RuntimeError> {
        let mut removed = Vec::new();
        let keep_cids: Vec<String> = keep.iter().map(|id| container_id(id)).collect();
        for cid in self.runsc.list().await.unwrap_or_default() {
            if cid.starts_with("wrenn-") && !keep_cids.contains(&cid) {
                self.runsc.remove(&cid).await;
                removed.push(cid);
            }
        }
        for sub in ["sandboxes", "snapshots"] {
            let Ok(entries) = std::fs::read_dir(self.wrenn_dir.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !keep.contains(&name) {
                    if sub == "sandboxes" {
                        if let Some(net) = &self.net {
                            net.teardown(&name).await;
                        }
                        unmount_run_dir(&entry.path());
                        disk::release(&entry.path());
                    }
                    let _ = std::fs::remove_dir_all(entry.path());
                    removed.push(format!("{sub}/{name}"));
                }
            }
        }
        Ok(removed)
    }
}

/// Size of the tmpfs holding a capsule's `run/` directory (`/run/wrenn` inside): envd's
/// socket needs none of it; the bound is what a capsule can write to the host through it.
pub const RUN_DIR_TMPFS: &str = "size=1m,nr_inodes=64,mode=0755";

/// Mounts a small tmpfs on a capsule's host `run/` directory unless one is there already
/// (a restore, an adopted capsule), so that writes to `/run/wrenn` never reach the host disk.
fn mount_run_dir(run_dir: &Path) -> Result<(), RuntimeError> {
    use std::os::unix::fs::MetadataExt;
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev());
    let parent = run_dir.parent().unwrap_or(run_dir);
    if let (Ok(a), Ok(b)) = (dev(run_dir), dev(parent)) {
        if a != b {
            return Ok(());
        }
    }
    use nix::mount::MsFlags;
    nix::mount::mount(
        Some("tmpfs"),
        run_dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(RUN_DIR_TMPFS),
    )
    .map_err(|e| RuntimeError::Io {
        context: format!("mounting a tmpfs on {}", run_dir.display()),
        source: e.into(),
    })
}

/// Detaches the tmpfs of a capsule's `run/` directory (absent is fine).
fn unmount_run_dir(sandbox_dir: &Path) {
    let _ = nix::mount::umount2(&sandbox_dir.join("run"), nix::mount::MntFlags::MNT_DETACH);
}

/// Total size of the regular files directly in `dir`.
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}
