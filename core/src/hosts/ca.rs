//! The internal certificate authority behind control plane ↔ agent mutual TLS.
//!
//! Storage choice: the CA is one row of `internal_ca` in PostgreSQL, its private key sealed
//! with AES-256-GCM under `WRENN_ENCRYPTION_KEY` (random 96-bit nonce stored in front of the
//! ciphertext). Every control-plane replica therefore shares one CA without a shared disk,
//! and a database dump alone does not reveal the key. It is generated on first start
//! (concurrent starts race on the primary key; the loser reads the winner's row).
//!
//! Certificates: host server certificates (7 days, SAN = the advertised address, serverAuth)
//! are issued at registration and refresh; the control plane's client certificate
//! (clientAuth, 24 hours by default) is renewed by [`crate::hosts::pool::HostPool`]. All keys
//! are ECDSA P-256.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rand::RngCore;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::net::IpAddr;

const CA_COMMON_NAME: &str = "Wrenn internal CA";
/// Subject CN of the control plane's client certificate.
pub const CONTROL_PLANE_CN: &str = "wrenn-control-plane";

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("the CA key cannot be decrypted with this WRENN_ENCRYPTION_KEY")]
    Decrypt,
    #[error("invalid advertised address {0:?}")]
    Address(String),
}

/// A certificate and its private key, PEM encoded.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
    /// SHA-256 of the DER certificate, hex.
    pub fingerprint: String,
    pub not_after: DateTime<Utc>,
}

/// The loaded CA: its certificate (what agents trust) and signing key.
pub struct InternalCa {
    cert_pem: String,
    key: KeyPair,
    /// Re-created from the fixed parameters: signing only needs the issuer's name and key.
    issuer: rcgen::Certificate,
}

impl std::fmt::Debug for InternalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalCa").finish_non_exhaustive()
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    dn.push(DnType::OrganizationName, "Wrenn");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// Sets the validity window (rcgen takes `time` values; epoch + seconds avoids a direct
/// dependency on that crate).
fn set_validity(params: &mut CertificateParams, from: DateTime<Utc>, to: DateTime<Utc>) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let secs = |t: DateTime<Utc>| std::time::Duration::from_secs(t.timestamp().max(0) as u64);
    params.not_before = epoch + secs(from);
    params.not_after = epoch + secs(to);
}

fn random_serial() -> SerialNumber {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes[0] &= 0x7f; // positive
    SerialNumber::from_slice(&bytes)
}

fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Seals `plaintext` with AES-256-GCM: returns nonce (12 bytes) || ciphertext.
pub fn seal(key: &[u8; 32], plaintext: &[u8]) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; 12];
    rand::thread_rng().fill_bytes(&mut nonce);
    let mut out = nonce.to_vec();
    out.extend(
        cipher
            .encrypt(Nonce::from_slice(&nonce), plaintext)
            .expect("AES-GCM encryption does not fail for in-memory buffers"),
    );
    out
}

/// Opens what [`seal`] produced.
pub fn open(key: &[u8; 32], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < 12 {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(12);
    Aes256Gcm::new(key.into())
        .decrypt(Nonce::from_slice(nonce), ciphertext)
        .ok()
}

/// The host part of an advertised `host:port` address (brackets of IPv6 literals removed).
pub fn address_host(address: &str) -> Option<&str> {
    let host = match address.rsplit_once(':') {
        Some((h, port)) if port.parse::<u16>().is_ok() => h,
        _ => return None,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        None
    } else {
        Some(host)
    }
}

impl InternalCa {
    /// Loads the CA from the database, creating it the first time.
    pub async fn load_or_create(db: &PgPool, encryption_key: &[u8; 32]) -> Result<Self, CaError> {
        if let Some(ca) = Self::load(db, encryption_key).await? {
            return Ok(ca);
        }
        let key = KeyPair::generate()?;
        let mut params = ca_params();
        let now = Utc::now();
        set_validity(
            &mut params,
            now - ChronoDuration::hours(1),
            now + ChronoDuration::days(3650),
        );
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key)?;
        let sealed = seal(encryption_key, key.serialize_pem().as_bytes());
        crate::db::hosts::store_ca(db, &cert.pem(), &sealed).await?;
        // Whoever won the race, everyone uses the stored row.
        Self::load(db, encryption_key)
            .await?
            .ok_or(CaError::Db(sqlx::Error::RowNotFound))
    }

    async fn load(db: &PgPool, encryption_key: &[u8; 32]) -> Result<Option<Self>, CaError> {
        let row = crate::db::hosts::load_ca(db).await?;
        let Some((cert_pem, sealed)) = row else {
            return Ok(None);
        };
        let key_pem = open(encryption_key, &sealed).ok_or(CaError::Decrypt)?;
        let key_pem = String::from_utf8(key_pem).map_err(|_| CaError::Decrypt)?;
        let key = KeyPair::from_pem(&key_pem)?;
        let issuer = ca_params().self_signed(&key)?;
        Ok(Some(Self {
            cert_pem,
            key,
            issuer,
        }))
    }

    /// The CA certificate agents and the control plane trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A server certificate for a host whose advertised address is `address` (`ip:port` or
    /// `name:port`); the SAN is that IP or DNS name.
    pub fn issue_host_cert(
        &self,
        host_wire_id: &str,
        address: &str,
        ttl: ChronoDuration,
    ) -> Result<IssuedCert, CaError> {
        let host = address_host(address).ok_or_else(|| CaError::Address(address.into()))?;
        let san = match host.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                host.to_string()
                    .try_into()
                    .map_err(|_| CaError::Address(address.into()))?,
            ),
        };
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, host_wire_id);
        params.distinguished_name = dn;
        params.subject_alt_names = vec![san];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params, ttl)
    }

    /// The control plane's client certificate.
    pub fn issue_client_cert(&self, ttl: ChronoDuration) -> Result<IssuedCert, CaError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, CONTROL_PLANE_CN);
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, ttl)
    }

    fn sign(
        &self,
        mut params: CertificateParams,
        ttl: ChronoDuration,
    ) -> Result<IssuedCert, CaError> {
        let now = Utc::now();
        // A little backdating tolerates clock skew between control plane and hosts.
        let not_after = now + ttl;
        set_validity(&mut params, now - ChronoDuration::minutes(5), not_after);
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer, &self.key)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            fingerprint: fingerprint(cert.der()),
            not_after: DateTime::from_timestamp(not_after.timestamp(), 0).unwrap_or(not_after),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_rejects_wrong_keys() {
        let key = [7u8; 32];
        let sealed = seal(&key, b"secret");
        assert_eq!(open(&key, &sealed).as_deref(), Some(&b"secret"[..]));
        assert_eq!(open(&[8u8; 32], &sealed), None);
        assert_eq!(open(&key, &sealed[..5]), None);
    }

    #[test]
    fn address_host_handles_ipv4_ipv6_and_names() {
        assert_eq!(address_host("10.0.0.2:8443"), Some("10.0.0.2"));
        assert_eq!(address_host("[::1]:8443"), Some("::1"));
        assert_eq!(address_host("agent.example:1"), Some("agent.example"));
        assert_eq!(address_host("noport"), None);
        assert_eq!(address_host(":80"), None);
    }
}
