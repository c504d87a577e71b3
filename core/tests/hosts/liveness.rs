//! The host monitor: silence → unreachable + capsules missing + host.down; a heartbeat →
//! online + host.up. (Reconciliation against a real agent is in `mtls.rs`.)

use crate::fixtures::*;
use cpserver::hosts::monitor;
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
    // Monitor every 200 ms, silent after 3 s: long enough that seeding the capsules below
    // finishes before the host is declared unreachable, even on a loaded machine.
    let ts = server_with(cpserver::hosts::HostsConfig {
        monitor_interval: Duration::from_millis(200),
        unreachable_after: Duration::from_secs(3),
        ..cpserver::hosts::HostsConfig::default()
    })
    .await;
    let admin = admin(&ts).await;
    let team = wire_to_uuid(ids::TEAM, &team_of(&admin).await);
    // Timed from registration (the host's last sign of life), not from after the seeding
    // below, which a loaded machine can make take longer than the silence threshold.
    let started = std::time::Instant::now();
    // Nothing listens on this address: reconciliation cannot reach an agent.
    let creds = registered_host(&ts, &admin, "127.0.0.1:9").await;
    let wire = creds["host"]["id"].as_str().unwrap().to_string();
    let host = wire_to_uuid(ids::HOST, &wire);
    let running = seed_capsule(&ts, team, host, "running", 1, 512).await;
    let paused = seed_capsule(&ts, team, host, "paused", 1, 512).await;
    let stopped = seed_capsule(&ts, team, host, "stopped", 1, 512).await;

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
    let hosts = ts.app().hosts.clone();
    assert!(monitor::reconcile(ts.app(), &hosts, host).await.is_err());
    assert_eq!(capsule_status(&ts, running).await, "missing");
}

#[tokio::test]
async fn monitor_stops_on_shutdown() {
    let mut ts = server().await;
    let started = std::time::Instant::now();
    ts.shutdown().await; // waits for every worker, the monitor and the live feed included
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn sandbox_event_callbacks_apply_guarded_transitions() {
    let ts = server().await;
    let admin = admin(&ts).await;
    let team = wire_to_uuid(ids::TEAM, &team_of(&admin).await);
    let creds = registered_host(&ts, &admin, "127.0.0.1:7701").await;
    let other = registered_host(&ts, &admin, "127.0.0.1:7702").await;
    let host = wire_to_uuid(ids::HOST, creds["host"]["id"].as_str().unwrap());
    let other_host = wire_to_uuid(ids::HOST, other["host"]["id"].as_str().unwrap());
    let jwt = creds["token"].as_str();
    let idle = seed_capsule(&ts, team, host, "running", 1, 512).await;
    let failed = seed_capsule(&ts, team, host, "running", 1, 512).await;
    let foreign = seed_capsule(&ts, team, other_host, "running", 1, 512).await;

    let (status, v) = post_json(
        &ts,
        "/v1/hosts/sandbox-events",
        jwt,
        json!({"events": [
            {"sandbox_id": ids::encode(ids::CAPSULE, idle), "event": "auto_paused"},
            {"sandbox_id": ids::encode(ids::CAPSULE, failed), "event": "auto_destroyed", "error": "checkpoint failed"},
            // Another host's capsule and an unknown event are ignored.
            {"sandbox_id": ids::encode(ids::CAPSULE, foreign), "event": "auto_paused"},
            {"sandbox_id": ids::encode(ids::CAPSULE, idle), "event": "exploded"}
        ]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({"applied": 2, "ignored": 2}));
    assert_eq!(capsule_status(&ts, idle).await, "paused");
    assert_eq!(capsule_status(&ts, failed).await, "stopped");
    assert_eq!(capsule_status(&ts, foreign).await, "running");

    // Replaying is harmless: the guarded transition no longer applies.
    let (_, v) = post_json(
        &ts,
        "/v1/hosts/sandbox-events",
        jwt,
        json!({"sandbox_id": ids::encode(ids::CAPSULE, idle), "event": "auto_paused"}),
    )
    .await;
    assert_eq!(v, json!({"applied": 0, "ignored": 1}));

    let events = stream_events(&ts).await;
    let pause = events
        .iter()
        .find(|e| e["event"] == "capsule.pause")
        .expect("capsule.pause");
    assert_eq!(pause["outcome"], "success");
    assert_eq!(pause["metadata"]["reason"], "ttl_expired");
    assert_eq!(pause["resource"]["id"], ids::encode(ids::CAPSULE, idle));
    let destroy = events
        .iter()
        .find(|e| e["event"] == "capsule.destroy")
        .expect("capsule.destroy");
    assert_eq!(destroy["metadata"]["reason"], "ttl_expired");
    assert_eq!(
        events
            .iter()
            .filter(|e| e["event"] == "capsule.pause")
            .count(),
        1
    );
    // Written to the audit log too, visible to the team.
    let r = admin
        .get("/v1/audit-logs?resource_type=sandbox")
        .send()
        .await;
    assert_eq!(
        r.json()["audit_logs"].as_array().unwrap().len(),
        2,
        "{}",
        r.text
    );

    // Without a host token: 401.
    let (status, _) = post_json(&ts, "/v1/hosts/sandbox-events", None, json!({"events": []})).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn client_certificate_is_renewed_before_it_expires() {
    let ts = server_with(cpserver::hosts::HostsConfig {
        client_cert_ttl: chrono::Duration::seconds(3),
        ..cpserver::hosts::HostsConfig::default()
    })
    .await;
    let hosts = ts.app().hosts.clone();
    let first = hosts.pool.client_tls_config().unwrap();
    assert!(std::sync::Arc::ptr_eq(
        &first,
        &hosts.pool.client_tls_config().unwrap()
    ));
    // Renewal happens after two thirds of the lifetime (2 s here).
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let renewed = hosts.pool.client_tls_config().unwrap();
    assert!(
        !std::sync::Arc::ptr_eq(&first, &renewed),
        "client certificate not renewed"
    );
}
