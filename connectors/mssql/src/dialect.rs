//! SQL Server's T-SQL: `[ident]`, `@P1` placeholders, `OFFSET … FETCH`, `OUTPUT
//! INSERTED`, `COUNT_BIG`, JSON through `OPENJSON`, and `sp_getapplock` for a key's lock.

use std::time::Duration;

use manifold_core::filter::{FieldRef, LikePattern};
use manifold_core::schema::FieldType;
use manifold_core::value::Value;
use manifold_sql::Returning;
use manifold_sql::compile::{in_list_chunked, json_array, like_under_collation};
use manifold_sql::lock::{KeyLock, lock_name};
use manifold_sql::{Dialect, Sql, SqlBuilder};

/// SQL Server's binary (code point) collation, so that `$like` compares characters
/// exactly whatever the column's collation.
const EXACT: (&str, &str, &str) = ("CAST(", " AS NVARCHAR(MAX))", "Latin1_General_100_BIN2");

/// Above this many values, an `IN` list is one JSON parameter instead of one parameter
/// per value: SQL Server allows 2,100 parameters a statement, and tiberius slows sharply
/// past a few hundred.
const JSON_LIST: usize = 100;

/// SQL Server's dialect.
#[derive(Debug, Clone, Copy, Default)]
pub struct MssqlDialect;

impl Dialect for MssqlDialect {
    fn system_name(&self) -> &'static str {
        "microsoft.sql_server"
    }

    fn placeholder_into(&self, n: usize, out: &mut String) {
        use std::fmt::Write as _;
        let _ = write!(out, "@P{n}");
    }

    /// An application lock the transaction owns ([`sp_getapplock`]).
    fn key_lock(&self, key: &str, wait: Duration) -> KeyLock {
        KeyLock {
            after_begin: Some(sp_getapplock(key, wait)),
            ..KeyLock::default()
        }
    }

    fn identifier_quotes(&self) -> (char, char) {
        ('[', ']')
    }

    fn max_params(&self) -> usize {
        2000
    }

    /// `COUNT` overflows past 2^31 - 1 rows.
    fn count_function(&self) -> &'static str {
        "COUNT_BIG"
    }

    /// SQL Server locks through table hints, which no statement here needs.
    fn row_lock(&self) -> &'static str {
        ""
    }

    fn returning(&self) -> Returning {
        Returning::OutputInserted
    }

    fn text_type(&self) -> &'static str {
        "NVARCHAR(MAX)"
    }

    /// `[` opens a character class in a T-SQL pattern.
    fn like_special(&self, c: char) -> bool {
        matches!(c, '%' | '_' | '\\' | '[')
    }

    fn in_list(&self, b: &mut SqlBuilder, f: &FieldRef, values: &[Value], negated: bool) {
        if values.len() <= JSON_LIST {
            in_list_chunked(b, f, values, negated);
            return;
        }
        self.compared(b, f);
        b.push(if negated { " NOT IN " } else { " IN " })
            .push("(SELECT CAST([value] AS ")
            .push(json_element_type(f))
            .push(") FROM OPENJSON(")
            .bind(json_array(values))
            .push("))");
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

    fn order_nulls_last(&self, b: &mut SqlBuilder, f: &FieldRef, descending: bool) {
        b.push("CASE WHEN ")
            .field(f)
            .push(" IS NULL THEN 1 ELSE 0 END, ")
            .field(f)
            .push(if descending { " DESC" } else { " ASC" });
    }

    /// `OFFSET … FETCH`, which is only valid after an `ORDER BY`.
    fn page(&self, b: &mut SqlBuilder, limit: Option<u64>, offset: Option<u64>, ordered: bool) {
        if !ordered {
            b.push(" ORDER BY (SELECT NULL)");
        }
        b.push(" OFFSET ")
            .push_u64(offset.unwrap_or(0))
            .push(" ROWS");
        if let Some(limit) = limit {
            b.push(" FETCH NEXT ").push_u64(limit).push(" ROWS ONLY");
        }
    }

    fn json_elements_function(&self) -> &'static str {
        "OPENJSON"
    }

    fn array_length(&self, b: &mut SqlBuilder, f: &FieldRef) {
        b.push("(SELECT COUNT(*) FROM OPENJSON(")
            .field(f)
            .push("))");
    }
}

/// The type a JSON list element is cast to before comparing with `f`.
fn json_element_type(f: &FieldRef) -> &'static str {
    match f.field_type {
        FieldType::Integer | FieldType::BigInt => "BIGINT",
        FieldType::Float | FieldType::Double => "FLOAT",
        FieldType::Decimal => "DECIMAL(38, 10)",
        FieldType::Boolean => "BIT",
        FieldType::Date => "DATE",
        FieldType::DateTime => "DATETIMEOFFSET",
        FieldType::DateTimeNoTz => "DATETIME2",
        FieldType::Time => "TIME",
        FieldType::Uuid => "UNIQUEIDENTIFIER",
        _ => "NVARCHAR(4000)",
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
