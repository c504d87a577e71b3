//! Capsule networking with real gVisor capsules: a server in a network namespace of the
//! test's own stands in for the internet (no outside address is ever used), and egress
//! policy, the always-blocked destinations, pause/resume and fork are checked against it.
//! Run as root with runsc and nftables installed; otherwise each test prints why it skips.

#[path = "support/agent.rs"]
mod support;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{capsule_id, create_req, ok, sh, skip, Agent, BUSYBOX, PLATFORM_TEAM};
use tonic::Code;
use wrenn_proto::hostagent::v1 as pb;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A network namespace of the test's with a web server on port 8080 at two addresses
/// (`a` and `b`), reached from the host over a veth: the stand-in for the internet.
struct Internet {
    netns: String,
    veth: String,
    a: String,
    b: String,
    host: String,
    server: Option<Child>,
    metadata_route: bool,
    /// What the web server serves.
    www: std::path::PathBuf,
}

const PAGE: &str = "hello from the test internet";

impl Internet {
    fn start() -> Internet {
        let n: u32 = rand::random();
        // 10.203.x.0/24, away from the agent's 10.201.0.0/16 transfer pool.
        let (x, tag) = (n % 250 + 1, format!("{n:08x}"));
        let netns = format!("wrenn-test-inet-{tag}");
        let veth = format!("wti{}", &tag[..8]);
        let net = Internet {
            netns: netns.clone(),
            veth: veth.clone(),
            a: format!("10.203.{x}.2"),
            b: format!("10.203.{x}.3"),
            host: format!("10.203.{x}.1"),
            server: None,
            metadata_route: false,
            www: std::env::temp_dir().join(format!("wrenn-test-www-{tag}")),
        };
        let www = net.www.clone();
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), PAGE).unwrap();
        for args in [
            vec!["netns", "add", &netns],
            vec![
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
            ],
        ] {
            ip(&args).unwrap();
        }
        let host_cidr = format!("{}/24", net.host);
        let a_cidr = format!("{}/24", net.a);
        let b_cidr = format!("{}/24", net.b);
        ip(&["addr", "add", &host_cidr, "dev", &veth]).unwrap();
        ip(&["link", "set", &veth, "up"]).unwrap();
        for args in [
            vec!["addr", "add", a_cidr.as_str(), "dev", "eth0"],
            vec!["addr", "add", b_cidr.as_str(), "dev", "eth0"],
            vec!["addr", "add", "169.254.169.254/32", "dev", "eth0"],
            vec!["link", "set", "eth0", "up"],
            vec!["link", "set", "lo", "up"],
            vec!["route", "add", "default", "via", net.host.as_str()],
        ] {
            let mut full = vec!["-n", netns.as_str()];
            full.extend(args);
            ip(&full).unwrap();
        }
        let server = Command::new("ip")
            .args([
                "netns", "exec", &netns, "busybox", "httpd", "-f", "-p", "8080", "-h",
            ])
            .arg(&www)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting busybox httpd");
        let mut net = net;
        net.server = Some(server);
        // A metadata server on the test network: the host itself can reach it, so a
        // capsule failing to is the policy's doing, not a missing route.
        net.metadata_route = ip(&["route", "add", "169.254.169.254/32", "via", &net.a]).is_ok();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect((net.a.as_str(), 8080)).is_err() {
            assert!(Instant::now() < deadline, "test web server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        net
    }
}

impl Drop for Internet {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if self.metadata_route {
            let _ = ip(&["route", "del", "169.254.169.254/32", "via", &self.a]);
        }
        let _ = ip(&["link", "del", &self.veth]);
        let _ = ip(&["netns", "del", &self.netns]);
        let _ = std::fs::remove_dir_all(&self.www);
    }
}

fn net_skip(test: &str) -> bool {
    if skip(test) {
        return true;
    }
    for tool in ["nft", "busybox"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !found {
            eprintln!("SKIP {test}: {tool} is not installed");
            return true;
        }
    }
    false
}

/// Starts an agent and fails loudly when capsules would not get a network.
async fn agent_with_network(test: &str) -> Option<Agent> {
    agent_with_network_and(test, &[]).await
}

/// [`agent_with_network`] with more agent flags.
async fn agent_with_network_and(test: &str, extra: &[&str]) -> Option<Agent> {
    let mut a = Agent::start(extra).await;
    let info = a
        .client
        .get_host_info(pb::GetHostInfoRequest {})
        .await
        .expect("host info")
        .into_inner();
    let caps = info.capabilities.unwrap_or_default();
    if caps.network_mode != "sandbox" {
        eprintln!(
            "SKIP {test}: capsule networking unavailable on this host: {:?}",
            caps.notes
        );
        return None;
    }
    Some(a)
}

/// Fetches `http://addr:port/` from inside the capsule; Some(body) or None.
async fn fetch(a: &mut Agent, id: &str, addr: &str, port: u16) -> Option<String> {
    let (code, out, _) = sh(
        &mut a.client,
        id,
        // busybox nc rather than wget, whose -q/-O- crash under gVisor (SIGSEGV).
        &format!(
            "out=$(printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {addr} {port}) && [ -n \"$out\" ] && printf '%s\\n' \"$out\" | tail -n 1"
        ),
    )
    .await;
    (code == 0).then(|| out.trim().to_owned())
}

fn policy(mode: &str, allow: &[&str]) -> pb::NetworkPolicy {
    pb::NetworkPolicy {
        mode: mode.into(),
        allow: allow.iter().map(|s| s.to_string()).collect(),
    }
}

async fn set_policy(a: &mut Agent, id: &str, p: pb::NetworkPolicy) -> Result<(), tonic::Status> {
    a.client
        .set_sandbox_network(pb::SetSandboxNetworkRequest {
            sandbox_id: id.into(),
            network: Some(p),
        })
        .await
        .map(|_| ())
}

/// The host's own IPv4 addresses except loopback.
fn host_addresses() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.split_once('/').map(|(a, _)| a.to_owned()))
        .filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok() && !a.starts_with("127."))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn capsule_reaches_the_test_internet_and_egress_policy_holds() {
    let test = "egress_policy";
    if net_skip(test) {
        return;
    }
    let Some(mut a) = agent_with_network(test).await else {
        return;
    };
    let net = Internet::start();
    let id = capsule_id();
    let started = Instant::now();
    a.client
        .create_sandbox(create_req(&id, BUSYBOX))
        .await
        .expect("create");
    eprintln!("create with networking: {:?}", started.elapsed());

    // allow_all (the default): the page comes back, and DNS is configured.
    assert_eq!(
        fetch(&mut a, &id, &net.a, 8080).await.as_deref(),
        Some(PAGE)
    );
    let resolv = ok(sh(&mut a.client, &id, "cat /etc/resolv.conf").await);
    assert!(resolv.contains("written by wrenn-agent"), "{resolv}");
    let (code, _, _) = sh(&mut a.client, &id, "echo x >> /etc/resolv.conf").await;
    assert_ne!(
        code, 0,
        "the capsule could rewrite its resolver configuration"
    );

    // Always unreachable: the metadata address (the host reaches it), the host's own
    // addresses (a listener of the test's on all of them), and the wildcard listener on
    // the capsule's gateway.
    if net.metadata_route {
        assert!(std::net::TcpStream::connect(("169.254.169.254", 8080)).is_ok());
        assert_eq!(fetch(&mut a, &id, "169.254.169.254", 8080).await, None);
    }
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            use std::io::Write;
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\nhost");
        }
    });
    let mut targets = host_addresses();
    targets.push("192.168.254.1".into());
    for addr in &targets {
        assert_eq!(
            fetch(&mut a, &id, addr, port).await,
            None,
            "capsule reached the host at {addr}"
        );
    }

    // deny_all blocks it; allow_list admits one address and not another.
    set_policy(&mut a, &id, policy("deny_all", &[]))
        .await
        .expect("deny_all");
    assert_eq!(fetch(&mut a, &id, &net.a, 8080).await, None);
    let a_cidr = format!("{}/32", net.a);
    set_policy(&mut a, &id, policy("allow_list", &[&a_cidr]))
        .await
        .expect("allow_list");
    assert_eq!(
        fetch(&mut a, &id, &net.a, 8080).await.as_deref(),
        Some(PAGE)
    );
    assert_eq!(fetch(&mut a, &id, &net.b, 8080).await, None);
    // Names resolve on the host ("localhost" needs no resolver); bad input is refused.
    set_policy(&mut a, &id, policy("allow_list", &["localhost", &a_cidr]))
        .await
        .expect("allow_list with a host name");
    for bad in [
        policy("allow_list", &["10.0.0.0/33"]),
        policy("sometimes", &[]),
        policy("deny_all", &["10.0.0.1"]),
        policy("allow_list", &["bad name!"]),
    ] {
        let e = set_policy(&mut a, &id, bad.clone()).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad:?}: {e}");
    }
    set_policy(&mut a, &id, policy("allow_all", &[]))
        .await
        .expect("allow_all");
    assert_eq!(
        fetch(&mut a, &id, &net.b, 8080).await.as_deref(),
        Some(PAGE)
    );

    // A second capsule, with a server of its own, is unreachable from the first.
    let two = capsule_id();
    let mut req = create_req(&two, BUSYBOX);
    req.network = Some(policy("allow_list", &[&a_cidr]));
    a.client.create_sandbox(req).await.expect("create two");
    a.client
        .start_background(pb::StartBackgroundRequest {
            sandbox_id: two.clone(),
            process: Some(pb::ProcessSpec {
                cmd: "/bin/sh".into(),
                args: vec![
                    "-c".into(),
                    "mkdir -p /tmp/www && echo two > /tmp/www/index.html && exec httpd -f -p 0.0.0.0:8081 -h /tmp/www".into(),
                ],
                ..Default::default()
            }),
        })
        .await
        .expect("server in capsule two");
    // Created with allow_list: only the one address.
    assert_eq!(
        fetch(&mut a, &two, &net.a, 8080).await.as_deref(),
        Some(PAGE)
    );
    assert_eq!(fetch(&mut a, &two, &net.b, 8080).await, None);
    let deadline = Instant::now() + Duration::from_secs(10);
    while fetch(&mut a, &two, "127.0.0.1", 8081).await.as_deref() != Some("two") {
        if Instant::now() > deadline {
            let (_, out, err) = sh(&mut a.client, &two, "netstat -ltn; ps; ls -l /tmp/www").await;
            panic!("capsule two's server did not start: {out} {err}");
        }
    }
    // Capsule two's host-side addresses (its router's), from the host's interfaces.
    for addr in host_addresses().iter().filter(|a| a.starts_with("10.201.")) {
        let octets: Vec<u32> = addr.split('.').map(|o| o.parse().unwrap()).collect();
        let router = format!("10.201.{}.{}", octets[2], octets[3] + 1);
        assert_eq!(
            fetch(&mut a, &id, &router, 8081).await,
            None,
            "capsule one reached {router}"
        );
    }

    for id in [id, two] {
        a.client
            .destroy_sandbox(pb::DestroySandboxRequest { sandbox_id: id })
            .await
            .expect("destroy");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn network_survives_pause_resume_and_fork() {
    let test = "network_pause_fork";
    if net_skip(test) {
        return;
    }
    let Some(mut a) = agent_with_network(test).await else {
        return;
    };
    let net = Internet::start();
    let id = capsule_id();
    a.client
        .create_sandbox(create_req(&id, BUSYBOX))
        .await
        .expect("create");
    assert_eq!(
        fetch(&mut a, &id, &net.a, 8080).await.as_deref(),
        Some(PAGE)
    );

    let started = Instant::now();
    a.client
        .pause_sandbox(pb::PauseSandboxRequest {
            sandbox_id: id.clone(),
        })
        .await
        .expect("pause");
    eprintln!("pause with networking: {:?}", started.elapsed());
    // The policy can change while paused; it holds after resume.
    set_policy(&mut a, &id, policy("deny_all", &[]))
        .await
        .expect("deny_all while paused");
    let started = Instant::now();
    a.client
        .resume_sandbox(pb::ResumeSandboxRequest {
            sandbox_id: id.clone(),
            timeout_sec: 0,
        })
        .await
        .expect("resume");
    eprintln!("resume with networking: {:?}", started.elapsed());
    assert_eq!(fetch(&mut a, &id, &net.a, 8080).await, None);
    set_policy(&mut a, &id, policy("allow_all", &[]))
        .await
        .expect("allow_all");
    assert_eq!(
        fetch(&mut a, &id, &net.a, 8080).await.as_deref(),
        Some(PAGE)
    );

    let template: String = {
        let n: u128 = rand::random::<u128>() >> 8;
        let mut s = String::new();
        let mut v = n;
        while s.len() < 25 {
            s.push(std::char::from_digit((v % 36) as u32, 36).unwrap());
            v /= 36;
        }
        s
    };
    a.client
        .create_snapshot(pb::CreateSnapshotRequest {
            sandbox_id: id.clone(),
            template: Some(pb::TemplateRef {
                team_id: PLATFORM_TEAM.into(),
                template_id: template.clone(),
            }),
        })
        .await
        .expect("snapshot");
    let forks = [capsule_id(), capsule_id()];
    for fork in &forks {
        let mut req = create_req(fork, BUSYBOX);
        req.snapshot = Some(pb::TemplateRef {
            team_id: PLATFORM_TEAM.into(),
            template_id: template.clone(),
        });
        let started = Instant::now();
        a.client.create_sandbox(req).await.expect("fork");
        eprintln!("fork with networking: {:?}", started.elapsed());
    }
    // Both forks carry the same guest address, yet each has its own working network.
    for fork in &forks {
        assert_eq!(
            fetch(&mut a, fork, &net.a, 8080).await.as_deref(),
            Some(PAGE),
            "fork {fork}"
        );
    }
    a.client
        .resume_sandbox(pb::ResumeSandboxRequest {
            sandbox_id: id.clone(),
            timeout_sec: 0,
        })
        .await
        .expect("resume the original");
    assert_eq!(
        fetch(&mut a, &id, &net.b, 8080).await.as_deref(),
        Some(PAGE)
    );

    let netns_of = |id: &str| std::path::Path::new("/run/netns").join(format!("wrenn-{id}"));
    for id in forks.iter().chain([&id]) {
        assert!(netns_of(id).exists());
        let plumbing: serde_json::Value = serde_json::from_slice(
            &std::fs::read(a.dir.join("sandboxes").join(id).join("net.json")).unwrap(),
        )
        .unwrap();
        let veth = plumbing["veth"].as_str().unwrap().to_owned();
        a.client
            .destroy_sandbox(pb::DestroySandboxRequest {
                sandbox_id: id.clone(),
            })
            .await
            .expect("destroy");
        assert!(!netns_of(id).exists(), "netns of {id} left behind");
        assert!(!std::path::Path::new("/run/netns")
            .join(format!("wrenn-{id}-gw"))
            .exists());
        assert!(!std::path::Path::new("/sys/class/net").join(&veth).exists());
        let table = Command::new("nft")
            .args(["list", "table", "inet", "wrenn"])
            .output()
            .unwrap();
        let table = String::from_utf8_lossy(&table.stdout);
        let chain = format!("c{}", &veth[2..]);
        assert!(
            !table.contains(&veth) && !table.contains(&chain),
            "rules of {id} left behind: {table}"
        );
    }
}

/// Median create time (CreateSandbox until envd answered) of `n` capsules on `a`.
async fn create_times(a: &mut Agent, n: usize) -> Duration {
    let mut times = Vec::new();
    for _ in 0..n {
        let id = capsule_id();
        let started = Instant::now();
        a.client
            .create_sandbox(create_req(&id, BUSYBOX))
            .await
            .expect("create");
        times.push(started.elapsed());
        a.client
            .destroy_sandbox(pb::DestroySandboxRequest { sandbox_id: id })
            .await
            .expect("destroy");
    }
    times.sort();
    times[n / 2]
}

#[tokio::test(flavor = "multi_thread")]
async fn network_none_still_works_and_create_costs_are_reported() {
    let test = "network_none";
    if net_skip(test) {
        return;
    }
    let mut none = Agent::start(&["--network", "none"]).await;
    let caps = none
        .client
        .get_host_info(pb::GetHostInfoRequest {})
        .await
        .expect("host info")
        .into_inner()
        .capabilities
        .unwrap_or_default();
    assert_eq!(caps.network_mode, "none");
    let id = capsule_id();
    none.client
        .create_sandbox(create_req(&id, BUSYBOX))
        .await
        .expect("create");
    // No interface but loopback, and no netns on the host.
    let links = ok(sh(
        &mut none.client,
        &id,
        "ip -o link | grep -vc ': lo:' || true",
    )
    .await);
    assert_eq!(links, "0");
    assert!(!std::path::Path::new("/run/netns")
        .join(format!("wrenn-{id}"))
        .exists());
    let e = none
        .client
        .set_sandbox_network(pb::SetSandboxNetworkRequest {
            sandbox_id: id.clone(),
            network: Some(policy("deny_all", &[])),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e}");
    none.client
        .destroy_sandbox(pb::DestroySandboxRequest { sandbox_id: id })
        .await
        .expect("destroy");
    let off = create_times(&mut none, 5).await;
    drop(none);
    let Some(mut on) = agent_with_network(test).await else {
        return;
    };
    let with = create_times(&mut on, 5).await;
    eprintln!("median create (busybox, 5 each): network none {off:?}, sandbox {with:?}");
}

/// A one-module wheel, built by hand (a wheel is a zip with a dist-info directory).
fn write_wheel(path: &std::path::Path) {
    let script = format!(
        r#"
import zipfile
with zipfile.ZipFile("{}", "w") as z:
    z.writestr("wrennhello/__init__.py", "GREETING = 'hello from a local index'\n")
    z.writestr("wrennhello-0.1.dist-info/METADATA", "Metadata-Version: 2.1\nName: wrennhello\nVersion: 0.1\n")
    z.writestr("wrennhello-0.1.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: wrenn-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr("wrennhello-0.1.dist-info/RECORD", "")
"#,
        path.display()
    );
    let status = Command::new("python3").args(["-c", &script]).status();
    assert!(
        status.map(|s| s.success()).unwrap_or(false),
        "building the test wheel"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pip_installs_from_a_local_index_and_keeps_working_after_pause_and_fork() {
    let test = "pip_local_index";
    if net_skip(test) {
        return;
    }
    if let Err(e) = support::ensure_image("debian", support::DEBIAN) {
        eprintln!("SKIP {test}: cannot build minimal-debian: {e}");
        return;
    }
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("SKIP {test}: no python3 on the host to build the test wheel");
        return;
    }
    let Some(mut a) = agent_with_network(test).await else {
        return;
    };
    let net = Internet::start();
    // A PEP 503 "simple" index standing in for PyPI.
    let project = net.www.join("simple/wrennhello");
    std::fs::create_dir_all(&project).unwrap();
    write_wheel(&project.join("wrennhello-0.1-py3-none-any.whl"));
    std::fs::write(
        project.join("index.html"),
        r#"<html><body><a href="wrennhello-0.1-py3-none-any.whl">wrennhello-0.1-py3-none-any.whl</a></body></html>"#,
    )
    .unwrap();
    let id = capsule_id();
    a.client
        .create_sandbox(create_req(&id, support::DEBIAN))
        .await
        .expect("create");
    let index = format!("http://{}:8080/simple/", net.a);
    let host = net.a.clone();
    let pip = |venv: &str, pkg: &str| {
        format!(
            "python3 -m venv {venv} && {venv}/bin/pip install -q --no-cache-dir --index-url {index} --trusted-host {host} {pkg} && \
             {venv}/bin/python -c 'import wrennhello; print(wrennhello.GREETING)'"
        )
    };
    let out = ok(sh(&mut a.client, &id, &pip("/tmp/venv", "wrennhello")).await);
    assert_eq!(out.lines().last(), Some("hello from a local index"));

    a.client
        .pause_sandbox(pb::PauseSandboxRequest {
            sandbox_id: id.clone(),
        })
        .await
        .expect("pause");
    a.client
        .resume_sandbox(pb::ResumeSandboxRequest {
            sandbox_id: id.clone(),
            timeout_sec: 0,
        })
        .await
        .expect("resume");
    let out = ok(sh(&mut a.client, &id, &pip("/tmp/venv2", "wrennhello")).await);
    assert_eq!(out.lines().last(), Some("hello from a local index"));

    let template: String = (0..25)
        .map(|_| std::char::from_digit(rand::random::<u32>() % 36, 36).unwrap())
        .collect();
    a.client
        .create_snapshot(pb::CreateSnapshotRequest {
            sandbox_id: id.clone(),
            template: Some(pb::TemplateRef {
                team_id: PLATFORM_TEAM.into(),
                template_id: template.clone(),
            }),
        })
        .await
        .expect("snapshot");
    let fork = capsule_id();
    let mut req = create_req(&fork, support::DEBIAN);
    req.snapshot = Some(pb::TemplateRef {
        team_id: PLATFORM_TEAM.into(),
        template_id: template,
    });
    a.client.create_sandbox(req).await.expect("fork");
    // The fork has the installed package and can install again.
    let out = ok(sh(&mut a.client, &fork, &pip("/tmp/venv3", "wrennhello")).await);
    assert_eq!(out.lines().last(), Some("hello from a local index"));
    for id in [id, fork] {
        a.client
            .destroy_sandbox(pb::DestroySandboxRequest { sandbox_id: id })
            .await
            .expect("destroy");
    }
}

/// A DNS server (UDP port 53) at `net`'s address `a`, in its namespace: A records for the
/// names in `records`, NXDOMAIN for the rest. The stand-in for the internet's resolvers.
fn dns_server(net: &Internet, records: Vec<(String, std::net::Ipv4Addr)>) {
    use std::os::fd::AsFd;
    let netns = std::fs::File::open(format!("/run/netns/{}", net.netns)).expect("netns");
    let addr = format!("{}:53", net.a);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // This thread alone moves into the namespace; the socket stays there.
        nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let socket = std::net::UdpSocket::bind(&addr).expect("bind :53 in the test netns");
        ready_tx.send(()).unwrap();
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            if let Some(answer) = dns_answer(&buf[..n], &records) {
                let _ = socket.send_to(&answer, peer);
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("DNS server started");
}

/// The answer to one DNS query (RFC 1035 message format): the question echoed, and an A
/// record when the name is known and the type is A or ANY.
fn dns_answer(query: &[u8], records: &[(String, std::net::Ipv4Addr)]) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    // The question's name: length-prefixed labels up to a zero byte.
    let mut i = 12;
    let mut labels = Vec::new();
    while i < query.len() && query[i] != 0 {
        let len = query[i] as usize;
        labels.push(String::from_utf8_lossy(query.get(i + 1..i + 1 + len)?).to_lowercase());
        i += 1 + len;
    }
    let qtype = u16::from_be_bytes([*query.get(i + 1)?, *query.get(i + 2)?]);
    let question_end = i + 5;
    let name = labels.join(".");
    let found = records
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, a)| *a)
        .filter(|_| qtype == 1 || qtype == 255);
    let known = records.iter().any(|(n, _)| *n == name);
    let mut out = query[..2].to_vec(); // id
    let rcode: u8 = if known { 0 } else { 3 };
    out.extend([0x81, 0x80 | rcode]); // response, recursion desired + available
    out.extend([0, 1, 0, u8::from(found.is_some()), 0, 0, 0, 0]);
    out.extend(query.get(12..question_end)?);
    if let Some(a) = found {
        out.extend([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        out.extend(a.octets());
    }
    Some(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn names_resolve_through_the_resolvers_the_host_names() {
    let test = "dns";
    if net_skip(test) {
        return;
    }
    let net = Internet::start();
    let pkg: std::net::Ipv4Addr = net.b.parse().unwrap();
    dns_server(&net, vec![("pkg.wrenn.test".into(), pkg)]);
    let Some(mut a) = agent_with_network_and(test, &["--dns", &net.a]).await else {
        return;
    };
    let id = capsule_id();
    a.client
        .create_sandbox(create_req(&id, BUSYBOX))
        .await
        .expect("create");
    let resolv = ok(sh(&mut a.client, &id, "cat /etc/resolv.conf").await);
    assert!(
        resolv.contains(&format!("nameserver {}", net.a)),
        "{resolv}"
    );
    // A name resolves inside, through the configured resolver, and its page is fetched by name.
    let (_, out, err) = sh(&mut a.client, &id, "nslookup pkg.wrenn.test").await;
    assert!(out.contains(&net.b), "nslookup: {out} {err}");
    // By name through the C library's resolver (glibc, in the Debian image: busybox's static
    // wget cannot load it), the page comes back.
    if let Err(e) = support::ensure_image("debian", support::DEBIAN) {
        panic!("cannot build minimal-debian: {e}");
    }
    let deb = capsule_id();
    a.client
        .create_sandbox(create_req(&deb, support::DEBIAN))
        .await
        .expect("create a Debian capsule");
    let (code, out, err) = sh(
        &mut a.client,
        &deb,
        "getent hosts pkg.wrenn.test && curl -sS -m 5 http://pkg.wrenn.test:8080/",
    )
    .await;
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains(&net.b) && out.contains(PAGE), "{out}");
    // An unknown name fails as it should.
    let (code, _, _) = sh(&mut a.client, &id, "nslookup nowhere.wrenn.test").await;
    assert_ne!(code, 0, "an unknown name resolved");
    // With deny_all the resolver is unreachable too (only allow_list admits it).
    set_policy(&mut a, &id, policy("deny_all", &[]))
        .await
        .unwrap();
    let (code, _, _) = sh(&mut a.client, &id, "nslookup pkg.wrenn.test").await;
    assert_ne!(code, 0, "deny_all still resolved");
    set_policy(
        &mut a,
        &id,
        policy("allow_list", &[&format!("{}/32", net.b)]),
    )
    .await
    .unwrap();
    let (_, out, err) = sh(&mut a.client, &id, "nslookup pkg.wrenn.test").await;
    assert!(out.contains(&net.b), "allow_list keeps DNS: {out} {err}");
}
