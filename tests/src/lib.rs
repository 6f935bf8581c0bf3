//! Shared fixtures for Manifold's end-to-end tests: a real service on a temporary SQLite
//! main database, driven through its real HTTP endpoint.

use std::io::Write as _;
use std::sync::{Arc, Once};

pub mod proxy;

#[path = "../../connectors/mongo/tests/support/secantus.rs"]
mod secantus;

use manifold_core::DataSourceFactory;
use manifold_core::connector::{CollectionDefinition, Connector as _};
use manifold_server::{App, AppBuilder, Plugin, ServeConfig, http};
use poem::http::Method;
use poem::{Endpoint, EndpointExt, Request};
use serde_json::{Value as Json, json};

/// The database a test's main data source runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A temporary SQLite file.
    Sqlite,
    /// A fresh database on the local PostgreSQL (`MANIFOLD_TEST_POSTGRES_URL`).
    Postgres,
    /// A fresh database on the local MariaDB (`MANIFOLD_TEST_MYSQL_URL`).
    MariaDb,
}

/// A database that cannot be the main one, tested as a data source registered beside a
/// SQLite main database under [`EXTERNAL_KEY`]; the helpers of [`TestApp`] address it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum External {
    /// An in-memory SecantusDB (MongoDB wire protocol) started for the test.
    MongoDb,
    /// A scratch database on the SQL Server named by `MSSQL_URL`.
    Mssql,
}

/// The key an [`External`] database is registered under.
pub const EXTERNAL_KEY: &str = "ext";

/// The database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Main(Backend),
    External(External),
}

tokio::task_local! {
    static TARGET: Target;
}

/// Runs `test` with every `TestApp` it makes on `backend`.
pub async fn on_backend<F: std::future::Future>(backend: Backend, test: F) -> F::Output {
    TARGET.scope(Target::Main(backend), test).await
}

/// Runs `test` with every `TestApp` it makes serving `external` as data source
/// [`EXTERNAL_KEY`] (its main database is SQLite).
pub async fn on_external<F: std::future::Future>(external: External, test: F) -> F::Output {
    TARGET.scope(Target::External(external), test).await
}

/// The main database of the running test (SQLite unless a test runs under [`on_backend`]).
pub fn current_backend() -> Backend {
    match TARGET.try_with(|t| *t) {
        Ok(Target::Main(backend)) => backend,
        _ => Backend::Sqlite,
    }
}

/// The external database of the running test, if it runs under [`on_external`].
pub fn current_external() -> Option<External> {
    match TARGET.try_with(|t| *t) {
        Ok(Target::External(external)) => Some(external),
        _ => None,
    }
}

/// `MSSQL_URL`, or `None` after saying (once per test binary, past the test harness's
/// output capture so every run shows it) that SQL Server is not exercised.
///
/// SQL Server is the one server the project's machines cannot run (see
/// `/work/shared/testing.md`), so its tests pass without it; every other missing server
/// fails its tests.
pub fn mssql_url() -> Option<String> {
    static SAID: Once = Once::new();
    match std::env::var("MSSQL_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            SAID.call_once(|| {
                let _ = writeln!(
                    std::io::stdout(),
                    "SQL Server not exercised: MSSQL_URL is unset"
                );
            });
            None
        }
    }
}

/// Defines one test per database: `name::sqlite`, `name::postgres`, `name::mariadb` (the
/// main database) and `name::mongodb`, `name::mssql` (a registered data source the test's
/// requests go to, see [`External`]). A backend whose server is missing fails its tests;
/// none is skipped, except SQL Server when `MSSQL_URL` is unset (one printed line).
///
/// A test whose semantics do not apply to an external database opts out with a first
/// attribute `#[skip(mongodb)]`, `#[skip(mssql)]` or `#[skip(mongodb, mssql)]`, under a
/// comment saying why; `grep -rn '#\[skip(' tests/tests` lists every opt-out.
#[macro_export]
macro_rules! every_backend {
    (#[skip(mongodb, mssql)] $($rest:tt)*) => {
        $crate::every_backend!(@tests [] $($rest)*);
    };
    (#[skip(mssql, mongodb)] $($rest:tt)*) => {
        $crate::every_backend!(@tests [] $($rest)*);
    };
    (#[skip(mongodb)] $($rest:tt)*) => {
        $crate::every_backend!(@tests [mssql] $($rest)*);
    };
    (#[skip(mssql)] $($rest:tt)*) => {
        $crate::every_backend!(@tests [mongodb] $($rest)*);
    };
    (@tests [$($external:ident)*] $(#[$meta:meta])* async fn $name:ident() $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn sqlite() {
                $crate::on_backend($crate::Backend::Sqlite, async $body).await
            }

            #[tokio::test]
            async fn postgres() {
                $crate::on_backend($crate::Backend::Postgres, async $body).await
            }

            #[tokio::test]
            async fn mariadb() {
                $crate::on_backend($crate::Backend::MariaDb, async $body).await
            }

            $($crate::every_backend!(@external $external $body);)*
        }
    };
    (@external mongodb $body:block) => {
        #[tokio::test]
        async fn mongodb() {
            $crate::on_external($crate::External::MongoDb, async $body).await
        }
    };
    (@external mssql $body:block) => {
        #[tokio::test]
        async fn mssql() {
            if $crate::mssql_url().is_none() {
                return;
            }
            $crate::on_external($crate::External::Mssql, async $body).await
        }
    };
    ($($rest:tt)*) => {
        $crate::every_backend!(@tests [mongodb mssql] $($rest)*);
    };
}

/// The administrative URL of the test server of `backend` (`MANIFOLD_TEST_POSTGRES_URL`
/// or `MANIFOLD_TEST_MYSQL_URL`, else the local default).
fn server_url(backend: Backend) -> String {
    match backend {
        Backend::Postgres => std::env::var("MANIFOLD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        Backend::MariaDb => std::env::var("MANIFOLD_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/mysql".into()),
        Backend::Sqlite => unreachable!("SQLite tests use a temporary file"),
    }
}

/// The `user[:password]@host:port` part of a test server's URL.
fn server_authority(backend: Backend) -> (String, String) {
    let url = server_url(backend);
    let rest = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => (userinfo.to_owned(), host.to_owned()),
        None => (String::new(), authority.to_owned()),
    }
}

/// The user and password of a test server's URL (`MANIFOLD_TEST_POSTGRES_URL` or
/// `MANIFOLD_TEST_MYSQL_URL`), for tests that register a source by host and port.
pub fn server_credentials(backend: Backend) -> (String, String) {
    let (userinfo, _) = server_authority(backend);
    match userinfo.split_once(':') {
        Some((user, password)) => (user.to_owned(), password.to_owned()),
        None => (userinfo, String::new()),
    }
}

/// Where a test server listens (`localhost` read as 127.0.0.1), for tests that put
/// something between Manifold and it.
pub fn server_address(backend: Backend) -> std::net::SocketAddr {
    let (_, host) = server_authority(backend);
    host.replace("localhost", "127.0.0.1")
        .parse()
        .unwrap_or_else(|e| panic!("the {backend:?} test server's address {host}: {e}"))
}

/// A database created for one test on a server, dropped when the test ends.
pub struct ScratchDatabase {
    admin_url: String,
    name: String,
    backend: Backend,
}

impl ScratchDatabase {
    /// Creates a uniquely named database; panics (failing the test) when the server is
    /// not there, with the URL it tried.
    pub async fn create(backend: Backend) -> Self {
        let name = format!("manifold_t_{}", uuid::Uuid::new_v4().simple());
        let admin_url = server_url(backend);
        let db = Self {
            admin_url,
            name,
            backend,
        };
        db.admin(&format!("CREATE DATABASE {}", db.name)).await;
        db
    }

    /// The scratch database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL of the scratch database.
    pub fn url(&self) -> String {
        let base = self
            .admin_url
            .rsplit_once('/')
            .map_or(self.admin_url.as_str(), |(b, _)| b);
        format!("{base}/{}", self.name)
    }

    /// Runs `statements` on the scratch database, in order; a failing one fails the test,
    /// named.
    pub async fn execute(&self, statements: &[&str]) {
        let url = self.url();
        let pool = match self.backend {
            Backend::Postgres => {
                RawPool::Postgres(sqlx::PgPool::connect(&url).await.expect("scratch database"))
            }
            _ => RawPool::MySql(
                sqlx::MySqlPool::connect(&url)
                    .await
                    .expect("scratch database"),
            ),
        };
        for statement in statements {
            pool.execute(statement).await;
        }
        pool.close().await;
    }

    async fn admin(&self, statement: &str) {
        if let Err(e) = run_admin(self.backend, &self.admin_url, statement).await {
            panic!(
                "{:?} test server at {} failed (is it running? scripts/test.sh starts it): {e}",
                self.backend, self.admin_url
            );
        }
    }
}

/// Runs one administrative statement on a fresh connection.
async fn run_admin(backend: Backend, url: &str, statement: &str) -> Result<(), sqlx::Error> {
    let statement = sqlx::AssertSqlSafe(statement.to_owned());
    match backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await?;
            sqlx::query(statement).execute(&pool).await?;
            pool.close().await;
        }
        Backend::MariaDb => {
            let pool = sqlx::MySqlPool::connect(url).await?;
            // A test's pooled connection may still hold a transaction whose rollback was
            // queued but never sent (its runtime is blocked in this drop); DROP DATABASE
            // would wait on its locks forever, so its sessions go first.
            if let Some(db) = statement.0.strip_prefix("DROP DATABASE IF EXISTS ") {
                let ids: Vec<u64> = sqlx::query_scalar(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
                )
                .bind(db)
                .fetch_all(&pool)
                .await?;
                for id in ids {
                    let kill = sqlx::AssertSqlSafe(format!("KILL CONNECTION {id}"));
                    // The session may have ended by itself meanwhile.
                    let _ = sqlx::query(kill).execute(&pool).await;
                }
            }
            sqlx::query(statement).execute(&pool).await?;
            pool.close().await;
        }
        Backend::Sqlite => {}
    }
    Ok(())
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let statement = match self.backend {
            Backend::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            _ => format!("DROP DATABASE IF EXISTS {}", self.name),
        };
        let (backend, url) = (self.backend, self.admin_url.clone());
        // Drop cannot await, and may run inside a runtime: a short-lived runtime on its
        // own thread does the cleanup.
        let cleanup = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = rt.block_on(run_admin(backend, &url, &statement));
            }
        });
        let _ = cleanup.join();
    }
}

/// A running app with its own temporary main database.
pub struct TestApp {
    /// The application, for registering middleware and resources in tests.
    pub app: Arc<App>,
    endpoint: poem::endpoint::BoxEndpoint<'static, poem::Response>,
    /// The directory holding SQLite files; removed on drop.
    pub dir: tempfile::TempDir,
    /// The backend the main database runs on.
    pub backend: Backend,
    scratch: Option<ScratchDatabase>,
    /// The external database the helpers address, registered as [`EXTERNAL_KEY`].
    pub external: Option<External>,
    /// Its server or scratch database, stopped or dropped after the app.
    running: Option<Running>,
    /// The connectors and plugins the test added to the built-in ones, offered again on a
    /// restart.
    extensions: Extensions,
    /// The token of the user `root`, sent with every request unless the request names its
    /// own `Authorization` (see [`TestApp::anonymous`]).
    token: String,
}

/// The password of the user `root` in every test app.
pub const ROOT_PASSWORD: &str = "manifold-test-root";

/// What an external database needs kept alive for the test; dropping it stops the server
/// or drops the database.
enum Running {
    Mongo { _server: secantus::Secantus },
    Mssql { _database: MssqlScratch },
}

/// A database created for one test on the SQL Server of `MSSQL_URL`, dropped when the
/// test ends.
pub struct MssqlScratch {
    url: String,
    name: String,
}

impl MssqlScratch {
    /// Creates a uniquely named database; panics (failing the test) when the server is
    /// not reachable.
    pub async fn create(url: &str) -> Self {
        let name = format!("manifold_t_{}", uuid::Uuid::new_v4().simple());
        if let Err(e) = mssql_admin(url, &format!("CREATE DATABASE [{name}]")).await {
            panic!("SQL Server at MSSQL_URL failed to create a test database: {e}");
        }
        Self {
            url: url.to_owned(),
            name,
        }
    }

    /// The ADO.NET connection string of the scratch database.
    pub fn url(&self) -> String {
        format!("{};database={}", self.url.trim_end_matches(';'), self.name)
    }
}

/// Runs one T-SQL batch on the server of `url` (its default database).
async fn mssql_admin(url: &str, statement: &str) -> manifold_core::error::Result<()> {
    let options = manifold_mssql::MssqlOptions::from_json(&json!({"url": url}))?;
    let admin = manifold_mssql::MssqlConnector::open(&options).await?;
    let outcome = admin
        .execute(&manifold_sql::Sql {
            text: statement.to_owned(),
            params: Vec::new(),
        })
        .await;
    admin.close().await;
    outcome.map(|_| ())
}

impl Drop for MssqlScratch {
    fn drop(&mut self) {
        // Sessions the test left open would make DROP DATABASE wait: they are rolled back
        // and cut first.
        let statement = format!(
            "ALTER DATABASE [{0}] SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE [{0}]",
            self.name
        );
        let url = self.url.clone();
        // Drop cannot await, and may run inside a runtime: a short-lived runtime on its
        // own thread does the cleanup.
        let cleanup = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                && let Err(e) = rt.block_on(mssql_admin(&url, &statement))
            {
                eprintln!("could not drop a SQL Server test database: {e}");
            }
        });
        let _ = cleanup.join();
    }
}

/// The `--main-db` of a test's main database: its scratch database, or `main.sqlite` in
/// `dir`.
fn main_url(dir: &tempfile::TempDir, scratch: Option<&ScratchDatabase>) -> String {
    match scratch {
        Some(db) => db.url(),
        None => format!("sqlite://{}/main.sqlite", dir.path().display()),
    }
}

/// The configuration every test app starts from, on the main database `main_db`.
fn test_config(main_db: String) -> ServeConfig {
    let mut config = ServeConfig {
        main_db,
        ..ServeConfig::default()
    };
    config.auth.root_password = Some(manifold_server::auth::Secret(ROOT_PASSWORD.into()));
    // Statement counts must not depend on how long a test ran: the first request of the
    // token loads it (in `open`), no later one does.
    config.auth.auth_cache_ttl = std::time::Duration::from_secs(3600);
    config
}

/// A connection pool on a test's main database, of the backend's own driver.
enum RawPool {
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
    Sqlite(sqlx::SqlitePool),
}

impl RawPool {
    async fn connect(
        dir: &tempfile::TempDir,
        scratch: Option<&ScratchDatabase>,
        backend: Backend,
    ) -> Self {
        match (scratch, backend) {
            (Some(db), Backend::Postgres) => Self::Postgres(
                sqlx::PgPool::connect(&db.url())
                    .await
                    .expect("main database"),
            ),
            (Some(db), _) => Self::MySql(
                sqlx::MySqlPool::connect(&db.url())
                    .await
                    .expect("main database"),
            ),
            (None, _) => {
                let file = dir.path().join("main.sqlite");
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(file)
                    .create_if_missing(true);
                Self::Sqlite(
                    sqlx::SqlitePool::connect_with(options)
                        .await
                        .expect("main database"),
                )
            }
        }
    }

    async fn execute(&self, statement: &str) {
        let text = sqlx::AssertSqlSafe(statement.to_owned());
        let outcome = match self {
            Self::Postgres(pool) => sqlx::query(text).execute(pool).await.map(|_| ()),
            Self::MySql(pool) => sqlx::query(text).execute(pool).await.map(|_| ()),
            Self::Sqlite(pool) => sqlx::query(text).execute(pool).await.map(|_| ()),
        };
        if let Err(e) = outcome {
            panic!("{statement}: {e}");
        }
    }

    /// The first column of every row of `query`, as text.
    async fn texts(&self, query: &str, bind: &str) -> Vec<String> {
        let text = sqlx::AssertSqlSafe(query.to_owned());
        let outcome = match self {
            Self::Postgres(pool) => sqlx::query_scalar(text).bind(bind).fetch_all(pool).await,
            Self::MySql(pool) => sqlx::query_scalar(text).bind(bind).fetch_all(pool).await,
            Self::Sqlite(pool) => sqlx::query_scalar(text).bind(bind).fetch_all(pool).await,
        };
        outcome.unwrap_or_else(|e| panic!("{query}: {e}"))
    }

    async fn close(self) {
        match self {
            Self::Postgres(pool) => pool.close().await,
            Self::MySql(pool) => pool.close().await,
            Self::Sqlite(pool) => pool.close().await,
        }
    }
}

/// Runs `statements` on a test's main database, outside Manifold.
async fn run_sql(
    dir: &tempfile::TempDir,
    scratch: Option<&ScratchDatabase>,
    backend: Backend,
    statements: &[&str],
) {
    let pool = RawPool::connect(dir, scratch, backend).await;
    for statement in statements {
        pool.execute(statement).await;
    }
    pool.close().await;
}

/// The names of `table`'s columns in a test's main database, in order, read outside
/// Manifold.
async fn table_columns(
    dir: &tempfile::TempDir,
    scratch: Option<&ScratchDatabase>,
    backend: Backend,
    table: &str,
) -> Vec<String> {
    let query = match backend {
        Backend::Sqlite => "SELECT name FROM pragma_table_info(?) ORDER BY cid",
        Backend::Postgres => {
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name::text = $1 ORDER BY ordinal_position"
        }
        Backend::MariaDb => {
            "SELECT CAST(column_name AS CHAR) FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position"
        }
    };
    let pool = RawPool::connect(dir, scratch, backend).await;
    let columns = pool.texts(query, table).await;
    pool.close().await;
    columns
}

/// A test's own main database on the current backend (a temporary SQLite file or a
/// scratch database), before any app opens it: a test puts its own tables there first
/// (a `users` table made before Manifold, say), then starts an app on it.
pub struct MainDb {
    dir: tempfile::TempDir,
    backend: Backend,
    scratch: Option<ScratchDatabase>,
}

impl MainDb {
    /// An empty main database on the current backend.
    pub async fn create() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let backend = current_backend();
        let scratch = match backend {
            Backend::Sqlite => None,
            other => Some(ScratchDatabase::create(other).await),
        };
        Self {
            dir,
            backend,
            scratch,
        }
    }

    /// The backend it runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Runs `statements` on it, outside Manifold.
    pub async fn sql(&self, statements: &[&str]) {
        run_sql(&self.dir, self.scratch.as_ref(), self.backend, statements).await;
    }

    /// The names of `table`'s columns, in order, read outside Manifold.
    pub async fn columns(&self, table: &str) -> Vec<String> {
        table_columns(&self.dir, self.scratch.as_ref(), self.backend, table).await
    }

    /// Starts an app on it, with the configuration of [`TestApp::new`]; on failure, the
    /// database back and the error.
    pub async fn start(self) -> Result<TestApp, (Self, manifold_core::Error)> {
        self.start_with(|_| {}).await
    }

    /// Starts an app on it, with a configuration `tweak` adjusts.
    pub async fn start_with(
        self,
        tweak: impl FnOnce(&mut ServeConfig),
    ) -> Result<TestApp, (Self, manifold_core::Error)> {
        self.start_offering(tweak, Extensions::default()).await
    }

    /// Starts an app on it that also offers the connectors and loads the plugins of
    /// `extensions`.
    pub async fn start_offering(
        self,
        tweak: impl FnOnce(&mut ServeConfig),
        extensions: Extensions,
    ) -> Result<TestApp, (Self, manifold_core::Error)> {
        let Self {
            dir,
            backend,
            scratch,
        } = self;
        let mut config = test_config(main_url(&dir, scratch.as_ref()));
        tweak(&mut config);
        match TestApp::try_open(dir, &config, extensions).await {
            Ok(mut t) => {
                t.backend = backend;
                t.scratch = scratch;
                Ok(t)
            }
            Err((dir, e)) => Err((
                Self {
                    dir,
                    backend,
                    scratch,
                },
                e,
            )),
        }
    }
}

/// A response: status and parsed JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body as JSON.
    pub body: Json,
    /// The response headers, names in lower case.
    pub headers: Vec<(String, String)>,
}

impl Reply {
    /// `body.data`.
    pub fn data(&self) -> &Json {
        &self.body["data"]
    }

    /// The value of response header `name` (lower case), if it was sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `body.errors[0].message`, or "" when there is none.
    pub fn error(&self) -> &str {
        self.body["errors"][0]["message"].as_str().unwrap_or("")
    }

    /// The values of `field` across `data` (an array of records).
    pub fn column(&self, field: &str) -> Vec<Json> {
        self.data()
            .as_array()
            .map(|rows| rows.iter().map(|r| r[field].clone()).collect())
            .unwrap_or_default()
    }
}

/// `names` without the collections Manifold keeps its accounts and permissions in.
pub fn own_collections(names: Vec<Json>) -> Vec<Json> {
    names
        .into_iter()
        .filter(|n| {
            !n.as_str()
                .is_some_and(|n| manifold_server::auth::collections().any(|c| c == n))
        })
        .collect()
}

/// Percent-encodes a query value (a JSON filter, a sort list).
pub fn enc(value: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(value, SET).to_string()
}

/// What a test adds to the built-in connectors and plugins.
#[derive(Clone, Default)]
pub struct Extensions {
    /// Source types offered besides the built-in ones ([`AppBuilder::connector`]).
    pub connectors: Vec<Arc<dyn DataSourceFactory>>,
    /// Plugins loaded after the built-in ones ([`AppBuilder::plugin`]).
    pub plugins: Vec<Arc<dyn Plugin>>,
}

/// `filter=<encoded JSON>`.
pub fn filter(f: Json) -> String {
    format!("filter={}", enc(&f.to_string()))
}

impl TestApp {
    /// A fresh app with an empty main database.
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    /// A fresh app, on the current backend, whose configuration `tweak` adjusts.
    pub async fn with(tweak: impl FnOnce(&mut ServeConfig)) -> Self {
        let mut t = match MainDb::create().await.start_with(tweak).await {
            Ok(t) => t,
            Err((_, e)) => panic!("app starts: {e}"),
        };
        if let Some(external) = current_external() {
            t.attach(external).await;
        }
        t
    }

    /// A fresh app that also offers the source type of `factory`, added as a connector
    /// crate outside the server adds its own ([`AppBuilder::connector`]).
    pub async fn with_connector(factory: Arc<dyn DataSourceFactory>) -> Self {
        Self::with_extensions(Extensions {
            connectors: vec![factory],
            plugins: Vec::new(),
        })
        .await
    }

    /// A fresh app that also loads `plugins` ([`AppBuilder::plugin`]).
    pub async fn with_plugins(plugins: Vec<Arc<dyn Plugin>>) -> Self {
        Self::with_extensions(Extensions {
            connectors: Vec::new(),
            plugins,
        })
        .await
    }

    async fn with_extensions(extensions: Extensions) -> Self {
        match MainDb::create()
            .await
            .start_offering(|_| {}, extensions)
            .await
        {
            Ok(t) => t,
            Err((_, e)) => panic!("app starts: {e}"),
        }
    }

    /// Starts (or creates) the external database and registers it as [`EXTERNAL_KEY`].
    async fn attach(&mut self, external: External) {
        let (running, options) = match external {
            External::MongoDb => {
                let server = secantus::Secantus::start();
                // Integer keys (`id` 1, 2, …) as the SQL sources number rows, so the shared
                // suite's assertions on ids hold; ObjectId keys are tested in mongo.rs.
                let options = json!({
                    "url": server.url(), "database": "manifold_test",
                    "serverSelectionTimeoutMs": 5000, "generatedKeys": "integer"
                });
                (Running::Mongo { _server: server }, options)
            }
            External::Mssql => {
                let url = mssql_url().expect("MSSQL_URL is checked before the test starts");
                let db = MssqlScratch::create(&url).await;
                let options = json!({"url": db.url(), "statementTimeoutMs": 30000});
                (Running::Mssql { _database: db }, options)
            }
        };
        let kind = match external {
            External::MongoDb => "mongodb",
            External::Mssql => "mssql",
        };
        self.running = Some(running);
        self.external = Some(external);
        let r = self
            .main(
                Method::POST,
                "/api/dataSources:create",
                Some(json!({"key": EXTERNAL_KEY, "type": kind, "options": options})),
            )
            .await;
        assert_eq!(r.status, 200, "registering {kind}: {:?}", r.body);
        self.await_external().await;
    }

    /// Waits until the external source has loaded; fails the test when it did not.
    async fn await_external(&self) {
        let record = self.settled(EXTERNAL_KEY).await;
        assert_eq!(record["status"], json!("loaded"), "{record}");
    }

    /// The same main database opened again by a new app, as after a process restart.
    pub async fn restart(self) -> Self {
        let Self {
            app,
            dir,
            backend,
            scratch,
            external,
            running,
            extensions,
            ..
        } = self;
        app.data_sources().close_all().await;
        let config = test_config(main_url(&dir, scratch.as_ref()));
        let mut t = Self::open_offering(dir, &config, extensions).await;
        t.backend = backend;
        t.scratch = scratch;
        t.external = external;
        t.running = running;
        if t.external.is_some() {
            // The registration is stored in the main database and loads again by itself.
            t.await_external().await;
        }
        t
    }

    /// An app on an existing directory (to test a restart).
    pub async fn open(dir: tempfile::TempDir, config: &ServeConfig) -> Self {
        Self::open_offering(dir, config, Extensions::default()).await
    }

    /// [`TestApp::open`], also with `extensions`.
    async fn open_offering(
        dir: tempfile::TempDir,
        config: &ServeConfig,
        extensions: Extensions,
    ) -> Self {
        match Self::try_open(dir, config, extensions).await {
            Ok(t) => t,
            Err((_, e)) => panic!("app starts: {e}"),
        }
    }

    /// An app on an existing directory, or why it did not start (and the directory back).
    async fn try_open(
        dir: tempfile::TempDir,
        config: &ServeConfig,
        extensions: Extensions,
    ) -> Result<Self, (tempfile::TempDir, manifold_core::Error)> {
        let builder = extensions
            .connectors
            .iter()
            .fold(AppBuilder::new(config), |b, c| b.connector(c.clone()));
        let builder = extensions
            .plugins
            .iter()
            .fold(builder, |b, p| b.plugin(p.clone()));
        let app = match builder.build().await {
            Ok(app) => app,
            Err(e) => return Err((dir, e)),
        };
        let options = http::HttpOptions::from_config(config).expect("HTTP options");
        let endpoint = http::endpoint_with(app.clone(), options).boxed();
        let auth = app.auth().expect("the app authenticates");
        // root is user 1 on an empty database, not over a users table of the test's own.
        let root = auth
            .user_id("root")
            .await
            .expect("root's id is read")
            .expect("the user root exists");
        let token = auth.issue_token(root).await.expect("a token for root");
        let t = Self {
            app,
            endpoint,
            dir,
            backend: Backend::Sqlite,
            scratch: None,
            external: None,
            running: None,
            extensions,
            token,
        };
        // The first request of a token reads the session; tests count statements after it.
        let checked = t.main(Method::GET, "/api/auth:check", None).await;
        assert_eq!(checked.status, 200, "root's token: {:?}", checked.body);
        Ok(t)
    }

    /// A second app on the same main database, as another replica of one deployment
    /// would be (it registers no external source of its own).
    pub async fn replica(&self) -> Self {
        self.replica_with(|_| {}).await
    }

    /// [`TestApp::replica`], with a configuration `tweak` adjusts (to give it what the
    /// first app was given, such as a shared cache).
    pub async fn replica_with(&self, tweak: impl FnOnce(&mut ServeConfig)) -> Self {
        let mut config = test_config(main_url(&self.dir, self.scratch.as_ref()));
        tweak(&mut config);
        let dir = tempfile::tempdir().expect("temp dir");
        let mut t = Self::open_offering(dir, &config, self.extensions.clone()).await;
        t.backend = self.backend;
        t
    }

    /// Creates the user `username` (password `<username>-password-1`) with `roles`, as
    /// root, signs it in, and returns its token.
    pub async fn new_user(&self, username: &str, roles: &[&str]) -> String {
        let password = format!("{username}-password-1");
        let r = self
            .main(
                Method::POST,
                "/api/users:create",
                Some(json!({ "username": username, "password": password, "roles": roles })),
            )
            .await;
        assert_eq!(r.status, 200, "create {username}: {:?}", r.body);
        let r = self
            .main_as(
                "",
                Method::POST,
                "/api/auth:signIn",
                Some(json!({ "account": username, "password": password })),
            )
            .await;
        assert_eq!(r.status, 200, "sign in {username}: {:?}", r.body);
        r.data()["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token for {username}: {:?}", r.body))
            .to_owned()
    }

    /// The token of the user `root` the helpers send.
    pub fn root_token(&self) -> &str {
        &self.token
    }

    /// The key of the data source the helpers address: [`EXTERNAL_KEY`] on an external
    /// database, else `main`.
    pub fn source_key(&self) -> &'static str {
        if self.external.is_some() {
            EXTERNAL_KEY
        } else {
            "main"
        }
    }

    /// The `pageSize` of a list that asks for none: NocoBase's 20 on the main data source,
    /// 50 on a registered one.
    pub fn default_page_size(&self) -> u64 {
        if self.external.is_some() { 50 } else { 20 }
    }

    /// The data source the helpers address.
    pub fn source(&self) -> Arc<manifold_core::data_source::DataSource> {
        self.app
            .data_sources()
            .get(self.source_key())
            .unwrap_or_else(|| panic!("data source {} is registered", self.source_key()))
    }

    /// Sends `method path` to the main data source, whatever the test's database.
    pub async fn main(&self, method: Method, path: &str, body: Option<Json>) -> Reply {
        let headers = [("content-type", "application/json")];
        self.raw_send(
            method,
            path,
            &headers,
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
    }

    /// Sends a request; `path` includes the query string. On an external database it goes
    /// to that source (`X-Data-Source`) unless `headers` name one.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let named = headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("x-data-source"));
        if self.external.is_some() && !named {
            let mut with: Vec<(&str, &str)> = headers.to_vec();
            with.push(("x-data-source", EXTERNAL_KEY));
            return self.raw_send(method, path, &with, body).await;
        }
        self.raw_send(method, path, headers, body).await
    }

    /// Sends `method path` to the main data source with `authorization` as the
    /// `Authorization` header ("" sends none: an anonymous caller).
    pub async fn main_as(
        &self,
        authorization: &str,
        method: Method,
        path: &str,
        body: Option<Json>,
    ) -> Reply {
        let headers = [
            ("content-type", "application/json"),
            ("authorization", authorization),
        ];
        self.raw_send(
            method,
            path,
            &headers,
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
    }

    /// Sends `method path` to the test's source with `authorization` as the
    /// `Authorization` header ("" sends none) and the extra `headers`.
    pub async fn send_as(
        &self,
        authorization: &str,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Json>,
    ) -> Reply {
        let mut with: Vec<(&str, &str)> = headers.to_vec();
        with.push(("content-type", "application/json"));
        with.push(("authorization", authorization));
        self.send(
            method,
            path,
            &with,
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
    }

    /// Sends a request with no `Authorization` (an anonymous caller) to the test's source.
    pub async fn anonymous(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut with: Vec<(&str, &str)> = headers.to_vec();
        with.push(("authorization", ""));
        self.send(method, path, &with, body).await
    }

    /// Sends a request as given, as `root` unless `headers` hold an `Authorization` (an
    /// empty one is left out: the caller is anonymous).
    async fn raw_send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri_str(path);
        let mut authorized = false;
        for (k, v) in headers {
            if k.eq_ignore_ascii_case("authorization") {
                authorized = true;
                if v.is_empty() {
                    continue;
                }
            }
            builder = builder.header(*k, *v);
        }
        if !authorized {
            builder = builder.header("authorization", format!("Bearer {}", self.token));
        }
        let request = match body {
            Some(bytes) => builder.body(bytes),
            None => builder.finish(),
        };
        let response = self.endpoint.call(request).await.expect("endpoint answers");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let text = response
            .into_body()
            .into_string()
            .await
            .expect("readable body");
        let body = if text.is_empty() {
            Json::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        Reply {
            status,
            body,
            headers,
        }
    }

    /// The text of `GET /metrics` (not JSON, so not a [`Reply`]).
    pub async fn metrics(&self) -> String {
        let response = self
            .endpoint
            .call(Request::builder().uri_str("/metrics").finish())
            .await
            .expect("endpoint answers");
        assert_eq!(response.status().as_u16(), 200, "GET /metrics");
        response
            .into_body()
            .into_string()
            .await
            .expect("readable body")
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send(Method::GET, path, &[], None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: Json) -> Reply {
        self.send(
            Method::POST,
            path,
            &[("content-type", "application/json")],
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    /// `POST path` with no body.
    pub async fn post_empty(&self, path: &str) -> Reply {
        self.send(Method::POST, path, &[], None).await
    }

    /// Creates a collection and asserts it worked: through `collections:create` on the
    /// main database, through the core on an external one (`collections:create` serves
    /// the main data source only).
    pub async fn collection(&self, definition: Json) {
        if self.external.is_none() {
            let r = self.post("/api/collections:create", definition).await;
            assert_eq!(r.status, 200, "collections:create failed: {:?}", r.body);
            return;
        }
        let parsed = CollectionDefinition::from_json(&definition)
            .unwrap_or_else(|e| panic!("collection definition {definition}: {e}"));
        if let Err(e) = self.source().define_collection(&parsed).await {
            panic!("defining {definition} on {:?} failed: {e}", self.external);
        }
    }

    /// Inserts records through the API and asserts it worked.
    pub async fn insert(&self, collection: &str, rows: Json) -> Json {
        let r = self.post(&format!("/api/{collection}:create"), rows).await;
        assert_eq!(r.status, 200, "{collection}:create failed: {:?}", r.body);
        r.data().clone()
    }

    /// Runs raw SQL on the main database (to build schemas the API cannot, such as foreign
    /// keys), then re-reads the schema.
    pub async fn sql(&self, statements: &[&str]) {
        assert!(
            self.external.is_none(),
            "t.sql runs on the main database, not on {:?}: opt the test out with #[skip(…)]",
            self.external
        );
        run_sql(&self.dir, self.scratch.as_ref(), self.backend, statements).await;
        self.app
            .data_sources()
            .get("main")
            .expect("main")
            .refresh()
            .await
            .expect("schema re-read");
    }

    /// The names of `table`'s columns in the main database, in order, read outside
    /// Manifold.
    pub async fn columns(&self, table: &str) -> Vec<String> {
        table_columns(&self.dir, self.scratch.as_ref(), self.backend, table).await
    }

    /// Statements the addressed data source (the main one, or the external database) has
    /// run so far.
    pub fn statements(&self) -> u64 {
        self.app
            .data_sources()
            .get(self.source_key())
            .map_or(0, |m| m.statements())
    }

    /// The number of rows of `collection`, read through the API.
    pub async fn count(&self, collection: &str) -> u64 {
        let r = self
            .get(&format!("/api/{collection}:list?pageSize=1"))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["meta"]["count"].as_u64().expect("count")
    }
}

/// `posts(title string, score integer, status string default "draft")` with id and
/// timestamps, the fixture most action tests start from.
pub fn posts_definition() -> Json {
    json!({
        "name": "posts",
        "fields": [
            {"name": "title", "type": "string"},
            {"name": "score", "type": "integer"},
            {"name": "status", "type": "string", "defaultValue": "draft"}
        ]
    })
}

impl TestApp {
    /// Polls `dataSources:get/<key>` until its status is no longer `loading`/`reloading`,
    /// and returns the record.
    pub async fn settled(&self, key: &str) -> Json {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let r = self
                .main(Method::GET, &format!("/api/dataSources:get/{key}"), None)
                .await;
            let status = r.data()["status"].as_str().unwrap_or("").to_owned();
            if !matches!(status.as_str(), "loading" | "reloading") {
                return r.data().clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "data source {key} still {status} after 20 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Registers the data source `key` of `kind` with `options` and waits until it has
    /// loaded; anything else fails the test.
    pub async fn register_source(&self, key: &str, kind: &str, options: Json) {
        let r = self
            .post(
                "/api/dataSources:create",
                json!({ "key": key, "type": kind, "options": options }),
            )
            .await;
        assert_eq!(r.status, 200, "register {key}: {:?}", r.body);
        let record = self.settled(key).await;
        assert_eq!(record["status"], json!("loaded"), "{record}");
    }

    /// Sends `method path` to the data source `key`.
    pub async fn on(&self, key: &str, method: Method, path: &str, body: Option<Json>) -> Reply {
        let headers = [("x-data-source", key), ("content-type", "application/json")];
        self.send(
            method,
            path,
            &headers,
            body.map(|b| b.to_string().into_bytes()),
        )
        .await
    }
}

/// Log lines written where a test can read them: install a subscriber with
/// `.with_writer(move || log.clone())` and read [`CapturedLog::text`].
#[derive(Clone, Default)]
pub struct CapturedLog(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    /// Everything written so far.
    pub fn text(&self) -> String {
        self.0
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}
