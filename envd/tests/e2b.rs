//! E2B's envd protocol, spoken over a real tunnel to port 49983 of a real envd: Connect
//! unary calls, server and client streams, keepalives, watchers and `/files`.
mod support;

use std::time::Duration;

use axum::body::Body;
use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use serde_json::{json, Value};
use support::*;

const E2B_PORT: u16 = 49983;

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn unb64(text: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text.as_str().expect("base64 string"))
        .expect("base64")
}

fn envelope(flags: u8, message: &Value) -> Vec<u8> {
    let data = serde_json::to_vec(message).unwrap();
    let mut out = vec![flags];
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(&data);
    out
}

/// An HTTP/1.1 connection to E2B's envd, through the tunnel.
struct E2b {
    sender: SendRequest<Body>,
}

impl E2b {
    async fn open(envd: &Envd) -> Self {
        let mut tunnel = wrenn_envd::client::http1(&envd.addr).await.unwrap();
        let req = wrenn_envd::client::request(
            Method::GET,
            &format!("/tunnel/{E2B_PORT}"),
            envd.token.as_deref(),
        )
        .header("connection", "upgrade")
        .header("upgrade", "wrenn-tunnel")
        .body(Body::empty())
        .unwrap();
        let resp = tunnel.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
        let upgraded = hyper::upgrade::on(resp).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(upgraded)
            .await
            .unwrap();
        tokio::spawn(conn);
        Self { sender }
    }

    async fn send(&mut self, req: http::request::Builder, body: Body) -> http::Response<Incoming> {
        let req = req
            .header("host", "localhost")
            .header("connect-protocol-version", "1")
            .body(body)
            .unwrap();
        self.sender.ready().await.unwrap();
        self.sender.send_request(req).await.unwrap()
    }

    async fn http(
        &mut self,
        req: http::request::Builder,
        body: Body,
    ) -> (StatusCode, http::HeaderMap, Bytes) {
        let resp = self.send(req, body).await;
        let (parts, body) = resp.into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.unwrap().to_bytes(),
        )
    }

    async fn unary_as(
        &mut self,
        user: Option<&str>,
        method: &str,
        message: Value,
    ) -> (StatusCode, Value) {
        // The SDKs send a deadline with every call.
        let mut req = Request::post(format!("/{method}"))
            .header("content-type", "application/json")
            .header("connect-timeout-ms", "30000");
        if let Some(user) = user {
            req = req.header(
                "authorization",
                format!("Basic {}", b64(format!("{user}:").as_bytes())),
            );
        }
        let (status, headers, body) = self.http(req, Body::from(message.to_string())).await;
        assert_eq!(headers["content-type"], "application/json", "{method}");
        (status, serde_json::from_slice(&body).unwrap())
    }

    async fn unary(&mut self, method: &str, message: Value) -> (StatusCode, Value) {
        self.unary_as(None, method, message).await
    }

    async fn ok(&mut self, method: &str, message: Value) -> Value {
        let (status, reply) = self.unary(method, message).await;
        assert_eq!(status, StatusCode::OK, "{method}: {reply}");
        reply
    }

    /// Opens a server stream; the request is one envelope, sent in two chunks as Python does.
    async fn stream(&mut self, method: &str, message: Value, keepalive: Option<u64>) -> Messages {
        let mut req =
            Request::post(format!("/{method}")).header("content-type", "application/connect+json");
        if let Some(secs) = keepalive {
            req = req.header("keepalive-ping-interval", secs.to_string());
        }
        let frame = envelope(0, &message);
        let (head, tail) = frame.split_at(3);
        let chunks = vec![
            Ok::<_, std::io::Error>(Bytes::copy_from_slice(head)),
            Ok(Bytes::copy_from_slice(tail)),
        ];
        let resp = self
            .send(req, Body::from_stream(futures::stream::iter(chunks)))
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/connect+json");
        Messages {
            body: resp.into_body(),
            buf: BytesMut::new(),
        }
    }
}

/// The envelopes of a streamed answer.
struct Messages {
    body: Incoming,
    buf: BytesMut,
}

impl Messages {
    /// The next envelope: its flags and JSON; `None` when the body ends.
    async fn next(&mut self) -> Option<(u8, Value)> {
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes(self.buf[1..5].try_into().unwrap()) as usize;
                if self.buf.len() >= 5 + len {
                    let flags = self.buf[0];
                    self.buf.advance(5);
                    let data = self.buf.split_to(len);
                    return Some((flags, serde_json::from_slice(&data).unwrap()));
                }
            }
            let frame = tokio::time::timeout(Duration::from_secs(20), self.body.frame())
                .await
                .expect("stream stalled")?
                .unwrap();
            if let Ok(data) = frame.into_data() {
                self.buf.extend_from_slice(&data);
            }
        }
    }

    /// The next message; panics on the end of the stream.
    async fn message(&mut self) -> Value {
        let (flags, message) = self.next().await.expect("a message");
        assert_eq!(flags, 0, "unexpected end of stream: {message}");
        message
    }

    /// Reads the stream to its end, so the connection can carry the next request.
    async fn finish(mut self) {
        while self.next().await.is_some() {}
    }

    /// Collects a process stream to its end: (pid, stdout, stderr, pty, end event).
    async fn process(&mut self) -> (u64, Vec<u8>, Vec<u8>, Vec<u8>, Value) {
        let first = self.message().await;
        let pid = first["event"]["start"]["pid"]
            .as_u64()
            .expect("start comes first");
        let (mut stdout, mut stderr, mut pty) = (Vec::new(), Vec::new(), Vec::new());
        loop {
            let (flags, message) = self
                .next()
                .await
                .expect("stream ended without an end event");
            assert_eq!(flags, 0, "stream ended without an end event: {message}");
            let event = &message["event"];
            if let Some(data) = event.get("data") {
                for (name, out) in [
                    ("stdout", &mut stdout),
                    ("stderr", &mut stderr),
                    ("pty", &mut pty),
                ] {
                    if let Some(chunk) = data.get(name) {
                        out.extend(unb64(chunk));
                    }
                }
            } else if let Some(end) = event.get("end") {
                let end = end.clone();
                let (flags, trailer) = self.next().await.expect("end of stream");
                assert_eq!((flags, trailer), (2, json!({})));
                return (pid, stdout, stderr, pty, end);
            }
        }
    }
}

async fn envd() -> Envd {
    Envd::start_with(Transport::Tcp, &["--access-token", "s3cret"]).await
}

#[tokio::test]
async fn health_envs_and_unary_filesystem_calls() {
    let envd = envd().await;
    let mut e2b = E2b::open(&envd).await;
    let (status, _, body) = e2b.http(Request::get("/health"), Body::empty()).await;
    assert_eq!((status, body.len()), (StatusCode::NO_CONTENT, 0));
    let (status, _, body) = e2b.http(Request::get("/envs"), Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(serde_json::from_slice::<Value>(&body).unwrap().is_object());

    let dir = envd.dir.path().join("fs");
    let dir_s = dir.display().to_string();
    let (status, err) = e2b
        .unary(
            "filesystem.Filesystem/Stat",
            json!({ "path": format!("{dir_s}/missing") }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["code"], "not_found");

    let made = e2b
        .ok(
            "filesystem.Filesystem/MakeDir",
            json!({ "path": format!("{dir_s}/a/b") }),
        )
        .await;
    assert_eq!(made["entry"]["type"], "FILE_TYPE_DIRECTORY");
    assert_eq!(made["entry"]["path"], format!("{dir_s}/a/b"));
    let (status, err) = e2b
        .unary(
            "filesystem.Filesystem/MakeDir",
            json!({ "path": format!("{dir_s}/a/b") }),
        )
        .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::CONFLICT, Some("already_exists"))
    );

    std::fs::write(dir.join("a/f.txt"), b"hello").unwrap();
    std::os::unix::fs::symlink(dir.join("a/b"), dir.join("a/link")).unwrap();
    let listed = e2b
        .ok(
            "filesystem.Filesystem/ListDir",
            json!({ "path": format!("{dir_s}/a"), "depth": 0 }),
        )
        .await;
    let entries = listed["entries"].as_array().unwrap();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b", "f.txt", "link"]);
    let file = &entries[1];
    assert_eq!(file["type"], "FILE_TYPE_FILE");
    assert_eq!(file["size"], "5");
    assert_eq!(file["owner"], "root");
    assert!(file["modifiedTime"].as_str().unwrap().ends_with('Z'));
    assert_eq!(entries[2]["isSymlink"], true);
    assert_eq!(entries[2]["type"], "FILE_TYPE_DIRECTORY");

    let (status, err) = e2b
        .unary(
            "filesystem.Filesystem/ListDir",
            json!({ "path": format!("{dir_s}/a/f.txt") }),
        )
        .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_argument"))
    );

    let moved = e2b
        .ok(
            "filesystem.Filesystem/Move",
            json!({ "source": format!("{dir_s}/a/f.txt"), "destination": format!("{dir_s}/g.txt") }),
        )
        .await;
    assert_eq!(moved["entry"]["name"], "g.txt");
    e2b.ok(
        "filesystem.Filesystem/Remove",
        json!({ "path": format!("{dir_s}/g.txt") }),
    )
    .await;
    assert!(!dir.join("g.txt").exists());

    // Relative paths start at the user's home; Basic authorization picks the user.
    let (status, stat) = e2b
        .unary_as(
            Some("root"),
            "filesystem.Filesystem/Stat",
            json!({ "path": "." }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stat["entry"]["path"], "/root");
    let (status, _) = e2b
        .unary_as(
            Some("nobody-here"),
            "filesystem.Filesystem/Stat",
            json!({ "path": "/" }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn start_streams_output_and_the_exit_code() {
    let envd = envd().await;
    let mut e2b = E2b::open(&envd).await;
    let mut stream = e2b
        .stream(
            "process.Process/Start",
            json!({ "process": { "cmd": "/bin/sh", "args": ["-c", "echo out; echo err >&2; exit 3"], "envs": {} } }),
            None,
        )
        .await;
    let (pid, stdout, stderr, _, end) = stream.process().await;
    assert!(pid > 0);
    assert_eq!((&stdout[..], &stderr[..]), (&b"out\n"[..], &b"err\n"[..]));
    assert_eq!(end["exitCode"], 3);
    assert_eq!(end["exited"], true);
    assert_eq!(end["status"], "exit status 3");

    // Start failures end the stream with an error, on a 200.
    let mut failed = e2b
        .stream(
            "process.Process/Start",
            json!({ "process": { "cmd": "/no/such/binary" } }),
            None,
        )
        .await;
    let (flags, trailer) = failed.next().await.unwrap();
    assert_eq!(flags, 2);
    assert_eq!(trailer["error"]["code"], "not_found", "{trailer}");
}

#[tokio::test]
async fn stdin_input_close_and_kill() {
    let envd = envd().await;
    let mut streams = E2b::open(&envd).await;
    let mut calls = E2b::open(&envd).await;

    let mut cat = streams
        .stream(
            "process.Process/Start",
            json!({ "process": { "cmd": "/bin/cat" }, "stdin": true, "tag": "cat" }),
            None,
        )
        .await;
    let pid = cat.message().await["event"]["start"]["pid"]
        .as_u64()
        .unwrap();
    let listed = calls.ok("process.Process/List", json!({})).await;
    assert!(listed["processes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["pid"] == pid && p["tag"] == "cat" && p["config"]["cmd"] == "/bin/cat"));
    calls
        .ok(
            "process.Process/SendInput",
            json!({ "process": { "pid": pid }, "input": { "stdin": b64(b"ping\n") } }),
        )
        .await;
    let echoed = cat.message().await;
    assert_eq!(unb64(&echoed["event"]["data"]["stdout"]), b"ping\n");
    calls
        .ok(
            "process.Process/CloseStdin",
            json!({ "process": { "tag": "cat" } }),
        )
        .await;
    let end = cat.message().await;
    assert_eq!(end["event"]["end"]["exitCode"], 0, "{end}");
    cat.finish().await;

    // StreamInput: a client stream of envelopes over a chunked body.
    let mut cat = streams
        .stream(
            "process.Process/Start",
            json!({ "process": { "cmd": "/bin/cat" }, "stdin": true }),
            None,
        )
        .await;
    let pid = cat.message().await["event"]["start"]["pid"]
        .as_u64()
        .unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let input = tokio::spawn(async move {
        let req = Request::post("/process.Process/StreamInput")
            .header("content-type", "application/connect+json");
        let resp = calls
            .send(
                req,
                Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
            )
            .await;
        let status = resp.status();
        (
            status,
            resp.into_body().collect().await.unwrap().to_bytes(),
            calls,
        )
    });
    for event in [
        json!({ "event": { "start": { "process": { "pid": pid } } } }),
        json!({ "event": { "keepalive": {} } }),
        json!({ "event": { "data": { "input": { "stdin": b64(b"streamed\n") } } } }),
    ] {
        tx.send(Ok(envelope(0, &event).into())).await.unwrap();
    }
    let echoed = cat.message().await;
    assert_eq!(unb64(&echoed["event"]["data"]["stdout"]), b"streamed\n");
    drop(tx);
    let (status, body, mut calls) = input.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        &body[..],
        [envelope(0, &json!({})), envelope(2, &json!({}))].concat()
    );
    calls
        .ok(
            "process.Process/CloseStdin",
            json!({ "process": { "pid": pid } }),
        )
        .await;
    cat.finish().await;

    // SIGKILL on a sleep: the end says killed; a second kill is not_found.
    let mut sleep = streams
        .stream(
            "process.Process/Start",
            json!({ "process": { "cmd": "/bin/sleep", "args": ["30"] } }),
            None,
        )
        .await;
    let pid = sleep.message().await["event"]["start"]["pid"]
        .as_u64()
        .unwrap();
    calls
        .ok(
            "process.Process/SendSignal",
            json!({ "process": { "pid": pid }, "signal": "SIGNAL_SIGKILL" }),
        )
        .await;
    let end = sleep.message().await;
    assert_eq!(end["event"]["end"]["exitCode"], -1, "{end}");
    assert_eq!(end["event"]["end"]["status"], "signal: killed");
    let (status, err) = calls
        .unary(
            "process.Process/SendSignal",
            json!({ "process": { "pid": 999_999 }, "signal": "SIGNAL_SIGKILL" }),
        )
        .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
}

#[tokio::test]
async fn pty_resize_input_connect_and_keepalive() {
    let envd = envd().await;
    let mut streams = E2b::open(&envd).await;
    let mut calls = E2b::open(&envd).await;
    let mut shell = streams
        .stream(
            "process.Process/Start",
            json!({ "process": { "cmd": "/bin/sh", "envs": { "PS1": "$ " } }, "pty": { "size": { "cols": 80, "rows": 24 } } }),
            Some(1),
        )
        .await;
    let pid = shell.message().await["event"]["start"]["pid"]
        .as_u64()
        .unwrap();
    calls
        .ok(
            "process.Process/Update",
            json!({ "process": { "pid": pid }, "pty": { "size": { "cols": 123, "rows": 45 } } }),
        )
        .await;
    calls
        .ok(
            "process.Process/SendInput",
            json!({ "process": { "pid": pid }, "input": { "pty": b64(b"stty size; exit 7\n") } }),
        )
        .await;
    let mut pty = Vec::new();
    let mut keepalives = 0;
    let end = loop {
        let event = shell.message().await["event"].clone();
        if let Some(chunk) = event["data"].get("pty") {
            pty.extend(unb64(chunk));
        } else if event.get("keepalive").is_some() {
            keepalives += 1;
        } else if let Some(end) = event.get("end") {
            break end.clone();
        }
    };
    assert!(
        String::from_utf8_lossy(&pty).contains("45 123"),
        "{}",
        String::from_utf8_lossy(&pty)
    );
    assert_eq!(end["exitCode"], 7);
    let _ = keepalives;
    shell.finish().await;

    // An idle stream with Keepalive-Ping-Interval: 1 sends keepalives; Connect streams too.
    let mut sleep = streams
        .stream(
            "process.Process/Start",
            json!({ "process": { "cmd": "/bin/sleep", "args": ["30"] } }),
            Some(1),
        )
        .await;
    let pid = sleep.message().await["event"]["start"]["pid"]
        .as_u64()
        .unwrap();
    let ping = sleep.message().await;
    assert_eq!(ping, json!({ "event": { "keepalive": {} } }));
    let mut attached = calls
        .stream(
            "process.Process/Connect",
            json!({ "process": { "pid": pid } }),
            Some(1),
        )
        .await;
    assert_eq!(attached.message().await["event"]["start"]["pid"], pid);
    assert_eq!(
        attached.message().await,
        json!({ "event": { "keepalive": {} } })
    );
    drop(attached);
    let mut calls = E2b::open(&envd).await;
    calls
        .ok(
            "process.Process/SendSignal",
            json!({ "process": { "pid": pid }, "signal": 15 }),
        )
        .await;
    loop {
        if sleep.message().await["event"].get("end").is_some() {
            break;
        }
    }
}

#[tokio::test]
async fn watch_dir_and_polled_watchers() {
    let envd = envd().await;
    let dir = envd.dir.path().join("watched");
    std::fs::create_dir(&dir).unwrap();
    let dir_s = dir.display().to_string();
    let mut streams = E2b::open(&envd).await;
    let mut watch = streams
        .stream(
            "filesystem.Filesystem/WatchDir",
            json!({ "path": dir_s, "recursive": false, "includeEntry": true }),
            Some(1),
        )
        .await;
    assert_eq!(watch.message().await, json!({ "start": {} }));
    std::fs::write(dir.join("new.txt"), b"x").unwrap();
    let event = loop {
        let m = watch.message().await;
        if m.get("filesystem").is_some() {
            break m["filesystem"].clone();
        }
    };
    assert_eq!(event["name"], "new.txt");
    assert_eq!(event["type"], "EVENT_TYPE_CREATE");
    assert_eq!(event["entry"]["path"], format!("{dir_s}/new.txt"));
    // Idle now: keepalives.
    let ping = loop {
        let m = watch.message().await;
        if m.get("filesystem").is_none() {
            break m;
        }
    };
    assert_eq!(ping, json!({ "keepalive": {} }));

    let mut calls = E2b::open(&envd).await;
    let created = calls
        .ok(
            "filesystem.Filesystem/CreateWatcher",
            json!({ "path": dir_s, "recursive": true }),
        )
        .await;
    let id = created["watcherId"].as_str().unwrap().to_owned();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let mut seen = Vec::new();
    for _ in 0..50 {
        // The new directory is watched once its own event is in, as with inotify anywhere.
        if seen.iter().any(|(n, _)| n == "sub") && !dir.join("sub/deep.txt").exists() {
            tokio::time::sleep(Duration::from_millis(100)).await;
            std::fs::write(dir.join("sub/deep.txt"), b"y").unwrap();
        }
        let got = calls
            .ok(
                "filesystem.Filesystem/GetWatcherEvents",
                json!({ "watcherId": id }),
            )
            .await;
        seen.extend(
            got["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| (e["name"].clone(), e["type"].clone())),
        );
        if seen.iter().any(|(n, _)| n == "sub/deep.txt") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen.contains(&(json!("sub"), json!("EVENT_TYPE_CREATE"))),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(json!("sub/deep.txt"), json!("EVENT_TYPE_CREATE"))),
        "{seen:?}"
    );
    calls
        .ok(
            "filesystem.Filesystem/RemoveWatcher",
            json!({ "watcher_id": id }),
        )
        .await;
    let (status, _) = calls
        .unary(
            "filesystem.Filesystem/GetWatcherEvents",
            json!({ "watcherId": id }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn files_upload_and_download() {
    let envd = envd().await;
    let mut e2b = E2b::open(&envd).await;
    let dir = envd.dir.path().join("files").display().to_string();

    // Multipart: each part's file name is its destination.
    let boundary = "e2bboundary";
    let mut body = Vec::new();
    for (name, content) in [
        (format!("{dir}/one.txt"), "first"),
        (format!("{dir}/deep/two.txt"), "second"),
    ] {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n{content}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let req = Request::post("/files").header(
        "content-type",
        format!("multipart/form-data; boundary={boundary}"),
    );
    let (status, _, reply) = e2b.http(req, Body::from(body)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply)
    );
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(reply[0]["path"], format!("{dir}/one.txt"));
    assert_eq!(reply[0]["name"], "one.txt");
    assert_eq!(reply[0]["type"], "file");
    assert_eq!(reply[1]["path"], format!("{dir}/deep/two.txt"));

    // Octet stream, gzip-encoded, with a signature that is ignored.
    let mut gz = Vec::new();
    {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
        enc.write_all(b"compressed body").unwrap();
        enc.finish().unwrap();
    }
    let req = Request::post(format!(
        "/files?path={dir}/raw.bin&username=root&signature=v1_x&signature_expiration=1"
    ))
    .header("content-type", "application/octet-stream")
    .header("content-encoding", "gzip");
    let (status, _, reply) = e2b.http(req, Body::from(gz)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(
        std::fs::read(format!("{dir}/raw.bin")).unwrap(),
        b"compressed body"
    );

    let (status, headers, content) = e2b
        .http(
            Request::get(format!("/files?path={dir}/deep/two.txt")),
            Body::empty(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/octet-stream");
    assert_eq!(&content[..], b"second");

    let (status, headers, content) = e2b
        .http(
            Request::get(format!("/files?path={dir}/one.txt")).header("accept-encoding", "gzip"),
            Body::empty(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
        use std::io::Read;
        let mut plain = String::new();
        flate2::read::GzDecoder::new(&content[..])
            .read_to_string(&mut plain)
            .unwrap();
        assert_eq!(plain, "first");
    } else {
        assert_eq!(&content[..], b"first");
    }

    let (status, _, err) = e2b
        .http(
            Request::get(format!("/files?path={dir}/nope")),
            Body::empty(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let err: Value = serde_json::from_slice(&err).unwrap();
    assert_eq!(err["code"], 404);
    assert!(err["message"].is_string());
}

#[tokio::test]
async fn e2b_port_zero_tunnels_like_any_port() {
    let envd = Envd::start_with(Transport::Tcp, &["--e2b-port", "0"]).await;
    let (status, _, _) = envd
        .http(
            Method::GET,
            &format!("/tunnel/{E2B_PORT}"),
            &[("connection", "upgrade"), ("upgrade", "wrenn-tunnel")],
            Body::empty(),
        )
        .await;
    // Nothing listens on 49983 here, so the tunnel cannot connect.
    assert_eq!(status, StatusCode::BAD_GATEWAY);
}
