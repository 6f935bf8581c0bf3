//! The SQL Server repository: the shared compiler's T-SQL, run over the pool.
//!
//! It mirrors the sqlx repository: one checked-out connection per operation, a
//! transaction for creates of several rows, and updates returned in key order. Writes
//! return their rows in the same statement, with `OUTPUT INSERTED`.

use std::sync::Arc;
use std::time::Duration;

use manifold_core::connector::UnitOfWork;
use manifold_core::error::{Error, Result};
use manifold_core::filter::{FieldRef, Filter};
use manifold_core::query::FindOptions;
use manifold_core::repository::{Record, Repository, WriteValues};
use manifold_core::schema::{Collection, FieldType};
use manifold_core::telemetry::{DbAttributes, error_type, record_error};
use manifold_sql::{Sql, compile};

use crate::dialect::MssqlDialect;
use tiberius::ColumnData;
use tokio::sync::{Mutex, MutexGuard};
use tracing::Instrument;

use crate::codec;
use crate::pool::{Pool, Session, check_parameter_limit};

/// Reads and writes one table through the pool, or inside a unit of work's transaction.
pub struct MssqlRepository {
    runner: Runner,
    collection: Arc<Collection>,
    visible: Vec<FieldRef>,
    keys: Vec<FieldRef>,
    statement_timeout: Duration,
    /// What its statement spans say about the database.
    target: Arc<DbAttributes>,
}

/// The statements the repository runs, exactly as sent (tests check them as T-SQL).
pub mod statements {
    use super::*;

    /// `list`/`get`: the compiler's `SELECT`, with `OFFSET … FETCH` for a window.
    pub fn find(collection: &Collection, options: &FindOptions) -> Sql {
        compile::select(&MssqlDialect, collection, options)
    }

    /// [`find`] of `fields`, already worked out by the caller.
    pub fn find_columns(
        collection: &Collection,
        options: &FindOptions,
        fields: &[FieldRef],
    ) -> Sql {
        compile::select_columns(&MssqlDialect, collection, options, fields)
    }

    /// `count` (`COUNT_BIG`, since `COUNT` overflows past 2^31 - 1 rows in SQL Server).
    pub fn count(collection: &Collection, filter: Option<&Filter>) -> Sql {
        compile::count(&MssqlDialect, collection, filter)
    }

    /// `create`: one `INSERT … OUTPUT INSERTED.… VALUES (…)` per row.
    pub fn insert(collection: &Collection, values: &WriteValues, returning: &[FieldRef]) -> Sql {
        compile::insert(
            &MssqlDialect,
            collection,
            values,
            (!returning.is_empty()).then_some(returning),
        )
    }

    /// `update`: `UPDATE … SET … OUTPUT INSERTED.… WHERE …`.
    pub fn update(
        collection: &Collection,
        values: &WriteValues,
        filter: Option<&Filter>,
        returning: &[FieldRef],
    ) -> Sql {
        compile::update(
            &MssqlDialect,
            collection,
            values,
            filter,
            (!returning.is_empty()).then_some(returning),
        )
    }

    /// `destroy`: `DELETE FROM … WHERE …`.
    pub fn destroy(collection: &Collection, filter: Option<&Filter>) -> Sql {
        compile::delete(&MssqlDialect, collection, filter)
    }

    /// The lock a locked unit of work takes right after `BEGIN TRANSACTION`:
    /// `sp_getapplock` on the key's hash, owned by the transaction, waiting at most
    /// `wait` (zero: no limit of its own); one row, `granted` 1 when it is held.
    pub fn key_lock(key: &str, wait: Duration) -> Sql {
        crate::dialect::sp_getapplock(key, wait)
    }
}

/// Where a repository's statements run: on a pooled connection per operation, or in the
/// one transaction of a unit of work.
enum Runner {
    Pool(Pool),
    Unit(Arc<Mutex<Option<Session>>>),
}

/// The session one operation runs on.
enum Lease<'a> {
    // Boxed: a session holds the whole client, which would make every lease that large.
    Pooled(Box<Session>),
    Shared(MutexGuard<'a, Option<Session>>),
}

impl Lease<'_> {
    fn session(&mut self) -> Result<&mut Session> {
        match self {
            Lease::Pooled(session) => Ok(session),
            Lease::Shared(guard) => guard
                .as_mut()
                .ok_or_else(|| Error::internal("the unit of work was already committed")),
        }
    }

    fn finish(self) {
        if let Lease::Pooled(session) = self {
            (*session).finish();
        }
    }
}

/// A unit of work: one transaction on one connection, which every repository it hands
/// out writes in. Dropped without [`UnitOfWork::commit`], its connection is closed, and
/// the server rolls the transaction back.
pub struct MssqlUnit {
    session: Arc<Mutex<Option<Session>>>,
    statement_timeout: Duration,
    target: Arc<DbAttributes>,
}

impl MssqlUnit {
    /// Begins a transaction on a connection of `pool`.
    pub async fn begin(pool: &Pool, statement_timeout: Duration) -> Result<Self> {
        let mut session = Session::acquire(pool, statement_timeout).await?;
        session.begin().await?;
        Ok(Self {
            session: Arc::new(Mutex::new(Some(session))),
            statement_timeout,
            target: Arc::new(DbAttributes::new(SYSTEM)),
        })
    }

    /// Begins a transaction that holds an exclusive application lock on `key` until it
    /// ends ([`statements::key_lock`]), waiting at most the statement timeout for it. A
    /// lock not granted in time is a timeout (504).
    pub async fn begin_locked(pool: &Pool, statement_timeout: Duration, key: &str) -> Result<Self> {
        let unit = Self::begin(pool, statement_timeout).await?;
        let lock = statements::key_lock(key, statement_timeout);
        let granted = {
            let mut held = unit.session.lock().await;
            let session = held
                .as_mut()
                .ok_or_else(|| Error::internal("the unit of work was already committed"))?;
            let rows = session.query(&lock, &[]).await?;
            rows.first()
                .and_then(|row| row.cells().next())
                .is_some_and(|(_, data)| matches!(data, ColumnData::I64(Some(1))))
        };
        if !granted {
            return Err(Error::new(
                manifold_core::error::ErrorKind::Timeout,
                "another request held the lock on these values for too long; retry",
            ));
        }
        Ok(unit)
    }

    /// Names the database the spans of its repositories describe.
    pub fn on(mut self, target: Arc<DbAttributes>) -> Self {
        self.target = target;
        self
    }
}

#[async_trait::async_trait]
impl UnitOfWork for MssqlUnit {
    fn repository(&self, collection: Arc<Collection>) -> Arc<dyn Repository> {
        Arc::new(MssqlRepository::with_runner(
            Runner::Unit(self.session.clone()),
            collection,
            self.statement_timeout,
            self.target.clone(),
        ))
    }

    async fn commit(self: Box<Self>) -> Result<()> {
        let mut session = self
            .session
            .lock()
            .await
            .take()
            .ok_or_else(|| Error::internal("the unit of work was already committed"))?;
        session.commit().await?;
        session.finish();
        Ok(())
    }
}

/// The column types of the written values, which come first among a write's parameters.
fn write_hints(values: &WriteValues) -> Vec<FieldType> {
    values.0.iter().map(|(f, _)| f.field_type).collect()
}

impl MssqlRepository {
    /// A repository for `collection` on `pool`; every statement may run for at most
    /// `statement_timeout` (zero: no limit).
    pub fn new(pool: Pool, collection: Arc<Collection>, statement_timeout: Duration) -> Self {
        Self::with_runner(
            Runner::Pool(pool),
            collection,
            statement_timeout,
            Arc::new(DbAttributes::new(SYSTEM)),
        )
    }

    /// Names the database its statement spans describe (namespace, server), as the
    /// connector learnt them when it opened.
    pub fn on(mut self, target: Arc<DbAttributes>) -> Self {
        self.target = target;
        self
    }

    fn with_runner(
        runner: Runner,
        collection: Arc<Collection>,
        statement_timeout: Duration,
        target: Arc<DbAttributes>,
    ) -> Self {
        let visible = FieldRef::visible(&collection);
        let keys = collection.primary_key().map(FieldRef::new).collect();
        Self {
            runner,
            collection,
            visible,
            keys,
            statement_timeout,
            target,
        }
    }

    /// Runs one statement under its database client span, marking the span failed with
    /// the error's kind when it fails.
    async fn traced<T>(
        &self,
        operation: &'static str,
        sql: &Sql,
        statement: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let span = self
            .target
            .span(operation, &self.collection.table().name, || {
                sql.text.clone()
            });
        let outcome = statement.instrument(span.clone()).await;
        if let Err(e) = &outcome {
            record_error(&span, error_type(e.kind()), None);
        }
        outcome
    }

    async fn lease(&self) -> Result<Lease<'_>> {
        Ok(match &self.runner {
            Runner::Pool(pool) => Lease::Pooled(Box::new(
                Session::acquire(pool, self.statement_timeout).await?,
            )),
            Runner::Unit(session) => Lease::Shared(session.lock().await),
        })
    }

    async fn fetch(
        &self,
        session: &mut Session,
        sql: &Sql,
        hints: &[FieldType],
        fields: &[FieldRef],
    ) -> Result<Vec<Record>> {
        let rows = self
            .traced(sql.operation(), sql, session.query(sql, hints))
            .await?;
        rows.iter().map(|r| codec::record(r, fields)).collect()
    }

    async fn create_on(&self, session: &mut Session, rows: &[WriteValues]) -> Result<Vec<Record>> {
        let mut out = Vec::with_capacity(rows.len());
        for values in rows {
            let sql = statements::insert(&self.collection, values, &self.visible);
            if self.visible.is_empty() {
                self.traced("INSERT", &sql, session.execute(&sql, &write_hints(values)))
                    .await?;
                out.push(Record::new());
                continue;
            }
            let mut records = self
                .fetch(session, &sql, &write_hints(values), &self.visible)
                .await?;
            if records.len() != 1 {
                return Err(Error::internal(format!(
                    "the database returned {} rows for one inserted row",
                    records.len()
                )));
            }
            out.append(&mut records);
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Repository for MssqlRepository {
    fn collection(&self) -> &Arc<Collection> {
        &self.collection
    }

    async fn find(&self, options: &FindOptions) -> Result<Vec<Record>> {
        let fields = options.fields.as_deref().unwrap_or(&self.visible);
        let sql = statements::find_columns(&self.collection, options, fields);
        check_parameter_limit(&sql)?;
        let mut lease = self.lease().await?;
        let outcome = match lease.session() {
            Ok(session) => self.fetch(session, &sql, &[], fields).await,
            Err(e) => Err(e),
        };
        lease.finish();
        outcome
    }

    async fn count(&self, filter: Option<&Filter>) -> Result<u64> {
        let sql = statements::count(&self.collection, filter);
        check_parameter_limit(&sql)?;
        let mut lease = self.lease().await?;
        let outcome = match lease.session() {
            Ok(session) => self.traced("SELECT", &sql, session.query(&sql, &[])).await,
            Err(e) => Err(e),
        };
        lease.finish();
        let rows = outcome?;
        let count =
            rows.first()
                .and_then(|row| row.cells().next())
                .and_then(|(_, data)| match data {
                    ColumnData::I64(v) => v.and_then(|n| u64::try_from(n).ok()),
                    ColumnData::I32(v) => v.and_then(|n| u64::try_from(n).ok()),
                    _ => None,
                });
        count.ok_or_else(|| Error::internal("the database returned no count"))
    }

    async fn create(&self, rows: &[WriteValues]) -> Result<Vec<Record>> {
        let mut lease = self.lease().await?;
        // One statement is atomic by itself, and a unit of work is one transaction already.
        let own_transaction = rows.len() > 1 && matches!(lease, Lease::Pooled(_));
        let outcome = match lease.session() {
            Ok(session) if own_transaction => match session.begin().await {
                Ok(()) => match self.create_on(session, rows).await {
                    Ok(records) => session.commit().await.map(|()| records),
                    Err(e) => {
                        // SQL Server keeps a transaction open after a failed statement
                        // (unless XACT_ABORT is on); end it before the connection is reused.
                        session.rollback().await;
                        Err(e)
                    }
                },
                Err(e) => Err(e),
            },
            Ok(session) => self.create_on(session, rows).await,
            Err(e) => Err(e),
        };
        lease.finish();
        outcome
    }

    async fn update(&self, filter: Option<&Filter>, values: &WriteValues) -> Result<Vec<Record>> {
        let mut records = if values.is_empty() {
            let options = FindOptions {
                filter: filter.cloned(),
                ..FindOptions::default()
            };
            self.find(&options).await?
        } else {
            let sql = statements::update(&self.collection, values, filter, &self.visible);
            let hints = write_hints(values);
            check_parameter_limit(&sql)?;
            let mut lease = self.lease().await?;
            let outcome = match lease.session() {
                Ok(session) if self.visible.is_empty() => self
                    .traced("UPDATE", &sql, session.execute(&sql, &hints))
                    .await
                    .map(|_| Vec::new()),
                Ok(session) => self.fetch(session, &sql, &hints, &self.visible).await,
                Err(e) => Err(e),
            };
            lease.finish();
            outcome?
        };
        manifold_sql::rows::sort_by_keys(&mut records, &self.keys);
        Ok(records)
    }

    async fn destroy(&self, filter: Option<&Filter>) -> Result<u64> {
        let sql = statements::destroy(&self.collection, filter);
        check_parameter_limit(&sql)?;
        let mut lease = self.lease().await?;
        let outcome = match lease.session() {
            Ok(session) => {
                self.traced("DELETE", &sql, session.execute(&sql, &[]))
                    .await
            }
            Err(e) => Err(e),
        };
        lease.finish();
        outcome
    }
}

/// `db.system.name` of SQL Server.
pub const SYSTEM: &str = "microsoft.sql_server";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_server_span_operation_is_the_statement_keyword() {
        let sql = |text: &str| Sql {
            text: text.into(),
            params: Vec::new(),
        };
        assert_eq!(sql("SELECT COUNT_BIG(*) FROM x").operation(), "SELECT");
        assert_eq!(sql("  insert INTO x").operation(), "INSERT");
        assert_eq!(sql("MERGE x").operation(), "QUERY");
    }
}
