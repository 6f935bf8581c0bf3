//! A main database that already holds a table of a name Manifold needs for its accounts
//! (a `users` table made before, say): a compatible one gets the missing columns and is
//! used, rows and foreign keys intact; an incompatible one stops the start with an error
//! naming the table and the conflict, and is left untouched; a restart changes nothing.
//!
//! Accounts live in the main database, so these run on the three main backends.

use manifold_tests::{Backend, MainDb, ROOT_PASSWORD, TestApp, current_backend, every_backend};
use poem::http::Method;
use serde_json::{Value as Json, json};

/// `name` quoted for the backend (PostgreSQL folds unquoted names to lower case).
fn q(name: &str) -> String {
    match current_backend() {
        Backend::MariaDb => format!("`{name}`"),
        _ => format!("\"{name}\""),
    }
}

/// An integer primary key `id` the database fills, as each backend writes one.
fn auto_id() -> &'static str {
    match current_backend() {
        Backend::Sqlite => "id INTEGER PRIMARY KEY",
        Backend::Postgres => "id SERIAL PRIMARY KEY",
        Backend::MariaDb => "id INT AUTO_INCREMENT PRIMARY KEY",
    }
}

/// A main database prepared with `statements`.
async fn prepared(statements: &[String]) -> MainDb {
    let db = MainDb::create().await;
    let statements: Vec<&str> = statements.iter().map(String::as_str).collect();
    db.sql(&statements).await;
    db
}

/// `users(id, name, email, status)` with two people, and `posts.authorId → users.id`.
fn users_and_posts() -> Vec<String> {
    vec![
        format!(
            "CREATE TABLE users ({}, name VARCHAR(100), email VARCHAR(100), \
             status VARCHAR(20) NOT NULL DEFAULT 'active')",
            auto_id()
        ),
        "INSERT INTO users (name, email) VALUES ('Ada', 'ada@example.com'), ('Brian', 'brian@example.com')"
            .into(),
        format!(
            "CREATE TABLE posts ({}, title VARCHAR(100), {author} INTEGER, \
             FOREIGN KEY ({author}) REFERENCES users (id))",
            auto_id(),
            author = q("authorId")
        ),
        format!("INSERT INTO posts (title, {}) VALUES ('First', 1), ('Second', 2), ('Third', 1)", q("authorId")),
    ]
}

/// Signs in anonymously; the status and the answer.
async fn sign_in(t: &TestApp, account: &str, password: &str) -> (u16, Json) {
    let r = t
        .main_as(
            "",
            Method::POST,
            "/api/auth:signIn",
            Some(json!({ "account": account, "password": password })),
        )
        .await;
    (r.status, r.body)
}

/// The users as root reads them, by id: `[id, name, email, status, username]`.
async fn people(t: &TestApp) -> Vec<Json> {
    let r = t
        .main(Method::GET, "/api/users:list?sort=id&pageSize=100", None)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.data()
        .as_array()
        .expect("rows")
        .iter()
        .map(|u| json!([u["id"], u["name"], u["email"], u["status"], u["username"]]))
        .collect()
}

/// The authors `posts:list?appends=author` embeds, by post.
async fn authors(t: &TestApp) -> Vec<Json> {
    let r = t
        .main(Method::GET, "/api/posts:list?appends=author&sort=id", None)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.data()
        .as_array()
        .expect("rows")
        .iter()
        .map(|p| json!([p["title"], p["author"]["name"], p["author"].get("password")]))
        .collect()
}

every_backend! {
    // Accounts live in the main database: a registered source adds nothing here.
    #[skip(mongodb, mssql)]
    async fn an_existing_users_table_gets_the_sign_in_columns_and_keeps_its_rows() {
        let db = prepared(&users_and_posts()).await;
        let t = match db.start().await {
            Ok(t) => t,
            Err((_, e)) => panic!("a compatible users table is adopted: {e}"),
        };
        let columns = t.columns("users").await;
        assert_eq!(columns[..4], ["id", "name", "email", "status"], "existing columns first, unchanged");
        for added in ["nickname", "username", "phone", "password", "passwordChangeTz", "createdById", "createdAt"] {
            assert!(columns.iter().any(|c| c == added), "{added} added: {columns:?}");
        }

        // Every row kept; root is a new row after them.
        let before = people(&t).await;
        assert_eq!(
            before,
            [
                json!([1, "Ada", "ada@example.com", "active", null]),
                json!([2, "Brian", "brian@example.com", "active", null]),
                json!([3, null, null, "active", "root"]),
            ]
        );
        let (status, body) = sign_in(&t, "root", ROOT_PASSWORD).await;
        assert_eq!(status, 200, "{body:?}");
        assert_eq!(body["data"]["user"]["id"], json!(3));

        // The relation users already had still works, and shows no password.
        let expected_authors = [
            json!(["First", "Ada", null]),
            json!(["Second", "Brian", null]),
            json!(["Third", "Ada", null]),
        ];
        assert_eq!(authors(&t).await, expected_authors);

        // A user made through the API signs in.
        let carol = t
            .main(Method::POST, "/api/users:create",
                Some(json!({ "username": "carol", "email": "carol@example.com", "password": "carol-secret-1", "roles": ["member"] })))
            .await;
        assert_eq!(carol.status, 200, "{:?}", carol.body);
        assert_eq!(sign_in(&t, "carol@example.com", "carol-secret-1").await.0, 200);
        let again = t
            .main(Method::POST, "/api/users:create",
                Some(json!({ "username": "carol", "password": "other-secret-1" })))
            .await;
        assert_eq!(again.status, 400, "the added username is unique: {:?}", again.body);

        // The rows that were there are accounts without a password until an admin sets one.
        let (status, body) = sign_in(&t, "ada@example.com", "").await;
        assert_eq!(status, 401, "{body:?}");
        let r = t
            .main(Method::POST, "/api/users:update?filterByTk=1",
                Some(json!({ "password": "ada-secret-1", "roles": ["member"] })))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let (status, body) = sign_in(&t, "ada@example.com", "ada-secret-1").await;
        assert_eq!(status, 200, "{body:?}");
        assert_eq!(body["data"]["user"]["name"], json!("Ada"));
        let ada = body["data"]["token"].as_str().expect("token").to_owned();
        let me = t.main_as(&format!("Bearer {ada}"), Method::GET, "/api/auth:check", None).await;
        assert_eq!((me.status, &me.data()["id"]), (200, &json!(1)), "{:?}", me.body);

        // A restart finds nothing to add and no root to make.
        let after_first_start = people(&t).await;
        let t = t.restart().await;
        assert_eq!(t.columns("users").await, columns);
        assert_eq!(people(&t).await, after_first_start);
        assert_eq!(after_first_start.len(), 4, "{after_first_start:?}");
        assert_eq!(sign_in(&t, "root", ROOT_PASSWORD).await.0, 200);
        assert_eq!(sign_in(&t, "carol", "carol-secret-1").await.0, 200);
        assert_eq!(sign_in(&t, "ada@example.com", "ada-secret-1").await.0, 200);
        assert_eq!(authors(&t).await, expected_authors);
    }
}

/// Starts on a database prepared with `statements`, expects the start to fail, and returns
/// the error's message and the database.
async fn refused(statements: &[String]) -> (String, MainDb) {
    match prepared(statements).await.start().await {
        Ok(_) => panic!("started over {statements:?}"),
        Err((db, e)) => (e.message().to_owned(), db),
    }
}

every_backend! {
    // Accounts live in the main database: a registered source adds nothing here.
    #[skip(mongodb, mssql)]
    async fn an_incompatible_table_stops_the_start_naming_it_and_the_conflict() {
        let id = auto_id();
        let cases: Vec<(Vec<String>, &str, Vec<&str>)> = vec![
            (
                vec![format!("CREATE TABLE users ({id}, username INTEGER)")],
                "users",
                vec!["its column username is integer", "Manifold needs string"],
            ),
            (
                vec!["CREATE TABLE users (a INTEGER NOT NULL, b INTEGER NOT NULL, PRIMARY KEY (a, b))".into()],
                "users",
                vec!["its primary key is (a, b)", "a single key id"],
            ),
            (
                vec!["CREATE TABLE users (id VARCHAR(36) PRIMARY KEY, email VARCHAR(100))".into()],
                "users",
                vec!["its primary key id is string", "needs an integer"],
            ),
            (
                vec!["CREATE TABLE users (id INTEGER NOT NULL PRIMARY KEY, email VARCHAR(100))"
                    .replace("INTEGER NOT NULL PRIMARY KEY", match current_backend() {
                        // SQLite's INTEGER PRIMARY KEY is its rowid, always filled.
                        Backend::Sqlite => "BIGINT NOT NULL PRIMARY KEY",
                        _ => "INTEGER NOT NULL PRIMARY KEY",
                    })],
                "users",
                vec!["its primary key id is not filled by the database"],
            ),
            (
                vec![format!("CREATE TABLE users ({id}, name VARCHAR(100) NOT NULL)")],
                "users",
                vec!["its column name is NOT NULL without a default"],
            ),
            (
                vec![format!("CREATE TABLE {} ({id}, name VARCHAR(100))", q("rolesUsers"))],
                "rolesUsers",
                vec!["its primary key is (id integer) where Manifold needs (userId integer, roleName string)"],
            ),
        ];
        for (statements, table, conflicts) in cases {
            let (message, db) = refused(&statements).await;
            assert!(
                message.contains(&format!("has a table {table} ")),
                "{statements:?}: {message}"
            );
            for conflict in conflicts {
                assert!(message.contains(conflict), "{statements:?}: {message}");
            }
            assert!(!db.columns(table).await.iter().any(|c| c == "password" || c == "createdAt"),
                "{table} left as it was");
        }

        // Every table is checked before any is changed: a compatible users table is not
        // altered when roles conflicts.
        let mut statements = users_and_posts();
        statements.push("CREATE TABLE roles (name INTEGER PRIMARY KEY, title VARCHAR(100))".into());
        let (message, db) = refused(&statements).await;
        assert!(message.contains("has a table roles "), "{message}");
        assert!(
            message.contains("its primary key is (name integer) where Manifold needs (name string)"),
            "{message}"
        );
        assert_eq!(db.columns("users").await, ["id", "name", "email", "status"]);
    }
}
