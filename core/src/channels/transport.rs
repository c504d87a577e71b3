//! Outbound HTTP for deliveries, safe against server-side request forgery.
//!
//! Destinations are vetted at connection time: the host name is resolved once by
//! [`VettedResolver`] and only the addresses that pass [`is_allowed`] are handed to the
//! connector, so the address checked is the address connected to (no DNS-rebinding window).
//! IP-literal URLs, which skip resolution, are checked before the request. Redirects are
//! never followed; each request has a timeout; response bodies are read up to a bound.

use futures::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// At most this much of a receiver's response is read (and an excerpt kept).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How much of a failed response's body goes into the delivery record.
const ERROR_EXCERPT: usize = 200;

/// The cloud metadata services: refused even when private destinations are allowed.
fn is_metadata(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4 == Ipv4Addr::new(169, 254, 169, 254) || v4 == Ipv4Addr::new(100, 100, 100, 200)
        }
        IpAddr::V6(v6) => v6 == "fd00:ec2::254".parse::<Ipv6Addr>().expect("literal"),
    }
}

/// Loopback, private, link-local, shared, documentation, multicast or reserved: not the
/// public internet.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10, shared address space
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24, protocol assignments
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15, benchmarking
                || o[0] >= 240 // 240.0.0.0/4, reserved
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let s = v6.segments();
            v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
                || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link local
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
                || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64: may embed an internal IPv4
                || (s[0..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible, deprecated
        }
    }
}

/// Whether a delivery may connect to `ip`.
pub fn is_allowed(ip: IpAddr, allow_internal: bool) -> bool {
    !is_metadata(ip) && (allow_internal || !is_internal(ip))
}

/// Resolves names and keeps only the addresses deliveries may reach.
#[derive(Debug, Clone)]
pub struct VettedResolver {
    allow_internal: bool,
}

impl Resolve for VettedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_internal = self.allow_internal;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| is_allowed(a.ip(), allow_internal))
                .collect();
            if addrs.is_empty() {
                return Err(Box::new(Refused(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// A destination that resolves only to addresses deliveries may not reach.
#[derive(Debug, thiserror::Error)]
#[error("destination {0} resolves only to internal addresses, which are refused")]
pub struct Refused(pub String);

/// What one request ended with.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Empty on success; otherwise why the attempt failed (client-safe).
    pub error: String,
    pub latency: Duration,
}

impl Attempt {
    pub fn ok(&self) -> bool {
        self.error.is_empty()
    }
}

/// The delivery HTTP client.
#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
    allow_internal: bool,
}

impl Transport {
    pub fn new(timeout: Duration, allow_internal: bool) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(64)
            .user_agent(concat!("Wrenn-Webhooks/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(Arc::new(VettedResolver { allow_internal }))
            .build()
            .expect("the delivery HTTP client builds");
        Self {
            client,
            allow_internal,
        }
    }

    /// Whether deliveries may reach loopback and private addresses.
    pub fn allows_internal(&self) -> bool {
        self.allow_internal
    }

    /// Sends `request` (built by the caller on [`Self::client`]), reading at most
    /// [`MAX_RESPONSE_BYTES`] of the answer. Any 2xx is success; redirects and every other
    /// status are failures.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Attempt {
        let started = Instant::now();
        let request = match request.build() {
            Ok(r) => r,
            Err(_) => return fail(started, None, "the request could not be built".into()),
        };
        if let Some(ip) = request.url().host_str().and_then(|h| {
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .ok()
        }) {
            if !is_allowed(ip, self.allow_internal) {
                return fail(
                    started,
                    None,
                    format!("destination {ip} is an internal address, which is refused"),
                );
            }
        }
        let response = match self.client.execute(request).await {
            Ok(r) => r,
            Err(e) => return fail(started, None, describe(&e)),
        };
        let status = response.status();
        let excerpt = read_bounded(response).await;
        if status.is_success() {
            return Attempt {
                status: Some(status.as_u16()),
                error: String::new(),
                latency: started.elapsed(),
            };
        }
        let mut error = if status.is_redirection() {
            format!("the receiver answered {status} (redirects are not followed)")
        } else {
            format!("the receiver answered {status}")
        };
        let excerpt = excerpt.trim();
        if !excerpt.is_empty() {
            let cut: String = excerpt.chars().take(ERROR_EXCERPT).collect();
            error.push_str(&format!(": {cut}"));
        }
        fail(started, Some(status.as_u16()), error)
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

fn fail(started: Instant, status: Option<u16>, error: String) -> Attempt {
    Attempt {
        status,
        error,
        latency: started.elapsed(),
    }
}

/// A transport error without internal detail (no addresses of the control plane's side).
fn describe(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<Refused>() {
            return r.to_string();
        }
        source = s.source();
    }
    if e.is_timeout() {
        "the receiver did not answer in time".into()
    } else if e.is_connect() {
        "cannot connect to the receiver".into()
    } else {
        "the request to the receiver failed".into()
    }
}

/// Up to [`MAX_RESPONSE_BYTES`] of the body, as (lossy) text; the rest is not read.
async fn read_bounded(response: reqwest::Response) -> String {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = MAX_RESPONSE_BYTES - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_RESPONSE_BYTES {
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges_are_refused_and_public_ones_allowed() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!is_allowed(ip, false), "{ip} must be refused");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(is_allowed(ip, false), "{ip} must be allowed");
        }
        assert!(is_allowed("127.0.0.1".parse().unwrap(), true));
        assert!(
            !is_allowed("169.254.169.254".parse().unwrap(), true),
            "metadata stays refused"
        );
        assert!(!is_allowed("fd00:ec2::254".parse().unwrap(), true));
    }
}
