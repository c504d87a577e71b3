//! Test support: start the real `wrenn-agent` binary on a loopback port with a temporary
//! `WRENN_DIR`, images shared with `make images`, and talk to it over gRPC.
//!
//! Requirements (otherwise tests print why and skip): root, `runsc` on PATH, an envd
//! binary (`WRENN_ENVD`, `builds/envd` or the static release build). Images are built
//! into [`images_dir`] when missing, and envd re-injected when the binary is newer.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tonic::transport::Channel;
use wrenn_proto::hostagent::v1 as pb;
use wrenn_proto::hostagent::v1::host_agent_service_client::HostAgentServiceClient;

pub type Client = HostAgentServiceClient<Channel>;

pub const PLATFORM_TEAM: &str = "0000000000000000000000000";
pub const BUSYBOX: &str = "0000000000000000000000005";
pub const DEBIAN: &str = "0000000000000000000000004";

static BUILD_LOCK: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn envd_binary() -> Option<PathBuf> {
    let target =
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "/var/tmp/wrenn-target".into());
    [
        std::env::var("WRENN_ENVD").ok().map(PathBuf::from),
        Some(repo().join("builds/envd")),
        Some(PathBuf::from(target).join("x86_64-unknown-linux-gnu/release/envd")),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.is_file())
}

/// The shared images: `WRENN_TEST_IMAGES`, else `$WRENN_DIR/images` (what `make images`
/// builds), `WRENN_DIR` defaulting to /var/lib/wrenn.
pub fn images_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("WRENN_TEST_IMAGES") {
        return dir.into();
    }
    let wrenn = std::env::var("WRENN_DIR").unwrap_or_else(|_| "/var/lib/wrenn".into());
    Path::new(&wrenn).join("images")
}

/// Whether the image already carries exactly this envd. Contents, not modification times:
/// a fresh clone's `builds/envd` is always "newer", and re-injecting envd while another test
/// runs a capsule of the same rootfs breaks that capsule.
fn same_envd(image_envd: &Path, envd: &Path) -> bool {
    match (std::fs::read(image_envd), std::fs::read(envd)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Why the gVisor tests cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Some("not root (runsc needs root)".into());
    }
    if Command::new("runsc")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        return Some("runsc is not installed".into());
    }
    if envd_binary().is_none() {
        return Some("no envd binary (build the static envd or set WRENN_ENVD)".into());
    }
    None
}

/// Makes sure template `distro` exists in the shared images dir with the current envd.
pub fn ensure_image(distro: &str, id: &str) -> Result<(), String> {
    let mut ensured = BUILD_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // Checked once per test process: re-injecting envd while another test runs a capsule
    // (or restores a snapshot) of the same base rootfs would break that capsule.
    if ensured.contains(&distro.to_owned()) {
        return Ok(());
    }
    ensure_image_now(distro, id)?;
    ensured.push(distro.to_owned());
    Ok(())
}

fn ensure_image_now(distro: &str, id: &str) -> Result<(), String> {
    let envd = envd_binary().ok_or("no envd")?;
    let dir = images_dir().join("teams").join(PLATFORM_TEAM).join(id);
    let image_envd = dir.join("rootfs/usr/local/bin/envd");
    if same_envd(&image_envd, &envd) {
        return Ok(());
    }
    // Serialise with other test binaries building the same image.
    std::fs::create_dir_all(images_dir()).map_err(|e| e.to_string())?;
    let lock =
        std::fs::File::create(images_dir().join(".build.lock")).map_err(|e| e.to_string())?;
    nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e.to_string())
        .map(|guard| {
            let fresh = same_envd(&image_envd, &envd);
            let script = if dir.join("rootfs").exists() {
                "reinject-envd.sh"
            } else {
                "build.sh"
            };
            let result = if fresh {
                Ok(())
            } else {
                let mut cmd = Command::new(repo().join("images").join(script));
                if script == "build.sh" {
                    cmd.arg(distro);
                }
                cmd.arg(&envd).env("WRENN_IMAGES_DIR", images_dir());
                match cmd.status() {
                    Ok(s) if s.success() => Ok(()),
                    Ok(s) => Err(format!("images/{script} {distro} failed: {s}")),
                    Err(e) => Err(e.to_string()),
                }
            };
            drop(guard);
            result
        })?
}

/// A running agent.
pub struct Agent {
    pub dir: PathBuf,
    pub addr: String,
    child: Option<Child>,
    own_dir: Option<tempfile::TempDir>,
    pub client: Client,
}

/// The probe result is shared by every test agent (probing takes seconds).
fn probe_cache() -> PathBuf {
    let dir = PathBuf::from("/var/tmp/wrenn-agent-tests");
    let _ = std::fs::create_dir_all(&dir);
    dir.join("capabilities.json")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Agent {
    /// Starts an agent with a fresh WRENN_DIR.
    pub async fn start(extra: &[&str]) -> Agent {
        let tmp = tempfile::Builder::new()
            .prefix("wrenn-agent-test-")
            .tempdir_in("/tmp")
            .unwrap();
        let dir = tmp.path().to_path_buf();
        let mut a = Agent::start_in(&dir, extra).await;
        a.own_dir = Some(tmp);
        a
    }

    /// Starts an agent on an existing WRENN_DIR (restart).
    pub async fn start_in(dir: &Path, extra: &[&str]) -> Agent {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("agent.log"));
        let _ = std::fs::create_dir_all(dir);
        let log = log
            .or_else(|_| std::fs::File::create(dir.join("agent.log")))
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wrenn-agent"));
        cmd.arg("--wrenn-dir").arg(dir);
        if !extra.contains(&"--images-dir") {
            cmd.arg("--images-dir").arg(images_dir());
        }
        if !extra.contains(&"--warm-pool") {
            cmd.args(["--warm-pool", "none"]);
        }
        let mut child = cmd
            .args(["--address", &addr, "--insecure-dev"])
            .arg("--probe-cache")
            .arg(probe_cache())
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning wrenn-agent");
        let started = Instant::now();
        let client = loop {
            if let Ok(mut c) = HostAgentServiceClient::connect(format!("http://{addr}")).await {
                if c.get_host_info(pb::GetHostInfoRequest {}).await.is_ok() {
                    break c.max_decoding_message_size(128 * 1024 * 1024);
                }
            }
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || started.elapsed() > Duration::from_secs(90) {
                let log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
                panic!("agent did not come up ({exited:?}); log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Agent {
            dir: dir.to_path_buf(),
            addr,
            child: Some(child),
            own_dir: None,
            client,
        }
    }

    /// The agent process's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGKILLs the agent process (capsules keep running).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Hands the directory over to a new agent (used with `kill` for restarts).
    pub fn take_dir(&mut self) -> Option<tempfile::TempDir> {
        self.own_dir.take()
    }

    pub fn runsc_containers(&self) -> Vec<String> {
        runsc_list(&self.dir)
    }

    /// The host pid of capsule `id`'s sandbox process (its sentry), as `runsc state` has it.
    pub fn sandbox_pid(&self, id: &str) -> Option<i32> {
        let out = Command::new("runsc")
            .arg(format!("--root={}", self.dir.join("runsc").display()))
            .args(["state", &format!("wrenn-{id}")])
            .output()
            .ok()?;
        let state: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        state["pid"].as_i64().and_then(|p| i32::try_from(p).ok())
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }
}

pub fn runsc_list(dir: &Path) -> Vec<String> {
    let out = Command::new("runsc")
        .arg(format!("--root={}", dir.join("runsc").display()))
        .args(["list", "--quiet"])
        .output();
    out.map(|o| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect()
    })
    .unwrap_or_default()
}

/// Removes the networks (netns pair, host veth, nftables chain) of every capsule left
/// under `dir` (test cleanup; the agent does this itself on destroy).
pub fn remove_networks(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir.join("sandboxes")) else {
        return;
    };
    for e in entries.flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        let veth = std::fs::read(e.path().join("net.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v["veth"].as_str().map(str::to_owned));
        if let Some(veth) = veth {
            let element = format!("delete element inet wrenn capsules {{ \"{veth}\" }}");
            let _ = Command::new("nft").arg(&element).output();
            let chain = format!("c{}", &veth[2..]);
            let _ = Command::new("nft")
                .args(["delete", "chain", "inet", "wrenn", &chain])
                .output();
        }
        let _ = Command::new("umount")
            .arg("-l")
            .arg(e.path().join("run"))
            .output();
        for ns in [format!("wrenn-{id}"), format!("wrenn-{id}-gw")] {
            if Path::new("/run/netns").join(&ns).exists() {
                let _ = Command::new("ip").args(["netns", "delete", &ns]).output();
            }
        }
    }
}

/// Removes every runsc container left under `dir` (test cleanup).
pub fn remove_containers(dir: &Path) {
    for cid in runsc_list(dir) {
        let root = format!("--root={}", dir.join("runsc").display());
        let _ = Command::new("runsc")
            .args([&root, "kill", "--all", &cid, "KILL"])
            .output();
        let _ = Command::new("runsc")
            .args([&root, "delete", "--force", &cid])
            .output();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            // Show what the agent and runsc said before the directory goes away.
            let log = std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- agent log (last lines) ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
            if let Ok(entries) = std::fs::read_dir(self.dir.join("sandboxes")) {
                for e in entries.flatten() {
                    let text =
                        std::fs::read_to_string(e.path().join("runsc.log")).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(15).collect();
                    eprintln!("--- runsc.log of {} ---", e.file_name().to_string_lossy());
                    for l in tail.iter().rev() {
                        eprintln!("{l}");
                    }
                }
            }
        }
        if self.own_dir.is_some() {
            remove_containers(&self.dir);
            remove_networks(&self.dir);
        }
    }
}

/// A capsule id in the control plane's shape, unique per call.
pub fn capsule_id() -> String {
    let n: u128 = rand::random::<u128>() >> 8;
    let mut s = String::new();
    let mut v = n;
    while s.len() < 25 {
        let d = (v % 36) as u8;
        s.push(if d < 10 {
            (b'0' + d) as char
        } else {
            (b'a' + d - 10) as char
        });
        v /= 36;
    }
    format!("sb_{s}")
}

pub fn create_req(id: &str, template: &str) -> pb::CreateSandboxRequest {
    pb::CreateSandboxRequest {
        sandbox_id: id.into(),
        template: Some(pb::TemplateRef {
            team_id: PLATFORM_TEAM.into(),
            template_id: template.into(),
        }),
        vcpus: 1,
        memory_mb: 256,
        ..Default::default()
    }
}

/// Runs `sh -c script` in the capsule; returns (exit code, stdout, stderr).
pub async fn sh(client: &mut Client, id: &str, script: &str) -> (i32, String, String) {
    let r = client
        .exec(pb::ExecRequest {
            sandbox_id: id.into(),
            process: Some(pb::ProcessSpec {
                cmd: "/bin/sh".into(),
                args: vec!["-c".into(), script.into()],
                ..Default::default()
            }),
            timeout_sec: 30,
        })
        .await
        .unwrap_or_else(|e| panic!("exec {script:?} in {id}: {e}"))
        .into_inner();
    (
        r.exit_code,
        String::from_utf8_lossy(&r.stdout).into_owned(),
        String::from_utf8_lossy(&r.stderr).into_owned(),
    )
}

/// Starts `sh -c script` in the background in the capsule under `tag`.
pub async fn sh_background(client: &mut Client, id: &str, tag: &str, script: &str) {
    client
        .start_background(pb::StartBackgroundRequest {
            sandbox_id: id.into(),
            process: Some(pb::ProcessSpec {
                cmd: "/bin/sh".into(),
                args: vec!["-c".into(), script.into()],
                tag: tag.into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_or_else(|e| panic!("start {tag} in {id}: {e}"));
}

/// Pauses capsule `id` (memory kept) and resumes it, both of which must succeed.
pub async fn pause_resume(client: &mut Client, id: &str) {
    client
        .pause_sandbox(pb::PauseSandboxRequest {
            sandbox_id: id.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("pause {id}: {e}"));
    client
        .resume_sandbox(pb::ResumeSandboxRequest {
            sandbox_id: id.into(),
            timeout_sec: 0,
        })
        .await
        .unwrap_or_else(|e| panic!("resume {id}: {e}"));
}

/// `sh` that must succeed; returns trimmed stdout.
#[track_caller]
pub fn ok(out: (i32, String, String)) -> String {
    assert_eq!(
        out.0, 0,
        "command failed: stdout={:?} stderr={:?}",
        out.1, out.2
    );
    out.1.trim().to_owned()
}

/// Skips (returns true after printing why) when gVisor tests cannot run.
pub fn skip(test: &str) -> bool {
    if let Some(reason) = skip_reason() {
        eprintln!("SKIP {test}: {reason}");
        return true;
    }
    if let Err(e) = ensure_image("busybox", BUSYBOX) {
        eprintln!("SKIP {test}: cannot build minimal-busybox: {e}");
        return true;
    }
    false
}
