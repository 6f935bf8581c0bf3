//! A sqlx pool whose checkouts may pass a [`ConnectionShare`] first: a source with a
//! connection total across replicas takes connections only as its share allows.
//!
//! sqlx fixes a pool's size when it is built, so the share is a gate in front of it
//! rather than the pool's own limit: every connection this crate and its connectors use
//! comes from [`SharedPool::acquire`], never from the sqlx pool directly.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use manifold_core::connection_share::{ConnectionShare, SharePermit};
use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};

/// A sqlx pool, gated by a share when the source has a total across replicas.
pub struct SharedPool<DB: Database> {
    pool: Pool<DB>,
    share: Option<Arc<ConnectionShare>>,
}

impl<DB: Database> Clone for SharedPool<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            share: self.share.clone(),
        }
    }
}

impl<DB: Database> SharedPool<DB> {
    /// `pool`, used without a gate.
    pub fn new(pool: Pool<DB>) -> Self {
        Self { pool, share: None }
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
        }
    }

    /// A connection, once the share (if any) has a place for it. Both waits together are
    /// bounded by the pool's acquire timeout; running out of it is `PoolTimedOut`, as for
    /// the pool itself.
    pub async fn acquire(&self) -> Result<Leased<DB>, sqlx::Error> {
        let Some(share) = &self.share else {
            return Ok(Leased {
                connection: Some(self.pool.acquire().await?),
                permit: None,
                close: false,
            });
        };
        let deadline = tokio::time::Instant::now() + self.pool.options().get_acquire_timeout();
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
        })
    }

    /// The sqlx pool, for its status and for tests; statements go through
    /// [`SharedPool::acquire`].
    pub fn raw(&self) -> &Pool<DB> {
        &self.pool
    }

    /// How full the pool is, for metrics. A gated pool's most is its share's size now.
    pub fn status(&self) -> manifold_core::telemetry::PoolStatus {
        let size = self.pool.size();
        let idle = u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX);
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
}

impl<DB: Database> Leased<DB> {
    /// Closes the connection when dropped rather than pool it again.
    pub fn close_on_drop(&mut self) {
        self.close = true;
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
