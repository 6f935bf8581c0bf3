//! The MySQL/MariaDB connector: a sqlx pool, schema introspection, repositories on the shared
//! SQL compiler, and collection DDL.
//!
//! Every pooled session is set up the same way at connect: UTC time zone (instants are
//! written and read as UTC), utf8mb4, strict mode (a bad value is an error, not a silent
//! truncation), backslash escapes on (LIKE patterns are escaped with backslashes and the
//! dialect writes no `ESCAPE` clause), and the configured statement timeout.

mod codec;
pub mod ddl;
mod dialect;
mod error;
pub mod introspect;
mod options;

use std::sync::Arc;
use std::time::Duration;

use manifold_core::connection_share::ConnectionShare;
use manifold_core::connector::{CollectionDefinition, Connector, FieldDefinition};
use manifold_core::data_source::{ConnectTarget, DataSourceFactory};
use manifold_core::error::{Error, Result};
use manifold_core::repository::Repository;
use manifold_core::schema::Collection;
use manifold_sql::pool::{SharedPool, check_unproven};
use serde_json::Value as Json;
use sqlx::mysql::{MySqlConnection, MySqlPoolOptions};
use sqlx::{Decode, MySql, MySqlPool, Row};

pub use codec::MySqlDriver;
pub use dialect::{MariaDbDialect, MySqlDialect};
pub use error::map_sqlx;
pub use introspect::ServerFlavor;
pub use options::{MySqlOptions, MySqlPoolSettings};

/// The MySQL repository: the shared sqlx repository with the MySQL driver.
pub type MySqlRepository = manifold_sql::sqlx_repository::SqlxRepository<MySqlDriver>;

/// Session modes that must not be on: with `NO_BACKSLASH_ESCAPES`, LIKE has no escape
/// character and `\%` would match a backslash followed by anything.
const FORBIDDEN_MODES: &[&str] = &["NO_BACKSLASH_ESCAPES"];

/// The `SET SESSION` statement for a new connection, from the server's flavor and its
/// current `sql_mode`.
fn session_settings(flavor: ServerFlavor, sql_mode: &str, statement_timeout: Duration) -> String {
    // Mode names are the server's own; anything but [A-Z0-9_] is dropped so nothing odd can
    // reach the statement.
    let mut modes: Vec<&str> = sql_mode
        .split(',')
        .map(str::trim)
        .filter(|m| {
            !m.is_empty()
                && m.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                && !FORBIDDEN_MODES.contains(m)
        })
        .collect();
    if !modes.contains(&"STRICT_TRANS_TABLES") && !modes.contains(&"STRICT_ALL_TABLES") {
        modes.push("STRICT_TRANS_TABLES");
    }
    // A key of 0 is stored as 0, as on the other databases: without this mode MySQL reads
    // it as "the next AUTO_INCREMENT value", and the row the write reads back by its key
    // is not there.
    if !modes.contains(&"NO_AUTO_VALUE_ON_ZERO") {
        modes.push("NO_AUTO_VALUE_ON_ZERO");
    }
    let millis = statement_timeout.as_millis();
    let timeout = match flavor {
        // MariaDB counts seconds (a decimal) and covers every statement.
        ServerFlavor::MariaDb => format!(
            "max_statement_time = {}.{:03}",
            millis / 1000,
            millis % 1000
        ),
        // MySQL counts milliseconds and covers read-only SELECTs only.
        ServerFlavor::MySql => format!("max_execution_time = {millis}"),
    };
    format!(
        "SET SESSION sql_mode = '{}', time_zone = '+00:00', {timeout}",
        modes.join(",")
    )
}

/// Column `i` as text, read from its bytes: server variables arrive as text or binary
/// strings depending on the server and version.
fn text_column(row: &sqlx::mysql::MySqlRow, i: usize) -> std::result::Result<String, sqlx::Error> {
    let raw = row.try_get_raw(i)?;
    let bytes = <&[u8] as Decode<MySql>>::decode(raw).map_err(sqlx::Error::Decode)?;
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// Runs once on every new pooled connection.
async fn configure_session(
    conn: &mut MySqlConnection,
    statement_timeout: Duration,
) -> std::result::Result<(), sqlx::Error> {
    let row = sqlx::query("SELECT VERSION(), @@SESSION.sql_mode")
        .fetch_one(&mut *conn)
        .await?;
    let flavor = ServerFlavor::from_version(&text_column(&row, 0)?);
    let sql_mode = text_column(&row, 1)?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(session_settings(
        flavor,
        &sql_mode,
        statement_timeout,
    )))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A connected MySQL or MariaDB database.
pub struct MySqlConnector {
    pool: SharedPool<MySql>,
    flavor: ServerFlavor,
    /// MySQL's dialect, or MariaDB's when the server returns inserted rows.
    dialect: &'static dyn manifold_sql::Dialect,
    target: Arc<manifold_core::telemetry::DbAttributes>,
    /// How long `begin_locked` waits for `GET_LOCK`: the statement timeout.
    lock_wait: Duration,
}

impl MySqlConnector {
    /// Opens a pool on `options` and checks one connection; an unreachable server or
    /// refused login is a 503 whose message never contains the password.
    pub async fn open(options: &MySqlOptions) -> Result<Self> {
        Self::connect(options, None).await
    }

    /// [`MySqlConnector::open`], using at most as many connections at once as `share`
    /// allows (a total for all replicas); none opens before the share has a place.
    pub async fn open_sharing(options: &MySqlOptions, share: Arc<ConnectionShare>) -> Result<Self> {
        Self::connect(options, Some(share)).await
    }

    async fn connect(options: &MySqlOptions, share: Option<Arc<ConnectionShare>>) -> Result<Self> {
        let settings = &options.pool;
        let statement_timeout = settings.statement_timeout;
        let connect = options
            .connect_options()
            .clone()
            .charset("utf8mb4")
            .timezone(Some("+00:00".to_owned()));
        let idle = (!settings.idle_timeout.is_zero()).then_some(settings.idle_timeout);
        let most = share.as_ref().map_or(settings.max_connections, |s| {
            settings.max_connections.min(s.total())
        });
        let pool = check_unproven(
            MySqlPoolOptions::new()
                .max_connections(most)
                .min_connections(0)
                .acquire_timeout(settings.acquire_timeout)
                .idle_timeout(idle)
                .test_before_acquire(false)
                .after_connect(move |conn, _meta| {
                    Box::pin(async move { configure_session(conn, statement_timeout).await })
                }),
        )
        .connect_lazy_with(connect);
        let pool = match share {
            Some(share) => SharedPool::gated(pool, share),
            None => SharedPool::new(pool),
        };
        let version = match pool.acquire().await {
            Ok(mut connection) => {
                sqlx::query("SELECT VERSION()")
                    .fetch_one(&mut **connection)
                    .await
            }
            Err(e) => Err(e),
        };
        let version: String = match version {
            Ok(row) => text_column(&row, 0).map_err(map_sqlx)?,
            Err(e) => {
                pool.close().await;
                return Err(match e {
                    // sqlx retries a refused connection until the acquire timeout.
                    sqlx::Error::PoolTimedOut => Error::unavailable(format!(
                        "the data source cannot be reached: no connection to {}:{} within {} ms",
                        options.host(),
                        options.port(),
                        settings.acquire_timeout.as_millis()
                    )),
                    other => map_sqlx(other),
                });
            }
        };
        let flavor = ServerFlavor::from_version(&version);
        let dialect = dialect::of_server(&version);
        let system = match flavor {
            ServerFlavor::MySql => "mysql",
            ServerFlavor::MariaDb => "mariadb",
        };
        let target = manifold_core::telemetry::DbAttributes::new(system)
            .namespace(options.database())
            .server(options.host(), options.port());
        Ok(Self {
            pool,
            flavor,
            dialect,
            target: Arc::new(target),
            lock_wait: statement_timeout,
        })
    }

    /// The pool, for tests and tools that need raw SQL.
    pub fn pool(&self) -> &MySqlPool {
        self.pool.raw()
    }

    /// Whether the server is MySQL or MariaDB.
    pub fn flavor(&self) -> ServerFlavor {
        self.flavor
    }
}

#[async_trait::async_trait]
impl Connector for MySqlConnector {
    async fn introspect(&self) -> Result<Vec<Collection>> {
        introspect::collections(&self.pool, self.flavor).await
    }

    fn repository(&self, collection: Arc<Collection>) -> Arc<dyn Repository> {
        Arc::new(
            MySqlRepository::new(self.pool.clone(), collection)
                .on(self.target.clone())
                .in_dialect(self.dialect),
        )
    }

    async fn create_collection(&self, definition: &CollectionDefinition) -> Result<Collection> {
        codec::prepare(&manifold_sql::Sql {
            text: ddl::create_table(definition)?,
            params: Vec::new(),
        })
        .execute(&mut **self.pool.acquire().await.map_err(map_sqlx)?)
        .await
        .map_err(map_sqlx)?;
        introspect::collection(&self.pool, self.flavor, &definition.name).await
    }

    async fn add_field(&self, collection: &Collection, field: &FieldDefinition) -> Result<()> {
        // MySQL commits each DDL statement by itself, so there is no transaction to wrap
        // them in: a failed unique index leaves the column without it.
        let statements =
            manifold_sql::ddl::add_column(&ddl::MySqlColumns, collection.table(), field)?;
        manifold_sql::sqlx_repository::run_ddl::<MySqlDriver>(&self.pool, statements, false).await
    }

    async fn drop_collection(&self, collection: &Collection) -> Result<()> {
        let text = manifold_sql::ddl::drop_table(
            &crate::MySqlDialect,
            collection.table(),
            collection.is_view,
        );
        codec::prepare(&manifold_sql::Sql {
            text,
            params: Vec::new(),
        })
        .execute(&mut **self.pool.acquire().await.map_err(map_sqlx)?)
        .await
        .map_err(map_sqlx)?;
        Ok(())
    }

    async fn begin(&self) -> Result<Box<dyn manifold_core::connector::UnitOfWork>> {
        Ok(Box::new(
            manifold_sql::sqlx_repository::SqlxUnit::<MySqlDriver>::begin(&self.pool)
                .await?
                .on(self.target.clone())
                .in_dialect(self.dialect),
        ))
    }

    /// `GET_LOCK` on the key's hash before the transaction, `RELEASE_LOCK` after it.
    async fn begin_locked(
        &self,
        key: &str,
    ) -> Result<Option<Box<dyn manifold_core::connector::UnitOfWork>>> {
        Ok(Some(Box::new(
            manifold_sql::sqlx_repository::SqlxUnit::<MySqlDriver>::begin_locked(
                &self.pool,
                key,
                self.lock_wait,
            )
            .await?
            .on(self.target.clone())
            .in_dialect(self.dialect),
        )))
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    fn pool_status(&self) -> Option<manifold_core::telemetry::PoolStatus> {
        Some(self.pool.status())
    }
}

/// Builds MySQL or MariaDB data sources from [`MySqlOptions`] JSON; one instance is
/// registered per type name (`mysql`, `mariadb`), both served by the same connector.
pub struct MySqlFactory {
    kind: &'static str,
}

impl MySqlFactory {
    /// The factory registered as type `mysql`.
    pub fn mysql() -> Self {
        Self { kind: "mysql" }
    }

    /// The factory registered as type `mariadb`.
    pub fn mariadb() -> Self {
        Self { kind: "mariadb" }
    }
}

#[async_trait::async_trait]
impl DataSourceFactory for MySqlFactory {
    fn kind(&self) -> &str {
        self.kind
    }

    async fn targets(&self, options: &Json) -> Result<Vec<ConnectTarget>> {
        Ok(vec![MySqlOptions::from_json(options)?.target()])
    }

    async fn connect(&self, options: &Json) -> Result<Arc<dyn Connector>> {
        let options = MySqlOptions::from_json(options)?;
        Ok(Arc::new(MySqlConnector::open(&options).await?))
    }

    async fn connect_shared(
        &self,
        options: &Json,
        share: Arc<ConnectionShare>,
    ) -> Result<Arc<dyn Connector>> {
        let options = MySqlOptions::from_json(options)?;
        Ok(Arc::new(
            MySqlConnector::open_sharing(&options, share).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_drop_backslash_escape_and_add_strict_mode_and_zero_keys() {
        assert_eq!(
            session_settings(
                ServerFlavor::MariaDb,
                "NO_BACKSLASH_ESCAPES,ANSI_QUOTES",
                Duration::from_millis(1500)
            ),
            "SET SESSION sql_mode = 'ANSI_QUOTES,STRICT_TRANS_TABLES,NO_AUTO_VALUE_ON_ZERO', time_zone = '+00:00', max_statement_time = 1.500"
        );
        assert_eq!(
            session_settings(
                ServerFlavor::MySql,
                "STRICT_ALL_TABLES,x'; DROP",
                Duration::from_millis(250)
            ),
            "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO', time_zone = '+00:00', max_execution_time = 250"
        );
    }
}
