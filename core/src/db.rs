//! Data access, one module per aggregate. Functions take an executor (`&PgPool`,
//! `&mut PgConnection` or a transaction) so handlers and extensions compose them in
//! transactions. Queries are checked at run time (no build-time database); every one is
//! exercised by the test suite.

pub mod api_keys;
pub mod audit;
pub mod capsules;
pub mod channels;
pub mod hosts;
pub mod oauth;
pub mod sessions;
pub mod teams;
pub mod templates;
pub mod users;
