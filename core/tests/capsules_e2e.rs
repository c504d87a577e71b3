//! Capsules end to end: the real control plane, a real agent and real gVisor capsules, driven
//! over HTTP and WebSocket only (see `capsules_support` for the stack).

use cpserver::test_support::stack as capsules_support;

use base64::Engine;
use capsules_support::{Account, Stack, DOMAIN};
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(stack: &Stack, who: &Account, path: &str) -> Ws {
    let url = format!("{}{path}", stack.base.replacen("http://", "ws://", 1));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("X-API-Key", who.api_key.parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket");
    ws
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// The next JSON frame (skipping pings), within 30 s.
async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a frame within 30 s")?;
        match msg.ok()? {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] != "ping" {
                    return Some(v);
                }
            }
            Message::Close(_) => return None,
            _ => {}
        }
    }
}

/// PTY output (decoded) until `needle` appears.
async fn pty_until(ws: &mut Ws, needle: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut seen = String::new();
    while !seen.contains(needle) {
        let frame = next_json(ws).await.expect("pty still open");
        assert_ne!(frame["type"], "error", "{frame}");
        if frame["type"] == "output" {
            let bytes = b64.decode(frame["data"].as_str().unwrap()).unwrap();
            seen.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    seen
}

async fn status_of(stack: &Stack, who: &Account, id: &str) -> String {
    let v: Value = stack
        .req(who, Method::GET, &format!("/v1/capsules/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["status"].as_str().unwrap().to_string()
}

async fn upload(
    stack: &Stack,
    who: &Account,
    id: &str,
    route: &str,
    path: &str,
    data: Vec<u8>,
) -> reqwest::Response {
    let form = reqwest::multipart::Form::new()
        .text("path", path.to_string())
        .part("file", reqwest::multipart::Part::bytes(data).file_name("f"));
    stack
        .req(
            who,
            Method::POST,
            &format!("/v1/capsules/{id}/files/{route}"),
        )
        .multipart(form)
        .send()
        .await
        .unwrap()
}

async fn download(
    stack: &Stack,
    who: &Account,
    id: &str,
    route: &str,
    path: &str,
) -> reqwest::Response {
    stack
        .req(
            who,
            Method::POST,
            &format!("/v1/capsules/{id}/files/{route}"),
        )
        .json(&json!({"path": path}))
        .send()
        .await
        .unwrap()
}

/// Event types (with outcome) found on the `wrenn:events` stream.
async fn stream_events(stack: &Stack) -> Vec<(String, String)> {
    let mut redis = stack.ctx().redis();
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("wrenn:events")
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .unwrap();
    entries
        .ids
        .iter()
        .filter_map(|e| {
            let payload: String = e.get("payload")?;
            let v: Value = serde_json::from_str(&payload).ok()?;
            Some((
                v["event"].as_str()?.to_string(),
                v["outcome"].as_str().unwrap_or("").to_string(),
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capsule_lifecycle_end_to_end() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let alice = stack.account("alice").await;

    // ---- create (default template) and read back
    let capsule = stack.create(&alice, json!({})).await;
    let id = capsule["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("sb_") && id.len() == 28, "{id}");
    assert_eq!(capsule["status"], "running");
    assert_eq!(capsule["template"], "minimal-busybox");
    assert_eq!(capsule["vcpus"], 1);
    assert_eq!(capsule["memory_mb"], 512);
    assert_eq!(capsule["metadata"]["runtime"], "gvisor");
    let list: Value = stack
        .req(&alice, Method::GET, "/v1/capsules")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["id"] == id.as_str()));

    // ---- exec: text, binary output, failure exit code
    let out = stack.exec(&alice, &id, "echo", &["hello"]).await;
    assert_eq!(out["stdout"], "hello\n");
    assert_eq!(out["exit_code"], 0);
    assert_eq!(out["encoding"], "utf-8");
    assert_eq!(out["sandbox_id"], id.as_str());
    let out = stack
        .exec(&alice, &id, "sh", &["-c", "printf '\\377\\376'; exit 3"])
        .await;
    assert_eq!(out["encoding"], "base64");
    assert_eq!(out["stdout"], "//4=");
    assert_eq!(out["exit_code"], 3);

    // ---- background process with a default tag, listed, then killed by tag
    let r = stack
        .req(&alice, Method::POST, &format!("/v1/capsules/{id}/exec"))
        .json(&json!({"cmd": "sleep", "args": ["300"], "background": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let bg: Value = r.json().await.unwrap();
    let tag = bg["tag"].as_str().unwrap().to_string();
    assert!(tag.starts_with("proc-") && tag.len() == 13, "{tag}");
    assert!(bg["pid"].as_u64().unwrap() > 0);
    let procs: Value = stack
        .req(&alice, Method::GET, &format!("/v1/capsules/{id}/processes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        procs["processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["tag"] == tag.as_str()),
        "{procs}"
    );
    let r = stack
        .req(
            &alice,
            Method::DELETE,
            &format!("/v1/capsules/{id}/processes/{tag}?signal=SIGTERM"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    // ---- files: upload, download, list, mkdir, remove
    let r = upload(
        &stack,
        &alice,
        &id,
        "write",
        "/tmp/hello.txt",
        b"hello file\n".to_vec(),
    )
    .await;
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    let r = download(&stack, &alice, &id, "read", "/tmp/hello.txt").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"hello file\n");
    let out = stack.exec(&alice, &id, "cat", &["/tmp/hello.txt"]).await;
    assert_eq!(out["stdout"], "hello file\n");
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 17)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let r = upload(
        &stack,
        &alice,
        &id,
        "stream/write",
        "/tmp/big.bin",
        big.clone(),
    )
    .await;
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    let r = download(&stack, &alice, &id, "stream/read", "/tmp/big.bin").await;
    assert_eq!(r.status(), 200);
    assert!(
        r.bytes().await.unwrap().as_ref() == big.as_slice(),
        "streamed bytes differ"
    );
    let r = stack
        .req(
            &alice,
            Method::POST,
            &format!("/v1/capsules/{id}/files/mkdir"),
        )
        .json(&json!({"path": "/tmp/dir/sub"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let entry: Value = r.json().await.unwrap();
    assert_eq!(entry["entry"]["type"], "directory");
    let listing: Value = stack
        .req(
            &alice,
            Method::POST,
            &format!("/v1/capsules/{id}/files/list"),
        )
        .json(&json!({"path": "/tmp"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert!(
        names.contains(&"hello.txt") && names.contains(&"dir"),
        "{names:?}"
    );
    let r = stack
        .req(
            &alice,
            Method::POST,
            &format!("/v1/capsules/{id}/files/remove"),
        )
        .json(&json!({"path": "/tmp/dir"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = download(&stack, &alice, &id, "read", "/tmp/dir/sub/none").await;
    assert_eq!(r.status(), 404);

    // ---- exec/stream over WebSocket
    let mut ws = ws_connect(&stack, &alice, &format!("/v1/capsules/{id}/exec/stream")).await;
    send(
        &mut ws,
        json!({"type": "start", "cmd": "sh", "args": ["-c", "echo out; echo err >&2; exit 4"]}),
    )
    .await;
    let mut stdout = String::new();
    let mut stderr = String::new();
    let mut exit = None;
    let first = next_json(&mut ws).await.unwrap();
    assert_eq!(first["type"], "start", "{first}");
    while let Some(f) = next_json(&mut ws).await {
        match f["type"].as_str().unwrap() {
            "stdout" => stdout.push_str(f["data"].as_str().unwrap()),
            "stderr" => stderr.push_str(f["data"].as_str().unwrap()),
            "exit" => {
                exit = f["exit_code"].as_i64();
                break;
            }
            other => panic!("unexpected frame {other}: {f}"),
        }
    }
    assert_eq!(
        (stdout.as_str(), stderr.as_str(), exit),
        ("out\n", "err\n", Some(4))
    );

    // ---- PTY: start, use, disconnect, re-attach by tag, exit
    let mut ws = ws_connect(&stack, &alice, &format!("/v1/capsules/{id}/pty")).await;
    send(
        &mut ws,
        json!({"type": "start", "cmd": "/bin/sh", "cols": 100, "rows": 30}),
    )
    .await;
    let started = next_json(&mut ws).await.unwrap();
    assert_eq!(started["type"], "started", "{started}");
    let pty_tag = started["tag"].as_str().unwrap().to_string();
    assert!(
        pty_tag.starts_with("pty-") && pty_tag.len() == 12,
        "{pty_tag}"
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    send(
        &mut ws,
        json!({"type": "input", "data": b64.encode("echo first-$((40+2))\n")}),
    )
    .await;
    pty_until(&mut ws, "first-42").await;
    send(&mut ws, json!({"type": "resize", "cols": 120, "rows": 40})).await;
    drop(ws); // the client goes away; the PTY stays
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ws = ws_connect(&stack, &alice, &format!("/v1/capsules/{id}/pty")).await;
    send(&mut ws, json!({"type": "connect", "tag": pty_tag})).await;
    send(
        &mut ws,
        json!({"type": "input", "data": b64.encode("echo again-$((50+5))\n")}),
    )
    .await;
    pty_until(&mut ws, "again-55").await;
    send(
        &mut ws,
        json!({"type": "input", "data": b64.encode("exit 0\n")}),
    )
    .await;
    loop {
        let f = next_json(&mut ws).await.expect("exit frame");
        if f["type"] == "exit" {
            assert_eq!(f["exit_code"], 0);
            break;
        }
    }

    // ---- pause: exec refused; resume: state kept
    stack
        .exec(&alice, &id, "sh", &["-c", "echo kept > /tmp/kept"])
        .await;
    let r = stack
        .req(&alice, Method::POST, &format!("/v1/capsules/{id}/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(status_of(&stack, &alice, &id).await, "paused");
    let r = stack
        .req(&alice, Method::POST, &format!("/v1/capsules/{id}/exec"))
        .json(&json!({"cmd": "true"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["error"]["code"], "invalid_state");
    let r = stack
        .req(&alice, Method::POST, &format!("/v1/capsules/{id}/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "pausing twice");
    let r = stack
        .req(&alice, Method::POST, &format!("/v1/capsules/{id}/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let out = stack.exec(&alice, &id, "cat", &["/tmp/kept"]).await;
    assert_eq!(out["stdout"], "kept\n");
    let r = stack
        .req(&alice, Method::POST, &format!("/v1/capsules/{id}/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    // ---- metrics, stats, usage
    let r = stack
        .req(
            &alice,
            Method::GET,
            &format!("/v1/capsules/{id}/metrics?range=10m"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let m: Value = r.json().await.unwrap();
    assert_eq!(m["sandbox_id"], id.as_str());
    assert!(m["points"].is_array());
    let r = stack
        .req(
            &alice,
            Method::GET,
            &format!("/v1/capsules/{id}/metrics?range=7m"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // The flush worker's pass stores what the agent gathered (once per second, all tiers).
    let stored = cpserver::capsules::metrics::flush_all(stack.app())
        .await
        .expect("metrics flush");
    assert!(stored > 0, "no metric points flushed");
    let tiers: Vec<(String, i64)> = sqlx::query_as(
        "SELECT tier, count(*) FROM capsule_metric_points GROUP BY tier ORDER BY tier",
    )
    .fetch_all(stack.ctx().db())
    .await
    .unwrap();
    assert_eq!(
        tiers.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(),
        ["10m", "24h", "2h"],
        "{tiers:?}"
    );
    // A second flush lands in the same 30 s / 5 min buckets: they merge, so every tier still
    // accounts for every sample.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cpserver::capsules::metrics::flush_all(stack.app())
        .await
        .expect("second metrics flush");
    let sums: Vec<(String, i64)> = sqlx::query_as(
        "SELECT tier, sum(samples)::int8 FROM capsule_metric_points GROUP BY tier ORDER BY tier",
    )
    .fetch_all(stack.ctx().db())
    .await
    .unwrap();
    assert_eq!(sums.len(), 3, "{sums:?}");
    assert!(
        sums.iter().all(|(_, n)| *n == sums[0].1 && *n > 0),
        "tiers disagree on the samples they hold: {sums:?}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await; // one sampler tick
    let stats: Value = stack
        .req(&alice, Method::GET, "/v1/capsules/stats?range=5m")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["current"]["running_count"], 1, "{stats}");
    assert_eq!(stats["current"]["vcpus_reserved"], 1);
    assert!(stats["peaks"]["memory_mb_reserved"].as_i64().unwrap() >= 512);
    assert!(
        !stats["series"]["labels"].as_array().unwrap().is_empty(),
        "{stats}"
    );
    let usage: Value = stack
        .req(&alice, Method::GET, "/v1/capsules/usage")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let today = usage["points"].as_array().unwrap().last().unwrap().clone();
    assert!(today["cpu_minutes"].as_f64().unwrap() > 0.0, "{usage}");
    assert!(today["ram_mb_minutes"].as_f64().unwrap() > 0.0);

    // ---- snapshot: name rules, then the capsule stays paused
    let r = stack
        .req(&alice, Method::POST, "/v1/snapshots")
        .json(&json!({"sandbox_id": id, "name": "minimal-debian"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "name_reserved"
    );
    let r = stack
        .req(&alice, Method::POST, "/v1/snapshots")
        .json(&json!({"sandbox_id": id, "name": "-bad"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        status_of(&stack, &alice, &id).await,
        "running",
        "refusals leave the capsule alone"
    );
    stack
        .exec(
            &alice,
            &id,
            "sh",
            &["-c", "echo from-snapshot > /tmp/snap.txt"],
        )
        .await;
    let r = stack
        .req(&alice, Method::POST, "/v1/snapshots")
        .json(&json!({"sandbox_id": id, "name": "snap-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let tpl: Value = r.json().await.unwrap();
    assert_eq!(tpl["name"], "snap-1");
    assert_eq!(tpl["type"], "snapshot");
    assert_eq!(tpl["platform"], false);
    assert!(tpl["id"].as_str().unwrap().starts_with("tpl_"));
    assert_eq!(status_of(&stack, &alice, &id).await, "paused");
    let r = stack
        .req(&alice, Method::POST, "/v1/snapshots")
        .json(&json!({"sandbox_id": id, "name": "snap-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "template_name_taken"
    );
    let snaps: Value = stack
        .req(&alice, Method::GET, "/v1/snapshots?type=snapshot")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(snaps.as_array().unwrap().len(), 1, "{snaps}");
    let bases: Value = stack
        .req(&alice, Method::GET, "/v1/snapshots?type=base")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(bases
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "minimal-busybox" && t["platform"] == true));

    // ---- fork: the snapshot's resources are forced, its state continues
    let fork = stack
        .create(
            &alice,
            json!({"template": "snap-1", "vcpus": 2, "memory_mb": 1024}),
        )
        .await;
    let fork_id = fork["id"].as_str().unwrap().to_string();
    assert_eq!(fork["template"], "snap-1");
    assert_eq!(fork["vcpus"], 1);
    assert_eq!(fork["memory_mb"], 512);
    let out = stack
        .exec(&alice, &fork_id, "cat", &["/tmp/snap.txt"])
        .await;
    assert_eq!(out["stdout"], "from-snapshot\n");

    // ---- destroy both; deleting the snapshot; platform templates are protected
    for cid in [&fork_id, &id] {
        let r = stack
            .req(&alice, Method::DELETE, &format!("/v1/capsules/{cid}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
        assert_eq!(status_of(&stack, &alice, cid).await, "stopped");
    }
    // The history outlives the capsule: served from the stored points.
    let m: Value = stack
        .req(
            &alice,
            Method::GET,
            &format!("/v1/capsules/{id}/metrics?range=10m"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let points = m["points"].as_array().expect("points");
    assert!(!points.is_empty(), "no stored history after destroy: {m}");
    let now = chrono::Utc::now().timestamp();
    assert!(points
        .iter()
        .all(|p| (now - 700..=now).contains(&p["timestamp_unix"].as_i64().unwrap())));
    let list: Value = stack
        .req(&alice, Method::GET, "/v1/capsules")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list.as_array().unwrap().is_empty(), "{list}");
    let r = stack
        .req(&alice, Method::DELETE, "/v1/snapshots/minimal-busybox")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = stack
        .req(&alice, Method::DELETE, "/v1/snapshots/snap-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    let r = stack
        .req(&alice, Method::DELETE, "/v1/snapshots/snap-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // ---- every outcome was recorded and published
    let events = stream_events(&stack).await;
    for (event, outcome) in [
        ("capsule.create", "success"),
        ("capsule.pause", "success"),
        ("capsule.pause", "error"),
        ("capsule.resume", "success"),
        ("capsule.destroy", "success"),
        ("template.snapshot.create", "success"),
        ("template.snapshot.create", "error"),
        ("template.snapshot.delete", "success"),
    ] {
        assert!(
            events.iter().any(|(e, o)| e == event && o == outcome),
            "no {event}/{outcome} in {events:?}"
        );
    }
    assert!(
        !events.iter().any(|(e, _)| e == "capsule.state.changed"),
        "state changes stay off the stream"
    );
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_logs WHERE action LIKE 'capsule.%'")
            .fetch_one(stack.ctx().db())
            .await
            .unwrap();
    assert!(audited >= 6, "{audited} capsule audit rows");

    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_limits_proxy_and_races() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let alice = stack.account("alice").await;
    let mallory = stack.account("mallory").await;
    let capsule = stack.create(&alice, json!({"template": "minimal"})).await;
    let id = capsule["id"].as_str().unwrap().to_string();
    assert_eq!(
        capsule["template"], "minimal-busybox",
        "`minimal` is the default's alias"
    );

    // ---- another team's key gets 404 on every capsule route
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/v1/capsules/{id}"), None),
        (Method::DELETE, format!("/v1/capsules/{id}"), None),
        (Method::POST, format!("/v1/capsules/{id}/pause"), None),
        (Method::POST, format!("/v1/capsules/{id}/resume"), None),
        (Method::POST, format!("/v1/capsules/{id}/ping"), None),
        (Method::GET, format!("/v1/capsules/{id}/metrics"), None),
        (
            Method::POST,
            format!("/v1/capsules/{id}/access-token"),
            None,
        ),
        (
            Method::POST,
            format!("/v1/capsules/{id}/exec"),
            Some(json!({"cmd": "id"})),
        ),
        (Method::GET, format!("/v1/capsules/{id}/exec/stream"), None),
        (Method::GET, format!("/v1/capsules/{id}/processes"), None),
        (
            Method::DELETE,
            format!("/v1/capsules/{id}/processes/1"),
            None,
        ),
        (
            Method::GET,
            format!("/v1/capsules/{id}/processes/1/stream"),
            None,
        ),
        (Method::GET, format!("/v1/capsules/{id}/pty"), None),
        (
            Method::POST,
            format!("/v1/capsules/{id}/files/read"),
            Some(json!({"path": "/etc/passwd"})),
        ),
        (
            Method::POST,
            format!("/v1/capsules/{id}/files/stream/read"),
            Some(json!({"path": "/etc/passwd"})),
        ),
        (
            Method::POST,
            format!("/v1/capsules/{id}/files/list"),
            Some(json!({"path": "/"})),
        ),
        (
            Method::POST,
            format!("/v1/capsules/{id}/files/mkdir"),
            Some(json!({"path": "/tmp/x"})),
        ),
        (
            Method::POST,
            format!("/v1/capsules/{id}/files/remove"),
            Some(json!({"path": "/tmp"})),
        ),
        (
            Method::POST,
            "/v1/snapshots".to_string(),
            Some(json!({"sandbox_id": id})),
        ),
    ];
    for (method, path, body) in &routes {
        let mut r = stack.req(&mallory, method.clone(), path);
        if let Some(b) = body {
            r = r.json(b);
        }
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 404, "{method} {path}");
    }
    for route in ["write", "stream/write"] {
        let r = upload(&stack, &mallory, &id, route, "/tmp/evil", b"x".to_vec()).await;
        assert_eq!(r.status(), 404, "files/{route}");
    }
    // The WebSocket handshake itself is refused too.
    let url = format!(
        "{}/v1/capsules/{id}/pty",
        stack.base.replacen("http://", "ws://", 1)
    );
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("X-API-Key", mallory.api_key.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 404),
        other => panic!(
            "foreign WebSocket upgrade was not refused: {:?}",
            other.map(|_| ())
        ),
    }
    assert_eq!(
        status_of(&stack, &alice, &id).await,
        "running",
        "nothing happened to it"
    );
    let r = stack
        .http
        .get(stack.url(&format!("/v1/capsules/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no credentials");

    // ---- oversize upload: 413 too_large and nothing written
    let cap = 100 * 1024 * 1024;
    let r = upload(
        &stack,
        &alice,
        &id,
        "write",
        "/tmp/huge.bin",
        vec![7u8; cap + 1],
    )
    .await;
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "too_large"
    );
    let r = download(&stack, &alice, &id, "read", "/tmp/huge.bin").await;
    assert_eq!(r.status(), 404, "nothing may be written");

    // ---- port proxy: team credentials or an access token; never open to the world
    stack
        .exec(
            &alice,
            &id,
            "sh",
            &[
                "-c",
                "mkdir -p /tmp/www && echo proxied-page > /tmp/www/index.html",
            ],
        )
        .await;
    let r = stack
        .req(&alice, Method::POST, &format!("/v1/capsules/{id}/exec"))
        .json(&json!({"cmd": "httpd", "args": ["-f", "-p", "8080", "-h", "/tmp/www"], "background": true, "tag": "web"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let host = format!("8080-{id}.{DOMAIN}");
    let get = |who: Option<&Account>, path: &str| {
        let mut r = stack.http.get(stack.url(path)).header("Host", &host);
        if let Some(w) = who {
            r = r.header("X-API-Key", &w.api_key);
        }
        r
    };
    let mut body = String::new();
    for _ in 0..50 {
        let r = get(Some(&alice), "/index.html").send().await.unwrap();
        if r.status() == 200 {
            body = r.text().await.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(body, "proxied-page\n");
    // A port nothing listens on is 502 port_closed (never "host not reachable").
    let closed = stack
        .http
        .get(stack.url("/"))
        .header("Host", format!("8081-{id}.{DOMAIN}"))
        .header("X-API-Key", &alice.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(closed.status(), 502);
    let closed: Value = closed.json().await.unwrap();
    assert_eq!(closed["error"]["code"], "port_closed", "{closed}");
    assert_eq!(get(None, "/index.html").send().await.unwrap().status(), 401);
    assert_eq!(
        get(Some(&mallory), "/index.html")
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let tok: Value = stack
        .req(
            &alice,
            Method::POST,
            &format!("/v1/capsules/{id}/access-token"),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = tok["token"].as_str().unwrap();
    let r = get(None, "/index.html")
        .header("X-Wrenn-Access-Token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = get(None, &format!("/index.html?wrenn_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("wrenn_proxy_token="));
    let r = get(None, "/index.html")
        .header("X-Wrenn-Access-Token", "bogus.1.00")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // ---- a paused capsule: 409, or resumed by the proxy once the team enables auto-resume
    let r = stack
        .req(&alice, Method::POST, &format!("/v1/capsules/{id}/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = get(Some(&alice), "/index.html").send().await.unwrap();
    assert_eq!(r.status(), 409, "auto-resume is off by default");
    assert_eq!(status_of(&stack, &alice, &id).await, "paused");
    let me: Value = stack
        .req(&alice, Method::GET, "/v1/me")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let team = me["auth"]["team_id"].as_str().expect("team id").to_string();
    let patch = |who: &Account, body: Value| {
        stack
            .http
            .patch(stack.url(&format!("/v1/teams/{team}")))
            .header(
                "Cookie",
                format!("wrenn_sid={}; wrenn_csrf={}", who.sid, who.csrf),
            )
            .header("X-CSRF-Token", &who.csrf)
            .json(&body)
            .send()
    };
    let r = patch(&mallory, json!({"auto_resume": true})).await.unwrap();
    assert_eq!(r.status(), 404, "another team's setting");
    let r = patch(&alice, json!({})).await.unwrap();
    assert_eq!(r.status(), 400, "nothing to change");
    let r = patch(&alice, json!({"auto_resume": "yes"})).await.unwrap();
    assert_eq!(r.status(), 400, "wrong type");
    let r = patch(&alice, json!({"auto_resume": true})).await.unwrap();
    assert_eq!(r.status(), 200);
    let t: Value = r.json().await.unwrap();
    assert_eq!(t["auto_resume"], true, "{t}");
    let r = get(Some(&mallory), "/index.html").send().await.unwrap();
    assert_eq!(r.status(), 404, "a foreign key never resumes the capsule");
    assert_eq!(status_of(&stack, &alice, &id).await, "paused");
    // Two requests at once: one resumes, the other waits for it; both are served.
    let (r1, r2) = tokio::join!(
        get(Some(&alice), "/index.html").send(),
        get(None, "/index.html")
            .header("X-Wrenn-Access-Token", token)
            .send()
    );
    for r in [r1.unwrap(), r2.unwrap()] {
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "proxied-page\n");
    }
    assert_eq!(status_of(&stack, &alice, &id).await, "running");

    // ---- concurrent pause + destroy end consistently
    let pause = stack
        .req(&alice, Method::POST, &format!("/v1/capsules/{id}/pause"))
        .send();
    let destroy = stack
        .req(&alice, Method::DELETE, &format!("/v1/capsules/{id}"))
        .send();
    let (p, d) = tokio::join!(pause, destroy);
    let (p, d) = (p.unwrap().status().as_u16(), d.unwrap().status().as_u16());
    assert!(
        matches!(p, 200 | 409) && matches!(d, 204 | 409),
        "pause {p}, destroy {d}"
    );
    let mut state = status_of(&stack, &alice, &id).await;
    if d == 409 {
        // Destroy lost the race to pause: the capsule is paused and can be destroyed now.
        assert_eq!((p, state.as_str()), (200, "paused"));
        let r = stack
            .req(&alice, Method::DELETE, &format!("/v1/capsules/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        state = status_of(&stack, &alice, &id).await;
    }
    assert_eq!(state, "stopped");
    let r = get(Some(&alice), "/index.html").send().await.unwrap();
    assert_eq!(r.status(), 409, "a stopped capsule's ports are closed");
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM capsules WHERE status IN ('pausing','stopping','starting','resuming','snapshotting')",
    )
    .fetch_one(stack.ctx().db())
    .await
    .unwrap();
    assert_eq!(left, 0, "no capsule is stuck in a transitional state");

    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_capsule_is_auto_paused_with_ttl_expired() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let bob = stack.account("bob").await;
    let capsule = stack.create(&bob, json!({"timeout_sec": 2})).await;
    let id = capsule["id"].as_str().unwrap().to_string();
    assert_eq!(capsule["timeout_sec"], 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let paused = loop {
        let v: Value = stack
            .req(&bob, Method::GET, &format!("/v1/capsules/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["status"] == "paused" {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never auto-paused: {v}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(paused["reason"], "ttl_expired");
    let mut redis = stack.ctx().redis();
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("wrenn:events")
        .arg("-")
        .arg("+")
        .query_async(&mut redis)
        .await
        .unwrap();
    let found = entries.ids.iter().any(|e| {
        let payload: String = e.get("payload").unwrap_or_default();
        let v: Value = serde_json::from_str(&payload).unwrap_or_default();
        v["event"] == "capsule.pause"
            && v["outcome"] == "success"
            && v["metadata"]["reason"] == "ttl_expired"
            && v["actor"]["type"] == "system"
            && v["resource"]["id"] == id.as_str()
    });
    assert!(found, "no capsule.pause event with reason ttl_expired");
    let r = stack
        .req(&bob, Method::POST, &format!("/v1/capsules/{id}/resume"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let out = stack.exec(&bob, &id, "echo", &["awake"]).await;
    assert_eq!(out["stdout"], "awake\n");
    stack.shutdown().await;
}
