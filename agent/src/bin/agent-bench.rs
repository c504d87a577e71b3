//! agent-bench: BENCHMARKS.md B1, B4, B5 and B6 for the host agent.
//!
//! The agent runs in-process (the library's `run`) on a loopback port in `--insecure-dev`
//! mode with a temporary `WRENN_DIR`; capsules come from minimal-busybox in the shared
//! images (`WRENN_IMAGES_DIR`, default `$WRENN_DIR/images`). Each figure alternates the
//! candidate (a HostAgentService call) with a raw runsc baseline on the same rootfs and
//! prints one line: median, p99, and the ratio of medians.
//!
//! Env: `BENCH_REPS` (default 15), `BENCH_IDLE` (B6 capsule count, default 50),
//! `BENCH_NETWORK` (`none` or `sandbox`), `BENCH_OVERLAY` (`disk`, the default, or `memory`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use serde_json::json;
use wrenn_proto::hostagent::v1 as pb;
use wrenn_proto::hostagent::v1::host_agent_service_client::HostAgentServiceClient;

const TEAM: &str = "0000000000000000000000000";
const BUSYBOX: &str = "0000000000000000000000005";

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    s[((s.len() - 1) as f64 * q).round() as usize]
}

fn line(name: &str, cand: &[f64], base: &[f64]) {
    let (c50, c99, b50, b99) = (
        quantile(cand, 0.5),
        quantile(cand, 0.99),
        quantile(base, 0.5),
        quantile(base, 0.99),
    );
    println!(
        "{name}: candidate p50={c50:.1}ms p99={c99:.1}ms | baseline p50={b50:.1}ms p99={b99:.1}ms | ratio p50={:.2} (n={})",
        c50 / b50,
        cand.len()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// How the raw baselines run: the candidate's overlay medium and network, set once.
struct Raw {
    /// `--overlay2` value.
    overlay: String,
    /// gVisor netstack in a netns of the baseline's own (as capsules with a network).
    network: bool,
}

static RAW: OnceLock<Raw> = OnceLock::new();

fn raw() -> &'static Raw {
    RAW.get().expect("raw baseline settings")
}

/// Runs runsc with stderr in a file: a detached sandbox inherits the descriptors, so a
/// pipe would never reach EOF. With a network, `run` and `restore` get the private mount
/// namespace with `/proc/sys/net` masked that runsc needs (ENVIRONMENT.md), as the agent's do.
fn runsc(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    std::fs::create_dir_all(root)?;
    let err_path = root.with_extension("err");
    let err = std::fs::File::create(&err_path)?;
    let raw = raw();
    let starts = matches!(args.first(), Some(&"run" | &"restore"));
    let mut cmd = if raw.network && starts {
        let mut c = Command::new("unshare");
        c.args([
            "-m",
            "sh",
            "-c",
            r#"mount -t tmpfs none /proc/sys/net && exec runsc "$@""#,
            "runsc",
        ]);
        c
    } else {
        Command::new("runsc")
    };
    let network = if raw.network {
        "--network=sandbox"
    } else {
        "--network=none"
    };
    let status = cmd
        .arg(format!("--root={}", root.display()))
        .args([
            network,
            &format!("--overlay2={}", raw.overlay),
            "--host-uds=all",
            "--cpu-num-from-quota",
        ])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .status()?;
    if !status.success() {
        bail!(
            "runsc {:?}: {}",
            args,
            std::fs::read_to_string(&err_path)
                .unwrap_or_default()
                .trim()
        );
    }
    Ok(())
}

/// The raw baseline's network for sandbox `id`, when it has one: a netns with one end of a
/// veth holding the capsules' fixed guest address and a default route (what a capsule's
/// netstack takes over, and what a restore of a capsule's checkpoint expects).
fn raw_net(id: &str) -> anyhow::Result<()> {
    if !raw().network {
        return Ok(());
    }
    let host_end = format!("rb{}", &id[id.len().saturating_sub(8)..]);
    // Left by a run that failed half-way.
    let _ = ip(&["netns", "del", id]);
    let _ = ip(&["link", "del", &host_end]);
    ip(&["netns", "add", id])?;
    ip(&[
        "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", id,
    ])?;
    ip(&["link", "set", &host_end, "up"])?;
    ip(&["-n", id, "addr", "add", "192.168.254.2/30", "dev", "eth0"])?;
    ip(&["-n", id, "link", "set", "eth0", "up"])?;
    ip(&["-n", id, "link", "set", "lo", "up"])?;
    ip(&["-n", id, "route", "add", "default", "via", "192.168.254.1"])?;
    Ok(())
}

/// Before a raw restore into netns `id`: runsc took the address off the veth at start, and a
/// restore needs it back (ENVIRONMENT.md; the agent does the same).
fn raw_readdress(id: &str) -> anyhow::Result<()> {
    if !raw().network {
        return Ok(());
    }
    for args in [
        [
            "-n",
            id,
            "addr",
            "replace",
            "192.168.254.2/30",
            "dev",
            "eth0",
        ]
        .as_slice(),
        [
            "-n",
            id,
            "route",
            "replace",
            "default",
            "via",
            "192.168.254.1",
        ]
        .as_slice(),
    ] {
        ip(args)?;
    }
    Ok(())
}

/// Runs `ip args`, failing with its error text.
fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if !out.status.success() {
        bail!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A raw bundle: the same rootfs and init as a capsule, no agent.
fn raw_bundle(dir: &Path, rootfs: &Path) -> anyhow::Result<PathBuf> {
    let run = dir.join("run");
    std::fs::create_dir_all(&run)?;
    let id = dir
        .file_name()
        .and_then(|n| n.to_str())
        .context("bundle dir name")?;
    let mut netns = json!({"type": "network"});
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({"destination": "/run/wrenn", "type": "bind", "source": run, "options": ["rbind", "rw"]}),
    ];
    if raw().network {
        netns["path"] = json!(format!("/run/netns/{id}"));
        // As a capsule with a network has (and a restore of its checkpoint needs).
        let resolv = dir.join("resolv.conf");
        std::fs::write(&resolv, "nameserver 192.0.2.53\n")?;
        mounts.push(json!({"destination": "/etc/resolv.conf", "type": "bind",
            "source": resolv, "options": ["bind", "ro"]}));
    }
    let config = json!({
        "ociVersion": "1.0.0",
        "process": {"args": ["/usr/local/bin/envd", "--listen", "unix:/run/wrenn/envd.sock"], "cwd": "/",
                    "user": {"uid": 0, "gid": 0}, "env": ["PATH=/usr/local/bin:/usr/bin:/bin"]},
        // Writable, as a capsule's: runsc then puts its overlay on the root.
        "root": {"path": rootfs, "readonly": false},
        "mounts": mounts,
        "linux": {"resources": {"cpu": {"quota": 100000, "period": 100000}, "memory": {"limit": 256u64 << 20}},
                  "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, netns]}
    });
    std::fs::write(dir.join("config.json"), config.to_string())?;
    Ok(run.join("envd.sock"))
}

/// Waits until envd answers `GET /health` on `sock`.
async fn wait_health(sock: &Path) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let start = Instant::now();
    loop {
        if let Ok(mut s) = tokio::net::UnixStream::connect(sock).await {
            if s.write_all(b"GET /health HTTP/1.1\r\nHost: envd\r\nConnection: close\r\n\r\n")
                .await
                .is_ok()
            {
                let mut buf = Vec::new();
                let _ = s.read_to_end(&mut buf).await;
                if buf.starts_with(b"HTTP/1.1 200") {
                    return Ok(());
                }
            }
        }
        if start.elapsed() > Duration::from_secs(30) {
            bail!("envd at {} never answered", sock.display());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn remove_raw(root: &Path, id: &str) {
    let _ = runsc(root, &["kill", "--all", id, "KILL"]);
    let _ = runsc(root, &["delete", "--force", id]);
    if raw().network {
        // The veth goes with its namespace.
        let _ = Command::new("ip").args(["netns", "del", id]).output();
    }
}

fn mem_available_kb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemAvailable:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    if !nix::unistd::Uid::effective().is_root() {
        println!("agent-bench: SKIP (needs root for runsc)");
        return Ok(());
    }
    let reps = env_num("BENCH_REPS", 15);
    let idle = env_num("BENCH_IDLE", 50);
    let images = std::env::var("WRENN_IMAGES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("WRENN_DIR").unwrap_or_else(|_| "/var/lib/wrenn".into()))
                .join("images")
        });
    let rootfs = images.join("teams").join(TEAM).join(BUSYBOX).join("rootfs");
    if !rootfs.join("usr/local/bin/envd").exists() {
        println!(
            "agent-bench: SKIP (no minimal-busybox with envd in {}; run make images)",
            images.display()
        );
        return Ok(());
    }
    let dir = PathBuf::from(format!("/tmp/wrenn-agent-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    // The raw-runsc baselines run with --network=none; so does the candidate unless
    // BENCH_NETWORK=sandbox (then the ratios include the capsule network's set-up).
    let network = std::env::var("BENCH_NETWORK").unwrap_or_else(|_| "none".into());
    // The capsule's root overlay: its own disk (the agent's default) or BENCH_OVERLAY=memory
    // (the medium of the raw baseline), to see what the disk costs.
    let overlay = std::env::var("BENCH_OVERLAY").unwrap_or_else(|_| "disk".into());
    println!("agent-bench: network={network} overlay={overlay}");
    // The baselines use the same medium kind (a checkpoint restores only with its own) and
    // the same network; a plain directory holds their overlay files.
    let raw_disk = dir.join("raw-disk");
    std::fs::create_dir_all(&raw_disk)?;
    let _ = RAW.set(Raw {
        overlay: if overlay == "disk" {
            format!("root:dir={}", raw_disk.display())
        } else {
            "root:memory".into()
        },
        network: network == "sandbox",
    });
    let config = wrenn_agent::config::Config::parse_from([
        "wrenn-agent",
        "--wrenn-dir",
        dir.to_str().context("dir")?,
        "--images-dir",
        images.to_str().context("images")?,
        "--address",
        &addr,
        "--insecure-dev",
        "--probe-cache",
        "/var/tmp/wrenn-agent-tests/capabilities.json",
        "--network",
        &network,
        "--overlay",
        &overlay,
        "--warm-pool",
        "none",
    ]);
    let agent = tokio::spawn(wrenn_agent::run(config));
    let mut client = loop {
        if let Ok(mut c) = HostAgentServiceClient::connect(format!("http://{addr}")).await {
            if c.get_host_info(pb::GetHostInfoRequest {}).await.is_ok() {
                break c;
            }
        }
        if agent.is_finished() {
            bail!("agent stopped: {:?}", agent.await);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let raw_root = dir.join("raw-runsc");
    let result = bench(&mut client, &dir, &raw_root, &rootfs, reps, idle).await;
    let _ = client
        .terminate(pb::TerminateRequest { pause: false })
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(30), agent).await;
    if let Ok(out) = Command::new("runsc")
        .arg(format!("--root={}", raw_root.display()))
        .args(["list", "--quiet"])
        .output()
    {
        for id in String::from_utf8_lossy(&out.stdout).lines() {
            remove_raw(&raw_root, id);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn req(id: &str) -> pb::CreateSandboxRequest {
    pb::CreateSandboxRequest {
        sandbox_id: id.into(),
        template: Some(pb::TemplateRef {
            team_id: TEAM.into(),
            template_id: BUSYBOX.into(),
        }),
        vcpus: 1,
        memory_mb: 256,
        ..Default::default()
    }
}

async fn bench(
    client: &mut HostAgentServiceClient<tonic::transport::Channel>,
    dir: &Path,
    raw_root: &Path,
    rootfs: &Path,
    reps: usize,
    idle: usize,
) -> anyhow::Result<()> {
    let destroyer = client.clone();
    let destroy = move |id: String| {
        let mut c = destroyer.clone();
        async move {
            c.destroy_sandbox(pb::DestroySandboxRequest { sandbox_id: id })
                .await
                .map(|_| ())
        }
    };

    // B1: create → envd answering.
    let (mut cand, mut base) = (Vec::new(), Vec::new());
    for i in 0..reps {
        let id = format!("sb_bench{i:04}b1xxxxxxxxxxxxxxxxx");
        let t = Instant::now();
        client.create_sandbox(req(&id)).await.context("B1 create")?;
        cand.push(ms(t.elapsed()));
        destroy(id).await?;

        let rid = format!("raw-b1-{i:04}");
        let bdir = dir.join(&rid);
        let sock = raw_bundle(&bdir, rootfs)?;
        let t = Instant::now();
        raw_net(&rid)?;
        runsc(
            raw_root,
            &[
                "run",
                "--detach",
                &format!("--bundle={}", bdir.display()),
                &rid,
            ],
        )?;
        wait_health(&sock).await?;
        base.push(ms(t.elapsed()));
        remove_raw(raw_root, &rid);
    }
    line("B1 create until envd answers", &cand, &base);

    // B4: pause + resume (memory kept).
    let id = "sb_bench0000b4xxxxxxxxxxxxxxxxx".to_owned();
    client.create_sandbox(req(&id)).await.context("B4 create")?;
    let rid = "raw-b4";
    let bdir = dir.join(rid);
    raw_bundle(&bdir, rootfs)?;
    // The raw baseline runs a plain process (a bound host socket cannot be checkpointed
    // without envd's prepare hook, which is part of what the candidate pays for).
    let cfg = std::fs::read_to_string(bdir.join("config.json"))?.replace(
        r#"["/usr/local/bin/envd","--listen","unix:/run/wrenn/envd.sock"]"#,
        r#"["/bin/sleep","100000"]"#,
    );
    std::fs::write(bdir.join("config.json"), cfg)?;
    raw_net(rid)?;
    runsc(
        raw_root,
        &[
            "run",
            "--detach",
            &format!("--bundle={}", bdir.display()),
            rid,
        ],
    )?;
    let (mut cand, mut base) = (Vec::new(), Vec::new());
    let (mut pauses, mut resumes) = (Vec::new(), Vec::new());
    for i in 0..reps {
        let t = Instant::now();
        client
            .pause_sandbox(pb::PauseSandboxRequest {
                sandbox_id: id.clone(),
            })
            .await
            .context("B4 pause")?;
        pauses.push(ms(t.elapsed()));
        let r = Instant::now();
        client
            .resume_sandbox(pb::ResumeSandboxRequest {
                sandbox_id: id.clone(),
                timeout_sec: 0,
            })
            .await
            .context("B4 resume")?;
        resumes.push(ms(r.elapsed()));
        cand.push(ms(t.elapsed()));

        let image = dir.join(format!("raw-b4-image-{i}"));
        std::fs::create_dir_all(&image)?;
        let t = Instant::now();
        runsc(
            raw_root,
            &[
                "checkpoint",
                &format!("--image-path={}", image.display()),
                rid,
            ],
        )?;
        runsc(raw_root, &["delete", "--force", rid])?;
        raw_readdress(rid)?;
        runsc(
            raw_root,
            &[
                "restore",
                "--detach",
                &format!("--image-path={}", image.display()),
                &format!("--bundle={}", bdir.display()),
                rid,
            ],
        )?;
        base.push(ms(t.elapsed()));
        std::fs::remove_dir_all(&image)?;
    }
    line("B4 pause+resume", &cand, &base);
    // The agent's pause is a freeze in place unless WRENN_HIBERNATE_AFTER_SECS=0 (then a checkpoint).
    println!(
        "B4 phases: pause p50={:.1}ms p99={:.1}ms, resume p50={:.1}ms p99={:.1}ms",
        quantile(&pauses, 0.5),
        quantile(&pauses, 0.99),
        quantile(&resumes, 0.5),
        quantile(&resumes, 0.99)
    );
    remove_raw(raw_root, rid);

    // B5: fork from a snapshot template vs raw restore of the same checkpoint.
    let tpl = "00000000000000000bench0b5".to_owned();
    let snap_team = "00000000000000000000bench".to_owned();
    // A run that failed half-way may have left it.
    let _ = client
        .delete_snapshot(pb::DeleteSnapshotRequest {
            template: Some(pb::TemplateRef {
                team_id: snap_team.clone(),
                template_id: tpl.clone(),
            }),
        })
        .await;
    client
        .create_snapshot(pb::CreateSnapshotRequest {
            sandbox_id: id.clone(),
            template: Some(pb::TemplateRef {
                team_id: snap_team.clone(),
                template_id: tpl.clone(),
            }),
        })
        .await
        .context("B5 snapshot")?;
    destroy(id.clone()).await?;
    let images = rootfs
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .and_then(Path::parent)
        .context("images dir")?;
    let checkpoint = images
        .join("teams")
        .join(&snap_team)
        .join(&tpl)
        .join("checkpoint");
    let (mut cand, mut base) = (Vec::new(), Vec::new());
    for i in 0..reps {
        let fid = format!("sb_bench{i:04}b5xxxxxxxxxxxxxxxxx");
        let mut r = req(&fid);
        r.snapshot = Some(pb::TemplateRef {
            team_id: snap_team.clone(),
            template_id: tpl.clone(),
        });
        let t = Instant::now();
        client.create_sandbox(r).await.context("B5 fork")?;
        cand.push(ms(t.elapsed()));
        destroy(fid).await?;

        let rid = format!("raw-b5-{i:04}");
        let bdir = dir.join(&rid);
        raw_bundle(&bdir, rootfs)?;
        let t = Instant::now();
        raw_net(&rid)?;
        runsc(
            raw_root,
            &[
                "restore",
                "--detach",
                &format!("--image-path={}", checkpoint.display()),
                &format!("--bundle={}", bdir.display()),
                &rid,
            ],
        )?;
        base.push(ms(t.elapsed()));
        remove_raw(raw_root, &rid);
    }
    line("B5 fork from snapshot", &cand, &base);
    let _ = client
        .delete_snapshot(pb::DeleteSnapshotRequest {
            template: Some(pb::TemplateRef {
                team_id: snap_team.clone(),
                template_id: tpl,
            }),
        })
        .await;
    let _ = std::fs::remove_dir(images.join("teams").join(&snap_team));

    // B6: memory per idle capsule.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = mem_available_kb();
    let t = Instant::now();
    let mut ids = Vec::new();
    for i in 0..idle {
        let id = format!("sb_bench{i:04}b6xxxxxxxxxxxxxxxxx");
        client
            .create_sandbox(req(&id))
            .await
            .with_context(|| format!("B6 capsule {i}"))?;
        ids.push(id);
    }
    let created = t.elapsed();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = mem_available_kb();
    let per = (before.saturating_sub(after)) as f64 / 1024.0 / idle as f64;
    println!(
        "B6 idle capsules: {idle} held, {per:.1} MB host memory each (MemAvailable {:.0} -> {:.0} MB; created in {:.1}s; target <= 30 MB)",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        created.as_secs_f64()
    );
    for id in ids {
        destroy(id).await?;
    }
    Ok(())
}
