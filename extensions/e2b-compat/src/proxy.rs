//! The data plane: a request for a sandbox port reaches `127.0.0.1:{port}` inside the capsule
//! through the capsule facade's tunnel ([`CapsuleService::open_port`]).
//!
//! The target comes from the Host (`{port}-{sandboxID}.{domain}`, domain mode) or, for
//! `E2B_SANDBOX_URL` over plain HTTP, from the `E2b-Sandbox-Id` and `E2b-Sandbox-Port` headers
//! the SDKs send on every envd call. Access:
//! - envd's port ([`ENVD_PORT`]): `X-Access-Token` equal to the sandbox's `envdAccessToken`;
//!   `GET /health` needs none, and `/files` also takes a valid signed URL (E2B's v1
//!   signature, made with that token);
//! - other ports: open, as in E2B, unless the sandbox was created with
//!   `network.allowPublicTraffic: false`; then `e2b-traffic-access-token` must carry its
//!   `trafficAccessToken`.
//!
//! A sandbox that is gone, paused or of no one answers 502 with "The sandbox was not found"
//! (what the SDKs match to report it not running); a port nothing listens on answers 502
//! "port is not open".
//!
//! [`CapsuleService::open_port`]: wrenn_extension_api::CapsuleService::open_port

use hyper_util::rt::TokioIo;
use wrenn_extension_api::axum::body::Body;
use wrenn_extension_api::axum::http::{
    header, HeaderName, HeaderValue, Request, Response, StatusCode,
};
use wrenn_extension_api::chrono::Utc;
use wrenn_extension_api::{serde_json, tracing, CapsuleState};

use crate::sandboxes as records;
use crate::{E2bState, ENVD_PORT};

/// Where a data-plane request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub port: u16,
    pub sandbox_id: String,
}

const SANDBOX_ID_HEADER: &str = "e2b-sandbox-id";
const SANDBOX_PORT_HEADER: &str = "e2b-sandbox-port";
const ACCESS_TOKEN_HEADER: &str = "x-access-token";
const TRAFFIC_TOKEN_HEADER: &str = "e2b-traffic-access-token";

/// `{port}-{sandboxID}.{domain}` → the port and sandbox id.
pub fn parse_host(host: &str, domain: &str) -> Option<Target> {
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let label = host.strip_suffix(domain)?.strip_suffix('.')?;
    let (port, sandbox_id) = label.split_once('-')?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    let valid = !sandbox_id.is_empty()
        && sandbox_id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    valid.then(|| Target {
        port,
        sandbox_id: sandbox_id.to_string(),
    })
}

/// The data-plane target of a request, if it is one.
pub fn target<B>(req: &Request<B>, domain: &str) -> Option<Target> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    if let Some(t) = host.as_deref().and_then(|h| parse_host(h, domain)) {
        return Some(t);
    }
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let sandbox_id = header(SANDBOX_ID_HEADER)?.trim().to_string();
    let port = match header(SANDBOX_PORT_HEADER) {
        Some(p) => p.trim().parse().unwrap_or(0),
        None => ENVD_PORT,
    };
    Some(Target { port, sandbox_id })
}

fn json(status: StatusCode, message: String) -> Response<Body> {
    let body = serde_json::json!({ "code": status.as_u16(), "message": message });
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("static response parts")
}

fn sandbox_not_found(sandbox_id: &str) -> Response<Body> {
    json(
        StatusCode::BAD_GATEWAY,
        format!("The sandbox was not found: sandbox {sandbox_id} is not running or does not exist"),
    )
}

fn port_closed(sandbox_id: &str, port: u16) -> Response<Body> {
    json(
        StatusCode::BAD_GATEWAY,
        format!("The sandbox {sandbox_id} is running but port {port} is not open"),
    )
}

/// Whether `req` may reach envd of the sandbox whose envd token is `token`.
fn envd_allowed<B>(req: &Request<B>, token: &str) -> bool {
    let path = req.uri().path();
    if path == "/health" {
        return true;
    }
    if let Some(t) = req
        .headers()
        .get(ACCESS_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        return records::same_secret(t, token);
    }
    if path != "/files" {
        return false;
    }
    // A signed file URL: `?path&username&signature&signature_expiration`.
    let mut file = None;
    let mut user = String::new();
    let mut signature = None;
    let mut expiration = None;
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "path" => file = Some(v.into_owned()),
            "username" => user = v.into_owned(),
            "signature" => signature = Some(v.into_owned()),
            "signature_expiration" => expiration = v.parse().ok(),
            _ => {}
        }
    }
    let operation = if req.method() == hyper::Method::GET {
        "read"
    } else {
        "write"
    };
    match (file, signature) {
        (Some(file), Some(sig)) => records::signature_valid(
            &sig,
            &file,
            operation,
            &user,
            token,
            expiration,
            Utc::now().timestamp(),
        ),
        _ => false,
    }
}

/// Everything but hop-by-hop headers, `host` and E2B's credentials is forwarded.
fn forwardable(name: &HeaderName, upgrade: bool) -> bool {
    let n = name.as_str();
    !wrenn_extension_api::capsules::is_hop_by_hop(n, upgrade)
        && !matches!(
            n,
            "host" | "x-api-key" | ACCESS_TOKEN_HEADER | TRAFFIC_TOKEN_HEADER
        )
}

/// Forwards a data-plane request; every failure is an E2B-shaped answer.
pub async fn forward(state: &E2bState, mut req: Request<Body>, target: Target) -> Response<Body> {
    let sid = target.sandbox_id.as_str();
    if target.port == 0 {
        return json(
            StatusCode::BAD_REQUEST,
            "E2b-Sandbox-Port is not a port".into(),
        );
    }
    let Some(capsule_id) = records::capsule_id(sid) else {
        return sandbox_not_found(sid);
    };
    let row = match records::find(state.ctx.db(), capsule_id).await {
        Ok(Some(r)) => r,
        Ok(None) => return sandbox_not_found(sid),
        Err(e) => {
            tracing::warn!(error = %e, "E2B proxy: sandbox lookup failed.");
            return json(StatusCode::SERVICE_UNAVAILABLE, "try again".into());
        }
    };
    let secret = state.ctx.jwt_secret();
    let allowed = if target.port == ENVD_PORT {
        envd_allowed(&req, &records::envd_token(secret, capsule_id))
    } else if row.public_traffic {
        true
    } else {
        req.headers()
            .get(TRAFFIC_TOKEN_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| records::same_secret(t, &records::traffic_token(secret, capsule_id)))
    };
    if !allowed {
        return json(
            StatusCode::UNAUTHORIZED,
            "missing or invalid access token".into(),
        );
    }
    let tunnel = match state
        .ctx
        .capsules()
        .open_port(row.team_id, capsule_id, target.port)
        .await
    {
        Ok(t) => t,
        Err(e) => {
            tracing::debug!(capsule_id = %capsule_id, status = %e.status, message = %e.message, "E2B proxy: no tunnel.");
            return if e.status == StatusCode::BAD_GATEWAY {
                port_closed(sid, target.port)
            } else {
                sandbox_not_found(sid)
            };
        }
    };

    let upgrade = req.headers().contains_key(header::UPGRADE);
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let mut out = hyper::Request::builder()
        .method(req.method().clone())
        .uri(path)
        .header(header::HOST, format!("127.0.0.1:{}", target.port));
    for (name, value) in req.headers() {
        if forwardable(name, upgrade) {
            out = out.header(name, value);
        }
    }
    if !upgrade {
        out = out.header(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let out = match out.body(req.into_body()) {
        Ok(o) => o,
        Err(e) => return json(StatusCode::BAD_REQUEST, format!("cannot forward: {e}")),
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(tunnel)).await
    {
        Ok(x) => x,
        Err(_) => return port_closed(sid, target.port),
    };
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "E2B proxied connection ended with an error.");
        }
    });
    let mut resp = match sender.send_request(out).await {
        Ok(r) => r,
        Err(_) => {
            // The tunnel closed before an answer: nothing listens, or the sandbox just died.
            return match state.ctx.capsules().get(row.team_id, capsule_id).await {
                Ok(c) if c.state == CapsuleState::Running => port_closed(sid, target.port),
                _ => sandbox_not_found(sid),
            };
        }
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let upstream = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                if let Ok((c, u)) = tokio::try_join!(client_upgrade, upstream) {
                    let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
                    let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
                }
            });
        }
    }
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(header::CONNECTION);
    Response::from_parts(parts, Body::new(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_name_a_port_and_a_sandbox() {
        let t = parse_host("49983-abc123.e2b.test", "e2b.test").unwrap();
        assert_eq!((t.port, t.sandbox_id.as_str()), (49983, "abc123"));
        let t = parse_host("8080-abc.e2b.test:3443", "e2b.test").unwrap();
        assert_eq!(t.port, 8080);
        assert_eq!(parse_host("api.e2b.test", "e2b.test"), None);
        assert_eq!(parse_host("0-abc.e2b.test", "e2b.test"), None);
        assert_eq!(parse_host("80-sb_abc.e2b.test", "e2b.test"), None);
        assert_eq!(parse_host("80-abc.other.test", "e2b.test"), None);
        assert_eq!(parse_host("80-abc.xe2b.test", "e2b.test"), None);
    }

    #[test]
    fn envd_access_needs_the_token_or_a_signed_file_url() {
        let req = |uri: &str, token: Option<&str>| {
            let mut b = Request::builder().uri(uri);
            if let Some(t) = token {
                b = b.header(ACCESS_TOKEN_HEADER, t);
            }
            b.body(()).unwrap()
        };
        assert!(envd_allowed(&req("/health", None), "tok"));
        assert!(envd_allowed(
            &req("/process.Process/List", Some("tok")),
            "tok"
        ));
        assert!(!envd_allowed(
            &req("/process.Process/List", Some("bad")),
            "tok"
        ));
        assert!(!envd_allowed(&req("/process.Process/List", None), "tok"));
        assert!(!envd_allowed(
            &req("/files?path=/x&signature=v1_bad", None),
            "tok"
        ));
    }
}
