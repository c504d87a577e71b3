//! The snapshot cycle for real: envd as the init of a gVisor sandbox on a host-backed Unix
//! socket; prepare → `runsc checkpoint` → `runsc restore` → SIGUSR1 → re-bound, with a
//! process that kept its state. Skips (saying why) without runsc, root or busybox.
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use axum::body::Body;
use http::{Method, StatusCode};
use support::*;
use wrenn_envd::config::ListenAddr;
use wrenn_proto::envd::v1::{ConnectRequest, ListRequest};

struct Sandbox {
    id: String,
    root: PathBuf,
}

impl Sandbox {
    fn runsc(&self) -> Command {
        let mut c = Command::new("runsc");
        c.arg("--root").arg(&self.root).args([
            "--host-uds=all",
            "--network=none",
            "--overlay2=root:memory",
            "--platform=systrap",
        ]);
        c
    }

    /// Runs a runsc command. Its output goes to a log file: a detached sandbox inherits the
    /// descriptors and would keep a pipe open forever.
    fn run(&self, args: &[&str], bundle: &Path) -> Result<(), String> {
        let log_path = self.root.with_file_name("runsc.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| e.to_string())?;
        let status = self
            .runsc()
            .args(args)
            .current_dir(bundle)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .status()
            .map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            Err(format!("runsc {args:?} failed: {tail}"))
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self
            .runsc()
            .args(["delete", "--force", &self.id])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

async fn wait_healthy(envd: &Envd) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if wrenn_envd::client::connect(&envd.addr).await.is_ok() {
            let (status, _, _) = envd.http(Method::GET, "/health", &[], Body::empty()).await;
            if status == StatusCode::OK {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "envd inside gVisor did not become healthy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn checkpoint_and_restore_under_gvisor() {
    // Dropping the scenario on timeout also deletes its sandbox.
    tokio::time::timeout(Duration::from_secs(180), scenario())
        .await
        .expect("the gVisor scenario timed out");
}

async fn scenario() {
    let (Some(_), Some(busybox)) = (which("runsc"), which("busybox")) else {
        eprintln!("skipping: runsc or busybox is not installed");
        return;
    };
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: runsc needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    let rootfs = bundle.join("rootfs");
    let sockets = dir.path().join("sockets");
    for d in [
        "bin",
        "etc",
        "proc",
        "tmp",
        "run/wrenn",
        "lib",
        "lib64",
        "usr/lib",
    ] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::create_dir_all(&sockets).unwrap();
    std::fs::copy(&busybox, rootfs.join("bin/busybox")).unwrap();
    for tool in ["sh", "sleep", "echo", "true", "cat"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(tool)).unwrap();
    }
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\n").unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_envd"), rootfs.join("envd")).unwrap();

    // The test build of envd is dynamically linked: lend it the host's libraries, read-only.
    let mut mounts = vec![serde_json::json!({
        "destination": "/run/wrenn", "type": "bind", "source": sockets, "options": ["rbind", "rw"]
    })];
    for lib in ["/lib", "/lib64", "/usr/lib"] {
        if Path::new(lib).exists() {
            mounts.push(serde_json::json!({
                "destination": lib, "type": "bind", "source": lib, "options": ["rbind", "ro"]
            }));
        }
    }
    let spec = Command::new("runsc")
        .args([
            "spec",
            "--",
            "/envd",
            "--listen",
            "unix:/run/wrenn/envd.sock",
        ])
        .current_dir(&bundle)
        .status()
        .unwrap();
    assert!(spec.success());
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    config["root"] = serde_json::json!({ "path": "rootfs", "readonly": false });
    config["process"]["terminal"] = false.into();
    config["mounts"].as_array_mut().unwrap().extend(mounts);
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();

    let sandbox = Sandbox {
        id: format!(
            "envd-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ),
        root: dir.path().join("runsc-root"),
    };
    let bundle_s = bundle.to_str().unwrap();
    if let Err(e) = sandbox.run(
        &["run", "--detach", "--bundle", bundle_s, &sandbox.id],
        &bundle,
    ) {
        eprintln!("skipping: gVisor cannot run a sandbox here: {e}");
        return;
    }
    let socket = sockets.join("envd.sock");
    // A stand-in Envd for the helpers: the real one runs inside the sandbox.
    let helper = tokio::process::Command::new("sleep")
        .arg("600")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let envd = Envd::attach(helper, ListenAddr::Unix(socket.clone()));
    wait_healthy(&envd).await;

    let mut client = envd.process().await;
    let mut req = start(sh(
        "i=0; while true; do i=$((i+1)); echo $i; sleep 0.05; done",
    ));
    req.tag = Some("counter".into());
    let mut stream = client.start(req).await.unwrap().into_inner();
    let mut before = Outcome::default();
    let mut offset = None;
    while before.stdout.split(|b| *b == b'\n').count() < 5 {
        before.record(
            stream.message().await.unwrap().unwrap().event.unwrap(),
            &mut offset,
        );
    }
    drop(stream);
    drop(client);

    let (status, _, _) = envd
        .http(Method::POST, "/snapshot/prepare", &[], Body::empty())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!socket.exists(), "prepare unlinks the host-backed socket");
    let image = dir.path().join("checkpoint");
    std::fs::create_dir_all(&image).unwrap();
    let image_arg = format!("--image-path={}", image.display());
    sandbox
        .run(&["checkpoint", &image_arg, &sandbox.id], &bundle)
        .expect("checkpoint after prepare");
    sandbox
        .run(&["delete", "--force", &sandbox.id], &bundle)
        .unwrap();
    sandbox
        .run(
            &[
                "restore",
                "--detach",
                "--bundle",
                bundle_s,
                &image_arg,
                &sandbox.id,
            ],
            &bundle,
        )
        .expect("restore");
    sandbox
        .run(&["kill", &sandbox.id, "USR1"], &bundle)
        .expect("SIGUSR1 to envd");
    wait_healthy(&envd).await;

    // The counter kept its state across the snapshot and is still running.
    let mut client = envd.process().await;
    let list = client.list(ListRequest {}).await.unwrap().into_inner();
    let counter = list
        .processes
        .iter()
        .find(|p| p.tag.as_deref() == Some("counter"))
        .expect("listed");
    assert!(counter.end.is_none(), "still running after restore");
    let mut after = client
        .connect_process(ConnectRequest {
            process: by_tag("counter"),
            from_offset: offset,
        })
        .await
        .unwrap()
        .into_inner();
    let mut resumed = Outcome::default();
    let mut o = None;
    while resumed.stdout.split(|b| *b == b'\n').count() < 3 {
        resumed.record(
            after.message().await.unwrap().unwrap().event.unwrap(),
            &mut o,
        );
    }
    let last_before: u64 = String::from_utf8_lossy(&before.stdout)
        .lines()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    let first_after: u64 = String::from_utf8_lossy(&resumed.stdout)
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        first_after,
        last_before + 1,
        "output resumes exactly where the client left off"
    );
}
