//! The data-source registration API (`dataSources:*`), its status machine and its rules,
//! with SQLite sources registered over HTTP.

use manifold_federation::ServeConfig;
use manifold_tests::{TestApp, filter};
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
