//! End-to-end conformance tests of the built-in collection actions (`list`, `get`, `create`,
//! `update`, `destroy`, `firstOrCreate`, `updateOrCreate`) over HTTP, against the spec's
//! actions.md §3–§8 and conformance-cases.md §5.1–5.5 and §5.7.

use manifold_tests::{TestApp, enc, every_backend, filter, posts_definition};
use serde_json::{Value as Json, json};

/// An app with the `posts` fixture and the given rows inserted in order (ids from 1).
async fn posts_app(rows: Json) -> TestApp {
    let app = TestApp::new().await;
    app.collection(posts_definition()).await;
    if rows.as_array().is_some_and(|r| !r.is_empty()) {
        app.insert("posts", rows).await;
    }
    app
}

/// The titles of every post, in id order, read with `paginate=false`.
async fn titles(app: &TestApp) -> Vec<Json> {
    let r = app.get("/api/posts:list?paginate=false").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.column("title")
}

/// The sorted keys of a JSON object.
fn keys(record: &Json) -> Vec<String> {
    let mut keys: Vec<String> = record
        .as_object()
        .expect("a record object")
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// Whether `s` is an instant in the API's canonical form `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn is_iso_millis(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            23 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

// ---------------------------------------------------------------------------------------
// list (§3, LST-*)
// ---------------------------------------------------------------------------------------

every_backend! {
    async fn lst_01_fields_page_and_sort_select_one_row() {
        let app = posts_app(json!([{"title": "pt1"}, {"title": "pt2"}, {"title": "pt3"}])).await;
        let r = app
            .get("/api/posts:list?fields[]=id&pageSize=1&page=2&sort[]=id")
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(
            r.body,
            json!({
                "data": [{"id": 2}],
                "meta": {"count": 3, "page": 2, "pageSize": 1, "totalPage": 3}
            })
        );
    }
}

every_backend! {
    async fn lst_02_paginate_false_returns_all_rows_without_meta() {
        let app = posts_app(json!([{"title": "pt1"}, {"title": "pt2"}, {"title": "pt3"}])).await;
        let r = app.get("/api/posts:list?paginate=false").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data().as_array().expect("data is an array").len(), 3);
        assert!(
            r.body.get("meta").is_none(),
            "no meta expected: {:?}",
            r.body
        );
        assert_eq!(
            r.column("title"),
            vec![json!("pt1"), json!("pt2"), json!("pt3")]
        );
        let body_keys = keys(&r.body);
        assert_eq!(body_keys, vec!["data".to_owned()]);
    }
}

every_backend! {
    async fn lst_03_04_simple_paginate_reports_has_next_without_count() {
        let app = TestApp::new().await;
        app.collection(json!({"name": "items", "fields": [{"name": "label", "type": "string"}]}))
            .await;
        app.insert(
            "items",
            json!([{"label": "a"}, {"label": "b"}, {"label": "c"}]),
        )
        .await;

        let r = app
            .get("/api/items:list?fields[]=id&pageSize=1&page=2&simplePaginate=true")
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(
            r.body,
            json!({"data": [{"id": 2}], "meta": {"page": 2, "pageSize": 1, "hasNext": true}})
        );

        let r = app
            .get("/api/items:list?fields[]=id&pageSize=1&page=3&simplePaginate=true")
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(
            r.body,
            json!({"data": [{"id": 3}], "meta": {"page": 3, "pageSize": 1, "hasNext": false}})
        );
    }
}

every_backend! {
    async fn lst_06_default_meta_and_id_order() {
        // Inserted one at a time with titles out of alphabetical order, so id order is visible.
        let app = posts_app(json!([])).await;
        for title in ["c", "a", "b"] {
            app.insert("posts", json!({"title": title})).await;
        }
        let r = app.get("/api/posts:list").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(
            r.body["meta"],
            json!({"count": 3, "page": 1, "pageSize": app.default_page_size(), "totalPage": 1})
        );
        assert_eq!(r.column("id"), vec![json!(1), json!(2), json!(3)]);
        assert_eq!(r.column("title"), vec![json!("c"), json!("a"), json!("b")]);
        assert_eq!(keys(&r.body), vec!["data".to_owned(), "meta".to_owned()]);
    }
}

every_backend! {
    async fn lst_08_list_ignores_filter_by_tk_in_path() {
        let app = posts_app(json!([{"title": "pt1"}, {"title": "pt2"}, {"title": "pt3"}])).await;
        let r = app.get("/api/posts:list/1").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.column("id"), vec![json!(1), json!(2), json!(3)]);
        assert_eq!(r.body["meta"]["count"], json!(3));
    }
}

every_backend! {
    async fn lst_page_zero_clamps_to_first_page() {
        let app = posts_app(json!([{"title": "pt1"}, {"title": "pt2"}, {"title": "pt3"}])).await;
        let r = app.get("/api/posts:list?page=0&pageSize=2").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(
            r.body["meta"],
            json!({"count": 3, "page": 1, "pageSize": 2, "totalPage": 2})
        );
        assert_eq!(r.column("title"), vec![json!("pt1"), json!("pt2")]);
    }
}

every_backend! {
    async fn lst_empty_collection_meta() {
        let app = posts_app(json!([])).await;
        let r = app.get("/api/posts:list").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(
            r.body,
            json!({"data": [], "meta": {"count": 0, "page": 1, "pageSize": app.default_page_size(), "totalPage": 0}})
        );
    }
}

every_backend! {
    async fn lst_paginate_false_on_empty_collection_is_bare_empty_array() {
        let app = posts_app(json!([])).await;
        let r = app.get("/api/posts:list?paginate=false").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body, json!({"data": []}));
    }
}

// ---------------------------------------------------------------------------------------
// get (§4, GET-*)
// ---------------------------------------------------------------------------------------

every_backend! {
    async fn get_01_by_path_index() {
        let app = posts_app(json!([{"title": "p0"}, {"title": "p1"}])).await;
        let r = app.get("/api/posts:get/2").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data()["id"], json!(2));
        assert_eq!(r.data()["title"], json!("p1"));
        assert_eq!(r.data()["status"], json!("draft"));
    }
}

every_backend! {
    async fn get_05_missing_record_is_data_null() {
        let app = posts_app(json!([{"title": "p1"}])).await;
        let r = app.get("/api/posts:get/999").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body, json!({"data": null}));
    }
}

every_backend! {
    async fn get_06_without_key_returns_first_record() {
        let app = posts_app(json!([{"title": "p1"}, {"title": "p2"}])).await;
        let r = app.get("/api/posts:get").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data()["id"], json!(1));
        assert_eq!(r.data()["title"], json!("p1"));
    }
}

every_backend! {
    async fn get_with_fields_returns_only_those_attributes() {
        let app = posts_app(json!([{"title": "p0", "score": 7}])).await;
        let r = app
            .get("/api/posts:get/1?fields[]=title&fields[]=score")
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body, json!({"data": {"title": "p0", "score": 7}}));

        // The comma-separated form is the same list.
        let r = app
            .get(&format!("/api/posts:get/1?fields={}", enc("id,title")))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body, json!({"data": {"id": 1, "title": "p0"}}));
    }
}

every_backend! {
    async fn get_with_except_drops_those_attributes() {
        let app = posts_app(json!([{"title": "p0", "score": 7}])).await;
        let r = app
            .get("/api/posts:get/1?except[]=createdAt&except[]=updatedAt")
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(
            r.body,
            json!({"data": {"id": 1, "title": "p0", "score": 7, "status": "draft"}})
        );
    }
}

every_backend! {
    async fn get_combines_filter_by_tk_and_filter() {
        let app = posts_app(json!([{"title": "p0", "score": 1}, {"title": "p1", "score": 2}])).await;
        let r = app
            .get(&format!("/api/posts:get/2?{}", filter(json!({"score": 2}))))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data()["title"], json!("p1"));
        let r = app
            .get(&format!("/api/posts:get/2?{}", filter(json!({"score": 1}))))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body, json!({"data": null}));
    }
}

// ---------------------------------------------------------------------------------------
// create (§5, CRE-*)
// ---------------------------------------------------------------------------------------

every_backend! {
    async fn cre_01_create_fills_default_status() {
        let app = posts_app(json!([])).await;
        let r = app.post("/api/posts:create", json!({"title": "t1"})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data()["id"], json!(1));
        assert_eq!(r.data()["title"], json!("t1"));
        assert_eq!(r.data()["status"], json!("draft"));
        assert_eq!(r.data()["score"], json!(null));
        assert_eq!(app.count("posts").await, 1);
        assert_eq!(titles(&app).await, vec![json!("t1")]);
        let stored = app.get("/api/posts:get/1").await;
        assert_eq!(
            stored.data(),
            r.data(),
            "the response is the record as stored"
        );
    }
}

every_backend! {
    async fn cre_04_create_without_body_uses_defaults() {
        let app = posts_app(json!([])).await;
        let r = app.post_empty("/api/posts:create").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data()["id"], json!(1));
        assert_eq!(r.data()["title"], json!(null));
        assert_eq!(r.data()["status"], json!("draft"));
        assert_eq!(app.count("posts").await, 1);
    }
}

every_backend! {
    async fn create_with_array_body_creates_each_and_returns_array() {
        let app = posts_app(json!([])).await;
        let r = app
            .post(
                "/api/posts:create",
                json!([{"title": "a", "score": 1}, {"title": "b", "status": "published"}]),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let data = r.data().as_array().expect("data is an array");
        assert_eq!(data.len(), 2);
        assert_eq!(r.column("id"), vec![json!(1), json!(2)]);
        assert_eq!(r.column("title"), vec![json!("a"), json!("b")]);
        assert_eq!(r.column("score"), vec![json!(1), json!(null)]);
        assert_eq!(r.column("status"), vec![json!("draft"), json!("published")]);
        assert_eq!(titles(&app).await, vec![json!("a"), json!("b")]);
    }
}

every_backend! {
    async fn create_with_array_body_is_one_transaction() {
        let app = TestApp::new().await;
        app.collection(json!({
            "name": "codes",
            "fields": [{"name": "code", "type": "string", "unique": true}]
        }))
        .await;
        let r = app
            .post(
                "/api/codes:create",
                json!([{"code": "x"}, {"code": "y"}, {"code": "x"}]),
            )
            .await;
        assert_eq!(r.status, 400, "a unique violation is a 400: {:?}", r.body);
        assert!(!r.error().is_empty(), "an error message: {:?}", r.body);
        assert_eq!(app.count("codes").await, 0, "nothing of the batch is kept");
    }
}

every_backend! {
    async fn create_ignores_unknown_keys() {
        let app = posts_app(json!([])).await;
        let r = app
            .post(
                "/api/posts:create",
                json!({"title": "t1", "nope": 1, "other": {"a": 1}}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data()["title"], json!("t1"));
        assert!(r.data().get("nope").is_none(), "{:?}", r.body);
        assert!(r.data().get("other").is_none(), "{:?}", r.body);
        assert_eq!(
            keys(r.data()),
            ["createdAt", "id", "score", "status", "title", "updatedAt"]
        );
        assert_eq!(app.count("posts").await, 1);
    }
}

every_backend! {
    async fn create_fills_timestamps_in_iso_millis_form() {
        let app = posts_app(json!([])).await;
        let r = app.post("/api/posts:create", json!({"title": "t1"})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        for field in ["createdAt", "updatedAt"] {
            let value = r.data()[field].as_str().unwrap_or_default();
            assert!(is_iso_millis(value), "{field} = {:?}", r.data()[field]);
        }
        let stored = app.get("/api/posts:get/1").await;
        for field in ["createdAt", "updatedAt"] {
            let value = stored.data()[field].as_str().unwrap_or_default();
            assert!(
                is_iso_millis(value),
                "stored {field} = {:?}",
                stored.data()[field]
            );
            assert_eq!(stored.data()[field], r.data()[field]);
        }
    }
}

// ---------------------------------------------------------------------------------------
// update (§6, UPD-*)
// ---------------------------------------------------------------------------------------

every_backend! {
    async fn upd_01_update_by_tk_returns_array() {
        let app = posts_app(json!([{"title": "p1"}])).await;
        let r = app
            .post("/api/posts:update/1", json!({"title": "p0"}))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let data = r.data().as_array().expect("data is an array");
        assert_eq!(data.len(), 1);
        assert_eq!(data[0]["id"], json!(1));
        assert_eq!(data[0]["title"], json!("p0"));
        assert_eq!(data[0]["status"], json!("draft"));
        let stored = app.get("/api/posts:get/1").await;
        assert_eq!(stored.data()["title"], json!("p0"));
    }
}

every_backend! {
    async fn upd_06_update_matching_nothing_is_empty_array() {
        let app = posts_app(json!([{"title": "p1"}])).await;
        let r = app
            .post("/api/posts:update/999", json!({"title": "x"}))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body, json!({"data": []}));
        assert_eq!(titles(&app).await, vec![json!("p1")]);
    }
}

every_backend! {
    async fn upd_07_update_with_tk_and_empty_filter_is_400() {
        let app = posts_app(json!([{"title": "p1"}])).await;
        let r = app
            .post(
                &format!("/api/posts:update/1?{}", filter(json!({}))),
                json!({"title": "x"}),
            )
            .await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(!r.error().is_empty(), "an error message: {:?}", r.body);
        assert_eq!(titles(&app).await, vec![json!("p1")], "nothing changed");
    }
}

every_backend! {
    async fn update_with_filter_only_updates_matching_rows() {
        let app = posts_app(json!([
            {"title": "a", "score": 1},
            {"title": "b", "score": 5},
            {"title": "c", "score": 9}
        ]))
        .await;
        let r = app
            .post(
                &format!("/api/posts:update?{}", filter(json!({"score": {"$gt": 2}}))),
                json!({"status": "published"}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.column("title"), vec![json!("b"), json!("c")]);
        assert_eq!(
            r.column("status"),
            vec![json!("published"), json!("published")]
        );
        let all = app.get("/api/posts:list?paginate=false").await;
        assert_eq!(
            all.column("status"),
            vec![json!("draft"), json!("published"), json!("published")]
        );
    }
}

every_backend! {
    async fn update_without_filter_is_400_and_force_update_updates_all() {
        let app = posts_app(json!([{"title": "a"}, {"title": "b"}, {"title": "c"}])).await;

        let r = app.post("/api/posts:update", json!({"status": "x"})).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(
            r.error(),
            "to do update action, filter or filterByTk is required"
        );
        let all = app.get("/api/posts:list?paginate=false").await;
        assert_eq!(
            all.column("status"),
            vec![json!("draft"), json!("draft"), json!("draft")]
        );

        let r = app
            .post("/api/posts:update?forceUpdate=true", json!({"status": "x"}))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.column("id"), vec![json!(1), json!(2), json!(3)]);
        assert_eq!(r.column("status"), vec![json!("x"), json!("x"), json!("x")]);
        let all = app.get("/api/posts:list?paginate=false").await;
        assert_eq!(
            all.column("status"),
            vec![json!("x"), json!("x"), json!("x")]
        );
        assert_eq!(
            all.column("title"),
            vec![json!("a"), json!("b"), json!("c")]
        );
    }
}

// ---------------------------------------------------------------------------------------
// destroy (§7, DES-*)
// ---------------------------------------------------------------------------------------

every_backend! {
    async fn des_01_destroy_by_tk_returns_count() {
        let app = posts_app(json!([{"title": "p1"}])).await;
        let r = app.post_empty("/api/posts:destroy/1").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body, json!({"data": 1}));
        assert_eq!(app.count("posts").await, 0);
    }
}

every_backend! {
    async fn des_05_destroy_without_tk_or_filter_is_400() {
        let app = posts_app(json!([{"title": "p1"}])).await;
        let r = app.post_empty("/api/posts:destroy").await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(
            r.error(),
            "to do destroy action, filter or filterByTk is required"
        );
        assert_eq!(app.count("posts").await, 1);
    }
}

every_backend! {
    async fn des_07_destroy_several_tks() {
        let app = posts_app(json!([{"title": "p1"}, {"title": "p2"}, {"title": "p3"}])).await;
        let r = app
            .post_empty("/api/posts:destroy?filterByTk[]=1&filterByTk[]=3")
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body, json!({"data": 2}));
        assert_eq!(titles(&app).await, vec![json!("p2")]);
    }
}

every_backend! {
    async fn destroy_with_filter_deletes_matching_rows() {
        let app = posts_app(json!([
            {"title": "a", "status": "published"},
            {"title": "b"},
            {"title": "c"},
            {"title": "d", "status": "published"}
        ]))
        .await;
        let r = app
            .post_empty(&format!(
                "/api/posts:destroy?{}",
                filter(json!({"status": "draft"}))
            ))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body, json!({"data": 2}));
        assert_eq!(titles(&app).await, vec![json!("a"), json!("d")]);

        let r = app
            .post_empty(&format!(
                "/api/posts:destroy?{}",
                filter(json!({"status": "draft"}))
            ))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body, json!({"data": 0}), "nothing left to delete");
        assert_eq!(app.count("posts").await, 2);
    }
}

every_backend! {
    async fn url_35_a_named_destroy_runs_on_delete_but_never_on_get() {
        let app = posts_app(json!([{"title": "p1"}, {"title": "p2"}])).await;
        // A link or an image on another site would send the GET (issue 16, point 8).
        let r = app.get("/api/posts:destroy/1").await;
        assert_eq!(r.status, 405, "{:?}", r.body);
        assert_eq!(titles(&app).await, vec![json!("p1"), json!("p2")]);
        let r = app
            .send(poem::http::Method::DELETE, "/api/posts:destroy/1", &[], None)
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body, json!({"data": 1}));
        assert_eq!(titles(&app).await, vec![json!("p2")]);
    }
}

// ---------------------------------------------------------------------------------------
// firstOrCreate / updateOrCreate (§8, FOC-*, UOC-*)
// ---------------------------------------------------------------------------------------

every_backend! {
    async fn foc_01_first_or_create_creates_when_missing() {
        let app = posts_app(json!([])).await;
        let r = app
            .post(
                "/api/posts:firstOrCreate?filterKeys[]=title",
                json!({"title": "t1"}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data()["id"], json!(1));
        assert_eq!(r.data()["title"], json!("t1"));
        assert_eq!(r.data()["status"], json!("draft"));
        assert_eq!(titles(&app).await, vec![json!("t1")]);
    }
}

every_backend! {
    async fn foc_02_first_or_create_returns_existing_record() {
        let app = posts_app(json!([{"title": "t1", "score": 1}])).await;
        let existing = app.get("/api/posts:get/1").await.data().clone();
        for _ in 0..2 {
            let r = app
                .post(
                    "/api/posts:firstOrCreate?filterKeys[]=title",
                    json!({"title": "t1", "score": 5}),
                )
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            assert_eq!(r.data(), &existing, "the existing record, unchanged");
        }
        assert_eq!(app.count("posts").await, 1);
        let stored = app.get("/api/posts:get/1").await;
        assert_eq!(
            stored.data()["score"],
            json!(1),
            "firstOrCreate does not update"
        );
    }
}

every_backend! {
    async fn uoc_01_update_or_create_creates_when_missing() {
        let app = posts_app(json!([])).await;
        let r = app
            .post(
                "/api/posts:updateOrCreate?filterKeys[]=title",
                json!({"title": "t1"}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data()["id"], json!(1));
        assert_eq!(r.data()["title"], json!("t1"));
        assert_eq!(titles(&app).await, vec![json!("t1")]);
    }
}

every_backend! {
    async fn uoc_update_or_create_updates_matching_record_in_place() {
        let app = posts_app(json!([{"title": "t0"}, {"title": "t1", "score": 1}])).await;
        let r = app
            .post(
                "/api/posts:updateOrCreate?filterKeys[]=title",
                json!({"title": "t1", "score": 9}),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        // Recommended (actions.md §8): a single record whether updated or created.
        assert_eq!(r.data()["id"], json!(2), "{:?}", r.body);
        assert_eq!(r.data()["score"], json!(9), "{:?}", r.body);
        assert_eq!(app.count("posts").await, 2);
        let all = app.get("/api/posts:list?paginate=false").await;
        assert_eq!(all.column("title"), vec![json!("t0"), json!("t1")]);
        assert_eq!(all.column("score"), vec![json!(null), json!(9)]);
    }
}

every_backend! {
    async fn uoc_02_03_absent_filter_key_means_is_null() {
        let app = posts_app(json!([{"title": "t1"}])).await;
        let empty_titles = filter(json!({"title.$empty": true}));

        let r = app
            .post("/api/posts:updateOrCreate?filterKeys[]=title", json!({}))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data()["title"], json!(null), "{:?}", r.body);
        let empty = app
            .get(&format!("/api/posts:list?paginate=false&{empty_titles}"))
            .await;
        assert_eq!(empty.column("id"), vec![json!(2)]);

        // The second call finds the NULL-title row and updates it: no duplicate.
        let r = app
            .post("/api/posts:updateOrCreate?filterKeys[]=title", json!({}))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let empty = app
            .get(&format!("/api/posts:list?paginate=false&{empty_titles}"))
            .await;
        assert_eq!(empty.column("id"), vec![json!(2)]);
        let t1 = app
            .get(&format!(
                "/api/posts:list?paginate=false&{}",
                filter(json!({"title": "t1"}))
            ))
            .await;
        assert_eq!(t1.column("id"), vec![json!(1)]);
        assert_eq!(app.count("posts").await, 2);
    }
}

// ---------------------------------------------------------------------------------------
// Types round-trip (http-api.md §6.1)
// ---------------------------------------------------------------------------------------

every_backend! {
    async fn types_round_trip_every_creatable_field_type() {
        let app = TestApp::new().await;
        app.collection(json!({
            "name": "kinds",
            "fields": [
                {"name": "s", "type": "string"},
                {"name": "t", "type": "text"},
                {"name": "i", "type": "integer"},
                {"name": "big", "type": "bigInt"},
                {"name": "f", "type": "float"},
                {"name": "d", "type": "double"},
                {"name": "dec", "type": "decimal", "precision": 10, "scale": 2},
                {"name": "flag", "type": "boolean"},
                {"name": "day", "type": "date"},
                {"name": "at", "type": "datetime"},
                {"name": "wall", "type": "datetimeNoTz"},
                {"name": "clock", "type": "time"},
                {"name": "doc", "type": "json"},
                {"name": "uid", "type": "uuid"},
                {"name": "list", "type": "array"}
            ]
        }))
        .await;

        let written = json!([
            {
                "s": "hello",
                "t": "a longer text\nwith a newline",
                "i": 42,
                "big": 9_007_199_254_740_993_i64,
                "f": 1.5,
                "d": 2.25,
                "dec": "1234.56",
                "flag": true,
                "day": "2024-02-29",
                "at": "2024-03-01T10:20:30+02:00",
                "wall": "2024-03-01 10:20:30",
                "clock": "13:14:15",
                "doc": {"a": [1, {"b": null}], "c": "x"},
                "uid": "6F9619FF-8B86-D011-B42D-00C04FC964FF",
                "list": ["x", 1, true]
            },
            {
                "s": "",
                "i": -7,
                "big": 5,
                "dec": "-0.25",
                "flag": false,
                "at": "2024-03-01T08:20:30.123Z",
                "doc": [1, 2],
                "list": []
            }
        ]);
        let expected = [
            json!({
                "id": 1,
                "s": "hello",
                "t": "a longer text\nwith a newline",
                "i": 42,
                "big": "9007199254740993",
                "f": 1.5,
                "d": 2.25,
                "dec": "1234.56",
                "flag": true,
                "day": "2024-02-29",
                "at": "2024-03-01T08:20:30.000Z",
                "wall": "2024-03-01 10:20:30",
                "clock": "13:14:15",
                "doc": {"a": [1, {"b": null}], "c": "x"},
                "uid": "6f9619ff-8b86-d011-b42d-00c04fc964ff",
                "list": ["x", 1, true]
            }),
            json!({
                "id": 2,
                "s": "",
                "t": null,
                "i": -7,
                "big": 5,
                "f": null,
                "d": null,
                "dec": "-0.25",
                "flag": false,
                "day": null,
                "at": "2024-03-01T08:20:30.123Z",
                "wall": null,
                "clock": null,
                "doc": [1, 2],
                "uid": null,
                "list": []
            }),
        ];
        let strip = |record: &Json| {
            let mut record = record.clone();
            let obj = record.as_object_mut().expect("a record");
            for stamp in ["createdAt", "updatedAt"] {
                let value = obj.remove(stamp).expect("timestamps are present");
                assert!(
                    is_iso_millis(value.as_str().unwrap_or_default()),
                    "{stamp} = {value}"
                );
            }
            record
        };

        let created = app.insert("kinds", written).await;
        let created = created.as_array().expect("an array of created records");
        assert_eq!(created.len(), 2);
        for (got, want) in created.iter().zip(&expected) {
            assert_eq!(&strip(got), want, "create response");
        }
        for (i, want) in expected.iter().enumerate() {
            let r = app.get(&format!("/api/kinds:get/{}", i + 1)).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            assert_eq!(&strip(r.data()), want, "get");
        }
        let r = app.get("/api/kinds:list?paginate=false").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let listed: Vec<Json> = r
            .data()
            .as_array()
            .expect("an array")
            .iter()
            .map(strip)
            .collect();
        assert_eq!(listed, expected.to_vec(), "list");
    }
}

#[tokio::test]
async fn types_decimal_is_exact_to_fifteen_significant_digits_on_sqlite() {
    // SQLite has no exact decimal storage: a decimal column stores a number, so filters
    // compare numerically, and the value is exact to 15 significant digits
    // (docs/decisions/0003-sqlite-storage.md). PostgreSQL and MySQL keep every digit.
    let app = TestApp::new().await;
    app.collection(json!({
        "name": "amounts",
        "fields": [{"name": "dec", "type": "decimal"}]
    }))
    .await;
    let values = ["1234567890123.45", "-0.000123456789012345", "42"];
    for value in values {
        let created = app.insert("amounts", json!({"dec": value})).await;
        assert_eq!(created["dec"], json!(value), "create response");
    }
    let r = app.get("/api/amounts:list?paginate=false&sort=dec").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.column("dec"),
        vec![json!(values[1]), json!(values[2]), json!(values[0])],
        "sorted as numbers, not as text"
    );
    let r = app
        .get(&format!(
            "/api/amounts:list?paginate=false&{}",
            filter(json!({"dec": {"$gt": "100"}}))
        ))
        .await;
    assert_eq!(
        r.column("dec"),
        vec![json!(values[0])],
        "compared as numbers"
    );
}

every_backend! {
    async fn an_empty_fields_param_means_every_attribute_and_an_empty_query_key_keeps_the_path() {
        let app = posts_app(json!([{"title": "a"}, {"title": "b"}, {"title": "c"}])).await;
        let r = app.get("/api/posts:list?fields=&sort=id").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data()[0]["title"], json!("a"));
        assert_eq!(r.data()[0]["status"], json!("draft"));
        let r = app.get("/api/posts:get/3?fields=id&filterByTk=").await;
        assert_eq!(r.data(), &json!({"id": 3}));
    }
}
