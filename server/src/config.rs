//! Command-line and environment configuration.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use crate::migrations::MigrationMode;
pub use crate::telemetry::LogFormat;

/// Manifold: one NocoBase-compatible `:action` API in front of many databases.
///
/// Every option can also be set by the environment variable shown beside it.
#[derive(Debug, Parser)]
#[command(
    name = "manifold",
    version,
    about = "Manifold: one NocoBase-compatible `:action` API in front of many databases.",
    long_about = None,
    after_help = TELEMETRY_HELP
)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Service options for `manifold` without a subcommand; listed by `manifold --help`.
    #[command(flatten)]
    pub serve: ServeConfig,
}

/// The OpenTelemetry variables, listed under `--help` (they are the standard ones, read
/// by the exporter, so they are not options).
const TELEMETRY_HELP: &str = "\
Traces (OpenTelemetry, off unless one of these asks for them):
  OTEL_EXPORTER_OTLP_ENDPOINT         collector URL; setting it turns export on
                                      (also OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)
  OTEL_EXPORTER_OTLP_PROTOCOL         http/protobuf (default, port 4318) or grpc (4317)
  OTEL_SERVICE_NAME                   service.name (default: manifold)
  OTEL_TRACES_EXPORTER                otlp, or none to turn export off
  OTEL_SDK_DISABLED                   true turns export off
  OTEL_TRACES_SAMPLER[_ARG], OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TIMEOUT,
  OTEL_BSP_*                          as the OpenTelemetry specification says
Metrics: GET /metrics (Prometheus text). Health: GET /health/live, GET /health/ready.
See docs/observability.md.";

/// A duration (`0s`, `5s`, `1m`, `500ms`).
fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (use a duration such as 10s, 1m, 500ms)"))
}

/// A duration above zero (`10s`, `1m`, `500ms`): a zero timeout would close every
/// connection at once.
fn positive_duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d.is_zero() => Err("must be above zero".to_owned()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e} (use a duration such as 10s, 1m, 500ms)")),
    }
}

/// A cache TTL: above zero (a value that expires at once is not cached) and at most a year
/// ([`crate::cache::MAX_TTL`]).
fn cache_ttl(s: &str) -> Result<Duration, String> {
    let ttl = positive_duration(s)?;
    if ttl > crate::cache::MAX_TTL {
        return Err("must be at most 365 days".to_owned());
    }
    Ok(ttl)
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once at start; boxing would only complicate the callers"
)]
pub enum Command {
    /// Start the HTTP service (the default).
    Serve(ServeConfig),
    /// Bring the main database's schema to this version and exit, without serving (for a
    /// deployment's init step).
    Migrate(MigrateConfig),
}

/// Everything `manifold migrate` can be told; each option reads the same environment
/// variable as `manifold serve`'s.
#[derive(Debug, Clone, Args)]
pub struct MigrateConfig {
    /// The main database to migrate (as `manifold serve --main-db`).
    #[arg(
        long,
        env = "MANIFOLD_MAIN_DB",
        default_value = "sqlite://./data/main.sqlite"
    )]
    pub main_db: String,

    /// How long to wait for another process's migration lock on the main database.
    #[arg(long, env = "MANIFOLD_MIGRATION_LOCK_TIMEOUT", default_value = "2m", value_parser = positive_duration)]
    pub migration_lock_timeout: Duration,

    /// Log filter (`info`, `manifold=debug,sqlx=warn`, …).
    #[arg(long, env = "MANIFOLD_LOG", default_value = "info")]
    pub log: String,

    /// Log line format on standard output: `text` or `json`.
    #[arg(long, env = "MANIFOLD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Everything `manifold serve` can be told; every option also reads an environment variable.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "MANIFOLD_LISTEN", default_value = "127.0.0.1:13000")]
    pub listen: SocketAddr,

    /// The main database: where Manifold keeps its own records and the default data source.
    /// A SQLite file is created (with its directory) on first start.
    #[arg(
        long,
        env = "MANIFOLD_MAIN_DB",
        default_value = "sqlite://./data/main.sqlite"
    )]
    pub main_db: String,

    /// The largest `pageSize` a `list` request may ask for; larger is a 400.
    #[arg(long, env = "MANIFOLD_MAX_PAGE_SIZE", default_value_t = 1000)]
    pub max_page_size: u64,

    /// The most relations one `appends` path may go through (`author.books` is 2); deeper
    /// is a 400, since each level multiplies what one request can embed.
    #[arg(long, env = "MANIFOLD_MAX_APPEND_DEPTH", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=32))]
    pub max_append_depth: u64,

    /// The most related records one answer may embed through `appends` (each copy counts:
    /// one author under 500 posts is 500); more is a 400 before the answer is built.
    #[arg(long, env = "MANIFOLD_MAX_EMBEDDED_RECORDS", default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_embedded_records: u64,

    /// The most keys one filter condition through a relation to another data source may
    /// collect there (`{"customer.country": "FR"}` reads the matching customers' keys
    /// first); more is a 400 that says to narrow the condition.
    #[arg(long, env = "MANIFOLD_MAX_RELATION_FILTER_KEYS", default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub max_relation_filter_keys: u64,

    /// The largest request body accepted, in bytes; larger is a 413.
    #[arg(long, env = "MANIFOLD_BODY_LIMIT", default_value_t = 10 * 1024 * 1024)]
    pub body_limit: usize,

    /// How long a request may wait on one data source before a 504 (seconds).
    #[arg(long, env = "MANIFOLD_REQUEST_TIMEOUT", default_value_t = 35)]
    pub request_timeout: u64,

    /// How long a client has to send a request's headers, from its first byte (or from the
    /// end of the previous response on a kept-alive connection).
    #[arg(long, env = "MANIFOLD_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub header_read_timeout: Duration,

    /// How long a client has to send a request's body, from the end of its headers; then a
    /// 408 and the connection closes.
    #[arg(long, env = "MANIFOLD_BODY_READ_TIMEOUT", default_value = "60s", value_parser = positive_duration)]
    pub body_read_timeout: Duration,

    /// How long a connection with no request running may stay silent before it is closed
    /// (a new connection that sends nothing included).
    #[arg(long, env = "MANIFOLD_KEEP_ALIVE_TIMEOUT", default_value = "5s", value_parser = positive_duration)]
    pub keep_alive_timeout: Duration,

    /// Origins whose pages may call the API from a browser (comma separated, such as
    /// `https://app.example.com`, or `*`). Empty: no CORS headers at all.
    #[arg(long, env = "MANIFOLD_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// `Host` header values the service answers to (comma separated: `api.example.com`,
    /// `api.example.com:8443`, `*.example.com`). Empty: any. Guards against DNS rebinding.
    #[arg(long, env = "MANIFOLD_ACCEPTED_HOST_HEADERS", value_delimiter = ',')]
    pub accepted_host_headers: Vec<String>,

    /// How long the service keeps serving after SIGTERM or Ctrl-C while `/health/ready`
    /// answers 503, so a load balancer stops sending before connections are refused (on
    /// Kubernetes, a few seconds: endpoints are updated after the signal).
    #[arg(long, env = "MANIFOLD_SHUTDOWN_DELAY", default_value = "0s", value_parser = duration)]
    pub shutdown_delay: Duration,

    /// How long requests in flight may run on once the service stops accepting
    /// connections; then they are cut off and the pools close.
    #[arg(long, env = "MANIFOLD_SHUTDOWN_GRACE", default_value = "10s", value_parser = positive_duration)]
    pub shutdown_grace: Duration,

    /// A separate address for `GET /metrics`; the main listener then does not serve it.
    #[arg(long, env = "MANIFOLD_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Hosts that data sources may be registered on (comma separated: names, `*.suffix`,
    /// IP addresses, CIDR ranges). Empty: any host not denied.
    #[arg(long, env = "MANIFOLD_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Hosts that data sources may never be registered on, checked after name resolution.
    /// The default denies link-local addresses, where cloud metadata services live.
    #[arg(
        long,
        env = "MANIFOLD_DENIED_HOSTS",
        value_delimiter = ',',
        default_value = "169.254.0.0/16,fe80::/10"
    )]
    pub denied_hosts: Vec<String>,

    /// Lets data sources connect through Unix-domain sockets (`host=/var/run/postgresql`,
    /// MySQL's `socket=`, a MongoDB `….sock` host). Off: a socket is this machine, reached
    /// past every host rule.
    #[arg(long, env = "MANIFOLD_ALLOW_UNIX_SOCKETS", default_value_t = false)]
    pub allow_unix_sockets: bool,

    /// Most connections in the main database's pool.
    #[arg(long, env = "MANIFOLD_MAIN_DB_MAX_CONNECTIONS", default_value_t = 8)]
    pub main_db_max_connections: u32,

    /// What a start does with the main database's schema: `apply` runs the migrations it
    /// lacks (one process at a time, under a lock); `check` runs none and refuses to start
    /// unless the schema is at this version (when `manifold migrate` runs first).
    #[arg(long, env = "MANIFOLD_MIGRATIONS", value_enum, default_value_t = MigrationMode::Apply)]
    pub migrations: MigrationMode,

    /// How long a start waits for another process's migration lock on the main database
    /// (PostgreSQL, MySQL/MariaDB; on SQLite, for its write lock) before it fails.
    #[arg(long, env = "MANIFOLD_MIGRATION_LOCK_TIMEOUT", default_value = "2m", value_parser = positive_duration)]
    pub migration_lock_timeout: Duration,

    /// How often a replica reads the main database's change log for changes made on other
    /// replicas (PostgreSQL and MySQL/MariaDB main databases; a SQLite one serves one
    /// process). On PostgreSQL, notifications usually arrive first; this is the safety net.
    #[arg(long, env = "MANIFOLD_CHANGE_POLL_INTERVAL", default_value = "1s", value_parser = positive_duration)]
    pub change_poll_interval: Duration,

    /// On a PostgreSQL main database, `LISTEN` for other replicas' changes (`false`: rely
    /// on the poll alone, e.g. behind a pooler in transaction mode, which drops `LISTEN`).
    #[arg(long, env = "MANIFOLD_CHANGE_NOTIFICATIONS", default_value_t = true, action = clap::ArgAction::Set)]
    pub change_notifications: bool,

    /// Where cached values live: `memory` (this process), or a Redis URL (`redis://…`,
    /// `rediss://…` for TLS) shared by every replica. Start-up fails if Redis does not answer.
    #[arg(
        long,
        env = "MANIFOLD_CACHE_URL",
        default_value = "memory",
        hide_env_values = true
    )]
    pub cache_url: String,

    /// The most entries the in-process cache holds; past that, the least likely to be read
    /// again go first.
    #[arg(long, env = "MANIFOLD_CACHE_MAX_ENTRIES", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub cache_max_entries: u64,

    /// How long a cached value lives when whoever stores it gives no TTL.
    #[arg(long, env = "MANIFOLD_CACHE_DEFAULT_TTL", default_value = "5m", value_parser = cache_ttl)]
    pub cache_default_ttl: Duration,

    /// Log filter (`info`, `manifold=debug,sqlx=warn`, …).
    #[arg(long, env = "MANIFOLD_LOG", default_value = "info")]
    pub log: String,

    /// Log line format on standard output: `text`, or `json` (one object per line, with
    /// `trace_id` and `span_id` inside a request).
    #[arg(long, env = "MANIFOLD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Sign-in and tokens: the JWT secret, lifetimes, the root account.
    #[command(flatten)]
    pub auth: crate::auth::AuthConfig,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 13000)),
            main_db: "sqlite://./data/main.sqlite".into(),
            max_page_size: 1000,
            max_append_depth: 4,
            max_embedded_records: 50_000,
            max_relation_filter_keys: 5_000,
            body_limit: 10 * 1024 * 1024,
            main_db_max_connections: 8,
            migrations: MigrationMode::Apply,
            migration_lock_timeout: Duration::from_secs(120),

            change_poll_interval: Duration::from_secs(1),
            change_notifications: true,
            cache_url: "memory".into(),
            cache_max_entries: 100_000,
            cache_default_ttl: Duration::from_secs(300),
            request_timeout: 35,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            keep_alive_timeout: Duration::from_secs(5),
            shutdown_delay: Duration::ZERO,
            shutdown_grace: Duration::from_secs(10),
            cors_origins: Vec::new(),
            accepted_host_headers: Vec::new(),
            metrics_listen: None,
            allowed_hosts: Vec::new(),
            denied_hosts: vec!["169.254.0.0/16".into(), "fe80::/10".into()],
            allow_unix_sockets: false,
            log: "info".into(),
            log_format: LogFormat::Text,
            auth: crate::auth::AuthConfig::default(),
        }
    }
}

impl ServeConfig {
    /// Limits for registered data sources (NocoBase's `pageSize` 50 outside main).
    pub fn source_settings(&self) -> manifold_core::data_source::DataSourceSettings {
        manifold_core::data_source::DataSourceSettings {
            default_page_size: 50,
            max_page_size: self.max_page_size,
            request_timeout: std::time::Duration::from_secs(self.request_timeout.max(1)),
            max_append_depth: usize::try_from(self.max_append_depth).unwrap_or(4),
            max_embedded_records: usize::try_from(self.max_embedded_records).unwrap_or(usize::MAX),
            max_relation_filter_keys: usize::try_from(self.max_relation_filter_keys)
                .unwrap_or(5_000),
            internal_prefix: manifold_core::data_source::INTERNAL_PREFIX,
        }
    }

    /// How this replica hears of the others' changes.
    pub fn change_feed_options(&self) -> crate::changes::FeedOptions {
        crate::changes::FeedOptions {
            main_url: self.main_db.clone(),
            poll_interval: self.change_poll_interval,
            notifications: self.change_notifications,
        }
    }
}
