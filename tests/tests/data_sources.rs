//! The data-source manager: hooks with replay, routing by `X-Data-Source`, per-source
//! resources, factories and removal.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use manifold_core::connector::CollectionDefinition;
use manifold_core::data_source::DataSourceSettings;
use manifold_core::{DataSource, ErrorKind};
use manifold_tests::{TestApp, filter};
use poem::http::Method;
use serde_json::json;

async fn add_sqlite_source(t: &TestApp, key: &str) -> Arc<DataSource> {
    let manager = t.app.data_sources();
    let source = manager
        .build(
            key,
            "sqlite",
            &json!({"path": t.dir.path().join(format!("{key}.sqlite"))}),
            DataSourceSettings::default(),
        )
        .await
        .expect("build");
    manager.add(source.clone()).await.expect("add");
    source
}

fn on(key: &str) -> [(&str, &str); 2] {
    [("x-data-source", key), ("content-type", "application/json")]
}

#[tokio::test]
async fn dsm_05_06_hooks_replay_for_sources_already_added() {
    let t = TestApp::new().await;
    let manager = t.app.data_sources();
    let before = Arc::new(AtomicUsize::new(0));
    let after = Arc::new(AtomicUsize::new(0));
    let b = before.clone();
    manager.before_add_data_source(Arc::new(move |_: &Arc<DataSource>| {
        b.fetch_add(1, Ordering::SeqCst);
    }));
    let a = after.clone();
    manager.after_add_data_source(Arc::new(move |_: &Arc<DataSource>| {
        a.fetch_add(1, Ordering::SeqCst);
    }));
    assert_eq!(before.load(Ordering::SeqCst), 1, "replayed for main");
    assert_eq!(after.load(Ordering::SeqCst), 1, "replayed for main");
    add_sqlite_source(&t, "ds1").await;
    assert_eq!(before.load(Ordering::SeqCst), 2);
    assert_eq!(after.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn x_data_source_routes_to_the_sources_own_resources() {
    let t = TestApp::new().await;
    let ds1 = add_sqlite_source(&t, "ds1").await;
    ds1.define_collection(
        &CollectionDefinition::from_json(&json!({
            "name": "test1", "fields": [{"name": "name", "type": "string"}]
        }))
        .expect("definition"),
    )
    .await
    .expect("define");

    // DSM-01: the default actions reached ds1 through the after-add hook.
    let r = t
        .send(
            Method::POST,
            "/api/test1:create",
            &on("ds1"),
            Some(br#"{"name": "n1"}"#.to_vec()),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = t
        .send(Method::GET, "/api/test1:list", &on("ds1"), None)
        .await;
    assert_eq!(r.column("name"), [json!("n1")]);
    // LST-07: other data sources page by 50.
    assert_eq!(r.body["meta"]["pageSize"], json!(50));

    // Main does not see ds1's collections, and ds1 does not see main's resources.
    let r = t.get("/api/test1:list").await;
    assert_eq!(
        (r.status, r.error()),
        (404, "resource test1 does not exist")
    );
    let r = t
        .send(Method::GET, "/api/dataSources:list", &on("ds1"), None)
        .await;
    assert_eq!(r.status, 404, "DSM-16");
    assert_eq!(
        r.error(),
        "resource dataSources does not exist in data source ds1"
    );
    // Each source answers `collections` with its own (issue 14: a MongoDB source's first
    // collection is made this way).
    let r = t
        .send(Method::GET, "/api/collections:list", &on("ds1"), None)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.column("name").contains(&json!("test1")), "{:?}", r.body);
    assert!(!r.column("name").contains(&json!("users")), "{:?}", r.body);

    // DSM-03/04: the filter guard runs on every source.
    for action in ["update", "destroy"] {
        let path = format!("/api/test1:{action}?{}", filter(json!({})));
        let r = t.send(Method::POST, &path, &on("ds1"), None).await;
        assert_eq!(r.status, 400, "{action}: {:?}", r.body);
    }
}

#[tokio::test]
async fn dsm_11_unknown_types_are_refused_with_the_known_ones() {
    let t = TestApp::new().await;
    let manager = t.app.data_sources();
    let err = manager
        .build("x", "mock", &json!({}), DataSourceSettings::default())
        .await
        .expect_err("no such type");
    assert_eq!(err.kind(), ErrorKind::BadRequest);
    assert_eq!(
        err.message(),
        "Data source type \"mock\" not found (known: mariadb, mongodb, mssql, mysql, postgres, sqlite)"
    );
    let err = manager
        .build("x", "sqlite", &json!({}), DataSourceSettings::default())
        .await
        .expect_err("no path");
    assert!(err.message().contains("options.url"), "{}", err.message());
}

#[tokio::test]
async fn removing_a_source_closes_it_and_unroutes_it() {
    let t = TestApp::new().await;
    let ds1 = add_sqlite_source(&t, "ds1").await;
    ds1.define_collection(
        &CollectionDefinition::from_json(&json!({"name": "items"})).expect("definition"),
    )
    .await
    .expect("define");
    let (_, repository) = ds1.collection("items").expect("items");
    let removed = t.app.data_sources().remove("ds1").await.expect("removed");
    assert_eq!(removed.key(), "ds1");
    let r = t
        .send(Method::GET, "/api/items:list", &on("ds1"), None)
        .await;
    assert_eq!(
        (r.status, r.error()),
        (404, "data source ds1 does not exist")
    );
    // The pool is closed: a repository still held elsewhere fails cleanly, not hangs.
    let err = repository.count(None).await.expect_err("closed pool");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(
        t.get("/api/collections:list").await.status,
        200,
        "main serves on"
    );
}

#[tokio::test]
async fn re_adding_a_key_swaps_the_source_and_closes_the_old_one() {
    let t = TestApp::new().await;
    let old = add_sqlite_source(&t, "ds1").await;
    let (_, old_repo) = {
        old.define_collection(
            &CollectionDefinition::from_json(&json!({"name": "items"})).expect("definition"),
        )
        .await
        .expect("define");
        old.collection("items").expect("items")
    };
    let new = add_sqlite_source(&t, "ds1").await;
    assert!(Arc::ptr_eq(
        &t.app.data_sources().get("ds1").expect("ds1"),
        &new
    ));
    assert_eq!(
        old_repo
            .count(None)
            .await
            .expect_err("old pool closed")
            .kind(),
        ErrorKind::Unavailable
    );
    let r = t
        .send(Method::GET, "/api/items:list", &on("ds1"), None)
        .await;
    assert_eq!(
        r.status, 200,
        "the new source reads the same file: {:?}",
        r.body
    );
}
