//! Seeding the dataset into each database, fast, and keeping it between runs.
//!
//! Every backend generates the rows inside the database (PostgreSQL `generate_series`,
//! MariaDB's Sequence engine, a recursive CTE in SQLite), so a million posts take seconds,
//! not a million round trips. A table `bench_seed` records the row count and
//! [`SEED_VERSION`]; a later run that asks for the same finds it and only deletes what
//! `:create` added.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context as _, Result};
use sqlx::{AssertSqlSafe, Connection, Executor};

use crate::{Backend, SEED_VERSION, TAGS};

/// Where the seeded databases are.
#[derive(Debug, Clone)]
pub struct Servers {
    /// `postgres://user@host:port` without a database.
    pub postgres: String,
    /// `mysql://user@host:port` without a database.
    pub mariadb: String,
}

/// The scratch database (PostgreSQL, MariaDB) for a row count.
pub fn database_name(rows: u64) -> String {
    format!("manifold_bench_{rows}")
}

/// The SQLite file name, under Manifold's `sources/` directory, for a row count.
pub fn sqlite_file(rows: u64) -> String {
    format!("manifold_bench_{rows}.sqlite")
}

/// Makes sure `backend` holds the dataset of `rows` posts: reuses a matching seed (rows a
/// previous `:create` added are deleted by [`reset`]), else builds it. Returns whether it
/// seeded.
pub async fn ensure(
    backend: Backend,
    servers: &Servers,
    sqlite_path: &Path,
    rows: u64,
    force: bool,
) -> Result<bool> {
    let started = Instant::now();
    let seeded = match backend {
        Backend::Postgres => postgres(servers, rows, force).await?,
        Backend::MariaDb => mariadb(servers, rows, force).await?,
        Backend::Sqlite => sqlite(sqlite_path, rows, force).await?,
    };
    eprintln!(
        "  {backend} {rows} rows: {} in {:.1} s",
        if seeded { "seeded" } else { "reused" },
        started.elapsed().as_secs_f64()
    );
    Ok(seeded)
}

/// Deletes the posts `:create` added, so every measurement starts from the seeded rows.
pub async fn reset(
    backend: Backend,
    servers: &Servers,
    sqlite_path: &Path,
    rows: u64,
) -> Result<()> {
    let sql = format!("DELETE FROM posts WHERE id > {rows}");
    match backend {
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&format!(
                "{}/{}",
                servers.postgres,
                database_name(rows)
            ))
            .await?;
            let done = c.execute(AssertSqlSafe(sql)).await?;
            if done.rows_affected() > 0 {
                // Dead tuples would otherwise make the next COUNT(*) scan more pages.
                c.execute("VACUUM ANALYZE posts").await?;
            }
        }
        Backend::MariaDb => {
            let mut c = sqlx::MySqlConnection::connect(&format!(
                "{}/{}",
                servers.mariadb,
                database_name(rows)
            ))
            .await?;
            c.execute(AssertSqlSafe(sql)).await?;
        }
        Backend::Sqlite => {
            let mut c = sqlite_connect(sqlite_path).await?;
            c.execute(AssertSqlSafe(sql)).await?;
            c.execute("PRAGMA wal_checkpoint(TRUNCATE)").await?;
        }
    }
    Ok(())
}

/// `(rows_seeded, version)` of the marker table, if there is one.
macro_rules! seeded_rows {
    ($conn:expr) => {
        sqlx::query_as::<_, (i64, i64)>("SELECT rows_seeded, version FROM bench_seed")
            .fetch_one($conn)
            .await
            .ok()
    };
}

async fn postgres(servers: &Servers, rows: u64, force: bool) -> Result<bool> {
    let name = database_name(rows);
    let mut admin = sqlx::PgConnection::connect(&format!("{}/postgres", servers.postgres))
        .await
        .context("connecting to PostgreSQL (database postgres)")?;
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut admin)
        .await?;
    if exists.is_none() {
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await?;
    }
    admin.close().await?;
    let mut c = sqlx::PgConnection::connect(&format!("{}/{name}", servers.postgres)).await?;
    if !force && seeded_rows!(&mut c) == Some((rows as i64, SEED_VERSION)) {
        return Ok(false);
    }
    let n = rows;
    let script = format!(
        r#"
SET synchronous_commit = off;
DROP TABLE IF EXISTS comments, posts_tags, tags, posts, bench_seed CASCADE;
CREATE TABLE posts (id bigserial PRIMARY KEY, title varchar(200) NOT NULL, body text,
  score integer NOT NULL, status varchar(20) NOT NULL, "createdAt" timestamptz NOT NULL);
CREATE TABLE tags (id serial PRIMARY KEY, name varchar(50) NOT NULL);
CREATE TABLE posts_tags ("postId" bigint NOT NULL, "tagId" integer NOT NULL,
  PRIMARY KEY ("postId", "tagId"));
CREATE TABLE comments (id bigserial PRIMARY KEY, "postId" bigint NOT NULL, body text NOT NULL);
INSERT INTO posts SELECT i, 'Post number ' || i, repeat('Lorem ipsum dolor sit amet. ', 4) || i,
  (i::bigint * 7919) % 1000, (ARRAY['draft', 'published', 'archived'])[i % 3 + 1],
  timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute'
  FROM generate_series(1, {n}) i;
INSERT INTO tags SELECT i, 'tag-' || i FROM generate_series(1, {TAGS}) i;
INSERT INTO posts_tags SELECT i, i % {TAGS} + 1 FROM generate_series(1, {n}) i
  UNION ALL SELECT i, (i + 37) % {TAGS} + 1 FROM generate_series(1, {n}) i;
INSERT INTO comments SELECT j, (j + 1) / 2, 'Comment ' || j || ' on post ' || (j + 1) / 2
  FROM generate_series(1, 2 * {n}) j;
SELECT setval('posts_id_seq', {n}), setval('tags_id_seq', {TAGS}), setval('comments_id_seq', 2 * {n});
CREATE INDEX posts_score_idx ON posts (score);
CREATE INDEX posts_tags_tag_idx ON posts_tags ("tagId");
CREATE INDEX comments_post_idx ON comments ("postId");
ALTER TABLE posts_tags ADD FOREIGN KEY ("postId") REFERENCES posts (id),
  ADD FOREIGN KEY ("tagId") REFERENCES tags (id);
ALTER TABLE comments ADD FOREIGN KEY ("postId") REFERENCES posts (id);
CREATE TABLE bench_seed (rows_seeded bigint PRIMARY KEY, version bigint NOT NULL);
INSERT INTO bench_seed VALUES ({n}, {SEED_VERSION});
"#
    );
    sqlx::raw_sql(AssertSqlSafe(script))
        .execute(&mut c)
        .await
        .context("seeding PostgreSQL")?;
    // VACUUM cannot run inside the implicit transaction of a multi-statement script.
    c.execute("VACUUM ANALYZE").await?;
    Ok(true)
}

async fn mariadb(servers: &Servers, rows: u64, force: bool) -> Result<bool> {
    let name = database_name(rows);
    let mut admin = sqlx::MySqlConnection::connect(&servers.mariadb)
        .await
        .context("connecting to MariaDB")?;
    admin
        .execute(AssertSqlSafe(format!(
            "CREATE DATABASE IF NOT EXISTS {name}"
        )))
        .await?;
    admin.close().await?;
    let mut c = sqlx::MySqlConnection::connect(&format!("{}/{name}", servers.mariadb)).await?;
    if !force && seeded_rows!(&mut c) == Some((rows as i64, SEED_VERSION)) {
        return Ok(false);
    }
    let n = rows;
    // The Sequence engine's seq_1_to_N tables generate the row numbers.
    let script = format!(
        r#"
SET time_zone = '+00:00', foreign_key_checks = 0, unique_checks = 0;
DROP TABLE IF EXISTS comments, posts_tags, tags, posts, bench_seed;
CREATE TABLE posts (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, title VARCHAR(200) NOT NULL,
  body TEXT, score INT NOT NULL, status VARCHAR(20) NOT NULL,
  createdAt TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, KEY posts_score_idx (score))
  ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
CREATE TABLE tags (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL)
  ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
CREATE TABLE posts_tags (postId BIGINT NOT NULL, tagId INT NOT NULL,
  PRIMARY KEY (postId, tagId), KEY posts_tags_tag_idx (tagId),
  FOREIGN KEY (postId) REFERENCES posts (id), FOREIGN KEY (tagId) REFERENCES tags (id))
  ENGINE = InnoDB;
CREATE TABLE comments (id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, postId BIGINT NOT NULL,
  body TEXT NOT NULL, KEY comments_post_idx (postId), FOREIGN KEY (postId) REFERENCES posts (id))
  ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
INSERT INTO posts SELECT seq, CONCAT('Post number ', seq),
  CONCAT(REPEAT('Lorem ipsum dolor sit amet. ', 4), seq), (seq * 7919) % 1000,
  ELT(seq % 3 + 1, 'draft', 'published', 'archived'),
  TIMESTAMP '2024-01-01 00:00:00' + INTERVAL seq MINUTE
  FROM seq_1_to_{n};
INSERT INTO tags SELECT seq, CONCAT('tag-', seq) FROM seq_1_to_{TAGS};
INSERT INTO posts_tags SELECT seq, seq % {TAGS} + 1 FROM seq_1_to_{n};
INSERT INTO posts_tags SELECT seq, (seq + 37) % {TAGS} + 1 FROM seq_1_to_{n};
INSERT INTO comments SELECT seq, (seq + 1) DIV 2,
  CONCAT('Comment ', seq, ' on post ', (seq + 1) DIV 2) FROM seq_1_to_{n2};
CREATE TABLE bench_seed (rows_seeded BIGINT PRIMARY KEY, version BIGINT NOT NULL);
INSERT INTO bench_seed VALUES ({n}, {SEED_VERSION});
ANALYZE TABLE posts, tags, posts_tags, comments;
"#,
        n2 = 2 * n
    );
    sqlx::raw_sql(AssertSqlSafe(script))
        .execute(&mut c)
        .await
        .context("seeding MariaDB")?;
    Ok(true)
}

async fn sqlite_connect(path: &Path) -> Result<sqlx::SqliteConnection> {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal);
    sqlx::SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("opening {}", path.display()))
}

async fn sqlite(path: &Path, rows: u64, force: bool) -> Result<bool> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if !force && path.exists() {
        let mut c = sqlite_connect(path).await?;
        if seeded_rows!(&mut c) == Some((rows as i64, SEED_VERSION)) {
            return Ok(false);
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        if Path::new(&file).exists() {
            std::fs::remove_file(&file).with_context(|| format!("removing {file}"))?;
        }
    }
    let mut c = sqlite_connect(path).await?;
    let n = rows;
    let script = format!(
        r#"
CREATE TABLE posts (id INTEGER PRIMARY KEY AUTOINCREMENT, title VARCHAR(200) NOT NULL, body TEXT,
  score INTEGER NOT NULL, status VARCHAR(20) NOT NULL, "createdAt" DATETIME NOT NULL);
CREATE TABLE tags (id INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(50) NOT NULL);
CREATE TABLE posts_tags ("postId" INTEGER NOT NULL REFERENCES posts (id),
  "tagId" INTEGER NOT NULL REFERENCES tags (id), PRIMARY KEY ("postId", "tagId"));
CREATE TABLE comments (id INTEGER PRIMARY KEY AUTOINCREMENT,
  "postId" INTEGER NOT NULL REFERENCES posts (id), body TEXT NOT NULL);
BEGIN;
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n})
INSERT INTO posts SELECT i, 'Post number ' || i,
  'Lorem ipsum dolor sit amet. Lorem ipsum dolor sit amet. Lorem ipsum dolor sit amet. Lorem ipsum dolor sit amet. ' || i,
  (i * 7919) % 1000,
  CASE i % 3 WHEN 0 THEN 'draft' WHEN 1 THEN 'published' ELSE 'archived' END,
  strftime('%Y-%m-%dT%H:%M:%S.000Z', '2024-01-01 00:00:00', '+' || i || ' minutes')
  FROM s;
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {TAGS})
INSERT INTO tags SELECT i, 'tag-' || i FROM s;
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n})
INSERT INTO posts_tags SELECT i, i % {TAGS} + 1 FROM s
  UNION ALL SELECT i, (i + 37) % {TAGS} + 1 FROM s;
WITH RECURSIVE s(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM s WHERE j < 2 * {n})
INSERT INTO comments SELECT j, (j + 1) / 2, 'Comment ' || j || ' on post ' || ((j + 1) / 2) FROM s;
CREATE INDEX posts_score_idx ON posts (score);
CREATE INDEX posts_tags_tag_idx ON posts_tags ("tagId");
CREATE INDEX comments_post_idx ON comments ("postId");
CREATE TABLE bench_seed (rows_seeded INTEGER PRIMARY KEY, version INTEGER NOT NULL);
INSERT INTO bench_seed VALUES ({n}, {SEED_VERSION});
COMMIT;
ANALYZE;
PRAGMA wal_checkpoint(TRUNCATE);
"#
    );
    sqlx::raw_sql(AssertSqlSafe(script))
        .execute(&mut c)
        .await
        .context("seeding SQLite")?;
    Ok(true)
}
