//! The main database's migrations through the real `manifold` binary: replicas started at
//! the same moment on a fresh main database all become ready (PostgreSQL, MariaDB,
//! SQLite) and write the built-in rows once; a database made before versions were
//! recorded is recognised and completed; a database newer than the binary is refused by
//! `serve` and `migrate` naming both versions; `manifold migrate` then
//! `serve --migrations check` works, and `check` refuses a database still to migrate; a
//! held migration lock makes a start fail after `--migration-lock-timeout`.

mod support;

use support::{free_port, inherited_settings};

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use manifold_tests::{Backend, ScratchDatabase};
use serde_json::{Value as Json, json};
use sqlx::AssertSqlSafe;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

const ROOT_PASSWORD: &str = "migrations-test-root";

/// How long a process may take to become ready, or `migrate` to finish.
const DEADLINE: Duration = Duration::from_secs(60);

/// A main database for one test, with a connection of the test's own to look inside.
struct MainDb {
    url: String,
    pool: Pool,
    _scratch: Option<ScratchDatabase>,
    dir: tempfile::TempDir,
}

enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
}

impl MainDb {
    /// A fresh, empty main database on `backend`.
    async fn fresh(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let (url, scratch) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}/data/main.sqlite", dir.path().display()),
                None,
            ),
            _ => {
                let scratch = ScratchDatabase::create(backend).await;
                (scratch.url(), Some(scratch))
            }
        };
        let pool = match backend {
            Backend::Sqlite => {
                std::fs::create_dir_all(dir.path().join("data")).expect("data dir");
                Pool::Sqlite(
                    sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
                        .await
                        .expect("SQLite opens"),
                )
            }
            Backend::Postgres => Pool::Postgres(
                sqlx::PgPool::connect(&url)
                    .await
                    .expect("PostgreSQL scratch database"),
            ),
            Backend::MariaDb => Pool::MySql(
                sqlx::MySqlPool::connect(&url)
                    .await
                    .expect("MariaDB scratch database"),
            ),
        };
        Self {
            url,
            pool,
            _scratch: scratch,
            dir,
        }
    }

    /// Runs `statement` (identifiers quoted with `"`; MariaDB gets backticks).
    async fn exec(&self, statement: &str) {
        let result = match &self.pool {
            Pool::Sqlite(p) => sqlx::query(AssertSqlSafe(statement.to_owned()))
                .execute(p)
                .await
                .map(|_| ()),
            Pool::Postgres(p) => sqlx::query(AssertSqlSafe(statement.to_owned()))
                .execute(p)
                .await
                .map(|_| ()),
            Pool::MySql(p) => sqlx::query(AssertSqlSafe(statement.replace('"', "`")))
                .execute(p)
                .await
                .map(|_| ()),
        };
        result.unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    /// The one number `query` answers.
    async fn number(&self, query: &str) -> i64 {
        let result = match &self.pool {
            Pool::Sqlite(p) => {
                sqlx::query_scalar(AssertSqlSafe(query.to_owned()))
                    .fetch_one(p)
                    .await
            }
            Pool::Postgres(p) => {
                sqlx::query_scalar(AssertSqlSafe(query.to_owned()))
                    .fetch_one(p)
                    .await
            }
            Pool::MySql(p) => {
                sqlx::query_scalar(AssertSqlSafe(query.replace('"', "`")))
                    .fetch_one(p)
                    .await
            }
        };
        result.unwrap_or_else(|e| panic!("{query}: {e}"))
    }

    /// The recorded versions, in order.
    async fn versions(&self) -> Vec<i64> {
        let query = "SELECT version FROM _manifold_migrations ORDER BY version";
        let result = match &self.pool {
            Pool::Sqlite(p) => sqlx::query_scalar(query).fetch_all(p).await,
            Pool::Postgres(p) => sqlx::query_scalar(query).fetch_all(p).await,
            Pool::MySql(p) => sqlx::query_scalar(query).fetch_all(p).await,
        };
        result.unwrap_or_else(|e| panic!("{query}: {e}"))
    }
}

/// Every migration this binary knows, in order.
fn every_version() -> Vec<i64> {
    (1..=manifold_server::migrations::LATEST).collect()
}

/// The `manifold` binary with `args`, without the caller's MANIFOLD_* and OTEL_* settings.
fn manifold(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_manifold"));
    for key in inherited_settings() {
        command.env_remove(key);
    }
    command
        .args(args)
        .env("MANIFOLD_ROOT_PASSWORD", ROOT_PASSWORD);
    command.kill_on_drop(true);
    command
}

/// `manifold migrate --main-db url …`: its success and everything it printed.
async fn migrate(url: &str, extra: &[&str]) -> (bool, String) {
    let mut args = vec!["migrate", "--main-db", url];
    args.extend_from_slice(extra);
    let output = tokio::time::timeout(DEADLINE, manifold(&args).output())
        .await
        .expect("manifold migrate finishes")
        .expect("manifold migrate runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A running `manifold serve`.
struct Serve {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Serve {
    /// Starts `manifold serve` on `url` with `extra` options; its output goes to a file in
    /// `dir`.
    fn spawn(url: &str, dir: &Path, extra: &[&str]) -> Self {
        let port = free_port();
        let log = dir.join(format!("manifold-{port}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["serve", "--listen", &listen, "--main-db", url];
        args.extend_from_slice(extra);
        let child = manifold(&args)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("manifold starts");
        Self { child, port, log }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `/health/ready` answers 200; the process's output if it exits first.
    async fn ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}: {}", self.output()));
            }
            if let Ok((200, _)) = self.request("GET", "/health/ready", None).await {
                return Ok(());
            }
            if started.elapsed() > DEADLINE {
                return Err(format!("not ready in {DEADLINE:?}: {}", self.output()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the process to exit by itself; its success and output.
    async fn exit(mut self) -> (bool, String) {
        let status = tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("manifold exits")
            .expect("manifold's status");
        (status.success(), self.output())
    }

    /// One HTTP/1.1 request; the status and body.
    async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Json>,
    ) -> std::io::Result<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await?;
        let body = body.map(Json::to_string).unwrap_or_default();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let status = raw
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b).to_owned();
        Ok((status, body))
    }

    /// Signs in as root: the accounts' tables work.
    async fn sign_in(&self) {
        let (status, body) = self
            .request(
                "POST",
                "/api/auth:signIn",
                Some(&json!({ "account": "root", "password": ROOT_PASSWORD })),
            )
            .await
            .expect("the sign-in is answered");
        assert_eq!(status, 200, "{body}");
        let answer: Json = serde_json::from_str(&body).unwrap_or(Json::Null);
        assert!(answer["data"]["token"].is_string(), "{body}");
    }
}

/// Three replicas at the same moment on a fresh `backend` main database: all become
/// ready and serve; the migration ran once and the built-in rows were written once.
async fn replicas_start_together(backend: Backend) {
    let db = MainDb::fresh(backend).await;
    let mut replicas: Vec<Serve> = (0..3)
        .map(|_| Serve::spawn(&db.url, db.dir.path(), &[]))
        .collect();
    for (i, replica) in replicas.iter_mut().enumerate() {
        if let Err(e) = replica.ready().await {
            panic!("{backend:?} replica {i}: {e}");
        }
    }
    for replica in &replicas {
        replica.sign_in().await;
    }
    assert_eq!(db.versions().await, every_version());
    assert_eq!(
        db.number("SELECT COUNT(*) FROM users WHERE username = 'root'")
            .await,
        1
    );
    assert_eq!(
        db.number("SELECT COUNT(*) FROM \"rolesUsers\"").await,
        3,
        "root holds each built-in role once"
    );
    for key in ["all", "own"] {
        assert_eq!(
            db.number(&format!(
                "SELECT COUNT(*) FROM \"dataSourcesRolesResourcesScopes\" WHERE \"key\" = '{key}'"
            ))
            .await,
            1,
            "scope {key}"
        );
    }
}

#[tokio::test]
async fn three_replicas_start_together_on_a_fresh_postgres_main_database() {
    replicas_start_together(Backend::Postgres).await;
}

#[tokio::test]
async fn three_replicas_start_together_on_a_fresh_mariadb_main_database() {
    replicas_start_together(Backend::MariaDb).await;
}

#[tokio::test]
async fn three_replicas_start_together_on_a_fresh_sqlite_main_database() {
    replicas_start_together(Backend::Sqlite).await;
}

/// A database made before versions were recorded (the version-1 schema without
/// `_manifold_migrations`, one table missing as after a stopped first start, a user in
/// it) is recognised as version 1: the missing table is made, the rows stay.
async fn an_older_database_is_recognised_and_completed(backend: Backend) {
    let db = MainDb::fresh(backend).await;
    let (ok, output) = migrate(&db.url, &[]).await;
    assert!(ok, "{output}");
    db.exec("DROP TABLE _manifold_migrations").await;
    db.exec("DROP TABLE _manifold_settings").await;
    db.exec("INSERT INTO users (username, nickname) VALUES ('alice', 'Alice')")
        .await;

    let mut serve = Serve::spawn(&db.url, db.dir.path(), &[]);
    if let Err(e) = serve.ready().await {
        panic!("{backend:?}: {e}");
    }
    serve.sign_in().await;
    let output = serve.output();
    assert!(
        output.contains("made before schema versions were recorded"),
        "{output}"
    );
    assert_eq!(db.versions().await, every_version());
    assert_eq!(
        db.number("SELECT COUNT(*) FROM users WHERE username = 'alice'")
            .await,
        1
    );
    // The signing secret lives in the table the migration made again.
    assert_eq!(
        db.number("SELECT COUNT(*) FROM _manifold_settings").await,
        1,
        "{output}"
    );
}

#[tokio::test]
async fn an_older_postgres_database_is_recognised_and_completed() {
    an_older_database_is_recognised_and_completed(Backend::Postgres).await;
}

#[tokio::test]
async fn an_older_mariadb_database_is_recognised_and_completed() {
    an_older_database_is_recognised_and_completed(Backend::MariaDb).await;
}

#[tokio::test]
async fn an_older_sqlite_database_is_recognised_and_completed() {
    an_older_database_is_recognised_and_completed(Backend::Sqlite).await;
}

/// A database at a version this binary does not know is refused by `migrate` and
/// `serve`, naming both versions, and left as it was.
async fn a_newer_database_is_refused(backend: Backend) {
    let db = MainDb::fresh(backend).await;
    let (ok, output) = migrate(&db.url, &[]).await;
    assert!(ok, "{output}");
    db.exec("INSERT INTO _manifold_migrations (version, name) VALUES (99, 'from the future')")
        .await;
    let (ok, output) = migrate(&db.url, &[]).await;
    assert!(!ok, "{output}");
    let knows = format!(
        "this manifold knows (version {})",
        manifold_server::migrations::LATEST
    );
    for part in ["schema version 99", knows.as_str()] {
        assert!(output.contains(part), "{output}");
    }
    let (ok, output) = Serve::spawn(&db.url, db.dir.path(), &[]).exit().await;
    assert!(!ok, "{output}");
    assert!(
        output.contains("cannot start: the main database is at schema version 99"),
        "{output}"
    );
    assert_eq!(db.versions().await, [every_version(), vec![99]].concat());
}

#[tokio::test]
async fn a_newer_postgres_database_is_refused() {
    a_newer_database_is_refused(Backend::Postgres).await;
}

#[tokio::test]
async fn a_newer_mariadb_database_is_refused() {
    a_newer_database_is_refused(Backend::MariaDb).await;
}

#[tokio::test]
async fn a_newer_sqlite_database_is_refused() {
    a_newer_database_is_refused(Backend::Sqlite).await;
}

/// `--migrations check` refuses a database still to migrate; after `manifold migrate`
/// (which says what it did, and nothing the second time) it starts.
async fn migrate_then_serve_checking(backend: Backend) {
    let db = MainDb::fresh(backend).await;
    let (ok, output) = Serve::spawn(&db.url, db.dir.path(), &["--migrations", "check"])
        .exit()
        .await;
    assert!(!ok, "{output}");
    let needs = format!(
        "at schema version 0 and this manifold needs version {}",
        manifold_server::migrations::LATEST
    );
    assert!(
        output.contains(&needs) && output.contains("run `manifold migrate` first"),
        "{output}"
    );

    let (ok, output) = migrate(&db.url, &[]).await;
    assert!(ok, "{output}");
    assert!(output.contains("schema is migrated"), "{output}");
    let (ok, output) = migrate(&db.url, &[]).await;
    assert!(ok, "{output}");
    assert!(output.contains("schema is up to date"), "{output}");
    assert_eq!(db.versions().await, every_version());

    let mut serve = Serve::spawn(&db.url, db.dir.path(), &["--migrations", "check"]);
    if let Err(e) = serve.ready().await {
        panic!("{backend:?}: {e}");
    }
    serve.sign_in().await;
}

#[tokio::test]
async fn migrate_then_serve_checking_on_postgres() {
    migrate_then_serve_checking(Backend::Postgres).await;
}

#[tokio::test]
async fn migrate_then_serve_checking_on_mariadb() {
    migrate_then_serve_checking(Backend::MariaDb).await;
}

#[tokio::test]
async fn migrate_then_serve_checking_on_sqlite() {
    migrate_then_serve_checking(Backend::Sqlite).await;
}

/// An in-memory main database is never shared, so it takes no lock file: nothing is left
/// in the working directory (sqlx names `sqlite::memory:` after a URI of its own, which
/// is not a file).
#[tokio::test]
async fn an_in_memory_main_database_leaves_no_lock_file() {
    let dir = tempfile::tempdir().expect("a directory");
    let output = tokio::time::timeout(
        DEADLINE,
        manifold(&["migrate", "--main-db", "sqlite::memory:"])
            .current_dir(dir.path())
            .output(),
    )
    .await
    .expect("manifold migrate finishes")
    .expect("manifold migrate runs");
    assert!(output.status.success(), "{output:?}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("the directory")
        .map(|entry| entry.expect("an entry").file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// While another session holds the migration lock, `migrate` fails after the timeout
/// with an error that names the option, and migrates nothing.
#[tokio::test]
async fn a_held_lock_fails_the_start_after_the_timeout() {
    for backend in [Backend::Postgres, Backend::MariaDb, Backend::Sqlite] {
        let db = MainDb::fresh(backend).await;
        // A session of the test's own takes the lock Manifold's migrations use.
        let holder = match &db.pool {
            Pool::Postgres(p) => {
                let mut c = p.acquire().await.expect("a connection").detach();
                sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
                    .bind("manifold migrations public")
                    .execute(&mut c)
                    .await
                    .expect("the lock");
                Box::new(c) as Box<dyn std::any::Any>
            }
            Pool::MySql(p) => {
                let mut c = p.acquire().await.expect("a connection").detach();
                let name = manifold_sql::lock::lock_name(&format!(
                    "manifold migrations {}",
                    db.url.rsplit('/').next().unwrap_or_default()
                ));
                let granted: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 5)")
                    .bind(name)
                    .fetch_one(&mut c)
                    .await
                    .expect("the lock");
                assert_eq!(granted, Some(1));
                Box::new(c) as Box<dyn std::any::Any>
            }
            // SQLite's stand-in: an OS lock on the file beside the database.
            Pool::Sqlite(_) => {
                let file = std::fs::File::create(
                    db.dir.path().join("data").join("main.sqlite-manifold-lock"),
                )
                .expect("the lock file");
                file.lock().expect("the lock");
                Box::new(file) as Box<dyn std::any::Any>
            }
        };
        let (ok, output) = migrate(&db.url, &["--migration-lock-timeout", "1s"]).await;
        assert!(!ok, "{backend:?}: {output}");
        assert!(
            output.contains("held the main database's migration lock for more than 1s")
                && output.contains("--migration-lock-timeout"),
            "{backend:?}: {output}"
        );
        drop(holder);
        let tables = match backend {
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = 'users'"
            }
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'users'"
            }
            _ => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND table_name = 'users'"
            }
        };
        assert_eq!(db.number(tables).await, 0, "{backend:?}");
    }
}
