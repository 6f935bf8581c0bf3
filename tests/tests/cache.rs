//! The cache (server/src/cache) on both backends, the same checks on each: a struct's round
//! trip, TTLs, namespaces kept apart, `clear` and `delete`, `get_or_insert_with` computing
//! once; then a plugin's action using `App::cache`, Redis failing mid-run (a 503, never a
//! panic), and bad Redis URLs failing clearly without showing their password.
//!
//! Redis is the server at `MANIFOLD_TEST_REDIS_URL` (scripts/test.sh starts one), else
//! `redis://127.0.0.1:6379`; a Redis that does not answer fails these tests. Each test
//! writes under a key prefix of its own (a UUID), so tests running side by side and earlier
//! runs never meet, and removes its keys at the end; every key has a TTL of at most a
//! minute, so a failed test's keys go by themselves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use manifold_core::resource::ResourceDefinition;
use manifold_core::{Context, ErrorKind, Middleware, Next};
use manifold_server::cache::{Cache, CacheError, CacheNamespace, CacheOptions, redact_url};
use manifold_tests::proxy::FaultyProxy;
use manifold_tests::{CapturedLog, MainDb, TestApp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Something like what Manifold will cache: a role's grant on a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Grant {
    role: String,
    collection: String,
    actions: Vec<String>,
    fields: Option<Vec<String>>,
    limit: u32,
}

fn grant(role: &str) -> Grant {
    Grant {
        role: role.to_owned(),
        collection: "posts".to_owned(),
        actions: vec!["list".to_owned(), "get".to_owned()],
        fields: Some(vec!["title".to_owned(), "ünïcode ✓".to_owned()]),
        limit: 42,
    }
}

/// The TTL of the test caches' values stored without one.
const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// A TTL that ends within the test: long enough that a value read right after it was
/// stored is still there on a busy machine.
const SHORT_TTL: Duration = Duration::from_secs(1);

/// How long a test waits for a [`SHORT_TTL`] to end.
const PAST_SHORT_TTL: Duration = Duration::from_millis(1600);

fn redis_url() -> String {
    std::env::var("MANIFOLD_TEST_REDIS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Backend {
    Memory,
    Redis,
}

/// A cache for one test, under a key prefix of its own.
struct TestCache {
    cache: Cache,
    backend: Backend,
    prefix: String,
}

impl TestCache {
    async fn open(backend: Backend) -> Self {
        Self::open_with(backend, DEFAULT_TTL).await
    }

    async fn open_with(backend: Backend, default_ttl: Duration) -> Self {
        let prefix = format!("manifold-test-{}", uuid::Uuid::new_v4().simple());
        let url = match backend {
            Backend::Memory => "memory".to_owned(),
            Backend::Redis => redis_url(),
        };
        let options = CacheOptions {
            url: url.clone(),
            default_ttl,
            key_prefix: prefix.clone(),
            ..CacheOptions::default()
        };
        match Cache::open(&options).await {
            Ok(cache) => Self {
                cache,
                backend,
                prefix,
            },
            Err(e) => panic!(
                "the {backend:?} cache at {} does not open: {e}. scripts/test.sh starts Redis; \
                 MANIFOLD_TEST_REDIS_URL names another",
                redact_url(&url)
            ),
        }
    }

    fn ns(&self, name: &str) -> CacheNamespace {
        self.cache.namespace(name)
    }

    /// Removes every Redis key under the prefix, and checks none is left.
    async fn finish(self) {
        if self.backend == Backend::Redis {
            let mut redis = raw_redis().await;
            let keys = keys_under(&mut redis, &self.prefix).await;
            if !keys.is_empty() {
                let _: u64 = redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async(&mut redis)
                    .await
                    .expect("UNLINK the test's keys");
            }
            assert!(keys_under(&mut redis, &self.prefix).await.is_empty());
        }
    }
}

/// A connection of our own to the test Redis, to look at what the cache wrote.
async fn raw_redis() -> redis::aio::MultiplexedConnection {
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).expect("MANIFOLD_TEST_REDIS_URL parses");
    client
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("Redis at {} does not answer: {e}", redact_url(&url)))
}

/// Every key starting with `<prefix>:`.
async fn keys_under(redis: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(redis)
            .await
            .expect("SCAN");
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// One test per backend, `name::memory` and `name::redis`, running the same body on a
/// fresh [`TestCache`] and cleaning up after it.
macro_rules! on_both_backends {
    ($(#[$meta:meta])* async fn $name:ident($t:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($t: &TestCache) $body

            #[tokio::test]
            async fn memory() {
                let t = TestCache::open(Backend::Memory).await;
                body(&t).await;
                t.finish().await;
            }

            #[tokio::test]
            async fn redis() {
                let t = TestCache::open(Backend::Redis).await;
                body(&t).await;
                t.finish().await;
            }
        }
    };
}

on_both_backends! {
    /// A struct comes back as it went in; a missing key is `None`; `set` replaces; asking
    /// for the wrong type is a decode error (a 500), not a wrong value.
    async fn a_struct_makes_the_round_trip(t) {
        let ns = t.ns("acl.grants");
        assert_eq!(ns.name(), "acl.grants");
        assert_eq!(ns.get::<Grant>("admin").await.expect("get"), None);

        ns.set("admin", &grant("admin"), None).await.expect("set");
        assert_eq!(ns.get::<Grant>("admin").await.expect("get"), Some(grant("admin")));

        let mut changed = grant("admin");
        changed.fields = None;
        changed.limit = 7;
        ns.set("admin", &changed, None).await.expect("set again");
        assert_eq!(ns.get::<Grant>("admin").await.expect("get"), Some(changed));

        // Other shapes of JSON, and keys with spaces, colons and glob characters.
        ns.set("list: [*]?", &vec![1u64, 2, 3], None).await.expect("set a list");
        assert_eq!(ns.get::<Vec<u64>>("list: [*]?").await.expect("get"), Some(vec![1, 2, 3]));
        ns.set("text", "plain", None).await.expect("set a str");
        assert_eq!(ns.get::<String>("text").await.expect("get"), Some("plain".to_owned()));

        let wrong = ns.get::<Vec<u64>>("admin").await;
        assert!(matches!(wrong, Err(CacheError::Decode { .. })), "{wrong:?}");
        let as_core = manifold_core::Error::from(wrong.expect_err("a decode error"));
        assert_eq!(as_core.kind(), ErrorKind::Internal);
    }
}

on_both_backends! {
    /// A value goes when its TTL ends: its own, or the cache's default when it has none.
    /// A zero TTL removes the key.
    async fn values_expire_after_their_ttl(t) {
        let ns = t.ns("ttl");
        ns.set("short", &1, Some(SHORT_TTL)).await.expect("set");
        ns.set("long", &2, Some(Duration::from_secs(30))).await.expect("set");
        assert_eq!(ns.get::<i32>("short").await.expect("get"), Some(1));
        tokio::time::sleep(PAST_SHORT_TTL).await;
        assert_eq!(ns.get::<i32>("short").await.expect("get"), None, "expired");
        assert_eq!(ns.get::<i32>("long").await.expect("get"), Some(2));

        ns.set("long", &3, Some(Duration::ZERO)).await.expect("set with no time");
        assert_eq!(ns.get::<i32>("long").await.expect("get"), None);

        // A cache whose default TTL is short: a value stored without a TTL gets it.
        let quick = TestCache::open_with(t.backend, SHORT_TTL).await;
        assert_eq!(quick.cache.default_ttl(), SHORT_TTL);
        let q = quick.ns("ttl");
        q.set("default", &4, None).await.expect("set");
        q.set("own", &5, Some(Duration::from_secs(30))).await.expect("set");
        assert_eq!(q.get::<i32>("default").await.expect("get"), Some(4));
        tokio::time::sleep(PAST_SHORT_TTL).await;
        assert_eq!(q.get::<i32>("default").await.expect("get"), None, "default TTL");
        assert_eq!(q.get::<i32>("own").await.expect("get"), Some(5));
        quick.finish().await;
    }
}

on_both_backends! {
    /// The same key in two namespaces holds two values, including namespaces whose names
    /// would meet if they were joined with `:` as they are (`a:b` + `c`, `a` + `b:c`).
    async fn namespaces_are_kept_apart(t) {
        let pairs = [("tokens", "k"), ("roles", "k"), ("a:b", "c"), ("a", "b:c"), ("a%3Ab", "c")];
        for (i, (namespace, key)) in pairs.iter().enumerate() {
            t.ns(namespace).set(key, &i, None).await.expect("set");
        }
        for (i, (namespace, key)) in pairs.iter().enumerate() {
            assert_eq!(
                t.ns(namespace).get::<usize>(key).await.expect("get"),
                Some(i),
                "{namespace} / {key}"
            );
        }
        assert_eq!(t.ns("other").get::<usize>("k").await.expect("get"), None);
    }
}

on_both_backends! {
    /// `clear` empties its namespace, however many keys it holds, and no other one: not
    /// one whose name starts the same, nor one with glob characters.
    async fn clear_clears_only_its_namespace(t) {
        let cleared = t.ns("perm*");
        for i in 0..1500 {
            cleared.set(&format!("k{i}"), &i, None).await.expect("set");
        }
        let others = ["permissions", "perm", "perm*x", "perm?", "perm\\*", "per"];
        for name in others {
            t.ns(name).set("k1", &name, None).await.expect("set");
        }

        cleared.clear().await.expect("clear");
        for i in [0, 1, 749, 1499] {
            assert_eq!(cleared.get::<i32>(&format!("k{i}")).await.expect("get"), None);
        }
        for name in others {
            assert_eq!(
                t.ns(name).get::<String>("k1").await.expect("get").as_deref(),
                Some(name),
                "{name} survives clearing perm*"
            );
        }
        // The namespace is usable again at once.
        cleared.set("k1", &7, None).await.expect("set after clear");
        assert_eq!(cleared.get::<i32>("k1").await.expect("get"), Some(7));
        // Clearing an empty namespace is no error.
        t.ns("never-used").clear().await.expect("clear an empty namespace");

        if t.backend == Backend::Redis {
            let mut redis = raw_redis().await;
            let namespace = format!("{}:perm*:", t.prefix);
            let left: Vec<String> = keys_under(&mut redis, &t.prefix)
                .await
                .into_iter()
                .filter(|key| key.starts_with(&namespace))
                .collect();
            assert_eq!(left, [format!("{namespace}k1")], "only the key set after the clear");
        }
    }
}

on_both_backends! {
    /// `delete` removes one key; deleting a key that is not there is no error.
    async fn delete_removes_one_key(t) {
        let ns = t.ns("sessions");
        ns.set("a", &1, None).await.expect("set");
        ns.set("b", &2, None).await.expect("set");
        ns.delete("a").await.expect("delete");
        assert_eq!(ns.get::<i32>("a").await.expect("get"), None);
        assert_eq!(ns.get::<i32>("b").await.expect("get"), Some(2));
        ns.delete("a").await.expect("delete again");
        ns.delete("never").await.expect("delete a missing key");
    }
}

on_both_backends! {
    /// `get_or_insert_with` computes on a miss only, once however many ask at the same
    /// time, and stores nothing when the computation fails.
    async fn get_or_insert_with_computes_once(t) {
        let ns = t.ns("computed");
        let runs = Arc::new(AtomicUsize::new(0));
        let compute = |value: Grant| {
            let runs = runs.clone();
            move || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, CacheError>(value)
            }
        };

        let first = ns.get_or_insert_with("admin", None, compute(grant("admin"))).await;
        assert_eq!(first.expect("computed"), grant("admin"));
        let second = ns.get_or_insert_with("admin", None, compute(grant("other"))).await;
        assert_eq!(second.expect("cached"), grant("admin"), "the stored value, not a new one");
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(ns.get::<Grant>("admin").await.expect("get"), Some(grant("admin")));

        // Ten callers of one missing key: one computes, the others wait for it.
        let callers = (0..10).map(|_| ns.get_or_insert_with("member", None, compute(grant("member"))));
        for answer in futures_util::future::join_all(callers).await {
            assert_eq!(answer.expect("computed or cached"), grant("member"));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2);

        // A failure is the caller's error, and leaves nothing behind.
        let failed = ns
            .get_or_insert_with("broken", None, || async {
                Err::<Grant, _>(manifold_core::Error::forbidden("no grant"))
            })
            .await;
        assert_eq!(failed.expect_err("it failed").message(), "no grant");
        assert_eq!(ns.get::<Grant>("broken").await.expect("get"), None);

        // With its own TTL.
        let short = ns
            .get_or_insert_with("short", Some(SHORT_TTL), compute(grant("short")))
            .await;
        assert_eq!(short.expect("computed"), grant("short"));
        tokio::time::sleep(PAST_SHORT_TTL).await;
        assert_eq!(ns.get::<Grant>("short").await.expect("get"), None);
    }
}

/// On Redis a key is `<prefix>:<namespace>:<key>`, the namespace's `:` and `%` encoded,
/// its value the JSON text, stored with the TTL asked for.
#[tokio::test]
async fn redis_keys_are_prefix_namespace_key_with_json_and_a_ttl() {
    let t = TestCache::open(Backend::Redis).await;
    t.ns("acl.grants")
        .set("admin", &grant("admin"), None)
        .await
        .expect("set");
    t.ns("a:b")
        .set("c:d", &"x", Some(Duration::from_millis(1500)))
        .await
        .expect("set");

    let mut redis = raw_redis().await;
    let key = format!("{}:acl.grants:admin", t.prefix);
    let text: String = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .expect("GET");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&text).expect("JSON"),
        serde_json::to_value(grant("admin")).expect("JSON")
    );
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .expect("PTTL");
    assert!(
        ttl > 50_000 && ttl <= 60_000,
        "the default TTL of 60 s: {ttl} ms"
    );
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{}:a%3Ab:c:d", t.prefix))
        .query_async(&mut redis)
        .await
        .expect("PTTL");
    assert!(ttl > 0 && ttl <= 1500, "its own TTL: {ttl} ms");
    t.finish().await;
}

/// A cache of at most N entries does not keep many more than N.
#[tokio::test]
async fn the_in_process_cache_is_bounded() {
    let options = CacheOptions {
        max_entries: 100,
        ..CacheOptions::default()
    };
    let cache = Cache::open(&options).await.expect("open");
    assert_eq!(cache.describe(), "memory (at most 100 entries)");
    let ns = cache.namespace("bounded");
    for i in 0..5000 {
        ns.set(&format!("k{i}"), &i, None).await.expect("set");
    }
    let mut kept = 0;
    for i in 0..5000 {
        if ns
            .get::<i32>(&format!("k{i}"))
            .await
            .expect("get")
            .is_some()
        {
            kept += 1;
        }
    }
    assert!(
        kept <= 200,
        "{kept} of 5000 entries kept with a bound of 100"
    );
}

/// The action a plugin would define: its answer is costly, so it keeps it in the app's
/// cache, and counts how often it computed it.
struct CachedReport {
    cache: CacheNamespace,
    runs: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl Middleware for CachedReport {
    async fn handle(&self, ctx: &mut Context, _next: Next<'_>) -> manifold_core::Result<()> {
        let runs = self.runs.clone();
        let report: serde_json::Value = self
            .cache
            .get_or_insert_with("answer", None, || async move {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok::<_, manifold_core::Error>(json!({"total": 42}))
            })
            .await?;
        ctx.body = Some(report);
        Ok(())
    }
}

/// An app whose cache is at `cache_url`, with the resource `report` of [`CachedReport`]
/// in a namespace of its own.
async fn app_with_report(cache_url: String) -> (TestApp, CacheNamespace, Arc<AtomicUsize>) {
    let t = TestApp::with(|config| {
        config.cache_url = cache_url;
        config.cache_default_ttl = DEFAULT_TTL;
    })
    .await;
    let namespace = t
        .app
        .cache()
        .namespace(&format!("test.report.{}", uuid::Uuid::new_v4().simple()));
    let runs = Arc::new(AtomicUsize::new(0));
    let main = t.app.data_sources().get("main").expect("main");
    main.resource_manager()
        .define(ResourceDefinition::new("report").action(
            "get",
            Arc::new(CachedReport {
                cache: namespace.clone(),
                runs: runs.clone(),
            }),
        ));
    (t, namespace, runs)
}

/// A plugin's action reaches the in-process cache through `App::cache`: computed on the
/// first request, served from the cache after.
#[tokio::test]
async fn a_plugin_action_caches_in_process_through_the_app() {
    let (t, _, runs) = app_with_report("memory".to_owned()).await;
    assert!(t.app.cache().describe().starts_with("memory"));
    for _ in 0..3 {
        let r = t.get("/api/report:get").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data(), &json!({"total": 42}));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// The same on Redis, reached through a proxy the test controls: when Redis stops
/// answering, or goes away, the request gets a 503 within about the operation timeout;
/// once Redis is back the connection is made again by itself and the value stored before
/// is still there.
#[tokio::test]
async fn a_plugin_action_caches_in_redis_and_sees_a_503_while_redis_is_gone() {
    let proxy = FaultyProxy::start(redis_address().await).await;
    let url = with_address(&redis_url(), proxy.addr());
    let (t, namespace, runs) = app_with_report(url.clone()).await;
    assert_eq!(t.app.cache().describe(), redact_url(&url));
    for _ in 0..3 {
        let r = t.get("/api/report:get").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.data(), &json!({"total": 42}));
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let mut redis = raw_redis().await;
    let key = format!("manifold:{}:answer", namespace.name());
    let stored: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut redis)
        .await
        .expect("GET");
    assert_eq!(stored.as_deref(), Some(r#"{"total":42}"#));

    for (what, fault) in [
        ("not answering", FaultyProxy::blackhole as fn(&FaultyProxy)),
        ("gone", FaultyProxy::kill),
    ] {
        fault(&proxy);
        let started = std::time::Instant::now();
        let r = t.get("/api/report:get").await;
        assert_eq!(r.status, 503, "Redis {what}: {:?}", r.body);
        assert!(r.error().starts_with("the cache "), "{}", r.error());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "Redis {what}: the 503 took {:?}",
            started.elapsed()
        );
    }

    proxy.pass();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = t.get("/api/report:get").await;
        if r.status == 200 {
            assert_eq!(r.data(), &json!({"total": 42}));
            break;
        }
        assert_eq!(r.status, 503, "{:?}", r.body);
        assert!(
            std::time::Instant::now() < deadline,
            "the cache did not come back: {:?}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        1,
        "the stored answer outlived the outage"
    );
    namespace.clear().await.expect("clear");
}

/// `url` with its host and port replaced by `addr`.
fn with_address(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (userinfo, hostpart) = match rest.rsplit_once('@') {
        Some((userinfo, hostpart)) => (format!("{userinfo}@"), hostpart),
        None => (String::new(), rest),
    };
    let path = hostpart.find('/').map_or("", |i| &hostpart[i..]);
    format!("{scheme}://{userinfo}{addr}{path}")
}

/// The address of the test Redis.
async fn redis_address() -> SocketAddr {
    let url = redis_url();
    let client = redis::Client::open(url.as_str()).expect("MANIFOLD_TEST_REDIS_URL parses");
    let redis::ConnectionAddr::Tcp(host, port) = client.get_connection_info().addr() else {
        panic!("MANIFOLD_TEST_REDIS_URL is not a plain TCP address");
    };
    tokio::net::lookup_host((host.as_str(), *port))
        .await
        .expect("resolve the test Redis")
        .next()
        .expect("an address")
}

/// Every way a bad `--cache-url` can fail does so with a message naming the option (or
/// the URL, password hidden), as an error a caller can match, and no log line holds the
/// password.
#[tokio::test]
async fn a_bad_redis_url_fails_clearly_without_its_password() {
    const SECRET: &str = "SECRET-C4CHE";
    let captured = CapturedLog::default();
    let writer = captured.clone();
    let _logs = tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish()
        .set_default();

    // A listener that accepts and never answers: no PING comes back.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_addr = silent.local_addr().expect("address");
    let _silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let wrong_password = with_address(
        &format!("redis://nobody:{SECRET}@127.0.0.1"),
        redis_address().await,
    );

    let cases: Vec<(String, &str)> = vec![
        // Nothing listens on port 1.
        (
            format!("redis://:{SECRET}@127.0.0.1:1"),
            "--cache-url: cannot reach Redis at redis://:***@127.0.0.1:1: ",
        ),
        (
            wrong_password.clone(),
            "--cache-url: cannot reach Redis at redis://nobody:***@",
        ),
        (
            format!("redis://:{SECRET}@{silent_addr}"),
            "--cache-url: cannot reach Redis at redis://:***@127.0.0.1:",
        ),
        // TLS to a server that speaks plain Redis.
        (
            with_address("rediss://127.0.0.1", redis_address().await),
            "--cache-url: cannot reach Redis at rediss://",
        ),
        (
            format!("redis://:{SECRET}@/0"),
            "--cache-url: redis://:***@/0: ",
        ),
        (
            format!("redis://:{SECRET}@127.0.0.1/not-a-number"),
            "--cache-url: redis://:***@127.0.0.1/not-a-number: ",
        ),
        (
            format!("memcached://:{SECRET}@127.0.0.1"),
            "--cache-url: unsupported scheme \"memcached\"; use memory, redis:// or rediss://",
        ),
        (
            SECRET.to_owned(),
            "--cache-url: use memory, or a redis:// or rediss:// URL",
        ),
    ];
    for (url, expected) in &cases {
        let options = CacheOptions {
            url: url.clone(),
            ..CacheOptions::default()
        };
        let started = std::time::Instant::now();
        let error = Cache::open(&options)
            .await
            .expect_err("a bad URL does not open");
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "{expected}: took {:?}",
            started.elapsed()
        );
        let message = error.to_string();
        assert!(
            message.starts_with(expected),
            "{}: {message}",
            redact_url(url)
        );
        for shown in [
            message.clone(),
            format!("{error:?}"),
            format!("{options:?}"),
        ] {
            assert!(!shown.contains(SECRET), "{shown}");
        }
        let kind = manifold_core::Error::from(error).kind();
        assert!(
            matches!(kind, ErrorKind::BadRequest | ErrorKind::Unavailable),
            "{kind:?}"
        );
    }

    // The service does not start, and says why.
    let refused = MainDb::create()
        .await
        .start_with(|config| config.cache_url = wrong_password.clone())
        .await;
    let Err((_, error)) = refused else {
        panic!("the app starts with a wrong Redis password");
    };
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    assert!(
        error
            .message()
            .starts_with("--cache-url: cannot reach Redis"),
        "{}",
        error.message()
    );
    assert!(!error.message().contains(SECRET));

    let log = captured.text();
    assert!(
        !log.contains(SECRET),
        "a log line holds the password:\n{log}"
    );
}
