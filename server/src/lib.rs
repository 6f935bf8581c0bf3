//! The Manifold service: configuration, the application chain, the HTTP endpoint and the
//! main data source. The `manifold` binary is a thin wrapper around [`serve`].

pub mod app;
pub mod auth;
pub mod built_in;
pub mod cache;
pub mod changes;
pub mod collections;
pub mod commands;
pub mod config;
pub mod connection_budget;
pub mod data_sources;
pub mod declarations;
pub mod http;
pub mod i18n;
pub mod launcher;
pub mod lifecycle;
pub mod main_db;
pub mod migrations;
pub mod openapi;
pub mod plugin;
mod pruning;
pub mod relation_fields;
pub mod scheduler;
pub mod telemetry;

use std::sync::Arc;

use manifold_core::data_source::{DataSourceManager, DataSourceSettings};
use manifold_core::{Acl, DataSource, DataSourceFactory, Error, Result};

pub use app::App;
/// The `clap` this crate is built with, for [`CliCommand::command`]: a plugin that uses it
/// builds its commands with the same version as the `manifold` command tree.
pub use clap;
pub use commands::{CliCommand, CommandContext};
pub use config::{MigrateConfig, ServeConfig};
pub use launcher::Manifold;
pub use plugin::{Plugin, PluginContext};

/// The connectors the service offers, one factory per source type (`type` in
/// `dataSources:create`). Add your connector here, one line (docs/architecture.md,
/// "Adding a connector").
pub fn connectors() -> Vec<Arc<dyn DataSourceFactory>> {
    vec![
        Arc::new(manifold_sqlite::SqliteFactory),
        Arc::new(manifold_postgres::PostgresFactory),
        Arc::new(manifold_mysql::MySqlFactory::mysql()),
        Arc::new(manifold_mysql::MySqlFactory::mariadb()),
        Arc::new(manifold_mssql::MssqlFactory),
        Arc::new(manifold_mongo::MongoFactory),
    ]
}

/// Builds the application for `config` with the built-in [`connectors`]: see
/// [`AppBuilder::build`].
pub async fn build_app(config: &ServeConfig) -> Result<Arc<App>> {
    AppBuilder::new(config).build().await
}

/// The plugins every application loads, before any a caller adds: the stock binary is
/// composed of them ([`built_in`]).
pub fn built_in_plugins() -> Vec<Arc<dyn Plugin>> {
    built_in::plugins()
}

/// What an application is built from: its configuration, the connectors it offers (the
/// built-in [`connectors`] and any a caller adds) and its plugins (the
/// [`built_in_plugins`] and any a caller adds). Code outside this crate adds its own here
/// rather than editing the server.
pub struct AppBuilder<'a> {
    config: &'a ServeConfig,
    factories: Vec<Arc<dyn DataSourceFactory>>,
    plugins: Vec<Arc<dyn Plugin>>,
    /// Off for a command's application: a command that runs for a second must not take a
    /// tick of a job from the replicas.
    jobs: bool,
}

impl<'a> AppBuilder<'a> {
    /// An application for `config` offering the built-in [`connectors`] and loading the
    /// [`built_in_plugins`].
    pub fn new(config: &'a ServeConfig) -> Self {
        Self {
            config,
            factories: connectors(),
            plugins: built_in_plugins(),
            jobs: true,
        }
    }

    /// The application of a `manifold` subcommand ([`CliCommand`]): built the same way,
    /// but its scheduled jobs never start.
    pub(crate) fn without_jobs(mut self) -> Self {
        self.jobs = false;
        self
    }

    /// Also loads `plugin`, after the plugins added before it. Two plugins of one name
    /// fail [`AppBuilder::build`].
    pub fn plugin(mut self, plugin: Arc<dyn Plugin>) -> Self {
        self.plugins.push(plugin);
        self
    }

    /// Also offers the source type of `factory`. A type offered twice fails
    /// [`AppBuilder::build`]: silently preferring one connector would hide the other.
    pub fn connector(mut self, factory: Arc<dyn DataSourceFactory>) -> Self {
        self.factories.push(factory);
        self
    }

    /// Opens the main database, brings its schema to this version (or checks it is,
    /// `--migrations`), introspects it, and wires the default actions and the
    /// `collections` resource of every source through `after_add_data_source`.
    pub async fn build(self) -> Result<Arc<App>> {
        let manager = DataSourceManager::new();
        check_plugin_names(&self.plugins)?;
        let offered = self.plugins.iter().flat_map(|p| p.connectors());
        for factory in self.factories.into_iter().chain(offered) {
            if manager.factory(factory.kind()).is_ok() {
                return Err(Error::internal(format!(
                    "two connectors offer the data source type {:?}",
                    factory.kind()
                )));
            }
            manager.register_factory(factory);
        }
        assemble(self.config, manager, &self.plugins, self.jobs).await
    }
}

/// Refuses two plugins of one name: their migrations and errors are told apart by it.
fn check_plugin_names(plugins: &[Arc<dyn Plugin>]) -> Result<()> {
    let mut names = std::collections::HashSet::new();
    for plugin in plugins {
        if !names.insert(plugin.name()) {
            return Err(Error::internal(format!(
                "two plugins are named {:?}",
                plugin.name()
            )));
        }
    }
    Ok(())
}

/// Each plugin's migrations, in plugin order, for [`migrations::run`].
fn plugin_migrations(plugins: &[Arc<dyn Plugin>]) -> Vec<migrations::PluginMigrations> {
    plugins
        .iter()
        .map(|plugin| migrations::PluginMigrations {
            plugin: plugin.name().to_owned(),
            migrations: plugin.migrations(),
        })
        .collect()
}

/// [`AppBuilder::build`] once the connectors are registered.
async fn assemble(
    config: &ServeConfig,
    manager: Arc<DataSourceManager>,
    plugins: &[Arc<dyn Plugin>],
    jobs: bool,
) -> Result<Arc<App>> {
    // First: a bad host rule, a bad cache option or an unreachable Redis stops the start
    // before the main database is touched.
    let hosts = data_sources::HostPolicy::parse(&config.allowed_hosts, &config.denied_hosts)
        .map_err(|e| Error::bad_request(format!("--allowed-hosts/--denied-hosts: {e}")))?
        .allowing_unix_sockets(config.allow_unix_sockets);
    let cache = cache::Cache::open(&cache::CacheOptions::from_config(config)).await?;
    tracing::info!(cache = %cache.describe(), "cache ready");
    let i18n = Arc::new(
        i18n::I18n::built_in()
            .map_err(|e| Error::internal(format!("the built-in messages: {e}")))?,
    );
    let (main, migrated) = open_main(config, &plugin_migrations(plugins)).await?;
    let scheduler = scheduler::Scheduler::new(&main)?;
    // Before any shared state is read: a change made meanwhile is then applied at start.
    let changes = changes::ChangeFeed::open(&main, config.change_feed_options()).await?;
    let declarations = declarations::DeclarationStore::open(&main).await?;
    declarations.apply(&main).await?;
    // A file main database (SQLite) serves one process: each source's total is then its
    // own.
    let shared_main = !manager.factory(main.kind())?.file_based();
    let budget = shared_main.then(|| {
        let budget = connection_budget::ReplicaBudget::new(main.clone());
        manager.set_connection_budget(budget.clone());
        budget.start();
        budget
    });
    manager.add(main.clone()).await?;
    // After main, before the registered sources, so that the plugins' hooks reach every
    // source; the built-in ones first (auth's guard before anyone's grants).
    let services = built_in::Services {
        hosts,
        declarations,
        changes: changes.clone(),
        auth: std::sync::OnceLock::new(),
        registry: std::sync::OnceLock::new(),
    };
    let mut loaded = Vec::new();
    for plugin in plugins {
        let mut context = PluginContext {
            manager: &manager,
            main: &main,
            cache: &cache,
            scheduler: &scheduler,
            config,
            i18n: &i18n,
            services: Some(&services),
            middleware: Vec::new(),
            app_events: Vec::new(),
        };
        plugin
            .load(&mut context)
            .await
            .map_err(|e| Error::new(e.kind(), format!("plugin {}: {e}", plugin.name())))?;
        loaded.push((plugin.name(), context.middleware, context.app_events));
    }
    // Every plugin has loaded (the built-in `auth` wrote root and the roles; a plugin may
    // seed rows of its own): the next process to start may go.
    migrated.release().await;
    if let Some(registry) = services.registry.get() {
        registry.load_all().await?;
    }
    changes.start()?;
    let app = App::new(manager, cache, scheduler, i18n);
    for (name, middleware, events) in loaded {
        for (middleware, placement) in middleware {
            app.use_middleware(middleware, placement)
                .map_err(|e| Error::internal(format!("plugin {name}: middleware: {e}")))?;
        }
        for (event, handler) in events {
            app.events().add(event, &format!("plugin {name}"), handler);
        }
    }
    if let Some(auth) = services.auth.into_inner() {
        app.set_auth(auth);
    }
    if let Some(budget) = budget {
        app.set_connection_budget(budget);
    }
    if jobs {
        app.scheduler().start();
    }
    Ok(Arc::new(app))
}

/// Where SQLite sources registered over HTTP live: beside a SQLite main database, else
/// under `./data`.
pub(crate) fn sqlite_sources_dir(config: &ServeConfig) -> std::path::PathBuf {
    let main_file = config
        .main_db
        .strip_prefix("sqlite://")
        .or_else(|| config.main_db.strip_prefix("sqlite:"))
        .map(|p| p.split('?').next().unwrap_or(p))
        .filter(|p| !p.is_empty() && !p.starts_with(':'));
    match main_file.and_then(|p| std::path::Path::new(p).parent()) {
        Some(dir) => dir.join("sources"),
        None => std::path::PathBuf::from("data/sources"),
    }
}

/// Opens the main database named by `--main-db` (a SQLite file is created with its
/// directory), runs or checks its migrations and the plugins', and loads it as the source
/// `main`, so that it finds every table they made. The migration lock is still held (see
/// [`migrations::Migrated::release`]).
async fn open_main(
    config: &ServeConfig,
    plugins: &[migrations::PluginMigrations],
) -> Result<(Arc<DataSource>, migrations::Migrated)> {
    let settings = DataSourceSettings {
        default_page_size: 20,
        // `_` names on main are Manifold's and its plugins' tables (docs/plugins.md).
        internal_prefix: "_",
        ..config.source_settings()
    };
    let database =
        main_db::MainDatabase::open(&config.main_db, config.main_db_max_connections).await?;
    let migrated = migrations::run(
        &database,
        config.migrations,
        config.migration_lock_timeout,
        plugins,
    )
    .await?;
    let main = DataSource::load(
        "main",
        database.kind(),
        database.connector(),
        Acl::closed(),
        settings,
    )
    .await?;
    Ok((main, migrated))
}

/// `manifold migrate`: brings the main database's schema to this binary's version, then
/// the tables of the [`built_in_plugins`] and of `plugins` to theirs, and returns
/// Manifold's versions before and after.
pub async fn migrate(config: &MigrateConfig, plugins: &[Arc<dyn Plugin>]) -> Result<(i64, i64)> {
    let plugins: Vec<_> = built_in_plugins()
        .into_iter()
        .chain(plugins.iter().cloned())
        .collect();
    check_plugin_names(&plugins)?;
    // The migrations' own connection and introspection's: no more are needed.
    let database = main_db::MainDatabase::open(&config.main_db, 2).await?;
    let outcome = migrations::run(
        &database,
        migrations::MigrationMode::Apply,
        config.migration_lock_timeout,
        &plugin_migrations(&plugins),
    )
    .await;
    let versions = match outcome {
        Ok(migrated) => {
            let versions = (migrated.from, migrated.to);
            migrated.release().await;
            Ok(versions)
        }
        Err(e) => Err(e.into()),
    };
    database.close().await;
    versions
}

/// Runs the service until Ctrl-C or SIGTERM, then drains requests and closes every pool.
///
/// The listener is bound first, so `/health/live` and `/health/ready` answer while the
/// main database opens; API requests that arrive meanwhile wait for it.
pub async fn serve(config: ServeConfig) -> std::io::Result<()> {
    serve_with(config, Vec::new()).await
}

/// [`serve`], also loading `plugins` after the [`built_in_plugins`].
pub async fn serve_with(config: ServeConfig, plugins: Vec<Arc<dyn Plugin>>) -> std::io::Result<()> {
    serve_until(config, plugins, shutdown_signal()).await
}

/// [`serve_with`], stopping when `shutdown` completes instead of at a signal. It emits the
/// application events: `beforeStart` once the app is built (a failure stops the start),
/// `afterStart` once API requests are served, `beforeStop` when `shutdown` completes and
/// `afterStop` after the last request, before the pools close.
pub async fn serve_until(
    config: ServeConfig,
    plugins: Vec<Arc<dyn Plugin>>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let options = http::HttpOptions::from_config(&config)
        .map_err(|e| std::io::Error::other(format!("cannot start: {e}")))?;
    let server = http::Server::bind(config.listen).await?;
    tracing::info!(listen = %server.local_addr, "manifold listening");
    let slot = http::AppSlot::starting();
    let metrics = Arc::new(telemetry::Metrics::new());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let metrics_server = match config.metrics_listen {
        Some(addr) => {
            let server = http::Server::bind(addr).await?;
            tracing::info!(listen = %server.local_addr, "metrics listening");
            let mut stopped = stopped.clone();
            Some(tokio::spawn(server.serve_metrics(
                slot.clone(),
                metrics.clone(),
                options.clone(),
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            )))
        }
        None => None,
    };
    let stopping = slot.clone();
    let delay = config.shutdown_delay;
    let running = server.serve(slot.clone(), metrics, options, async move {
        shutdown.await;
        // Out of the load balancer first, still serving; then no new connections.
        stopping.begin_stopping();
        if let Some(app) = stopping.get() {
            // Cannot fail: only `beforeStart` handlers' errors are returned.
            let _ = app
                .events()
                .emit(lifecycle::AppEvent::BeforeStop, &app)
                .await;
        }
        if !delay.is_zero() {
            tracing::info!(delay = ?delay, "not ready; serving on until the delay ends");
            tokio::time::sleep(delay).await;
        }
        stop.send_replace(true);
    });
    tokio::pin!(running);
    let app = tokio::select! {
        built = plugins.into_iter().fold(AppBuilder::new(&config), AppBuilder::plugin).build() => {
            built.map_err(|e| std::io::Error::other(format!("cannot start: {e}")))?
        }
        stopped = &mut running => return stopped,
    };
    let started = async {
        app.events()
            .emit(lifecycle::AppEvent::BeforeStart, &app)
            .await
            .map_err(|e| std::io::Error::other(format!("cannot start: {e}")))
    };
    let stopped_early = tokio::select! {
        started = started => { started?; None }
        stopped = &mut running => Some(stopped),
    };
    if let Some(stopped) = stopped_early {
        app.close().await;
        return stopped;
    }
    slot.set(app.clone());
    tracing::info!("manifold ready");
    let _ = app
        .events()
        .emit(lifecycle::AppEvent::AfterStart, &app)
        .await;
    let result = running.await;
    if let Some(metrics_server) = metrics_server {
        let _ = metrics_server.await;
    }
    let _ = app
        .events()
        .emit(lifecycle::AppEvent::AfterStop, &app)
        .await;
    app.close().await;
    result
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
