//! The port proxy in front of every route: a request whose Host is
//! `{port}-{capsule_id}.{WRENN_DOMAIN}` never reaches the API; it is forwarded (HTTP and
//! WebSocket) to that port inside the capsule through the agent's byte tunnel.
//!
//! Access: the capsule team's `X-API-Key` or session cookie, or a per-capsule access token
//! (`X-Wrenn-Access-Token` header, `wrenn_token` query parameter — which also sets the
//! `wrenn_proxy_token` cookie for that host — or that cookie). Credentials are stripped
//! before forwarding. A paused capsule answers 409 `invalid_state`, or is resumed first when its
//! team enabled `auto_resume` (PATCH /v1/teams/{id}).

use crate::app::App;
use crate::capsules::proxy::{self, TOKEN_COOKIE, TOKEN_HEADER, TOKEN_QUERY};
use crate::capsules::{agent, lifecycle, CapsuleStatus};
use crate::db::capsules as db;
use crate::events::Actor;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use hyper_util::rt::TokioIo;
use uuid::Uuid;
use wrenn_extension_api::{ids, ApiError, API_KEY_HEADER, SESSION_COOKIE};

/// Middleware: proxies capsule hosts, passes everything else on.
pub async fn intercept(State(ctx): State<App>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    let target = host
        .as_deref()
        .and_then(|h| proxy::parse_host(h, &ctx.config().domain));
    match (target, host) {
        (Some((port, capsule_id)), Some(host)) => {
            match forward(&ctx, req, port, capsule_id, &host).await {
                Ok(r) => r,
                Err(e) => e.into_response(),
            }
        }
        _ => next.run(req).await,
    }
}

/// How the caller proved access.
enum Access {
    /// The team's API key or session.
    Team,
    /// A token from the query string: set it as a cookie for the following requests.
    QueryToken(String),
    /// A token from the header or the cookie.
    Token,
}

fn query_token(uri: &Uri) -> Option<String> {
    uri.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == TOKEN_QUERY).then(|| v.to_string())
    })
}

/// The URI without the `wrenn_token` parameter (path and query only).
fn strip_token(uri: &Uri) -> String {
    let path = uri.path();
    match uri.query() {
        None => path.to_string(),
        Some(q) => {
            let kept: Vec<&str> = q
                .split('&')
                .filter(|p| p.split('=').next() != Some(TOKEN_QUERY))
                .collect();
            if kept.is_empty() {
                path.to_string()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
    }
}

async fn authorize(
    ctx: &App,
    headers: &HeaderMap,
    uri: &Uri,
    capsule_id: Uuid,
    team_id: Uuid,
) -> Result<Access, ApiError> {
    let now = chrono::Utc::now().timestamp();
    let secret = ctx.jwt_secret();
    if let Some(t) = headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        if proxy::verify_token(secret, capsule_id, t, now) {
            return Ok(Access::Token);
        }
        return Err(ApiError::unauthorized());
    }
    if let Some(t) = query_token(uri) {
        if proxy::verify_token(secret, capsule_id, &t, now) {
            return Ok(Access::QueryToken(t));
        }
        return Err(ApiError::unauthorized());
    }
    let jar = CookieJar::from_headers(headers);
    if let Some(t) = jar.get(TOKEN_COOKIE) {
        if proxy::verify_token(secret, capsule_id, t.value(), now) {
            return Ok(Access::Token);
        }
    }
    let team = if let Some(key) = headers.get(API_KEY_HEADER).and_then(|v| v.to_str().ok()) {
        ctx.sessions()
            .resolve_api_key(key)
            .await?
            .map(|k| k.team_id)
    } else if let Some(sid) = jar.get(SESSION_COOKIE) {
        ctx.sessions()
            .resolve_session(sid.value())
            .await?
            .map(|s| s.team_id)
    } else {
        None
    };
    match team {
        Some(t) if t == team_id => Ok(Access::Team),
        // Another team's credentials: the capsule does not exist for them.
        Some(_) => Err(ApiError::not_found("not_found", "capsule not found")),
        None => Err(ApiError::unauthorized()),
    }
}

/// The capsule ready to take traffic: running, or resumed first (waiting for a resume already
/// under way) when its team enabled auto-resume; otherwise 409 `invalid_state`.
async fn running(ctx: &App, row: db::CapsuleRow) -> Result<db::CapsuleRow, ApiError> {
    let refuse = |row: &db::CapsuleRow| {
        ApiError::conflict("invalid_state", format!("the capsule is {}", row.status))
    };
    let waits = |s: CapsuleStatus| matches!(s, CapsuleStatus::Paused | CapsuleStatus::Resuming);
    match row.status() {
        CapsuleStatus::Running => return Ok(row),
        s if !waits(s) => return Err(refuse(&row)),
        _ => {}
    }
    if !crate::db::teams::auto_resume(ctx.db(), row.team_id).await? {
        return Err(refuse(&row));
    }
    let deadline = tokio::time::Instant::now() + AUTO_RESUME_WAIT;
    let mut row = row;
    loop {
        match row.status() {
            CapsuleStatus::Running => return Ok(row),
            CapsuleStatus::Paused => {
                // A concurrent request may win the claim; then this one waits for its resume.
                match lifecycle::resume_as(ctx, row.clone(), Actor::system()).await {
                    Ok(resumed) => return Ok(resumed),
                    Err(e) if e.status != StatusCode::CONFLICT => return Err(e),
                    Err(_) => {}
                }
            }
            CapsuleStatus::Resuming if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            _ => return Err(refuse(&row)),
        }
        row = db::get(ctx.db(), row.id)
            .await?
            .ok_or_else(|| ApiError::not_found("not_found", "capsule not found"))?;
    }
}

/// How long a proxied request waits for another request's auto-resume.
const AUTO_RESUME_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Everything but hop-by-hop headers and Wrenn's credentials is forwarded.
fn forwardable(name: &header::HeaderName, upgrade: bool) -> bool {
    let n = name.as_str();
    !wrenn_extension_api::capsules::is_hop_by_hop(n, upgrade)
        && !matches!(n, "x-api-key" | "x-wrenn-access-token" | "x-csrf-token")
}

/// The Cookie header without Wrenn's own cookies.
fn strip_cookies(headers: &HeaderMap) -> Option<HeaderValue> {
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| {
            let name = c.split('=').next().unwrap_or("");
            !name.starts_with("wrenn_") && !c.is_empty()
        })
        .map(str::to_string)
        .collect();
    if kept.is_empty() {
        None
    } else {
        HeaderValue::from_str(&kept.join("; ")).ok()
    }
}

async fn forward(
    ctx: &App,
    mut req: Request,
    port: u16,
    capsule_id: Uuid,
    host: &str,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found("not_found", "capsule not found");
    let row = db::get(ctx.db(), capsule_id).await?.ok_or_else(not_found)?;
    let access = authorize(ctx, req.headers(), req.uri(), capsule_id, row.team_id).await?;
    let row = running(ctx, row).await?;
    let host_id = row
        .host_id
        .ok_or_else(|| ApiError::internal("running capsule without host"))?;
    let mut client = agent::client(ctx, host_id).await?;
    let tunnel = proxy::open_tunnel(
        &ctx.tasks,
        &mut client,
        ids::encode(ids::CAPSULE, capsule_id),
        port,
    )
    .await?;
    {
        let app = ctx.clone();
        ctx.spawn(async move {
            let _ = db::touch(app.db(), capsule_id).await;
        });
    }

    let upgrade = req.headers().contains_key(header::UPGRADE);
    let mut out = hyper::Request::builder()
        .method(req.method().clone())
        .uri(strip_token(req.uri()));
    for (name, value) in req.headers() {
        if name != header::COOKIE && forwardable(name, upgrade) {
            out = out.header(name, value);
        }
    }
    if let Some(cookies) = strip_cookies(req.headers()) {
        out = out.header(header::COOKIE, cookies);
    }
    if !upgrade {
        out = out.header(header::CONNECTION, "close");
    }
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let out = out
        .body(req.into_body())
        .map_err(|e| ApiError::invalid(format!("cannot forward request: {e}")))?;

    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tunnel))
        .await
        .map_err(bad_gateway)?;
    ctx.spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(error = %e, "Proxied connection ended with an error.");
        }
    });
    let mut resp = sender.send_request(out).await.map_err(bad_gateway)?;

    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            ctx.spawn(async move {
                match tokio::try_join!(client_upgrade, upstream_upgrade) {
                    Ok((c, u)) => {
                        let mut c = TokioIo::new(c);
                        let mut u = TokioIo::new(u);
                        let _ = tokio::io::copy_bidirectional(&mut c, &mut u).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "Proxied upgrade failed."),
                }
            });
        }
    }

    let scheme = if ctx.config().public_url.starts_with("https://") {
        "https"
    } else {
        "http"
    };
    let origin = format!("{scheme}://{host}");
    let (mut parts, body) = resp.into_parts();
    if let Some(loc) = parts
        .headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
    {
        let rewritten = proxy::rewrite_location(loc, port, &origin);
        if let Ok(v) = HeaderValue::from_str(&rewritten) {
            parts.headers.insert(header::LOCATION, v);
        }
    }
    if let Access::QueryToken(token) = access {
        let ttl = ctx.capsules.proxy_token_ttl_sec;
        let secure = if scheme == "https" { "; Secure" } else { "" };
        let cookie = format!(
            "{TOKEN_COOKIE}={token}; Path=/; Max-Age={ttl}; HttpOnly; SameSite=Lax{secure}"
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            parts.headers.append(header::SET_COOKIE, v);
        }
    }
    Ok(Response::from_parts(parts, Body::new(body)))
}

fn bad_gateway(e: hyper::Error) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "proxy_error",
        "nothing answered on that port inside the capsule",
    )
    .with_cause(e)
}
