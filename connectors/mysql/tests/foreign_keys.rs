//! Foreign keys read by the MySQL/MariaDB connector, and the associations the core derives
//! from them, on NocoBase's blog schema.
//!
//! Every test creates its own database `manifold_my_<random>` through
//! `mysql://root@127.0.0.1:3306/mysql` (or `MANIFOLD_TEST_MYSQL_URL`) and drops it when it
//! ends, failed or not. A missing server fails the test: nothing here is skipped.

use manifold_core::associations::derive;
use manifold_core::connector::Connector;
use manifold_core::schema::{Collection, ForeignKey};
use manifold_mysql::{MySqlConnector, introspect};
use manifold_sql::pool::SharedPool;
use serde_json::json;
use sqlx::AssertSqlSafe;

#[path = "../../sql/tests/shared/blog_relations.rs"]
mod blog_relations;
use blog_relations::{expected_associations, expected_foreign_keys, find, fk};

mod common;
use common::*;

/// NocoBase's blog schema plus a composite key. Every key is a table constraint: MySQL
/// parses an inline `REFERENCES` and ignores it.
const BLOG: &str = "
CREATE TABLE users (id BIGINT AUTO_INCREMENT PRIMARY KEY, nickname TEXT);
CREATE TABLE posts (
  id BIGINT AUTO_INCREMENT PRIMARY KEY, title TEXT, authorId BIGINT, editor_id BIGINT,
  FOREIGN KEY (authorId) REFERENCES users (id),
  FOREIGN KEY (editor_id) REFERENCES users (id));
CREATE TABLE comments (id BIGINT AUTO_INCREMENT PRIMARY KEY, postId BIGINT, body TEXT,
  FOREIGN KEY (postId) REFERENCES posts (id));
CREATE TABLE profiles (id BIGINT AUTO_INCREMENT PRIMARY KEY, postId BIGINT UNIQUE,
  FOREIGN KEY (postId) REFERENCES posts (id));
CREATE TABLE tags (id BIGINT AUTO_INCREMENT PRIMARY KEY, name TEXT);
CREATE TABLE posts_tags (postId BIGINT, tagId BIGINT, tagged_at TEXT,
  PRIMARY KEY (postId, tagId),
  FOREIGN KEY (postId) REFERENCES posts (id),
  FOREIGN KEY (tagId) REFERENCES tags (id));
CREATE TABLE a (x INT, y INT, PRIMARY KEY (x, y));
CREATE TABLE b (id BIGINT AUTO_INCREMENT PRIMARY KEY, ax INT, ay INT,
  FOREIGN KEY (ax, ay) REFERENCES a (x, y));
";

async fn exec(connector: &MySqlConnector, sql: &str) {
    sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
        .execute(connector.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// How many statements one introspection runs, and what it found.
async fn count_introspection(connector: &impl Connector) -> (usize, Vec<Collection>) {
    let (statements, all) = statements_of(connector.introspect()).await;
    (statements, all.expect("introspect"))
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
    let connector = db.connector().await;
    exec(&connector, BLOG).await;
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
    let connector = db.connector().await;
    exec(&connector, BLOG).await;
    for (name, keys) in expected_foreign_keys() {
        let one = introspect::collection(
            &SharedPool::new(connector.pool().clone()),
            connector.flavor(),
            name,
        )
        .await
        .expect("introspect one table");
        assert_eq!(one.foreign_keys, keys, "foreign keys of {name}");
    }
    connector.close().await;
}

#[tokio::test]
async fn keys_into_other_databases_are_left_out_and_generated_names_keep_declaration_order() {
    let other = TestDb::create().await;
    let db = TestDb::create().await;
    let connector = db.connector().await;
    let columns: Vec<String> = (1..=11).map(|i| format!("u{i}_id BIGINT")).collect();
    let keys: Vec<String> = (1..=11)
        .map(|i| format!("FOREIGN KEY (u{i}_id) REFERENCES users (id)"))
        .collect();
    exec(
        &connector,
        &format!(
            "CREATE TABLE `{other}`.accounts (id BIGINT PRIMARY KEY);
             CREATE TABLE users (id BIGINT PRIMARY KEY);
             CREATE TABLE notes (id BIGINT PRIMARY KEY, account_id BIGINT, owner_id BIGINT,
               FOREIGN KEY (account_id) REFERENCES `{other}`.accounts (id),
               FOREIGN KEY (owner_id) REFERENCES users (id));
             CREATE VIEW note_view AS SELECT * FROM notes;
             CREATE TABLE many (id BIGINT PRIMARY KEY, {}, {});",
            columns.join(", "),
            keys.join(", "),
            other = other.name,
        ),
    )
    .await;
    let all = connector.introspect().await.expect("introspect");
    assert_eq!(
        find(&all, "notes").foreign_keys,
        [fk(&["owner_id"], "users", &["id"])]
    );
    assert!(find(&all, "note_view").foreign_keys.is_empty());
    // `many_ibfk_10` and `many_ibfk_11` come after `many_ibfk_9`, as declared.
    let expected: Vec<ForeignKey> = (1..=11)
        .map(|i| fk(&[&format!("u{i}_id")], "users", &["id"]))
        .collect();
    assert_eq!(find(&all, "many").foreign_keys, expected);
    connector.close().await;
    drop(db);
    drop(other);
}

#[tokio::test]
async fn foreign_keys_cost_no_query_per_table() {
    let db = TestDb::create().await;
    let connector = db.connector_with(json!({"maxConnections": 1})).await;
    exec(&connector, BLOG).await;
    // The first introspection also runs what a fresh connection runs once.
    connector.introspect().await.expect("introspect");
    let (few, _) = count_introspection(&connector).await;
    exec(&connector, &more_tables(40)).await;
    let (many, all) = count_introspection(&connector).await;
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
