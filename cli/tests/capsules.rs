//! The real `wrenn` binary against a real control plane, a real agent and gVisor capsules
//! (cpserver's `Stack`): login and config, the capsule lifecycle, exec, cp of a 50 MB file
//! both ways, an interactive shell driven through a pseudo-terminal, templates from
//! snapshots, and how errors read. One stack for the whole file: starting one takes a few
//! seconds, so everything runs in one test, section by section.

mod support;

use cpserver::test_support::stack::Stack;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::pty::Pty;
use support::{chmod, mode, Wrenn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_against_a_real_stack() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let started = Instant::now();
    let alice = stack.account("alice").await;
    let base = stack.url("");

    // ---- login: key from stdin (not a terminal), verified, saved with mode 0600
    let w = Wrenn::new();
    let run = w
        .run_with_stdin(
            &["login", "--url", &base],
            Some(&format!("{}\n", alice.api_key)),
        )
        .await;
    run.ok().no_panic();
    assert!(run.stdout.contains(&base), "{run:?}");
    assert_eq!(mode(&w.config), 0o600, "config file mode");
    assert_eq!(
        mode(w.config.parent().unwrap()),
        0o700,
        "config directory mode"
    );
    let saved = std::fs::read_to_string(&w.config).unwrap();
    assert!(
        saved.contains(&alice.api_key) && saved.contains(&base),
        "{saved}"
    );
    // Later commands use the file.
    let list = w.run(&["--json", "capsule", "list"]).await;
    assert_eq!(list.ok().json(), Value::Array(vec![]));

    // A wrong key is refused before anything is saved.
    let other = Wrenn::new();
    let run = other
        .run(&[
            "login",
            "--url",
            &base,
            "--api-key",
            "wrn_00000000000000000000000000000000",
        ])
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("refused the API key"), "{run:?}");
    assert!(!other.config.exists());

    // The same file made readable by others is refused, naming the fix.
    chmod(&w.config, 0o644);
    let run = w.run(&["capsule", "list"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("chmod 600 {}", w.config.display())),
        "{run:?}"
    );
    chmod(&w.config, 0o600);

    // ---- environment variables without any file (and overriding a file)
    let env_only = Wrenn::new()
        .env("WRENN_URL", &base)
        .env("WRENN_API_KEY", &alice.api_key);
    assert!(!env_only.config.exists());
    env_only.run(&["--json", "capsule", "list"]).await.ok();
    let bad_file = w
        .with_config(&w.config)
        .env("WRENN_API_KEY", "wrn_00000000000000000000000000000000");
    let run = bad_file.run(&["capsule", "list"]).await;
    assert_eq!(run.code, 1, "the env key overrides the file's: {run:?}");

    // ---- capsule create / list / get
    let run = w
        .run(&[
            "--json",
            "capsule",
            "create",
            "--template",
            "minimal-busybox",
            "--vcpus",
            "1",
            "--memory-mb",
            "256",
            "--timeout-sec",
            "0",
            "--env",
            "STAGE=from-create",
        ])
        .await;
    let capsule = run.ok().json();
    let id = capsule["id"].as_str().expect("id").to_string();
    assert!(id.starts_with("sb_"), "{capsule}");
    assert_eq!(capsule["status"], "running");
    // The create's environment reaches every process.
    let run = w.run(&["exec", &id, "--", "sh", "-c", "echo $STAGE"]).await;
    assert_eq!(run.ok().stdout, "from-create\n");
    assert_eq!(capsule["memory_mb"], 256);
    let run = w.run(&["capsule", "list"]).await;
    let header = run
        .ok()
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        header.starts_with("ID") && header.contains("STATUS"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("running")),
        "{run:?}"
    );
    let listed = w.run(&["--json", "capsule", "list"]).await.json();
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == id.as_str()));
    let got = w.run(&["--json", "capsule", "get", &id]).await.json();
    assert_eq!(
        (got["id"].as_str(), got["status"].as_str()),
        (Some(id.as_str()), Some("running"))
    );
    let run = w.run(&["capsule", "get", &id]).await;
    assert!(run.ok().stdout.contains("minimal-busybox"), "{run:?}");

    // ---- exec: streams, separates stdout and stderr, exits with the command's code
    let run = w
        .run(&[
            "exec",
            &id,
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 7",
        ])
        .await;
    run.no_panic();
    assert_eq!(
        (run.code, run.stdout.as_str(), run.stderr.as_str()),
        (7, "out\n", "err\n"),
        "{run:?}"
    );
    let run = w
        .run(&[
            "exec",
            &id,
            "--cwd",
            "/tmp",
            "--env",
            "GREETING=hi there",
            "--",
            "sh",
            "-c",
            "echo \"$GREETING from $(pwd)\"",
        ])
        .await;
    assert_eq!(run.ok().stdout, "hi there from /tmp\n");
    exec_streams_live(&w, &id).await;
    let before = Instant::now();
    let run = w
        .run(&["exec", &id, "--timeout", "1", "--", "sleep", "30"])
        .await;
    assert_eq!(run.code, 124, "the timeout stops the command: {run:?}");
    assert!(
        before.elapsed() < Duration::from_secs(15),
        "{:?}",
        before.elapsed()
    );
    assert!(run.stderr.contains("ran over 1 s"), "{run:?}");
    let run = w
        .run(&["--json", "exec", &id, "--", "sh", "-c", "echo j; exit 3"])
        .await;
    assert_eq!(run.code, 3, "{run:?}");
    let frames: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        frames
            .iter()
            .any(|f| f["type"] == "stdout" && f["data"] == "j\n"),
        "{frames:?}"
    );
    assert!(
        frames
            .iter()
            .any(|f| f["type"] == "exit" && f["exit_code"] == 3),
        "{frames:?}"
    );

    // ---- cp: 50 MB both ways, streamed (the CLI's memory stays far below the file's size)
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.bin");
    let want = write_random_file(&big, 50 * 1024 * 1024);
    let dest = format!("{id}:/tmp/upload/big.bin");
    let (run, peak_kb) = run_measured(&w, &["cp", big.to_str().unwrap(), &dest]).await;
    run.ok().no_panic();
    assert!(
        peak_kb < 40 * 1024,
        "upload peak RSS {peak_kb} KiB for a 50 MiB file"
    );
    let run = w
        .run(&["exec", &id, "--", "sha256sum", "/tmp/upload/big.bin"])
        .await;
    assert!(
        run.ok().stdout.starts_with(&want),
        "in the capsule: {run:?} want {want}"
    );
    let back = dir.path().join("back.bin");
    let src = format!("{id}:/tmp/upload/big.bin");
    let (run, peak_kb) = run_measured(&w, &["cp", &src, back.to_str().unwrap()]).await;
    run.ok().no_panic();
    assert!(
        peak_kb < 40 * 1024,
        "download peak RSS {peak_kb} KiB for a 50 MiB file"
    );
    assert_eq!(sha256_file(&back), want, "downloaded bytes differ");
    // A directory destination takes the file's own name; --json reports the copy.
    let run = w
        .run(&[
            "--json",
            "cp",
            &format!("{id}:/tmp/upload/big.bin"),
            dir.path().to_str().unwrap(),
        ])
        .await;
    assert_eq!(run.ok().json()["bytes"], 50 * 1024 * 1024);
    assert_eq!(sha256_file(&dir.path().join("big.bin")), want);
    let small = dir.path().join("small.txt");
    std::fs::write(&small, "small file\n").unwrap();
    w.run(&["cp", small.to_str().unwrap(), &format!("{id}:/tmp/upload/")])
        .await
        .ok();
    let run = w
        .run(&["exec", &id, "--", "cat", "/tmp/upload/small.txt"])
        .await;
    assert_eq!(run.ok().stdout, "small file\n");
    let run = w
        .run(&["cp", &format!("{id}:/tmp/upload/small.txt"), "-"])
        .await;
    assert_eq!(run.ok().stdout, "small file\n");
    let run = w
        .run(&[
            "cp",
            &format!("{id}:/no/such/file"),
            dir.path().to_str().unwrap(),
        ])
        .await;
    assert_eq!(run.code, 1, "{run:?}");
    run.no_panic();
    assert!(
        !dir.path().join("file").exists(),
        "no partial file left behind"
    );

    // ---- shell through a pseudo-terminal: typing, resize, detach, re-attach, exit code
    shell_through_a_pty(&w, &id).await;

    // ---- errors: the API's message and exit 1, no panic text
    let missing = "sb_0000000000000000000000000";
    let run = w.run(&["capsule", "get", missing]).await;
    assert_eq!(run.code, 1, "{run:?}");
    run.no_panic();
    assert!(run.stderr.starts_with("error: "), "{run:?}");
    assert!(run.stderr.to_lowercase().contains("not found"), "{run:?}");
    assert!(run.stdout.is_empty());
    let run = w.run(&["--json", "capsule", "get", missing]).await;
    let err: Value = serde_json::from_str(run.stderr.trim()).expect("the API's envelope");
    assert!(
        err["error"]["code"].is_string() && err["error"]["message"].is_string(),
        "{err}"
    );
    for args in [
        vec!["exec", missing, "--", "true"],
        vec!["shell", missing],
        vec!["cp", "-", "sb_0000000000000000000000000:/tmp/x"],
        vec!["capsule", "pause", missing],
    ] {
        let run = w.run(&args).await;
        assert_eq!(run.code, 1, "{args:?}: {run:?}");
        run.no_panic();
        assert!(
            run.stderr.to_lowercase().contains("not found"),
            "{args:?}: {run:?}"
        );
    }

    // ---- snapshot into a template, listed, deleted (on a never-paused capsule)
    let run = w
        .run(&["--json", "capsule", "snapshot", &id, "--name", "cli-snap"])
        .await;
    let template = run.ok().json();
    assert_eq!(template["name"], "cli-snap", "{template}");
    let got = w.run(&["--json", "capsule", "get", &id]).await.json();
    assert_eq!(
        got["status"], "paused",
        "a snapshot leaves the capsule paused"
    );
    let run = w.run(&["template", "list"]).await;
    assert!(
        run.ok()
            .stdout
            .lines()
            .any(|l| l.starts_with("cli-snap") && l.contains("snapshot")),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("minimal-busybox"),
        "platform templates listed: {run:?}"
    );
    let listed = w.run(&["--json", "template", "list"]).await.json();
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "cli-snap"));
    w.run(&["template", "delete", "cli-snap"]).await.ok();
    let listed = w.run(&["--json", "template", "list"]).await.json();
    assert!(!listed
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "cli-snap"));
    let run = w.run(&["template", "delete", "minimal-busybox"]).await;
    assert_eq!(run.code, 1, "platform templates cannot be deleted: {run:?}");

    // ---- resume / pause / resume / destroy
    let run = w.run(&["capsule", "resume", &id]).await;
    assert_eq!(run.ok().stdout.trim(), format!("{id}  running"));
    let paused = w.run(&["--json", "capsule", "pause", &id]).await.json();
    assert_eq!(paused["status"], "paused");
    let run = w.run(&["capsule", "pause", &id]).await;
    assert_eq!(run.code, 1, "pausing twice: {run:?}");
    assert!(!run.stderr.is_empty());
    let resumed = w.run(&["--json", "capsule", "resume", &id]).await.json();
    assert_eq!(resumed["status"], "running");
    let run = w
        .run(&["exec", &id, "--", "cat", "/tmp/upload/small.txt"])
        .await;
    assert_eq!(run.ok().stdout, "small file\n", "state kept across pause");
    let run = w.run(&["--json", "capsule", "destroy", &id]).await;
    assert_eq!(run.ok().json()["status"], "stopped");
    let listed = w.run(&["--json", "capsule", "list"]).await.json();
    assert!(!listed
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == id.as_str()));

    eprintln!("CLI end-to-end sections took {:?}", started.elapsed());
    stack.shutdown().await;
}

/// Output arrives while the command still runs, not when it ends.
async fn exec_streams_live(w: &Wrenn, id: &str) {
    use tokio::io::AsyncBufReadExt;
    let mut child = w
        .command()
        .args([
            "exec",
            id,
            "--",
            "sh",
            "-c",
            "echo first; sleep 4; echo second",
        ])
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(3), lines.next_line())
        .await
        .expect("the first line within 3 s, while the command sleeps")
        .unwrap();
    assert_eq!(first.as_deref(), Some("first"));
    assert!(
        child.try_wait().unwrap().is_none(),
        "still running after the first line"
    );
    let second = lines.next_line().await.unwrap();
    assert_eq!(second.as_deref(), Some("second"));
    assert!(child.wait().await.unwrap().success());
}

/// Runs `wrenn ARGS` and samples its peak resident memory (VmHWM) until it exits.
async fn run_measured(w: &Wrenn, args: &[&str]) -> (support::Run, u64) {
    let child = w.command().args(args).spawn().unwrap();
    let pid = child.id().unwrap();
    let peak = Arc::new(Mutex::new(0u64));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                    return;
                };
                let hwm = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
                match hwm {
                    Some(kb) => {
                        let mut p = peak.lock().unwrap();
                        *p = (*p).max(kb);
                    }
                    None => return, // a zombie has no memory lines
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let output = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .expect("cp within 5 minutes")
        .unwrap();
    sampler.abort();
    let peak = *peak.lock().unwrap();
    assert!(peak > 0, "no memory sample taken");
    (
        support::Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        },
        peak,
    )
}

/// `size` pseudo-random bytes (xorshift, so nothing compresses them); returns the SHA-256.
fn write_random_file(path: &Path, size: usize) -> String {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; 1 << 16];
    let mut left = size;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let n = left.min(block.len());
        f.write_all(&block[..n]).unwrap();
        hasher.update(&block[..n]);
        left -= n;
    }
    f.flush().unwrap();
    hex::encode(hasher.finalize())
}

fn sha256_file(path: &Path) -> String {
    let mut f = std::fs::File::open(path).unwrap();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    hex::encode(hasher.finalize())
}

async fn shell_through_a_pty(w: &Wrenn, id: &str) {
    let mut pty = Pty::spawn(w, &["shell", id]);
    // The echo of what is typed shows `$((6*7))`; only the shell's answer shows 42.
    let mut ready = false;
    for _ in 0..20 {
        let from = pty.len();
        pty.type_text("echo hi-$((6*7))\r");
        if pty.wait_for("hi-42", from, 3).await {
            ready = true;
            break;
        }
    }
    assert!(ready, "no hi-42 from the shell; output: {}", pty.text());

    // A resize reaches the remote terminal (SIGWINCH → resize frame).
    pty.resize(33, 101);
    let mut resized = false;
    for _ in 0..20 {
        let from = pty.len();
        pty.type_text("stty size\r");
        if pty.wait_for("33 101", from, 2).await {
            resized = true;
            break;
        }
    }
    assert!(
        resized,
        "stty size never said 33 101; output: {}",
        pty.text()
    );
    pty.type_text("MARK=x9\r");

    // Ctrl-] detaches and prints how to re-attach.
    pty.type_text("\u{1d}");
    assert_eq!(pty.exit_code(30).await, 0, "output: {}", pty.text());
    pty.assert_restored();
    let text = pty.text();
    let at = text
        .find("--attach pty-")
        .unwrap_or_else(|| panic!("no tag printed: {text}"));
    let tag: String = text[at + "--attach ".len()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    assert!(tag.starts_with("pty-") && tag.len() == 12, "{tag}");

    // Re-attach by tag: the same shell (its variable is still set); `exit 3` is the exit code.
    let mut pty = Pty::spawn(w, &["shell", id, "--attach", &tag]);
    let mut attached = false;
    for _ in 0..20 {
        let from = pty.len();
        pty.type_text("echo again-$((5*11))-$MARK\r");
        if pty.wait_for("again-55-x9", from, 3).await {
            attached = true;
            break;
        }
    }
    assert!(
        attached,
        "no again-55 after re-attaching; output: {}",
        pty.text()
    );
    pty.type_text("exit 3\r");
    assert_eq!(pty.exit_code(30).await, 3, "output: {}", pty.text());
    pty.assert_restored();
    assert!(!pty.text().contains("panicked"), "{}", pty.text());
}
