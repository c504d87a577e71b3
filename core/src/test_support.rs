//! Test harness: a real control plane on 127.0.0.1:0 with a fresh, uniquely named PostgreSQL
//! database (dropped afterwards) and a throw-away `redis-server` child on a free port, plus a
//! cookie-jar HTTP client and the mail sink reader. Used by this crate's tests and by
//! embedders' tests (e.g. `examples/cloud-distro`).
//!
//! PostgreSQL: `WRENN_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! must allow `CREATE DATABASE`. Redis: the `redis-server` binary on `PATH`
//! (or `WRENN_TEST_REDIS_SERVER`).

pub mod client;
pub mod github;
pub mod receiver;
pub mod redis_server;
pub mod stack;

pub use client::{TestClient, TestResponse};
pub use github::GithubStandin;
pub use redis_server::RedisServer;

use crate::config::{Config, GithubConfig, SmtpConfig};
use crate::server::{Builder, RunningServer};
use sqlx::Connection;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Base URL of the PostgreSQL server tests create their databases in.
pub fn admin_database_url() -> String {
    std::env::var("WRENN_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// The same server, another database name.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let base = match base.rfind('/') {
        Some(i) if base[..i].contains("://") && i > base.find("://").unwrap_or(0) + 2 => &base[..i],
        _ => base,
    };
    format!("{base}/{name}{query}")
}

/// A fresh database, dropped (with FORCE) when this value is dropped.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    admin_url: String,
}

impl TestDatabase {
    pub async fn create() -> Self {
        let admin_url = admin_database_url();
        let name = format!("wrenn_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| {
                panic!("tests need PostgreSQL at {admin_url} (set WRENN_TEST_DATABASE_URL): {e}")
            });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        let _ = conn.close().await;
        Self {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = self.admin_url.clone();
        let name = self.name.clone();
        // Drop may run inside a runtime: do the async work on a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

/// A configuration for tests: loopback, fresh secrets, mail to `mail_dir`, fast hashing.
pub fn test_config(
    database_url: &str,
    redis_url: &str,
    public_url: &str,
    mail_dir: &Path,
) -> Config {
    Config {
        database_url: database_url.to_string(),
        redis_url: redis_url.to_string(),
        listen_addr: "127.0.0.1:0".into(),
        jwt_secret: crate::sessions::random_token(),
        encryption_key: crate::sessions::random_token(),
        public_url: public_url.to_string(),
        domain: "wrenn.test".into(),
        smtp: SmtpConfig {
            host: None,
            port: 587,
            username: None,
            password: None,
            from: "Wrenn <no-reply@wrenn.test>".into(),
        },
        mail_dir: mail_dir.to_path_buf(),
        github: GithubConfig {
            client_id: None,
            client_secret: None,
            authorize_url: "http://127.0.0.1:9/authorize".into(),
            token_url: "http://127.0.0.1:9/token".into(),
            api_url: "http://127.0.0.1:9".into(),
        },
        events: crate::config::EventsConfig {
            claim_idle_ms: 1_000,
            channel_retry_delays: "0.2,0.6".into(),
            channel_timeout_ms: 3_000,
            channel_allow_internal: true,
            ..Default::default()
        },
        formatters: crate::config::FormattersConfig {
            dir: None,
            poll_ms: 200,
            fuel: 200_000_000,
            deadline_ms: 100,
            memory_mb: 32,
        },
        capsules: crate::capsules::settings::CapsuleSettings::default(),
        builds: crate::builds::BuildSettings::default(),
        hosts: crate::hosts::HostsArgs::default(),
        rate_limits: crate::ratelimit::RateLimits::generous(),
        web_dir: None,
        metrics_token: None,
        shutdown_drain_secs: 10,
        purge_interval_secs: 3600,
        insecure_test_password_hashing: true,
    }
}

/// A running control plane with its own database, Redis and mail directory.
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub server: Option<RunningServer>,
    pub config: Config,
    pub redis: RedisServer,
    mail_dir: tempfile::TempDir,
    // Declared last: dropped after the server and Redis.
    _db: TestDatabase,
}

impl TestServer {
    /// Core only (no extensions from `inventory`).
    pub async fn start() -> Self {
        Self::start_with(Builder::new().without_inventory(), |_| {}).await
    }

    /// Starts `builder` with the test configuration, after `tweak` adjusts it.
    pub async fn start_with(builder: Builder, tweak: impl FnOnce(&mut Config)) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("WRENN_TEST_LOG")
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let db = TestDatabase::create().await;
        let redis = RedisServer::start().await;
        let mail_dir = tempfile::tempdir().expect("temp dir");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let mut config = test_config(&db.url, &redis.url(), &base, mail_dir.path());
        tweak(&mut config);
        let server = builder
            .config(config.clone())
            .listener(listener)
            .start()
            .await
            .unwrap_or_else(|e| panic!("control plane failed to start: {e}"));
        Self {
            base,
            server: Some(server),
            config,
            redis,
            mail_dir,
            _db: db,
        }
    }

    pub fn ctx(&self) -> &wrenn_extension_api::ServerContext {
        self.server.as_ref().expect("server running").ctx()
    }

    /// A new client with an empty cookie jar.
    /// Core's typed services.
    pub fn app(&self) -> &crate::App {
        &self.server.as_ref().expect("server running").app
    }

    pub fn client(&self) -> TestClient {
        TestClient::new(&self.base)
    }

    pub fn mail_dir(&self) -> PathBuf {
        self.mail_dir.path().to_path_buf()
    }

    /// Every sink mail addressed to `to`, oldest first.
    pub fn mails_to(&self, to: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.mail_dir.path()) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .filter(|m| m.lines().next() == Some(&format!("To: {to}")))
            .collect()
    }

    /// Waits (up to 5 s) for the `n`-th mail (1-based) to `to` and returns it.
    pub async fn wait_for_mail(&self, to: &str, n: usize) -> String {
        for _ in 0..100 {
            let mails = self.mails_to(to);
            if mails.len() >= n {
                return mails[n - 1].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no mail #{n} to {to} in {}", self.mail_dir.path().display());
    }

    /// Signs up, activates through the mailed link and returns a signed-in client.
    pub async fn signed_in(&self, email: &str, name: &str, password: &str) -> TestClient {
        let client = self.client();
        let r = client
            .post("/v1/auth/signup")
            .json(serde_json::json!({"email": email, "password": password, "name": name}))
            .send()
            .await;
        assert_eq!(r.status, 201, "signup: {}", r.text);
        let before = self.mails_to(email).len();
        let mail = self.wait_for_mail(email, before.max(1)).await;
        let token = token_in(&mail).expect("activation token in mail");
        let r = client
            .post("/v1/auth/activate")
            .json(serde_json::json!({"token": token}))
            .send()
            .await;
        assert_eq!(r.status, 200, "activate: {}", r.text);
        client
    }

    /// Stops the server gracefully (workers see their cancellation token).
    pub async fn shutdown(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            server.shutdown_token().cancel();
        }
    }
}

/// The 64-hex token of a `...token=<hex>` link in a mail.
pub fn token_in(mail: &str) -> Option<String> {
    let start = mail.find("token=")? + "token=".len();
    let token: String = mail[start..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    (token.len() == 64).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_swaps_the_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
