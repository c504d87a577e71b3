//! Host safety through the public API, with the real control plane, a real agent and real
//! gVisor capsules: a capsule that runs out of memory is reported dead with its reason, and
//! `disk_mb` is checked, stored and returned.

use cpserver::test_support::stack as capsules_support;

use capsules_support::Stack;
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_memory_capsule_reads_error_with_its_reason() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let alice = stack.account("alice").await;
    let c = stack.create(&alice, json!({"memory_mb": 128})).await;
    let id = c["id"].as_str().unwrap().to_string();
    let events_before = audit(&stack, &alice).await;

    // A 400 MB buffer in a 128 MiB capsule: the host's OOM killer ends the whole sandbox.
    // The exec that killed it answers 409 with the reason (never "host not reachable").
    let hog = json!({"cmd": "/bin/sh", "args": ["-c", "dd if=/dev/zero of=/dev/null bs=400M count=1"],
                     "timeout_sec": 20});
    answers_dead(&stack, &alice, &id, hog).await;

    // Within 10 s the capsule reads `error`, reason out_of_memory.
    let deadline = Instant::now() + Duration::from_secs(10);
    let capsule = loop {
        let r = stack
            .req(&alice, Method::GET, &format!("/v1/capsules/{id}"))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        if v["status"] == "error" {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "still {v} after 10 s\n{}",
            stack.agent_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(capsule["reason"], "out_of_memory", "{capsule}");

    // Calls on it answer 409 with the reason.
    answers_dead(&stack, &alice, &id, json!({"cmd": "true"})).await;

    // capsule.destroy with outcome error reached the audit log, once.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = audit(&stack, &alice).await;
        let destroys: Vec<&Value> = events
            .iter()
            .filter(|e| !events_before.contains(e))
            .filter(|e| e["action"] == "capsule.destroy" && e["resource"]["id"] == id.as_str())
            .collect();
        if let Some(e) = destroys.first() {
            assert_eq!(destroys.len(), 1, "{destroys:?}");
            assert_eq!(e["outcome"], "error", "{e}");
            assert_eq!(e["metadata"]["reason"], "out_of_memory", "{e}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no capsule.destroy in {events:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Nothing is left on the host; destroying the dead capsule still works.
    let left = stack.agents[0].runsc_containers();
    assert!(left.is_empty(), "{left:?}");
    let r = stack
        .req(&alice, Method::DELETE, &format!("/v1/capsules/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_mb_is_checked_stored_and_returned() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let alice = stack.account("alice").await;
    for bad in [
        json!({"disk_mb": 0}),
        json!({"disk_mb": 63}),
        json!({"disk_mb": 2_000_000}),
    ] {
        let r = stack
            .req(&alice, Method::POST, "/v1/capsules")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    }
    let default = stack.create(&alice, json!({})).await;
    assert_eq!(default["disk_mb"], 2048, "{default}");

    let c = stack.create(&alice, json!({"disk_mb": 64})).await;
    assert_eq!(c["disk_mb"], 64, "{c}");
    // ENOSPC at the bound is the agent's `--overlay=disk` (agent/tests/safety.rs).
    stack.shutdown().await;
}

/// Execs `body` in capsule `id` and expects 409 `invalid_state` naming `out_of_memory`.
async fn answers_dead(stack: &Stack, who: &capsules_support::Account, id: &str, body: Value) {
    let r = stack
        .req(who, Method::POST, &format!("/v1/capsules/{id}/exec"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let answer: Value = r.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 409, "{answer}\n{}", stack.agent_log());
    assert_eq!(answer["error"]["code"], "invalid_state", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("out_of_memory"), "{answer}");
}

/// The team's audit log, newest first (the latest 200 rows).
async fn audit(stack: &Stack, who: &capsules_support::Account) -> Vec<Value> {
    let r = stack
        .req(who, Method::GET, "/v1/audit-logs?limit=200")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    v["audit_logs"].as_array().cloned().unwrap_or_default()
}
