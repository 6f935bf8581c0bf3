//! `firstOrCreate` and `updateOrCreate` under concurrency ([api.md §3.6–3.7]): many callers
//! sending the same values at once get one record between them, with or without a unique
//! key, in one process and across replicas sharing the database.
//!
//! Each test starts every caller before awaiting any, so their lookups and inserts
//! interleave on the database's connections.
//!
//! [api.md §3.6–3.7]: ../../docs/api.md

use std::collections::BTreeSet;
use std::sync::Arc;

use manifold_tests::{Reply, TestApp, every_backend, posts_definition};
use serde_json::{Value as Json, json};
use tokio::task::JoinSet;

/// Callers of the tests without a unique key.
const CALLERS: usize = 64;

/// Callers of the tests with a unique key.
const MANY_CALLERS: usize = 640;

/// `posts`, with `title` unique when asked.
fn posts(unique_title: bool) -> Json {
    let mut definition = posts_definition();
    if unique_title {
        definition["fields"][0]["unique"] = json!(true);
    }
    definition
}

/// Sends `POST path` with body `body(i)` for every `i` below `n`, caller `i` through
/// `apps[i % apps.len()]`, all at once; answers in caller order.
async fn all_at_once(
    apps: &[Arc<TestApp>],
    n: usize,
    path: &str,
    body: impl Fn(usize) -> Json,
) -> Vec<Reply> {
    let mut callers = JoinSet::new();
    for i in 0..n {
        let app = apps[i % apps.len()].clone();
        let (path, body) = (path.to_owned(), body(i));
        callers.spawn(async move { (i, app.post(&path, body).await) });
    }
    let mut replies: Vec<(usize, Reply)> = callers.join_all().await;
    replies.sort_by_key(|(i, _)| *i);
    replies.into_iter().map(|(_, r)| r).collect()
}

/// Asserts every reply is a 200 carrying the same record, and returns its id.
fn one_record(replies: &[Reply]) -> Json {
    let refused: Vec<_> = replies
        .iter()
        .filter(|r| r.status != 200)
        .map(|r| (r.status, r.body.clone()))
        .collect();
    assert!(
        refused.is_empty(),
        "{} of {} callers failed, e.g. {:?}",
        refused.len(),
        replies.len(),
        refused.first()
    );
    let ids: BTreeSet<String> = replies.iter().map(|r| r.data()["id"].to_string()).collect();
    assert_eq!(
        ids.len(),
        1,
        "every caller gets the one record: ids {ids:?}"
    );
    replies[0].data()["id"].clone()
}

/// The posts titled `title`, read through the API.
async fn titled(app: &TestApp, title: &str) -> Vec<Json> {
    let r = app
        .get(&format!(
            "/api/posts:list?paginate=false&{}",
            manifold_tests::filter(json!({ "title": title }))
        ))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.data().as_array().cloned().unwrap_or_default()
}

every_backend! {
    async fn first_or_create_without_a_unique_key_makes_one_row_for_64_callers() {
        let app = Arc::new(TestApp::new().await);
        app.collection(posts(false)).await;
        app.insert("posts", json!({"title": "other"})).await;
        let replies = all_at_once(
            std::slice::from_ref(&app),
            CALLERS,
            "/api/posts:firstOrCreate?filterKeys[]=title",
            |i| json!({"title": "Same", "score": i}),
        )
        .await;
        let id = one_record(&replies);
        let rows = titled(&app, "Same").await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["id"], id);
        // The winner's values, unchanged by the others.
        assert_eq!(&rows[0], replies[0].data());
        assert_eq!(app.count("posts").await, 2);
    }
}

every_backend! {
    async fn update_or_create_without_a_unique_key_makes_one_row_for_64_callers() {
        let app = Arc::new(TestApp::new().await);
        app.collection(posts(false)).await;
        let replies = all_at_once(
            std::slice::from_ref(&app),
            CALLERS,
            "/api/posts:updateOrCreate?filterKeys[]=title",
            |i| json!({"title": "Same", "score": i}),
        )
        .await;
        let id = one_record(&replies);
        let rows = titled(&app, "Same").await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["id"], id);
        let score = rows[0]["score"].as_u64().expect("a score");
        assert!(score < CALLERS as u64, "one caller's score: {score}");
    }
}

every_backend! {
    async fn first_or_create_with_a_unique_key_answers_640_callers_with_one_record() {
        let app = Arc::new(TestApp::new().await);
        app.collection(posts(true)).await;
        let replies = all_at_once(
            std::slice::from_ref(&app),
            MANY_CALLERS,
            "/api/posts:firstOrCreate?filterKeys[]=title",
            |i| json!({"title": "Same", "score": i}),
        )
        .await;
        let id = one_record(&replies);
        let rows = titled(&app, "Same").await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["id"], id);
        assert_eq!(app.count("posts").await, 1);
    }
}

every_backend! {
    async fn update_or_create_with_a_unique_key_answers_640_callers_with_one_record() {
        let app = Arc::new(TestApp::new().await);
        app.collection(posts(true)).await;
        let replies = all_at_once(
            std::slice::from_ref(&app),
            MANY_CALLERS,
            "/api/posts:updateOrCreate?filterKeys[]=title",
            |i| json!({"title": "Same", "score": i}),
        )
        .await;
        let id = one_record(&replies);
        let rows = titled(&app, "Same").await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["id"], id);
        assert_eq!(app.count("posts").await, 1);
    }
}

every_backend! {
    async fn different_values_are_not_serialised_into_one_record() {
        let app = Arc::new(TestApp::new().await);
        app.collection(posts(false)).await;
        // Eight titles, eight callers each: one row per title.
        let replies = all_at_once(
            std::slice::from_ref(&app),
            CALLERS,
            "/api/posts:firstOrCreate?filterKeys[]=title",
            |i| json!({"title": format!("t{}", i % 8), "score": i}),
        )
        .await;
        for title in 0..8 {
            let same: Vec<Reply> = replies
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 8 == title)
                .map(|(_, r)| r.clone())
                .collect();
            let id = one_record(&same);
            let rows = titled(&app, &format!("t{title}")).await;
            assert_eq!(rows.len(), 1, "t{title}: {rows:?}");
            assert_eq!(rows[0]["id"], id);
        }
        assert_eq!(app.count("posts").await, 8);
    }
}

every_backend! {
    // Replicas share the main database only: an external source is registered with one
    // app. On MongoDB nothing but a unique index holds across processes (docs/api.md §3.6).
    #[skip(mongodb, mssql)]
    async fn replicas_without_a_unique_key_make_one_row_through_the_database_lock() {
        let first = TestApp::new().await;
        first.collection(posts(false)).await;
        let second = first.replica().await;
        let third = first.replica().await;
        let apps = [Arc::new(first), Arc::new(second), Arc::new(third)];
        // Each replica lets one caller at a time through to the database, so a race there
        // is between three: several rounds give it several chances.
        for action in ["firstOrCreate", "updateOrCreate"] {
            for round in 0..4 {
                let title = format!("{action} {round}");
                let replies = all_at_once(
                    &apps,
                    CALLERS,
                    &format!("/api/posts:{action}?filterKeys[]=title"),
                    |i| json!({"title": title, "score": i}),
                )
                .await;
                let id = one_record(&replies);
                let rows = titled(&apps[0], &title).await;
                assert_eq!(rows.len(), 1, "{title}: {rows:?}");
                assert_eq!(rows[0]["id"], id, "{title}");
            }
        }
    }
}

every_backend! {
    #[skip(mongodb, mssql)]
    async fn replicas_with_a_unique_key_answer_every_caller_with_one_record() {
        let first = TestApp::new().await;
        first.collection(posts(true)).await;
        let second = first.replica().await;
        let apps = [Arc::new(first), Arc::new(second)];
        for (action, title) in [("firstOrCreate", "First"), ("updateOrCreate", "Update")] {
            let replies = all_at_once(
                &apps,
                MANY_CALLERS,
                &format!("/api/posts:{action}?filterKeys[]=title"),
                |i| json!({"title": title, "score": i}),
            )
            .await;
            let id = one_record(&replies);
            assert_eq!(titled(&apps[0], title).await.len(), 1, "{action}");
            assert_eq!(titled(&apps[1], title).await[0]["id"], id, "{action}");
        }
    }
}

every_backend! {
    async fn a_unique_key_on_another_field_is_still_a_400() {
        // Looked up by title, refused by the unique slug of another record: no re-read
        // can answer that, so it stays the client's error.
        let app = Arc::new(TestApp::new().await);
        app.collection(json!({
            "name": "posts",
            "fields": [
                {"name": "title", "type": "string"},
                {"name": "slug", "type": "string", "unique": true}
            ]
        }))
        .await;
        app.insert("posts", json!({"title": "a", "slug": "taken"})).await;
        let r = app
            .post(
                "/api/posts:firstOrCreate?filterKeys[]=title",
                json!({"title": "b", "slug": "taken"}),
            )
            .await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(r.error(), "slug already exists");
        assert_eq!(r.body["errors"][0]["code"], json!("UNIQUE_VIOLATION"));
        assert_eq!(app.count("posts").await, 1);
    }
}
