//! `swagger:get` and `swagger:getUrls`: an OpenAPI 3.0 document of each data source, valid
//! by openapi-spec-validator (`MANIFOLD_TEST_OPENAPI_VALIDATOR`, which scripts/test.sh installs;
//! a missing validator fails the test), following the schema as it changes, and showing a
//! caller only what the caller's roles may use.

use manifold_tests::{Backend, ScratchDatabase, TestApp, server_address, server_credentials};

#[path = "../../connectors/mongo/tests/support/secantus.rs"]
mod secantus;
use poem::http::Method;
use serde_json::{Value as Json, json};

/// Checks `document` with openapi-spec-validator; panics with its report when invalid.
fn assert_valid(document: &Json, what: &str) {
    let validator = std::env::var("MANIFOLD_TEST_OPENAPI_VALIDATOR").unwrap_or_else(|_| {
        format!(
            "{}/../.venv-openapi/bin/openapi-spec-validator",
            env!("CARGO_MANIFEST_DIR")
        )
    });
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, document.to_string()).expect("write the document");
    let out = std::process::Command::new(&validator)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("{validator} did not run ({e}); scripts/test.sh installs it in .venv-openapi")
        });
    assert!(
        out.status.success(),
        "{what} is not a valid OpenAPI document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn notes_definition() -> Json {
    json!({"name": "notes", "fields": [
        {"name": "title", "type": "string", "allowNull": false},
        {"name": "score", "type": "integer"},
        {"name": "price", "type": "decimal"},
        {"name": "published", "type": "boolean"},
        {"name": "day", "type": "date"},
        {"name": "meta", "type": "json"},
    ]})
}

#[tokio::test]
async fn the_main_document_is_valid_and_describes_every_collection_and_the_core() {
    let t = TestApp::new().await;
    t.collection(notes_definition()).await;
    let r = t.main(Method::GET, "/api/swagger:get", None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let doc = &r.body;
    assert!(doc.get("data").is_none(), "no envelope: {doc}");
    assert_eq!(doc["openapi"], json!("3.0.3"));
    assert_valid(doc, "swagger:get");

    for path in ["/notes:list", "/notes:get"] {
        assert!(
            doc["paths"][path]["get"].is_object(),
            "{path}: {}",
            doc["paths"]
        );
    }
    for action in [
        "create",
        "update",
        "destroy",
        "firstOrCreate",
        "updateOrCreate",
    ] {
        let path = format!("/notes:{action}");
        assert!(doc["paths"][&path]["post"].is_object(), "{path}");
    }
    for core in [
        "/auth:signIn",
        "/dataSources:list",
        "/collections:list",
        "/apiKeys:create",
        "/collections/{associatedIndex}/fields:list",
        "/dataSources/{associatedIndex}/roles:update",
        "/swagger:getUrls",
    ] {
        assert!(doc["paths"][core].is_object(), "{core} in the core paths");
    }
    let notes = &doc["components"]["schemas"]["notes"]["properties"];
    assert_eq!(notes["title"]["type"], json!("string"));
    assert_eq!(
        notes["title"]["nullable"],
        Json::Null,
        "title is not nullable"
    );
    assert_eq!(notes["score"]["type"], json!("integer"));
    assert_eq!(notes["score"]["nullable"], json!(true));
    assert_eq!(
        notes["price"]["type"],
        json!("string"),
        "decimals are strings"
    );
    assert_eq!(notes["day"]["format"], json!("date"));
    assert_eq!(
        notes["id"]["readOnly"],
        json!(true),
        "the key is the server's"
    );
    let write = &doc["components"]["schemas"]["notes.write"]["properties"];
    assert!(
        write["id"].is_null(),
        "no auto-increment key to write: {write}"
    );
    assert!(
        write["price"]["oneOf"].is_array(),
        "a decimal is written as a string or number"
    );
    let list = &doc["paths"]["/notes:list"]["get"];
    let parameters: Vec<&str> = list["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["$ref"].as_str())
        .collect();
    for p in ["filter", "sort", "fields", "appends", "page", "pageSize"] {
        assert!(
            parameters.contains(&format!("#/components/parameters/{p}").as_str()),
            "{p} in {parameters:?}"
        );
    }
    let answer = &list["responses"]["200"]["content"]["application/json"]["schema"]["properties"];
    assert_eq!(
        answer["data"]["items"]["$ref"],
        json!("#/components/schemas/notes")
    );
    assert!(answer["meta"]["properties"]["totalPage"].is_object());
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        json!("bearer")
    );
}

#[tokio::test]
async fn the_document_follows_the_schema_as_it_changes() {
    let t = TestApp::new().await;
    t.collection(notes_definition()).await;
    let r = t
        .main(Method::GET, "/api/swagger:get?ns=collections", None)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body["paths"]["/tags:list"].is_null());
    assert!(
        r.body["paths"]["/auth:signIn"].is_null(),
        "collections only"
    );

    t.collection(json!({"name": "tags", "fields": [{"name": "label", "type": "string"}]}))
        .await;
    let r = t
        .main(Method::GET, "/api/swagger:get?ns=collections", None)
        .await;
    assert!(
        r.body["paths"]["/tags:list"]["get"].is_object(),
        "{}",
        r.body["paths"]
    );
    assert_eq!(
        r.body["components"]["schemas"]["tags"]["properties"]["label"]["type"],
        json!("string")
    );
    assert_valid(&r.body, "ns=collections after collections:create");

    // A relation declared on notes: its association paths appear.
    let r = t
        .main(
            Method::POST,
            "/api/collections:create",
            Some(json!({"name": "comments", "fields": [
                {"name": "body", "type": "text"},
                {"name": "note", "type": "belongsTo", "target": "notes", "foreignKey": "noteId"},
            ]})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = t
        .main(
            Method::GET,
            "/api/swagger:get?ns=collections/comments",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        r.body["paths"]["/comments/{collectionIndex}/note:get"]["get"].is_object(),
        "{}",
        r.body["paths"]
    );
    assert!(
        r.body["paths"]["/notes:list"].is_null(),
        "one collection only"
    );
    assert_valid(&r.body, "ns=collections/comments");
}

#[tokio::test]
async fn bad_namespaces_and_anonymous_callers_get_clear_errors() {
    let t = TestApp::new().await;
    let r = t
        .main(Method::GET, "/api/swagger:get?ns=plugins/x", None)
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(r.error().starts_with("ns:"), "{}", r.error());
    let r = t
        .main(Method::GET, "/api/swagger:get?ns=collections/nothing", None)
        .await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    assert!(r.error().contains("nothing"), "{}", r.error());
    for query in ["ns[]=core", "dataSource[a]=b"] {
        let r = t
            .main(Method::GET, &format!("/api/swagger:get?{query}"), None)
            .await;
        assert_eq!(r.status, 400, "{query}: {:?}", r.body);
        assert!(
            r.error().contains("expected text"),
            "{query}: {}",
            r.error()
        );
    }
    let r = t
        .anonymous(Method::GET, "/api/swagger:get", &[], None)
        .await;
    assert_eq!(r.status, 401, "{:?}", r.body);
    let r = t
        .anonymous(Method::GET, "/api/swagger:getUrls", &[], None)
        .await;
    assert_eq!(r.status, 401, "{:?}", r.body);
}

#[tokio::test]
async fn get_urls_lists_the_namespaces_of_the_source() {
    let t = TestApp::new().await;
    t.collection(notes_definition()).await;
    let r = t.main(Method::GET, "/api/swagger:getUrls", None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let urls: Vec<&str> = r
        .data()
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|u| u["url"].as_str())
        .collect();
    for url in [
        "/api/swagger:get",
        "/api/swagger:get?ns=core",
        "/api/swagger:get?ns=collections",
        "/api/swagger:get?ns=collections%2Fnotes",
    ] {
        assert!(urls.contains(&url), "{url} in {urls:?}");
    }
    for url in urls {
        let r = t.main(Method::GET, url, None).await;
        assert_eq!(r.status, 200, "{url}: {:?}", r.body);
        assert_eq!(r.body["openapi"], json!("3.0.3"), "{url}");
    }
}

#[tokio::test]
async fn a_member_sees_only_what_their_role_may_use() {
    let t = TestApp::new().await;
    t.collection(notes_definition()).await;
    t.collection(json!({"name": "secrets", "fields": [{"name": "code", "type": "string"}]}))
        .await;
    t.collection(json!({"name": "replies", "fields": [
        {"name": "text", "type": "text"},
        {"name": "note", "type": "belongsTo", "target": "notes", "foreignKey": "noteId"},
    ]}))
    .await;
    let note = t.insert("notes", json!([{"title": "n"}])).await;
    t.insert("replies", json!([{"text": "r", "noteId": note[0]["id"]}]))
        .await;
    let r = t
        .main(
            Method::POST,
            "/api/roles:create",
            Some(json!({"name": "reader"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // The reader may update notes, not replies: linking a reply's note changes the reply.
    for (collection, actions) in [
        (
            "notes",
            json!([{"name": "view", "fields": ["title", "score"]}, {"name": "update"}]),
        ),
        (
            "replies",
            json!([{"name": "view", "fields": ["text", "noteId"]}]),
        ),
    ] {
        let r = t
            .main(
                Method::POST,
                "/api/roles/reader/resources:create",
                Some(json!({
                    "name": collection, "dataSourceKey": "main", "usingActionsConfig": true,
                    "actions": actions
                })),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let reader = t.new_user("rita", &["reader"]).await;
    let as_reader = |method: Method, path: &'static str| {
        let (t, reader) = (&t, format!("Bearer {reader}"));
        async move { t.main_as(&reader, method, path, None).await }
    };
    // A relation's actions as the ACL decides them: reading it needs view on both sides,
    // linking needs update on the source, which the reader lacks (update on the target,
    // which the reader has, does not count).
    let r = as_reader(Method::GET, "/api/swagger:get?ns=collections/replies").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        r.body["paths"]["/replies/{collectionIndex}/note:get"]["get"].is_object(),
        "{}",
        r.body["paths"]
    );
    assert!(r.body["paths"]["/replies/{collectionIndex}/note:set"].is_null());
    assert_eq!(
        as_reader(Method::GET, "/api/replies/1/note:get")
            .await
            .status,
        200
    );
    assert_eq!(
        as_reader(Method::POST, "/api/replies/1/note:set")
            .await
            .status,
        403
    );
    let r = as_reader(Method::GET, "/api/swagger:getUrls").await;
    let urls = r.body.to_string();
    assert!(urls.contains("collections%2Fnotes"), "{urls}");
    assert!(!urls.contains("secrets"), "no secrets in the list: {urls}");
    let r = t
        .main_as(
            &format!("Bearer {reader}"),
            Method::GET,
            "/api/swagger:get",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let paths = &r.body["paths"];
    assert!(paths["/notes:list"]["get"].is_object(), "{paths}");
    assert!(
        paths["/notes:create"].is_null(),
        "no create for a reader: {paths}"
    );
    assert!(paths["/secrets:list"].is_null(), "no secrets: {paths}");
    let notes = r.body["components"]["schemas"]["notes"]["properties"]
        .as_object()
        .expect("notes");
    let mut fields: Vec<&str> = notes.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["score", "title"], "the granted fields only");
    assert_valid(&r.body, "a reader's document");
    let r = t
        .main_as(
            &format!("Bearer {reader}"),
            Method::GET,
            "/api/swagger:get?ns=collections/secrets",
            None,
        )
        .await;
    assert_eq!(r.status, 404, "{:?}", r.body);
}

/// Registers `key` on the scratch database `db` of `backend` with a `books` table.
async fn external_source(t: &TestApp, backend: Backend, key: &str) -> ScratchDatabase {
    let db = ScratchDatabase::create(backend).await;
    let (create, kind) = match backend {
        Backend::Postgres => (
            "CREATE TABLE books (id SERIAL PRIMARY KEY, title TEXT NOT NULL, pages INT, price NUMERIC(8,2))",
            "postgres",
        ),
        _ => (
            "CREATE TABLE books (id INT AUTO_INCREMENT PRIMARY KEY, title TEXT NOT NULL, pages INT, price DECIMAL(8,2))",
            "mysql",
        ),
    };
    db.execute(&[create]).await;
    let (username, password) = server_credentials(backend);
    let address = server_address(backend);
    t.register_source(
        key,
        kind,
        json!({
            "host": address.ip().to_string(), "port": address.port(), "database": db.name(),
            "username": username, "password": password,
        }),
    )
    .await;
    db
}

async fn assert_external_document(backend: Backend, key: &str) {
    let t = TestApp::new().await;
    let db = external_source(&t, backend, key).await;
    for (how, r) in [
        (
            "X-Data-Source",
            t.on(key, Method::GET, "/api/swagger:get", None).await,
        ),
        (
            "?dataSource=",
            t.main(
                Method::GET,
                &format!("/api/swagger:get?dataSource={key}"),
                None,
            )
            .await,
        ),
    ] {
        assert_eq!(r.status, 200, "{how}: {:?}", r.body);
        let doc = &r.body;
        assert_valid(doc, &format!("{key}'s document by {how}"));
        assert!(
            doc["paths"]["/books:list"]["get"].is_object(),
            "{how}: {}",
            doc["paths"]
        );
        assert!(
            doc["paths"]["/auth:signIn"].is_null(),
            "main's core is main's"
        );
        let header = &doc["components"]["parameters"]["X-Data-Source"];
        assert_eq!(header["in"], json!("header"));
        assert_eq!(header["required"], json!(true));
        assert_eq!(header["schema"]["enum"], json!([key]));
        let books = &doc["components"]["schemas"]["books"]["properties"];
        assert_eq!(books["pages"]["type"], json!("integer"));
        assert_eq!(books["price"]["type"], json!("string"));
    }
    // A column added behind Manifold's back shows once the source is refreshed.
    db.execute(&["ALTER TABLE books ADD COLUMN isbn VARCHAR(20)"])
        .await;
    let r = t.on(key, Method::GET, "/api/swagger:get", None).await;
    assert!(r.body["components"]["schemas"]["books"]["properties"]["isbn"].is_null());
    let r = t
        .post_empty(&format!("/api/dataSources:refresh/{key}"))
        .await;
    assert_eq!(r.status, 200, "refresh: {:?}", r.body);
    assert_eq!(t.settled(key).await["status"], json!("loaded"));
    let r = t.on(key, Method::GET, "/api/swagger:get", None).await;
    assert_eq!(
        r.body["components"]["schemas"]["books"]["properties"]["isbn"]["type"],
        json!("string"),
        "after the refresh: {}",
        r.body["components"]["schemas"]["books"]
    );
    let r = t
        .main(Method::GET, "/api/swagger:get?dataSource=nowhere", None)
        .await;
    assert_eq!(r.status, 404, "{:?}", r.body);
}

#[tokio::test]
async fn a_postgres_source_has_its_own_valid_document() {
    assert_external_document(Backend::Postgres, "pgbooks").await;
}

#[tokio::test]
async fn a_mariadb_source_has_its_own_valid_document() {
    assert_external_document(Backend::MariaDb, "mybooks").await;
}

#[tokio::test]
async fn a_mongodb_source_has_its_own_valid_document() {
    let server = secantus::Secantus::start();
    let t = TestApp::new().await;
    t.register_source(
        "docs",
        "mongodb",
        json!({"url": server.url(), "database": "manifold_openapi", "serverSelectionTimeoutMs": 500}),
    )
    .await;
    let r = t
        .on(
            "docs",
            Method::POST,
            "/api/collections:create",
            Some(json!({"name": "events", "fields": [
                {"name": "kind", "type": "string"},
                {"name": "count", "type": "integer"},
                {"name": "tags", "type": "array"},
                {"name": "at", "type": "datetime"},
            ]})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = t.on("docs", Method::GET, "/api/swagger:get", None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_valid(&r.body, "the MongoDB source's document");
    assert!(
        r.body["paths"]["/events:list"]["get"].is_object(),
        "{}",
        r.body["paths"]
    );
    let events = &r.body["components"]["schemas"]["events"]["properties"];
    assert_eq!(events["tags"]["type"], json!("array"));
    assert_eq!(events["at"]["format"], json!("date-time"));
    assert_eq!(
        r.body["components"]["parameters"]["X-Data-Source"]["schema"]["enum"],
        json!(["docs"])
    );
}
