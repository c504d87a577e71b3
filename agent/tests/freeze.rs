//! Pausing by freezing in place: many cycles lose nothing, and a snapshot taken after a freeze
//! and a thaw restores. Run as root with runsc installed; otherwise each test prints why it
//! skips.
//!
//! `WRENN_TEST_FREEZER` (`cgroup`, the default, or `runsc`) picks the agent's `--freezer`, and
//! `WRENN_TEST_FORK_ROUNDS` (default 3) the rounds of the fork test, to compare the two.

#[path = "support/agent.rs"]
mod support;

use std::time::Instant;

use support::{capsule_id, create_req, ok, pause_resume, sh, sh_background, skip, Agent, BUSYBOX};
use wrenn_proto::hostagent::v1 as pb;

fn freezer() -> String {
    std::env::var("WRENN_TEST_FREEZER").unwrap_or_else(|_| "cgroup".into())
}

async fn start() -> Agent {
    Agent::start(&["--freezer", &freezer()]).await
}

async fn create(a: &mut Agent) -> String {
    let id = capsule_id();
    a.client
        .create_sandbox(create_req(&id, BUSYBOX))
        .await
        .unwrap_or_else(|e| panic!("create {id}: {e}"));
    id
}

async fn destroy(a: &mut Agent, id: &str) {
    a.client
        .destroy_sandbox(pb::DestroySandboxRequest {
            sandbox_id: id.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("destroy {id}: {e}"));
}

fn runsc_status(a: &Agent, id: &str) -> String {
    let out = std::process::Command::new("runsc")
        .arg(format!("--root={}", a.dir.join("runsc").display()))
        .args(["state", &format!("wrenn-{id}")])
        .output()
        .expect("runsc state");
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    state["status"].as_str().unwrap_or_default().to_owned()
}

/// A writer that appends consecutive numbers, one per line, holding the count in memory.
async fn start_writer(a: &mut Agent, id: &str) {
    let script = "i=0; while true; do i=$((i+1)); echo $i >> /tmp/log; sleep 0.01; done";
    sh_background(&mut a.client, id, "writer", script).await;
}

/// The writer's log: every number from 1 up with no gap or repeat; returns the last.
fn gapless(log: &str) -> u64 {
    let mut last = 0;
    for line in log.lines() {
        let n: u64 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("bad line {line:?}"));
        assert_eq!(
            n,
            last + 1,
            "the writer lost or repeated a line after {last}"
        );
        last = n;
    }
    last
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_pause_resume_cycles_lose_nothing() {
    if skip("twenty_pause_resume_cycles_lose_nothing") {
        return;
    }
    let mut a = start().await;
    let id = create(&mut a).await;
    start_writer(&mut a, &id).await;
    // Which freezer froze it: runsc knows of its own pause only.
    a.client
        .pause_sandbox(pb::PauseSandboxRequest {
            sandbox_id: id.clone(),
        })
        .await
        .expect("pause");
    let cgroup =
        std::fs::read_to_string(format!("/sys/fs/cgroup/freezer/wrenn-{id}/freezer.state"))
            .unwrap_or_default();
    if freezer() == "runsc" {
        assert_eq!(runsc_status(&a, &id), "paused");
    } else if !cgroup.is_empty() {
        // cgroup v1 here; runsc's own state would not answer while frozen this way.
        assert_eq!(cgroup.trim(), "FROZEN");
    }
    a.client
        .resume_sandbox(pb::ResumeSandboxRequest {
            sandbox_id: id.clone(),
            timeout_sec: 0,
        })
        .await
        .expect("resume");
    let mut last = 0;
    let started = Instant::now();
    for cycle in 1..=20 {
        pause_resume(&mut a.client, &id).await;
        // The writer lives on: it keeps writing after each resume, and nothing is lost.
        let mut now = last;
        for _ in 0..100 {
            now = gapless(&ok(sh(&mut a.client, &id, "cat /tmp/log").await));
            if now > last {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(now > last, "cycle {cycle}: the writer stopped at {last}");
        last = now;
    }
    eprintln!(
        "20 pause/resume cycles ({}): {:?}, the writer at {last}",
        freezer(),
        started.elapsed()
    );
    destroy(&mut a, &id).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_after_a_freeze_and_a_thaw_restores() {
    if skip("a_snapshot_after_a_freeze_and_a_thaw_restores") {
        return;
    }
    let rounds: usize = std::env::var("WRENN_TEST_FORK_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut a = start().await;
    let team = "00000000000000000000frz00".to_string();
    let mut failed = Vec::new();
    for round in 0..rounds {
        let id = create(&mut a).await;
        start_writer(&mut a, &id).await;
        ok(sh(&mut a.client, &id, "echo kept > /tmp/state").await);
        // A freeze and a thaw first: the path a paused-and-resumed capsule takes.
        pause_resume(&mut a.client, &id).await;
        let tpl = pb::TemplateRef {
            team_id: team.clone(),
            template_id: format!("{:0>25}", rand::random::<u32>()),
        };
        a.client
            .create_snapshot(pb::CreateSnapshotRequest {
                sandbox_id: id.clone(),
                template: Some(tpl.clone()),
            })
            .await
            .expect("snapshot");
        let fork = capsule_id();
        let mut req = create_req(&fork, BUSYBOX);
        req.snapshot = Some(tpl.clone());
        match a.client.create_sandbox(req).await {
            Ok(_) => {
                let out = ok(sh(&mut a.client, &fork, "cat /tmp/state").await);
                assert_eq!(out, "kept");
                gapless(&ok(sh(&mut a.client, &fork, "cat /tmp/log").await));
                destroy(&mut a, &fork).await;
            }
            Err(e) => failed.push(format!("round {round}: {e}")),
        }
        destroy(&mut a, &id).await;
        a.client
            .delete_snapshot(pb::DeleteSnapshotRequest {
                template: Some(tpl),
            })
            .await
            .expect("delete snapshot");
    }
    let _ = std::fs::remove_dir(support::images_dir().join("teams").join(&team));
    eprintln!(
        "forks after a freeze and a thaw ({}): {} of {rounds} failed",
        freezer(),
        failed.len()
    );
    assert!(failed.is_empty(), "forks that did not restore: {failed:?}");
}
