//! Relations found from foreign keys: embedding with `appends` (batched, one query per
//! association level), `fields`/`except` inside appends, and association resources
//! (`/api/posts/1/comments:list`), on every backend.

use manifold_tests::{Backend, TestApp, every_backend};
use serde_json::{Value as Json, json};

/// NocoBase's blog schema, with foreign keys, and a few rows.
async fn blog() -> TestApp {
    let t = TestApp::new().await;
    let text = if t.backend == Backend::MariaDb {
        "VARCHAR(100)"
    } else {
        "TEXT"
    };
    let statements = vec![
        format!("CREATE TABLE users (id INTEGER PRIMARY KEY, name {text})"),
        format!(
            "CREATE TABLE posts (id INTEGER PRIMARY KEY, title {text}, authorId INTEGER REFERENCES users (id))"
        ),
        format!(
            "CREATE TABLE comments (id INTEGER PRIMARY KEY, content {text}, postId INTEGER REFERENCES posts (id))"
        ),
        format!("CREATE TABLE tags (id INTEGER PRIMARY KEY, name {text})"),
        format!(
            "CREATE TABLE posts_tags (postId INTEGER NOT NULL REFERENCES posts (id), tagId INTEGER NOT NULL REFERENCES tags (id), tagged_at {text}, PRIMARY KEY (postId, tagId))"
        ),
        "INSERT INTO users VALUES (1, 'ann'), (2, 'bo')".to_owned(),
        "INSERT INTO posts VALUES (1, 'p1', 1), (2, 'p2', 1), (3, 'p3', 2), (4, 'p4', NULL)"
            .to_owned(),
        "INSERT INTO comments VALUES (1, 'c1', 1), (2, 'c2', 1), (3, 'c3', 3)".to_owned(),
        "INSERT INTO tags VALUES (1, 't1'), (2, 't2'), (3, 't3')".to_owned(),
        "INSERT INTO posts_tags VALUES (1, 1, 'a'), (1, 2, 'b'), (2, 2, 'c')".to_owned(),
    ];
    // MariaDB reads inline REFERENCES but does not enforce or report them: declare them
    // as table constraints there. PostgreSQL folds unquoted names to lower case; NocoBase
    // quotes its camelCase columns there, and so does this schema.
    let statements: Vec<String> = match t.backend {
        Backend::MariaDb => statements.iter().map(|s| mariadb_foreign_keys(s)).collect(),
        Backend::Postgres => statements
            .iter()
            .map(|s| {
                ["authorId", "postId", "tagId"]
                    .iter()
                    .fold(s.clone(), |s, c| s.replace(c, &format!("\"{c}\"")))
            })
            .collect(),
        Backend::Sqlite => statements,
    };
    let refs: Vec<&str> = statements.iter().map(String::as_str).collect();
    t.sql(&refs).await;
    t
}

fn mariadb_foreign_keys(statement: &str) -> String {
    let mut out = statement.to_owned();
    let mut constraints = Vec::new();
    while let Some(at) = out.find(" REFERENCES ") {
        let column_start = out[..at]
            .rfind(", ")
            .map_or(out.find('(').unwrap_or(0) + 1, |i| i + 2);
        let column = out[column_start..at]
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_owned();
        let rest = &out[at + " REFERENCES ".len()..];
        let end = rest.find(')').map_or(rest.len(), |i| i + 1);
        constraints.push(format!(
            "FOREIGN KEY ({column}) REFERENCES {}",
            &rest[..end]
        ));
        out = format!("{}{}", &out[..at], &rest[end..]);
    }
    if constraints.is_empty() {
        return out;
    }
    let close = out.rfind(')').unwrap_or(out.len());
    format!(
        "{}, {}{}",
        &out[..close],
        constraints.join(", "),
        &out[close..]
    )
}

every_backend! {
    async fn foreign_keys_become_named_relations() {
        let t = blog().await;
        let r = t.get("/api/collections:get/posts").await;
        let relations: Vec<(Json, Json)> = r.data()["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .filter(|f| f.get("target").is_some())
            .map(|f| (f["name"].clone(), f["type"].clone()))
            .collect();
        assert!(relations.contains(&(json!("author"), json!("belongsTo"))), "{relations:?}");
        assert!(relations.contains(&(json!("comments"), json!("hasMany"))), "{relations:?}");
        assert!(relations.contains(&(json!("tags"), json!("belongsToMany"))), "{relations:?}");
    }
}

every_backend! {
    async fn appends_embed_every_kind_of_relation() {
        let t = blog().await;
        let r = t.get("/api/posts:list?appends=author,tags,comments&sort=id").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let p1 = &r.data()[0];
        assert_eq!(p1["author"]["name"], json!("ann"));
        assert_eq!(p1["comments"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            p1["tags"].as_array().expect("tags").iter().map(|t| t["name"].clone()).collect::<Vec<_>>(),
            [json!("t1"), json!("t2")]
        );
        let p4 = &r.data()[3];
        assert_eq!(p4["author"], Json::Null, "a NULL foreign key embeds null");
        assert_eq!(p4["comments"], json!([]));
        assert_eq!(p4["tags"], json!([]));
        let r = t.get("/api/users:list?appends=posts.comments&sort=id").await;
        let ann_posts = r.data()[0]["posts"].as_array().expect("posts");
        assert_eq!(ann_posts.len(), 2);
        assert_eq!(ann_posts[0]["comments"].as_array().map(Vec::len), Some(2));
    }
}

every_backend! {
    async fn fields_and_except_reach_inside_appends() {
        let t = blog().await;
        let r = t.get("/api/posts:get/1?fields=title,tags.name").await;
        assert_eq!(
            r.data(),
            &json!({"title": "p1", "tags": [{"name": "t1"}, {"name": "t2"}]})
        );
        let r = t.get("/api/posts:get/1?appends=comments&except=comments.id,authorId").await;
        assert_eq!(r.data()["comments"][0], json!({"content": "c1", "postId": 1}));
        assert!(r.data().get("authorId").is_none());
        let r = t.get("/api/posts:get/1?appends=nope").await;
        assert_eq!(r.status, 200, "FLT-111: unknown appends are ignored");
    }
}

every_backend! {
    async fn appends_cost_one_query_per_association_level() {
        let t = blog().await;
        let mut rows = Vec::new();
        for i in 100..200 {
            rows.push(format!("({i}, 'bulk{i}', {})", 1 + i % 2));
        }
        t.sql(&[&format!("INSERT INTO posts VALUES {}", rows.join(", "))]).await;
        let before = t.statements();
        let r = t
            .get("/api/posts:list?paginate=false&appends=author,comments,tags&filter=%7B%22id%22%3A%7B%22%24gte%22%3A100%7D%7D")
            .await;
        assert_eq!(r.data().as_array().map(Vec::len), Some(100));
        let used = t.statements() - before;
        // The page, author, comments, and tags (its junction, then the tags).
        assert!(used <= 5, "a 100-row list with three appends ran {used} queries");
    }
}

every_backend! {
    async fn association_resources_read_through_the_relation() {
        let t = blog().await;
        let names = |r: &manifold_tests::Reply, f: &str| r.column(f);
        let r = t.get("/api/posts/1/comments:list").await;
        assert_eq!(names(&r, "content"), [json!("c1"), json!("c2")]);
        assert_eq!(r.body["meta"]["count"], json!(2));
        let r = t.get("/api/posts/1/tags:list").await;
        assert_eq!(names(&r, "name"), [json!("t1"), json!("t2")]);
        let r = t.get("/api/posts/1/tags:get/2").await;
        assert_eq!(r.data()["name"], json!("t2"));
        let r = t.get("/api/posts/1/tags:get/3").await;
        assert_eq!(r.data(), &Json::Null, "t3 is not linked to p1");
        let r = t.get("/api/posts/1/author:get").await;
        assert_eq!(r.data()["name"], json!("ann"));
        let r = t.get("/api/posts/1/author:list").await;
        assert_eq!(r.data()["name"], json!("ann"), "list on a to-one behaves like get");
        let r = t.get("/api/posts/4/author:get").await;
        assert_eq!(r.data(), &Json::Null);
        let r = t.get("/api/users/1/posts:list?sort=-id").await;
        assert_eq!(names(&r, "title"), [json!("p2"), json!("p1")]);
        let r = t.get("/api/posts/999/tags:list").await;
        assert_eq!((r.data(), &r.body["meta"]["count"]), (&json!([]), &json!(0)), "LST-05");
        let r = t.get("/api/posts/_/tags:list").await;
        assert_eq!(r.body["meta"]["count"], json!(3), "`_` reads every target");
        let r = t.post("/api/posts/1/comments:create", json!({"content": "x"})).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(r.error().starts_with("writing through association posts.comments is not supported yet"));
    }
}
