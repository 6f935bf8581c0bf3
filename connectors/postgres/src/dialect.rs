//! PostgreSQL's SQL: `$n` placeholders, `ILIKE`, `jsonb` for JSON comparisons and array
//! operators, and advisory locks hashed on the server.

use std::time::Duration;

use manifold_core::filter::FieldRef;
use manifold_core::schema::FieldType;
use manifold_core::value::Value;
use manifold_sql::compile::json_array;
use manifold_sql::lock::{KeyLock, SessionLock};
use manifold_sql::{Dialect, Sql, SqlBuilder};

/// PostgreSQL's dialect.
#[derive(Debug, Clone, Copy, Default)]
pub struct PostgresDialect;

impl Dialect for PostgresDialect {
    fn system_name(&self) -> &'static str {
        "postgresql"
    }

    fn placeholder_into(&self, n: usize, out: &mut String) {
        use std::fmt::Write as _;
        let _ = write!(out, "${n}");
    }

    /// A transaction-scoped advisory lock on the key's hash, under READ COMMITTED
    /// whatever the server's default: each statement then sees what was committed before
    /// it started, including the row the previous holder inserted. It waits up to the
    /// statement timeout.
    fn key_lock(&self, key: &str, _wait: Duration) -> KeyLock {
        KeyLock {
            begin: Some("BEGIN ISOLATION LEVEL READ COMMITTED"),
            after_begin: Some(Sql {
                text: "SELECT CAST(1 AS BIGINT) AS granted FROM \
                       (SELECT pg_advisory_xact_lock(hashtextextended($1, 0))) AS l"
                    .into(),
                params: vec![Value::Text(key.to_owned())],
            }),
            ..KeyLock::default()
        }
    }

    /// `pg_advisory_lock` waits up to the session's `lock_timeout`, which the caller sets.
    fn session_lock(&self, key: &str, _wait: Duration) -> Option<SessionLock> {
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

    fn max_params(&self) -> usize {
        60_000
    }

    fn case_insensitive_like(&self) -> &'static str {
        "ILIKE"
    }

    /// PostgreSQL has no `=` on `json`, so JSON columns are compared as `jsonb`.
    fn compared(&self, b: &mut SqlBuilder, f: &FieldRef) {
        if f.field_type == FieldType::Json {
            b.push("CAST(").field(f).push(" AS JSONB)");
        } else {
            b.field(f);
        }
    }

    /// PostgreSQL would widen a `real` column to double and compare with the exact
    /// double, so `real = 0.1` never held; the value is narrowed instead.
    fn operand(&self, b: &mut SqlBuilder, f: &FieldRef, v: &Value) {
        if f.field_type == FieldType::Float {
            b.push("CAST(").bind(v.clone()).push(" AS REAL)");
        } else {
            b.bind(v.clone());
        }
    }

    fn array_length(&self, b: &mut SqlBuilder, f: &FieldRef) {
        b.push("COALESCE(jsonb_array_length(to_jsonb(")
            .field(f)
            .push(")), 0)");
    }

    fn array_any(&self, b: &mut SqlBuilder, f: &FieldRef, values: &[Value]) {
        b.push("(");
        b.join_balanced(values, " OR ", |b, v| {
            b.push("to_jsonb(")
                .field(f)
                .push(") @> ")
                .bind(json_array(std::slice::from_ref(v)));
        });
        b.push(")");
    }

    fn array_set(&self, b: &mut SqlBuilder, f: &FieldRef, values: &[Value]) {
        let set = json_array(values);
        b.push("(to_jsonb(")
            .field(f)
            .push(") @> ")
            .bind(set.clone())
            .push(" AND to_jsonb(")
            .field(f)
            .push(") <@ ")
            .bind(set)
            .push(")");
    }
}
