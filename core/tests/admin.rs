//! The platform admin API (`/v1/admin/*`) against a real control plane, PostgreSQL and Redis:
//! who may call it, paging, disabling users, granting and revoking admin, BYOC, team and
//! template deletion, and the audit trail of it all.

use cpserver::test_support::{TestClient, TestServer};
use serde_json::{json, Value};
use std::collections::HashSet;

const PW: &str = "correct horse battery";

/// Every admin route, with a body for the mutations.
fn admin_routes(team: &str, user: &str) -> Vec<(&'static str, String, Option<Value>)> {
    vec![
        ("GET", "/v1/admin/teams".into(), None),
        (
            "PATCH",
            format!("/v1/admin/teams/{team}"),
            Some(json!({"is_byoc": true})),
        ),
        ("DELETE", format!("/v1/admin/teams/{team}"), None),
        ("GET", "/v1/admin/users".into(), None),
        (
            "PATCH",
            format!("/v1/admin/users/{user}"),
            Some(json!({"is_admin": true})),
        ),
        ("GET", "/v1/admin/templates".into(), None),
        (
            "DELETE",
            "/v1/admin/templates/tpl_0000000000000000000000001".into(),
            None,
        ),
        ("GET", "/v1/admin/capsules".into(), None),
        ("GET", "/v1/admin/audit-logs".into(), None),
        ("GET", "/v1/admin/formatters".into(), None),
    ]
}

async fn call(
    c: &TestClient,
    method: &str,
    path: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> cpserver::test_support::TestResponse {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut r = c.request(method, path);
    if let Some(b) = body {
        r = r.json(b);
    }
    if let Some(k) = key {
        r = r.api_key(k);
    }
    r.send().await
}

async fn me(c: &TestClient) -> Value {
    c.get("/v1/me").send().await.json()
}

async fn first_team(c: &TestClient) -> String {
    c.get("/v1/teams").send().await.json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A new API key of the client's team (the plaintext).
async fn new_key(c: &TestClient) -> String {
    let r = c
        .post("/v1/api-keys")
        .json(json!({"name": "k"}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()["key"].as_str().unwrap().to_string()
}

async fn login(
    server: &TestServer,
    email: &str,
) -> (TestClient, cpserver::test_support::TestResponse) {
    let c = server.client();
    let r = c
        .post("/v1/auth/login")
        .json(json!({"email": email, "password": PW}))
        .send()
        .await;
    (c, r)
}

#[tokio::test]
async fn only_a_platform_admin_session_reaches_the_admin_routes() {
    let server = TestServer::start().await;
    let admin = server.signed_in("root@example.com", "Root", PW).await;
    let bob = server.signed_in("bob@example.com", "Bob", PW).await;
    assert_eq!(
        me(&admin).await["is_admin"],
        true,
        "the first user is platform admin"
    );
    assert_eq!(me(&bob).await["is_admin"], false);
    let bob_team = first_team(&bob).await;
    let bob_id = me(&bob).await["id"].as_str().unwrap().to_string();
    let admin_key = new_key(&admin).await;
    let anon = server.client();

    for (method, path, body) in admin_routes(&bob_team, &bob_id) {
        call(&anon, method, &path, body.clone(), None)
            .await
            .assert_error(401, "unauthorized");
        call(&bob, method, &path, body.clone(), None)
            .await
            .assert_error(403, "admin_required");
        // Even the admin's own team key: admin routes are session only.
        call(&anon, method, &path, body.clone(), Some(&admin_key))
            .await
            .assert_error(403, "session_required");
    }
    // Nothing changed by the refused calls.
    let teams = admin.get("/v1/admin/teams").send().await;
    assert_eq!(teams.status, 200, "{}", teams.text);
    let bobs = teams
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == bob_team.as_str())
        .cloned()
        .expect("bob's team listed");
    assert_eq!(bobs["is_byoc"], false);
    assert!(bobs["deleted_at"].is_null());
    assert_eq!(me(&bob).await["is_admin"], false);

    // Granted admin: the next request passes; revoked: the next request is refused.
    let r = admin
        .patch(&format!("/v1/admin/users/{bob_id}"))
        .json(json!({"is_admin": true}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["is_admin"], true);
    assert_eq!(bob.get("/v1/admin/users").send().await.status, 200);
    let r = admin
        .patch(&format!("/v1/admin/users/{bob_id}"))
        .json(json!({"is_admin": false}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    bob.get("/v1/admin/users")
        .send()
        .await
        .assert_error(403, "admin_required");
}

#[tokio::test]
async fn listings_page_with_a_cursor_and_refuse_bad_paging() {
    let server = TestServer::start().await;
    let admin = server.signed_in("root@example.com", "Root", PW).await;
    for i in 0..4 {
        server
            .signed_in(&format!("user{i}@example.com"), &format!("User {i}"), PW)
            .await;
    }
    // 5 users in pages of 2: 2 + 2 + 1, no repeats, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/admin/users?limit=2&cursor={c}"),
            None => "/v1/admin/users?limit=2".into(),
        };
        let r = admin.get(&path).send().await;
        assert_eq!(r.status, 200, "{}", r.text);
        let page = r.json();
        let page = page.as_array().expect("a bare array");
        pages += 1;
        seen.extend(
            page.iter()
                .map(|u| u["email"].as_str().unwrap().to_string()),
        );
        match r.headers.get("x-next-cursor") {
            Some(next) => {
                assert_eq!(page.len(), 2);
                cursor = Some(next.to_str().unwrap().to_string());
            }
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 5, "{seen:?}");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 5, "{seen:?}");
    assert_eq!(seen[0], "user3@example.com", "newest first: {seen:?}");
    assert_eq!(seen[4], "root@example.com");

    // Email filter (case-insensitive substring).
    let found = admin.get("/v1/admin/users?email=USER2").send().await.json();
    assert_eq!(found.as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found[0]["email"], "user2@example.com");
    assert_eq!(found[0]["team_count"], 1);
    assert_eq!(found[0]["disabled"], false);

    // Teams: every user's default team plus the platform team, with usage figures.
    let teams = admin.get("/v1/admin/teams?limit=200").send().await.json();
    assert_eq!(teams.as_array().unwrap().len(), 6, "{teams}");
    assert!(teams
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["member_count"].is_i64()
            && t["running_capsules"] == 0
            && t["vcpus_in_use"] == 0));

    for bad in [
        "/v1/admin/users?limit=0",
        "/v1/admin/users?limit=201",
        "/v1/admin/users?limit=x",
        "/v1/admin/users?cursor=garbage",
        "/v1/admin/teams?cursor=1-2",
        "/v1/admin/capsules?status=flying",
        "/v1/admin/capsules?team_id=usr_0",
        "/v1/admin/capsules?host_id=nope",
    ] {
        admin
            .get(bad)
            .send()
            .await
            .assert_error(400, "invalid_request");
    }
    // An empty result is an empty array, not an error.
    let none = admin.get("/v1/admin/capsules?status=running").send().await;
    assert_eq!(none.status, 200, "{}", none.text);
    assert_eq!(none.json(), json!([]));
    assert!(none.headers.get("x-next-cursor").is_none());
}

#[tokio::test]
async fn a_disabled_user_loses_its_sessions_and_cannot_log_in_until_enabled() {
    let server = TestServer::start().await;
    let admin = server.signed_in("root@example.com", "Root", PW).await;
    let carol = server.signed_in("carol@example.com", "Carol", PW).await;
    let (carol2, r) = login(&server, "carol@example.com").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let carol_id = me(&carol).await["id"].as_str().unwrap().to_string();

    let r = admin
        .patch(&format!("/v1/admin/users/{carol_id}"))
        .json(json!({"disabled": true}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["disabled"], true);
    for c in [&carol, &carol2] {
        c.get("/v1/me")
            .send()
            .await
            .assert_error(401, "session_expired");
    }
    let (_, r) = login(&server, "carol@example.com").await;
    r.assert_error(403, "account_disabled");

    let r = admin
        .patch(&format!("/v1/admin/users/{carol_id}"))
        .json(json!({"disabled": false}))
        .send()
        .await;
    assert_eq!(r.json()["disabled"], false);
    let (again, r) = login(&server, "carol@example.com").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(me(&again).await["email"], "carol@example.com");

    // Bad bodies change nothing.
    for body in [
        json!({}),
        json!({"disabled": "yes"}),
        json!({"suspended": true}),
    ] {
        let r = admin
            .patch(&format!("/v1/admin/users/{carol_id}"))
            .json(body.clone())
            .send()
            .await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
    }
    admin
        .patch("/v1/admin/users/usr_0000000000000000000000abc")
        .json(json!({"disabled": true}))
        .send()
        .await
        .assert_error(404, "not_found");
    assert_eq!(me(&again).await["email"], "carol@example.com");
}

#[tokio::test]
async fn the_last_active_admin_can_be_neither_demoted_nor_disabled() {
    let server = TestServer::start().await;
    let admin = server.signed_in("root@example.com", "Root", PW).await;
    let dave = server.signed_in("dave@example.com", "Dave", PW).await;
    let root_id = me(&admin).await["id"].as_str().unwrap().to_string();
    let dave_id = me(&dave).await["id"].as_str().unwrap().to_string();
    for body in [json!({"is_admin": false}), json!({"disabled": true})] {
        admin
            .patch(&format!("/v1/admin/users/{root_id}"))
            .json(body)
            .send()
            .await
            .assert_error(409, "last_admin");
    }
    assert_eq!(me(&admin).await["is_admin"], true);
    // With a second admin, the first may step down.
    admin
        .patch(&format!("/v1/admin/users/{dave_id}"))
        .json(json!({"is_admin": true}))
        .send()
        .await;
    let r = admin
        .patch(&format!("/v1/admin/users/{root_id}"))
        .json(json!({"is_admin": false}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    admin
        .get("/v1/admin/users")
        .send()
        .await
        .assert_error(403, "admin_required");
    // And now dave is the last one.
    dave.patch(&format!("/v1/admin/users/{dave_id}"))
        .json(json!({"disabled": true}))
        .send()
        .await
        .assert_error(409, "last_admin");
}

#[tokio::test]
async fn byoc_is_switched_per_team_and_deleting_a_team_revokes_its_keys() {
    let server = TestServer::start().await;
    let admin = server.signed_in("root@example.com", "Root", PW).await;
    let erin = server.signed_in("erin@example.com", "Erin", PW).await;
    let team = first_team(&erin).await;
    let key = new_key(&erin).await;

    // BYOC on: the team's owner may now add its own hosts.
    let r = admin
        .patch(&format!("/v1/admin/teams/{team}"))
        .json(json!({"is_byoc": true}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["is_byoc"], true);
    assert_eq!(
        erin.get(&format!("/v1/teams/{team}")).send().await.json()["team"]["is_byoc"],
        true
    );
    let r = erin
        .post("/v1/hosts")
        .json(json!({"type": "byoc", "team_id": team}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let host = r.json()["host"]["id"].as_str().unwrap().to_string();
    // Off while it has a host: refused, naming the host; nothing changes.
    let r = admin
        .patch(&format!("/v1/admin/teams/{team}"))
        .json(json!({"is_byoc": false}))
        .send()
        .await;
    r.assert_error(409, "team_has_byoc_hosts");
    assert!(r.text.contains(&host), "{}", r.text);
    let listed = admin.get("/v1/admin/teams").send().await.json();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == team.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["is_byoc"], true);
    assert_eq!(row["host_count"], 1);
    // After the host is gone, off works.
    let r = erin.delete(&format!("/v1/hosts/{host}")).send().await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = admin
        .patch(&format!("/v1/admin/teams/{team}"))
        .json(json!({"is_byoc": false}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["is_byoc"], false);
    admin
        .patch(&format!("/v1/admin/teams/{team}"))
        .json(json!({"is_byoc": "no"}))
        .send()
        .await
        .assert_error(400, "invalid_request");

    // The platform team is neither BYOC nor deletable.
    let platform = "tm_0000000000000000000000000";
    admin
        .patch(&format!("/v1/admin/teams/{platform}"))
        .json(json!({"is_byoc": true}))
        .send()
        .await
        .assert_error(403, "forbidden");
    admin
        .delete(&format!("/v1/admin/teams/{platform}"))
        .send()
        .await
        .assert_error(403, "forbidden");

    // Delete: the team's key stops working, the owner no longer sees it, a second delete 404s.
    let r = admin
        .delete(&format!("/v1/admin/teams/{team}"))
        .send()
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    server
        .client()
        .get("/v1/capsules")
        .api_key(&key)
        .send()
        .await
        .assert_error(401, "invalid_api_key");
    let mine = erin.get("/v1/teams").send().await.json();
    assert!(
        mine.as_array()
            .unwrap()
            .iter()
            .all(|t| t["id"] != team.as_str()),
        "{mine}"
    );
    admin
        .delete(&format!("/v1/admin/teams/{team}"))
        .send()
        .await
        .assert_error(404, "not_found");
    let live = admin.get("/v1/admin/teams?limit=200").send().await.json();
    assert!(live
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["id"] != team.as_str()));
    let all = admin
        .get("/v1/admin/teams?limit=200&include_deleted=true")
        .send()
        .await
        .json();
    let gone = all
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == team.as_str())
        .unwrap()
        .clone();
    assert!(gone["deleted_at"].is_string(), "{gone}");

    // Every admin action is in the admin audit log, by the admin.
    let audit = admin
        .get("/v1/admin/audit-logs?resource_type=team")
        .send()
        .await
        .json();
    let actions: Vec<&str> = audit["audit_logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["team.delete", "team.update", "team.update"],
        "{audit}"
    );
    assert_eq!(
        audit["audit_logs"][0]["actor"]["name"], "root@example.com",
        "{audit}"
    );
}

#[tokio::test]
async fn platform_base_templates_are_listed_and_reserved() {
    let server = TestServer::start().await;
    let admin = server.signed_in("root@example.com", "Root", PW).await;
    let r = admin.get("/v1/admin/templates").send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let templates = r.json();
    let base: Vec<&Value> = templates
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["type"] == "base")
        .collect();
    assert!(!base.is_empty(), "{templates}");
    for t in &base {
        assert_eq!(t["platform"], true, "{t}");
        assert_eq!(t["reserved"], true, "{t}");
        assert_eq!(t["team_id"], "tm_0000000000000000000000000");
        let id = t["id"].as_str().unwrap();
        admin
            .delete(&format!("/v1/admin/templates/{id}"))
            .send()
            .await
            .assert_error(403, "template_reserved");
    }
    let after = admin.get("/v1/admin/templates").send().await.json();
    assert_eq!(after, templates, "nothing deleted");
    admin
        .delete("/v1/admin/templates/tpl_0000000000000000000000abc")
        .send()
        .await
        .assert_error(404, "not_found");
    admin
        .delete("/v1/admin/templates/minimal-debian")
        .send()
        .await
        .assert_error(404, "not_found");
}

#[tokio::test]
async fn metrics_are_off_without_a_token_and_need_it_when_on() {
    let off = TestServer::start().await;
    off.client()
        .get("/metrics")
        .send()
        .await
        .assert_error(404, "not_found");

    let server = TestServer::start_with(cpserver::Builder::new().without_inventory(), |c| {
        c.metrics_token = Some("tok".into())
    })
    .await;
    let c = server.signed_in("root@example.com", "Root", PW).await;
    let team = first_team(&c).await;
    assert_eq!(c.get(&format!("/v1/teams/{team}")).send().await.status, 200);
    c.get("/v1/no-such-route").send().await;
    c.get("/metrics")
        .send()
        .await
        .assert_error(401, "unauthorized");
    let r = reqwest::Client::new()
        .get(format!("{}/metrics", server.base))
        .bearer_auth("tok")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let r = cpserver::test_support::TestResponse {
        status: 200,
        headers: Default::default(),
        text,
    };
    // Routes by pattern, never by path; unknown paths folded into one label.
    assert!(
        r.text.contains(
            r#"wrenn_http_requests_total{method="GET",route="/v1/teams/{id}",status="200"} 1"#
        ),
        "{}",
        r.text
    );
    assert!(
        r.text.contains(r#"route="unmatched",status="404"}"#),
        "{}",
        r.text
    );
    assert!(
        !r.text.contains(team.trim_start_matches("tm_")),
        "{}",
        r.text
    );
    assert!(
        r.text.contains(r#"wrenn_capsules{status="running"} 0"#),
        "{}",
        r.text
    );
    assert!(r.text.trim_end().ends_with("# EOF"), "{}", r.text);
}
