//! The SQLite connector: a sqlx pool, schema introspection, repositories on the shared SQL
//! compiler, and collection DDL. It is also the embedded default main data source.

mod codec;
pub mod ddl;
mod dialect;
mod error;
pub mod introspect;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use manifold_core::connector::{CollectionDefinition, Connector, FieldDefinition};
use manifold_core::data_source::{ConnectTarget, DataSourceFactory};
use manifold_core::error::{Error, Result};
use manifold_core::repository::Repository;
use manifold_core::schema::Collection;
use manifold_sql::pool::SharedPool;
use serde_json::Value as Json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

pub use dialect::SqliteDialect;
pub use error::map_sqlx;

/// The SQLite repository: the shared sqlx repository with the SQLite driver.
pub type SqliteRepository = manifold_sql::sqlx_repository::SqlxRepository<codec::SqliteDriver>;

/// Pool settings for a SQLite data source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlitePoolSettings {
    /// Most open connections (WAL lets readers run beside the one writer).
    pub max_connections: u32,
    /// How long a request waits for a free connection before a 503.
    pub acquire_timeout: Duration,
    /// How long a write waits on SQLite's lock before giving up.
    pub busy_timeout: Duration,
    /// How long a connection stays open unused. Short: reopening a SQLite connection is a
    /// file open, while an open one holds its page cache and its worker thread's memory,
    /// which a busy moment leaves large (issue 16: 73–82 MB still held 10 s after a fuzz
    /// run with 10 minutes, 42–49 MB with 3 s).
    pub idle_timeout: Duration,
}

impl Default for SqlitePoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(3),
        }
    }
}

/// A connected SQLite database.
pub struct SqliteConnector {
    /// Never gated: a SQLite file serves one process.
    pool: SharedPool<Sqlite>,
    target: Arc<manifold_core::telemetry::DbAttributes>,
}

/// Whether `url` names an in-memory database. sqlx keeps that flag to itself and names
/// `sqlite::memory:`'s database `file:sqlx-in-memory-<n>`, so the URL and the name tell.
fn is_in_memory(url: &str, options: &SqliteConnectOptions) -> bool {
    let name = options.get_filename().to_string_lossy();
    name == ":memory:"
        || name.starts_with("file:sqlx-in-memory-")
        || url
            .split_once('?')
            .is_some_and(|(_, query)| query.split('&').any(|p| p == "mode=memory"))
}

impl SqliteConnector {
    /// Opens (creating if missing, along with its directory) the database at `url`
    /// (`sqlite://./data/main.sqlite`, `sqlite::memory:`).
    pub async fn open(url: &str, settings: &SqlitePoolSettings) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::bad_request(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(settings.busy_timeout);
        if let Some(dir) = Path::new(options.get_filename()).parent()
            && !dir.as_os_str().is_empty()
        {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                Error::unavailable(format!("cannot create directory {}: {e}", dir.display()))
            })?;
        }
        let in_memory = is_in_memory(url, &options);
        // The file's name only: its directory says nothing a trace reader needs.
        let file = options
            .get_filename()
            .file_name()
            .map_or_else(|| ":memory:".into(), |f| f.to_string_lossy().into_owned());
        let target =
            Arc::new(manifold_core::telemetry::DbAttributes::new("sqlite").namespace(file));
        let pool = SqlitePoolOptions::new()
            // Each in-memory connection would be a separate empty database.
            .max_connections(if in_memory {
                1
            } else {
                settings.max_connections
            })
            .min_connections(if in_memory { 1 } else { 0 })
            .acquire_timeout(settings.acquire_timeout)
            .idle_timeout(if in_memory {
                None
            } else {
                Some(settings.idle_timeout)
            })
            .max_lifetime(None)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(map_sqlx)?;
        Ok(Self {
            pool: SharedPool::new(pool),
            target,
        })
    }

    /// The pool, for tests and tools that need raw SQL.
    pub fn pool(&self) -> &SqlitePool {
        self.pool.raw()
    }
}

#[async_trait::async_trait]
impl Connector for SqliteConnector {
    async fn introspect(&self) -> Result<Vec<Collection>> {
        let mut connection = self.pool.acquire().await.map_err(map_sqlx)?;
        introspect::collections(&mut connection).await
    }

    fn repository(&self, collection: Arc<Collection>) -> Arc<dyn Repository> {
        Arc::new(SqliteRepository::new(self.pool.clone(), collection).on(self.target.clone()))
    }

    async fn create_collection(&self, definition: &CollectionDefinition) -> Result<Collection> {
        let mut connection = self.pool.acquire().await.map_err(map_sqlx)?;
        codec::prepare(&manifold_sql::Sql {
            text: ddl::create_table(definition)?,
            params: Vec::new(),
        })
        .execute(&mut **connection)
        .await
        .map_err(map_sqlx)?;
        introspect::collection(&mut connection, &definition.name, false).await
    }

    async fn add_field(&self, collection: &Collection, field: &FieldDefinition) -> Result<()> {
        let statements =
            manifold_sql::ddl::add_column(&ddl::SqliteColumns, collection.table(), field)?;
        // DDL is transactional in SQLite: the column and its unique index appear together.
        manifold_sql::sqlx_repository::run_ddl::<codec::SqliteDriver>(&self.pool, statements, true)
            .await
    }

    async fn drop_collection(&self, collection: &Collection) -> Result<()> {
        let text = manifold_sql::ddl::drop_table(
            &crate::SqliteDialect,
            collection.table(),
            collection.is_view,
        );
        let mut connection = self.pool.acquire().await.map_err(map_sqlx)?;
        codec::prepare(&manifold_sql::Sql {
            text,
            params: Vec::new(),
        })
        .execute(&mut **connection)
        .await
        .map_err(map_sqlx)?;
        Ok(())
    }

    async fn begin(&self) -> Result<Box<dyn manifold_core::connector::UnitOfWork>> {
        Ok(Box::new(
            manifold_sql::sqlx_repository::SqlxUnit::<codec::SqliteDriver>::begin(&self.pool)
                .await?
                .on(self.target.clone()),
        ))
    }

    /// `BEGIN IMMEDIATE`: the database's one write lock, held from the start, waiting at
    /// most the busy timeout for it. It locks more than the key, but SQLite has nothing
    /// finer.
    async fn begin_locked(
        &self,
        key: &str,
    ) -> Result<Option<Box<dyn manifold_core::connector::UnitOfWork>>> {
        Ok(Some(Box::new(
            manifold_sql::sqlx_repository::SqlxUnit::<codec::SqliteDriver>::begin_locked(
                &self.pool,
                key,
                Duration::ZERO,
            )
            .await?
            .on(self.target.clone()),
        )))
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn pool_status(&self) -> Option<manifold_core::telemetry::PoolStatus> {
        Some(self.pool.status())
    }
}

/// Builds SQLite data sources from `{"url": "sqlite://…"}` or `{"path": "…"}`.
pub struct SqliteFactory;

#[async_trait::async_trait]
impl DataSourceFactory for SqliteFactory {
    fn kind(&self) -> &str {
        "sqlite"
    }

    fn file_based(&self) -> bool {
        true
    }

    /// A file on this machine, no connection: where it may be is the caller's rule.
    async fn targets(&self, _options: &Json) -> Result<Vec<ConnectTarget>> {
        Ok(Vec::new())
    }

    async fn connect(&self, options: &Json) -> Result<Arc<dyn Connector>> {
        let url = match (options.get("url"), options.get("path")) {
            (Some(Json::String(url)), _) => url.clone(),
            (_, Some(Json::String(path))) => format!("sqlite://{path}"),
            _ => {
                return Err(Error::bad_request(
                    "options.url (sqlite://path) or options.path is required for sqlite",
                ));
            }
        };
        let mut settings = SqlitePoolSettings::default();
        if let Some(n) = options.get("maxConnections").and_then(Json::as_u64) {
            settings.max_connections = n.clamp(1, 64) as u32;
        }
        Ok(Arc::new(SqliteConnector::open(&url, &settings).await?))
    }
}
