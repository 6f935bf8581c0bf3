//! Answers and bulk creates larger than one batch (`BATCH_ROWS`, 500): `list` with
//! `paginate=false` streams them and a long `create` array is inserted a batch at a time
//! in one unit of work. They must answer exactly what a single read or write would: every
//! row once, in order, in the same JSON shape, and a bad row anywhere leaves nothing.

use manifold_core::actions::BATCH_ROWS;
use manifold_tests::{Backend, TestApp, every_backend, filter};
use poem::http::Method;
use serde_json::{Value as Json, json};

/// More rows than two batches, with a partial last one: the streamed path.
const ROWS: usize = 2 * BATCH_ROWS + 234;

fn sorted_keys(record: &Json) -> Vec<String> {
    let mut keys: Vec<String> = record
        .as_object()
        .expect("a record object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

async fn items_app() -> TestApp {
    let app = TestApp::new().await;
    app.collection(json!({
        "name": "items",
        "fields": [{"name": "label", "type": "string"}, {"name": "n", "type": "integer"}]
    }))
    .await;
    app
}

fn items(range: std::ops::Range<usize>) -> Json {
    Json::Array(
        range
            .map(|i| json!({"label": format!("l{i}"), "n": i}))
            .collect(),
    )
}

every_backend! {
    async fn a_bulk_create_of_several_batches_answers_every_record_in_order() {
        let app = items_app().await;
        let one = app.post("/api/items:create", json!({"label": "first", "n": -1})).await;
        assert_eq!(one.status, 200, "{:?}", one.body);

        let r = app.post("/api/items:create", items(0..ROWS)).await;
        assert_eq!(r.status, 200, "{}", r.error());
        assert_eq!(sorted_keys(&r.body), vec!["data".to_owned()]);
        let created = r.data().as_array().expect("an array of records");
        assert_eq!(created.len(), ROWS);
        let expected: Vec<Json> = (0..ROWS).map(|i| json!(i)).collect();
        assert_eq!(r.column("n"), expected);
        assert_eq!(created[ROWS - 1]["label"], json!(format!("l{}", ROWS - 1)));
        // Each record as a single create answers it.
        for record in [&created[0], &created[BATCH_ROWS], &created[ROWS - 1]] {
            assert_eq!(sorted_keys(record), sorted_keys(one.data()));
        }
        assert_eq!(app.count("items").await, ROWS as u64 + 1);
    }
}

every_backend! {
    async fn a_bad_row_late_in_a_bulk_create_leaves_the_table_as_it_was() {
        let app = items_app().await;
        app.post("/api/items:create", items(0..3)).await;

        // Two full batches are inserted before the bad row is read.
        let bad = 2 * BATCH_ROWS + 100;
        let mut rows = items(0..ROWS);
        rows[bad]["n"] = json!("not a number");
        let r = app.post("/api/items:create", rows).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(
            r.error().contains(&format!("values.{bad}.n")),
            "the error names the row: {}",
            r.error()
        );
        assert_eq!(app.count("items").await, 3);

        // The same for a row that is not an object at all.
        let mut rows = items(0..ROWS);
        rows[ROWS - 1] = json!([1, 2]);
        let r = app.post("/api/items:create", rows).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(r.error().contains(&format!("values.{}", ROWS - 1)), "{}", r.error());
        assert_eq!(app.count("items").await, 3);
    }
}

every_backend! {
    async fn an_unpaginated_list_of_several_batches_returns_every_row_once_in_order() {
        let app = items_app().await;
        let r = app.post("/api/items:create", items(0..ROWS)).await;
        assert_eq!(r.status, 200, "{}", r.error());

        let all = app
            .get("/api/items:list?paginate=false&sort=-n&fields=n,label")
            .await;
        assert_eq!(all.status, 200, "{:?}", all.body);
        assert_eq!(sorted_keys(&all.body), vec!["data".to_owned()]);
        let expected: Vec<Json> = (0..ROWS).rev().map(|i| json!(i)).collect();
        assert_eq!(all.column("n"), expected);
        assert_eq!(
            sorted_keys(&all.data()[0]),
            vec!["label".to_owned(), "n".to_owned()]
        );

        // Exactly what reading page by page gives, records and attributes alike.
        let mut paged = Vec::new();
        for page in 1..=ROWS.div_ceil(1000) {
            let r = app
                .get(&format!("/api/items:list?sort=-n&fields=n,label&pageSize=1000&page={page}"))
                .await;
            paged.extend(r.data().as_array().expect("a page").iter().cloned());
        }
        assert_eq!(all.data(), &Json::Array(paged));

        // `except` and a filter go through the streamed read too.
        let r = app
            .get(&format!(
                "/api/items:list?paginate=false&sort=n&except=label&{}",
                filter(json!({"n": {"$gte": 100}}))
            ))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let expected: Vec<Json> = (100..ROWS).map(|i| json!(i)).collect();
        assert_eq!(r.column("n"), expected);
        assert!(r.data()[0].get("label").is_none(), "{:?}", r.data()[0]);
    }
}

every_backend! {
    // Foreign keys made in SQL reach the main database only.
    #[skip(mongodb, mssql)]
    async fn an_unpaginated_list_embeds_appends_in_every_batch() {
        let t = TestApp::new().await;
        let (text, id) = match t.backend {
            Backend::MariaDb => ("VARCHAR(100)", "INTEGER AUTO_INCREMENT PRIMARY KEY"),
            Backend::Postgres => ("TEXT", "SERIAL PRIMARY KEY"),
            Backend::Sqlite => ("TEXT", "INTEGER PRIMARY KEY"),
        };
        let author = if t.backend == Backend::Postgres { "\"authorId\"" } else { "authorId" };
        t.sql(&[
            &format!("CREATE TABLE people (id {id}, name {text})"),
            &format!(
                "CREATE TABLE posts (id {id}, title {text}, {author} INTEGER, \
                 FOREIGN KEY ({author}) REFERENCES people (id))"
            ),
            "INSERT INTO people (name) VALUES ('ann'), ('bo')",
        ])
        .await;
        let posts: Vec<Json> = (0..ROWS)
            .map(|i| json!({"title": format!("p{i}"), "authorId": 1 + i % 2}))
            .collect();
        let r = t.post("/api/posts:create", Json::Array(posts)).await;
        assert_eq!(r.status, 200, "{}", r.error());

        let r = t
            .get("/api/posts:list?paginate=false&sort=id&fields=id,title&appends=author")
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let rows = r.data().as_array().expect("an array of records");
        assert_eq!(rows.len(), ROWS);
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row["title"], json!(format!("p{i}")), "{row}");
            let name = if i % 2 == 0 { "ann" } else { "bo" };
            assert_eq!(row["author"]["name"], json!(name), "{row}");
        }
    }
}

every_backend! {
    // The streamed read answers a member what the paged one does: the role's scope and
    // field list hold past the first batches.
    async fn a_streamed_list_keeps_a_members_scope_and_fields() {
        let app = items_app().await;
        let r = app.post("/api/items:create", items(0..ROWS)).await;
        assert_eq!(r.status, 200, "{}", r.error());
        let key = app.source_key();
        let r = app
            .main(Method::POST, "/api/roles:create", Some(json!({"name": "reader"})))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = app
            .main(Method::POST, &format!("/api/dataSources/{key}/rolesResourcesScopes:create"),
                Some(json!({"name": "from100", "resourceName": "items", "scope": {"n": {"$gte": 100}}})))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let scope = r.data()["id"].clone();
        let r = app
            .main(Method::POST, &format!("/api/dataSources/{key}/roles:update?filterByTk=reader"),
                Some(json!({"resources": [{
                    "name": "items", "usingActionsConfig": true,
                    "actions": [{"name": "view", "fields": ["n"], "scope": {"id": scope}}]
                }]})))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let reader = app.new_user("reader", &["reader"]).await;

        let r = app
            .send_as(&format!("Bearer {reader}"), Method::GET, "/api/items:list?paginate=false&sort=n", &[], None)
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let expected: Vec<Json> = (100..ROWS).map(|i| json!(i)).collect();
        assert_eq!(r.column("n"), expected, "only the scope's rows, every one once");
        for row in r.data().as_array().expect("rows") {
            assert!(row.get("label").is_none(), "a field outside the grant: {row:?}");
        }

        // Anonymous callers get nothing, streamed or not.
        let r = app
            .anonymous(Method::GET, "/api/items:list?paginate=false", &[], None)
            .await;
        assert_eq!(r.status, 401, "{:?}", r.body);
    }
}
