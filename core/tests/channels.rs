//! Notification channels end to end: a real control plane (PostgreSQL, Redis), events
//! published on the real stream, and receivers that are real HTTP servers on loopback speaking
//! each provider's protocol. Signatures are checked by Python's `hmac` module, not by the code
//! that signs.

use axum::http::Method;
use cpserver::audit::{self, AuditScope};
use cpserver::events::{Actor, Event, Outcome, Resource};
use cpserver::test_support::receiver::{Received, Receiver};
use cpserver::test_support::{TestClient, TestServer};
use cpserver::Builder;
use serde_json::{json, Value};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use uuid::Uuid;
use wrenn_extension_api::{
    ids, Extension, HookError, SandboxEvent, SandboxEventHook, ServerContext,
};

// ---- log capture: every line any test's control plane logs, to look for secrets in --------

fn log_buffer() -> &'static Mutex<Vec<u8>> {
    static BUF: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    BUF.get_or_init(|| Mutex::new(Vec::new()))
}

struct Capture;

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        log_buffer().lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,sqlx=warn,hyper=info,reqwest=info,h2=info,tower=info")
            .with_writer(|| Capture)
            .try_init();
    });
}

// ---- helpers -------------------------------------------------------------------------------

async fn team_of(client: &TestClient) -> Uuid {
    let r = client.get("/v1/teams").send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json()[0]["id"].as_str().unwrap().to_string();
    ids::decode(ids::TEAM, &id).unwrap()
}

async fn publish(server: &TestServer, team: Uuid, name: &str, outcome: Option<Outcome>) -> Event {
    let mut e = Event::new(
        name,
        team,
        Actor::user(Uuid::new_v4(), "alice@example.com"),
        Resource::sandbox(Uuid::new_v4()),
    );
    if let Some(o) = outcome {
        e = e.outcome(o);
    }
    audit::record_and_publish(server.app(), &e, AuditScope::Team)
        .await
        .expect("publish");
    e
}

async fn create_channel(
    client: &TestClient,
    provider: &str,
    config: Value,
    events: &[&str],
) -> Value {
    let r = client
        .post("/v1/channels")
        .json(
            json!({"name": format!("{provider} test"), "provider": provider,
                     "config": config, "events": events}),
        )
        .send()
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

/// Checks `X-WRENN-SIGNATURE` with Python's hmac module (an implementation independent of
/// the control plane's).
fn verify_with_python(secret: &str, timestamp: &str, body: &[u8], signature: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let body_path = dir.path().join("body");
    std::fs::write(&body_path, body).unwrap();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import hmac,hashlib,sys\n\
             secret,ts,path,sig=sys.argv[1:5]\n\
             body=open(path,'rb').read()\n\
             mac=hmac.new(secret.encode(),ts.encode()+b'.'+body,hashlib.sha256).hexdigest()\n\
             sys.exit(0 if hmac.compare_digest('sha256='+mac,sig) else 1)",
        )
        .arg(secret)
        .arg(timestamp)
        .arg(&body_path)
        .arg(signature)
        .status()
        .expect("python3 runs");
    out.success()
}

/// How many stream entries `group` holds pending (read, not yet acked).
async fn pending(redis: &mut redis::aio::ConnectionManager, group: &str) -> u64 {
    let (count, _, _, _): (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg("wrenn:events")
        .arg(group)
        .query_async(redis)
        .await
        .unwrap();
    count
}

/// Another control plane of the same deployment: same database, Redis and secrets.
fn share(config: &mut cpserver::Config, with: &cpserver::Config) {
    config.database_url = with.database_url.clone();
    config.redis_url = with.redis_url.clone();
    config.encryption_key = with.encryption_key.clone();
    config.jwt_secret = with.jwt_secret.clone();
}

async fn start() -> TestServer {
    capture_logs();
    TestServer::start_with(Builder::new().without_inventory(), |_| {}).await
}

// ---- tests ---------------------------------------------------------------------------------

#[tokio::test]
async fn webhook_deliveries_are_signed_and_the_secret_is_shown_once() {
    let server = start().await;
    let client = server
        .signed_in("hook@example.com", "Hook", "password-123")
        .await;
    let team = team_of(&client).await;
    let receiver = Receiver::start().await;
    let created = create_channel(
        &client,
        "webhook",
        json!({"url": format!("{}/hooks/wrenn", receiver.url)}),
        &["capsule.create", "capsule.pause"],
    )
    .await;
    let secret = created["signing_secret"].as_str().unwrap().to_string();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{created}"
    );
    assert_eq!(created["config"], json!({"url_host": "127.0.0.1"}));
    let id = created["id"].as_str().unwrap().to_string();

    publish(&server, team, "capsule.create", Some(Outcome::Success)).await;
    publish(&server, team, "capsule.resume", Some(Outcome::Success)).await; // not subscribed
    let failed = publish(&server, team, "capsule.pause", Some(Outcome::Error)).await;
    let got = receiver.wait_for(2, 10).await;
    assert_eq!(got.len(), 2, "{got:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.got().len(),
        2,
        "an unsubscribed event was delivered"
    );

    let mut delivery_ids = Vec::new();
    for r in &got {
        assert_eq!(r.method, Method::POST);
        assert_eq!(r.path, "/hooks/wrenn");
        assert_eq!(r.header("content-type"), "application/json");
        let ts = r.header("x-wrenn-timestamp");
        let ts_parsed = chrono::DateTime::parse_from_rfc3339(&ts).expect("RFC 3339 timestamp");
        assert!(ts.ends_with('Z'), "UTC: {ts}");
        assert!(
            (chrono::Utc::now() - ts_parsed.to_utc())
                .num_seconds()
                .abs()
                < 30
        );
        let sig = r.header("x-wrenn-signature");
        assert!(
            verify_with_python(&secret, &ts, &r.body, &sig),
            "signature {sig} must verify"
        );
        assert!(!verify_with_python("whsec_wrong", &ts, &r.body, &sig));
        delivery_ids
            .push(Uuid::parse_str(&r.header("x-wrenn-delivery")).expect("UUID delivery id"));
    }
    assert_ne!(delivery_ids[0], delivery_ids[1]);
    let bodies: Vec<Value> = got.iter().map(Received::json).collect();
    let pause = bodies
        .iter()
        .find(|b| b["event"] == "capsule.pause")
        .unwrap();
    assert_eq!(pause["outcome"], "error");
    assert_eq!(pause["resource"]["id"], failed.resource.id);
    assert_eq!(pause["actor"]["name"], "alice@example.com");
    assert_eq!(pause["team_id"], ids::encode(ids::TEAM, team));
    let create = bodies
        .iter()
        .find(|b| b["event"] == "capsule.create")
        .unwrap();
    assert_eq!(create["outcome"], "success");

    // The deliveries are readable; the secret is in no later response.
    let r = client
        .get(&format!("/v1/channels/{id}/deliveries"))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = r.json();
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");
    assert!(rows
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["status"] == "delivered" && d["attempt"] == 1 && d["http_status"] == 200));
    for path in [format!("/v1/channels/{id}"), "/v1/channels".to_string()] {
        let r = client.get(&path).send().await;
        assert_eq!(r.status, 200);
        assert!(!r.text.contains(&secret), "{path} leaked the secret");
        assert!(!r.text.contains("/hooks/wrenn"), "{path} leaked the URL");
    }
    let r = client.get("/v1/channels").send().await;
    assert!(r.json().is_array(), "lists are bare arrays: {}", r.text);
    assert_eq!(r.headers["x-total-count"], "1");
    let r = client
        .patch(&format!("/v1/channels/{id}"))
        .json(json!({"name": "renamed", "events": ["capsule.destroy"]}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["name"], "renamed");
    assert!(!r.text.contains(&secret));
    let r = client
        .request(reqwest::Method::PUT, &format!("/v1/channels/{id}/config"))
        .json(json!({"config": {"url": format!("{}/v2", receiver.url)}}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json().get("signing_secret").is_none());
    assert!(!r.text.contains(&secret));
    // The kept secret still signs; a rotation shows the new one once.
    publish(&server, team, "capsule.destroy", Some(Outcome::Success)).await;
    let got = receiver.wait_for(3, 10).await;
    let last = &got[2];
    assert_eq!(last.path, "/v2");
    assert!(verify_with_python(
        &secret,
        &last.header("x-wrenn-timestamp"),
        &last.body,
        &last.header("x-wrenn-signature")
    ));
    let r = client
        .request(reqwest::Method::PUT, &format!("/v1/channels/{id}/config"))
        .json(json!({"config": {"url": format!("{}/v3", receiver.url)}, "rotate_secret": true}))
        .send()
        .await;
    let rotated = r.json()["signing_secret"].as_str().unwrap().to_string();
    assert_ne!(rotated, secret);

    // Neither secret appears in any log line of the control plane.
    let logs = String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned();
    assert!(!logs.is_empty(), "logs were captured");
    assert!(
        !logs.contains(&secret) && !logs.contains(&rotated),
        "a signing secret was logged"
    );

    let r = client.delete(&format!("/v1/channels/{id}")).send().await;
    assert_eq!(r.status, 204);
    assert_eq!(
        client
            .get(&format!("/v1/channels/{id}"))
            .send()
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_failing_receiver_gets_exactly_three_attempts_with_the_configured_spacing() {
    let server = start().await; // retries after 0.2 s and 0.6 s
    let client = server
        .signed_in("retry@example.com", "Retry", "password-123")
        .await;
    let team = team_of(&client).await;
    let flaky = Receiver::start().await;
    flaky.answer(&[500, 500]);
    let down = Receiver::start().await;
    down.answer(&[503, 503, 503, 503]);
    let flaky_ch = create_channel(
        &client,
        "webhook",
        json!({"url": flaky.url}),
        &["capsule.create"],
    )
    .await;
    let down_ch = create_channel(
        &client,
        "webhook",
        json!({"url": down.url}),
        &["capsule.create"],
    )
    .await;
    publish(&server, team, "capsule.create", Some(Outcome::Success)).await;

    let got = flaky.wait_for(3, 10).await;
    let dead = down.wait_for(3, 10).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(flaky.got().len(), 3, "500, 500, then 200: three attempts");
    assert_eq!(down.got().len(), 3, "three failures, then dropped");
    for attempts in [&got, &dead] {
        let gap1 = attempts[1].at - attempts[0].at;
        let gap2 = attempts[2].at - attempts[1].at;
        assert!(
            gap1 >= Duration::from_millis(190) && gap1 < Duration::from_secs(3),
            "{gap1:?}"
        );
        assert!(
            gap2 >= Duration::from_millis(590) && gap2 < Duration::from_secs(4),
            "{gap2:?}"
        );
        assert!(gap2 > gap1);
        let ids: std::collections::HashSet<String> = attempts
            .iter()
            .map(|r| r.header("x-wrenn-delivery"))
            .collect();
        assert_eq!(ids.len(), 3, "a new delivery id per attempt");
        assert!(
            attempts.iter().all(|r| r.body == attempts[0].body),
            "the same event each time"
        );
    }
    let statuses = |ch: &Value| {
        let client = client.clone();
        let id = ch["id"].as_str().unwrap().to_string();
        async move {
            let rows = client
                .get(&format!("/v1/channels/{id}/deliveries"))
                .send()
                .await
                .json();
            let mut v: Vec<(i64, String)> = rows
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    (
                        d["attempt"].as_i64().unwrap(),
                        d["status"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            v.sort();
            v
        }
    };
    assert_eq!(
        statuses(&flaky_ch).await,
        vec![
            (1, "failed".into()),
            (2, "failed".into()),
            (3, "delivered".into())
        ]
    );
    assert_eq!(
        statuses(&down_ch).await,
        vec![
            (1, "failed".into()),
            (2, "failed".into()),
            (3, "dropped".into())
        ]
    );
}

#[tokio::test]
async fn redirects_are_not_followed_and_internal_destinations_are_refused_by_default() {
    capture_logs();
    let server = TestServer::start_with(Builder::new().without_inventory(), |c| {
        c.events.channel_allow_internal = false;
        c.events.channel_retry_delays = String::new();
    })
    .await;
    let client = server
        .signed_in("ssrf@example.com", "Ssrf", "password-123")
        .await;
    let team = team_of(&client).await;
    let receiver = Receiver::start().await;
    let port = receiver.url.rsplit(':').next().unwrap().to_string();
    let loopback = create_channel(
        &client,
        "webhook",
        json!({"url": receiver.url}),
        &["host.up"],
    )
    .await;
    let by_name = create_channel(
        &client,
        "slack",
        json!({"url": format!("http://localhost:{port}/slack")}),
        &["host.up"],
    )
    .await;
    publish(&server, team, "host.up", None).await;
    let r = client
        .post("/v1/channels/test")
        .json(json!({"provider": "webhook", "config": {"url": "http://169.254.169.254/latest"}}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["delivered"], false);
    assert!(
        r.json()["error"].as_str().unwrap().contains("internal"),
        "{}",
        r.text
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        receiver.got().is_empty(),
        "a loopback receiver was reached: {:?}",
        receiver.got()
    );
    for ch in [&loopback, &by_name] {
        let id = ch["id"].as_str().unwrap();
        let rows = client
            .get(&format!("/v1/channels/{id}/deliveries"))
            .send()
            .await
            .json();
        let row = &rows[0];
        assert_eq!(row["status"], "dropped", "{rows}");
        assert!(
            row["error"].as_str().unwrap().contains("internal"),
            "{rows}"
        );
    }

    // Redirects: a server that allows internal receivers, a receiver answering 302.
    let open = start().await;
    let client = open
        .signed_in("redirect@example.com", "Redirect", "password-123")
        .await;
    let team = team_of(&client).await;
    let redirecting = Receiver::start().await;
    redirecting.answer(&[302, 302, 302]);
    let ch = create_channel(
        &client,
        "webhook",
        json!({"url": format!("{}/first", redirecting.url)}),
        &["host.down"],
    )
    .await;
    publish(&open, team, "host.down", None).await;
    redirecting.wait_for(3, 10).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = redirecting.got();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(
        got.iter().all(|r| r.path == "/first"),
        "a redirect was followed: {got:?}"
    );
    let id = ch["id"].as_str().unwrap();
    let rows = client
        .get(&format!("/v1/channels/{id}/deliveries"))
        .send()
        .await
        .json();
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|d| d["http_status"] == 302),
        "{rows}"
    );
}

#[tokio::test]
async fn chat_providers_receive_their_own_wire_formats() {
    let server = start().await;
    let client = server
        .signed_in("chat@example.com", "Chat", "password-123")
        .await;
    let team = team_of(&client).await;
    let rx = Receiver::start().await;
    let u = &rx.url;
    for (provider, config) in [
        ("slack", json!({"url": format!("{u}/services/T0/B0/xyz")})),
        ("discord", json!({"url": format!("{u}/api/webhooks/1/tok")})),
        ("teams", json!({"url": format!("{u}/workflows/teams")})),
        (
            "googlechat",
            json!({"url": format!("{u}/v1/spaces/AAA/messages")}),
        ),
        (
            "telegram",
            json!({"bot_token": "123456:ABC-def_GHI", "chat_id": "-1001", "api_url": u}),
        ),
        (
            "matrix",
            json!({"homeserver_url": u, "room_id": "!room:example.org", "access_token": "syt_secret"}),
        ),
    ] {
        create_channel(&client, provider, config, &["capsule.pause"]).await;
    }
    let event = publish(&server, team, "capsule.pause", Some(Outcome::Success)).await;
    let got = rx.wait_for(6, 10).await;
    assert_eq!(got.len(), 6, "{got:?}");
    let by_path = |p: &str| {
        got.iter()
            .find(|r| r.path.starts_with(p))
            .unwrap_or_else(|| panic!("no request to {p}: {got:?}"))
    };
    let expect_text = |t: &str| {
        assert!(t.contains("capsule.pause succeeded"), "{t}");
        assert!(t.contains(&event.resource.id), "{t}");
        assert!(t.contains("alice@example.com"), "{t}");
    };
    let slack = by_path("/services/");
    assert_eq!(slack.method, Method::POST);
    expect_text(slack.json()["text"].as_str().unwrap());
    assert!(
        slack.json().get("event").is_none(),
        "chat providers get text, not the payload"
    );
    let discord = by_path("/api/webhooks/");
    expect_text(discord.json()["content"].as_str().unwrap());
    assert_eq!(discord.json()["allowed_mentions"]["parse"], json!([]));
    let teams = by_path("/workflows/");
    let card = &teams.json()["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    let gchat = by_path("/v1/spaces/");
    expect_text(gchat.json()["text"].as_str().unwrap());
    let tg = by_path("/bot123456:ABC-def_GHI/sendMessage");
    assert_eq!(tg.method, Method::POST);
    assert_eq!(tg.json()["chat_id"], "-1001");
    expect_text(tg.json()["text"].as_str().unwrap());
    let mx = by_path("/_matrix/client/v3/rooms/");
    assert_eq!(mx.method, Method::PUT);
    assert!(
        mx.path
            .starts_with("/_matrix/client/v3/rooms/!room:example.org/send/m.room.message/"),
        "{}",
        mx.path
    );
    assert_eq!(mx.header("authorization"), "Bearer syt_secret");
    assert_eq!(mx.json()["msgtype"], "m.text");
    expect_text(mx.json()["body"].as_str().unwrap());
    for r in &got {
        assert_eq!(r.header("content-type"), "application/json", "{}", r.path);
    }

    // Secrets of every provider stay out of responses.
    let list = client.get("/v1/channels").send().await;
    for s in ["xyz", "/api/webhooks/1/tok", "ABC-def_GHI", "syt_secret"] {
        assert!(!list.text.contains(s), "{s} leaked: {}", list.text);
    }
    let tg_view = list
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["provider"] == "telegram")
        .unwrap()
        .clone();
    assert_eq!(tg_view["config"]["chat_id"], "-1001");

    // A test send reaches the receiver and stores nothing.
    let before = client
        .get("/v1/channels")
        .send()
        .await
        .json()
        .as_array()
        .unwrap()
        .len();
    let r = client
        .post("/v1/channels/test")
        .json(json!({"provider": "slack", "config": {"url": format!("{u}/test-send")}}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["delivered"], true, "{}", r.text);
    let sent = rx.wait_for(7, 5).await;
    assert!(sent.iter().any(|r| r.path == "/test-send"));
    let after = client
        .get("/v1/channels")
        .send()
        .await
        .json()
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "a test send stores nothing");
}

#[tokio::test]
async fn bad_input_is_refused_and_stores_nothing() {
    let server = start().await;
    let client = server
        .signed_in("bad@example.com", "Bad", "password-123")
        .await;
    let cases = [
        (
            json!({"name": "x", "provider": "carrier-pigeon", "config": {}, "events": ["host.up"]}),
            "invalid_provider",
        ),
        (
            json!({"name": "x", "provider": "webhook", "config": {}, "events": ["host.up"]}),
            "invalid_config",
        ),
        (
            json!({"name": "x", "provider": "webhook", "config": {"url": "not a url"}, "events": ["host.up"]}),
            "invalid_config",
        ),
        (
            json!({"name": "x", "provider": "webhook", "config": "https://x", "events": ["host.up"]}),
            "invalid_config",
        ),
        (
            json!({"name": "x", "provider": "slack", "config": {"url": "https://x/", "token": "y"}, "events": ["host.up"]}),
            "invalid_config",
        ),
        (
            json!({"name": "x", "provider": "telegram", "config": {"bot_token": "123:abc"}, "events": ["host.up"]}),
            "invalid_config",
        ),
        (
            json!({"name": "x", "provider": "matrix", "config": {"homeserver_url": "https://m", "room_id": "!r:m"}, "events": ["host.up"]}),
            "invalid_config",
        ),
        (
            json!({"name": "x", "provider": "webhook", "config": {"url": "https://x/"}, "events": ["capsule.exploded"]}),
            "invalid_event",
        ),
        (
            json!({"name": "x", "provider": "webhook", "config": {"url": "https://x/"}, "events": ["capsule.state.changed"]}),
            "invalid_event",
        ),
        (
            json!({"name": "x", "provider": "webhook", "config": {"url": "https://x/"}, "events": []}),
            "invalid_event",
        ),
        (
            json!({"name": "", "provider": "webhook", "config": {"url": "https://x/"}, "events": ["host.up"]}),
            "invalid_name",
        ),
    ];
    for (body, code) in cases {
        let r = client.post("/v1/channels").json(body.clone()).send().await;
        r.assert_error(400, code);
        assert!(
            !r.text.contains("SQL") && !r.text.contains("sqlx"),
            "{}",
            r.text
        );
    }
    let r = client
        .post("/v1/channels")
        .raw("application/json", "{not json")
        .send()
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = client
        .post("/v1/channels")
        .json(json!({"name": "x"}))
        .send()
        .await;
    assert_eq!(r.status / 100, 4, "{}", r.text);
    assert!(r.json()["error"]["code"].is_string());
    let list = client.get("/v1/channels").send().await;
    assert_eq!(list.json(), json!([]), "nothing stored");

    // Updates validate too and change nothing when refused.
    let ch = create_channel(
        &client,
        "webhook",
        json!({"url": "https://example.org/h"}),
        &["host.up"],
    )
    .await;
    let id = ch["id"].as_str().unwrap();
    client
        .patch(&format!("/v1/channels/{id}"))
        .json(json!({"events": ["nope"]}))
        .send()
        .await
        .assert_error(400, "invalid_event");
    client
        .request(reqwest::Method::PUT, &format!("/v1/channels/{id}/config"))
        .json(json!({"config": {"url": "gopher://x"}}))
        .send()
        .await
        .assert_error(400, "invalid_config");
    let now = client
        .get(&format!("/v1/channels/{id}"))
        .send()
        .await
        .json();
    assert_eq!(now["events"], json!(["host.up"]));
    assert_eq!(now["config"]["url_host"], "example.org");
    client
        .get("/v1/channels/ch_nonsense")
        .send()
        .await
        .assert_error(404, "not_found");
    assert_eq!(server.client().get("/v1/channels").send().await.status, 401);
}

#[tokio::test]
async fn another_teams_channel_is_not_found_on_every_route() {
    let server = start().await;
    let alice = server
        .signed_in("alice-ch@example.com", "Alice", "password-123")
        .await;
    let bob = server
        .signed_in("bob-ch@example.com", "Bob", "password-123")
        .await;
    let ch = create_channel(
        &alice,
        "webhook",
        json!({"url": "https://example.org/a"}),
        &["host.up"],
    )
    .await;
    let id = ch["id"].as_str().unwrap();
    let r = bob
        .post("/v1/api-keys")
        .json(json!({"name": "bob"}))
        .send()
        .await;
    let bob_key = r.json()["key"].as_str().unwrap().to_string();
    for use_key in [false, true] {
        let key = use_key.then_some(bob_key.as_str());
        let with = |req| with_key(req, key);
        let anon = server.client();
        let who = if use_key { &anon } else { &bob };
        with(who.get(&format!("/v1/channels/{id}")))
            .send()
            .await
            .assert_error(404, "not_found");
        with(
            who.patch(&format!("/v1/channels/{id}"))
                .json(json!({"name": "mine"})),
        )
        .send()
        .await
        .assert_error(404, "not_found");
        with(
            who.request(reqwest::Method::PUT, &format!("/v1/channels/{id}/config"))
                .json(json!({"config": {"url": "https://evil.example/"}})),
        )
        .send()
        .await
        .assert_error(404, "not_found");
        with(who.get(&format!("/v1/channels/{id}/deliveries")))
            .send()
            .await
            .assert_error(404, "not_found");
        with(who.delete(&format!("/v1/channels/{id}")))
            .send()
            .await
            .assert_error(404, "not_found");
        let list = with(who.get("/v1/channels")).send().await;
        assert_eq!(list.json(), json!([]), "{}", list.text);
    }
    let still = alice.get(&format!("/v1/channels/{id}")).send().await.json();
    assert_eq!(still["name"], "webhook test");
    assert_eq!(still["config"]["url_host"], "example.org");
}

#[tokio::test]
async fn entries_left_pending_by_a_dead_control_plane_are_delivered_by_a_live_one() {
    let mut server = start().await;
    let client = server
        .signed_in("failover@example.com", "Failover", "password-123")
        .await;
    let team = team_of(&client).await;
    let rx = Receiver::start().await;
    create_channel(
        &client,
        "webhook",
        json!({"url": rx.url}),
        &["capsule.destroy"],
    )
    .await;
    let first = server.config.clone();
    // No control plane consumes now.
    server.shutdown().await;

    // A control plane that read 20 entries and was killed before acking them: a consumer of
    // the group that takes them and never comes back.
    let redis_client = redis::Client::open(first.redis_url.as_str()).unwrap();
    let mut redis = redis::aio::ConnectionManager::new(redis_client)
        .await
        .unwrap();
    let mut published = Vec::new();
    for _ in 0..20 {
        let e = Event::new(
            "capsule.destroy",
            team,
            Actor::system(),
            Resource::sandbox(Uuid::new_v4()),
        )
        .outcome(Outcome::Success);
        cpserver::events::publish(&mut redis, &e).await.unwrap();
        published.push(e.resource.id.clone());
    }
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("wrenn-channels-v1")
        .arg("killed-control-plane")
        .arg("COUNT")
        .arg(100)
        .arg("STREAMS")
        .arg("wrenn:events")
        .arg(">")
        .query_async(&mut redis)
        .await
        .unwrap();
    let held = pending(&mut redis, "wrenn-channels-v1").await;
    assert_eq!(held, 20, "the dead consumer holds every entry");
    assert!(rx.got().is_empty());

    // A second control plane on the same database and Redis claims and delivers them.
    let second =
        TestServer::start_with(Builder::new().without_inventory(), |c| share(c, &first)).await;
    rx.wait_for(20, 15).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut got: Vec<String> = rx
        .got()
        .iter()
        .map(|r| r.json()["resource"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got.len(), 20, "each event once: {got:?}");
    got.sort();
    published.sort();
    assert_eq!(got, published);
    let left = pending(&mut redis, "wrenn-channels-v1").await;
    assert_eq!(left, 0, "nothing left pending");
    drop(second);
}

fn with_key<'a>(
    req: cpserver::test_support::client::TestRequest<'a>,
    key: Option<&str>,
) -> cpserver::test_support::client::TestRequest<'a> {
    match key {
        Some(k) => req.api_key(k),
        None => req,
    }
}

#[tokio::test]
async fn a_control_plane_killed_mid_delivery_leaves_the_event_to_the_next_one() {
    let mut setup = start().await;
    let client = setup
        .signed_in("killed@example.com", "Killed", "password-123")
        .await;
    let team = team_of(&client).await;
    let rx = Receiver::start().await;
    rx.answer(&[cpserver::test_support::receiver::HANG]);
    let ch = create_channel(
        &client,
        "webhook",
        json!({"url": rx.url}),
        &["capsule.create"],
    )
    .await;
    let config = setup.config.clone();
    setup.shutdown().await;

    // A real wrenn-cp process consumes the stream, and is killed (SIGKILL, by its PID) while
    // its delivery of the event hangs on the receiver.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mail = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wrenn-cp"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .env("DATABASE_URL", &config.database_url)
        .env("REDIS_URL", &config.redis_url)
        .env("JWT_SECRET", &config.jwt_secret)
        .env("WRENN_ENCRYPTION_KEY", &config.encryption_key)
        .env("WRENN_CP_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("WRENN_MAIL_DIR", mail.path())
        .env("WRENN_CHANNELS_ALLOW_INTERNAL", "1")
        .env("WRENN_EVENTS_CLAIM_IDLE_MS", "1000")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("wrenn-cp starts");
    let health = format!("http://127.0.0.1:{port}/health");
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(&health)
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "wrenn-cp never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let redis_client = redis::Client::open(config.redis_url.as_str()).unwrap();
    let mut redis = redis::aio::ConnectionManager::new(redis_client)
        .await
        .unwrap();
    let e = Event::new(
        "capsule.create",
        team,
        Actor::system(),
        Resource::sandbox(Uuid::new_v4()),
    )
    .outcome(Outcome::Success);
    cpserver::events::publish(&mut redis, &e).await.unwrap();
    let first = rx.wait_for(1, 15).await;
    assert_eq!(
        first.len(),
        1,
        "the killed control plane's attempt reached the receiver"
    );
    // Its attempt is in flight: the entry is pending to it.
    let held = pending(&mut redis, "wrenn-channels-v1").await;
    assert_eq!(held, 1);
    child.kill().unwrap();
    child.wait().unwrap();

    // The next control plane claims the entry the dead one left pending and delivers it.
    let next =
        TestServer::start_with(Builder::new().without_inventory(), |c| share(c, &config)).await;
    let got = rx.wait_for(2, 20).await;
    assert_eq!(got.len(), 2, "redelivered after the kill: {got:?}");
    assert_eq!(got[1].json()["resource"]["id"], e.resource.id.as_str());
    assert_eq!(got[0].body, got[1].body);
    assert_ne!(
        got[0].header("x-wrenn-delivery"),
        got[1].header("x-wrenn-delivery")
    );
    let id = ch["id"].as_str().unwrap();
    // Sessions live in the shared database: the same cookies work on the next control plane.
    let same = next.client();
    for name in ["wrenn_sid", "wrenn_csrf"] {
        same.set_cookie(name, &client.cookie(name).unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = same
            .get(&format!("/v1/channels/{id}/deliveries"))
            .send()
            .await;
        let held = pending(&mut redis, "wrenn-channels-v1").await;
        if held == 0 && rows.text.contains("delivered") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {} pending, {}",
            held,
            rows.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A hook that fails the first time it sees each delivery, and records side effects once.
#[derive(Default)]
struct FlakyHook {
    calls: Mutex<Vec<(String, String)>>,
    effects: Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl SandboxEventHook for FlakyHook {
    async fn on_sandbox_event(
        &self,
        _ctx: &ServerContext,
        e: &SandboxEvent,
    ) -> Result<(), HookError> {
        let first = {
            let mut calls = self.calls.lock().unwrap();
            let first = !calls.iter().any(|(id, _)| id == &e.delivery_id);
            calls.push((e.delivery_id.clone(), e.event.clone()));
            first
        };
        if first {
            return Err(HookError::new("billing backend briefly down"));
        }
        let mut effects = self.effects.lock().unwrap();
        if !effects.contains(&e.delivery_id) {
            effects.push(e.delivery_id.clone());
        }
        Ok(())
    }
}

struct HookExt(Arc<FlakyHook>);

impl Extension for HookExt {
    fn name(&self) -> &str {
        "billing"
    }
    fn sandbox_event_hook(&self) -> Option<Arc<dyn SandboxEventHook>> {
        Some(self.0.clone())
    }
}

#[tokio::test]
async fn a_failing_hook_is_called_again_with_the_same_delivery_id() {
    capture_logs();
    let hook = Arc::new(FlakyHook::default());
    let server = TestServer::start_with(
        Builder::new()
            .without_inventory()
            .extension(HookExt(hook.clone())),
        |_| {},
    )
    .await;
    let team = Uuid::new_v4();
    publish(&server, team, "capsule.create", Some(Outcome::Success)).await;
    publish(&server, team, "capsule.pause", Some(Outcome::Error)).await; // errors are not hooked
    publish(
        &server,
        team,
        "template.snapshot.create",
        Some(Outcome::Success),
    )
    .await;
    publish(&server, team, "capsule.destroy", Some(Outcome::Success)).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while hook.effects.lock().unwrap().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let calls = hook.calls.lock().unwrap().clone();
    let effects = hook.effects.lock().unwrap().clone();
    assert_eq!(effects.len(), 2, "one side effect per event: {calls:?}");
    assert_eq!(
        calls.len(),
        4,
        "each event twice (fail, then succeed): {calls:?}"
    );
    let events: Vec<&str> = calls.iter().map(|(_, e)| e.as_str()).collect();
    assert_eq!(events.iter().filter(|e| **e == "capsule.create").count(), 2);
    assert_eq!(
        events.iter().filter(|e| **e == "capsule.destroy").count(),
        2
    );
    for id in &effects {
        assert_eq!(
            calls.iter().filter(|(d, _)| d == id).count(),
            2,
            "same delivery_id redelivered"
        );
    }
    // The hook's group is its own and drained.
    let mut redis = server.ctx().redis();
    let left = pending(&mut redis, "wrenn-hook-billing").await;
    assert_eq!(left, 0);
    // The transient state event never entered the stream.
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("wrenn:events")
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(entries
        .iter()
        .all(|(_, f)| !f[0].1.contains("capsule.state.changed")));
}

#[tokio::test]
async fn several_control_planes_share_the_group_and_deliver_each_event_once() {
    let server = start().await;
    let client = server
        .signed_in("many@example.com", "Many", "password-123")
        .await;
    let team = team_of(&client).await;
    let rx = Receiver::start().await;
    create_channel(&client, "webhook", json!({"url": rx.url}), &["host.up"]).await;
    let second = TestServer::start_with(Builder::new().without_inventory(), |c| {
        share(c, &server.config)
    })
    .await;
    for _ in 0..200 {
        publish(&second, team, "host.up", None).await;
    }
    rx.wait_for(200, 20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = rx.got();
    let mut ids: Vec<String> = got
        .iter()
        .map(|r| r.json()["resource"]["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 200);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "each event exactly once");
}
