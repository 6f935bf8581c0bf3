use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use serde_json::Value as Json;

use super::peers::SourceTable;
use super::source::{DataSource, DataSourceSettings};
use crate::acl::Acl;
use crate::connection_share::{
    ConnectionBudget, ConnectionShare, SoleProcess, TOTAL_OPTION, declared_total,
};
use crate::connector::Connector;
use crate::declarations::Declarations;
use crate::error::{Error, Result};
use crate::middleware::{Middleware, MiddlewareError, Placement};

/// A place a driver opens connections to, as the driver itself reads the options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectTarget {
    /// A TCP connection to a host name or IP address.
    Tcp {
        /// The name or address, as the driver will resolve it.
        host: String,
        /// The port.
        port: u16,
    },
    /// A Unix-domain socket: the socket file, or the directory PostgreSQL looks for its
    /// socket in.
    UnixSocket(PathBuf),
}

/// Builds connectors of one type (`sqlite`, `postgres`, …) from JSON options.
#[async_trait::async_trait]
pub trait DataSourceFactory: Send + Sync {
    /// The type name clients use in `dataSources:create`.
    fn kind(&self) -> &str;

    /// Every place a connection made with `options` goes to. It must read the options
    /// exactly as [`connect`](Self::connect) does (the same parser, the same defaults):
    /// the operator's host rules are checked against this list before anything connects,
    /// and a list that disagrees with the driver is a way around them. Empty for sources
    /// that open no connection (SQLite files). Bad options give the error `connect` would.
    async fn targets(&self, options: &Json) -> Result<Vec<ConnectTarget>>;

    /// Whether sources of this type are files on this server rather than servers reached
    /// over the network. Registered over HTTP, such a source names a relative `path`,
    /// which the service places under its data directory, and may not give a `url`.
    fn file_based(&self) -> bool {
        false
    }

    /// Connects with `options` (pool created, one connection checked).
    async fn connect(&self, options: &Json) -> Result<Arc<dyn Connector>>;

    /// Connects with `options`, using at most as many connections at once as `share`
    /// allows: the source declared `maxConnectionsTotal`, a total for all replicas
    /// ([`crate::connection_share`]). By default a 400: this type cannot share one.
    async fn connect_shared(
        &self,
        _options: &Json,
        _share: Arc<ConnectionShare>,
    ) -> Result<Arc<dyn Connector>> {
        Err(Error::bad_request(format!(
            "options.{TOTAL_OPTION}: {} sources cannot share a connection total across \
             replicas; use maxConnections, a limit per replica",
            self.kind()
        )))
    }

    /// Checks that `options` reach a database, without keeping anything open.
    async fn test_connection(&self, options: &Json) -> Result<()> {
        self.connect(options).await?.close().await;
        Ok(())
    }
}

/// Where a registered source is in its life: NocoBase's status machine plus `disabled`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSourceStatus {
    /// First load under way.
    Loading,
    /// Serving.
    Loaded,
    /// The first load failed, with the reason.
    LoadingFailed(String),
    /// A reload (refresh or new options) is under way; the old instance keeps serving.
    Reloading,
    /// A reload failed, with the reason; the old instance, if any, keeps serving.
    ReloadingFailed(String),
    /// Switched off by an operator.
    Disabled,
}

impl DataSourceStatus {
    /// The wire name (`loading`, `loading-failed`, …).
    pub fn name(&self) -> &'static str {
        match self {
            DataSourceStatus::Loading => "loading",
            DataSourceStatus::Loaded => "loaded",
            DataSourceStatus::LoadingFailed(_) => "loading-failed",
            DataSourceStatus::Reloading => "reloading",
            DataSourceStatus::ReloadingFailed(_) => "reloading-failed",
            DataSourceStatus::Disabled => "disabled",
        }
    }

    /// The failure reason of the failed states.
    pub fn error_message(&self) -> Option<&str> {
        match self {
            DataSourceStatus::LoadingFailed(m) | DataSourceStatus::ReloadingFailed(m) => Some(m),
            _ => None,
        }
    }
}

/// A hook run for data sources as they are added (and, once, for those already added).
pub type DataSourceHook = Arc<dyn Fn(&Arc<DataSource>) + Send + Sync>;

/// Holds every data source by key; lookups never take a global lock.
#[derive(Default)]
pub struct DataSourceManager {
    /// The sources and their statuses; each added source holds it weakly (its peers).
    table: Arc<SourceTable>,
    factories: DashMap<String, Arc<dyn DataSourceFactory>>,
    before_add: Mutex<Vec<DataSourceHook>>,
    after_add: Mutex<Vec<DataSourceHook>>,
    after_remove: Mutex<Vec<DataSourceHook>>,
    middlewares: Mutex<Vec<(Arc<dyn Middleware>, Placement)>>,
    budget: std::sync::RwLock<Option<Arc<dyn ConnectionBudget>>>,
    read_actions: std::sync::RwLock<Vec<String>>,
}

impl DataSourceManager {
    /// An empty manager.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Sets who sizes the shares of sources that declare a connection total for all
    /// replicas; until set, each such source gets its whole total ([`SoleProcess`]).
    pub fn set_connection_budget(&self, budget: Arc<dyn ConnectionBudget>) {
        *self.budget.write().unwrap_or_else(|e| e.into_inner()) = Some(budget);
    }

    fn connection_budget(&self) -> Arc<dyn ConnectionBudget> {
        self.budget
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| Arc::new(SoleProcess))
    }

    /// Declares that the actions named `name` only read, so that they may be sent with
    /// `GET`. Any other action is taken to change something and must come by `POST`: an
    /// action nobody declared cannot be triggered by a link or an image.
    pub fn declare_read_action(&self, name: &str) {
        let mut reads = self.read_actions.write().unwrap_or_else(|e| e.into_inner());
        if !reads.iter().any(|r| r == name) {
            reads.push(name.to_owned());
        }
    }

    /// Whether actions named `name` only read: `list`, `get`, and those declared with
    /// [`DataSourceManager::declare_read_action`].
    pub fn is_read_action(&self, name: &str) -> bool {
        matches!(name, "list" | "get")
            || self
                .read_actions
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|r| r == name)
    }

    /// Makes type `factory.kind()` available to [`DataSourceManager::build`].
    pub fn register_factory(&self, factory: Arc<dyn DataSourceFactory>) {
        self.factories.insert(factory.kind().to_owned(), factory);
    }

    /// The factory of type `kind`, or a 400 naming the known types.
    pub fn factory(&self, kind: &str) -> Result<Arc<dyn DataSourceFactory>> {
        self.factories.get(kind).map(|f| f.clone()).ok_or_else(|| {
            let mut known: Vec<String> = self.factories.iter().map(|f| f.key().clone()).collect();
            known.sort();
            Error::bad_request(format!(
                "Data source type \"{kind}\" not found (known: {})",
                known.join(", ")
            ))
        })
    }

    /// Checks that `options` of type `kind` reach a database, keeping nothing open. A
    /// source with a connection total is tried as it will connect, through a share of its
    /// own: the one connection of a test is not counted in the total.
    pub async fn test_connection(&self, kind: &str, options: &Json) -> Result<()> {
        let factory = self.factory(kind)?;
        match declared_total(options)? {
            None => factory.test_connection(options).await,
            Some(total) => {
                let share = ConnectionShare::new(total);
                share.resize(1).await;
                factory.connect_shared(options, share).await?.close().await;
                Ok(())
            }
        }
    }

    /// Connects and introspects a new source of type `kind` (not yet added).
    pub async fn build(
        &self,
        key: &str,
        kind: &str,
        options: &Json,
        settings: DataSourceSettings,
    ) -> Result<Arc<DataSource>> {
        self.build_declared(key, kind, options, settings, Declarations::default())
            .await
    }

    /// [`DataSourceManager::build`] with the users' declarations laid over the schema.
    pub async fn build_declared(
        &self,
        key: &str,
        kind: &str,
        options: &Json,
        settings: DataSourceSettings,
        declarations: Declarations,
    ) -> Result<Arc<DataSource>> {
        let factory = self.factory(kind)?;
        let connector = match declared_total(options)? {
            None => factory.connect(options).await?,
            Some(total) => {
                let share = self.connection_budget().share(key, total).await?;
                factory.connect_shared(options, share).await?
            }
        };
        DataSource::load_declared(key, kind, connector, Acl::open(), settings, declarations).await
    }

    /// Adds a loaded source, replacing (and then closing) any source with the same key.
    ///
    /// Runs the before-add hooks, applies the data-source-level middleware, swaps the source
    /// in, then runs the after-add hooks. A middleware that cannot be placed in the new
    /// source's chain refuses the whole add and leaves the old source serving.
    pub async fn add(&self, source: Arc<DataSource>) -> Result<()> {
        for hook in self.hooks(&self.before_add) {
            hook(&source);
        }
        let middlewares = self.lock(&self.middlewares).clone();
        for (mw, placement) in middlewares {
            source
                .resource_manager()
                .use_middleware(mw, placement)
                .map_err(|e| Error::internal(format!("data source {}: {e}", source.key())))?;
        }
        source.join(Arc::downgrade(&self.table));
        let old = self
            .table
            .sources
            .insert(source.key().to_owned(), source.clone());
        if let Some(old) = old
            && !Arc::ptr_eq(&old, &source)
        {
            old.close().await;
        }
        for hook in self.hooks(&self.after_add) {
            hook(&source);
        }
        Ok(())
    }

    /// Records where the source called `key` is in its life.
    pub fn set_status(&self, key: &str, status: DataSourceStatus) {
        self.table.statuses.insert(key.to_owned(), status);
    }

    /// Where the source called `key` is: its recorded status, `Loaded` for a source added
    /// without one (main), `None` when nothing is known of it.
    pub fn status(&self, key: &str) -> Option<DataSourceStatus> {
        self.table.status(key)
    }

    /// Every known source with its status, by key: those with a recorded status and those
    /// added without one (main, `Loaded`). For readiness probes.
    pub fn statuses(&self) -> Vec<(String, DataSourceStatus)> {
        let mut all: std::collections::BTreeMap<String, DataSourceStatus> = self
            .table
            .sources
            .iter()
            .map(|s| (s.key().clone(), DataSourceStatus::Loaded))
            .collect();
        for s in self.table.statuses.iter() {
            all.insert(s.key().clone(), s.value().clone());
        }
        all.into_iter().collect()
    }

    /// Forgets the status of `key` (after its record is destroyed).
    pub fn clear_status(&self, key: &str) {
        self.table.statuses.remove(key);
    }

    /// The source called `key`, or the error a request for it should get: 404 when no such
    /// source is registered, 503 while it loads or after it failed or was disabled.
    pub fn route(&self, key: &str) -> Result<Arc<DataSource>> {
        self.table.route(key)
    }

    /// The source called `key`.
    pub fn get(&self, key: &str) -> Option<Arc<DataSource>> {
        self.table.sources.get(key).map(|s| s.clone())
    }

    /// Every source, main first, then by key.
    pub fn list(&self) -> Vec<Arc<DataSource>> {
        let mut all: Vec<_> = self.table.sources.iter().map(|s| s.clone()).collect();
        all.sort_by(|a, b| (a.key() != "main", a.key()).cmp(&(b.key() != "main", b.key())));
        all
    }

    /// Removes and closes the source called `key`, then runs the after-remove hooks;
    /// returns it if it existed.
    pub async fn remove(&self, key: &str) -> Option<Arc<DataSource>> {
        let (_, source) = self.table.sources.remove(key)?;
        source.close().await;
        for hook in self.hooks(&self.after_remove) {
            hook(&source);
        }
        Some(source)
    }

    /// Closes every source (at shutdown).
    pub async fn close_all(&self) {
        for source in self.list() {
            source.close().await;
        }
    }

    /// Runs `hook` for every source already added, then before every later add.
    pub fn before_add_data_source(&self, hook: DataSourceHook) {
        for source in self.list() {
            hook(&source);
        }
        self.lock(&self.before_add).push(hook);
    }

    /// Runs `hook` for every source already added, then after every later add.
    ///
    /// This is how actions fan out: register them once here and every source gets them.
    pub fn after_add_data_source(&self, hook: DataSourceHook) {
        for source in self.list() {
            hook(&source);
        }
        self.lock(&self.after_add).push(hook);
    }

    /// Runs `hook` after every later removal of a source (NocoBase's
    /// `afterRemoveDataSource`), with the source as it was; its pool is already closed.
    pub fn after_remove_data_source(&self, hook: DataSourceHook) {
        self.lock(&self.after_remove).push(hook);
    }

    /// Adds data-source-level middleware (level 2) to every source, present and future.
    /// If one source refuses the placement, none gets it.
    pub fn use_middleware(
        &self,
        middleware: Arc<dyn Middleware>,
        placement: Placement,
    ) -> Result<(), MiddlewareError> {
        let sources = self.list();
        // Check on every source before changing any, so a refusal leaves all unchanged.
        for source in &sources {
            source.resource_manager().check_placement(&placement)?;
        }
        for source in &sources {
            source
                .resource_manager()
                .use_middleware(middleware.clone(), placement.clone())?;
        }
        self.lock(&self.middlewares).push((middleware, placement));
        Ok(())
    }

    fn hooks(&self, list: &Mutex<Vec<DataSourceHook>>) -> Vec<DataSourceHook> {
        self.lock(list).clone()
    }

    fn lock<'a, T>(&self, m: &'a Mutex<T>) -> std::sync::MutexGuard<'a, T> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }
}
