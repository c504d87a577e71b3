//! [`Builder`] and [`run`]: start-up, serving and graceful shutdown.

use crate::accounts;
use crate::app::{App, Hooks, Services};
use crate::config::{Cli, Command, Config};
use crate::http;
use crate::mail;
use crate::oauth::OAuthProviders;
use crate::passwords::Passwords;
use crate::sessions::api_keys::ApiKeyCache;
use crate::sessions::Sessions;
use axum::extract::{Request, State};
use axum::middleware::Next;
use clap::Parser;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wrenn_extension_api::{
    collect_registered, BackgroundWorker, Extension, PublicConfig, ServerContext,
    ServerContextParts,
};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Config(Vec<String>),
    #[error("cannot connect to PostgreSQL: {0}")]
    Database(#[source] sqlx::Error),
    #[error("cannot apply migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot connect to Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("extension error: {0}")]
    Extension(String),
    #[error("server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Composes a control plane: configuration, version and extensions.
///
/// Extensions given with [`Builder::extension`] come first, in call order; then those
/// registered through `inventory`, sorted by name (unless [`Builder::without_inventory`]).
/// Two extensions with the same name are a start-up error.
pub struct Builder {
    version: String,
    config: Option<Config>,
    extensions: Vec<Box<dyn Extension>>,
    inventory: bool,
    listener: Option<std::net::TcpListener>,
    hosts: Option<crate::hosts::HostsConfig>,
    formatters: Option<crate::channels::format::Formatters>,
    command_line: bool,
    logging: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    pub fn new() -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION").to_string(),
            config: None,
            extensions: Vec::new(),
            inventory: true,
            listener: None,
            hosts: None,
            formatters: None,
            command_line: false,
            logging: false,
        }
    }

    /// [`run`] reads `.env` and the process's command line (subcommands `serve`, `migrate`,
    /// `dev-host-token`, and every flag of [`Config`]) as `wrenn-cp` does. Off by default.
    pub fn command_line(mut self) -> Self {
        self.command_line = true;
        self
    }

    /// [`run`] installs a global `tracing` subscriber (`RUST_LOG`, default `info`). Off by
    /// default: an embedding program usually has its own.
    pub fn logging(mut self) -> Self {
        self.logging = true;
        self
    }

    /// Named chat formatters channels may use (`config.formatter`); default: the built-in
    /// text only.
    pub fn formatters(mut self, formatters: crate::channels::format::Formatters) -> Self {
        self.formatters = Some(formatters);
        self
    }

    /// Host-side tunables (monitor intervals, scheduler reserves); default: from the
    /// environment ([`crate::hosts::HostsConfig::from_env`]).
    pub fn hosts_config(mut self, hosts: crate::hosts::HostsConfig) -> Self {
        self.hosts = Some(hosts);
        self
    }

    /// Version reported by `GET /health` and the OpenAPI document.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Uses this configuration instead of reading the environment and command line.
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Adds an extension (ordered before `inventory` ones).
    pub fn extension(mut self, extension: impl Extension) -> Self {
        self.extensions.push(Box::new(extension));
        self
    }

    /// Ignores extensions registered through `inventory`.
    pub fn without_inventory(mut self) -> Self {
        self.inventory = false;
        self
    }

    /// Serves on an already bound listener (tests bind 127.0.0.1:0).
    pub fn listener(mut self, listener: std::net::TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    fn ordered_extensions(&mut self) -> Result<Vec<Box<dyn Extension>>, StartError> {
        let mut all = std::mem::take(&mut self.extensions);
        if self.inventory {
            all.extend(collect_registered());
        }
        let mut seen = HashSet::new();
        for ext in &all {
            if !seen.insert(ext.name().to_string()) {
                return Err(StartError::Extension(format!(
                    "two extensions are named {:?}",
                    ext.name()
                )));
            }
        }
        Ok(all)
    }

    /// Connects everything, binds and starts serving; returns a handle for shutdown.
    pub async fn start(mut self) -> Result<RunningServer, StartError> {
        let config = match self.config.take() {
            Some(c) => c,
            None => Config::from_env(),
        };
        config.validate().map_err(StartError::Config)?;
        let extensions = self.ordered_extensions()?;

        let db = connect_db(&config).await?;
        crate::MIGRATOR.run(&db).await?;
        let redis_client = redis::Client::open(config.redis_url.as_str())?;
        let redis = redis::aio::ConnectionManager::new(redis_client.clone()).await?;

        let secure = config.public_url.starts_with("https://");
        let api_keys = ApiKeyCache::new(redis_client.clone());
        let tasks = TaskTracker::new();
        let sessions = Arc::new(Sessions::new(
            db.clone(),
            redis.clone(),
            secure,
            api_keys.clone(),
            tasks.clone(),
        ));
        let shutdown = CancellationToken::new();
        let capsules = Arc::new(crate::capsules::facade::CoreCapsules::default());
        let ctx = ServerContext::new(ServerContextParts {
            db,
            redis,
            mailer: mail::from_config(&config),
            sessions,
            capsules: capsules.clone(),
            jwt_secret: Arc::from(config.jwt_secret.as_bytes()),
            config: PublicConfig::new(
                self.version.clone(),
                config.public_base().to_string(),
                config.domain.clone(),
            ),
            shutdown: shutdown.clone(),
        });
        crate::extensions::migrate(ctx.db(), &extensions).await?;

        let hooks = Hooks::of(&extensions);
        let hook_consumers: Vec<(String, Arc<dyn wrenn_extension_api::SandboxEventHook>)> = hooks
            .sandbox_events
            .iter()
            .map(|n| (n.extension.clone(), n.hook.clone()))
            .collect();
        let oauth = OAuthProviders::from_config(&config)
            .map_err(|e| StartError::Config(vec![e.to_string()]))?;
        let hosts_config = match self.hosts.take() {
            Some(h) => h,
            None => config.hosts.to_config(),
        };
        let encryption_key = config
            .encryption_key_bytes()
            .ok_or_else(|| StartError::Config(vec!["WRENN_ENCRYPTION_KEY is invalid".into()]))?;
        let hosts = crate::hosts::Hosts::init(ctx.db(), &encryption_key, hosts_config)
            .await
            .map_err(|e| StartError::Config(vec![format!("internal CA: {e}")]))?;
        let live = crate::events::live::LiveEvents::new(redis_client.clone());
        let mut formatters = self.formatters.take().unwrap_or_default();
        let wasm = match &config.formatters.dir {
            Some(dir) => {
                let wasm = crate::formatters::WasmFormatters::new(dir, config.formatters.limits())
                    .map_err(|e| StartError::Config(vec![format!("formatter host: {e}")]))?;
                wasm.reload().await;
                formatters = formatters.with_source(wasm.clone());
                Some(wasm)
            }
            None => None,
        };
        let channels = Arc::new(crate::channels::Channels::new(
            encryption_key,
            config.events.channels(),
            formatters,
        ));
        let app = App::new(Services {
            ctx,
            passwords: Passwords::new(config.insecure_test_password_hashing),
            oauth,
            hooks,
            api_keys,
            hosts,
            live,
            channels: channels.clone(),
            formatters: wasm.clone(),
            capsules: config.capsules.clone(),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            tasks: tasks.clone(),
            config: config.clone(),
        });
        capsules.bind(&app);

        let router = build_router(&app, &extensions);

        let listener = match self.listener.take() {
            Some(l) => {
                l.set_nonblocking(true).map_err(StartError::Serve)?;
                TcpListener::from_std(l).map_err(StartError::Serve)?
            }
            None => {
                let addr = config
                    .listen_socket_addr()
                    .map_err(|e| StartError::Config(vec![e]))?;
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind {
                        addr: addr.to_string(),
                        source,
                    })?
            }
        };
        let addr = listener.local_addr().map_err(StartError::Serve)?;
        tracing::info!(%addr, version = %self.version, extensions = extensions.len(), "Control plane listening.");

        let tracker = tasks;
        let token = shutdown.clone();
        let server = tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await
        });

        let ctx = app.ctx.clone();
        for worker in core_workers(&app, &config) {
            spawn_worker(&tracker, &shutdown, worker);
        }
        // Groups exist before the server answers, so no event published from now on is missed
        // by a consumer that has not connected yet.
        let mut groups = vec![crate::channels::dispatch::GROUP.to_string()];
        groups.extend(
            hook_consumers
                .iter()
                .map(|(e, _)| crate::events::hooks::group_name(e)),
        );
        for group in &groups {
            crate::events::consumer::Consumer::ensure_group(&mut ctx.redis(), group).await?;
        }
        let dispatcher = crate::channels::dispatch::Dispatcher::new(
            channels,
            ctx.db().clone(),
            ctx.redis(),
            app.metrics.clone(),
        );
        for worker in dispatcher.workers(redis_client.clone(), config.events.consumer()) {
            spawn_worker(&tracker, &shutdown, worker);
        }
        if let Some(wasm) = &wasm {
            let every = Duration::from_millis(config.formatters.poll_ms);
            spawn_worker(&tracker, &shutdown, wasm.worker(every));
        }
        for (extension, hook) in hook_consumers {
            tracing::info!(extension = %extension, "Starting the sandbox event hook consumer.");
            let worker = crate::events::hooks::worker(
                &app,
                redis_client.clone(),
                config.events.consumer(),
                &extension,
                hook,
            );
            spawn_worker(&tracker, &shutdown, worker);
        }
        for ext in &extensions {
            for worker in ext.background_workers(&ctx) {
                tracing::info!(extension = ext.name(), worker = %worker.name, "Starting worker.");
                spawn_worker(&tracker, &shutdown, worker);
            }
        }
        Ok(RunningServer {
            extension_names: extensions.iter().map(|e| e.name().to_string()).collect(),
            addr,
            app,
            shutdown,
            tracker,
            server,
        })
    }
}

/// Core's own background workers (one line each); extension workers start after these.
fn core_workers(ctx: &App, config: &Config) -> Vec<BackgroundWorker> {
    let mut workers = vec![
        accounts::purge_worker(ctx, config),
        crate::capsules::stats::sampler_worker(ctx),
        crate::capsules::metrics::flush_worker(ctx),
        crate::hosts::monitor::worker(ctx),
        crate::events::live::worker(ctx),
        crate::sessions::api_keys::revocation_worker(ctx),
    ];
    workers.extend(crate::builds::queue::workers(ctx));
    workers
}

fn spawn_worker(tracker: &TaskTracker, shutdown: &CancellationToken, worker: BackgroundWorker) {
    let name = worker.name.clone();
    let fut = (worker.run)(shutdown.child_token());
    tracker.spawn(async move {
        fut.await;
        tracing::debug!(worker = %name, "Worker stopped.");
    });
}

/// A pooled connection idle at least this long is pinged before it is handed out.
const PING_IDLE_CONNECTIONS_AFTER: Duration = Duration::from_secs(30);

async fn connect_db(config: &Config) -> Result<sqlx::PgPool, StartError> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(10))
        // sqlx pings every connection when it returns to the pool, and by default once more
        // when it leaves it: two extra round trips around each query. The second ping only
        // matters for a connection that sat idle long enough to have been dropped by the
        // server or the network; a busy one was checked a moment ago on release.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IDLE_CONNECTIONS_AFTER {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect(&config.database_url)
        .await
        .map_err(StartError::Database)
}

/// The core application (no extensions) over `app`, for in-process tests with
/// `tower::ServiceExt::oneshot`.
pub fn core_app(app: &App) -> axum::Router {
    build_router(app, &[])
}

/// Core routes wrapped by extension middleware (first extension outermost), beside each
/// extension's own routes (their state attached here, once), then the server-wide layers.
fn build_router(app: &App, extensions: &[Box<dyn Extension>]) -> axum::Router {
    let mut router = http::api_router();
    for ext in extensions.iter().rev() {
        if let Some(mw) = ext.middleware() {
            router = router.layer(axum::middleware::from_fn_with_state(
                app.ctx.clone(),
                move |State(ctx): State<ServerContext>, req: Request, next: Next| {
                    let mw = mw.clone();
                    async move { mw.handle(&ctx, req, next).await }
                },
            ));
        }
    }
    let mut router = router.with_state(app.clone());
    for ext in extensions {
        let routes = ext.register_routes(axum::Router::new(), &app.ctx);
        router = router.merge(routes.with_state(app.ctx.clone()));
    }
    http::finish(router, app.config.web_dir.as_deref())
        .layer(axum::middleware::from_fn_with_state(
            app.metrics.clone(),
            crate::metrics::track,
        ))
        // Outermost: capsule port-proxy hosts never reach the API routes.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            http::proxy::intercept,
        ))
}

/// A started server.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// Extension names in the order they were applied.
    pub extension_names: Vec<String>,
    pub app: App,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    server: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// The cancellation token that stops the server and its workers.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, lets in-flight requests and workers finish, and waits.
    pub async fn shutdown(self) -> Result<(), StartError> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// What extensions see of the running server.
    pub fn ctx(&self) -> &ServerContext {
        &self.app.ctx
    }

    /// Waits until the server stopped (after the token is cancelled).
    pub async fn wait(self) -> Result<(), StartError> {
        let served = self.server.await;
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(self.app.config.drain_deadline(), self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                pending = self.tracker.len(),
                "Background tasks did not finish within the drain deadline; exiting anyway."
            );
        }
        self.app.db().close().await;
        match served {
            Ok(r) => r.map_err(StartError::Serve),
            Err(e) => Err(StartError::Serve(std::io::Error::other(e))),
        }
    }
}

/// Runs the control plane until SIGINT/SIGTERM. The configuration is the builder's, else the
/// environment's; only with [`Builder::command_line`] are `.env` and the process's arguments
/// (`serve`, `migrate`, flags) read, and only with [`Builder::logging`] is a global tracing
/// subscriber installed, so an embedding program keeps both.
pub async fn run(mut builder: Builder) -> Result<(), StartError> {
    if builder.logging {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| "info,sqlx=warn".into());
        let logs = tracing_subscriber::fmt().with_env_filter(filter);
        // `WRENN_LOG_FORMAT=json`: one JSON object per line, for log pipelines.
        let _ = match std::env::var("WRENN_LOG_FORMAT").as_deref() {
            Ok("json") => logs.json().try_init(),
            Ok("text") | Err(_) => logs.try_init(),
            Ok(other) => {
                eprintln!("WRENN_LOG_FORMAT={other:?} is neither text nor json; logging text");
                logs.try_init()
            }
        };
    }
    if builder.config.is_none() && builder.command_line {
        let _ = dotenvy::dotenv();
        let cli = Cli::parse();
        match cli.command {
            Some(Command::Migrate) => return migrate(&cli.config).await,
            Some(Command::DevHostToken) => return dev_host_token(&cli.config).await,
            _ => {}
        }
        builder.config = Some(cli.config);
    }
    let server = builder
        .start()
        .await
        .inspect_err(|e| tracing::error!("{e}"))?;
    let token = server.shutdown_token();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("Shutting down.");
        token.cancel();
    });
    server.wait().await
}

/// `wrenn-cp dev-host-token`: migrates, creates a regular host and prints its registration
/// token on stdout (development mode only).
pub async fn dev_host_token(config: &Config) -> Result<(), StartError> {
    let hosts_config = config.hosts.to_config();
    if !hosts_config.allow_insecure_dev {
        return Err(StartError::Config(vec![
            "dev-host-token needs WRENN_DEV_MODE=1".into(),
        ]));
    }
    let key = config
        .encryption_key_bytes()
        .ok_or_else(|| StartError::Config(vec!["WRENN_ENCRYPTION_KEY is invalid".into()]))?;
    let db = connect_db(config).await?;
    crate::MIGRATOR.run(&db).await?;
    let hosts = crate::hosts::Hosts::init(&db, &key, hosts_config)
        .await
        .map_err(|e| StartError::Config(vec![format!("internal CA: {e}")]))?;
    let token = crate::hosts::registration::dev_host_token(&db, &hosts)
        .await
        .map_err(StartError::Database)?;
    println!("{token}");
    Ok(())
}

/// `wrenn-cp migrate`: applies migrations and exits.
pub async fn migrate(config: &Config) -> Result<(), StartError> {
    if config.database_url.is_empty() {
        return Err(StartError::Config(vec!["DATABASE_URL is not set".into()]));
    }
    let db = connect_db(config).await?;
    crate::MIGRATOR.run(&db).await?;
    tracing::info!("Migrations applied.");
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = ctrl_c => {},
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
