//! A sick data source hurts only its own requests: it is blackholed or killed mid-run
//! (through a proxy), its pool runs dry, or its host is not allowed — and main and the
//! other sources keep serving.

use std::time::{Duration, Instant};

use manifold_tests::proxy::FaultyProxy;
use manifold_tests::{Backend, ScratchDatabase, TestApp, server_credentials};
use poem::http::Method;
use serde_json::{Value as Json, json};

/// A PostgreSQL scratch database with `items(id, name)` holding one row, and, when asked,
/// a view that takes `seconds` to read.
async fn postgres_with_items(slow_seconds: Option<f64>) -> ScratchDatabase {
    let db = ScratchDatabase::create(Backend::Postgres).await;
    let pool = sqlx::PgPool::connect(&db.url())
        .await
        .expect("scratch database");
    let mut statements = vec![
        "CREATE TABLE items (id SERIAL PRIMARY KEY, name TEXT)".to_owned(),
        "INSERT INTO items (name) VALUES ('one')".to_owned(),
    ];
    if let Some(s) = slow_seconds {
        statements.push(format!(
            "CREATE VIEW slow AS SELECT 1 AS id, pg_sleep({s})::text AS nap"
        ));
    }
    for statement in statements {
        sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&pool)
            .await
            .expect("setup");
    }
    pool.close().await;
    db
}

fn database_name(db: &ScratchDatabase) -> String {
    db.name().to_owned()
}

async fn register_postgres(t: &TestApp, key: &str, port: u16, database: &str, pool: Json) {
    let (username, password) = server_credentials(Backend::Postgres);
    let mut options = json!({
        "host": "127.0.0.1", "port": port, "database": database,
        "username": username, "password": password,
    });
    if let (Some(o), Some(p)) = (options.as_object_mut(), pool.as_object()) {
        o.extend(p.clone());
    }
    let r = t
        .post(
            "/api/dataSources:create",
            json!({"key": key, "type": "postgres", "options": options}),
        )
        .await;
    assert_eq!(r.status, 200, "register {key}: {:?}", r.body);
    let record = t.settled(key).await;
    assert_eq!(record["status"], json!("loaded"), "{record}");
}

async fn list(t: &TestApp, key: &str, collection: &str) -> (u16, String, Duration) {
    let started = Instant::now();
    let r = t
        .on(key, Method::GET, &format!("/api/{collection}:list"), None)
        .await;
    (r.status, r.error().to_owned(), started.elapsed())
}

#[tokio::test]
async fn a_blackholed_or_killed_source_fails_alone_and_recovers() {
    let t = TestApp::with(|c| c.request_timeout = 2).await;
    let sick_db = postgres_with_items(None).await;
    let steady_db = postgres_with_items(None).await;
    let proxy = FaultyProxy::start("127.0.0.1:5432".parse().expect("addr")).await;
    let pool = json!({"acquireTimeoutMs": 1000, "statementTimeoutMs": 1500});
    register_postgres(
        &t,
        "sick",
        proxy.addr().port(),
        &database_name(&sick_db),
        pool.clone(),
    )
    .await;
    register_postgres(&t, "steady", 5432, &database_name(&steady_db), pool).await;
    t.collection(json!({"name": "notes", "fields": [{"name": "text", "type": "text"}]}))
        .await;

    for key in ["sick", "steady"] {
        assert_eq!(
            list(&t, key, "items").await.0,
            200,
            "{key} before the fault"
        );
    }

    // Blackhole: the sick source's request hangs until its deadline; the others answer
    // at once while it hangs.
    proxy.blackhole();
    let (sick, steady, main) = tokio::join!(
        list(&t, "sick", "items"),
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            list(&t, "steady", "items").await
        },
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            list(&t, "main", "notes").await
        },
    );
    assert!(matches!(sick.0, 503 | 504), "blackholed: {sick:?}");
    assert!(
        sick.2 < Duration::from_secs(5),
        "answered within its deadline: {sick:?}"
    );
    assert_eq!(steady.0, 200, "{steady:?}");
    assert_eq!(main.0, 200, "{main:?}");
    assert!(steady.2 < Duration::from_secs(1) && main.2 < Duration::from_secs(1));

    // Killed: connections are refused, the source answers 503 fast, the others serve.
    proxy.kill();
    let sick = list(&t, "sick", "items").await;
    assert_eq!(sick.0, 503, "killed: {sick:?}");
    assert!(sick.2 < Duration::from_secs(3), "{sick:?}");
    assert_eq!(list(&t, "steady", "items").await.0, 200);
    assert_eq!(list(&t, "main", "notes").await.0, 200);

    // Back up: new connections work again without a restart.
    proxy.pass();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, _) = list(&t, "sick", "items").await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the source did not recover: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_exhausted_pool_answers_503_within_the_acquire_timeout() {
    let t = TestApp::new().await;
    let db = postgres_with_items(Some(2.0)).await;
    register_postgres(
        &t,
        "tiny",
        5432,
        &database_name(&db),
        json!({"maxConnections": 1, "acquireTimeoutMs": 300, "statementTimeoutMs": 10000}),
    )
    .await;
    let (slow, starved) = tokio::join!(list(&t, "tiny", "slow"), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        list(&t, "tiny", "items").await
    });
    assert_eq!(slow.0, 200, "{slow:?}");
    assert_eq!(starved.0, 503, "{starved:?}");
    assert!(starved.2 < Duration::from_millis(1500), "{starved:?}");
    assert!(
        starved.1.contains("no database connection became free"),
        "{starved:?}"
    );
}

#[tokio::test]
async fn a_slow_query_hits_the_statement_timeout_as_a_504() {
    let t = TestApp::new().await;
    let db = postgres_with_items(Some(3.0)).await;
    register_postgres(
        &t,
        "slowpoke",
        5432,
        &database_name(&db),
        json!({"statementTimeoutMs": 300}),
    )
    .await;
    let r = list(&t, "slowpoke", "slow").await;
    assert_eq!(r.0, 504, "{r:?}");
    assert!(r.2 < Duration::from_secs(2), "{r:?}");
    assert_eq!(
        list(&t, "slowpoke", "items").await.0,
        200,
        "the pool is fine after"
    );
}

#[tokio::test]
async fn hosts_outside_the_operators_rules_are_refused() {
    let t = TestApp::new().await;
    let probe = |host: &str| json!({"type": "postgres", "options": {"host": host, "port": 5432, "database": "x", "username": "u"}});
    let r = t
        .post("/api/dataSources:testConnection", probe("169.254.169.254"))
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert!(
        r.error().starts_with("host 169.254.169.254 is not allowed"),
        "{}",
        r.error()
    );

    let t = TestApp::with(|c| c.allowed_hosts = vec!["*.db.internal".into(), "10.0.0.0/8".into()])
        .await;
    let r = t
        .post(
            "/api/dataSources:create",
            json!({"key": "local", "type": "postgres",
                   "options": {"host": "127.0.0.1", "database": "test", "username": "postgres"}}),
        )
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert!(r.error().contains("not in the allow list"), "{}", r.error());
    let r = t
        .post(
            "/api/dataSources:create",
            json!({"key": "viaurl", "type": "postgres",
                   "options": {"url": "postgres://postgres:pw@localhost:5432/test"}}),
        )
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert!(!r.body.to_string().contains("pw@"), "no password in errors");
}

/// Whether a `pg_sleep` from `database` is still running on the server.
async fn sleeping_in(database: &str) -> bool {
    let url = std::env::var("MANIFOLD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let pool = sqlx::PgPool::connect(&url).await.expect("admin connection");
    let running: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND query LIKE '%slow%'",
    )
    .bind(database)
    .fetch_one(&pool)
    .await
    .expect("pg_stat_activity");
    pool.close().await;
    running > 0
}

/// Sends `GET /api/slow:list` to source `key` over a raw socket, waits until `running`
/// sees the statement on the server, hangs up, and expects the statement gone soon after.
async fn hang_up_during<F, Fut>(t: &TestApp, key: &str, running: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    use tokio::io::AsyncWriteExt;

    let server = manifold_server::http::Server::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = server.local_addr;
    let server = tokio::spawn(server.run(t.app.clone(), 1 << 20, std::future::pending()));

    let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET /api/slow:list HTTP/1.1\r\nHost: x\r\nX-Data-Source: {key}\r\nAuthorization: Bearer {}\r\n\r\n",
        t.root_token()
    );
    client.write_all(request.as_bytes()).await.expect("send");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !running().await {
        assert!(Instant::now() < deadline, "the slow query never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(client);
    let deadline = Instant::now() + Duration::from_secs(5);
    while running().await {
        assert!(
            Instant::now() < deadline,
            "the query was still running 5 s after the client left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.abort();
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_its_running_query() {
    let t = TestApp::new().await;
    let db = postgres_with_items(Some(20.0)).await;
    register_postgres(
        &t,
        "pg",
        5432,
        &database_name(&db),
        json!({"statementTimeoutMs": 60000}),
    )
    .await;
    hang_up_during(&t, "pg", || sleeping_in(db.name())).await;
}

/// A MariaDB scratch database with a view that takes `seconds` to read.
async fn mariadb_with_slow_view(seconds: u32) -> ScratchDatabase {
    let db = ScratchDatabase::create(Backend::MariaDb).await;
    let pool = sqlx::MySqlPool::connect(&db.url())
        .await
        .expect("scratch database");
    let view = format!("CREATE VIEW slow AS SELECT 1 AS id, SLEEP({seconds}) AS nap");
    sqlx::query(sqlx::AssertSqlSafe(view))
        .execute(&pool)
        .await
        .expect("setup");
    pool.close().await;
    db
}

/// Whether a statement reading `slow` runs in MariaDB database `database`.
async fn mariadb_sleeping_in(database: &str) -> bool {
    let url = std::env::var("MANIFOLD_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/mysql".into());
    let pool = sqlx::MySqlPool::connect(&url)
        .await
        .expect("admin connection");
    let running: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ? AND COMMAND IN ('Query', 'Execute') AND INFO LIKE '%slow%'",
    )
    .bind(database)
    .fetch_one(&pool)
    .await
    .expect("processlist");
    pool.close().await;
    running > 0
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_its_running_query_on_mariadb() {
    // MariaDB does not notice a closed socket mid-statement: the statement is killed by
    // its session id.
    let t = TestApp::new().await;
    let db = mariadb_with_slow_view(20).await;
    let (username, password) = server_credentials(Backend::MariaDb);
    let r = t
        .post(
            "/api/dataSources:create",
            json!({"key": "maria", "type": "mariadb", "options": {
                "host": "127.0.0.1", "port": 3306, "database": db.name(),
                "username": username, "password": password, "statementTimeoutMs": 60000
            }}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(t.settled("maria").await["status"], json!("loaded"));
    hang_up_during(&t, "maria", || mariadb_sleeping_in(db.name())).await;
}
