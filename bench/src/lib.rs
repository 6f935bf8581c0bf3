//! What the benchmark harness shares between its driver (`manifold-bench`) and the
//! `baseline` server: the dataset, its seeding, and the scenarios.
//!
//! The dataset is NocoBase's blog shape cut down to what the scenarios read: `posts`,
//! `tags`, the junction `posts_tags` (so `posts.tags` is belongsToMany) and `comments`
//! (`comments.postId`, so `posts.comments` is hasMany). Every post has two tags and two
//! comments. Values are derived from the row number, so every backend holds the same rows.

pub mod seed;

use std::fmt;

use serde::{Deserialize, Serialize};

/// Bumped whenever the seeded schema or values change, so cached datasets are rebuilt.
pub const SEED_VERSION: i64 = 1;

/// Number of tags; every post links two of them.
pub const TAGS: i64 = 100;

/// The `:list` filter scenario's filter, as sent to Manifold. About 3% of the posts match.
pub const FILTER_JSON: &str = r#"{"status":"published","score":{"$gte":900}}"#;

/// The `:list` filter scenario's sort, as sent to Manifold.
pub const FILTER_SORT: &str = "-score";

/// The body every `:create` request posts.
pub const CREATE_BODY: &str = r#"{"title":"Written by the benchmark","body":"Lorem ipsum dolor sit amet, consectetur adipiscing elit.","score":500,"status":"draft","createdAt":"2024-06-01T12:00:00.000Z"}"#;

/// The page size of every `:list` scenario.
pub const PAGE_SIZE: u64 = 20;

/// A database the harness seeds and measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Backend {
    /// A SQLite file, registered as a `sqlite` data source.
    Sqlite,
    /// The local PostgreSQL server.
    Postgres,
    /// The local MariaDB server.
    MariaDb,
}

impl Backend {
    /// Parses a name given on the command line.
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "sqlite" => Some(Self::Sqlite),
            "postgres" | "postgresql" | "pg" => Some(Self::Postgres),
            "mariadb" | "mysql" => Some(Self::MariaDb),
            _ => None,
        }
    }

    /// The data-source type Manifold registers it as (and the baseline's `--backend`).
    pub fn kind(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::MariaDb => "mariadb",
        }
    }

    /// How an identifier is quoted in this dialect.
    pub fn quote(self, ident: &str) -> String {
        match self {
            Self::MariaDb => format!("`{ident}`"),
            _ => format!("\"{ident}\""),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
            Self::MariaDb => "MariaDB",
        })
    }
}

/// What the benchmark member's role makes of a request on `posts`: its scope
/// (`{"id":{"$gte":1}}`) and its visible fields (the granted three, the key and
/// `createdAt`), as a query string root can send itself.
pub const MEMBER_VIEW: &str =
    "fields=id,title,score,status,createdAt&filter=%7B%22id%22%3A%7B%22%24gte%22%3A1%7D%7D";

/// One measured request shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scenario {
    /// `:get` by a random primary key.
    Get,
    /// `:list`, page 1 of 20, with the count.
    List,
    /// `:list`, page 1 of 20, `simplePaginate=true` (no count).
    ListSimple,
    /// `:list` with a filter and a sort, with the count.
    ListFilter,
    /// `:list`, page 1 of 20, with the count and `appends=tags,comments`.
    ListAppends,
    /// `:get` as a `member` whose role sees `posts` through a scope and a field list.
    GetMember,
    /// `:list`, page 1 of 20, with the count, as that `member`.
    ListMember,
    /// `:get` as root, asking the filter and field list the member's role adds: the
    /// member's request without the ACL, so the two differ only by what permissions cost.
    GetScoped,
    /// `:list`, page 1 of 20, with the count, as root asking the member's filter and fields.
    ListScoped,
    /// `:list`, page 1 of 20, with the count and `appends=comments`: one relation within
    /// the dataset's source.
    ListLocalAppend,
    /// The same page with the same comments through `twinComments`, a relation to
    /// `bench-twin`, a second source registered on the same database: what crossing
    /// sources costs, with the data and the database unchanged.
    ListCrossAppend,
    /// `:create` of one post.
    Create,
}

impl Scenario {
    /// Every scenario, in the order they run (`create` last: it adds rows).
    pub const ALL: [Scenario; 12] = [
        Self::Get,
        Self::List,
        Self::ListSimple,
        Self::ListFilter,
        Self::ListAppends,
        Self::GetMember,
        Self::ListMember,
        Self::GetScoped,
        Self::ListScoped,
        Self::ListLocalAppend,
        Self::ListCrossAppend,
        Self::Create,
    ];

    /// A short name, used on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::List => "list",
            Self::ListSimple => "list-simple",
            Self::ListFilter => "list-filter",
            Self::ListAppends => "list-appends",
            Self::GetMember => "get-member",
            Self::ListMember => "list-member",
            Self::GetScoped => "get-scoped",
            Self::ListScoped => "list-scoped",
            Self::ListLocalAppend => "list-local-append",
            Self::ListCrossAppend => "list-cross-append",
            Self::Create => "create",
        }
    }

    /// Parses a short name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name.trim())
    }

    /// What the scenario sends to Manifold, for the report.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Get => "`GET /api/posts:get?filterByTk=<random>`",
            Self::List => "`GET /api/posts:list?pageSize=20` (with count)",
            Self::ListSimple => "`GET /api/posts:list?pageSize=20&simplePaginate=true`",
            Self::ListFilter => {
                "`GET /api/posts:list?pageSize=20&filter={\"status\":\"published\",\"score\":{\"$gte\":900}}&sort=-score`"
            }
            Self::ListAppends => "`GET /api/posts:list?pageSize=20&appends=tags,comments`",
            Self::GetMember => {
                "`:get` as a member: a scope (`id >= 1`) and a field list (`title, score, status`) on `posts`"
            }
            Self::ListMember => "`:list` pageSize 20 as that member",
            Self::GetScoped => "`:get` as root, asking the member's filter and field list itself",
            Self::ListScoped => {
                "`:list` pageSize 20 as root, asking the member's filter and fields"
            }
            Self::ListLocalAppend => "`GET /api/posts:list?pageSize=20&appends=comments`",
            Self::ListCrossAppend => {
                "`GET /api/posts:list?pageSize=20&appends=twinComments` (the same comments, \
                 through a relation to a second source on the same database)"
            }
            Self::Create => "`POST /api/posts:create` (one post)",
        }
    }

    /// Whether the request carries a random primary key in `1..=rows`.
    pub fn random_key(self) -> bool {
        matches!(self, Self::Get | Self::GetMember | Self::GetScoped)
    }

    /// Whether the scenario exists to compare Manifold's roles (the baseline knows none).
    pub fn about_roles(self) -> bool {
        matches!(
            self,
            Self::GetMember | Self::ListMember | Self::GetScoped | Self::ListScoped
        )
    }

    /// Whether the scenario compares Manifold's relations within one source and across
    /// two; the baseline knows no sources and does not run it.
    pub fn about_sources(self) -> bool {
        matches!(self, Self::ListLocalAppend | Self::ListCrossAppend)
    }

    /// Whether Manifold is asked as the benchmark's `member` rather than as `root` (the
    /// baseline knows no roles and answers the plain request).
    pub fn as_member(self) -> bool {
        matches!(self, Self::GetMember | Self::ListMember)
    }

    /// The HTTP method.
    pub fn method(self) -> &'static str {
        if self == Self::Create { "POST" } else { "GET" }
    }

    /// The path and query Manifold is asked; for [`Scenario::Get`] the key is appended.
    pub fn manifold_path(self) -> String {
        match self {
            Self::Get | Self::GetMember => "/api/posts:get?filterByTk=".into(),
            Self::List | Self::ListMember => format!("/api/posts:list?pageSize={PAGE_SIZE}"),
            Self::GetScoped => format!("/api/posts:get?{MEMBER_VIEW}&filterByTk="),
            Self::ListScoped => format!("/api/posts:list?pageSize={PAGE_SIZE}&{MEMBER_VIEW}"),
            Self::ListSimple => {
                format!("/api/posts:list?pageSize={PAGE_SIZE}&simplePaginate=true")
            }
            Self::ListFilter => format!(
                "/api/posts:list?pageSize={PAGE_SIZE}&filter={}&sort={FILTER_SORT}",
                encode(FILTER_JSON)
            ),
            Self::ListAppends => {
                format!("/api/posts:list?pageSize={PAGE_SIZE}&appends=tags,comments")
            }
            Self::ListLocalAppend => {
                format!("/api/posts:list?pageSize={PAGE_SIZE}&appends=comments")
            }
            Self::ListCrossAppend => {
                format!("/api/posts:list?pageSize={PAGE_SIZE}&appends=twinComments")
            }
            Self::Create => "/api/posts:create".into(),
        }
    }

    /// The path and query the baseline is asked; for [`Scenario::Get`] the key is appended.
    pub fn baseline_path(self) -> String {
        match self {
            Self::Get | Self::GetMember | Self::GetScoped => "/posts/get?filterByTk=".into(),
            Self::List | Self::ListMember | Self::ListScoped => {
                format!("/posts/list?pageSize={PAGE_SIZE}")
            }
            Self::ListSimple => format!("/posts/list?pageSize={PAGE_SIZE}&simplePaginate=true"),
            Self::ListFilter => format!("/posts/list-filter?pageSize={PAGE_SIZE}"),
            Self::ListAppends | Self::ListLocalAppend | Self::ListCrossAppend => {
                format!("/posts/list-appends?pageSize={PAGE_SIZE}")
            }
            Self::Create => "/posts/create".into(),
        }
    }
}

/// Percent-encodes a query-string value (everything but unreserved characters).
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The columns of `posts`, in the order Manifold lists them (the table's order).
pub const POST_COLUMNS: [&str; 6] = ["id", "title", "body", "score", "status", "createdAt"];

/// `id, title, …` quoted for `backend`, optionally prefixed by a table alias.
pub fn post_columns(backend: Backend, alias: Option<&str>) -> String {
    POST_COLUMNS
        .iter()
        .map(|c| match alias {
            Some(a) => format!("{a}.{}", backend.quote(c)),
            None => backend.quote(c),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The hand-written SQL of each scenario for `backend`, with `?`/`$n` placeholders. The
/// baseline runs these, and pgbench runs the PostgreSQL ones. `ids` is the number of
/// keys in the appends' `IN` lists.
#[derive(Debug, Clone)]
pub struct Queries {
    /// One post by primary key.
    pub get: String,
    /// `COUNT(*)` of every post.
    pub count: String,
    /// A page of posts by primary key: limit and offset bound.
    pub page: String,
    /// `COUNT(*)` of the posts matching the filter scenario's filter.
    pub count_filtered: String,
    /// A page of the filtered posts, by score descending: limit and offset bound.
    pub page_filtered: String,
    /// The tags of `ids` posts, with the post's key.
    pub tags_of: String,
    /// The comments of `ids` posts.
    pub comments_of: String,
    /// Inserts one post and returns it.
    pub insert: String,
}

impl Queries {
    /// The statements for `backend`, with `ids` placeholders in the `IN` lists.
    pub fn new(backend: Backend, ids: usize) -> Self {
        let q = |s: &str| backend.quote(s);
        // Placeholders numbered from `from` (PostgreSQL `$n`; `?` elsewhere).
        let ph = |from: usize, count: usize| -> Vec<String> {
            (from..from + count)
                .map(|n| match backend {
                    Backend::Postgres => format!("${n}"),
                    _ => "?".to_string(),
                })
                .collect()
        };
        let cols = post_columns(backend, None);
        let get = format!("SELECT {cols} FROM posts WHERE id = {}", ph(1, 1)[0]);
        let window = ph(1, 2);
        let page = format!(
            "SELECT {cols} FROM posts ORDER BY id LIMIT {} OFFSET {}",
            window[0], window[1]
        );
        let f = ph(1, 4);
        let filter = format!("status = {} AND score >= {}", f[0], f[1]);
        let count_filtered = format!("SELECT COUNT(*) FROM posts WHERE {filter}");
        let page_filtered = format!(
            "SELECT {cols} FROM posts WHERE {filter} ORDER BY score DESC, id LIMIT {} OFFSET {}",
            f[2], f[3]
        );
        let list = ph(1, ids).join(", ");
        let tags_of = format!(
            "SELECT j.{post_id}, t.id, t.name FROM tags t JOIN posts_tags j ON j.{tag_id} = t.id WHERE j.{post_id} IN ({list}) ORDER BY t.id",
            post_id = q("postId"),
            tag_id = q("tagId"),
        );
        let comments_of = format!(
            "SELECT id, {post_id}, body FROM comments WHERE {post_id} IN ({list}) ORDER BY id",
            post_id = q("postId"),
        );
        let insert = format!(
            "INSERT INTO posts (title, body, score, status, {}) VALUES ({}) RETURNING {cols}",
            q("createdAt"),
            ph(1, 5).join(", ")
        );
        Self {
            get,
            count: "SELECT COUNT(*) FROM posts".into(),
            page,
            count_filtered,
            page_filtered,
            tags_of,
            comments_of,
            insert,
        }
    }
}
