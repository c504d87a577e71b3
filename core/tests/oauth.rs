//! GitHub OAuth signup, login, linking and unlinking against the loopback stand-in.

use cpserver::test_support::github::GithubUser;
use cpserver::test_support::{GithubStandin, TestClient, TestResponse, TestServer};
use cpserver::Builder;
use serde_json::json;

const PW: &str = "correct horse battery";

async fn start() -> (TestServer, GithubStandin) {
    let github = GithubStandin::start().await;
    let server =
        TestServer::start_with(Builder::new().without_inventory(), |c| github.configure(c)).await;
    (server, github)
}

fn octocat() -> GithubUser {
    GithubUser {
        id: 583231,
        login: "octocat".into(),
        name: "The Octocat".into(),
        email: "octocat@example.com".into(),
        verified: true,
    }
}

/// Follows the browser's redirects: start → stand-in authorize → callback. Returns the
/// callback's response (a redirect to the dashboard).
async fn run_flow(client: &TestClient, start_path: &str) -> TestResponse {
    let start = client.get(start_path).send().await;
    assert_eq!(start.status, 303, "{}", start.text);
    assert!(client.cookie("wrenn_oauth_state").is_some());
    let authorize = client.get(&start.location().unwrap()).send().await;
    assert_eq!(authorize.status, 303, "{}", authorize.text);
    let callback = authorize.location().unwrap();
    assert!(callback.starts_with(&client.base), "{callback}");
    client.get(&callback).send().await
}

#[tokio::test]
async fn oauth_signup_then_login() {
    let (server, github) = start().await;
    github.sign_in_as(octocat());
    let c = server.client();

    // Login intent never registers.
    let r = run_flow(&c, "/v1/auth/oauth/github?intent=login").await;
    assert_eq!(
        r.location().unwrap(),
        format!("{}/login?error=no_account", server.base)
    );
    assert!(c.cookie("wrenn_sid").is_none());

    let r = run_flow(&c, "/v1/auth/oauth/github?intent=signup").await;
    assert_eq!(r.location().unwrap(), format!("{}/dashboard", server.base));
    assert!(c.cookie("wrenn_sid").is_some() && c.cookie("wrenn_oauth_state").is_none());
    let me = c.get("/v1/me").send().await.json();
    assert_eq!(me["email"], "octocat@example.com");
    assert_eq!(me["name"], "The Octocat");
    assert_eq!(me["has_password"], false);
    assert_eq!(me["providers"], json!(["github"]));
    assert_eq!(
        c.get("/v1/teams").send().await.json()[0]["name"],
        "The Octocat's Team"
    );

    // A second signup with the same GitHub account just logs in; so does login intent.
    let again = server.client();
    let r = run_flow(&again, "/v1/auth/oauth/github?intent=login").await;
    assert_eq!(r.location().unwrap(), format!("{}/dashboard", server.base));
    assert_eq!(again.get("/v1/me").send().await.json()["id"], me["id"]);
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
        .fetch_one(server.ctx().db())
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn oauth_state_is_bound_to_the_browser() {
    let (server, github) = start().await;
    github.sign_in_as(octocat());
    let victim = server.client();
    let attacker = server.client();
    let start = attacker
        .get("/v1/auth/oauth/github?intent=signup")
        .send()
        .await;
    let authorize = attacker.get(&start.location().unwrap()).send().await;
    // The victim's browser lands on the attacker's callback URL without the state cookie.
    let r = victim.get(&authorize.location().unwrap()).send().await;
    assert_eq!(
        r.location().unwrap(),
        format!("{}/login?error=invalid_state", server.base)
    );
    assert!(victim.cookie("wrenn_sid").is_none());
    // A tampered cookie fails too.
    let cookie = attacker.cookie("wrenn_oauth_state").unwrap();
    attacker.set_cookie("wrenn_oauth_state", &format!("{cookie}00"));
    let r = attacker.get(&authorize.location().unwrap()).send().await;
    assert_eq!(
        r.location().unwrap(),
        format!("{}/login?error=invalid_state", server.base)
    );
    // Unknown provider and bad intent are API errors.
    server
        .client()
        .get("/v1/auth/oauth/gitlab")
        .send()
        .await
        .assert_error(404, "unknown_provider");
    server
        .client()
        .get("/v1/auth/oauth/github?intent=steal")
        .send()
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn oauth_link_unlink_and_last_login_method() {
    let (server, github) = start().await;
    let c = server.signed_in("linker@example.com", "Linker", PW).await;
    github.sign_in_as(GithubUser {
        id: 42,
        login: "linker".into(),
        name: "Linker".into(),
        email: "linker-gh@example.com".into(),
        verified: true,
    });
    let r = run_flow(&c, "/v1/me/providers/github/connect").await;
    assert_eq!(
        r.location().unwrap(),
        format!("{}/settings?connected=github", server.base)
    );
    assert_eq!(
        c.get("/v1/me").send().await.json()["providers"],
        json!(["github"])
    );

    // Now GitHub logs this user in.
    let other = server.client();
    let r = run_flow(&other, "/v1/auth/oauth/github?intent=login").await;
    assert_eq!(r.location().unwrap(), format!("{}/dashboard", server.base));
    assert_eq!(
        other.get("/v1/me").send().await.json()["email"],
        "linker@example.com"
    );

    // Unlink works while a password remains.
    assert_eq!(c.delete("/v1/me/providers/github").send().await.status, 204);
    c.delete("/v1/me/providers/github")
        .send()
        .await
        .assert_error(404, "not_found");
    assert_eq!(c.get("/v1/me").send().await.json()["providers"], json!([]));

    // A GitHub-only account cannot drop its only login method.
    github.sign_in_as(octocat());
    let gh_only = server.client();
    run_flow(&gh_only, "/v1/auth/oauth/github?intent=signup").await;
    gh_only
        .delete("/v1/me/providers/github")
        .send()
        .await
        .assert_error(400, "last_login_method");

    // A GitHub identity linked to one user cannot be linked to another.
    let r = run_flow(&c, "/v1/me/providers/github/connect").await;
    assert_eq!(
        r.location().unwrap(),
        format!("{}/login?error=provider_already_linked", server.base)
    );
}

#[tokio::test]
async fn oauth_signup_refuses_an_existing_email_and_unverified_email() {
    let (server, github) = start().await;
    server
        .signed_in("octocat@example.com", "Password user", PW)
        .await;
    github.sign_in_as(octocat());
    let c = server.client();
    let r = run_flow(&c, "/v1/auth/oauth/github?intent=signup").await;
    assert_eq!(
        r.location().unwrap(),
        format!("{}/login?error=email_taken", server.base)
    );
    github.sign_in_as(GithubUser {
        id: 7,
        login: "unverified".into(),
        name: "U".into(),
        email: "unverified@example.com".into(),
        verified: false,
    });
    // Only the verified no-reply address is usable, so the account gets that one.
    let r = run_flow(&c, "/v1/auth/oauth/github?intent=signup").await;
    assert_eq!(r.location().unwrap(), format!("{}/dashboard", server.base));
    assert_eq!(
        c.get("/v1/me").send().await.json()["email"],
        "unverified@users.noreply.example"
    );
}
