//! A connector from a crate of its own (`tests/toy-connector`), added to the real app in one
//! line, registered over HTTP and served through `X-Data-Source`: what issue 18 asks of
//! "a connector is one crate". Also the one 400 for an operator a connector declines.

use std::sync::Arc;

use manifold_server::{AppBuilder, ServeConfig};
use manifold_tests::{Reply, TestApp, filter, posts_definition};
use poem::http::Method;
use serde_json::{Value as Json, json};

/// Sends `method path` to the toy source and asserts a 200.
async fn toy(t: &TestApp, method: Method, path: &str, body: Option<Json>) -> Reply {
    let r = t.on("toys", method, path, body).await;
    assert_eq!(r.status, 200, "{path}: {:?}", r.body);
    r
}

#[tokio::test]
async fn a_connector_crate_serves_every_action_over_http() {
    let t = TestApp::with_connector(Arc::new(manifold_toy::ToyFactory)).await;
    let options = json!({"collections": {"notes": {
        "fields": {"id": "integer", "title": "string", "done": "boolean", "rank": "integer"},
        "primaryKey": "id"
    }}});
    let r = t
        .post(
            "/api/dataSources:create",
            json!({"key": "toys", "type": "toy", "options": options}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(t.settled("toys").await["status"], json!("loaded"));
    let r = t.get("/api/dataSources/toys/collections:list").await;
    assert_eq!(r.column("name"), [json!("notes")]);

    // Keys are generated; a field left out is null.
    let r = toy(
        &t,
        Method::POST,
        "/api/notes:create",
        Some(json!({"title": "buy milk", "rank": 3})),
    )
    .await;
    assert_eq!(
        r.data(),
        &json!({"id": 1, "title": "buy milk", "done": null, "rank": 3})
    );
    let r = toy(
        &t,
        Method::POST,
        "/api/notes:create",
        Some(json!([
            {"title": "walk the dog", "done": true, "rank": 1},
            {"title": "write docs", "rank": 2},
            {"title": "water plants", "done": true, "rank": 5}
        ])),
    )
    .await;
    assert_eq!(r.column("id"), [json!(2), json!(3), json!(4)]);

    // Filter, sort, page and projection, as any source answers them.
    let page = |n: u32| {
        format!(
            "/api/notes:list?{}&sort=-rank&pageSize=2&page={n}&fields=id,title",
            filter(json!({"title": {"$includes": "W"}}))
        )
    };
    let r = toy(&t, Method::GET, &page(1), None).await;
    assert_eq!(
        r.data(),
        &json!([{"id": 4, "title": "water plants"}, {"id": 3, "title": "write docs"}])
    );
    assert_eq!(
        r.body["meta"],
        json!({"count": 3, "page": 1, "pageSize": 2, "totalPage": 2})
    );
    let r = toy(&t, Method::GET, &page(2), None).await;
    assert_eq!(r.data(), &json!([{"id": 2, "title": "walk the dog"}]));

    let r = toy(&t, Method::GET, "/api/notes:get?filterByTk=3", None).await;
    assert_eq!(
        r.data(),
        &json!({"id": 3, "title": "write docs", "done": null, "rank": 2})
    );

    let r = toy(
        &t,
        Method::POST,
        "/api/notes:update?filterByTk=3",
        Some(json!({"done": true, "rank": 4})),
    )
    .await;
    assert_eq!(
        r.data(),
        &json!([{"id": 3, "title": "write docs", "done": true, "rank": 4}])
    );
    let r = toy(&t, Method::GET, "/api/notes/3", None).await;
    assert_eq!(r.data()["done"], json!(true));

    let done = filter(json!({"done": {"$isTruly": true}}));
    let r = toy(
        &t,
        Method::POST,
        &format!("/api/notes:destroy?{done}"),
        None,
    )
    .await;
    assert_eq!(r.data(), &json!(3));
    let r = toy(&t, Method::GET, "/api/notes:list", None).await;
    assert_eq!(r.column("title"), [json!("buy milk")]);
    assert_eq!(r.body["meta"]["count"], json!(1));

    // The connector declined the array operators: one 400 from core names the operator
    // and the source type, whatever the action.
    let refused = filter(json!({"title": {"$anyOf": ["buy milk"]}}));
    for (method, path) in [
        (Method::GET, format!("/api/notes:list?{refused}")),
        (Method::GET, format!("/api/notes:get?{refused}")),
        (Method::POST, format!("/api/notes:destroy?{refused}")),
    ] {
        let r = t.on("toys", method, &path, None).await;
        assert_eq!(r.status, 400, "{path}: {:?}", r.body);
        assert_eq!(
            r.body,
            json!({"errors": [{"message":
                "filter.title.$anyOf: operator $anyOf is not supported by toy sources"}]}),
            "{path}"
        );
    }
    // The refused destroy removed nothing.
    let r = toy(&t, Method::GET, "/api/notes:list", None).await;
    assert_eq!(r.column("id"), [json!(1)]);
    // On the main source, which runs every operator, the same operator gets past the check
    // and meets the parser's own rule for it instead.
    t.collection(posts_definition()).await;
    let r = t
        .get(&format!(
            "/api/posts:list?{}",
            filter(json!({"title": {"$anyOf": ["toys"]}}))
        ))
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(
        r.error(),
        "filter.title.$anyOf: array operators apply to array fields; \"title\" is string"
    );
}

#[tokio::test]
async fn a_source_type_offered_twice_stops_the_start() {
    let refused = AppBuilder::new(&ServeConfig::default())
        .connector(Arc::new(manifold_toy::ToyFactory))
        .connector(Arc::new(manifold_toy::ToyFactory))
        .build()
        .await
        .err()
        .map(|e| e.message().to_owned());
    assert_eq!(
        refused.as_deref(),
        Some("two connectors offer the data source type \"toy\"")
    );
}
