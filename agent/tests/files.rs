//! Streamed file transfer through the real agent and a real gVisor capsule: a file far
//! larger than the agent may hold in memory goes in and out intact.
//! Run as root with runsc installed; otherwise each test prints why it skips.

#[path = "support/agent.rs"]
mod support;

use std::time::Instant;

use sha2::{Digest, Sha256};
use support::{capsule_id, create_req, ok, sh, skip, Agent, BUSYBOX};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;
use tonic::Code;
use wrenn_proto::hostagent::v1 as pb;
use wrenn_proto::hostagent::v1::write_file_stream_request::Part;

const MIB: u64 = 1024 * 1024;
/// Size of the transferred file.
const FILE_SIZE: u64 = 300 * MIB;
/// Size of each chunk the client sends.
const SEND_CHUNK: usize = MIB as usize;
/// The agent's peak RSS must stay below this (half the file).
const RSS_LIMIT_KB: u64 = 150 * 1024;

fn header(id: &str, path: &str) -> pb::WriteFileStreamRequest {
    pb::WriteFileStreamRequest {
        part: Some(Part::Header(pb::WriteFileStreamHeader {
            sandbox_id: id.into(),
            path: path.into(),
            user: String::new(),
        })),
    }
}

fn chunk(data: Vec<u8>) -> pb::WriteFileStreamRequest {
    pb::WriteFileStreamRequest {
        part: Some(Part::Chunk(data.into())),
    }
}

/// Peak resident set size (VmHWM) of a process, in KiB.
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

/// Deterministic, incompressible bytes (xorshift64*), generated chunk by chunk.
struct Noise(u64);

impl Noise {
    fn fill(&mut self, buf: &mut [u8]) {
        for word in buf.chunks_mut(8) {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            word.copy_from_slice(&v[..word.len()]);
        }
    }
}

/// Streams `FILE_SIZE` bytes to `path` in the capsule; returns (bytes_written, SHA-256).
async fn stream_write(a: &mut Agent, id: &str, path: &str) -> (u64, Vec<u8>) {
    let (tx, rx) = mpsc::channel(4);
    tx.send(header(id, path)).await.unwrap();
    let producer = tokio::spawn(async move {
        let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
        let mut hash = Sha256::new();
        let mut left = FILE_SIZE;
        while left > 0 {
            let n = left.min(SEND_CHUNK as u64) as usize;
            let mut buf = vec![0u8; n];
            noise.fill(&mut buf);
            hash.update(&buf);
            left -= n as u64;
            if tx.send(chunk(buf)).await.is_err() {
                break;
            }
        }
        hash.finalize().to_vec()
    });
    let written = a
        .client
        .write_file_stream(ReceiverStream::new(rx))
        .await
        .unwrap_or_else(|e| panic!("stream write {path}: {e}"))
        .into_inner()
        .bytes_written;
    (written, producer.await.unwrap())
}

/// Streams `path` out of the capsule; returns (length, SHA-256, largest chunk).
async fn stream_read(a: &mut Agent, id: &str, path: &str) -> (u64, Vec<u8>, usize) {
    let mut stream = a
        .client
        .read_file_stream(pb::ReadFileRequest {
            sandbox_id: id.into(),
            path: path.into(),
            user: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("stream read {path}: {e}"))
        .into_inner();
    let mut hash = Sha256::new();
    let mut len = 0u64;
    let mut largest = 0;
    while let Some(c) = stream.next().await {
        let c = c.unwrap_or_else(|e| panic!("stream read {path}: {e}"));
        len += c.data.len() as u64;
        largest = largest.max(c.data.len());
        hash.update(&c.data);
    }
    (len, hash.finalize().to_vec(), largest)
}

#[tokio::test(flavor = "multi_thread")]
async fn large_file_streams_through_the_agent_without_buffering() {
    if skip("streamed files") {
        return;
    }
    let mut a = Agent::start(&[]).await;
    let pid = a.pid().expect("agent pid");
    let id = capsule_id();
    let mut req = create_req(&id, BUSYBOX);
    req.memory_mb = 1024;
    a.client.create_sandbox(req).await.expect("create");
    let before_kb = peak_rss_kb(pid);

    let path = "/root/big.bin";
    let started = Instant::now();
    let (written, sent_hash) = stream_write(&mut a, &id, path).await;
    let write_secs = started.elapsed().as_secs_f64();
    assert_eq!(written, FILE_SIZE);
    assert_eq!(
        ok(sh(&mut a.client, &id, &format!("wc -c < {path}")).await),
        FILE_SIZE.to_string()
    );
    let after_write_kb = peak_rss_kb(pid);

    let started = Instant::now();
    let (len, read_hash, largest) = stream_read(&mut a, &id, path).await;
    let read_secs = started.elapsed().as_secs_f64();
    assert_eq!(len, FILE_SIZE);
    assert_eq!(read_hash, sent_hash, "content changed on the way");
    assert!(largest <= 64 * 1024, "chunk of {largest} bytes");
    let peak_kb = peak_rss_kb(pid);

    let mb = (FILE_SIZE / MIB) as f64;
    eprintln!(
        "agent peak RSS: {before_kb} KiB after create, {after_write_kb} KiB after write, \
         {peak_kb} KiB after read; write {:.0} MiB/s, read {:.0} MiB/s",
        mb / write_secs,
        mb / read_secs
    );
    assert!(
        peak_kb < RSS_LIMIT_KB,
        "agent peak RSS {peak_kb} KiB for a {FILE_SIZE}-byte file"
    );

    a.client
        .destroy_sandbox(pb::DestroySandboxRequest { sandbox_id: id })
        .await
        .expect("destroy");
}

#[tokio::test(flavor = "multi_thread")]
async fn streamed_file_errors_map_to_grpc_codes() {
    if skip("streamed file errors") {
        return;
    }
    let mut a = Agent::start(&[]).await;
    let id = capsule_id();
    a.client
        .create_sandbox(create_req(&id, BUSYBOX))
        .await
        .expect("create");
    let read = |path: &str| pb::ReadFileRequest {
        sandbox_id: id.clone(),
        path: path.into(),
        user: String::new(),
    };

    // Reads: missing file, a directory, an empty path, an unknown capsule.
    let err = a
        .client
        .read_file_stream(read("/root/missing"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");
    let err = a.client.read_file_stream(read("/root")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let err = a.client.read_file_stream(read("")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let mut other = read("/root/x");
    other.sandbox_id = capsule_id();
    let err = a.client.read_file_stream(other).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");

    // Writes: no header first, a second header, an unknown capsule.
    let err = a
        .client
        .write_file_stream(tokio_stream::iter(vec![chunk(b"x".to_vec())]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let err = a
        .client
        .write_file_stream(tokio_stream::iter(vec![
            header(&id, "/root/twice"),
            chunk(b"partial".to_vec()),
            header(&id, "/root/twice"),
        ]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    // The aborted upload left nothing behind.
    let (code, _, _) = sh(&mut a.client, &id, "test -e /root/twice").await;
    assert_ne!(code, 0, "an aborted upload left /root/twice behind");
    let err = a
        .client
        .write_file_stream(tokio_stream::iter(vec![header(&capsule_id(), "/root/x")]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err}");

    // A small round trip, including an empty file.
    let small = b"hello, streamed world".to_vec();
    let resp = a
        .client
        .write_file_stream(tokio_stream::iter(vec![
            header(&id, "/root/dir/small.txt"),
            chunk(small[..5].to_vec()),
            chunk(small[5..].to_vec()),
        ]))
        .await
        .expect("small write")
        .into_inner();
    assert_eq!(resp.bytes_written, small.len() as u64);
    assert_eq!(
        ok(sh(&mut a.client, &id, "cat /root/dir/small.txt").await),
        "hello, streamed world"
    );
    let mut got = Vec::new();
    let mut s = a
        .client
        .read_file_stream(read("/root/dir/small.txt"))
        .await
        .expect("small read")
        .into_inner();
    while let Some(c) = s.next().await {
        got.extend_from_slice(&c.expect("chunk").data);
    }
    assert_eq!(got, small);
    a.client
        .write_file_stream(tokio_stream::iter(vec![header(&id, "/root/empty")]))
        .await
        .expect("empty write");
    assert_eq!(ok(sh(&mut a.client, &id, "wc -c < /root/empty").await), "0");

    a.client
        .destroy_sandbox(pb::DestroySandboxRequest { sandbox_id: id })
        .await
        .expect("destroy");
}
