//! Cursor paging of the listings that answered whole arrays before (capsules, snapshots, API
//! keys, teams, members, user search, sessions, hosts, channels) against a real control
//! plane, PostgreSQL and Redis: every row exactly once and in the listing's order over pages
//! of 2, no `X-Next-Cursor` on the last page, 400 envelopes for bad paging, and no row of
//! another team through any page.

use cpserver::db;
use cpserver::test_support::{TestClient, TestServer};
use serde_json::{json, Value};
use std::collections::HashSet;
use uuid::Uuid;
use wrenn_extension_api::ids;

const PW: &str = "correct horse battery";

/// Walks a listing in pages of `limit`, checking each page's shape; the rows in the order
/// given.
async fn walk(c: &TestClient, path: &str, limit: usize) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..50 {
        let url = match &cursor {
            Some(cur) => format!("{path}{sep}limit={limit}&cursor={cur}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let r = c.get(&url).send().await;
        assert_eq!(r.status, 200, "{url}: {}", r.text);
        let page = r.json();
        let page = page
            .as_array()
            .unwrap_or_else(|| panic!("{url}: a bare array: {}", r.text));
        assert!(page.len() <= limit, "{url}: {} rows", page.len());
        rows.extend(page.iter().cloned());
        match r.headers.get("x-next-cursor") {
            Some(next) => {
                assert_eq!(page.len(), limit, "{url}: a short page names a next one");
                cursor = Some(next.to_str().unwrap().to_string());
            }
            None => return rows,
        }
    }
    panic!("{path}: paging does not end");
}

/// `field` of each row.
fn field(rows: &[Value], field: &str) -> Vec<String> {
    rows.iter()
        .map(|r| {
            r[field]
                .as_str()
                .unwrap_or_else(|| panic!("{field} in {r}"))
                .to_string()
        })
        .collect()
}

/// Walks `path` in pages of 2 and of 200 and checks they agree, that every row is there
/// once, and that the rows are `expected` (by `key`) in that order.
#[track_caller]
fn assert_rows(path: &str, small: &[Value], whole: &[Value], key: &str, expected: &[String]) {
    let small = field(small, key);
    let whole = field(whole, key);
    assert_eq!(small, whole, "{path}: pages of 2 and one page differ");
    assert_eq!(
        small.iter().collect::<HashSet<_>>().len(),
        small.len(),
        "{path}: a row twice: {small:?}"
    );
    assert_eq!(small, expected, "{path}");
}

async fn check(c: &TestClient, path: &str, key: &str, expected: &[String]) {
    let small = walk(c, path, 2).await;
    let whole = walk(c, path, 200).await;
    assert_rows(path, &small, &whole, key, expected);
    bad_paging_is_refused(c, path).await;
}

async fn bad_paging_is_refused(c: &TestClient, path: &str) {
    let sep = if path.contains('?') { '&' } else { '?' };
    for bad in [
        "limit=0",
        "limit=201",
        "limit=x",
        "cursor=garbage",
        "cursor=1-2",
    ] {
        let url = format!("{path}{sep}{bad}");
        let r = c.get(&url).send().await;
        r.assert_error(400, "invalid_request");
        assert!(
            !r.json()["error"]["message"].as_str().unwrap().is_empty(),
            "{url}"
        );
    }
}

async fn login(server: &TestServer, email: &str) -> TestClient {
    let c = server.client();
    let r = c
        .post("/v1/auth/login")
        .json(json!({"email": email, "password": PW}))
        .send()
        .await;
    assert_eq!(r.status, 200, "login: {}", r.text);
    c
}

async fn team_of(c: &TestClient) -> (String, Uuid) {
    let teams = c.get("/v1/teams").send().await.json();
    let wire = teams[0]["id"].as_str().unwrap().to_string();
    let id = ids::decode(ids::TEAM, &wire).unwrap();
    (wire, id)
}

async fn insert_capsule(server: &TestServer, team: Uuid) -> String {
    let row = db::capsules::insert(
        server.app().db(),
        &db::capsules::NewCapsule {
            id: Uuid::new_v4(),
            team_id: team,
            template_id: Uuid::nil(),
            template_name: "minimal-ubuntu".into(),
            vcpus: 1,
            memory_mb: 512,
            disk_mb: 2048,
            timeout_sec: 0,
            access_token: "t".into(),
            created_by: None,
            network: json!({"mode": "allow_all"}),
        },
    )
    .await
    .expect("insert capsule");
    ids::encode(ids::CAPSULE, row.id)
}

#[tokio::test]
async fn team_listings_page_in_their_order_and_never_cross_teams() {
    let server = TestServer::start().await;
    let alice = server.signed_in("alice@example.com", "Alice", PW).await;
    let bob = server.signed_in("bob@example.com", "Bob", PW).await;
    let (_, alice_team) = team_of(&alice).await;
    let (_, bob_team) = team_of(&bob).await;

    // Capsules: newest first.
    let mut mine = Vec::new();
    for _ in 0..5 {
        mine.push(insert_capsule(&server, alice_team).await);
    }
    let theirs = insert_capsule(&server, bob_team).await;
    mine.reverse();
    check(&alice, "/v1/capsules", "id", &mine).await;
    check(&bob, "/v1/capsules", "id", std::slice::from_ref(&theirs)).await;

    // Another team's cursor only moves a caller through its own rows.
    let r = alice.get("/v1/capsules?limit=2").send().await;
    let cursor = r.headers["x-next-cursor"].to_str().unwrap().to_string();
    let r = bob
        .get(&format!("/v1/capsules?limit=2&cursor={cursor}"))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(field(r.json().as_array().unwrap(), "id")
        .iter()
        .all(|id| *id == theirs));

    // Snapshots: the platform's templates first, then the team's, each by name.
    let platform = field(&walk(&alice, "/v1/snapshots", 200).await, "name");
    assert_eq!(platform.len(), 6, "{platform:?}");
    let mut sorted = platform.clone();
    sorted.sort();
    assert_eq!(platform, sorted);
    for name in ["snap-c", "snap-a", "snap-b"] {
        db::templates::insert_snapshot(
            server.app().db(),
            &db::templates::NewSnapshot {
                id: Uuid::new_v4(),
                team_id: alice_team,
                name: name.into(),
                vcpus: 1,
                memory_mb: 512,
                base_template_id: Uuid::nil(),
                source_capsule_id: Uuid::new_v4(),
                host_id: Uuid::new_v4(),
            },
        )
        .await
        .expect("insert template");
    }
    let team_names: Vec<String> = ["snap-a", "snap-b", "snap-c"].map(String::from).into();
    let expected: Vec<String> = platform.iter().chain(&team_names).cloned().collect();
    check(&alice, "/v1/snapshots", "name", &expected).await;
    // The type filter pages too.
    check(&alice, "/v1/snapshots?type=base", "name", &platform).await;
    check(&alice, "/v1/snapshots?type=snapshot", "name", &team_names).await;
    check(&bob, "/v1/snapshots", "name", &platform).await;

    // API keys: newest first.
    let mut keys = Vec::new();
    for i in 0..5 {
        let r = alice
            .post("/v1/api-keys")
            .json(json!({"name": format!("k{i}")}))
            .send()
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        keys.push(r.json()["id"].as_str().unwrap().to_string());
    }
    let r = bob
        .post("/v1/api-keys")
        .json(json!({"name": "b"}))
        .send()
        .await;
    let bob_key = r.json()["id"].as_str().unwrap().to_string();
    keys.reverse();
    check(&alice, "/v1/api-keys", "id", &keys).await;
    check(&bob, "/v1/api-keys", "id", &[bob_key]).await;

    // Channels: newest first, with X-Total-Count, and the older offset paging still works.
    let mut channels = Vec::new();
    for i in 0..5 {
        let r = alice
            .post("/v1/channels")
            .json(json!({"name": format!("c{i}"), "provider": "webhook",
                         "config": {"url": "http://127.0.0.1:9/hook"}, "events": ["capsule.pause"]}))
            .send()
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        channels.push(r.json()["id"].as_str().unwrap().to_string());
    }
    let r = bob
        .post("/v1/channels")
        .json(json!({"name": "b", "provider": "webhook",
                     "config": {"url": "http://127.0.0.1:9/hook"}, "events": ["capsule.pause"]}))
        .send()
        .await;
    let bob_channel = r.json()["id"].as_str().unwrap().to_string();
    channels.reverse();
    check(&alice, "/v1/channels", "id", &channels).await;
    check(&bob, "/v1/channels", "id", &[bob_channel]).await;
    let r = alice.get("/v1/channels?limit=2&offset=2").send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(field(r.json().as_array().unwrap(), "id"), channels[2..4]);
    assert_eq!(r.headers["x-total-count"], "5");
    alice
        .get("/v1/channels?offset=-1")
        .send()
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn account_listings_page_in_their_order() {
    let server = TestServer::start().await;
    // The first user is the platform admin (hosts).
    let alice = server.signed_in("alice@example.com", "Alice", PW).await;
    let bob = server.signed_in("bob@example.com", "Bob", PW).await;
    let (alice_team_wire, _) = team_of(&alice).await;

    // Teams: oldest first.
    let mut teams = vec![alice_team_wire.clone()];
    for i in 0..4 {
        let r = alice
            .post("/v1/teams")
            .json(json!({"name": format!("Team {i}")}))
            .send()
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        teams.push(r.json()["id"].as_str().unwrap().to_string());
    }
    check(&alice, "/v1/teams", "id", &teams).await;
    check(&bob, "/v1/teams", "id", &[team_of(&bob).await.0]).await;

    // Members: in the order they joined. User search: by email.
    let mut members = vec!["alice@example.com".to_string()];
    for email in [
        "sam@d.example",
        "sam@b.example",
        "sam@e.example",
        "sam@a.example",
    ] {
        server.signed_in(email, "Sam", PW).await;
        let r = alice
            .post(&format!("/v1/teams/{alice_team_wire}/members"))
            .json(json!({"email": email}))
            .send()
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        members.push(email.to_string());
    }
    let path = format!("/v1/teams/{alice_team_wire}/members");
    check(&alice, &path, "email", &members).await;
    // Another team's members are a 404 whatever the paging.
    bob.get(&format!("{path}?limit=2"))
        .send()
        .await
        .assert_error(404, "team_not_found");

    let mut sams: Vec<String> = members[1..].to_vec();
    sams.sort();
    let small = walk(&bob, "/v1/users/search?email=sam@", 2).await;
    let whole = walk(&bob, "/v1/users/search?email=sam@", 10).await;
    assert_rows("/v1/users/search", &small, &whole, "email", &sams);
    // At most 10 per answer (limit 1-10), and a prefix needs its "@".
    for path in [
        "/v1/users/search?email=sam",
        "/v1/users/search?email=sam@&limit=11",
        "/v1/users/search?email=sam@&limit=0",
        "/v1/users/search?email=sam@&cursor=garbage",
        // A cursor of a time-ordered listing is not one of this listing.
        "/v1/users/search?email=sam@&cursor=1764000000000000-00000000000000000000000000000000",
    ] {
        bob.get(path)
            .send()
            .await
            .assert_error(400, "invalid_request");
    }

    // Sessions: newest first.
    let mut sessions = Vec::new();
    for _ in 0..3 {
        login(&server, "bob@example.com").await;
    }
    let rows = walk(&bob, "/v1/me/sessions", 200).await;
    assert_eq!(rows.len(), 4, "{rows:?}");
    for r in &rows {
        sessions.push(r["id"].as_str().unwrap().to_string());
    }
    let times = field(&rows, "created_at");
    let mut sorted = times.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(times, sorted, "newest first");
    check(&bob, "/v1/me/sessions", "id", &sessions).await;
    assert_eq!(walk(&alice, "/v1/me/sessions", 2).await.len(), 1);

    // Hosts: oldest first; a team's owner sees only the team's BYOC hosts.
    let mut hosts = Vec::new();
    for _ in 0..4 {
        let r = alice
            .post("/v1/hosts")
            .json(json!({"type": "regular"}))
            .send()
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        hosts.push(r.json()["host"]["id"].as_str().unwrap().to_string());
    }
    let bob_team = team_of(&bob).await.0;
    let r = alice
        .post("/v1/hosts")
        .json(json!({"type": "byoc", "team_id": bob_team}))
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let byoc = r.json()["host"]["id"].as_str().unwrap().to_string();
    hosts.push(byoc.clone());
    check(&alice, "/v1/hosts", "id", &hosts).await;
    check(&bob, "/v1/hosts", "id", &[byoc]).await;
}
