//! A key-value cache with namespaces and TTLs, in this process (the default) or in Redis
//! (`--cache-url redis://…`), for Manifold itself and for plugins.
//!
//! Values are stored as JSON bytes on both backends, so a value reads back the same
//! whichever is configured. A namespace's keys never meet another's: on Redis a key is
//! `<prefix>:<namespace>:<key>` (prefix `manifold` by default), with `:` and `%` in the
//! namespace percent-encoded so the namespace part ends at the first `:`
//! (docs/decisions/0016-cache.md).
//!
//! Every Redis operation gives up after [`CacheOptions::operation_timeout`]
//! ([`DEFAULT_OPERATION_TIMEOUT`], 1 s) and fails with a [`CacheError`], which a request
//! sees as a 503; the in-process backend waits on nothing.

mod memory;
mod redis;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use manifold_core::key_lock::KeyLocks;
use serde::Serialize;
use serde::de::DeserializeOwned;

use self::memory::MemoryStore;
use self::redis::RedisStore;

/// How long one Redis operation (one round trip of [`CacheNamespace::clear`]) may take
/// before it fails: long enough for a busy server on a LAN, short enough that a request
/// does not hang on a lost one.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(1);

/// How long start-up waits for Redis to connect and answer `PING`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest TTL an entry gets; longer ones are cut to it. A cache entry that should
/// outlive a year belongs in a database.
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// The Redis key prefix unless [`CacheOptions::key_prefix`] says otherwise.
pub const DEFAULT_KEY_PREFIX: &str = "manifold";

/// What a cache is opened with; [`CacheOptions::from_config`] reads the `--cache-*`
/// options.
#[derive(Clone)]
pub struct CacheOptions {
    /// `memory`, or a `redis://` / `rediss://` URL (it may hold a password: it is only
    /// ever shown redacted).
    pub url: String,
    /// The most entries the in-process cache holds (ignored on Redis).
    pub max_entries: u64,
    /// The TTL of a value stored without one.
    pub default_ttl: Duration,
    /// The first part of every Redis key, so several services can share one database.
    pub key_prefix: String,
    /// How long one Redis operation may take before it fails.
    pub operation_timeout: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            url: "memory".to_owned(),
            max_entries: 100_000,
            default_ttl: Duration::from_secs(300),
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
        }
    }
}

impl fmt::Debug for CacheOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheOptions")
            .field("url", &redact_url(&self.url))
            .field("max_entries", &self.max_entries)
            .field("default_ttl", &self.default_ttl)
            .field("key_prefix", &self.key_prefix)
            .field("operation_timeout", &self.operation_timeout)
            .finish()
    }
}

impl CacheOptions {
    /// The options `manifold serve` was given (`--cache-url`, `--cache-max-entries`,
    /// `--cache-default-ttl`).
    pub fn from_config(config: &crate::ServeConfig) -> Self {
        Self {
            url: config.cache_url.clone(),
            max_entries: config.cache_max_entries,
            default_ttl: config.cache_default_ttl,
            ..Self::default()
        }
    }
}

/// Why a cache operation failed. Messages never hold a Redis password, nor a key (keys
/// may be derived from tokens).
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// An option is unusable; the message names it.
    #[error("{option}: {message}")]
    Config {
        /// The option, as on the command line (`--cache-url`).
        option: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Redis could not be reached or did not answer `PING` at start-up.
    #[error("--cache-url: cannot reach Redis at {url}: {message}")]
    Connect {
        /// The URL with its password replaced by `***`.
        url: String,
        /// Why.
        message: String,
    },
    /// Redis answered an operation with an error, or the connection failed.
    #[error("the cache failed to {operation}: {message}")]
    Backend {
        /// What was asked (`get`, `set`, `delete`, `clear`).
        operation: &'static str,
        /// Why.
        message: String,
    },
    /// Redis did not answer within the operation timeout.
    #[error("the cache did not {operation} within {} ms", after.as_millis())]
    Timeout {
        /// What was asked.
        operation: &'static str,
        /// The timeout that ran out.
        after: Duration,
    },
    /// A value could not be turned into JSON.
    #[error("a value for the cache namespace {namespace:?} cannot be encoded: {source}")]
    Encode {
        /// The namespace it was meant for.
        namespace: String,
        /// The serializer's error.
        source: serde_json::Error,
    },
    /// A stored value is not JSON of the type asked for (a namespace whose value type
    /// changed should change its name, e.g. with a version suffix).
    #[error("a value in the cache namespace {namespace:?} is not of the type asked for: {source}")]
    Decode {
        /// The namespace it was read from.
        namespace: String,
        /// The deserializer's error.
        source: serde_json::Error,
    },
}

impl From<CacheError> for manifold_core::Error {
    fn from(e: CacheError) -> Self {
        let message = e.to_string();
        match e {
            CacheError::Config { .. } => Self::bad_request(message),
            CacheError::Connect { .. }
            | CacheError::Backend { .. }
            | CacheError::Timeout { .. } => Self::unavailable(message),
            CacheError::Encode { .. } | CacheError::Decode { .. } => Self::internal(message),
        }
    }
}

/// The backend behind a [`Cache`]; an enum rather than a trait object, as there are two
/// and both are built here.
enum Store {
    Memory(MemoryStore),
    Redis(RedisStore),
}

struct Inner {
    store: Store,
    default_ttl: Duration,
    /// Queues [`CacheNamespace::get_or_insert_with`] callers of one key, so a miss is
    /// computed once per process however many ask at the same time.
    computing: KeyLocks,
}

/// A handle on the cache: cheap to clone, shared by everything in the process.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("backend", &self.describe())
            .field("default_ttl", &self.inner.default_ttl)
            .finish()
    }
}

impl Cache {
    /// Opens the cache `options` describe. A Redis cache is connected and sent `PING`
    /// first, so an unreachable server fails here rather than on the first request.
    pub async fn open(options: &CacheOptions) -> Result<Self, CacheError> {
        if options.default_ttl.is_zero() || options.default_ttl > MAX_TTL {
            return Err(CacheError::Config {
                option: "--cache-default-ttl",
                message: "must be above zero and at most 365 days".to_owned(),
            });
        }
        if options.operation_timeout.is_zero() {
            return Err(CacheError::Config {
                option: "operation timeout",
                message: "must be above zero".to_owned(),
            });
        }
        let url = options.url.trim();
        let store = if url == "memory" {
            if options.max_entries == 0 {
                return Err(CacheError::Config {
                    option: "--cache-max-entries",
                    message: "must be at least 1".to_owned(),
                });
            }
            Store::Memory(MemoryStore::new(options.max_entries))
        } else if url.starts_with("redis://") || url.starts_with("rediss://") {
            Store::Redis(
                RedisStore::connect(url, &options.key_prefix, options.operation_timeout).await?,
            )
        } else {
            let message = match url.split_once("://") {
                Some((scheme, _)) => {
                    format!("unsupported scheme {scheme:?}; use memory, redis:// or rediss://")
                }
                // Not echoed: a mistyped value may be a secret in the wrong place.
                None => "use memory, or a redis:// or rediss:// URL".to_owned(),
            };
            return Err(CacheError::Config {
                option: "--cache-url",
                message,
            });
        };
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                default_ttl: options.default_ttl,
                computing: KeyLocks::default(),
            }),
        })
    }

    /// The keys stored under `name`, apart from every other namespace's. Any name is
    /// allowed; by convention a component's own (`auth.tokens`), with a version suffix
    /// when the stored type changes (`auth.tokens.v2`).
    pub fn namespace(&self, name: &str) -> CacheNamespace {
        CacheNamespace {
            cache: self.clone(),
            name: Arc::from(name),
        }
    }

    /// The TTL of a value stored without one (`--cache-default-ttl`).
    pub fn default_ttl(&self) -> Duration {
        self.inner.default_ttl
    }

    /// The backend in words, for logs: `memory (at most N entries)` or the Redis URL with
    /// its password replaced by `***`.
    pub fn describe(&self) -> String {
        match &self.inner.store {
            Store::Memory(store) => format!("memory (at most {} entries)", store.max_entries()),
            Store::Redis(store) => store.describe().to_owned(),
        }
    }

    /// A TTL as stored: the default when none is given, at most [`MAX_TTL`], and rounded
    /// up to whole milliseconds (Redis's resolution) so both backends agree.
    fn ttl(&self, ttl: Option<Duration>) -> Duration {
        let ttl = ttl.unwrap_or(self.inner.default_ttl).min(MAX_TTL);
        let millis = ttl.as_nanos().div_ceil(1_000_000);
        Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX))
    }
}

/// One namespace of a [`Cache`]; cheap to clone. Values are anything serde turns into
/// JSON and back.
#[derive(Clone)]
pub struct CacheNamespace {
    cache: Cache,
    name: Arc<str>,
}

impl fmt::Debug for CacheNamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheNamespace")
            .field("name", &self.name)
            .finish()
    }
}

impl CacheNamespace {
    /// The namespace's name, as given to [`Cache::namespace`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value stored under `key`, if there is one that has not expired.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, CacheError> {
        let decoded = match &self.cache.inner.store {
            Store::Memory(store) => store
                .get(&self.name, key)
                .map(|bytes| serde_json::from_slice(&bytes)),
            Store::Redis(store) => store
                .get(&self.name, key)
                .await?
                .map(|bytes| serde_json::from_slice(&bytes)),
        };
        decoded.transpose().map_err(|source| CacheError::Decode {
            namespace: self.name.to_string(),
            source,
        })
    }

    /// Stores `value` under `key` for `ttl` (`None`: the cache's default TTL), replacing
    /// any value there. A zero TTL removes the key instead: the value would expire at once.
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        let bytes = serde_json::to_vec(value).map_err(|source| CacheError::Encode {
            namespace: self.name.to_string(),
            source,
        })?;
        let ttl = self.cache.ttl(ttl);
        if ttl.is_zero() {
            return self.delete(key).await;
        }
        match &self.cache.inner.store {
            Store::Memory(store) => {
                store.set(&self.name, key, bytes, ttl);
                Ok(())
            }
            Store::Redis(store) => store.set(&self.name, key, bytes, ttl).await,
        }
    }

    /// Adds one to the counter under `key` (0 when there is none) and returns the new
    /// count; the counter then lives `ttl` (`None`: the default) from now, so it expires
    /// `ttl` after its last increment. Increments are atomic on both backends: concurrent
    /// ones, from any replica sharing a Redis, all count. [`CacheNamespace::get`] reads
    /// the count as a `u64`.
    pub async fn increment(&self, key: &str, ttl: Option<Duration>) -> Result<u64, CacheError> {
        let ttl = self.cache.ttl(ttl).max(Duration::from_millis(1));
        match &self.cache.inner.store {
            Store::Memory(store) => Ok(store.increment(&self.name, key, ttl)),
            Store::Redis(store) => store.increment(&self.name, key, ttl).await,
        }
    }

    /// How long `key` has left before it expires; `None` when it is not there.
    pub async fn time_to_live(&self, key: &str) -> Result<Option<Duration>, CacheError> {
        match &self.cache.inner.store {
            Store::Memory(store) => Ok(store.time_to_live(&self.name, key)),
            Store::Redis(store) => store.time_to_live(&self.name, key).await,
        }
    }

    /// Removes `key`; a key that is not there is no error.
    pub async fn delete(&self, key: &str) -> Result<(), CacheError> {
        match &self.cache.inner.store {
            Store::Memory(store) => {
                store.delete(&self.name, key);
                Ok(())
            }
            Store::Redis(store) => store.delete(&self.name, key).await,
        }
    }

    /// Removes every key of this namespace, and no other's. On Redis this walks the
    /// namespace with `SCAN` (each round trip under the operation timeout), so a value
    /// stored while it runs may survive it.
    pub async fn clear(&self) -> Result<(), CacheError> {
        match &self.cache.inner.store {
            Store::Memory(store) => store.clear(&self.name),
            Store::Redis(store) => store.clear(&self.name).await,
        }
    }

    /// The value under `key`; on a miss, `compute`s it, stores it for `ttl` (`None`: the
    /// default) and returns it. Callers of one key in this process wait for the first
    /// one's `compute` rather than run their own; `compute` must not ask for the same key.
    /// A failed `compute` stores nothing.
    pub async fn get_or_insert_with<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        compute: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        E: From<CacheError>,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if let Some(value) = self.get(key).await? {
            return Ok(value);
        }
        let _computing = self
            .cache
            .inner
            .computing
            .lock(namespaced_key(&self.name, key))
            .await;
        // Whoever held the lock before may have stored it meanwhile.
        if let Some(value) = self.get(key).await? {
            return Ok(value);
        }
        let value = compute().await?;
        self.set(key, &value, ttl).await?;
        Ok(value)
    }
}

/// `namespace` made safe to end at the first `:`: `%` and `:` are percent-encoded, so
/// namespace `a:b` (key `c`) and namespace `a` (key `b:c`) stay apart.
fn encode_namespace(namespace: &str) -> String {
    namespace.replace('%', "%25").replace(':', "%3A")
}

/// `<namespace>:<key>`, with the namespace encoded ([`encode_namespace`]).
fn namespaced_key(namespace: &str, key: &str) -> String {
    format!("{}:{key}", encode_namespace(namespace))
}

/// A `--cache-url` value fit to show: a URL with the password of its user information
/// replaced by `***` (`redis://user:***@host:6379/0`), `memory` as it is, and anything
/// else as `***` (a mistyped value may be a secret in the wrong place). Whatever precedes
/// the last `@` after the scheme is taken as user information, so a password holding `/`,
/// `?` or `#` is hidden too.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return if url.trim() == "memory" {
            url.to_owned()
        } else {
            "***".to_owned()
        };
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = match userinfo.split_once(':') {
        Some((user, _)) if !user.contains(['/', '?', '#']) => format!("{user}:***"),
        Some(_) => "***".to_owned(),
        None if userinfo.contains(['/', '?', '#']) => "***".to_owned(),
        None => userinfo.to_owned(),
    };
    format!("{scheme}://{user}@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redacted_url_keeps_everything_but_the_password() {
        assert_eq!(
            redact_url("redis://user:s3cret@cache.internal:6380/2"),
            "redis://user:***@cache.internal:6380/2"
        );
        assert_eq!(
            redact_url("rediss://:s3cret@127.0.0.1"),
            "rediss://:***@127.0.0.1"
        );
        assert_eq!(
            redact_url("redis://user@127.0.0.1"),
            "redis://user@127.0.0.1"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        // Unencoded delimiters in a password do not end the user information early.
        for url in [
            "redis://:pa/ss@h",
            "redis://u:p@ss@h",
            "redis://u:p?#/x@h/0",
        ] {
            let redacted = redact_url(url);
            assert!(
                !redacted.contains("pa") && !redacted.contains("p@") && !redacted.contains("p?"),
                "{url} → {redacted}"
            );
            assert!(
                redacted.ends_with("@h") || redacted.ends_with("@h/0"),
                "{redacted}"
            );
        }
    }

    #[test]
    fn namespaces_end_at_their_first_colon() {
        assert_ne!(namespaced_key("a:b", "c"), namespaced_key("a", "b:c"));
        assert_ne!(namespaced_key("a%3Ab", "c"), namespaced_key("a:b", "c"));
        assert_eq!(namespaced_key("auth.tokens", "x:y"), "auth.tokens:x:y");
    }
}
