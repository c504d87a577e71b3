//! [`App`]: the control plane's typed application state, the axum state of every core route.
//!
//! Every service core needs is a field here, built once by [`crate::Builder::start`]: a
//! missing service is a compile error, not a run-time lookup. Extensions never see this type;
//! they get the [`ServerContext`] inside it (`&app` coerces to `&ServerContext` through
//! `Deref`), and their routers carry that state.

use crate::capsules::settings::CapsuleSettings;
use crate::channels::Channels;
use crate::config::Config;
use crate::events::live::LiveEvents;
use crate::formatters::WasmFormatters;
use crate::hosts::Hosts;
use crate::oauth::OAuthProviders;
use crate::passwords::Passwords;
use crate::sessions::api_keys::ApiKeyCache;
use axum::extract::FromRef;
use std::ops::Deref;
use std::sync::{Arc, Weak};
use tokio_util::task::TaskTracker;
use wrenn_extension_api::{
    AdmissionHook, AuthHook, LimitsProvider, SandboxEventHook, ServerContext, UsageProvider,
};

/// A hook with the name of the extension that supplied it (for logs and refusals).
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
    pub admission: Vec<Named<dyn AdmissionHook>>,
}

impl Hooks {
    /// Every hook the extensions supply, in extension order.
    pub fn of(extensions: &[Box<dyn wrenn_extension_api::Extension>]) -> Self {
        fn push<T: ?Sized>(list: &mut Vec<Named<T>>, extension: &str, hook: Option<Arc<T>>) {
            if let Some(hook) = hook {
                list.push(Named {
                    extension: extension.to_string(),
                    hook,
                });
            }
        }
        let mut hooks = Hooks::default();
        for ext in extensions {
            let name = ext.name();
            push(&mut hooks.auth, name, ext.auth_hook());
            push(&mut hooks.sandbox_events, name, ext.sandbox_event_hook());
            push(&mut hooks.limits, name, ext.limits_provider());
            push(&mut hooks.usage, name, ext.usage_provider());
            push(&mut hooks.admission, name, ext.admission_hook());
        }
        hooks
    }
}

/// Core's services, each a typed field.
pub struct Services {
    /// What extensions see: PostgreSQL, Redis, mailer, sessions, public configuration.
    pub ctx: ServerContext,
    pub config: Config,
    pub passwords: Passwords,
    pub oauth: OAuthProviders,
    pub hooks: Hooks,
    pub api_keys: Arc<ApiKeyCache>,
    pub hosts: Arc<Hosts>,
    pub live: Arc<LiveEvents>,
    pub channels: Arc<Channels>,
    /// Present when `WRENN_FORMATTERS_DIR` is set.
    pub formatters: Option<Arc<WasmFormatters>>,
    pub capsules: CapsuleSettings,
    /// Prometheus metrics (`GET /metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Background work started by requests (activity pings, reaping); drained on shutdown.
    pub tasks: TaskTracker,
}

/// A cheap-to-clone handle (one `Arc`) on [`Services`].
#[derive(Clone)]
pub struct App(Arc<Services>);

impl App {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }

    /// Runs `fut` in the background, tracked so shutdown waits for it (up to the drain
    /// deadline). The one way core spawns work that outlives a request.
    pub fn spawn<F>(&self, fut: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.0.tasks.spawn(fut);
    }
}

impl App {
    /// A handle that does not keep the app alive (for services the app itself holds).
    pub fn downgrade(&self) -> Weak<Services> {
        Arc::downgrade(&self.0)
    }

    pub fn upgrade(weak: &Weak<Services>) -> Option<App> {
        weak.upgrade().map(App)
    }
}

impl Deref for App {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

impl Deref for Services {
    type Target = ServerContext;
    fn deref(&self) -> &ServerContext {
        &self.ctx
    }
}

impl FromRef<App> for ServerContext {
    fn from_ref(app: &App) -> ServerContext {
        app.ctx.clone()
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("ctx", &self.0.ctx)
            .finish_non_exhaustive()
    }
}
