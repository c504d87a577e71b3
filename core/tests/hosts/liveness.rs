//! The host monitor: silence → unreachable + capsules missing + host.down; a heartbeat →
//! online + host.up. (Reconciliation against a real agent is in `mtls.rs`.)

use crate::fixtures::*;
use cpserver::hosts::{monitor, Hosts};
use serde_json::json;
use std::time::Duration;
use wrenn_extension_api::ids;

async fn host_status(ts: &cpserver::test_support::TestServer, id: uuid::Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM hosts WHERE id = $1")
        .bind(id)
        .fetch_one(ts.ctx().db())
        .await
        .unwrap()
}

#[tokio::test]
async fn silent_host_goes_unreachable_and_comes_back() {
    let ts = fast_monitor_server().await; // monitor every 200 ms, silent after 1 s
    let admin = admin(&ts).await;
    let team = wire_to_uuid(ids::TEAM, &team_of(&admin).await);
    // Nothing listens on this address: reconciliation cannot reach an agent.
    let creds = registered_host(&ts, &admin, "127.0.0.1:9").await;
    let wire = creds["host"]["id"].as_str().unwrap().to_string();
    let host = wire_to_uuid(ids::HOST, &wire);
    let running = seed_capsule(&ts, team, host, "running", 1, 512).await;
    let paused = seed_capsule(&ts, team, host, "paused", 1, 512).await;
    let stopped = seed_capsule(&ts, team, host, "stopped", 1, 512).await;

    let started = std::time::Instant::now();
    while host_status(&ts, host).await != "unreachable" {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "host never marked unreachable"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500),
        "marked too early: {took:?}"
    );
    assert_eq!(capsule_status(&ts, running).await, "missing");
    assert_eq!(capsule_status(&ts, paused).await, "missing");
    assert_eq!(capsule_status(&ts, stopped).await, "stopped");
    let events = stream_events(&ts).await;
    let down: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "host.down")
        .collect();
    assert_eq!(down.len(), 1, "{events:?}");
    assert_eq!(down[0]["resource"], json!({"id": wire, "type": "host"}));
    assert!(down[0].get("outcome").is_none());
    assert_eq!(
        down[0]["team_id"],
        ids::encode(ids::TEAM, ids::PLATFORM_TEAM)
    );

    // A heartbeat brings it back and publishes host.up.
    let (status, v) = post_json(
        &ts,
        &format!("/v1/hosts/{wire}/heartbeat"),
        creds["token"].as_str(),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(host_status(&ts, host).await, "online");
    let ups = stream_events(&ts)
        .await
        .into_iter()
        .filter(|e| e["event"] == "host.up")
        .count();
    assert_eq!(ups, 2, "one at registration, one on return");
    // The agent is unreachable, so the capsules stay missing until reconciliation works.
    let hosts = ts.ctx().service::<Hosts>().unwrap();
    assert!(monitor::reconcile(ts.ctx(), &hosts, host).await.is_err());
    assert_eq!(capsule_status(&ts, running).await, "missing");
}

#[tokio::test]
async fn monitor_stops_on_shutdown() {
    let mut ts = server().await;
    let started = std::time::Instant::now();
    ts.shutdown().await; // waits for every worker, the monitor and the live feed included
    assert!(started.elapsed() < Duration::from_secs(5));
}
