//! A database that restarts comes back without failed requests: once it is up again, no
//! request fails on a connection the restart broke, whether it restarted under load or
//! while the pool sat idle.
//!
//! The restart is a proxy between Manifold and the test server that closes every
//! connection and refuses new ones for a second, which is what a restart looks like from
//! the pool; restarting the shared test servers would break the tests running beside.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use manifold_tests::proxy::FaultyProxy;
use manifold_tests::{Backend, ScratchDatabase, TestApp, server_address, server_credentials};
use poem::http::Method;
use serde_json::json;

/// How long the database is down.
const DOWN_FOR: Duration = Duration::from_secs(1);

/// A scratch database with `items(id, name)` and one row.
async fn database_with_items(backend: Backend) -> ScratchDatabase {
    let db = ScratchDatabase::create(backend).await;
    let create = match backend {
        Backend::Postgres => "CREATE TABLE items (id SERIAL PRIMARY KEY, name TEXT)",
        _ => "CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name TEXT)",
    };
    db.execute(&[create, "INSERT INTO items (name) VALUES ('one')"])
        .await;
    db
}

/// An app with the source `flaky` on `backend`, reached through a proxy.
async fn app_behind_proxy(backend: Backend) -> (TestApp, FaultyProxy, ScratchDatabase) {
    let t = TestApp::with(|c| c.request_timeout = 5).await;
    let db = database_with_items(backend).await;
    let proxy = FaultyProxy::start(server_address(backend)).await;
    let (username, password) = server_credentials(backend);
    let kind = match backend {
        Backend::Postgres => "postgres",
        _ => "mysql",
    };
    t.register_source(
        "flaky",
        kind,
        json!({
            "host": "127.0.0.1", "port": proxy.addr().port(), "database": db.name(),
            "username": username, "password": password,
            "maxConnections": 8, "acquireTimeoutMs": 1000,
        }),
    )
    .await;
    (t, proxy, db)
}

/// Lists `items` on `flaky`: when it was sent, and the status.
async fn list(t: &TestApp) -> (Instant, u16, String) {
    let sent = Instant::now();
    let r = t.on("flaky", Method::GET, "/api/items:list", None).await;
    (sent, r.status, r.error().to_owned())
}

/// `n` lists at once, each expected to succeed: the pool then holds several connections.
async fn all_succeed(t: &TestApp, n: usize, when: &str) {
    for (_, status, error) in join_all((0..n).map(|_| list(t))).await {
        assert_eq!(status, 200, "{when}: {error}");
    }
}

async fn restart_under_load(backend: Backend) {
    let (t, proxy, _db) = app_behind_proxy(backend).await;
    all_succeed(&t, 8, "before the restart").await;

    let stop = Instant::now() + DOWN_FOR * 4;
    let worker = || async {
        let mut seen = Vec::new();
        while Instant::now() < stop {
            seen.push(list(&t).await);
        }
        seen
    };
    let restart = async {
        tokio::time::sleep(DOWN_FOR / 2).await;
        proxy.kill();
        tokio::time::sleep(DOWN_FOR).await;
        proxy.pass();
        Instant::now()
    };
    let (seen, back) = tokio::join!(join_all((0..4).map(|_| worker())), restart);
    let seen: Vec<_> = seen.into_iter().flatten().collect();

    let during: Vec<_> = seen.iter().filter(|(sent, ..)| *sent < back).collect();
    let after: Vec<_> = seen.iter().filter(|(sent, ..)| *sent >= back).collect();
    assert!(
        during.iter().any(|(_, status, _)| *status == 503),
        "the restart was seen: {during:?}"
    );
    assert!(
        during
            .iter()
            .all(|(_, status, _)| matches!(status, 200 | 503)),
        "a down database is a 503: {during:?}"
    );
    assert!(
        after.len() > 10,
        "the load went on: {} requests",
        after.len()
    );
    for (_, status, error) in &after {
        assert_eq!(*status, 200, "a request after the restart failed: {error}");
    }
}

async fn restart_while_idle(backend: Backend) {
    let (t, proxy, _db) = app_behind_proxy(backend).await;
    all_succeed(&t, 8, "before the restart").await;
    // Long enough for every connection to be back in sqlx's idle queue, checked there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.kill();
    tokio::time::sleep(DOWN_FOR).await;
    proxy.pass();
    all_succeed(&t, 8, "the first requests after the restart").await;
}

#[tokio::test]
async fn postgres_restarting_under_load_fails_no_request_once_it_is_back() {
    restart_under_load(Backend::Postgres).await;
}

#[tokio::test]
async fn mariadb_restarting_under_load_fails_no_request_once_it_is_back() {
    restart_under_load(Backend::MariaDb).await;
}

#[tokio::test]
async fn postgres_restarting_while_idle_fails_no_request_once_it_is_back() {
    restart_while_idle(Backend::Postgres).await;
}

#[tokio::test]
async fn mariadb_restarting_while_idle_fails_no_request_once_it_is_back() {
    restart_while_idle(Backend::MariaDb).await;
}
