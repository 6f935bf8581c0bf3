//! An in-memory database (`sqlite::memory:`) lives only as long as one of its connections:
//! its pool keeps exactly one open, never idles it out, and a file database's pool is
//! unchanged by that rule.

use std::time::Duration;

use manifold_sqlite::{SqliteConnector, SqlitePoolSettings};

fn settings() -> SqlitePoolSettings {
    SqlitePoolSettings {
        idle_timeout: Duration::from_millis(100),
        ..SqlitePoolSettings::default()
    }
}

#[tokio::test]
async fn an_in_memory_database_keeps_one_connection_and_its_rows() {
    for url in ["sqlite::memory:", "sqlite://shared?mode=memory"] {
        let connector = SqliteConnector::open(url, &settings())
            .await
            .expect("in-memory database");
        let pool = connector.pool();
        assert_eq!(pool.options().get_max_connections(), 1, "{url}");
        assert_eq!(pool.options().get_min_connections(), 1, "{url}");
        assert_eq!(pool.options().get_idle_timeout(), None, "{url}");
        sqlx::query("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
            .execute(pool)
            .await
            .expect("create");
        sqlx::query("INSERT INTO notes (text) VALUES ('kept')")
            .execute(pool)
            .await
            .expect("insert");
        // Well past the idle timeout a file pool would close its connections after.
        tokio::time::sleep(Duration::from_millis(400)).await;
        let kept: String = sqlx::query_scalar("SELECT text FROM notes")
            .fetch_one(pool)
            .await
            .expect("the rows are still there");
        assert_eq!(kept, "kept", "{url}");
    }
}

#[tokio::test]
async fn a_file_database_uses_the_configured_pool() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}", dir.path().join("file.sqlite").display());
    let connector = SqliteConnector::open(&url, &settings())
        .await
        .expect("file database");
    let options = connector.pool().options();
    assert_eq!(
        options.get_max_connections(),
        SqlitePoolSettings::default().max_connections
    );
    assert_eq!(options.get_min_connections(), 0);
    assert_eq!(options.get_idle_timeout(), Some(Duration::from_millis(100)));
}
