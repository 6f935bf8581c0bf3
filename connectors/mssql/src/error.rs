//! Driver and pool errors as client-facing core errors, by SQL Server error number.
//!
//! SQL Server's messages often quote row values ("The duplicate key value is (…)",
//! "Conversion failed when converting the nvarchar value '…'"), so messages are written
//! here from the error number and the names found in the message, never copied whole
//! when they could carry a value.

use manifold_core::error::{Error, ErrorKind, FOREIGN_KEY_VIOLATION, UNIQUE_VIOLATION};
use tiberius::error::{Error as TdsError, IoErrorKind, TokenError};

/// The message for every failure to reach the server.
pub const UNREACHABLE: &str = "the data source cannot be reached";

/// Maps a tiberius error: constraint and value errors are the client's (400), an
/// unreachable server, rejected login or broken connection cannot serve now (503), and
/// anything else is ours (500, with the details in the log, not the response).
pub fn map_tiberius(e: TdsError) -> Error {
    match &e {
        TdsError::Server(token) => map_server(token),
        TdsError::Io { kind, message } => {
            tracing::warn!(?kind, error = %message, "sql server connection failure");
            if *kind == IoErrorKind::TimedOut {
                Error::unavailable(format!("{UNREACHABLE}: the server did not answer in time"))
            } else {
                Error::unavailable(UNREACHABLE)
            }
        }
        TdsError::Tls(message) => {
            tracing::warn!(error = %message, "sql server TLS failure");
            Error::unavailable(format!(
                "{UNREACHABLE}: no TLS connection could be established"
            ))
        }
        TdsError::Routing { .. } => Error::unavailable(format!(
            "{UNREACHABLE}: the server redirected the connection to another address, which is not supported"
        )),
        _ => {
            tracing::error!(error = %e, "sql server failure");
            Error::internal("unexpected database failure")
        }
    }
}

/// Whether a connection can serve another request after `e`: a server error leaves the
/// session in step (the driver drains the rest of the reply before the next request),
/// anything else may have left it mid-message.
pub fn leaves_connection_usable(e: &TdsError) -> bool {
    matches!(e, TdsError::Server(_))
}

/// The first name quoted with `open`…`close` after `marker` in `message`.
fn quoted_after<'a>(message: &'a str, marker: &str, quote: char) -> Option<&'a str> {
    let start = message.find(marker)? + marker.len();
    let rest = &message[start..];
    let rest = rest.strip_prefix(quote)?;
    let end = rest.find(quote)?;
    Some(&rest[..end])
}

/// The constraint or index a unique violation (2627, 2601) names, without the value.
pub fn unique_violation_name(token: &TokenError) -> Option<String> {
    violated_unique_key(token.code(), token.message())
}

fn violated_unique_key(code: u32, message: &str) -> Option<String> {
    match code {
        2627 => quoted_after(message, "constraint ", '\''),
        2601 => quoted_after(message, "unique index ", '\''),
        _ => None,
    }
    .map(str::to_owned)
}

/// Maps an error the server reported for a statement or a login.
pub fn map_server(token: &TokenError) -> Error {
    map_server_error(token.code(), token.class(), token.message())
}

/// Maps a server error by its number, class (severity) and message.
pub fn map_server_error(code: u32, class: u8, message: &str) -> Error {
    match code {
        515 => Error::bad_request(format!(
            "{} cannot be null",
            quoted_after(message, "column ", '\'').unwrap_or("a required field")
        )),
        2627 | 2601 => Error::bad_request(format!(
            "{} already exists",
            violated_unique_key(code, message).unwrap_or_else(|| "the value".into())
        ))
        .with_code(UNIQUE_VIOLATION),
        547 => {
            let name = quoted_after(message, "constraint ", '"').unwrap_or("unknown");
            if message.contains("CHECK constraint") {
                Error::bad_request(format!("the record violates constraint {name}"))
            } else {
                Error::bad_request(format!(
                    "the record references a missing row or is still referenced (foreign key constraint {name})"
                ))
                .with_code(FOREIGN_KEY_VIOLATION)
            }
        }
        2628 => Error::bad_request(format!(
            "value too long for column {}",
            quoted_after(message, "column ", '\'').unwrap_or("unknown")
        )),
        8152 => Error::bad_request("value too long for its column"),
        // 245 quotes the value that failed to convert, which may be another row's.
        245 => {
            Error::bad_request("invalid value: a value could not be converted to the column's type")
        }
        // These quote types and functions, not values.
        8114 | 241 | 242 | 206 | 257 | 8115 | 220 | 232 | 8169 | 9809 | 13609 | 517 => {
            Error::bad_request(format!("invalid value: {message}"))
        }
        402 | 306 | 8116 | 8117 => Error::bad_request(format!(
            "the column type does not support this comparison: {message}"
        )),
        271 | 8102 | 544 | 4405 | 4406 | 4403 | 4427 => {
            Error::bad_request(format!("the column or view cannot be written: {message}"))
        }
        334 => Error::bad_request(
            "the table has enabled triggers, which SQL Server does not allow in a statement that returns the written rows",
        ),
        207 | 208 | 4104 => Error::bad_request("Invalid SQL column or table reference"),
        2714 => Error::conflict("table already exists"),
        3701 => Error::not_found("table not found"),
        1205 => Error::conflict("the write conflicted with a concurrent one; retry"),
        1222 => Error::new(
            ErrorKind::Timeout,
            "the query waited longer than the lock timeout",
        ),
        // Login failed, cannot open database, untrusted domain, account disabled,
        // locked out or with an expired password.
        18456 | 4060 | 18452 | 18470 | 18486 | 18487 | 18488 => {
            tracing::warn!(code, error = %message, "sql server login rejected");
            Error::unavailable(format!(
                "{UNREACHABLE}: the server rejected the login or the database"
            ))
        }
        // Azure SQL: database unavailable, throttled, being reconfigured.
        40613 | 40501 | 40197 | 49918 | 49919 | 49920 | 10928 | 10929 | 17809 => {
            tracing::warn!(code, error = %message, "sql server unavailable");
            Error::unavailable(UNREACHABLE)
        }
        _ => {
            tracing::error!(code, class, error = %message, "sql server statement failed");
            Error::internal("the database rejected the statement")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_found_after_their_markers() {
        let m = "Violation of UNIQUE KEY constraint 'UQ__posts__AB6E'. Cannot insert duplicate key in object 'dbo.posts'. The duplicate key value is (a@b.c).";
        assert_eq!(
            quoted_after(m, "constraint ", '\''),
            Some("UQ__posts__AB6E")
        );
        let m = "Cannot insert duplicate key row in object 'dbo.posts' with unique index 'ix_email'. The duplicate key value is (x).";
        assert_eq!(quoted_after(m, "unique index ", '\''), Some("ix_email"));
        let m = "The INSERT statement conflicted with the FOREIGN KEY constraint \"FK_a\". The conflict occurred in database \"d\", table \"dbo.u\", column 'id'.";
        assert_eq!(quoted_after(m, "constraint ", '"'), Some("FK_a"));
        assert_eq!(quoted_after("nothing", "constraint ", '"'), None);
        assert_eq!(quoted_after("constraint 'open", "constraint ", '\''), None);
    }

    fn mapped(code: u32, message: &str) -> (ErrorKind, String) {
        let e = map_server_error(code, 16, message);
        (e.kind(), e.message().to_owned())
    }

    #[test]
    fn constraint_errors_are_400s_that_never_echo_values() {
        assert_eq!(
            mapped(
                515,
                "Cannot insert the value NULL into column 'title', table 'db.dbo.posts'; column does not allow nulls. INSERT fails."
            ),
            (ErrorKind::BadRequest, "title cannot be null".into())
        );
        let (kind, message) = mapped(
            2627,
            "Violation of UNIQUE KEY constraint 'UQ_posts_email'. Cannot insert duplicate key in object 'dbo.posts'. The duplicate key value is (secret@x.y).",
        );
        assert_eq!(
            (kind, message.as_str()),
            (ErrorKind::BadRequest, "UQ_posts_email already exists")
        );
        let (_, message) = mapped(
            2601,
            "Cannot insert duplicate key row in object 'dbo.posts' with unique index 'ix_slug'. The duplicate key value is (secret).",
        );
        assert_eq!(message, "ix_slug already exists");
        assert_eq!(
            map_server_error(2601, 14, "Cannot insert duplicate key row").code(),
            Some(UNIQUE_VIOLATION)
        );
        let (kind, message) = mapped(
            547,
            "The INSERT statement conflicted with the FOREIGN KEY constraint \"FK_posts_user\". The conflict occurred in database \"d\", table \"dbo.users\", column 'id'.",
        );
        assert_eq!(kind, ErrorKind::BadRequest);
        assert!(
            message.contains("foreign key constraint FK_posts_user"),
            "{message}"
        );
        let (_, message) = mapped(
            547,
            "The UPDATE statement conflicted with the CHECK constraint \"CK_score\". The conflict occurred in database \"d\", table \"dbo.t\", column 'score'.",
        );
        assert_eq!(message, "the record violates constraint CK_score");
        let (kind, message) = mapped(
            2628,
            "String or binary data would be truncated in table 'd.dbo.t', column 'title'. Truncated value: 'secret'.",
        );
        assert_eq!(
            (kind, message.as_str()),
            (ErrorKind::BadRequest, "value too long for column title")
        );
        assert_eq!(
            mapped(8152, "String or binary data would be truncated.").0,
            ErrorKind::BadRequest
        );
        let (kind, message) = mapped(
            245,
            "Conversion failed when converting the nvarchar value 'secret' to data type int.",
        );
        assert_eq!(kind, ErrorKind::BadRequest);
        assert!(!message.contains("secret"), "{message}");
        assert_eq!(
            mapped(8114, "Error converting data type nvarchar to bigint.").0,
            ErrorKind::BadRequest
        );
        assert_eq!(
            mapped(
                241,
                "Conversion failed when converting date and/or time from character string."
            )
            .0,
            ErrorKind::BadRequest
        );
    }

    #[test]
    fn other_errors_map_to_their_kinds_with_fixed_messages() {
        assert_eq!(
            mapped(207, "Invalid column name 'nope'."),
            (
                ErrorKind::BadRequest,
                "Invalid SQL column or table reference".into()
            )
        );
        assert_eq!(
            mapped(208, "Invalid object name 'x'.").1,
            "Invalid SQL column or table reference"
        );
        assert_eq!(
            mapped(
                2714,
                "There is already an object named 'posts' in the database."
            )
            .0,
            ErrorKind::Conflict
        );
        assert_eq!(mapped(1205, "deadlock").0, ErrorKind::Conflict);
        let (kind, message) = mapped(18456, "Login failed for user 'sa'.");
        assert_eq!(kind, ErrorKind::Unavailable);
        assert!(message.starts_with(UNREACHABLE), "{message}");
        let (kind, message) = mapped(50000, "something internal about table secret_stuff");
        assert_eq!(kind, ErrorKind::Internal);
        assert!(!message.contains("secret_stuff"), "{message}");
    }
}
