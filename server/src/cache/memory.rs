//! The in-process backend: a bounded `moka` cache of JSON bytes, each entry with its own
//! TTL.
//!
//! Clearing a namespace bumps its generation, which is part of every key, so entries
//! stored before the clear are never read again; they are also handed to moka's
//! invalidation so they stop taking room. Invalidating by time alone would not do: moka
//! drops every matching entry written *at or before* the clear, and an entry written in
//! the same clock tick right after it would go too.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use moka::Expiry;
use moka::sync::Cache;

use super::{CacheError, encode_namespace};

/// A stored value, how long it lives and since when.
#[derive(Clone)]
struct Entry {
    bytes: Arc<[u8]>,
    ttl: Duration,
    written: Instant,
}

/// Each entry expires after its own TTL, counted again when it is replaced.
struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, entry: &Entry, _at: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &Entry,
        _at: Instant,
        _left: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// Entries keyed `<namespace>:<generation>:<key>`, the namespace encoded so it ends at
/// its first `:`.
pub(super) struct MemoryStore {
    entries: Cache<String, Entry>,
    /// The current generation of each namespace that was ever cleared (others are at 0).
    generations: DashMap<String, u64>,
    max_entries: u64,
}

impl MemoryStore {
    /// A store of at most `max_entries` entries; past that moka evicts the least likely
    /// to be read again.
    pub(super) fn new(max_entries: u64) -> Self {
        Self {
            entries: Cache::builder()
                .name("manifold-cache")
                .max_capacity(max_entries)
                .expire_after(PerEntryTtl)
                .support_invalidation_closures()
                .build(),
            generations: DashMap::new(),
            max_entries,
        }
    }

    /// The bound it was built with.
    pub(super) fn max_entries(&self) -> u64 {
        self.max_entries
    }

    /// `<namespace>:<generation>:`, the start of every key of the namespace's current
    /// generation.
    fn prefix(&self, namespace: &str) -> String {
        let generation = self.generations.get(namespace).map_or(0, |g| *g);
        format!("{}:{generation}:", encode_namespace(namespace))
    }

    pub(super) fn get(&self, namespace: &str, key: &str) -> Option<Arc<[u8]>> {
        let full = self.prefix(namespace) + key;
        self.entries.get(&full).map(|entry| entry.bytes)
    }

    pub(super) fn set(&self, namespace: &str, key: &str, bytes: Vec<u8>, ttl: Duration) {
        let full = self.prefix(namespace) + key;
        self.entries.insert(
            full,
            Entry {
                bytes: bytes.into(),
                ttl,
                written: Instant::now(),
            },
        );
    }

    /// Adds one to the counter under `key` (a missing or unreadable one counts as 0) and
    /// gives it `ttl` again, under moka's lock of the key: concurrent increments all count.
    pub(super) fn increment(&self, namespace: &str, key: &str, ttl: Duration) -> u64 {
        let full = self.prefix(namespace) + key;
        let entry = self.entries.entry(full).and_upsert_with(|old| {
            let count = old
                .and_then(|e| serde_json::from_slice::<u64>(&e.value().bytes).ok())
                .unwrap_or(0)
                .saturating_add(1);
            Entry {
                bytes: count.to_string().into_bytes().into(),
                ttl,
                written: Instant::now(),
            }
        });
        serde_json::from_slice(&entry.value().bytes).unwrap_or(1)
    }

    /// How long `key` has left, if it is there.
    pub(super) fn time_to_live(&self, namespace: &str, key: &str) -> Option<Duration> {
        let full = self.prefix(namespace) + key;
        let entry = self.entries.get(&full)?;
        entry.ttl.checked_sub(entry.written.elapsed())
    }

    pub(super) fn delete(&self, namespace: &str, key: &str) {
        let full = self.prefix(namespace) + key;
        self.entries.invalidate(&full);
    }

    pub(super) fn clear(&self, namespace: &str) -> Result<(), CacheError> {
        let old = {
            let mut generation = self.generations.entry(namespace.to_owned()).or_insert(0);
            let old = *generation;
            *generation += 1;
            old
        };
        let stale = format!("{}:{old}:", encode_namespace(namespace));
        self.entries
            .invalidate_entries_if(move |key, _| key.starts_with(&stale))
            .map(|_| ())
            .map_err(|e| CacheError::Backend {
                operation: "clear",
                message: e.to_string(),
            })
    }
}
