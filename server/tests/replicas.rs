//! Several `manifold` replicas on one main database: a change of shared state made on one
//! (a data source registered or removed, a relation declared, a collection created, a
//! grant given, an API key revoked) takes effect on the others within a second, through
//! PostgreSQL notifications, through the poll when notifications are off or lost, and
//! through the poll alone on a MariaDB main database.
//!
//! Every replica is a real process started from the built binary; every answer is read
//! off a socket.

mod support;

use support::{Reply, free_port, inherited_settings, request};

use std::io::Read as _;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use manifold_tests::{Backend, ScratchDatabase};
use serde_json::{Value as Json, json};
use tokio::net::TcpStream;

const ROOT_PASSWORD: &str = "replicas-test-root";
/// What the issue asks of a change with notifications: on every replica within 1 s (p99).
const WITHIN: Duration = Duration::from_secs(1);

/// One running `manifold` process, signed in as root.
struct Replica {
    child: Child,
    port: u16,
    token: String,
    log: PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a process on `main_url` with `args`; [`Replica::ready`] waits for it.
fn spawn(dir: &std::path::Path, main_url: &str, args: &[&str]) -> (Child, u16, PathBuf) {
    let port = free_port();
    let log = dir.join(format!("manifold-{port}.log"));
    let out = std::fs::File::create(&log).expect("log file");
    let err = out.try_clone().expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_manifold"));
    for key in inherited_settings() {
        command.env_remove(key);
    }
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--main-db", main_url])
        .args(args)
        // Every replica must verify the others' tokens.
        .env(
            "MANIFOLD_JWT_SECRET",
            "replicas-test-secret-0123456789abcdef",
        )
        .env("MANIFOLD_ROOT_PASSWORD", ROOT_PASSWORD)
        .current_dir(dir)
        .stdout(out)
        .stderr(err);
    (command.spawn().expect("manifold starts"), port, log)
}

impl Replica {
    /// Waits until the process answers `/health/ready`, then signs in as root.
    async fn ready((mut child, port, log): (Child, u16, PathBuf)) -> Self {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("manifold exited with {status}: {}", read(&log));
            }
            let ready = TcpStream::connect(("127.0.0.1", port)).await.is_ok()
                && request(port, "GET", "/health/ready", &[], None)
                    .await
                    .status
                    == 200;
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "manifold not ready in 60 s: {}",
                read(&log)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut replica = Self {
            child,
            port,
            token: String::new(),
            log,
        };
        replica.token = replica.sign_in("root", ROOT_PASSWORD).await;
        replica
    }

    /// Starts `n` processes on `main_url` at the same moment (on a fresh main database they
    /// migrate it together, under the migration lock) and waits for all of them.
    async fn start_together(
        dir: &std::path::Path,
        main_url: &str,
        n: usize,
        args: &[&str],
    ) -> Vec<Self> {
        let mut replicas = Vec::with_capacity(n);
        let spawned: Vec<_> = (0..n).map(|_| spawn(dir, main_url, args)).collect();
        for s in spawned {
            replicas.push(Self::ready(s).await);
        }
        replicas
    }

    async fn sign_in(&self, account: &str, password: &str) -> String {
        let r = self
            .send(
                "POST",
                "/api/auth:signIn",
                None,
                None,
                Some(&json!({ "account": account, "password": password })),
            )
            .await;
        r.body["data"]["token"]
            .as_str()
            .unwrap_or_else(|| panic!("no token for {account}: {r:?}"))
            .to_owned()
    }

    /// One request as `token` (root's when `None`), to data source `source` if given.
    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        source: Option<&str>,
        body: Option<&Json>,
    ) -> Reply {
        let bearer = format!("Bearer {}", token.unwrap_or(&self.token));
        let mut headers = Vec::new();
        if !self.token.is_empty() || token.is_some() {
            headers.push(("Authorization", bearer.as_str()));
        }
        if let Some(source) = source {
            headers.push(("X-Data-Source", source));
        }
        request(self.port, method, path, &headers, body).await
    }

    /// A request as root that must succeed.
    async fn ok(&self, method: &str, path: &str, body: Json) -> Json {
        let r = self.send(method, path, None, None, Some(&body)).await;
        assert_eq!(r.status, 200, "{method} {path}: {r:?}\n{}", read(&self.log));
        r.body
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

fn read(log: &std::path::Path) -> String {
    let mut text = String::new();
    let _ = std::fs::File::open(log).and_then(|mut f| f.read_to_string(&mut text));
    text
}

/// What a replica answers when it has taken a change in: `path` (on `source`, as `token`)
/// answers `status`, with a value at the JSON pointer `holds` when given.
#[derive(Clone, Copy)]
struct Probe<'a> {
    path: &'a str,
    source: Option<&'a str>,
    token: Option<&'a str>,
    status: u16,
    holds: Option<&'a str>,
}

impl Probe<'_> {
    fn accepts(&self, r: &Reply) -> bool {
        r.status == self.status
            && self
                .holds
                .is_none_or(|p| r.body.pointer(p).is_some_and(|v| !v.is_null()))
    }
}

/// How long after `since` each of `replicas` answers `probe` as expected; panics after
/// `limit`.
async fn converge(
    replicas: &[&Replica],
    probe: Probe<'_>,
    since: Instant,
    limit: Duration,
) -> Vec<Duration> {
    let mut took: Vec<Option<Duration>> = vec![None; replicas.len()];
    let deadline = since + limit;
    loop {
        for (i, replica) in replicas.iter().enumerate() {
            if took[i].is_some() {
                continue;
            }
            let r = replica
                .send("GET", probe.path, probe.token, probe.source, None)
                .await;
            if probe.accepts(&r) {
                took[i] = Some(since.elapsed());
            }
        }
        if took.iter().all(Option::is_some) {
            return took.into_iter().flatten().collect();
        }
        if Instant::now() > deadline {
            let last = replicas[took.iter().position(Option::is_none).unwrap_or(0)]
                .send("GET", probe.path, probe.token, probe.source, None)
                .await;
            panic!(
                "{} (source {:?}) did not answer {} within {limit:?}; last answer {last:?}",
                probe.path, probe.source, probe.status
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The 99th percentile of `samples` (with 20 samples: the largest).
fn p99(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = (sorted.len() * 99).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// A PostgreSQL database with `authors` and `books` (whose `author_id` has no foreign key:
/// the relation is declared over the API).
async fn source_database() -> ScratchDatabase {
    let db = ScratchDatabase::create(Backend::Postgres).await;
    let pool = sqlx::PgPool::connect(&db.url())
        .await
        .expect("source database");
    for statement in [
        "CREATE TABLE authors (id serial PRIMARY KEY, name text)",
        "CREATE TABLE books (id serial PRIMARY KEY, title text, author_id integer)",
        "INSERT INTO authors (name) VALUES ('Ann')",
        "INSERT INTO books (title, author_id) VALUES ('One', 1)",
    ] {
        sqlx::query(statement)
            .execute(&pool)
            .await
            .expect(statement);
    }
    pool.close().await;
    db
}

/// Registers `db` as source `key` on `on`.
async fn register(on: &Replica, key: &str, db: &ScratchDatabase) {
    on.ok(
        "POST",
        "/api/dataSources:create",
        json!({ "key": key, "type": "postgres", "options": { "url": db.url(), "maxConnections": 2 } }),
    )
    .await;
}

/// Declares `books.author` on source `key` through `on`.
async fn declare_author(on: &Replica, key: &str) {
    on.ok(
        "POST",
        &format!("/api/dataSourcesCollections/{key}.books/fields:create"),
        json!({ "name": "author", "type": "belongsTo", "target": "authors", "foreignKey": "author_id" }),
    )
    .await;
}

fn books(key: &str) -> Probe<'_> {
    Probe {
        path: "/api/books:list",
        source: Some(key),
        token: None,
        status: 200,
        holds: None,
    }
}

fn books_with_author(key: &str) -> Probe<'_> {
    Probe {
        path: "/api/books:list?appends=author",
        holds: Some("/data/0/author/name"),
        ..books(key)
    }
}

fn gone(key: &str) -> Probe<'_> {
    Probe {
        status: 404,
        ..books(key)
    }
}

/// Twenty sources registered, given a relation and removed on one replica: the other two
/// serve each (and then answer 404) within 1 s at the 99th percentile, `limit` at worst.
async fn twenty_changes(first: &Replica, others: &[&Replica], limit: Duration) -> [Duration; 3] {
    let db = source_database().await;
    let (mut served, mut related, mut removed) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..20 {
        let key = format!("s{i}");
        register(first, &key, &db).await;
        served.extend(converge(others, books(&key), Instant::now(), limit).await);
        // The first loads it in the background too; the declaration needs it loaded.
        converge(&[first], books(&key), Instant::now(), limit).await;
        // Before the declaration the others know no relation to append.
        let r = others[0]
            .send("GET", books_with_author(&key).path, None, Some(&key), None)
            .await;
        assert!(!books_with_author(&key).accepts(&r), "{r:?}");
        declare_author(first, &key).await;
        related.extend(converge(others, books_with_author(&key), Instant::now(), limit).await);
        let r = others[0]
            .send("GET", books_with_author(&key).path, None, Some(&key), None)
            .await;
        assert_eq!(r.body["data"][0]["author"]["name"], json!("Ann"), "{r:?}");
        first
            .ok(
                "POST",
                &format!("/api/dataSources:destroy?filterByTk={key}"),
                json!({}),
            )
            .await;
        removed.extend(converge(others, gone(&key), Instant::now(), limit).await);
    }
    let p = [p99(&served), p99(&related), p99(&removed)];
    eprintln!(
        "p99 over 20 changes: registered {:?}, related {:?}, removed {:?}",
        p[0], p[1], p[2]
    );
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_on_postgres_take_each_change_within_a_second() {
    let main = ScratchDatabase::create(Backend::Postgres).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let replicas = Replica::start_together(dir.path(), &main.url(), 3, &[]).await;
    let [a, b, c] = [&replicas[0], &replicas[1], &replicas[2]];

    let [served, related, removed] = twenty_changes(a, &[b, c], Duration::from_secs(10)).await;
    for (what, p) in [
        ("registered", served),
        ("related", related),
        ("removed", removed),
    ] {
        assert!(
            p <= WITHIN,
            "a source {what} on one replica took {p:?} (p99) on the others"
        );
    }

    // A relation declared while the others may still be loading the source: their load
    // read the declarations before it, and must apply them again.
    let db = source_database().await;
    register(a, "quick", &db).await;
    converge(&[a], books("quick"), Instant::now(), WITHIN).await;
    declare_author(a, "quick").await;
    converge(&[b, c], books_with_author("quick"), Instant::now(), WITHIN).await;

    // What each replica says of a source is its own state, and a real one.
    register(a, "shared", &db).await;
    converge(&[b, c], books("shared"), Instant::now(), WITHIN).await;
    for replica in [a, b, c] {
        let r = replica
            .send("GET", "/api/dataSources:get/shared", None, None, None)
            .await;
        assert_eq!(r.body["data"]["status"], json!("loaded"), "{r:?}");
    }
    a.ok(
        "POST",
        "/api/dataSources:update?filterByTk=shared",
        json!({ "enabled": false }),
    )
    .await;
    converge(
        &[b, c],
        Probe {
            status: 503,
            ..books("shared")
        },
        Instant::now(),
        WITHIN,
    )
    .await;
    let r = b
        .send("GET", "/api/dataSources:get/shared", None, None, None)
        .await;
    assert_eq!(r.body["data"]["status"], json!("disabled"), "{r:?}");

    // A collection created on one replica, then a grant to a role.
    let since = Instant::now();
    a.ok(
        "POST",
        "/api/collections:create",
        json!({ "name": "posts", "fields": [{ "name": "title", "type": "string" }] }),
    )
    .await;
    let posts = Probe {
        path: "/api/posts:list",
        source: None,
        token: None,
        status: 200,
        holds: None,
    };
    converge(&[b, c], posts, since, WITHIN).await;
    a.ok("POST", "/api/roles:create", json!({ "name": "reader" }))
        .await;
    a.ok(
        "POST",
        "/api/users:create",
        json!({ "username": "ann", "password": "ann-secret-1", "roles": ["reader"] }),
    )
    .await;
    let ann = b.sign_in("ann", "ann-secret-1").await;
    let as_ann = Probe {
        token: Some(&ann),
        ..posts
    };
    assert_eq!(
        b.send("GET", "/api/posts:list", Some(&ann), None, None)
            .await
            .status,
        403
    );
    let since = Instant::now();
    a.ok(
        "POST",
        "/api/roles/reader/resources:create",
        json!({ "name": "posts", "usingActionsConfig": true, "actions": [{ "name": "view" }] }),
    )
    .await;
    converge(&[b, c], as_ann, since, WITHIN).await;

    // An API key revoked on one replica stops working on the others, although they
    // verified it a moment ago (their token cache keeps it 10 s).
    let created = a
        .ok(
            "POST",
            "/api/apiKeys:create",
            json!({ "name": "ci", "role": { "name": "root" }, "expiresIn": "30d" }),
        )
        .await;
    let key = created["data"]["token"]
        .as_str()
        .expect("an API key")
        .to_owned();
    let id = created["data"]["id"].clone();
    let check = Probe {
        path: "/api/auth:check",
        source: None,
        token: Some(&key),
        status: 200,
        holds: None,
    };
    converge(&[b, c], check, Instant::now(), WITHIN).await;
    let since = Instant::now();
    a.ok(
        "POST",
        &format!("/api/apiKeys:destroy?filterByTk={id}"),
        json!({}),
    )
    .await;
    converge(
        &[b, c],
        Probe {
            status: 401,
            ..check
        },
        since,
        WITHIN,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_notifications_replicas_converge_through_the_poll() {
    let main = ScratchDatabase::create(Backend::Postgres).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let replicas = Replica::start_together(
        dir.path(),
        &main.url(),
        2,
        &[
            "--change-notifications",
            "false",
            "--change-poll-interval",
            "1s",
        ],
    )
    .await;
    // Nobody listens: what arrives, arrives by the poll.
    let pool = sqlx::PgPool::connect(&main.url())
        .await
        .expect("main database");
    let listening: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'manifold-listen-%' AND datname = current_database()",
    )
    .fetch_one(&pool)
    .await
    .expect("pg_stat_activity");
    assert_eq!(listening, 0);
    pool.close().await;
    // The poll interval, and a margin for loading the source.
    let limit = Duration::from_secs(1) + Duration::from_millis(1000);
    let [served, related, removed] = twenty_changes(&replicas[0], &[&replicas[1]], limit).await;
    for (what, p) in [
        ("registered", served),
        ("related", related),
        ("removed", removed),
    ] {
        assert!(
            p <= limit,
            "a source {what} took {p:?} (p99) through the poll"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_listener_is_killed_reconnects_and_catches_up() {
    let main = ScratchDatabase::create(Backend::Postgres).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let a = Replica::ready(spawn(dir.path(), &main.url(), &[])).await;
    // The poll would hide a lost listener: B hears only through it.
    let b = Replica::ready(spawn(
        dir.path(),
        &main.url(),
        &["--change-poll-interval", "1h"],
    ))
    .await;
    let pool = sqlx::PgPool::connect(&main.url())
        .await
        .expect("main database");
    let name = format!("manifold-listen-{}", b.pid());
    let listener = || {
        sqlx::query_scalar::<_, i32>("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
            .bind(name.clone())
            .fetch_optional(&pool)
    };
    let db = source_database().await;
    register(&a, "before", &db).await;
    converge(&[&b], books("before"), Instant::now(), WITHIN).await;
    let old = listener()
        .await
        .expect("pg_stat_activity")
        .expect("B listens");

    // B is paused while its listening connection is killed and a change is made: the
    // notification of that change reaches nobody on B's side.
    let signal = |sig: &str| {
        let status = Command::new("kill")
            .args([sig, &b.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    signal("-STOP");
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(old)
        .fetch_one(&pool)
        .await
        .expect("pg_terminate_backend");
    assert!(killed);
    let deadline = Instant::now() + Duration::from_secs(5);
    while listener().await.expect("pg_stat_activity").is_some() {
        assert!(
            Instant::now() < deadline,
            "the listener backend did not end"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    register(&a, "missed", &db).await;
    signal("-CONT");

    // B notices, listens again, and reads what it missed.
    converge(
        &[&b],
        books("missed"),
        Instant::now(),
        Duration::from_secs(5),
    )
    .await;
    let new = listener()
        .await
        .expect("pg_stat_activity")
        .expect("B listens again");
    assert_ne!(new, old);
    // And hears the next change as usual.
    register(&a, "after", &db).await;
    converge(&[&b], books("after"), Instant::now(), WITHIN).await;
    pool.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_mariadb_converge_through_the_poll() {
    let main = ScratchDatabase::create(Backend::MariaDb).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let a = Replica::ready(spawn(dir.path(), &main.url(), &[])).await;
    let b = Replica::ready(spawn(dir.path(), &main.url(), &[])).await;
    let limit = Duration::from_secs(1) + Duration::from_millis(1000);
    let db = source_database().await;
    for key in ["m1", "m2", "m3"] {
        register(&a, key, &db).await;
        converge(&[&b], books(key), Instant::now(), limit).await;
        declare_author(&a, key).await;
        converge(&[&b], books_with_author(key), Instant::now(), limit).await;
        a.ok(
            "POST",
            &format!("/api/dataSources:destroy?filterByTk={key}"),
            json!({}),
        )
        .await;
        converge(&[&b], gone(key), Instant::now(), limit).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_shows_its_own_state_and_takes_up_a_source_it_has_not_heard_of() {
    let main = ScratchDatabase::create(Backend::Postgres).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let a = Replica::ready(spawn(dir.path(), &main.url(), &[])).await;
    // B hears of nothing by itself within this test.
    let b = Replica::ready(spawn(
        dir.path(),
        &main.url(),
        &[
            "--change-notifications",
            "false",
            "--change-poll-interval",
            "1h",
        ],
    ))
    .await;
    let db = source_database().await;
    register(&a, "late", &db).await;
    converge(&[&a], books("late"), Instant::now(), WITHIN).await;
    let r = b
        .send("GET", "/api/books:list", None, Some("late"), None)
        .await;
    assert_eq!(r.status, 404, "B has not heard of it: {r:?}");

    // Asked, B reports its own state, and that state is work under way: the source
    // loads there without any change being heard.
    let r = b
        .send("GET", "/api/dataSources:list", None, None, None)
        .await;
    let late = r.body["data"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["key"] == json!("late")))
        .unwrap_or_else(|| panic!("the stored record is listed: {r:?}"))
        .clone();
    assert!(
        matches!(late["status"].as_str(), Some("loading" | "loaded")),
        "{late}"
    );
    converge(&[&b], books("late"), Instant::now(), Duration::from_secs(5)).await;
    let r = b
        .send("GET", "/api/dataSources:get/late", None, None, None)
        .await;
    assert_eq!(r.body["data"]["status"], json!("loaded"), "{r:?}");
}

/// Issue 17's connection budget: a source registered with `maxConnectionsTotal: 8` never
/// has more than 8 connections open from two replicas together (sampled in
/// `pg_stat_activity` throughout), though each is loaded hard enough to use all 8 alone.
/// The second replica joins while the first holds the whole total, and serves; once the
/// first is killed, the second takes up its part after the lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_never_open_more_than_the_total_of_a_source() {
    share_a_total_of_eight(ScratchDatabase::create(Backend::Postgres).await).await;
}

/// The same on a MariaDB main database, whose budget lock is `GET_LOCK`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_mariadb_main_database_two_replicas_share_a_total_too() {
    share_a_total_of_eight(ScratchDatabase::create(Backend::MariaDb).await).await;
}

async fn share_a_total_of_eight(main: ScratchDatabase) {
    const TOTAL: i64 = 8;
    let db = source_database().await;
    let setup = sqlx::PgPool::connect(&db.url()).await.expect("source");
    sqlx::query(
        "INSERT INTO books (title, author_id) SELECT 'b' || n, 1 FROM generate_series(1, 3000) n",
    )
    .execute(&setup)
    .await
    .expect("rows to read");
    setup.close().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let first = Replica::ready(spawn(dir.path(), &main.url(), &[])).await;
    first
        .ok(
            "POST",
            "/api/dataSources:create",
            json!({ "key": "shared", "type": "postgres",
                    "options": { "url": db.url(), "maxConnectionsTotal": TOTAL } }),
        )
        .await;
    converge(
        &[&first],
        books("shared"),
        Instant::now(),
        Duration::from_secs(10),
    )
    .await;

    // Samples the source's open connections until told to stop; answers the most seen.
    let admin = sqlx::PgPool::connect(
        &std::env::var("MANIFOLD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
    )
    .await
    .expect("admin connection");
    let sample = {
        let admin = admin.clone();
        let name = db.name().to_owned();
        move || {
            let admin = admin.clone();
            let name = name.clone();
            async move {
                sqlx::query_scalar::<_, i64>(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                )
                .bind(name)
                .fetch_one(&admin)
                .await
                .expect("pg_stat_activity")
            }
        }
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sampler = {
        let sample = sample.clone();
        tokio::spawn(async move {
            let mut most = 0;
            while !*stopped.borrow() {
                let n = sample().await;
                most = most.max(n);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            most
        })
    };

    // Load: `clients` at once on each port, until `run` has passed; every answer a 200.
    async fn load(ports: &[(u16, String)], clients: usize, run: Duration) -> usize {
        let until = Instant::now() + run;
        let mut tasks = Vec::new();
        for (port, token) in ports {
            for _ in 0..clients {
                let (port, bearer) = (*port, format!("Bearer {token}"));
                tasks.push(tokio::spawn(async move {
                    let mut served = 0;
                    while Instant::now() < until {
                        let r = request(
                            port,
                            "GET",
                            "/api/books:list?pageSize=500",
                            &[("Authorization", &bearer), ("X-Data-Source", "shared")],
                            None,
                        )
                        .await;
                        assert_eq!(r.status, 200, "port {port}: {r:?}");
                        served += 1;
                    }
                    served
                }));
            }
        }
        let mut served = 0;
        for task in tasks {
            served += task.await.expect("a client");
        }
        served
    }
    let on_first = [(first.port, first.token.clone())];
    load(&on_first, 24, Duration::from_secs(2)).await;
    let alone = sample().await;
    assert!(
        alone > TOTAL / 2,
        "alone, the first replica used more than half: {alone}"
    );

    // The second starts while the first is busy with the whole total.
    let busy = tokio::spawn({
        let on_first = on_first.clone();
        async move { load(&on_first, 24, Duration::from_secs(8)).await }
    });
    let second = Replica::ready(spawn(dir.path(), &main.url(), &[])).await;
    let both = [
        (first.port, first.token.clone()),
        (second.port, second.token.clone()),
    ];
    let served = load(&both, 16, Duration::from_secs(4)).await;
    assert!(busy.await.expect("the first's load") > 0);
    assert!(served > 0);

    // The first dies without giving anything back; after the lease the second takes the
    // whole total.
    drop(first);
    tokio::time::sleep(Duration::from_secs(7)).await;
    let on_second = [(second.port, second.token.clone())];
    load(&on_second, 24, Duration::from_secs(3)).await;
    let taken_up = sample().await;

    stop.send_replace(true);
    let most = sampler.await.expect("the sampler");
    admin.close().await;
    eprintln!(
        "connections on the source: at most {most}; the first alone {alone}; \
         the second alone after the lease {taken_up}"
    );
    assert!(
        most <= TOTAL,
        "at most {TOTAL} connections at any moment, saw {most}"
    );
    assert!(
        taken_up > TOTAL / 2,
        "the second took up the dead replica's part: {taken_up} open"
    );
}
