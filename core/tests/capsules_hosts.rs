//! Capsules across hosts, end to end with real agents and gVisor capsules: the scheduler
//! spreads capsules over two agents; losing one agent leaves the other's capsules usable,
//! its own capsules go `missing` and are reconciled to their true state when it returns;
//! an agent killed in the middle of a create leaves the capsule in `error` with a reason and
//! nothing behind on the host.
//!
//! The host monitor is driven by calling [`monitor::tick`] (silence is simulated by ageing
//! the host's last heartbeat, as the 90 s threshold would), so the tests do not wait 90 s.

use cpserver::test_support::stack as capsules_support;

use capsules_support::{Account, Stack};
use cpserver::hosts::monitor;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use uuid::Uuid;
use wrenn_extension_api::ids;

async fn status_of(stack: &Stack, who: &Account, id: &str) -> Value {
    let r = stack
        .req(who, Method::GET, &format!("/v1/capsules/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn host_of(stack: &Stack, id: &str) -> Uuid {
    let capsule = ids::decode(ids::CAPSULE, id).expect("capsule id");
    sqlx::query_scalar("SELECT host_id FROM capsules WHERE id = $1")
        .bind(capsule)
        .fetch_one(stack.ctx().db())
        .await
        .expect("placed")
}

/// Makes `host` look silent for two hours, as if it missed every heartbeat.
async fn age_heartbeat(stack: &Stack, host: Uuid) {
    sqlx::query("UPDATE hosts SET last_heartbeat_at = now() - interval '2 hours' WHERE id = $1")
        .bind(host)
        .execute(stack.ctx().db())
        .await
        .unwrap();
}

async fn tick(stack: &Stack) -> monitor::TickReport {
    let hosts = stack.app().hosts.clone();
    monitor::tick(stack.app(), &hosts)
        .await
        .expect("monitor tick")
}

async fn exec_status(stack: &Stack, who: &Account, id: &str) -> u16 {
    stack
        .req(who, Method::POST, &format!("/v1/capsules/{id}/exec"))
        .json(&json!({"cmd": "true"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_share_capsules_and_survive_losing_one() {
    let Some(mut stack) = Stack::start().await else {
        return;
    };
    stack.add_agent().await;
    let (a, b) = (stack.agents[0].host_id, stack.agents[1].host_id);
    let alice = stack.account("alice").await;

    // ---- least-loaded placement alternates between two equal hosts
    let mut on_a = Vec::new();
    let mut on_b = Vec::new();
    for _ in 0..4 {
        let c = stack.create(&alice, json!({})).await;
        let id = c["id"].as_str().unwrap().to_string();
        match host_of(&stack, &id).await {
            h if h == a => on_a.push(id),
            h if h == b => on_b.push(id),
            h => panic!("placed on an unknown host {h}"),
        }
    }
    assert_eq!((on_a.len(), on_b.len()), (2, 2), "a={on_a:?} b={on_b:?}");
    for id in on_a.iter().chain(&on_b) {
        let out = stack.exec(&alice, id, "echo", &["hi"]).await;
        assert_eq!(out["stdout"], "hi\n");
    }
    let (b_kept, b_lost) = (on_b[0].clone(), on_b[1].clone());
    stack
        .exec(&alice, &b_kept, "sh", &["-c", "echo survived > /tmp/mark"])
        .await;

    // ---- host B's agent dies; one of its capsules dies with the host, the other survives
    let lost_container = format!("wrenn-{b_lost}");
    stack.agents[1].kill();
    let runsc_root = format!("--root={}", stack.agents[1].dir.join("runsc").display());
    let deleted = std::process::Command::new("runsc")
        .args([runsc_root.as_str(), "delete", "--force", &lost_container])
        .status()
        .unwrap();
    assert!(deleted.success(), "runsc delete {lost_container}");
    age_heartbeat(&stack, b).await;
    let report = tick(&stack).await;
    assert_eq!(report.hosts_down, vec![b], "{report:?}");
    assert_eq!(report.capsules_missing, 2, "{report:?}");
    for id in &on_b {
        assert_eq!(status_of(&stack, &alice, id).await["status"], "missing");
        assert_eq!(
            exec_status(&stack, &alice, id).await,
            409,
            "exec on a missing capsule"
        );
    }
    // Host A's capsules are untouched and usable; new capsules go to A only.
    for id in &on_a {
        assert_eq!(status_of(&stack, &alice, id).await["status"], "running");
        assert_eq!(exec_status(&stack, &alice, id).await, 200);
    }
    let c = stack.create(&alice, json!({})).await;
    let extra = c["id"].as_str().unwrap().to_string();
    assert_eq!(host_of(&stack, &extra).await, a, "placed on the lost host");

    // ---- B comes back: recovery adopts the survivor; its first heartbeat brings the host
    // back online, which reconciles both (no test hook: the agent's own heartbeat does it).
    stack.agents[1].restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let kept = status_of(&stack, &alice, &b_kept).await["status"].clone();
        let lost = status_of(&stack, &alice, &b_lost).await["status"].clone();
        if kept == "running" && lost == "stopped" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B not reconciled: kept {kept}, lost {lost}\n{}",
            stack.agent_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = stack.exec(&alice, &b_kept, "cat", &["/tmp/mark"]).await;
    assert_eq!(
        out["stdout"], "survived\n",
        "memory state kept across the outage"
    );
    assert_eq!(
        status_of(&stack, &alice, &b_lost).await["status"],
        "stopped"
    );
    assert!(
        !stack.agents[1].dir.join("sandboxes").join(&b_lost).exists(),
        "the lost capsule's files were left on the host"
    );
    assert!(
        !stack.agents[1].runsc_containers().contains(&lost_container),
        "the lost capsule is still known to runsc"
    );
    // Both hosts take new capsules again.
    let c = stack.create(&alice, json!({})).await;
    let last = c["id"].as_str().unwrap().to_string();
    assert_eq!(host_of(&stack, &last).await, b, "least loaded is B now");
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_mid_create_leaves_error_and_nothing_behind() {
    let Some(mut stack) = Stack::start().await else {
        return;
    };
    let alice = stack.account("alice").await;
    let sandboxes = stack.agents[0].dir.join("sandboxes");

    // Start a create and kill the agent as soon as the capsule's files appear on the host.
    let request = stack
        .req(&alice, Method::POST, "/v1/capsules")
        .json(&json!({}))
        .send();
    let create = tokio::spawn(request);
    let deadline = Instant::now() + Duration::from_secs(60);
    let id = loop {
        let found = std::fs::read_dir(&sandboxes)
            .into_iter()
            .flatten()
            .flatten()
            .find_map(|e| e.file_name().to_str().map(str::to_string));
        if let Some(id) = found {
            break id;
        }
        assert!(
            Instant::now() < deadline,
            "the create never reached the host"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    stack.agents[0].kill();
    let response = create.await.unwrap().unwrap();
    let code = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    assert!(code.is_server_error(), "create answered {code}: {body}");
    assert!(body["error"]["code"].is_string(), "error envelope: {body}");

    // The capsule is in error with a reason, never stuck in `starting`.
    let row = status_of(&stack, &alice, &id).await;
    assert_eq!(row["status"], "error", "{row}");
    let capsule = ids::decode(ids::CAPSULE, &id).unwrap();
    let reason: String = sqlx::query_scalar("SELECT status_reason FROM capsules WHERE id = $1")
        .bind(capsule)
        .fetch_one(stack.ctx().db())
        .await
        .unwrap();
    assert!(reason.starts_with("create failed"), "reason: {reason:?}");

    // The agent comes back; recovery plus the monitor's orphan sweep leave nothing behind.
    stack.agents[0].restart().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let _ = tick(&stack).await;
        let container = format!("wrenn-{id}");
        let leftovers = (
            stack.agents[0].runsc_containers().contains(&container),
            sandboxes.join(&id).exists(),
            stack.agents[0].dir.join("snapshots").join(&id).exists(),
        );
        if leftovers == (false, false, false) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left on the host (runsc, sandbox dir, snapshot dir): {leftovers:?}\n{}",
            stack.agent_log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(status_of(&stack, &alice, &id).await["status"], "error");
    // The host still works.
    let c = stack.create(&alice, json!({})).await;
    let ok = c["id"].as_str().unwrap().to_string();
    assert_eq!(exec_status(&stack, &alice, &ok).await, 200);

    // A capsule the control plane no longer owns (here: its row says stopped) is destroyed
    // on the host by the monitor's orphan sweep; owned capsules are left alone.
    let other = stack.create(&alice, json!({})).await;
    let other = other["id"].as_str().unwrap().to_string();
    sqlx::query("UPDATE capsules SET status = 'stopped' WHERE id = $1")
        .bind(ids::decode(ids::CAPSULE, &ok).unwrap())
        .execute(stack.ctx().db())
        .await
        .unwrap();
    let report = tick(&stack).await;
    assert_eq!(report.orphans_destroyed, vec![ok.clone()], "{report:?}");
    let containers = stack.agents[0].runsc_containers();
    assert!(
        !containers.contains(&format!("wrenn-{ok}")),
        "{containers:?}"
    );
    assert!(
        containers.contains(&format!("wrenn-{other}")),
        "{containers:?}"
    );
    assert_eq!(exec_status(&stack, &alice, &other).await, 200);
    stack.shutdown().await;
}
