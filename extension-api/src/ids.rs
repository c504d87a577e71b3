//! Wire ids: `prefix_` + the database UUID in base36, left-padded to 25 digits.
//!
//! 36^25 > 2^128, so every UUID fits in 25 digits and the platform team (UUID nil) is
//! `tm_0000000000000000000000000`.

use crate::error::ApiError;
use uuid::Uuid;

const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const WIDTH: usize = 25;

pub const USER: &str = "usr";
pub const TEAM: &str = "tm";
pub const API_KEY: &str = "key";
pub const SESSION: &str = "ses";
pub const CAPSULE: &str = "sb";
pub const HOST: &str = "host";
pub const CHANNEL: &str = "ch";
pub const TEMPLATE: &str = "tpl";
pub const BUILD: &str = "bld";
pub const AUDIT_LOG: &str = "log";

/// The platform team: UUID nil.
pub const PLATFORM_TEAM: Uuid = Uuid::nil();

/// Encodes `id` as `prefix_` + 25 base36 digits.
pub fn encode(prefix: &str, id: Uuid) -> String {
    let mut n = id.as_u128();
    let mut buf = [b'0'; WIDTH];
    for slot in buf.iter_mut().rev() {
        *slot = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    let digits = std::str::from_utf8(&buf).expect("base36 digits are ASCII");
    format!("{prefix}_{digits}")
}

/// Decodes a wire id with the expected prefix; anything else is `None`.
pub fn decode(prefix: &str, wire: &str) -> Option<Uuid> {
    let digits = wire.strip_prefix(prefix)?.strip_prefix('_')?;
    if digits.is_empty() || digits.len() > WIDTH {
        return None;
    }
    let mut n: u128 = 0;
    for c in digits.bytes() {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'z' => c - b'a' + 10,
            _ => return None,
        };
        n = n.checked_mul(36)?.checked_add(u128::from(d))?;
    }
    Some(Uuid::from_u128(n))
}

/// Decodes a wire id taken from a request; a malformed id is a 404 `not_found` (an id that
/// cannot exist is as missing as one that does not).
pub fn parse(prefix: &str, wire: &str, what: &'static str) -> Result<Uuid, ApiError> {
    decode(prefix, wire)
        .ok_or_else(|| ApiError::not_found("not_found", format!("{what} not found")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_pads() {
        assert_eq!(encode(TEAM, PLATFORM_TEAM), "tm_0000000000000000000000000");
        let max = Uuid::from_u128(u128::MAX);
        let wire = encode(USER, max);
        assert_eq!(wire.len(), "usr_".len() + 25);
        assert_eq!(decode(USER, &wire), Some(max));
        let id = Uuid::new_v4();
        assert_eq!(decode(API_KEY, &encode(API_KEY, id)), Some(id));
    }

    #[test]
    fn rejects_wrong_prefix_and_overflow() {
        let id = Uuid::new_v4();
        assert_eq!(decode(TEAM, &encode(USER, id)), None);
        assert_eq!(decode(TEAM, "tm_zzzzzzzzzzzzzzzzzzzzzzzzz"), None);
        assert_eq!(decode(TEAM, "tm_ABC"), None);
        assert_eq!(decode(TEAM, "tm_"), None);
    }
}
