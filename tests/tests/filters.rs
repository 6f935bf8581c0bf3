//! End-to-end conformance tests of the filter language and `sort` over HTTP, against the
//! spec's filters.md §1, §2.1–2.5 and §7, and conformance-cases.md §11 (FLT-*).

use manifold_tests::{TestApp, enc, every_backend, filter, posts_definition};
use serde_json::{Value as Json, json};

/// An app with one collection `name` holding a nullable field `field` of `field_type`, and
/// the given values inserted in order (ids from 1; `null` inserts a NULL).
async fn single_field_app(name: &str, field: &str, field_type: &str, values: &[Json]) -> TestApp {
    let app = TestApp::new().await;
    app.collection(json!({"name": name, "fields": [{"name": field, "type": field_type}]}))
        .await;
    for value in values {
        app.insert(name, json!({ field: value })).await;
    }
    app
}

/// `tests(name string)` with the given names.
async fn tests_app(names: &[Json]) -> TestApp {
    single_field_app("tests", "name", "string", names).await
}

/// `people(name string)` with the given names.
async fn people_app(names: &[Json]) -> TestApp {
    single_field_app("people", "name", "string", names).await
}

/// `posts(title, score, status)` with the given rows inserted in order.
async fn posts_app(rows: Json) -> TestApp {
    let app = TestApp::new().await;
    app.collection(posts_definition()).await;
    app.insert("posts", rows).await;
    app
}

/// `GET /api/<collection>:list?paginate=false&<query>`, asserting 200; the values of
/// `field` across the result, in order.
async fn list_column(app: &TestApp, collection: &str, query: &str, field: &str) -> Vec<Json> {
    let r = app
        .get(&format!("/api/{collection}:list?paginate=false&{query}"))
        .await;
    assert_eq!(r.status, 200, "{collection} {query}: {:?}", r.body);
    assert!(r.data().is_array(), "{:?}", r.body);
    r.column(field)
}

/// The `field` values of the rows of `collection` matching `f`, in id order.
async fn matching(app: &TestApp, collection: &str, f: Json, field: &str) -> Vec<Json> {
    list_column(app, collection, &filter(f), field).await
}

/// The `meta.count` of a paginated list with filter `f`, asserting 200.
async fn count_matching(app: &TestApp, collection: &str, f: Json) -> u64 {
    let r = app
        .get(&format!("/api/{collection}:list?{}", filter(f)))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["meta"]["count"].as_u64().expect("meta.count")
}

fn strs(items: &[&str]) -> Vec<Json> {
    items.iter().map(|s| json!(s)).collect()
}

// ---------------------------------------------------------------------------------------
// Equality and sets (§2.1): tests(name string)
// ---------------------------------------------------------------------------------------

every_backend! {
    async fn flt_01_eq_with_array_means_in() {
        let app = tests_app(&strs(&["123", "234", "345"])).await;
        let got = matching(&app, "tests", json!({"name.$eq": ["123", "234"]}), "name").await;
        assert_eq!(got, strs(&["123", "234"]));
    }
}

every_backend! {
    async fn flt_02_eq_scalar() {
        let app = tests_app(&strs(&["123", "234", "345"])).await;
        let got = matching(&app, "tests", json!({"name.$eq": "123"}), "name").await;
        assert_eq!(got, strs(&["123"]));
    }
}

every_backend! {
    async fn flt_03_eq_no_match() {
        let app = tests_app(&strs(&["123", "234", "345"])).await;
        let got = matching(&app, "tests", json!({"name.$eq": "456"}), "name").await;
        assert_eq!(got, Vec::<Json>::new());
        assert_eq!(
            count_matching(&app, "tests", json!({"name.$eq": "456"})).await,
            0
        );
    }
}

every_backend! {
    async fn flt_04_eq_number_on_string_compares_as_text() {
        let app = tests_app(&strs(&["123", "234", "345"])).await;
        let got = matching(&app, "tests", json!({"name.$eq": 123}), "name").await;
        assert_eq!(got, strs(&["123"]));
    }
}

every_backend! {
    async fn flt_05_eq_number_array_on_string_compares_as_text() {
        let app = tests_app(&strs(&["123", "234", "345"])).await;
        let got = matching(&app, "tests", json!({"name.$eq": [123]}), "name").await;
        assert_eq!(got, strs(&["123"]));
    }
}

every_backend! {
    async fn flt_06_ne_scalar_includes_null_rows() {
        let app = tests_app(&[Json::Null]).await;
        let got = matching(&app, "tests", json!({"name.$ne": "123"}), "id").await;
        assert_eq!(got, vec![json!(1)]);
    }
}

every_backend! {
    async fn flt_07_ne_null_means_is_not_null() {
        let app = tests_app(&[Json::Null]).await;
        let got = matching(&app, "tests", json!({"name.$ne": null}), "id").await;
        assert_eq!(got, Vec::<Json>::new());
    }
}

every_backend! {
    async fn flt_08_ne_array_means_not_in() {
        let app = tests_app(&strs(&["123", "234", "345"])).await;
        let got = matching(&app, "tests", json!({"name.$ne": ["123", "234"]}), "name").await;
        assert_eq!(got, strs(&["345"]));
    }
}

every_backend! {
    async fn flt_09_in_empty_list_matches_nothing() {
        let app = tests_app(&[Json::Null]).await;
        let got = matching(&app, "tests", json!({"name.$in": []}), "id").await;
        assert_eq!(got, Vec::<Json>::new());
    }
}

every_backend! {
    async fn flt_10_in_without_match() {
        let app = tests_app(&strs(&["test"])).await;
        let got = matching(
            &app,
            "tests",
            json!({"name.$in": ["test2", "test1"]}),
            "name",
        )
        .await;
        assert_eq!(got, Vec::<Json>::new());
    }
}

every_backend! {
    async fn flt_11_in_with_match() {
        let app = tests_app(&strs(&["test"])).await;
        let got = matching(
            &app,
            "tests",
            json!({"name.$in": ["test", "test1"]}),
            "name",
        )
        .await;
        assert_eq!(got, strs(&["test"]));
    }
}

every_backend! {
    async fn flt_12_in_null_is_no_error_and_matches_nothing() {
        let app = tests_app(&[Json::Null]).await;
        let got = matching(&app, "tests", json!({"name.$in": null}), "id").await;
        assert_eq!(got, Vec::<Json>::new());
    }
}

every_backend! {
    async fn flt_13_not_in_includes_null_rows() {
        let app = tests_app(&[Json::Null]).await;
        let got = matching(&app, "tests", json!({"name.$notIn": ["123"]}), "id").await;
        assert_eq!(got, vec![json!(1)]);
    }
}

every_backend! {
    async fn flt_14_not_in_empty_list_matches_all_rows() {
        let app = tests_app(&[Json::Null, json!("a")]).await;
        let got = matching(&app, "tests", json!({"name.$notIn": []}), "name").await;
        assert_eq!(got, vec![Json::Null, json!("a")], "Target: 2 rows");
    }
}

every_backend! {
    async fn flt_15_ne_array_includes_null_rows() {
        let app = tests_app(&[json!("a"), Json::Null]).await;
        let got = matching(&app, "tests", json!({"name.$ne": ["b"]}), "name").await;
        assert_eq!(got, vec![json!("a"), Json::Null], "Target: 2 rows");
    }
}

// ---------------------------------------------------------------------------------------
// String matching (§2.3): people(name string)
// ---------------------------------------------------------------------------------------

every_backend! {
    async fn flt_20_includes_escapes_underscore_and_percent() {
        let app = people_app(&strs(&["names of u1"])).await;
        let got = matching(&app, "people", json!({"name.$includes": "_"}), "name").await;
        assert_eq!(got, Vec::<Json>::new(), "`_` is literal, not a wildcard");

        app.insert("people", json!({"name": "a_b"})).await;
        app.insert("people", json!({"name": "50%"})).await;
        let got = matching(&app, "people", json!({"name.$includes": "_"}), "name").await;
        assert_eq!(got, strs(&["a_b"]));
        let got = matching(&app, "people", json!({"name.$includes": "%"}), "name").await;
        assert_eq!(got, strs(&["50%"]));
    }
}

every_backend! {
    async fn flt_21_includes_array_is_or() {
        let app = people_app(&strs(&["u1", "u2"])).await;
        let got = matching(
            &app,
            "people",
            json!({"name.$includes": ["u1", "u2"]}),
            "name",
        )
        .await;
        assert_eq!(got, strs(&["u1", "u2"]));
    }
}

every_backend! {
    async fn flt_22_not_includes_array_is_and() {
        let app = people_app(&strs(&["u1", "u2"])).await;
        let got = matching(
            &app,
            "people",
            json!({"name.$notIncludes": ["u1", "u2"]}),
            "name",
        )
        .await;
        assert_eq!(got, Vec::<Json>::new());
    }
}

every_backend! {
    async fn flt_23_not_includes_scalar() {
        let app = people_app(&strs(&["u1"])).await;
        let got = matching(&app, "people", json!({"name.$notIncludes": "u1"}), "name").await;
        assert_eq!(got, Vec::<Json>::new());
    }
}

every_backend! {
    async fn flt_24_starts_with_array() {
        let app = people_app(&strs(&["u1", "b1", "c1"])).await;
        let got = matching(
            &app,
            "people",
            json!({"name.$startsWith": ["u", "b"]}),
            "name",
        )
        .await;
        assert_eq!(got, strs(&["u1", "b1"]));
    }
}

every_backend! {
    async fn flt_25_not_starts_with_array() {
        let app = people_app(&strs(&["u1", "v2", "b1", "b2"])).await;
        let got = matching(
            &app,
            "people",
            json!({"name.$notStartsWith": ["u", "v"]}),
            "name",
        )
        .await;
        assert_eq!(got, strs(&["b1", "b2"]));
    }
}

every_backend! {
    async fn flt_26_end_with_array() {
        let app = people_app(&strs(&["u1", "b1", "c1", "u2"])).await;
        let got = matching(&app, "people", json!({"name.$endWith": ["1"]}), "name").await;
        assert_eq!(got, strs(&["u1", "b1", "c1"]));
    }
}

every_backend! {
    async fn flt_27_not_end_with_array() {
        let app = people_app(&strs(&["u1", "b1", "c1", "u2"])).await;
        let got = matching(&app, "people", json!({"name.$notEndWith": ["1"]}), "name").await;
        assert_eq!(got, strs(&["u2"]));
    }
}

every_backend! {
    async fn flt_28_includes_substring() {
        let app = people_app(&strs(&["names of u1", "other"])).await;
        let got = matching(&app, "people", json!({"name.$includes": "u1"}), "name").await;
        assert_eq!(got, strs(&["names of u1"]));
    }
}

every_backend! {
    async fn flt_29_includes_inside_and() {
        let app = people_app(&strs(&["names of u1", "other"])).await;
        let got = matching(
            &app,
            "people",
            json!({"$and": [{"name.$includes": "u1"}]}),
            "name",
        )
        .await;
        assert_eq!(got, strs(&["names of u1"]));
    }
}

every_backend! {
    async fn flt_30_includes_is_case_insensitive() {
        let app = people_app(&strs(&["Hello", "world"])).await;
        let got = matching(&app, "people", json!({"name.$includes": "hello"}), "name").await;
        assert_eq!(got, strs(&["Hello"]));
    }
}

every_backend! {
    async fn flt_31_not_includes_excludes_null_rows() {
        let app = people_app(&[json!("x"), Json::Null]).await;
        let got = matching(&app, "people", json!({"name.$notIncludes": "y"}), "name").await;
        assert_eq!(got, strs(&["x"]));
    }
}

// ---------------------------------------------------------------------------------------
// Raw SQL patterns (§2.3: $like, $notLike, $iLike, $notILike)
// ---------------------------------------------------------------------------------------

fn titles() -> Vec<Json> {
    vec![
        json!("Async Rust"),
        json!("async rust"),
        json!("Async Rust 2"),
        json!("Rusty"),
        json!("50% off"),
        json!("a_b"),
        Json::Null,
    ]
}

every_backend! {
    async fn flt_35_like_without_wildcards_matches_the_whole_value_only() {
        let app = people_app(&titles()).await;
        let got = matching(&app, "people", json!({"name": {"$like": "Async Rust"}}), "name").await;
        assert_eq!(got, strs(&["Async Rust"]));
    }
}

every_backend! {
    async fn flt_36_like_is_a_case_sensitive_raw_pattern() {
        let app = people_app(&titles()).await;
        let got = matching(&app, "people", json!({"name.$like": "%Rust%"}), "name").await;
        assert_eq!(got, strs(&["Async Rust", "Async Rust 2", "Rusty"]));
        let got = matching(&app, "people", json!({"name.$like": "Rust_"}), "name").await;
        assert_eq!(got, strs(&["Rusty"]));
        // `_` and `%` are wildcards; a backslash makes them literal.
        let got = matching(&app, "people", json!({"name.$like": "a_b"}), "name").await;
        assert_eq!(got, strs(&["a_b"]));
        let got = matching(&app, "people", json!({"name.$like": "50\\% %"}), "name").await;
        assert_eq!(got, strs(&["50% off"]));
        let got = matching(&app, "people", json!({"name.$like": "a\\_%"}), "name").await;
        assert_eq!(got, strs(&["a_b"]));
    }
}

every_backend! {
    async fn flt_37_ilike_ignores_case() {
        let app = people_app(&titles()).await;
        let got = matching(&app, "people", json!({"name.$iLike": "ASYNC rust"}), "name").await;
        assert_eq!(got, strs(&["Async Rust", "async rust"]));
        let got = matching(&app, "people", json!({"name.$iLike": "%RUST%"}), "name").await;
        assert_eq!(got, strs(&["Async Rust", "async rust", "Async Rust 2", "Rusty"]));
    }
}

every_backend! {
    async fn flt_38_negated_patterns_exclude_null_rows() {
        let app = people_app(&titles()).await;
        let got = matching(&app, "people", json!({"name.$notLike": "%Rust%"}), "name").await;
        assert_eq!(got, strs(&["async rust", "50% off", "a_b"]));
        let got = matching(&app, "people", json!({"name.$notILike": "%rust%"}), "name").await;
        assert_eq!(got, strs(&["50% off", "a_b"]));
    }
}

every_backend! {
    async fn flt_39_like_needs_one_pattern_string() {
        let app = people_app(&titles()).await;
        for bad in [json!(["a%", "b%"]), json!(null), json!({"x": 1})] {
            let r = app
                .get(&format!(
                    "/api/people:list?{}",
                    filter(json!({"name": {"$like": bad}}))
                ))
                .await;
            assert_eq!(r.status, 400, "{bad}: {:?}", r.body);
            assert!(r.error().contains("filter.name.$like"), "{:?}", r.body);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Emptiness and booleans (§2.4, §2.5)
// ---------------------------------------------------------------------------------------

every_backend! {
    async fn flt_40_empty_on_string_matches_empty_string() {
        let app = people_app(&strs(&["u1", ""])).await;
        let got = matching(&app, "people", json!({"name.$empty": true}), "name").await;
        assert_eq!(got, strs(&[""]));
    }
}

every_backend! {
    async fn flt_40_empty_on_string_also_matches_null() {
        let app = people_app(&[json!("u1"), json!(""), Json::Null]).await;
        let got = matching(&app, "people", json!({"name.$empty": true}), "id").await;
        assert_eq!(got, vec![json!(2), json!(3)]);
    }
}

every_backend! {
    async fn flt_41_or_of_empty_and_eq() {
        let app = people_app(&strs(&["u1", "", "u3"])).await;
        let got = matching(
            &app,
            "people",
            json!({"$or": [{"name.$empty": true}, {"name": "u1"}]}),
            "name",
        )
        .await;
        assert_eq!(got, strs(&["u1", ""]));
    }
}

every_backend! {
    async fn flt_42_not_empty_on_string() {
        let app = people_app(&[json!("u1"), json!(""), Json::Null]).await;
        let got = matching(&app, "people", json!({"name.$notEmpty": true}), "name").await;
        assert_eq!(got, strs(&["u1"]));
    }
}

every_backend! {
    async fn flt_44_is_falsy_on_boolean() {
        let app = single_field_app(
            "people",
            "activated",
            "boolean",
            &[json!(false), json!(true)],
        )
        .await;
        let got = matching(&app, "people", json!({"activated.$isFalsy": true}), "id").await;
        assert_eq!(got, vec![json!(1)]);
    }
}

every_backend! {
    async fn flt_45_is_truly_on_boolean() {
        let app = single_field_app(
            "people",
            "activated",
            "boolean",
            &[json!(false), json!(true)],
        )
        .await;
        let got = matching(&app, "people", json!({"activated.$isTruly": true}), "id").await;
        assert_eq!(got, vec![json!(2)]);
    }
}

every_backend! {
    async fn flt_44_45_null_booleans_are_falsy() {
        let app = single_field_app(
            "people",
            "activated",
            "boolean",
            &[json!(false), json!(true), Json::Null],
        )
        .await;
        let falsy = matching(&app, "people", json!({"activated.$isFalsy": true}), "id").await;
        assert_eq!(falsy, vec![json!(1), json!(3)]);
        let truly = matching(&app, "people", json!({"activated.$isTruly": true}), "id").await;
        assert_eq!(truly, vec![json!(2)]);
        // Any operand other than true / "true" flips the meaning (§2.5).
        let not_truly = matching(&app, "people", json!({"activated.$isTruly": false}), "id").await;
        assert_eq!(not_truly, vec![json!(1), json!(3)]);
        let not_falsy = matching(&app, "people", json!({"activated.$isFalsy": false}), "id").await;
        assert_eq!(not_falsy, vec![json!(2)]);
    }
}

// ---------------------------------------------------------------------------------------
// Logical groups (§2.9) and validation (§1)
// ---------------------------------------------------------------------------------------

every_backend! {
    async fn flt_103_empty_or_matches_everything() {
        let app = people_app(&strs(&["u1", "u2", "u3"])).await;
        let got = matching(&app, "people", json!({"$or": []}), "name").await;
        assert_eq!(got, strs(&["u1", "u2", "u3"]));
        assert_eq!(count_matching(&app, "people", json!({"$or": []})).await, 3);
    }
}

every_backend! {
    async fn flt_112_empty_object_condition_is_400() {
        let app = people_app(&strs(&["u1"])).await;
        let r = app
            .get(&format!("/api/people:list?{}", filter(json!({"name": {}}))))
            .await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(!r.error().is_empty(), "an error message: {:?}", r.body);
    }
}

// ---------------------------------------------------------------------------------------
// Sort (§7)
// ---------------------------------------------------------------------------------------

every_backend! {
    async fn flt_104_sort_puts_nulls_last_in_both_directions() {
        let app = single_field_app(
            "test",
            "num",
            "integer",
            &[json!(3), json!(2), Json::Null, json!(1)],
        )
        .await;
        let desc = list_column(&app, "test", "sort=-num", "num").await;
        assert_eq!(desc, vec![json!(3), json!(2), json!(1), Json::Null]);
        let asc = list_column(&app, "test", "sort=num", "num").await;
        assert_eq!(asc, vec![json!(1), json!(2), json!(3), Json::Null]);
        // The bracket array form is the same request.
        let desc = list_column(&app, "test", "sort[]=-num", "num").await;
        assert_eq!(desc, vec![json!(3), json!(2), json!(1), Json::Null]);
    }
}

every_backend! {
    async fn sort_by_several_keys() {
        let app = posts_app(json!([
            {"title": "c", "score": 2},
            {"title": "a", "score": 1},
            {"title": "e"},
            {"title": "d", "score": 3},
            {"title": "b", "score": 2}
        ]))
        .await;
        let query = format!("sort={}", enc("-score,title"));
        let got = list_column(&app, "posts", &query, "title").await;
        assert_eq!(got, strs(&["d", "b", "c", "a", "e"]));
        let got = list_column(&app, "posts", "sort[]=score&sort[]=-title", "title").await;
        assert_eq!(got, strs(&["a", "c", "b", "d", "e"]));
    }
}

every_backend! {
    async fn sort_ties_are_broken_by_id_ascending() {
        let app = posts_app(json!([
            {"title": "z", "score": 1},
            {"title": "y", "score": 1},
            {"title": "x", "score": 1}
        ]))
        .await;
        let asc = list_column(&app, "posts", "sort=score", "id").await;
        assert_eq!(asc, vec![json!(1), json!(2), json!(3)]);
        let desc = list_column(&app, "posts", "sort=-score", "id").await;
        assert_eq!(desc, vec![json!(1), json!(2), json!(3)]);
        // Also across pages: a stable order splits the ties deterministically.
        let r = app
            .get("/api/posts:list?sort=-score&pageSize=2&page=2")
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.column("title"), strs(&["x"]));
    }
}

// ---------------------------------------------------------------------------------------
// Ordering comparisons (§2.2) and existence on plain columns (§2.7)
// ---------------------------------------------------------------------------------------

every_backend! {
    async fn between_and_not_between_are_inclusive_and_skip_nulls() {
        let app = posts_app(json!([
            {"title": "s1", "score": 1},
            {"title": "s2", "score": 2},
            {"title": "s3", "score": 3},
            {"title": "none"},
            {"title": "s4", "score": 4},
            {"title": "s5", "score": 5}
        ]))
        .await;
        let got = matching(
            &app,
            "posts",
            json!({"score": {"$between": [2, 4]}}),
            "title",
        )
        .await;
        assert_eq!(got, strs(&["s2", "s3", "s4"]));
        let got = matching(&app, "posts", json!({"score.$notBetween": [2, 4]}), "title").await;
        assert_eq!(got, strs(&["s1", "s5"]));
    }
}

every_backend! {
    async fn ordering_comparisons_on_integers() {
        let app = posts_app(json!([
            {"title": "s1", "score": 1},
            {"title": "s2", "score": 2},
            {"title": "none"},
            {"title": "s3", "score": 3}
        ]))
        .await;
        let cases = [
            (json!({"score.$gt": 2}), strs(&["s3"])),
            (json!({"score.$gte": 2}), strs(&["s2", "s3"])),
            (json!({"score.$lt": 2}), strs(&["s1"])),
            (json!({"score.$lte": 2}), strs(&["s1", "s2"])),
            (json!({"score": {"$gt": 1, "$lt": 3}}), strs(&["s2"])),
        ];
        for (f, want) in cases {
            let got = matching(&app, "posts", f.clone(), "title").await;
            assert_eq!(got, want, "{f}");
        }
    }
}

every_backend! {
    async fn gt_on_datetime_compares_instants_given_as_iso_strings() {
        let app = TestApp::new().await;
        app.collection(json!({
            "name": "events",
            "fields": [
                {"name": "name", "type": "string"},
                {"name": "at", "type": "datetime"}
            ]
        }))
        .await;
        app.insert(
            "events",
            json!([
                {"name": "e2023", "at": "2023-01-01T00:00:00.000Z"},
                {"name": "mid", "at": "2023-06-01T12:00:00.000Z"},
                {"name": "e2024", "at": "2024-01-01T00:00:00.000Z"},
                {"name": "never"}
            ]),
        )
        .await;
        let got = matching(
            &app,
            "events",
            json!({"at": {"$gt": "2023-06-01T12:00:00.000Z"}}),
            "name",
        )
        .await;
        assert_eq!(got, strs(&["e2024"]));
        let got = matching(
            &app,
            "events",
            json!({"at.$gte": "2023-06-01T12:00:00.000Z"}),
            "name",
        )
        .await;
        assert_eq!(got, strs(&["mid", "e2024"]));
        // The same instant written with an offset compares equal.
        let got = matching(
            &app,
            "events",
            json!({"at.$gte": "2023-06-01T14:00:00+02:00"}),
            "name",
        )
        .await;
        assert_eq!(got, strs(&["mid", "e2024"]));
        let got = matching(
            &app,
            "events",
            json!({"at.$lt": "2023-06-01T11:59:59.999Z"}),
            "name",
        )
        .await;
        assert_eq!(got, strs(&["e2023"]));
    }
}

every_backend! {
    async fn exists_and_not_exists_on_a_plain_column() {
        let app = posts_app(json!([
            {"title": "a", "score": 1},
            {"title": "b"},
            {"title": "c", "score": 0}
        ]))
        .await;
        let got = matching(&app, "posts", json!({"score": {"$exists": true}}), "title").await;
        assert_eq!(got, strs(&["a", "c"]));
        let got = matching(
            &app,
            "posts",
            json!({"score": {"$notExists": true}}),
            "title",
        )
        .await;
        assert_eq!(got, strs(&["b"]));
    }
}

// ---------------------------------------------------------------------------------------
// qs bracket form (filters.md §1, http-api.md §4.2)
// ---------------------------------------------------------------------------------------

every_backend! {
    async fn qs_bracket_filter_compares_string_values_as_integers() {
        let app = posts_app(json!([
            {"title": "two", "score": 2},
            {"title": "three", "score": 3},
            {"title": "ten", "score": 10},
            {"title": "twenty-five", "score": 25}
        ]))
        .await;
        // As text, "10" and "25" would sort before "3"; as integers they are greater.
        let query = format!("{}=3", enc("filter[score][$gt]"));
        let got = list_column(&app, "posts", &query, "title").await;
        assert_eq!(got, strs(&["ten", "twenty-five"]));

        let query = format!(
            "{}=3&{}=ten",
            enc("filter[score][$gte]"),
            enc("filter[title]")
        );
        let got = list_column(&app, "posts", &query, "title").await;
        assert_eq!(got, strs(&["ten"]));

        // Implicit equality on an integer from a string value.
        let query = format!("{}=10", enc("filter[score]"));
        let got = list_column(&app, "posts", &query, "title").await;
        assert_eq!(got, strs(&["ten"]));
    }
}

// ---------------------------------------------------------------------------------------
// Spellings (§1): nested, dotted and implicit forms agree
// ---------------------------------------------------------------------------------------

every_backend! {
    async fn nested_dotted_and_implicit_forms_agree() {
        let app = people_app(&strs(&["a", "b", "c"])).await;
        for f in [
            json!({"name": {"$eq": "b"}}),
            json!({"name.$eq": "b"}),
            json!({"name": "b"}),
            json!({"$and": [{"name": "b"}]}),
            json!({"$or": [{"name": "b"}, {"name": "zzz"}]}),
        ] {
            let got = matching(&app, "people", f.clone(), "name").await;
            assert_eq!(got, strs(&["b"]), "{f}");
        }
        let got = matching(&app, "people", json!({"name": null}), "name").await;
        assert_eq!(got, Vec::<Json>::new(), "implicit null is IS NULL");
        let got = matching(&app, "people", json!({"name": ["a", "c"]}), "name").await;
        assert_eq!(got, strs(&["a", "c"]), "an array without operator is IN");
    }
}
