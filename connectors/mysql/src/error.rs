//! sqlx errors as client-facing core errors, by MySQL/MariaDB error number.
//!
//! Messages never repeat a value from the statement (a duplicate key, a rejected text): the
//! value may be private, and the client sent it anyway. Details go to the log instead.

use manifold_core::error::{Error, ErrorKind, FOREIGN_KEY_VIOLATION, UNIQUE_VIOLATION};
use sqlx::mysql::MySqlDatabaseError;

/// The last `` `quoted` `` or `'quoted'` name after `marker` in a server message, with any
/// `db`.`table`. prefix dropped.
fn name_after(msg: &str, marker: &str) -> Option<String> {
    let (_, rest) = msg.split_once(marker)?;
    let rest = rest.trim_start();
    let mut chars = rest.chars();
    let quote = chars.next().filter(|c| *c == '`' || *c == '\'')?;
    // Walk `a`.`b`.`c` (MariaDB) or 'c' (MySQL) and keep the last part.
    let mut last = None;
    let mut tail = rest;
    while let Some(body) = tail.strip_prefix(quote) {
        let end = body.find(quote)?;
        last = Some(body[..end].to_owned());
        tail = &body[end + 1..];
        match tail.strip_prefix('.') {
            Some(next) => tail = next,
            None => break,
        }
    }
    last.map(|name| name.rsplit('.').next().unwrap_or(&name).to_owned())
}

/// The key named in a duplicate-entry message (`… for key 'posts.title'`), read from the
/// end so a duplicate value containing the marker cannot confuse it.
fn duplicate_key(msg: &str) -> Option<String> {
    let (_, key) = msg.rsplit_once("for key ")?;
    let key = key.trim().trim_matches(['\'', '`']);
    let key = key.rsplit('.').next().unwrap_or(key);
    Some(if key == "PRIMARY" {
        "primary key".to_owned()
    } else {
        key.to_owned()
    })
}

fn invalid_value(msg: &str, reason: &str) -> Error {
    match name_after(msg, "for column ") {
        Some(column) => Error::bad_request(format!("invalid value: {column} {reason}")),
        None => Error::bad_request(format!("invalid value: {reason}")),
    }
}

fn unreachable_source(detail: &str) -> Error {
    Error::unavailable(format!("the data source cannot be reached: {detail}"))
}

fn database_error(number: u16, msg: &str) -> Error {
    let column = |marker: &str| name_after(msg, marker).unwrap_or_else(|| "a field".into());
    match number {
        // ER_BAD_NULL_ERROR, ER_NO_DEFAULT_FOR_FIELD
        1048 => Error::bad_request(format!("{} cannot be null", column("Column "))),
        1364 => Error::bad_request(format!("{} cannot be null", column("Field "))),
        // ER_DUP_ENTRY, ER_DUP_ENTRY_WITH_KEY_NAME
        1062 | 1586 => Error::bad_request(format!(
            "{} already exists",
            duplicate_key(msg).unwrap_or_else(|| "the value".into())
        ))
        .with_code(UNIQUE_VIOLATION),
        // ER_NO_REFERENCED_ROW(_2)
        1216 | 1452 => Error::bad_request(match name_after(msg, "FOREIGN KEY (") {
            Some(column) => format!("{column}: the referenced record does not exist"),
            None => "a referenced record does not exist (foreign key constraint)".into(),
        })
        .with_code(FOREIGN_KEY_VIOLATION),
        // ER_ROW_IS_REFERENCED(_2)
        1217 | 1451 => Error::bad_request(match name_after(msg, "constraint fails (") {
            Some(table) => format!("the record is still referenced by {table}"),
            None => "the record is still referenced (foreign key constraint)".into(),
        })
        .with_code(FOREIGN_KEY_VIOLATION),
        1366 => invalid_value(msg, "has the wrong type"),
        1292 => invalid_value(msg, "is not a valid value of its type"),
        1264 => invalid_value(msg, "is out of range"),
        1406 => invalid_value(msg, "is too long"),
        1265 => invalid_value(msg, "was truncated"),
        // ER_INVALID_JSON_TEXT (MySQL) and a failed CHECK (MariaDB's JSON columns are
        // `longtext CHECK (json_valid(col))`, the constraint named after the column).
        3140 => invalid_value(msg, "is not valid JSON"),
        3819 | 4025 => {
            match name_after(msg, "CONSTRAINT ").or_else(|| name_after(msg, "Check constraint ")) {
                Some(name) => Error::bad_request(format!("invalid value: check {name} failed")),
                None => Error::bad_request("invalid value: a check constraint failed"),
            }
        }
        // ER_QUERY_TIMEOUT (MySQL max_execution_time), ER_STATEMENT_TIMEOUT (MariaDB
        // max_statement_time)
        3024 | 1969 => Error::new(
            ErrorKind::Timeout,
            "the query took longer than the data source's statement timeout",
        ),
        // ER_LOCK_WAIT_TIMEOUT
        1205 => Error::new(
            ErrorKind::Timeout,
            "the statement waited too long for a lock held by another transaction",
        ),
        // ER_LOCK_DEADLOCK: the transaction was rolled back; a retry normally succeeds.
        1213 => Error::unavailable("the statement was chosen as a deadlock victim; retry it"),
        1054 | 1146 => {
            tracing::warn!(error = %msg, "mysql statement names an unknown column or table");
            Error::bad_request("Invalid SQL column or table reference")
        }
        1050 => Error::conflict(match name_after(msg, "Table ") {
            Some(table) => format!("{table} already exists"),
            None => "the table already exists".into(),
        }),
        1071 => Error::bad_request(
            "a unique or primary key is too long for MySQL; use a shorter string length",
        ),
        // Access denied, unknown database, too many connections: the options or the server
        // are the problem, not this request.
        1044 | 1045 | 1698 => unreachable_source("access denied for the configured user"),
        1049 => unreachable_source("the configured database does not exist"),
        1040 | 1203 => {
            Error::unavailable("the data source has too many connections; retry shortly")
        }
        // HA_ERR_AUTOINC_ERANGE, ER_AUTOINC_READ_FAILED: an explicit key at the top of the
        // column's range left AUTO_INCREMENT nothing to give; every later create without a
        // key fails the same way, so the client needs to know why.
        167 | 1467 => {
            tracing::warn!(error_number = number, error = %msg, "auto-increment exhausted");
            Error::conflict(format!(
                "{}: the automatic key has reached the largest value of its column; create the record with an explicit key",
                name_after(msg, "for column ").unwrap_or_else(|| "the key".into())
            ))
        }
        _ => {
            tracing::error!(error_number = number, error = %msg, "mysql statement failed");
            Error::internal("the database rejected the statement")
        }
    }
}

/// Maps a sqlx error: a bad value or violated constraint is the client's (400), a statement
/// timeout is a 504, an unreachable, exhausted or closed pool means the source cannot serve
/// now (503), anything else is ours (500, with the details in the log, not the response).
pub fn map_sqlx(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(db) => match db.try_downcast_ref::<MySqlDatabaseError>() {
            Some(my) => database_error(my.number(), my.message()),
            None => {
                tracing::error!(error = %db, "mysql statement failed");
                Error::internal("the database rejected the statement")
            }
        },
        sqlx::Error::PoolTimedOut => Error::unavailable(
            "no database connection became free in time; the data source is overloaded or down",
        ),
        sqlx::Error::PoolClosed => unreachable_source("the data source is closed"),
        sqlx::Error::Io(io) => {
            tracing::warn!(error = %io, "mysql I/O failure");
            Error::unavailable("the data source cannot be reached")
        }
        sqlx::Error::Tls(tls) => {
            tracing::warn!(error = %tls, "mysql TLS failure");
            unreachable_source("the TLS handshake failed (check options.ssl)")
        }
        sqlx::Error::Configuration(config) => {
            Error::bad_request(format!("invalid MySQL options: {config}"))
        }
        _ => {
            tracing::error!(error = %e, "mysql failure");
            Error::internal("unexpected database failure")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exhausted_auto_increment_is_a_conflict_naming_the_column() {
        let e = database_error(167, "Out of range value for column 'id' at row 1");
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(
            e.message().starts_with("id: the automatic key has reached"),
            "{}",
            e.message()
        );
        let e = database_error(
            1467,
            "Failed to read auto-increment value from storage engine",
        );
        assert_eq!(e.kind(), ErrorKind::Conflict);
    }

    #[test]
    fn names_are_read_from_both_servers_message_styles() {
        assert_eq!(
            name_after(
                "Incorrect integer value: 'x' for column `db`.`t`.`score` at row 1",
                "for column "
            ),
            Some("score".into())
        );
        assert_eq!(
            name_after(
                "Out of range value for column 'score' at row 1",
                "for column "
            ),
            Some("score".into())
        );
        assert_eq!(
            duplicate_key("Duplicate entry 'for key 'x'' for key 'posts.title'"),
            Some("title".into())
        );
        assert_eq!(
            duplicate_key("Duplicate entry '1' for key 'PRIMARY'"),
            Some("primary key".into())
        );
    }

    #[test]
    fn messages_never_echo_the_rejected_value() {
        let e = database_error(1062, "Duplicate entry 'secret@example.com' for key 'email'");
        assert_eq!(e.message(), "email already exists");
        assert_eq!(e.code(), Some(UNIQUE_VIOLATION));
        let e = database_error(
            1366,
            "Incorrect integer value: 'secret' for column `d`.`t`.`n` at row 1",
        );
        assert_eq!(e.message(), "invalid value: n has the wrong type");
    }
}
