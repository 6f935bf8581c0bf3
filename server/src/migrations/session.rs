//! The connection the migrations run on: taken out of the main database's pool for good
//! (it never goes back, so neither its lock nor its settings can leak to a request), with
//! no statement timeout (a migration may take long) but lock waits limited to
//! `--migration-lock-timeout`; the statements of the version table; and the DDL of the
//! main database's dialect.

use std::time::Duration;

use manifold_core::Result;
use manifold_core::connector::{CollectionDefinition, FieldDefinition};
use manifold_core::schema::{Collection, FieldType, TableName};
use manifold_mysql::{MySqlDriver, ServerFlavor};
use manifold_sql::pool::SharedPool;
use manifold_sql::sqlx_repository::SqlxDriver as _;
use manifold_sql::{Dialect, SqlBuilder};
use sqlx::mysql::MySqlConnection;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;
use sqlx::{AssertSqlSafe, Connection as _, MySqlPool, PgPool, Row as _, SqlitePool};

use super::{MIGRATIONS_TABLE, MigrationError, PLUGIN_MIGRATIONS_TABLE};
use crate::main_db::MainDatabase;

/// How the main database writes DDL: with its connector's own column types, so the tables
/// read back through introspection as the types they were declared with.
pub enum Ddl {
    /// SQLite.
    Sqlite,
    /// PostgreSQL, in `schema`.
    Postgres {
        /// The schema Manifold's tables live in.
        schema: String,
    },
    /// MySQL and MariaDB.
    MySql,
}

impl Ddl {
    /// The statements that create the table of `definition`.
    pub fn create_table(&self, definition: &CollectionDefinition) -> Result<Vec<String>> {
        Ok(match self {
            Self::Sqlite => vec![manifold_sqlite::ddl::create_table(definition)?],
            Self::Postgres { schema } => {
                std::iter::once(manifold_postgres::ddl::create_table(definition, schema)?)
                    .chain(manifold_postgres::ddl::array_comments(definition, schema))
                    .collect()
            }
            Self::MySql => vec![manifold_mysql::ddl::create_table(definition)?],
        })
    }

    /// The statements that add `field` to the existing `table`.
    pub fn add_column(&self, table: &TableName, field: &FieldDefinition) -> Result<Vec<String>> {
        use manifold_sql::ddl::add_column;
        match self {
            Self::Sqlite => add_column(&manifold_sqlite::ddl::SqliteColumns, table, field),
            Self::Postgres { schema } => {
                let mut statements =
                    add_column(&manifold_postgres::ddl::PostgresColumns, table, field)?;
                if field.field_type == FieldType::Array {
                    let schema = table.schema.as_deref().unwrap_or(schema);
                    statements.push(manifold_postgres::ddl::array_comment(
                        schema,
                        &table.name,
                        &field.name,
                    ));
                }
                Ok(statements)
            }
            Self::MySql => add_column(&manifold_mysql::ddl::MySqlColumns, table, field),
        }
    }

    fn dialect(&self) -> &'static dyn Dialect {
        match self {
            Self::Sqlite => &manifold_sqlite::SqliteDialect,
            Self::Postgres { .. } => &manifold_postgres::PostgresDialect,
            Self::MySql => &manifold_mysql::MySqlDialect,
        }
    }

    /// The version table's name, quoted (and schema-qualified on PostgreSQL).
    fn migrations_table(&self) -> String {
        self.quoted_table(MIGRATIONS_TABLE)
    }

    /// The table `name` of Manifold's, quoted (and schema-qualified on PostgreSQL).
    pub(super) fn quoted_table(&self, name: &str) -> String {
        let table = TableName {
            schema: match self {
                Self::Postgres { schema } => Some(schema.clone()),
                _ => None,
            },
            name: name.into(),
        };
        let mut b = SqlBuilder::new(self.dialect());
        b.table(&table);
        b.finish().text
    }
}

/// The connection of one database kind, and the pool its introspection reads through.
enum Link {
    Sqlite {
        connection: SqliteConnection,
        pool: SqlitePool,
        /// The database file's lock file, locked while [`Session::lock`] holds it.
        lock: Option<std::fs::File>,
    },
    Postgres {
        connection: PgConnection,
        pool: PgPool,
    },
    MySql {
        connection: MySqlConnection,
        pool: MySqlPool,
        flavor: ServerFlavor,
    },
}

/// The migrations' own connection to the main database.
pub struct Session {
    link: Link,
    ddl: Ddl,
    /// What scopes the lock: the PostgreSQL schema or the MySQL database.
    scope: String,
    /// Holds the session lock (released by [`Session::release`]).
    locked: bool,
}

/// A whole number of milliseconds from 1 (0 would mean no limit) to the largest that
/// PostgreSQL's `lock_timeout` and SQLite's `busy_timeout` take (a 32-bit integer).
fn millis(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, i32::MAX as u64)
}

/// A whole number of seconds from 1 to MySQL's largest `lock_wait_timeout` (a year).
fn seconds(wait: Duration) -> u64 {
    wait.as_secs().clamp(1, 31_536_000)
}

/// SQLite has no session lock, so processes sharing a database file lock a file beside
/// it (`main.sqlite` → `main.sqlite-manifold-lock`; left in place, as removing a lock file
/// races with the next taker). An in-memory database is never shared: nothing to lock.
/// SQLite itself says which file `connection` has open (`PRAGMA database_list`, empty for
/// memory); sqlx's options name `sqlite::memory:` after a URI of its own.
async fn lock_file(
    connection: &mut SqliteConnection,
    wait: Duration,
) -> std::result::Result<Option<std::fs::File>, MigrationError> {
    const POLL: Duration = Duration::from_millis(25);
    let database: String =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(&mut *connection)
            .await
            .map_err(manifold_sqlite::map_sqlx)?;
    if database.is_empty() {
        return Ok(None);
    }
    let mut path = std::ffi::OsString::from(database);
    path.push("-manifold-lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| {
            manifold_core::Error::unavailable(format!(
                "cannot open the migration lock file {}: {e}",
                std::path::Path::new(&path).display()
            ))
        })?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(POLL).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(MigrationError::LockTimeout { waited: wait });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(manifold_core::Error::unavailable(format!(
                    "cannot lock the migration lock file {}: {e}",
                    std::path::Path::new(&path).display()
                ))
                .into());
            }
        }
    }
}

impl Session {
    /// Takes a connection out of `database`'s pool and sets it up for migrating.
    pub async fn open(database: &MainDatabase, wait: Duration) -> Result<Self> {
        match database {
            MainDatabase::Sqlite(connector) => {
                let pool = connector.pool().clone();
                let mut connection = pool
                    .acquire()
                    .await
                    .map_err(manifold_sqlite::map_sqlx)?
                    .detach();
                // BEGIN IMMEDIATE waits this long for another process's write lock.
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "PRAGMA busy_timeout = {}",
                    millis(wait)
                )))
                .execute(&mut connection)
                .await
                .map_err(manifold_sqlite::map_sqlx)?;
                Ok(Self {
                    link: Link::Sqlite {
                        connection,
                        pool,
                        lock: None,
                    },
                    ddl: Ddl::Sqlite,
                    scope: String::new(),
                    locked: false,
                })
            }
            MainDatabase::Postgres(connector) => {
                let pool = connector.pool().clone();
                let mut connection = pool
                    .acquire()
                    .await
                    .map_err(manifold_postgres::map_sqlx)?
                    .detach();
                // lock_timeout covers the advisory lock and the table locks DDL waits for.
                sqlx::query(
                    "SELECT set_config('statement_timeout', '0', false), \
                     set_config('lock_timeout', $1, false)",
                )
                .bind(millis(wait).to_string())
                .execute(&mut connection)
                .await
                .map_err(manifold_postgres::map_sqlx)?;
                let schema = connector.schema().to_owned();
                Ok(Self {
                    link: Link::Postgres { connection, pool },
                    ddl: Ddl::Postgres {
                        schema: schema.clone(),
                    },
                    scope: schema,
                    locked: false,
                })
            }
            MainDatabase::MySql {
                connector,
                database,
                ..
            } => {
                let pool = connector.pool().clone();
                let flavor = connector.flavor();
                let mut connection = pool
                    .acquire()
                    .await
                    .map_err(manifold_mysql::map_sqlx)?
                    .detach();
                let no_statement_timeout = match flavor {
                    ServerFlavor::MariaDb => "max_statement_time = 0",
                    ServerFlavor::MySql => "max_execution_time = 0",
                };
                // lock_wait_timeout: how long DDL waits for a table another session uses.
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "SET SESSION {no_statement_timeout}, lock_wait_timeout = {}",
                    seconds(wait)
                )))
                .execute(&mut connection)
                .await
                .map_err(manifold_mysql::map_sqlx)?;
                Ok(Self {
                    link: Link::MySql {
                        connection,
                        pool,
                        flavor,
                    },
                    ddl: Ddl::MySql,
                    scope: database.clone(),
                    locked: false,
                })
            }
        }
    }

    /// Takes the database-wide migration lock, waiting at most `wait`.
    pub async fn lock(&mut self, wait: Duration) -> std::result::Result<(), MigrationError> {
        if let Link::Sqlite {
            connection, lock, ..
        } = &mut self.link
        {
            *lock = lock_file(connection, wait).await?;
            return Ok(());
        }
        let key = format!("manifold migrations {}", self.scope);
        let Some(lock) = self.ddl.dialect().session_lock(&key, wait) else {
            return Ok(());
        };
        let granted: Option<i64> = match &mut self.link {
            Link::Sqlite { .. } => return Ok(()),
            Link::Postgres { connection, .. } => {
                match manifold_postgres::prepare(&lock.acquire)
                    .fetch_one(&mut *connection)
                    .await
                {
                    Ok(row) => row
                        .try_get("granted")
                        .map_err(manifold_postgres::map_sqlx)?,
                    // 55P03 lock_not_available: lock_timeout ran out.
                    Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("55P03") => None,
                    Err(e) => return Err(manifold_postgres::map_sqlx(e).into()),
                }
            }
            Link::MySql { connection, .. } => MySqlDriver::prepare(&lock.acquire)
                .fetch_one(&mut *connection)
                .await
                .and_then(|row| row.try_get("granted"))
                .map_err(manifold_mysql::map_sqlx)?,
        };
        if granted != Some(1) {
            return Err(MigrationError::LockTimeout { waited: wait });
        }
        self.locked = true;
        Ok(())
    }

    /// Gives the lock back and closes the connection; a failure only ends the session
    /// early, which releases the lock as well.
    pub async fn release(self) {
        let key = format!("manifold migrations {}", self.scope);
        let lock = self
            .ddl
            .dialect()
            .session_lock(&key, Duration::ZERO)
            .filter(|_| self.locked);
        let closed = match self.link {
            // Closing the lock file (dropped with the link) unlocks it.
            Link::Sqlite { connection, .. } => connection.close().await,
            Link::Postgres { mut connection, .. } => {
                if let Some(lock) = lock
                    && let Err(e) = manifold_postgres::prepare(&lock.release)
                        .execute(&mut connection)
                        .await
                {
                    tracing::warn!("releasing the migration lock: {e}");
                }
                connection.close().await
            }
            Link::MySql { mut connection, .. } => {
                if let Some(lock) = lock
                    && let Err(e) = MySqlDriver::prepare(&lock.release)
                        .execute(&mut connection)
                        .await
                {
                    tracing::warn!("releasing the migration lock: {e}");
                }
                connection.close().await
            }
        };
        if let Err(e) = closed {
            tracing::debug!("closing the migration connection: {e}");
        }
    }

    /// The main database's DDL.
    pub fn ddl(&self) -> &Ddl {
        &self.ddl
    }

    /// The schema as it is now (read through the pool: one read at start, not per request).
    pub async fn introspect(&self) -> Result<Vec<Collection>> {
        match &self.link {
            Link::Sqlite { pool, .. } => {
                let mut connection = pool.acquire().await.map_err(manifold_sqlite::map_sqlx)?;
                manifold_sqlite::introspect::collections(&mut connection).await
            }
            Link::Postgres { pool, .. } => {
                let pool = SharedPool::new(pool.clone());
                manifold_postgres::introspect::collections(&pool, &self.scope).await
            }
            Link::MySql { pool, flavor, .. } => {
                let pool = SharedPool::new(pool.clone());
                manifold_mysql::introspect::collections(&pool, *flavor).await
            }
        }
    }

    /// Whether the version table exists.
    pub async fn has_migrations_table(&mut self) -> Result<bool> {
        let count: i64 = match &mut self.link {
            Link::Sqlite { connection, .. } => sqlx::query_scalar(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
            )
            .bind(MIGRATIONS_TABLE)
            .fetch_one(&mut *connection)
            .await
            .map_err(manifold_sqlite::map_sqlx)?,
            Link::Postgres { connection, .. } => sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = $1 AND table_name = $2",
            )
            .bind(&self.scope)
            .bind(MIGRATIONS_TABLE)
            .fetch_one(&mut *connection)
            .await
            .map_err(manifold_postgres::map_sqlx)?,
            Link::MySql { connection, .. } => sqlx::query_scalar(
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND table_name = ?",
            )
            .bind(MIGRATIONS_TABLE)
            .fetch_one(&mut *connection)
            .await
            .map_err(manifold_mysql::map_sqlx)?,
        };
        Ok(count > 0)
    }

    /// Creates the version table if it is not there.
    pub async fn create_migrations_table(&mut self) -> Result<()> {
        let table = self.ddl.migrations_table();
        let statement = match self.ddl {
            Ddl::Sqlite => format!(
                "CREATE TABLE IF NOT EXISTS {table} (\"version\" BIGINT PRIMARY KEY, \
                 \"name\" VARCHAR(255) NOT NULL, \"appliedAt\" DATETIME NOT NULL \
                 DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
            ),
            Ddl::Postgres { .. } => format!(
                "CREATE TABLE IF NOT EXISTS {table} (\"version\" BIGINT PRIMARY KEY, \
                 \"name\" VARCHAR(255) NOT NULL, \"appliedAt\" TIMESTAMPTZ NOT NULL \
                 DEFAULT now())"
            ),
            // The session's time zone is UTC (the connector sets it).
            Ddl::MySql => format!(
                "CREATE TABLE IF NOT EXISTS {table} (`version` BIGINT PRIMARY KEY, \
                 `name` VARCHAR(255) NOT NULL, `appliedAt` DATETIME(3) NOT NULL \
                 DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
            ),
        };
        self.execute(&statement).await
    }

    /// The highest version recorded (0: none).
    pub async fn version(&mut self) -> Result<i64> {
        let text = AssertSqlSafe(format!(
            "SELECT COALESCE(MAX(version), 0) FROM {}",
            self.ddl.migrations_table()
        ));
        match &mut self.link {
            Link::Sqlite { connection, .. } => sqlx::query_scalar(text)
                .fetch_one(&mut *connection)
                .await
                .map_err(manifold_sqlite::map_sqlx),
            Link::Postgres { connection, .. } => sqlx::query_scalar(text)
                .fetch_one(&mut *connection)
                .await
                .map_err(manifold_postgres::map_sqlx),
            Link::MySql { connection, .. } => sqlx::query_scalar(text)
                .fetch_one(&mut *connection)
                .await
                .map_err(manifold_mysql::map_sqlx),
        }
    }

    /// The highest version of `plugin`'s migrations recorded (0: none).
    pub async fn plugin_version(&mut self, plugin: &str) -> Result<i64> {
        let table = self.ddl.quoted_table(PLUGIN_MIGRATIONS_TABLE);
        let placeholder = match self.ddl {
            Ddl::Postgres { .. } => "$1",
            Ddl::Sqlite | Ddl::MySql => "?",
        };
        let text = AssertSqlSafe(format!(
            "SELECT COALESCE(MAX(version), 0) FROM {table} WHERE plugin = {placeholder}"
        ));
        match &mut self.link {
            Link::Sqlite { connection, .. } => sqlx::query_scalar(text)
                .bind(plugin)
                .fetch_one(&mut *connection)
                .await
                .map_err(manifold_sqlite::map_sqlx),
            Link::Postgres { connection, .. } => sqlx::query_scalar(text)
                .bind(plugin)
                .fetch_one(&mut *connection)
                .await
                .map_err(manifold_postgres::map_sqlx),
            Link::MySql { connection, .. } => sqlx::query_scalar(text)
                .bind(plugin)
                .fetch_one(&mut *connection)
                .await
                .map_err(manifold_mysql::map_sqlx),
        }
    }

    /// Records that `plugin`'s migration `version` (`name`) has run.
    pub async fn record_plugin(&mut self, plugin: &str, version: i64, name: &str) -> Result<()> {
        let table = self.ddl.quoted_table(PLUGIN_MIGRATIONS_TABLE);
        let text = AssertSqlSafe(match self.ddl {
            Ddl::Sqlite => {
                format!("INSERT INTO {table} (\"plugin\", \"version\", \"name\") VALUES (?, ?, ?)")
            }
            Ddl::Postgres { .. } => format!(
                "INSERT INTO {table} (\"plugin\", \"version\", \"name\") VALUES ($1, $2, $3)"
            ),
            Ddl::MySql => {
                format!("INSERT INTO {table} (`plugin`, `version`, `name`) VALUES (?, ?, ?)")
            }
        });
        match &mut self.link {
            Link::Sqlite { connection, .. } => {
                sqlx::query(text)
                    .bind(plugin)
                    .bind(version)
                    .bind(name)
                    .execute(&mut *connection)
                    .await
                    .map_err(manifold_sqlite::map_sqlx)?;
            }
            Link::Postgres { connection, .. } => {
                sqlx::query(text)
                    .bind(plugin)
                    .bind(version)
                    .bind(name)
                    .execute(&mut *connection)
                    .await
                    .map_err(manifold_postgres::map_sqlx)?;
            }
            Link::MySql { connection, .. } => {
                sqlx::query(text)
                    .bind(plugin)
                    .bind(version)
                    .bind(name)
                    .execute(&mut *connection)
                    .await
                    .map_err(manifold_mysql::map_sqlx)?;
            }
        }
        Ok(())
    }

    /// Records that migration `version` (`name`) has run.
    pub async fn record(&mut self, version: i64, name: &str) -> Result<()> {
        let table = self.ddl.migrations_table();
        match &mut self.link {
            Link::Sqlite { connection, .. } => {
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO {table} (\"version\", \"name\") VALUES (?, ?)"
                )))
                .bind(version)
                .bind(name)
                .execute(&mut *connection)
                .await
                .map_err(manifold_sqlite::map_sqlx)?;
            }
            Link::Postgres { connection, .. } => {
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO {table} (\"version\", \"name\") VALUES ($1, $2)"
                )))
                .bind(version)
                .bind(name)
                .execute(&mut *connection)
                .await
                .map_err(manifold_postgres::map_sqlx)?;
            }
            Link::MySql { connection, .. } => {
                sqlx::query(AssertSqlSafe(format!(
                    "INSERT INTO {table} (`version`, `name`) VALUES (?, ?)"
                )))
                .bind(version)
                .bind(name)
                .execute(&mut *connection)
                .await
                .map_err(manifold_mysql::map_sqlx)?;
            }
        }
        Ok(())
    }

    /// Runs one statement without parameters (DDL, or transaction control).
    pub async fn execute(&mut self, statement: &str) -> Result<()> {
        let sql = sqlx::raw_sql(AssertSqlSafe(statement.to_owned()));
        match &mut self.link {
            Link::Sqlite { connection, .. } => {
                sql.execute(&mut *connection)
                    .await
                    .map_err(manifold_sqlite::map_sqlx)?;
            }
            Link::Postgres { connection, .. } => {
                sql.execute(&mut *connection)
                    .await
                    .map_err(manifold_postgres::map_sqlx)?;
            }
            Link::MySql { connection, .. } => {
                sql.execute(&mut *connection)
                    .await
                    .map_err(manifold_mysql::map_sqlx)?;
            }
        }
        Ok(())
    }

    /// Begins one migration's transaction: `BEGIN IMMEDIATE` on SQLite (the database's
    /// write lock, taken before the version is read), `BEGIN` on PostgreSQL, nothing on
    /// MySQL, whose DDL commits each statement by itself.
    pub async fn begin(&mut self) -> Result<()> {
        match self.ddl {
            Ddl::Sqlite => self.execute("BEGIN IMMEDIATE").await,
            Ddl::Postgres { .. } => self.execute("BEGIN").await,
            Ddl::MySql => Ok(()),
        }
    }

    /// Commits what [`Session::begin`] began.
    pub async fn commit(&mut self) -> Result<()> {
        match self.ddl {
            Ddl::Sqlite | Ddl::Postgres { .. } => self.execute("COMMIT").await,
            Ddl::MySql => Ok(()),
        }
    }

    /// Rolls back what [`Session::begin`] began; a failure is only logged, since the
    /// migration's own error is what the caller reports.
    pub async fn rollback(&mut self) {
        let outcome = match self.ddl {
            Ddl::Sqlite | Ddl::Postgres { .. } => self.execute("ROLLBACK").await,
            Ddl::MySql => Ok(()),
        };
        if let Err(e) = outcome {
            tracing::warn!("rolling back a failed migration: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stay_within_what_each_database_takes() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_secs(120)), 120_000);
        assert_eq!(millis(Duration::from_secs(u64::MAX)), i32::MAX as u64);
        assert_eq!(seconds(Duration::from_millis(10)), 1);
        assert_eq!(seconds(Duration::from_secs(u64::MAX)), 31_536_000);
    }

    #[test]
    fn the_version_table_is_quoted_and_in_the_schema() {
        let pg = Ddl::Postgres {
            schema: "app".into(),
        };
        assert_eq!(pg.migrations_table(), "\"app\".\"_manifold_migrations\"");
        assert_eq!(Ddl::MySql.migrations_table(), "`_manifold_migrations`");
        assert_eq!(Ddl::Sqlite.migrations_table(), "\"_manifold_migrations\"");
    }
}
