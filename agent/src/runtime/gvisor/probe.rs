//! Start-up probe: what runsc can do on this host, measured rather than assumed.
//!
//! Each probe runs a throw-away container whose root is the host's `/` (read-only, behind
//! runsc's overlay) running the host's `sleep`, so no image is needed. Results are cached
//! in a JSON file keyed by runsc version and kernel release, because the probe takes a
//! few seconds (a KVM platform that hangs is only detected by a timeout).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::process::Command;
use tracing::info;

use super::runsc::{self, Runsc};
use crate::runtime::Capabilities;

const PROBE_TIMEOUT: Duration = Duration::from_secs(8);

/// Probes runsc (`binary`) with scratch state under `scratch`; `preferred_*` are the
/// configured platform and network mode, reported as the ones in use when they work.
pub async fn probe(
    binary: &Path,
    scratch: &Path,
    cache: Option<&Path>,
    preferred_platform: &str,
    preferred_network: &str,
) -> Capabilities {
    let version = runsc_version(binary).await;
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    // "v2": the sandbox network is probed the way capsules run it (netns in the spec,
    // /proc/sys/net masked); results of the older probe do not count.
    let key = format!("v2|{version}|{kernel}");
    if let Some(caps) = cache.and_then(|c| read_cache(c, &key)) {
        return finish(caps, preferred_platform, preferred_network);
    }
    let mut caps = Capabilities {
        runtime: "gvisor".into(),
        runtime_version: version.clone(),
        kernel_version: kernel,
        pause_keeps_memory: true,
        ..Default::default()
    };
    if version.is_empty() {
        caps.notes
            .insert("runsc".into(), format!("{} not runnable", binary.display()));
        return caps;
    }
    let _ = std::fs::create_dir_all(scratch);
    let kvm = Path::new("/dev/kvm").exists();
    let mut platforms = vec!["systrap", "ptrace"];
    if kvm {
        platforms.push("kvm");
    }
    for platform in platforms {
        match try_container(binary, scratch, platform, "none", None, NetnsUse::None).await {
            Ok(()) => caps.platforms.push(platform.into()),
            Err(e) => {
                caps.notes.insert(format!("platform.{platform}"), e);
            }
        }
    }
    caps.hardware_virtualization = caps.platforms.iter().any(|p| p == "kvm");
    if !kvm {
        caps.notes.insert(
            "hardware_virtualization".into(),
            "/dev/kvm is absent".into(),
        );
    } else if !caps.hardware_virtualization {
        caps.notes.insert(
            "hardware_virtualization".into(),
            "/dev/kvm exists but a KVM guest does not run (nested/paravirtual KVM)".into(),
        );
    }
    let platform = caps
        .platforms
        .first()
        .cloned()
        .unwrap_or_else(|| "systrap".into());
    for (mode, netns) in [
        ("none", NetnsUse::None),
        ("sandbox", NetnsUse::Spec),
        ("host-in-netns", NetnsUse::Nsenter),
    ] {
        let network = if mode == "host-in-netns" {
            "host"
        } else {
            mode
        };
        match try_container(binary, scratch, &platform, network, None, netns).await {
            Ok(()) => caps.network_modes.push(mode.into()),
            Err(e) => {
                caps.notes.insert(format!("network.{mode}"), e);
                continue;
            }
        }
        let image = scratch.join(format!("image-{mode}"));
        match try_container(binary, scratch, &platform, network, Some(&image), netns).await {
            Ok(()) => caps.checkpoint_network_modes.push(mode.into()),
            Err(e) => {
                caps.notes.insert(format!("checkpoint.{mode}"), e);
            }
        }
        let _ = std::fs::remove_dir_all(&image);
    }
    caps.snapshots = !caps.checkpoint_network_modes.is_empty();
    if let Some(c) = cache {
        let _ = std::fs::write(
            c,
            serde_json::to_vec_pretty(&json!({"key": key, "capabilities": caps}))
                .unwrap_or_default(),
        );
    }
    info!(?caps, "runtime probed");
    finish(caps, preferred_platform, preferred_network)
}

/// Sets the platform and network mode in use. A configured network mode that failed the
/// probe (or cannot be checkpointed) falls back to `none`, with the reason in the notes.
fn finish(mut caps: Capabilities, platform: &str, network: &str) -> Capabilities {
    caps.platform = platform.into();
    let works = caps.network_modes.iter().any(|m| m == network)
        && caps.checkpoint_network_modes.iter().any(|m| m == network);
    if works || network == "none" {
        caps.network_mode = network.into();
    } else {
        let why = caps
            .notes
            .get(&format!("network.{network}"))
            .or_else(|| caps.notes.get(&format!("checkpoint.{network}")))
            .cloned()
            .unwrap_or_else(|| "not supported by this runsc".into());
        caps.notes.insert(
            "network_mode".into(),
            format!("{network} unavailable ({why}); capsules run with none"),
        );
        caps.network_mode = "none".into();
    }
    caps
}

/// How a probe container gets its network namespace.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NetnsUse {
    /// runsc makes one (empty).
    None,
    /// A netns created for the probe, named in the OCI spec (how capsules run).
    Spec,
    /// runsc runs under `nsenter --net` of a netns created for the probe.
    Nsenter,
}

fn read_cache(path: &Path, key: &str) -> Option<Capabilities> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    if v["key"].as_str()? != key {
        return None;
    }
    serde_json::from_value(v["capabilities"].clone()).ok()
}

async fn runsc_version(binary: &Path) -> String {
    let out = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("runsc version ")
            .to_owned(),
        _ => String::new(),
    }
}

/// Runs a probe container; with `checkpoint`, also checkpoints it into that directory.
/// `netns` says how it gets its network namespace.
async fn try_container(
    binary: &Path,
    scratch: &Path,
    platform: &str,
    network: &str,
    checkpoint: Option<&Path>,
    netns_use: NetnsUse,
) -> Result<(), String> {
    let netns = netns_use == NetnsUse::Nsenter;
    let n = rand::random::<u32>();
    let netns_name = format!("wrenn-probe-{n:08x}");
    let mut ns = json!({"type": "network"});
    if netns_use == NetnsUse::Spec {
        ns["path"] = json!(format!("/run/netns/{netns_name}"));
    }
    let cid = format!("wrenn-probe-{}-{n:08x}", std::process::id());
    let bundle = scratch.join(&cid);
    std::fs::create_dir_all(&bundle).map_err(|e| e.to_string())?;
    let config = json!({
        "ociVersion": "1.0.0",
        "process": {"args": ["/bin/sleep", "30"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                    "env": ["PATH=/usr/bin:/bin"]},
        "root": {"path": "/", "readonly": true},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, ns]}
    });
    std::fs::write(bundle.join("config.json"), config.to_string()).map_err(|e| e.to_string())?;
    if netns_use != NetnsUse::None {
        run_plain("ip", &["netns", "add", &netns_name], &bundle.join("ip.err")).await?;
    }
    let runsc = Runsc {
        binary: binary.to_path_buf(),
        root: scratch.join("root"),
        platform: platform.into(),
        network: network.into(),
        overlay: "root:memory".into(),
    };
    let result = async {
        let bundle_arg = format!("--bundle={}", bundle.display());
        let log = bundle.join("log");
        if netns {
            // runsc state must be queried in the same namespace setup; the probe only
            // runs and checkpoints, so entering the netns for run/checkpoint suffices.
            in_netns(&runsc, &netns_name, &["run", "--detach", &bundle_arg, &cid]).await?;
        } else {
            runsc
                .run_detached(
                    "run",
                    &["run", "--detach", &bundle_arg, &cid],
                    &log,
                    PROBE_TIMEOUT,
                    &runsc::Launch {
                        overlay: runsc.overlay.clone(),
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        if let Some(image) = checkpoint {
            std::fs::create_dir_all(image).map_err(|e| e.to_string())?;
            let image_arg = format!("--image-path={}", image.display());
            if netns {
                in_netns(&runsc, &netns_name, &["checkpoint", &image_arg, &cid]).await?;
            } else {
                runsc
                    .run(
                        "checkpoint",
                        &["checkpoint", &image_arg, &cid],
                        PROBE_TIMEOUT,
                    )
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok::<(), String>(())
    }
    .await;
    runsc.remove(&cid).await;
    if netns_use != NetnsUse::None {
        let _ = run_plain(
            "ip",
            &["netns", "delete", &netns_name],
            &bundle.join("ip.err"),
        )
        .await;
    }
    let _ = std::fs::remove_dir_all(&bundle);
    result
}

async fn in_netns(runsc: &Runsc, netns: &str, args: &[&str]) -> Result<(), String> {
    let mut full: Vec<String> = vec![
        format!("--net=/run/netns/{netns}"),
        "--".into(),
        runsc.binary.display().to_string(),
        format!("--root={}", runsc.root.display()),
        format!("--platform={}", runsc.platform),
        format!("--network={}", runsc.network),
        format!("--overlay2={}", runsc.overlay),
    ];
    full.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    let err = runsc.root.with_file_name(format!("nsenter-{netns}.err"));
    let result = run_plain("nsenter", &refs, &err).await;
    let _ = std::fs::remove_file(&err);
    result
}

/// Runs a command with stderr in a file (a detached sandbox would otherwise hold a pipe
/// open and the wait would never end).
async fn run_plain(program: &str, args: &[&str], err_file: &Path) -> Result<(), String> {
    let err = std::fs::File::create(err_file).map_err(|e| e.to_string())?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let status = tokio::time::timeout(PROBE_TIMEOUT, child.wait()).await;
    let text = std::fs::read_to_string(err_file).unwrap_or_default();
    match status {
        Err(_) => Err(format!("{program} timed out after {PROBE_TIMEOUT:?}")),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(s)) if s.success() => Ok(()),
        Ok(Ok(_)) => Err(text
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("failed")
            .to_owned()),
    }
}

/// Scratch directory for probes under the runtime's state dir.
pub fn scratch_dir(wrenn_dir: &Path) -> PathBuf {
    wrenn_dir.join("probe")
}
