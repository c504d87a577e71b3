//! Mutual TLS: CA-issued certificates in a real rustls handshake on loopback, and the pool
//! talking to a real `wrenn-agent` registered against the control plane.

use crate::fixtures::*;
use cpserver::hosts::monitor;
use cpserver::hosts::pool::tls13_provider;
use rustls::pki_types::ServerName;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wrenn_extension_api::ids;
use wrenn_proto::hostagent::v1::GetHostInfoRequest;

fn server_config(cert_pem: &str, key_pem: &str, ca_pem: &str) -> Arc<rustls::ServerConfig> {
    let certs = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .unwrap()
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        tls13_provider(),
    )
    .build()
    .unwrap();
    Arc::new(
        rustls::ServerConfig::builder_with_provider(tls13_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .unwrap(),
    )
}

/// Serves one TLS connection echoing 4 bytes; returns the port and the accept result.
async fn one_shot_server(
    config: Arc<rustls::ServerConfig>,
) -> (u16, tokio::task::JoinHandle<Result<(), String>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = tokio_rustls::TlsAcceptor::from(config)
            .accept(tcp)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        tls.write_all(&buf).await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        Ok(())
    });
    (port, task)
}

#[tokio::test]
async fn ca_issued_certificates_complete_a_tls13_mutual_handshake() {
    let ts = server().await;
    let hosts = ts.app().hosts.clone();
    let client_config = hosts.pool.client_tls_config().unwrap();

    // Bind first to learn the port the certificate must name.
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let issued = hosts
        .ca
        .issue_host_cert(
            "host_test",
            &format!("127.0.0.1:{port}"),
            chrono::Duration::days(7),
        )
        .unwrap();
    let (port, server) = one_shot_server(server_config(
        &issued.cert_pem,
        &issued.key_pem,
        hosts.ca.cert_pem(),
    ))
    .await;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
    let mut tls = tokio_rustls::TlsConnector::from(client_config.clone())
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    tls.write_all(b"ping").await.unwrap();
    let mut back = [0u8; 4];
    tls.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"ping");
    server.await.unwrap().unwrap();

    // A certificate for another address is refused by the control plane's client.
    let wrong = hosts
        .ca
        .issue_host_cert("host_test", "127.0.0.2:1", chrono::Duration::days(7))
        .unwrap();
    let (port, server) = one_shot_server(server_config(
        &wrong.cert_pem,
        &wrong.key_pem,
        hosts.ca.cert_pem(),
    ))
    .await;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
    assert!(tokio_rustls::TlsConnector::from(client_config.clone())
        .connect(name, tcp)
        .await
        .is_err());
    let _ = server.await;

    // A client without the CA's certificate is refused by the host side.
    let (port, server) = one_shot_server(server_config(
        &issued.cert_pem,
        &issued.key_pem,
        hosts.ca.cert_pem(),
    ))
    .await;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut hosts.ca.cert_pem().as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let anonymous = rustls::ClientConfig::builder_with_provider(tls13_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
    if let Ok(mut tls) = tokio_rustls::TlsConnector::from(Arc::new(anonymous))
        .connect(name, tcp)
        .await
    {
        // TLS 1.3 reports the missing client certificate after the client's Finished.
        let _ = tls.write_all(b"ping").await;
        let mut back = [0u8; 4];
        assert!(tls.read_exact(&mut back).await.is_err());
    }
    assert!(
        server.await.unwrap().is_err(),
        "server accepted a client without a certificate"
    );

    // The CA survives a restart: a second load with the same key gives the same CA.
    let again = cpserver::hosts::ca::InternalCa::load_or_create(
        ts.ctx().db(),
        &ts.config.encryption_key_bytes().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(again.cert_pem(), hosts.ca.cert_pem());
    let wrong_key =
        cpserver::hosts::ca::InternalCa::load_or_create(ts.ctx().db(), &[9u8; 32]).await;
    assert!(
        wrong_key.is_err(),
        "the CA key must not open with another encryption key"
    );
}

/// The `wrenn-agent` binary next to this test's target directory, if built.
fn agent_binary() -> Option<std::path::PathBuf> {
    if let Ok(p) = std::env::var("WRENN_AGENT_BIN") {
        return Some(p.into());
    }
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.parent()?.join("wrenn-agent");
    candidate.exists().then_some(candidate)
}

fn runsc_available() -> bool {
    std::process::Command::new("runsc")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Kills the agent (by pid) when the test ends, however it ends.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn pool_reaches_a_registered_agent_over_mtls_and_reconciles() {
    let Some(agent) = agent_binary() else {
        eprintln!("SKIP: no wrenn-agent binary (build it with `cargo build -p wrenn-agent` or set WRENN_AGENT_BIN)");
        return;
    };
    if !runsc_available() {
        eprintln!("SKIP: runsc is not installed; the agent cannot start");
        return;
    }
    let ts = fast_monitor_server().await;
    let admin = admin(&ts).await;
    let team = wire_to_uuid(ids::TEAM, &team_of(&admin).await);
    let (host, token) = create_host(&admin, json!({"type": "regular"})).await;
    let wire = host["id"].as_str().unwrap().to_string();
    let host_id = wire_to_uuid(ids::HOST, &wire);

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let child = std::process::Command::new(&agent)
        .args(["--warm-pool", "none"])
        .arg("--register")
        .arg(&token)
        .arg("--address")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--cp-url")
        .arg(&ts.base)
        .arg("--wrenn-dir")
        .arg(dir.path().join("wrenn"))
        .arg("--heartbeat-secs")
        .arg("1")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start wrenn-agent");
    let mut child = Child(child);
    let agent_log = || std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();

    // Registered: the host row is online with the agent's own description.
    let hosts = ts.app().hosts.clone();
    let started = std::time::Instant::now();
    let info = loop {
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "agent exited:\n{}",
            agent_log()
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "agent never served:\n{}",
            agent_log()
        );
        if let Ok(mut client) = hosts.pool.client(host_id).await {
            if let Ok(r) = client.get_host_info(GetHostInfoRequest {}).await {
                break r.into_inner();
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let connect_ms = started.elapsed().as_millis();
    eprintln!("agent served GetHostInfo over mTLS {connect_ms} ms after start");
    assert!(!info.arch.is_empty());
    let row = admin.get(&format!("/v1/hosts/{wire}")).send().await.json();
    assert_eq!(row["status"], "online");
    assert_eq!(row["transport"], "mtls");

    // Its heartbeats carry the host's load, read from this machine.
    let t = std::time::Instant::now();
    let load = loop {
        let row = admin.get(&format!("/v1/hosts/{wire}")).send().await.json();
        if row["load"].is_object() {
            break row["load"].clone();
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "no load reported: {row}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mem_total = load["mem_total_mb"].as_u64().unwrap();
    let meminfo_total = std::fs::read_to_string("/proc/meminfo")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap()
        / 1024;
    assert_eq!(mem_total, meminfo_total, "{load}");
    let mem_available = load["mem_available_mb"].as_u64().unwrap();
    assert!(mem_available > 0 && mem_available <= mem_total, "{load}");
    assert!(load["disk_total_mb"].as_u64().unwrap() >= load["disk_available_mb"].as_u64().unwrap());
    let cpu = load["cpu_pct"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&cpu), "{load}");
    assert_eq!(load["capsules_running"], 0, "{load}");
    assert!(load["sampled_at"].is_string(), "{load}");

    // A repeated call reuses the cached channel.
    let t = std::time::Instant::now();
    let mut client = hosts.pool.client(host_id).await.unwrap();
    client.get_host_info(GetHostInfoRequest {}).await.unwrap();
    eprintln!(
        "cached-channel GetHostInfo round trip: {} µs",
        t.elapsed().as_micros()
    );

    // Freeze the agent: the monitor marks it unreachable and its capsule missing.
    let capsule = seed_capsule(&ts, team, host_id, "running", 1, 512).await;
    let pid = child.0.id() as i32;
    nix_kill(pid, "STOP");
    let t = std::time::Instant::now();
    while capsule_status(&ts, capsule).await != "missing" {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "capsule never marked missing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Thaw it: the next heartbeat brings the host back; the agent does not know the capsule,
    // so reconciliation stops it.
    nix_kill(pid, "CONT");
    let t = std::time::Instant::now();
    while capsule_status(&ts, capsule).await != "stopped" {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "capsule never reconciled:\n{}",
            agent_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let events = stream_events(&ts).await;
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"host.down") && names.iter().filter(|n| **n == "host.up").count() >= 2,
        "{names:?}"
    );
    let destroy = events
        .iter()
        .find(|e| e["event"] == "capsule.destroy")
        .expect("capsule.destroy");
    assert_eq!(destroy["metadata"]["reason"], "host_state_sync");
    assert_eq!(destroy["metadata"]["inferred"], "true");
    // Nothing left to reconcile.
    assert_eq!(
        monitor::reconcile(ts.app(), &hosts, host_id).await.unwrap(),
        Default::default()
    );

    // Deleting the host makes the agent remove its credentials and exit.
    let r = admin.delete(&format!("/v1/hosts/{wire}")).send().await;
    assert_eq!(r.status, 204, "{}", r.text);
    let t = std::time::Instant::now();
    while child.0.try_wait().unwrap().is_none() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "agent kept running after deletion:\n{}",
            agent_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !dir.path().join("wrenn/host-token").exists(),
        "credentials removed"
    );
}

fn nix_kill(pid: i32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}
