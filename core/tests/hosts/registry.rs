//! Operator routes: who may create and see hosts, tokens, tags, deletion.

use crate::fixtures::*;
use serde_json::json;
use wrenn_extension_api::ids;

#[tokio::test]
async fn member_cannot_create_regular_hosts_and_byoc_needs_a_byoc_team() {
    let ts = server().await;
    let admin = admin(&ts).await;
    let bob = ts.signed_in("bob@wrenn.test", "Bob", PASSWORD).await;
    let bob_team = team_of(&bob).await;

    let r = bob
        .post("/v1/hosts")
        .json(json!({"type": "regular"}))
        .send()
        .await;
    r.assert_error(403, "admin_required");
    // Bob owns his team, but it is not a BYOC team.
    let r = bob
        .post("/v1/hosts")
        .json(json!({"type": "byoc"}))
        .send()
        .await;
    r.assert_error(403, "forbidden");
    let r = bob.get("/v1/hosts").send().await;
    assert_eq!(r.status, 200);
    // A bare array, as every list (API.md).
    assert_eq!(r.json(), json!([]));

    // The admin gives Bob's team a BYOC host: the team becomes BYOC.
    let (byoc, _) = create_host(&admin, json!({"type": "byoc", "team_id": bob_team})).await;
    assert_eq!(byoc["team_id"], bob_team);
    assert_eq!(byoc["status"], "pending");
    let (regular, _) = create_host(&admin, json!({"type": "regular", "provider": "hetzner"})).await;
    // Now Bob (owner) may add BYOC hosts to his team, and sees only those.
    let (own, token) =
        create_host(&bob, json!({"type": "byoc", "availability_zone": "eu-1"})).await;
    assert!(token.starts_with("whr_"), "{token}");
    let r = bob.get("/v1/hosts").send().await;
    let listed: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.contains(&own["id"].as_str().unwrap().to_string()));
    assert!(!listed.contains(&regular["id"].as_str().unwrap().to_string()));
    // Another team's / a regular host is a 404 for Bob, not a 403.
    let r = bob
        .get(&format!("/v1/hosts/{}", regular["id"].as_str().unwrap()))
        .send()
        .await;
    r.assert_error(404, "not_found");
    // The admin sees all three.
    let r = admin.get("/v1/hosts").send().await;
    assert_eq!(r.json().as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn api_keys_are_refused_on_host_management() {
    let ts = server().await;
    let admin = admin(&ts).await;
    // The routes are documented.
    let spec = admin.get("/openapi.json").send().await.json();
    for path in [
        "/v1/hosts",
        "/v1/hosts/register",
        "/v1/hosts/{id}/heartbeat",
        "/v1/audit-logs",
        "/v1/admin/audit-logs",
        "/v1/events/stream",
    ] {
        assert!(
            spec["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
    let r = admin
        .post("/v1/api-keys")
        .json(json!({"name": "k"}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let key = r.json()["key"].as_str().unwrap().to_string();
    let r = admin.fresh().get("/v1/hosts").api_key(&key).send().await;
    r.assert_error(403, "session_required");
    let r = admin
        .fresh()
        .post("/v1/hosts")
        .api_key(&key)
        .json(json!({"type": "regular"}))
        .send()
        .await;
    r.assert_error(403, "session_required");
}

#[tokio::test]
async fn tokens_tags_preview_and_deletion() {
    let ts = server().await;
    let admin = admin(&ts).await;
    let (host, first) = create_host(&admin, json!({"type": "regular"})).await;
    let id = host["id"].as_str().unwrap();

    // A new token replaces the first one.
    let r = admin.post(&format!("/v1/hosts/{id}/token")).send().await;
    assert_eq!(r.status, 201, "{}", r.text);
    let second = r.json()["registration_token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    let (status, _) = post_json(
        &ts,
        "/v1/hosts/register",
        None,
        register_body(&first, "127.0.0.1:1"),
    )
    .await;
    assert_eq!(status, 401, "a replaced token no longer works");
    let (status, creds) = post_json(
        &ts,
        "/v1/hosts/register",
        None,
        register_body(&second, "127.0.0.1:1"),
    )
    .await;
    assert_eq!(status, 200, "{creds}");
    // Online now: no more tokens.
    let r = admin.post(&format!("/v1/hosts/{id}/token")).send().await;
    r.assert_error(409, "invalid_state");

    // Tags.
    let r = admin
        .post(&format!("/v1/hosts/{id}/tags"))
        .json(json!({"tags": ["gpu", "eu-1"]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json(), json!(["eu-1", "gpu"]));
    let r = admin
        .post(&format!("/v1/hosts/{id}/tags"))
        .json(json!({"tag": "bad tag"}))
        .send()
        .await;
    r.assert_error(400, "invalid_request");
    let r = admin
        .delete(&format!("/v1/hosts/{id}/tags/gpu"))
        .send()
        .await;
    assert_eq!(r.status, 204);
    let r = admin.get(&format!("/v1/hosts/{id}/tags")).send().await;
    assert_eq!(r.json(), json!(["eu-1"]));
    let r = admin.get(&format!("/v1/hosts/{id}")).send().await;
    assert_eq!(r.json()["tags"], json!(["eu-1"]));
    assert_eq!(r.json()["status"], "online");
    assert_eq!(r.json()["capabilities"]["transport"], "mtls");

    // A capsule on the host blocks deletion unless forced.
    let host_id = wire_to_uuid(ids::HOST, id);
    let team = wire_to_uuid(ids::TEAM, &team_of(&admin).await);
    let capsule = seed_capsule(&ts, team, host_id, "running", 1, 512).await;
    let r = admin
        .get(&format!("/v1/hosts/{id}/delete-preview"))
        .send()
        .await;
    assert_eq!(
        r.json()["sandbox_ids"],
        json!([ids::encode(ids::CAPSULE, capsule)])
    );
    let r = admin.delete(&format!("/v1/hosts/{id}")).send().await;
    r.assert_error(409, "host_has_sandboxes");
    assert_eq!(
        r.json()["error"]["sandbox_ids"],
        json!([ids::encode(ids::CAPSULE, capsule)])
    );
    let r = admin
        .delete(&format!("/v1/hosts/{id}?force=true"))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(capsule_status(&ts, capsule).await, "stopped");
    let r = admin.get(&format!("/v1/hosts/{id}")).send().await;
    r.assert_error(404, "not_found");
    // The deleted host's credentials are dead.
    let (status, _) = post_json(
        &ts,
        &format!("/v1/hosts/{id}/heartbeat"),
        creds["token"].as_str(),
        json!({}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = post_json(
        &ts,
        "/v1/hosts/auth/refresh",
        None,
        json!({"refresh_token": creds["refresh_token"]}),
    )
    .await;
    assert_eq!(status, 401);
}
