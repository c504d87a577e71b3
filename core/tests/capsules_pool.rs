//! Creates through the REST API served from the agent's warm pool: the capsule is the
//! team's own (its env, its identity), invisible to other teams, and a create the pool cannot
//! serve still works.

use cpserver::test_support::stack as capsules_support;

use capsules_support::Stack;
use reqwest::Method;
use serde_json::json;
use std::time::{Duration, Instant};

/// Two capsules of the stack's default create (minimal-busybox, 1 vCPU, 512 MiB).
const POOL: &str = "minimal-busybox=2";

async fn agent_metric(stack: &Stack, series: &str) -> f64 {
    let text = reqwest::get(format!(
        "http://{}/metrics",
        stack.agents[0].metrics_address
    ))
    .await
    .expect("agent metrics")
    .text()
    .await
    .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn wait_pool_ready(stack: &Stack, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while agent_metric(
        stack,
        "wrenn_agent_warm_pool_ready{pool=\"minimal-busybox\"}",
    )
    .await
        < n
    {
        assert!(
            Instant::now() < deadline,
            "the pool did not fill; agent log:\n{}",
            stack.agent_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_capsule_belongs_to_the_team_that_created_it() {
    let Some(stack) = Stack::start_pooled(|b| b, |_| {}, POOL).await else {
        return;
    };
    let (ada, bob) = (stack.account("ada").await, stack.account("bob").await);
    wait_pool_ready(&stack, 2.0).await;

    let t = Instant::now();
    let a = stack.create(&ada, json!({"envs": {"WHO": "ada"}})).await;
    let took = t.elapsed();
    let b = stack.create(&bob, json!({"envs": {"WHO": "bob"}})).await;
    assert_eq!(a["status"], "running", "{a}");
    let hits = agent_metric(&stack, "wrenn_agent_warm_pool_takes_total{result=\"hit\"}").await;
    assert_eq!(hits, 2.0, "both creates were served from the pool");
    eprintln!("create from the pool through the API: {took:?}");

    let (ida, idb) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
    let probe = ["-c", "echo $WHO; cat /etc/machine-id"];
    let out_a = stack.exec(&ada, ida, "/bin/sh", &probe).await;
    let out_b = stack.exec(&bob, idb, "/bin/sh", &probe).await;
    let (sa, sb) = (
        out_a["stdout"].as_str().unwrap().to_owned(),
        out_b["stdout"].as_str().unwrap().to_owned(),
    );
    assert!(sa.starts_with("ada\n"), "{sa}");
    assert!(sb.starts_with("bob\n"), "{sb}");
    assert_ne!(sa.lines().nth(1), sb.lines().nth(1), "shared machine id");

    // Another team neither sees nor reaches it.
    let r = stack
        .req(&bob, Method::GET, &format!("/v1/capsules/{ida}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = stack
        .req(&bob, Method::POST, &format!("/v1/capsules/{ida}/exec"))
        .json(&json!({"cmd": "/bin/true"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let listed: Vec<serde_json::Value> = stack
        .req(&bob, Method::GET, "/v1/capsules")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = listed.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids, vec![idb], "bob lists only his own capsule");

    // A shape no pool holds boots as before.
    let cold = stack.create(&ada, json!({"memory_mb": 256})).await;
    assert_eq!(cold["status"], "running", "{cold}");

    for (who, id) in [
        (&ada, ida),
        (&bob, idb),
        (&ada, cold["id"].as_str().unwrap()),
    ] {
        let r = stack
            .req(who, Method::DELETE, &format!("/v1/capsules/{id}"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "destroy {id}: {}", r.status());
    }
    stack.shutdown().await;
}

/// The host a capsule was placed on.
async fn host_of(stack: &Stack, id: &str) -> uuid::Uuid {
    let id = wrenn_extension_api::ids::decode(wrenn_extension_api::ids::CAPSULE, id).unwrap();
    cpserver::db::capsules::get(stack.app().db(), id)
        .await
        .unwrap()
        .and_then(|row| row.host_id)
        .expect("a placed capsule has a host")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_goes_to_the_host_with_a_ready_pool_capsule_of_its_shape() {
    let Some(mut stack) = Stack::start_pooled(|b| b, |_| {}, POOL).await else {
        return;
    };
    // A second host without a pool: the less loaded of the two, since a pool's capacity is
    // reserved.
    let other = stack.add_agent().await;
    let (pooled_host, other_host) = (stack.agents[0].host_id, stack.agents[other].host_id);
    let ada = stack.account("ada").await;
    wait_pool_ready(&stack, 1.0).await;
    // The control plane learns of the pool from the host's heartbeat.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let hosts = cpserver::db::hosts::online_hosts_with_load(stack.app().db())
            .await
            .unwrap();
        let ready = hosts.iter().find(|h| h.id == pooled_host).is_some_and(|h| {
            h.pools
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["ready"].as_u64() > Some(0))
        });
        if ready && hosts.iter().any(|h| h.id == other_host) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no heartbeat reported the pool: {hosts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let warm = stack.create(&ada, json!({})).await;
    let warm_id = warm["id"].as_str().unwrap();
    assert_eq!(host_of(&stack, warm_id).await, pooled_host);
    let hits = agent_metric(&stack, "wrenn_agent_warm_pool_takes_total{result=\"hit\"}").await;
    assert_eq!(hits, 1.0, "the create was a hand-over");

    // A shape no pool holds goes by load alone: to the host without the pool.
    let cold = stack.create(&ada, json!({"memory_mb": 256})).await;
    let cold_id = cold["id"].as_str().unwrap();
    assert_eq!(host_of(&stack, cold_id).await, other_host);

    for id in [warm_id, cold_id] {
        let r = stack
            .req(&ada, Method::DELETE, &format!("/v1/capsules/{id}"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "destroy {id}: {}", r.status());
    }
    stack.shutdown().await;
}
