//! The OCI bundle (`config.json`) of one gVisor capsule.
//!
//! Root is the template's rootfs directory, shared by every capsule of the template and
//! never written: runsc's root overlay (memory or a per-capsule file) takes every write. envd is the init
//! process (via `wrenn-init`, under tini when the image has it) and listens on a Unix
//! socket in `/run/wrenn`, a bind mount of the capsule's host `run/` directory that the
//! host reaches through `--host-uds`.

use std::path::Path;

use serde_json::{json, Value};

use crate::runtime::CapsuleSpec;

/// Where envd listens inside the capsule; the directory is bind-mounted from the host.
pub const GUEST_RUN_DIR: &str = "/run/wrenn";
pub const ENVD_SOCKET: &str = "envd.sock";

/// CFS period used for vCPU quotas (100 ms, the kernel default).
const CPU_PERIOD_US: u64 = 100_000;

const CAPABILITIES: &[&str] = &[
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

/// RLIMIT_NPROC of the processes envd starts in a capsule of `memory_mb`: one task per 2 MiB
/// (at least 64). Measured with busybox shells in gVisor, a fork bomb's tasks cost about
/// 0.75 MB each: held at 256 tasks it peaked at 190 MB and the capsule lived on; at 1024 in
/// 512 MiB it exhausted the memory. envd itself keeps no limit, so it can still start the
/// commands that end a bomb.
pub fn max_processes(memory_mb: u32) -> u32 {
    (memory_mb / 2).clamp(64, 65_536)
}

/// The init command: the image's `wrenn-init` when present (it execs envd), else envd.
pub fn init_args(rootfs: &Path) -> Vec<String> {
    if rootfs.join("usr/local/bin/wrenn-init").exists() {
        vec!["/usr/local/bin/wrenn-init".into()]
    } else {
        vec![
            "/usr/local/bin/envd".into(),
            "--listen".into(),
            format!("unix:{GUEST_RUN_DIR}/{ENVD_SOCKET}"),
        ]
    }
}

/// The capsule's network, when it has one: its netns and its `/etc/resolv.conf`.
pub struct NetMounts<'a> {
    pub netns: &'a Path,
    pub resolv_conf: &'a Path,
}

/// Builds `config.json` for `spec` with the given rootfs, init args and host run dir.
pub fn config(
    spec: &CapsuleSpec,
    rootfs: &Path,
    args: Vec<String>,
    host_run_dir: &Path,
    net: Option<NetMounts<'_>>,
) -> Value {
    let mut env: Vec<String> = vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        "HOME=/root".into(),
        "TERM=xterm".into(),
        format!("WRENN_ENVD_LISTEN=unix:{GUEST_RUN_DIR}/{ENVD_SOCKET}"),
        format!("WRENN_SANDBOX_ID={}", spec.id),
        format!("ENVD_MAX_PROCESSES={}", max_processes(spec.memory_mb)),
    ];
    env.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}")));
    let caps: Vec<&str> = CAPABILITIES.to_vec();
    let memory = u64::from(spec.memory_mb) * 1024 * 1024;
    let mut mounts = json!([
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": GUEST_RUN_DIR, "type": "bind", "source": host_run_dir,
         "options": ["rbind", "rw"]}
    ]);
    // runsc without a netns path makes an empty one; with it, netstack takes its eth0.
    let mut netns = json!({"type": "network"});
    if let Some(net) = &net {
        netns["path"] = json!(net.netns);
        if let Some(list) = mounts.as_array_mut() {
            list.push(json!({"destination": "/etc/resolv.conf", "type": "bind",
                "source": net.resolv_conf, "options": ["bind", "ro"]}));
        }
    }
    // The sandbox counts its CPUs from the quota (`--cpu-num-from-quota`), never fewer than
    // 2. A 1-vCPU sandbox booted on a one-CPU cpuset would count 1, but its sentry then runs on
    // one Go processor, and one such capsule stalled mid-upload (its envd stopped reading):
    // runsc's floor stays until that is understood.
    let cpu =
        json!({"quota": u64::from(spec.vcpus.max(1)) * CPU_PERIOD_US, "period": CPU_PERIOD_US});
    json!({
        "ociVersion": "1.0.0",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": env,
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "inheritable": caps, "permitted": caps
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1_048_576u64, "soft": 1_048_576u64}],
            "noNewPrivileges": false
        },
        // Not `readonly`: runsc would then mount the root read-only *above* its overlay.
        // The overlay (always on, see `Gvisor::new`) keeps every write off the shared
        // template directory.
        "root": {"path": rootfs, "readonly": false},
        "hostname": "wrenn",
        "mounts": mounts,
        "linux": {
            "resources": {
                "cpu": cpu,
                "memory": {"limit": memory}
            },
            "namespaces": [
                {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, netns
            ]
        }
    })
}
