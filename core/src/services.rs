//! Core's own services, stored in the [`ServerContext`] as one typed service.

use crate::config::Config;
use crate::oauth::OAuthProviders;
use crate::passwords::Passwords;
use std::sync::Arc;
use wrenn_extension_api::{
    AuthHook, LimitsProvider, SandboxEventHook, ServerContext, UsageProvider,
};

/// A hook with the name of the extension that supplied it (for logs).
pub struct Named<T: ?Sized> {
    pub extension: String,
    pub hook: Arc<T>,
}

/// Extension hooks in registration order.
#[derive(Default)]
pub struct Hooks {
    pub auth: Vec<Named<dyn AuthHook>>,
    pub sandbox_events: Vec<Named<dyn SandboxEventHook>>,
    pub limits: Vec<Named<dyn LimitsProvider>>,
    pub usage: Vec<Named<dyn UsageProvider>>,
}

/// Core services reachable from every handler through [`core`].
pub struct Core {
    pub config: Config,
    pub passwords: Passwords,
    pub oauth: OAuthProviders,
    pub hooks: Hooks,
}

/// Core's services from the context.
///
/// # Panics
/// If called on a context not built by [`crate::Builder`] (a programming error).
pub fn core(ctx: &ServerContext) -> Arc<Core> {
    ctx.service::<Core>()
        .expect("the server context carries core services")
}
