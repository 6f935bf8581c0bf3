//! The audit plugin, tested with the harness as a plugin author would.

use std::sync::Arc;

use manifold_example_audit::AuditPlugin;
use manifold_testing::{MockServer, MockServerBuilder, Reply};
use serde_json::{Value as Json, json};

/// The app `builder` makes, with a `posts` collection.
async fn with_posts(builder: MockServerBuilder) -> MockServer {
    let server = builder
        .start()
        .await
        .expect("the app starts with the audit plugin");
    let r = server
        .agent()
        .post(
            "/api/collections:create",
            json!({"name": "posts", "fields": [{"name": "title", "type": "string"}]}),
        )
        .await
        .expect("collections:create");
    assert_eq!(r.status, 200, "{}", r.text);
    server
}

/// `plugin` on a temporary SQLite main database, with a `posts` collection.
async fn server(plugin: AuditPlugin) -> MockServer {
    with_posts(MockServer::builder().plugin(Arc::new(plugin))).await
}

fn ok(r: Reply) -> Json {
    assert_eq!(r.status, 200, "{}", r.text);
    r.data().clone()
}

#[tokio::test]
async fn every_committed_create_is_recorded_and_readable() {
    let server = server(AuditPlugin::default()).await;
    let agent = server.agent();
    let posts = agent.resource("posts");

    let created = posts
        .create(json!({"title": "hello"}))
        .await
        .expect("create");
    assert_eq!(created.header("x-audit-trail"), Some("/api/auditLog:list"));
    let id = ok(created)["id"].clone();
    ok(posts
        .create(json!([{"title": "a"}, {"title": "b"}]))
        .await
        .expect("create"));

    // A create that fails leaves no trail.
    let r = posts
        .create(json!({"title": ["not", "text"]}))
        .await
        .expect("create");
    assert_eq!(r.status, 400, "{}", r.text);

    let trail = ok(agent
        .resource("auditLog")
        .list(json!({}))
        .await
        .expect("list"));
    let collections: Vec<_> = trail
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["collectionName"].clone())
        .collect();
    assert_eq!(
        collections,
        [json!("posts"), json!("posts"), json!("posts")]
    );

    let history = ok(posts
        .action("history", json!({"filterByTk": id}), None)
        .await
        .expect("history"));
    assert_eq!(history.as_array().expect("rows").len(), 1, "{history}");
    assert_eq!(history[0]["recordKey"], json!(id.to_string()));
    assert_eq!(history[0]["action"], json!("create"));
    assert_eq!(history[0]["dataSource"], json!("main"));

    let r = posts
        .action("history", json!({}), None)
        .await
        .expect("history");
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.error(),
        "posts:history needs filterByTk, the key of one record"
    );
    // In the caller's language.
    let french = agent.clone().with_header("X-Locale", "fr-FR");
    let r = french
        .resource("posts")
        .action("history", json!({}), None)
        .await
        .expect("history");
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.error(),
        "posts:history exige filterByTk, la clé d’un enregistrement"
    );
}

#[tokio::test]
async fn the_trail_is_closed_to_anonymous_callers() {
    let server = server(AuditPlugin::default()).await;
    let r = server
        .anonymous()
        .resource("auditLog")
        .list(json!({}))
        .await
        .expect("list");
    assert_eq!(r.status, 401, "{}", r.text);
}

#[tokio::test]
async fn stats_are_served_from_the_cache_until_it_expires() {
    let server = server(AuditPlugin::default()).await;
    let agent = server.agent();
    let stats = || async {
        ok(agent
            .resource("auditLog")
            .action("stats", json!({}), None)
            .await
            .expect("stats"))
    };
    assert_eq!(stats().await, json!({"rows": 0}));
    ok(agent
        .resource("posts")
        .create(json!({"title": "x"}))
        .await
        .expect("create"));
    // Still the cached count.
    assert_eq!(stats().await, json!({"rows": 0}));
    server
        .app()
        .cache()
        .namespace("audit")
        .delete("rows")
        .await
        .expect("delete");
    assert_eq!(stats().await, json!({"rows": 1}));
}

#[tokio::test]
async fn the_job_prunes_rows_past_their_retention() {
    let plugin = AuditPlugin {
        retention_days: 0,
        prune_cron: "* * * * * *".into(),
    };
    let server = server(plugin).await;
    let agent = server.agent();
    ok(agent
        .resource("posts")
        .create(json!({"title": "short-lived"}))
        .await
        .expect("create"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let trail = ok(agent
            .resource("auditLog")
            .list(json!({}))
            .await
            .expect("list"));
        if trail.as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not pruned in 5 s: {trail}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_command_prunes_from_the_command_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("main.sqlite").display());
    {
        let server = with_posts(
            MockServer::builder()
                .plugin(Arc::new(AuditPlugin::default()))
                .main_db(&url),
        )
        .await;
        ok(server
            .agent()
            .resource("posts")
            .create(json!({"title": "old"}))
            .await
            .expect("create"));
        server.close().await;
    }
    let code = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            manifold_server::Manifold::builder()
                .plugin(Arc::new(AuditPlugin::default()))
                .run_with_args(["manifold", "audit-prune", "--days", "0", "--main-db", &url])
        }
    })
    .await
    .expect("the command ran");
    assert_eq!(code, std::process::ExitCode::SUCCESS);

    let server = MockServer::builder()
        .plugin(Arc::new(AuditPlugin::default()))
        .main_db(&url)
        .start()
        .await
        .expect("starts again");
    let trail = ok(server
        .agent()
        .resource("auditLog")
        .list(json!({}))
        .await
        .expect("list"));
    assert_eq!(trail, json!([]));
}
