//! The connection pool (tiberius has none of its own) and the one way statements reach
//! the server: a [`Session`] on one checked-out connection, which binds parameters,
//! enforces the parameter limit and the statement timeout, and decides whether the
//! connection may serve the next request.

use std::time::{Duration, Instant};

use deadpool::managed::{
    self, Metrics, Object, PoolError, RecycleError, RecycleResult, TimeoutType,
};
use manifold_core::error::{Error, ErrorKind, Result};
use manifold_core::schema::FieldType;
use manifold_core::value::Value;
use manifold_sql::{Dialect as _, Sql};

use crate::dialect::MssqlDialect;
use tiberius::error::Error as TdsError;
use tiberius::{Config, Query, Row};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};
use tracing::Instrument as _;

use crate::codec;
use crate::error::{
    UNREACHABLE, leaves_connection_usable, map_server, map_tiberius, unique_violation_name,
};
use crate::options::MssqlOptions;

/// A tiberius client over a tokio TCP stream.
pub type Client = tiberius::Client<Compat<TcpStream>>;

/// SQL Server's own limit of parameters in one request.
pub const SERVER_PARAMETER_LIMIT: usize = 2100;

/// One pooled connection and when it was last handed back.
pub struct Connection {
    client: Client,
    idle_since: Instant,
}

/// Opens and recycles connections for the pool.
pub struct Manager {
    config: Config,
    idle_timeout: Duration,
}

impl managed::Manager for Manager {
    type Type = Connection;
    type Error = TdsError;

    async fn create(&self) -> std::result::Result<Connection, TdsError> {
        let tcp = TcpStream::connect(self.config.get_addr()).await?;
        // Requests are small and answered at once; Nagle would only delay them.
        tcp.set_nodelay(true)?;
        let client = tiberius::Client::connect(self.config.clone(), tcp.compat_write()).await?;
        Ok(Connection {
            client,
            idle_since: Instant::now(),
        })
    }

    async fn recycle(&self, conn: &mut Connection, _: &Metrics) -> RecycleResult<TdsError> {
        // Connections that sat unused too long are replaced rather than trusted: the
        // server or a firewall may have dropped them meanwhile.
        if conn.idle_since.elapsed() > self.idle_timeout {
            return Err(RecycleError::message("idle for longer than idleTimeoutMs"));
        }
        Ok(())
    }
}

/// The pool of one data source.
pub type Pool = managed::Pool<Manager>;

/// Builds the pool for `options`; no connection is opened yet.
pub fn build(options: &MssqlOptions) -> Result<Pool> {
    let manager = Manager {
        config: options.config().clone(),
        idle_timeout: options.idle_timeout,
    };
    Pool::builder(manager)
        .max_size(options.max_connections as usize)
        .wait_timeout(Some(options.acquire_timeout))
        .create_timeout(Some(options.acquire_timeout))
        .recycle_timeout(Some(options.acquire_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| {
            tracing::error!(error = %e, "sql server pool could not be built");
            Error::internal("the connection pool could not be built")
        })
}

/// Maps a failure to get a connection.
pub fn map_pool(e: PoolError<TdsError>, acquire_timeout: Duration) -> Error {
    match e {
        PoolError::Timeout(TimeoutType::Wait) => Error::unavailable(format!(
            "{UNREACHABLE}: no database connection became free within {} ms (all are busy)",
            acquire_timeout.as_millis()
        )),
        PoolError::Timeout(_) => Error::unavailable(format!(
            "{UNREACHABLE}: no connection within {} ms",
            acquire_timeout.as_millis()
        )),
        PoolError::Backend(e) => map_tiberius(e),
        PoolError::Closed => {
            Error::unavailable(format!("{UNREACHABLE}: the data source was closed"))
        }
        other => {
            tracing::error!(error = %other, "sql server pool failure");
            Error::internal("unexpected connection pool failure")
        }
    }
}

/// Refuses a statement SQL Server would refuse for its number of parameters, before it
/// is sent. The compiler splits long `IN` lists, but a request can still carry more
/// values than one statement may (many lists, or very long `$anyOf` arrays).
pub fn check_parameter_limit(sql: &Sql) -> Result<()> {
    let limit = MssqlDialect.max_params();
    if sql.params.len() > limit {
        return Err(Error::bad_request(format!(
            "the request needs {} query parameters, more than SQL Server's limit of {SERVER_PARAMETER_LIMIT} \
             per statement allows (Manifold sends at most {limit}); use shorter value lists",
            sql.params.len()
        )));
    }
    Ok(())
}

/// One checked-out connection for the length of one repository operation.
///
/// The connection goes back to the pool only through [`Session::finish`] and only if
/// nothing left it mid-message. If the operation is dropped first (its client left, a
/// deadline passed) or a statement timed out or failed on the wire, the connection is
/// closed instead: the server then sees its client go and abandons the statement, and no
/// half-read reply can reach the next user.
pub struct Session {
    object: Option<Object<Manager>>,
    usable: bool,
    statement_timeout: Duration,
}

impl Session {
    /// Checks out a connection, waiting at most the pool's acquire timeout.
    pub async fn acquire(pool: &Pool, statement_timeout: Duration) -> Result<Self> {
        let object = pool
            .get()
            .await
            .map_err(|e| map_pool(e, pool.timeouts().wait.unwrap_or_default()))?;
        Ok(Self {
            object: Some(object),
            usable: true,
            statement_timeout,
        })
    }

    fn client(&mut self) -> Result<&mut Client> {
        self.object
            .as_mut()
            .map(|o| &mut o.client)
            .ok_or_else(|| Error::internal("the connection was already returned"))
    }

    /// Hands the connection back to the pool (or closes it, if it is out of step).
    pub fn finish(mut self) {
        if let Some(mut object) = self.object.take() {
            if self.usable {
                object.idle_since = Instant::now();
                drop(object);
            } else {
                drop(Object::take(object));
            }
        }
    }

    /// Runs `work` under the statement timeout; a failure on the wire or a timeout marks
    /// the connection for closing.
    async fn timed<T>(
        &mut self,
        sql_text: &str,
        work: impl AsyncFnOnce(&mut Client) -> std::result::Result<T, TdsError>,
    ) -> std::result::Result<T, Failure> {
        let timeout = self.statement_timeout;
        let span = tracing::debug_span!(
            "mssql.query",
            "db.system.name" = "microsoft.sql_server",
            "db.query.text" = sql_text
        );
        let client = self.client().map_err(Failure::Other)?;
        let outcome = async {
            if timeout.is_zero() {
                Ok(work(client).await)
            } else {
                tokio::time::timeout(timeout, work(client)).await
            }
        }
        .instrument(span)
        .await;
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if !leaves_connection_usable(&e) {
                    self.usable = false;
                }
                Err(Failure::Driver(e))
            }
            Err(_) => {
                self.usable = false;
                Err(Failure::Other(Error::new(
                    ErrorKind::Timeout,
                    "the query took longer than the statement timeout",
                )))
            }
        }
    }

    /// Runs `sql` and returns its rows. `hints` gives the column type of the first
    /// parameters (the written values), so their NULLs are typed.
    pub async fn query(&mut self, sql: &Sql, hints: &[FieldType]) -> Result<Vec<Row>> {
        let query = prepare(sql, hints)?;
        let outcome = self
            .timed(&sql.text, async move |client| {
                query.query(client).await?.into_first_result().await
            })
            .await;
        self.resolve(outcome).await
    }

    /// Runs `sql` and returns how many rows it changed.
    pub async fn execute(&mut self, sql: &Sql, hints: &[FieldType]) -> Result<u64> {
        let query = prepare(sql, hints)?;
        let outcome = self
            .timed(&sql.text, async move |client| {
                Ok(query.execute(client).await?.total())
            })
            .await;
        self.resolve(outcome).await
    }

    /// Starts a transaction; the next [`Session::commit`] or [`Session::rollback`] ends it.
    pub async fn begin(&mut self) -> Result<()> {
        let outcome = self
            .timed("BEGIN TRANSACTION", async |client| {
                client.begin_transaction().await
            })
            .await;
        self.resolve(outcome).await
    }

    /// Commits the open transaction. If the commit fails the transaction's state is
    /// unknown, so the connection is closed rather than pooled (the server then rolls
    /// back whatever is still open).
    pub async fn commit(&mut self) -> Result<()> {
        let outcome = self
            .timed("COMMIT TRANSACTION", async |client| {
                client.commit_transaction().await
            })
            .await;
        if outcome.is_err() {
            self.usable = false;
        }
        self.resolve(outcome).await
    }

    /// Rolls the open transaction back; if that fails the connection is closed, which
    /// rolls it back on the server.
    pub async fn rollback(&mut self) {
        let outcome = self
            .timed("ROLLBACK TRANSACTION", async |client| {
                client.rollback_transaction().await
            })
            .await;
        if outcome.is_err() {
            self.usable = false;
        }
    }

    async fn resolve<T>(&mut self, outcome: std::result::Result<T, Failure>) -> Result<T> {
        match outcome {
            Ok(value) => Ok(value),
            Err(Failure::Other(e)) => Err(e),
            Err(Failure::Driver(TdsError::Server(token))) => {
                Err(match unique_violation_name(&token) {
                    Some(name) => self.describe_unique_violation(&name, &token).await,
                    None => map_server(&token),
                })
            }
            Err(Failure::Driver(e)) => Err(map_tiberius(e)),
        }
    }

    /// "email already exists" rather than the constraint's generated name, by reading the
    /// violated index's columns from the catalog; falls back to the name.
    async fn describe_unique_violation(
        &mut self,
        name: &str,
        token: &tiberius::error::TokenError,
    ) -> Error {
        let fallback = map_server(token);
        let Some(object) = token
            .message()
            .split_once("object '")
            .and_then(|(_, rest)| rest.split_once('\''))
            .map(|(object, _)| object.to_owned())
        else {
            return fallback;
        };
        let sql = Sql {
            text: crate::introspect::UNIQUE_INDEX_COLUMNS.to_owned(),
            params: vec![Value::Text(name.to_owned()), Value::Text(object)],
        };
        let Ok(query) = prepare(&sql, &[]) else {
            return fallback;
        };
        let outcome = self
            .timed(&sql.text, async move |client| {
                query.query(client).await?.into_first_result().await
            })
            .await;
        let columns: Vec<String> = match outcome {
            Ok(rows) => rows
                .iter()
                .filter_map(|r| r.try_get::<&str, _>(0).ok().flatten().map(str::to_owned))
                .collect(),
            Err(_) => Vec::new(),
        };
        if columns.is_empty() {
            fallback
        } else {
            Error::bad_request(format!("{} already exists", columns.join(", ")))
                .with_code(manifold_core::error::UNIQUE_VIOLATION)
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // Dropped without `finish`: the operation was abandoned mid-flight.
        if let Some(object) = self.object.take() {
            drop(Object::take(object));
        }
    }
}

/// Why a statement failed: the driver's error (kept whole, so server errors can be
/// examined), or one of ours.
enum Failure {
    Driver(TdsError),
    Other(Error),
}

/// The tiberius query for `sql`, every parameter bound with its SQL Server type.
fn prepare(sql: &Sql, hints: &[FieldType]) -> Result<Query<'static>> {
    check_parameter_limit(sql)?;
    let mut query = Query::new(sql.text.clone());
    for (i, value) in sql.params.iter().enumerate() {
        query.bind(codec::bind(value, hints.get(i).copied())?);
    }
    Ok(query)
}
