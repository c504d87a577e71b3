//! Data access, one module per aggregate. Functions take an executor (`&PgPool`,
//! `&mut PgConnection` or a transaction) so handlers and extensions compose them in
//! transactions. This is the only module with SQL. Queries of a fixed shape are checked at
//! compile time (`sqlx::query!`, `query_as!`, `query_scalar!`) against the committed offline
//! data in `.sqlx/` at the workspace root (builds never reach a database: `SQLX_OFFLINE=true`
//! in `.cargo/config.toml`); a changed query does not compile until `make sqlx-prepare`
//! regenerates that data. SQL assembled at run time (a variable column list, a flattened row)
//! and statements whose result the macros cannot type (`pg_advisory_*` returns `void`) stay
//! `sqlx::query`. Every query, checked or not, is exercised by the test suite. Statuses are
//! bound as enums ([`sql_text_enum!`]; in the macros with a type override, `status AS
//! "status: CapsuleStatus"` and `to as CapsuleStatus`), never written as literals.

/// Stores a Rust enum as PostgreSQL TEXT through its `as_str` / `parse` (the column's CHECK
/// lists the same names), so SQL binds take the enum and never a string literal.
#[macro_export]
macro_rules! sql_text_enum {
    ($ty:ty) => {
        impl sqlx::Type<sqlx::Postgres> for $ty {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl sqlx::postgres::PgHasArrayType for $ty {
            fn array_type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $ty {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl sqlx::Decode<'_, sqlx::Postgres> for $ty {
            fn decode(
                value: sqlx::postgres::PgValueRef<'_>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                <$ty>::parse(text)
                    .ok_or_else(|| format!("unknown {} {text:?}", stringify!($ty)).into())
            }
        }
    };
}

pub mod admin;
pub mod api_keys;
pub mod audit;
pub mod builds;
pub mod capsules;
pub mod channels;
pub mod extensions;
pub mod hosts;
pub mod oauth;
pub mod sessions;
pub mod teams;
pub mod templates;
pub mod users;

/// A round trip to the database (for health checks).
pub async fn ping(db: impl sqlx::PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query("SELECT 1").execute(db).await.map(|_| ())
}
