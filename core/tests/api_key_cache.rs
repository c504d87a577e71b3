//! The in-process cache of verified API keys (`sessions/api_keys.rs`): a revoked key is refused
//! at once, on the control plane that revoked it and on another one sharing the database and
//! Redis, and a cached key still only ever acts in its own team.

use cpserver::sessions::api_keys::{ApiKeyCache, TTL};
use cpserver::test_support::{TestClient, TestServer};
use cpserver::{Builder, RunningServer};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const PW: &str = "correct horse battery";

async fn new_key(c: &TestClient) -> Value {
    let r = c
        .post("/v1/api-keys")
        .json(json!({"name": "key"}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

fn cache(app: &cpserver::App) -> std::sync::Arc<ApiKeyCache> {
    app.api_keys.clone()
}

/// Waits until the control plane holds its revocation subscription (the cache is in use).
async fn wait_active(app: &cpserver::App) {
    let cache = cache(app);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cache.is_active() {
        assert!(Instant::now() < deadline, "the cache never became active");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The team the key acts in, as `/v1/me` reports it.
async fn key_team(anon: &TestClient, key: &str) -> String {
    let me = anon.get("/v1/me").api_key(key).send().await;
    assert_eq!(me.status, 200, "{}", me.text);
    me.json()["auth"]["team_id"].as_str().unwrap().to_string()
}

/// A second control plane on the same database and Redis.
async fn second_control_plane(server: &TestServer) -> (RunningServer, TestClient) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut config = server.config.clone();
    config.public_url = base.clone();
    let second = Builder::new()
        .without_inventory()
        .config(config)
        .listener(listener)
        .start()
        .await
        .expect("second control plane starts");
    (second, TestClient::new(&base))
}

#[tokio::test]
async fn a_cached_key_is_refused_right_after_revocation() {
    let server = TestServer::start().await;
    wait_active(server.app()).await;
    let alice = server.signed_in("alice@example.com", "Alice", PW).await;
    let key = new_key(&alice).await;
    let plaintext = key["key"].as_str().unwrap();
    let anon = server.client();

    for _ in 0..3 {
        let r = anon.get("/v1/capsules").api_key(plaintext).send().await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert_eq!(
        cache(server.app()).len(),
        1,
        "the key is served from the cache"
    );

    let r = alice
        .delete(&format!("/v1/api-keys/{}", key["id"].as_str().unwrap()))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // The very next request, well within the cache's lifetime, is refused.
    anon.get("/v1/capsules")
        .api_key(plaintext)
        .send()
        .await
        .assert_error(401, "invalid_api_key");
    anon.get("/v1/me")
        .api_key(plaintext)
        .send()
        .await
        .assert_error(401, "invalid_api_key");
}

#[tokio::test]
async fn a_key_revoking_itself_is_refused_next() {
    let server = TestServer::start().await;
    wait_active(server.app()).await;
    let alice = server.signed_in("alice@example.com", "Alice", PW).await;
    let key = new_key(&alice).await;
    let plaintext = key["key"].as_str().unwrap();
    let anon = server.client();
    key_team(&anon, plaintext).await;
    let r = anon
        .delete(&format!("/v1/api-keys/{}", key["id"].as_str().unwrap()))
        .api_key(plaintext)
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    anon.get("/v1/capsules")
        .api_key(plaintext)
        .send()
        .await
        .assert_error(401, "invalid_api_key");
}

#[tokio::test]
async fn deleting_a_team_or_an_account_refuses_its_cached_keys() {
    let server = TestServer::start().await;
    wait_active(server.app()).await;
    let anon = server.client();

    // Team deletion.
    let alice = server.signed_in("alice@example.com", "Alice", PW).await;
    let team = alice
        .post("/v1/teams")
        .json(json!({"name": "Research"}))
        .send()
        .await;
    assert_eq!(team.status, 201, "{}", team.text);
    let team_id = team.json()["id"].as_str().unwrap().to_string();
    let r = alice
        .post("/v1/auth/switch-team")
        .json(json!({"team_id": team_id}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let key = new_key(&alice).await;
    let plaintext = key["key"].as_str().unwrap();
    assert_eq!(key_team(&anon, plaintext).await, team_id);
    let r = alice.delete(&format!("/v1/teams/{team_id}")).send().await;
    assert_eq!(r.status, 204, "{}", r.text);
    anon.get("/v1/capsules")
        .api_key(plaintext)
        .send()
        .await
        .assert_error(401, "invalid_api_key");

    // Account deletion (its own team goes with it).
    let bob = server.signed_in("bob@example.com", "Bob", PW).await;
    let key = new_key(&bob).await;
    let plaintext = key["key"].as_str().unwrap();
    key_team(&anon, plaintext).await;
    let r = bob
        .delete("/v1/me")
        .json(json!({"confirmation": "bob@example.com"}))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    anon.get("/v1/capsules")
        .api_key(plaintext)
        .send()
        .await
        .assert_error(401, "invalid_api_key");
}

#[tokio::test]
async fn cached_keys_stay_in_their_own_team() {
    let server = TestServer::start().await;
    wait_active(server.app()).await;
    let alice = server.signed_in("alice@example.com", "Alice", PW).await;
    let bob = server.signed_in("bob@example.com", "Bob", PW).await;
    let team_a = alice.get("/v1/teams").send().await.json()[0]["id"].clone();
    let team_b = bob.get("/v1/teams").send().await.json()[0]["id"].clone();
    let key_a = new_key(&alice).await;
    let key_b = new_key(&bob).await;
    let (a, b) = (
        key_a["key"].as_str().unwrap(),
        key_b["key"].as_str().unwrap(),
    );
    let anon = server.client();
    // Interleaved, both served from the cache after the first round.
    for _ in 0..3 {
        assert_eq!(key_team(&anon, a).await, team_a.as_str().unwrap());
        assert_eq!(key_team(&anon, b).await, team_b.as_str().unwrap());
        let keys = anon.get("/v1/api-keys").api_key(a).send().await.json();
        assert_eq!(keys.as_array().unwrap().len(), 1);
        assert_eq!(keys[0]["id"], key_a["id"]);
        anon.get(&format!("/v1/teams/{}", team_b.as_str().unwrap()))
            .api_key(a)
            .send()
            .await
            .assert_error(404, "team_not_found");
    }
    assert_eq!(cache(server.app()).len(), 2);
    // Revoking team B's key leaves team A's key working.
    let r = bob
        .delete(&format!("/v1/api-keys/{}", key_b["id"].as_str().unwrap()))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    anon.get("/v1/me")
        .api_key(b)
        .send()
        .await
        .assert_error(401, "invalid_api_key");
    assert_eq!(key_team(&anon, a).await, team_a.as_str().unwrap());
}

#[tokio::test]
async fn another_control_plane_refuses_a_revoked_key_within_moments() {
    let server = TestServer::start().await;
    let (second, other) = second_control_plane(&server).await;
    wait_active(server.app()).await;
    wait_active(&second.app).await;
    let alice = server.signed_in("alice@example.com", "Alice", PW).await;
    let key = new_key(&alice).await;
    let plaintext = key["key"].as_str().unwrap();
    // Cached on both control planes.
    let anon = server.client();
    for _ in 0..2 {
        key_team(&anon, plaintext).await;
        key_team(&other, plaintext).await;
    }
    assert_eq!(cache(&second.app).len(), 1);

    let r = alice
        .delete(&format!("/v1/api-keys/{}", key["id"].as_str().unwrap()))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    anon.get("/v1/me")
        .api_key(plaintext)
        .send()
        .await
        .assert_error(401, "invalid_api_key");
    // The other control plane hears of it over Redis, long before its entry would expire.
    let revoked_at = Instant::now();
    loop {
        let r = other.get("/v1/me").api_key(plaintext).send().await;
        if r.status == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < TTL / 5,
            "the second control plane still accepts the revoked key"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    second.shutdown().await.expect("clean shutdown");
}
