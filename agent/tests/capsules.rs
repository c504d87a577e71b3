//! End-to-end tests of wrenn-agent with real gVisor capsules, driven over its gRPC API.
//! Run as root with runsc installed; otherwise each test prints why it skips.

#[path = "support/agent.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{
    capsule_id, create_req, ok, sh, sh_background, skip, Agent, BUSYBOX, DEBIAN, PLATFORM_TEAM,
};
use tonic::Code;
use wrenn_proto::hostagent::v1 as pb;

async fn write_file(a: &mut Agent, id: &str, path: &str, content: &[u8]) {
    a.client
        .write_file(pb::WriteFileRequest {
            sandbox_id: id.into(),
            path: path.into(),
            content: content.to_vec(),
            user: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("write {path}: {e}"));
}

async fn read_file(a: &mut Agent, id: &str, path: &str) -> Vec<u8> {
    a.client
        .read_file(pb::ReadFileRequest {
            sandbox_id: id.into(),
            path: path.into(),
            user: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
        .into_inner()
        .content
}

async fn start_counter(a: &mut Agent, id: &str) {
    // A shell loop keeps its counter in memory only; the file is just a window onto it.
    let script = "i=0; while true; do i=$((i+1)); echo $i > /tmp/counter; sleep 0.1; done";
    sh_background(&mut a.client, id, "counter", script).await;
}

async fn counter(a: &mut Agent, id: &str) -> u64 {
    for _ in 0..50 {
        let out = ok(sh(&mut a.client, id, "cat /tmp/counter 2>/dev/null || echo 0").await);
        if let Ok(n) = out.parse::<u64>() {
            if n > 0 {
                return n;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("counter never started in {id}");
}

async fn state_of(a: &mut Agent, id: &str) -> Option<pb::SandboxInfo> {
    let list = a
        .client
        .list_sandboxes(pb::ListSandboxesRequest {})
        .await
        .unwrap()
        .into_inner();
    list.sandboxes.into_iter().find(|s| s.sandbox_id == id)
}

/// The full life of a capsule, through pause/resume, snapshot and fork.
async fn lifecycle(template: &str) {
    let mut a = Agent::start(&[]).await;
    let id = capsule_id();
    let created = a
        .client
        .create_sandbox(create_req(&id, template))
        .await
        .expect("create")
        .into_inner();
    let meta = created.metadata.unwrap();
    assert_eq!(meta.runtime, "gvisor");
    assert!(!meta.envd_version.is_empty());
    assert!(created.envd_address.starts_with("unix:"));

    assert_eq!(
        ok(sh(&mut a.client, &id, "echo hello; echo oops >&2").await),
        "hello"
    );
    let (code, _, _) = sh(&mut a.client, &id, "exit 7").await;
    assert_eq!(code, 7);

    write_file(&mut a, &id, "/root/note.txt", b"kept across pause").await;
    assert_eq!(
        read_file(&mut a, &id, "/root/note.txt").await,
        b"kept across pause"
    );
    start_counter(&mut a, &id).await;
    let before = counter(&mut a, &id).await;

    // Pause keeps memory: the counter continues from where it was, the file is there.
    a.client
        .pause_sandbox(pb::PauseSandboxRequest {
            sandbox_id: id.clone(),
        })
        .await
        .expect("pause");
    assert_eq!(
        state_of(&mut a, &id).await.unwrap().state,
        pb::SandboxState::Paused as i32
    );
    let err = a
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
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    tokio::time::sleep(Duration::from_secs(1)).await;
    a.client
        .resume_sandbox(pb::ResumeSandboxRequest {
            sandbox_id: id.clone(),
            timeout_sec: 0,
        })
        .await
        .expect("resume");
    let after = counter(&mut a, &id).await;
    assert!(after >= before, "counter went back: {before} -> {after}");
    assert!(
        after < before + 40,
        "counter restarted or ran while paused: {before} -> {after}"
    );
    assert_eq!(
        read_file(&mut a, &id, "/root/note.txt").await,
        b"kept across pause"
    );

    // Snapshot → fork: both see the state, then diverge.
    let tpl = format!("{:0>25}", format!("{}", rand::random::<u32>()));
    let snap = a
        .client
        .create_snapshot(pb::CreateSnapshotRequest {
            sandbox_id: id.clone(),
            template: Some(pb::TemplateRef {
                team_id: test_team(),
                template_id: tpl.clone(),
            }),
        })
        .await
        .expect("snapshot")
        .into_inner();
    assert!(snap.size_bytes > 0);
    assert_eq!(
        state_of(&mut a, &id).await.unwrap().state,
        pb::SandboxState::Paused as i32
    );
    let fork = capsule_id();
    let mut req = create_req(&fork, template);
    req.snapshot = Some(pb::TemplateRef {
        team_id: test_team(),
        template_id: tpl.clone(),
    });
    a.client.create_sandbox(req).await.expect("fork");
    a.client
        .resume_sandbox(pb::ResumeSandboxRequest {
            sandbox_id: id.clone(),
            timeout_sec: 0,
        })
        .await
        .expect("resume original");
    for cid in [&id, &fork] {
        assert_eq!(
            read_file(&mut a, cid, "/root/note.txt").await,
            b"kept across pause"
        );
        let n = counter(&mut a, cid).await;
        assert!(n >= after, "{cid}: counter {n} < {after}");
    }
    write_file(&mut a, &fork, "/root/fork-only", b"x").await;
    let (code, _, _) = sh(&mut a.client, &id, "test -e /root/fork-only").await;
    assert_ne!(code, 0, "the fork's write leaked into the original");
    write_file(&mut a, &id, "/root/original-only", b"y").await;
    let (code, _, _) = sh(&mut a.client, &fork, "test -e /root/original-only").await;
    assert_ne!(code, 0, "the original's write leaked into the fork");

    let template_root = support::images_dir()
        .join("teams")
        .join(PLATFORM_TEAM)
        .join(template)
        .join("rootfs");
    assert!(
        !template_root.join("root/note.txt").exists(),
        "a capsule wrote into the shared template"
    );
    for cid in [&id, &fork] {
        a.client
            .destroy_sandbox(pb::DestroySandboxRequest {
                sandbox_id: cid.to_string(),
            })
            .await
            .expect("destroy");
    }
    a.client
        .delete_snapshot(pb::DeleteSnapshotRequest {
            template: Some(pb::TemplateRef {
                team_id: test_team(),
                template_id: tpl,
            }),
        })
        .await
        .expect("delete snapshot");
    let _ = std::fs::remove_dir(support::images_dir().join("teams").join(test_team()));
    let list = a
        .client
        .list_sandboxes(pb::ListSandboxesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(list.sandboxes.is_empty());
    assert!(
        a.runsc_containers().is_empty(),
        "runsc containers left: {:?}",
        a.runsc_containers()
    );
    assert_eq!(
        std::fs::read_dir(a.dir.join("sandboxes")).unwrap().count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(a.dir.join("snapshots")).unwrap().count(),
        0
    );
}

/// Snapshot templates written by tests go to a team of their own (test images are shared).
fn test_team() -> String {
    "00000000000000000000test0".into()
}

#[tokio::test(flavor = "multi_thread")]
async fn busybox_create_exec_files_pause_resume_snapshot_fork_destroy() {
    if skip("busybox lifecycle") {
        return;
    }
    lifecycle(BUSYBOX).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn debian_create_exec_files_pause_resume_snapshot_fork_destroy() {
    if skip("debian lifecycle") {
        return;
    }
    if let Err(e) = support::ensure_image("debian", DEBIAN) {
        eprintln!("SKIP debian lifecycle: cannot build minimal-debian: {e}");
        return;
    }
    lifecycle(DEBIAN).await;
    // The Debian image carries the user and tools every image promises.
    let mut a = Agent::start(&[]).await;
    let id = capsule_id();
    a.client
        .create_sandbox(create_req(&id, DEBIAN))
        .await
        .expect("create");
    // wrenn-user and its sudoers entry exist. (Running sudo *as* wrenn-user fails under
    // runsc 20240729: the kernel reports no_new_privs after su, which sudo refuses.)
    assert_eq!(ok(sh(&mut a.client, &id, "id -u wrenn-user").await), "1000");
    ok(sh(
        &mut a.client,
        &id,
        "sudo -n -l -U wrenn-user | grep -q NOPASSWD",
    )
    .await);
    ok(sh(&mut a.client, &id, "command -v socat curl git tini ip ps").await);
    // Python with pip and venv: a venv gets its own pip.
    let out = ok(sh(
        &mut a.client,
        &id,
        "python3 -m venv /tmp/venv && /tmp/venv/bin/python -m pip --version && python3 -c 'print(6*7)'",
    )
    .await);
    assert!(out.contains("pip ") && out.ends_with("42"), "{out}");
    a.client
        .destroy_sandbox(pb::DestroySandboxRequest { sandbox_id: id })
        .await
        .expect("destroy");
}

/// A pause is first a freeze in place, written to disk once it has lasted
/// `--hibernate-after-secs`; and a resume from disk whose envd never answers must not cost
/// the capsule: it stays paused with its memory and files, and a later resume brings it back.
/// (envd is kept from listening by a directory where its socket goes.)
#[tokio::test(flavor = "multi_thread")]
async fn a_pause_hibernates_and_a_resume_that_does_not_answer_keeps_it_paused() {
    if skip("hibernate") {
        return;
    }
    let mut a = Agent::start(&["--hibernate-after-secs", "2"]).await;
    let id = capsule_id();
    a.client
        .create_sandbox(create_req(&id, BUSYBOX))
        .await
        .expect("create");
    write_file(&mut a, &id, "/root/note.txt", b"kept").await;
    start_counter(&mut a, &id).await;
    let before = counter(&mut a, &id).await;
    a.client
        .pause_sandbox(pb::PauseSandboxRequest {
            sandbox_id: id.clone(),
        })
        .await
        .expect("pause");
    let image = a.dir.join("snapshots").join(&id).join("checkpoint.img");
    assert!(
        !image.exists(),
        "a fresh pause is a freeze, not a checkpoint"
    );
    assert_eq!(a.runsc_containers().len(), 1, "the frozen sandbox stays");
    let frozen = Instant::now();
    while !image.exists() {
        assert!(
            frozen.elapsed() < Duration::from_secs(20),
            "not written to disk 20 s after a 2 s hibernate_after"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..50 {
        if a.runsc_containers().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        a.runsc_containers().is_empty(),
        "a hibernated capsule has no sandbox"
    );
    let blocker = a
        .dir
        .join("sandboxes")
        .join(&id)
        .join("run")
        .join("envd.sock");
    std::fs::create_dir_all(&blocker).expect("block envd's socket path");
    let started = Instant::now();
    let err = a
        .client
        .resume_sandbox(pb::ResumeSandboxRequest {
            sandbox_id: id.clone(),
            timeout_sec: 0,
        })
        .await
        .expect_err("a resume whose envd cannot listen fails");
    println!(
        "failed resume answered after {:?}: {err}",
        started.elapsed()
    );
    assert_eq!(
        state_of(&mut a, &id).await.expect("still listed").state,
        pb::SandboxState::Paused as i32,
        "after a failed resume"
    );
    assert!(
        a.runsc_containers().is_empty(),
        "nothing half-alive is left: {:?}",
        a.runsc_containers()
    );
    std::fs::remove_dir(&blocker).unwrap();
    a.client
        .resume_sandbox(pb::ResumeSandboxRequest {
            sandbox_id: id.clone(),
            timeout_sec: 0,
        })
        .await
        .expect("the second resume");
    let after = counter(&mut a, &id).await;
    assert!(
        after >= before && after < before + 40,
        "memory kept over the failed resume: {before} -> {after}"
    );
    assert_eq!(read_file(&mut a, &id, "/root/note.txt").await, b"kept");
    a.client
        .destroy_sandbox(pb::DestroySandboxRequest { sandbox_id: id })
        .await
        .expect("destroy");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_capsule_is_auto_paused_and_resumable() {
    if skip("ttl") {
        return;
    }
    let mut a = Agent::start(&["--reaper-interval-ms", "200"]).await;
    let id = capsule_id();
    let mut req = create_req(&id, BUSYBOX);
    req.timeout_sec = 2;
    a.client.create_sandbox(req).await.expect("create");
    let busy = capsule_id();
    let mut req = create_req(&busy, BUSYBOX);
    req.timeout_sec = 2;
    a.client.create_sandbox(req).await.expect("create");
    let start = Instant::now();
    loop {
        // Pinging one capsule keeps it alive while the other idles out.
        a.client
            .ping_sandbox(pb::PingSandboxRequest {
                sandbox_id: busy.clone(),
            })
            .await
            .expect("ping");
        let list = a
            .client
            .list_sandboxes(pb::ListSandboxesRequest {})
            .await
            .unwrap()
            .into_inner();
        if list.auto_paused_ids.contains(&id) {
            let info = list.sandboxes.iter().find(|s| s.sandbox_id == id).unwrap();
            assert_eq!(info.state, pb::SandboxState::Paused as i32);
            assert!(info.auto_paused);
            assert!(
                !list.auto_paused_ids.contains(&busy),
                "the pinged capsule was paused"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "capsule was not auto-paused"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        start.elapsed() >= Duration::from_millis(1500),
        "paused before its timeout"
    );
    a.client
        .resume_sandbox(pb::ResumeSandboxRequest {
            sandbox_id: id.clone(),
            timeout_sec: 0,
        })
        .await
        .expect("resume");
    assert_eq!(ok(sh(&mut a.client, &id, "echo back").await), "back");
    let list = a
        .client
        .list_sandboxes(pb::ListSandboxesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!list.auto_paused_ids.contains(&id));
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_capsules_at_once() {
    if skip("twenty capsules") {
        return;
    }
    let a = Agent::start(&[]).await;
    let ids: Vec<String> = (0..20).map(|_| capsule_id()).collect();
    let creates = ids.iter().map(|id| {
        let mut c = a.client.clone();
        let id = id.clone();
        async move { c.create_sandbox(create_req(&id, BUSYBOX)).await.map(|_| ()) }
    });
    for r in futures::future::join_all(creates).await {
        r.expect("create");
    }
    // Each capsule gets its own id written, then reads it back: requests reach the right one.
    let execs = ids.iter().map(|id| {
        let mut c = a.client.clone();
        let id = id.clone();
        async move {
            let w = pb::WriteFileRequest {
                sandbox_id: id.clone(),
                path: "/tmp/id".into(),
                content: id.clone().into_bytes(),
                user: String::new(),
            };
            c.write_file(w).await.expect("write");
            sh(&mut c, &id, "cat /tmp/id").await
        }
    });
    for (id, out) in ids.iter().zip(futures::future::join_all(execs).await) {
        assert_eq!(ok(out), *id);
    }
    assert_eq!(a.runsc_containers().len(), 20);
    let destroys = ids.iter().map(|id| {
        let mut c = a.client.clone();
        let id = id.clone();
        async move {
            c.destroy_sandbox(pb::DestroySandboxRequest { sandbox_id: id })
                .await
                .map(|_| ())
        }
    });
    for r in futures::future::join_all(destroys).await {
        r.expect("destroy");
    }
    assert!(a.runsc_containers().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn restarted_agent_adopts_running_and_paused_capsules() {
    if skip("restart adoption") {
        return;
    }
    let mut a = Agent::start(&[]).await;
    let running = capsule_id();
    let paused = capsule_id();
    a.client
        .create_sandbox(create_req(&running, BUSYBOX))
        .await
        .expect("create");
    a.client
        .create_sandbox(create_req(&paused, BUSYBOX))
        .await
        .expect("create");
    write_file(&mut a, &running, "/tmp/mark", b"still here").await;
    a.client
        .pause_sandbox(pb::PauseSandboxRequest {
            sandbox_id: paused.clone(),
        })
        .await
        .expect("pause");

    let dir = a.take_dir().unwrap();
    a.kill();
    let mut b = Agent::start_in(dir.path(), &[]).await;
    let list = b
        .client
        .list_sandboxes(pb::ListSandboxesRequest {})
        .await
        .unwrap()
        .into_inner();
    let find = |id: &str| list.sandboxes.iter().find(|s| s.sandbox_id == id).cloned();
    assert_eq!(
        find(&running).expect("running capsule adopted").state,
        pb::SandboxState::Running as i32
    );
    assert_eq!(
        find(&paused).expect("paused capsule adopted").state,
        pb::SandboxState::Paused as i32
    );
    assert_eq!(
        read_file(&mut b, &running, "/tmp/mark").await,
        b"still here"
    );
    b.client
        .resume_sandbox(pb::ResumeSandboxRequest {
            sandbox_id: paused.clone(),
            timeout_sec: 0,
        })
        .await
        .expect("resume adopted");
    assert_eq!(ok(sh(&mut b.client, &paused, "echo ok").await), "ok");
    for id in [running, paused] {
        b.client
            .destroy_sandbox(pb::DestroySandboxRequest { sandbox_id: id })
            .await
            .expect("destroy");
    }
    drop(b);
    support::remove_containers(dir.path());
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_map_to_grpc_codes() {
    if skip("error codes") {
        return;
    }
    let mut a = Agent::start(&[]).await;
    let err = a
        .client
        .create_sandbox(create_req(&capsule_id(), "zzzzzzzzzzzzzzzzzzzzzzzzz"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    let mut req = create_req(&capsule_id(), BUSYBOX);
    req.vcpus = 4096;
    let err = a.client.create_sandbox(req).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let mut req = create_req(&capsule_id(), BUSYBOX);
    req.memory_mb = u32::MAX;
    assert_eq!(
        a.client.create_sandbox(req).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let err = a
        .client
        .pause_sandbox(pb::PauseSandboxRequest {
            sandbox_id: capsule_id(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = a
        .client
        .destroy_sandbox(pb::DestroySandboxRequest {
            sandbox_id: capsule_id(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let id = capsule_id();
    a.client
        .create_sandbox(create_req(&id, BUSYBOX))
        .await
        .expect("create");
    let err = a
        .client
        .resume_sandbox(pb::ResumeSandboxRequest {
            sandbox_id: id.clone(),
            timeout_sec: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = a
        .client
        .create_sandbox(create_req(&id, BUSYBOX))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    a.client
        .destroy_sandbox(pb::DestroySandboxRequest { sandbox_id: id })
        .await
        .expect("destroy");
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_start_leaves_nothing_behind() {
    if skip("failed start cleanup") {
        return;
    }
    // A template whose rootfs has no init at all: runsc itself fails to start it.
    let images = tempfile::tempdir().unwrap();
    let tpl = images
        .path()
        .join("teams")
        .join(PLATFORM_TEAM)
        .join("0000000000000000000000999");
    std::fs::create_dir_all(tpl.join("rootfs/tmp")).unwrap();
    let a = Agent::start(&["--images-dir", images.path().to_str().unwrap()]).await;
    let mut c = a.client.clone();
    let id = capsule_id();
    let err = c
        .create_sandbox(create_req(&id, "0000000000000000000000999"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err}");
    assert!(
        err.message().contains("runsc"),
        "reason missing: {}",
        err.message()
    );
    assert!(a.runsc_containers().is_empty());
    assert_eq!(
        std::fs::read_dir(a.dir.join("sandboxes")).unwrap().count(),
        0
    );
    let list = c
        .list_sandboxes(pb::ListSandboxesRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(list.sandboxes.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn capsules_cannot_see_the_host_or_each_other() {
    if skip("isolation") {
        return;
    }
    let mut a = Agent::start(&[]).await;
    let secret = a.dir.join("host-secret");
    std::fs::write(&secret, "host only").unwrap();
    let one = capsule_id();
    let two = capsule_id();
    a.client
        .create_sandbox(create_req(&one, BUSYBOX))
        .await
        .expect("create");
    a.client
        .create_sandbox(create_req(&two, BUSYBOX))
        .await
        .expect("create");

    let (code, out, _) = sh(&mut a.client, &one, &format!("cat {}", secret.display())).await;
    assert_ne!(code, 0, "capsule read a host file: {out}");
    let (_, out, _) = sh(
        &mut a.client,
        &one,
        "cat /etc/hostname /proc/1/cmdline; ls /",
    )
    .await;
    assert!(!out.contains("host only"));
    // The host's own processes are invisible.
    let (_, ps, _) = sh(&mut a.client, &one, "ls /proc | grep -c '^[0-9]'").await;
    assert!(
        ps.trim().parse::<u32>().unwrap() < 20,
        "capsule sees many processes: {ps}"
    );

    write_file(&mut a, &one, "/tmp/one-secret", b"1").await;
    a.client
        .start_background(pb::StartBackgroundRequest {
            sandbox_id: one.clone(),
            process: Some(pb::ProcessSpec {
                cmd: "/bin/sleep".into(),
                args: vec!["4242".into()],
                ..Default::default()
            }),
        })
        .await
        .expect("background");
    let (code, _, _) = sh(&mut a.client, &two, "test -e /tmp/one-secret").await;
    assert_ne!(code, 0, "capsule two sees capsule one's file");
    let (_, ps, _) = sh(&mut a.client, &two, "ps -ef || ps").await;
    assert!(
        !ps.contains("4242"),
        "capsule two sees capsule one's process: {ps}"
    );
    let (_, ps, _) = sh(&mut a.client, &one, "ps -ef || ps").await;
    assert!(
        ps.contains("4242"),
        "the background process is not visible in its own capsule: {ps}"
    );
    for id in [one, two] {
        a.client
            .destroy_sandbox(pb::DestroySandboxRequest { sandbox_id: id })
            .await
            .expect("destroy");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_rings_and_port_tunnel() {
    if skip("metrics and tunnel") {
        return;
    }
    let mut a = Agent::start(&[]).await;
    let id = capsule_id();
    a.client
        .create_sandbox(create_req(&id, BUSYBOX))
        .await
        .expect("create");

    // A one-shot TCP server inside a capsule without any network interface: it answers
    // "pong" and keeps stdin open long enough to record what it received.
    a.client
        .start_background(pb::StartBackgroundRequest {
            sandbox_id: id.clone(),
            process: Some(pb::ProcessSpec {
                cmd: "/bin/sh".into(),
                args: vec![
                    "-c".into(),
                    "(echo pong; sleep 3) | nc -l -p 8080 > /tmp/got".into(),
                ],
                ..Default::default()
            }),
        })
        .await
        .expect("server");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::TunnelFrame {
        frame: Some(pb::tunnel_frame::Frame::Open(pb::TunnelOpen {
            sandbox_id: id.clone(),
            port: 8080,
        })),
    })
    .await
    .unwrap();
    tx.send(pb::TunnelFrame {
        frame: Some(pb::tunnel_frame::Frame::Data(b"ping\n".to_vec())),
    })
    .await
    .unwrap();
    let mut stream = a
        .client
        .tunnel(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("tunnel")
        .into_inner();
    let mut got = Vec::new();
    while let Ok(Some(frame)) = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("tunnel timed out")
    {
        match frame.frame {
            Some(pb::tunnel_frame::Frame::Data(d)) => got.extend_from_slice(&d),
            Some(pb::tunnel_frame::Frame::Close(_)) => break,
            _ => {}
        }
        if got.ends_with(b"pong\n") {
            break;
        }
    }
    assert_eq!(got, b"pong\n");
    drop(tx);
    // nc writes what it received once the connection ends.
    let mut received = String::new();
    for _ in 0..50 {
        received = ok(sh(&mut a.client, &id, "cat /tmp/got").await);
        if !received.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(received, "ping");

    // The sampler records a point every 0.5 s.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m = a
        .client
        .get_sandbox_metrics(pb::GetSandboxMetricsRequest {
            sandbox_id: id.clone(),
            range: "5m".into(),
        })
        .await
        .expect("metrics")
        .into_inner();
    assert!(m.points.len() >= 2, "only {} points", m.points.len());
    assert!(m.points.iter().all(|p| p.mem_bytes > 0));
    let err = a
        .client
        .get_sandbox_metrics(pb::GetSandboxMetricsRequest {
            sandbox_id: id.clone(),
            range: "3d".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let flushed = a
        .client
        .flush_sandbox_metrics(pb::FlushSandboxMetricsRequest {
            sandbox_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!flushed.sandboxes[0].points.is_empty());
    let again = a
        .client
        .flush_sandbox_metrics(pb::FlushSandboxMetricsRequest {
            sandbox_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(again.sandboxes[0].points.len() <= 1, "flush did not drain");
    a.client
        .destroy_sandbox(pb::DestroySandboxRequest { sandbox_id: id })
        .await
        .expect("destroy");
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_to_the_socket_dir_stay_off_the_host_disk() {
    if skip("run_dir_bound") {
        return;
    }
    let mut a = Agent::start(&[]).await;
    let id = capsule_id();
    a.client
        .create_sandbox(create_req(&id, BUSYBOX))
        .await
        .expect("create");
    let host_run = a.dir.join("sandboxes").join(&id).join("run");
    let free = |p: &std::path::Path| {
        let s = nix::sys::statvfs::statvfs(p).unwrap();
        s.blocks_available() * s.fragment_size()
    };
    let before = free(&a.dir);
    // 200 MB into /run/wrenn (the host-backed socket directory) stops at its small bound.
    let (code, _, err) = sh(
        &mut a.client,
        &id,
        "dd if=/dev/zero of=/run/wrenn/fill bs=1M count=200 2>&1; echo done",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let written = std::fs::metadata(host_run.join("fill"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(
        written <= 1024 * 1024,
        "{written} bytes reached the host through /run/wrenn"
    );
    let after = free(&a.dir);
    assert!(
        before.saturating_sub(after) < 16 * 1024 * 1024,
        "the host disk lost {} bytes",
        before.saturating_sub(after)
    );
    // The capsule keeps answering (envd's socket lives in the same directory).
    assert_eq!(
        ok(sh(&mut a.client, &id, "rm /run/wrenn/fill; echo ok").await),
        "ok"
    );
    a.client
        .destroy_sandbox(pb::DestroySandboxRequest {
            sandbox_id: id.clone(),
        })
        .await
        .expect("destroy");
    assert!(!host_run.exists(), "run dir left behind");
}
