//! Collections: created, listed and dropped through the API and in Rust, with every field
//! type, and introspected again at start so a restart serves the same resources.

use manifold_core::connector::{CollectionDefinition, FieldDefinition};
use manifold_core::schema::FieldType;
use manifold_server::ServeConfig;
use manifold_tests::{TestApp, own_collections};
use serde_json::{Value as Json, json};

fn every_type() -> Json {
    json!({
        "name": "kinds",
        "fields": [
            {"name": "s", "type": "string"},
            {"name": "t", "type": "text"},
            {"name": "i", "type": "integer"},
            {"name": "b", "type": "bigInt"},
            {"name": "f", "type": "float"},
            {"name": "d", "type": "double"},
            {"name": "dec", "type": "decimal", "precision": 20, "scale": 2},
            {"name": "ok", "type": "boolean"},
            {"name": "day", "type": "date"},
            {"name": "at", "type": "datetime"},
            {"name": "doc", "type": "json"},
            {"name": "u", "type": "uuid"}
        ]
    })
}

fn types_of(collection: &Json) -> Vec<(String, String)> {
    collection["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap_or("").to_owned(),
                f["type"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn every_field_type_is_created_listed_and_survives_a_restart() {
    let t = TestApp::new().await;
    let created = t.post("/api/collections:create", every_type()).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let expected: Vec<(String, String)> = [
        ("id", "integer"),
        ("s", "string"),
        ("t", "text"),
        ("i", "integer"),
        ("b", "bigInt"),
        ("f", "float"),
        ("d", "double"),
        ("dec", "decimal"),
        ("ok", "boolean"),
        ("day", "date"),
        ("at", "datetime"),
        ("doc", "json"),
        ("u", "uuid"),
        ("createdAt", "datetime"),
        ("updatedAt", "datetime"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(types_of(created.data()), expected);
    assert_eq!(created.data()["filterTargetKey"], json!("id"));

    let row = json!({
        "s": "short", "t": "long text", "i": 42, "b": "9007199254740993", "f": 1.5, "d": 2.25,
        "dec": "1234567890123.45", "ok": true, "day": "2024-02-29",
        "at": "2024-02-29T12:30:00+02:00", "doc": {"k": [1, "two"]},
        "u": "6F9619FF-8B86-D011-B42D-00CF4FC964FF"
    });
    let stored = t.insert("kinds", row).await;
    let expected_row = json!({
        "id": 1, "s": "short", "t": "long text", "i": 42, "b": "9007199254740993", "f": 1.5,
        "d": 2.25, "dec": "1234567890123.45", "ok": true, "day": "2024-02-29",
        "at": "2024-02-29T10:30:00.000Z", "doc": {"k": [1, "two"]},
        "u": "6f9619ff-8b86-d011-b42d-00cf4fc964ff"
    });
    for (k, v) in expected_row.as_object().expect("object") {
        assert_eq!(&stored[k], v, "created {k}");
    }

    let listed = t.get("/api/collections:list").await;
    assert_eq!(listed.status, 200);
    assert_eq!(own_collections(listed.column("name")), [json!("kinds")]);

    // Restart on the same file: the table is introspected and served with the same types.
    let dir = t.dir;
    let config = ServeConfig {
        main_db: format!("sqlite://{}/main.sqlite", dir.path().display()),
        ..ServeConfig::default()
    };
    let t = TestApp::open(dir, &config).await;
    let got = t.get("/api/collections:get/kinds").await;
    assert_eq!(types_of(got.data()), expected);
    let read = t.get("/api/kinds:get/1").await;
    for (k, v) in expected_row.as_object().expect("object") {
        assert_eq!(&read.data()[k], v, "after restart {k}");
    }
}

#[tokio::test]
async fn destroy_drops_the_table_and_its_resource() {
    let t = TestApp::new().await;
    t.collection(json!({"name": "scratch", "fields": [{"name": "n", "type": "integer"}]}))
        .await;
    t.insert("scratch", json!({"n": 1})).await;
    let r = t.post_empty("/api/collections:destroy/scratch").await;
    assert_eq!((r.status, r.data()), (200, &json!(1)));
    let r = t.get("/api/scratch:list").await;
    assert_eq!(
        (r.status, r.error()),
        (404, "resource scratch does not exist")
    );
    assert_eq!(
        own_collections(t.get("/api/collections:list").await.column("name")),
        Vec::<Json>::new()
    );
    let r = t.post_empty("/api/collections:destroy/scratch").await;
    assert_eq!(r.status, 404, "{:?}", r.body);
}

#[tokio::test]
async fn define_collection_in_rust_serves_the_resource_at_once() {
    let t = TestApp::new().await;
    let main = t.app.data_sources().get("main").expect("main");
    let mut name = FieldDefinition::new("name", FieldType::String);
    name.allow_null = false;
    let collection = main
        .define_collection(&CollectionDefinition {
            name: "tags".into(),
            auto_gen_id: true,
            timestamps: false,
            fields: vec![name],
        })
        .await
        .expect("define_collection");
    assert_eq!(collection.name(), "tags");
    t.insert("tags", json!({"name": "rust"})).await;
    let r = t.get("/api/tags:list").await;
    assert_eq!(r.data(), &json!([{"id": 1, "name": "rust"}]));
}

#[tokio::test]
async fn tables_already_in_the_main_database_are_served_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    let url = format!("sqlite://{}/main.sqlite", dir.path().display());
    {
        let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
            .await
            .expect("sqlite");
        for statement in [
            "CREATE TABLE legacy (code TEXT PRIMARY KEY, qty INTEGER NOT NULL, price NUMERIC)",
            "INSERT INTO legacy VALUES ('b', 2, 1.5), ('a', 1, 10)",
            "CREATE VIEW cheap AS SELECT code FROM legacy WHERE price < 5",
        ] {
            sqlx::query(statement).execute(&pool).await.expect("setup");
        }
        pool.close().await;
    }
    let config = ServeConfig {
        main_db: url,
        ..ServeConfig::default()
    };
    let t = TestApp::open(dir, &config).await;
    let r = t.get("/api/legacy:list").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.data(),
        &json!([{"code": "a", "qty": 1, "price": "10"}, {"code": "b", "qty": 2, "price": "1.5"}])
    );
    let r = t.get("/api/legacy:get/b").await;
    assert_eq!(r.data()["qty"], json!(2));
    let r = t.get("/api/cheap:list").await;
    assert_eq!(r.data(), &json!([{"code": "b"}]));
    let r = t.post("/api/cheap:create", json!({"code": "z"})).await;
    assert_eq!(
        (r.status, r.error()),
        (400, "collection cheap is a view and cannot be written")
    );
}

#[tokio::test]
async fn json_fields_keep_big_numbers_exactly_on_sqlite() {
    let t = TestApp::new().await;
    t.collection(json!({"name": "docs", "fields": [{"name": "doc", "type": "json"}]}))
        .await;
    for doc in [
        json!(12345678901234567890_u64),
        json!({"n": 9007199254740993_i64}),
        json!("text"),
    ] {
        let created = t.insert("docs", json!({"doc": doc})).await;
        assert_eq!(created["doc"], doc);
    }
}
