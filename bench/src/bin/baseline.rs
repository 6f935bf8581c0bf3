//! The baseline: what a small hand-written Rust service reaches on this machine.
//!
//! One poem route per scenario, each running the hand-written statements of
//! [`manifold_bench::Queries`] through a sqlx pool of the same size and settings as
//! Manifold's (no ping before acquire, statements prepared and cached), decoding rows into
//! structs and serialising them with serde into the same `{data, meta}` envelope. It is
//! what Manifold's generic path is compared against, so it does the same work per request
//! (count then page, one batched query per relation) and nothing more.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use chrono::{DateTime, SecondsFormat, Utc};
use clap::Parser;
use manifold_bench::{Backend, Queries};
use poem::http::StatusCode;
use poem::listener::TcpListener;
use poem::web::{Data, Query};
use poem::{EndpointExt, Response, Route, Server, get, handler, post};
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};

/// A minimal poem + sqlx server answering the benchmark's scenarios with hand-written SQL.
#[derive(Debug, Parser)]
#[command(name = "baseline")]
struct Args {
    /// sqlite, postgres or mariadb.
    #[arg(long)]
    backend: String,
    /// The database URL (`postgres://…/db`, `mysql://…/db`, `sqlite://path`).
    #[arg(long)]
    url: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:13901")]
    listen: SocketAddr,
    /// Pool size; the driver passes Manifold's.
    #[arg(long, default_value_t = 10)]
    max_connections: u32,
}

enum Pool {
    Pg(sqlx::PgPool),
    My(sqlx::MySqlPool),
    Lite(sqlx::SqlitePool),
}

/// The statements, shared cheaply by every request.
struct Sql {
    get: Arc<str>,
    count: Arc<str>,
    page: Arc<str>,
    count_filtered: Arc<str>,
    page_filtered: Arc<str>,
    tags_of: Arc<str>,
    comments_of: Arc<str>,
    insert: Arc<str>,
}

struct State {
    pool: Pool,
    sql: Sql,
    page_size: usize,
}

#[derive(Serialize)]
struct Post {
    id: i64,
    title: String,
    body: Option<String>,
    score: i64,
    status: String,
    #[serde(rename = "createdAt")]
    created_at: String,
}

#[derive(Serialize)]
struct Tag {
    id: i64,
    name: String,
}

#[derive(Serialize)]
struct Comment {
    id: i64,
    #[serde(rename = "postId")]
    post_id: i64,
    body: String,
}

#[derive(Serialize)]
struct PostWithRelations {
    #[serde(flatten)]
    post: Post,
    tags: Vec<Tag>,
    comments: Vec<Comment>,
}

#[derive(Deserialize)]
struct NewPost {
    title: String,
    body: Option<String>,
    score: i64,
    status: String,
    #[serde(rename = "createdAt")]
    created_at: String,
}

#[derive(Deserialize)]
struct ListParams {
    #[serde(rename = "pageSize")]
    page_size: Option<usize>,
    page: Option<usize>,
    #[serde(rename = "simplePaginate")]
    simple_paginate: Option<String>,
}

#[derive(Deserialize)]
struct GetParams {
    #[serde(rename = "filterByTk")]
    filter_by_tk: i64,
}

#[derive(Serialize)]
struct Envelope<T: Serialize, M: Serialize> {
    data: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    meta: Option<M>,
}

#[derive(Serialize)]
struct CountMeta {
    count: i64,
    page: usize,
    #[serde(rename = "pageSize")]
    page_size: usize,
    #[serde(rename = "totalPage")]
    total_page: i64,
}

#[derive(Serialize)]
struct SimpleMeta {
    page: usize,
    #[serde(rename = "pageSize")]
    page_size: usize,
    #[serde(rename = "hasNext")]
    has_next: bool,
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn post_pg(r: &sqlx::postgres::PgRow) -> sqlx::Result<Post> {
    Ok(Post {
        id: r.try_get(0)?,
        title: r.try_get(1)?,
        body: r.try_get(2)?,
        score: i64::from(r.try_get::<i32, _>(3)?),
        status: r.try_get(4)?,
        created_at: instant(r.try_get(5)?),
    })
}

fn post_my(r: &sqlx::mysql::MySqlRow) -> sqlx::Result<Post> {
    Ok(Post {
        id: r.try_get(0)?,
        title: r.try_get(1)?,
        body: r.try_get(2)?,
        score: i64::from(r.try_get::<i32, _>(3)?),
        status: r.try_get(4)?,
        created_at: instant(r.try_get(5)?),
    })
}

fn post_lite(r: &sqlx::sqlite::SqliteRow) -> sqlx::Result<Post> {
    Ok(Post {
        id: r.try_get(0)?,
        title: r.try_get(1)?,
        body: r.try_get(2)?,
        score: r.try_get(3)?,
        status: r.try_get(4)?,
        created_at: r.try_get(5)?,
    })
}

fn tag_pg(r: &sqlx::postgres::PgRow) -> sqlx::Result<(i64, Tag)> {
    let id: i32 = r.try_get(1)?;
    Ok((
        r.try_get(0)?,
        Tag {
            id: i64::from(id),
            name: r.try_get(2)?,
        },
    ))
}

fn tag_my(r: &sqlx::mysql::MySqlRow) -> sqlx::Result<(i64, Tag)> {
    let id: i32 = r.try_get(1)?;
    Ok((
        r.try_get(0)?,
        Tag {
            id: i64::from(id),
            name: r.try_get(2)?,
        },
    ))
}

fn tag_lite(r: &sqlx::sqlite::SqliteRow) -> sqlx::Result<(i64, Tag)> {
    Ok((
        r.try_get(0)?,
        Tag {
            id: r.try_get(1)?,
            name: r.try_get(2)?,
        },
    ))
}

/// Runs `$body` once per pool type, with `$p` the pool and `$post`/`$tag` that type's row
/// decoders: sqlx's types differ per database, the code does not.
macro_rules! each_pool {
    ($pool:expr, |$p:ident, $post:ident, $tag:ident| $body:block) => {
        match $pool {
            Pool::Pg($p) => {
                let ($post, $tag) = (post_pg, tag_pg);
                $body
            }
            Pool::My($p) => {
                let ($post, $tag) = (post_my, tag_my);
                $body
            }
            Pool::Lite($p) => {
                let ($post, $tag) = (post_lite, tag_lite);
                $body
            }
        }
    };
}

fn q(sql: &Arc<str>) -> AssertSqlSafe<Arc<str>> {
    AssertSqlSafe(sql.clone())
}

impl State {
    async fn get(&self, id: i64) -> sqlx::Result<Option<Post>> {
        each_pool!(&self.pool, |p, post, _tag| {
            let row = sqlx::query(q(&self.sql.get))
                .bind(id)
                .fetch_optional(p)
                .await?;
            row.as_ref().map(post).transpose()
        })
    }

    async fn count(&self, filtered: bool) -> sqlx::Result<i64> {
        each_pool!(&self.pool, |p, _post, _tag| {
            if filtered {
                sqlx::query_scalar(q(&self.sql.count_filtered))
                    .bind("published")
                    .bind(900_i32)
                    .fetch_one(p)
                    .await
            } else {
                sqlx::query_scalar(q(&self.sql.count)).fetch_one(p).await
            }
        })
    }

    async fn page(&self, filtered: bool, limit: usize, offset: usize) -> sqlx::Result<Vec<Post>> {
        each_pool!(&self.pool, |p, post, _tag| {
            let rows = if filtered {
                sqlx::query(q(&self.sql.page_filtered))
                    .bind("published")
                    .bind(900_i32)
                    .bind(limit as i64)
                    .bind(offset as i64)
                    .fetch_all(p)
                    .await?
            } else {
                sqlx::query(q(&self.sql.page))
                    .bind(limit as i64)
                    .bind(offset as i64)
                    .fetch_all(p)
                    .await?
            };
            rows.iter().map(post).collect()
        })
    }

    /// The tags and comments of `posts`, one query each, keyed by post.
    async fn relations(&self, posts: Vec<Post>) -> sqlx::Result<Vec<PostWithRelations>> {
        let ids: Vec<i64> = posts.iter().map(|p| p.id).collect();
        let mut out: Vec<PostWithRelations> = posts
            .into_iter()
            .map(|post| PostWithRelations {
                post,
                tags: Vec::new(),
                comments: Vec::new(),
            })
            .collect();
        if ids.is_empty() {
            return Ok(out);
        }
        // The statements were prepared for a full page; a short page pads with a key that
        // matches nothing rather than preparing another statement.
        let mut keys = ids.clone();
        keys.resize(self.page_size, 0);
        let (tags, comments) = each_pool!(&self.pool, |p, _post, tag| {
            let mut tq = sqlx::query(q(&self.sql.tags_of));
            for k in &keys {
                tq = tq.bind(*k);
            }
            let tags = tq
                .fetch_all(p)
                .await?
                .iter()
                .map(tag)
                .collect::<sqlx::Result<Vec<_>>>()?;
            let mut cq = sqlx::query(q(&self.sql.comments_of));
            for k in &keys {
                cq = cq.bind(*k);
            }
            let comments = cq
                .fetch_all(p)
                .await?
                .iter()
                .map(|r| {
                    Ok(Comment {
                        id: r.try_get(0)?,
                        post_id: r.try_get(1)?,
                        body: r.try_get(2)?,
                    })
                })
                .collect::<sqlx::Result<Vec<_>>>()?;
            (tags, comments)
        });
        let index = |id: i64| ids.iter().position(|k| *k == id);
        for (post_id, tag) in tags {
            if let Some(i) = index(post_id) {
                out[i].tags.push(tag);
            }
        }
        for comment in comments {
            if let Some(i) = index(comment.post_id) {
                out[i].comments.push(comment);
            }
        }
        Ok(out)
    }

    async fn create(&self, new: NewPost) -> Result<Post> {
        let created: DateTime<Utc> = DateTime::parse_from_rfc3339(&new.created_at)
            .context("createdAt")?
            .with_timezone(&Utc);
        let post = each_pool!(&self.pool, |p, post, _tag| {
            let query = sqlx::query(q(&self.sql.insert))
                .bind(&new.title)
                .bind(&new.body)
                .bind(i32::try_from(new.score)?)
                .bind(&new.status);
            // SQLite keeps instants as the API's text form (docs/decisions/0003).
            let row = match &self.pool {
                Pool::Lite(_) => query.bind(instant(created)).fetch_one(p).await?,
                _ => query.bind(created).fetch_one(p).await?,
            };
            post(&row)?
        });
        Ok(post)
    }
}

fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => Response::builder()
            .status(status)
            .content_type("application/json; charset=utf-8")
            .body(bytes),
        Err(e) => error(e.into()),
    }
}

fn error(e: anyhow::Error) -> Response {
    json(
        StatusCode::INTERNAL_SERVER_ERROR,
        &serde_json::json!({ "errors": [{ "message": e.to_string() }] }),
    )
}

fn page_of(params: &ListParams, default: usize) -> (usize, usize, usize) {
    let page = params.page.unwrap_or(1).max(1);
    let size = params.page_size.unwrap_or(default).max(1);
    (page, size, (page - 1) * size)
}

#[handler]
async fn get_post(state: Data<&Arc<State>>, Query(params): Query<GetParams>) -> Response {
    match state.get(params.filter_by_tk).await {
        Ok(post) => json(
            StatusCode::OK,
            &Envelope::<_, ()> {
                data: post,
                meta: None,
            },
        ),
        Err(e) => error(e.into()),
    }
}

async fn counted(state: &State, params: &ListParams, filtered: bool) -> Result<Response> {
    let (page, size, offset) = page_of(params, state.page_size);
    let count = state.count(filtered).await?;
    let posts = if count > offset as i64 {
        state.page(filtered, size, offset).await?
    } else {
        Vec::new()
    };
    Ok(json(
        StatusCode::OK,
        &Envelope {
            data: posts,
            meta: Some(CountMeta {
                count,
                page,
                page_size: size,
                total_page: (count + size as i64 - 1) / size as i64,
            }),
        },
    ))
}

#[handler]
async fn list(state: Data<&Arc<State>>, Query(params): Query<ListParams>) -> Response {
    let simple = matches!(params.simple_paginate.as_deref(), Some("true" | "1"));
    if !simple {
        return counted(&state, &params, false).await.unwrap_or_else(error);
    }
    let (page, size, offset) = page_of(&params, state.page_size);
    match state.page(false, size + 1, offset).await {
        Ok(mut posts) => {
            let has_next = posts.len() > size;
            posts.truncate(size);
            json(
                StatusCode::OK,
                &Envelope {
                    data: posts,
                    meta: Some(SimpleMeta {
                        page,
                        page_size: size,
                        has_next,
                    }),
                },
            )
        }
        Err(e) => error(e.into()),
    }
}

#[handler]
async fn list_filter(state: Data<&Arc<State>>, Query(params): Query<ListParams>) -> Response {
    counted(&state, &params, true).await.unwrap_or_else(error)
}

#[handler]
async fn list_appends(state: Data<&Arc<State>>, Query(params): Query<ListParams>) -> Response {
    let run = async {
        let (page, size, offset) = page_of(&params, state.page_size);
        let count = state.count(false).await?;
        let posts = if count > offset as i64 {
            state.page(false, size, offset).await?
        } else {
            Vec::new()
        };
        let posts = state.relations(posts).await?;
        Ok::<_, anyhow::Error>(json(
            StatusCode::OK,
            &Envelope {
                data: posts,
                meta: Some(CountMeta {
                    count,
                    page,
                    page_size: size,
                    total_page: (count + size as i64 - 1) / size as i64,
                }),
            },
        ))
    };
    run.await.unwrap_or_else(error)
}

#[handler]
async fn create(state: Data<&Arc<State>>, body: poem::web::Json<NewPost>) -> Response {
    match state.create(body.0).await {
        Ok(post) => json(
            StatusCode::OK,
            &Envelope::<_, ()> {
                data: post,
                meta: None,
            },
        ),
        Err(e) => error(e),
    }
}

async fn connect(backend: Backend, url: &str, max: u32) -> Result<Pool> {
    let acquire = Duration::from_secs(5);
    Ok(match backend {
        Backend::Postgres => Pool::Pg(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(acquire)
                .test_before_acquire(false)
                .connect(url)
                .await?,
        ),
        Backend::MariaDb => Pool::My(
            sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(max)
                .acquire_timeout(acquire)
                .test_before_acquire(false)
                .connect(url)
                .await?,
        ),
        Backend::Sqlite => {
            let options: sqlx::sqlite::SqliteConnectOptions = url.parse()?;
            // Manifold's SQLite settings (docs/configuration.md), so both read the file
            // the same way.
            let options = options
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true);
            Pool::Lite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(max)
                    .acquire_timeout(acquire)
                    .test_before_acquire(false)
                    .connect_with(options)
                    .await?,
            )
        }
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let backend = Backend::parse(&args.backend)
        .ok_or_else(|| anyhow!("unknown backend {:?}", args.backend))?;
    let page_size = manifold_bench::PAGE_SIZE as usize;
    let queries = Queries::new(backend, page_size);
    let sql = Sql {
        get: queries.get.into(),
        count: queries.count.into(),
        page: queries.page.into(),
        count_filtered: queries.count_filtered.into(),
        page_filtered: queries.page_filtered.into(),
        tags_of: queries.tags_of.into(),
        comments_of: queries.comments_of.into(),
        insert: queries.insert.into(),
    };
    let pool = connect(backend, &args.url, args.max_connections)
        .await
        .with_context(|| format!("connecting to {}", args.url))?;
    let state = Arc::new(State {
        pool,
        sql,
        page_size,
    });
    let app = Route::new()
        .at("/posts/get", get(get_post))
        .at("/posts/list", get(list))
        .at("/posts/list-filter", get(list_filter))
        .at("/posts/list-appends", get(list_appends))
        .at("/posts/create", post(create))
        .data(state);
    eprintln!("baseline ({backend}) listening on {}", args.listen);
    Server::new(TcpListener::bind(args.listen))
        .run(app)
        .await
        .context("serving")
}
