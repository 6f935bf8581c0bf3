//! The statements that take an exclusive lock on a key for the length of one unit of work,
//! in each dialect: what `Connector::begin_locked` runs so that `firstOrCreate` and
//! `updateOrCreate` on the same lookup values queue up, in every process that shares the
//! database.
//!
//! [`session_lock`] is the same lock held by a session across transactions, for the main
//! database's migrations.
//!
//! The key is never part of the SQL text: it is bound (PostgreSQL hashes it on the server)
//! or reduced to a fixed-length name by SHA-256 first (MySQL's `GET_LOCK` names are at most
//! 64 characters, SQL Server's `sp_getapplock` resources 255).

use std::time::Duration;

use manifold_core::value::Value;
use sha2::{Digest, Sha256};

use crate::{Dialect, Sql};

/// How one dialect holds a lock on a key around a transaction. Each acquiring statement
/// returns one row whose single column, `granted`, is 1 when the lock is held.
#[derive(Debug, Clone, PartialEq)]
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

/// The lock on `key` in `dialect`, waiting at most `wait` where the database takes a
/// wait (MySQL and SQL Server; PostgreSQL waits up to its statement timeout, SQLite up to
/// its busy timeout). A zero `wait` waits without a limit of its own.
pub fn key_lock(dialect: Dialect, key: &str, wait: Duration) -> KeyLock {
    match dialect {
        // The whole database's write lock, taken at BEGIN: one writer at a time, so the
        // lookup and the insert of one unit cannot interleave with another's.
        Dialect::Sqlite => KeyLock {
            before_begin: None,
            begin: Some("BEGIN IMMEDIATE"),
            after_begin: None,
            release: None,
        },
        // READ COMMITTED whatever the server's default: each statement then sees what was
        // committed before it started, including the row the previous holder inserted.
        Dialect::Postgres => KeyLock {
            before_begin: None,
            begin: Some("BEGIN ISOLATION LEVEL READ COMMITTED"),
            after_begin: Some(Sql {
                text: "SELECT CAST(1 AS BIGINT) AS granted FROM \
                       (SELECT pg_advisory_xact_lock(hashtextextended($1, 0))) AS l"
                    .into(),
                params: vec![Value::Text(key.to_owned())],
            }),
            release: None,
        },
        // GET_LOCK belongs to the session, not the transaction: taken before BEGIN and
        // released after COMMIT. It answers 0 after `wait` seconds (-1: no limit).
        Dialect::MySql => KeyLock {
            before_begin: Some(get_lock(key, wait)),
            begin: None,
            after_begin: None,
            release: Some(release_lock(key)),
        },
        Dialect::Mssql => KeyLock {
            before_begin: None,
            begin: None,
            after_begin: Some(sp_getapplock(key, wait)),
            release: None,
        },
    }
}

/// MySQL's lock on `key` for the session: `GET_LOCK` on the key's [`lock_name`], which
/// answers 0 after `wait` (rounded up to whole seconds; zero: no limit).
fn get_lock(key: &str, wait: Duration) -> Sql {
    Sql {
        text: "SELECT CAST(GET_LOCK(?, ?) AS SIGNED) AS granted".into(),
        params: vec![
            Value::Text(lock_name(key)),
            Value::Int(if wait.is_zero() {
                -1
            } else {
                i64::try_from(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
                    .unwrap_or(i64::MAX)
            }),
        ],
    }
}

/// Releases what [`get_lock`] took.
fn release_lock(key: &str) -> Sql {
    Sql {
        text: "SELECT RELEASE_LOCK(?)".into(),
        params: vec![Value::Text(lock_name(key))],
    }
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

/// The session lock on `key` in `dialect`, or `None` where there is none to take:
/// SQLite's `BEGIN IMMEDIATE` already serialises writers, and SQL Server is never a main
/// database. MySQL waits at most `wait` (as [`key_lock`]); PostgreSQL's
/// `pg_advisory_lock` waits up to the session's `lock_timeout`, which the caller sets.
pub fn session_lock(dialect: Dialect, key: &str, wait: Duration) -> Option<SessionLock> {
    match dialect {
        Dialect::Postgres => {
            let key = || vec![Value::Text(key.to_owned())];
            Some(SessionLock {
                acquire: Sql {
                    text: "SELECT CAST(1 AS BIGINT) AS granted FROM \
                           (SELECT pg_advisory_lock(hashtextextended($1, 0))) AS l"
                        .into(),
                    params: key(),
                },
                release: Sql {
                    text: "SELECT pg_advisory_unlock(hashtextextended($1, 0))".into(),
                    params: key(),
                },
            })
        }
        Dialect::MySql => Some(SessionLock {
            acquire: get_lock(key, wait),
            release: release_lock(key),
        }),
        Dialect::Sqlite | Dialect::Mssql => None,
    }
}

/// SQL Server's lock on `key`, taken inside a transaction: an application lock the
/// transaction owns, released at COMMIT or ROLLBACK. `sp_getapplock` returns 0 or 1 when
/// it grants the lock and a negative number when not (-1: not within `wait`).
pub fn sp_getapplock(key: &str, wait: Duration) -> Sql {
    Sql {
        text: "DECLARE @result int; \
               EXEC @result = sp_getapplock @Resource = @P1, @LockMode = 'Exclusive', \
               @LockOwner = 'Transaction', @LockTimeout = @P2; \
               SELECT CAST(CASE WHEN @result >= 0 THEN 1 ELSE 0 END AS bigint) AS granted"
            .into(),
        params: vec![
            Value::Text(lock_name(key)),
            Value::Int(if wait.is_zero() {
                -1
            } else {
                i64::try_from(wait.as_millis()).unwrap_or(i64::MAX)
            }),
        ],
    }
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

    #[test]
    fn the_key_is_bound_never_written_into_the_text() {
        let key = "posts'; DROP TABLE posts; --";
        for dialect in [
            Dialect::Sqlite,
            Dialect::Postgres,
            Dialect::MySql,
            Dialect::Mssql,
        ] {
            let lock = key_lock(dialect, key, Duration::from_secs(3));
            for sql in [&lock.before_begin, &lock.after_begin, &lock.release]
                .into_iter()
                .flatten()
            {
                assert!(!sql.text.contains("DROP"), "{dialect:?}: {}", sql.text);
            }
        }
    }

    #[test]
    fn session_locks_bind_their_key_and_exist_where_the_database_has_one() {
        let key = "migrations'; DROP TABLE users; --";
        for dialect in [Dialect::Postgres, Dialect::MySql] {
            let lock = session_lock(dialect, key, Duration::from_secs(2))
                .unwrap_or_else(|| panic!("{dialect:?} has a session lock"));
            for sql in [&lock.acquire, &lock.release] {
                assert!(!sql.text.contains("DROP"), "{dialect:?}: {}", sql.text);
            }
            assert_eq!(lock.acquire.params[0], lock.release.params[0]);
        }
        let mysql =
            session_lock(Dialect::MySql, "k", Duration::from_millis(2500)).expect("GET_LOCK");
        assert_eq!(mysql.acquire.params[1], Value::Int(3));
        assert!(session_lock(Dialect::Sqlite, "k", Duration::ZERO).is_none());
    }

    #[test]
    fn mysql_waits_whole_seconds_and_releases_after_the_transaction() {
        let lock = key_lock(Dialect::MySql, "k", Duration::from_millis(1500));
        let take = lock.before_begin.expect("GET_LOCK before BEGIN");
        assert_eq!(take.params[1], Value::Int(2));
        assert_eq!(
            lock.release.expect("RELEASE_LOCK").params,
            vec![Value::Text(lock_name("k"))]
        );
        let forever = key_lock(Dialect::MySql, "k", Duration::ZERO);
        assert_eq!(
            forever.before_begin.expect("GET_LOCK").params[1],
            Value::Int(-1)
        );
    }
}
