//! The URL grammar, parameter assembly, envelope and error statuses of the HTTP API
//! (conformance cases URL-, PAR-, ENV-, ERR- and SRV- of the spec).

use std::sync::Arc;

use manifold_core::middleware::{Middleware, Next};
use manifold_core::resource::{ActionDefinition, ResourceDefinition};
use manifold_core::{Context, Result};
use manifold_tests::{TestApp, enc};
use poem::http::Method;
use serde_json::{Map, Value as Json, json};

/// Answers with the action's params, as NocoBase's koa tests do.
struct Echo;

#[async_trait::async_trait]
impl Middleware for Echo {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        let params = ctx.action()?.params.as_map().clone();
        ctx.body = Some(Json::Object(params));
        next.run(ctx).await
    }
}

/// Answers with a fixed body.
struct Fixed(Json);

#[async_trait::async_trait]
impl Middleware for Fixed {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        ctx.body = Some(self.0.clone());
        next.run(ctx).await
    }
}

async fn echo_app() -> TestApp {
    let t = TestApp::new().await;
    let main = t.app.data_sources().get("main").expect("main");
    let rm = main.resource_manager();
    let echo = || Arc::new(Echo) as Arc<dyn Middleware>;
    for resource in ["posts", "posts.comments", "users.posts", "posts.tags"] {
        let mut def = ResourceDefinition::new(resource);
        for action in [
            "list", "create", "update", "get", "destroy", "set", "add", "remove", "export",
            "attach",
        ] {
            def = def.action(action, echo());
        }
        rm.define(def);
    }
    t
}

/// `expected` is a subset of `actual` (objects compared key by key).
fn assert_contains(actual: &Json, expected: &Json, case: &str) {
    let (Json::Object(a), Json::Object(e)) = (actual, expected) else {
        panic!("{case}: not objects: {actual} vs {expected}");
    };
    for (k, v) in e {
        assert_eq!(a.get(k), Some(v), "{case}: key {k} in {actual}");
    }
}

#[tokio::test]
async fn url_grammar_resolves_resources_actions_and_indexes() {
    let t = echo_app().await;
    let cases: Vec<(&str, Method, &str, Json)> = vec![
        (
            "URL-01",
            Method::GET,
            "/api/posts",
            json!({"resourceName": "posts", "actionName": "list"}),
        ),
        (
            "URL-02",
            Method::POST,
            "/api/posts",
            json!({"resourceName": "posts", "actionName": "create"}),
        ),
        (
            "URL-03",
            Method::GET,
            "/api/posts/1",
            json!({"resourceName": "posts", "resourceIndex": "1", "actionName": "get", "filterByTk": "1"}),
        ),
        (
            "URL-04",
            Method::PUT,
            "/api/posts/1",
            json!({"actionName": "update", "filterByTk": "1"}),
        ),
        (
            "URL-05",
            Method::PATCH,
            "/api/posts/1",
            json!({"actionName": "update"}),
        ),
        (
            "URL-06",
            Method::DELETE,
            "/api/posts/1",
            json!({"actionName": "destroy"}),
        ),
        (
            "URL-07",
            Method::DELETE,
            "/api/posts/1,2,3,4,5,6",
            json!({"resourceIndex": "1,2,3,4,5,6", "actionName": "destroy"}),
        ),
        (
            "URL-08",
            Method::GET,
            "/api/posts/1/comments",
            json!({"resourceName": "comments", "associatedName": "posts", "associatedIndex": "1", "actionName": "list"}),
        ),
        (
            "URL-09",
            Method::POST,
            "/api/posts/%E7%9A%84%E6%B3%95%E5%9B%BD%E9%98%9F/comments",
            json!({"associatedIndex": "的法国队", "actionName": "create"}),
        ),
        (
            "URL-10",
            Method::POST,
            "/api/posts/a%2Fab/comments",
            json!({"associatedIndex": "a/ab"}),
        ),
        (
            "URL-11",
            Method::POST,
            "/api/posts/%25E7%259A%2584%25E6%25B3%2595%252F%25E5%259B%25BD%25E9%2598%259F/comments",
            json!({"associatedIndex": "的法/国队"}),
        ),
        (
            "URL-13",
            Method::GET,
            "/api/posts/1/comments/1",
            json!({"resourceName": "comments", "resourceIndex": "1", "associatedName": "posts", "associatedIndex": "1", "actionName": "get"}),
        ),
        (
            "URL-14",
            Method::PUT,
            "/api/posts/1/comments/1",
            json!({"actionName": "update"}),
        ),
        (
            "URL-16",
            Method::DELETE,
            "/api/posts/1/comments/1",
            json!({"actionName": "destroy"}),
        ),
        (
            "URL-17",
            Method::PUT,
            "/api/posts:export",
            json!({"resourceName": "posts", "actionName": "export"}),
        ),
        (
            "URL-18",
            Method::POST,
            "/api/posts:export",
            json!({"actionName": "export"}),
        ),
        (
            "URL-19",
            Method::POST,
            "/api/posts:export/1",
            json!({"resourceIndex": "1", "actionName": "export"}),
        ),
        (
            "URL-20",
            Method::POST,
            "/api/posts/1/tags:attach/2",
            json!({"resourceName": "tags", "resourceIndex": "2", "associatedIndex": "1", "associatedName": "posts", "actionName": "attach"}),
        ),
        (
            "URL-21",
            Method::GET,
            "/api/posts:list",
            json!({"resourceName": "posts", "actionName": "list"}),
        ),
        (
            "URL-25",
            Method::GET,
            "/api/posts/",
            json!({"actionName": "list"}),
        ),
        (
            "URL-26",
            Method::GET,
            "/API/posts",
            json!({"actionName": "list"}),
        ),
        (
            "URL-28",
            Method::GET,
            "/api/posts/1:get",
            json!({"resourceIndex": "1:get", "actionName": "get"}),
        ),
        (
            "URL-29",
            Method::GET,
            "/api/posts:list:extra",
            json!({"actionName": "list"}),
        ),
        (
            "URL-32",
            Method::GET,
            "/api/posts:get/a%2Fb",
            json!({"filterByTk": "a/b"}),
        ),
        (
            "URL-34",
            Method::GET,
            "/api/posts:get/1?filterByTk=2",
            json!({"filterByTk": "2"}),
        ),
        (
            "URL-36",
            Method::POST,
            "/api/posts/1/tags",
            json!({"actionName": "create"}),
        ),
    ];
    for (case, method, path, expected) in cases {
        let r = t.send(method, path, &[], None).await;
        assert_eq!(r.status, 200, "{case} {path}: {:?}", r.body);
        assert_contains(r.data(), &expected, case);
    }
}

#[tokio::test]
async fn paths_outside_the_grammar_are_json_404s() {
    let t = echo_app().await;
    for (case, method, path) in [
        ("URL-22", Method::GET, "/posts"),
        ("URL-27", Method::PUT, "/api/posts"),
        ("URL-30", Method::GET, "/api/a/1/b/2/c"),
        ("URL-31", Method::GET, "/api"),
        ("URL-31", Method::GET, "/api/"),
        ("URL-31", Method::GET, "/apix/posts"),
        ("ERR-09", Method::GET, "/api/nothing:list"),
        ("unknown action", Method::POST, "/api/posts:nope"),
    ] {
        let r = t.send(method, path, &[], None).await;
        assert_eq!(r.status, 404, "{case} {path}: {:?}", r.body);
        assert!(
            !r.error().is_empty(),
            "{case}: a JSON error body: {:?}",
            r.body
        );
    }
    let r = t.post("/api/posts:nope", json!({})).await;
    assert_eq!(r.error(), "resource posts has no action nope");
    // On GET, an action not known to only read is refused before it is looked up.
    let r = t.get("/api/posts:nope").await;
    assert_eq!(r.status, 405, "{:?}", r.body);
}

#[tokio::test]
async fn url_33_malformed_percent_encoding_is_a_400() {
    let t = echo_app().await;
    let r = t.get("/api/posts/%zz").await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert!(r.error().contains("percent-encoding"), "{}", r.error());
}

#[tokio::test]
async fn par_01_defaults_merge_with_the_query_string() {
    let t = TestApp::new().await;
    let main = t.app.data_sources().get("main").expect("main");
    let mut list = ActionDefinition::new(Arc::new(Echo));
    list.defaults =
        json!({"filter": {"col1": "val1", "col2": "val2"}, "fields": ["id"], "sort": ["-id"]})
            .as_object()
            .cloned()
            .unwrap_or_default();
    main.resource_manager()
        .define(ResourceDefinition::new("tests").action_definition("list", list));
    let r = t
        .get("/api/tests?filter[col2]=%26val2&filter[col3]=val3&other=other1&sort=-id")
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_contains(
        r.data(),
        &json!({
            "sort": "-id",
            "filter": {"$and": [{"col1": "val1", "col2": "val2"}, {"col2": "&val2", "col3": "val3"}]},
            "fields": ["id"],
            "other": "other1",
            "actionName": "list",
            "resourceName": "tests"
        }),
        "PAR-01",
    );
}

#[tokio::test]
async fn par_02_14_the_body_only_ever_becomes_values() {
    let t = TestApp::new().await;
    let main = t.app.data_sources().get("main").expect("main");
    let mut create = ActionDefinition::new(Arc::new(Echo));
    let mut defaults = Map::new();
    defaults.insert("values".into(), json!({"col1": "val1"}));
    create.defaults = defaults;
    main.resource_manager().define(
        ResourceDefinition::new("tests")
            .action_definition("create", create)
            .action("list", Arc::new(Echo)),
    );
    let r = t.post("/api/tests", json!({"aa": "aa"})).await;
    assert_contains(
        r.data(),
        &json!({"actionName": "create", "resourceName": "tests", "values": {"col1": "val1", "aa": "aa"}}),
        "PAR-02",
    );
    let r = t
        .post("/api/tests:list", json!({"filter": {"id": 1}}))
        .await;
    assert_eq!(r.data()["values"], json!({"filter": {"id": 1}}), "PAR-14");
    assert_eq!(r.data().get("filter"), None, "PAR-14: no filter param");
}

#[tokio::test]
async fn envelope_wraps_what_the_handler_leaves() {
    let t = TestApp::new().await;
    let main = t.app.data_sources().get("main").expect("main");
    let rm = main.resource_manager();
    let fixed = |v: Json| Arc::new(Fixed(v)) as Arc<dyn Middleware>;
    rm.define(
        ResourceDefinition::new("envelope")
            .action("list", fixed(json!({"rows": [1, 2], "count": 2})))
            .action("array", fixed(json!([1, 2])))
            .action("get", fixed(Json::Null))
            .action("destroy", fixed(json!(0)))
            .action("toggle", fixed(json!("ok")))
            .action("record", fixed(json!({"rows": "a field", "id": 1})))
            .action("nothing", Arc::new(NoBody)),
    );
    let cases = [
        ("ENV-02", "/api/envelope:array", json!({"data": [1, 2]})),
        (
            "ENV-03",
            "/api/envelope:list",
            json!({"data": [1, 2], "meta": {"count": 2}}),
        ),
        ("ENV-05", "/api/envelope:get", json!({"data": null})),
        ("ENV-09", "/api/envelope:destroy/1", json!({"data": 0})),
        ("ENV-11", "/api/envelope:toggle", json!({"data": "ok"})),
        (
            "rows only split for list",
            "/api/envelope:record",
            json!({"data": {"rows": "a field", "id": 1}}),
        ),
        ("ENV-08/13", "/api/envelope:nothing", json!({})),
    ];
    for (case, path, expected) in cases {
        // Actions other than list and get count as changes, which GET cannot send.
        let r = t.send(Method::POST, path, &[], None).await;
        assert_eq!((r.status, &r.body), (200, &expected), "{case}");
    }
}

struct NoBody;

#[async_trait::async_trait]
impl Middleware for NoBody {
    async fn handle(&self, ctx: &mut Context, next: Next<'_>) -> Result<()> {
        next.run(ctx).await
    }
}

#[tokio::test]
async fn err_10_an_unknown_data_source_is_a_404_on_any_path() {
    let t = TestApp::new().await;
    for path in ["/api/posts:list", "/anything"] {
        let r = t
            .send(Method::GET, path, &[("X-Data-Source", "nope")], None)
            .await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.error(), "data source nope does not exist");
    }
    // An empty header means main.
    let r = t
        .send(
            Method::GET,
            "/api/collections:list",
            &[("x-data-source", "")],
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[tokio::test]
async fn err_11_12_bodies_must_be_json_objects_or_arrays() {
    let t = echo_app().await;
    let json_type = [("content-type", "application/json")];
    let r = t
        .send(
            Method::POST,
            "/api/posts:create",
            &json_type,
            Some(b"{bad".to_vec()),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().starts_with("Invalid JSON body"), "{}", r.error());
    let r = t
        .send(
            Method::POST,
            "/api/posts:create",
            &json_type,
            Some(b"123".to_vec()),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error(), "invalid JSON, only supports object and array");
    // A form cannot change data (a cross-site page could send one), JSON-looking or not.
    for body in [&br#"{"title":"t"}"#[..], b"title=t&tags[]=a&tags[]=b"] {
        let r = t
            .send(
                Method::POST,
                "/api/posts:create",
                &[("content-type", "application/x-www-form-urlencoded")],
                Some(body.to_vec()),
            )
            .await;
        assert_eq!(r.status, 415, "{:?}", r.body);
    }
    // A reading action still reads a form, nested like the query string; JSON labelled
    // as a form (curl -d) is read as JSON.
    let r = t
        .send(
            Method::POST,
            "/api/posts:list",
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(br#"{"title":"t"}"#.to_vec()),
        )
        .await;
    assert_eq!(r.data()["values"], json!({"title": "t"}));
    let r = t
        .send(
            Method::POST,
            "/api/posts:list",
            &[("content-type", "application/x-www-form-urlencoded")],
            Some(b"title=t&tags[]=a&tags[]=b".to_vec()),
        )
        .await;
    assert_eq!(
        r.data()["values"],
        json!({"title": "t", "tags": ["a", "b"]})
    );
}

#[tokio::test]
async fn par_16_a_filter_that_is_not_json_is_a_400() {
    let t = echo_app().await;
    for raw in ["", "{bad", &enc("{\"a\":")] {
        let r = t.get(&format!("/api/posts:list?filter={raw}")).await;
        assert_eq!(r.status, 400, "filter={raw}: {:?}", r.body);
        assert!(r.error().starts_with("Invalid filter"), "{}", r.error());
    }
}

#[tokio::test]
async fn srv_06_bodies_over_the_limit_are_413() {
    let t = TestApp::with(|c| c.body_limit = 1024).await;
    let main = t.app.data_sources().get("main").expect("main");
    main.resource_manager()
        .define(ResourceDefinition::new("test").action("test", Arc::new(Echo)));
    let small = json!({"a": "x".repeat(100)});
    assert_eq!(t.post("/api/test:test", small).await.status, 200, "SRV-05");
    let big = json!({"a": "x".repeat(2000)});
    let r = t.post("/api/test:test", big).await;
    assert_eq!(r.status, 413);
    assert!(r.error().contains("larger than the limit"), "{}", r.error());
}
