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

/// A stored value and how long it lives.
#[derive(Clone)]
struct Entry {
    bytes: Arc<[u8]>,
    ttl: Duration,
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
            },
        );
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
