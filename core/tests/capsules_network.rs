//! Capsule egress policy through the public API: the real control plane, a real agent and
//! real gVisor capsules. A web server in a network namespace of the test's own stands in
//! for the internet (no outside address is ever used).

use cpserver::test_support::stack as capsules_support;

use capsules_support::{Account, Stack};
use reqwest::Method;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A netns with busybox httpd on `addr:8080`, reached from the host over a veth.
struct Internet {
    netns: String,
    veth: String,
    addr: String,
    server: Option<Child>,
    www: std::path::PathBuf,
}

const PAGE: &str = "hello from the test internet";

impl Internet {
    fn start() -> Internet {
        let n: u32 = rand::random();
        let x = n % 250 + 1;
        let tag = format!("{n:08x}");
        let netns = format!("wrenn-test-inet-{tag}");
        let veth = format!("wtc{tag}");
        let addr = format!("10.204.{x}.2");
        let www = std::env::temp_dir().join(format!("wrenn-test-www-{tag}"));
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), PAGE).unwrap();
        ip(&["netns", "add", &netns]);
        ip(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
        ]);
        ip(&["addr", "add", &format!("10.204.{x}.1/24"), "dev", &veth]);
        ip(&["link", "set", &veth, "up"]);
        ip(&[
            "-n",
            &netns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]);
        ip(&["-n", &netns, "link", "set", "eth0", "up"]);
        ip(&["-n", &netns, "link", "set", "lo", "up"]);
        let gw = format!("10.204.{x}.1");
        ip(&["-n", &netns, "route", "add", "default", "via", &gw]);
        let server = Command::new("ip")
            .args([
                "netns", "exec", &netns, "busybox", "httpd", "-f", "-p", "8080", "-h",
            ])
            .arg(&www)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("busybox httpd");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((addr.as_str(), 8080)).is_err() {
            assert!(Instant::now() < deadline, "test web server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Internet {
            netns,
            veth,
            addr,
            server: Some(server),
            www,
        }
    }
}

impl Drop for Internet {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
        let _ = std::fs::remove_dir_all(&self.www);
    }
}

async fn fetch(stack: &Stack, who: &Account, id: &str, addr: &str) -> bool {
    let script =
        format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {addr} 8080 | grep -q '{PAGE}'");
    let out = stack.exec(who, id, "/bin/sh", &["-c", &script]).await;
    out["exit_code"] == 0
}

async fn patch(stack: &Stack, who: &Account, id: &str, body: Value) -> (u16, Value) {
    let r = stack
        .req(who, Method::PATCH, &format!("/v1/capsules/{id}/network"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn egress_policy_over_the_api() {
    let Some(stack) = Stack::start().await else {
        return;
    };
    let has_nft = Command::new("sh")
        .args(["-c", "command -v nft && command -v busybox"])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !has_nft {
        eprintln!("SKIPPED: nftables or busybox is not installed");
        stack.shutdown().await;
        return;
    }
    let alice = stack.account("alice").await;
    let bob = stack.account("bob").await;
    let net = Internet::start();

    for bad in [
        json!({"network": {"mode": "sometimes"}}),
        json!({"network": {"mode": "allow_list", "allow": ["10.0.0.0/33"]}}),
        json!({"network": {"mode": "deny_all", "allow": ["10.0.0.1"]}}),
    ] {
        let r = stack
            .req(&alice, Method::POST, "/v1/capsules")
            .json(&bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    }

    // Default: allow_all, and the page comes back.
    let open = stack.create(&alice, json!({})).await;
    let open_id = open["id"].as_str().unwrap().to_string();
    assert_eq!(open["network"]["mode"], "allow_all", "{open}");
    assert!(fetch(&stack, &alice, &open_id, &net.addr).await);

    // Created deny_all: blocked; PATCH to an allow-list admitting the server: reached.
    let c = stack
        .create(&alice, json!({"network": {"mode": "deny_all"}}))
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    assert_eq!(c["network"]["mode"], "deny_all");
    assert!(!fetch(&stack, &alice, &id, &net.addr).await);
    let cidr = format!("{}/32", net.addr);
    let (status, body) = patch(
        &stack,
        &alice,
        &id,
        json!({"mode": "allow_list", "allow": [cidr]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["network"]["mode"], "allow_list");
    assert_eq!(body["network"]["allow"][0], cidr.as_str());
    assert!(fetch(&stack, &alice, &id, &net.addr).await);
    // An allow-list without the server blocks it again.
    let (status, _) = patch(
        &stack,
        &alice,
        &id,
        json!({"mode": "allow_list", "allow": ["192.0.2.123/32"]}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(!fetch(&stack, &alice, &id, &net.addr).await);

    // Bad input: 400 invalid_request; another team's capsule: 404. The policy is kept.
    for bad in [
        json!({"mode": "allow_list", "allow": ["10.1.2.3/40"]}),
        json!({"mode": "maybe"}),
        json!({"mode": "allow_all", "extra": 1}),
    ] {
        let (status, body) = patch(&stack, &alice, &id, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request");
    }
    let (status, _) = patch(&stack, &bob, &id, json!({"mode": "allow_all"})).await;
    assert_eq!(status, 404);
    let r = stack
        .req(&alice, Method::GET, &format!("/v1/capsules/{id}"))
        .send()
        .await
        .unwrap();
    let shown: Value = r.json().await.unwrap();
    assert_eq!(shown["network"]["allow"][0], "192.0.2.123/32", "{shown}");

    // The OpenAPI document describes the route and the policy.
    let doc: Value = stack
        .http
        .get(stack.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["paths"]["/v1/capsules/{id}/network"]["patch"].is_object(),
        "PATCH /v1/capsules/{{id}}/network is not in the OpenAPI document"
    );
    assert!(doc["components"]["schemas"]["NetworkPolicy"].is_object());
    stack.shutdown().await;
}
