//! The capsule end-to-end harness, shared by the capsule test suites and the benchmarks: the
//! control plane of [`crate::test_support::TestServer`]
//! (a throw-away PostgreSQL database and Redis server, on 127.0.0.1:0) and real `wrenn-agent`
//! processes (`--insecure-dev` on loopback) running gVisor capsules from the base images
//! ([`images_dir`]), each entered in the host registry as a development host. Everything is driven over HTTP and WebSocket.
//!
//! [`Stack::start`] returns `None` (after printing why) when the machine cannot run gVisor
//! capsules: not root, no `runsc`, or no base image (`make test` builds them first).

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PLATFORM: &str = "0000000000000000000000000";
pub const BUSYBOX: &str = "0000000000000000000000005";
pub const DOMAIN: &str = "wrenn.test";

/// A team's credentials.
#[derive(Debug, Clone)]
pub struct Account {
    pub email: String,
    pub api_key: String,
    pub sid: String,
    pub csrf: String,
}

/// One `wrenn-agent` process and its host entry.
pub struct Agent {
    pub host_id: uuid::Uuid,
    pub address: String,
    /// Where the agent serves its Prometheus metrics (`/metrics`).
    pub metrics_address: String,
    pub dir: PathBuf,
    pub log: PathBuf,
    /// `--warm-pool` (`none` unless the stack was started with pools).
    pub warm_pool: String,
    child: Option<Child>,
}

impl Agent {
    /// Starts an agent on a free loopback port with its own `WRENN_DIR` and waits until it
    /// listens.
    async fn spawn(
        dir: PathBuf,
        log: PathBuf,
        address: Option<String>,
        warm_pool: String,
    ) -> Agent {
        std::fs::create_dir_all(&dir).unwrap();
        let address = address.unwrap_or_else(|| format!("127.0.0.1:{}", free_port()));
        let metrics_address = format!("127.0.0.1:{}", free_port());
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(agent_binary())
            .args(["--insecure-dev", "--address", &address, "--wrenn-dir"])
            .arg(&dir)
            .arg("--images-dir")
            .arg(images_dir())
            .args(["--reaper-interval-ms", "200", "--heartbeat-secs", "2"])
            .args(["--metrics-listen", &metrics_address])
            .args(["--warm-pool", &warm_pool])
            .env("RUST_LOG", "info")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("starting wrenn-agent");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                Instant::now() < deadline,
                "the agent did not listen; log: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Agent {
            host_id: uuid::Uuid::nil(),
            address,
            metrics_address,
            dir,
            log,
            warm_pool,
            child: Some(child),
        }
    }

    /// The agent's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` (e.g. `-STOP`, `-CONT`) to the agent process.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("the agent runs");
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} {pid}");
    }

    /// SIGKILLs the agent (runsc sandboxes it started keep running, as after a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the agent again on the same address and directory (start-up recovery runs).
    pub async fn restart(&mut self) {
        self.kill();
        let again = Agent::spawn(
            self.dir.clone(),
            self.log.clone(),
            Some(self.address.clone()),
            self.warm_pool.clone(),
        )
        .await;
        self.child = again.child;
    }

    /// Container ids in the agent's runsc state root.
    pub fn runsc_containers(&self) -> Vec<String> {
        let out = Command::new("runsc")
            .arg(format!("--root={}", self.dir.join("runsc").display()))
            .args(["list", "--quiet"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        out.split_whitespace().map(str::to_string).collect()
    }

    fn stop(&mut self) {
        if let Some(child) = self.child.take() {
            stop_child(child);
        }
    }

    /// Deletes what runsc still runs for this agent (after a failed test).
    fn delete_containers(&self) {
        for id in self.runsc_containers() {
            let _ = Command::new("runsc")
                .arg(format!("--root={}", self.dir.join("runsc").display()))
                .args(["delete", "--force", &id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        // Networks and socket-dir mounts the agent made for capsules it never destroyed.
        let Ok(entries) = std::fs::read_dir(self.dir.join("sandboxes")) else {
            return;
        };
        for e in entries.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            let veth = std::fs::read(e.path().join("net.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v["veth"].as_str().map(str::to_owned));
            if let Some(veth) = veth {
                let _ = Command::new("nft")
                    .arg(format!(
                        "delete element inet wrenn capsules {{ \"{veth}\" }}"
                    ))
                    .output();
                let _ = Command::new("nft")
                    .args([
                        "delete",
                        "chain",
                        "inet",
                        "wrenn",
                        &format!("c{}", &veth[2..]),
                    ])
                    .output();
            }
            for ns in [format!("wrenn-{id}"), format!("wrenn-{id}-gw")] {
                let _ = Command::new("ip").args(["netns", "delete", &ns]).output();
            }
            let _ = Command::new("umount")
                .arg("-l")
                .arg(e.path().join("run"))
                .output();
        }
    }
}

/// SIGCONT (it may be stopped), SIGTERM, up to 10 s of grace, then SIGKILL.
fn stop_child(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-CONT", &child.id().to_string()])
        .status();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One running control plane + agent.
pub struct Stack {
    pub base: String,
    pub http: reqwest::Client,
    pub tmp: tempfile::TempDir,
    pub agent_dir: PathBuf,
    pub host_id: uuid::Uuid,
    /// The control plane with its own database, Redis and mail sink.
    server: crate::test_support::TestServer,
    /// The agents: the first is `agent_dir`/`host_id`; [`Stack::add_agent`] adds more.
    pub agents: Vec<Agent>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The base images: `WRENN_TEST_IMAGES`, else `$WRENN_DIR/images`, else
/// `/var/lib/wrenn/images` (what `scripts/images-ensure.sh` fills).
pub fn images_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("WRENN_TEST_IMAGES") {
        return PathBuf::from(dir);
    }
    let wrenn_dir = std::env::var("WRENN_DIR").unwrap_or_else(|_| "/var/lib/wrenn".into());
    Path::new(&wrenn_dir).join("images")
}

/// Why this machine cannot run the capsule tests, if it cannot.
pub fn skip_reason() -> Option<String> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Some("gVisor capsules need root".into());
    }
    if Command::new("runsc")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        return Some("runsc is not installed".into());
    }
    let rootfs = images_dir().join(format!("teams/{PLATFORM}/{BUSYBOX}/rootfs"));
    if !rootfs.is_dir() {
        return Some(format!(
            "base image {} is missing (run scripts/images-ensure.sh, as `make test` does)",
            rootfs.display()
        ));
    }
    if let Err(e) = refresh_envd(&rootfs) {
        return Some(e);
    }
    None
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// The static envd: `WRENN_ENVD`, `builds/envd` or the static release build.
fn envd_binary() -> Option<PathBuf> {
    let target =
        std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "/var/tmp/wrenn-target".into());
    [
        std::env::var("WRENN_ENVD").ok().map(PathBuf::from),
        Some(workspace().join("builds/envd")),
        Some(Path::new(&target).join("x86_64-unknown-linux-gnu/release/envd")),
        Some(PathBuf::from(
            "/var/tmp/wrenn-target/x86_64-unknown-linux-gnu/release/envd",
        )),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.is_file())
}

/// Whether the image already carries exactly this envd (contents, not modification times:
/// a fresh clone's `builds/envd` is always newer than the image's copy).
fn same_envd(image_envd: &Path, envd: &Path) -> bool {
    match (std::fs::read(image_envd), std::fs::read(envd)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Puts the current envd into the base images when the one inside differs (the images are
/// shared with other test suites: the re-injection holds the images' build lock).
fn refresh_envd(rootfs: &Path) -> Result<(), String> {
    let envd =
        envd_binary().ok_or("no static envd binary (make envd-static, or set WRENN_ENVD)")?;
    if same_envd(&rootfs.join("usr/local/bin/envd"), &envd) {
        return Ok(());
    }
    let status = Command::new("flock")
        .arg(images_dir().join(".build.lock"))
        .arg(workspace().join("images/reinject-envd.sh"))
        .arg(&envd)
        .env("WRENN_IMAGES_DIR", images_dir())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("re-injecting envd: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("re-injecting envd failed: {status}"))
    }
}

/// The `wrenn-agent` binary next to this test's target directory, built if needed.
fn agent_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // Tests run from target/<profile>/deps/, bench binaries from target/<profile>/.
    let mut profile_dir = exe.parent().expect("target dir");
    if profile_dir.file_name().is_some_and(|n| n == "deps") {
        profile_dir = profile_dir.parent().expect("profile dir");
    }
    let target_dir = profile_dir.parent().expect("target root");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo.args(["build", "-q", "-p", "wrenn-agent", "--target-dir"]);
    cargo.arg(target_dir).current_dir(workspace());
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        cargo.arg("--release");
    }
    let status = cargo.status().expect("running cargo build -p wrenn-agent");
    assert!(status.success(), "building wrenn-agent failed");
    profile_dir.join("wrenn-agent")
}

impl Stack {
    /// Starts everything, or returns `None` after printing why the machine cannot.
    pub async fn start() -> Option<Stack> {
        Self::start_with(|b| b).await
    }

    /// [`Stack::start`] with a customised server builder (extensions).
    pub async fn start_with(
        customise: impl FnOnce(crate::Builder) -> crate::Builder,
    ) -> Option<Stack> {
        Self::start_configured(customise, |_| {}).await
    }

    /// [`Stack::start_with`], then `tweak` on the configuration.
    pub async fn start_configured(
        customise: impl FnOnce(crate::Builder) -> crate::Builder,
        tweak: impl FnOnce(&mut crate::Config),
    ) -> Option<Stack> {
        Self::start_pooled(customise, tweak, "none").await
    }

    /// [`Stack::start_configured`] with the agent's warm pools (`--warm-pool`).
    pub async fn start_pooled(
        customise: impl FnOnce(crate::Builder) -> crate::Builder,
        tweak: impl FnOnce(&mut crate::Config),
        warm_pool: &str,
    ) -> Option<Stack> {
        if let Some(reason) = skip_reason() {
            eprintln!("SKIPPED: {reason}");
            return None;
        }
        let tmp = tempfile::Builder::new()
            .prefix("wrenn-caps-")
            .tempdir_in("/var/tmp")
            .expect("temp dir");
        let server = crate::test_support::TestServer::start_with(
            customise(crate::Builder::new()).without_inventory(),
            |config| {
                config.domain = DOMAIN.into();
                config.capsules.default_template = "minimal-busybox".into();
                config.capsules.stats_interval_sec = 1;
                config.hosts.unreachable_after_secs = 3600;
                config.hosts.dev_mode = true;
                tweak(config);
            },
        )
        .await;
        let base = server.base.clone();

        let dir = tmp.path().join("agent");
        let address = format!("127.0.0.1:{}", free_port());
        let host_id = enter_host(&server, &dir, &address).await;
        let mut agent = Agent::spawn(
            dir,
            tmp.path().join("agent.log"),
            Some(address),
            warm_pool.to_owned(),
        )
        .await;
        agent.host_id = host_id;
        Some(Stack {
            base,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
            agent_dir: agent.dir.clone(),
            host_id: agent.host_id,
            tmp,
            server,
            agents: vec![agent],
        })
    }

    /// Starts another agent (its own directory and port) and enters it as a host.
    pub async fn add_agent(&mut self) -> usize {
        let n = self.agents.len();
        let dir = self.tmp.path().join(format!("agent{n}"));
        let address = format!("127.0.0.1:{}", free_port());
        let host_id = enter_host(&self.server, &dir, &address).await;
        let mut agent = Agent::spawn(
            dir,
            self.tmp.path().join(format!("agent{n}.log")),
            Some(address),
            "none".to_owned(),
        )
        .await;
        agent.host_id = host_id;
        self.agents.push(agent);
        n
    }

    pub fn ctx(&self) -> &crate::ServerContext {
        self.server.ctx()
    }

    /// Core's typed services.
    pub fn app(&self) -> &crate::App {
        self.server.app()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Signs up, activates (through the mail sink) and creates an API key.
    pub async fn account(&self, name: &str) -> Account {
        let email = format!(
            "{name}-{}@example.com",
            hex::encode(rand::random::<[u8; 3]>())
        );
        let client = self
            .server
            .signed_in(&email, name, "correct horse battery")
            .await;
        let r = client
            .post("/v1/api-keys")
            .json(json!({"name": "tests"}))
            .send()
            .await;
        assert_eq!(r.status, 201, "api key: {}", r.text);
        Account {
            api_key: r.json()["key"].as_str().expect("key").to_string(),
            sid: client.cookie("wrenn_sid").expect("session cookie"),
            csrf: client.cookie("wrenn_csrf").expect("csrf cookie"),
            email,
        }
    }

    /// A request in the account's session (cookies and the CSRF header).
    pub fn session(
        &self,
        who: &Account,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header(
                "Cookie",
                format!("wrenn_sid={}; wrenn_csrf={}", who.sid, who.csrf),
            )
            .header("X-CSRF-Token", &who.csrf)
    }

    /// A request with the account's API key.
    pub fn req(
        &self,
        who: &Account,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .header("X-API-Key", &who.api_key)
    }

    /// `POST /v1/capsules` with `body`, expecting 201.
    pub async fn create(&self, who: &Account, body: Value) -> Value {
        let r = self
            .req(who, reqwest::Method::POST, "/v1/capsules")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(
            status,
            201,
            "create: {text}\nagent log:\n{}",
            self.agent_log()
        );
        serde_json::from_str(&text).unwrap()
    }

    /// Foreground exec, expecting 200.
    pub async fn exec(&self, who: &Account, id: &str, cmd: &str, args: &[&str]) -> Value {
        let r = self
            .req(
                who,
                reqwest::Method::POST,
                &format!("/v1/capsules/{id}/exec"),
            )
            .json(&json!({"cmd": cmd, "args": args}))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert_eq!(status, 200, "exec {cmd}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Every agent's log.
    pub fn agent_log(&self) -> String {
        self.agents
            .iter()
            .map(|a| std::fs::read_to_string(&a.log).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n--- next agent ---\n")
    }

    /// Destroys every capsule still alive, stops the server and the agents (Redis and the
    /// database go with the test server).
    pub async fn shutdown(mut self) {
        let app = self.app().clone();
        let ctx = app.ctx.clone();
        let live: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT id FROM capsules WHERE status <> 'stopped'")
                .fetch_all(ctx.db())
                .await
                .unwrap_or_default();
        for id in live {
            if let Ok(Some(row)) = crate::db::capsules::get(ctx.db(), id).await {
                let actor = crate::events::Actor::system();
                let _ = crate::capsules::lifecycle::destroy_as(
                    &app,
                    &row,
                    &actor,
                    Some("test cleanup"),
                )
                .await;
            }
        }
        self.server.shutdown().await;
        self.stop_processes();
    }

    fn stop_processes(&mut self) {
        for agent in &mut self.agents {
            agent.stop();
        }
    }
}

/// A development host entry for an agent (what registration produces, with the plaintext
/// loopback transport).
/// Enters a development host for an agent at `address` and gives the agent the credentials
/// registration would have saved in `dir` (a host token signed by this control plane), so it
/// heartbeats and reports the capsule changes it makes itself.
async fn enter_host(
    server: &crate::test_support::TestServer,
    dir: &std::path::Path,
    address: &str,
) -> uuid::Uuid {
    let host_id = insert_dev_host(server.ctx().db(), address).await;
    std::fs::create_dir_all(dir).unwrap();
    let token = crate::hosts::token::issue_host_jwt(
        server.ctx().jwt_secret(),
        host_id,
        chrono::Duration::days(1),
    );
    let credentials = serde_json::json!({
        "host_id": wrenn_extension_api::ids::encode(wrenn_extension_api::ids::HOST, host_id),
        "token": token,
        "refresh_token": "",
        "cert_pem": "",
        "key_pem": "",
        "ca_cert_pem": "",
        "cp_url": server.base,
    });
    std::fs::write(dir.join("host-token"), credentials.to_string()).unwrap();
    host_id
}

async fn insert_dev_host(db: &sqlx::PgPool, address: &str) -> uuid::Uuid {
    let host_id = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO hosts (id, type, status, arch, cpu_cores, memory_mb, disk_gb, address, \
         capabilities, transport, registered_at, last_heartbeat_at) \
         VALUES ($1, 'regular', 'online', 'x86_64', 2, 24000, 100, $2, \
         '{\"runtime\":\"gvisor\"}'::jsonb, 'insecure-dev', now(), now())",
    )
    .bind(host_id)
    .bind(address)
    .execute(db)
    .await
    .expect("insert the development host");
    host_id
}

impl Drop for Stack {
    fn drop(&mut self) {
        // Normally `shutdown` ran; after a failed assertion this still stops the processes
        // (capsules left by a panicking test are destroyed with their runsc state directory).
        self.stop_processes();
        for agent in &self.agents {
            agent.delete_containers();
        }
    }
}

/// A header map with `X-API-Key`.
pub fn key_header(who: &Account) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("X-API-Key", HeaderValue::from_str(&who.api_key).unwrap());
    h
}
