//! The `wrenn-cp` binary: refuses to start without secrets (listing every problem), migrates,
//! serves and shuts down cleanly on SIGTERM.

use cpserver::test_support::{RedisServer, TestDatabase};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn wrenn_cp() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wrenn-cp"));
    // Start from a clean slate: no inherited configuration, no .env from the cwd.
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir());
    cmd
}

#[tokio::test]
async fn refuses_to_start_without_secrets_and_lists_every_problem() {
    let out = wrenn_cp()
        .env("DATABASE_URL", "postgres://127.0.0.1:9/x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("JWT_SECRET") && stderr.contains("WRENN_ENCRYPTION_KEY"),
        "{stderr}"
    );
}

#[tokio::test]
async fn migrates_serves_and_stops_on_sigterm() {
    let db = TestDatabase::create().await;
    let redis = RedisServer::start().await;
    let mail = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let configure = |cmd: &mut Command| {
        cmd.env("DATABASE_URL", &db.url)
            .env("REDIS_URL", redis.url())
            .env("JWT_SECRET", "x".repeat(40))
            .env("WRENN_ENCRYPTION_KEY", "ab".repeat(32))
            .env("WRENN_CP_LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("WRENN_MAIL_DIR", mail.path());
    };
    let mut migrate = wrenn_cp();
    configure(&mut migrate);
    let out = migrate.arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Structured logs: every line on stdout is a JSON object.
    let log_path = mail.path().join("cp.log");
    let mut serve = wrenn_cp();
    configure(&mut serve);
    let e2b_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = serve
        .env("WRENN_LOG_FORMAT", "json")
        .env("WRENN_E2B_LISTEN", format!("127.0.0.1:{e2b_port}"))
        .stdout(std::fs::File::create(&log_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/health");
    let started = Instant::now();
    let health = loop {
        if let Ok(r) = reqwest::get(&url).await {
            break r.json::<serde_json::Value>().await.unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "server did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(health["status"], "ok");
    // The binary ships E2B compatibility: with WRENN_E2B_LISTEN set, E2B's API answers there
    // (a request without a key gets E2B's error body).
    let e2b = loop {
        match reqwest::get(format!("http://127.0.0.1:{e2b_port}/v2/sandboxes")).await {
            Ok(r) => break r,
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("the E2B listener did not come up: {e}"),
        }
    };
    assert_eq!(e2b.status(), 401);
    let body: serde_json::Value = e2b.json().await.unwrap();
    assert_eq!(body["code"], 401, "{body}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("wrenn-cp did not stop on SIGTERM");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(exit.success(), "graceful exit: {exit:?}");
    let logs = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "no log lines");
    for line in lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
}

#[test]
fn help_lists_every_setting_with_its_environment_variable() {
    let out = wrenn_cp().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "WRENN_CP_LISTEN_ADDR",
        "JWT_SECRET",
        "WRENN_ENCRYPTION_KEY",
        "WRENN_PUBLIC_URL",
        "WRENN_DOMAIN",
        "SMTP_HOST",
        "WRENN_MAIL_DIR",
        "OAUTH_GITHUB_CLIENT_ID",
        "OAUTH_GITHUB_API_URL",
        "migrate",
    ] {
        assert!(help.contains(var), "--help mentions {var}:\n{help}");
    }
}
