//! The port proxy's building blocks: recognising `{port}-{capsule}.{domain}` hosts,
//! per-capsule access tokens, and a byte stream over the agent's `Tunnel` RPC.
//!
//! Access tokens are stateless: `{capsule base36}.{expiry unix}.{hex HMAC-SHA256}` keyed with
//! the server secret, so any control-plane replica can check them and they expire on their
//! own. A token grants the port proxy of one capsule only, never the REST API.

use crate::capsules::agent::{status_to_api, AgentClient};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;
use wrenn_extension_api::{ids, ApiError};
use wrenn_proto::hostagent::v1 as pb;

/// Header carrying a per-capsule access token.
pub const TOKEN_HEADER: &str = "X-Wrenn-Access-Token";
/// Query parameter carrying a per-capsule access token (a browser's first request).
pub const TOKEN_QUERY: &str = "wrenn_token";
/// Cookie set on the proxied host after a token was accepted from the query string.
pub const TOKEN_COOKIE: &str = "wrenn_proxy_token";

/// Tunnel chunk size.
const CHUNK: usize = 64 * 1024;

/// The port and capsule of a proxy host (`8080-sb_xxx.wrenn.example` with domain
/// `wrenn.example`); `None` for any other host. A `:port` suffix is ignored.
pub fn parse_host(host: &str, domain: &str) -> Option<(u16, Uuid)> {
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let label = host.strip_suffix(domain)?.strip_suffix('.')?;
    let (port, capsule) = label.split_once('-')?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    // Wire capsule ids always carry 25 digits; anything else is not a capsule host.
    if capsule.len() != "sb_".len() + 25 {
        return None;
    }
    let id = ids::decode(ids::CAPSULE, &capsule.to_ascii_lowercase())?;
    Some((port, id))
}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], payload: &str) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    m.update(b"wrenn-proxy-token:");
    m.update(payload.as_bytes());
    m
}

/// Issues an access token for `capsule_id` valid until `expires_unix`.
pub fn issue_token(secret: &[u8], capsule_id: Uuid, expires_unix: i64) -> String {
    let wire = ids::encode(ids::CAPSULE, capsule_id);
    let digits = wire.trim_start_matches("sb_");
    let payload = format!("{digits}.{expires_unix}");
    let sig = hex::encode(mac(secret, &payload).finalize().into_bytes());
    format!("{payload}.{sig}")
}

/// Whether `token` is a valid, unexpired token for `capsule_id` (constant-time comparison).
pub fn verify_token(secret: &[u8], capsule_id: Uuid, token: &str, now_unix: i64) -> bool {
    let mut parts = token.rsplitn(2, '.');
    let (Some(sig), Some(payload)) = (parts.next(), parts.next()) else {
        return false;
    };
    let Some((digits, expiry)) = payload.split_once('.') else {
        return false;
    };
    let Ok(expiry) = expiry.parse::<i64>() else {
        return false;
    };
    if expiry < now_unix || ids::decode(ids::CAPSULE, &format!("sb_{digits}")) != Some(capsule_id) {
        return false;
    }
    let Ok(sig) = hex::decode(sig) else {
        return false;
    };
    mac(secret, payload).verify_slice(&sig).is_ok()
}

/// Opens a byte tunnel to `port` inside the capsule. The returned stream reads what the
/// capsule's port sends and writes to it; shutting down the write half closes the tunnel.
///
/// The two pumps run on `tasks` (the app's tracker), so shutdown waits for open tunnels up to
/// its drain deadline.
pub async fn open_tunnel(
    tasks: &tokio_util::task::TaskTracker,
    client: &mut AgentClient,
    sandbox_id: String,
    port: u16,
) -> Result<DuplexStream, ApiError> {
    use pb::tunnel_frame::Frame;
    let (tx, rx) = mpsc::channel::<pb::TunnelFrame>(32);
    let open = pb::TunnelFrame {
        frame: Some(Frame::Open(pb::TunnelOpen {
            sandbox_id,
            port: u32::from(port),
        })),
    };
    tx.send(open)
        .await
        .map_err(|_| ApiError::internal("tunnel channel closed"))?;
    let mut inbound = client
        .tunnel(ReceiverStream::new(rx))
        .await
        .map_err(status_to_api)?
        .into_inner();
    let (ours, theirs) = tokio::io::duplex(CHUNK);
    let (mut read_half, mut write_half) = tokio::io::split(theirs);
    tasks.spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match read_half.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let frame = pb::TunnelFrame {
                        frame: Some(Frame::Data(buf[..n].to_vec())),
                    };
                    if tx.send(frame).await.is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx
            .send(pb::TunnelFrame {
                frame: Some(Frame::Close(true)),
            })
            .await;
    });
    tasks.spawn(async move {
        while let Ok(Some(frame)) = inbound.message().await {
            match frame.frame {
                Some(Frame::Data(data)) if write_half.write_all(&data).await.is_err() => break,
                Some(Frame::Close(_)) => break,
                _ => {}
            }
        }
        let _ = write_half.shutdown().await;
    });
    Ok(ours)
}

/// Rewrites a redirect target that points at the capsule's own address
/// (`http://localhost:8080/x`, `http://127.0.0.1:8080/x`) to the proxy host; relative and
/// foreign targets are left alone.
pub fn rewrite_location(location: &str, port: u16, public_origin: &str) -> String {
    for scheme in ["http://", "https://"] {
        let Some(rest) = location.strip_prefix(scheme) else {
            continue;
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        let auth_port = authority
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok());
        let local = matches!(host, "localhost" | "127.0.0.1" | "0.0.0.0" | "[::1]");
        if local && auth_port.is_none_or(|p| p == port) {
            let path = if path.is_empty() { "/" } else { path };
            return format!("{public_origin}{path}");
        }
    }
    location.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proxy_hosts_only() {
        let id = Uuid::new_v4();
        let wire = ids::encode(ids::CAPSULE, id);
        assert_eq!(
            parse_host(&format!("8080-{wire}.wrenn.test"), "wrenn.test"),
            Some((8080, id))
        );
        assert_eq!(
            parse_host(&format!("3000-{wire}.wrenn.test:8000"), "wrenn.test"),
            Some((3000, id))
        );
        assert_eq!(parse_host("wrenn.test", "wrenn.test"), None);
        assert_eq!(parse_host("api.wrenn.test", "wrenn.test"), None);
        assert_eq!(
            parse_host(&format!("0-{wire}.wrenn.test"), "wrenn.test"),
            None
        );
        assert_eq!(
            parse_host(&format!("8080-{wire}.evil.test"), "wrenn.test"),
            None
        );
        assert_eq!(parse_host("8080-sb_zz.wrenn.test", "wrenn.test"), None);
    }

    #[test]
    fn tokens_verify_only_for_their_capsule_and_lifetime() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let id = Uuid::new_v4();
        let t = issue_token(secret, id, 2_000);
        assert!(verify_token(secret, id, &t, 1_000));
        assert!(!verify_token(secret, id, &t, 2_001), "expired");
        assert!(
            !verify_token(secret, Uuid::new_v4(), &t, 1_000),
            "other capsule"
        );
        assert!(!verify_token(b"other-secret", id, &t, 1_000), "other key");
        let tampered = t.replace(".2000.", ".9000.");
        assert!(!verify_token(secret, id, &tampered, 1_000));
        assert!(!verify_token(secret, id, "garbage", 1_000));
    }

    #[test]
    fn rewrites_local_redirects() {
        let origin = "http://8080-sb_x.wrenn.test:8000";
        assert_eq!(
            rewrite_location("http://localhost:8080/login", 8080, origin),
            "http://8080-sb_x.wrenn.test:8000/login"
        );
        assert_eq!(
            rewrite_location("http://127.0.0.1:8080", 8080, origin),
            "http://8080-sb_x.wrenn.test:8000/"
        );
        assert_eq!(rewrite_location("/relative", 8080, origin), "/relative");
        assert_eq!(
            rewrite_location("https://example.com/x", 8080, origin),
            "https://example.com/x"
        );
        assert_eq!(
            rewrite_location("http://localhost:9999/x", 8080, origin),
            "http://localhost:9999/x"
        );
    }
}
