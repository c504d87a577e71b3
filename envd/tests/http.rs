//! envd's HTTP API against the real binary: health/init/auth, file transfer, the port
//! tunnel, and snapshot prepare → SIGUSR1 → re-bind.
mod support;

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{Method, StatusCode};
use sha2::{Digest, Sha256};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wrenn_proto::envd::v1::process_event::Event;
use wrenn_proto::envd::v1::{ConnectRequest, ListRequest};

/// Deterministic, incompressible test data.
fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[tokio::test]
async fn health_init_envs_metrics_and_token() {
    let envd = Envd::start(Transport::Tcp).await;
    let (status, _, body) = envd.http(Method::GET, "/health", &[], Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["version"], wrenn_envd::VERSION);

    let init = serde_json::json!({
        "access_token": "t0ken", "default_user": "root", "default_workdir": "/tmp",
        "env_vars": {"CAPSULE": "yes"}, "sandbox_id": "sb_1", "template_id": "tpl_1"
    });
    let (status, _, _) = envd
        .http(
            Method::POST,
            "/init",
            &[("content-type", "application/json")],
            Body::from(init.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Now every call but /health needs the token.
    let (status, _, body) = envd.http(Method::GET, "/envs", &[], Body::empty()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body:?}");
    let (status, _, _) = envd.http(Method::GET, "/health", &[], Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    let mut authed = envd;
    authed.token = Some("wrong".into());
    assert_eq!(
        authed
            .http(Method::GET, "/envs", &[], Body::empty())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    authed.token = Some("t0ken".into());
    let (status, _, body) = authed.http(Method::GET, "/envs", &[], Body::empty()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["CAPSULE"],
        "yes"
    );

    // The defaults reach processes.
    let mut client = authed.process().await;
    let out = run(&mut client, start(sh("pwd; echo $CAPSULE"))).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "/tmp\nyes\n");

    let (status, _, body) = authed
        .http(Method::GET, "/metrics", &[], Body::empty())
        .await;
    assert_eq!(status, StatusCode::OK);
    let m: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(m["cpu_count"].as_u64().unwrap() >= 1);
    assert!(m["mem_total"].as_u64().unwrap() > m["mem_used"].as_u64().unwrap());
    assert!(m["disk_total"].as_u64().unwrap() > 0);
    assert!(m["cpu_used_pct"].as_f64().unwrap() >= 0.0);

    let bad = serde_json::json!({ "default_user": "no-such-user-here" });
    let (status, _, _) = authed
        .http(
            Method::POST,
            "/init",
            &[("content-type", "application/json")],
            Body::from(bad.to_string()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

fn multipart(boundary: &str, filename: &str, data: Bytes, close: bool) -> Body {
    let head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    );
    let tail = if close {
        format!("\r\n--{boundary}--\r\n")
    } else {
        String::new()
    };
    let chunks: Vec<Result<Bytes, std::io::Error>> = std::iter::once(Bytes::from(head))
        .chain(
            (0..data.len())
                .step_by(1 << 20)
                .map(|i| data.slice(i..(i + (1 << 20)).min(data.len()))),
        )
        .chain(std::iter::once(Bytes::from(tail)))
        .map(Ok)
        .collect();
    Body::from_stream(futures::stream::iter(chunks))
}

#[tokio::test]
async fn upload_and_download_a_large_file_with_checksum() {
    for transport in TRANSPORTS {
        let envd = Envd::start(transport).await;
        let data = Bytes::from(pseudo_random(48 << 20, 7));
        let sum = Sha256::digest(&data);
        let dest = envd.dir.path().join("up/nested/big.bin");
        let path = format!("/files?path={}", dest.display());
        let ct = "multipart/form-data; boundary=XyZ123";
        let (status, _, body) = envd
            .http(
                Method::POST,
                &path,
                &[("content-type", ct)],
                multipart("XyZ123", "big.bin", data.clone(), true),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{transport:?}: {body:?}");
        let written: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(written[0]["size"], 48 << 20);
        assert_eq!(Sha256::digest(std::fs::read(&dest).unwrap()), sum);

        let (status, headers, body) = envd.http(Method::GET, &path, &[], Body::empty()).await;
        assert_eq!(status, StatusCode::OK);
        assert!(headers.get("content-encoding").is_none());
        assert_eq!(Sha256::digest(&body), sum, "{transport:?}");

        let (status, headers, body) = envd
            .http(
                Method::GET,
                &path,
                &[("range", "bytes=100-199")],
                Body::empty(),
            )
            .await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            headers["content-range"],
            format!("bytes 100-199/{}", 48 << 20)
        );
        assert_eq!(body, data.slice(100..200));
        let (status, _, _) = envd
            .http(
                Method::GET,
                &path,
                &[("range", "bytes=999999999-")],
                Body::empty(),
            )
            .await;
        assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);

        // A raw body upload replaces the file atomically.
        let (status, _, _) = envd
            .http(Method::POST, &path, &[], Body::from("small now"))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(std::fs::read(&dest).unwrap(), b"small now");

        let missing = format!("/files?path={}/nope", envd.dir.path().display());
        assert_eq!(
            envd.http(Method::GET, &missing, &[], Body::empty()).await.0,
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn gzip_is_used_when_accepted() {
    let envd = Envd::start(Transport::Unix).await;
    let file = envd.dir.path().join("text.txt");
    std::fs::write(&file, "wrenn ".repeat(100_000)).unwrap();
    let path = format!("/files?path={}", file.display());
    let (status, headers, body) = envd
        .http(
            Method::GET,
            &path,
            &[("accept-encoding", "gzip")],
            Body::empty(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-encoding"], "gzip");
    assert_eq!(&body[..2], &[0x1f, 0x8b], "gzip magic");
    assert!(
        body.len() < 600_000 / 10,
        "compressed to {} bytes",
        body.len()
    );
    let (_, headers, body) = envd
        .http(
            Method::GET,
            &path,
            &[("accept-encoding", "gzip"), ("range", "bytes=0-5")],
            Body::empty(),
        )
        .await;
    assert!(
        headers.get("content-encoding").is_none(),
        "ranges are not compressed"
    );
    assert_eq!(&body[..], b"wrenn ");
}

#[tokio::test]
async fn malformed_multipart_leaves_nothing_behind() {
    let envd = Envd::start(Transport::Unix).await;
    let dir = envd.dir.path().join("target");
    std::fs::create_dir(&dir).unwrap();
    let path = format!("/files?path={}/half.bin", dir.display());
    let body = multipart(
        "B0und",
        "half.bin",
        Bytes::from(pseudo_random(3 << 20, 3)),
        false,
    );
    let (status, _, _) = envd
        .http(
            Method::POST,
            &path,
            &[("content-type", "multipart/form-data; boundary=B0und")],
            body,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    let garbage = Body::from("this is not multipart at all");
    let (status, _, _) = envd
        .http(
            Method::POST,
            &path,
            &[("content-type", "multipart/form-data; boundary=B0und")],
            garbage,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

/// A tiny real HTTP server on loopback (axum), answering GET /hello.
async fn local_http_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new()
        .route(
            "/hello",
            axum::routing::get(|| async { "hello through the tunnel" }),
        )
        .route(
            "/echo",
            axum::routing::post(|body: Bytes| async move { body }),
        );
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (port, task)
}

async fn open_tunnel(envd: &Envd, port: u16) -> hyper_util::rt::TokioIo<hyper::upgrade::Upgraded> {
    let mut sender = wrenn_envd::client::http1(&envd.addr).await.unwrap();
    let req = wrenn_envd::client::request(
        Method::GET,
        &format!("/tunnel/{port}"),
        envd.token.as_deref(),
    )
    .header("connection", "upgrade")
    .header("upgrade", "wrenn-tunnel")
    .body(Body::empty())
    .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    hyper_util::rt::TokioIo::new(hyper::upgrade::on(resp).await.unwrap())
}

#[tokio::test]
async fn port_tunnel_reaches_a_local_http_server() {
    let (port, server) = local_http_server().await;
    for transport in TRANSPORTS {
        let envd = Envd::start(transport).await;
        let mut tunnel = open_tunnel(&envd, port).await;
        tunnel
            .write_all(b"GET /hello HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        tunnel.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(text.ends_with("hello through the tunnel"), "{text}");

        // A larger body both ways on a kept-alive connection.
        let mut tunnel = open_tunnel(&envd, port).await;
        let payload = pseudo_random(2 << 20, 11);
        let head = format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            payload.len()
        );
        tunnel.write_all(head.as_bytes()).await.unwrap();
        tunnel.write_all(&payload).await.unwrap();
        let mut response = Vec::new();
        tunnel.read_to_end(&mut response).await.unwrap();
        assert!(
            response.ends_with(&payload),
            "{transport:?}: echoed body differs"
        );

        // Nothing listening: 502 before any upgrade.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_port = closed.local_addr().unwrap().port();
        drop(closed);
        let (status, _, _) = envd
            .http(
                Method::GET,
                &format!("/tunnel/{dead_port}"),
                &[("connection", "upgrade"), ("upgrade", "wrenn-tunnel")],
                Body::empty(),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
    }
    server.abort();
}

#[tokio::test]
async fn prepare_closes_everything_and_sigusr1_rebinds() {
    for transport in TRANSPORTS {
        let mut envd = Envd::start(transport).await;
        let mut client = envd.process().await;
        let mut req = start(sh(
            "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.05; done",
        ));
        req.tag = Some("survivor".into());
        let mut stream = client.start(req).await.unwrap().into_inner();
        let mut first = Outcome::default();
        let mut offset = None;
        while first.stdout.is_empty() {
            first.record(
                stream.message().await.unwrap().unwrap().event.unwrap(),
                &mut offset,
            );
        }
        let (port, server) = local_http_server().await;
        let mut tunnel = open_tunnel(&envd, port).await;

        let (status, _, body) = envd
            .http(Method::POST, "/snapshot/prepare", &[], Body::empty())
            .await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        let report: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(
            report["closed_connections"].as_u64().unwrap() >= 2,
            "{report}"
        );

        // The output stream and the tunnel were cut, and nothing listens any more.
        let cut = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(Some(_)) = stream.message().await {}
        })
        .await;
        assert!(cut.is_ok(), "the process stream was not closed");
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), tunnel.read(&mut buf))
            .await
            .expect("tunnel closed");
        assert!(matches!(n, Ok(0) | Err(_)));
        assert!(
            wrenn_envd::client::connect(&envd.addr).await.is_err(),
            "{transport:?}: still accepting"
        );
        if let wrenn_envd::config::ListenAddr::Unix(path) = &envd.addr {
            assert!(!path.exists(), "socket path left behind");
        }

        // Re-bind; the process kept running the whole time.
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(envd.pid()),
            nix::sys::signal::Signal::SIGUSR1,
        )
        .unwrap();
        let again = envd.next_listening().await;
        assert_eq!(again, envd.addr, "re-bound on the same address");
        let mut client = envd.process().await;
        let list = client.list(ListRequest {}).await.unwrap().into_inner();
        let p = list
            .processes
            .iter()
            .find(|p| p.tag.as_deref() == Some("survivor"))
            .unwrap();
        assert!(p.end.is_none(), "still running");
        let mut resumed = client
            .connect_process(ConnectRequest {
                process: by_tag("survivor"),
                from_offset: None,
            })
            .await
            .unwrap()
            .into_inner();
        let mut saw_tick = false;
        while !saw_tick {
            if let Some(Event::Data(_)) = resumed
                .message()
                .await
                .unwrap()
                .unwrap()
                .event
                .unwrap()
                .event
            {
                saw_tick = true;
            }
        }
        let (status, _, _) = envd.http(Method::GET, "/health", &[], Body::empty()).await;
        assert_eq!(status, StatusCode::OK);
        server.abort();
    }
}
