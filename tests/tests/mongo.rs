//! The MongoDB connector through the real app: a SecantusDB (a MongoDB-compatible server)
//! registered over HTTP as data source `docs`, then every collection action, filters and
//! the source's collection list, sent with `X-Data-Source: docs`.
//!
//! Each test starts its own in-memory SecantusDB from `MANIFOLD_SECANTUSD` (default:
//! `.venv-mongo/bin/secantusd-py` in the workspace root) and kills it by its process id
//! when the test ends. A server that cannot be started fails the test; nothing is skipped.

use manifold_core::connector::CollectionDefinition;
use manifold_tests::{Reply, TestApp, enc, filter};
use poem::http::Method;
use serde_json::{Value as Json, json};

#[path = "../../connectors/mongo/tests/support/secantus.rs"]
mod secantus;
use secantus::Secantus;

/// Registers `server` as data source `docs` and waits until it has loaded.
async fn register(t: &TestApp, server: &Secantus) {
    t.register_source(
        "docs",
        "mongodb",
        json!({"url": server.url(), "database": "manifold_http", "serverSelectionTimeoutMs": 500}),
    )
    .await;
}

/// Creates collection `posts` in `docs` through the core (the HTTP way is tested below).
async fn define_posts(t: &TestApp) {
    let source = t
        .app
        .data_sources()
        .get("docs")
        .expect("docs is registered");
    let definition = CollectionDefinition::from_json(&json!({
        "name": "posts",
        "fields": [
            {"name": "title", "type": "string"},
            {"name": "score", "type": "integer"},
            {"name": "status", "type": "string", "defaultValue": "draft"},
            {"name": "tags", "type": "array"},
            {"name": "publishedAt", "type": "datetime"},
            {"name": "email", "type": "string", "unique": true}
        ]
    }))
    .expect("definition");
    source
        .define_collection(&definition)
        .await
        .expect("define posts");
}

async fn get(t: &TestApp, path: &str) -> Reply {
    let r = t.on("docs", Method::GET, path, None).await;
    assert_eq!(r.status, 200, "{path}: {:?}", r.body);
    r
}

async fn post(t: &TestApp, path: &str, body: Json) -> Reply {
    t.on("docs", Method::POST, path, Some(body)).await
}

/// The titles of the posts matching `f`, in key (creation) order.
async fn titles(t: &TestApp, f: Json) -> Vec<Json> {
    get(t, &format!("/api/posts:list?paginate=false&{}", filter(f)))
        .await
        .column("title")
}

fn is_object_id(v: &Json) -> bool {
    v.as_str()
        .is_some_and(|s| s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[tokio::test]
async fn a_registered_mongodb_source_serves_every_collection_action() {
    let server = Secantus::start();
    let t = TestApp::new().await;
    register(&t, &server).await;
    define_posts(&t).await;

    // create
    let r = post(
        &t,
        "/api/posts:create",
        json!({"title": "Hello (World)", "score": 3, "tags": ["a", "b"],
               "publishedAt": "2023-01-01T10:00:00+02:00", "unknown": "ignored"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let first = r.data().clone();
    assert!(is_object_id(&first["_id"]), "{first}");
    assert_eq!(first["status"], json!("draft"), "the declared default");
    assert_eq!(first["publishedAt"], json!("2023-01-01T08:00:00.000Z"));
    assert_eq!(first["tags"], json!(["a", "b"]));
    assert!(
        first["createdAt"]
            .as_str()
            .is_some_and(|s| s.ends_with('Z'))
    );
    assert!(first.get("unknown").is_none());
    let id = first["_id"].as_str().expect("key").to_owned();
    for body in [
        json!({"title": "second", "score": null, "tags": []}),
        json!({"title": "third", "score": 7, "tags": ["b"], "publishedAt": "2023-02-01T00:00:00Z"}),
        json!({"title": "a.b*c", "score": 1}),
    ] {
        let r = post(&t, "/api/posts:create", body).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }

    // list: count, page size 50 (non-main sources), sort with NULLs last, windows, fields
    let r = get(&t, "/api/posts:list?sort=-score").await;
    assert_eq!(
        r.column("score"),
        [json!(7), json!(3), json!(1), Json::Null]
    );
    assert_eq!(r.body["meta"]["count"], json!(4));
    assert_eq!(r.body["meta"]["pageSize"], json!(50));
    let r = get(&t, "/api/posts:list?sort=score").await;
    assert_eq!(
        r.column("score"),
        [json!(1), json!(3), json!(7), Json::Null]
    );
    let r = get(&t, "/api/posts:list?sort=score&pageSize=2&page=2").await;
    assert_eq!(r.column("title"), [json!("third"), json!("second")]);
    assert_eq!(
        r.body["meta"],
        json!({"count": 4, "page": 2, "pageSize": 2, "totalPage": 2})
    );
    let r = get(
        &t,
        "/api/posts:list?fields[]=title&sort=title&paginate=false",
    )
    .await;
    assert_eq!(
        r.data(),
        &json!([{"title": "Hello (World)"}, {"title": "a.b*c"}, {"title": "second"}, {"title": "third"}])
    );

    // get by key (an ObjectId given as its hex text)
    let r = get(&t, &format!("/api/posts:get/{id}")).await;
    assert_eq!(r.data()["title"], json!("Hello (World)"));
    let r = get(&t, "/api/posts:get/65f1c0ffee00000000000001").await;
    assert_eq!(r.data(), &Json::Null);

    // filters
    assert_eq!(
        titles(&t, json!({"title.$includes": "(world)"})).await,
        [json!("Hello (World)")]
    );
    assert_eq!(
        titles(&t, json!({"title.$includes": "b*c"})).await,
        [json!("a.b*c")]
    );
    assert_eq!(
        titles(&t, json!({"title.$includes": "a.c"})).await,
        Vec::<Json>::new()
    );
    assert_eq!(
        titles(&t, json!({"score.$empty": true})).await,
        [json!("second")]
    );
    assert_eq!(
        titles(&t, json!({"score.$ne": 3})).await,
        [json!("second"), json!("third"), json!("a.b*c")],
        "$ne includes NULL"
    );
    assert_eq!(
        titles(&t, json!({"tags.$match": ["b", "a"]})).await,
        [json!("Hello (World)")]
    );
    assert_eq!(
        titles(&t, json!({"tags.$anyOf": ["b"]})).await,
        [json!("Hello (World)"), json!("third")]
    );
    assert_eq!(
        titles(&t, json!({"tags.$empty": true})).await,
        [json!("second"), json!("a.b*c")]
    );
    assert_eq!(
        titles(&t, json!({"publishedAt.$dateOn": "2023-01-01"})).await,
        [json!("Hello (World)")]
    );
    assert_eq!(
        titles(
            &t,
            json!({"publishedAt.$dateBetween": ["2023-01-01", "2023-12-31"]})
        )
        .await,
        [json!("Hello (World)"), json!("third")]
    );
    assert_eq!(
        titles(
            &t,
            json!({"$or": [{"score.$gt": 5}, {"title.$startsWith": "HELLO"}]})
        )
        .await,
        [json!("Hello (World)"), json!("third")]
    );
    let r = t
        .on(
            "docs",
            Method::GET,
            &format!("/api/posts:list?{}", filter(json!({"nope": 1}))),
            None,
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let r = get(
        &t,
        &format!(
            "/api/posts:list?filter={}",
            enc(r#"{"score":{"$gte":"3"}}"#)
        ),
    )
    .await;
    assert_eq!(r.body["meta"]["count"], json!(2));

    // update by key and by filter
    let r = post(
        &t,
        &format!("/api/posts:update/{id}"),
        json!({"score": 10, "_id": "x"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data()[0]["score"], json!(10));
    assert_eq!(
        r.data()[0]["_id"],
        json!(id.clone()),
        "the key does not change"
    );
    let r = post(
        &t,
        &format!(
            "/api/posts:update?{}",
            filter(json!({"score.$empty": true}))
        ),
        json!({"score": 2}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.column("title"), [json!("second")]);
    let r = post(
        &t,
        &format!("/api/posts:update?{}", filter(json!({"title": "none"}))),
        json!({"score": 1}),
    )
    .await;
    assert_eq!(r.body, json!({"data": []}));

    // firstOrCreate / updateOrCreate
    let r = post(
        &t,
        "/api/posts:firstOrCreate?filterKeys[]=title",
        json!({"title": "fresh"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let fresh = r.data()["_id"].clone();
    assert!(is_object_id(&fresh));
    let r = post(
        &t,
        "/api/posts:firstOrCreate?filterKeys[]=title",
        json!({"title": "fresh", "score": 5}),
    )
    .await;
    assert_eq!(r.data()["_id"], fresh);
    assert_eq!(
        r.data()["score"],
        Json::Null,
        "firstOrCreate does not update"
    );
    let r = post(
        &t,
        "/api/posts:updateOrCreate?filterKeys[]=title",
        json!({"title": "fresh", "score": 42}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data()["_id"], fresh);
    assert_eq!(r.data()["score"], json!(42));
    let r = post(
        &t,
        "/api/posts:updateOrCreate?filterKeys[]=title",
        json!({"title": "newer"}),
    )
    .await;
    assert_ne!(r.data()["_id"], fresh);
    assert_eq!(
        get(&t, "/api/posts:list").await.body["meta"]["count"],
        json!(6)
    );

    // a unique field: 400 naming the field, never the value
    let r = post(
        &t,
        "/api/posts:create",
        json!({"title": "u1", "email": "taken@example.com"}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = post(
        &t,
        "/api/posts:create",
        json!({"title": "u2", "email": "taken@example.com"}),
    )
    .await;
    assert_eq!((r.status, r.error()), (400, "email already exists"));

    // destroy by key and by filter
    let r = post(&t, &format!("/api/posts:destroy/{id}"), json!({})).await;
    assert_eq!(r.body, json!({"data": 1}));
    assert_eq!(
        get(&t, &format!("/api/posts:get/{id}")).await.data(),
        &Json::Null
    );
    let r = post(
        &t,
        &format!(
            "/api/posts:destroy?{}",
            filter(json!({"title.$in": ["u1", "newer"]}))
        ),
        json!({}),
    )
    .await;
    assert_eq!(r.body, json!({"data": 2}));
    let r = post(&t, "/api/posts:destroy", json!({})).await;
    assert_eq!(r.status, 400, "a filter is required: {:?}", r.body);

    // the source's collections: the internal definitions collection is not a resource
    let r = t.get("/api/dataSources/docs/collections:list").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.column("name"), [json!("posts")]);
    assert_eq!(r.data()[0]["filterTargetKey"], json!("_id"));
    let r = t
        .get("/api/dataSourcesCollections/docs.posts/fields:list")
        .await;
    let mut names: Vec<String> = r
        .column("name")
        .iter()
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "_id",
            "createdAt",
            "email",
            "publishedAt",
            "score",
            "status",
            "tags",
            "title",
            "updatedAt"
        ]
    );

    // A refresh re-reads the database; the declared schema and defaults survive it.
    let r = t.post_empty("/api/dataSources:refresh/docs").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(t.settled("docs").await["status"], json!("loaded"));
    let r = post(&t, "/api/posts:create", json!({"title": "after refresh"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data()["status"], json!("draft"));
    assert_eq!(
        titles(&t, json!({"title.$notIncludes": "E"})).await,
        [json!("third"), json!("a.b*c")]
    );
}

#[tokio::test]
async fn an_unreachable_mongodb_is_refused_without_leaking_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let t = TestApp::new().await;
    let r = t
        .post(
            "/api/dataSources:create",
            json!({"key": "docs", "type": "mongodb", "options": {
                "url": format!("mongodb://app:s3cr3t-pw@127.0.0.1:{port}/app"),
                "serverSelectionTimeoutMs": 300
            }}),
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(
        r.error(),
        "Test connection failed: the data source cannot be reached"
    );
    assert!(!r.body.to_string().contains("s3cr3t-pw"));

    // A server that goes away after registration: requests get a 503.
    let server = Secantus::start();
    register(&t, &server).await;
    define_posts(&t).await;
    let r = post(&t, "/api/posts:create", json!({"title": "one"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    drop(server);
    let r = t.on("docs", Method::GET, "/api/posts:list", None).await;
    assert_eq!(
        (r.status, r.error()),
        (503, "the data source cannot be reached")
    );
    let listed = t.get("/api/dataSources:list").await;
    assert!(!listed.body.to_string().contains("s3cr3t-pw"));
}

/// Relations declared on reference fields of a MongoDB source: `authorId` holds the
/// ObjectId of a user (written by another application), `author` (belongsTo) and `posts`
/// (hasMany) are declared over HTTP, and appends and association resources follow them
/// with one batched `$in` read per level.
#[tokio::test]
async fn declared_relations_follow_object_id_references() {
    use mongodb::bson::{Document, doc, oid::ObjectId};

    let server = Secantus::start();
    let client = mongodb::Client::with_uri_str(server.url())
        .await
        .expect("driver client");
    let db = client.database("manifold_http");
    let users: Vec<ObjectId> = (0..3).map(|_| ObjectId::new()).collect();
    db.collection::<Document>("users")
        .insert_many(
            ["ann", "bo", "cy"]
                .iter()
                .zip(&users)
                .map(|(name, id)| doc! {"_id": id, "name": *name}),
        )
        .await
        .expect("insert users");
    // 100 posts, by ann and bo in turn; five by cy from an application that stores the
    // reference as hex text; the last five have no author.
    let posts: Vec<Document> = (0..100)
        .map(|i| {
            let mut post = doc! {"_id": ObjectId::new(), "title": format!("p{i:03}")};
            if i < 90 {
                post.insert("authorId", users[i % 2]);
            } else if i < 95 {
                post.insert("authorId", users[2].to_hex());
            }
            post
        })
        .collect();
    db.collection::<Document>("posts")
        .insert_many(posts)
        .await
        .expect("insert posts");

    let t = TestApp::new().await;
    register(&t, &server).await;
    for (collection, field) in [
        (
            "posts",
            json!({"name": "author", "type": "belongsTo", "target": "users", "foreignKey": "authorId"}),
        ),
        (
            "users",
            json!({"name": "posts", "type": "hasMany", "target": "posts", "foreignKey": "authorId"}),
        ),
    ] {
        let r = t
            .post(
                &format!("/api/dataSourcesCollections/docs.{collection}/fields:create"),
                field,
            )
            .await;
        assert_eq!(r.status, 200, "{collection}: {:?}", r.body);
    }
    let ann = users[0].to_hex();
    let bo = users[1].to_hex();

    // belongsTo: each post embeds its author, matched on the ObjectId.
    let r = get(
        &t,
        &format!(
            "/api/posts:list?appends=author&sort=title&pageSize=3&{}",
            filter(json!({"title.$in": ["p000", "p001", "p095"]}))
        ),
    )
    .await;
    assert_eq!(r.column("authorId"), [json!(ann), json!(bo), Json::Null]);
    assert_eq!(
        r.data()[0]["author"],
        json!({"_id": ann, "name": "ann"}),
        "{:?}",
        r.body
    );
    assert_eq!(r.data()[1]["author"]["name"], json!("bo"));
    assert_eq!(r.data()[2]["author"], Json::Null);

    // hasMany: each user embeds the posts whose authorId is theirs.
    let r = get(&t, "/api/users:list?appends=posts&sort=name").await;
    assert_eq!(r.column("name"), [json!("ann"), json!("bo"), json!("cy")]);
    let counts: Vec<usize> = r
        .column("posts")
        .iter()
        .map(|p| p.as_array().map_or(usize::MAX, Vec::len))
        .collect();
    assert_eq!(counts, [45, 45, 5], "{:?}", r.body);
    assert_eq!(r.data()[0]["posts"][0]["title"], json!("p000"));
    assert_eq!(r.data()[1]["posts"][0]["authorId"], json!(bo));

    // The association resource reads through the relation.
    let r = get(
        &t,
        &format!("/api/users/{ann}/posts:list?sort=-title&pageSize=2"),
    )
    .await;
    assert_eq!(r.column("title"), [json!("p088"), json!("p086")]);
    assert_eq!(r.body["meta"]["count"], json!(45));
    let r = get(
        &t,
        &format!("/api/posts:list?{}", filter(json!({"authorId": bo}))),
    )
    .await;
    assert_eq!(
        r.body["meta"]["count"],
        json!(45),
        "a hex operand matches the ObjectIds"
    );
    let cy = users[2].to_hex();
    let r = get(&t, &format!("/api/users/{cy}/posts:list")).await;
    assert_eq!(r.body["meta"]["count"], json!(5), "and the hex text");

    // 100 posts with their authors: one read of the posts, one batched read of the users.
    let source = t.app.data_sources().get("docs").expect("docs");
    let before = source.statements();
    let r = get(&t, "/api/posts:list?appends=author&paginate=false").await;
    assert_eq!(source.statements() - before, 2);
    let rows = r.data().as_array().expect("rows");
    assert_eq!(rows.len(), 100);
    assert_eq!(
        rows.iter()
            .filter(|p| p["author"]["name"] == json!("ann"))
            .count(),
        45
    );
    assert_eq!(
        rows.iter()
            .filter(|p| p["author"]["name"] == json!("cy"))
            .count(),
        5
    );
    assert_eq!(rows.iter().filter(|p| p["author"].is_null()).count(), 5);
}

#[tokio::test]
async fn collections_are_created_and_destroyed_over_http_on_a_mongodb_source() {
    let server = Secantus::start();
    let t = TestApp::new().await;
    register(&t, &server).await;
    let definition = json!({"name": "notes", "fields": [
        {"name": "title", "type": "string"},
        {"name": "n", "type": "integer"}
    ]});
    let r = t
        .on(
            "docs",
            Method::POST,
            "/api/collections:create",
            Some(definition),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data()["name"], json!("notes"));
    let r = t
        .on(
            "docs",
            Method::POST,
            "/api/notes:create",
            Some(json!({"title": "a", "n": 1})),
        )
        .await;
    assert_eq!(
        (r.status, &r.data()["title"]),
        (200, &json!("a")),
        "{:?}",
        r.body
    );
    let r = get(&t, "/api/notes:list").await;
    assert_eq!(r.column("n"), [json!(1)], "served at once: {:?}", r.body);
    let r = get(&t, "/api/collections:list").await;
    assert_eq!(r.column("name"), [json!("notes")], "{:?}", r.body);
    let r = t
        .on(
            "docs",
            Method::POST,
            "/api/collections:create",
            Some(json!({"name": "notes"})),
        )
        .await;
    assert_eq!(r.status, 409, "{:?}", r.body);

    let r = t
        .on("docs", Method::POST, "/api/collections:destroy/notes", None)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = t.on("docs", Method::GET, "/api/notes:list", None).await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    // The main source is not touched.
    let r = t.get("/api/collections:list").await;
    assert!(!r.column("name").contains(&json!("notes")), "{:?}", r.body);
}
