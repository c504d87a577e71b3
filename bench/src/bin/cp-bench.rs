//! `cp-bench`: the control-plane figures of BENCHMARKS.md, each against a baseline measured
//! in the same run (alternating the two), printed one line per figure.
//!
//! - B2: 50 capsules created concurrently through the API, against the same created one by
//!   one (p50/p99 of the per-capsule latency; target p99 ≤ 3 × p50, no failures).
//! - B3: exec round trip of `true` through the REST API, against the same process started
//!   straight on envd's socket (target ratio ≤ 1.5, absolute p50 < 5 ms).
//! - B7: authenticated `GET /v1/capsules` at 64 connections, against a bare axum + sqlx
//!   handler running the same query (target ≥ 0.7 of its req/s, p99 < 10 ms).
//! - B9: 100 MB upload and download through the API, against writing and reading the same
//!   bytes on the host filesystem directly (target ≥ 0.5 of its MB/s). A second baseline
//!   streams the same bytes into and out of the capsule with `runsc exec ... cat` (the raw
//!   runtime path to its overlay); the agent's gRPC and envd's `/files` are timed alone too,
//!   to show where the time goes.
//!
//! - BUILD: a template build of the test recipe (busybox: ENV, WORKDIR, COPY, RUN, a STARTed
//!   `httpd` and its HEALTHCHECK) from `POST /v1/builds` until the template is ready, against
//!   the same steps driven by hand through the REST API (create, exec, upload, background
//!   exec, healthcheck, `POST /v1/snapshots`, destroy). The build also restores a trial
//!   capsule of its snapshot (the hand-driven path does not), so the ratio shows that cost.
//!   A flattened build (no START) is timed alone.
//!
//! - B1w: a create served from the agent's warm pool (`POST /v1/capsules` until 201: the
//!   capsule is running, envd answers with the team's env applied), against B1 cold, a create
//!   of a shape no pool holds, alternating, in a stack of its own whose agent keeps a pool of
//!   `CP_BENCH_B1W_POOL` (default 2) capsules; before each pooled create the pool is let
//!   refill (untimed), so every timed one is a hit.
//!
//! It starts the same stack as the end-to-end tests (throw-away database and Redis, the
//! control plane, a real agent and gVisor capsules); it needs root, runsc and the base images.
//! `CP_BENCH_B2_N` (default 50), `CP_BENCH_B3_N` (default 200), `CP_BENCH_B7_SECS`
//! (default 4) and `CP_BENCH_B9_MB` (default 100) and `CP_BENCH_BUILD_N` (default 3) scale the runs. `CP_BENCH_ONLY` (e.g.
//! `b7` or `b3,b7`) runs only the named figures; unset, all of them run.

use cpserver::test_support::stack as support;

use anyhow::{anyhow, Context};
use axum::body::Bytes;
use futures::StreamExt;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Account, Stack};
use wrenn_proto::envd::v1 as envd;
use wrenn_proto::hostagent::v1 as pb;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Whether figure `name` (`b2`, `b3`, ...) is selected by `CP_BENCH_ONLY` (all when unset).
fn selected(name: &str) -> bool {
    match std::env::var("CP_BENCH_ONLY") {
        Ok(only) if !only.trim().is_empty() => {
            only.split(',').any(|f| f.trim().eq_ignore_ascii_case(name))
        }
        _ => true,
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn p50_p99(mut xs: Vec<f64>) -> (f64, f64) {
    xs.sort_by(|a, b| a.total_cmp(b));
    (percentile(&xs, 0.5), percentile(&xs, 0.99))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    // The bench places many small capsules on one development host.
    let Some(stack) = Stack::start_configured(|b| b, |c| c.hosts.cpu_overcommit = 64.0).await
    else {
        println!("cp-bench: skipped (see the reason above)");
        return Ok(());
    };
    let who = stack.account("bench").await;
    let result = async {
        if selected("b2") {
            b2(&stack, &who).await?;
        }
        if selected("b3") {
            b3(&stack, &who).await?;
        }
        if selected("b7") {
            b7(&stack, &who).await?;
        }
        if selected("b9") {
            b9(&stack, &who).await?;
        }
        if selected("build") {
            build(&stack, &who).await?;
        }
        anyhow::Ok(())
    }
    .await;
    stack.shutdown().await;
    result?;
    if selected("b1w") {
        b1w().await?;
    }
    Ok(())
}

/// The agent's `wrenn_agent_warm_pool_ready` for its one pool.
async fn pool_ready(stack: &Stack) -> anyhow::Result<f64> {
    let text = reqwest::get(format!(
        "http://{}/metrics",
        stack.agents[0].metrics_address
    ))
    .await?
    .text()
    .await?;
    Ok(text
        .lines()
        .find_map(|l| {
            l.strip_prefix("wrenn_agent_warm_pool_ready{")?
                .split_once("} ")?
                .1
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0))
}

/// B1w: a create from the warm pool against a cold one.
async fn b1w() -> anyhow::Result<()> {
    let n = env_num("CP_BENCH_B1W_N", 20) as usize;
    let size = env_num("CP_BENCH_B1W_POOL", 2);
    let pool = format!("minimal-busybox:1x128={size}");
    let Some(stack) = Stack::start_pooled(|b| b, |c| c.hosts.cpu_overcommit = 64.0, &pool).await
    else {
        println!("B1w: skipped (see the reason above)");
        return Ok(());
    };
    let who = stack.account("bench").await;
    let result = async {
        let (mut warm, mut cold) = (Vec::new(), Vec::new());
        for i in 0..n + 1 {
            let deadline = Instant::now() + Duration::from_secs(120);
            while pool_ready(&stack).await? < size as f64 {
                if Instant::now() > deadline {
                    return Err(anyhow!("the warm pool did not refill"));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let t = Instant::now();
            let a = stack
                .req(&who, Method::POST, "/v1/capsules")
                .json(&json!({"memory_mb": 128, "envs": {"WHO": "bench"}}))
                .send()
                .await?;
            let warm_ms = t.elapsed().as_secs_f64() * 1e3;
            let a_status = a.status();
            let a: Value = a.json().await?;
            let t = Instant::now();
            let b = stack
                .req(&who, Method::POST, "/v1/capsules")
                .json(&json!({"memory_mb": 160, "envs": {"WHO": "bench"}}))
                .send()
                .await?;
            let cold_ms = t.elapsed().as_secs_f64() * 1e3;
            let b_status = b.status();
            let b: Value = b.json().await?;
            if a_status != 201 || b_status != 201 {
                return Err(anyhow!("create failed: {a_status} {a} / {b_status} {b}"));
            }
            // The first round warms both paths.
            if i > 0 {
                warm.push(warm_ms);
                cold.push(cold_ms);
            }
            let ids = [a["id"].as_str().unwrap_or_default().to_string(), b["id"].as_str().unwrap_or_default().to_string()];
            destroy_all(&stack, &who, &ids).await;
        }
        let (w50, w99) = p50_p99(warm);
        let (c50, c99) = p50_p99(cold);
        println!(
            "B1w create from the warm pool: p50 {w50:.1} ms p99 {w99:.1} ms | B1 cold (same run) p50 {c50:.1} ms p99 {c99:.1} ms | ratio {:.2} (target p50 <= 30 ms, p99 <= 80 ms)",
            w50 / c50
        );
        anyhow::Ok(())
    }
    .await;
    stack.shutdown().await;
    result
}

async fn create_timed(stack: &Stack, who: &Account) -> anyhow::Result<(f64, String)> {
    let t = Instant::now();
    let r = stack
        .req(who, Method::POST, "/v1/capsules")
        .json(&json!({"memory_mb": 128}))
        .send()
        .await?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let status = r.status();
    let body: Value = r.json().await?;
    if status != 201 {
        return Err(anyhow!("create failed: {status} {body}"));
    }
    Ok((ms, body["id"].as_str().unwrap_or_default().to_string()))
}

async fn destroy_all(stack: &Stack, who: &Account, ids: &[String]) {
    let tasks = ids.iter().map(|id| {
        stack
            .req(who, Method::DELETE, &format!("/v1/capsules/{id}"))
            .send()
    });
    for r in futures::future::join_all(tasks).await {
        let _ = r;
    }
}

/// B2: concurrent vs sequential creation.
async fn b2(stack: &Stack, who: &Account) -> anyhow::Result<()> {
    let n = env_num("CP_BENCH_B2_N", 50) as usize;
    let mut seq = Vec::new();
    let mut ids = Vec::new();
    let t = Instant::now();
    for _ in 0..n {
        let (ms, id) = create_timed(stack, who).await?;
        seq.push(ms);
        ids.push(id);
    }
    let seq_wall = t.elapsed().as_secs_f64();
    destroy_all(stack, who, &ids).await;

    let t = Instant::now();
    let results = futures::future::join_all((0..n).map(|_| create_timed(stack, who))).await;
    let conc_wall = t.elapsed().as_secs_f64();
    let mut conc = Vec::new();
    let mut ids = Vec::new();
    let mut failures = 0;
    for r in results {
        match r {
            Ok((ms, id)) => {
                conc.push(ms);
                ids.push(id);
            }
            Err(e) => {
                failures += 1;
                eprintln!("B2: {e}");
            }
        }
    }
    destroy_all(stack, who, &ids).await;
    let (s50, s99) = p50_p99(seq);
    let (c50, c99) = p50_p99(conc);
    println!(
        "B2 create x{n}: concurrent p99/p50 = {:.2} (target <= 3), failures {failures}; \
         concurrent p50 {c50:.0} ms p99 {c99:.0} ms wall {conc_wall:.1} s; \
         sequential p50 {s50:.0} ms p99 {s99:.0} ms wall {seq_wall:.1} s; \
         throughput ratio concurrent/sequential = {:.2}",
        c99 / c50,
        seq_wall / conc_wall
    );
    Ok(())
}

/// A gRPC channel to envd on its Unix socket.
async fn envd_channel(socket: std::path::PathBuf) -> anyhow::Result<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_static("http://envd")
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let socket = socket.clone();
            async move {
                let s = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(s))
            }
        }))
        .await?;
    Ok(channel)
}

/// `true` straight on envd: Start and read its events to the end.
async fn envd_true(
    client: &mut envd::process_service_client::ProcessServiceClient<tonic::transport::Channel>,
    token: &str,
) -> anyhow::Result<()> {
    let mut req = tonic::Request::new(envd::StartRequest {
        process: Some(envd::ProcessConfig {
            cmd: "true".into(),
            args: vec![],
            envs: Default::default(),
            cwd: None,
            user: None,
        }),
        tag: None,
        pty: None,
        stdin: false,
        paced: false,
    });
    req.metadata_mut().insert("x-access-token", token.parse()?);
    let mut stream = client.start(req).await?.into_inner();
    while let Some(ev) = stream.message().await? {
        if let Some(envd::process_event::Event::End(_)) = ev.event.and_then(|e| e.event) {
            return Ok(());
        }
    }
    Ok(())
}

/// B3: exec through the API vs straight on envd.
async fn b3(stack: &Stack, who: &Account) -> anyhow::Result<()> {
    let n = env_num("CP_BENCH_B3_N", 200) as usize;
    let capsule = stack.create(who, json!({})).await;
    let id = capsule["id"].as_str().unwrap().to_string();
    let uuid = wrenn_extension_api::ids::decode("sb", &id).context("capsule id")?;
    let token: String = sqlx::query_scalar("SELECT access_token FROM capsules WHERE id = $1")
        .bind(uuid)
        .fetch_one(stack.ctx().db())
        .await?;
    let socket = stack
        .agent_dir
        .join("sandboxes")
        .join(&id)
        .join("run/envd.sock");
    let mut direct =
        envd::process_service_client::ProcessServiceClient::new(envd_channel(socket).await?);
    // Warm both paths.
    for _ in 0..5 {
        envd_true(&mut direct, &token).await?;
        stack.exec(who, &id, "true", &[]).await;
    }
    let (mut api, mut base) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let t = Instant::now();
        let out = stack.exec(who, &id, "true", &[]).await;
        api.push(t.elapsed().as_secs_f64() * 1e3);
        if out["exit_code"] != 0 {
            return Err(anyhow!("exec true failed: {out}"));
        }
        let t = Instant::now();
        envd_true(&mut direct, &token).await?;
        base.push(t.elapsed().as_secs_f64() * 1e3);
    }
    destroy_all(stack, who, &[id]).await;
    let (a50, a99) = p50_p99(api);
    let (b50, b99) = p50_p99(base);
    println!(
        "B3 exec `true` x{n}: API/envd p50 ratio = {:.2} (target <= 1.5); API p50 {a50:.2} ms \
         p99 {a99:.2} ms (target p50 < 5 ms); envd direct p50 {b50:.2} ms p99 {b99:.2} ms",
        a50 / b50
    );
    Ok(())
}

/// Runs `conns` workers issuing `request` for `secs`; returns (req/s, p99 ms, errors).
async fn load<F, Fut>(conns: usize, secs: f64, request: F) -> (f64, f64, usize)
where
    F: Fn() -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let lat = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            let (stop, lat, errors, request) =
                (stop.clone(), lat.clone(), errors.clone(), request.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    if request().await {
                        mine.push(t.elapsed().as_secs_f64() * 1e3);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                lat.lock().unwrap().extend(mine);
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let lat = std::mem::take(&mut *lat.lock().unwrap());
    let count = lat.len();
    let (_, p99) = p50_p99(lat);
    (count as f64 / elapsed, p99, errors.load(Ordering::Relaxed))
}

/// The baseline of B7: a bare axum + sqlx handler running the list query, on its own port.
async fn bare_server(db: sqlx::PgPool, team: uuid::Uuid) -> anyhow::Result<String> {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/v1/capsules",
        get(move || {
            let db = db.clone();
            async move {
                let rows = cpserver::db::capsules::list_for_team(&db, team)
                    .await
                    .unwrap_or_default();
                let list: Vec<cpserver::capsules::Capsule> =
                    rows.iter().map(cpserver::capsules::Capsule::from).collect();
                axum::Json(json!({ "capsules": list }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}/v1/capsules"))
}

/// A 200 whose body was read completely.
async fn ok(response: reqwest::Result<reqwest::Response>) -> bool {
    match response {
        Ok(r) if r.status() == 200 => r.bytes().await.is_ok(),
        _ => false,
    }
}

/// B7: authenticated list throughput vs the bare handler.
async fn b7(stack: &Stack, who: &Account) -> anyhow::Result<()> {
    let secs = env_num("CP_BENCH_B7_SECS", 4) as f64;
    let capsule = stack.create(who, json!({})).await;
    let id = capsule["id"].as_str().unwrap().to_string();
    let team: uuid::Uuid = sqlx::query_scalar("SELECT team_id FROM capsules WHERE id = $1")
        .bind(wrenn_extension_api::ids::decode("sb", &id).context("id")?)
        .fetch_one(stack.ctx().db())
        .await?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect_with((*stack.ctx().db().connect_options()).clone())
        .await?;
    let bare = bare_server(pool, team).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(128)
        .build()?;
    let api_url = stack.url("/v1/capsules");
    let key = who.api_key.clone();
    let api = {
        let (client, url, key) = (client.clone(), api_url.clone(), key.clone());
        move || {
            let (client, url, key) = (client.clone(), url.clone(), key.clone());
            async move { ok(client.get(&url).header("X-API-Key", &key).send().await).await }
        }
    };
    let base = {
        let (client, url) = (client.clone(), bare.clone());
        move || {
            let (client, url) = (client.clone(), url.clone());
            async move { ok(client.get(&url).send().await).await }
        }
    };
    let (mut api_rps, mut api_p99, mut base_rps, mut base_p99, mut errors) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0);
    for _ in 0..2 {
        let (r, p, e) = load(64, secs / 2.0, base.clone()).await;
        base_rps.push(r);
        base_p99.push(p);
        errors += e;
        let (r, p, e) = load(64, secs / 2.0, api.clone()).await;
        api_rps.push(r);
        api_p99.push(p);
        errors += e;
    }
    destroy_all(stack, who, &[id]).await;
    let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let worst = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    println!(
        "B7 GET /v1/capsules @64 conns: API/bare req/s = {:.2} (target >= 0.7); API {:.0} req/s \
         p99 {:.1} ms (target < 10 ms); bare axum+sqlx {:.0} req/s p99 {:.1} ms; errors {errors}",
        avg(&api_rps) / avg(&base_rps),
        avg(&api_rps),
        worst(&api_p99),
        avg(&base_rps),
        worst(&base_p99),
    );
    Ok(())
}

/// `runsc exec <capsule> /bin/sh -c <script>` with the agent's global flags and state root.
fn runsc_exec(stack: &Stack, id: &str, script: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("runsc");
    cmd.arg(format!(
        "--root={}",
        stack.agent_dir.join("runsc").display()
    ))
    .args([
        "--platform=systrap",
        "--network=none",
        "--overlay2=root:memory",
        "--host-uds=all",
        "--cpu-num-from-quota",
        "exec",
    ])
    .arg(format!("wrenn-{id}"))
    .args(["/bin/sh", "-c", script])
    .stderr(std::process::Stdio::piped())
    .kill_on_drop(true);
    cmd
}

/// The raw runtime path in: `cat > path` inside the capsule, fed on its stdin.
async fn runsc_write(stack: &Stack, id: &str, path: &str, bytes: &[u8]) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut child = runsc_exec(stack, id, &format!("cat > {path}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().context("runsc stdin")?;
    stdin.write_all(bytes).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        return Err(anyhow!(
            "runsc exec cat > {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// The raw runtime path out: `cat path` inside the capsule; returns the bytes read.
async fn runsc_read(stack: &Stack, id: &str, path: &str) -> anyhow::Result<Vec<u8>> {
    let out = runsc_exec(stack, id, &format!("cat {path}"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .output()
        .await?;
    if !out.status.success() {
        return Err(anyhow!(
            "runsc exec cat {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

/// `bytes` cut in the chunks the control plane sends.
fn chunks(bytes: &Bytes) -> impl Iterator<Item = Bytes> + Send + 'static {
    let bytes = bytes.clone();
    let step = cpserver::http::files::CHUNK;
    (0..bytes.len())
        .step_by(step)
        .map(move |at| bytes.slice(at..(at + step).min(bytes.len())))
}

/// One hop alone: WriteFileStream straight to the agent (the control plane's own channel).
async fn agent_write(
    client: &mut cpserver::capsules::agent::AgentClient,
    sandbox_id: &str,
    path: &str,
    bytes: &Bytes,
) -> anyhow::Result<()> {
    use pb::write_file_stream_request::Part;
    let header = pb::WriteFileStreamRequest {
        part: Some(Part::Header(pb::WriteFileStreamHeader {
            sandbox_id: sandbox_id.into(),
            path: path.into(),
            user: String::new(),
        })),
    };
    let body = std::iter::once(header).chain(chunks(bytes).map(|c| pb::WriteFileStreamRequest {
        part: Some(Part::Chunk(c)),
    }));
    let written = client
        .write_file_stream(futures::stream::iter(body))
        .await?
        .into_inner()
        .bytes_written;
    if written != bytes.len() as u64 {
        return Err(anyhow!("agent wrote {written} bytes"));
    }
    Ok(())
}

/// One hop alone: ReadFileStream straight from the agent; returns the byte count.
async fn agent_read(
    client: &mut cpserver::capsules::agent::AgentClient,
    sandbox_id: &str,
    path: &str,
) -> anyhow::Result<usize> {
    let mut stream = client
        .read_file_stream(pb::ReadFileRequest {
            sandbox_id: sandbox_id.into(),
            path: path.into(),
            user: String::new(),
        })
        .await?
        .into_inner();
    let mut n = 0;
    while let Some(c) = stream.message().await? {
        n += c.data.len();
    }
    Ok(n)
}

/// One HTTP/1.1 request to envd's socket, as the agent makes it.
async fn envd_http(
    socket: &std::path::Path,
    token: &str,
    method: Method,
    uri: &str,
    body: axum::body::Body,
) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
    let s = tokio::net::UnixStream::connect(socket).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s)).await?;
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "envd")
        .header("x-access-token", token)
        .header("content-type", "application/octet-stream")
        .body(body)?;
    let resp = sender.send_request(req).await?;
    if !resp.status().is_success() {
        return Err(anyhow!("envd answered {}", resp.status()));
    }
    Ok(resp)
}

/// One hop alone: `POST /files` on envd's socket, the body in the control plane's chunks.
async fn envd_write(
    socket: &std::path::Path,
    token: &str,
    path: &str,
    bytes: &Bytes,
) -> anyhow::Result<()> {
    let body = axum::body::Body::from_stream(futures::stream::iter(
        chunks(bytes).map(Ok::<_, std::io::Error>),
    ));
    let resp = envd_http(
        socket,
        token,
        Method::POST,
        &format!("/files?path={path}"),
        body,
    )
    .await?;
    axum::body::to_bytes(axum::body::Body::new(resp.into_body()), usize::MAX).await?;
    Ok(())
}

/// One hop alone: `GET /files` on envd's socket; returns the byte count.
async fn envd_read(socket: &std::path::Path, token: &str, path: &str) -> anyhow::Result<usize> {
    let resp = envd_http(
        socket,
        token,
        Method::GET,
        &format!("/files?path={path}"),
        axum::body::Body::empty(),
    )
    .await?;
    let mut body = axum::body::Body::new(resp.into_body()).into_data_stream();
    let mut n = 0;
    while let Some(c) = body.next().await {
        n += c?.len();
    }
    Ok(n)
}

fn mb_s(mb: usize, t: Instant) -> f64 {
    mb as f64 / t.elapsed().as_secs_f64()
}

/// B9: 100 MB through the API vs the host filesystem, and vs `runsc exec cat` in the capsule.
async fn b9(stack: &Stack, who: &Account) -> anyhow::Result<()> {
    let mb = env_num("CP_BENCH_B9_MB", 100) as usize;
    let bytes: Bytes = (0..mb * 1024 * 1024)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let capsule = stack.create(who, json!({"memory_mb": 1024})).await;
    let id = capsule["id"].as_str().unwrap().to_string();
    let uuid = wrenn_extension_api::ids::decode("sb", &id).context("capsule id")?;
    let token: String = sqlx::query_scalar("SELECT access_token FROM capsules WHERE id = $1")
        .bind(uuid)
        .fetch_one(stack.ctx().db())
        .await?;
    let socket = stack
        .agent_dir
        .join("sandboxes")
        .join(&id)
        .join("run/envd.sock");
    let mut agent = cpserver::capsules::agent::client(stack.app(), stack.host_id)
        .await
        .map_err(|e| anyhow!("agent client: {e:?}"))?;
    let direct_path = stack.tmp.path().join("b9.bin");
    let mut f: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    let mut put = |k: &'static str, v: f64| f.entry(k).or_default().push(v);
    for round in 0..3 {
        // Baseline: the same bytes written and read on the host.
        let t = Instant::now();
        std::fs::write(&direct_path, &bytes)?;
        put("host_w", mb_s(mb, t));
        let t = Instant::now();
        let back = std::fs::read(&direct_path)?;
        put("host_r", mb_s(mb, t));
        assert_eq!(back.len(), bytes.len());
        drop(back);
        std::fs::remove_file(&direct_path)?;

        // Second baseline: the raw runtime path into the capsule's overlay.
        let raw = format!("/tmp/b9-raw-{round}.bin");
        let t = Instant::now();
        runsc_write(stack, &id, &raw, &bytes).await?;
        put("runsc_w", mb_s(mb, t));
        let t = Instant::now();
        let back = runsc_read(stack, &id, &raw).await?;
        put("runsc_r", mb_s(mb, t));
        if back != bytes {
            return Err(anyhow!("runsc exec cat returned other bytes"));
        }
        drop(back);
        runsc_exec(stack, &id, &format!("rm -f {raw}"))
            .output()
            .await?;

        let path = format!("/tmp/b9-{round}.bin");
        let form = reqwest::multipart::Form::new()
            .text("path", path.clone())
            .part(
                "file",
                reqwest::multipart::Part::stream(reqwest::Body::from(bytes.clone()))
                    .file_name("b9"),
            );
        let t = Instant::now();
        let r = stack
            .req(
                who,
                Method::POST,
                &format!("/v1/capsules/{id}/files/stream/write"),
            )
            .multipart(form)
            .send()
            .await?;
        if r.status() != 204 {
            return Err(anyhow!("upload failed: {} {}", r.status(), r.text().await?));
        }
        put("api_w", mb_s(mb, t));
        let t = Instant::now();
        let r = stack
            .req(
                who,
                Method::POST,
                &format!("/v1/capsules/{id}/files/stream/read"),
            )
            .json(&json!({"path": path}))
            .send()
            .await?;
        let got = r.bytes().await?;
        put("api_r", mb_s(mb, t));
        if got != bytes {
            return Err(anyhow!("download returned other bytes ({})", got.len()));
        }
        drop(got);

        // The same download read as a stream (counted, not gathered in memory).
        let t = Instant::now();
        let r = stack
            .req(
                who,
                Method::POST,
                &format!("/v1/capsules/{id}/files/stream/read"),
            )
            .json(&json!({"path": path}))
            .send()
            .await?;
        let mut body = r.bytes_stream();
        let mut n = 0;
        while let Some(c) = body.next().await {
            n += c?.len();
        }
        put("api_r_stream", mb_s(mb, t));
        if n != bytes.len() {
            return Err(anyhow!("streamed download returned {n} bytes"));
        }

        // The hops alone: the agent's gRPC (agent + envd), then envd's HTTP.
        let hop = format!("/tmp/b9-hop-{round}.bin");
        let t = Instant::now();
        agent_write(&mut agent, &id, &hop, &bytes).await?;
        put("agent_w", mb_s(mb, t));
        let t = Instant::now();
        let n = agent_read(&mut agent, &id, &hop).await?;
        put("agent_r", mb_s(mb, t));
        if n != bytes.len() {
            return Err(anyhow!("agent read {n} bytes"));
        }
        let t = Instant::now();
        envd_write(&socket, &token, &hop, &bytes).await?;
        put("envd_w", mb_s(mb, t));
        let t = Instant::now();
        let n = envd_read(&socket, &token, &hop).await?;
        put("envd_r", mb_s(mb, t));
        if n != bytes.len() {
            return Err(anyhow!("envd read {n} bytes"));
        }
        for p in [&path, &hop] {
            stack
                .req(
                    who,
                    Method::POST,
                    &format!("/v1/capsules/{id}/files/remove"),
                )
                .json(&json!({"path": p}))
                .send()
                .await?;
        }
    }
    destroy_all(stack, who, &[id]).await;
    let m = |k: &str| p50_p99(f.get(k).cloned().unwrap_or_default()).0;
    let (u, d) = (m("api_w"), m("api_r"));
    println!(
        "B9 {mb} MB: upload API/direct = {:.2}, download API/direct = {:.2} (target >= 0.5); \
         API upload {u:.0} MB/s, download {d:.0} MB/s; direct write {:.0} MB/s, read {:.0} MB/s \
         (host filesystem; medians of 3)",
        u / m("host_w"),
        d / m("host_r"),
        m("host_w"),
        m("host_r"),
    );
    println!(
        "B9 {mb} MB vs the capsule's own overlay: upload API/runsc = {:.2}, download \
         API/runsc = {:.2}; runsc exec `cat > file` {:.0} MB/s, `cat file` {:.0} MB/s \
         (medians of 3)",
        u / m("runsc_w"),
        d / m("runsc_r"),
        m("runsc_w"),
        m("runsc_r"),
    );
    println!(
        "B9 {mb} MB per hop (write/read MB/s, medians of 3): API {u:.0}/{d:.0} (read as a \
         stream {:.0}); agent gRPC {:.0}/{:.0}; envd HTTP /files {:.0}/{:.0}",
        m("api_r_stream"),
        m("agent_w"),
        m("agent_r"),
        m("envd_w"),
        m("envd_r"),
    );
    Ok(())
}

const BUILD_PAGE: &[u8] = b"<h1>bench</h1>\n";
const BUILD_RECIPE: &str = "FROM minimal-busybox\n\
    ENV GREETING=bench\n\
    WORKDIR /srv/www\n\
    COPY index.html ./\n\
    RUN echo built | tee built.txt\n\
    START httpd -f -p 8080 -h /srv/www\n\
    HEALTHCHECK --interval=100ms --retries=100 CMD wget -q -O - http://127.0.0.1:8080/index.html\n";

/// Submits a build and waits until it has succeeded; its wall time in ms.
async fn build_once(stack: &Stack, who: &Account, name: &str, recipe: &str) -> anyhow::Result<f64> {
    use base64::Engine;
    let t = Instant::now();
    let r = stack
        .req(who, Method::POST, "/v1/builds")
        .json(&json!({"name": name, "recipe": recipe, "rebuild": true,
            "files": [{"path": "index.html",
                       "content_base64": base64::engine::general_purpose::STANDARD.encode(BUILD_PAGE)}]}))
        .send()
        .await?;
    let body: Value = r.json().await?;
    let id = body["id"]
        .as_str()
        .ok_or_else(|| anyhow!("build: {body}"))?
        .to_string();
    loop {
        let b: Value = stack
            .req(who, Method::GET, &format!("/v1/builds/{id}"))
            .send()
            .await?
            .json()
            .await?;
        match b["status"].as_str() {
            Some("succeeded") => return Ok(t.elapsed().as_secs_f64() * 1e3),
            Some("failed") | Some("cancelled") => return Err(anyhow!("build failed: {b}")),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// The recipe's steps by hand through the REST API; wall time in ms.
async fn build_by_hand(stack: &Stack, who: &Account, name: &str) -> anyhow::Result<f64> {
    let t = Instant::now();
    let r = stack
        .req(who, Method::POST, "/v1/capsules")
        .json(&json!({"template": "minimal-busybox"}))
        .send()
        .await?;
    let c: Value = r.json().await?;
    let id = c["id"]
        .as_str()
        .ok_or_else(|| anyhow!("create: {c}"))?
        .to_string();
    let exec = |body: Value| {
        stack
            .req(who, Method::POST, &format!("/v1/capsules/{id}/exec"))
            .json(&body)
            .send()
    };
    exec(json!({"cmd": "mkdir", "args": ["-p", "/srv/www"]})).await?;
    let form = reqwest::multipart::Form::new()
        .text("path", "/srv/www/index.html")
        .part("file", reqwest::multipart::Part::bytes(BUILD_PAGE.to_vec()));
    stack
        .req(who, Method::POST, &format!("/v1/capsules/{id}/files/write"))
        .multipart(form)
        .send()
        .await?;
    exec(
        json!({"cmd": "sh", "args": ["-c", "echo built | tee built.txt"], "cwd": "/srv/www",
                "envs": {"GREETING": "bench"}}),
    )
    .await?;
    exec(
        json!({"cmd": "httpd", "args": ["-f", "-p", "8080", "-h", "/srv/www"], "background": true}),
    )
    .await?;
    loop {
        let r: Value = exec(
            json!({"cmd": "wget", "args": ["-q", "-O", "-", "http://127.0.0.1:8080/index.html"]}),
        )
        .await?
        .json()
        .await?;
        if r["exit_code"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = stack
        .req(who, Method::POST, "/v1/snapshots")
        .json(&json!({"sandbox_id": id, "name": name}))
        .send()
        .await?;
    if r.status() != 201 {
        return Err(anyhow!("snapshot: {}", r.text().await?));
    }
    stack
        .req(who, Method::DELETE, &format!("/v1/capsules/{id}"))
        .send()
        .await?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    stack
        .req(who, Method::DELETE, &format!("/v1/snapshots/{name}"))
        .send()
        .await?;
    Ok(ms)
}

/// BUILD: build start → template ready, against the same steps driven by hand.
async fn build(stack: &Stack, who: &Account) -> anyhow::Result<()> {
    let n = env_num("CP_BENCH_BUILD_N", 3).max(1);
    let (mut built, mut by_hand, mut flat) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        built.push(build_once(stack, who, "bench-build", BUILD_RECIPE).await?);
        by_hand.push(build_by_hand(stack, who, &format!("bench-hand-{i}")).await?);
        flat.push(
            build_once(
                stack,
                who,
                "bench-flat",
                "FROM minimal-busybox\nRUN echo built > /built\n",
            )
            .await?,
        );
    }
    for name in ["bench-build", "bench-flat"] {
        stack
            .req(who, Method::DELETE, &format!("/v1/snapshots/{name}"))
            .send()
            .await?;
    }
    let (b50, b99) = p50_p99(built);
    let (h50, h99) = p50_p99(by_hand);
    let (f50, f99) = p50_p99(flat);
    println!(
        "BUILD snapshot recipe, build start -> template ready: p50 {b50:.0} ms p99 {b99:.0} ms | \
         by hand through the API p50 {h50:.0} ms p99 {h99:.0} ms | ratio {:.2} (n={n})",
        b50 / h50
    );
    println!("BUILD flattened recipe (no START): p50 {f50:.0} ms p99 {f99:.0} ms (n={n})");
    Ok(())
}
