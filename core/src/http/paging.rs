//! Keyset paging for listings that can grow: `limit` (1–200, default 50) and an opaque
//! `cursor` in the query; the answer stays a bare JSON array, and a page that is not the
//! last carries `X-Next-Cursor` (the value to pass back as `cursor`).
//!
//! Rows are ordered newest first by `(created_at, id)`; the cursor is the last row's pair,
//! so a row created while a client pages never shifts the pages it has not read yet.
//!
//! The listings that answered a whole array before they were paged (capsules, snapshots,
//! API keys, teams, members, sessions, hosts, channels) keep their order (which some sort
//! by a name or oldest first: the cursor is then that order's key, a [`CursorKey`] other
//! than the default pair) and a longer default page, [`Limits::OLDER_LISTS`], so a client
//! that never pages still reads what it read before for any team of ordinary size.

use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;
use uuid::Uuid;
use wrenn_extension_api::ApiError;

pub const MAX_LIMIT: i64 = 200;
pub const DEFAULT_LIMIT: i64 = 50;
/// The response header naming the next page's cursor.
pub const NEXT_CURSOR: &str = "x-next-cursor";

/// How long a listing's pages are: without `limit`, and at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub default: i64,
    pub max: i64,
}

impl Limits {
    /// Listings paged from the start (admin, builds): 1–200, default 50.
    pub const STANDARD: Limits = Limits {
        default: DEFAULT_LIMIT,
        max: MAX_LIMIT,
    };
    /// Listings that answered the whole array before they were paged: 1–200, default 100.
    pub const OLDER_LISTS: Limits = Limits {
        default: OLDER_LISTS_DEFAULT_LIMIT,
        max: MAX_LIMIT,
    };
}

/// The default page of [`Limits::OLDER_LISTS`].
pub const OLDER_LISTS_DEFAULT_LIMIT: i64 = 100;

/// The sort key of a listing's rows, which a cursor carries. Each kind has its own spelling,
/// so a cursor of one listing is refused by a listing of another kind.
pub trait CursorKey: Sized {
    fn encode(&self) -> String;
    fn decode(cursor: &str) -> Option<Self>;
}

/// `(created_at, id)`: `<unix micros>-<uuid hex>`.
impl CursorKey for (DateTime<Utc>, Uuid) {
    fn encode(&self) -> String {
        encode(self.0, self.1)
    }
    fn decode(cursor: &str) -> Option<Self> {
        decode(cursor)
    }
}

/// `(text, id)`, for listings sorted by a name: `<hex of the text>.<uuid hex>`.
impl CursorKey for (String, Uuid) {
    fn encode(&self) -> String {
        format!("{}.{}", hex::encode(&self.0), self.1.simple())
    }
    fn decode(cursor: &str) -> Option<Self> {
        let (text, id) = cursor.split_once('.')?;
        let text = String::from_utf8(hex::decode(text).ok()?).ok()?;
        Some((text, Uuid::try_parse(id).ok()?))
    }
}

/// `(flag, text, id)`, for listings sorted by a group then a name: `<0|1>.<hex>.<uuid hex>`.
impl CursorKey for (bool, String, Uuid) {
    fn encode(&self) -> String {
        format!("{}.{}", u8::from(self.0), (self.1.clone(), self.2).encode())
    }
    fn decode(cursor: &str) -> Option<Self> {
        let (flag, rest) = cursor.split_once('.')?;
        let flag = match flag {
            "0" => false,
            "1" => true,
            _ => return None,
        };
        let (text, id) = <(String, Uuid)>::decode(rest)?;
        Some((flag, text, id))
    }
}

/// `limit` and `cursor` of a listing with [`Limits::OLDER_LISTS`].
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1–200, default 100.
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
    /// `X-Next-Cursor` of the previous page.
    pub cursor: Option<String>,
}

impl ListQuery {
    /// The page this query asks for (400 `invalid_request` for a bad limit or cursor).
    pub fn page(&self) -> Result<Page, ApiError> {
        Page::parse_with(self.limit, self.cursor.as_deref(), Limits::OLDER_LISTS)
    }
}

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Copy)]
pub struct Page<K = (DateTime<Utc>, Uuid)> {
    pub limit: i64,
    /// Rows strictly past this key in the listing's order (for the default key: older than
    /// this `(created_at, id)`); `None` for the first page.
    pub after: Option<K>,
}

impl Page {
    /// Reads `limit` and `cursor` as the query gave them ([`Limits::STANDARD`]); 400
    /// `invalid_request` when either is malformed.
    pub fn parse(limit: Option<i64>, cursor: Option<&str>) -> Result<Self, ApiError> {
        Self::parse_with(limit, cursor, Limits::STANDARD)
    }
}

impl<K: CursorKey> Page<K> {
    /// [`Page::parse`] with a listing's own limits and key.
    pub fn parse_with(
        limit: Option<i64>,
        cursor: Option<&str>,
        limits: Limits,
    ) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(limits.default);
        if !(1..=limits.max).contains(&limit) {
            return Err(ApiError::invalid(format!(
                "limit must be between 1 and {}",
                limits.max
            )));
        }
        let after = match cursor.filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(K::decode(c).ok_or_else(|| {
                ApiError::invalid("cursor is not one this server gave out (X-Next-Cursor)")
            })?),
        };
        Ok(Self { limit, after })
    }
}

impl<K> Page<K> {
    /// The row count to fetch: one more than the page, to learn whether another follows.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }
}

impl Page {
    /// The cursor's time, for binding (`NULL` on the first page).
    pub fn after_time(&self) -> Option<DateTime<Utc>> {
        self.after.map(|(t, _)| t)
    }

    /// The cursor's id, for binding (the nil id on the first page; unused then).
    pub fn after_id(&self) -> Uuid {
        self.after.map(|(_, id)| id).unwrap_or_default()
    }
}

fn encode(at: DateTime<Utc>, id: Uuid) -> String {
    format!("{}-{}", at.timestamp_micros(), id.simple())
}

fn decode(cursor: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (micros, id) = cursor.split_once('-')?;
    let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?;
    Some((at, Uuid::try_parse(id).ok()?))
}

/// One page of a listing: the JSON array, plus `X-Next-Cursor` when more rows follow.
pub struct Paged<T> {
    items: Vec<T>,
    next: Option<String>,
}

impl<T> Paged<T> {
    /// Cuts the `page.fetch()` rows fetched down to the page; `key` gives a row's sort key
    /// (for the default key, its `(created_at, id)`).
    pub fn new<R, K: CursorKey>(
        mut rows: Vec<R>,
        page: Page<K>,
        key: impl Fn(&R) -> K,
        view: impl Fn(&R) -> T,
    ) -> Self {
        let more = rows.len() as i64 > page.limit;
        rows.truncate(page.limit as usize);
        let next = rows.last().filter(|_| more).map(|r| key(r).encode());
        Self {
            items: rows.iter().map(view).collect(),
            next,
        }
    }
}

impl<T: Serialize> IntoResponse for Paged<T> {
    fn into_response(self) -> Response {
        let mut response = Json(self.items).into_response();
        if let Some(next) = self.next.and_then(|n| HeaderValue::from_str(&n).ok()) {
            response.headers_mut().insert(NEXT_CURSOR, next);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let at = DateTime::from_timestamp_micros(1_764_000_000_123_456).unwrap();
        let id = Uuid::new_v4();
        let page = Page::parse(Some(10), Some(&encode(at, id))).unwrap();
        assert_eq!(page.after, Some((at, id)));
        assert_eq!(page.fetch(), 11);
        for bad in ["x", "12-zz", "-", "99999999999999999999-00"] {
            assert!(Page::parse(None, Some(bad)).is_err(), "{bad}");
        }
        for limit in [0, -1, 201] {
            assert!(Page::parse(Some(limit), None).is_err(), "{limit}");
        }
        assert_eq!(Page::parse(None, None).unwrap().limit, DEFAULT_LIMIT);
    }

    #[test]
    fn older_lists_default_to_100_and_keys_keep_to_their_kind() {
        let page = Page::<(String, Uuid)>::parse_with(None, None, Limits::OLDER_LISTS).unwrap();
        assert_eq!(page.limit, 100);
        assert!(Page::<(String, Uuid)>::parse_with(Some(201), None, Limits::OLDER_LISTS).is_err());
        let key = ("Zoë.bé-1".to_string(), Uuid::new_v4());
        let page =
            Page::<(String, Uuid)>::parse_with(Some(2), Some(&key.encode()), Limits::OLDER_LISTS)
                .unwrap();
        assert_eq!(page.after, Some(key.clone()));
        let flagged = (true, key.0.clone(), key.1);
        assert_eq!(
            <(bool, String, Uuid)>::decode(&flagged.encode()),
            Some(flagged)
        );
        // A time cursor is not a name cursor, and the reverse.
        let time = encode(Utc::now(), Uuid::new_v4());
        assert!(<(String, Uuid)>::decode(&time).is_none());
        assert!(<(bool, String, Uuid)>::decode(&time).is_none());
        assert!(Page::parse(None, Some(&key.encode())).is_err());
        for bad in ["zz.00", "2.61.00", ".", "61"] {
            assert!(<(bool, String, Uuid)>::decode(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn only_a_page_with_more_rows_names_a_next_cursor() {
        let at = Utc::now();
        let rows: Vec<(DateTime<Utc>, Uuid)> = (0..3).map(|_| (at, Uuid::new_v4())).collect();
        let page = Page::parse(Some(2), None).unwrap();
        let paged = Paged::new(rows.clone(), page, |r| *r, |r| r.1);
        assert_eq!(paged.items, vec![rows[0].1, rows[1].1]);
        assert_eq!(paged.next, Some(encode(at, rows[1].1)));
        let last = Paged::new(rows[..2].to_vec(), page, |r| *r, |r| r.1);
        assert_eq!(last.next, None);
    }
}
