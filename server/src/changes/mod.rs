//! Change propagation between replicas that share one main database.
//!
//! Every change of shared state (a data source registered, changed or removed; a
//! collection or field declared; a role, grant, user or API key changed) is applied on the
//! replica that made it, then published: [`ChangeFeed::publish`] appends an entry to the
//! log in the main database ([`CHANGES_TABLE`]) and, on PostgreSQL, notifies its id. Every
//! other replica reads the entries it has not handled and hands each to the
//! [`ChangeHandler`] subscribed to its kind, which reloads only what the entry names.
//!
//! How a replica hears of entries depends on the main database: PostgreSQL `LISTEN` plus a
//! poll every `--change-poll-interval` (the safety net for lost notifications); MySQL and
//! MariaDB the poll alone; SQLite neither, since its main database serves one process
//! (entries are still written, so the code path is the same).

mod cursor;
mod log;
mod postgres;

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use manifold_core::{DataSource, Error, Result};

pub use log::{CHANGES_TABLE, RESYNC_AFTER, RETENTION};
pub use postgres::{CHANNEL, listener_application_name};

use cursor::Cursor;
use log::ChangeLog;

/// The kinds of change the service publishes.
pub mod kinds {
    /// A data source's record was created, changed or removed (`source`: its key): re-read
    /// the record, then load, reload, disable or remove the source.
    pub const DATA_SOURCE: &str = "dataSource";
    /// A data source's schema was re-read on request (`source`: its key, `main` included).
    pub const DATA_SOURCE_REFRESH: &str = "dataSourceRefresh";
    /// A collection or field was declared, created or dropped in a source (`source`; the
    /// collection in `subject`): lay the declarations over its schema again, re-reading it.
    pub const SCHEMA: &str = "schema";
    /// Roles, grants or scopes changed: reload the ACLs.
    pub const PERMISSIONS: &str = "permissions";
    /// Verified tokens must be checked again: the one with the token id in `subject`, or
    /// all of them without one (a user, password or role assignment changed).
    pub const SESSIONS: &str = "sessions";
}

/// What changed: a kind (see [`kinds`]) and what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// One of [`kinds`], or a kind a later feature subscribes to.
    pub kind: String,
    /// The data source concerned, if any.
    pub source: Option<String>,
    /// The collection, role, token id… concerned, if any.
    pub subject: Option<String>,
}

impl Change {
    /// A change of `kind` naming nothing in particular.
    pub fn new(kind: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            source: None,
            subject: None,
        }
    }

    /// The same change, about data source `key`.
    pub fn source(mut self, key: impl Into<String>) -> Self {
        self.source = Some(key.into());
        self
    }

    /// The same change, about `subject`.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }
}

/// Applies, on this replica, changes that another replica made and published.
#[async_trait::async_trait]
pub trait ChangeHandler: Send + Sync {
    /// Reloads what `change` names.
    async fn apply(&self, change: &Change) -> Result<()>;

    /// Reloads everything this handler keeps, after a time when changes may have been
    /// missed (the log could not be read for longer than [`RESYNC_AFTER`]).
    async fn resync(&self) -> Result<()>;
}

/// How a replica hears of the others' changes.
#[derive(Debug, Clone)]
pub struct FeedOptions {
    /// The main database's URL (`--main-db`).
    pub main_url: String,
    /// How often the log is read (`--change-poll-interval`).
    pub poll_interval: Duration,
    /// Whether a PostgreSQL main database is listened to (`--change-notifications`).
    pub notifications: bool,
}

/// A handler with the kinds of change it is given.
struct Subscription {
    kinds: Vec<String>,
    handler: Arc<dyn ChangeHandler>,
}

/// Entries read from the log at once.
const BATCH: u64 = 500;

/// This replica's end of the change log: publishes its changes, applies the others'.
pub struct ChangeFeed {
    log: ChangeLog,
    /// This process, as written in the entries it publishes (they are not applied again).
    origin: String,
    handlers: RwLock<Vec<Subscription>>,
    cursor: tokio::sync::Mutex<Cursor>,
    notifier: Option<postgres::Notifier>,
    options: FeedOptions,
    /// Whether other processes write to this main database (not SQLite).
    shared: bool,
    last_read: std::sync::Mutex<Instant>,
}

impl ChangeFeed {
    /// Opens the log in `main`. Every entry already there counts as applied: open the feed
    /// before reading any shared state, so nothing changed in between is missed.
    pub async fn open(main: &DataSource, options: FeedOptions) -> Result<Arc<Self>> {
        let log = ChangeLog::open(main).await?;
        let floor = log.latest().await?;
        let postgres = main.kind() == "postgres";
        let notifier = if postgres {
            Some(postgres::Notifier::new(&options.main_url)?)
        } else {
            None
        };
        Ok(Arc::new(Self {
            log,
            origin: uuid::Uuid::new_v4().simple().to_string(),
            handlers: RwLock::default(),
            cursor: tokio::sync::Mutex::new(Cursor::new(floor)),
            notifier,
            options,
            shared: main.kind() != "sqlite",
            last_read: std::sync::Mutex::new(Instant::now()),
        }))
    }

    /// Hands changes of the `kinds` made on other replicas to `handler`.
    pub fn subscribe(&self, kinds: &[&str], handler: Arc<dyn ChangeHandler>) {
        let kinds = kinds.iter().map(|k| (*k).to_owned()).collect();
        self.handlers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(Subscription { kinds, handler });
    }

    /// Starts hearing of other replicas' changes: the listener (PostgreSQL) and the poll.
    /// Call once every handler is subscribed and the shared state is loaded.
    pub fn start(self: &Arc<Self>) -> Result<()> {
        if !self.shared {
            return Ok(());
        }
        if self.notifier.is_some() && self.options.notifications {
            postgres::spawn_listener(Arc::downgrade(self), &self.options.main_url)?;
        }
        let feed = Arc::downgrade(self);
        let mut tick = tokio::time::interval(self.options.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::spawn(async move {
            loop {
                tick.tick().await;
                let Some(feed) = feed.upgrade() else {
                    return;
                };
                feed.catch_up_logged().await;
            }
        });
        Ok(())
    }

    /// Records `change`, already applied here, for the other replicas. Call it after the
    /// change is stored: a replica that reads the entry must find the change.
    pub async fn publish(&self, change: Change) -> Result<()> {
        let id = self.log.append(&change, &self.origin).await.map_err(|e| {
            Error::new(
                e.kind(),
                format!(
                    "the change was saved here, but other replicas were not told: {}",
                    e.message()
                ),
            )
        })?;
        if let Some(notifier) = &self.notifier
            && let Err(e) = notifier.notify(id).await
        {
            // The poll delivers it instead.
            tracing::warn!(error = %e, "cannot notify a change; replicas will poll for it");
        }
        if let Err(e) = self.log.prune().await {
            tracing::warn!(error = %e.message(), "cannot prune the change log");
        }
        Ok(())
    }

    /// [`ChangeFeed::catch_up`], with a failure logged: the next poll tries again.
    pub async fn catch_up_logged(&self) {
        if let Err(e) = self.catch_up().await {
            tracing::warn!(error = %e.message(), "cannot read the change log");
        }
    }

    /// Applies, in order, every entry of other replicas not handled yet.
    pub async fn catch_up(&self) -> Result<()> {
        let mut cursor = self.cursor.lock().await;
        let mut after = cursor.floor();
        loop {
            let entries = self.log.after(after, BATCH).await?;
            let full = entries.len() as u64 == BATCH;
            for entry in entries {
                after = entry.id;
                if cursor.take(entry.id) && entry.origin != self.origin {
                    self.dispatch(&entry.change).await;
                }
            }
            if !full {
                break;
            }
        }
        cursor.settle(Instant::now());
        drop(cursor);
        let away = {
            let mut last = self.last_read.lock().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *last, Instant::now()).elapsed()
        };
        if away > RESYNC_AFTER {
            tracing::warn!(away = ?away, "the change log was out of reach; reloading everything");
            self.resync().await;
        }
        Ok(())
    }

    async fn dispatch(&self, change: &Change) {
        let handlers: Vec<Arc<dyn ChangeHandler>> = self
            .handlers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|s| s.kinds.contains(&change.kind))
            .map(|s| s.handler.clone())
            .collect();
        if handlers.is_empty() {
            tracing::debug!(kind = %change.kind, "a change nobody here handles");
        }
        for handler in handlers {
            if let Err(e) = handler.apply(change).await {
                tracing::warn!(kind = %change.kind, source = ?change.source, error = %e.message(), "cannot apply a change");
            }
        }
    }

    async fn resync(&self) {
        let all: Vec<Arc<dyn ChangeHandler>> = self
            .handlers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|s| s.handler.clone())
            .collect();
        for handler in all {
            if let Err(e) = handler.resync().await {
                tracing::warn!(error = %e.message(), "cannot reload after missed changes");
            }
        }
    }
}
