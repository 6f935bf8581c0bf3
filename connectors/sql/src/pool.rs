//! A sqlx pool whose checkouts may pass a [`ConnectionShare`] first: a source with a
//! connection total across replicas takes connections only as its share allows.
//!
//! sqlx fixes a pool's size when it is built, so the share is a gate in front of it
//! rather than the pool's own limit: every connection this crate and its connectors use
//! comes from [`SharedPool::acquire`], never from the sqlx pool directly.
//!
//! sqlx checks every connection handed back to its pool with a round trip (PostgreSQL's
//! `Sync`, MySQL's `COM_PING`, a message to SQLite's worker thread), since it cannot know
//! whether the last user left a statement half read or a transaction open. A repository
//! knows: an operation that succeeded read its whole answer and committed what it began.
//! Such a connection ([`Leased::recycle`]) waits in a small warm list of this pool and
//! serves the next checkout with no check. It goes back to sqlx the usual way, checked,
//! after [`ALIVE_WINDOW`] unused or [`WARM_FOR`] since it left sqlx's pool, so sqlx's idle
//! timeout and lifetime still apply, and a broken connection is still found.
//!
//! Neither list checks a connection that proved itself lately. One that has not (unused
//! for [`ALIVE_WINDOW`]) is checked before it serves a checkout, as HikariCP does: a
//! server that restarted while the pool sat idle costs a ping, not a failed request.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use manifold_core::connection_share::{ConnectionShare, SharePermit};
use sqlx::pool::{PoolConnection, PoolOptions};
use sqlx::{Connection as _, Database, Pool};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a connection may serve checkouts from the warm list, counted from when it
/// left sqlx's pool; then it goes back, checked, at its next release.
pub const WARM_FOR: Duration = Duration::from_secs(10);

/// How long a connection counts as alive after its last success. A connection unused for
/// longer is pinged before it serves a checkout, from the warm list and from sqlx's idle
/// queue alike ([`check_unproven`]).
pub const ALIVE_WINDOW: Duration = Duration::from_millis(500);

/// `options` with a ping before the checkout of a connection idle for [`ALIVE_WINDOW`]
/// or longer, for a pool whose `test_before_acquire` is off. A connection that fails it
/// is closed and the checkout takes another or opens one.
pub fn check_unproven<DB: Database>(options: PoolOptions<DB>) -> PoolOptions<DB> {
    options.before_acquire(|connection, meta| {
        Box::pin(async move {
            if meta.idle_for >= ALIVE_WINDOW {
                connection.ping().await?;
            }
            Ok(true)
        })
    })
}

/// A sqlx pool, gated by a share when the source has a total across replicas.
pub struct SharedPool<DB: Database> {
    pool: Pool<DB>,
    share: Option<Arc<ConnectionShare>>,
    /// Connections known clean, most recently used last. None for a gated pool, whose
    /// share counts the connections sqlx holds idle, and outside a runtime.
    warm: Option<Arc<Warm<DB>>>,
}

impl<DB: Database> Clone for SharedPool<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            share: self.share.clone(),
            warm: self.warm.clone(),
        }
    }
}

/// The warm list of a pool (see the module docs).
struct Warm<DB: Database> {
    idle: Mutex<Vec<WarmConnection<DB>>>,
    /// One turn per connection the pool may open, taken first-come first-served by every
    /// checkout. A warm connection never passes through sqlx's own queue, so without
    /// these a checkout waiting there would wait while others took turns from the list.
    turns: Arc<Semaphore>,
    /// The pool is closing: nothing more is kept.
    closed: AtomicBool,
}

struct WarmConnection<DB: Database> {
    connection: PoolConnection<DB>,
    /// What the driver learned of its server session (see [`Leased::session`]).
    session: Option<u64>,
    /// When it left sqlx's pool.
    out_since: Instant,
    /// When it was recycled last.
    idle_since: Instant,
}

impl<DB: Database> Warm<DB> {
    /// A warm list, with a task that hands connections unused for [`ALIVE_WINDOW`] back to
    /// sqlx (the task ends with the list). None outside a runtime.
    fn start(connections: u32) -> Option<Arc<Self>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let warm = Arc::new(Self {
            idle: Mutex::new(Vec::new()),
            turns: Arc::new(Semaphore::new(connections as usize)),
            closed: AtomicBool::new(false),
        });
        let list: Weak<Self> = Arc::downgrade(&warm);
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(ALIVE_WINDOW).await;
                let Some(warm) = list.upgrade() else { return };
                drop(warm.take_unused());
            }
        });
        Some(warm)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<WarmConnection<DB>>> {
        // The list holds no invariant a panicking holder could break.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The most recently recycled connection still inside [`WARM_FOR`] and
    /// [`ALIVE_WINDOW`].
    fn pop(&self) -> Option<WarmConnection<DB>> {
        let now = Instant::now();
        let mut idle = self.lock();
        while let Some(warm) = idle.pop() {
            if now.saturating_duration_since(warm.idle_since) >= ALIVE_WINDOW {
                // Unproven, and the rest (recycled earlier) too: all back to sqlx, which
                // checks them as they come back. A drop only spawns sqlx's return task.
                drop(warm);
                idle.clear();
                return None;
            }
            if now.saturating_duration_since(warm.out_since) < WARM_FOR {
                return Some(warm);
            }
            drop(warm);
        }
        None
    }

    /// Takes the connections unused for [`ALIVE_WINDOW`] out of the list; dropping them hands
    /// them back to sqlx.
    fn take_unused(&self) -> Vec<WarmConnection<DB>> {
        let mut idle = self.lock();
        let keep = idle
            .iter()
            .position(|w| w.idle_since.elapsed() < ALIVE_WINDOW)
            .unwrap_or(idle.len());
        idle.drain(..keep).collect()
    }

    fn len(&self) -> usize {
        self.lock().len()
    }
}

impl<DB: Database> SharedPool<DB> {
    /// `pool`, used without a gate.
    pub fn new(pool: Pool<DB>) -> Self {
        let warm = Warm::start(pool.options().get_max_connections());
        Self {
            pool,
            share: None,
            warm,
        }
    }

    /// `pool`, taking connections only as `share` allows. A share that shrinks closes
    /// this pool's idle connections down to its new size.
    pub fn gated(pool: Pool<DB>, share: Arc<ConnectionShare>) -> Self {
        let idle = pool.clone();
        share.attach(Box::new(move |size| {
            Box::pin(close_idle(idle.clone(), size))
        }));
        Self {
            pool,
            share: Some(share),
            warm: None,
        }
    }

    /// A connection, once the share (if any) has a place for it. Both waits together are
    /// bounded by the pool's acquire timeout; running out of it is `PoolTimedOut`, as for
    /// the pool itself.
    pub async fn acquire(&self) -> Result<Leased<DB>, sqlx::Error> {
        let deadline = tokio::time::Instant::now() + self.pool.options().get_acquire_timeout();
        let Some(share) = &self.share else {
            let Some(warm) = &self.warm else {
                return Ok(Leased {
                    connection: Some(self.pool.acquire().await?),
                    permit: None,
                    close: false,
                    warm: None,
                    session: None,
                    _turn: None,
                });
            };
            let turn = tokio::time::timeout_at(deadline, warm.turns.clone().acquire_owned())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?
                .map_err(|_| sqlx::Error::PoolClosed)?;
            if let Some(recycled) = warm.pop() {
                return Ok(Leased {
                    connection: Some(recycled.connection),
                    permit: None,
                    close: false,
                    warm: Some((warm.clone(), recycled.out_since)),
                    session: recycled.session,
                    _turn: Some(turn),
                });
            }
            let connection = tokio::time::timeout_at(deadline, self.pool.acquire())
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)??;
            return Ok(Leased {
                connection: Some(connection),
                permit: None,
                close: false,
                warm: Some((warm.clone(), Instant::now())),
                session: None,
                _turn: Some(turn),
            });
        };
        let permit = share
            .acquire(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await
            .ok_or(sqlx::Error::PoolTimedOut)?;
        let connection = tokio::time::timeout_at(deadline, self.pool.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        Ok(Leased {
            connection: Some(connection),
            permit: Some(permit),
            close: false,
            warm: None,
            session: None,
            _turn: None,
        })
    }

    /// The sqlx pool, for its status and for tests; statements go through
    /// [`SharedPool::acquire`].
    pub fn raw(&self) -> &Pool<DB> {
        &self.pool
    }

    /// How full the pool is, for metrics. A gated pool's most is its share's size now;
    /// a warm connection counts as idle.
    pub fn status(&self) -> manifold_core::telemetry::PoolStatus {
        let size = self.pool.size();
        let warm = self.warm.as_ref().map_or(0, |warm| warm.len());
        let idle = u32::try_from(self.pool.num_idle() + warm).unwrap_or(u32::MAX);
        let most = self.pool.options().get_max_connections();
        manifold_core::telemetry::PoolStatus {
            size,
            in_use: size.saturating_sub(idle),
            max: self
                .share
                .as_ref()
                .map_or(most, |share| share.size().min(most)),
        }
    }

    /// Closes the pool and gives the share back.
    pub async fn close(&self) {
        if let Some(warm) = &self.warm {
            // Back to sqlx first, or closing would wait for them.
            warm.closed.store(true, Ordering::Release);
            warm.turns.close();
            drop(std::mem::take(&mut *warm.lock()));
        }
        self.pool.close().await;
        if let Some(share) = &self.share {
            share.detach();
        }
    }
}

/// Closes idle connections of `pool` until at most `size` are open; answers whether the
/// pool is still open. Connections in use are not touched: a shrinking share has already
/// waited for them to come back.
async fn close_idle<DB: Database>(pool: Pool<DB>, size: u32) -> bool {
    // A checkout racing this one may hold the idle connection it wanted: retry briefly.
    for _ in 0..100 {
        if pool.is_closed() {
            return false;
        }
        if pool.size() <= size {
            return true;
        }
        match pool.try_acquire() {
            Some(connection) => {
                let _ = connection.close().await;
            }
            None => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    !pool.is_closed()
}

/// A connection checked out of a [`SharedPool`], holding its place in the share until it
/// is back in the pool or closed.
pub struct Leased<DB: Database> {
    connection: Option<PoolConnection<DB>>,
    permit: Option<SharePermit>,
    close: bool,
    /// The warm list it may go back to, and when it left sqlx's pool.
    warm: Option<(Arc<Warm<DB>>, Instant)>,
    /// The server's id of the connection's session, once a driver asked.
    session: Option<u64>,
    /// Its turn in the warm list's queue, given up when the lease is.
    _turn: Option<OwnedSemaphorePermit>,
}

impl<DB: Database> Leased<DB> {
    /// Closes the connection when dropped rather than pool it again.
    pub fn close_on_drop(&mut self) {
        self.close = true;
    }

    /// The server's id of this connection's session, if it was learned
    /// ([`Leased::learned_session`]) while the connection stayed warm: a driver that needs
    /// it (to kill a statement from another connection) then asks once per connection,
    /// not once per checkout.
    pub fn session(&self) -> Option<u64> {
        self.session
    }

    /// Keeps `id` as this connection's session id for its next checkouts from the warm
    /// list.
    pub fn learned_session(&mut self, id: u64) {
        self.session = Some(id);
    }

    /// Hands the connection back as known clean: every statement run on it read its whole
    /// answer and no transaction is open. It then serves the next checkout without sqlx's
    /// check (see the module docs). Dropping a lease instead hands it back checked.
    pub fn recycle(mut self) {
        if self.close {
            return;
        }
        let Some((warm, out_since)) = self.warm.take() else {
            return;
        };
        if out_since.elapsed() >= WARM_FOR || warm.closed.load(Ordering::Acquire) {
            // Back to sqlx, checked: its lifetime and idle timeout apply again.
            return;
        }
        if let Some(connection) = self.connection.take() {
            warm.lock().push(WarmConnection {
                connection,
                session: self.session,
                out_since,
                idle_since: Instant::now(),
            });
        }
    }
}

impl<DB: Database> Deref for Leased<DB> {
    type Target = PoolConnection<DB>;

    fn deref(&self) -> &PoolConnection<DB> {
        self.connection
            .as_ref()
            .expect("a leased connection is present until dropped")
    }
}

impl<DB: Database> DerefMut for Leased<DB> {
    fn deref_mut(&mut self) -> &mut PoolConnection<DB> {
        self.connection
            .as_mut()
            .expect("a leased connection is present until dropped")
    }
}

impl<DB: Database> Drop for Leased<DB> {
    fn drop(&mut self) {
        let Some(mut connection) = self.connection.take() else {
            return;
        };
        let close = self.close;
        // An ungated connection goes back the usual way, with no task of ours.
        let gated = self
            .permit
            .take()
            .map(|permit| (permit, tokio::runtime::Handle::try_current()));
        let Some((permit, Ok(runtime))) = gated else {
            if close {
                connection.close_on_drop();
            }
            return;
        };
        // sqlx hands a dropped connection back to its pool in a task of its own; were the
        // place in the share given back at once, the next checkout could find no idle
        // connection yet and open one more than the share. So the place is held until the
        // connection is back in the pool (or closed). `return_to_pool` is what sqlx's own
        // drop runs; it is public but hidden from sqlx's docs, and pinned by Cargo.lock.
        runtime.spawn(async move {
            if close {
                let _ = connection.close().await;
            } else {
                let returning = connection.return_to_pool();
                drop(connection);
                returning.await;
            }
            drop(permit);
        });
    }
}
