//! envd benchmarks (`make bench` runs `cargo run --release -p wrenn-envd --bin envd-bench`).
//!
//! Starts envd as a child process on a Unix socket (this binary re-executes itself with
//! `__serve`, so no separately built `envd` is needed) and measures, alternating each sample
//! with its baseline in the same run:
//! - exec round trip of `true` over the socket (Start → end event) against a local
//!   fork+exec+wait of `true`;
//! - bulk download MB/s of a file through `GET /files` against `cat` of the same file into a
//!   pipe.
//!
//! Prints one line per figure, e.g. `B3-envd exec_rtt p50=0.9ms p99=2.1ms ...`.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use http::Method;
use http_body_util::BodyExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use wrenn_envd::config::{Config, ListenAddr};
use wrenn_proto::envd::v1::process_event::Event;
use wrenn_proto::envd::v1::process_service_client::ProcessServiceClient;
use wrenn_proto::envd::v1::{ProcessConfig, StartRequest};

const EXEC_SAMPLES: usize = 400;
const EXEC_WARMUP: usize = 30;
const DOWNLOAD_BYTES: usize = 256 << 20;
const DOWNLOAD_SAMPLES: usize = 7;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if args.get(1).map(String::as_str) == Some("__serve") {
        let config =
            Config::parse_from(std::iter::once("envd".to_owned()).chain(args[2..].iter().cloned()));
        return runtime.block_on(wrenn_envd::run(config));
    }
    runtime.block_on(bench())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}ms", d.as_secs_f64() * 1000.0)
}

async fn bench() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("envd-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = bench_in(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn bench_in(dir: &Path) -> anyhow::Result<()> {
    let socket = dir.join("envd.sock");
    let mut envd = tokio::process::Command::new(std::env::current_exe()?)
        .arg("__serve")
        .arg("--listen")
        .arg(format!("unix:{}", socket.display()))
        .env("ENVD_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting envd")?;
    let mut lines = BufReader::new(envd.stdout.take().context("envd stdout")?).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await??
        .unwrap_or_default();
    if !line.starts_with("envd listening on") {
        bail!("envd did not start: {line:?}");
    }
    let addr = ListenAddr::Unix(socket);

    exec_rtt(&addr).await?;
    download(&addr, dir).await?;
    envd.kill().await?;
    Ok(())
}

async fn exec_rtt(addr: &ListenAddr) -> anyhow::Result<()> {
    let mut client = ProcessServiceClient::new(wrenn_envd::client::grpc_channel(addr).await?);
    let request = || StartRequest {
        process: Some(ProcessConfig {
            cmd: "true".into(),
            ..Default::default()
        }),
        tag: None,
        pty: None,
        stdin: false,
        paced: false,
    };
    let mut envd_times = Vec::with_capacity(EXEC_SAMPLES);
    let mut local_times = Vec::with_capacity(EXEC_SAMPLES);
    for i in 0..EXEC_WARMUP + EXEC_SAMPLES {
        let started = Instant::now();
        let mut stream = client.start(request()).await?.into_inner();
        let mut ended = false;
        while let Some(msg) = stream.message().await? {
            if let Some(Event::End(end)) = msg.event.and_then(|e| e.event) {
                ended = end.exit_code == 0;
            }
        }
        let envd_time = started.elapsed();
        if !ended {
            bail!("`true` did not end with exit code 0");
        }
        let started = Instant::now();
        let status =
            tokio::task::spawn_blocking(|| std::process::Command::new("true").status()).await??;
        let local_time = started.elapsed();
        if !status.success() {
            bail!("local `true` failed");
        }
        if i >= EXEC_WARMUP {
            envd_times.push(envd_time);
            local_times.push(local_time);
        }
    }
    envd_times.sort();
    local_times.sort();
    let (p50, p99) = (percentile(&envd_times, 0.5), percentile(&envd_times, 0.99));
    let (b50, b99) = (
        percentile(&local_times, 0.5),
        percentile(&local_times, 0.99),
    );
    println!(
        "B3-envd exec_rtt p50={} p99={} baseline_fork_exec p50={} p99={} ratio_p50={:.2} samples={}",
        ms(p50),
        ms(p99),
        ms(b50),
        ms(b99),
        p50.as_secs_f64() / b50.as_secs_f64(),
        EXEC_SAMPLES
    );
    Ok(())
}

async fn download(addr: &ListenAddr, dir: &Path) -> anyhow::Result<()> {
    let file: PathBuf = dir.join("payload.bin");
    {
        let mut data = vec![0u8; DOWNLOAD_BYTES];
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for chunk in data.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        std::fs::write(&file, &data)?;
    }
    let uri = format!("/files?path={}", file.display());
    let mut envd_rates = Vec::new();
    let mut cat_rates = Vec::new();
    let mb = DOWNLOAD_BYTES as f64 / 1e6;
    for _ in 0..DOWNLOAD_SAMPLES {
        let started = Instant::now();
        let mut sender = wrenn_envd::client::http1(addr).await?;
        let req =
            wrenn_envd::client::request(Method::GET, &uri, None).body(axum::body::Body::empty())?;
        let mut body = sender.send_request(req).await?.into_body();
        let mut got = 0usize;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                got += data.len();
            }
        }
        if got != DOWNLOAD_BYTES {
            bail!("downloaded {got} bytes, expected {DOWNLOAD_BYTES}");
        }
        envd_rates.push(mb / started.elapsed().as_secs_f64());

        let started = Instant::now();
        let mut cat = tokio::process::Command::new("cat")
            .arg(&file)
            .stdout(Stdio::piped())
            .spawn()?;
        let mut out = cat.stdout.take().context("cat stdout")?;
        let mut buf = vec![0u8; 256 << 10];
        let mut got = 0usize;
        loop {
            let n = out.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got += n;
        }
        cat.wait().await?;
        if got != DOWNLOAD_BYTES {
            bail!("cat produced {got} bytes");
        }
        cat_rates.push(mb / started.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (e, c) = (median(&mut envd_rates), median(&mut cat_rates));
    println!(
        "B9-envd download MB/s={e:.0} baseline_cat MB/s={c:.0} ratio={:.2} size_mb={mb:.0} samples={DOWNLOAD_SAMPLES}",
        e / c
    );
    Ok(())
}
