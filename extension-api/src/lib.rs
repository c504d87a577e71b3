//! The stable surface for extending the Wrenn control plane. The extension author's guide
//! follows the layout below (it is `README.md`, compiled here so its examples are tested).
//!
//! # Layout
//!
//! - [`extension`]: the [`Extension`] trait an extension implements, [`BackgroundWorker`],
//!   [`Middleware`] and the `inventory` registration ([`ExtensionFactory`], [`register_extension!`]).
//! - [`hooks`]: optional hook traits ([`AuthHook`], [`SandboxEventHook`], [`LimitsProvider`],
//!   [`UsageProvider`], [`AdmissionHook`]) with the failure semantics of API.md "Extension hook
//!   semantics"; [`Admission`] / [`Refusal`], [`HookError`] (from any error).
//! - [`context`]: [`ServerContext`], the cheap-to-clone handle on the services an extension
//!   may use, each a typed accessor (PostgreSQL pool, Redis, mailer, sessions, the capsule
//!   facade, public configuration, the shutdown token).
//! - [`capsules`]: [`CapsuleService`], the capsule facade (usage, list, get, create, pause,
//!   resume, destroy, metrics, and a byte stream to a port inside a capsule); what it answers,
//!   [`CapsuleSummary`] with its typed [`CapsuleState`].
//! - [`migrations`]: [`Migration`], schema changes an extension ships, in its own schema.
//! - [`auth`]: who is calling ([`Principal`], [`Role`]), the [`SessionService`] core implements,
//!   and the axum extractors extension routes use as guards ([`RequireSession`],
//!   [`RequireSessionOrApiKey`], [`RequireAdmin`], [`RequireTeamRole`]); cookie and header
//!   name constants.
//! - [`error`]: [`ApiError`], the single error envelope `{"error":{"code","message"}}`, and
//!   extractors ([`ApiJson`], [`ApiPath`], [`ApiQuery`]) whose rejections use that envelope.
//! - [`ids`]: wire ids, `prefix_` + 25 base36 digits of the database UUID.
//! - [`mail`]: the [`Mailer`] trait and [`Email`].
//!
//! Data flows one way: core builds a [`ServerContext`], hands it to each extension's
//! `register_routes` / `background_workers`, and calls hooks at the points API.md names.
//! Extensions depend on this crate only, never on core internals.

#![doc = include_str!("../README.md")]

pub mod auth;
pub mod capsules;
pub mod context;
pub mod error;
pub mod extension;
pub mod hooks;
pub mod ids;
pub mod mail;
pub mod migrations;

pub use async_trait::async_trait;
pub use auth::{
    roles, ApiKeyPrincipal, IssuedSession, Principal, RequireAdmin, RequireSession,
    RequireSessionOrApiKey, RequireTeamAdmin, RequireTeamOwner, RequireTeamRole, Role,
    SessionPrincipal, SessionService, API_KEY_HEADER, CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE,
};
pub use capsules::{
    CapsuleMetric, CapsuleService, CapsuleSpec, CapsuleState, CapsuleSummary, PortStream,
    UnknownCapsuleState,
};
pub use context::{PublicConfig, ServerContext, ServerContextParts};
pub use error::{ApiError, ApiJson, ApiPath, ApiQuery};
pub use extension::{
    collect_registered, BackgroundWorker, Extension, ExtensionFactory, Middleware,
};
pub use hooks::{
    AccountDeletion, Admission, AdmissionHook, AdmissionRequest, AuthHook, EffectiveLimits,
    HookError, LimitVerdict, LimitsProvider, NewAccount, Refusal, SandboxEvent, SandboxEventHook,
    TeamUsage, UsageProvider,
};
pub use mail::{Email, MailError, Mailer};
pub use migrations::Migration;

/// Re-exported so extensions name the same versions core uses.
pub use {axum, chrono, inventory, redis, serde, serde_json, sqlx, tokio_util, tracing, uuid};
