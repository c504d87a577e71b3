//! The cloud extension inside the real control plane: its migration, route, signup hook,
//! admission refusal and metering worker, all through `wrenn-extension-api`.

use cloud_distro::Cloud;
use cpserver::test_support::TestServer;
use cpserver::Builder;
use serde_json::json;
use std::time::Duration;
use wrenn_extension_api::sqlx;

const PW: &str = "correct horse battery";

async fn cloud_server() -> TestServer {
    let ext = Cloud { meter_every: Duration::from_millis(50) };
    TestServer::start_with(Builder::new().without_inventory().version("cloud-1.0.0").extension(ext), |_| {})
        .await
}

#[tokio::test]
async fn migration_route_and_signup_hook_give_new_teams_the_free_plan() {
    let server = cloud_server().await;
    assert_eq!(server.client().get("/health").send().await.json()["version"], "cloud-1.0.0");
    // The migration ran once, into the extension's own schema.
    let (applied,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM extension_migrations WHERE extension = 'cloud' AND version = 1")
            .fetch_one(server.ctx().db())
            .await
            .unwrap();
    assert_eq!(applied, 1);
    let (schema,): (String,) =
        sqlx::query_as("SELECT table_schema::text FROM information_schema.tables WHERE table_name = 'plans'")
            .fetch_one(server.ctx().db())
            .await
            .unwrap();
    assert_eq!(schema, "ext_cloud");

    let c = server.signed_in("founder@example.com", "Founder", PW).await;
    let team = c.get("/v1/teams").send().await.json()[0]["id"].clone();
    let plan = c.get("/v1/cloud/plan").send().await;
    assert_eq!(plan.status, 200, "{}", plan.text);
    let plan = plan.json();
    assert_eq!(plan["team_id"], team);
    assert_eq!(plan["plan"], "free");
    assert_eq!(plan["max_capsules"], 2);
    // API keys reach the route too; anonymous callers do not.
    let key = c.post("/v1/api-keys").json(json!({"name": "k"})).send().await.json()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let by_key = server.client().get("/v1/cloud/plan").api_key(&key).send().await;
    assert_eq!(by_key.json()["plan"], "free");
    server.client().get("/v1/cloud/plan").send().await.assert_error(401, "unauthorized");

    // The metering worker samples the team through the capsule facade.
    let team_id = wrenn_extension_api::ids::decode("tm", team.as_str().unwrap()).unwrap();
    let mut samples = 0i64;
    for _ in 0..100 {
        samples = sqlx::query_scalar("SELECT count(*) FROM ext_cloud.meter WHERE team_id = $1")
            .bind(team_id)
            .fetch_one(server.ctx().db())
            .await
            .unwrap();
        if samples >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(samples >= 2, "the worker ran repeatedly ({samples} samples)");
}

#[tokio::test]
async fn a_used_up_plan_refuses_creates_with_the_extension_s_own_code() {
    let server = cloud_server().await;
    let c = server.signed_in("cap@example.com", "Cap", PW).await;
    sqlx::query("UPDATE ext_cloud.plans SET plan = 'suspended'").execute(server.ctx().db()).await.unwrap();
    let r = c.post("/v1/capsules").json(json!({"template": "minimal-busybox"})).send().await;
    r.assert_error(402, "plan_limit");
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("suspended plan allows 0"));
    let (rows,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM capsules").fetch_one(server.ctx().db()).await.unwrap();
    assert_eq!(rows, 0, "a refused create inserts nothing");
}
