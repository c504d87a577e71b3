//! The example binary itself: it embeds the control plane with version `cloud-1.0.0` and the
//! cloud extension's routes.

use cpserver::test_support::{RedisServer, TestDatabase};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn example_binary_serves_core_and_extension_routes() {
    let db = TestDatabase::create().await;
    let redis = RedisServer::start().await;
    let mail = tempfile_dir();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wrenn-example-cloud"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(&mail)
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", redis.url())
        .env("JWT_SECRET", "y".repeat(40))
        .env("WRENN_ENCRYPTION_KEY", "cd".repeat(32))
        .env("WRENN_CP_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("WRENN_MAIL_DIR", &mail)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let health = loop {
        if let Ok(r) = reqwest_get(&format!("{base}/health")).await {
            break r;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("example did not come up");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let plan = reqwest_get(&format!("{base}/v1/cloud/plan")).await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&mail);
    assert_eq!(health["version"], "cloud-1.0.0");
    assert_eq!(plan.unwrap()["error"]["code"], "unauthorized", "the extension route is mounted");
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wrenn-cloud-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A tiny HTTP GET over a raw socket, to keep the example's dependencies minimal.
async fn reqwest_get(url: &str) -> Result<serde_json::Value, std::io::Error> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    serde_json::from_str(body).map_err(std::io::Error::other)
}
