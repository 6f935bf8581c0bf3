//! Shared fixtures for Manifold's end-to-end tests: a real service on a temporary SQLite
//! main database, driven through its real HTTP endpoint.

use std::sync::Arc;

pub mod proxy;

use manifold_federation::{App, ServeConfig, build_app, http};
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

tokio::task_local! {
    static BACKEND: Backend;
}

/// Runs `test` with every `TestApp` it makes on `backend`.
pub async fn on_backend<F: std::future::Future>(backend: Backend, test: F) -> F::Output {
    BACKEND.scope(backend, test).await
}

/// The backend of the running test (SQLite unless a test runs under [`on_backend`]).
pub fn current_backend() -> Backend {
    BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite)
}

/// Defines one test per backend: `name::sqlite`, `name::postgres`, `name::mariadb`.
/// A backend whose server is missing fails its tests; none is skipped.
#[macro_export]
macro_rules! every_backend {
    ($(#[$meta:meta])* async fn $name:ident() $body:block) => {
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
        }
    };
}

/// The user and password of a test server's URL (`MANIFOLD_TEST_POSTGRES_URL` or
/// `MANIFOLD_TEST_MYSQL_URL`), for tests that register a source by host and port.
pub fn server_credentials(backend: Backend) -> (String, String) {
    let url = match backend {
        Backend::Postgres => std::env::var("MANIFOLD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        _ => std::env::var("MANIFOLD_TEST_MYSQL_URL")
            .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/mysql".into()),
    };
    let userinfo = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .map_or("", |(u, _)| u);
    match userinfo.split_once(':') {
        Some((user, password)) => (user.to_owned(), password.to_owned()),
        None => (userinfo.to_owned(), String::new()),
    }
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
        let admin_url = match backend {
            Backend::Postgres => std::env::var("MANIFOLD_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
            Backend::MariaDb => std::env::var("MANIFOLD_TEST_MYSQL_URL")
                .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/mysql".into()),
            Backend::Sqlite => unreachable!("SQLite tests use a temporary file"),
        };
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
}

/// A response: status and parsed JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body as JSON.
    pub body: Json,
}

impl Reply {
    /// `body.data`.
    pub fn data(&self) -> &Json {
        &self.body["data"]
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

/// Percent-encodes a query value (a JSON filter, a sort list).
pub fn enc(value: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(value, SET).to_string()
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
        let dir = tempfile::tempdir().expect("temp dir");
        let backend = current_backend();
        let scratch = match backend {
            Backend::Sqlite => None,
            other => Some(ScratchDatabase::create(other).await),
        };
        let mut config = ServeConfig {
            main_db: match &scratch {
                Some(db) => db.url(),
                None => format!("sqlite://{}/main.sqlite", dir.path().display()),
            },
            ..ServeConfig::default()
        };
        tweak(&mut config);
        let mut t = Self::open(dir, &config).await;
        t.backend = backend;
        t.scratch = scratch;
        t
    }

    /// The same main database opened again by a new app, as after a process restart.
    pub async fn restart(self) -> Self {
        let Self {
            app,
            dir,
            backend,
            scratch,
            ..
        } = self;
        app.data_sources().close_all().await;
        let config = ServeConfig {
            main_db: match &scratch {
                Some(db) => db.url(),
                None => format!("sqlite://{}/main.sqlite", dir.path().display()),
            },
            ..ServeConfig::default()
        };
        let mut t = Self::open(dir, &config).await;
        t.backend = backend;
        t.scratch = scratch;
        t
    }

    /// An app on an existing directory (to test a restart).
    pub async fn open(dir: tempfile::TempDir, config: &ServeConfig) -> Self {
        let app = build_app(config).await.expect("app starts");
        let endpoint = http::endpoint(app.clone(), config.body_limit).boxed();
        Self {
            app,
            endpoint,
            dir,
            backend: Backend::Sqlite,
            scratch: None,
        }
    }

    /// Sends a request; `path` includes the query string.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut builder = Request::builder().method(method).uri_str(path);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let request = match body {
            Some(bytes) => builder.body(bytes),
            None => builder.finish(),
        };
        let response = self.endpoint.call(request).await.expect("endpoint answers");
        let status = response.status().as_u16();
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
        Reply { status, body }
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

    /// Creates a collection through the API and asserts it worked.
    pub async fn collection(&self, definition: Json) {
        let r = self.post("/api/collections:create", definition).await;
        assert_eq!(r.status, 200, "collections:create failed: {:?}", r.body);
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
        let run = |statement: &str| sqlx::AssertSqlSafe(statement.to_owned());
        match (&self.scratch, self.backend) {
            (Some(db), Backend::Postgres) => {
                let pool = sqlx::PgPool::connect(&db.url())
                    .await
                    .expect("main database");
                for s in statements {
                    sqlx::query(run(s)).execute(&pool).await.expect(s);
                }
                pool.close().await;
            }
            (Some(db), _) => {
                let pool = sqlx::MySqlPool::connect(&db.url())
                    .await
                    .expect("main database");
                for s in statements {
                    sqlx::query(run(s)).execute(&pool).await.expect(s);
                }
                pool.close().await;
            }
            (None, _) => {
                let file = self.dir.path().join("main.sqlite");
                let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", file.display()))
                    .await
                    .expect("main database");
                for s in statements {
                    sqlx::query(run(s)).execute(&pool).await.expect(s);
                }
                pool.close().await;
            }
        }
        self.app
            .data_sources()
            .get("main")
            .expect("main")
            .refresh()
            .await
            .expect("schema re-read");
    }

    /// Statements the main data source has run so far.
    pub fn statements(&self) -> u64 {
        self.app
            .data_sources()
            .get("main")
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
            let r = self.get(&format!("/api/dataSources:get/{key}")).await;
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
