//! The Wrenn control plane as a library: `cpserver::run(Builder::new().extension(..))`.
//!
//! # Layout
//!
//! - [`config`]: the typed, validated configuration (environment, `.env`, flags).
//! - [`server`]: [`Builder`], [`run`], start-up order (config → PostgreSQL + migrations →
//!   Redis → mailer → sessions → extensions → router → workers) and graceful shutdown.
//! - [`app`]: [`App`], the typed application state of core routes: every core service as a
//!   field (configuration, password hashing, OAuth, extension hooks, hosts, live events,
//!   channels, formatters, the task tracker) around the [`ServerContext`] extensions get.
//! - [`extensions`]: applying the migrations extensions ship, in their own schemas.
//! - [`http`]: one router per resource (`http/auth.rs`, `http/me.rs`, `http/teams.rs`,
//!   `http/api_keys.rs`, `http/users.rs`, `http/oauth.rs`, ...) merged by [`http::api_router`];
//!   OpenAPI and docs in `http/docs.rs`.
//! - [`db`]: data access per aggregate (`db/users.rs`, `db/teams.rs`, `db/api_keys.rs`,
//!   `db/sessions.rs`, `db/oauth.rs`), functions taking an executor so callers compose them in
//!   transactions.
//! - [`sessions`]: the [`SessionService`](wrenn_extension_api::SessionService) on PostgreSQL
//!   (source of truth, hashed ids) with a Redis cache; verified API keys are kept a few seconds
//!   in process (`sessions/api_keys.rs`), revocations broadcast over Redis.
//! - [`accounts`]: signup/activation/provisioning and the 15-day purge worker.
//! - [`hosts`]: host registry, registration + internal CA, mTLS agent pool, scheduler and
//!   host monitor; [`events`] (the `wrenn:events` stream, its durable consumer runtime, the
//!   extension hook consumers and the live SSE feed) and [`audit`].
//! - [`channels`]: notification channels (webhook, Discord, Slack, Teams, Google Chat,
//!   Telegram, Matrix): config validation and sealing, formatters, SSRF-safe delivery, the
//!   `wrenn-channels-v1` dispatcher and its retry queue; [`formatters`]: chat formatters as
//!   WebAssembly components loaded from `WRENN_FORMATTERS_DIR` at run time (wasmtime).
//! - [`ratelimit`]: Redis-backed abuse limits (login, signup, password reset, API keys).
//! - [`passwords`], [`tokens`] (one-time tokens hashed in Redis), [`mail`] (SMTP or the sink
//!   directory), [`oauth`] (GitHub and the provider registry).
//! - `test_support` (feature `test-support`, never in a release build): spawns a real server on
//!   127.0.0.1:0 with a fresh database and a throw-away Redis, typed HTTP helpers, and
//!   `test_support::stack`, the capsule harness with real agents and gVisor capsules; used by
//!   this crate's tests, the benchmarks (`bench/`) and embedders' tests.
//!
//! A request flows: router → (extension middleware) → handler → guard extractor from
//! `wrenn-extension-api` (session/API key) → `db::*` functions → `ApiError` or JSON.

pub mod accounts;
pub mod app;
pub mod audit;
pub mod builds;
pub mod capsules;
pub mod channels;
pub mod config;
pub mod db;
pub mod events;
pub mod extensions;
pub mod formatters;
pub mod hosts;
pub mod http;
pub mod mail;
pub mod metrics;
pub mod oauth;
pub mod passwords;
pub mod ratelimit;
pub mod server;
pub mod sessions;
pub mod teams;
#[cfg(feature = "test-support")]
pub mod test_support;
pub mod tokens;

pub use app::App;
pub use config::Config;
pub use server::{run, Builder, RunningServer, StartError};
pub use wrenn_extension_api::ServerContext;

/// Embedded migrations (`migrations/` at the repository root).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");
