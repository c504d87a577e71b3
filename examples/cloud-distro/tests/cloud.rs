//! The cloud extension inside the real control plane: its route, worker and AuthHook.

use cloud_distro::CloudExtension;
use cpserver::test_support::{token_in, TestServer};
use cpserver::Builder;
use serde_json::json;
use std::time::Duration;

const PW: &str = "correct horse battery";

async fn cloud_server() -> TestServer {
    let ext = CloudExtension {
        blocked_domains: vec!["blocked.example".into()],
        stats_every: Duration::from_millis(20),
    };
    TestServer::start_with(
        Builder::new()
            .without_inventory()
            .version("cloud-1.0.0")
            .extension(ext),
        |_| {},
    )
    .await
}

#[tokio::test]
async fn route_and_hook_give_new_teams_the_free_plan() {
    let server = cloud_server().await;
    assert_eq!(
        server.client().get("/health").send().await.json()["version"],
        "cloud-1.0.0"
    );
    let c = server.signed_in("founder@example.com", "Founder", PW).await;
    let team = c.get("/v1/teams").send().await.json()[0]["id"].clone();
    let plan = c.get("/v1/cloud/plan").send().await;
    assert_eq!(plan.status, 200, "{}", plan.text);
    let plan = plan.json();
    assert_eq!(plan["team_id"], team);
    assert_eq!(plan["plan"], "free");
    assert_eq!(plan["limits"]["max_concurrent_sandboxes"], 2);
    // The hook stored the plan for the new team.
    let mut redis = server.ctx().redis();
    let team_uuid = wrenn_extension_api::ids::decode("tm", team.as_str().unwrap()).unwrap();
    let stored: Option<String> = wrenn_extension_api::redis::AsyncCommands::get(
        &mut redis,
        cloud_distro::plan_key(team_uuid),
    )
    .await
    .unwrap();
    assert_eq!(stored.as_deref(), Some("free"));
    // API keys reach the route too; anonymous callers do not.
    let key = c
        .post("/v1/api-keys")
        .json(json!({"name": "k"}))
        .send()
        .await
        .json()["key"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        server
            .client()
            .get("/v1/cloud/plan")
            .api_key(&key)
            .send()
            .await
            .json()["plan"],
        "free"
    );
    server
        .client()
        .get("/v1/cloud/plan")
        .send()
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn worker_collects_stats_for_admins() {
    let server = cloud_server().await;
    let admin = server.signed_in("admin@example.com", "Admin", PW).await;
    let user = server.signed_in("user@example.com", "User", PW).await;
    let mut stats = serde_json::Value::Null;
    for _ in 0..100 {
        stats = admin.get("/v1/cloud/stats").send().await.json()["stats"].clone();
        if stats["users"] == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(stats["users"], 2, "{stats}");
    assert_eq!(
        stats["teams"], 3,
        "two default teams plus the platform team: {stats}"
    );
    user.get("/v1/cloud/stats")
        .send()
        .await
        .assert_error(403, "admin_required");
}

#[tokio::test]
async fn blocked_domain_signup_is_aborted_by_the_hook() {
    let server = cloud_server().await;
    let c = server.client();
    let r = c
        .post("/v1/auth/signup")
        .json(json!({"email": "spam@blocked.example", "password": PW, "name": "S"}))
        .send()
        .await;
    assert_eq!(r.status, 201);
    let token = token_in(&server.wait_for_mail("spam@blocked.example", 1).await).unwrap();
    c.post("/v1/auth/activate")
        .json(json!({"token": token}))
        .send()
        .await
        .assert_error(500, "signup_hook_failed");
    c.post("/v1/auth/login")
        .json(json!({"email": "spam@blocked.example", "password": PW}))
        .send()
        .await
        .assert_error(403, "account_not_activated");
}
