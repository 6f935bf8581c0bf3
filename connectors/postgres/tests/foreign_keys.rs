//! Foreign keys read by the PostgreSQL connector, and the associations the core derives
//! from them, on NocoBase's blog schema.
//!
//! Each test creates its own database `manifold_pg_<random>` through
//! `postgres://postgres@127.0.0.1:5432/postgres` (or `MANIFOLD_TEST_POSTGRES_URL`) and drops
//! it afterwards, also when the test fails. A missing server fails the test: see
//! /work/shared/testing.md to start one.

use std::sync::atomic::Ordering;

use manifold_core::associations::derive;
use manifold_core::connector::Connector;
use manifold_core::schema::{Collection, ForeignKey};
use manifold_postgres::introspect;
use manifold_sql::pool::SharedPool;
use serde_json::json;

#[path = "../../sql/tests/shared/blog_relations.rs"]
mod blog_relations;
use blog_relations::{expected_associations, expected_foreign_keys, find, fk};

mod common;
use common::*;

/// NocoBase's blog schema plus a composite key, as table constraints (declaration order
/// decides association names). `comments` references `posts` without a column list,
/// which PostgreSQL resolves to the primary key when the key is created.
const BLOG: &str = r#"
CREATE TABLE users (id BIGSERIAL PRIMARY KEY, nickname TEXT);
CREATE TABLE posts (
  id BIGSERIAL PRIMARY KEY, title TEXT, "authorId" BIGINT, editor_id BIGINT,
  FOREIGN KEY ("authorId") REFERENCES users (id),
  FOREIGN KEY (editor_id) REFERENCES users (id));
CREATE TABLE comments (id BIGSERIAL PRIMARY KEY, "postId" BIGINT REFERENCES posts, body TEXT);
CREATE TABLE profiles (id BIGSERIAL PRIMARY KEY, "postId" BIGINT UNIQUE REFERENCES posts (id));
CREATE TABLE tags (id BIGSERIAL PRIMARY KEY, name TEXT);
CREATE TABLE posts_tags (
  "postId" BIGINT REFERENCES posts (id), "tagId" BIGINT REFERENCES tags (id), tagged_at TEXT,
  PRIMARY KEY ("postId", "tagId"));
CREATE TABLE a (x INTEGER, y INTEGER, PRIMARY KEY (x, y));
CREATE TABLE b (id BIGSERIAL PRIMARY KEY, ax INTEGER, ay INTEGER,
  FOREIGN KEY (ax, ay) REFERENCES a (x, y));
"#;

/// How many statements one introspection runs, and what it found.
async fn count_introspection(connector: &impl Connector) -> (usize, Vec<Collection>) {
    let counter = QueryCounter::default();
    let statements = counter.0.clone();
    let counting = tracing::Dispatch::new(counter);
    // With a single live dispatcher, tracing caches a call site's interest from the default
    // subscriber of whichever thread first reaches it: another test's thread, with none,
    // would disable sqlx's sites for good. With two live dispatchers it asks them all.
    let _second = tracing::Dispatch::new(QueryCounter::default());
    let all = {
        let _guard = tracing::dispatcher::set_default(&counting);
        connector.introspect().await.expect("introspect")
    };
    (statements.load(Ordering::SeqCst), all)
}

/// `n` more tables, each with a single and a composite foreign key into the blog schema.
fn more_tables(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "CREATE TABLE extra{i:02} (id BIGINT PRIMARY KEY, user_id BIGINT, ax INTEGER, \
                 ay INTEGER, FOREIGN KEY (user_id) REFERENCES users (id), \
                 FOREIGN KEY (ax, ay) REFERENCES a (x, y));\n"
            )
        })
        .collect()
}

/// The keys `more_tables` declares.
fn more_keys() -> Vec<ForeignKey> {
    vec![
        fk(&["user_id"], "users", &["id"]),
        fk(&["ax", "ay"], "a", &["x", "y"]),
    ]
}

#[tokio::test]
async fn the_blog_schema_reads_its_foreign_keys_and_relates_as_nocobase_names_it() {
    let db = TestDb::create().await;
    db.exec(BLOG).await;
    let connector = db.connect(json!({})).await;
    let mut all = connector.introspect().await.expect("introspect");

    let names: Vec<&str> = all.iter().map(Collection::name).collect();
    let expected = expected_foreign_keys();
    assert_eq!(names, expected.iter().map(|(n, _)| *n).collect::<Vec<_>>());
    for (name, keys) in &expected {
        assert_eq!(
            &find(&all, name).foreign_keys,
            keys,
            "foreign keys of {name}"
        );
    }

    derive(&mut all);
    for (name, expected) in expected_associations() {
        let mut got = find(&all, name).associations.clone();
        got.sort_by(|x, y| x.name.cmp(&y.name));
        assert_eq!(got, expected, "associations of {name}");
    }
    connector.close().await;
}

#[tokio::test]
async fn one_table_introspection_reads_the_same_foreign_keys() {
    let db = TestDb::create().await;
    db.exec(BLOG).await;
    let connector = db.connect(json!({})).await;
    for (name, keys) in expected_foreign_keys() {
        let one =
            introspect::collection(&SharedPool::new(connector.pool().clone()), "public", name)
                .await
                .expect("introspect one table");
        assert_eq!(one.foreign_keys, keys, "foreign keys of {name}");
    }
    connector.close().await;
}

#[tokio::test]
async fn keys_into_other_schemas_are_left_out_and_dotted_targets_are_renamed() {
    let db = TestDb::create().await;
    db.exec(
        r#"
        CREATE SCHEMA other;
        CREATE TABLE other.accounts (id BIGINT PRIMARY KEY);
        CREATE TABLE "app.settings" (key TEXT PRIMARY KEY);
        CREATE TABLE users (id BIGINT PRIMARY KEY);
        CREATE TABLE notes (
          id BIGINT PRIMARY KEY,
          account_id BIGINT REFERENCES other.accounts (id),
          setting_key TEXT REFERENCES "app.settings" (key),
          owner_id BIGINT REFERENCES users (id));
        CREATE TABLE other.notes (id BIGINT PRIMARY KEY, owner_id BIGINT REFERENCES public.users);
        CREATE VIEW note_view AS SELECT * FROM notes;
        CREATE TABLE events (id BIGINT, at DATE, owner_id BIGINT, PRIMARY KEY (id, at))
          PARTITION BY RANGE (at);
        CREATE TABLE events_2024 PARTITION OF events
          FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        ALTER TABLE events ADD FOREIGN KEY (owner_id) REFERENCES users (id);
        CREATE TABLE event_notes (id BIGINT PRIMARY KEY, event_id BIGINT, event_at DATE,
          FOREIGN KEY (event_id, event_at) REFERENCES events (id, at));
        "#,
    )
    .await;
    let connector = db.connect(json!({})).await;
    let all = connector.introspect().await.expect("introspect");
    assert_eq!(
        find(&all, "notes").foreign_keys,
        [
            fk(&["setting_key"], "app_settings", &["key"]),
            fk(&["owner_id"], "users", &["id"]),
        ]
    );
    assert!(find(&all, "note_view").foreign_keys.is_empty());
    // A partitioned table keeps its key once; its partitions are no collections, and the
    // copies PostgreSQL makes per partition of a partitioned target are not repeated.
    assert_eq!(
        find(&all, "events").foreign_keys,
        [fk(&["owner_id"], "users", &["id"])]
    );
    assert_eq!(
        find(&all, "event_notes").foreign_keys,
        [fk(&["event_id", "event_at"], "events", &["id", "at"])]
    );
    assert!(all.iter().all(|c| c.name() != "events_2024"));
    connector.close().await;
}

#[tokio::test]
async fn foreign_keys_cost_no_query_per_table() {
    let db = TestDb::create().await;
    db.exec(BLOG).await;
    let connector = db.connect(json!({"maxConnections": 1})).await;
    // The first introspection also learns the connection's types.
    connector.introspect().await.expect("introspect");
    let (few, _) = count_introspection(&connector).await;
    db.exec(&more_tables(40)).await;
    let (many, all) = count_introspection(&connector).await;
    assert_eq!(few, 2, "one query for columns, one for keys of every kind");
    assert_eq!(
        many, few,
        "40 more tables with foreign keys cost no more queries"
    );
    for i in 0..40 {
        assert_eq!(
            find(&all, &format!("extra{i:02}")).foreign_keys,
            more_keys()
        );
    }
    connector.close().await;
}
