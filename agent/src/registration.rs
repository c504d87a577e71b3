//! Registration with the control plane, saved credentials, and the heartbeat loop.
//!
//! `--register <token>` POSTs `/v1/hosts/register` once and saves the answer to
//! `$WRENN_DIR/host-token` (JSON, mode 0600). Every start then heartbeats
//! `POST /v1/hosts/{id}/heartbeat` with `X-Host-Token`; a 401 triggers a refresh
//! (`/v1/hosts/auth/refresh`, which also reissues the server certificate); three failed
//! heartbeats in a row pause every running capsule; a 404 means the host was deleted:
//! the credentials are removed and the agent exits. The same loop delivers the capsule
//! changes the agent made on its own ([`crate::host::outbox`]) with
//! `POST /v1/hosts/sandbox-events` as soon as they are queued. Both bodies are the typed
//! `wrenn_proto::host_http` contract.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::{error, info, warn};

use crate::host::load::LoadReader;
use crate::host::Host;
use crate::tls::TlsState;
use wrenn_proto::host_http;

/// What `/v1/hosts/register` and `/v1/hosts/auth/refresh` hand out.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub host_id: String,
    pub token: String,
    pub refresh_token: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_cert_pem: String,
    pub cp_url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistrationError {
    #[error("control plane unreachable: {0}")]
    Http(#[from] reqwest::Error),
    #[error("control plane answered {0}: {1}")]
    Status(u16, String),
    #[error("unexpected answer: {0}")]
    Shape(String),
    #[error("credentials file: {0}")]
    Io(#[from] std::io::Error),
}

pub fn credentials_path(wrenn_dir: &Path) -> PathBuf {
    wrenn_dir.join("host-token")
}

pub fn load(wrenn_dir: &Path) -> Option<Credentials> {
    serde_json::from_slice(&std::fs::read(credentials_path(wrenn_dir)).ok()?).ok()
}

pub fn save(wrenn_dir: &Path, c: &Credentials) -> Result<(), RegistrationError> {
    let path = credentials_path(wrenn_dir);
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(
            &serde_json::to_vec_pretty(c).map_err(|e| RegistrationError::Shape(e.to_string()))?,
        )?;
        f.sync_all()?;
    }
    std::fs::rename(tmp, path)?;
    Ok(())
}

fn str_field(v: &serde_json::Value, key: &str) -> Result<String, RegistrationError> {
    v[key]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| RegistrationError::Shape(format!("missing `{key}`")))
}

/// `POST /v1/hosts/register`.
pub async fn register(
    client: &reqwest::Client,
    cp_url: &str,
    token: &str,
    address: &str,
    info: &serde_json::Value,
) -> Result<Credentials, RegistrationError> {
    let mut body = info.clone();
    body["token"] = json!(token);
    body["address"] = json!(address);
    let resp = client
        .post(format!(
            "{}/v1/hosts/register",
            cp_url.trim_end_matches('/')
        ))
        .json(&body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    if status >= 300 {
        return Err(RegistrationError::Status(
            status,
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ));
    }
    let host_id = v["host"]["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| RegistrationError::Shape("missing `host.id`".into()))?;
    Ok(Credentials {
        host_id,
        token: str_field(&v, "token")?,
        refresh_token: str_field(&v, "refresh_token")?,
        cert_pem: str_field(&v, "cert_pem")?,
        key_pem: str_field(&v, "key_pem")?,
        ca_cert_pem: str_field(&v, "ca_cert_pem")?,
        cp_url: cp_url.to_owned(),
    })
}

/// `POST /v1/hosts/auth/refresh`: new host token, rotated refresh token, new certificate.
pub async fn refresh(
    client: &reqwest::Client,
    c: &Credentials,
) -> Result<Credentials, RegistrationError> {
    let url = format!("{}/v1/hosts/auth/refresh", c.cp_url.trim_end_matches('/'));
    let resp = client
        .post(url)
        .json(&json!({"refresh_token": c.refresh_token}))
        .send()
        .await?;
    let status = resp.status().as_u16();
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    if status >= 300 {
        return Err(RegistrationError::Status(
            status,
            v["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ));
    }
    let pick = |key: &str, old: &str| {
        v[key]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| old.to_owned())
    };
    Ok(Credentials {
        host_id: c.host_id.clone(),
        token: str_field(&v, "token")?,
        refresh_token: pick("refresh_token", &c.refresh_token),
        cert_pem: pick("cert_pem", &c.cert_pem),
        key_pem: pick("key_pem", &c.key_pem),
        ca_cert_pem: pick("ca_cert_pem", &c.ca_cert_pem),
        cp_url: c.cp_url.clone(),
    })
}

enum Beat {
    Ok,
    Unauthorized,
    Gone,
    Failed(String),
}

fn answer(r: Result<reqwest::Response, reqwest::Error>) -> Beat {
    match r {
        Ok(r) if r.status().is_success() => Beat::Ok,
        Ok(r) if r.status().as_u16() == 401 => Beat::Unauthorized,
        Ok(r) if r.status().as_u16() == 404 => Beat::Gone,
        Ok(r) => Beat::Failed(format!("status {}", r.status())),
        Err(e) => Beat::Failed(e.to_string()),
    }
}

async fn beat(client: &reqwest::Client, c: &Credentials, host: &Host, load: &LoadReader) -> Beat {
    let url = format!(
        "{}/v1/hosts/{}/heartbeat",
        c.cp_url.trim_end_matches('/'),
        c.host_id
    );
    let body = host_http::Heartbeat {
        agent_version: Some(host.agent_version.clone()),
        capabilities: None,
        load: Some(load.read(host)),
    };
    answer(
        client
            .post(url)
            .header("X-Host-Token", &c.token)
            .json(&body)
            .send()
            .await,
    )
}

/// Sends the oldest queued capsule changes; on a 200 they are forgotten.
async fn deliver(client: &reqwest::Client, c: &Credentials, host: &Host) -> Beat {
    let (events, through) = host.outbox.peek(host_http::MAX_EVENTS_PER_CALL);
    if events.is_empty() {
        return Beat::Ok;
    }
    let url = format!("{}/v1/hosts/sandbox-events", c.cp_url.trim_end_matches('/'));
    let n = events.len();
    let result = answer(
        client
            .post(url)
            .header("X-Host-Token", &c.token)
            .json(&host_http::SandboxEvents::Many { events })
            .send()
            .await,
    );
    if let Beat::Ok = result {
        host.outbox.ack(through);
        info!(
            changes = n,
            "capsule changes delivered to the control plane"
        );
    }
    result
}

/// Refreshes the credentials after a 401 (saving them and reloading the server
/// certificate); `Err` carries what the call should count as.
async fn renew(
    client: &reqwest::Client,
    creds: &mut Credentials,
    host: &Host,
    tls: &Option<Arc<TlsState>>,
) -> Result<(), Beat> {
    match refresh(client, creds).await {
        Ok(new) => {
            *creds = new;
            if let Err(e) = save(&host.wrenn_dir, creds) {
                error!(error = %e, "refreshed credentials could not be saved");
            }
            if let Some(tls) = tls {
                if let Err(e) = tls.reload(&creds.cert_pem, &creds.key_pem, &creds.ca_cert_pem) {
                    error!(error = %e, "refreshed certificate rejected");
                }
            }
            info!("host token refreshed");
            Ok(())
        }
        Err(RegistrationError::Status(404, _)) => Err(Beat::Gone),
        Err(e) => Err(Beat::Failed(format!("refresh: {e}"))),
    }
}

/// Heartbeats until shutdown. Exits the agent (cancels `host.shutdown`) on 404.
pub async fn heartbeat_loop(
    host: Arc<Host>,
    client: reqwest::Client,
    mut creds: Credentials,
    tls: Option<Arc<TlsState>>,
    every: Duration,
) {
    let mut failures = 0u32;
    let mut paused_for_outage = false;
    let load = LoadReader::default();
    let mut tick = tokio::time::interval(every);
    loop {
        let beat_due = tokio::select! {
            _ = host.shutdown.cancelled() => return,
            _ = tick.tick() => true,
            _ = host.outbox.queued() => false,
        };
        if !beat_due {
            // A change was queued: deliver it now (a failure is retried at the next tick).
            let mut sent = deliver(&client, &creds, &host).await;
            if let Beat::Unauthorized = sent {
                if renew(&client, &mut creds, &host, &tls).await.is_ok() {
                    sent = deliver(&client, &creds, &host).await;
                }
            }
            if let Beat::Failed(reason) = sent {
                warn!(%reason, pending = host.outbox.len(), "capsule changes not delivered yet");
            }
            continue;
        }
        let mut result = beat(&client, &creds, &host, &load).await;
        if let Beat::Unauthorized = result {
            result = match renew(&client, &mut creds, &host, &tls).await {
                Ok(()) => beat(&client, &creds, &host, &load).await,
                Err(b) => b,
            };
        }
        if let Beat::Ok = result {
            if let Beat::Failed(reason) = deliver(&client, &creds, &host).await {
                warn!(%reason, pending = host.outbox.len(), "capsule changes not delivered yet");
            }
        }
        match result {
            Beat::Ok => {
                failures = 0;
                paused_for_outage = false;
            }
            Beat::Gone => {
                error!("the control plane deleted this host; removing credentials and exiting");
                let _ = std::fs::remove_file(credentials_path(&host.wrenn_dir));
                host.shutdown.cancel();
                return;
            }
            Beat::Unauthorized => {
                failures += 1;
                warn!(failures, "heartbeat unauthorized after refresh");
            }
            Beat::Failed(reason) => {
                failures += 1;
                warn!(failures, %reason, "heartbeat failed");
            }
        }
        if failures >= 3 && !paused_for_outage {
            warn!("control plane lost for 3 heartbeats; pausing running capsules");
            let (paused, _) = host.stop_all(true, true).await;
            for id in &paused {
                host.outbox.push(
                    id,
                    host_http::SandboxEventKind::Paused,
                    "control_plane_unreachable",
                    None,
                );
            }
            info!(
                count = paused.len(),
                "capsules paused while the control plane is away"
            );
            paused_for_outage = true;
        }
    }
}
