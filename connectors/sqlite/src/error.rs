//! sqlx errors as client-facing core errors.

use manifold_core::error::{Error, ErrorKind, FOREIGN_KEY_VIOLATION, UNIQUE_VIOLATION};

/// `SQLITE_FULL`, as sqlx reports the result code.
const SQLITE_FULL: &str = "13";

/// Maps a sqlx error: constraint violations are the client's (400), an exhausted or closed
/// pool means the source cannot serve now (503), anything else is ours (500, with the
/// details in the log, not the response).
pub fn map_sqlx(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(db) => {
            let msg = db.message();
            // SQLite reports constraint failures as "<KIND> constraint failed: table.column".
            let column = || {
                msg.rsplit_once(": ")
                    .map(|(_, cols)| {
                        cols.split(", ")
                            .map(|c| c.rsplit('.').next().unwrap_or(c))
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default()
            };
            if msg.starts_with("NOT NULL constraint failed") {
                Error::bad_request(format!("{} cannot be null", column()))
            } else if msg.starts_with("UNIQUE constraint failed") {
                Error::bad_request(format!("{} already exists", column()))
                    .with_code(UNIQUE_VIOLATION)
            } else if msg.starts_with("FOREIGN KEY constraint failed") {
                Error::bad_request(msg.to_owned()).with_code(FOREIGN_KEY_VIOLATION)
            } else if msg.contains("constraint failed") {
                Error::bad_request(msg.to_owned())
            } else if msg.contains("database is locked") || msg.contains("busy") {
                Error::unavailable("the SQLite database is busy; retry shortly")
            } else if db.code().as_deref() == Some(SQLITE_FULL) {
                // SQLite gives one code for a full disk and for an AUTOINCREMENT key that an
                // explicit key moved to the largest rowid: every later create without a key
                // then fails, so the client is told both possible causes.
                tracing::warn!(error = %msg, "sqlite is full");
                Error::conflict(
                    "the database is full: the automatic key has reached its largest value, or the disk has no room; create the record with an explicit key, or free space",
                )
            } else {
                tracing::error!(error = %msg, "sqlite statement failed");
                Error::internal("the database rejected the statement")
            }
        }
        sqlx::Error::PoolTimedOut => Error::new(
            ErrorKind::Unavailable,
            "no database connection became free in time; the data source is overloaded",
        ),
        sqlx::Error::PoolClosed => Error::unavailable("the data source is closed"),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            tracing::warn!(error = %e, "sqlite I/O failure");
            Error::unavailable("the data source cannot be reached")
        }
        _ => {
            tracing::error!(error = %e, "sqlite failure");
            Error::internal("unexpected database failure")
        }
    }
}
