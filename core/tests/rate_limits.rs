//! Abuse limits (login, signup, password reset, API-key creation) against a real server,
//! PostgreSQL and Redis: over a limit the answer is 429 `rate_limited` with `Retry-After`,
//! nothing changes, and the window's end lets requests through again.

use cpserver::ratelimit::RateLimits;
use cpserver::test_support::{TestResponse, TestServer};
use serde_json::json;
use std::time::Duration;

const PW: &str = "correct horse battery";

fn limits(window_secs: u64) -> RateLimits {
    RateLimits {
        window_secs,
        login_per_ip: 8,
        login_failures_per_account: 3,
        signup_per_ip: 4,
        reset_per_ip: 6,
        reset_per_email: 2,
        api_keys_per_user: 2,
    }
}

async fn server(window_secs: u64) -> TestServer {
    server_with(limits(window_secs)).await
}

async fn server_with(limits: RateLimits) -> TestServer {
    TestServer::start_with(cpserver::server::Builder::new().without_inventory(), |c| {
        c.rate_limits = limits
    })
    .await
}

/// A 429 with the envelope and a `Retry-After` within the window.
fn assert_limited(r: &TestResponse, window_secs: u64) {
    r.assert_error(429, "rate_limited");
    let after: u64 = r
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After: {:?}", r.headers));
    assert!((1..=window_secs).contains(&after), "Retry-After {after}");
}

#[tokio::test]
async fn failed_logins_lock_the_account_not_the_ip_and_the_window_reopens() {
    // Per-IP attempts out of the way: this test is about accounts.
    let server = server_with(RateLimits {
        login_per_ip: 1000,
        ..limits(3)
    })
    .await;
    let _ada = server.signed_in("ada@example.com", "Ada", PW).await;
    let _bob = server.signed_in("bob@example.com", "Bob", PW).await;
    let login = |email: &str, password: &str| {
        let client = server.client();
        let body = json!({"email": email, "password": password});
        async move { client.post("/v1/auth/login").json(body).send().await }
    };
    for _ in 0..3 {
        login("ada@example.com", "wrong password")
            .await
            .assert_error(401, "invalid_credentials");
    }
    // Ada's failures are used up: even the right password waits, and says how long.
    let r = login("ADA@example.com", PW).await;
    assert_limited(&r, 3);
    // Bob, from the same address, is not affected.
    assert_eq!(login("bob@example.com", PW).await.status, 200);
    // Unknown emails count like known ones (the answers do not tell them apart).
    for _ in 0..3 {
        login("nobody@example.com", "x")
            .await
            .assert_error(401, "invalid_credentials");
    }
    assert_limited(&login("nobody@example.com", "x").await, 3);

    // After the window Ada may log in, which clears her failures.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(login("ada@example.com", PW).await.status, 200);
    login("ada@example.com", "wrong password")
        .await
        .assert_error(401, "invalid_credentials");
    assert_eq!(login("ada@example.com", PW).await.status, 200);
}

#[tokio::test]
async fn login_attempts_per_ip_are_bounded() {
    let server = server(60).await;
    let _ada = server.signed_in("ada@example.com", "Ada", PW).await;
    let client = server.client();
    let mut codes = Vec::new();
    for _ in 0..9 {
        let r = client
            .post("/v1/auth/login")
            .json(json!({"email": "ada@example.com", "password": PW}))
            .send()
            .await;
        codes.push(r.status);
        if r.status == 429 {
            assert_limited(&r, 60);
        }
    }
    assert_eq!(codes, [200, 200, 200, 200, 200, 200, 200, 200, 429]);
}

#[tokio::test]
async fn signups_per_ip_are_bounded_and_a_refused_one_creates_nothing() {
    let server = server(60).await;
    let client = server.client();
    let signup = |n: usize| {
        client
            .post("/v1/auth/signup")
            .json(json!({"email": format!("user{n}@example.com"), "password": PW, "name": "U"}))
            .send()
    };
    for n in 0..4 {
        assert_eq!(signup(n).await.status, 201);
    }
    assert_limited(&signup(4).await, 60);
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email LIKE 'user%'")
        .fetch_one(server.ctx().db())
        .await
        .unwrap();
    assert_eq!(users, 4);
    assert!(server.mails_to("user4@example.com").is_empty());
    // Bad input is answered as bad input, not counted against anyone's limit first.
    client
        .post("/v1/auth/signup")
        .json(json!({"email": "not-an-email", "password": PW, "name": "U"}))
        .send()
        .await
        .assert_error(400, "invalid_email");
}

#[tokio::test]
async fn reset_requests_are_bounded_per_email_and_per_ip() {
    let server = server(60).await;
    let _ada = server.signed_in("ada@example.com", "Ada", PW).await;
    let client = server.client();
    let reset = |email: &str| {
        client
            .post("/v1/me/password/reset")
            .json(json!({"email": email}))
            .send()
    };
    assert_eq!(reset("ada@example.com").await.status, 204);
    assert_eq!(reset("ada@example.com").await.status, 204);
    assert_limited(&reset("ada@example.com").await, 60);
    // The refused request sent nothing: two mails arrive (besides the activation one).
    server.wait_for_mail("ada@example.com", 3).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(server.mails_to("ada@example.com").len(), 3);
    // Other addresses have their own count, until the IP's is used up (6 in all).
    assert_eq!(reset("x1@example.com").await.status, 204);
    assert_eq!(reset("x2@example.com").await.status, 204);
    assert_eq!(reset("x3@example.com").await.status, 204);
    assert_limited(&reset("x4@example.com").await, 60);
}

#[tokio::test]
async fn api_key_creation_is_bounded_per_user() {
    let server = server(60).await;
    let ada = server.signed_in("ada@example.com", "Ada", PW).await;
    let create = |name: &str| ada.post("/v1/api-keys").json(json!({"name": name})).send();
    assert_eq!(create("one").await.status, 201);
    assert_eq!(create("two").await.status, 201);
    assert_limited(&create("three").await, 60);
    let keys = ada.get("/v1/api-keys").send().await.json();
    assert_eq!(keys.as_array().map(Vec::len), Some(2), "{keys}");
    // Another user of the same server is not affected.
    let bob = server.signed_in("bob@example.com", "Bob", PW).await;
    assert_eq!(
        bob.post("/v1/api-keys")
            .json(json!({"name": "b"}))
            .send()
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn the_limits_are_in_the_openapi_document() {
    let server = server(60).await;
    let doc = server.client().get("/openapi.json").send().await.json();
    for (path, method) in [
        ("/v1/auth/login", "post"),
        ("/v1/auth/signup", "post"),
        ("/v1/me/password/reset", "post"),
        ("/v1/api-keys", "post"),
    ] {
        assert!(
            doc["paths"][path][method]["responses"]["429"].is_object(),
            "{path} documents no 429"
        );
    }
}
