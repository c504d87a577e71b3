//! The extension framework inside the real server: ordering, duplicate names, routes with
//! guards, middleware, workers and AuthHook failure semantics.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use cpserver::test_support::github::GithubUser;
use cpserver::test_support::{test_config, token_in, GithubStandin, TestServer};
use cpserver::{Builder, StartError};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;
use wrenn_extension_api::{
    register_extension, AccountDeletion, AuthHook, BackgroundWorker, Extension, HookError,
    Middleware, NewAccount, RequireAdmin, RequireSession, RequireSessionOrApiKey, ServerContext,
};

const PW: &str = "correct horse battery";

struct Named(&'static str);
impl Extension for Named {
    fn name(&self) -> &str {
        self.0
    }
}

register_extension!("zeta", || Box::new(Named("zeta")));
register_extension!("alpha", || Box::new(Named("alpha")));

#[tokio::test]
async fn builder_extensions_come_first_then_inventory_sorted() {
    let server = TestServer::start_with(
        Builder::new()
            .extension(Named("mid"))
            .extension(Named("beta")),
        |_| {},
    )
    .await;
    let names = &server.server.as_ref().unwrap().extension_names;
    assert_eq!(names, &["mid", "beta", "alpha", "zeta"]);
}

#[tokio::test]
async fn duplicate_extension_names_stop_start_up() {
    let config = test_config(
        "postgres://127.0.0.1:9/none",
        "redis://127.0.0.1:9",
        "http://127.0.0.1:9",
        std::path::Path::new("/tmp"),
    );
    let err = Builder::new()
        .config(config)
        .extension(Named("alpha"))
        .start()
        .await
        .err()
        .expect("duplicate name refused");
    assert!(
        matches!(err, StartError::Extension(ref m) if m.contains("alpha")),
        "{err}"
    );
}

#[tokio::test]
async fn invalid_configuration_reports_every_problem() {
    let mut config = test_config(
        "",
        "redis://127.0.0.1:9",
        "ftp://x",
        std::path::Path::new("/tmp"),
    );
    config.jwt_secret = String::new();
    config.encryption_key = "abc".into();
    let err = Builder::new()
        .without_inventory()
        .config(config)
        .start()
        .await
        .err()
        .expect("refused");
    match err {
        StartError::Config(problems) => assert_eq!(problems.len(), 4, "{problems:?}"),
        other => panic!("{other}"),
    }
}

/// Records what ran.
#[derive(Default)]
struct Journal {
    logins: Mutex<Vec<Uuid>>,
    signups: Mutex<Vec<String>>,
    soft_deletes: Mutex<Vec<String>>,
    hard_deletes: Mutex<Vec<String>>,
    middleware_hits: AtomicUsize,
    worker_ticks: AtomicUsize,
    worker_stopped: AtomicUsize,
}

struct Probe {
    journal: Arc<Journal>,
    fail_signup_for: Option<String>,
}

struct ProbeHook(Arc<Journal>, Option<String>);

#[async_trait::async_trait]
impl AuthHook for ProbeHook {
    async fn on_signup(
        &self,
        _ctx: &ServerContext,
        conn: &mut sqlx::PgConnection,
        account: &NewAccount,
    ) -> Result<(), HookError> {
        // Write inside the signup transaction, so a later failure proves the rollback.
        sqlx::query("CREATE TABLE IF NOT EXISTS probe_signups (email TEXT)")
            .execute(&mut *conn)
            .await
            .map_err(|e| HookError::new(e.to_string()))?;
        sqlx::query("INSERT INTO probe_signups VALUES ($1)")
            .bind(&account.email)
            .execute(&mut *conn)
            .await
            .map_err(|e| HookError::new(e.to_string()))?;
        if self
            .1
            .as_deref()
            .is_some_and(|needle| account.email.contains(needle))
        {
            return Err(HookError::new("billing account could not be created"));
        }
        self.0
            .signups
            .lock()
            .unwrap()
            .push(format!("{}:{}", account.via, account.email));
        Ok(())
    }

    async fn on_login(&self, _ctx: &ServerContext, user_id: Uuid) -> Result<(), HookError> {
        self.0.logins.lock().unwrap().push(user_id);
        Err(HookError::new("login hook errors are only logged"))
    }

    async fn on_account_soft_delete(
        &self,
        _ctx: &ServerContext,
        account: &AccountDeletion,
    ) -> Result<(), HookError> {
        self.0
            .soft_deletes
            .lock()
            .unwrap()
            .push(account.email.clone());
        Err(HookError::new("ignored"))
    }

    async fn on_account_hard_delete(
        &self,
        _ctx: &ServerContext,
        account: &AccountDeletion,
    ) -> Result<(), HookError> {
        self.0
            .hard_deletes
            .lock()
            .unwrap()
            .push(account.email.clone());
        Err(HookError::new("ignored as well"))
    }
}

struct CountingMiddleware(Arc<Journal>);

#[async_trait::async_trait]
impl Middleware for CountingMiddleware {
    async fn handle(&self, _ctx: &ServerContext, request: Request, next: Next) -> Response {
        self.0.middleware_hits.fetch_add(1, Ordering::SeqCst);
        let mut response = next.run(request).await;
        response
            .headers_mut()
            .insert("x-probe", "1".parse().unwrap());
        response
    }
}

async fn whoami(
    State(ctx): State<ServerContext>,
    RequireSessionOrApiKey(p): RequireSessionOrApiKey,
) -> Json<serde_json::Value> {
    Json(
        json!({"team": p.team_id().to_string(), "user": p.user_id().map(|u| u.to_string()), "version": ctx.config().version}),
    )
}

async fn session_only(RequireSession(s): RequireSession) -> String {
    s.user_id.to_string()
}

async fn admin_only(RequireAdmin(s): RequireAdmin) -> String {
    s.user_id.to_string()
}

impl Extension for Probe {
    fn name(&self) -> &str {
        "probe"
    }

    fn register_routes(
        &self,
        router: Router<ServerContext>,
        _ctx: &ServerContext,
    ) -> Router<ServerContext> {
        router
            .route("/v1/probe/whoami", get(whoami))
            .route("/v1/probe/session", get(session_only).post(session_only))
            .route("/v1/probe/admin", get(admin_only))
    }

    fn background_workers(&self, _ctx: &ServerContext) -> Vec<BackgroundWorker> {
        let journal = self.journal.clone();
        vec![BackgroundWorker::new(
            "probe-ticker",
            move |token| async move {
                loop {
                    tokio::select! {
                        _ = token.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(10)) => {
                            journal.worker_ticks.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                journal.worker_stopped.fetch_add(1, Ordering::SeqCst);
            },
        )]
    }

    fn middleware(&self) -> Option<Arc<dyn Middleware>> {
        Some(Arc::new(CountingMiddleware(self.journal.clone())))
    }

    fn auth_hook(&self) -> Option<Arc<dyn AuthHook>> {
        Some(Arc::new(ProbeHook(
            self.journal.clone(),
            self.fail_signup_for.clone(),
        )))
    }
}

async fn probe_server(
    fail_for: Option<&str>,
    github: Option<&GithubStandin>,
) -> (TestServer, Arc<Journal>) {
    let journal = Arc::new(Journal::default());
    let ext = Probe {
        journal: journal.clone(),
        fail_signup_for: fail_for.map(str::to_string),
    };
    let server = TestServer::start_with(
        Builder::new()
            .without_inventory()
            .version("probe-9")
            .extension(ext),
        |c| {
            if let Some(g) = github {
                g.configure(c)
            }
        },
    )
    .await;
    (server, journal)
}

#[tokio::test]
async fn routes_guards_middleware_and_workers_run_in_the_server() {
    let (mut server, journal) = probe_server(None, None).await;
    let anon = server.client();
    anon.get("/v1/probe/whoami")
        .send()
        .await
        .assert_error(401, "unauthorized");
    let admin = server.signed_in("root@example.com", "Root", PW).await;
    let user = server.signed_in("user@example.com", "User", PW).await;

    let r = admin.get("/v1/probe/whoami").send().await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["version"], "probe-9");
    assert!(
        r.headers.get("x-probe").is_none(),
        "extension routes are not wrapped by middleware"
    );
    let key = admin.new_api_key("k").await;
    let r = anon.get("/v1/probe/whoami").api_key(&key).send().await;
    assert_eq!(r.json()["user"], serde_json::Value::Null);
    anon.get("/v1/probe/session")
        .api_key(&key)
        .send()
        .await
        .assert_error(403, "session_required");
    user.post("/v1/probe/session")
        .no_csrf()
        .send()
        .await
        .assert_error(403, "csrf_failed");
    assert_eq!(user.post("/v1/probe/session").send().await.status, 200);
    assert_eq!(admin.get("/v1/probe/admin").send().await.status, 200);
    user.get("/v1/probe/admin")
        .send()
        .await
        .assert_error(403, "admin_required");

    // Core routes are wrapped.
    let before = journal.middleware_hits.load(Ordering::SeqCst);
    let r = admin.get("/v1/me").send().await;
    assert_eq!(r.headers.get("x-probe").unwrap(), "1");
    assert!(journal.middleware_hits.load(Ordering::SeqCst) > before);
    assert_eq!(
        server.client().get("/health").send().await.json()["version"],
        "probe-9"
    );

    // The worker runs until shutdown cancels it.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(journal.worker_ticks.load(Ordering::SeqCst) > 0);
    server.shutdown().await;
    assert_eq!(journal.worker_stopped.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn auth_hooks_see_signup_login_and_deletion() {
    let (server, journal) = probe_server(None, None).await;
    let c = server.signed_in("hooked@example.com", "Hooked", PW).await;
    assert_eq!(
        journal.signups.lock().unwrap().as_slice(),
        ["email:hooked@example.com"]
    );
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM probe_signups")
        .fetch_one(server.ctx().db())
        .await
        .unwrap();
    assert_eq!(n, 1, "the hook's write committed with the account");
    // on_login fails, the login still succeeds.
    let r = server
        .client()
        .post("/v1/auth/login")
        .json(json!({"email": "hooked@example.com", "password": PW}))
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(journal.logins.lock().unwrap().len(), 1);
    // on_account_soft_delete fails, the deletion still stands.
    assert_eq!(
        c.delete("/v1/me")
            .json(json!({"confirmation": "hooked@example.com"}))
            .send()
            .await
            .status,
        204
    );
    assert_eq!(
        journal.soft_deletes.lock().unwrap().as_slice(),
        ["hooked@example.com"]
    );
    // The purge runs on_account_hard_delete; its error does not stop the purge.
    sqlx::query("UPDATE users SET deleted_at = now() - interval '15 days 1 minute'")
        .execute(server.ctx().db())
        .await
        .unwrap();
    let purged = cpserver::accounts::purge_deleted(server.app(), chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(purged, 1);
    assert_eq!(
        journal.hard_deletes.lock().unwrap().as_slice(),
        ["hooked@example.com"]
    );
}

#[tokio::test]
async fn on_signup_failure_aborts_signup() {
    let (server, journal) = probe_server(Some("doomed"), None).await;
    let c = server.client();
    let r = c
        .post("/v1/auth/signup")
        .json(json!({"email": "doomed@example.com", "password": PW, "name": "D"}))
        .send()
        .await;
    assert_eq!(r.status, 201);
    let token = token_in(&server.wait_for_mail("doomed@example.com", 1).await).unwrap();
    let r = c
        .post("/v1/auth/activate")
        .json(json!({"token": token}))
        .send()
        .await;
    r.assert_error(500, "signup_hook_failed");
    assert!(
        !r.text.contains("billing"),
        "the hook's message is not leaked: {}",
        r.text
    );
    assert!(c.cookie("wrenn_sid").is_none());
    let db = server.ctx().db();
    let (active, teams): (bool, i64) = sqlx::query_as(
        "SELECT u.is_active, (SELECT count(*) FROM users_teams ut WHERE ut.user_id = u.id) FROM users u WHERE email = 'doomed@example.com'",
    )
    .fetch_one(db)
    .await
    .unwrap();
    assert!(!active, "activation rolled back");
    assert_eq!(teams, 0, "no team provisioned");
    let (table,): (Option<String>,) = sqlx::query_as("SELECT to_regclass('probe_signups')::text")
        .fetch_one(db)
        .await
        .unwrap();
    assert_eq!(
        table, None,
        "the hook's own writes (even its CREATE TABLE) were rolled back"
    );
    c.post("/v1/auth/login")
        .json(json!({"email": "doomed@example.com", "password": PW}))
        .send()
        .await
        .assert_error(403, "account_not_activated");
    assert!(journal.signups.lock().unwrap().is_empty());
}

#[tokio::test]
async fn on_signup_failure_aborts_oauth_signup() {
    let github = GithubStandin::start().await;
    let (server, _journal) = probe_server(Some("doomed"), Some(&github)).await;
    github.sign_in_as(GithubUser {
        id: 9,
        login: "doomed".into(),
        name: "Doomed".into(),
        email: "doomed@example.com".into(),
        verified: true,
    });
    let c = server.client();
    let start = c.get("/v1/auth/oauth/github?intent=signup").send().await;
    let authorize = c.get(&start.location().unwrap()).send().await;
    let r = c.get(&authorize.location().unwrap()).send().await;
    assert_eq!(
        r.location().unwrap(),
        format!("{}/login?error=signup_hook_failed", server.base)
    );
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
        .fetch_one(server.ctx().db())
        .await
        .unwrap();
    assert_eq!(n, 0, "no account left behind");
}

/// An extension shipping `sql` as its migrations.
struct Shipping(Vec<wrenn_extension_api::Migration>);

impl Extension for Shipping {
    fn name(&self) -> &str {
        "ship-it"
    }
    fn migrations(&self) -> Vec<wrenn_extension_api::Migration> {
        self.0.clone()
    }
}

#[tokio::test]
async fn extension_migrations_run_once_in_order_in_their_schema_and_refuse_edits() {
    use wrenn_extension_api::Migration;
    let db = cpserver::test_support::TestDatabase::create().await;
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    cpserver::MIGRATOR.run(&pool).await.unwrap();
    // Given out of order: applied by version.
    let v2 = Migration::new(2, "column", "ALTER TABLE widgets ADD COLUMN size INT;");
    let v1 = Migration::new(1, "table", "CREATE TABLE widgets (id INT PRIMARY KEY);");
    let exts: Vec<Box<dyn Extension>> = vec![Box::new(Shipping(vec![v2.clone(), v1.clone()]))];
    cpserver::extensions::migrate(&pool, &exts).await.unwrap();
    // A second start applies nothing again.
    cpserver::extensions::migrate(&pool, &exts).await.unwrap();
    let (applied,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM extension_migrations WHERE extension = 'ship-it'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(applied, 2);
    let (schema,): (String,) = sqlx::query_as(
        "SELECT table_schema::text FROM information_schema.columns \
         WHERE table_name = 'widgets' AND column_name = 'size'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(schema, "ext_ship_it");

    // Editing an applied migration stops start-up and names it.
    let edited = Migration::new(1, "table", "CREATE TABLE widgets (id BIGINT PRIMARY KEY);");
    let exts: Vec<Box<dyn Extension>> = vec![Box::new(Shipping(vec![edited, v2.clone()]))];
    let err = cpserver::extensions::migrate(&pool, &exts)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("migration 1 of extension \"ship-it\""),
        "{err}"
    );

    // A failing migration rolls back alone and stops start-up; nothing of it remains.
    let broken = Migration::new(3, "broken", "CREATE TABLE gadgets (id INT); SELECT nope;");
    let exts: Vec<Box<dyn Extension>> = vec![Box::new(Shipping(vec![v1, v2, broken]))];
    assert!(cpserver::extensions::migrate(&pool, &exts).await.is_err());
    let (gadgets,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'gadgets'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(gadgets, 0);
    pool.close().await;
}
