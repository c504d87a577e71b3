//! `wrenn cp SRC DST`: one file into a capsule (`./local sb_…:/path`, multipart streamed to
//! `/files/stream/write`) or out of one (`sb_…:/path ./local`, streamed from
//! `/files/stream/read`). Neither direction holds the file in memory: chunks go from the
//! disk to the socket and back as they come. A progress bar is drawn for large files when
//! stderr is a terminal (never with `--json` or `--quiet`).
//!
//! Downloads land in a temporary file next to the destination, renamed into place once
//! complete, so an interrupted copy never leaves a truncated file under the real name.

use crate::cli::CpArgs;
use crate::client::{segment, Client};
use crate::error::{fail, CliError, Result};
use crate::{output, terminal, usage};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// Files from this size on get a progress bar.
const PROGRESS_FROM: u64 = 4 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// One side of a copy.
#[derive(Debug, PartialEq, Eq)]
enum Location {
    Local(String),
    Remote { capsule: String, path: String },
}

/// `sb_…:/path` is inside a capsule; anything else is a local path (so `./a:b` stays local).
fn location(arg: &str) -> Location {
    if let Some((capsule, path)) = arg.split_once(':') {
        let is_id = capsule.starts_with("sb_")
            && capsule.len() > 3
            && capsule[3..].chars().all(|c| c.is_ascii_alphanumeric());
        if is_id {
            return Location::Remote {
                capsule: capsule.to_string(),
                path: path.to_string(),
            };
        }
    }
    Location::Local(arg.to_string())
}

/// Refuses copies that do not have exactly one side in a capsule (before any credentials
/// are needed).
pub fn check(args: &CpArgs) -> Result<()> {
    match (location(&args.source), location(&args.destination)) {
        (Location::Remote { .. }, Location::Remote { .. }) => Err(usage(
            "both sides are in a capsule; copy through a local file instead",
        )),
        (Location::Local(_), Location::Local(_)) => Err(usage(
            "neither side is in a capsule: name one as CAPSULE_ID:PATH (e.g. sb_…:/tmp/file)",
        )),
        _ => Ok(()),
    }
}

pub async fn run(client: &Client, args: CpArgs, json: bool) -> Result<i32> {
    check(&args)?;
    let show_progress = !json && !args.quiet && terminal::stderr_is_terminal();
    match (location(&args.source), location(&args.destination)) {
        (Location::Local(local), Location::Remote { capsule, path }) => {
            let (remote, bytes) = upload(client, &local, &capsule, &path, show_progress).await?;
            report(json, &args.source, &format!("{capsule}:{remote}"), bytes)
        }
        (Location::Remote { capsule, path }, Location::Local(local)) => {
            let (written_to, bytes) =
                download(client, &capsule, &path, &local, show_progress).await?;
            let to_stdout = written_to.is_none();
            let dest = written_to.map(|p| p.display().to_string());
            if to_stdout && !json {
                return Ok(0);
            }
            report(json, &args.source, dest.as_deref().unwrap_or("-"), bytes)
        }
        _ => Err(usage("name exactly one side as CAPSULE_ID:PATH")),
    }
}

fn report(json: bool, source: &str, destination: &str, bytes: u64) -> Result<i32> {
    if json {
        output::json_line(&json!({"source": source, "destination": destination, "bytes": bytes}))?;
    } else {
        output::out(&format!(
            "{source} -> {destination} ({})\n",
            output::bytes(bytes)
        ))?;
    }
    Ok(0)
}

fn progress_bar(len: Option<u64>) -> ProgressBar {
    match len {
        Some(len) => {
            let bar = ProgressBar::new(len);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        }
        None => {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {bytes} {bytes_per_sec}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar
        }
    }
}

async fn upload(
    client: &Client,
    local: &str,
    capsule: &str,
    remote: &str,
    show_progress: bool,
) -> Result<(String, u64)> {
    type Chunks = futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>;
    let (chunks, len, name): (Chunks, Option<u64>, String) = if local == "-" {
        let stream = tokio_util::io::ReaderStream::with_capacity(tokio::io::stdin(), CHUNK);
        (stream.boxed(), None, "stdin".into())
    } else {
        let meta = tokio::fs::metadata(local)
            .await
            .map_err(|e| fail(format!("{local}: {e}")))?;
        if meta.is_dir() {
            return Err(fail(format!(
                "{local} is a directory; cp copies one file (tar it first: \
                 tar czf - DIR | wrenn cp - {capsule}:/tmp/dir.tgz)"
            )));
        }
        let file = tokio::fs::File::open(local)
            .await
            .map_err(|e| fail(format!("{local}: {e}")))?;
        let name = Path::new(local)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        let stream = tokio_util::io::ReaderStream::with_capacity(file, CHUNK);
        (stream.boxed(), Some(meta.len()), name)
    };
    let remote = remote_destination(client, capsule, remote, &name).await?;

    let bar = (show_progress && len.is_none_or(|l| l >= PROGRESS_FROM)).then(|| progress_bar(len));
    let counted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let body = {
        let bar = bar.clone();
        let counted = counted.clone();
        let stream = chunks.inspect_ok(move |chunk: &bytes::Bytes| {
            counted.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
            if let Some(bar) = &bar {
                bar.inc(chunk.len() as u64);
            }
        });
        reqwest::Body::wrap_stream(stream)
    };
    let part = match len {
        Some(len) => reqwest::multipart::Part::stream_with_length(body, len),
        None => reqwest::multipart::Part::stream(body),
    }
    .file_name(name)
    .mime_str("application/octet-stream")
    .map_err(|e| fail(format!("multipart: {e}")))?;
    // The server needs `path` before `file`.
    let form = reqwest::multipart::Form::new()
        .text("path", remote.clone())
        .part("file", part);
    let path = format!("/v1/capsules/{}/files/stream/write", segment(capsule));
    let sent = client
        .send(client.request(Method::POST, &path).multipart(form))
        .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    sent?;
    Ok((remote, counted.load(std::sync::atomic::Ordering::Relaxed)))
}

/// The path to write in the capsule: `remote` itself, or `remote/NAME` when it ends with
/// `/` or names an existing directory.
async fn remote_destination(
    client: &Client,
    capsule: &str,
    remote: &str,
    name: &str,
) -> Result<String> {
    if remote.is_empty() {
        return Err(usage("give the path inside the capsule: CAPSULE_ID:PATH"));
    }
    if remote.ends_with('/') {
        return Ok(format!("{remote}{name}"));
    }
    match stat(client, capsule, remote).await? {
        Some(entry) if entry["type"] == "directory" => Ok(format!("{remote}/{name}")),
        _ => Ok(remote.to_string()),
    }
}

/// The directory entry of `path` inside the capsule, from a listing of its parent; `None`
/// when it does not exist (or the parent cannot be listed).
async fn stat(client: &Client, capsule: &str, path: &str) -> Result<Option<Value>> {
    let trimmed = path.trim_end_matches('/');
    let (parent, name) = match trimmed.rsplit_once('/') {
        Some(("", name)) => ("/", name),
        Some((parent, name)) => (parent, name),
        None => (".", trimmed),
    };
    if name.is_empty() {
        return Ok(Some(json!({"type": "directory"})));
    }
    let list = client
        .post(
            &format!("/v1/capsules/{}/files/list", segment(capsule)),
            &json!({"path": parent, "depth": 1}),
        )
        .await;
    match list {
        Ok(answer) => Ok(answer.value["entries"]
            .as_array()
            .and_then(|entries| entries.iter().find(|e| e["name"] == name).cloned())),
        // A missing parent is for the write itself to report (it creates parents).
        Err(CliError::Api {
            status: 404 | 400, ..
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Streams a capsule file to `local` (`-`: stdout). Returns where it was written (`None`
/// for stdout) and the byte count.
async fn download(
    client: &Client,
    capsule: &str,
    remote: &str,
    local: &str,
    show_progress: bool,
) -> Result<(Option<PathBuf>, u64)> {
    if remote.is_empty() {
        return Err(usage("give the path inside the capsule: CAPSULE_ID:PATH"));
    }
    let name = remote
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty())
        .unwrap_or("file")
        .to_string();
    let target = if local == "-" {
        None
    } else {
        let local_path = PathBuf::from(local);
        Some(if local.ends_with('/') || local_path.is_dir() {
            local_path.join(&name)
        } else {
            local_path
        })
    };
    let len = if show_progress {
        stat(client, capsule, remote)
            .await
            .ok()
            .flatten()
            .and_then(|e| e["size"].as_u64())
    } else {
        None
    };
    let path = format!("/v1/capsules/{}/files/stream/read", segment(capsule));
    let response = client
        .send(
            client
                .request(Method::POST, &path)
                .json(&json!({"path": remote})),
        )
        .await?;
    let url = client.url(&path);
    let bar = (show_progress && len.is_none_or(|l| l >= PROGRESS_FROM)).then(|| progress_bar(len));

    let (tmp, mut sink): (
        Option<PathBuf>,
        Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
    ) = match &target {
        None => (None, Box::new(tokio::io::stdout())),
        Some(target) => {
            let tmp = temporary_sibling(target);
            let file = tokio::fs::File::create(&tmp)
                .await
                .map_err(|e| fail(format!("{}: {e}", target.display())))?;
            (Some(tmp), Box::new(file))
        }
    };
    let copied = async {
        let mut stream = response.bytes_stream();
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| crate::client::network_error(&url, &e))?;
            sink.write_all(&chunk).await?;
            total += chunk.len() as u64;
            if let Some(bar) = &bar {
                bar.inc(chunk.len() as u64);
            }
        }
        sink.flush().await?;
        Ok::<u64, CliError>(total)
    }
    .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    drop(sink);
    match (copied, tmp, &target) {
        (Ok(total), Some(tmp), Some(target)) => {
            tokio::fs::rename(&tmp, target).await.map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                fail(format!("{}: {e}", target.display()))
            })?;
            Ok((Some(target.clone()), total))
        }
        (Ok(total), _, _) => Ok((None, total)),
        (Err(e), tmp, _) => {
            if let Some(tmp) = tmp {
                let _ = tokio::fs::remove_file(&tmp).await;
            }
            Err(e)
        }
    }
}

/// `.NAME.wrenn-PID` in the target's directory (same file system, so the rename is atomic).
fn temporary_sibling(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".into());
    target.with_file_name(format!(".{name}.wrenn-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capsule_paths_and_local_paths() {
        assert_eq!(
            location("sb_0k3m2x9q:/tmp/x"),
            Location::Remote {
                capsule: "sb_0k3m2x9q".into(),
                path: "/tmp/x".into()
            }
        );
        assert_eq!(location("./a:b"), Location::Local("./a:b".into()));
        assert_eq!(location("sb_:x"), Location::Local("sb_:x".into()));
        assert_eq!(location("sb_a/b:c"), Location::Local("sb_a/b:c".into()));
        assert_eq!(location("-"), Location::Local("-".into()));
    }
}
