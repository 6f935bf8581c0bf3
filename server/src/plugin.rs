//! Plugins: how code outside this crate extends an application without editing it.
//!
//! A [`Plugin`] is loaded once, while the application is built: after the main source is
//! added, before the registered sources are, so that what it registers through
//! [`DataSourceManager::after_add_data_source`] reaches the main source (at once) and
//! every other source (as it is added). It may offer connectors (new source types), add app-level
//! middleware (level 1), hook every data source (resources, actions and middleware of
//! levels 2–4), use the server's modules, and add subcommands to the `manifold` binary. NocoBase's `Plugin.load` is the model;
//! docs/plugins.md walks through one.

use std::sync::Arc;

use manifold_core::data_source::DataSourceManager;
use manifold_core::middleware::{Middleware, Placement};
use manifold_core::{DataSource, DataSourceFactory, Result};

use crate::ServeConfig;
use crate::cache::Cache;
use crate::commands::CliCommand;
use crate::i18n::I18n;
use crate::lifecycle::{AppEvent, AppEventHandler};
use crate::migrations::Migration;
use crate::scheduler::Scheduler;

/// A unit of extension. Only [`Plugin::name`] and [`Plugin::load`] are required.
#[async_trait::async_trait]
pub trait Plugin: Send + Sync {
    /// The plugin's name, unique in one application; errors and logs name the plugin by it.
    fn name(&self) -> &str;

    /// Connectors this plugin offers, each a source type `dataSources:create` accepts. A
    /// type offered twice fails the start, as with [`crate::AppBuilder::connector`].
    fn connectors(&self) -> Vec<Arc<dyn DataSourceFactory>> {
        Vec::new()
    }

    /// The versioned migrations of the plugin's own tables in the main database, numbered
    /// 1, 2, … (docs/plugins.md, "Migrations"). They run after Manifold's, in plugin order,
    /// before any plugin's [`Plugin::load`], so `load` finds its tables made.
    fn migrations(&self) -> Vec<Migration> {
        Vec::new()
    }

    /// Subcommands this plugin adds to the `manifold` binary (`manifold <name>`). A name
    /// taken by a built-in command or another plugin's stops the program before it parses
    /// the command line, naming both.
    fn commands(&self) -> Vec<Arc<dyn CliCommand>> {
        Vec::new()
    }

    /// Registers what the plugin adds. An error stops the application from starting, with
    /// the plugin's name in the message.
    async fn load(&self, app: &mut PluginContext<'_>) -> Result<()>;
}

/// What a plugin's [`Plugin::load`] may reach: the data sources, the main source, the
/// server's modules and the configuration.
pub struct PluginContext<'a> {
    pub(crate) manager: &'a Arc<DataSourceManager>,
    pub(crate) main: &'a Arc<DataSource>,
    pub(crate) cache: &'a Cache,
    pub(crate) scheduler: &'a Scheduler,
    pub(crate) config: &'a ServeConfig,
    pub(crate) i18n: &'a Arc<I18n>,
    /// The application's own stores, for the built-in plugins.
    pub(crate) services: Option<&'a crate::built_in::Services>,
    pub(crate) middleware: Vec<(Arc<dyn Middleware>, Placement)>,
    pub(crate) app_events: Vec<(AppEvent, AppEventHandler)>,
}

impl PluginContext<'_> {
    /// The data-source manager: [`DataSourceManager::after_add_data_source`] to define
    /// resources and actions on every source, [`DataSourceManager::use_middleware`] for
    /// middleware that runs on every source's requests.
    pub fn data_sources(&self) -> &Arc<DataSourceManager> {
        self.manager
    }

    /// The main data source (`main`): its resource manager and ACL are where the
    /// plugin's own resources and their permissions go.
    pub fn main(&self) -> &Arc<DataSource> {
        self.main
    }

    /// The shared cache (in process, or Redis when configured).
    pub fn cache(&self) -> &Cache {
        self.cache
    }

    /// The scheduler: jobs on cron expressions, each tick run once across the replicas
    /// that share the main database. Jobs start with the application.
    pub fn scheduler(&self) -> &Scheduler {
        self.scheduler
    }

    /// The service's configuration.
    pub fn config(&self) -> &ServeConfig {
        self.config
    }

    /// The message catalogues: `add_messages(locale, ftl)` adds the plugin's own, so that
    /// its errors ([`manifold_core::Error::with_message_id`]) are answered in the
    /// client's language; `translate` words its own answers. Keep a clone to translate
    /// while serving.
    pub fn i18n(&self) -> &Arc<I18n> {
        self.i18n
    }

    /// Adds app-level middleware (level 1), which runs for every request. Its placement is
    /// checked when the application is assembled; one that names a tag nobody has, or
    /// makes a cycle, fails the start with the plugin's name.
    pub fn use_middleware(&mut self, middleware: Arc<dyn Middleware>, placement: Placement) {
        self.middleware.push((middleware, placement));
    }

    /// Runs `handler` at an application event (`beforeStart`, `afterStart`, `beforeStop`,
    /// `afterStop`), given the application. A failing `beforeStart` handler stops the
    /// start with the plugin's name; the others' failures are logged.
    pub fn on<F, Fut>(&mut self, event: AppEvent, handler: F)
    where
        F: Fn(Arc<crate::App>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        self.app_events
            .push((event, Arc::new(move |app| Box::pin(handler(app)))));
    }
}
