//! The main database named by `--main-db`, opened by its URL scheme: its connector, kept
//! by its concrete type so that the migrations (`crate::migrations`) can take a connection
//! of their own from its pool before the schema is read.

use std::sync::Arc;

use manifold_core::{Connector, Error, Result};
use manifold_mysql::{MySqlConnector, MySqlOptions};
use manifold_postgres::{PostgresConnector, PostgresOptions};
use manifold_sqlite::{SqliteConnector, SqlitePoolSettings};

/// An open main database whose schema has not been read yet.
pub enum MainDatabase {
    /// A SQLite file (created with its directory on first start).
    Sqlite(Arc<SqliteConnector>),
    /// A PostgreSQL database; Manifold's tables live in the connector's schema.
    Postgres(Arc<PostgresConnector>),
    /// A MySQL or MariaDB database.
    MySql {
        /// The connector.
        connector: Arc<MySqlConnector>,
        /// `mysql` or `mariadb`, as the URL's scheme said.
        kind: &'static str,
        /// The database's name, which scopes the migration lock (`GET_LOCK` names are
        /// server-wide).
        database: String,
    },
}

impl MainDatabase {
    /// Opens the database at `url` (`sqlite://…`, `postgres://…`, `postgresql://…`,
    /// `mysql://…`, `mariadb://…`) with at most `max_connections` pooled connections; an
    /// unknown scheme is a 400 naming `--main-db`.
    pub async fn open(url: &str, max_connections: u32) -> Result<Self> {
        let scheme = url.split(':').next().unwrap_or("");
        let options = |url: String| {
            serde_json::json!({
                "url": url,
                "maxConnections": max_connections,
            })
        };
        match scheme {
            "sqlite" => {
                let pool = SqlitePoolSettings {
                    max_connections,
                    ..SqlitePoolSettings::default()
                };
                Ok(Self::Sqlite(Arc::new(
                    SqliteConnector::open(url, &pool).await?,
                )))
            }
            "postgres" | "postgresql" => {
                let options = PostgresOptions::from_json(&options(url.to_owned()))?;
                Ok(Self::Postgres(Arc::new(
                    PostgresConnector::open(&options).await?,
                )))
            }
            "mysql" | "mariadb" => {
                // sqlx speaks MariaDB through the mysql scheme.
                let options =
                    MySqlOptions::from_json(&options(url.replacen("mariadb://", "mysql://", 1)))?;
                Ok(Self::MySql {
                    connector: Arc::new(MySqlConnector::open(&options).await?),
                    kind: if scheme == "mariadb" {
                        "mariadb"
                    } else {
                        "mysql"
                    },
                    database: options.database().to_owned(),
                })
            }
            other => Err(Error::bad_request(format!(
                "--main-db: unsupported URL scheme {other:?}; use sqlite://, postgres:// or mysql://"
            ))),
        }
    }

    /// The data-source type of the database (`sqlite`, `postgres`, `mysql`, `mariadb`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
            Self::MySql { kind, .. } => kind,
        }
    }

    /// The connector, for the `main` data source.
    pub fn connector(&self) -> Arc<dyn Connector> {
        match self {
            Self::Sqlite(c) => c.clone(),
            Self::Postgres(c) => c.clone(),
            Self::MySql { connector, .. } => connector.clone(),
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.connector().close().await;
    }
}
