//! `events-bench`: B8 of BENCHMARKS.md, event delivery through notification channels.
//!
//! - Latency: an event published on `wrenn:events` until a signed webhook delivery of it
//!   reaches a receiver on loopback, against a bare HTTP POST of the same body to the same
//!   receiver (alternating the two, one at a time). Target p99 < 50 ms.
//! - Throughput: `EVENTS_BENCH_N` events (default 20,000) published at once, until every one
//!   reached the receiver; the receiver counts distinct events, so the line proves no loss.
//!   Target ≥ 5,000 events/s.
//!
//! - B11: one call of the example WebAssembly formatter (`examples/slack-formatter`, warm:
//!   compiled once, a fresh store and instance per call as in delivery), against the built-in
//!   text formatter on the same event. Target p50 < 1 ms.
//!
//! It starts a control plane with a throw-away database and Redis (no agent is needed).
//! `EVENTS_BENCH_LAT_N` (default 300) sets the latency samples per side, `EVENTS_BENCH_ONLY`
//! (`b8`, `b11`) runs one figure.

use axum::body::Bytes;
use axum::extract::State;
use cpserver::events::{Actor, Event, Outcome, Resource};
use cpserver::test_support::TestServer;
use cpserver::Builder;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use uuid::Uuid;

#[derive(Default)]
struct Arrivals {
    seen: Mutex<HashMap<String, Instant>>,
    notify: Notify,
}

async fn receive(State(a): State<Arc<Arrivals>>, body: Bytes) -> &'static str {
    let at = Instant::now();
    if let Ok(v) = serde_json::from_slice::<Value>(&body) {
        if let Some(id) = v["resource"]["id"].as_str() {
            a.seen.lock().unwrap().entry(id.to_string()).or_insert(at);
        }
    }
    a.notify.notify_waiters();
    "ok"
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn p50_p99(mut xs: Vec<f64>) -> (f64, f64) {
    xs.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| xs[(((xs.len() - 1) as f64) * p).round() as usize];
    (at(0.5), at(0.99))
}

async fn wait_for(a: &Arrivals, id: &str, timeout: Duration) -> Option<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        let notified = a.notify.notified();
        if let Some(t) = a.seen.lock().unwrap().get(id) {
            return Some(*t);
        }
        if Instant::now() > deadline {
            return None;
        }
        let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
    }
}

fn event(team: Uuid) -> Event {
    Event::new(
        "capsule.create",
        team,
        Actor::system(),
        Resource::sandbox(Uuid::new_v4()),
    )
    .outcome(Outcome::Success)
}

fn selected(name: &str) -> bool {
    match std::env::var("EVENTS_BENCH_ONLY") {
        Ok(only) if !only.trim().is_empty() => only.split(',').any(|f| f.trim() == name),
        _ => true,
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    if selected("b11") {
        b11().await?;
    }
    if selected("b8") {
        b8().await?;
    }
    Ok(())
}

async fn b11() -> anyhow::Result<()> {
    use cpserver::channels::format::{BuiltinText, FormatInput, FormatterSource};
    use cpserver::channels::provider::Provider;
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/slack-formatter");
    let dir = tempfile::tempdir()?;
    let d = dir.path().join("slack-blocks");
    std::fs::create_dir_all(&d)?;
    std::fs::copy(example.join("formatter.wasm"), d.join("formatter.wasm"))?;
    std::fs::copy(example.join("manifest.json"), d.join("manifest.json"))?;
    let wasm = cpserver::formatters::WasmFormatters::new(dir.path(), Default::default())?;
    wasm.reload().await;
    let f = wasm.get("slack-blocks").ok_or_else(|| {
        anyhow::anyhow!("the example formatter did not load: {:?}", wasm.statuses())
    })?;
    let e = event(Uuid::new_v4()).meta("reason", "ttl_expired");
    let input = FormatInput {
        event: &e,
        provider: Provider::Slack,
        channel_name: "bench",
    };
    for _ in 0..50 {
        f.format(input).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let n = env_num("EVENTS_BENCH_B11_N", 2000);
    let (mut wasm_ms, mut builtin_ms) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let t = Instant::now();
        f.format(input).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        wasm_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        std::hint::black_box(BuiltinText::render(input));
        builtin_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (w50, w99) = p50_p99(wasm_ms);
    let (b50, b99) = p50_p99(builtin_ms);
    println!(
        "B11 formatter call (warm): wasm p50 {w50:.3} ms p99 {w99:.3} ms | built-in p50 {b50:.4} ms p99 {b99:.4} ms | ratio p50 {:.0} (n={n}; target p50 < 1 ms)",
        w50 / b50
    );
    Ok(())
}

async fn b8() -> anyhow::Result<()> {
    let server = TestServer::start_with(Builder::new().without_inventory(), |c| {
        c.events.channel_concurrency = 128;
    })
    .await;
    let client = server
        .signed_in("bench@example.com", "Bench", "password-123")
        .await;
    let teams = client.get("/v1/teams").send().await.json();
    let team = wrenn_extension_api::ids::decode(
        wrenn_extension_api::ids::TEAM,
        teams[0]["id"].as_str().unwrap_or_default(),
    )
    .ok_or_else(|| anyhow::anyhow!("no team"))?;

    let arrivals = Arc::new(Arrivals::default());
    let app = axum::Router::new()
        .fallback(receive)
        .with_state(arrivals.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let r = client
        .post("/v1/channels")
        .json(
            json!({"name": "bench", "provider": "webhook", "config": {"url": url},
                     "events": ["capsule.create"]}),
        )
        .send()
        .await;
    anyhow::ensure!(r.status == 201, "channel: {}", r.text);

    let mut redis = server.ctx().redis();
    let bare = reqwest::Client::new();
    let n = env_num("EVENTS_BENCH_LAT_N", 300);
    let (mut via, mut direct) = (Vec::new(), Vec::new());
    // Warm both paths (connection pools, prepared statements).
    for _ in 0..20 {
        let e = event(team);
        cpserver::events::publish(&mut redis, &e).await?;
        wait_for(&arrivals, &e.resource.id, Duration::from_secs(10)).await;
        let _ = bare.post(&url).body(event(team).to_json()).send().await?;
    }
    for _ in 0..n {
        let e = event(team);
        let t = Instant::now();
        cpserver::events::publish(&mut redis, &e).await?;
        let at = wait_for(&arrivals, &e.resource.id, Duration::from_secs(10))
            .await
            .ok_or_else(|| anyhow::anyhow!("event {} never arrived", e.resource.id))?;
        via.push((at - t).as_secs_f64() * 1e3);

        let e = event(team);
        let t = Instant::now();
        bare.post(&url)
            .header("content-type", "application/json")
            .body(e.to_json())
            .send()
            .await?;
        let at = wait_for(&arrivals, &e.resource.id, Duration::from_secs(10))
            .await
            .ok_or_else(|| anyhow::anyhow!("bare POST never arrived"))?;
        direct.push((at - t).as_secs_f64() * 1e3);
    }
    let (v50, v99) = p50_p99(via);
    let (d50, d99) = p50_p99(direct);
    println!(
        "B8 publish→webhook: p50 {v50:.2} ms p99 {v99:.2} ms | bare POST p50 {d50:.2} ms p99 {d99:.2} ms | ratio p50 {:.2} p99 {:.2} (n={n}; target p99 < 50 ms)",
        v50 / d50,
        v99 / d99
    );

    // Throughput: publish everything (pipelined), then wait for every distinct event.
    let total = env_num("EVENTS_BENCH_N", 20_000);
    let before = arrivals.seen.lock().unwrap().len();
    let events: Vec<Event> = (0..total).map(|_| event(team)).collect();
    let t = Instant::now();
    for chunk in events.chunks(500) {
        let mut pipe = redis::pipe();
        for e in chunk {
            pipe.cmd("XADD")
                .arg(cpserver::events::STREAM)
                .arg("MAXLEN")
                .arg("~")
                .arg(cpserver::events::STREAM_MAXLEN)
                .arg("*")
                .arg(cpserver::events::PAYLOAD_FIELD)
                .arg(e.to_json())
                .ignore();
        }
        let _: () = pipe.query_async(&mut redis).await?;
    }
    let published = t.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let got = arrivals.seen.lock().unwrap().len() - before;
        if got >= total || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = t.elapsed();
    let delivered = {
        let seen = arrivals.seen.lock().unwrap();
        events
            .iter()
            .filter(|e| seen.contains_key(&e.resource.id))
            .count()
    };
    println!(
        "B8 dispatcher throughput: {:.0} events/s ({delivered}/{total} distinct events delivered, lost {}; published in {:.0} ms, all delivered in {:.0} ms; target ≥ 5,000/s)",
        delivered as f64 / elapsed.as_secs_f64(),
        total - delivered,
        published.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e3,
    );
    let mut server = server;
    server.shutdown().await;
    Ok(())
}
