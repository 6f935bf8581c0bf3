//! The harness itself: an app on a temporary SQLite main database or on a given one,
//! agents signed in as root, as a new user or as nobody, and NocoBase's parameters.

use manifold_testing::MockServer;
use manifold_tests::{Backend, ScratchDatabase};
use serde_json::json;

async fn with_posts(server: &MockServer) {
    let r = server
        .agent()
        .post(
            "/api/collections:create",
            json!({"name": "posts", "fields": [{"name": "title", "type": "string"}, {"name": "score", "type": "integer"}]}),
        )
        .await
        .expect("collections:create");
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Creates, reads, filters, updates and destroys through `resource`.
async fn round_trip(server: &MockServer) {
    with_posts(server).await;
    let posts = server.agent().resource("posts");
    let r = posts
        .create(json!([{"title": "a", "score": 1}, {"title": "b", "score": 5}]))
        .await
        .expect("create");
    assert_eq!(r.status, 200, "{}", r.text);

    let r = posts
        .list(json!({"filter": {"score": {"$gt": 3}}, "fields": ["title"], "sort": ["-id"]}))
        .await
        .expect("list");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.data(), &json!([{"title": "b"}]));
    assert_eq!(r.meta()["count"], json!(1));

    let r = posts
        .update(json!(1), json!({"title": "a2"}))
        .await
        .expect("update");
    assert_eq!(r.status, 200, "{}", r.text);
    let r = posts.get(json!(1)).await.expect("get");
    assert_eq!(r.data()["title"], json!("a2"));
    let r = posts.destroy(json!(2)).await.expect("destroy");
    assert_eq!(r.status, 200, "{}", r.text);
    let r = posts.list(json!({})).await.expect("list");
    assert_eq!(r.meta()["count"], json!(1));
}

#[tokio::test]
async fn an_app_on_a_temporary_sqlite_database_speaks_the_action_api() {
    let server = MockServer::start(Vec::new()).await.expect("starts");
    round_trip(&server).await;

    // Nobody, and a user without a grant, are refused.
    let r = server
        .anonymous()
        .resource("posts")
        .list(json!({}))
        .await
        .expect("list");
    assert_eq!(r.status, 401, "{}", r.text);
    let member = server
        .user("ada", "ada-password-1", &["member"])
        .await
        .expect("a user");
    assert!(member.token().is_some());
    let r = member
        .resource("posts")
        .list(json!({}))
        .await
        .expect("list");
    assert_eq!(r.status, 403, "{}", r.text);

    // A header on every request of one agent.
    let r = server
        .agent()
        .with_header("X-Locale", "fr-FR")
        .resource("nothing")
        .list(json!({}))
        .await
        .expect("list");
    assert_eq!(
        (r.status, r.error()),
        (404, "la ressource nothing n’existe pas")
    );
    server.close().await;
}

#[tokio::test]
async fn an_app_on_a_given_postgresql_database() {
    let db = ScratchDatabase::create(Backend::Postgres).await;
    let server = MockServer::builder()
        .main_db(db.url())
        .start()
        .await
        .expect("starts on PostgreSQL");
    round_trip(&server).await;
    server.close().await;
}

#[tokio::test]
async fn a_wrong_password_is_a_sign_in_error() {
    let server = MockServer::start(Vec::new()).await.expect("starts");
    let e = server
        .anonymous()
        .sign_in("root", "not-the-password")
        .await
        .err()
        .expect("refused");
    assert!(
        e.to_string()
            .contains("signing in as root was refused: 401"),
        "{e}"
    );
}
