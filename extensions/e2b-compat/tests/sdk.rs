//! The official E2B SDKs, installed from the package registries (tests/sdk/install.sh), drive
//! a real control plane, a real agent and gVisor capsules through this extension, with only
//! their environment changed. The scripts (tests/sdk/e2b_sdk.py, tests/sdk/e2b_sdk.mjs) are
//! written for E2B; each step prints `ok <step>`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use cpserver::test_support::stack::{Account, Stack};
use serde_json::Value;
use wrenn_ext_e2b::{E2b, E2bConfig};

const DOMAIN: &str = "e2b.test";

fn sdk_dir() -> PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/install.sh");
    let out = Command::new("bash")
        .arg(script)
        .output()
        .expect("running tests/sdk/install.sh");
    assert!(
        out.status.success(),
        "installing the E2B SDKs failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

struct E2bStack {
    stack: Stack,
    port: u16,
    account: Account,
}

impl E2bStack {
    /// The stack with the extension on its own loopback listener, or `None` (printed why)
    /// where gVisor capsules cannot run.
    async fn start(customise: impl FnOnce(E2bConfig) -> E2bConfig) -> Option<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut config = E2bConfig::new(listener.local_addr().unwrap());
        config.domain = Some(DOMAIN.into());
        let config = customise(config);
        let stack =
            Stack::start_with(move |b| b.extension(E2b::new(config).with_listener(listener)))
                .await?;
        let account = stack.account("e2b").await;
        Some(Self {
            stack,
            port,
            account,
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The account's key in E2B's shape (`e2b_` + the same hex digits).
    fn e2b_key(&self) -> String {
        self.account.api_key.replacen("wrn_", "e2b_", 1)
    }

    /// Runs `program args` with the SDK environment of plain-HTTP header routing; returns
    /// its output after asserting it succeeded.
    fn run_sdk(&self, program: PathBuf, args: &[&str], marker: &str) -> String {
        let started = Instant::now();
        let out = Command::new(&program)
            .args(args)
            .env("E2B_API_KEY", self.e2b_key())
            .env("E2B_API_URL", self.url())
            .env("E2B_SANDBOX_URL", self.url())
            .env("E2B_DOMAIN", DOMAIN)
            .env("E2B_TEST_MARKER", marker)
            .env_remove("E2B_DEBUG")
            .output()
            .expect("running the SDK script");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        eprintln!(
            "{} {args:?} ({:.1} s):\n{stdout}{stderr}",
            program.display(),
            started.elapsed().as_secs_f64()
        );
        assert!(
            out.status.success() && stdout.contains("all ok"),
            "the SDK script failed\nstdout:\n{stdout}\nstderr:\n{stderr}\nagent log (tail):\n{}",
            tail(&self.stack.agent_log(), 4000)
        );
        stdout
    }

    /// Waits until no capsule of the account is left running (the scripts kill theirs).
    async fn capsules(&self) -> Vec<Value> {
        let r = self
            .stack
            .req(&self.account, reqwest::Method::GET, "/v1/capsules")
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }
}

fn tail(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len())
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0);
    &s[start..]
}

fn script(name: &str) -> String {
    format!("{}/tests/sdk/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdks_run_an_e2b_script_unchanged() {
    let Some(e2b) = E2bStack::start(|c| c).await else {
        return;
    };
    let sdks = sdk_dir();
    for release in ["2.63.0", "2.45.1"] {
        let python = sdks.join(format!("py-{release}/bin/python"));
        let out = e2b.run_sdk(python, &[&script("e2b_sdk.py")], &format!("py-{release}"));
        assert!(out.contains(&format!("all ok {release}")), "{out}");
    }
    // Every sandbox the scripts made is gone (killed, or ended at its timeout).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = e2b.capsules().await;
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "capsules left: {left:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    e2b.stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_sdk_runs_an_e2b_script_unchanged() {
    let Some(e2b) = E2bStack::start(|c| c).await else {
        return;
    };
    let sdk = sdk_dir().join("js-2.51.0");
    let out = e2b.run_sdk(
        PathBuf::from("node"),
        &[&script("e2b_sdk.mjs"), sdk.to_str().unwrap()],
        "js",
    );
    assert!(out.contains("all ok 2.51.0"), "{out}");
    e2b.stack.shutdown().await;
}

/// Domain mode: `https://{port}-{id}.e2b.test` and `https://api.e2b.test` with a wildcard
/// certificate from a test CA (`SSL_CERT_FILE` for Python, `NODE_EXTRA_CA_CERTS` for Node),
/// resolved by a test DNS server. The SDK runs in a mount namespace of its own whose
/// /etc/resolv.conf names that server; the listener and the DNS server bind a loopback address
/// of their own (port 443 and 53), so nothing on the host is touched.
async fn in_domain_mode(program: PathBuf, args: &[String], want: &str) {
    if Command::new("unshare").arg("--version").output().is_err() {
        eprintln!("SKIPPED: unshare (util-linux) is missing");
        return;
    }
    let ip = loopback_address();
    let tmp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = test_ca(tmp.path());
    let listener = match TcpListener::bind((ip, 443)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("SKIPPED: cannot bind {ip}:443 ({e}); domain mode needs root");
            return;
        }
    };
    let dns = dns_server(ip);
    let resolv = tmp.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        format!("nameserver {ip}\noptions timeout:2 attempts:2\n"),
    )
    .unwrap();

    let mut config = E2bConfig::new(listener.local_addr().unwrap());
    config.domain = Some(DOMAIN.into());
    config.tls = Some((cert, key));
    let Some(stack) =
        Stack::start_with(move |b| b.extension(E2b::new(config).with_listener(listener))).await
    else {
        return;
    };
    let account = stack.account("e2b-tls").await;
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg(r#"mount --bind "$0" /etc/resolv.conf && exec "$@""#)
        .arg(&resolv)
        .arg(&program)
        .args(args)
        .env("E2B_API_KEY", account.api_key.replacen("wrn_", "e2b_", 1))
        .env("E2B_DOMAIN", DOMAIN)
        .env("SSL_CERT_FILE", &ca)
        .env("NODE_EXTRA_CA_CERTS", &ca)
        .env("E2B_TEST_MARKER", "tls")
        .env_remove("E2B_API_URL")
        .env_remove("E2B_SANDBOX_URL")
        .env_remove("E2B_DEBUG")
        .output()
        .expect("running the SDK in its own mount namespace");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("domain mode, {}:\n{stdout}{stderr}", program.display());
    assert!(
        out.status.success() && stdout.contains(want),
        "the SDK script failed in domain mode ({:?})\n{stdout}\n{stderr}\nagent log (tail):\n{}",
        out.status,
        tail(&stack.agent_log(), 4000)
    );
    drop(dns);
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_works_in_domain_mode_with_tls() {
    let python = sdk_dir().join("py-2.63.0/bin/python");
    let args = ["-X", "dev", "-X", "faulthandler", &script("e2b_sdk.py")].map(String::from);
    in_domain_mode(python, &args, "all ok 2.63.0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_javascript_sdk_works_in_domain_mode_with_tls() {
    let sdk = sdk_dir().join("js-2.51.0");
    let args = [script("e2b_sdk.mjs"), sdk.display().to_string()];
    in_domain_mode(PathBuf::from("node"), &args, "all ok 2.51.0").await;
}

/// A loopback address no other test of this run uses: 127.83.<pid>.<n>.
fn loopback_address() -> std::net::Ipv4Addr {
    static NEXT: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    std::net::Ipv4Addr::new(127, 83, (std::process::id() % 250) as u8 + 2, n)
}

/// A CA and a certificate for `*.e2b.test` and `api.e2b.test` it signed: (ca, cert, key) PEMs.
fn test_ca(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Wrenn E2B test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_params =
        CertificateParams::new(vec![format!("*.{DOMAIN}"), format!("api.{DOMAIN}")]).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, leaf.pem()).unwrap();
    std::fs::write(&paths.2, leaf_key.serialize_pem()).unwrap();
    paths
}

/// A DNS server on `ip:53` (UDP) answering every name under the test domain with `ip` (A
/// records; other types get an empty answer, other names NXDOMAIN). Stops when dropped.
struct Dns(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for Dns {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

fn dns_server(ip: std::net::Ipv4Addr) -> Dns {
    let socket = std::net::UdpSocket::bind((ip, 53)).expect("bind the test DNS server");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
            if let Ok((n, peer)) = socket.recv_from(&mut buf) {
                if let Some(answer) = answer(&buf[..n], ip) {
                    let _ = socket.send_to(&answer, peer);
                }
            }
        }
    });
    Dns(stop)
}

/// The reply to one DNS query (RFC 1035 §4.1).
fn answer(query: &[u8], ip: std::net::Ipv4Addr) -> Option<Vec<u8>> {
    let mut at = 12;
    let mut labels = Vec::new();
    while *query.get(at)? != 0 {
        let len = usize::from(query[at]);
        labels.push(String::from_utf8_lossy(query.get(at + 1..at + 1 + len)?).to_lowercase());
        at += 1 + len;
    }
    let qtype = u16::from_be_bytes([*query.get(at + 1)?, *query.get(at + 2)?]);
    let end = at + 5;
    let name = labels.join(".");
    let ours = name == DOMAIN || name.ends_with(&format!(".{DOMAIN}"));
    let a = ours && qtype == 1;
    let mut out = query.get(..2)?.to_vec();
    out.extend([0x81, if ours { 0x80 } else { 0x83 }]);
    out.extend([0, 1, 0, u8::from(a), 0, 0, 0, 0]);
    out.extend(query.get(12..end)?);
    if a {
        out.extend([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        out.extend(ip.octets());
    }
    Some(out)
}
