//! What people declare on top of the introspected schema, stored in the main database:
//! relation fields (`dataSourcesCollections/<key>.<c>/fields:create`) on tables without
//! foreign keys, and collection options such as `simplePaginate`; both survive a restart.

use manifold_tests::{Backend, TestApp, every_backend, filter, own_collections};
use serde_json::{Value as Json, json};

/// `writers` and `notes` related by a plain column, with no foreign key to introspect.
async fn unrelated() -> TestApp {
    let t = TestApp::new().await;
    let (text, id) = match t.backend {
        Backend::MariaDb => ("VARCHAR(100)", "INTEGER AUTO_INCREMENT PRIMARY KEY"),
        Backend::Postgres => ("TEXT", "SERIAL PRIMARY KEY"),
        Backend::Sqlite => ("TEXT", "INTEGER PRIMARY KEY"),
    };
    t.sql(&[
        &format!("CREATE TABLE writers (id {id}, name {text})"),
        &format!("CREATE TABLE notes (id {id}, body {text}, writer INTEGER)"),
        "INSERT INTO writers (name) VALUES ('ann'), ('bo')",
        "INSERT INTO notes (body, writer) VALUES ('n1', 1), ('n2', 2), ('n3', 1), ('n4', NULL)",
    ])
    .await;
    // The tables were made behind the service's back: pick them up.
    let r = t.post_empty("/api/dataSources:refresh/main").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    t
}

fn ids(r: &manifold_tests::Reply) -> Vec<i64> {
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.column("id").iter().filter_map(Json::as_i64).collect()
}

async fn declare(t: &TestApp, collection: &str, field: Json) -> manifold_tests::Reply {
    t.post(
        &format!("/api/dataSourcesCollections/main.{collection}/fields:create"),
        field,
    )
    .await
}

async fn declared_relations_answer(t: &TestApp) {
    let r = t.get("/api/notes:list?sort=id&appends=author").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data()[0]["author"]["name"], json!("ann"));
    assert_eq!(r.data()[3]["author"], Json::Null);
    let f = filter(json!({"author.name": "bo"}));
    assert_eq!(ids(&t.get(&format!("/api/notes:list?{f}")).await), [2]);
    assert_eq!(
        ids(&t.get("/api/writers/1/notes:list?sort=id").await),
        [1, 3]
    );
    let r = t
        .get("/api/dataSourcesCollections/main.notes/fields:get/author")
        .await;
    assert_eq!(r.data()["type"], json!("belongsTo"), "{:?}", r.body);
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn declared_relations_work_like_derived_ones_and_survive_a_restart() {
        let t = unrelated().await;
        let r = declare(&t, "notes", json!({
            "name": "author", "type": "belongsTo", "target": "writers", "foreignKey": "writer",
            "possibleTypes": ["belongsTo"]
        })).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data()["targetKey"], json!("id"), "defaults to the target's key");
        assert!(r.data().get("possibleTypes").is_none());
        let r = declare(&t, "writers", json!({
            "name": "notes", "type": "hasMany", "target": "notes", "foreignKey": "writer", "sourceKey": "id"
        })).await;
        assert_eq!(r.status, 200, "{:?}", r.body);

        declared_relations_answer(&t).await;
        let t = t.restart().await;
        declared_relations_answer(&t).await;

        // A declared field can be changed and removed; the database's own cannot.
        let r = t.post("/api/dataSourcesCollections/main.notes/fields:update/author", json!({"targetKey": null, "title": "Author"})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data()["targetKey"], json!("id"), "null keeps the old value");
        let r = t.post_empty("/api/dataSourcesCollections/main.notes/fields:destroy/body").await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(r.error().contains("database schema"), "{}", r.error());
        let r = t.post_empty("/api/dataSourcesCollections/main.notes/fields:destroy/author").await;
        assert_eq!((r.status, r.data()), (200, &json!("ok")), "{:?}", r.body);
        let r = t.get("/api/notes:list?appends=author").await;
        assert!(r.data()[0].get("author").is_none(), "{:?}", r.body);
        let t = t.restart().await;
        let r = t.get("/api/notes:list?appends=author").await;
        assert!(r.data()[0].get("author").is_none(), "stays removed: {:?}", r.body);
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn bad_declarations_are_4xx_naming_the_problem() {
        let t = unrelated().await;
        let cases = [
            (json!({"name": "author", "type": "belongsTo", "target": "writers"}), 400, "values.foreignKey"),
            (json!({"name": "author", "type": "belongsTo", "target": "nope", "foreignKey": "writer"}), 400, "collection nope"),
            (json!({"name": "author", "type": "belongsTo", "target": "writers", "foreignKey": "nope"}), 400, "unknown field \"nope\""),
            (json!({"name": "body", "type": "belongsTo", "target": "writers", "foreignKey": "writer"}), 409, "already exists"),
            (json!({"name": "x", "type": "string"}), 400, "values.type"),
            (json!({"type": "hasMany", "target": "writers"}), 400, "values.name"),
            (json!(["not", "an", "object"]), 400, "values"),
        ];
        for (body, status, needle) in cases {
            let r = declare(&t, "notes", body.clone()).await;
            assert_eq!(r.status, status, "{body}: {:?}", r.body);
            assert!(r.error().contains(needle), "{body}: {}", r.error());
        }
        let r = declare(&t, "nope", json!({"name": "a", "type": "belongsTo", "target": "writers", "foreignKey": "writer"})).await;
        assert_eq!(r.status, 404, "{:?}", r.body);
        // Changing what is not there, or with a body that is not field options.
        let r = t.post("/api/dataSourcesCollections/main.notes/fields:update/ghost", json!({"title": "x"})).await;
        assert_eq!(r.status, 404, "{:?}", r.body);
        assert!(r.error().contains("has no field ghost"), "{}", r.error());
        let r = t.post("/api/dataSourcesCollections/main.notes/fields:update/body", json!(["x"])).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(r.error().contains("values"), "{}", r.error());
        let r = t.post_empty("/api/dataSourcesCollections/main.notes/fields:destroy/ghost").await;
        assert_eq!(r.status, 404, "{:?}", r.body);
        let r = t.post("/api/dataSources/nope/collections:update/notes", json!({"simplePaginate": true})).await;
        assert_eq!(r.status, 404, "{:?}", r.body);
        assert!(r.error().contains("nope"), "{}", r.error());
        // Nothing was stored by the failures.
        let t = t.restart().await;
        let r = t.get("/api/dataSourcesCollections/main.notes/fields:list").await;
        assert_eq!(r.column("name").len(), 3, "{:?}", r.body);
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn simple_pagination_is_a_stored_collection_option() {
        let t = unrelated().await;
        let r = t.get("/api/notes:list?pageSize=2").await;
        assert_eq!(r.body["meta"]["count"], json!(4));
        let r = t.post("/api/collections:update/notes", json!({"simplePaginate": true})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data()["simplePaginate"], json!(true));
        let check = |r: manifold_tests::Reply| {
            assert_eq!(r.status, 200, "{:?}", r.body);
            assert!(r.body["meta"].get("count").is_none(), "{:?}", r.body);
            assert_eq!(r.body["meta"]["hasNext"], json!(true), "{:?}", r.body);
        };
        check(t.get("/api/notes:list?pageSize=2").await);
        let t = t.restart().await;
        check(t.get("/api/notes:list?pageSize=2").await);
        // The same through the data-source API, and back off.
        let r = t.post("/api/dataSources/main/collections:update/notes", json!({"simplePaginate": false})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = t.get("/api/notes:list?pageSize=2").await;
        assert_eq!(r.body["meta"]["count"], json!(4), "{:?}", r.body);
        let r = t.post("/api/collections:update/notes", json!({"simplePaginate": "yes"})).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(r.error().contains("values.simplePaginate"), "{}", r.error());
        let r = t.post("/api/collections:update/nope", json!({"simplePaginate": true})).await;
        assert_eq!(r.status, 404, "{:?}", r.body);
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn collections_created_with_simple_paginate_skip_the_count() {
        // LST-03
        let t = TestApp::new().await;
        t.collection(json!({"name": "items", "simplePaginate": true, "fields": [{"name": "title", "type": "string"}]})).await;
        t.insert("items", json!([{"title": "a"}, {"title": "b"}, {"title": "c"}])).await;
        let r = t.get("/api/items:list?fields[]=id&pageSize=1&page=2").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["meta"], json!({"page": 2, "pageSize": 1, "hasNext": true}));
        // Dropping the collection forgets its options.
        let r = t.post_empty("/api/collections:destroy/items").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        t.collection(json!({"name": "items", "fields": [{"name": "title", "type": "string"}]})).await;
        let r = t.get("/api/items:list").await;
        assert_eq!(r.body["meta"]["count"], json!(0), "{:?}", r.body);
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn collections_create_makes_the_columns_and_junctions_relation_fields_need() {
        // NocoBase's blog, defined through the API as db.defineCollection would.
        let t = TestApp::new().await;
        t.collection(json!({"name": "people", "fields": [{"name": "name", "type": "string"}]})).await;
        t.collection(json!({"name": "tags", "fields": [{"name": "name", "type": "string"}]})).await;
        t.collection(json!({"name": "posts", "fields": [
            {"name": "title", "type": "string"},
            {"name": "author", "type": "belongsTo", "target": "people"},
            {"name": "tags", "type": "belongsToMany", "target": "tags"}
        ]})).await;
        t.collection(json!({"name": "comments", "fields": [
            {"name": "content", "type": "string"},
            {"name": "post", "type": "belongsTo", "target": "posts"}
        ]})).await;
        let r = declare(&t, "posts", json!({"name": "comments", "type": "hasMany", "target": "comments", "foreignKey": "postId"})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);

        let r = t.get("/api/collections:get/posts_tags").await;
        let mut keys: Vec<Json> = r.data()["filterTargetKey"].as_array().cloned().unwrap_or_default();
        keys.sort_by_key(|k| k.to_string());
        assert_eq!(keys, [json!("postId"), json!("tagId")], "junction: {:?}", r.body);
        let r = t.get("/api/collections:get/posts").await;
        let fields = r.data()["fields"].as_array().cloned().unwrap_or_default();
        let author = fields.iter().find(|f| f["name"] == json!("author")).expect("author");
        assert_eq!((author["type"].clone(), author["foreignKey"].clone()), (json!("belongsTo"), json!("authorId")));
        assert!(fields.iter().any(|f| f["name"] == json!("authorId")), "the foreign-key column exists");

        let r = t.post("/api/posts:create", json!({
            "title": "hello", "author": {"name": "ann"}, "tags": [{"name": "t1"}, {"name": "t2"}],
            "comments": [{"content": "c1"}]
        })).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let t = t.restart().await;
        let r = t.get("/api/posts:list?appends=author,tags,comments").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let post = &r.data()[0];
        assert_eq!(post["author"]["name"], json!("ann"));
        assert_eq!(post["tags"].as_array().map(Vec::len), Some(2));
        assert_eq!(post["comments"][0]["content"], json!("c1"));
        let r = t.get("/api/tags:list?appends=posts").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn a_relation_field_that_cannot_be_made_creates_nothing() {
        let t = TestApp::new().await;
        t.collection(json!({"name": "posts", "fields": [{"name": "title", "type": "string"}]})).await;
        for (body, needle) in [
            (json!({"name": "categories", "fields": [{"name": "posts", "type": "hasMany", "target": "posts"}]}), "categoryId"),
            (json!({"name": "categories", "fields": [{"name": "parent", "type": "belongsTo", "target": "nope"}]}), "collection nope"),
            (json!({"name": "categories", "fields": [{"name": "posts", "type": "belongsToMany", "target": "posts", "foreignKey": "x", "otherKey": "x"}]}), "name them apart"),
            (json!({"name": "categories", "fields": [{"name": "posts", "type": "belongsToMany", "target": "posts", "foreignKey": "a\"; DROP TABLE posts; --"}]}), "foreignKey"),
        ] {
            let r = t.post("/api/collections:create", body.clone()).await;
            assert_eq!(r.status, 400, "{body}: {:?}", r.body);
            assert!(r.error().contains(needle), "{body}: {}", r.error());
        }
        let r = t.get("/api/collections:list").await;
        assert_eq!(own_collections(r.column("name")), [json!("posts")], "{:?}", r.body);
        // Self-references work: the new collection's own key type is used.
        t.collection(json!({"name": "categories", "fields": [
            {"name": "title", "type": "string"},
            {"name": "parent", "type": "belongsTo", "target": "categories"}
        ]})).await;
        let r = t.post("/api/categories:create", json!({"title": "child", "parent": {"title": "root"}})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = t.get("/api/categories:list?sort=id&appends=parent").await;
        assert_eq!(r.data()[1]["parent"]["title"], json!("root"), "{:?}", r.body);
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn nocobase_collection_fields_paths_edit_the_same_declarations() {
        let t = unrelated().await;
        // NocoBase's clients edit main's fields as collections/<name>/fields.
        let r = t.post("/api/collections/notes/fields:create", json!({
            "name": "author", "type": "belongsTo", "target": "writers", "foreignKey": "writer"
        })).await;
        assert_eq!((r.status, &r.data()["targetKey"]), (200, &json!("id")), "{:?}", r.body);
        let r = t.get("/api/dataSourcesCollections/main.notes/fields:get/author").await;
        assert_eq!(r.data()["type"], json!("belongsTo"), "the same declaration: {:?}", r.body);
        let both = (
            t.get("/api/collections/notes/fields:list").await,
            t.get("/api/dataSourcesCollections/main.notes/fields:list").await,
        );
        assert_eq!(both.0.status, 200, "{:?}", both.0.body);
        assert_eq!(both.0.body, both.1.body);
        let r = t.post("/api/collections/notes/fields:update/author", json!({"targetKey": "id"})).await;
        assert_eq!((r.status, &r.data()["name"]), (200, &json!("author")), "{:?}", r.body);
        let r = t.get("/api/collections/notes/fields:get/author").await;
        assert_eq!(r.data()["target"], json!("writers"), "{:?}", r.body);
        let r = t.get("/api/notes:list?sort=id&appends=author").await;
        assert_eq!(r.data()[0]["author"]["name"], json!("ann"), "{:?}", r.body);
        let r = t.post_empty("/api/collections/notes/fields:destroy/author").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = t.get("/api/collections/nowhere/fields:list").await;
        assert_eq!(r.status, 404, "{:?}", r.body);
    }
}
