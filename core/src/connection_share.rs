//! A connection limit shared by the replicas of a service: a source whose options declare
//! `maxConnectionsTotal` opens at most that many connections across every live replica.
//!
//! Each replica's connector takes connections only through its [`ConnectionShare`], a
//! gate whose size the service's [`ConnectionBudget`] changes as replicas come and go. The
//! gate counts connections in use; when it shrinks, the connector's idle connections
//! above the new size are closed before the smaller size is reported as done, so a
//! replica never holds more open connections than its share once a shrink returns.

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::Value as Json;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::Result;

/// The option that declares a source's connection limit as a total for all replicas.
pub const TOTAL_OPTION: &str = "maxConnectionsTotal";

/// The total a source's `options` declare, if any: an integer from 1 to 1,000, as for
/// `maxConnections` (digits in a string too, as forms send them); a bad value is a 400
/// naming it.
pub fn declared_total(options: &Json) -> Result<Option<u32>> {
    Ok(crate::options::int_option(options, TOTAL_OPTION, 1, 1_000)?
        .and_then(|n| u32::try_from(n).ok()))
}

/// Hands out [`ConnectionShare`]s and keeps their sizes within each source's total.
#[async_trait::async_trait]
pub trait ConnectionBudget: Send + Sync {
    /// A new share of `total` connections for the source called `source`, already sized
    /// as the budget allows now (possibly 0, until other replicas give some back).
    async fn share(&self, source: &str, total: u32) -> Result<Arc<ConnectionShare>>;
}

/// The budget of a process that shares its databases with nobody: every share is the
/// whole total.
pub struct SoleProcess;

#[async_trait::async_trait]
impl ConnectionBudget for SoleProcess {
    async fn share(&self, _source: &str, total: u32) -> Result<Arc<ConnectionShare>> {
        let share = ConnectionShare::new(total);
        share.resize(total).await;
        Ok(share)
    }
}

/// Closes a pool's idle connections until at most the given number stay open; answers
/// whether the pool is still open (a closed one is not asked again).
pub type CloseIdle = Box<dyn Fn(u32) -> BoxFuture<'static, bool> + Send + Sync>;

/// One replica's part of a source's connection total: the most connections its connector
/// may use at once, changed while it serves. While a source reloads, its old and new
/// connectors use the same share, so together they stay within it.
pub struct ConnectionShare {
    total: AtomicU32,
    permits: Arc<Semaphore>,
    size: AtomicU32,
    /// One resize at a time: a shrink waits for connections in use to come back.
    resizing: tokio::sync::Mutex<()>,
    pools: Mutex<Vec<CloseIdle>>,
    /// Connectors using the share; it is given up when the last one closes.
    users: AtomicUsize,
    given_up: OnceLock<()>,
}

impl std::fmt::Debug for ConnectionShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionShare")
            .field("total", &self.total())
            .field("size", &self.size())
            .finish()
    }
}

/// A connection's place in a share, given back when dropped.
#[derive(Debug)]
pub struct SharePermit {
    _held: OwnedSemaphorePermit,
}

impl ConnectionShare {
    /// A share of a source's `total`, of size 0 until resized.
    pub fn new(total: u32) -> Arc<Self> {
        Arc::new(Self {
            total: AtomicU32::new(total),
            permits: Arc::new(Semaphore::new(0)),
            size: AtomicU32::new(0),
            resizing: tokio::sync::Mutex::new(()),
            pools: Mutex::new(Vec::new()),
            users: AtomicUsize::new(0),
            given_up: OnceLock::new(),
        })
    }

    /// The source's total across replicas.
    pub fn total(&self) -> u32 {
        self.total.load(Ordering::Acquire)
    }

    /// Changes the total (the source's options changed); the budget resizes the share.
    pub fn set_total(&self, total: u32) {
        self.total.store(total, Ordering::Release);
    }

    /// The connections this replica may use now.
    pub fn size(&self) -> u32 {
        self.size.load(Ordering::Acquire)
    }

    /// A connector starts using the share, with a pool whose idle connections
    /// `close_idle` closes, so a shrink can bring the open ones down to the new size.
    pub fn attach(&self, close_idle: CloseIdle) {
        self.users.fetch_add(1, Ordering::AcqRel);
        self.pools
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(close_idle);
    }

    /// A connector using the share closed. After the last, the share is given up and the
    /// budget returns its connections to the other replicas.
    pub fn detach(&self) {
        if self.users.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _ = self.given_up.set(());
        }
    }

    /// Whether every connector that used the share has closed.
    pub fn is_given_up(&self) -> bool {
        self.given_up.get().is_some()
    }

    /// A place for one connection, waiting at most `wait`; `None` when none came free in
    /// time.
    pub async fn acquire(&self, wait: Duration) -> Option<SharePermit> {
        match tokio::time::timeout(wait, self.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Some(SharePermit { _held: permit }),
            _ => None,
        }
    }

    /// Makes the share `size` connections. Growing takes effect at once; shrinking waits
    /// until no more than `size` are in use and the idle ones above it are closed.
    pub async fn resize(&self, size: u32) {
        let _one_at_a_time = self.resizing.lock().await;
        let now = self.size();
        if size > now {
            self.permits.add_permits((size - now) as usize);
            self.size.store(size, Ordering::Release);
        } else if size < now {
            // Queued behind the connections in use (the semaphore is fair): new checkouts
            // wait meanwhile rather than take a place about to go.
            if let Ok(taken) = self.permits.acquire_many(now - size).await {
                taken.forget();
            }
            self.size.store(size, Ordering::Release);
            self.close_idle(size).await;
        }
    }

    /// Brings every attached pool down to `size` open connections. Each pool may hold up
    /// to `size` on its own: two pools exist together only while a source reloads, and
    /// the old one closes once the new one serves.
    async fn close_idle(&self, size: u32) {
        let pools = std::mem::take(&mut *self.pools.lock().unwrap_or_else(|e| e.into_inner()));
        let mut open = Vec::with_capacity(pools.len());
        for close_idle in pools {
            if close_idle(size).await {
                open.push(close_idle);
            }
        }
        // Pools attached meanwhile were added to the emptied list: keep both.
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        open.append(&mut pools);
        *pools = open;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_total_is_read_and_checked() {
        assert_eq!(declared_total(&json!({})).expect("no total"), None);
        assert_eq!(
            declared_total(&json!({"maxConnectionsTotal": 8})).expect("a total"),
            Some(8)
        );
        assert_eq!(
            declared_total(&json!({"maxConnectionsTotal": "8"})).expect("digits, as forms send"),
            Some(8)
        );
        for bad in [
            json!(0),
            json!(1001),
            json!("many"),
            json!(-1),
            json!(2.5),
            json!(true),
        ] {
            let e = declared_total(&json!({ "maxConnectionsTotal": bad })).expect_err("refused");
            assert!(e.message().contains("options.maxConnectionsTotal"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_share_gives_out_no_more_than_its_size() {
        let share = ConnectionShare::new(4);
        let wait = Duration::from_millis(20);
        assert!(share.acquire(wait).await.is_none(), "size 0 gives nothing");
        share.resize(2).await;
        let a = share.acquire(wait).await.expect("first");
        let _b = share.acquire(wait).await.expect("second");
        assert!(share.acquire(wait).await.is_none(), "a third waits");
        drop(a);
        assert!(
            share.acquire(wait).await.is_some(),
            "a returned place is reused"
        );
    }

    #[tokio::test]
    async fn a_shrink_waits_for_places_in_use_and_closes_idle_ones() {
        let share = ConnectionShare::new(4);
        let closed_to = Arc::new(AtomicU32::new(u32::MAX));
        let seen = closed_to.clone();
        share.attach(Box::new(move |size| {
            seen.store(size, Ordering::SeqCst);
            Box::pin(async { true })
        }));
        share.resize(3).await;
        let wait = Duration::from_millis(20);
        let held = [
            share.acquire(wait).await.expect("one"),
            share.acquire(wait).await.expect("two"),
        ];
        let shrinking = {
            let share = share.clone();
            tokio::spawn(async move { share.resize(1).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !shrinking.is_finished(),
            "two are in use: the shrink to 1 waits"
        );
        assert!(
            share.acquire(wait).await.is_none(),
            "no new place meanwhile"
        );
        drop(held);
        shrinking.await.expect("shrink ends");
        assert_eq!(share.size(), 1);
        assert_eq!(
            closed_to.load(Ordering::SeqCst),
            1,
            "idle ones closed down to 1"
        );
        let _one = share.acquire(wait).await.expect("one place left");
        assert!(share.acquire(wait).await.is_none());
    }

    #[test]
    fn a_share_is_given_up_when_its_last_connector_closes() {
        let share = ConnectionShare::new(4);
        share.attach(Box::new(|_| Box::pin(async { true })));
        share.attach(Box::new(|_| Box::pin(async { true })));
        share.detach();
        assert!(!share.is_given_up(), "one connector still uses it");
        share.detach();
        assert!(share.is_given_up());
    }
}
