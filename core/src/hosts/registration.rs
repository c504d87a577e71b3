//! Registration and credential rotation.
//!
//! An operator creates a host (status `pending`) and gets a one-time registration token
//! (1 h). The agent trades it once for its credentials: a host JWT (7 d), a refresh token
//! (60 d, rotated on every use) and a server certificate for its advertised address, plus
//! the CA certificate to trust the control plane's client certificate. Refreshing revokes the
//! presented refresh token and reissues all three; presenting a revoked one again revokes
//! the whole family.

use super::ca::{address_host, CaError, IssuedCert};
use super::pool::is_loopback;
use super::token::{self, REFRESH_PREFIX, REGISTRATION_PREFIX};
use super::Hosts;
use crate::app::App;
use crate::audit::{record_and_publish, AuditScope};
use crate::db::hosts::{self as db, HostRow, NewHost, RefreshUse, Registration};
use crate::events::{Actor, Event, Resource};
use chrono::Utc;
use serde::Deserialize;
use uuid::Uuid;
use wrenn_extension_api::{ids, ApiError};

/// What the agent sends to `POST /v1/hosts/register`.
#[derive(Debug, Clone, Deserialize)]
pub struct RegisterRequest {
    pub token: String,
    pub arch: String,
    pub cpu_cores: u32,
    pub memory_mb: u64,
    pub disk_gb: u64,
    /// `ip:port` (or `name:port`) where the agent serves gRPC.
    pub address: String,
    #[serde(default)]
    pub capabilities: serde_json::Value,
    /// `mtls` (default) or `insecure-dev` (plaintext; loopback and dev mode only).
    #[serde(default)]
    pub transport: Option<String>,
    #[serde(default)]
    pub agent_version: Option<String>,
}

/// Credentials handed to an agent at registration and refresh.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub host: HostRow,
    pub token: String,
    pub refresh_token: String,
    pub cert: IssuedCert,
    pub ca_cert_pem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("invalid or used token")]
    InvalidToken,
    #[error("{0}")]
    Invalid(String),
    #[error("insecure-dev transport refused")]
    InsecureRefused,
    #[error(transparent)]
    Ca(#[from] CaError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<RegistrationError> for ApiError {
    fn from(e: RegistrationError) -> Self {
        match e {
            RegistrationError::InvalidToken => ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the token is invalid, expired or already used",
            ),
            RegistrationError::Invalid(m) => ApiError::invalid(m),
            RegistrationError::InsecureRefused => ApiError::bad_request(
                "insecure_transport_refused",
                "plaintext agents are accepted only on loopback addresses in development mode",
            ),
            other => ApiError::internal(other),
        }
    }
}

/// Issues a fresh registration token for a pending host (earlier unused ones stop working).
pub async fn issue_registration_token(
    db: &sqlx::PgPool,
    hosts: &Hosts,
    host_id: Uuid,
    created_by: Option<Uuid>,
) -> sqlx::Result<String> {
    let plaintext = token::new_opaque(REGISTRATION_PREFIX);
    let mut tx = db.begin().await?;
    db::replace_registration_token(
        &mut tx,
        host_id,
        &token::hash(&plaintext),
        created_by,
        Utc::now() + hosts.config.registration_token_ttl,
    )
    .await?;
    tx.commit().await?;
    Ok(plaintext)
}

/// Creates a pending host and its first registration token.
pub async fn create_host(
    db: &sqlx::PgPool,
    hosts: &Hosts,
    new: &NewHost,
) -> sqlx::Result<(HostRow, String)> {
    let host = db::insert(db, new).await?;
    let token = issue_registration_token(db, hosts, host.id, new.created_by).await?;
    Ok((host, token))
}

/// For development (`wrenn-cp dev-host-token`): a new regular host and its registration
/// token.
pub async fn dev_host_token(db: &sqlx::PgPool, hosts: &Hosts) -> sqlx::Result<String> {
    let (_, token) = create_host(
        db,
        hosts,
        &NewHost {
            kind: "regular".into(),
            team_id: None,
            provider: Some("local".into()),
            availability_zone: Some("dev".into()),
            created_by: None,
        },
    )
    .await?;
    Ok(token)
}

fn validate(req: &RegisterRequest, hosts: &Hosts) -> Result<Registration, RegistrationError> {
    let invalid = |m: &str| RegistrationError::Invalid(m.to_string());
    if address_host(&req.address).is_none() {
        return Err(invalid("address must be host:port"));
    }
    if req.arch.is_empty() || req.arch.len() > 32 {
        return Err(invalid("arch is required"));
    }
    if req.cpu_cores == 0 || req.memory_mb == 0 {
        return Err(invalid("cpu_cores and memory_mb must be positive"));
    }
    let transport = req.transport.clone().unwrap_or_else(|| "mtls".into());
    match transport.as_str() {
        "mtls" => {}
        "insecure-dev" => {
            if !hosts.config.allow_insecure_dev || !is_loopback(&req.address) {
                return Err(RegistrationError::InsecureRefused);
            }
        }
        _ => return Err(invalid("transport must be mtls or insecure-dev")),
    }
    let mut capabilities = match &req.capabilities {
        serde_json::Value::Object(m) => m.clone(),
        serde_json::Value::Null => serde_json::Map::new(),
        _ => return Err(invalid("capabilities must be an object")),
    };
    // The transport is part of what the host offers, visible wherever capabilities are.
    capabilities.insert("transport".into(), transport.clone().into());
    Ok(Registration {
        arch: req.arch.clone(),
        cpu_cores: i32::try_from(req.cpu_cores).map_err(|_| invalid("cpu_cores too large"))?,
        memory_mb: i64::try_from(req.memory_mb).map_err(|_| invalid("memory_mb too large"))?,
        disk_gb: i64::try_from(req.disk_gb).map_err(|_| invalid("disk_gb too large"))?,
        address: req.address.clone(),
        capabilities: serde_json::Value::Object(capabilities),
        transport,
        agent_version: req.agent_version.clone(),
    })
}

/// Trades a registration token for credentials; the host goes `online`.
pub async fn register(
    ctx: &App,
    hosts: &Hosts,
    req: &RegisterRequest,
) -> Result<Credentials, RegistrationError> {
    if !req.token.starts_with(REGISTRATION_PREFIX) {
        return Err(RegistrationError::InvalidToken);
    }
    let registration = validate(req, hosts)?;
    let mut tx = ctx.db().begin().await?;
    let host_id = db::consume_registration_token(&mut *tx, &token::hash(&req.token))
        .await?
        .ok_or(RegistrationError::InvalidToken)?;
    let host = db::mark_registered(&mut *tx, host_id, &registration).await?;
    let creds = issue_credentials(&mut tx, ctx, hosts, host).await?;
    tx.commit().await?;
    hosts.pool.evict(host_id);
    tracing::info!(host_id = %ids::encode(ids::HOST, host_id), address = %req.address,
        transport = %registration.transport, "Host registered.");
    publish_host_event(ctx, &creds.host, "host.up").await;
    Ok(creds)
}

/// Rotates a refresh token into new credentials (JWT, refresh token, certificate).
pub async fn refresh(
    ctx: &App,
    hosts: &Hosts,
    refresh_token: &str,
) -> Result<Credentials, RegistrationError> {
    if !refresh_token.starts_with(REFRESH_PREFIX) {
        return Err(RegistrationError::InvalidToken);
    }
    let mut tx = ctx.db().begin().await?;
    let host_id = match db::use_refresh_token(&mut tx, &token::hash(refresh_token)).await? {
        RefreshUse::Rotated(id) => id,
        RefreshUse::Replayed(id) => {
            // Commit the family revocation before refusing.
            tx.commit().await?;
            tracing::warn!(host_id = %ids::encode(ids::HOST, id),
                "A rotated host refresh token was presented again; all its refresh tokens are revoked.");
            return Err(RegistrationError::InvalidToken);
        }
        RefreshUse::Invalid => return Err(RegistrationError::InvalidToken),
    };
    let host = db::get(&mut *tx, host_id)
        .await?
        .ok_or(RegistrationError::InvalidToken)?;
    let creds = issue_credentials(&mut tx, ctx, hosts, host).await?;
    tx.commit().await?;
    Ok(creds)
}

async fn issue_credentials(
    tx: &mut sqlx::PgConnection,
    ctx: &App,
    hosts: &Hosts,
    host: HostRow,
) -> Result<Credentials, RegistrationError> {
    let wire = ids::encode(ids::HOST, host.id);
    let address = host
        .address
        .clone()
        .ok_or_else(|| RegistrationError::Invalid("host has no address".into()))?;
    let cert = hosts
        .ca
        .issue_host_cert(&wire, &address, hosts.config.host_cert_ttl)?;
    db::set_cert(&mut *tx, host.id, &cert.fingerprint, cert.not_after).await?;
    let refresh_token = token::new_opaque(REFRESH_PREFIX);
    db::insert_refresh_token(
        &mut *tx,
        host.id,
        &token::hash(&refresh_token),
        Utc::now() + hosts.config.refresh_token_ttl,
    )
    .await?;
    let token = token::issue_host_jwt(ctx.jwt_secret(), host.id, hosts.config.host_token_ttl);
    let host = db::get(&mut *tx, host.id)
        .await?
        .ok_or(RegistrationError::InvalidToken)?;
    Ok(Credentials {
        host,
        token,
        refresh_token,
        cert,
        ca_cert_pem: hosts.ca.cert_pem().to_string(),
    })
}

/// Audits and publishes `host.up` / `host.down` (no outcome). Regular hosts belong to the
/// platform team; the audit rows are admin-scope.
pub async fn publish_host_event(ctx: &App, host: &HostRow, event: &str) {
    let team = host.team_id.unwrap_or(ids::PLATFORM_TEAM);
    let mut e = Event::new(event, team, Actor::system(), Resource::host(host.id));
    if let Some(address) = &host.address {
        e = e.meta("address", address.clone());
    }
    if let Err(err) = record_and_publish(ctx, &e, AuditScope::Admin).await {
        tracing::error!(error = %err, event, "Recording a host event failed.");
    }
}
