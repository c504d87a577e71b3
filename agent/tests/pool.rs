//! The warm pool against real gVisor capsules: a create that matches a pool is a hand-over
//! with the team's own identity, pool entries are never listed, the pool refills to its size
//! and no further, and it leaves nothing behind when the agent stops.
//! Run as root with runsc installed; otherwise each test prints why it skips.

#[path = "support/agent.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{capsule_id, create_req, ok, pause_resume, sh, skip, Agent, BUSYBOX};
use wrenn_proto::hostagent::v1 as pb;

/// Two busybox capsules of 1 vCPU and 256 MiB (what `create_req` asks for).
const POOL: &str = "minimal-busybox:1x256=2";
const POOL_LABEL: &str = "minimal-busybox:1x256";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(metrics: &str) -> Agent {
    Agent::start(&["--warm-pool", POOL, "--metrics-listen", metrics]).await
}

/// One sample of the agent's metrics (`name{labels}` → value).
async fn metric(metrics: &str, series: &str) -> f64 {
    let text = reqwest::get(format!("http://{metrics}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn ready(metrics: &str) -> f64 {
    metric(
        metrics,
        &format!("wrenn_agent_warm_pool_ready{{pool=\"{POOL_LABEL}\"}}"),
    )
    .await
}

async fn wait_ready(a: &Agent, metrics: &str, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while ready(metrics).await < n {
        assert!(
            Instant::now() < deadline,
            "the pool did not reach {n}; log:\n{}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Removes every sandbox under a directory several agents used in turn, even on a panic.
struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        support::remove_containers(&self.0);
        support::remove_networks(&self.0);
    }
}

fn pool_containers(a: &Agent) -> Vec<String> {
    a.runsc_containers()
        .into_iter()
        .filter(|c| c.starts_with("wrenn-pool-"))
        .collect()
}

fn pooled_create(id: &str, who: &str) -> pb::CreateSandboxRequest {
    let mut req = create_req(id, BUSYBOX);
    req.env_vars.insert("WHO".into(), who.into());
    req.default_user = "wrenn-user".into();
    req.access_token = format!("token-{who}");
    req
}

async fn listed(a: &mut Agent) -> Vec<String> {
    let mut ids: Vec<String> = a
        .client
        .list_sandboxes(pb::ListSandboxesRequest {})
        .await
        .unwrap()
        .into_inner()
        .sandboxes
        .into_iter()
        .map(|s| s.sandbox_id)
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn pooled_capsules_are_handed_over_with_their_own_identity_and_the_pool_refills() {
    if skip("pooled_capsules_are_handed_over_with_their_own_identity_and_the_pool_refills") {
        return;
    }
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut a = start(&metrics).await;
    wait_ready(&a, &metrics, 2.0).await;
    assert!(
        listed(&mut a).await.is_empty(),
        "pool entries are never listed"
    );

    // Two creates, two hand-overs.
    let (ida, idb) = (capsule_id(), capsule_id());
    let t = Instant::now();
    a.client
        .create_sandbox(pooled_create(&ida, "team-a"))
        .await
        .expect("create a");
    let took_a = t.elapsed();
    a.client
        .create_sandbox(pooled_create(&idb, "team-b"))
        .await
        .expect("create b");
    let hits = metric(
        &metrics,
        "wrenn_agent_warm_pool_takes_total{result=\"hit\"}",
    )
    .await;
    assert_eq!(hits, 2.0, "both creates came from the pool");
    eprintln!("pooled create: {took_a:?}");

    // Each carries its own env, user and identity.
    let probe = "echo $WHO; id -un; cat /etc/machine-id; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'";
    let out_a = ok(sh(&mut a.client, &ida, probe).await);
    let out_b = ok(sh(&mut a.client, &idb, probe).await);
    let (la, lb): (Vec<&str>, Vec<&str>) = (out_a.lines().collect(), out_b.lines().collect());
    assert_eq!(la[..2], ["team-a", "wrenn-user"], "{out_a}");
    assert_eq!(lb[..2], ["team-b", "wrenn-user"], "{out_b}");
    assert_eq!(la[2].len(), 32, "a machine id: {out_a}");
    assert_ne!(la[2], lb[2], "two pooled capsules share a machine id");
    assert_ne!(
        la[3], lb[3],
        "two pooled capsules drew the same random bytes"
    );
    // The team's token, not the pool's, now opens envd: the agent's calls above used it.
    let mut both = vec![ida.clone(), idb.clone()];
    both.sort();
    assert_eq!(
        listed(&mut a).await,
        both,
        "only the teams' capsules are listed"
    );

    // The pool refills to its size, and no further.
    wait_ready(&a, &metrics, 2.0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(ready(&metrics).await, 2.0);
    assert_eq!(
        pool_containers(&a).len(),
        4,
        "2 handed over + 2 waiting: {:?}",
        a.runsc_containers()
    );

    // A create of another shape boots as before.
    let idc = capsule_id();
    let mut cold = create_req(&idc, BUSYBOX);
    cold.memory_mb = 320;
    a.client.create_sandbox(cold).await.expect("cold create");
    assert_eq!(ok(sh(&mut a.client, &idc, "echo cold").await), "cold");
    assert!(a.runsc_containers().contains(&format!("wrenn-{idc}")));

    // A handed-over capsule lives like any other: pause and resume (memory kept), a
    // snapshot and a fork of it, destroy.
    ok(sh(&mut a.client, &ida, "echo kept > /tmp/state").await);
    pause_resume(&mut a.client, &ida).await;
    assert_eq!(
        ok(sh(&mut a.client, &ida, "cat /tmp/state; echo $WHO").await),
        "kept\nteam-a"
    );
    let snap = pb::TemplateRef {
        team_id: "000000000000000000000pool".into(),
        template_id: format!("{:0>25}", rand::random::<u32>()),
    };
    a.client
        .create_snapshot(pb::CreateSnapshotRequest {
            sandbox_id: ida.clone(),
            template: Some(snap.clone()),
        })
        .await
        .expect("snapshot of a pooled capsule");
    let fork = capsule_id();
    let mut req = create_req(&fork, BUSYBOX);
    req.snapshot = Some(snap.clone());
    a.client.create_sandbox(req).await.expect("fork");
    let fork_out = ok(sh(&mut a.client, &fork, "cat /tmp/state; cat /etc/machine-id").await);
    assert!(fork_out.starts_with("kept\n"), "{fork_out}");
    assert_ne!(
        fork_out.lines().nth(1),
        Some(la[2]),
        "a fork gets its own machine id"
    );

    for id in [&ida, &idb, &idc, &fork] {
        a.client
            .destroy_sandbox(pb::DestroySandboxRequest {
                sandbox_id: id.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("destroy {id}: {e}"));
    }
    a.client
        .delete_snapshot(pb::DeleteSnapshotRequest {
            template: Some(snap.clone()),
        })
        .await
        .expect("delete snapshot");
    let _ = std::fs::remove_dir(support::images_dir().join("teams").join(&snap.team_id));
    assert!(listed(&mut a).await.is_empty());
    // Only the two waiting entries are left.
    let left = a.runsc_containers();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        left.iter().all(|c| c.starts_with("wrenn-pool-")),
        "{left:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_keeps_handed_over_capsules_and_a_stop_leaves_no_pool_behind() {
    if skip("a_restart_keeps_handed_over_capsules_and_a_stop_leaves_no_pool_behind") {
        return;
    }
    let metrics = format!("127.0.0.1:{}", free_port());
    let mut a = start(&metrics).await;
    wait_ready(&a, &metrics, 2.0).await;
    let id = capsule_id();
    a.client
        .create_sandbox(pooled_create(&id, "team-a"))
        .await
        .expect("create");
    ok(sh(&mut a.client, &id, "echo 7 > /tmp/n").await);
    let waiting_before: Vec<String> = {
        wait_ready(&a, &metrics, 2.0).await;
        let handed = a.runsc_containers();
        handed
            .into_iter()
            .filter(|c| c.starts_with("wrenn-pool-"))
            .collect()
    };
    assert_eq!(waiting_before.len(), 3, "1 handed over + 2 waiting");

    // A crash: the next agent adopts the team's capsule under its id and sweeps the entries
    // that were waiting (no team owns them), then boots new ones.
    let tmp = a.take_dir();
    a.kill();
    let dir = a.dir.clone();
    let _cleanup = Cleanup(dir.clone());
    let mut b = Agent::start_in(&dir, &["--warm-pool", POOL, "--metrics-listen", &metrics]).await;
    assert_eq!(listed(&mut b).await, vec![id.clone()]);
    assert_eq!(
        ok(sh(&mut b.client, &id, "cat /tmp/n; echo $WHO").await),
        "7\nteam-a"
    );
    wait_ready(&b, &metrics, 2.0).await;
    assert_eq!(pool_containers(&b).len(), 3, "{:?}", b.runsc_containers());

    // A stop drains the pool: the team's capsule keeps running, nothing of the pool is left.
    let pid = b.pid().expect("running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "the agent did not stop");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.kill();
    // The handed-over capsule keeps its pool entry's sandbox (`sandboxes/pool-<hex>/`, whose
    // record names the capsule); nothing else is left.
    let dirs: Vec<String> = std::fs::read_dir(dir.join("sandboxes"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let record = std::fs::read_to_string(dir.join("sandboxes").join(&dirs[0]).join("capsule.json"))
        .expect("the capsule's record");
    assert!(
        record.contains(&format!("\"capsule_id\": \"{id}\"")),
        "{record}"
    );
    assert_eq!(
        support::runsc_list(&dir),
        vec![format!("wrenn-{}", dirs[0])]
    );

    // Clean up the team's capsule with a last agent.
    let mut c = Agent::start_in(&dir, &["--warm-pool", "none"]).await;
    c.client
        .destroy_sandbox(pb::DestroySandboxRequest { sandbox_id: id })
        .await
        .expect("destroy");
    drop(c);
    drop(_cleanup);
    drop(tmp);
}
