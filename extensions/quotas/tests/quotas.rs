//! The quotas extension inside a real control plane (PostgreSQL, Redis): its migration, the
//! role-guarded route, the admission refusal, and the enforcer's choice of capsules.

use cpserver::test_support::TestServer;
use cpserver::Builder;
use serde_json::{json, Value};
use std::time::Duration;
use wrenn_ext_quotas::{to_pause, Quotas};
use wrenn_extension_api::chrono::{TimeZone, Utc};
use wrenn_extension_api::uuid::Uuid;
use wrenn_extension_api::{CapsuleState, CapsuleSummary};

const PW: &str = "correct horse battery";

async fn server() -> TestServer {
    let ext = Quotas {
        enforce_every: Duration::from_millis(100),
    };
    TestServer::start_with(Builder::new().without_inventory().extension(ext), |_| {}).await
}

#[tokio::test]
async fn team_admins_set_a_quota_that_admission_enforces() {
    let server = server().await;
    let owner = server.signed_in("owner@example.com", "Owner", PW).await;
    let got = owner.get("/v1/quotas").send().await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.json()["max_capsules"], serde_json::Value::Null);
    assert_eq!(got.json()["capsules"], 0);

    // Bad input changes nothing.
    owner
        .put("/v1/quotas")
        .json(json!({"max_capsules": -1}))
        .send()
        .await
        .assert_error(400, "invalid_request");
    owner
        .put("/v1/quotas")
        .json(json!({"max_capsules": 10_001}))
        .send()
        .await
        .assert_error(400, "invalid_request");
    owner
        .put("/v1/quotas")
        .json(json!({"max_capsules": 1, "extra": true}))
        .send()
        .await
        .assert_error(400, "invalid_request");
    assert_eq!(
        owner.get("/v1/quotas").send().await.json()["max_capsules"],
        serde_json::Value::Null
    );

    // The role guard: API keys may read, only a session of an owner/admin may write.
    let key = owner.new_api_key("k").await;
    let anon = server.client();
    assert_eq!(
        anon.get("/v1/quotas").api_key(&key).send().await.status,
        200
    );
    anon.put("/v1/quotas")
        .api_key(&key)
        .json(json!({"max_capsules": 0}))
        .send()
        .await
        .assert_error(403, "session_required");

    let set = owner
        .put("/v1/quotas")
        .json(json!({"max_capsules": 0}))
        .send()
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.json()["max_capsules"], 0);
    owner
        .post("/v1/capsules")
        .json(json!({}))
        .send()
        .await
        .assert_error(402, "quota_exceeded");
    let (rows,): (i64,) = sqlx_count(&server).await;
    assert_eq!(rows, 0, "a refused create inserts nothing");

    // Removing the quota lifts the refusal (the create then fails later for want of a host).
    let cleared = owner
        .put("/v1/quotas")
        .json(json!({"max_capsules": null}))
        .send()
        .await;
    assert_eq!(cleared.json()["max_capsules"], serde_json::Value::Null);
    let r = owner.post("/v1/capsules").json(json!({})).send().await;
    assert_ne!(r.error_code(), "quota_exceeded", "{}", r.text);
}

async fn sqlx_count(server: &TestServer) -> (i64,) {
    wrenn_extension_api::sqlx::query_as("SELECT count(*) FROM capsules")
        .fetch_one(server.ctx().db())
        .await
        .unwrap()
}

fn capsule(n: u32, state: CapsuleState) -> CapsuleSummary {
    CapsuleSummary::with_state(
        Uuid::from_u128(n as u128),
        Uuid::nil(),
        state,
        "minimal-busybox".into(),
        1,
        256,
        Utc.timestamp_opt(1_700_000_000 + n as i64, 0).unwrap(),
    )
}

#[test]
fn the_enforcer_pauses_the_newest_running_capsules_first() {
    let team = [
        capsule(1, CapsuleState::Running),
        capsule(2, CapsuleState::Paused),
        capsule(3, CapsuleState::Running),
        capsule(4, CapsuleState::Running),
    ];
    // Three run: a quota of 2 pauses the newest running one.
    assert_eq!(to_pause(&team, 2), vec![Uuid::from_u128(4)]);
    assert_eq!(
        to_pause(&team, 1),
        vec![Uuid::from_u128(4), Uuid::from_u128(3)]
    );
    assert_eq!(to_pause(&team, 3), Vec::<Uuid>::new());
    // Paused capsules are never chosen: at most every running one.
    assert_eq!(to_pause(&team, 0).len(), 3);
}

/// The enforcer against real capsules: a quota lowered below what a team runs pauses its
/// newest running capsules through the capsule facade until the team fits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enforcer_pauses_the_newest_capsules_of_a_team_over_its_quota() {
    use cpserver::test_support::stack::Stack;
    use wrenn_extension_api::sqlx;
    let quotas = Quotas {
        enforce_every: Duration::from_millis(200),
    };
    let Some(stack) = Stack::start_with(move |b| b.extension(quotas)).await else {
        return; // Stack printed why (no root, runsc or base image)
    };
    let team = stack.account("over").await;
    let older = stack.create(&team, json!({"memory_mb": 128})).await;
    let newer = stack.create(&team, json!({"memory_mb": 128})).await;
    let team_id: Uuid = sqlx::query_scalar(
        "SELECT ut.team_id FROM users_teams ut JOIN users u ON u.id = ut.user_id WHERE u.email = $1",
    )
    .bind(&team.email)
    .fetch_one(stack.ctx().db())
    .await
    .unwrap();
    // The quota is lowered to 1 (as PUT /v1/quotas would, tested above).
    sqlx::query("INSERT INTO ext_quotas.team_quotas (team_id, max_capsules) VALUES ($1, 1)")
        .bind(team_id)
        .execute(stack.ctx().db())
        .await
        .unwrap();
    let status = |id: &Value| {
        let id = wrenn_extension_api::ids::decode(
            wrenn_extension_api::ids::CAPSULE,
            id["id"].as_str().unwrap(),
        )
        .unwrap();
        let db = stack.ctx().db().clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT status FROM capsules WHERE id = $1")
                .bind(id)
                .fetch_one(&db)
                .await
                .unwrap()
        }
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if status(&newer).await == "paused" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the enforcer did not pause the newest capsule\n{}",
            stack.agent_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The older one keeps running; later passes change nothing (the team fits now).
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(status(&older).await, "running");
    assert_eq!(status(&newer).await, "paused");
    let (actor,): (String,) = sqlx::query_as(
        "SELECT actor_name FROM audit_logs WHERE action = 'capsule.pause' ORDER BY created_at DESC LIMIT 1",
    )
    .fetch_one(stack.ctx().db())
    .await
    .unwrap();
    assert_eq!(
        actor, "quotas",
        "the pause is the extension's, in the audit log"
    );
    stack.shutdown().await;
}
