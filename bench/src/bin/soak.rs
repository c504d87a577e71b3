//! `soak` (`make soak`): a bounded load against a real stack, to find leaks, stuck states and
//! errors that only show after thousands of operations.
//!
//! Each client (its own team and API key) loops over one capsule's whole life through the REST
//! API: create (the default `minimal-busybox`, 1 vCPU, 256 MiB), exec `echo` of a random token
//! (the output is checked), upload a file of random bytes, download it back (the bytes are
//! compared), pause, resume, exec `sha256sum` of the file (the digest is checked: the capsule's
//! state survived the pause), destroy. A step that fails skips to the destroy.
//!
//! At most `WRENN_SOAK_MAX_LIVE` capsules are alive at once (a semaphore held from create to
//! destroy): clients beyond that wait their turn, so a 2-core machine is loaded, not overrun.
//! One cycle per live slot runs first as a warm-up (not counted), then resident memory is
//! sampled (every 5 s, reported at start, peak and end).
//!
//! The control plane runs in this process (the harness of the end-to-end tests: a throw-away
//! PostgreSQL database and Redis, a real `wrenn-agent` child process, real gVisor capsules), so
//! this process's VmRSS stands for the control plane's (it includes the load's own clients,
//! whose memory does not grow: latencies are a few bytes per operation). The agent's is read from
//! `/proc/<pid>/status`; the runsc sandboxes are processes of their own, counted separately.
//!
//! Configuration (environment):
//! - `WRENN_SOAK_SECS` (default 600): how long clients start new cycles; cycles under way finish.
//! - `WRENN_SOAK_CLIENTS` (default 32): concurrent clients, one team each.
//! - `WRENN_SOAK_MAX_LIVE` (default 8): capsules alive at once.
//! - `WRENN_SOAK_FILE_KB` (default 256): size of the uploaded file.
//! - `WRENN_SOAK_MAX_RSS_GROWTH_MB` (default 64): allowed growth of each process's resident
//!   memory from start to end. After the warm-up every pool, cache and allocator arena is sized
//!   for the load, so what remains is noise of the allocator (a few MiB) and, in the control
//!   plane, the tracing and metrics state of live capsules; 64 MiB is several times that noise,
//!   yet a leak of 1 KiB per operation shows over a 10-minute run (tens of thousands of
//!   operations).
//! - `WRENN_SOAK_MAX_ERRORS` (default 0): errors tolerated before the run counts as failed.
//!
//! It exits non-zero when the memory growth exceeds the bound, a data check failed, errors
//! exceed the allowance, a capsule is left in a transitional status or not stopped, or runsc
//! containers or capsule network namespaces are left after the last destroy.

use cpserver::test_support::stack as support;

use anyhow::Context;
use rand::RngCore;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Account, Stack};
use tokio::sync::Semaphore;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The operations of one cycle, in order.
const OPS: [&str; 8] = [
    "create", "exec", "upload", "download", "pause", "resume", "verify", "destroy",
];

/// What the clients record: latencies of successful calls, errors by operation and kind, and
/// failed data checks.
#[derive(Default)]
struct Tally {
    latencies_ms: BTreeMap<&'static str, Vec<f64>>,
    /// (operation, "status code") or (operation, "transport: …") → count.
    errors: BTreeMap<(&'static str, String), u64>,
    /// Data checks that failed (bytes differ, output wrong, state lost): the first few.
    data_failures: Vec<String>,
    data_failure_count: u64,
    cycles_ok: u64,
    cycles_failed: u64,
    /// Every capsule created (its API id), to look for what its destroy left behind.
    created: Vec<String>,
}

impl Tally {
    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// One client's view: the stack, its account and the shared tally.
struct Client<'a> {
    stack: &'a Stack,
    who: Account,
    tally: Arc<Mutex<Tally>>,
    file: Vec<u8>,
}

impl Client<'_> {
    /// Sends `req` as operation `op`: on a 2xx, records the latency and returns the body; else
    /// records the error by status and the envelope's `code`.
    async fn call(&self, op: &'static str, req: reqwest::RequestBuilder) -> Option<Vec<u8>> {
        let t = Instant::now();
        let outcome = match req.send().await {
            Ok(r) => {
                let status = r.status();
                match r.bytes().await {
                    Ok(body) if status.is_success() => Ok(body.to_vec()),
                    Ok(body) => Err(error_key(status, &body)),
                    Err(e) => Err(transport_key(&e)),
                }
            }
            Err(e) => Err(transport_key(&e)),
        };
        let ms = t.elapsed().as_secs_f64() * 1e3;
        let mut tally = self.tally.lock().unwrap();
        match outcome {
            Ok(body) => {
                tally.latencies_ms.entry(op).or_default().push(ms);
                Some(body)
            }
            Err(key) => {
                *tally.errors.entry((op, key)).or_default() += 1;
                None
            }
        }
    }

    fn data_failure(&self, what: String) {
        let mut tally = self.tally.lock().unwrap();
        tally.data_failure_count += 1;
        if tally.data_failures.len() < 10 {
            tally.data_failures.push(what);
        }
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.stack.req(&self.who, method, path)
    }

    /// A foreground exec; its stdout when it exited 0.
    async fn exec(&self, op: &'static str, id: &str, cmd: &str, args: &[&str]) -> Option<String> {
        let body = self
            .call(
                op,
                self.req(Method::POST, &format!("/v1/capsules/{id}/exec"))
                    .json(&json!({"cmd": cmd, "args": args})),
            )
            .await?;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if v["exit_code"] != 0 || v["encoding"] != "utf-8" {
            self.data_failure(format!("{op} {cmd} in {id}: {v}"));
            return None;
        }
        Some(v["stdout"].as_str().unwrap_or_default().to_string())
    }

    /// One capsule's life; true when every step and check passed.
    async fn cycle(&self) -> bool {
        let Some(created) = self
            .call(
                "create",
                self.req(Method::POST, "/v1/capsules")
                    .json(&json!({"template": "minimal-busybox", "vcpus": 1, "memory_mb": 256})),
            )
            .await
        else {
            return false;
        };
        let created: Value = serde_json::from_slice(&created).unwrap_or(Value::Null);
        let Some(id) = created["id"].as_str().map(str::to_string) else {
            self.data_failure(format!("create answered without an id: {created}"));
            return false;
        };
        self.tally.lock().unwrap().created.push(id.clone());
        let ok = self.steps(&id).await;
        let destroyed = self
            .call(
                "destroy",
                self.req(Method::DELETE, &format!("/v1/capsules/{id}")),
            )
            .await
            .is_some();
        ok && destroyed
    }

    /// The steps between create and destroy; false at the first failure.
    async fn steps(&self, id: &str) -> bool {
        let token = hex::encode(rand::random::<[u8; 8]>());
        match self.exec("exec", id, "echo", &[&token]).await {
            Some(out) if out.trim() == token => {}
            Some(out) => {
                self.data_failure(format!("exec echo in {id}: {out:?}, not {token:?}"));
                return false;
            }
            None => return false,
        }

        let path = "/tmp/soak.bin";
        let form = reqwest::multipart::Form::new()
            .text("path", path)
            .part("file", reqwest::multipart::Part::bytes(self.file.clone()));
        let upload = self.req(Method::POST, &format!("/v1/capsules/{id}/files/write"));
        if self.call("upload", upload.multipart(form)).await.is_none() {
            return false;
        }
        let download = self
            .req(Method::POST, &format!("/v1/capsules/{id}/files/read"))
            .json(&json!({"path": path}));
        match self.call("download", download).await {
            Some(bytes) if bytes == self.file => {}
            Some(bytes) => {
                self.data_failure(format!(
                    "download of {path} in {id}: {} bytes differ from the {} uploaded",
                    bytes.len(),
                    self.file.len()
                ));
                return false;
            }
            None => return false,
        }

        for op in ["pause", "resume"] {
            let req = self.req(Method::POST, &format!("/v1/capsules/{id}/{op}"));
            if self.call(op, req).await.is_none() {
                return false;
            }
        }

        let want = hex::encode(Sha256::digest(&self.file));
        match self.exec("verify", id, "sha256sum", &[path]).await {
            Some(out) if out.split_whitespace().next() == Some(want.as_str()) => true,
            Some(out) => {
                self.data_failure(format!(
                    "after pause and resume, {path} in {id} hashes to {out:?}, not {want}"
                ));
                false
            }
            None => false,
        }
    }

    /// Cycles until `deadline`, each under a live-capsule permit.
    async fn run(&self, live: &Semaphore, deadline: Instant) {
        while Instant::now() < deadline {
            let Ok(_permit) = live.acquire().await else {
                return;
            };
            if Instant::now() >= deadline {
                return;
            }
            let ok = self.cycle().await;
            let mut tally = self.tally.lock().unwrap();
            if ok {
                tally.cycles_ok += 1;
            } else {
                tally.cycles_failed += 1;
            }
        }
    }
}

fn error_key(status: StatusCode, body: &[u8]) -> String {
    let code = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
        .unwrap_or_else(|| "(no error envelope)".into());
    format!("{} {code}", status.as_u16())
}

fn transport_key(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "transport: timeout".into()
    } else if e.is_connect() {
        "transport: connect".into()
    } else {
        "transport: other".into()
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

/// VmRSS of `/proc/<pid>/status` (`self` for this process), in MiB.
fn rss_mib(pid: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// Resident memory over the run: first sample, peak, last sample.
#[derive(Clone, Copy)]
struct Rss {
    start: f64,
    peak: f64,
    end: f64,
}

impl Rss {
    fn new(at: f64) -> Rss {
        Rss {
            start: at,
            peak: at,
            end: at,
        }
    }

    fn sample(&mut self, at: f64) {
        self.peak = self.peak.max(at);
        self.end = at;
    }

    fn growth(&self) -> f64 {
        self.end - self.start
    }
}

/// The network namespaces on this machine (`ip netns list`: a name, then maybe `(id: n)`).
fn netns_names() -> std::collections::HashSet<String> {
    std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let secs = env_num("WRENN_SOAK_SECS", 600);
    let clients = env_num("WRENN_SOAK_CLIENTS", 32).max(1) as usize;
    let max_live = env_num("WRENN_SOAK_MAX_LIVE", 8).max(1) as usize;
    let file_kb = env_num("WRENN_SOAK_FILE_KB", 256) as usize;
    let max_growth = env_num("WRENN_SOAK_MAX_RSS_GROWTH_MB", 64) as f64;
    let max_errors = env_num("WRENN_SOAK_MAX_ERRORS", 0);

    // Many small capsules on one development host (as cp-bench): the live-capsule bound, not
    // the scheduler, is what limits the load.
    let Some(stack) = Stack::start_configured(|b| b, |c| c.hosts.cpu_overcommit = 64.0).await
    else {
        println!("soak: skipped (see the reason above)");
        return Ok(());
    };
    let result = soak(
        &stack,
        Settings {
            secs,
            clients,
            max_live,
            file_kb,
            max_growth,
            max_errors,
        },
    )
    .await;
    if result.is_err() {
        let log = stack.agent_log();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        eprintln!("agent log (last lines):");
        for l in tail.into_iter().rev() {
            eprintln!("  {l}");
        }
    }
    stack.shutdown().await;
    result
}

struct Settings {
    secs: u64,
    clients: usize,
    max_live: usize,
    file_kb: usize,
    max_growth: f64,
    max_errors: u64,
}

async fn soak(stack: &Stack, s: Settings) -> anyhow::Result<()> {
    let agent_pid = stack.agents[0]
        .pid()
        .context("the agent is not running")?
        .to_string();
    let mut accounts = Vec::with_capacity(s.clients);
    for i in 0..s.clients {
        accounts.push(stack.account(&format!("soak{i}")).await);
    }
    let mut file = vec![0u8; s.file_kb * 1024];
    rand::thread_rng().fill_bytes(&mut file);
    println!(
        "soak: {} clients (one team each) for {} s, at most {} capsules alive at once (the others \
         wait), {} KiB files; cycle: {}",
        s.clients,
        s.secs,
        s.max_live,
        s.file_kb,
        OPS.join(" → ")
    );

    // Warm-up: one cycle per live slot, not counted.
    let warm = Arc::new(Mutex::new(Tally::default()));
    let warm_clients: Vec<Client<'_>> = accounts
        .iter()
        .take(s.max_live)
        .map(|who| Client {
            stack,
            who: who.clone(),
            tally: warm.clone(),
            file: file.clone(),
        })
        .collect();
    futures::future::join_all(warm_clients.iter().map(Client::cycle)).await;
    {
        let warm = warm.lock().unwrap();
        if warm.error_count() > 0 || warm.data_failure_count > 0 {
            println!(
                "soak warm-up: {} errors, {} failed checks: {:?} {:?}",
                warm.error_count(),
                warm.data_failure_count,
                warm.errors,
                warm.data_failures
            );
        }
    }

    let cp_rss = Arc::new(Mutex::new(Rss::new(
        rss_mib("self").context("reading /proc/self/status")?,
    )));
    let agent_rss = Arc::new(Mutex::new(Rss::new(
        rss_mib(&agent_pid).context("reading the agent's /proc status")?,
    )));
    let sampler = {
        let (cp_rss, agent_rss, agent_pid) = (cp_rss.clone(), agent_rss.clone(), agent_pid.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                if let Some(m) = rss_mib("self") {
                    cp_rss.lock().unwrap().sample(m);
                }
                if let Some(m) = rss_mib(&agent_pid) {
                    agent_rss.lock().unwrap().sample(m);
                }
            }
        })
    };

    let tally = Arc::new(Mutex::new(Tally::default()));
    let live = Semaphore::new(s.max_live);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(s.secs);
    let load: Vec<Client<'_>> = accounts
        .into_iter()
        .map(|who| Client {
            stack,
            who,
            tally: tally.clone(),
            file: file.clone(),
        })
        .collect();
    futures::future::join_all(load.iter().map(|c| c.run(&live, deadline))).await;
    let elapsed = start.elapsed().as_secs_f64();
    sampler.abort();
    // The last sample, after every destroy.
    if let Some(m) = rss_mib("self") {
        cp_rss.lock().unwrap().sample(m);
    }
    if let Some(m) = rss_mib(&agent_pid) {
        agent_rss.lock().unwrap().sample(m);
    }

    // Taken out of its mutex: the checks below await.
    let mut tally = std::mem::take(&mut *tally.lock().unwrap());
    tally.created.append(&mut warm.lock().unwrap().created);
    let mut failures = Vec::new();
    let mut ops_total = 0usize;
    for op in OPS {
        let mut lat = tally.latencies_ms.get(op).cloned().unwrap_or_default();
        lat.sort_by(f64::total_cmp);
        let errors: u64 = tally
            .errors
            .iter()
            .filter(|((o, _), _)| *o == op)
            .map(|(_, n)| n)
            .sum();
        ops_total += lat.len() + errors as usize;
        println!(
            "soak {op:<8}: {:>6} ok {:>4} errors  p50 {:>8.1} ms  p99 {:>8.1} ms",
            lat.len(),
            errors,
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        );
    }
    let cycles = tally.cycles_ok + tally.cycles_failed;
    println!(
        "soak throughput: {:.2} operations/s, {:.3} full cycles/s ({} cycles, {} failed, in {:.0} s; \
         {} clients, at most {} capsules alive)",
        ops_total as f64 / elapsed,
        tally.cycles_ok as f64 / elapsed,
        cycles,
        tally.cycles_failed,
        elapsed,
        s.clients,
        s.max_live
    );
    if tally.errors.is_empty() {
        println!("soak errors: none");
    }
    for ((op, key), n) in &tally.errors {
        println!("soak errors: {op} {key} × {n}");
    }
    if tally.error_count() > s.max_errors {
        failures.push(format!(
            "{} errors (allowed {})",
            tally.error_count(),
            s.max_errors
        ));
    }
    println!(
        "soak data checks: {} failed{}",
        tally.data_failure_count,
        if tally.data_failures.is_empty() {
            String::new()
        } else {
            format!(": {}", tally.data_failures.join("; "))
        }
    );
    if tally.data_failure_count > 0 {
        failures.push(format!("{} failed data checks", tally.data_failure_count));
    }

    for (name, rss) in [
        (
            "wrenn-cp (this process: the control plane runs in-process)".to_string(),
            *cp_rss.lock().unwrap(),
        ),
        (
            format!("wrenn-agent (pid {agent_pid})"),
            *agent_rss.lock().unwrap(),
        ),
    ] {
        println!(
            "soak rss {name}: start {:.1} MiB, end {:.1} MiB, growth {:+.1} MiB, peak {:.1} MiB \
             (bound {:.0} MiB)",
            rss.start,
            rss.end,
            rss.growth(),
            rss.peak,
            s.max_growth
        );
        if rss.growth() > s.max_growth {
            failures.push(format!(
                "{name} grew {:.1} MiB (bound {:.0} MiB)",
                rss.growth(),
                s.max_growth
            ));
        }
    }

    // What is left: capsule statuses in the database, runsc containers, network namespaces.
    let statuses: Vec<(String, i64)> =
        sqlx::query_as("SELECT status::text, count(*) FROM capsules GROUP BY 1 ORDER BY 1")
            .fetch_all(stack.app().ctx.db())
            .await
            .context("counting capsules by status")?;
    let mut left = Vec::new();
    for (status, n) in &statuses {
        let st = cpserver::capsules::state::CapsuleStatus::parse(status);
        if st.is_some_and(|st| st.is_transitional()) {
            failures.push(format!("{n} capsules left {status} (transitional)"));
        } else if st != Some(cpserver::capsules::state::CapsuleStatus::Stopped) {
            left.push(format!("{n} {status}"));
        }
    }
    if !left.is_empty() {
        failures.push(format!("capsules not stopped: {}", left.join(", ")));
    }
    let mut containers = stack.agents[0].runsc_containers();
    let settle = Instant::now() + Duration::from_secs(10);
    while !containers.is_empty() && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(500)).await;
        containers = stack.agents[0].runsc_containers();
    }
    if !containers.is_empty() {
        failures.push(format!("{} runsc containers left", containers.len()));
    }
    // The agent names a capsule's namespaces after its id (`wrenn-<id>`, `wrenn-<id>-gw`);
    // only this run's capsules count (other stacks may run on the machine).
    let netns = netns_names();
    let netns_left = tally
        .created
        .iter()
        .filter(|id| {
            netns.contains(&format!("wrenn-{id}")) || netns.contains(&format!("wrenn-{id}-gw"))
        })
        .count();
    if netns_left > 0 {
        failures.push(format!("{netns_left} capsules' network namespaces left"));
    }
    let sandbox_dirs = std::fs::read_dir(stack.agents[0].dir.join("sandboxes"))
        .map(|d| d.count())
        .unwrap_or(0);
    if sandbox_dirs > 0 {
        failures.push(format!(
            "{sandbox_dirs} sandbox directories left on the agent"
        ));
    }
    println!(
        "soak end state: capsules by status {}; runsc containers left {}; network namespaces \
         left {}; sandbox directories left {}",
        statuses
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        containers.len(),
        netns_left,
        sandbox_dirs
    );

    if failures.is_empty() {
        println!("soak: PASS");
        Ok(())
    } else {
        println!("soak: FAIL: {}", failures.join("; "));
        Err(anyhow::anyhow!("soak failed: {}", failures.join("; ")))
    }
}
