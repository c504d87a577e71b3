//! `wrenn capsule list` and `wrenn template list` read every page of their list (the API
//! answers 100 rows unless asked, `X-Next-Cursor` naming the next page). Against a real
//! control plane, PostgreSQL and Redis; the capsule rows are written straight into the
//! database, so no agent is needed.

mod support;

use cpserver::test_support::TestServer;
use serde_json::json;
use std::collections::HashSet;
use support::Wrenn;
use uuid::Uuid;
use wrenn_extension_api::ids;

#[tokio::test]
async fn lists_follow_the_next_cursor_to_the_last_page() {
    let server = TestServer::start().await;
    let alice = server
        .signed_in("alice@example.com", "Alice", "correct horse battery")
        .await;
    let key = alice.new_api_key("cli").await;
    let team = alice.get("/v1/teams").send().await.json()[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let team = ids::decode(ids::TEAM, &team).unwrap();
    let mut inserted = HashSet::new();
    for _ in 0..230 {
        let row = cpserver::db::capsules::insert(
            server.app().db(),
            &cpserver::db::capsules::NewCapsule {
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
        .unwrap();
        inserted.insert(ids::encode(ids::CAPSULE, row.id));
    }
    // The API alone answers one page.
    let first = alice.get("/v1/capsules").send().await;
    assert_eq!(first.json().as_array().unwrap().len(), 100);
    assert!(first.headers.get("x-next-cursor").is_some());

    let w = Wrenn::new()
        .env("WRENN_URL", &server.client().base)
        .env("WRENN_API_KEY", &key);
    let listed = w.run(&["--json", "capsule", "list"]).await;
    let listed = listed.ok().json();
    let ids: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 230);
    assert_eq!(ids.iter().cloned().collect::<HashSet<_>>(), inserted);
    let table = w.run(&["capsule", "list"]).await;
    assert_eq!(
        table.ok().stdout.lines().count(),
        231,
        "a header and 230 rows"
    );

    let templates = w.run(&["--json", "template", "list"]).await;
    assert_eq!(templates.ok().json().as_array().unwrap().len(), 6);
}
