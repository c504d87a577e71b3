//! Accounts: signup, activation, login, sessions, CSRF, password change and reset — against a
//! real server, PostgreSQL and Redis.

use axum::body::Body;
use axum::http::Request;
use cpserver::test_support::{token_in, TestServer};
use redis::AsyncCommands;
use serde_json::json;
use tower::ServiceExt;

const PW: &str = "correct horse battery";

#[tokio::test]
async fn malformed_json_and_wrong_types_are_400_envelopes() {
    let server = TestServer::start().await;
    let app = cpserver::server::core_app(server.app());
    for (content_type, body) in [
        ("application/json", "{not json"),
        (
            "application/json",
            r#"{"email": 42, "password": "x", "name": "n"}"#,
        ),
        ("application/json", r#"{"email": "a@b.co"}"#),
        (
            "text/plain",
            r#"{"email":"a@b.co","password":"password1","name":"n"}"#,
        ),
    ] {
        let req = Request::post("/v1/auth/signup")
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), 400, "{body}");
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["error"]["code"], "invalid_request", "{v}");
        assert!(v["error"]["message"].as_str().unwrap().len() > 5);
    }
    // Path parameters and unknown routes use the same envelope.
    let client = server.signed_in("paths@example.com", "Paths", PW).await;
    client
        .get("/v1/teams/not-an-id")
        .send()
        .await
        .assert_error(404, "team_not_found");
    client
        .get("/v1/nope")
        .send()
        .await
        .assert_error(404, "not_found");
    client
        .get("/v1/users/search")
        .send()
        .await
        .assert_error(400, "invalid_request");
    client
        .get("/v1/users/search?email=nobody")
        .send()
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn signup_validates_and_refuses_duplicates() {
    let server = TestServer::start().await;
    let c = server.client();
    let signup = |email: &str, password: &str, name: &str| {
        c.post("/v1/auth/signup")
            .json(json!({"email": email, "password": password, "name": name}))
            .send()
    };
    signup("bad-email", PW, "X")
        .await
        .assert_error(400, "invalid_email");
    signup("short@example.com", "1234567", "X")
        .await
        .assert_error(400, "invalid_password");
    signup("long@example.com", PW, &"n".repeat(101))
        .await
        .assert_error(400, "invalid_name");

    let r = signup("dup@example.com", PW, "Dup").await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(r.json()["message"].is_string());
    // Still inactive and signed up moments ago: cooldown.
    signup("DUP@example.com", PW, "Dup")
        .await
        .assert_error(409, "signup_cooldown");
    // Once active, the address is taken (any case).
    let mail = server.wait_for_mail("dup@example.com", 1).await;
    let token = token_in(&mail).unwrap();
    let r = c
        .post("/v1/auth/activate")
        .json(json!({"token": token}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    signup("Dup@Example.com", PW, "Dup")
        .await
        .assert_error(409, "email_taken");
    // The activation link works once.
    c.post("/v1/auth/activate")
        .json(json!({"token": token}))
        .send()
        .await
        .assert_error(400, "invalid_token");
    c.post("/v1/auth/activate")
        .json(json!({"token": "00"}))
        .send()
        .await
        .assert_error(400, "invalid_token");
}

#[tokio::test]
async fn activation_provisions_team_and_first_user_is_admin() {
    let server = TestServer::start().await;
    let first = server.signed_in("first@example.com", "Ada", PW).await;
    let me = first.get("/v1/me").send().await.json();
    assert_eq!(me["is_admin"], true);
    assert_eq!(me["has_password"], true);
    assert_eq!(me["providers"], json!([]));
    assert!(me["id"].as_str().unwrap().starts_with("usr_"));
    let teams = first.get("/v1/teams").send().await.json();
    assert_eq!(teams.as_array().unwrap().len(), 1);
    assert_eq!(teams[0]["name"], "Ada's Team");
    assert_eq!(teams[0]["role"], "owner");
    assert_eq!(me["auth"]["team_id"], teams[0]["id"]);

    let second = server.signed_in("second@example.com", "Bob", PW).await;
    assert_eq!(second.get("/v1/me").send().await.json()["is_admin"], false);
}

#[tokio::test]
async fn wrong_password_and_unknown_email_are_indistinguishable() {
    let server = TestServer::start().await;
    server.signed_in("known@example.com", "Known", PW).await;
    let c = server.client();
    let wrong = c
        .post("/v1/auth/login")
        .json(json!({"email": "known@example.com", "password": "wrong password"}))
        .send()
        .await;
    let unknown = c
        .post("/v1/auth/login")
        .json(json!({"email": "unknown@example.com", "password": "wrong password"}))
        .send()
        .await;
    wrong.assert_error(401, "invalid_credentials");
    assert_eq!(wrong.status, unknown.status);
    assert_eq!(wrong.text, unknown.text, "same code and message");

    // Not yet activated: only revealed with the right password.
    c.post("/v1/auth/signup")
        .json(json!({"email": "pending@example.com", "password": PW, "name": "P"}))
        .send()
        .await;
    let r = c
        .post("/v1/auth/login")
        .json(json!({"email": "pending@example.com", "password": "nope nope"}))
        .send()
        .await;
    assert_eq!(r.text, unknown.text);
    c.post("/v1/auth/login")
        .json(json!({"email": "pending@example.com", "password": PW}))
        .send()
        .await
        .assert_error(403, "account_not_activated");

    let ok = c
        .post("/v1/auth/login")
        .json(json!({"email": "KNOWN@example.com", "password": PW}))
        .send()
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert_eq!(ok.json()["user"]["email"], "known@example.com");
    assert_eq!(
        ok.json()["csrf_token"].as_str(),
        c.cookie("wrenn_csrf").as_deref()
    );
    let set_cookies: Vec<_> = ok
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let sid = set_cookies
        .iter()
        .find(|c| c.starts_with("wrenn_sid="))
        .unwrap();
    assert!(
        sid.contains("HttpOnly") && sid.contains("SameSite=Strict"),
        "{sid}"
    );
    let csrf = set_cookies
        .iter()
        .find(|c| c.starts_with("wrenn_csrf="))
        .unwrap();
    assert!(
        !csrf.contains("HttpOnly") && csrf.contains("SameSite=Strict"),
        "{csrf}"
    );
    assert_eq!(
        c.cookie("wrenn_sid").unwrap().len(),
        64,
        "32 random bytes, hex"
    );
}

#[tokio::test]
async fn csrf_is_required_on_state_changing_session_requests() {
    let server = TestServer::start().await;
    let c = server.signed_in("csrf@example.com", "Csrf", PW).await;
    let body = json!({"name": "Renamed"});
    c.patch("/v1/me")
        .json(body.clone())
        .no_csrf()
        .send()
        .await
        .assert_error(403, "csrf_failed");
    c.patch("/v1/me")
        .json(body.clone())
        .csrf("wrong")
        .send()
        .await
        .assert_error(403, "csrf_failed");
    // Header equal to a forged cookie is still refused: the token is bound to the session.
    let forged = "ab".repeat(32);
    c.set_cookie("wrenn_csrf", &forged);
    c.patch("/v1/me")
        .json(body.clone())
        .send()
        .await
        .assert_error(403, "csrf_failed");
    c.post("/v1/api-keys")
        .json(json!({"name": "k"}))
        .send()
        .await
        .assert_error(403, "csrf_failed");
    // GET needs none.
    assert_eq!(c.get("/v1/me").no_csrf().send().await.status, 200);
    // Logging in again restores a valid pair.
    c.post("/v1/auth/login")
        .json(json!({"email": "csrf@example.com", "password": PW}))
        .send()
        .await;
    let r = c.patch("/v1/me").json(body).send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["name"], "Renamed");
}

#[tokio::test]
async fn expired_and_revoked_sessions_are_401() {
    let server = TestServer::start().await;
    let c = server.signed_in("sess@example.com", "Sess", PW).await;
    assert_eq!(c.get("/v1/me").send().await.status, 200);

    // Logout revokes the session; the old cookie no longer works.
    let sid = c.cookie("wrenn_sid").unwrap();
    let csrf = c.cookie("wrenn_csrf").unwrap();
    assert_eq!(c.post("/v1/auth/logout").send().await.status, 204);
    assert!(c.cookie("wrenn_sid").is_none(), "logout clears the cookie");
    c.set_cookie("wrenn_sid", &sid);
    c.set_cookie("wrenn_csrf", &csrf);
    c.get("/v1/me")
        .send()
        .await
        .assert_error(401, "session_expired");

    // Expiry: move both windows into the past in PostgreSQL and drop the Redis copy (as its
    // TTL would have).
    let r = c
        .post("/v1/auth/login")
        .json(json!({"email": "sess@example.com", "password": PW}))
        .send()
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(c.get("/v1/me").send().await.status, 200);
    sqlx::query("UPDATE sessions SET idle_expires_at = now() - interval '1 second' WHERE revoked_at IS NULL")
        .execute(server.ctx().db())
        .await
        .unwrap();
    let mut redis = server.ctx().redis();
    let keys: Vec<String> = redis.keys("wrenn:session:*").await.unwrap();
    let _: () = redis.del(keys).await.unwrap();
    c.get("/v1/me")
        .send()
        .await
        .assert_error(401, "session_expired");

    // The absolute cap holds even for a cached, recently used session.
    c.post("/v1/auth/login")
        .json(json!({"email": "sess@example.com", "password": PW}))
        .send()
        .await;
    let keys: Vec<String> = redis.keys("wrenn:session:*").await.unwrap();
    assert_eq!(keys.len(), 1);
    let cached: String = redis.get(&keys[0]).await.unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&cached).unwrap();
    v["absolute_expires_at"] = json!("2000-01-01T00:00:00Z");
    let _: () = redis.set(&keys[0], v.to_string()).await.unwrap();
    c.get("/v1/me")
        .send()
        .await
        .assert_error(401, "session_expired");

    // No cookie at all.
    server
        .client()
        .get("/v1/me")
        .send()
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn sessions_list_revoke_and_logout_all() {
    let server = TestServer::start().await;
    let a = server.signed_in("multi@example.com", "Multi", PW).await;
    let b = server.client();
    b.post("/v1/auth/login")
        .json(json!({"email": "multi@example.com", "password": PW}))
        .send()
        .await;
    let list = a.get("/v1/me/sessions").send().await.json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);
    assert!(
        list.iter().all(|s| s["ip"] == "127.0.0.1"),
        "peer address recorded: {list:?}"
    );
    let other = list.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(other.starts_with("ses_"));
    assert_eq!(
        a.delete(&format!("/v1/me/sessions/{other}"))
            .send()
            .await
            .status,
        204
    );
    b.get("/v1/me")
        .send()
        .await
        .assert_error(401, "session_expired");
    a.delete(&format!("/v1/me/sessions/{other}"))
        .send()
        .await
        .assert_error(404, "not_found");

    b.post("/v1/auth/login")
        .json(json!({"email": "multi@example.com", "password": PW}))
        .send()
        .await;
    assert_eq!(a.post("/v1/auth/logout-all").send().await.status, 204);
    b.get("/v1/me")
        .send()
        .await
        .assert_error(401, "session_expired");
}

#[tokio::test]
async fn switching_team_rotates_the_session() {
    let server = TestServer::start().await;
    let c = server.signed_in("switch@example.com", "Sw", PW).await;
    let team = c
        .post("/v1/teams")
        .json(json!({"name": "Second"}))
        .send()
        .await
        .json();
    let old_sid = c.cookie("wrenn_sid").unwrap();
    let old_csrf = c.cookie("wrenn_csrf").unwrap();
    let r = c
        .post("/v1/auth/switch-team")
        .json(json!({"team_id": team["id"]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["team_id"], team["id"]);
    assert_ne!(c.cookie("wrenn_sid").unwrap(), old_sid);
    assert_eq!(
        c.get("/v1/me").send().await.json()["auth"]["team_id"],
        team["id"]
    );
    // The old session is gone.
    let stale = server.client();
    stale.set_cookie("wrenn_sid", &old_sid);
    stale.set_cookie("wrenn_csrf", &old_csrf);
    stale
        .get("/v1/me")
        .send()
        .await
        .assert_error(401, "session_expired");

    let stranger = server.signed_in("stranger@example.com", "St", PW).await;
    let stranger_team = stranger.get("/v1/teams").send().await.json()[0]["id"].clone();
    c.post("/v1/auth/switch-team")
        .json(json!({"team_id": stranger_team}))
        .send()
        .await
        .assert_error(403, "not_a_member");
    c.post("/v1/auth/switch-team")
        .json(json!({"team_id": "tm_0000000000000000000000zzz"}))
        .send()
        .await
        .assert_error(404, "team_not_found");
}

#[tokio::test]
async fn password_change_revokes_sessions_and_notifies() {
    let server = TestServer::start().await;
    let a = server.signed_in("change@example.com", "Ch", PW).await;
    let b = server.client();
    b.post("/v1/auth/login")
        .json(json!({"email": "change@example.com", "password": PW}))
        .send()
        .await;
    a.post("/v1/me/password")
        .json(json!({"current_password": "not it at all", "new_password": "new password 1"}))
        .send()
        .await
        .assert_error(401, "wrong_password");
    let r = a
        .post("/v1/me/password")
        .json(json!({"current_password": PW, "new_password": "new password 1"}))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    b.get("/v1/me")
        .send()
        .await
        .assert_error(401, "session_expired");
    assert_eq!(
        a.get("/v1/me").send().await.status,
        200,
        "the caller gets a fresh session"
    );
    let mail = server.wait_for_mail("change@example.com", 2).await;
    assert!(mail.contains("password was changed"), "{mail}");
    let r = server
        .client()
        .post("/v1/auth/login")
        .json(json!({"email": "change@example.com", "password": "new password 1"}))
        .send()
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn password_reset_flow() {
    let server = TestServer::start().await;
    let a = server.signed_in("reset@example.com", "Re", PW).await;
    let anon = server.client();
    // Unknown and known addresses answer the same.
    let unknown = anon
        .post("/v1/me/password/reset")
        .json(json!({"email": "ghost@example.com"}))
        .send()
        .await;
    let known = anon
        .post("/v1/me/password/reset")
        .json(json!({"email": "reset@example.com"}))
        .send()
        .await;
    assert_eq!((unknown.status, unknown.text.as_str()), (204, ""));
    assert_eq!((known.status, known.text.as_str()), (204, ""));
    let mail = server.wait_for_mail("reset@example.com", 2).await;
    assert!(mail.contains("/reset-password?token="), "{mail}");
    let token = token_in(&mail).unwrap();
    assert!(server.mails_to("ghost@example.com").is_empty());

    anon.post("/v1/me/password/reset/confirm")
        .json(json!({"token": token, "new_password": "short"}))
        .send()
        .await
        .assert_error(400, "invalid_password");
    let r = anon
        .post("/v1/me/password/reset/confirm")
        .json(json!({"token": token, "new_password": "brand new password"}))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // Single use, sessions revoked, old password dead, new one works.
    anon.post("/v1/me/password/reset/confirm")
        .json(json!({"token": token, "new_password": "another password"}))
        .send()
        .await
        .assert_error(400, "invalid_token");
    a.get("/v1/me")
        .send()
        .await
        .assert_error(401, "session_expired");
    anon.post("/v1/auth/login")
        .json(json!({"email": "reset@example.com", "password": PW}))
        .send()
        .await
        .assert_error(401, "invalid_credentials");
    let r = anon
        .post("/v1/auth/login")
        .json(json!({"email": "reset@example.com", "password": "brand new password"}))
        .send()
        .await;
    assert_eq!(r.status, 200);
    // Tokens are stored hashed: the plaintext appears nowhere in Redis.
    let mut redis = server.ctx().redis();
    let keys: Vec<String> = redis.keys("wrenn:token:*").await.unwrap();
    assert!(keys.iter().all(|k| !k.contains(&token)));
}

#[tokio::test]
async fn delete_me_soft_deletes_and_purge_removes_after_15_days() {
    let server = TestServer::start().await;
    let owner = server.signed_in("owner@example.com", "Owner", PW).await;
    let member = server.signed_in("member@example.com", "Member", PW).await;
    let team = owner.get("/v1/teams").send().await.json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    owner
        .post(&format!("/v1/teams/{team}/members"))
        .json(json!({"email": "member@example.com"}))
        .send()
        .await;

    owner
        .delete("/v1/me")
        .json(json!({"confirmation": "nope@example.com"}))
        .send()
        .await
        .assert_error(400, "confirmation_mismatch");
    owner
        .delete("/v1/me")
        .json(json!({"confirmation": "owner@example.com"}))
        .send()
        .await
        .assert_error(409, "owns_team_with_members");

    let (sid, csrf) = (
        member.cookie("wrenn_sid").unwrap(),
        member.cookie("wrenn_csrf").unwrap(),
    );
    let r = member
        .delete("/v1/me")
        .json(json!({"confirmation": "member@example.com"}))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    member
        .get("/v1/me")
        .send()
        .await
        .assert_error(401, "unauthorized");
    member.set_cookie("wrenn_sid", &sid);
    member.set_cookie("wrenn_csrf", &csrf);
    member
        .get("/v1/me")
        .send()
        .await
        .assert_error(401, "session_expired");
    server
        .client()
        .post("/v1/auth/login")
        .json(json!({"email": "member@example.com", "password": PW}))
        .send()
        .await
        .assert_error(401, "invalid_credentials");
    // Gone from the team listing at once; the row stays until the purge.
    let members = owner
        .get(&format!("/v1/teams/{team}/members"))
        .send()
        .await
        .json();
    assert_eq!(members.as_array().unwrap().len(), 1);
    let db = server.ctx().db();
    let now = chrono::Utc::now();
    assert_eq!(
        cpserver::accounts::purge_deleted(server.app(), now)
            .await
            .unwrap(),
        0
    );
    sqlx::query("UPDATE users SET deleted_at = now() - interval '16 days' WHERE email = 'member@example.com'")
        .execute(db)
        .await
        .unwrap();
    assert_eq!(
        cpserver::accounts::purge_deleted(server.app(), now)
            .await
            .unwrap(),
        1
    );
    let (n,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM users WHERE email = 'member@example.com'")
            .fetch_one(db)
            .await
            .unwrap();
    assert_eq!(n, 0);
    // Now the owner may leave: their solo team is deleted with them.
    let r = owner
        .delete("/v1/me")
        .json(json!({"confirmation": "OWNER@example.com"}))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

#[tokio::test]
async fn end_to_end_signup_to_api_key_me() {
    let server = TestServer::start().await;
    let c = server.client();
    let r = c
        .post("/v1/auth/signup")
        .json(json!({"email": "e2e@example.com", "password": PW, "name": "Eve"}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mail = server.wait_for_mail("e2e@example.com", 1).await;
    assert!(
        mail.contains(&format!("{}/activate?token=", server.base)),
        "{mail}"
    );
    let r = c
        .post("/v1/auth/activate")
        .json(json!({"token": token_in(&mail).unwrap()}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let c = server.client();
    let r = c
        .post("/v1/auth/login")
        .json(json!({"email": "e2e@example.com", "password": PW}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let user_id = r.json()["user"]["id"].as_str().unwrap().to_string();

    let team = c
        .post("/v1/teams")
        .json(json!({"name": "Research"}))
        .send()
        .await;
    assert_eq!(team.status, 201, "{}", team.text);
    let team_id = team.json()["id"].as_str().unwrap().to_string();
    assert!(team_id.starts_with("tm_") && team_id.len() == 28);
    let r = c
        .post("/v1/auth/switch-team")
        .json(json!({"team_id": team_id}))
        .send()
        .await;
    assert_eq!(r.status, 200);

    let key = c
        .post("/v1/api-keys")
        .json(json!({"name": "ci"}))
        .send()
        .await;
    assert_eq!(key.status, 201, "{}", key.text);
    let key = key.json();
    let plaintext = key["key"].as_str().unwrap().to_string();
    assert!(plaintext.starts_with("wrn_") && plaintext.len() == 36);
    assert_eq!(key["key_prefix"], &plaintext[..10]);
    assert_eq!(key["team_id"], team_id);
    assert_eq!(key["created_by"], user_id);
    assert!(key["last_used"].is_null());

    let me = server
        .client()
        .get("/v1/me")
        .api_key(&plaintext)
        .send()
        .await;
    assert_eq!(me.status, 200, "{}", me.text);
    let me = me.json();
    assert_eq!(me["id"], user_id);
    assert_eq!(me["email"], "e2e@example.com");
    assert_eq!(me["auth"]["type"], "api_key");
    assert_eq!(me["auth"]["team_id"], team_id);
    assert_eq!(me["auth"]["key_id"], key["id"]);

    let listed = c.get("/v1/api-keys").send().await.json();
    assert!(
        listed[0]["last_used"].is_string(),
        "last_used recorded: {listed}"
    );
    assert!(listed[0].get("key").is_none(), "plaintext never listed");
    // Only the hash is stored.
    let (hash,): (Vec<u8>,) = sqlx::query_as("SELECT key_hash FROM api_keys")
        .fetch_one(server.ctx().db())
        .await
        .unwrap();
    assert_eq!(hash.len(), 32);

    // A revoked or malformed key is refused.
    assert_eq!(
        c.delete(&format!("/v1/api-keys/{}", key["id"].as_str().unwrap()))
            .send()
            .await
            .status,
        204
    );
    server
        .client()
        .get("/v1/me")
        .api_key(&plaintext)
        .send()
        .await
        .assert_error(401, "invalid_api_key");
    server
        .client()
        .get("/v1/me")
        .api_key("wrn_nothex")
        .send()
        .await
        .assert_error(401, "invalid_api_key");
}

#[tokio::test]
async fn health_openapi_and_docs() {
    let server = TestServer::start().await;
    let c = server.client();
    let health = c.get("/health").send().await;
    assert_eq!(health.status, 200);
    assert_eq!(
        health.json(),
        json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})
    );
    let spec = c.get("/openapi.json").send().await.json();
    assert_eq!(spec["info"]["version"], env!("CARGO_PKG_VERSION"));
    for path in [
        "/v1/auth/signup",
        "/v1/me",
        "/v1/teams/{id}/members/{user_id}",
        "/v1/api-keys",
        "/health",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} documented");
    }
    let docs = c.get("/docs").send().await;
    assert_eq!(docs.status, 200);
    assert!(
        docs.text.contains("/openapi.json") && !docs.text.contains("<script src="),
        "self-contained"
    );
}

#[tokio::test]
async fn signup_after_cooldown_resends_and_second_link_reports_already_activated() {
    let server = TestServer::start().await;
    let c = server.client();
    let body = json!({"email": "slow@example.com", "password": PW, "name": "Slow"});
    assert_eq!(
        c.post("/v1/auth/signup")
            .json(body.clone())
            .send()
            .await
            .status,
        201
    );
    let first = token_in(&server.wait_for_mail("slow@example.com", 1).await).unwrap();
    sqlx::query("UPDATE users SET created_at = now() - interval '31 minutes'")
        .execute(server.ctx().db())
        .await
        .unwrap();
    let r = c.post("/v1/auth/signup").json(body).send().await;
    assert_eq!(r.status, 201, "{}", r.text);
    let second = token_in(&server.wait_for_mail("slow@example.com", 2).await).unwrap();
    assert_ne!(first, second);
    let r = c
        .post("/v1/auth/activate")
        .json(json!({"token": first}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    c.post("/v1/auth/activate")
        .json(json!({"token": second}))
        .send()
        .await
        .assert_error(400, "already_activated");
}

#[tokio::test]
async fn disabled_accounts_cannot_log_in() {
    let server = TestServer::start().await;
    server.signed_in("disabled@example.com", "D", PW).await;
    sqlx::query("UPDATE users SET disabled_at = now()")
        .execute(server.ctx().db())
        .await
        .unwrap();
    let c = server.client();
    c.post("/v1/auth/login")
        .json(json!({"email": "disabled@example.com", "password": PW}))
        .send()
        .await
        .assert_error(403, "account_disabled");
    // The wrong password still reveals nothing.
    c.post("/v1/auth/login")
        .json(json!({"email": "disabled@example.com", "password": "wrong password"}))
        .send()
        .await
        .assert_error(401, "invalid_credentials");
}
