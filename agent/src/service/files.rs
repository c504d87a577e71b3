//! File RPCs: contents over envd's HTTP `/files`, metadata over its FilesystemService.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use wrenn_proto::envd::v1 as envd;
use wrenn_proto::hostagent::v1 as pb;

use super::{envd_error, envd_status, AgentService, RpcStream};
use crate::capsules::Capsule;

/// Chunk size of streamed reads: bigger pieces of envd's body are cut (without a copy),
/// smaller ones gathered.
const CHUNK: usize = 64 * 1024;

/// Streamed writes: client chunks that have already arrived are gathered up to this size
/// into one piece of envd's request body (fewer, bigger socket reads inside the capsule).
const GATHER: usize = 1 << 20;

/// Pieces queued towards envd during a streamed write.
const BODY_QUEUE: usize = 4;

/// Chunks of a streamed write gathered into one piece; a lone chunk is passed on as it is.
#[derive(Default)]
struct Gather {
    first: Option<Bytes>,
    rest: BytesMut,
}

impl Gather {
    fn len(&self) -> usize {
        self.first.as_ref().map_or(0, Bytes::len) + self.rest.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&mut self, chunk: Bytes) {
        if self.is_empty() {
            self.first = Some(chunk);
            return;
        }
        if let Some(first) = self.first.take() {
            self.rest.reserve(GATHER.max(first.len() + chunk.len()));
            self.rest.extend_from_slice(&first);
        }
        self.rest.extend_from_slice(&chunk);
    }

    fn take(&mut self) -> Bytes {
        match self.first.take() {
            Some(first) => first,
            None => self.rest.split().freeze(),
        }
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay as they are).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn files_query(path: &str, user: &str) -> Result<String, Status> {
    if path.is_empty() {
        return Err(Status::invalid_argument("path is required"));
    }
    let mut q = format!("/files?path={}", encode(path));
    if !user.is_empty() {
        q.push_str(&format!("&user={}", encode(user)));
    }
    Ok(q)
}

fn user(u: String) -> Option<String> {
    (!u.is_empty()).then_some(u)
}

fn entry(e: envd::EntryInfo) -> pb::FileEntry {
    let kind = match envd::FileType::try_from(e.r#type).unwrap_or(envd::FileType::Unspecified) {
        envd::FileType::Directory => "directory",
        envd::FileType::Symlink => "symlink",
        _ => "file",
    };
    pb::FileEntry {
        name: e.name,
        path: e.path,
        r#type: kind.into(),
        size: e.size,
        mode: e.mode,
        permissions: e.permissions,
        owner: e.owner,
        group: e.group,
        modified_at: e.modified_at,
        symlink_target: e.symlink_target.unwrap_or_default(),
    }
}

async fn upload(
    svc: &AgentService,
    id: &str,
    path: &str,
    user: &str,
    body: Vec<u8>,
) -> Result<u64, Status> {
    let capsule = svc.host.running(id)?;
    let len = body.len() as u64;
    let q = files_query(path, user)?;
    capsule
        .envd()
        .http("POST", &q, Some("application/octet-stream"), body)
        .await
        .and_then(|r| r.ok())
        .map_err(envd_error)?;
    Ok(len)
}

async fn download(
    svc: &AgentService,
    id: &str,
    path: &str,
    user: &str,
) -> Result<bytes::Bytes, Status> {
    let capsule = svc.host.running(id)?;
    let q = files_query(path, user)?;
    let resp = capsule
        .envd()
        .http("GET", &q, None, Vec::new())
        .await
        .and_then(|r| r.ok())
        .map_err(envd_error)?;
    Ok(resp.body)
}

pub async fn write(
    svc: &AgentService,
    r: pb::WriteFileRequest,
) -> Result<pb::WriteFileResponse, Status> {
    let bytes_written = upload(svc, &r.sandbox_id, &r.path, &r.user, r.content).await?;
    Ok(pb::WriteFileResponse { bytes_written })
}

pub async fn read(
    svc: &AgentService,
    r: pb::ReadFileRequest,
) -> Result<pb::ReadFileResponse, Status> {
    let content = download(svc, &r.sandbox_id, &r.path, &r.user).await?;
    Ok(pb::ReadFileResponse {
        content: content.to_vec(),
    })
}

pub async fn write_stream(
    svc: &AgentService,
    mut stream: Streaming<pb::WriteFileStreamRequest>,
) -> Result<pb::WriteFileResponse, Status> {
    use pb::write_file_stream_request::Part;
    let header = match stream.next().await {
        Some(Ok(pb::WriteFileStreamRequest {
            part: Some(Part::Header(h)),
        })) => h,
        Some(Err(s)) => return Err(s),
        _ => {
            return Err(Status::invalid_argument(
                "the first message must be the header",
            ))
        }
    };
    let capsule = svc.host.running(&header.sandbox_id)?;
    let q = files_query(&header.path, &header.user)?;
    // The client's chunks go into envd's request body as they come; the bounded channel is
    // the backpressure (at most a few MiB are ever held here).
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(BODY_QUEUE);
    let body = StreamBody::new(ReceiverStream::new(rx));
    let toucher = capsule.clone();
    let forward = async move {
        let mut written = 0u64;
        let mut gather = Gather::default();
        loop {
            // Wait for the client only when nothing is gathered; else take what has already
            // arrived, and pass the gathered bytes on as soon as the client has no more.
            let next = if gather.len() >= GATHER {
                None
            } else if gather.is_empty() {
                Some(stream.next().await)
            } else {
                stream.next().now_or_never()
            };
            let Some(next) = next else {
                if tx.send(Ok(Frame::data(gather.take()))).await.is_err() {
                    // envd answered before the body ended; its answer is the result.
                    return Ok(written);
                }
                continue;
            };
            let Some(msg) = next else { break };
            let failure = match msg {
                Ok(pb::WriteFileStreamRequest {
                    part: Some(Part::Chunk(c)),
                }) => {
                    if !c.is_empty() {
                        written += c.len() as u64;
                        toucher.touch();
                        gather.push(c);
                    }
                    continue;
                }
                Ok(pb::WriteFileStreamRequest {
                    part: Some(Part::Header(_)),
                }) => Status::invalid_argument("header sent twice"),
                Ok(_) => continue,
                Err(s) => s,
            };
            // Abort the upload: envd discards a truncated body and leaves nothing behind.
            let _ = tx
                .send(Err(std::io::Error::other(failure.message().to_owned())))
                .await;
            return Err(failure);
        }
        if !gather.is_empty() {
            let _ = tx.send(Ok(Frame::data(gather.take()))).await;
        }
        Ok(written)
    };
    let envd = capsule.envd();
    let send = envd.http_streaming("POST", &q, Some("application/octet-stream"), body);
    tokio::pin!(forward);
    tokio::pin!(send);
    let mut forwarded: Option<Result<u64, Status>> = None;
    let answer = loop {
        // Forwarding first: a client failure is reported as such, not as the aborted
        // request it causes.
        tokio::select! {
            biased;
            f = &mut forward, if forwarded.is_none() => forwarded = Some(f),
            r = &mut send => break r,
        }
    };
    if let Some(Err(s)) = forwarded {
        return Err(s);
    }
    answer.map_err(envd_error)?;
    let bytes_written = match forwarded {
        Some(f) => f?,
        None => forward.await?,
    };
    capsule.touch();
    Ok(pb::WriteFileResponse { bytes_written })
}

/// State of one streamed read: envd's response body passed on in [`CHUNK`]-sized pieces,
/// slices of its frames where they are big enough.
struct ReadState {
    body: Incoming,
    /// Part of a big frame not sent yet.
    big: Bytes,
    /// Small frames gathered.
    small: BytesMut,
    capsule: Arc<Capsule>,
    done: bool,
}

impl ReadState {
    /// The next chunk to send, if one is ready (the gathered bytes go first).
    fn ready(&mut self) -> Option<Bytes> {
        if self.small.len() >= CHUNK || (self.done && !self.small.is_empty()) {
            let n = self.small.len().min(CHUNK);
            return Some(self.small.split_to(n).freeze());
        }
        if !self.big.is_empty() {
            if self.big.len() >= CHUNK || self.done {
                let n = self.big.len().min(CHUNK);
                return Some(self.big.split_to(n));
            }
            // A short tail waits for more, gathered.
            self.small.extend_from_slice(&self.big);
            self.big.clear();
        }
        None
    }

    /// Takes the next piece of envd's body (called once nothing is [`ReadState::ready`]).
    fn take(&mut self, mut data: Bytes) {
        if !self.small.is_empty() {
            let n = (CHUNK - self.small.len()).min(data.len());
            self.small.extend_from_slice(&data.split_to(n));
        }
        self.big = data;
    }
}

pub async fn read_stream(
    svc: &AgentService,
    r: pb::ReadFileRequest,
) -> Result<RpcStream<pb::FileChunk>, Status> {
    let capsule = svc.host.running(&r.sandbox_id)?;
    let q = files_query(&r.path, &r.user)?;
    let resp = capsule
        .envd()
        .http_streaming("GET", &q, None, Empty::<Bytes>::new())
        .await
        .map_err(envd_error)?;
    let state = ReadState {
        body: resp.into_body(),
        big: Bytes::new(),
        small: BytesMut::new(),
        capsule,
        done: false,
    };
    // Pulled by tonic as the client's flow-control window allows, so envd is read only
    // as fast as the client consumes.
    let chunks = futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(data) = st.ready() {
                st.capsule.touch();
                return Some((Ok(pb::FileChunk { data }), st));
            }
            if st.done {
                return None;
            }
            match st.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(d) = frame.into_data() {
                        st.take(d);
                    }
                }
                Some(Err(e)) => {
                    st.done = true;
                    st.big = Bytes::new();
                    st.small.clear();
                    return Some((
                        Err(Status::unavailable(format!("envd: reading the file: {e}"))),
                        st,
                    ));
                }
                None => st.done = true,
            }
        }
    });
    Ok(Box::pin(chunks))
}

pub async fn list_dir(
    svc: &AgentService,
    r: pb::ListDirRequest,
) -> Result<pb::ListDirResponse, Status> {
    let capsule = svc.host.running(&r.sandbox_id)?;
    let envd = capsule.envd();
    let req = envd::ListDirRequest {
        path: r.path,
        depth: r.depth.max(1),
        user: None,
    };
    let resp = envd
        .filesystem()
        .list_dir(envd.request(req))
        .await
        .map_err(envd_status)?
        .into_inner();
    Ok(pb::ListDirResponse {
        entries: resp.entries.into_iter().map(entry).collect(),
    })
}

pub async fn make_dir(
    svc: &AgentService,
    r: pb::MakeDirRequest,
) -> Result<pb::MakeDirResponse, Status> {
    let capsule = svc.host.running(&r.sandbox_id)?;
    let envd = capsule.envd();
    let req = envd::MakeDirRequest {
        path: r.path,
        user: None,
    };
    let resp = envd
        .filesystem()
        .make_dir(envd.request(req))
        .await
        .map_err(envd_status)?
        .into_inner();
    Ok(pb::MakeDirResponse {
        entry: resp.entry.map(entry),
    })
}

pub async fn remove(
    svc: &AgentService,
    r: pb::RemovePathRequest,
) -> Result<pb::RemovePathResponse, Status> {
    let capsule = svc.host.running(&r.sandbox_id)?;
    let envd = capsule.envd();
    let req = envd::RemoveRequest {
        path: r.path,
        user: user(String::new()),
    };
    envd.filesystem()
        .remove(envd.request(req))
        .await
        .map_err(envd_status)?;
    Ok(pb::RemovePathResponse {})
}

/// Archives `/` inside a capsule without the kernel file systems and the run-time
/// directories (whose mount points are made again on the host), with nothing but POSIX sh and
/// a plain `tar -c` (busybox's has no `--exclude`).
const FLATTEN_SCRIPT: &str = "cd / && set -- && for e in * .[!.]* ..?*; do \
    case \"$e\" in proc|sys|dev|tmp|run|'*'|'.[!.]*'|'..?*') ;; *) set -- \"$@\" \"./$e\" ;; esac; \
    done && exec tar -cf - \"$@\"";

/// Mount points and run-time directories a flattened rootfs gets back, with their modes.
const FLATTEN_DIRS: [(&str, u32); 5] = [
    ("proc", 0o555),
    ("sys", 0o555),
    ("dev", 0o755),
    ("run", 0o755),
    ("tmp", 0o1777),
];

/// Writes the capsule's whole filesystem (base plus its writes) as a new base template:
/// `tar` runs inside the capsule and its output is unpacked on the host by GNU tar, which
/// never writes through a member symlink nor outside the target (the archive is the
/// capsule's, so untrusted).
pub async fn flatten(
    svc: &AgentService,
    r: pb::FlattenRootfsRequest,
) -> Result<pb::FlattenRootfsResponse, Status> {
    let t = r
        .template
        .ok_or_else(|| Status::invalid_argument("template is required"))?;
    let capsule = svc.host.running(&r.sandbox_id)?;
    let dest = svc.host.template_dir(&t.team_id, &t.template_id);
    if dest.exists() {
        return Err(Status::already_exists(format!(
            "template {}/{} already exists",
            t.team_id, t.template_id
        )));
    }
    let envd = capsule.envd();
    let req = envd::StartRequest {
        process: Some(envd::ProcessConfig {
            cmd: "/bin/sh".into(),
            args: vec!["-c".into(), FLATTEN_SCRIPT.into()],
            envs: Default::default(),
            cwd: Some("/".into()),
            user: Some("root".into()),
        }),
        tag: None,
        pty: None,
        stdin: false,
        paced: true,
    };
    let mut stream = envd
        .process()
        .start(envd.request(req))
        .await
        .map_err(envd_status)?
        .into_inner();
    let tmp = dest.with_file_name(format!(".flatten-{}", r.sandbox_id));
    let _ = std::fs::remove_dir_all(&tmp);
    let rootfs = tmp.join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(|e| Status::internal(e.to_string()))?;
    let mut untar = tokio::process::Command::new("tar")
        .args(["-xf", "-", "-C"])
        .arg(&rootfs)
        .stdin(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Status::internal(format!("tar: {e}")))?;
    let mut stdin = untar
        .stdin
        .take()
        .ok_or_else(|| Status::internal("tar stdin"))?;
    let mut expected = 0u64;
    let mut exit = None;
    while let Some(item) = stream.next().await {
        use envd::process_event::data_event::Output;
        use envd::process_event::Event;
        match item.map_err(envd_status)?.event.and_then(|e| e.event) {
            Some(Event::Data(d)) => {
                if d.offset != expected {
                    let _ = std::fs::remove_dir_all(&tmp);
                    return Err(Status::internal(
                        "archive stream lost data (subscriber fell behind)",
                    ));
                }
                if let Some(Output::Stdout(b)) = d.output {
                    expected += b.len() as u64;
                    tokio::io::AsyncWriteExt::write_all(&mut stdin, &b)
                        .await
                        .map_err(|e| Status::internal(format!("tar: {e}")))?;
                } else if let Some(Output::Stderr(b)) | Some(Output::Pty(b)) = d.output {
                    expected += b.len() as u64;
                }
            }
            Some(Event::End(e)) => {
                exit = Some(e.exit_code);
                break;
            }
            _ => {}
        }
    }
    drop(stdin);
    let status = untar
        .wait()
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
    if exit != Some(0) || !status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(Status::internal(format!(
            "archiving the capsule failed (tar in capsule: {exit:?}, on host: {status})"
        )));
    }
    for (dir, mode) in FLATTEN_DIRS {
        use std::os::unix::fs::PermissionsExt;
        let path = rootfs.join(dir);
        let made = std::fs::create_dir_all(&path)
            .and_then(|_| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)));
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(Status::internal(format!("making /{dir}: {e}")));
        }
    }
    std::fs::rename(&tmp, &dest).map_err(|e| Status::internal(e.to_string()))?;
    let out = tokio::process::Command::new("du")
        .args(["-sb"])
        .arg(&dest)
        .output()
        .await;
    let size_bytes = out
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .and_then(|s| s.parse().ok())
        })
        .unwrap_or(0);
    Ok(pb::FlattenRootfsResponse { size_bytes })
}
