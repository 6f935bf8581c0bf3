//! Units of work, and the repositories that fire database events around their writes.
//!
//! Every repository a source hands out is an [`Evented`] one. While nobody listens to its
//! collection it only passes calls through. Once someone does, a write outside a unit
//! starts one, so the handlers run inside the write's transaction; a write inside a unit
//! runs them there, and the unit delivers the after-commit events when it commits.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use arc_swap::ArcSwap;

use super::source::{Catalog, Counted};
use crate::connector::{Connector, UnitOfWork};
use crate::error::{Error, ErrorKind, Result};
use crate::events::{DbEvent, DbEvents, RepositoryLookup, Transaction, WriteEvent};
use crate::filter::{FieldRef, Filter, key_filter};
use crate::query::FindOptions;
use crate::repository::{Link, Record, RecordBatches, Repository, WriteValues};
use crate::schema::Collection;
use crate::value::Value;

type Statements = Arc<std::sync::atomic::AtomicU64>;

/// What a repository needs to start a unit on its source: everything [`DataSource::begin`]
/// uses, held weakly where the source holds the repository.
///
/// [`DataSource::begin`]: super::DataSource::begin
pub(super) struct Starter {
    pub connector: Arc<dyn Connector>,
    pub catalog: Weak<ArcSwap<Catalog>>,
    pub statements: Statements,
    pub events: Arc<DbEvents>,
}

impl Starter {
    /// A new unit, or `None` when the database runs no transactions.
    async fn begin(&self) -> Result<Option<Unit>> {
        let catalog = self
            .catalog
            .upgrade()
            .ok_or_else(|| Error::unavailable("the data source was removed"))?;
        match self.connector.begin().await {
            Ok(inner) => Ok(Some(Unit::new(
                inner,
                catalog.load_full(),
                self.statements.clone(),
                self.events.clone(),
            ))),
            Err(e) if e.kind() == ErrorKind::BadRequest => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The plain repository of `name` (no unit, no events), for handlers of a source
    /// without transactions.
    fn plain(&self, name: &str) -> Result<Arc<dyn Repository>> {
        let catalog = self
            .catalog
            .upgrade()
            .ok_or_else(|| Error::unavailable("the data source was removed"))?;
        let catalog = catalog.load();
        catalog
            .entries
            .get(name)
            .map(|e| e.plain.clone())
            .ok_or_else(|| Error::not_found(format!("collection {name} does not exist")))
    }
}

/// The shared state of one unit: its transaction, and the events waiting for its commit.
struct UnitCore {
    inner: Box<dyn UnitOfWork>,
    catalog: Arc<Catalog>,
    statements: Statements,
    events: Arc<DbEvents>,
    committed: Mutex<Vec<WriteEvent>>,
}

impl UnitCore {
    fn entry(&self, name: &str) -> Result<&super::source::Entry> {
        self.catalog
            .entries
            .get(name)
            .ok_or_else(|| Error::not_found(format!("collection {name} does not exist")))
    }

    fn counted(&self, collection: Arc<Collection>) -> Arc<dyn Repository> {
        Arc::new(Counted {
            inner: self.inner.repository(collection),
            statements: self.statements.clone(),
        })
    }
}

/// Writes across collections of one source that commit together (see
/// [`crate::connector::UnitOfWork`]); dropping it rolls back, and the after-commit
/// handlers of its writes never run.
pub struct Unit {
    core: Arc<UnitCore>,
}

/// Whether a repository fires the `…WithAssociations` events itself, right after the
/// row's own, or leaves them to a writer that has association values still to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssociationEvents {
    /// The repository fires them: nothing else is written with the row.
    Fire,
    /// The caller fires them with [`Unit::written_with_associations`].
    Deferred,
}

impl Unit {
    pub(super) fn new(
        inner: Box<dyn UnitOfWork>,
        catalog: Arc<Catalog>,
        statements: Statements,
        events: Arc<DbEvents>,
    ) -> Self {
        Self {
            core: Arc::new(UnitCore {
                inner,
                catalog,
                statements,
                events,
                committed: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The repository of collection `name` inside this unit.
    pub fn repository(&self, name: &str) -> Result<Arc<dyn Repository>> {
        self.repository_with(name, AssociationEvents::Fire)
    }

    /// [`Unit::repository`], saying who fires the `…WithAssociations` events.
    pub fn repository_with(
        &self,
        name: &str,
        associations: AssociationEvents,
    ) -> Result<Arc<dyn Repository>> {
        let entry = self.core.entry(name)?;
        let inner = self.core.counted(entry.collection.clone());
        if !self.core.events.listens_to(name) {
            return Ok(inner);
        }
        Ok(Arc::new(Evented {
            inner,
            events: self.core.events.clone(),
            scope: Scope::InUnit(Arc::downgrade(&self.core)),
            associations,
        }))
    }

    /// The repository of one of Manifold's own tables (`_manifold…`) inside this unit.
    pub fn internal_table(&self, name: &str) -> Result<Arc<dyn Repository>> {
        let entry = self.core.catalog.internal.get(name).ok_or_else(|| {
            Error::internal(format!(
                "no table {name}; the main database's migrations make it"
            ))
        })?;
        Ok(self.core.counted(entry.collection.clone()))
    }

    /// Fires `afterCreateWithAssociations` (or `afterUpdate…`) and
    /// `afterSaveWithAssociations` for `record`, written through a repository from
    /// [`Unit::repository_with`] with [`AssociationEvents::Deferred`] and then its
    /// association values.
    pub async fn written_with_associations(
        &self,
        collection: &Arc<Collection>,
        record: &Record,
        created: bool,
    ) -> Result<()> {
        if !self.core.events.listens_to(collection.name()) {
            return Ok(());
        }
        let first = if created {
            DbEvent::AfterCreateWithAssociations
        } else {
            DbEvent::AfterUpdateWithAssociations
        };
        let scope = Scope::InUnit(Arc::downgrade(&self.core));
        for event in [first, DbEvent::AfterSaveWithAssociations] {
            fire(&self.core.events, &scope, collection, event, record, None).await?;
        }
        Ok(())
    }

    /// Commits every write of the unit, then runs the after-commit handlers of its events.
    pub async fn commit(self) -> Result<()> {
        let core = Arc::try_unwrap(self.core)
            .map_err(|_| Error::internal("a unit was committed while a write in it ran"))?;
        core.inner.commit().await?;
        let events = core
            .committed
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        if !events.is_empty() {
            core.events.committed(events).await;
        }
        Ok(())
    }
}

/// The most rows one `update` or `destroy` of a collection with event handlers may
/// touch: each row is read first, and given to the handlers.
pub const MAX_EVENT_ROWS: usize = 10_000;

/// Every event an `update` fires; one heard makes the rows be read first.
const UPDATE_EVENTS: [DbEvent; 6] = [
    DbEvent::BeforeUpdate,
    DbEvent::BeforeSave,
    DbEvent::AfterUpdate,
    DbEvent::AfterSave,
    DbEvent::AfterUpdateWithAssociations,
    DbEvent::AfterSaveWithAssociations,
];

/// How many writes with events deep one task may go: a write whose handler writes, whose
/// handler writes, … Beyond it the write fails.
pub const MAX_EVENT_DEPTH: usize = 8;

tokio::task_local! {
    /// The depth of the write with events the current task is in.
    static EVENT_DEPTH: usize;
}

/// Where an [`Evented`] repository's writes run.
enum Scope {
    /// Inside a unit, whose transaction the handlers share.
    InUnit(Weak<UnitCore>),
    /// On its own: a write with listeners starts a unit.
    Alone(Arc<Starter>),
}

/// Where one write's handlers find repositories and leave after-commit events.
struct Sink<'a> {
    repositories: Box<RepositoryLookup<'a>>,
    transactional: bool,
    committed: &'a Mutex<Vec<WriteEvent>>,
}

impl<'a> Sink<'a> {
    fn of_unit(core: &'a UnitCore) -> Self {
        Self {
            repositories: Box::new(|name| {
                let entry = core.entry(name)?;
                Ok(core.counted(entry.collection.clone()))
            }),
            transactional: true,
            committed: &core.committed,
        }
    }

    fn untransacted(starter: &'a Starter, committed: &'a Mutex<Vec<WriteEvent>>) -> Self {
        Self {
            repositories: Box::new(|name| starter.plain(name)),
            transactional: false,
            committed,
        }
    }
}

/// Runs the in-transaction handlers of `event` for `record` and keeps it for the
/// after-commit ones; an event nobody listens to costs nothing.
async fn fire_in(
    events: &DbEvents,
    sink: &Sink<'_>,
    collection: &Arc<Collection>,
    event: DbEvent,
    record: &Record,
    changes: Option<&Record>,
) -> Result<()> {
    if !events.has(collection.name(), event) {
        return Ok(());
    }
    let event = WriteEvent {
        event,
        collection: collection.clone(),
        record: record.clone(),
        changes: changes.cloned(),
    };
    let tx = Transaction::new(sink.repositories.as_ref(), sink.transactional);
    events.emit(&event, &tx).await?;
    if events.awaits_commit(&event) {
        sink.committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
    }
    Ok(())
}

async fn fire(
    events: &DbEvents,
    scope: &Scope,
    collection: &Arc<Collection>,
    event: DbEvent,
    record: &Record,
    changes: Option<&Record>,
) -> Result<()> {
    match scope {
        Scope::InUnit(core) => {
            let core = upgrade(core)?;
            let sink = Sink::of_unit(&core);
            fire_in(events, &sink, collection, event, record, changes).await
        }
        Scope::Alone(_) => Err(Error::internal("association events outside a unit")),
    }
}

fn upgrade(core: &Weak<UnitCore>) -> Result<Arc<UnitCore>> {
    core.upgrade()
        .ok_or_else(|| Error::internal("a write ran in a unit that had ended"))
}

/// The values of a row about to be written, as handlers see them.
fn values_record(values: &WriteValues) -> Record {
    values
        .0
        .iter()
        .map(|(field, value)| (field.name.clone(), value.to_json()))
        .collect()
}

/// A repository that fires database events around its writes.
pub(super) struct Evented {
    inner: Arc<dyn Repository>,
    events: Arc<DbEvents>,
    scope: Scope,
    associations: AssociationEvents,
}

/// One write, run by [`Evented::write`] wherever its events belong.
enum Write<'a> {
    Create(&'a [WriteValues]),
    Update(Option<&'a Filter>, &'a WriteValues),
    Destroy(Option<&'a Filter>),
}

/// What a [`Write`] answers.
enum Written {
    Records(Vec<Record>),
    Count(u64),
}

impl Evented {
    /// The repository a source hands out for a collection outside any unit.
    pub(super) fn alone(
        inner: Arc<dyn Repository>,
        events: Arc<DbEvents>,
        starter: Arc<Starter>,
    ) -> Self {
        Self {
            inner,
            events,
            scope: Scope::Alone(starter),
            associations: AssociationEvents::Fire,
        }
    }

    fn collection_arc(&self) -> &Arc<Collection> {
        self.inner.collection()
    }

    /// Runs `write` with its events: in this repository's unit; alone, in a unit of its
    /// own (committed here), or, where the database runs no transactions, around the
    /// plain write with the after-commit events delivered once it is done.
    async fn write(&self, write: Write<'_>) -> Result<Written> {
        if !self.events.listens_to(self.collection_arc().name()) {
            return self.pass(write).await;
        }
        // A handler whose write sets off its own event again (directly, or through an
        // after-commit handler) would recurse until the stack overflowed.
        let depth = EVENT_DEPTH.try_with(|d| *d).unwrap_or(0);
        if depth >= MAX_EVENT_DEPTH {
            return Err(Error::internal(format!(
                "writes set off by database events are nested more than {MAX_EVENT_DEPTH} deep \
                 (at collection {}): a handler's write sets off its own event again",
                self.collection_arc().name()
            )));
        }
        EVENT_DEPTH
            .scope(depth + 1, self.write_with_events(write))
            .await
    }

    async fn write_with_events(&self, write: Write<'_>) -> Result<Written> {
        match &self.scope {
            Scope::InUnit(core) => {
                let core = upgrade(core)?;
                let sink = Sink::of_unit(&core);
                self.write_in(&sink, write).await
            }
            Scope::Alone(starter) => match starter.begin().await? {
                Some(unit) => {
                    let out = {
                        let core = unit.core.clone();
                        let sink = Sink::of_unit(&core);
                        let repository = Evented {
                            inner: core.counted(self.collection_arc().clone()),
                            events: self.events.clone(),
                            scope: Scope::InUnit(Arc::downgrade(&core)),
                            associations: self.associations,
                        };
                        repository.write_in(&sink, write).await?
                    };
                    unit.commit().await?;
                    Ok(out)
                }
                None => {
                    let committed = Mutex::new(Vec::new());
                    let out = {
                        let sink = Sink::untransacted(starter, &committed);
                        self.write_in(&sink, write).await?
                    };
                    let events = committed
                        .into_inner()
                        .unwrap_or_else(PoisonError::into_inner);
                    if !events.is_empty() {
                        self.events.committed(events).await;
                    }
                    Ok(out)
                }
            },
        }
    }

    async fn pass(&self, write: Write<'_>) -> Result<Written> {
        Ok(match write {
            Write::Create(rows) => Written::Records(self.inner.create(rows).await?),
            Write::Update(filter, values) => {
                Written::Records(self.inner.update(filter, values).await?)
            }
            Write::Destroy(filter) => Written::Count(self.inner.destroy(filter).await?),
        })
    }

    /// Runs `write` with its events; someone listens to the collection.
    async fn write_in(&self, sink: &Sink<'_>, write: Write<'_>) -> Result<Written> {
        let c = self.collection_arc();
        let events = self.events.as_ref();
        let heard = |of: &[DbEvent]| of.iter().any(|e| events.has(c.name(), *e));
        let with_associations = self.associations == AssociationEvents::Fire;
        match write {
            Write::Create(rows) => {
                for row in rows {
                    let record = values_record(row);
                    for event in [DbEvent::BeforeCreate, DbEvent::BeforeSave] {
                        fire_in(events, sink, c, event, &record, None).await?;
                    }
                }
                let created = self.inner.create(rows).await?;
                for record in &created {
                    let mut after = vec![DbEvent::AfterCreate, DbEvent::AfterSave];
                    if with_associations {
                        after.extend([
                            DbEvent::AfterCreateWithAssociations,
                            DbEvent::AfterSaveWithAssociations,
                        ]);
                    }
                    for event in after {
                        fire_in(events, sink, c, event, record, None).await?;
                    }
                }
                Ok(Written::Records(created))
            }
            Write::Update(filter, values) => {
                if !heard(&UPDATE_EVENTS) {
                    return self.pass(Write::Update(filter, values)).await;
                }
                let changes = values_record(values);
                let before = self.matching(filter).await?;
                if before.is_empty() {
                    return Ok(Written::Records(Vec::new()));
                }
                for record in &before {
                    for event in [DbEvent::BeforeUpdate, DbEvent::BeforeSave] {
                        fire_in(events, sink, c, event, record, Some(&changes)).await?;
                    }
                }
                let by_keys = self.by_keys(&before)?;
                let updated = self
                    .inner
                    .update(by_keys.as_ref().or(filter), values)
                    .await?;
                for record in &updated {
                    let mut after = vec![DbEvent::AfterUpdate, DbEvent::AfterSave];
                    if with_associations {
                        after.extend([
                            DbEvent::AfterUpdateWithAssociations,
                            DbEvent::AfterSaveWithAssociations,
                        ]);
                    }
                    for event in after {
                        fire_in(events, sink, c, event, record, Some(&changes)).await?;
                    }
                }
                Ok(Written::Records(updated))
            }
            Write::Destroy(filter) => {
                if !heard(&[DbEvent::BeforeDestroy, DbEvent::AfterDestroy]) {
                    return self.pass(Write::Destroy(filter)).await;
                }
                let doomed = self.matching(filter).await?;
                if doomed.is_empty() {
                    return Ok(Written::Count(0));
                }
                for record in &doomed {
                    fire_in(events, sink, c, DbEvent::BeforeDestroy, record, None).await?;
                }
                let by_keys = self.by_keys(&doomed)?;
                let deleted = self.inner.destroy(by_keys.as_ref().or(filter)).await?;
                for record in &doomed {
                    fire_in(events, sink, c, DbEvent::AfterDestroy, record, None).await?;
                }
                Ok(Written::Count(deleted))
            }
        }
    }

    /// The rows `filter` matches now, whole, so handlers see each one; at most
    /// [`MAX_EVENT_ROWS`], beyond which the write is refused before anything changes.
    async fn matching(&self, filter: Option<&Filter>) -> Result<Vec<Record>> {
        let options = FindOptions {
            filter: filter.cloned(),
            limit: Some(MAX_EVENT_ROWS as u64 + 1),
            ..FindOptions::default()
        };
        let rows = self.inner.find(&options).await?;
        if rows.len() > MAX_EVENT_ROWS {
            return Err(Error::bad_request(format!(
                "this write matches more than {MAX_EVENT_ROWS} rows of collection {}, whose \
                 database events run for each row; narrow filter or filterByTk",
                self.collection_arc().name()
            )));
        }
        Ok(rows)
    }

    /// A filter on the keys of `rows`, so the write touches exactly the rows its
    /// handlers saw; `None` where the collection has no single key.
    fn by_keys(&self, rows: &[Record]) -> Result<Option<Filter>> {
        let Some(key) = self.collection_arc().single_key() else {
            return Ok(None);
        };
        let keys: Vec<serde_json::Value> = rows
            .iter()
            .filter_map(|r| r.get(&key.name).cloned())
            .collect();
        if keys.len() != rows.len() {
            return Ok(None);
        }
        key_filter(self.collection_arc(), &serde_json::Value::Array(keys))
    }
}

#[async_trait::async_trait]
impl Repository for Evented {
    fn collection(&self) -> &Arc<Collection> {
        self.inner.collection()
    }

    async fn find(&self, options: &FindOptions) -> Result<Vec<Record>> {
        self.inner.find(options).await
    }

    async fn find_batches(&self, options: &FindOptions, batch: usize) -> Result<RecordBatches> {
        self.inner.find_batches(options, batch).await
    }

    async fn count(&self, filter: Option<&Filter>) -> Result<u64> {
        self.inner.count(filter).await
    }

    async fn create(&self, rows: &[WriteValues]) -> Result<Vec<Record>> {
        match self.write(Write::Create(rows)).await? {
            Written::Records(records) => Ok(records),
            Written::Count(_) => Err(Error::internal("create answered a count")),
        }
    }

    async fn update(&self, filter: Option<&Filter>, values: &WriteValues) -> Result<Vec<Record>> {
        match self.write(Write::Update(filter, values)).await? {
            Written::Records(records) => Ok(records),
            Written::Count(_) => Err(Error::internal("update answered a count")),
        }
    }

    async fn destroy(&self, filter: Option<&Filter>) -> Result<u64> {
        match self.write(Write::Destroy(filter)).await? {
            Written::Count(n) => Ok(n),
            Written::Records(_) => Err(Error::internal("destroy answered records")),
        }
    }

    async fn find_linked(
        &self,
        link: &Link<'_>,
        sources: &[Value],
        fields: Option<&[FieldRef]>,
    ) -> Result<Option<Vec<(serde_json::Value, Record)>>> {
        self.inner.find_linked(link, sources, fields).await
    }
}
