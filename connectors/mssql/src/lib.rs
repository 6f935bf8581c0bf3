//! The SQL Server connector: a deadpool pool of tiberius connections, introspection of
//! one schema, repositories on the shared SQL compiler (T-SQL dialect), and collection
//! DDL.
//!
//! sqlx has no SQL Server driver, so this crate runs statements itself; the statements
//! are the shared compiler's, and every value is bound as a typed parameter.

pub mod codec;
pub mod ddl;
mod dialect;
pub mod error;
pub mod introspect;
mod options;
pub mod pool;
pub mod repository;

use std::sync::Arc;
use std::time::Duration;

use manifold_core::connector::{CollectionDefinition, Connector};
use manifold_core::data_source::{ConnectTarget, DataSourceFactory};
use manifold_core::error::{Error, Result};
use manifold_core::repository::Repository;
use manifold_core::schema::{Collection, FieldType};
use manifold_core::value::Value;
use manifold_sql::Sql;
use serde_json::Value as Json;

pub use dialect::MssqlDialect;
pub use error::{UNREACHABLE, map_tiberius};
pub use options::{Encrypt, MssqlOptions, TLS_AVAILABLE};
pub use pool::{Pool, Session, check_parameter_limit};
pub use repository::{MssqlRepository, MssqlUnit};

/// A connected SQL Server database, serving one schema.
pub struct MssqlConnector {
    pool: Pool,
    schema: String,
    statement_timeout: Duration,
    target: Arc<manifold_core::telemetry::DbAttributes>,
}

impl MssqlConnector {
    /// Creates the pool, logs in once and checks that the schema exists.
    ///
    /// An unreachable server, rejected login or unknown database is a 503 whose message
    /// names no option value; a missing schema is a 400.
    pub async fn open(options: &MssqlOptions) -> Result<Self> {
        let pool = pool::build(options)?;
        let connector = Self {
            pool,
            schema: options.schema.clone(),
            statement_timeout: options.statement_timeout,
            target: Arc::new(db_target(options)),
        };
        let found = async {
            let mut session = connector.session().await?;
            let rows = session
                .query(
                    &Sql {
                        text: introspect::SCHEMA_ID.to_owned(),
                        params: vec![Value::Text(connector.schema.clone())],
                    },
                    &[FieldType::String],
                )
                .await;
            session.finish();
            rows
        }
        .await;
        let exists = |rows: &[tiberius::Row]| {
            rows.first()
                .and_then(|row| row.cells().next())
                .is_some_and(|(_, id)| !matches!(id, tiberius::ColumnData::I32(None)))
        };
        let problem = match found {
            Ok(rows) if exists(&rows) => None,
            Ok(_) => Some(Error::bad_request(format!(
                "options.schema: schema {:?} does not exist in the database",
                connector.schema
            ))),
            Err(e) => Some(e),
        };
        if let Some(problem) = problem {
            connector.pool.close();
            return Err(problem);
        }
        Ok(connector)
    }

    /// The pool, for tests and tools.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The schema this connector serves.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// A session on one pooled connection, for tests and tools that need raw T-SQL (bind
    /// every value; never splice one into the text).
    pub async fn session(&self) -> Result<Session> {
        Session::acquire(&self.pool, self.statement_timeout).await
    }

    /// Runs one statement on a pooled connection and returns how many rows it changed.
    pub async fn execute(&self, sql: &Sql) -> Result<u64> {
        let mut session = self.session().await?;
        let outcome = session.execute(sql, &[]).await;
        session.finish();
        outcome
    }
}

#[async_trait::async_trait]
impl Connector for MssqlConnector {
    async fn introspect(&self) -> Result<Vec<Collection>> {
        let mut session = self.session().await?;
        let outcome = introspect::collections(&mut session, &self.schema).await;
        session.finish();
        outcome
    }

    fn repository(&self, collection: Arc<Collection>) -> Arc<dyn Repository> {
        Arc::new(
            MssqlRepository::new(self.pool.clone(), collection, self.statement_timeout)
                .on(self.target.clone()),
        )
    }

    async fn create_collection(&self, definition: &CollectionDefinition) -> Result<Collection> {
        let statements: Vec<Sql> = std::iter::once(ddl::create_table(definition, &self.schema)?)
            .chain(ddl::unique_indexes(definition, &self.schema))
            .map(|text| Sql {
                text,
                params: Vec::new(),
            })
            .collect();
        let mut session = self.session().await?;
        // DDL is transactional in SQL Server: the table and its indexes appear together.
        let mut outcome = session.begin().await;
        for sql in &statements {
            if outcome.is_ok() {
                outcome = session.execute(sql, &[]).await.map(|_| ());
            }
        }
        let outcome = match outcome {
            Ok(()) => match session.commit().await {
                Ok(()) => {
                    introspect::collection(&mut session, &self.schema, &definition.name).await
                }
                Err(e) => Err(e),
            },
            Err(e) => {
                session.rollback().await;
                Err(e)
            }
        };
        session.finish();
        outcome
    }

    async fn drop_collection(&self, collection: &Collection) -> Result<()> {
        let sql = Sql {
            text: manifold_sql::ddl::drop_table(
                &MssqlDialect,
                collection.table(),
                collection.is_view,
            ),
            params: Vec::new(),
        };
        self.execute(&sql).await.map(|_| ())
    }

    async fn begin(&self) -> Result<Box<dyn manifold_core::connector::UnitOfWork>> {
        Ok(Box::new(
            MssqlUnit::begin(&self.pool, self.statement_timeout)
                .await?
                .on(self.target.clone()),
        ))
    }

    /// `sp_getapplock` on the key's hash, owned by the transaction.
    async fn begin_locked(
        &self,
        key: &str,
    ) -> Result<Option<Box<dyn manifold_core::connector::UnitOfWork>>> {
        Ok(Some(Box::new(
            MssqlUnit::begin_locked(&self.pool, self.statement_timeout, key)
                .await?
                .on(self.target.clone()),
        )))
    }

    async fn close(&self) {
        self.pool.close();
    }

    fn pool_status(&self) -> Option<manifold_core::telemetry::PoolStatus> {
        let status = self.pool.status();
        let size = u32::try_from(status.size).unwrap_or(u32::MAX);
        let idle = u32::try_from(status.available).unwrap_or(0);
        Some(manifold_core::telemetry::PoolStatus {
            size,
            in_use: size.saturating_sub(idle),
            max: u32::try_from(status.max_size).unwrap_or(u32::MAX),
        })
    }
}

/// Builds SQL Server data sources (type `mssql`) from the options
/// [`MssqlOptions::from_json`] reads.
pub struct MssqlFactory;

#[async_trait::async_trait]
impl DataSourceFactory for MssqlFactory {
    fn kind(&self) -> &str {
        "mssql"
    }

    async fn targets(&self, options: &Json) -> Result<Vec<ConnectTarget>> {
        Ok(vec![MssqlOptions::from_json(options)?.target()?])
    }

    async fn connect(&self, options: &Json) -> Result<Arc<dyn Connector>> {
        let options = MssqlOptions::from_json(options)?;
        Ok(Arc::new(MssqlConnector::open(&options).await?))
    }
}

/// The span attributes of a server: `database|schema` as OpenTelemetry names a SQL Server
/// namespace, and the host and port of the address (never the connection string).
fn db_target(options: &MssqlOptions) -> manifold_core::telemetry::DbAttributes {
    let mut target = manifold_core::telemetry::DbAttributes::new(repository::SYSTEM).namespace(
        match options.database() {
            Some(database) => format!("{database}|{}", options.schema),
            None => options.schema.clone(),
        },
    );
    let address = options.address();
    match address
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
    {
        Some((host, port)) => target = target.server(host, port),
        None => target.server_address = Some(address.to_owned()),
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SQL Server span attributes, checked at unit level: no SQL Server runs here.
    #[test]
    fn sql_server_span_target_names_database_schema_host_and_port_but_no_secret() {
        let options = MssqlOptions::from_json(&serde_json::json!({
            "host": "db.internal", "port": 1444, "database": "shop",
            "username": "sa", "password": "pw-Secret-1", "schema": "sales",
            "encrypt": "notSupported",
        }))
        .expect("valid options");
        let target = db_target(&options);
        assert_eq!(target.system, "microsoft.sql_server");
        assert_eq!(target.namespace.as_deref(), Some("shop|sales"));
        assert_eq!(target.server_address.as_deref(), Some("db.internal"));
        assert_eq!(target.server_port, Some(1444));
        assert!(!format!("{target:?}").contains("pw-Secret-1"));
    }
}
