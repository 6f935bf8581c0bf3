//! Helpers every test file of this crate shares: a scratch database per test, dropped
//! afterwards even when the test fails, and a counter of the statements sqlx runs.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use manifold_mysql::{MySqlConnector, MySqlOptions};
use serde_json::{Value as Json, json};
use sqlx::{AssertSqlSafe, Connection, MySqlConnection};

pub const DEFAULT_ADMIN_URL: &str = "mysql://root@127.0.0.1:3306/mysql";

pub fn admin_url() -> String {
    std::env::var("MANIFOLD_TEST_MYSQL_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// `url` with its database path replaced by `database`.
pub fn url_with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let (authority, _) = rest.split_once('/').unwrap_or((rest, ""));
    format!("{scheme}://{authority}/{database}")
}

pub async fn admin_connection(url: &str) -> MySqlConnection {
    MySqlConnection::connect(url).await.unwrap_or_else(|e| {
        panic!(
            "MySQL/MariaDB is not reachable at {url} ({e}). Start it \
             (`start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd`, \
             see shared/testing.md) or set MANIFOLD_TEST_MYSQL_URL"
        )
    })
}

/// A database of its own for one test, dropped when the guard is dropped (also on panic).
pub struct TestDb {
    pub name: String,
    pub admin_url: String,
}

impl TestDb {
    pub async fn create() -> Self {
        let admin_url = admin_url();
        let mut conn = admin_connection(&admin_url).await;
        let name = format!(
            "manifold_my_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4"
        )))
        .execute(&mut conn)
        .await
        .expect("create the test database");
        let _ = conn.close().await;
        Self { name, admin_url }
    }

    pub fn url(&self) -> String {
        url_with_database(&self.admin_url, &self.name)
    }

    /// A connector on this database, with `extra` options merged in.
    pub async fn connector_with(&self, extra: Json) -> MySqlConnector {
        let mut options = json!({ "url": self.url() });
        if let (Some(o), Json::Object(extra)) = (options.as_object_mut(), extra) {
            o.extend(extra);
        }
        let options = MySqlOptions::from_json(&options).expect("valid options");
        MySqlConnector::open(&options)
            .await
            .expect("connector opens")
    }

    pub async fn connector(&self) -> MySqlConnector {
        self.connector_with(json!({})).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // The test's runtime may be gone or busy unwinding: drop from a runtime of our own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let mut conn = MySqlConnection::connect(&url)
                    .await
                    .map_err(|e| e.to_string())?;
                // A session of the test may still hold locks in the database (a failed
                // transaction whose rollback the test's runtime never got to send), and
                // DROP DATABASE would wait for them forever: end those sessions first.
                let sessions: Vec<(i64,)> = sqlx::query_as(
                    "SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
                )
                .bind(&name)
                .fetch_all(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
                for (id,) in sessions {
                    let _ = sqlx::raw_sql(AssertSqlSafe(format!("KILL {id}")))
                        .execute(&mut conn)
                        .await;
                }
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "SET SESSION lock_wait_timeout = 30; DROP DATABASE IF EXISTS `{name}`"
                )))
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
                let _ = conn.close().await;
                Ok::<(), String>(())
            })
        })
        .join();
        let failure = match dropped {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e,
            Err(_) => "the dropping thread panicked".to_owned(),
        };
        let message = format!("could not drop test database {}: {failure}", self.name);
        if std::thread::panicking() {
            eprintln!("{message}");
        } else {
            panic!("{message}");
        }
    }
}

/// Counts the statements sqlx runs (its `sqlx::query` events), and keeps what each
/// event says (its fields, the statement's text among them).
#[derive(Default)]
pub struct QueryCounter(pub Arc<AtomicUsize>, pub Arc<std::sync::Mutex<Vec<String>>>);

/// An event's fields as one line of text.
struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
    }
}

impl tracing::Subscriber for QueryCounter {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target() == "sqlx::query"
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if event.metadata().target() == "sqlx::query" {
            self.0.fetch_add(1, Ordering::SeqCst);
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            self.1
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(fields.0);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Statements `work` runs, counted from sqlx's query events.
pub async fn statements_of<F: std::future::Future>(work: F) -> (usize, F::Output) {
    let (texts, output) = statement_texts_of(work).await;
    (texts.len(), output)
}

/// What sqlx said of each statement `work` runs (the statement's text among it).
pub async fn statement_texts_of<F: std::future::Future>(work: F) -> (Vec<String>, F::Output) {
    let counter = QueryCounter::default();
    let statements = counter.1.clone();
    let counting = tracing::Dispatch::new(counter);
    // With a single live dispatcher, tracing caches a call site's interest from the
    // default subscriber of whichever thread first reaches it: another test's thread,
    // with none, would disable sqlx's sites for good. With two live dispatchers it asks
    // them all.
    let _second = tracing::Dispatch::new(QueryCounter::default());
    let _guard = tracing::dispatcher::set_default(&counting);
    let output = work.await;
    let texts = std::mem::take(
        &mut *statements
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    (texts, output)
}
