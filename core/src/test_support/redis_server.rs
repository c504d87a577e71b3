//! A throw-away `redis-server` child on a free loopback port, killed on drop.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct RedisServer {
    pub port: u16,
    child: Child,
}

impl RedisServer {
    /// Starts `redis-server` (or `$WRENN_TEST_REDIS_SERVER`) without persistence and waits
    /// until it answers PING.
    pub async fn start() -> Self {
        let binary =
            std::env::var("WRENN_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let child = Command::new(&binary)
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("tests need {binary} (package redis-server): {e}"));
            let mut server = Self { port, child };
            if server.wait_ready().await {
                return server;
            }
            // Port raced with another process: kill (by our own PID) and retry.
            let _ = server.child.kill();
        }
        panic!("redis-server did not start");
    }

    async fn wait_ready(&mut self) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await {
                let pong: redis::RedisResult<String> =
                    redis::cmd("PING").query_async(&mut conn).await;
                if pong.is_ok() {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
