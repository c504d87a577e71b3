//! Teams, roles and API keys: authorization boundaries between roles and between teams.

use cpserver::test_support::{TestClient, TestServer};
use serde_json::{json, Value};

const PW: &str = "correct horse battery";

async fn first_team(c: &TestClient) -> String {
    c.get("/v1/teams").send().await.json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn new_key(c: &TestClient) -> Value {
    let r = c
        .post("/v1/api-keys")
        .json(json!({"name": "key"}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

#[tokio::test]
async fn api_key_of_team_a_never_reads_team_b() {
    let server = TestServer::start().await;
    let alice = server.signed_in("alice@example.com", "Alice", PW).await;
    let bob = server.signed_in("bob@example.com", "Bob", PW).await;
    let team_a = first_team(&alice).await;
    let team_b = first_team(&bob).await;
    let key_a = new_key(&alice).await;
    let key_b = new_key(&bob).await;
    let a = key_a["key"].as_str().unwrap();
    let anon = server.client();

    // Own team: readable.
    let own = anon
        .get(&format!("/v1/teams/{team_a}"))
        .api_key(a)
        .send()
        .await;
    assert_eq!(own.status, 200, "{}", own.text);
    assert_eq!(own.json()["team"]["id"], team_a);
    // Other team: 404, same as a team that does not exist.
    let other = anon
        .get(&format!("/v1/teams/{team_b}"))
        .api_key(a)
        .send()
        .await;
    let missing = anon
        .get("/v1/teams/tm_0000000000000000000000abc")
        .api_key(a)
        .send()
        .await;
    other.assert_error(404, "team_not_found");
    assert_eq!(other.text, missing.text);
    // Key listing is scoped to the key's team.
    let keys = anon.get("/v1/api-keys").api_key(a).send().await.json();
    assert_eq!(keys.as_array().unwrap().len(), 1);
    assert_eq!(keys[0]["id"], key_a["id"]);
    // Another team's key cannot be revoked, and the attempt reveals nothing.
    anon.delete(&format!("/v1/api-keys/{}", key_b["id"].as_str().unwrap()))
        .api_key(a)
        .send()
        .await
        .assert_error(404, "not_found");
    let still = anon
        .get("/v1/api-keys")
        .api_key(key_b["key"].as_str().unwrap())
        .send()
        .await
        .json();
    assert_eq!(still.as_array().unwrap().len(), 1, "team B's key survives");
    // Members and session-only endpoints refuse keys.
    anon.get(&format!("/v1/teams/{team_a}/members"))
        .api_key(a)
        .send()
        .await
        .assert_error(403, "session_required");
    anon.post("/v1/api-keys")
        .api_key(a)
        .json(json!({"name": "x"}))
        .send()
        .await
        .assert_error(403, "session_required");
    anon.get("/v1/teams")
        .api_key(a)
        .send()
        .await
        .assert_error(403, "session_required");
    // Sessions: a non-member sees 404 for another team's resources.
    alice
        .get(&format!("/v1/teams/{team_b}"))
        .send()
        .await
        .assert_error(404, "team_not_found");
    alice
        .patch(&format!("/v1/teams/{team_b}"))
        .json(json!({"name": "x"}))
        .send()
        .await
        .assert_error(404, "team_not_found");
    alice
        .delete(&format!("/v1/api-keys/{}", key_b["id"].as_str().unwrap()))
        .send()
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn members_cannot_do_owner_or_admin_actions() {
    let server = TestServer::start().await;
    let owner = server.signed_in("owner@example.com", "Owner", PW).await;
    let admin = server.signed_in("admin@example.com", "Admin", PW).await;
    let member = server.signed_in("member@example.com", "Member", PW).await;
    server.signed_in("outsider@example.com", "Out", PW).await;
    let team = owner
        .post("/v1/teams")
        .json(json!({"name": "Shared"}))
        .send()
        .await
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let t = |suffix: &str| format!("/v1/teams/{team}{suffix}");

    for email in ["admin@example.com", "member@example.com"] {
        let r = owner
            .post(&t("/members"))
            .json(json!({"email": email}))
            .send()
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.json()["role"], "member");
    }
    owner
        .post(&t("/members"))
        .json(json!({"email": "member@example.com"}))
        .send()
        .await
        .assert_error(409, "already_member");
    owner
        .post(&t("/members"))
        .json(json!({"email": "nobody@example.com"}))
        .send()
        .await
        .assert_error(404, "user_not_found");
    let members = owner.get(&t("/members")).send().await.json();
    let id_of = |email: &str| {
        members
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["email"] == email)
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (owner_id, admin_id, member_id) = (
        id_of("owner@example.com"),
        id_of("admin@example.com"),
        id_of("member@example.com"),
    );
    assert_eq!(
        owner
            .patch(&t(&format!("/members/{admin_id}")))
            .json(json!({"role": "admin"}))
            .send()
            .await
            .status,
        204
    );
    owner
        .patch(&t(&format!("/members/{admin_id}")))
        .json(json!({"role": "owner"}))
        .send()
        .await
        .assert_error(400, "invalid_request");

    // A member: can read, cannot manage.
    assert_eq!(
        member.get(&t("")).send().await.json()["team"]["role"],
        "member"
    );
    member
        .patch(&t(""))
        .json(json!({"name": "Hijacked"}))
        .send()
        .await
        .assert_error(403, "forbidden");
    member
        .delete(&t(""))
        .send()
        .await
        .assert_error(403, "forbidden");
    member
        .post(&t("/members"))
        .json(json!({"email": "outsider@example.com"}))
        .send()
        .await
        .assert_error(403, "forbidden");
    member
        .patch(&t(&format!("/members/{member_id}")))
        .json(json!({"role": "admin"}))
        .send()
        .await
        .assert_error(403, "forbidden");
    member
        .delete(&t(&format!("/members/{admin_id}")))
        .send()
        .await
        .assert_error(403, "forbidden");

    // An admin: manages members and the name, but cannot delete the team or touch the owner.
    let r = admin
        .patch(&t(""))
        .json(json!({"name": "Renamed"}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["name"], "Renamed");
    admin
        .delete(&t(""))
        .send()
        .await
        .assert_error(403, "forbidden");
    admin
        .patch(&t(&format!("/members/{owner_id}")))
        .json(json!({"role": "member"}))
        .send()
        .await
        .assert_error(403, "owner_immutable");
    admin
        .delete(&t(&format!("/members/{owner_id}")))
        .send()
        .await
        .assert_error(403, "owner_immutable");
    assert_eq!(
        admin
            .post(&t("/members"))
            .json(json!({"email": "outsider@example.com"}))
            .send()
            .await
            .status,
        201
    );

    // Keys: a member revokes only their own.
    member
        .post("/v1/auth/switch-team")
        .json(json!({"team_id": team}))
        .send()
        .await;
    owner
        .post("/v1/auth/switch-team")
        .json(json!({"team_id": team}))
        .send()
        .await;
    let owners_key = new_key(&owner).await;
    let members_key = new_key(&member).await;
    member
        .delete(&format!(
            "/v1/api-keys/{}",
            owners_key["id"].as_str().unwrap()
        ))
        .send()
        .await
        .assert_error(403, "forbidden");
    assert_eq!(
        member
            .delete(&format!(
                "/v1/api-keys/{}",
                members_key["id"].as_str().unwrap()
            ))
            .send()
            .await
            .status,
        204
    );

    // Leaving: the owner cannot, a member can; afterwards the team is invisible to them.
    owner
        .post(&t("/leave"))
        .send()
        .await
        .assert_error(400, "owner_cannot_leave");
    assert_eq!(member.post(&t("/leave")).send().await.status, 204);
    member
        .get(&t(""))
        .send()
        .await
        .assert_error(404, "team_not_found");
    member
        .post("/v1/api-keys")
        .json(json!({"name": "after"}))
        .send()
        .await
        .assert_error(403, "not_a_member");

    // The owner deletes the team: keys die with it.
    let key = owners_key["key"].as_str().unwrap();
    assert_eq!(
        server
            .client()
            .get("/v1/api-keys")
            .api_key(key)
            .send()
            .await
            .status,
        200
    );
    assert_eq!(owner.delete(&t("")).send().await.status, 204);
    server
        .client()
        .get("/v1/api-keys")
        .api_key(key)
        .send()
        .await
        .assert_error(401, "invalid_api_key");
    owner
        .get(&t(""))
        .send()
        .await
        .assert_error(404, "team_not_found");
}

#[tokio::test]
async fn user_search_by_email_prefix() {
    let server = TestServer::start().await;
    let c = server.signed_in("searcher@example.com", "S", PW).await;
    for i in 0..12 {
        server
            .signed_in(&format!("user{i:02}@corp.example"), "U", PW)
            .await;
    }
    let r = c.get("/v1/users/search?email=user0").send().await;
    r.assert_error(400, "invalid_request");
    let hits = c.get("/v1/users/search?email=user05@").send().await.json();
    assert_eq!(hits.as_array().unwrap().len(), 1);
    assert_eq!(hits[0]["email"], "user05@corp.example");
    assert!(hits[0]["id"].as_str().unwrap().starts_with("usr_"));
    let hits = c.get("/v1/users/search?email=%40corp").send().await;
    assert_eq!(hits.status, 200);
    assert_eq!(
        hits.json().as_array().unwrap().len(),
        0,
        "prefix match, not substring"
    );
    // LIKE wildcards are literal.
    let hits = c.get("/v1/users/search?email=%25%40").send().await.json();
    assert_eq!(hits.as_array().unwrap().len(), 0);
    server
        .client()
        .get("/v1/users/search?email=a%40")
        .send()
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn platform_team_is_seeded_with_the_nil_id() {
    let server = TestServer::start().await;
    let (name,): (String,) =
        sqlx::query_as("SELECT name FROM teams WHERE id = '00000000-0000-0000-0000-000000000000'")
            .fetch_one(server.ctx().db())
            .await
            .unwrap();
    assert_eq!(name, "Platform");
    assert_eq!(
        wrenn_extension_api::ids::encode(wrenn_extension_api::ids::TEAM, uuid::Uuid::nil()),
        "tm_0000000000000000000000000"
    );
}

#[tokio::test]
async fn api_keys_per_team_are_capped() {
    let server = TestServer::start().await;
    let c = server.signed_in("many@example.com", "Many", PW).await;
    let team = wrenn_extension_api::ids::decode("tm", &first_team(&c).await).unwrap();
    sqlx::query(
        "INSERT INTO api_keys (id, team_id, name, key_hash, key_prefix) \
         SELECT gen_random_uuid(), $1, 'bulk', sha256(i::text::bytea), 'wrn_000000' \
         FROM generate_series(1, 99) AS i",
    )
    .bind(team)
    .execute(server.ctx().db())
    .await
    .unwrap();
    new_key(&c).await;
    c.post("/v1/api-keys")
        .json(json!({"name": "one too many"}))
        .send()
        .await
        .assert_error(409, "api_key_limit");
    assert_eq!(
        c.get("/v1/api-keys")
            .send()
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        100
    );
}
