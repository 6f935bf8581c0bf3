//! Bad input gets a clear 4xx JSON error naming the bad part, and the service keeps serving.

use manifold_tests::{Backend, TestApp, enc, every_backend, filter, posts_definition};
use poem::http::Method;
use serde_json::{Value as Json, json};

async fn app_with_posts() -> TestApp {
    let t = TestApp::new().await;
    t.collection(posts_definition()).await;
    t.insert(
        "posts",
        json!([{"title": "a", "score": 1}, {"title": "b", "score": 2}]),
    )
    .await;
    t
}

/// A bad request: what it is, how it is sent, and the status and message it must get.
type Case<'a> = (&'a str, Method, String, Option<&'a [u8]>, u16, &'a str);

every_backend! {
    async fn each_bad_request_is_a_4xx_naming_the_problem_and_the_data_survives() {
        let t = app_with_posts().await;
        let json_type = [("content-type", "application/json")];
        let cases: Vec<Case> = vec![
            (
                "malformed JSON body",
                Method::POST,
                "/api/posts:create".into(),
                Some(b"{\"title\": ".as_slice()),
                400,
                "Invalid JSON body",
            ),
            (
                "scalar JSON body",
                Method::POST,
                "/api/posts:create".into(),
                Some(b"\"x\"".as_slice()),
                400,
                "invalid JSON, only supports object and array",
            ),
            (
                "malformed filter",
                Method::GET,
                format!("/api/posts:list?filter={}", enc("{\"title\":")),
                None,
                400,
                "Invalid filter",
            ),
            (
                "filter nested past serde_json's limit",
                Method::GET,
                format!(
                    "/api/posts:list?filter={}",
                    enc(&format!("{}{}", "{\"$and\":[".repeat(200), "]}".repeat(200)))
                ),
                None,
                400,
                "Invalid filter: nested too deeply",
            ),
            (
                "appends deeper than the limit",
                Method::GET,
                "/api/posts:list?appends=a.b.c.d.e".into(),
                None,
                400,
                "appends: a.b.c.d.e goes through more than 4 relations",
            ),
            (
                "filter not an object",
                Method::GET,
                format!("/api/posts:list?filter={}", enc("[1]")),
                None,
                400,
                "Invalid filter: expected a JSON object",
            ),
            (
                "unknown field in filter",
                Method::GET,
                format!("/api/posts:list?{}", filter(json!({"nope": 1}))),
                None,
                400,
                "filter.nope: unknown field \"nope\" in collection posts",
            ),
            (
                "unknown nested field",
                Method::GET,
                format!(
                    "/api/posts:list?{}",
                    filter(json!({"$or": [{"title": "a"}, {"nope.$gt": 1}]}))
                ),
                None,
                400,
                "filter.$or.1.nope.$gt: unknown field \"nope\"",
            ),
            (
                "unknown operator",
                Method::GET,
                format!(
                    "/api/posts:list?{}",
                    filter(json!({"score": {"$col": "id"}}))
                ),
                None,
                400,
                "filter.score.$col: unknown operator \"$col\"",
            ),
            (
                "wrong type in filter",
                Method::GET,
                format!(
                    "/api/posts:list?{}",
                    filter(json!({"score": {"$gt": "abc"}}))
                ),
                None,
                400,
                "filter.score.$gt: expected an integer, got \"abc\"",
            ),
            (
                "unknown sort field",
                Method::GET,
                "/api/posts:list?sort=-nope".into(),
                None,
                400,
                "sort: unknown field \"nope\" in collection posts",
            ),
            (
                "hostile sort key",
                Method::GET,
                format!("/api/posts:list?sort={}", enc("id; DROP TABLE posts; --")),
                None,
                400,
                "sort: unknown field \"id; DROP TABLE posts; --\"",
            ),
            (
                "unknown fields entry",
                Method::GET,
                "/api/posts:list?fields=id,nope".into(),
                None,
                400,
                "fields: unknown field \"nope\" in collection posts",
            ),
            (
                "unknown except entry",
                Method::GET,
                "/api/posts:list?except=nope".into(),
                None,
                400,
                "except: unknown field \"nope\"",
            ),
            (
                "wrong type in values",
                Method::POST,
                "/api/posts:create".into(),
                Some(br#"{"title": "t", "score": "many"}"#.as_slice()),
                400,
                "values.score: expected an integer, got \"many\"",
            ),
            (
                "wrong type in an array of values",
                Method::POST,
                "/api/posts:create".into(),
                Some(br#"[{"title": "t"}, {"score": [1]}]"#.as_slice()),
                400,
                "values.1.score: expected an integer",
            ),
            (
                "huge pageSize",
                Method::GET,
                "/api/posts:list?pageSize=1000000".into(),
                None,
                400,
                "pageSize 1000000 is larger than the maximum of 1000",
            ),
            (
                "pageSize not a number",
                Method::GET,
                "/api/posts:list?pageSize=ten".into(),
                None,
                400,
                "pageSize: expected a positive integer",
            ),
            (
                "pageSize zero",
                Method::GET,
                "/api/posts:list?pageSize=0".into(),
                None,
                400,
                "pageSize: expected a positive integer",
            ),
            (
                "page not a number",
                Method::GET,
                "/api/posts:list?page=x".into(),
                None,
                400,
                "page: expected an integer",
            ),
            (
                "filterByTk of the wrong type",
                Method::GET,
                "/api/posts:get/abc".into(),
                None,
                400,
                "filterByTk: expected an integer, got \"abc\"",
            ),
            (
                "update without a target",
                Method::POST,
                "/api/posts:update".into(),
                Some(br#"{"title": "x"}"#.as_slice()),
                400,
                "to do update action, filter or filterByTk is required",
            ),
            (
                "destroy with an empty filter",
                Method::POST,
                format!("/api/posts:destroy?{}", filter(json!({}))),
                None,
                400,
                "Invalid filter: {} has no condition",
            ),
            (
                "malformed percent-encoding in the query",
                Method::GET,
                "/api/posts:list?sort=%zz".into(),
                None,
                400,
                "malformed percent-encoding",
            ),
        ];
        for (case, method, path, body, status, message) in cases {
            let r = t
                .send(method, &path, &json_type, body.map(<[u8]>::to_vec))
                .await;
            assert_eq!(r.status, status, "{case}: {:?}", r.body);
            assert!(
                r.error().starts_with(message),
                "{case}: expected a message starting {message:?}, got {:?}",
                r.error()
            );
            // The service keeps serving and nothing was changed.
            let list = t.get("/api/posts:list?sort=id").await;
            assert_eq!(list.status, 200, "{case}: after the bad request");
            assert_eq!(list.column("title"), [json!("a"), json!("b")], "{case}");
        }
    }
}

#[tokio::test]
async fn an_unknown_data_source_is_a_404_and_the_service_keeps_serving() {
    let t = app_with_posts().await;
    let r = t
        .send(
            Method::GET,
            "/api/posts:list",
            &[("X-Data-Source", "warehouse")],
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error(), "data source warehouse does not exist");
    assert_eq!(t.get("/api/posts:list").await.status, 200);
}

every_backend! {
    async fn a_failed_array_create_writes_nothing() {
        let t = TestApp::new().await;
        t.collection(json!({
            "name": "people",
            "fields": [{"name": "name", "type": "string", "unique": true, "allowNull": false}]
        }))
        .await;
        t.insert("people", json!({"name": "taken"})).await;
        let r = t
            .post(
                "/api/people:create",
                json!([{"name": "fresh"}, {"name": "taken"}]),
            )
            .await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(r.error(), "name already exists");
        let names = t.get("/api/people:list").await.column("name");
        assert_eq!(names, [json!("taken")], "the first row was rolled back");
        let r = t.post("/api/people:create", json!({})).await;
        assert_eq!((r.status, r.error()), (400, "name cannot be null"));
    }
}

#[tokio::test]
async fn bad_collection_definitions_are_refused() {
    let t = TestApp::new().await;
    t.collection(posts_definition()).await;
    let cases = [
        (
            json!({"fields": []}),
            400,
            "values.name: a collection name is required",
        ),
        (
            json!({"name": "bad name"}),
            400,
            "collection name \"bad name\" is not a valid name",
        ),
        (
            json!({"name": "x\"; DROP TABLE posts; --"}),
            400,
            "collection name",
        ),
        (
            json!({"name": "sqlite_master"}),
            400,
            "collection name \"sqlite_master\" is reserved",
        ),
        (
            json!({"name": "t", "fields": [{"name": "a", "type": "money"}]}),
            400,
            "values.fields.0.type: unknown field type \"money\"",
        ),
        (
            json!({"name": "t", "fields": [{"name": "a", "type": "string"}, {"name": "a", "type": "text"}]}),
            400,
            "values.fields.1.name: field \"a\" is defined twice",
        ),
        (
            json!({"name": "t", "fields": [{"name": "id", "type": "integer"}]}),
            400,
            "values.fields.0.name: \"id\" is added automatically",
        ),
        (
            json!({"name": "t", "fields": [{"name": "n", "type": "integer", "defaultValue": "x"}]}),
            400,
            "values.fields.0.defaultValue: expected an integer",
        ),
        (
            json!({"name": "posts"}),
            409,
            "collection posts already exists",
        ),
    ];
    for (definition, status, message) in cases {
        let r = t.post("/api/collections:create", definition.clone()).await;
        assert_eq!(r.status, status, "{definition}: {:?}", r.body);
        assert!(
            r.error().starts_with(message),
            "{definition}: {}",
            r.error()
        );
    }
    assert_eq!(t.get("/api/posts:list").await.status, 200);
}

every_backend! {
    async fn text_operators_with_an_empty_list_are_answered_not_500() {
        let t = app_with_posts().await;
        t.insert("posts", json!([{"score": 3}])).await;
        for (op, titles) in [
            ("$includes", vec![]),
            ("$startsWith", vec![]),
            ("$endWith", vec![]),
            ("$notIncludes", vec![json!("a"), json!("b")]),
            ("$notStartsWith", vec![json!("a"), json!("b")]),
            ("$notEndWith", vec![json!("a"), json!("b")]),
        ] {
            let r = t
                .get(&format!("/api/posts:list?sort=id&{}", filter(json!({"title": {op: []}}))))
                .await;
            assert_eq!(r.status, 200, "{op}: {:?}", r.body);
            assert_eq!(r.column("title"), titles, "{op}: nothing, or every non-NULL title");
        }
    }
}

every_backend! {
    async fn long_lists_and_many_branches_answer_like_short_ones() {
        let t = app_with_posts().await;
        // Short items keep the URL under the 64 KiB an HTTP client will send.
        let many = 1_000;
        let titles: Vec<_> = (0..many).map(|i| json!(format!("n{i}"))).collect();
        let mut with_b = titles.clone();
        with_b.push(json!("b"));
        let mut branches: Vec<_> = (10..10 + many).map(|score| json!({"score": score})).collect();
        branches.push(json!({"score": 2}));
        let cases = [
            ("$or of 1,001 branches", json!({"$or": branches}), vec![json!("b")]),
            ("$includes of 1,001 items", json!({"title": {"$includes": with_b}}), vec![json!("b")]),
            ("$notIncludes of 1,000 items", json!({"title": {"$notIncludes": titles}}), vec![json!("a"), json!("b")]),
            ("$startsWith of 1,001 items", json!({"title": {"$startsWith": with_b}}), vec![json!("b")]),
            ("$in of 1,001 items", json!({"title": {"$in": with_b}}), vec![json!("b")]),
        ];
        for (what, f, expected) in cases {
            let r = t.get(&format!("/api/posts:list?sort=id&paginate=false&{}", filter(f))).await;
            assert_eq!(r.status, 200, "{what}: {:?}", r.body);
            assert_eq!(r.column("title"), expected, "{what}");
        }
        let too_many = vec![1; 10_001];
        let r = t
            .get(&format!("/api/posts:list?{}", filter(json!({"id": {"$in": too_many}}))))
            .await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(r.error().contains("more than 10000 values"), "{}", r.error());
    }
}

every_backend! {
    async fn dates_outside_the_years_0000_to_9999_are_a_400() {
        let t = TestApp::new().await;
        t.collection(json!({"name": "events", "fields": [
            {"name": "at", "type": "datetime"},
            {"name": "local", "type": "datetimeNoTz"},
            {"name": "day", "type": "date"}
        ]}))
        .await;
        t.insert("events", json!({"at": "2023-01-02T00:00:00Z", "local": "2023-01-02 00:00:00", "day": "2023-01-02"}))
            .await;
        // chrono reads signed and longer years, which MySQL cannot bind (it was a 500).
        for (field, text) in [
            ("at", "-000001-01-01"),
            ("local", "-000001-01-01"),
            ("local", "-0001-01-01 00:00:00"),
            ("day", "-001-01-01"),
            ("at", "+10000-01-01"),
        ] {
            let r = t
                .get(&format!("/api/events:list?{}", filter(json!({ field: {"$gte": text} }))))
                .await;
            assert_eq!(r.status, 400, "{field} {text}: {:?}", r.body);
            assert!(r.error().starts_with(&format!("filter.{field}.$gte: expected")), "{}", r.error());
            let r = t.post("/api/events:create", json!({ field: text })).await;
            assert_eq!(r.status, 400, "{field} {text}: {:?}", r.body);
            assert!(r.error().starts_with(&format!("values.{field}: expected")), "{}", r.error());
        }
        let r = t.get(&format!("/api/events:list?{}", filter(json!({"at": {"$gte": "1000-01-01"}})))).await;
        assert_eq!((r.status, r.column("day")), (200, vec![json!("2023-01-02")]), "{:?}", r.body);
        assert_eq!(t.count("events").await, 1);
    }
}

every_backend! {
    async fn scalars_compared_with_a_json_field_are_answered() {
        let t = TestApp::new().await;
        t.collection(json!({"name": "docs", "fields": [{"name": "j", "type": "json"}]}))
            .await;
        t.insert("docs", json!([{"j": 1}, {"j": 5}, {"j": [1, 2]}, {"j": {"a": 1}}]))
            .await;
        // On SQL sources a JSON value equals another JSON value. MongoDB's own rule also
        // matches an array holding the value, so there only the status is checked.
        let sql = manifold_tests::current_external().is_none();
        for (f, expected) in [
            (json!({"j": 1}), vec![1]),
            (json!({"j": [1, 2]}), vec![3]),
            (json!({"j": {"$eq": {"a": 1}}}), vec![4]),
            (json!({"j": {"$ne": 1}}), vec![2, 3, 4]),
            (json!({"j": {"$in": [5, 7]}}), vec![2]),
            (json!({"j": {"$notIn": [5, 7]}}), vec![1, 3, 4]),
        ] {
            let r = t.get(&format!("/api/docs:list?sort=id&paginate=false&{}", filter(f.clone()))).await;
            assert_eq!(r.status, 200, "{f}: {:?}", r.body);
            if sql {
                let ids: Vec<_> = expected.iter().map(|i| json!(i)).collect();
                assert_eq!(r.column("id"), ids, "{f}");
            }
        }
        // Order between JSON values differs per database (MariaDB keeps JSON as text); the
        // promise is an answer, not a 500.
        for op in ["$lte", "$gt"] {
            let r = t.get(&format!("/api/docs:list?{}", filter(json!({"j": {op: 1}})))).await;
            assert_eq!(r.status, 200, "{op}: {:?}", r.body);
        }
    }
}

every_backend! {
    // The main databases' automatic keys; a registered source numbers its own way.
    #[skip(mongodb, mssql)]
    async fn an_explicit_largest_key_leaves_later_creates_a_clear_answer() {
        let t = app_with_posts().await;
        let r = t.post("/api/posts:create", json!({"id": i64::MAX, "title": "last"})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        // SQLite's AUTOINCREMENT and MariaDB's AUTO_INCREMENT follow the largest key and
        // have no value left (it was a 500); PostgreSQL's identity keeps its own sequence.
        let r = t.post("/api/posts:create", json!({"title": "next"})).await;
        match t.backend {
            Backend::Postgres => assert_eq!(r.status, 200, "{:?}", r.body),
            Backend::Sqlite => {
                assert_eq!(r.status, 409, "{:?}", r.body);
                assert!(r.error().starts_with("the database is full: the automatic key has reached its largest value"), "{}", r.error());
            }
            Backend::MariaDb => {
                assert_eq!(r.status, 409, "{:?}", r.body);
                assert!(r.error().starts_with("id: the automatic key has reached the largest value"), "{}", r.error());
            }
        }
        let r = t.post("/api/posts:create", json!({"id": 10, "title": "keyed"})).await;
        assert_eq!(r.status, 200, "an explicit key still works: {:?}", r.body);
    }
}

every_backend! {
    // The main databases' automatic keys; a registered source numbers its own way.
    #[skip(mongodb, mssql)]
    async fn a_key_of_zero_is_stored_as_zero() {
        let t = app_with_posts().await;
        // MySQL read 0 as "the next AUTO_INCREMENT value", and the write could not read
        // its row back by key 0 (a 500).
        let r = t.post("/api/posts:create", json!({"id": 0, "title": "zero"})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!((r.data()["id"].clone(), r.data()["title"].clone()), (json!(0), json!("zero")));
        let r = t.post("/api/posts:firstOrCreate?filterKeys[]=title", json!({"id": 0, "title": "again"})).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(r.error().ends_with("already exists"), "{}", r.error());
        let r = t.post("/api/posts:create", json!({"title": "next"})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let ids: Vec<Json> = t.get("/api/posts:list?sort=id").await.column("id");
        assert_eq!(ids.len(), 4);
        assert_eq!(ids[0], json!(0));
    }
}
