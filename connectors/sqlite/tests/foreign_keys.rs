//! Foreign keys read by the SQLite connector, and the associations the core derives from
//! them, on NocoBase's blog schema in a scratch database file.

use manifold_core::associations::derive;
use manifold_core::connector::Connector;
use manifold_core::schema::Collection;
use manifold_sqlite::{SqliteConnector, SqlitePoolSettings, introspect};

#[path = "../../sql/tests/shared/blog_relations.rs"]
mod blog_relations;
use blog_relations::{expected_associations, expected_foreign_keys, find, fk};

/// NocoBase's blog schema plus a composite key. `comments` references `posts` without a
/// column (SQLite then means the primary key), and `posts_tags` spells its target `TAGS
/// (ID)` (SQLite matches those names case-insensitively).
const BLOG: &str = r#"
CREATE TABLE users (id INTEGER PRIMARY KEY, nickname TEXT);
CREATE TABLE posts (
  id INTEGER PRIMARY KEY, title TEXT, "authorId" INTEGER, editor_id INTEGER,
  FOREIGN KEY ("authorId") REFERENCES users (id),
  FOREIGN KEY (editor_id) REFERENCES users (id));
CREATE TABLE comments (id INTEGER PRIMARY KEY, "postId" INTEGER REFERENCES posts, body TEXT);
CREATE TABLE profiles (id INTEGER PRIMARY KEY, "postId" INTEGER UNIQUE REFERENCES posts (id));
CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT);
CREATE TABLE posts_tags (
  "postId" INTEGER REFERENCES posts (id), "tagId" INTEGER REFERENCES TAGS (ID), tagged_at TEXT,
  PRIMARY KEY ("postId", "tagId"));
CREATE TABLE a (x INTEGER, y INTEGER, PRIMARY KEY (x, y));
CREATE TABLE b (id INTEGER PRIMARY KEY, ax INTEGER, ay INTEGER,
  FOREIGN KEY (ax, ay) REFERENCES a (x, y));
"#;

/// A connector on a fresh database file in a directory removed with the guard.
async fn open() -> (tempfile::TempDir, SqliteConnector) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("fk.sqlite").display());
    let connector = SqliteConnector::open(&url, &SqlitePoolSettings::default())
        .await
        .expect("open");
    (dir, connector)
}

async fn exec(connector: &SqliteConnector, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(connector.pool())
        .await
        .unwrap_or_else(|e| panic!("setup SQL failed: {e}\n{sql}"));
}

#[tokio::test]
async fn the_blog_schema_reads_its_foreign_keys_and_relates_as_nocobase_names_it() {
    let (_dir, connector) = open().await;
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
}

#[tokio::test]
async fn one_table_introspection_reads_the_same_foreign_keys() {
    let (_dir, connector) = open().await;
    exec(&connector, BLOG).await;
    for (name, keys) in expected_foreign_keys() {
        let mut connection = connector.pool().acquire().await.expect("a connection");
        let one = introspect::collection(&mut connection, name, false)
            .await
            .expect("introspect one table");
        assert_eq!(one.foreign_keys, keys, "foreign keys of {name}");
    }
}

#[tokio::test]
async fn keys_without_a_resolvable_target_are_left_out() {
    let (_dir, connector) = open().await;
    exec(
        &connector,
        r#"
        CREATE TABLE keyless (v INTEGER);
        CREATE TABLE users (id INTEGER PRIMARY KEY);
        CREATE TABLE notes (
          id INTEGER PRIMARY KEY,
          ghost_id INTEGER REFERENCES ghosts (id),
          keyless_v INTEGER REFERENCES keyless,
          owner_id INTEGER REFERENCES users,
          misspelt_id INTEGER REFERENCES users (uid));
        CREATE VIEW note_view AS SELECT * FROM notes;
        "#,
    )
    .await;
    let all = connector.introspect().await.expect("introspect");
    // A missing table, a missing column, and a reference to the primary key of a table
    // without one cannot be related; the key beside them still is, and a view has no keys.
    assert_eq!(
        find(&all, "notes").foreign_keys,
        [fk(&["owner_id"], "users", &["id"])]
    );
    assert!(find(&all, "note_view").foreign_keys.is_empty());
}
