//! In-process mutual exclusion per key: requests that must not run side by side (a
//! `firstOrCreate` and an `updateOrCreate` on the same lookup values) queue here before
//! they reach the database, so one process never races itself and waits on no database
//! lock for it.
//!
//! A key's entry lives only while some request holds or awaits it, so the map holds at
//! most one entry per request in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OwnedMutexGuard;

/// Locks by key, for one data source.
#[derive(Debug, Default)]
pub struct KeyLocks {
    held: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Holds a key's lock until dropped.
#[derive(Debug)]
pub struct KeyGuard<'a> {
    // Declared first so it is dropped first: the entry can only go once no guard is left.
    _guard: OwnedMutexGuard<()>,
    _ticket: Ticket<'a>,
}

/// A claim on a key's entry, held while waiting and while holding; the last one to go
/// removes the entry.
#[derive(Debug)]
struct Ticket<'a> {
    locks: &'a KeyLocks,
    key: String,
    entry: Option<Arc<tokio::sync::Mutex<()>>>,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut held = self.locks.held.lock().unwrap_or_else(|e| e.into_inner());
        drop(self.entry.take());
        // Counted under the map's lock, where every new claim is made: a count of one is
        // the map's own reference, so nobody holds or waits for this key.
        if held
            .get(&self.key)
            .is_some_and(|entry| Arc::strong_count(entry) == 1)
        {
            held.remove(&self.key);
        }
    }
}

impl KeyLocks {
    /// Waits until no other holder of `key` remains, then holds it. A waiter that is
    /// dropped (its request cancelled) leaves the queue without a trace.
    pub async fn lock(&self, key: String) -> KeyGuard<'_> {
        let entry = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        let ticket = Ticket {
            locks: self,
            key,
            entry: Some(entry.clone()),
        };
        KeyGuard {
            _guard: entry.lock_owned().await,
            _ticket: ticket,
        }
    }

    /// How many keys are held or awaited now.
    #[cfg(test)]
    fn entries(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_holder_per_key_and_nothing_left_behind() {
        let locks = Arc::new(KeyLocks::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let (locks, inside, most) = (locks.clone(), inside.clone(), most.clone());
                tokio::spawn(async move {
                    let _held = locks.lock("k".into()).await;
                    let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task");
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert_eq!(locks.entries(), 0);
    }

    #[tokio::test]
    async fn other_keys_do_not_wait_and_abandoned_waiters_leave_no_entry() {
        let locks = KeyLocks::default();
        let held = locks.lock("a".into()).await;
        // Another key is free at once.
        let other = tokio::time::timeout(Duration::from_secs(1), locks.lock("b".into())).await;
        assert!(other.is_ok());
        drop(other);
        // A waiter for "a" that gives up (a cancelled request).
        let waited = tokio::time::timeout(Duration::from_millis(20), locks.lock("a".into())).await;
        assert!(waited.is_err());
        assert_eq!(locks.entries(), 1);
        drop(held);
        assert_eq!(locks.entries(), 0);
    }
}
