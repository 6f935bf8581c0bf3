//! The PostgreSQL connector: a sqlx pool, introspection of one schema, repositories on the
//! shared SQL compiler, and collection DDL.

mod codec;
pub mod ddl;
mod dialect;
mod error;
pub mod introspect;
mod wire;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use manifold_core::connection_share::ConnectionShare;
use manifold_core::connector::{CollectionDefinition, Connector, FieldDefinition};
use manifold_core::data_source::{ConnectTarget, DataSourceFactory};
use manifold_core::error::{Error, Result};
use manifold_core::options::{int_option, option_error, required_string, string_option};
use manifold_core::repository::Repository;
use manifold_core::schema::Collection;
use manifold_core::value::Value;
use manifold_sql::pool::{SharedPool, check_unproven};
use manifold_sql::{Sql, SqlBuilder};
use serde_json::Value as Json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{PgPool, Postgres};

pub use codec::{PgQuery, PostgresDriver, prepare};
pub use dialect::PostgresDialect;
pub use error::map_sqlx;

/// The PostgreSQL repository: the shared sqlx repository with the PostgreSQL driver.
pub type PostgresRepository = manifold_sql::sqlx_repository::SqlxRepository<PostgresDriver>;

/// Connection and pool settings for a PostgreSQL data source.
///
/// The password lives only inside the connect options; `Debug` prints it as `"***"` and
/// no error message built from these options contains it.
#[derive(Clone)]
pub struct PostgresOptions {
    connect: PgConnectOptions,
    has_password: bool,
    /// The schema whose tables and views become collections (default `public`).
    pub schema: String,
    /// Most open connections (default 10).
    pub max_connections: u32,
    /// How long a request waits for a free connection before a 503 (default 5 s).
    pub acquire_timeout: Duration,
    /// Set per connection as `statement_timeout`; zero turns it off (default 30 s).
    pub statement_timeout: Duration,
    /// How long an unused connection stays open (default 10 min).
    pub idle_timeout: Duration,
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("host", &self.connect.get_host())
            .field("port", &self.connect.get_port())
            .field("database", &self.connect.get_database())
            .field("username", &self.connect.get_username())
            .field(
                "password",
                &if self.has_password { Some("***") } else { None },
            )
            .field("ssl_mode", &self.connect.get_ssl_mode())
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

fn ssl_mode(options: &Json) -> Result<Option<PgSslMode>> {
    Ok(match options.get("ssl") {
        None | Some(Json::Null) => None,
        Some(Json::Bool(true)) => Some(PgSslMode::Require),
        Some(Json::Bool(false)) => Some(PgSslMode::Disable),
        // NocoBase passes TLS settings as an object (`{"rejectUnauthorized": false}`).
        Some(Json::Object(_)) => Some(PgSslMode::Require),
        Some(Json::String(s)) => Some(PgSslMode::from_str(s).map_err(|_| {
            option_error(
                "ssl",
                "true, false or one of disable, allow, prefer, require, verify-ca, verify-full",
            )
        })?),
        Some(_) => return Err(option_error("ssl", "true, false or an SSL mode name")),
    })
}

/// The query parameters sqlx 0.9 reads from a `postgres://` URL (`options[…]` too); it
/// ignores any other, after logging its value, which may be a secret (`sslpassword=`).
const SQLX_PARAMS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// `url` without the query parameters sqlx would ignore, so their values never reach its
/// log line; their names are logged instead. What sqlx connects with is unchanged.
fn without_ignored_params(url: &str) -> std::borrow::Cow<'_, str> {
    let Some((base, query)) = url.split_once('?') else {
        return url.into();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let known = |pair: &str| {
        let key = pair
            .split_once('=')
            .map_or(pair, |(k, _)| k)
            .replace('+', " ");
        let key = percent_encoding::percent_decode_str(&key).decode_utf8_lossy();
        SQLX_PARAMS.contains(&key.as_ref()) || key.starts_with("options[")
    };
    let (kept, ignored): (Vec<&str>, Vec<&str>) = query
        .split('&')
        .filter(|p| !p.is_empty())
        .partition(|p| known(p));
    if ignored.is_empty() {
        return url.into();
    }
    let names: Vec<&str> = ignored
        .iter()
        .map(|p| p.split_once('=').map_or(*p, |(k, _)| k))
        .collect();
    tracing::warn!(parameters = ?names, "postgres URL parameters ignored");
    let mut out = base.to_owned();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out.into()
}

/// Whether a `postgres://` URL carries a password (in its user info or its query).
fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let in_userinfo = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    let in_query = rest
        .split_once('?')
        .is_some_and(|(_, q)| q.split('&').any(|kv| kv.starts_with("password=")));
    in_userinfo || in_query
}

impl PostgresOptions {
    /// Reads `{"url": "postgres://…"}` (optionally with a separate `password`) or
    /// `{host, port, database, username, password}`,
    /// plus `schema`, `ssl`, `maxConnections`, `acquireTimeoutMs`, `statementTimeoutMs` and
    /// `idleTimeoutMs`; a bad option is a 400 naming it. Unknown keys are ignored.
    pub fn from_json(options: &Json) -> Result<Self> {
        if !options.is_object() {
            return Err(Error::bad_request(
                "options: expected an object with url, or host, database and username",
            ));
        }
        let (mut connect, has_password) = match string_option(options, "url")? {
            Some(url) => {
                if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                    return Err(option_error("url", "a postgres:// URL"));
                }
                // The URL is not echoed: it may carry the password.
                let mut connect = PgConnectOptions::from_str(&without_ignored_params(url))
                    .map_err(|_| option_error("url", "a valid postgres:// URL"))?;
                // A separate password keeps the secret out of the URL.
                let password = string_option(options, "password")?.filter(|p| !p.is_empty());
                if let Some(password) = password {
                    connect = connect.password(password);
                }
                (connect, password.is_some() || url_has_password(url))
            }
            None => {
                let mut connect = PgConnectOptions::new_without_pgpass()
                    .host(required_string(options, "host", "postgres")?)
                    .port(int_option(options, "port", 1, 65_535)?.unwrap_or(5432) as u16)
                    .database(required_string(options, "database", "postgres")?)
                    .username(required_string(options, "username", "postgres")?);
                let password = string_option(options, "password")?.filter(|p| !p.is_empty());
                if let Some(password) = password {
                    connect = connect.password(password);
                }
                (connect, password.is_some())
            }
        };
        if !has_password {
            // Without this sqlx would fall back to the server's PGPASSWORD or ~/.pgpass:
            // a data source registered through the API must not borrow our credentials.
            connect = connect.password("");
        }
        if let Some(mode) = ssl_mode(options)? {
            connect = connect.ssl_mode(mode);
        }
        connect = connect.application_name("manifold");
        let schema = match string_option(options, "schema")? {
            None => "public".to_owned(),
            Some(s) if !s.is_empty() && s.len() <= 63 => s.to_owned(),
            Some(_) => {
                return Err(option_error(
                    "schema",
                    "a schema name of 1 to 63 characters",
                ));
            }
        };
        let ms = |name: &str, min: u64, default: u64| -> Result<Duration> {
            Ok(Duration::from_millis(
                int_option(options, name, min, 86_400_000)?.unwrap_or(default),
            ))
        };
        Ok(Self {
            connect,
            has_password,
            schema,
            max_connections: int_option(options, "maxConnections", 1, 1000)?.unwrap_or(10) as u32,
            acquire_timeout: ms("acquireTimeoutMs", 1, 5_000)?,
            statement_timeout: ms("statementTimeoutMs", 0, 30_000)?,
            idle_timeout: ms("idleTimeoutMs", 1, 600_000)?,
        })
    }

    /// Where sqlx will connect: the socket directory when one is set or the host is a
    /// path (its own rule), else the host and port over TCP.
    pub fn target(&self) -> ConnectTarget {
        let socket = self.connect.get_socket().cloned().or_else(|| {
            let host = self.connect.get_host();
            host.starts_with('/').then(|| PathBuf::from(host))
        });
        match socket {
            Some(dir) => ConnectTarget::UnixSocket(dir),
            None => ConnectTarget::Tcp {
                host: self.connect.get_host().to_owned(),
                port: self.connect.get_port(),
            },
        }
    }

    /// The server host (or socket directory).
    pub fn host(&self) -> &str {
        self.connect.get_host()
    }

    /// The server port.
    pub fn port(&self) -> u16 {
        self.connect.get_port()
    }

    /// The database name, if one was given.
    pub fn database(&self) -> Option<&str> {
        self.connect.get_database()
    }

    /// The user name.
    pub fn username(&self) -> &str {
        self.connect.get_username()
    }
}

/// A connected PostgreSQL database, serving one schema.
pub struct PostgresConnector {
    pool: SharedPool<Postgres>,
    schema: String,
    target: Arc<manifold_core::telemetry::DbAttributes>,
}

impl PostgresConnector {
    /// Creates the pool, opens one connection and checks that the schema exists.
    ///
    /// An unreachable server, unknown database or rejected login is a 503 whose message
    /// names no option value; a missing schema is a 400.
    pub async fn open(options: &PostgresOptions) -> Result<Self> {
        Self::connect(options, None).await
    }

    /// [`PostgresConnector::open`], using at most as many connections at once as `share`
    /// allows (a total for all replicas); none opens before the share has a place.
    pub async fn open_sharing(
        options: &PostgresOptions,
        share: Arc<ConnectionShare>,
    ) -> Result<Self> {
        Self::connect(options, Some(share)).await
    }

    async fn connect(
        options: &PostgresOptions,
        share: Option<Arc<ConnectionShare>>,
    ) -> Result<Self> {
        // client_connection_check_interval (PostgreSQL 14+) makes the server abort a
        // statement whose client hung up; Manifold closes the connection of a request whose
        // own client left, so the query stops with it. Older servers ignore the setting.
        let statement_timeout = Sql {
            text: "SELECT set_config('statement_timeout', $1, false), \
                   CASE WHEN current_setting('server_version_num')::int >= 140000 \
                   THEN set_config('client_connection_check_interval', '1000', false) END"
                .into(),
            params: vec![Value::Text(
                options.statement_timeout.as_millis().to_string(),
            )],
        };
        let most = share.as_ref().map_or(options.max_connections, |s| {
            options.max_connections.min(s.total())
        });
        let pool = check_unproven(
            PgPoolOptions::new()
                .max_connections(most)
                .min_connections(0)
                .acquire_timeout(options.acquire_timeout)
                .idle_timeout(Some(options.idle_timeout))
                .test_before_acquire(false)
                .after_connect(move |conn, _meta| {
                    let set = prepare(&statement_timeout);
                    Box::pin(async move {
                        // A session setting rather than a startup option: poolers such as
                        // PgBouncer refuse unknown startup parameters.
                        set.execute(conn).await.map(|_| ())
                    })
                }),
        )
        .connect_lazy_with(options.connect.clone());
        let pool = match share {
            Some(share) => SharedPool::gated(pool, share),
            None => SharedPool::new(pool),
        };
        let found = match pool.acquire().await {
            Ok(mut connection) => {
                prepare(&Sql {
                    text: "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1".into(),
                    params: vec![Value::Text(options.schema.clone())],
                })
                .fetch_optional(&mut **connection)
                .await
            }
            Err(e) => Err(e),
        };
        let problem = match found {
            Ok(Some(_)) => None,
            Ok(None) => Some(Error::bad_request(format!(
                "options.schema: schema {:?} does not exist in the database",
                options.schema
            ))),
            // The pool retries refused connections until the acquire timeout.
            Err(sqlx::Error::PoolTimedOut) => Some(Error::unavailable(format!(
                "{}: no connection within {} ms",
                error::UNREACHABLE,
                options.acquire_timeout.as_millis()
            ))),
            Err(e) => Some(map_sqlx(e)),
        };
        if let Some(problem) = problem {
            pool.close().await;
            return Err(problem);
        }
        // OpenTelemetry names a PostgreSQL namespace `database|schema`.
        let namespace = format!(
            "{}|{}",
            options.database().unwrap_or(options.username()),
            options.schema
        );
        let target = manifold_core::telemetry::DbAttributes::new("postgresql")
            .namespace(namespace)
            .server(options.host(), options.port());
        Ok(Self {
            pool,
            schema: options.schema.clone(),
            target: Arc::new(target),
        })
    }

    /// The pool, for tests and tools that need raw SQL.
    pub fn pool(&self) -> &PgPool {
        self.pool.raw()
    }

    /// The schema this connector serves.
    pub fn schema(&self) -> &str {
        &self.schema
    }
}

#[async_trait::async_trait]
impl Connector for PostgresConnector {
    async fn introspect(&self) -> Result<Vec<Collection>> {
        introspect::collections(&self.pool, &self.schema).await
    }

    fn repository(&self, collection: Arc<Collection>) -> Arc<dyn Repository> {
        Arc::new(PostgresRepository::new(self.pool.clone(), collection).on(self.target.clone()))
    }

    async fn create_collection(&self, definition: &CollectionDefinition) -> Result<Collection> {
        // DDL is transactional in PostgreSQL: the table and its comments appear together.
        let statements = std::iter::once(ddl::create_table(definition, &self.schema)?)
            .chain(ddl::array_comments(definition, &self.schema))
            .collect();
        manifold_sql::sqlx_repository::run_ddl::<PostgresDriver>(&self.pool, statements, true)
            .await?;
        introspect::collection(&self.pool, &self.schema, &definition.name).await
    }

    async fn add_field(&self, collection: &Collection, field: &FieldDefinition) -> Result<()> {
        let table = collection.table();
        let mut statements = manifold_sql::ddl::add_column(&ddl::PostgresColumns, table, field)?;
        if field.field_type == manifold_core::schema::FieldType::Array {
            let schema = table.schema.as_deref().unwrap_or(&self.schema);
            statements.push(ddl::array_comment(schema, &table.name, &field.name));
        }
        // DDL is transactional in PostgreSQL: the column, its index and comment appear
        // together.
        manifold_sql::sqlx_repository::run_ddl::<PostgresDriver>(&self.pool, statements, true).await
    }

    async fn drop_collection(&self, collection: &Collection) -> Result<()> {
        let drop = |what: &str| {
            let mut b = SqlBuilder::new(&crate::PostgresDialect);
            b.push(what).table(collection.table());
            b.finish()
        };
        let mut connection = self.pool.acquire().await.map_err(map_sqlx)?;
        if !collection.is_view {
            prepare(&drop("DROP TABLE "))
                .execute(&mut **connection)
                .await
                .map_err(map_sqlx)?;
            return Ok(());
        }
        match prepare(&drop("DROP VIEW "))
            .execute(&mut **connection)
            .await
        {
            Ok(_) => Ok(()),
            // 42809 wrong_object_type: the view is a materialised one.
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42809") => {
                prepare(&drop("DROP MATERIALIZED VIEW "))
                    .execute(&mut **connection)
                    .await
                    .map_err(map_sqlx)?;
                Ok(())
            }
            Err(e) => Err(map_sqlx(e)),
        }
    }

    async fn begin(&self) -> Result<Box<dyn manifold_core::connector::UnitOfWork>> {
        Ok(Box::new(
            manifold_sql::sqlx_repository::SqlxUnit::<PostgresDriver>::begin(&self.pool)
                .await?
                .on(self.target.clone()),
        ))
    }

    /// A READ COMMITTED transaction holding `pg_advisory_xact_lock` on the key's hash,
    /// waiting at most the statement timeout for it.
    async fn begin_locked(
        &self,
        key: &str,
    ) -> Result<Option<Box<dyn manifold_core::connector::UnitOfWork>>> {
        Ok(Some(Box::new(
            manifold_sql::sqlx_repository::SqlxUnit::<PostgresDriver>::begin_locked(
                &self.pool,
                key,
                std::time::Duration::ZERO,
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

/// Builds PostgreSQL data sources from the options [`PostgresOptions::from_json`] reads.
pub struct PostgresFactory;

#[async_trait::async_trait]
impl DataSourceFactory for PostgresFactory {
    fn kind(&self) -> &str {
        "postgres"
    }

    async fn targets(&self, options: &Json) -> Result<Vec<ConnectTarget>> {
        Ok(vec![PostgresOptions::from_json(options)?.target()])
    }

    async fn connect(&self, options: &Json) -> Result<Arc<dyn Connector>> {
        let options = PostgresOptions::from_json(options)?;
        Ok(Arc::new(PostgresConnector::open(&options).await?))
    }

    async fn connect_shared(
        &self,
        options: &Json,
        share: Arc<ConnectionShare>,
    ) -> Result<Arc<dyn Connector>> {
        let options = PostgresOptions::from_json(options)?;
        Ok(Arc::new(
            PostgresConnector::open_sharing(&options, share).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn debug_masks_the_password() {
        let options = PostgresOptions::from_json(&json!({
            "host": "db", "database": "erp", "username": "ro", "password": "s3cr3t-pw"
        }))
        .expect("valid options");
        let shown = format!("{options:?}");
        assert!(!shown.contains("s3cr3t-pw"), "{shown}");
        assert!(shown.contains("password: Some(\"***\")"), "{shown}");

        let options =
            PostgresOptions::from_json(&json!({"url": "postgres://ro:s3cr3t-pw@db:5433/erp"}))
                .expect("valid url");
        let shown = format!("{options:?}");
        assert!(!shown.contains("s3cr3t-pw"), "{shown}");
        assert!(shown.contains("port: 5433"), "{shown}");
    }

    #[test]
    fn the_target_is_where_sqlx_connects() {
        let target = |url: &str| {
            PostgresOptions::from_json(&json!({ "url": url }))
                .expect("valid url")
                .target()
        };
        let tcp = |host: &str, port| ConnectTarget::Tcp {
            host: host.into(),
            port,
        };
        assert_eq!(target("postgres://u@db:6543/x"), tcp("db", 6543));
        assert_eq!(
            target("postgres://u@127.0.0.1:5432/x?host=169.254.169.254"),
            tcp("169.254.169.254", 5432)
        );
        assert_eq!(
            target("postgres://u@127.0.0.1/x?hostaddr=10.0.0.9&port=1"),
            tcp("10.0.0.9", 1)
        );
        assert_eq!(
            target("postgres://u@127.0.0.1/x?host=/var/run/postgresql"),
            ConnectTarget::UnixSocket("/var/run/postgresql".into())
        );
        assert_eq!(
            target("postgres://u@%2Ftmp/x"),
            ConnectTarget::UnixSocket("/tmp".into())
        );
        let parts = PostgresOptions::from_json(&json!({
            "host": "/run/pg", "database": "d", "username": "u"
        }))
        .expect("valid");
        assert_eq!(parts.target(), ConnectTarget::UnixSocket("/run/pg".into()));
    }

    #[test]
    fn parameters_sqlx_ignores_are_dropped_before_it_logs_them() {
        assert_eq!(
            without_ignored_params("postgres://u@h/d?sslpassword=S3&sslmode=disable&x=1#f"),
            "postgres://u@h/d?sslmode=disable#f"
        );
        assert_eq!(
            without_ignored_params("postgres://u@h/d?pass%77ord=p&options[a]=b"),
            "postgres://u@h/d?pass%77ord=p&options[a]=b"
        );
        assert_eq!(
            without_ignored_params("postgres://u@h/d?junk=1"),
            "postgres://u@h/d"
        );
    }

    #[test]
    fn bad_options_name_the_option() {
        let err = |v: Json| {
            PostgresOptions::from_json(&v)
                .expect_err("invalid options")
                .message()
                .to_owned()
        };
        assert!(err(json!({"host": "h", "database": "d"})).contains("options.username"));
        assert!(
            err(json!({"host": "h", "database": "d", "username": "u", "port": 70000}))
                .contains("options.port")
        );
        assert!(err(json!({"url": "mysql://x"})).contains("options.url"));
        assert!(
            err(json!({"url": "postgres://u@h/d", "maxConnections": 0}))
                .contains("options.maxConnections")
        );
        assert!(
            err(json!({"url": "postgres://u@h/d", "ssl": "sometimes"})).contains("options.ssl")
        );
        assert!(err(json!({"url": "postgres://u@h/d", "schema": ""})).contains("options.schema"));
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let options =
            PostgresOptions::from_json(&json!({"url": "postgres://u@h/d"})).expect("valid url");
        assert_eq!(options.schema, "public");
        assert_eq!(options.max_connections, 10);
        assert_eq!(options.acquire_timeout, Duration::from_millis(5_000));
        assert_eq!(options.statement_timeout, Duration::from_millis(30_000));
        assert_eq!(options.idle_timeout, Duration::from_millis(600_000));
        assert_eq!(options.port(), 5432);
    }

    #[test]
    fn finds_passwords_in_urls() {
        assert!(url_has_password("postgres://u:p@h/d"));
        assert!(url_has_password("postgres://u@h/d?password=p"));
        assert!(!url_has_password("postgres://u@h/d"));
        assert!(!url_has_password("postgres://h/d?sslmode=require"));
    }
}
