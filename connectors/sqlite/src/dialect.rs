//! SQLite's SQL: standard quoting and `?` placeholders, `LIKE` that ignores ASCII case,
//! `GLOB` for matching case exactly, and one writer at a time instead of row locks.

use std::time::Duration;

use manifold_core::filter::{FieldRef, LikePattern};
use manifold_core::value::Value;
use manifold_sql::compile::text_column;
use manifold_sql::lock::KeyLock;
use manifold_sql::{Dialect, SqlBuilder};

/// SQLite's dialect. Its defaults are the trait's: `"ident"`, `NULLS LAST`, `RETURNING`,
/// JSON through `json_each`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteDialect;

impl Dialect for SqliteDialect {
    fn system_name(&self) -> &'static str {
        "sqlite"
    }

    fn placeholder_into(&self, _n: usize, out: &mut String) {
        out.push('?');
    }

    /// The whole database's write lock, taken at `BEGIN`: one writer at a time, so the
    /// lookup and the insert of one unit cannot interleave with another's. It waits up to
    /// the busy timeout.
    fn key_lock(&self, _key: &str, _wait: Duration) -> KeyLock {
        KeyLock {
            begin: Some("BEGIN IMMEDIATE"),
            ..KeyLock::default()
        }
    }

    /// A writing transaction locks the whole database.
    fn row_lock(&self) -> &'static str {
        ""
    }

    /// What `LIMIT` takes for "no limit".
    fn unbounded_limit(&self) -> &'static str {
        "-1"
    }

    /// SQLite's `LIKE` ignores ASCII case, so matching case exactly takes `GLOB`, which
    /// has no escape character: literal wildcards become one-character classes.
    fn like(
        &self,
        b: &mut SqlBuilder,
        f: &FieldRef,
        pattern: &LikePattern,
        case_insensitive: bool,
        negated: bool,
    ) {
        text_column(b, f);
        if case_insensitive {
            manifold_sql::compile::like_operand(b, pattern, "LIKE", false, negated);
            return;
        }
        b.push(if negated { " NOT " } else { " " })
            .push("GLOB ")
            .bind(Value::Text(pattern.render("*", "?", glob_literal)));
    }
}

/// Literal text in a `GLOB` pattern: each wildcard character becomes a one-character
/// class.
fn glob_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '*' | '?' | '[' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            other => out.push(other),
        }
    }
    out
}
