//! The event stream, the live SSE feed and the audit log.

use crate::fixtures::*;
use cpserver::audit::{self, AuditEntry, AuditScope};
use cpserver::events::{self, Actor, Event, Outcome, Resource};
use cpserver::test_support::{TestClient, TestServer};
use serde_json::json;
use std::time::Duration;
use uuid::Uuid;
use wrenn_extension_api::ids;

async fn sse(ts: &TestServer, client: &TestClient, path: &str) -> reqwest::Response {
    let cookie = format!("wrenn_sid={}", client.cookie("wrenn_sid").unwrap());
    let r = http()
        .get(format!("{}{path}", ts.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    r
}

/// Reads SSE data lines until one mentions `needle` (or 5 s pass); returns all data seen.
async fn read_until(r: &mut reqwest::Response, needle: &str) -> String {
    let mut seen = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(chunk)) = r.chunk().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains(needle) {
                return;
            }
        }
    })
    .await;
    seen
}

#[tokio::test]
async fn publish_writes_the_stream_and_feeds_sse_per_team() {
    let ts = server().await;
    let admin = admin(&ts).await;
    let bob = ts.signed_in("bob@wrenn.test", "Bob", PASSWORD).await;
    let admin_team = wire_to_uuid(ids::TEAM, &team_of(&admin).await);
    let bob_team = wire_to_uuid(ids::TEAM, &team_of(&bob).await);

    let mut bob_feed = sse(&ts, &bob, "/v1/events/stream").await;
    let mut admin_feed = sse(&ts, &admin, "/v1/admin/events/stream").await;
    let r = bob.get("/v1/admin/events/stream").send().await;
    r.assert_error(403, "admin_required");
    // Give the subscriptions a moment (the live channel is fire-and-forget).
    tokio::time::sleep(Duration::from_millis(300)).await;

    let capsule = Uuid::new_v4();
    let mut redis = ts.ctx().redis();
    let other = Event::new(
        "capsule.create",
        admin_team,
        Actor::system(),
        Resource::sandbox(Uuid::new_v4()),
    )
    .outcome(Outcome::Success);
    events::publish(&mut redis, &other).await.unwrap();
    let pause = Event::new(
        "capsule.pause",
        bob_team,
        Actor::system(),
        Resource::sandbox(capsule),
    )
    .outcome(Outcome::Success)
    .meta("reason", "ttl_expired");
    let stream_id = events::publish(&mut redis, &pause).await.unwrap();
    assert!(!stream_id.is_empty());
    let change = Event::capsule_state_changed(
        bob_team,
        capsule,
        Some(cpserver::capsules::state::CapsuleStatus::Running),
        cpserver::capsules::state::CapsuleStatus::Pausing,
        Actor::system(),
    );
    events::publish_transient(&mut redis, &change)
        .await
        .unwrap();

    let bob_seen = read_until(&mut bob_feed, "capsule.state.changed").await;
    assert!(bob_seen.contains("event: capsule.pause"), "{bob_seen}");
    assert!(
        bob_seen.contains("\"reason\":\"ttl_expired\""),
        "{bob_seen}"
    );
    assert!(
        bob_seen.contains("event: capsule.state.changed"),
        "{bob_seen}"
    );
    assert!(
        !bob_seen.contains("capsule.create"),
        "another team's event leaked: {bob_seen}"
    );
    let admin_seen = read_until(&mut admin_feed, "capsule.state.changed").await;
    assert!(
        admin_seen.contains("capsule.create") && admin_seen.contains("capsule.pause"),
        "{admin_seen}"
    );

    // The stream holds the lifecycle events, never the transient one.
    let stored = stream_events(&ts).await;
    let names: Vec<&str> = stored
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["capsule.create", "capsule.pause"]);
    let p = &stored[1];
    assert_eq!(p["outcome"], "success");
    assert_eq!(p["team_id"], ids::encode(ids::TEAM, bob_team));
    assert_eq!(
        p["resource"],
        json!({"id": ids::encode(ids::CAPSULE, capsule), "type": "sandbox"})
    );
    assert_eq!(p["actor"]["type"], "system");
    assert_eq!(p["error"], "");
    let ts_str = p["timestamp"].as_str().unwrap();
    assert!(ts_str.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(ts_str).is_ok());
}

#[tokio::test]
async fn audit_log_scopes_filters_and_cursor() {
    let ts = server().await;
    let owner = admin(&ts).await;
    let team_wire = team_of(&owner).await;
    let team = wire_to_uuid(ids::TEAM, &team_wire);
    let member = ts.signed_in("mia@wrenn.test", "Mia", PASSWORD).await;
    let r = owner
        .post(&format!("/v1/teams/{team_wire}/members"))
        .json(json!({"email": "mia@wrenn.test"}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = member
        .post("/v1/auth/switch-team")
        .json(json!({"team_id": team_wire}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // 5 team-scope capsule rows (through record_and_publish) and 1 admin-scope host row.
    for i in 0..5 {
        let e = Event::new(
            "capsule.create",
            team,
            Actor::system(),
            Resource::sandbox(Uuid::new_v4()),
        )
        .outcome(if i == 4 {
            Outcome::Error
        } else {
            Outcome::Success
        })
        .error(if i == 4 { "boom" } else { "" });
        audit::record_and_publish(ts.app(), &e, AuditScope::Team)
            .await
            .unwrap();
    }
    let entry = AuditEntry::new(
        Some(team),
        Actor::system(),
        "host.create",
        Resource::host(Uuid::new_v4()),
    )
    .scope(AuditScope::Admin);
    let id = audit::record(ts.ctx().db(), &entry).await.unwrap();
    // Another team's row never shows.
    audit::record(
        ts.ctx().db(),
        &AuditEntry::new(
            Some(Uuid::new_v4()),
            Actor::system(),
            "capsule.create",
            Resource::sandbox(Uuid::new_v4()),
        ),
    )
    .await
    .unwrap();
    assert_eq!(stream_events(&ts).await.len(), 5);

    let r = owner.get("/v1/audit-logs").send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let all = r.json()["audit_logs"].as_array().unwrap().clone();
    assert_eq!(all.len(), 6);
    assert_eq!(
        all[0]["id"],
        ids::encode(ids::AUDIT_LOG, id),
        "newest first"
    );
    assert_eq!(all[1]["outcome"], "error");
    assert_eq!(all[1]["error"], "boom");
    let r = member.get("/v1/audit-logs").send().await;
    let seen = r.json()["audit_logs"].as_array().unwrap().clone();
    assert_eq!(seen.len(), 5, "members see team-scope rows only");
    assert!(seen.iter().all(|row| row["scope"] == "team"));

    let r = owner.get("/v1/audit-logs?resource_type=host").send().await;
    assert_eq!(r.json()["audit_logs"].as_array().unwrap().len(), 1);
    let r = owner
        .get("/v1/audit-logs?action=capsule.create")
        .send()
        .await;
    assert_eq!(r.json()["audit_logs"].as_array().unwrap().len(), 5);

    // Keyset pages of 2 cover everything exactly once.
    let mut ids_seen = Vec::new();
    let mut path = "/v1/audit-logs?limit=2".to_string();
    loop {
        let page = owner.get(&path).send().await.json();
        for row in page["audit_logs"].as_array().unwrap() {
            ids_seen.push(row["id"].as_str().unwrap().to_string());
        }
        match (
            page["next_before"].as_str(),
            page["next_before_id"].as_str(),
        ) {
            (Some(b), Some(bid)) => {
                let b = b.replace('+', "%2B");
                path = format!("/v1/audit-logs?limit=2&before={b}&before_id={bid}");
            }
            _ => break,
        }
    }
    let expected: Vec<String> = all
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids_seen, expected);

    // The platform admin's listing covers every team (the owner here is the first user, so
    // a platform admin); plain members are refused.
    let r = owner.get("/v1/admin/audit-logs").send().await;
    assert_eq!(
        r.json()["audit_logs"].as_array().unwrap().len(),
        7,
        "{}",
        r.text
    );
    let r = owner
        .get(&format!("/v1/admin/audit-logs?team_id={team_wire}"))
        .send()
        .await;
    assert_eq!(r.json()["audit_logs"].as_array().unwrap().len(), 6);
    member
        .get("/v1/admin/audit-logs")
        .send()
        .await
        .assert_error(403, "admin_required");

    owner
        .get("/v1/audit-logs?limit=201")
        .send()
        .await
        .assert_error(400, "invalid_request");
    owner
        .get("/v1/audit-logs?limit=0")
        .send()
        .await
        .assert_error(400, "invalid_request");
    owner
        .get("/v1/audit-logs?before=yesterday")
        .send()
        .await
        .assert_error(400, "invalid_request");
}
