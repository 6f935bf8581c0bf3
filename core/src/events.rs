//! Database events: handlers that run around every write to a collection, on every
//! connector (NocoBase's `db.on('posts.afterCreate', …)`).
//!
//! A handler listens to one event of one collection (`posts.afterCreate`) or of every
//! collection (`afterCreate`). [`EventHandler`]s run inside the write's transaction, so a
//! failing `before*` or `after*` handler rolls the write back and its error is the answer;
//! [`CommitHandler`]s run once the transaction has committed, for side effects (a webhook)
//! that must never see a write that was rolled back.
//!
//! Writes to a collection nobody listens to pay one map lookup.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use futures_util::future::BoxFuture;

use crate::error::{Error, Result};
use crate::repository::{Record, Repository};
use crate::schema::Collection;

/// One database event, named as NocoBase names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DbEvent {
    /// Before a row is inserted; the record is the values to insert.
    BeforeCreate,
    /// After a row is inserted; the record is the row as stored.
    AfterCreate,
    /// Before a row is updated; the record is the row as it was, `changes` the values.
    BeforeUpdate,
    /// After a row is updated; the record is the row as stored.
    AfterUpdate,
    /// Before a row is inserted or updated (after `beforeCreate` / `beforeUpdate`).
    BeforeSave,
    /// After a row is inserted or updated (after `afterCreate` / `afterUpdate`).
    AfterSave,
    /// Before a row is deleted; the record is the row.
    BeforeDestroy,
    /// After a row is deleted; the record is the row as it was.
    AfterDestroy,
    /// After a row and the association values sent with it are written.
    AfterCreateWithAssociations,
    /// After a row's update and the association values sent with it are written.
    AfterUpdateWithAssociations,
    /// After either of the two above.
    AfterSaveWithAssociations,
}

impl DbEvent {
    /// Every event, in the order a name lookup tries them.
    pub const ALL: [DbEvent; 11] = [
        DbEvent::BeforeCreate,
        DbEvent::AfterCreate,
        DbEvent::BeforeUpdate,
        DbEvent::AfterUpdate,
        DbEvent::BeforeSave,
        DbEvent::AfterSave,
        DbEvent::BeforeDestroy,
        DbEvent::AfterDestroy,
        DbEvent::AfterCreateWithAssociations,
        DbEvent::AfterUpdateWithAssociations,
        DbEvent::AfterSaveWithAssociations,
    ];

    /// The event's name (`afterCreate`).
    pub fn name(self) -> &'static str {
        match self {
            DbEvent::BeforeCreate => "beforeCreate",
            DbEvent::AfterCreate => "afterCreate",
            DbEvent::BeforeUpdate => "beforeUpdate",
            DbEvent::AfterUpdate => "afterUpdate",
            DbEvent::BeforeSave => "beforeSave",
            DbEvent::AfterSave => "afterSave",
            DbEvent::BeforeDestroy => "beforeDestroy",
            DbEvent::AfterDestroy => "afterDestroy",
            DbEvent::AfterCreateWithAssociations => "afterCreateWithAssociations",
            DbEvent::AfterUpdateWithAssociations => "afterUpdateWithAssociations",
            DbEvent::AfterSaveWithAssociations => "afterSaveWithAssociations",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }
}

/// What a handler is told about one row's write.
#[derive(Debug, Clone)]
pub struct WriteEvent {
    /// Which event this is.
    pub event: DbEvent,
    /// The collection written to.
    pub collection: Arc<Collection>,
    /// The row: the values to insert (`beforeCreate`, `beforeSave` of a create), the row
    /// as it was (`beforeUpdate`, `beforeSave` of an update, both destroy events), or the
    /// row as stored (every other event).
    pub record: Record,
    /// The values an update writes (update events only).
    pub changes: Option<Record>,
}

/// Finds the repository of a collection by name, for [`Transaction::repository`].
pub(crate) type RepositoryLookup<'a> =
    dyn Fn(&str) -> Result<Arc<dyn Repository>> + Send + Sync + 'a;

/// The write's transaction as a handler sees it.
pub struct Transaction<'a> {
    repositories: &'a RepositoryLookup<'a>,
    transactional: bool,
}

impl<'a> Transaction<'a> {
    pub(crate) fn new(repositories: &'a RepositoryLookup<'a>, transactional: bool) -> Self {
        Self {
            repositories,
            transactional,
        }
    }

    /// The repository of collection `name` of the same source, writing in the same
    /// transaction, so what a handler writes commits or rolls back with the write. Writes
    /// made through it fire no events of their own: a handler cannot set off itself.
    pub fn repository(&self, name: &str) -> Result<Arc<dyn Repository>> {
        (self.repositories)(name)
    }

    /// Whether the write runs in a transaction. A source whose database has none
    /// (MongoDB without a replica set) runs handlers around a write it cannot undo: a
    /// failing `before*` handler still stops it, a failing `after*` handler cannot.
    pub fn is_transactional(&self) -> bool {
        self.transactional
    }
}

/// A handler that runs inside the write's transaction; an error aborts the write and is
/// the answer (`Error::bad_request("…")` for a 400).
#[async_trait::async_trait]
pub trait EventHandler: Send + Sync {
    /// Handles one row's event.
    async fn handle(&self, event: &WriteEvent, transaction: &Transaction<'_>) -> Result<()>;
}

/// A handler that runs after the write's transaction committed, and never for a write
/// that was rolled back. The write is already permanent, so a failure is only logged;
/// the response waits for the handler, so slow work belongs in a task it spawns.
pub type CommitHandler = Arc<dyn Fn(WriteEvent) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// One handler and the collection it listens to (`None`: every collection).
#[derive(Clone)]
struct Listener<H> {
    collection: Option<String>,
    handler: H,
}

impl<H> Listener<H> {
    fn hears(&self, collection: &str) -> bool {
        self.collection.as_deref().is_none_or(|c| c == collection)
    }
}

/// The handlers of `collection` among `listeners`: the collection's own first, then those
/// of every collection, each in the order they were added.
fn in_order<'a, H>(
    listeners: Option<&'a Vec<Listener<H>>>,
    collection: &'a str,
) -> impl Iterator<Item = &'a H> {
    let all = listeners.map(Vec::as_slice).unwrap_or_default();
    let own = all
        .iter()
        .filter(move |l| l.collection.as_deref() == Some(collection));
    let every = all.iter().filter(|l| l.collection.is_none());
    own.chain(every).map(|l| &l.handler)
}

/// Every handler by event: looked up per write without allocating.
#[derive(Default, Clone)]
struct Listeners {
    in_transaction: HashMap<DbEvent, Vec<Listener<Arc<dyn EventHandler>>>>,
    after_commit: HashMap<DbEvent, Vec<Listener<CommitHandler>>>,
}

impl Listeners {
    fn is_empty(&self) -> bool {
        self.in_transaction.is_empty() && self.after_commit.is_empty()
    }

    fn commit_heard(&self, collection: &str, event: DbEvent) -> bool {
        self.after_commit
            .get(&event)
            .is_some_and(|ls| ls.iter().any(|l| l.hears(collection)))
    }

    fn heard(&self, collection: &str, event: DbEvent) -> bool {
        self.commit_heard(collection, event)
            || self
                .in_transaction
                .get(&event)
                .is_some_and(|ls| ls.iter().any(|l| l.hears(collection)))
    }
}

/// The event handlers of one data source.
#[derive(Default)]
pub struct DbEvents {
    listeners: ArcSwap<Listeners>,
}

impl std::fmt::Debug for DbEvents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbEvents").finish_non_exhaustive()
    }
}

/// Splits `posts.afterCreate` into its collection and event; `afterCreate` names every
/// collection's.
fn parse_key(name: &str) -> Result<(Option<String>, DbEvent)> {
    let (collection, event) = match name.rsplit_once('.') {
        Some((collection, event)) if !collection.is_empty() => (Some(collection.to_owned()), event),
        _ => (None, name),
    };
    let event = DbEvent::parse(event).ok_or_else(|| {
        Error::bad_request(format!(
            "unknown database event {name:?}; events are {}",
            DbEvent::ALL.map(DbEvent::name).join(", ")
        ))
    })?;
    Ok((collection, event))
}

impl DbEvents {
    /// Runs `handler` inside the transaction of every write `name` names:
    /// `posts.afterCreate` (one collection) or `afterCreate` (every collection). An
    /// unknown event name is an error.
    pub fn on(&self, name: &str, handler: Arc<dyn EventHandler>) -> Result<()> {
        let (collection, event) = parse_key(name)?;
        let listener = Listener {
            collection,
            handler,
        };
        self.listeners.rcu(|old| {
            let mut new = Listeners::clone(old);
            new.in_transaction
                .entry(event)
                .or_default()
                .push(listener.clone());
            new
        });
        Ok(())
    }

    /// Runs `handler` after the transaction of every write `name` names has committed.
    pub fn after_commit<F, Fut>(&self, name: &str, handler: F) -> Result<()>
    where
        F: Fn(WriteEvent) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        let (collection, event) = parse_key(name)?;
        let listener = Listener {
            collection,
            handler: Arc::new(move |event| Box::pin(handler(event)) as BoxFuture<'static, _>)
                as CommitHandler,
        };
        self.listeners.rcu(|old| {
            let mut new = Listeners::clone(old);
            new.after_commit
                .entry(event)
                .or_default()
                .push(listener.clone());
            new
        });
        Ok(())
    }

    /// Whether any handler listens to writes of `collection`.
    pub fn listens_to(&self, collection: &str) -> bool {
        let listeners = self.listeners.load();
        !listeners.is_empty()
            && DbEvent::ALL
                .into_iter()
                .any(|event| listeners.heard(collection, event))
    }

    /// Whether any handler, in the transaction or after the commit, listens to `event` of
    /// `collection`.
    pub(crate) fn has(&self, collection: &str, event: DbEvent) -> bool {
        self.listeners.load().heard(collection, event)
    }

    /// Runs the in-transaction handlers of `event`: the collection's first, then those of
    /// every collection, each in the order they were added. The first error stops them.
    pub(crate) async fn emit(&self, event: &WriteEvent, tx: &Transaction<'_>) -> Result<()> {
        let listeners = self.listeners.load_full();
        let handlers = listeners.in_transaction.get(&event.event);
        for handler in in_order(handlers, event.collection.name()) {
            handler.handle(event, tx).await?;
        }
        Ok(())
    }

    /// Runs the after-commit handlers of each event, in order; failures are logged.
    pub(crate) async fn committed(&self, events: Vec<WriteEvent>) {
        let listeners = self.listeners.load_full();
        for event in events {
            let handlers = listeners.after_commit.get(&event.event);
            for handler in in_order(handlers, event.collection.name()) {
                if let Err(e) = handler(event.clone()).await {
                    tracing::warn!(
                        collection = %event.collection.name(),
                        event = event.event.name(),
                        error = %e.message(),
                        "an after-commit handler failed; the write stays committed"
                    );
                }
            }
        }
    }

    /// Whether any after-commit handler would receive `event`.
    pub(crate) fn awaits_commit(&self, event: &WriteEvent) -> bool {
        self.listeners
            .load()
            .commit_heard(event.collection.name(), event.event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_and_without_a_collection() {
        assert_eq!(
            parse_key("posts.afterCreate").expect("known"),
            (Some("posts".into()), DbEvent::AfterCreate)
        );
        assert_eq!(
            parse_key("afterSaveWithAssociations").expect("known"),
            (None, DbEvent::AfterSaveWithAssociations)
        );
        assert_eq!(
            parse_key("my.table.beforeDestroy").expect("known"),
            (Some("my.table".into()), DbEvent::BeforeDestroy)
        );
        let e = parse_key("posts.afterCreat").expect_err("unknown");
        assert!(e.message().contains("posts.afterCreat"), "{}", e.message());
        assert!(e.message().contains("afterCreate"), "{}", e.message());
    }
}
