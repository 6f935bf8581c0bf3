//! MySQL's and MariaDB's SQL: backquoted identifiers, `?` placeholders, case-insensitive
//! default collations, no `NULLS LAST`, JSON read through `JSON_EXTRACT`, and `GET_LOCK`
//! for a key's lock. MariaDB from 10.5 on also returns inserted rows.

use std::time::Duration;

use manifold_core::filter::{FieldRef, LikePattern};
use manifold_core::schema::FieldType;
use manifold_core::value::Value;
use manifold_sql::compile::{json_array, like_under_collation};
use manifold_sql::lock::{KeyLock, SessionLock, lock_name};
use manifold_sql::{Dialect, Sql, SqlBuilder};

/// MySQL's binary collation, so that `$like` compares characters exactly whatever the
/// column's collation (MariaDB's default ignores case and accents).
const EXACT: (&str, &str, &str) = ("CONVERT(", " USING utf8mb4)", "utf8mb4_bin");

/// Oracle MySQL's dialect: neither `INSERT` nor `UPDATE` returns rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct MySqlDialect;

/// MariaDB's dialect from 10.5 on: MySQL's, with `INSERT … RETURNING` (MariaDB has no
/// `UPDATE … RETURNING`).
#[derive(Debug, Clone, Copy, Default)]
pub struct MariaDbDialect;

/// What MySQL and MariaDB spell alike, written once for both dialects.
macro_rules! mysql_family {
    () => {
        fn placeholder_into(&self, _n: usize, out: &mut String) {
            out.push('?');
        }

        /// `GET_LOCK` belongs to the session, not the transaction: taken before `BEGIN` and
        /// released after `COMMIT`.
        fn key_lock(&self, key: &str, wait: Duration) -> KeyLock {
            KeyLock {
                before_begin: Some(get_lock(key, wait)),
                release: Some(release_lock(key)),
                ..KeyLock::default()
            }
        }

        fn session_lock(&self, key: &str, wait: Duration) -> Option<SessionLock> {
            Some(SessionLock {
                acquire: get_lock(key, wait),
                release: release_lock(key),
            })
        }

        fn identifier_quotes(&self) -> (char, char) {
            ('`', '`')
        }

        fn max_params(&self) -> usize {
            60_000
        }

        fn insert_defaults(&self) -> &'static str {
            " () VALUES ()"
        }

        fn text_type(&self) -> &'static str {
            "CHAR"
        }

        /// The default escape is already the backslash, and spelling it would need a doubled
        /// backslash here.
        fn like_escape_clause(&self) -> &'static str {
            ""
        }

        /// JSON is read through `JSON_EXTRACT(…, '$')`: a JSON value on MySQL, and on MariaDB
        /// (whose JSON is text) the text in one canonical spelling, so `[1,2]` equals
        /// `[1, 2]`.
        fn compared(&self, b: &mut SqlBuilder, f: &FieldRef) {
            if f.field_type == FieldType::Json {
                b.push("JSON_EXTRACT(").field(f).push(", '$')");
            } else {
                b.field(f);
            }
        }

        /// MySQL 8 compares a native JSON column with text as text, so JSON operands go
        /// through `JSON_EXTRACT(…, '$')` as the column does (not `CAST(… AS JSON)`, which
        /// MariaDB lacks).
        fn operand(&self, b: &mut SqlBuilder, f: &FieldRef, v: &Value) {
            if f.field_type == FieldType::Json {
                b.push("JSON_EXTRACT(").bind(v.clone()).push(", '$')");
            } else {
                b.bind(v.clone());
            }
        }

        fn like(
            &self,
            b: &mut SqlBuilder,
            f: &FieldRef,
            pattern: &LikePattern,
            case_insensitive: bool,
            negated: bool,
        ) {
            like_under_collation(b, f, EXACT, pattern, case_insensitive, negated);
        }

        /// MySQL has no `NULLS LAST`: `f IS NULL` is sorted first, and false comes before true.
        fn order_nulls_last(&self, b: &mut SqlBuilder, f: &FieldRef, descending: bool) {
            b.field(f)
                .push(" IS NULL, ")
                .field(f)
                .push(if descending { " DESC" } else { " ASC" });
        }

        fn array_length(&self, b: &mut SqlBuilder, f: &FieldRef) {
            b.push("COALESCE(JSON_LENGTH(").field(f).push("), 0)");
        }

        fn array_any(&self, b: &mut SqlBuilder, f: &FieldRef, values: &[Value]) {
            b.push("JSON_OVERLAPS(")
                .field(f)
                .push(", ")
                .bind(json_array(values))
                .push(")");
        }

        fn array_set(&self, b: &mut SqlBuilder, f: &FieldRef, values: &[Value]) {
            let set = json_array(values);
            b.push("(JSON_CONTAINS(")
                .field(f)
                .push(", ")
                .bind(set.clone())
                .push(") AND JSON_CONTAINS(")
                .bind(set)
                .push(", ")
                .field(f)
                .push("))");
        }
    };
}

impl Dialect for MySqlDialect {
    fn system_name(&self) -> &'static str {
        "mysql"
    }

    fn insert_returns_rows(&self) -> bool {
        false
    }

    fn update_returns_rows(&self) -> bool {
        false
    }

    mysql_family!();
}

impl Dialect for MariaDbDialect {
    fn system_name(&self) -> &'static str {
        "mariadb"
    }

    fn update_returns_rows(&self) -> bool {
        false
    }

    mysql_family!();
}

/// The dialect of the server whose `VERSION()` is `version`: MariaDB from 10.5 on, which
/// returns inserted rows, else MySQL's.
pub fn of_server(version: &str) -> &'static dyn Dialect {
    let lower = version.to_ascii_lowercase();
    // A MariaDB version may be prefixed with `5.5.5-` for old MySQL clients.
    let number = lower.strip_prefix("5.5.5-").unwrap_or(&lower);
    let mut parts = number.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    let (major, minor) = (parts.next().flatten(), parts.next().flatten());
    match (lower.contains("mariadb"), major, minor) {
        (true, Some(major), Some(minor)) if (major, minor) >= (10, 5) => &MariaDbDialect,
        _ => &MySqlDialect,
    }
}

/// The session's lock on `key`: `GET_LOCK` on the key's [`lock_name`], which answers 0
/// after `wait` (rounded up to whole seconds; zero: no limit, -1).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_from_10_5_returns_inserted_rows_and_mysql_never() {
        let returns = |v: &str| of_server(v).insert_returns_rows();
        assert!(returns("10.11.19-MariaDB-0+deb12u1"));
        assert!(returns("5.5.5-10.5.2-MariaDB"));
        assert!(returns("11.4.2-MariaDB"));
        assert!(!returns("10.4.32-MariaDB"));
        assert!(!returns("8.0.36"));
        assert!(!returns("9.1.0-commercial"));
        assert!(!of_server("10.11.19-MariaDB").update_returns_rows());
    }

    #[test]
    fn locks_wait_whole_seconds_and_release_after_the_transaction() {
        let lock = MySqlDialect.key_lock("k", Duration::from_millis(1500));
        let take = lock.before_begin.expect("GET_LOCK before BEGIN");
        assert_eq!(take.params[1], Value::Int(2));
        assert_eq!(
            lock.release.expect("RELEASE_LOCK").params,
            vec![Value::Text(lock_name("k"))]
        );
        let forever = MySqlDialect.key_lock("k", Duration::ZERO);
        assert_eq!(
            forever.before_begin.expect("GET_LOCK").params[1],
            Value::Int(-1)
        );
        let session = MySqlDialect
            .session_lock("k", Duration::from_millis(2500))
            .expect("GET_LOCK");
        assert_eq!(session.acquire.params[1], Value::Int(3));
    }
}
