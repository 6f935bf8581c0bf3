//! Relations across data sources: posts in the main SQLite database, their authors in
//! PostgreSQL (`crm`), their tags in MariaDB (`shop`) and their comments and editors in
//! MongoDB (`docs`), all four at once. Relations are declared with `targetDataSource`
//! through the same field API as other declared relations; `appends` follows them with
//! one batched read per relation per level on the target source.

use manifold_tests::{Backend, Reply, ScratchDatabase, TestApp};
use poem::http::Method;
use serde_json::{Value as Json, json};

#[path = "../../connectors/mongo/tests/support/secantus.rs"]
mod secantus;
use secantus::Secantus;

/// The four databases, loaded and related.
struct World {
    t: TestApp,
    _crm: ScratchDatabase,
    _shop: ScratchDatabase,
    docs: Option<Secantus>,
    /// The ObjectIds of the MongoDB editors, in insertion order.
    editors: Vec<String>,
}

async fn declare(t: &TestApp, source: &str, collection: &str, field: Json) -> Reply {
    t.post(
        &format!("/api/dataSourcesCollections/{source}.{collection}/fields:create"),
        field,
    )
    .await
}

async fn world() -> World {
    world_with(|_| {}).await
}

async fn world_with(tweak: impl FnOnce(&mut manifold_server::ServeConfig)) -> World {
    use mongodb::bson::{Document, doc, oid::ObjectId};

    let t = TestApp::with(tweak).await;
    assert_eq!(t.backend, Backend::Sqlite);
    t.sql(&[
        "CREATE TABLE blogs (id INTEGER PRIMARY KEY, name TEXT, rating REAL)",
        "CREATE TABLE posts (id INTEGER PRIMARY KEY, title TEXT, \
         authorId INTEGER, editorRef TEXT, blogId INTEGER REFERENCES blogs (id))",
        "INSERT INTO blogs (id, name) VALUES (1, 'news'), (2, 'notes')",
        // A junction here, to authors in crm.
        "CREATE TABLE post_fans (postId INTEGER, authorId INTEGER, PRIMARY KEY (postId, authorId))",
        "INSERT INTO post_fans VALUES (1, 2), (1, 3), (2, 1)",
    ])
    .await;

    let crm = ScratchDatabase::create(Backend::Postgres).await;
    crm.execute(&[
        "CREATE TABLE countries (id SERIAL PRIMARY KEY, name TEXT)",
        "CREATE TABLE authors (id SERIAL PRIMARY KEY, name TEXT, \
         \"countryId\" INTEGER REFERENCES countries (id))",
        "INSERT INTO countries (name) VALUES ('FR'), ('DE')",
        "INSERT INTO authors (name, \"countryId\") VALUES ('ann', 1), ('bo', 2), ('cy', 1)",
    ])
    .await;
    let shop = ScratchDatabase::create(Backend::MariaDb).await;
    shop.execute(&[
        // The shop keeps posts' integer keys as text: the keys still match.
        "CREATE TABLE tags (id INTEGER AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20), \
         postId VARCHAR(20))",
        "INSERT INTO tags (name, postId) VALUES ('rust', '1'), ('db', '1'), ('web', '2'), ('misc', NULL)",
        // Labels and their junction both in the shop: one joined read finds them.
        "CREATE TABLE labels (id INTEGER AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20))",
        "CREATE TABLE post_labels (postId BIGINT, labelId INTEGER, PRIMARY KEY (postId, labelId))",
        "INSERT INTO labels (name) VALUES ('hot'), ('new')",
        "INSERT INTO post_labels VALUES (1, 1), (1, 2), (3, 2)",
    ])
    .await;

    let docs = Secantus::start();
    let client = mongodb::Client::with_uri_str(docs.url())
        .await
        .expect("driver client");
    let db = client.database("manifold_cross");
    let editors: Vec<ObjectId> = (0..2).map(|_| ObjectId::new()).collect();
    db.collection::<Document>("editors")
        .insert_many(
            ["eve", "fay"]
                .iter()
                .zip(&editors)
                .map(|(name, id)| doc! {"_id": id, "name": *name}),
        )
        .await
        .expect("insert editors");
    db.collection::<Document>("comments")
        .insert_many([
            doc! {"body": "first!", "postId": 1_i64},
            doc! {"body": "agreed", "postId": 1_i64},
            doc! {"body": "hm", "postId": 3_i64},
        ])
        .await
        .expect("insert comments");
    let editors: Vec<String> = editors.iter().map(|id| id.to_hex()).collect();

    // Posts 1–3 by ann, bo and ann; post 4 has no author. Editors by ObjectId text.
    t.sql(&[&format!(
        "INSERT INTO posts (id, title, authorId, editorRef, blogId) VALUES \
         (1, 'one', 1, '{e0}', 1), (2, 'two', 2, '{e1}', 1), (3, 'three', 1, NULL, 2), \
         (4, 'four', NULL, '{e0}', 2)",
        e0 = editors[0],
        e1 = editors[1]
    )])
    .await;
    let r = t.post_empty("/api/dataSources:refresh/main").await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    t.register_source("crm", "postgres", json!({"url": crm.url()}))
        .await;
    t.register_source("shop", "mariadb", json!({"url": shop.url()}))
        .await;
    t.register_source(
        "docs",
        "mongodb",
        json!({"url": docs.url(), "database": "manifold_cross", "serverSelectionTimeoutMs": 500}),
    )
    .await;

    for (source, collection, field) in [
        (
            "main",
            "posts",
            json!({"name": "author", "type": "belongsTo", "target": "authors",
                   "targetDataSource": "crm", "foreignKey": "authorId"}),
        ),
        (
            "main",
            "posts",
            json!({"name": "tags", "type": "hasMany", "target": "tags",
                   "targetDataSource": "shop", "foreignKey": "postId"}),
        ),
        (
            "main",
            "posts",
            json!({"name": "comments", "type": "hasMany", "target": "comments",
                   "targetDataSource": "docs", "foreignKey": "postId"}),
        ),
        (
            "main",
            "posts",
            json!({"name": "editor", "type": "belongsTo", "target": "editors",
                   "targetDataSource": "docs", "foreignKey": "editorRef"}),
        ),
        (
            "main",
            "posts",
            json!({"name": "labels", "type": "belongsToMany", "target": "labels",
                   "targetDataSource": "shop", "through": "post_labels",
                   "throughDataSource": "shop", "foreignKey": "postId", "otherKey": "labelId"}),
        ),
        (
            "main",
            "posts",
            json!({"name": "fans", "type": "belongsToMany", "target": "authors",
                   "targetDataSource": "crm", "through": "post_fans",
                   "foreignKey": "postId", "otherKey": "authorId"}),
        ),
        (
            "crm",
            "authors",
            json!({"name": "posts", "type": "hasMany", "target": "posts",
                   "targetDataSource": "main", "foreignKey": "authorId"}),
        ),
        (
            "crm",
            "authors",
            json!({"name": "latest", "type": "hasOne", "target": "posts",
                   "targetDataSource": "main", "foreignKey": "authorId"}),
        ),
    ] {
        let r = declare(&t, source, collection, field).await;
        assert_eq!(r.status, 200, "{source}.{collection}: {:?}", r.body);
    }
    World {
        t,
        _crm: crm,
        _shop: shop,
        docs: Some(docs),
        editors,
    }
}

fn statements(t: &TestApp, key: &str) -> u64 {
    t.app
        .data_sources()
        .get(key)
        .unwrap_or_else(|| panic!("{key} is registered"))
        .statements()
}

/// Statements each source ran while `f` ran, as `[main, crm, shop, docs]`.
async fn counted<F: std::future::Future<Output = Reply>>(t: &TestApp, f: F) -> (Reply, [u64; 4]) {
    let keys = ["main", "crm", "shop", "docs"];
    let before = keys.map(|k| statements(t, k));
    let r = f.await;
    let after = keys.map(|k| statements(t, k));
    let mut used = [0; 4];
    for i in 0..4 {
        used[i] = after[i] - before[i];
    }
    (r, used)
}

#[tokio::test]
async fn appends_follow_relations_into_three_other_databases() {
    let w = world().await;
    let t = &w.t;

    let (r, used) = counted(
        t,
        t.get("/api/posts:list?sort=id&appends=author,tags,comments,editor"),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // Count and page on main; one batched read per relation on its own source.
    assert_eq!(used, [2, 1, 1, 2], "{:?}", r.body);
    let rows = r.data().as_array().expect("rows");
    assert_eq!(rows[0]["author"]["name"], json!("ann"));
    assert_eq!(rows[1]["author"]["name"], json!("bo"));
    assert_eq!(rows[3]["author"], Json::Null, "no authorId, no author");
    let names = |v: &Json, key: &str| -> Vec<Json> {
        v.as_array()
            .map(|a| a.iter().map(|x| x[key].clone()).collect())
            .unwrap_or_default()
    };
    assert_eq!(
        names(&rows[0]["tags"], "name"),
        [json!("rust"), json!("db")]
    );
    assert_eq!(names(&rows[1]["tags"], "name"), [json!("web")]);
    assert_eq!(rows[2]["tags"], json!([]));
    assert_eq!(
        names(&rows[0]["comments"], "body"),
        [json!("first!"), json!("agreed")]
    );
    assert_eq!(names(&rows[2]["comments"], "body"), [json!("hm")]);
    // An ObjectId held as hex text in SQLite finds its MongoDB document.
    assert_eq!(rows[0]["editor"]["_id"], json!(w.editors[0]));
    assert_eq!(rows[1]["editor"]["name"], json!("fay"));
    assert_eq!(rows[2]["editor"], Json::Null);
    assert_eq!(rows[3]["editor"]["name"], json!("eve"));
}

#[tokio::test]
async fn belongs_to_many_crosses_with_its_junction_on_either_side() {
    let w = world().await;
    let t = &w.t;
    let (r, used) = counted(t, t.get("/api/posts:list?sort=id&appends=labels,fans")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // labels: junction and labels joined in one read on shop; fans: the junction here,
    // then the authors on crm.
    assert_eq!(used, [3, 1, 1, 0]);
    let names = |v: &Json| -> Vec<Json> {
        v.as_array()
            .map(|a| a.iter().map(|x| x["name"].clone()).collect())
            .unwrap_or_default()
    };
    let rows = r.data();
    assert_eq!(names(&rows[0]["labels"]), [json!("hot"), json!("new")]);
    assert_eq!(names(&rows[2]["labels"]), [json!("new")]);
    assert_eq!(rows[1]["labels"], json!([]));
    assert_eq!(names(&rows[0]["fans"]), [json!("bo"), json!("cy")]);
    assert_eq!(names(&rows[1]["fans"]), [json!("ann")]);
    assert_eq!(rows[3]["fans"], json!([]));

    let r = t.get("/api/posts/1/fans:list?sort=-name").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.column("name"), [json!("cy"), json!("bo")]);
    let r = t.get("/api/posts/3/labels:list").await;
    assert_eq!(r.column("name"), [json!("new")], "{:?}", r.body);
}

#[tokio::test]
async fn nested_appends_cross_sources_in_both_directions() {
    let w = world().await;
    let t = &w.t;

    // A local relation below a cross-source one: the author's country, on crm.
    let (r, used) = counted(t, t.get("/api/posts:list?sort=id&appends=author.country")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(used, [2, 2, 0, 0]);
    assert_eq!(r.data()[0]["author"]["country"]["name"], json!("FR"));
    assert_eq!(r.data()[1]["author"]["country"]["name"], json!("DE"));

    // A cross-source relation below a local one: each blog's posts and their authors.
    let (r, used) = counted(t, t.get("/api/blogs:list?sort=id&appends=posts.author")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(used, [3, 1, 0, 0]);
    let posts = &r.data()[1]["posts"];
    assert_eq!(posts[0]["title"], json!("three"));
    assert_eq!(posts[0]["author"]["name"], json!("ann"));
    assert_eq!(posts[1]["author"], Json::Null);

    // From the other side, through two sources: authors → posts (main) → comments (docs).
    let (r, used) = counted(
        t,
        t.send(
            Method::GET,
            "/api/authors:list?sort=id&appends=posts.comments,latest",
            &[("x-data-source", "crm")],
            None,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(used, [2, 2, 0, 1]);
    let ann = &r.data()[0];
    assert_eq!(
        ann["posts"]
            .as_array()
            .map(|p| p.iter().map(|x| x["title"].clone()).collect::<Vec<_>>()),
        Some(vec![json!("one"), json!("three")])
    );
    assert_eq!(ann["posts"][0]["comments"][1]["body"], json!("agreed"));
    assert_eq!(
        ann["latest"]["title"],
        json!("one"),
        "hasOne: the first by key"
    );
    assert_eq!(r.data()[2]["posts"], json!([]));
    assert_eq!(r.data()[2]["latest"], Json::Null);
}

#[tokio::test]
async fn fields_except_and_sort_reach_inside_a_cross_source_append() {
    let w = world().await;
    let t = &w.t;
    let r = t
        .get("/api/posts:list?sort=id&appends=tags(sort=-name)&fields=title,tags.name")
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.data()[0],
        json!({"title": "one", "tags": [{"name": "rust"}, {"name": "db"}]})
    );
    let r = t
        .get("/api/posts:list?sort=id&appends=author&except=author.countryId,authorId")
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data()[0]["author"], json!({"id": 1, "name": "ann"}));
    assert!(r.data()[0].get("authorId").is_none());
}

fn titles(r: &Reply) -> Vec<Json> {
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.column("title")
}

#[tokio::test]
async fn filters_through_a_to_one_relation_read_the_keys_there_first() {
    let w = world_with(|c| c.max_relation_filter_keys = 2).await;
    let t = &w.t;
    let list = |f: Json| {
        let f = manifold_tests::filter(f);
        async move { t.get(&format!("/api/posts:list?sort=id&{f}")).await }
    };

    // One read of the matching authors on crm, then the page and count on main.
    let (r, used) = counted(t, list(json!({"author.name": "ann"}))).await;
    assert_eq!(titles(&r), [json!("one"), json!("three")]);
    assert_eq!(used, [2, 1, 0, 0]);
    // The nested form, an operator, and a relation inside the other source.
    let r = list(json!({"author": {"name": {"$in": ["bo", "cy"]}}})).await;
    assert_eq!(titles(&r), [json!("two")]);
    let r = list(json!({"author.country.name": "DE"})).await;
    assert_eq!(titles(&r), [json!("two")]);
    // ObjectId keys held as text, in MongoDB.
    let r = list(json!({"editor.name": "eve"})).await;
    assert_eq!(titles(&r), [json!("one"), json!("four")]);
    // Inside $and/$or, beside local conditions on the same key.
    let r = list(json!({"$or": [{"author.name": "bo"}, {"title": "four"}]})).await;
    assert_eq!(titles(&r), [json!("two"), json!("four")]);
    let r = list(
        json!({"author.name": "ann", "authorId": {"$ne": 3}, "$and": [{"title": {"$ne": "one"}}]}),
    )
    .await;
    assert_eq!(titles(&r), [json!("three")]);
    let r = list(json!({"$and": [{"author.name": "ann"}, {"editor.name": "eve"}]})).await;
    assert_eq!(titles(&r), [json!("one")]);
    // Nothing matches there: nothing here.
    let r = list(json!({"author.name": "nobody"})).await;
    assert_eq!(titles(&r), Vec::<Json>::new());
    // More keys than the cap (2 here): a 400 that says so, before the local read.
    let r = list(json!({"author.name": {"$ne": "nobody"}})).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(
        r.error(),
        "filter.author: more than 2 records of authors in data source crm match; \
         narrow the condition (the limit, MANIFOLD_MAX_RELATION_FILTER_KEYS)"
    );
    // A bad condition there is named as the request wrote it.
    let r = list(json!({"author.nope": 1})).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(
        r.error(),
        "filter.author.nope: unknown field \"nope\" in collection authors"
    );

    // A relation given a value rather than a filter object, and too many conditions
    // that each read another database.
    let r = list(json!({"author": 5})).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(
        r.error(),
        "filter.author: author is a relation to data source crm; give it a filter object \
         such as {\"author\": {\"id\": …}}, not 5"
    );
    let many: Vec<Json> = (0..17).map(|i| json!({"author.id": i})).collect();
    let r = list(json!({"$or": many})).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(
        r.error(),
        "filter: 17 conditions go through relations to other data sources; at most 16 may, \
         each being a read there"
    );

    // To-many relations and sorting cannot cross: clear 400s.
    let r = list(json!({"tags.name": "rust"})).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(
        r.error(),
        "filter.tags.name: tags is a relation to data source shop; filtering or sorting through it is not supported yet"
    );
    let r = t.get("/api/posts:list?sort=author.name").await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(
        r.error(),
        "sort: \"author.name\" crosses author, a relation to data source crm; a page cannot be sorted by another data source's fields"
    );
}

#[tokio::test]
async fn declarations_are_checked_against_the_other_source() {
    let w = world().await;
    let t = &w.t;
    let cases = [
        (
            json!({"name": "x", "type": "belongsTo", "target": "authors",
                   "targetDataSource": "nowhere", "foreignKey": "authorId"}),
            400,
            "values.targetDataSource: data source nowhere does not exist",
        ),
        (
            json!({"name": "x", "type": "belongsTo", "target": "people",
                   "targetDataSource": "crm", "foreignKey": "authorId"}),
            400,
            "values.target: collection people does not exist in data source crm",
        ),
        (
            json!({"name": "x", "type": "belongsTo", "target": "authors",
                   "targetDataSource": "crm", "foreignKey": "authorId", "targetKey": "nope"}),
            400,
            "values.targetKey: unknown field \"nope\" in collection authors",
        ),
        (
            json!({"name": "x", "type": "belongsToMany", "target": "authors",
                   "targetDataSource": "crm", "through": "post_fans", "throughDataSource": "shop",
                   "foreignKey": "postId", "otherKey": "authorId"}),
            400,
            "values.throughDataSource: the junction lives in this collection's data source or in the target's (crm), not in shop",
        ),
        (
            json!({"name": "x", "type": "belongsToMany", "target": "authors",
                   "targetDataSource": "crm", "through": "post_fans",
                   "foreignKey": "postId", "otherKey": "nope"}),
            400,
            "values.otherKey: unknown field \"nope\" in collection post_fans",
        ),
        (
            json!({"name": "x", "type": "belongsToMany", "target": "authors",
                   "targetDataSource": "crm", "through": "nope",
                   "foreignKey": "postId", "otherKey": "authorId"}),
            400,
            "values.through: collection nope does not exist in data source main",
        ),
        (
            // A text key against an integer one is comparable; a float one is not (below).
            json!({"name": "x", "type": "belongsTo", "target": "authors",
                   "targetDataSource": "crm", "foreignKey": "title", "targetKey": "name"}),
            200,
            "",
        ),
    ];
    for (field, status, message) in cases {
        let r = declare(t, "main", "posts", field.clone()).await;
        assert_eq!(r.status, status, "{field}: {:?}", r.body);
        if status != 200 {
            assert_eq!(r.error(), message, "{field}");
        }
    }
    let r = declare(
        t,
        "main",
        "blogs",
        json!({"name": "x", "type": "belongsTo", "target": "authors",
               "targetDataSource": "crm", "foreignKey": "rating"}),
    )
    .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(
        r.error(),
        "values.foreignKey: field rating is of type float, which cannot key a relation \
         to another data source; use an integer, text or UUID field"
    );
    let r = t
        .get("/api/dataSourcesCollections/main.posts/fields:get/author")
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data()["targetDataSource"], json!("crm"));
    assert_eq!(r.data()["targetKey"], json!("id"));
}

#[tokio::test]
async fn a_target_source_that_is_down_answers_503_and_the_rest_still_works() {
    let mut w = world().await;
    let t = &w.t;
    drop(w.docs.take());
    let r = t.get("/api/posts:list?appends=comments").await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!(r.error(), "the data source cannot be reached");
    let r = t.get("/api/posts:list?sort=id&appends=author").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data()[0]["author"]["name"], json!("ann"));

    // A removed source: its relations answer 404 naming it, others still answer.
    let r = t.post_empty("/api/dataSources:destroy/shop").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = t.get("/api/posts:list?appends=tags").await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    assert_eq!(r.error(), "appends tags: data source shop does not exist");
    let r = t.get("/api/posts:list?sort=id&appends=author").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[tokio::test]
async fn the_callers_grants_on_the_other_source_decide_what_crosses() {
    let w = world().await;
    let t = &w.t;
    let r = t
        .main(
            Method::POST,
            "/api/roles:create",
            Some(json!({"name": "reader"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // `reader` may list posts on main and editors on docs, and nothing on crm.
    for (source, resource) in [("main", "posts"), ("docs", "editors")] {
        let r = t
            .main(
                Method::POST,
                &format!("/api/dataSources/{source}/roles:update?filterByTk=reader"),
                Some(
                    json!({"resources": [{"name": resource, "usingActionsConfig": true,
                    "actions": [{"name": "view"}]}]}),
                ),
            )
            .await;
        assert_eq!(r.status, 200, "{source}: {:?}", r.body);
    }
    let token = t.new_user("rita", &["reader"]).await;
    let as_rita = |path: String| {
        let auth = format!("Bearer {token}");
        async move { t.send_as(&auth, Method::GET, &path, &[], None).await }
    };
    let (r, used) = counted(
        t,
        as_rita("/api/posts:list?sort=id&appends=author,editor".into()),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.data()[0].get("author").is_none(), "{:?}", r.body);
    assert_eq!(r.data()[0]["editor"]["name"], json!("eve"));
    assert_eq!(used[1], 0, "crm is not read for a caller who may not");
    // Through the relation's resource: the target's grants on crm decide.
    let r = as_rita("/api/posts/1/author:get".into()).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let r = as_rita("/api/posts/1/editor:get".into()).await;
    assert_eq!(r.data()["name"], json!("eve"), "{:?}", r.body);
    let f = manifold_tests::filter(json!({"author.name": "ann"}));
    let r = as_rita(format!("/api/posts:list?{f}")).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert_eq!(
        r.error(),
        "filter.author: no permission to read authors in data source crm"
    );
}

#[tokio::test]
async fn association_resources_read_across_sources_and_set_a_belongs_to() {
    let w = world().await;
    let t = &w.t;
    let on_crm = |path: String| async move {
        t.send(Method::GET, &path, &[("x-data-source", "crm")], None)
            .await
    };

    let r = t.get("/api/posts/1/author:get").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data()["name"], json!("ann"));
    let r = t.get("/api/posts/4/author:get").await;
    assert_eq!(
        (r.status, r.data().clone()),
        (200, Json::Null),
        "{:?}",
        r.body
    );
    let r = t.get("/api/posts/1/comments:list?sort=-body").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.column("body"), [json!("first!"), json!("agreed")]);
    assert_eq!(r.body["meta"]["count"], json!(2));

    // From crm, the posts in main; relations of the rows are followed from main.
    let (r, used) = counted(
        t,
        on_crm("/api/authors/1/posts:list?sort=id&appends=comments".into()),
    )
    .await;
    assert_eq!(titles(&r), [json!("one"), json!("three")]);
    assert_eq!(r.data()[1]["comments"][0]["body"], json!("hm"));
    // The path's key is the author's: crm is not read; the count and page on main, the
    // comments on docs.
    assert_eq!(used, [2, 0, 0, 1]);
    let f = manifold_tests::filter(json!({"title": "three"}));
    let r = on_crm(format!("/api/authors/1/posts:list?{f}")).await;
    assert_eq!(titles(&r), [json!("three")]);
    let r = on_crm("/api/authors/1/latest:get".into()).await;
    assert_eq!(r.data()["title"], json!("one"), "{:?}", r.body);
    let r = on_crm("/api/authors/9/posts:list".into()).await;
    assert_eq!(titles(&r), Vec::<Json>::new());

    // A belongsTo's own key is set and removed here, once the target exists there.
    let r = t.post_empty("/api/posts/4/author:set/2").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = t.get("/api/posts/4/author:get").await;
    assert_eq!(r.data()["name"], json!("bo"));
    let r = t.post_empty("/api/posts/4/author:remove").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = t.get("/api/posts/4?fields=authorId").await;
    assert_eq!(r.data()["authorId"], Json::Null, "{:?}", r.body);

    // Writes into the other source are made there.
    let r = t
        .post("/api/posts/1/comments:create", json!({"body": "x"}))
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(
        r.error(),
        "posts.comments leads to data source docs: through it Manifold reads (get, list) \
         and sets a belongsTo's key; send create to data source docs directly"
    );
    let r = t
        .send(
            Method::POST,
            "/api/authors/1/posts:set",
            &[
                ("x-data-source", "crm"),
                ("content-type", "application/json"),
            ],
            Some(b"[2]".to_vec()),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(
        r.error(),
        "authors.posts leads to data source main: through it Manifold reads (get, list) \
         and sets a belongsTo's key; send set to data source main directly"
    );
}
