//! The listener kinds: unix and tcp are covered by every other test; vsock here, as far as this
//! machine allows.
mod support;

use axum::body::Body;
use http::{Method, StatusCode};
use support::*;
use wrenn_envd::config::ListenAddr;

#[tokio::test]
async fn vsock_listener_binds_and_serves_where_loopback_exists() {
    // Does this kernel offer AF_VSOCK at all?
    let probe = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Vsock,
        nix::sys::socket::SockType::Stream,
        nix::sys::socket::SockFlag::empty(),
        None,
    );
    if let Err(e) = probe {
        eprintln!("skipping: AF_VSOCK is not available here ({e})");
        return;
    }
    let port = 40_000 + (std::process::id() % 20_000);
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_envd"))
        .args(["--listen", &format!("vsock:{port}")])
        .env("ENVD_LOG", "warn")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(std::time::Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap_or_default();
    assert_eq!(line, format!("envd listening on vsock:{port}"));

    let addr = ListenAddr::Vsock(port);
    match wrenn_envd::client::connect(&addr).await {
        Err(e) => eprintln!("skipping the request over vsock: no local vsock loopback here ({e})"),
        Ok(_) => {
            let envd = Envd {
                child,
                addr,
                dir,
                token: None,
                stdout: lines,
            };
            let (status, _, _) = envd.http(Method::GET, "/health", &[], Body::empty()).await;
            assert_eq!(status, StatusCode::OK);
        }
    }
}
