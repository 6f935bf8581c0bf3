//! The warm list of `manifold_sql::pool::SharedPool` on a real PostgreSQL server: a
//! connection handed back as clean serves the next checkout as it is, without sqlx's
//! check on release; one dropped instead goes back to sqlx; an unused one goes back to
//! sqlx after `ALIVE_WINDOW`.
//!
//! Each test creates its own database through `postgres://postgres@127.0.0.1:5432/postgres`
//! (or `MANIFOLD_TEST_POSTGRES_URL`); a missing server fails the test.

use manifold_sql::pool::{ALIVE_WINDOW, SharedPool};
use sqlx::PgPool;

mod common;
use common::*;

async fn backend_pid(lease: &mut manifold_sql::pool::Leased<sqlx::Postgres>) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut ***lease)
        .await
        .expect("pid")
}

/// A shared pool of at most `connections`, which waits at most 2 s for one, and the sqlx
/// pool under it.
async fn pool(db: &TestDb, connections: u32) -> (SharedPool<sqlx::Postgres>, PgPool) {
    let raw = sqlx::postgres::PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(std::time::Duration::from_secs(2))
        .test_before_acquire(false)
        .connect(&db.url)
        .await
        .expect("connect");
    (SharedPool::new(raw.clone()), raw)
}

#[tokio::test]
async fn a_recycled_connection_serves_the_next_checkout_as_it_is() {
    let db = TestDb::create().await;
    let (pool, raw) = pool(&db, 2).await;
    let mut lease = pool.acquire().await.expect("a connection");
    let first = backend_pid(&mut lease).await;
    lease.recycle();
    // Warm: idle for the metrics, still checked out as far as sqlx knows.
    assert_eq!((pool.status().size, pool.status().in_use), (1, 0));
    assert_eq!(raw.num_idle(), 0);
    for _ in 0..3 {
        let mut lease = pool.acquire().await.expect("a connection");
        assert_eq!(backend_pid(&mut lease).await, first, "the same connection");
        lease.recycle();
    }
    pool.close().await;
}

#[tokio::test]
async fn a_dropped_lease_goes_back_to_sqlx_and_an_unused_warm_one_after_a_while() {
    let db = TestDb::create().await;
    let (pool, raw) = pool(&db, 2).await;
    let mut lease = pool.acquire().await.expect("a connection");
    let first = backend_pid(&mut lease).await;
    drop(lease);
    // sqlx checks it and takes it back in a task of its own.
    let back = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while raw.num_idle() != 1 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(back.is_ok(), "sqlx has it idle again");

    let mut lease = pool.acquire().await.expect("a connection");
    assert_eq!(
        backend_pid(&mut lease).await,
        first,
        "sqlx's idle connection"
    );
    lease.recycle();
    assert_eq!(raw.num_idle(), 0, "warm, not in sqlx's idle list");
    tokio::time::sleep(ALIVE_WINDOW * 3).await;
    assert_eq!(raw.num_idle(), 1, "unused for a while: back with sqlx");
    assert_eq!((pool.status().size, pool.status().in_use), (1, 0));
    pool.close().await;
}

#[tokio::test]
async fn closing_the_pool_hands_warm_connections_back_and_keeps_none_after() {
    let db = TestDb::create().await;
    let (pool, raw) = pool(&db, 2).await;
    let mut lease = pool.acquire().await.expect("a connection");
    backend_pid(&mut lease).await;
    let mut other = pool.acquire().await.expect("a second connection");
    backend_pid(&mut other).await;
    lease.recycle();
    // Closing waits for every connection sqlx lent: the warm one is handed back first.
    let closing = tokio::spawn({
        let pool = pool.clone();
        async move { pool.close().await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    // Recycled after the close began: not kept.
    other.recycle();
    tokio::time::timeout(std::time::Duration::from_secs(5), closing)
        .await
        .expect("the close ended")
        .expect("no panic");
    assert!(raw.is_closed());
    assert_eq!(raw.size(), 0);
}

#[tokio::test]
async fn checkouts_take_turns_so_none_waits_behind_recycled_connections() {
    // One connection, recycled by every holder: a checkout that waited in sqlx's own
    // queue would never see it (it goes to the warm list, not back to sqlx) and would
    // time out. Every checkout takes its turn in arrival order instead.
    let db = TestDb::create().await;
    let (pool, _) = pool(&db, 1).await;
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let pool = pool.clone();
        callers.spawn(async move {
            let mut lease = pool.acquire().await?;
            let pid = backend_pid(&mut lease).await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            lease.recycle();
            Ok::<i32, sqlx::Error>(pid)
        });
    }
    let pids = callers.join_all().await;
    assert!(pids.iter().all(Result::is_ok), "{pids:?}");
    pool.close().await;
}
