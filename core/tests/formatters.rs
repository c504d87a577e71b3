//! WebAssembly notification formatters: the example Slack formatter dropped into a running
//! control plane's formatters directory formats the next delivery to a loopback Slack-shaped
//! receiver; hostile components (an endless loop, a spin, a 1 GiB allocation, a trap, an
//! error, the wrong world version) each fall back to the built-in text within the deadline
//! while other deliveries go on.

use cpserver::audit::{self, AuditScope};
use cpserver::events::{Actor, Event, Outcome, Resource};
use cpserver::test_support::receiver::Receiver;
use cpserver::test_support::{TestClient, TestServer};
use cpserver::Builder;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use uuid::Uuid;
use wrenn_extension_api::ids;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Puts `component` into `dir/<name>/` with a manifest.
fn install(dir: &Path, name: &str, world: &str, component: &Path) {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(component, d.join("formatter.wasm")).unwrap();
    std::fs::write(
        d.join("manifest.json"),
        json!({"name": name, "version": "1.0.0", "world": world, "providers": ["slack", "discord"]})
            .to_string(),
    )
    .unwrap();
}

async fn server(dir: &Path) -> TestServer {
    let dir = dir.to_path_buf();
    TestServer::start_with(Builder::new().without_inventory(), move |c| {
        c.formatters.dir = Some(dir);
        c.formatters.deadline_ms = 100;
    })
    .await
}

async fn team_of(client: &TestClient) -> Uuid {
    let r = client.get("/v1/teams").send().await;
    ids::decode(ids::TEAM, r.json()[0]["id"].as_str().unwrap()).unwrap()
}

async fn slack_channel(client: &TestClient, url: &str, formatter: Option<&str>) {
    let mut config = json!({"url": url});
    if let Some(f) = formatter {
        config["formatter"] = json!(f);
    }
    let r = client
        .post("/v1/channels")
        .json(
            json!({"name": formatter.unwrap_or("plain"), "provider": "slack",
                     "config": config, "events": ["capsule.pause"]}),
        )
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

async fn publish(server: &TestServer, team: Uuid, outcome: Outcome) -> Event {
    let e = Event::new(
        "capsule.pause",
        team,
        Actor::user(Uuid::new_v4(), "alice@example.com"),
        Resource::sandbox(Uuid::new_v4()),
    )
    .outcome(outcome)
    .meta("reason", "ttl_expired");
    audit::record_and_publish(server.app(), &e, AuditScope::Team)
        .await
        .unwrap();
    e
}

async fn formatters(admin: &TestClient) -> Vec<Value> {
    let r = admin.get("/v1/admin/formatters").send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json().as_array().unwrap().clone()
}

#[tokio::test]
async fn a_formatter_dropped_into_the_directory_formats_the_next_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path()).await;
    let admin = server
        .signed_in("ops@example.com", "Ops", "password-123")
        .await; // first user: admin
    let team = team_of(&admin).await;
    assert_eq!(formatters(&admin).await, Vec::<Value>::new());
    let rx = Receiver::start().await;
    slack_channel(&admin, &format!("{}/blocks", rx.url), Some("slack-blocks")).await;

    // Not loaded yet: the built-in text goes out.
    publish(&server, team, Outcome::Success).await;
    let first = rx.wait_for(1, 10).await;
    assert!(
        first[0].json().get("blocks").is_none(),
        "{:?}",
        first[0].json()
    );

    // Dropped in while the server runs: picked up without a restart.
    let example = repo().join("examples/slack-formatter");
    let d = dir.path().join("slack-blocks");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::copy(example.join("formatter.wasm"), d.join("formatter.wasm")).unwrap();
    std::fs::copy(example.join("manifest.json"), d.join("manifest.json")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let list = formatters(&admin).await;
        if list
            .iter()
            .any(|f| f["name"] == "slack-blocks" && f["status"] == "loaded")
        {
            assert_eq!(list[0]["world"], "0.1.0");
            break;
        }
        assert!(Instant::now() < deadline, "never loaded: {list:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let success = publish(&server, team, Outcome::Success).await;
    let failure = publish(&server, team, Outcome::Error).await;
    let got = rx.wait_for(3, 10).await;
    assert_eq!(got.len(), 3);
    let body_for = |id: &str| {
        got.iter()
            .map(|r| r.json())
            .find(|b| b["text"].as_str().unwrap_or_default().contains(id))
            .unwrap_or_else(|| panic!("no delivery for {id}: {got:?}"))
    };
    for (e, colour) in [(&success, "#2eb67d"), (&failure, "#e01e5a")] {
        let body = body_for(&e.resource.id);
        let blocks = body["attachments"][0]["blocks"]
            .as_array()
            .expect("attachments[0].blocks");
        assert_eq!(body["attachments"][0]["color"], colour, "{body}");
        let all = serde_json::to_string(&body).unwrap();
        assert!(
            all.contains("capsule.pause") && all.contains("ttl_expired"),
            "{all}"
        );
        assert!(!blocks.is_empty());
        assert!(
            !body["text"].as_str().unwrap().is_empty(),
            "text stays as the fallback"
        );
    }

    // Removed: unloaded, the built-in text again.
    std::fs::remove_dir_all(&d).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !formatters(&admin).await.is_empty() {
        assert!(Instant::now() < deadline, "never unloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    publish(&server, team, Outcome::Success).await;
    let got = rx.wait_for(4, 10).await;
    assert!(got[3].json().get("attachments").is_none());

    // Members and API keys cannot list formatters.
    let member = server
        .signed_in("member@example.com", "Member", "password-123")
        .await;
    member
        .get("/v1/admin/formatters")
        .send()
        .await
        .assert_error(403, "admin_required");
    assert_eq!(
        server
            .client()
            .get("/v1/admin/formatters")
            .send()
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn hostile_formatters_fall_back_to_the_builtin_text_without_stalling_others() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = repo().join("core/tests/formatters");
    for name in ["loop", "spin", "alloc", "trap", "error"] {
        install(
            dir.path(),
            name,
            "0.1.0",
            &hostile.join(format!("{name}.wasm")),
        );
    }
    install(
        dir.path(),
        "wrong-version",
        "0.2.0",
        &hostile.join("wrong-version.wasm"),
    );
    // Claims 0.1.0 but exports the 0.2.0 interface: refused at load, not at delivery.
    install(
        dir.path(),
        "lying-version",
        "0.1.0",
        &hostile.join("wrong-version.wasm"),
    );
    // Not a component at all.
    let junk = dir.path().join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("formatter.wasm"), b"\0asm garbage").unwrap();
    std::fs::write(junk.join("manifest.json"), "{not json").unwrap();

    let server = server(dir.path()).await;
    let admin = server
        .signed_in("sec@example.com", "Sec", "password-123")
        .await;
    let team = team_of(&admin).await;
    let list = formatters(&admin).await;
    let status = |name: &str| {
        list.iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed: {list:?}"))
            .clone()
    };
    for name in ["loop", "spin", "alloc", "trap", "error"] {
        assert_eq!(status(name)["status"], "loaded", "{list:?}");
    }
    let wrong = status("wrong-version");
    assert_eq!(wrong["status"], "error");
    assert!(
        wrong["error"].as_str().unwrap().contains("0.2.0"),
        "{wrong}"
    );
    let lying = status("lying-version");
    assert_eq!(lying["status"], "error");
    assert!(
        lying["error"]
            .as_str()
            .unwrap()
            .contains("wrenn:formatter/format@0.1.0"),
        "{lying}"
    );
    assert_eq!(status("junk")["status"], "error");

    let plain = Receiver::start().await;
    slack_channel(&admin, &plain.url, None).await;
    let mut hostile_rx = Vec::new();
    for name in ["loop", "spin", "alloc", "trap", "error", "wrong-version"] {
        let rx = Receiver::start().await;
        slack_channel(&admin, &rx.url, Some(name)).await;
        hostile_rx.push((name, rx));
    }
    let started = Instant::now();
    let e = publish(&server, team, Outcome::Success).await;
    let plain_got = plain.wait_for(1, 10).await;
    let plain_after = plain_got[0].at - started;
    for (name, rx) in &hostile_rx {
        let got = rx.wait_for(1, 10).await;
        assert_eq!(got.len(), 1, "{name}: no delivery");
        let took = got[0].at - started;
        assert!(took < Duration::from_secs(3), "{name}: {took:?}");
        let text = got[0].json()["text"].as_str().unwrap().to_string();
        assert!(
            text.starts_with("✅ capsule.pause succeeded") && text.contains(&e.resource.id),
            "{name}: {text}"
        );
    }
    // The formatters run on blocking threads: the plain channel did not wait for them.
    assert!(
        plain_after < Duration::from_secs(2),
        "plain delivery took {plain_after:?}"
    );
    // A second round: the same, and the server is alive and answering.
    publish(&server, team, Outcome::Error).await;
    for (name, rx) in &hostile_rx {
        assert_eq!(rx.wait_for(2, 10).await.len(), 2, "{name}: second delivery");
    }
    assert_eq!(server.client().get("/health").send().await.status, 200);
}
