//! Registration, heartbeat, refresh and host deletion against a stand-in control plane
//! that implements API.md's host endpoints, and the mTLS server the credentials enable.

#[path = "support/agent.rs"]
mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use serde_json::{json, Value};
use wrenn_proto::hostagent::v1 as pb;
use wrenn_proto::hostagent::v1::host_agent_service_client::HostAgentServiceClient;

struct Pki {
    ca_pem: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "wrenn test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let leaf = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
        let cert = p.signed_by(&key, &ca_cert, &ca_key).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf("host");
    let (client_cert, client_key) = leaf("control-plane");
    Pki {
        ca_pem: ca_cert.pem(),
        server_cert,
        server_key,
        client_cert,
        client_key,
    }
}

#[derive(Default)]
struct Cp {
    registered: Option<Value>,
    heartbeats: Vec<String>,
    refreshes: u32,
    token: String,
    deleted: bool,
    pki: Option<(String, String, String)>,
}

type Shared = Arc<Mutex<Cp>>;

async fn register(State(cp): State<Shared>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let mut cp = cp.lock().unwrap();
    if body["token"] != "reg-token" {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": {"code": "invalid_token", "message": "bad token"}})),
        );
    }
    cp.registered = Some(body);
    cp.token = "host-jwt-1".into();
    let (cert, key, ca) = cp.pki.clone().unwrap();
    (
        StatusCode::CREATED,
        Json(
            json!({"host": {"id": "host_abc"}, "token": cp.token, "refresh_token": "refresh-1",
                    "cert_pem": cert, "key_pem": key, "ca_cert_pem": ca}),
        ),
    )
}

async fn heartbeat(
    State(cp): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> StatusCode {
    let mut cp = cp.lock().unwrap();
    let token = headers
        .get("x-host-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    cp.heartbeats.push(token.clone());
    if id != "host_abc" || cp.deleted {
        return StatusCode::NOT_FOUND;
    }
    // The second heartbeat finds the token expired.
    if cp.heartbeats.len() == 2 {
        cp.token = "expired".into();
    }
    if token != cp.token {
        return StatusCode::UNAUTHORIZED;
    }
    StatusCode::NO_CONTENT
}

async fn refresh(State(cp): State<Shared>, Json(body): Json<Value>) -> (StatusCode, Json<Value>) {
    let mut cp = cp.lock().unwrap();
    assert_eq!(body["refresh_token"], "refresh-1");
    cp.refreshes += 1;
    cp.token = "host-jwt-2".into();
    let (cert, key, ca) = cp.pki.clone().unwrap();
    (
        StatusCode::OK,
        Json(
            json!({"token": cp.token, "refresh_token": "refresh-2", "cert_pem": cert, "key_pem": key, "ca_cert_pem": ca}),
        ),
    )
}

async fn grpc_over_mtls(
    addr: SocketAddr,
    pki: &Pki,
    with_client_cert: bool,
) -> Result<pb::HostInfo, String> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pki.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut config = if with_client_cert {
        let certs: Vec<CertificateDer<'static>> =
            rustls_pemfile::certs(&mut pki.client_cert.as_bytes())
                .collect::<Result<_, _>>()
                .unwrap();
        let key: PrivateKeyDer<'static> =
            rustls_pemfile::private_key(&mut pki.client_key.as_bytes())
                .unwrap()
                .unwrap();
        builder.with_client_auth_cert(certs, key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let channel = tonic::transport::Endpoint::from_static("http://agent")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let tls = connector
                    .connect(
                        ServerName::IpAddress(
                            "127.0.0.1".parse::<std::net::IpAddr>().unwrap().into(),
                        ),
                        tcp,
                    )
                    .await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| e.to_string())?;
    let mut client = HostAgentServiceClient::new(channel);
    client
        .get_host_info(pb::GetHostInfoRequest {})
        .await
        .map(|r| r.into_inner())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn registers_heartbeats_refreshes_serves_mtls_and_exits_when_deleted() {
    if let Some(reason) = support::skip_reason() {
        eprintln!("SKIP registration: {reason}");
        return;
    }
    let pki = pki();
    let cp: Shared = Arc::new(Mutex::new(Cp {
        pki: Some((
            pki.server_cert.clone(),
            pki.server_key.clone(),
            pki.ca_pem.clone(),
        )),
        ..Default::default()
    }));
    let app = Router::new()
        .route("/v1/hosts/register", post(register))
        .route("/v1/hosts/{id}/heartbeat", post(heartbeat))
        .route("/v1/hosts/auth/refresh", post(refresh))
        .with_state(cp.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cp_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::Builder::new()
        .prefix("wrenn-agent-reg-")
        .tempdir_in("/tmp")
        .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wrenn-agent"))
        .arg("--wrenn-dir")
        .arg(dir.path())
        .args(["--warm-pool", "none"])
        .args([
            "--address",
            &addr.to_string(),
            "--register",
            "reg-token",
            "--cp-url",
            &cp_url,
            "--heartbeat-secs",
            "1",
        ])
        .args([
            "--probe-cache",
            "/var/tmp/wrenn-agent-tests/capabilities.json",
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();

    // mTLS: a control-plane client certificate gets in, no certificate does not.
    let start = Instant::now();
    let info = loop {
        match grpc_over_mtls(addr, &pki, true).await {
            Ok(info) => break info,
            Err(e) => {
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "mTLS never worked: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(info.capabilities.unwrap().runtime, "gvisor");
    assert!(
        grpc_over_mtls(addr, &pki, false).await.is_err(),
        "served a client without a certificate"
    );

    let body = cp.lock().unwrap().registered.clone().expect("registered");
    for key in ["arch", "cpu_cores", "memory_mb", "disk_gb", "capabilities"] {
        assert!(!body[key].is_null(), "register body lacks {key}: {body}");
    }
    assert_eq!(body["address"], addr.to_string());
    let creds = dir.path().join("host-token");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&creds).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Heartbeats go on; the 401 on the second one is answered by a refresh.
    let start = Instant::now();
    while cp
        .lock()
        .unwrap()
        .heartbeats
        .iter()
        .filter(|t| *t == "host-jwt-2")
        .count()
        < 2
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no heartbeat after refresh: {:?}",
            cp.lock().unwrap().heartbeats
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(cp.lock().unwrap().refreshes, 1);
    let saved: Value = serde_json::from_slice(&std::fs::read(&creds).unwrap()).unwrap();
    assert_eq!(saved["token"], "host-jwt-2");
    assert_eq!(saved["refresh_token"], "refresh-2");

    // The host is deleted: the agent removes its credentials and exits.
    cp.lock().unwrap().deleted = true;
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("agent did not exit after 404");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(status.success(), "agent exit: {status}");
    assert!(!creds.exists(), "credentials kept after deletion");
}

#[test]
fn insecure_dev_refuses_non_loopback_and_missing_credentials_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_wrenn-agent"))
            .arg("--wrenn-dir")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--address", "0.0.0.0:50999", "--insecure-dev"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("loopback"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["--address", "127.0.0.1:50999"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no credentials"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
