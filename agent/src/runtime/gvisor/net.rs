//! Per-capsule networking of the gVisor driver (`--network=sandbox`).
//!
//! Every capsule gets two network namespaces and two veth pairs:
//!
//! ```text
//!  gVisor netstack          router netns (host side)            root netns
//!  wrenn-<id>               wrenn-<id>-gw
//!  eth0 192.168.254.2/30 ── gw0 192.168.254.1/30
//!                           up0 10.201.k.2/30 (masquerade) ──── wv<hash> 10.201.k.1/30
//!                                                               nft table inet wrenn:
//!                                                               egress policy, masquerade
//! ```
//!
//! - The capsule netns holds only `eth0`: runsc takes over *every* interface of the netns
//!   it is given (and refuses two default routes), so routing cannot live there.
//! - The guest side is identical in every capsule (addresses and MACs), so a fork restores
//!   into a fresh netns without re-addressing and its ARP cache stays right.
//! - The host side is unique: slot `k` of the transfer pool (`10.201.0.0/16` by default,
//!   one /30 each) is picked under a host-wide lock from the addresses actually present,
//!   so several agents on one host (tests) never clash.
//! - Policy is enforced in the root netns, on the forward path of the capsule's `wv*`
//!   interface, where nothing inside the sandbox can reach: the metadata range, loopback,
//!   the transfer pool (other capsules) and IPv6 are always dropped, then the capsule's
//!   mode applies. Input from any `wv*` interface is dropped (the host's own addresses),
//!   and nothing enters a capsule unless it answers the capsule's own connection.
//! - runsc moves `eth0`'s address into netstack and strips it from the netns; before a
//!   restore it is put back ([`Net::readdress`]).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;
use tracing::warn;

use crate::runtime::{NetworkMode, NetworkPolicy, RuntimeError};

/// Guest address, gateway and MACs: the same in every capsule.
pub const GUEST_ADDR: &str = "192.168.254.2";
pub const GATEWAY_ADDR: &str = "192.168.254.1";
const GUEST_MAC: &str = "02:77:72:6e:00:02";
const GATEWAY_MAC: &str = "02:77:72:6e:00:01";
/// The link-local range (cloud metadata services live at 169.254.169.254).
const METADATA_RANGE: &str = "169.254.0.0/16";
const TABLE: &str = "inet wrenn";
const CMD_TIMEOUT: Duration = Duration::from_secs(10);

/// Host-wide network settings.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Transfer pool: one /30 per capsule between its router netns and the host.
    pub pool: Cidr,
    /// Resolvers written to the capsule's /etc/resolv.conf.
    pub dns: Vec<Ipv4Addr>,
}

/// An IPv4 CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n` or a bare address (a /32); the address is masked to the prefix.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, p.parse::<u8>().ok()?),
            None => (s, 32),
        };
        if p > 32 {
            return None;
        }
        let addr: Ipv4Addr = a.trim().parse().ok()?;
        let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
        Some(Cidr {
            addr: Ipv4Addr::from(u32::from(addr) & mask),
            prefix: p,
        })
    }

    fn base(&self) -> u32 {
        u32::from(self.addr)
    }

    /// Number of /30 slots.
    fn slots(&self) -> u32 {
        if self.prefix > 30 {
            0
        } else {
            1 << (30 - self.prefix)
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// What the network of one capsule is made of; `net.json` in its sandbox dir.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plumbing {
    pub slot: u32,
    pub veth: String,
}

/// The resolvers of the host: `/etc/resolv.conf`, or systemd-resolved's upstream list when
/// that only names the local stub; loopback resolvers are unreachable from a capsule.
pub fn host_resolvers() -> Vec<Ipv4Addr> {
    let parse = |path: &str| -> Vec<Ipv4Addr> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .filter_map(|a| a.trim().parse::<Ipv4Addr>().ok())
            .filter(|a| !a.is_loopback())
            .collect()
    };
    let main = parse("/etc/resolv.conf");
    if main.is_empty() {
        parse("/run/systemd/resolve/resolv.conf")
    } else {
        main
    }
}

/// Names of one capsule's network objects.
pub struct Names {
    pub netns: String,
    pub router: String,
    pub veth: String,
    chain: String,
}

/// 44 bits of FNV-1a of the capsule id, as 11 hex digits: the host veth is `wv` + that
/// (13 characters, within the kernel's 15).
fn short_hash(id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:011x}", h & 0xfff_ffff_ffff)
}

pub fn names(id: &str) -> Names {
    let hash = short_hash(id);
    Names {
        netns: format!("wrenn-{id}"),
        router: format!("wrenn-{id}-gw"),
        veth: format!("wv{hash}"),
        chain: format!("c{hash}"),
    }
}

/// Path of a capsule's netns, as the OCI spec names it.
pub fn netns_path(id: &str) -> PathBuf {
    Path::new("/run/netns").join(names(id).netns)
}

pub struct Net {
    config: NetConfig,
}

/// Runs `program args`, feeding `stdin`; the error carries the program's stderr.
async fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<(), String> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| format!("{program}: {e}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .await
            .map_err(|e| format!("{program}: {e}"))?;
        drop(pipe);
    }
    let out = tokio::time::timeout(CMD_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("{program} {} timed out", args.join(" ")))?
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

async fn output(program: &str, args: &[&str]) -> Result<String, String> {
    let out = tokio::time::timeout(
        CMD_TIMEOUT,
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| format!("{program} timed out"))?
    .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn cmd_err(op: &str) -> impl FnOnce(String) -> RuntimeError + '_ {
    move |reason| RuntimeError::Command {
        op: op.into(),
        reason,
    }
}

/// Holds the host-wide lock of network set-up (slot allocation, the base table): an
/// in-process async mutex (so one task at a time waits for the file lock, and no tokio worker
/// blocks while the holder needs one) and `flock` on `/run/wrenn/net.lock` (other agents),
/// taken on a blocking thread.
struct HostLock {
    _file: nix::fcntl::Flock<std::fs::File>,
    _task: tokio::sync::MutexGuard<'static, ()>,
}

static IN_PROCESS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn host_lock() -> Result<HostLock, RuntimeError> {
    let task = IN_PROCESS.lock().await;
    let file = tokio::task::spawn_blocking(|| {
        let dir = Path::new("/run/wrenn");
        std::fs::create_dir_all(dir).map_err(RuntimeError::io("creating /run/wrenn"))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("net.lock"))
            .map_err(RuntimeError::io("opening /run/wrenn/net.lock"))?;
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).map_err(|(_, e)| {
            RuntimeError::Io {
                context: "locking /run/wrenn/net.lock".into(),
                source: e.into(),
            }
        })
    })
    .await
    .map_err(|e| RuntimeError::Invalid(format!("network lock task failed: {e}")))??;
    Ok(HostLock {
        _file: file,
        _task: task,
    })
}

impl Net {
    pub fn new(config: NetConfig) -> Net {
        Net { config }
    }

    pub fn dns(&self) -> &[Ipv4Addr] {
        &self.config.dns
    }

    fn slot_addrs(&self, slot: u32) -> (Ipv4Addr, Ipv4Addr) {
        let base = self.config.pool.base() + slot * 4;
        (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2))
    }

    /// The base table: created once per host (boot), shared by every agent.
    async fn ensure_base(&self) -> Result<(), RuntimeError> {
        if run("nft", &["list", "table", "inet", "wrenn"], None)
            .await
            .is_ok()
        {
            return Ok(());
        }
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
            .map_err(RuntimeError::io("enabling net.ipv4.ip_forward"))?;
        let script = format!(
            "add table {TABLE}\n\
             add map {TABLE} capsules {{ type ifname : verdict ; }}\n\
             add chain {TABLE} forward {{ type filter hook forward priority -5 ; policy accept ; }}\n\
             add rule {TABLE} forward iifname \"wv*\" iifname vmap @capsules\n\
             add rule {TABLE} forward iifname \"wv*\" drop\n\
             add rule {TABLE} forward oifname \"wv*\" ct state established,related accept\n\
             add rule {TABLE} forward oifname \"wv*\" drop\n\
             add chain {TABLE} input {{ type filter hook input priority -5 ; policy accept ; }}\n\
             add rule {TABLE} input iifname \"wv*\" drop\n\
             add chain {TABLE} postrouting {{ type nat hook postrouting priority 100 ; }}\n\
             add rule {TABLE} postrouting iifname \"wv*\" oifname != \"wv*\" masquerade\n"
        );
        run("nft", &["-f", "-"], Some(&script))
            .await
            .map_err(cmd_err("nft (base table)"))
    }

    /// Lowest slot whose host address is not on any interface of this host.
    async fn free_slot(&self) -> Result<u32, RuntimeError> {
        let text = output("ip", &["-o", "-4", "addr", "show"])
            .await
            .map_err(cmd_err("ip addr show"))?;
        let used: std::collections::HashSet<Ipv4Addr> = text
            .split_whitespace()
            .filter_map(|w| w.split_once('/').and_then(|(a, _)| a.parse().ok()))
            .collect();
        (0..self.config.pool.slots())
            .find(|s| !used.contains(&self.slot_addrs(*s).0))
            .ok_or_else(|| {
                RuntimeError::Invalid(format!(
                    "the capsule transfer pool {} is exhausted",
                    self.config.pool
                ))
            })
    }

    /// Creates the capsule's namespaces, links and policy; on failure removes what it made.
    pub async fn setup(
        &self,
        id: &str,
        sandbox_dir: &Path,
        policy: &NetworkPolicy,
    ) -> Result<Plumbing, RuntimeError> {
        let result = self.setup_inner(id, sandbox_dir, policy).await;
        if result.is_err() {
            self.teardown(id).await;
        }
        result
    }

    async fn setup_inner(
        &self,
        id: &str,
        sandbox_dir: &Path,
        policy: &NetworkPolicy,
    ) -> Result<Plumbing, RuntimeError> {
        let n = names(id);
        let plumbing = {
            let _lock = host_lock().await?;
            self.ensure_base().await?;
            let slot = self.free_slot().await?;
            let (host, _) = self.slot_addrs(slot);
            let root = format!(
                "netns add {ns}\n\
                 netns add {gw}\n\
                 link add eth0 netns {ns} address {GUEST_MAC} type veth peer name gw0 netns {gw} address {GATEWAY_MAC}\n\
                 link add {veth} type veth peer name up0 netns {gw}\n\
                 addr add {host}/30 dev {veth}\n\
                 link set {veth} up\n",
                ns = n.netns,
                gw = n.router,
                veth = n.veth,
            );
            run("ip", &["-batch", "-"], Some(&root))
                .await
                .map_err(cmd_err("ip (capsule links)"))?;
            Plumbing {
                slot,
                veth: n.veth.clone(),
            }
        };
        let text =
            serde_json::to_vec(&plumbing).map_err(|e| RuntimeError::Invalid(e.to_string()))?;
        std::fs::write(sandbox_dir.join("net.json"), text)
            .map_err(RuntimeError::io("writing net.json"))?;
        let (host, router) = self.slot_addrs(plumbing.slot);
        let gw = format!(
            "addr add {GATEWAY_ADDR}/30 dev gw0\n\
             addr add {router}/30 dev up0\n\
             link set lo up\n\
             link set gw0 up\n\
             link set up0 up\n\
             route add default via {host}\n"
        );
        run("ip", &["-n", &n.router, "-batch", "-"], Some(&gw))
            .await
            .map_err(cmd_err("ip (router netns)"))?;
        // The router netns forwards and masquerades the guest; nothing in it listens, and
        // nothing may be opened towards it.
        let router_nft = "add table ip wrenn\n\
             add chain ip wrenn post { type nat hook postrouting priority 100 ; }\n\
             add rule ip wrenn post oifname \"up0\" masquerade\n\
             add chain ip wrenn input { type filter hook input priority 0 ; policy drop ; }\n\
             add rule ip wrenn input ct state established,related accept\n";
        run(
            "ip",
            &[
                "netns",
                "exec",
                &n.router,
                "sh",
                "-c",
                "sysctl -qw net.ipv4.ip_forward=1 && exec nft -f -",
            ],
            Some(router_nft),
        )
        .await
        .map_err(cmd_err("router netns set-up"))?;
        self.readdress(id).await?;
        self.apply(id, policy).await?;
        write_resolv_conf(sandbox_dir, &self.config.dns)?;
        Ok(plumbing)
    }

    /// Puts the guest's address and route back on the capsule's `eth0` (runsc strips them
    /// at start) so that a run or restore finds them, with `lo` up (runsc skips down
    /// interfaces: no loopback inside otherwise). Existing ones are not an error.
    pub async fn readdress(&self, id: &str) -> Result<(), RuntimeError> {
        let n = names(id);
        let script = format!(
            "link set lo up\n\
             addr replace {GUEST_ADDR}/30 dev eth0\n\
             link set eth0 up\n\
             route replace default via {GATEWAY_ADDR} dev eth0\n"
        );
        run("ip", &["-n", &n.netns, "-batch", "-"], Some(&script))
            .await
            .map_err(cmd_err("ip (capsule address)"))
    }

    /// Installs (or replaces) the capsule's egress policy, atomically.
    pub async fn apply(&self, id: &str, policy: &NetworkPolicy) -> Result<(), RuntimeError> {
        let n = names(id);
        let chain = &n.chain;
        let mut script = format!(
            "add chain {TABLE} {chain}\n\
             flush chain {TABLE} {chain}\n\
             add rule {TABLE} {chain} meta nfproto ipv6 drop\n"
        );
        // DNS to the configured resolvers first: cloud resolvers can sit in the link-local
        // range (169.254.169.253), which is otherwise always dropped.
        if policy.mode != NetworkMode::DenyAll && !self.config.dns.is_empty() {
            let dns: Vec<String> = self.config.dns.iter().map(|a| a.to_string()).collect();
            let dns = dns.join(", ");
            script.push_str(&format!(
                "add rule {TABLE} {chain} ip daddr {{ {dns} }} udp dport 53 accept\n\
                 add rule {TABLE} {chain} ip daddr {{ {dns} }} tcp dport 53 accept\n"
            ));
        }
        script.push_str(&format!(
            "add rule {TABLE} {chain} ip daddr {{ {METADATA_RANGE}, 127.0.0.0/8, 0.0.0.0/8, 224.0.0.0/4, {pool} }} drop\n",
            pool = self.config.pool,
        ));
        match policy.mode {
            NetworkMode::AllowAll => script.push_str(&format!("add rule {TABLE} {chain} accept\n")),
            NetworkMode::DenyAll => script.push_str(&format!("add rule {TABLE} {chain} drop\n")),
            NetworkMode::AllowList => {
                if !policy.resolved.is_empty() {
                    script.push_str(&format!(
                        "add rule {TABLE} {chain} ip daddr {{ {} }} accept\n",
                        policy.resolved.join(", ")
                    ));
                }
                script.push_str(&format!("add rule {TABLE} {chain} drop\n"));
            }
        }
        script.push_str(&format!(
            "add element {TABLE} capsules {{ \"{veth}\" : jump {chain} }}\n",
            veth = n.veth
        ));
        run("nft", &["-f", "-"], Some(&script))
            .await
            .map_err(cmd_err("nft (capsule policy)"))
    }

    /// Removes the capsule's namespaces (their veths go with them) and rules. Absent
    /// pieces are not an error.
    pub async fn teardown(&self, id: &str) {
        let n = names(id);
        let nft = format!(
            "delete element {TABLE} capsules {{ \"{veth}\" }}\n",
            veth = n.veth
        );
        let _ = run("nft", &["-f", "-"], Some(&nft)).await;
        let _ = run("nft", &["delete", "chain", "inet", "wrenn", &n.chain], None).await;
        for ns in [&n.netns, &n.router] {
            if Path::new("/run/netns").join(ns).exists() {
                if let Err(e) = run("ip", &["netns", "delete", ns], None).await {
                    warn!(capsule_id = %id, error = %e, "removing netns failed");
                }
            }
        }
        // Deleting the router netns takes the host veth with it; a half-made one may not.
        if Path::new("/sys/class/net").join(&n.veth).exists() {
            let _ = run("ip", &["link", "delete", &n.veth], None).await;
        }
    }
}

/// The capsule's `/etc/resolv.conf` (bind-mounted read-only).
fn write_resolv_conf(sandbox_dir: &Path, dns: &[Ipv4Addr]) -> Result<(), RuntimeError> {
    let mut text = String::from("# written by wrenn-agent\n");
    for a in dns {
        text.push_str(&format!("nameserver {a}\n"));
    }
    text.push_str("options timeout:2 attempts:2\n");
    std::fs::write(sandbox_dir.join("resolv.conf"), text)
        .map_err(RuntimeError::io("writing resolv.conf"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parse() {
        assert_eq!(
            Cidr::parse("10.1.2.3/16").unwrap().to_string(),
            "10.1.0.0/16"
        );
        assert_eq!(Cidr::parse("10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
        assert!(Cidr::parse("10.1.2.3/33").is_none());
        assert!(Cidr::parse("nope/8").is_none());
        assert_eq!(Cidr::parse("10.201.0.0/16").unwrap().slots(), 16384);
    }

    #[test]
    fn veth_names_fit() {
        let n = names("sb_abcdefghijklmnopqrstuvwxy");
        assert!(n.veth.len() <= 15, "{}", n.veth);
        assert_ne!(names("a").veth, names("b").veth);
    }
}
