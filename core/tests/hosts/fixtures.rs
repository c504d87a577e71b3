//! Shared set-up for the host tests.

#![allow(dead_code)]

use cpserver::hosts::HostsConfig;
use cpserver::test_support::{TestClient, TestServer};
use cpserver::Builder;
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

pub const PASSWORD: &str = "correct horse battery";

/// A control plane with the production host settings (hosts go silent after 90 s).
pub async fn server() -> TestServer {
    server_with(HostsConfig::default()).await
}

/// A control plane whose monitor runs every 200 ms and calls a host silent after 1 s.
pub async fn fast_monitor_server() -> TestServer {
    server_with(HostsConfig {
        monitor_interval: Duration::from_millis(200),
        unreachable_after: Duration::from_secs(1),
        ..HostsConfig::default()
    })
    .await
}

pub async fn server_with(config: HostsConfig) -> TestServer {
    let ts = TestServer::start_with(
        Builder::new().without_inventory().hosts_config(config),
        |_| {},
    )
    .await;
    ensure_capsules_table(&ts).await;
    ts
}

/// The capsules table belongs to the capsules module; when its migration is not there yet,
/// create the columns the host side reads and writes so these tests can seed rows.
pub async fn ensure_capsules_table(ts: &TestServer) {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS capsules (
            id UUID PRIMARY KEY, team_id UUID NOT NULL, host_id UUID, status TEXT NOT NULL,
            status_reason TEXT NOT NULL DEFAULT '', vcpus INTEGER NOT NULL,
            memory_mb INTEGER NOT NULL, last_updated TIMESTAMPTZ NOT NULL DEFAULT now(),
            stopped_at TIMESTAMPTZ)",
    )
    .execute(ts.ctx().db())
    .await
    .expect("capsules table");
}

/// Inserts a capsule row on `host` and returns its id.
pub async fn seed_capsule(
    ts: &TestServer,
    team: Uuid,
    host: Uuid,
    status: &str,
    vcpus: i32,
    memory_mb: i32,
) -> Uuid {
    let id = Uuid::new_v4();
    // The real capsules table also needs a template and an access token.
    let full: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns
                        WHERE table_name = 'capsules' AND column_name = 'template_id')",
    )
    .fetch_one(ts.ctx().db())
    .await
    .unwrap();
    let sql = if full {
        "INSERT INTO capsules (id, team_id, host_id, status, vcpus, memory_mb, template_id,
                               template_name, access_token)
         SELECT $1, $2, $3, $4, $5, $6, t.id, t.name, 'test-access-token'
         FROM templates t ORDER BY t.id LIMIT 1"
    } else {
        "INSERT INTO capsules (id, team_id, host_id, status, vcpus, memory_mb)
         VALUES ($1, $2, $3, $4, $5, $6)"
    };
    let done = sqlx::query(sql)
        .bind(id)
        .bind(team)
        .bind(host)
        .bind(status)
        .bind(vcpus)
        .bind(memory_mb)
        .execute(ts.ctx().db())
        .await
        .expect("seed capsule");
    assert_eq!(done.rows_affected(), 1);
    id
}

pub async fn capsule_status(ts: &TestServer, id: Uuid) -> String {
    sqlx::query_scalar("SELECT status FROM capsules WHERE id = $1")
        .bind(id)
        .fetch_one(ts.ctx().db())
        .await
        .expect("capsule status")
}

/// The first account is the platform admin.
pub async fn admin(ts: &TestServer) -> TestClient {
    ts.signed_in("admin@wrenn.test", "Admin", PASSWORD).await
}

/// The current team of a signed-in client (`tm_…`).
pub async fn team_of(client: &TestClient) -> String {
    let r = client.get("/v1/teams").send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let teams = v["teams"]
        .as_array()
        .or_else(|| v.as_array())
        .cloned()
        .unwrap_or_default();
    teams[0]["id"].as_str().expect("team id").to_string()
}

/// Creates a host through the API; returns (host, registration token).
pub async fn create_host(client: &TestClient, body: Value) -> (Value, String) {
    let r = client.post("/v1/hosts").json(body).send().await;
    assert_eq!(r.status, 201, "create host: {}", r.text);
    let v = r.json();
    (
        v["host"].clone(),
        v["registration_token"].as_str().unwrap().to_string(),
    )
}

pub fn register_body(token: &str, address: &str) -> Value {
    json!({
        "token": token, "arch": "x86_64", "cpu_cores": 4, "memory_mb": 8192, "disk_gb": 100,
        "address": address,
        "capabilities": {"runtime": "gvisor", "network_modes": ["none"], "snapshots": true},
        "agent_version": "test-agent"
    })
}

/// Plain HTTP for the agent routes (X-Host-Token is not a browser header).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

pub async fn post_json(
    ts: &TestServer,
    path: &str,
    host_token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut req = http().post(format!("{}{path}", ts.base)).json(&body);
    if let Some(t) = host_token {
        req = req.header("X-Host-Token", t);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    let v = r.json().await.unwrap_or(Value::Null);
    (status, v)
}

/// Registers a fresh regular host at `address`; returns the credentials JSON.
pub async fn registered_host(ts: &TestServer, admin: &TestClient, address: &str) -> Value {
    let (_, token) = create_host(admin, json!({"type": "regular"})).await;
    let (status, creds) = post_json(
        ts,
        "/v1/hosts/register",
        None,
        register_body(&token, address),
    )
    .await;
    assert_eq!(status, 200, "register: {creds}");
    creds
}

pub fn wire_to_uuid(prefix: &str, wire: &str) -> Uuid {
    wrenn_extension_api::ids::decode(prefix, wire).expect("wire id")
}

/// Every payload in the `wrenn:events` stream.
pub async fn stream_events(ts: &TestServer) -> Vec<Value> {
    let mut redis = ts.ctx().redis();
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("wrenn:events")
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .expect("XRANGE");
    entries
        .ids
        .iter()
        .filter_map(|e| e.get::<String>("payload"))
        .map(|p| serde_json::from_str(&p).expect("payload JSON"))
        .collect()
}
