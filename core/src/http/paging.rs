//! Keyset paging for listings that can grow: `limit` (1–200, default 50) and an opaque
//! `cursor` in the query; the answer stays a bare JSON array, and a page that is not the
//! last carries `X-Next-Cursor` (the value to pass back as `cursor`).
//!
//! Rows are ordered newest first by `(created_at, id)`; the cursor is the last row's pair,
//! so a row created while a client pages never shifts the pages it has not read yet.

use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;
use wrenn_extension_api::ApiError;

pub const MAX_LIMIT: i64 = 200;
pub const DEFAULT_LIMIT: i64 = 50;
/// The response header naming the next page's cursor.
pub const NEXT_CURSOR: &str = "x-next-cursor";

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    /// Rows strictly older than this `(created_at, id)`; `None` for the first page.
    pub after: Option<(DateTime<Utc>, Uuid)>,
}

impl Page {
    /// Reads `limit` and `cursor` as the query gave them; 400 `invalid_request` when either
    /// is malformed.
    pub fn parse(limit: Option<i64>, cursor: Option<&str>) -> Result<Self, ApiError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            )));
        }
        let after = match cursor.filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(decode(c).ok_or_else(|| {
                ApiError::invalid("cursor is not one this server gave out (X-Next-Cursor)")
            })?),
        };
        Ok(Self { limit, after })
    }

    /// The row count to fetch: one more than the page, to learn whether another follows.
    pub fn fetch(&self) -> i64 {
        self.limit + 1
    }

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
    /// Cuts the `page.fetch()` rows fetched down to the page; `key` gives a row's
    /// `(created_at, id)`.
    pub fn new<R>(
        mut rows: Vec<R>,
        page: Page,
        key: impl Fn(&R) -> (DateTime<Utc>, Uuid),
        view: impl Fn(&R) -> T,
    ) -> Self {
        let more = rows.len() as i64 > page.limit;
        rows.truncate(page.limit as usize);
        let next = rows.last().filter(|_| more).map(|r| {
            let (at, id) = key(r);
            encode(at, id)
        });
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
