//! Shared helpers: start the real envd binary on a Unix socket or TCP, and typed clients.
//!
//! (A `support/mod.rs` rather than `support.rs`: Cargo would build the latter as a test
//! crate of its own.)
#![allow(dead_code)]

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tonic::codegen::InterceptedService;
use tonic::transport::Channel;
use wrenn_envd::client::{self, AccessTokenInterceptor};
use wrenn_envd::config::ListenAddr;
use wrenn_proto::envd::v1::filesystem_service_client::FilesystemServiceClient;
use wrenn_proto::envd::v1::process_event::{data_event::Output, EndEvent, Event};
use wrenn_proto::envd::v1::process_service_client::ProcessServiceClient;
use wrenn_proto::envd::v1::{
    process_selector, ProcessConfig, ProcessEvent, ProcessSelector, StartRequest,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Unix,
    Tcp,
}

pub const TRANSPORTS: [Transport; 2] = [Transport::Unix, Transport::Tcp];

pub type ProcessClient = ProcessServiceClient<InterceptedService<Channel, AccessTokenInterceptor>>;
pub type FsClient = FilesystemServiceClient<InterceptedService<Channel, AccessTokenInterceptor>>;

/// A running envd child process, killed on drop.
pub struct Envd {
    pub child: Child,
    pub addr: ListenAddr,
    pub dir: tempfile::TempDir,
    pub token: Option<String>,
    pub stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Envd {
    pub async fn start(transport: Transport) -> Self {
        Self::start_with(transport, &[]).await
    }

    pub async fn start_with(transport: Transport, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let listen = match transport {
            Transport::Unix => format!("unix:{}", dir.path().join("envd.sock").display()),
            Transport::Tcp => "tcp:127.0.0.1:0".to_owned(),
        };
        let mut child = Command::new(env!("CARGO_BIN_EXE_envd"))
            .arg("--listen")
            .arg(&listen)
            .args(extra)
            .env("ENVD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn envd");
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = read_listening(&mut stdout).await;
        let token = extra
            .windows(2)
            .find(|w| w[0] == "--access-token")
            .map(|w| w[1].to_owned());
        Self {
            child,
            addr,
            dir,
            token,
            stdout,
        }
    }

    /// Wraps an envd that runs elsewhere (e.g. inside a sandbox); `child` is any process the
    /// helper may own and kill on drop.
    pub fn attach(mut child: Child, addr: ListenAddr) -> Self {
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        Self {
            child,
            addr,
            dir: tempfile::tempdir().expect("temp dir"),
            token: None,
            stdout,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id().expect("running") as i32
    }

    /// Waits for the next `envd listening on …` line (after a re-bind).
    pub async fn next_listening(&mut self) -> ListenAddr {
        read_listening(&mut self.stdout).await
    }

    pub async fn channel(&self) -> Channel {
        client::grpc_channel(&self.addr)
            .await
            .expect("gRPC channel")
    }

    pub async fn process(&self) -> ProcessClient {
        ProcessServiceClient::with_interceptor(
            self.channel().await,
            AccessTokenInterceptor(self.token.clone()),
        )
        .max_decoding_message_size(64 << 20)
    }

    pub async fn fs(&self) -> FsClient {
        FilesystemServiceClient::with_interceptor(
            self.channel().await,
            AccessTokenInterceptor(self.token.clone()),
        )
    }

    /// One HTTP/1.1 request on a fresh connection; the whole response body.
    pub async fn http(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> (StatusCode, HeaderMap, Bytes) {
        let mut sender = client::http1(&self.addr).await.expect("http connection");
        let mut req = client::request(method, path, self.token.as_deref());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = sender
            .send_request(req.body(body).unwrap())
            .await
            .expect("http response");
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.expect("http body").to_bytes();
        (parts.status, parts.headers, bytes)
    }

    /// envd's resident memory in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

async fn read_listening(
    stdout: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> ListenAddr {
    let line = tokio::time::timeout(Duration::from_secs(20), stdout.next_line())
        .await
        .expect("envd did not announce its listener in time")
        .expect("read envd stdout")
        .expect("envd exited before listening");
    line.strip_prefix("envd listening on ")
        .unwrap_or_else(|| panic!("unexpected envd output: {line}"))
        .parse()
        .expect("listen address")
}

pub fn config(cmd: &str, args: &[&str]) -> ProcessConfig {
    ProcessConfig {
        cmd: cmd.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        envs: HashMap::new(),
        cwd: None,
        user: None,
    }
}

pub fn sh(script: &str) -> ProcessConfig {
    config("/bin/sh", &["-c", script])
}

pub fn by_pid(pid: u32) -> Option<ProcessSelector> {
    Some(ProcessSelector {
        selector: Some(process_selector::Selector::Pid(pid)),
    })
}

pub fn by_tag(tag: &str) -> Option<ProcessSelector> {
    Some(ProcessSelector {
        selector: Some(process_selector::Selector::Tag(tag.into())),
    })
}

/// Everything one process stream said.
#[derive(Debug, Default)]
pub struct Outcome {
    pub pid: u32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub pty: Vec<u8>,
    pub end: Option<EndEvent>,
    /// Output bytes skipped (offset jumps) for this subscriber.
    pub skipped: u64,
}

impl Outcome {
    pub fn record(&mut self, event: ProcessEvent, next_offset: &mut Option<u64>) {
        match event.event {
            Some(Event::Start(s)) => self.pid = s.pid,
            Some(Event::Data(d)) => {
                let data = match d.output {
                    Some(Output::Stdout(b)) => {
                        self.stdout.extend_from_slice(&b);
                        b.len()
                    }
                    Some(Output::Stderr(b)) => {
                        self.stderr.extend_from_slice(&b);
                        b.len()
                    }
                    Some(Output::Pty(b)) => {
                        self.pty.extend_from_slice(&b);
                        b.len()
                    }
                    None => 0,
                };
                if let Some(expected) = *next_offset {
                    self.skipped += d.offset.saturating_sub(expected);
                }
                *next_offset = Some(d.offset + data as u64);
            }
            Some(Event::End(e)) => self.end = Some(e),
            Some(Event::Keepalive(_)) | None => {}
        }
    }

    pub fn exit_code(&self) -> i32 {
        self.end.as_ref().expect("process ended").exit_code
    }
}

/// Starts a process and collects its stream until the end event.
pub async fn run(client: &mut ProcessClient, request: StartRequest) -> Outcome {
    let mut stream = client.start(request).await.expect("start").into_inner();
    let mut out = Outcome::default();
    let mut offset = None;
    while let Some(msg) = stream.message().await.expect("stream") {
        out.record(msg.event.expect("event"), &mut offset);
    }
    out
}

pub fn start(config: ProcessConfig) -> StartRequest {
    StartRequest {
        process: Some(config),
        tag: None,
        pty: None,
        stdin: false,
        paced: false,
    }
}
