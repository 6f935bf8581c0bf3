//! The data-source registration API (`dataSources:*`), its status machine and its rules,
//! with SQLite sources registered over HTTP.

use manifold_server::ServeConfig;
use manifold_tests::{Backend, TestApp, filter};
use poem::http::Method;
use serde_json::{Value as Json, json};

async fn register(t: &TestApp, key: &str) -> Json {
    let r = t
        .post(
            "/api/dataSources:create",
            json!({"key": key, "type": "sqlite", "displayName": key.to_uppercase(),
                   "options": {"path": format!("{key}.sqlite"), "password": "s3cret-pw"}}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    t.settled(key).await
}

async fn raw_sqlite(t: &TestApp, key: &str, statements: &[&str]) {
    let path = t.dir.path().join("sources").join(format!("{key}.sqlite"));
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open the source's file");
    for statement in statements {
        sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
            .execute(&pool)
            .await
            .expect("statement");
    }
    pool.close().await;
}

#[tokio::test]
async fn a_registered_source_loads_serves_and_lists() {
    let t = TestApp::new().await;
    let record = register(&t, "ds1").await;
    assert_eq!(record["status"], json!("loaded"), "{record}");
    assert_eq!(record["displayName"], json!("DS1"));

    let list = t.get("/api/dataSources:list").await;
    assert_eq!(list.column("key"), [json!("main"), json!("ds1")]);
    assert_eq!(list.body["meta"]["count"], json!(2));
    let list = t
        .get(&format!(
            "/api/dataSources:list?{}",
            filter(json!({"type.$ne": "main"}))
        ))
        .await;
    assert_eq!(list.column("key"), [json!("ds1")]);

    // The source is empty; a table made in its file appears after a refresh, while
    // requests keep being served.
    let r = t.on("ds1", Method::GET, "/api/items:list", None).await;
    assert_eq!(r.status, 404);
    raw_sqlite(
        &t,
        "ds1",
        &["CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)"],
    )
    .await;
    let r = t.post_empty("/api/dataSources:refresh/ds1").await;
    assert_eq!(r.data(), &json!({"status": "reloading"}), "DSA-04");
    assert_eq!(t.settled("ds1").await["status"], json!("loaded"));
    let r = t
        .on(
            "ds1",
            Method::POST,
            "/api/items:create",
            Some(json!({"name": "first"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = t.on("ds1", Method::GET, "/api/items:list", None).await;
    assert_eq!(r.column("name"), [json!("first")]);
    assert_eq!(r.body["meta"]["pageSize"], json!(50), "LST-07");

    let r = t.get("/api/dataSources/ds1/collections:list").await;
    assert_eq!(r.column("name"), [json!("items")]);
    let r = t
        .get("/api/dataSourcesCollections/ds1.items/fields:list")
        .await;
    assert_eq!(r.column("name"), [json!("id"), json!("name")]);
    let r = t.get("/api/dataSources:get/ds1?appends=collections").await;
    assert_eq!(r.data()["collections"][0]["name"], json!("items"), "DSA-07");

    // DSM-16: the management resources live in main only.
    let r = t
        .on("ds1", Method::GET, "/api/dataSources:list", None)
        .await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn passwords_are_write_only() {
    let t = TestApp::new().await;
    register(&t, "ds1").await;
    for path in ["/api/dataSources:list", "/api/dataSources:get/ds1"] {
        let r = t.get(path).await;
        assert_eq!(r.status, 200);
        assert!(
            !r.body.to_string().contains("s3cret-pw"),
            "{path}: {}",
            r.body
        );
    }
    // An update without the password keeps it; the options shown never have it.
    let r = t
        .post(
            "/api/dataSources:update/ds1",
            json!({"displayName": "Renamed"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data()[0]["displayName"], json!("Renamed"));
    assert!(!r.body.to_string().contains("s3cret-pw"));
    assert_eq!(r.data()[0]["options"], json!({"path": "ds1.sqlite"}));
}

#[tokio::test]
async fn disabling_unloads_and_enabling_loads_again() {
    let t = TestApp::new().await;
    register(&t, "ds1").await;
    raw_sqlite(&t, "ds1", &["CREATE TABLE items (id INTEGER PRIMARY KEY)"]).await;
    t.post_empty("/api/dataSources:refresh/ds1").await;
    t.settled("ds1").await;

    let r = t
        .post("/api/dataSources:update/ds1", json!({"enabled": false}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(t.settled("ds1").await["status"], json!("disabled"));
    let r = t.on("ds1", Method::GET, "/api/items:list", None).await;
    assert_eq!((r.status, r.error()), (503, "data source ds1 is disabled"));

    t.post("/api/dataSources:update/ds1", json!({"enabled": true}))
        .await;
    assert_eq!(t.settled("ds1").await["status"], json!("loaded"));
    let r = t.on("ds1", Method::GET, "/api/items:list", None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[tokio::test]
async fn destroying_removes_the_record_and_the_source() {
    let t = TestApp::new().await;
    register(&t, "ds1").await;
    let r = t.post_empty("/api/dataSources:destroy/ds1").await;
    assert_eq!(r.data(), &json!(1));
    let r = t.on("ds1", Method::GET, "/api/items:list", None).await;
    assert_eq!(
        (r.status, r.error()),
        (404, "data source ds1 does not exist")
    );
    assert_eq!(t.get("/api/dataSources:get/ds1").await.data(), &Json::Null);
    let r = t.post_empty("/api/dataSources:destroy/main").await;
    assert_eq!(
        (r.status, r.error()),
        (400, "data source main cannot be destroyed")
    );
}

/// Holds an exclusive lock on the source's file, so that a load of it waits (up to the
/// 5 s busy timeout) until the connection is dropped.
async fn lock_sqlite(t: &TestApp, key: &str) -> sqlx::SqliteConnection {
    use sqlx::Connection as _;
    let path = t.dir.path().join("sources").join(format!("{key}.sqlite"));
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open the source's file");
    for statement in ["PRAGMA locking_mode = EXCLUSIVE", "BEGIN EXCLUSIVE"] {
        sqlx::query(statement)
            .execute(&mut conn)
            .await
            .expect("lock the file");
    }
    conn
}

/// What requests to `key` get over the next second, once each 100 ms.
async fn answers_for_a_second(t: &TestApp, key: &str) -> Vec<(u16, String)> {
    let mut seen = Vec::new();
    for _ in 0..10 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let r = t.on(key, Method::GET, "/api/items:list", None).await;
        seen.push((r.status, r.error().to_owned()));
    }
    seen
}

#[tokio::test]
async fn a_source_destroyed_while_it_loads_stays_gone() {
    let t = TestApp::new().await;
    register(&t, "late").await;
    t.post("/api/dataSources:update/late", json!({"enabled": false}))
        .await;
    let lock = lock_sqlite(&t, "late").await;
    // Re-enabling starts a load, which waits for the lock; the record goes meanwhile.
    let r = t
        .post("/api/dataSources:update/late", json!({"enabled": true}))
        .await;
    assert_eq!(r.data()[0]["status"], json!("loading"), "{:?}", r.body);
    let r = t.post_empty("/api/dataSources:destroy/late").await;
    assert_eq!(r.data(), &json!(1));
    drop(lock);

    let gone = (404, "data source late does not exist".to_owned());
    assert_eq!(answers_for_a_second(&t, "late").await, vec![gone; 10]);
    let list = t.get("/api/dataSources:list").await;
    assert_eq!(list.column("key"), [json!("main")]);
}

#[tokio::test]
async fn a_source_disabled_while_it_loads_stays_disabled() {
    let t = TestApp::new().await;
    register(&t, "late").await;
    t.post("/api/dataSources:update/late", json!({"enabled": false}))
        .await;
    let lock = lock_sqlite(&t, "late").await;
    t.post("/api/dataSources:update/late", json!({"enabled": true}))
        .await;
    let r = t
        .post("/api/dataSources:update/late", json!({"enabled": false}))
        .await;
    assert_eq!(r.data()[0]["status"], json!("disabled"), "{:?}", r.body);
    drop(lock);

    let disabled = (503, "data source late is disabled".to_owned());
    assert_eq!(answers_for_a_second(&t, "late").await, vec![disabled; 10]);
    assert_eq!(t.settled("late").await["status"], json!("disabled"));
}

#[tokio::test]
async fn records_are_loaded_again_at_start_and_a_broken_source_fails_alone() {
    let t = TestApp::new().await;
    register(&t, "good").await;
    register(&t, "bad").await;
    raw_sqlite(&t, "good", &["CREATE TABLE items (id INTEGER PRIMARY KEY)"]).await;
    let bad_file = t.dir.path().join("sources/bad.sqlite");

    let dir = t.dir;
    drop(t.app);
    std::fs::write(&bad_file, b"this is not a database").expect("corrupt the file");
    let config = ServeConfig {
        main_db: format!("sqlite://{}/main.sqlite", dir.path().display()),
        ..ServeConfig::default()
    };
    let t = TestApp::open(dir, &config).await;
    assert_eq!(t.settled("good").await["status"], json!("loaded"));
    let bad = t.settled("bad").await;
    assert_eq!(bad["status"], json!("loading-failed"), "{bad}");
    assert!(
        bad["errorMessage"].as_str().is_some_and(|m| !m.is_empty()),
        "{bad}"
    );

    let r = t.on("bad", Method::GET, "/api/items:list", None).await;
    assert_eq!(r.status, 503);
    assert!(
        r.error().starts_with("data source bad failed to load"),
        "{}",
        r.error()
    );
    let r = t.on("good", Method::GET, "/api/items:list", None).await;
    assert_eq!(r.status, 200, "the other source serves on: {:?}", r.body);
    assert_eq!(
        t.get("/api/collections:list").await.status,
        200,
        "main serves on"
    );
}

#[tokio::test]
async fn bad_registrations_are_refused_with_the_reason() {
    let t = TestApp::new().await;
    register(&t, "ds1").await;
    let cases = [
        (
            json!({"type": "sqlite", "options": {"path": "x.sqlite"}}),
            400,
            "values.key: a data source key is required",
        ),
        (
            json!({"key": "a b", "type": "sqlite", "options": {"path": "x.sqlite"}}),
            400,
            "values.key: \"a b\" is not a valid key",
        ),
        (
            json!({"key": "main", "type": "sqlite", "options": {"path": "x.sqlite"}}),
            409,
            "data source main already exists",
        ),
        (
            json!({"key": "ds1", "type": "sqlite", "options": {"path": "x.sqlite"}}),
            409,
            "data source ds1 already exists",
        ),
        (
            json!({"key": "x", "options": {}}),
            400,
            "values.type: a data source type is required",
        ),
        (
            json!({"key": "x", "type": "oracle", "options": {}}),
            400,
            "Data source type \"oracle\" not found",
        ),
        (
            json!({"key": "x", "type": "sqlite", "options": {"path": "../escape.sqlite"}}),
            400,
            "options.path: \"../escape.sqlite\" must be a relative path",
        ),
        (
            json!({"key": "x", "type": "sqlite", "options": {"path": "/etc/passwd"}}),
            400,
            "options.path: \"/etc/passwd\" must be a relative path",
        ),
        (
            json!({"key": "x", "type": "sqlite", "options": "nope"}),
            400,
            "options: expected an object",
        ),
        (
            json!({"key": "x", "type": "sqlite", "options": {"path": "x.sqlite", "maxConnectionsTotal": 4}}),
            400,
            "Test connection failed: options.maxConnectionsTotal: sqlite sources cannot share",
        ),
        (
            json!({"key": "x", "type": "postgres", "options": {"url": "postgres://u@127.0.0.1/d", "maxConnectionsTotal": 0}}),
            400,
            "Test connection failed: options.maxConnectionsTotal: expected an integer from 1 to 1000",
        ),
    ];
    for (values, status, message) in cases {
        let r = t.post("/api/dataSources:create", values.clone()).await;
        assert_eq!(r.status, status, "{values}: {:?}", r.body);
        assert!(r.error().starts_with(message), "{values}: {}", r.error());
    }
    let r = t.get("/api/dataSources:list").await;
    assert_eq!(
        r.column("key"),
        [json!("main"), json!("ds1")],
        "nothing was stored"
    );
}

#[tokio::test]
async fn test_connection_reports_success_and_failure() {
    let t = TestApp::new().await;
    let r = t
        .post(
            "/api/dataSources:testConnection",
            json!({"type": "sqlite", "options": {"path": "probe.sqlite"}}),
        )
        .await;
    assert_eq!(r.data(), &json!({"success": true}), "DSA-10: {:?}", r.body);
    std::fs::create_dir_all(t.dir.path().join("sources/adir")).expect("dir");
    let r = t
        .post(
            "/api/dataSources:testConnection",
            json!({"type": "sqlite", "options": {"path": "adir"}}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(
        r.error().starts_with("Test connection failed: "),
        "{}",
        r.error()
    );
}

#[tokio::test]
async fn refresh_of_an_unknown_source_is_a_404() {
    let t = TestApp::new().await;
    let r = t.post_empty("/api/dataSources:refresh/nope").await;
    assert_eq!(
        (r.status, r.error()),
        (404, "data source nope does not exist")
    );
    let r = t.get("/api/dataSources/nope/collections:list").await;
    assert_eq!(
        (r.status, r.error()),
        (404, "data source nope does not exist")
    );
}

#[tokio::test]
async fn refreshing_main_rereads_its_schema() {
    let t = TestApp::new().await;
    let main_file = t.dir.path().join("main.sqlite");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", main_file.display()))
        .await
        .expect("main file");
    sqlx::query("CREATE TABLE late (id INTEGER PRIMARY KEY)")
        .execute(&pool)
        .await
        .expect("create");
    pool.close().await;
    assert_eq!(t.get("/api/late:list").await.status, 404);
    let r = t.post_empty("/api/dataSources:refresh/main").await;
    assert_eq!(r.data(), &json!({"status": "reloading"}));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while t.get("/api/late:list").await.status != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "main never picked up the table"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Registers `url` as source `key` and checks that `secret` is in no answer: create, get,
/// list, update, an update that sends the shown URL back (which keeps the stored one), and
/// that the source (when enabled) loads with the secret it was given.
async fn secret_never_shown(t: &TestApp, kind: &str, url: &str, secret: &str, enabled: bool) {
    let key = "withsecret";
    let hidden = |what: &str, body: &Json| {
        assert!(
            !body.to_string().contains(secret),
            "{what} shows {secret}: {body}"
        );
    };
    let r = t
        .post(
            "/api/dataSources:create",
            json!({"key": key, "type": kind, "options": {"url": url}, "enabled": enabled}),
        )
        .await;
    assert_eq!(r.status, 200, "{url}: {:?}", r.body);
    hidden("create", &r.body);
    let shown = r.data()["options"]["url"].as_str().unwrap_or("").to_owned();
    assert!(shown.contains("***"), "{url} shown as {shown}");
    if enabled {
        let record = t.settled(key).await;
        assert_eq!(record["status"], json!("loaded"), "{url}: {record}");
    }
    hidden(
        "get",
        &t.get(&format!("/api/dataSources:get/{key}")).await.body,
    );
    hidden("list", &t.get("/api/dataSources:list").await.body);
    let r = t
        .post(
            &format!("/api/dataSources:update/{key}"),
            json!({"displayName": "Renamed"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    hidden("update", &r.body);
    let r = t
        .post(
            &format!("/api/dataSources:update/{key}"),
            json!({"options": {"url": shown}}),
        )
        .await;
    assert_eq!(r.status, 200, "sending the shown URL back: {:?}", r.body);
    hidden("update", &r.body);
    if enabled {
        let record = t.settled(key).await;
        assert_eq!(
            record["status"],
            json!("loaded"),
            "the stored secret was kept: {record}"
        );
    }
    let r = t.get(&format!("/api/dataSources:get/{key}")).await;
    assert_eq!(r.data()["options"]["url"], json!(shown));
    t.post_empty(&format!("/api/dataSources:destroy/{key}"))
        .await;
}

#[tokio::test]
async fn secrets_in_postgres_urls_are_never_shown() {
    let db = manifold_tests::ScratchDatabase::create(Backend::Postgres).await;
    let t = TestApp::new().await;
    let url = db.url();
    let (user_part, host_part) = url.split_once('@').expect("user@host in the test URL");
    for (url, secret) in [
        (format!("{url}?password=SECRET-q1"), "SECRET-q1"),
        (
            format!("{url}?sslmode=disable&sslpassword=SECRET-s2"),
            "SECRET-s2",
        ),
        (format!("{url}?pass%77ord=SECRET-e3"), "SECRET-e3"),
        (format!("{user_part}:SECRET-u4@{host_part}"), "SECRET-u4"),
    ] {
        secret_never_shown(&t, "postgres", &url, secret, true).await;
    }
}

#[tokio::test]
async fn secrets_in_mariadb_urls_are_never_shown() {
    let db = manifold_tests::ScratchDatabase::create(Backend::MariaDb).await;
    let admin = std::env::var("MANIFOLD_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/mysql".into());
    let user = format!("mfpw_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let pool = sqlx::MySqlPool::connect(&admin)
        .await
        .expect("MariaDB admin connection");
    for host in ["localhost", "127.0.0.1", "%"] {
        for statement in [
            format!("CREATE USER '{user}'@'{host}' IDENTIFIED BY 'SECRET-my1'"),
            format!("GRANT ALL ON {}.* TO '{user}'@'{host}'", db.name()),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&pool)
                .await
                .expect("create the test user");
        }
    }
    let t = TestApp::new().await;
    let base = format!("mysql://{user}:SECRET-my1@127.0.0.1:3306/{}", db.name());
    secret_never_shown(&t, "mariadb", &base, "SECRET-my1", true).await;
    secret_never_shown(
        &t,
        "mysql",
        &format!("{base}?pwd=SECRET-my1"),
        "SECRET-my1",
        true,
    )
    .await;

    // A wrong password's error does not quote it either.
    let wrong = format!("mysql://{user}:WRONG-SECRET-9@127.0.0.1:3306/{}", db.name());
    let r = t
        .post(
            "/api/dataSources:testConnection",
            json!({"type": "mariadb", "options": {"url": wrong}}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(
        !r.body.to_string().contains("WRONG-SECRET-9"),
        "{:?}",
        r.body
    );

    for host in ["localhost", "127.0.0.1", "%"] {
        let drop = format!("DROP USER IF EXISTS '{user}'@'{host}'");
        let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await;
    }
    pool.close().await;
}

/// SQL Server and MongoDB strings are stored disabled (no server is needed to show them).
#[tokio::test]
async fn secrets_in_connection_strings_are_never_shown() {
    let t = TestApp::new().await;
    for (kind, url, secret) in [
        (
            "mssql",
            "server=tcp:127.0.0.1,1433;user=sa;Password=SECRET-ms1;encrypt=DANGER_PLAINTEXT",
            "SECRET-ms1",
        ),
        (
            "mssql",
            "Server=tcp:127.0.0.1,1433;User ID=sa;PWD='SECRET;ms2';encrypt=DANGER_PLAINTEXT",
            "SECRET",
        ),
        (
            "mongodb",
            "mongodb://app:SECRET-mg1@127.0.0.1:27017/app?authSource=admin",
            "SECRET-mg1",
        ),
    ] {
        secret_never_shown(&t, kind, url, secret, false).await;
    }
}
