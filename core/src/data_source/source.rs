use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;

use crate::acl::Acl;
use crate::connector::{CollectionDefinition, Connector};
use crate::declarations::Declarations;
use crate::error::{Error, Result};
use crate::events::DbEvents;
use crate::filter::OperatorSupport;
use crate::key_lock::KeyLocks;
use crate::middleware::{Middleware, Placement};
use crate::repository::Repository;
use crate::resource::ResourceManager;
use crate::schema::{Association, Collection};

use super::peers::SourceTable;
use super::unit::{Evented, Starter, Unit};

/// Per-source limits and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSourceSettings {
    /// `pageSize` when the request gives none (NocoBase: 20 on main, 50 elsewhere).
    pub default_page_size: u64,
    /// The largest `pageSize` accepted; larger is a 400.
    pub max_page_size: u64,
    /// How long one request may wait on this source before a 504. A server-side statement
    /// timeout cannot fire when the network itself is gone; this one always does.
    pub request_timeout: std::time::Duration,
    /// The most relations one `appends` path may go through (`author.books` is 2): each
    /// level multiplies what one request can embed.
    pub max_append_depth: usize,
    /// The most related records one answer may embed through `appends`, counting each copy
    /// (a record embedded under ten parents counts ten times, with what it embeds itself).
    pub max_embedded_records: usize,
    /// The most keys one filter condition through a relation to another source may
    /// collect there (`{"author.country": "FR"}` reads the French authors' keys); more is
    /// a 400.
    pub max_relation_filter_keys: usize,
    /// Tables whose names start with this are bookkeeping reachable from code
    /// ([`DataSource::internal_table`]), never resources: [`INTERNAL_PREFIX`] on a
    /// registered source, `_` on the main one, whose `_` names belong to Manifold and its
    /// plugins.
    pub internal_prefix: &'static str,
}

impl Default for DataSourceSettings {
    /// NocoBase's defaults for a registered source (`pageSize` 50); the main source uses 20.
    fn default() -> Self {
        Self {
            default_page_size: 50,
            max_page_size: 1000,
            request_timeout: std::time::Duration::from_secs(35),
            max_append_depth: 4,
            max_embedded_records: 50_000,
            max_relation_filter_keys: 5_000,
            internal_prefix: INTERNAL_PREFIX,
        }
    }
}

/// Counts the statements a repository runs, for tests and metrics. Reads are one
/// statement each; writes are counted once per call.
pub(super) struct Counted {
    pub inner: Arc<dyn Repository>,
    pub statements: Arc<std::sync::atomic::AtomicU64>,
}

impl Counted {
    fn tick(&self) {
        self.statements
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[async_trait::async_trait]
impl Repository for Counted {
    fn collection(&self) -> &Arc<Collection> {
        self.inner.collection()
    }

    async fn find(
        &self,
        options: &crate::query::FindOptions,
    ) -> Result<Vec<crate::repository::Record>> {
        self.tick();
        self.inner.find(options).await
    }

    async fn find_batches(
        &self,
        options: &crate::query::FindOptions,
        batch: usize,
    ) -> Result<crate::repository::RecordBatches> {
        self.tick();
        self.inner.find_batches(options, batch).await
    }

    async fn count(&self, filter: Option<&crate::filter::Filter>) -> Result<u64> {
        self.tick();
        self.inner.count(filter).await
    }

    async fn create(
        &self,
        rows: &[crate::repository::WriteValues],
    ) -> Result<Vec<crate::repository::Record>> {
        self.tick();
        self.inner.create(rows).await
    }

    async fn update(
        &self,
        filter: Option<&crate::filter::Filter>,
        values: &crate::repository::WriteValues,
    ) -> Result<Vec<crate::repository::Record>> {
        self.tick();
        self.inner.update(filter, values).await
    }

    async fn destroy(&self, filter: Option<&crate::filter::Filter>) -> Result<u64> {
        self.tick();
        self.inner.destroy(filter).await
    }

    async fn find_linked(
        &self,
        link: &crate::repository::Link<'_>,
        sources: &[crate::value::Value],
        fields: Option<&[crate::filter::FieldRef]>,
    ) -> Result<Option<Vec<(serde_json::Value, crate::repository::Record)>>> {
        let found = self.inner.find_linked(link, sources, fields).await?;
        if found.is_some() {
            self.tick();
        }
        Ok(found)
    }
}

/// One collection with its repositories.
#[derive(Clone)]
pub(super) struct Entry {
    pub collection: Arc<Collection>,
    /// What the source hands out: writes fire the collection's events.
    pub repository: Arc<dyn Repository>,
    /// The same without events, for the handlers of a source without transactions.
    pub plain: Arc<dyn Repository>,
}

/// The schema of a source, swapped whole on refresh so readers never lock.
#[derive(Default, Clone)]
pub(super) struct Catalog {
    pub entries: BTreeMap<String, Entry>,
    /// Manifold's own tables (`_manifold…`): reachable from code, never as resources.
    pub internal: BTreeMap<String, Entry>,
}

/// Tables whose names start with this are Manifold's own bookkeeping, not resources.
pub const INTERNAL_PREFIX: &str = "_manifold";

/// One registered database: its key, connector, schema, resources and ACL.
pub struct DataSource {
    key: String,
    kind: String,
    connector: Arc<dyn Connector>,
    /// Shared (weakly) with the repositories, which start units on it.
    catalog: Arc<ArcSwap<Catalog>>,
    resource_manager: ResourceManager,
    acl: Arc<Acl>,
    settings: DataSourceSettings,
    /// Serialises schema changes (refresh, create, drop) so none is lost to a race.
    schema_lock: tokio::sync::Mutex<()>,
    /// Repository calls made so far (each read is one statement).
    statements: Arc<std::sync::atomic::AtomicU64>,
    /// What users declared on top of the introspected schema, laid over it on each refresh.
    declarations: ArcSwap<Declarations>,
    /// In-process locks per key (see [`DataSource::key_locks`]).
    key_locks: KeyLocks,
    /// What the connector said it runs, asked once at load rather than per request.
    operators: Arc<OperatorSupport>,
    /// The handlers of its database events.
    events: Arc<DbEvents>,
    /// The manager's sources, once this one is added: relations to other sources reach
    /// them through it.
    peers: std::sync::OnceLock<Weak<SourceTable>>,
}

impl std::fmt::Debug for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataSource")
            .field("key", &self.key)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Tags of the built-in nodes of every resource manager chain.
pub(crate) const VALIDATE_FILTER_TAG: &str = "validate-filter-params";
pub(crate) const ACL_TAG: &str = "acl";

impl crate::filter::CollectionLookup for DataSource {
    fn lookup(&self, name: &str) -> Option<Arc<Collection>> {
        self.catalog
            .load()
            .entries
            .get(name)
            .map(|e| e.collection.clone())
    }
}

impl DataSource {
    /// Introspects `connector` and builds a source called `key` of type `kind`.
    pub async fn load(
        key: impl Into<String>,
        kind: impl Into<String>,
        connector: Arc<dyn Connector>,
        acl: Arc<Acl>,
        settings: DataSourceSettings,
    ) -> Result<Arc<Self>> {
        Self::load_declared(key, kind, connector, acl, settings, Declarations::default()).await
    }

    /// [`DataSource::load`] with the users' declarations laid over the schema.
    pub async fn load_declared(
        key: impl Into<String>,
        kind: impl Into<String>,
        connector: Arc<dyn Connector>,
        acl: Arc<Acl>,
        settings: DataSourceSettings,
        declarations: Declarations,
    ) -> Result<Arc<Self>> {
        let kind = kind.into();
        let operators = Arc::new(OperatorSupport::of(&kind, |op| {
            connector.supports_operator(op)
        }));
        let source = Self {
            key: key.into(),
            kind,
            operators,
            connector,
            catalog: Arc::new(ArcSwap::from_pointee(Catalog::default())),
            resource_manager: ResourceManager::new(),
            acl,
            settings,
            schema_lock: tokio::sync::Mutex::new(()),
            statements: Arc::default(),
            declarations: ArcSwap::from_pointee(declarations),
            key_locks: KeyLocks::default(),
            events: Arc::default(),
            peers: std::sync::OnceLock::new(),
        };
        source.install_built_in_middleware();
        source.refresh().await?;
        Ok(Arc::new(source))
    }

    fn install_built_in_middleware(&self) {
        let built_ins: [(Arc<dyn Middleware>, Placement); 2] = [
            (
                Arc::new(crate::actions::ValidateFilterParams),
                Placement::tag(VALIDATE_FILTER_TAG),
            ),
            (
                self.acl.node(),
                Placement::tag(ACL_TAG).after(VALIDATE_FILTER_TAG),
            ),
        ];
        for (mw, placement) in built_ins {
            if let Err(e) = self.resource_manager.use_middleware(mw, placement) {
                unreachable!("built-in resource chain is acyclic: {e}");
            }
        }
    }

    /// Joins the manager's sources: called once, when the manager adds this source.
    pub(super) fn join(&self, table: Weak<SourceTable>) {
        // A source is added once; a second add of the same instance keeps the first table.
        let _ = self.peers.set(table);
    }

    /// The source called `key` registered beside this one, for a relation declared to
    /// it: what a request routed to `key` would get (404 when no such source exists,
    /// 503 while it loads, failed or is disabled).
    pub fn peer(&self, key: &str) -> Result<Arc<DataSource>> {
        match self.peers.get().and_then(Weak::upgrade) {
            Some(table) => table.route(key),
            None => Err(Error::unavailable(format!(
                "data source {key} cannot be reached: data source {} is not registered",
                self.key
            ))),
        }
    }

    /// Whether a relation of `c` to another source still fits that source's schema. A
    /// source that is not serving keeps its relations: their requests answer why.
    fn fits(&self, c: &Collection, a: &Association) -> bool {
        let Some(key) = &a.target_source else {
            return true;
        };
        let Ok(peer) = self.peer(key) else {
            return true;
        };
        let problem = match peer.collection(&a.target) {
            None => format!(
                "collection {} does not exist in data source {key}",
                a.target
            ),
            Some((target, _)) => match crate::declarations::check_remote(c, a, &target, None) {
                Ok(()) => return true,
                Err(e) => e.message().to_owned(),
            },
        };
        tracing::warn!(
            data_source = %self.key,
            "declaration skipped: collection {}: relation {}: {problem}",
            c.name(),
            a.name
        );
        false
    }

    /// How many repository calls (each read is one statement) this source has served.
    pub fn statements(&self) -> u64 {
        self.statements.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How full the connector's pool is, when the driver says (for `/metrics`).
    pub fn pool_status(&self) -> Option<crate::telemetry::PoolStatus> {
        self.connector.pool_status()
    }

    /// The key clients send in `X-Data-Source`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The factory type (`sqlite`, `postgres`, …).
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The filter operators this source runs; client filters are held to it as they are
    /// parsed.
    pub fn operators(&self) -> &Arc<OperatorSupport> {
        &self.operators
    }

    /// Limits and defaults.
    pub fn settings(&self) -> &DataSourceSettings {
        &self.settings
    }

    /// The resources and middleware of this source.
    pub fn resource_manager(&self) -> &ResourceManager {
        &self.resource_manager
    }

    /// The access control of this source.
    pub fn acl(&self) -> &Arc<Acl> {
        &self.acl
    }

    /// The collection called `name` and its repository.
    pub fn collection(&self, name: &str) -> Option<(Arc<Collection>, Arc<dyn Repository>)> {
        self.catalog
            .load()
            .entries
            .get(name)
            .map(|e| (e.collection.clone(), e.repository.clone()))
    }

    /// Every collection, sorted by name.
    pub fn collections(&self) -> Vec<Arc<Collection>> {
        self.catalog
            .load()
            .entries
            .values()
            .map(|e| e.collection.clone())
            .collect()
    }

    /// Re-reads the schema and swaps it in; requests in flight keep the old one.
    pub async fn refresh(&self) -> Result<()> {
        let _guard = self.schema_lock.lock().await;
        let mut collections = self.connector.introspect().await?;
        for problem in self.declarations.load().apply(&mut collections) {
            tracing::warn!(data_source = %self.key, "declaration skipped: {problem}");
        }
        crate::associations::derive(&mut collections);
        for c in &mut collections {
            let remote = std::mem::take(&mut c.remote_associations);
            c.remote_associations = remote.into_iter().filter(|a| self.fits(c, a)).collect();
        }
        let mut catalog = Catalog::default();
        let starter = Arc::new(Starter {
            connector: self.connector.clone(),
            catalog: Arc::downgrade(&self.catalog),
            statements: self.statements.clone(),
            events: self.events.clone(),
        });
        for c in collections {
            let c = Arc::new(c);
            let plain: Arc<dyn Repository> = Arc::new(Counted {
                inner: self.connector.repository(c.clone()),
                statements: self.statements.clone(),
            });
            let name = c.name().to_owned();
            // Bookkeeping fires no events: a handler of every collection that writes a
            // row of its own (an audit trail) would set itself off.
            let internal = name.starts_with(self.settings.internal_prefix);
            let repository: Arc<dyn Repository> = if internal {
                plain.clone()
            } else {
                Arc::new(Evented::alone(
                    plain.clone(),
                    self.events.clone(),
                    starter.clone(),
                ))
            };
            let entry = Entry {
                repository,
                plain,
                collection: c,
            };
            if internal {
                catalog.internal.insert(name, entry);
            } else {
                catalog.entries.insert(name, entry);
            }
        }
        self.catalog.store(Arc::new(catalog));
        Ok(())
    }

    /// The users' declarations in force.
    pub fn declarations(&self) -> Arc<Declarations> {
        self.declarations.load_full()
    }

    /// Replaces the users' declarations and refreshes the schema with them. Requests in
    /// flight keep the old schema.
    pub async fn set_declarations(&self, declarations: Declarations) -> Result<()> {
        self.declarations.store(Arc::new(declarations));
        self.refresh().await
    }

    /// The collections as introspection and the current declarations describe them, for
    /// checking a new declaration before it is stored.
    pub fn collections_snapshot(&self) -> Vec<Collection> {
        self.catalog
            .load()
            .entries
            .values()
            .map(|e| Collection::clone(&e.collection))
            .collect()
    }

    /// Creates a table and makes it a resource at once.
    pub async fn define_collection(
        &self,
        definition: &CollectionDefinition,
    ) -> Result<Arc<Collection>> {
        if definition.name.starts_with(self.settings.internal_prefix) {
            // It would be made, then hidden from the resources by the next refresh.
            return Err(Error::bad_request(format!(
                "collection name {:?} is reserved: names starting with {:?} in data source {} \
                 are internal tables",
                definition.name, self.settings.internal_prefix, self.key
            )));
        }
        let _guard = self.schema_lock.lock().await;
        if self.collection(&definition.name).is_some() {
            return Err(Error::conflict(format!(
                "collection {} already exists in data source {}",
                definition.name, self.key
            )));
        }
        self.connector.create_collection(definition).await?;
        drop(_guard);
        // Re-read everything: the new table's foreign keys relate it to existing ones.
        self.refresh().await?;
        self.collection(&definition.name)
            .map(|(c, _)| c)
            .ok_or_else(|| Error::internal(format!("collection {} vanished", definition.name)))
    }

    /// Adds `fields` as new columns of the existing collection `name`, one statement
    /// each, and re-reads the schema; the rows already there keep their values.
    pub async fn add_fields(
        &self,
        name: &str,
        fields: &[crate::connector::FieldDefinition],
    ) -> Result<Arc<Collection>> {
        let guard = self.schema_lock.lock().await;
        let (collection, _) = self.collection(name).ok_or_else(|| {
            Error::not_found(format!(
                "collection {name} does not exist in data source {}",
                self.key
            ))
        })?;
        let mut outcome = Ok(());
        for field in fields {
            outcome = self.connector.add_field(&collection, field).await;
            if outcome.is_err() {
                break;
            }
        }
        drop(guard);
        // Re-read even after a failure: the columns added before it are there.
        self.refresh().await?;
        outcome?;
        self.collection(name)
            .map(|(c, _)| c)
            .ok_or_else(|| Error::internal(format!("collection {name} vanished")))
    }

    /// Starts a unit of work on this source's database.
    pub async fn begin(&self) -> Result<Unit> {
        Ok(Unit::new(
            self.connector.begin().await?,
            self.catalog.load_full(),
            self.statements.clone(),
            self.events.clone(),
        ))
    }

    /// Starts a unit of work holding the database's exclusive lock on `key`
    /// ([`Connector::begin_locked`]); `None` when the database has no such lock.
    pub async fn begin_locked(&self, key: &str) -> Result<Option<Unit>> {
        Ok(self.connector.begin_locked(key).await?.map(|inner| {
            Unit::new(
                inner,
                self.catalog.load_full(),
                self.statements.clone(),
                self.events.clone(),
            )
        }))
    }

    /// The handlers of this source's database events (`posts.afterCreate`, …): they run
    /// around every write to a collection, through any action or repository.
    pub fn events(&self) -> &Arc<DbEvents> {
        &self.events
    }

    /// This process's locks on keys of this source, which queue requests that must not
    /// run side by side (`firstOrCreate` on the same values) before they reach the database.
    pub fn key_locks(&self) -> &KeyLocks {
        &self.key_locks
    }

    /// The repository of one of the internal tables (names starting with
    /// [`DataSourceSettings::internal_prefix`]: Manifold's `_manifold…`, a plugin's `_…` on
    /// the main source), which the main database's migrations made before this source was
    /// loaded. Such tables never become resources.
    pub fn internal_table(&self, name: &str) -> Result<Arc<dyn Repository>> {
        debug_assert!(name.starts_with(self.settings.internal_prefix));
        self.catalog
            .load()
            .internal
            .get(name)
            .map(|entry| entry.repository.clone())
            .ok_or_else(|| {
                Error::internal(format!(
                    "data source {} has no table {name}; the main database's migrations make it",
                    self.key
                ))
            })
    }

    /// Drops a table and its resource.
    pub async fn drop_collection(&self, name: &str) -> Result<()> {
        let _guard = self.schema_lock.lock().await;
        let (collection, _) = self.collection(name).ok_or_else(|| {
            Error::not_found(format!(
                "collection {name} does not exist in data source {}",
                self.key
            ))
        })?;
        self.connector.drop_collection(&collection).await?;
        self.catalog.rcu(|old| {
            let mut catalog = Catalog::clone(old);
            catalog.entries.remove(name);
            catalog
        });
        Ok(())
    }

    /// Closes the connector's pool.
    pub async fn close(&self) {
        self.connector.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{Operator, ValueOperator};

    /// A database with no tables that cannot run `$anyOf`.
    struct NoArrays;

    #[async_trait::async_trait]
    impl Connector for NoArrays {
        async fn introspect(&self) -> Result<Vec<Collection>> {
            Ok(Vec::new())
        }

        fn repository(&self, collection: Arc<Collection>) -> Arc<dyn Repository> {
            unreachable!(
                "NoArrays has no collection, yet {} was asked for",
                collection.name()
            )
        }

        fn supports_operator(&self, op: Operator) -> bool {
            op != Operator::Value(ValueOperator::AnyOf)
        }

        async fn close(&self) {}
    }

    #[tokio::test]
    async fn a_request_filters_with_the_operators_its_source_runs() {
        let any_of = Operator::Value(ValueOperator::AnyOf);
        let source = DataSource::load(
            "arrays",
            "flat",
            Arc::new(NoArrays),
            Acl::open(),
            DataSourceSettings::default(),
        )
        .await
        .expect("loads");
        assert!(!source.operators().supports(any_of));
        assert!(
            source
                .operators()
                .supports(Operator::Value(ValueOperator::Eq))
        );

        let mut ctx = crate::context::Context::default();
        assert!(
            ctx.filter_context()
                .expect("no X-Timezone")
                .operators
                .supports(any_of)
        );
        ctx.data_source = Some(source);
        let refused = ctx
            .filter_context()
            .expect("no X-Timezone")
            .operators
            .check(any_of, "filter.tags.$anyOf")
            .expect_err("declined by the connector");
        assert_eq!(
            refused.message(),
            "filter.tags.$anyOf: operator $anyOf is not supported by flat sources"
        );
    }
}
