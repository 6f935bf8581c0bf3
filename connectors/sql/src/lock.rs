//! The shape of the statements that take an exclusive lock on a key for the length of one
//! unit of work: what `Connector::begin_locked` runs so that `firstOrCreate` and
//! `updateOrCreate` on the same lookup values queue up, in every process that shares the
//! database. Each dialect writes its own ([`crate::Dialect::key_lock`]);
//! [`SessionLock`] is the same lock held by a session across transactions, for the main
//! database's migrations.
//!
//! The key is never part of the SQL text: it is bound (PostgreSQL hashes it on the server)
//! or reduced to a fixed-length name by [`lock_name`] first (MySQL's `GET_LOCK` names are
//! at most 64 characters, SQL Server's `sp_getapplock` resources 255).

use sha2::{Digest, Sha256};

use crate::Sql;

/// How one dialect holds a lock on a key around a transaction. Each acquiring statement
/// returns one row whose single column, `granted`, is 1 when the lock is held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyLock {
    /// Runs before the transaction begins: a session lock, taken first so that the
    /// transaction's first read comes after it (MySQL's snapshot starts at that read).
    pub before_begin: Option<Sql>,
    /// The statement that begins the transaction, when it is not the driver's own.
    pub begin: Option<&'static str>,
    /// Runs right after the transaction begins: a lock the transaction owns and releases
    /// when it ends.
    pub after_begin: Option<Sql>,
    /// Runs after the transaction ends, to release the session lock of `before_begin`.
    pub release: Option<Sql>,
}

/// A lock on a key that one database session holds across transactions, until it is
/// released or the session ends (a connection that dies releases it with it): what the
/// main database's migrations run under, so that processes starting together migrate one
/// after another.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionLock {
    /// Takes the lock; returns one row whose single column, `granted`, is 1 when held.
    pub acquire: Sql,
    /// Gives it back.
    pub release: Sql,
}

/// A fixed-length lock name for `key`: `manifold:` and 40 hexadecimal digits of its
/// SHA-256, the same in every process.
pub fn lock_name(key: &str) -> String {
    use std::fmt::Write as _;
    let digest = Sha256::digest(key.as_bytes());
    let mut name = String::from("manifold:");
    for byte in &digest[..20] {
        let _ = write!(name, "{byte:02x}");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_are_short_stable_and_distinct() {
        let a = lock_name("posts\u{1f}title=\"hello\"");
        assert_eq!(a.len(), 49);
        assert!(a.starts_with("manifold:"));
        assert_eq!(a, lock_name("posts\u{1f}title=\"hello\""));
        assert_ne!(a, lock_name("posts\u{1f}title=\"hello!\""));
    }
}
