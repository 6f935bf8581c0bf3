//! PostgreSQL's `LISTEN`/`NOTIFY` for the change log: a publisher notifies the entry's id
//! after it committed, every replica listens and reads the log when told. Notifications
//! are a fast path only: the poll reads the log too, and a listener that reconnects reads
//! it at once, since notifications sent while it was away are lost.

use std::str::FromStr;
use std::sync::Weak;
use std::time::Duration;

use manifold_core::{Error, Result};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};

use super::ChangeFeed;

/// The channel the entries' ids are sent on.
pub const CHANNEL: &str = "manifold_changes";

/// The `application_name` of this process's listening connection, so an operator (or a
/// test) can find it in `pg_stat_activity`.
pub fn listener_application_name() -> String {
    format!("manifold-listen-{}", std::process::id())
}

/// The longest wait between two attempts to reconnect the listener.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Connection options for `url` under `application_name`.
fn options(url: &str, application_name: &str) -> Result<PgConnectOptions> {
    // The URL was already accepted by the main database's connector; a failure here names
    // no part of it, which may hold a password.
    PgConnectOptions::from_str(url)
        .map(|o| o.application_name(application_name))
        .map_err(|_| Error::bad_request("--main-db: not a PostgreSQL URL the listener can use"))
}

/// A pool of one connection that is never closed for age or idleness.
fn one_connection(options: PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options)
}

/// Sends the ids of new entries on [`CHANNEL`], over a connection of its own.
pub struct Notifier {
    pool: PgPool,
}

impl Notifier {
    /// A notifier for the main database at `url`; connects on first use.
    pub fn new(url: &str) -> Result<Self> {
        let name = format!("manifold-notify-{}", std::process::id());
        Ok(Self {
            pool: one_connection(options(url, &name)?),
        })
    }

    /// Tells every listener that entry `id` was written.
    pub async fn notify(&self, id: i64) -> std::result::Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}

/// Starts the listener of the main database at `url`: it reads the log whenever a
/// notification arrives and after every (re)connection, until `feed` is dropped.
pub fn spawn_listener(feed: Weak<ChangeFeed>, url: &str) -> Result<()> {
    let pool = one_connection(options(url, &listener_application_name())?);
    tokio::spawn(listen(feed, pool));
    Ok(())
}

async fn listen(feed: Weak<ChangeFeed>, pool: PgPool) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let mut listener = match subscribe(&pool).await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot listen for changes");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                if feed.strong_count() == 0 {
                    return;
                }
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        // Listening from here on: what was published before is in the log.
        if !catch_up(&feed).await {
            return;
        }
        loop {
            match listener.try_recv().await {
                Ok(Some(_)) => {
                    // One read covers every notification already queued.
                    while listener.next_buffered().is_some() {}
                }
                // The connection was lost and made again (sqlx listens anew): whatever
                // was notified in between is lost, so the log is read.
                Ok(None) => tracing::info!("change listener reconnected"),
                Err(e) => {
                    tracing::warn!(error = %e, "change listener failed; reconnecting");
                    break;
                }
            }
            if !catch_up(&feed).await {
                return;
            }
        }
    }
}

async fn subscribe(pool: &PgPool) -> std::result::Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Reads the log; `false` once the feed is gone.
async fn catch_up(feed: &Weak<ChangeFeed>) -> bool {
    let Some(feed) = feed.upgrade() else {
        return false;
    };
    feed.catch_up_logged().await;
    true
}
