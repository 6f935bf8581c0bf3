//! sqlx errors as client-facing core errors, by PostgreSQL SQLSTATE.

use manifold_core::error::{Error, ErrorKind, FOREIGN_KEY_VIOLATION, UNIQUE_VIOLATION};
use sqlx::postgres::{PgDatabaseError, PgSeverity};

/// The message for every failure to reach the server.
pub(crate) const UNREACHABLE: &str = "the data source cannot be reached";

/// Maps a sqlx error: constraint and value errors are the client's (400), a timed-out
/// statement is a timeout, an exhausted, closed or unreachable server cannot serve now
/// (503), anything else is ours (500, with the details in the log, not the response).
///
/// Messages never carry connection options; row values are never echoed for unique
/// violations (the value may be private to another user).
pub fn map_sqlx(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(db) => match db.try_downcast_ref::<PgDatabaseError>() {
            Some(pg) => map_database(pg),
            None => {
                tracing::error!(error = %db.message(), "postgres statement failed");
                Error::internal("the database rejected the statement")
            }
        },
        sqlx::Error::PoolTimedOut => Error::new(
            ErrorKind::Unavailable,
            "no database connection became free in time; the data source is overloaded",
        ),
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => Error::unavailable(UNREACHABLE),
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => {
            tracing::warn!(error = %e, "postgres connection failure");
            Error::unavailable(UNREACHABLE)
        }
        sqlx::Error::Tls(_) => {
            tracing::warn!(error = %e, "postgres TLS failure");
            Error::unavailable(format!(
                "{UNREACHABLE}: no TLS connection could be established"
            ))
        }
        _ => {
            tracing::error!(error = %e, "postgres failure");
            Error::internal("unexpected database failure")
        }
    }
}

fn map_database(pg: &PgDatabaseError) -> Error {
    let code = pg.code();
    match code {
        "23502" => Error::bad_request(format!(
            "{} cannot be null",
            pg.column().unwrap_or("a required field")
        )),
        "23505" => Error::bad_request(format!(
            "{} already exists",
            pg.detail()
                .and_then(key_columns)
                .or_else(|| pg.constraint().map(str::to_owned))
                .unwrap_or_else(|| "the value".into())
        ))
        .with_code(UNIQUE_VIOLATION),
        "23503" => Error::bad_request(format!(
            "the record references a missing row or is still referenced (foreign key constraint {})",
            pg.constraint().unwrap_or("unknown")
        ))
        .with_code(FOREIGN_KEY_VIOLATION),
        "23514" | "23P01" => Error::bad_request(format!(
            "the record violates constraint {}",
            pg.constraint().unwrap_or("unknown")
        )),
        // Class 22, data exceptions: a value PostgreSQL cannot take (bad text for the
        // type, out of range, too long, a NUL byte, …).
        c if c.starts_with("22") => Error::bad_request(format!("invalid value: {}", pg.message())),
        // A parameter whose bytes do not fit the type PostgreSQL inferred for it (text
        // compared with a uuid, say) fails the statement, not the session.
        "08P01" if pg.severity() == PgSeverity::Error => {
            Error::bad_request(format!("invalid value: {}", pg.message()))
        }
        "42804" => Error::bad_request(format!(
            "invalid value: {} (this column type cannot be written through the API)",
            pg.message()
        )),
        "42883" => Error::bad_request(format!(
            "the column type does not support this comparison: {}",
            pg.message()
        )),
        "57014" => Error::new(
            ErrorKind::Timeout,
            "the query took longer than the statement timeout",
        ),
        "42P01" | "42703" | "42702" => Error::bad_request("Invalid SQL column or table reference"),
        "42P07" => Error::conflict("table already exists"),
        "40001" | "40P01" => Error::conflict("the write conflicted with a concurrent one; retry"),
        "3D000" => Error::unavailable(format!("{UNREACHABLE}: the database does not exist")),
        c if c.starts_with("28") => Error::unavailable(format!(
            "{UNREACHABLE}: the server rejected the credentials"
        )),
        // Connection exceptions, too many connections, shutting down or starting up.
        c if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") => {
            tracing::warn!(code, error = %pg.message(), "postgres unavailable");
            Error::unavailable(UNREACHABLE)
        }
        _ => {
            tracing::error!(code, error = %pg.message(), detail = ?pg.detail(), "postgres statement failed");
            Error::internal("the database rejected the statement")
        }
    }
}

/// The columns of a unique violation's detail, `Key (a, b)=(1, 2) already exists.`,
/// without the values.
fn key_columns(detail: &str) -> Option<String> {
    let rest = detail.strip_prefix("Key (")?;
    let (columns, _) = rest.split_once(")=(")?;
    Some(
        columns
            .split(", ")
            .map(|c| c.trim_matches('"'))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_details_name_the_columns_not_the_values() {
        assert_eq!(
            key_columns("Key (email)=(a@b.c) already exists.").as_deref(),
            Some("email")
        );
        assert_eq!(
            key_columns("Key (a, \"B c\")=(1, 2) already exists.").as_deref(),
            Some("a, B c")
        );
        assert_eq!(key_columns("something else"), None);
    }
}
