//! Host safety with real gVisor capsules: a capsule's disk bounds what it writes, a capsule
//! that dies on its own is noticed and reported with its reason, and a capsule counts only
//! its own vCPUs. Run as root with runsc installed; otherwise each test prints why it skips.

#[path = "support/agent.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{capsule_id, create_req, ok, sh, skip, Agent, BUSYBOX};
use tonic::Code;
use wrenn_proto::hostagent::v1 as pb;

/// Free bytes on the filesystem holding `p`.
fn free(p: &std::path::Path) -> u64 {
    let s = nix::sys::statvfs::statvfs(p).unwrap();
    s.blocks_available() * s.fragment_size()
}

/// The memory cgroup directory named `name` (runsc names it after the container), on a v1
/// (`memory` hierarchy) or v2 host, looked for a few levels deep.
fn memcg_of(name: &str) -> Option<std::path::PathBuf> {
    fn find(dir: &std::path::Path, name: &str, depth: u32) -> Option<std::path::PathBuf> {
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            let p = e.path();
            if !p.is_dir() {
                continue;
            }
            if e.file_name() == name {
                return Some(p);
            }
            if depth > 0 {
                if let Some(found) = find(&p, name, depth - 1) {
                    return Some(found);
                }
            }
        }
        None
    }
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory");
    let root = if v1.is_dir() {
        v1
    } else {
        std::path::Path::new("/sys/fs/cgroup")
    };
    find(root, name, 3)
}

fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let prefix = dir.display().to_string();
    text.lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_is_enospc_inside_and_the_capsule_lives_on() {
    if skip("full_disk") {
        return;
    }
    let mut a = Agent::start(&["--overlay", "disk"]).await;
    let id = capsule_id();
    let mut req = create_req(&id, BUSYBOX);
    req.disk_mb = 64;
    a.client.create_sandbox(req).await.expect("create");
    let before = free(&a.dir);

    // 200 MB into a 64 MiB disk: the writer gets ENOSPC, the host's disk loses at most 64 MiB.
    let (_, out, _) = sh(
        &mut a.client,
        &id,
        "dd if=/dev/zero of=/fill bs=1M count=200 2>&1; echo rc=$?",
    )
    .await;
    assert!(out.contains("No space left on device"), "{out}");
    assert!(out.contains("rc=1"), "{out}");
    let lost = before.saturating_sub(free(&a.dir));
    assert!(lost <= 70 * 1024 * 1024, "the host disk lost {lost} bytes");
    // The capsule's memory did not take the file either: it is alive and answers.
    assert_eq!(
        ok(sh(&mut a.client, &id, "rm /fill && echo again > /f && cat /f").await),
        "again"
    );
    // Every other place a capsule can write: each stops at its bound, none reaches the host
    // beyond the capsule's disk.
    for dir in [
        "/tmp",
        "/root",
        "/var/tmp",
        "/dev/shm",
        "/run/wrenn",
        "/etc",
    ] {
        let (_, out, _) = sh(
            &mut a.client,
            &id,
            &format!("mkdir -p {dir}; dd if=/dev/zero of={dir}/fill bs=1M count=200 2>&1; rm -f {dir}/fill; echo end"),
        )
        .await;
        assert!(out.contains("end"), "{dir}: {out}");
        let lost = before.saturating_sub(free(&a.dir));
        assert!(
            lost <= 70 * 1024 * 1024,
            "{dir}: the host disk lost {lost} bytes"
        );
    }
    assert_eq!(ok(sh(&mut a.client, &id, "echo alive").await), "alive");
    // The disk travels through a pause and resume, bounded the same way.
    ok(sh(&mut a.client, &id, "echo kept > /kept").await);
    support::pause_resume(&mut a.client, &id).await;
    assert_eq!(ok(sh(&mut a.client, &id, "cat /kept").await), "kept");
    let (_, out, _) = sh(
        &mut a.client,
        &id,
        "dd if=/dev/zero of=/fill bs=1M count=200 2>&1; echo rc=$?",
    )
    .await;
    assert!(
        out.contains("No space left on device"),
        "after resume: {out}"
    );

    a.client
        .destroy_sandbox(pb::DestroySandboxRequest {
            sandbox_id: id.clone(),
        })
        .await
        .expect("destroy");
    let sandbox = a.dir.join("sandboxes").join(&id);
    assert!(!sandbox.exists(), "sandbox dir left behind");
    assert!(
        mounts_under(&sandbox).is_empty(),
        "{:?}",
        mounts_under(&sandbox)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_out_of_memory_capsule_is_reported_dead_with_its_reason() {
    if skip("oom") {
        return;
    }
    let mut a = Agent::start(&["--watchdog-interval-ms", "500"]).await;
    let id = capsule_id();
    let mut req = create_req(&id, BUSYBOX);
    req.memory_mb = 128;
    a.client.create_sandbox(req).await.expect("create");
    // Keep a sibling capsule: it must not be touched.
    let other = capsule_id();
    a.client
        .create_sandbox(create_req(&other, BUSYBOX))
        .await
        .expect("create the sibling");

    // 400 MB buffers in a 128 MiB capsule, in the background so the test sees the watchdog
    // (not a failing call) notice the death. Three hogs, each repeating (and noting every
    // attempt): near its memory limit a loaded host can thrash on page cache for a long
    // time before its OOM killer acts, and more demand ends that sooner.
    a.client
        .start_background(pb::StartBackgroundRequest {
            sandbox_id: id.clone(),
            process: Some(pb::ProcessSpec {
                cmd: "/bin/sh".into(),
                args: vec![
                    "-c".into(),
                    "sleep 0.5; for i in 1 2 3; do (while :; do dd if=/dev/zero of=/dev/null \
                     bs=400M count=1 2>>/tmp/hog.log; echo \"dd $i exit $?\" >>/tmp/hog.log; \
                     done) & done; wait"
                        .into(),
                ],
                ..Default::default()
            }),
        })
        .await
        .expect("start the hog");
    // The watchdog looks every 500 ms; the rest is how long the host takes to fill 128 MiB
    // and kill the sandbox, which on a loaded two-core host has taken over 10 s.
    let started = Instant::now();
    let cgroup = memcg_of(&format!("wrenn-{id}"));
    let read = |f: &str| {
        cgroup
            .as_ref()
            .and_then(|c| std::fs::read_to_string(c.join(f)).ok())
            .unwrap_or_default()
    };
    // When the host's OOM killer struck (the memcg's `oom_kill` counter moved), as far as
    // this loop saw it before the agent cleaned the cgroup up, and when the sandbox process
    // had actually ended: a victim thrashing in the kernel can take many seconds to exit
    // after the kill, and only its end is the agent's to notice.
    let sentry = a.sandbox_pid(&id);
    let ended = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
            stat.rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next())
                .is_some_and(|s| matches!(s, "Z" | "X" | "x"))
        })
    };
    let mut killed_at: Option<Instant> = None;
    let mut ended_at: Option<Instant> = None;
    loop {
        if ended_at.is_none() && sentry.is_some_and(ended) {
            ended_at = Some(Instant::now());
        }
        if killed_at.is_none()
            && [read("memory.events"), read("memory.oom_control")]
                .concat()
                .lines()
                .any(|l| l.strip_prefix("oom_kill ").is_some_and(|n| n.trim() != "0"))
        {
            killed_at = Some(Instant::now());
        }
        let list = a
            .client
            .list_sandboxes(pb::ListSandboxesRequest {})
            .await
            .unwrap()
            .into_inner();
        let me = list.sandboxes.iter().find(|s| s.sandbox_id == id);
        if me.is_some_and(|s| s.state() == pb::SandboxState::Error) {
            break;
        }
        // The host's OOM kill itself has taken a minute in a loaded CI run (the memory
        // cgroup thrashing first); the agent's own part is held to 10 s below.
        if started.elapsed() > Duration::from_secs(120) {
            let hog = a
                .client
                .exec(pb::ExecRequest {
                    sandbox_id: id.clone(),
                    process: Some(pb::ProcessSpec {
                        cmd: "/bin/cat".into(),
                        args: vec!["/tmp/hog.log".into()],
                        ..Default::default()
                    }),
                    timeout_sec: 5,
                })
                .await
                .map(|r| String::from_utf8_lossy(&r.into_inner().stdout).into_owned());
            panic!(
                "not reported dead after 120 s: {me:?}\nmemory cgroup {cgroup:?}: {}{} \
                 usage {}{} limit {}{}\nhog: {hog:?}\n{}",
                read("memory.events"),
                read("memory.oom_control"),
                read("memory.current"),
                read("memory.usage_in_bytes"),
                read("memory.max"),
                read("memory.limit_in_bytes"),
                a.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The agent must notice within seconds of the death (the watchdog looks every 500 ms);
    // how long the host takes to fill 128 MiB first is not the agent's doing.
    // Ended between this loop's last look and the report: noticed at once.
    let ended_at = ended_at.or_else(|| sentry.filter(|&p| ended(p)).map(|_| Instant::now()));
    let after_kill = killed_at.map(|k| k.elapsed());
    let after_end = ended_at.map(|k| k.elapsed());
    eprintln!(
        "reported dead {:?} after the hog started, {after_kill:?} after the OOM kill, \
         {after_end:?} after the sandbox process {sentry:?} ended",
        started.elapsed()
    );
    // Measured from the process's end when it was seen, else from the kill.
    if let Some(noticed) = after_end.or(after_kill) {
        assert!(
            noticed <= Duration::from_secs(10),
            "reported dead {noticed:?} after the sandbox ended (OOM kill {after_kill:?} ago)"
        );
    }

    // Calls on it say why, with the reason the control plane maps to 409.
    let e = a
        .client
        .exec(pb::ExecRequest {
            sandbox_id: id.clone(),
            process: Some(pb::ProcessSpec {
                cmd: "true".into(),
                ..Default::default()
            }),
            timeout_sec: 5,
        })
        .await
        .expect_err("exec on a dead capsule");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e}");
    assert_eq!(
        e.metadata()
            .get(wrenn_proto::hostagent::CAPSULE_DEAD_METADATA)
            .and_then(|v| v.to_str().ok()),
        Some("out_of_memory"),
        "{e:?}"
    );
    // Its sandbox, network and disk are gone already; the sibling still runs.
    let containers = a.runsc_containers();
    assert!(
        !containers.iter().any(|c| c.ends_with(&id)),
        "{containers:?}"
    );
    let sandbox = a.dir.join("sandboxes").join(&id);
    assert!(!sandbox.exists(), "sandbox dir left behind");
    assert!(mounts_under(&sandbox).is_empty());
    assert_eq!(ok(sh(&mut a.client, &other, "echo alive").await), "alive");

    // Destroying it (what the control plane does next) is fine and forgets it.
    a.client
        .destroy_sandbox(pb::DestroySandboxRequest {
            sandbox_id: id.clone(),
        })
        .await
        .expect("destroy the dead capsule");
    let e = a
        .client
        .ping_sandbox(pb::PingSandboxRequest {
            sandbox_id: id.clone(),
        })
        .await
        .expect_err("forgotten");
    assert_eq!(e.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn nproc_counts_the_capsules_vcpus_from_two_up() {
    if skip("nproc") {
        return;
    }
    let mut a = Agent::start(&[]).await;
    // runsc counts at least 2 (see bundle::config for why the floor stays).
    for (vcpus, shown) in [(1u32, 2u32), (2, 2), (3, 3)] {
        let id = capsule_id();
        let mut req = create_req(&id, BUSYBOX);
        req.vcpus = vcpus;
        if let Err(e) = a.client.create_sandbox(req).await {
            // A host with fewer CPUs refuses more vCPUs than it has.
            assert_eq!(e.code(), Code::InvalidArgument, "{e}");
            eprintln!("nproc: {vcpus} vCPUs refused on this host: {}", e.message());
            continue;
        }
        let out = ok(sh(
            &mut a.client,
            &id,
            "nproc; grep -c ^processor /proc/cpuinfo",
        )
        .await);
        assert_eq!(out, format!("{shown}\n{shown}"), "{vcpus} vCPUs");
        support::pause_resume(&mut a.client, &id).await;
        let out = ok(sh(&mut a.client, &id, "nproc").await);
        assert_eq!(out, shown.to_string(), "{vcpus} vCPUs after resume");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fork_bomb_stops_at_the_task_limit_and_the_capsule_lives_on() {
    if skip("fork_bomb") {
        return;
    }
    let mut a = Agent::start(&[]).await;
    let id = capsule_id();
    let mut req = create_req(&id, BUSYBOX);
    req.memory_mb = 256;
    a.client.create_sandbox(req).await.expect("create");
    let bomb = a
        .client
        .start_background(pb::StartBackgroundRequest {
            sandbox_id: id.clone(),
            process: Some(pb::ProcessSpec {
                cmd: "/bin/sh".into(),
                args: vec!["-c".into(), "b(){ b | b & }; b; sleep 60".into()],
                ..Default::default()
            }),
        })
        .await
        .expect("start the bomb")
        .into_inner();
    tokio::time::sleep(Duration::from_secs(5)).await;
    // envd still starts commands, and the bomb is held at the limit (one task per 2 MiB).
    let started = Instant::now();
    let (code, out, err) = sh(&mut a.client, &id, "echo alive").await;
    assert_eq!((code, out.trim()), (0, "alive"), "{err}\n{}", a.log());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "exec took {:?} under the bomb",
        started.elapsed()
    );
    // An exec's timeout holds under the bomb: `sleep 30` with a 3 s timeout answers in time.
    let started = Instant::now();
    let r = a
        .client
        .exec(pb::ExecRequest {
            sandbox_id: id.clone(),
            process: Some(pb::ProcessSpec {
                cmd: "sleep".into(),
                args: vec!["30".into()],
                ..Default::default()
            }),
            timeout_sec: 3,
        })
        .await
        .expect("exec with a timeout")
        .into_inner();
    assert!(r.timed_out, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "a 3 s timeout answered after {:?}",
        started.elapsed()
    );
    // Its process group is ended from inside, and the capsule is itself again.
    // (`kill` is a shell builtin: it needs no fork while the bomb holds the limit.)
    let (code, out, err) = sh(&mut a.client, &id, &format!("kill -9 -{}", bomb.pid)).await;
    assert_eq!(code, 0, "{out} {err}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, out, _) = sh(&mut a.client, &id, "ls /proc | grep -c '^[0-9]'").await;
        let left: u32 = out.trim().parse().unwrap_or(u32::MAX);
        if code == 0 && left < 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} processes left after the kill"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(ok(sh(&mut a.client, &id, "echo fine").await), "fine");
    let list = a
        .client
        .list_sandboxes(pb::ListSandboxesRequest {})
        .await
        .unwrap()
        .into_inner();
    let me = list.sandboxes.iter().find(|s| s.sandbox_id == id).unwrap();
    assert_eq!(me.state(), pb::SandboxState::Running);
}
