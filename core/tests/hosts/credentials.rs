//! Registration, heartbeats, refresh rotation, and the separation of host and user tokens.

use crate::fixtures::*;
use cpserver::hosts::HostsConfig;
use serde_json::{json, Value};

#[tokio::test]
async fn register_heartbeat_refresh_delete() {
    let ts = server().await;
    let admin = admin(&ts).await;
    let (host, token) = create_host(&admin, json!({"type": "regular"})).await;
    let id = host["id"].as_str().unwrap().to_string();

    let (status, creds) = post_json(
        &ts,
        "/v1/hosts/register",
        None,
        register_body(&token, "127.0.0.1:7443"),
    )
    .await;
    assert_eq!(status, 200, "{creds}");
    assert_eq!(creds["host"]["id"], id);
    assert_eq!(creds["host"]["status"], "online");
    assert_eq!(creds["host"]["cpu_cores"], 4);
    for key in [
        "token",
        "refresh_token",
        "cert_pem",
        "key_pem",
        "ca_cert_pem",
    ] {
        assert!(
            creds[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key} missing"
        );
    }
    assert!(creds["cert_pem"]
        .as_str()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    // Stored hashed: neither the registration nor the refresh token is in the database.
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM host_refresh_tokens WHERE token_hash = $1 OR token_hash = $2",
    )
    .bind(creds["refresh_token"].as_str().unwrap())
    .bind(&token)
    .fetch_one(ts.ctx().db())
    .await
    .unwrap();
    assert_eq!(stored, 0);

    // The token is one-time; junk is refused the same way.
    let (status, v) = post_json(
        &ts,
        "/v1/hosts/register",
        None,
        register_body(&token, "127.0.0.1:7443"),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(v["error"]["code"], "invalid_token");
    let (status, _) = post_json(
        &ts,
        "/v1/hosts/register",
        None,
        register_body("whr_nonsense", "127.0.0.1:7443"),
    )
    .await;
    assert_eq!(status, 401);

    // Heartbeats.
    let jwt = creds["token"].as_str().unwrap();
    let hb = format!("/v1/hosts/{id}/heartbeat");
    let (status, v) = post_json(&ts, &hb, Some(jwt), json!({"agent_version": "2.0"})).await;
    assert_eq!(status, 200, "{v}");
    let row = admin.get(&format!("/v1/hosts/{id}")).send().await.json();
    assert_eq!(
        row["load"],
        Value::Null,
        "no load before the agent reports one"
    );
    // The host's load: shown with the time it arrived; a malformed one is refused and kept out.
    let load = json!({"cpu_pct": 12.5, "load_avg_1m": 0.4, "mem_total_mb": 4096,
        "mem_available_mb": 1024, "disk_total_mb": 10000, "disk_available_mb": 9000,
        "capsules_running": 3, "capsules_paused": 1});
    let (status, v) = post_json(&ts, &hb, Some(jwt), json!({"load": load})).await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = post_json(&ts, &hb, Some(jwt), json!({"load": {"cpu_pct": "high"}})).await;
    assert_eq!(status, 400, "{v}");
    let row = admin.get(&format!("/v1/hosts/{id}")).send().await.json();
    assert_eq!(row["load"]["capsules_running"], 3, "{row}");
    assert_eq!(row["load"]["mem_available_mb"], 1024, "{row}");
    assert!(row["load"]["sampled_at"].is_string(), "{row}");
    // A beat without a load keeps the last one.
    let (status, _) = post_json(&ts, &hb, Some(jwt), json!({})).await;
    assert_eq!(status, 200);
    let row = admin.get(&format!("/v1/hosts/{id}")).send().await.json();
    assert_eq!(row["load"]["cpu_pct"], 12.5, "{row}");
    // A load without warm pools (an agent from before them) shows none.
    assert_eq!(row["load"]["pool_ready"], 0, "{row}");
    assert_eq!(row["load"]["pools"], json!([]), "{row}");
    // Warm pools: the agent names templates as its directories do; the API with prefixes.
    let platform = "0".repeat(25);
    let debian = format!("{}4", "0".repeat(24));
    let mut pooled = load.clone();
    pooled["pool_vcpus"] = json!(2);
    pooled["pool_memory_mb"] = json!(1024);
    pooled["pool_ready"] = json!(1);
    pooled["pools"] = json!([{"team_id": platform, "template_id": debian, "vcpus": 1,
        "memory_mb": 512, "disk_mb": 2048, "ready": 1}]);
    let (status, v) = post_json(&ts, &hb, Some(jwt), json!({"load": pooled})).await;
    assert_eq!(status, 200, "{v}");
    let row = admin.get(&format!("/v1/hosts/{id}")).send().await.json();
    assert_eq!(row["load"]["pool_vcpus"], 2, "{row}");
    let pool = &row["load"]["pools"][0];
    assert_eq!(pool["team_id"], format!("tm_{platform}"), "{row}");
    assert_eq!(pool["template_id"], format!("tpl_{debian}"), "{row}");
    assert_eq!(pool["ready"], 1, "{row}");
    let (status, _) = post_json(&ts, &hb, None, json!({})).await;
    assert_eq!(status, 401);
    // Another host's id with this host's token: 403.
    let (other, _) = create_host(&admin, json!({"type": "regular"})).await;
    let (status, v) = post_json(
        &ts,
        &format!("/v1/hosts/{}/heartbeat", other["id"].as_str().unwrap()),
        Some(jwt),
        json!({}),
    )
    .await;
    assert_eq!(status, 403, "{v}");

    // Refresh rotates: the old refresh token is refused afterwards.
    let old_refresh = creds["refresh_token"].as_str().unwrap().to_string();
    let (status, fresh) = post_json(
        &ts,
        "/v1/hosts/auth/refresh",
        None,
        json!({"refresh_token": old_refresh}),
    )
    .await;
    assert_eq!(status, 200, "{fresh}");
    assert_ne!(fresh["refresh_token"], creds["refresh_token"]);
    assert_ne!(fresh["cert_pem"], creds["cert_pem"], "certificate reissued");
    let (status, _) = post_json(&ts, &hb, fresh["token"].as_str(), json!({})).await;
    assert_eq!(status, 200);
    let (status, _) = post_json(
        &ts,
        "/v1/hosts/auth/refresh",
        None,
        json!({"refresh_token": old_refresh}),
    )
    .await;
    assert_eq!(status, 401, "rotated refresh token refused");
    // Replaying a rotated token revoked the family, including the newest one.
    let (status, _) = post_json(
        &ts,
        "/v1/hosts/auth/refresh",
        None,
        json!({"refresh_token": fresh["refresh_token"]}),
    )
    .await;
    assert_eq!(
        status, 401,
        "replay revokes every refresh token of the host"
    );

    // Deleted host: heartbeat 404.
    let r = admin.delete(&format!("/v1/hosts/{id}")).send().await;
    assert_eq!(r.status, 204, "{}", r.text);
    let (status, _) = post_json(&ts, &hb, fresh["token"].as_str(), json!({})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn user_and_host_tokens_never_cross() {
    let ts = server().await;
    let admin = admin(&ts).await;
    let creds = registered_host(&ts, &admin, "127.0.0.1:7444").await;
    let id = creds["host"]["id"].as_str().unwrap();
    let jwt = creds["token"].as_str().unwrap();

    // The session cookie as a host token: 401.
    let sid = admin.cookie("wrenn_sid").expect("session cookie");
    let (status, v) = post_json(
        &ts,
        &format!("/v1/hosts/{id}/heartbeat"),
        Some(&sid),
        json!({}),
    )
    .await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["error"]["code"], "invalid_host_token");

    // The host JWT as a session: 401 on user routes.
    let intruder = admin.fresh();
    intruder.set_cookie("wrenn_sid", jwt);
    let r = intruder.get("/v1/hosts").send().await;
    assert_eq!(r.status, 401, "{}", r.text);
    let r = intruder.get("/v1/me").send().await;
    assert_eq!(r.status, 401, "{}", r.text);
    // ... and as an API key.
    let r = admin.fresh().get("/v1/me").api_key(jwt).send().await;
    assert_eq!(r.status, 401, "{}", r.text);
}

#[tokio::test]
async fn insecure_dev_transport_needs_dev_mode_and_loopback() {
    // Not in development mode: refused even on loopback.
    let ts = server().await;
    let operator = admin(&ts).await;
    let (_, token) = create_host(&operator, json!({"type": "regular"})).await;
    let mut body = register_body(&token, "127.0.0.1:7445");
    body["transport"] = json!("insecure-dev");
    let (status, v) = post_json(&ts, "/v1/hosts/register", None, body).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "insecure_transport_refused");
    drop(ts);

    // Development mode: loopback accepted, anything else refused.
    let ts = server_with(HostsConfig {
        allow_insecure_dev: true,
        ..HostsConfig::default()
    })
    .await;
    let operator = admin(&ts).await;
    let (_, token) = create_host(&operator, json!({"type": "regular"})).await;
    let mut body = register_body(&token, "10.1.2.3:7445");
    body["transport"] = json!("insecure-dev");
    let (status, _) = post_json(&ts, "/v1/hosts/register", None, body.clone()).await;
    assert_eq!(status, 400);
    body["address"] = json!("127.0.0.1:7445");
    let (status, v) = post_json(&ts, "/v1/hosts/register", None, body).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["host"]["transport"], "insecure-dev");
    assert_eq!(v["host"]["capabilities"]["transport"], "insecure-dev");
}
