//! Relations found from foreign keys: embedding with `appends` (batched, one query per
//! association level), `fields`/`except` inside appends, and association resources
//! (`/api/posts/1/comments:list`), on every backend.

use manifold_tests::{Backend, TestApp, every_backend};
use serde_json::{Value as Json, json};

/// NocoBase's blog schema, with foreign keys, and a few rows (ids 1, 2, … in order).
async fn blog() -> TestApp {
    blog_with(|_| {}).await
}

/// [`blog`] on a service configured by `tweak`.
async fn blog_with(tweak: impl FnOnce(&mut manifold_server::config::ServeConfig)) -> TestApp {
    let t = TestApp::with(tweak).await;
    let (text, id) = match t.backend {
        Backend::MariaDb => ("VARCHAR(100)", "INTEGER AUTO_INCREMENT PRIMARY KEY"),
        Backend::Postgres => ("TEXT", "SERIAL PRIMARY KEY"),
        Backend::Sqlite => ("TEXT", "INTEGER PRIMARY KEY"),
    };
    let statements = vec![
        format!("CREATE TABLE people (id {id}, name {text})"),
        format!(
            "CREATE TABLE posts (id {id}, title {text}, authorId INTEGER REFERENCES people (id))"
        ),
        format!(
            "CREATE TABLE comments (id {id}, content {text}, postId INTEGER REFERENCES posts (id))"
        ),
        format!(
            "CREATE TABLE profiles (id {id}, post_profile {text}, postId INTEGER UNIQUE REFERENCES posts (id))"
        ),
        format!("CREATE TABLE tags (id {id}, name {text})"),
        format!(
            "CREATE TABLE posts_tags (postId INTEGER NOT NULL REFERENCES posts (id), tagId INTEGER NOT NULL REFERENCES tags (id), tagged_at {text}, PRIMARY KEY (postId, tagId))"
        ),
        "INSERT INTO people (name) VALUES ('ann'), ('bo')".to_owned(),
        "INSERT INTO posts (title, authorId) VALUES ('p1', 1), ('p2', 1), ('p3', 2), ('p4', NULL)"
            .to_owned(),
        "INSERT INTO comments (content, postId) VALUES ('c1', 1), ('c2', 1), ('c3', 3)".to_owned(),
        "INSERT INTO profiles (post_profile, postId) VALUES ('pr1', 1)".to_owned(),
        "INSERT INTO tags (name) VALUES ('t1'), ('t2'), ('t3')".to_owned(),
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
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
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
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
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
        let r = t.get("/api/people:list?appends=posts.comments&sort=id").await;
        let ann_posts = r.data()[0]["posts"].as_array().expect("posts");
        assert_eq!(ann_posts.len(), 2);
        assert_eq!(ann_posts[0]["comments"].as_array().map(Vec::len), Some(2));
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
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
        // A relation named alone in `fields` embeds the whole record (it was a 400).
        let r = t.get("/api/posts:get/1?fields=title,author").await;
        assert_eq!(r.data(), &json!({"title": "p1", "author": {"id": 1, "name": "ann"}}), "{:?}", r.body);
        let r = t.get("/api/posts:list?sort=id&fields=comments").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data()[0], json!({"comments": [{"id": 1, "content": "c1", "postId": 1}, {"id": 2, "content": "c2", "postId": 1}]}));
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn appends_cost_one_query_per_association_level() {
        let t = blog().await;
        let mut rows = Vec::new();
        for i in 100..200 {
            rows.push(format!("({i}, 'bulk{i}', {})", 1 + i % 2));
        }
        let column = if t.backend == Backend::Postgres { "\"authorId\"" } else { "authorId" };
        t.sql(&[&format!("INSERT INTO posts (id, title, {column}) VALUES {}", rows.join(", "))]).await;
        let before = t.statements();
        let r = t
            .get("/api/posts:list?paginate=false&appends=author,comments,tags&filter=%7B%22id%22%3A%7B%22%24gte%22%3A100%7D%7D")
            .await;
        assert_eq!(r.data().as_array().map(Vec::len), Some(100));
        let used = t.statements() - before;
        // The page, author, comments, and tags (joined with its junction).
        assert!(used <= 4, "a 100-row list with three appends ran {used} queries");
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
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
        let r = t.get("/api/people/1/posts:list?sort=-id").await;
        assert_eq!(names(&r, "title"), [json!("p2"), json!("p1")]);
        let r = t.get("/api/posts/999/tags:list").await;
        assert_eq!((r.data(), &r.body["meta"]["count"]), (&json!([]), &json!(0)), "LST-05");
        let r = t.get("/api/posts/_/tags:list").await;
        assert_eq!(r.body["meta"]["count"], json!(3), "`_` reads every target");
        let r = t.get("/api/posts/1/profiles:get").await;
        assert_eq!(r.data()["post_profile"], json!("pr1"), "GET-03");
        let r = t.get("/api/posts/999/profiles:get").await;
        assert_eq!((r.status, r.data()), (200, &Json::Null), "GET-04");
    }
}

fn ids(r: &manifold_tests::Reply) -> Vec<Json> {
    r.column("id")
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn writes_through_to_many_associations() {
        let t = blog().await;
        // CRE-02: a hasMany target gets the source's key.
        let r = t.post("/api/posts/1/comments:create", json!({"content": "hello"})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data()["postId"], json!(1));
        // CRE-03: a belongsToMany target is created and linked, pivot values included.
        let r = t
            .post("/api/posts/1/tags:create", json!({"name": "fresh", "posts_tags": {"tagged_at": "now"}}))
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let fresh = r.data()["id"].clone();
        let r = t.get("/api/posts/1/tags:list").await;
        assert!(ids(&r).contains(&fresh), "{:?}", r.body);
        // UPD-02 / UPD-03: a hasMany target; a pivot row.
        let r = t.post("/api/posts/1/comments:update/1", json!({"content": "c0"})).await;
        assert_eq!(r.data()[0]["content"], json!("c0"), "{:?}", r.body);
        let r = t.post("/api/posts/3/comments:update/1", json!({"content": "nope"})).await;
        assert_eq!(r.data(), &json!([]), "a comment of another post is out of scope");
        let r = t.post("/api/posts/1/tags:update/1", json!({"posts_tags": {"tagged_at": "test"}})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = t.get("/api/posts_tags:get?filter=%7B%22tagId%22%3A1%7D").await;
        assert_eq!(r.data()["tagged_at"], json!("test"));
        // DES-02 / DES-03: destroy deletes targets (belongsToMany: the tag itself too).
        let r = t.post_empty("/api/posts/1/comments:destroy/1").await;
        assert_eq!(r.data(), &json!(true));
        assert_eq!(t.get("/api/comments:get/1").await.data(), &Json::Null);
        let r = t.post_empty("/api/posts/2/tags:destroy/2").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(t.get("/api/tags:get/2").await.data(), &Json::Null);
        let r = t.get("/api/posts/1/tags:list").await;
        assert!(!ids(&r).contains(&json!(2)), "its links went too");
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn link_actions_on_belongs_to_many() {
        let t = blog().await;
        let tags = |r: manifold_tests::Reply| ids(&r);
        // LNK-13 / LNK-08: set replaces the links.
        let r = t.post("/api/posts/3/tags:set", json!([1, 2])).await;
        assert_eq!((r.status, &r.body), (200, &json!({})), "LNK-14");
        assert_eq!(tags(t.get("/api/posts/3/tags:list").await), [json!(1), json!(2)]);
        // LNK-09: pairs carry pivot values.
        t.post("/api/posts/3/tags:set", json!([[3, {"tagged_at": "123"}]])).await;
        assert_eq!(tags(t.get("/api/posts/3/tags:list").await), [json!(3)]);
        let r = t.get("/api/posts_tags:list?filter=%7B%22postId%22%3A3%7D").await;
        assert_eq!(r.column("tagged_at"), [json!("123")]);
        // LNK-04 / LNK-05 / LNK-12: add keeps existing links; the query key wins.
        t.post("/api/posts/3/tags:add", json!([1])).await;
        t.post("/api/posts/3/tags:add?filterByTk=2", json!([999])).await;
        assert_eq!(tags(t.get("/api/posts/3/tags:list").await), [json!(1), json!(2), json!(3)]);
        // LNK-06: remove unlinks only.
        t.post("/api/posts/3/tags:remove", json!([1])).await;
        assert_eq!(tags(t.get("/api/posts/3/tags:list").await), [json!(2), json!(3)]);
        assert_eq!(t.get("/api/tags:get/1").await.data()["name"], json!("t1"));
        // LNK-10 / LNK-11: toggle adds unless all are linked, then removes.
        let r = t.post("/api/posts/4/tags:toggle", json!([1, 2])).await;
        assert_eq!(r.body, json!({"data": "ok"}));
        assert_eq!(tags(t.get("/api/posts/4/tags:list").await), [json!(1), json!(2)]);
        t.post("/api/posts/4/tags:toggle", json!([2])).await;
        assert_eq!(tags(t.get("/api/posts/4/tags:list").await), [json!(1)]);
        // An empty set clears; missing targets are skipped.
        t.post("/api/posts/4/tags:set", json!([])).await;
        assert_eq!(tags(t.get("/api/posts/4/tags:list").await), Vec::<Json>::new());
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn link_actions_on_has_many_and_to_one() {
        let t = blog().await;
        let titles = |r: manifold_tests::Reply| r.column("title");
        t.post("/api/people/2/posts:add", json!([4])).await;
        assert_eq!(titles(t.get("/api/people/2/posts:list").await), [json!("p3"), json!("p4")]);
        t.post("/api/people/2/posts:set", json!([1])).await;
        assert_eq!(titles(t.get("/api/people/2/posts:list").await), [json!("p1")]);
        assert_eq!(t.get("/api/posts:get/3").await.data()["authorId"], Json::Null, "unlinked, not deleted");
        t.post("/api/people/2/posts:remove", json!([1])).await;
        assert_eq!(titles(t.get("/api/people/2/posts:list").await), Vec::<Json>::new());
        // belongsTo: set and remove write the source's foreign key.
        let r = t.post_empty("/api/posts/4/author:set/2").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(t.get("/api/posts/4/author:get").await.data()["name"], json!("bo"));
        t.post_empty("/api/posts/4/author:remove").await;
        assert_eq!(t.get("/api/posts/4/author:get").await.data(), &Json::Null);
        // LNK-07: a hasOne is unlinked without keys.
        t.post_empty("/api/posts/1/profiles:remove").await;
        assert_eq!(t.get("/api/profiles:get/1").await.data()["postId"], Json::Null);
        // UPD-04 / DES-04: a to-one target is updated and destroyed without a key.
        t.post("/api/posts/2/profiles:create", json!({"post_profile": "pr2"})).await;
        let r = t.post("/api/posts/2/profiles:update", json!({"post_profile": "test0"})).await;
        assert_eq!(r.data()["post_profile"], json!("test0"), "{:?}", r.body);
        let r = t.post_empty("/api/posts/2/profiles:destroy").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(t.get("/api/posts/2/profiles:get").await.data(), &Json::Null);
        let r = t.post("/api/posts/2/profiles:update", json!({"post_profile": "x"})).await;
        assert_eq!((r.status, r.error()), (404, "The record does not exist"));
        // A missing source is a 404 for writes.
        let r = t.post("/api/posts/999/comments:create", json!({"content": "x"})).await;
        assert_eq!((r.status, r.error()), (404, "posts 999 does not exist"));
        // A write that fails half-way changes nothing.
        let r = t.post("/api/posts/1/tags:create", json!({"name": "t", "posts_tags": {"nope": 1, "tagged_at": [1]}})).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(t.count("tags").await, 3, "the tag created before the failure was rolled back");
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn bad_link_requests_are_4xx_naming_the_problem() {
        let t = blog().await;
        let r = t.post("/api/posts/1/tags:add", json!([{"nope": 1}])).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(r.error(), "values: an object names its target by \"id\" or \"tk\"");
        let r = t.post("/api/posts/1/tags:add", json!([true])).await;
        assert_eq!((r.status, r.error()), (400, "values: true does not name a target"));
        let r = t.post("/api/posts:add", json!([1])).await;
        assert_eq!(r.status, 404, "{:?}", r.body);
        assert!(r.error().starts_with("resource posts has no action add"), "{}", r.error());
        let r = t.post("/api/posts/1/tags:add", json!(["x"])).await;
        assert_eq!(r.status, 400, "a key of the wrong type: {:?}", r.body);
        assert_eq!(t.get("/api/posts/1/tags:list").await.column("id"), [json!(1), json!(2)], "nothing changed");
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn link_actions_accept_nocobase_tk_objects() {
        let t = blog().await;
        let tags = |r: manifold_tests::Reply| {
            assert_eq!(r.status, 200, "{:?}", r.body);
            ids(&r)
        };
        // The request: `{"tk": 2}` as the whole body.
        let r = t.post("/api/posts/4/tags:toggle", json!({"tk": 2})).await;
        assert_eq!((r.status, &r.body), (200, &json!({"data": "ok"})), "{:?}", r.body);
        assert_eq!(tags(t.get("/api/posts/4/tags:list").await), [json!(2)]);
        // The target key's own name still works, and means the same target.
        t.post("/api/posts/4/tags:toggle", json!({"id": 2})).await;
        assert_eq!(tags(t.get("/api/posts/4/tags:list").await), Vec::<Json>::new());
        // In a list, with keys as numbers or text, for every link action.
        let r = t.post("/api/posts/4/tags:set", json!([{"tk": 1}, {"tk": "3"}])).await;
        assert_eq!((r.status, &r.body), (200, &json!({})), "{:?}", r.body);
        assert_eq!(tags(t.get("/api/posts/4/tags:list").await), [json!(1), json!(3)]);
        t.post("/api/posts/4/tags:add", json!([{"tk": 2}, {"id": 3, "tk": 3}])).await;
        assert_eq!(tags(t.get("/api/posts/4/tags:list").await), [json!(1), json!(2), json!(3)]);
        t.post("/api/posts/4/tags:remove", json!({"tk": 1})).await;
        assert_eq!(tags(t.get("/api/posts/4/tags:list").await), [json!(2), json!(3)]);
        t.post("/api/posts/4/tags:toggle", json!([{"tk": 2}, {"tk": 3}])).await;
        assert_eq!(tags(t.get("/api/posts/4/tags:list").await), Vec::<Json>::new());
        // hasMany and belongsTo read the same form.
        t.post("/api/people/2/posts:add", json!([{"tk": 4}])).await;
        let r = t.get("/api/people/2/posts:list").await;
        assert_eq!(r.column("title"), [json!("p3"), json!("p4")]);
        let r = t.post("/api/posts/4/author:set", json!({"tk": 1})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(t.get("/api/posts/4/author:get").await.data()["name"], json!("ann"));
        // An object naming two different targets, or none, is refused and changes nothing.
        let r = t.post("/api/posts/1/tags:set", json!([{"id": 1, "tk": 3}])).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(r.error().contains("names two targets"), "{}", r.error());
        let r = t.post("/api/posts/1/tags:add", json!([{"tk": null}])).await;
        assert_eq!((r.status, r.error()), (400, "values: null does not name a target"));
        let r = t.post("/api/posts/1/tags:add", json!([{"tk": [3]}])).await;
        assert_eq!((r.status, r.error()), (400, "values: [3] does not name a target"));
        assert_eq!(tags(t.get("/api/posts/1/tags:list").await), [json!(1), json!(2)]);
    }
}

/// The junction rows of the blog, as `(postId, tagId)` pairs in order.
async fn links(t: &TestApp) -> Vec<(Json, Json)> {
    let r = t
        .get("/api/posts_tags:list?paginate=false&sort=postId,tagId")
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.data()
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|l| (l["postId"].clone(), l["tagId"].clone()))
                .collect()
        })
        .unwrap_or_default()
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn destroy_deletes_the_junction_rows_of_the_destroyed_records() {
        let t = blog().await;
        t.sql(&["INSERT INTO posts_tags VALUES (2, 1, 'd'), (3, 3, 'e'), (4, 3, 'f')"]).await;
        // By key (the request): post 2 had tags 1 and 2. The junction's foreign
        // keys restrict, so without the cleanup the delete itself would fail.
        let r = t.post_empty("/api/posts:destroy/2").await;
        assert_eq!((r.status, &r.body), (200, &json!({"data": 1})), "{:?}", r.body);
        assert_eq!(ids(&t.get("/api/posts/2/tags:list").await), Vec::<Json>::new());
        let mut want = vec![(json!(1), json!(1)), (json!(1), json!(2)), (json!(3), json!(3)), (json!(4), json!(3))];
        assert_eq!(links(&t).await, want);
        // From the other side, by a filterByTk list: tags 2 and 3.
        let r = t.post_empty("/api/tags:destroy?filterByTk[]=2&filterByTk[]=3").await;
        assert_eq!((r.status, &r.body), (200, &json!({"data": 2})), "{:?}", r.body);
        want.retain(|(_, tag)| tag == &json!(1));
        assert_eq!(links(&t).await, want);
        // By a filter that goes through the very relation whose links are deleted.
        t.sql(&["INSERT INTO posts_tags VALUES (4, 1, 'g')"]).await;
        let f = manifold_tests::filter(json!({"tags.name": "t1", "id": {"$gt": 3}}));
        let r = t.post_empty(&format!("/api/posts:destroy?{f}")).await;
        assert_eq!((r.status, &r.body), (200, &json!({"data": 1})), "{:?}", r.body);
        assert_eq!(t.get("/api/posts:get/4").await.data(), &Json::Null);
        assert_eq!(links(&t).await, want);
        // A record still referenced elsewhere (post 1 has comments) is a 409, and its
        // links stay: the whole destroy is one transaction.
        let r = t.post_empty("/api/posts:destroy/1").await;
        assert_eq!(r.status, 409, "{:?}", r.body);
        assert!(r.error().starts_with("the record is still referenced"), "{}", r.error());
        assert_eq!(r.body["errors"][0]["code"], json!("FOREIGN_KEY_VIOLATION"));
        assert_eq!(links(&t).await, want);
        assert_eq!(t.get("/api/posts:get/1").await.data()["title"], json!("p1"));
    }
}

every_backend! {
    // collections:create reaches the main database only.
    #[skip(mongodb, mssql)]
    async fn destroy_deletes_junction_rows_of_declared_relations() {
        let t = TestApp::new().await;
        t.collection(json!({"name": "labels", "fields": [{"name": "name", "type": "string"}]})).await;
        t.collection(json!({"name": "notes", "fields": [
            {"name": "title", "type": "string"},
            {"name": "labels", "type": "belongsToMany", "target": "labels"}
        ]})).await;
        let r = t.post("/api/notes:create", json!({"title": "n1", "labels": [{"name": "a"}, {"name": "b"}]})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let note = r.data()["id"].clone();
        let r = t.post("/api/notes:create", json!({"title": "n2", "labels": [1]})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = t.get("/api/collections:get/notes").await;
        let through = r.data()["fields"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["name"] == json!("labels")))
            .and_then(|f| f["through"].as_str())
            .unwrap_or_else(|| panic!("a junction: {:?}", r.body))
            .to_owned();
        assert_eq!(t.count(&through).await, 3);
        let r = t.post_empty(&format!("/api/notes:destroy/{note}")).await;
        assert_eq!((r.status, &r.body), (200, &json!({"data": 1})), "{:?}", r.body);
        assert_eq!(t.count(&through).await, 1, "only n2's link is left");
        // The declared side is notes; destroying a label cleans up all the same.
        let r = t.post_empty("/api/labels:destroy/1").await;
        assert_eq!((r.status, &r.body), (200, &json!({"data": 1})), "{:?}", r.body);
        assert_eq!(t.count(&through).await, 0);
    }
}

fn id_list(r: &manifold_tests::Reply) -> Vec<i64> {
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.column("id").iter().filter_map(Json::as_i64).collect()
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn filters_cross_every_kind_of_association() {
        let t = blog().await;
        let list = |c: &str, f: Json| format!("/api/{c}:list?sort=id&{}", manifold_tests::filter(f));
        // belongsTo
        assert_eq!(id_list(&t.get(&list("posts", json!({"author.name": "ann"}))).await), [1, 2]);
        // hasMany, nested form
        assert_eq!(id_list(&t.get(&list("posts", json!({"comments": {"content": {"$includes": "C"}}}))).await), [1, 3]);
        // hasOne
        assert_eq!(id_list(&t.get(&list("posts", json!({"profiles.post_profile": "pr1"}))).await), [1]);
        // belongsToMany, through the junction
        assert_eq!(id_list(&t.get(&list("posts", json!({"tags.name": "t2"}))).await), [1, 2]);
        assert_eq!(id_list(&t.get(&list("tags", json!({"posts.title": "p2"}))).await), [2]);
        // two hops
        assert_eq!(id_list(&t.get(&list("people", json!({"posts.comments.content": "c3"}))).await), [2]);
        assert_eq!(id_list(&t.get(&list("comments", json!({"post.author.name": "ann"}))).await), [1, 2]);
        // A group belongs at the top of a filter object, not under a relation (the answer
        // was "unknown field \"author\"").
        let r = t.get(&list("posts", json!({"author": {"$or": [{"name": "ann"}]}}))).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(r.error().starts_with("filter.author.$or: $or groups whole conditions and cannot follow a field"), "{}", r.error());
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn conditions_on_one_association_path_refer_to_the_same_joined_row() {
        let t = blog().await;
        let list = |c: &str, f: Json| format!("/api/{c}:list?sort=id&{}", manifold_tests::filter(f));
        // ann has a post p1 and a post p2, but no single post is both.
        assert_eq!(
            id_list(&t.get(&list("people", json!({"$and": [{"posts.title": "p1"}, {"posts.title": "p2"}]}))).await),
            Vec::<i64>::new()
        );
        assert_eq!(id_list(&t.get(&list("people", json!({"posts.title": "p1", "posts.id": 1}))).await), [1]);
        assert_eq!(id_list(&t.get(&list("people", json!({"posts.title": "p1", "posts.id": 2}))).await), Vec::<i64>::new());
        // Root and related conditions mix in one disjunction.
        assert_eq!(id_list(&t.get(&list("people", json!({"$or": [{"posts.title": "p3"}, {"name": "ann"}]}))).await), [1, 2]);
        // A negative operator sees the NULL row of an empty relation: t3 has no posts.
        assert_eq!(id_list(&t.get(&list("tags", json!({"posts.title.$ne": "p1"}))).await), [2, 3]);
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn exists_on_an_association_tests_for_a_related_row() {
        let t = blog().await;
        let list = |f: Json| format!("/api/posts:list?sort=id&{}", manifold_tests::filter(f));
        assert_eq!(id_list(&t.get(&list(json!({"comments.$exists": true}))).await), [1, 3]);
        assert_eq!(id_list(&t.get(&list(json!({"comments.$notExists": true}))).await), [2, 4]);
        assert_eq!(id_list(&t.get(&list(json!({"tags": {"$exists": false}}))).await), [3, 4]);
        assert_eq!(id_list(&t.get(&list(json!({"author.$exists": true}))).await), [1, 2, 3]);
        assert_eq!(id_list(&t.get(&list(json!({"$and": [{"author.$notExists": true}]}))).await), [4]);
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn association_filters_count_and_page_each_root_row_once() {
        let t = blog().await;
        let f = manifold_tests::filter(json!({"tags.name": {"$in": ["t1", "t2"]}}));
        let r = t.get(&format!("/api/posts:list?sort=id&pageSize=1&{f}")).await;
        assert_eq!(id_list(&r), [1]);
        assert_eq!(r.body["meta"]["count"], json!(2), "p1 has two matching tags but counts once");
        let r = t.get(&format!("/api/posts:list?sort=id&pageSize=1&page=2&{f}")).await;
        assert_eq!(id_list(&r), [2]);
        // Appends are not restricted by the filter.
        let r = t.get(&format!("/api/posts:list?sort=id&appends=tags&{}", manifold_tests::filter(json!({"tags.name": "t1"})))).await;
        assert_eq!(r.data()[0]["tags"].as_array().map(Vec::len), Some(2));
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn writes_select_their_rows_through_associations() {
        let t = blog().await;
        let f = manifold_tests::filter(json!({"author.name": "bo"}));
        let r = t.post(&format!("/api/posts:update?{f}"), json!({"title": "by bo"})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.column("id"), [json!(3)]);
        let r = t.get("/api/posts:list?sort=id&fields=title").await;
        assert_eq!(r.column("title"), [json!("p1"), json!("p2"), json!("by bo"), json!("p4")]);
        let f = manifold_tests::filter(json!({"post.title": "p1"}));
        let r = t.post_empty(&format!("/api/comments:destroy?{f}")).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data(), &json!(2));
        assert_eq!(id_list(&t.get("/api/comments:list?sort=id").await), [3]);
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn sorts_cross_to_one_associations_only() {
        let t = blog().await;
        // NULLs last: p4 has no author.
        assert_eq!(id_list(&t.get("/api/posts:list?sort=-author.name,id").await), [3, 1, 2, 4]);
        assert_eq!(id_list(&t.get("/api/posts:list?sort=author.name,-id").await), [2, 1, 3, 4]);
        assert_eq!(id_list(&t.get("/api/comments:list?sort=-post.author.name,id").await), [3, 1, 2]);
        let r = t.get("/api/people:list?sort=posts.title").await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(r.error().contains("to-many"), "{}", r.error());
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn bad_association_paths_are_400s_that_name_them() {
        let t = blog().await;
        let r = t.get(&format!("/api/posts:list?{}", manifold_tests::filter(json!({"author.nope": "x"})))).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(r.error().contains("filter.author.nope") && r.error().contains("people"), "{}", r.error());
        let r = t.get(&format!("/api/posts:list?{}", manifold_tests::filter(json!({"nope.name": "x"})))).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(r.error().contains("\"nope\""), "{}", r.error());
        let r = t.get(&format!("/api/posts:list?{}", manifold_tests::filter(json!({"title.name": "x"})))).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        let r = t.get("/api/posts:list?sort=author.nope").await;
        assert_eq!(r.status, 400, "{:?}", r.body);
    }
}

/// The row counts of every blog table, to prove a failed write left nothing behind.
async fn blog_counts(t: &TestApp) -> Vec<u64> {
    let mut out = Vec::new();
    for c in ["people", "posts", "comments", "tags", "posts_tags"] {
        out.push(t.count(c).await);
    }
    out
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn create_writes_nested_association_values_in_one_go() {
        let t = blog().await;
        let r = t.post("/api/posts:create", json!({
            "title": "nested",
            "author": {"name": "cy"},
            "tags": [1, {"name": "t9"}, {"id": 3, "posts_tags": {"tagged_at": "z"}}, 999],
            "comments": [{"content": "first"}, {"content": "second"}],
            "profiles": {"post_profile": "pr9"}
        })).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let id = r.data()["id"].clone();
        let r = t.get(&format!("/api/posts:get/{id}?appends=author,tags,comments,profiles")).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let post = r.data();
        assert_eq!(post["author"]["name"], json!("cy"));
        let mut tags: Vec<Json> = post["tags"].as_array().expect("tags").iter().map(|t| t["name"].clone()).collect();
        tags.sort_by_key(|t| t.to_string());
        assert_eq!(tags, [json!("t1"), json!("t3"), json!("t9")], "999 names no tag and is ignored");
        assert_eq!(post["comments"].as_array().map(Vec::len), Some(2));
        assert_eq!(post["profiles"]["post_profile"], json!("pr9"));
        let f = manifold_tests::filter(json!({"postId": id, "tagId": 3}));
        let r = t.get(&format!("/api/posts_tags:list?{f}")).await;
        assert_eq!(r.column("tagged_at"), [json!("z")], "pivot values travel inside the element");
        // A belongsTo key links; an array is refused.
        let r = t.post("/api/posts:create", json!({"title": "by bo", "author": 2})).await;
        assert_eq!(r.data()["authorId"], json!(2), "{:?}", r.body);
        let r = t.post("/api/posts:create", json!({"title": "x", "author": [1, 2]})).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(r.error().contains("cannot be in array format"), "{}", r.error());
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn create_and_update_answer_with_the_associations_they_wrote() {
        let t = blog().await;
        // The request: keys come back as written, new rows as created.
        let r = t.post("/api/posts:create", json!({
            "title": "x", "tags": [1, 2], "comments": [{"content": "c1"}], "author": 1,
            "profiles": {"post_profile": "pr9"}
        })).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let post = r.data().clone();
        assert_eq!(post["title"], json!("x"));
        assert_eq!(post["tags"], json!([1, 2]), "{post}");
        assert_eq!(post["author"], json!(1), "{post}");
        assert_eq!(post["authorId"], json!(1), "{post}");
        let comments = post["comments"].as_array().unwrap_or_else(|| panic!("{post}"));
        assert_eq!(comments.len(), 1, "{post}");
        assert_eq!(comments[0]["content"], json!("c1"));
        assert_eq!(comments[0]["postId"], post["id"]);
        assert!(comments[0]["id"].is_number(), "the created row, with its key: {post}");
        assert_eq!(post["profiles"]["post_profile"], json!("pr9"), "{post}");
        assert_eq!(post["profiles"]["postId"], post["id"], "{post}");
        // What the answer says is what was stored.
        let stored = t.get(&format!("/api/posts:get/{}?appends=comments,tags", post["id"])).await;
        assert_eq!(stored.data()["comments"], post["comments"]);
        let tag_ids: Vec<Json> = stored.data()["tags"]
            .as_array()
            .map(|tags| tags.iter().map(|t| t["id"].clone()).collect())
            .unwrap_or_default();
        assert_eq!(tag_ids, [json!(1), json!(2)]);

        // An object naming an existing target answers with that row as it is now (the
        // comment moved here); a key naming nothing is left out; `null` stays `null`.
        let r = t.post("/api/posts:create", json!({
            "title": "y", "tags": [{"name": "t9"}, {"id": 3}, 999, "2"],
            "comments": [{"id": 3}], "author": {"name": "cy"}, "profiles": null
        })).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let post = r.data().clone();
        let tags = post["tags"].as_array().unwrap_or_else(|| panic!("{post}"));
        assert_eq!(tags.len(), 3, "{post}");
        assert_eq!((tags[0]["name"].clone(), tags[0]["id"].is_number()), (json!("t9"), true));
        assert_eq!(tags[1], json!({"id": 3, "name": "t3"}));
        assert_eq!(tags[2], json!("2"), "as written");
        assert_eq!(post["comments"], json!([{"id": 3, "content": "c3", "postId": post["id"]}]));
        assert_eq!(post["author"]["name"], json!("cy"), "{post}");
        assert_eq!(post["author"]["id"], post["authorId"], "{post}");
        assert_eq!(post["profiles"], Json::Null, "{post}");

        // update answers the same way, for every updated row; nested objects only link
        // unless updateAssociationValues says otherwise.
        let r = t.post("/api/posts:update/1", json!({
            "tags": [3], "author": null, "comments": [{"id": 1, "content": "ignored"}]
        })).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let post = &r.data()[0];
        assert_eq!(post["tags"], json!([3]), "{post}");
        assert_eq!((post["author"].clone(), post["authorId"].clone()), (Json::Null, Json::Null));
        assert_eq!(post["comments"], json!([{"id": 1, "content": "c1", "postId": 1}]));

        // A write without association values answers with attributes only.
        let r = t.post("/api/posts:create", json!({"title": "plain"})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert!(r.data().get("tags").is_none() && r.data().get("author").is_none(), "{:?}", r.body);
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn update_replaces_links_and_changes_targets_only_when_allowed() {
        let t = blog().await;
        let r = t.post("/api/posts:update/1", json!({"tags": [2, 3], "comments": [3], "author": {"id": 2, "name": "BO"}})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = t.get("/api/posts:get/1?appends=tags,comments,author").await;
        let names = |key: &str, attr: &str| -> Vec<Json> {
            let mut v: Vec<Json> = r.data()[key].as_array().expect("list").iter().map(|x| x[attr].clone()).collect();
            v.sort_by_key(|x| x.to_string());
            v
        };
        assert_eq!(names("tags", "name"), [json!("t2"), json!("t3")]);
        assert_eq!(names("comments", "content"), [json!("c3")], "c1 and c2 are unlinked, c3 moves here");
        assert_eq!(r.data()["author"]["name"], json!("bo"), "update links without changing the target");
        assert_eq!(t.count("comments").await, 3, "unlinked, not deleted");
        let r = t.post("/api/posts:update/1?updateAssociationValues=author", json!({"author": {"id": 2, "name": "BO"}})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = t.get("/api/people:get/2").await;
        assert_eq!(r.data()["name"], json!("BO"));
        let r = t.post("/api/posts:update/1", json!({"author": null, "tags": null})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = t.get("/api/posts:get/1?appends=tags").await;
        assert_eq!((r.data()["authorId"].clone(), r.data()["tags"].clone()), (Json::Null, json!([])));
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn a_failing_nested_write_leaves_no_partial_rows() {
        let t = blog().await;
        let before = blog_counts(&t).await;
        // The post, its new author, a tag and the first comment are written before the
        // second comment's value is found to be bad: all of it is rolled back.
        let r = t.post("/api/posts:create", json!({
            "title": "doomed",
            "author": {"name": "dee"},
            "tags": [1, {"name": "fresh"}],
            "comments": [{"content": "ok"}, {"content": {"not": "text"}}]
        })).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(r.error().contains("values.comments.1"), "{}", r.error());
        assert_eq!(blog_counts(&t).await, before);
        let r = t.post("/api/posts:update/1", json!({"title": "changed", "tags": [{"name": "fresh"}, {"id": "not a number"}]})).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(blog_counts(&t).await, before);
        let r = t.get("/api/posts:get/1?appends=tags").await;
        assert_eq!(r.data()["title"], json!("p1"));
        assert_eq!(r.data()["tags"].as_array().map(Vec::len), Some(2));
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn an_append_may_order_its_embedded_list() {
        let t = blog().await;
        // As qs reads it, `]=` ends a key, so the bracketed option goes in appends[].
        let r = t.get("/api/posts:get/1?appends[]=comments(sort=-content)&appends[]=tags(sort[]=-name)").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let names = |key: &str, attr: &str| -> Vec<Json> {
            r.data()[key].as_array().unwrap_or_else(|| panic!("{key}: {:?}", r.body)).iter().map(|x| x[attr].clone()).collect()
        };
        assert_eq!(names("comments", "content"), [json!("c2"), json!("c1")]);
        assert_eq!(names("tags", "name"), [json!("t2"), json!("t1")]);
        // Options sit on any level; fields inside still apply.
        let r = t.get("/api/people:list?sort=id&appends=posts(sort=-title).comments(sort=-id)&fields=name,posts.title").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let ann = &r.data()[0];
        assert_eq!(ann["posts"].as_array().expect("posts").iter().map(|p| p["title"].clone()).collect::<Vec<_>>(), [json!("p2"), json!("p1")]);
        let r = t.get("/api/posts:list?appends=comments(sort=nope)").await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(r.error().contains("nope"), "{}", r.error());
        let r = t.get("/api/posts:list?appends=comments(limit=2)").await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        let r = t.get("/api/posts:list?appends=comments(sort=-id").await;
        assert_eq!(r.status, 400, "{:?}", r.body);
    }
}

every_backend! {
    // Raw SQL schemas (t.sql) and collections:create reach the main database only.
    #[skip(mongodb, mssql)]
    async fn nested_keys_are_checked_in_one_query_however_many() {
        let t = blog().await;
        let keys: Vec<Json> = (1..=60).map(|i| json!(i)).collect();
        let before = t.statements();
        let r = t.post("/api/posts:update/1", json!({"tags": keys})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let used = t.statements() - before;
        // The row, the existence check, dropping the old links, writing the new ones.
        assert!((3..=5).contains(&used), "{used} statements for 60 tag keys");
        let r = t.get("/api/posts:get/1?appends=tags").await;
        assert_eq!(r.data()["tags"].as_array().map(Vec::len), Some(3), "only the three tags that exist");
    }
}

every_backend! {
    // The blog schema is raw SQL on the main database.
    #[skip(mongodb, mssql)]
    async fn grants_hold_on_association_requests_link_actions_and_appends() {
        let t = blog().await;
        // `editor` sees and edits ann's posts (authorId 1), sees every comment, and may not
        // see tags or people at all.
        let r = t.post("/api/roles:create", json!({"name": "editor"})).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = t
            .post(
                "/api/dataSourcesRolesResourcesScopes:create",
                json!({"name": "ann's", "resourceName": "posts", "scope": {"authorId": 1}}),
            )
            .await;
        let scope = r.data()["id"].clone();
        for (collection, actions) in [
            ("posts", json!([
                {"name": "view", "scope": scope},
                {"name": "update", "scope": scope}
            ])),
            ("comments", json!([{"name": "view"}, {"name": "create"}])),
        ] {
            let r = t
                .post(
                    "/api/roles/editor/resources:create",
                    json!({"name": collection, "usingActionsConfig": true, "actions": actions}),
                )
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
        }
        let ed = format!("Bearer {}", t.new_user("ed", &["editor"]).await);
        let send = |method: poem::http::Method, path: &'static str, body: Option<Json>| {
            let (t, ed) = (&t, ed.clone());
            async move { t.main_as(&ed, method, path, body).await }
        };
        use poem::http::Method;

        // appends: only relations whose target the role may view.
        let r = send(Method::GET, "/api/posts:list?appends=comments,tags,author&sort=id", None).await;
        assert_eq!((r.status, r.column("title")), (200, vec![json!("p1"), json!("p2")]), "{:?}", r.body);
        let first = &r.data()[0];
        assert_eq!(first["comments"].as_array().map(Vec::len), Some(2), "{first}");
        assert!(first.get("tags").is_none() && first.get("author").is_none(), "{first}");

        // Association requests go through a source row inside the scope.
        let r = send(Method::GET, "/api/posts/1/comments:list", None).await;
        assert_eq!((r.status, r.data().as_array().map(Vec::len)), (200, Some(2)), "{:?}", r.body);
        let r = send(Method::GET, "/api/posts/3/comments:list", None).await;
        assert_eq!(r.status, 403, "post 3 is bo's: {:?}", r.body);
        let r = send(Method::POST, "/api/posts/3/comments:create", Some(json!({"content": "x"}))).await;
        assert_eq!(r.status, 403, "{:?}", r.body);
        let r = send(Method::POST, "/api/posts/1/comments:create", Some(json!({"content": "mine"}))).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let r = send(Method::GET, "/api/posts/1/tags:list", None).await;
        assert_eq!(r.status, 403, "tags are not granted: {:?}", r.body);

        // Link actions need `update` on the source row, inside its scope.
        let r = send(Method::POST, "/api/posts/3/tags:add", Some(json!([1]))).await;
        assert_eq!(r.status, 403, "{:?}", r.body);
        let r = send(Method::POST, "/api/posts/2/tags:add", Some(json!([1]))).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let tags = t.get("/api/posts/2/tags:list?sort=id").await;
        assert_eq!(tags.column("name"), [json!("t1"), json!("t2")]);
        let tags = t.get("/api/posts/3/tags:list").await;
        assert_eq!(tags.column("name"), Vec::<Json>::new(), "post 3 unchanged");
    }
}

every_backend! {
    // Raw SQL schemas (t.sql); the counting is the same code on every source.
    #[skip(mongodb, mssql)]
    async fn embedded_records_are_counted_with_every_copy_and_capped() {
        // Each post: its author (1), the author's posts (ann 2, bo 1) and their author
        // again (1 each): p1 and p2 embed 5 records each, p3 embeds 3, p4 none. 13 in all.
        let query = "/api/posts:list?sort=id&appends=author.posts.author";
        let t = blog_with(|c| c.max_embedded_records = 13).await;
        let r = t.get(query).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data()[0]["author"]["posts"][1]["author"]["name"], "ann");

        let t = blog_with(|c| c.max_embedded_records = 12).await;
        let r = t.get(query).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert!(
            r.error().contains("would embed more than 12 related records"),
            "{}",
            r.error()
        );
        // Fewer rows fit under the same limit.
        let r = t.get(&format!("{query}&pageSize=2")).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
}
